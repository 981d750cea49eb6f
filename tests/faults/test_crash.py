"""Crash under load (断电): SIGKILL a serving ledger at random moments while clients write.

Several client threads send commands, each with its own Idempotency-Key. The server is killed
with SIGKILL at a random moment, restarted, killed again, … Finally every command whose answer
never arrived is retried with the same key. Then: every acknowledged (2xx) command is in the log
exactly once (and nothing else is), ``ledger verify`` passes, and the projections the server
caught up equal a clean rebuild. On both stores.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from projections import engine
from projections.catalog import PROJECTIONS
from projections.db import Db
from store.ledger import open_ledger
from tests.faults.conftest import LONG, ROOT, Server, auth, head, petition, seed

CLIENTS = 3
KILLS = 6 if LONG else 2


@dataclass
class Command:
    key: str
    path: str
    body: dict[str, Any]


@dataclass
class Book:
    """What the clients know: answered commands (by key) and commands whose fate is unknown."""

    acked: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: dict[str, Command] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def commands(client: int, start: int) -> Any:
    """A client's endless stream: new petitions, and trainings on one shared person (contention)."""
    i = start
    while True:
        if i % 2:
            yield Command(f"c{client}-{i}", "/v1/people/leader1/trainings", {"course": f"course {client}-{i}"})
        else:
            yield Command(f"c{client}-{i}", "/v1/petitions", petition(f"p{client}-{i}"))
        i += 1


def send(http: httpx.Client, base: str, token: str, cmd: Command, book: Book) -> bool:
    """Send once; False if the server is gone (the command stays pending)."""
    with book.lock:
        book.pending[cmd.key] = cmd
    try:
        r = http.post(base + cmd.path, json=cmd.body, headers=auth(token, **{"Idempotency-Key": cmd.key}), timeout=10)
    except httpx.TransportError:
        return False
    with book.lock:
        if r.is_success:
            book.acked[cmd.key] = r.json()
            del book.pending[cmd.key]
        elif r.status_code >= 500:
            return False
        else:
            book.refused.append(f"{cmd.key}: {r.status_code} {r.text}")
            del book.pending[cmd.key]
    return True


def drive(base: str, token: str, book: Book, stop: threading.Event, start: int) -> list[threading.Thread]:
    def client(n: int) -> None:
        with httpx.Client() as http:
            for cmd in commands(n, start):
                if stop.is_set() or not send(http, base, token, cmd, book):
                    return

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    return threads


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    db = Db(url)
    try:
        return {
            table: sorted((tuple(map(str, row)) for row in db.query(f"SELECT * FROM {table}")), key=repr)
            for p in PROJECTIONS.values()
            for table in (p.records_table, p.events_table)
        }
    finally:
        db.close()


def test_acknowledged_commands_survive_sigkill_exactly_once(store_url: str, tmp_path: Path) -> None:
    tokens = seed(store_url)
    setup_head = head(store_url)
    book = Book()
    rng = random.Random(os.environ.get("LEDGER_FAULTS_SEED"))
    for round_ in range(KILLS):
        server = Server(store_url, tmp_path / "server.log").start()
        stop = threading.Event()
        threads = drive(server.base, tokens["admin"], book, stop, round_ * 100_000)
        time.sleep(rng.uniform(0.3, 1.5))  # the kill point
        server.kill()
        stop.set()
        for t in threads:
            t.join(timeout=15)
        server.stop()
    assert book.acked, "no command was acknowledged before the kills"

    server = Server(store_url, tmp_path / "server.log").start()
    try:
        with httpx.Client() as http:
            for cmd in list(book.pending.values()):  # the client's retry with the same key
                assert send(http, server.base, tokens["admin"], cmd, book)
        assert not book.pending and not book.refused, (book.pending, book.refused)
        deadline = time.monotonic() + 60
        while min(p["position"] for p in engine.status(store_url)) < head(store_url):
            assert time.monotonic() < deadline, engine.status(store_url)
            time.sleep(0.1)
    finally:
        server.stop()

    ledger = open_ledger(store_url)
    try:
        recorded = {position: event for position, event in ledger.iter_log(setup_head + 1)}
    finally:
        ledger.close()
    acked_positions = [receipt["position"] for receipt in book.acked.values()]
    assert len(acked_positions) == len(set(acked_positions)), "two commands answered with one position"
    assert set(recorded) == set(acked_positions), "the log holds exactly the acknowledged commands"
    for receipt in book.acked.values():
        event = recorded[receipt["position"]]
        assert event.originator_version == receipt["version"]
    env = {**os.environ, "LEDGER_DATABASE_URL": store_url, "PYTHONPATH": str(ROOT)}
    verified = subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", "verify", "--quiet"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    caught_up = snapshot(store_url)
    engine.rebuild(store_url)
    assert snapshot(store_url) == caught_up
