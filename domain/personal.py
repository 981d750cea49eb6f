"""Personal data (个人信息) in events: sealed field by field, with one key per record.

Event classes name their personal fields (``personal_fields``); the mapper seals those fields
before the event is stored and unseals them when it is read. Destroying a record's key makes its
personal data permanently unreadable (crypto-shredding) while the stored bytes — and so every
hash and proof over them — stay exactly as they were.
"""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent

#: The save keyword under which new wrapped keys travel to the recorder, stored in the events' transaction.
PERSONAL_KEYS = "personal_keys"
#: What a reader sees once the data subject's key is destroyed.
ERASED = "[erased]"
SEALED_PREFIX = "sealed:v1:"


class PersonalDataVault(Protocol):
    """Seals and unseals personal fields with a per-subject key kept apart from the events."""

    def seal(self, subject: str, plaintext: str) -> str:
        """Encrypt for ``subject``, creating its key on first use."""

    def unseal(self, subject: str, sealed: str) -> str | None:
        """Decrypt, or ``None`` if the subject's key was destroyed."""

    def destroy(self, subject: str) -> bool:
        """Destroy the subject's key; ``True`` if there was one."""

    def prepare(self, subjects: list[str]) -> list[tuple[str, bytes]]:
        """Make keys for subjects that have none yet; answer them wrapped, to be stored with the events."""

    def forget(self, subjects: list[str]) -> None:
        """Drop keys prepared for a save that failed (they were never stored)."""


def subject_of(originator_id: UUID | str) -> str:
    """Personal data is keyed by the record it belongs to (one petitioner or reporter per record)."""
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


class KeylessVault:
    """For readers that hold no key (projections, offline bundle checks): personal fields stay sealed
    as stored, and nothing can be sealed, so such a reader can never record an event."""

    def seal(self, subject: str, plaintext: str) -> str:
        raise PermissionError("a reader without keys records nothing")

    def unseal(self, subject: str, sealed: str) -> str | None:
        return sealed

    def destroy(self, subject: str) -> bool:
        return False

    def prepare(self, subjects: list[str]) -> list[tuple[str, bytes]]:
        return []

    def forget(self, subjects: list[str]) -> None:
        pass


class DryRunVault:
    """For throw-away in-memory ledgers (the demo's dry run, benchmark generators): marks fields
    sealed without encrypting them. Never give it to a ledger on a real store."""

    def seal(self, subject: str, plaintext: str) -> str:
        return SEALED_PREFIX + plaintext

    def unseal(self, subject: str, sealed: str) -> str | None:
        return sealed[len(SEALED_PREFIX) :]

    def destroy(self, subject: str) -> bool:
        return True

    def prepare(self, subjects: list[str]) -> list[tuple[str, bytes]]:
        return []

    def forget(self, subjects: list[str]) -> None:
        pass


class PersonalDataMapper(Mapper[UUID]):
    """The library's mapper, plus sealing of the fields an event class declares personal."""

    def __init__(self, vault: PersonalDataVault, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vault = vault

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        fields: tuple[str, ...] = getattr(type(domain_event), "personal_fields", ())
        if not fields:
            return super().to_stored_event(domain_event)
        subject = subject_of(domain_event.originator_id)
        sealed = object.__new__(type(domain_event))
        state = dict(vars(domain_event))
        for name in fields:
            state[name] = self.vault.seal(subject, state[name])
        object.__setattr__(sealed, "__dict__", state)
        return super().to_stored_event(sealed)

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        event = super().to_domain_event(stored_event)
        fields: tuple[str, ...] = getattr(type(event), "personal_fields", ())
        if fields:
            subject = subject_of(event.originator_id)
            state = vars(event)
            for name in fields:
                value = state.get(name)
                if isinstance(value, str) and value.startswith(SEALED_PREFIX):
                    plain = self.vault.unseal(subject, value)
                    state[name] = ERASED if plain is None else plain
        return event
