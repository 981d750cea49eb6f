"""Raw baselines (原始基线): the same bytes written with plain SQL, on the same store, same durability.

A table ``bench_raw_events`` shaped like the library's events table (id, originator id and
version unique, topic, state) lives next to the ledger's tables; it is dropped after each use.
SQLite: the same file, WAL, default ``synchronous`` (FULL), as the library's recorder.
PostgreSQL: the same schema, default ``synchronous_commit``, as the library's recorder.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Notification

from store.config import SQLiteURL, parse
from store.db import connect, placeholder

TABLE = "bench_raw_events"


def _ddl(url: str) -> str:
    if isinstance(parse(url), SQLiteURL):
        key, blob = "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"
    else:
        key, blob = "BIGSERIAL PRIMARY KEY", "BYTEA"
    return (
        f"CREATE TABLE {TABLE} (id {key}, originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL, "
        f"topic TEXT NOT NULL, state {blob} NOT NULL, UNIQUE (originator_id, originator_version))"
    )


def _rows(notifications: Sequence[Notification]) -> list[tuple[Any, ...]]:
    return [(str(n.originator_id), n.originator_version, n.topic, n.state) for n in notifications]


def _insert(conn: Any, url: str, rows: list[tuple[Any, ...]], batch: int) -> float:
    """Insert ``rows``, ``batch`` per transaction; the seconds it took."""
    p = placeholder(url)
    sql = f"INSERT INTO {TABLE} (originator_id, originator_version, topic, state) VALUES ({p}, {p}, {p}, {p})"
    sqlite = isinstance(parse(url), SQLiteURL)
    began = time.perf_counter()
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        if sqlite:
            conn.execute("BEGIN")
            if len(chunk) == 1:
                conn.execute(sql, chunk[0])
            else:
                conn.executemany(sql, chunk)
            conn.execute("COMMIT")
        else:
            with conn.transaction(), conn.cursor() as cur:
                if len(chunk) == 1:
                    cur.execute(sql, chunk[0])
                else:
                    cur.executemany(sql, chunk)
    return time.perf_counter() - began


def insert_rate(url: str, notifications: Sequence[Notification], batch: int) -> float:
    """Rows/s of inserting these events' stored bytes, ``batch`` rows per transaction (1 = one per commit)."""
    rows = _rows(notifications)
    conn = connect(url, autocommit=True)
    try:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(_ddl(url))
        seconds = _insert(conn, url, rows, batch)
        conn.execute(f"DROP TABLE {TABLE}")
        return len(rows) / seconds
    finally:
        conn.close()
