"""A tiny database adapter (数据库适配) for the projections: one API over sqlite3 and psycopg.

SQL is written once with ``?`` placeholders; PostgreSQL gets ``$1``, ``$2``…. Views live in the same
database as the events, chosen by the same URL (``sqlite:///path.db`` or ``postgresql://…[?schema=S]``).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

Row = tuple[Any, ...]


@functools.lru_cache(maxsize=1024)
def _numbered(sql: str) -> str:
    """PostgreSQL's own placeholders (``$1``, ``$2``…) for ``?``: psycopg's raw cursor passes them through, where
    its default cursor parses every statement for ``%s`` (a millisecond for one with 500 ids, thousands of them
    in a rebuild)."""
    pieces = sql.split("?")
    return "".join(f"{piece}${n}" for n, piece in enumerate(pieces[:-1], 1)) + pieces[-1]


class Db:
    """One connection, autocommit outside :meth:`transaction`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.in_transaction = False
        if url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            path = url[len("sqlite:///") :].split("?", 1)[0]
            # isolation_level=None: we issue BEGIN ourselves (BEGIN IMMEDIATE takes the write lock up front).
            self._sqlite = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
            self._sqlite.execute("PRAGMA journal_mode=WAL")
            self._sqlite.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint the WAL every ~80 MB rather than every 4 MB: a rebuild rewrites the same index pages
            # batch after batch, and each checkpoint writes them back (1M events: 11.6 s -> 6.8 s per 300k).
            self._sqlite.execute("PRAGMA wal_autocheckpoint=20000")
        elif url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.dialect = "postgres"
            conninfo, schema = split_schema(url)
            # No server-side prepared statements: after five runs of one statement PostgreSQL may switch to a
            # generic plan, which cannot see how few rows a territory's ids or a position range select and
            # scans whole tables (a district's open triggers: 13 -> 50 ms when asked again and again).
            self._pg = psycopg.connect(conninfo, autocommit=True, prepare_threshold=None)
            self._raw = psycopg.RawCursor
            if schema:
                self._pg.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                self._pg.execute(f'SET search_path TO "{schema}"')
        else:
            raise ValueError(f"unsupported database URL {url!r} (sqlite:///… or postgresql://…)")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self.dialect == "sqlite":
            return self._sqlite.execute(sql, params).fetchall()
        with self._raw(self._pg) as cur:
            cur.execute(_numbered(sql), params)
            return list(cur.fetchall()) if cur.description else []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if self.dialect == "sqlite":
            self._sqlite.execute(sql, params)
        else:
            with self._raw(self._pg) as cur:
                cur.execute(_numbered(sql), params)

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Append rows to a table: PostgreSQL by COPY (several times faster than INSERTs), SQLite by executemany."""
        if not rows:
            return
        if self.dialect == "sqlite":
            marks = ", ".join("?" * len(columns))
            self._sqlite.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
            return
        with self._pg.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    @contextmanager
    def transaction(self) -> Iterator[Db]:
        """One transaction: SQLite takes the write lock at BEGIN, so two workers never interleave."""
        self.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
        self.in_transaction = True
        try:
            yield self
        except BaseException:
            self.execute("ROLLBACK")
            raise
        else:
            self.execute("COMMIT")
        finally:
            self.in_transaction = False

    def json_number(self, column: str, key: str) -> str:
        """SQL for a JSON member of a text column as a number (NULL when absent or null)."""
        if self.dialect == "sqlite":
            return f"CAST(json_extract({column}, '$.{key}') AS REAL)"
        return f"CAST(({column}::jsonb ->> '{key}') AS DOUBLE PRECISION)"

    def json_text(self, column: str, key: str) -> str:
        """SQL for a JSON member of a text column as text (NULL when absent or null)."""
        if self.dialect == "sqlite":
            return f"json_extract({column}, '$.{key}')"
        return f"({column}::jsonb ->> '{key}')"

    def as_bytes(self, column: str) -> str:
        """SQL for a text column to be handed on as UTF-8 (a kept report's JSON): on SQLite read as its bytes, not
        decoded into a string to be encoded back (1.8 MB: 2.8 -> 0.2 ms); on PostgreSQL as text (the driver decodes
        it in C; ``convert_to`` sent it as hex, 13 ms against 6). :func:`utf8` takes either."""
        if self.dialect == "sqlite":
            return f"CAST({column} AS BLOB)"
        return column

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """The driver's database errors (a missing table, a read-only replica refusing a write, ...)."""
        if self.dialect == "sqlite":
            return (sqlite3.Error,)
        import psycopg

        return (psycopg.Error,)

    def relations(self) -> set[str]:
        """The names of the tables and indexes in this store (its schema, on PostgreSQL): a catalogue read that
        takes no lock on any of them."""
        if self.dialect == "sqlite":
            return {r[0] for r in self.query("SELECT name FROM sqlite_master")}
        return {
            r[0] for r in self.query("SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace")
        }

    @property
    def for_update(self) -> str:
        """Row lock suffix: PostgreSQL locks the tracking row; SQLite's BEGIN IMMEDIATE already locked the file."""
        return " FOR UPDATE" if self.dialect == "postgres" else ""

    def close(self) -> None:
        if self.dialect == "sqlite":
            self._sqlite.close()
        else:
            self._pg.close()

    def idle(self) -> bool:
        """Whether the connection is open and outside any transaction (fit to be reused)."""
        if self.dialect == "sqlite":
            return False  # never kept: opening one costs microseconds
        from psycopg.pq import TransactionStatus

        return not self._pg.closed and self._pg.info.transaction_status == TransactionStatus.IDLE

    def alive(self) -> bool:
        """Whether the server still answers on this connection (one round trip)."""
        try:
            self.query("SELECT 1")
        except self.errors:
            return False
        return self.idle()


def utf8(value: str | bytes | memoryview) -> bytes:
    """A column read by :meth:`Db.as_bytes`, as UTF-8 bytes."""
    return value.encode() if isinstance(value, str) else bytes(value)


class Pool:
    """Connections kept open between short reads (连接池, an API server's queries). Opening a PostgreSQL
    connection took about 3 ms, most of a small answer read back. An idle connection is checked with a round trip
    before it is handed out (one an outage or a restart dropped is closed, not handed out), and when none is idle a
    borrow connects then and there, as every read did before: a store back from an outage answers at once, where a
    pool connecting in the background (psycopg_pool, tried) kept failing borrows until its next retry, seconds to
    minutes later. SQLite opens in microseconds: each borrow opens a connection of its own."""

    #: Idle connections kept, at most. A burst beyond it connects per request, as before, and closes afterwards: a
    #: server process keeping one for each of its 40 request threads, times several processes and hosts, would
    #: hold PostgreSQL's 100 connections (its default limit) idle.
    SIZE = 8

    def __init__(self, url: str, *, size: int = SIZE) -> None:
        self.url = url
        self.size = size
        self._idle: list[Db] = []
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self) -> Iterator[Db]:
        """A connection for one request's reads (and the reports it keeps), given back afterwards."""
        db = self._take() or Db(self.url)
        try:
            yield db
        finally:
            self._give(db)

    def _take(self) -> Db | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                db = self._idle.pop()  # the most recently used: the likeliest to be alive
            if db.alive():
                return db
            db.close()

    def _give(self, db: Db) -> None:
        if db.idle():  # never on SQLite: each borrow opens its own
            with self._lock:
                if len(self._idle) < self.size:
                    self._idle.append(db)
                    return
        db.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()


def split_schema(url: str) -> tuple[str, str | None]:
    """Take our ``schema`` option off a PostgreSQL URL (libpq does not know it)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    schema = query.pop("schema", [None])[0]
    rest = urlencode({k: v[0] for k, v in query.items()})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), schema
