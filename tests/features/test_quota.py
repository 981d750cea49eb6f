"""Specs of the land quota ledger (用地指标台账): features/quota/ — R19, R4."""

from __future__ import annotations

from pytest_bdd import given, parsers, scenarios, then, when

from tests.features.world import YES, World, business_time, number

scenarios("quota")


@given(parsers.parse("{district} 于 {day} 下达 {year:d} 年度用地指标 {mu} 亩"))
def allocate(ctx: World, district: str, day: str, year: int, mu: str) -> None:
    body = {"year": year, "mu": number(mu), "occurred_at": business_time(day)}
    ctx.must("admin", f"/v1/units/{ctx.known('unit', district)}/quota-allocations", body)


@when(parsers.parse("管理员给 {unit} 下达 {year:d} 年度用地指标 {mu} 亩"))
def allocate_to(ctx: World, unit: str, year: int, mu: str) -> None:
    body = {"year": year, "mu": number(mu), "occurred_at": business_time(f"{year}-01-05")}
    ctx.command("admin", f"/v1/units/{ctx.known('unit', unit)}/quota-allocations", body)


@given(parsers.parse('{unit} 于 {day} 批准用地 {mu} 亩, 项目为 "{project}"'))
def approve_land(ctx: World, unit: str, day: str, mu: str, project: str) -> None:
    body = {"mu": number(mu), "project": project, "occurred_at": business_time(day)}
    ctx.must("admin", f"/v1/units/{ctx.known('unit', unit)}/land-approvals", body)


@when(parsers.parse("督查人员查询 {year:d} 年度用地指标"))
def query_quota(ctx: World, year: int) -> None:
    ctx.answer = {r["unit_id"]: r for r in ctx.items("supervisor", "/v1/quota", {"year": year})}


@then(parsers.parse("{district} 下达 {allocated} 亩, 使用 {used} 亩, 扣减 {deducted} 亩, 剩余 {remaining} 亩"))
def quota_is(ctx: World, district: str, allocated: str, used: str, deducted: str, remaining: str) -> None:
    row = ctx.answer[ctx.known("unit", district)]
    got = (row["allocated_mu"], row["used_mu"], row["deducted_mu"], row["remaining_mu"])
    assert got == tuple(number(v) for v in (allocated, used, deducted, remaining)), row
    assert row["evidence"] or got == (0, 0, 0, 0), f"figures without evidence: {row}"


@then(parsers.re(r"(?P<district>\S+) 的用地指标(?P<answer>已经|没有)透支"))
def overdrawn(ctx: World, district: str, answer: str) -> None:
    row = ctx.answer[ctx.known("unit", district)]
    assert row["negative"] is YES[answer], row
