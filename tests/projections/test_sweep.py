"""逐日推演 (the report sweep, ``projections.sweep``): a history's R13 reports summed in one walk forward through
time equal the fold's, as of each period's end and as known then — for random histories, for a generated city on
both stores, whatever the stride of the walk; and a fact arriving for a moment already passed is seen."""

from __future__ import annotations

import sys
import tempfile
import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.base import BUREAU_TZ
from domain.vocabulary import EscalationLevel, Post
from projections import engine, reports, sweep
from projections.catalog import ISSUED, from_micros, micros
from projections.db import Db
from projections.facts import Facts
from projections.history import REPORT_TYPES
from projections.queries import Queries
from tests.projections import test_properties as props
from tests.projections.conftest import World, at
from tests.projections.test_properties import PROPERTY, ahead, history, step
from tests.projections.test_rules import petition


def midnight_after(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=BUREAU_TZ) + timedelta(days=1)


def swept(url: str) -> tuple[sweep.Sweep, Queries]:
    q = Queries(url)
    facts = Facts()
    facts.catch_up(q.db)
    return sweep.Sweep(q.db, facts), q


def swept_near(url: str, anchor: str, pick: int, before: int, walked: bool) -> tuple[sweep.Sweep, Queries, datetime]:
    """A sweep moved on to a moment ``before`` minutes ahead of a deadline or a fact's time (``anchor``, one picked
    by ``pick``: :func:`test_properties._moments`), walked there midnight by midnight or in one jump; the moment."""
    candidates = props._moments(url)[anchor] or [micros(props.START)]
    moment = from_micros(candidates[pick % len(candidates)]) - timedelta(minutes=before)
    s, q = swept(url)
    if walked:
        day = props.START.date() - timedelta(days=2)
        while midnight_after(day) < moment:
            s.advance(micros(midnight_after(day)))
            day += timedelta(days=1)
    s.advance(micros(moment))
    return s, q, moment


def apply_part(url: str, share: float) -> None:
    """Apply only a ``share`` of the log to the projections: the rest is applied later (:func:`take_the_rest`)."""
    db = Db(url)
    follower = engine.Follower(url, batch_size=max(1, int(engine.log_head(db) * share)))
    follower.step()
    follower.close()
    db.close()


def take_the_rest(s: sweep.Sweep, q: Queries, url: str) -> None:
    """Apply the rest of the log and take its facts into the sweep, many recorded before the moment it reached."""
    engine.catch_up(url)
    s.facts.catch_up(q.db)
    assert s.take_in()


def issue_backlog(url: str, now: datetime) -> None:
    """The issuer's steps until nothing is left to back-issue (the first also folds the periods in progress)."""
    _, pending = reports.step(url, now, [], None)
    while pending:
        _, pending = reports.step(url, now, [], pending)


def sweeping_issuer(url: str, now: datetime) -> Queries:
    """The backlog issued, and the periods in progress answered by the issuer's sweep (their kept fold dropped, as
    if a deadline had passed): the issuer now says it sweeps. Queries on the store, for the caller to close."""
    from projections import lease
    from projections.catalog import RUNNING

    issue_backlog(url, now)
    q = Queries(url)
    q.db.execute(f"DELETE FROM {RUNNING}")
    reports.step(url, now, [], [])
    assert lease.announced(q.db, reports.SWEEPING)
    return q


def counted(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """The calls of ``reports.<name>`` (a fold), counted from now on."""
    calls: list[Any] = []
    real = getattr(reports, name)

    def counting(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(reports, name, counting)
    return calls


def check(s: sweep.Sweep, q: Queries, day: date) -> list[dict[str, Any]]:
    """Every report ending at the midnight after ``day``: the sweep's (moved on to it) and the fold's are equal."""
    end = midnight_after(day)
    s.advance(micros(end))
    k = q.known(end, end, lean=True, only=REPORT_TYPES)
    found = []
    for kind, label in reports.ending_after(day):
        found.append(s.report(kind, label))
        assert found[-1] == reports.report(k, kind, label), (kind, label)
    return found


@pytest.fixture(autouse=True)
def _keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_KEY_FILE", str(tmp_path / "sweep.key"))


@settings(PROPERTY, max_examples=40)
@given(
    steps=st.lists(step | ahead, min_size=10, max_size=40),
    hour=st.sampled_from([0]) | st.integers(0, 23),
    daily=st.booleans(),
    picks=st.lists(st.integers(0, 640), min_size=1, max_size=6),
    share=st.sampled_from([1.0]) | st.floats(0, 1),
    pause=st.integers(0, 640),
)
@example(steps=[("clue", 0, 0, 5, 0)] * 10, hour=0, daily=False, picks=[20, 21], share=1.0, pause=0)  # 有案不查
def test_the_sweep_sums_every_report_as_the_fold_does(
    steps: list[Any], hour: int, daily: bool, picks: list[int], share: float, pause: int
) -> None:
    """At each moment checked (every month's end, and days picked at random up to late entries' recording), the
    reports the sweep sums equal the fold's; the sweep moves on either every midnight or only to those moments.
    The histories hold every command the rules know, late entries and facts dated ahead of the recording clock;
    their business times lie ``hour`` past midnight (0: every deadline falls on a midnight, where it has not yet
    passed). Only a ``share`` of the log is applied at first; the rest is applied and taken in at the day ``pause``,
    many of its facts recorded before the moment the sweep reached: from then on the fold reads them all."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        start = props.START + timedelta(hours=hour)
        mp.setattr(sys.modules[props.__name__], "START", start)
        url, ledger = history(Path(tmp), steps)
        apply_part(url, share)
        s, q = swept(url)
        first = props.START.date() - timedelta(days=1)
        checked = {n for n in range(641) if (first + timedelta(days=n + 1)).day == 1} | set(picks)
        for n in sorted(set(range(641) if daily else checked) | {pause}):
            if n == pause:
                take_the_rest(s, q, url)
            day = first + timedelta(days=n)
            if n in checked:
                check(s, q, day)
            else:
                s.advance(micros(midnight_after(day)))
        q.close()
        ledger.close()


def test_a_generated_city_on_both_stores(store_url: str) -> None:
    """A city ``bench.generate`` wrote (every kind of record, leaders' receptions, agreements, decisions, late
    entries) on each store: swept every midnight of two years, its reports equal the fold's at every month's end
    and every ninth day."""
    from bench import generate

    generate.generate(store_url, 2_500, years=(2024, 2025), quiet=True)
    engine.catch_up(store_url)
    s, q = swept(store_url)
    day, last, checked = date(2023, 12, 31), date(2025, 12, 31), []
    while day <= last:
        if (day + timedelta(days=1)).day == 1 or day.toordinal() % 9 == 0:
            checked += check(s, q, day)
        else:
            s.advance(micros(midnight_after(day)))
        day += timedelta(days=1)
    assert len(checked) > 100
    # what the reports compared hold: every kind of count, deductions and triggers
    rules = {t["rule"] for r in checked for t in r["triggers_opened"]}
    assert {"R4", "R6", "R7", "R14", "R18"} <= rules and sum(len(r["deductions"]) for r in checked) > 100
    totals = {
        f"{group}.{key}": sum(r[group][key] for r in checked)
        for group in ("petitions", "cases")
        for key in checked[0][group]
        if key != "by_resource"
    }
    assert all(totals.values()), totals
    q.close()


def test_a_fact_recorded_before_the_moment_reached_is_taken_in_at_the_next(world: World) -> None:
    """A fact applied after the sweep passed the moment it was recorded by — a writer whose clock ran behind, a late
    commit — is taken in when the sweep next moves on: from then on its reports are the fold's (the reports already
    summed without it are the issuer's to fold again when asked: ``reports.issued``)."""
    w = world
    petition(w, "x1", "kz", "2024-05-10")
    engine.catch_up(w.url)
    s, q = swept(w.url)
    assert check(s, q, date(2024, 5, 31))[-1]["petitions"]["registered"] == 1  # the bulletin of May
    w.clock.set("2024-05-25T09:00")  # a writer's clock behind the moment the sweep reached
    petition(w, "x3", "kz", "2024-05-25")
    engine.catch_up(w.url)
    s.facts.catch_up(q.db)
    assert s.take_in()
    assert s.report("monthly", "2024-05")["petitions"]["registered"] == 1  # not taken in before moving on
    s.advance(micros(at("2024-06-01T12:00")))
    assert s.report("monthly", "2024-06")["petitions"]["registered"] == 0
    k = q.known(at("2024-06-01T12:00"), at("2024-06-01T12:00"), lean=True, only=REPORT_TYPES)
    assert s.report("monthly", "2024-06") == reports.report(k, "monthly", "2024-06")
    check(s, q, date(2024, 6, 30))
    q.close()


@settings(PROPERTY, max_examples=60)
@given(
    steps=st.lists(step | ahead, min_size=10, max_size=40),
    anchor=st.sampled_from(["deadline", "filing", "occurred_at", "recorded_at"]),
    pick=st.integers(0, 1000),
    before=st.integers(0, 120) | st.integers(0, 3 * 1440),
    share=st.floats(0, 1),
    hour=st.integers(0, 23),
    walked=st.booleans(),
)
def test_the_sweep_answers_the_periods_in_progress_until_they_change(
    steps: list[Any], anchor: str, pick: int, before: int, share: float, hour: int, walked: bool
) -> None:
    """进行中的报告: moved on to a moment inside its periods (shortly before a deadline, a fact's business or
    recording time), walked there midnight by midnight or in one jump, the sweep answers the periods in progress as
    the fold does; the fold at any later moment up to :meth:`Sweep.until` is the same but for its stamps, and the
    sweep moved on to that moment answers as the fold there."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys.modules[props.__name__], "START", props.START + timedelta(hours=hour))
        url, ledger = history(Path(tmp), steps)
        engine.catch_up(url)
        s, q, moment = swept_near(url, anchor, pick, before, walked)
        until = s.until()
        assert s.moment <= until
        later = from_micros(s.moment + int((until - s.moment) * share))
        then = q.known(moment, moment, lean=True, only=REPORT_TYPES)
        again = q.known(later, later, lean=True, only=REPORT_TYPES)
        wanted = reports.in_progress(moment)
        answers = {p: s.report(*p) for p in wanted}
        stamps = ("as_of", "known_at")
        s.advance(micros(later))
        for kind, label in wanted:
            assert answers[kind, label] == reports.report(then, kind, label), (kind, label)
            assert {key: v for key, v in answers[kind, label].items() if key not in stamps} == {
                key: v for key, v in reports.report(again, kind, label).items() if key not in stamps
            }, (kind, label, later)
            if later < reports.period(kind, label)[1]:
                assert s.report(kind, label) == reports.report(again, kind, label)
        q.close()
        ledger.close()


def test_the_issuer_back_issues_a_long_backlog_by_the_sweep(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """补发: a backlog of at least ``AT_LEAST`` moments is issued in time order by one sweep kept across the issuing
    steps (each sweeping on for ``STEP_SECONDS``), and every report answered as the fold answers it, though a fact
    arrived for a moment already swept; a short backlog before the moment the sweep reached is folded a moment at a
    time, the latest month's end first, as before."""
    w = world
    petition(w, "x1", "kz", "2024-02-10", skip_level=True)
    w.do("register_person", "镇长", "kz", Post.PRINCIPAL_LEADER, person_id="kz-head", when="2024-02-10")
    w.do("take_ownership", "x1", "kz-head", when="2024-02-11")
    w.do("escalate", "x1", EscalationLevel.PROVINCE, False, when="2024-03-12")
    petition(w, "x2", "yl", "2024-04-02")
    engine.catch_up(w.url)
    now = at("2024-06-18T09:00")
    q = Queries(w.url)
    url = q.db.url
    listed = reports.backlog(q.db, now)
    assert len(listed) > sweep.AT_LEAST
    closing = threading.Event()
    closing.set()
    with monkeypatch.context() as stopped:  # the worker stopping: the step issues nothing more, all stays pending
        stopped.setattr(reports, "_stopping", closing)
        assert sweep.back_issue(q, listed[::-1]) == listed[::-1]
    assert not q.db.query(f"SELECT 1 FROM {ISSUED}")
    monkeypatch.setattr(sweep, "STEP_SECONDS", 0.0)  # one moment per step: the sweep is kept between them
    pending = sweep.back_issue(q, listed[::-1])
    first = sweep._sweeps[url]
    pending = sweep.back_issue(q, pending)
    assert sweep._sweeps[url] is first and len(pending) == len(listed) - 2
    assert first.moment == micros(at("2024-02-12"))  # the backlog's second day ended: time order
    w.clock.set("2024-02-11T10:00")  # a writer whose clock runs behind the moment swept: taken in next
    petition(w, "x3", "kz", "2024-02-11")
    engine.catch_up(w.url)
    while pending:
        pending = sweep.back_issue(q, pending)
        assert sweep._sweeps[url] is first
    issued = {(kind, label) for _, due in listed for kind, label in due}
    assert set(q.db.query(f"SELECT kind, label FROM {ISSUED}")) == issued
    for kind, label in issued:
        end = reports.period(kind, label)[1]
        answer = orjson.loads(reports.issued(q, kind, label).body)  # the kept one, or folded again if x3 is missing
        assert answer == reports.build(q, kind, label, end, end), (kind, label)
    assert orjson.loads(reports.issued(q, "monthly", "2024-03").body)["petitions"]["escalations"] == 1

    petition(w, "x0", "yl", "2024-01-20")  # an earlier month, loaded now: a short backlog
    engine.catch_up(w.url)
    short = reports.backlog(q.db, now)
    assert 0 < len(short) < sweep.AT_LEAST and short[0][1] == [("daily", "2024-01-31"), ("monthly", "2024-01")]
    assert sweep.back_issue(q, short[::-1]) == short[1:][::-1]  # folded: the sweep has passed it
    assert sweep._sweeps[url] is first
    assert {("daily", "2024-01-31"), ("monthly", "2024-01")} <= set(q.db.query(f"SELECT kind, label FROM {ISSUED}"))
    q.close()


def test_once_the_backlog_is_issued_the_steps_answer_the_periods_in_progress_by_the_sweep(world: World) -> None:
    """进行中的报告: the issuer's steps (``reports.step``, each with a connection of its own) issue the backlog by the
    sweep, then answer the periods in progress from it: after a fact, the next step derives the records it changed
    (no fold of the city) and keeps reports equal to the fold as of then; the periods just ended are issued by it."""
    from projections import history
    from projections.catalog import RUNNING

    w = world
    petition(w, "x1", "kz", "2024-02-10", skip_level=True)
    petition(w, "x2", "yl", "2024-04-02")
    engine.catch_up(w.url)
    now = at("2024-06-18T09:00")
    issue_backlog(w.url, now)  # the first step folds the periods in progress: a backlog is left
    q = Queries(w.url)
    swept = sweep._sweeps[q.db.url]
    w.clock.set("2024-06-18T09:30")
    petition(w, "x3", "kz", "2024-06-18T09:30")
    engine.catch_up(w.url)
    later = at("2024-06-18T10:00")
    folds = []
    real = history.Known.__init__

    def watched(self: history.Known, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        folds.append(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(history.Known, "__init__", watched)
        assert reports.step(w.url, later, [], []) == ([], [])
    assert swept.moment == micros(later) and all(k.uuids is None and "petitions" not in vars(k) for k in folds)
    k = q.known(later, later, lean=True, only=REPORT_TYPES)
    for kind, label, body in q.db.query(f"SELECT kind, label, body FROM {RUNNING}"):
        answer = reports.report(k, kind, label)
        del answer["as_of"], answer["known_at"], answer["tallies"]
        assert orjson.loads(body) == answer, (kind, label)
    assert orjson.loads(reports.running(q, "daily", "2024-06-18", later).body)["petitions"]["registered"] == 1
    tomorrow = at("2024-06-19T00:05")
    reports.step(w.url, tomorrow, [("daily", "2024-06-18")], [])
    assert swept.moment == micros(at("2024-06-19"))  # issued by the sweep, moved on to the day's end
    body = q.db.query(f"SELECT body FROM {ISSUED} WHERE kind = 'daily' AND label = '2024-06-18'")[0][0]
    assert orjson.loads(body) == reports.build(q, "daily", "2024-06-18", at("2024-06-19"), at("2024-06-19"))
    q.close()


def test_an_ask_of_a_period_in_progress_waits_for_the_sweeping_issuers_answer(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ask that finds today's report stale after a fact, while the issuer has said it answers the periods in
    progress by its sweep (``reports.SWEEPING``), waits for the sweep's answer (within a second or so) instead of
    folding the city in the server's process; once the issuer has stopped saying so, the ask folds as before."""
    import threading

    w = world
    petition(w, "x1", "kz", "2024-06-17")
    engine.catch_up(w.url)
    now, later = at("2024-06-18T09:00"), at("2024-06-18T10:00")
    q = sweeping_issuer(w.url, now)
    w.clock.set("2024-06-18T09:30")
    petition(w, "x2", "kz", "2024-06-18T09:30")
    engine.catch_up(w.url)
    monkeypatch.setattr(reports, "utc_now", lambda: later)
    folds = counted(monkeypatch, "fold_running")
    issuer = threading.Timer(0.3, reports.step, (w.url, later, [], []))
    issuer.start()
    answer = orjson.loads(reports.running(q, "daily", "2024-06-18", later).body)
    issuer.join()
    assert answer["petitions"]["registered"] == 1 and answer["as_of"] == later.isoformat() and not folds
    w.clock.set("2024-06-18T09:45")
    petition(w, "x3", "kz", "2024-06-18T09:45")
    engine.catch_up(w.url)
    q.db.execute("DELETE FROM proj_reports_folds")  # the announcement run out: no issuer answers
    assert orjson.loads(reports.running(q, "daily", "2024-06-18", later).body)["petitions"]["registered"] == 2
    assert folds
    q.close()


def test_an_ask_of_a_period_just_ended_waits_for_the_sweeping_issuer_to_issue_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """签发: yesterday's report asked in the first second after midnight, before the sweeping issuer's next step has
    issued it, waits for that step (the sweep moved on to midnight: a few records) instead of folding the city; the
    answer is the report as issued."""
    import threading

    w = world
    petition(w, "x1", "kz", "2024-06-18T08:00")
    engine.catch_up(w.url)
    now, tomorrow = at("2024-06-18T09:00"), at("2024-06-19T00:00:01")
    q = sweeping_issuer(w.url, now)
    monkeypatch.setattr(reports, "utc_now", lambda: tomorrow)
    folds = counted(monkeypatch, "folded")
    issuer = threading.Timer(0.3, reports.step, (w.url, tomorrow, [("daily", "2024-06-18")], []))
    issuer.start()
    answer = orjson.loads(reports.issued(q, "daily", "2024-06-18").body)
    issuer.join()
    assert not folds and answer["petitions"]["registered"] == 1
    assert answer == reports.build(q, "daily", "2024-06-18", at("2024-06-19"), at("2024-06-19"))
    q.close()
