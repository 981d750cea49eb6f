"""The bench commands run end to end on a tiny store (基准冒烟测试); no timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from projections import engine
from projections.db import Db
from projections.queries import Queries
from store.ledger import open_ledger

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_generate_writes_exactly_the_requested_events_through_the_application(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gen.db'}"
    done = run("bench.generate", "--url", url, "--events", "1500", "--batch", "500", "--years", "2024-2025")
    assert done.returncode == 0, done.stderr
    assert "wrote 1,500 events (head 1,501)" in done.stdout
    ledger = open_ledger(url)
    try:
        head = int(ledger.recorder.max_notification_id() or 0)
        topics = {n.topic.rsplit(":", 1)[-1] for n in ledger.recorder.select_notifications(start=1, limit=head)}
    finally:
        ledger.close()
    assert head == 1501  # policy version 1 from init, then the history
    assert {"Unit.Registered", "Person.Registered"} <= topics
    again = run("bench.generate", "--url", url, "--events", "10")
    assert again.returncode != 0 and "already holds records" in again.stderr


def test_bench_run_prints_and_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = run(
        "bench.run", "--store", "sqlite", "--events", "2000", "--commands", "20", "--calls", "3",
        "--query-seconds", "1", "--http-seconds", "1", "--quiet", "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())["results"][0]
    paths = [r["path"] for r in result["rows"]]
    floor = ["command (library floor)", "bulk import (library floor)"]
    assert paths == [
        "command",
        "bulk import",
        *floor,
        "rebuild",
        "verify",
        "HTTP query scores",
        "HTTP command petition",
    ]
    assert [r["goal"] for r in result["rows"][2:4]] == [None, None]  # measured beside the goals, not against them
    assert all(r["ours"] > 0 and r["raw"] > 0 for r in result["rows"])
    assert {r["path"]: r["errors"] for r in result["rows"] if "errors" in r} == {
        "HTTP query scores": 0,
        "HTTP command petition": 0,
    }
    assert set(result["peak_rss_mib"]) == {"rebuild", "verify", "export"}
    assert "command" in done.stdout and "ratio" in done.stdout


def test_the_projection_bench_measures_a_generated_store_as_it_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gen.db'}"
    assert run("bench.generate", "--url", url, "--events", "1500", "--years", "2025").returncode == 0
    out = tmp_path / "queries.json"
    done = run("bench.projections_bench", "--url", url, "--calls", "3", "--query-seconds", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())["results"][0]
    assert result["events"] == 1501 and result["rebuild_events_per_s"] > 0 and result["raw_events_per_s"] > 0
    asked = {"scores(as_of, known_at, district)", "petitions(as_of, known_at, district)", "scores(as_of), city-wide"}
    assert asked <= result["queries"].keys()
    assert all(q["calls"] == 3 for q in result["queries"].values())
    assert "1501 events, 1 territories" in done.stdout


def test_back_issue_prints_the_sweep_and_keeps_every_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gen.db'}"
    assert run("bench.generate", "--url", url, "--events", "1500", "--years", "2024-2025").returncode == 0
    out = tmp_path / "back.json"
    done = run("bench.back_issue", "--url", url, "--budget", "60", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "first ask of the newest bulletin: fold" in done.stdout and "moments left: 0" in done.stdout
    result = json.loads(out.read_text())
    assert result["backlog_moments"] == result["swept_moments"] > 600  # every day since the history's first
    assert result["fold_over_read"] > 0 and result["fold_over_sweep"] > 0
    assert result["running_sweep_after_fact_ms"] > 0 and "the periods in progress by the sweep" in done.stdout
    memory = result["in_memory"]
    assert memory["rows"] > 0 and len(memory["tables_s"]) == len(memory["memory_s"]) == 4
    assert "facts read into memory" in done.stdout and "from memory" in done.stdout
    from projections import reports
    from projections.catalog import ISSUED
    from projections.db import Db

    db = Db(url)
    try:
        kept = set(db.query(f"SELECT kind, label FROM {ISSUED}"))
        assert reports.backlog(db, reports.utc_now()) == []  # nothing left to issue
    finally:
        db.close()
    assert len({label for kind, label in kept if kind == "monthly"}) >= 24
    assert result["swept_reports"] + 3 == len(kept)  # and the three periods just ended, issued first


def test_reports_read_times_running_and_kept_reports_in_process_and_over_http(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gen.db'}"
    assert run("bench.generate", "--url", url, "--events", "1500", "--years", "2025").returncode == 0
    out = tmp_path / "reads.json"
    done = run("bench.reports_read", "--url", url, "--issue", "2025-03", "--rounds", "3", "--http", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert [r["kind"] for r in result["running"]] == ["daily", "weekly", "monthly"]
    assert [k["label"] for k in result["kept"]] == ["2025-03"]
    assert len(result["http"]) == 4 and all(h["unbound"]["p50_ms"] > 0 for h in result["http"])
    assert all(h["bound"]["bytes"] == h["unbound"]["bytes"] for h in result["http"])  # nothing filtered out
    assert "kept monthly 2025-03" in done.stdout and "http daily" in done.stdout


def test_concurrent_asks_times_one_ask_alone_and_several_processes_asking_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gen.db'}"
    assert run("bench.generate", "--url", url, "--events", "1500", "--years", "2025").returncode == 0
    out = tmp_path / "asks.json"
    done = run("bench.concurrent_asks", "--url", url, "--month", "2025-03", "--processes", "2", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["alone"]["wall_s"] >= 0 and len(result["together"]) == 2
    assert "one ask alone (raw baseline)" in done.stdout and "asker 2 of 2 at once" in done.stdout
    db = Db(url)
    try:  # the bulletin the askers asked for is kept again
        assert db.query("SELECT 1 FROM proj_reports_kept WHERE kind = 'monthly' AND label = '2025-03'")
    finally:
        db.close()


def test_http_pages_walks_a_list_page_by_page_to_its_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gen.db'}"
    assert run("bench.generate", "--url", url, "--events", "1500", "--years", "2025").returncode == 0
    engine.catch_up(url)  # as the 1M stores are before they are measured
    done = run("bench.http_pages", "--url", url, "--limit", "2", "--rounds", "2")
    assert done.returncode == 0, done.stderr
    rounds = [line for line in done.stdout.splitlines() if line.startswith("round ")]
    pages = {int(line.split()[2]) for line in rounds}
    assert len(rounds) == 2 and len(pages) == 1  # both rounds walked the same pages
    rows = len(Queries(url).scores(2025))
    assert rows > 20 and pages.pop() >= rows / 2  # two rows a page at most: every unit read, to the last page


def test_projections_bench_only_times_the_named_query_types(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gen.db'}"
    assert run("bench.generate", "--url", url, "--events", "1500", "--years", "2025").returncode == 0
    done = run("bench.projections_bench", "--url", url, "--calls", "3", "--only", "quota(year", "--only", "trigger(id)")
    assert done.returncode == 0, done.stderr
    rows = [line.strip().rsplit(None, 3) for line in done.stdout.splitlines()[1:]]  # name, calls, p50, p99
    assert [row[0] for row in rows] == ["quota(year)", "quota(year, page of 20)", "trigger(id)", "quota(year, as_of)"]
    assert all(row[1] == "3" for row in rows), done.stdout
    assert "rebuild" not in done.stdout
    refused = run("bench.projections_bench", "--only", "quota")
    assert refused.returncode != 0 and "--only needs --url" in refused.stderr
