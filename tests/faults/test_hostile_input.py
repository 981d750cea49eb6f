"""Hostile and malformed input (恶意输入): refused with 4xx problem details, never a 5xx, nothing recorded.

Limits (documented in docs/reliability.md and the OpenAPI): bodies at most 64 KiB (413), JSON
nested at most 16 deep (400), UTF-8 only (400), no control / lone-surrogate / bidi-override
characters in any string (422), every field bounded and typed, unknown fields refused (422).
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from api.app import MAX_DEPTH, create_app
from api.problems import MAX_BODY_BYTES
from domain.application import Ledger
from domain.vocabulary import MisconductKind
from tests.faults.conftest import LONG, auth, petition, seed_ledger

PROBLEM = "application/problem+json"
INJECTIONS = [
    "'; DROP TABLE stored_events; --",
    '" OR 1=1 --',
    "Robert'); DELETE FROM ledger_auth_failures;--",
    "<script>alert(1)</script>",
    "{{7*7}} ${7*7} #{7*7}",
    "../../../../etc/passwd",
    "$(rm -rf /) `id`",
    "%00%0d%0aSet-Cookie: x=1",
    "\\u0000 literal backslash-u",
    "赵大娘 🧧 ﷽ 𠀀",
]
FORBIDDEN = ["nul\x00byte", "esc\x1b[31m", "bell\x07", "del\x7f", "c1\x85", "surrogate\ud800", "bidi\u202etxt"]
LONG_TEXT = ["𠀀" * 5000, "x" * 4001, "长" * 4001]
NOT_IDS = ["..", "a b", "x" * 65, "' OR '1'='1", "Ω", "-leading", "a/b", "%2e%2e", "a%09b", "a%00b", "_"]
DATES = [
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T23:59:59-23:59",
    "1900-01-01T00:00:00+08:00",
    "2999-01-01T00:00:00+08:00",
    "2024-02-30T09:00:00+08:00",
    "2024-03-01T09:00:00",
    "+275760-09-13T00:00:00Z",
    "now",
    "",
    10**20,
    -1,
]


@pytest.fixture
def client(store_url: str, ledger: Ledger) -> Iterator[tuple[TestClient, dict[str, str]]]:
    tokens = seed_ledger(ledger)
    with TestClient(create_app(store_url, ledger=ledger), raise_server_exceptions=False) as c:
        yield c, tokens


def refused(r: Any, *statuses: int) -> None:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == PROBLEM


def string_fields(schema: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """The string-typed properties of a request body schema ($ref resolved)."""
    components = schema["components"]["schemas"]
    ref = body.get("$ref") or next((s.get("$ref") for s in body.get("anyOf", []) if "$ref" in s), None)
    if ref is None:
        return []
    names = []
    for name, prop in components[ref.rsplit("/", 1)[-1]].get("properties", {}).items():
        kinds = [prop.get("type")] + [s.get("type") for s in prop.get("anyOf", [])]
        if "string" in kinds:
            names.append(name)
    return names


def test_every_string_field_refuses_forbidden_characters_and_overlong_text(
    client: tuple[TestClient, dict[str, str]], ledger: Ledger
) -> None:
    http, tokens = client
    admin = auth(tokens["admin"])
    schema = http.get("/openapi.json").json()
    before = ledger.recorder.max_notification_id()
    tried = 0
    for path, operations in schema["paths"].items():
        post = operations.get("post")
        if not post or "requestBody" not in post:
            continue
        body_schema = post["requestBody"]["content"]["application/json"]["schema"]
        concrete = re.sub(r"\{[^}]+\}", "t1", path)
        for field in string_fields(schema, body_schema):
            for payload in FORBIDDEN + (LONG_TEXT if LONG else LONG_TEXT[:1]):
                # json.dumps escapes a lone surrogate as \\ud800, which is how a client would send it.
                raw = json.dumps({field: payload}).encode()
                r = http.post(concrete, content=raw, headers={**admin, "Content-Type": "application/json"})
                refused(r, 400, 404, 409, 413, 422)
                tried += 1
    assert tried > 100
    assert ledger.recorder.max_notification_id() == before


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_payloads_are_stored_verbatim_as_text(
    client: tuple[TestClient, dict[str, str]], ledger: Ledger, payload: str
) -> None:
    http, tokens = client
    clerk = auth(tokens["clerk"])
    body = petition("inj-1", subject=payload, petitioner=payload, note=payload)
    r = http.post("/v1/petitions", json=body, headers=clerk)
    assert r.status_code == 201, r.text
    seen = http.get("/v1/petitions/inj-1", headers=auth(tokens["clerk"], **{"X-Purpose": "x"})).json()
    assert seen["subject"] == payload
    before = ledger.recorder.max_notification_id()
    r = http.post("/v1/petitions", json=petition(payload), headers=clerk)  # as an id: not an id
    refused(r, 422)
    r = http.post("/v1/petitions/inj-1/reply", json={"summary": payload, "unknown": payload}, headers=clerk)
    refused(r, 422)
    assert ledger.recorder.max_notification_id() == before


def test_malformed_bodies(client: tuple[TestClient, dict[str, str]], ledger: Ledger) -> None:
    http, tokens = client
    clerk = auth(tokens["clerk"], **{"Content-Type": "application/json"})
    before = ledger.recorder.max_notification_id()
    cases: list[tuple[bytes, int]] = [
        (b'{"subject": "\xff\xfe invalid utf-8"}', 400),
        (b"[" * 100_00 + b"]" * 100_00, 400),  # deep nesting within the size limit
        (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), 400),
        (b'{"unit_id": "t1",', 400),
        (b"", 400),
        (b"null", 400),
        (b"[]", 400),
        (b'"just a string"', 400),
        (b'{"petitioner_count": 1e999}', 422),
        (b'{"petitioner_count": NaN}', 422),
        (b'{"id": "a", "id": "b"}', 400),  # a field named twice: the parser would keep the last
        (b" " * (MAX_BODY_BYTES + 1), 413),
    ]
    for raw, status in cases:
        refused(http.post("/v1/petitions", content=raw, headers=clerk), status)
    amendment = {"effective_from": "2024-01-01T00:00:00+08:00", "params": {"handling_days": {"a": {"b": {"c": 1}}}}}
    refused(http.post("/v1/policy/amendments", json=amendment, headers=auth(tokens["admin"])), 422)
    big = {"effective_from": "2024-01-01T00:00:00+08:00", "params": {f"p{i}": i for i in range(3000)}}
    refused(http.post("/v1/policy/amendments", json=big, headers=auth(tokens["admin"])), 413, 422)
    assert ledger.recorder.max_notification_id() == before


AMEND = {"effective_from": "2024-01-01T00:00:00+08:00"}
CLUE = {"unit_id": "t1", "violation": "illegal_land_use", "source": "patrol"}
#: A flag, a count or an amount given as another JSON type: pydantic's lax mode would read each as a value
#: (``true`` as 1, ``"yes"`` as true, ``"1e3"`` as 1,000) and record it.
WRONG_TYPES = [
    ("/v1/petitions", petition("typed", petitioner_count=True)),
    ("/v1/petitions", petition("typed", petitioner_count="7")),
    ("/v1/petitions", petition("typed", petitioner_count=7.0)),
    ("/v1/petitions", petition("typed", skip_level="yes")),
    ("/v1/petitions", petition("typed", skip_level=1)),
    ("/v1/policy/amendments", {**AMEND, "params": {"handling_days": True}}),
    ("/v1/policy/amendments", {**AMEND, "params": {"acceptance_days": "30"}}),
    ("/v1/people/leader1/findings", {"report_id": "r1", "substantiated": "y"}),
    ("/v1/cases", {**CLUE, "area_mu": "1e3"}),
    ("/v1/cases", {**CLUE, "value_yuan": True}),
    ("/v1/units/d1/quota-allocations", {"year": "2024", "mu": 10}),
    ("/v1/units/t1/land-approvals", {"mu": "5", "project": "工业园"}),
]


@pytest.mark.parametrize(("path", "body"), WRONG_TYPES)
def test_a_value_of_the_wrong_json_type_is_refused_not_read_as_one(
    client: tuple[TestClient, dict[str, str]], ledger: Ledger, path: str, body: dict[str, Any]
) -> None:
    http, tokens = client
    admin = auth(tokens["admin"])
    # A report r1 to find on: without it the finding's body would be refused for naming no report, typed or not.
    ledger.report_misconduct("leader1", MisconductKind.EATING, "群众", "吃请", actor="setup")
    before = ledger.recorder.max_notification_id()
    r = http.post(path, json=body, headers=admin)
    refused(r, 422)
    assert ledger.recorder.max_notification_id() == before


@pytest.mark.parametrize("bad_id", NOT_IDS)
def test_ids_that_are_not_ids(client: tuple[TestClient, dict[str, str]], ledger: Ledger, bad_id: str) -> None:
    http, tokens = client
    admin = auth(tokens["admin"])
    before = ledger.recorder.max_notification_id()
    for method, path, body in [
        ("GET", f"/v1/petitions/{bad_id}", None),
        ("GET", f"/v1/people/{bad_id}", None),
        ("POST", f"/v1/petitions/{bad_id}/reply", {"summary": "ok"}),
        ("POST", f"/v1/people/{bad_id}/trainings", {"course": "c"}),
        ("GET", f"/v1/audit/events?kind=petition&id={bad_id}", None),
        ("GET", f"/v1/scores?year=2024&unit_id={bad_id}", None),
        ("POST", "/v1/petitions", petition("ok-id", unit_id=bad_id)),
        ("POST", "/v1/people", {"id": bad_id, "name": "n", "unit_id": "t1", "post": "petition_clerk"}),
    ]:
        r = http.request(method, path, json=body, headers=admin)
        refused(r, 400, 404, 405, 422)
    assert ledger.recorder.max_notification_id() == before


@pytest.mark.parametrize("moment", DATES)
def test_dates_far_in_the_past_or_future(
    client: tuple[TestClient, dict[str, str]], ledger: Ledger, moment: Any
) -> None:
    http, tokens = client
    before = ledger.recorder.max_notification_id()
    r = http.post("/v1/petitions", json=petition("dated", occurred_at=moment), headers=auth(tokens["clerk"]))
    refused(r, 409, 422)
    supervisor = auth(tokens["supervisor"])
    for path in ("/v1/petitions", "/v1/scores?year=2024", "/v1/units/t1", "/v1/policy"):
        sep = "&" if "?" in path else "?"
        r = http.get(f"{path}{sep}as_of={moment}", headers=supervisor)
        assert r.status_code < 500, (path, moment, r.text[:300])
        r = http.get(f"{path}{sep}known_at={moment}", headers=supervisor)
        assert r.status_code < 500, (path, moment, r.text[:300])
    assert ledger.recorder.max_notification_id() == before


#: Times a question cannot name: past the calendar's ends once in UTC, or outside 1900-9000.
BEYOND = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "1899-12-31T23:59:59+00:00", "9000-01-01T00:00Z"]


def cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).rstrip(b"=").decode()


def test_questions_beyond_the_calendar_are_the_clients_error(client: tuple[TestClient, dict[str, str]]) -> None:
    """A moment, a report's period or a forged cursor past what the stores and Python's times hold is a 422
    naming the parameter, not a 500 from an overflow."""
    http, tokens = client
    supervisor = auth(tokens["supervisor"])
    for moment in BEYOND:
        for path in ("/v1/scores?year=2024", "/v1/triggers", "/v1/petitions", "/v1/reports/daily?date=2024-03-01"):
            for key in ("as_of", "known_at"):
                sep = "&" if "?" in path else "?"
                r = http.get(f"{path}{sep}{urlencode({key: moment})}", headers=supervisor)
                refused(r, 422)
                assert r.json()["errors"][0]["loc"] == ["query", key], (path, key, moment)
    for path in (
        "/v1/reports/daily?date=9999-12-31",
        "/v1/reports/weekly?week=9999-W52",
        "/v1/reports/monthly?month=9999-12",
        "/v1/reports/daily?date=1000-01-01",
        f"/v1/petitions?limit=5&after={cursor([2**63])}",
        f"/v1/officers?limit=5&after={cursor([-(2**63) - 1])}",
    ):
        refused(http.get(path, headers=supervisor), 422)
    forged = http.get(f"/v1/triggers?limit=5&after={cursor(['9999-12-31T23:59:59-14:00', 'x'])}", headers=supervisor)
    assert forged.status_code < 500, forged.text


@pytest.mark.skipif(not LONG, reason="the long schemathesis run: LEDGER_FAULTS_LONG=1")
@pytest.mark.timeout(3600)  # the suite's 300 s bound would interrupt it mid-operation and read as a failure
def test_schemathesis_long_run(store_url: str, ledger: Ledger) -> None:
    """Many more generated cases per operation than CI's five (LEDGER_SCHEMATHESIS_EXAMPLES, default 100)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    from tests.api.test_schema import CHECKS

    tokens = seed_ledger(ledger)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(store_url, ledger=ledger))
    failures: dict[str, str] = {}
    examples = int(os.environ.get("LEDGER_SCHEMATHESIS_EXAMPLES", "100"))
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            case.call_and_validate(headers=auth(tokens["admin"]), checks=CHECKS)

        try:
            run()
        except Exception as exc:  # gather every operation's failure, then report them all
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())
