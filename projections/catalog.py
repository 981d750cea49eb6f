"""The projections (投影) and the facts each one stores.

Every projection keeps facts, never totals: one row per record created (``proj_<name>_records``)
and one per later event it cares about (``proj_<name>_events``), each with the event's business
time (``occurred_at``), recording time (``recorded_at``) and log position. Scores, triggers,
deductions and the board are sums and folds over these facts at query time, so any ``as_of`` /
``known_at`` answer is a filter, and each projection needs no other projection while it applies.
Times are stored as integer microseconds since the Unix epoch (UTC), which index and compare exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from eventsourcing.utils import get_topic

from domain.agreements import AccountabilityDecision, TargetAgreement
from domain.base import BUREAU_TZ
from domain.cases import EnforcementCase
from domain.people import Person
from domain.petitions import Petition
from domain.policy import Policy
from domain.units import Unit

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The moments a question may name (as_of, known_at, a report's period). Python's times end at the years 1 and
#: 9999, and 9999-12-31T23:59:59-14:00 lies past them once in UTC; a question also reaches a day or a year on.
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


def check_moment(value: datetime, name: str) -> datetime:
    """``value``, if a question may name it: with a UTC offset, between :data:`EARLIEST` and :data:`LATEST`; else
    ``ValueError`` naming ``name`` (the client's error)."""
    if value.utcoffset() is None:
        raise ValueError(f"{name} needs a UTC offset")
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{name} must lie between {EARLIEST.year} and {LATEST.year}, not {value.isoformat()}")
    return value


def asked_moment(value: datetime, name: str) -> datetime:
    """A moment a client asks a question about (``as_of``, ``known_at``), checked as :func:`check_moment`; one in
    the future is answered as of now: what will be recorded by then is not known yet, and deadlines passing with
    nothing recorded would be counted (a month of 2099 as a missed reception). So a question about the end of the
    current year is what is known so far, its outcome pending."""
    check_moment(value, name)
    return min(value, datetime.now(UTC))


#: The index of diversions by destination unit (``engine.ensure_schema`` creates it).
DIVERTED_INDEX = "proj_petitions_events_diverted"
#: Reports as issued (已发布的报告, ``projections.reports.issued``), kept once final; emptied whenever any
#: projection is dropped, since they were built from its tables.
ISSUED = "proj_reports_kept"
#: The last fold of each report whose period is in progress (进行中的报告, ``projections.reports.running``), with the
#: log position and the moment it stands until; emptied with the issued reports.
RUNNING = "proj_reports_in_progress"
#: The last fold of each report over as of its end, as known at a moment after its issue date (an auditor's "as
#: known now", ``projections.reports.as_known_at``), with that moment and the log position; emptied with the others.
KNOWN = "proj_reports_known_later"
#: Where reports were kept before they kept their tallies apart (counts by unit, for a territory's totals; for two
#: commits inside the reports' JSON): dropped by ``engine.ensure_schema``, so every report is issued again.
FORMER_REPORTS = ("proj_reports_issued", "proj_reports_running", "proj_issued_reports", "proj_running_reports")
#: The issuing lease (签发权, ``projections.lease``): which issuer folds reports now, and until when.
ISSUER = "proj_reports_issuer"
#: The fold leases (``projections.lease.folding``): which process folds which report now, having read the facts
#: applied by which log position, and until when; so asks in other processes wait for that fold, not fold again.
FOLDS = "proj_reports_folds"


def micros(moment: datetime) -> int:
    """Exact integer microseconds since the epoch (floats would round)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


#: The epoch in the bureau's zone: its offset is fixed, so adding a timedelta lands on the same wall time and
#: offset as ``fromtimestamp`` would, at a third of the cost (answers convert thousands of times each).
_LOCAL_EPOCH = EPOCH.astimezone(BUREAU_TZ)


def from_micros(value: int) -> datetime:
    """The stored instant back as a time in the bureau's zone (RFC 3339 with +08:00)."""
    return _LOCAL_EPOCH + timedelta(microseconds=value)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return micros(value)
    raise TypeError(f"cannot store {type(value).__name__}")


def dumps(data: dict[str, Any]) -> str:
    """Compact JSON, times as integer microseconds (orjson: a third of the stdlib's cost on a rebuild)."""
    return orjson.dumps(data, default=_plain, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()


@dataclass(frozen=True)
class Fact:
    """How one event class becomes a fact row: a record (created) or an event of a record."""

    kind: str  # "record" or "event"
    type: str
    data: Callable[[Any], dict[str, Any]]
    unit: Callable[[Any], str | None] = lambda e: None
    key: Callable[[Any], str] = lambda e: e.originator_id.hex


@dataclass(frozen=True)
class Projection:
    """A named projection: the event classes it stores and its two fact tables."""

    name: str
    facts: dict[type, Fact]

    @property
    def records_table(self) -> str:
        return f"proj_{self.name}_records"

    @property
    def events_table(self) -> str:
        return f"proj_{self.name}_events"

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(get_topic(cls) for cls in self.facts)

    def tables(self, big: str) -> list[str]:
        r, e = self.records_table, self.events_table
        return [
            f"CREATE TABLE IF NOT EXISTS {r} (uuid TEXT PRIMARY KEY, record_id TEXT NOT NULL, type TEXT NOT NULL,"
            f" unit_id TEXT, occurred_at {big} NOT NULL, recorded_at {big} NOT NULL, position {big} NOT NULL,"
            " data TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {e} (position {big} PRIMARY KEY, uuid TEXT NOT NULL, type TEXT NOT NULL,"
            f" occurred_at {big} NOT NULL, recorded_at {big} NOT NULL, data TEXT NOT NULL)",
        ]

    def indexes(self) -> list[str]:
        """The secondary indexes of both tables (``engine.ensure_indexes`` adds a few more per projection)."""
        r, e = self.records_table, self.events_table
        return [
            f"CREATE INDEX IF NOT EXISTS {r}_unit ON {r} (unit_id)",
            f"CREATE INDEX IF NOT EXISTS {r}_occurred ON {r} (occurred_at)",
            f"CREATE INDEX IF NOT EXISTS {r}_record ON {r} (record_id)",
            # The current view finds the records a batch created by position (current.touched).
            f"CREATE INDEX IF NOT EXISTS {r}_position ON {r} (position)",
            f"CREATE INDEX IF NOT EXISTS {e}_uuid ON {e} (uuid)",
            f"CREATE INDEX IF NOT EXISTS {e}_type ON {e} (type, occurred_at)",
        ]

    def rows(self, position: int, event: Any) -> tuple[str, tuple[Any, ...]] | None:
        """The fact row for one event (``None`` if this projection ignores it)."""
        fact = self.facts.get(type(event))
        if fact is None:
            return None
        occurred, recorded = micros(event.occurred_at), micros(event.timestamp)
        data = dumps(fact.data(event))
        if fact.kind == "record":
            row = (fact.key(event), event.record_id, fact.type, fact.unit(event), occurred, recorded, position, data)
            return "records", row
        return "events", (position, fact.key(event), fact.type, occurred, recorded, data)


def _none(e: Any) -> dict[str, Any]:
    return {}


def _record(type_: str, data: Callable[[Any], dict[str, Any]], unit: Callable[[Any], str | None]) -> Fact:
    return Fact("record", type_, data, unit)


def _event(type_: str, data: Callable[[Any], dict[str, Any]] = _none) -> Fact:
    return Fact("event", type_, data)


UNITS = Projection(
    "units",
    {
        Unit.Registered: _record(
            "unit",
            lambda e: {"name": e.name, "kind": e.kind, "parent_id": e.parent_id, "jurisdiction_id": e.jurisdiction_id},
            lambda e: e.record_id,
        ),
        Unit.QuotaAllocated: _event("allocated", lambda e: {"year": e.year, "mu": e.mu}),
        Unit.LandApproved: _event("approved", lambda e: {"year": e.year, "mu": e.mu, "project": e.project}),
    },
)

POLICY = Projection(
    "policy",
    {
        Policy.Established: _record(
            "policy", lambda e: {"effective_from": e.effective_from, "params": e.params}, lambda e: None
        ),
        Policy.Amended: _event(
            "amended",
            lambda e: {"version": e.originator_version, "effective_from": e.effective_from, "params": e.params},
        ),
    },
)

CASES = Projection(
    "cases",
    {
        EnforcementCase.ClueReported: _record(
            "case",
            lambda e: {
                "violation": e.violation,
                "source": e.source,
                "area_mu": e.area_mu,
                "value_yuan": e.value_yuan,
                "petition_id": e.petition_id,
            },
            lambda e: e.unit_id,
        ),
        EnforcementCase.Filed: _event("filed", lambda e: {"handler_ids": e.handler_ids}),
        EnforcementCase.DeclaredMajor: _event("declared_major", lambda e: {"reason": e.reason}),
        EnforcementCase.Supervised: _event(
            "supervised", lambda e: {"by_unit_id": e.by_unit_id, "deadline": e.deadline}
        ),
        EnforcementCase.Closed: _event("closed", lambda e: {"outcome": e.outcome}),
        EnforcementCase.FoundWrongful: _event("wrongful", lambda e: {"handler_ids": e.handler_ids, "reason": e.reason}),
    },
)

PETITIONS = Projection(
    "petitions",
    {
        Petition.Registered: _record(
            "petition",
            lambda e: {
                "channel": e.channel,
                "petitioner_count": e.petitioner_count,
                "skip_level": e.skip_level,
                "repeat_of": e.repeat_of,
                "assigned_from": e.assigned_from,
                "initial": e.initial,
                "category": e.category,
            },
            lambda e: e.unit_id,
        ),
        Petition.OwnershipTaken: _event("owned", lambda e: {"leader_id": e.leader_id}),
        Petition.Extended: _event("extended", lambda e: {"days": e.days}),
        Petition.Replied: _event("replied"),
        Petition.ReturnVisited: _event("return_visit", lambda e: {"satisfied": e.satisfied}),
        Petition.Escalated: _event("escalated", lambda e: {"level": e.level, "collective": e.collective}),
        Petition.DesignatedNailCase: _event("nail_case", lambda e: {"resolver_id": e.resolver_id}),
        Petition.NailCheckRecorded: _event("nail_check", lambda e: {"check": e.check}),
        Petition.Ceased: _event("ceased"),
        Petition.Diverted: _event("diverted", lambda e: {"from_unit_id": e.from_unit_id, "to_unit_id": e.to_unit_id}),
        Petition.Closed: _event("closed"),
    },
)

PEOPLE = Projection(
    "people",
    {
        Person.Registered: _record("person", lambda e: {"name": e.name, "post": e.post}, lambda e: e.unit_id),
        Person.MisconductReported: _event("reported", lambda e: {"report_id": e.report_id, "kind": e.kind}),
        Person.FindingRecorded: _event(
            "finding", lambda e: {"report_id": e.report_id, "substantiated": e.substantiated}
        ),
        Person.RemovedFromPost: _event("removed", lambda e: {"report_ids": e.report_ids}),
        Person.ReferredToJudiciary: _event("referred", lambda e: {"report_ids": e.report_ids}),
        Person.Commended: _event("commended", lambda e: {"title": e.title}),
        Person.ReceptionHeld: _event("reception", lambda e: {"place": e.place}),
    },
)

ACCOUNTABILITY = Projection(
    "accountability",
    {
        TargetAgreement.Signed: _record(
            "agreement",
            lambda e: {"year": e.year, "issuer_unit_id": e.issuer_unit_id},
            lambda e: e.responsible_unit_id,
        ),
        # A decision is filed under the trigger it decides (its record id is the trigger id).
        AccountabilityDecision.Decided: Fact(
            "record",
            "decision",
            lambda e: {"rule": e.rule, "outcome": e.outcome, "reason": e.reason, "actor": e.actor},
            lambda e: None,
        ),
    },
)

PROJECTIONS: dict[str, Projection] = {p.name: p for p in (UNITS, POLICY, CASES, PETITIONS, PEOPLE, ACCOUNTABILITY)}


#: The view derived from the fact projections' tables (``projections.current``), not from the log.
CURRENT = "current"
#: Every projection name, in the order ``status`` lists them.
NAMES = (*PROJECTIONS, CURRENT)


def select(names: list[str] | tuple[str, ...] | None) -> list[Projection]:
    """The named fact projections (all if none named); an unknown name is an error that says which exist."""
    if not names:
        return list(PROJECTIONS.values())
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown projection {unknown[0]!r} (one of {', '.join(NAMES)})")
    return [PROJECTIONS[n] for n in names if n in PROJECTIONS]


def with_current(names: list[str] | tuple[str, ...] | None) -> bool:
    """Whether the current view is among the named projections (it is when none are named)."""
    return not names or CURRENT in names
