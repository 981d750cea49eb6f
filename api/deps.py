"""Request dependencies (依赖): the ledger, the caller, command headers, read options, territory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import CHALLENGE, Principal, authenticate
from api.models import CommandIn, Receipt
from api.permissions import API_PREFIX, allowed
from api.problems import InvalidParameter, ProblemError, located
from domain.access import AccessGrant
from domain.agreements import TargetAgreement
from domain.application import IdempotencyKey, Ledger
from domain.application import Receipt as DomainReceipt
from domain.base import Record, unit_of
from domain.errors import DomainError
from projections.catalog import asked_moment
from store.db import connect
from store.ledger import open_ledger

R = TypeVar("R", bound=Record)
_bearer = HTTPBearer(auto_error=False, description="`<grant_id>.<secret>` from `ledger token create`")
_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d{1,12})"?\s*$')


def get_ledger(request: Request) -> Ledger:
    return ledger_of(request.app)


_opening = threading.Lock()


def ledger_of(app: Any) -> Ledger:
    """The app's ledger, opened now if the store was unreachable when the server started.

    While the store is still away this raises its driver's error, which the problem handlers answer
    with a 503; the first request after it is back opens the ledger for every later one.
    """
    ledger: Ledger | None = app.state.ledger
    if ledger is not None:
        return ledger
    opened = open_when_reachable(app.state.url)
    with _opening:  # two requests may have opened one each: keep the first, close the other
        if app.state.ledger is None:
            app.state.ledger = opened
            return opened
    opened.close()
    kept: Ledger = app.state.ledger
    return kept


def open_when_reachable(url: str) -> Ledger:
    """The ledger on ``url``, after a plain connection has shown the store answers.

    Opening the ledger on an unreachable PostgreSQL starts a connection pool whose threads keep
    trying; the probe fails first, within the connect timeout, and leaves nothing running.
    """
    connect(url).close()
    return open_ledger(url)


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def get_principal(
    request: Request,
    ledger: LedgerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ProblemError(401, "an Authorization: Bearer token is required", headers=CHALLENGE)
    source = request.client.host if request.client else "unknown"
    return authenticate(ledger, credentials.credentials, source)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def authorize(request: Request, principal: PrincipalDep) -> Principal:
    """Refuse a route the token's role may not use (permissions.MATRIX)."""
    path = API_PREFIX + getattr(request.scope.get("route"), "path", "")
    if not allowed(principal.role, request.method, path):
        raise ProblemError(403, f"the {principal.role} role may not {request.method} {path}")
    return principal


def require_territory(ledger: Ledger, principal: Principal, unit_id: str | None, what: str) -> None:
    """403 unless ``unit_id`` is within the token's territory (属地管理)."""
    if not principal.covers(ledger, unit_id):
        raise ProblemError(403, f"{what} lies outside this token's units ({', '.join(principal.unit_ids)})")


def covers_agreement(ledger: Ledger, principal: Principal, agreement: TargetAgreement) -> bool:
    """Either party's token may read an agreement: signing was checked against the issuer's territory, so the token
    that signed it (and got its Location) reads it even where the responsible unit lies outside."""
    parties = (agreement.issuer_unit_id, agreement.responsible_unit_id)
    return any(principal.covers(ledger, unit_id) for unit_id in parties)


def covers_grant(ledger: Ledger, principal: Principal, grant: AccessGrant) -> bool:
    """A token's grant is read within every one of its units; a city-wide grant only by a city-wide token."""
    if not grant.unit_ids:
        return not principal.bound
    return all(principal.covers(ledger, unit_id) for unit_id in grant.unit_ids)


@dataclass(frozen=True)
class Command:
    """A command's context: who acts (from the token, never the body) and its HTTP preconditions."""

    ledger: Ledger
    principal: Principal
    expected_version: int | None
    idempotency_key: str | None
    #: Whether the request carried If-Match at all (``*``, any current state, included).
    if_match: bool = False

    def create(self, body: CommandIn | None) -> dict[str, Any]:
        """Keyword arguments for a creating use case (no version to expect). An If-Match on it fails (412, RFC 9110
        §13.1.1): the record has no current state yet to match."""
        if self.if_match:
            raise ProblemError(412, "If-Match was given, but this command creates a record: there is no state to match")
        return self._stamped(body)

    def change(self, body: CommandIn | None) -> dict[str, Any]:
        """Keyword arguments for a use case that changes an existing record."""
        return {**self._stamped(body), "expected_version": self.expected_version}

    def _stamped(self, body: CommandIn | None) -> dict[str, Any]:
        """Who acts, when it happened, the note and the idempotency key: every use case's keyword arguments."""
        body = body or CommandIn()
        return {
            "actor": self.principal.subject,
            "occurred_at": body.occurred_at,
            "note": body.note,
            "idempotency_key": self.idempotency_key,
        }

    def guard(self, cls: type[R], record_id: str) -> R:
        """Load the record and refuse it if it lies outside the token's territory."""
        with located(id="path"):
            record = self.ledger.get(cls, record_id)
        require_territory(self.ledger, self.principal, unit_of(record), f"{cls.KIND} {record_id}")
        return record

    def guard_unit(self, unit_id: str | None, what: str = "the unit") -> None:
        require_territory(self.ledger, self.principal, unit_id, what)

    def recuse(self, person_id: str | None, what: str) -> None:
        """Refuse (403, 回避) a token speaking for the person a trigger, a report or a commendation names, or granted
        down a chain from that person's token: no one decides their own accountability or finding, nor commends
        themselves, in their own name or through a token they granted."""
        if person_id is not None and person_id in (self.principal.subject, *self.principal.grantors):
            raise ProblemError(403, f"{person_id} is named in {what} and cannot decide it (回避)")

    def guard_named(self, cls: type[Record], record_ids: Iterable[str | None], beside: str | None) -> None:
        """Refuse (403) a record the body names — a handler, a leader, a resolver, a supervising or receiving unit,
        an earlier petition — that lies outside the token's territory (属地管理), unless it lies above ``beside``,
        the unit of the record acted on (a city leader owns a district's petition, 包案; a higher level supervises
        its case, 督办). Checked before any rule, so a refusal tells nothing of a record the token may not read (a
        person's post, a removal); an unknown id is left to the command (404, as for any token)."""
        named = [record_id for record_id in record_ids if record_id is not None]
        if not self.principal.bound or not named:
            return
        above = set(self.ledger.lineage(beside)) if beside is not None else set()
        for record_id in named:
            try:
                record = self.ledger.get(cls, record_id)
            except DomainError:
                continue
            unit = unit_of(record)
            if unit not in above:
                require_territory(self.ledger, self.principal, unit, f"{cls.KIND} {record_id}")


async def get_command(
    request: Request,
    ledger: LedgerDep,
    principal: Annotated[Principal, Depends(authorize)],
    if_match: Annotated[
        str | None, Header(max_length=40, description='`"<version>"`: refuse (412) if the record moved on')
    ] = None,
    idempotency_key: Annotated[
        str | None, Header(max_length=200, description="a repeat returns the first answer and records nothing new")
    ] = None,
) -> Command:
    _refuse_duplicate_keys(await request.body())
    expected: int | None = None
    if if_match is not None and if_match.strip() != "*":  # "*": any current state (the record must exist)
        match = _IF_MATCH.match(if_match)
        if match is None:
            raise InvalidParameter('If-Match must be a version in quotes, e.g. "3", or *', "header", "If-Match")
        expected = int(match.group(1))
    key: str | None = None
    if idempotency_key:
        # The actor and the route are part of the key, so two clients' keys never collide; the request's body is
        # its fingerprint, so a repeat with another body is refused (422) rather than answered with the first's.
        route = getattr(request.scope.get("route"), "path", "")
        scoped = f"{principal.subject}\n{request.method} {request.url.path}\n{route}\n{idempotency_key}"
        key = IdempotencyKey(hashlib.sha256(scoped.encode()).hexdigest(), _fingerprint(await request.body()))
    return Command(ledger, principal, expected, key, if_match=if_match is not None)


def _refuse_duplicate_keys(body: bytes) -> None:
    """400 for a body naming a field twice (``{"id": "a1", "id": "b2"}``): JSON parsers keep the last, so a
    command on record would say other than what a reader of the request sees. A body that is no JSON is left to
    the validation (400 as malformed)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise ProblemError(400, f"the body names {key!r} more than once")
            seen.add(key)
        return dict(items)

    if body.strip():
        with contextlib.suppress(ValueError, RecursionError):  # not JSON, not UTF-8, too deep: validation names it
            json.loads(body, object_pairs_hook=pairs)


def _fingerprint(body: bytes) -> str:
    """A request body's fingerprint: of its JSON with keys sorted (the same request, however spaced or ordered),
    else of its bytes."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body.strip() else b""
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


CommandDep = Annotated[Command, Depends(get_command)]
AsOf = Annotated[datetime | None, Query(description="business time, RFC 3339 with offset; default now")]
KnownAt = Annotated[datetime | None, Query(description="recording time, RFC 3339 with offset; default now")]


def asked(moment: datetime | None, key: str) -> datetime | None:
    """A question's ``as_of`` or ``known_at`` (``asked_moment``: one in the future is now); 422 for one without a
    UTC offset or outside the ledger's time."""
    if moment is None:
        return None
    if moment.utcoffset() is None:
        raise InvalidParameter(f"{key} must carry a UTC offset", "query", key)
    try:
        return asked_moment(moment, key)
    except ValueError as e:
        raise InvalidParameter(str(e), "query", key) from None


AuthorizedDep = Annotated[Principal, Depends(authorize)]


@dataclass(frozen=True)
class ReadAt:
    """Which state of a record to read: current, at a version, or as of a business time (业务时间) as known at
    a recording time (登记时间); either moment alone leaves the other at now."""

    version: int | None
    as_of: datetime | None
    known_at: datetime | None

    def load(self, ledger: Ledger, cls: type[R], record_id: str) -> R:
        if self.version is not None and (self.as_of is not None or self.known_at is not None):
            # A version is one recorded state; as_of and known_at choose a state, so together they'd disagree.
            raise InvalidParameter("give version, or as_of and/or known_at, not both", "query", "version")
        with located(id="path", version="query"):
            if self.as_of is not None or self.known_at is not None:
                return ledger.as_of(cls, record_id, self.as_of, self.known_at)
            return ledger.get(cls, record_id, version=self.version)


def get_read_at(
    version: Annotated[int | None, Query(ge=1, le=10**9, description="the record's state at this version")] = None,
    as_of: Annotated[datetime | None, Query(description="business time, RFC 3339 with offset")] = None,
    known_at: Annotated[datetime | None, Query(description="recording time, RFC 3339 with offset")] = None,
) -> ReadAt:
    for name, moment in (("as_of", as_of), ("known_at", known_at)):
        if moment is not None and moment.utcoffset() is None:
            raise InvalidParameter(f"{name} must carry a UTC offset", "query", name)
    return ReadAt(version, as_of, known_at)


ReadAtDep = Annotated[ReadAt, Depends(get_read_at)]


def answer(receipt: DomainReceipt, response: Response, collection: str | None = None) -> Receipt:
    """A command's answer: 201 with Location when it created the record, else 200."""
    if receipt.created and collection is not None:
        response.status_code = 201
        response.headers["Location"] = f"{collection}/{receipt.id}"
    return Receipt(id=receipt.id, version=receipt.version, position=receipt.position)
