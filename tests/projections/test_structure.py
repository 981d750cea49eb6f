"""The unit tree and policy as known at a moment (结构): read once per process, past ones kept by what they hold."""

from __future__ import annotations

from domain.vocabulary import UnitKind
from projections import engine
from projections.catalog import micros
from projections.db import Db
from projections.history import structure
from tests.projections.conftest import World, at


def test_a_past_structure_is_built_once_for_every_moment_that_knew_the_same_units(world: World) -> None:
    w = world
    w.do("register_unit", "xz", "新庄镇", UnitKind.TOWNSHIP, "gc", when="2024-03-01")
    engine.catch_up(w.url)
    db = Db(w.url)
    try:
        february = structure(db, micros(at("2024-02-01")))
        assert structure(db, micros(at("2024-02-20"))) is february  # the same units known: the same structure
        assert february.subtree("gc") == {"gc", "ys"}
        now = structure(db, micros(at("2024-04-01")))
        assert now is not february and now.subtree("gc") == {"gc", "ys", "xz"}

        w.do("register_unit", "lz", "莲庄", UnitKind.TOWNSHIP, "lc", when="2024-05-01")
        engine.catch_up(w.url)
        again = structure(db, micros(at("2024-02-20")))  # the tables changed: read afresh, same answer
        assert again is not february and again.subtree("gc") == {"gc", "ys"} and "lz" not in again.units
        assert structure(db, micros(at("2024-04-01"))).subtree("lc") == {"lc", "kz", "yl"}
        assert structure(db, micros(at("2024-06-01"))).subtree("lc") == {"lc", "kz", "yl", "lz"}
    finally:
        db.close()
