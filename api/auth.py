"""Bearer tokens (访问令牌): ``<grant_id>.<secret>``, where the grant is an event in the ledger.

Only a SHA-256 of the secret is stored (secrets are 32 random bytes, so a fast hash suffices).
Every request loads the grant afresh, so a revocation recorded by any process takes effect at once
on every server — nothing about tokens is cached in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from api.problems import ProblemError
from domain.access import AccessGrant
from domain.application import Ledger, Receipt
from domain.errors import DomainError, RecordNotFound
from domain.vocabulary import Role

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ledger"'}


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def grant_token(
    ledger: Ledger,
    subject: str,
    role: Role | str,
    unit_ids: Iterable[str] = (),
    *,
    actor: str,
    ttl: timedelta | None = None,
) -> tuple[Receipt, str]:
    """Record a grant; answer its receipt and bearer token (the secret is shown only this once)."""
    secret = secrets.token_urlsafe(32)
    expires_at = ledger.clock() + ttl if ttl is not None else None
    receipt = ledger.grant_access(
        subject, Role(role), list(unit_ids), hash_secret(secret), expires_at=expires_at, actor=actor
    )
    return receipt, f"{receipt.id}.{secret}"


def issue_token(
    ledger: Ledger,
    subject: str,
    role: Role | str,
    unit_ids: Iterable[str] = (),
    *,
    actor: str,
    ttl: timedelta | None = None,
) -> str:
    """A new bearer token for ``subject`` (for ``ledger token create``)."""
    return grant_token(ledger, subject, role, unit_ids, actor=actor, ttl=ttl)[1]


@dataclass(frozen=True)
class Principal:
    """Who is asking (请求人): the grant's subject, role and territory (empty = the whole city)."""

    grant_id: str
    subject: str
    role: Role
    unit_ids: tuple[str, ...] = ()
    _covered: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @property
    def bound(self) -> bool:
        return bool(self.unit_ids)

    def covers(self, ledger: Ledger, unit_id: str | None) -> bool:
        """Whether ``unit_id`` lies within the token's units or below them (属地管理)."""
        if not self.unit_ids:
            return True
        if unit_id is None:
            return False
        if unit_id not in self._covered:
            try:
                chain = {u.record_id for u in ledger.ancestors(unit_id)}
            except DomainError:
                chain = set()
            self._covered[unit_id] = bool(chain & set(self.unit_ids))
        return self._covered[unit_id]


def authenticate(ledger: Ledger, token: str) -> Principal:
    """The principal a token speaks for; 401 if it is malformed, unknown, revoked or expired."""
    grant_id, dot, secret = token.rpartition(".")
    if not dot or not grant_id or not secret or len(token) > 512:
        raise ProblemError(401, "the bearer token is malformed", headers=CHALLENGE)
    try:
        grant = ledger.get(AccessGrant, grant_id)
    except (RecordNotFound, DomainError):
        raise ProblemError(401, "the bearer token is unknown", headers=CHALLENGE) from None
    if not hmac.compare_digest(grant.secret_hash, hash_secret(secret)):
        raise ProblemError(401, "the bearer token is unknown", headers=CHALLENGE)
    if grant.revoked:
        raise ProblemError(401, "the bearer token was revoked", headers=CHALLENGE)
    if not grant.valid_at(ledger.clock()):
        raise ProblemError(401, "the bearer token has expired", headers=CHALLENGE)
    return Principal(grant.record_id, grant.subject, grant.role, tuple(grant.unit_ids))


def issue_admin_token_for_cli(url: str) -> str:
    """A city-wide admin token on the store at ``url`` (for ``ledger demo``)."""
    from store.ledger import open_ledger

    ledger = open_ledger(url)
    try:
        return issue_token(ledger, "admin", Role.ADMIN, actor="ledger-cli")
    finally:
        ledger.close()
