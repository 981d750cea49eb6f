"""Audit bundles (审计包): a range of the log, self-contained, checkable offline by anyone.

Format: one UTF-8 JSON Lines file, one record per line, each with a ``kind``, in this order:
``header``, ``public_key``…, ``checkpoint``…, ``consistency``… (each earlier checkpoint to the
proof checkpoint), ``policy_versions``, ``anchor`` (the chain hash before the range), ``event``…
(stored bytes in base64, chain and leaf hash, leaf index and an inclusion proof against the proof
checkpoint), ``projections`` (the results the bundle states), then ``trailer`` (event count and
SHA-256 of every line before it, so a cut-off file is caught). JSON Lines rather than zip: both
writing and checking stream one event at a time in constant memory, and a reader needs nothing
but a text editor to see what an event said.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.persistence import StoredEvent

from audit import checkpoints, merkle
from audit.chain import GENESIS, chain_link, leaf_hash
from audit.db import AuditDB, as_bytes
from audit.merkle import ProofError
from audit.tree import StoredTree
from domain.application import Ledger
from domain.base import local_year
from domain.personal import KeylessVault

FORMAT = "accountability-ledger-bundle"
VERSION = 1


class BundleError(ValueError):
    """The bundle cannot be made or read (not a verdict on its contents)."""


@dataclass(frozen=True)
class BundleResult:
    """Outcome of checking a bundle: ``ok``, or the first bad position (if any) and why."""

    ok: bool
    events: int
    first_bad_position: int | None = None
    reason: str = ""
    recomputed: bool = False


# --- decoding without keys -----------------------------------------------------------------------


def offline_decoder() -> Callable[[StoredEvent], Any]:
    """The Ledger's own mapper (same transcodings), on an in-memory store, with a sealed vault."""
    app = Ledger({"PERSISTENCE_MODULE": "eventsourcing.popo"}, vault=KeylessVault())
    return app.mapper.to_domain_event


def _stored(line: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        originator_id=UUID(line["originator_id"]),
        originator_version=line["originator_version"],
        topic=line["topic"],
        state=base64.b64decode(line["state"]),
    )


# --- export --------------------------------------------------------------------------------------


def export(url: str, out_path: Path | str, start: int | None = None, stop: int | None = None) -> dict[str, Any]:
    """Write the bundle for positions ``start..stop`` (default: the whole log) and return its header."""
    with Path(out_path).open("wb") as out:
        return write_bundle(url, out, start, stop)


def write_bundle(url: str, out: IO[bytes], start: int | None = None, stop: int | None = None) -> dict[str, Any]:
    from projections.engine import catch_up
    from projections.queries import Queries
    from projections.source import open_log

    if checkpoints.signing_key_path().exists():
        checkpoints.take_checkpoint(url)  # so the bundle reaches the newest event
    writer = _Writer(out)
    with AuditDB(url) as db:
        tree = StoredTree(db)
        tree.sync()
        proof_cp = checkpoints.latest(db)
        if proof_cp is None or proof_cp.size == 0:
            raise BundleError("no signed checkpoint yet: run `ledger checkpoint` first")
        last_signed = tree.position_of(proof_cp.size - 1)
        first = max(start or 1, 1)
        stop = min(stop or last_signed, last_signed)
        if first > stop:
            raise BundleError(f"nothing to export from {first} to {stop} (the latest checkpoint ends at {last_signed})")
        header = {
            "kind": "header",
            "format": FORMAT,
            "version": VERSION,
            "from": first,
            "to": stop,
            "proof_checkpoint": proof_cp.to_dict(),
        }
        writer.write(header)
        for kid, key in checkpoints.published_keys(db).items():
            writer.write({"kind": "public_key", "key_id": kid, "pem": checkpoints.public_key_pem(key)})
        all_cps = list(checkpoints.iter_checkpoints(db))
        for cp in all_cps:
            writer.write({"kind": "checkpoint", **cp.to_dict()})
        for cp in all_cps:
            if 0 < cp.size < proof_cp.size:
                path = tree.consistency(cp.size, proof_cp.size)
                writer.write(
                    {"kind": "consistency", "first": cp.size, "second": proof_cp.size, "path": [p.hex() for p in path]}
                )
        log = open_log(url)
        try:
            writer.write({"kind": "policy_versions", "versions": [_amendment(a) for a in log.policy_versions()]})
            before = db.query(
                f"SELECT position, hash FROM {db.hashes_table} WHERE position < ? ORDER BY position DESC LIMIT 1",
                (first,),
            )
            writer.write(
                {
                    "kind": "anchor",
                    "position": before[0][0] if before else 0,
                    "hash": (as_bytes(before[0][1]) if before else GENESIS).hex(),
                }
            )
            decode = offline_decoder()
            range_root = lru_cache(maxsize=1 << 16)(tree.range_root)
            years: set[int] = set()
            last_recorded: datetime | None = None
            index: int | None = None
            for e, (hpos, chain_hash, leaf) in zip(db.events(first, stop), db.hashes(first, stop), strict=True):
                if hpos != e.position:
                    raise BundleError(f"the store is damaged at position {min(hpos, e.position)}: run `ledger verify`")
                index = tree.index_of(e.position) if index is None else index + 1
                writer.write(
                    {
                        "kind": "event",
                        "position": e.position,
                        "originator_id": e.originator_id,
                        "originator_version": e.originator_version,
                        "topic": e.topic,
                        "state": base64.b64encode(e.state).decode(),
                        "hash": chain_hash.hex(),
                        "leaf": leaf.hex(),
                        "leaf_index": index,
                        "inclusion": [p.hex() for p in merkle.inclusion_path(index, proof_cp.size, range_root)],
                    }
                )
                event = decode(_stored(writer.last))
                years.add(local_year(event.occurred_at))
                last_recorded = event.timestamp
        finally:
            log.close()
    catch_up(url)
    queries = Queries(url)
    try:
        writer.write({"kind": "projections", **stated_projections(queries, sorted(years), last_recorded)})
    finally:
        queries.close()
    writer.finish()
    return header


def stated_projections(queries: Any, years: list[int], known_at: datetime | None) -> dict[str, Any]:
    """Scores, triggers and quota deductions as known when the range's last event was recorded."""
    at = {"as_of": known_at, "known_at": known_at}
    return {
        "as_of": known_at.isoformat() if known_at else None,
        "years": years,
        "scores": {str(y): queries.scores(y, **at) for y in years},
        "quota_deductions": {str(y): queries.quota_deductions(y, **at) for y in years},
        "triggers": queries.triggers(**at),
    }


def _amendment(a: Any) -> dict[str, Any]:
    plain: dict[str, Any] = orjson.loads(orjson.dumps(asdict(a), default=str))
    return plain


class _Writer:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.events = 0
        self.last: dict[str, Any] = {}

    def write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record, default=str) + b"\n"
        self.digest.update(line)
        self.out.write(line)
        self.last = record
        self.events += record["kind"] == "event"

    def finish(self) -> None:
        trailer = {"kind": "trailer", "events": self.events, "sha256": self.digest.hexdigest()}
        self.out.write(orjson.dumps(trailer) + b"\n")


# --- offline check -------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[bytes, dict[str, Any]]]:
    with path.open("rb") as f:
        for raw in f:
            try:
                yield raw, orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise BundleError("the bundle is not JSON Lines") from None


def verify_bundle(
    path: Path | str, recompute: bool = False, trusted_key: Ed25519PublicKey | None = None
) -> BundleResult:
    """Check a bundle with nothing but the file (and optionally a trusted public key)."""
    result = _Check(Path(path), trusted_key).run()
    if not result.ok or not recompute:
        return result
    problem = _recompute(Path(path))
    if problem:
        return BundleResult(False, result.events, None, problem)
    return BundleResult(True, result.events, recomputed=True)


class _Check:
    def __init__(self, path: Path, trusted_key: Ed25519PublicKey | None) -> None:
        self.path = path
        self.keys: dict[str, Ed25519PublicKey] = {}
        if trusted_key is not None:
            self.keys = {checkpoints.key_id(trusted_key): trusted_key}
        self.trusted = trusted_key is not None
        self.roots: dict[int, bytes] = {}
        self.events = 0

    def fail(self, reason: str, position: int | None = None) -> BundleResult:
        return BundleResult(False, self.events, position, reason)

    def run(self) -> BundleResult:
        digest = hashlib.sha256()
        header: dict[str, Any] | None = None
        proof: checkpoints.Checkpoint | None = None
        prev: bytes | None = None
        last_index: int | None = None
        last_position = 0
        trailer: dict[str, Any] | None = None
        for raw, rec in _lines(self.path):
            kind = rec.get("kind")
            if trailer is not None:
                return self.fail("lines after the trailer")
            if kind == "trailer":
                trailer = rec
                continue
            digest.update(raw)
            if kind == "header":
                if rec.get("format") != FORMAT or rec.get("version") != VERSION:
                    return self.fail("not an accountability-ledger bundle of a known version")
                header = rec
                proof = checkpoints.Checkpoint(**rec["proof_checkpoint"])
            elif header is None or proof is None:
                return self.fail("the bundle does not start with its header")
            elif kind == "public_key" and not self.trusted:
                key = checkpoints.load_public_key(rec["pem"])
                if checkpoints.key_id(key) != rec["key_id"]:
                    return self.fail(f"public key {rec['key_id']} does not match its id")
                self.keys[rec["key_id"]] = key
            elif kind == "checkpoint":
                cp = checkpoints.Checkpoint(**{k: v for k, v in rec.items() if k != "kind"})
                problem = checkpoints.signature_problem(cp, self.keys)
                if problem:
                    return self.fail(problem)
                self.roots[cp.size] = bytes.fromhex(cp.root)
            elif kind == "consistency":
                try:
                    merkle.verify_consistency(
                        rec["first"],
                        rec["second"],
                        self.roots[rec["first"]],
                        self.roots[rec["second"]],
                        [bytes.fromhex(p) for p in rec["path"]],
                    )
                except (ProofError, KeyError) as e:
                    return self.fail(f"checkpoints {rec['first']} and {rec['second']} are not consistent: {e}")
            elif kind == "anchor":
                prev = bytes.fromhex(rec["hash"])
                last_position = rec["position"]
            elif kind == "event":
                position = rec["position"]
                if prev is None:
                    return self.fail("events before the chain anchor", position)
                if position <= last_position or (last_index is not None and rec["leaf_index"] != last_index + 1):
                    return self.fail(f"event at position {position} is out of order", position)
                if self.roots.get(proof.size) != bytes.fromhex(proof.root):
                    return self.fail("the proof checkpoint is not among the signed checkpoints")
                problem = self.check_event(rec, prev, proof)
                if problem:
                    return self.fail(problem, position)
                prev = bytes.fromhex(rec["hash"])
                last_index, last_position = rec["leaf_index"], position
                self.events += 1
        if trailer is None:
            return self.fail("the bundle has no trailer (cut off?)")
        if trailer.get("sha256") != digest.hexdigest() or trailer.get("events") != self.events:
            return self.fail("the bundle's trailer does not match its contents")
        if header is not None and self.events and last_position != header["to"]:
            return self.fail(f"the bundle ends at {last_position}, its header says {header['to']}", last_position)
        return BundleResult(True, self.events)

    @staticmethod
    def check_event(rec: dict[str, Any], prev: bytes, proof: checkpoints.Checkpoint) -> str | None:
        position = rec["position"]
        fields = (
            position,
            rec["originator_id"],
            rec["originator_version"],
            rec["topic"],
            base64.b64decode(rec["state"]),
        )
        leaf = leaf_hash(*fields)
        if leaf.hex() != rec["leaf"]:
            return f"event at position {position} differs from what was recorded"
        if chain_link(prev, leaf).hex() != rec["hash"]:
            return f"chain hash at position {position} does not link to the event before it"
        try:
            merkle.verify_inclusion(
                rec["leaf_index"],
                proof.size,
                leaf,
                [bytes.fromhex(p) for p in rec["inclusion"]],
                bytes.fromhex(proof.root),
            )
        except ProofError as e:
            return f"event at position {position} is not in the signed tree: {e}"
        return None


def _recompute(path: Path) -> str | None:
    """Rebuild the projections from the bundle's events and compare with what the bundle states."""
    from projections.engine import replay_into
    from projections.queries import Queries

    header = next(rec for _, rec in _lines(path) if rec["kind"] == "header")
    anchor = next(rec for _, rec in _lines(path) if rec["kind"] == "anchor")
    if anchor["position"] != 0:
        return f"recompute needs the log from its start; this bundle starts after position {anchor['position']}"
    stated = next(rec for _, rec in _lines(path) if rec["kind"] == "projections")
    decode = offline_decoder()
    events = ((rec["position"], decode(_stored(rec))) for _, rec in _lines(path) if rec["kind"] == "event")
    with tempfile.TemporaryDirectory(prefix="ledger-recompute-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'views.db'}"
        replay_into(url, events)
        queries = Queries(url)
        try:
            known_at = datetime.fromisoformat(stated["as_of"]) if stated["as_of"] else None
            mine = stated_projections(queries, stated["years"], known_at)
        finally:
            queries.close()
    mine = orjson.loads(orjson.dumps(mine, default=str))
    for name in ("scores", "quota_deductions", "triggers"):
        if mine[name] != stated[name]:
            return f"recomputed {name} differ from what the bundle (to position {header['to']}) states"
    return None
