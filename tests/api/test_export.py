"""The audit export over HTTP (审计包): the same bundle as ``ledger export``, refused as it refuses a tampered store."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.auth import issue_token
from audit import checkpoints
from audit.bundle import verify_bundle
from audit.checkpoints import ensure_signing_key
from domain.application import Ledger
from domain.vocabulary import Role
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

    tamper_state(store_url, 5, garble=True)  # bytes that no longer decode: named as well, not a bare 500
    problem = assert_problem(client.get("/v1/audit/export", params={"from": 4, "to": 6}, headers=auditor), 500)
    assert problem["first_bad_position"] == 5 and "cannot be decoded" in problem["detail"]
    backwards = assert_problem(client.get("/v1/audit/export", params={"from": 4, "to": 2}, headers=auditor), 422)
    assert backwards["errors"][0]["loc"] == ["query", "from"]


def test_a_unit_bound_auditor_exports_no_bundle(client: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    """A bundle verifies only whole (hash chain, Merkle tree, the city's figures recomputed), so it holds every
    territory's events: a unit-bound auditor (属地管理) is refused it with a detail naming what it can check instead;
    a city-wide auditor still gets it."""
    ensure_signing_key()
    d1_auditor = auth(issue_token(ledger, "auditor-d1", Role.AUDITOR, ["d1"], actor="setup"))
    for asked in ({}, {"from": 1, "to": 2}):
        problem = assert_problem(client.get("/v1/audit/export", params=asked, headers=d1_auditor), 403)
        assert "bound to units (d1)" in problem["detail"] and "/v1/audit/proofs/inclusion" in problem["detail"]
    assert client.get("/v1/audit/export", headers=auth(tokens["auditor"])).status_code == 200


def test_the_signing_keys_are_published_with_the_ids_the_checkpoints_name(
    client: TestClient, tokens: dict[str, str]
) -> None:
    """`GET /v1/audit/keys`: the public half of each key checkpoints were signed with, by the id each checkpoint and
    `ledger verify-bundle` names, for the auditor to compare with the key the audit office holds."""
    auditor = auth(tokens["auditor"])
    assert client.get("/v1/audit/keys", headers=auditor).json() == {"items": []}  # nothing signed yet
    ensure_signing_key()
    assert client.get("/v1/audit/export", headers=auditor).status_code == 200  # takes the first checkpoint
    latest = client.get("/v1/audit/checkpoints/latest", headers=auditor).json()
    [key] = client.get("/v1/audit/keys", headers=auditor).json()["items"]
    assert key["key_id"] == latest["key_id"] == checkpoints.key_id(checkpoints.load_public_key(key["pem"]))
    assert client.get("/v1/audit/keys", headers=auth(tokens["clerk"])).status_code == 403
