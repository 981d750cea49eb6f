"""Query routes: read your writes through X-Ledger-Position, territory filtering, position and lag."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import issue_token
from domain.application import Ledger
from domain.vocabulary import Role
from tests.api.conftest import auth, petition_body


def test_queries_wait_for_the_clients_last_write_and_filter_by_territory(
    store_url: str, ledger: Ledger, tokens: dict[str, str]
) -> None:
    with TestClient(create_app(store_url, ledger=ledger, run_projections=True)) as client:
        clerk = auth(tokens["clerk"])
        client.post("/v1/petitions", json=petition_body(id="x1", skip_level=True), headers=clerk)
        last = client.post("/v1/petitions", json=petition_body(id="x2", unit_id="d2"), headers=clerk).json()
        seen = {"X-Ledger-Position": str(last["position"])}
        board = client.get("/v1/petitions", headers={**auth(tokens["supervisor"]), **seen})
        assert board.status_code == 200, board.text
        answer = board.json()
        assert answer["position"] >= last["position"] and answer["lag"] >= 0
        assert {row["id"] for row in answer["items"]} >= {"x1", "x2"}
        d1 = auth(issue_token(ledger, "sup-d1", Role.SUPERVISOR, ["d1"], actor="setup"), **seen)
        rows = client.get("/v1/petitions", headers=d1).json()["items"]
        assert {row["unit_id"] for row in rows} == {"t1"}
        for path in (
            "/v1/scores?year=2024",
            "/v1/quota?year=2024",
            "/v1/quota-deductions?year=2024",
            "/v1/triggers?status=open",
            "/v1/reports/daily?date=2024-03-01",
            "/v1/reports/weekly?week=2024-W09",
            "/v1/reports/monthly?month=2024-03",
            "/v1/projections/status",
        ):
            r = client.get(path, headers=auth(tokens["auditor"]))
            assert r.status_code == 200, (path, r.text)
            assert {"items", "position", "lag"} <= set(r.json())


def test_a_decision_needs_an_existing_trigger(client: TestClient, tokens: dict[str, str]) -> None:
    r = client.post(
        "/v1/triggers/t-nope/decision", json={"outcome": "warning", "reason": "x"}, headers=auth(tokens["supervisor"])
    )
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
