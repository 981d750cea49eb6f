"""Late-recorded facts (迟录事实): the records a question "as of T, as known at K" must fold itself.

The current view keeps what every fact known now implies. A record's rows answer as they would have at an earlier
recording time K unless one of its facts happened by T but was recorded after K (补录: a back-dated entry, a
transaction that committed late): such a fact's lag (recorded − occurred) spans the whole of [T, K]. Every fact
table of the view's records is indexed by the class of its lag (:data:`LAGS`) and its recording time, so each
class is looked up only where its facts can lie: a fact lagging at most L that happened by T was recorded by
T + L, so at K ≥ T a class is read only in (K, T + L], a window no longer than L, and not at all once K ≥ T + L.
Almost every fact lags minutes and falls in the first class, which a question asked an hour or more after T never
reads.

The view itself is derived with the policy known now: a question as known before an amendment in force by its
``as_of`` was recorded (:func:`policy_revised`) folds everything, as does one asked as known before its ``as_of``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from projections.catalog import from_micros
from projections.db import Db
from projections.history import DAY, FOLD_LIMIT, IN_LIST, UNINDEXED_TYPE

if TYPE_CHECKING:
    from projections.history import Known

HOUR = DAY // 24
#: The upper bounds of the lag classes (micros); a last class holds the longer lags.
LAGS = (HOUR, DAY, 7 * DAY, 35 * DAY, 400 * DAY)
#: The fact projections whose records the current view keeps rows of.
SOURCES = ("cases", "people", "petitions")
#: Late facts read city-wide before the territory's are picked: beyond this many, the question folds.
CITY_LIMIT = 20 * IN_LIST


def lag_class() -> str:
    """A fact's lag class as a SQL expression (an index on it must spell it the same way)."""
    whens = " ".join(f"WHEN recorded_at - occurred_at <= {lag} THEN {n}" for n, lag in enumerate(LAGS))
    return f"(CASE {whens} ELSE {len(LAGS)} END)"


def indexes(name: str) -> list[str]:
    """The (lag class, recording time) index of both fact tables of a projection of :data:`SOURCES`."""
    tables = [f"proj_{name}_records", f"proj_{name}_events"]
    return [f"CREATE INDEX IF NOT EXISTS {t}_late ON {t} ({lag_class()}, recorded_at)" for t in tables]


def policy_revised(db: Db, as_of: int, known_at: int) -> bool:
    """Whether an amendment in force by ``as_of`` was recorded after ``known_at``: the view's numbers use the policy
    known now, and an item dated by ``as_of`` uses the policy in force at its own time or before. (The established
    defaults count as known from the ledger's epoch, whenever recorded.)"""
    rows = db.query("SELECT data FROM proj_policy_events WHERE recorded_at > ?", (known_at,))
    return any(int(orjson.loads(data)["effective_from"]) <= as_of for (data,) in rows)


@dataclass(frozen=True)
class Late:
    """The territory's records with late facts, and the years whose stored R6 rows they may have changed."""

    uuids: list[str]
    years: set[int]


def records(k: Known, sources: tuple[str, ...] = SOURCES) -> Late | None:
    """The records (of these fact projections) in ``k``'s territory with a fact that happened by ``k.as_of`` and was
    recorded after ``k.known_at`` (or may have been filed there: a petition diverted into it at any time counts).
    ``None`` when they are more than a past question folds (``history.FOLD_LIMIT``), or ``known_at`` is before
    ``as_of`` (then nearly every fact is late)."""
    as_of, known_at = k.as_of, k.known_at
    if known_at < as_of:
        return None
    sql, params = _recorded_after(sources, as_of, known_at)
    rows = k.db.query(f"{sql} LIMIT {CITY_LIMIT + 1}", params)
    if len(rows) > CITY_LIMIT:
        return None
    found: dict[str, dict[str, int]] = {}  # per projection, each record's earliest late fact
    for uuid, name, occurred_at in rows:
        facts = found.setdefault(name, {})
        facts[uuid] = min(int(occurred_at), facts.get(uuid, as_of))
    uuids: list[str] = []
    first = as_of
    for name, facts in sorted(found.items()):
        for uuid, first_at in _in_scope(k, name, sorted(facts)):
            uuids.append(uuid)
            # An officer's items from a fact on fall in its year or later (a reception: its month's R17); a case's or
            # a petition's deadlines count from the record's first time (a late filing or extension moves them).
            first = min(first, facts[uuid] if name == "people" else first_at)
    if len(uuids) > FOLD_LIMIT:
        return None
    years = set(range(from_micros(first).year, from_micros(as_of).year + 1)) if uuids else set()
    return Late(sorted(uuids), years)


def _recorded_after(sources: tuple[str, ...], as_of: int, after: int, upto: int | None = None) -> tuple[str, list[int]]:
    """The facts (uuid, projection, business time) of these fact projections that happened by ``as_of`` and were
    recorded after ``after`` (and by ``upto``), each lag class read by its index only in the window its lags allow:
    one statement."""
    branches: list[str] = []
    params: list[int] = []
    for name in sources:
        for table in (f"proj_{name}_records", f"proj_{name}_events"):
            for n in range(len(LAGS) + 1):
                bound = as_of + LAGS[n] if n < len(LAGS) else None
                if bound is not None and bound <= after:
                    continue  # every fact of the class that happened by as_of was recorded by ``after``
                if upto is not None:
                    bound = upto if bound is None else min(bound, upto)
                sql = f"SELECT uuid, '{name}', occurred_at FROM {table} WHERE {lag_class()} = {n} AND recorded_at > ?"
                params.append(after)
                if bound is not None:
                    sql += " AND recorded_at <= ?"
                    params.append(bound)
                branches.append(f"{sql} AND occurred_at <= ?")
                params.append(as_of)
    return " UNION ALL ".join(branches), params


def entered_between(db: Db, as_of: int, after: int, upto: int) -> bool:
    """Whether any fact that happened by ``as_of`` was recorded in (``after``, ``upto``] (补录: entered late), in the
    fact projections a report reads (:data:`SOURCES` by their lag indexes; the agreements and decisions, and the
    units, whose tables are small, by a scan), or an amendment in force by ``as_of`` was: what separates a
    report's answer as known at ``upto`` from its answer as known at ``after``."""
    sql, params = _recorded_after(SOURCES, as_of, after, upto)
    if db.query(f"{sql} LIMIT 1", params):
        return True
    for table in ("proj_accountability_records", "proj_accountability_events", "proj_units_records"):
        found = f"SELECT 1 FROM {table} WHERE recorded_at > ? AND recorded_at <= ? AND occurred_at <= ? LIMIT 1"
        if db.query(found, (after, upto, as_of)):
            return True
    if db.query("SELECT 1 FROM proj_policy_records WHERE recorded_at > ? AND recorded_at <= ?", (after, upto)):
        return True
    rows = db.query("SELECT data FROM proj_policy_events WHERE recorded_at > ? AND recorded_at <= ?", (after, upto))
    return any(int(orjson.loads(data)["effective_from"]) <= as_of for (data,) in rows)


def _in_scope(k: Known, name: str, uuids: list[str]) -> list[tuple[str, int]]:
    """Those of these records (with their first business time) whose rows may lie in ``k``'s territory: filed
    under one of its units, or a petition diverted into it."""
    found: list[tuple[str, int]] = []
    for i in range(0, len(uuids), IN_LIST):
        some = uuids[i : i + IN_LIST]
        marks = ", ".join("?" * len(some))
        rows = k.db.query(f"SELECT uuid, unit_id, occurred_at FROM proj_{name}_records WHERE uuid IN ({marks})", some)
        units = {uuid: {unit} for uuid, unit, _ in rows}
        if name == "petitions":
            to_unit = k.db.json_text("data", "to_unit_id")
            # By the uuid index: the type index would walk every diversion of the city.
            sql = f"SELECT uuid, {to_unit} FROM proj_petitions_events WHERE {UNINDEXED_TYPE} = 'diverted'"
            sql += f" AND uuid IN ({marks})"
            for uuid, unit in k.db.query(sql, some):
                units.setdefault(uuid, set()).add(unit)
        for uuid, _, first_at in rows:
            if k.scope is None or units[uuid] & k.scope:
                found.append((uuid, int(first_at)))
    return found
