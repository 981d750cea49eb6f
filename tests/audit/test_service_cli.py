"""Service functions answer checkable proofs; the CLI exits 0 when intact and 1 naming the position."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from audit import checkpoints, merkle, service
from audit.checkpoints import ensure_signing_key, take_checkpoint
from audit.cli import register
from audit.db import AuditDB
from domain.application import Ledger
from domain.vocabulary import UnitKind
from store.ledger import open_ledger
from tests.audit.conftest import record_history


def days_ago(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def test_proofs_verify_against_signed_checkpoints(ledger: Ledger, store_url: str, signing_key: Path) -> None:
    record_history(ledger)
    first = take_checkpoint(store_url)
    ledger.register_unit("late", "后来", UnitKind.DISTRICT, "laiwu", actor="admin")
    second = take_checkpoint(store_url)
    assert service.latest_checkpoint(store_url) == second.to_dict()
    for position in range(1, second.size + 1):
        p = service.inclusion_proof(store_url, position, second.size)
        merkle.verify_inclusion(
            p["leaf_index"],
            p["tree_size"],
            bytes.fromhex(p["leaf_hash"]),
            [bytes.fromhex(h) for h in p["path"]],
            bytes.fromhex(second.root),
        )
    c = service.consistency_proof(store_url, first.size, second.size)
    merkle.verify_consistency(
        first.size,
        second.size,
        bytes.fromhex(first.root),
        bytes.fromhex(second.root),
        [bytes.fromhex(h) for h in c["path"]],
    )
    with pytest.raises(service.ProofUnavailable):
        service.inclusion_proof(store_url, 1, second.size + 5)
    assert service.verify(store_url)["ok"]
    assert service.export_bytes(store_url).startswith(b'{"kind":"header"')
    assert service.late_entries(store_url, timedelta(days=1)) == []  # the defaults (position 1) are no late entry
    back = ledger.register_unit("back", "补录", UnitKind.DISTRICT, "laiwu", actor="admin", occurred_at=days_ago(3))
    assert [e["position"] for e in service.late_entries(store_url, timedelta(days=1))] == [back.position]


def test_cli(
    ledger: Ledger, store_url: str, signing_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", store_url)
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    record_history(ledger)
    assert runner.invoke(app, ["checkpoint"]).exit_code == 0
    ok = runner.invoke(app, ["verify", "-q"])
    assert ok.exit_code == 0 and "intact: 10 events" in ok.output
    assert "signed: the first 10 events" in ok.output and "signing key file" in ok.output
    # A checkpoint kept outside the store is checked too; one the log no longer holds fails, naming why.
    kept = tmp_path / "kept.json"
    kept.write_bytes(orjson.dumps(service.latest_checkpoint(store_url)))
    assert runner.invoke(app, ["verify", "-q", "--checkpoint", str(kept)]).exit_code == 0
    forged = tmp_path / "forged.json"
    forged.write_bytes(orjson.dumps({**orjson.loads(kept.read_bytes()), "root": "00" * 32}))
    refused = runner.invoke(app, ["verify", "-q", "--checkpoint", str(forged)])
    assert refused.exit_code == 1 and "invalid signature" in refused.output
    odd = runner.invoke(app, ["verify", "-q", "--checkpoint", str(signing_key)])
    assert odd.exit_code == 1 and odd.output.startswith("ledger: --checkpoint")
    ledger.register_unit("late2", "后来", UnitKind.DISTRICT, "laiwu", actor="admin")
    tail = runner.invoke(app, ["verify", "-q", "--key", str(signing_key)])
    assert "1 event after it not yet signed" in tail.output and "trusted key given" in tail.output
    out = tmp_path / "b.jsonl"
    assert runner.invoke(app, ["export", "--out", str(out), "--from", "2"]).exit_code == 0
    checked = runner.invoke(app, ["verify-bundle", str(out), "--key", str(signing_key)])
    assert checked.exit_code == 0, checked.output
    assert "positions 2..11" in checked.output and "NOT checked (the bundle starts at position 2)" in checked.output
    whole = tmp_path / "whole.jsonl"
    assert runner.invoke(app, ["export", "--out", str(whole)]).exit_code == 0
    recomputed = runner.invoke(app, ["verify-bundle", str(whole)])
    assert recomputed.exit_code == 0 and "stated projections recomputed and equal" in recomputed.output
    skipped = runner.invoke(app, ["verify-bundle", str(whole), "--no-recompute"])
    assert skipped.exit_code == 0 and "NOT checked (not asked)" in skipped.output
    # The audit office hands out the public half; a bundle checked against it names the key it trusted, and one
    # checked against its own bundled key says so, to be compared with the key id the office published.
    published = runner.invoke(app, ["public-key", "--out", str(tmp_path / "pub.pem")])
    kid = checkpoints.key_id(checkpoints.load_public_key((tmp_path / "pub.pem").read_bytes()))
    assert published.exit_code == 0 and f"key id {kid}" in published.output
    trusted = runner.invoke(app, ["verify-bundle", str(out), "--key", str(tmp_path / "pub.pem")])
    assert f"signed by key {kid} (the trusted key given)" in trusted.output
    own = runner.invoke(app, ["verify-bundle", str(out)])
    assert own.exit_code == 0 and f"signed by key {kid} (the bundle's own key" in own.output
    other = tmp_path / "other.pem"
    other.write_text(
        checkpoints.public_key_pem(checkpoints.load_signing_key(ensure_signing_key(tmp_path / "o.key")).public_key())
    )
    refused = runner.invoke(app, ["verify-bundle", str(out), "--key", str(other)])
    assert refused.exit_code == 1 and "untrusted key" in refused.output
    # An event recorded a month before the last checkpoint was signed: intact, exit 0, and named on stderr.
    signed = service.latest_checkpoint(store_url)
    assert signed is not None
    behind = open_ledger(store_url, clock=lambda: datetime.fromisoformat(signed["timestamp"]) - timedelta(days=30))
    try:
        early = behind.register_unit("early", "补", UnitKind.DISTRICT, "laiwu", actor="admin").position
    finally:
        behind.close()
    noted = runner.invoke(app, ["verify", "-q"])
    assert noted.exit_code == 0 and "1 event(s) recorded before a checkpoint" in noted.output
    assert f"event at position {early} says it was recorded at" in noted.output
    with AuditDB(store_url) as db:
        if db.engine == "sqlite":
            db.execute("DROP TRIGGER stored_events_no_update")
        else:
            db.execute("SET session_replication_role = replica")
        db.execute(f"UPDATE {db.events_table} SET topic = topic || 'x' WHERE {db.position_column} = 7")
    bad = runner.invoke(app, ["verify", "-q"])
    assert bad.exit_code == 1
    assert "first bad position 7" in bad.output
