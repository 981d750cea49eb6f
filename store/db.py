"""Plain DB-API connections to the ledger's database, for the tables the library does not own."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg

from store.config import PostgresURL, SQLiteURL, parse, timeout


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
