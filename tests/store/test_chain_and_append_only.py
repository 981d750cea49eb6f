"""Hash chain (哈希链), append-only tables (只追加) and idempotency keys (幂等键)
through a real eventsourcing Application, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import InfrastructureFactory, IntegrityError, StoredEvent
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier

from audit.chain import GENESIS, event_hash, leaf_hash, originator_id_text
from store import config
from store.recorders import (
    LedgerPostgresApplicationRecorder,
    LedgerSQLiteApplicationRecorder,
)

PG_URL = os.environ.get("LEDGER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

Recorder = LedgerSQLiteApplicationRecorder | LedgerPostgresApplicationRecorder


class Parcel(Aggregate):
    """A land parcel (地块) whose use is reviewed: just enough to make events."""

    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name
        self.reviews: list[str] = []

    @event("Reviewed")
    def review(self, finding: str) -> None:
        self.reviews.append(finding)


class Ledger(Application[UUID]):
    """Named like the real application, so tables get the real names."""


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an initialised, empty store of its own."""
    schema = f"ledger_test_{uuid4().hex[:16]}"
    store_url = f"sqlite:///{tmp_path}/ledger.db" if request.param == "sqlite" else f"{PG_URL}?schema={schema}"
    config.create_schema(store_url)
    yield store_url
    if request.param == "postgres":
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(SQL("DROP SCHEMA {0} CASCADE").format(Identifier(schema)))


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    app = Ledger(env=config.persistence_environment(url))
    yield app
    app.close()


def recorder_of(app: Application[UUID]) -> Recorder:
    recorder = app.recorder
    assert isinstance(recorder, (LedgerSQLiteApplicationRecorder, LedgerPostgresApplicationRecorder))
    return recorder


def expected_chain(recorder: Recorder) -> list[tuple[int, bytes, bytes]]:
    """The chain recomputed from the stored events alone."""
    rows, prev = [], GENESIS
    for n in recorder.select_notifications(None, 10**6):
        fields = (
            n.id,
            originator_id_text(n.originator_id),
            n.originator_version,
            n.topic,
            n.state,
        )
        prev = event_hash(prev, *fields)
        rows.append((n.id, prev, leaf_hash(*fields)))
    return rows


def stored_chain(recorder: Recorder) -> list[tuple[int, bytes, bytes]]:
    return [(r.position, r.hash, r.leaf) for r in recorder.read_chain(0, 10**6)]


def test_hashes_chain_over_several_saves(ledger: Ledger) -> None:
    north = Parcel("北区 3号地块")
    ledger.save(north)
    north.review("未批先建")
    north.review("已整改")
    south = Parcel("南区 7号地块")
    recordings = ledger.save(north, south)  # one save, three events
    south.review("占用耕地")
    ledger.save(south)

    recorder = recorder_of(ledger)
    chain = stored_chain(recorder)
    assert len(chain) == 5
    assert chain == expected_chain(recorder)
    assert [r.notification.id for r in recordings] == [p for p, _, _ in chain[1:4]]
    assert len({h for _, h, _ in chain}) == 5


def test_reading_the_chain_in_pages(ledger: Ledger) -> None:
    for i in range(7):
        ledger.save(Parcel(f"地块 {i}"))
    recorder = recorder_of(ledger)
    first, second = recorder.read_chain(1, 4), recorder.read_chain(5, 4)
    assert [r.position for r in first + second] == list(range(1, 8))
    assert recorder.read_chain(8, 4) == []


def _raw_sql(url: str) -> Callable[[str], None]:
    """Run SQL on the store directly, as someone with database access could."""
    parsed = config.parse(url)
    if isinstance(parsed, config.SQLiteURL):

        def run_sqlite(statement: str) -> None:
            with sqlite3.connect(parsed.path) as conn:
                conn.execute(statement)

        return run_sqlite

    def run_postgres(statement: str) -> None:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {parsed.schema}")
            conn.execute(statement)

    return run_postgres


def test_direct_update_and_delete_fail(url: str, ledger: Ledger) -> None:
    ledger.save(Parcel("西区 1号地块"), idempotency_key="import-2025-001")
    recorder = recorder_of(ledger)
    events = recorder.events_table_name
    statements = [
        f"UPDATE {events} SET topic = 'forged'",
        f"DELETE FROM {events}",
        f"UPDATE {recorder.hashes_table_name} SET hash = leaf",
        f"DELETE FROM {recorder.hashes_table_name}",
        f"DELETE FROM {recorder.idempotency_table_name}",
    ]
    if url.startswith("postgresql"):
        statements += [f"TRUNCATE {events}", f"TRUNCATE {recorder.hashes_table_name}"]
    before = stored_chain(recorder)
    run = _raw_sql(url)
    for statement in statements:
        with pytest.raises(Exception, match="ledger is append-only"):
            run(statement)
    assert stored_chain(recorder) == before == expected_chain(recorder)
    assert recorder.idempotent_result("import-2025-001") == [1]


def test_duplicate_idempotency_key_rolls_back_the_second_save(ledger: Ledger) -> None:
    first = Parcel("东区 5号地块")
    recordings = ledger.save(first, idempotency_key="petition-42")
    recorder = recorder_of(ledger)
    before = stored_chain(recorder)

    second = Parcel("东区 6号地块")
    second.review("重复提交")
    with pytest.raises(IntegrityError):
        ledger.save(second, idempotency_key="petition-42")

    with pytest.raises(AggregateNotFoundError):
        ledger.repository.get(second.id)
    assert recorder.max_notification_id() == recordings[-1].notification.id
    assert stored_chain(recorder) == before
    assert recorder.idempotent_result("petition-42") == [r.notification.id for r in recordings]
    assert recorder.idempotent_result("petition-43") is None

    # The chain goes on from the last kept row (PostgreSQL skips the ids the
    # rolled back save consumed).
    third = Parcel("东区 7号地块")
    ledger.save(third, idempotency_key="petition-43")
    assert stored_chain(recorder) == expected_chain(recorder)
    assert len(stored_chain(recorder)) == 2


def test_writers_in_separate_pools_keep_one_chain(url: str) -> None:
    # Each Application has its own connection pool, like separate processes.
    apps = [Ledger(env=config.persistence_environment(url)) for _ in range(3)]

    def write(app: Ledger) -> None:
        for i in range(15):
            parcels = [Parcel(f"地块 {i}-{j}") for j in range(3)]
            app.save(*parcels)

    try:
        with ThreadPoolExecutor(max_workers=len(apps)) as pool:
            for future in [pool.submit(write, app) for app in apps]:
                future.result()
        recorder = recorder_of(apps[0])
        assert len(stored_chain(recorder)) == 3 * 15 * 3
        assert stored_chain(recorder) == expected_chain(recorder)
    finally:
        for app in apps:
            app.close()


@pytest.mark.parametrize("id_type", ["uuid", "text"])
def test_originator_ids_are_hashed_as_read_back(url: str, id_type: str) -> None:
    # A UUID given as str comes back as a UUID from a uuid column; a UUID object
    # comes back as hex from a text column. The chain must hash what comes back.
    env = config.persistence_environment(url)
    env |= {"ORIGINATOR_ID_TYPE": id_type, "CREATE_TABLE": "y"}
    factory = InfrastructureFactory.construct(Environment(f"ids_{id_type}", env))
    try:
        recorder = factory.application_recorder()
        assert isinstance(
            recorder,
            (LedgerSQLiteApplicationRecorder, LedgerPostgresApplicationRecorder),
        )
        recorder.insert_events(
            [
                StoredEvent(uuid4(), 1, "topic", b"a"),
                StoredEvent(str(uuid4()), 1, "topic", b"b"),
            ]
        )
        assert len(stored_chain(recorder)) == 2
        assert stored_chain(recorder) == expected_chain(recorder)
    finally:
        factory.close()
