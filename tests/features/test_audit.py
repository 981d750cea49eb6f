"""Specs of audit (审计): features/audit/ — R13 as issued, back-dating, the trail, integrity, roles, territory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.features.world import World, local_date, role_code

scenarios("audit")

#: What each role tries in the access scenario: method, path and body.
ATTEMPTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "查询考核得分": ("GET", "/v1/scores?year=2024", {}),
    "查看问责线索": ("GET", "/v1/triggers", {}),
    "登记信访件": (
        "POST",
        "/v1/petitions",
        {"channel": "visit", "petitioner_count": 1, "petitioner": "赵大娘", "subject": "征地补偿", "category": "other"},
    ),
    "登记案件": ("POST", "/v1/cases", {"violation": "illegal_land_use", "source": "patrol"}),
    "修订政策": (
        "POST",
        "/v1/policy/amendments",
        {"effective_from": "2024-07-01T00:00:00+08:00", "params": {"pass_score": 70}},
    ),
    "查看审计记录": ("GET", "/v1/audit/events?kind=unit&id=unit-1", {}),
}
#: Report fields that say how far the projections had read, not what the report says.
PROGRESS_FIELDS = ("position", "lag")


def _report(ctx: World, month: str, known_at: str) -> dict[str, Any]:
    answer = ctx.get("supervisor", "/v1/reports/monthly", {"month": month, "known_at": known_at})
    return {k: v for k, v in answer.items() if k not in PROGRESS_FIELDS}


def _events(ctx: World, petition: str) -> list[dict[str, Any]]:
    return ctx.items("auditor", "/v1/audit/events", {"kind": "petition", "id": ctx.known("petition", petition)})


@given(parsers.parse('督查人员查看 {month} 的月通报, 以信访件 "{petition}" 登记入账之时掌握的情况为准, 记为 "{name}"'))
def issue_bulletin(ctx: World, month: str, petition: str, name: str) -> None:
    known_at = _events(ctx, petition)[-1]["recorded_at"]  # the server's own recording clock
    ctx.saved[name] = (known_at, _report(ctx, month, known_at))


@then(parsers.parse('再次以同一时点查看 {month} 的月通报, 与 "{name}" 完全一致'))
def bulletin_unchanged(ctx: World, month: str, name: str) -> None:
    known_at, issued = ctx.saved[name]
    assert _report(ctx, month, known_at) == issued


@then(parsers.parse('"{name}" 中新登记的信访件为 {count:d} 件'))
def bulletin_count(ctx: World, name: str, count: int) -> None:
    assert ctx.saved[name][1]["petitions"]["registered"] == count, ctx.saved[name][1]["petitions"]


@when(parsers.parse('信访工作人员补录一件 {days:d} 天前在 {unit} 登记的信访件 "{petition}", 信访人 {count:d} 人'))
def register_late(ctx: World, days: int, unit: str, petition: str, count: int) -> None:
    occurred = (datetime.now(UTC) - timedelta(days=days)).isoformat()
    body = {
        "id": ctx.id("petition", petition),
        "unit_id": ctx.known("unit", unit),
        "channel": "letter",
        "petitioner_count": count,
        "petitioner": "钱大爷",
        "subject": "宅基地纠纷",
        "category": "other",
        "occurred_at": occurred,
    }
    ctx.must("clerk", "/v1/petitions", body)


@then(parsers.parse('审计人员查看登记时间晚于发生时间 {gap} 以上的记录, 其中有信访件 "{petition}"'))
def late_entries(ctx: World, gap: str, petition: str) -> None:
    found: list[dict[str, Any]] = []
    after = (ctx.first_position or 1) - 1
    while True:
        answer = ctx.get("auditor", "/v1/audit/late-entries", {"min_gap": gap, "after": after, "limit": 1000})
        found += answer["items"]
        if answer.get("next_after") is None:
            break
        after = answer["next_after"]
    # Entries name their record by ``record_id`` (older drafts of the API: ``id``); ids are unique per kind here.
    ctx.found["late"] = {e.get("record_id") or e.get("id") for e in found}
    assert ctx.known("petition", petition) in ctx.found["late"], found


@then(parsers.parse('其中没有信访件 "{petition}"'))
def not_late(ctx: World, petition: str) -> None:
    assert ctx.known("petition", petition) not in ctx.found["late"]


def _board(ctx: World, unit: str, days: int, known_days: int | None = None) -> set[str]:
    """The ids on a unit's petition board as of ``days`` ago, as known ``known_days`` ago (now when ``None``)."""
    now = datetime.now(UTC)
    params = {"unit_id": ctx.known("unit", unit), "as_of": (now - timedelta(days=days)).isoformat()}
    if known_days is not None:
        params["known_at"] = (now - timedelta(days=known_days)).isoformat()
    return {row["id"] for row in ctx.items("supervisor", "/v1/petitions", params)}


@then(
    parsers.parse(
        '督查人员查看 {days:d} 天前 {unit} 的信访台账, 以 {known:d} 天前掌握的情况为准, 其中没有信访件 "{petition}"'
    )
)
def board_as_known_then(ctx: World, days: int, unit: str, known: int, petition: str) -> None:
    assert ctx.known("petition", petition) not in _board(ctx, unit, days, known)


@then(parsers.parse('督查人员按目前掌握的情况查看 {days:d} 天前 {unit} 的信访台账, 其中有信访件 "{petition}"'))
def board_as_known_now(ctx: World, days: int, unit: str, petition: str) -> None:
    assert ctx.known("petition", petition) in _board(ctx, unit, days)


@then(parsers.parse('审计人员看到信访件 "{petition}" 的第 {n:d} 条事件由 {role} 记录, 发生于 {day}, 登记于今天'))
def trail(ctx: World, petition: str, n: int, role: str, day: str) -> None:
    event = _events(ctx, petition)[n - 1]
    assert event["actor"] == ctx.subject(role_code(role)), event
    assert local_date(event["occurred_at"]) == day, event
    recorded = datetime.fromisoformat(event["recorded_at"])
    assert abs(datetime.now(UTC) - recorded) < timedelta(hours=1), event
    assert event["hash"], f"the event carries no chain hash: {event}"


@given(parsers.parse('信访工作人员查看信访件 "{petition}" 的信访人'))
def read_petitioner(ctx: World, petition: str) -> None:
    """A read of personal data, which the access log keeps (个人信息查阅留痕)."""
    answer = ctx.get("clerk", f"/v1/petitions/{ctx.known('petition', petition)}", {"purpose": "回访联系"})
    assert answer["petitioner"], answer


@then(parsers.parse('审计人员查看个人信息查阅记录, 其中只有信访件 "{petition}"'))
def access_log_holds_only(ctx: World, petition: str) -> None:
    reads = ctx.items("auditor", "/v1/audit/access-log", {"limit": 1000})
    assert {(r["kind"], r["id"]) for r in reads} == {("petition", ctx.known("petition", petition))}, reads


@when(parsers.parse('审计人员查看信访件 "{petition}" 的事件'))
def ask_events(ctx: World, petition: str) -> None:
    ctx.read("auditor", "/v1/audit/events", {"kind": "petition", "id": ctx.known("petition", petition)})


@when("审计人员导出审计包")
def ask_export(ctx: World) -> None:
    ctx.read("auditor", "/v1/audit/export")


@when("审计人员校验台账的完整性")
def verify(ctx: World) -> None:
    response = ctx.read("auditor", "/v1/audit/verify")
    if response.status_code == 503:
        pytest.fail(f"GET /v1/audit/verify is not available: {response.json().get('detail')}")
    ctx.answer = response.json()


@then("校验结果为完整无缺")
def intact(ctx: World) -> None:
    assert ctx.answer["ok"] is True, ctx.answer
    assert ctx.answer["checked"] >= ctx.position and ctx.answer["first_bad_position"] is None, ctx.answer


@when(parsers.parse("{role}尝试{action}"))
def attempt(ctx: World, role: str, action: str) -> None:
    method, path, body = ATTEMPTS[action]
    unit = next((i for (k, _), i in ctx.ids.items() if k == "unit"), None)
    body = {**body, "unit_id": unit} if method == "POST" and "unit_id" not in body and "params" not in body else body
    headers = {"Authorization": f"Bearer {ctx.token(role_code(role))}"}
    ctx.last = ctx.client.request(method, path, json=body or None, headers=headers)
