"""Integrity check of a whole store (完整性校验), needing no key but the public one.

Walks the events as STORED, in position order and in batches (constant memory), next to the chain
table; recomputes each chain hash and leaf hash from the stored bytes, the Merkle root at every
checkpoint's size, and checks every checkpoint's signature. Stops at the first bad position.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha256

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit import checkpoints
from audit.chain import GENESIS, HASH_SIZE
from audit.db import AuditDB
from audit.merkle import Accumulator

Progress = Callable[[int, int], None]
"""Called with (events checked, events in the store) after every batch."""

_PREV_LENGTH = HASH_SIZE.to_bytes(8, "big")
_HEAD = struct.Struct(">QqQ")  # length of the position, the position, length of the originator id
_VERSION = struct.Struct(">Qq")  # length of the version, the version
_LENGTH = struct.Struct(">Q")


@dataclass(frozen=True)
class VerifyResult:
    """``ok`` if intact; else ``first_bad_position`` and why. ``head`` is the last chain hash (hex)."""

    ok: bool
    checked: int
    head: str | None
    first_bad_position: int | None = None
    reason: str = ""


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
) -> VerifyResult:
    """Check the store at ``url``; ``public_keys`` default to the signing key file's public key.

    With no trusted key at hand, the keys recorded in the database are used, which proves the
    checkpoints were signed by whoever holds those keys, no more.
    """
    with AuditDB(url) as db:
        keys: Mapping[str, Ed25519PublicKey] = trusted_keys(public_keys) or checkpoints.published_keys(db)
        total = int(db.query(f"SELECT COUNT(*) FROM {db.hashes_table}")[0][0]) if progress else 0
        return _Walk(db, keys, progress, total).run()


class _Walk:
    def __init__(self, db: AuditDB, keys: Mapping[str, Ed25519PublicKey], progress: Progress | None, total: int):
        self.db = db
        self.keys = keys
        self.progress = progress
        self.total = total
        self.prev = GENESIS
        self.tree = Accumulator()
        self.last_position = 0
        # The first position after the last checkpoint that matched: a rewrite found at a later
        # checkpoint lies somewhere from here on.
        self.unproven_from: int | None = None

    def bad(self, position: int, reason: str) -> VerifyResult:
        head = self.prev.hex() if self.tree.size else None
        return VerifyResult(False, self.tree.size, head, position, reason)

    def run(self) -> VerifyResult:
        cps = checkpoints.iter_checkpoints(self.db)
        pending = next(cps, None)
        if pending is not None and pending.size == 0:
            problem = self.check_checkpoint(pending)
            if problem:
                return problem
            pending = next(cps, None)
        next_size = pending.size if pending else -1
        size, prev, last = 0, self.prev, 0
        leaves: list[bytes] = []  # this batch's leaves, added to the tree in one go
        prev_length, prefixed, join, h = _PREV_LENGTH, _prefixed, b"".join, sha256
        pack_head, pack_version, pack_length = _HEAD.pack, _VERSION.pack, _LENGTH.pack
        for rows in self.db.chained_batches():
            # One flat loop with local names: this is where verification spends its time.
            for position, oid_text, version, topic, state, stored_hash, stored_leaf in rows:
                if stored_hash is None:
                    self._flush(leaves, prev, last)
                    return self.bad(position, f"event at position {position} has no chain hash (inserted?)")
                oid = oid_text.encode()
                # The canonical bytes of audit.chain, packed in three calls instead of nine.
                canonical = join(
                    (
                        pack_head(8, position, len(oid)),
                        oid,
                        pack_version(8, version),
                        prefixed(topic),
                        pack_length(len(state)),
                        state,
                    )
                )
                leaf = h(b"\x00" + canonical).digest()
                if leaf != stored_leaf or h(prev_length + prev + leaf).digest() != stored_hash:
                    self._flush(leaves, prev, last)
                    return self.mismatch(position, leaf == stored_leaf)
                prev, last = stored_hash, position
                leaves.append(leaf)
                size += 1
                if self.unproven_from is None:
                    self.unproven_from = position
                while size == next_size and pending is not None:
                    self._flush(leaves, prev, last)
                    problem = self.check_checkpoint(pending)
                    if problem:
                        return problem
                    pending = next(cps, None)
                    next_size = pending.size if pending else -1
            self._flush(leaves, prev, last)
            if self.progress:
                self.progress(size, self.total)
        orphan = self.db.first_orphan_hash()
        if orphan is not None:
            return self.bad(orphan, f"event at position {orphan} is missing (deleted?)")
        if pending is not None:
            return self.bad(
                last + 1,
                f"the log ends after {size} events but a checkpoint was signed at size "
                f"{pending.size}: events after position {last} were removed",
            )
        return VerifyResult(True, size, prev.hex() if size else None)

    def _flush(self, leaves: list[bytes], prev: bytes, last: int) -> None:
        self.tree.extend(leaves)
        leaves.clear()
        self.prev, self.last_position = prev, last

    def mismatch(self, position: int, leaf_ok: bool) -> VerifyResult:
        if not leaf_ok:
            return self.bad(position, f"event at position {position} differs from what was recorded")
        if position > self.last_position + 1:
            # The event itself is intact but does not link to the one before: what lay in the gap was removed.
            return self.bad(
                self.last_position + 1, f"events between positions {self.last_position} and {position} were removed"
            )
        return self.bad(position, f"chain hash at position {position} does not match its event")

    def check_checkpoint(self, cp: checkpoints.Checkpoint) -> VerifyResult | None:
        start = self.unproven_from or 1
        problem = checkpoints.signature_problem(cp, self.keys)
        if problem is None and self.tree.root().hex() != cp.root:
            problem = (
                f"the Merkle root of the first {cp.size} events differs from the signed checkpoint: "
                f"history between positions {start} and {self.last_position} was rewritten"
            )
        if problem:
            return self.bad(start, problem)
        self.unproven_from = None
        return None


@lru_cache(maxsize=1024)  # topics repeat: encode each once
def _prefixed(text: str) -> bytes:
    data = text.encode("utf-8")
    return len(data).to_bytes(8, "big") + data
