"""The ``ledger`` command line (命令行). Typer, because its commands are typed functions like the
rest of the code and it brings help, completion and rich errors without a framework of our own.

Each area adds its own commands: projections (run, rebuild, status), queries (query scores,
triggers, petitions, officers, quota, quota-deductions, report), audit (verify, export, verify-bundle,
checkpoint), serving (serve, token). Errors are one line on stderr, however narrow
the terminal and whether or not stderr is one: exit 1 when the command refuses or finds a fault (a
domain rule, a tampered store), 2 when it cannot run (usage, configuration, a store that is missing,
not initialised or unreachable).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from api import serve_cli
from api.auth import issue_admin_token_for_cli
from api.serve_cli import check_port, serve_forever
from audit import cli as audit_cli
from audit.history import history as record_history
from domain.errors import DomainError
from projections import cli as projections_cli
from projections import query_cli
from store.config import database_url, redact
from store.db import StoreMissing, require_store, unavailable
from store.ledger import init_store, open_ledger

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="The accountability ledger (问责台账).",
)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    say(message)
    return typer.Exit(code)


def say(message: str) -> None:
    """``ledger: message`` as one line on stderr: typer.echo never wraps (a rich console wraps at its
    width, 80 columns when stderr is not a terminal), and a driver's multi-line message is joined."""
    typer.echo(f"ledger: {' '.join(message.split())}", err=True)


@app.command()
def init() -> None:
    """Create the store's schema and keys (idempotent)."""
    url = database_url()
    init_store(url)
    typer.echo(f"store ready: {redact(url)}")


@app.command()
def demo(
    serve: Annotated[bool, typer.Option("--serve", help="serve the demo over HTTP afterwards")] = False,
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Load the Laiwu demo year into an empty store and print an admin token."""
    from api.demo import DemoRefused, load_demo

    if serve:
        check_port(host, port)  # before the year is loaded, not after
    url = database_url()
    init_store(url)
    try:
        summary = load_demo(url)
    except DemoRefused as e:
        raise fail(str(e)) from None
    for line in summary.lines():
        typer.echo(line)
    token = issue_admin_token_for_cli(url)
    typer.echo(f"admin token: {token}")
    if serve:
        serve_forever(url, host=host, port=port, token=token)


@app.command()
def history(
    kind: Annotated[str, typer.Argument(help="unit, person, case, petition, agreement, policy")],
    record_id: Annotated[str, typer.Argument(metavar="ID")],
) -> None:
    """Print a record's events in order: position, type, actor, business and recording time, hash."""
    ledger = open_ledger(require_store(database_url()))
    try:
        for row in record_history(ledger, kind, record_id):
            data = " ".join(f"{k}={v}" for k, v in row["data"].items())
            typer.echo(
                f"#{row['position']} v{row['version']} {row['type']} by {row['actor']} "
                f"occurred {row['occurred_at']} recorded {row['recorded_at']} hash {row['hash'][:16]} {data}"
            )
    finally:
        ledger.close()


def _register_areas() -> None:
    for area in (projections_cli, query_cli, audit_cli, serve_cli):
        area.register(app)


def main() -> None:
    """Entry point: domain refusals and bad configuration become one-line errors."""
    _register_areas()
    try:
        code = app(standalone_mode=False)  # click returns the code of a typer.Exit here
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except DomainError as e:
        say(str(e))
        sys.exit(1)
    except StoreMissing as e:
        say(str(e))
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as e:  # usage errors: bad options and arguments, shown as click does
        e.show()  # type: ignore[attr-defined]
        sys.exit(getattr(e, "exit_code", 2))
    except (ValueError, FileNotFoundError, OSError) as e:
        say(str(e))
        sys.exit(2)
    except Exception as e:
        if not unavailable(e):
            raise  # a bug: its traceback is what a report of it needs
        say(f"the store {_store_name()} is unreachable: {type(e).__name__}: {e}")
        sys.exit(2)


def _store_name() -> str:
    """The store a command failed to reach: the primary, and the query replica when one is set (`ledger query`
    reads it, so either may be the one away; the driver's error beside it names the host)."""
    try:
        name = redact(database_url())
    except ValueError:
        name = "(no valid LEDGER_DATABASE_URL)"
    replica = os.environ.get("LEDGER_QUERY_DATABASE_URL")
    if replica:
        try:
            name += f" or its query replica {redact(replica)}"
        except ValueError:
            name += " or its query replica (no valid LEDGER_QUERY_DATABASE_URL)"
    return name
