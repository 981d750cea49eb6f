"""Petitions (信访件): registration, leader ownership, the three meetings, reply, return visit,
escalations, nail cases and closure (R9–R18)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from domain.base import Record, Stamp, check_id, check_text
from domain.errors import InvalidValue, RuleViolation
from domain.policy import PolicyVersion
from domain.rules import acceptance_deadline, handling_deadline, is_collective, is_initial, key_flags
from domain.vocabulary import AssignedFrom, Channel, EscalationLevel, Meeting, NailCheck, PetitionCategory

if TYPE_CHECKING:
    from domain.people import Person

MAX_PETITIONERS = 100_000


class Petition(Record):
    """A letter, visit, online or phone petition, owned by one responsible unit (归口办理, R15)."""

    KIND: ClassVar[str] = "petition"

    if TYPE_CHECKING:  # state set by the events' apply(); annotations only for type checkers
        unit_id: str
        petitioner_count: int
        skip_level: bool
        repeat_of: str | None
        assigned_from: AssignedFrom | None
        collective: bool
        initial: bool
        handling_deadline: datetime
        acceptance_deadline: datetime
        max_extension_days: int
        policy_version: int
        owner_id: str | None
        meetings: set[Meeting]
        extended: bool
        extension_days: int
        replied: bool
        return_visits: list[bool]
        escalations: list[str]
        nail_case: bool
        resolver_id: str | None
        nail_checks: set[NailCheck]
        ceased: bool
        on_site_owner_id: str | None
        on_site_deadline: datetime | None

    @property
    def flags(self) -> list[str]:
        """The board's flags, in its order (越级, 重复, 集体, 省以上交办, 初信初访, 钉子案, 上行; 重点, 未包案)."""
        named = {
            "skip_level": self.skip_level,
            "repeat": self.repeat_of is not None,
            "collective": self.collective,
            "assigned": self.assigned_from in (AssignedFrom.PROVINCE, AssignedFrom.CENTRAL),
            "initial": self.initial,
            "nail_case": self.nail_case,
            "escalated": bool(self.escalations),
        }
        return [flag for flag, on in named.items() if on] + key_flags(named, self.owner_id)

    def judged(self, policy: PolicyVersion) -> Petition:
        """This petition with its derived facts (collective 集体访, handling deadline 办理期限, the extension allowed)
        judged by ``policy``: the one in force at its registration as known at a later moment. Registration
        recorded them by the policy then known; an amendment recorded since with an earlier effective date
        (追溯修订) changes them, as it changes the board's. A copy: a loaded record may be shared."""
        judged = copy.copy(self)
        judged.collective = is_collective(self.petitioner_count, policy)
        judged.handling_deadline = handling_deadline(self.opened_at, policy, self.extension_days)
        judged.acceptance_deadline = acceptance_deadline(self.opened_at, policy)
        judged.max_extension_days = policy.days("max_extension_days")
        judged.policy_version = policy.version
        return judged

    class Registered(Record.Created):
        """Registered one by one (逐一登记, R9) with the derived flags and deadlines of the policy then in force."""

        personal_fields: ClassVar[tuple[str, ...]] = ("petitioner",)
        unit_id: str
        channel: str
        petitioner_count: int
        petitioner: str
        subject: str
        category: str
        skip_level: bool
        repeat_of: str | None
        assigned_from: str | None
        collective: bool
        initial: bool
        acceptance_deadline: datetime
        handling_deadline: datetime
        max_extension_days: int
        policy_version: int

        def apply(self, petition: Any) -> None:
            super().apply(petition)
            petition.unit_id = self.unit_id
            petition.petitioner_count = self.petitioner_count
            petition.skip_level = self.skip_level
            petition.repeat_of = self.repeat_of
            petition.assigned_from = AssignedFrom(self.assigned_from) if self.assigned_from else None
            petition.collective = self.collective
            petition.initial = self.initial
            petition.handling_deadline = self.handling_deadline
            petition.acceptance_deadline = self.acceptance_deadline
            petition.max_extension_days = self.max_extension_days
            petition.policy_version = self.policy_version
            petition.owner_id = None
            petition.meetings = set()
            petition.extended = False
            petition.extension_days = 0
            petition.replied = False
            petition.return_visits = []
            petition.escalations = []
            petition.nail_case = False
            petition.resolver_id = None
            petition.nail_checks = set()
            petition.ceased = False
            petition.on_site_owner_id = None
            petition.on_site_deadline = None

    class OwnershipTaken(Record.Step):
        """A leader takes ownership (领导包案, R9)."""

        leader_id: str

        def apply(self, petition: Any) -> None:
            petition.owner_id = self.leader_id

    class OnSiteOwnershipAssigned(Record.Event):
        """On-site ownership (蹲点包案, R17): a person sent down to the township or village, with a deadline."""

        person_id: str
        deadline: datetime

        def apply(self, petition: Any) -> None:
            petition.on_site_owner_id = self.person_id
            petition.on_site_deadline = self.deadline

    class MeetingHeld(Record.Step):
        """One of the three meetings (三见面, R16)."""

        party: str

        def step(self) -> str:
            return f"MeetingHeld:{self.party}"

        def apply(self, petition: Any) -> None:
            petition.meetings.add(Meeting(self.party))

    class Extended(Record.Event):
        """The one extension of the handling deadline (延期, at most ``max_extension_days``)."""

        days: int
        handling_deadline: datetime

        def apply(self, petition: Any) -> None:
            petition.extended = True
            petition.extension_days = self.days
            petition.handling_deadline = self.handling_deadline

    class Replied(Record.Step):
        """The written reply to the petitioner (答复意见)."""

        summary: str

        def apply(self, petition: Any) -> None:
            petition.replied = True

    class ReturnVisited(Record.Step):
        """A return visit (回访, R16) and whether the petitioner was satisfied."""

        satisfied: bool

        def apply(self, petition: Any) -> None:
            petition.return_visits.append(self.satisfied)

    class Escalated(Record.Event):
        """The petitioner went to Beijing, the province or the city (赴京、进省、来市), perhaps collectively (R14)."""

        level: str
        collective: bool

        def apply(self, petition: Any) -> None:
            petition.escalations.append(self.level)

    class DesignatedNailCase(Record.Step):
        """Designated a nail case (钉子案, R12) with its named resolver (逐案明确解决责任)."""

        resolver_id: str

        def apply(self, petition: Any) -> None:
            petition.nail_case = True
            petition.resolver_id = self.resolver_id

    class NailCheckRecorded(Record.Step):
        """One of the four checks of R12 (四个不放过) is done."""

        check: str

        def step(self) -> str:
            return f"NailCheckRecorded:{self.check}"

        def apply(self, petition: Any) -> None:
            petition.nail_checks.add(NailCheck(self.check))

    class Ceased(Record.Event):
        """The petitioner ceased petitioning (息诉罢访, R10)."""

        def apply(self, petition: Any) -> None:
            petition.ceased = True

    class Diverted(Record.Event):
        """Lawfully diverted to the unit responsible (依法分流, R15)."""

        from_unit_id: str
        to_unit_id: str

        def apply(self, petition: Any) -> None:
            petition.unit_id = self.to_unit_id

    class Closed(Record.Event):
        """Closed (办结)."""

        def apply(self, petition: Any) -> None:
            petition.closed = True

    @classmethod
    def register(
        cls,
        petition_id: str,
        unit_id: str,
        channel: Channel,
        petitioner_count: int,
        petitioner: str,
        subject: str,
        category: PetitionCategory,
        policy: PolicyVersion,
        stamp: Stamp,
        *,
        skip_level: bool = False,
        repeat_of: str | None = None,
        assigned_from: AssignedFrom | None = None,
    ) -> Self:
        check_id(unit_id, "unit_id")
        if isinstance(petitioner_count, bool) or not 1 <= petitioner_count <= MAX_PETITIONERS:
            raise InvalidValue(f"petitioner_count must be between 1 and {MAX_PETITIONERS}", "petitioner_count")
        check_text(petitioner, "petitioner", limit=200)
        check_text(subject, "subject", limit=1000)
        if repeat_of is not None:
            check_id(repeat_of, "repeat_of")
            if repeat_of == petition_id:
                raise InvalidValue("a petition cannot repeat itself", "repeat_of")
        return cls._open(
            cls.Registered,
            petition_id,
            stamp,
            unit_id=unit_id,
            channel=str(channel),
            petitioner_count=petitioner_count,
            petitioner=petitioner,
            subject=subject,
            category=str(category),
            skip_level=skip_level,
            repeat_of=repeat_of,
            assigned_from=str(assigned_from) if assigned_from else None,
            collective=is_collective(petitioner_count, policy),
            initial=is_initial(repeat_of),
            acceptance_deadline=acceptance_deadline(stamp.occurred_at, policy),
            handling_deadline=handling_deadline(stamp.occurred_at, policy),
            max_extension_days=policy.days("max_extension_days"),
            policy_version=policy.version,
        )

    def take_ownership(self, leader: Person, stamp: Stamp) -> None:
        self._check_open("take ownership")
        if not leader.is_leader:
            raise RuleViolation(f"{leader.record_id} is a {leader.post}; only a leader can own a petition", rule="R9")
        if leader.removed:
            raise RuleViolation(f"{leader.record_id} was removed from post and cannot own a petition", rule="R9")
        if self.owner_id == leader.record_id:
            raise RuleViolation(f"{leader.record_id} already owns petition {self.record_id}", rule="R9")
        leader.check_began_by(stamp, "owner")
        self._record(self.OwnershipTaken, stamp, leader_id=leader.record_id)

    def assign_on_site(self, person: Person, deadline: datetime, stamp: Stamp) -> None:
        """R17 蹲点包案: 下派工作人员, 包案到人, 限期解决 — a named person and a deadline after today."""
        self._check_open("assign on-site ownership")
        if person.removed:
            raise RuleViolation(f"{person.record_id} was removed from post and cannot take a case on site", rule="R17")
        person.check_began_by(stamp, "on-site owner")
        if deadline.utcoffset() is None or deadline <= stamp.occurred_at:
            raise InvalidValue("an on-site deadline must be a time after the assignment", "deadline")
        self._record(self.OnSiteOwnershipAssigned, stamp, person_id=person.record_id, deadline=deadline)

    def hold_meeting(self, party: Meeting, stamp: Stamp) -> None:
        self._check_open("hold a meeting")
        if party in self.meetings:
            raise RuleViolation(f"the meeting with the {party} is already recorded", rule="R16")
        if party is Meeting.LEADER:
            if self.owner_id is None:
                raise RuleViolation("the meeting with the leader needs a leader who owns the petition", rule="R9")
            self._not_before(stamp, "OwnershipTaken")
        self._record(self.MeetingHeld, stamp, party=str(party))

    def extend(self, days: int, policy: PolicyVersion, stamp: Stamp) -> None:
        """R18's one extension, judged by ``policy``: the one in force at registration as known now."""
        self._check_open("extend it")
        if self.extended:
            raise RuleViolation("a petition's deadline can be extended only once", rule="R18")
        now = self.judged(policy)
        if isinstance(days, bool) or not 1 <= days <= now.max_extension_days:
            raise RuleViolation(f"an extension is 1 to {now.max_extension_days} days, not {days}", rule="R18")
        if stamp.occurred_at > now.handling_deadline:
            raise RuleViolation("the deadline has passed; an extension must be granted before it", rule="R18")
        deadline = handling_deadline(self.opened_at, policy, days)
        self._record(self.Extended, stamp, days=days, handling_deadline=deadline)

    def reply(self, summary: str, stamp: Stamp) -> None:
        self._check_open("reply")
        if self.replied:
            raise RuleViolation("the petition already has its reply; a further answer is a new petition", rule="R18")
        self._record(self.Replied, stamp, summary=check_text(summary, "summary"))

    def return_visit(self, satisfied: bool, stamp: Stamp) -> None:
        """R10, R16: the return visit checks the result, so it may follow closure (回访核查)."""
        if not self.replied:
            raise RuleViolation("a return visit (回访) follows the reply", rule="R16")
        self._not_before(stamp, "Replied")
        self._record(self.ReturnVisited, stamp, satisfied=satisfied)

    def escalate(self, level: EscalationLevel, collective: bool, stamp: Stamp) -> None:
        """R14: escalations are recorded even after closure — that is when they matter most (再出现)."""
        self._record(self.Escalated, stamp, level=str(level), collective=collective)

    def designate_nail_case(self, resolver: Person, stamp: Stamp) -> None:
        """R12 钉子案: a named resolver answers for the case (逐案明确解决责任), so, as for petition and on-site
        ownership, it cannot be someone removed from the enforcement post (调离, R7)."""
        self._check_open("designate it a nail case")
        if self.nail_case:
            raise RuleViolation(f"petition {self.record_id} is already a nail case", rule="R12")
        if resolver.removed:
            raise RuleViolation(
                f"{resolver.record_id} was removed from post and cannot resolve a nail case", rule="R12"
            )
        resolver.check_began_by(stamp, "resolver")
        self._record(self.DesignatedNailCase, stamp, resolver_id=resolver.record_id)

    def record_nail_check(self, check: NailCheck, stamp: Stamp) -> None:
        self._check_open("record a nail-case check")
        if not self.nail_case:
            raise RuleViolation(f"petition {self.record_id} is not a nail case", rule="R12")
        if check in self.nail_checks:
            raise RuleViolation(f"the check {check} is already recorded", rule="R12")
        self._not_before(stamp, "DesignatedNailCase")
        self._record(self.NailCheckRecorded, stamp, check=str(check))

    def cease(self, stamp: Stamp) -> None:
        """R10: the ceasing of a closed petition is verified and recorded after closure too (息诉罢访)."""
        if self.ceased:
            raise RuleViolation("the petitioner's ceasing (息诉罢访) is already recorded", rule="R10")
        self._record(self.Ceased, stamp)

    def divert(self, to_unit_id: str, stamp: Stamp) -> None:
        self._check_open("divert it")
        check_id(to_unit_id, "to_unit_id")
        if to_unit_id == self.unit_id:
            raise RuleViolation(f"petition {self.record_id} is already with {to_unit_id}", rule="R15")
        self._record(self.Diverted, stamp, from_unit_id=self.unit_id, to_unit_id=to_unit_id)

    def close(self, stamp: Stamp) -> None:
        self._check_open("close it")
        missing = self.missing_for_closure()
        if missing:
            rule, what = missing[0]
            raise RuleViolation(f"petition {self.record_id} cannot close: {what}", rule=rule)
        self._not_before(stamp, *self.needed_for_closure())
        self._record(self.Closed, stamp)

    def needed_for_closure(self) -> list[str]:
        """The steps closure rests on (:meth:`missing_for_closure`), each to be dated by the closure: the reply; for
        an initial petition the three meetings and its return visit; for a nail case the four checks."""
        needed = ["Replied"]
        if self.initial:
            needed += [f"MeetingHeld:{m}" for m in Meeting] + ["ReturnVisited"]
        if self.nail_case:
            needed += [f"NailCheckRecorded:{c}" for c in NailCheck]
        return needed

    def missing_for_closure(self) -> list[tuple[str, str]]:
        """What still stands between the petition and closure, each with its rule."""
        missing: list[tuple[str, str]] = []
        if self.nail_case:
            absent = [c for c in NailCheck if c not in self.nail_checks]
            if absent:
                missing.append(("R12", "nail-case checks not recorded: " + ", ".join(absent)))
        if self.initial:
            absent_meetings = [m for m in Meeting if m not in self.meetings]
            if absent_meetings:
                missing.append(("R16", "the three meetings are incomplete: " + ", ".join(absent_meetings)))
            if not self.return_visits:
                missing.append(("R16", "an initial petition needs its return visit (回访)"))
        if not self.replied:
            missing.append(("R18", "no reply (答复) is recorded"))
        return missing
