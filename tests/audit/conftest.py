"""Audit fixtures: a signing key, a ledger with some history, and raw access for tampering."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from audit.checkpoints import ensure_signing_key
from audit.db import AuditDB
from domain.application import Ledger
from domain.vocabulary import Channel, PetitionCategory, UnitKind


@pytest.fixture
def signing_key() -> Path:
    """The signing key file (its path comes from LEDGER_SIGNING_KEY_FILE, set per test)."""
    return ensure_signing_key()


def record_history(ledger: Ledger, units: int = 6) -> list[int]:
    """A city, some districts and a petition: positions of the events written."""
    positions = [ledger.register_unit("laiwu", "莱芜市", UnitKind.CITY, None, actor="admin").position]
    for i in range(units):
        positions.append(ledger.register_unit(f"d{i}", f"区{i}", UnitKind.DISTRICT, "laiwu", actor="admin").position)
    positions.append(
        ledger.register_petition(
            "d0", Channel.VISIT, 1, "张三", "征地补偿", PetitionCategory.COMPENSATION, petition_id="x-1", actor="clerk"
        ).position
    )
    positions.append(ledger.allocate_quota("d1", 2026, Decimal(100), actor="admin").position)
    return positions


@pytest.fixture
def tamper(store_url: str) -> Iterator[AuditDB]:
    """A connection with the append-only triggers out of the way, as an intruder with DB access has."""
    db = AuditDB(store_url)
    if db.engine == "sqlite":
        for (name,) in db.query("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            db.execute(f'DROP TRIGGER "{name}"')
    else:
        db.execute("SET session_replication_role = replica")  # the test user is a superuser
    try:
        yield db
    finally:
        db.close()
