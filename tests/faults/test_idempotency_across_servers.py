"""An Idempotency-Key holds across server processes: two `ledger serve` processes on one store,
the same keyed commands sent to both at once, and each is recorded exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from store.ledger import open_ledger
from tests.faults.conftest import Server, auth, head, petition, seed


def recorded_after(url: str, position: int) -> list[str]:
    """The ids of the records whose events follow ``position`` in the log."""
    ledger = open_ledger(url)
    try:
        return [event.record_id for _, event in ledger.iter_log(position + 1)]
    finally:
        ledger.close()


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_keyed_command_sent_to_two_servers_is_recorded_once(store_url: str, tmp_path: Path) -> None:
    tokens = seed(store_url)
    servers = [Server(store_url, tmp_path / f"server-{i}.log", projections=False).start() for i in range(2)]
    try:
        before = head(store_url)

        def send(i: int) -> tuple[int, dict[str, object]]:
            server = servers[i % 2]
            key = f"register-{i // 2}"  # each key goes to both servers, at the same moment
            r = httpx.post(
                f"{server.base}/v1/petitions",
                json=petition(f"p-{i // 2}"),
                headers=auth(tokens["clerk"], **{"Idempotency-Key": key}),
                timeout=30,
            )
            return r.status_code, r.json()

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(send, range(16)))
        assert {status for status, _ in answers} == {201}, answers
        for n in range(8):
            pair = [body for i, (_, body) in enumerate(answers) if i // 2 == n]
            assert pair[0] == pair[1], pair  # the second answer is the first one, replayed
        # Eight commands, eight events, none twice (PostgreSQL positions may skip: rolled-back inserts use them).
        assert sorted(recorded_after(store_url, before)) == [f"p-{n}" for n in range(8)]
    finally:
        for server in servers:
            server.stop()
