"""Worked examples per rule, with exact numbers, on both stores."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.base import BUREAU_TZ
from domain.errors import RuleViolation
from domain.vocabulary import (
    Channel,
    ClueSource,
    Commendation,
    DecisionOutcome,
    EscalationLevel,
    MisconductKind,
    PetitionCategory,
    Post,
    UnitKind,
    Violation,
)
from projections import current, engine, late, paging, queries, reports
from projections.db import Db
from projections.queries import Queries
from tests.projections.conftest import World, alive, at, children


def by_unit(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["unit_id"]: r for r in rows}


def indicators(row: dict[str, Any], *only: str) -> list[tuple[str, int]]:
    return [(d["indicator"], d["points"]) for d in row["deductions"] if not only or d["indicator"] in only]


def major_case(w: World, case_id: str, unit: str, when: str) -> Any:
    return w.do(
        "report_clue",
        unit,
        Violation.ILLEGAL_LAND_USE,
        ClueSource.PATROL,
        case_id=case_id,
        area_mu=Decimal(12),
        when=when,
    )


def petition(w: World, pid: str, unit: str, when: str, **flags: Any) -> Any:
    return w.do(
        "register_petition",
        unit,
        Channel.VISIT,
        1,
        "张三",
        "征地补偿",
        PetitionCategory.COMPENSATION,
        petition_id=pid,
        when=when,
        **flags,
    )


def test_two_major_cases_in_a_township_deduct_twice_from_its_district(world: World) -> None:
    w = world
    w.do("register_person", "口镇镇长", "kz", Post.PRINCIPAL_LEADER, person_id="kz-head", when="2024-01-01")
    first = major_case(w, "c1", "kz", "2024-03-05")
    second = major_case(w, "c2", "kz", "2024-04-05")
    w.do("allocate_quota", "lc", 2024, Decimal(100), when="2024-01-02")
    w.do("approve_land", "kz", Decimal(30), "工业园", when="2024-02-01")
    q = w.queries()

    deductions = by_unit(q.quota_deductions(2024))
    lc = deductions["lc"]
    assert (lc["land_quota_mu"], lc["consolidation_funds_yuan"], lc["model_district_points"]) == (20, 400000, 10)
    assert [i["evidence"] for i in lc["items"]] == [[first.position], [second.position]]
    assert {i["rule"] for i in lc["items"]} == {"R4"} and {i["policy_version"] for i in lc["items"]} == {1}
    assert deductions["gc"]["land_quota_mu"] == 0 and deductions["gc"]["items"] == []

    quota = by_unit(q.quota(2024))["lc"]
    assert (quota["allocated_mu"], quota["used_mu"], quota["deducted_mu"], quota["remaining_mu"]) == (100, 30, 20, 50)
    assert quota["negative"] is False

    opened = {t["id"]: t for t in q.triggers() if t["rule"] == "R4"}
    assert set(opened) == {"R4.case.c1.kz-head", "R4.case.c1", "R4.case.c2.kz-head", "R4.case.c2"}
    assert opened["R4.case.c1.kz-head"]["subject"] == {"unit_id": "kz", "person_id": "kz-head"}
    assert opened["R4.case.c1"]["status"] == "open" and opened["R4.case.c1"]["decision"] is None

    # Territory: the district answers for its townships; the township's score counts both cases.
    as_of = at("2024-06-01")
    scores = by_unit(q.scores(2024, as_of=as_of))
    assert indicators(scores["kz"], "major_case") == [("major_case", 10), ("major_case", 10)]
    assert [d["indicator"] for d in scores["lc"]["deductions"]].count("major_case") == 2
    assert [d["indicator"] for d in scores["gc"]["deductions"]] == []
    assert scores["gc"]["score"] == 100 and scores["gc"]["outcome"] == "pending"
    assert set(by_unit(q.scores(2024, "lc", as_of=as_of))) == {"lc", "kz", "yl"}


def test_a_bureau_office_under_the_city_bureau_answers_in_the_area_it_covers(world: World) -> None:
    """垂直管理 as DOMAIN.md draws it: 市局 → 莱城分局 (covering 莱城区) → 羊里土管所 (covering 羊里镇). A major case at
    the land station is 莱城区's to deduct (R4) and 羊里镇's principal leader's to answer for; it counts in the
    township's, the district's, the branch's and the city bureau's scores alike, from the view and the fold."""
    w = world
    w.do("register_unit", "bureau", "莱芜市国土资源局", UnitKind.CITY_BUREAU, "laiwu", when="2024-01-01")
    w.do(
        "register_unit",
        "lc-branch",
        "莱城分局",
        UnitKind.BRANCH_BUREAU,
        "bureau",
        jurisdiction_id="lc",
        when="2024-01-01",
    )
    w.do(
        "register_unit",
        "yl-station",
        "羊里土管所",
        UnitKind.LAND_STATION,
        "lc-branch",
        jurisdiction_id="yl",
        when="2024-01-01",
    )
    w.do("register_person", "市长", "laiwu", Post.PRINCIPAL_LEADER, person_id="mayor", when="2024-01-01")
    w.do("register_person", "镇长", "yl", Post.PRINCIPAL_LEADER, person_id="yl-head", when="2024-01-01")
    case = major_case(w, "c1", "yl-station", "2024-03-01")
    for q in (w.queries(), w.folds()):
        deductions = by_unit(q.quota_deductions(2024))
        assert [i["case_id"] for i in deductions["lc"]["items"]] == ["c1"] and "laiwu" not in deductions
        assert by_unit(q.quota(2024))["lc"]["deducted_mu"] == 10
        leaders = {t["subject"].get("person_id") for t in q.triggers() if t["rule"] == "R4"}
        assert leaders == {None, "yl-head"}  # the case's own trigger, and the township's leader: not the mayor
        scores = by_unit(q.scores(2024, as_of=at("2024-06-01")))
        for unit in ("yl-station", "yl", "lc", "lc-branch", "bureau", "laiwu"):
            assert [d["evidence"] for d in scores[unit]["deductions"] if d["indicator"] == "major_case"] == [
                [case.position]
            ], unit
        assert indicators(scores["gc"]) == [] and indicators(scores["kz"]) == []
        assert set(by_unit(q.scores(2024, "lc-branch"))) == {"lc-branch", "yl-station"}
    k = w.queries().known()
    assert k.ancestors("yl-station") == ["yl-station", "yl", "lc", "laiwu", "lc-branch", "bureau"]
    assert k.root("yl-station") == k.root("lc-branch") == "laiwu"  # the city, not the bureau its chain ends with


def test_r4_holds_the_leaders_in_post_when_the_case_became_major_whatever_order_they_were_entered(
    world: World,
) -> None:
    """R4 names the principal leaders (主要领导) in post at the business time a case became major: one whose
    registration was entered late (补录) but dated before it is held; one who took post after it is not, though
    the case was entered after him."""
    w = world
    major_case(w, "c1", "kz", "2024-03-01")
    w.clock.set("2024-03-10")
    w.do("register_person", "口镇老镇长", "kz", Post.PRINCIPAL_LEADER, person_id="kz-old", when="2024-01-05")
    w.do("register_person", "口镇新镇长", "kz", Post.PRINCIPAL_LEADER, person_id="kz-new", when="2024-04-01")
    w.clock.set("2024-04-02")
    major_case(w, "c2", "kz", "2024-02-01")

    expected = {"R4.case.c1.kz-old", "R4.case.c2.kz-old"}
    for q in (w.queries(), w.folds()):
        leaders = {t["id"] for t in q.triggers() if t["rule"] == "R4" and t["subject"].get("person_id")}
        assert leaders == expected
        later = {t["id"] for t in q.triggers(as_of=at("2024-03-05")) if t["subject"].get("person_id")}
        assert later == expected  # as known now: c2 is dated 1 February
        then = q.triggers(as_of=at("2024-03-05"), known_at=at("2024-03-05"))
        assert not [t for t in then if t["subject"].get("person_id")]  # kz-old was not yet entered


def test_a_petitions_triggers_and_deductions_name_the_events_their_deadline_owner_and_unit_rest_on(
    world: World,
) -> None:
    """R20: an overdue petition's R18 trigger (超期) names its registration, the diversion that placed it (分流), the
    ownership that names its leader (包案) and the extension that set its deadline (延期); an escalation's R14
    triggers name the ownership and the diversion too, and the score's deductions the events that place them."""
    w = world
    w.do("register_person", "羊里镇长", "yl", Post.PRINCIPAL_LEADER, person_id="yl-head", when="2024-01-01")
    registered = petition(w, "p1", "kz", "2024-02-01").position
    diverted = w.do("divert_petition", "p1", "yl", when="2024-02-03").position
    owned = w.do("take_ownership", "p1", "yl-head", when="2024-02-05").position
    extended = w.do("extend_petition", "p1", 30, when="2024-02-10").position
    escalated = w.do("escalate", "p1", EscalationLevel.PROVINCE, False, when="2024-03-01").position

    for q in (w.queries(), w.folds()):
        found = {t["id"]: t for t in q.triggers(as_of=at("2024-06-01")) if t["rule"] in ("R14", "R18")}
        overdue = found.pop("R18.petition.p1.overdue")
        assert overdue["subject"] == {"unit_id": "yl", "person_id": "yl-head"}
        assert overdue["evidence"] == [registered, diverted, owned, extended]
        assert len(found) == 2  # R14's leader and unit
        assert [t["evidence"] for t in found.values()] == [[registered, diverted, owned, escalated]] * 2
        deductions = {
            d["indicator"]: d["evidence"] for d in by_unit(q.scores(2024, as_of=at("2024-06-01")))["yl"]["deductions"]
        }
        assert deductions["overdue_petition"] == [registered, diverted, extended]
        assert deductions["escalation"] == [registered, diverted, escalated]


def test_quota_goes_negative_and_is_flagged(world: World) -> None:
    w = world
    w.do("allocate_quota", "gc", 2024, Decimal(15), when="2024-01-02")
    w.do("approve_land", "ys", Decimal("7.5"), "道路", when="2024-02-01")
    major_case(w, "c1", "ys", "2024-03-01")
    row = by_unit(w.queries().quota(2024))["gc"]
    assert (row["allocated_mu"], row["used_mu"], row["deducted_mu"], row["remaining_mu"]) == (15, 7.5, 10, -2.5)
    assert row["negative"] is True


def test_the_quota_ledger_as_of_a_past_moment_is_the_views_rows_cut_there(world: World) -> None:
    """R19/R4 as of a past moment (as known now) read the view's rows cut at that moment: what was allocated, used
    and deducted by then, the city's own row only once it was given quota, each case at the amounts of the policy
    in force when it became major; as the fold of the facts says."""
    w = world
    w.do("allocate_quota", "gc", 2024, Decimal(20), when="2024-01-02")
    w.do("approve_land", "ys", Decimal(5), "道路", when="2024-02-01")
    major_case(w, "c1", "yl", "2024-03-01")
    w.do("allocate_quota", "laiwu", 2024, Decimal("8.5"), when="2024-04-01")
    w.do("amend_policy", at("2024-07-01"), {"quota_deduction_mu": 15}, when="2024-06-20")
    major_case(w, "c2", "yl", "2024-09-01")
    q, fold = w.queries(), w.folds()

    def ledger(as_of: datetime) -> dict[str, tuple[Any, ...]]:
        assert q._dated(q.known(as_of, None), as_of, None), "the view's rows answer"
        rows = q.quota(2024, as_of=as_of)
        assert rows == fold.quota(2024, as_of=as_of)
        assert q.quota_deductions(2024, as_of=as_of) == fold.quota_deductions(2024, as_of=as_of)
        assert q.quota(2024, as_of=as_of, limit=1, after="gc") == fold.quota(2024, as_of=as_of, limit=1, after="gc")
        return {r["unit_id"]: (r["allocated_mu"], r["used_mu"], r["deducted_mu"], r["remaining_mu"]) for r in rows}

    assert ledger(at("2024-02-15")) == {"gc": (20, 5, 0, 15), "lc": (0, 0, 0, 0)}
    assert ledger(at("2024-05-01")) == {"gc": (20, 5, 0, 15), "laiwu": (8.5, 0, 0, 8.5), "lc": (0, 0, 10, -10)}
    assert ledger(at("2024-12-31")) == {"gc": (20, 5, 0, 15), "laiwu": (8.5, 0, 0, 8.5), "lc": (0, 0, 25, -25)}
    deductions = by_unit(q.quota_deductions(2024, as_of=at("2024-12-31")))["lc"]
    assert [(i["case_id"], i["land_quota_mu"], i["policy_version"]) for i in deductions["items"]] == [
        ("c1", 10, 1),
        ("c2", 15, 2),
    ]
    # R20: the ledger's deducted mu names the versions that set it, as of each moment.
    assert by_unit(q.quota(2024, as_of=at("2024-05-01")))["lc"]["policy_versions"] == [1]
    assert by_unit(q.quota(2024))["lc"]["policy_versions"] == [1, 2]
    assert by_unit(q.quota(2024))["gc"]["policy_versions"] == []
    assert deductions["land_quota_mu"] == 25
    assert "_running" not in q.quota(2024)[0] and "_at" not in q.quota_deductions(2024)[0]  # about now: as answered


def test_a_deduction_from_the_city_shows_on_its_quota_ledger(world: World) -> None:
    """R4 takes quota from the city for a major case at a unit under no district (the city bureau, 市局): the R19
    ledger carries the city's row from that moment, though it was given no quota, so the two answers agree."""
    w = world
    w.do("register_unit", "laiwu-bureau", "莱芜市国土资源局", UnitKind.CITY_BUREAU, "laiwu", when="2024-01-01")
    w.do("allocate_quota", "lc", 2024, Decimal(300), when="2024-01-10")
    major_case(w, "c1", "laiwu-bureau", "2024-03-01")
    q, fold = w.queries(), w.folds()
    for answer in (q, fold):
        rows = by_unit(answer.quota(2024))
        assert (rows["laiwu"]["deducted_mu"], rows["laiwu"]["remaining_mu"], rows["laiwu"]["negative"]) == (
            10,
            -10,
            True,
        )
        assert rows["laiwu"]["policy_versions"] == [1]
        assert sum(r["deducted_mu"] for r in rows.values()) == sum(
            r["land_quota_mu"] for r in answer.quota_deductions(2024)
        )
        assert "laiwu" not in by_unit(answer.quota(2024, as_of=at("2024-02-01")))  # no figures yet: no row
        for asked in ({}, {"as_of": at("2024-06-01")}, {"known_at": at("2024-06-01")}):
            whole, pages, after = answer.quota(2024, **asked), [], None
            while page := answer.quota(2024, limit=1, after=after, **asked):
                pages += page
                after = page[-1]["unit_id"]
            assert pages == whole and "laiwu" in by_unit(pages), asked


def test_a_mid_year_amendment_changes_points_after_its_effective_date_only(world: World) -> None:
    w = world
    major_case(w, "c1", "yl", "2024-03-01")
    w.do("amend_policy", at("2024-07-01"), {"points_major_case": 20, "quota_deduction_mu": 15}, when="2024-06-20")
    major_case(w, "c2", "yl", "2024-09-01")
    q = w.queries()
    row = by_unit(q.scores(2024, as_of=at("2024-10-01")))["yl"]
    assert [(d["indicator"], d["points"], d["policy_version"]) for d in row["deductions"]] == [
        ("major_case", 10, 1),
        ("case_not_investigated", 5, 1),  # the clue of 2024-03-01 was never filed (有案不查)
        ("major_case", 20, 2),
    ]
    assert row["score"] == 65
    assert [i["land_quota_mu"] for i in by_unit(q.quota_deductions(2024))["lc"]["items"]] == [10, 15]


def test_a_deadline_missed_after_an_amendment_is_priced_by_the_policy_that_set_it(world: World) -> None:
    """有案不查 and an overdue petition (超期) are caused by the clue and the registration whose policy set their
    deadlines: an amendment taking effect before the deadline falls changes neither their points nor their version,
    and each deduction names the version its trigger names (R20)."""
    w = world
    w.do("report_clue", "yl", Violation.ILLEGAL_LAND_USE, ClueSource.PATROL, case_id="c1", when="2024-06-20")
    petition(w, "p1", "yl", "2024-06-01")
    w.do(
        "amend_policy",
        at("2024-07-01"),
        {"points_case_not_investigated": 9, "points_overdue_petition": 7},
        when="2024-06-25",
    )
    for q in (w.queries(), w.folds()):
        row = by_unit(q.scores(2024, as_of=at("2024-10-01")))["yl"]
        priced = {d["indicator"]: (d["points"], d["policy_version"]) for d in row["deductions"]}
        assert priced == {"case_not_investigated": (5, 1), "overdue_petition": (2, 1)}
        versions = {t["id"]: t["policy_version"] for t in q.triggers(as_of=at("2024-10-01"))}
        assert versions["R7.case.c1.unfiled"] == versions["R18.petition.p1.overdue"] == 1


def test_an_amendment_recorded_late_was_not_known_before_it_was_recorded(world: World) -> None:
    w = world
    major_case(w, "c1", "yl", "2024-03-01")
    w.clock.set("2024-08-01")
    w.do("amend_policy", at("2024-01-01"), {"points_major_case": 30}, when="2024-08-01")
    q = w.queries()
    before = by_unit(q.scores(2024, as_of=at("2024-04-01"), known_at=at("2024-07-01")))["yl"]
    after = by_unit(q.scores(2024, as_of=at("2024-04-01"), known_at=at("2024-08-02")))["yl"]
    assert indicators(before, "major_case") == [("major_case", 10)]
    assert indicators(after, "major_case") == [("major_case", 30)]


def test_a_late_recorded_event_changes_what_is_known_now_not_the_bulletin(world: World) -> None:
    w = world
    petition(w, "x1", "kz", "2024-05-03", skip_level=True)
    w.clock.set("2024-06-10")
    late = petition(w, "x2", "kz", "2024-05-20", skip_level=True)
    q = w.queries()
    issued = q.monthly("2024-05", known_at=at("2024-06-01"))  # the bulletin as issued: known at the month's end
    assert issued["known_at"] == "2024-06-01T00:00:00+08:00"
    assert issued["petitions"]["registered"] == 1
    assert [d["record_id"] for d in issued["deductions"]] == ["x1"]
    now = q.monthly("2024-05", known_at=at("2024-07-01"))
    assert now["petitions"]["registered"] == 2
    assert late.position in {p for d in now["deductions"] for p in d["evidence"]}
    assert q.daily("2024-05-20", known_at=at("2024-05-21"))["petitions"]["registered"] == 0
    assert q.daily("2024-05-20", known_at=at("2024-07-01"))["petitions"]["registered"] == 1
    assert q.weekly("2024-W21", known_at=at("2024-07-01"))["petitions"]["registered"] == 1
    # Asked with no moment, a report is as of its period's end and as known now (API.md's default for queries).
    asked = datetime.now(BUREAU_TZ)
    by_default = q.monthly("2024-05")
    assert asked <= datetime.fromisoformat(by_default["known_at"]) <= datetime.now(BUREAU_TZ)
    assert by_default["as_of"] == "2024-06-01T00:00:00+08:00"
    assert {**by_default, "known_at": None} == {**now, "known_at": None}
    assert q.daily("2024-05-20")["petitions"]["registered"] == 1


def test_a_report_as_known_later_reads_the_issued_one_until_a_late_entry_changes_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R13 as known now (补录 after the bulletin): asked as known at a later moment, May's bulletin is the one issued,
    its ``known_at`` restated, read back without folding the city, while nothing entered since happened in May;
    a petition of May entered in July is then counted as known after its entry, not before; a fact of June changes
    nothing."""
    w = world
    petition(w, "x1", "kz", "2024-05-03")
    w.clock.set("2024-06-10")
    petition(w, "x2", "kz", "2024-06-05")  # after May: outside what a fold as of May's end reads
    q = w.queries()
    issued = q.monthly("2024-05", known_at=at("2024-06-01"))
    folds: list[str] = []
    fold = reports.report
    monkeypatch.setattr(reports, "report", lambda k, kind, label: folds.append(label) or fold(k, kind, label))
    later = q.monthly("2024-05", known_at=at("2024-06-20"))
    assert folds == [] and later == {**issued, "known_at": "2024-06-20T00:00:00+08:00"}
    q.close()

    w.clock.set("2024-07-02")
    petition(w, "x3", "yl", "2024-05-28")  # entered late (补录): May's as known from July 2 on
    q = w.queries()
    assert q.monthly("2024-05", known_at=at("2024-06-20")) == later and folds == []
    now = q.monthly("2024-05", known_at=at("2024-07-03"))
    assert folds == ["2024-05"] and now["petitions"]["registered"] == 2
    assert now == reports.build(q, "monthly", "2024-05", None, at("2024-07-03"))
    # That fold is kept: asked as known later still, it is read back while nothing more is entered.
    folds.clear()
    assert q.monthly("2024-05", known_at=at("2024-07-20")) == {**now, "known_at": "2024-07-20T00:00:00+08:00"}
    assert q.monthly("2024-05", known_at=at("2024-06-20")) == later and folds == []
    assert q.monthly("2024-05", known_at=at("2024-06-01")) == issued  # the bulletin as issued never changes
    q.close()

    w.clock.set("2024-07-25")
    petition(w, "x4", "yl", "2024-05-30")  # entered later still
    q = w.queries()
    again = q.monthly("2024-05", known_at=at("2024-07-26"))
    assert folds == ["2024-05"] and again["petitions"]["registered"] == 3
    # Asked as known before that entry: folded, and not kept in place of the later fold.
    assert q.monthly("2024-05", known_at=at("2024-07-20"))["petitions"]["registered"] == 2
    assert q.monthly("2024-05", known_at=at("2024-08-01"))["petitions"]["registered"] == 3
    assert folds == ["2024-05", "2024-05"]
    q.close()

    # Recorded before the fold kept (as known at 07-26; the asks since read it back), reaching the store only now.
    w.clock.set("2024-07-25T12:00")
    petition(w, "x5", "kz", "2024-05-31")
    q = w.queries()
    assert q.monthly("2024-05", known_at=at("2024-08-02"))["petitions"]["registered"] == 4
    assert folds == ["2024-05", "2024-05", "2024-05"]
    q.close()


def test_an_idle_issuer_keeps_the_periods_just_ended_as_known_now(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """补录 after the bulletin's issue: an idle issuer's step folds the periods just ended as known now, one a step,
    so a supervisor's default ask (as known now) reads it back rather than folding the city; with nothing entered
    late, a step folds nothing."""
    w = world
    petition(w, "x1", "kz", "2024-05-03")
    w.clock.set("2024-06-10T08:00")
    petition(w, "x2", "kz", "2024-05-20")  # entered late into May
    q = w.queries()
    reports.issued(q, "monthly", "2024-05")  # as known at June 1: x1 alone
    folds: list[str] = []
    fold = reports.report
    monkeypatch.setattr(reports, "report", lambda k, kind, label: folds.append(label) or fold(k, kind, label))
    now = at("2024-06-10T12:00")
    for _ in reports.last_ended(now):
        reports.keep_known_now(q, now)
    assert "2024-05" in folds
    folds.clear()
    checks: list[int] = []
    entered = late.entered_between
    monkeypatch.setattr(late, "entered_between", lambda *a: checks.append(a[2]) or entered(*a))
    reports.keep_known_now(q, now)  # each stands now: nothing more to fold
    assert folds == [] and len(checks) == 3
    reports.keep_known_now(q, now + timedelta(seconds=1))  # idle a second later: nothing applied, nothing checked
    assert folds == [] and len(checks) == 3
    # A minute on, checked again all the same (a writer whose clock ran ahead may have recorded a fact past `now`).
    reports.keep_known_now(q, now + timedelta(seconds=61))
    assert folds == [] and len(checks) == 6
    # The supervisor asks the next morning (the world's clock: its store was made today, in the test's real time).
    monkeypatch.setattr(reports, "utc_now", lambda: at("2024-06-11T09:00"))
    answer = q.monthly("2024-05")
    assert folds == [] and answer["petitions"]["registered"] == 2
    assert answer["known_at"] == "2024-06-11T09:00:00+08:00"
    q.close()

    w.clock.set("2024-06-10T12:00:01")
    petition(w, "x3", "kz", "2024-05-25")  # entered late again: the next idle check finds it
    q = w.queries()
    reports.keep_known_now(q, now + timedelta(seconds=2))
    assert folds == ["2024-06-09"] and len(checks) > 3  # the day just ended first: x3 stood open at its end
    q.close()


def test_an_issued_report_is_kept_and_folded_again_when_a_fact_known_by_its_issue_date_arrives(
    world: World,
) -> None:
    """已发布的报告: a bulletin is folded once and read back; a fact recorded by its issue date that reaches the
    projections afterwards (here, a history loaded with its own recording times) makes it fold again."""
    from projections.catalog import ISSUED

    w, may_issued = world, at("2024-06-01")  # the bulletin as issued: as known at the month's end
    petition(w, "x1", "kz", "2024-05-03", skip_level=True)
    w.clock.set("2024-06-10")
    q = w.queries()
    first = q.monthly("2024-05", known_at=may_issued)
    assert first["petitions"]["registered"] == 1
    kept = q.db.query(f"SELECT kind, label FROM {ISSUED}")
    assert kept == [("monthly", "2024-05")]
    assert q.monthly("2024-05", known_at=may_issued) == first  # read back
    assert q.monthly("2024-05", known_at=may_issued) == q.monthly("2024-05", as_of=may_issued, known_at=may_issued)
    q.close()

    w.clock.set("2024-05-25")  # recorded before the issue date, reaching the store only now
    petition(w, "x2", "kz", "2024-05-20", skip_level=True)
    w.clock.set("2024-06-20")
    petition(w, "x3", "kz", "2024-05-21", skip_level=True)  # recorded after it: never in the bulletin
    q = w.queries()
    again = q.monthly("2024-05", known_at=may_issued)
    assert again["petitions"]["registered"] == 2
    assert again == q.monthly("2024-05", as_of=at("2024-06-01"), known_at=at("2024-06-01"))
    assert q.monthly("2024-05", known_at=may_issued) == again
    q.close()

    engine.rebuild(w.url)  # the kept reports were built from the tables a rebuild drops
    q = Queries(w.url)
    assert q.db.query(f"SELECT kind, label FROM {ISSUED}") == []
    assert q.monthly("2024-05", known_at=may_issued) == again
    q.close()


def test_a_report_of_a_period_in_progress_is_read_back_until_a_fact_or_a_deadline_moves_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """进行中的报告: today's daily scheduling is folded once as of now and kept; the next asks read it back, stamped
    with their own moment, until a fact is applied (a petition registered) or a deadline passes with the clock
    alone (x1 falls overdue); each answer is the fold as of its moment."""
    from projections.catalog import RUNNING

    w = world
    petition(w, "x1", "kz", "2024-05-02T15:00")
    q = w.queries()
    deadline = datetime.fromisoformat(q.petitions()[0]["deadline"])
    clock = {"now": deadline - timedelta(hours=2)}
    monkeypatch.setattr(reports, "utc_now", lambda: clock["now"])
    folds = []
    fold = reports.fold_running
    monkeypatch.setattr(reports, "fold_running", lambda *args: folds.append(args[1]) or fold(*args))
    today = deadline.date().isoformat()

    def ask() -> dict[str, Any]:
        answer = q.daily(today)
        assert answer == reports.build(q, "daily", today, clock["now"], clock["now"])
        assert answer["as_of"] == answer["known_at"] == clock["now"].isoformat()
        return answer

    first = ask()
    assert len(folds) == 1  # and this week's and this month's reports kept from the same fold:
    assert set(q.db.query(f"SELECT kind, label FROM {RUNNING}")) == set(reports.in_progress(clock["now"]))
    assert q.monthly(today[:7]) == reports.build(q, "monthly", today[:7], clock["now"], clock["now"])
    assert len(folds) == 1
    clock["now"] += timedelta(minutes=90)  # still before the deadline
    assert {**ask(), "as_of": None, "known_at": None} == {**first, "as_of": None, "known_at": None}
    assert len(folds) == 1  # read back
    w.clock.set(clock["now"].isoformat())
    petition(w, "x2", "yl", clock["now"].isoformat())
    w.queries().close()
    assert ask()["petitions"]["registered"] == 1 and len(folds) == 2
    ask()
    assert len(folds) == 2
    clock["now"] = deadline + timedelta(minutes=1)  # no new fact: the clock passes x1's deadline
    assert ask()["petitions"]["overdue_open"] == 1 and len(folds) == 3
    q.close()


class HeldFolds:
    """Folds held until three askers have all asked: which asker threads folded (一次折叠 tests)."""

    def __init__(self) -> None:
        self.folds: list[str] = []
        self.underway, self.release = threading.Event(), threading.Event()

    def counted(self, fold: Any) -> Any:
        """``fold``, noting the asker that runs it and holding it until all three have asked."""

        def held(*args: Any) -> Any:
            self.folds.append(threading.current_thread().name)
            self.underway.set()
            self.release.wait(10)
            return fold(*args)

        return held

    def ask_at_once(self, question: Any, w: World) -> dict[str, dict[str, Any]]:
        """Each asker's answer to ``question`` (of a fresh ``Queries``): the first asks, and once its fold is underway
        the other two ask; the fold is released once they had time to reach a fold of their own, if they could."""
        answers: dict[str, dict[str, Any]] = {}

        def ask(name: str) -> None:
            q = w.queries()
            try:
                answers[name] = question(q)
            finally:
                q.close()

        askers = [threading.Thread(target=ask, args=(f"asker-{i}",), name=f"asker-{i}") for i in range(3)]
        askers[0].start()
        assert self.underway.wait(10)
        for asker in askers[1:]:
            asker.start()
        deadline = time.monotonic() + 0.5
        while len(self.folds) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.release.set()
        for asker in askers:
            asker.join(10)
        return answers


@pytest.mark.parametrize("asked", ["daily", "monthly"])
def test_concurrent_asks_that_need_a_fold_fold_once_and_answer_alike(
    world: World, monkeypatch: pytest.MonkeyPatch, asked: str
) -> None:
    """一次折叠: three supervisors ask at once for a report not kept — today's, in progress, or last month's
    bulletin before it is issued. The first ask folds the city; the others wait for that fold and read it back,
    rather than each folding for the same answer — even those that read the clock before the first ask did (the
    fold they wait for is as of a moment after theirs)."""
    w = world
    petition(w, "x1", "kz", "2024-05-02T15:00")
    now = at("2024-06-03T10:00")
    calls: dict[str, int] = defaultdict(int)

    def clock() -> datetime:  # the first ask's moment is 1 ms after the others' first look at the clock
        name = threading.current_thread().name
        calls[name] += 1
        if name.startswith("asker-") and name != "asker-0":
            return now if calls[name] == 1 else now + timedelta(milliseconds=2)
        return now + timedelta(milliseconds=1)

    monkeypatch.setattr(reports, "utc_now", clock)
    label = "2024-06-03" if asked == "daily" else "2024-05"
    held = HeldFolds()
    build = reports.build
    monkeypatch.setattr(reports, "fold_running", held.counted(reports.fold_running))
    monkeypatch.setattr(reports, "folded", held.counted(reports.folded))
    answers = held.ask_at_once(lambda q: getattr(q, asked)(label), w)
    assert held.folds == ["asker-0"]

    assert len(answers) == 3 and all(unstamped(a) == unstamped(answers["asker-0"]) for a in answers.values())
    q = w.queries()
    # the fold as of now, or of the issue date (a bulletin as known now is the one issued, nothing entered since)
    assert unstamped(answers["asker-0"]) == unstamped(build(q, asked, label, None, None))
    q.close()


def unstamped(answer: dict[str, Any]) -> dict[str, Any]:
    """A report without the moments it answers about (each answer says its own)."""
    return {key: value for key, value in answer.items() if key not in ("as_of", "known_at")}


def test_concurrent_asks_of_a_report_as_known_later_fold_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """一次折叠, as known later: three auditors ask at once for May's bulletin as known at a moment after a late entry
    (补录), which the issued bulletin does not answer; one folds the city and keeps it, the others read it back."""
    w = world
    petition(w, "x1", "kz", "2024-05-02")
    w.clock.set("2024-06-10")
    petition(w, "x2", "kz", "2024-05-20")  # entered after the issue date
    held = HeldFolds()
    monkeypatch.setattr(reports, "folded", held.counted(reports.folded))
    answers = held.ask_at_once(lambda q: q.monthly("2024-05", known_at=at("2024-06-20")), w)
    assert held.folds == ["asker-0"]
    assert len(answers) == 3 and all(a == answers["asker-0"] for a in answers.values())
    assert answers["asker-0"]["petitions"]["registered"] == 2


@pytest.mark.parametrize("asked", ["daily", "monthly"])
def test_an_ask_waits_for_another_processs_fold_of_the_same_report_unless_that_fold_is_older_than_its_facts(
    world: World, monkeypatch: pytest.MonkeyPatch, asked: str
) -> None:
    """一次折叠 across processes: while another server process (or the issuer) folds a report — today's, in
    progress, or last month's bulletin not yet issued — an ask of it in this process waits for that fold and reads
    back what it kept, rather than folding the city a second time on the same cores. A fold of the periods in
    progress begun before a fact this ask has seen would not be its answer: then it folds at once."""
    from projections import lease

    w = world
    petition(w, "x1", "kz", "2024-05-02T15:00")
    now = at("2024-06-03T10:00")
    monkeypatch.setattr(reports, "utc_now", lambda: now)
    label = "2024-06-03" if asked == "daily" else "2024-05"
    fold_name = reports.RUNNING_FOLD if asked == "daily" else reports.fold_name(asked, label)
    folds: list[str] = []
    fold_running, folded = reports.fold_running, reports.folded
    monkeypatch.setattr(reports, "fold_running", lambda *args: folds.append("running") or fold_running(*args))
    monkeypatch.setattr(reports, "folded", lambda *args: folds.append("issued") or folded(*args))
    q = w.queries()
    head = min(engine.positions(q.db, list(engine.PROJECTIONS)).values())
    answers: list[dict[str, Any]] = []

    def ask() -> None:
        asker = w.queries()
        try:
            answers.append(getattr(asker, asked)(label))
        finally:
            asker.close()

    other = Db(w.url)  # the other process's connection, holding the fold's lease
    with lease.folding(other, fold_name, head, time.monotonic(), lambda _: False) as claimed:
        assert claimed
        asker = threading.Thread(target=ask)
        asker.start()
        time.sleep(0.5)  # long enough for the ask to reach a fold of its own, if it could
        assert folds == [] and asker.is_alive()  # it waits
        if asked == "daily":  # the other process's fold keeps the three periods in progress
            fold_running(Queries(other), now, reports.in_progress(now))
        else:
            reports.keep(other, asked, label, head, reports.split(folded(Queries(other), asked, label, None, None)))
    asker.join(10)
    assert folds == []  # it read back the other process's fold
    assert [unstamped(a) for a in answers] == [unstamped(reports.build(q, asked, label, None, None))]
    folds.clear()

    if asked == "daily":  # a fact arrives: the kept fold is stale, and a fold begun before the fact is no answer
        petition(w, "x2", "yl", "2024-06-03T09:00")
        engine.catch_up(w.url)
        with lease.folding(other, fold_name, head, time.monotonic(), lambda _: False):
            asker = threading.Thread(target=ask)
            asker.start()
            asker.join(10)  # answered while the older fold still holds its lease: it did not wait for it
            assert not asker.is_alive()
        assert folds == ["running"] and answers[-1]["petitions"]["registered"] == 1
    other.close()
    q.close()


def test_the_issuer_leaves_a_report_another_process_is_folding_to_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """签发: the issuer neither folds the periods in progress nor back-issues a report while an ask in another
    process folds it (that fold keeps it), and does both once that fold is over."""
    from projections import lease
    from projections.catalog import ISSUED

    w = world
    petition(w, "x1", "kz", "2024-05-02T15:00")
    now = at("2024-06-03T10:00")
    monkeypatch.setattr(reports, "utc_now", lambda: now)
    q = w.queries()
    head = min(engine.positions(q.db, list(engine.PROJECTIONS)).values())
    other = Db(w.url)
    may = ("monthly", "2024-05")
    with (
        lease.folding(other, reports.RUNNING_FOLD, head, time.monotonic(), lambda _: False),
        lease.folding(other, reports.fold_name(*may), head, time.monotonic(), lambda _: False),
    ):
        assert not reports.refresh(q, now)
        reports.issue_at(q, date(2024, 5, 31), [("daily", "2024-05-31"), may])
        assert set(q.db.query(f"SELECT kind, label FROM {ISSUED}")) == {("daily", "2024-05-31")}
    assert reports.refresh(q, now)
    reports.issue_at(q, date(2024, 5, 31), [("daily", "2024-05-31"), may])
    assert set(q.db.query(f"SELECT kind, label FROM {ISSUED}")) == {("daily", "2024-05-31"), may}
    other.close()
    q.close()


def test_the_worker_issues_the_reports_of_the_periods_just_ended(world: World) -> None:
    """签发: the worker that keeps the current view, idle at the head of the log, issues yesterday's daily report,
    last week's and last month's (each as known at its issue date), so the first ask reads them back."""
    from projections.catalog import ISSUED

    w = world
    petition(w, "x1", "kz", "2024-05-31", skip_level=True)
    w.clock.set("2024-06-03T00:20")
    petition(w, "x2", "kz", "2024-05-31", skip_level=True)  # recorded after May's issue date: not in its bulletin
    monday = at("2024-06-03T00:30")
    assert reports.last_ended(monday) == [("daily", "2024-06-02"), ("weekly", "2024-W22"), ("monthly", "2024-05")]
    assert reports.last_ended(at("2024-06-02T23:59"))[1:] == [("weekly", "2024-W21"), ("monthly", "2024-05")]

    bulletins = reports.Bulletins(w.url, clock=lambda: monday)
    stop = threading.Event()
    worker = threading.Thread(target=engine.run, args=(w.url,), kwargs={"stop": stop, "idle": bulletins})
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(bulletins.done) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join()
        bulletins.close()
    db = Db(w.url)
    rows = db.query(f"SELECT kind, label, body FROM {ISSUED}")
    kept = {(kind, label): orjson.loads(body) for kind, label, body in rows}
    db.close()
    assert {("daily", "2024-06-02"), ("weekly", "2024-W22"), ("monthly", "2024-05")} <= set(kept)
    assert kept[("monthly", "2024-05")]["petitions"]["registered"] == 1
    q = Queries(w.url)
    may, w22 = at("2024-06-01"), at("2024-06-03")  # each bulletin as issued: as known at its period's end
    assert q.monthly("2024-05", known_at=may) == kept[("monthly", "2024-05")]
    assert q.monthly("2024-05", known_at=may) == q.monthly("2024-05", as_of=may, known_at=may)
    assert q.weekly("2024-W22", known_at=w22) == kept[("weekly", "2024-W22")]
    assert q.weekly("2024-W22", known_at=w22)["petitions"]["registered"] == 1
    assert q.weekly("2024-W22", known_at=monday)["petitions"]["registered"] == 2
    assert q.monthly("2024-05")["petitions"]["registered"] == 2  # as known now (x2 entered late)
    q.close()


def test_an_idle_worker_back_issues_every_earlier_period_monthly_first(world: World) -> None:
    """补发: once the periods just ended are issued and the periods in progress folded as of now, each idle call
    folds the city once at one earlier moment and keeps every report ending there: the month ends newest first,
    then the week ends, then the other days, back to the first reported record's day. Each kept report is the
    fold's answer as known at its issue date, and a history loaded later, dated earlier, is back-issued on the
    next listing."""
    from projections.catalog import ISSUED, RUNNING

    w = world
    petition(w, "x1", "kz", "2024-05-30", skip_level=True)
    w.clock.set("2024-06-01T08:00")
    petition(w, "x2", "kz", "2024-05-31")  # recorded after May's issue date: in no report of May
    w.do("escalate", "x1", EscalationLevel.PROVINCE, False, when="2024-06-12")
    w.queries().close()  # caught up
    now = at("2024-06-18T09:00")
    bulletins = reports.Bulletins(w.url, clock=lambda: now)
    db = Db(w.url)

    def kept() -> set[tuple[str, str]]:
        return {(kind, label) for kind, label in db.query(f"SELECT kind, label FROM {ISSUED}")}

    def idle() -> None:  # the worker's idle call, then the step it started, in the steps' own process
        bulletins()
        bulletins.wait()

    idle()
    assert kept() == {("daily", "2024-06-17"), ("weekly", "2024-W24"), ("monthly", "2024-05")}
    idle()  # the periods in progress, kept as running reports (not issued)
    assert kept() == {("daily", "2024-06-17"), ("weekly", "2024-W24"), ("monthly", "2024-05")}
    assert set(db.query(f"SELECT kind, label FROM {RUNNING}")) == set(reports.in_progress(now))
    issued = [kept()]  # what each idle call kept
    while bulletins.pending or len(issued) == 1:
        idle()
        issued.append(kept() - set().union(*issued))
    days = [(at("2024-05-30") + timedelta(days=n)).date().isoformat() for n in range(18)]  # to 2024-06-16
    sundays = [{("daily", "2024-06-09"), ("weekly", "2024-W23")}, {("daily", "2024-06-02"), ("weekly", "2024-W22")}]
    others = [{("daily", d)} for d in reversed(days) if d not in ("2024-06-09", "2024-06-02")]
    assert issued[1:] == sundays + others  # one fold per moment: a Sunday's daily and weekly reports from one
    q = Queries(w.url)
    bodies = {
        (kind, label): orjson.loads(body) for kind, label, body in db.query(f"SELECT kind, label, body FROM {ISSUED}")
    }
    for (kind, label), body in bodies.items():
        end = reports.period(kind, label)[1]
        assert body == reports.build(q, kind, label, end, end), (kind, label)
    registered = {p: body["petitions"]["registered"] for p, body in bodies.items()}
    assert registered[("monthly", "2024-05")] == 1  # x2 was recorded after May's issue date
    assert registered[("weekly", "2024-W22")] == 2 and registered[("daily", "2024-05-31")] == 0
    assert bodies[("daily", "2024-06-12")]["petitions"]["escalations"] == 1
    assert q.daily("2024-06-12", known_at=at("2024-06-13")) == bodies[("daily", "2024-06-12")]
    q.close()

    idle()  # nothing left: nothing folded or kept again
    assert kept() == set(bodies)
    petition(w, "x0", "yl", "2024-05-27")  # an earlier day, loaded now
    w.queries().close()
    bulletins.checked = time.monotonic()  # nor is it time to check the running reports (REFRESH_SECONDS)
    idle()  # the periods are listed again only once RELIST_SECONDS have passed
    assert kept() == set(bodies)
    bulletins.listed -= reports.RELIST_SECONDS
    bulletins.checked -= reports.REFRESH_SECONDS
    heads = set(db.query(f"SELECT head FROM {RUNNING}"))
    later: list[set[tuple[str, str]]] = []
    while bulletins.pending or not later:
        idle()
        later.append(kept() - set(bodies) - set().union(*later))
    # x0 made the running reports stale: they are folded again first, then the three days back-issued
    assert heads != set(db.query(f"SELECT head FROM {RUNNING}"))
    assert later == [set(), {("daily", "2024-05-29")}, {("daily", "2024-05-28")}, {("daily", "2024-05-27")}]
    bulletins.close()
    db.close()


def test_one_issuer_steps_at_a_time_and_another_takes_over_once_the_lease_is_released_or_runs_out(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """签发权: two issuers on one store (two hosts' workers, two processes of ``ledger serve --workers 2``). The
    first claims the lease and issues; the second, idle, folds nothing and waits until the lease would run out.
    The first stopped without releasing it (killed): once it runs out the second takes over. The second stopped
    cleanly releases it: a third that was waiting takes over at its next claim, not when the lease would run out."""
    from projections import lease
    from projections.catalog import ISSUED

    w = world
    petition(w, "x1", "kz", "2024-05-30")
    w.queries().close()  # caught up
    now = at("2024-06-18T09:00")
    ahead = {"seconds": 0.0}  # the lease's wall clock, moved on by the test rather than waited for
    monkeypatch.setattr(lease, "_micros", lambda: time.time_ns() // 1000 + round(ahead["seconds"] * 1_000_000))
    first, second, third = (reports.Bulletins(w.url, clock=lambda: now) for _ in range(3))
    db = Db(w.url)

    def kept() -> set[tuple[str, str]]:
        return set(db.query(f"SELECT kind, label FROM {ISSUED}"))

    def idle(issuer: reports.Bulletins) -> None:
        issuer()
        issuer.wait()

    try:
        idle(first)
        assert kept() == set(reports.last_ended(now)) == first.done
        idle(second)
        assert second.done == set() and second.paused_until > time.monotonic()  # no step: the lease is held
        assert second.paused_until <= time.monotonic() + reports.REFRESH_SECONDS  # and it will claim again soon
        assert first._pool is not None
        first._pool.shutdown()  # killed: its lease is not released
        first._pool = None
        left = lease.claim(db, "someone else")
        assert left is not None and left > lease.LEASE_SECONDS - 60  # still held, until it runs out
        ahead["seconds"] = lease.LEASE_SECONDS + 1
        second.paused_until = 0.0
        idle(second)
        assert second.done == set(reports.last_ended(now))  # it stepped (read back what the first kept)
        assert lease.claim(db, "someone else") is not None
        idle(third)
        assert third.done == set() and third.paused_until > time.monotonic()  # held by the second
        second.close()
        third.paused_until = 0.0  # its next claim (within REFRESH_SECONDS)
        idle(third)
        assert third.done == set(reports.last_ended(now))  # the second released the lease: no wait for it to run out
    finally:
        for issuer in (first, second, third):
            issuer.close()
        db.close()


def _held_step(url: str, now: datetime, due: list[Any], pending: list[Any]) -> tuple[list[Any], list[Any]]:
    """An issuing step that holds its process until the test lets it go, as a long fold would."""
    signals = Path(os.environ["LEDGER_TEST_SIGNALS"])
    (signals / "started").touch()
    deadline = time.monotonic() + 30
    while not (signals / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    (signals / "done").touch()
    return [], []


def _signalled(path: Path, seconds: float = 30) -> None:
    """Wait (at most ``seconds``) for the steps' process to touch ``path``."""
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def _stoppable_step(url: str, now: datetime, due: list[Any], pending: list[Any]) -> tuple[list[Any], list[Any]]:
    """A step that sweeps on (up to 30 s) until its issuer closes, as a back-issuing one does between moments."""
    signals = Path(os.environ["LEDGER_TEST_SIGNALS"])
    (signals / "started").touch()
    deadline = time.monotonic() + 30
    while not reports.stopping() and time.monotonic() < deadline:
        time.sleep(0.02)
    (signals / ("stopped" if reports.stopping() else "timed-out")).touch()
    return [], []


def _failing_step(url: str, now: datetime, due: list[Any], pending: list[Any]) -> tuple[list[Any], list[Any]]:
    with (Path(os.environ["LEDGER_TEST_SIGNALS"]) / "attempts").open("a") as attempts:
        attempts.write("x")
    raise RuntimeError("connection refused")


def test_the_worker_follows_the_log_while_a_report_folds(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report's fold (seconds at a million events) runs in a process of its own, not in the worker's loop: a
    command recorded meanwhile is applied, so read-your-writes waits for the log, not for the report."""
    w = world
    monkeypatch.setenv("LEDGER_TEST_SIGNALS", str(tmp_path))  # the steps' process inherits it
    petition(w, "x1", "kz", "2024-05-30")
    bulletins = reports.Bulletins(w.url, steps=_held_step)
    stop = threading.Event()
    worker = threading.Thread(target=engine.run, args=(w.url,), kwargs={"stop": stop, "idle": bulletins})
    worker.start()
    try:
        _signalled(tmp_path / "started")
        recorded = petition(w, "x2", "kz", "2024-06-01")
        assert engine.wait_for(w.url, recorded.position, timeout=10)
        assert (tmp_path / "started").exists() and not (tmp_path / "done").exists()  # the step was still underway
    finally:
        (tmp_path / "release").touch()
        stop.set()
        worker.join()
        bulletins.close()
    assert (tmp_path / "done").exists()  # closing let it finish


def test_a_worker_stopping_ends_a_back_issuing_step_at_its_next_moment(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step back-issuing sweeps on for up to ten seconds; a worker stopping (SIGTERM) closes its issuer, and the
    step underway ends at its next moment instead: the worker is gone in a moment, not in a step's time."""
    monkeypatch.setenv("LEDGER_TEST_SIGNALS", str(tmp_path))
    bulletins = reports.Bulletins(world.url, steps=_stoppable_step)
    try:
        bulletins()
        _signalled(tmp_path / "started")
        assert not reports.stopping()  # this process runs no steps: never told to stop
    finally:
        began = time.monotonic()
        bulletins.close()
    assert (tmp_path / "stopped").exists() and time.monotonic() - began < 10
    assert steps_processes() == []


def test_a_failed_issuing_step_pauses_instead_of_retrying_at_every_poll(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store gone away makes a step fail: logged, then no step for ``RELIST_SECONDS``, however often idle."""
    monkeypatch.setenv("LEDGER_TEST_SIGNALS", str(tmp_path))
    bulletins = reports.Bulletins(world.url, steps=_failing_step)
    try:
        began = time.monotonic()
        for _ in range(5):
            bulletins()
            bulletins.wait()
        assert (tmp_path / "attempts").read_text() == "x"
        assert bulletins.paused_until >= began + reports.RELIST_SECONDS
        bulletins.paused_until = 0.0  # the pause is over
        bulletins()
        bulletins.wait()
        assert (tmp_path / "attempts").read_text() == "xx"
    finally:
        bulletins.close()


def steps_processes() -> list[int]:
    """The live processes this one spawned to run issuing steps."""
    mine = [pid for pid in children(os.getpid()) if alive(pid)]
    return [pid for pid in mine if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_an_issuing_process_killed_mid_step_is_replaced_after_the_pause(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The steps' process killed (out of memory, say) leaves its pool broken: the worker goes on, pauses, and
    spawns a fresh process for the next step."""
    monkeypatch.setenv("LEDGER_TEST_SIGNALS", str(tmp_path))
    bulletins = reports.Bulletins(world.url, steps=_held_step)
    try:
        bulletins()
        _signalled(tmp_path / "started")
        (held,) = steps_processes()
        os.kill(held, signal.SIGKILL)
        bulletins.wait(10)
        assert bulletins.paused_until > time.monotonic()
        bulletins()  # paused: no process spawned, no step started
        assert steps_processes() == []
        bulletins.paused_until = 0.0
        (tmp_path / "release").touch()
        bulletins()
        bulletins.wait(30)
        assert (tmp_path / "done").exists()  # a fresh process ran the step
    finally:
        (tmp_path / "release").touch()
        bulletins.close()


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_the_periods_ending_after_a_day_are_those_whose_end_is_its_midnight(day: date) -> None:
    """Back-issuing folds once per moment: every period of each kind containing ``day`` is listed there exactly
    when it ends at the next midnight."""
    week = day.isocalendar()
    containing = [
        ("daily", day.isoformat()),
        ("weekly", f"{week.year}-W{week.week:02d}"),
        ("monthly", f"{day.year}-{day.month:02d}"),
    ]
    midnight = datetime(day.year, day.month, day.day, tzinfo=BUREAU_TZ) + timedelta(days=1)
    assert reports.ending_after(day) == [p for p in containing if reports.period(*p)[1] == midnight]


def test_overdue_is_judged_against_as_of(world: World) -> None:
    w = world
    petition(w, "x0", "kz", "2024-03-01")
    petition(w, "x1", "kz", "2024-03-01", repeat_of="x0")  # a repeat needs no three meetings to close
    q = w.queries()
    assert q.petitions(status="overdue", as_of=at("2024-04-30")) == []
    overdue = q.petitions(status="overdue", as_of=at("2024-05-01"))
    assert [p["id"] for p in overdue] == ["x0", "x1"]
    w.do("reply_petition", "x1", "已答复", when="2024-05-05")
    w.do("close_petition", "x1", when="2024-05-10")
    q = w.queries()
    as_of = at("2024-05-06")
    rows = {p["id"]: p for p in q.petitions(as_of=as_of)}
    assert rows["x1"]["status"] == "overdue" and rows["x1"]["deadline"] == "2024-04-30T00:00:00+08:00"
    assert {p["id"]: p["status"] for p in q.petitions(as_of=at("2024-05-11"))} == {"x0": "overdue", "x1": "closed"}
    assert [p["id"] for p in q.petitions(status="open", as_of=at("2024-05-11"))] == ["x0"]
    assert [p["id"] for p in q.petitions(flag="repeat")] == ["x1"]
    row = by_unit(q.scores(2024, as_of=at("2024-05-11")))["kz"]
    assert ("overdue_petition", 2) in indicators(row) and ("repeat_petition", 1) in indicators(row)
    triggers = {t["id"]: t for t in q.triggers(as_of=at("2024-05-11"))}
    assert triggers["R18.petition.x1.overdue"]["opened_at"] == "2024-04-30T00:00:00+08:00"
    assert "R18.petition.x1.overdue" not in {t["id"] for t in q.triggers(as_of=at("2024-04-29"))}


def test_escalation_of_an_owned_petition_triggers_the_leader_and_unit_until_decided(world: World) -> None:
    w = world
    w.do("register_person", "分管领导", "kz", Post.LEADER_IN_CHARGE, person_id="kz-lead", when="2024-01-01")
    petition(w, "x1", "kz", "2024-03-01")
    petition(w, "x2", "kz", "2024-03-01")
    w.do("take_ownership", "x1", "kz-lead", when="2024-03-02")
    esc = w.do("escalate", "x1", EscalationLevel.BEIJING, False, when="2024-03-10")
    w.do("escalate", "x2", EscalationLevel.PROVINCE, False, when="2024-03-10")  # not owned: no R14 trigger
    q = w.queries()
    r14 = [t for t in q.triggers(status="open") if t["rule"] == "R14"]
    ids = {t["id"] for t in r14}
    assert ids == {f"R14.petition.x1.{esc.position}", f"R14.petition.x1.{esc.position}.unit"}
    leader = next(t for t in r14 if "person_id" in t["subject"])
    assert leader["subject"] == {"unit_id": "kz", "person_id": "kz-lead"} and esc.position in leader["evidence"]
    w.do("decide_trigger", leader["id"], "R14", DecisionOutcome.DEMERIT, "赴京上访", when="2024-03-20")
    q = w.queries()
    decided = q.trigger(leader["id"])
    assert decided is not None and decided["status"] == "decided"
    assert decided["decision"]["outcome"] == "demerit"
    assert q.trigger(leader["id"], as_of=at("2024-03-15"))["status"] == "open"  # type: ignore[index]
    assert [t["id"] for t in q.triggers(status="decided")] == [leader["id"]]
    assert q.triggers(unit_id="gc") == []
    assert [d["indicator"] for d in by_unit(q.scores(2024, as_of=at("2024-04-01")))["kz"]["deductions"]].count(
        "escalation"
    ) == 2


def test_substantiated_misconduct_stays_open_until_the_removal(world: World) -> None:
    w = world
    w.do("register_person", "执法员", "yl", Post.ENFORCEMENT_OFFICER, person_id="o1", when="2024-01-01")
    w.do("register_person", "标兵", "yl", Post.ENFORCEMENT_OFFICER, person_id="o2", when="2024-01-01")
    w.do("report_misconduct", "o1", MisconductKind.TAKING, "李四", "收受礼品", when="2024-02-01")
    w.do("record_finding", "o1", "r1", True, when="2024-02-10")
    w.do("commend", "o2", Commendation.LAW_ENFORCEMENT_MODEL, when="2024-02-11")
    q = w.queries()
    trigger = q.trigger("R7.person.o1.r1")
    assert trigger is not None and trigger["status"] == "open" and trigger["removal_due"] is True
    assert trigger["subject"] == {"unit_id": "yl", "person_id": "o1"}
    assert [o["id"] for o in q.officers(status="removal_due")] == ["o1"]
    assert [o["id"] for o in q.officers(status="commended")] == ["o2"]
    w.do("decide_trigger", "R7.person.o1.r1", "R7", DecisionOutcome.WARNING, "先警告", when="2024-02-12")
    q = w.queries()
    assert q.trigger("R7.person.o1.r1")["status"] == "open"  # type: ignore[index]
    w.do("remove_from_post", "o1", when="2024-02-15")
    q = w.queries()
    assert q.trigger("R7.person.o1.r1")["status"] == "decided"  # type: ignore[index]
    assert [o["id"] for o in q.officers(status="removed")] == ["o1"]
    row = by_unit(q.scores(2024, as_of=at("2024-03-01")))["yl"]
    assert indicators(row) == [("misconduct", 5)] and [(c["indicator"], c["points"]) for c in row["commendations"]] == [
        ("commendation", 2)
    ]
    assert row["score"] == 97


def test_a_wrongful_finding_triggers_each_handler(world: World) -> None:
    w = world
    for pid in ("h1", "h2"):
        w.do("register_person", pid, "kz", Post.ENFORCEMENT_OFFICER, person_id=pid, when="2024-01-01")
    w.do("report_clue", "kz", Violation.UNLICENSED_MINING, ClueSource.REPORT, case_id="c1", when="2024-02-01")
    w.do("file_case", "c1", ["h1", "h2"], when="2024-02-05")
    w.do("close_case", "c1", "罚款", when="2024-03-01")
    found = w.do("find_wrongful", "c1", ["h1", "h2"], "事实不清", when="2024-04-01")
    triggers = {t["id"]: t for t in w.queries().triggers() if t["rule"] == "R2"}
    assert set(triggers) == {"R2.case.c1.h1", "R2.case.c1.h2"}
    assert found.position in triggers["R2.case.c1.h1"]["evidence"]
    assert triggers["R2.case.c1.h2"]["opened_at"] == "2024-04-01T00:00:00+08:00"


def test_a_clue_left_unfiled_is_not_investigated_from_its_deadline(world: World) -> None:
    w = world
    w.do("register_person", "h1", "kz", Post.ENFORCEMENT_OFFICER, person_id="h1", when="2024-01-01")
    w.do("report_clue", "kz", Violation.INDISCRIMINATE_DIGGING, ClueSource.PATROL, case_id="late", when="2024-03-01")
    w.do("report_clue", "kz", Violation.INDISCRIMINATE_DIGGING, ClueSource.PATROL, case_id="ok", when="2024-03-01")
    w.do("file_case", "ok", ["h1"], when="2024-03-20")
    w.do("file_case", "late", ["h1"], when="2024-04-15")  # filed after the 30 days: still 有案不查
    q = w.queries()
    assert indicators(by_unit(q.scores(2024, as_of=at("2024-03-30")))["kz"]) == []
    row = by_unit(q.scores(2024, as_of=at("2024-04-02")))["kz"]
    assert indicators(row) == [("case_not_investigated", 5)]
    assert row["deductions"][0]["occurred_at"] == "2024-03-31T00:00:00+08:00"
    assert [t["id"] for t in q.triggers(as_of=at("2024-04-02"))] == ["R7.case.late.unfiled"]


def test_a_year_closed_below_pass_score_triggers_r6(world: World) -> None:
    w = world
    signed = w.do("sign_agreement", 2024, "lc", "yl", ["耕地保护"], when="2024-01-05").position
    w.do("register_person", "羊里所员", "yl", Post.ENFORCEMENT_OFFICER, person_id="yl-o", when="2024-01-06")
    commended = w.do("commend", "yl-o", Commendation.LAW_ENFORCEMENT_MODEL, when="2024-02-01").position
    for i in range(3):
        major_case(w, f"c{i}", "yl", f"2024-0{i + 3}-01")
    q = w.queries()
    assert by_unit(q.scores(2024, as_of=at("2024-12-31")))["yl"]["outcome"] == "pending"
    assert [t for t in q.triggers(as_of=at("2024-12-31")) if t["rule"] == "R6"] == []
    closed = by_unit(q.scores(2024, as_of=at("2025-01-01")))["yl"]
    # three major cases (10 each) whose clues were never filed (有案不查, 5 each), one commendation (+2)
    assert (closed["score"], closed["outcome"]) == (57, "criticise")
    for asked in (q, w.folds()):
        r6 = [t for t in asked.triggers(as_of=at("2025-01-01")) if t["rule"] == "R6"]
        assert [(t["id"], t["subject"], t["opened_at"]) for t in r6] == [
            ("R6.agreement.2024.lc.yl", {"unit_id": "yl"}, "2025-01-01T00:00:00+08:00")
        ]
        # R20: the agreement, every deduction's events and the commendation the score counts
        deducted = {p for d in closed["deductions"] for p in d["evidence"]}
        assert set(r6[0]["evidence"]) == {signed, commended} | deducted
    assert by_unit(q.scores(2024, as_of=at("2025-01-01")))["ys"]["outcome"] == "commend"


def test_r6_of_an_agreement_signed_after_its_year_counts_from_the_signing(world: World) -> None:
    """An agreement for 2024 signed only in February 2025 (补签): its R6 opens when it was signed, not at the
    year's end before it existed, and a question about a moment before the signing knows of no agreement, so no
    R6; the view answers as the fold does, whole or a page at a time."""
    w = world
    for i in range(3):
        major_case(w, f"c{i}", "yl", f"2024-0{i + 3}-01")
    w.do("sign_agreement", 2024, "lc", "yl", ["耕地保护"], when="2025-02-01")
    q, folds = w.queries(), w.folds()
    for moment, expected in (("2025-01-15", []), ("2025-03-01", ["R6.agreement.2024.lc.yl"])):
        found = q.triggers(as_of=at(moment))
        assert found == folds.triggers(as_of=at(moment))
        assert [t["id"] for t in found if t["rule"] == "R6"] == expected
        assert q.triggers(as_of=at(moment), limit=2) == found[:2]
    [r6] = [t for t in q.triggers() if t["rule"] == "R6"]
    assert r6["opened_at"] == "2025-02-01T00:00:00+08:00"


def test_the_current_view_keeps_r6_per_agreement_as_the_territory_changes(world: World) -> None:
    """现状视图: R6 is stored per target agreement and derived again when a record below its unit changes,
    so today's R6 triggers follow the deductions recorded after the agreement, as the fold's do."""
    w = world
    w.do("register_person", "h1", "yl", Post.ENFORCEMENT_OFFICER, person_id="h1", when="2024-01-01")
    w.do("sign_agreement", 2024, "lc", "yl", ["耕地保护"], when="2024-01-05")
    w.do("sign_agreement", 2024, "laiwu", "lc", ["耕地保护"], when="2024-01-05")

    def r6() -> list[str]:
        q = w.queries()
        assert q._now(None, None), "today's answers come from the current view"
        found = q.triggers()
        assert found == w.folds().triggers()
        return [t["id"] for t in found if t["rule"] == "R6"]

    assert r6() == []
    major_case(w, "c1", "yl", "2024-03-01")
    major_case(w, "c2", "yl", "2024-04-01")
    # two major cases (10 each), both clues unfiled (5 each): 70 below the pass score, for yl and its district
    assert r6() == ["R6.agreement.2024.laiwu.lc", "R6.agreement.2024.lc.yl"]
    w.do("file_case", "c1", ["h1"], when="2024-03-10")
    w.do("file_case", "c2", ["h1"], when="2024-04-10")
    assert r6() == []  # filed in time: 80, which passes


def test_a_leader_without_a_public_reception_in_a_month_costs_a_point(world: World) -> None:
    w = world
    w.do("register_person", "镇长", "ys", Post.PRINCIPAL_LEADER, person_id="ys-head", when="2024-01-01")
    w.do("hold_reception", "ys-head", "村委会", when="2024-01-15")
    w.do("hold_reception", "ys-head", "村委会", when="2024-02-15")
    q = w.queries()
    row = by_unit(q.scores(2024, as_of=at("2024-04-01")))["ys"]
    assert [(d["indicator"], d["occurred_at"]) for d in row["deductions"]] == [
        ("missed_reception", "2024-03-01T00:00:00+08:00")
    ]
    assert row["score"] == 99


def test_a_diverted_petition_belongs_to_its_new_unit_from_then_on(world: World) -> None:
    w = world
    petition(w, "x1", "kz", "2024-03-01", skip_level=True)
    w.do("divert_petition", "x1", "ys", when="2024-03-05")
    w.do("escalate", "x1", EscalationLevel.CITY, True, when="2024-03-06")
    q = w.queries()
    assert [p["id"] for p in q.petitions(unit_id="gc")] == ["x1"]
    assert [p["id"] for p in q.petitions(unit_id="lc", as_of=at("2024-03-04"))] == ["x1"]
    scores = by_unit(q.scores(2024, as_of=at("2024-04-01")))
    assert indicators(scores["kz"]) == [("skip_level_petition", 2)]
    assert indicators(scores["ys"]) == [("escalation", 5)]


def test_decisions_looked_up_by_trigger_id_answer_as_reading_them_all(world: World, monkeypatch: Any) -> None:
    from projections import history

    w = world
    w.do("register_person", "分管领导", "kz", Post.LEADER_IN_CHARGE, person_id="kz-lead", when="2024-01-01")
    petition(w, "x1", "kz", "2024-03-01")
    w.do("take_ownership", "x1", "kz-lead", when="2024-03-02")
    w.do("escalate", "x1", EscalationLevel.BEIJING, False, when="2024-03-10")
    q = w.queries()
    leader = next(t for t in q.triggers(status="open") if "person_id" in t["subject"])
    w.do("decide_trigger", leader["id"], "R14", DecisionOutcome.DEMERIT, "赴京上访", when="2024-03-20")
    q = w.queries()
    moments: list[dict[str, Any]] = [{}, {"as_of": at("2024-03-15")}, {"as_of": at("2024-03-25")}]

    def answers() -> list[Any]:
        return [q.triggers(unit_id=u, **m) for m in moments for u in (None, "kz")] + [
            q.trigger(leader["id"], **m) for m in moments
        ]

    by_id = answers()
    assert [t["decision"]["outcome"] for t in by_id[0] if t["decision"]] == ["demerit"]
    with monkeypatch.context() as m:
        m.setattr(history, "IN_LIST", 1)  # the ids looked up one per query
        assert answers() == by_id
    monkeypatch.setattr(history, "DECISION_LOOKUP", 0)  # every lookup reads all decisions instead
    assert answers() == by_id


def test_a_city_wide_past_question_folds_only_the_records_revised_after_it(world: World, monkeypatch: Any) -> None:
    """现状视图, city-wide as of a past moment: the records a later fact revises (an extension, a removal) or, for the
    board, with any later event are folded by id, an ``IN`` list at a time, beside the view's rows — not the whole
    city; past :data:`~projections.history.FOLD_LIMIT` of them, the city is folded. Either way the answers are the
    fold's, as known now and as known at a later past moment."""
    from projections import current, history

    w = world
    w.do("register_person", "执法员", "yl", Post.ENFORCEMENT_OFFICER, person_id="o1", when="2024-01-01")
    w.do("report_misconduct", "o1", MisconductKind.TAKING, "李四", "收受礼品", when="2024-02-01")
    w.do("record_finding", "o1", "r1", True, when="2024-02-10")
    w.do("remove_from_post", "o1", when="2024-06-01")  # revises o1: R7 open until then
    for n, unit in enumerate(("kz", "yl", "ys", "kz")):
        petition(w, f"x{n}", unit, "2024-04-01")  # due 2024-05-31
    w.do("extend_petition", "x0", 30, when="2024-04-20")  # revises x0's deadline, before and after as_of below
    w.do("extend_petition", "x1", 30, when="2024-05-20")
    w.do("reply_petition", "x2", "已答复", when="2024-06-10")  # a later event: the board folds x2
    w.do("escalate", "x3", EscalationLevel.CITY, False, when="2024-07-01")
    w.clock.set("2024-05-05")
    w.do("reply_petition", "x3", "已答复", when="2024-04-25")  # recorded late: as known at 05-02, folded too
    w.clock.set("2024-08-01")
    q, fold = w.queries(), w.folds()
    as_of = at("2024-05-01")
    moments = [{"as_of": as_of}, {"as_of": as_of, "known_at": at("2024-05-02")}, {"as_of": at("2024-07-15")}]

    def answers(asked: Queries) -> list[Any]:
        found: list[Any] = []
        for m in moments:
            found += [asked.scores(2024, **m), asked.triggers(**m), asked.petitions(**m), asked.quota(2024, **m)]
        return found

    expected = answers(fold)
    assert any(t["id"] == "R7.person.o1.r1" and t["status"] == "open" for t in q.triggers(as_of=as_of))
    uuids = {
        q.db.query(f"SELECT uuid FROM proj_{name}_records WHERE record_id = ?", (record,))[0][0]
        for name, record in (("people", "o1"), ("petitions", "x1"))
    }
    assert {uuid for uuid, _ in current.revised(q.known(as_of))} == uuids
    with monkeypatch.context() as patched:
        patched.setattr(history, "IN_LIST", 1)  # the revised records read one per query
        assert all(q._past(m["as_of"], m.get("known_at"), None) is not None for m in moments)
        assert answers(q) == expected
    monkeypatch.setattr(current, "FOLD_LIMIT", 1)  # more to fold than a past question folds by id: the city
    assert q._past(as_of, None, None) is None
    assert answers(q) == expected
    q.close()
    fold.close()


def test_an_owner_answers_for_what_happened_once_they_had_taken_the_petition_by_business_time(world: World) -> None:
    """领导包案, R14 and R18: the owner an escalation or an overdue petition holds to account is whoever had taken the
    petition when it happened, by business time as every number is — not by the order entries were recorded in. An
    ownership taken after the deadline (a reply recorded late, dated before it, changes nothing) answers for no
    overdue; one taken before an escalation but recorded after it answers for that escalation."""
    w = world
    w.do("register_person", "分管领导", "kz", Post.LEADER_IN_CHARGE, person_id="kz-lead", when="2024-01-01")
    w.do("register_person", "主要领导", "kz", Post.PRINCIPAL_LEADER, person_id="kz-head", when="2024-01-01")
    petition(w, "x2", "yl", "2024-03-01")
    w.do("escalate", "x2", EscalationLevel.CITY, False, when="2024-03-10")
    w.clock.set("2024-03-12")
    w.do("take_ownership", "x2", "kz-head", when="2024-03-02")  # taken before the escalation, recorded after it
    petition(w, "x1", "kz", "2024-03-01")
    w.do("take_ownership", "x1", "kz-lead", when="2024-07-01")  # after its deadline (2024-04-30)
    w.do("reply_petition", "x1", "已答复", when="2024-03-05")  # recorded late, dated before the deadline
    q = w.queries()
    overdue = next(t for t in q.triggers() if t["id"] == "R18.petition.x1.overdue")
    assert overdue["subject"] == {"unit_id": "kz"}  # nobody owned it when it went overdue
    escalated = [t for t in q.triggers() if t["rule"] == "R14" and t["subject"].get("person_id")]
    assert [t["subject"]["person_id"] for t in escalated] == ["kz-head"]
    assert q.petitions(unit_id="kz")[0]["owner_id"] == "kz-lead"  # the board: its owner now
    for as_of, known_at in ((None, None), (at("2024-06-01"), None), (None, at("2024-07-02")), (None, at("2024-03-11"))):
        assert q.triggers(as_of=as_of, known_at=known_at) == q.known(as_of, known_at).triggers
    assert not [t for t in q.triggers(known_at=at("2024-03-11")) if t["rule"] == "R14" and "person_id" in t["subject"]]
    assert q.trigger("R18.petition.x1.overdue") == overdue
    q.close()


def test_a_years_score_counts_what_older_records_caused_in_it(world: World) -> None:
    """A score reads one year's records, plus older ones whose deadline or escalation falls in the year (按年度取数)."""
    w = world
    w.do("register_person", "h1", "kz", Post.ENFORCEMENT_OFFICER, person_id="h1", when="2024-01-01")
    # A clue of 2024-12-20 left unfiled: 有案不查 from its deadline 2025-01-19.
    w.do("report_clue", "kz", Violation.INDISCRIMINATE_DIGGING, ClueSource.PATROL, case_id="dec", when="2024-12-20")
    # A petition of 2024-12-01, extended by 30 days: overdue from 2025-03-01 (60 + 30 days).
    petition(w, "x-dec", "kz", "2024-12-01")
    w.do("extend_petition", "x-dec", 30, when="2024-12-10")
    # A petition of 2024-03-01, escalated to the city in 2025 (R14 in 2025).
    petition(w, "x-mar", "kz", "2024-03-01")
    w.do("reply_petition", "x-mar", "已答复", when="2024-03-20")
    w.do("escalate", "x-mar", EscalationLevel.CITY, False, when="2025-02-01")
    q = w.queries()
    as_of = at("2025-06-01")
    kz_2025 = by_unit(q.scores(2025, "kz", as_of=as_of))["kz"]
    assert sorted(indicators(kz_2025)) == [("case_not_investigated", 5), ("escalation", 5), ("overdue_petition", 2)]
    assert {d["occurred_at"][:10] for d in kz_2025["deductions"]} == {"2025-01-19", "2025-02-01", "2025-03-01"}
    kz_2024 = by_unit(q.scores(2024, "kz", as_of=as_of))["kz"]
    # 2024 has only x-mar's own deadline (replied, never closed): nothing the older records caused in 2025.
    assert [(d["indicator"], d["occurred_at"][:10]) for d in kz_2024["deductions"]] == [
        ("overdue_petition", "2024-04-30")
    ]
    # The district's score reads the same facts through its territory.
    assert by_unit(q.scores(2025, "lc", as_of=as_of))["lc"]["deductions"] == kz_2025["deductions"]


def test_the_current_view_counts_a_deadline_once_it_has_passed(world: World, monkeypatch: Any) -> None:
    """现状视图: today's answers come from stored rows; a deadline passing with no new event changes them,
    exactly as it changes the fold's answers."""
    from projections import queries

    w = world
    today = datetime.now(BUREAU_TZ).date()

    def day(n: int) -> str:
        return (today - timedelta(days=n)).isoformat()

    w.do("register_person", "h1", "kz", Post.ENFORCEMENT_OFFICER, person_id="h1", when=day(60))
    w.do("report_clue", "kz", Violation.INDISCRIMINATE_DIGGING, ClueSource.PATROL, case_id="old", when=day(40))
    w.do("report_clue", "kz", Violation.INDISCRIMINATE_DIGGING, ClueSource.PATROL, case_id="new", when=day(10))
    petition(w, "p-new", "kz", day(10))
    q = w.queries()
    assert q._now(None, None), "today's answers come from the current view"
    ids = {t["id"] for t in q.triggers()}
    assert "R7.case.old.unfiled" in ids and "R7.case.new.unfiled" not in ids
    assert [(p["id"], p["status"]) for p in q.petitions(unit_id="kz")] == [("p-new", "open")]
    years = {today.year, (today - timedelta(days=40)).year, (today + timedelta(days=60)).year}
    folds = w.folds()
    for year in years:
        assert q.scores(year) == folds.scores(year)
    assert ("R7", "new") not in {(d["rule"], d["record_id"]) for r in q.scores(today.year) for d in r["deductions"]}

    later = datetime.now(BUREAU_TZ) + timedelta(days=60)  # no new event: only the clock moves on
    monkeypatch.setattr(queries, "utc_now", lambda: later)
    ids = {t["id"] for t in q.triggers()}
    assert {"R7.case.new.unfiled", "R18.petition.p-new.overdue"} <= ids
    assert [(p["id"], p["status"]) for p in q.petitions(unit_id="kz")] == [("p-new", "overdue")]
    assert q.triggers() == folds.triggers()
    assert q.petitions() == folds.petitions()
    for year in years:
        assert q.scores(year) == folds.scores(year)


def test_a_past_question_reads_the_current_view_and_folds_the_records_with_later_facts(world: World) -> None:
    """现状视图, asked about a past moment as known now: an officer removed after that moment is folded as of it
    (R7 still open, removal due), the records whose facts all came before it are read from the view; the same
    answers as the fold. A view derived by an older engine (no format marker) folds until derived afresh."""
    w = world
    w.do("register_person", "h1", "yl", Post.ENFORCEMENT_OFFICER, person_id="h1", when="2024-01-01")
    w.do("report_misconduct", "h1", MisconductKind.TAKING, "某", "拿", when="2024-02-01")
    w.do("record_finding", "h1", "r1", True, when="2024-02-10")
    w.do("remove_from_post", "h1", when="2024-03-01")
    major_case(w, "c1", "yl", "2024-01-20")
    q = w.queries()
    between, after = at("2024-02-20"), at("2024-03-02")
    past = q._past(between, None, "yl")
    assert past is not None
    folded = past[2]
    assert [p.record_id for p in folded.people.values()] == ["h1"] and folded.cases == []  # c1: no later facts
    folds = w.folds()
    then = q.triggers(None, "yl", as_of=between)
    assert then == folds.triggers(None, "yl", as_of=between)
    r7 = next(t for t in then if t["rule"] == "R7" and "removal_due" in t)
    assert (r7["status"], r7["removal_due"], r7["decision"]) == ("open", True, None)
    later = next(t for t in q.triggers(None, "yl", as_of=after) if t["id"] == r7["id"])
    assert (later["status"], later["removal_due"]) == ("decided", False)
    assert "R4.case.c1" in {t["id"] for t in then}  # read from the view
    assert q.scores(2024, "lc", as_of=between) == folds.scores(2024, "lc", as_of=between)

    q.db.execute("DELETE FROM proj_current_items WHERE kind = 'format'")  # as an older engine left it
    assert q._past(between, None, "yl") is None  # folded meanwhile
    assert q.triggers(None, "yl", as_of=between) == then
    w.do("file_case", "c1", ["h1"], when="2024-02-25")  # any new fact (h1 still in post): the view derived afresh
    q = w.queries()
    assert q._past(between, None, "yl") is not None
    assert q.triggers(None, "yl", as_of=between) == then


def test_a_question_as_known_at_a_past_moment_reads_the_view_and_folds_what_was_recorded_after_it(
    world: World,
) -> None:
    """迟录事实: as of a past moment as known at a later one, the records with a fact recorded after that (a major
    case entered weeks late) are folded, the rest read from the current view; R6 of the year that fact falls in is
    folded again from its territory, since the view's is tallied from every fact known now. Same answers as the fold,
    and the late case counts as known now."""
    w = world
    w.do("sign_agreement", 2024, "lc", "yl", ["耕地保护"], when="2024-01-05")
    major_case(w, "c1", "yl", "2024-03-01")
    petition(w, "p1", "kz", "2024-06-01")
    w.clock.set("2025-02-01")  # entered after the year's end (补录)
    major_case(w, "c2", "yl", "2024-04-01")
    q, folds = w.queries(), w.folds()
    as_of, known_at = at("2025-01-05"), at("2025-01-10")
    past = q._past(as_of, known_at, None)
    assert past is not None, "the current view answers"
    # c2 is folded, and was not known yet; R6 of 2024 is folded again
    assert len(past.folded.uuids or []) == 1 and past.folded.cases == [] and 2024 in past.stale
    assert {c["id"] for c in q.petitions(as_of=as_of, known_at=known_at)} == {"p1"}
    then = q.triggers(as_of=as_of, known_at=known_at)
    assert then == folds.triggers(as_of=as_of, known_at=known_at)
    assert "R4.case.c1" in {t["id"] for t in then} and "R4.case.c2" not in {t["id"] for t in then}
    assert [t["id"] for t in then if t["rule"] == "R6"] == []  # c1 alone: 10 + 5 unfiled, 85 passes
    assert by_unit(q.scores(2024, "lc", as_of=as_of, known_at=known_at))["yl"]["score"] == 85
    assert q.scores(2024, "lc", as_of=as_of, known_at=known_at) == folds.scores(
        2024, "lc", as_of=as_of, known_at=known_at
    )
    now = q.triggers(as_of=as_of)
    assert [t["id"] for t in now if t["rule"] == "R6"] == ["R6.agreement.2024.lc.yl"]  # 70, as known now
    assert now == folds.triggers(as_of=as_of)


def test_commendations_keep_the_folds_order_when_officers_were_registered_one_after_another(world: World) -> None:
    """现状视图: each officer's commendations (嘉奖) follow the officer, in the fold's order, also when the officers'
    registrations are neighbours in the log and the first has several."""
    w = world
    w.do("register_person", "a", "yl", Post.ENFORCEMENT_OFFICER, person_id="a", when="2024-01-01")
    w.do("register_person", "b", "yl", Post.ENFORCEMENT_OFFICER, person_id="b", when="2024-01-01")
    w.do("commend", "a", Commendation.LAW_ENFORCEMENT_MODEL, when="2024-02-01")
    w.do("commend", "b", Commendation.LAW_ENFORCEMENT_MODEL, when="2024-03-01")
    w.do("commend", "a", Commendation.LAW_ENFORCEMENT_MODEL, when="2024-04-01")
    q = w.queries()
    assert q._now(None, None)
    folds = w.folds()
    row = by_unit(q.scores(2024, "yl"))["yl"]
    assert [c["record_id"] for c in row["commendations"]] == ["a", "a", "b"]
    assert q.scores(2024, "yl") == folds.scores(2024, "yl")
    assert q.scores(2024, "yl", as_of=at("2024-05-01")) == folds.scores(2024, "yl", as_of=at("2024-05-01"))


def test_a_major_case_at_a_land_station_holds_its_townships_principal_leader_to_account(world: World) -> None:
    # R4 追究政府主要负责人: a case filed with a land station (土管所) happened in its township; its head answers.
    w = world
    w.do("register_unit", "kz-station", "口镇国土资源所", UnitKind.LAND_STATION, "kz", when="2024-01-01")
    w.do("register_person", "口镇镇长", "kz", Post.PRINCIPAL_LEADER, person_id="kz-head", when="2024-01-01")
    w.do("register_person", "所长", "kz-station", Post.PRINCIPAL_LEADER, person_id="st-head", when="2024-01-01")
    major_case(w, "c1", "kz-station", "2024-03-01")
    q = w.queries()
    leaders = {t["id"]: t for t in q.triggers() if t["rule"] == "R4" and "person_id" in t["subject"]}
    assert set(leaders) == {"R4.case.c1.kz-head", "R4.case.c1.st-head"}
    assert leaders["R4.case.c1.kz-head"]["subject"] == {"unit_id": "kz", "person_id": "kz-head"}
    assert leaders == {t["id"]: t for t in w.folds().triggers() if t["id"] in leaders}
    assert q.trigger("R4.case.c1.kz-head") == leaders["R4.case.c1.kz-head"]
    assert [t["id"] for t in q.triggers(unit_id="kz") if t["id"] in leaders] == sorted(leaders)
    assert "R4.case.c1.kz-head" not in {t["id"] for t in q.triggers(unit_id="kz-station")}
    w.do("decide_trigger", "R4.case.c1.kz-head", "R4", DecisionOutcome.WARNING, "重大案件", when="2024-03-10")
    assert w.queries().trigger("R4.case.c1.kz-head")["status"] == "decided"  # type: ignore[index]


def test_a_finding_substantiated_after_the_removal_is_answered_by_it(world: World) -> None:
    # R7: a person is removed from the enforcement post once; a later substantiated report finds them removed already,
    # so its trigger is not left open for a removal the ledger would refuse to record.
    w = world
    w.do("register_person", "执法员", "yl", Post.ENFORCEMENT_OFFICER, person_id="o1", when="2024-01-01")
    w.do("report_misconduct", "o1", MisconductKind.TAKING, "李四", "收受礼品", when="2024-02-01")
    w.do("report_misconduct", "o1", MisconductKind.EATING, "李五", "吃请", when="2024-02-02")
    w.do("record_finding", "o1", "r1", True, when="2024-02-10")
    removed = w.do("remove_from_post", "o1", when="2024-02-15")
    w.do("record_finding", "o1", "r2", True, when="2024-03-10")
    with pytest.raises(RuleViolation):
        w.do("remove_from_post", "o1", when="2024-03-11")
    q = w.queries()
    later = q.trigger("R7.person.o1.r2")
    assert later is not None and later["status"] == "decided" and later["removal_due"] is False
    assert later["decision"]["evidence"] == [removed.position]
    assert [t["id"] for t in q.triggers(status="open") if t["rule"] == "R7"] == []
    assert q.triggers() == w.folds().triggers()
    assert [o["id"] for o in q.officers(status="removal_due")] == []


def test_a_finding_recorded_before_its_report_counts_from_the_report(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # R7: the ledger now refuses a finding dated before the report it decides; a store may hold one recorded before
    # that rule (simulated: reports that do not know when they were made). It takes effect once its report is made,
    # so a later report changes nothing that stood before it, and the view answers a past moment without folding
    # the officer (a report is self-dated).
    from domain.people import MisconductReport, Person

    def before_the_rule(event: Person.MisconductReported, person: Any) -> None:
        person.reports[event.report_id] = MisconductReport(event.report_id, MisconductKind(event.kind))

    monkeypatch.setattr(Person.MisconductReported, "apply", before_the_rule)
    w = world
    w.do("register_person", "执法员", "yl", Post.ENFORCEMENT_OFFICER, person_id="o1", when="2024-01-01")
    w.clock.set("2024-02-20")
    report = w.do("report_misconduct", "o1", MisconductKind.TAKING, "李四", "收受礼品", when="2024-02-20")
    finding = w.do("record_finding", "o1", "r1", True, when="2024-02-10")
    w.clock.set("2024-04-01")
    q, folds = w.queries(), w.folds()
    trigger = q.trigger("R7.person.o1.r1")
    assert trigger is not None and trigger["opened_at"] == at("2024-02-20").isoformat()
    assert trigger["evidence"] == [report.position, finding.position]
    misconduct = [d for d in q.scores(2024, "yl")[0]["deductions"] if d["indicator"] == "misconduct"]
    assert [d["occurred_at"] for d in misconduct] == [at("2024-02-20").isoformat()]
    for day, opened in (("2024-02-15", []), ("2024-02-25", ["R7.person.o1.r1"])):
        moment = {"as_of": at(day)}
        assert [t["id"] for t in q.triggers(**moment) if t["rule"] == "R7"] == opened
        assert q.triggers(**moment) == folds.triggers(**moment)
        assert [o["id"] for o in q.officers(status="removal_due", **moment)] == ["o1"] * len(opened)
        assert q.officers(**moment) == folds.officers(**moment)
        assert q.scores(2024, **moment) == folds.scores(2024, **moment)
    assert q.triggers() == folds.triggers() and q.scores(2024) == folds.scores(2024)


def test_every_trigger_names_the_policy_version_that_opened_it(world: World) -> None:
    # R20: a trigger names its policy version as a deduction does: the one in force when the event that set its
    # deadline or opened it happened (an overdue petition's: its registration's, which set the deadline).
    w = world
    w.do("amend_policy", at("2024-07-01"), {"handling_days": 30}, when="2024-01-02")
    w.do("register_person", "分管领导", "kz", Post.LEADER_IN_CHARGE, person_id="kz-lead", when="2024-01-01")
    petition(w, "x1", "kz", "2024-06-01")
    petition(w, "x2", "kz", "2024-07-05")
    w.do("take_ownership", "x2", "kz-lead", when="2024-07-06")
    w.do("escalate", "x2", EscalationLevel.PROVINCE, False, when="2024-07-10")
    w.do("report_clue", "kz", Violation.INDISCRIMINATE_DIGGING, ClueSource.PATROL, case_id="c1", when="2024-06-20")
    w.clock.set("2024-09-01")
    q = w.queries()
    found = {t["id"]: t["policy_version"] for t in q.triggers()}
    escalation = next(t for t in found if t.startswith("R14.") and not t.endswith(".unit"))
    assert found == {
        "R18.petition.x1.overdue": 1,
        "R18.petition.x2.overdue": 2,
        escalation: 2,
        f"{escalation}.unit": 2,
        "R7.case.c1.unfiled": 1,
    }
    assert q.triggers() == w.folds().triggers()


def test_a_principal_leader_removed_from_post_before_a_case_became_major_is_not_held_to_account_for_it(
    world: World,
) -> None:
    # R4 holds the principal leader in post to account; one removed from post before (调离) is out of post, as the
    # ledger has it elsewhere (no petition ownership, no monthly reception owed).
    w = world
    w.do("register_person", "旧镇长", "kz", Post.PRINCIPAL_LEADER, person_id="old-head", when="2024-01-01")
    w.do("report_misconduct", "old-head", MisconductKind.DERELICTION, "群众", "失职", when="2024-01-10")
    w.do("record_finding", "old-head", "r1", True, when="2024-01-20")
    w.do("register_person", "新镇长", "kz", Post.PRINCIPAL_LEADER, person_id="new-head", when="2024-02-01")
    major_case(w, "c1", "kz", "2024-03-01")
    major_case(w, "c2", "kz", "2024-04-01")
    w.do("remove_from_post", "old-head", when="2024-03-15")
    q = w.queries()
    ids = {t["id"] for t in q.triggers() if t["rule"] == "R4" and "person_id" in t["subject"]}
    assert ids == {"R4.case.c1.old-head", "R4.case.c1.new-head", "R4.case.c2.new-head"}
    assert q.triggers() == w.folds().triggers()
    past = at("2024-03-10")
    assert [t["id"] for t in q.triggers(as_of=past) if t["id"].startswith("R4.case.c1.")] == [
        "R4.case.c1.new-head",
        "R4.case.c1.old-head",
    ]


def test_a_leader_removed_at_the_very_start_of_a_month_owes_no_reception_for_it(world: World) -> None:
    # R17: a month counts while the leader is in post in it; removed at its first instant, they never were.
    w = world
    w.do("register_person", "镇长", "ys", Post.PRINCIPAL_LEADER, person_id="ys-head", when="2024-01-01")
    w.do("report_misconduct", "ys-head", MisconductKind.DERELICTION, "群众", "失职", when="2024-01-10")
    w.do("record_finding", "ys-head", "r1", True, when="2024-01-20")
    w.do("hold_reception", "ys-head", "村委会", when="2024-01-15")
    w.do("remove_from_post", "ys-head", when="2024-02-01")
    q = w.queries()
    row = by_unit(q.scores(2024, as_of=at("2024-06-01")))["ys"]
    assert indicators(row, "missed_reception") == []
    assert row == by_unit(w.folds().scores(2024, as_of=at("2024-06-01")))["ys"]


def test_a_kept_report_restated_as_known_later_stays_json() -> None:
    """A kept report's ``known_at`` is restated in its bytes, its rows untouched; a body not shaped as the reports
    write it (a null moment) is restated through JSON rather than broken."""
    later = at("2024-07-01")
    body = orjson.dumps({"report": "monthly", "as_of": "x", "known_at": "2024-06-01T00:00:00+08:00", "rows": [1]})
    assert orjson.loads(reports.restated(body, later)) == {
        "report": "monthly",
        "as_of": "x",
        "known_at": "2024-07-01T00:00:00+08:00",
        "rows": [1],
    }
    odd = orjson.dumps({"known_at": None, "x": "y"})
    assert orjson.loads(reports.restated(odd, later)) == {"known_at": "2024-07-01T00:00:00+08:00", "x": "y"}


def test_the_case_board_lists_each_cases_steps_and_flags_as_of_a_moment(world: World) -> None:
    """案件台账: open and closed cases by unit and flag — major (重大), supervised and overdue (督办逾期), not
    investigated (有案不查), wrongful (错案) — as they stood at ``as_of`` and as known at ``known_at``; pages join up
    to the whole list."""
    w = world
    w.do("register_person", "执法员", "kz", Post.ENFORCEMENT_OFFICER, person_id="o1", when="2024-01-01")
    big = major_case(w, "c1", "kz", "2024-03-01")
    w.do("report_clue", "ys", Violation.INDISCRIMINATE_DIGGING, ClueSource.PATROL, case_id="c2", when="2024-03-02")
    w.do("report_clue", "yl", Violation.UNLICENSED_MINING, ClueSource.REPORT, case_id="c3", when="2024-03-03")
    w.do("file_case", "c3", ["o1"], when="2024-03-10")
    w.do("supervise", "c3", "laiwu", at("2024-04-01"), when="2024-03-11")
    w.do("file_case", "c1", ["o1"], when="2024-03-05")
    w.do("close_case", "c1", "罚款并拆除", when="2024-05-10")
    w.clock.set("2024-07-01")
    w.do("find_wrongful", "c1", ["o1"], "认定事实不清", when="2024-06-01")
    q = w.queries()

    def board(**asked: Any) -> dict[str, dict[str, Any]]:
        return {row["id"]: row for row in q.cases(**asked)}

    now = board()
    assert list(now) == ["c1", "c2", "c3"]
    assert now["c1"]["flags"] == ["major", "wrongful"] and now["c1"]["status"] == "closed"
    assert (now["c1"]["outcome"], now["c1"]["handler_ids"], now["c1"]["evidence"][0]) == (
        "罚款并拆除",
        ["o1"],
        big.position,
    )
    assert now["c2"]["flags"] == ["not_investigated"] and now["c2"]["filed_at"] is None
    assert now["c3"]["flags"] == ["supervised", "supervision_overdue"] and now["c3"]["resource"] == "minerals"
    assert now["c3"]["supervisions"] == [
        {"by_unit_id": "laiwu", "at": "2024-03-11T00:00:00+08:00", "deadline": "2024-04-01T00:00:00+08:00"}
    ]
    assert list(board(status="open")) == ["c2", "c3"] and list(board(flag="major")) == ["c1"]
    assert list(board(unit_id="lc")) == ["c1", "c3"] and list(board(unit_id="gc")) == ["c2"]
    # As of 25 March: c2's filing deadline (1 April) and c3's supervision deadline had not passed; c1 was open.
    then = board(as_of=at("2024-03-25"))
    assert [(r["status"], r["flags"]) for r in then.values()] == [
        ("open", ["major"]),
        ("open", []),
        ("open", ["supervised"]),
    ]
    # As known before the wrongful finding was recorded (1 July), c1 was not yet found wrongful.
    assert board(as_of=at("2024-06-15"), known_at=at("2024-06-30"))["c1"]["flags"] == ["major"]
    pages, after = [], None
    while True:
        page = q.cases(limit=2, after=after)
        pages += page
        if len(page) < 2:
            break
        after = paging.token(queries.CURSORS["cases"][0](page[-1]))
    assert pages == list(now.values())
    with pytest.raises(ValueError, match="status"):
        q.cases(status="lost")
    # The board is read from the current view's rows (of a past moment, the cases with a later event folded): the
    # same answers as the fold, asked every way.
    fold = w.folds()
    moments: list[dict[str, Any]] = [{}, {"as_of": at("2024-03-25")}, {"as_of": at("2024-05-01")}]
    moments += [{"as_of": at("2024-06-15"), "known_at": at("2024-06-30")}]
    for moment in moments:
        if moment:  # each past moment is answered from the view's rows, not a fold of everything
            assert q._past(moment["as_of"], moment.get("known_at"), None, of="case_board") is not None, moment
        for asked in ({}, {"status": "open"}, {"status": "closed"}, {"flag": "supervision_overdue"}, {"unit_id": "lc"}):
            asked |= moment
            assert q.cases(**asked) == fold.cases(**asked), asked
            assert orjson.dumps(q.cases(**asked)) == orjson.dumps(fold.cases(**asked)), asked  # fields in one order
            assert q.cases(limit=1, **asked) == fold.cases(limit=1, **asked), asked
    assert q._now(None, None) and q.db.query(f"SELECT COUNT(*) FROM {current.TABLE} WHERE kind LIKE 'case%'") != [(0,)]


def test_the_case_boards_rows_judge_a_deadline_that_passes_with_no_new_event(world: World, monkeypatch: Any) -> None:
    """现状视图: a case reported today is not yet 有案不查, nor its supervision overdue; once the deadlines pass the
    stored rows say so, as the fold does, with nothing recorded meanwhile."""
    w = world
    today = datetime.now(BUREAU_TZ).date()
    w.do("report_clue", "kz", Violation.INDISCRIMINATE_DIGGING, ClueSource.PATROL, case_id="c1", when=today.isoformat())
    deadline = at((today + timedelta(days=3)).isoformat())
    w.do("supervise", "c1", "laiwu", deadline, when=today.isoformat())
    q, fold = w.queries(), w.folds()
    assert q.cases()[0]["flags"] == fold.cases()[0]["flags"] == ["supervised"]
    later = datetime.now(BUREAU_TZ) + timedelta(days=40)  # past the supervision's deadline and the filing deadline
    monkeypatch.setattr(queries, "utc_now", lambda: later)
    overdue = ["supervised", "supervision_overdue", "not_investigated"]
    assert q.cases()[0]["flags"] == fold.cases()[0]["flags"] == overdue
    assert [r["id"] for r in q.cases(flag="supervision_overdue")] == ["c1"]
