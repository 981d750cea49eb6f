"""Personal-data keys are stored in the same transaction as their record's first events."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import IntegrityError

from domain.application import Ledger
from domain.base import record_uuid
from domain.petitions import Petition
from domain.vocabulary import Channel, PetitionCategory
from store.db import connect
from tests.domain.world import CLERK, build, day


def key_subjects(url: str) -> set[str]:
    with connect(url) as conn:
        return {row[0] for row in conn.execute("SELECT subject FROM ledger_personal_keys").fetchall()}


def register(ledger: Ledger, pid: str, key: str | None = None) -> None:
    ledger.register_petition(
        "kouzhen",
        Channel.VISIT,
        1,
        "张三",
        "补偿",
        PetitionCategory.COMPENSATION,
        petition_id=pid,
        idempotency_key=key,
        actor=CLERK,
        occurred_at=day(1),
    )


def test_a_failed_save_leaves_no_key_and_a_retry_reads_back(store_url: str, ledger: Ledger) -> None:
    build(ledger)
    register(ledger, "XF-1", key="k-1")
    first = record_uuid(Petition.KIND, "XF-1").hex
    assert key_subjects(store_url) == {first}
    # The same idempotency key on another record rolls the whole save back: events and key alike.
    petition = Petition.register(
        "XF-2",
        "kouzhen",
        Channel.VISIT,
        1,
        "李四",
        "补偿",
        PetitionCategory.COMPENSATION,
        ledger.policy_in_force(day(1)),
        ledger.stamp(CLERK, day(1)),
    )
    with pytest.raises(IntegrityError):
        ledger.save(petition, idempotency_key="k-1")
    assert key_subjects(store_url) == {first}
    register(ledger, "XF-2")
    assert ledger.events_of("petition", "XF-2")[0].petitioner == "张三"
