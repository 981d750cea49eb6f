"""Scale-out on PostgreSQL (横向扩展): API workers and one process per projection, on one schema.

``ledger serve --workers 2 --no-projections`` takes commands over HTTP while every projection runs
in its own ``python -m projections.worker NAME`` process; once they have caught up, every query
answers exactly what a single-process rebuild of the same log answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import issue_admin_token_for_cli
from bench.generate import generate
from bench.http_load import free_port, wait_until_healthy
from projections import engine, reports
from projections.catalog import NAMES
from projections.queries import Queries
from tests.conftest import fresh_store_url

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 3000
COMMANDS = 40


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from fresh_store_url("postgres", tmp_path)


def answers(url: str) -> dict[str, Any]:
    """Every query type over the whole territory, as plain data."""
    queries = Queries(url)
    try:
        return {
            "scores": queries.scores(2025, "laiwu"),
            "triggers": queries.triggers("open", "laiwu"),
            "quota": queries.quota(2025),
            "quota_deductions": queries.quota_deductions(2025),
            "petitions": queries.petitions("open", unit_id="laiwu"),
            "monthly": queries.monthly("2025-03", known_at=reports.period("monthly", "2025-03")[1]),  # as issued
        }
    finally:
        queries.close()


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env=env, cwd=ROOT)


def test_api_workers_and_projection_processes_match_a_single_process(pg_url: str) -> None:
    generate(pg_url, EVENTS, quiet=True, years=(2025,))
    token = issue_admin_token_for_cli(pg_url)
    env = {**os.environ, "LEDGER_DATABASE_URL": pg_url, "PYTHONPATH": str(ROOT)}
    port = free_port()
    cli = ["-c", "from api.cli import main; main()"]
    processes = [start([*cli, "serve", "--workers", "2", "--no-projections", "--port", str(port)], env)]
    processes += [start(["-m", "projections.worker", name], env) for name in NAMES]  # the current view too
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, 30, alive=lambda: processes[0].poll() is None)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            for i in range(COMMANDS):  # new connections spread the commands over both workers
                body = {
                    "id": f"SCALE-{i:03d}",
                    "unit_id": "fengcheng" if i % 2 else "aishan",
                    "channel": "visit",
                    "petitioner_count": 1,
                    "petitioner": "扩展测试",
                    "subject": "横向扩展",
                    "category": "other",
                }
                assert client.post("/v1/petitions", json=body, headers={"Connection": "close"}).status_code == 201
        head = _head(pg_url)
        assert engine.wait_for(pg_url, head, timeout=60), engine.status(pg_url)
        separate = answers(pg_url)
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait(timeout=20)
    assert all(p.returncode is not None for p in processes)
    engine.rebuild(pg_url)  # one process, from scratch
    single = answers(pg_url)
    assert separate == single
    assert any(single.values())
    assert len(separate["petitions"]) > 0


def _head(url: str) -> int:
    from projections.source import open_log

    log = open_log(url)
    try:
        return int(log.recorder.max_notification_id() or 0)
    finally:
        log.close()
