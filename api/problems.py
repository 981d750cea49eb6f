"""Problem details (RFC 9457 问题详情): the one place where errors become HTTP answers.

Every refusal — a domain rule, a bad field, a missing token, a stale version — leaves the API as
``application/problem+json`` with ``type``, ``title``, ``status``, ``detail``; field problems add
``errors``, rule refusals add ``rule``. Nothing here records anything: an error changes no state.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
from collections.abc import Iterator
from typing import Any, Literal

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from audit.bundle import BundleError, StoreFailsCheck
from audit.service import ProofUnavailable
from domain.errors import DomainError, InvalidValue, RecordExists, RecordNotFound, RuleViolation, StaleVersion
from store.db import unavailable

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://ledger.example/problems/"
#: The largest request body the API reads (64 KiB): every command fits easily, a flood does not.
MAX_BODY_BYTES = 64 * 1024
#: Seconds a client is told to wait (Retry-After) when the store is unavailable.
RETRY_AFTER_SECONDS = 5
log = logging.getLogger("ledger.api")

TITLES: dict[int, str] = {
    400: "Malformed request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Refused by a rule",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid field",
    429: "Too many failed attempts",
    500: "The store fails its integrity check",
    503: "Service unavailable",
}
SLUGS: dict[int, str] = {
    400: "malformed",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "rule",
    412: "stale-version",
    413: "too-large",
    415: "unsupported-media-type",
    422: "invalid-field",
    429: "rate-limited",
    500: "store-integrity",
    503: "unavailable",
}


class FieldProblem(BaseModel):
    """One field's problem (字段错误): where it is and what is wrong."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document (问题详情)."""

    type: str
    title: str
    status: int
    detail: str
    rule: str | None = Field(default=None, description="the rule that refused the action (409)")
    errors: list[FieldProblem] | None = Field(default=None, description="field problems (400, 422)")
    first_bad_position: int | None = Field(
        default=None, description="where the store first fails its integrity check (500, as /audit/verify names it)"
    )


class ProblemError(Exception):
    """An HTTP refusal raised by the API itself (auth, territory, media type, availability)."""

    def __init__(
        self, status: int, detail: str, *, headers: dict[str, str] | None = None, rule: str | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.rule = rule


#: Where a request carries a value besides its body (FastAPI's ``loc`` names them so).
Where = Literal["query", "header", "path"]


class InvalidParameter(InvalidValue):
    """An invalid value the request carried outside its body: in the query string, a header or the path."""

    def __init__(self, message: str, where: Where, name: str | tuple[str, ...]) -> None:
        super().__init__(message, name)
        self.where = where


@contextlib.contextmanager
def located(**where: Where) -> Iterator[None]:
    """Report a value the domain refuses under one of these names as the request's query, header or path
    value (``located(id="path")``), not the body's: the domain names a value, only the API knows where
    it came from."""
    try:
        yield
    except InvalidParameter:
        raise
    except InvalidValue as exc:
        place = where.get(exc.field or "")
        if place is None:
            raise
        raise InvalidParameter(exc.message, place, exc.field_path) from exc


def problem_response(
    status: int,
    detail: str,
    *,
    rule: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    first_bad_position: int | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + SLUGS.get(status, str(status)),
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if rule is not None:
        body["rule"] = rule
    if errors is not None:
        body["errors"] = errors
    if first_bad_position is not None:
        body["first_bad_position"] = first_bad_position
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def domain_status(error: DomainError) -> int:
    """The HTTP status of a domain error."""
    if isinstance(error, RecordNotFound):
        return 404
    if isinstance(error, StaleVersion):
        return 412
    if isinstance(error, InvalidValue):
        return 422
    return 409  # RuleViolation, RecordExists and any other refusal by a rule


def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = domain_status(exc)
    if isinstance(exc, InvalidValue):
        where = exc.where if isinstance(exc, InvalidParameter) else "body"
        path = list(exc.field_path)
        if exc.field == "idempotency_key":  # the one value a command refuses that came in a header
            where, path = "header", ["Idempotency-Key"]
        errors = [{"loc": [where, *path], "msg": exc.message, "type": "invalid_value"}]
        return problem_response(422, exc.message, errors=errors)
    if isinstance(exc, (RuleViolation, RecordExists)) or status == 409:
        rule = exc.rule or "rule"
        return problem_response(409, f"{rule}: {exc.message}", rule=rule)
    return problem_response(status, exc.message, rule=exc.rule if status == 412 else None)


def _clean(value: Any) -> str | int:
    return value if isinstance(value, int) else str(value)


#: Pydantic's error types for a body that is JSON but not an object (a list, a string, a number, null).
NOT_AN_OBJECT = frozenset({"model_attributes_type", "model_type", "dict_type"})


def _malformed(errors: list[dict[str, Any]]) -> str | None:
    """Why the body as a whole is malformed (400), or None when only its fields are wrong (422).

    API.md keeps 422 for an invalid field: a body that is absent where the command needs one, is not
    JSON, or is JSON but not an object has no field to name, so it is malformed, as unparseable JSON is.
    """
    for error in errors:
        whole_body = error["loc"] == ["body"]
        if error["type"] == "json_invalid":
            return "the body is not well-formed JSON"
        if whole_body and error["type"] == "missing":
            return "this command needs a JSON object body; none was sent"
        if whole_body and error["type"] in NOT_AN_OBJECT:
            return "the body must be a JSON object"
    return None


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    errors = [
        {
            "loc": [_clean(part) for part in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in raw
    ]
    malformed = _malformed(errors)
    if malformed is not None:
        return problem_response(400, malformed, errors=errors)
    summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
    return problem_response(422, summary or "invalid request", errors=errors)


def _allowed_methods(request: Request) -> str:
    """Every method the API documents for this path (the router names only its first match's)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, request.url.path):
            methods |= {m.upper() for m in operations}
    return ", ".join(sorted(methods))


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    elif exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}"
    return problem_response(exc.status_code, detail, headers=headers)


def _proof_unavailable(_: Request, exc: Exception) -> JSONResponse:
    return problem_response(404, str(exc))


def _bundle_refused(_: Request, exc: Exception) -> JSONResponse:
    return problem_response(409, f"audit-bundle: {exc}", rule="audit-bundle")


def _store_fails_check(_: Request, exc: Exception) -> JSONResponse:
    """500 naming the first bad position: the store's own evidence fails its check, a fault on the server's side that
    no change to the request can mend (not 409: no rule refuses the caller), so it alarms as a server fault does.
    ``/v1/audit/verify`` reports the same finding with a 200, since there the verdict is the answer asked for."""
    assert isinstance(exc, StoreFailsCheck)
    log.error("audit export refused: %s", exc)
    return problem_response(500, str(exc), first_bad_position=exc.first_bad_position)


def _problem_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status, exc.detail, headers=exc.headers, rule=exc.rule)


def store_unavailable(exc: BaseException) -> JSONResponse:
    """503 with Retry-After: the store is down, locked or read-only; nothing was recorded."""
    # The driver's message names the host or the lock, never a password (URLs are never in it).
    reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}"
    log.warning("store unavailable: %s", reason)
    return problem_response(
        503,
        f"the store is unavailable, nothing was recorded; retry later ({reason})",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _store_error(_: Request, exc: Exception) -> JSONResponse:
    if not unavailable(exc):
        raise exc  # a real bug: let it be a 500 with its traceback in the log
    return store_unavailable(exc)


def install(app: FastAPI) -> None:
    """Route every error kind through the problem handlers."""
    for kind in (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError):
        app.add_exception_handler(kind, _store_error)
    app.add_exception_handler(sqlite3.OperationalError, _store_error)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(ProofUnavailable, _proof_unavailable)
    app.add_exception_handler(BundleError, _bundle_refused)
    app.add_exception_handler(StoreFailsCheck, _store_fails_check)


def _documented(status: int, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


#: The answer of a route that reads the store's evidence whole (the audit export) when the store fails its check.
INTEGRITY_FAULT: dict[int | str, dict[str, Any]] = {
    500: _documented(500, "The store fails its integrity check in the range (`first_bad_position` names where)")
}

#: The problem answers every /v1 route documents in the OpenAPI.
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented(400, "Body absent where the command needs one, not JSON, or not a JSON object"),
    401: _documented(401, "Missing, unknown, revoked or expired bearer token"),
    403: _documented(403, "The token's role or territory does not allow this"),
    404: _documented(404, "No such record"),
    405: _documented(405, "Method not allowed (see Allow)"),
    409: _documented(409, "A domain rule refuses the action (`rule` names it)"),
    412: _documented(412, "If-Match names a version the record has moved on from"),
    413: _documented(413, f"Body larger than {MAX_BODY_BYTES} bytes"),
    415: _documented(415, "Body is not application/json"),
    422: _documented(422, "A field is invalid (`errors` lists them)"),
    429: _documented(429, "Too many failed authentication attempts from this client (see Retry-After)"),
    503: _documented(503, "The store (or an optional component) is unavailable"),
}
