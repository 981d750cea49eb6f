"""Where the projections read the global log (全局日志): the Ledger's notifications."""

from __future__ import annotations

from domain.application import Ledger
from store.config import persistence_environment
from store.transcoder import OrjsonTranscoder


class BlindVault:
    """The projections never need personal data (信访人、举报人), so their reader holds no key to it.

    Workers then run on hosts without the master key, and decoding skips the decryption.
    """

    def seal(self, subject: str, plaintext: str) -> str:
        raise PermissionError("the projections' reader records nothing")

    def unseal(self, subject: str, sealed: str) -> str | None:
        return None

    def destroy(self, subject: str) -> bool:
        return False


def open_log(url: str) -> Ledger:
    """A read-only Ledger over ``url``: ``recorder.select_notifications`` and ``mapper.to_domain_event``."""
    return Ledger(persistence_environment(url), vault=BlindVault(), transcoder=OrjsonTranscoder())
