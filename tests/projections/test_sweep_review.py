"""逐日推演 under review: the sweep against the fold where the histories are harder than test_sweep's — decisions
recorded before and after their R4 / R6 triggers, principal leaders registered or removed after a case became
major, units registered mid-history, policy amended late or retroactively, facts recorded at a deadline or ahead of
the clock — and :meth:`Sweep.until` against the fold at later moments."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.agreements import agreement_id
from domain.errors import DomainError
from domain.vocabulary import (
    Channel,
    ClueSource,
    Commendation,
    DecisionOutcome,
    EscalationLevel,
    PetitionCategory,
    Post,
    UnitKind,
    Violation,
)
from projections import engine, reports, sweep
from projections.catalog import from_micros, micros
from projections.db import Db
from projections.history import REPORT_TYPES
from projections.queries import Queries
from tests.projections import test_properties as props
from tests.projections.conftest import Clock, World, at
from tests.projections.test_properties import PROPERTY
from tests.projections.test_sweep import check, midnight_after, swept


@pytest.fixture(autouse=True)
def _keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_KEY_FILE", str(tmp_path / "sweep-review.key"))


def fold(q: Queries, moment: datetime, kind: str, label: str) -> dict[str, Any]:
    k = q.known(moment, moment, lean=True, only=REPORT_TYPES)
    return reports.report(k, kind, label)


def unstamped(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: v for key, v in answer.items() if key not in ("as_of", "known_at")}


def steady(s: sweep.Sweep, q: Queries, later: datetime) -> None:
    """The periods in progress at the sweep's moment: the sweep's answers are the fold's then, and the fold's at
    ``later`` (up to ``until``) but for the stamps."""
    moment = from_micros(s.moment)
    assert micros(later) <= s.until()
    for kind, label in reports.in_progress(moment):
        answer = s.report(kind, label)
        assert answer == fold(q, moment, kind, label), (kind, label)
        assert unstamped(answer) == unstamped(fold(q, later, kind, label)), (kind, label, later)


def clue(w: World, case_id: str, unit: str, when: str, area: int = 12) -> None:
    w.do("report_clue", unit, Violation.ILLEGAL_LAND_USE, ClueSource.PATROL, case_id=case_id,
         area_mu=Decimal(area), when=when)  # fmt: skip


def test_until_stops_before_a_policy_amendment_already_recorded_ahead(world: World) -> None:
    """A retroactive amendment recorded (by a writer whose clock ran ahead) after the moment reached changes the
    points of a deduction already in the period once it is known: ``until`` is before its recording time, as
    ``reports.steady_until`` is."""
    w = world
    w.do("register_petition", "kz", Channel.VISIT, 1, "某", "事", PetitionCategory.OTHER, petition_id="x1",
         skip_level=True, when="2024-05-10T10:00")  # fmt: skip
    w.clock.set("2024-05-10T12:00")
    w.ledger.amend_policy(at("2024-05-01"), {"points_skip_level_petition": 7}, actor="t", occurred_at=at("2024-05-01"))
    engine.catch_up(w.url)
    s, q = swept(w.url)
    s.advance(micros(at("2024-05-10T11:00")))
    steady(s, q, from_micros(s.until()))
    q.close()


def test_until_stops_before_a_unit_already_recorded_ahead(world: World) -> None:
    """A township registered by a writer whose clock ran ahead, then a petition in it by one whose clock is right:
    until the township is known, the petition counts for an unknown unit of its own; ``until`` stops before."""
    w = world
    w.clock.set("2024-05-10T12:00")
    w.ledger.register_unit("nz", "新镇", UnitKind.TOWNSHIP, "lc", actor="t", occurred_at=at("2024-05-10T09:00"))
    w.clock.set("2024-05-10T10:00")
    w.do("register_petition", "nz", Channel.VISIT, 1, "某", "事", PetitionCategory.OTHER, petition_id="x1",
         when="2024-05-10T10:00")  # fmt: skip
    engine.catch_up(w.url)
    s, q = swept(w.url)
    s.advance(micros(at("2024-05-10T11:00")))
    steady(s, q, from_micros(s.until()))
    q.close()
