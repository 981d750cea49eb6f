"""Query routes: read your writes through X-Ledger-Position, territory filtering, position and lag."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import projections_link
from api.app import create_app
from api.auth import issue_token
from domain.application import Ledger
from domain.base import BUREAU_TZ
from domain.vocabulary import Channel, PetitionCategory, Post, Role
from projections import engine, queries
from store.ledger import init_store
from tests.api.conftest import PAST, auth, petition_body

JANUARY = datetime(2024, 1, 10, tzinfo=BUREAU_TZ)


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
        # A unit that does not exist is a 404 naming it, not an empty list that reads as "nothing there".
        for path in ("/v1/scores?year=2024&", "/v1/triggers?", "/v1/petitions?", "/v1/officers?"):
            r = client.get(f"{path}unit_id=d9", headers=auth(tokens["auditor"]))
            assert r.status_code == 404 and "d9" in r.json()["detail"], (path, r.text)
            assert client.get(f"{path}unit_id=d1", headers=auth(tokens["auditor"])).status_code == 200
        # A report of a period that has not begun would answer today's standing under a future date: 422.
        for path in ("daily?date=2099-01-01", "weekly?week=2099-W01", "monthly?month=2099-01"):
            for role in ("auditor", "supervisor"):
                r = client.get(f"/v1/reports/{path}", headers=auth(tokens[role]))
                assert r.status_code == 422 and "has not begun" in r.json()["detail"], (path, r.text)
        assert client.get("/v1/reports/daily?date=2099-01-01", headers=d1).status_code == 422


def test_a_moment_in_the_future_is_answered_as_of_now(store_url: str, ledger: Ledger, tokens: dict[str, str]) -> None:
    """What will be recorded by 2099 is not known: asked as of then, a leader's months of 2030 are no missed
    receptions and no trigger opens; the answers are today's, a year not begun pending."""
    ledger.register_person("镇长", "t1", Post.PRINCIPAL_LEADER, person_id="t1-head", actor="setup", occurred_at=JANUARY)
    with TestClient(create_app(store_url, ledger=ledger, run_projections=True)) as client:
        seen = {**auth(tokens["supervisor"]), "X-Ledger-Position": str(ledger.recorder.max_notification_id())}
        far = "2099-01-01T00:00:00+08:00"
        now = client.get("/v1/triggers", headers=seen).json()["items"]
        later = client.get("/v1/triggers", params={"as_of": far, "known_at": far}, headers=seen)
        assert later.status_code == 200 and later.json()["items"] == now
        scores = client.get("/v1/scores", params={"year": 2030, "as_of": far}, headers=seen).json()["items"]
        assert scores and all((r["outcome"], r["deductions"]) == ("pending", []) for r in scores)


def test_a_decision_needs_an_existing_trigger(client: TestClient, tokens: dict[str, str]) -> None:
    r = client.post(
        "/v1/triggers/t-nope/decision", json={"outcome": "warning", "reason": "x"}, headers=auth(tokens["supervisor"])
    )
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_a_decision_cannot_be_dated_before_its_trigger_opened(
    store_url: str, ledger: Ledger, tokens: dict[str, str]
) -> None:
    """R4's trigger on a case major from its report (1 March) opens then: a decision dated in February would read
    as decided before there was anything to decide (409 chronology, nothing recorded); dated after, it is taken."""
    case = {"unit_id": "t1", "violation": "illegal_land_use", "source": "patrol", "area_mu": 20, "occurred_at": PAST}
    with TestClient(create_app(store_url, ledger=ledger, run_projections=True)) as client:
        reported = client.post("/v1/cases", json={**case, "id": "c-big"}, headers=auth(tokens["officer"])).json()
        # The board and lists wait for X-Ledger-Position; a trigger read and a decision read what is applied.
        assert engine.wait_for(store_url, reported["position"], timeout=30)
        opened = client.get("/v1/triggers/R4.case.c-big", headers=auth(tokens["supervisor"]))
        assert opened.status_code == 200, opened.text
        assert opened.json()["unit_id"] == opened.json()["subject"]["unit_id"] == "t1"  # API.md: rows name unit_id
        listed = client.get("/v1/triggers?status=open", headers=auth(tokens["supervisor"])).json()["items"]
        assert listed and all(row["unit_id"] == row["subject"]["unit_id"] for row in listed)
        decision = {"outcome": "warning", "reason": "约谈", "occurred_at": "2024-02-15T09:00:00+08:00"}
        supervisor = auth(tokens["supervisor"])
        early = client.post("/v1/triggers/R4.case.c-big/decision", json=decision, headers=supervisor)
        assert early.status_code == 409 and early.json()["rule"] == "chronology"
        assert ledger.recorder.max_notification_id() == reported["position"]
        later = {**decision, "occurred_at": "2024-03-05T09:00:00+08:00"}
        between = datetime.now(UTC)
        decided = client.post("/v1/triggers/R4.case.c-big/decision", json=later, headers=supervisor)
        assert decided.status_code == 201
        # Read alone, the trigger is as the list shows it at the moment asked: not yet open, open, decided.
        assert engine.wait_for(store_url, decided.json()["position"], timeout=30)

        def read(**moment: str) -> Any:
            return client.get("/v1/triggers/R4.case.c-big", params=moment, headers=supervisor)

        assert read(as_of="2024-02-20T00:00:00+08:00").status_code == 404
        assert read(as_of="2024-03-03T00:00:00+08:00").json()["status"] == "open"
        assert read().json()["status"] == read(as_of="2024-03-06T00:00:00+08:00").json()["status"] == "decided"
        assert read(known_at=between.isoformat()).json()["status"] == "open"  # as known before it was decided
        assert read(as_of="2024-03-03T00:00+08:00x").status_code == 422


def test_quota_lists_page_by_district(store_url: str, ledger: Ledger, tokens: dict[str, str]) -> None:
    """City-wide quota lists can be read a page of districts at a time; next_after names the next page."""
    for district, mu in (("d1", 600), ("d2", 340)):
        ledger.allocate_quota(district, 2024, Decimal(mu), actor="setup", occurred_at=JANUARY)
    with TestClient(create_app(store_url, ledger=ledger, run_projections=True)) as client:
        seen = {"X-Ledger-Position": str(ledger.recorder.max_notification_id())}
        headers = {**auth(tokens["supervisor"]), **seen}
        whole = client.get("/v1/quota", params={"year": 2024}, headers=headers).json()
        assert [row["unit_id"] for row in whole["items"]] == ["d1", "d2"] and whole["next_after"] is None
        first = client.get("/v1/quota", params={"year": 2024, "limit": 1}, headers=headers).json()
        assert [row["unit_id"] for row in first["items"]] == ["d1"] and first["next_after"] == "d1"
        rest = client.get("/v1/quota", params={"year": 2024, "limit": 5, "after": "d1"}, headers=headers).json()
        assert first["items"] + rest["items"] == whole["items"] and rest["next_after"] is None


def _every_page(client: TestClient, path: str, params: dict[str, Any], headers: dict[str, str]) -> list[Any]:
    """The rows of every page of two, each asked after the last one's ``next_after``, until one names none."""
    rows: list[Any] = []
    after = None
    while True:
        cursor = {} if after is None else {"after": after}
        page = client.get(path, params={**params, "limit": 2, **cursor}, headers=headers)
        assert page.status_code == 200, page.text
        rows += page.json()["items"]
        after = page.json()["next_after"]
        if after is None:
            return rows


def test_the_long_lists_page_by_cursor_and_refuse_a_cursor_they_never_gave(
    store_url: str, ledger: Ledger, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """分页: the petition board, triggers, officers and scores are read a page at a time, each page's ``next_after``
    asked for as the next one's ``after``, the pages joining up to the whole list, for a unit-bound token too (its
    pages of triggers are the city's, filtered: one may come back short, or empty, and still name the next; its
    scores, board and officers are its own territory's); a made-up cursor is a 422 naming ``after`` and records
    nothing. A scores page cut short by its deductions names the next too."""
    for i in range(5):
        ledger.register_petition(
            "t1" if i % 2 else "d2", Channel.VISIT, 1, "某", "事", PetitionCategory.OTHER, petition_id=f"x{i}",
            actor="setup", occurred_at=JANUARY,
        )  # fmt: skip
    d2 = issue_token(ledger, "sup-d2", Role.SUPERVISOR, ["d2"], actor="setup")
    with TestClient(create_app(store_url, ledger=ledger, run_projections=True)) as client:
        seen = {"X-Ledger-Position": str(ledger.recorder.max_notification_id())}
        for path, params in (
            ("/v1/petitions", {}),
            ("/v1/triggers", {"as_of": "2024-09-01T00:00:00+08:00"}),
            ("/v1/officers", {}),
            ("/v1/scores", {"year": 2024}),
        ):
            for token, least in ((tokens["supervisor"], 3), (d2, 1)):
                headers = auth(token, **seen)
                whole = client.get(path, params=params, headers=headers).json()
                assert whole["next_after"] is None and len(whole["items"]) >= least, (path, whole)
                assert _every_page(client, path, params, headers) == whole["items"], path
        city = auth(tokens["supervisor"], **seen)
        full = client.get("/v1/petitions", params={"limit": 2}, headers=city).json()
        assert len(full["items"]) == 2 and full["next_after"] is not None
        scores = client.get("/v1/scores", params={"year": 2024}, headers=city).json()["items"]
        monkeypatch.setattr(queries, "DEDUCTIONS_PER_PAGE", 0)  # every row with a deduction on a page of its own
        heavy = next(i for i, row in enumerate(scores[:-1]) if row["deductions"])
        after = {} if heavy == 0 else {"after": scores[heavy - 1]["unit_id"]}
        cut = client.get("/v1/scores", params={"year": 2024, "limit": 5, **after}, headers=city).json()
        assert cut["items"] == scores[heavy : heavy + 1] and cut["next_after"] == scores[heavy]["unit_id"]
        assert _every_page(client, "/v1/scores", {"year": 2024}, city) == scores
        both = issue_token(ledger, "sup-t1-d2", Role.SUPERVISOR, ["t1", "d2"], actor="setup")
        for token, units in ((d2, {"d2"}), (both, {"t1", "d2"})):  # pages of its territory's rows, not the city's
            bound = auth(token, **seen)
            own = client.get("/v1/scores", params={"year": 2024}, headers=bound).json()["items"]
            assert own == [row for row in scores if row["unit_id"] in units]
            first = client.get("/v1/scores", params={"year": 2024, "limit": 1}, headers=bound).json()
            assert first["items"] == own[:1] and first["next_after"] == own[0]["unit_id"]  # full: it names the next
            assert _every_page(client, "/v1/scores", {"year": 2024}, bound) == own
        board = client.get("/v1/petitions", params={"limit": 2}, headers=auth(d2, **seen)).json()["items"]
        assert [row["id"] for row in board] == ["x0", "x2"]  # its own petitions, not the city's first two filtered
        registry = client.get("/v1/officers", params={"limit": 1}, headers=auth(d2, **seen)).json()["items"]
        assert [row["id"] for row in registry] == ["officer2"]  # not t1's people, registered first, filtered out
        head = ledger.recorder.max_notification_id()
        for path in ("/v1/petitions", "/v1/triggers", "/v1/officers"):
            refused = client.get(path, params={"limit": 2, "after": "bm9wZQ"}, headers=city)
            assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
            assert [e["loc"] for e in refused.json()["errors"]] == [["query", "after"]], refused.text
        assert ledger.recorder.max_notification_id() == head


def test_queries_read_the_replica_url_while_commands_go_to_the_primary(
    store_url: str, ledger: Ledger, tokens: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LEDGER_QUERY_DATABASE_URL sends projection queries to a replica (here: another, empty store)."""
    replica = f"sqlite:///{tmp_path / 'replica.db'}"
    init_store(replica)
    monkeypatch.setenv("LEDGER_QUERY_DATABASE_URL", replica)
    with TestClient(create_app(store_url, ledger=ledger, run_projections=False)) as client:
        made = client.post("/v1/petitions", json=petition_body(id="x1"), headers=auth(tokens["clerk"]))
        assert made.status_code == 201, made.text
        assert client.get("/v1/petitions/x1", headers=auth(tokens["clerk"])).status_code == 200
        board = client.get("/v1/petitions", headers=auth(tokens["supervisor"])).json()
        assert board["items"] == [] and board["position"] == 0


@pytest.mark.timeout(30)
def test_a_position_past_the_head_does_not_make_a_query_wait(
    store_url: str, ledger: Ledger, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """X-Ledger-Position beyond anything recorded cannot be a client's own write: it is not waited for
    (with a read-your-writes bound of ten minutes, waiting would trip this test's timeout)."""
    monkeypatch.setattr(projections_link, "READ_YOUR_WRITES_TIMEOUT", 600.0)
    with TestClient(create_app(store_url, ledger=ledger, run_projections=True)) as client:
        headers = auth(tokens["supervisor"], **{"X-Ledger-Position": str(10**12)})
        r = client.get("/v1/petitions", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["position"] == ledger.recorder.max_notification_id()


def test_a_report_in_progress_answers_alike_and_is_filtered_for_a_unit_bound_token(
    store_url: str, ledger: Ledger, tokens: dict[str, str]
) -> None:
    """Today's daily scheduling asked twice over HTTP answers the same but for its stamps (whether the second ask
    reads the kept fold is tests/projections' to check); a token bound to the whole city gets the same answer, a
    district's token its own rows only."""
    now = datetime.now(BUREAU_TZ)
    stamps = {"as_of", "known_at"}
    city = auth(issue_token(ledger, "sup-city", Role.SUPERVISOR, ["laiwu"], actor="setup"))
    d1 = auth(issue_token(ledger, "sup-d1", Role.SUPERVISOR, ["d1"], actor="setup"))

    def unstamped(answer: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in answer.items() if key not in stamps}

    with TestClient(create_app(store_url, ledger=ledger, run_projections=True)) as client:
        clerk = auth(tokens["clerk"])
        body = petition_body(id="x1", skip_level=True, occurred_at=now.isoformat())
        client.post("/v1/petitions", json=body, headers=clerk)
        body = petition_body(id="x2", unit_id="d2", occurred_at=now.isoformat())
        last = client.post("/v1/petitions", json=body, headers=clerk).json()
        seen = {"X-Ledger-Position": str(last["position"])}
        path = f"/v1/reports/daily?date={now.date().isoformat()}"
        first = client.get(path, headers={**auth(tokens["auditor"]), **seen})
        again = client.get(path, headers=auth(tokens["auditor"]))
        assert first.status_code == again.status_code == 200 and again.headers["content-type"] == "application/json"
        assert unstamped(first.json()) == unstamped(again.json())
        assert again.json()["petitions"]["registered"] == 2 and again.json()["next_after"] is None
        assert {"items", "position", "lag", *stamps} <= set(again.json())
        assert unstamped(client.get(path, headers=city).json()) == unstamped(again.json())
        rows = client.get(path, headers=d1).json()["by_unit"]
        assert [row["unit_id"] for row in rows] == ["d1"]
        assert {row["unit_id"] for row in again.json()["by_unit"]} == {"d1", "d2"}


def test_a_unit_bound_tokens_report_totals_count_its_territory_only(
    store_url: str, ledger: Ledger, tokens: dict[str, str]
) -> None:
    """属地管理 for reports: a token bound to a district sees the bulletin's totals (petitions, cases, open
    triggers) summed over its district's units, not the city's; the two districts' totals add up to the city's,
    whether the month's bulletin is read back as kept or folded at an asked moment. No answer carries the per-unit
    tallies."""
    now = datetime.now(BUREAU_TZ)
    month, moment = now.strftime("%Y-%m"), now.isoformat()
    with TestClient(create_app(store_url, ledger=ledger, run_projections=True)) as client:
        clerk, officer = auth(tokens["clerk"]), auth(tokens["officer"])
        for pid, unit in (("x1", "t1"), ("x2", "t1"), ("x3", "d2")):
            assert client.post(
                "/v1/petitions", json=petition_body(id=pid, unit_id=unit, occurred_at=moment), headers=clerk
            ).is_success
        case = {
            "id": "c1",
            "unit_id": "d2",
            "violation": "unlicensed_mining",
            "source": "patrol",
            "occurred_at": moment,
        }
        last = client.post("/v1/cases", json=case, headers=officer).json()
        seen = {"X-Ledger-Position": str(last["position"])}
        bound = {
            unit: auth(issue_token(ledger, f"sup-{unit}", Role.SUPERVISOR, [unit], actor="setup"), **seen)
            for unit in ("d1", "d2", "t1")
        }
        for params in ({"month": month}, {"month": month, "as_of": datetime.now(BUREAU_TZ).isoformat()}):
            whole = client.get("/v1/reports/monthly", params=params, headers={**auth(tokens["supervisor"]), **seen})
            answers = {unit: client.get("/v1/reports/monthly", params=params, headers=h) for unit, h in bound.items()}
            assert whole.status_code == 200 and all(a.status_code == 200 for a in answers.values())
            city, mine = whole.json(), {unit: a.json() for unit, a in answers.items()}
            assert "tallies" not in city and all("tallies" not in a for a in mine.values())
            assert city["petitions"]["registered"] == 3 and city["cases"]["reported"] == 1
            assert mine["d1"]["petitions"]["registered"] == mine["t1"]["petitions"]["registered"] == 2
            assert mine["d1"]["cases"] == {**city["cases"], "reported": 0, "by_resource": {"land": 0, "minerals": 0}}
            assert mine["d2"]["petitions"]["registered"] == 1
            assert mine["d2"]["cases"]["reported"] == mine["d2"]["cases"]["by_resource"]["minerals"] == 1
            for section in ("petitions", "cases"):
                for key, value in city[section].items():
                    if key != "by_resource":
                        assert mine["d1"][section][key] + mine["d2"][section][key] == value, (section, key)
            assert mine["d1"]["open_triggers"] + mine["d2"]["open_triggers"] == city["open_triggers"]


def test_a_kept_report_is_sent_as_stored_and_reads_as_the_answer_model_writes_it(
    store_url: str, ledger: Ledger, tokens: dict[str, str]
) -> None:
    """A past month's bulletin asked for the whole city is its kept JSON sent on after the answer's own fields: the
    same document, keys in the same order, as a token bound to the whole city gets through :class:`QueryAnswer`
    (which decodes and filters it); a month that cannot be read is still a 422 naming its parameter."""
    from api.models import QueryAnswer
    from domain.vocabulary import Channel, PetitionCategory
    from projections.queries import Queries
    from store.ledger import open_ledger

    city = auth(issue_token(ledger, "sup-city", Role.SUPERVISOR, ["laiwu"], actor="setup"))
    march = datetime(2024, 3, 5, 10, tzinfo=BUREAU_TZ)
    then = open_ledger(store_url, clock=lambda: march)  # recorded in March: known at the bulletin's issue date
    try:
        for pid, unit in (("x1", "t1"), ("x2", "d2")):
            then.register_petition(
                unit, Channel.VISIT, 1, "张三", "征地补偿", PetitionCategory.COMPENSATION, petition_id=pid, actor="t"
            )
    finally:
        then.close()
    with TestClient(create_app(store_url, ledger=ledger, run_projections=True)) as client:
        seen = {"X-Ledger-Position": str(ledger.recorder.max_notification_id())}
        params = {"month": "2024-03"}
        sent = client.get("/v1/reports/monthly", params=params, headers={**auth(tokens["auditor"]), **seen})
        modelled = client.get("/v1/reports/monthly", params=params, headers={**city, **seen})
        assert sent.status_code == modelled.status_code == 200
        assert sent.headers["content-type"] == "application/json"
        assert list(sent.json()) == list(modelled.json())
        # each as known now, when it was asked (API.md: known_at defaults to now); otherwise the same document
        moments = [datetime.fromisoformat(r.json()["known_at"]) for r in (sent, modelled)]
        assert moments[0] < moments[1] <= datetime.now(BUREAU_TZ)
        assert {**sent.json(), "known_at": None} == {**modelled.json(), "known_at": None}
        assert sent.json()["petitions"]["registered"] == 2
        q = Queries(store_url)
        try:
            answer = q.monthly("2024-03", known_at=datetime.fromisoformat(sent.json()["known_at"]))
            position = sent.json()["position"]
            expected = QueryAnswer(**{"items": [], **answer, "position": position, "lag": sent.json()["lag"]})
            assert sent.content == expected.model_dump_json().encode()
        finally:
            q.close()
        bad = client.get("/v1/reports/monthly", params={"month": "0000-01"}, headers=auth(tokens["auditor"]))
        assert bad.status_code == 422 and [e["loc"] for e in bad.json()["errors"]] == [["query", "month"]]


def test_the_board_takes_every_flag_the_queries_know_and_refuses_others(
    store_url: str, ledger: Ledger, tokens: dict[str, str]
) -> None:
    """The route's flags are the queries' (重点 and 未包案 among them): one list cannot grow without the other."""
    from typing import get_args

    from api.routers.queries import BoardFlag
    from projections.queries import PETITION_FLAGS

    assert get_args(BoardFlag) == PETITION_FLAGS
    with TestClient(create_app(store_url, ledger=ledger, run_projections=True)) as client:
        clerk, supervisor = auth(tokens["clerk"]), auth(tokens["supervisor"])
        last = client.post("/v1/petitions", json=petition_body(id="k1", skip_level=True), headers=clerk).json()
        seen = {"X-Ledger-Position": str(last["position"])}
        rows = client.get("/v1/petitions", params={"flag": "unowned"}, headers={**supervisor, **seen}).json()
        assert [row["id"] for row in rows["items"]] == ["k1"] and "key" in rows["items"][0]["flags"]
        refused = client.get("/v1/petitions", params={"flag": "owned"}, headers=supervisor)
        assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")


def test_the_case_board_answers_officers_supervisors_and_auditors_within_their_territory(
    client: TestClient, tokens: dict[str, str], ledger: Ledger
) -> None:
    """GET /v1/cases: the case board (案件台账), filtered by status, flag and unit, a unit-bound token's by its
    territory; a clerk has no cases to read (403); an unknown flag is a 422 naming it."""
    officer = auth(tokens["officer"])
    for case_id, unit in (("c1", "t1"), ("c2", "d2")):
        body = {"id": case_id, "unit_id": unit, "violation": "illegal_land_use", "source": "patrol", "area_mu": 12}
        assert client.post("/v1/cases", json={**body, "occurred_at": PAST}, headers=officer).status_code == 201
    supervision = {"by_unit_id": "laiwu", "deadline": "2099-01-01T00:00:00+08:00"}
    assert client.post("/v1/cases/c2/supervision", json=supervision, headers=officer).status_code == 200
    engine.catch_up(client.app.state.url)  # type: ignore[attr-defined]
    board = client.get("/v1/cases", headers=auth(tokens["supervisor"])).json()
    assert [(r["id"], r["unit_id"], r["flags"]) for r in board["items"]] == [
        ("c1", "t1", ["major", "not_investigated"]),  # reported long ago (PAST) and never filed: 有案不查
        ("c2", "d2", ["major", "supervised", "not_investigated"]),
    ]
    assert [r["id"] for r in client.get("/v1/cases?flag=supervised", headers=officer).json()["items"]] == ["c2"]
    assert [r["id"] for r in client.get("/v1/cases?unit_id=d1", headers=officer).json()["items"]] == ["c1"]
    d1 = auth(issue_token(ledger, "sup-d1", Role.SUPERVISOR, ["d1"], actor="setup"))
    assert [r["id"] for r in client.get("/v1/cases", headers=d1).json()["items"]] == ["c1"]
    paged = client.get("/v1/cases?limit=1", headers=officer).json()
    following = client.get(f"/v1/cases?limit=1&after={paged['next_after']}", headers=officer).json()
    assert [r["id"] for r in paged["items"] + following["items"]] == ["c1", "c2"]
    assert client.get("/v1/cases", headers=auth(tokens["clerk"])).status_code == 403
    assert client.get("/v1/cases?flag=lost", headers=officer).status_code == 422
