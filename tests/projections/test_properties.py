"""Property tests: for random histories (valid and refused commands through the Ledger), incremental
projections in random batch splits equal a rebuild, and as_of/known_at answers equal a rebuild from
the events so restricted. SQLite only, to keep each example fast; the engine tests cover PostgreSQL.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.policy import Policy
from domain.units import Unit
from domain.vocabulary import (
    Channel,
    ClueSource,
    DecisionOutcome,
    EscalationLevel,
    MisconductKind,
    PetitionCategory,
    Post,
    UnitKind,
    Violation,
)
from projections import engine
from store.ledger import init_store, open_ledger
from tests.projections.conftest import Clock, at
from tests.projections.test_engine import answers, dump

UNITS = ["kz", "yl", "ys"]
START = at("2024-01-01")

step = st.tuples(
    st.sampled_from(
        [
            "clue",
            "file",
            "major",
            "close_case",
            "wrongful",
            "petition",
            "own",
            "escalate",
            "reply",
            "close",
            "extend",
            "divert",
            "misconduct",
            "remove",
            "reception",
            "amend",
            "decide",
            "agreement",
            "allocate",
            "approve",
            "supervise",
        ]
    ),
    st.integers(0, 2),  # which record
    st.integers(0, 2),  # which unit / variant
    st.integers(0, 200),  # business day
    # recording lag in minutes: the same hour, the next days, or (40 and 400 days) a late entry
    st.sampled_from([0, 30, 60, 61]) | st.integers(0, 3 * 1440) | st.sampled_from([40 * 1440, 400 * 1440]),
)


def act(ledger: Any, clock: Clock, op: str, i: int, v: int, day: int, lag: int) -> None:
    when = START + timedelta(days=day)
    clock.now = max(clock.now, when + timedelta(minutes=lag))
    cmd: dict[str, Any] = {"actor": "prop", "occurred_at": when}
    unit = UNITS[v]
    calls: dict[str, Callable[[], Any]] = {
        "clue": lambda: ledger.report_clue(
            unit,
            Violation.ILLEGAL_LAND_USE,
            ClueSource.PATROL,
            case_id=f"c{i}",
            area_mu=Decimal(12 if v == 0 else 1),
            **cmd,
        ),
        "file": lambda: ledger.file_case(f"c{i}", ["o1"], **cmd),
        "major": lambda: ledger.declare_major(f"c{i}", "重大", **cmd),
        "close_case": lambda: ledger.close_case(f"c{i}", "结案", **cmd),
        "wrongful": lambda: ledger.find_wrongful(f"c{i}", ["o1"], "错案", **cmd),
        "petition": lambda: ledger.register_petition(
            unit,
            Channel.VISIT,
            1 + v * 3,
            "某",
            "事",
            PetitionCategory.OTHER,
            petition_id=f"x{i}",
            skip_level=v == 1,
            **cmd,
        ),
        "own": lambda: ledger.take_ownership(f"x{i}", "kz-head", **cmd),
        "escalate": lambda: ledger.escalate(f"x{i}", EscalationLevel.CITY, v == 2, **cmd),
        "reply": lambda: ledger.reply_petition(f"x{i}", "答复", **cmd),
        "close": lambda: ledger.close_petition(f"x{i}", **cmd),
        "extend": lambda: ledger.extend_petition(f"x{i}", 10 + 20 * v, **cmd),
        "divert": lambda: ledger.divert_petition(f"x{i}", unit, **cmd),
        "misconduct": lambda: [
            ledger.report_misconduct("o1", MisconductKind.TAKING, "某", "拿", **cmd),
            ledger.record_finding("o1", f"r{i + 1}", v != 0, **cmd),
        ],
        "remove": lambda: ledger.remove_from_post("o1", **cmd),
        "reception": lambda: ledger.hold_reception("kz-head", "村", **cmd),
        "amend": lambda: ledger.amend_policy(
            when, {"points_major_case": 10 + 5 * v, "handling_days": 20 + 20 * i}, **cmd
        ),
        "decide": lambda: ledger.decide_trigger(
            ["R4.case.c0", "R7.person.o1.r1", "R18.petition.x0.overdue"][i],
            "R4",
            DecisionOutcome.WARNING,
            "决定",
            **cmd,
        ),
        "allocate": lambda: ledger.allocate_quota(["lc", "gc", "kz"][v], 2024 + i % 2, Decimal(10 + 5 * i), **cmd),
        "approve": lambda: ledger.approve_land(unit, Decimal(3 + 4 * i), "项目", **cmd),
        # 督办 by the city, its deadline days or weeks away: the case board's overdue supervision.
        "supervise": lambda: ledger.supervise(f"c{i}", "laiwu", when + timedelta(days=5 + 20 * v), **cmd),
        # Townships' agreements with their district, and (i = 2) the district's with the city, for two years.
        "agreement": lambda: ledger.sign_agreement(
            2024 + v % 2, "laiwu" if i == 2 else "lc", "lc" if i == 2 else unit, **cmd
        ),
    }
    with contextlib.suppress(DomainError):  # a refused command records nothing; the history goes on
        calls[op]()


def history(directory: Path, steps: list[tuple[str, int, int, int, int]]) -> tuple[str, Any]:
    url = f"sqlite:///{directory / 'ledger.db'}"
    init_store(url)
    clock = Clock(START)
    ledger = open_ledger(url, clock=clock)
    cmd: dict[str, Any] = {"actor": "prop", "occurred_at": START}
    ledger.register_unit("laiwu", "莱芜市", UnitKind.CITY, None, **cmd)
    ledger.register_unit("lc", "莱城区", UnitKind.DISTRICT, "laiwu", **cmd)
    ledger.register_unit("gc", "钢城区", UnitKind.DISTRICT, "laiwu", **cmd)
    for unit, parent in (("kz", "lc"), ("yl", "lc"), ("ys", "gc")):
        ledger.register_unit(unit, unit, UnitKind.TOWNSHIP, parent, **cmd)
    ledger.register_person("镇长", "kz", Post.PRINCIPAL_LEADER, person_id="kz-head", **cmd)
    ledger.register_person("执法员", "yl", Post.ENFORCEMENT_OFFICER, person_id="o1", **cmd)
    for s in steps:
        act(ledger, clock, *s)
    return url, ledger


@pytest.fixture(autouse=True)
def _keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_KEY_FILE", str(tmp_path / "prop.key"))


PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(steps=st.lists(step, min_size=10, max_size=40), cuts=st.lists(st.integers(1, 9), min_size=1, max_size=6))
def test_incremental_batches_equal_a_rebuild(steps: list[Any], cuts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url, ledger = history(Path(tmp), steps)
        for size in cuts:  # a follower per batch size, each taking one batch: random splits of the log
            follower = engine.Follower(url, batch_size=size)
            follower.step()
            follower.derive()  # the current view after each batch: only the records it touched
            follower.close()
        rebuilt = f"sqlite:///{Path(tmp) / 'rebuilt.db'}"
        engine.replay_into(rebuilt, ledger.iter_log())
        engine.catch_up(url, batch_size=cuts[0])
        assert dump(url) == dump(rebuilt)
        assert answers(url) == answers(rebuilt)
        ledger.close()


@PROPERTY
@given(steps=st.lists(step, min_size=10, max_size=40), as_of_day=st.integers(0, 400), known_day=st.integers(0, 400))
def test_as_of_and_known_at_equal_a_rebuild_from_the_events_so_restricted(
    steps: list[Any], as_of_day: int, known_day: int
) -> None:
    as_of, known_at = START + timedelta(days=as_of_day), START + timedelta(days=known_day)
    structure = (Unit.Registered, Policy.Established, Policy.Amended)
    with tempfile.TemporaryDirectory() as tmp:
        url, ledger = history(Path(tmp), steps)
        engine.catch_up(url)
        restricted = [
            (position, e)
            for position, e in ledger.iter_log()
            if e.timestamp <= known_at and (isinstance(e, structure) or e.occurred_at <= as_of)
        ]
        cut = f"sqlite:///{Path(tmp) / 'restricted.db'}"
        engine.replay_into(cut, restricted)
        from projections.queries import Queries

        full, part = Queries(url), Queries(cut)
        for year in (2024, 2025):
            assert full.scores(year, as_of=as_of, known_at=known_at) == part.scores(
                year, as_of=as_of, known_at=known_at
            )
        assert full.triggers(as_of=as_of, known_at=known_at) == part.triggers(as_of=as_of, known_at=known_at)
        assert full.petitions(as_of=as_of, known_at=known_at) == part.petitions(as_of=as_of, known_at=known_at)
        assert full.quota(2024, as_of=as_of, known_at=known_at) == part.quota(2024, as_of=as_of, known_at=known_at)
        assert full.officers(as_of=as_of, known_at=known_at) == part.officers(as_of=as_of, known_at=known_at)
        full.close()
        part.close()
        ledger.close()


def _lean_answers(url: str, as_of: Any, known_at: Any) -> list[Any]:
    from projections.queries import Queries

    q = Queries(url)
    try:
        moment = {"as_of": as_of, "known_at": known_at}
        found: list[Any] = [q.scores(year, u, **moment) for year in (2024, 2025) for u in (None, "lc", "kz", "gc")]
        found += [q.triggers(status, u, **moment) for status in (None, "open") for u in (None, "lc", "kz", "ys")]
        found += [q.trigger(t["id"], **moment) for t in q.triggers(**moment)]
        found += [q.monthly(f"2024-{m:02d}", known_at=known_at) for m in (2, 5, 9)]
        found += [q.weekly("2024-W20", known_at=known_at), q.daily("2024-06-30", known_at=known_at)]
        return found
    finally:
        q.close()


@PROPERTY
@given(steps=st.lists(step, min_size=10, max_size=40), as_of_day=st.integers(0, 400), known_day=st.integers(0, 400))
def test_lean_folds_answer_as_full_folds(steps: list[Any], as_of_day: int, known_day: int) -> None:
    """Scores, triggers and reports read only some event types, data and (scores) years (精简读取): same answers
    as reading all."""
    from projections import history as folds
    from projections import queries, reports
    from projections.catalog import PROJECTIONS

    as_of, known_at = START + timedelta(days=as_of_day), START + timedelta(days=known_day)
    with tempfile.TemporaryDirectory() as tmp:
        url, ledger = history(Path(tmp), steps)
        engine.catch_up(url)
        lean = _lean_answers(url, as_of, known_at)
        with pytest.MonkeyPatch.context() as mp:
            every_type = tuple({f.type for p in PROJECTIONS.values() for f in p.facts.values()})
            mp.setattr(folds, "READ_DATA", every_type)  # every event's data decoded
            mp.setattr(folds, "DECISION_LOOKUP", 0)  # every decision read
            mp.setattr(folds.Known, "_in_window", lambda self, projection: ("", []))  # every year's records read
            for module, name in ((queries, "SCORE_TYPES"), (queries, "TRIGGER_TYPES"), (reports, "REPORT_TYPES")):
                mp.setattr(module, name, None)  # every event type read
            assert _lean_answers(url, as_of, known_at) == lean
        ledger.close()


def _answers_now(url: str, fold: bool) -> list[Any]:
    """Today's answers, from the current view or (``fold``) folded from the facts at as_of = known_at = now."""
    from domain.application import utc_now
    from projections.queries import Queries

    q = Queries(url, view=not fold)
    try:
        assert fold or q._now(None, None), "the current view is up to its facts"
        now = utc_now()
        moment = {"as_of": now, "known_at": now} if fold else {}
        found: list[Any] = [q.scores(year, u, **moment) for year in (2024, 2025) for u in (None, "lc", "kz", "gc")]
        found += [q.triggers(status, u, **moment) for status in (None, "open", "decided") for u in (None, "lc", "ys")]
        found += [q.petitions(status, None, u, **moment) for status in (None, "open", "overdue") for u in (None, "kz")]
        found += [
            q.petitions(None, flag, None, **moment) for flag in ("collective", "escalated", "skip_level", "unowned")
        ]
        found += [q.officers(status, u, **moment) for status in (None, "removal_due") for u in (None, "lc")]
        found += [q.officers(limit=2, **moment), q.officers(unit_id="lc", limit=1, **moment)]
        found += _case_board(q, moment)
        for year in (2024, 2025):
            found += [q.quota_deductions(year, **moment), q.quota(year, **moment)]
            found += [q.quota_deductions(year, limit=1, after="gc", **moment), q.quota(year, limit=1, **moment)]
        return found
    finally:
        q.close()


def _case_board(q: Any, moment: dict[str, Any]) -> list[Any]:
    """The case board every way it is asked: by status, flag and unit, whole and a page at a time."""
    found: list[Any] = [q.cases(status, None, u, **moment) for status in (None, "open", "closed") for u in (None, "kz")]
    found += [q.cases(None, flag, None, **moment) for flag in ("major", "supervision_overdue", "not_investigated")]
    found += [q.cases(limit=1, **moment), q.cases("open", unit_id="lc", limit=2, **moment)]
    return found


@PROPERTY
@given(steps=st.lists(step, min_size=10, max_size=40), cuts=st.lists(st.integers(1, 9), min_size=1, max_size=4))
def test_the_current_view_answers_as_the_fold_does_now(steps: list[Any], cuts: list[int]) -> None:
    """现状视图: answers about now from the stored rows equal the fold of every fact at as_of = known_at = now,
    with the view kept up batch by batch."""
    with tempfile.TemporaryDirectory() as tmp:
        url, ledger = _kept_up(Path(tmp), steps, cuts)
        assert _answers_now(url, fold=False) == _answers_now(url, fold=True)
        ledger.close()


def _kept_up(directory: Path, steps: list[Any], cuts: list[int]) -> tuple[str, Any]:
    """A history whose projections and current view were kept up batch by batch, a follower per batch size."""
    url, ledger = history(directory, steps)
    for size in cuts:
        follower = engine.Follower(url, batch_size=size)
        follower.step()
        follower.derive()
        follower.close()
    engine.catch_up(url, batch_size=cuts[0])
    return url, ledger


def _answers_past(url: str, as_of: Any, known_at: Any, fold: bool) -> list[Any]:
    """Answers as of a past moment as known now (``known_at`` ``None``) or at a later past moment: from the current
    view and a fold of the records revised after ``as_of`` or with facts recorded after ``known_at``
    (``current.live``, ``projections.late``), or (``fold``) folded from every fact so restricted."""
    from projections import late
    from projections.catalog import micros
    from projections.queries import Queries

    q = Queries(url, view=not fold)
    try:
        if not fold and (
            known_at is None or (known_at >= as_of and not late.policy_revised(q.db, micros(as_of), micros(known_at)))
        ):
            assert q._past(as_of, known_at, None) is not None, "the current view answers the past question"
        moment = {"as_of": as_of, "known_at": known_at}
        found: list[Any] = [q.scores(year, u, **moment) for year in (2024, 2025) for u in (None, "lc", "kz", "gc")]
        found += [q.triggers(status, u, **moment) for status in (None, "open", "decided") for u in (None, "lc", "ys")]
        found += [q.petitions(status, None, u, **moment) for status in (None, "open", "closed") for u in (None, "kz")]
        found += [q.petitions(None, flag, "lc", **moment) for flag in ("escalated", "skip_level", "unowned")]
        found += _case_board(q, moment)
        for year in (2024, 2025):
            found += [q.quota(year, **moment), q.quota_deductions(year, **moment)]
            found += [q.quota(year, limit=1, after="gc", **moment), q.quota_deductions(year, limit=1, **moment)]
        return found
    finally:
        q.close()


@settings(PROPERTY, max_examples=80)  # the cases that tell (a removal after as_of, say) are rarer than most
@given(
    steps=st.lists(step, min_size=10, max_size=40),
    cuts=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    as_of_days=st.lists(st.integers(0, 400), min_size=1, max_size=4),
)
# A case supervised, filed, closed and found wrongful, asked about between its steps: its board row as it stood then
# (random histories seldom ask about a moment inside a case's steps).
@example(
    steps=[
        ("clue", 1, 1, 10, 0),
        ("supervise", 1, 0, 12, 0),
        ("file", 1, 0, 20, 0),
        ("close_case", 1, 0, 30, 0),
        ("wrongful", 1, 0, 40, 0),
        ("clue", 2, 0, 14, 0),
        ("file", 2, 0, 60, 0),
    ],
    cuts=[2],
    as_of_days=[11, 15, 25, 35, 50],
)
def test_the_current_view_answers_past_questions_as_the_fold_does(
    steps: list[Any], cuts: list[int], as_of_days: list[int]
) -> None:
    """现状视图 as of a past moment (as known now): the rows of the records no later fact revises, and a fold of the
    others, answer as the fold of every fact does; with the view kept up batch by batch."""
    with tempfile.TemporaryDirectory() as tmp:
        url, ledger = _kept_up(Path(tmp), steps, cuts)
        for day in as_of_days:
            as_of = START + timedelta(days=day)
            assert _answers_past(url, as_of, None, fold=False) == _answers_past(url, as_of, None, fold=True)
        ledger.close()


@settings(PROPERTY, max_examples=80)
@given(
    steps=st.lists(step, min_size=10, max_size=40),
    cuts=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    # as_of: a day something happened on (or, past the steps, a year later); known_at: minutes after it (before: a fold)
    moments=st.lists(
        st.tuples(st.integers(0, 45), st.integers(-1440, 2 * 1440) | st.integers(0, 60 * 1440)), min_size=1, max_size=4
    ),
)
# Facts of one day recorded half an hour, two days and 45 days later, asked about within each lag: random histories
# seldom record a fact only minutes after it happened, their clock having run ahead to the latest day drawn.
@example(
    steps=[("clue", 0, 0, 10, 30), ("petition", 0, 1, 10, 2 * 1440), ("clue", 1, 0, 10, 45 * 1440)],
    cuts=[2],
    moments=[(0, 10), (0, 1440), (0, 3 * 1440)],
)
# A major case (R4) known in time whose filing was entered 40 days late: folded, and still major.
@example(steps=[("clue", 0, 0, 10, 0), ("file", 0, 0, 12, 40 * 1440)], cuts=[1], moments=[(1, 1440)])
def test_the_current_view_answers_questions_as_known_at_a_past_moment_as_the_fold_does(
    steps: list[Any], cuts: list[int], moments: list[tuple[int, int]]
) -> None:
    """迟录事实: as of a past moment as known at a later one (up to sixty days, so every lag class is asked about),
    the view's rows of the records with no fact recorded in between, a fold of the others and of R6 for the years
    such facts touch, answer as the fold of every fact so restricted does."""
    with tempfile.TemporaryDirectory() as tmp:
        url, ledger = _kept_up(Path(tmp), steps, cuts)
        for n, minutes in moments:
            as_of = START + timedelta(days=steps[n][3] if n < len(steps) else 366 + n)
            known_at = as_of + timedelta(minutes=minutes)
            assert _answers_past(url, as_of, known_at, fold=False) == _answers_past(url, as_of, known_at, fold=True)
        ledger.close()


#: A petition registered 4 minutes ahead of the recording clock (within the writers' skew), when the clock allows.
ahead = st.tuples(st.just("petition"), st.integers(0, 2), st.integers(0, 2), st.integers(0, 200), st.just(-4))


def _moments(url: str) -> dict[str, list[int]]:
    """The moments a fold moves at, from a fold after the whole history: handling and filing deadlines, and the
    facts' business and recording times."""
    from projections.catalog import PROJECTIONS
    from projections.db import Db
    from projections.queries import Queries

    q = Queries(url)
    k = q.known(START + timedelta(days=900), START + timedelta(days=900))
    found = {"deadline": [p.deadline for p in k.petitions], "filing": [c.filing_deadline for c in k.cases]}
    q.close()
    db = Db(url)
    tables = [t for p in PROJECTIONS.values() for t in (p.records_table, p.events_table)]
    for column in ("occurred_at", "recorded_at"):
        found[column] = [int(r[0]) for t in tables for r in db.query(f"SELECT {column} FROM {t}")]
    db.close()
    return found


#: Periods over in every history drawn (business days 0-200 of 2024): a month, a week and a day.
ENDED = [("monthly", "2024-02"), ("monthly", "2024-05"), ("weekly", "2024-W20"), ("daily", "2024-06-30")]


@settings(PROPERTY, max_examples=60)
@given(
    steps=st.lists(step, min_size=10, max_size=40),
    # as known a few days, months or a year after the first period's end, or before it (then always folded)
    known_days=st.lists(st.integers(0, 600), min_size=1, max_size=4),
)
# A petition of February entered 40 days late: as known then the issued bulletin; as known after, a fold with it.
@example(steps=[("petition", 0, 0, 40, 0)] * 10 + [("petition", 1, 1, 45, 40 * 1440)], known_days=[62, 80, 100])
# An amendment in force from a day in May, recorded 40 days later (it falls in the history's clock at day 150).
@example(steps=[("petition", 0, 0, 130, 0)] * 10 + [("amend", 0, 0, 140, 40 * 1440)], known_days=[160, 200])
# A decision on x0's overdue (R18, from day 61) dated day 100 and entered 400 days late: open as issued, decided after.
@example(steps=[("petition", 0, 0, 0, 0)] * 10 + [("decide", 2, 0, 100, 400 * 1440)], known_days=[200, 560])
def test_a_report_as_known_later_is_its_issued_one_unless_a_late_entry_changed_it(
    steps: list[Any], known_days: list[int]
) -> None:
    """R13 as known at a later moment (as of the period's end): the report as issued, or the last one folded as known
    at a moment before, its ``known_at`` restated, when nothing entered in between changes it
    (``reports.as_known_at``), else folded and kept; either way the fold of the facts so restricted, for every
    period and moment drawn, in the order drawn."""
    from projections import reports
    from projections.queries import Queries

    with tempfile.TemporaryDirectory() as tmp:
        url, ledger = history(Path(tmp), steps)
        engine.catch_up(url)
        q = Queries(url)
        for days in known_days:
            known_at = START + timedelta(days=days)
            for kind, label in ENDED:
                asked = getattr(q, kind)(label, known_at=known_at)
                assert asked == reports.build(q, kind, label, None, known_at), (kind, label, days)
        q.close()
        ledger.close()


@settings(PROPERTY, max_examples=100)
@given(
    steps=st.lists(step | ahead, min_size=10, max_size=40),
    anchor=st.sampled_from(["deadline", "filing", "occurred_at", "recorded_at"]),
    pick=st.integers(0, 1000),
    before=st.integers(0, 120) | st.integers(0, 3 * 1440),
    share=st.sampled_from([1.0]) | st.floats(0, 1),
    hour=st.integers(0, 23),
)
@example(steps=[("clue", 0, 0, 5, 0)] * 10, anchor="filing", pick=0, before=10, share=1.0, hour=13)  # 有案不查
def test_a_running_report_stands_until_its_steady_moment(
    steps: list[Any], anchor: str, pick: int, before: int, share: float, hour: int
) -> None:
    """进行中的报告: the reports of the periods in progress, folded at a moment as known then, are the fold at any
    later moment up to ``steady_until`` (as known then), but for those two stamps: what lets an ask read the kept
    fold. The moment lies shortly before a handling or filing deadline, a fact's business time (some dated ahead
    of the recording clock) or its recording time, so each of them falls inside the span checked. The history's
    business times are moved to ``hour`` past midnight, or every deadline would fall on one."""
    from projections import reports
    from projections.catalog import from_micros, micros
    from projections.history import REPORT_TYPES
    from projections.queries import Queries

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys.modules[__name__], "START", START + timedelta(hours=hour))
        url, ledger = history(Path(tmp), steps)
        engine.catch_up(url)
        candidates = _moments(url)[anchor] or [micros(START)]
        moment = from_micros(candidates[pick % len(candidates)]) - timedelta(minutes=before)
        q = Queries(url)
        k = q.known(moment, moment, lean=True, only=REPORT_TYPES)
        until = reports.steady_until(k)
        assert k.as_of <= until
        later = from_micros(k.as_of + int((until - k.as_of) * share))
        again = q.known(later, later, lean=True, only=REPORT_TYPES)
        for kind, label in reports.in_progress(moment):
            stamps = {"as_of", "known_at"}
            then, now = reports.report(k, kind, label), reports.report(again, kind, label)
            assert {key: v for key, v in then.items() if key not in stamps} == {
                key: v for key, v in now.items() if key not in stamps
            }, (kind, label, micros(later))
        q.close()
        ledger.close()


@settings(PROPERTY, max_examples=40)
@given(
    steps=st.lists(step | ahead, min_size=10, max_size=40),
    share=st.floats(0, 1),
    moments=st.lists(st.tuples(st.integers(0, 420), st.integers(0, 420)), min_size=1, max_size=3),
)
def test_folds_of_the_facts_kept_in_memory_equal_folds_of_the_tables(
    steps: list[Any], share: float, moments: list[tuple[int, int]]
) -> None:
    """事实缓存: the issuer folds the city's facts kept in memory (``projections.facts``), read once and caught up
    with the rows applied since, instead of reading the tables every fold. Its reports — and every trigger and
    deduction they count — are those of the folds that read the tables, at any moment as known at any other."""
    from projections import reports
    from projections.db import Db
    from projections.history import REPORT_TYPES
    from projections.queries import Queries

    with tempfile.TemporaryDirectory() as tmp:
        url, ledger = history(Path(tmp), steps)
        # The facts are first read part of the way through the log.
        head = engine.log_head(Db(url))
        follower = engine.Follower(url, batch_size=max(1, int(head * share)))
        follower.step()
        follower.close()
        kept, tables = Queries(url), Queries(url)
        kept.memory = True
        kept.known(START, START, lean=True, only=REPORT_TYPES)
        engine.catch_up(url)  # then caught up with the rest
        for as_of_day, known_day in moments:
            as_of, known_at = START + timedelta(days=as_of_day), START + timedelta(days=known_day)
            folds = [q.known(as_of, known_at, lean=True, only=REPORT_TYPES) for q in (kept, tables)]
            assert folds[0].facts is not None and folds[1].facts is None
            for kind, label in [("monthly", f"2024-{m:02d}") for m in (1, 4, 7)] + [("weekly", "2024-W20")]:
                assert reports.report(folds[0], kind, label) == reports.report(folds[1], kind, label), (kind, label)
        kept.close()
        tables.close()
        ledger.close()
