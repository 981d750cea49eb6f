"""Fixtures for the projection tests: a ledger whose recording clock the test moves, and a small territory.

``store_url`` (both stores) comes from tests/conftest.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from domain.application import Ledger
from domain.base import BUREAU_TZ
from domain.vocabulary import UnitKind
from projections import engine
from projections.queries import Queries
from store.ledger import open_ledger


def at(text: str) -> datetime:
    """A business or recording time in the bureau's zone: ``at("2024-03-01")`` or ``at("2024-03-01T10:00")``."""
    return datetime.fromisoformat(text).replace(tzinfo=BUREAU_TZ)


class Clock:
    """The ledger's recording clock, moved by the test (so recording times are known exactly)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, text: str) -> None:
        self.now = at(text)


@dataclass
class World:
    """A ledger on a fresh store, with the city of Laiwu, two districts and three townships."""

    url: str
    ledger: Ledger
    clock: Clock

    def do(self, method: str, *args: Any, when: str, **kwargs: Any) -> Any:
        """Record a command with business time ``when`` (the clock is moved forward to it if behind)."""
        moment = at(when)
        if self.clock.now < moment:
            self.clock.now = moment
        return getattr(self.ledger, method)(*args, actor="test", occurred_at=moment, **kwargs)

    def queries(self) -> Queries:
        engine.catch_up(self.url)
        return Queries(self.url)

    def folds(self) -> Queries:
        """Answers folded from the facts alone, never read from the current view: what the view must match."""
        engine.catch_up(self.url)
        return Queries(self.url, view=False)


@pytest.fixture
def world(store_url: str) -> Iterator[World]:
    w = city(store_url)
    try:
        yield w
    finally:
        w.ledger.close()


def city(store_url: str) -> World:
    """The world's ledger on the store at ``store_url``, its units registered (the caller closes its ledger)."""
    clock = Clock(at("2024-01-01"))
    ledger = open_ledger(store_url, clock=clock)
    w = World(store_url, ledger, clock)
    w.do("register_unit", "laiwu", "莱芜市", UnitKind.CITY, None, when="2024-01-01")
    w.do("register_unit", "lc", "莱城区", UnitKind.DISTRICT, "laiwu", when="2024-01-01")
    w.do("register_unit", "gc", "钢城区", UnitKind.DISTRICT, "laiwu", when="2024-01-01")
    w.do("register_unit", "kz", "口镇", UnitKind.TOWNSHIP, "lc", when="2024-01-01")
    w.do("register_unit", "yl", "羊里镇", UnitKind.TOWNSHIP, "lc", when="2024-01-01")
    w.do("register_unit", "ys", "艾山街道", UnitKind.TOWNSHIP, "gc", when="2024-01-01")
    return w


def end_of(day: str) -> datetime:
    return at(day) + timedelta(days=1)


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def ended(pids: set[int], within: float = 10.0) -> bool:
    """Whether these processes have all ended, waiting at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(alive(pid) for pid in pids)
