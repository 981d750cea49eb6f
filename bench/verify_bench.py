"""Verification and chain-writing cost (校验与链写入开销), measured in one run.

Prints, per store:
- verify rate (events/s) vs the raw rate of reading the same rows and SHA-256-hashing each
  state, and their ratio (goal: verify >= 50% of raw);
- the write rate of the chained recorder vs the library's stock recorder on the same events,
  and the ratio (the chain's write cost).

Usage: PYTHONPATH=. python bench/verify_bench.py [--events N] [--batch B] [--workers W] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteFactory
from eventsourcing.utils import Environment

from audit.checkpoints import ensure_signing_key, take_checkpoint
from audit.db import AuditDB
from audit.verify import verify
from store.config import APPLICATION_NAME, create_schema, persistence_environment
from store.recorders import KEYS_TABLE, LedgerPostgresFactory, LedgerSQLiteFactory

TOPIC = "domain.petitions:Petition.Registered"
ROUNDS = 5


def synthetic_events(n: int) -> list[StoredEvent]:
    """Events shaped like the ledger's (a ~350-byte JSON state), one per record."""
    body = (
        b'{"actor":"clerk-0001","occurred_at":{"_type_":"datetime_iso","_data_":"2026-03-01T09:00:00+08:00"},'
        b'"note":"","record_id":"x-%06d","unit_id":"d1","channel":"visit","petitioner_count":1,'
        b'"petitioner":"sealed:v1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=","subject":"land compensation",'
        b'"timestamp":{"_type_":"datetime_iso","_data_":"2026-03-01T09:00:01+08:00"}}'
    )
    return [StoredEvent(uuid.uuid4(), 1, TOPIC, body % i) for i in range(n)]


def _env(url: str) -> Environment:
    env = persistence_environment(url)
    env["CREATE_TABLE"] = "y"
    return Environment(APPLICATION_NAME, env)


def write_rate(factory_cls: type, url: str, events: list[StoredEvent], batch: int) -> float:
    factory = factory_cls(_env(url))
    try:
        recorder = factory.application_recorder()
        start = time.perf_counter()
        for i in range(0, len(events), batch):
            recorder.insert_events(events[i : i + batch])
        return len(events) / (time.perf_counter() - start)
    finally:
        factory.close()


def read_joined(url: str) -> int:
    """Read the rows verify reads (events joined with their chain rows) and SHA-256 each state."""
    with AuditDB(url) as db:
        n = 0
        for rows in db.chained_batches():
            for row in rows:
                hashlib.sha256(row[4]).digest()
            n += len(rows)
        return n


def read_events(url: str) -> int:
    """The events table alone, read and SHA-256 each state (for reference)."""
    with AuditDB(url) as db:
        n = 0
        for e in db.events():
            hashlib.sha256(e.state).digest()
            n += 1
        return n


def best_rate(run: Callable[[], int], rounds: int = ROUNDS) -> float:
    """Best of several rounds (the first warms the caches; others on the machine add noise)."""
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        n = run()
        best = max(best, n / (time.perf_counter() - start))
    return best


def bench(name: str, chained_url: str, stock_url: str, n: int, batch: int, workers: int) -> None:
    events = synthetic_events(n)
    stock_factory = SQLiteFactory if chained_url.startswith("sqlite") else PostgresFactory
    chained_factory = LedgerSQLiteFactory if chained_url.startswith("sqlite") else LedgerPostgresFactory
    create_schema(chained_url)
    chained = write_rate(chained_factory, chained_url, events, batch)
    stock = write_rate(stock_factory, stock_url, synthetic_events(n), batch)
    with AuditDB(chained_url) as db:  # each sealed petition's data key, as the ledger stores it with its event
        db.executemany(
            f"INSERT INTO {KEYS_TABLE} (subject, wrapped) VALUES (?, ?)",
            [(uuid.UUID(str(e.originator_id)).hex, b"wrapped") for e in events],
        )
    take_checkpoint(chained_url)
    result = verify(chained_url)
    assert result.ok and result.checked == n, result
    raw = best_rate(lambda: read_joined(chained_url))
    events_only = best_rate(lambda: read_events(chained_url))
    rate = best_rate(lambda: verify(chained_url, workers=workers).checked)
    single = best_rate(lambda: verify(chained_url, workers=1).checked)
    print(f"[{name}] {n} events, write batch {batch}")
    print(f"  verify   {rate:10,.0f} events/s   raw read+sha256 {raw:10,.0f} rows/s   ratio {rate / raw:.0%}")
    print(f"           (verify with {workers} workers; with 1: {single:,.0f} events/s, ratio {single / raw:.0%})")
    print(f"           (events table alone, read+sha256: {events_only:,.0f} rows/s, ratio {rate / events_only:.0%})")
    print(f"  write    chained {chained:10,.0f} events/s   stock {stock:10,.0f} events/s   ratio {chained / stock:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="verify's worker processes")
    parser.add_argument("--pg", help="also measure PostgreSQL at this URL (two schemas are created and dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LEDGER_SIGNING_KEY_FILE"] = str(Path(tmp) / "signing.key")
        ensure_signing_key()
        bench(
            "sqlite", f"sqlite:///{tmp}/chained.db", f"sqlite:///{tmp}/stock.db", args.events, args.batch, args.workers
        )
        if args.pg:
            import psycopg

            schemas = [f"bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
            with psycopg.connect(args.pg, autocommit=True) as conn:
                for s in schemas:
                    conn.execute(f"CREATE SCHEMA {s}")
            try:
                chained_url, stock_url = (f"{args.pg}?schema={s}" for s in schemas)
                bench("postgres", chained_url, stock_url, args.events, args.batch, args.workers)
            finally:
                with psycopg.connect(args.pg, autocommit=True) as conn:
                    for s in schemas:
                        conn.execute(f"DROP SCHEMA {s} CASCADE")


if __name__ == "__main__":
    main()
