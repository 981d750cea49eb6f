"""The history generator writes what one in-memory ledger keeping everything records (历史数据生成器).

The generator keeps little in memory (plans spilled to a file, saved events dropped, idle records
read back from the store); the reference here keeps it all: every plan in memory, merged the same
way, run through a plain in-memory ledger that reads every record from its own log. Both logs are
compared event by event, decoded (the store seals personal fields with random nonces).
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from api.demo import ADMIN, Step
from bench import generate as generator
from domain.application import Ledger
from domain.errors import DomainError
from domain.personal import DryRunVault
from store.ledger import open_ledger

EVENTS = 20_000
YEARS = (2021, 2022, 2023, 2024, 2025)


def decoded(ledger: Ledger, transcoder: Any) -> Iterator[tuple[int, str, Any, int, bytes]]:
    """The history after policy version 1: position, event type, record, version and attributes."""
    for position, event in ledger.iter_log(start=2):
        yield (
            position,
            type(event).__qualname__,
            event.originator_id,
            event.originator_version,
            transcoder.encode(vars(event)),
        )


def all_plans(years: Sequence[int], territories: int) -> list[list[Step]]:
    """Every territory-year plan, in memory, territory by territory."""
    return [
        generator.year_plan(year, copy, first_year=i == 0)
        for copy in range(territories)
        for i, year in enumerate(years)
    ]


def reference(events: int, plans: list[list[Step]]) -> Ledger:
    """The plans merged by recording time and run until ``events`` are recorded, every event kept."""
    clock = generator._Clock()
    ledger = Ledger({"PERSISTENCE_MODULE": "eventsourcing.popo"}, vault=DryRunVault(), clock=clock)
    ledger.ensure_policy()
    handlers = generator.Runner(ledger)  # a filing leaves out its handlers removed by then, as the generator's does
    for step in heapq.merge(*plans, key=lambda s: s.recorded_at):
        if ledger.recorder.max_notification_id() == events + 1:
            break
        clock.now = step.recorded_at
        with contextlib.suppress(DomainError):  # refused, as by the generator
            kwargs = handlers.in_post(ledger, step)
            getattr(ledger, step.method)(**kwargs, actor=ADMIN, occurred_at=step.occurred_at)
    return ledger


@pytest.mark.parametrize("evict", [False, True], ids=["as run", "records unused for a batch read back"])
def test_generator_writes_what_a_ledger_keeping_everything_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evict: bool
) -> None:
    if evict:  # a record unused for a batch leaves the cache after it: it is read back from the store
        monkeypatch.setattr(generator, "IDLE", timedelta(0))
        monkeypatch.setattr(generator, "ORGANISATION", ())
    url = f"sqlite:///{tmp_path / 'gen.db'}"
    generated = generator.generate(url, EVENTS, batch=50 if evict else 2000, years=YEARS, quiet=True)
    assert (generated.events, generated.head) == (EVENTS, EVENTS + 1)
    assert generated.refused > 0  # refused steps, whose records are dropped from the cache, were run

    planned = all_plans(YEARS, generated.territories)
    # as many territories as it takes for the plans to hold a little over the events asked for
    assert sum(map(len, planned[: -len(YEARS)])) < EVENTS * 1.02 + 100 <= sum(map(len, planned))
    expected = reference(EVENTS, planned)
    store = open_ledger(url)
    try:
        transcoder = store.mapper.transcoder
        written = list(decoded(store, transcoder))
        assert written == list(decoded(expected, transcoder))
    finally:
        store.close()
        expected.close()
    assert len(written) == EVENTS
