"""A bounded property-based run of the OpenAPI schema (schemathesis, in-process over ASGI)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.auth import issue_token
from domain.application import Ledger
from domain.vocabulary import Role

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def admin_token(ledger: Ledger, city: dict[str, str]) -> str:
    return issue_token(ledger, "admin-1", Role.ADMIN, actor="setup")


def test_no_server_error_and_no_schema_breaking_answer(store_url: str, ledger: Ledger, admin_token: str) -> None:
    """Five generated cases per operation; every answer documented, none a 5xx."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(store_url, ledger=ledger))
    headers = {"Authorization": f"Bearer {admin_token}"}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) > 60
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())
