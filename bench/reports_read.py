"""Report reads (报告读取): how fast a supervisor's ask of an R13 report is answered once the report is kept.

On a store ``bench.generate`` made (the projections are caught up first):

- the periods in progress (today's daily scheduling, this week's report, this month's bulletin): the first ask
  folds the city as of now and keeps the fold (``projections.reports.running``); the next asks read it back;
- the bulletins of ``--issue`` months (folded and kept first if they are not) and every other one already kept:
  each read back as the JSON it was kept as (``reports.issued``) and parsed (``Queries.monthly`` asked as known at
  the month's end, what a Python caller gets of the bulletin as issued);
- with ``--http``, the same periods asked over HTTP with no moment on a uvicorn server (``bench.http_load.server``),
  as a supervisor asks: as known now, the bulletin as issued unless a fact was entered late into its month, else
  the last fold as known later (folded by the untimed first ask); with an unbound token and with a token bound to
  every top-level unit (every row of the answer checked against the territory, none dropped: both answers are the
  same size, printed beside the figures).

This process settles its heap as a server process does (``api.serve_cli.settle_heap``): the parsed figures are
what the HTTP route meets, and the client's parse of an answer is not paced by collections over the bench's own
objects.

The baseline, measured in the same run, is the raw read of the same kept row (one ``SELECT`` of its JSON, as bytes).

Usage: PYTHONPATH=. python -m bench.reports_read --url URL [--issue 2025-01,2025-10] [--rounds 50] [--http]
    [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson

from api.serve_cli import settle_heap
from bench.http_load import server
from bench.stats import percentile
from domain.application import utc_now
from domain.vocabulary import Role
from projections import engine, reports
from projections.catalog import ISSUED, RUNNING
from projections.db import utf8
from projections.queries import Queries

PARAM = {"daily": "date", "weekly": "week", "monthly": "month"}  # each report route's period parameter


def timed(call: Callable[[], Any], rounds: int) -> dict[str, float]:
    took = []
    for _ in range(rounds):
        began = time.perf_counter()
        call()
        took.append(time.perf_counter() - began)
    return {"p50_ms": round(statistics.median(took) * 1000, 2), "p99_ms": round(percentile(took, 99) * 1000, 2)}


def measure(url: str, issue: list[str], rounds: int, http: bool) -> dict[str, Any]:
    engine.catch_up(url)
    settle_heap()
    queries = Queries(url)
    db = queries.db
    try:
        db.execute(f"DELETE FROM {RUNNING}")  # a reused store: the first ask folds
        running: list[dict[str, Any]] = []
        for kind, label in reports.in_progress(utc_now()):
            began = time.perf_counter()
            body = reports.issued(queries, kind, label).body
            first = time.perf_counter() - began
            sql = f"SELECT {db.as_bytes('body')} FROM {RUNNING} WHERE kind = ? AND label = ?"
            running.append(
                {
                    "kind": kind,
                    "label": label,
                    "kb": round(len(body) / 1024),
                    "first_ask_s": round(first, 2),
                    "raw_select": timed(partial(db.query, sql, (kind, label)), rounds),
                    "ask": timed(partial(reports.issued, queries, kind, label), rounds),
                }
            )
        for month in issue:
            reports.issued(queries, "monthly", month)  # folded and kept unless it was
        kept: list[dict[str, Any]] = []
        for (label,) in db.query(f"SELECT label FROM {ISSUED} WHERE kind = 'monthly' ORDER BY label"):
            sql = f"SELECT {db.as_bytes('body')} FROM {ISSUED} WHERE kind = 'monthly' AND label = ?"
            issue_date = reports.period("monthly", label)[1]  # asked as known then: the bulletin as issued
            kept.append(
                {
                    "label": label,
                    "kb": round(len(utf8(db.query(sql, (label,))[0][0])) / 1024),
                    "raw_select": timed(partial(db.query, sql, (label,)), rounds),
                    "ask": timed(partial(reports.issued, queries, "monthly", label), rounds),
                    "parsed": timed(partial(queries.monthly, label, known_at=issue_date), rounds),
                }
            )
        tops = [u for u, rec in queries.known().units.items() if rec.data["parent_id"] is None]
    finally:
        queries.close()
    result: dict[str, Any] = {"rounds": rounds, "running": running, "kept": kept}
    if http:
        asked = [("monthly", k["label"]) for k in kept] + [(r["kind"], r["label"]) for r in running]
        result["http"] = _over_http(url, tops, asked, rounds)
    return result


def _over_http(url: str, tops: list[str], asked: list[tuple[str, str]], rounds: int) -> list[dict[str, Any]]:
    from api.auth import issue_token
    from store.ledger import open_ledger

    ledger = open_ledger(url)
    try:
        tokens = {
            "unbound": issue_token(ledger, "bench-auditor", Role.AUDITOR, actor="bench"),
            "bound": issue_token(ledger, "bench-bound", Role.SUPERVISOR, tops, actor="bench"),
        }
    finally:
        ledger.close()
    found = []
    with server(url) as base, httpx.Client(base_url=base, timeout=120) as client:
        for kind, label in asked:
            row: dict[str, Any] = {"kind": kind, "label": label}
            for name, token in tokens.items():
                headers = {"Authorization": f"Bearer {token}"}

                def ask(h: dict[str, str] = headers, k: str = kind, lb: str = label) -> int:
                    response = client.get(f"/v1/reports/{k}", params={PARAM[k]: lb}, headers=h)
                    response.raise_for_status()
                    orjson.loads(response.content)
                    return len(response.content)

                size = ask()  # a running report may have gone stale since: fold it once, outside the timing
                row[name] = {**timed(ask, rounds), "bytes": size}
            found.append(row)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a store made by bench.generate")
    parser.add_argument("--issue", default="", help="months (YYYY-MM, comma-separated) to fold and keep first")
    parser.add_argument("--rounds", type=int, default=50, help="asks per report")
    parser.add_argument("--http", action="store_true", help="also ask over HTTP (a uvicorn server)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    result = measure(args.url, [m for m in args.issue.split(",") if m], args.rounds, args.http)
    print(f"{result['rounds']} asks each; ms p50 / p99; raw = one SELECT of the kept JSON")
    for r in result["running"]:
        print(f"running {r['kind']} {r['label']} ({r['kb']} KB): first ask (fold) {r['first_ask_s']} s; "
              f"ask {r['ask']['p50_ms']} / {r['ask']['p99_ms']}; raw {r['raw_select']['p50_ms']} / "
              f"{r['raw_select']['p99_ms']}")  # fmt: skip
    for k in result["kept"]:
        print(f"kept monthly {k['label']} ({k['kb']} KB): ask {k['ask']['p50_ms']} / {k['ask']['p99_ms']}; "
              f"parsed {k['parsed']['p50_ms']} / {k['parsed']['p99_ms']}; "
              f"raw {k['raw_select']['p50_ms']} / {k['raw_select']['p99_ms']}")  # fmt: skip
    for h in result.get("http", []):
        print(f"http {h['kind']} {h['label']} ({round(h['unbound']['bytes'] / 1024)} KB): unbound "
              f"{h['unbound']['p50_ms']} / {h['unbound']['p99_ms']}; bound to every top unit "
              f"({round(h['bound']['bytes'] / 1024)} KB) {h['bound']['p50_ms']} / {h['bound']['p99_ms']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
