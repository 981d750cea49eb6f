"""People (人员) and their conduct record (执法人员档案)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, Field, StrictBool

from api.deps import AuthorizedDep, CommandDep, LedgerDep, ReadAtDep, answer, require_territory
from api.models import CommandIn, MisconductReceipt, Name, Receipt, RecordId, RecordMeta, Text, meta
from api.privacy import log_read, may_see
from domain.people import Person
from domain.vocabulary import Commendation, MisconductKind, Post

router = APIRouter(prefix="/people", tags=["people"])
Purpose = Annotated[str | None, Query(max_length=200, description="why personal data is read (logged)")]


class PersonCreate(CommandIn):
    """Register a person (登记人员); the id is generated when none is given."""

    id: RecordId | None = None
    name: Annotated[str, Field(min_length=1, max_length=100)]
    unit_id: RecordId
    post: Post


class MisconductReportCreate(CommandIn):
    """A misconduct report (违纪举报); the reporter is personal data."""

    kind: MisconductKind
    reporter: Name
    detail: Text


class FindingCreate(CommandIn):
    """The investigation's finding on a report (调查结论)."""

    report_id: RecordId
    substantiated: StrictBool


class CommendationCreate(CommandIn):
    """A commendation (表彰, R8)."""

    title: Commendation


class TrainingCreate(CommandIn):
    """A completed training course (业务培训)."""

    course: Name


class ReceptionCreate(CommandIn):
    """A public reception of petitioners at the grassroots (公开接访, R17)."""

    place: Name


class ReportPublic(BaseModel):
    """A misconduct report and its finding; reporter and detail only to those who may see them."""

    report_id: str
    kind: MisconductKind
    substantiated: bool | None
    reporter: str | None = None
    detail: str | None = None


class PersonPublic(RecordMeta):
    """A person's record as it stands (or stood)."""

    name: str
    unit_id: str
    post: Post
    removed: bool
    referred: bool
    commendations: list[str]
    trainings: list[str]
    receptions: int
    reports: list[ReportPublic]


@router.post("", status_code=201, response_model=Receipt)
def register_person(body: PersonCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Register a person in a unit (登记人员)."""
    cmd.guard_unit(body.unit_id, f"unit {body.unit_id}")
    receipt = cmd.ledger.register_person(body.name, body.unit_id, body.post, person_id=body.id, **cmd.create(body))
    return answer(receipt, response, "/v1/people")


@router.post("/{person_id}/misconduct-reports", response_model=MisconductReceipt)
def report_misconduct(
    person_id: str, body: MisconductReportCreate, cmd: CommandDep, response: Response
) -> MisconductReceipt:
    """Record a misconduct report (违纪举报); answers the new `report_id`."""
    cmd.guard(Person, person_id)
    receipt = cmd.ledger.report_misconduct(person_id, body.kind, body.reporter, body.detail, **cmd.change(body))
    report_id = receipt.extra.get("report_id")
    if report_id is None:  # a replayed command: the report is the last one at that version
        report_id = list(cmd.ledger.get(Person, person_id, version=receipt.version).reports)[-1]
    return MisconductReceipt(**answer(receipt, response).model_dump(), report_id=report_id)


@router.post("/{person_id}/findings", response_model=Receipt)
def record_finding(person_id: str, body: FindingCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Record whether a report was substantiated (属实/不属实)."""
    cmd.guard(Person, person_id)
    cmd.recuse(person_id, f"report {body.report_id}")
    return answer(
        cmd.ledger.record_finding(person_id, body.report_id, body.substantiated, **cmd.change(body)), response
    )


@router.post("/{person_id}/removal", response_model=Receipt)
def remove_from_post(
    person_id: str, cmd: CommandDep, response: Response, body: Annotated[CommandIn | None, Body()] = None
) -> Receipt:
    """Remove the person from the enforcement post (调离执法岗位, R7)."""
    cmd.guard(Person, person_id)
    return answer(cmd.ledger.remove_from_post(person_id, **cmd.change(body)), response)


@router.post("/{person_id}/criminal-referral", response_model=Receipt)
def refer_to_judiciary(
    person_id: str, cmd: CommandDep, response: Response, body: Annotated[CommandIn | None, Body()] = None
) -> Receipt:
    """Refer the person to the judicial organs (移交司法, R7)."""
    cmd.guard(Person, person_id)
    return answer(cmd.ledger.refer_to_judiciary(person_id, **cmd.change(body)), response)


@router.post("/{person_id}/commendations", response_model=Receipt)
def commend(person_id: str, body: CommendationCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Commend the person (执法业务标兵, 国土资源卫士)."""
    cmd.guard(Person, person_id)
    cmd.recuse(person_id, "the commendation")
    return answer(cmd.ledger.commend(person_id, body.title, **cmd.change(body)), response)


@router.post("/{person_id}/trainings", response_model=Receipt)
def record_training(person_id: str, body: TrainingCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Record a completed training course (业务培训)."""
    cmd.guard(Person, person_id)
    return answer(cmd.ledger.record_training(person_id, body.course, **cmd.change(body)), response)


@router.post("/{person_id}/receptions", response_model=Receipt)
def hold_reception(person_id: str, body: ReceptionCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Record a leader's public reception (公开接访, R17)."""
    cmd.guard(Person, person_id)
    return answer(cmd.ledger.hold_reception(person_id, body.place, **cmd.change(body)), response)


@router.get("/{person_id}", response_model=PersonPublic)
def read_person(
    person_id: str, ledger: LedgerDep, principal: AuthorizedDep, read_at: ReadAtDep, purpose: Purpose = None
) -> PersonPublic:
    """A person's record; the reporter of a report only to supervisors and auditors, never to the person named."""
    person = read_at.load(ledger, Person, person_id)
    require_territory(ledger, principal, person.unit_id, f"person {person_id}")
    reports = {
        r.report_id: ReportPublic(report_id=r.report_id, kind=r.kind, substantiated=r.substantiated)
        for r in person.reports.values()
    }
    if reports and may_see(principal, "reporter", named_person=person.record_id):
        for event in ledger.events_of(Person.KIND, person_id):
            if isinstance(event, Person.MisconductReported) and event.originator_version <= person.version:
                reports[event.report_id].reporter = event.reporter
                reports[event.report_id].detail = event.detail
        log_read(ledger, principal, Person.KIND, person_id, ["reporter", "detail"], purpose)
    return PersonPublic(
        **meta(person),
        name=person.name,
        unit_id=person.unit_id,
        post=person.post,
        removed=person.removed,
        referred=person.referred,
        commendations=list(person.commendations),
        trainings=list(person.trainings),
        receptions=person.receptions,
        reports=list(reports.values()),
    )
