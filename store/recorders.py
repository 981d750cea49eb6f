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
import hashlib
import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast
from uuid import UUID

import psycopg.errors
from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
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
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier, Literal

from audit.chain import GENESIS, chain_link
from domain.application import REFERENCE_VERSIONS, StaleReference
from domain.personal import PersonalKeyExists

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
    # The chain hashes audit.chain.originator_id_text() of what a reader gets back, which is
    # not always what was inserted: UUID-typed stores read strings back as UUIDs,
    # and text-typed ones (SQLite and PostgreSQL alike) keep UUIDs as hex.
    if isinstance(originator_id, UUID):
        return originator_id.hex
    return UUID(originator_id).hex if uuid_ids else originator_id


_LEAF_PREFIX = b"\x00"
_INT_LENGTH = (8).to_bytes(8, "big")


def _leaf(position: int, originator_id: str, originator_version: int, topic: str, state: bytes) -> bytes:
    """``audit.chain.leaf_hash`` of the same fields, hashed from one buffer.

    The same bytes (tested against ``leaf_hash``) with one ``update`` instead of eleven: the
    writer's share of the chain was a tenth of a bulk save's Python time.
    """
    oid = originator_id.encode("utf-8")
    top = topic.encode("utf-8")
    return hashlib.sha256(
        b"".join(
            (
                _LEAF_PREFIX,
                _INT_LENGTH,
                position.to_bytes(8, "big", signed=True),
                len(oid).to_bytes(8, "big"),
                oid,
                _INT_LENGTH,
                originator_version.to_bytes(8, "big", signed=True),
                len(top).to_bytes(8, "big"),
                top,
                len(state).to_bytes(8, "big"),
                state,
            )
        )
    ).digest()


def _link(prev: bytes, events: Sequence[StoredEvent], positions: Sequence[int], *, uuid_ids: bool) -> list[ChainRow]:
    rows: list[ChainRow] = []
    for position, event in sorted(zip(positions, events, strict=True), key=_first):
        oid = _stored_id_text(event.originator_id, uuid_ids=uuid_ids)
        leaf = _leaf(position, oid, event.originator_version, event.topic, event.state)
        prev = chain_link(prev, leaf)
        rows.append(ChainRow(position, prev, leaf))
    return rows


def _sql(template: str, *parts: Identifier) -> bytes:
    return SQL(template).format(*parts).as_bytes()


def _rendered(statement: Any) -> bytes:
    """A statement as the bytes psycopg would send (rendered once, not on every execute)."""
    if isinstance(statement, bytes):
        return statement
    if isinstance(statement, str):
        return statement.encode()
    return cast("bytes", statement.as_bytes())


def _returned_ids(cursor: Cursor[tuple[Any, ...]], count: int) -> list[int]:
    """The ids RETURNING gave each statement of an ``executemany(..., returning=True)``, in order."""
    ids: list[int] = []
    while True:
        row = cursor.fetchone()
        assert row is not None
        ids.append(row[0])
        if not cursor.nextset():
            break
    if len(ids) != count:
        msg = f"expected {count} notification ids, got {len(ids)}"
        raise ProgrammingError(msg)
    return ids


def lock_schema_creation(curs: Cursor[DictRow]) -> None:
    """Wait for other ledger schema creators; released at transaction end."""
    curs.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))


def _first(pair: tuple[int, StoredEvent]) -> int:
    return pair[0]


def _keyed(positions: list[int], key: str) -> Any:
    """What an idempotency row keeps: the save's positions and, when the key carries one (``request``, the
    fingerprint of the request it was given for; ``domain.application.IdempotencyKey``), that fingerprint."""
    request = getattr(key, "request", None)
    return positions if request is None else {"positions": positions, "request": request}


def _unkeyed(stored: Any) -> tuple[list[int], str | None]:
    """An idempotency row's positions and request fingerprint (``None`` for a row kept without one)."""
    if isinstance(stored, dict):
        return cast("list[int]", stored["positions"]), stored.get("request")
    return cast("list[int]", stored), None


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

    #: Saves may name reference versions to verify under the write lock (``REFERENCE_VERSIONS``).
    checks_reference_versions = True

    @functools.cached_property
    def _select_version(self) -> str:
        return f"SELECT MAX(originator_version) FROM {self.events_table_name} WHERE originator_id = ?"

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
            try:
                c.executemany(f"INSERT INTO {KEYS_TABLE} (subject, wrapped) VALUES (?, ?)", personal_keys)
            except sqlite3.IntegrityError as e:
                raise PersonalKeyExists(str(e)) from e
        positions = list(super()._insert_events(c, stored_events, **kwargs) or [])
        references: dict[UUID, int] | None = kwargs.get(REFERENCE_VERSIONS)
        if references:
            # The events insert took the write lock: nothing can be committed in between.
            stale = []
            for aggregate_id, version in references.items():
                c.execute(self._select_version, (aggregate_id.hex,))
                if c.fetchone()[0] != version:
                    stale.append(aggregate_id)
            if stale:
                raise StaleReference(stale)
        if stored_events:
            # The events insert above took SQLite's single write lock (held to
            # commit), so the last chain row read here cannot change under us.
            c.execute(f"SELECT hash FROM {self.hashes_table_name} ORDER BY position DESC LIMIT 1")
            row = c.fetchone()
            prev = GENESIS if row is None else bytes(row[0])
            rows = _link(prev, stored_events, positions, uuid_ids=self.datastore.originator_id_type == "uuid")
            c.executemany(f"INSERT INTO {self.hashes_table_name} VALUES (?, ?, ?)", rows)
        if key is not None:
            c.execute(
                f"INSERT INTO {self.idempotency_table_name} (key, positions) VALUES (?, ?)",
                (str(key), json.dumps(_keyed(positions, key), separators=(",", ":"))),
            )
        return positions

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
        answer = self.idempotent_answer(key)
        return None if answer is None else answer[0]

    def idempotent_answer(self, key: str) -> tuple[list[int], str | None] | None:
        """Positions recorded under key and the fingerprint of the request they answered, or None if unused."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT positions FROM {self.idempotency_table_name} WHERE key = ?",
                (str(key),),
            )
            row = c.fetchone()
        return None if row is None else _unkeyed(json.loads(row[0]))


class LedgerSQLiteProcessRecorder(LedgerSQLiteApplicationRecorder, SQLiteProcessRecorder):
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


class LedgerPostgresApplicationRecorder(SerialisedCreation, PostgresApplicationRecorder):
    """PostgreSQL application recorder with hash chain and idempotency keys.

    insert_events() is replaced (not extended) so that every statement runs in
    one transaction that fails as a whole; it always takes the library's table
    lock, so POSTGRES_ENABLE_DB_FUNCTIONS has no effect here.
    """

    #: Saves may name reference versions to verify under the table lock (``REFERENCE_VERSIONS``).
    checks_reference_versions = True

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
        # Statements are rendered to bytes once: psycopg renders a composed statement (quoting
        # every identifier) anew on every execute, a tenth of a single command's client time.
        # One row per statement, sent in the pipeline by executemany(): the server takes 2,000
        # of these faster than one INSERT ... SELECT FROM unnest() of the library's composite
        # type (whose values psycopg renders and the server parses as text), and results come
        # back in the order of the events.
        self._insert_returning = _sql(
            "INSERT INTO {0}.{1} (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s) RETURNING notification_id",
            schema,
            events,
        )
        self._select_last_hash = _sql("SELECT hash FROM {0}.{1} ORDER BY position DESC LIMIT 1", schema, hashes)
        self._insert_hashes = _sql(
            "INSERT INTO {0}.{1} (position, hash, leaf) SELECT * FROM unnest(%s::bigint[], %s::bytea[], %s::bytea[])",
            schema,
            hashes,
        )
        self._insert_hash = _sql("INSERT INTO {0}.{1} (position, hash, leaf) VALUES (%s, %s, %s)", schema, hashes)
        self._insert_personal_key = _sql(
            "INSERT INTO {0}.{1} (subject, wrapped) VALUES (%s, %s)", schema, Identifier(KEYS_TABLE)
        )
        self._insert_key = _sql("INSERT INTO {0}.{1} (key, positions) VALUES (%s, %s::jsonb)", schema, idempotency)
        self._insert_personal_keys = _sql(
            "INSERT INTO {0}.{1} (subject, wrapped) SELECT * FROM unnest(%s::text[], %s::bytea[])",
            schema,
            Identifier(KEYS_TABLE),
        )
        self._select_chain = _sql(
            "SELECT position, hash, leaf FROM {0}.{1} WHERE position >= %s ORDER BY position LIMIT %s", schema, hashes
        )
        self._select_key = _sql("SELECT positions FROM {0}.{1} WHERE key = %s", schema, idempotency)
        self._select_version = _sql(
            "SELECT MAX(originator_version) AS max FROM {0}.{1} WHERE originator_id = %s", schema, events
        )
        self._lock_sql = [_rendered(statement) for statement in self.lock_table_statements]
        self._notify_sql = _sql("NOTIFY {0}", Identifier(self.channel_name))
        self._select_events_sql: dict[tuple[bool, bool, bool, bool], bytes] = {}

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

    def _lock_table(self, curs: Cursor[DictRow]) -> None:
        for statement in self._lock_sql:
            curs.execute(statement, prepare=True)

    def _notify_channel(self, curs: Cursor[DictRow]) -> None:
        curs.execute(self._notify_sql)

    @_retry_briefly
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """The library's ``select_events``, its statement rendered once per shape of the query."""
        shape = (gt is not None, lte is not None, desc, limit is not None)
        statement = self._select_events_sql.get(shape)
        if statement is None:
            composed = self.select_events_statement
            if gt is not None:
                composed += SQL(" AND originator_version > %s")
            if lte is not None:
                composed += SQL(" AND originator_version <= %s")
            composed += SQL(" ORDER BY originator_version DESC" if desc else " ORDER BY originator_version ASC")
            if limit is not None:
                composed += SQL(" LIMIT %s")
            statement = self._select_events_sql[shape] = composed.as_bytes()
        params = [originator_id, *(value for value in (gt, lte, limit) if value is not None)]
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    select_notifications = _retry_briefly(_unretried(PostgresApplicationRecorder.select_notifications))
    max_notification_id = _retry_briefly(_unretried(PostgresApplicationRecorder.max_notification_id))

    @_retry_briefly
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Insert events, chain rows and idempotency key in one transaction."""
        key = _idempotency_key(kwargs)
        try:
            return self._insert_all(stored_events, key, **kwargs)
        except IntegrityError as e:
            cause = e.__cause__
            if isinstance(cause, psycopg.errors.UniqueViolation) and cause.diag.table_name == KEYS_TABLE:
                raise PersonalKeyExists(str(e)) from cause
            raise

    def _insert_all(self, stored_events: Sequence[StoredEvent], key: str | None, **kwargs: Any) -> Sequence[int] | None:
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
                with conn.cursor() as last, conn.cursor(row_factory=tuple_row) as inserted:
                    last.execute(self._select_last_hash, prepare=True)
                    param_id = self._param_id
                    params = [
                        (param_id(e.originator_id), e.originator_version, e.topic, e.state) for e in stored_events
                    ]
                    if len(params) == 1:  # a command: executemany's set-up costs more than the row
                        inserted.execute(self._insert_returning, params[0], prepare=True)
                    else:
                        inserted.executemany(self._insert_returning, params, returning=True)
                    # Under the table lock: versions as of now, in the same round trip.
                    references: dict[UUID, int] = kwargs.get(REFERENCE_VERSIONS) or {}
                    checks = [(i, v, conn.cursor()) for i, v in references.items()]
                    for aggregate_id, _, check in checks:
                        check.execute(self._select_version, (param_id(aggregate_id),), prepare=True)
                    pipeline.sync()  # duplicate events fail here, as IntegrityError
                    stale = [i for i, v, check in checks if (check.fetchone() or {}).get("max") != v]
                    if stale:
                        raise StaleReference(stale)
                    row = last.fetchone()
                    prev = GENESIS if row is None else bytes(row["hash"])
                    positions = _returned_ids(inserted, len(stored_events))
                rows = _link(prev, stored_events, positions, uuid_ids=self.datastore.originator_id_type == "uuid")
                with conn.cursor() as curs:
                    if len(rows) == 1:
                        curs.execute(self._insert_hash, rows[0], prepare=True)
                    else:
                        curs.execute(
                            self._insert_hashes,
                            ([r.position for r in rows], [r.hash for r in rows], [r.leaf for r in rows]),
                            prepare=True,
                        )
            personal_keys = kwargs.get(PERSONAL_KEYS)
            if personal_keys:
                with conn.cursor() as curs:
                    if len(personal_keys) == 1:
                        curs.execute(self._insert_personal_key, personal_keys[0], prepare=True)
                    else:
                        subjects, wrapped = zip(*personal_keys, strict=True)
                        curs.execute(self._insert_personal_keys, (list(subjects), list(wrapped)), prepare=True)
            if key is not None:
                with conn.cursor() as curs:
                    curs.execute(
                        self._insert_key,
                        (str(key), json.dumps(_keyed(positions, key), separators=(",", ":"))),
                        prepare=True,
                    )
            # No sync here: a violation in the statements above (say, a repeated
            # key) surfaces at COMMIT, still as IntegrityError, saving a round trip.
        return positions if stored_events else None

    def _param_id(self, originator_id: UUID | str) -> UUID | str:
        # What the library's composite rendering stored: a UUID goes into a text column as hex
        # (psycopg's UUID text form), not as the server's dashed uuid::text.
        if isinstance(originator_id, UUID) and self.datastore.originator_id_type != "uuid":
            return originator_id.hex
        return originator_id

    def read_chain(self, start: int, limit: int) -> list[ChainRow]:
        """Chain rows with position >= start, in order, at most limit."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_chain, (start, limit), prepare=True)
            return [ChainRow(r["position"], bytes(r["hash"]), bytes(r["leaf"])) for r in curs.fetchall()]

    def idempotent_result(self, key: str) -> list[int] | None:
        """Positions recorded under key, or None if the key is unused."""
        answer = self.idempotent_answer(key)
        return None if answer is None else answer[0]

    def idempotent_answer(self, key: str) -> tuple[list[int], str | None] | None:
        """Positions recorded under key and the fingerprint of the request they answered, or None if unused."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_key, (str(key),), prepare=True)
            row = curs.fetchone()
        return None if row is None else _unkeyed(row["positions"])


class LedgerPostgresProcessRecorder(LedgerPostgresApplicationRecorder, PostgresProcessRecorder):
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
