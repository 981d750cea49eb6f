"""Bearer tokens (访问令牌): ``<grant_id>.<secret>``, where the grant is an event in the ledger.

Only a SHA-256 of the secret is stored (secrets are 32 random bytes, so a fast hash suffices).
Every request loads the grant afresh, so a revocation recorded by any process takes effect at once
on every server — nothing about tokens is cached in memory. Failed attempts are recorded in a
table every process shares (store.throttle) and limited per client address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from api.problems import ProblemError
from domain.access import AccessGrant
from domain.application import Ledger, Receipt
from domain.errors import DomainError, RecordNotFound
from domain.vocabulary import Role
from store import throttle

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ledger"'}
_GRANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
log = logging.getLogger("ledger.auth")


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
    idempotency_key: str | None = None,
    granted_under: str | None = None,
) -> tuple[Receipt, str | None]:
    """Record a grant; answer its receipt and bearer token (the secret is shown only this once). A repeat under an
    ``idempotency_key`` already used records nothing and answers the first grant's receipt with no token: its
    secret was shown once and is not kept."""
    secret = secrets.token_urlsafe(32)
    expires_at = ledger.clock() + ttl if ttl is not None else None
    receipt = ledger.grant_access(
        subject,
        Role(role),
        list(unit_ids),
        hash_secret(secret),
        expires_at=expires_at,
        granted_under=granted_under,
        actor=actor,
        idempotency_key=idempotency_key,
    )
    if ledger.get(AccessGrant, receipt.id).secret_hash != hash_secret(secret):
        return receipt, None
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
    token = grant_token(ledger, subject, role, unit_ids, actor=actor, ttl=ttl)[1]
    assert token is not None  # no idempotency key: always a new grant
    return token


@dataclass(frozen=True)
class Principal:
    """Who is asking (请求人): the grant's subject, role and territory (empty = the whole city)."""

    grant_id: str
    subject: str
    role: Role
    unit_ids: tuple[str, ...] = ()
    #: The subjects of the tokens that granted this one, nearest first: each stands behind it (回避).
    grantors: tuple[str, ...] = ()
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
                chain = set(ledger.lineage(unit_id))
            except DomainError:
                chain = set()
            self._covered[unit_id] = not chain.isdisjoint(self.unit_ids)
        return self._covered[unit_id]


def authenticate(ledger: Ledger, token: str, source: str = "unknown") -> Principal:
    """The principal a token speaks for; 401 if it is malformed, unknown, revoked or expired.

    Failures are rate-limited per client (by address): each is recorded (store.throttle), and once a client has
    ``LIMIT.attempts`` of them within ``LIMIT.window`` seconds its further failures get 429 with ``Retry-After``,
    recorded no more (an attacker must not grow the table at will). A good token is served all the same: the
    clients behind one proxy share an address, and one client's typos must not lock out the others; a guess gains
    nothing from that (a secret is 256 random bits).
    """
    try:
        return _check(ledger, token)
    except _Refused as refused:
        wait = throttle.retry_after(ledger.recorder, source, limit())
        if wait is not None:
            log.warning("authentication refused: too many failures from %s", source)
            raise ProblemError(
                429,
                f"too many failed authentication attempts from this client; retry in {wait} s",
                headers={**CHALLENGE, "Retry-After": str(wait)},
            ) from None
        throttle.record_failure(ledger.recorder, source, refused.reason, refused.grant_id)
        # Never the token: only the address, the reason and a grant id that exists (not a secret).
        log.warning("authentication failed from %s: %s (grant %s)", source, refused.reason, refused.grant_id or "-")
        raise ProblemError(401, f"the bearer token is {refused.reason}", headers=CHALLENGE) from None


class _Refused(Exception):
    def __init__(self, reason: str, grant_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.grant_id = grant_id


def _check(ledger: Ledger, token: str) -> Principal:
    grant_id, dot, secret = token.rpartition(".")
    if not dot or not grant_id or not secret or len(token) > 512 or not _GRANT_ID.match(grant_id):
        raise _Refused("malformed")
    try:
        grant = ledger.get(AccessGrant, grant_id)
    except (RecordNotFound, DomainError):
        raise _Refused("unknown") from None
    if not hmac.compare_digest(grant.secret_hash, hash_secret(secret)):
        raise _Refused("unknown", grant.record_id)
    if grant.revoked:
        raise _Refused("revoked", grant.record_id)
    if not grant.valid_at(ledger.clock()):
        raise _Refused("expired", grant.record_id)
    return Principal(grant.record_id, grant.subject, grant.role, tuple(grant.unit_ids), ledger.grantors(grant))


def limit(environ: Mapping[str, str] = os.environ) -> throttle.Limit:
    """The failed-attempt limit: LEDGER_AUTH_MAX_FAILURES per LEDGER_AUTH_WINDOW_SECONDS (100 per 60)."""
    default = throttle.Limit()
    return throttle.Limit(
        attempts=int(environ.get("LEDGER_AUTH_MAX_FAILURES") or default.attempts),
        window=float(environ.get("LEDGER_AUTH_WINDOW_SECONDS") or default.window),
    )


def issue_admin_token_for_cli(url: str) -> str:
    """A city-wide admin token on the store at ``url`` (for ``ledger demo``)."""
    from store.ledger import open_ledger

    ledger = open_ledger(url)
    try:
        return issue_token(ledger, "admin", Role.ADMIN, actor="ledger-cli")
    finally:
        ledger.close()
