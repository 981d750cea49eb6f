"""Database URL (数据库地址) parsing, environment mapping, schema creation."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import InfrastructureFactory, PersistenceError
from psycopg.sql import SQL, Identifier

from store import config
from store.config import DEFAULT_URL, PostgresURL, SQLiteURL, parse
from store.recorders import (
    LedgerPostgresApplicationRecorder,
    LedgerPostgresFactory,
    LedgerSQLiteApplicationRecorder,
    LedgerSQLiteFactory,
)
from store.transcoder import OrjsonTranscoder

PG_URL = os.environ.get("LEDGER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


class Ledger(Application[UUID]):
    """Stands in for domain.application.Ledger: only its name matters here."""


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a not yet initialised store (own file, or own PostgreSQL schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
        return
    schema = f"ledger_test_{uuid4().hex[:16]}"
    yield f"{PG_URL}?schema={schema}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {0} CASCADE").format(Identifier(schema)))


@pytest.mark.parametrize(
    ("url_text", "expected"),
    [
        ("sqlite:///./ledger.db", SQLiteURL("./ledger.db")),
        ("sqlite:////var/lib/ledger.db", SQLiteURL("/var/lib/ledger.db")),
        (
            "postgresql://ledger@db.example:6432/ledger",
            PostgresURL("ledger", "", "db.example", 6432, "ledger"),
        ),
        (
            "postgresql://ledger:p%40ss@localhost/ledger?schema=bureau",
            PostgresURL("ledger", "p@ss", "localhost", 5432, "ledger", "bureau"),
        ),
    ],
)
def test_parse_accepts(url_text: str, expected: SQLiteURL | PostgresURL) -> None:
    assert parse(url_text) == expected


@pytest.mark.parametrize(
    ("url_text", "message"),
    [
        ("mysql://u@h/db", "unsupported database URL"),
        ("postgres://u@h/db", "unsupported database URL"),
        ("ledger.db", "unsupported database URL"),
        ("sqlite://ledger.db", "three slashes"),
        ("sqlite:///", "names no file"),
        ("sqlite:///:memory:", "must name a file"),
        ("sqlite:///a.db?mode=ro", "takes no query"),
        ("postgresql://h:5432/db", "lacks user"),
        ("postgresql://u@h:5432/", "lacks database name"),
        ("postgresql://u@h:port/db", "invalid port"),
        ("postgresql://u@h/db?sslmode=require", "takes only [?]schema=NAME"),
        ("postgresql://u@h/db?schema=ReviewOps", "lower-case letters"),  # the library writes it unquoted
        ("postgresql://u@h/db?schema=bad-name", "lower-case letters"),
        ("postgresql://u@h/db?schema=1st", "not starting with a digit"),
    ],
)
def test_parse_rejects_with_clear_message(url_text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse(url_text)
    assert "expected" in str(raised.value) or "sqlite:///" in str(raised.value)


def test_parse_error_never_shows_the_password() -> None:
    with pytest.raises(ValueError, match="lacks database name") as raised:
        parse("postgresql://u:s3cret@h/")
    assert "s3cret" not in str(raised.value)


def test_database_url_reads_the_environment_variable() -> None:
    assert config.database_url({}) == DEFAULT_URL == "sqlite:///./ledger.db"
    assert config.database_url({"LEDGER_DATABASE_URL": " "}) == DEFAULT_URL
    assert config.database_url({"LEDGER_DATABASE_URL": PG_URL}) == PG_URL
    with pytest.raises(ValueError, match="unsupported"):
        config.database_url({"LEDGER_DATABASE_URL": "oracle://x"})


def test_sqlite_environment() -> None:
    env = config.persistence_environment("sqlite:///var/ledger.db")
    assert env == {
        "PERSISTENCE_MODULE": "store.recorders:LedgerSQLiteFactory",
        "TRANSCODER_TOPIC": "store.transcoder:OrjsonTranscoder",
        "SQLITE_DBNAME": "var/ledger.db",
        "SQLITE_LOCK_TIMEOUT": "10",
        "CREATE_TABLE": "n",
        "LEDGER_STORE_RETRY_SECONDS": "2",
    }
    factory = InfrastructureFactory.construct(env)
    assert type(factory) is LedgerSQLiteFactory
    factory.close()


def test_postgres_environment_never_enables_db_functions() -> None:
    env = config.persistence_environment("postgresql://u:pw@h:6000/d?schema=s")
    assert env == {
        "PERSISTENCE_MODULE": "store.recorders:LedgerPostgresFactory",
        "TRANSCODER_TOPIC": "store.transcoder:OrjsonTranscoder",
        "POSTGRES_DBNAME": "d",
        "POSTGRES_HOST": "h",
        "POSTGRES_PORT": "6000",
        "POSTGRES_USER": "u",
        "POSTGRES_PASSWORD": "pw",
        "POSTGRES_SCHEMA": "s",
        "CREATE_TABLE": "n",
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "LEDGER_PG_CONNECT_TIMEOUT": "5",
        "POSTGRES_PRE_PING": "y",
        "LEDGER_STORE_RETRY_SECONDS": "2",
    }
    without_password = config.persistence_environment("postgresql://u@h/d")
    assert without_password["POSTGRES_PASSWORD"] == ""
    assert "POSTGRES_SCHEMA" not in without_password


def test_timeouts_come_from_the_environment_and_must_be_positive() -> None:
    env = config.persistence_environment(
        "postgresql://u@h/d", {"POSTGRES_CONNECT_TIMEOUT": "3", "POSTGRES_POOL_TIMEOUT": "1.5"}
    )
    assert (env["LEDGER_PG_CONNECT_TIMEOUT"], env["POSTGRES_CONNECT_TIMEOUT"]) == ("3", "2")
    assert config.persistence_environment("sqlite:///x.db", {"SQLITE_LOCK_TIMEOUT": "1"})["SQLITE_LOCK_TIMEOUT"] == "1"
    with pytest.raises(ValueError, match="positive"):
        config.persistence_environment("sqlite:///x.db", {"SQLITE_LOCK_TIMEOUT": "-1"})


def test_application_uses_our_recorder_and_transcoder(url: str) -> None:
    config.create_schema(url)
    app = Ledger(env=config.persistence_environment(url))
    try:
        assert isinstance(
            app.recorder,
            (LedgerSQLiteApplicationRecorder, LedgerPostgresApplicationRecorder),
        )
        assert isinstance(app.mapper.transcoder, OrjsonTranscoder)
        expected_table = "stored_events" if url.startswith("sqlite") else "ledger_events"
        assert app.recorder.events_table_name == expected_table
        assert app.recorder.hashes_table_name == f"{expected_table}_hashes"
        assert isinstance(app.factory, (LedgerSQLiteFactory, LedgerPostgresFactory))
    finally:
        app.close()


def test_workers_do_not_create_tables(url: str) -> None:
    # Without `ledger init` the store has no tables, and opening the application
    # must not create them (CREATE_TABLE is off).
    if url.startswith("postgresql"):
        config.create_schema(url, app_name="Other")  # the schema must exist
    app = Ledger(env=config.persistence_environment(url))
    try:
        with pytest.raises(PersistenceError):
            app.save(Aggregate())
    finally:
        app.close()
    assert config.is_empty(url)


def test_create_schema_is_idempotent_and_is_empty_follows_events(url: str) -> None:
    assert config.is_empty(url)
    if url.startswith("sqlite"):
        # Looking must not create the database file.
        assert not Path(url.removeprefix("sqlite:///")).exists()
    config.create_schema(url)
    config.create_schema(url)  # `ledger init` may run twice
    assert config.is_empty(url)
    app = Ledger(env=config.persistence_environment(url))
    try:
        app.save(Aggregate())
    finally:
        app.close()
    assert not config.is_empty(url)


def test_create_schema_concurrently(url: str) -> None:
    # Several processes may run `ledger init` at once.
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(config.create_schema, url) for _ in range(4)]:
            future.result()
    assert config.is_empty(url)


def test_inits_racing_on_new_sqlite_files_all_succeed(tmp_path: Path) -> None:
    """Eight `ledger init` at once on a new file, a hundred times: each connection switched the file to WAL on
    its own, and about one round in fifty one failed with "database is locked" (SQLite refuses that lock at once)."""
    for round_ in range(100):
        url = f"sqlite:///{tmp_path / f'ledger-{round_}.db'}"
        with ThreadPoolExecutor(max_workers=8) as pool:
            for future in [pool.submit(config.create_schema, url) for _ in range(8)]:
                future.result()
        assert config.is_empty(url)


def test_sqlite_file_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    config.create_schema(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_create_schema_refuses_a_missing_directory(tmp_path: Path) -> None:
    # A mistyped path must be an error, not a new tree of directories holding the ledger.
    with pytest.raises(FileNotFoundError, match="does not exist"):
        config.create_schema(f"sqlite:///{tmp_path}/no/such/ledger.db")
    assert not (tmp_path / "no").exists()
