"""Access tokens (访问令牌): granting and revoking, both recorded as events, and reading a grant."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import grant_token
from api.deps import AuthorizedDep, CommandDep, LedgerDep, answer, covers_grant, require_territory
from api.models import CommandIn, Receipt, RecordId, RecordMeta, meta
from api.problems import ProblemError, located
from domain.access import MAX_GRANT_CHAIN, AccessGrant
from domain.errors import InvalidValue
from domain.vocabulary import Role

router = APIRouter(prefix="/tokens", tags=["tokens"])
MAX_TTL = timedelta(days=3650)


class TokenCreate(BaseModel):
    """Grant a bearer token to a subject (授权): a role, optionally bound to units, optionally expiring."""

    model_config = ConfigDict(extra="forbid")

    subject: Annotated[str, Field(min_length=1, max_length=128, description="who the token speaks for")]
    role: Role
    unit_ids: Annotated[list[RecordId], Field(max_length=50, default_factory=list)]
    ttl: timedelta | None = Field(
        default=None, description="ISO 8601 duration, e.g. P30D, at most ten years (P3650D); none = no expiry"
    )


class TokenPublic(Receipt):
    """The new token; its secret is shown only this once."""

    token: str
    expires_at: datetime | None


@router.post("", status_code=201, response_model=TokenPublic)
def create_token(body: TokenCreate, cmd: CommandDep, response: Response) -> TokenPublic:
    """Grant a token; a unit-bound admin grants only within its own units."""
    if cmd.principal.bound and not body.unit_ids:
        raise ProblemError(403, "a unit-bound token cannot grant a token for the whole city")
    if len(cmd.principal.grantors) + 1 > MAX_GRANT_CHAIN:
        # Every grantor up the chain stands behind a token (回避); a longer chain would not be followed in full.
        raise ProblemError(403, f"this token was granted down a chain of {MAX_GRANT_CHAIN} and cannot grant further")
    for unit_id in body.unit_ids:
        cmd.guard_unit(unit_id, f"unit {unit_id}")
    if body.ttl is not None and not timedelta(0) < body.ttl <= MAX_TTL:
        raise InvalidValue(f"ttl must be positive and at most {MAX_TTL.days} days", "ttl")
    receipt, token = grant_token(
        cmd.ledger,
        body.subject,
        body.role,
        body.unit_ids,
        actor=cmd.principal.subject,
        ttl=body.ttl,
        idempotency_key=cmd.idempotency_key,
        granted_under=cmd.principal.grant_id,
    )
    if token is None:
        raise ProblemError(
            409,
            f"a token was granted under this Idempotency-Key already ({receipt.id}) and nothing new is recorded;"
            " its secret was shown once and is not kept: revoke that grant if it was lost",
        )
    grant = cmd.ledger.get(AccessGrant, receipt.id)
    public = answer(receipt, response, "/v1/tokens")
    return TokenPublic(**public.model_dump(), token=token, expires_at=grant.expires_at)


class GrantPublic(RecordMeta):
    """A token's grant as it stands: never its secret, nor the secret's hash."""

    subject: str
    role: Role
    unit_ids: list[str] = Field(description="the territory it acts and sees within; empty = the whole city")
    expires_at: datetime | None
    revoked: bool
    granted_under: str | None = Field(description="the grant of the token that granted it; null from the command line")


@router.get("/{grant_id}", response_model=GrantPublic)
def read_grant(grant_id: str, ledger: LedgerDep, principal: AuthorizedDep) -> GrantPublic:
    """A token's grant (授权), where the `Location` of its granting points; a unit-bound token reads only grants
    within its units."""
    with located(id="path"):
        grant = ledger.get(AccessGrant, grant_id)
    if not covers_grant(ledger, principal, grant):
        if not grant.unit_ids:
            raise ProblemError(403, "a unit-bound token cannot read a city-wide token's grant")
        outside = next(u for u in grant.unit_ids if not principal.covers(ledger, u))
        require_territory(ledger, principal, outside, f"token {grant_id}")
    return GrantPublic(
        **meta(grant),
        subject=grant.subject,
        role=grant.role,
        unit_ids=list(grant.unit_ids),
        expires_at=grant.expires_at,
        revoked=grant.revoked,
        granted_under=grant.granted_under,
    )


@router.post("/{grant_id}/revocation", response_model=Receipt)
def revoke_token(
    grant_id: str, cmd: CommandDep, response: Response, body: Annotated[CommandIn | None, Body()] = None
) -> Receipt:
    """Revoke a token (撤销授权); it stops working at once on every server."""
    with located(id="path"):
        grant = cmd.ledger.get(AccessGrant, grant_id)
    if cmd.principal.bound and not grant.unit_ids:
        raise ProblemError(403, "a unit-bound token cannot revoke a city-wide token")
    for unit_id in grant.unit_ids:
        cmd.guard_unit(unit_id, f"unit {unit_id}")
    return answer(cmd.ledger.revoke_access(grant_id, **cmd.change(body)), response)
