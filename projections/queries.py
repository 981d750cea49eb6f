"""Queries over the projections (查询): scores, triggers, deductions, quota, the petition board,
the officer registry, the R13 reports and the projections' status.

Every query takes ``as_of`` (business time) and ``known_at`` (recording time), both default now,
and answers plain JSON-ready dicts: times RFC 3339 in the bureau's zone (+08:00); mu and yuan as
numbers (int when whole, else float); points and scores as ints. Unit filters include every
unit below the one named (属地管理).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from domain.application import utc_now
from projections import current, late, paging, quota, reports
from projections.catalog import CURRENT, check_moment, micros
from projections.db import Db
from projections.engine import positions
from projections.facts import kept
from projections.history import SCORE_TYPES, TRIGGER_TYPES, Known, MajorCase, iso, year_bounds
from projections.quota import deduction_rows, districts, quota_rows
from projections.source import open_log

PETITION_STATUSES = ("open", "overdue", "closed")
PETITION_FLAGS = (
    "nail_case",
    "skip_level",
    "repeat",
    "collective",
    "assigned",
    "escalated",
    "initial",
    "key",
    "unowned",
)
OFFICER_STATUSES = ("removal_due", "removed", "referred", "commended")
CASE_STATUSES = ("open", "closed")
CASE_FLAGS = ("major", "supervised", "supervision_overdue", "not_investigated", "wrongful")
#: Per officer status, the event an officer must have (its type, and a text its data holds) and the one they must
#: not: a removal falls due on a substantiated finding, until the removal. Candidates only: each row is then judged.
STATUS_EVENTS: dict[str, tuple[tuple[str, str], str | None]] = {
    "removal_due": (("finding", '"substantiated":true'), "removed"),
    "removed": (("removed", ""), None),
    "referred": (("referred", ""), None),
    "commended": (("commended", ""), None),
}
#: Per paged list ordered by other than unit id, how a row's key is read and the key's shape (``paging.key_of``): a
#: trigger by when it opened and its id; a petition or an officer by its registration's log position.
CURSORS: dict[str, tuple[Callable[[dict[str, Any]], paging.Key], tuple[type, ...]]] = {
    "triggers": (lambda t: (t["opened_at"], t["id"]), (str, str)),
    "petitions": (lambda row: (row["evidence"][0],), (int,)),
    "officers": (lambda row: (row["evidence"][0],), (int,)),
    "cases": (lambda row: (row["evidence"][0],), (int,)),
}
#: Which units a question covers: one unit and those below it, several such (a unit-bound token's), or the city.
Territory = str | tuple[str, ...] | None
#: The record kinds named in readable trigger ids (``R4.case.<id>…``) and the projection holding them.
TRIGGER_KINDS = {"case": "cases", "petition": "petitions", "person": "people", "agreement": "accountability"}


def moment(value: datetime | None, default: datetime) -> datetime:
    return default if value is None else check_moment(value, "as_of and known_at")


class Past(NamedTuple):
    """A past question answered from the current view: the territory's fold (as :meth:`Queries._scoped`), the fold
    of its records the view cannot answer for (``current.live``: facts after ``as_of`` that revise, or recorded
    after ``known_at``), and the years whose stored R6 rows facts recorded after ``known_at`` may change."""

    k: Known
    wanted: set[str] | None
    folded: Known
    stale: set[int]


#: Whether a unit lies inside the asker's territory; ``None`` for the whole city.
Covers = Callable[[str], bool] | None


class Queries:
    """Read-only answers from the projection tables of one database."""

    def __init__(self, target: str | Db, *, view: bool = True) -> None:
        self.url = target if isinstance(target, str) else target.url
        self.db = Db(target) if isinstance(target, str) else target
        #: Whether answers may come from the current view; without it every answer folds the facts (the reference
        #: the view's answers are checked against).
        self.view = view
        #: Whether a lean city-wide fold filters the city's facts kept in this process (``projections.facts``) rather
        #: than reading the tables: the report issuer's, which folds the same facts again and again.
        self.memory = False

    def close(self) -> None:
        self.db.close()

    def known(
        self,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        *,
        lean: bool = False,
        only: dict[str, tuple[str, ...]] | None = None,
        window: tuple[int, int] | None = None,
    ) -> Known:
        now = utc_now()
        facts = kept(self.db) if self.memory and lean and window is None else None
        return Known(
            self.db, moment(as_of, now), moment(known_at, now), lean=lean, only=only, window=window, facts=facts
        )

    def has_unit(self, unit_id: str) -> bool:
        """Whether a unit of this id is registered (as far as the projections have followed the log)."""
        return bool(self.db.query("SELECT 1 FROM proj_units_records WHERE record_id = ?", (unit_id,)))

    def _now(self, as_of: datetime | None, known_at: datetime | None) -> bool:
        """Whether to answer from the current view: a question about now, and the view is up to its facts."""
        return as_of is None and known_at is None and self._view_ready()

    def _past(
        self,
        as_of: datetime | None,
        known_at: datetime | None,
        unit_id: Territory,
        *,
        of: str = "records",
        **fold: Any,
    ) -> Past | None:
        """For a past ``as_of``, answered from the current view (``Past``; the records folded are those the question
        ``of``, ``current.LIVE``, cannot read: for a board, those with any later event, their rows showing every
        event). ``None`` when the view cannot answer (:meth:`_view_answers`, :meth:`_late`) or a city-wide question
        has too many records to fold."""
        if not self._view_answers(as_of):
            return None
        k, wanted = self._scoped(as_of, known_at, unit_id, **fold)
        found = self._late(k, known_at)
        folded = None if found is None else current.live(k, found.uuids, of=of)
        return None if found is None or folded is None else Past(k, wanted, folded, found.years)

    def _view_answers(self, as_of: datetime | None) -> bool:
        """Whether the current view may answer a question as of a past ``as_of``: it is up to its facts and in this
        engine's format."""
        return as_of is not None and self._view_ready() and current.formatted(self.db)

    def _late(self, k: Known, known_at: datetime | None, sources: tuple[str, ...] = late.SOURCES) -> late.Late | None:
        """The records of ``k``'s territory (of these fact projections) whose rows the view cannot answer with as
        known at ``known_at``: none as known now. ``None`` when it cannot answer at all: an amendment in force by
        ``as_of`` recorded after ``known_at``, ``known_at`` before ``as_of``, or too many (``late.records``)."""
        if known_at is None:
            return late.Late([], set())
        if late.policy_revised(self.db, k.as_of, k.known_at):
            return None
        return late.records(k, sources)

    def _view_ready(self) -> bool:
        if not self.view:
            return False
        tracked = positions(self.db)
        view = tracked[CURRENT]
        return view > 0 and all(view >= tracked[name] for name in current.SOURCES)

    def _scoped(
        self,
        as_of: datetime | None,
        known_at: datetime | None,
        unit_id: Territory,
        *,
        lean: bool = False,
        only: dict[str, tuple[str, ...]] | None = None,
        window: tuple[int, int] | None = None,
    ) -> tuple[Known, set[str] | None]:
        """The facts of the territory below ``unit_id`` only (or below each of several units; all of them without
        one), and that territory."""
        k = self.known(as_of, known_at, lean=lean, only=only, window=window)
        units = (unit_id,) if isinstance(unit_id, str) else unit_id
        k.scope = None if units is None else _territories(k, units)
        return k, k.scope

    # --- scores -------------------------------------------------------------------------------

    def scores(
        self,
        year: int,
        unit_id: Territory = None,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """Per unit: ``score``, ``outcome`` and the ``deductions`` (and commendations) that make it up, by unit id,
        of ``unit_id``'s territory (or of several units', a unit-bound token's; the city's without one).

        Paged by unit id: at most ``limit`` rows with ``unit_id > after``, a page's units' territories read alone; a
        page stops short of ``limit`` (a :class:`paging.Cut`) once its rows carry :data:`DEDUCTIONS_PER_PAGE`."""
        bounds = year_bounds(year)
        folded: Known | None = None
        if self._now(as_of, known_at):
            k, wanted = self._scoped(None, None, unit_id, lean=True)
            view = True
        elif past := self._past(as_of, known_at, unit_id, lean=True, only=SCORE_TYPES, window=bounds):
            k, wanted, folded, _ = past
            view = True
        else:
            # Only the cases and petitions that can yield an occurrence in the year: one year's facts are read.
            k, wanted = self._scoped(as_of, known_at, unit_id, lean=True, only=SCORE_TYPES, window=bounds)
            view = False

        def rows(part: Known, units: list[str]) -> list[dict[str, Any]]:
            if view:
                current.prepare(part, bounds, folded)
            return [part.score(u, year) for u in units]

        # Only the territory's units are sorted: the city's whole tree is thousands of units at scale.
        units = k.units.keys() if wanted is None else wanted & k.units.keys()
        if limit is None and after is None:
            return rows(k, sorted(units))
        return _weighed(k, units, limit, after, bounds, lambda page: rows(k.within(_territories(k, page)), page))

    # --- triggers -----------------------------------------------------------------------------

    def triggers(
        self,
        status: str | None = None,
        unit_id: str | None = None,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """Accountability triggers (问责触发): ``id, rule, subject, reason, evidence, opened_at, status, decision``,
        in the order they opened. Paged: at most ``limit`` after the trigger whose cursor is ``after``
        (:data:`CURSORS`)."""
        if status not in (None, "open", "decided"):
            raise ValueError("status must be open or decided")
        page = _page_of("triggers", limit, after)
        # A page reads the stored rows from the moment its cursor names on, a batch at a time.
        start = None if page.after is None else _opened(page.after[0])
        cursor = None if page.after is None else (str(page.after[0]), str(page.after[1]))  # as the rows write it
        batch = paging.batch(page)
        if self._now(as_of, known_at):
            k, wanted = self._scoped(None, None, unit_id, lean=True)
            found: Iterable[dict[str, Any]] = current.triggers(k, start=start, batch=batch, after=cursor)
        elif past := self._past(as_of, known_at, unit_id, lean=True, only=TRIGGER_TYPES):
            k, wanted, folded, stale = past
            found = current.triggers(k, folded, stale, start=start, batch=batch, after=cursor)
        else:
            k, wanted = self._scoped(as_of, known_at, unit_id, lean=True, only=TRIGGER_TYPES)
            found = k.triggers
        rows = (
            t
            for t in found
            if (status is None or t["status"] == status) and (wanted is None or t["subject"]["unit_id"] in wanted)
        )
        return paging.window(rows, CURSORS["triggers"][0], page)

    def trigger(
        self, trigger_id: str, *, as_of: datetime | None = None, known_at: datetime | None = None
    ) -> dict[str, Any] | None:
        k = self.known(as_of, known_at, lean=True, only=TRIGGER_TYPES)
        units = self._trigger_units(trigger_id)
        if units is not None:
            # Only the territories of the records the id can name: a trigger is derived from its record,
            # the leaders of the record's unit and (R6) the score of the agreement's territory, all inside; and
            # R4's leaders of the government a bureau office lies in (Structure.government_of), inside its own.
            if trigger_id.startswith("R4."):
                units |= {g for u in units if (g := k.structure.government_of(u)) is not None}
            k.scope = set().union(*(k.subtree(u) | {u} for u in units))
        return next((t for t in k.triggers if t["id"] == trigger_id), None)

    def _trigger_units(self, trigger_id: str) -> set[str] | None:
        """The units of the records a trigger id can name (``None``: a hashed id, so any record may)."""
        _, _, rest = trigger_id.partition(".")  # the rule
        kind, _, rest = rest.partition(".")
        projection = TRIGGER_KINDS.get(kind)
        if projection is None or not rest:
            return None
        # Record ids may hold dots: the record id is the whole rest or one of its dotted prefixes.
        pieces = rest.split(".")
        candidates = [".".join(pieces[:n]) for n in range(1, len(pieces) + 1)]
        rows = self.db.query(
            f"SELECT unit_id FROM proj_{projection}_records WHERE record_id IN ({', '.join('?' * len(candidates))})",
            candidates,
        )
        return {r[0] for r in rows if r[0] is not None}

    # --- quota --------------------------------------------------------------------------------

    def quota_deductions(
        self,
        year: int,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """R4 per district: ``land_quota_mu``, ``consolidation_funds_yuan``, ``model_district_points``, ``items``.

        Paged by district id: at most ``limit`` rows with ``unit_id > after`` (all rows without ``limit``).
        """
        k = self.known(as_of, known_at)
        if self._now(as_of, known_at) or self._dated(k, as_of, known_at):
            return _stored(k, "deductions", year, limit, after, deduction_rows(k, year, []), as_of=self._cut(k, as_of))
        majors = self._majors(k, as_of, known_at, year)

        def rows(part: Known) -> list[dict[str, Any]]:
            return deduction_rows(part, year, majors(part))

        if limit is None and after is None:
            return rows(k)
        # Rows go to districts, and to a city for its units under no district; only those with items for a city.
        keys = {u for u, rec in k.units.items() if rec.data["kind"] in ("district", "city")}
        return _paged(k, keys, limit, after, rows)

    def quota(
        self,
        year: int,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """R19 per district: ``allocated_mu − used_mu − deducted_mu = remaining_mu``; ``negative`` flags a deficit;
        ``evidence`` names the facts summed, ``policy_versions`` the policy versions that set the deductions.

        Paged by district id: at most ``limit`` rows with ``unit_id > after`` (all rows without ``limit``).
        """
        k = self.known(as_of, known_at)
        if self._now(as_of, known_at) or self._dated(k, as_of, known_at):
            return _stored(k, "quota", year, limit, after, quota_rows(k, year, [], {}), as_of=self._cut(k, as_of))
        majors = self._majors(k, as_of, known_at, year)

        def rows(part: Known) -> list[dict[str, Any]]:
            return quota_rows(part, year, majors(part), part.quota_events(year))

        if limit is None and after is None:
            return rows(k)
        # Rows go to districts, to any unit given quota, and to a city R4 deducted from (a case under no district).
        keys = {u for u, rec in k.units.items() if rec.data["kind"] in ("district", "city")} | k.allocated_units(year)
        return _paged(k, keys, limit, after, rows)

    @staticmethod
    def _cut(k: Known, as_of: datetime | None) -> int | None:
        """Where the stored quota and R4 rows are cut: nowhere for a question about now."""
        return None if as_of is None else k.as_of

    def _dated(self, k: Known, as_of: datetime | None, known_at: datetime | None) -> bool:
        """Whether the view's quota and R4 rows, cut at a past ``as_of`` (``quota.at_moment``), answer: as known now,
        and no case revised after it (none is while every case event is self-dated)."""
        return known_at is None and self._view_answers(as_of) and not current.revised(k, "cases")

    def _majors(
        self, k: Known, as_of: datetime | None, known_at: datetime | None, year: int
    ) -> Callable[[Known], list[MajorCase]]:
        """How the quota questions find the year's major cases of a territory (a part of ``k``): for a past ``as_of``
        (as known now or then), the current view's rows and a fold of the cases it cannot answer for
        (``current.live`` of ``cases``); otherwise a fold of the year's cases."""
        bounds = year_bounds(year)
        folded = None
        if self._view_answers(as_of) and (found := self._late(k, known_at, ("cases",))) is not None:
            folded = current.live(k, found.uuids, of="cases")
        if folded is None:
            return lambda part: part.majors(*bounds)
        return lambda part: current.majors(part, *bounds, folded)

    # --- petition board -----------------------------------------------------------------------

    def petitions(
        self,
        status: str | None = None,
        flag: str | None = None,
        unit_id: Territory = None,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """The petition board (信访台账), in registration order. ``status=open`` lists every unclosed petition,
        overdue ones included. Paged: at most ``limit`` after the petition whose cursor is ``after``."""
        _one_of(status, PETITION_STATUSES, "status")
        _one_of(flag, PETITION_FLAGS, "flag")
        page = _page_of("petitions", limit, after)
        start = None if page.after is None else page.after[0]
        batch = paging.batch(page)
        if self._now(as_of, known_at):
            k, wanted = self._scoped(None, None, unit_id, lean=True)
            board: Iterable[dict[str, Any]] = current.petitions(k, status, start=start, batch=batch)
        elif past := self._past(as_of, known_at, unit_id, of="board"):
            k, wanted, folded, _ = past
            board = current.petitions(k, status, folded, start=start, batch=batch)
        else:
            k, wanted = self._scoped(as_of, known_at, unit_id)
            board = (p.board_row() for p in k.petitions)
        rows = (
            row
            for row in board
            if (wanted is None or row["unit_id"] in wanted)
            and (not flag or flag in row["flags"])
            and not (status == "open" and row["status"] == "closed")
            and not (status in ("overdue", "closed") and row["status"] != status)
        )
        return paging.window(rows, CURSORS["petitions"][0], page)

    # --- cases --------------------------------------------------------------------------------

    def cases(
        self,
        status: str | None = None,
        flag: str | None = None,
        unit_id: Territory = None,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """The case board (案件台账), in registration order: each case's facts, steps (filing, supervision 督办,
        closure) and flags (major 重大, supervised, supervision_overdue 督办逾期, not_investigated 有案不查,
        wrongful 错案) as of ``as_of``: from the current view's rows, and for a past moment a fold of the cases with an
        event after it (or recorded after ``known_at``). Paged: at most ``limit`` after the case whose cursor is
        ``after``."""
        _one_of(status, CASE_STATUSES, "status")
        _one_of(flag, CASE_FLAGS, "flag")
        page = _page_of("cases", limit, after)
        start = None if page.after is None else int(page.after[0])
        batch = paging.batch(page, filtered=flag is not None)
        board: Iterable[dict[str, Any]]
        if self._now(as_of, known_at) and current.formatted(self.db):  # a view of an older format has no case rows
            k, wanted = self._scoped(None, None, unit_id, lean=True)
            board = current.cases(k, status, start=start, batch=batch)
        elif past := self._past(as_of, known_at, unit_id, of="case_board"):
            k, wanted, folded, _ = past
            board = current.cases(k, status, folded, start=start, batch=batch)
        else:
            k, wanted = self._scoped(as_of, known_at, unit_id)
            board = (c.board_row(k.as_of) for c in k.cases if start is None or c.rec.position > start)
        rows = (
            row
            for row in board
            if (wanted is None or row["unit_id"] in wanted)
            and (status is None or row["status"] == status)
            and (not flag or flag in row["flags"])
        )
        return paging.window(rows, CURSORS["cases"][0], page)

    # --- officers -----------------------------------------------------------------------------

    def officers(
        self,
        status: str | None = None,
        unit_id: Territory = None,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """The officer registry (执法人员档案, R7, R8): removal due, removed, referred, commended; in registration
        order. Paged: at most ``limit`` after the officer whose cursor is ``after``, a page's officers folded alone."""
        _one_of(status, OFFICER_STATUSES, "status")
        page = _page_of("officers", limit, after)
        start = None if page.after is None else page.after[0]
        batch = paging.batch(page, filtered=status is not None)
        if status is None and self._now(as_of, known_at):
            # The current view keeps each officer's row: a page reads its rows, where folding its people read
            # every reception of theirs (a page of 100: 16 ms p50 at 1M events).
            k, _ = self._scoped(None, None, unit_id)
            return paging.window(current.officers(k, start, batch), CURSORS["officers"][0], page)
        k, wanted = self._scoped(as_of, known_at, unit_id)
        folds: Iterable[Known] = [k]
        if batch is not None:
            # With a status, only the officers with the events it needs are folded.
            having, lacking = STATUS_EVENTS.get(status or "", (None, None))
            folds = _folds_of_pages(k, "people", start, batch, having, lacking)
        rows = (row for part in folds for row in _officer_rows(part, wanted) if status is None or row[status])
        return paging.window(rows, CURSORS["officers"][0], page)

    # --- reports (R13) ------------------------------------------------------------------------

    # A report's totals count the whole city unless ``covers`` names a territory (属地管理: the units a token may see):
    # then they are the sums over the units inside it. Its rows are the caller's to filter.

    # By default a report is as of its period's end (now, for a period in progress: a report is of its period) and
    # as known now (API.md: ``known_at`` defaults to now), so a fact entered late (补录) shows in it; the bulletin as
    # issued is the one asked as known at the period's end (``known_at`` = its end).

    def daily(
        self, date: str, *, as_of: datetime | None = None, known_at: datetime | None = None, covers: Covers = None
    ) -> dict[str, Any]:
        """日调度 for a date ``YYYY-MM-DD``."""
        return self._report("daily", date, as_of, known_at, covers)

    def weekly(
        self, week: str, *, as_of: datetime | None = None, known_at: datetime | None = None, covers: Covers = None
    ) -> dict[str, Any]:
        """周汇报 for an ISO week ``YYYY-Www``."""
        return self._report("weekly", week, as_of, known_at, covers)

    def monthly(
        self, month: str, *, as_of: datetime | None = None, known_at: datetime | None = None, covers: Covers = None
    ) -> dict[str, Any]:
        """月通报 for ``YYYY-MM``."""
        return self._report("monthly", month, as_of, known_at, covers)

    def report_as_known_now(self, kind: str, label: str) -> bytes:
        """The city's report of a period (``daily``, ``weekly``, ``monthly``) as the JSON it is kept as, read back
        where it stands (``reports.as_known``): the answer of :meth:`daily`, :meth:`weekly` or :meth:`monthly` asked
        with no moment."""
        reports.check_begun(kind, label, utc_now())
        kept = reports.as_known(self, kind, label, None)
        assert kept is not None  # as known now, a report is always read back or kept
        return kept.body

    def _report(
        self, kind: str, label: str, as_of: datetime | None, known_at: datetime | None, covers: Covers
    ) -> dict[str, Any]:
        reports.check_begun(kind, label, utc_now())
        kept = None if as_of is not None else reports.as_known(self, kind, label, known_at, tallies=covers is not None)
        if kept is not None:
            answer: dict[str, Any] = orjson.loads(kept.body)
            tallies = orjson.loads(kept.tallies) if kept.tallies is not None else {}
        else:
            answer = reports.folded(self, kind, label, as_of, known_at or utc_now())
            tallies = answer.pop(reports.TALLIES)
        return reports.within(answer, tallies, covers)

    # --- status -------------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Each projection's position and lag behind the head of the log."""
        tracked = positions(self.db)
        head = self._head(max(tracked.values(), default=0))
        return [{"name": n, "position": p, "head": head, "lag": max(head - p, 0)} for n, p in tracked.items()]

    def _head(self, fallback: int) -> int:
        try:
            log = open_log(self.url)
        except Exception:  # a database built by replay_into has no event store: its head is what was replayed
            return fallback
        try:
            return int(log.recorder.max_notification_id() or 0)
        except Exception:
            return fallback
        finally:
            log.close()


def next_after(name: str, rows: Any, limit: int | None) -> str | None:
    """The ``after`` of the page that follows ``rows``, a full page of the list ``name`` or one cut short
    (:class:`paging.Cut`), ``None`` after any other short one: the last row's ``unit_id``, or for a list ordered
    otherwise (:data:`CURSORS`) its cursor."""
    if limit is None or not isinstance(rows, list) or (len(rows) < limit and not isinstance(rows, paging.Cut)):
        return None
    last = rows[-1]
    return paging.token(CURSORS[name][0](last)) if name in CURSORS else str(last["unit_id"])


def _officer_rows(k: Known, wanted: set[str] | None) -> Iterator[dict[str, Any]]:
    """The registry's row of each officer of ``k`` in ``wanted`` (any without), in registration order."""
    for person in k.people.values():
        if wanted is None or person.unit_id in wanted:
            yield k.officer_row(person, k.person_events.get(person.uuid, []))


def _folds_of_pages(
    k: Known,
    projection: str,
    after: int | None,
    batch: int,
    having: tuple[str, str] | None = None,
    lacking: str | None = None,
) -> Iterator[Known]:
    """``k``'s question asked of its records of a projection after position ``after`` (with and without the events
    named: :meth:`Known.next_records`), ``batch`` records at a time (twice as many each time), each batch folded
    alone: a page of a long list folds the records it shows."""
    while True:
        found = k.next_records(projection, after, batch, having, lacking)
        if found:
            yield k.of_records([uuid for uuid, _ in found])
        if len(found) < batch:
            return
        after, batch = found[-1][1], batch * 2


def _one_of(value: str | None, choices: tuple[str, ...], name: str) -> None:
    """``ValueError`` naming the choices for a ``value`` (given) that is none of them."""
    if value is not None and value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}")


def _page_of(name: str, limit: int | None, after: str | None) -> paging.Page:
    """The page asked of the list ``name`` (:data:`CURSORS`): ``ValueError`` for a limit below 1 or a cursor that
    list never gave."""
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    key = None if after is None else paging.key_of(after, CURSORS[name][1])
    if name == "triggers" and key is not None:
        opened = _opened(key[0])
        if opened is None:
            raise ValueError(paging.NOT_A_CURSOR)
        key = (iso(opened), key[1])  # written as the rows write it, whatever offset the cursor was given with
    return paging.Page(limit, key)


def _opened(value: str) -> int | None:
    """The micros of a trigger's ``opened_at`` as a cursor carries it (``None`` if it is no such time)."""
    try:
        return micros(check_moment(datetime.fromisoformat(value), "after"))
    except ValueError:
        return None


def _territories(k: Known, units: Iterable[str]) -> set[str]:
    """The units and everything below them: what a page of their rows is computed from."""
    return set().union(*(k.subtree(u) | {u} for u in units))


def _paged(
    k: Known, keys: set[str], limit: int | None, after: str | None, rows: Callable[[Known], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """One page of per-district rows, each computed from the facts of its territory only (a district's figures
    come from units below it), so a page costs the same however many districts the city has."""

    def page_rows(page: list[str]) -> list[dict[str, Any]]:
        part = k.within(_territories(k, page))
        return [row for row in rows(part) if row["unit_id"] in page]

    return _page(keys, limit, after, page_rows)


def _stored(
    k: Known,
    kind: str,
    year: int,
    limit: int | None,
    after: str | None,
    empty: list[dict[str, Any]],
    as_of: int | None = None,
) -> list[dict[str, Any]]:
    """Per-district rows from the current view, about now or (``as_of``) cut at a past moment as known now: a
    district with no stored row for the year has the ``empty`` one (no figures); any other unit (a city) has a row
    only when one is stored, and had figures by ``as_of``. Paged as :func:`_paged`."""
    blank = {row["unit_id"]: row for row in empty}

    def answer(stored: dict[str, dict[str, Any]], unit: str) -> dict[str, Any] | None:
        row = stored.get(unit)
        if row is None:
            return blank.get(unit)
        return row if as_of is None else quota.at_moment(k, kind, row, as_of, unit in blank)

    dated = as_of is not None
    if limit is None and after is None:
        stored = current.district_rows(k, kind, year, dated=dated)
        return [row for unit in districts(k, stored) if (row := answer(stored, unit)) is not None]

    def page_rows(page: list[str]) -> list[dict[str, Any]]:
        stored = current.district_rows(k, kind, year, page, dated=dated)
        return [row for unit in page if (row := answer(stored, unit)) is not None]

    return _page(blank.keys() | current.district_units(k, kind, year), limit, after, page_rows)


#: A page of scores holds rows carrying about this many deductions at most, short of its ``limit`` if need be (and
#: one row, however many its row carries): a city's row carries its territory's year of them (~540 in the demo
#: city's year), and at a million events a page of 100 rows holding 47 cities' rows carried 25,762 of them (4.5 MB
#: of JSON, 206-586 ms to work out, warm, on SQLite). At 1,000 a page over HTTP on PostgreSQL took 17 ms p50, 20 at
#: p90 (286 KB at most); at 500, 11 and 12-14 (180 KB), for twice as many pages.
DEDUCTIONS_PER_PAGE = 500
#: How many units' deductions a scores page counts at once (:func:`_weights`): the candidates' territories, a batch
#: at a time, so a page of cities stops counting once a few of them have filled it.
COUNTED_AT_ONCE = 256


def _weighed(
    k: Known,
    units: Iterable[str],
    limit: int | None,
    after: str | None,
    window: tuple[int, int],
    rows: Callable[[list[str]], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """The next ``limit`` score rows after ``after`` (all of them without a limit), fewer when they would carry
    more than :data:`DEDUCTIONS_PER_PAGE` deductions as stored (:func:`_weights`): then a :class:`paging.Cut`,
    which names the next page as a full one does."""
    if limit is None:
        return _page(units, limit, after, rows)
    if limit < 1:
        raise ValueError("limit must be at least 1")
    candidates = sorted(unit for unit in units if after is None or unit > after)[:limit]
    taken, carried = 0, 0
    for weight in _weights(k, candidates, window):
        if taken and carried + weight > DEDUCTIONS_PER_PAGE:
            return paging.Cut(rows(candidates[:taken]))
        taken, carried = taken + 1, carried + weight
    return rows(candidates)


def _weights(k: Known, candidates: list[str], window: tuple[int, int]) -> Iterator[int]:
    """Each candidate's row's deductions in the ``window`` (a year) as stored in the view (its territory's, from
    :func:`current.deduction_counts`), counted a batch of territories at a time as the caller takes them; an
    estimate (R17's missed receptions are worked out when asked, a past question's records may be folded)."""
    territories = [k.subtree(unit) | {unit} for unit in candidates]
    i = 0
    while i < len(candidates):
        batch, units = i, set(territories[i])
        while batch + 1 < len(candidates) and len(units) + len(territories[batch + 1]) <= COUNTED_AT_ONCE:
            batch += 1
            units |= territories[batch]
        counts = current.deduction_counts(k, units, window)
        for territory in territories[i : batch + 1]:
            yield sum(counts.get(unit, 0) for unit in territory)
        i = batch + 1


def _page(
    keys: Iterable[str], limit: int | None, after: str | None, rows: Callable[[list[str]], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The next ``limit`` rows (all without one) of the ``keys`` after ``after``, in key order, ``rows`` giving
    those of a list of keys; keys that carry no row (a city without figures) are skipped."""
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    pending = sorted(key for key in keys if after is None or key > after)
    found: list[dict[str, Any]] = []
    size = limit if limit is not None else len(pending)
    while pending and len(found) < size:
        page, pending = pending[: size - len(found)], pending[size - len(found) :]
        found += rows(page)
    return found
