"""Specs of officers' conduct (执法人员从严执纪): features/conduct/ — R7, R8."""

from __future__ import annotations

import re
from typing import Any

from pytest_bdd import given, parsers, scenarios, then, when

from tests.features.world import COMMENDATIONS, MISCONDUCT, World, business_time, role_code

scenarios("conduct")


def _person_path(ctx: World, person: str, step: str = "") -> str:
    return f"/v1/people/{ctx.known('person', person)}" + (f"/{step}" if step else "")


REPORT = re.compile(
    r"督查人员于 (?P<day>\S+) 收到对 (?P<person>\S+) 的举报, 反映其(?P<kind>[^,]+)"
    r'(?:, 举报人为 "(?P<reporter>[^"]+)")?'
)


@given(parsers.re(REPORT.pattern))
def misconduct_reported(ctx: World, day: str, person: str, kind: str, reporter: str | None) -> None:
    body = {
        "kind": MISCONDUCT[kind],
        "reporter": reporter or "群众来信",
        "detail": f"反映{person}{kind}",
        "occurred_at": business_time(day),
    }
    answer = ctx.must("supervisor", _person_path(ctx, person, "misconduct-reports"), body)
    ctx.found["report"] = (person, answer["report_id"])


@given(parsers.re(r"督查人员于 (?P<day>\S+) 记录该举报调查(?P<finding>属实|不属实)"))
@when(parsers.re(r"督查人员于 (?P<day>\S+) 记录该举报调查(?P<finding>属实|不属实)"))
def finding(ctx: World, day: str, finding: str) -> None:
    person, report_id = ctx.found["report"]
    body = {"report_id": report_id, "substantiated": finding == "属实", "occurred_at": business_time(day)}
    ctx.command("supervisor", _person_path(ctx, person, "findings"), body)


@given(parsers.parse("督查人员于 {day} 将 {person} 调离执法岗位"))
@when(parsers.parse("督查人员于 {day} 将 {person} 调离执法岗位"))
def remove(ctx: World, day: str, person: str) -> None:
    ctx.command("supervisor", _person_path(ctx, person, "removal"), {"occurred_at": business_time(day)})


@when(parsers.parse("督查人员于 {day} 将 {person} 移交司法机关"))
def refer(ctx: World, day: str, person: str) -> None:
    ctx.command("supervisor", _person_path(ctx, person, "criminal-referral"), {"occurred_at": business_time(day)})


@when(parsers.parse("督查人员于 {day} 表彰 {person} 为 {title}"))
def commend(ctx: World, day: str, person: str, title: str) -> None:
    body = {"title": COMMENDATIONS[title], "occurred_at": business_time(day)}
    ctx.command("supervisor", _person_path(ctx, person, "commendations"), body)


@when(parsers.parse("{role}查看 {person} 的档案"))
def read_record(ctx: World, role: str, person: str) -> None:
    ctx.answer = ctx.get(role_code(role), _person_path(ctx, person))


def _record(ctx: World, person: str) -> dict[str, Any]:
    return ctx.get("supervisor", _person_path(ctx, person))


@then(parsers.parse("{person} 的档案显示已移交司法机关"))
def referred(ctx: World, person: str) -> None:
    assert _record(ctx, person)["referred"] is True


@then(parsers.parse("{person} 的档案显示受表彰为 {title}"))
def commended(ctx: World, person: str, title: str) -> None:
    assert COMMENDATIONS[title] in _record(ctx, person)["commendations"]


@then("档案中看不到举报人")
def reporter_hidden(ctx: World) -> None:
    reports = ctx.answer["reports"]
    assert reports and all(r.get("reporter") is None for r in reports), reports


@then(parsers.parse('档案中的举报人为 "{reporter}"'))
def reporter_shown(ctx: World, reporter: str) -> None:
    assert [r.get("reporter") for r in ctx.answer["reports"]] == [reporter], ctx.answer["reports"]
