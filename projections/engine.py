"""The projection engine (投影引擎): follow the global log in batches, exactly once.

Each batch is read and decoded once, then every projection's fact rows and its tracking
position are written in ONE transaction: a crash leaves either the whole batch or none of it.
The tracking rows are locked inside that transaction (``FOR UPDATE`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite) and only events past the locked position are applied, so two workers of
the same projection, on any hosts, never apply an event twice. Nothing lives in memory between
batches: a worker can die at any moment and another can take over.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from projections import current, late
from projections.catalog import (
    CURRENT,
    DIVERTED_INDEX,
    FOLDS,
    FORMER_REPORTS,
    ISSUED,
    ISSUER,
    KNOWN,
    NAMES,
    PROJECTIONS,
    RUNNING,
    Projection,
    select,
    with_current,
)
from projections.db import Db
from projections.source import open_log
from store.config import log_table

log = logging.getLogger(__name__)

T = TypeVar("T")

TRACKING = "proj_tracking"
DEFAULT_BATCH = 1000
#: A rebuild is not waited on event by event: bigger batches, fewer commits.
REBUILD_BATCH = 5000
#: A catch-up over more events than this refreshes the planner's statistics of the tables it filled.
ANALYZE_AFTER = 50_000
#: Chunks of the current view derived per transaction: fewer commits (each ~7 ms at 1M on SQLite), a short lock.
CHUNKS_PER_TRANSACTION = 4
#: While the current view derives every record, its table's statistics are refreshed every this many chunks.
ANALYZE_EVERY = 20
#: Test-only: seconds to sleep inside each batch's transaction, so a test can kill a worker mid-batch.
DELAY_ENV = "LEDGER_PROJECTIONS_TEST_DELAY"

RECORD_COLUMNS = ("uuid", "record_id", "type", "unit_id", "occurred_at", "recorded_at", "position", "data")
EVENT_COLUMNS = ("position", "uuid", "type", "occurred_at", "recorded_at", "data")

Progress = Callable[[int, int], None]
Names = Sequence[str] | None


def ensure_schema(
    db: Db, projections: Iterable[Projection] | None = None, *, view: bool = True, indexes: bool = True
) -> None:
    """Create the tracking table and the projections' tables (and the current view's, with ``view``) if missing
    (idempotent, concurrency-safe). Without ``indexes`` the fact tables get no secondary index yet: a rebuild
    fills them first and :func:`ensure_indexes` then builds each index once from sorted keys, which costs less
    than growing it row by row with random keys (bench/README.md, fifth session)."""
    chosen = list(projections or PROJECTIONS.values())
    statements = [
        f"CREATE TABLE IF NOT EXISTS {TRACKING} (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {ISSUED} (kind TEXT, label TEXT, head BIGINT NOT NULL, body TEXT NOT NULL,"
        " tallies TEXT NOT NULL, PRIMARY KEY (kind, label))",
        f"CREATE TABLE IF NOT EXISTS {RUNNING} (kind TEXT, label TEXT, head BIGINT NOT NULL, as_of BIGINT NOT NULL,"
        " until BIGINT NOT NULL, body TEXT NOT NULL, tallies TEXT NOT NULL, PRIMARY KEY (kind, label))",
        f"CREATE TABLE IF NOT EXISTS {KNOWN} (kind TEXT, label TEXT, known_at BIGINT NOT NULL,"
        " head BIGINT NOT NULL, body TEXT NOT NULL, tallies TEXT NOT NULL, PRIMARY KEY (kind, label))",
        f"CREATE TABLE IF NOT EXISTS {ISSUER} (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until BIGINT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {FOLDS} (name TEXT PRIMARY KEY, holder TEXT NOT NULL, head BIGINT NOT NULL,"
        " until BIGINT NOT NULL)",
    ]
    tracked = [p.name for p in chosen]
    for p in chosen:
        statements += p.tables("BIGINT")
    if view:
        # The view keeps its indexes throughout: deriving replaces each record's rows, found by uuid.
        statements += current.ddl("BIGINT")
        tracked.append(CURRENT)
    with db.transaction():
        _serialise_ddl(db)
        for former in FORMER_REPORTS:
            db.execute(f"DROP TABLE IF EXISTS {former}")
        _create_missing(db, statements)  # one catalogue read for them all
        for name in tracked:
            db.execute(f"INSERT INTO {TRACKING} (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING", (name,))
    if indexes:
        ensure_indexes(db, chosen)


def ensure_indexes(db: Db, projections: Iterable[Projection]) -> None:
    """Create the fact tables' secondary indexes if missing (idempotent, concurrency-safe)."""
    statements: list[str] = []
    # In the order batches are applied in (apply_batch): a first creation, while another worker writes, waits for
    # that worker's tables in the order it takes them, never holding one it will want.
    for p in sorted(projections, key=lambda p: p.name):
        statements += p.indexes()
        if p.name in late.SOURCES:
            # Questions as known at a past moment find the facts recorded after it (projections.late).
            statements += late.indexes(p.name)
        if p.name == "units":
            # Quota answers pick a year's allocations and approvals out of every year's.
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {p.events_table}_year ON {p.events_table}"
                f" ({db.json_number('data', 'year')})"
            )
        if p.name == "accountability":
            # Decisions are looked up among few (history.Known.decisions_of): by type, not by every agreement.
            statements.append(f"CREATE INDEX IF NOT EXISTS {p.records_table}_type ON {p.records_table} (type)")
        if p.name == "petitions":
            # Petitions diverted into a territory (改派) are looked up by destination on every scoped answer:
            # without this index that is a scan of every diversion in the city (history.Known._diverted_into_scope).
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {DIVERTED_INDEX} ON {p.events_table}"
                f" ({db.json_text('data', 'to_unit_id')})"
            )
    with db.transaction():
        _serialise_ddl(db)
        _create_missing(db, statements)


_CREATED = re.compile(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)")


def _create_missing(db: Db, statements: Iterable[str]) -> None:
    """Run the ``CREATE … IF NOT EXISTS`` statements whose table or index is missing, and every other statement.

    On PostgreSQL a ``CREATE INDEX IF NOT EXISTS`` takes its table's SHARE lock before it finds the index there: a
    worker starting up waited for the batches other workers were writing, and blocked them, and two workers, each
    holding a table the other wanted, deadlocked (CI, three workers of two projections). Asked of the catalogue
    first (no lock), a store already set up runs no DDL at all."""
    present = db.relations()
    for statement in statements:
        created = _CREATED.match(statement)
        if created is None or created.group(1) not in present:
            db.execute(statement)


def _serialise_ddl(db: Db) -> None:
    """Take the store-wide DDL lock for this transaction (PostgreSQL), before any tracking row: every transaction
    that creates or drops the projections' tables or indexes takes it, or one's catalogue read (``_create_missing``)
    misses what the other is creating (a CREATE INDEX failed with a unique violation on ``pg_class``)."""
    if db.dialect == "postgres":
        # Concurrent CREATE … IF NOT EXISTS can still collide in the catalogue: serialise it.
        db.query("SELECT pg_advisory_xact_lock(7215083)")


def positions(db: Db, names: Names = None) -> dict[str, int]:
    """Each projection's tracking position (0 if it has never run)."""
    select(list(names) if names else None)  # an unknown name is an error
    wanted = list(names) if names else list(NAMES)
    try:
        rows: dict[str, int] = dict(db.query(f"SELECT name, position FROM {TRACKING}"))
    except Exception:  # no tracking table yet: nothing processed (autocommit, so nothing to roll back)
        rows = {}
    return {name: int(rows.get(name, 0)) for name in wanted}


def apply_batch(db: Db, projections: Sequence[Projection], items: Sequence[tuple[int, Any]], last: int) -> None:
    """Apply one batch (position, event-or-None) up to ``last`` to every projection, in one transaction."""
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    with db.transaction():
        for p in sorted(projections, key=lambda p: p.name):  # one lock order: no deadlock between workers
            locked = db.query(f"SELECT position FROM {TRACKING} WHERE name = ?{db.for_update}", (p.name,))
            current = int(locked[0][0]) if locked else 0
            if last <= current:
                continue  # another worker already applied this batch
            records: list[tuple[Any, ...]] = []
            events: list[tuple[Any, ...]] = []
            for position, event in items:
                if position <= current or event is None:
                    continue
                fact = p.rows(position, event)
                if fact is not None:
                    (records if fact[0] == "records" else events).append(fact[1])
            db.insert_many(p.records_table, RECORD_COLUMNS, records)
            db.insert_many(p.events_table, EVENT_COLUMNS, events)
            if locked:
                db.execute(f"UPDATE {TRACKING} SET position = ? WHERE name = ?", (last, p.name))
            else:
                db.execute(f"INSERT INTO {TRACKING} (name, position) VALUES (?, ?)", (p.name, last))
        if delay:
            time.sleep(delay)


def derive_current(db: Db) -> int:
    """Bring the current view up to the fact projections it reads; the records derived (0: up to date).

    Records are derived in chunks, each in its own transaction that first locks the view's tracking row (two
    workers never interleave); the row moves only after the last, so a crash redoes the range, never skips it.
    """
    target = min(positions(db, current.SOURCES).values())
    start = positions(db, [CURRENT])[CURRENT]
    formatted = current.formatted(db)
    # A view derived by an older engine (no format marker, or another) is derived afresh, once, new facts or not:
    # past questions fold until it is. Never from sources behind it (being rebuilt): it waits for them.
    if target < start or (target == start and (formatted or start == 0)):
        return 0
    touched = current.touched(db, start, target) if formatted else None
    if touched is None:
        analyze(db, [f"proj_{name}_{kind}" for name in current.SOURCES for kind in ("records", "events")])
        with db.transaction():
            _serialise_ddl(db)  # as ensure_schema: an API process's first query creates missing indexes too
            if not _still_at(db, start):
                return 0
            current.drop_lookups(db)  # built again below, once the records' rows are in
    chunks = current.every_record(db) if touched is None else current.chunked(touched)
    derived = 0
    changed: set[tuple[str, int]] = set()  # units and years whose rows changed: R6 and quota rows above follow
    for n, some in enumerate(_batched(chunks, CHUNKS_PER_TRANSACTION)):
        with db.transaction():
            if not _still_at(db, start):
                return 0  # another worker is deriving this range (or has)
            # Each chunk replaces its records' rows under the lock, so two workers never leave a record twice.
            # Deriving every record, every agreement and district follows anyway: no need to collect changes.
            for chunk in some:
                changed |= current.derive(db, chunk, changes=touched is not None)
                derived += len(chunk)
        if touched is None and n % (ANALYZE_EVERY // CHUNKS_PER_TRANSACTION) == 0:
            analyze(db, [current.TABLE])  # else PostgreSQL scans the growing table for each chunk's ids
    if touched is None:
        with db.transaction():
            _serialise_ddl(db)
            for statement in current.lookups():  # the agreements below read the rows by territory
                db.execute(statement)
    groups = current.agreements(db, None if touched is None else changed, start, target)
    for some_groups in _batched(groups, CHUNKS_PER_TRANSACTION):
        with db.transaction():
            if not _still_at(db, start):
                return 0
            for group in some_groups:
                current.derive_agreements(db, group)
                derived += len(group)
    for year, keys in current.quota_keys(db, None if touched is None else changed, start, target).items():
        with db.transaction():
            if not _still_at(db, start):
                return 0
            current.derive_quota(db, year, keys)
    with db.transaction():
        if touched is None:
            _serialise_ddl(db)  # first, as ensure_schema takes it before the tracking rows: no lock cycle
        if not _still_at(db, start):
            return 0
        db.execute(f"UPDATE {TRACKING} SET position = ? WHERE name = ?", (target, CURRENT))
        if touched is None:
            current.mark_formatted(db)
            # The reports kept were folded by the engine that derived the view before (or by none, after a rebuild):
            # an older engine's rules may have counted otherwise, so each is issued again.
            db.execute(f"DELETE FROM {ISSUED}")
            db.execute(f"DELETE FROM {RUNNING}")
            db.execute(f"DELETE FROM {KNOWN}")
            # Again, under the lock: a second worker that began this range late may have dropped them meanwhile.
            for statement in current.lookups():
                db.execute(statement)
    if touched is None:
        analyze(db, [current.TABLE], vacuum=True)
    return derived


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _still_at(db: Db, start: int) -> bool:
    """Lock the current view's tracking row (till the transaction ends); whether it is still at ``start``."""
    locked = db.query(f"SELECT position FROM {TRACKING} WHERE name = ?{db.for_update}", (CURRENT,))
    return bool(locked) and int(locked[0][0]) == start


def analyze(db: Db, tables: Sequence[str], *, vacuum: bool = False) -> None:
    """Refresh PostgreSQL's statistics of tables just filled in bulk: without them its planner guesses a
    table's size and scans it whole for a few hundred ids (1M events: 70 ms a look-up instead of 2 ms).
    With ``vacuum``, once a bulk load is done, also set the rows' hint bits and the visibility map: else the
    first queries to read each page write it back (a question's p99 at 1M events: see bench/README.md).
    Autovacuum would get there, later (if it is on at all); SQLite's planner needs no statistics for these."""
    if db.dialect == "postgres":
        for table in tables:
            db.execute(f"{'VACUUM (ANALYZE)' if vacuum else 'ANALYZE'} {table}")


class Follower:
    """Reads the log from the slowest of its projections and applies it batch by batch; then brings the
    current view (if it is one of them) up to the facts."""

    def __init__(self, url: str, names: Names = None, *, batch_size: int = DEFAULT_BATCH, indexed: bool = True) -> None:
        self.projections = select(list(names) if names else None)
        self.view = with_current(list(names) if names else None)
        self.db = Db(url)
        # Not ``indexed``: the fact tables' indexes are built once the facts are in (see ensure_schema).
        self.indexed = indexed
        ensure_schema(self.db, self.projections, view=self.view, indexes=indexed)
        self.log = open_log(url)
        self.batch_size = batch_size
        self.topics = frozenset().union(*(p.topics for p in self.projections))

    def position(self) -> int:
        if not self.projections:  # the current view alone: it follows the facts, not the log
            return positions(self.db, [CURRENT])[CURRENT]
        return min(positions(self.db, [p.name for p in self.projections]).values())

    def derive(self) -> int:
        self.index()
        return derive_current(self.db) if self.view else 0

    def index(self) -> None:
        """Build the fact tables' indexes if this follower began without them (the view reads through them)."""
        if not self.indexed:
            ensure_indexes(self.db, self.projections)
            self.indexed = True

    def head(self) -> int:
        return int(self.log.recorder.max_notification_id() or 0)

    def step(self) -> int:
        """Process one batch; the number of log entries consumed (0 at the head)."""
        if not self.projections:
            return 0
        start = self.position() + 1
        notifications = self.log.recorder.select_notifications(start=start, limit=self.batch_size)
        if not notifications:
            return 0
        to_event = self.log.mapper.to_domain_event
        # Decode only what some projection stores: decoding is most of the cost of a rebuild.
        items = [(n.id, to_event(n) if n.topic in self.topics else None) for n in notifications]
        apply_batch(self.db, self.projections, items, notifications[-1].id)
        return len(notifications)

    def catch_up(self, progress: Progress | None = None) -> int:
        head = self.head()
        start = self.position()
        while self.projections:
            position = self.position()
            if progress:
                progress(position, head)
            if position >= head or not self.step():
                break
        self.index()  # before ANALYZE, which also gathers the expression indexes' statistics
        if self.projections and head - start > ANALYZE_AFTER:
            tables = [t for p in self.projections for t in (p.records_table, p.events_table)]
            analyze(self.db, tables, vacuum=True)
        self.derive()  # once the facts are in: each record derived once, not once per batch
        return self.position()

    def close(self) -> None:
        self.db.close()
        self.log.close()


def catch_up(
    url: str,
    names: Names = None,
    progress: Progress | None = None,
    *,
    batch_size: int = DEFAULT_BATCH,
    indexed: bool = True,
) -> int:
    """Process the log up to its current head; the position reached. ``indexed=False`` (empty views only, as
    after :func:`drop`) builds the fact tables' indexes after the facts instead of before."""
    follower = Follower(url, names, batch_size=batch_size, indexed=indexed)
    try:
        return follower.catch_up(progress)
    finally:
        follower.close()


class Stop(Protocol):
    """What tells :func:`run` to stop: a ``threading.Event``, or ``projections.worker.Stopping`` under signals."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float) -> bool: ...


def run(
    url: str,
    names: Names = None,
    *,
    stop: Stop | None = None,
    poll_interval: float = 0.2,
    batch_size: int = DEFAULT_BATCH,
    idle: Callable[[], None] | None = None,
) -> None:
    """Follow the log until ``stop`` is set (forever without one); polls, since SQLite cannot notify.
    ``idle`` is called whenever the follower is at the head (the reports' issuing, ``reports.Bulletins``)."""
    stop = stop or threading.Event()
    follower = Follower(url, names, batch_size=batch_size)
    try:
        while not stop.is_set():
            try:
                consumed = follower.step()
                # Near the head, the view follows every batch; far behind, it waits until the facts catch up.
                derived = follower.derive() if consumed < batch_size else 0
            except Exception as error:
                if not dropped_under(error):
                    raise
                # A rebuild elsewhere dropped the tables and has not made them again yet: follow anew from the
                # positions it leaves, rather than end (a worker on a host of its own has no one to restart it).
                log.warning("projection tables dropped under this worker (a rebuild?); following again: %s", error)
                follower.close()
                stop.wait(REBUILT_WAIT_SECONDS)
                follower = Follower(url, names, batch_size=batch_size)
                continue
            if not consumed and not derived:
                if idle is not None:
                    idle()
                stop.wait(poll_interval)
    finally:
        follower.close()


#: How long a worker whose tables were dropped under it waits before following again.
REBUILT_WAIT_SECONDS = 1.0


def dropped_under(error: BaseException) -> bool:
    """Whether ``error`` is a table missing under a running follower (dropped by a rebuild in another process)."""
    if isinstance(error, sqlite3.OperationalError):
        return "no such table" in str(error)
    return type(error).__name__ == "UndefinedTable"  # psycopg.errors.UndefinedTable, without importing psycopg


def drop(db: Db, projections: Sequence[Projection], *, view: bool = True) -> None:
    """Drop the projections' tables (and the current view's, with ``view``) and forget their positions."""
    with db.transaction():
        _serialise_ddl(db)
        db.execute(f"CREATE TABLE IF NOT EXISTS {TRACKING} (name TEXT PRIMARY KEY, position BIGINT NOT NULL)")
        db.execute(f"DROP TABLE IF EXISTS {ISSUED}")  # built from the tables dropped here
        db.execute(f"DROP TABLE IF EXISTS {RUNNING}")
        db.execute(f"DROP TABLE IF EXISTS {KNOWN}")
        for p in projections:
            db.execute(f"DROP TABLE IF EXISTS {p.records_table}")
            db.execute(f"DROP TABLE IF EXISTS {p.events_table}")
            db.execute(f"DELETE FROM {TRACKING} WHERE name = ?", (p.name,))
        if view:
            db.execute(f"DROP TABLE IF EXISTS {current.TABLE}")
            db.execute(f"DELETE FROM {TRACKING} WHERE name = ?", (CURRENT,))


def rebuild(url: str, names: Names = None, progress: Progress | None = None, *, batch_size: int = REBUILD_BATCH) -> int:
    """Drop the views, reset tracking, and catch up from the first event."""
    db = Db(url)
    try:
        drop(db, select(list(names) if names else None), view=with_current(list(names) if names else None))
    finally:
        db.close()
    return catch_up(url, names, progress, batch_size=batch_size, indexed=False)


def log_head(db: Db) -> int:
    """The last position in the log (one indexed query; no application is opened)."""
    table = log_table(db.url)
    rows = db.query(f"SELECT MAX({table.position}) FROM {table.events}")
    return int(rows[0][0] or 0) if rows else 0


def wait_for(url: str, position: int, timeout: float = 5.0, names: Names = None) -> bool:
    """Read-your-writes: True once every projection has processed ``position`` (False on timeout)."""
    db = Db(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if min(positions(db, names).values()) >= position:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
    finally:
        db.close()


def replay_into(url: str, events: Iterable[tuple[int, Any]], *, batch_size: int = DEFAULT_BATCH) -> int:
    """Build every view from an arbitrary (position, domain event) iterator into the database at ``url``.

    The auditor's offline recompute uses it on a fresh SQLite file, then reads it with ``Queries``.
    Events at or before a projection's position are skipped, so replaying twice changes nothing.
    """
    projections = list(PROJECTIONS.values())
    db = Db(url)
    try:
        ensure_schema(db, projections, indexes=False)  # a fresh file: indexes once the facts are in
        batch: list[tuple[int, Any]] = []
        last = 0
        for position, event in events:
            batch.append((position, event))
            last = position
            if len(batch) >= batch_size:
                apply_batch(db, projections, batch, last)
                batch = []
        if batch:
            apply_batch(db, projections, batch, last)
        ensure_indexes(db, projections)
        derive_current(db)
        return last
    finally:
        db.close()


def status(store: str | Db) -> list[dict[str, Any]]:
    """Each projection's position and lag behind the head of the log (of the store at a URL, or on a connection)."""
    db = Db(store) if isinstance(store, str) else store
    try:
        head = log_head(db)
        return [
            {"name": name, "position": position, "head": head, "lag": max(head - position, 0)}
            for name, position in positions(db).items()
        ]
    finally:
        if db is not store:
            db.close()
