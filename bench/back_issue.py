"""Back-issuing speed (补发性能): how long the worker takes to keep the reports of a history loaded in bulk.

On a store ``bench.generate`` made (the projections are caught up first), the kept reports are emptied, then
the worker's issuing steps (``projections.reports.Bulletins.issue``, run here in this process) go on until the
whole backlog is issued or the time budget is spent: after the periods just ended and a fold of the periods in
progress, each step sweeps forward through time (``projections.sweep``) for ``sweep.STEP_SECONDS``, issuing
every moment it passes. Printed: the moments and reports swept, their seconds, and as the baseline measured in
the same run the fold per moment the sweep replaced (the newest month ends folded from the facts in memory, times
the moments); a first ask of the newest bulletin (a fold as ``Queries.monthly`` makes it) against the same ask
once it is kept (a read); the facts' first read (seconds, rows, and what it added to this process's resident
memory), the newest month ends each folded from the tables (the older baseline) and from the facts in memory;
then, the backlog issued, the periods in progress answered by the sweep, first and after a petition is
recorded, against their fold.

Usage: PYTHONPATH=. python -m bench.back_issue --url URL [--budget SECONDS] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from domain.application import utc_now
from projections import engine, facts, reports
from projections.catalog import ISSUED, RUNNING
from projections.history import REPORT_TYPES
from projections.queries import Queries


def kept(queries: Queries) -> set[tuple[str, str]]:
    return {(kind, label) for kind, label in queries.db.query(f"SELECT kind, label FROM {ISSUED}")}


def _rss_mb() -> float:
    """This process's resident memory now (Linux), in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6


def newest_months(count: int) -> list[str]:
    """The labels of the ``count`` months that ended last, newest first."""
    labels = [reports.last_ended(utc_now())[2][1]]
    while len(labels) < count:
        start, _ = reports.period("monthly", labels[-1])
        labels.append(reports.label("monthly", start.date() - timedelta(days=1)))
    return labels


def in_memory(url: str, months: int = 4) -> dict[str, Any]:
    """The newest ``months`` bulletins, each folded as issued from the tables and from the facts in memory."""
    queries = Queries(url)
    try:
        rss, began = _rss_mb(), time.perf_counter()
        found = facts.kept(queries.db)
        load, added = time.perf_counter() - began, _rss_mb() - rss
        took: dict[bool, list[float]] = {False: [], True: []}
        for label in newest_months(months):
            _, end = reports.period("monthly", label)
            for memory in (False, True):
                queries.memory = memory
                began = time.perf_counter()
                reports.report(queries.known(end, end, lean=True, only=REPORT_TYPES), "monthly", label)
                took[memory].append(time.perf_counter() - began)
    finally:
        queries.close()
    return {
        "load_s": round(load, 2),
        "rows": found.size() if found else 0,
        "rss_added_mb": round(added),
        "tables_s": [round(t, 2) for t in took[False]],
        "memory_s": [round(t, 2) for t in took[True]],
        "memory_over_tables": round(sum(took[True]) / sum(took[False]), 2),
    }


def measure(url: str, budget: float) -> dict[str, Any]:
    engine.catch_up(url)
    memory = in_memory(url)
    queries = Queries(url)
    try:
        queries.db.execute(f"DELETE FROM {ISSUED}")  # a reused store: every report is issued again
        queries.db.execute(f"DELETE FROM {RUNNING}")
        bulletins = reports.Bulletins(url)
        newest = reports.last_ended(bulletins.clock())[2][1]
        began = time.perf_counter()
        issued_at = reports.period("monthly", newest)[1]  # the bulletin as issued: known at its month's end
        queries.monthly(newest, known_at=issued_at)  # folded, then kept
        fold = time.perf_counter() - began
        reads = []
        for _ in range(20):
            began = time.perf_counter()
            queries.monthly(newest, known_at=issued_at)
            reads.append(time.perf_counter() - began)
        bulletins.issue()  # the periods just ended (the newest bulletin is read back, the others folded)
        began = time.perf_counter()
        bulletins.issue()  # the periods in progress, folded as of now (kept as running reports): a backlog is left
        running = time.perf_counter() - began
        moments = len(bulletins.pending)
        steps, spent = [], 0.0
        while spent < budget and bulletins.pending:
            before = len(kept(queries))
            began = time.perf_counter()
            bulletins.issue()  # the sweep, for sweep.STEP_SECONDS a step
            steps.append((time.perf_counter() - began, len(kept(queries)) - before))
            spent += steps[-1][0]
        swept = moments - len(bulletins.pending)
        rss = _rss_mb()
        after = _running_by_sweep(url, bulletins, queries) if not bulletins.pending else {}
    finally:
        queries.close()
    fold_each = statistics.fmean(memory["memory_s"])
    return {
        "first_ask_fold_s": round(fold, 2),
        "kept_read_ms_p50": round(statistics.median(reads) * 1000, 2),
        "fold_over_read": round(fold / statistics.median(reads)),
        "running_fold_s": round(running, 2),
        "backlog_moments": moments,
        "swept_moments": swept,
        "swept_reports": sum(n for _, n in steps),
        "sweep_steps": len(steps),
        "sweep_s": round(spent, 1),
        "sweep_ms_per_moment": round(spent / swept * 1000, 1) if swept else None,
        "fold_each_moment_estimate_s": round(moments * fold_each),
        "fold_over_sweep": round(moments * fold_each / spent, 1) if spent else None,
        "rss_mb": round(rss),
        "moments_left": len(bulletins.pending),
        **after,
        "in_memory": memory,
    }


def _running_by_sweep(url: str, bulletins: reports.Bulletins, queries: Queries) -> dict[str, Any]:
    """Once the backlog is issued: the periods in progress answered by the sweep, first (moved on from the last
    midnight swept to now), then again after a petition is recorded (a few records derived), each as the issuer's
    step does it; and what a fold of them costs in the same run (``running_fold_s``, the baseline)."""
    from domain.vocabulary import Channel, PetitionCategory
    from store.ledger import open_ledger

    took = {}
    for name in ("first", "after_a_fact"):
        if name == "after_a_fact":
            (unit,) = queries.db.query("SELECT record_id FROM proj_units_records ORDER BY position LIMIT 1")[0]
            ledger = open_ledger(url)
            try:
                ledger.register_petition(
                    unit, Channel.VISIT, 1, "张三", "征地补偿", PetitionCategory.COMPENSATION,
                    actor="bench", occurred_at=utc_now(),
                )  # fmt: skip
            finally:
                ledger.close()
            engine.catch_up(url)
        else:
            queries.db.execute(f"DELETE FROM {RUNNING}")  # the fold's kept reports may stand yet: asked afresh
        began = time.perf_counter()
        bulletins.issue()
        took[name] = time.perf_counter() - began
    return {
        "running_sweep_first_s": round(took["first"], 2),
        "running_sweep_after_fact_ms": round(took["after_a_fact"] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a store made by bench.generate")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds of issuing steps at most")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    result = measure(args.url, args.budget)
    print(f"first ask of the newest bulletin: fold {result['first_ask_fold_s']} s, kept read "
          f"{result['kept_read_ms_p50']} ms p50 ({result['fold_over_read']}x)")  # fmt: skip
    m = result["in_memory"]
    print(f"facts read into memory: {m['rows']:,} rows in {m['load_s']} s, {m['rss_added_mb']} MB resident")
    print(f"bulletins folded from the tables (baseline): {m['tables_s']} s; from memory: {m['memory_s']} s"
          f" ({m['memory_over_tables']}x)")  # fmt: skip
    print(f"the periods in progress, folded as of now: {result['running_fold_s']} s")
    print(f"backlog: {result['backlog_moments']} moments; swept {result['swept_moments']} "
          f"({result['swept_reports']} reports) in {result['sweep_s']} s over {result['sweep_steps']} steps, "
          f"{result['sweep_ms_per_moment']} ms a moment; a fold per moment from memory would take about "
          f"{result['fold_each_moment_estimate_s']} s ({result['fold_over_sweep']}x); "
          f"{result['rss_mb']} MB resident")  # fmt: skip
    if "running_sweep_first_s" in result:
        print(f"the periods in progress by the sweep: first {result['running_sweep_first_s']} s, after a fact "
              f"{result['running_sweep_after_fact_ms']} ms (a fold: {result['running_fold_s']} s)")  # fmt: skip
    print(f"moments left: {result['moments_left']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
