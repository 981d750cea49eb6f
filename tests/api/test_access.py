"""Authorisation: the role matrix, territory (属地管理), and personal data."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import issue_token
from api.permissions import MATRIX
from audit import history
from domain.application import Ledger
from domain.base import BUREAU_TZ
from domain.vocabulary import DecisionOutcome, MisconductKind, Role
from projections.engine import catch_up
from tests.api.conftest import PAST, auth, petition_body


def test_the_matrix_names_every_route(client: TestClient) -> None:
    documented = {
        (method.upper(), path)
        for path, operations in client.get("/openapi.json").json()["paths"].items()
        for method in operations
        if path.startswith("/v1")
    }
    assert documented == set(MATRIX)


@pytest.mark.parametrize("role", list(Role))
def test_every_role_on_every_route_is_allowed_or_refused_with_403(
    client: TestClient, tokens: dict[str, str], role: Role
) -> None:
    headers = auth(tokens[role.value])
    for (method, template), roles in sorted(MATRIX.items()):
        path = re.sub(r"\{[^}]+\}", "nope", template)
        r = client.request(method, path, json={} if method == "POST" else None, headers=headers)
        if role in roles:
            assert r.status_code not in (401, 403), (role, method, template, r.text)
        else:
            assert r.status_code == 403, (role, method, template, r.text)


def test_a_unit_bound_token_acts_and_sees_only_within_its_territory(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    clerk = auth(tokens["clerk"])
    client.post("/v1/petitions", json=petition_body(id="in-t1"), headers=clerk)
    client.post("/v1/petitions", json=petition_body(id="in-d2", unit_id="d2"), headers=clerk)
    d1_clerk = auth(issue_token(ledger, "clerk-d1", Role.CLERK, ["d1"], actor="setup"))

    assert client.get("/v1/petitions/in-t1", headers=d1_clerk).status_code == 200  # t1 lies under d1
    assert client.get("/v1/petitions/in-d2", headers=d1_clerk).status_code == 403
    assert client.post("/v1/petitions/in-d2/escalations", json={"level": "city"}, headers=d1_clerk).status_code == 403
    assert client.post("/v1/petitions", json=petition_body(unit_id="d2"), headers=d1_clerk).status_code == 403
    assert client.post("/v1/petitions", json=petition_body(unit_id="t1"), headers=d1_clerk).status_code == 201
    assert client.get("/v1/people/officer2", headers=d1_clerk).status_code == 403
    listed = client.get("/v1/units", headers=d1_clerk).json()["items"]
    assert [u["id"] for u in listed] == ["d1", "t1"]
    d1_admin = auth(issue_token(ledger, "admin-d1", Role.ADMIN, ["d1"], actor="setup"))
    amendment = {"effective_from": "2024-01-01T00:00:00+08:00", "params": {"handling_days": 50}}
    assert client.post("/v1/policy/amendments", json=amendment, headers=d1_admin).status_code == 403
    assert client.post("/v1/tokens", json={"subject": "x", "role": "clerk"}, headers=d1_admin).status_code == 403


def test_a_bound_token_names_no_one_outside_its_territory_but_may_name_those_above(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    """属地管理 reaches what a command names, not only the record it acts on: a d1 token cannot make d2's officer a
    handler, own a petition with d2's leader, divert to d2, have d2 supervise or point at d2's petition (403, the
    refusal telling nothing of that person's post or standing, and nothing recorded); the city above d1 may own,
    supervise or receive, as 包案 and 督办 come from above."""
    ledger.register_person("钢城区长", "d2", "principal_leader", person_id="leader2", actor="setup")
    ledger.register_person("市长", "laiwu", "principal_leader", person_id="mayor", actor="setup")
    city_clerk = auth(tokens["clerk"])
    client.post("/v1/petitions", json=petition_body(id="p-d2", unit_id="d2"), headers=city_clerk)
    d1_clerk = auth(issue_token(ledger, "clerk-d1", Role.CLERK, ["d1"], actor="setup"))
    d1_officer = auth(issue_token(ledger, "officer-d1", Role.OFFICER, ["d1"], actor="setup"))
    assert client.post("/v1/petitions", json=petition_body(id="p-t1"), headers=d1_clerk).status_code == 201
    case = {"unit_id": "t1", "violation": "illegal_land_use", "source": "patrol", "id": "c-t1"}
    assert client.post("/v1/cases", json=case, headers=d1_officer).status_code == 201
    head, later = ledger.recorder.max_notification_id(), "2099-01-01T00:00:00+08:00"
    refused = [
        client.post("/v1/cases/c-t1/filing", json={"handler_ids": ["officer1", "officer2"]}, headers=d1_officer),
        client.post("/v1/cases/c-t1/supervision", json={"by_unit_id": "d2", "deadline": later}, headers=d1_officer),
        client.post("/v1/cases", json={**case, "id": "c-2", "petition_id": "p-d2"}, headers=d1_officer),
        client.post("/v1/petitions/p-t1/ownership", json={"leader_id": "leader2"}, headers=d1_clerk),
        client.post("/v1/petitions/p-t1/nail-case", json={"resolver_id": "officer2"}, headers=d1_clerk),
        client.post("/v1/petitions/p-t1/diversion", json={"to_unit_id": "d2"}, headers=d1_clerk),
        client.post("/v1/petitions", json=petition_body(id="p-2", repeat_of="p-d2"), headers=d1_clerk),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused), [r.text for r in refused]
    assert all("outside this token's units" in r.json()["detail"] for r in refused)
    assert ledger.recorder.max_notification_id() == head
    assert client.post("/v1/petitions/p-t1/ownership", json={"leader_id": "mayor"}, headers=d1_clerk).status_code == 200
    supervised = {"by_unit_id": "laiwu", "deadline": later}
    assert client.post("/v1/cases/c-t1/supervision", json=supervised, headers=d1_officer).status_code == 200
    filed = client.post("/v1/cases/c-t1/filing", json={"handler_ids": ["officer1"]}, headers=d1_officer)
    assert filed.status_code == 200, filed.text


def test_no_one_decides_their_own_trigger_or_finding_nor_commends_themselves(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    """回避: a token speaking for officer1 cannot find the report on officer1 unsubstantiated, decide the R7 trigger
    on officer1 or commend officer1 (403, nothing recorded); another supervisor can."""
    supervisor = auth(tokens["supervisor"])
    body = {"kind": "taking", "reporter": "举报人甲", "detail": "收受礼金", "occurred_at": PAST}
    report = client.post("/v1/people/officer1/misconduct-reports", json=body, headers=supervisor).json()["report_id"]
    himself = auth(issue_token(ledger, "officer1", Role.SUPERVISOR, [], actor="setup"))
    head = ledger.recorder.max_notification_id()
    finding = {"report_id": report, "substantiated": False}
    commendation = {"title": "law_enforcement_model"}
    assert client.post("/v1/people/officer1/findings", json=finding, headers=himself).status_code == 403
    assert client.post("/v1/people/officer1/commendations", json=commendation, headers=himself).status_code == 403
    assert ledger.recorder.max_notification_id() == head
    found = {**finding, "substantiated": True, "occurred_at": PAST}
    assert client.post("/v1/people/officer1/findings", json=found, headers=supervisor).status_code == 200
    catch_up(client.app.state.url)  # type: ignore[attr-defined]
    trigger = next(t for t in client.get("/v1/triggers", headers=supervisor).json()["items"] if t["rule"] == "R7")
    decision = {"outcome": "dismissed", "reason": "不属实"}
    mine = client.post(f"/v1/triggers/{trigger['id']}/decision", json=decision, headers=himself)
    assert mine.status_code == 403 and "回避" in mine.json()["detail"]
    # Nor through a token granted from theirs, however far down the chain.
    his_admin = auth(issue_token(ledger, "officer1", Role.ADMIN, [], actor="setup"))
    helper = client.post("/v1/tokens", json={"subject": "helper", "role": "admin"}, headers=his_admin).json()
    below = {"subject": "helper-2", "role": "supervisor"}
    through = auth(client.post("/v1/tokens", json=below, headers=auth(helper["token"])).json()["token"])
    assert client.post(f"/v1/triggers/{trigger['id']}/decision", json=decision, headers=through).status_code == 403
    assert client.post("/v1/people/officer1/commendations", json=commendation, headers=through).status_code == 403
    assert client.post(f"/v1/triggers/{trigger['id']}/decision", json=decision, headers=supervisor).status_code == 201


def test_a_chain_of_grants_ends_where_it_could_no_longer_be_followed(
    client: TestClient, tokens: dict[str, str]
) -> None:
    """Each token granted down a chain has every grantor behind it (回避); a token at the end of a chain of
    MAX_GRANT_CHAIN grants no further (403), so no chain is longer than is followed."""
    from domain.access import MAX_GRANT_CHAIN

    token = tokens["admin"]
    for n in range(MAX_GRANT_CHAIN):
        granted = client.post("/v1/tokens", json={"subject": f"h{n}", "role": "admin"}, headers=auth(token))
        assert granted.status_code == 201, (n, granted.text)
        token = granted.json()["token"]
    refused = client.post("/v1/tokens", json={"subject": "last", "role": "supervisor"}, headers=auth(token))
    assert refused.status_code == 403 and "chain" in refused.json()["detail"]


def test_the_reported_person_never_sees_the_reporter(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    supervisor = auth(tokens["supervisor"])
    body = {"kind": "taking", "reporter": "举报人甲", "detail": "收受礼金", "note": "举报人甲来电"}
    assert client.post("/v1/people/officer1/misconduct-reports", json=body, headers=supervisor).status_code == 200
    seen = client.get("/v1/people/officer1", headers=supervisor).json()["reports"][0]
    assert (seen["reporter"], seen["detail"]) == ("举报人甲", "收受礼金")
    himself = auth(issue_token(ledger, "officer1", Role.SUPERVISOR, [], actor="setup"))
    hidden = client.get("/v1/people/officer1", headers=himself).json()["reports"][0]
    assert hidden["reporter"] is None and hidden["detail"] is None and hidden["kind"] == "taking"
    assert client.get("/v1/people/officer1", headers=auth(tokens["admin"])).json()["reports"][0]["reporter"] is None
    himself_audit = auth(issue_token(ledger, "officer1", Role.AUDITOR, [], actor="setup"))
    events = client.get("/v1/audit/events?kind=person&id=officer1", headers=himself_audit).json()["items"]
    assert all(e["data"].get("reporter") != "举报人甲" for e in events)  # sealed in the audit view
    reported = [e["data"] for e in events if "detail" in e["data"]]
    assert reported and all(data["detail"] is None and data["note"] is None for data in reported)  # withheld
    audited = client.get("/v1/audit/events?kind=person&id=officer1", headers=auth(tokens["auditor"])).json()["items"]
    sealed = [e["data"] for e in audited if "detail" in e["data"]]
    assert [(d["detail"][:10], d["note"][:10]) for d in sealed] == [("sealed:v1:", "sealed:v1:")]  # as the reporter
    # Sealed at rest: the audit bundle (the stored bytes) holds none of it, and an erasure leaves none readable.
    bundle = client.get("/v1/audit/export", headers=auth(tokens["auditor"])).content.decode()
    states = "".join(base64.b64decode(s).decode() for s in re.findall(r'"state":"([A-Za-z0-9+/=]+)"', bundle))
    assert "收受礼金" not in states and "举报人甲" not in states and "officer1" in states
    # Nor through a token they grant, or one granted down the chain from it (回避).
    himself_admin = auth(issue_token(ledger, "officer1", Role.ADMIN, [], actor="setup"))
    helper = client.post("/v1/tokens", json={"subject": "helper", "role": "admin"}, headers=himself_admin).json()
    assert client.get(f"/v1/tokens/{helper['id']}", headers=himself_admin).json()["granted_under"] is not None
    below = {"subject": "helper-2", "role": "supervisor"}
    further = client.post("/v1/tokens", json=below, headers=auth(helper["token"])).json()["token"]
    assert client.get("/v1/people/officer1", headers=auth(further)).json()["reports"][0]["reporter"] is None
    assert client.get("/v1/people/officer1", headers=supervisor).json()["reports"][0]["reporter"] == "举报人甲"


def test_personal_data_is_shown_only_to_those_who_need_it_and_every_read_is_logged(
    client: TestClient, tokens: dict[str, str]
) -> None:
    clerk, admin = auth(tokens["clerk"]), auth(tokens["admin"])
    client.post("/v1/petitions", json=petition_body(id="x1"), headers=clerk)
    assert client.get("/v1/petitions/x1", headers=auth(tokens["officer"])).json()["petitioner"] is None
    r = client.get("/v1/petitions/x1", params={"purpose": "回访联系"}, headers=clerk)
    assert r.json()["petitioner"] == "赵大娘"
    log = client.get("/v1/audit/access-log", params={"kind": "petition", "id": "x1"}, headers=auth(tokens["auditor"]))
    assert log.status_code == 200
    reads = log.json()["items"]
    assert [(x["actor"], x["fields"], x["purpose"]) for x in reads] == [("clerk-1", ["petitioner"], "回访联系")]
    # The read names its token's grant, and the grant who granted it: a token an admin grants reads in its own
    # name, but the admin stands behind it (granted_under).
    assert reads[0]["grant_id"] == tokens["clerk"].rpartition(".")[0]
    minted = client.post("/v1/tokens", json={"subject": "auditor-zhang", "role": "auditor"}, headers=admin).json()
    assert client.get("/v1/petitions/x1", headers=auth(minted["token"])).json()["petitioner"] == "赵大娘"
    log = client.get("/v1/audit/access-log", params={"kind": "petition", "id": "x1"}, headers=auth(tokens["auditor"]))
    last = log.json()["items"][-1]
    assert (last["actor"], last["grant_id"]) == ("auditor-zhang", minted["id"])
    grant = client.get(f"/v1/tokens/{minted['id']}", headers=admin).json()
    assert grant["granted_under"] == tokens["admin"].rpartition(".")[0]
    latest = client.get("/v1/audit/access-log", headers=auth(tokens["auditor"])).json()["items"]
    assert latest[0]["kind"] == "petition" and latest[0]["id"] == "x1"


def test_audit_events_carry_positions_and_chain_hashes(client: TestClient, tokens: dict[str, str]) -> None:
    clerk = auth(tokens["clerk"])
    first = client.post("/v1/petitions", json=petition_body(id="x1"), headers=clerk).json()
    events = client.get("/v1/audit/events?kind=petition&id=x1", headers=auth(tokens["auditor"])).json()["items"]
    assert events[0]["position"] == first["position"] and re.fullmatch(r"[0-9a-f]{64}", events[0]["hash"])
    assert events[0]["type"] == "Petition.Registered" and events[0]["actor"] == "clerk-1"
    late = client.get("/v1/audit/late-entries?min_gap=P7D", headers=auth(tokens["auditor"])).json()["items"]
    assert any(e["record_id"] == "x1" for e in late)  # registered today, occurred in March 2024


def test_the_access_log_before_a_position_past_the_head_answers_at_once(
    client: TestClient, tokens: dict[str, str]
) -> None:
    """`before` may name a position up to 10^12: the scan for reads starts at the log's head, not there (it walked
    back through a million empty windows and never answered)."""
    auditor = auth(tokens["auditor"])
    whole = client.get("/v1/audit/access-log", headers=auditor).json()
    far = client.get("/v1/audit/access-log", params={"before": 10**12}, headers=auditor)
    assert far.status_code == 200 and far.json() == whole


def late_rows(client: TestClient, token: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Every late entry (gap of at least 7 days) the token sees, page by page."""
    rows: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        params = {"min_gap": "P7D", "after": after, "limit": limit}
        page = client.get("/v1/audit/late-entries", params=params, headers=auth(token)).json()
        rows += page["items"]
        after = page["next_after"]
    return rows


def test_late_entries_name_their_unit_and_a_bound_auditor_sees_only_its_territorys(
    client: TestClient, tokens: dict[str, str], ledger: Ledger, store_url: str
) -> None:
    """Every row names its record's unit as it stood once the event happened (null for none); a unit-bound auditor
    sees only rows within its units (属地管理), page by page alike, and those of records of no unit it may read as
    their events are read: the city's policy."""
    clerk = auth(tokens["clerk"])
    client.post("/v1/petitions", json=petition_body(id="x1"), headers=clerk)  # in t1, occurred in March 2024
    client.post(
        "/v1/petitions/x1/extension", json={"days": 10, "occurred_at": "2024-03-05T09:00:00+08:00"}, headers=clerk
    )
    moved = {"to_unit_id": "d2", "occurred_at": "2024-03-06T09:00:00+08:00"}
    client.post("/v1/petitions/x1/diversion", json=moved, headers=clerk)
    # An amendment in force from 2024: the city's policy, back-dated (the defaults, in force from the epoch, are not).
    ledger.amend_policy(datetime(2024, 1, 1, tzinfo=BUREAU_TZ), {"pass_score": 70}, actor="admin")

    rows = late_rows(client, tokens["auditor"])
    owners = {(r["kind"], r["record_id"], r["type"]): r["unit_id"] for r in rows}
    assert owners[("petition", "x1", "Petition.Registered")] == "t1"
    assert owners[("petition", "x1", "Petition.Extended")] == "t1"  # only a creation event carries the record's id
    assert owners[("petition", "x1", "Petition.Diverted")] == "d2"
    assert owners[("unit", "d2", "Unit.Registered")] == "d2"
    assert owners[("person", "officer1", "Person.Registered")] == "t1"
    assert owners[("policy", "bureau", "Policy.Amended")] is None
    assert ("policy", "bureau", "Policy.Established") not in owners

    trail = client.get("/v1/audit/events?kind=petition&id=x1", headers=auth(tokens["auditor"])).json()["items"]
    assert [e["unit_id"] for e in trail] == ["t1", "t1", "d2"]  # each row names its unit as it stood then

    d2_auditor = issue_token(ledger, "auditor-d2", Role.AUDITOR, ["d2"], actor="setup")
    seen = late_rows(client, d2_auditor)
    assert {r["unit_id"] for r in seen} == {"d2", None}
    assert {(r["kind"], r["record_id"]) for r in seen} == {
        ("unit", "d2"),
        ("person", "officer2"),
        ("petition", "x1"),
        ("policy", "bureau"),
    }
    assert [r["position"] for r in seen] == [
        r["position"] for r in rows if r["unit_id"] == "d2" or r["kind"] == "policy"
    ]
    assert late_rows(client, d2_auditor, limit=1) == seen

    # A decision on x1's R18 trigger (its subject now d2), entered months after its date: d2's auditor sees it, as
    # it reads the decision's events; d1's does not.
    ledger.decide_trigger(
        "R18.petition.x1.overdue",
        "R18",
        DecisionOutcome.WARNING,
        "约谈",
        actor="sup",
        occurred_at=datetime(2024, 6, 1, tzinfo=BUREAU_TZ),
    )
    catch_up(store_url)
    decision = ("decision", "R18.petition.x1.overdue")
    assert decision in {(r["kind"], r["record_id"]) for r in late_rows(client, d2_auditor)}
    d1_auditor = issue_token(ledger, "auditor-d1", Role.AUDITOR, ["d1"], actor="setup")
    assert decision not in {(r["kind"], r["record_id"]) for r in late_rows(client, d1_auditor)}


def events_status(client: TestClient, token: str, kind: str, record_id: str) -> int:
    """The status a token gets asking for a record's events (审计记录)."""
    return client.get("/v1/audit/events", params={"kind": kind, "id": record_id}, headers=auth(token)).status_code


def test_a_bound_auditor_reads_the_events_only_of_records_it_may_read(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    """A record's events show what it holds (who acted, what was recorded), so a unit-bound auditor is refused another
    territory's records as GET /v1/cases/{id} refuses them: 403, and 404 for a record never recorded (属地管理)."""
    client.post("/v1/petitions", json=petition_body(id="x1"), headers=auth(tokens["clerk"]))  # in t1, under d1
    ledger.sign_agreement(2024, "laiwu", "d2", actor="setup")
    d1_auditor = issue_token(ledger, "auditor-d1", Role.AUDITOR, ["d1"], actor="setup")
    d2_grant = issue_token(ledger, "clerk-d2", Role.CLERK, ["d2"], actor="setup").partition(".")[0]

    readable = [("petition", "x1"), ("person", "officer1"), ("unit", "t1"), ("policy", "bureau")]
    refused = [("person", "officer2"), ("unit", "d2"), ("unit", "laiwu"), ("agreement", "2024.laiwu.d2")]
    refused += [("grant", d2_grant), ("grant", tokens["clerk"].partition(".")[0])]  # d2's, and a city-wide grant
    assert [events_status(client, d1_auditor, *r) for r in readable] == [200] * len(readable)
    assert [events_status(client, d1_auditor, *r) for r in refused] == [403] * len(refused)
    assert events_status(client, d1_auditor, "petition", "nope") == 404
    everything = readable + refused
    assert [events_status(client, tokens["auditor"], *r) for r in everything] == [200] * len(everything)  # city-wide
    d2_auditor = issue_token(ledger, "auditor-d2", Role.AUDITOR, ["d2"], actor="setup")
    assert events_status(client, d2_auditor, "agreement", "2024.laiwu.d2") == 200  # its responsible party


def test_a_bound_auditor_reads_a_decisions_events_only_within_its_triggers_territory(
    client: TestClient, tokens: dict[str, str], ledger: Ledger, store_url: str
) -> None:
    """A decision (问责决定) is its trigger's, as GET /v1/triggers/{id} decides: within the subject's unit."""
    receipt = ledger.report_misconduct("officer1", MisconductKind.TAKING, "举报人甲", "收受礼金", actor="setup")
    ledger.record_finding("officer1", receipt.extra["report_id"], True, actor="setup")
    trigger_id = f"R7.person.officer1.{receipt.extra['report_id']}"
    ledger.decide_trigger(trigger_id, "R7", DecisionOutcome.WARNING, "先警告", actor="setup")
    catch_up(store_url)
    d1_auditor = issue_token(ledger, "auditor-d1", Role.AUDITOR, ["d1"], actor="setup")
    d2_auditor = issue_token(ledger, "auditor-d2", Role.AUDITOR, ["d2"], actor="setup")
    assert events_status(client, d1_auditor, "decision", trigger_id) == 200  # officer1 serves in t1, under d1
    assert events_status(client, d2_auditor, "decision", trigger_id) == 403


def access_rows(client: TestClient, token: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Every read of personal data the token sees, page by page from the newest, in log order."""
    rows: list[dict[str, Any]] = []
    before: int | None = None
    while True:
        params = {"limit": limit} if before is None else {"limit": limit, "before": before}
        page = client.get("/v1/audit/access-log", params=params, headers=auth(token)).json()
        rows = page["items"] + rows
        before = page["next_before"]
        if before is None:
            return rows


def test_a_bound_auditor_sees_only_reads_of_its_territorys_records_page_by_page(
    client: TestClient, tokens: dict[str, str], ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Who read whose personal data (个人信息查阅记录) names the records read, so a unit-bound auditor sees only reads
    of records it may read (属地管理), and one record's outside its territory is refused as its events are (403). A
    page still fills up to its limit however many other reads lie between (the scan's first window is cut to one
    position per read here, so it has to reach further back)."""
    monkeypatch.setattr(history, "READS_WINDOW_PER_READ", 1)
    clerk = auth(tokens["clerk"])
    for petition_id, unit_id in (("x1", "t1"), ("x2", "d2"), ("x3", "t1")):
        client.post("/v1/petitions", json=petition_body(id=petition_id, unit_id=unit_id), headers=clerk)
    order = ["x1", "x3", "x2", "x2", "x2", "x1", "x2", "x2"]
    for petition_id in order:
        client.get(f"/v1/petitions/{petition_id}", params={"purpose": "回访联系"}, headers=clerk)
    supervisor = auth(tokens["supervisor"])
    reported = {"kind": "taking", "reporter": "举报人甲", "detail": "收受礼金"}
    client.post("/v1/people/officer2/misconduct-reports", json=reported, headers=supervisor)
    client.get("/v1/people/officer2", headers=supervisor)  # a reporter's name read, in d2

    everything = access_rows(client, tokens["auditor"])
    assert [(r["kind"], r["id"]) for r in everything] == [("petition", p) for p in order] + [("person", "officer2")]
    assert access_rows(client, tokens["auditor"], limit=2) == everything
    d1_auditor = issue_token(ledger, "auditor-d1", Role.AUDITOR, ["d1"], actor="setup")
    seen = access_rows(client, d1_auditor)
    assert [r["position"] for r in seen] == [r["position"] for r in everything if r["id"] in ("x1", "x3")]
    assert access_rows(client, d1_auditor, limit=1) == seen == access_rows(client, d1_auditor, limit=2)

    one = {"kind": "petition", "id": "x2"}
    assert client.get("/v1/audit/access-log", params=one, headers=auth(d1_auditor)).status_code == 403
    one = {"kind": "petition", "id": "x1"}
    reads = client.get("/v1/audit/access-log", params=one, headers=auth(d1_auditor)).json()["items"]
    assert [(r["actor"], r["purpose"]) for r in reads] == [("clerk-1", "回访联系")] * 2


def test_a_token_lifetime_is_bounded(ledger: Ledger, client: TestClient, tokens: dict[str, str]) -> None:
    """A ttl past the calendar's end was a 500 (found by the long schemathesis run); now 422, nothing recorded."""
    admin = auth(tokens["admin"])
    head = ledger.recorder.max_notification_id()
    for ttl in ("P999999999D", "P3651D", "PT0S"):
        r = client.post("/v1/tokens", json={"subject": "x", "role": "clerk", "ttl": ttl}, headers=admin)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", (ttl, r.text)
    assert ledger.recorder.max_notification_id() == head
    made = client.post("/v1/tokens", json={"subject": "x", "role": "clerk", "ttl": "P30D"}, headers=admin)
    assert made.status_code == 201 and made.json()["expires_at"] is not None
