"""The ``ledger`` command line as a user runs it: init, demo, history — on both stores."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from api.demo import DemoRefused, Step, demo_plan, load_demo
from store.ledger import open_ledger
from tests.conftest import fresh_store_url

ROOT = Path(__file__).resolve().parents[1]


def ledger_cli(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "LEDGER_DATABASE_URL": url, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
        check=False,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    yield from fresh_store_url(request.param, tmp_path)


def test_init_creates_a_private_key_file_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    key = Path(os.environ["LEDGER_KEY_FILE"])
    for _ in range(2):
        result = ledger_cli(url, "init")
        assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_demo_then_history_then_demo_refused(empty_url: str) -> None:
    result = ledger_cli(empty_url, "demo")
    assert result.returncode == 0, result.stderr
    assert "register_petition" in result.stdout and "events" in result.stdout
    history = ledger_cli(empty_url, "history", "petition", "XF2025-0001")
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert "Petition.Registered" in lines[0] and "by demo-admin" in lines[0]
    again = ledger_cli(empty_url, "demo")
    assert again.returncode == 1
    assert again.stderr.startswith("ledger: ") and "empty store" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_the_demo_year_is_realistic_and_deterministic() -> None:
    plan = demo_plan()
    assert plan == demo_plan()
    methods = [s.method for s in plan]
    assert methods.count("register_petition") >= 300 and methods.count("report_clue") > 100
    assert methods.count("amend_policy") == 1
    violations = {s.kwargs["violation"] for s in plan if s.method == "report_clue"}
    assert len(violations) == 6
    flags = [s.kwargs for s in plan if s.method == "register_petition"]
    assert any(f["skip_level"] for f in flags) and any(f["repeat_of"] for f in flags)
    assert any(f["petitioner_count"] >= 5 for f in flags) and any(f["assigned_from"] for f in flags)
    assert any((s.recorded_at - s.occurred_at).days >= 7 for s in plan), "some entries are recorded late"


def test_a_plan_with_a_thousand_bad_rows_records_nothing(empty_url: str) -> None:
    plan = demo_plan()
    bad = [
        Step("take_ownership", {"petition_id": f"missing-{i}", "leader_id": "mayor"}, s.occurred_at, s.recorded_at)
        for i, s in enumerate(plan[-1000:])
    ]
    with pytest.raises(DemoRefused, match="1000 of"):
        load_demo(empty_url, plan[:200] + bad + plan[200:])
    ledger = open_ledger(empty_url)
    try:
        assert ledger.recorder.max_notification_id() == 1  # only the policy's first version
    finally:
        ledger.close()


def test_bad_commands_are_one_line_errors_with_nonzero_exit(empty_url: str) -> None:
    missing = ledger_cli(empty_url, "history", "petition", "nope")
    assert missing.returncode == 1 and missing.stderr.startswith("ledger: ") and "nope" in missing.stderr
    kind = ledger_cli(empty_url, "history", "spaceship", "x")
    assert kind.returncode == 1 and "unknown record kind" in kind.stderr
    usage = ledger_cli(empty_url, "token", "create", "--actor", "a", "--role", "clerk", "--ttl-days", "99999")
    assert usage.returncode == 2 and "Invalid value for '--ttl-days'" in usage.stderr
    assert "Traceback" not in usage.stderr
    url = ledger_cli("mysql://x", "init")
    assert url.returncode == 2 and "unsupported database URL" in url.stderr


def test_no_update_or_delete_on_event_tables_in_the_code() -> None:
    folders = ("domain", "projections", "api", "audit", "store")
    sources = [p for folder in folders for p in (ROOT / folder).rglob("*.py")]
    offending = [
        f"{p}:{n}"
        for p in sources
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if ("UPDATE" in line or "DELETE FROM" in line) and "_events" in line and "TRIGGER" not in line.upper()
    ]
    assert offending == []
