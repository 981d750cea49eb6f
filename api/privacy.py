"""Personal data in reads (个人信息保护): who may see it, and a logged trace of every read."""

from __future__ import annotations

from api.auth import Principal
from api.permissions import PERSONAL_DATA
from domain.application import Ledger

DEFAULT_PURPOSE = "case handling (办理)"


def may_see(principal: Principal, field: str, *, named_person: str | None = None) -> bool:
    """Whether the token may see ``field``; the person a report names never sees its reporter, neither through their
    own token nor through one they granted (directly or down a chain of grants)."""
    if named_person is not None and named_person in (principal.subject, *principal.grantors):
        return False
    return principal.role in PERSONAL_DATA.get(field, frozenset())


def log_read(
    ledger: Ledger, principal: Principal, kind: str, record_id: str, fields: list[str], purpose: str | None
) -> None:
    """Record the read as an event, so auditors can list who saw whose data (查阅留痕)."""
    ledger.log_personal_data_read(
        kind, record_id, fields, purpose or DEFAULT_PURPOSE, actor=principal.subject, grant_id=principal.grant_id
    )
