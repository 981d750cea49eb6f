"""The bench's app instance (压测用应用): the product's API plus a bare ``/bench/noop`` endpoint.

The noop route exists only here, never in the product: it is the baseline of the HTTP rows
(the same server, middleware and load generator, no work behind the route).
``uvicorn --factory bench.http_app:app_from_env`` serves the store at ``LEDGER_DATABASE_URL``.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from api.serve_cli import settle_heap


def app_from_env() -> FastAPI:
    app = create_app()

    @app.get("/bench/noop", include_in_schema=False)
    def noop() -> dict[str, bool]:
        return {"ok": True}

    settle_heap()  # as ``ledger serve`` does
    return app
