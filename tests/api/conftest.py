"""API fixtures: an in-process client on each store, tokens for every role, a small unit tree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import issue_token
from domain.application import Ledger
from domain.base import BUREAU_TZ
from domain.vocabulary import Post, Role, UnitKind

PAST = "2024-03-01T09:00:00+08:00"
OPENED = datetime(2020, 1, 1, tzinfo=BUREAU_TZ)


@pytest.fixture
def client(store_url: str, ledger: Ledger) -> Iterator[TestClient]:
    with TestClient(create_app(store_url, ledger=ledger)) as c:
        yield c


@pytest.fixture
def city(ledger: Ledger) -> dict[str, str]:
    """市 → 区 (d1, d2) → 镇 (t1 under d1); a leader and an officer in t1, an officer in d2."""
    ledger.register_unit("laiwu", "莱芜市", UnitKind.CITY, None, actor="setup", occurred_at=OPENED)
    ledger.register_unit("d1", "莱城区", UnitKind.DISTRICT, "laiwu", actor="setup", occurred_at=OPENED)
    ledger.register_unit("d2", "钢城区", UnitKind.DISTRICT, "laiwu", actor="setup", occurred_at=OPENED)
    ledger.register_unit("t1", "口镇", UnitKind.TOWNSHIP, "d1", actor="setup", occurred_at=OPENED)
    ledger.register_person(
        "张书记", "t1", Post.PRINCIPAL_LEADER, person_id="leader1", actor="setup", occurred_at=OPENED
    )
    ledger.register_person(
        "李执法", "t1", Post.ENFORCEMENT_OFFICER, person_id="officer1", actor="setup", occurred_at=OPENED
    )
    ledger.register_person(
        "王执法", "d2", Post.ENFORCEMENT_OFFICER, person_id="officer2", actor="setup", occurred_at=OPENED
    )
    return {"city": "laiwu", "d1": "d1", "d2": "d2", "t1": "t1"}


@pytest.fixture
def tokens(ledger: Ledger, city: dict[str, str]) -> dict[str, str]:
    """One city-wide token per role, subject ``<role>-1``."""
    return {role.value: issue_token(ledger, f"{role.value}-1", role, actor="setup") for role in Role}


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def petition_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "unit_id": "t1",
        "channel": "visit",
        "petitioner_count": 1,
        "petitioner": "赵大娘",
        "subject": "征地补偿未到位",
        "category": "compensation",
        "occurred_at": PAST,
        "note": "",
    }
    body.update(overrides)
    return body
