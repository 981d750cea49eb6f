"""Access (授权): bearer-token grants and revocations, and reads of personal data — all events, so auditors see them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from domain.base import Record, Stamp, check_id, check_text
from domain.errors import InvalidValue, RuleViolation
from domain.vocabulary import Role

#: How far up a chain of grants (a token granted by a token granted by …) its grantors are followed; a token at the
#: end of a chain this long grants no further (``POST /v1/tokens``), so every chain is followed in full.
MAX_GRANT_CHAIN = 16


class AccessGrant(Record):
    """A bearer token's grant: who it speaks for, in which role, within which units, until when.

    Only a hash of the token's secret is kept; the secret is shown once, when the grant is made.
    """

    KIND: ClassVar[str] = "grant"

    if TYPE_CHECKING:  # state set by the events' apply(); annotations only for type checkers
        subject: str
        role: Role
        unit_ids: list[str]
        secret_hash: str
        expires_at: datetime | None
        revoked: bool
        granted_under: str | None

    class Granted(Record.Created):
        """The grant, with the hash of its secret. The store keeps the hash (every bearer is checked against it),
        but it is a credential's verifier, so no reader is shown it (``withheld_fields``), an auditor no more than
        the readers of ``GET /v1/tokens/{id}``."""

        withheld_fields: ClassVar[tuple[str, ...]] = ("secret_hash",)
        subject: str
        role: str
        unit_ids: list[str]
        secret_hash: str
        expires_at: datetime | None
        #: The grant of the token that granted this one (None from the command line, and in grants recorded before
        #: it was kept): who stands behind a token, for 回避 (a person cannot read their reporter through a token
        #: they granted).
        granted_under: str | None = None

        def apply(self, grant: Any) -> None:
            super().apply(grant)
            grant.subject = self.subject
            grant.role = Role(self.role)
            grant.unit_ids = list(self.unit_ids)
            grant.secret_hash = self.secret_hash
            grant.expires_at = self.expires_at
            grant.granted_under = getattr(self, "granted_under", None)  # absent from older grants' stored state
            grant.revoked = False

    class Revoked(Record.Event):
        def apply(self, grant: Any) -> None:
            grant.revoked = True
            grant.closed = True

    @classmethod
    def grant(
        cls,
        grant_id: str,
        subject: str,
        role: Role,
        unit_ids: list[str],
        secret_hash: str,
        expires_at: datetime | None,
        stamp: Stamp,
        granted_under: str | None = None,
    ) -> Self:
        check_text(subject, "actor", limit=128)
        for unit_id in unit_ids:
            check_id(unit_id, "unit")
        if expires_at is not None and expires_at <= stamp.recorded_at:
            raise InvalidValue("a token must expire in the future", "expires_at")
        return cls._open(
            cls.Granted,
            grant_id,
            stamp,
            subject=subject,
            role=str(role),
            unit_ids=sorted(set(unit_ids)),
            secret_hash=secret_hash,
            expires_at=expires_at,
            granted_under=granted_under,
        )

    def revoke(self, stamp: Stamp) -> None:
        if self.revoked:
            raise RuleViolation(f"grant {self.record_id} is already revoked", rule="access")
        self._record(self.Revoked, stamp)

    def valid_at(self, moment: datetime) -> bool:
        return not self.revoked and (self.expires_at is None or moment < self.expires_at)


class AccessLog(Record):
    """Reads of one record's personal data (个人信息查阅记录): who read whose data, when, for what."""

    KIND: ClassVar[str] = "access-log"

    class Opened(Record.Created):
        record_kind: str
        record_key: str

    class PersonalDataRead(Record.Event):
        fields: list[str]
        purpose: str
        #: The grant of the token that read (None in reads logged before it was kept): with its ``granted_under``
        #: chain it names who stands behind the reader, a token granted by an admin included.
        grant_id: str | None = None

    @classmethod
    def open_for(cls, record_kind: str, record_id: str, stamp: Stamp) -> Self:
        return cls._open(cls.Opened, f"{record_kind}.{record_id}", stamp, record_kind=record_kind, record_key=record_id)

    def record_read(self, fields: list[str], purpose: str, stamp: Stamp, grant_id: str | None = None) -> None:
        check_text(purpose, "purpose", limit=200)
        # A read is logged whenever it happens, even of data opened before the log existed.
        self.trigger_event(
            self.PersonalDataRead,
            timestamp=stamp.recorded_at,
            actor=stamp.actor,
            occurred_at=stamp.occurred_at,
            note=stamp.note,
            fields=fields,
            purpose=purpose,
            grant_id=grant_id,
        )
