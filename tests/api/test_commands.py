"""Commands and record reads over HTTP, on both stores."""

from __future__ import annotations

import json
import threading

from fastapi.testclient import TestClient

from api.auth import hash_secret
from domain.application import Ledger
from domain.petitions import Petition
from tests.api.conftest import PAST, auth, petition_body


def head(ledger: Ledger) -> int:
    return int(ledger.recorder.max_notification_id() or 0)


def test_unit_creation_answers_201_with_location_and_reads_back_at_version_and_as_of(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    admin = auth(tokens["admin"])
    r = client.post(
        "/v1/units",
        json={"id": "t2", "name": "羊里镇", "kind": "township", "parent_id": "d1", "occurred_at": PAST, "note": "新设"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/v1/units/t2"
    assert r.json()["id"] == "t2" and r.json()["version"] == 1 and r.json()["position"] == head(ledger)

    r = client.post(
        "/v1/units/d1/quota-allocations",
        json={"year": 2024, "mu": 120.5, "occurred_at": "2024-04-01T00:00:00+08:00"},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["version"] == 2

    now = client.get("/v1/units/d1", headers=admin).json()
    assert now["allocated"] == {"2024": 120.5} and now["parent_id"] == "laiwu"
    assert client.get("/v1/units/d1?version=1", headers=admin).json()["allocated"] == {}
    before = client.get("/v1/units/d1", params={"as_of": "2024-03-15T00:00:00+08:00"}, headers=admin).json()
    assert before["allocated"] == {} and before["version"] == 1
    assert client.get("/v1/units/d1?version=9", headers=admin).status_code == 404

    listed = client.get("/v1/units", headers=admin).json()["items"]
    assert [u["id"] for u in listed] == ["laiwu", "d1", "d2", "t1", "t2"]
    assert all(u["unit_id"] == u["id"] for u in listed)  # every row names its unit as unit_id (API.md)


def test_a_bureau_office_under_another_names_its_area_and_the_districts_token_reaches_it(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    """`jurisdiction_id` (辖区): a branch bureau under the city bureau covering 莱城区 reads back with it, lies in
    莱城区's territory for a token bound there, and a jurisdiction that is no district is a 409 naming R15."""
    from api.auth import issue_token
    from domain.vocabulary import Role

    admin = auth(tokens["admin"])
    unit = {"name": "市局", "kind": "city_bureau", "parent_id": "laiwu", "occurred_at": PAST}
    assert client.post("/v1/units", json={"id": "bureau", **unit}, headers=admin).status_code == 201
    branch = {"id": "b1", "name": "莱城分局", "kind": "branch_bureau", "parent_id": "bureau", "occurred_at": PAST}
    refused = client.post("/v1/units", json={**branch, "jurisdiction_id": "t1"}, headers=admin)
    assert refused.status_code == 409 and "R15" in refused.json()["detail"]
    assert client.post("/v1/units", json={**branch, "jurisdiction_id": "d1"}, headers=admin).status_code == 201
    read = client.get("/v1/units/b1", headers=admin).json()
    assert (read["parent_id"], read["jurisdiction_id"]) == ("bureau", "d1")
    assert client.get("/v1/units/d1", headers=admin).json()["jurisdiction_id"] is None
    d1 = auth(issue_token(ledger, "sup-d1", Role.SUPERVISOR, ["d1"], actor="setup"))
    d2 = auth(issue_token(ledger, "sup-d2", Role.SUPERVISOR, ["d2"], actor="setup"))
    assert client.get("/v1/units/b1", headers=d1).status_code == 200
    assert client.get("/v1/units/b1", headers=d2).status_code == 403
    # The city bureau's own admin registers its branch for 钢城区: the area is not its territory, the parent is.
    bureau_admin = auth(issue_token(ledger, "bureau-admin", Role.ADMIN, ["bureau"], actor="setup"))
    second = {**branch, "id": "b2", "name": "钢城分局", "jurisdiction_id": "d2"}
    assert client.post("/v1/units", json=second, headers=bureau_admin).status_code == 201
    assert (
        client.post("/v1/units", json={**second, "id": "b3", "parent_id": "laiwu"}, headers=bureau_admin).status_code
        == 403
    )


def test_petition_lifecycle_and_case_commands(client: TestClient, tokens: dict[str, str]) -> None:
    clerk, officer = auth(tokens["clerk"]), auth(tokens["officer"])
    r = client.post("/v1/petitions", json=petition_body(id="x1"), headers=clerk)
    assert r.status_code == 201 and r.headers["location"] == "/v1/petitions/x1"
    assert client.post("/v1/petitions/x1/ownership", json={"leader_id": "leader1"}, headers=clerk).status_code == 200
    for party in ("leader", "handling_unit", "petitioner"):
        assert client.post("/v1/petitions/x1/meetings", json={"party": party}, headers=clerk).status_code == 200
    assert client.post("/v1/petitions/x1/reply", json={"summary": "已补偿"}, headers=clerk).status_code == 200
    assert client.post("/v1/petitions/x1/return-visit", json={"satisfied": True}, headers=clerk).status_code == 200
    assert client.post("/v1/petitions/x1/cessation", headers=clerk).status_code == 200
    r = client.post("/v1/petitions/x1/closure", json={"note": "结案"}, headers=clerk)
    assert r.status_code == 200 and r.json()["version"] == 9
    petition = client.get("/v1/petitions/x1", headers=clerk).json()
    assert petition["closed"] and petition["owner_id"] == "leader1" and petition["subject"] == "征地补偿未到位"
    assert petition["meetings"] == ["handling_unit", "leader", "petitioner"]

    r = client.post(
        "/v1/cases",
        json={
            "id": "c1",
            "unit_id": "t1",
            "violation": "illegal_land_use",
            "source": "petition",
            "area_mu": 3,
            "petition_id": "x1",
        },
        headers=officer,
    )
    assert r.status_code == 201, r.text
    assert client.post("/v1/cases/c1/filing", json={"handler_ids": ["officer1"]}, headers=officer).status_code == 200
    assert client.post("/v1/cases/c1/joint-handling", json={"agencies": ["police"]}, headers=officer).status_code == 200
    case = client.get("/v1/cases/c1", headers=officer).json()
    assert case["filed"] and case["agencies"] == ["police"] and case["petition_id"] == "x1" and case["area_mu"] == 3
    # R2's institutions, each as decided: who supervises by when (督办), the joint review's decision (会审), the
    # penalty (处罚), where it was transferred (移送), how it closed.
    steps = [
        ("supervision", {"by_unit_id": "laiwu", "deadline": "2099-06-30T18:00:00+08:00"}),
        ("joint-review", {"decision": "依法拆除并罚款"}),
        ("penalty", {"fine_yuan": 12000.5, "demolition_mu": 1.5}),
        ("transfer", {"to": "judiciary"}),
        ("closure", {"outcome": "已拆除"}),
    ]
    for step, body in steps:
        assert client.post(f"/v1/cases/c1/{step}", json=body, headers=officer).status_code == 200, step
    case = client.get("/v1/cases/c1", headers=officer).json()
    assert case["supervisions"] == [{"by_unit_id": "laiwu", "deadline": "2099-06-30T18:00:00+08:00"}]
    assert case["joint_reviews"] == ["依法拆除并罚款"]
    assert case["penalties"] == [{"fine_yuan": 12000.5, "demolition_mu": 1.5}]
    assert case["transfers"] == ["judiciary"] and case["outcome"] == "已拆除"


def test_a_wrongful_finding_naming_someone_who_did_not_handle_the_case_is_refused(
    client: TestClient, tokens: dict[str, str]
) -> None:
    officer, supervisor = auth(tokens["officer"]), auth(tokens["supervisor"])
    body = {"id": "c1", "unit_id": "t1", "violation": "illegal_land_use", "source": "patrol"}
    assert client.post("/v1/cases", json=body, headers=officer).status_code == 201
    assert client.post("/v1/cases/c1/filing", json={"handler_ids": ["officer1"]}, headers=officer).status_code == 200
    assert client.post("/v1/cases/c1/closure", json={"outcome": "罚款"}, headers=officer).status_code == 200
    finding = {"handler_ids": ["officer1", "officer2"], "reason": "认定事实不清"}
    r = client.post("/v1/cases/c1/wrongful-finding", json=finding, headers=supervisor)
    assert r.status_code == 409 and r.json()["rule"] == "R2" and "officer2" in r.json()["detail"], r.text
    finding["handler_ids"] = ["officer1"]
    assert client.post("/v1/cases/c1/wrongful-finding", json=finding, headers=supervisor).status_code == 200


def test_a_grants_audit_events_never_show_its_secret_nor_its_hash(client: TestClient, tokens: dict[str, str]) -> None:
    made = client.post("/v1/tokens", json={"subject": "clerk-9", "role": "clerk"}, headers=auth(tokens["admin"]))
    grant_id, _dot, secret = made.json()["token"].partition(".")
    r = client.get("/v1/audit/events", params={"kind": "grant", "id": grant_id}, headers=auth(tokens["auditor"]))
    assert r.status_code == 200, r.text
    [granted] = r.json()["items"]
    assert granted["type"] == "AccessGrant.Granted" and granted["data"]["subject"] == "clerk-9"
    # as GET /v1/tokens/{id}: neither the secret nor its hash
    assert "secret" not in r.text and secret not in r.text and hash_secret(secret) not in r.text


def test_if_match_refuses_a_stale_version_with_412(client: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    clerk = auth(tokens["clerk"])
    client.post("/v1/petitions", json=petition_body(id="x1"), headers=clerk)
    ok = client.post("/v1/petitions/x1/escalations", json={"level": "city"}, headers={**clerk, "If-Match": '"1"'})
    assert ok.status_code == 200 and ok.json()["version"] == 2
    before = head(ledger)
    stale = client.post("/v1/petitions/x1/escalations", json={"level": "city"}, headers={**clerk, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert head(ledger) == before
    # "*" matches any current state (RFC 9110 §13.1.1): a change goes ahead; a creation, with none to match, is 412.
    star = client.post("/v1/petitions/x1/escalations", json={"level": "city"}, headers={**clerk, "If-Match": "*"})
    assert star.status_code == 200 and star.json()["version"] == 3
    before = head(ledger)
    for match in ("*", '"1"'):
        created = client.post("/v1/petitions", json=petition_body(id="x2"), headers={**clerk, "If-Match": match})
        assert created.status_code == 412 and "creates a record" in created.json()["detail"], match
    assert head(ledger) == before


def test_idempotency_key_replays_the_first_answer_and_records_nothing_new(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    clerk = auth(tokens["clerk"], **{"Idempotency-Key": "k-1"})
    first = client.post("/v1/petitions", json=petition_body(), headers=clerk)
    before = head(ledger)
    again = client.post("/v1/petitions", json=petition_body(), headers=clerk)
    assert again.status_code == first.status_code == 201
    assert again.json() == first.json() and head(ledger) == before
    # the same key from another client is another command
    other = client.post(
        "/v1/petitions", json=petition_body(), headers=auth(tokens["admin"], **{"Idempotency-Key": "k-1"})
    )
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    # a change command replays with 200 and the same position
    pid = first.json()["id"]
    keyed = auth(tokens["clerk"], **{"Idempotency-Key": "esc-1"})
    a = client.post(f"/v1/petitions/{pid}/escalations", json={"level": "beijing"}, headers=keyed)
    b = client.post(f"/v1/petitions/{pid}/escalations", json={"level": "beijing"}, headers=keyed)
    assert a.status_code == b.status_code == 200 and a.json() == b.json()


def test_an_idempotency_key_repeated_with_another_request_is_refused(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    """A key names one request: its repeat (however its JSON is spaced or ordered) replays the first answer; the key
    with another body is a 422 naming the header, and records nothing, rather than a receipt for a command that
    was never recorded."""
    clerk = auth(tokens["clerk"], **{"Idempotency-Key": "k-2", "Content-Type": "application/json"})
    body = petition_body(id="x9")
    first = client.post("/v1/petitions", json=body, headers=clerk)
    assert first.status_code == 201
    before = head(ledger)
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2).encode()
    same = client.post("/v1/petitions", content=reordered, headers=clerk)
    assert same.status_code == 201 and same.json() == first.json()
    other = client.post("/v1/petitions", json={**body, "subject": "另一件事"}, headers=clerk)
    assert other.status_code == 422 and other.headers["content-type"] == "application/problem+json"
    assert other.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert head(ledger) == before
    pid = first.json()["id"]
    keyed = auth(tokens["clerk"], **{"Idempotency-Key": "esc-2"})
    assert client.post(f"/v1/petitions/{pid}/escalations", json={"level": "beijing"}, headers=keyed).status_code == 200
    moved = client.post(f"/v1/petitions/{pid}/escalations", json={"level": "province"}, headers=keyed)
    assert moved.status_code == 422 and head(ledger) == before + 1


def test_a_token_granted_under_a_key_is_granted_once(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    """A repeated token grant under its Idempotency-Key records no second live token; as the first secret is not
    kept, the repeat is a 409 naming the grant made, not a second secret."""
    admin = auth(tokens["admin"], **{"Idempotency-Key": "tok-1"})
    body = {"subject": "督查乙", "role": "supervisor"}
    first = client.post("/v1/tokens", json=body, headers=admin)
    assert first.status_code == 201 and first.json()["token"].startswith(first.json()["id"])
    before = head(ledger)
    again = client.post("/v1/tokens", json=body, headers=admin)
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    assert first.json()["id"] in again.json()["detail"] and "token" not in again.json()
    assert head(ledger) == before
    unkeyed = client.post("/v1/tokens", json=body, headers=auth(tokens["admin"]))
    assert unkeyed.status_code == 201 and unkeyed.json()["id"] != first.json()["id"]


def test_misconduct_report_answers_its_report_id_even_on_replay(client: TestClient, tokens: dict[str, str]) -> None:
    sup = auth(tokens["supervisor"], **{"Idempotency-Key": "rep-1"})
    body = {"kind": "eating", "reporter": "群众甲", "detail": "吃请"}
    first = client.post("/v1/people/officer1/misconduct-reports", json=body, headers=sup)
    again = client.post("/v1/people/officer1/misconduct-reports", json=body, headers=sup)
    assert first.status_code == again.status_code == 200
    assert first.json()["report_id"] == again.json()["report_id"] == "r1"


def test_twenty_concurrent_clients_lose_and_duplicate_no_event(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    clerk = tokens["clerk"]
    client.post("/v1/petitions", json=petition_body(id="x1"), headers=auth(clerk))
    answers: list[dict[str, int]] = []
    errors: list[str] = []

    def escalate(n: int) -> None:
        own = TestClient(client.app)
        headers = auth(clerk, **{"Idempotency-Key": f"thread-{n}"})
        for _attempt in range(2):  # each client retries once: the retry must not duplicate
            r = own.post("/v1/petitions/x1/escalations", json={"level": "province"}, headers=headers)
            if r.status_code != 200:
                errors.append(r.text)
            else:
                answers.append(r.json())

    threads = [threading.Thread(target=escalate, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    petition = ledger.get(Petition, "x1")
    assert petition.version == 21 and len(petition.escalations) == 20
    assert sorted({a["version"] for a in answers}) == list(range(2, 22))
    assert len(answers) == 40


def test_occurred_at_must_carry_an_offset(client: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    head = ledger.recorder.max_notification_id()
    r = client.post(
        "/v1/petitions", json=petition_body(occurred_at="2024-03-01T09:00:00"), headers=auth(tokens["clerk"])
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][-1] == "occurred_at"
    assert ledger.recorder.max_notification_id() == head  # nothing naive got in: nothing was recorded


def test_revoked_and_expired_tokens_stop_working_at_once(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    admin = auth(tokens["admin"])
    made = client.post("/v1/tokens", json={"subject": "clerk-9", "role": "clerk", "unit_ids": ["d1"]}, headers=admin)
    assert made.status_code == 201 and made.headers["location"] == f"/v1/tokens/{made.json()['id']}"
    token = made.json()["token"]
    assert client.get("/v1/units/t1", headers=auth(token)).status_code == 200
    grant = client.get(made.headers["location"], headers=admin)  # the Location resolves
    assert grant.status_code == 200, grant.text
    assert {k: grant.json()[k] for k in ("subject", "role", "unit_ids", "revoked")} == {
        "subject": "clerk-9",
        "role": "clerk",
        "unit_ids": ["d1"],
        "revoked": False,
    }
    assert token.split(".")[1] not in grant.text and "secret" not in grant.text  # never the secret, nor its hash
    assert client.get(made.headers["location"], headers=auth(tokens["clerk"])).status_code == 403
    assert client.get("/v1/tokens/g-nope", headers=admin).status_code == 404
    assert client.post(f"/v1/tokens/{made.json()['id']}/revocation", headers=admin).status_code == 200
    assert client.get(made.headers["location"], headers=auth(tokens["auditor"])).json()["revoked"] is True
    gone = client.get("/v1/units/t1", headers=auth(token))
    assert gone.status_code == 401 and "revoked" in gone.json()["detail"]
    assert made.json()["token"].split(".")[1] not in str(ledger.events_of("grant", made.json()["id"])[0].__dict__)
