"""The R13 reports (日调度、周汇报、月通报), built from the projections.

A report covers a period of business time in the bureau's zone and, unless told otherwise, is
answered as of the period's end and as known at its issue date (the first moment after the
period, or now if the period has not ended): a late-recorded event changes what is known today
about last month, never the bulletin as it was issued.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain.application import utc_now
from domain.base import BUREAU_TZ
from domain.vocabulary import Violation
from projections.catalog import micros
from projections.history import REPORT_TYPES, Known, iso

if TYPE_CHECKING:
    from projections.queries import Queries


def period(kind: str, label: str) -> tuple[datetime, datetime]:
    """The [start, end) of a report's period, in the bureau's zone."""
    try:
        if kind == "daily":
            day = date.fromisoformat(label)
            start = datetime(day.year, day.month, day.day, tzinfo=BUREAU_TZ)
            return start, start + timedelta(days=1)
        if kind == "weekly":
            year, week = label.split("-W")
            monday = date.fromisocalendar(int(year), int(week), 1)
            start = datetime(monday.year, monday.month, monday.day, tzinfo=BUREAU_TZ)
            return start, start + timedelta(days=7)
        y, m = (int(part) for part in label.split("-"))
        start = datetime(y, m, 1, tzinfo=BUREAU_TZ)
        return start, datetime(y + m // 12, m % 12 + 1, 1, tzinfo=BUREAU_TZ)
    except ValueError:
        shapes = {"daily": "YYYY-MM-DD", "weekly": "YYYY-Www", "monthly": "YYYY-MM"}
        raise ValueError(f"{kind} report period must look like {shapes[kind]}, not {label!r}") from None


def build(queries: Queries, kind: str, label: str, as_of: datetime | None, known_at: datetime | None) -> dict[str, Any]:
    start, end = period(kind, label)
    issued = min(end, utc_now())
    k = queries.known(as_of or issued, known_at or issued, lean=True, only=REPORT_TYPES)
    lo, hi = micros(start), micros(end)

    def inside(at: int | None) -> bool:
        return at is not None and lo <= at < hi

    def district(unit: str | None) -> str:
        return (k.district_of(unit) if unit else None) or unit or ""

    by_unit: dict[str, Counter[str]] = defaultdict(Counter)
    petitions: Counter[str] = Counter()
    for p in k.petitions:
        if inside(p.rec.occurred_at):
            petitions["registered"] += 1
            by_unit[district(p.rec.unit_id)]["petitions_registered"] += 1
        if inside(p.closed_at):
            petitions["closed"] += 1
        for e in p.events:
            if e.type == "escalated" and inside(e.occurred_at):
                petitions["escalations"] += 1
                by_unit[district(p.unit_at(e.occurred_at))]["escalations"] += 1
        if p.status == "overdue":
            petitions["overdue_open"] += 1
            by_unit[district(p.unit_id)]["overdue_open"] += 1
        if p.status != "closed" and "nail_case" in p.flags:
            petitions["nail_cases_open"] += 1
    cases: Counter[str] = Counter()
    by_resource: Counter[str] = Counter({"land": 0, "minerals": 0})  # R1 counts land and minerals apart
    for c in k.cases:
        if inside(c.rec.occurred_at):
            cases["reported"] += 1
            by_resource[Violation(c.rec.data["violation"]).resource] += 1
            by_unit[district(c.rec.unit_id)]["cases_reported"] += 1
        if inside(c.major_at):
            cases["major"] += 1
            by_unit[district(c.rec.unit_id)]["major_cases"] += 1
        if inside(c.unfiled_at):
            cases["not_investigated"] += 1
        for e in c.events:
            if e.type in ("filed", "closed") and inside(e.occurred_at):
                cases[e.type] += 1
    deductions = [o for o in k.occurrences if inside(o.at)]
    for o in deductions:
        by_unit[district(o.unit_id)]["points_deducted"] += o.points
    opened = [t for t in k.triggers if lo <= micros(datetime.fromisoformat(t["opened_at"])) < hi]
    return {
        "report": kind,
        "period": label,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "as_of": iso(k.as_of),
        "known_at": iso(k.known_at),
        "petitions": {
            key: petitions[key] for key in ("registered", "closed", "escalations", "overdue_open", "nail_cases_open")
        },
        "cases": {
            **{key: cases[key] for key in ("reported", "filed", "major", "not_investigated", "closed")},
            "by_resource": dict(by_resource),
        },
        "deductions": [o.as_dict() for o in deductions],
        "triggers_opened": opened,
        "open_triggers": sum(1 for t in k.triggers if t["status"] == "open"),
        "by_unit": [
            {"unit_id": unit, "name": k.units[unit].data["name"] if unit in k.units else None, **dict(counts)}
            for unit, counts in sorted(by_unit.items())
        ],
    }


__all__ = ["Known", "build", "period"]
