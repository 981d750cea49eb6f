"""Specs of enforcement cases (违法案件): features/cases/ — R1–R4, R15."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.features.world import AGENCIES, UNIT_KINDS, VIOLATIONS, YES, World, business_time, code, words

scenarios("cases")

#: Each case institution (办案制度, R2): its route and body.
INSTITUTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "报告制度": ("report-upward", {}),
    "备案制度": ("record-filing", {}),
    "会审制度": ("joint-review", {"decision": "会审同意给予行政处罚"}),
    "督办制度": ("supervision", {"deadline": "2024-05-31T17:00:00+08:00"}),
    "移送制度": ("transfer", {"to": "police"}),
    "行政处罚": ("penalty", {"fine_yuan": 50000, "demolition_mu": 2}),
}
ROLE_WORDS = {"执法人员": "officer", "督查人员": "supervisor"}


def _case(ctx: World, case: str) -> dict[str, Any]:
    return ctx.get("officer", f"/v1/cases/{ctx.known('case', case)}")


@when(parsers.parse('管理员登记单位 "{name}", 类型为 {kind}, 上级为 {parent}'))
def register_unit(ctx: World, name: str, kind: str, parent: str) -> None:
    body = {"id": ctx.id("unit", name), "name": name, "kind": UNIT_KINDS[kind], "parent_id": ctx.known("unit", parent)}
    ctx.command("admin", "/v1/units", body)


@when(parsers.parse('{role}于 {day} 对案件 "{case}" 落实 {institution}'))
def apply_institution(ctx: World, role: str, day: str, case: str, institution: str) -> None:
    step, body = INSTITUTIONS[institution]
    if step == "supervision":
        body = {**body, "by_unit_id": next(i for (k, _), i in ctx.ids.items() if k == "unit")}
    path = f"/v1/cases/{ctx.known('case', case)}/{step}"
    ctx.command(ROLE_WORDS[role], path, {**body, "occurred_at": business_time(day)})


@given(parsers.parse('执法人员于 {day} 对案件 "{case}" 结案, 结果为 "{outcome}"'))
def close_case(ctx: World, day: str, case: str, outcome: str) -> None:
    body = {"outcome": outcome, "occurred_at": business_time(day)}
    ctx.must("officer", f"/v1/cases/{ctx.known('case', case)}/closure", body)


@when(parsers.parse('督查人员于 {day} 认定案件 "{case}" 为错案, 承办人为 {handlers}, 理由为 "{reason}"'))
def find_wrongful(ctx: World, day: str, case: str, handlers: str, reason: str) -> None:
    body = {
        "handler_ids": [ctx.known("person", h) for h in words(handlers)],
        "reason": reason,
        "occurred_at": business_time(day),
    }
    ctx.command("supervisor", f"/v1/cases/{ctx.known('case', case)}/wrongful-finding", body)


@when(parsers.parse('执法人员于 {day} 记录案件 "{case}" 由 {agencies} 联合办案'))
def handle_jointly(ctx: World, day: str, case: str, agencies: str) -> None:
    body = {"agencies": [code(AGENCIES, a) for a in words(agencies)], "occurred_at": business_time(day)}
    ctx.command("officer", f"/v1/cases/{ctx.known('case', case)}/joint-handling", body)


@when(parsers.parse('执法人员于 {day} 认定案件 "{case}" 为重大案件, 理由为 "{reason}"'))
def declare_major(ctx: World, day: str, case: str, reason: str) -> None:
    body = {"reason": reason, "occurred_at": business_time(day)}
    ctx.command("officer", f"/v1/cases/{ctx.known('case', case)}/major", body)


@then(parsers.parse('案件 "{case}" 的违法类型为 {violation}'))
def violation_is(ctx: World, case: str, violation: str) -> None:
    assert _case(ctx, case)["violation"] == VIOLATIONS[violation]


@then(parsers.parse('案件 "{case}" 的责任单位为 {unit}'))
def case_unit_is(ctx: World, case: str, unit: str) -> None:
    assert _case(ctx, case)["unit_id"] == ctx.known("unit", unit)


@then(parsers.parse('案件 "{case}" 的审计记录中有一条 {event} 事件'))
def case_event_recorded(ctx: World, case: str, event: str) -> None:
    items = ctx.items("auditor", "/v1/audit/events", {"kind": "case", "id": ctx.known("case", case)})
    types = [i["type"] for i in items]
    assert sum(t.split(".")[-1] == event for t in types) == 1, types


@then(parsers.parse('案件 "{case}" 的联合办案单位为 {agencies}'))
def agencies_are(ctx: World, case: str, agencies: str) -> None:
    assert sorted(_case(ctx, case)["agencies"]) == sorted(code(AGENCIES, a) for a in words(agencies))


@then(parsers.parse('案件 "{case}" 没有联合办案单位'))
def no_agencies(ctx: World, case: str) -> None:
    assert _case(ctx, case)["agencies"] == []


@then(parsers.re(r'案件 "(?P<case>[^"]+)" (?P<answer>是|不是)重大案件'))
def major_or_not(ctx: World, case: str, answer: str) -> None:
    state = _case(ctx, case)
    assert state["major"] is YES[answer], state


@then(parsers.parse("报告中新发现的违法案件为 {count:d} 起"))
def cases_reported(ctx: World, count: int) -> None:
    assert ctx.answer["cases"]["reported"] == count, ctx.answer["cases"]


@then(parsers.parse("报告中土地类违法案件 {land:d} 起, 矿产类违法案件 {minerals:d} 起"))
def cases_by_resource(ctx: World, land: int, minerals: int) -> None:
    cases = ctx.answer["cases"]
    split = cases.get("by_resource") or {k: cases[k] for k in ("land", "minerals") if k in cases}
    if not split:  # a regression, not a gap to skip past
        pytest.fail(
            "GET /v1/reports/monthly does not split cases into land and minerals (R1); "
            "expected cases.by_resource = {land, minerals} or cases.land / cases.minerals"
        )
    assert (split.get("land"), split.get("minerals")) == (land, minerals), cases


#: The case board's flags (案件台账) as the specs name them.
CASE_FLAGS = {
    "重大案件": "major",
    "督办": "supervised",
    "督办逾期": "supervision_overdue",
    "有案不查": "not_investigated",
    "错案": "wrongful",
}


@then(parsers.re(r"督查人员(?:查看 (?P<day>\S+) 的|在)案件台账上按 (?P<flag>\S+) 查到的案件为(?P<cases>.*)"))
def case_board(ctx: World, day: str | None, flag: str, cases: str) -> None:
    ctx.require_route("get", "/v1/cases", "the case board")
    asked = {"flag": CASE_FLAGS[flag], "as_of": business_time(day) if day else None}
    found = [row["id"] for row in ctx.items("supervisor", "/v1/cases", asked)]
    expected = [] if cases.strip() == "空" else [ctx.known("case", c.strip('"')) for c in words(cases)]
    assert found == expected, (flag, day, found)
