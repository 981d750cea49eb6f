"""Fault-test helpers: real ``ledger serve`` processes, a cuttable TCP proxy, a seeded store.

Everything listens on loopback only; every wait is bounded in count and time.
``LEDGER_FAULTS_LONG=1`` runs more kill points and more generated examples.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from api.auth import issue_token
from domain.application import Ledger
from domain.vocabulary import Post, Role, UnitKind
from store.ledger import open_ledger
from tests.api.conftest import OPENED

ROOT = Path(__file__).resolve().parents[2]
LONG = os.environ.get("LEDGER_FAULTS_LONG") == "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str) -> dict[str, str]:
    """A city with one district and township, a leader, and a token per role; answers the tokens."""
    ledger = open_ledger(url)
    try:
        return seed_ledger(ledger)
    finally:
        ledger.close()


def seed_ledger(ledger: Ledger) -> dict[str, str]:
    ledger.register_unit("laiwu", "莱芜市", UnitKind.CITY, None, actor="setup", occurred_at=OPENED)
    ledger.register_unit("d1", "莱城区", UnitKind.DISTRICT, "laiwu", actor="setup", occurred_at=OPENED)
    ledger.register_unit("t1", "口镇", UnitKind.TOWNSHIP, "d1", actor="setup", occurred_at=OPENED)
    ledger.register_person(
        "张书记", "t1", Post.PRINCIPAL_LEADER, person_id="leader1", actor="setup", occurred_at=OPENED
    )
    return {role.value: issue_token(ledger, f"{role.value}-1", role, actor="setup") for role in Role}


class Server:
    """One ``ledger serve`` subprocess on a loopback port, its output captured to a file."""

    def __init__(self, url: str, log_path: Path, *, env: dict[str, str] | None = None, projections: bool = True):
        self.url = url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {**os.environ, "LEDGER_DATABASE_URL": url, "PYTHONPATH": str(ROOT), **(env or {})}
        self.projections = projections
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Server:
        args = [sys.executable, "-c", "from api.cli import main; main()", "serve", "--port", str(self.port)]
        if not self.projections:
            args.append("--no-projections")
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            with suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise AssertionError(f"server did not come up:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a power cut."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """Servers a test starts; all stopped afterwards."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


class Proxy:
    """A TCP forwarder on a loopback port in front of PostgreSQL that a test can cut and restore.

    ``cut()`` closes every forwarded connection and answers new ones by closing them at once:
    to the server under test the database has gone away. Only this server is affected.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.up = True
        self.closed = False
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="proxy").start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for s in (source, sink):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.sockets:
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with suppress(OSError):
                    s.close()
            self.sockets.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def head(url: str) -> int:
    ledger = open_ledger(url)
    try:
        return int(ledger.recorder.max_notification_id() or 0)
    finally:
        ledger.close()


def petition(pid: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": pid,
        "unit_id": "t1",
        "channel": "visit",
        "petitioner_count": 1,
        "petitioner": "赵大娘",
        "subject": "征地补偿未到位",
        "category": "compensation",
        "occurred_at": "2024-03-01T09:00:00+08:00",
    }
    body.update(overrides)
    return body
