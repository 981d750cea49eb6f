"""Every error kind is application/problem+json, and no error records anything."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.problems import MAX_BODY_BYTES
from domain.application import Ledger
from tests.api.conftest import auth, petition_body

PROBLEM = "application/problem+json"


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    return body


def test_every_error_kind(client: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    clerk = auth(tokens["clerk"])
    client.post("/v1/petitions", json=petition_body(id="x1"), headers=clerk)
    before = ledger.recorder.max_notification_id()

    r = client.post("/v1/petitions", content=b'{"unit_id": ', headers={**clerk, "Content-Type": "application/json"})
    assert_problem(r, 400)
    body = assert_problem(client.post("/v1/petitions", json=petition_body(colour="red"), headers=clerk), 422)
    assert any(e["loc"][-1] == "colour" for e in body["errors"])
    assert_problem(client.post("/v1/petitions", json=petition_body(channel="pigeon"), headers=clerk), 422)
    assert_problem(client.post("/v1/petitions", json=petition_body(subject="x" * 5000), headers=clerk), 422)
    assert_problem(client.post("/v1/petitions", json=petition_body()), 401)
    assert_problem(client.post("/v1/petitions", json=petition_body(), headers=auth("g-nope.secret")), 401)
    assert_problem(client.post("/v1/petitions", json=petition_body(), headers=auth(tokens["officer"])), 403)
    assert_problem(client.get("/v1/petitions/nope", headers=clerk), 404)
    assert_problem(client.get("/v1/nowhere", headers=clerk), 404)
    r = client.delete("/v1/petitions/x1", headers=clerk)
    assert_problem(r, 405)
    assert r.headers["allow"] == "GET"
    r = client.put("/v1/petitions", json={}, headers=clerk)
    assert_problem(r, 405)
    assert r.headers["allow"] == "GET, POST"
    refused = assert_problem(
        client.post("/v1/petitions/x1/ownership", json={"leader_id": "officer1"}, headers=clerk), 409
    )
    assert refused["rule"] == "R9" and "R9" in str(refused["detail"])
    r = client.post("/v1/petitions/x1/reply", json={"summary": "ok"}, headers={**clerk, "If-Match": '"7"'})
    assert_problem(r, 412)
    big = b'{"note": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert_problem(
        client.post("/v1/petitions", content=big, headers={**clerk, "Content-Type": "application/json"}), 413
    )
    assert_problem(
        client.post("/v1/petitions", content=b"unit_id=t1", headers={**clerk, "Content-Type": "text/plain"}), 415
    )
    future = petition_body(occurred_at="2999-01-01T00:00:00+08:00")
    assert_problem(client.post("/v1/petitions", json=future, headers=clerk), 422)
    assert ledger.recorder.max_notification_id() == before


def test_every_route_documents_its_problems(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "Problem" in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1"):
            continue
        for operation in operations.values():
            for status in ("400", "401", "403", "404", "405", "409", "412", "413", "415", "422"):
                assert PROBLEM in operation["responses"][status]["content"], (path, status)


def test_healthz_needs_no_token_and_says_why_the_store_is_unreachable(
    client: TestClient, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.get("/healthz").status_code == 200

    def broken() -> int:
        raise ConnectionError("connection refused")

    monkeypatch.setattr(ledger.recorder, "max_notification_id", broken)
    r = client.get("/healthz")
    assert_problem(r, 503)
    assert "connection refused" in r.json()["detail"]


def test_a_field_problem_names_where_the_value_was(client: TestClient, tokens: dict[str, str]) -> None:
    """Query values as ``["query", name]``, headers as ``["header", name]``, path ids as ``["path", "id"]``,
    and a value inside the body by the parts of its path."""
    admin = auth(tokens["admin"])
    naive = "2025-06-30T00:00:00"
    amendment = {"effective_from": "2025-01-01T00:00:00+08:00", "params": {"no_such_param": 1}}
    allocation = {"year": 2024, "mu": 1}
    asked = {
        ("GET", f"/v1/units/d1?as_of={naive}"): ["query", "as_of"],
        ("GET", f"/v1/units/d1?known_at={naive}"): ["query", "known_at"],
        ("GET", f"/v1/units?known_at={naive}"): ["query", "known_at"],
        ("GET", f"/v1/policy?at={naive}"): ["query", "at"],
        ("GET", "/v1/units?version=1"): ["query", "version"],
        ("GET", "/v1/units/d1?version=1&as_of=2025-06-30T00:00:00%2B08:00"): ["query", "version"],
        ("GET", f"/v1/scores?year=2025&as_of={naive}"): ["query", "as_of"],
        ("GET", "/v1/triggers/R4.case.x?as_of=2025-06-30T00:00:00"): ["query", "as_of"],
        ("GET", "/v1/reports/weekly?week=2025-W53"): ["query", "week"],
        ("GET", "/v1/reports/monthly?month=0000-01"): ["query", "month"],
        ("GET", "/v1/audit/late-entries?min_gap=-P7D"): ["query", "min_gap"],
        ("GET", "/v1/audit/events?kind=nope&id=d1"): ["query", "kind"],
        ("GET", "/v1/audit/events?kind=unit&id=%2e%2e"): ["query", "id"],
        ("GET", "/v1/units/%2e%2e"): ["path", "id"],
        ("GET", "/v1/agreements/%2e%2e"): ["path", "id"],
        ("POST", "/v1/units/%2e%2e/quota-allocations"): ["path", "id"],
        ("POST", "/v1/tokens/%2e%2e/revocation"): ["path", "id"],
        ("POST", "/v1/policy/amendments"): ["body", "params", "no_such_param"],
    }
    for (method, path), loc in asked.items():
        body = {"/v1/policy/amendments": amendment, "/v1/units/%2e%2e/quota-allocations": allocation}.get(path)
        problem = assert_problem(client.request(method, path, json=body, headers=admin), 422)
        assert [e["loc"] for e in problem["errors"]] == [loc], (method, path, problem)

    stale = {**admin, "If-Match": '"abc"'}
    problem = assert_problem(client.post("/v1/units/d1/quota-allocations", json=allocation, headers=stale), 422)
    assert problem["errors"][0]["loc"] == ["header", "If-Match"]
    future = {**allocation, "occurred_at": "2999-01-01T00:00:00+08:00"}
    problem = assert_problem(client.post("/v1/units/d1/quota-allocations", json=future, headers=admin), 422)
    assert problem["errors"][0]["loc"] == ["body", "occurred_at"]  # a body value stays the body's


def test_a_body_that_is_absent_or_not_an_object_is_malformed(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    """400, not 422: an absent body, one that is not JSON, or JSON that is not an object names no field."""
    json_type = {"Content-Type": "application/json"}
    clerk, admin = auth(tokens["clerk"]), auth(tokens["admin"])
    client.post("/v1/petitions", json=petition_body(id="p1"), headers=clerk)
    before = ledger.recorder.max_notification_id()
    for path, headers in [("/v1/petitions", clerk), ("/v1/units/d1/quota-allocations", admin)]:
        assert_problem(client.post(path, headers=headers), 400)
        for raw in (b"", b"  ", b"not json", b"null", b"[]", b'"a string"', b"1"):
            body = assert_problem(client.post(path, content=raw, headers={**headers, **json_type}), 400)
            assert body["errors"][0]["loc"][0] == "body", (path, raw)
        fields = assert_problem(client.post(path, json={}, headers=headers), 422)  # an object: its fields are named
        assert all(len(e["loc"]) == 2 for e in fields["errors"])
    # A command whose body is optional takes none, but not one that is there and is not an object.
    assert_problem(client.post("/v1/petitions/p1/cessation", content=b"[]", headers={**clerk, **json_type}), 400)
    # A field named twice: JSON parsers keep the last, so what is recorded would not be what a reader sees.
    twice = b'{"id": "a1", "name": "A", "kind": "district", "parent_id": "laiwu", "id": "b2"}'
    assert (
        "'id' more than once"
        in assert_problem(client.post("/v1/units", content=twice, headers={**admin, **json_type}), 400)["detail"]
    )
    nested = b'{"effective_from": "2025-01-01T00:00:00+08:00", "params": {"pass_score": 60, "pass_score": 80}}'
    assert_problem(client.post("/v1/policy/amendments", content=nested, headers={**admin, **json_type}), 400)
    assert ledger.recorder.max_notification_id() == before
    assert client.post("/v1/petitions/p1/cessation", headers=clerk).status_code == 200
