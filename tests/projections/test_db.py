"""The queries' connection pool (连接池): kept open between requests, replaced when the database drops one, and
connected afresh at once when the store comes back from an outage."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from projections.db import Db, Pool, split_schema
from tests.conftest import fresh_store_url
from tests.faults.conftest import Proxy


def test_a_pool_hands_back_the_same_connection_and_replaces_one_the_database_dropped(store_url: str) -> None:
    pool = Pool(store_url, size=2)
    try:
        with pool.borrow() as db:
            assert db.query("SELECT 1") == [(1,)]
        if db.dialect == "sqlite":  # opening costs microseconds: each borrow opens its own and closes it
            with pytest.raises(sqlite3.ProgrammingError):
                db.query("SELECT 1")
            return
        backends = set()
        for _ in range(5):
            with pool.borrow() as db:
                backends.add(db.query("SELECT pg_backend_pid()")[0][0])
        assert len(backends) == 1  # kept open and handed out again
        with pool.borrow() as db:
            db.close()  # a reader that closed its connection: not kept
        with pool.borrow() as db:
            assert db.query("SELECT pg_backend_pid()")[0][0] not in backends
            backends.add(db.query("SELECT pg_backend_pid()")[0][0])
        with psycopg.connect(split_schema(store_url)[0], autocommit=True) as admin:
            for backend in backends:
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (backend,))
        with pool.borrow() as db:  # checked before it is handed out: a fresh one, in the store's schema
            assert db.query("SELECT pg_backend_pid()")[0][0] not in backends
            tables = Db(store_url)
            try:
                assert db.query("SELECT current_schemas(false)") == tables.query("SELECT current_schemas(false)")
            finally:
                tables.close()
    finally:
        pool.close()


def test_a_pool_connects_afresh_as_soon_as_the_store_is_back(tmp_path: Path) -> None:
    """An outage (PostgreSQL behind a proxy the test cuts): a borrow fails at once with the driver's operational
    error (503 to a client), and the first borrow after the store is back answers, on a new connection."""
    for url in fresh_store_url("postgres", tmp_path):
        parts = urlsplit(url)
        proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
        pool = Pool(urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}")))
        try:
            with pool.borrow() as db:
                assert db.query("SELECT 1") == [(1,)]
            proxy.cut()
            with pytest.raises(psycopg.OperationalError), pool.borrow() as db:
                db.query("SELECT 1")
            proxy.restore()
            with pool.borrow() as db:
                assert db.query("SELECT 1") == [(1,)]
        finally:
            pool.close()
            proxy.close()
