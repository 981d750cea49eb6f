"""``ledger serve`` and ``ledger token create``: the API's commands, registered on the lead's Typer app."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Annotated

import typer

from domain.vocabulary import Role

token_app = typer.Typer(help="Bearer tokens (访问令牌).", no_args_is_help=True)


def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="server processes (each runs its own projection follower)")] = 1,
    no_projections: Annotated[bool, typer.Option("--no-projections", help="do not follow the log here")] = False,
) -> None:
    """Run the HTTP API (and, unless --no-projections, the projection workers)."""
    import uvicorn

    from store.config import database_url

    os.environ["LEDGER_DATABASE_URL"] = database_url()
    os.environ["LEDGER_SERVE_PROJECTIONS"] = "0" if no_projections else "1"
    bound_connections()
    check_store(os.environ["LEDGER_DATABASE_URL"])
    check_port(host, port)
    uvicorn.run("api.serve_cli:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="info")


def serve_forever(url: str, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None) -> None:
    """Serve the API with its projections on ``url`` until interrupted (``ledger demo --serve``)."""
    import uvicorn

    from api.app import create_app

    bound_connections()
    if token:
        # The token itself was printed once on stdout; a log must never hold it.
        print(f"serving on http://{host}:{port}/docs — use the admin token printed above", file=sys.stderr)
    app = create_app(url, run_projections=True)
    settle_heap()
    uvicorn.run(app, host=host, port=port, log_level="info")


#: Allocations between two collections of the youngest generation in a server process (Python's default: 700).
YOUNG_COLLECTION = 50_000


def settle_heap() -> None:
    """Move what the server holds after start-up out of the garbage collector's sight (``gc.freeze``).

    An answer allocates tens of thousands of objects, so full collections run every few answers and
    each one walked every object of the loaded application: 30-40 ms pauses that were most of the
    p99 latency of the projection queries (1M events: scores p99 47 -> 9 ms, open triggers 83 -> 28).
    The youngest generation is also collected every 50,000 allocations rather than 700: an answer's
    objects die with it (no cycles), but parsing a large kept bulletin (105,000 values) ran about 150
    young collections, and what survived them set off collections of the older generations over the
    tree built so far (1M events, SQLite, over HTTP: the 610 KB bulletin 12.7 / 20.2 -> 10.1 / 12.0 ms
    p50 / p99, the 1.6 MB one 26.6 / 32.8 -> 24.7 / 30.4).
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION, *gc.get_threshold()[1:])


def check_port(host: str, port: int) -> None:
    """Refuse (``ValueError``, the CLI's one line and exit 2) a host and port this process cannot listen on, before
    anything is loaded: uvicorn would log its own lines and exit 3, after ``ledger demo`` had loaded a whole year."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def check_store(url: str) -> None:
    """Refuse to serve a store that is not there (no file, or ``ledger init`` never ran); start on one
    that is unreachable now, answering 503 until it is back, as a running server does through an outage."""
    from store.db import require_store, unavailable

    try:
        require_store(url)
    except Exception as exc:
        if not unavailable(exc):
            raise  # StoreMissing and the like: the CLI's one-line error
        # Not initialised cannot be told from unreachable yet; the app logs the outage and serves 503.


def bound_connections() -> None:
    """Give every libpq connection of this process a connect timeout (PGCONNECT_TIMEOUT).

    Connections the library's pool does not make (projections, audit) would otherwise wait for the
    operating system's TCP timeout on an unreachable database.
    """
    from store.config import timeout

    os.environ.setdefault("PGCONNECT_TIMEOUT", str(max(2, round(timeout("POSTGRES_CONNECT_TIMEOUT")))))


def app_from_env() -> object:
    """The app for one server process, configured by ``serve`` through the environment."""
    from api.app import create_app

    app = create_app(run_projections=os.environ.get("LEDGER_SERVE_PROJECTIONS", "1") == "1")
    settle_heap()
    return app


@token_app.command("create")
def create_token(
    actor: Annotated[str, typer.Option(help="who the token speaks for (its subject)")],
    role: Annotated[Role, typer.Option(help="clerk, officer, supervisor, auditor or admin")],
    unit: Annotated[list[str] | None, typer.Option(help="bind to this unit and those below it (repeatable)")] = None,
    ttl_days: Annotated[int | None, typer.Option(min=1, max=3650, help="expire after this many days")] = None,
) -> None:
    """Print a new bearer token (the grant is itself an event)."""
    from api.auth import issue_token
    from store.config import database_url
    from store.db import require_store
    from store.ledger import open_ledger

    ledger = open_ledger(require_store(database_url()))
    try:  # a refusal (say, an unknown unit) becomes the CLI's one-line error in api.cli.main
        ttl = timedelta(days=ttl_days) if ttl_days else None
        token = issue_token(ledger, actor, role, unit or [], actor="ledger-cli", ttl=ttl)
    finally:
        ledger.close()
    print(token)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``token create`` to the ``ledger`` command."""
    app.command("serve")(serve)
    app.add_typer(token_app, name="token")
