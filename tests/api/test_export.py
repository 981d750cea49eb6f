"""The audit export over HTTP (审计包): the same bundle as ``ledger export``, refused as it refuses a tampered store."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from audit.bundle import verify_bundle
from audit.checkpoints import ensure_signing_key
from domain.application import Ledger
from tests.api.conftest import auth
from tests.api.test_errors import assert_problem
from tests.test_cli import tamper_state


def test_the_export_is_a_checked_bundle_and_a_tampered_store_sends_none(
    client: TestClient, tokens: dict[str, str], ledger: Ledger, store_url: str, tmp_path: Path
) -> None:
    """A store whose event row was edited answers 500 naming the first bad position, as `ledger verify` and
    /v1/audit/verify name it, and sends no bundle; the positions before the damage still export."""
    ensure_signing_key()
    auditor = auth(tokens["auditor"])
    good = client.get("/v1/audit/export", headers=auditor)
    assert good.status_code == 200 and good.headers["content-type"].startswith("application/x-ndjson")
    (tmp_path / "good.jsonl").write_bytes(good.content)
    assert verify_bundle(tmp_path / "good.jsonl").ok

    tamper_state(store_url, 3)
    head = ledger.recorder.max_notification_id()
    for asked in ({}, {"from": 2, "to": 4}):
        problem = assert_problem(client.get("/v1/audit/export", params=asked, headers=auditor), 500)
        assert problem["first_bad_position"] == 3 and "first bad position 3" in problem["detail"], asked
    assert client.get("/v1/audit/verify", headers=auditor).json()["first_bad_position"] == 3
    before = client.get("/v1/audit/export", params={"to": 2}, headers=auditor)
    assert before.status_code == 200
    (tmp_path / "before.jsonl").write_bytes(before.content)
    assert verify_bundle(tmp_path / "before.jsonl").ok
    assert ledger.recorder.max_notification_id() == head
