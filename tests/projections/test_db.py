"""The queries' connection pool (连接池): kept open between requests, replaced when the database drops one."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from projections.db import Db, Pool, split_schema


def test_a_pool_hands_back_the_same_connection_and_replaces_one_the_database_dropped(store_url: str) -> None:
    pool = Pool(store_url, size=2, timeout=5)
    try:
        with pool.borrow() as db:
            assert db.query("SELECT 1") == [(1,)]
        if db.dialect == "sqlite":  # opening costs microseconds: each borrow opens its own and closes it
            with pytest.raises(sqlite3.ProgrammingError):
                db.query("SELECT 1")
            return
        with pool.borrow() as db:
            backend = db.query("SELECT pg_backend_pid()")[0][0]
            db.close()  # a reader closing its Db leaves the pool's connection open
        with pool.borrow() as db:
            assert db.query("SELECT pg_backend_pid()")[0][0] == backend  # kept open, handed out again
        with psycopg.connect(split_schema(store_url)[0], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        with pool.borrow() as db:  # checked before it is handed out: a fresh one, in the store's schema
            assert db.query("SELECT pg_backend_pid()")[0][0] != backend
            tables = Db(store_url)
            try:
                assert db.query("SELECT current_schemas(false)") == tables.query("SELECT current_schemas(false)")
            finally:
                tables.close()
    finally:
        pool.close()
