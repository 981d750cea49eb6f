"""Shared fixtures: every behavioural test runs on both stores, each test on a fresh, empty one.

SQLite gets a file in the test's temporary directory; PostgreSQL (LEDGER_TEST_PG_URL, default the
local server's ``test`` database) gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from domain.application import Ledger
from store.ledger import init_store, open_ledger

PG_URL = os.environ.get("LEDGER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
STORES = ["sqlite", "postgres"]


@pytest.fixture(autouse=True)
def _keys_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Key files of a test live in its own directory, never in the working tree."""
    monkeypatch.setenv("LEDGER_KEY_FILE", str(tmp_path / "keys" / "ledger.key"))
    monkeypatch.setenv("LEDGER_SIGNING_KEY_FILE", str(tmp_path / "keys" / "ledger-signing.key"))
    monkeypatch.delenv("LEDGER_CIPHER_KEY", raising=False)


def fresh_store_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, initialised store of the given kind; cleaned up afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        init_store(url)
        yield url
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = f"{PG_URL}?schema={schema}"
    init_store(url)
    try:
        yield url
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_store_url(request.param, tmp_path)


@pytest.fixture
def ledger(store_url: str) -> Iterator[Ledger]:
    yield from ledger_on(store_url)


def ledger_on(url: str) -> Iterator[Ledger]:
    """A ledger on the store at ``url``, closed afterwards (for fixtures that need a second one)."""
    app = open_ledger(url)
    try:
        yield app
    finally:
        app.close()
