"""What every record shares: ids, the stamp on every event, and the append-only discipline.

Every event carries who recorded it (``actor``), when it happened (``occurred_at``, the business
time 业务时间) and when the ledger recorded it (the library's ``timestamp``, the recording time 登记时间).
Nothing is ever updated or deleted: a correction is a new event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Self
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import InvalidValue, RuleViolation

#: The bureau keeps Beijing time (no daylight saving): years, months and days are counted in it.
BUREAU_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
#: How far a business time may lie ahead of the recording clock (clocks drift; the future can't be recorded).
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: The earliest business time the ledger accepts: the first policy version is in force from then.
LEDGER_EPOCH = datetime(2000, 1, 1, tzinfo=BUREAU_TZ)

_NAMESPACE = UUID("5b0a8f4e-3c1d-4f7e-9a51-6c2d8e1f0b37")
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_TEXT = 4000


def record_uuid(kind: str, record_id: str) -> UUID:
    """The store's key for a record: derived from its kind and public id, so an id is enough to find it."""
    return uuid5(_NAMESPACE, f"{kind}:{record_id}")


def check_id(value: str, field: str = "id") -> str:
    """A public id is a short slug (letters, digits, ``_ . -``), so it is safe in paths and logs."""
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        raise InvalidValue(f"{field} must be 1-64 letters, digits, '_', '.' or '-', not {value!r}", field)
    return value


def check_text(value: str, field: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    """Free text must be printable and bounded; control characters would corrupt reports and logs."""
    if not isinstance(value, str):
        raise InvalidValue(f"{field} must be text", field)
    if required and not value.strip():
        raise InvalidValue(f"{field} must not be empty", field)
    if len(value) > limit:
        raise InvalidValue(f"{field} is longer than {limit} characters", field)
    if any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 for c in value):
        raise InvalidValue(f"{field} contains control characters", field)
    return value


def local_year(moment: datetime) -> int:
    """The bureau's calendar year of a moment (考核年度)."""
    return moment.astimezone(BUREAU_TZ).year


@dataclass(frozen=True)
class Stamp:
    """Who recorded an event, when it happened and when it was recorded (and an optional note)."""

    actor: str
    occurred_at: datetime
    recorded_at: datetime
    note: str = ""

    def __post_init__(self) -> None:
        check_text(self.actor, "actor", limit=128)
        check_text(self.note, "note", required=False)
        for name in ("occurred_at", "recorded_at"):
            moment = getattr(self, name)
            if not isinstance(moment, datetime) or moment.utcoffset() is None:
                raise InvalidValue(f"{name} must be a time with a UTC offset", name)
        if self.occurred_at > self.recorded_at + MAX_CLOCK_SKEW:
            raise InvalidValue(
                f"occurred_at {self.occurred_at.isoformat()} is in the future "
                f"(the ledger's clock says {self.recorded_at.isoformat()})",
                "occurred_at",
            )
        if self.occurred_at < LEDGER_EPOCH:
            raise InvalidValue(f"occurred_at is before {LEDGER_EPOCH.date()}, when the ledger begins", "occurred_at")


class Record(Aggregate):
    """Base of every record: a public id, when it was opened, whether it is closed."""

    KIND: ClassVar[str] = "record"

    if TYPE_CHECKING:  # state set by the events' apply(); annotations only for type checkers
        record_id: str
        opened_at: datetime
        closed: bool
        #: When each step that later steps rest on first happened (业务时间), by step name (:meth:`_not_before`).
        done_at: dict[str, datetime]

    class Event(Aggregate.Event):
        actor: str
        occurred_at: datetime
        note: str

    class Created(Event, Aggregate.Created):
        record_id: str

        def apply(self, record: Any) -> None:
            record.record_id = self.record_id
            record.opened_at = self.occurred_at
            record.closed = False
            record.done_at = {}

    class Step(Event):
        """An event later steps rest on: when it first happened is kept in the record's ``done_at`` under
        :meth:`step` (its class's name, or a name of its own, e.g. one per meeting)."""

        def mutate(self, aggregate: Any) -> Any:
            record = super().mutate(aggregate)
            assert record is not None
            record.done_at.setdefault(self.step(), self.occurred_at)
            return record

        def step(self) -> str:
            return type(self).__name__

    class PersonalDataErased(Event):
        """The record's personal data was made permanently unreadable (个人信息删除), as the law required."""

        reason: str

    def erase_personal_data(self, reason: str, stamp: Stamp) -> None:
        """Erasure is allowed on any record, closed or not: the law, not the workflow, demands it."""
        self._record(self.PersonalDataErased, stamp, reason=check_text(reason, "reason", limit=500))

    @classmethod
    def _open(cls, event_class: type[Record.Created], record_id: str, stamp: Stamp, **fields: Any) -> Self:
        check_id(record_id)
        return cls._create(
            event_class,
            id=record_uuid(cls.KIND, record_id),
            record_id=record_id,
            timestamp=stamp.recorded_at,
            actor=stamp.actor,
            occurred_at=stamp.occurred_at,
            note=stamp.note,
            **fields,
        )

    def _record(self, event_class: type[Record.Event], stamp: Stamp, **fields: Any) -> None:
        if stamp.occurred_at < self.opened_at:
            raise RuleViolation(
                f"this {self.KIND} was opened at {self.opened_at.isoformat()}; "
                f"nothing can happen to it before then ({stamp.occurred_at.isoformat()})",
                rule="chronology",
            )
        self.trigger_event(
            event_class,
            timestamp=stamp.recorded_at,
            actor=stamp.actor,
            occurred_at=stamp.occurred_at,
            note=stamp.note,
            **fields,
        )

    def _not_before(self, stamp: Stamp, *steps: str) -> None:
        """A step that rests on earlier ones (a closure on its reply, a removal on its finding) is dated at or after
        them: an entry may come late (补录), never before what it follows in business time."""
        for step in steps:
            at = self.done_at.get(step)
            if at is not None and stamp.occurred_at < at:
                raise RuleViolation(
                    f"{self.KIND} {self.record_id}: {step} happened at {at.isoformat()}; "
                    f"what follows it cannot be dated before it ({stamp.occurred_at.isoformat()})",
                    rule="chronology",
                )

    def check_began_by(self, stamp: Stamp, role: str) -> None:
        """This record, acting in another's step as ``role`` (a petition's owner, a nail case's resolver), had begun by
        then: no one owns a petition before taking post."""
        if stamp.occurred_at < self.opened_at:
            raise RuleViolation(
                f"{self.record_id} was registered at {self.opened_at.isoformat()}; "
                f"cannot be the {role} before then ({stamp.occurred_at.isoformat()})",
                rule="chronology",
            )

    def _check_open(self, action: str) -> None:
        if self.closed:
            raise RuleViolation(f"{self.KIND} {self.record_id} is closed; cannot {action}", rule="closed-record")


def unit_of(record: Record) -> str | None:
    """The unit a record belongs to (属地): a unit itself, else its responsible unit; None for a record of no one
    unit (the policy, a token's grant, a decision on a trigger)."""
    if record.KIND == "unit":
        return record.record_id
    for name in ("unit_id", "responsible_unit_id"):
        if hasattr(record, name):
            value: str | None = getattr(record, name)
            return value
    return None
