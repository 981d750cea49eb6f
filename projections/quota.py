"""The quota ledger (用地指标台账, R19) and R4's deductions from districts (扣减), one row per district.

Both answers are per district (a city carries a row too when units under no district give it figures):
R4 takes land quota, consolidation funds and model-district points from the district of every major
case, at the amounts of the policy version in force when the case became major; R19 sets the quota
allocated to a unit against the land its territory used and R4's land deduction. The rows are built
here from the facts handed in (major cases, quota events), so the fold and the current view, which
keeps each district's rows for each year, build them the same way.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from domain.policy import PolicyVersion
from projections.history import Ev, Known, MajorCase, iso, number

#: R4's deductions from a district (扣减): answer field and the policy parameter that sets it per major case.
DEDUCTIONS = {
    "land_quota_mu": "quota_deduction_mu",
    "consolidation_funds_yuan": "funds_deduction_yuan",
    "model_district_points": "model_points_deduction",
}


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


def deduction_rows(k: Known, year: int, majors: Iterable[MajorCase]) -> list[dict[str, Any]]:
    """R4 per district: ``land_quota_mu``, ``consolidation_funds_yuan``, ``model_district_points``, ``items``."""
    items: dict[str, list[dict[str, Any]]] = defaultdict(list)
    cases: dict[str, Counter[int]] = defaultdict(Counter)  # per district, its major cases per policy version
    # Per policy version, the three amounts once: as exact decimals (for the sums) and, with the rule and the
    # version, as an item's JSON fields (a city-wide year is thousands of items).
    exact: dict[int, list[Decimal]] = {}
    fields: dict[int, dict[str, Any]] = {}
    for district, case, policy in _in_force(k, majors):
        version = policy.version
        if version not in exact:
            exact[version] = [Decimal(str(policy[name])) for name in DEDUCTIONS.values()]
            amounts = dict(zip(DEDUCTIONS, map(number, exact[version]), strict=True))
            fields[version] = {**amounts, "rule": "R4", "policy_version": version}
        item = {"unit_id": case.unit_id, "case_id": case.case_id, "occurred_at": iso(case.at), **fields[version]}
        item["evidence"] = case.evidence
        items[district].append(item)
        cases[district][version] += 1
    rows = []
    for district in districts(k, items):
        by_version = cases[district].items()
        sums = [sum((exact[v][n] * count for v, count in by_version), Decimal(0)) for n in range(len(DEDUCTIONS))]
        row: dict[str, Any] = {"unit_id": district, "name": _name(k, district), "year": year}
        row.update((key, number(total)) for key, total in zip(DEDUCTIONS, sums, strict=True))
        row["items"] = items.get(district, [])
        rows.append(row)
    return rows


def quota_rows(k: Known, year: int, majors: Iterable[MajorCase], events: dict[str, list[Ev]]) -> list[dict[str, Any]]:
    """R19 per district: ``allocated_mu − used_mu − deducted_mu = remaining_mu``; ``negative`` flags a deficit.
    ``events`` are the units' quota events of the year (:meth:`Known.quota_events`)."""
    # R4's land-quota deductions: only their sums and evidence (the items are the deductions' answer).
    deducted: dict[str, Decimal] = defaultdict(Decimal)
    evidence: dict[str, list[int]] = defaultdict(list)
    mu: dict[int, Decimal] = {}
    for district, case, policy in _in_force(k, majors):
        if policy.version not in mu:
            mu[policy.version] = Decimal(str(policy[DEDUCTIONS["land_quota_mu"]]))
        deducted[district] += mu[policy.version]
        evidence[district] += case.evidence
    by_uuid = {u.uuid: u.record_id for u in k.units.values()}
    allocated: dict[str, Decimal] = defaultdict(Decimal)
    used: dict[str, Decimal] = defaultdict(Decimal)
    for uuid, evs in events.items():
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
                home = k.district_of(unit)
                if home:
                    used[home] += Decimal(e.data["mu"])
                    evidence[home].append(e.position)
    rows = []
    for district in districts(k, allocated):
        deducted_mu = deducted.get(district, Decimal(0))
        remaining = allocated[district] - used[district] - deducted_mu
        rows.append(
            {
                "unit_id": district,
                "name": _name(k, district),
                "year": year,
                "allocated_mu": number(allocated[district]),
                "used_mu": number(used[district]),
                "deducted_mu": number(deducted_mu),
                "remaining_mu": number(remaining),
                "negative": remaining < 0,
                "evidence": sorted(evidence[district]),
            }
        )
    return rows
