"""History generator (历史数据生成器): N events of realistic history, written through the application.

The Laiwu demo year (``api.demo.demo_plan``) is scaled two ways:
- more years: each year of ``--years`` (default 2021-2025) is the demo year from its own seed,
  moved to that year, with its own case and petition numbers, targets and quota; every year of
  the first territory amends the policy mid-year with different parameters;
- more units: copy k of the city (k >= 1) has every record id suffixed ``-ck`` (its own city,
  districts, townships, stations, people), from its own seeds.
Copies are added until the plans hold at least N steps; all plans are merged by recording time
and the first N steps are run through an in-memory :class:`~domain.application.Ledger` (every
domain rule applies). The events it records are written to the target store with ``ledger.save``
in batches of ``--batch`` (the target seals the personal fields, chains and hashes every event).

Usage: python -m bench.generate --url URL --events N [--batch 2000] [--years 2021-2025]
"""

from __future__ import annotations

import argparse
import heapq
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from api.demo import ADMIN, YEAR, Step, demo_plan, is_blank
from domain.application import Ledger, R
from domain.base import BUREAU_TZ, record_uuid
from domain.errors import DomainError
from domain.personal import DryRunVault
from store.config import is_empty
from store.ledger import init_store, open_ledger

#: Step arguments that name a record: suffixed per copy so each copy is a territory of its own.
ID_ARGS = frozenset(
    {
        "unit_id", "parent_id", "person_id", "case_id", "petition_id", "leader_id", "handler_ids",
        "resolver_id", "to_unit_id", "by_unit_id", "issuer_unit_id", "responsible_unit_id", "repeat_of",
    }
)  # fmt: skip
#: Steps that set up the organisation: done once, in the first year.
SETUP = frozenset({"register_unit", "register_person"})
DEFAULT_YEARS = (2021, 2022, 2023, 2024, 2025)
DEFAULT_BATCH = 2000


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(DEFAULT_YEARS[0], 1, 1, tzinfo=BUREAU_TZ)

    def __call__(self) -> datetime:
        return self.now


class _Collecting(Ledger):
    """The in-memory ledger, keeping each saved event so it need not be read back and decoded.

    Aggregates stay cached and are handed out without a deep copy: replaying or copying them on
    every command is 3/4 of the cost. A refused command may leave a fetched record half-changed,
    so the records fetched since the last ``forget`` are dropped from the cache (see Runner).
    """

    def __init__(self, clock: _Clock) -> None:
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.popo",
            "AGGREGATE_CACHE_MAXSIZE": "0",
            "AGGREGATE_CACHE_FASTFORWARD": "n",
            "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
        }
        super().__init__(env, vault=DryRunVault(), clock=clock)
        self.pending: list[Any] = []
        self.touched: list[UUID] = []

    def get(self, cls: type[R], record_id: str, version: int | None = None) -> R:
        self.touched.append(record_uuid(cls.KIND, record_id))
        return super().get(cls, record_id, version)

    def forget(self, refused: bool) -> None:
        """After a command: if it was refused, drop what it fetched from the cache."""
        cache = self.repository.cache
        if refused and cache is not None:
            for aggregate_id in self.touched:
                cache.cache.pop(aggregate_id, None)
                self._refs.pop(aggregate_id, None)  # the reference reads may share that object
        self.touched.clear()

    def _notify(self, recordings: list[Any]) -> None:
        self.pending.extend(r.domain_event for r in recordings)


def _shift(when: datetime, years: int) -> datetime:
    # The demo year (2025) has no 29 February, so every day exists in the target year.
    return when.replace(year=when.year + years) if years else when


def year_plan(year: int, copy: int, *, first_year: bool) -> list[Step]:
    """The demo year moved to ``year`` for territory ``copy`` (seeded by both)."""
    tail = "" if copy == 0 else f"-c{copy}"
    shift = year - YEAR
    old, new = str(YEAR), str(year)

    def rename(key: str, value: Any) -> Any:
        if key in ID_ARGS:
            if isinstance(value, str):
                return value.replace(old, new) + tail
            if isinstance(value, list):
                return [v.replace(old, new) + tail for v in value]
        if key == "year":
            return year
        if isinstance(value, datetime):
            return _shift(value, shift)
        return value

    steps = []
    for step in demo_plan(year * 1000 + copy):
        if step.method in SETUP and not first_year:
            continue
        kwargs = {k: rename(k, v) for k, v in step.kwargs.items()}
        if step.method == "amend_policy":
            if copy:
                continue  # one policy for the whole history: the first territory's bureau amends it
            kwargs["params"] = amendment(year)
            kwargs["note"] = f"局党组会议决定（{year}年第6次）"
        steps.append(Step(step.method, kwargs, _shift(step.occurred_at, shift), _shift(step.recorded_at, shift)))
    return steps


def amendment(year: int) -> dict[str, Any]:
    """A different mid-year policy amendment each year."""
    k = year % 4
    return {"points_escalation": 5 + k, "major_case_area_mu": 6 + 2 * (k % 3), "points_missed_reception": 1 + k % 2}


def plans_for(events: int, years: Sequence[int]) -> list[list[Step]]:
    """Whole territories (every year each) until the plans hold a little over ``events`` steps."""
    plans: list[list[Step]] = []
    total, copy = 0, 0
    while total < events * 1.02 + 100:  # a few planned steps are refused
        for i, year in enumerate(years):
            plans.append(year_plan(year, copy, first_year=i == 0))
            total += len(plans[-1])
        copy += 1
    return plans


@dataclass
class Generated:
    events: int  # events written by the generator
    head: int  # the store's last position
    refused: int  # planned steps the rules refused
    seconds: float  # the whole run
    save_seconds: float  # of which writing to the store (ledger.save)
    territories: int  # copies of the city
    save_cpu_seconds: float = 0.0  # this process's CPU time in ledger.save (steadier than wall time under load)


class Runner:
    """Runs steps through an in-memory ledger and hands out the recorded events in batches."""

    def __init__(self) -> None:
        self.refused = 0  # planned steps the rules refused (e.g. removing an officer removed a year before)

    def batches(self, steps: Iterator[Step], limit: int, batch: int) -> Iterator[list[Any]]:
        """Run steps until ``limit`` events are recorded; yield the events every ``batch`` events."""
        clock = _Clock()
        memory = _Collecting(clock)
        memory.ensure_policy()
        memory.pending.clear()  # the target store holds policy version 1 already (init_store)
        try:
            recorded = 0
            for step in steps:
                if recorded + len(memory.pending) >= limit:
                    break
                clock.now = step.recorded_at
                try:
                    getattr(memory, step.method)(**step.kwargs, actor=ADMIN, occurred_at=step.occurred_at)
                    memory.forget(refused=False)
                except DomainError:
                    # A later year can repeat what an earlier one did (a second removal, say): refused,
                    # as in production.
                    self.refused += 1
                    memory.forget(refused=True)
                if len(memory.pending) >= batch:
                    recorded += len(memory.pending)
                    yield memory.pending
                    memory.pending = []
            if memory.pending:
                yield memory.pending
        finally:
            memory.close()


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8} ev/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=quiet,
    )


def generate(
    url: str, events: int, *, batch: int = DEFAULT_BATCH, years: Sequence[int] = DEFAULT_YEARS, quiet: bool = False
) -> Generated:
    """Write ``events`` events of history into the store at ``url`` (initialised here if new; must be blank)."""
    if is_empty(url):
        init_store(url)
    target = open_ledger(url)
    try:
        if not is_blank(target):
            raise SystemExit(f"the store at {url} already holds records; generate into an empty store")
        began = time.perf_counter()
        plans = plans_for(events, years)
        merged = heapq.merge(*plans, key=lambda s: s.recorded_at)
        written, saving, saving_cpu = 0, 0.0, 0.0
        runner = Runner()
        with _progress(quiet) as progress:
            task = progress.add_task("generating history", total=events, rate="-")
            for chunk in runner.batches(merged, events, batch):
                saved, saved_cpu = time.perf_counter(), time.process_time()
                target.save(*chunk)
                saving += time.perf_counter() - saved
                saving_cpu += time.process_time() - saved_cpu
                written += len(chunk)
                rate = f"{written / (time.perf_counter() - began):,.0f}"
                progress.update(task, completed=written, rate=rate)
        head = int(target.recorder.max_notification_id() or 0)
        territories = len(plans) // len(years)
        return Generated(written, head, runner.refused, time.perf_counter() - began, saving, territories, saving_cpu)
    finally:
        target.close()


def parse_years(text: str) -> tuple[int, ...]:
    first, _, last = text.partition("-")
    return tuple(range(int(first), int(last or first) + 1))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="sqlite:///path.db or postgresql://...[?schema=NAME]")
    parser.add_argument("--events", type=int, required=True, help="number of events to write")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="events per ledger.save")
    parser.add_argument("--years", type=parse_years, default=DEFAULT_YEARS, help="e.g. 2021-2025")
    args = parser.parse_args(argv)
    result = generate(args.url, args.events, batch=args.batch, years=args.years)
    print(
        f"wrote {result.events:,} events (head {result.head:,}) in {result.seconds:.1f}s "
        f"({result.events / result.seconds:,.0f} ev/s); {result.refused} planned steps refused by the rules"
    )


if __name__ == "__main__":
    main()
