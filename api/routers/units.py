"""Units (单位): registration, land quota (用地指标) and land approvals, and their reads."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from eventsourcing.utils import get_topic
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, BeforeValidator, Field, StrictInt

from api.deps import AuthorizedDep, CommandDep, LedgerDep, ReadAtDep, answer, require_territory
from api.models import Amount, CommandIn, Name, Receipt, RecordId, RecordMeta, json_number, meta
from api.problems import InvalidParameter
from domain.errors import RecordNotFound
from domain.units import Unit
from domain.vocabulary import UnitKind

router = APIRouter(prefix="/units", tags=["units"])
Mu = Annotated[
    Decimal,
    BeforeValidator(json_number),
    Field(gt=0, le=Decimal(10) ** 9, allow_inf_nan=False, description="area in mu (亩)"),
]


class UnitCreate(CommandIn):
    """Register a unit (登记单位)."""

    id: RecordId
    name: Name
    kind: UnitKind
    parent_id: RecordId | None = None
    jurisdiction_id: RecordId | None = Field(
        default=None,
        description="a branch bureau under the city bureau: the district it covers; a land station under a branch"
        " bureau: the township (辖区). Its cases then count for that district and its government (R4).",
    )


class QuotaAllocationCreate(CommandIn):
    """Allocate land-use quota for a year (下达用地指标)."""

    year: StrictInt = Field(ge=2000, le=2100)
    mu: Mu


class LandApprovalCreate(CommandIn):
    """Approve land for a project, used from the quota of the year it happened (批准用地)."""

    mu: Mu
    project: Name


class UnitPublic(RecordMeta):
    """A unit as it stands (or stood)."""

    unit_id: str = Field(description="the unit itself (every row names its unit as `unit_id`)")
    name: str
    kind: UnitKind
    parent_id: str | None
    jurisdiction_id: str | None = Field(description="the district or township a bureau office covers (辖区), if named")
    allocated: dict[int, Amount] = Field(description="quota allocated per year, mu")
    used: dict[int, Amount] = Field(description="land approved per year, mu")


class UnitList(BaseModel):
    """Units within the token's territory, in registration order."""

    items: list[UnitPublic]
    next_after: int | None = Field(description="pass as `after` for the next page; null on the last")


def unit_public(unit: Unit) -> UnitPublic:
    return UnitPublic(
        **meta(unit),
        unit_id=unit.record_id,
        name=unit.name,
        kind=unit.kind,
        parent_id=unit.parent_id,
        jurisdiction_id=unit.jurisdiction_id,
        allocated=dict(unit.allocated),
        used=dict(unit.used),
    )


@router.post("", status_code=201, response_model=Receipt)
def register_unit(body: UnitCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Register a unit under its parent (登记单位)."""
    # The area a new office covers is not guarded as a territory: R15 keeps it within its parent office's area (a
    # token bound to the city bureau names its branches' districts).
    cmd.guard_unit(body.parent_id, f"parent unit {body.parent_id}")
    receipt = cmd.ledger.register_unit(
        body.id, body.name, body.kind, body.parent_id, jurisdiction_id=body.jurisdiction_id, **cmd.create(body)
    )
    return answer(receipt, response, "/v1/units")


@router.post("/{unit_id}/quota-allocations", response_model=Receipt)
def allocate_quota(unit_id: str, body: QuotaAllocationCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Allocate a year's land-use quota to the unit (下达用地指标, R19)."""
    cmd.guard(Unit, unit_id)
    return answer(cmd.ledger.allocate_quota(unit_id, body.year, body.mu, **cmd.change(body)), response)


@router.post("/{unit_id}/land-approvals", response_model=Receipt)
def approve_land(unit_id: str, body: LandApprovalCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Approve land for a project, used from the quota (批准用地, R19)."""
    cmd.guard(Unit, unit_id)
    return answer(cmd.ledger.approve_land(unit_id, body.mu, body.project, **cmd.change(body)), response)


@router.get("", response_model=UnitList)
def list_units(
    ledger: LedgerDep,
    principal: AuthorizedDep,
    read_at: ReadAtDep,
    after: Annotated[int, Query(ge=0, le=10**12, description="log position to continue after")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> UnitList:
    """The units within the token's territory (filtered, not refused), current or as of a time."""
    if read_at.version is not None:
        raise InvalidParameter("a list has no single version; use as_of and/or known_at", "query", "version")
    topic = get_topic(Unit.Registered)
    items: list[UnitPublic] = []
    position = after
    while len(items) < limit:
        batch = ledger.recorder.select_notifications(start=position + 1, limit=limit, topics=[topic])
        if not batch:
            return UnitList(items=items, next_after=None)
        for notification in batch:
            position = notification.id
            event = ledger.mapper.to_domain_event(notification)
            unit_id: str = event.record_id  # type: ignore[attr-defined]
            if read_at.known_at is not None and event.timestamp > read_at.known_at:  # type: ignore[attr-defined]
                continue
            if not principal.covers(ledger, unit_id):
                continue
            try:
                unit = read_at.load(ledger, Unit, unit_id)
            except RecordNotFound:
                continue  # not yet registered as of that time
            items.append(unit_public(unit))
            if len(items) == limit:
                break
    return UnitList(items=items, next_after=position)


@router.get("/{unit_id}", response_model=UnitPublic)
def read_unit(unit_id: str, ledger: LedgerDep, principal: AuthorizedDep, read_at: ReadAtDep) -> UnitPublic:
    """A unit, current, at `version` or as of a business time."""
    unit = read_at.load(ledger, Unit, unit_id)
    require_territory(ledger, principal, unit.record_id, f"unit {unit_id}")
    return unit_public(unit)
