"""People (人员) and their conduct record (执法人员档案): reports, findings, sanctions, commendations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from domain.base import Record, Stamp, check_id, check_text
from domain.errors import InvalidValue, RuleViolation
from domain.vocabulary import LEADER_POSTS, Commendation, MisconductKind, Post


@dataclass
class MisconductReport:
    """A misconduct report (违纪举报) and, once investigated, its finding (调查结论)."""

    report_id: str
    kind: MisconductKind
    substantiated: bool | None = None
    reported_at: datetime | None = None  # when it was made: its finding cannot be dated before it
    found_at: datetime | None = None  # when it was found: a sanction on it cannot be dated before it


class Person(Record):
    """A leader, officer or clerk, with their conduct record."""

    KIND: ClassVar[str] = "person"

    if TYPE_CHECKING:  # state set by the events' apply(); annotations only for type checkers
        name: str
        unit_id: str
        post: Post
        reports: dict[str, MisconductReport]
        removed: bool
        removed_at: datetime | None
        referred: bool
        commendations: list[str]
        trainings: list[str]
        receptions: int

    @property
    def is_leader(self) -> bool:
        """Principal leaders and leaders in charge (主要负责人、分管领导) can own petitions and receive publicly."""
        return self.post in LEADER_POSTS

    @property
    def substantiated_reports(self) -> list[MisconductReport]:
        return [r for r in self.reports.values() if r.substantiated]

    class Registered(Record.Created):
        name: str
        unit_id: str
        post: str

        def apply(self, person: Any) -> None:
            super().apply(person)
            person.name = self.name
            person.unit_id = self.unit_id
            person.post = Post(self.post)
            person.reports = {}
            person.removed = False
            person.removed_at = None
            person.referred = False
            person.commendations = []
            person.trainings = []
            person.receptions = 0

    class MisconductReported(Record.Event):
        """A report of misconduct (举报); who reported it is personal data, encrypted at rest, and so are what was
        reported and the note beside it, which can name the reporter as well as any field (the person named must
        never learn who reported them; an erasure must leave none of it readable)."""

        personal_fields: ClassVar[tuple[str, ...]] = ("reporter", "detail", "note")
        report_id: str
        kind: str
        reporter: str
        detail: str

        def apply(self, person: Any) -> None:
            kind = MisconductKind(self.kind)
            person.reports[self.report_id] = MisconductReport(self.report_id, kind, reported_at=self.occurred_at)

    class FindingRecorded(Record.Event):
        """The investigation's finding: substantiated (属实) or unfounded (不属实)."""

        report_id: str
        substantiated: bool

        def apply(self, person: Any) -> None:
            person.reports[self.report_id].substantiated = self.substantiated
            person.reports[self.report_id].found_at = self.occurred_at

    class RemovedFromPost(Record.Event):
        """Removed from the enforcement post (调离执法岗位, R7), on the findings named."""

        report_ids: list[str]

        def apply(self, person: Any) -> None:
            person.removed = True
            person.removed_at = self.occurred_at

    class ReferredToJudiciary(Record.Event):
        """Referred to the judicial organs (移交司法, R7)."""

        report_ids: list[str]

        def apply(self, person: Any) -> None:
            person.referred = True

    class Commended(Record.Event):
        """Commended as 执法业务标兵 or 国土资源卫士 (R8)."""

        title: str

        def apply(self, person: Any) -> None:
            person.commendations.append(self.title)

    class Trained(Record.Event):
        """Completed a training course (业务培训)."""

        course: str

        def apply(self, person: Any) -> None:
            person.trainings.append(self.course)

    class ReceptionHeld(Record.Event):
        """Received petitioners publicly at the grassroots (公开接访, R17)."""

        place: str

        def apply(self, person: Any) -> None:
            person.receptions += 1

    @classmethod
    def register(cls, person_id: str, name: str, unit_id: str, post: Post, stamp: Stamp) -> Self:
        check_text(name, "name", limit=100)
        check_id(unit_id, "unit_id")
        return cls._open(cls.Registered, person_id, stamp, name=name, unit_id=unit_id, post=str(post))

    def report_misconduct(self, kind: MisconductKind, reporter: str, detail: str, stamp: Stamp) -> str:
        """Record a report and return its id (r1, r2, … within the person)."""
        check_text(reporter, "reporter", limit=200)
        check_text(detail, "detail")
        report_id = f"r{len(self.reports) + 1}"
        self._record(
            self.MisconductReported, stamp, report_id=report_id, kind=str(kind), reporter=reporter, detail=detail
        )
        return report_id

    def record_finding(self, report_id: str, substantiated: bool, stamp: Stamp) -> None:
        report = self.reports.get(report_id)
        if report is None:
            raise InvalidValue(f"{self.record_id} has no misconduct report {report_id!r}", "report_id")
        if report.substantiated is not None:
            raise RuleViolation(f"report {report_id} already has a finding; a correction is a new report", rule="R7")
        if report.reported_at is not None and stamp.occurred_at < report.reported_at:
            raise RuleViolation(
                f"report {report_id} was made at {report.reported_at.isoformat()}; "
                f"its finding cannot come before it ({stamp.occurred_at.isoformat()})",
                rule="chronology",
            )
        self._record(self.FindingRecorded, stamp, report_id=report_id, substantiated=substantiated)

    def remove_from_post(self, stamp: Stamp) -> None:
        """R7: once a report is substantiated, removal from the enforcement post is due at once."""
        if self.removed:
            raise RuleViolation(f"{self.record_id} has already been removed from the enforcement post", rule="R7")
        basis = self._substantiated_basis("removal from the enforcement post", stamp)
        self._record(self.RemovedFromPost, stamp, report_ids=basis)

    def check_may_handle_cases(self, stamp: Stamp) -> None:
        """R7: an officer removed from the enforcement post (调离执法岗位) handles no case filed from then on."""
        if self.removed_at is not None and stamp.occurred_at >= self.removed_at:
            raise RuleViolation(
                f"{self.record_id} was removed from the enforcement post at {self.removed_at.isoformat()}; "
                "cannot handle a case",
                rule="R7",
            )

    def refer_to_judiciary(self, stamp: Stamp) -> None:
        if self.referred:
            raise RuleViolation(f"{self.record_id} has already been referred to the judicial organs", rule="R7")
        basis = self._substantiated_basis("criminal referral", stamp)
        self._record(self.ReferredToJudiciary, stamp, report_ids=basis)

    def commend(self, title: Commendation, stamp: Stamp) -> None:
        if self.removed:
            raise RuleViolation(
                f"{self.record_id} was removed from the enforcement post; cannot be commended", rule="R8"
            )
        self._record(self.Commended, stamp, title=str(title))

    def record_training(self, course: str, stamp: Stamp) -> None:
        self._record(self.Trained, stamp, course=check_text(course, "course", limit=200))

    def hold_reception(self, place: str, stamp: Stamp) -> None:
        if not self.is_leader:
            raise RuleViolation("public receptions (公开接访) are held by leaders", rule="R17")
        self._record(self.ReceptionHeld, stamp, place=check_text(place, "place", limit=200))

    def _substantiated_basis(self, action: str, stamp: Stamp) -> list[str]:
        """The reports found substantiated by the action's business time: it rests on them (一经发现, 调查属实)."""
        found = self.substantiated_reports
        if not found:
            raise RuleViolation(f"{action} needs a substantiated misconduct finding (调查属实)", rule="R7")
        basis = [r.report_id for r in found if r.found_at is None or r.found_at <= stamp.occurred_at]
        if not basis:
            first = min(r.found_at for r in found if r.found_at is not None)
            raise RuleViolation(
                f"{action} rests on a substantiated finding, the first found at {first.isoformat()}; "
                f"it cannot be dated before it ({stamp.occurred_at.isoformat()})",
                rule="chronology",
            )
        return basis
