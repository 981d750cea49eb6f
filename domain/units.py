"""Units (单位): governments and bureau offices, in the tree of 属地管理, with their land quota."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Self

from domain.base import Record, Stamp, check_text, local_year
from domain.errors import InvalidValue, RuleViolation
from domain.vocabulary import UnitKind

#: Which kinds of unit may sit directly under which (垂直管理): the bureau side mirrors the government side.
ALLOWED_PARENTS: dict[UnitKind, frozenset[UnitKind | None]] = {
    UnitKind.CITY: frozenset({None}),
    UnitKind.DISTRICT: frozenset({UnitKind.CITY}),
    UnitKind.TOWNSHIP: frozenset({UnitKind.DISTRICT}),
    UnitKind.CITY_BUREAU: frozenset({UnitKind.CITY}),
    UnitKind.BRANCH_BUREAU: frozenset({UnitKind.DISTRICT, UnitKind.CITY_BUREAU}),
    UnitKind.LAND_STATION: frozenset({UnitKind.TOWNSHIP, UnitKind.BRANCH_BUREAU}),
}
#: The kinds of unit that are governments (政府): a bureau office answers to the one it lies in.
GOVERNMENTS = frozenset({UnitKind.CITY, UnitKind.DISTRICT, UnitKind.TOWNSHIP})
#: Each kind's level (级别), the city's first: a bureau office stands at the level of the government it mirrors.
LEVELS: dict[UnitKind, int] = {
    UnitKind.CITY: 0,
    UnitKind.CITY_BUREAU: 0,
    UnitKind.DISTRICT: 1,
    UnitKind.BRANCH_BUREAU: 1,
    UnitKind.TOWNSHIP: 2,
    UnitKind.LAND_STATION: 2,
}
#: The government a bureau office under another office may be registered as covering (辖区): a branch bureau under the
#: city bureau covers a district, a land station under a branch bureau a township. An office under a government
#: covers that government's area.
JURISDICTIONS: dict[UnitKind, UnitKind] = {
    UnitKind.BRANCH_BUREAU: UnitKind.DISTRICT,
    UnitKind.LAND_STATION: UnitKind.TOWNSHIP,
}
#: Land quota (用地指标) is allocated to the city and its districts (R19) and used by districts and townships.
QUOTA_HOLDERS = frozenset({UnitKind.CITY, UnitKind.DISTRICT})
QUOTA_USERS = frozenset({UnitKind.DISTRICT, UnitKind.TOWNSHIP})
MAX_MU = Decimal(10) ** 9


def is_above(upper: Sequence[Unit], lower: Sequence[Unit]) -> bool:
    """Whether the unit ``upper`` stands above ``lower`` (上级), each given as its chain of units, itself first: an
    ancestor of it, or a bureau office of a higher level inside whose government ``lower`` lies (the city bureau
    above a district and its townships; a branch bureau under a district above that district's townships)."""
    if upper[0].record_id in {u.record_id for u in lower[1:]}:
        return True
    if upper[0].kind in GOVERNMENTS:
        return False
    government = next((u.record_id for u in upper if u.kind in GOVERNMENTS), None)
    inside = government in {u.record_id for u in lower}
    return inside and LEVELS[upper[0].kind] < LEVELS[lower[0].kind]


def _check_jurisdiction(kind: UnitKind, parent: Sequence[Unit], jurisdiction: Sequence[Unit]) -> None:
    """垂直管理: a branch bureau under the city bureau covers one of its city's districts, a land station under a
    branch bureau one of the townships of the district the branch covers; an office under a government covers that
    government's area already and names none."""
    wanted = JURISDICTIONS.get(kind)
    if wanted is None or not parent or parent[0].kind in GOVERNMENTS:
        raise RuleViolation(
            f"only a branch bureau or land station under a bureau office names the area it covers (辖区); a {kind}"
            f" under {parent[0].record_id if parent else 'nothing'} covers its parent's",
            rule="R15",
        )
    if jurisdiction[0].kind != wanted:
        raise RuleViolation(
            f"a {kind} covers a {wanted}, not the {jurisdiction[0].kind} {jurisdiction[0].record_id}", rule="R15"
        )
    government = next((u.record_id for u in parent if u.kind in GOVERNMENTS), None)
    if government not in {u.record_id for u in jurisdiction[1:]}:
        raise RuleViolation(
            f"{jurisdiction[0].record_id} does not lie within {government}, the area {parent[0].record_id} covers",
            rule="R15",
        )


def check_mu(mu: Decimal, field: str = "mu") -> Decimal:
    """An area in mu (亩) is positive and bounded."""
    if not isinstance(mu, Decimal) or not mu.is_finite() or mu <= 0 or mu > MAX_MU:
        raise InvalidValue(f"{field} must be a positive number of mu, at most {MAX_MU}", field)
    return mu


class Unit(Record):
    """A unit (单位): city, district, township, city bureau, branch bureau or land station."""

    KIND: ClassVar[str] = "unit"

    if TYPE_CHECKING:  # state set by the events' apply(); annotations only for type checkers
        name: str
        kind: UnitKind
        parent_id: str | None
        jurisdiction_id: str | None
        allocated: dict[int, Decimal]
        used: dict[int, Decimal]

    class Registered(Record.Created):
        name: str
        kind: str
        parent_id: str | None
        #: The government whose area a bureau office under another office covers (辖区); registrations made
        #: before offices named one have none.
        jurisdiction_id: str | None = None

        def apply(self, unit: Any) -> None:
            super().apply(unit)
            unit.name = self.name
            unit.kind = UnitKind(self.kind)
            unit.parent_id = self.parent_id
            unit.jurisdiction_id = self.jurisdiction_id
            unit.allocated = {}
            unit.used = {}

    @property
    def above(self) -> list[str]:
        """The units this one answers to directly, nearest first: the government whose area it covers, when it is
        registered as covering one, then its parent. Its chain (属地管理) runs up both."""
        return [u for u in (self.jurisdiction_id, self.parent_id) if u is not None]

    class QuotaAllocated(Record.Event):
        """Land-use quota allocated for a year (下达用地指标)."""

        year: int
        mu: Decimal

        def apply(self, unit: Any) -> None:
            unit.allocated[self.year] = unit.allocated.get(self.year, Decimal(0)) + self.mu

    class LandApproved(Record.Event):
        """Land approved for a project, used from the quota of the year it happened (批准用地)."""

        year: int
        mu: Decimal
        project: str

        def apply(self, unit: Any) -> None:
            unit.used[self.year] = unit.used.get(self.year, Decimal(0)) + self.mu

    @classmethod
    def register(
        cls,
        unit_id: str,
        name: str,
        kind: UnitKind,
        parent: Sequence[Unit],
        stamp: Stamp,
        jurisdiction: Sequence[Unit] = (),
    ) -> Self:
        """A unit under its ``parent`` (given as its chain, itself first; empty for the city); a bureau office under
        another office may name the government whose area it covers (``jurisdiction``, its chain likewise)."""
        check_text(name, "name", limit=200)
        parent_kind = parent[0].kind if parent else None
        if parent_kind not in ALLOWED_PARENTS[kind]:
            allowed = ", ".join(sorted(k or "none" for k in ALLOWED_PARENTS[kind]))
            raise RuleViolation(
                f"a {kind} cannot sit under a {parent_kind or 'missing parent'} (allowed: {allowed})", rule="R15"
            )
        if jurisdiction:
            _check_jurisdiction(kind, parent, jurisdiction)
        return cls._open(
            cls.Registered,
            unit_id,
            stamp,
            name=name,
            kind=str(kind),
            parent_id=parent[0].record_id if parent else None,
            jurisdiction_id=jurisdiction[0].record_id if jurisdiction else None,
        )

    def allocate_quota(self, year: int, mu: Decimal, stamp: Stamp) -> None:
        if self.kind not in QUOTA_HOLDERS:
            raise RuleViolation(f"quota is allocated to the city and districts, not to a {self.kind}", rule="R19")
        if not 2000 <= year <= local_year(stamp.occurred_at) + 1:
            raise InvalidValue(f"year {year} is not a year the quota can be allocated for", "year")
        self._record(self.QuotaAllocated, stamp, year=year, mu=check_mu(mu))

    def approve_land(self, mu: Decimal, project: str, stamp: Stamp) -> None:
        if self.kind not in QUOTA_USERS:
            raise RuleViolation(f"land is approved for districts and townships, not for a {self.kind}", rule="R19")
        check_text(project, "project", limit=200)
        self._record(self.LandApproved, stamp, year=local_year(stamp.occurred_at), mu=check_mu(mu), project=project)
