"""A small world to act in: a city, a district, a township with its land station, and their people."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from domain.application import Ledger
from domain.base import BUREAU_TZ
from domain.vocabulary import Channel, ClueSource, PetitionCategory, Post, UnitKind, Violation

T0 = datetime(2025, 3, 1, 9, tzinfo=BUREAU_TZ)
CLERK = "clerk-1"


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def build(ledger: Ledger) -> None:
    a = {"actor": "admin", "occurred_at": day(0)}
    ledger.register_unit("laiwu", "莱芜市", UnitKind.CITY, None, **a)
    ledger.register_unit("laicheng", "莱城区", UnitKind.DISTRICT, "laiwu", **a)
    ledger.register_unit("kouzhen", "口镇", UnitKind.TOWNSHIP, "laicheng", **a)
    ledger.register_unit("kouzhen-station", "口镇国土资源所", UnitKind.LAND_STATION, "kouzhen", **a)
    ledger.register_person("王镇长", "kouzhen", Post.PRINCIPAL_LEADER, person_id="head", **a)
    ledger.register_person("李执法", "kouzhen-station", Post.ENFORCEMENT_OFFICER, person_id="officer", **a)
    ledger.register_person("赵信访", "kouzhen", Post.PETITION_CLERK, person_id="clerk", **a)


def petition(ledger: Ledger, pid: str = "XF-1", *, count: int = 1, repeat_of: str | None = None, at: float = 1) -> str:
    return ledger.register_petition(
        "kouzhen",
        Channel.VISIT,
        count,
        "张三",
        "征地补偿款未足额发放",
        PetitionCategory.COMPENSATION,
        petition_id=pid,
        repeat_of=repeat_of,
        actor=CLERK,
        occurred_at=day(at),
    ).id


def case(ledger: Ledger, cid: str = "AJ-1", *, area: str | None = "2", at: float = 1) -> str:
    return ledger.report_clue(
        "kouzhen-station",
        Violation.ILLEGAL_LAND_USE,
        ClueSource.PATROL,
        case_id=cid,
        area_mu=Decimal(area) if area else None,
        actor="officer",
        occurred_at=day(at),
    ).id
