"""Each single-record rule of DOMAIN.md refuses with the rule named — and a refusal records nothing."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from domain.application import Ledger
from domain.cases import EnforcementCase
from domain.errors import DomainError, InvalidValue, RecordExists, RecordNotFound, RuleViolation, StaleVersion
from domain.people import Person
from domain.petitions import Petition
from domain.vocabulary import (
    Agency,
    ClueSource,
    Commendation,
    EscalationLevel,
    Meeting,
    MisconductKind,
    NailCheck,
    Post,
    UnitKind,
    Violation,
)
from tests.domain.world import CLERK, build, case, day, petition


@pytest.fixture
def world(ledger: Ledger) -> Ledger:
    build(ledger)
    return ledger


def refused(ledger: Ledger, error: type[DomainError], rule: str | None, action: Callable[[], Any]) -> DomainError:
    """Run the action, expect the refusal, and check the log did not grow."""
    head = ledger.recorder.max_notification_id()
    with pytest.raises(error) as info:
        action()
    assert ledger.recorder.max_notification_id() == head, "a refused command recorded something"
    if rule is not None:
        assert info.value.rule == rule
    return info.value


def cmd(at: float) -> dict[str, Any]:
    return {"actor": CLERK, "occurred_at": day(at)}


def ready_to_close(ledger: Ledger, pid: str) -> None:
    """An initial petition needs ownership, the three meetings, a reply and a return visit (R16, R18)."""
    ledger.take_ownership(pid, "head", **cmd(2))
    for i, party in enumerate(Meeting):
        ledger.hold_meeting(pid, party, **cmd(3 + i))
    ledger.reply_petition(pid, "已答复", **cmd(10))
    ledger.return_visit(pid, True, **cmd(12))


# --- petitions -------------------------------------------------------------------------------


def test_r12_nail_case_closes_only_with_all_four_checks(world: Ledger) -> None:
    pid = petition(world)
    ready_to_close(world, pid)
    world.designate_nail_case(pid, "head", **cmd(13))
    for check in list(NailCheck)[:3]:
        world.record_nail_check(pid, check, **cmd(14))
    error = refused(world, RuleViolation, "R12", lambda: world.close_petition(pid, **cmd(15)))
    assert "petitioner_satisfied" in str(error)
    world.record_nail_check(pid, NailCheck.PETITIONER_SATISFIED, **cmd(15))
    world.close_petition(pid, **cmd(16))
    assert world.get(Petition, pid).closed


def test_r12_checks_only_on_a_nail_case_and_each_once(world: Ledger) -> None:
    pid = petition(world)
    refused(world, RuleViolation, "R12", lambda: world.record_nail_check(pid, NailCheck.CAUSE_FOUND, **cmd(2)))
    world.designate_nail_case(pid, "head", **cmd(2))
    world.record_nail_check(pid, NailCheck.CAUSE_FOUND, **cmd(3))
    refused(world, RuleViolation, "R12", lambda: world.record_nail_check(pid, NailCheck.CAUSE_FOUND, **cmd(4)))


def test_r12_a_person_removed_from_post_cannot_resolve_a_nail_case(world: Ledger) -> None:
    # 调离 (R7) ends the person's part in petitions: no ownership, no on-site ownership, no nail case to resolve.
    report = world.report_misconduct("officer", MisconductKind.TAKING, "匿名群众", "收受好处", **cmd(1))
    world.record_finding("officer", report.extra["report_id"], True, **cmd(1))
    world.remove_from_post("officer", **cmd(1))
    pid = petition(world, count=12)
    refused(world, RuleViolation, "R17", lambda: world.assign_on_site(pid, "officer", day(40), **cmd(2)))
    refused(world, RuleViolation, "R12", lambda: world.designate_nail_case(pid, "officer", **cmd(2)))
    world.designate_nail_case(pid, "head", **cmd(2))
    assert world.get(Petition, pid).resolver_id == "head"


def test_r7_a_finding_cannot_be_dated_before_the_report_it_decides(world: Ledger) -> None:
    report = world.report_misconduct("officer", MisconductKind.TAKING, "匿名群众", "收受好处", **cmd(5))
    rid = report.extra["report_id"]
    refused(world, RuleViolation, "chronology", lambda: world.record_finding("officer", rid, True, **cmd(4)))
    world.record_finding("officer", rid, True, **cmd(5))  # the same moment is not before it
    assert [r.substantiated for r in world.get(Person, "officer").reports.values()] == [True]


def test_r9_only_a_leader_owns_a_petition(world: Ledger) -> None:
    pid = petition(world)
    refused(world, RuleViolation, "R9", lambda: world.take_ownership(pid, "clerk", **cmd(2)))
    refused(world, RecordNotFound, None, lambda: world.take_ownership(pid, "nobody", **cmd(2)))
    world.take_ownership(pid, "head", **cmd(2))
    assert world.get(Petition, pid).owner_id == "head"


def test_r16_initial_petition_needs_three_meetings_and_return_visit(world: Ledger) -> None:
    pid = petition(world)
    world.take_ownership(pid, "head", **cmd(2))
    world.reply_petition(pid, "已答复", **cmd(5))
    error = refused(world, RuleViolation, "R16", lambda: world.close_petition(pid, **cmd(6)))
    assert "meetings" in str(error)
    for party in Meeting:
        world.hold_meeting(pid, party, **cmd(6))
    refused(world, RuleViolation, "R16", lambda: world.hold_meeting(pid, Meeting.LEADER, **cmd(7)))
    error = refused(world, RuleViolation, "R16", lambda: world.close_petition(pid, **cmd(7)))
    assert "return visit" in str(error)
    world.return_visit(pid, True, **cmd(8))
    world.close_petition(pid, **cmd(9))


def test_a_repeat_petition_is_not_initial_and_needs_only_a_reply(world: Ledger) -> None:
    first = petition(world)
    repeat = petition(world, "XF-2", repeat_of=first, at=3)
    assert not world.get(Petition, repeat).initial
    refused(world, RuleViolation, "R18", lambda: world.close_petition(repeat, **cmd(4)))
    world.reply_petition(repeat, "维持原答复", **cmd(5))
    world.close_petition(repeat, **cmd(6))


def test_r18_one_extension_of_at_most_max_extension_days_before_the_deadline(world: Ledger) -> None:
    pid = petition(world)
    refused(world, RuleViolation, "R18", lambda: world.extend_petition(pid, 31, **cmd(10)))
    refused(world, RuleViolation, "R18", lambda: world.extend_petition(pid, 10, **cmd(62)))
    world.extend_petition(pid, 30, **cmd(10))
    assert world.get(Petition, pid).handling_deadline == day(1) + timedelta(days=90)
    refused(world, RuleViolation, "R18", lambda: world.extend_petition(pid, 5, **cmd(11)))


def test_collective_and_deadlines_follow_the_policy_in_force(world: Ledger) -> None:
    assert world.get(Petition, petition(world, "XF-5", count=5)).collective
    assert not world.get(Petition, petition(world, "XF-4", count=4)).collective
    world.amend_policy(day(10), {"collective_threshold": 8, "handling_days": 30}, actor="admin", occurred_at=day(5))
    later = world.get(Petition, petition(world, "XF-6", count=6, at=11))
    assert not later.collective
    assert later.handling_deadline == day(11) + timedelta(days=30)
    assert later.initial


def test_closed_petition_refuses_work_but_records_escalation(world: Ledger) -> None:
    pid = petition(world)
    ready_to_close(world, pid)
    world.close_petition(pid, **cmd(13))
    refused(world, RuleViolation, "closed-record", lambda: world.reply_petition(pid, "again", **cmd(14)))
    refused(world, RuleViolation, "closed-record", lambda: world.designate_nail_case(pid, "head", **cmd(14)))
    world.escalate(pid, EscalationLevel.BEIJING, False, **cmd(20))  # R14: 再出现赴京
    assert world.get(Petition, pid).escalations == ["beijing"]


def test_return_visit_follows_the_reply_and_diversion_moves_the_unit(world: Ledger) -> None:
    pid = petition(world)
    refused(world, RuleViolation, "R16", lambda: world.return_visit(pid, True, **cmd(2)))
    refused(world, RuleViolation, "R15", lambda: world.divert_petition(pid, "kouzhen", **cmd(2)))
    world.divert_petition(pid, "kouzhen-station", **cmd(2))
    assert world.get(Petition, pid).unit_id == "kouzhen-station"


# --- cases ------------------------------------------------------------------------------------


def test_r2_a_case_cannot_close_before_it_is_filed(world: Ledger) -> None:
    cid = case(world)
    refused(world, RuleViolation, "R2", lambda: world.close_case(cid, "结案", **cmd(2)))
    refused(world, RuleViolation, "R2", lambda: world.decide_penalty(cid, Decimal(1000), None, **cmd(2)))
    world.file_case(cid, ["officer"], **cmd(2))
    refused(world, RuleViolation, "R2", lambda: world.file_case(cid, ["officer"], **cmd(3)))
    world.handle_jointly(cid, [Agency.POLICE, Agency.DISCIPLINE], **cmd(3))
    world.close_case(cid, "结案", **cmd(4))
    assert world.get(EnforcementCase, cid).agencies == {"police", "discipline"}  # R3


def test_r2_wrongful_finding_only_after_closure_and_allowed_on_a_closed_case(world: Ledger) -> None:
    cid = case(world)
    world.file_case(cid, ["officer"], **cmd(2))
    refused(world, RuleViolation, "R2", lambda: world.find_wrongful(cid, ["officer"], "错案", **cmd(3)))
    world.close_case(cid, "结案", **cmd(4))
    refused(world, RuleViolation, "closed-record", lambda: world.report_upward(cid, **cmd(5)))
    world.find_wrongful(cid, ["officer"], "认定事实不清", **cmd(30))
    assert world.get(EnforcementCase, cid).wrongful
    refused(world, RuleViolation, "R2", lambda: world.find_wrongful(cid, ["officer"], "again", **cmd(31)))


def test_r2_a_wrongful_finding_names_only_the_cases_handlers(world: Ledger) -> None:
    # 错案追究 holds the handlers named at filing to account (one R2 trigger each): some or all, never a stranger.
    cid = case(world)
    world.file_case(cid, ["officer", "clerk"], **cmd(2))
    world.close_case(cid, "结案", **cmd(4))
    error = refused(
        world, RuleViolation, "R2", lambda: world.find_wrongful(cid, ["officer", "head"], "错案", **cmd(30))
    )
    assert "head did not handle" in str(error)  # the stranger named, not the handler beside them
    refused(world, RuleViolation, "R2", lambda: world.find_wrongful(cid, ["head"], "错案", **cmd(30)))
    world.find_wrongful(cid, ["officer"], "认定事实不清", **cmd(30))
    assert world.get(EnforcementCase, cid).wrongful


def test_r4_major_by_threshold_of_the_policy_in_force_or_by_decision(world: Ledger) -> None:
    assert world.get(EnforcementCase, case(world, "AJ-big", area="10")).is_major
    small = case(world, "AJ-small", area="9.5")
    assert not world.get(EnforcementCase, small).is_major
    world.declare_major(small, "影响恶劣", **cmd(2))
    assert world.get(EnforcementCase, small).is_major
    world.amend_policy(day(5), {"major_case_area_mu": 5}, actor="admin", occurred_at=day(4))
    assert world.get(EnforcementCase, case(world, "AJ-later", area="6", at=6)).is_major


def test_supervision_needs_a_deadline_after_it_begins(world: Ledger) -> None:
    cid = case(world)
    refused(world, InvalidValue, None, lambda: world.supervise(cid, "laiwu", day(0), **cmd(2)))
    world.supervise(cid, "laiwu", day(30), **cmd(2))


def test_r2_a_case_is_supervised_by_a_higher_level_only(world: Ledger) -> None:
    """上级督办: the units above the case's unit (and the unit itself), and the bureau offices of a higher level in
    whose government's area it lies; not a sibling, a unit below, or an office of another district."""
    a = {"actor": "admin", "occurred_at": day(0)}
    world.register_unit("gangcheng", "钢城区", UnitKind.DISTRICT, "laiwu", **a)
    world.register_unit("laiwu-bureau", "莱芜市国土资源局", UnitKind.CITY_BUREAU, "laiwu", **a)
    world.register_unit("laicheng-branch", "莱城分局", UnitKind.BRANCH_BUREAU, "laicheng", **a)
    world.register_unit("gangcheng-branch", "钢城分局", UnitKind.BRANCH_BUREAU, "gangcheng", **a)
    cid = case(world)  # at 口镇国土资源所, in 口镇, 莱城区
    for unit in ("gangcheng", "gangcheng-branch"):
        error = refused(world, RuleViolation, "R2", lambda u=unit: world.supervise(cid, u, day(30), **cmd(2)))
        assert f"{unit} is not above kouzhen-station" in str(error)
    # The case's own unit may record a supervision too: a city's own case has no level above it.
    for unit in ("kouzhen-station", "kouzhen", "laicheng", "laiwu", "laiwu-bureau", "laicheng-branch"):
        world.supervise(cid, unit, day(30), **cmd(2))
    district_case = world.report_clue(
        "laicheng", Violation.ILLEGAL_LAND_USE, ClueSource.PATROL, case_id="AJ-D", actor="officer", occurred_at=day(1)
    ).id
    refused(world, RuleViolation, "R2", lambda: world.supervise(district_case, "laicheng-branch", day(30), **cmd(2)))
    refused(world, RuleViolation, "R2", lambda: world.supervise(district_case, "kouzhen", day(30), **cmd(2)))
    world.supervise(district_case, "laiwu-bureau", day(30), **cmd(2))


def test_a_bureau_office_under_another_names_the_area_it_covers(world: Ledger) -> None:
    """垂直管理 (R15): a branch bureau under the city bureau may name the district it covers, a land station under a
    branch bureau one of that district's townships; its chain (属地管理) then runs up both, so the district's
    supervisors, territory and agreements reach it. Any other jurisdiction is refused."""
    a = {"actor": "admin", "occurred_at": day(0)}
    world.register_unit("gangcheng", "钢城区", UnitKind.DISTRICT, "laiwu", **a)
    world.register_unit("yanzhuang", "颜庄镇", UnitKind.TOWNSHIP, "gangcheng", **a)
    world.register_unit("bureau", "莱芜市国土资源局", UnitKind.CITY_BUREAU, "laiwu", **a)
    world.register_unit("lc-branch", "莱城分局", UnitKind.BRANCH_BUREAU, "bureau", jurisdiction_id="laicheng", **a)
    for args, parent, jurisdiction in [
        (("x1", "分局", UnitKind.BRANCH_BUREAU), "bureau", "kouzhen"),  # a branch covers a district
        (("x2", "土管所", UnitKind.LAND_STATION), "lc-branch", "yanzhuang"),  # outside the branch's district
        (("x3", "土管所", UnitKind.LAND_STATION), "kouzhen", "kouzhen"),  # under a government: covers its parent's
        (("x4", "分局", UnitKind.BRANCH_BUREAU), "laicheng", "laicheng"),
    ]:
        register = functools.partial(world.register_unit, *args, parent, jurisdiction_id=jurisdiction, **a)
        refused(world, RuleViolation, "R15", register)
    world.register_unit("kz-station", "口镇土管所", UnitKind.LAND_STATION, "lc-branch", jurisdiction_id="kouzhen", **a)
    assert world.lineage("kz-station") == ("kz-station", "kouzhen", "laicheng", "laiwu", "lc-branch", "bureau")
    cid = world.report_clue(
        "kz-station", Violation.ILLEGAL_LAND_USE, ClueSource.PATROL, case_id="AJ-S", actor="officer", occurred_at=day(1)
    ).id
    world.supervise(cid, "laicheng", day(30), **cmd(2))  # the district is above the station in its area
    refused(world, RuleViolation, "R2", lambda: world.supervise(cid, "gangcheng", day(30), **cmd(2)))


def test_history_is_entered_under_records_registered_later(world: Ledger) -> None:
    """A ledger is loaded by setting units and people up today and entering history dated earlier: a case or
    petition filed under a unit, a repeat of a petition, registered before them is taken (DOMAIN.md is silent)."""
    later = petition(world, "XF-later", at=6)
    petition(world, "XF-early", repeat_of=later, at=3)
    world.register_unit("xinzhen", "新镇", UnitKind.TOWNSHIP, "laicheng", actor="admin", occurred_at=day(5))
    world.report_clue("xinzhen", Violation.ILLEGAL_LAND_USE, ClueSource.PATROL, actor="officer", occurred_at=day(4))


# --- conduct ----------------------------------------------------------------------------------


def test_r7_removal_needs_a_substantiated_finding(world: Ledger) -> None:
    report = world.report_misconduct("officer", MisconductKind.TAKING, "匿名群众", "收受好处", **cmd(2))
    report_id = report.extra["report_id"]
    refused(world, RuleViolation, "R7", lambda: world.remove_from_post("officer", **cmd(3)))
    world.record_finding("officer", report_id, False, **cmd(4))
    refused(world, RuleViolation, "R7", lambda: world.remove_from_post("officer", **cmd(5)))
    refused(world, RuleViolation, "R7", lambda: world.record_finding("officer", report_id, True, **cmd(5)))
    second = world.report_misconduct("officer", MisconductKind.CASE_NOT_INVESTIGATED, "同事", "有案不查", **cmd(6))
    world.record_finding("officer", second.extra["report_id"], True, **cmd(7))
    world.remove_from_post("officer", **cmd(7))
    world.refer_to_judiciary("officer", **cmd(8))
    person = world.get(Person, "officer")
    assert person.removed and person.referred
    refused(world, RuleViolation, "R7", lambda: world.remove_from_post("officer", **cmd(9)))
    refused(
        world, RuleViolation, "R8", lambda: world.commend("officer", Commendation.LAND_RESOURCES_GUARDIAN, **cmd(9))
    )


def test_a_step_cannot_be_dated_before_the_steps_it_rests_on(world: Ledger) -> None:
    """An entry may come late (补录), but never dated before what it follows in business time: a removal before its
    finding, a closure before its reply, a wrongful finding before the closure, a step of a case before its filing,
    an ownership before the leader took post. Each refused records nothing; dated at or after, each is taken."""
    report = world.report_misconduct("officer", MisconductKind.TAKING, "匿名群众", "收受好处", **cmd(2)).extra
    world.record_finding("officer", report["report_id"], True, **cmd(10))
    refused(world, RuleViolation, "chronology", lambda: world.remove_from_post("officer", **cmd(5)))
    refused(world, RuleViolation, "chronology", lambda: world.refer_to_judiciary("officer", **cmd(9)))
    world.remove_from_post("officer", **cmd(10))

    repeat = petition(world, "XF-R", repeat_of=petition(world, "XF-0"))  # not initial: closure needs its reply
    world.reply_petition(repeat, "已答复", **cmd(8))
    refused(world, RuleViolation, "chronology", lambda: world.close_petition(repeat, **cmd(3)))
    refused(world, RuleViolation, "chronology", lambda: world.return_visit(repeat, True, **cmd(7)))
    world.return_visit(repeat, True, **cmd(20))  # after closure's date-to-be: not what closure rests on
    world.close_petition(repeat, **cmd(9))

    initial = petition(world, "XF-I")
    ready_to_close(world, initial)  # its last step, the return visit, on day 12
    refused(world, RuleViolation, "chronology", lambda: world.close_petition(initial, **cmd(11)))
    world.close_petition(initial, **cmd(12))

    owned = petition(world, "XF-O")
    world.take_ownership(owned, "head", **cmd(6))
    refused(world, RuleViolation, "chronology", lambda: world.hold_meeting(owned, Meeting.LEADER, **cmd(5)))
    world.hold_meeting(owned, Meeting.LEADER, **cmd(6))
    world.register_person(
        "新镇长", "kouzhen", Post.PRINCIPAL_LEADER, person_id="head-2", actor=CLERK, occurred_at=day(4)
    )
    refused(world, RuleViolation, "chronology", lambda: world.take_ownership(owned, "head-2", **cmd(3)))

    cid = case(world)
    world.file_case(cid, ["officer"], **cmd(5))
    refused(world, RuleViolation, "chronology", lambda: world.decide_penalty(cid, Decimal(1000), None, **cmd(4)))
    refused(world, RuleViolation, "chronology", lambda: world.close_case(cid, "结案", **cmd(4)))
    world.close_case(cid, "结案", **cmd(8))
    refused(world, RuleViolation, "chronology", lambda: world.find_wrongful(cid, ["officer"], "错案", **cmd(7)))
    world.find_wrongful(cid, ["officer"], "错案", **cmd(8))


def test_r17_only_leaders_hold_public_receptions(world: Ledger) -> None:
    refused(world, RuleViolation, "R17", lambda: world.hold_reception("officer", "口镇便民中心", **cmd(2)))
    world.hold_reception("head", "口镇便民中心", **cmd(2))
    assert world.get(Person, "head").receptions == 1


# --- units, time, identity, concurrency -----------------------------------------------------------


def test_unit_tree_and_quota_rules(world: Ledger) -> None:
    refused(
        world, RuleViolation, "R15", lambda: world.register_unit("x", "某镇", UnitKind.TOWNSHIP, "laiwu", actor="admin")
    )
    refused(
        world,
        RecordExists,
        "unique-id",
        lambda: world.register_unit("laicheng", "莱城区", UnitKind.DISTRICT, "laiwu", actor="admin"),
    )
    refused(world, RuleViolation, "R19", lambda: world.allocate_quota("kouzhen", 2025, Decimal(10), **cmd(2)))
    refused(world, InvalidValue, None, lambda: world.allocate_quota("laicheng", 2025, Decimal(-1), **cmd(2)))
    world.allocate_quota("laicheng", 2025, Decimal(600), **cmd(2))
    world.approve_land("kouzhen", Decimal("12.5"), "工业园", **cmd(3))


def test_business_time_cannot_be_future_or_before_the_record(world: Ledger) -> None:
    pid = petition(world, at=5)
    refused(world, RuleViolation, "chronology", lambda: world.take_ownership(pid, "head", **cmd(4)))
    future = world.clock() + timedelta(hours=1)
    refused(world, InvalidValue, None, lambda: world.take_ownership(pid, "head", actor=CLERK, occurred_at=future))


def test_bad_ids_and_text_are_refused(world: Ledger) -> None:
    refused(
        world,
        InvalidValue,
        None,
        lambda: world.register_person("x", "kouzhen", Post.PETITION_CLERK, person_id="../etc", actor="a"),
    )
    refused(
        world, InvalidValue, None, lambda: world.register_person("a\x00b", "kouzhen", Post.PETITION_CLERK, actor="a")
    )
    refused(world, RecordNotFound, None, lambda: world.get(Petition, "nope"))


def test_expected_version_refuses_a_stale_write(world: Ledger) -> None:
    pid = petition(world)
    world.take_ownership(pid, "head", expected_version=1, **cmd(2))
    refused(
        world,
        StaleVersion,
        "optimistic-concurrency",
        lambda: world.hold_meeting(pid, Meeting.LEADER, expected_version=1, **cmd(3)),
    )
    assert world.hold_meeting(pid, Meeting.LEADER, expected_version=2, **cmd(3)).version == 3


def test_idempotency_key_returns_the_first_answer_and_records_nothing_new(world: Ledger) -> None:
    pid = petition(world)
    first = world.take_ownership(pid, "head", idempotency_key="k-1", **cmd(2))
    head = world.recorder.max_notification_id()
    again = world.take_ownership(pid, "head", idempotency_key="k-1", **cmd(2))
    assert (again.id, again.version, again.position) == (first.id, first.version, first.position)
    assert world.recorder.max_notification_id() == head
    created = world.register_petition(
        "kouzhen", *_petition_args(), petition_id="XF-9", idempotency_key="k-2", actor=CLERK, occurred_at=day(1)
    )
    assert (
        world.register_petition(
            "kouzhen", *_petition_args(), petition_id="XF-9", idempotency_key="k-2", actor=CLERK, occurred_at=day(1)
        ).position
        == created.position
    )


def _petition_args() -> tuple[Any, ...]:
    from domain.vocabulary import Channel, PetitionCategory

    return (Channel.LETTER, 1, "李四", "补偿", PetitionCategory.COMPENSATION)


def test_state_by_version_and_as_of(world: Ledger) -> None:
    pid = petition(world)
    world.take_ownership(pid, "head", **cmd(2))
    world.designate_nail_case(pid, "head", **cmd(6))
    assert world.get(Petition, pid, version=1).owner_id is None
    assert world.as_of(Petition, pid, day(3)).owner_id == "head"
    assert not world.as_of(Petition, pid, day(3)).nail_case
    refused(world, RecordNotFound, None, lambda: world.as_of(Petition, pid, day(0)))


def test_personal_data_is_sealed_at_rest_and_erasable(world: Ledger) -> None:
    pid = petition(world)
    stored = [n.state for n in world.recorder.select_notifications(start=1, limit=1000)]
    assert not any("张三".encode() in state for state in stored)
    assert world.events_of("petition", pid)[0].petitioner == "张三"
    world.erase_personal_data("petition", pid, "依法删除", actor="admin")
    assert world.events_of("petition", pid)[0].petitioner == "[erased]"
    assert [n.state for n in world.recorder.select_notifications(start=1, limit=len(stored))] == stored


def test_r17_on_site_ownership_names_a_person_and_a_later_deadline(world: Ledger) -> None:
    pid = petition(world, count=12)
    refused(world, InvalidValue, None, lambda: world.assign_on_site(pid, "head", day(1), **cmd(2)))
    world.assign_on_site(pid, "head", day(40), **cmd(2))
    state = world.get(Petition, pid)
    assert (state.on_site_owner_id, state.on_site_deadline) == ("head", day(40))
