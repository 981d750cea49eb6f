"""The issuing lease (签发权): one report issuer at a time per store; and fold leases: one fold of a report at a time.

Every process that keeps the current view runs an issuer (``ledger projections run`` on each host,
each of ``ledger serve --workers N``), and an issuer's step folds the whole city (seconds at a million
events). Without a lease each of them folded the same reports again. A lease is one row naming its
holder and the wall-clock moment it runs out; the holder renews it before every step, another
issuer takes it over once it has run out (a holder killed, a host gone) or been released (a holder
stopped). A step longer than the lease may overlap with the next holder's first: the reports are
kept by the same rules either way, only folded twice.

A fold lease (:func:`folding`) is the same kind of row per report: asks of one report in several server
processes, or an ask and the issuer's own fold, fold it once; the others wait and read back what it kept. An
announcement (:func:`announce`) is one more such row, renewed while a process answers something without folding
(the issuer's sweep, the periods in progress): an ask may wait for its answer instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator

from projections.catalog import FOLDS, ISSUER
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


# --- fold leases ----------------------------------------------------------------------------------

#: How long a fold's claim holds unless released: longer than a fold (seconds at a million events), so only a holder
#: killed mid-fold leaves one to run out.
FOLD_LEASE_SECONDS = LEASE_SECONDS
#: How often a waiting ask looks whether the fold it waits for is over (one indexed read each).
FOLD_POLL_SECONDS = 0.05


@contextlib.contextmanager
def folding(db: Db, name: str, head: int, deadline: float, wait: Callable[[int], bool]) -> Iterator[bool]:
    """一次折叠, across processes and hosts: claim the fold of the report ``name`` for this caller, who has read the
    facts applied by ``head``, and yield whether it holds the claim; released on the way out. When another process
    holds it and ``wait(its head)`` says its fold is worth waiting for, first wait until that fold is over (released,
    run out, or ``deadline`` on the monotonic clock) and claim again: the caller then finds what that fold kept. A
    store that cannot hold claims (a read replica) yields ``True``: each asker folds, as before."""
    holder = holder_name()
    other = claim_fold(db, name, holder, head)
    if other is not None and wait(other):
        await_fold(db, name, deadline)
        other = claim_fold(db, name, holder, head)
    try:
        yield other is None
    finally:
        if other is None:
            with contextlib.suppress(*db.errors):
                db.execute(f"DELETE FROM {FOLDS} WHERE name = ? AND holder = ?", (name, holder))


def claim_fold(db: Db, name: str, holder: str, head: int) -> int | None:
    """Claim the fold of ``name`` for ``holder`` (or take over one run out): ``None`` once claimed (or when the store
    cannot hold claims), else the head the current holder's fold read."""
    now = _micros()
    try:
        with db.transaction():
            if db.dialect == "postgres":  # as in claim(): concurrent claims wait for each other instead of failing
                db.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            db.execute(
                f"INSERT INTO {FOLDS} (name, holder, head, until) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE"
                f" SET holder = excluded.holder, head = excluded.head, until = excluded.until WHERE {FOLDS}.until < ?",
                (name, holder, head, now + round(FOLD_LEASE_SECONDS * 1_000_000), now),
            )
            ((held_by, held_head),) = db.query(f"SELECT holder, head FROM {FOLDS} WHERE name = ?", (name,))
    except db.errors:  # a read replica, or a store whose projections have not made their tables yet
        return None
    return None if held_by == holder else int(held_head)


def await_fold(db: Db, name: str, deadline: float) -> None:
    """Wait until no live claim holds the fold of ``name``, or until ``deadline`` (monotonic clock)."""
    while time.monotonic() < deadline:
        rows = db.query(f"SELECT until FROM {FOLDS} WHERE name = ?", (name,))
        if not rows or int(rows[0][0]) < _micros():
            return
        time.sleep(FOLD_POLL_SECONDS)


# --- announcements ----------------------------------------------------------------------------------


def announce(db: Db, name: str, seconds: float) -> None:
    """Say, in a fold lease's row, that some process answers ``name`` for the next ``seconds``: an ask may wait for
    its answer rather than fold (:func:`announced`). Renewed by each call; a read replica cannot be told."""
    with contextlib.suppress(*db.errors), db.transaction():
        db.execute(
            f"INSERT INTO {FOLDS} (name, holder, head, until) VALUES (?, ?, 0, ?) ON CONFLICT (name) DO UPDATE"
            " SET holder = excluded.holder, until = excluded.until",
            (name, holder_name(), _micros() + round(seconds * 1_000_000)),
        )


def announced(db: Db, name: str) -> bool:
    """Whether some process said it answers ``name`` now (:func:`announce`)."""
    try:
        rows = db.query(f"SELECT until FROM {FOLDS} WHERE name = ?", (name,))
    except db.errors:  # a store whose projections have not made their tables yet
        return False
    return bool(rows) and int(rows[0][0]) >= _micros()
