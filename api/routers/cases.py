"""Enforcement cases (国土资源违法案件): from clue to closure, and their reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Response
from pydantic import AwareDatetime, BaseModel, Field

from api.deps import AuthorizedDep, CommandDep, LedgerDep, ReadAtDep, answer, require_territory
from api.models import Amount, AmountIn, CommandIn, Name, Receipt, RecordId, RecordMeta, Text, meta
from domain.cases import EnforcementCase
from domain.people import Person
from domain.petitions import Petition
from domain.units import Unit
from domain.vocabulary import Agency, ClueSource, Violation

router = APIRouter(prefix="/cases", tags=["cases"])
People = Annotated[list[RecordId], Field(min_length=1, max_length=50)]


class CaseCreate(CommandIn):
    """A clue reported (线索); the case id is generated when none is given."""

    id: RecordId | None = None
    unit_id: RecordId
    violation: Violation
    source: ClueSource
    area_mu: AmountIn | None = None
    value_yuan: AmountIn | None = None
    location: Annotated[str, Field(max_length=200)] = ""
    petition_id: RecordId | None = None


class FilingCreate(CommandIn):
    """File the case for investigation (立案) with its handlers (承办人)."""

    handler_ids: People


class JointHandlingCreate(CommandIn):
    """Handle jointly with police and discipline (联合办案, R3)."""

    agencies: Annotated[list[Agency], Field(min_length=1, max_length=3)]


class MajorCreate(CommandIn):
    """Declare the case major (重大案件, R4)."""

    reason: Text


class JointReviewCreate(CommandIn):
    """The joint review's decision (会审)."""

    decision: Text


class SupervisionCreate(CommandIn):
    """A higher unit supervises the case with a deadline (督办)."""

    by_unit_id: RecordId
    deadline: AwareDatetime


class PenaltyCreate(CommandIn):
    """The penalty decided (处罚决定)."""

    fine_yuan: AmountIn | None = None
    demolition_mu: AmountIn | None = None


class TransferCreate(CommandIn):
    """Transfer to police, discipline or the judiciary (移送)."""

    to: Agency


class ClosureCreate(CommandIn):
    """Close the case (结案) with its outcome."""

    outcome: Name


class WrongfulFindingCreate(CommandIn):
    """Find the case wrongly handled (错案追究, R2), naming its handlers."""

    handler_ids: People
    reason: Text


class SupervisionPublic(BaseModel):
    by_unit_id: str
    deadline: datetime


class PenaltyPublic(BaseModel):
    """An administrative penalty decided (行政处罚决定)."""

    fine_yuan: Amount | None
    demolition_mu: Amount | None


class CasePublic(RecordMeta):
    """A case as it stands (or stood)."""

    unit_id: str
    violation: Violation
    source: ClueSource
    area_mu: Amount | None
    value_yuan: Amount | None
    location: str
    petition_id: str | None
    major: bool
    major_by_size: bool
    policy_version: int = Field(
        description="the policy version `major_by_size` is judged by: the one in force when the clue was reported, "
        "as known at `known_at` (now when not given)"
    )
    declared_major: bool
    filed: bool
    handler_ids: list[str]
    agencies: list[str]
    steps: list[str]
    supervisions: list[SupervisionPublic]
    joint_reviews: list[str] = Field(description="each joint review's decision (会审), in order")
    penalties: list[PenaltyPublic] = Field(description="each penalty decided, in order")
    transfers: list[str]
    outcome: str | None
    wrongful: bool


Empty = Annotated[CommandIn | None, Body()]


@router.post("", status_code=201, response_model=Receipt)
def report_clue(body: CaseCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Record a reported clue: the case begins (线索登记)."""
    cmd.guard_unit(body.unit_id, f"unit {body.unit_id}")
    cmd.guard_named(Petition, [body.petition_id], body.unit_id)
    receipt = cmd.ledger.report_clue(
        body.unit_id,
        body.violation,
        body.source,
        case_id=body.id,
        area_mu=body.area_mu,
        value_yuan=body.value_yuan,
        location=body.location,
        petition_id=body.petition_id,
        **cmd.create(body),
    )
    return answer(receipt, response, "/v1/cases")


@router.post("/{case_id}/filing", response_model=Receipt)
def file_case(case_id: str, body: FilingCreate, cmd: CommandDep, response: Response) -> Receipt:
    """File the case (立案)."""
    case = cmd.guard(EnforcementCase, case_id)
    cmd.guard_named(Person, body.handler_ids, case.unit_id)
    return answer(cmd.ledger.file_case(case_id, body.handler_ids, **cmd.change(body)), response)


@router.post("/{case_id}/joint-handling", response_model=Receipt)
def handle_jointly(case_id: str, body: JointHandlingCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Record the agencies handling the case jointly (联合办案)."""
    cmd.guard(EnforcementCase, case_id)
    return answer(cmd.ledger.handle_jointly(case_id, body.agencies, **cmd.change(body)), response)


@router.post("/{case_id}/major", response_model=Receipt)
def declare_major(case_id: str, body: MajorCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Declare the case major (重大案件)."""
    cmd.guard(EnforcementCase, case_id)
    return answer(cmd.ledger.declare_major(case_id, body.reason, **cmd.change(body)), response)


@router.post("/{case_id}/report-upward", response_model=Receipt)
def report_upward(case_id: str, cmd: CommandDep, response: Response, body: Empty = None) -> Receipt:
    """Report the case upward (报告)."""
    cmd.guard(EnforcementCase, case_id)
    return answer(cmd.ledger.report_upward(case_id, **cmd.change(body)), response)


@router.post("/{case_id}/record-filing", response_model=Receipt)
def file_for_record(case_id: str, cmd: CommandDep, response: Response, body: Empty = None) -> Receipt:
    """File the case for the record (备案)."""
    cmd.guard(EnforcementCase, case_id)
    return answer(cmd.ledger.file_for_record(case_id, **cmd.change(body)), response)


@router.post("/{case_id}/joint-review", response_model=Receipt)
def review_jointly(case_id: str, body: JointReviewCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Record the joint review's decision (会审)."""
    cmd.guard(EnforcementCase, case_id)
    return answer(cmd.ledger.review_jointly(case_id, body.decision, **cmd.change(body)), response)


@router.post("/{case_id}/supervision", response_model=Receipt)
def supervise(case_id: str, body: SupervisionCreate, cmd: CommandDep, response: Response) -> Receipt:
    """A higher unit supervises the case (督办)."""
    case = cmd.guard(EnforcementCase, case_id)
    cmd.guard_named(Unit, [body.by_unit_id], case.unit_id)
    return answer(cmd.ledger.supervise(case_id, body.by_unit_id, body.deadline, **cmd.change(body)), response)


@router.post("/{case_id}/penalty", response_model=Receipt)
def decide_penalty(case_id: str, body: PenaltyCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Record the penalty decided (处罚决定)."""
    cmd.guard(EnforcementCase, case_id)
    receipt = cmd.ledger.decide_penalty(case_id, body.fine_yuan, body.demolition_mu, **cmd.change(body))
    return answer(receipt, response)


@router.post("/{case_id}/transfer", response_model=Receipt)
def transfer_case(case_id: str, body: TransferCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Transfer the case (移送)."""
    cmd.guard(EnforcementCase, case_id)
    return answer(cmd.ledger.transfer_case(case_id, body.to, **cmd.change(body)), response)


@router.post("/{case_id}/closure", response_model=Receipt)
def close_case(case_id: str, body: ClosureCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Close the case (结案)."""
    cmd.guard(EnforcementCase, case_id)
    return answer(cmd.ledger.close_case(case_id, body.outcome, **cmd.change(body)), response)


@router.post("/{case_id}/wrongful-finding", response_model=Receipt)
def find_wrongful(case_id: str, body: WrongfulFindingCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Find the case wrongly handled (错案), which triggers accountability of its handlers."""
    case = cmd.guard(EnforcementCase, case_id)
    cmd.guard_named(Person, body.handler_ids, case.unit_id)
    return answer(cmd.ledger.find_wrongful(case_id, body.handler_ids, body.reason, **cmd.change(body)), response)


@router.get("/{case_id}", response_model=CasePublic)
def read_case(case_id: str, ledger: LedgerDep, principal: AuthorizedDep, read_at: ReadAtDep) -> CasePublic:
    """A case, current, at `version` or as of a business time."""
    case = read_at.load(ledger, EnforcementCase, case_id)
    require_territory(ledger, principal, case.unit_id, f"case {case_id}")
    case = case.judged(ledger.policy_in_force(case.opened_at, read_at.known_at))
    clue = ledger.events_of(EnforcementCase.KIND, case_id)[0]
    return CasePublic(
        **meta(case),
        unit_id=case.unit_id,
        violation=case.violation,
        source=case.source,
        area_mu=case.area_mu,
        value_yuan=case.value_yuan,
        location=getattr(clue, "location", ""),
        petition_id=getattr(clue, "petition_id", None),
        major=case.is_major,
        major_by_size=case.major_by_size,
        policy_version=case.policy_version,
        declared_major=case.declared_major,
        filed=case.filed,
        handler_ids=list(case.handler_ids),
        agencies=sorted(case.agencies),
        steps=list(case.steps),
        supervisions=[SupervisionPublic(by_unit_id=u, deadline=d) for u, d in case.supervisions],
        joint_reviews=list(case.joint_reviews),
        penalties=[PenaltyPublic(fine_yuan=fine, demolition_mu=mu) for fine, mu in case.penalties],
        transfers=list(case.transfers),
        outcome=case.outcome,
        wrongful=case.wrongful,
    )
