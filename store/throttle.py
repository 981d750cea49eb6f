"""Failed authentication attempts (认证失败记录), shared by every server process on a store.

Each failure is a row in ``ledger_auth_failures`` (client address, time, the grant it named if that
grant exists, why it failed) — never the token or its secret. Every process reads the same rows,
so a client that exhausts its attempts on one server is refused by all of them. Rows go through
the ledger's own pooled connections: checking costs one indexed query per authenticated request.
The table is not part of the audited log (an attacker must not be able to grow the log at will),
and rows older than ``KEEP_SECONDS`` are pruned.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import ApplicationRecorder
from psycopg.sql import SQL, Identifier

from store.recorders import LedgerPostgresApplicationRecorder, lock_schema_creation

TABLE = "ledger_auth_failures"
KEEP_SECONDS = 30 * 24 * 3600  # a month of failures stays readable for an inquiry
_ready: weakref.WeakSet[ApplicationRecorder] = weakref.WeakSet()
_ready_lock = threading.Lock()


@dataclass(frozen=True)
class Limit:
    """At most ``attempts`` failures per client within ``window`` seconds."""

    #: Enough for a client's honest mistakes (and an acceptance suite's refusals) in a minute; far too few to guess a
    #: token, and few enough that a flood of failures is no cheap way to grow the table.
    attempts: int = 100
    window: float = 60.0


def create_table(recorder: ApplicationRecorder) -> None:
    """Create the failures table if missing (idempotent, safe from several processes)."""
    _run(
        recorder,
        "CREATE TABLE IF NOT EXISTS {t} (source TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, "
        "grant_id TEXT, reason TEXT NOT NULL)",
        lock=True,
    )
    _run(recorder, "CREATE INDEX IF NOT EXISTS {i} ON {t} (source, at)", lock=True)


def record_failure(recorder: ApplicationRecorder, source: str, reason: str, grant_id: str | None) -> None:
    """Record one failed attempt from ``source`` (and prune rows past their keeping time)."""
    _ensure(recorder)
    now = time.time()
    row = (source, now, grant_id, reason)
    _run(recorder, "INSERT INTO {t} (source, at, grant_id, reason) VALUES (?, ?, ?, ?)", row)
    _run(recorder, "DELETE FROM {t} WHERE at < ?", (now - KEEP_SECONDS,))


def retry_after(recorder: ApplicationRecorder, source: str, limit: Limit) -> int | None:
    """Seconds ``source`` must wait before its next attempt, or None if it may try now."""
    _ensure(recorder)
    now = time.time()
    rows = _run(
        recorder,
        "SELECT at FROM {t} WHERE source = ? AND at > ? ORDER BY at DESC LIMIT ?",
        (source, now - limit.window, limit.attempts),
    )
    if len(rows) < limit.attempts:
        return None
    # Blocked until the oldest of the last `attempts` failures leaves the window.
    return max(1, math.ceil(float(rows[-1][0]) + limit.window - now))


def failures(recorder: ApplicationRecorder, source: str | None = None) -> list[tuple[str, float, str | None, str]]:
    """Recorded failures, oldest first (all, or one client's)."""
    _ensure(recorder)
    where, params = ("WHERE source = ?", (source,)) if source is not None else ("", ())
    rows = _run(recorder, f"SELECT source, at, grant_id, reason FROM {{t}} {where} ORDER BY at", params)
    return [(str(r[0]), float(r[1]), r[2], str(r[3])) for r in rows]


def _ensure(recorder: ApplicationRecorder) -> None:
    # Stores initialised before this table existed get it on first use.
    if recorder in _ready:
        return
    with _ready_lock:
        if recorder not in _ready:
            create_table(recorder)
            _ready.add(recorder)


def _run(recorder: ApplicationRecorder, sql: str, params: tuple[Any, ...] = (), *, lock: bool = False) -> list[Any]:
    """One statement in its own transaction on the recorder's pooled connections."""
    if isinstance(recorder, LedgerPostgresApplicationRecorder):
        schema = recorder.datastore.schema
        statement = SQL(sql.replace("?", "%s")).format(t=Identifier(schema, TABLE), i=Identifier(f"{TABLE}_source_at"))
        with recorder.datastore.transaction(commit=True) as curs:
            if lock:
                lock_schema_creation(curs)
            curs.execute(statement, params)
            return [tuple(row.values()) for row in curs.fetchall()] if curs.description else []
    datastore: Any = getattr(recorder, "datastore", None)
    with datastore.transaction(commit=True) as c:
        c.execute(sql.format(t=TABLE, i=f"{TABLE}_source_at"), params)
        return list(c.fetchall())
