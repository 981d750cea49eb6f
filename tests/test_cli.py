"""The ``ledger`` command line as a user runs it: init, demo, history — on both stores.

Every refusal is one line on stderr, on a terminal 40 columns wide or none at all (stderr is a pipe
here), with exit 1 when the command refuses or finds a fault and 2 when it cannot run.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from api.auth import hash_secret
from api.demo import DemoRefused, Step, demo_plan, load_demo
from audit.db import AuditDB
from domain.vocabulary import Channel, PetitionCategory, UnitKind
from projections import engine
from projections.queries import Queries
from store.ledger import init_store, open_ledger
from tests.conftest import PG_URL, fresh_store_url
from tests.faults.conftest import Proxy, auth, free_port, seed

ROOT = Path(__file__).resolve().parents[1]
#: A PostgreSQL nothing listens on, and short waits for it (the CLI gives up within seconds).
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"
SHORT_WAITS = {"POSTGRES_CONNECT_TIMEOUT": "2", "POSTGRES_POOL_TIMEOUT": "1", "LEDGER_STORE_RETRY_SECONDS": "1"}
#: Commands that read a store that must exist, each with what it needs besides.
STORE_COMMANDS = [
    ("verify",),
    ("history", "unit", "x"),
    ("export", "--out", "bundle.jsonl"),
    ("token", "create", "--actor", "a", "--role", "clerk"),
    ("checkpoint",),
    ("projections", "status"),
]


def ledger_cli(
    url: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    # A narrow terminal: a message that wraps shows as more than one line.
    full_env = {**os.environ, "COLUMNS": "40", "LEDGER_DATABASE_URL": url, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def refused(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """Assert a one-line ``ledger:`` error with exit ``code`` naming ``words``; answer the line."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("ledger: ") and len(result.stderr.splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    return result.stderr


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


def test_init_refuses_a_key_that_does_not_open_the_stores_personal_data(tmp_path: Path) -> None:
    """Once a store holds personal data, `ledger init` with no key configured would make a new one (and every
    petitioner unreadable), and with another key would seal new data apart: both are refused, nothing made."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    init_store(url)
    ledger = open_ledger(url)
    try:
        ledger.register_unit("laiwu", "莱芜市", UnitKind.CITY, None, actor="setup")
        ledger.register_petition(
            "laiwu", Channel.VISIT, 1, "赵大娘", "补偿", PetitionCategory.COMPENSATION, petition_id="x1", actor="c"
        )
    finally:
        ledger.close()
    missing = tmp_path / "new.key"
    no_key = ledger_cli(url, "init", env={"LEDGER_KEY_FILE": str(missing)})
    refused(no_key, 2, "personal data sealed under a master key", "LEDGER_KEY_FILE")
    assert not missing.exists()
    other = tmp_path / "other.key"
    other.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    refused(ledger_cli(url, "init", env={"LEDGER_KEY_FILE": str(other)}), 2, "not configured here")
    assert ledger_cli(url, "init").returncode == 0  # the store's own key: idempotent as ever


def test_serving_on_a_port_in_use_or_out_of_range_is_refused_before_anything_loads(
    empty_url: str, tmp_path: Path
) -> None:
    """`ledger serve` and `ledger demo --serve` check their port first: one line and exit 2 for one in use (not
    uvicorn's own lines and exit 3, after a demo year was loaded), a usage error for one past 65535."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        refused(ledger_cli(empty_url, "serve", "--port", port), 2, "cannot listen on 127.0.0.1:" + port)
        fresh = f"sqlite:///{tmp_path / 'demo.db'}"
        refused(ledger_cli(fresh, "demo", "--serve", "--port", port), 2, "cannot listen")
        assert not (tmp_path / "demo.db").exists()  # refused before the store was made and the year loaded
    too_high = ledger_cli(empty_url, "serve", "--port", "99999")
    assert too_high.returncode == 2 and "Traceback" not in too_high.stderr and "65535" in too_high.stderr


def test_an_unreachable_query_replica_is_named(empty_url: str) -> None:
    """`ledger query` reads LEDGER_QUERY_DATABASE_URL when set: when it is away the line names it beside the
    primary, not the primary alone."""
    replica = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    result = ledger_cli(empty_url, "query", "triggers", env={"LEDGER_QUERY_DATABASE_URL": replica})
    refused(result, 2, "is unreachable", f"or its query replica {replica}")


def test_demo_then_history_then_demo_refused(empty_url: str) -> None:
    result = ledger_cli(empty_url, "demo")
    assert result.returncode == 0, result.stderr
    assert "register_petition" in result.stdout and "events" in result.stdout
    history = ledger_cli(empty_url, "history", "petition", "XF2025-0001")
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert "Petition.Registered" in lines[0] and "by demo-admin" in lines[0]
    token = result.stdout.split("admin token: ")[1].split()[0]
    grant_id, _dot, secret = token.partition(".")
    grant = ledger_cli(empty_url, "history", "grant", grant_id)  # a token's grant shows, never its secret's hash
    assert grant.returncode == 0 and "AccessGrant.Granted" in grant.stdout, grant.stderr
    assert "secret_hash" not in grant.stdout and hash_secret(secret) not in grant.stdout
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
    owned = {s.kwargs["petition_id"] for s in plan if s.method == "take_ownership"}
    key = [f for f in flags if f["skip_level"] or f["repeat_of"] or f["petitioner_count"] >= 5 or f["assigned_from"]]
    unowned = [f for f in key if f["petition_id"] not in owned]
    assert 0 < len(unowned) < len(key) / 10, "a few key petitions stay unowned (R9): the board's flag=unowned"
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


def test_errors_are_one_line_however_narrow_the_terminal(empty_url: str, tmp_path: Path) -> None:
    refused(ledger_cli(empty_url, "history", "bogus", "x"), 1, "unknown record kind 'bogus'", "grant)")
    assert ledger_cli(empty_url, "checkpoint").returncode == 0
    refused(ledger_cli(empty_url, "export", "--out", "x", "--from", "999999", cwd=tmp_path), 1, "nothing to export")
    assert not (tmp_path / "x").exists()  # a refused export leaves no file behind, not even an empty one
    refused(ledger_cli("mysql://x/y", "verify"), 2, "unsupported database URL", "[?schema=NAME]")


def test_projection_commands_use_the_ledger_prefix(empty_url: str) -> None:
    for command in ("run", "rebuild"):
        refused(ledger_cli(empty_url, "projections", command, "nosuch"), 1, "unknown projection 'nosuch'")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_store_never_initialised_is_named_and_not_created(kind: str, tmp_path: Path) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = f"sqlite:///{tmp_path / 'never.db'}" if kind == "sqlite" else f"{PG_URL}?schema={schema}"
    for command in [*STORE_COMMANDS, ("serve", "--port", str(free_port()))]:
        refused(ledger_cli(url, *command, cwd=tmp_path), 2, "run `ledger init` first")
    assert not (tmp_path / "never.db").exists() and not (tmp_path / "bundle.jsonl").exists()
    if kind == "postgres":
        with psycopg.connect(PG_URL) as conn:
            assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None


@pytest.mark.parametrize("command", [("init",), ("demo",), *STORE_COMMANDS], ids=lambda c: " ".join(c[:2]))
def test_an_unreachable_postgresql_is_named_in_one_line(command: tuple[str, ...], tmp_path: Path) -> None:
    result = ledger_cli(UNREACHABLE, *command, env=SHORT_WAITS, cwd=tmp_path)
    refused(result, 2, "the store postgresql://postgres@127.0.0.1:1/test is unreachable")


def test_a_missing_directory_is_refused_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'ledger.db'}"
    refused(ledger_cli(url, "init"), 2, f"directory {tmp_path / 'no' / 'such'} does not exist")
    refused(ledger_cli(url, "verify"), 2, "run `ledger init` first")
    assert not (tmp_path / "no").exists()


def tamper_state(url: str, position: int, *, garble: bool = False) -> None:
    """Edit an event's stored bytes as an intruder with database access would, triggers out of the way: a space
    added (the event still decodes), or with ``garble`` its last bytes cut (it no longer does)."""
    with AuditDB(url) as db:
        if db.engine == "sqlite":
            db.execute("DROP TRIGGER IF EXISTS stored_events_no_update")
        else:
            db.execute("SET session_replication_role = replica")  # the test user is a superuser
        state = next(db.events(position, position)).state
        state = state[:-3] if garble else state + b" "
        db.execute(f"UPDATE {db.events_table} SET state = ? WHERE {db.position_column} = ?", (state, position))


def forge_event(bundle: Path, position: int) -> None:
    """Change the stored bytes of one event line of a bundle."""
    lines = [json.loads(line) for line in bundle.read_text().splitlines()]
    for line in lines:
        if line["kind"] == "event" and line["position"] == position:
            line["state"] = base64.b64encode(base64.b64decode(line["state"]) + b" ").decode()
    bundle.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_a_tampered_store_is_named_in_one_line_and_exports_nothing(empty_url: str, tmp_path: Path) -> None:
    seed(empty_url)
    assert ledger_cli(empty_url, "checkpoint").returncode == 0
    assert ledger_cli(empty_url, "export", "--out", "good.jsonl", cwd=tmp_path).returncode == 0
    tamper_state(empty_url, 3)
    refused(ledger_cli(empty_url, "verify"), 1, "first bad position 3")
    bad = ledger_cli(empty_url, "export", "--out", "bad.jsonl", cwd=tmp_path)
    refused(bad, 1, "first bad position 3", "no bundle written")
    assert [p.name for p in tmp_path.iterdir() if "bad" in p.name] == []
    # The positions before the damage are still evidence: their bundle checks.
    assert ledger_cli(empty_url, "export", "--out", "before.jsonl", "--to", "2", cwd=tmp_path).returncode == 0
    assert ledger_cli(empty_url, "verify-bundle", str(tmp_path / "before.jsonl")).returncode == 0
    forge_event(tmp_path / "good.jsonl", 4)
    refused(ledger_cli(empty_url, "verify-bundle", str(tmp_path / "good.jsonl")), 1, "bundle check failed: position 4")


def test_an_event_edited_into_text_is_named_not_a_crash(tmp_path: Path) -> None:
    # SQLite stores what it is given: `state || 'x'` turns the event's bytes into text.
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    init_store(url)
    seed(url)
    with AuditDB(url) as db:
        db.execute("DROP TRIGGER stored_events_no_update")
        db.execute("UPDATE stored_events SET state = state || 'x' WHERE rowid = 3")
    refused(ledger_cli(url, "verify"), 1, "first bad position 3", "differs")


@pytest.fixture
def pg_url(tmp_path: Path) -> Any:
    yield from fresh_store_url("postgres", tmp_path)


def test_serve_started_while_postgresql_is_down_answers_503_then_recovers(pg_url: str, tmp_path: Path) -> None:
    tokens = seed(pg_url)
    parts = urlsplit(pg_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.cut()  # the store is away before the server starts
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, **SHORT_WAITS, "LEDGER_DATABASE_URL": proxied, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", "from api.cli import main; main()", "serve", "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    supervisor = auth(tokens["supervisor"])
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            down = answer_when_up(http, "/healthz", server)
            assert down.status_code == 503 and down.headers["content-type"] == "application/problem+json"
            assert "unreachable" in down.json()["detail"]
            assert http.get("/v1/units/laiwu", headers=supervisor).status_code == 503
            proxy.restore()
            deadline = time.monotonic() + 60
            while http.get("/healthz").status_code != 200:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
            unit = http.get("/v1/units/laiwu", headers=supervisor)
            assert unit.status_code == 200, unit.text
    finally:
        server.terminate()
        server.wait(timeout=30)
        proxy.close()
    assert "Traceback" not in log.read_text()


def answer_when_up(http: httpx.Client, path: str, server: subprocess.Popen[bytes]) -> httpx.Response:
    """The first answer of a server still starting (bounded: 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, "the server exited"
        try:
            return http.get(path)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)


def test_queries_on_the_command_line_answer_as_the_api_and_page_by_cursor(empty_url: str) -> None:
    """``ledger query``: a supervisor's questions from the shell (查询命令), the same answers as ``Queries``; a list
    read a page at a time with each page's ``--after`` joins up to the whole list; bad input is one line, exit 2."""
    load_demo(empty_url)
    engine.catch_up(empty_url)
    queries = Queries(empty_url)
    try:
        expected = queries.triggers("open")
        scores = queries.scores(2025, "laicheng")
        supervised = queries.cases(flag="supervised", unit_id="laicheng")
        head = queries.status()[0]["head"]
    finally:
        queries.close()
    followed = {"position": head, "lag": 0}  # as the API's answers name how far the projections followed the log
    cases = ledger_cli(empty_url, "query", "cases", "--flag", "supervised", "--unit", "laicheng", "--json")
    assert json.loads(cases.stdout) == {"items": supervised, **followed, "next_after": None} and supervised
    cases = ledger_cli(empty_url, "query", "cases", "--flag", "supervised", "--unit", "laicheng")
    assert cases.returncode == 0 and all(row["id"] in cases.stdout for row in supervised), cases.stderr
    whole = ledger_cli(empty_url, "query", "triggers", "--status", "open", "--json")
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout) == {"items": expected, **followed, "next_after": None} and len(expected) > 4
    rows: list[Any] = []
    after: list[str] = []
    for _ in range(3):
        page = ledger_cli(empty_url, "query", "triggers", "--status", "open", "--limit", "2", *after, "--json")
        assert page.returncode == 0, page.stderr
        answer = json.loads(page.stdout)
        rows += answer["items"]
        assert page.stderr == f"ledger: more: --after {answer['next_after']}\n"
        after = ["--after", answer["next_after"]]
    assert rows == expected[:6]
    table = ledger_cli(empty_url, "query", "scores", "--year", "2025", "--unit", "laicheng")
    assert table.returncode == 0, table.stderr
    assert "outcome" in table.stdout and all(row["unit_id"] in table.stdout for row in scores)
    bulletin = ledger_cli(empty_url, "query", "report", "monthly", "2025-03")
    assert bulletin.returncode == 0 and json.loads(bulletin.stdout)["period"] == "2025-03", bulletin.stderr
    assert json.loads(bulletin.stdout)["position"] == head
    refused(ledger_cli(empty_url, "query", "scores", "--year", "2025", "--as-of", "2025-06-01T00:00"), 2, "--as-of")
    later = ledger_cli(
        empty_url, "query", "triggers", "--status", "open", "--as-of", "2099-06-01T00:00+08:00", "--json"
    )
    assert json.loads(later.stdout)["items"] == expected  # a moment not yet come is answered as of now
    refused(ledger_cli(empty_url, "query", "triggers", "--limit", "2", "--after", "bm9wZQ"), 2, "cursor")
    refused(ledger_cli(empty_url, "query", "report", "monthly", "2025-13"), 2, "month")
    for listed in ("scores", "triggers", "petitions", "cases", "officers"):  # a mistyped unit, as the API's 404
        year = ["--year", "2025"] if listed == "scores" else []
        refused(ledger_cli(empty_url, "query", listed, *year, "--unit", "nosuch"), 2, "no unit 'nosuch'")
    far = "9999-12-31T23:59:59-14:00"  # past the calendar once in UTC: an overflow's traceback before
    refused(ledger_cli(empty_url, "query", "scores", "--year", "2025", "--as-of", far), 2, "--as-of", "9000")
    refused(ledger_cli(empty_url, "query", "report", "daily", "9999-12-31"), 2, "daily")
    refused(ledger_cli(empty_url, "query", "petitions", "--status", "lost"), 2, "status")


def test_the_quota_tables_policy_column_reads_rows_of_a_view_not_yet_derived_again() -> None:
    """A view derived by the engine before quota rows named their policy versions (format 10) answers rows without
    them until derived again: the table shows none rather than failing."""
    from projections.query_cli import QUOTA

    policy = dict(QUOTA)["policy"]
    assert policy({"policy_versions": [1, 2]}) == "1, 2" and policy({}) == ""
