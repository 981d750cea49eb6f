"""Paged lists (分页) and single-trigger look-ups answer exactly what the whole lists answer."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.vocabulary import Channel, Commendation, EscalationLevel, MisconductKind, PetitionCategory, Post
from projections import current, paging, queries
from projections.queries import CURSORS, OFFICER_STATUSES, Queries, next_after
from tests.projections.conftest import World, at
from tests.projections.test_engine import populate
from tests.projections.test_properties import PROPERTY, START, _kept_up, step
from tests.projections.test_rules import major_case


def pages(fetch: Any, year: int, limit: int) -> list[dict[str, Any]]:
    """Every row, fetched ``limit`` at a time, each page starting after the last row's unit."""
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        page = fetch(year, limit=limit, after=after)
        assert len(page) <= limit
        rows += page
        if len(page) < limit:
            return rows
        after = page[-1]["unit_id"]


def test_pages_of_quota_and_deductions_join_up_to_the_whole_list(world: World) -> None:
    populate(world, 6)
    q = world.queries()
    for year in (2024, 2025):
        for name in ("quota", "quota_deductions"):
            fetch = getattr(q, name)
            whole = fetch(year)
            assert any(row["unit_id"] == "lc" for row in whole)
            for limit in (1, 2, 5):
                assert pages(fetch, year, limit) == whole
    assert [row["unit_id"] for row in q.quota(2024, limit=1, after="gc")] == ["lc"]
    with pytest.raises(ValueError):
        q.quota(2024, limit=0)


def test_one_trigger_by_id_is_the_one_in_the_list_even_with_dots_in_its_record_id(world: World) -> None:
    populate(world, 3)
    world.do(
        "register_petition",
        "kz",
        Channel.VISIT,
        1,
        "王五",
        "补偿",
        PetitionCategory.OTHER,
        petition_id="x.dot.1",
        when="2024-03-05",
    )
    world.do("take_ownership", "x.dot.1", "kz-head", when="2024-03-05")
    world.do("escalate", "x.dot.1", EscalationLevel.CITY, False, when="2024-03-06")
    q = world.queries()
    for moment in (None, at("2024-03-05T12:00")):
        listed = q.triggers(as_of=moment, known_at=moment)
        assert any(".x.dot.1." in t["id"] for t in listed) == (moment is None)
        for t in listed:
            assert q.trigger(t["id"], as_of=moment, known_at=moment) == t
    assert q.trigger("R14.petition.no-such-petition.1") is None


# --- the long lists: triggers, the petition board, the officer registry, scores --------------------------------


def _lists(q: Queries, moment: dict[str, Any]) -> dict[str, Callable[..., list[dict[str, Any]]]]:
    """Every paged list a supervisor reads, each with its filters, asked about ``moment``."""
    found: dict[str, Callable[..., list[dict[str, Any]]]] = {}
    for unit in (None, "lc", "kz"):
        for status in (None, "open", "decided"):
            found[f"triggers {status} {unit}"] = partial(q.triggers, status, unit, **moment)
        for status in (None, "open", "overdue", "closed"):
            found[f"petitions {status} {unit}"] = partial(q.petitions, status, None, unit, **moment)
        for year in (2024, 2025):
            found[f"scores {year} {unit}"] = partial(q.scores, year, unit, **moment)
        for officer in (None, *OFFICER_STATUSES):
            found[f"officers {officer} {unit}"] = partial(q.officers, officer, unit, **moment)
    for flag in ("escalated", "skip_level", "collective", "unowned"):
        found[f"petitions {flag}"] = partial(q.petitions, None, flag, None, **moment)
    return found


def _cursor(name: str, row: dict[str, Any]) -> str:
    """What a page's ``next_after`` names for its last row (as the HTTP answer writes it)."""
    kind = name.split()[0]
    return row["unit_id"] if kind == "scores" else paging.token(CURSORS[kind][0](row))


@settings(PROPERTY, max_examples=30)
@given(
    steps=st.lists(step, min_size=10, max_size=40),
    cuts=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    # now, or as of a day as known now, or as known some minutes (or days) after it
    moment=st.none() | st.tuples(st.integers(0, 400), st.none() | st.integers(0, 60 * 1440)),
    fold=st.booleans(),
    limit=st.integers(1, 3),
    cut=st.integers(0, 100),
    deductions=st.integers(0, 40),
)
# A major case (R4 of its unit, stored, and of its leader, from its major row) and an owned petition escalated twice
# (R14 of the owner and the unit): triggers opened at one moment, which a page's batch must not cut apart.
@example(
    steps=[("clue", 0, 0, 10, 0), ("petition", 0, 0, 12, 0), ("own", 0, 0, 12, 0), ("escalate", 0, 0, 13, 0)] * 2,
    cuts=[1],
    moment=None,
    fold=False,
    limit=1,
    cut=1,
    deductions=1000,
)
# Two petitions escalated at one moment, the first extended later: as of a day between, its triggers come from a fold,
# to be merged into the batch that holds the other's stored ones.
@example(
    steps=[
        *[("petition", i, 0, 12, 0) for i in (0, 1)],
        *[("own", i, 0, 12, 0) for i in (0, 1)],
        *[("escalate", i, 0, 13, 0) for i in (0, 1)],
        ("extend", 0, 0, 30, 0),
    ],
    cuts=[1],
    moment=(20, None),
    fold=False,
    limit=1,
    cut=0,
    deductions=1000,
)
def test_pages_of_the_long_lists_join_up_to_the_whole_list(
    steps: list[Any],
    cuts: list[int],
    moment: tuple[int, int | None] | None,
    fold: bool,
    limit: int,
    cut: int,
    deductions: int,
) -> None:
    """分页: every page of a list is its rows after the cursor it is asked with, at most ``limit`` of them (fewer
    only at the list's end or for a scores page cut short by its deductions), so the pages, each asked after the
    last one's ``next_after``, join up to the whole list; from the current view (read a batch at a time, a batch
    being as few as one row here) and from the fold; now, as of a past moment, and as known at a later past
    moment."""
    asked: dict[str, Any] = {}
    if moment is not None:
        as_of = START + timedelta(days=moment[0])
        asked = {"as_of": as_of, "known_at": None if moment[1] is None else as_of + timedelta(minutes=moment[1])}
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        # One row a batch at first: every batch boundary of a list falls somewhere in these short histories.
        patch.setattr(paging, "batch", lambda page, filtered=True: None if page.limit is None else 1)
        patch.setattr(current, "DECIDED_AT_ONCE", 1)  # and a moment's triggers decided one at a time
        url, ledger = _kept_up(Path(tmp), steps, cuts)
        patch.setattr(queries, "DEDUCTIONS_PER_PAGE", deductions)  # and a scores page cut short by a few
        q = Queries(url, view=not fold)
        try:
            for name, fetch in _lists(q, asked).items():
                whole = fetch()
                assert _join_up(fetch, name, limit) == whole, name
                if whole:
                    i = cut % len(whole)
                    page = fetch(limit=limit, after=_cursor(name, whole[i]))
                    assert page == whole[i + 1 : i + 1 + len(page)], name
                    assert len(page) == min(limit, len(whole) - i - 1) or isinstance(page, paging.Cut), name
                    assert fetch(after=_cursor(name, whole[i])) == whole[i + 1 :], name
        finally:
            q.close()
            ledger.close()


#: The territories of the test city's units (tests/projections/conftest.py).
TERRITORY = {"lc": {"lc", "kz", "yl"}, "gc": {"gc", "ys"}, "kz": {"kz"}, "ys": {"ys"}}


@settings(PROPERTY, max_examples=30)
@given(
    steps=st.lists(step, min_size=10, max_size=40),
    moment=st.none() | st.tuples(st.integers(0, 400), st.none() | st.integers(0, 60 * 1440)),
    fold=st.booleans(),
)
def test_a_units_list_is_the_citys_rows_of_its_territory(
    steps: list[Any], moment: tuple[int, int | None] | None, fold: bool
) -> None:
    """属地管理: the board, the officer registry and the scores asked for a unit hold the whole city's rows that name
    a unit of its territory, in the same order, now, as of a past moment and as known at a later one, from the view
    and from the fold: what a unit-bound token sees of the city's list is what its own territory's list answers
    (api.routers.queries._territory). Not triggers: R4 names a government's principal leader for a major case in a
    bureau office, which lies outside the government's territory."""
    asked: dict[str, Any] = {}
    if moment is not None:
        as_of = START + timedelta(days=moment[0])
        asked = {"as_of": as_of, "known_at": None if moment[1] is None else as_of + timedelta(minutes=moment[1])}
    with tempfile.TemporaryDirectory() as tmp:
        url, ledger = _kept_up(Path(tmp), steps, [5])
        q = Queries(url, view=not fold)
        try:
            lists: dict[str, Callable[..., list[dict[str, Any]]]] = {
                **{f"petitions {status}": partial(q.petitions, status) for status in (None, "open", "closed")},
                **{f"officers {status}": partial(q.officers, status) for status in (None, *OFFICER_STATUSES)},
                **{f"scores {year}": partial(q.scores, year) for year in (2024, 2025)},
            }
            for name, fetch in lists.items():
                whole = fetch(**asked)
                for unit, territory in TERRITORY.items():
                    mine = [row for row in whole if row["unit_id"] in territory]
                    assert fetch(unit_id=unit, **asked) == mine, (name, unit)
        finally:
            q.close()
            ledger.close()


def _join_up(fetch: Callable[..., list[dict[str, Any]]], name: str, limit: int) -> list[dict[str, Any]]:
    """The rows of every page of ``limit``, each asked after the last one's ``next_after`` (its last row's cursor),
    until one names none."""
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        page = fetch(limit=limit, after=after)
        assert len(page) <= limit, name
        rows += page
        after = next_after(name.split()[0], page, limit)
        if after is None:
            return rows
        assert after == _cursor(name, page[-1]), name


def test_pages_of_a_longer_history_join_up_on_either_store(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same on each store, with more rows than the random histories have: eight cases, petitions escalated at
    one moment each (six of them extended later, so folded when asked about before), and officers found against,
    removed, referred and commended; read in batches of one row and of the usual size."""
    populate(world, 8)
    for i in range(6):
        world.do("register_person", f"执法员{i}", ["kz", "yl", "ys"][i % 3], Post.ENFORCEMENT_OFFICER,
                 person_id=f"o{i}", when="2024-02-01")  # fmt: skip
    for i in range(6):
        world.do("report_misconduct", f"o{i}", MisconductKind.TAKING, "某", "拿", when="2024-04-01")
        world.do("record_finding", f"o{i}", "r1", i % 2 == 0, when="2024-04-02")
    world.do("remove_from_post", "o2", when="2024-04-10")
    world.do("refer_to_judiciary", "o4", when="2024-04-11")
    for i in (1, 3, 5):
        world.do("commend", f"o{i}", Commendation.LAW_ENFORCEMENT_MODEL, when="2024-05-01")
        world.do("extend_petition", f"x{i}", 30, when="2024-04-20")  # so, as of April 5th, folded
        world.do("extend_petition", f"x{i + 1}", 30, when="2024-04-21")
    q = world.queries()
    for smallest in (False, True):
        if smallest:
            monkeypatch.setattr(paging, "batch", lambda page, filtered=True: None if page.limit is None else 1)
            monkeypatch.setattr(current, "DECIDED_AT_ONCE", 1)
        for moment in ({}, {"as_of": at("2024-04-05")}):
            for name, fetch in _lists(q, moment).items():
                whole = fetch()
                for limit in (1, 2, 4):
                    assert _join_up(fetch, name, limit) == whole, (name, moment, limit)
    assert len(q.triggers("open")) > 20 and len(q.officers("removal_due")) == 2  # the lists hold what was meant


def test_a_scores_page_stops_once_its_rows_carry_enough_deductions(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A city's row carries its territory's year of deductions (扣分): a page stops short of its ``limit`` once its
    rows would carry more than ``DEDUCTIONS_PER_PAGE`` as stored (R17's missed receptions are worked out when
    asked), holds one row however many that carries, and names the next page all the same; the pages join up. As
    of a moment in the year, only the deductions up to it weigh."""
    populate(world, 8)
    for i in range(4):
        major_case(world, f"s{i}", "ys", f"2024-0{i + 3}-05")  # in the other district
    q = world.queries()
    for moment in (None, at("2024-03-06T12:00")):
        whole = q.scores(2024, as_of=moment)
        stored = {row["unit_id"]: sum(d["rule"] != "R17" for d in row["deductions"]) for row in whole}
        assert stored["laiwu"] == max(stored.values()) > stored["lc"] > 0  # the city's row carries the districts'
        units = [row["unit_id"] for row in whole]
        for budget in (0, 3, stored["lc"], stored["laiwu"] - 1, stored["laiwu"]):
            monkeypatch.setattr(queries, "DEDUCTIONS_PER_PAGE", budget)
            fetch = partial(q.scores, 2024, as_of=moment)
            assert _join_up(fetch, "scores", len(whole)) == whole, budget
            for i, unit in enumerate([None, *units[:-1]]):
                page = fetch(limit=len(whole), after=unit)
                assert page == whole[i : i + len(page)]
                assert len(page) == 1 or sum(stored[row["unit_id"]] for row in page) <= budget, budget
                if i + len(page) < len(whole):  # cut short: the rows after it would have carried too many
                    assert isinstance(page, paging.Cut)
                    assert sum(stored[u] for u in units[i : i + len(page) + 1]) > budget, (moment, budget)
                    assert next_after("scores", page, len(whole)) == page[-1]["unit_id"]
                else:
                    assert next_after("scores", page, len(whole)) is None
        city = units.index("laiwu")
        monkeypatch.setattr(queries, "DEDUCTIONS_PER_PAGE", stored["laiwu"] - 1)
        assert [row["unit_id"] for row in q.scores(2024, as_of=moment, limit=9, after=units[city - 1])] == ["laiwu"]


def test_pages_through_one_year_ends_r6_triggers_decided_one_at_a_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A year's end opens every failed agreement's R6 at one moment (~1,900 of them at 1M events); a page decides
    only those after its cursor, a few at a time, each few checked against the agreements signed by the moment
    asked about: one signed in February (补签) misses from a page as of January, and opens when signed, after the
    two that opened at the year's end."""
    w = world
    for i in range(3):
        major_case(w, f"y{i}", "yl", f"2024-0{i + 3}-01")
        major_case(w, f"k{i}", "kz", f"2024-0{i + 3}-02")
    w.do("sign_agreement", 2024, "lc", "yl", ["耕地保护"], when="2024-01-05")
    w.do("sign_agreement", 2024, "laiwu", "lc", ["耕地保护"], when="2024-01-05")
    w.do("sign_agreement", 2024, "lc", "kz", ["耕地保护"], when="2025-02-01")  # 补签, after its year
    q, folds = w.queries(), w.folds()
    monkeypatch.setattr(paging, "batch", lambda page, filtered=True: None if page.limit is None else 1)
    monkeypatch.setattr(current, "DECIDED_AT_ONCE", 1)
    for moment, failed in (("2025-01-15", ["laiwu.lc", "lc.yl"]), ("2025-03-01", ["laiwu.lc", "lc.yl", "lc.kz"])):
        whole = q.triggers(as_of=at(moment))
        assert whole == folds.triggers(as_of=at(moment))
        assert [t["id"] for t in whole if t["rule"] == "R6"] == [f"R6.agreement.2024.{f}" for f in failed]
        for limit in (1, 2):
            assert _join_up(partial(q.triggers, as_of=at(moment)), "triggers", limit) == whole
        r6 = next(t for t in whole if t["rule"] == "R6")
        after = q.triggers(as_of=at(moment), limit=1, after=_cursor("triggers", r6))
        assert [t["id"] for t in after] == [f"R6.agreement.2024.{failed[1]}"]


def test_a_cursor_no_page_of_the_list_gave_is_refused(world: World) -> None:
    populate(world, 2)
    q = world.queries()
    trigger = q.triggers()[0]
    for fetch in (q.triggers, q.petitions, q.officers):
        for cursor in ("not base64!", paging.token(("x",)), paging.token((1, 2)), paging.token((True,)), "bm9wZQ"):
            with pytest.raises(ValueError, match="cursor"):
                fetch(limit=1, after=cursor)
        with pytest.raises(ValueError):
            fetch(limit=0)
    with pytest.raises(ValueError, match="cursor"):  # a time without its offset is no trigger's opened_at
        q.triggers(after=paging.token((trigger["opened_at"][:19], trigger["id"])))
    with pytest.raises(ValueError, match="cursor"):
        q.petitions(after=paging.token(("2024-03-01T00:00:00+08:00", trigger["id"])))
    assert q.triggers(limit=1, after=_cursor("triggers", trigger)) == q.triggers()[1:2]
    # The same moment written in UTC names the same place in the list.
    utc = datetime.fromisoformat(trigger["opened_at"]).astimezone(UTC).isoformat()
    assert q.triggers(limit=1, after=paging.token((utc, trigger["id"]))) == q.triggers()[1:2]
