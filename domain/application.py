"""The ledger application (台账应用): one method per use case, each loading, acting and saving.

Commands return a :class:`Receipt` (id, version, global log position). An ``expected_version``
refuses a stale write (optimistic concurrency); without one, a write that loses a race with
another writer is retried on the fresh record. An ``idempotency_key`` is stored in the same
transaction as the events, so a retried command returns the first answer and records nothing new.
"""

from __future__ import annotations

import contextlib
import copy
import secrets
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEvent, DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Mapper, Transcoder

from domain.access import MAX_GRANT_CHAIN, AccessGrant, AccessLog
from domain.agreements import AccountabilityDecision, TargetAgreement, agreement_id, check_parties
from domain.base import LEDGER_EPOCH, Record, Stamp, check_id, record_uuid
from domain.cases import EnforcementCase
from domain.errors import InvalidValue, RecordExists, RecordNotFound, RuleViolation, StaleVersion
from domain.people import Person
from domain.personal import PERSONAL_KEYS, PersonalDataMapper, PersonalDataVault, PersonalKeyExists, subject_of
from domain.petitions import Petition
from domain.policy import Amendment, Policy, PolicyVersion
from domain.units import Unit, is_above
from domain.vocabulary import (
    Agency,
    AssignedFrom,
    Channel,
    ClueSource,
    Commendation,
    DecisionOutcome,
    EscalationLevel,
    Meeting,
    MisconductKind,
    NailCheck,
    PetitionCategory,
    Post,
    Role,
    UnitKind,
    Violation,
)

R = TypeVar("R", bound=Record)
Clock = Callable[[], datetime]

#: Record kinds by the names API.md uses in paths and queries.
KINDS: dict[str, type[Record]] = {
    cls.KIND: cls
    for cls in (Unit, Person, EnforcementCase, Petition, TargetAgreement, Policy, AccountabilityDecision, AccessGrant)
}
CONCURRENT_RETRIES = 20
#: Kinds whose current state a ledger keeps between commands for its own reference reads (the unit a
#: command names, the policy in force). They hold no personal data, so no plaintext outlives an
#: erasure in memory. A read asks the store for events after the kept version (one indexed query),
#: so what another process wrote is seen as before; inside ``_create`` the kept policy is used as is
#: and the recorder checks at commit, under its write lock, that it is still the newest
#: (``REFERENCE_VERSIONS``), else the command is done again.
REFERENCE_KINDS: tuple[type[Record], ...] = (Unit, Policy)
REFERENCE_CACHE_SIZE = 10_000  # records of REFERENCE_KINDS kept (a city has a few thousand units)
KNOWN_CACHE_SIZE = 200_000  # ids of records known to exist (records are never deleted)
#: Save keyword: {record id: version} of the reference records a command read from memory without
#: asking the store. A recorder that ``checks_reference_versions`` compares them, under its write
#: lock, with the newest stored versions and refuses the save (:class:`StaleReference`) if any moved.
REFERENCE_VERSIONS = "reference_versions"


class StaleReference(IntegrityError):
    """A record a command read (the policy in force, say) changed before the command's events were
    committed; nothing was saved. The command is done again on the fresh record."""

    def __init__(self, aggregate_ids: list[UUID]) -> None:
        super().__init__(f"changed since read: {', '.join(str(i) for i in aggregate_ids)}")
        self.aggregate_ids = aggregate_ids


def utc_now() -> datetime:
    return datetime.now(UTC)


class IdempotencyKey(str):
    """An idempotency key (幂等键) that knows the fingerprint of the request it was given for (``request``): kept with
    the first answer, so a repeat under the key with another request is refused rather than answered with the
    first one's receipt. A plain ``str`` key is checked by the key alone."""

    request: str | None

    def __new__(cls, key: str, request: str | None = None) -> IdempotencyKey:
        made = super().__new__(cls, key)
        made.request = request
        return made


@dataclass(frozen=True)
class Receipt:
    """What a command answers: the record, its new version and the event's place in the global log."""

    id: str
    version: int
    position: int
    created: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Actor:
    """Who records: an id (from the bearer token, never from a body) and the optional note."""

    id: str


class Ledger(Application[UUID]):
    """The accountability ledger: the write side of every record."""

    name = "Ledger"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        vault: PersonalDataVault,
        transcoder: Transcoder | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.vault = vault
        self._transcoder = transcoder
        self.clock = clock
        self._known: set[UUID] = set()
        self._refs: dict[UUID, Record] = {}
        self._refs_lock = threading.Lock()
        self._reading = threading.local()  # .seen: the reference versions the running command read
        self._lineages: dict[str, tuple[str, ...]] = {}  # unit id -> its ancestors' ids (see lineage)
        self._grantors: dict[str, tuple[str, ...]] = {}  # grant id -> its grantors' subjects (see grantors)
        super().__init__(env)
        self._checks_references = bool(getattr(self.recorder, "checks_reference_versions", False))

    # --- infrastructure hooks -------------------------------------------------------------

    def construct_transcoder(self) -> Transcoder:
        if self._transcoder is None:
            return super().construct_transcoder()
        self.register_transcodings(self._transcoder)  # type: ignore[arg-type]
        return self._transcoder

    def construct_mapper(self) -> Mapper[UUID]:
        return PersonalDataMapper(
            self.vault,
            transcoder=self.construct_transcoder(),
            cipher=self.factory.cipher(),
            compressor=self.factory.compressor(),
        )

    def save(self, *objs: Any, **kwargs: Any) -> list[Any]:
        """Save, storing any new personal-data keys in the same transaction as their first events.

        One commit per command, and no key without its events (nor events without their key).
        The body is the library's ``Application.save`` with events collected by class: its
        ``ProcessingEvent.collect_events`` asks ``isinstance`` of runtime-checkable protocols, ~20 µs
        for each object saved (a third of a bulk save's Python time).
        """
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        events = processing_event.events
        for obj in objs:
            if obj is None:
                continue
            if isinstance(obj, Aggregate):
                events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            elif isinstance(obj, DomainEvent):
                events.append(obj)
            else:  # anything else takes the library's own path
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        subjects = sorted({subject_of(e.originator_id) for e in events if getattr(type(e), "personal_fields", ())})
        if not subjects:
            recordings = self._record(processing_event)
        else:
            created = {subject_of(e.originator_id) for e in events if e.originator_version == 1}
            try:
                recordings = self._record_with_keys(processing_event, subjects, created)
            except PersonalKeyExists:
                # A key stored without its record's events (by an older version): look every
                # subject up and seal with the stored keys. The events are the same objects.
                recordings = self._record_with_keys(processing_event, subjects, ())
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # the library's deprecated hook, as Application.save calls it
        for aggregate_id in processing_event.aggregates:
            self._remember(aggregate_id)
        if self._refs:
            self._drop_refs({e.originator_id for e in events})  # our own write moved them on
        return recordings

    def _record_with_keys(
        self, processing_event: ProcessingEvent[UUID], subjects: list[str], created: Collection[str]
    ) -> list[Any]:
        new_keys = self.vault.prepare(subjects, created)
        processing_event.saved_kwargs.pop(PERSONAL_KEYS, None)
        if new_keys:
            processing_event.saved_kwargs[PERSONAL_KEYS] = new_keys
        try:
            return self._record(processing_event)
        except Exception:
            self.vault.forget([subject for subject, _ in new_keys])
            raise

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Any]:
        try:
            return super()._record(processing_event)
        except StaleReference as e:
            self._drop_refs(e.aggregate_ids)
            raise

    # --- plumbing ---------------------------------------------------------------------------

    def stamp(self, actor: str, occurred_at: datetime | None = None, note: str = "") -> Stamp:
        now = self.clock()
        return Stamp(actor=actor, occurred_at=occurred_at or now, recorded_at=now, note=note)

    def get(self, cls: type[R], record_id: str, version: int | None = None) -> R:
        """A record's current state, or at ``version`` (a fresh object the caller may change)."""
        check_id(record_id)
        if version is not None and version < 1:
            raise InvalidValue("version must be at least 1", "version")
        aggregate_id = record_uuid(cls.KIND, record_id)
        try:
            record: Record = self.repository.get(aggregate_id, version=version, projector_func=_project)
        except AggregateNotFoundError:
            raise RecordNotFound(cls.KIND, record_id) from None
        if not isinstance(record, cls):
            raise RecordNotFound(cls.KIND, record_id)
        if version is not None and record.version < version:
            raise RecordNotFound(cls.KIND, f"{record_id}@{version}")
        self._remember(aggregate_id)
        return record

    def exists(self, cls: type[Record], record_id: str) -> bool:
        try:
            self._require(cls, record_id)
        except RecordNotFound:
            return False
        return True

    def _require(self, cls: type[Record], record_id: str) -> None:
        """Raise RecordNotFound unless the record exists.

        Records are never deleted (append-only), so one seen once exists for good and is not read
        again; otherwise its first event is enough (ids are derived from the kind, so it is a ``cls``).
        """
        check_id(record_id)
        aggregate_id = record_uuid(cls.KIND, record_id)
        if aggregate_id in self._known:
            return
        if not self.recorder.select_events(aggregate_id, limit=1):
            raise RecordNotFound(cls.KIND, record_id)
        self._remember(aggregate_id)

    def _ref(self, cls: type[R], record_id: str) -> R:
        """The current state of a record of ``REFERENCE_KINDS``, for reading only (shared, never change it).

        Kept between calls and brought up to date with the events stored after it (one query);
        a newer state is built on a copy, so a reader holding the older one never sees it change.
        """
        if cls not in REFERENCE_KINDS:
            raise TypeError(f"{cls.__name__} is not one of the reference kinds")
        check_id(record_id)
        aggregate_id = record_uuid(cls.KIND, record_id)
        kept = self._refs.get(aggregate_id)
        seen: dict[UUID, int] | None = getattr(self._reading, "seen", None)
        if seen is not None and kept is not None:
            # Inside a command whose save the recorder checks: no read now, the commit verifies.
            seen[aggregate_id] = kept.version
            return kept  # type: ignore[return-value]
        if kept is None:
            record = self.get(cls, record_id)
        else:
            newer = list(self.events.get(aggregate_id, gt=kept.version))
            if not newer:
                return kept  # type: ignore[return-value]
            updated = _project(copy.deepcopy(kept), newer)
            assert isinstance(updated, cls)
            record = updated
        with self._refs_lock:
            current = self._refs.get(aggregate_id)
            if current is None or current.version < record.version:
                if len(self._refs) >= REFERENCE_CACHE_SIZE:
                    self._refs.pop(next(iter(self._refs)))
                self._refs[aggregate_id] = record
        if seen is not None:
            seen[aggregate_id] = record.version
        return record

    def _drop_refs(self, aggregate_ids: Iterable[UUID]) -> None:
        with self._refs_lock:
            for aggregate_id in aggregate_ids:
                self._refs.pop(aggregate_id, None)

    @contextlib.contextmanager
    def _reading_references(self, check: bool) -> Iterator[dict[UUID, int]]:
        """Collect the versions of the reference records read meanwhile, to be checked at commit."""
        seen: dict[UUID, int] = {}
        self._reading.seen = seen if check and self._checks_references else None
        try:
            yield seen
        finally:
            self._reading.seen = None

    def _remember(self, aggregate_id: UUID) -> None:
        if len(self._known) >= KNOWN_CACHE_SIZE:
            self._known.clear()
        self._known.add(aggregate_id)

    def events_of(self, kind: str, record_id: str) -> list[DomainEventProtocol[UUID]]:
        """Every event of a record, in order."""
        cls = record_class(kind)
        check_id(record_id)
        events = list(self.events.get(record_uuid(cls.KIND, record_id)))
        if not events:
            raise RecordNotFound(kind, record_id)
        return events

    def as_of(self, cls: type[R], record_id: str, as_of: datetime | None = None, known_at: datetime | None = None) -> R:
        """The record as it stood at business time ``as_of`` (业务时间) as known at recording time ``known_at``
        (登记时间); either left out is now (a business time runs at most a clock skew ahead of its recording).

        Every event that happened by ``as_of`` and was recorded by ``known_at`` applies, in recorded order; the
        others are left out wherever they stand. A late entry (补录) dated before ``as_of`` counts once recorded,
        as the projections count it (a case declared major on 10 March but entered on 1 April is major as of the
        15th as known now, not as known on the 20th); an entry dated after ``as_of`` never does. ``version`` is the
        last event applied. A record whose registration is left out was not yet registered (or not yet known):
        RecordNotFound.
        """
        self._require(cls, record_id)
        events = self.events_of(cls.KIND, record_id)
        kept = [
            e
            for e in events
            if (as_of is None or getattr(e, "occurred_at", as_of) <= as_of)
            and (known_at is None or e.timestamp <= known_at)  # type: ignore[attr-defined]
        ]
        if not kept or kept[0].originator_version != 1:
            asked = ((" as of", as_of), (" as known at", known_at))
            raise RecordNotFound(cls.KIND, record_id + "".join(f"{w} {t.isoformat()}" for w, t in asked if t))
        if kept == events[: len(kept)]:  # a prefix: the state at that version, as the repository answers it
            return self.get(cls, record_id, version=kept[-1].originator_version)
        record: R | None = None
        for event in kept:  # some left out between: each applied on what came before it
            if record is not None:
                record.version = event.originator_version - 1
            record = event.mutate(record)  # type: ignore[attr-defined]
        assert record is not None
        return record

    def _save(
        self, records: list[Record], idempotency_key: str | None, references: dict[UUID, int] | None = None
    ) -> list[int]:
        kwargs: dict[str, Any] = {"idempotency_key": idempotency_key} if idempotency_key else {}
        if references:
            kwargs[REFERENCE_VERSIONS] = references
        recordings = self.save(*records, **kwargs)
        return [r.notification.id for r in recordings]

    def _replayed(self, idempotency_key: str | None) -> Receipt | None:
        """The first answer to a command already done under this key, if any; a key given with another request
        than the one it was first given with (:class:`IdempotencyKey`) is refused: answering the first request's
        receipt would tell the client its second command was recorded."""
        if not idempotency_key:
            return None
        answer = self.recorder.idempotent_answer(idempotency_key)  # type: ignore[attr-defined]
        if not answer or not answer[0]:
            return None
        positions, request = answer
        asked = getattr(idempotency_key, "request", None)
        if request is not None and asked is not None and request != asked:
            raise InvalidValue(
                "this idempotency key was used for another request; a repeat must be the same request, and a new"
                " command needs a new key",
                "idempotency_key",
            )
        last = positions[-1]
        notification = self.recorder.select_notifications(start=last, limit=1)[0]
        event = self.mapper.to_domain_event(notification)
        record: Record = self.repository.get(event.originator_id, version=event.originator_version)
        return Receipt(record.record_id, event.originator_version, last, created=event.originator_version == 1)

    def _create(self, make: Callable[[], R], idempotency_key: str | None) -> Receipt:
        replay = self._replayed(idempotency_key)
        if replay:
            return replay
        for check in (True, False):
            # First with the reference records (policy) as kept in memory, checked at commit; if
            # one moved meanwhile, once more reading them from the store, as every command once did.
            with self._reading_references(check) as references:
                record = make()
            try:  # a record that exists already fails here, at its first version
                positions = self._save([record], idempotency_key, references)
            except StaleReference:
                continue
            except IntegrityError:
                replay = self._replayed(idempotency_key)
                if replay:
                    return replay
                raise RecordExists(record.KIND, record.record_id) from None
            return Receipt(record.record_id, record.version, positions[-1], created=True)
        raise AssertionError("unreachable: the second attempt checks no references")  # pragma: no cover

    def _change(
        self,
        cls: type[R],
        record_id: str,
        act: Callable[[R], Any],
        expected_version: int | None,
        idempotency_key: str | None,
    ) -> Receipt:
        replay = self._replayed(idempotency_key)
        if replay:
            return replay
        for _ in range(CONCURRENT_RETRIES):
            record = self.get(cls, record_id)
            if expected_version is not None and record.version != expected_version:
                raise StaleVersion(cls.KIND, record_id, expected_version, record.version)
            result = act(record)
            try:
                positions = self._save([record], idempotency_key)
            except IntegrityError:
                replay = self._replayed(idempotency_key)
                if replay:
                    return replay
                if expected_version is not None:
                    current = self.get(cls, record_id).version
                    raise StaleVersion(cls.KIND, record_id, expected_version, current) from None
                continue  # another writer got there first: act again on the fresh record
            extra = result if isinstance(result, dict) else {}
            return Receipt(record.record_id, record.version, positions[-1], extra=extra)
        raise StaleVersion(cls.KIND, record_id, -1, self.get(cls, record_id).version)

    # --- policy -----------------------------------------------------------------------------

    def ensure_policy(self) -> None:
        """Establish policy version 1 (the documented defaults) if the store has none yet."""
        if not self.exists(Policy, Policy.ID):
            stamp = Stamp(actor="ledger", occurred_at=LEDGER_EPOCH, recorded_at=self.clock())
            with contextlib.suppress(IntegrityError):  # another process established it at the same moment
                self._save([Policy.establish(stamp)], None)

    def policy(self) -> Policy:
        """The policy as now known (shared with later calls: read it, never change it)."""
        try:
            return self._ref(Policy, Policy.ID)
        except RecordNotFound:
            self.ensure_policy()
            return self._ref(Policy, Policy.ID)

    def policy_in_force(self, at: datetime, known_at: datetime | None = None) -> PolicyVersion:
        return self.policy().in_force(at, known_at)

    def policy_versions(self) -> list[Amendment]:
        return self.policy().versions()

    def amend_policy(
        self,
        effective_from: datetime,
        params: dict[str, Any],
        *,
        actor: str,
        occurred_at: datetime | None = None,
        note: str = "",
        expected_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> Receipt:
        self.ensure_policy()
        stamp = self.stamp(actor, occurred_at, note)
        return self._change(
            Policy, Policy.ID, lambda p: p.amend(effective_from, params, stamp), expected_version, idempotency_key
        )

    # --- units ------------------------------------------------------------------------------

    def register_unit(
        self,
        unit_id: str,
        name: str,
        kind: UnitKind,
        parent_id: str | None,
        *,
        jurisdiction_id: str | None = None,
        actor: str,
        occurred_at: datetime | None = None,
        note: str = "",
        idempotency_key: str | None = None,
    ) -> Receipt:
        """A unit under ``parent_id``; a branch bureau under the city bureau, or a land station under a branch
        bureau, may name the district or township it covers (``jurisdiction_id``, 辖区: R4 and the district's
        figures then reach its cases)."""
        stamp = self.stamp(actor, occurred_at, note)
        parent = self.ancestors(parent_id) if parent_id else []
        jurisdiction = self.ancestors(jurisdiction_id) if jurisdiction_id else []
        return self._create(lambda: Unit.register(unit_id, name, kind, parent, stamp, jurisdiction), idempotency_key)

    def allocate_quota(self, unit_id: str, year: int, mu: Decimal, **cmd: Any) -> Receipt:
        return self._command(Unit, unit_id, lambda u, s: u.allocate_quota(year, mu, s), **cmd)

    def approve_land(self, unit_id: str, mu: Decimal, project: str, **cmd: Any) -> Receipt:
        return self._command(Unit, unit_id, lambda u, s: u.approve_land(mu, project, s), **cmd)

    def ancestors(self, unit_id: str) -> list[Unit]:
        """The unit and every unit above it, nearest first (属地管理): up the government whose area a bureau office
        covers (辖区), then up its parent office."""
        chain: list[Unit] = []
        seen: set[str] = set()

        def climb(current: str) -> None:
            if current in seen or len(chain) >= 32:
                return
            unit = self._ref(Unit, current)
            seen.add(current)
            chain.append(unit)
            for above in unit.above:
                climb(above)

        climb(unit_id)
        return chain

    def lineage(self, unit_id: str) -> tuple[str, ...]:
        """The ids of the unit and every unit above it, nearest first (属地管理), for territory checks. A unit's
        parent is fixed when it is registered, so the answer is kept for the life of this ledger: filtering a
        city-wide report for a district's token loaded the aggregates above every unit it names on every request
        (1.3 s p50 on PostgreSQL at 1M events). An unknown unit raises and is not kept (it may be registered later)."""
        found = self._lineages.get(unit_id)
        if found is None:
            found = self._lineages[unit_id] = tuple(u.record_id for u in self.ancestors(unit_id))
        return found

    def grantors(self, grant: AccessGrant) -> tuple[str, ...]:
        """The subjects of the tokens that granted this one, nearest first (none for a grant from the command line),
        followed up to ``MAX_GRANT_CHAIN``. A grant's subject and ``granted_under`` are fixed when it is granted, so
        each chain is kept for the life of this ledger: it is asked on every request a token makes."""
        found = self._grantors.get(grant.record_id)
        if found is None:
            chain: list[str] = []
            under = grant.granted_under
            while under is not None and len(chain) < MAX_GRANT_CHAIN:
                above = self.get(AccessGrant, under)
                chain.append(above.subject)
                under = above.granted_under
            found = self._grantors[grant.record_id] = tuple(chain)
        return found

    # --- people and conduct -----------------------------------------------------------------

    def register_person(
        self,
        name: str,
        unit_id: str,
        post: Post,
        *,
        person_id: str | None = None,
        actor: str,
        occurred_at: datetime | None = None,
        note: str = "",
        idempotency_key: str | None = None,
    ) -> Receipt:
        stamp = self.stamp(actor, occurred_at, note)
        self._require(Unit, unit_id)
        new_id = person_id or new_record_id("p")
        return self._create(lambda: Person.register(new_id, name, unit_id, post, stamp), idempotency_key)

    def report_misconduct(
        self, person_id: str, kind: MisconductKind, reporter: str, detail: str, **cmd: Any
    ) -> Receipt:
        return self._command(
            Person, person_id, lambda p, s: {"report_id": p.report_misconduct(kind, reporter, detail, s)}, **cmd
        )

    def record_finding(self, person_id: str, report_id: str, substantiated: bool, **cmd: Any) -> Receipt:
        return self._command(Person, person_id, lambda p, s: p.record_finding(report_id, substantiated, s), **cmd)

    def remove_from_post(self, person_id: str, **cmd: Any) -> Receipt:
        return self._command(Person, person_id, lambda p, s: p.remove_from_post(s), **cmd)

    def refer_to_judiciary(self, person_id: str, **cmd: Any) -> Receipt:
        return self._command(Person, person_id, lambda p, s: p.refer_to_judiciary(s), **cmd)

    def commend(self, person_id: str, title: Commendation, **cmd: Any) -> Receipt:
        return self._command(Person, person_id, lambda p, s: p.commend(title, s), **cmd)

    def record_training(self, person_id: str, course: str, **cmd: Any) -> Receipt:
        return self._command(Person, person_id, lambda p, s: p.record_training(course, s), **cmd)

    def hold_reception(self, person_id: str, place: str, **cmd: Any) -> Receipt:
        return self._command(Person, person_id, lambda p, s: p.hold_reception(place, s), **cmd)

    # --- enforcement cases ------------------------------------------------------------------

    def report_clue(
        self,
        unit_id: str,
        violation: Violation,
        source: ClueSource,
        *,
        case_id: str | None = None,
        area_mu: Decimal | None = None,
        value_yuan: Decimal | None = None,
        location: str = "",
        petition_id: str | None = None,
        actor: str,
        occurred_at: datetime | None = None,
        note: str = "",
        idempotency_key: str | None = None,
    ) -> Receipt:
        stamp = self.stamp(actor, occurred_at, note)
        self._require(Unit, unit_id)
        if petition_id is not None:
            self._require(Petition, petition_id)
        new_id = case_id or new_record_id("c")
        return self._create(
            lambda: EnforcementCase.report_clue(
                new_id,
                unit_id,
                violation,
                source,
                self.policy_in_force(stamp.occurred_at),
                stamp,
                area_mu=area_mu,
                value_yuan=value_yuan,
                location=location,
                petition_id=petition_id,
            ),
            idempotency_key,
        )

    def file_case(self, case_id: str, handler_ids: list[str], **cmd: Any) -> Receipt:
        self._require_people(handler_ids, "handler_ids")
        handlers = [self.get(Person, person_id) for person_id in handler_ids]

        def file(case: EnforcementCase, stamp: Stamp) -> None:
            for handler in handlers:
                handler.check_may_handle_cases(stamp)
            case.file(handler_ids, stamp)

        return self._command(EnforcementCase, case_id, file, **cmd)

    def handle_jointly(self, case_id: str, agencies: list[Agency], **cmd: Any) -> Receipt:
        return self._command(EnforcementCase, case_id, lambda c, s: c.handle_jointly(agencies, s), **cmd)

    def declare_major(self, case_id: str, reason: str, **cmd: Any) -> Receipt:
        return self._command(EnforcementCase, case_id, lambda c, s: c.declare_major(reason, s), **cmd)

    def report_upward(self, case_id: str, **cmd: Any) -> Receipt:
        return self._command(EnforcementCase, case_id, lambda c, s: c.report_upward(s), **cmd)

    def file_for_record(self, case_id: str, **cmd: Any) -> Receipt:
        return self._command(EnforcementCase, case_id, lambda c, s: c.file_for_record(s), **cmd)

    def review_jointly(self, case_id: str, decision: str, **cmd: Any) -> Receipt:
        return self._command(EnforcementCase, case_id, lambda c, s: c.review_jointly(decision, s), **cmd)

    def supervise(self, case_id: str, by_unit_id: str, deadline: datetime, **cmd: Any) -> Receipt:
        self._require(Unit, by_unit_id)

        def supervise(case: EnforcementCase, stamp: Stamp) -> None:
            # The case's own unit may record it too (a city's own case has no level above it).
            if by_unit_id != case.unit_id and not is_above(self.ancestors(by_unit_id), self.ancestors(case.unit_id)):
                raise RuleViolation(
                    f"{by_unit_id} is not above {case.unit_id}: a case is supervised by a higher level (上级督办)",
                    rule="R2",
                )
            case.supervise(by_unit_id, deadline, stamp)

        return self._command(EnforcementCase, case_id, supervise, **cmd)

    def decide_penalty(
        self, case_id: str, fine_yuan: Decimal | None, demolition_mu: Decimal | None, **cmd: Any
    ) -> Receipt:
        return self._command(
            EnforcementCase, case_id, lambda c, s: c.decide_penalty(fine_yuan, demolition_mu, s), **cmd
        )

    def transfer_case(self, case_id: str, to: Agency, **cmd: Any) -> Receipt:
        return self._command(EnforcementCase, case_id, lambda c, s: c.transfer(to, s), **cmd)

    def close_case(self, case_id: str, outcome: str, **cmd: Any) -> Receipt:
        return self._command(EnforcementCase, case_id, lambda c, s: c.close(outcome, s), **cmd)

    def find_wrongful(self, case_id: str, handler_ids: list[str], reason: str, **cmd: Any) -> Receipt:
        self._require_people(handler_ids, "handler_ids")  # each one a handler since the filing (R2)
        return self._command(EnforcementCase, case_id, lambda c, s: c.find_wrongful(handler_ids, reason, s), **cmd)

    # --- petitions --------------------------------------------------------------------------

    def register_petition(
        self,
        unit_id: str,
        channel: Channel,
        petitioner_count: int,
        petitioner: str,
        subject: str,
        category: PetitionCategory,
        *,
        petition_id: str | None = None,
        skip_level: bool = False,
        repeat_of: str | None = None,
        assigned_from: AssignedFrom | None = None,
        actor: str,
        occurred_at: datetime | None = None,
        note: str = "",
        idempotency_key: str | None = None,
    ) -> Receipt:
        stamp = self.stamp(actor, occurred_at, note)
        self._require(Unit, unit_id)
        if repeat_of is not None:
            self._require(Petition, repeat_of)
        new_id = petition_id or new_record_id("x")
        return self._create(
            lambda: Petition.register(
                new_id,
                unit_id,
                channel,
                petitioner_count,
                petitioner,
                subject,
                category,
                self.policy_in_force(stamp.occurred_at),
                stamp,
                skip_level=skip_level,
                repeat_of=repeat_of,
                assigned_from=assigned_from,
            ),
            idempotency_key,
        )

    def take_ownership(self, petition_id: str, leader_id: str, **cmd: Any) -> Receipt:
        leader = self.get(Person, leader_id)
        return self._command(Petition, petition_id, lambda p, s: p.take_ownership(leader, s), **cmd)

    def assign_on_site(self, petition_id: str, person_id: str, deadline: datetime, **cmd: Any) -> Receipt:
        person = self.get(Person, person_id)
        return self._command(Petition, petition_id, lambda p, s: p.assign_on_site(person, deadline, s), **cmd)

    def hold_meeting(self, petition_id: str, party: Meeting, **cmd: Any) -> Receipt:
        return self._command(Petition, petition_id, lambda p, s: p.hold_meeting(party, s), **cmd)

    def extend_petition(self, petition_id: str, days: int, **cmd: Any) -> Receipt:
        return self._command(
            Petition, petition_id, lambda p, s: p.extend(days, self.policy_in_force(p.opened_at), s), **cmd
        )

    def reply_petition(self, petition_id: str, summary: str, **cmd: Any) -> Receipt:
        return self._command(Petition, petition_id, lambda p, s: p.reply(summary, s), **cmd)

    def return_visit(self, petition_id: str, satisfied: bool, **cmd: Any) -> Receipt:
        return self._command(Petition, petition_id, lambda p, s: p.return_visit(satisfied, s), **cmd)

    def escalate(self, petition_id: str, level: EscalationLevel, collective: bool, **cmd: Any) -> Receipt:
        return self._command(Petition, petition_id, lambda p, s: p.escalate(level, collective, s), **cmd)

    def designate_nail_case(self, petition_id: str, resolver_id: str, **cmd: Any) -> Receipt:
        resolver = self.get(Person, resolver_id)
        return self._command(Petition, petition_id, lambda p, s: p.designate_nail_case(resolver, s), **cmd)

    def record_nail_check(self, petition_id: str, check: NailCheck, **cmd: Any) -> Receipt:
        return self._command(Petition, petition_id, lambda p, s: p.record_nail_check(check, s), **cmd)

    def record_cessation(self, petition_id: str, **cmd: Any) -> Receipt:
        return self._command(Petition, petition_id, lambda p, s: p.cease(s), **cmd)

    def divert_petition(self, petition_id: str, to_unit_id: str, **cmd: Any) -> Receipt:
        self._require(Unit, to_unit_id)
        return self._command(Petition, petition_id, lambda p, s: p.divert(to_unit_id, s), **cmd)

    def close_petition(self, petition_id: str, **cmd: Any) -> Receipt:
        return self._command(Petition, petition_id, lambda p, s: p.close(s), **cmd)

    # --- agreements and accountability ------------------------------------------------------

    def sign_agreement(
        self,
        year: int,
        issuer_unit_id: str,
        responsible_unit_id: str,
        targets: list[str] | None = None,
        *,
        actor: str,
        occurred_at: datetime | None = None,
        note: str = "",
        idempotency_key: str | None = None,
    ) -> Receipt:
        stamp = self.stamp(actor, occurred_at, note)
        self._require(Unit, issuer_unit_id)
        self._require(Unit, responsible_unit_id)
        if issuer_unit_id != responsible_unit_id:  # signing with itself is refused by the record (R6)
            check_parties(self.ancestors(issuer_unit_id), self.ancestors(responsible_unit_id))
        return self._create(
            lambda: TargetAgreement.sign(year, issuer_unit_id, responsible_unit_id, targets or [], stamp),
            idempotency_key,
        )

    def agreement(self, year: int, issuer_unit_id: str, responsible_unit_id: str) -> TargetAgreement:
        return self.get(TargetAgreement, agreement_id(year, issuer_unit_id, responsible_unit_id))

    def decide_trigger(
        self,
        trigger_id: str,
        rule: str,
        outcome: DecisionOutcome,
        reason: str,
        *,
        actor: str,
        occurred_at: datetime | None = None,
        note: str = "",
        idempotency_key: str | None = None,
        opened_at: datetime | None = None,
    ) -> Receipt:
        """Record a supervisor's decision on a trigger; the caller has checked the trigger exists and gives when it
        opened (``opened_at``), which the decision may not precede."""
        stamp = self.stamp(actor, occurred_at, note)
        return self._create(
            lambda: AccountabilityDecision.decide(trigger_id, rule, outcome, reason, stamp, opened_at),
            idempotency_key,
        )

    # --- access and personal data -----------------------------------------------------------

    def grant_access(
        self,
        subject: str,
        role: Role,
        unit_ids: list[str],
        secret_hash: str,
        *,
        grant_id: str | None = None,
        expires_at: datetime | None = None,
        granted_under: str | None = None,
        actor: str,
        idempotency_key: str | None = None,
    ) -> Receipt:
        for unit_id in unit_ids:
            self._require(Unit, unit_id)
        stamp = self.stamp(actor)
        new_id = grant_id or new_record_id("g")
        return self._create(
            lambda: AccessGrant.grant(new_id, subject, role, unit_ids, secret_hash, expires_at, stamp, granted_under),
            idempotency_key,
        )

    def revoke_access(self, grant_id: str, **cmd: Any) -> Receipt:
        return self._command(AccessGrant, grant_id, lambda g, s: g.revoke(s), **cmd)

    def log_personal_data_read(
        self, kind: str, record_id: str, fields: list[str], purpose: str, *, actor: str, grant_id: str | None = None
    ) -> None:
        """Every read of personal data is itself an event (个人信息查阅留痕), naming the reader's grant."""
        stamp = self.stamp(actor)
        log_id = f"{kind}.{record_id}"
        for _ in range(CONCURRENT_RETRIES):
            try:
                log = self.get(AccessLog, log_id)
            except RecordNotFound:
                log = AccessLog.open_for(kind, record_id, stamp)
            log.record_read(fields, purpose, stamp, grant_id)
            try:
                self._save([log], None)
            except IntegrityError:
                continue
            return

    def erase_personal_data(self, kind: str, record_id: str, reason: str, **cmd: Any) -> Receipt:
        """Crypto-shred a record's personal data: record the erasure, then destroy the key."""
        cls = record_class(kind)
        receipt = self._command(cls, record_id, lambda r, s: r.erase_personal_data(reason, s), **cmd)
        self.vault.destroy(record_uuid(cls.KIND, record_id).hex)
        return receipt

    # --- helpers ----------------------------------------------------------------------------

    def _command(
        self,
        cls: type[R],
        record_id: str,
        act: Callable[[R, Stamp], Any],
        *,
        actor: str,
        occurred_at: datetime | None = None,
        note: str = "",
        expected_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> Receipt:
        stamp = self.stamp(actor, occurred_at, note)
        return self._change(cls, record_id, lambda r: act(r, stamp), expected_version, idempotency_key)

    def _require_people(self, person_ids: list[str], field_name: str) -> None:
        for person_id in person_ids:
            check_id(person_id, field_name)
            self._require(Person, person_id)

    def iter_log(self, start: int = 1, stop: int | None = None, batch: int = 1000) -> Iterator[tuple[int, Any]]:
        """The global log from ``start``: (position, domain event) pairs, in order."""
        position = start
        while True:
            notifications = self.recorder.select_notifications(start=position, limit=batch, stop=stop)
            if not notifications:
                return
            for n in notifications:
                yield n.id, self.mapper.to_domain_event(n)
            position = notifications[-1].id + 1


def _project(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's ``project_aggregate`` without its per-event runtime-protocol ``assert isinstance``
    (~20 µs an event: most of a replay's Python time); every stored event is an ``Aggregate.Event``."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def record_class(kind: str) -> type[Record]:
    try:
        return KINDS[kind]
    except KeyError:
        raise InvalidValue(f"unknown record kind {kind!r} (one of {', '.join(KINDS)})", "kind") from None


def new_record_id(prefix: str) -> str:
    """A fresh public id for a record whose caller named none."""
    return f"{prefix}-{secrets.token_hex(6)}"
