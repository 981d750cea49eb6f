"""``verify`` names the first bad position for every way an intruder with database access can tamper.

Every test runs twice: checked in one process, and split into ranges of three positions checked by
two worker processes (so ranges start and end next to each tampered row).
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

import audit.verify
from audit.chain import GENESIS, event_hash, leaf_hash
from audit.checkpoints import CheckpointRefused, latest_checkpoint, load_signing_key, take_checkpoint
from audit.db import AuditDB
from audit.schema import CHECKPOINTS, NODES
from audit.verify import verify
from domain.application import Ledger
from domain.vocabulary import Channel, PetitionCategory, UnitKind
from store.ledger import open_ledger
from store.recorders import KEYS_TABLE
from tests.audit.conftest import record_history


@pytest.fixture(autouse=True, params=["in process", "two workers"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "two workers":
        monkeypatch.setattr(audit.verify, "RANGE", 3)
        monkeypatch.setattr(os, "cpu_count", lambda: 2)
    else:
        monkeypatch.setattr(os, "cpu_count", lambda: 1)
    return str(request.param)


@pytest.fixture
def history(ledger: Ledger, store_url: str, signing_key: Path) -> list[int]:
    """Ten events (policy v1 at position 1), checkpointed."""
    positions = [1, *record_history(ledger)]
    take_checkpoint(store_url)
    return positions


def set_state(db: AuditDB, position: int, state: bytes) -> None:
    db.execute(f"UPDATE {db.events_table} SET state = ? WHERE {db.position_column} = ?", (state, position))


def move(db: AuditDB, where: str, shift: int) -> None:
    """Renumber events matching ``where`` by ``shift`` (in two steps: positions are unique)."""
    pos = db.position_column
    db.execute(f"UPDATE {db.events_table} SET {pos} = {pos} + {1_000_000 + shift} WHERE {where}")
    db.execute(f"UPDATE {db.events_table} SET {pos} = {pos} - 1000000 WHERE {pos} > 1000000")


def test_intact_store_verifies(store_url: str, history: list[int]) -> None:
    result = verify(store_url)
    assert result.ok, result.reason
    assert result.checked == len(history)
    assert result.head is not None and len(result.head) == 64
    assert result.first_bad_position is None


def test_edited_event(store_url: str, history: list[int], tamper: AuditDB) -> None:
    event = next(tamper.events(start=5, stop=5))
    set_state(tamper, 5, event.state.replace(b"5", b"6", 1) if b"5" in event.state else event.state + b" ")
    result = verify(store_url)
    assert (result.ok, result.first_bad_position, result.checked) == (False, 5, 4)
    assert "differs" in result.reason


@pytest.mark.parametrize("with_chain_row", [True, False])
def test_deleted_event(store_url: str, history: list[int], tamper: AuditDB, with_chain_row: bool) -> None:
    tamper.execute(f"DELETE FROM {tamper.events_table} WHERE {tamper.position_column} = 6")
    if with_chain_row:
        tamper.execute(f"DELETE FROM {tamper.hashes_table} WHERE position = 6")
    result = verify(store_url)
    assert (result.ok, result.first_bad_position) == (False, 6)
    assert "removed" in result.reason or "missing" in result.reason


def test_swapped_events(store_url: str, history: list[int], tamper: AuditDB) -> None:
    pos = tamper.position_column
    tamper.execute(f"UPDATE {tamper.events_table} SET {pos} = -4 WHERE {pos} = 4")
    tamper.execute(f"UPDATE {tamper.events_table} SET {pos} = 4 WHERE {pos} = 7")
    tamper.execute(f"UPDATE {tamper.events_table} SET {pos} = 7 WHERE {pos} = -4")
    result = verify(store_url)
    assert (result.ok, result.first_bad_position) == (False, 4)


def test_inserted_event_in_the_middle(store_url: str, history: list[int], tamper: AuditDB) -> None:
    forged = next(tamper.events(start=3, stop=3))
    move(tamper, f"{tamper.position_column} > 5", 1)
    _insert_event(tamper, 6, forged.originator_version + 100, forged)
    result = verify(store_url)
    assert (result.ok, result.first_bad_position) == (False, 6)


def test_inserted_event_at_the_end(store_url: str, history: list[int], tamper: AuditDB) -> None:
    forged = next(tamper.events(start=3, stop=3))
    _insert_event(tamper, history[-1] + 1, forged.originator_version + 100, forged)
    result = verify(store_url)
    assert (result.ok, result.first_bad_position) == (False, history[-1] + 1)
    assert "no chain hash" in result.reason


def test_truncated_tail(store_url: str, history: list[int], tamper: AuditDB) -> None:
    last = history[-1]
    tamper.execute(f"DELETE FROM {tamper.events_table} WHERE {tamper.position_column} > ?", (last - 3,))
    tamper.execute(f"DELETE FROM {tamper.hashes_table} WHERE position > ?", (last - 3,))
    result = verify(store_url)
    assert (result.ok, result.first_bad_position, result.checked) == (False, last - 2, last - 3)
    assert "removed" in result.reason
    with pytest.raises(CheckpointRefused):
        take_checkpoint(store_url)  # the signer refuses to bless a shorter log


def test_recomputed_chain_is_caught_by_the_checkpoints(
    store_url: str, ledger: Ledger, history: list[int], tamper: AuditDB
) -> None:
    """An intruder rewrites event 12 and recomputes every hash after it: only the signature can tell."""
    later = [ledger.register_unit(f"e{i}", f"镇{i}", UnitKind.TOWNSHIP, "d1", actor="admin").position for i in range(4)]
    take_checkpoint(store_url)
    target = later[0]
    assert target == history[-1] + 1  # the first event after the first checkpoint
    event = next(tamper.events(start=target, stop=target))
    set_state(tamper, target, event.state.replace("镇0".encode(), "镇X".encode()))
    _recompute_chain(tamper)
    result = verify(store_url)
    assert (result.ok, result.first_bad_position) == (False, target)
    assert "rewritten" in result.reason
    # The signer's tree keeps the leaves as first seen: later checkpoints still commit to the truth.
    ledger.register_unit("e9", "镇9", UnitKind.TOWNSHIP, "d1", actor="admin")
    take_checkpoint(store_url)
    assert verify(store_url).first_bad_position == target


def test_a_rewrite_deep_in_a_checkpoints_range_is_named_at_its_position(
    store_url: str, history: list[int], tamper: AuditDB
) -> None:
    """Event 6 rewritten and the chain recomputed: the first checkpoint's root fails over positions 1 to its end,
    and the tree's cached leaves, kept as first seen, name 6 rather than the range's start."""
    target = history[5]
    event = next(tamper.events(start=target, stop=target))
    set_state(tamper, target, event.state + b" ")
    _recompute_chain(tamper)
    result = verify(store_url)
    assert (result.ok, result.first_bad_position) == (False, target)
    assert "rewritten" in result.reason and f"leaf {target - 1}" in result.reason


def test_a_checkpoint_kept_outside_the_store_catches_a_rewrite_whose_checkpoints_were_deleted(
    store_url: str, ledger: Ledger, history: list[int], tamper: AuditDB
) -> None:
    """An intruder rewrites event 6, recomputes the chain and deletes every checkpoint and cached node: the honest
    signer then signs the rewritten log, and the store alone verifies. The checkpoint an auditor kept from before
    (as ``GET /v1/audit/checkpoints/latest`` gave it) does not: the log no longer holds what it signed."""
    kept = latest_checkpoint(store_url)
    assert kept is not None and verify(store_url, saved=[kept]).signed == kept
    target = history[5]
    event = next(tamper.events(start=target, stop=target))
    set_state(tamper, target, event.state + b" ")
    _recompute_chain(tamper)
    tamper.execute(f"DELETE FROM {CHECKPOINTS}")
    tamper.execute(f"DELETE FROM {NODES}")
    ledger.register_unit("e1", "镇1", UnitKind.TOWNSHIP, "d1", actor="admin")
    resigned = take_checkpoint(store_url)
    alone = verify(store_url)
    assert alone.ok and alone.signed == resigned  # what the store alone can tell: signed, by the right key
    result = verify(store_url, saved=[kept])
    assert (result.ok, result.first_bad_position) == (False, 1) and "rewritten" in result.reason
    # A kept checkpoint larger than the log: events were removed.
    beyond = dataclasses.replace(kept, size=kept.size + 50)
    assert not verify(store_url, saved=[beyond]).ok


def test_verify_says_how_far_the_log_is_signed_and_by_whose_keys(
    store_url: str, ledger: Ledger, history: list[int], signing_key: Path
) -> None:
    signed = verify(store_url)
    assert signed.signed is not None and (signed.signed.size, signed.keys) == (len(history), "key file")
    ledger.register_unit("e1", "镇1", UnitKind.TOWNSHIP, "d1", actor="admin")
    later = verify(store_url, public_keys=[load_signing_key(signing_key).public_key()])
    assert later.ok and later.checked == len(history) + 1 and later.signed == signed.signed and later.keys == "given"


def test_an_event_recorded_before_a_checkpoint_it_follows_is_noted_as_back_dated(
    store_url: str, ledger: Ledger, history: list[int]
) -> None:
    """A writer appends after the checkpoint an event whose recording time lies a month before it was signed (an
    insider's INSERT, or a clock set back): linked into the chain and signed by the honest signer all the same, it
    is named, and counted, as recorded early — a finding, not a broken chain, since an honest writer's clock can
    lag too. A clock a minute behind the signer's is within the skew."""
    signed = latest_checkpoint(store_url)
    assert signed is not None
    at_signing = datetime.fromisoformat(signed.timestamp)
    behind = open_ledger(store_url, clock=lambda: at_signing - timedelta(minutes=1))
    try:
        behind.register_unit("e0", "镇0", UnitKind.TOWNSHIP, "d1", actor="admin", occurred_at=at_signing)
    finally:
        behind.close()
    take_checkpoint(store_url)
    clean = verify(store_url)
    assert clean.ok and (clean.recorded_early, clean.notes) == (0, ())
    month_ago = open_ledger(store_url, clock=lambda: at_signing - timedelta(days=30))
    try:
        forged = month_ago.register_unit("e1", "镇1", UnitKind.TOWNSHIP, "d1", actor="admin")
    finally:
        month_ago.close()
    for signer in ("before", "after"):  # unsigned yet, then signed by the honest signer too
        result = verify(store_url)
        assert result.ok and result.recorded_early == 1, signer
        [note] = result.notes
        assert note.startswith(f"event at position {forged.position} says it was recorded at") and "back-dated" in note
        take_checkpoint(store_url)


def test_a_personal_data_key_destroyed_outside_the_ledger_is_named(
    store_url: str, ledger: Ledger, history: list[int], tamper: AuditDB
) -> None:
    """Deleting a record's data key makes its petitioner read as erased, as a lawful erasure does: without the
    erasure event that must go with it, verify names the record's sealed event. Erased through the ledger, it is
    intact."""
    petition = history[-2]  # record_history's petition x-1, its petitioner sealed
    ledger.register_petition(
        "d1", Channel.LETTER, 1, "李四", "补偿", PetitionCategory.COMPENSATION, petition_id="x-2", actor="clerk"
    )
    ledger.erase_personal_data("petition", "x-2", "依申请删除", actor="admin")
    assert verify(store_url).ok
    tamper.execute(f"DELETE FROM {KEYS_TABLE}")
    result = verify(store_url)
    assert (result.ok, result.first_bad_position) == (False, petition)
    assert "no erasure of it is recorded" in result.reason


@pytest.mark.parametrize("level", [0, 1])
def test_an_edited_merkle_node_is_caught(store_url: str, history: list[int], tamper: AuditDB, level: int) -> None:
    """Proofs come from the tree's cached nodes: one edited there (a leaf, or a node above two) would hand out
    proofs that fail for intact events while the chain verifies; verify names the first leaf under it."""
    tamper.execute("UPDATE ledger_merkle_nodes SET hash = ? WHERE level = ? AND idx = 2", (b"\x00" * 32, level))
    result = verify(store_url)
    assert not result.ok and result.first_bad_position == history[2 << level]
    assert "Merkle tree" in result.reason


def test_forged_checkpoint_signature(store_url: str, history: list[int], tamper: AuditDB) -> None:
    tamper.execute("UPDATE ledger_checkpoints SET signature = ?", ("00" * 64,))
    result = verify(store_url)
    assert (result.ok, result.first_bad_position) == (False, 1)
    assert "invalid signature" in result.reason


def test_direct_update_fails_while_triggers_are_in_place(store_url: str, history: list[int]) -> None:
    with AuditDB(store_url) as db:
        for sql in (
            f"UPDATE {db.events_table} SET state = state WHERE {db.position_column} = 2",
            f"DELETE FROM {db.events_table} WHERE {db.position_column} = 2",
            f"UPDATE {db.hashes_table} SET leaf = hash WHERE position = 2",
            "UPDATE ledger_checkpoints SET root = root",
            "DELETE FROM ledger_checkpoints",
            "UPDATE ledger_merkle_nodes SET hash = hash",
        ):
            with pytest.raises((psycopg.Error, Exception), match="append-only"):
                db.execute(sql)
    assert verify(store_url).ok


def _insert_event(db: AuditDB, position: int, version: int, like: object) -> None:
    oid = like.originator_id if db.engine == "sqlite" else _uuid(like.originator_id)  # type: ignore[attr-defined]
    cols = "rowid, originator_id, originator_version, topic, state"
    if db.engine == "postgres":
        cols = "notification_id, originator_id, originator_version, topic, state"
    db.execute(
        f"INSERT INTO {db.events_table} ({cols}) VALUES (?, ?, ?, ?, ?)",
        (position, oid, version, like.topic, like.state),  # type: ignore[attr-defined]
    )


def _uuid(hex_id: str) -> object:
    from uuid import UUID

    return UUID(hex_id)


def _recompute_chain(db: AuditDB) -> None:
    """What an intruder without the signing key can do: make every hash agree with the events again."""
    db.execute(f"DELETE FROM {db.hashes_table}")
    prev = GENESIS
    rows = []
    for e in db.events():
        fields = (e.position, e.originator_id, e.originator_version, e.topic, e.state)
        prev = event_hash(prev, *fields)
        rows.append((e.position, prev, leaf_hash(*fields)))
    db.executemany(f"INSERT INTO {db.hashes_table} (position, hash, leaf) VALUES (?, ?, ?)", rows)
