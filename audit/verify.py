"""Integrity check of a whole store (完整性校验), needing no key but the public one.

Recomputes each chain hash and leaf hash from the events as STORED, the Merkle root at every
checkpoint's size, and checks every checkpoint's signature; stops at the first bad position.

Why parallel (并行): each row's stored hash must equal link(previous row's STORED hash, its leaf),
so the log splits into bounded position ranges that worker processes check on their own, in
batches (constant memory). The parent takes their leaves in log order into the Merkle tree,
links each range's first row to the previous range's last hash, and checks the checkpoints at
their sizes. A range with anything off is walked again row by row in the parent, which names the
first bad position and the reason exactly as a single sequential pass does.
"""

from __future__ import annotations

import heapq
import math
import multiprocessing
import os
import struct
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from hashlib import sha256
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit import checkpoints
from audit.chain import GENESIS, HASH_SIZE, SKEW_SECONDS, recorded_at
from audit.db import AuditDB
from audit.erasure import unlogged_erasure
from audit.merkle import Accumulator
from audit.schema import NODES
from audit.tree import StoredTree

Progress = Callable[[int, int], None]
"""Called with (events checked, events in the store) after every range of positions."""

RANGE = 10_000
"""Positions per range handed to a worker: bounds the leaves held per range."""

_PREV_LENGTH = HASH_SIZE.to_bytes(8, "big")
_HEAD = struct.Struct(">BQqQ")  # leaf prefix 0x00, length of the position, the position, length of the id
_VERSION = struct.Struct(">Qq")  # length of the version, the version
_LENGTH = struct.Struct(">Q")


@dataclass(frozen=True)
class VerifyResult:
    """``ok`` if intact; else ``first_bad_position`` and why. ``head`` is the last chain hash (hex). ``signed`` is
    the largest checkpoint found good (what the check proves the log against: the events after it are signed by
    none), and ``keys`` says whose keys vouched for it (:data:`KEY_SOURCES`)."""

    ok: bool
    checked: int
    head: str | None
    first_bad_position: int | None = None
    reason: str = ""
    signed: checkpoints.Checkpoint | None = None
    keys: str = ""
    #: Events recorded before a checkpoint they follow was signed (back-dated, or a writer's clock behind the
    #: signer's): how many, and the first few described. Reported, not failed: the chain is intact.
    recorded_early: int = 0
    notes: tuple[str, ...] = ()


#: Where the keys a check trusts came from: the proof is only as good as they are.
KEY_SOURCES = {
    "given": "the trusted key given",
    "key file": "the signing key file's public half",
    "database": "keys recorded in the database itself (whoever can write it can replace them: pass --key)",
}


class _Run(NamedTuple):
    """A range's rows that are intact on their own: positions, leaf hashes, stored chain hashes and recording times
    (POSIX seconds, ``nan`` for a state that names none).

    Everything is checked except the first row's link, which needs the previous range's last hash.
    """

    positions: list[int]
    leaves: list[bytes]
    hashes: list[bytes]
    recorded: list[float]


class _Checked(NamedTuple):
    """A worker's answer for positions ``lo..hi``: the intact run, or None when something is off."""

    lo: int
    hi: int
    run: _Run | None


def trusted_keys(public_keys: list[Ed25519PublicKey] | None = None) -> dict[str, Ed25519PublicKey]:
    """Keys to check checkpoints with: those given, else the signing key file's public half."""
    if public_keys is None:
        path = checkpoints.signing_key_path()
        public_keys = [checkpoints.load_signing_key(path).public_key()] if path.exists() else []
    return {checkpoints.key_id(k): k for k in public_keys}


def verify(
    url: str,
    progress: Progress | None = None,
    public_keys: list[Ed25519PublicKey] | None = None,
    workers: int | None = None,
    saved: list[checkpoints.Checkpoint] | None = None,
) -> VerifyResult:
    """Check the store at ``url``; ``public_keys`` default to the signing key file's public key.

    With no trusted key at hand, the keys recorded in the database are used, which proves the
    checkpoints were signed by whoever holds those keys, no more. ``saved`` checkpoints, kept by an auditor outside
    the store (from ``GET /v1/audit/checkpoints/latest`` or a bundle), are checked as the stored ones are: the
    database's own checkpoints can be deleted by whoever rewrites it, and the honest signer would then sign the
    rewritten log. ``workers`` processes check the chain (default: one per CPU; 1 checks in this process).
    """
    with AuditDB(url) as db:
        trusted = trusted_keys(public_keys)
        keys: Mapping[str, Ed25519PublicKey] = trusted or checkpoints.published_keys(db)
        source = "given" if public_keys is not None and trusted else "key file" if trusted else "database"
        total = int(db.query(f"SELECT COUNT(*) FROM {db.hashes_table}")[0][0]) if progress else 0
        ranges = _ranges(db)
        # A pool only pays for itself when there is more than one range to share out.
        workers = min(workers or os.cpu_count() or 1, math.ceil((db.last_position() or 0) / RANGE))
        runs = _checked_in_pool(url, ranges, workers) if workers > 1 else (_check_range(db, *r) for r in ranges)
        walk = _Walk(db, keys, progress, total, saved or [])
        try:
            found = walk.run(runs)
            result = replace(found, signed=walk.signed, keys=source, recorded_early=walk.early, notes=tuple(walk.notes))
        finally:
            runs.close()  # stopped at a bad position: the ranges still queued are not started
        # The proofs handed out come from the tree's cached nodes: each must be what the verified chain makes it.
        # A chain recomputed after a rewrite fails a checkpoint somewhere in a range; the cache kept each leaf as
        # first seen, so the first leaf that differs names the rewritten event within that range.
        bad = StoredTree(db).first_bad_node() if db.table_exists(NODES) and (result.ok or walk.rewritten) else None
        if bad is None and result.ok:
            bad = unlogged_erasure(db)
        if bad is None:
            return result
        if result.ok:
            return replace(result, ok=False, first_bad_position=bad[0], reason=bad[1])
        assert result.first_bad_position is not None
        if bad[0] > result.first_bad_position:
            return replace(result, first_bad_position=bad[0], reason=f"{result.reason}; {bad[1]}")
        return result


def _ranges(db: AuditDB) -> Iterator[tuple[int, int]]:
    """Position ranges covering the log, asking again for its end so events added meanwhile are checked too."""
    start = 1
    while (last := db.last_position()) is not None and last >= start:
        for lo in range(start, last + 1, RANGE):
            yield lo, min(lo + RANGE - 1, last)
        start = last + 1


def _checked_in_pool(url: str, ranges: Iterator[tuple[int, int]], workers: int) -> Generator[_Checked, None, None]:
    """``_check_range`` over ``ranges`` in ``workers`` processes, in order, a bounded number ahead."""
    ahead: deque[Future[_Checked]] = deque()
    with ProcessPoolExecutor(workers, mp_context=_context(), initializer=_connect, initargs=(url,)) as pool:
        try:
            for lo, hi in ranges:
                ahead.append(pool.submit(_check_in_worker, lo, hi))
                if len(ahead) > 2 * workers:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
        finally:
            for future in ahead:
                future.cancel()


def _context() -> Any:
    # Forked workers inherit the loaded modules and start in milliseconds; a process with other
    # threads (the API server) forks from a clean server process instead, as forking it may deadlock.
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


_worker_db: AuditDB | None = None
"""A worker process's connection, open for its life (closing it is left to the process's exit)."""


def _connect(url: str) -> None:
    global _worker_db  # one connection per worker process, not one per range
    _worker_db = AuditDB(url)


def _check_in_worker(lo: int, hi: int) -> _Checked:
    assert _worker_db is not None
    return _check_range(_worker_db, lo, hi)


def _check_range(db: AuditDB, lo: int, hi: int) -> _Checked:
    """The rows at positions ``lo..hi`` if intact on their own, else run None (whole batches at a time)."""
    run = _Run([], [], [], [])
    for rows in db.chained_batches(lo, hi):
        positions, _, _, _, _, hashes, stored_leaves = zip(*rows, strict=True)
        if None in hashes:
            return _Checked(lo, hi, None)
        leaves = _leaves(rows)
        # Each row links to the stored hash before it; the parent links the range's first row.
        first = 0 if run.hashes else 1
        before = run.hashes[-1:] + list(hashes[:-1])
        links = [sha256(_PREV_LENGTH + prev + leaf).digest() for prev, leaf in zip(before, leaves[first:], strict=True)]
        if tuple(leaves) != stored_leaves or links != list(hashes[first:]):
            return _Checked(lo, hi, None)
        run.positions.extend(positions)
        run.leaves.extend(leaves)
        run.hashes.extend(hashes)
        run.recorded.extend(recorded_at(row[4]) for row in rows)
    return _Checked(lo, hi, run)


def _leaves(rows: list[tuple[Any, ...]]) -> list[bytes]:
    """Each row's leaf hash, SHA-256(0x00 ‖ audit.chain's canonical bytes), packed in few calls."""
    head, version_of, length, prefixed, join, h = _HEAD.pack, _VERSION.pack, _LENGTH.pack, _prefixed, b"".join, sha256
    return [
        h(join((head(0, 8, p, len(oid := o.encode())), oid, version_of(8, v), prefixed(t), length(len(s)), s))).digest()
        for p, o, v, t, s, _, _ in rows
    ]


class _Walk:
    """The parent's pass in log order: Merkle tree, checkpoints, and the row-by-row diagnosis."""

    def __init__(
        self,
        db: AuditDB,
        keys: Mapping[str, Ed25519PublicKey],
        progress: Progress | None,
        total: int,
        saved: list[checkpoints.Checkpoint],
    ):
        self.db = db
        self.keys = keys
        self.progress = progress
        self.total = total
        self.prev = GENESIS
        self.tree = Accumulator()
        self.last_position = 0
        # The stored checkpoints and those saved outside the store, in the order the tree reaches their sizes.
        self.cps = heapq.merge(checkpoints.iter_checkpoints(db), sorted(saved, key=_size), key=_size)
        self.pending = next(self.cps, None)
        #: The largest checkpoint found good so far.
        self.signed: checkpoints.Checkpoint | None = None
        #: Whether the walk stopped at a checkpoint whose root the chain no longer makes: a rewrite somewhere in
        #: the range it names, which the tree's cache (leaves as first seen) can place.
        self.rewritten = False
        # The first position after the last checkpoint that matched: a rewrite found at a later
        # checkpoint lies somewhere from here on.
        self.unproven_from: int | None = None
        #: When the last checkpoint passed was signed (POSIX seconds): no event after it was recorded before.
        self.floor = -math.inf
        #: Events recorded before a checkpoint they follow was signed: how many, and the first few described.
        self.early = 0
        self.notes: list[str] = []

    def bad(self, position: int, reason: str) -> VerifyResult:
        head = self.prev.hex() if self.tree.size else None
        return VerifyResult(False, self.tree.size, head, position, reason)

    def run(self, runs: Iterator[_Checked]) -> VerifyResult:
        problem = self.checkpoints_reached() or self.take(runs)  # first a checkpoint of the empty log
        if problem:
            return problem
        orphan = self.db.first_orphan_hash()
        if orphan is not None:
            return self.bad(orphan, f"event at position {orphan} is missing (deleted?)")
        if self.pending is not None:
            return self.bad(
                self.last_position + 1,
                f"the log ends after {self.tree.size} events but a checkpoint was signed at size "
                f"{self.pending.size}: events after position {self.last_position} were removed",
            )
        size = self.tree.size
        return VerifyResult(True, size, self.prev.hex() if size else None)

    def take(self, runs: Iterator[_Checked]) -> VerifyResult | None:
        """Each range in order: its intact run if it links on, else row by row."""
        for lo, hi, run in runs:
            if run is not None and (not run.leaves or self.link(run.leaves[0]) == run.hashes[0]):
                problem = self.accept(run)
            else:
                problem = self.walk(lo, hi)
            if problem:
                return problem
            if self.progress:
                self.progress(self.tree.size, self.total)
        return None

    def link(self, leaf: bytes) -> bytes:
        return sha256(_PREV_LENGTH + self.prev + leaf).digest()

    def accept(self, run: _Run) -> VerifyResult | None:
        """Take intact rows into the tree, checking each checkpoint as soon as the tree reaches its size."""
        i, n = 0, len(run.leaves)
        while i < n:
            k = n if self.pending is None else min(n, i + self.pending.size - self.tree.size)
            self.dated(run, i, k)
            if self.unproven_from is None:
                self.unproven_from = run.positions[i]
            self.tree.extend(run.leaves[i:k])
            self.prev, self.last_position = run.hashes[k - 1], run.positions[k - 1]
            i = k
            problem = self.checkpoints_reached()
            if problem:
                return problem
        return None

    def dated(self, run: _Run, i: int, k: int) -> None:
        """Note rows ``i..k-1`` recorded before the last checkpoint found good was signed: appended with a recording
        time from the past (back-dated), or by a writer whose clock ran behind the signer's (beyond the skew). A
        finding to look into, not a broken chain: an honest writer's clock can lag (:data:`MAX_NOTES` kept)."""
        if self.signed is None:
            return
        floor = self.floor - SKEW_SECONDS
        times = run.recorded[i:k]
        if min((t for t in times if not math.isnan(t)), default=floor) >= floor:
            return
        for position, at in zip(run.positions[i:k], times, strict=True):
            if at < floor:
                self.early += 1
                if len(self.notes) < MAX_NOTES:
                    self.notes.append(
                        f"event at position {position} says it was recorded at "
                        f"{datetime.fromtimestamp(at, UTC).isoformat()}, before the checkpoint of size "
                        f"{self.signed.size} it follows was signed ({self.signed.timestamp}): back-dated, or its "
                        "writer's clock ran behind the signer's"
                    )

    def walk(self, lo: int, hi: int) -> VerifyResult | None:
        """Positions ``lo..hi`` row by row, as far as the first bad one."""
        for rows in self.db.chained_batches(lo, hi):
            for row, leaf in zip(rows, _leaves(rows), strict=True):
                position, stored_hash, stored_leaf = row[0], row[5], row[6]
                if stored_hash is None:
                    return self.bad(position, f"event at position {position} has no chain hash (inserted?)")
                if leaf != stored_leaf or self.link(leaf) != stored_hash:
                    return self.mismatch(position, leaf == stored_leaf)
                problem = self.accept(_Run([position], [leaf], [stored_hash], [recorded_at(row[4])]))
                if problem:
                    return problem
        return None

    def mismatch(self, position: int, leaf_ok: bool) -> VerifyResult:
        if not leaf_ok:
            return self.bad(position, f"event at position {position} differs from what was recorded")
        if position > self.last_position + 1:
            # The event itself is intact but does not link to the one before: what lay in the gap was removed.
            return self.bad(
                self.last_position + 1, f"events between positions {self.last_position} and {position} were removed"
            )
        return self.bad(position, f"chain hash at position {position} does not match its event")

    def checkpoints_reached(self) -> VerifyResult | None:
        """Check every checkpoint signed at the tree's current size."""
        while self.pending is not None and self.pending.size == self.tree.size:
            problem = self.check_checkpoint(self.pending)
            if problem:
                return problem
            self.pending = next(self.cps, None)
        return None

    def check_checkpoint(self, cp: checkpoints.Checkpoint) -> VerifyResult | None:
        start = self.unproven_from or 1
        problem = checkpoints.signature_problem(cp, self.keys)
        if problem is None and self.tree.root().hex() != cp.root:
            problem = (
                f"the Merkle root of the first {cp.size} events differs from the signed checkpoint: "
                f"history between positions {start} and {self.last_position} was rewritten"
            )
            self.rewritten = True
        if problem:
            return self.bad(start, problem)
        self.unproven_from = None
        self.signed = cp
        self.floor = max(self.floor, _signed_at(cp))
        return None


def _signed_at(checkpoint: checkpoints.Checkpoint) -> float:
    """When a checkpoint found good was signed (its signature covers the timestamp)."""
    try:
        return datetime.fromisoformat(checkpoint.timestamp).timestamp()
    except ValueError:  # signed, yet no time: bounds nothing
        return -math.inf


#: How many events recorded early a check describes (it counts them all).
MAX_NOTES = 10


def _size(checkpoint: checkpoints.Checkpoint) -> int:
    return checkpoint.size


@lru_cache(maxsize=1024)  # topics repeat: encode each once
def _prefixed(text: str) -> bytes:
    data = text.encode("utf-8")
    return len(data).to_bytes(8, "big") + data
