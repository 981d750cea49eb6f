"""Bundles check offline: intact ones pass, and every edit is caught (recompute catches false statements)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.bundle import export, verify_bundle
from audit.checkpoints import latest_checkpoint, load_public_key, take_checkpoint
from domain.application import Ledger
from domain.base import BUREAU_TZ
from domain.vocabulary import UnitKind
from store.ledger import open_ledger
from tests.audit.conftest import record_history


@pytest.fixture
def bundle_path(ledger: Ledger, store_url: str, signing_key: Path, tmp_path: Path) -> Path:
    record_history(ledger)
    take_checkpoint(store_url)
    ledger.register_unit("late", "后来", UnitKind.DISTRICT, "laiwu", actor="admin")  # export signs it too
    path = tmp_path / "bundle.jsonl"
    export(store_url, path)
    return path


def rewrite(path: Path, edit: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Path:
    """What a forger can do to a file: edit records, drop them, and recompute the unsigned trailer."""
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    lines = [orjson.dumps(r) + b"\n" for r in map(edit, records[:-1]) if r is not None]
    trailer = {
        "kind": "trailer",
        "events": sum(b'"kind":"event"' in x for x in lines),
        "sha256": hashlib.sha256(b"".join(lines)).hexdigest(),
    }
    forged = path.with_name("forged.jsonl")
    forged.write_bytes(b"".join(lines) + orjson.dumps(trailer) + b"\n")
    return forged


def test_intact_bundle_verifies_and_recomputes(bundle_path: Path) -> None:
    records = [orjson.loads(line) for line in bundle_path.read_bytes().splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "header" and kinds[-1] == "trailer"
    assert {"public_key", "checkpoint", "consistency", "policy_versions", "anchor", "projections"} <= set(kinds)
    assert kinds.count("event") == 11
    result = verify_bundle(bundle_path, recompute=True)
    assert result.ok, result.reason
    assert (result.events, result.recomputed) == (11, True)


def test_edited_event_is_caught(bundle_path: Path) -> None:
    def edit(r: dict[str, Any]) -> dict[str, Any]:
        if r["kind"] == "event" and r["position"] == 4:
            r["state"] = base64.b64encode(base64.b64decode(r["state"]).replace(b"admin", b"admon")).decode()
        return r

    result = verify_bundle(rewrite(bundle_path, edit))
    assert (result.ok, result.first_bad_position) == (False, 4)


def test_recomputed_event_hashes_are_caught_by_the_signed_root(bundle_path: Path) -> None:
    """Even with leaf and chain hashes recomputed, the inclusion proof no longer meets the signed root."""
    from audit.chain import event_hash, leaf_hash

    prev: dict[str, bytes] = {}

    def edit(r: dict[str, Any]) -> dict[str, Any]:
        if r["kind"] == "anchor":
            prev["h"] = bytes.fromhex(r["hash"])
        if r["kind"] == "event":
            state = base64.b64decode(r["state"])
            if r["position"] == 4:
                state = state.replace(b"admin", b"admon")
                r["state"] = base64.b64encode(state).decode()
            fields = (r["position"], r["originator_id"], r["originator_version"], r["topic"], state)
            prev["h"] = event_hash(prev["h"], *fields)
            r["hash"], r["leaf"] = prev["h"].hex(), leaf_hash(*fields).hex()
        return r

    result = verify_bundle(rewrite(bundle_path, edit))
    assert (result.ok, result.first_bad_position) == (False, 4)
    assert "signed tree" in result.reason


def test_dropped_event_and_cut_off_file_are_caught(bundle_path: Path) -> None:
    dropped = rewrite(bundle_path, lambda r: None if r["kind"] == "event" and r["position"] == 5 else r)
    assert verify_bundle(dropped).first_bad_position in (5, 6)
    lines = bundle_path.read_bytes().splitlines(keepends=True)
    cut = bundle_path.with_name("cut.jsonl")
    cut.write_bytes(b"".join(lines[:-3]))
    assert not verify_bundle(cut).ok


def test_events_cut_from_the_head_with_the_anchor_moved_are_caught(bundle_path: Path) -> None:
    """Dropping the first events and moving the anchor to the chain hash of the last one dropped keeps the chain and
    every inclusion proof intact, but the header still says the bundle starts at 1."""
    records = [orjson.loads(line) for line in bundle_path.read_bytes().splitlines()]
    kept_from = 5
    moved = next(r for r in records if r["kind"] == "event" and r["position"] == kept_from - 1)

    def cut_head(r: dict[str, Any]) -> dict[str, Any] | None:
        if r["kind"] == "event" and r["position"] < kept_from:
            return None
        return {**r, "position": moved["position"], "hash": moved["hash"]} if r["kind"] == "anchor" else r

    result = verify_bundle(rewrite(bundle_path, cut_head))
    assert not result.ok and "missing from its head" in result.reason


def test_forged_checkpoint_and_untrusted_key(bundle_path: Path, signing_key: Path, tmp_path: Path) -> None:
    def edit(r: dict[str, Any]) -> dict[str, Any]:
        if r["kind"] == "checkpoint":
            r["root"] = "00" * 32
        return r

    assert "invalid signature" in verify_bundle(rewrite(bundle_path, edit)).reason
    trusted = load_public_key(signing_key.read_bytes())
    assert verify_bundle(bundle_path, trusted_key=trusted).ok
    stranger = Ed25519PrivateKey.generate().public_key()
    result = verify_bundle(bundle_path, trusted_key=stranger)
    assert not result.ok and "untrusted key" in result.reason


def test_false_statement_is_caught_only_by_recompute(bundle_path: Path) -> None:
    def edit(r: dict[str, Any]) -> dict[str, Any]:
        if r["kind"] == "projections":
            for rows in r["scores"].values():
                for row in rows:
                    row["score"] = 60
        return r

    forged = rewrite(bundle_path, edit)
    assert verify_bundle(forged).ok  # the statement is not signed...
    result = verify_bundle(forged, recompute=True)  # ...but it does not follow from the events
    assert not result.ok and "scores" in result.reason
    # `ledger verify-bundle` recomputes by default what a bundle from the log's start states.
    assert not verify_bundle(forged, recompute=None).ok
    unasked = verify_bundle(bundle_path)
    assert unasked.ok and not unasked.recomputed and unasked.unchecked == "not asked"


def test_a_bundle_names_the_positions_it_holds_and_the_signed_size(
    ledger: Ledger, store_url: str, signing_key: Path, tmp_path: Path, bundle_path: Path
) -> None:
    """A part of the log (or one cut short by a forger) says which positions of how large a signed log it holds,
    and a part's stated projections, which cannot be rebuilt from it, are said to be unchecked; a bundle of no
    events is refused."""
    whole = verify_bundle(bundle_path, recompute=None)
    assert whole.ok and whole.recomputed and (whole.first, whole.last, whole.signed_size) == (1, 11, 11)
    part = tmp_path / "part.jsonl"
    export(store_url, part, 3, 6)
    found = verify_bundle(part, recompute=None)
    assert found.ok and (found.first, found.last, found.signed_size) == (3, 6, 11)
    assert not found.recomputed and found.unchecked == "the bundle starts at position 3"
    no_events = rewrite(bundle_path, lambda r: None if r["kind"] == "event" else r)
    refused = verify_bundle(no_events)
    assert not refused.ok and "no events" in refused.reason


def test_a_bundle_notes_an_event_back_dated_after_a_checkpoint(
    ledger: Ledger, store_url: str, signing_key: Path, tmp_path: Path, bundle_path: Path
) -> None:
    """An event appended with a recording time a month before the last checkpoint was signed is in the signed tree
    once the honest signer signs again; the bundle checks intact, and names it as recorded early, as ``ledger
    verify`` does."""
    signed = latest_checkpoint(store_url)
    assert signed is not None
    month_ago = open_ledger(store_url, clock=lambda: datetime.fromisoformat(signed.timestamp) - timedelta(days=30))
    try:
        forged = month_ago.register_unit("e1", "镇1", UnitKind.TOWNSHIP, "d1", actor="admin")
    finally:
        month_ago.close()
    later = tmp_path / "after.jsonl"
    export(store_url, later)
    result = verify_bundle(later)
    assert result.ok and result.recorded_early == 1
    assert result.notes[0].startswith(f"event at position {forged.position} says it was recorded at")
    assert verify_bundle(bundle_path).recorded_early == 0


def test_trusted_keys_across_a_keys_change(bundle_path: Path, signing_key: Path) -> None:
    stranger = Ed25519PrivateKey.generate().public_key()
    ours = load_public_key(signing_key.read_bytes())
    assert verify_bundle(bundle_path, trusted_keys=[stranger, ours]).ok
    assert not verify_bundle(bundle_path, trusted_keys=[stranger]).ok


def test_a_forged_policy_version_list_is_caught_by_recompute(
    ledger: Ledger, store_url: str, signing_key: Path, tmp_path: Path
) -> None:
    """The bundle lists the policy versions beside its events, unsigned; recompute folds its policy events and
    finds a listed parameter changed (an auditor reading the list would judge by the wrong figure)."""
    record_history(ledger)
    ledger.amend_policy(datetime(2026, 1, 1, tzinfo=BUREAU_TZ), {"handling_days": 45}, actor="admin")
    take_checkpoint(store_url)
    path = tmp_path / "bundle.jsonl"
    export(store_url, path)
    assert verify_bundle(path, recompute=True).ok

    def edit(r: dict[str, Any]) -> dict[str, Any]:
        if r["kind"] == "policy_versions":
            r["versions"][-1]["changes"]["handling_days"] = 90
        return r

    result = verify_bundle(rewrite(path, edit), recompute=True)
    assert not result.ok and "policy versions" in result.reason


def test_partial_range(ledger: Ledger, store_url: str, signing_key: Path, tmp_path: Path) -> None:
    record_history(ledger)
    path = tmp_path / "part.jsonl"
    header = export(store_url, path, start=3, stop=6)
    assert (header["from"], header["to"]) == (3, 6)
    result = verify_bundle(path)
    assert (result.ok, result.events) == (True, 4)
    recomputed = verify_bundle(path, recompute=True)
    assert not recomputed.ok and "from its start" in recomputed.reason


def test_stated_projections_are_written_a_territory_at_a_time(
    store_url: str, signing_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two cities (the generator's territories): each is folded apart, and the line is byte for byte the
    JSON of the whole-city fold, which ``--recompute`` states again from the bundle's events."""
    from datetime import datetime

    from audit import bundle
    from bench.generate import generate
    from projections.queries import Queries

    generate(store_url, 5000, years=(2025,), quiet=True)
    take_checkpoint(store_url)
    territories: list[list[str] | None] = []
    real = bundle._territories

    def spy(queries: Any, known_at: datetime | None) -> list[str] | None:
        territories.append(real(queries, known_at))
        return territories[-1]

    monkeypatch.setattr(bundle, "_territories", spy)
    path = tmp_path / "bundle.jsonl"
    export(store_url, path)
    assert territories == [["laiwu", "laiwu-c1"]]

    line = next(x for x in path.read_bytes().splitlines() if x.startswith(b'{"kind":"projections"'))
    stated = orjson.loads(line)
    assert stated["scores"]["2025"] and stated["quota_deductions"]["2025"] and stated["triggers"]
    assert 2000 not in stated["years"]  # the policy's defaults are dated the epoch: no year of figures
    assert {t["subject"]["unit_id"].endswith("-c1") for t in stated["triggers"]} == {True, False}
    queries = Queries(store_url)
    try:
        whole = bundle.stated_projections(queries, stated["years"], datetime.fromisoformat(stated["as_of"]))
    finally:
        queries.close()
    assert line == orjson.dumps({"kind": "projections", **whole}, default=str)
    result = verify_bundle(path, recompute=True)
    assert result.ok and result.recomputed, result.reason


def test_one_city_is_stated_in_one_fold(ledger: Ledger, store_url: str) -> None:
    """Territories are the roots of the unit tree: one city is folded whole, two cities apart."""
    from audit import bundle
    from projections.engine import catch_up
    from projections.queries import Queries

    record_history(ledger)
    catch_up(store_url)
    queries = Queries(store_url)
    try:
        assert bundle._territories(queries, None) is None
        ledger.register_unit("taian", "泰安市", UnitKind.CITY, None, actor="admin")
        ledger.register_unit("taishan", "泰山区", UnitKind.DISTRICT, "taian", actor="admin")
        catch_up(store_url)
        assert bundle._territories(queries, None) == ["laiwu", "taian"]
    finally:
        queries.close()
