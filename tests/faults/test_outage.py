"""Store outage (存储故障): answers are 503 problem details with Retry-After, in bounded time.

PostgreSQL is made unreachable for the server under test only — it reaches the database
through a TCP proxy the test cuts and restores (the shared PostgreSQL keeps running). SQLite is
locked by another writer, or read-only. Service resumes by itself; nothing acknowledged is lost.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from eventsourcing.persistence import OperationalError
from fastapi.testclient import TestClient

from api.app import create_app
from domain.application import Ledger
from tests.conftest import fresh_store_url
from tests.faults.conftest import Proxy, Server, auth, head, petition, seed
from tests.faults.conftest import seed_ledger as seed_in

#: The longest an answer may take while the store is away (timeouts of 2 s, retry budget 1 s).
BOUND = 12.0
TIMEOUTS = {
    "POSTGRES_CONNECT_TIMEOUT": "2",
    "POSTGRES_POOL_TIMEOUT": "2",
    "LEDGER_STORE_RETRY_SECONDS": "1",
    "SQLITE_LOCK_TIMEOUT": "1",
}


def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_unavailable(r: httpx.Response, elapsed: float) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) > 0
    assert elapsed < BOUND, f"answered after {elapsed:.1f} s"


@pytest.fixture
def pg_url(tmp_path: Path) -> Any:
    yield from fresh_store_url("postgres", tmp_path)


def test_postgres_unreachable_answers_503_and_recovers_by_itself(
    pg_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    tokens = seed(pg_url)
    parts = urlsplit(pg_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    server = Server(proxied, tmp_path / "server.log", env=TIMEOUTS)
    servers.append(server)
    server.start()
    clerk, supervisor = auth(tokens["clerk"]), auth(tokens["supervisor"])
    acked: list[dict[str, Any]] = []
    try:
        with httpx.Client(base_url=server.base, timeout=BOUND + 10) as http:
            r = http.post("/v1/petitions", json=petition("before"), headers=clerk)
            assert r.status_code == 201, r.text
            acked.append(r.json())

            proxy.cut()
            for i in range(3):
                headers = {**clerk, "Idempotency-Key": f"outage-{i}"}
                body = petition(f"during-{i}")
                r, elapsed = timed(lambda: http.post("/v1/petitions", json=body, headers=headers))  # noqa: B023
                if r.is_success:  # only possible if it got through before the cut took hold
                    acked.append(r.json())
                else:
                    assert_unavailable(r, elapsed)
                assert "store" in r.json().get("detail", "store")
                assert_unavailable(*timed(lambda: http.get("/v1/petitions/before", headers=supervisor)))
                assert_unavailable(*timed(lambda: http.get("/v1/petitions", headers=supervisor)))
            r, elapsed = timed(lambda: http.get("/healthz"))
            assert_unavailable(r, elapsed)
            assert "unreachable" in r.json()["detail"]

            proxy.restore()
            deadline = time.monotonic() + 60
            while True:
                r = http.post("/v1/petitions", json=petition("after"), headers=clerk)
                if r.status_code == 201:
                    acked.append(r.json())
                    break
                assert r.status_code == 503 and time.monotonic() < deadline, r.text
                time.sleep(0.5)
            assert http.get("/healthz").status_code == 200
            while True:  # the projection worker restarts by itself (with growing pauses, at most 10 s)
                seen = {**supervisor, "X-Ledger-Position": str(acked[-1]["position"])}
                board = http.get("/v1/petitions", headers=seen)
                assert board.status_code == 200, board.text
                if board.json()["lag"] == 0:
                    break
                assert time.monotonic() < deadline, board.text
                time.sleep(0.5)
            assert {"before", "after"} <= {row["id"] for row in board.json()["items"]}
    finally:
        proxy.close()
    log = {p for p, _ in _log(pg_url)}
    assert {a["position"] for a in acked} <= log
    assert "Traceback" not in server.log()


def _log(url: str) -> list[tuple[int, Any]]:
    from store.ledger import open_ledger

    ledger = open_ledger(url)
    try:
        return list(ledger.iter_log())
    finally:
        ledger.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Any:
    yield from fresh_store_url("sqlite", tmp_path)


def test_sqlite_locked_by_another_writer_answers_503_then_serves(
    sqlite_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    tokens = seed(sqlite_url)
    server = Server(sqlite_url, tmp_path / "server.log", env=TIMEOUTS)
    servers.append(server)
    server.start()
    clerk, supervisor = auth(tokens["clerk"]), auth(tokens["supervisor"])
    before = head(sqlite_url)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        with httpx.Client(base_url=server.base, timeout=BOUND + 10) as http:
            r, elapsed = timed(lambda: http.post("/v1/petitions", json=petition("locked"), headers=clerk))
            assert_unavailable(r, elapsed)
            assert "locked" in r.json()["detail"]
            assert http.get("/v1/units/t1", headers=supervisor).status_code == 200  # reads go on (WAL)
            holder.execute("ROLLBACK")
            r = http.post("/v1/petitions", json=petition("unlocked"), headers=clerk)
            assert r.status_code == 201, r.text
    finally:
        holder.close()
    assert head(sqlite_url) == before + 1
    assert "Traceback" not in server.log()


def test_sqlite_read_only_answers_503_and_records_nothing(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file turned read-only under the server (a full disk, a remount): commands get 503."""
    from store.ledger import open_ledger

    ledger: Ledger = open_ledger(sqlite_url)
    try:
        tokens = seed_in(ledger)
        before = ledger.recorder.max_notification_id()
        datastore: Any = ledger.recorder.datastore  # type: ignore[attr-defined]
        original = datastore.transaction

        def read_only(*, commit: bool = False) -> Any:
            if commit:
                raise OperationalError("attempt to write a readonly database") from sqlite3.OperationalError(
                    "attempt to write a readonly database"
                )
            return original(commit=commit)

        monkeypatch.setattr(datastore, "transaction", read_only)
        with TestClient(create_app(sqlite_url, ledger=ledger)) as client:
            r = client.post("/v1/petitions", json=petition("ro"), headers=auth(tokens["clerk"]))
            assert r.status_code == 503 and int(r.headers["retry-after"]) > 0, r.text
            assert "readonly" in r.json()["detail"]
        assert ledger.recorder.max_notification_id() == before
    finally:
        ledger.close()
