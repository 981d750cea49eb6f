"""The R13 reports (日调度、周汇报、月通报), built from the projections.

A report covers a period of business time in the bureau's zone and, unless told otherwise, is
answered as of the period's end (now, if the period has not ended) and as known now: a
late-recorded event changes what is known today about last month, never the bulletin as it was
issued, which is the report as known at its issue date (the first moment after the period).
Reports are kept as JSON once folded: an issued one for good (已发布), the last answer as known
later until a late entry (补录) moves it, one of a period in progress until a fact or a deadline
moves it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from domain.application import utc_now
from domain.base import BUREAU_TZ
from domain.vocabulary import Violation
from projections import late, lease
from projections.catalog import (
    EARLIEST,
    ISSUED,
    KNOWN,
    LATEST,
    PROJECTIONS,
    RUNNING,
    from_micros,
    micros,
    with_current,
)
from projections.db import Db, utf8
from projections.engine import positions
from projections.history import REPORT_TYPES, Known, Occurrence, Structure, iso
from projections.lease import claim, holder_name, release

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as EventLike

    from projections.queries import Queries

log = logging.getLogger(__name__)


def period(kind: str, label: str) -> tuple[datetime, datetime]:
    """The [start, end) of a report's period, in the bureau's zone; ``ValueError`` for a label that names none, or
    one outside the moments a question may name (:data:`~projections.catalog.EARLIEST` to ``LATEST``)."""
    shapes = {"daily": "YYYY-MM-DD", "weekly": "YYYY-Www", "monthly": "YYYY-MM"}
    try:
        start, end = _bounds(kind, label)
    except (ValueError, OverflowError):  # OverflowError: the day after 9999-12-31
        raise ValueError(f"{kind} report period must look like {shapes[kind]}, not {label!r}") from None
    if start < EARLIEST or end > LATEST:
        raise ValueError(f"a report's period must lie between {EARLIEST.year} and {LATEST.year}, not {label!r}")
    return start, end


def check_begun(kind: str, label: str, now: datetime) -> None:
    """``ValueError`` for a report asked for at ``now`` whose period (:func:`period`) has not begun: it would answer
    today's standing under a future date."""
    if period(kind, label)[0] > now:
        raise ValueError(f"the {kind} report {label} covers a period that has not begun")


def _bounds(kind: str, label: str) -> tuple[datetime, datetime]:
    if kind == "daily":
        day = date.fromisoformat(label)
        start = datetime(day.year, day.month, day.day, tzinfo=BUREAU_TZ)
        return start, start + timedelta(days=1)
    if kind == "weekly":
        year, week = label.split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
        start = datetime(monday.year, monday.month, monday.day, tzinfo=BUREAU_TZ)
        return start, start + timedelta(days=7)
    y, m = (int(part) for part in label.split("-"))
    start = datetime(y, m, 1, tzinfo=BUREAU_TZ)
    return start, datetime(y + m // 12, m % 12 + 1, 1, tzinfo=BUREAU_TZ)


class Kept(NamedTuple):
    """A report as kept: its answer's JSON and, when asked for, its tallies' JSON (:data:`TALLIES`, kept apart so
    an answer for the whole city never reads them)."""

    body: bytes
    tallies: bytes | None = None


def split(answer: dict[str, Any]) -> Kept:
    """A folded report (:func:`report`) as kept: its tallies taken out of its answer."""
    tallies = answer.pop(TALLIES)
    return Kept(orjson.dumps(answer), orjson.dumps(tallies))


def issued(queries: Queries, kind: str, label: str, *, tallies: bool = False) -> Kept:
    """The report as issued, as JSON (and its tallies', with ``tallies``): as of its period's end, as known at its
    issue date (a bulletin folds the whole city's history, seconds at a million events). A period not yet over is
    answered as of now (:func:`running`).

    Once the period is over the first answer is kept with the log position every fact projection had applied
    (``head``). A later ask reads it back unless a fact recorded by the issue date has been applied since
    (a writer's clock behind, a transaction that committed late, a history loaded with its own times): then
    it is folded and kept again. Each check moves ``head`` on, so it only ever reads the facts applied since
    the last one. Asks in one process that would fold at once fold once (:func:`folding`). A store that cannot
    keep it (a read replica) folds every time. The kept JSON is handed back as stored (:meth:`Db.as_bytes`):
    parsing the largest bulletins (1.6 MB at a million events) took longer than the rest of the read. A period
    that has just ended, asked before a sweeping issuer (:data:`SWEEPING`) has issued it, waits for it instead of
    folding (the issuer's next step, within a second or so)."""
    _, end = period(kind, label)
    now = utc_now()
    if now <= end:
        return running(queries, kind, label, now, tallies=tallies)
    db, known_at = queries.db, micros(end)
    kept = _kept_issued(db, kind, label, known_at, tallies)
    if kept is None and (kind, label) in last_ended(now) and lease.announced(db, SWEEPING):
        deadline = time.monotonic() + SWEPT_WAIT_SECONDS
        while kept is None and time.monotonic() < deadline:
            time.sleep(lease.FOLD_POLL_SECONDS)
            kept = _kept_issued(db, kind, label, known_at, tallies)
    if kept is None:
        head = min(positions(db, list(PROJECTIONS)).values())
        # Asks of this report wait for a fold underway, here or in another process, then read it back; the facts
        # applied since that fold began were recorded after the issue date, or the read-back check folds again.
        with folding(db, fold_name(kind, label), head, wait=lambda _: True):
            kept = _kept_issued(db, kind, label, known_at, tallies)
            if kept is None:
                head = min(positions(db, list(PROJECTIONS)).values())
                kept = split(folded(queries, kind, label, None, None))
                keep(db, kind, label, head, kept)
    return kept


def as_known_at(queries: Queries, kind: str, label: str, known_at: datetime, *, tallies: bool = False) -> Kept | None:
    """The report of a period over, as of its end as known at a later ``known_at`` (an auditor's "as known now"),
    its ``known_at`` the caller's to restate; ``None`` for a period not over, or ``known_at`` before its issue date
    (the caller folds).

    A fold as of the period's end reads only facts that happened by then, so the answer as known at one moment
    stands at a later one unless a fact that happened by the end was entered in between (补录), in what a report
    reads, or an amendment in force by then was (``late.entered_between``). Two answers are kept to be read back
    that way: the report as issued (as known at its end, :func:`issued`), and the last fold as known later
    (:data:`KNOWN`, with its moment and the log position it read); failing both, the city is folded as known at
    ``known_at`` and, for a moment not ahead of the clock, kept (:func:`_keep_known`)."""
    _, end = period(kind, label)
    now = utc_now()
    if known_at < end or now <= end:
        return None
    db, since, asked = queries.db, micros(end), micros(known_at)
    later = _kept_known(db, kind, label, asked, tallies)
    if later is not None and not late.entered_between(db, since, later[0], asked):
        return later[1]
    if not late.entered_between(db, since, since, asked):
        return issued(queries, kind, label, tallies=tallies)
    head = min(positions(db, list(PROJECTIONS)).values())
    # Concurrent asks fold once: the others wait, then read back what it kept if it is known early enough for them.
    with folding(db, f"{fold_name(kind, label)}:known", head, wait=lambda _: True):
        later = _kept_known(db, kind, label, asked, tallies)
        if later is not None and not late.entered_between(db, since, later[0], asked):
            return later[1]
        head = min(positions(db, list(PROJECTIONS)).values())
        kept = split(folded(queries, kind, label, None, known_at))
        if known_at <= now:  # a moment ahead of the clock may yet see facts recorded before it
            _keep_known(db, kind, label, asked, head, kept)
    return kept if tallies else Kept(kept.body)


def as_known(
    queries: Queries, kind: str, label: str, known_at: datetime | None, *, tallies: bool = False
) -> Kept | None:
    """The report of a period as of its end, as known at ``known_at`` — now when ``None``, as API.md's queries
    default — read back where it stands, its ``known_at`` restated: a period in progress asked as known now is its
    running report (:func:`running`), a period over is :func:`as_known_at` (its bulletin as issued unless a fact was
    entered late since). ``None`` where only a fold answers: ``known_at`` before the issue date, or a period in
    progress asked as known at another moment than now."""
    if known_at is None:
        now = utc_now()
        if now <= period(kind, label)[1]:
            return running(queries, kind, label, now, tallies=tallies)
        known_at = now
    kept = as_known_at(queries, kind, label, known_at, tallies=tallies)
    return None if kept is None else Kept(restated(kept.body, known_at), kept.tallies)


def restated(body: bytes, known_at: datetime) -> bytes:
    """A kept report's JSON with its ``known_at`` (the first one: the report's own, before its rows) restated: the
    answer read back as known at a later moment than it was folded at."""
    key = b'"known_at":'
    start = body.index(key) + len(key)
    if not body.startswith(b'"', start):
        # Not a moment's string, as :func:`assemble` writes it (its own fields, before its rows): the safe way round.
        return orjson.dumps({**orjson.loads(body), "known_at": iso(micros(known_at))})
    end = body.index(b'"', start + 1) + 1
    return body[:start] + orjson.dumps(iso(micros(known_at))) + body[end:]


def _keep_known(db: Db, kind: str, label: str, known_at: int, head: int, kept: Kept) -> None:
    """Keep a fold as known at ``known_at`` (read from the facts applied by ``head``) unless one kept is known at a
    later moment: an auditor's asks are mostly "as known now", each later than the last."""
    assert kept.tallies is not None
    with contextlib.suppress(*db.errors), db.transaction():  # a read replica answers without keeping
        db.execute(f"DELETE FROM {KNOWN} WHERE kind = ? AND label = ? AND known_at <= ?", (kind, label, known_at))
        if not db.query(f"SELECT 1 FROM {KNOWN} WHERE kind = ? AND label = ?", (kind, label)):
            db.execute(
                f"INSERT INTO {KNOWN} (kind, label, known_at, head, body, tallies) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, label, known_at, head, kept.body.decode(), kept.tallies.decode()),
            )


def _kept_known(db: Db, kind: str, label: str, known_at: int, tallies: bool) -> tuple[int, Kept] | None:
    """The last fold kept of a report as known after its issue date (the moment it was known at, and its JSON and
    its tallies'), if that moment is not after ``known_at`` and it still stands (:func:`_read_back`)."""
    found = _read_back(db, KNOWN, kind, label, "known_at", tallies)
    return found if found is not None and found[0] <= known_at else None


def _kept_issued(db: Db, kind: str, label: str, known_at: int, tallies: bool) -> Kept | None:
    """The kept report as issued (as known at its issue date, ``known_at``), if it still stands (:func:`_read_back`)."""
    found = _read_back(db, ISSUED, kind, label, str(int(known_at)), tallies)
    return None if found is None else found[1]


def _read_back(db: Db, table: str, kind: str, label: str, moment: str, tallies: bool) -> tuple[int, Kept] | None:
    """A report kept in ``table`` (the moment it is known at, the SQL ``moment``, and its JSON and its tallies'),
    unless a fact recorded by that moment has been applied since the log position it read (a late commit); each
    check moves that position on to what every fact projection has applied, so the next reads only what follows."""
    head = min(positions(db, list(PROJECTIONS)).values())
    columns = f"{moment}, head, {db.as_bytes('body')}" + (f", {db.as_bytes('tallies')}" if tallies else "")
    try:
        rows = db.query(f"SELECT {columns} FROM {table} WHERE kind = ? AND label = ?", (kind, label))
    except db.errors:  # a store made before such reports were kept
        return None
    if not rows or _arrived(db, int(rows[0][1]), int(rows[0][0])):
        return None
    if head > int(rows[0][1]):
        with contextlib.suppress(*db.errors):
            db.execute(f"UPDATE {table} SET head = ? WHERE kind = ? AND label = ?", (head, kind, label))
    return int(rows[0][0]), Kept(*map(utf8, rows[0][2:]))


_folds: dict[tuple[str, str], threading.Lock] = {}
_folds_guard = threading.Lock()
#: The longest an ask waits for another's fold of the same report before it folds on its own (a fold stuck on a
#: lock, say): a few folds' time at a million events.
FOLD_WAIT_SECONDS = 30.0
#: The name of the fold that keeps the three periods in progress (:func:`fold_running`), in :func:`folding`.
RUNNING_FOLD = "in-progress"
#: The announcement of an issuer whose sweep answers the periods in progress and issues each period as it ends
#: (``lease.announce``): an ask that finds the kept reports of the periods in progress stale, or a period just ended
#: not yet issued, waits up to :data:`SWEPT_WAIT_SECONDS` for the issuer's answer rather than fold the city.
SWEEPING = "in-progress:swept"
SWEPT_WAIT_SECONDS = 3.0


def fold_name(kind: str, label: str) -> str:
    """The name of an issued report's fold, in :func:`folding`."""
    return f"{kind}:{label}"


def _never(_: int) -> bool:
    """The issuer's folds do not wait for another process's fold of the same report: that one keeps it."""
    return False


@contextlib.contextmanager
def folding(db: Db, report: str, head: int, wait: Callable[[int], bool]) -> Iterator[bool]:
    """One fold at a time of one report on one store (一次折叠): concurrent asks of a period not kept, or of the
    periods in progress gone stale, would each fold the city for the same answer (seconds at a million events, and
    each fold slows the others: under the interpreter lock in one process, on the same cores across processes). The
    first folds and keeps it; the others wait, then read it back (or, after ``FOLD_WAIT_SECONDS``, fold anyway).
    Within this process by a lock per report; across processes and hosts (``ledger serve --workers N``, the issuer's
    own folds) by a fold lease (:func:`projections.lease.folding`): an ask with ``head`` (the facts it has seen)
    waits for another process's fold when ``wait(that fold's head)`` says the fold will be the answer. Yields whether
    this caller holds the fold's lease. Folds of other reports do not wait."""
    with _folds_guard:
        lock = _folds.setdefault((db.url, report), threading.Lock())
    deadline = time.monotonic() + FOLD_WAIT_SECONDS
    held = lock.acquire(timeout=FOLD_WAIT_SECONDS)
    try:
        with lease.folding(db, report, head, deadline, wait) as claimed:
            yield claimed
    finally:
        if held:
            lock.release()


def keep(db: Db, kind: str, label: str, head: int, kept: Kept) -> None:
    """Keep a report as issued (its JSON and its tallies'), folded from the facts every fact projection had applied
    by ``head``."""
    assert kept.tallies is not None
    # A read replica, or a store without the table, refuses: the answer stands, it is only not kept.
    with contextlib.suppress(*db.errors), db.transaction():
        db.execute(f"DELETE FROM {ISSUED} WHERE kind = ? AND label = ?", (kind, label))
        db.execute(
            f"INSERT INTO {ISSUED} (kind, label, head, body, tallies) VALUES (?, ?, ?, ?, ?)",
            (kind, label, head, kept.body.decode(), kept.tallies.decode()),
        )


# --- a period in progress -----------------------------------------------------------------------


def running(queries: Queries, kind: str, label: str, now: datetime, *, tallies: bool = False) -> Kept:
    """The report of a period not yet over at ``now``, as JSON, as of now and as known now (进行中的报告).

    It changes with every fact recorded and every deadline that passes, so it is not issued; but between those
    moments it stands still. The last fold is kept (``RUNNING``) with the log position its facts were read at and
    the moment it stands until (:func:`steady_until`): an ask before that moment, with no fact applied since,
    reads it back stamped with its own ``as_of`` and ``known_at``; any other ask folds the city as of now (seconds
    at a million events) and keeps that fold. The worker refreshes the kept folds whenever they go stale
    (:func:`refresh`), so most asks read."""
    db = queries.db
    kept = _kept_running(db, kind, label, now, tallies)
    if kept is None and (kind, label) in in_progress(now) and lease.announced(db, SWEEPING):
        kept, now = _swept(db, kind, label, now, tallies)
    if kept is None:
        head = min(positions(db, list(PROJECTIONS)).values())
        # One fold keeps the three periods in progress: wait for one underway only if it read every fact this ask
        # has seen (an older one would not be the answer; the issuer's, begun before the last fact, say).
        with folding(db, RUNNING_FOLD, head, wait=lambda theirs: theirs >= head):
            # The clock again: a fold kept while this ask waited stands from its own moment, later than ``now``.
            now = max(now, min(utc_now(), period(kind, label)[1]))
            kept = _kept_running(db, kind, label, now, tallies)
            if kept is None:
                wanted = in_progress(now)  # one fold answers all three (a period not begun yet is asked alone)
                kept = fold_running(queries, now, wanted if (kind, label) in wanted else [(kind, label)])[kind, label]
    return Kept(_stamped(kept.body, now), kept.tallies if tallies else None)


def _swept(db: Db, kind: str, label: str, now: datetime, tallies: bool) -> tuple[Kept | None, datetime]:
    """The report of a period in progress as the issuer's sweep keeps it next (within a second or so of a fact, a few
    records derived), waited for at most ``SWEPT_WAIT_SECONDS``; answered as of the moment it is found."""
    deadline, end = time.monotonic() + SWEPT_WAIT_SECONDS, period(kind, label)[1]
    while time.monotonic() < deadline:
        time.sleep(lease.FOLD_POLL_SECONDS)
        now = max(now, min(utc_now(), end))
        kept = _kept_running(db, kind, label, now, tallies)
        if kept is not None:
            return kept, now
    return None, now


def _kept_running(db: Db, kind: str, label: str, now: datetime, tallies: bool) -> Kept | None:
    """The kept fold of a period in progress (its JSON, unstamped, and its tallies'), if it still stands at ``now``."""
    columns = f"head, as_of, until, {db.as_bytes('body')}" + (f", {db.as_bytes('tallies')}" if tallies else "")
    try:
        rows = db.query(f"SELECT {columns} FROM {RUNNING} WHERE kind = ? AND label = ?", (kind, label))
    except db.errors:  # a store made before running reports were kept
        return None
    return Kept(*map(utf8, rows[0][3:])) if rows and _standing(db, rows[0], micros(now)) else None


def _standing(db: Db, row: Sequence[Any], now: int) -> bool:
    """Whether a kept running fold (head, as_of, until, …) is still the answer about ``now``."""
    head, as_of, until = int(row[0]), int(row[1]), int(row[2])
    return as_of <= now <= until and not _arrived(db, head, now)


def fold_running(queries: Queries, now: datetime, wanted: list[Period]) -> dict[Period, Kept]:
    """Fold the city once as of ``now``, as known then, and keep these periods' reports as running (their JSON
    without ``as_of`` and ``known_at``, which an answer stamps, and their tallies')."""
    db = queries.db
    head = min(positions(db, list(PROJECTIONS)).values())  # before the fold: a fact applied during it makes it stale
    k = queries.known(now, now, lean=True, only=REPORT_TYPES)
    kept = {}
    for kind, label in wanted:
        answer = report(k, kind, label)
        del answer["as_of"], answer["known_at"]
        kept[kind, label] = split(answer)
    keep_running(db, head, k.as_of, steady_until(k), kept)
    return kept


def keep_running(db: Db, head: int, as_of: int, until: int, kept: dict[Period, Kept]) -> None:
    """Keep the reports of the periods in progress as of ``as_of`` (their JSON without ``as_of`` and ``known_at``),
    read from the facts applied by ``head``, standing until ``until``."""
    with contextlib.suppress(*db.errors), db.transaction():  # a read replica answers without keeping
        db.execute(f"DELETE FROM {RUNNING} WHERE until < ?", (as_of,))  # periods over, or folds gone stale
        for (kind, label), fold in kept.items():
            assert fold.tallies is not None
            db.execute(f"DELETE FROM {RUNNING} WHERE kind = ? AND label = ?", (kind, label))
            db.execute(
                f"INSERT INTO {RUNNING} (kind, label, head, as_of, until, body, tallies) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kind, label, head, as_of, until, fold.body.decode(), fold.tallies.decode()),
            )


def _stamped(body: bytes, now: datetime) -> bytes:
    """A running report's JSON, stamped with the moment it answers about (as of and as known at)."""
    moment = orjson.dumps(iso(micros(now)))
    return b'{"as_of":' + moment + b',"known_at":' + moment + b"," + body[1:]


def steady_until(k: Known) -> int:
    """The last moment through which a fold as of ``k.as_of`` (as known then) stays the fold as of any later moment
    (as known then), so long as no fact is applied in between. A fold moves with the clock only where
    :mod:`projections.history` compares a time with ``as_of``:

    - a petition still open passes its handling deadline (overdue, R18): ``deadline < as_of``;
    - a case not filed passes its filing deadline (有案不查): ``deadline < as_of``;
    - a month or a year ends (R17's missed receptions, R6's agreements): at the bureau's midnight;
    - a fact already recorded falls due (its business time is ahead, within the writers' clock skew), or a fact
      already applied becomes known (recorded by a writer whose clock ran ahead): ``occurred_at`` or
      ``recorded_at`` ``<= as_of``.

    The property test in tests/projections/test_properties.py folds at random moments up to this one."""
    s = k.as_of
    day = from_micros(s).astimezone(BUREAU_TZ).date() + timedelta(days=1)
    ends = [micros(datetime(day.year, day.month, day.day, tzinfo=BUREAU_TZ)) - 1]
    ends += [p.deadline for p in k.petitions if p.closed_at is None and p.deadline >= s]
    ends += [c.filing_deadline for c in k.cases if not c.filed_in_time and c.filing_deadline >= s]
    for p in PROJECTIONS.values():
        for table in (p.records_table, p.events_table):
            sql = (
                f"SELECT MIN(CASE WHEN occurred_at > ? THEN occurred_at END),"
                f" MIN(CASE WHEN recorded_at > ? THEN recorded_at END) FROM {table}"
                " WHERE occurred_at > ? OR recorded_at > ?"
            )
            for first in k.db.query(sql, (s, k.known_at, s, k.known_at))[0]:
                if first is not None:
                    ends.append(int(first) - 1)
    return min(ends)


Period = tuple[str, str]  # (kind, label)


#: The kinds of report (R13), shortest period first.
KINDS = ("daily", "weekly", "monthly")


def label(kind: str, day: date) -> str:
    """The label of the ``kind`` period that contains ``day`` (what :func:`period` reads back)."""
    if kind == "daily":
        return day.isoformat()
    if kind == "weekly":
        week = day.isocalendar()
        return f"{week.year}-W{week.week:02d}"
    return f"{day.year}-{day.month:02d}"


def in_progress(now: datetime) -> list[Period]:
    """The daily, weekly and monthly periods ``now`` lies in (kind, label)."""
    today = now.astimezone(BUREAU_TZ).date()
    return [(kind, label(kind, today)) for kind in KINDS]


def refresh(queries: Queries, now: datetime, *, swept: bool = False) -> bool:
    """Fold the periods in progress at ``now`` again, once for the three, unless each kept fold still stands
    (:func:`running`); whether it folded. With ``swept`` (no backlog left to issue), this process's sweep answers
    them instead (``projections.sweep.running``: a few records derived, not the city), unless it cannot."""
    db, wanted = queries.db, in_progress(now)
    try:
        rows = db.query(f"SELECT kind, label, head, as_of, until FROM {RUNNING}")
    except db.errors:  # a store whose projections have not made their tables yet
        return False
    kept = {(kind, label): row for kind, label, *row in rows}
    if all(p in kept and _standing(db, kept[p], micros(now)) for p in wanted):
        return False
    head = min(positions(db, list(PROJECTIONS)).values())
    with lease.folding(db, RUNNING_FOLD, head, time.monotonic(), _never) as claimed:
        if claimed:  # else another process (an ask) is folding them, and keeps what it folds
            from projections import sweep  # the sweep sums reports with this module's assemble

            if not (swept and sweep.running(queries, now, wanted)):
                fold_running(queries, now, wanted)
                return True
    return False


def keep_known_now(queries: Queries, now: datetime) -> None:
    """Keep the reports of the periods just ended as known now (an ask's default): a fact dated inside one and
    entered since its issue (补录) makes the next ask fold the city (seconds at a million events), so an idle issuer
    folds it first, one period a step, and the asks read it back. Nothing is folded while each still stands: no
    fact dated by its end entered since the last fold kept as known later, or else since its issue (the check
    :func:`as_known_at` makes, here without reading the kept JSON: this runs every idle second). Once all stand,
    the check is not made again until a projection moves on, a kept fold changes or another period ends."""
    db, asked, ended = queries.db, micros(now), last_ended(now)
    try:
        folds = [db.query(f"SELECT known_at FROM {KNOWN} WHERE kind = ? AND label = ?", p) for p in ended]
    except db.errors:  # a store made before such reports were kept
        return
    # The last fold kept as known later of each, if by now; else (None) the check runs from its issue.
    kept = [int(rows[0][0]) if rows and int(rows[0][0]) <= asked else None for rows in folds]
    mark = (ended, kept, positions(db, list(PROJECTIONS)))
    standing = _STANDING.get(db.url)
    if standing is not None and standing[0] == mark and asked - standing[1] < STANDING_RECHECK:
        return
    for (kind, label), kept_at in zip(ended, kept, strict=True):
        since = micros(period(kind, label)[1])
        if late.entered_between(db, since, since if kept_at is None else kept_at, asked):
            as_known_at(queries, kind, label, now)
            return
    _STANDING[db.url] = (mark, asked)


#: Per store, what :func:`keep_known_now` last found standing (the periods just ended, their kept folds' moments and
#: the projections' positions) and when. Its check reads every fact table's lag index (1-6 ms a query at 1M events);
#: a fact entered since must have been applied to be found, so nothing can have changed while none of these has,
#: but for a fact a writer whose clock ran ahead recorded after that moment: checked again after
#: :data:`STANDING_RECHECK` all the same.
_STANDING: dict[str, tuple[tuple[list[Period], list[int | None], dict[str, int]], int]] = {}
STANDING_RECHECK = 60_000_000  # micros


def last_ended(now: datetime) -> list[Period]:
    """The daily, weekly and monthly periods that ended last before ``now`` (kind, label)."""
    today = now.astimezone(BUREAU_TZ).date()
    last_days = {
        "daily": today - timedelta(days=1),
        "weekly": today - timedelta(days=today.isoweekday()),  # the Sunday before this week
        "monthly": today.replace(day=1) - timedelta(days=1),
    }
    return [(kind, label(kind, last_days[kind])) for kind in KINDS]


#: The fact projections whose records put anything in a report: back-issuing starts at the first of them (the
#: organisation and the policy's defaults are dated earlier and report nothing alone).
REPORTED = ("cases", "petitions", "people", "accountability")
#: Issuing order of the moments to back-issue: the bulletins first, then the weekly reports, then the days.
RANK = {"monthly": 0, "weekly": 1, "daily": 2}
#: How often, at most, an idle worker with nothing left to back-issue lists the periods again (a history loaded
#: since, a report dropped by a rebuild): each listing reads the kept reports' labels. Also the pause after a
#: step failed (a store gone away).
RELIST_SECONDS = 60.0
#: How often, at most, an idle worker checks whether the kept reports of the periods in progress still stand (a few
#: indexed reads when they do; when a fact or a deadline has made them stale, the sweep's few records once no backlog
#: is left, else a fold of the city). Also how often an issuer waiting for the issuing lease claims it again.
REFRESH_SECONDS = 1.0

Moment = tuple[date, list[Period]]


def ending_after(day: date) -> list[Period]:
    """The periods that end at the midnight after ``day`` (kind, label): its daily report, the weekly one on a
    Sunday, the monthly bulletin on a month's last day."""
    ends = {"daily": True, "weekly": day.isoweekday() == 7, "monthly": (day + timedelta(days=1)).day == 1}
    return [(kind, label(kind, day)) for kind in KINDS if ends[kind]]


def backlog(db: Db, now: datetime) -> list[Moment]:
    """补发清单 (the reports to back-issue): every period ended before ``now`` since the first reported record's
    business time whose report is not kept, grouped by the moment it ends (one fold issues them all), in the order
    to fold them one at a time: the moments that end a month, newest first, then those that end a week, then the
    other days (the sweep issues them in time order instead: ``projections.sweep.back_issue``)."""
    try:
        kept = set(db.query(f"SELECT kind, label FROM {ISSUED}"))
        firsts = [db.query(f"SELECT MIN(occurred_at) FROM {PROJECTIONS[n].records_table}")[0][0] for n in REPORTED]
    except db.errors:  # a store whose projections have not made their tables yet
        return []
    known = [int(first) for first in firsts if first is not None]
    if not known:
        return []
    day = from_micros(min(known)).astimezone(BUREAU_TZ).date()
    last = now.astimezone(BUREAU_TZ).date() - timedelta(days=1)  # the last day that has ended
    moments: list[Moment] = []
    while day <= last:
        due = [p for p in ending_after(day) if p not in kept]
        if due:
            moments.append((day, due))
        day += timedelta(days=1)
    moments.sort(key=lambda m: (min(RANK[kind] for kind, _ in m[1]), -m[0].toordinal()))
    return moments


def issue_at(queries: Queries, day: date, due: list[Period]) -> None:
    """Fold the city once as known at the midnight after ``day`` and keep each of these reports ending there,
    unless another process has kept it meanwhile."""
    db = queries.db
    wanted = [p for p in due if not db.query(f"SELECT 1 FROM {ISSUED} WHERE kind = ? AND label = ?", p)]
    head = min(positions(db, list(PROJECTIONS)).values())  # before the fold, as in issued()
    with contextlib.ExitStack() as claims:
        # A report another process is folding now (an ask's first) is left to it: it keeps what it folds.
        no_wait = time.monotonic()
        wanted = [p for p in wanted if claims.enter_context(lease.folding(db, fold_name(*p), head, no_wait, _never))]
        if not wanted:
            return
        _, end = period("daily", day.isoformat())
        k = queries.known(end, end, lean=True, only=REPORT_TYPES)
        for kind, label in wanted:
            keep(db, kind, label, head, split(report(k, kind, label)))


Step = Callable[[str, datetime, list[Period], list[Moment] | None], tuple[list[Period], list[Moment]]]


def step(url: str, now: datetime, due: list[Period], pending: list[Moment] | None) -> tuple[list[Period], list[Moment]]:
    """One issuing step, in whichever process runs it: the periods just ended (``due``); or else the reports of the
    periods in progress, if a fact or a deadline has made their kept fold stale (:func:`refresh`), then the backlog
    (``pending``, the next moment last; ``None`` to list it afresh). Once no backlog is left, this process's sweep
    (``projections.sweep``) issues the periods just ended and answers the periods in progress, each by the few
    records that changed; until then they are folded (one fold of the city a step at most, but for the periods just
    ended), and the backlog is issued by the sweep walking forward from the history's start. Returns the periods
    issued and the backlog left."""
    from projections import sweep  # the sweep sums reports with this module's assemble
    from projections.queries import Queries  # queries imports this module

    if stopping():  # asked to stop before this step began (the process was still starting): nothing done
        return [], pending or []
    queries = Queries(url)
    queries.memory = True  # this process folds the city again and again: it keeps the facts (projections.facts)
    try:
        if due:
            for kind, label in sweep.issue_due(queries, due) if pending == [] else due:
                issued(queries, kind, label)
            return due, pending or []
        if pending is None:
            pending = backlog(queries.db, now)[::-1]
        folded = refresh(queries, now, swept=not pending)
        if not pending and sweep.answering(queries.db):  # asks of the periods in progress may wait for it
            lease.announce(queries.db, SWEEPING, 3 * REFRESH_SECONDS)
        if pending and not folded:
            pending = sweep.back_issue(queries, pending)
        elif not pending and not folded:
            keep_known_now(queries, now)
        return [], pending
    finally:
        queries.close()


class Bulletins:
    """签发 (issuing): once a period ends, its report is built and kept (:func:`issued`), so a supervisor's first
    ask reads it rather than folding the city (seconds at a million events).

    A projection worker calls it whenever it is idle at the head of the log; each call with work to do hands one
    :func:`step` to a process of its own (spawned once, kept for the next steps) and returns. A fold holds Python's
    interpreter lock for long stretches: in a thread of the worker's (or ``ledger serve``'s) process it made every
    other thread wait (at 1M events, SQLite, a district's open triggers asked 1,000 times: p99 41 ms alone, 1,070 ms
    beside a fold in a thread, 50 ms beside a fold in its own process).
    The periods that ended last come first, each issued once per process (:func:`issued` reads back one kept
    before a restart). Every second (``REFRESH_SECONDS``) a step checks the kept reports of the periods in
    progress and answers them again if a fact or a deadline has made them stale (:func:`refresh`), so a
    supervisor's ask of today's report reads too (an ask that comes first waits for the sweep's answer when the
    issuer has said it sweeps: :data:`SWEEPING`). Then it back-issues (补发) every earlier period whose report is
    not kept (:func:`backlog`: a history loaded in bulk, periods that ended while no worker ran, the reports a
    rebuild dropped), by the sweep (``projections.sweep``: forward through time from the history's start, ten
    seconds a step), or a moment's fold per step for a few moments the sweep has passed. Once none is left, the
    sweep, kept in the steps' process, issues each period as it ends and answers the periods in progress. A fact
    recorded before an issue date that arrives after (a late commit) is caught by :func:`issued` on the next ask,
    which folds and keeps the report again. Before each step it claims or renews the issuing lease
    (:mod:`projections.lease`): of several issuers on one store (a worker per host, each process of ``ledger serve
    --workers N``) one steps at a time; the others claim it again every second, and take it once it is released or
    has run out."""

    def __init__(self, url: str, clock: Callable[[], datetime] = utc_now, *, steps: Step = step) -> None:
        self.url = url
        self.clock = clock
        self.steps = steps
        self.done: set[Period] = set()
        self.pending: list[Moment] = []  # the backlog, the next moment to issue last
        self.listed = -RELIST_SECONDS  # when the backlog was last listed (time.monotonic)
        self.checked = -REFRESH_SECONDS  # when a step last checked the reports of the periods in progress
        self.paused_until = 0.0  # after a step failed, or while another issuer holds the lease (time.monotonic)
        self.holder = holder_name()  # this issuer's name in the issuing lease
        self._pool: ProcessPoolExecutor | None = None
        self._step: Future[tuple[list[Period], list[Moment]]] | None = None
        # Set once this issuer closes: a step underway in the steps' process ends at its next moment (stopping()).
        self._stopping = multiprocessing.get_context("spawn").Event()

    def __call__(self) -> None:
        if self._step is not None:
            if not self._step.done():
                return
            self._collect(self._step)
        if not self._work() or not self._hold():
            return
        due, pending = self._begin()
        try:
            if self._pool is None:  # spawned, not forked: the worker's process has threads and open connections
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_steps_process,
                    initargs=(os.getpid(), self._stopping),
                )
            # The process is spawned here, and takes seconds to import before its initializer runs: it is born with
            # Ctrl-C blocked (a thread's signal mask is inherited), so one sent meanwhile is not a traceback in it.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                self._step = self._pool.submit(self.steps, self.url, self.clock(), due, pending)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        except Exception as error:  # no process to run it (out of memory, say): as a failed step
            self._failed(error)

    def issue(self) -> None:
        """One step in this process (a benchmark, a test)."""
        self._apply(*self.steps(self.url, self.clock(), *self._begin()))

    def wait(self, timeout: float | None = None) -> None:
        """Wait (at most ``timeout``) for a step underway and take in what it did."""
        running = self._step
        if running is not None:
            futures.wait([running], timeout)
            if running.done():
                self._collect(running)

    def close(self, timeout: float | None = None) -> None:
        """Let a step underway finish (a worker stopping: its report is kept, not cut off), then end the process
        that ran the steps; after ``timeout`` a fold still underway is left to end its process when done. A step
        back-issuing ends at the next moment rather than sweep on for the rest of its ten seconds (:func:`stopping`:
        under load, a worker on a small store took 7-8 s to end after SIGTERM).
        Closed for good: a later step would do nothing."""
        self._stopping.set()
        self.wait(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=self._step is None, cancel_futures=True)
            self._pool = None
        if self._step is None:  # a fold still underway keeps the lease until it runs out
            with contextlib.suppress(Exception):  # a store gone away: the lease runs out by itself
                db = Db(self.url)
                try:
                    release(db, self.holder)
                finally:
                    db.close()

    def _due(self) -> list[Period]:
        return [period for period in last_ended(self.clock()) if period not in self.done]

    def _begin(self) -> tuple[list[Period], list[Moment] | None]:
        """The next step's periods just ended and backlog: ``None``, to list it afresh, when none is left and the
        last listing is old enough."""
        due, now = self._due(), time.monotonic()
        self.checked = now
        if due or self.pending or now - self.listed < RELIST_SECONDS:
            return due, self.pending
        self.listed = now
        return due, None

    def _work(self) -> bool:
        now = time.monotonic()
        return now >= self.paused_until and (
            bool(self._due() or self.pending)
            or now - self.listed >= RELIST_SECONDS
            or now - self.checked >= REFRESH_SECONDS
        )

    def _hold(self) -> bool:
        """Claim or renew the issuing lease (:mod:`projections.lease`) before a step; while another issuer holds it,
        pause, and claim again every ``REFRESH_SECONDS`` (a holder that stopped cleanly released it: no need to
        wait for it to run out)."""
        try:
            db = Db(self.url)
            try:
                left = claim(db, self.holder)
            finally:
                db.close()
        except Exception as error:  # a store gone away, or one whose projections have not made their tables yet
            self._failed(error)
            return False
        if left is not None:
            self.paused_until = time.monotonic() + min(max(left, 1.0), REFRESH_SECONDS)
        return left is None

    def _apply(self, done: list[Period], pending: list[Moment]) -> None:
        self.done.update(done)
        self.pending = pending

    def _collect(self, finished: Future[tuple[list[Period], list[Moment]]]) -> None:
        self._step = None
        try:
            self._apply(*finished.result())
        except Exception as error:  # a store gone away, the steps' process killed: the worker goes on
            self._failed(error)

    def _failed(self, error: Exception) -> None:
        """Try again after a pause, in a process spawned afresh (a killed one leaves its pool broken)."""
        log.warning("issuing reports failed, trying again in %.0f s: %s", RELIST_SECONDS, error)
        self.paused_until = time.monotonic() + RELIST_SECONDS
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


#: In the steps' process, the worker's issuer closing (:meth:`Bulletins.close`); ``None`` in any other process.
_stopping: EventLike | None = None


def stopping() -> bool:
    """Whether the issuer this process runs steps for is closing: a step sweeping through the backlog ends at the
    next moment (what it issued is kept; the rest stays to be issued)."""
    return _stopping is not None and _stopping.is_set()


def _steps_process(parent: int, closing: EventLike) -> None:
    """Set up the steps' process: Ctrl-C (sent to the whole process group) is the worker's to handle, which lets a
    fold underway finish; the issuer ``closing`` is :func:`stopping`; and end once the worker's process is gone
    (killed, it never shuts the pool down, and this process would wait for its next step for ever)."""
    global _stopping
    _stopping = closing
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked from birth (Bulletins.__call__)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="end-with-worker", daemon=True).start()


def issuer(url: str, names: list[str] | None) -> Bulletins | None:
    """The issuing for a worker of these projections (all when ``None``): only a worker that keeps the current
    view issues, and of several such workers the holder of the issuing lease, so each report is folded once."""
    return Bulletins(url) if with_current(names) else None


def _arrived(db: Db, head: int, known_at: int) -> bool:
    """Whether any fact applied past ``head`` was recorded by ``known_at`` (by the position indexes): one statement
    over every fact table, since on PostgreSQL each round trip cost more than the probe (twelve: 2.4 ms of a kept
    running report's 2.5 ms read back)."""
    return bool(db.query(_ARRIVED_SQL, (head, known_at) * len(_FACT_TABLES)))


_FACT_TABLES = [table for p in PROJECTIONS.values() for table in (p.records_table, p.events_table)]
# Each probe walks its table's position index from ``head`` and stops at the first fact recorded by then.
_ARRIVED_SQL = " UNION ALL ".join(
    f"SELECT 1 FROM (SELECT 1 FROM {table} WHERE position > ? AND recorded_at <= ? ORDER BY position LIMIT 1) AS p{n}"
    for n, table in enumerate(_FACT_TABLES)
)


def build(queries: Queries, kind: str, label: str, as_of: datetime | None, known_at: datetime | None) -> dict[str, Any]:
    """The report folded from the facts, as answered: as of ``as_of`` and as known at ``known_at``, each by default
    its issue date (the period's end, or now if it has not ended)."""
    answer = folded(queries, kind, label, as_of, known_at)
    del answer[TALLIES]
    return answer


def folded(
    queries: Queries, kind: str, label: str, as_of: datetime | None, known_at: datetime | None
) -> dict[str, Any]:
    """The report folded from the facts, with its tallies (:data:`TALLIES`), as :func:`build` answers it."""
    _, end = period(kind, label)
    issue_date = min(end, utc_now())
    return report(queries.known(as_of or issue_date, known_at or issue_date, lean=True, only=REPORT_TYPES), kind, label)


def report(k: Known, kind: str, label: str) -> dict[str, Any]:
    """The report of a period from a fold of the city (``k``): what happened inside the period, and what stood at
    ``k.as_of``."""
    start, end = period(kind, label)
    lo, hi = micros(start), micros(end)

    def inside(at: int | None) -> bool:
        return at is not None and lo <= at < hi

    tallies: dict[str, Counter[str]] = defaultdict(Counter)  # every total's count by the unit it is counted for

    def count(unit: str | None, key: str) -> None:
        tallies[unit or ""][key] += 1

    for p in k.petitions:
        if inside(p.rec.occurred_at):
            count(p.rec.unit_id, "petitions.registered")
        if inside(p.closed_at):
            count(p.unit_id, "petitions.closed")
        for e in p.events:
            if e.type == "escalated" and inside(e.occurred_at):
                count(p.unit_at(e.occurred_at), "petitions.escalations")
        if p.status == "overdue":
            count(p.unit_id, "petitions.overdue_open")
        if p.status != "closed" and "nail_case" in p.flags:
            count(p.unit_id, "petitions.nail_cases_open")
        if p.status != "closed" and "unowned" in p.flags:  # R9: a key petition still without a leader owning it
            count(p.unit_id, "petitions.key_unowned_open")
    for c in k.cases:
        unit = c.rec.unit_id
        if inside(c.rec.occurred_at):
            count(unit, "cases.reported")
            count(unit, f"cases.by_resource.{Violation(c.rec.data['violation']).resource}")
        if inside(c.major_at):
            count(unit, "cases.major")
        if inside(c.unfiled_at):
            count(unit, "cases.not_investigated")
        for e in c.events:
            if e.type in ("filed", "closed") and inside(e.occurred_at):
                count(unit, f"cases.{e.type}")
    for t in k.triggers:
        if t["status"] == "open":
            count(t["subject"].get("unit_id"), "open_triggers")
    deductions = [o for o in k.occurrences if inside(o.at)]
    opened = [t for t in k.triggers if lo <= micros(datetime.fromisoformat(t["opened_at"])) < hi]
    return assemble(k.structure, kind, label, (k.as_of, k.known_at), tallies, deductions, opened)


#: The counts of a report's ``by_unit`` rows (per district), in the order they are answered, each from the total
#: counted for the district's units (:func:`assemble`); ``points_deducted`` sums the period's deductions.
BY_UNIT = {
    "petitions.registered": "petitions_registered",
    "petitions.escalations": "escalations",
    "petitions.overdue_open": "overdue_open",
    "cases.reported": "cases_reported",
    "cases.major": "major_cases",
}


def assemble(
    structure: Structure,
    kind: str,
    label: str,
    moment: tuple[int, int],
    tallies: dict[str, Counter[str]],
    deductions: list[Occurrence],
    opened: list[dict[str, Any]],
) -> dict[str, Any]:
    """A report as answered, from what a fold (:func:`report`) or the sweep (``projections.sweep``) found: the counts
    by the unit each is counted for (``tallies``), the period's deductions and the triggers opened in it, in the
    fold's order, as of and as known at ``moment``."""
    start, end = period(kind, label)

    def district(unit: str) -> str:
        return (structure.district_of(unit) if unit else None) or unit

    by_unit: dict[str, Counter[str]] = defaultdict(Counter)
    for unit, counts in tallies.items():
        for key, n in counts.items():
            if key in BY_UNIT and n:
                by_unit[district(unit)][BY_UNIT[key]] += n
    for o in deductions:
        by_unit[district(o.unit_id)]["points_deducted"] += o.points
    order = [*BY_UNIT.values(), "points_deducted"]
    units = structure.units
    summed: Counter[str] = Counter()
    for counts in tallies.values():
        summed.update(counts)  # one sum: adding Counters made a new one per unit
    return {
        "report": kind,
        "period": label,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "as_of": iso(moment[0]),
        "known_at": iso(moment[1]),
        **totals(summed),
        "deductions": [o.as_dict() for o in deductions],
        "triggers_opened": opened,
        "by_unit": [
            {
                "unit_id": unit,
                "name": units[unit].data["name"] if unit in units else None,
                **{name: counts[name] for name in order if name in counts},
            }
            for unit, counts in sorted(by_unit.items())
        ],
        TALLIES: {unit: dict(sorted(counts.items())) for unit, counts in sorted(tallies.items()) if counts},
    }


#: The key of a report's counts by the unit each is counted for (a petition's registering or responsible unit, a
#: case's unit, a trigger's subject): kept with the report, so a unit-bound token's totals are the sums over its
#: territory (:func:`within`), not the city's. Taken out of every answer.
TALLIES = "tallies"
PETITION_TOTALS = ("registered", "closed", "escalations", "overdue_open", "nail_cases_open", "key_unowned_open")
CASE_TOTALS = ("reported", "filed", "major", "not_investigated", "closed")


def totals(summed: Counter[str]) -> dict[str, Any]:
    """A report's totals (petitions, cases, open triggers) from the sum of its tallies."""
    return {
        "petitions": {key: summed[f"petitions.{key}"] for key in PETITION_TOTALS},
        "cases": {
            **{key: summed[f"cases.{key}"] for key in CASE_TOTALS},
            # R1 counts land and minerals apart
            "by_resource": {r: summed[f"cases.by_resource.{r}"] for r in ("land", "minerals")},
        },
        "open_triggers": summed["open_triggers"],
    }


def within(
    answer: dict[str, Any], tallies: dict[str, dict[str, int]], covers: Callable[[str], bool] | None
) -> dict[str, Any]:
    """A report as answered for a territory (属地管理, ``covers`` a unit id; the whole city when None): its totals
    summed over the units inside it (``tallies``); the rows (deductions, triggers, ``by_unit``) are the caller's
    to filter."""
    if covers is None:
        return answer
    summed: Counter[str] = Counter()
    for unit, counts in tallies.items():
        if unit and covers(unit):
            summed.update(counts)
    return {**answer, **totals(summed)}


__all__ = [
    "Kept",
    "Known",
    "as_known",
    "as_known_at",
    "assemble",
    "backlog",
    "build",
    "folded",
    "issued",
    "period",
    "report",
    "within",
]
