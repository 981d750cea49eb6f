"""Target-responsibility agreements (目标考核责任书, R5, R6) and accountability decisions (责任追究决定)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from domain.base import Record, Stamp, check_id, check_text
from domain.errors import InvalidValue, RuleViolation
from domain.units import GOVERNMENTS
from domain.vocabulary import DecisionOutcome

if TYPE_CHECKING:
    from domain.units import Unit


def agreement_id(year: int, issuer_unit_id: str, responsible_unit_id: str) -> str:
    """One agreement per year and pair of units: its id says which."""
    return f"{year}.{issuer_unit_id}.{responsible_unit_id}"


def check_parties(issuer: Sequence[Unit], responsible: Sequence[Unit]) -> None:
    """R5, R6: an agreement runs downwards, between governments (R5: 政府与下级政府) or between the bureau's offices
    (R6: 市局与分局, 分局与土管所). A government signs with a government below it; an office with an office inside
    the territory of the government it lies in, never one above it. Each party is given as its chain of units,
    itself first (属地管理): a district cannot make its city answer to it, nor a land station the city bureau."""
    issuer_is_government = issuer[0].kind in GOVERNMENTS
    if issuer_is_government != (responsible[0].kind in GOVERNMENTS):
        raise RuleViolation(
            f"{issuer[0].record_id} and {responsible[0].record_id} are not both governments nor both bureau offices",
            rule="R6",
        )
    government = next((u.record_id for u in issuer if u.kind in GOVERNMENTS), None)
    above_responsible = {u.record_id for u in responsible[1:]}
    above_issuer = {u.record_id for u in issuer}
    if government not in above_responsible or responsible[0].record_id in above_issuer:
        raise RuleViolation(
            f"{responsible[0].record_id} does not lie below {issuer[0].record_id}"
            f" (within {government}): an agreement is signed with a unit below the issuer",
            rule="R6",
        )


class TargetAgreement(Record):
    """An agreement the issuer signs with the responsible unit for a year; the year's score judges it (R6)."""

    KIND: ClassVar[str] = "agreement"

    if TYPE_CHECKING:  # state set by the events' apply(); annotations only for type checkers
        year: int
        issuer_unit_id: str
        responsible_unit_id: str
        targets: list[str]

    class Signed(Record.Created):
        year: int
        issuer_unit_id: str
        responsible_unit_id: str
        targets: list[str]

        def apply(self, agreement: Any) -> None:
            super().apply(agreement)
            agreement.year = self.year
            agreement.issuer_unit_id = self.issuer_unit_id
            agreement.responsible_unit_id = self.responsible_unit_id
            agreement.targets = list(self.targets)

    @classmethod
    def sign(cls, year: int, issuer_unit_id: str, responsible_unit_id: str, targets: list[str], stamp: Stamp) -> Self:
        check_id(issuer_unit_id, "issuer_unit_id")
        check_id(responsible_unit_id, "responsible_unit_id")
        if issuer_unit_id == responsible_unit_id:
            raise RuleViolation("a unit cannot sign an agreement with itself", rule="R6")
        if not 2000 <= year <= 2100:
            raise InvalidValue(f"year {year} is out of range", "year")
        if len(targets) > 50:
            raise InvalidValue("at most 50 targets", "targets")
        targets = [check_text(t, "targets", limit=500) for t in targets]
        record_id = agreement_id(year, issuer_unit_id, responsible_unit_id)
        return cls._open(
            cls.Signed,
            record_id,
            stamp,
            year=year,
            issuer_unit_id=issuer_unit_id,
            responsible_unit_id=responsible_unit_id,
            targets=targets,
        )


class AccountabilityDecision(Record):
    """What a supervisor decided on an accountability trigger; one decision per trigger."""

    KIND: ClassVar[str] = "decision"

    if TYPE_CHECKING:  # state set by the events' apply(); annotations only for type checkers
        trigger_id: str
        outcome: DecisionOutcome
        reason: str

    class Decided(Record.Created):
        trigger_id: str
        rule: str
        outcome: str
        reason: str

        def apply(self, decision: Any) -> None:
            super().apply(decision)
            decision.trigger_id = self.trigger_id
            decision.outcome = DecisionOutcome(self.outcome)
            decision.reason = self.reason

    @classmethod
    def decide(
        cls,
        trigger_id: str,
        rule: str,
        outcome: DecisionOutcome,
        reason: str,
        stamp: Stamp,
        opened_at: datetime | None = None,
    ) -> Self:
        """The decision on a trigger; dated no earlier than the trigger opened (``opened_at``, when known): a
        decision rests on what it decides."""
        check_text(reason, "reason")
        if opened_at is not None and stamp.occurred_at < opened_at:
            raise RuleViolation(
                f"trigger {trigger_id} opened at {opened_at.isoformat()}; "
                f"its decision cannot be dated before it ({stamp.occurred_at.isoformat()})",
                rule="chronology",
            )
        return cls._open(
            cls.Decided, trigger_id, stamp, trigger_id=trigger_id, rule=rule, outcome=str(outcome), reason=reason
        )
