"""Read access to the stored log for audit (审计读库): one small interface over SQLite and PostgreSQL.

Audit reads the tables the event store writes (events and their chain hashes) with plain SQL, in
position order and in batches, so verifying millions of events needs constant memory. It writes
only its own tables (the Merkle node cache and the checkpoints).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple
from uuid import UUID

from audit.chain import originator_id_text
from store.config import SQLiteURL, log_table, parse
from store.db import connect


class StoredRow(NamedTuple):
    """One event exactly as stored, at its place in the log."""

    position: int
    originator_id: str
    originator_version: int
    topic: str
    state: bytes


class AuditDB:
    """A connection to the store, with the SQL differences between the two engines kept here."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = "sqlite" if isinstance(parse(url), SQLiteURL) else "postgres"
        self._conn: Any = connect(url)
        table = log_table(url)
        self.events_table = table.events
        self.hashes_table = f"{self.events_table}_hashes"
        self.position_column = table.position

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> AuditDB:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _state(self, alias: str = "") -> str:
        """The events' state column, read as bytes. SQLite keeps whatever type is written: an intruder's
        ``SET state = state || 'x'`` leaves text, which must fail its leaf hash, not crash the check."""
        return f"CAST({alias}state AS BLOB)" if self.engine == "sqlite" else f"{alias}state"

    def _sql(self, sql: str) -> str:
        return sql if self.engine == "sqlite" else sql.replace("?", "%s")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(self._sql(sql), params).fetchall())

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        # Without parameters the text goes verbatim (PostgreSQL DDL may contain '%').
        if params:
            self._conn.execute(self._sql(sql), params)
        else:
            self._conn.execute(sql)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.engine == "sqlite":
            self._conn.executemany(sql, rows)
        else:
            with self._conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)

    def transaction(self) -> Any:
        """A write transaction (SQLite: BEGIN IMMEDIATE, so concurrent writers queue, not fail)."""
        return _SQLiteTransaction(self._conn) if self.engine == "sqlite" else self._conn.transaction()

    def table_exists(self, name: str) -> bool:
        if self.engine == "sqlite":
            return bool(self.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)))
        return bool(self.query("SELECT to_regclass(?) IS NOT NULL", (name,))[0][0])

    # --- the log ----------------------------------------------------------------------------

    def events(self, start: int = 1, stop: int | None = None, batch: int = 2000) -> Iterator[StoredRow]:
        """Stored events with ``start <= position <= stop``, in position order."""
        pos = self.position_column
        sql = f"SELECT {pos}, originator_id, originator_version, topic, {self._state()} FROM {self.events_table}"
        sql += f" WHERE {pos} >= ?"
        if stop is not None:
            sql += f" AND {pos} <= {int(stop)}"
        sql += f" ORDER BY {pos} LIMIT {int(batch)}"
        position = start
        while True:
            rows = self.query(sql, (position,))
            if self.engine == "sqlite":  # ids are stored as text already
                yield from (StoredRow(p, oid, v, topic, state) for p, oid, v, topic, state in rows)
            else:
                for p, oid, version, topic, state in rows:
                    yield StoredRow(p, originator_id_text(oid), version, topic, bytes(state))
            if len(rows) < batch:
                return
            position = rows[-1][0] + 1

    def record_events(self, originator_id: str) -> list[StoredRow]:
        """One record's stored events in version order, found by its originator id (the store's key, indexed)."""
        pos = self.position_column
        sql = f"SELECT {pos}, originator_version, topic, {self._state()} FROM {self.events_table}"
        sql += " WHERE originator_id = ? ORDER BY originator_version"
        key: Any = originator_id if self.engine == "sqlite" else UUID(originator_id)
        return [StoredRow(p, originator_id, v, topic, bytes(state)) for p, v, topic, state in self.query(sql, (key,))]

    def hashes(self, start: int = 1, stop: int | None = None, batch: int = 5000) -> Iterator[tuple[int, bytes, bytes]]:
        """``(position, chain hash, leaf hash)`` rows in position order."""
        sql = f"SELECT position, hash, leaf FROM {self.hashes_table} WHERE position >= ?"
        if stop is not None:
            sql += f" AND position <= {int(stop)}"
        sql += f" ORDER BY position LIMIT {int(batch)}"
        position = start
        while True:
            rows = self.query(sql, (position,))
            if self.engine == "sqlite":  # BLOBs come back as bytes already
                yield from rows
            else:
                for p, h, leaf in rows:
                    yield p, as_bytes(h), as_bytes(leaf)
            if len(rows) < batch:
                return
            position = rows[-1][0] + 1

    def chained_batches(
        self, start: int = 1, stop: int | None = None, batch: int = 5000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The log (``start <= position <= stop``) joined with its chain, in batches of rows
        ``(position, originator id text, version, topic, state, hash or None, leaf or None)``."""
        pos = self.position_column
        # No upper bound in the SQL: with one, PostgreSQL may plan a hash join and a sort of the whole
        # range instead of walking both primary keys; a LIMIT of at most the positions left does as well.
        sql = (
            f"SELECT e.{pos}, e.originator_id, e.originator_version, e.topic, {self._state('e.')}, h.hash, h.leaf "
            f"FROM {self.events_table} e LEFT JOIN {self.hashes_table} h ON h.position = e.{pos} "
            f"WHERE e.{pos} >= ? ORDER BY e.{pos} LIMIT "
        )
        position = start
        while stop is None or position <= stop:
            limit = batch if stop is None else min(batch, stop - position + 1)
            rows = self.query(sql + str(limit), (position,))
            if stop is not None and rows and rows[-1][0] > stop:  # positions skipped: the rest is past stop
                rows = [row for row in rows if row[0] <= stop]
            if self.engine == "postgres":
                rows = [
                    (p, originator_id_text(o), v, t, bytes(s), h and as_bytes(h), leaf and as_bytes(leaf))
                    for p, o, v, t, s, h, leaf in rows
                ]
            if rows:
                yield rows
            if len(rows) < limit:
                return
            position = rows[-1][0] + 1

    def last_position(self) -> int | None:
        """The highest position in the events table (None while it is empty)."""
        row = self.query(f"SELECT MAX({self.position_column}) FROM {self.events_table}")
        return None if row[0][0] is None else int(row[0][0])

    def subject_of_originator(self, alias: str = "") -> str:
        """SQL for an event's originator id as a personal-data key's subject (its UUID as 32 hex digits)."""
        column = f"{alias}originator_id"
        return column if self.engine == "sqlite" else f"replace({column}::text, '-', '')"

    def first_orphan_hash(self) -> int | None:
        """The first chain row whose event is gone, if any."""
        pos = self.position_column
        row = self.query(
            f"SELECT MIN(h.position) FROM {self.hashes_table} h "
            f"WHERE NOT EXISTS (SELECT 1 FROM {self.events_table} e WHERE e.{pos} = h.position)"
        )
        return None if row[0][0] is None else int(row[0][0])


class _SQLiteTransaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type else "COMMIT")


def as_bytes(value: bytes | memoryview | str) -> bytes:
    """Hashes may be stored as bytes or as hex text; audit compares bytes."""
    return bytes.fromhex(value) if isinstance(value, str) else bytes(value)
