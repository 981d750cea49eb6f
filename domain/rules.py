"""Derived facts (派生事实): computed here once, used by the records and by the projections alike."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from domain.policy import PolicyVersion


def is_collective(petitioner_count: int, policy: PolicyVersion) -> bool:
    """A petition of ``collective_threshold`` or more petitioners is collective (集体访)."""
    return petitioner_count >= policy.days("collective_threshold")


def is_initial(repeat_of: str | None) -> bool:
    """A first letter or visit on a matter (初信初访) is one that repeats no earlier petition (R11, R16)."""
    return repeat_of is None


#: The flags that make a petition a key one (重点信访件, R9): skip-level, repeat, collective, assigned from above.
KEY_FLAGS = frozenset({"skip_level", "repeat", "collective", "assigned"})


def key_flags(named: dict[str, bool], owner_id: str | None) -> list[str]:
    """The R9 flags of a petition whose board flags are ``named``: ``key`` (重点信访件) when any of
    :data:`KEY_FLAGS` is on, and ``unowned`` (未包案) when it is key and no leader has taken ownership (领导包案):
    R9 registers every key petition with a leader owning it, so the board shows those still without one."""
    key = any(named.get(flag) for flag in KEY_FLAGS)
    return ["key", "unowned"] if key and owner_id is None else ["key"] if key else []


def is_major_by_size(area_mu: Decimal | None, value_yuan: Decimal | None, policy: PolicyVersion) -> bool:
    """A case at or above either threshold is major (重大案件) without anyone deciding so (R4)."""
    return (area_mu is not None and area_mu >= Decimal(policy["major_case_area_mu"])) or (
        value_yuan is not None and value_yuan >= Decimal(policy["major_case_value_yuan"])
    )


def acceptance_deadline(registered_at: datetime, policy: PolicyVersion) -> datetime:
    """Decide whether to accept within ``acceptance_days`` (受理期限)."""
    return registered_at + timedelta(days=policy.days("acceptance_days"))


def handling_days(policy: PolicyVersion, extension_days: int = 0) -> int:
    """Days to handle a petition: ``handling_days``, plus the one extension if granted (办理期限)."""
    return policy.days("handling_days") + extension_days


def handling_deadline(registered_at: datetime, policy: PolicyVersion, extension_days: int = 0) -> datetime:
    """When a petition registered at ``registered_at`` must be handled by."""
    return registered_at + timedelta(days=handling_days(policy, extension_days))


def filing_days(policy: PolicyVersion) -> int:
    """Days after a clue is reported before an unfiled case counts as 有案不查 (``clue_filing_days``)."""
    return policy.days("clue_filing_days")
