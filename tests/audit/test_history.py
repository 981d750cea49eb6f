"""A record's history shows each event as stored (personal data sealed); back-dated entries are found."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from audit.bundle import export, verify_bundle
from audit.checkpoints import take_checkpoint
from audit.history import history, iso_duration, late_entries
from audit.verify import verify
from domain.application import Ledger
from domain.errors import RecordNotFound
from domain.personal import ERASED, SEALED_PREFIX
from domain.vocabulary import Channel, PetitionCategory, Role, UnitKind


def test_history_lists_events_with_positions_and_chain_hashes(ledger: Ledger) -> None:
    ledger.register_unit("laiwu", "莱芜市", UnitKind.CITY, None, actor="admin")
    first = ledger.register_petition(
        "laiwu",
        Channel.LETTER,
        1,
        "李四",
        "违法占地",
        PetitionCategory.ILLEGAL_LAND_USE,
        petition_id="x-9",
        actor="clerk-1",
    )
    second = ledger.extend_petition("x-9", 10, actor="clerk-2", note="材料补正")
    rows = history(ledger, "petition", "x-9")
    assert [r["position"] for r in rows] == [first.position, second.position]
    assert [r["type"] for r in rows] == ["Petition.Registered", "Petition.Extended"]
    assert [r["actor"] for r in rows] == ["clerk-1", "clerk-2"]
    assert rows[0]["data"]["petitioner"].startswith(SEALED_PREFIX)  # shown as stored, never in clear
    assert rows[1]["data"]["note"] == "材料补正"
    assert all(len(r["hash"]) == 64 for r in rows)
    with pytest.raises(RecordNotFound):
        history(ledger, "petition", "x-404")


def test_history_withholds_a_grants_secret_hash_and_the_bundle_keeps_its_stored_bytes(
    ledger: Ledger, store_url: str, signing_key: Path, tmp_path: Path
) -> None:
    # GET /v1/tokens/{id} never shows a secret's hash; the audit trail shows it no more. What is stored, chained and
    # exported is the event as recorded, hash and all, so the chain and a bundle check the same bytes as before.
    secret_hash = "5e" * 32
    grant = ledger.grant_access("auditor-9", Role.AUDITOR, [], secret_hash, grant_id="g-9", actor="admin")
    [row] = history(ledger, "grant", "g-9")
    assert row["position"] == grant.position and len(row["hash"]) == 64
    assert row["data"]["subject"] == "auditor-9" and row["data"]["role"] == "auditor"
    assert "secret_hash" not in row["data"] and secret_hash not in str(row)
    assert ledger.events_of("grant", "g-9")[0].secret_hash == secret_hash  # type: ignore[attr-defined]
    take_checkpoint(store_url)
    assert verify(store_url).ok
    path = tmp_path / "bundle.jsonl"
    export(store_url, path)
    result = verify_bundle(path)
    assert result.ok, result.reason
    [line] = [
        r
        for r in map(orjson.loads, path.read_bytes().splitlines())
        if r["kind"] == "event" and r["position"] == grant.position
    ]
    [stored] = ledger.recorder.select_notifications(start=grant.position, limit=1)
    assert (base64.b64decode(line["state"]), line["hash"]) == (stored.state, row["hash"])  # as recorded, byte for byte


def test_late_entries_name_backdated_events(ledger: Ledger, store_url: str) -> None:
    now = datetime.now(UTC)
    ledger.register_unit("laiwu", "莱芜市", UnitKind.CITY, None, actor="admin", occurred_at=now - timedelta(days=30))
    ledger.register_unit("d1", "区1", UnitKind.DISTRICT, "laiwu", actor="clerk-7", occurred_at=now - timedelta(days=10))
    on_time = ledger.register_unit("d2", "区2", UnitKind.DISTRICT, "laiwu", actor="admin")
    # Policy version 1 (position 1, the defaults) is in force from the ledger's epoch by design: no late entry.
    found = late_entries(store_url, timedelta(days=7))
    assert found == late_entries(store_url, timedelta(days=7), start=2)
    assert [f["record_id"] for f in found] == ["laiwu", "d1"]
    assert [(f["kind"], f["unit_id"]) for f in found] == [("unit", "laiwu"), ("unit", "d1")]  # a unit is its own
    assert [
        f["record_id"] for f in late_entries(store_url, timedelta(days=7), within=lambda owner: owner[2] == "d1")
    ] == ["d1"]
    assert found[1]["actor"] == "clerk-7"
    assert found[1]["gap"].startswith("P10D")
    assert on_time.position not in [f["position"] for f in found]
    assert [f["record_id"] for f in late_entries(store_url, timedelta(days=20), start=2)] == ["laiwu"]
    assert len(late_entries(store_url, timedelta(days=7), start=2, limit=1)) == 1
    # An amendment recorded today, effective a year ago, rewrites that year: listed by its effective_from.
    amended = ledger.amend_policy(now - timedelta(days=365), {"pass_score": 70}, actor="admin")
    ledger.amend_policy(now, {"pass_score": 80}, actor="admin")  # in force from now on: not back-dated
    [listed] = [f for f in late_entries(store_url, timedelta(days=7), start=2) if f["kind"] == "policy"]
    assert (listed["position"], listed["gap"][:5]) == (amended.position, "P365D")
    assert listed["unit_id"] is None  # the policy belongs to no one unit
    assert listed["effective_from"] == (now - timedelta(days=365)).isoformat() and found[0]["effective_from"] is None


def test_iso_duration() -> None:
    assert iso_duration(timedelta(days=7)) == "P7D"
    assert iso_duration(timedelta(days=1, hours=2, seconds=5)) == "P1DT2H5S"
    assert iso_duration(timedelta(minutes=3)) == "PT3M"
    assert iso_duration(timedelta(0)) == "PT0S"


def test_erasure_keeps_the_store_verifiable(ledger: Ledger, store_url: str, signing_key: Path) -> None:
    ledger.register_unit("laiwu", "莱芜市", UnitKind.CITY, None, actor="admin")
    ledger.register_petition(
        "laiwu", Channel.VISIT, 1, "王五", "补偿", PetitionCategory.COMPENSATION, petition_id="x-1", actor="clerk"
    )
    take_checkpoint(store_url)
    before = history(ledger, "petition", "x-1")
    assert ledger.events_of("petition", "x-1")[0].petitioner == "王五"  # type: ignore[attr-defined]
    ledger.erase_personal_data("petition", "x-1", "当事人依法申请删除", actor="privacy-officer")
    take_checkpoint(store_url)
    assert ledger.events_of("petition", "x-1")[0].petitioner == ERASED  # type: ignore[attr-defined]
    after = history(ledger, "petition", "x-1")
    assert after[-1]["type"].endswith("PersonalDataErased")
    assert after[-1]["actor"] == "privacy-officer"
    assert after[0] == before[0]  # the stored bytes, and so their hash, did not change
    result = verify(store_url)
    assert result.ok, result.reason
