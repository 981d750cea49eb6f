"""Paged city-wide lists and single-trigger look-ups answer exactly what the whole lists answer."""

from __future__ import annotations

from typing import Any

import pytest

from domain.vocabulary import Channel, EscalationLevel, PetitionCategory
from tests.projections.conftest import World, at
from tests.projections.test_engine import populate


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
