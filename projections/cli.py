"""``ledger projections run|rebuild|status``: projection workers from the command line (投影命令)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from projections import engine
from projections.catalog import NAMES, select
from projections.reports import issuer
from store.config import database_url
from store.db import require_store, unavailable

Names = Annotated[list[str] | None, typer.Argument(help=f"projections ({', '.join(NAMES)}); all if none")]


def _fail(error: Exception) -> typer.Exit:
    """One line on stderr with the prefix of every ``ledger`` error; exit 2 if the store went away, else 1."""
    if unavailable(error):
        typer.echo(f"ledger: the store is unreachable: {' '.join(str(error).split())}", err=True)
        return typer.Exit(2)
    typer.echo(f"ledger: {' '.join(str(error).split())}", err=True)
    return typer.Exit(1)


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("lag {task.fields[lag]}"),
        TimeRemainingColumn(),
    )


def _reporter(progress: Progress, label: str) -> Callable[[int, int], None]:
    task = progress.add_task(label, total=None, lag="?")

    def report(position: int, head: int) -> None:
        progress.update(task, completed=position, total=head, lag=max(head - position, 0))

    return report


def register(app: typer.Typer) -> None:
    """Add the ``projections`` sub-app to the ``ledger`` CLI."""
    sub = typer.Typer(help="Projection workers: follow the log, rebuild from zero, show lag.", no_args_is_help=True)

    @sub.command("run")
    def run_(names: Names = None, batch_size: int = engine.DEFAULT_BATCH, poll_interval: float = 0.2) -> None:
        """Catch up with a progress bar, then follow the log until interrupted (and, with the current view, issue
        each report once its period ends)."""
        url = require_store(database_url())  # a missing or unreachable store is the CLI's one-line error
        try:
            select(names)
            with _bar() as progress:
                engine.catch_up(url, names, _reporter(progress, "catching up"), batch_size=batch_size)
            stop = threading.Event()
            idle = issuer(url, names)  # with the current view, the reports as their periods end
            try:
                engine.run(url, names, stop=stop, poll_interval=poll_interval, batch_size=batch_size, idle=idle)
            except KeyboardInterrupt:
                stop.set()
            finally:
                if idle is not None:
                    idle.close()  # a report being folded is kept, not cut off
        except Exception as error:  # any failure is reported as one line, never a traceback
            raise _fail(error) from None

    @sub.command()
    def rebuild(names: Names = None, batch_size: int = engine.REBUILD_BATCH) -> None:
        """Drop the views, reset tracking and process the whole log again."""
        url = require_store(database_url())
        try:
            select(names)
            with _bar() as progress:
                position = engine.rebuild(url, names, _reporter(progress, "rebuilding"), batch_size=batch_size)
            typer.echo(f"rebuilt {', '.join(names or NAMES)} to position {position}")
        except Exception as error:  # any failure is reported as one line, never a traceback
            raise _fail(error) from None

    @sub.command()
    def status(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Each projection's position and lag behind the log."""
        url = require_store(database_url())
        try:
            rows: list[dict[str, Any]] = engine.status(url)
        except Exception as error:  # any failure is reported as one line, never a traceback
            raise _fail(error) from None
        if json_output:
            import json

            typer.echo(json.dumps(rows))
            return
        table = Table("projection", "position", "head", "lag")
        for row in rows:
            table.add_row(row["name"], str(row["position"]), str(row["head"]), str(row["lag"]))
        Console().print(table)

    app.add_typer(sub, name="projections")
