"""Database URL (数据库地址) to the library's persistence environment.

One URL chooses the store: ``sqlite:///path.db`` (embedded, WAL) or
``postgresql://user[:password]@host[:port]/db[?schema=NAME]``. Applications run
with CREATE_TABLE off; the schema is created once by ``create_schema`` (``ledger
init``), which is idempotent and safe to run from several processes at once.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.utils import Environment, get_topic
from psycopg.sql import SQL, Identifier

from store.recorders import (
    LedgerPostgresApplicationRecorder,
    LedgerPostgresFactory,
    LedgerSQLiteApplicationRecorder,
    LedgerSQLiteFactory,
    lock_schema_creation,
)
from store.transcoder import OrjsonTranscoder

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_URL = "sqlite:///./ledger.db"
URL_VARIABLE = "LEDGER_DATABASE_URL"
APPLICATION_NAME = "Ledger"  # the Application class name; PostgreSQL tables derive from it
SQLITE_LOCK_TIMEOUT_SECONDS = 10  # several processes (API, projections) share one file
#: Outage bounds (超时), each overridable by the environment variable of the same name, in seconds:
#: a dead or unreachable database answers within these, never hangs (see docs/reliability.md).
TIMEOUTS: dict[str, float] = {
    # libpq's connect_timeout for every new connection (its minimum is 2 s).
    "POSTGRES_CONNECT_TIMEOUT": 5,
    # How long a request waits for a pooled connection before giving up (the library's pool timeout).
    "POSTGRES_POOL_TIMEOUT": 5,
    # How long a recorder keeps retrying a failed connection before the error reaches the caller.
    "LEDGER_STORE_RETRY_SECONDS": 2,
    # How long an SQLite writer waits for another's lock ("database is locked").
    "SQLITE_LOCK_TIMEOUT": SQLITE_LOCK_TIMEOUT_SECONDS,
}
_SQLITE_PREFIX = "sqlite:///"
#: A schema name PostgreSQL reads the same quoted or not, within its 63 bytes.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_EXPECTED = "expected sqlite:///path/to/file.db or postgresql://user[:password]@host[:port]/dbname[?schema=NAME]"


@dataclass(frozen=True)
class SQLiteURL:
    """An embedded SQLite database file."""

    path: str


@dataclass(frozen=True)
class PostgresURL:
    """A PostgreSQL database (and optionally a schema in it)."""

    user: str
    password: str
    host: str
    port: int
    dbname: str
    schema: str = ""


def database_url(environ: Mapping[str, str] = os.environ) -> str:
    """The configured URL (LEDGER_DATABASE_URL, else DEFAULT_URL), validated."""
    url = environ.get(URL_VARIABLE, "").strip() or DEFAULT_URL
    parse(url)
    return url


def parse(url: str) -> SQLiteURL | PostgresURL:
    """Validate url; raise ValueError saying what is wrong and what is expected."""
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if scheme == "sqlite":
        if not url.startswith(_SQLITE_PREFIX):
            msg = f"SQLite URL {url!r} needs three slashes: sqlite:///relative/file.db or sqlite:////absolute/file.db"
            raise ValueError(msg)
        return _parse_sqlite(url)
    if scheme == "postgresql" and url.startswith("postgresql://"):
        return _parse_postgres(url)
    msg = f"unsupported database URL {redact(url)!r}: {_EXPECTED}"
    raise ValueError(msg)


def _parse_sqlite(url: str) -> SQLiteURL:
    path = url[len(_SQLITE_PREFIX) :]
    if not path or path.endswith("/"):
        msg = f"SQLite URL {url!r} names no file: {_EXPECTED}"
        raise ValueError(msg)
    # The library treats these as in-memory or URI databases: each connection
    # would see its own database, so `ledger init` could not prepare it.
    if ":memory:" in path or "mode=memory" in path or path.startswith("file:"):
        msg = f"SQLite URL {url!r} must name a file, not an in-memory or URI database"
        raise ValueError(msg)
    if "?" in path or "#" in path:
        msg = f"SQLite URL {url!r} takes no query or fragment: {_EXPECTED}"
        raise ValueError(msg)
    return SQLiteURL(path=path)


def _parse_postgres(url: str) -> PostgresURL:
    parts = urlsplit(url)
    redacted = redact(url)
    try:
        port = parts.port or 5432
    except ValueError:
        msg = f"PostgreSQL URL {redacted!r} has an invalid port: {_EXPECTED}"
        raise ValueError(msg) from None
    dbname = unquote(parts.path.lstrip("/"))
    problems = [
        name
        for name, missing in (
            ("user", not parts.username),
            ("host", not parts.hostname),
            ("database name", not dbname or "/" in dbname),
        )
        if missing
    ]
    if problems:
        msg = f"PostgreSQL URL {redacted!r} lacks {', '.join(problems)}: {_EXPECTED}"
        raise ValueError(msg)
    query = parse_qs(parts.query, keep_blank_values=True)
    schemas = query.pop("schema", [""])
    if query or parts.fragment or len(schemas) != 1:
        msg = f"PostgreSQL URL {redacted!r} takes only ?schema=NAME: {_EXPECTED}"
        raise ValueError(msg)
    if schemas[0] and not SCHEMA_NAME.fullmatch(schemas[0]):
        # The library writes the schema into its SQL unquoted: any other name fails half-way through `ledger init`.
        msg = f"schema {schemas[0]!r} must be lower-case letters, digits and _, not starting with a digit: {_EXPECTED}"
        raise ValueError(msg)
    return PostgresURL(
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        host=parts.hostname or "",
        port=port,
        dbname=dbname,
        schema=schemas[0],
    )


def redact(url: str) -> str:
    # Error messages end up in logs: never echo a password.
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def timeout(name: str, environ: Mapping[str, str] = os.environ) -> float:
    """One of :data:`TIMEOUTS`, from the environment if set there (seconds, positive)."""
    raw = environ.get(name, "").strip()
    if not raw:
        return TIMEOUTS[name]
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        msg = f"{name}={raw!r} must be a positive number of seconds"
        raise ValueError(msg)
    return value


def persistence_environment(url: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Library environment variables selecting our recorders for url."""
    parsed = parse(url)
    env = {
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
        # Opening an application never changes the schema: `ledger init`
        # (create_schema) creates it, once, explicitly.
        "CREATE_TABLE": "n",
        "LEDGER_STORE_RETRY_SECONDS": str(timeout("LEDGER_STORE_RETRY_SECONDS", environ)),
    }
    if isinstance(parsed, SQLiteURL):
        env |= {
            "PERSISTENCE_MODULE": get_topic(LedgerSQLiteFactory),
            "SQLITE_DBNAME": parsed.path,
            # The library reads whole seconds.
            "SQLITE_LOCK_TIMEOUT": str(max(1, round(timeout("SQLITE_LOCK_TIMEOUT", environ)))),
        }
    else:
        # POSTGRES_ENABLE_DB_FUNCTIONS stays unset: it would drop the table lock
        # that keeps notification ids gap-free in commit order.
        env |= {
            "PERSISTENCE_MODULE": get_topic(LedgerPostgresFactory),
            "POSTGRES_DBNAME": parsed.dbname,
            "POSTGRES_HOST": parsed.host,
            "POSTGRES_PORT": str(parsed.port),
            "POSTGRES_USER": parsed.user,
            "POSTGRES_PASSWORD": parsed.password,
            # The library's POSTGRES_CONNECT_TIMEOUT is its pool wait (whole seconds); libpq's own
            # connect timeout goes in LEDGER_PG_CONNECT_TIMEOUT (LedgerPostgresFactory applies it).
            "POSTGRES_CONNECT_TIMEOUT": str(max(1, round(timeout("POSTGRES_POOL_TIMEOUT", environ)))),
            "LEDGER_PG_CONNECT_TIMEOUT": str(max(2, round(timeout("POSTGRES_CONNECT_TIMEOUT", environ)))),
            # Check a pooled connection before handing it out: after an outage the pool holds
            # dead ones, and without the check each would fail one request first.
            "POSTGRES_PRE_PING": "y",
        }
        if parsed.schema:
            env["POSTGRES_SCHEMA"] = parsed.schema
    return env


def _environment(url: str, app_name: str, *, create_table: bool) -> Environment:
    env = persistence_environment(url)
    env["CREATE_TABLE"] = "y" if create_table else "n"
    return Environment(app_name, env)


@dataclass(frozen=True)
class LogTable:
    """Where the library keeps the Ledger's log: SQLite names the table by purpose and keys it by
    rowid; PostgreSQL names it after the application and keys it by a bigserial column."""

    events: str
    position: str


def log_table(url: str) -> LogTable:
    if isinstance(parse(url), SQLiteURL):
        return LogTable("stored_events", "rowid")
    return LogTable(f"{APPLICATION_NAME.lower()}_events", "notification_id")


def _factory(url: str, app_name: str, *, create_table: bool) -> LedgerSQLiteFactory | LedgerPostgresFactory:
    env = _environment(url, app_name, create_table=create_table)
    if isinstance(parse(url), SQLiteURL):
        return LedgerSQLiteFactory(env)
    return LedgerPostgresFactory(env)


def create_schema(url: str, app_name: str = APPLICATION_NAME) -> None:
    """Create the store's tables (events, chain, idempotency keys, snapshots), idempotently."""
    parsed = parse(url)
    if isinstance(parsed, SQLiteURL):
        _require_directory(parsed.path)
        _use_wal(parsed.path)
    elif parsed.schema:
        _create_postgres_schema(url, parsed.schema)
    factory = _factory(url, app_name, create_table=True)
    try:
        factory.application_recorder()  # creates tables as CREATE_TABLE is on
        factory.aggregate_recorder("snapshots")
    finally:
        factory.close()


#: How long `ledger init` on a new SQLite file keeps trying to put it in WAL mode while others race to.
WAL_SWITCH_SECONDS = 30.0


def _use_wal(path: str) -> None:
    """Put a SQLite file in WAL mode (it stays so) before the library's connections open it. Each of those switches
    a file it finds in another mode, and when several `ledger init` ran at once on a new file one failed with
    "database is locked": SQLite refuses at once, without waiting, a lock that two switching connections would
    otherwise wait on each other for. Here the refusal is tried again until the file is switched."""
    deadline = time.monotonic() + WAL_SWITCH_SECONDS
    while True:
        try:
            with closing(sqlite3.connect(path, timeout=SQLITE_LOCK_TIMEOUT_SECONDS)) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def _require_directory(path: str) -> None:
    # A mistyped path would otherwise grow a tree of directories and put the ledger where no
    # backup looks for it: the file is created, its directory must already be there.
    directory = Path(path).parent
    if not directory.is_dir():
        msg = f"directory {directory} does not exist: create it first, or name a file in an existing one"
        raise FileNotFoundError(msg)


def _create_postgres_schema(url: str, schema: str) -> None:
    factory = LedgerPostgresFactory(_environment(url, APPLICATION_NAME, create_table=False))
    try:
        with factory.datastore.transaction(commit=True) as curs:
            # Concurrent CREATE SCHEMA IF NOT EXISTS can still collide.
            lock_schema_creation(curs)
            curs.execute(SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(Identifier(schema)))
    finally:
        factory.close()


def is_empty(url: str, app_name: str = APPLICATION_NAME) -> bool:
    """True if the store holds no events (or has no schema yet)."""
    parsed = parse(url)
    if isinstance(parsed, SQLiteURL) and not Path(parsed.path).exists():
        return True  # don't create the file just by looking
    factory = _factory(url, app_name, create_table=False)
    try:
        recorder = factory.application_recorder()
        if isinstance(recorder, LedgerSQLiteApplicationRecorder):
            with recorder.datastore.transaction(commit=False) as c:
                c.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (recorder.events_table_name,),
                )
                exists = c.fetchone() is not None
        else:
            assert isinstance(recorder, LedgerPostgresApplicationRecorder)
            with recorder.datastore.transaction(commit=False) as curs:
                curs.execute(
                    "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
                    (recorder.datastore.schema, recorder.events_table_name),
                )
                exists = curs.fetchone() is not None
        return not exists or recorder.max_notification_id() is None
    finally:
        factory.close()


__all__ = [
    "DEFAULT_URL",
    "TIMEOUTS",
    "LogTable",
    "PostgresURL",
    "SQLiteURL",
    "create_schema",
    "database_url",
    "is_empty",
    "log_table",
    "parse",
    "persistence_environment",
    "redact",
    "timeout",
]
