"""``ledger query ...``: the projections' answers on the command line (查询命令), as the HTTP API gives them.

A local operator holds the store, so the answers are the whole city's (no token, no territory); they are read
from ``LEDGER_QUERY_DATABASE_URL`` when set (a read replica), as the API's are. Each list prints a table of its
main columns, or with ``--json`` the answer as the API writes it (``items``, ``next_after``); a report prints its
JSON. A full page names the next one on stderr (``--after``), and so does a lag behind the log. Bad input (a time
without its offset, a cursor no page gave, a month that does not exist) is one line on stderr and exit 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from projections.catalog import asked_moment
from projections.queries import Queries, next_after
from store.config import database_url
from store.db import require_store

Unit = Annotated[str | None, typer.Option("--unit", help="a unit id: it and every unit below it (属地)")]
AsOf = Annotated[str | None, typer.Option("--as-of", help="business time, RFC 3339 with offset; default now")]
KnownAt = Annotated[str | None, typer.Option("--known-at", help="recording time, RFC 3339 with offset; default now")]
Limit = Annotated[int | None, typer.Option("--limit", min=1, max=1000, help="at most this many rows (a page)")]
After = Annotated[str | None, typer.Option("--after", help="the last page's next_after")]
Json = Annotated[bool, typer.Option("--json", help="the answer as the HTTP API writes it")]
Year = Annotated[int, typer.Option("--year", min=2000, max=2100)]
#: A table's columns: header, and how a row gives its cell.
Columns = list[tuple[str, Callable[[dict[str, Any]], Any]]]

SCORES: Columns = [
    ("unit", lambda r: r["unit_id"]),
    ("name", lambda r: r["name"]),
    ("score", lambda r: r["score"]),
    ("outcome", lambda r: r["outcome"]),
    ("deductions", lambda r: len(r["deductions"])),
    ("policy", lambda r: r["policy_version"]),
]
TRIGGERS: Columns = [
    ("id", lambda r: r["id"]),
    ("rule", lambda r: r["rule"]),
    ("unit", lambda r: r["subject"]["unit_id"]),
    ("person", lambda r: r["subject"].get("person_id") or ""),
    ("opened", lambda r: r["opened_at"]),
    ("status", lambda r: r["status"]),
    ("decision", lambda r: (r.get("decision") or {}).get("outcome", "")),
]
PETITIONS: Columns = [
    ("id", lambda r: r["id"]),
    ("unit", lambda r: r["unit_id"]),
    ("registered", lambda r: r["registered_at"]),
    ("deadline", lambda r: r["deadline"]),
    ("status", lambda r: r["status"]),
    ("flags", lambda r: " ".join(r["flags"])),
]
CASES: Columns = [
    ("id", lambda r: r["id"]),
    ("unit", lambda r: r["unit_id"]),
    ("violation", lambda r: r["violation"]),
    ("reported", lambda r: r["reported_at"]),
    ("status", lambda r: r["status"]),
    ("flags", lambda r: " ".join(r["flags"])),
]
OFFICERS: Columns = [
    ("id", lambda r: r["id"]),
    ("unit", lambda r: r["unit_id"]),
    ("post", lambda r: r["post"]),
    ("removal due", lambda r: _yes(r["removal_due"])),
    ("removed", lambda r: _yes(r["removed"])),
    ("referred", lambda r: _yes(r["referred"])),
    ("commended", lambda r: _yes(r["commended"])),
]
QUOTA: Columns = [
    ("district", lambda r: r["unit_id"]),
    ("allocated mu", lambda r: r["allocated_mu"]),
    ("used mu", lambda r: r["used_mu"]),
    ("deducted mu", lambda r: r["deducted_mu"]),
    ("remaining mu", lambda r: r["remaining_mu"]),
    ("policy", lambda r: ", ".join(map(str, r.get("policy_versions", [])))),  # rows of a view not yet derived again
]
DEDUCTIONS: Columns = [
    ("district", lambda r: r["unit_id"]),
    ("land quota mu", lambda r: r["land_quota_mu"]),
    ("funds yuan", lambda r: r["consolidation_funds_yuan"]),
    ("model district points", lambda r: r["model_district_points"]),
    ("items", lambda r: len(r["items"])),
]


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


def _moment(option: str, value: str | None) -> datetime | None:
    """An option's time: RFC 3339 with its offset, else the one-line error (``ValueError``: exit 2)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{option} is not an RFC 3339 time: {value!r}") from None
    if moment.utcoffset() is None:
        raise ValueError(f"{option} needs a UTC offset (e.g. {value}+08:00)")
    return asked_moment(moment, option)


def _ask(ask: Callable[[Queries], Any]) -> tuple[Any, dict[str, int]]:
    """The answer of ``ask`` from the store the queries read, and how far the projections had followed the log
    (``position`` and ``lag``, as the API's answers name them); a lag is noted on stderr."""
    queries = Queries(require_store(os.environ.get("LEDGER_QUERY_DATABASE_URL") or database_url()))
    try:
        answer = ask(queries)
        status = queries.status()
    finally:
        queries.close()
    followed = {
        "position": min((int(row["position"]) for row in status), default=0),
        "lag": max((int(row["lag"]) for row in status), default=0),
    }
    if followed["lag"]:
        typer.echo(f"ledger: note: the projections are {followed['lag']} positions behind the log", err=True)
    return answer, followed


def _list(
    name: str,
    columns: Columns,
    args: tuple[Any, ...],
    as_of: str | None,
    known_at: str | None,
    limit: int | None,
    after: str | None,
    json_output: bool,
    unit: str | None = None,
) -> None:
    """Print the list ``name`` (a :class:`Queries` method, asked with ``args`` and the options), and name its next
    page on stderr when this one is full. A ``unit`` it is asked of must exist (as the API's 404 says)."""
    options = {"as_of": _moment("--as-of", as_of), "known_at": _moment("--known-at", known_at)}

    def ask(queries: Queries) -> Any:
        if unit is not None and not queries.has_unit(unit):
            raise ValueError(f"--unit: no unit {unit!r} is registered")
        return getattr(queries, name)(*args, **options, limit=limit, after=after)

    rows, followed = _ask(ask)
    following = next_after(name, rows, limit)
    if json_output:
        typer.echo(orjson.dumps({"items": rows, **followed, "next_after": following}).decode())
    else:
        table = Table(*(header for header, _ in columns))
        for row in rows:
            table.add_row(*(str(cell(row)) for _, cell in columns))
        Console(width=200).print(table)
    if following is not None:
        typer.echo(f"ledger: more: --after {following}", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``query`` sub-app to the ``ledger`` CLI."""
    sub = typer.Typer(help="Projection queries (查询): scores, triggers, the petition board, ...", no_args_is_help=True)

    @sub.command()
    def scores(
        year: Year,
        unit: Unit = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        limit: Limit = None,
        after: After = None,
        json_output: Json = False,
    ) -> None:
        """Each unit's target-assessment score (目标考核得分) for a year, by unit id."""
        _list("scores", SCORES, (year, unit), as_of, known_at, limit, after, json_output, unit)

    @sub.command()
    def triggers(
        status: Annotated[str | None, typer.Option("--status", help="open or decided")] = None,
        unit: Unit = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        limit: Limit = None,
        after: After = None,
        json_output: Json = False,
    ) -> None:
        """Accountability triggers (问责线索), in the order they opened."""
        _list("triggers", TRIGGERS, (status, unit), as_of, known_at, limit, after, json_output, unit)

    @sub.command()
    def petitions(
        status: Annotated[str | None, typer.Option("--status", help="open, overdue or closed")] = None,
        flag: Annotated[
            str | None, typer.Option("--flag", help="nail_case, skip_level, repeat, key, unowned, ...")
        ] = None,
        unit: Unit = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        limit: Limit = None,
        after: After = None,
        json_output: Json = False,
    ) -> None:
        """The petition board (信访台账), in registration order."""
        _list("petitions", PETITIONS, (status, flag, unit), as_of, known_at, limit, after, json_output, unit)

    @sub.command()
    def cases(
        status: Annotated[str | None, typer.Option("--status", help="open or closed")] = None,
        flag: Annotated[
            str | None,
            typer.Option("--flag", help="major, supervised, supervision_overdue, not_investigated or wrongful"),
        ] = None,
        unit: Unit = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        limit: Limit = None,
        after: After = None,
        json_output: Json = False,
    ) -> None:
        """The case board (案件台账), in registration order."""
        _list("cases", CASES, (status, flag, unit), as_of, known_at, limit, after, json_output, unit)

    @sub.command()
    def officers(
        status: Annotated[
            str | None, typer.Option("--status", help="removal_due, removed, referred or commended")
        ] = None,
        unit: Unit = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        limit: Limit = None,
        after: After = None,
        json_output: Json = False,
    ) -> None:
        """The officer registry (执法人员档案), in registration order."""
        _list("officers", OFFICERS, (status, unit), as_of, known_at, limit, after, json_output, unit)

    @sub.command()
    def quota(
        year: Year,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        limit: Limit = None,
        after: After = None,
        json_output: Json = False,
    ) -> None:
        """The quota ledger per district (用地指标台账, R19)."""
        _list("quota", QUOTA, (year,), as_of, known_at, limit, after, json_output)

    @sub.command("quota-deductions")
    def quota_deductions(
        year: Year,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        limit: Limit = None,
        after: After = None,
        json_output: Json = False,
    ) -> None:
        """R4's deductions per district: land quota, consolidation funds, model-district points (指标扣减)."""
        _list("quota_deductions", DEDUCTIONS, (year,), as_of, known_at, limit, after, json_output)

    @sub.command()
    def report(
        kind: Annotated[str, typer.Argument(help="daily, weekly or monthly (日调度, 周汇报, 月通报)")],
        period: Annotated[str, typer.Argument(help="YYYY-MM-DD, YYYY-Www or YYYY-MM")],
        as_of: AsOf = None,
        known_at: KnownAt = None,
    ) -> None:
        """An R13 report as JSON: as of its period's end and as known now by default (its bulletin as issued with
        --known-at at the period's end), or as of / as known at the moments given."""
        if kind not in ("daily", "weekly", "monthly"):
            raise ValueError(f"a report is daily, weekly or monthly, not {kind!r}")
        moments = {"as_of": _moment("--as-of", as_of), "known_at": _moment("--known-at", known_at)}
        answer, followed = _ask(lambda q: getattr(q, kind)(period, **moments))
        typer.echo(orjson.dumps({**answer, **followed}, option=orjson.OPT_INDENT_2).decode())

    app.add_typer(sub, name="query")
