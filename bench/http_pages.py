"""A list read page by page over HTTP (分页压测): every page of a list, each asked after the last one's ``next_after``.

A supervisor's screen reads a long list a page at a time; this walks the whole list that way ``--rounds`` times on
one server process (``bench.http_app`` over the store at ``--url``, a client on the same host, one connection) and
prints per round the pages, their p50 / p90 / max latency and the largest answer's size, against the bare
``/bench/noop`` route asked as often in the same run (the server's and the client's own cost). The server runs
no projection worker: catch the store up first (``projections.engine.catch_up(URL)``), as ``bench.generate`` does
not.

Usage: python -m bench.http_pages --url URL [--path /v1/scores] [--param year=2025] [--limit 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx

from api.auth import issue_admin_token_for_cli
from bench.http_load import server
from bench.stats import percentile


def walk(client: httpx.Client, path: str, params: dict[str, Any], limit: int) -> tuple[list[float], list[int]]:
    """Every page of the list at ``path``: each page's latency (ms) and size (bytes)."""
    took: list[float] = []
    sizes: list[int] = []
    after = None
    while True:
        asked = {**params, "limit": limit} | ({} if after is None else {"after": after})
        began = time.perf_counter()
        answer = client.get(path, params=asked)
        took.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
        sizes.append(len(answer.content))
        after = answer.json()["next_after"]
        if after is None:
            return took, sizes


def noop(client: httpx.Client, times: int) -> list[float]:
    took = []
    for _ in range(times):
        began = time.perf_counter()
        client.get("/bench/noop").raise_for_status()
        took.append((time.perf_counter() - began) * 1000)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the store (made by bench.generate)")
    parser.add_argument("--path", default="/v1/scores")
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE, a query parameter of every page")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    params = dict(p.split("=", 1) for p in args.param) or ({"year": "2025"} if args.path == "/v1/scores" else {})
    token = issue_admin_token_for_cli(args.url)
    with server(args.url) as base, httpx.Client(base_url=base, timeout=120) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        for round_ in range(1, args.rounds + 1):
            took, sizes = walk(client, args.path, params, args.limit)
            bare = noop(client, len(took))
            print(
                f"round {round_}: {len(took)} pages of {args.path} (limit {args.limit}), "
                f"p50 {percentile(took, 50):.1f} p90 {percentile(took, 90):.1f} max {max(took):.1f} ms, "
                f"largest {max(sizes):,} bytes; noop p50 {percentile(bare, 50):.2f} ms "
                f"(pages / noop {percentile(took, 50) / percentile(bare, 50):.1f}x)"
            )


if __name__ == "__main__":
    main()
