"""HTTP load (HTTP 压测): throughput and p50/p99 of commands and queries vs a bare endpoint.

The API runs in its own uvicorn process(es) on loopback (``bench.http_app``: the product's app plus
``/bench/noop``); an asyncio load generator with ``concurrency`` connections sends requests for
``seconds`` per scenario. On a 2-core machine the generator and the server share the cores:
the ratio to the noop row matters more than the absolute figures.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from api.auth import issue_admin_token_for_cli
from bench.stats import percentile

Request = Callable[[], tuple[str, str, dict[str, Any] | None]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_healthy(base: str, seconds: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll ``/healthz`` until it answers 200; RuntimeError after ``seconds`` or once ``alive()`` is false."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server at {base} did not start")
        time.sleep(0.2)


@contextmanager
def server(url: str, workers: int = 1) -> Iterator[str]:
    """The bench app on a free loopback port until the block ends; its base URL."""
    port = free_port()
    env = {**os.environ, "LEDGER_DATABASE_URL": url}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "bench.http_app:app_from_env", "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--workers", str(workers), "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, 60, alive=lambda: proc.poll() is None)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)


async def _load(base: str, token: str, make: Request, seconds: float, concurrency: int) -> dict[str, float]:
    samples: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        end = time.perf_counter() + seconds

        async def user() -> None:
            nonlocal errors
            while time.perf_counter() < end:
                method, path, body = make()
                began = time.perf_counter()
                response = await client.request(method, path, json=body)
                samples.append((time.perf_counter() - began) * 1000)
                errors += response.status_code >= 400

        began = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        took = time.perf_counter() - began
    return {
        "requests": len(samples),
        "errors": errors,
        "rps": round(len(samples) / took, 1),
        "p50_ms": round(percentile(samples, 50), 2),
        "p99_ms": round(percentile(samples, 99), 2),
    }


def scenarios(territories: int, seed: int = 11) -> dict[str, Request]:
    """noop (baseline), a query (scores of a random district) and a command (register a petition)."""
    rng = random.Random(seed)

    def district() -> str:
        copy = rng.randrange(territories)
        return rng.choice(("laicheng", "gangcheng")) + ("" if copy == 0 else f"-c{copy}")

    numbers = itertools.count(1)  # one id per petition across warm-up and run

    def petition() -> tuple[str, str, dict[str, Any]]:
        body = {
            "id": f"HTTP-{seed}-{next(numbers):07d}",
            "unit_id": "fengcheng",
            "channel": "visit",
            "petitioner_count": 1,
            "petitioner": "压测",
            "subject": "压测信访",
            "category": "other",
        }
        return "POST", "/v1/petitions", body

    return {
        "noop": lambda: ("GET", "/bench/noop", None),
        "query scores": lambda: ("GET", f"/v1/scores?year=2025&unit_id={district()}", None),
        "command petition": petition,
    }


def http_bench(url: str, territories: int, seconds: float, concurrency: int = 8) -> dict[str, dict[str, float]]:
    """Each scenario's throughput and latency, on one server process."""
    token = issue_admin_token_for_cli(url)
    results: dict[str, dict[str, float]] = {}
    with server(url) as base:
        for name, make in scenarios(territories).items():
            asyncio.run(_load(base, token, make, min(2.0, seconds), concurrency))  # warm up
            results[name] = asyncio.run(_load(base, token, make, seconds, concurrency))
    return results
