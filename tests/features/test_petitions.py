"""Specs of petitions (信访): features/petitions/ — R9–R18."""

from __future__ import annotations

from typing import Any

from pytest_bdd import given, parsers, scenarios, then, when

from tests.features.world import (
    BOARD_STATUSES,
    ESCALATIONS,
    FLAGS,
    INDICATORS,
    MEETINGS,
    NAIL_CHECKS,
    YES,
    World,
    business_time,
    code,
    day_start,
    local_date,
    words,
)

scenarios("petitions")


def _path(ctx: World, petition: str, step: str = "") -> str:
    return f"/v1/petitions/{ctx.known('petition', petition)}" + (f"/{step}" if step else "")


def _petition(ctx: World, petition: str) -> dict[str, Any]:
    return ctx.get("clerk", _path(ctx, petition))


def _board_row(ctx: World, petition: str) -> dict[str, Any]:
    pid = ctx.known("petition", petition)
    rows = [r for r in ctx.items("supervisor", "/v1/petitions") if r["id"] == pid]
    assert rows, f"petition {petition} is not on the board"
    return rows[0]


# --- commands ---------------------------------------------------------------------------------


@given(parsers.parse('信访件 "{petition}" 已于 {day} 完成以下见面: {parties}'))
def meetings_held(ctx: World, petition: str, day: str, parties: str) -> None:
    for party in words(parties):
        ctx.must(
            "clerk", _path(ctx, petition, "meetings"), {"party": MEETINGS[party], "occurred_at": business_time(day)}
        )


@when(parsers.parse('信访件 "{petition}" 于 {day} 完成以下见面: {parties}'))
def meeting_held(ctx: World, petition: str, day: str, parties: str) -> None:
    for party in words(parties):
        ctx.command(
            "clerk", _path(ctx, petition, "meetings"), {"party": MEETINGS[party], "occurred_at": business_time(day)}
        )


@given(parsers.parse('信访工作人员于 {day} 答复信访件 "{petition}"'))
def reply(ctx: World, day: str, petition: str) -> None:
    ctx.must("clerk", _path(ctx, petition, "reply"), {"summary": "依法依规答复", "occurred_at": business_time(day)})


@given(parsers.parse('信访工作人员于 {day} 回访信访件 "{petition}", 信访人满意'))
@when(parsers.parse('信访工作人员于 {day} 回访信访件 "{petition}", 信访人满意'))
def return_visit(ctx: World, day: str, petition: str) -> None:
    ctx.command("clerk", _path(ctx, petition, "return-visit"), {"satisfied": True, "occurred_at": business_time(day)})


@when(parsers.parse('信访工作人员于 {day} 对信访件 "{petition}" 结案'))
def close(ctx: World, day: str, petition: str) -> None:
    ctx.command("clerk", _path(ctx, petition, "closure"), {"occurred_at": business_time(day)})


@given(parsers.parse('信访工作人员于 {day} 将信访件 "{petition}" 列为钉子案, 解决责任人为 {resolver}'))
@when(parsers.parse('信访工作人员于 {day} 将信访件 "{petition}" 列为钉子案, 解决责任人为 {resolver}'))
def designate_nail_case(ctx: World, day: str, petition: str, resolver: str) -> None:
    body = {"resolver_id": ctx.known("person", resolver), "occurred_at": business_time(day)}
    ctx.command("clerk", _path(ctx, petition, "nail-case"), body)
    assert ctx.last is not None and ctx.last.status_code == 200, ctx.last and ctx.last.text


@given(parsers.parse('信访件 "{petition}" 已于 {day} 记录以下核查: {checks}'))
def nail_checks_recorded(ctx: World, petition: str, day: str, checks: str) -> None:
    for check in words(checks):
        ctx.must(
            "clerk",
            _path(ctx, petition, "nail-checks"),
            {"check": NAIL_CHECKS[check], "occurred_at": business_time(day)},
        )


@when(parsers.parse('信访工作人员于 {day} 记录信访件 "{petition}" 的核查 {check}'))
def nail_check(ctx: World, day: str, petition: str, check: str) -> None:
    ctx.command(
        "clerk", _path(ctx, petition, "nail-checks"), {"check": NAIL_CHECKS[check], "occurred_at": business_time(day)}
    )


@when(parsers.parse('信访工作人员于 {day} 记录信访件 "{petition}" 的信访人息诉罢访'))
def cessation(ctx: World, day: str, petition: str) -> None:
    ctx.command("clerk", _path(ctx, petition, "cessation"), {"occurred_at": business_time(day)})


@given(parsers.re(r'信访工作人员于 (?P<day>\S+) 记录信访件 "(?P<petition>[^"]+)" 的信访人(?P<where>\S+上访)$'))
@when(parsers.re(r'信访工作人员于 (?P<day>\S+) 记录信访件 "(?P<petition>[^"]+)" 的信访人(?P<where>\S+上访)$'))
def escalate(ctx: World, day: str, petition: str, where: str) -> None:
    level, collective = ESCALATIONS[where]
    body = {"level": level, "collective": collective, "occurred_at": business_time(day)}
    ctx.command("clerk", _path(ctx, petition, "escalations"), body)


@given(parsers.parse('信访工作人员于 {day} 将信访件 "{petition}" 的办理期限延长 {days:d} 日'))
@when(parsers.parse('信访工作人员于 {day} 将信访件 "{petition}" 的办理期限延长 {days:d} 日'))
def extend(ctx: World, day: str, petition: str, days: int) -> None:
    ctx.command("clerk", _path(ctx, petition, "extension"), {"days": days, "occurred_at": business_time(day)})


@when(parsers.parse('信访工作人员于 {day} 将信访件 "{petition}" 分流至 {unit}'))
def divert(ctx: World, day: str, petition: str, unit: str) -> None:
    body = {"to_unit_id": ctx.known("unit", unit), "occurred_at": business_time(day)}
    ctx.command("clerk", _path(ctx, petition, "diversion"), body)


@given(parsers.parse("{person} 于以下日期到基层公开接访: {days}"))
def receptions(ctx: World, person: str, days: str) -> None:
    for day in words(days):
        body = {"place": "村委会公开接访", "occurred_at": business_time(day)}
        ctx.must("clerk", f"/v1/people/{ctx.known('person', person)}/receptions", body)


@when(parsers.parse("信访工作人员记录 {person} 于 {day} 到基层公开接访"))
def reception(ctx: World, person: str, day: str) -> None:
    body = {"place": "村委会公开接访", "occurred_at": business_time(day)}
    ctx.command("clerk", f"/v1/people/{ctx.known('person', person)}/receptions", body)


@when(parsers.parse('信访工作人员于 {day} 安排 {person} 蹲点包案信访件 "{petition}", 限期 {deadline} 前解决'))
def on_site_ownership(ctx: World, day: str, person: str, petition: str, deadline: str) -> None:
    ctx.require_route("POST", "/v1/petitions/{petition_id}/on-site-ownership", "蹲点包案 with a deadline, R17")
    body = {
        "person_id": ctx.known("person", person),
        "deadline": business_time(deadline),
        "occurred_at": business_time(day),
    }
    ctx.command("clerk", _path(ctx, petition, "on-site-ownership"), body)


@when(parsers.parse("督查人员查看 {status} 的信访台账"))
def read_board(ctx: World, status: str) -> None:
    ctx.found["board"] = [r["id"] for r in ctx.items("supervisor", "/v1/petitions", {"status": BOARD_STATUSES[status]})]


@when(parsers.re(r"督查人员查看(?:截至 (?P<day>\S+) )?标注为 (?P<flag>\S+) 的信访台账"))
def read_board_by_flag(ctx: World, flag: str, day: str | None) -> None:
    """The board by flag, as of the start of ``day`` when one is named."""
    params = {"flag": code(FLAGS, flag)} | ({"as_of": day_start(day)} if day else {})
    ctx.found["board"] = [r["id"] for r in ctx.items("supervisor", "/v1/petitions", params)]


@when(parsers.parse("督查人员按每页 {size:d} 件分页查看 {unit} {status} 的信访台账"))
def read_board_by_page(ctx: World, size: int, unit: str, status: str) -> None:
    """分页: each page asked after the last one's ``next_after``, until one names none."""
    params = {"status": BOARD_STATUSES[status], "unit_id": ctx.known("unit", unit)}
    pages: list[list[str]] = []
    after = None
    while True:
        answer = ctx.get("supervisor", "/v1/petitions", {**params, "limit": size, "after": after})
        pages.append([row["id"] for row in answer["items"]])
        after = answer["next_after"]
        if after is None:
            break
    ctx.found["pages"] = pages
    ctx.found["board"] = [row["id"] for row in ctx.items("supervisor", "/v1/petitions", params)]


# --- outcomes ---------------------------------------------------------------------------------


@then(parsers.parse('信访台账上有信访件 "{petition}"'))
def on_board(ctx: World, petition: str) -> None:
    assert ctx.known("petition", petition) in ctx.found["board"], ctx.found["board"]


@then(parsers.parse("各页依次为: {pages}"))
def pages_are(ctx: World, pages: str) -> None:
    expected = [
        [ctx.known("petition", name.strip().strip('"')) for name in page.split(",")] for page in pages.split("/")
    ]
    # A page as full as asked names the next, which may be empty: a last page of nothing ends the list.
    found = [page for page in ctx.found["pages"] if page]
    assert found == expected, ctx.found["pages"]


@then("逐页所得与整本台账一致")
def pages_join_up(ctx: World) -> None:
    assert [pid for page in ctx.found["pages"] for pid in page] == ctx.found["board"]


@then(parsers.parse('信访台账上没有信访件 "{petition}"'))
def not_on_board(ctx: World, petition: str) -> None:
    assert ctx.known("petition", petition) not in ctx.found["board"], ctx.found["board"]


@then(parsers.parse('信访台账上信访件 "{petition}" 的标注为 {flags}'))
def flags_are(ctx: World, petition: str, flags: str) -> None:
    row = _board_row(ctx, petition)
    assert sorted(row["flags"]) == sorted(code(FLAGS, f) for f in words(flags)), row["flags"]


@then(parsers.parse('信访台账上信访件 "{petition}" 的标注包含 {flags}'))
def flags_include(ctx: World, petition: str, flags: str) -> None:
    row = _board_row(ctx, petition)
    assert {code(FLAGS, f) for f in words(flags)} <= set(row["flags"]), row["flags"]


@then(parsers.parse('信访台账上信访件 "{petition}" 的包案领导为 {leader}'))
def owner_is(ctx: World, petition: str, leader: str) -> None:
    assert _board_row(ctx, petition)["owner_id"] == ctx.known("person", leader)


@then(parsers.parse('信访台账上信访件 "{petition}" 没有包案领导'))
def no_owner(ctx: World, petition: str) -> None:
    assert _board_row(ctx, petition)["owner_id"] is None


@then(parsers.parse('信访台账上信访件 "{petition}" 的责任单位为 {unit}'))
def board_unit_is(ctx: World, petition: str, unit: str) -> None:
    assert _board_row(ctx, petition)["unit_id"] == ctx.known("unit", unit)
    assert _petition(ctx, petition)["unit_id"] == ctx.known("unit", unit)


@then(parsers.re(r'信访件 "(?P<petition>[^"]+)" (?P<answer>是|不是)(?P<what>集体访|初信初访)'))
def petition_is(ctx: World, petition: str, answer: str, what: str) -> None:
    field = "collective" if what == "集体访" else "initial"
    assert _petition(ctx, petition)[field] is YES[answer]


@then(parsers.parse('信访件 "{petition}" 的办理期限为 {day}'))
def deadline_is(ctx: World, petition: str, day: str) -> None:
    assert local_date(_petition(ctx, petition)["handling_deadline"]) == day


@then(parsers.parse('信访件 "{petition}" 已息诉罢访'))
def ceased(ctx: World, petition: str) -> None:
    assert _petition(ctx, petition)["ceased"] is True


@then(parsers.parse('信访件 "{petition}" 已结案'))
def closed(ctx: World, petition: str) -> None:
    assert _petition(ctx, petition)["closed"] is True


@then(parsers.parse('信访件 "{petition}" 尚未结案'))
def not_closed(ctx: World, petition: str) -> None:
    assert _petition(ctx, petition)["closed"] is False


@then(parsers.parse('信访件 "{petition}" 的解决责任人为 {person}'))
def resolver_is(ctx: World, petition: str, person: str) -> None:
    assert _petition(ctx, petition)["resolver_id"] == ctx.known("person", person)


@then(parsers.parse('信访件 "{petition}" 的蹲点包案人为 {person}, 期限为 {day}'))
def on_site_owner_is(ctx: World, petition: str, person: str, day: str) -> None:
    state = _petition(ctx, petition)
    assert state.get("on_site_owner_id") == ctx.known("person", person), state
    assert local_date(state["on_site_deadline"]) == day


@then(parsers.parse("报告中尚未包案的重点信访件为 {count:d} 件"))
def report_key_unowned(ctx: World, count: int) -> None:
    assert ctx.answer["petitions"]["key_unowned_open"] == count, ctx.answer["petitions"]


@then(parsers.parse("报告中 {district} 新登记的信访件为 {count:d} 件"))
def report_by_district(ctx: World, district: str, count: int) -> None:
    rows = [r for r in ctx.answer["by_unit"] if r["unit_id"] == ctx.known("unit", district)]
    assert (rows[0].get("petitions_registered", 0) if rows else 0) == count, ctx.answer["by_unit"]


@then(parsers.parse('报告中有一项 {indicator} 扣分, 涉及信访件 "{petition}"'))
def report_deduction(ctx: World, indicator: str, petition: str) -> None:
    pid = ctx.known("petition", petition)
    found = [d for d in ctx.answer["deductions"] if d["indicator"] == INDICATORS[indicator] and d["record_id"] == pid]
    assert found, ctx.answer["deductions"]
