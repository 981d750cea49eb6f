"""Policy (政策参数): the numbers the speech leaves open, versioned, changed only by amendment.

Every number the ledger computes uses the version in force at the business time of the event
that caused it, as known at the time of asking: an amendment recorded late was not known before.
The defaults below are the one place they are documented; the statutory ones come from the
Regulations on Letters and Visits (信访条例, 2005).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Self

from domain.base import LEDGER_EPOCH, Record, Stamp
from domain.errors import InvalidValue, RuleViolation

Number = int | Decimal


@dataclass(frozen=True)
class Parameter:
    """One policy parameter: its default, its type and what it means."""

    default: Number
    meaning: str

    @property
    def kind(self) -> type:
        return type(self.default)


PARAMETERS: dict[str, Parameter] = {
    "collective_threshold": Parameter(5, "petitioners at or above which a petition is collective (集体访); statutory"),
    "acceptance_days": Parameter(15, "days to decide whether to accept a petition (受理期限); statutory"),
    "handling_days": Parameter(60, "days to handle a petition (办理期限); statutory"),
    "max_extension_days": Parameter(30, "at most this many days, once, of extension (延期); statutory"),
    "clue_filing_days": Parameter(30, "days after a clue is reported before an unfiled case is 有案不查"),
    "major_case_area_mu": Parameter(Decimal(10), "a case of at least this area (亩) is major (重大案件)"),
    "major_case_value_yuan": Parameter(Decimal(500000), "a case of at least this value (元) is major"),
    "quota_deduction_mu": Parameter(Decimal(10), "land-use quota (用地指标, 亩) deducted per major case (R4)"),
    "funds_deduction_yuan": Parameter(
        Decimal(200000), "land-consolidation funds (土地整理项目资金, 元) deducted per major case"
    ),
    "model_points_deduction": Parameter(5, "model-district evaluation points (模范区评比指标) deducted per major case"),
    "score_base": Parameter(100, "target-assessment score a unit starts the year with (考核基础分)"),
    "pass_score": Parameter(80, "below this the unit is circulated for criticism (通报批评)"),
    "commend_score": Parameter(95, "at or above this the unit is commended (表彰)"),
    "points_major_case": Parameter(10, "points deducted per major case"),
    "points_case_not_investigated": Parameter(5, "points deducted per clue left unfiled (有案不查)"),
    "points_skip_level_petition": Parameter(2, "points deducted per skip-level petition (越级访)"),
    "points_repeat_petition": Parameter(1, "points deducted per repeat petition (重复访)"),
    "points_collective_petition": Parameter(3, "points deducted per collective petition (集体访)"),
    "points_escalation": Parameter(5, "points deducted per escalation (赴京、进省、来市、集体上访)"),
    "points_overdue_petition": Parameter(2, "points deducted per petition still open past its deadline"),
    "points_misconduct": Parameter(5, "points deducted per substantiated misconduct finding"),
    "points_missed_reception": Parameter(1, "points deducted per month a leader held no public reception (R17)"),
    "points_commendation": Parameter(2, "points added per commendation of an officer (R8)"),
}

DEFAULTS: dict[str, Number] = {name: p.default for name, p in PARAMETERS.items()}


def check_params(changes: dict[str, Any]) -> dict[str, Number]:
    """Validate an amendment's parameters: known names, non-negative numbers of the right kind."""
    if not changes:
        raise InvalidValue("an amendment must change at least one parameter", "params")
    checked: dict[str, Number] = {}
    for name, value in changes.items():
        if name not in PARAMETERS:
            raise InvalidValue(f"unknown policy parameter {name!r}", ("params", name))
        if isinstance(value, bool) or not isinstance(value, int | Decimal | float | str):
            raise InvalidValue(f"{name} must be a number", ("params", name))
        try:
            number = Decimal(str(value))
        except ArithmeticError:
            raise InvalidValue(f"{name} must be a number", ("params", name)) from None
        if not number.is_finite() or number < 0 or number > Decimal(10) ** 12:
            raise InvalidValue(f"{name} must be between 0 and 10^12", ("params", name))
        if PARAMETERS[name].kind is int:
            if number != number.to_integral_value():
                raise InvalidValue(f"{name} must be a whole number", ("params", name))
            checked[name] = int(number)
        else:
            checked[name] = number
    return checked


def check_coherent(params: dict[str, Number]) -> None:
    """The parameters taken together must make sense (thresholds in order, a collective needs 2+)."""
    if not params["pass_score"] <= params["commend_score"] <= params["score_base"]:
        raise RuleViolation("pass_score <= commend_score <= score_base must hold", rule="policy")
    if params["collective_threshold"] < 2:
        raise RuleViolation("collective_threshold must be at least 2", rule="policy")
    if params["handling_days"] < 1 or params["acceptance_days"] < 1:
        raise RuleViolation("deadlines must be at least one day", rule="policy")


@dataclass(frozen=True)
class PolicyVersion:
    """The parameters in force, and the version (amendment) that put the last of them in force."""

    version: int
    effective_from: datetime
    params: dict[str, Number]

    def __getitem__(self, name: str) -> Number:
        return self.params[name]

    def days(self, name: str) -> int:
        return int(self.params[name])


@dataclass(frozen=True)
class Amendment:
    """One version of the policy as recorded: effective date, changes, when it was recorded (登记时间)."""

    version: int
    effective_from: datetime
    changes: dict[str, Number]
    recorded_at: datetime

    @property
    def known_from(self) -> datetime:
        """From when the version counts as known, for answers as known at a time: an amendment from its
        recording; the defaults (version 1) from the ledger's epoch, since they are documented and were in
        force before any store was set up — else nothing recorded before set-up would have a policy."""
        return LEDGER_EPOCH if self.version == 1 else self.recorded_at


def in_force(amendments: list[Amendment], at: datetime, known_at: datetime | None = None) -> PolicyVersion:
    """The policy in force at business time ``at`` as known at recording time ``known_at``.

    Amendments apply in order of effective date (ties by version), each over the ones before it. Its ``version``
    is the last of them in that order: after a retroactive amendment (effective before an earlier-recorded one) the
    version named at a later date is that earlier-recorded one's, though the retroactive one's changes apply too.
    """
    known = [a for a in amendments if a.effective_from <= at and (known_at is None or a.known_from <= known_at)]
    if not known:
        raise RuleViolation(f"no policy was in force at {at.isoformat()}", rule="policy")
    known.sort(key=lambda a: (a.effective_from, a.version))
    params: dict[str, Number] = {}
    for a in known:
        params.update(a.changes)
    last = known[-1]
    return PolicyVersion(version=last.version, effective_from=last.effective_from, params=params)


class Policy(Record):
    """The bureau's policy (政策): established with the defaults, then amended with effective dates."""

    KIND: ClassVar[str] = "policy"
    ID: ClassVar[str] = "bureau"

    if TYPE_CHECKING:  # state set by the events' apply(); annotations only for type checkers
        amendments: list[Amendment]

    class Established(Record.Created):
        """Version 1: the documented defaults, in force from the ledger's epoch."""

        effective_from: datetime
        params: dict[str, Any]

        def apply(self, policy: Any) -> None:
            super().apply(policy)
            # Recorded when the store was set up; known from the ledger's epoch (Amendment.known_from).
            policy.amendments = [Amendment(1, self.effective_from, dict(self.params), self.timestamp)]

    class Amended(Record.Event):
        """An amendment (政策修订): the parameters that change from ``effective_from``."""

        effective_from: datetime
        params: dict[str, Any]

        def apply(self, policy: Any) -> None:
            changes = {k: PARAMETERS[k].kind(v) for k, v in self.params.items()}
            policy.amendments.append(Amendment(self.originator_version, self.effective_from, changes, self.timestamp))

    @classmethod
    def establish(cls, stamp: Stamp) -> Self:
        return cls._open(cls.Established, cls.ID, stamp, effective_from=LEDGER_EPOCH, params=dict(DEFAULTS))

    def amend(self, effective_from: datetime, changes: dict[str, Any], stamp: Stamp) -> None:
        if effective_from.utcoffset() is None:
            raise InvalidValue("effective_from must have a UTC offset", "effective_from")
        if effective_from < LEDGER_EPOCH:
            raise InvalidValue(f"effective_from is before {LEDGER_EPOCH.date()}", "effective_from")
        checked = check_params(changes)
        trial = [*self.amendments, Amendment(self.version + 1, effective_from, checked, stamp.recorded_at)]
        # Check coherence wherever the change would be in force, including under later amendments.
        for a in trial:
            if a.effective_from >= effective_from or a is trial[-1]:
                check_coherent(in_force(trial, a.effective_from).params)
        self._record(self.Amended, stamp, effective_from=effective_from, params=checked)

    def in_force(self, at: datetime, known_at: datetime | None = None) -> PolicyVersion:
        return in_force(self.amendments, at, known_at)

    def versions(self) -> list[Amendment]:
        return list(self.amendments)
