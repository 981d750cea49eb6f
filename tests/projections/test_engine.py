"""The engine: batches applied exactly once, incremental equals rebuild, crash-safe workers, status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from domain.vocabulary import Channel, ClueSource, EscalationLevel, PetitionCategory, Post, UnitKind, Violation
from projections import current, engine
from projections.catalog import NAMES, PROJECTIONS
from projections.db import Db
from projections.queries import Queries
from projections.worker import Stopping
from tests.projections.conftest import World, at, children, ended

ROOT = Path(__file__).resolve().parents[2]
FACTS = list(PROJECTIONS)


def dump(url: str, names: tuple[str, ...] = tuple(PROJECTIONS)) -> dict[str, list[tuple[Any, ...]]]:
    """Every fact row of the projections, in a stable order."""
    db = Db(url)
    try:
        tables: dict[str, list[tuple[Any, ...]]] = {}
        for p in (PROJECTIONS[n] for n in names):
            tables[p.records_table] = [tuple(r) for r in db.query(f"SELECT * FROM {p.records_table} ORDER BY uuid")]
            tables[p.events_table] = [tuple(r) for r in db.query(f"SELECT * FROM {p.events_table} ORDER BY position")]
        if set(names) == set(PROJECTIONS):  # every projection: the current view's rows too
            rows = db.query(f"SELECT * FROM {current.TABLE}")
            tables[current.TABLE] = sorted((tuple(r) for r in rows), key=repr)
        return tables
    finally:
        db.close()


def answers(url: str) -> dict[str, Any]:
    q = Queries(url)
    try:
        as_of, known_at = at("2024-12-01"), at("2025-06-01")
        return {
            "scores": q.scores(2024, as_of=as_of, known_at=known_at),
            "triggers": q.triggers(as_of=as_of, known_at=known_at),
            "deductions": q.quota_deductions(2024, as_of=as_of, known_at=known_at),
            "quota": q.quota(2024, as_of=as_of, known_at=known_at),
            "petitions": q.petitions(as_of=as_of, known_at=known_at),
            "officers": q.officers(as_of=as_of, known_at=known_at),
            "monthly": q.monthly("2024-03", known_at=known_at),
        }
    finally:
        q.close()


def populate(w: World, n: int = 6) -> None:
    w.do("register_person", "镇长", "kz", Post.PRINCIPAL_LEADER, person_id="kz-head", when="2024-01-01")
    w.do("allocate_quota", "lc", 2024, Decimal(50), when="2024-01-02")
    for i in range(n):
        day = f"2024-03-{i + 1:02d}"
        w.do(
            "report_clue",
            "kz",
            Violation.ILLEGAL_LAND_USE,
            ClueSource.PATROL,
            case_id=f"c{i}",
            area_mu=Decimal(i * 3),
            when=day,
        )
        w.do(
            "register_petition",
            "yl",
            Channel.VISIT,
            i + 1,
            "王五",
            "补偿",
            PetitionCategory.OTHER,
            petition_id=f"x{i}",
            skip_level=i % 2 == 0,
            when=day,
        )
        w.do("take_ownership", f"x{i}", "kz-head", when=day)
        w.do("escalate", f"x{i}", EscalationLevel.CITY, False, when=day)


def indexes(url: str) -> set[str]:
    """The names of the projections' indexes in the database (primary keys aside)."""
    db = Db(url)
    try:
        if db.dialect == "sqlite":
            rows = db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ?", ("proj%",))
        else:
            sql = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexname LIKE ?"
            rows = db.query(sql, ("proj%",))
        return {r[0] for r in rows if not r[0].endswith("_pkey")}
    finally:
        db.close()


def offline_copy(w: World, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'replayed.db'}"
    engine.replay_into(url, w.ledger.iter_log(), batch_size=7)
    return url


def test_incremental_batches_equal_a_rebuild_and_an_offline_replay(world: World, tmp_path: Path) -> None:
    populate(world, 3)
    engine.catch_up(world.url, batch_size=4)
    populate_more = [("register_petition", i) for i in range(3)]
    for _, i in populate_more:
        world.do(
            "register_petition",
            "ys",
            Channel.LETTER,
            9,
            "赵六",
            "集体",
            PetitionCategory.MINING,
            petition_id=f"y{i}",
            when="2024-04-01",
        )
        engine.catch_up(world.url, ["petitions"], batch_size=1)
    engine.catch_up(world.url, batch_size=5)
    incremental, incremental_answers = dump(world.url), answers(world.url)
    assert sum(len(rows) for rows in incremental.values()) > 20
    assert incremental_answers["triggers"]

    indexed = indexes(world.url)
    assert len(indexed) > 6 * len(PROJECTIONS)

    replayed = offline_copy(world, tmp_path)
    assert dump(replayed) == incremental
    assert answers(replayed) == incremental_answers
    assert indexes(replayed) == indexed  # built after the facts, but built

    head = engine.rebuild(world.url, batch_size=1000)
    assert dump(world.url) == incremental and answers(world.url) == incremental_answers
    assert indexes(world.url) == indexed
    assert {s["name"]: s["lag"] for s in engine.status(world.url)} == dict.fromkeys(NAMES, 0)
    assert {s["position"] for s in Queries(world.url).status()} == {head}
    assert engine.wait_for(world.url, head, timeout=0.1)
    assert not engine.wait_for(world.url, head + 1, timeout=0.1)


def test_a_rebuild_stopped_before_its_indexes_are_built_is_finished_by_the_next_worker(world: World) -> None:
    """A rebuild fills the fact tables before indexing them; stopped in between, any worker indexes them."""
    populate(world, 4)
    engine.catch_up(world.url)
    indexed, facts, replies = indexes(world.url), dump(world.url), answers(world.url)

    db = Db(world.url)
    engine.drop(db, list(PROJECTIONS.values()))
    db.close()
    stopped = engine.Follower(world.url, batch_size=10, indexed=False)
    assert stopped.step() == 10
    stopped.close()
    assert not indexed & indexes(world.url) - {f"{current.TABLE}_{n}" for n in ("unit", "at", "seq", "uuid")}

    engine.catch_up(world.url, batch_size=7)
    assert indexes(world.url) == indexed
    assert dump(world.url) == facts and answers(world.url) == replies


def test_a_view_derived_by_an_older_engine_is_derived_afresh_by_the_next_worker_without_new_facts(
    world: World,
) -> None:
    """现状视图 in an older format (an upgrade): the next catch-up derives it afresh, new facts or none, so past
    questions read it again rather than folding until the next command; and the reports kept, folded by the older
    engine, are issued again."""
    from projections import reports
    from projections.catalog import ISSUED

    populate(world, 4)
    engine.catch_up(world.url)
    rows = dump(world.url)[current.TABLE]
    db = Db(world.url)
    try:
        reports.keep(db, "monthly", "2024-01", 1, reports.Kept(b'{"old": "engine"}', b"{}"))
        db.execute(f"UPDATE {current.TABLE} SET at = ? WHERE uuid = ?", (current.FORMAT - 1, current.FORMAT_ROW))
        db.execute(f"DELETE FROM {current.TABLE} WHERE kind = 'quota'")  # rows an older engine kept otherwise
        assert not current.formatted(db)
        engine.catch_up(world.url)
        assert current.formatted(db)
        assert dump(world.url)[current.TABLE] == rows
        assert db.query(f"SELECT * FROM {ISSUED}") == []
        reports.keep(db, "monthly", "2024-01", 1, reports.Kept(b'{"this": "engine"}', b"{}"))
        assert engine.derive_current(db) == 0  # once
        assert len(db.query(f"SELECT * FROM {ISSUED}")) == 1  # and reports kept since stay
    finally:
        db.close()


def test_concurrent_workers_of_one_projection_never_apply_twice(world: World) -> None:
    populate(world, 8)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            engine.catch_up(world.url, ["petitions", "cases"], batch_size=3)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    shared = dump(world.url, ("petitions", "cases"))
    assert len(shared["proj_petitions_events"]) == 16
    engine.rebuild(world.url, ["petitions", "cases"])
    assert dump(world.url, ("petitions", "cases")) == shared


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)  # SQLite has one writer: it waits, by design
def test_a_worker_starting_up_neither_waits_for_nor_blocks_the_batches_being_written(world: World) -> None:
    """A worker starting up set its schema up with ``CREATE … IF NOT EXISTS``, and on PostgreSQL creating an index
    that exists still takes its table's SHARE lock: it waited for the batches another worker was writing and, holding
    one table another worker wanted, deadlocked with it (CI). A store already set up now gets no DDL at all."""
    populate(world, 2)
    engine.catch_up(world.url)
    writing, starting = Db(world.url), Db(world.url)
    tables = [t for p in PROJECTIONS.values() for t in (p.records_table, p.events_table)] + [current.TABLE]
    try:
        with writing.transaction():
            for table in tables:  # what a worker writing a batch (and deriving the view) holds till it commits
                writing.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")
            starting.execute("SET lock_timeout = '5s'")  # else this test would hang where the workers deadlocked
            engine.ensure_schema(starting)
            engine.ensure_schema(starting, view=False)
    finally:
        writing.close()
        starting.close()


def test_a_worker_killed_mid_batch_restarts_to_the_same_views_as_a_rebuild(world: World, tmp_path: Path) -> None:
    populate(world, 8)
    head = world.ledger.recorder.max_notification_id() or 0
    env = {**os.environ, "LEDGER_DATABASE_URL": world.url, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "projections.worker", "--batch-size=10"]
    slow = subprocess.Popen(cmd, env={**env, engine.DELAY_ENV: "0.6"}, cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and min(engine.positions(Db(world.url), FACTS).values()) < 10:
            time.sleep(0.05)
        time.sleep(0.3)  # now inside the second batch's transaction, sleeping before its commit
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.wait()
    survived = engine.positions(Db(world.url), FACTS)
    assert set(survived.values()) == {10}, "a killed batch must leave no trace"
    worker = subprocess.Popen(cmd, env=env, cwd=ROOT)
    try:
        assert engine.wait_for(world.url, head, timeout=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0
    assert dump(world.url) == dump(offline_copy(world, tmp_path))


def test_a_worker_keeps_following_through_rebuilds_in_another_process(world: World) -> None:
    """`ledger projections rebuild` drops the tables a worker on another host is writing to and makes them again:
    the worker, finding them gone in between, follows anew rather than ending with a traceback, and applies what
    is recorded after."""
    populate(world, 4)
    env = {**os.environ, "LEDGER_DATABASE_URL": world.url, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "projections.worker"], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    try:
        assert engine.wait_for(world.url, world.ledger.recorder.max_notification_id() or 0, timeout=30)
        for _ in range(4):
            engine.rebuild(world.url)
            time.sleep(0.2)
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        head = world.do("register_unit", "rebuilt", "重建镇", UnitKind.TOWNSHIP, "lc", when="2024-06-01").position
        assert engine.wait_for(world.url, head, timeout=30)  # only the worker applies it
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=20)
    assert worker.returncode == 0 and "Traceback" not in err, err


def test_a_worker_started_wrong_says_so_in_one_line_and_makes_nothing(world: World, tmp_path: Path) -> None:
    """The projection host's command fails as `ledger projections run` does: a missing store (not created by
    connecting to it), an unknown projection or a bad option is one `ledger:` line and exit 2."""
    missing = tmp_path / "none.db"
    for url, args, words in (
        (f"sqlite:///{missing}", [], "ledger init"),
        (world.url, ["nosuch"], "unknown projection 'nosuch'"),
        (world.url, ["--batch-size=many"], "many"),
    ):
        env = {**os.environ, "LEDGER_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "projections.worker", *args], env=env, cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 2 and done.stderr.startswith("ledger: ") and words in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1
    assert not missing.exists()


def test_a_killed_worker_leaves_no_issuing_process_behind(world: World) -> None:
    """The worker folds reports in a process of its own (``reports.Bulletins``); killed with SIGKILL, the worker
    never shuts it down, so that process ends by itself instead of waiting for a next step for ever."""
    populate(world, 2)  # a history: reports to back-issue, so the issuing process is started
    env = {**os.environ, "LEDGER_DATABASE_URL": world.url, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([sys.executable, "-m", "projections.worker"], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not (steps := children(worker.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert steps, "the worker started no issuing process"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert ended(steps)


def test_ctrl_c_stops_the_worker_and_its_issuing_process_quietly(world: World) -> None:
    """Ctrl-C reaches the whole process group: the worker stops (exit 0) and closes the issuing process, which
    ignores it rather than dying with a traceback mid-fold."""
    populate(world, 2)
    env = {**os.environ, "LEDGER_DATABASE_URL": world.url, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "projections.worker"]
    worker = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (steps := children(worker.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the issuing process is up and has taken its first step
        os.killpg(worker.pid, signal.SIGINT)
        _, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err
    assert steps and ended(steps)


def test_the_workers_stop_is_set_by_a_signal_in_the_midst_of_its_wait() -> None:
    """SIGTERM is handled in the worker's main thread, which spends its idle time in ``stop.wait``: the stop is a
    flag and a sleep, so the handler setting it takes no lock the wait holds (a ``threading.Event`` did, and a
    worker hung for good on SIGTERM); a wait cut by the signal reports it set, one that times out does not."""
    stop = Stopping()
    assert stop.wait(0.01) is False and not stop.is_set()
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: stop.set())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        began = time.monotonic()
        assert stop.wait(0.5) is True and stop.is_set()
        assert time.monotonic() - began < 1
        assert stop.wait(30) is True  # set: no sleep at all
        assert time.monotonic() - began < 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
