"""Projection queries (查询): scores, triggers, quota, the petition board, reports, lag.

Rows outside a unit-bound token's territory are filtered out, not refused (属地管理).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request, Response

from api import projections_link
from api.auth import Principal
from api.deps import AsOf, AuthorizedDep, KnownAt, LedgerDep, asked
from api.models import QueryAnswer
from api.problems import InvalidParameter
from domain.application import Ledger
from projections.queries import Territory, next_after

router = APIRouter(tags=["queries"])
Year = Annotated[int, Query(ge=2000, le=2100)]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
UnitFilter = Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)]
SeenPosition = Annotated[
    int | None,
    Header(
        alias="X-Ledger-Position", ge=0, le=10**12, description="the last log position this client wrote; wait for it"
    ),
]


#: The query parameter whose value a projection may refuse (ValueError) once FastAPI has let it through
#: (an ISO week 53 in a year of 52, month 0000-01), by the projection's method; others name no one parameter.
REFUSABLE: dict[str, str | tuple[str, ...]] = {
    "daily": "date",
    "weekly": "week",
    "monthly": "month",
    "triggers": "after",
    "petitions": "after",
    "officers": "after",
    "cases": "after",
}
PageLimit = Annotated[int | None, Query(ge=1, le=1000, description="at most this many rows per page")]
PageAfter = Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN, description="the last page's next_after")]
PageCursor = Annotated[
    str | None,
    Query(max_length=512, pattern=r"^[A-Za-z0-9_-]+$", description="the last page's next_after (a cursor)"),
]
#: The board's flags (PETITION_FLAGS): 钉子案, 越级, 重复, 集体, 省以上交办, 已上访, 初信初访; 重点 and 未包案 (R9).
BoardFlag = Literal[
    "nail_case", "skip_level", "repeat", "collective", "assigned", "escalated", "initial", "key", "unowned"
]


def _unit_of(row: dict[str, Any]) -> str | None:
    subject = row.get("subject")
    if isinstance(subject, dict) and "unit_id" in subject:
        return subject.get("unit_id")
    unit: str | None = row.get("unit_id")
    return unit


def _within(value: Any, ledger: Ledger, principal: Principal) -> Any:
    """Drop rows (at any depth) whose unit lies outside the token's territory. A list or dict from which nothing
    is dropped is handed back as it is, not copied: a token covering a whole 1.6 MB bulletin had every one of its
    rows rebuilt (24 ms of a 66 ms answer)."""
    if isinstance(value, list):
        kept: list[Any] | None = None  # a copy, begun at the first row dropped or changed
        for i, row in enumerate(value):
            if type(row) in _SCALARS:  # most of an answer's values (evidence positions): nothing to look into
                if kept is not None:
                    kept.append(row)
                continue
            if isinstance(row, dict) and _outside(row, ledger, principal):
                inner = _DROPPED
            else:
                inner = _within(row, ledger, principal) if isinstance(row, list | dict) else row
            if inner is not row and kept is None:
                kept = value[:i]
            if kept is not None and inner is not _DROPPED:
                kept.append(inner)
        return value if kept is None else kept
    if isinstance(value, dict):
        copy: dict[str, Any] | None = None
        for key, item in value.items():
            if type(item) not in _SCALARS and isinstance(item, list | dict):
                inner = _within(item, ledger, principal)
                if inner is not item:
                    copy = copy if copy is not None else dict(value)
                    copy[key] = inner
        return value if copy is None else copy
    return value


_DROPPED = object()
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _outside(row: dict[str, Any], ledger: Ledger, principal: Principal) -> bool:
    """Whether a row names a unit (its own, or its subject's) outside the token's territory; a row naming none is
    kept, but one with an empty ``unit_id`` is not."""
    unit = _unit_of(row)
    return (unit is not None or "unit_id" in row) and not principal.covers(ledger, unit)


def _named(ledger: Ledger, unit_id: str | None) -> str | None:
    """The unit a question names, which must exist (404 for a mistyped id, not an empty list)."""
    if unit_id is not None:
        ledger.lineage(unit_id)  # RecordNotFound for a unit never registered; kept once found
    return unit_id


def _territory(unit_id: str | None, principal: Principal) -> Territory:
    """What a list of units' rows is asked of: the unit named; else a unit-bound token's units, whose rows of the
    city's list are their territories' rows (tests/projections/test_paging.py), in pages of their own rather than the
    city's filtered down to none; else the city. Not for triggers: a government's principal leader answers (R4) for
    cases in bureau offices outside its territory, so a token's triggers are the city's, filtered by subject."""
    return unit_id if unit_id is not None or not principal.bound else principal.unit_ids


def _ask(
    request: Request,
    ledger: Ledger,
    principal: Principal,
    seen: int | None,
    name: str,
    *args: Any,
    **options: Any,
) -> QueryAnswer:
    for key in ("as_of", "known_at"):
        if key in options:
            options[key] = asked(options[key], key)
    with _reader(request, ledger, seen, name) as reader:
        result = getattr(reader, name)(*args, **options)
        position, lag = projections_link.progress(reader.db)
    # Named before a bound token's rows are filtered: a page short of rows outside its territory still leads on.
    following = next_after(name, result, options.get("limit"))
    if principal.bound:
        result = _within(result, ledger, principal)
    if isinstance(result, dict):
        return QueryAnswer(**{"items": [], **result, "position": position, "lag": lag})
    return QueryAnswer(items=list(result or []), position=position, lag=lag, next_after=following)


@router.get("/scores", response_model=QueryAnswer)
def scores(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    year: Year,
    unit_id: UnitFilter = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    seen: SeenPosition = None,
    limit: PageLimit = None,
    after: PageAfter = None,
) -> QueryAnswer:
    """Each unit's target-assessment score for a year, with its deductions and their evidence; by unit id, paged
    with ``limit`` and ``after`` (a page stops short of ``limit`` once its rows carry about 500 deductions, and
    names the next in ``next_after`` all the same)."""
    page = {"limit": limit, "after": after}
    asked = _territory(_named(ledger, unit_id), principal)  # none weighed by another territory's deductions either
    return _ask(request, ledger, principal, seen, "scores", year, asked, as_of=as_of, known_at=known_at, **page)


@router.get("/triggers", response_model=QueryAnswer)
def triggers(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    status: Literal["open", "decided"] | None = None,
    unit_id: UnitFilter = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    seen: SeenPosition = None,
    limit: PageLimit = None,
    after: PageCursor = None,
) -> QueryAnswer:
    """Accountability triggers (责任追究线索), open or decided, in the order they opened; paged with ``limit`` and
    ``after`` (the last page's ``next_after``)."""
    page = {"limit": limit, "after": after}
    return _ask(
        request,
        ledger,
        principal,
        seen,
        "triggers",
        status,
        _named(ledger, unit_id),
        as_of=as_of,
        known_at=known_at,
        **page,
    )


@router.get("/quota-deductions", response_model=QueryAnswer)
def quota_deductions(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    year: Year,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    seen: SeenPosition = None,
    limit: PageLimit = None,
    after: PageAfter = None,
) -> QueryAnswer:
    """R4 deductions per district: quota mu, consolidation funds, model-district points."""
    page = {"limit": limit, "after": after}
    return _ask(request, ledger, principal, seen, "quota_deductions", year, as_of=as_of, known_at=known_at, **page)


@router.get("/quota", response_model=QueryAnswer)
def quota(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    year: Year,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    seen: SeenPosition = None,
    limit: PageLimit = None,
    after: PageAfter = None,
) -> QueryAnswer:
    """The quota ledger per district: allocated, used, deducted, remaining mu (R19)."""
    page = {"limit": limit, "after": after}
    return _ask(request, ledger, principal, seen, "quota", year, as_of=as_of, known_at=known_at, **page)


@router.get("/cases", response_model=QueryAnswer)
def case_board(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    status: Literal["open", "closed"] | None = None,
    flag: Literal["major", "supervised", "supervision_overdue", "not_investigated", "wrongful"] | None = None,
    unit_id: UnitFilter = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    seen: SeenPosition = None,
    limit: PageLimit = None,
    after: PageCursor = None,
) -> QueryAnswer:
    """The case board (案件台账): open or closed cases, by flag (major 重大, supervised 督办, supervision_overdue 督办
    逾期, not_investigated 有案不查, wrongful 错案) and unit, in registration order; paged with ``limit`` and ``after``
    (the last page's ``next_after``)."""
    page = {"limit": limit, "after": after}
    moments = {"as_of": as_of, "known_at": known_at}
    asked = _territory(_named(ledger, unit_id), principal)
    return _ask(request, ledger, principal, seen, "cases", status, flag, asked, **moments, **page)


@router.get("/petitions", response_model=QueryAnswer)
def petition_board(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    status: Literal["open", "overdue", "closed"] | None = None,
    flag: BoardFlag | None = None,
    unit_id: UnitFilter = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    seen: SeenPosition = None,
    limit: PageLimit = None,
    after: PageCursor = None,
) -> QueryAnswer:
    """The petition board (信访台账): open, overdue or closed petitions, by flag and unit, in registration order;
    paged with ``limit`` and ``after`` (the last page's ``next_after``)."""
    page = {"limit": limit, "after": after}
    moments = {"as_of": as_of, "known_at": known_at}
    asked = _territory(_named(ledger, unit_id), principal)
    return _ask(request, ledger, principal, seen, "petitions", status, flag, asked, **moments, **page)


@router.get("/officers", response_model=QueryAnswer)
def officer_registry(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    status: Literal["removal_due", "removed", "referred", "commended"] | None = None,
    unit_id: UnitFilter = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    seen: SeenPosition = None,
    limit: PageLimit = None,
    after: PageCursor = None,
) -> QueryAnswer:
    """The officer registry (执法人员档案): removal due, removed, referred, commended (R7, R8), in registration
    order; paged with ``limit`` and ``after`` (the last page's ``next_after``)."""
    page = {"limit": limit, "after": after}
    asked = _territory(_named(ledger, unit_id), principal)
    return _ask(request, ledger, principal, seen, "officers", status, asked, as_of=as_of, known_at=known_at, **page)


@contextmanager
def _reader(request: Request, ledger: Ledger, seen: int | None, name: str) -> Iterator[Any]:
    """The projections' reader, once they have applied the log up to ``seen``; an argument they refuse
    (``ValueError``: a period they cannot read) is the client's error."""
    url: str = request.app.state.query_url
    if seen:
        # No client wrote past the primary's head: a larger position would only make the answer wait.
        seen = min(seen, int(ledger.recorder.max_notification_id() or 0))
    projections_link.wait_for(url, seen)
    with projections_link.queries(request.app.state) as reader:
        try:
            yield reader
        except ValueError as exc:
            raise InvalidParameter(str(exc), "query", REFUSABLE.get(name, ())) from None


def _report(
    request: Request,
    ledger: Ledger,
    principal: Principal,
    seen: int | None,
    kind: str,
    label: str,
    as_of: datetime | None,
    known_at: datetime | None,
) -> QueryAnswer | Response:
    """A report, as of its period's end (now for a period in progress) and as known now unless asked otherwise: for a
    unit-bound token its totals are summed over the token's territory, and its rows filtered; for the whole city,
    the report is handed on as kept (:func:`_as_kept`)."""
    if not principal.bound and as_of is None and known_at is None:
        return _as_kept(request, ledger, seen, kind, label)
    covers = (lambda unit: principal.covers(ledger, unit)) if principal.bound else None
    return _ask(request, ledger, principal, seen, kind, label, as_of=as_of, known_at=known_at, covers=covers)


def _as_kept(request: Request, ledger: Ledger, seen: int | None, kind: str, label: str) -> Response:
    """The city's report as known now, its kept JSON sent as stored after the answer's own fields (the same document
    :class:`QueryAnswer` would write): decoding a 1.6 MB bulletin into objects and encoding it again was most of
    its answer over HTTP."""
    with _reader(request, ledger, seen, kind) as reader:
        body = reader.report_as_known_now(kind, label)
        position, lag = projections_link.progress(reader.db)
    head = orjson.dumps({"items": [], "position": position, "lag": lag, "next_after": None})
    return Response(head[:-1] + b"," + body[1:], media_type="application/json")


@router.get("/reports/daily", response_model=QueryAnswer)
def daily_report(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    date: date,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    seen: SeenPosition = None,
) -> QueryAnswer | Response:
    """Daily scheduling (日调度): as of the period's end (now, while it runs) and as known now by default; as
    issued with `known_at` at the period's end."""
    return _report(request, ledger, principal, seen, "daily", date.isoformat(), as_of, known_at)


@router.get("/reports/weekly", response_model=QueryAnswer)
def weekly_report(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    week: Annotated[str, Query(pattern=r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$", description="ISO week, YYYY-Www")],
    as_of: AsOf = None,
    known_at: KnownAt = None,
    seen: SeenPosition = None,
) -> QueryAnswer | Response:
    """Weekly report (周汇报): as of the period's end (now, while it runs) and as known now by default; as
    issued with `known_at` at the period's end."""
    return _report(request, ledger, principal, seen, "weekly", week, as_of, known_at)


@router.get("/reports/monthly", response_model=QueryAnswer)
def monthly_report(
    request: Request,
    ledger: LedgerDep,
    principal: AuthorizedDep,
    month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")],
    as_of: AsOf = None,
    known_at: KnownAt = None,
    seen: SeenPosition = None,
) -> QueryAnswer | Response:
    """Monthly bulletin (月通报): as of the period's end (now, while it runs) and as known now by default; as
    issued with `known_at` at the period's end."""
    return _report(request, ledger, principal, seen, "monthly", month, as_of, known_at)


@router.get("/projections/status", response_model=QueryAnswer)
def projections_status(request: Request, _: AuthorizedDep) -> QueryAnswer:
    """Each projection's position and lag behind the log."""
    rows = projections_link.status(request.app.state.query_url)
    position = min((int(r["position"]) for r in rows), default=0)
    lag = max((int(r["lag"]) for r in rows), default=0)
    return QueryAnswer(items=rows, position=position, lag=lag)
