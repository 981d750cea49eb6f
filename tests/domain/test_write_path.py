"""The write path's shortcuts never serve stale state: what another process writes is seen at once.

A ledger keeps the reference records it reads for commands (units, the policy) and the ids of
records it knows exist; it checks at commit that the policy a command used is still the newest.
Each test writes with a second ledger (its own connection pool and caches, as another process has)
or with a real second process, then acts with the first.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from domain.application import REFERENCE_KINDS, Ledger, StaleReference
from domain.base import Record
from domain.errors import RecordExists, RecordNotFound
from domain.petitions import Petition
from domain.policy import Policy
from domain.units import Unit
from domain.vocabulary import Channel, PetitionCategory, UnitKind
from tests.conftest import ledger_on
from tests.domain.world import build, day, petition

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def other(store_url: str) -> Iterator[Ledger]:
    """A second ledger on the same store (another process's view of it)."""
    yield from ledger_on(store_url)


def amend_in_another_process(url: str, handling_days: int) -> None:
    script = textwrap.dedent(
        f"""
        from datetime import datetime
        from domain.base import BUREAU_TZ
        from store.ledger import open_ledger
        ledger = open_ledger({url!r})
        ledger.amend_policy(datetime(2025, 3, 6, tzinfo=BUREAU_TZ), {{"handling_days": {handling_days}}},
                            actor="admin", occurred_at=datetime(2025, 3, 5, 9, tzinfo=BUREAU_TZ))
        ledger.close()
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)


def test_a_policy_amended_by_another_process_applies_to_the_next_command(
    ledger: Ledger, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(ledger)
    first = ledger.get(Petition, petition(ledger, "XF-1", at=7))
    assert first.handling_deadline == day(7) + timedelta(days=ledger.policy_in_force(day(7)).days("handling_days"))
    amend_in_another_process(store_url, 33)
    refused: list[list[UUID]] = []
    record = ledger._record

    def spy(processing_event: Any) -> Any:
        try:
            return record(processing_event)
        except StaleReference as e:
            refused.append(e.aggregate_ids)
            raise

    monkeypatch.setattr(ledger, "_record", spy)
    # The policy this ledger kept is one version behind: the commit notices, the command is done again.
    later = ledger.get(Petition, petition(ledger, "XF-2", at=7))
    assert later.handling_deadline == day(7) + timedelta(days=33)
    assert refused == [[ledger.policy().id]]
    assert ledger.policy().version == 2
    assert ledger.policy_in_force(day(7)).days("handling_days") == 33


def test_public_policy_reads_see_another_ledgers_amendment(ledger: Ledger, other: Ledger) -> None:
    build(ledger)
    assert ledger.policy().version == 1
    other.amend_policy(day(6), {"handling_days": 21}, actor="admin", occurred_at=day(5))
    assert ledger.policy().version == 2
    assert [a.version for a in ledger.policy_versions()] == [1, 2]


def test_a_kept_reference_read_earlier_is_not_changed_by_a_newer_one(ledger: Ledger, other: Ledger) -> None:
    build(ledger)
    before = ledger.policy()
    other.amend_policy(day(6), {"handling_days": 21}, actor="admin", occurred_at=day(5))
    after = ledger.policy()
    assert (before.version, after.version) == (1, 2)  # the older object was copied, not updated in place


def test_units_read_for_commands_follow_another_ledgers_writes(ledger: Ledger, other: Ledger) -> None:
    build(ledger)
    assert ledger.ancestors("kouzhen")[0].version == 1
    other.approve_land("kouzhen", Decimal("1.5"), "工业园", actor="admin", occurred_at=day(2))
    assert ledger.ancestors("kouzhen")[0].version == 2


def test_a_units_lineage_is_read_once_and_an_unknown_unit_is_not_kept(
    ledger: Ledger, other: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """属地管理: territory checks read a unit's ancestors once per ledger (a parent never changes); a unit not yet
    registered raises each time, and is found once another ledger registers it."""
    build(ledger)
    reads: list[str] = []
    ancestors = ledger.ancestors
    monkeypatch.setattr(ledger, "ancestors", lambda unit_id: reads.append(unit_id) or ancestors(unit_id))
    assert ledger.lineage("kouzhen") == tuple(u.record_id for u in ancestors("kouzhen"))
    assert len(ledger.lineage("kouzhen")) > 1 and reads == ["kouzhen"]
    with pytest.raises(RecordNotFound):
        ledger.lineage("dawangzhuang")
    other.register_unit(
        "dawangzhuang", "大王庄土管所", UnitKind.LAND_STATION, "kouzhen", actor="admin", occurred_at=day(2)
    )
    assert ledger.lineage("dawangzhuang") == ("dawangzhuang", *ledger.lineage("kouzhen"))


def test_a_record_another_ledger_creates_is_found_after_it_was_missing(ledger: Ledger, other: Ledger) -> None:
    build(ledger)
    assert not ledger.exists(Unit, "dawangzhuang")
    with pytest.raises(RecordNotFound):
        petition_in(ledger, "dawangzhuang", "XF-9")
    other.register_unit("dawangzhuang", "大王庄镇", UnitKind.TOWNSHIP, "laicheng", actor="admin", occurred_at=day(0))
    assert ledger.exists(Unit, "dawangzhuang")
    assert petition_in(ledger, "dawangzhuang", "XF-9") == "XF-9"


def test_a_record_created_twice_is_refused_from_either_ledger(ledger: Ledger, other: Ledger) -> None:
    build(ledger)
    petition(ledger, "XF-1")
    with pytest.raises(RecordExists):
        petition(other, "XF-1")
    with pytest.raises(RecordExists):
        petition(ledger, "XF-1")


def test_a_stale_reference_refuses_the_whole_save(ledger: Ledger, other: Ledger) -> None:
    build(ledger)
    policy_id = ledger.policy().id
    other.amend_policy(day(6), {"handling_days": 21}, actor="admin", occurred_at=day(5))
    head = ledger.recorder.max_notification_id()
    unit = ledger.get(Unit, "kouzhen")
    unit.approve_land(Decimal("1"), "工业园", ledger.stamp("admin", day(2)))
    with pytest.raises(StaleReference) as info:
        ledger.save(unit, reference_versions={policy_id: 1})
    assert info.value.aggregate_ids == [policy_id]
    assert ledger.recorder.max_notification_id() == head
    assert ledger.get(Unit, "kouzhen").version == 1


def test_reference_kinds_hold_no_personal_data() -> None:
    # Kept objects outlive an erasure in memory: only kinds without personal fields may be kept.
    def event_classes(cls: type) -> list[type]:
        return [v for klass in cls.__mro__ for v in vars(klass).values() if isinstance(v, type)]

    assert set(REFERENCE_KINDS) <= {Unit, Policy}
    for kind in REFERENCE_KINDS:
        assert issubclass(kind, Record)
        assert not [c for c in event_classes(kind) if getattr(c, "personal_fields", ())], kind
    assert getattr(Petition.Registered, "personal_fields", ())  # the check above can see them


def petition_in(ledger: Ledger, unit_id: str, pid: str) -> str:
    return ledger.register_petition(
        unit_id,
        Channel.VISIT,
        1,
        "张三",
        "补偿",
        PetitionCategory.COMPENSATION,
        petition_id=pid,
        actor="c",
        occurred_at=day(1),
    ).id
