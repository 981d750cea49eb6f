"""Enforcement cases (国土资源违法案件): from a clue to closure, and a wrongful finding after (R1–R4)."""

from __future__ import annotations

import copy
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Self

from domain.base import Record, Stamp, check_id, check_text
from domain.errors import InvalidValue, RuleViolation
from domain.policy import PolicyVersion
from domain.rules import is_major_by_size
from domain.vocabulary import JOINT_AGENCIES, Agency, ClueSource, Violation

MAX_AMOUNT = Decimal(10) ** 12


def check_amount(value: Decimal | None, field: str) -> Decimal | None:
    """Areas and sums are non-negative and bounded."""
    if value is None:
        return None
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0 or value > MAX_AMOUNT:
        raise InvalidValue(f"{field} must be a number between 0 and {MAX_AMOUNT}", field)
    return value


def check_ids(ids: list[str], field: str) -> list[str]:
    if not ids:
        raise InvalidValue(f"{field} must name at least one person", field)
    if len(set(ids)) != len(ids):
        raise InvalidValue(f"{field} names someone twice", field)
    return [check_id(i, field) for i in ids]


class EnforcementCase(Record):
    """A land or mineral violation case (违法案件), owned by one responsible unit (R15)."""

    KIND: ClassVar[str] = "case"

    if TYPE_CHECKING:  # state set by the events' apply(); annotations only for type checkers
        unit_id: str
        violation: Violation
        source: ClueSource
        area_mu: Decimal | None
        value_yuan: Decimal | None
        major_by_size: bool
        policy_version: int
        declared_major: bool
        filed: bool
        handler_ids: list[str]
        agencies: set[str]
        steps: list[str]
        supervisions: list[tuple[str, datetime]]
        joint_reviews: list[str]
        penalties: list[tuple[Decimal | None, Decimal | None]]
        transfers: list[str]
        outcome: str | None
        wrongful: bool

    @property
    def is_major(self) -> bool:
        """Major (重大) by decision or by the policy's area and value thresholds (R4)."""
        return self.declared_major or self.major_by_size

    def judged(self, policy: PolicyVersion) -> EnforcementCase:
        """This case with its size judged by ``policy`` (R4's thresholds): the one in force when its clue was
        reported as known at a later moment, which an amendment recorded since with an earlier effective date
        (追溯修订) may have changed, as it changes the projections'. A copy: a loaded record may be shared."""
        judged = copy.copy(self)
        judged.major_by_size = is_major_by_size(self.area_mu, self.value_yuan, policy)
        judged.policy_version = policy.version
        return judged

    class ClueReported(Record.Created):
        """A clue reported (线索); ``major_by_size`` and ``policy_version`` record how R4 judged its size."""

        unit_id: str
        violation: str
        source: str
        area_mu: Decimal | None
        value_yuan: Decimal | None
        location: str
        petition_id: str | None
        major_by_size: bool
        policy_version: int

        def apply(self, case: Any) -> None:
            super().apply(case)
            case.unit_id = self.unit_id
            case.violation = Violation(self.violation)
            case.source = ClueSource(self.source)
            case.area_mu = self.area_mu
            case.value_yuan = self.value_yuan
            case.major_by_size = self.major_by_size
            case.policy_version = self.policy_version
            case.declared_major = False
            case.filed = False
            case.handler_ids = []
            case.agencies = set()
            case.steps = []
            case.supervisions = []
            case.joint_reviews = []
            case.penalties = []
            case.transfers = []
            case.outcome = None
            case.wrongful = False

    class Filed(Record.Step):
        """Filed for investigation (立案), with its handlers (承办人)."""

        handler_ids: list[str]

        def apply(self, case: Any) -> None:
            case.filed = True
            case.handler_ids = list(self.handler_ids)

    class JointHandling(Record.Event):
        """Police or discipline joined the investigation (联合办案, R3)."""

        agencies: list[str]

        def apply(self, case: Any) -> None:
            case.agencies.update(self.agencies)

    class DeclaredMajor(Record.Event):
        """Decided to be a major case (认定为重大案件, R4)."""

        reason: str

        def apply(self, case: Any) -> None:
            case.declared_major = True

    class ReportedUpward(Record.Event):
        """Reported to the level above (报告制度, R2)."""

        def apply(self, case: Any) -> None:
            case.steps.append("report_upward")

    class RecordFiled(Record.Event):
        """Filed for the record with the level above (备案制度, R2)."""

        def apply(self, case: Any) -> None:
            case.steps.append("record_filing")

    class JointlyReviewed(Record.Event):
        """Joint review (会审制度, R2) and its decision."""

        decision: str

        def apply(self, case: Any) -> None:
            case.steps.append("joint_review")
            case.joint_reviews.append(self.decision)

    class Supervised(Record.Event):
        """A higher level supervises the case with a deadline (督办, R2)."""

        by_unit_id: str
        deadline: datetime

        def apply(self, case: Any) -> None:
            case.supervisions.append((self.by_unit_id, self.deadline))

    class PenaltyDecided(Record.Event):
        """Administrative penalty decided (行政处罚决定): fine and demolition."""

        fine_yuan: Decimal | None
        demolition_mu: Decimal | None

        def apply(self, case: Any) -> None:
            case.steps.append("penalty")
            case.penalties.append((self.fine_yuan, self.demolition_mu))

    class Transferred(Record.Event):
        """Transferred to police, discipline or the judiciary (移送制度, R2)."""

        to: str

        def apply(self, case: Any) -> None:
            case.transfers.append(self.to)

    class Closed(Record.Step):
        """Closed (结案) with its outcome."""

        outcome: str

        def apply(self, case: Any) -> None:
            case.closed = True
            case.outcome = self.outcome

    class FoundWrongful(Record.Event):
        """Found wrongly handled after closure (错案追究, R2): its handlers answer for it."""

        handler_ids: list[str]
        reason: str

        def apply(self, case: Any) -> None:
            case.wrongful = True

    @classmethod
    def report_clue(
        cls,
        case_id: str,
        unit_id: str,
        violation: Violation,
        source: ClueSource,
        policy: PolicyVersion,
        stamp: Stamp,
        *,
        area_mu: Decimal | None = None,
        value_yuan: Decimal | None = None,
        location: str = "",
        petition_id: str | None = None,
    ) -> Self:
        check_id(unit_id, "unit_id")
        check_text(location, "location", required=False, limit=200)
        if petition_id is not None:
            check_id(petition_id, "petition_id")
        area_mu = check_amount(area_mu, "area_mu")
        value_yuan = check_amount(value_yuan, "value_yuan")
        return cls._open(
            cls.ClueReported,
            case_id,
            stamp,
            unit_id=unit_id,
            violation=str(violation),
            source=str(source),
            area_mu=area_mu,
            value_yuan=value_yuan,
            location=location,
            petition_id=petition_id,
            major_by_size=is_major_by_size(area_mu, value_yuan, policy),
            policy_version=policy.version,
        )

    def file(self, handler_ids: list[str], stamp: Stamp) -> None:
        self._check_open("file it")
        if self.filed:
            raise RuleViolation(f"case {self.record_id} is already filed", rule="R2")
        self._record(self.Filed, stamp, handler_ids=check_ids(handler_ids, "handler_ids"))

    def handle_jointly(self, agencies: list[Agency], stamp: Stamp) -> None:
        self._check_filed("handle it jointly", stamp)
        if not agencies or not set(agencies) <= JOINT_AGENCIES:
            raise InvalidValue("agencies must be police and/or discipline", "agencies")
        self._record(self.JointHandling, stamp, agencies=sorted(str(a) for a in set(agencies)))

    def declare_major(self, reason: str, stamp: Stamp) -> None:
        self._check_open("declare it major")
        if self.declared_major:
            raise RuleViolation(f"case {self.record_id} is already declared major", rule="R4")
        self._record(self.DeclaredMajor, stamp, reason=check_text(reason, "reason"))

    def report_upward(self, stamp: Stamp) -> None:
        self._check_filed("report it upward", stamp)
        self._record(self.ReportedUpward, stamp)

    def file_for_record(self, stamp: Stamp) -> None:
        self._check_filed("file it for the record", stamp)
        self._record(self.RecordFiled, stamp)

    def review_jointly(self, decision: str, stamp: Stamp) -> None:
        self._check_filed("review it jointly", stamp)
        self._record(self.JointlyReviewed, stamp, decision=check_text(decision, "decision"))

    def supervise(self, by_unit_id: str, deadline: datetime, stamp: Stamp) -> None:
        self._check_open("supervise it")
        check_id(by_unit_id, "by_unit_id")
        if deadline.utcoffset() is None or deadline <= stamp.occurred_at:
            raise InvalidValue("a supervision deadline must be a time after the supervision began", "deadline")
        self._record(self.Supervised, stamp, by_unit_id=by_unit_id, deadline=deadline)

    def decide_penalty(self, fine_yuan: Decimal | None, demolition_mu: Decimal | None, stamp: Stamp) -> None:
        self._check_filed("decide a penalty", stamp)
        self._record(
            self.PenaltyDecided,
            stamp,
            fine_yuan=check_amount(fine_yuan, "fine_yuan"),
            demolition_mu=check_amount(demolition_mu, "demolition_mu"),
        )

    def transfer(self, to: Agency, stamp: Stamp) -> None:
        self._check_filed("transfer it", stamp)
        self._record(self.Transferred, stamp, to=str(to))

    def close(self, outcome: str, stamp: Stamp) -> None:
        self._check_filed("close it", stamp)
        self._record(self.Closed, stamp, outcome=check_text(outcome, "outcome", limit=500))

    def find_wrongful(self, handler_ids: list[str], reason: str, stamp: Stamp) -> None:
        """R2 错案追究: only a closed case can be found wrongly handled, once, and only its handlers (承办人, named
        at filing) answer for it — some or all of them; a finding that named anyone else would open an R2 trigger
        against a person who never handled the case."""
        if not self.closed:
            raise RuleViolation(f"case {self.record_id} is not closed; a wrongful finding follows closure", rule="R2")
        if self.wrongful:
            raise RuleViolation(f"case {self.record_id} is already found wrongful", rule="R2")
        self._not_before(stamp, "Closed")
        named = check_ids(handler_ids, "handler_ids")
        strangers = [i for i in named if i not in self.handler_ids]
        if strangers:
            raise RuleViolation(
                f"{', '.join(strangers)} did not handle case {self.record_id} "
                f"(its handlers, named at filing: {', '.join(self.handler_ids)})",
                rule="R2",
            )
        self._record(self.FoundWrongful, stamp, handler_ids=named, reason=check_text(reason, "reason"))

    def _check_filed(self, action: str, stamp: Stamp) -> None:
        """Open and filed (立案), by the step's own business time too."""
        self._check_open(action)
        if not self.filed:
            raise RuleViolation(f"case {self.record_id} is not filed (立案) yet; cannot {action}", rule="R2")
        self._not_before(stamp, "Filed")
