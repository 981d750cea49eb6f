"""Specs of target assessment (目标考核) and evidence (有据可查): features/assessment/ — R5, R6, R20."""

from __future__ import annotations

from pytest_bdd import given, parsers, scenarios, then, when

from tests.features.world import World

scenarios("assessment")

SIGNED_AT = "2024-01-02T09:00:00+08:00"


def _agreement(ctx: World, issuer: str, responsible: str, year: int) -> dict[str, object]:
    return {
        "year": year,
        "issuer_unit_id": ctx.known("unit", issuer),
        "responsible_unit_id": ctx.known("unit", responsible),
        "targets": ["耕地保护", "矿产资源保护", "信访案件按期办结"],
        "occurred_at": SIGNED_AT,
    }


@given(parsers.parse("{issuer} 与 {responsible} 签订了 {year:d} 年度目标考核责任书"))
def agreement_signed(ctx: World, issuer: str, responsible: str, year: int) -> None:
    ctx.must("admin", "/v1/agreements", _agreement(ctx, issuer, responsible, year))


@when(parsers.parse("管理员登记 {issuer} 与 {responsible} 的 {year:d} 年度目标考核责任书"))
def sign_agreement(ctx: World, issuer: str, responsible: str, year: int) -> None:
    ctx.command("admin", "/v1/agreements", _agreement(ctx, issuer, responsible, year))


@then(parsers.parse("{issuer} 与 {responsible} 的 {year:d} 年度目标考核责任书记入台账"))
def agreement_recorded(ctx: World, issuer: str, responsible: str, year: int) -> None:
    record_id = f"{year}.{ctx.known('unit', issuer)}.{ctx.known('unit', responsible)}"
    items = ctx.items("auditor", "/v1/audit/events", {"kind": "agreement", "id": record_id})
    assert [i["type"].split(".")[-1] for i in items] == ["Signed"], items
    assert items[0]["data"]["year"] == year
