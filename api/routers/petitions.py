"""Petitions (信访件): registration to closure, and their reads (the board is in queries)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from pydantic import Field, StrictBool, StrictInt

from api.deps import AuthorizedDep, CommandDep, LedgerDep, ReadAtDep, answer, require_territory
from api.models import CommandIn, Name, Receipt, RecordId, RecordMeta, Text, meta
from api.privacy import log_read, may_see
from domain.people import Person
from domain.petitions import Petition
from domain.units import Unit
from domain.vocabulary import AssignedFrom, Channel, EscalationLevel, Meeting, NailCheck, PetitionCategory

router = APIRouter(prefix="/petitions", tags=["petitions"])
Empty = Annotated[CommandIn | None, Body()]


class PetitionCreate(CommandIn):
    """Register a petition (逐一登记); the petitioner is personal data."""

    id: RecordId | None = None
    unit_id: RecordId
    channel: Channel
    petitioner_count: StrictInt = Field(ge=1, le=100_000)
    petitioner: Name
    subject: Text
    category: PetitionCategory
    skip_level: StrictBool = False
    repeat_of: RecordId | None = None
    assigned_from: AssignedFrom | None = None


class OwnershipCreate(CommandIn):
    """A leader takes ownership (领导包案)."""

    leader_id: RecordId


class MeetingCreate(CommandIn):
    """One of the three meetings (三见面)."""

    party: Meeting


class ExtensionCreate(CommandIn):
    """Extend the handling deadline (延期), once."""

    days: StrictInt = Field(ge=1, le=365)


class ReplyCreate(CommandIn):
    """The reply to the petitioner (答复)."""

    summary: Text


class ReturnVisitCreate(CommandIn):
    """A return visit (回访) and whether the petitioner was satisfied."""

    satisfied: StrictBool


class EscalationCreate(CommandIn):
    """The petitioner went over our heads (赴京, 进省, 来市), possibly collectively."""

    level: EscalationLevel
    collective: StrictBool = False


class OnSiteOwnershipCreate(CommandIn):
    """On-site ownership (蹲点包案): who is sent down, and the deadline to resolve it."""

    person_id: RecordId
    deadline: datetime


class NailCaseCreate(CommandIn):
    """Designate a nail case (钉子案) with its resolver."""

    resolver_id: RecordId


class NailCheckCreate(CommandIn):
    """One of the four checks (四个不放过)."""

    check: NailCheck


class DiversionCreate(CommandIn):
    """Divert the petition to the responsible unit (依法分流)."""

    to_unit_id: RecordId


class PetitionPublic(RecordMeta):
    """A petition as it stands (or stood); the petitioner only to those who may see it."""

    unit_id: str
    channel: Channel
    subject: str
    category: PetitionCategory
    petitioner_count: int
    petitioner: str | None = None
    skip_level: bool
    repeat_of: str | None
    assigned_from: AssignedFrom | None
    collective: bool
    initial: bool
    flags: list[str]
    handling_deadline: datetime
    acceptance_deadline: datetime = Field(description="受理期限: acceptance is decided by then (R18)")
    extended: bool
    policy_version: int = Field(
        description="the policy version `collective` and `handling_deadline` are judged by: the one in force at "
        "registration, as known at `known_at` (now when not given)"
    )
    owner_id: str | None
    meetings: list[Meeting]
    replied: bool
    return_visits: list[bool]
    escalations: list[str]
    nail_case: bool
    resolver_id: str | None
    nail_checks: list[NailCheck]
    ceased: bool
    on_site_owner_id: str | None = None
    on_site_deadline: datetime | None = None


@router.post("", status_code=201, response_model=Receipt)
def register_petition(body: PetitionCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Register a petition (信访登记)."""
    cmd.guard_unit(body.unit_id, f"unit {body.unit_id}")
    cmd.guard_named(Petition, [body.repeat_of], body.unit_id)
    receipt = cmd.ledger.register_petition(
        body.unit_id,
        body.channel,
        body.petitioner_count,
        body.petitioner,
        body.subject,
        body.category,
        petition_id=body.id,
        skip_level=body.skip_level,
        repeat_of=body.repeat_of,
        assigned_from=body.assigned_from,
        **cmd.create(body),
    )
    return answer(receipt, response, "/v1/petitions")


@router.post("/{petition_id}/ownership", response_model=Receipt)
def take_ownership(petition_id: str, body: OwnershipCreate, cmd: CommandDep, response: Response) -> Receipt:
    """A leader takes ownership of the petition (领导包案)."""
    petition = cmd.guard(Petition, petition_id)
    cmd.guard_named(Person, [body.leader_id], petition.unit_id)
    return answer(cmd.ledger.take_ownership(petition_id, body.leader_id, **cmd.change(body)), response)


@router.post("/{petition_id}/meetings", response_model=Receipt)
def hold_meeting(petition_id: str, body: MeetingCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Record one of the three meetings (三见面)."""
    cmd.guard(Petition, petition_id)
    return answer(cmd.ledger.hold_meeting(petition_id, body.party, **cmd.change(body)), response)


@router.post("/{petition_id}/extension", response_model=Receipt)
def extend_petition(petition_id: str, body: ExtensionCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Extend the handling deadline (延期)."""
    cmd.guard(Petition, petition_id)
    return answer(cmd.ledger.extend_petition(petition_id, body.days, **cmd.change(body)), response)


@router.post("/{petition_id}/reply", response_model=Receipt)
def reply_petition(petition_id: str, body: ReplyCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Record the reply (答复)."""
    cmd.guard(Petition, petition_id)
    return answer(cmd.ledger.reply_petition(petition_id, body.summary, **cmd.change(body)), response)


@router.post("/{petition_id}/return-visit", response_model=Receipt)
def return_visit(petition_id: str, body: ReturnVisitCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Record a return visit (回访)."""
    cmd.guard(Petition, petition_id)
    return answer(cmd.ledger.return_visit(petition_id, body.satisfied, **cmd.change(body)), response)


@router.post("/{petition_id}/escalations", response_model=Receipt)
def escalate(petition_id: str, body: EscalationCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Record an escalation by the petitioner (越级上访, R14)."""
    cmd.guard(Petition, petition_id)
    return answer(cmd.ledger.escalate(petition_id, body.level, body.collective, **cmd.change(body)), response)


@router.post("/{petition_id}/on-site-ownership", response_model=Receipt)
def assign_on_site(petition_id: str, body: OnSiteOwnershipCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Send a person to the township or village to own the petition on site, with a deadline (蹲点包案, R17)."""
    petition = cmd.guard(Petition, petition_id)
    cmd.guard_named(Person, [body.person_id], petition.unit_id)
    receipt = cmd.ledger.assign_on_site(petition_id, body.person_id, body.deadline, **cmd.change(body))
    return answer(receipt, response)


@router.post("/{petition_id}/nail-case", response_model=Receipt)
def designate_nail_case(petition_id: str, body: NailCaseCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Designate the petition a nail case (钉子案, R12)."""
    petition = cmd.guard(Petition, petition_id)
    cmd.guard_named(Person, [body.resolver_id], petition.unit_id)
    return answer(cmd.ledger.designate_nail_case(petition_id, body.resolver_id, **cmd.change(body)), response)


@router.post("/{petition_id}/nail-checks", response_model=Receipt)
def record_nail_check(petition_id: str, body: NailCheckCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Record one of the four nail-case checks (四个不放过)."""
    cmd.guard(Petition, petition_id)
    return answer(cmd.ledger.record_nail_check(petition_id, body.check, **cmd.change(body)), response)


@router.post("/{petition_id}/cessation", response_model=Receipt)
def record_cessation(petition_id: str, cmd: CommandDep, response: Response, body: Empty = None) -> Receipt:
    """The petitioner ceased petitioning (息诉罢访)."""
    cmd.guard(Petition, petition_id)
    return answer(cmd.ledger.record_cessation(petition_id, **cmd.change(body)), response)


@router.post("/{petition_id}/diversion", response_model=Receipt)
def divert_petition(petition_id: str, body: DiversionCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Divert the petition to the responsible unit (依法分流)."""
    petition = cmd.guard(Petition, petition_id)
    cmd.guard_named(Unit, [body.to_unit_id], petition.unit_id)
    return answer(cmd.ledger.divert_petition(petition_id, body.to_unit_id, **cmd.change(body)), response)


@router.post("/{petition_id}/closure", response_model=Receipt)
def close_petition(petition_id: str, cmd: CommandDep, response: Response, body: Empty = None) -> Receipt:
    """Close the petition (结案)."""
    cmd.guard(Petition, petition_id)
    return answer(cmd.ledger.close_petition(petition_id, **cmd.change(body)), response)


@router.get("/{petition_id}", response_model=PetitionPublic)
def read_petition(
    petition_id: str,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    read_at: ReadAtDep,
    purpose: Annotated[str | None, Query(max_length=200, description="why personal data is read (logged)")] = None,
) -> PetitionPublic:
    """A petition; the petitioner only to clerks and auditors, each such read logged."""
    petition = read_at.load(ledger, Petition, petition_id)
    require_territory(ledger, principal, petition.unit_id, f"petition {petition_id}")
    petition = petition.judged(ledger.policy_in_force(petition.opened_at, read_at.known_at))
    registered = ledger.events_of(Petition.KIND, petition_id)[0]
    assert isinstance(registered, Petition.Registered)
    petitioner: str | None = None
    if may_see(principal, "petitioner"):
        petitioner = getattr(registered, "petitioner", None)
        log_read(ledger, principal, Petition.KIND, petition_id, ["petitioner"], purpose)
    return PetitionPublic(
        **meta(petition),
        unit_id=petition.unit_id,
        channel=Channel(registered.channel),
        subject=registered.subject,
        category=PetitionCategory(registered.category),
        petitioner_count=petition.petitioner_count,
        petitioner=petitioner,
        skip_level=petition.skip_level,
        repeat_of=petition.repeat_of,
        assigned_from=petition.assigned_from,
        collective=petition.collective,
        initial=petition.initial,
        flags=petition.flags,
        handling_deadline=petition.handling_deadline,
        acceptance_deadline=petition.acceptance_deadline,
        extended=petition.extended,
        policy_version=petition.policy_version,
        owner_id=petition.owner_id,
        meetings=sorted(petition.meetings),
        replied=petition.replied,
        return_visits=list(petition.return_visits),
        escalations=list(petition.escalations),
        nail_case=petition.nail_case,
        resolver_id=petition.resolver_id,
        nail_checks=sorted(petition.nail_checks),
        ceased=petition.ceased,
        on_site_owner_id=petition.on_site_owner_id,
        on_site_deadline=petition.on_site_deadline,
    )
