"""Where the projections read the global log (全局日志): the Ledger's notifications."""

from __future__ import annotations

from domain.application import Ledger
from domain.personal import KeylessVault
from store.config import persistence_environment
from store.transcoder import OrjsonTranscoder


def open_log(url: str) -> Ledger:
    """A read-only Ledger over ``url``: ``recorder.select_notifications`` and ``mapper.to_domain_event``.

    The projections never need personal data (信访人、举报人), so their reader holds no key to it:
    workers run on hosts without the master key, and personal fields stay sealed.
    """
    return Ledger(persistence_environment(url), vault=KeylessVault(), transcoder=OrjsonTranscoder())
