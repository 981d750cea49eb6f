"""Concurrent first asks (并发首问): several server processes ask at once for a report that is not kept.

Each process of ``ledger serve --workers N`` (or a server beside the issuer) that asks for a bulletin not yet
issued would fold the whole city for the same answer, seconds each at a million events, all on the same cores.
With the fold leases (``projections.lease.folding``) one process folds and keeps it; the others wait for that
fold and read it back.

On a store ``bench.generate`` made (projections caught up first), for one monthly bulletin:

- the baseline: one process asks alone (its kept row deleted first, so the ask folds);
- then ``--processes`` processes, started together, each ask once (the kept row deleted again first): each one's
  wall time and CPU time. A process that folded spent about the baseline's CPU; one that waited, almost none. The
  sum of their CPU over the baseline's is the number of folds the asks cost.

Usage: PYTHONPATH=. python -m bench.concurrent_asks --url URL [--month 2025-01] [--processes 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path
from typing import Any

from projections import engine, reports
from projections.catalog import ISSUED
from projections.db import Db
from projections.queries import Queries


def forget(url: str, month: str) -> None:
    """Delete the bulletin's kept row, so the next ask folds it."""
    db = Db(url)
    try:
        db.execute(f"DELETE FROM {ISSUED} WHERE kind = 'monthly' AND label = ?", (month,))
    finally:
        db.close()


def ask(url: str, month: str, start: Any = None) -> dict[str, float]:
    """One supervisor's ask of the bulletin, in this process: its wall time and this process's CPU time."""
    queries = Queries(url)
    try:
        if start is not None:
            start.wait()
        began, cpu = time.perf_counter(), _cpu()
        queries.monthly(month, known_at=reports.period("monthly", month)[1])  # the bulletin as issued
        # Not rounded to the printed figures: on a small store a fold's CPU rounds to 0, the ratio's divisor.
        return {"wall_s": round(time.perf_counter() - began, 4), "cpu_s": round(_cpu() - cpu, 4)}
    finally:
        queries.close()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _asker(url: str, month: str, start: Any, results: Any) -> None:
    results.put(ask(url, month, start))


def measure(url: str, month: str, processes: int) -> dict[str, Any]:
    engine.catch_up(url)
    forget(url, month)
    alone = ask(url, month)
    forget(url, month)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(processes), context.Queue()
    askers = [context.Process(target=_asker, args=(url, month, start, results)) for _ in range(processes)]
    for process in askers:
        process.start()
    together = sorted((results.get() for _ in askers), key=lambda r: r["wall_s"])
    for process in askers:
        process.join()
    return {
        "month": month,
        "alone": alone,
        "together": together,
        "slowest_over_alone": _ratio(together[-1]["wall_s"], alone["wall_s"]),
        "folds": _ratio(sum(r["cpu_s"] for r in together), alone["cpu_s"]),
    }


def _ratio(part: float, whole: float) -> float | None:
    """``part / whole``, or ``None`` when ``whole`` is below what the clocks resolve."""
    return round(part / whole, 2) if whole > 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--month", default="2025-01")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = measure(args.url, args.month, args.processes)
    alone = figures["alone"]
    took = f"{alone['wall_s']:.2f} s wall, {alone['cpu_s']:.2f} s CPU"
    print(f"monthly {figures['month']}, one ask alone (raw baseline): {took}")
    for n, r in enumerate(figures["together"], 1):
        print(f"  asker {n} of {args.processes} at once: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU")
    print(f"slowest / alone {figures['slowest_over_alone']}; CPU spent / one fold's {figures['folds']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
