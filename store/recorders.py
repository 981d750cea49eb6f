"""Ledger recorders (记录器): the library's recorders plus the hash chain (哈希链),
idempotency keys (幂等键) and append-only protection (只追加), all written in the
same transaction as the events.

Tables, derived from the recorder's events table name ``E``:

- ``E_hashes(position, hash, leaf)``: one row per event, ``position`` is the
  notification id, ``hash`` links to the previous row (see ``audit.chain``).
- ``E_idempotency(key, positions, recorded_at)``: one row per keyed save.

Pass ``idempotency_key="..."`` to ``Application.save()``: the kwarg reaches
``insert_events()``; a repeated key raises the library's ``IntegrityError`` and
nothing of that save is kept. Positions can have gaps on PostgreSQL (a rolled
back insert consumes sequence values): the chain links rows, not position - 1.
"""

from __future__ import annotations

import functools
import json
import time
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast
from uuid import UUID

import psycopg.errors
from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
    PostgresProcessRecorder,
    PostgresRecorder,
)
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteCursor,
    SQLiteFactory,
    SQLiteProcessRecorder,
)
from eventsourcing.utils import Environment, EnvType
from psycopg.sql import SQL, Identifier, Literal

from audit.chain import GENESIS, chain_link, leaf_hash, originator_id_text

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from psycopg import Cursor
    from psycopg.rows import DictRow

APPEND_ONLY_MESSAGE = "ledger is append-only"
IDEMPOTENCY_KEY = "idempotency_key"
PERSONAL_KEYS = "personal_keys"  # [(subject, wrapped data key)]: new keys, stored with their first events
KEYS_TABLE = "ledger_personal_keys"  # not an event table: erasure deletes from it (crypto-shredding)

_APPEND_ONLY_FUNCTION = "ledger_append_only"  # also the name of its triggers
# Arbitrary constant naming "ledger schema creation" among advisory locks.
_SCHEMA_LOCK_KEY = 0x4C45444745520001

_F = TypeVar("_F", bound="Callable[..., Any]")
#: Default for LEDGER_STORE_RETRY_SECONDS (store.config sets it from the environment).
RETRY_SECONDS = 2.0
_RETRY_WAIT = 0.2


def _retry_briefly(func: _F) -> _F:
    """Retry connection errors for at most the recorder's retry budget, then let them through.

    The library retries ten times whatever each attempt costs: with a pool wait per attempt an
    outage held a request for minutes. A budget in seconds bounds it (the API answers 503).
    """

    @functools.wraps(func)
    def bounded(self: Any, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + getattr(self, "retry_seconds", RETRY_SECONDS)
        while True:
            try:
                return func(self, *args, **kwargs)
            except (InterfaceError, OperationalError):
                if time.monotonic() + _RETRY_WAIT >= deadline:
                    raise
                time.sleep(_RETRY_WAIT)

    return cast("_F", bounded)


def _unretried(method: Any) -> Any:
    """The library method without its own retry decorator (functools.wraps keeps it)."""
    return getattr(method, "__wrapped__", method)


class ChainRow(NamedTuple):
    """One row of the hashes table."""

    position: int
    hash: bytes
    leaf: bytes


def _stored_id_text(originator_id: UUID | str, *, uuid_ids: bool) -> str:
    # The chain hashes originator_id_text() of what a reader gets back, which is
    # not always what was inserted: UUID-typed stores read strings back as UUIDs,
    # and text-typed ones (SQLite and PostgreSQL alike) keep UUIDs as hex.
    if isinstance(originator_id, UUID):
        return originator_id.hex
    return UUID(originator_id).hex if uuid_ids else originator_id


def _link(
    prev: bytes,
    events: Sequence[StoredEvent],
    positions: Sequence[int],
    id_text: Callable[[UUID | str], str],
) -> list[ChainRow]:
    rows: list[ChainRow] = []
    for position, event in sorted(zip(positions, events, strict=True), key=_first):
        oid = id_text(event.originator_id)
        args = (position, oid, event.originator_version, event.topic, event.state)
        leaf = leaf_hash(*args)
        prev = chain_link(prev, leaf)
        rows.append(ChainRow(position, prev, leaf))
    return rows


def lock_schema_creation(curs: Cursor[DictRow]) -> None:
    """Wait for other ledger schema creators; released at transaction end."""
    curs.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))


def _first(pair: tuple[int, StoredEvent]) -> int:
    return pair[0]


def _idempotency_key(kwargs: dict[str, Any]) -> str | None:
    key = kwargs.get(IDEMPOTENCY_KEY)
    if key is not None and not isinstance(key, str):
        msg = f"{IDEMPOTENCY_KEY} must be a str, got {type(key).__name__}"
        raise TypeError(msg)
    if key == "":
        msg = f"{IDEMPOTENCY_KEY} must not be empty"
        raise ValueError(msg)
    return key


# ---------------------------------------------------------------- SQLite


class LedgerSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """SQLite application recorder with hash chain and idempotency keys."""

    @property
    def hashes_table_name(self) -> str:
        """Name of the hash chain table."""
        return f"{self.events_table_name}_hashes"

    @property
    def idempotency_table_name(self) -> str:
        """Name of the idempotency keys table."""
        return f"{self.events_table_name}_idempotency"

    def construct_create_table_statements(self) -> list[str]:
        """Library statements, then ledger tables and append-only triggers."""
        statements = super().construct_create_table_statements()
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {self.hashes_table_name} ("
            "position INTEGER PRIMARY KEY, hash BLOB NOT NULL, leaf BLOB NOT NULL)"
        )
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {self.idempotency_table_name} ("
            "key TEXT PRIMARY KEY, positions TEXT NOT NULL, recorded_at TEXT "
            "NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        )
        statements.append(f"CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (subject TEXT PRIMARY KEY, wrapped BLOB NOT NULL)")
        for table in (
            self.events_table_name,
            self.hashes_table_name,
            self.idempotency_table_name,
        ):
            for op in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} "
                    f"BEFORE {op} ON {table} BEGIN "
                    f"SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
                )
        return statements

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        key = _idempotency_key(kwargs)
        personal_keys = kwargs.get(PERSONAL_KEYS)
        if personal_keys:
            c.executemany(f"INSERT INTO {KEYS_TABLE} (subject, wrapped) VALUES (?, ?)", personal_keys)
        positions = list(super()._insert_events(c, stored_events, **kwargs) or [])
        if stored_events:
            # The events insert above took SQLite's single write lock (held to
            # commit), so the last chain row read here cannot change under us.
            c.execute(
                f"SELECT hash FROM {self.hashes_table_name} "
                "ORDER BY position DESC LIMIT 1"
            )
            row = c.fetchone()
            rows = _link(
                GENESIS if row is None else bytes(row[0]),
                stored_events,
                positions,
                self._id_text,
            )
            c.executemany(
                f"INSERT INTO {self.hashes_table_name} VALUES (?, ?, ?)", rows
            )
        if key is not None:
            c.execute(
                f"INSERT INTO {self.idempotency_table_name} (key, positions) "
                "VALUES (?, ?)",
                (key, json.dumps(positions, separators=(",", ":"))),
            )
        return positions

    def _id_text(self, originator_id: UUID | str) -> str:
        return _stored_id_text(
            originator_id, uuid_ids=self.datastore.originator_id_type == "uuid"
        )

    def read_chain(self, start: int, limit: int) -> list[ChainRow]:
        """Chain rows with position >= start, in order, at most limit."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT position, hash, leaf FROM {self.hashes_table_name} "
                "WHERE position >= ? ORDER BY position LIMIT ?",
                (start, limit),
            )
            return [ChainRow(r[0], bytes(r[1]), bytes(r[2])) for r in c.fetchall()]

    def idempotent_result(self, key: str) -> list[int] | None:
        """Positions recorded under key, or None if the key is unused."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT positions FROM {self.idempotency_table_name} WHERE key = ?",
                (key,),
            )
            row = c.fetchone()
        return None if row is None else cast("list[int]", json.loads(row[0]))


class LedgerSQLiteProcessRecorder(
    LedgerSQLiteApplicationRecorder, SQLiteProcessRecorder
):
    """Process recorder variant, so process applications chain their events too."""


class LedgerSQLiteFactory(SQLiteFactory):
    """SQLite factory constructing the ledger recorders."""

    application_recorder_class = LedgerSQLiteApplicationRecorder
    process_recorder_class = LedgerSQLiteProcessRecorder


# ------------------------------------------------------------ PostgreSQL


class SerialisedCreation(PostgresRecorder):
    """Makes create_table() safe when several processes run it at once."""

    def create_table(self) -> None:
        """Create the recorder's types and tables, waiting for other creators."""
        # CREATE TYPE has no IF NOT EXISTS, and two processes racing to create it
        # get a unique violation rather than the DuplicateObject the library
        # suppresses: create types first, serialised by the advisory lock.
        with self.datastore.transaction(commit=True) as curs:
            lock_schema_creation(curs)
            for statement in self.sql_create_statements:
                if "CREATE TYPE" in statement.as_string():
                    try:
                        with curs.connection.transaction():  # savepoint
                            curs.execute(statement, prepare=False)
                    except psycopg.errors.DuplicateObject:
                        pass
        super().create_table()

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        # CREATE ... IF NOT EXISTS and CREATE OR REPLACE FUNCTION are not safe
        # against concurrent creators either ("tuple concurrently updated").
        lock_schema_creation(curs)
        super()._create_table(curs)


class LedgerPostgresAggregateRecorder(SerialisedCreation, PostgresAggregateRecorder):
    """The library's aggregate recorder (snapshots), with serialised creation."""


class LedgerPostgresApplicationRecorder(
    SerialisedCreation, PostgresApplicationRecorder
):
    """PostgreSQL application recorder with hash chain and idempotency keys.

    insert_events() is replaced (not extended) so that every statement runs in
    one transaction that fails as a whole; it always takes the library's table
    lock, so POSTGRES_ENABLE_DB_FUNCTIONS has no effect here.
    """

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name, **kwargs)
        self.hashes_table_name = f"{events_table_name}_hashes"
        self.idempotency_table_name = f"{events_table_name}_idempotency"
        self.check_identifier_length(self.hashes_table_name)
        self.check_identifier_length(self.idempotency_table_name)
        schema = Identifier(self.datastore.schema)
        events = Identifier(self.events_table_name)
        hashes = Identifier(self.hashes_table_name)
        idempotency = Identifier(self.idempotency_table_name)
        self._append_only_function = Identifier(_APPEND_ONLY_FUNCTION)
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (position bigint PRIMARY KEY, "
                "hash bytea NOT NULL, leaf bytea NOT NULL)"
            ).format(schema, hashes),
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (key text PRIMARY KEY, "
                "positions jsonb NOT NULL, "
                "recorded_at timestamptz NOT NULL DEFAULT now())"
            ).format(schema, idempotency),
            SQL("CREATE TABLE IF NOT EXISTS {0}.{1} (subject text PRIMARY KEY, wrapped bytea NOT NULL)").format(
                schema, Identifier(KEYS_TABLE)
            ),
            SQL(
                "CREATE OR REPLACE FUNCTION {0}.{1}() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
                "'{2}: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME "
                "USING ERRCODE = 'restrict_violation'; END $$"
            ).format(schema, self._append_only_function, SQL(APPEND_ONLY_MESSAGE)),
        ]
        self._protected_tables = (
            self.events_table_name,
            self.hashes_table_name,
            self.idempotency_table_name,
        )
        self._insert_returning = SQL(
            "INSERT INTO {0}.{1} (originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state "
            "FROM unnest(%s::{0}.{2}[]) "
            "RETURNING notification_id, originator_id, originator_version"
        ).format(schema, events, Identifier(self.stored_event_type_name))
        self._select_last_hash = SQL(
            "SELECT hash FROM {0}.{1} ORDER BY position DESC LIMIT 1"
        ).format(schema, hashes)
        self._insert_hashes = SQL(
            "INSERT INTO {0}.{1} (position, hash, leaf) "
            "SELECT * FROM unnest(%s::bigint[], %s::bytea[], %s::bytea[])"
        ).format(schema, hashes)
        self._insert_key = SQL(
            "INSERT INTO {0}.{1} (key, positions) VALUES (%s, %s::jsonb)"
        ).format(schema, idempotency)
        self._insert_personal_keys = SQL(
            "INSERT INTO {0}.{1} (subject, wrapped) SELECT * FROM unnest(%s::text[], %s::bytea[])"
        ).format(schema, Identifier(KEYS_TABLE))
        self._select_chain = SQL(
            "SELECT position, hash, leaf FROM {0}.{1} "
            "WHERE position >= %s ORDER BY position LIMIT %s"
        ).format(schema, hashes)
        self._select_key = SQL("SELECT positions FROM {0}.{1} WHERE key = %s").format(
            schema, idempotency
        )

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        super()._create_table(curs)
        # CREATE TRIGGER has no IF NOT EXISTS (and OR REPLACE would lock the
        # events table on every init): create each trigger once.
        for table in self._protected_tables:
            curs.execute(
                SQL(
                    "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
                    "n.nspname = {0} AND c.relname = {1} AND t.tgname = {2}"
                ).format(
                    Literal(self.datastore.schema),
                    Literal(table),
                    Literal(_APPEND_ONLY_FUNCTION),
                )
            )
            if curs.fetchone() is None:
                curs.execute(
                    SQL(
                        "CREATE TRIGGER {2} BEFORE UPDATE OR DELETE OR TRUNCATE "
                        "ON {0}.{1} FOR EACH STATEMENT EXECUTE FUNCTION {0}.{2}()"
                    ).format(
                        Identifier(self.datastore.schema),
                        Identifier(table),
                        self._append_only_function,
                    )
                )

    select_events = _retry_briefly(_unretried(PostgresApplicationRecorder.select_events))
    select_notifications = _retry_briefly(_unretried(PostgresApplicationRecorder.select_notifications))
    max_notification_id = _retry_briefly(_unretried(PostgresApplicationRecorder.max_notification_id))

    @_retry_briefly
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert events, chain rows and idempotency key in one transaction."""
        key = _idempotency_key(kwargs)
        positions: list[int] = []
        with (
            self.datastore.get_connection() as conn,
            conn.pipeline() as pipeline,
            conn.transaction(),
        ):
            with conn.cursor() as curs:
                self._insert_events(curs, stored_events, **kwargs)  # tracking
            if stored_events:
                with conn.cursor() as curs:
                    # The library's EXCLUSIVE table lock serialises writers until
                    # commit, so the last chain row read next stays the last.
                    self._lock_table(curs)
                    self._notify_channel(curs)
                with conn.cursor() as last, conn.cursor() as inserted:
                    last.execute(self._select_last_hash, prepare=True)
                    inserted.execute(
                        self._insert_returning,
                        (self._pg_events(stored_events),),
                        prepare=True,
                    )
                    pipeline.sync()  # duplicate events fail here, as IntegrityError
                    row = last.fetchone()
                    prev = GENESIS if row is None else bytes(row["hash"])
                    positions = self._positions(stored_events, inserted.fetchall())
                rows = _link(prev, stored_events, positions, self._id_text)
                with conn.cursor() as curs:
                    curs.execute(
                        self._insert_hashes,
                        (
                            [r.position for r in rows],
                            [r.hash for r in rows],
                            [r.leaf for r in rows],
                        ),
                        prepare=True,
                    )
            personal_keys = kwargs.get(PERSONAL_KEYS)
            if personal_keys:
                with conn.cursor() as curs:
                    subjects, wrapped = zip(*personal_keys, strict=True)
                    curs.execute(self._insert_personal_keys, (list(subjects), list(wrapped)))
            if key is not None:
                with conn.cursor() as curs:
                    curs.execute(
                        self._insert_key,
                        (key, json.dumps(positions, separators=(",", ":"))),
                    )
            # No sync here: a violation in the statements above (say, a repeated
            # key) surfaces at COMMIT, still as IntegrityError, saving a round trip.
        return positions if stored_events else None

    def _id_text(self, originator_id: UUID | str) -> str:
        return _stored_id_text(
            originator_id, uuid_ids=self.datastore.originator_id_type == "uuid"
        )

    def _pg_events(self, stored_events: Sequence[StoredEvent]) -> list[Any]:
        return [
            self.construct_pg_stored_event(
                e.originator_id, e.originator_version, e.topic, e.state
            )
            for e in stored_events
        ]

    def _positions(
        self, stored_events: Sequence[StoredEvent], returned: list[DictRow]
    ) -> list[int]:
        # Map ids back by event identity: SQL does not promise that RETURNING
        # follows the order of the unnested input.
        by_event = {
            (originator_id_text(r["originator_id"]), r["originator_version"]): r[
                "notification_id"
            ]
            for r in returned
        }
        return [
            by_event[self._id_text(e.originator_id), e.originator_version]
            for e in stored_events
        ]

    def read_chain(self, start: int, limit: int) -> list[ChainRow]:
        """Chain rows with position >= start, in order, at most limit."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_chain, (start, limit), prepare=True)
            return [
                ChainRow(r["position"], bytes(r["hash"]), bytes(r["leaf"]))
                for r in curs.fetchall()
            ]

    def idempotent_result(self, key: str) -> list[int] | None:
        """Positions recorded under key, or None if the key is unused."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_key, (key,), prepare=True)
            row = curs.fetchone()
        return None if row is None else cast("list[int]", row["positions"])


class LedgerPostgresProcessRecorder(
    LedgerPostgresApplicationRecorder, PostgresProcessRecorder
):
    """Process recorder variant, so process applications chain their events too."""


class LedgerPostgresFactory(PostgresFactory):
    """PostgreSQL factory constructing the ledger recorders."""

    aggregate_recorder_class = LedgerPostgresAggregateRecorder
    application_recorder_class = LedgerPostgresApplicationRecorder
    process_recorder_class = LedgerPostgresProcessRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        # The library gives libpq no connect timeout: a pool worker connecting to an unreachable
        # host would hang for the operating system's TCP timeout, delaying recovery by minutes.
        connect_timeout = self.env.get("LEDGER_PG_CONNECT_TIMEOUT")
        if connect_timeout and isinstance(self.datastore.pool.kwargs, dict):
            self.datastore.pool.kwargs["connect_timeout"] = int(float(connect_timeout))
        self.retry_seconds = float(self.env.get("LEDGER_STORE_RETRY_SECONDS") or RETRY_SECONDS)

    def application_recorder(self) -> ApplicationRecorder:
        """The library's recorder, told this factory's retry budget."""
        recorder = super().application_recorder()
        recorder.retry_seconds = self.retry_seconds  # type: ignore[attr-defined]
        return recorder


__all__ = [
    "APPEND_ONLY_MESSAGE",
    "IDEMPOTENCY_KEY",
    "KEYS_TABLE",
    "PERSONAL_KEYS",
    "ChainRow",
    "LedgerPostgresAggregateRecorder",
    "LedgerPostgresApplicationRecorder",
    "LedgerPostgresFactory",
    "LedgerPostgresProcessRecorder",
    "LedgerSQLiteApplicationRecorder",
    "LedgerSQLiteFactory",
    "LedgerSQLiteProcessRecorder",
    "SerialisedCreation",
    "lock_schema_creation",
]
