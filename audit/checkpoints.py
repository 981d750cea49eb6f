"""Signed tree heads (签名检查点): the log's size and Merkle root, signed with Ed25519.

The signing key is a PEM file at ``LEDGER_SIGNING_KEY_FILE`` (default ``./ledger-signing.key``),
never in the database: someone who can rewrite the tables can recompute every hash, but cannot
sign a new root, so a rewritten history no longer matches the checkpoints already published.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.db import AuditDB, as_bytes
from audit.schema import CHECKPOINTS, KEYS, ensure_tables
from audit.tree import StoredTree
from store.db import unavailable

KEY_FILE_VARIABLE = "LEDGER_SIGNING_KEY_FILE"
DEFAULT_KEY_FILE = "ledger-signing.key"
_MESSAGE_HEADER = "accountability-ledger checkpoint v1"

log = logging.getLogger(__name__)


class CheckpointRefused(RuntimeError):
    """The store no longer extends the last signed checkpoint: signing now would bless a rewrite."""


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: ``size`` leaves with Merkle ``root`` (hex), signed at ``timestamp``."""

    size: int
    root: str
    timestamp: str
    signature: str
    key_id: str

    def message(self) -> bytes:
        return checkpoint_message(self.size, self.root, self.timestamp)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint:
        """A checkpoint as ``GET /v1/audit/checkpoints/latest`` and a bundle write it; ``ValueError`` for anything
        else."""
        fields = ("size", "root", "timestamp", "signature", "key_id")
        if not isinstance(data, dict) or any(f not in data for f in fields):
            raise ValueError(f"a checkpoint names {', '.join(fields)}")
        size, texts = data["size"], [data[f] for f in fields[1:]]
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
            or not all(isinstance(t, str) for t in texts)
        ):
            raise ValueError("a checkpoint's size is a whole number and its other fields text")
        return cls(size, *texts)


def checkpoint_message(size: int, root: str, timestamp: str) -> bytes:
    """The exact bytes signed: a versioned header and one field per line."""
    return f"{_MESSAGE_HEADER}\nsize {size}\nroot {root}\ntimestamp {timestamp}\n".encode()


# --- keys --------------------------------------------------------------------------------------


def signing_key_path(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get(KEY_FILE_VARIABLE) or DEFAULT_KEY_FILE)


def ensure_signing_key(path: Path | str | None = None) -> Path:
    """Create the Ed25519 signing key file (mode 0600) unless it exists; return its path."""
    target = Path(path) if path is not None else signing_key_path()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return target  # another process created it first
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return target


def load_signing_key(path: Path | str | None = None) -> Ed25519PrivateKey:
    target = Path(path) if path is not None else signing_key_path()
    key = serialization.load_pem_private_key(target.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        msg = f"{target} is not an Ed25519 private key"
        raise TypeError(msg)
    return key


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """A public key from PEM (a public key file, or a private key file whose public half is wanted)."""
    data = pem.encode() if isinstance(pem, str) else pem
    if b"PRIVATE KEY" in data:
        return load_signing_key_bytes(data).public_key()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        msg = "not an Ed25519 public key"
        raise TypeError(msg)
    return key


def load_signing_key_bytes(data: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        msg = "not an Ed25519 private key"
        raise TypeError(msg)
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 bytes of SHA-256 over the raw 32-byte public key, lowercase hex."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:16].hex()


def sign(key: Ed25519PrivateKey, size: int, root: bytes, timestamp: str) -> Checkpoint:
    signature = key.sign(checkpoint_message(size, root.hex(), timestamp))
    return Checkpoint(size, root.hex(), timestamp, signature.hex(), key_id(key.public_key()))


def signature_problem(checkpoint: Checkpoint, keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    """Why the checkpoint's signature is not good under the trusted ``keys`` (by key id), or None."""
    key = keys.get(checkpoint.key_id)
    if key is None:
        return f"checkpoint of size {checkpoint.size} is signed by untrusted key {checkpoint.key_id}"
    try:
        key.verify(bytes.fromhex(checkpoint.signature), checkpoint.message())
    except (InvalidSignature, ValueError):
        return f"checkpoint of size {checkpoint.size} has an invalid signature"
    return None


# --- the checkpoint table ------------------------------------------------------------------------


def iter_checkpoints(db: AuditDB) -> Iterator[Checkpoint]:
    """Every checkpoint, smallest size first."""
    if not db.table_exists(CHECKPOINTS):
        return
    for row in db.query(f"SELECT size, root, timestamp, signature, key_id FROM {CHECKPOINTS} ORDER BY size"):
        yield Checkpoint(int(row[0]), *row[1:])


def latest(db: AuditDB) -> Checkpoint | None:
    if not db.table_exists(CHECKPOINTS):
        return None
    rows = db.query(f"SELECT size, root, timestamp, signature, key_id FROM {CHECKPOINTS} ORDER BY size DESC LIMIT 1")
    return Checkpoint(int(rows[0][0]), *rows[0][1:]) if rows else None


def latest_checkpoint(url: str) -> Checkpoint | None:
    with AuditDB(url) as db:
        return latest(db)


def published_keys(db: AuditDB) -> dict[str, Ed25519PublicKey]:
    """Public keys the ledger has signed with (as recorded in the database: trust them no further)."""
    if not db.table_exists(KEYS):
        return {}
    return {kid: load_public_key(pem) for kid, pem in db.query(f"SELECT key_id, public_key FROM {KEYS}")}


def take_checkpoint(url: str, key_path: Path | str | None = None) -> Checkpoint:
    """Sign the log as it stands now (or return the latest checkpoint if nothing was added since)."""
    key = load_signing_key(key_path)
    with AuditDB(url) as db:
        ensure_tables(db)
        tree = StoredTree(db)
        size = tree.sync()
        _check_tail(db, tree, size)
        previous = latest(db)
        if previous is not None:
            if previous.size > size:
                msg = f"the log has {size} events but checkpoint {previous.size} was signed: events were removed"
                raise CheckpointRefused(msg)
            if tree.root(previous.size).hex() != previous.root:
                msg = f"the log no longer matches the checkpoint of size {previous.size}: history was rewritten"
                raise CheckpointRefused(msg)
            if previous.size == size:
                return previous
        timestamp = datetime.now(UTC).isoformat(timespec="microseconds")
        checkpoint = sign(key, size, tree.root(size), timestamp)
        conflict = "INSERT OR IGNORE INTO" if db.engine == "sqlite" else "INSERT INTO"
        suffix = "" if db.engine == "sqlite" else " ON CONFLICT DO NOTHING"
        db.execute(
            f"{conflict} {KEYS} (key_id, public_key, created_at) VALUES (?, ?, ?){suffix}",
            (checkpoint.key_id, public_key_pem(key.public_key()), timestamp),
        )
        db.execute(
            f"{conflict} {CHECKPOINTS} (size, root, timestamp, signature, key_id) VALUES (?, ?, ?, ?, ?){suffix}",
            (checkpoint.size, checkpoint.root, checkpoint.timestamp, checkpoint.signature, checkpoint.key_id),
        )
        # A concurrent checkpointer may have signed the same size first: answer what is stored.
        stored = latest(db)
        return stored if stored is not None and stored.size == size else checkpoint


def _check_tail(db: AuditDB, tree: StoredTree, size: int) -> None:
    # The cache keeps the leaves as first seen, so the signer never signs a rewritten history; a
    # cheap look at the live chain's tail still refuses when events were cut off the end.
    if size == 0:
        return
    position = tree.position_of(size - 1)
    live = db.query(f"SELECT leaf FROM {db.hashes_table} WHERE position = ?", (position,))
    if not live or as_bytes(live[0][0]) != tree.node(0, size - 1):
        msg = f"the chain no longer holds position {position} as it was recorded: run `ledger verify`"
        raise CheckpointRefused(msg)


def _holds_records(url: str) -> bool:
    with AuditDB(url) as db:
        return (db.last_position() or 0) > 1


def run_checkpoints(url: str, every_seconds: float, stop: threading.Event, key_path: Path | str | None = None) -> None:
    """Take a checkpoint every ``every_seconds`` until ``stop`` is set (the API server runs this). A store holding
    nothing but the policy defaults is not signed yet: a demo or an import loaded into it next records its events
    at their own (earlier) times, which a checkpoint signed now would make look back-dated."""
    while not stop.is_set():
        try:
            if _holds_records(url):
                take_checkpoint(url, key_path)
        except CheckpointRefused:
            log.exception("checkpoint refused: the store needs `ledger verify`")
        except Exception as exc:
            # A database hiccup must not end the schedule; the next round tries again. An outage is
            # one line in the log (it says nothing a traceback would add); anything else is a bug.
            if not unavailable(exc):
                log.exception("checkpoint failed")
            else:
                log.warning("checkpoint failed, the store is unavailable: %s", " ".join(str(exc).split()))
        stop.wait(every_seconds)
