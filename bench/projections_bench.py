"""Projection speed (投影性能), measured in one run per store.

Prints, per store:
- the raw rate (events/s) of reading the log in batches and decoding every event, and the rate
  of a full rebuild of all projections over the same events, and their ratio (goal >= 25%);
- p50/p99 latency of each projection query with realistic arguments (goal p99 <= 20 ms at 1M):
  questions about now (read from the current view) and, marked ``as_of``, historical ones as known now
  (the view's rows of records no later fact revises, plus a fold of the others); marked ``known_at``, as
  known at a past moment (the same, also folding the records with facts recorded after it).

The store is a realistic history made through the domain layer: the Laiwu demo year
(``api.demo.demo_plan``) copied once per neighbouring "city", each copy from its own seed and with
its record ids suffixed, merged into one log by recording time, run through an in-memory
:class:`~domain.application.Ledger` and written to the store in big ``ledger.save`` batches.
The store lives in a temporary directory (SQLite) or a temporary schema (PostgreSQL), dropped after.

Usage: PYTHONPATH=. python bench/projections_bench.py [--store sqlite|postgres|both] [--events N]
       [--calls C] [--query-seconds S] [--json FILE] [--keep DIR | --reuse DIR | --url URL]

``--keep DIR`` builds the SQLite store in ``DIR`` (``ledger.db`` and ``keys/``) and leaves it there;
``--reuse DIR`` measures a store kept that way without building it again (a 1M build takes minutes).
``--url URL`` measures a store ``bench.generate`` made (``bench.run``'s history, kept), on either store.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from api.demo import ADMIN, YEAR, Step, demo_plan
from api.serve_cli import settle_heap
from domain.application import Ledger, utc_now
from domain.base import BUREAU_TZ
from domain.personal import DryRunVault
from domain.policy import Policy
from projections import engine, paging, reports
from projections.catalog import ISSUED
from projections.queries import CURSORS, Queries
from projections.source import open_log
from store.ledger import init_store, open_ledger

PG_URL = os.environ.get("LEDGER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
#: Step arguments that name a record: suffixed per copy so each copy is a territory of its own.
ID_ARGS = frozenset(
    {
        "unit_id", "parent_id", "person_id", "case_id", "petition_id", "leader_id", "handler_ids",
        "resolver_id", "to_unit_id", "by_unit_id", "issuer_unit_id", "responsible_unit_id", "repeat_of",
    }
)  # fmt: skip
SAVE_BATCH = 2000
READ_BATCH = 1000
DISTRICTS = ("laicheng", "gangcheng")
#: Rows per page of the paged city-wide lists (quota, quota deductions), each page starting at a random district.
PAGE = 20
#: Rows per page of the long city-wide lists (triggers, the petition board, officers, scores).
LIST_PAGE = 100
#: Officers of the demo with a misconduct report ``r1``: their R7 trigger ids, looked up one at a time.
OFFICERS = ("gaozhuang-station-officer", "niuquan-station-officer", "wenyuan-station-officer")


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(YEAR, 1, 1, tzinfo=BUREAU_TZ)

    def __call__(self) -> datetime:
        return self.now


def suffix(copy: int) -> str:
    return "" if copy == 0 else f"-c{copy}"


def copy_plan(copy: int) -> list[Step]:
    """The demo year from seed ``YEAR + copy``, every record id suffixed (one policy amendment only, in copy 0)."""
    tail = suffix(copy)

    def rename(value: Any) -> Any:
        if isinstance(value, str):
            return value + tail
        if isinstance(value, list):
            return [v + tail for v in value]
        return value

    steps = []
    for step in demo_plan(YEAR + copy):
        if step.method == "amend_policy" and copy:
            continue
        kwargs = {k: rename(v) if k in ID_ARGS else v for k, v in step.kwargs.items()}
        steps.append(Step(step.method, kwargs, step.occurred_at, step.recorded_at))
    return steps


def build_store(url: str, events: int) -> int:
    """Record about ``events`` events of realistic history in the (initialised, empty) store; the head position."""
    per_copy = len(copy_plan(0))
    copies = max(1, round(events / per_copy))
    plans = [copy_plan(c) for c in range(copies)]
    clock = _Clock()
    memory = Ledger({"PERSISTENCE_MODULE": "eventsourcing.popo"}, vault=DryRunVault(), clock=clock)
    memory.ensure_policy()
    for step in heapq.merge(*plans, key=lambda s: s.recorded_at):
        clock.now = step.recorded_at
        getattr(memory, step.method)(**step.kwargs, actor=ADMIN, occurred_at=step.occurred_at)
    target = open_ledger(url)
    try:
        batch: list[Any] = []
        for _, event in memory.iter_log(start=1, batch=SAVE_BATCH):
            if isinstance(event, Policy.Established):
                continue  # the store already holds policy version 1 (init_store)
            batch.append(event)
            if len(batch) >= SAVE_BATCH:
                target.save(*batch)
                batch = []
        if batch:
            target.save(*batch)
        return int(target.recorder.max_notification_id() or 0)
    finally:
        target.close()
        memory.close()


def use_store_dir(directory: Path) -> str:
    """Point the key files at a store directory's ``keys/``; the URL of its ``ledger.db``."""
    os.environ["LEDGER_KEY_FILE"] = str(directory / "keys" / "ledger.key")
    os.environ["LEDGER_SIGNING_KEY_FILE"] = str(directory / "keys" / "ledger-signing.key")
    os.environ.pop("LEDGER_CIPHER_KEY", None)
    return f"sqlite:///{directory / 'ledger.db'}"


@contextmanager
def temporary_store(kind: str) -> Iterator[str]:
    """A fresh initialised store (temp dir or temp PostgreSQL schema), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="projbench-") as tmp:
        url = use_store_dir(Path(tmp))
        if kind == "sqlite":
            init_store(url)
            yield url
            return
        import psycopg

        schema = f"projbench_{uuid.uuid4().hex[:10]}"
        url = f"{PG_URL}?schema={schema}"
        try:
            init_store(url)
            yield url
        finally:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def raw_rate(url: str) -> tuple[int, float]:
    """Read every notification in batches and decode each one: (events, seconds)."""
    log = open_log(url)
    try:
        to_event = log.mapper.to_domain_event
        count, start = 0, 1
        began = time.perf_counter()
        while True:
            notifications = log.recorder.select_notifications(start=start, limit=READ_BATCH)
            if not notifications:
                break
            for n in notifications:
                to_event(n)
            count += len(notifications)
            start = notifications[-1].id + 1
        return count, time.perf_counter() - began
    finally:
        log.close()


def rebuild_rate(url: str) -> tuple[int, float]:
    began = time.perf_counter()
    head = engine.rebuild(url)
    return head, time.perf_counter() - began


def query_cases(copies: int, seed: int = 7) -> dict[str, Callable[[Queries], Any]]:
    """Each query type with realistic arguments, drawn afresh per call (a district of some copy, a month)."""
    rng = random.Random(seed)
    days = itertools.count()  # each daily report asked once: folded, never read back

    def district() -> str:
        return rng.choice(DISTRICTS) + suffix(rng.randrange(copies))

    triggers = _cursors(rng, lambda q: q.triggers("open"), _token("triggers"))
    board = _cursors(rng, lambda q: q.petitions(), _token("petitions"))
    officers = _cursors(rng, lambda q: q.officers(), _token("officers"))
    units = _cursors(rng, lambda q: q.scores(YEAR), lambda row: str(row["unit_id"]))

    return {
        "scores(year, district)": lambda q: q.scores(YEAR, district()),
        "triggers(open, district)": lambda q: q.triggers("open", district()),
        "quota(year)": lambda q: q.quota(YEAR),
        "quota(year, page of 20)": lambda q: q.quota(YEAR, limit=PAGE, after=district()),
        "quota_deductions(year)": lambda q: q.quota_deductions(YEAR),
        "quota_deductions(page 20)": lambda q: q.quota_deductions(YEAR, limit=PAGE, after=district()),
        "petitions(open, district)": lambda q: q.petitions("open", unit_id=district()),
        # The case board about now: the current view's case rows (a past moment folds the district's cases).
        "cases(open, district)": lambda q: q.cases("open", unit_id=district()),
        "cases(page of 100, district)": lambda q: q.cases(unit_id=district(), limit=LIST_PAGE),
        "cases(open, as_of, district)": lambda q: q.cases("open", unit_id=district(), as_of=_month_end(rng)),
        "cases(as_of, known_at, district)": lambda q: q.cases(unit_id=district(), **_known_later(rng)),
        "trigger(id)": lambda q: q.trigger(f"R7.person.{rng.choice(OFFICERS)}{suffix(rng.randrange(copies))}.r1"),
        # A bulletin as issued (known at its period's end) is folded once and kept (projections.reports.issued):
        # asked again, and asked the first time.
        "monthly(YYYY-MM), kept": lambda q: q.monthly(f"{YEAR}-06", known_at=_issued("monthly", f"{YEAR}-06")),
        "daily(date), first ask": lambda q: _daily_as_issued(q, date(YEAR, 12, 31) - timedelta(days=next(days))),
        # An auditor's "as known now" of a bulletin: folded once (the warm-up ask), then its kept fold read back.
        "monthly(YYYY-MM, known_at now), kept": lambda q: q.monthly(f"{YEAR}-06", known_at=utc_now()),
        # A bulletin asked with no moment: as known now (API.md's default), the same read back, stamped.
        "monthly(YYYY-MM), default": lambda q: q.monthly(f"{YEAR}-06"),
        # The same as the HTTP API sends it to a city-wide token: the kept JSON's bytes, restated, never decoded.
        "monthly(YYYY-MM), default, as sent": lambda q: q.report_as_known_now("monthly", f"{YEAR}-06"),
        # As of a past month's end, as known now: the view's rows, and a fold of the records revised after it.
        "scores(as_of, district)": lambda q: q.scores(YEAR, district(), as_of=_month_end(rng)),
        "triggers(open, as_of, district)": lambda q: q.triggers("open", district(), as_of=_month_end(rng)),
        # As of a past month's end, as known two weeks after it (what an auditor could have known): the view's rows,
        # and a fold of the records revised after it or with facts recorded after the two weeks.
        "scores(as_of, known_at, district)": lambda q: q.scores(YEAR, district(), **_known_later(rng)),
        "petitions(as_of, known_at, district)": lambda q: q.petitions(unit_id=district(), **_known_later(rng)),
        "triggers(open, as_of, known_at, district)": lambda q: q.triggers("open", district(), **_known_later(rng)),
        # City-wide as of a past month's end: the quota ledger and R4's deductions of the year.
        "quota(year, as_of)": lambda q: q.quota(YEAR, as_of=_month_end(rng)),
        "quota_deductions(year, as_of)": lambda q: q.quota_deductions(YEAR, as_of=_month_end(rng)),
        # The whole city's answers, now and as of a past month's end (tens of thousands of rows): the view's rows,
        # and as of the past a fold of the records revised after it (up to history.FOLD_LIMIT, else the city).
        "scores(year), city-wide": lambda q: q.scores(YEAR),
        "triggers(open), city-wide": lambda q: q.triggers("open"),
        "petitions(open), city-wide": lambda q: q.petitions("open"),
        "scores(as_of), city-wide": lambda q: q.scores(YEAR, as_of=_month_end(rng)),
        "triggers(open, as_of), city-wide": lambda q: q.triggers("open", as_of=_month_end(rng)),
        "petitions(open, as_of), city-wide": lambda q: q.petitions("open", as_of=_month_end(rng)),
        # The same lists a page at a time (分页), each page after a random row of the whole list (read once, when
        # the case is warmed up), as a supervisor's screen reads them.
        "triggers(open, page of 100), city-wide": lambda q: q.triggers("open", limit=LIST_PAGE, after=triggers(q)),
        "petitions(open, page of 100), city-wide": lambda q: q.petitions("open", limit=LIST_PAGE, after=board(q)),
        "petitions(page of 100), city-wide": lambda q: q.petitions(limit=LIST_PAGE, after=board(q)),
        "officers(page of 100), city-wide": lambda q: q.officers(limit=LIST_PAGE, after=officers(q)),
        "officers(removal_due, page of 100)": lambda q: q.officers("removal_due", limit=LIST_PAGE, after=officers(q)),
        "scores(year, page of 100), city-wide": lambda q: q.scores(YEAR, limit=LIST_PAGE, after=units(q)),
        "triggers(open, as_of, page of 100), city-wide": lambda q: q.triggers(
            "open", as_of=_month_end(rng), limit=LIST_PAGE, after=triggers(q)
        ),
        "petitions(open, as_of, page of 100), city-wide": lambda q: q.petitions(
            "open", as_of=_month_end(rng), limit=LIST_PAGE, after=board(q)
        ),
    }


def _cursors(
    rng: random.Random, rows: Callable[[Queries], list[dict[str, Any]]], cursor: Callable[[dict[str, Any]], str]
) -> Callable[[Queries], str]:
    """Random cursors into a city-wide list, drawn from its ``rows`` (read on the first draw, the warm-up ask)."""
    keys: list[str] = []

    def draw(queries: Queries) -> str:
        if not keys:
            keys.extend(cursor(row) for row in rows(queries))
        return rng.choice(keys)

    return draw


def _token(name: str) -> Callable[[dict[str, Any]], str]:
    """The cursor (``next_after``) of a row of the list ``name`` (``projections.queries.CURSORS``)."""
    return lambda row: paging.token(CURSORS[name][0](row))


def _known_later(rng: random.Random) -> dict[str, datetime]:
    """A random month's end (``as_of``), as known two weeks later (``known_at``)."""
    as_of = _month_end(rng)
    return {"as_of": as_of, "known_at": as_of + timedelta(days=14)}


def _issued(kind: str, label: str) -> datetime:
    """A report's issue date (its period's end): asked as known then, it is the report as issued."""
    return reports.period(kind, label)[1]


def _daily_as_issued(q: Queries, day: date) -> Any:
    return q.daily(day.isoformat(), known_at=_issued("daily", day.isoformat()))


def _month_end(rng: random.Random) -> datetime:
    """The last moment of a random month of the benchmark's year (an auditor's as_of)."""
    month = rng.randint(1, 12)
    first_of_next = datetime(YEAR + month // 12, month % 12 + 1, 1, tzinfo=BUREAU_TZ)
    return first_of_next - timedelta(microseconds=1)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def query_latency(
    url: str, copies: int, calls: int, budget: float, only: list[str] | None = None
) -> dict[str, dict[str, float]]:
    """p50/p99 (ms) per query type over ``calls`` calls (fewer if a type exceeds ``budget`` seconds); with ``only``,
    the types whose names hold one of those texts."""
    queries = Queries(url)
    queries.db.execute(f"DELETE FROM {ISSUED}")  # a reused store: its reports are asked for the first time again
    results: dict[str, dict[str, float]] = {}
    settle_heap()  # as ``ledger serve`` does once started
    try:
        for name, call in query_cases(copies).items():
            if only and not any(text in name for text in only):
                continue
            call(queries)  # warm the connection and the statement cache
            settle_heap()  # what the warm-up loaded for the client (a list's cursors) is not the server's heap
            samples: list[float] = []
            spent = 0.0
            while len(samples) < calls and (spent < budget or len(samples) < 5):
                began = time.perf_counter()
                call(queries)
                took = time.perf_counter() - began
                samples.append(took * 1000)
                spent += took
            results[name] = {
                "calls": len(samples),
                "p50_ms": round(statistics.median(samples), 2),
                "p99_ms": round(percentile(samples, 99), 2),
            }
    finally:
        queries.close()
    return results


@contextmanager
def kept_store(directory: Path, reuse: bool) -> Iterator[str]:
    """A SQLite store in ``directory`` that outlives the run: initialised afresh, or reused as it is."""
    if not reuse:
        if (directory / "ledger.db").exists():
            raise SystemExit(f"{directory / 'ledger.db'} exists: --reuse it or remove it")
        directory.mkdir(parents=True, exist_ok=True)
    elif not (directory / "ledger.db").exists():
        raise SystemExit(f"no store to reuse in {directory}")
    url = use_store_dir(directory)
    if not reuse:
        init_store(url)
    yield url


def bench_store(
    kind: str, events: int, calls: int, budget: float, keep: Path | None = None, reuse: bool = False
) -> dict[str, Any]:
    with kept_store(keep, reuse) if keep else temporary_store(kind) as url:
        began = time.perf_counter()
        if reuse:
            log = open_log(url)
            try:
                head = int(log.recorder.max_notification_id() or 0)
            finally:
                log.close()
        else:
            head = build_store(url, events)
        built = time.perf_counter() - began
        print(f"[{kind}] {'reused' if reuse else 'built'} {head} events in {built:.1f}s", flush=True)
        copies = max(1, round((head if reuse else events) / len(copy_plan(0))))
        return {
            "store": kind,
            "events": head,
            "build_seconds": round(built, 1),
            **measure(kind, url, copies, calls, budget),
        }


def measure(kind: str, url: str, copies: int, calls: int, budget: float) -> dict[str, Any]:
    """Raw read-and-decode, a full rebuild and the query latencies on one store of ``copies`` territories."""
    raw_n, raw_s = raw_rate(url)
    reb_n, reb_s = rebuild_rate(url)
    raw, rebuild = raw_n / raw_s, reb_n / reb_s
    print(f"[{kind}] raw {raw:,.0f} ev/s, rebuild {rebuild:,.0f} ev/s ({rebuild / raw:.0%})", flush=True)
    return {
        "raw_events_per_s": round(raw),
        "rebuild_events_per_s": round(rebuild),
        "rebuild_seconds": round(reb_s, 2),
        "ratio": round(rebuild / raw, 3),
        "queries": query_latency(url, copies, calls, budget),
    }


def bench_url(url: str, calls: int, budget: float) -> dict[str, Any]:
    """The store at ``url`` as it is (one ``bench.generate`` made, on either store): its territories are its cities."""
    kind = "sqlite" if url.startswith("sqlite") else "postgres"
    log = open_log(url)
    try:
        head = int(log.recorder.max_notification_id() or 0)
    finally:
        log.close()
    cities = territories(url)
    print(f"[{kind}] {head} events, {cities} territories at {url}", flush=True)
    return {"store": kind, "events": head, **measure(kind, url, cities, calls, budget)}


def territories(url: str) -> int:
    """How many copies of the demo city the store at ``url`` holds (its projections caught up first)."""
    engine.catch_up(url)  # the unit tree the territories are counted from
    queries = Queries(url)
    try:
        found = queries.db.query(
            f"SELECT COUNT(*) FROM proj_units_records WHERE {queries.db.json_text('data', 'kind')} = 'city'"
        )
        return int(found[0][0])
    finally:
        queries.close()


def print_queries(found: dict[str, dict[str, float]]) -> None:
    print(f"  {'query':<42}{'calls':>6}{'p50 ms':>10}{'p99 ms':>10}   (goal p99 <= 20 ms)")
    for name, q in found.items():
        print(f"  {name:<42}{q['calls']:>6}{q['p50_ms']:>10.2f}{q['p99_ms']:>10.2f}")


def print_table(result: dict[str, Any]) -> None:
    print(f"\n== {result['store']}: {result['events']:,} events ==")
    print(f"  raw read+decode   {result['raw_events_per_s']:>10,} events/s")
    print(f"  full rebuild      {result['rebuild_events_per_s']:>10,} events/s  ({result['rebuild_seconds']} s)")
    print(f"  ratio             {result['ratio']:>10.1%}   (goal >= 25%)")
    print_queries(result["queries"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=300, help="calls per query type")
    parser.add_argument("--query-seconds", type=float, default=60.0, help="time budget per query type")
    parser.add_argument("--json", type=Path, help="write the figures here")
    kept = parser.add_mutually_exclusive_group()
    kept.add_argument("--keep", type=Path, metavar="DIR", help="build the SQLite store in DIR and leave it there")
    kept.add_argument("--reuse", type=Path, metavar="DIR", help="measure the SQLite store kept in DIR (no build)")
    kept.add_argument("--url", help="measure the store at URL as it is (made by bench.generate; no build)")
    parser.add_argument(
        "--only", action="append", metavar="TEXT", help="with --url: the query types whose names hold TEXT, no rebuild"
    )
    args = parser.parse_args()
    if args.only and not args.url:
        parser.error("--only needs --url")
    if args.only:
        print_queries(query_latency(args.url, territories(args.url), args.calls, args.query_seconds, args.only))
        return
    if args.url:
        result = bench_url(args.url, args.calls, args.query_seconds)
        print_table(result)
        if args.json:
            args.json.write_text(json.dumps({"url": args.url, "results": [result]}, indent=2) + "\n")
        return
    kinds = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    if (args.keep or args.reuse) and kinds != ("sqlite",):
        parser.error("--keep and --reuse need --store sqlite")
    results = []
    for kind in kinds:
        result = bench_store(
            kind, args.events, args.calls, args.query_seconds, args.keep or args.reuse, reuse=args.reuse is not None
        )
        print_table(result)
        results.append(result)
    if args.json:
        args.json.write_text(json.dumps({"events_requested": args.events, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
