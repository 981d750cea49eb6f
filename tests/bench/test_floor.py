"""The fixed stack's floor (框架下限) is measured beside the ledger's store and leaves it as it was."""

from __future__ import annotations

from pathlib import Path

from bench import floor
from domain.application import Ledger
from store.db import connect

TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    "postgres": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
}


def _stored(url: str) -> set[str]:
    """The store's tables (not SQLite's own: the raw baseline's AUTOINCREMENT adds one), and on SQLite the files
    of its directory."""
    sqlite = url.startswith("sqlite")
    conn = connect(url)
    try:
        tables = {r[0] for r in conn.execute(TABLES["sqlite" if sqlite else "postgres"]).fetchall()}
    finally:
        conn.close()
    files = {p.name for p in Path(url.removeprefix("sqlite:///")).parent.iterdir()} if sqlite else set()
    return tables | files


def test_the_bare_library_is_measured_beside_the_ledger_and_removed(ledger: Ledger, store_url: str) -> None:
    head = ledger.recorder.max_notification_id()
    before = _stored(store_url)
    rates = floor.floor_rates(store_url, commands=5, events=40, batch=20)
    assert set(rates) == {"command", "bulk import"}
    assert all(r["ours"] > 0 and r["raw"] > 0 and r["cpu_us_per_event"] > 0 for r in rates.values())
    assert _stored(store_url) == before  # the bare application's table or file is gone, nothing else was added
    assert ledger.recorder.max_notification_id() == head  # not one event in the ledger's log
