"""`ledger serve` as a real uvicorn process on each store: a command and a query over TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from api.auth import issue_token
from domain.vocabulary import Role, UnitKind
from store.ledger import open_ledger
from tests.api.conftest import petition_body

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ledger_serve_answers_a_command_and_a_query(store_url: str) -> None:
    url = store_url
    ledger = open_ledger(url)
    try:
        ledger.register_unit("laiwu", "莱芜市", UnitKind.CITY, None, actor="setup")
        ledger.register_unit("t1", "口镇", UnitKind.DISTRICT, "laiwu", actor="setup")
        clerk = issue_token(ledger, "clerk-1", Role.CLERK, actor="setup")
        supervisor = issue_token(ledger, "sup-1", Role.SUPERVISOR, actor="setup")
    finally:
        ledger.close()
    port = free_port()
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    code = "from api.cli import main; main()"
    server = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        body = petition_body(id="x1", occurred_at=None)
        made = httpx.post(f"{base}/v1/petitions", json=body, headers={"Authorization": f"Bearer {clerk}"})
        assert made.status_code == 201, made.text
        board = httpx.get(
            f"{base}/v1/petitions",
            headers={"Authorization": f"Bearer {supervisor}", "X-Ledger-Position": str(made.json()["position"])},
        )
        assert board.status_code == 200, board.text
        assert board.json()["lag"] == 0 and [row["id"] for row in board.json()["items"]] == ["x1"]
    finally:
        server.terminate()
        server.wait(timeout=10)
