"""The quota ledger (用地指标台账, R19) and R4's deductions from districts (扣减), one row per district.

Both answers are per district (a city carries a row too when units under no district give it figures):
R4 takes land quota, consolidation funds and model-district points from the district of every major
case, at the amounts of the policy version in force when the case became major; R19 sets the quota
allocated to a unit against the land its territory used and R4's land deduction. The rows are built
here from the facts handed in (major cases, quota events), so the fold and the current view, which
keeps each district's rows for each year, build them the same way.

The view's rows also answer the year as of a past moment (as known now): beside each row it keeps what
dates its figures (``_running``: a ledger's entries by time with their running sums; ``_at``: when each
R4 item's case became major), so a past moment's row is the stored one cut at that moment
(:func:`at_moment`) rather than a fold of the year's major cases and quota events.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, NamedTuple

from domain.policy import PolicyVersion
from projections.history import Ev, Known, MajorCase, iso, number

#: R4's deductions from a district (扣减): answer field and the policy parameter that sets it per major case.
DEDUCTIONS = {
    "land_quota_mu": "quota_deduction_mu",
    "consolidation_funds_yuan": "funds_deduction_yuan",
    "model_district_points": "model_points_deduction",
}
#: What a quota ledger entry does to its unit's row, in the order of the stored running sums.
ENTRY_KINDS = ("allocated", "used", "deducted")


class Entry(NamedTuple):
    """One fact on a unit's quota ledger (指标台账): quota allocated to it (下达), land its territory used (用地), or
    quota R4 deducted for a major case (扣减); when it happened, its evidence and (a deduction) the policy version
    that set its amount."""

    at: int
    kind: str
    mu: Decimal
    evidence: list[int]
    version: int | None = None


class Totals(NamedTuple):
    """A unit's ledger summed up to a moment: mu per entry kind, the evidence, whether it was given quota by then,
    the policy versions of its deductions (R20)."""

    allocated: Decimal
    used: Decimal
    deducted: Decimal
    evidence: list[int]
    given: bool
    versions: list[int]

    @property
    def figures(self) -> bool:
        """Whether the unit carries a row of its own: given quota, or R4 deducted from it (the city, for a major
        case at a unit under no district)."""
        return self.given or self.deducted > 0


NOTHING = Totals(Decimal(0), Decimal(0), Decimal(0), [], False, [])


def districts(k: Known, present: Iterable[str]) -> list[str]:
    """Every known district, plus any other unit that carries figures (the city, for units under no district)."""
    found = {u for u, rec in k.units.items() if rec.data["kind"] == "district"}
    return sorted(found.union(present))


def _name(k: Known, unit: str) -> str | None:
    return k.units[unit].data["name"] if unit in k.units else None


def _in_force(k: Known, majors: Iterable[MajorCase]) -> Iterator[tuple[str, MajorCase, PolicyVersion]]:
    """Each major case with its district (cases under none are no district's) and the policy in force when
    it became major."""
    for case in majors:
        district = k.district_of(case.unit_id)
        if district is not None:
            yield district, case, k.policy.at(case.at)


# --- R4: deductions from districts ----------------------------------------------------------------

#: A district's R4 items, each with the business time its case became major (which dates it).
Items = dict[str, list[tuple[int, dict[str, Any]]]]


def deduction_items(k: Known, majors: Iterable[MajorCase]) -> Items:
    """Per district, an R4 item for each of its major cases (in the order handed in), with its time."""
    items: Items = defaultdict(list)
    # Per policy version, the item's amounts, rule and version once (a city-wide year is thousands of items).
    fields: dict[int, dict[str, Any]] = {}
    for district, case, policy in _in_force(k, majors):
        version = policy.version
        if version not in fields:
            amounts = {key: number(Decimal(str(policy[name]))) for key, name in DEDUCTIONS.items()}
            fields[version] = {**amounts, "rule": "R4", "policy_version": version}
        item = {"unit_id": case.unit_id, "case_id": case.case_id, "occurred_at": iso(case.at), **fields[version]}
        item["evidence"] = case.evidence
        items[district].append((case.at, item))
    return items


def deduction_rows(k: Known, year: int, majors: Iterable[MajorCase]) -> list[dict[str, Any]]:
    """R4 per district: ``land_quota_mu``, ``consolidation_funds_yuan``, ``model_district_points``, ``items``."""
    return _deduction_rows(k, year, deduction_items(k, majors))


def _deduction_rows(k: Known, year: int, items: Items) -> list[dict[str, Any]]:
    return [_deduction_row(k, year, district, items.get(district, [])) for district in districts(k, items)]


def _deduction_row(k: Known, year: int, district: str, items: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """A district's R4 row from its items: each sum is, per policy version, its exact (decimal) amount times the
    number of the district's cases that became major under it."""
    policies: dict[int, PolicyVersion] = {}
    cases: Counter[int] = Counter()
    for at, _ in items:
        policy = k.policy.at(at)
        policies[policy.version] = policy
        cases[policy.version] += 1
    row: dict[str, Any] = {"unit_id": district, "name": _name(k, district), "year": year}
    for key, name in DEDUCTIONS.items():
        total = sum((Decimal(str(policies[v][name])) * n for v, n in cases.items()), Decimal(0))
        row[key] = number(total)
    row["items"] = [item for _, item in items]
    return row


# --- R19: the quota ledger ------------------------------------------------------------------------


def entries(k: Known, year: int, majors: Iterable[MajorCase], events: dict[str, list[Ev]]) -> dict[str, list[Entry]]:
    """Per unit, the entries its ledger row sums: R4's land-quota deductions for the major cases of a district, the
    quota allocated to a unit, the land used in a district's territory. ``events`` are the units' quota events of
    the year (:meth:`Known.quota_events`)."""
    found: dict[str, list[Entry]] = defaultdict(list)
    mu: dict[int, Decimal] = {}
    for district, case, policy in _in_force(k, majors):
        if policy.version not in mu:
            mu[policy.version] = Decimal(str(policy[DEDUCTIONS["land_quota_mu"]]))
        found[district].append(Entry(case.at, "deducted", mu[policy.version], case.evidence, policy.version))
    by_uuid = {u.uuid: u.record_id for u in k.units.values()}
    for uuid, evs in events.items():
        unit = by_uuid.get(uuid)
        if unit is None:
            continue
        for e in evs:
            if int(e.data["year"]) != year:
                continue
            if e.type == "allocated":
                found[unit].append(Entry(e.occurred_at, "allocated", Decimal(e.data["mu"]), [e.position]))
            elif e.type == "approved":
                home = k.district_of(unit)
                if home:
                    found[home].append(Entry(e.occurred_at, "used", Decimal(e.data["mu"]), [e.position]))
    return found


def totals(entries: list[Entry]) -> Totals:
    """A unit's row figures from all its entries."""
    sums = dict.fromkeys(ENTRY_KINDS, Decimal(0))
    evidence: list[int] = []
    for e in entries:
        sums[e.kind] += e.mu
        evidence += e.evidence
    given = any(e.kind == "allocated" for e in entries)
    versions = sorted({e.version for e in entries if e.version is not None})
    return Totals(sums["allocated"], sums["used"], sums["deducted"], sorted(evidence), given, versions)


def quota_rows(k: Known, year: int, majors: Iterable[MajorCase], events: dict[str, list[Ev]]) -> list[dict[str, Any]]:
    """R19 per district: ``allocated_mu − used_mu − deducted_mu = remaining_mu``; ``negative`` flags a deficit.
    ``events`` are the units' quota events of the year (:meth:`Known.quota_events`). A district has a row, and any
    other unit given quota (its territory's use and R4's deductions go to its district) or whose quota R4 deducted
    (the city's, for a major case under no district)."""
    return _ledger_rows(k, year, entries(k, year, majors, events))


def _ledger_rows(k: Known, year: int, found: dict[str, list[Entry]]) -> list[dict[str, Any]]:
    sums = {unit: totals(unit_entries) for unit, unit_entries in found.items()}
    present = [unit for unit, t in sums.items() if t.figures]
    return [_ledger_row(k, year, unit, sums.get(unit, NOTHING)) for unit in districts(k, present)]


def _ledger_row(k: Known, year: int, unit: str, t: Totals) -> dict[str, Any]:
    remaining = t.allocated - t.used - t.deducted
    return {
        "unit_id": unit,
        "name": _name(k, unit),
        "year": year,
        "allocated_mu": number(t.allocated),
        "used_mu": number(t.used),
        "deducted_mu": number(t.deducted),
        "remaining_mu": number(remaining),
        "negative": remaining < 0,
        "evidence": list(t.evidence),  # NOTHING's lists are shared
        "policy_versions": list(t.versions),  # of the policy that set each deduction (R20)
    }


# --- the current view's rows ----------------------------------------------------------------------


def stored_rows(
    k: Known, year: int, majors: list[MajorCase], events: dict[str, list[Ev]]
) -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """The view's rows of a year, per kind (``quota``, ``deductions``): each answer's row with what dates its figures
    (``_running`` or ``_at``, kept beside it), which :func:`at_moment` reads merged into the row to cut it."""
    found = entries(k, year, majors, events)
    items = deduction_items(k, majors)
    return {
        "quota": [(row, {"_running": _running(found.get(row["unit_id"], []))}) for row in _ledger_rows(k, year, found)],
        "deductions": [
            (row, {"_at": [at for at, _ in items.get(row["unit_id"], [])]}) for row in _deduction_rows(k, year, items)
        ],
    }


def _running(entries: list[Entry]) -> dict[str, Any]:
    """A unit's entries by time with their running sums (decimal strings, exact), so a past moment's figures are a
    bisection away."""
    sums = dict.fromkeys(ENTRY_KINDS, Decimal(0))
    at: list[int] = []
    running: list[list[str]] = []
    evidence: list[list[int]] = []
    versions: list[int | None] = []
    given = None
    for e in sorted(entries, key=lambda e: e.at):
        sums[e.kind] += e.mu
        at.append(e.at)
        running.append([str(sums[kind]) for kind in ENTRY_KINDS])
        evidence.append(e.evidence)
        versions.append(e.version)
        if e.kind == "allocated" and given is None:
            given = e.at
    return {"at": at, "sums": running, "evidence": evidence, "versions": versions, "given": given}


def at_moment(k: Known, kind: str, row: dict[str, Any], as_of: int, district: bool) -> dict[str, Any] | None:
    """A stored row (of ``kind`` ``quota`` or ``deductions``) as it stood at ``as_of`` (as known now): the entries or
    items dated by then. ``None`` for a unit that is no ``district`` and had no figures by then (it has no row)."""
    year, unit = row["year"], row["unit_id"]
    if kind == "deductions":
        items = [(at, item) for at, item in zip(row["_at"], row["items"], strict=True) if at <= as_of]
        return _deduction_row(k, year, unit, items) if items or district else None
    running = row["_running"]
    n = bisect.bisect_right(running["at"], as_of)
    if n == 0:
        t = NOTHING
    else:
        allocated, used, deducted = (Decimal(s) for s in running["sums"][n - 1])
        evidence = sorted(itertools.chain.from_iterable(running["evidence"][:n]))
        given = running["given"] is not None and running["given"] <= as_of
        versions = sorted({v for v in running["versions"][:n] if v is not None})
        t = Totals(allocated, used, deducted, evidence, given, versions)
    return _ledger_row(k, year, unit, t) if t.figures or district else None
