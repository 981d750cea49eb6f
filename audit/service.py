"""What the audit HTTP routes call (审计服务): plain functions over a store URL, JSON-ready answers.

Hashes, roots and signatures are lowercase hex. Proofs are against tree sizes the caller names; a size
beyond the log is refused. A size no checkpoint has signed yet is answered too (the tree is synced to it), and
its proof is checked against a signed root once a checkpoint of that size or a consistency proof to a later
signed one is at hand: ``/v1/audit/checkpoints/latest`` names the size last signed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from audit import bundle, checkpoints, history
from audit import verify as verify_module
from audit.db import AuditDB
from audit.tree import StoredTree


class ProofUnavailable(LookupError):
    """The asked-for proof does not exist (position not in the tree, or a size beyond it)."""


def verify(url: str) -> dict[str, Any]:
    """``{ok, checked, head, first_bad_position, reason, signed, keys, recorded_early, notes}``: ``signed`` the
    largest checkpoint found good (the events after it are signed by none yet), ``keys`` whose keys vouched for it,
    ``recorded_early`` how many events were recorded before a checkpoint they follow was signed (``notes`` the
    first few: back-dated, or a writer's clock behind the signer's)."""
    r = verify_module.verify(url)
    return {
        "ok": r.ok,
        "checked": r.checked,
        "head": r.head,
        "first_bad_position": r.first_bad_position,
        "reason": r.reason,
        "signed": r.signed.to_dict() if r.signed else None,
        "keys": r.keys,
        "recorded_early": r.recorded_early,
        "notes": list(r.notes),
    }


def latest_checkpoint(url: str) -> dict[str, Any] | None:
    """The latest signed tree head, or None before the first checkpoint."""
    cp = checkpoints.latest_checkpoint(url)
    return cp.to_dict() if cp else None


def public_key(url: str) -> dict[str, str]:
    """The public keys the ledger has signed checkpoints with, by key id (PEM)."""
    with AuditDB(url) as db:
        return {kid: checkpoints.public_key_pem(k) for kid, k in checkpoints.published_keys(db).items()}


def inclusion_proof(url: str, position: int, size: int) -> dict[str, Any]:
    """RFC 9162 §2.1.3 proof that the event at ``position`` is in the tree of ``size`` leaves."""
    with AuditDB(url) as db:
        tree = _synced(db, size)
        try:
            index = tree.index_of(position)
        except LookupError:
            raise ProofUnavailable(f"position {position} is not in the log") from None
        if index >= size:
            raise ProofUnavailable(f"position {position} is leaf {index}, outside a tree of {size}")
        return {
            "leaf_index": index,
            "tree_size": size,
            "leaf_hash": tree.node(0, index).hex(),
            "path": [p.hex() for p in tree.inclusion(index, size)],
        }


def consistency_proof(url: str, first: int, second: int) -> dict[str, Any]:
    """RFC 9162 §2.1.4 proof that the tree of ``second`` leaves extends the tree of ``first``."""
    if not 0 < first <= second:
        raise ProofUnavailable(f"no consistency proof from size {first} to {second}")
    with AuditDB(url) as db:
        tree = _synced(db, second)
        return {
            "first": first,
            "second": second,
            "first_root": tree.root(first).hex(),
            "second_root": tree.root(second).hex(),
            "path": [p.hex() for p in tree.consistency(first, second)],
        }


def export_bytes(url: str, start: int | None = None, stop: int | None = None) -> bytes:
    """The same bundle as ``ledger export`` (JSON Lines, media type application/x-ndjson), made the same way: checked
    as its recipient will check it before a byte of it is answered, so a store that fails its check in the range
    raises :class:`~audit.bundle.StoreFailsCheck` (naming the first bad position) instead."""
    with tempfile.TemporaryDirectory(prefix="ledger-export-") as tmp:
        out = Path(tmp) / "bundle.jsonl"
        bundle.export(url, out, start, stop)
        return out.read_bytes()


#: Events recorded long after they occurred (补录/倒签), each naming its record's unit: ``audit.history`` finds them.
late_entries = history.late_entries


def _synced(db: AuditDB, size: int) -> StoredTree:
    tree = StoredTree(db)
    have = tree.size()
    if size > have:
        have = tree.sync()
    if not 0 < size <= have:
        raise ProofUnavailable(f"the log has {have} events; no tree of size {size}")
    return tree
