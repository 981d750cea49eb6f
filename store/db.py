"""Plain DB-API connections to the ledger's database, for the tables the library does not own; and the two
ways a store can fail to be there: not initialised (:class:`StoreMissing`) or down (:func:`unavailable`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError

from store.config import PostgresURL, SQLiteURL, log_table, parse, redact, timeout

#: SQLite's operational errors that mean "unavailable now", not a bug in a statement.
_SQLITE_UNAVAILABLE = ("locked", "busy", "readonly", "read-only", "unable to open", "disk i/o", "disk is full")


class StoreMissing(LookupError):
    """The URL names no initialised store (未初始化): no SQLite file, or no event tables yet."""


def connect(url: str, *, autocommit: bool = True) -> Any:
    """An sqlite3 or psycopg connection to ``url`` (search_path set to its schema, if any)."""
    parsed = parse(url)
    if isinstance(parsed, SQLiteURL):
        conn = sqlite3.connect(
            parsed.path,
            timeout=timeout("SQLITE_LOCK_TIMEOUT"),
            check_same_thread=False,
            isolation_level=None if autocommit else "DEFERRED",
        )
        conn.execute("PRAGMA journal_mode=WAL")
        return conn
    assert isinstance(parsed, PostgresURL)
    options = f"-c search_path={parsed.schema}" if parsed.schema else ""
    return psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.user,
        password=parsed.password or None,
        dbname=parsed.dbname,
        autocommit=autocommit,
        options=options,
        connect_timeout=max(2, round(timeout("POSTGRES_CONNECT_TIMEOUT"))),
    )


def placeholder(url: str) -> str:
    """The parameter marker of the URL's driver."""
    return "?" if isinstance(parse(url), SQLiteURL) else "%s"


def require_store(url: str) -> str:
    """``url`` if it names an initialised store; else :class:`StoreMissing` saying to run ``ledger init``.

    Looking never creates anything: connecting to a missing SQLite file would create an empty one, so
    its existence is checked first. A store that cannot be reached raises its driver's error
    (:func:`unavailable` is true of it).
    """
    parsed = parse(url)
    if isinstance(parsed, SQLiteURL) and not Path(parsed.path).is_file():
        raise StoreMissing(f"no store at {parsed.path}: run `ledger init` first")
    conn = connect(url)
    try:
        if not _has_table(conn, isinstance(parsed, SQLiteURL), log_table(url).events):
            raise StoreMissing(f"the store {redact(url)} is not initialised: run `ledger init` first")
    finally:
        conn.close()
    return url


def _has_table(conn: Any, sqlite: bool, name: str) -> bool:
    if sqlite:
        row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        return row is not None
    # to_regclass resolves the name on the search path, that is in the URL's schema.
    return conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None


def unavailable(exc: BaseException) -> bool:
    """Whether an error means the store is unreachable, locked or read-only (try again later), not a bug."""
    if isinstance(exc, (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, sqlite3.Error):
            return _sqlite_unavailable(str(exc))
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return _sqlite_unavailable(str(exc))
    return False


def _sqlite_unavailable(message: str) -> bool:
    return any(part in message.lower() for part in _SQLITE_UNAVAILABLE)
