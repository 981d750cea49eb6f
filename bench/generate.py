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

Memory grows with the territories, not with the history written (peak 568 MiB at 10M events, where
keeping every step and event took ~1.7 MiB per 1,000 events), as all territories run side by side:
- the plans are built up front, as their lengths decide how many territories there are, but each is
  kept in a temporary spill file until the merge reaches it (:class:`Plans`);
- the in-memory ledger keeps only what the store does not hold: once a batch is saved, its events
  are dropped and records unused for two months leave the cache, to be read back from the store
  should a step need them again (:class:`_Collecting`), and the store's vault forgets the keys it
  sealed them with (:func:`_forget_keys`).

Usage: python -m bench.generate --url URL --events N [--batch 2000] [--years 2021-2025]
"""

from __future__ import annotations

import argparse
import contextlib
import copyreg
import gc
import heapq
import os
import pickle
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from itertools import chain
from typing import IO, Any, cast
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from api.demo import ADMIN, YEAR, Step, demo_plan, is_blank
from domain.application import Ledger, R
from domain.base import BUREAU_TZ, Record, record_uuid
from domain.errors import DomainError, RecordNotFound
from domain.people import Person
from domain.personal import DryRunVault, subject_of
from domain.policy import Policy
from domain.units import Unit
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
#: Steps pickled together in the spill file: a plan being merged holds one run unpickled.
RUN = 64
#: The organisation: registered once and touched all through the history (a township's few land
#: approvals a year, an officer's yearly training), so the in-memory ledger keeps it cached for good.
ORGANISATION: tuple[type[Record], ...] = (Unit, Person, Policy)
#: Other records (cases, petitions, agreements) leave the cache once unused for a whole sweep, one
#: every IDLE of recording time (so idle for IDLE to twice that): the demo's cases and petitions go
#: a few weeks at most between steps.
IDLE = timedelta(days=61)


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(DEFAULT_YEARS[0], 1, 1, tzinfo=BUREAU_TZ)

    def __call__(self) -> datetime:
        return self.now


class _Unsaved(POPOApplicationRecorder):
    """The in-memory ledger's recorder: the events the store does not hold yet, and the policy's.

    ``drop_saved`` forgets the events of a batch once it is saved, so this recorder and the store
    together hold every event. The policy is this ledger's own (the store's version 1 was
    established by ``init_store`` at another moment), so its events stay here.

    The store held nothing but its policy when the run began, so the records it holds are those
    created here: ``created`` keeps their ids (as integers, ~70 bytes a record), so that existence
    checks and the refusal of a second creation need not ask the store (a query per creation cost
    about as much as the command).
    """

    def __init__(self, own: UUID) -> None:
        super().__init__()
        self.own = own
        self.created: set[int] = set()

    def exists(self, aggregate_id: UUID) -> bool:
        return aggregate_id.int in self.created

    def _insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        created = [_number(s.originator_id) for s in stored_events if s.originator_version == 1]
        if not self.created.isdisjoint(created):
            raise IntegrityError(f"Stored event already recorded: {stored_events}")
        notification_ids = super()._insert_events(stored_events, **kwargs)
        self.created.update(created)
        return notification_ids

    def drop_saved(self) -> None:
        """The store holds every event recorded so far: keep only the policy's."""
        with self._database_lock:
            own = [self._stored_events[i] for i in self._stored_events_index.get(str(self.own), {}).values()]
            self._stored_events.clear()
            self._stored_events_index.clear()
            self._update_table(own)


def _number(originator_id: UUID | str) -> int:
    return (originator_id if isinstance(originator_id, UUID) else UUID(originator_id)).int


class _Collecting(Ledger):
    """The in-memory ledger, collecting each saved event so it need not be read back and decoded.

    Aggregates stay cached and are handed out without a deep copy: replaying or copying them on
    every command is 3/4 of the cost. A refused command may leave a fetched record half-changed,
    so the records fetched since the last ``forget`` are dropped from the cache (see Runner).

    Its memory does not grow with the history: after each batch is saved to the store
    (``batch_saved``), the recorder drops its events, and every ``IDLE`` the records unused since the
    last sweep leave the cache (not the ``ORGANISATION``). A record missing from the cache is read
    back: its saved events through the store's ledger (which unseals the personal fields this ledger
    never sealed), then the unsaved ones after them from here. Existence checks look among the
    records created so far.
    """

    def __init__(self, clock: _Clock, store: Ledger) -> None:
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.popo",
            "AGGREGATE_CACHE_MAXSIZE": "0",
            "AGGREGATE_CACHE_FASTFORWARD": "n",
            "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
        }
        self.store = store
        self.unsaved = _Unsaved(record_uuid(Policy.KIND, Policy.ID))
        super().__init__(env, vault=DryRunVault(), clock=clock)
        self.pending: list[Any] = []
        self.touched: list[UUID] = []
        self.used: set[int] = set()  # records fetched or saved since the last sweep (as UUID.int: hashed in C)
        self.swept = clock()

    def construct_recorder(self) -> ApplicationRecorder:
        return self.unsaved

    def get(self, cls: type[R], record_id: str, version: int | None = None) -> R:
        aggregate_id = record_uuid(cls.KIND, record_id)
        self.touched.append(aggregate_id)
        self.used.add(aggregate_id.int)
        cache = self.repository.cache
        if version is None and cache is not None and aggregate_id not in cache.cache:
            cache.put(aggregate_id, self._read_back(cls, record_id, aggregate_id))
        return super().get(cls, record_id, version)

    def _read_back(self, cls: type[R], record_id: str, aggregate_id: UUID) -> Record | None:
        """The record from the store's events and the unsaved ones after them; None if neither has it."""
        record: Record | None = None
        if aggregate_id != self.unsaved.own:
            with contextlib.suppress(RecordNotFound):
                record = self.store.get(cls, record_id)
            self.store.vault.forget([subject_of(aggregate_id)])  # see _forget_keys
        for event in self.events.get(aggregate_id, gt=record.version if record else None):
            record = cast(Record.Event, event).mutate(record)
        return record

    def _require(self, cls: type[Record], record_id: str) -> None:
        try:
            super()._require(cls, record_id)
        except RecordNotFound:
            aggregate_id = record_uuid(cls.KIND, record_id)
            if not self.unsaved.exists(aggregate_id):
                raise
            self._remember(aggregate_id)

    def forget(self, refused: bool) -> None:
        """After a command: if it was refused, drop what it fetched from the cache."""
        cache = self.repository.cache
        if refused and cache is not None:
            for aggregate_id in self.touched:
                cache.cache.pop(aggregate_id, None)
                self._refs.pop(aggregate_id, None)  # the reference reads may share that object
        self.touched.clear()

    def batch_saved(self) -> None:
        """The pending events are in the store now: drop them here, and sweep the cache every ``IDLE``."""
        self.unsaved.drop_saved()
        cache = self.repository.cache
        if cache is None or self.clock() - self.swept < IDLE:
            return
        used = self.used
        idle = [i for i, record in cache.cache.items() if i.int not in used and not isinstance(record, ORGANISATION)]
        for aggregate_id in idle:
            del cache.cache[aggregate_id]
        self.used.clear()
        self.swept = self.clock()

    def _notify(self, recordings: list[Any]) -> None:
        events = [r.domain_event for r in recordings]
        self.used.update(e.originator_id.int for e in events)
        self.pending.extend(events)


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


class Plans:
    """Every territory-year plan, merged by recording time as one stream of steps.

    Whole territories (every year each) are planned until the plans hold a little over ``events``
    steps, so the number of territories depends on every plan's length: each is built up front, then
    pickled in runs of ``RUN`` steps to a temporary spill file, keeping only its first step in
    memory. ``heapq.merge`` asks every plan for its first step at once, but for a later step
    only when the merge reaches it (each plan is sorted by recording time, and a year's plan starts
    in that year), so a plan's runs are read back one at a time, when its year comes. The merge is
    the one it always was, ties going to the earlier plan, so the history is the same step for step.
    """

    def __init__(self, events: int, years: Sequence[int], spill: IO[bytes]) -> None:
        self._spill = spill
        self._pickler = pickle.Pickler(spill, protocol=pickle.HIGHEST_PROTOCOL)
        self._pickler.dispatch_table = {**copyreg.dispatch_table, Step: _reduce_step, timezone: _reduce_timezone}
        self._plans: list[tuple[Step, list[tuple[int, int]]]] = []  # first step, (offset, size) of each run
        total, copy = 0, 0
        while total < events * 1.02 + 100:  # a few planned steps are refused
            for i, year in enumerate(years):
                steps = year_plan(year, copy, first_year=i == 0)
                self._plans.append((steps[0], [self._write(steps[j : j + RUN]) for j in range(1, len(steps), RUN)]))
                total += len(steps)
            copy += 1
        self._spill.flush()
        self.territories = copy

    def _write(self, run: list[Step]) -> tuple[int, int]:
        offset = self._spill.tell()
        self._pickler.dump(run)
        self._pickler.clear_memo()  # each run is read back on its own
        return offset, self._spill.tell() - offset

    def _steps(self, first: Step, runs: list[tuple[int, int]]) -> Iterator[Step]:
        return chain((first,), chain.from_iterable(map(self._read, runs)))

    def _read(self, run: tuple[int, int]) -> list[Step]:
        offset, size = run
        steps: list[Step] = pickle.loads(os.pread(self._spill.fileno(), size, offset))
        return steps

    def merged(self) -> Iterator[Step]:
        return heapq.merge(*(self._steps(*plan) for plan in self._plans), key=lambda s: s.recorded_at)


def _reduce_step(step: Step) -> Any:
    """Pickle a step as the call that makes it: twice as fast both ways as a dataclass's state."""
    return Step, (step.method, step.kwargs, step.occurred_at, step.recorded_at)


def _bureau_tz() -> tzinfo:
    return BUREAU_TZ


def _reduce_timezone(tz: timezone) -> Any:
    """Pickle the bureau's time zone as a reference to the one object, not as a copy of it.

    The merge compares recording times millions of times, and so do the rules: two times with the
    same tzinfo object compare as plain values, with equal copies each asks both for its offset
    (14 times slower).
    """
    return (_bureau_tz, ()) if tz is BUREAU_TZ else tz.__reduce__()


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

    def __init__(self, store: Ledger) -> None:
        self.store = store  # where the batches go: the in-memory ledger reads back from it
        self.refused = 0  # planned steps the rules refused (e.g. removing an officer removed a year before)
        self.handlers: dict[str, list[str]] = {}  # case -> the handlers it was filed with, when not as planned

    def batches(self, steps: Iterator[Step], limit: int, batch: int) -> Iterator[list[Any]]:
        """Run steps until ``limit`` events are recorded; yield the events every ``batch`` events.

        Save each batch to the store before asking for the next: the in-memory ledger then drops
        those events and reads back from the store what it needs of them.
        """
        clock = _Clock()
        memory = _Collecting(clock, self.store)
        memory.ensure_policy()
        memory.pending.clear()  # the target store holds policy version 1 already (init_store)
        try:
            recorded = 0
            for step in steps:
                if recorded + len(memory.pending) >= limit:
                    break
                clock.now = step.recorded_at
                try:
                    kwargs = self.in_post(memory, step)
                    getattr(memory, step.method)(**kwargs, actor=ADMIN, occurred_at=step.occurred_at)
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
                    memory.batch_saved()
            if memory.pending:
                yield memory.pending
        finally:
            memory.close()

    def in_post(self, memory: Ledger, step: Step) -> dict[str, Any]:
        """A step's arguments, a case's handlers removed from the enforcement post by then (R7: an officer removed in
        an earlier year stays removed, and the plan repeats its year) left out of its filing while others remain,
        and out of its wrongful finding alike."""
        kwargs = step.kwargs
        if step.method == "find_wrongful" and kwargs["case_id"] in self.handlers:
            return {**kwargs, "handler_ids": self.handlers[kwargs["case_id"]]}
        if step.method != "file_case":
            return kwargs
        serving = [h for h in kwargs["handler_ids"] if not _removed_by(memory, h, step.occurred_at)]
        if not serving or serving == kwargs["handler_ids"]:
            return kwargs
        self.handlers[kwargs["case_id"]] = serving
        return {**kwargs, "handler_ids": serving}


def _removed_by(memory: Ledger, person_id: str, moment: datetime) -> bool:
    try:
        removed_at = memory.get(Person, person_id).removed_at
    except DomainError:
        return False
    return removed_at is not None and removed_at <= moment


def _forget_keys(store: Ledger, saved: Sequence[Any]) -> None:
    """Have the store's vault forget the keys it sealed the saved events' personal fields with.

    The vault keeps every record's key it used, with its cipher (~2.5 KiB), until told to forget it,
    which at 10 million events is gigabytes. Most personal fields come with a record's creation, so
    its key is seldom needed again (and is then looked up again).
    """
    store.vault.forget(sorted({subject_of(e.originator_id) for e in saved if getattr(type(e), "personal_fields", ())}))


@contextlib.contextmanager
def _fewer_full_collections() -> Iterator[None]:
    """Collect the oldest generation of objects ten times less often while generating.

    Python collects it once the objects moved there since the last full collection reach a quarter
    of it (and ten younger collections have run). The generator's heap stays small while millions
    of objects pass through it (each batch's events, each month's cases and petitions), so a full
    collection came every few thousand events, each walking every live object (every territory's
    organisation): 7% of a 600k-event run and growing with the territories; 1.5% ten times rarer.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], thresholds[2] * 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


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
        written, saving, saving_cpu = 0, 0.0, 0.0
        runner = Runner(target)
        with tempfile.TemporaryFile(prefix="bench-plans-") as spill:
            plans = Plans(events, years, spill)
            with _fewer_full_collections(), _progress(quiet) as progress:
                task = progress.add_task("generating history", total=events, rate="-")
                for chunk in runner.batches(plans.merged(), events, batch):
                    saved, saved_cpu = time.perf_counter(), time.process_time()
                    target.save(*chunk)
                    saving += time.perf_counter() - saved
                    saving_cpu += time.process_time() - saved_cpu
                    _forget_keys(target, chunk)
                    written += len(chunk)
                    rate = f"{written / (time.perf_counter() - began):,.0f}"
                    progress.update(task, completed=written, rate=rate)
        head = int(target.recorder.max_notification_id() or 0)
        seconds = time.perf_counter() - began
        return Generated(written, head, runner.refused, seconds, saving, plans.territories, saving_cpu)
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
