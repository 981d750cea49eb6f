"""All benchmarks (全部基准) on one store and size: each hot path against its raw baseline.

``python -m bench.run --store sqlite|postgres --events N [--json out.json]`` builds a temporary
store of N events (``bench.generate``), then measures, in this order and on that same store:

- command: ``register_petition`` through the application (one event, one transaction) vs raw
  single-row inserts of the same stored bytes, one commit each;
- bulk import: the generator's ``ledger.save`` batches vs raw batched inserts of the same bytes;
- rebuild: ``projections.engine.rebuild`` vs raw read-and-decode (``bench/projections_bench.py``);
- verify: ``audit.verify.verify`` vs raw read-and-SHA-256 (``bench/verify_bench.py``);
- queries in process (p50/p99 per query type, ``bench/projections_bench.py``);
- HTTP: a query and a command vs ``/bench/noop`` on the same server (``bench/http_load.py``);
- peak memory of rebuild, verify and export, each in its own process (``bench/peak.py``);
- the fixed stack's floor: the same command and bulk rows for a bare eventsourcing application on the
  same store (``bench/floor.py``), the most any application on this stack could reach.
A figure is "ours / raw": 1.0 means no overhead over the raw baseline.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit.checkpoints import take_checkpoint
from audit.verify import verify
from bench import floor, projections_bench, raw, verify_bench
from bench.generate import Generated, generate
from bench.http_load import http_bench
from bench.peak import PeakFailed, peak_kib
from domain.vocabulary import Channel, PetitionCategory
from store.ledger import open_ledger

#: Goals of issue 7: minimum ratio ours/raw per hot path.
GOALS = {"command": 0.7, "bulk import": 0.5, "rebuild": 0.25, "verify": 0.5}
BULK_RAW_ROWS = 200_000  # raw batched inserts of this many of the events (enough for a steady rate)


def _row(name: str, ours: float, base: float, unit: str, **extra: Any) -> dict[str, Any]:
    ratio = ours / base if base else 0.0
    goal = GOALS.get(name)
    return {
        "path": name,
        "ours": round(ours, 1),
        "raw": round(base, 1),
        "unit": unit,
        "ratio": round(ratio, 3),
        "goal": goal,
        "met": None if goal is None else ratio >= goal,
        **extra,
    }


def command_row(url: str, commands: int) -> dict[str, Any]:
    """Commands through the application, one event and one transaction each, vs raw single-row inserts."""
    ledger = open_ledger(url)
    try:
        began, cpu = time.perf_counter(), time.process_time()
        for i in range(commands):
            ledger.register_petition(
                "fengcheng",
                Channel.VISIT,
                1,
                "压测",
                "压测信访",
                PetitionCategory.OTHER,
                petition_id=f"BENCH-{i:06d}",
                actor="bench",
            )
        ours = commands / (time.perf_counter() - began)
        cpu_us = (time.process_time() - cpu) / commands * 1e6
        head = int(ledger.recorder.max_notification_id() or 0)
        written = ledger.recorder.select_notifications(start=head - commands + 1, limit=commands)
    finally:
        ledger.close()
    base = raw.insert_rate(url, written, batch=1)
    return _row("command", ours, base, "events/s", n=commands, cpu_us_per_event=round(cpu_us, 1))


def bulk_row(url: str, generated: Generated, batch: int) -> dict[str, Any]:
    """The generator's ``ledger.save`` batches vs raw batched inserts of the same stored bytes."""
    events = generated.events
    ledger = open_ledger(url)
    try:
        rows = ledger.recorder.select_notifications(start=2, limit=min(events, BULK_RAW_ROWS))
    finally:
        ledger.close()
    base = raw.insert_rate(url, rows, batch=batch)
    cpu_us = generated.save_cpu_seconds / events * 1e6
    ours = events / generated.save_seconds
    return _row("bulk import", ours, base, "events/s", n=events, cpu_us_per_event=round(cpu_us, 1))


def floor_rows(url: str, commands: int, events: int, batch: int) -> list[dict[str, Any]]:
    """The bare library's command and bulk rows (``bench/floor.py``): measured, not judged against the goals."""
    return [
        _row(f"{path} (library floor)", f["ours"], f["raw"], "events/s", cpu_us_per_event=f["cpu_us_per_event"])
        for path, f in floor.floor_rates(url, commands, events, batch).items()
    ]


def rebuild_row(url: str, rounds: int) -> dict[str, Any]:
    """Best of ``rounds`` for both sides, as for verify: the first rebuild after the generator also grows the
    database file (a second one reuses the pages the first dropped), which a store rebuilt in service never pays."""
    raw = [projections_bench.raw_rate(url) for _ in range(rounds)]
    ours = [projections_bench.rebuild_rate(url) for _ in range(rounds)]
    (raw_n, raw_s), (ours_n, ours_s) = min(raw, key=lambda r: r[1]), min(ours, key=lambda r: r[1])
    seconds = [round(s, 1) for _, s in ours]
    return _row("rebuild", ours_n / ours_s, raw_n / raw_s, "events/s", n=ours_n, seconds=seconds)


def verify_row(url: str, rounds: int) -> dict[str, Any]:
    take_checkpoint(url)
    first = verify(url)
    assert first.ok, first
    base = verify_bench.best_rate(lambda: verify_bench.read_joined(url), rounds)
    ours = verify_bench.best_rate(lambda: verify(url).checked, rounds)
    return _row("verify", ours, base, "events/s", n=first.checked)


def http_rows(url: str, territories: int, seconds: float) -> list[dict[str, Any]]:
    figures = http_bench(url, territories, seconds)
    noop = figures.pop("noop")
    rows = []
    for name, f in figures.items():
        rows.append(
            _row(
                f"HTTP {name}",
                f["rps"],
                noop["rps"],
                "req/s",
                p50_ms=f["p50_ms"],
                p99_ms=f["p99_ms"],
                raw_p50_ms=noop["p50_ms"],
                raw_p99_ms=noop["p99_ms"],
                errors=f["errors"],
            )
        )
    return rows


def timed(label: str, step: Callable[[], Any]) -> Any:
    """Run a step, saying how long it took (and its figures, if it is a row): a long run shows progress."""
    began = time.perf_counter()
    result = step()
    print(f"  {label} done in {time.perf_counter() - began:.1f}s", flush=True)
    for row in result if isinstance(result, list) else [result]:
        if isinstance(row, dict) and "ratio" in row:
            figures = f"ours {row['ours']:,} raw {row['raw']:,} {row['unit']} ratio {row['ratio']}"
            print(f"    {row['path']}: {figures}", flush=True)
    return result


def bench_store(kind: str, events: int, args: argparse.Namespace) -> dict[str, Any]:
    with projections_bench.temporary_store(kind) as url:
        generated = timed("generate", lambda: generate(url, events, batch=args.batch, quiet=args.quiet))
        rows = [bulk_row(url, generated, args.batch)]
        rows.append(timed("rebuild", lambda: rebuild_row(url, args.rounds)))
        rows.append(timed("verify", lambda: verify_row(url, args.rounds)))
        memory: dict[str, int | str] = {}
        if not args.skip_memory:
            for op in ("rebuild", "verify", "export"):
                try:
                    memory[op] = timed(f"peak RSS of {op}", functools.partial(peak_kib, op, url)) // 1024
                except PeakFailed as e:  # keep the other figures of a long run
                    memory[op] = f"failed: {e}"
                print(f"    {op}: {memory[op]} MiB", flush=True)
        queries = timed(
            "queries",
            lambda: projections_bench.query_latency(url, generated.territories, args.calls, args.query_seconds),
        )
        if not args.skip_http:
            rows.extend(timed("http", lambda: http_rows(url, generated.territories, args.http_seconds)))
        # Last: the commands add events, which would change what the other rows read.
        rows.insert(0, timed("commands", lambda: command_row(url, args.commands)))
        if not args.skip_floor:
            floor_events = min(events, args.floor_events)
            rows[2:2] = timed("library floor", lambda: floor_rows(url, args.commands, floor_events, args.batch))
        return {
            "store": kind,
            "events": generated.head,
            "territories": generated.territories,
            "refused_steps": generated.refused,
            "generate_seconds": round(generated.seconds, 1),
            "generate_events_per_s": round(generated.events / generated.seconds),
            "rows": rows,
            "queries": queries,
            "peak_rss_mib": memory,
        }


def print_result(result: dict[str, Any]) -> None:
    print(f"\n== {result['store']}: {result['events']:,} events, {result['territories']} territories x 5 years ==")
    print(f"  generated at {result['generate_events_per_s']:,} events/s ({result['generate_seconds']} s)")
    print(f"  {'hot path':<28}{'ours':>12}{'raw':>12}  {'unit':<9}{'ratio':>7}{'goal':>7}  met  p50/p99 ms (raw)")
    for r in result["rows"]:
        goal = f"{r['goal']:.2f}" if r["goal"] is not None else "-"
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        lat = f"{r['p50_ms']}/{r['p99_ms']} ({r['raw_p50_ms']}/{r['raw_p99_ms']})" if "p50_ms" in r else ""
        figures = f"{r['ours']:>12,.0f}{r['raw']:>12,.0f}  {r['unit']:<9}{r['ratio']:>7.2f}{goal:>7}"
        print(f"  {r['path']:<28}{figures}  {met:<4} {lat}")
    print(f"  {'query (in process)':<42}{'calls':>6}{'p50 ms':>10}{'p99 ms':>10}   (goal p99 <= 20 ms at 1M)")
    for name, q in result["queries"].items():
        print(f"  {name:<42}{q['calls']:>6}{q['p50_ms']:>10.2f}{q['p99_ms']:>10.2f}")
    if result["peak_rss_mib"]:
        print("  peak RSS MiB: " + ", ".join(f"{op} {mib}" for op, mib in result["peak_rss_mib"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000, help="events per save (generator and raw bulk)")
    parser.add_argument("--commands", type=int, default=1000, help="single commands to time")
    parser.add_argument("--rounds", type=int, default=2, help="rebuild and verify rounds (best counts)")
    parser.add_argument("--calls", type=int, default=200, help="calls per query type")
    parser.add_argument("--query-seconds", type=float, default=10.0, help="time budget per query type")
    parser.add_argument("--http-seconds", type=float, default=10.0, help="load per HTTP scenario")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-floor", action="store_true", help="no bare-library rows")
    parser.add_argument("--floor-events", type=int, default=100_000, help="events of the bare library's bulk save")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    kinds = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    results = []
    for kind in kinds:
        print(f"[{kind}] {args.events:,} events", flush=True)
        result = bench_store(kind, args.events, args)
        print_result(result)
        results.append(result)
    if args.json:
        machine = {"python": platform.python_version(), "platform": platform.platform()}
        args.json.write_text(json.dumps({"machine": machine, "args": vars(args) | {"json": str(args.json)},
                                         "results": results}, indent=2, default=str) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
