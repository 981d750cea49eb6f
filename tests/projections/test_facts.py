"""The city's facts kept in memory for the issuer's folds (事实缓存, ``projections.facts``), on both stores: caught up
with what is applied after they were read, read afresh when the tables are rebuilt or the store at their address is
another one, and not kept at all past their limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from projections import engine, facts, reports
from projections.db import Db
from projections.history import REPORT_TYPES
from projections.queries import Queries
from tests.conftest import fresh_store_url
from tests.projections.conftest import World, at, city
from tests.projections.test_rules import major_case, petition

MOMENT = at("2024-06-01")


def bulletin(url: str, *, memory: bool) -> dict[str, Any]:
    """May's bulletin as issued, folded from the facts in memory or from the tables."""
    q = Queries(url)
    q.memory = memory
    try:
        k = q.known(MOMENT, MOMENT, lean=True, only=REPORT_TYPES)
        assert (k.facts is not None) == memory
        return reports.report(k, "monthly", "2024-05")
    finally:
        q.close()


@pytest.fixture(autouse=True)
def _forget() -> Any:
    """Each test starts with no facts kept in this process (a store's address may recur across tests)."""
    facts._kept.clear()
    yield
    facts._kept.clear()


def test_facts_kept_are_caught_up_with_what_is_applied_after_they_were_read(world: World) -> None:
    w = world
    petition(w, "x1", "kz", "2024-05-02T15:00")
    first = bulletin(w.queries().url, memory=True)
    assert first["petitions"]["registered"] == 1
    petition(w, "x2", "yl", "2024-05-03T09:00")
    major_case(w, "c1", "ys", "2024-05-04")
    engine.catch_up(w.url)
    assert bulletin(w.url, memory=True) == bulletin(w.url, memory=False)
    assert bulletin(w.url, memory=True)["petitions"]["registered"] == 2


def test_facts_kept_are_read_afresh_when_the_tables_are_rebuilt(world: World) -> None:
    w = world
    first = petition(w, "x1", "kz", "2024-05-02T15:00")
    petition(w, "x2", "yl", "2024-05-03T09:00")
    bulletin(w.queries().url, memory=True)
    db = Db(w.url)
    engine.drop(db, list(engine.PROJECTIONS.values()))
    db.close()
    follower = engine.Follower(w.url, batch_size=first.position)  # a rebuild part of the way: x1, not x2 yet
    follower.step()
    follower.close()
    assert bulletin(w.url, memory=True) == bulletin(w.url, memory=False)
    assert bulletin(w.url, memory=True)["petitions"]["registered"] == 1
    engine.catch_up(w.url)
    assert bulletin(w.url, memory=True)["petitions"]["registered"] == 2


def test_facts_kept_of_one_store_are_not_taken_for_another_stores(world: World, tmp_path: Path) -> None:
    """Another log under the same address (a store restored from another backup, say) is told by its chain hash at
    the last position read, though its tables hold as many rows up to there."""
    w = world
    petition(w, "x1", "kz", "2024-05-02T15:00")
    engine.catch_up(w.url)
    kind = "sqlite" if w.url.startswith("sqlite") else "postgres"
    (tmp_path / "other").mkdir()
    stores = fresh_store_url(kind, tmp_path / "other")
    other = city(next(stores))
    petition(other, "y1", "kz", "2024-05-02T15:00")  # the same positions, another petition
    engine.catch_up(other.url)
    kept = facts.Facts()
    for url, expected in ((w.url, ["x1"]), (other.url, ["y1"])):
        db = Db(url)
        kept.catch_up(db)
        db.close()
        assert [rec.record_id for rec, _ in kept.records["petitions"].rows] == expected
    other.ledger.close()
    stores.close()


def test_past_their_limit_no_facts_are_kept(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    petition(w, "x1", "kz", "2024-05-02T15:00")
    engine.catch_up(w.url)
    monkeypatch.setattr(facts, "LIMIT", 0)
    db = Db(w.url)
    assert facts.kept(db) is None and facts._kept == {}
    db.close()
    q = Queries(w.url)
    q.memory = True
    assert q.known(MOMENT, MOMENT, lean=True, only=REPORT_TYPES).facts is None  # folds read the tables
    q.close()
