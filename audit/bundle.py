"""Audit bundles (审计包): a range of the log, self-contained, checkable offline by anyone.

Format: one UTF-8 JSON Lines file, one record per line, each with a ``kind``, in this order:
``header``, ``public_key``…, ``checkpoint``…, ``consistency``… (each earlier checkpoint to the
proof checkpoint), ``policy_versions``, ``anchor`` (the chain hash before the range), ``event``…
(stored bytes in base64, chain and leaf hash, leaf index and an inclusion proof against the proof
checkpoint), ``projections`` (the results the bundle states), then ``trailer`` (event count and
SHA-256 of every line before it, so a cut-off file is caught). JSON Lines rather than zip: both
writing and checking stream one event at a time in constant memory, and a reader needs nothing
but a text editor to see what an event said.

The ``projections`` line grows with the history it states (every unit's score of every year, every
trigger). Export never holds it whole: each territory (a root of the unit tree and the units below
it) is folded on its own, its rows go to a temporary SQLite file, and the line is written from
there in the order :func:`stated_projections` gives, byte for byte the same JSON.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import hashlib
import itertools
import math
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.persistence import StoredEvent

from audit import checkpoints, merkle
from audit.chain import GENESIS, SKEW_SECONDS, chain_link, leaf_hash, recorded_at
from audit.db import AuditDB, as_bytes
from audit.merkle import ProofError
from audit.tree import StoredTree
from audit.verify import MAX_NOTES
from domain.application import Ledger
from domain.base import local_year
from domain.personal import KeylessVault
from domain.policy import Policy

FORMAT = "accountability-ledger-bundle"
VERSION = 1
#: Inclusion proofs of consecutive leaves ask for the same few subtree roots (about two per level of
#: the tree), so a small LRU cache answers as many of them as a large one would.
RANGE_ROOT_CACHE = 1024
#: Districts per page when the stated quota deductions are computed a page at a time.
DEDUCTIONS_PAGE = 20


class BundleError(ValueError):
    """The bundle cannot be made or read (not a verdict on its contents)."""


class StoreFailsCheck(BundleError):
    """The store's events in the range asked for fail their check, so no bundle leaves it: the store is at fault,
    not the request (``ledger verify`` names the same first bad position)."""

    def __init__(self, first_bad_position: int | None, reason: str) -> None:
        where = f"first bad position {first_bad_position}: " if first_bad_position else ""
        super().__init__(f"the store fails its check, no bundle written: {where}{reason}")
        self.first_bad_position = first_bad_position


@dataclass(frozen=True)
class BundleResult:
    """Outcome of checking a bundle: ``ok``, or the first bad position (if any) and why."""

    ok: bool
    events: int
    first_bad_position: int | None = None
    reason: str = ""
    recomputed: bool = False
    #: The ids of the keys whose signatures on the checkpoints were checked, and whether they were the trusted key
    #: given (else the bundle's own: it vouches for itself until its key id is compared with the one published).
    signed_by: tuple[str, ...] = ()
    trusted: bool = False
    #: The positions the bundle holds and the size of the signed log they are proved in (a bundle may hold a part).
    first: int | None = None
    last: int | None = None
    signed_size: int | None = None
    #: Why the stated projections were not recomputed, when they were not.
    unchecked: str = ""
    #: Whether the bundle holds the log from its start (its chain anchored at genesis): only then can its stated
    #: projections be recomputed.
    from_start: bool = False
    #: Events recorded before a checkpoint they follow was signed, as ``audit.verify`` counts and notes them.
    recorded_early: int = 0
    notes: tuple[str, ...] = ()


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
    """Write the bundle for positions ``start..stop`` (default: the whole log) and return its header.

    The bundle is written beside ``out_path`` and checked as ``verify-bundle`` checks it before it
    takes that name: evidence from a store altered since it was recorded must not leave as a bundle
    its recipient rejects, so the exporter is told the first bad position instead (and no file, not
    even an empty one, is left behind by any refusal).
    """
    out = Path(out_path)
    if not out.parent.is_dir():
        raise BundleError(f"directory {out.parent} does not exist")
    partial = out.with_name(f".{out.name}.partial")
    try:
        with partial.open("wb") as f:
            header = write_bundle(url, f, start, stop)
        result = verify_bundle(partial)
        if not result.ok:
            raise StoreFailsCheck(result.first_bad_position, result.reason)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return header


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
            range_root = lru_cache(maxsize=RANGE_ROOT_CACHE)(tree.range_root)
            years: set[int] = set()
            last_recorded: datetime | None = None
            index: int | None = None
            for e, (hpos, chain_hash, leaf) in zip(db.events(first, stop), db.hashes(first, stop), strict=True):
                if hpos != e.position:
                    raise StoreFailsCheck(min(hpos, e.position), "an event and its chain row are out of step")
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
                try:
                    event = decode(_stored(writer.last))
                except Exception as exc:  # bytes altered past decoding (not JSON, not the topic's fields)
                    raise StoreFailsCheck(e.position, f"its stored event cannot be decoded ({exc})") from exc
                if not isinstance(event, Policy.Established):  # the defaults, dated the epoch: no year's figures
                    years.add(local_year(event.occurred_at))
                last_recorded = event.timestamp
        finally:
            log.close()
    catch_up(url)
    queries = Queries(url)
    try:
        write_stated_projections(writer, queries, sorted(years), last_recorded)
    finally:
        queries.close()
    writer.finish()
    return header


def stated_projections(queries: Any, years: list[int], known_at: datetime | None) -> dict[str, Any]:
    """Scores, triggers and quota deductions as known when the range's last event was recorded.

    All in memory: ``verify-bundle --recompute`` states them this way, from the whole city in one fold,
    and compares with what :func:`write_stated_projections` wrote a territory at a time.
    """
    at = {"as_of": known_at, "known_at": known_at}
    return {
        "as_of": known_at.isoformat() if known_at else None,
        "years": years,
        "scores": {str(y): queries.scores(y, **at) for y in years},
        "quota_deductions": {str(y): queries.quota_deductions(y, **at) for y in years},
        "triggers": queries.triggers(**at),
    }


# The sections of the projections line, in the order they are written.
_SCORES, _DEDUCTIONS, _TRIGGERS = range(3)


def write_stated_projections(writer: _Writer, queries: Any, years: list[int], known_at: datetime | None) -> None:
    """Write the ``projections`` line: the JSON of ``{"kind": "projections", **stated_projections(...)}``,
    with memory bounded by one territory's facts instead of the whole history.

    Each territory is folded on its own through the public queries (``unit_id=`` its root; quota
    deductions a page of districts at a time); the rows wait in a temporary SQLite file and are
    written in the order the whole-city answers list them (scores by unit id, deductions by
    district, triggers by opening time and id). When the units do not split into territories that
    hold all the records (see :func:`_territories`), the whole city is one territory, as before.
    The temporary file (in ``TMPDIR``) takes about as much disk as the line itself.
    """
    at = {"as_of": known_at, "known_at": known_at}
    roots: list[str] | None = _territories(queries, known_at)
    with tempfile.TemporaryDirectory(prefix="ledger-bundle-") as tmp:
        spill = _Spill(Path(tmp) / "stated.db")
        try:
            for root in roots if roots else [None]:
                for y in years:
                    spill.add(_SCORES, y, ((r["unit_id"], "", r) for r in queries.scores(y, unit_id=root, **at)))
                spill.add(_TRIGGERS, 0, ((t["opened_at"], t["id"], t) for t in queries.triggers(unit_id=root, **at)))
            for y in years:
                spill.add(
                    _DEDUCTIONS, y, ((r["unit_id"], "", r) for r in _deductions(queries, y, at, paged=bool(roots)))
                )
            writer.write_line(_projections_line(spill, years, known_at))
        finally:
            spill.close()


def _projections_line(spill: _Spill, years: list[int], known_at: datetime | None) -> Iterator[bytes]:
    """The pieces of the line ``orjson.dumps({"kind": "projections", **stated_projections(...)})`` writes."""
    yield b'{"kind":"projections","as_of":' + orjson.dumps(known_at.isoformat() if known_at else None)
    yield b',"years":' + orjson.dumps(years)
    for name, section in ((b"scores", _SCORES), (b"quota_deductions", _DEDUCTIONS)):
        yield b',"' + name + b'":{'
        for i, y in enumerate(years):
            yield (b"," if i else b"") + orjson.dumps(str(y)) + b":["
            yield from _joined(spill.bodies(section, y))
            yield b"]"
        yield b"}"
    yield b',"triggers":['
    yield from _joined(spill.bodies(_TRIGGERS, 0))
    yield b"]}\n"


def _joined(bodies: Iterable[bytes]) -> Iterator[bytes]:
    for i, body in enumerate(bodies):
        yield b"," + body if i else body


def _deductions(queries: Any, year: int, at: dict[str, Any], *, paged: bool) -> Iterator[dict[str, Any]]:
    """The year's quota deductions by district: a page of districts at a time, or all at once."""
    if not paged:
        yield from queries.quota_deductions(year, **at)
        return
    after = None
    while True:
        page = queries.quota_deductions(year, limit=DEDUCTIONS_PAGE, after=after, **at)
        yield from page
        if len(page) < DEDUCTIONS_PAGE:
            return
        after = page[-1]["unit_id"]


def _territories(queries: Any, known_at: datetime | None) -> list[str] | None:
    """The roots of the unit tree known at ``known_at``, when folding each root's territory apart states the
    same as one fold of the city: every known unit lies below exactly one root, and every record the
    scores and triggers read is filed under a unit (a record under no known unit would belong to no
    territory). ``None`` otherwise, or when there is one root (nothing to split)."""
    from projections.queries import TRIGGER_KINDS

    k = queries.known(known_at, known_at)
    units = set(k.units)
    roots = sorted({k.root(u) for u in units})
    parts = [(k.subtree(r) | {r}) & units for r in roots]
    if len(roots) < 2 or sum(map(len, parts)) != len(units) or set().union(*parts) != units:
        return None
    now = set(queries.known().units)
    for projection in sorted(set(TRIGGER_KINDS.values())):
        filed = queries.db.query(f"SELECT DISTINCT unit_id FROM proj_{projection}_records")
        if any(unit_id not in now for (unit_id,) in filed):
            return None
    return roots


class _Spill:
    """Rows of the stated projections on disk, read back in the order they are written in."""

    BATCH = 500

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path)
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute("CREATE TABLE rows (section INTEGER, year INTEGER, k1 TEXT, k2 TEXT, seq INTEGER, body BLOB)")
        self.seq = 0
        self.indexed = False

    def add(self, section: int, year: int, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        batch: list[tuple[Any, ...]] = []
        for k1, k2, row in rows:
            self.seq += 1
            batch.append((section, year, k1, k2, self.seq, orjson.dumps(row, default=str)))
            if len(batch) == self.BATCH:
                self.conn.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?)", batch)
                batch.clear()
        self.conn.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?)", batch)
        self.conn.commit()

    def bodies(self, section: int, year: int) -> Iterator[bytes]:
        """The rows' JSON by (k1, k2), then in the order added (text compares by code point, as Python sorts)."""
        if not self.indexed:
            self.conn.execute("CREATE INDEX rows_order ON rows (section, year, k1, k2, seq)")
            self.indexed = True
        sql = "SELECT body FROM rows WHERE section = ? AND year = ? ORDER BY k1, k2, seq"
        for (body,) in self.conn.execute(sql, (section, year)):
            yield body

    def close(self) -> None:
        self.conn.close()


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

    def write_line(self, pieces: Iterable[bytes]) -> None:
        """One line given in pieces (ending with the newline), so a long one is never whole in memory."""
        for piece in pieces:
            self.digest.update(piece)
            self.out.write(piece)

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
    path: Path | str,
    recompute: bool | None = False,
    trusted_key: Ed25519PublicKey | None = None,
    trusted_keys: list[Ed25519PublicKey] | None = None,
) -> BundleResult:
    """Check a bundle with nothing but the file (and optionally trusted public keys, several across a key's change).
    ``recompute`` rebuilds the stated projections from its events and compares them; ``None``: when the bundle holds
    the log from its start (only then can they be rebuilt), else the result says they were not checked."""
    keys = [*([trusted_key] if trusted_key is not None else []), *(trusted_keys or [])]
    result = _Check(Path(path), keys).run()
    if not result.ok:
        return result
    if recompute is None:
        recompute = result.from_start
        if not recompute:
            return dataclasses.replace(result, unchecked=f"the bundle starts at position {result.first}")
    if not recompute:
        return dataclasses.replace(result, unchecked="not asked")
    problem = _recompute(Path(path))
    if problem:
        return BundleResult(False, result.events, None, problem)
    return dataclasses.replace(result, recomputed=True)


class _Check:
    def __init__(self, path: Path, trusted_keys: list[Ed25519PublicKey]) -> None:
        self.path = path
        self.keys: dict[str, Ed25519PublicKey] = {checkpoints.key_id(k): k for k in trusted_keys}
        self.trusted = bool(trusted_keys)
        self.roots: dict[int, bytes] = {}
        self.events = 0
        self.signed_by: list[str] = []
        #: When each checkpoint was signed (POSIX seconds), by size: bounds on its events' recording times.
        self.signed_at: dict[int, float] = {}
        self._latest: tuple[list[int], list[float]] | None = None
        self.early = 0
        self.notes: list[str] = []

    def fail(self, reason: str, position: int | None = None) -> BundleResult:
        return BundleResult(False, self.events, position, reason)

    def run(self) -> BundleResult:
        digest = hashlib.sha256()
        header: dict[str, Any] | None = None
        proof: checkpoints.Checkpoint | None = None
        prev: bytes | None = None
        last_index: int | None = None
        last_position = 0
        anchored_at: int | None = None
        first_position: int | None = None
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
                if cp.key_id not in self.signed_by:
                    self.signed_by.append(cp.key_id)
                self.roots[cp.size] = bytes.fromhex(cp.root)
                self.signed_at[cp.size] = datetime.fromisoformat(cp.timestamp).timestamp()
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
                # The anchor is the chain hash before the range: events cut from the bundle's head (their anchor
                # moved past them) leave it at or after the first position the header claims.
                if rec["position"] >= header["from"]:
                    return self.fail(
                        f"the chain anchor ({rec['position']}) is not before the bundle's first position"
                        f" ({header['from']}): events are missing from its head",
                        rec["position"],
                    )
                prev = bytes.fromhex(rec["hash"])
                last_position = anchored_at = rec["position"]
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
                self.check_recorded(rec)
                prev = bytes.fromhex(rec["hash"])
                last_index, last_position = rec["leaf_index"], position
                first_position = position if first_position is None else first_position
                self.events += 1
        if trailer is None:
            return self.fail("the bundle has no trailer (cut off?)")
        if trailer.get("sha256") != digest.hexdigest() or trailer.get("events") != self.events:
            return self.fail("the bundle's trailer does not match its contents")
        if header is None or proof is None or not self.events:
            return self.fail("the bundle holds no events")
        if last_position != header["to"]:
            return self.fail(f"the bundle ends at {last_position}, its header says {header['to']}", last_position)
        return BundleResult(
            True,
            self.events,
            signed_by=tuple(self.signed_by),
            trusted=self.trusted,
            first=first_position,
            last=last_position,
            signed_size=proof.size,
            from_start=anchored_at == 0,
            recorded_early=self.early,
            notes=tuple(self.notes),
        )

    def check_recorded(self, rec: dict[str, Any]) -> None:
        """Note an event recorded before a checkpoint it follows was signed (back-dated, or its writer's clock behind
        the signer's), as ``ledger verify`` notes it: a finding, not a broken chain."""
        at = recorded_at(base64.b64decode(rec["state"]))
        if math.isnan(at):
            return
        if self._latest is None:  # every checkpoint line comes before the events
            sizes = sorted(self.signed_at)
            self._latest = sizes, list(itertools.accumulate((self.signed_at[s] for s in sizes), max))
        sizes, latest = self._latest
        j = bisect.bisect_right(sizes, rec["leaf_index"])  # the checkpoints sizes[:j] end at or before this leaf
        if j and at < latest[j - 1] - SKEW_SECONDS:
            self.early += 1
            if len(self.notes) < MAX_NOTES:
                self.notes.append(
                    f"event at position {rec['position']} says it was recorded at "
                    f"{datetime.fromtimestamp(at, UTC).isoformat()}, before a checkpoint it follows was signed: "
                    "back-dated, or its writer's clock ran behind the signer's"
                )

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
    # The policy versions the bundle lists, as its own policy events make them (those amended after its last
    # position are listed too, and cannot be checked from it).
    policy: Any = None
    for _, rec in _lines(path):
        if rec["kind"] == "event" and rec["topic"].startswith(f"{Policy.__module__}:"):
            policy = decode(_stored(rec)).mutate(policy)
    listed = next(rec["versions"] for _, rec in _lines(path) if rec["kind"] == "policy_versions")
    versions = [_amendment(a) for a in policy.versions()] if policy is not None else []
    if listed[: len(versions)] != versions:
        return f"the policy versions the bundle lists differ from its policy events (to position {header['to']})"
    return None
