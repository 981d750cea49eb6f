"""Audit (审计): a record's events with their hashes, integrity, proofs, bundles, back-dating, data reads.

Thin routes over ``audit.service`` and ``audit.history``; their refusals map to problems in api.problems.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from api import projections_link
from api.auth import Principal
from api.deps import AuthorizedDep, LedgerDep, covers_agreement, covers_grant
from api.privacy import may_see
from api.problems import INTEGRITY_FAULT, InvalidParameter, ProblemError, located
from audit import history, service
from audit.history import Owner
from domain.access import AccessGrant
from domain.agreements import AccountabilityDecision, TargetAgreement
from domain.application import Ledger, record_class
from domain.base import Record, unit_of
from domain.errors import DomainError, RecordNotFound
from domain.people import Person
from domain.policy import Policy

router = APIRouter(prefix="/audit", tags=["audit"])
Position = Annotated[int, Query(ge=1, le=10**12)]
NDJSON = "application/x-ndjson"


class AuditEvent(BaseModel):
    """One event as an auditor sees it: where it sits in the log, who, when, what, and its chain hash."""

    position: int
    version: int
    type: str
    actor: str | None
    occurred_at: datetime | None
    recorded_at: datetime
    data: dict[str, Any]
    unit_id: str | None = Field(
        default=None, description="the record's unit once this event happened (属地); null for a record of no one unit"
    )
    hash: str | None


class AuditEvents(BaseModel):
    items: list[AuditEvent]


class LateEntry(BaseModel):
    """An event recorded long after it happened (补录/倒签)."""

    position: int
    kind: str | None = Field(description="the record's kind (unit, person, case, petition, agreement, policy, …)")
    record_id: str | None
    unit_id: str | None = Field(description="the record's unit once this event happened (属地); null for none")
    type: str
    actor: str | None
    occurred_at: datetime | None
    recorded_at: datetime
    effective_from: datetime | None = Field(
        default=None, description="a policy amendment's: the gap runs from it when earlier than occurred_at"
    )
    gap: str = Field(description="ISO 8601 duration")
    gap_seconds: int


class LateEntries(BaseModel):
    items: list[LateEntry]
    next_after: int | None


class PersonalDataReadPublic(BaseModel):
    """One read of personal data (个人信息查阅记录)."""

    position: int | None
    kind: str
    id: str
    fields: list[str]
    purpose: str
    actor: str
    grant_id: str | None = Field(
        description="the reading token's grant; its `granted_under` names the token that granted it (GET /v1/tokens)"
    )
    read_at: datetime


class AccessLogList(BaseModel):
    items: list[PersonalDataReadPublic]
    next_before: int | None = Field(
        default=None, description="the oldest position on this full page: pass it as `before` for the page before"
    )


def within_territory(request: Request, ledger: Ledger, principal: Principal, kind: str, record_id: str) -> bool:
    """Whether the token may see this record's audit trail: exactly when it may read the record itself (属地管理).

    Each kind answers as its own read route does (``GET /v1/{kind}s/{id}``): a unit, person, case or petition by its
    unit; an agreement by either party; the city-wide policy to every token; a token's grant only if all its units
    are covered; a decision by its trigger's subject. An unknown kind is 422, a record never recorded 404."""
    if not principal.bound:
        return True
    with located(kind="query", id="query"):
        record = ledger.get(record_class(kind), record_id)
    return _covers_record(request, ledger, principal, record)


def _covers_record(request: Request, ledger: Ledger, principal: Principal, record: Record) -> bool:
    if isinstance(record, Policy):
        return True
    if isinstance(record, TargetAgreement):
        return covers_agreement(ledger, principal, record)
    if isinstance(record, AccessGrant):
        return covers_grant(ledger, principal, record)
    if isinstance(record, AccountabilityDecision):
        with projections_link.queries(request.app.state) as queries:
            trigger = queries.trigger(record.trigger_id) or {}
        return principal.covers(ledger, (trigger.get("subject") or {}).get("unit_id"))
    return principal.covers(ledger, unit_of(record))


def require_record_territory(request: Request, ledger: Ledger, principal: Principal, kind: str, record_id: str) -> None:
    """403 unless the token may read this record (:func:`within_territory`); 404 if there is none."""
    if not within_territory(request, ledger, principal, kind, record_id):
        units = ", ".join(principal.unit_ids)
        raise ProblemError(403, f"{kind} {record_id} lies outside this token's units ({units})")


@router.get("/events", response_model=AuditEvents)
def record_events(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    kind: Annotated[str, Query(max_length=32)],
    id: Annotated[str, Query(max_length=64)],
) -> AuditEvents:
    """A record's events in order, each with its log position and chain hash; personal fields stay sealed. A
    unit-bound token sees only the events of records it may read (属地管理): 403 for another territory's."""
    require_record_territory(request, ledger, principal, kind, id)
    with located(kind="query", id="query"):
        events = history.history(ledger, kind, id)
    if kind == Person.KIND and not may_see(principal, "reporter", named_person=id):
        events = [_without_detail(e) for e in events]
    return AuditEvents(items=[AuditEvent.model_validate(e) for e in events])


#: A misconduct report's ``detail`` and ``note`` go with its reporter (``GET /v1/people/{id}``): what was reported can
#: name who reported it, so whoever may not see the reporter (the person named, the admin) sees them withheld here,
#: even sealed (reports recorded before they were sealed hold them in plain text).
_REPORT = Person.MisconductReported.__qualname__


def _without_detail(event: dict[str, Any]) -> dict[str, Any]:
    if event["type"] != _REPORT or "detail" not in event["data"]:
        return event
    return {**event, "data": {**event["data"], "detail": None, "note": None}}


@router.get("/verify")
def verify(request: Request, _: AuthorizedDep) -> dict[str, Any]:
    """Check the whole chain: `{ok, checked, head, first_bad_position}`."""
    return service.verify(request.app.state.url)


@router.get("/checkpoints/latest")
def latest_checkpoint(request: Request, _: AuthorizedDep) -> dict[str, Any]:
    """The latest signed tree head: `size`, `root`, `timestamp`, `signature`, `key_id`."""
    checkpoint = service.latest_checkpoint(request.app.state.url)
    if checkpoint is None:
        raise RecordNotFound("checkpoint", "latest")
    return checkpoint


@router.get("/keys")
def signing_keys(request: Request, _: AuthorizedDep) -> dict[str, Any]:
    """The public keys checkpoints were signed with (`key_id`, `pem`): the one the audit office holds is what
    `ledger verify-bundle --key` should trust; a bundle's own key vouches only for itself."""
    return {
        "items": [{"key_id": kid, "pem": pem} for kid, pem in sorted(service.public_key(request.app.state.url).items())]
    }


@router.get("/proofs/inclusion")
def inclusion_proof(request: Request, _: AuthorizedDep, position: Position, size: Position) -> dict[str, Any]:
    """Merkle inclusion proof (RFC 9162 §2.1.3): `{leaf_index, tree_size, leaf_hash, path}`."""
    return service.inclusion_proof(request.app.state.url, position, size)


@router.get("/proofs/consistency")
def consistency_proof(request: Request, _: AuthorizedDep, first: Position, second: Position) -> dict[str, Any]:
    """Merkle consistency proof (RFC 9162 §2.1.4): `{first, second, path}`."""
    return service.consistency_proof(request.app.state.url, first, second)


def refuse_bundle_to_bound(principal: Principal) -> None:
    """403 for a unit-bound token (属地管理): a bundle is checked offline only whole — every event of the range in
    the hash chain and the Merkle tree its checkpoints sign, and the city's stated figures recomputed from those
    events — so it holds every territory's records, and one cut to a territory would no longer verify. A bound
    auditor checks its own records' events (`/events`, each with its chain hash) against a signed checkpoint
    (`/checkpoints/latest`, `/proofs/inclusion`) instead."""
    if principal.bound:
        raise ProblemError(
            403,
            "an audit bundle holds every territory's events (it verifies only whole), so a token bound to units "
            f"({', '.join(principal.unit_ids)}) cannot export one: read your records' events at /v1/audit/events and "
            "check them against /v1/audit/checkpoints/latest with /v1/audit/proofs/inclusion",
        )


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"description": "the bundle, JSON Lines", "content": {NDJSON: {}}}, **INTEGRITY_FAULT},
)
def export(
    request: Request,
    principal: AuthorizedDep,
    start: Annotated[int | None, Query(alias="from", ge=1, le=10**12)] = None,
    stop: Annotated[int | None, Query(alias="to", ge=1, le=10**12)] = None,
) -> Response:
    """The same self-contained audit bundle as `ledger export` (JSON Lines), refused as it refuses: nothing is sent
    from a store that fails its check in the range (500, naming the first bad position). A city-wide token's only:
    see :func:`refuse_bundle_to_bound`."""
    refuse_bundle_to_bound(principal)
    if start is not None and stop is not None and start > stop:
        raise InvalidParameter(f"from ({start}) must not be after to ({stop})", "query", "from")
    return Response(service.export_bytes(request.app.state.url, start, stop), media_type=NDJSON)


@router.get("/late-entries", response_model=LateEntries)
def late_entries(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    min_gap: Annotated[timedelta, Query(description="ISO 8601 duration, e.g. P7D")] = timedelta(days=7),
    after: Annotated[int, Query(ge=0, le=10**12, description="log position to continue after")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LateEntries:
    """Events recorded at least `min_gap` after they occurred (back-dating, 倒签), in log order; a unit-bound
    token sees only those of records in its units (属地管理)."""
    if min_gap < timedelta(0):
        raise InvalidParameter("min_gap must not be negative", "query", "min_gap")

    def within(owner: Owner) -> bool:
        """A record of a unit by that unit; one of no unit (the policy, an agreement, a decision, a grant) as its
        audit trail is read (:func:`within_territory`)."""
        kind, record_id, unit_id = owner
        if unit_id is not None:
            return principal.covers(ledger, unit_id)
        if kind is None or record_id is None:
            return False
        try:
            return within_territory(request, ledger, principal, kind, record_id)
        except DomainError:  # a record no longer read as recorded: verification names it
            return False

    items = service.late_entries(request.app.state.url, min_gap, after + 1, limit, within if principal.bound else None)
    next_after = items[-1]["position"] if len(items) == limit else None
    return LateEntries(items=[LateEntry.model_validate(i) for i in items], next_after=next_after)


@router.get("/access-log", response_model=AccessLogList)
def access_log(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    id: Annotated[str | None, Query(max_length=64)] = None,
    before: Annotated[int | None, Query(ge=1, le=10**12, description="log position to continue before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> AccessLogList:
    """Who read whose personal data, when and why (个人信息查阅记录); one record's, or the latest before `before`,
    oldest first. A unit-bound token sees only reads of records it may read (属地管理): one record's outside its
    territory is 403, as its events are; the latest are those within it, a page still filled up to `limit`."""
    if kind and id:
        require_record_territory(request, ledger, principal, kind, id)
        reads = history.personal_data_reads_of(ledger, kind, id, limit)
        return AccessLogList(items=[PersonalDataReadPublic.model_validate(r) for r in reads], next_before=None)
    within = partial(within_territory, request, ledger, principal) if principal.bound else None
    reads = history.personal_data_reads(ledger, limit, before, within)
    next_before = reads[0]["position"] if len(reads) == limit else None
    return AccessLogList(items=[PersonalDataReadPublic.model_validate(r) for r in reads], next_before=next_before)
