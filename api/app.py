"""The HTTP API (接口): every path of API.md under /v1, one router per resource.

Requests pass a guard first (bodies at most ``MAX_BODY_BYTES``, JSON only), then bearer-token
auth and the permission matrix; errors leave as problem details (api.problems).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problems, projections_link
from api.deps import authorize, ledger_of, open_when_reachable
from api.problems import MAX_BODY_BYTES, problem_response
from api.routers import agreements, audit, cases, people, petitions, policy, queries, tokens, triggers, units
from audit.checkpoints import run_checkpoints, signing_key_path
from domain.application import Ledger
from store.config import database_url
from store.db import unavailable

JSON_TYPES = ("application/json", "application/problem+json", "application/merge-patch+json")


def _operation_id(route: APIRoute) -> str:
    """Operation ids from tags (units-register_unit), as the full-stack template does."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


class BodyGuard:
    """Refuse oversized (413) and non-JSON (415) bodies before anything reads them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await self._refuse(scope, receive, send, 413, f"the body may be at most {MAX_BODY_BYTES} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await self._refuse(scope, receive, send, 413, f"the body may be at most {MAX_BODY_BYTES} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if body.strip() and media_type not in JSON_TYPES:
            await self._refuse(scope, receive, send, 415, "send the body as application/json")
            return
        refusal = inspect_body(body)
        if refusal is not None:
            await problem_response(*refusal[:2], errors=refusal[2])(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        await problem_response(status, detail)(scope, receive, send)


#: JSON bodies nest at most this deep (commands need 3): deeper is refused before parsing recurses.
MAX_DEPTH = 16
#: Characters no field may hold: C0/C1 controls but tab and newlines, DEL, lone surrogates (which
#: cannot be stored as UTF-8) and bidirectional overrides (which make a record read differently).
FORBIDDEN_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def inspect_body(body: bytes) -> tuple[int, str, list[dict[str, Any]]] | None:
    """Refuse a body that is not UTF-8 (400), nests too deep (400) or holds forbidden characters (422).

    Malformed JSON is left to FastAPI (400 with the parser's message); everything else passes.
    """
    if not body.strip():
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return 400, f"the body is not valid UTF-8 (byte {exc.start})", []
    if _bracket_depth(text) > MAX_DEPTH:
        return 400, f"the body nests deeper than {MAX_DEPTH} levels", []
    try:
        value = json.loads(text)
    except ValueError:
        return None
    errors = [
        {"loc": ["body", *loc], "msg": "control, surrogate or bidi-override character", "type": "forbidden_char"}
        for loc in _bad_strings(value, [])
    ]
    if errors:
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors[:5])
        return 422, f"forbidden characters in {where}", errors
    return None


def _bracket_depth(text: str) -> int:
    """The deepest nesting of [ and { outside strings (a linear scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _bad_strings(value: Any, loc: list[str | int]) -> Iterator[list[str | int]]:
    if isinstance(value, str):
        if FORBIDDEN_CHARS.search(value):
            yield loc
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _bad_strings(item, [*loc, i])
    elif isinstance(value, dict):
        for key, item in value.items():
            if FORBIDDEN_CHARS.search(key):
                yield [*loc, "<key>"]
            yield from _bad_strings(item, [*loc, key])


CHECKPOINT_SECONDS = 300.0  # a signed tree head every five minutes while serving


#: Seconds between restarts of a background worker that failed (say, the database went away).
RESTART_SECONDS = (0.5, 10.0)
log = logging.getLogger("ledger.api")


def supervised(work: Callable[[], None], stop: threading.Event) -> None:
    """Run a background worker until ``stop``; restart it, with growing pauses, if it fails.

    A worker that died with the database would otherwise leave this server's projections
    behind forever after the database came back.
    """
    pause = RESTART_SECONDS[0]
    while not stop.is_set():
        try:
            work()
            pause = RESTART_SECONDS[0]
        except Exception as exc:  # every failure: the worker must outlive outages
            name = threading.current_thread().name
            log.warning("%s worker failed, restarting in %.1f s: %s", name, pause, type(exc).__name__)
            stop.wait(pause)
            pause = min(pause * 2, RESTART_SECONDS[1])


def _open_unless_down(url: str) -> Ledger | None:
    """The ledger on ``url``, or None while the store is unreachable (requests open it once it is back).

    A server started during an outage then answers 503 from /healthz and every route, as one that
    was running when the store went away does, rather than never starting.
    """
    try:
        return open_when_reachable(url)
    except Exception as exc:
        if not unavailable(exc):
            raise
        reason = " ".join(str(exc).split())
        log.warning("the store is unreachable, answering 503 until it is back: %s: %s", type(exc).__name__, reason)
        return None


def create_app(url: str | None = None, *, ledger: Ledger | None = None, run_projections: bool = False) -> FastAPI:
    """The API on the store at ``url`` (default LEDGER_DATABASE_URL), or on a given ledger."""
    url = url or database_url()
    owned = ledger is None
    app_ledger = ledger if ledger is not None else _open_unless_down(url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The queries' connections, kept open between requests (PostgreSQL: ~3 ms to open one).
        app.state.reads = projections_link.reads(app.state.query_url)
        stop = threading.Event()
        workers: list[threading.Thread] = []
        bulletins = None
        if run_projections:
            from projections.engine import run
            from projections.reports import Bulletins

            bulletins = Bulletins(url)  # issues the reports of periods as they end, and back-issues older ones
            workers.append(
                threading.Thread(
                    target=supervised, args=(lambda: run(url, stop=stop, idle=bulletins), stop), name="projections"
                )
            )
            # Checkpoints are signed only where the signing key is: the audit host, not every API worker.
            if signing_key_path().exists():
                workers.append(
                    threading.Thread(
                        target=supervised,
                        args=(lambda: run_checkpoints(url, CHECKPOINT_SECONDS, stop), stop),
                        name="checkpoints",
                    )
                )
            for worker in workers:
                worker.daemon = True
                worker.start()
        try:
            yield
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=5)
            if bulletins is not None:
                bulletins.close(timeout=5)
            if app.state.reads is not None:
                app.state.reads.close()
            if owned and app.state.ledger is not None:
                app.state.ledger.close()  # opened here, or by the first request after an outage at start

    app = FastAPI(
        title="Accountability Ledger (责任追究台账)",
        version="1",
        summary="Land-resources enforcement, petitions and accountability, as an append-only event log.",
        description=(
            "Errors are `application/problem+json` (RFC 9457). Bodies are JSON, at most "
            f"{MAX_BODY_BYTES} bytes. Commands take `Idempotency-Key` and `If-Match`; queries take "
            "`X-Ledger-Position` (read your writes)."
        ),
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.url = url
    # Projection queries may read a streaming replica; commands and audit always use the primary.
    app.state.query_url = os.environ.get("LEDGER_QUERY_DATABASE_URL") or url
    app.state.ledger = app_ledger
    problems.install(app)
    app.add_middleware(BodyGuard)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorize)], responses=problems.RESPONSES)
    for module in (units, people, cases, petitions, agreements, policy, triggers, tokens, queries, audit):
        v1.include_router(module.router)
    app.include_router(v1)

    @app.get("/healthz", tags=["health"], responses={503: problems.RESPONSES[503]})
    def healthz(request: Request) -> Any:
        """200 when the store is reachable, else 503 saying why."""
        try:
            head = ledger_of(request.app).recorder.max_notification_id() or 0
        except Exception as exc:  # whatever it is, the store cannot answer: say why
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
            return problem_response(
                503,
                f"the store is unreachable: {type(exc).__name__}: {reason}",
                headers={"Retry-After": str(problems.RETRY_AFTER_SECONDS)},
            )
        return JSONResponse({"status": "ok", "head": head})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (problems.Problem, problems.FieldProblem):
                components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
