"""Personal data (个人信息) in events: sealed field by field, with one key per record.

Event classes name their personal fields (``personal_fields``); the mapper seals those fields
before the event is stored and unseals them when it is read. Destroying a record's key makes its
personal data permanently unreadable (crypto-shredding) while the stored bytes — and so every
hash and proof over them — stay exactly as they were.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Mapper, StoredEvent
from eventsourcing.utils import get_topic

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

    def prepare(self, subjects: list[str], created: Collection[str] = ()) -> list[tuple[str, bytes]]:
        """Make keys for subjects that have none yet; answer them wrapped, to be stored with the events.

        ``created`` names subjects whose records this save creates: they can have no key yet, so
        they need not be looked up (if one is there after all, the store refuses the new key with
        :class:`PersonalKeyExists` and the save prepares again without ``created``).
        """

    def forget(self, subjects: list[str]) -> None:
        """Drop keys prepared for a save that failed (they were never stored)."""


class PersonalKeyExists(IntegrityError):
    """The store refused a new record's data key: its subject has one already (a key stored
    without its events by an older version). Nothing was saved; seal with the stored key."""


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

    def prepare(self, subjects: list[str], created: Collection[str] = ()) -> list[tuple[str, bytes]]:
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

    def prepare(self, subjects: list[str], created: Collection[str] = ()) -> list[tuple[str, bytes]]:
        return []

    def forget(self, subjects: list[str]) -> None:
        pass


class PersonalDataMapper(Mapper[UUID]):
    """The library's mapper, plus sealing of the fields an event class declares personal."""

    def __init__(self, vault: PersonalDataVault, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vault = vault

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        # The library's Mapper.to_stored_event, with the personal fields sealed in the state it
        # encodes (same keys, same order, so the same bytes) instead of in a copied event.
        cls = type(domain_event)
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        fields: tuple[str, ...] = getattr(cls, "personal_fields", ())
        if fields:
            subject = subject_of(originator_id)
            for name in fields:
                state[name] = self.vault.seal(subject, state[name])
        class_version = getattr(cls, "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        stored_state = self.transcoder.encode(state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=get_topic(cls),
            state=stored_state,
        )

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
