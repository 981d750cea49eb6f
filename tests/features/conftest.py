"""Shared steps of the acceptance specs (验收规格的公共步骤) and the ``ctx`` fixture they share.

Stores: every scenario runs in-process on a fresh SQLite store; scenarios tagged ``@postgres`` run
on PostgreSQL as well (``LEDGER_FEATURES_ALL_STORES=1`` runs every scenario on both). With
``LEDGER_BASE_URL`` set, they all run against that server instead. See features/README.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pluggy
import pytest
from pytest_bdd import given, parsers, then, when
from pytest_bdd import reporting as bdd_reporting

from domain.rulebook import RULES
from tests.conftest import fresh_store_url
from tests.features.feature_files import all_tags
from tests.features.world import (
    BASE_URL_ENV,
    DECISIONS,
    INDICATORS,
    MEETINGS,
    NAIL_CHECKS,
    OUTCOMES,
    POSTS,
    REPORTS,
    SETUP_AT,
    SOURCES,
    UNIT_KINDS,
    VIOLATIONS,
    YES,
    World,
    business_time,
    code,
    day_start,
    now_plus,
    number,
    open_world,
    role_code,
    words,
)

ALL_STORES_ENV = "LEDGER_FEATURES_ALL_STORES"


def pytest_configure(config: pytest.Config) -> None:
    """Every tag of the specs is a marker (``pytest -m R12``); --strict-markers wants them declared."""
    for tag in sorted(all_tags() | set(RULES)):
        rule = RULES.get(tag)
        config.addinivalue_line("markers", f"{tag}: {rule.title if rule else 'scenario tag'}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Scenarios run on SQLite; ``@postgres`` ones (or all, on request) on PostgreSQL too; or on a server."""
    if "_pytest_bdd_example" not in metafunc.fixturenames or "feature_store" not in metafunc.fixturenames:
        return
    if os.environ.get(BASE_URL_ENV):
        kinds = ["server"]
    elif os.environ.get(ALL_STORES_ENV) or metafunc.definition.get_closest_marker("postgres"):
        kinds = ["sqlite", "postgres"]
    else:
        kinds = ["sqlite"]
    metafunc.parametrize("feature_store", kinds, indirect=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    """Show a skipped scenario as skipped in the cucumber JSON (pytest-bdd 9.0.1 records it as passed).

    pytest-bdd marks a step "failed" only for exceptions, and ``pytest.skip`` is not one; so the step
    that skipped is flagged here and the reason goes into the scenario's description for the report.
    """
    outcome = yield
    report = outcome.get_result()
    context = bdd_reporting.test_report_context_registry.get(report)
    if report.skipped and call.when == "call" and context is not None and context.scenario["steps"]:
        context.scenario["steps"][-1]["failed"] = True
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        context.scenario["description"] = reason.removeprefix("Skipped: ")


@pytest.fixture(autouse=True)
def feature_store(request: pytest.FixtureRequest) -> str | None:
    """Which store a scenario runs on (set by pytest_generate_tests; None for the plain tests here)."""
    kind: str | None = getattr(request, "param", None)
    return kind


@pytest.fixture
def ctx(feature_store: str | None, tmp_path: Path) -> Iterator[World]:
    """The scenario's world: a client on a fresh store (or the server), tokens, names and answers."""
    if feature_store == "server":
        with open_world(None) as world:
            yield world
        return
    for url in fresh_store_url(feature_store or "sqlite", tmp_path):
        with open_world(url) as world:
            yield world


# --- set-up: units, people, tokens, policy -------------------------------------------------------


@given("台账中有以下单位:")
def units_exist(ctx: World, datatable: list[list[str]]) -> None:
    """单位 | 类型 | 上级, and optionally | 辖区 (the district or township a bureau office under another covers)."""
    for name, kind, parent, *area in datatable[1:]:
        body = {
            "id": ctx.id("unit", name),
            "name": name,
            "kind": UNIT_KINDS[kind],
            "parent_id": ctx.known("unit", parent) if parent.strip() else None,
            "occurred_at": SETUP_AT,
        }
        if area and area[0].strip():
            body["jurisdiction_id"] = ctx.known("unit", area[0])
        ctx.must("admin", "/v1/units", body)


@given("台账中有以下人员:")
def people_exist(ctx: World, datatable: list[list[str]]) -> None:
    for name, unit, post in datatable[1:]:
        person = ctx.id("person", name)
        body = {
            "id": person,
            "name": name,
            "unit_id": ctx.known("unit", unit),
            "post": POSTS[post],
            "occurred_at": SETUP_AT,
        }
        ctx.must("admin", "/v1/people", body)
        ctx.posts[person] = POSTS[post]


@given(parsers.parse("{role}的令牌只限于 {unit}"))
def bound_token(ctx: World, role: str, unit: str) -> None:
    code_ = role_code(role)
    ctx.tokens[code_] = ctx.grant(f"{code_}-bound{ctx.suffix}", code_, [ctx.known("unit", unit)])


@given(parsers.parse("管理员修订政策, 自 {day} 起 {param} 为 {value}"))
def amend_policy(ctx: World, day: str, param: str, value: str) -> None:
    if ctx.remote:
        pytest.skip("this scenario amends the city-wide policy; it runs in-process only, never on a shared server")
    ctx.must(
        "admin",
        "/v1/policy/amendments",
        {"effective_from": day_start(day), "params": {param: number(value)}, "occurred_at": day_start(day)},
    )


# --- enforcement cases ------------------------------------------------------------------------

CLUE = re.compile(
    r'执法人员在 (?P<unit>\S+) 于 (?P<day>\S+) 登记一条 (?P<source>\S+) 线索 "(?P<case>[^"]+)"(?P<options>.*)'
)


def clue_body(ctx: World, unit: str, day: str, source: str, case: str, options: str) -> dict[str, Any]:
    """A clue's body from the spec's wording: ``, 违法类型为 X, 面积 N 亩, 涉案金额 N 元``."""
    body: dict[str, Any] = {
        "id": ctx.id("case", case),
        "unit_id": ctx.known("unit", unit),
        "violation": "illegal_land_use",
        "source": code(SOURCES, source),
        "occurred_at": business_time(day),
    }
    for part in (p.strip() for p in options.split(", ") if p.strip()):
        if m := re.fullmatch(r"违法类型为 (.+)", part):
            body["violation"] = code(VIOLATIONS, m[1])
        elif m := re.fullmatch(r"面积 (\S+) 亩", part):
            body["area_mu"] = number(m[1])
        elif m := re.fullmatch(r"涉案金额 (\S+) 元", part):
            body["value_yuan"] = number(m[1])
        else:
            raise AssertionError(f"unknown clue detail {part!r}")
    return body


@given(parsers.re(CLUE.pattern))
@when(parsers.re(CLUE.pattern))
def report_clue(ctx: World, unit: str, day: str, source: str, case: str, options: str) -> None:
    response = ctx.command("officer", "/v1/cases", clue_body(ctx, unit, day, source, case, options))
    if response.status_code in (200, 201):
        ctx.created_at[ctx.id("case", case)] = response.json()["position"]


FILING = '执法人员于 {day} 对案件 "{case}" 立案, 承办人为 {handlers}'


def filing(ctx: World, day: str, case: str, handlers: str) -> tuple[str, dict[str, Any]]:
    body = {"handler_ids": [ctx.known("person", h) for h in words(handlers)], "occurred_at": business_time(day)}
    return f"/v1/cases/{ctx.known('case', case)}/filing", body


@given(parsers.parse(FILING))
def file_case(ctx: World, day: str, case: str, handlers: str) -> None:
    ctx.must("officer", *filing(ctx, day, case, handlers))


@when(parsers.parse(FILING))
def try_filing(ctx: World, day: str, case: str, handlers: str) -> None:
    """A filing whose answer the scenario checks (命令成功, 命令被拒绝)."""
    ctx.command("officer", *filing(ctx, day, case, handlers))


@given(parsers.parse("{unit} 在 {year:d} 年发生 {count:d} 起重大案件"))
def major_cases(ctx: World, unit: str, year: int, count: int) -> None:
    """Major by area (20 亩), each on 10 December, so none is yet unfiled (有案不查) when the year ends."""
    for n in range(count):
        body = clue_body(ctx, unit, f"{year}-12-10T09:{n:02d}:00+08:00", "巡查", f"{unit}重大案件{n}", ", 面积 20 亩")
        ctx.must("officer", "/v1/cases", body)


# --- petitions --------------------------------------------------------------------------------

PETITION = re.compile(
    r'信访工作人员(?:于 (?P<day>\S+) )?在 (?P<unit>\S+) (?:当场)?登记信访件 "(?P<petition>[^"]+)"(?P<options>.*)'
)


def petition_body(ctx: World, unit: str, petition: str, options: str, occurred_at: str | None) -> dict[str, Any]:
    """A petition's body from the spec: ``, 信访人 N 人, 越级 是, 交办 省, 重复 "信-0"``."""
    body: dict[str, Any] = {
        "id": ctx.id("petition", petition),
        "unit_id": ctx.known("unit", unit),
        "channel": "visit",
        "petitioner_count": 1,
        "petitioner": "赵大娘",
        "subject": "征地补偿款未足额发放",
        "category": "compensation",
        "occurred_at": occurred_at,
    }
    for part in (p.strip() for p in options.split(", ") if p.strip()):
        if m := re.fullmatch(r"信访人 (\d+) 人", part):
            body["petitioner_count"] = int(m[1])
        elif m := re.fullmatch(r"越级 (是|否)", part):
            body["skip_level"] = YES[m[1]]
        elif m := re.fullmatch(r"交办 (\S+)", part):
            body["assigned_from"] = code({"无": None, "市": "city", "省": "province", "中央": "central"}, m[1])
        elif m := re.fullmatch(r'重复 "([^"]+)"', part):
            body["repeat_of"] = ctx.known("petition", m[1])
        else:
            raise AssertionError(f"unknown petition detail {part!r}")
    return body


def register_petition(ctx: World, unit: str, petition: str, options: str, occurred_at: str | None) -> None:
    response = ctx.command("clerk", "/v1/petitions", petition_body(ctx, unit, petition, options, occurred_at))
    if response.status_code in (200, 201):
        ctx.created_at[ctx.id("petition", petition)] = response.json()["position"]


@given(parsers.re(PETITION.pattern))
@when(parsers.re(PETITION.pattern))
def petition_registered(ctx: World, day: str | None, unit: str, petition: str, options: str) -> None:
    register_petition(ctx, unit, petition, options, business_time(day) if day else None)


@given(parsers.parse('信访工作人员于 {day} 记录 {leader} 包案信访件 "{petition}"'))
@when(parsers.parse('信访工作人员于 {day} 记录 {leader} 包案信访件 "{petition}"'))
def take_ownership(ctx: World, day: str, leader: str, petition: str) -> None:
    body = {"leader_id": ctx.known("person", leader), "occurred_at": business_time(day)}
    ctx.command("clerk", f"/v1/petitions/{ctx.known('petition', petition)}/ownership", body)


def complete_handling(ctx: World, petition: str, day: str, *, close: bool) -> None:
    """Everything an initial petition needs before closing: a leader, the three meetings, reply, return visit."""
    pid = ctx.known("petition", petition)
    at = business_time(day)
    state = ctx.get("clerk", f"/v1/petitions/{pid}")
    if state["owner_id"] is None:
        assert ctx.leaders(), "the spec needs a leader (主要负责人 or 分管领导) to own the petition"
        ctx.must("clerk", f"/v1/petitions/{pid}/ownership", {"leader_id": ctx.leaders()[0], "occurred_at": at})
    for party in MEETINGS.values():
        if party not in state["meetings"]:
            ctx.must("clerk", f"/v1/petitions/{pid}/meetings", {"party": party, "occurred_at": at})
    ctx.must("clerk", f"/v1/petitions/{pid}/reply", {"summary": "依法依规答复", "occurred_at": at})
    ctx.must("clerk", f"/v1/petitions/{pid}/return-visit", {"satisfied": True, "occurred_at": at})
    if close:
        ctx.must("clerk", f"/v1/petitions/{pid}/closure", {"occurred_at": at})


@given(parsers.parse('信访件 "{petition}" 已于 {day} 办结'))
def petition_closed(ctx: World, petition: str, day: str) -> None:
    complete_handling(ctx, petition, day, close=True)


@given(parsers.parse('信访件 "{petition}" 已于 {day} 完成三见面、答复和回访'))
def petition_handled(ctx: World, petition: str, day: str) -> None:
    complete_handling(ctx, petition, day, close=False)


@given(parsers.re(r"(?P<unit>\S+) 在 (?P<year>\d{4}) 年登记 (?P<count>\d+) 件(?P<kind>越级访|集体访)"))
def key_petitions(ctx: World, unit: str, year: str, count: str, kind: str) -> None:
    """Skip-level petitions of one petitioner, or collective ones of five, registered on 10 December."""
    options = ", 越级 是" if kind == "越级访" else ", 信访人 5 人"
    for n in range(int(count)):
        body = petition_body(ctx, unit, f"{unit}{kind}{n}", options, f"{year}-12-10T10:{n:02d}:00+08:00")
        ctx.must("clerk", "/v1/petitions", body)


# --- outcomes of commands ---------------------------------------------------------------------


@then("命令成功")
def succeeded(ctx: World) -> None:
    assert ctx.last is not None
    assert ctx.last.status_code in (200, 201), f"{ctx.last.status_code}: {ctx.last.text}"


@then(parsers.re(r"命令被拒绝, 状态码 (?P<status>\d+)(?:, 依据规则 (?P<rule>R\d+))?(?:, 指出字段 (?P<field>\S+))?"))
def refused(ctx: World, status: str, rule: str | None, field: str | None) -> None:
    assert ctx.last is not None
    assert ctx.last.status_code == int(status), f"expected {status}, got {ctx.last.status_code}: {ctx.last.text}"
    assert ctx.last.headers["content-type"].startswith("application/problem+json")
    problem = ctx.last.json()
    if rule:
        assert problem.get("rule") == rule, f"expected rule {rule}: {problem}"
        assert rule in problem["detail"], f"the detail should name {rule}: {problem['detail']}"
    if field:
        assert field in ctx.last.text, f"the problem should name the field {field}: {problem}"


@then(parsers.parse("拒绝理由指出尚缺 {missing}"))
def refusal_names(ctx: World, missing: str) -> None:
    assert ctx.last is not None
    detail = ctx.last.json()["detail"]
    wanted = {code({**NAIL_CHECKS, **MEETINGS}, word) for word in words(missing)}
    named = set(detail.rsplit(": ", 1)[-1].rstrip(".").split(", "))  # the refusal lists what is missing, last
    assert named == wanted, f"expected exactly {sorted(wanted)} named as missing in: {detail}"


# --- accountability triggers ------------------------------------------------------------------


@then(
    parsers.re(
        r"有一条依据 (?P<rule>R\d+) 的待处理问责线索, 对象为(?:单位)? (?P<who>[^,]+)(?P<removal>, 应调离执法岗位)?"
    )
)
def open_trigger(ctx: World, rule: str, who: str, removal: str | None) -> None:
    found = ctx.trigger_for(rule, who.strip())
    open_ = [t for t in found if t["status"] == "open"]
    assert open_, f"no open {rule} trigger for {who}; found {found or ctx.triggers()}"
    trigger = open_[0]
    assert trigger["evidence"], f"the trigger names no evidence: {trigger}"
    if removal:
        assert trigger.get("removal_due") is True, f"removal is not shown as due: {trigger}"
    ctx.found["trigger"] = trigger


@then(parsers.parse("没有依据 {rule} 的问责线索"))
def no_trigger(ctx: World, rule: str) -> None:
    found = ctx.triggers(rule)
    assert not found, f"unexpected {rule} triggers: {found}"


@then(parsers.re(r"依据 (?P<rule>R\d+) 针对 (?P<who>\S+) 的问责线索(?P<presence>有|没有)$"))
def trigger_presence(ctx: World, rule: str, who: str, presence: str) -> None:
    found = ctx.trigger_for(rule, who)
    assert bool(found) is YES[presence], f"{rule} trigger for {who}: expected {presence}, found {found}"
    assert all(t["evidence"] and t["rule"] == rule for t in found), f"a trigger without its evidence: {found}"


@then(parsers.re(r"依据 (?P<rule>R\d+) 针对 (?P<who>\S+) 的问责线索已处理(?:, 处理结果为 (?P<outcome>\S+))?"))
def trigger_decided(ctx: World, rule: str, who: str, outcome: str | None) -> None:
    found = ctx.trigger_for(rule, who)
    assert found and all(t["status"] == "decided" for t in found), f"{rule} trigger for {who} not decided: {found}"
    if outcome:
        assert found[0]["decision"]["outcome"] == code(DECISIONS, outcome), found[0]


@when(parsers.parse("{role}对依据 {rule} 针对 {who} 的问责线索作出 {outcome} 决定"))
def decide_trigger(ctx: World, role: str, rule: str, who: str, outcome: str) -> None:
    found = ctx.trigger_for(rule, who)
    assert found, f"no {rule} trigger for {who}"
    body = {"outcome": code(DECISIONS, outcome), "reason": "经研究决定"}
    ctx.read("supervisor", "/v1/projections/status")  # the decision route looks the trigger up in the projections
    ctx.command(role_code(role), f"/v1/triggers/{found[0]['id']}/decision", body)


@then(parsers.parse('该问责线索的证据包含案件 "{case}" 的登记事件'))
def trigger_evidence(ctx: World, case: str) -> None:
    assert ctx.created_at[ctx.known("case", case)] in ctx.found["trigger"]["evidence"], ctx.found["trigger"]


@then(parsers.parse("该问责线索依据政策第 {version:d} 版"))
def trigger_policy_version(ctx: World, version: int) -> None:
    assert ctx.found["trigger"].get("policy_version") == version, ctx.found["trigger"]


# --- scores (目标考核) -----------------------------------------------------------------------------


@when(parsers.re(r"督查人员查询 (?P<unit>\S+) (?P<year>\d{4}) 年度考核得分(?:, 截至 (?P<day>\S+))?"))
def query_scores(ctx: World, unit: str, year: str, day: str | None) -> None:
    unit_id = ctx.known("unit", unit)
    params = {"year": year, "unit_id": unit_id, "as_of": day_start(day) if day else None}
    rows = ctx.items("supervisor", "/v1/scores", params)
    ctx.answer = {r["unit_id"]: r for r in rows}


@when(parsers.parse("督查人员按每页 {size:d} 个单位分页查看 {year:d} 年度考核得分"))
def read_scores_by_page(ctx: World, size: int, year: int) -> None:
    """分页: each page of scores asked after the last one's ``next_after``, until one names none."""
    pages: list[list[str]] = []
    after = None
    while True:
        answer = ctx.get("supervisor", "/v1/scores", {"year": year, "limit": size, "after": after})
        assert len(answer["items"]) <= size, answer
        pages.append([row["unit_id"] for row in answer["items"]])
        ctx.answer.update({row["unit_id"]: row for row in answer["items"]})
        after = answer["next_after"]
        if after is None:
            break
    ctx.found["pages"] = pages


@then(parsers.parse("第一页是 {unit} 的考核得分"))
def first_page_is(ctx: World, unit: str) -> None:
    assert ctx.found["pages"][0] == [ctx.known("unit", unit)], ctx.found["pages"]


@then(parsers.parse("逐页所得依次为: {units}"))
def pages_hold(ctx: World, units: str) -> None:
    found = [ctx.name_of("unit", u) for page in ctx.found["pages"] for u in page]
    assert found == [u.strip() for u in units.split(",")], ctx.found["pages"]


def _score(ctx: World, unit: str) -> dict[str, Any]:
    row: dict[str, Any] = ctx.answer[ctx.known("unit", unit)]
    return row


@then(parsers.parse("{unit} 的考核得分为 {score:d}"))
def score_is(ctx: World, unit: str, score: int) -> None:
    row = _score(ctx, unit)
    assert row["score"] == score, f"score {row['score']}, deductions {row['deductions']}"


@then(parsers.parse("{unit} 的考核结论为 {outcome}"))
def outcome_is(ctx: World, unit: str, outcome: str) -> None:
    assert _score(ctx, unit)["outcome"] == OUTCOMES[outcome], _score(ctx, unit)


@then(
    parsers.re(
        r"(?P<unit>\S+) 的考核扣分中有一项 (?P<indicator>\S+), 扣 (?P<points>\d+) 分, 依据 (?P<rule>R\d+)"
        r"(?:, 政策第 (?P<version>\d+) 版)?"
    )
)
def deduction_listed(ctx: World, unit: str, indicator: str, points: str, rule: str, version: str | None) -> None:
    row = _score(ctx, unit)
    found = [
        d
        for d in row["deductions"]
        if d["indicator"] == code(INDICATORS, indicator)
        and d["points"] == int(points)
        and d["rule"] == rule
        and (version is None or d["policy_version"] == int(version))
    ]
    assert found, f"no such deduction among {row['deductions']}"
    assert found[0]["evidence"], f"the deduction names no evidence: {found[0]}"
    ctx.found["deduction"] = found[0]


@then(parsers.parse("{unit} 的考核扣分中有 {count:d} 项 {indicator}"))
def deductions_counted(ctx: World, unit: str, count: int, indicator: str) -> None:
    row = _score(ctx, unit)
    found = [d for d in row["deductions"] if d["indicator"] == code(INDICATORS, indicator)]
    assert len(found) == count, f"{len(found)} {indicator} deductions: {found}"


@then(parsers.parse('该项扣分的证据是案件 "{case}" 的登记事件'))
def deduction_evidence(ctx: World, case: str) -> None:
    assert ctx.found["deduction"]["evidence"] == [ctx.created_at[ctx.known("case", case)]], ctx.found["deduction"]


# --- quota deductions (R4) --------------------------------------------------------------------


@when(parsers.parse("督查人员查询 {year:d} 年度的指标扣减"))
def query_deductions(ctx: World, year: int) -> None:
    ctx.answer = {r["unit_id"]: r for r in ctx.items("supervisor", "/v1/quota-deductions", {"year": year})}


@then(parsers.parse("{district} 扣减用地指标 {mu} 亩, 土地整理项目资金 {yuan} 元, 模范区评比指标 {points} 分"))
def deductions_are(ctx: World, district: str, mu: str, yuan: str, points: str) -> None:
    row = ctx.answer.get(ctx.known("unit", district))
    got = (
        (0, 0, 0)
        if row is None
        else (row["land_quota_mu"], row["consolidation_funds_yuan"], row["model_district_points"])
    )
    assert got == (number(mu), number(yuan), number(points)), f"{district}: {row}"
    ctx.found["deductions"] = row


@then(parsers.parse("{district} 的扣减依据政策第 {version:d} 版"))
def deductions_policy(ctx: World, district: str, version: int) -> None:
    items = ctx.answer[ctx.known("unit", district)]["items"]
    assert items and all(i["policy_version"] == version and i["rule"] == "R4" for i in items), items


@then(parsers.parse('该项扣减的证据是案件 "{case}" 的登记事件'))
def deductions_evidence(ctx: World, case: str) -> None:
    items = ctx.found["deductions"]["items"]
    assert [i["evidence"] for i in items] == [[ctx.created_at[ctx.known("case", case)]]], items


# --- reports (R13) ------------------------------------------------------------------------------


@when(parsers.re(r"督查人员按目前掌握的情况查看 (?P<period>\S+) 的(?P<report>日调度|周汇报|月通报)"))
def read_report(ctx: World, period: str, report: str) -> None:
    kind, param = REPORTS[report]
    # "As known now", said outright (a moment just ahead of the clock): what the default answers too.
    ctx.answer = ctx.get("supervisor", f"/v1/reports/{kind}", {param: period, "known_at": now_plus(timedelta(hours=1))})


@when(parsers.re(r"督查人员不指明时点查看 (?P<period>\S+) 的(?P<report>日调度|周汇报|月通报)"))
def read_report_by_default(ctx: World, period: str, report: str) -> None:
    kind, param = REPORTS[report]
    ctx.answer = ctx.get("supervisor", f"/v1/reports/{kind}", {param: period})


@then(parsers.parse("报告中新登记的信访件为 {count:d} 件"))
def report_registered(ctx: World, count: int) -> None:
    assert ctx.answer["petitions"]["registered"] == count, ctx.answer["petitions"]
