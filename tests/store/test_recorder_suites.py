"""The library's own recorder test suites, run against our recorders (SQLite and
PostgreSQL). After every test the hash chain is recomputed from the stored events
and compared with the hashes table, so the suites' concurrent writers also check
that chaining stays consistent under contention.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Literal
from unittest import TestCase
from uuid import UUID, uuid4

import psycopg
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.postgres import (
    PostgresDatastore,
    PostgresTrackingRecorder,
)
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteDatastore,
    SQLiteTrackingRecorder,
)
from eventsourcing.tests import persistence
from eventsourcing.utils import Environment, get_topic
from psycopg.sql import SQL, Identifier

from audit.chain import GENESIS, event_hash, leaf_hash, originator_id_text
from store.config import PostgresURL, parse
from store.recorders import (
    LedgerPostgresAggregateRecorder,
    LedgerPostgresApplicationRecorder,
    LedgerPostgresFactory,
    LedgerPostgresProcessRecorder,
    LedgerSQLiteApplicationRecorder,
    LedgerSQLiteFactory,
    LedgerSQLiteProcessRecorder,
)

PG_URL = os.environ.get("LEDGER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

LedgerRecorder = LedgerSQLiteApplicationRecorder | LedgerPostgresApplicationRecorder


def assert_chain_matches_events(recorder: LedgerRecorder) -> None:
    """Recompute the chain from the stored events; compare with the hashes table."""
    prev, start, checked = GENESIS, 0, 0
    while notifications := recorder.select_notifications(start, 5000):
        rows = recorder.read_chain(start, 5000)
        assert [r.position for r in rows] == [n.id for n in notifications]
        for n, row in zip(notifications, rows, strict=True):
            fields = (
                n.id,
                originator_id_text(n.originator_id),
                n.originator_version,
                n.topic,
                n.state,
            )
            prev = event_hash(prev, *fields)
            assert (row.hash, row.leaf) == (prev, leaf_hash(*fields)), n.id
        start = notifications[-1].id + 1
        checked += len(notifications)
    assert checked == len(recorder.read_chain(0, 10**9))


def _pg() -> PostgresURL:
    parsed = parse(PG_URL)
    assert isinstance(parsed, PostgresURL)
    return parsed


def create_pg_schema(schema: str) -> None:
    """Create a schema through an admin connection, not a recorder under test."""
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(SQL("CREATE SCHEMA {0}").format(Identifier(schema)))


def drop_pg_schema(schema: str) -> None:
    """Drop a schema and everything in it, through an admin connection."""
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {0} CASCADE").format(Identifier(schema)))


class _TempFiles(TestCase):
    """SQLite files in a per-test temporary directory, removed afterwards."""

    def tmp_db(self) -> str:
        directory = tempfile.mkdtemp(prefix="ledger-test-")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        return os.path.join(directory, "events.db")


class _WithPostgresSchema:
    """One fresh schema per test, so tests can run concurrently with others."""

    pool_size = 2
    max_overflow = 12  # the suites' concurrency tests use up to 12 connections
    originator_id_type: Literal["uuid", "text"] = "uuid"

    def setUp(self) -> None:
        self.schema = f"ledger_test_{uuid4().hex[:16]}"
        create_pg_schema(self.schema)
        pg = _pg()
        self.datastore = PostgresDatastore(
            pg.dbname,
            pg.host,
            pg.port,
            pg.user,
            pg.password,
            schema=self.schema,
            pool_size=self.pool_size,
            max_overflow=self.max_overflow,
            originator_id_type=self.originator_id_type,
        )
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        self.datastore.close()
        drop_pg_schema(self.schema)


class _ChecksChain:
    """Keeps the last recorder created and verifies its chain after the test."""

    recorder: LedgerRecorder | None = None

    def keep(self, recorder: Any) -> Any:
        self.recorder = recorder
        return recorder

    def tearDown(self) -> None:
        if self.recorder is not None:
            assert_chain_matches_events(self.recorder)
        super().tearDown()  # type: ignore[misc]


class _TextOriginatorIDs:
    originator_id_type: Literal["uuid", "text"] = "text"

    def new_originator_id(self) -> UUID | str:
        return f"test-{uuid4()}"


# ---------------------------------------------------------------- SQLite


class TestSQLiteApplicationRecorder(
    _ChecksChain,
    _TempFiles,
    persistence.ApplicationRecorderTestCase[LedgerSQLiteApplicationRecorder],
):
    db_name = ":memory:"
    originator_id_type: Literal["uuid", "text"] = "uuid"

    def create_recorder(self) -> LedgerSQLiteApplicationRecorder:
        recorder = LedgerSQLiteApplicationRecorder(
            SQLiteDatastore(self.db_name, pool_size=100, originator_id_type=self.originator_id_type)
        )
        recorder.create_table()
        return self.keep(recorder)  # type: ignore[no-any-return]

    def _use_file(self) -> None:
        self.db_name = self.tmp_db()

    def _use_shared_memory(self) -> None:
        # Named, so no other test in this process shares the database.
        self.db_name = f"file:{uuid4().hex}?mode=memory&cache=shared"

    def test_concurrent_no_conflicts(self, initial_position: int = 0) -> None:
        self._use_file()
        super().test_concurrent_no_conflicts(initial_position)

    def test_concurrent_no_conflicts_in_memory_db(self) -> None:
        self._use_shared_memory()
        super().test_concurrent_no_conflicts()

    def test_concurrent_throughput(self) -> None:
        self._use_file()
        super().test_concurrent_throughput()

    def test_concurrent_throughput_in_memory_db(self) -> None:
        self._use_shared_memory()
        super().test_concurrent_throughput()


class TestSQLiteApplicationRecorderWithTextIDs(_TextOriginatorIDs, TestSQLiteApplicationRecorder):
    pass


class TestSQLiteProcessRecorder(_ChecksChain, persistence.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        recorder = LedgerSQLiteProcessRecorder(SQLiteDatastore(":memory:"))
        recorder.create_table()
        return self.keep(recorder)  # type: ignore[no-any-return]


class TestSQLiteNonInterleavingNotificationIDs(
    _ChecksChain, _TempFiles, persistence.NonInterleavingNotificationIDsBaseCase
):
    def create_recorder(self) -> ApplicationRecorder:
        recorder = LedgerSQLiteApplicationRecorder(SQLiteDatastore(self.tmp_db()))
        recorder.create_table()
        return self.keep(recorder)  # type: ignore[no-any-return]


class TestSQLiteFactory(_TempFiles, persistence.InfrastructureFactoryTestCase[LedgerSQLiteFactory]):
    class TrackingRecorderSubclass(SQLiteTrackingRecorder):
        pass

    def setUp(self) -> None:
        self.env = Environment("TestCase")
        self.env[InfrastructureFactory.PERSISTENCE_MODULE] = get_topic(LedgerSQLiteFactory)
        self.env[LedgerSQLiteFactory.SQLITE_DBNAME] = self.tmp_db()
        super().setUp()

    def expected_factory_class(self) -> type[LedgerSQLiteFactory]:
        return LedgerSQLiteFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return SQLiteAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return LedgerSQLiteApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return SQLiteTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return self.TrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return LedgerSQLiteProcessRecorder


# ------------------------------------------------------------ PostgreSQL


class TestPostgresApplicationRecorder(
    _ChecksChain,
    _WithPostgresSchema,
    persistence.ApplicationRecorderTestCase[LedgerPostgresApplicationRecorder],
):
    def create_recorder(self) -> LedgerPostgresApplicationRecorder:
        recorder = LedgerPostgresApplicationRecorder(self.datastore)
        recorder.create_table()
        return self.keep(recorder)  # type: ignore[no-any-return]

    def test_insert_subscribe(self) -> None:
        super().optional_test_insert_subscribe()


class TestPostgresApplicationRecorderWithTextIDs(_TextOriginatorIDs, TestPostgresApplicationRecorder):
    pass


class TestPostgresProcessRecorder(_ChecksChain, _WithPostgresSchema, persistence.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        recorder = LedgerPostgresProcessRecorder(self.datastore)
        recorder.create_table()
        return self.keep(recorder)  # type: ignore[no-any-return]


class TestPostgresNonInterleavingNotificationIDs(
    _ChecksChain,
    _WithPostgresSchema,
    persistence.NonInterleavingNotificationIDsBaseCase,
):
    def create_recorder(self) -> ApplicationRecorder:
        recorder = LedgerPostgresApplicationRecorder(self.datastore)
        recorder.create_table()
        return self.keep(recorder)  # type: ignore[no-any-return]


class TestPostgresFactory(persistence.InfrastructureFactoryTestCase[LedgerPostgresFactory]):
    class TrackingRecorderSubclass(PostgresTrackingRecorder):
        pass

    def setUp(self) -> None:
        self.schema = f"ledger_test_{uuid4().hex[:16]}"
        create_pg_schema(self.schema)
        pg = _pg()
        self.env = Environment("TestCase")
        self.env |= {
            InfrastructureFactory.PERSISTENCE_MODULE: get_topic(LedgerPostgresFactory),
            "POSTGRES_DBNAME": pg.dbname,
            "POSTGRES_HOST": pg.host,
            "POSTGRES_PORT": str(pg.port),
            "POSTGRES_USER": pg.user,
            "POSTGRES_PASSWORD": pg.password,
            "POSTGRES_SCHEMA": self.schema,
        }
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        drop_pg_schema(self.schema)

    def expected_factory_class(self) -> type[LedgerPostgresFactory]:
        return LedgerPostgresFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return LedgerPostgresAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return LedgerPostgresApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return PostgresTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return self.TrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return LedgerPostgresProcessRecorder
