"""``verify`` split over worker processes (并行校验) answers exactly as one sequential pass does."""

from __future__ import annotations

import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import audit.verify
from audit.checkpoints import take_checkpoint
from audit.db import AuditDB
from audit.verify import VerifyResult, verify
from domain.application import Ledger
from tests.audit.conftest import record_history


@pytest.fixture
def history(ledger: Ledger, store_url: str, signing_key: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Ten events, checkpointed, verified in ranges of three positions."""
    positions = [1, *record_history(ledger)]
    take_checkpoint(store_url)
    monkeypatch.setattr(audit.verify, "RANGE", 3)
    return positions


def test_workers_share_the_ranges(store_url: str, history: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    pools: list[int | None] = []

    class Recorded(ProcessPoolExecutor):
        def __init__(self, max_workers: int | None = None, **kwargs: Any) -> None:
            pools.append(max_workers)
            super().__init__(max_workers, **kwargs)

    monkeypatch.setattr(audit.verify, "ProcessPoolExecutor", Recorded)
    parallel = verify(store_url, workers=2)
    assert pools == [2]
    assert parallel == verify(store_url, workers=1)
    assert pools == [2]  # one worker checks in this process
    assert parallel.ok and parallel.checked == len(history)


def test_progress_after_every_range(store_url: str, history: list[int]) -> None:
    calls: list[tuple[int, int]] = []
    result = verify(store_url, lambda done, total: calls.append((done, total)), workers=2)
    assert calls == [(3, 10), (6, 10), (9, 10), (10, 10)]
    assert result.checked == 10


@pytest.mark.parametrize("deleted", [3, 4, 6, 10])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_deletion_at_any_range_boundary(
    store_url: str, history: list[int], tamper: AuditDB, monkeypatch: pytest.MonkeyPatch, deleted: int, size: int
) -> None:
    """A gap at the start, middle or end of a range (or of the log) is found where the single pass finds it."""
    tamper.execute(f"DELETE FROM {tamper.events_table} WHERE {tamper.position_column} = ?", (deleted,))
    monkeypatch.setattr(audit.verify, "RANGE", size)
    parallel = verify(store_url, workers=2)
    assert parallel == verify(store_url, workers=1)
    assert (parallel.ok, parallel.first_bad_position) == (False, deleted)


def test_threaded_caller_gets_the_same_answer(store_url: str, history: list[int], tamper: AuditDB) -> None:
    """A caller with other threads running (the API server) starts its workers from a fork server."""
    edited = next(tamper.events(start=5, stop=5)).state + b" "
    tamper.execute(f"UPDATE {tamper.events_table} SET state = ? WHERE {tamper.position_column} = 5", (edited,))
    results: list[VerifyResult] = []
    worker = threading.Thread(target=lambda: results.append(verify(store_url, workers=2)))
    worker.start()
    worker.join(timeout=120)
    assert results == [verify(store_url, workers=1)]
    assert (results[0].first_bad_position, results[0].checked) == (5, 4)
