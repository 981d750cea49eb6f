"""Queries over the projections (查询): scores, triggers, deductions, quota, the petition board,
the officer registry, the R13 reports and the projections' status.

Every query takes ``as_of`` (business time) and ``known_at`` (recording time), both default now,
and answers plain JSON-ready dicts: times RFC 3339 in the bureau's zone (+08:00); mu and yuan as
numbers (int when whole, else float); points and scores as ints. Unit filters include every
unit below the one named (属地管理).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.application import utc_now
from projections import current, reports
from projections.catalog import CURRENT
from projections.db import Db
from projections.engine import positions
from projections.history import SCORE_TYPES, TRIGGER_TYPES, Known, iso, number, year_bounds
from projections.source import open_log

PETITION_STATUSES = ("open", "overdue", "closed")
PETITION_FLAGS = ("nail_case", "skip_level", "repeat", "collective", "assigned", "escalated", "initial")
OFFICER_STATUSES = ("removal_due", "removed", "referred", "commended")
#: R4's deductions from a district (扣减): answer field and the policy parameter that sets it per major case.
DEDUCTIONS = {
    "land_quota_mu": "quota_deduction_mu",
    "consolidation_funds_yuan": "funds_deduction_yuan",
    "model_district_points": "model_points_deduction",
}
#: The record kinds named in readable trigger ids (``R4.case.<id>…``) and the projection holding them.
TRIGGER_KINDS = {"case": "cases", "petition": "petitions", "person": "people", "agreement": "accountability"}


def moment(value: datetime | None, default: datetime) -> datetime:
    if value is None:
        return default
    if value.utcoffset() is None:
        raise ValueError("as_of and known_at need a UTC offset")
    return value


class Queries:
    """Read-only answers from the projection tables of one database."""

    def __init__(self, target: str | Db) -> None:
        self.url = target if isinstance(target, str) else target.url
        self.db = Db(target) if isinstance(target, str) else target

    def close(self) -> None:
        self.db.close()

    def known(
        self,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        *,
        lean: bool = False,
        only: dict[str, tuple[str, ...]] | None = None,
        window: tuple[int, int] | None = None,
    ) -> Known:
        now = utc_now()
        return Known(self.db, moment(as_of, now), moment(known_at, now), lean=lean, only=only, window=window)

    def _now(self, as_of: datetime | None, known_at: datetime | None) -> bool:
        """Whether to answer from the current view: a question about now, and the view is up to its facts."""
        if as_of is not None or known_at is not None:
            return False
        tracked = positions(self.db)
        view = tracked[CURRENT]
        return view > 0 and all(view >= tracked[name] for name in current.SOURCES)

    def _scoped(
        self,
        as_of: datetime | None,
        known_at: datetime | None,
        unit_id: str | None,
        *,
        lean: bool = False,
        only: dict[str, tuple[str, ...]] | None = None,
        window: tuple[int, int] | None = None,
    ) -> tuple[Known, set[str] | None]:
        """The facts of the territory below ``unit_id`` only (all of them without one), and that territory."""
        k = self.known(as_of, known_at, lean=lean, only=only, window=window)
        k.scope = None if unit_id is None else k.subtree(unit_id) | {unit_id}
        return k, k.scope

    # --- scores -------------------------------------------------------------------------------

    def scores(
        self, year: int, unit_id: str | None = None, *, as_of: datetime | None = None, known_at: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Per unit: ``score``, ``outcome`` and the ``deductions`` (and commendations) that make it up."""
        if self._now(as_of, known_at):
            k, wanted = self._scoped(None, None, unit_id, lean=True)
            current.prepare(k, year_bounds(year))
        else:
            # Only the cases and petitions that can yield an occurrence in the year: one year's facts are read.
            k, wanted = self._scoped(as_of, known_at, unit_id, lean=True, only=SCORE_TYPES, window=year_bounds(year))
        # Only the territory's units are sorted: the city's whole tree is thousands of units at scale.
        return [k.score(u, year) for u in sorted(k.units if wanted is None else wanted & k.units.keys())]

    # --- triggers -----------------------------------------------------------------------------

    def triggers(
        self,
        status: str | None = None,
        unit_id: str | None = None,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Accountability triggers (问责触发): ``id, rule, subject, reason, evidence, opened_at, status, decision``."""
        if status not in (None, "open", "decided"):
            raise ValueError("status must be open or decided")
        if self._now(as_of, known_at):
            k, wanted = self._scoped(None, None, unit_id, lean=True)
            found = current.triggers(k)
        else:
            k, wanted = self._scoped(as_of, known_at, unit_id, lean=True, only=TRIGGER_TYPES)
            found = k.triggers
        return [
            t
            for t in found
            if (status is None or t["status"] == status) and (wanted is None or t["subject"]["unit_id"] in wanted)
        ]

    def trigger(
        self, trigger_id: str, *, as_of: datetime | None = None, known_at: datetime | None = None
    ) -> dict[str, Any] | None:
        k = self.known(as_of, known_at, lean=True, only=TRIGGER_TYPES)
        units = self._trigger_units(trigger_id)
        if units is not None:
            # Only the territories of the records the id can name: a trigger is derived from its record,
            # the leaders of the record's unit and (R6) the score of the agreement's territory, all inside.
            k.scope = set().union(*(k.subtree(u) | {u} for u in units))
        return next((t for t in k.triggers if t["id"] == trigger_id), None)

    def _trigger_units(self, trigger_id: str) -> set[str] | None:
        """The units of the records a trigger id can name (``None``: a hashed id, so any record may)."""
        _, _, rest = trigger_id.partition(".")  # the rule
        kind, _, rest = rest.partition(".")
        projection = TRIGGER_KINDS.get(kind)
        if projection is None or not rest:
            return None
        # Record ids may hold dots: the record id is the whole rest or one of its dotted prefixes.
        pieces = rest.split(".")
        candidates = [".".join(pieces[:n]) for n in range(1, len(pieces) + 1)]
        rows = self.db.query(
            f"SELECT unit_id FROM proj_{projection}_records WHERE record_id IN ({', '.join('?' * len(candidates))})",
            candidates,
        )
        return {r[0] for r in rows if r[0] is not None}

    # --- quota --------------------------------------------------------------------------------

    def quota_deductions(
        self,
        year: int,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """R4 per district: ``land_quota_mu``, ``consolidation_funds_yuan``, ``model_district_points``, ``items``.

        Paged by district id: at most ``limit`` rows with ``unit_id > after`` (all rows without ``limit``).
        """
        k = self.known(as_of, known_at)
        k.view = self._now(as_of, known_at)
        if limit is None and after is None:
            return self._deductions(k, year)
        # Rows go to districts, and to a city for its units under no district; only those with items for a city.
        keys = {u for u, rec in k.units.items() if rec.data["kind"] in ("district", "city")}
        return _paged(k, keys, limit, after, lambda part: self._deductions(part, year))

    def _deductions(self, k: Known, year: int) -> list[dict[str, Any]]:
        start, end = year_bounds(year)
        items: dict[str, list[dict[str, Any]]] = defaultdict(list)
        totals: dict[str, list[Decimal]] = {}
        # Per policy version, the three amounts once: as exact decimals (for the sums) and as JSON numbers.
        amounts: dict[int, tuple[list[Decimal], list[float | int]]] = {}
        for case in current.majors(k, start, end) if k.view else k.majors(start, end):
            district = k.district_of(case.unit_id)
            if district is None:
                continue
            policy = k.policy.at(case.at)
            if policy.version not in amounts:
                exact = [Decimal(str(policy[name])) for name in DEDUCTIONS.values()]
                amounts[policy.version] = exact, [number(d) for d in exact]
            exact, shown = amounts[policy.version]
            item: dict[str, Any] = {"unit_id": case.unit_id, "case_id": case.case_id, "occurred_at": iso(case.at)}
            item.update(zip(DEDUCTIONS, shown, strict=True))
            item.update(rule="R4", policy_version=policy.version, evidence=case.evidence)
            items[district].append(item)
            total = totals.setdefault(district, [Decimal(0)] * len(DEDUCTIONS))
            totals[district] = [t + d for t, d in zip(total, exact, strict=True)]
        rows = []
        for district in _districts(k, items):
            sums = totals.get(district, [Decimal(0)] * len(DEDUCTIONS))
            row: dict[str, Any] = {
                "unit_id": district,
                "name": k.units[district].data["name"] if district in k.units else None,
                "year": year,
            }
            row.update((key, number(total)) for key, total in zip(DEDUCTIONS, sums, strict=True))
            row["items"] = items.get(district, [])
            rows.append(row)
        return rows

    def quota(
        self,
        year: int,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """R19 per district: ``allocated_mu − used_mu − deducted_mu = remaining_mu``; ``negative`` flags a deficit.

        Paged by district id: at most ``limit`` rows with ``unit_id > after`` (all rows without ``limit``).
        """
        k = self.known(as_of, known_at)
        k.view = self._now(as_of, known_at)
        if limit is None and after is None:
            return self._quota(k, year)
        keys = {u for u, rec in k.units.items() if rec.data["kind"] == "district"} | k.allocated_units(year)
        return _paged(k, keys, limit, after, lambda part: self._quota(part, year))

    def _quota(self, k: Known, year: int) -> list[dict[str, Any]]:
        deducted = {r["unit_id"]: r for r in self._deductions(k, year)}
        by_uuid = {u.uuid: u.record_id for u in k.units.values()}
        allocated: dict[str, Decimal] = defaultdict(Decimal)
        used: dict[str, Decimal] = defaultdict(Decimal)
        evidence: dict[str, list[int]] = defaultdict(list)
        for uuid, evs in k.quota_events(year).items():
            unit = by_uuid.get(uuid)
            if unit is None:
                continue
            for e in evs:
                if int(e.data["year"]) != year:
                    continue
                if e.type == "allocated":
                    allocated[unit] += Decimal(e.data["mu"])
                    evidence[unit].append(e.position)
                elif e.type == "approved":
                    district = k.district_of(unit)
                    if district:
                        used[district] += Decimal(e.data["mu"])
                        evidence[district].append(e.position)
        rows = []
        for district in _districts(k, allocated):
            d = deducted.get(district)
            deducted_mu = Decimal(str(d["land_quota_mu"])) if d else Decimal(0)
            remaining = allocated[district] - used[district] - deducted_mu
            rows.append(
                {
                    "unit_id": district,
                    "name": k.units[district].data["name"] if district in k.units else None,
                    "year": year,
                    "allocated_mu": number(allocated[district]),
                    "used_mu": number(used[district]),
                    "deducted_mu": number(deducted_mu),
                    "remaining_mu": number(remaining),
                    "negative": remaining < 0,
                    "evidence": sorted(
                        evidence[district] + [p for i in (d["items"] if d else []) for p in i["evidence"]]
                    ),
                }
            )
        return rows

    # --- petition board -----------------------------------------------------------------------

    def petitions(
        self,
        status: str | None = None,
        flag: str | None = None,
        unit_id: str | None = None,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The petition board (信访台账). ``status=open`` lists every unclosed petition, overdue ones included."""
        if status not in (None, *PETITION_STATUSES):
            raise ValueError(f"status must be one of {', '.join(PETITION_STATUSES)}")
        if flag not in (None, *PETITION_FLAGS):
            raise ValueError(f"flag must be one of {', '.join(PETITION_FLAGS)}")
        if self._now(as_of, known_at):
            k, wanted = self._scoped(None, None, unit_id, lean=True)
            board = current.petitions(k, status)
        else:
            k, wanted = self._scoped(as_of, known_at, unit_id)
            board = [p.board_row() for p in k.petitions]
        return [
            row
            for row in board
            if (wanted is None or row["unit_id"] in wanted)
            and (not flag or flag in row["flags"])
            and not (status == "open" and row["status"] == "closed")
            and not (status in ("overdue", "closed") and row["status"] != status)
        ]

    # --- officers -----------------------------------------------------------------------------

    def officers(
        self,
        status: str | None = None,
        unit_id: str | None = None,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The officer registry (执法人员档案, R7, R8): removal due, removed, referred, commended."""
        if status not in (None, *OFFICER_STATUSES):
            raise ValueError(f"status must be one of {', '.join(OFFICER_STATUSES)}")
        k, wanted = self._scoped(as_of, known_at, unit_id)
        rows = []
        for person in k.people.values():
            if wanted is not None and person.unit_id not in wanted:
                continue
            evs = k.person_events.get(person.uuid, [])
            kinds = {e.data["report_id"]: e.data["kind"] for e in evs if e.type == "reported"}
            substantiated = [e.data["report_id"] for e in evs if e.type == "finding" and e.data["substantiated"]]
            removed = next((e for e in evs if e.type == "removed"), None)
            referred = next((e for e in evs if e.type == "referred"), None)
            commendations = [e.data["title"] for e in evs if e.type == "commended"]
            row = {
                "id": person.record_id,
                "unit_id": person.unit_id,
                "name": person.data["name"],
                "post": person.data["post"],
                "reports": len(kinds),
                "substantiated": [{"report_id": r, "kind": kinds.get(r)} for r in substantiated],
                "removal_due": bool(substantiated) and removed is None,
                "removed": removed is not None,
                "removed_at": iso(removed.occurred_at) if removed else None,
                "referred": referred is not None,
                "commended": bool(commendations),
                "commendations": commendations,
                "receptions": sum(1 for e in evs if e.type == "reception"),
                "evidence": [person.position] + [e.position for e in evs],
            }
            if status is None or row[status]:
                rows.append(row)
        return rows

    # --- reports (R13) ------------------------------------------------------------------------

    def daily(self, date: str, *, as_of: datetime | None = None, known_at: datetime | None = None) -> dict[str, Any]:
        """日调度 for a date ``YYYY-MM-DD``, as known at the end of that day by default."""
        return reports.build(self, "daily", date, as_of, known_at)

    def weekly(self, week: str, *, as_of: datetime | None = None, known_at: datetime | None = None) -> dict[str, Any]:
        """周汇报 for an ISO week ``YYYY-Www``, as known when the week ends by default."""
        return reports.build(self, "weekly", week, as_of, known_at)

    def monthly(self, month: str, *, as_of: datetime | None = None, known_at: datetime | None = None) -> dict[str, Any]:
        """月通报 for ``YYYY-MM``, as known at its issue date (the first moment after the month) by default."""
        return reports.build(self, "monthly", month, as_of, known_at)

    # --- status -------------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Each projection's position and lag behind the head of the log."""
        tracked = positions(self.db)
        head = self._head(max(tracked.values(), default=0))
        return [{"name": n, "position": p, "head": head, "lag": max(head - p, 0)} for n, p in tracked.items()]

    def _head(self, fallback: int) -> int:
        try:
            log = open_log(self.url)
        except Exception:  # a database built by replay_into has no event store: its head is what was replayed
            return fallback
        try:
            return int(log.recorder.max_notification_id() or 0)
        except Exception:
            return fallback
        finally:
            log.close()


def _paged(
    k: Known, keys: set[str], limit: int | None, after: str | None, rows: Callable[[Known], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """One page of per-district rows: the next ``limit`` of ``keys`` after ``after``, each computed from the
    facts of its territory only (a district's figures come from units below it), so a page costs the same
    however many districts the city has. Keys that carry no row (a city without items) are skipped."""
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    pending = sorted(key for key in keys if after is None or key > after)
    found: list[dict[str, Any]] = []
    size = limit if limit is not None else len(pending)
    while pending and len(found) < size:
        page, pending = pending[: size - len(found)], pending[size - len(found) :]
        part = k.within(set().union(*(k.subtree(u) | {u} for u in page)))
        found += [row for row in rows(part) if row["unit_id"] in page]
    return found


def _districts(k: Known, present: Any) -> list[str]:
    """Every known district, plus any other unit that carries figures (the city, for units under no district)."""
    districts = {u for u, rec in k.units.items() if rec.data["kind"] == "district"}
    return sorted(districts | set(present))
