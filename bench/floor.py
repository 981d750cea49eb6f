"""The fixed stack's floor (框架下限): what the eventsourcing library alone costs on the same store.

The ledger must be built on eventsourcing (the brief fixes the stack), so no command or bulk import of
ours can be cheaper than the library saving an aggregate that does nothing. This measures that: a bare
``Application`` with the library's stock recorder (none of the ledger's chain, keys, idempotency or
rules), saving aggregates of one small event each, beside the ledger's store (on SQLite a file of its own
next to the ledger's, WAL as the library sets it: its stock recorder names every application's table
``stored_events``, the ledger's own; on PostgreSQL the same schema, a table named after the application),
against the same raw baselines (``bench.raw``, on the same file or schema, of the bare events' own bytes).

- command floor: one new aggregate per ``save`` (one event, one transaction), as ``register_petition``;
- bulk floor: ``save`` of ``batch`` new aggregates at a time, as the generator's batches.

The bare application's file or table is removed afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench import raw
from store.config import PostgresURL, SQLiteURL, parse
from store.db import connect

#: The bare application's table on PostgreSQL (``stored_events`` in a file of its own on SQLite).
TABLE = "benchfloor_events"
#: At most this many of the bulk save's events are inserted raw (as ``bench.run``'s bulk row: enough for a steady rate).
RAW_ROWS = 200_000
#: A detail the size of a short petition's summary, so the bytes saved are of the same order as ours.
DETAIL = "压测信访，用于测量框架本身的开销。" * 4


class Thing(Aggregate):
    """An aggregate with one event and no rules: what any aggregate of the fixed stack costs at least."""

    @event("Registered")
    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        self.detail = detail


class BenchFloor(Application[UUID]):
    """The library's application, unchanged (its table is named after it: ``benchfloor_events``)."""


@contextmanager
def _beside(url: str) -> Iterator[str]:
    """The URL the bare application is saved to, beside the ledger's store at ``url``; removed afterwards."""
    parsed = parse(url)
    if isinstance(parsed, SQLiteURL):
        path = Path(parsed.path).with_suffix(".floor.db")
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    try:
        yield url
    finally:
        conn = connect(url, autocommit=True)
        try:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        finally:
            conn.close()


def _environment(url: str) -> dict[str, str]:
    """The library's stock recorder on the store at ``url`` (not the ledger's factories)."""
    parsed = parse(url)
    if isinstance(parsed, SQLiteURL):
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": parsed.path}
    assert isinstance(parsed, PostgresURL)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parsed.dbname,
        "POSTGRES_HOST": parsed.host,
        "POSTGRES_PORT": str(parsed.port),
        "POSTGRES_USER": parsed.user,
        "POSTGRES_PASSWORD": parsed.password,
    }
    if parsed.schema:
        env["POSTGRES_SCHEMA"] = parsed.schema
    return env


def floor_rates(url: str, commands: int, events: int, batch: int) -> dict[str, dict[str, Any]]:
    """Per path (``command``, ``bulk import``): the bare library's events/s, the raw rate of its bytes, and
    the process CPU time per event."""
    with _beside(url) as there:
        return _measure(there, commands, events, batch)


def _measure(url: str, commands: int, events: int, batch: int) -> dict[str, dict[str, Any]]:
    app = BenchFloor(env=_environment(url))
    try:
        began, cpu = time.perf_counter(), time.process_time()
        for i in range(commands):
            app.save(Thing(f"C{i}", DETAIL))
        command = (commands / (time.perf_counter() - began), (time.process_time() - cpu) / commands)
        written = _last(app, commands)
        command_raw = raw.insert_rate(url, written, batch=1)
        things = [Thing(f"B{i}", DETAIL) for i in range(events)]  # built first: the save alone is timed
        began, cpu = time.perf_counter(), time.process_time()
        for i in range(0, events, batch):
            app.save(*things[i : i + batch])
        bulk = (events / (time.perf_counter() - began), (time.process_time() - cpu) / events)
        bulk_raw = raw.insert_rate(url, _last(app, min(events, RAW_ROWS)), batch=batch)
    finally:
        app.close()
    return {
        "command": {"ours": command[0], "raw": command_raw, "cpu_us_per_event": round(command[1] * 1e6, 1)},
        "bulk import": {"ours": bulk[0], "raw": bulk_raw, "cpu_us_per_event": round(bulk[1] * 1e6, 1)},
    }


def _last(app: BenchFloor, count: int) -> list[Any]:
    head = int(app.recorder.max_notification_id() or 0)
    return list(app.recorder.select_notifications(start=head - count + 1, limit=count))
