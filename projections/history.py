"""What was known (已知事实): the stored facts as of a business time and as known at a recording time,
and the occurrences, deadlines and triggers derived from them at query time.

Every derivation here is a fold over facts filtered by ``occurred_at <= as_of`` and
``recorded_at <= known_at``; deadlines (overdue petitions, 有案不查, missed receptions) are judged
against ``as_of`` using the business times of the events that would have stopped them. The unit
tree and the policy are structure, filtered by ``known_at`` only: a late-recorded amendment was
not known before it was recorded, whatever its effective date.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from domain.base import BUREAU_TZ, LEDGER_EPOCH
from domain.policy import DEFAULTS, PARAMETERS, Amendment, PolicyVersion, in_force
from domain.rules import filing_days, handling_days, is_collective, is_major_by_size, key_flags
from domain.vocabulary import LEADER_POSTS, Post, Violation
from projections.catalog import DIVERTED_INDEX, from_micros, micros
from projections.db import Db, Row

if TYPE_CHECKING:
    from projections.facts import Facts

DAY = 86_400_000_000
#: Ids bound in one ``IN (…)`` list (well under every engine's limit on bound parameters).
IN_LIST = 500
#: Up to this many trigger ids, their decisions are looked up by id rather than all read.
DECISION_LOOKUP = 20 * IN_LIST
#: Up to this many records, a past question folds the ones the current view cannot answer for by id, an ``IN`` list
#: at a time, beside the view's rows (``current.live``); beyond, it folds its whole territory. At 1M events a
#: city-wide question as of a past month's end folds 500-2,300 such records (the board's: every petition with an
#: event after it), where the whole city is 690k facts.
FOLD_LIMIT = 20 * IN_LIST


class Rec(NamedTuple):
    """A record's creation fact (a named tuple: thousands are built per answer, and tuples build fastest)."""

    uuid: str
    record_id: str
    unit_id: str | None
    occurred_at: int
    recorded_at: int
    position: int
    data: dict[str, Any]


class Ev(NamedTuple):
    """A later event of a record (a named tuple, like :class:`Rec`)."""

    position: int
    uuid: str
    type: str
    occurred_at: int
    recorded_at: int
    data: dict[str, Any]


class Occurrence(NamedTuple):
    """One scored occurrence (考核扣分事项): who, what, when, under which policy, from which events."""

    unit_id: str
    indicator: str
    rule: str
    at: int
    evidence: list[int]
    points: int
    policy_version: int
    record_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "indicator": self.indicator,
            "points": self.points,
            "rule": self.rule,
            "policy_version": self.policy_version,
            "evidence": self.evidence,
            "occurred_at": iso(self.at),
            "record_id": self.record_id,
        }


@dataclass
class Case:
    """A case as known: its unit, when it became major (if it did) and its filing deadline."""

    rec: Rec
    events: list[Ev]
    major_at: int | None = None
    major_evidence: list[int] = field(default_factory=list)
    major_policy: PolicyVersion | None = None
    unfiled_at: int | None = None
    filing_deadline: int = 0
    filed_in_time: bool = False
    policy_version: int = 1

    @property
    def status(self) -> str:
        return "closed" if any(e.type == "closed" for e in self.events) else "open"

    @property
    def wrongful(self) -> bool:
        return any(e.type == "wrongful" for e in self.events)

    @property
    def supervision_deadlines(self) -> list[int]:
        return [int(e.data["deadline"]) for e in self.events if e.type == "supervised"]

    def flags(self, as_of: int) -> list[str]:
        """The case board's flags as of ``as_of`` (:func:`case_flags`)."""
        return case_flags(
            self.major_at is not None,
            self.supervision_deadlines,
            self.status == "open",
            self.unfiled_at is not None,
            self.wrongful,
            as_of,
        )

    def board_row(self, as_of: int | None) -> dict[str, Any]:
        """The case's row on the case board (案件台账) as of ``as_of``: its facts, steps and :meth:`flags` (``None``
        without a moment: the view's stored row, whose flags are judged when read)."""
        d, evs = self.rec.data, self.events
        filed = next((e for e in evs if e.type == "filed"), None)
        closed = next((e for e in evs if e.type == "closed"), None)
        supervisions = [e for e in evs if e.type == "supervised"]
        return {
            "id": self.rec.record_id,
            "unit_id": self.rec.unit_id,
            "violation": d["violation"],
            "resource": Violation(d["violation"]).resource,
            "source": d["source"],
            "area_mu": number(d["area_mu"]) if d["area_mu"] is not None else None,
            "value_yuan": number(d["value_yuan"]) if d["value_yuan"] is not None else None,
            "petition_id": d.get("petition_id"),
            "reported_at": iso(self.rec.occurred_at),
            "filing_deadline": iso(self.filing_deadline),
            "filed_at": iso(filed.occurred_at) if filed else None,
            "handler_ids": list(filed.data["handler_ids"]) if filed else [],
            "major_at": iso(self.major_at) if self.major_at is not None else None,
            "supervisions": [
                {"by_unit_id": e.data["by_unit_id"], "at": iso(e.occurred_at), "deadline": iso(int(e.data["deadline"]))}
                for e in supervisions
            ],
            "status": "closed" if closed else "open",
            "closed_at": iso(closed.occurred_at) if closed else None,
            "outcome": closed.data["outcome"] if closed else None,
            "flags": None if as_of is None else self.flags(as_of),
            "policy_version": self.policy_version,
            "evidence": [self.rec.position] + [e.position for e in evs],
        }


def case_flags(
    major: bool, deadlines: list[int], open_: bool, not_investigated: bool, wrongful: bool, as_of: int
) -> list[str]:
    """The case board's flags (重大, 督办, 督办逾期, 有案不查, 错案) as of ``as_of``, in the board's order: a
    supervision is overdue once its deadline has passed with the case still open. Shared by the fold and the view's
    stored rows."""
    named = {
        "major": major,
        "supervised": bool(deadlines),
        "supervision_overdue": open_ and any(deadline < as_of for deadline in deadlines),
        "not_investigated": not_investigated,
        "wrongful": wrongful,
    }
    return [flag for flag, on in named.items() if on]


@dataclass
class PetitionState:
    """A petition as known: current unit, owner, flags, deadline, status."""

    rec: Rec
    events: list[Ev]
    unit_id: str
    collective: bool
    deadline: int
    closed_at: int | None
    overdue: bool
    policy_version: int

    def unit_at(self, at: int) -> str:
        """The unit answering for the petition at business time ``at`` (a diversion moves it from then on)."""
        unit = self.rec.unit_id or ""
        for e in self.events:
            if e.type == "diverted" and e.occurred_at <= at:
                unit = e.data["to_unit_id"]
        return unit

    def diversions_by(self, at: int) -> list[int]:
        """The positions of the diversions that placed the petition by business time ``at`` (:meth:`unit_at`'s
        evidence)."""
        return [e.position for e in self.events if e.type == "diverted" and e.occurred_at <= at]

    def ownership_at(self, at: int, position: int | None = None) -> Ev | None:
        """The ownership (领导包案) in force at business time ``at``: the last taken by then, by business time as every
        number is (an ownership recorded late still dates from when it was taken). With ``position``, just before
        the event there, which happened at ``at``: an ownership at the same instant counts if recorded before it."""
        limit = (at, math.inf if position is None else position)
        taken = [e for e in self.events if e.type == "owned" and (e.occurred_at, e.position) < limit]
        return max(taken, key=lambda e: (e.occurred_at, e.position), default=None)

    def owner_at(self, at: int, position: int | None = None) -> str | None:
        """The leader owning the petition at business time ``at`` (:meth:`ownership_at`)."""
        owned = self.ownership_at(at, position)
        return owned.data["leader_id"] if owned is not None else None

    @property
    def _last_at(self) -> int:
        """When the petition's last known event happened: its board row shows the owner then."""
        return max((e.occurred_at for e in self.events), default=self.rec.occurred_at)

    @cached_property
    def flags(self) -> list[str]:
        d = self.rec.data
        named = {
            "skip_level": bool(d["skip_level"]),
            "repeat": d["repeat_of"] is not None,
            "collective": self.collective,
            "assigned": d["assigned_from"] in ("province", "central"),
            "initial": bool(d["initial"]),
            "nail_case": any(e.type == "nail_case" for e in self.events),
            "escalated": any(e.type == "escalated" for e in self.events),
        }
        return [name for name, on in named.items() if on] + key_flags(named, self.owner_at(self._last_at))

    @property
    def status(self) -> str:
        if self.closed_at is not None:
            return "closed"
        return "overdue" if self.overdue else "open"

    @property
    def closed_in_time(self) -> bool:
        return self.closed_at is not None and self.closed_at <= self.deadline

    def board_row(self) -> dict[str, Any]:
        """The petition's row on the board (信访台账)."""
        evs = self.events
        return {
            "id": self.rec.record_id,
            "unit_id": self.unit_id,
            "channel": self.rec.data["channel"],
            "category": self.rec.data["category"],
            "petitioner_count": self.rec.data["petitioner_count"],
            "registered_at": iso(self.rec.occurred_at),
            "deadline": iso(self.deadline),
            "status": self.status,
            "overdue": self.overdue,
            "closed_at": iso(self.closed_at) if self.closed_at is not None else None,
            "flags": self.flags,
            "owner_id": self.owner_at(self._last_at),
            "escalations": [e.data["level"] for e in evs if e.type == "escalated"],
            "nail_checks": sorted({e.data["check"] for e in evs if e.type == "nail_check"}),
            "policy_version": self.policy_version,
            "evidence": [self.rec.position] + [e.position for e in evs],
        }


def iso(value: int) -> str:
    return from_micros(value).isoformat()


def number(value: Any) -> float | int:
    """Decimals leave as JSON numbers: int when whole, else float."""
    d = Decimal(str(value))
    return int(d) if d == d.to_integral_value() else float(d)


@lru_cache(maxsize=4096)
def month_start(year: int, month: int) -> int:
    return micros(datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=BUREAU_TZ))


def year_bounds(year: int) -> tuple[int, int]:
    return month_start(year, 1), month_start(year + 1, 1)


class PolicyBook:
    """The policy versions known at ``known_at``; the version in force at any business time, memoised."""

    def __init__(self, amendments: list[Amendment]) -> None:
        self.amendments = amendments
        self.starts = sorted({micros(a.effective_from) for a in amendments})
        self._memo: dict[int, PolicyVersion] = {}

    def at(self, moment: int) -> PolicyVersion:
        segment = bisect.bisect_right(self.starts, moment)
        if segment not in self._memo:
            self._memo[segment] = in_force(self.amendments, from_micros(moment))
        return self._memo[segment]


def grouped(events: Iterable[Ev]) -> dict[str, list[Ev]]:
    """Events by record, each record's in the order given (position order, as read)."""
    found: dict[str, list[Ev]] = defaultdict(list)
    for e in events:
        found[e.uuid].append(e)
    return found


def _rec(r: Row) -> Rec:
    return Rec(r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5]), orjson.loads(r[6]))


def _ev(r: Row) -> Ev:
    return Ev(int(r[0]), r[1], r[2], int(r[3]), int(r[4]), orjson.loads(r[5]) if r[5] is not None else NO_DATA)


REC_COLUMNS = "uuid, record_id, unit_id, occurred_at, recorded_at, position, data"
EV_COLUMNS = "position, uuid, type, occurred_at, recorded_at, data"
#: The fact projections whose records have span rows in the current view, each of its own kind.
SPANNED = frozenset({"cases", "petitions", "people"})
#: The event types whose ``data`` the score, trigger and report folds read (精简读取). In a lean fold the
#: data of every other type is neither fetched nor decoded: decoding is most of what a fold costs.
READ_DATA = ("diverted", "escalated", "extended", "finding", "owned", "removed", "reported", "wrongful")
#: The event types a score (occurrences and commendations) reads, per projection: a score's fold skips the
#: rest (replies, return visits, nail checks... are most of a petition's events and never move a score).
SCORE_TYPES = {
    "cases": ("declared_major", "filed"),
    "petitions": ("closed", "diverted", "escalated", "extended"),
    "people": ("commended", "finding", "reception", "removed", "reported"),
}
#: The event types the triggers read (a score's, for R6, and owners, wrongful findings).
TRIGGER_TYPES = {
    **SCORE_TYPES,
    "cases": ("declared_major", "filed", "wrongful"),
    "petitions": (*SCORE_TYPES["petitions"], "owned"),
}
#: The event types the R13 reports read: the triggers', case closures and nail-case designations.
REPORT_TYPES = {
    **TRIGGER_TYPES,
    "cases": (*TRIGGER_TYPES["cases"], "closed"),
    "petitions": (*TRIGGER_TYPES["petitions"], "nail_case"),
}
#: The type column as an expression no index matches: both planners would otherwise walk (or bitmap-AND) the
#: (type, occurred_at) index over the whole city instead of reading the record's own events by uuid.
UNINDEXED_TYPE = "type || ''"
#: The ``data`` of an event whose data a lean fold does not read (shared, never mutated).
NO_DATA: dict[str, Any] = {}


class Structure:
    """The unit tree and the policy versions (结构) known at one recording time, with memoised tree walks."""

    def __init__(self, units: list[Rec], policy_records: list[Rec], policy_events: list[Ev]) -> None:
        self.units = {r.record_id: r for r in units}
        self.policy = _policy_book(policy_records, policy_events)
        self._ancestors: dict[str, list[str]] = {}
        self._subtrees: dict[str, set[str]] | None = None
        self._districts: dict[str, str | None] = {}
        self._governments: dict[str, str | None] = {}

    def ancestors(self, unit_id: str) -> list[str]:
        """The unit and every unit above it, nearest first (属地管理): up the government whose area a bureau office
        covers (辖区), then up its parent office, as ``domain.units.Unit.above`` reads them."""
        chain = self._ancestors.get(unit_id)
        if chain is None:
            chain = []
            pending = [unit_id]
            while pending:
                current = pending.pop()
                if current in chain:
                    continue
                chain.append(current)
                unit = self.units.get(current)
                if unit is not None:
                    above = [unit.data.get("jurisdiction_id"), unit.data["parent_id"]]
                    pending += reversed([u for u in above if u is not None])
            self._ancestors[unit_id] = chain
        return chain

    def root(self, unit_id: str) -> str:
        """The city a unit lies in: the top of its chain of parents (its chain of :meth:`ancestors` may end with a
        bureau office, reached through the area it covers first)."""
        chain = self.ancestors(unit_id)
        return next(
            (u for u in reversed(chain) if u in self.units and self.units[u].data["parent_id"] is None), chain[-1]
        )

    def subtree(self, unit_id: str) -> set[str]:
        """Every known unit whose chain goes through ``unit_id`` (itself included when known)."""
        if self._subtrees is None:
            # Built whole, then published: a structure is shared by the server's threads, and one of them must
            # never see another's half-built map.
            subtrees: dict[str, set[str]] = {}
            for u in self.units:
                for above in self.ancestors(u):
                    subtrees.setdefault(above, set()).add(u)
            self._subtrees = subtrees
        return self._subtrees.get(unit_id, set())

    def district_of(self, unit_id: str) -> str | None:
        if unit_id not in self._districts:
            chain = self.ancestors(unit_id)
            found = None
            for kind in ("district", "city"):
                found = next((u for u in chain if u in self.units and self.units[u].data["kind"] == kind), None)
                if found:
                    break
            self._districts[unit_id] = found
        return self._districts[unit_id]

    def government_of(self, unit_id: str) -> str | None:
        """The nearest government (乡镇、区、市) at or above the unit: a case filed with a land station or a branch
        bureau happened in the township or district that contains it, whose government answers for it (R4)."""
        if unit_id not in self._governments:
            chain = self.ancestors(unit_id)
            self._governments[unit_id] = next(
                (u for u in chain if u in self.units and self.units[u].data["kind"] in GOVERNMENTS), None
            )
        return self._governments[unit_id]


#: The kinds of unit that are governments (政府): R4 holds their principal leaders (主要负责人) to account.
GOVERNMENTS = ("township", "district", "city")


STRUCTURE_TABLES = ("proj_units_records", "proj_policy_records", "proj_policy_events")


@dataclass(frozen=True)
class _Rows:
    """One database's structure rows as read at ``stamp``, with each table's recording times sorted."""

    stamp: tuple[Any, ...]
    units: list[Rec]
    records: list[Rec]
    events: list[Ev]
    times: tuple[list[int], list[int], list[int]]
    full: Structure  # as known after the latest of them

    def known(self, known_at: int) -> tuple[int, int, int]:
        """How many rows of each table were recorded by ``known_at``: the rows known grow with it, so equal
        counts mean the same rows (and the same structure)."""
        units, records, events = self.times
        return (
            bisect.bisect_right(units, known_at),
            bisect.bisect_right(records, known_at),
            bisect.bisect_right(events, known_at),
        )


#: Per database, its structure rows; and the structures as known at past moments, by (database, stamp, counts):
#: an auditor's ``known_at`` questions would otherwise build the whole unit tree again for every answer (at 1M
#: events, most of a territory's answer), though the tree changes a few times a year.
_structures: dict[str, _Rows] = {}
_past_structures: dict[tuple[Any, ...], Structure] = {}
PAST_STRUCTURES = 64
_structures_lock = threading.Lock()


def structure(db: Db, known_at: int) -> Structure:
    """The structure known at ``known_at``. The facts are append-only, so each process keeps the rows of each
    database and checks them against the tables' (count, last position) on every call: a second server or a
    rebuild is seen at once, and a query pays two index look-ups instead of re-reading the whole tree."""
    stamp = tuple(db.query(" UNION ALL ".join(f"SELECT COUNT(*), MAX(position) FROM {t}" for t in STRUCTURE_TABLES)))
    with _structures_lock:
        rows = _structures.get(db.url)
    if rows is None or rows.stamp != stamp:
        units = [_rec(r) for r in db.query(f"SELECT {REC_COLUMNS} FROM proj_units_records ORDER BY position")]
        records = [_rec(r) for r in db.query(f"SELECT {REC_COLUMNS} FROM proj_policy_records ORDER BY position")]
        events = [_ev(r) for r in db.query(f"SELECT {EV_COLUMNS} FROM proj_policy_events ORDER BY position")]
        times = (
            sorted(u.recorded_at for u in units),
            sorted(r.recorded_at for r in records),
            sorted(e.recorded_at for e in events),
        )
        rows = _Rows(stamp, units, records, events, times, Structure(units, records, events))
        with _structures_lock:
            _structures[db.url] = rows
    counts = rows.known(known_at)
    if counts == (len(rows.units), len(rows.records), len(rows.events)):
        return rows.full
    key = (db.url, stamp, counts)
    with _structures_lock:
        past = _past_structures.get(key)
    if past is None:
        past = Structure(
            [u for u in rows.units if u.recorded_at <= known_at],
            [r for r in rows.records if r.recorded_at <= known_at],
            [e for e in rows.events if e.recorded_at <= known_at],
        )
        with _structures_lock:
            while len(_past_structures) >= PAST_STRUCTURES:
                del _past_structures[next(iter(_past_structures))]  # the oldest
            _past_structures[key] = past
    return past


def _policy_book(records: list[Rec], events: list[Ev]) -> PolicyBook:
    amendments: list[Amendment] = []
    for rec in records:
        # Known from the ledger's epoch whenever recorded (domain.policy.Amendment.known_from).
        amendments.append(
            Amendment(
                1, from_micros(rec.data["effective_from"]), _params(rec.data["params"]), from_micros(rec.recorded_at)
            )
        )
    if not amendments:
        amendments.append(Amendment(1, LEDGER_EPOCH, dict(DEFAULTS), LEDGER_EPOCH))
    for e in events:
        effective = from_micros(e.data["effective_from"])
        amendments.append(
            Amendment(e.data["version"], effective, _params(e.data["params"]), from_micros(e.recorded_at))
        )
    return PolicyBook(amendments)


class Known:
    """The facts as of ``as_of`` (business time) as known at ``known_at`` (recording time).

    With a ``scope`` (a set of unit ids), only the records filed under those units are read (a
    petition also when it was diverted into one of them): queries for one territory then read
    that territory's facts, not the whole city's. ``lean`` folds read no event data outside
    :data:`READ_DATA`; ``only`` further limits the event types read per projection (:data:`SCORE_TYPES`).
    A lean or limited fold answers only the folds those constants were drawn from.
    """

    def __init__(
        self,
        db: Db,
        as_of: datetime,
        known_at: datetime,
        scope: set[str] | None = None,
        *,
        lean: bool = False,
        only: dict[str, tuple[str, ...]] | None = None,
        window: tuple[int, int] | None = None,
        uuids: list[str] | None = None,
        facts: Facts | None = None,
        known: Structure | None = None,
    ) -> None:
        self.db = db
        self.as_of = micros(as_of)
        self.known_at = micros(known_at)
        self.scope = scope
        self.lean = lean
        self.only = only
        self.window = window
        #: Only these records (by uuid): the current view derives records in chunks of :data:`IN_LIST`; a past
        #: question folds up to :data:`FOLD_LIMIT`, read an ``IN`` list at a time.
        self.uuids = uuids
        #: Of :attr:`uuids`, those of each fact projection, when known (the records a past question folds, found
        #: by their span rows): a projection with none of them is not read at all.
        self.projections: dict[str, list[str]] | None = None
        #: The city's facts already in memory (``projections.facts``): a lean city-wide fold filters them instead of
        #: reading the tables.
        self.facts = facts
        # A fold narrowed from another (``known``) shares its unit tree and policy: the same db and ``known_at``.
        self.structure = known if known is not None else structure(db, self.known_at)
        self.units = self.structure.units
        self.policy = self.structure.policy
        self.ancestors = self.structure.ancestors
        self.root = self.structure.root
        self.subtree = self.structure.subtree
        self.district_of = self.structure.district_of

    def within(self, scope: set[str]) -> Known:
        """The same facts (same ``as_of`` and ``known_at``) of the territory ``scope`` only, folded afresh."""
        return self.narrowed(scope, None)

    def of_records(self, uuids: list[str]) -> Known:
        """The same question (moments, territory, reading) of these records only."""
        return self.narrowed(self.scope, uuids)

    def narrowed(self, scope: set[str] | None, uuids: list[str] | None) -> Known:
        """This fold's question (moments and reading) asked afresh of the territory ``scope`` and the records
        ``uuids`` (``None``: the city, every record)."""
        return Known(
            self.db,
            from_micros(self.as_of),
            from_micros(self.known_at),
            scope,
            lean=self.lean,
            only=self.only,
            window=self.window,
            uuids=uuids,
            known=self.structure,
        )

    def next_records(
        self,
        projection: str,
        after: int | None,
        limit: int,
        having: tuple[str, str] | None = None,
        lacking: str | None = None,
    ) -> list[tuple[str, int]]:
        """The first ``limit`` records (``uuid, position``) of a projection this fold reads, in log order after
        position ``after``: a page's records, to be folded alone (:meth:`of_records`). With ``having`` (an event
        type and a text its data holds), only records with such an event, and with ``lacking``, only those
        without an event of that type (both as this fold would read the events: known and happened)."""
        where, params = self._where(projection, None)
        if after is not None:
            where += " AND position > ?"
            params.append(after)
        events = f"SELECT uuid FROM proj_{projection}_events WHERE type = ? AND recorded_at <= ? AND occurred_at <= ?"
        if having is not None:
            where += f" AND uuid IN ({events} AND data LIKE ?)"
            params += [having[0], self.known_at, self.as_of, f"%{having[1]}%"]
        if lacking is not None:
            where += f" AND uuid NOT IN ({events})"
            params += [lacking, self.known_at, self.as_of]
        sql = f"SELECT uuid, position FROM proj_{projection}_records{where} ORDER BY position LIMIT ?"
        return [(uuid, int(position)) for uuid, position in self.db.query(sql, [*params, limit])]

    # --- raw facts ----------------------------------------------------------------------------

    def _where(
        self, projection: str, type_: str | None, scoped: bool = True, uuids: list[str] | None = None
    ) -> tuple[str, list[Any]]:
        """The filter on a projection's records: known, happened, of the type, in scope; of the records ``uuids``
        (one chunk of :meth:`_chunks`) when given, else of all of :attr:`uuids`."""
        uuids = self._own(projection) if uuids is None else uuids
        sql = " WHERE recorded_at <= ? AND occurred_at <= ?"
        params: list[Any] = [self.known_at, self.as_of]
        if type_:
            # Within a territory or a chunk the unit or uuid index is the selective one: SQLite, with no statistics,
            # would take the type index and walk the whole city's records of the type (10M events: every one of
            # 101,640 target agreements for a district's 60, 37 ms). Unscoped, the type index is the one to take.
            narrowed = uuids is not None or (scoped and self.scope is not None)
            sql += f" AND {UNINDEXED_TYPE if narrowed else 'type'} = ?"
            params.append(type_)
        if uuids is not None:
            sql += f" AND uuid IN ({', '.join('?' * len(uuids)) or 'NULL'})"
            params += uuids
        if self.window is not None and projection in ("cases", "petitions"):
            more_sql, more = self._in_window(projection)
            sql += more_sql
            params += more
        if scoped and self.scope is not None:
            units = sorted(self.scope)
            marks = ", ".join("?" * len(units)) or "NULL"
            diverted = self._diverted_into_scope if projection == "petitions" else []
            if diverted:
                sql += f" AND (unit_id IN ({marks}) OR uuid IN ({', '.join('?' * len(diverted))}))"
                params += [*units, *diverted]
            else:
                sql += f" AND unit_id IN ({marks})"
                params += units
        return sql, params

    def _in_window(self, projection: str) -> tuple[str, list[Any]]:
        """The filter on records that can yield an occurrence in ``window`` [start, end) (按年度取数).

        A case's occurrences fall on its report (major by size), its declaration as major, or its filing
        deadline (有案不查); a petition's on its registration (R9), its escalations (R14) or its handling
        deadline (R18). Deadlines lie at most the longest period any known policy version sets after the
        record, so older records count only through an event inside the window.
        """
        start, end = self.window or (0, 0)
        versions = [self.policy.at(s) for s in self.policy.starts]
        if projection == "cases":
            horizon = max(filing_days(v) for v in versions)
            later = "declared_major"
        else:
            horizon = max(handling_days(v, v.days("max_extension_days")) for v in versions)
            later = "escalated"
        sql = (
            " AND ((occurred_at >= ? AND occurred_at < ?) OR uuid IN (SELECT uuid FROM"
            f" proj_{projection}_events WHERE type = ? AND occurred_at >= ? AND occurred_at < ?))"
        )
        return sql, [start - horizon * DAY, end, later, start, end]

    @cached_property
    def _diverted_into_scope(self) -> list[str]:
        """Petitions diverted into the scope (改派), whatever unit first registered them (read once per answer)."""
        units = sorted(self.scope or ())
        if not units:
            return []
        # By the destination index when it exists (the type index would walk every diversion of the city); a view
        # built by an older engine lacks it, and then a scan of the diversions beats a scan of every event.
        kind = UNINDEXED_TYPE if self._destination_indexed else "type"
        rows = self.db.query(
            f"SELECT DISTINCT uuid FROM proj_petitions_events WHERE {kind} = 'diverted' AND recorded_at <= ?"
            f" AND occurred_at <= ? AND {self.db.json_text('data', 'to_unit_id')} IN ({', '.join('?' * len(units))})",
            (self.known_at, self.as_of, *units),
        )
        return sorted(r[0] for r in rows)

    @cached_property
    def _destination_indexed(self) -> bool:
        """Whether the petitions' diversion-destination index exists (one catalogue look-up per answer)."""
        if self.db.dialect == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?"
        else:
            sql = "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ?"
        return bool(self.db.query(sql, (DIVERTED_INDEX,)))

    def _in_memory(self, projection: str, scoped: bool = True, *, events: bool = False) -> Facts | None:
        """The facts in memory, if this read may filter them: a city-wide fold (no territory, chunk or window), and
        for events a lean one (the facts keep only the data a lean fold reads)."""
        facts = self.facts
        if facts is None or projection not in facts.records or self.uuids is not None or self.window is not None:
            return None
        if (scoped and self.scope is not None) or (events and not self.lean):
            return None
        return facts

    def records(self, projection: str, type_: str | None = None, *, scoped: bool = True) -> list[Rec]:
        facts = self._in_memory(projection, scoped)
        if facts is not None:
            return facts.cut_records(projection, self.as_of, self.known_at, type_)
        rows: list[Row] = []
        chunks = self._chunks(projection)
        for some in chunks:
            where, params = self._where(projection, type_, scoped, some)
            rows += self.db.query(
                f"SELECT {REC_COLUMNS} FROM proj_{projection}_records{where} ORDER BY position", params
            )
        if len(chunks) > 1:
            rows.sort(key=lambda r: int(r[5]))  # by position, as one read orders them
        return [_rec(r) for r in rows]

    def known_ids(self, projection: str, type_: str | None = None) -> set[str]:
        """The uuids of the records :meth:`records` would give, without reading them whole."""
        found: set[str] = set()
        for some in self._chunks(projection):
            where, params = self._where(projection, type_, True, some)
            found |= {r[0] for r in self.db.query(f"SELECT uuid FROM proj_{projection}_records{where}", params)}
        return found

    def _chunks(self, projection: str) -> list[list[str] | None]:
        """The record ids one read of ``projection`` binds at a time: its :attr:`uuids` in ``IN`` lists of
        :data:`IN_LIST` (one ``None`` when the fold is not limited to records; none when it has none of them)."""
        uuids = self._own(projection)
        if uuids is None:
            return [None]
        return [uuids[i : i + IN_LIST] for i in range(0, len(uuids), IN_LIST)]

    def _own(self, projection: str) -> list[str] | None:
        """The records of ``projection`` this fold is limited to: :attr:`uuids`, or of them the projection's own
        when :attr:`projections` knows them."""
        if self.projections is None or projection not in SPANNED:
            return self.uuids
        return self.projections.get(projection, [])

    def events(self, projection: str) -> dict[str, list[Ev]]:
        facts = self._in_memory(projection, events=True)
        if facts is not None:
            types = (self.only or {}).get(projection) or None
            return grouped(facts.cut_events(projection, self.as_of, self.known_at, types))
        if self._own(projection) == []:
            return {}  # none of this fold's records is this projection's
        columns = EV_COLUMNS
        if self.lean:
            columns = EV_COLUMNS.replace("data", f"CASE WHEN type IN ({', '.join('?' * len(READ_DATA))}) THEN data END")
        sql = f"SELECT {columns} FROM proj_{projection}_events WHERE recorded_at <= ? AND occurred_at <= ?"
        params: list[Any] = [*(READ_DATA if self.lean else ()), self.known_at, self.as_of]
        types = (self.only or {}).get(projection)
        if types:
            sql += f" AND {UNINDEXED_TYPE} IN ({', '.join('?' * len(types))})"
            params += types
        if self.scope is None and self.uuids is None:
            rows = self.db.query(sql + " ORDER BY position", params)
        else:
            # The territory's (or chunk's) record ids first, then their events by the uuid index: given a subquery,
            # PostgreSQL's planner chose a scan of every event of the city (O(N) per answer).
            if self.scope is None and self.uuids is not None:
                uuids = self._own(projection) or []  # the chunk's own records: their events, if any are its
            else:
                where, more = self._where(projection, None)
                uuids = [r[0] for r in self.db.query(f"SELECT uuid FROM proj_{projection}_records{where}", more)]
            rows = []
            for chunk in range(0, len(uuids), IN_LIST):
                some = uuids[chunk : chunk + IN_LIST]
                rows += self.db.query(sql + f" AND uuid IN ({', '.join('?' * len(some))})", [*params, *some])
            rows.sort(key=lambda r: int(r[0]))
        return grouped(map(_ev, rows))

    # --- units: quota events ----------------------------------------------------------------------

    def quota_events(self, year: int) -> dict[str, list[Ev]]:
        """The units' quota allocations and land approvals (指标下达、用地批准) for ``year``."""
        sql = (
            f"SELECT {EV_COLUMNS} FROM proj_units_events WHERE recorded_at <= ? AND occurred_at <= ?"
            # By the year index (engine.ensure_schema): the type index would walk every year's allocations.
            f" AND {UNINDEXED_TYPE} IN ('allocated', 'approved') AND {self.db.json_number('data', 'year')} = ?"
        )
        params: list[Any] = [self.known_at, self.as_of, year]
        if self.scope is not None:  # the territory's units by the uuid index, not the city's by type
            uuids = sorted(self.units[u].uuid for u in self.scope if u in self.units)
            sql += f" AND uuid IN ({', '.join('?' * len(uuids)) or 'NULL'})"
            params += uuids
        rows = self.db.query(sql + " ORDER BY position", params)
        grouped: dict[str, list[Ev]] = defaultdict(list)
        for r in rows:
            grouped[r[1]].append(_ev(r))
        return grouped

    def allocated_units(self, year: int) -> set[str]:
        """The units given a quota allocation (指标下达) for ``year``, anywhere in the city."""
        rows = self.db.query(
            "SELECT DISTINCT uuid FROM proj_units_events WHERE type = 'allocated' AND recorded_at <= ?"
            f" AND occurred_at <= ? AND {self.db.json_number('data', 'year')} = ?",
            (self.known_at, self.as_of, year),
        )
        by_uuid = {u.uuid: u.record_id for u in self.units.values()}
        return {by_uuid[r[0]] for r in rows if r[0] in by_uuid}

    # --- cases --------------------------------------------------------------------------------

    @cached_property
    def cases(self) -> list[Case]:
        return self._cases(self.records("cases"), self.events("cases"))

    def major_cases(self, start: int, end: int) -> list[Case]:
        """The cases that became major (重大案件) in [start, end).

        SQL keeps only the candidates (big enough under the lowest threshold any policy version set,
        reported in the period, or declared major in it); the exact rule then runs on those. Unless
        every case is already loaded, each carries only its ``declared_major`` events: enough for
        ``major_at``, ``major_evidence`` and ``major_policy``, not for the filing deadline.
        """
        if "cases" in self.__dict__:
            found = self.cases
        else:
            versions = [self.policy.at(s) for s in self.policy.starts]
            area = min(Decimal(v["major_case_area_mu"]) for v in versions)
            value = min(Decimal(v["major_case_value_yuan"]) for v in versions)
            declared = (
                "SELECT uuid FROM proj_cases_events WHERE type = 'declared_major' AND recorded_at <= ?"
                " AND occurred_at <= ? AND occurred_at >= ? AND occurred_at < ?"
            )
            big = (
                f"occurred_at >= ? AND occurred_at < ? AND ({self.db.json_number('data', 'area_mu')} >= ?"
                f" OR {self.db.json_number('data', 'value_yuan')} >= ?)"
            )
            # Float comparisons in SQL: a hair below the thresholds, so no candidate is lost to rounding.
            candidates = [start, end, float(area) * (1 - 1e-9), float(value) * (1 - 1e-9)]
            candidates += [self.known_at, self.as_of, start, end]
            rows: list[Row] = []
            chunks = self._chunks("cases")
            for some in chunks:
                where, params = self._where("cases", None, uuids=some)
                sql = f"SELECT {REC_COLUMNS} FROM proj_cases_records{where} AND (({big}) OR uuid IN ({declared}))"
                rows += self.db.query(f"{sql} ORDER BY position", [*params, *candidates])
            if len(chunks) > 1:
                rows.sort(key=lambda r: int(r[5]))
            recs = [_rec(r) for r in rows]
            events: dict[str, list[Ev]] = defaultdict(list)
            if recs:
                marks = ", ".join("?" * len(recs))
                for r in self.db.query(
                    f"SELECT {EV_COLUMNS} FROM proj_cases_events WHERE recorded_at <= ? AND occurred_at <= ?"
                    f" AND {'type' if self.scope is None else UNINDEXED_TYPE} = 'declared_major'"
                    f" AND uuid IN ({marks}) ORDER BY position",
                    [self.known_at, self.as_of, *(rec.uuid for rec in recs)],
                ):
                    events[r[1]].append(_ev(r))
            found = self._cases(recs, events)
        return [c for c in found if c.major_at is not None and start <= c.major_at < end]

    def majors(self, start: int, end: int) -> list[MajorCase]:
        """The cases that became major in [start, end), as R4's deductions need them."""
        return [
            MajorCase(c.rec.record_id, c.rec.unit_id or "", "", c.major_evidence, c.major_at)
            for c in self.major_cases(start, end)
            if c.major_at is not None
        ]

    def _cases(self, records: list[Rec], events: dict[str, list[Ev]]) -> list[Case]:
        cases = []
        for rec in records:
            case = Case(rec, events.get(rec.uuid, []))
            policy = self.policy.at(rec.occurred_at)
            case.policy_version = policy.version
            area, value = rec.data["area_mu"], rec.data["value_yuan"]
            by_size = is_major_by_size(
                Decimal(area) if area is not None else None, Decimal(value) if value is not None else None, policy
            )
            if by_size:
                case.major_at, case.major_evidence = rec.occurred_at, [rec.position]
            else:
                declared = next((e for e in case.events if e.type == "declared_major"), None)
                if declared:
                    case.major_at, case.major_evidence = declared.occurred_at, [rec.position, declared.position]
            if case.major_at is not None:
                case.major_policy = self.policy.at(case.major_at)
            deadline = rec.occurred_at + filing_days(policy) * DAY
            filed_in_time = any(e.type == "filed" and e.occurred_at <= deadline for e in case.events)
            case.filing_deadline, case.filed_in_time = deadline, filed_in_time
            if deadline < self.as_of and not filed_in_time:
                case.unfiled_at = deadline
            cases.append(case)
        return cases

    # --- petitions ----------------------------------------------------------------------------

    @cached_property
    def petitions(self) -> list[PetitionState]:
        return self._petitions(self.records("petitions"), self.events("petitions"))

    def _petitions(self, records: list[Rec], events: dict[str, list[Ev]]) -> list[PetitionState]:
        petitions = []
        for rec in records:
            evs = events.get(rec.uuid, [])
            policy = self.policy.at(rec.occurred_at)
            extension = sum(int(e.data["days"]) for e in evs if e.type == "extended")
            deadline = rec.occurred_at + handling_days(policy, extension) * DAY
            closed = next((e for e in evs if e.type == "closed"), None)
            closed_in_time = closed is not None and closed.occurred_at <= deadline
            state = PetitionState(
                rec=rec,
                events=evs,
                unit_id=rec.unit_id or "",
                collective=is_collective(int(rec.data["petitioner_count"]), policy),
                deadline=deadline,
                closed_at=closed.occurred_at if closed else None,
                overdue=deadline < self.as_of and not closed_in_time,
                policy_version=policy.version,
            )
            state.unit_id = state.unit_at(self.as_of)
            petitions.append(state)
        return petitions

    # --- people -------------------------------------------------------------------------------

    @cached_property
    def people(self) -> dict[str, Rec]:
        return {r.record_id: r for r in self.records("people")}

    @cached_property
    def person_events(self) -> dict[str, list[Ev]]:
        return self.events("people")

    # --- accountability -----------------------------------------------------------------------

    @cached_property
    def agreements(self) -> list[Rec]:
        return self.records("accountability", "agreement")

    @cached_property
    def decisions(self) -> dict[str, Rec]:
        return {r.record_id: r for r in self.records("accountability", "decision", scoped=False)}

    def decisions_of(self, trigger_ids: list[str]) -> dict[str, Rec]:
        """The decisions (问责决定) filed under these trigger ids: by the record-id index when they are few,
        since every decision of the city is a growing list that one territory's triggers never need."""
        if "decisions" in self.__dict__ or len(trigger_ids) > DECISION_LOOKUP:
            return self.decisions
        where, params = self._where("accountability", "decision", scoped=False)
        # Fewer decisions in the city than ids asked about (the usual case): all of them, by the type index,
        # costs one short read; hundreds of ids in a list cost PostgreSQL a scan of every agreement.
        sql = f"SELECT {REC_COLUMNS} FROM proj_accountability_records{where} LIMIT {len(trigger_ids) + 1}"
        rows = self.db.query(sql, params)
        if len(rows) <= len(trigger_ids):
            wanted = set(trigger_ids)
            rows = sorted((r for r in rows if r[1] in wanted), key=lambda r: int(r[5]))
            return {r.record_id: r for r in map(_rec, rows)}
        rows = []
        for chunk in range(0, len(trigger_ids), IN_LIST):
            some = trigger_ids[chunk : chunk + IN_LIST]
            rows += self.db.query(
                f"SELECT {REC_COLUMNS} FROM proj_accountability_records{where}"
                f" AND record_id IN ({', '.join('?' * len(some))})",
                [*params, *some],
            )
        rows.sort(key=lambda r: int(r[5]))  # by position, as when all are read
        return {r.record_id: r for r in map(_rec, rows)}

    # --- occurrences (考核事项) ------------------------------------------------------------------

    def _occurrence(
        self,
        unit_id: str,
        indicator: str,
        rule: str,
        at: int,
        evidence: list[int],
        param: str,
        record_id: str,
        *,
        caused_at: int | None = None,
    ) -> Occurrence:
        """An occurrence at ``at``, priced by the policy in force when the event that caused it happened
        (``caused_at``, by default ``at``): a missed deadline (有案不查, an overdue petition) is caused by the clue or
        the registration whose policy set it, and its trigger names that same version (R20: one fact, one version)."""
        policy = self.policy.at(at if caused_at is None else caused_at)
        return Occurrence(unit_id, indicator, rule, at, evidence, int(policy[param]), policy.version, record_id)

    # Each record's own occurrences and triggers come from its own facts (and the policy) only: the current
    # view (projections.current) stores them per record. Missed receptions (R17), R4's leaders and R6 read
    # other records or the clock, so they are derived where they are read.

    def case_occurrences(self, case: Case) -> list[Occurrence]:
        unit, rid = case.rec.unit_id or "", case.rec.record_id
        found = []
        if case.major_at is not None:
            found.append(
                self._occurrence(unit, "major_case", "R4", case.major_at, case.major_evidence, "points_major_case", rid)
            )
        if case.unfiled_at is not None:
            found.append(
                self._occurrence(
                    unit,
                    "case_not_investigated",
                    "R7",
                    case.unfiled_at,
                    [case.rec.position],
                    "points_case_not_investigated",
                    rid,
                    caused_at=case.rec.occurred_at,
                )
            )
        return found

    def petition_occurrences(self, p: PetitionState) -> list[Occurrence]:
        rec, rid = p.rec, p.rec.record_id
        at, unit = rec.occurred_at, rec.unit_id or ""
        found = []
        for flag, indicator, param in (
            ("skip_level", "skip_level_petition", "points_skip_level_petition"),
            ("repeat", "repeat_petition", "points_repeat_petition"),
            ("collective", "collective_petition", "points_collective_petition"),
        ):
            if flag in p.flags:
                found.append(self._occurrence(unit, indicator, "R9", at, [rec.position], param, rid))
        for e in p.events:
            if e.type == "escalated":
                found.append(
                    self._occurrence(
                        p.unit_at(e.occurred_at),
                        "escalation",
                        "R14",
                        e.occurred_at,
                        sorted([rec.position, *p.diversions_by(e.occurred_at), e.position]),
                        "points_escalation",
                        rid,
                    )
                )
        if p.overdue:
            evidence = [rec.position, *self.deadline_evidence(p)]
            found.append(
                self._occurrence(
                    p.unit_at(p.deadline),
                    "overdue_petition",
                    "R18",
                    p.deadline,
                    evidence,
                    "points_overdue_petition",
                    rid,
                    caused_at=rec.occurred_at,
                )
            )
        return found

    def person_occurrences(self, person: Rec, evs: list[Ev]) -> list[Occurrence]:
        """R7: each substantiated misconduct finding (missed receptions are :meth:`missed_receptions`)."""
        return [
            self._occurrence(
                person.unit_id or "", "misconduct", "R7", at, [report.position, e.position], "points_misconduct",
                person.record_id,
            )
            for e, report, at in findings(evs)
        ]  # fmt: skip

    def person_commendations(self, person: Rec, evs: list[Ev]) -> list[Occurrence]:
        return [
            self._occurrence(
                person.unit_id or "", "commendation", "R8", e.occurred_at, [e.position], "points_commendation",
                person.record_id,
            )
            for e in evs
            if e.type == "commended"
        ]  # fmt: skip

    @cached_property
    def occurrences(self) -> list[Occurrence]:
        """Every deduction (positive points) known, across all years, in business-time order."""
        found: list[Occurrence] = []
        for case in self.cases:
            found += self.case_occurrences(case)
        for p in self.petitions:
            found += self.petition_occurrences(p)
        for person in self.people.values():
            found += self.person_occurrences(person, self.person_events.get(person.uuid, []))
        found += self.missed_receptions()
        found.sort(key=lambda o: (o.at, o.evidence))
        return found

    @cached_property
    def leaders(self) -> list[Leader]:
        """The leaders (领导) known, with their public receptions' months and removal (R4, R17)."""
        posts = {str(p) for p in LEADER_POSTS}
        found = []
        for person in self.people.values():
            if person.data["post"] in posts:
                found.append(self.leader(person, self.person_events.get(person.uuid, [])))
        return found

    @cached_property
    def principals(self) -> dict[str, list[Leader]]:
        """The principal leaders (主要领导) known, by unit (R4)."""
        found: dict[str, list[Leader]] = defaultdict(list)
        for leader in self.leaders:
            if leader.post == Post.PRINCIPAL_LEADER:
                found[leader.unit_id].append(leader)
        return found

    @staticmethod
    def leader(person: Rec, evs: list[Ev]) -> Leader:
        return Leader(
            person.record_id,
            person.unit_id or "",
            person.data["post"],
            person.occurred_at,
            person.position,
            next((e.occurred_at for e in evs if e.type == "removed"), None),
            sorted({_month_of(e.occurred_at) for e in evs if e.type == "reception"}),
        )

    def missed_receptions(self, window: tuple[int, int] | None = None) -> list[Occurrence]:
        """R17: each month, fully after a leader's registration and over as of ``as_of``, with no public reception;
        with a ``window`` (a year's bounds), only the months starting in it."""
        since, until = window or (None, None)
        return [o for leader in self.leaders for o in self.missed_by(leader, since, until)]

    def missed_by(self, leader: Leader, since: int | None = None, until: int | None = None) -> list[Occurrence]:
        """R17 for one leader (:meth:`missed_receptions`); with ``since`` (a month's start), only the months from it on
        (the report issuer adds each month's as it ends), and with ``until``, only those starting before it."""
        missed = []
        held = set(map(tuple, leader.held))
        local = from_micros(leader.registered if since is None else max(leader.registered, since))
        year, month = local.year, local.month
        if month_start(year, month) < leader.registered:
            year, month = (year, month + 1) if month < 12 else (year + 1, 1)
        while month_start(year, month + 1) <= self.as_of:
            start = month_start(year, month)
            if leader.removed is not None and leader.removed <= start:  # out of post for the whole month
                break
            if until is not None and start >= until:
                break
            if (year, month) not in held:
                missed.append(
                    self._occurrence(
                        leader.unit_id,
                        "missed_reception",
                        "R17",
                        start,
                        [leader.position],
                        "points_missed_reception",
                        leader.record_id,
                    )
                )
            year, month = (year, month + 1) if month < 12 else (year + 1, 1)
        return missed

    @cached_property
    def commendations(self) -> list[Occurrence]:
        found = []
        for person in self.people.values():
            found += self.person_commendations(person, self.person_events.get(person.uuid, []))
        return found

    @cached_property
    def _occurrences_by_unit(self) -> ByUnit:
        return ByUnit(self.occurrences, in_time_order=True)

    @cached_property
    def _commendations_by_unit(self) -> ByUnit:
        return ByUnit(self.commendations, in_time_order=False)

    # --- scores -------------------------------------------------------------------------------

    def _tally(self, unit_id: str, year: int) -> tuple[list[Occurrence], list[Occurrence], int]:
        """A unit's territory's deductions and commendations in a year, and the score they leave."""
        start, end = year_bounds(year)
        territory = self.subtree(unit_id) | {unit_id}
        deductions = self._occurrences_by_unit.within(territory, start, end)
        commendations = self._commendations_by_unit.within(territory, start, end)
        base = int(self.policy.at(start)["score_base"])
        return (
            deductions,
            commendations,
            max(base - sum(o.points for o in deductions) + sum(o.points for o in commendations), 0),
        )

    @cached_property
    def _shown_by_id(self) -> dict[int, tuple[Occurrence, dict[str, Any]]]:
        return {}

    def _shown(self, o: Occurrence) -> dict[str, Any]:
        """An occurrence as a score row shows it, made once per fold: each is shown in its unit's row and in every
        row above it (the whole city's scores formatted each about four times, a third of their time). Keyed by
        the object, checked, since an id may be reused once a replaced list's occurrences are gone."""
        found = self._shown_by_id.get(id(o))
        if found is None or found[0] is not o:
            found = self._shown_by_id[id(o)] = (o, o.as_dict())
        return found[1]

    def score(self, unit_id: str, year: int) -> dict[str, Any]:
        """The target-assessment score (目标考核得分) of a unit and everything below it, for a year."""
        deductions, commendations, score = self._tally(unit_id, year)
        start, end = year_bounds(year)
        opening, closing = self.policy.at(start), self.policy.at(end - 1)
        if self.as_of < end:
            outcome = "pending"
        elif score >= int(closing["commend_score"]):
            outcome = "commend"
        elif score < int(closing["pass_score"]):
            outcome = "criticise"
        else:
            outcome = "pass"
        unit = self.units.get(unit_id)
        return {
            "unit_id": unit_id,
            "name": unit.data["name"] if unit else None,
            "kind": unit.data["kind"] if unit else None,
            "year": year,
            "score": score,
            "outcome": outcome,
            "base": int(opening["score_base"]),
            "pass_score": int(closing["pass_score"]),
            "commend_score": int(closing["commend_score"]),
            "policy_version": closing.version,
            "deductions": [self._shown(o) for o in deductions],
            "commendations": [self._shown(o) for o in commendations],
        }

    # --- triggers (问责触发) -------------------------------------------------------------------

    def case_triggers(self, case: Case) -> tuple[list[dict[str, Any]], list[MajorCase]]:
        """R2 and R4 (the unit) and 有案不查 of one case; its R4 for the unit's leaders is :meth:`leader_triggers`."""
        found: list[dict[str, Any]] = []
        majors: list[MajorCase] = []
        unit, cid = case.rec.unit_id or "", case.rec.record_id
        for e in case.events:
            if e.type == "wrongful":
                for handler in e.data["handler_ids"]:
                    found.append(
                        _trigger(
                            "R2",
                            ["case", cid, handler],
                            unit,
                            handler,
                            f"case {cid} found wrongly handled (错案): {e.data['reason']}",
                            [case.rec.position, e.position],
                            e.occurred_at,
                            self.policy.at(e.occurred_at).version,
                        )
                    )
        if case.major_at is not None:
            reason = f"major case {cid} (重大案件) in {unit}"
            majors.append(MajorCase(cid, unit, reason, case.major_evidence, case.major_at))
            version = (case.major_policy or self.policy.at(case.major_at)).version
            found.append(_trigger("R4", ["case", cid], unit, None, reason, case.major_evidence, case.major_at, version))
        if case.unfiled_at is not None:
            found.append(
                _trigger(
                    "R7",
                    ["case", cid, "unfiled"],
                    unit,
                    None,
                    f"clue {cid} not filed in time (有案不查)",
                    [case.rec.position],
                    case.unfiled_at,
                    self.policy.at(case.rec.occurred_at).version,  # the version that set the filing deadline
                )
            )
        return found, majors

    def leader_triggers(self, majors: list[MajorCase]) -> list[dict[str, Any]]:
        """R4 for the principal leaders (主要领导) in post when each major case became major: those of the case's
        unit and, when that unit is a bureau office (土管所, 分局), those of the government it lies in (政府主要负责人).
        Each trigger's subject is the leader's own unit."""
        leaders = self.principals
        found = []
        for m in majors:
            government = self.structure.government_of(m.unit_id)
            units = [m.unit_id] if government in (None, m.unit_id) else [m.unit_id, government]
            for leader in [leader for unit in units for leader in leaders.get(unit, [])]:
                # In post when the case became major, in business time (as removal and R17 judge it, whatever
                # order the two were entered in): registered by then, not removed from post by then (the ledger
                # treats a removed leader as out of post: no petition ownership, no reception owed).
                if leader.registered <= m.at and (leader.removed is None or leader.removed > m.at):
                    found.append(
                        _trigger(
                            "R4",
                            ["case", m.case_id, leader.record_id],
                            leader.unit_id,
                            leader.record_id,
                            m.reason,
                            [*m.evidence, leader.position],
                            m.at,
                            self.policy.at(m.at).version,
                        )
                    )
        return found

    def petition_triggers(self, p: PetitionState) -> list[dict[str, Any]]:
        """R14 for each escalation of an owned petition (leader and unit), R18 once it is overdue."""
        found = []
        pid = p.rec.record_id
        for e in p.events:
            if e.type != "escalated":
                continue
            ownership = p.ownership_at(e.occurred_at, e.position)
            if ownership is None:
                continue
            owner = ownership.data["leader_id"]
            unit = p.unit_at(e.occurred_at)
            reason = f"owned petition {pid} escalated to {e.data['level']} (R14)"
            # Both name the ownership that makes it R14's and the diversions that placed it (R20).
            evidence = sorted([p.rec.position, ownership.position, *p.diversions_by(e.occurred_at), e.position])
            found.append(
                _trigger(
                    "R14",
                    ["petition", pid, str(e.position)],
                    unit,
                    owner,
                    reason,
                    evidence,
                    e.occurred_at,
                    self.policy.at(e.occurred_at).version,
                )
            )
            found.append(
                _trigger(
                    "R14",
                    ["petition", pid, str(e.position), "unit"],
                    unit,
                    None,
                    reason,
                    evidence,
                    e.occurred_at,
                    self.policy.at(e.occurred_at).version,
                )
            )
        if p.overdue:
            owned = p.ownership_at(p.deadline)  # who owned it when it went overdue
            # The events that set the deadline (an extension), place it (diversions) and name its owner (R20).
            setting = self.deadline_evidence(p)
            found.append(
                _trigger(
                    "R18",
                    ["petition", pid, "overdue"],
                    p.unit_at(p.deadline),
                    owned.data["leader_id"] if owned is not None else None,
                    f"petition {pid} still open past its deadline {iso(p.deadline)}",
                    sorted([p.rec.position, *setting, *([owned.position] if owned is not None else [])]),
                    p.deadline,
                    p.policy_version,  # the version that set the deadline
                )
            )
        return found

    @staticmethod
    def deadline_evidence(p: PetitionState) -> list[int]:
        """Beside its registration, the events an overdue petition's facts rest on: the extension that set its
        deadline and the diversions that placed it by then (positions, in log order)."""
        return sorted([e.position for e in p.events if e.type == "extended"] + p.diversions_by(p.deadline))

    def person_triggers(self, person: Rec, evs: list[Ev]) -> list[dict[str, Any]]:
        """R7: each substantiated misconduct report, open until the removal from post is recorded. A person is removed
        once (the ledger refuses a second removal): a finding substantiated after it finds them off the post already,
        so that removal answers it too, as the officer registry's ``removal_due`` has it."""
        found = []
        removals = [r for r in evs if r.type == "removed"]
        for e, report, at in findings(evs):
            rid = e.data["report_id"]
            removal = next((r for r in removals if rid in r.data["report_ids"]), removals[0] if removals else None)
            found.append(
                _trigger(
                    "R7",
                    ["person", person.record_id, rid],
                    person.unit_id or "",
                    person.record_id,
                    f"misconduct report {rid} substantiated ({report.data['kind']}): "
                    "removal from the enforcement post is due (调离执法岗位)",
                    [report.position, e.position],
                    at,
                    self.policy.at(at).version,
                    removal_due=removal is None,
                    removal=_removal(removal),
                )
            )
        return found

    def officer_row(self, person: Rec, evs: list[Ev]) -> dict[str, Any]:
        """A person's row in the officer registry (执法人员档案, R7, R8): reports and the substantiated ones, removal
        (due, or done), referral, commendations, receptions, and every event of theirs as evidence."""
        substantiated = [
            {"report_id": e.data["report_id"], "kind": report.data["kind"]} for e, report, _ in findings(evs)
        ]
        removed = next((e for e in evs if e.type == "removed"), None)
        referred = next((e for e in evs if e.type == "referred"), None)
        commendations = [e.data["title"] for e in evs if e.type == "commended"]
        return {
            "id": person.record_id,
            "unit_id": person.unit_id,
            "name": person.data["name"],
            "post": person.data["post"],
            "reports": sum(1 for e in evs if e.type == "reported"),
            "substantiated": substantiated,
            "removal_due": bool(substantiated) and removed is None,
            "removed": removed is not None,
            "removed_at": iso(removed.occurred_at) if removed else None,
            "referred": referred is not None,
            "commended": bool(commendations),
            "commendations": commendations,
            "receptions": sum(1 for e in evs if e.type == "reception"),
            "evidence": [person.position] + [e.position for e in evs],
        }

    def agreement_triggers(self) -> list[dict[str, Any]]:
        """R6: a target agreement's year closed with its territory's score below the pass score (通报批评)."""
        found = []
        for agreement in self.agreements:
            year = int(agreement.data["year"])
            end = year_bounds(year)[1]
            if self.as_of < end:
                continue
            unit = agreement.unit_id or ""
            deductions, commendations, score = self._tally(unit, year)
            closing = self.policy.at(end - 1)
            pass_score = int(closing["pass_score"])
            if score < pass_score:
                # R20: every event the score rests on — what was deducted and what was added back (表彰).
                evidence = [agreement.position] + [p for o in (*deductions, *commendations) for p in o.evidence]
                found.append(
                    _trigger(
                        "R6",
                        ["agreement", agreement.record_id],
                        unit,
                        None,
                        f"{year} closed with score {score} below {pass_score} (通报批评)",
                        evidence,
                        # An agreement signed after its year (补签) opens it when signed, not before it existed.
                        max(end, agreement.occurred_at),
                        closing.version,
                    )
                )
        return found

    @cached_property
    def triggers(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        majors: list[MajorCase] = []
        for case in self.cases:
            triggers, major = self.case_triggers(case)
            found += triggers
            majors += major
        found += self.leader_triggers(majors)
        for p in self.petitions:
            found += self.petition_triggers(p)
        for person in self.people.values():
            found += self.person_triggers(person, self.person_events.get(person.uuid, []))
        found += self.agreement_triggers()
        return self.decided(found)

    def decided(self, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The triggers with their decisions (问责决定) and status, in the order they opened."""
        decisions = self.decisions_of(sorted({t["id"] for t in found}))
        for t in found:
            decision = decisions.get(t["id"])
            t["decision"] = _decision(decision)
            if t["rule"] == "R7" and "removal_due" in t:
                # R7: the trigger stays open until the removal is recorded, whatever else was decided.
                t["status"] = "open" if t["removal_due"] else "decided"
                if t["decision"] is None and t["removal"] is not None:
                    t["decision"] = t["removal"]
            else:
                t["status"] = "decided" if decision else "open"
            if isinstance(t["opened_at"], int):  # the current view stores it converted already
                t["opened_at"] = iso(t["opened_at"])
        found.sort(key=lambda t: (t["opened_at"], t["id"]))
        return found


class Leader(NamedTuple):
    """A leader (领导) as R4 and R17 need them: post, registration, removal, the months with a public reception."""

    record_id: str
    unit_id: str
    post: str
    registered: int
    position: int
    removed: int | None
    held: list[tuple[int, int]]


class MajorCase(NamedTuple):
    """A major case as its leaders' R4 triggers need it (the leaders are other records)."""

    case_id: str
    unit_id: str
    reason: str
    evidence: list[int]
    at: int


def _trigger(
    rule: str, parts: list[str], unit_id: str, person_id: str | None, reason: str, evidence: list[int], at: int,
    policy_version: int, **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    """A trigger (问责线索): its rule, subject and reason, the events and the policy version that opened it (R20).
    Its ``unit_id`` is its subject's (API.md: every row names its unit)."""
    subject: dict[str, Any] = {"unit_id": unit_id}
    if person_id:
        subject["person_id"] = person_id
    return {
        "id": trigger_id(rule, parts),
        "rule": rule,
        "unit_id": unit_id,
        "subject": subject,
        "reason": reason,
        "evidence": sorted(set(evidence)),
        "policy_version": policy_version,
        "opened_at": at,
        **extra,
    }


class ByUnit:
    """Occurrences per unit, each with its rank in the whole list (so a territory's keep their order)."""

    def __init__(self, occurrences: list[Occurrence], *, in_time_order: bool) -> None:
        self.grouped: dict[str, list[tuple[int, Occurrence]]] = defaultdict(list)
        for rank, o in enumerate(occurrences):
            self.grouped[o.unit_id].append((rank, o))
        # A list in business-time order is cut by bisection (R6 tallies every agreement's year this way).
        self.times = {u: [o.at for _, o in pairs] for u, pairs in self.grouped.items()} if in_time_order else None

    def within(self, units: set[str], start: int, end: int) -> list[Occurrence]:
        found: list[tuple[int, Occurrence]] = []
        for u in units:
            pairs = self.grouped.get(u)
            if not pairs:
                continue
            if self.times is None:
                found += [(rank, o) for rank, o in pairs if start <= o.at < end]
            else:
                times = self.times[u]
                found += pairs[bisect.bisect_left(times, start) : bisect.bisect_left(times, end)]
        found.sort(key=lambda pair: pair[0])
        return [o for _, o in found]


def trigger_id(rule: str, parts: list[str]) -> str:
    """Deterministic trigger id, a valid record id (it becomes the decision's id): ``R4.case.c-1.p-2``."""
    readable = ".".join([rule, *parts])
    if len(readable) <= 64:
        return readable
    return f"{rule}.h.{hashlib.sha256(readable.encode()).hexdigest()[:40]}"


def _params(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: PARAMETERS[k].kind(Decimal(str(v))) if k in PARAMETERS else v for k, v in raw.items()}


def _month_of(value: int) -> tuple[int, int]:
    local = from_micros(value)
    return local.year, local.month


def _decision(rec: Rec | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    return {
        "outcome": rec.data["outcome"],
        "reason": rec.data["reason"],
        "actor": rec.data["actor"],
        "decided_at": iso(rec.occurred_at),
        "recorded_at": iso(rec.recorded_at),
        "evidence": [rec.position],
    }


def findings(evs: list[Ev]) -> list[tuple[Ev, Ev, int]]:
    """Each substantiated finding (调查属实, R7) among a person's events, with the report it decides and when it
    takes effect: once both had happened. The ledger refuses a finding dated before its report; one recorded before
    that rule counts from its report, so a report never changes what stood before it (``current.SELF_DATED``), and
    as of a moment before its report a finding has not taken effect."""
    reports = {e.data["report_id"]: e for e in evs if e.type == "reported"}
    found = []
    for e in evs:
        if e.type == "finding" and e.data["substantiated"] and (report := reports.get(e.data["report_id"])):
            found.append((e, report, max(e.occurred_at, report.occurred_at)))
    return found


def _removal(e: Ev | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {
        "outcome": "removal",
        "reason": "removed from the enforcement post (调离执法岗位)",
        "actor": None,
        "decided_at": iso(e.occurred_at),
        "recorded_at": iso(e.recorded_at),
        "evidence": [e.position],
    }
