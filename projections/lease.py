"""The issuing lease (签发权): one report issuer at a time per store.

Every process that keeps the current view runs an issuer (``ledger projections run`` on each host,
each of ``ledger serve --workers N``), and an issuer's step folds the whole city (seconds at a million
events). Without a lease each of them folded the same reports again. A lease is one row naming its
holder and the wall-clock moment it runs out; the holder renews it before every step, another
issuer takes it over once it has run out (a holder killed, a host gone) or been released (a holder
stopped). A step longer than the lease may overlap with the next holder's first: the reports are
kept by the same rules either way, only folded twice.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid

from projections.catalog import ISSUER
from projections.db import Db

#: How long a claim holds, in seconds of wall-clock time: longer than an issuing step (one fold, or three for the
#: periods just ended), so a live holder renews it long before it runs out.
LEASE_SECONDS = 120.0


def holder_name() -> str:
    """A name for one issuer: its host and process, and a part of its own (two issuers in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(db: Db, holder: str) -> float | None:
    """Claim the lease for ``holder`` for ``LEASE_SECONDS``, or renew it: ``None`` when ``holder`` holds it now,
    else the seconds until the other holder's lease runs out."""
    now = _micros()
    with db.transaction():
        if db.dialect == "postgres":  # a server whose default is stricter would fail concurrent claims instead
            db.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        db.execute(
            f"INSERT INTO {ISSUER} (name, holder, until) VALUES ('issuer', ?, ?) ON CONFLICT (name) DO UPDATE"
            f" SET holder = excluded.holder, until = excluded.until"
            f" WHERE {ISSUER}.holder = excluded.holder OR {ISSUER}.until < ?",
            (holder, now + round(LEASE_SECONDS * 1_000_000), now),
        )
        ((held_by, until),) = db.query(f"SELECT holder, until FROM {ISSUER} WHERE name = 'issuer'")
    return None if held_by == holder else max((int(until) - now) / 1_000_000, 0.0)


def release(db: Db, holder: str) -> None:
    """Give the lease up if ``holder`` holds it, so another issuer need not wait for it to run out."""
    with contextlib.suppress(*db.errors):
        db.execute(f"DELETE FROM {ISSUER} WHERE name = 'issuer' AND holder = ?", (holder,))


def _micros() -> int:
    return time.time_ns() // 1000
