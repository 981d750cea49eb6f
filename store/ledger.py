"""Composition root (装配): a :class:`~domain.application.Ledger` on the store a URL names.

``init_store`` prepares a store once (schema, cipher key file, policy version 1);
``open_ledger`` opens the application on it, with our transcoder and the personal-data vault.
"""

from __future__ import annotations

import os
from pathlib import Path

from audit.checkpoints import ensure_signing_key
from audit.schema import create_audit_tables
from domain.application import Clock, Ledger, utc_now
from projections.db import Db
from projections.engine import ensure_schema
from store import throttle
from store.config import create_schema, database_url, persistence_environment
from store.db import connect, placeholder
from store.keys import KeyVault, check_master_key, load_master_key
from store.transcoder import OrjsonTranscoder


def init_store(url: str | None = None, *, clock: Clock = utc_now) -> None:
    """Create the store's schema (idempotent), the cipher key file if none is configured, and policy v1."""
    url = url or database_url()
    create_schema(url)
    configured = dict(os.environ)
    if configured.get("LEDGER_CIPHER_KEY") or Path(configured.get("LEDGER_KEY_FILE", "ledger.key")).exists():
        check_master_key(load_master_key(configured), lambda: connect(url))
    else:  # no key yet: only a store without personal data may have one made for it
        check_master_key(None, lambda: connect(url))
        load_master_key(configured, create=True)
    create_audit_tables(url)
    ensure_signing_key()
    db = Db(url)
    try:
        ensure_schema(db)  # projection tables, so the first query of a fresh store has something to read
    finally:
        db.close()
    ledger = open_ledger(url, clock=clock)
    try:
        throttle.create_table(ledger.recorder)
        ledger.ensure_policy()
    finally:
        ledger.close()


def open_ledger(url: str | None = None, *, clock: Clock = utc_now) -> Ledger:
    """The ledger application on ``url`` (default: LEDGER_DATABASE_URL)."""
    url = url or database_url()
    vault = KeyVault(load_master_key(), lambda: connect(url), placeholder(url))
    ledger = Ledger(persistence_environment(url), vault=vault, transcoder=OrjsonTranscoder(), clock=clock)
    return ledger
