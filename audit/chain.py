"""Hash chain over the event log (pure functions, no database).

Every recorded event gets ``leaf = leaf_hash(...)`` for an RFC 9162 Merkle
tree and ``hash = chain_link(previous hash, leaf)`` in log order, starting
from ``GENESIS``. The link commits to the event through its leaf, so each
event's bytes are hashed once, by writer and verifier alike. Both are computed over the event exactly as STORED
(topic and the state bytes after transcoding, compression and encryption), not
over decoded domain objects: personal fields stay encrypted under per-person
keys, so anyone can verify the chain and proofs without holding any key, and
destroying a key (erasure) leaves every hash valid.

Encoding: each field is an 8-byte big-endian length followed by its bytes;
integers are 8-byte big-endian two's complement; text is UTF-8. Length
prefixes make the encoding unambiguous (no two field lists share bytes).
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from collections.abc import Callable

GENESIS = bytes(32)
HASH_SIZE = 32
_PREV_LENGTH = HASH_SIZE.to_bytes(8, "big")
_LEAF_PREFIX = b"\x00"  # RFC 9162 section 2.1.1; interior nodes use b"\x01".


def originator_id_text(originator_id: UUID | str) -> str:
    """Text hashed for an originator ID: UUID as 32 hex digits, text as is."""
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


def _feed(
    update: Callable[[bytes], object],
    position: int,
    originator_id: str,
    originator_version: int,
    topic: str,
    state: bytes,
) -> None:
    # Fed piecewise so large states are never copied into one buffer.
    for field in (
        position.to_bytes(8, "big", signed=True),
        originator_id.encode("utf-8"),
        originator_version.to_bytes(8, "big", signed=True),
        topic.encode("utf-8"),
        state,
    ):
        update(len(field).to_bytes(8, "big"))
        update(field)


def chain_link(prev: bytes, leaf: bytes) -> bytes:
    """SHA-256 of len(prev)‖prev‖leaf: the chain's next hash."""
    if len(prev) != HASH_SIZE:
        msg = f"previous hash must be {HASH_SIZE} bytes, got {len(prev)}"
        raise ValueError(msg)
    return hashlib.sha256(_PREV_LENGTH + prev + leaf).digest()


def event_hash(
    prev: bytes,
    position: int,
    originator_id: str,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    """The chain hash of one event after ``prev`` (its leaf hash, linked)."""
    return chain_link(prev, leaf_hash(position, originator_id, originator_version, topic, state))


def leaf_hash(
    position: int,
    originator_id: str,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 ‖ canonical event bytes)."""
    h = hashlib.sha256(_LEAF_PREFIX)
    _feed(h.update, position, originator_id, originator_version, topic, state)
    return h.digest()


#: How far a writer's clock may run from the signer's: an event is recorded no earlier than a checkpoint signed
#: before it and no later than one signed after it, give or take this (``domain.base.MAX_CLOCK_SKEW`` alike).
SKEW_SECONDS = 300.0
_RECORDED = b'"timestamp":{"_type_":"datetime_iso","_data_":"'


def recorded_at(state: bytes) -> float:
    """The recording time an event's stored state names (the library's ``timestamp``), as POSIX seconds; ``nan``
    when it names none readably (a state the chain check has already found bad, or not JSON).

    Found by its bytes, not by decoding the whole state (millions of events): our transcoder writes it as
    ``"timestamp":{"_type_":"datetime_iso","_data_":"…"}`` (``store.transcoder``), and no field's value can hold
    those bytes (a string's quotes are escaped), so the first match is the event's own."""
    data = bytes(state)
    at = data.find(_RECORDED)
    if at < 0:
        return math.nan
    start = at + len(_RECORDED)
    try:
        return datetime.fromisoformat(data[start : data.index(b'"', start)].decode()).timestamp()
    except (ValueError, UnicodeDecodeError):
        return math.nan
