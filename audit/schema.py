"""Audit's own tables (审计表): the Merkle node cache, the signed checkpoints and the signing keys.

``create_audit_tables`` is idempotent and safe to run from several processes at once; ``ledger
init`` calls it, and the writers (checkpointing, the node cache) call it before their first write.
Checkpoints and keys are append-only like the log; the node cache is derived data and may be
rebuilt from the chain's leaf hashes at any time.
"""

from __future__ import annotations

from audit.db import AuditDB

NODES = "ledger_merkle_nodes"
CHECKPOINTS = "ledger_checkpoints"
KEYS = "ledger_signing_keys"
#: Written once and never changed: a Merkle node, once its subtree is complete, is fixed as the events below it.
_APPEND_ONLY = (CHECKPOINTS, KEYS, NODES)
# Arbitrary constant naming "audit schema creation" among PostgreSQL advisory locks.
_SCHEMA_LOCK_KEY = 0x4C45444745520002


def create_audit_tables(url: str) -> None:
    """Create the audit tables and their append-only triggers if missing."""
    with AuditDB(url) as db:
        ensure_tables(db)


def ensure_tables(db: AuditDB) -> None:
    """Create the tables on this connection unless they exist (cheap to call before each write)."""
    if db.table_exists(KEYS):
        return
    blob = "BLOB" if db.engine == "sqlite" else "BYTEA"
    statements = [
        # position is set on leaves (level 0) only: it maps a log position to its leaf index.
        f"CREATE TABLE IF NOT EXISTS {NODES} (level INTEGER NOT NULL, idx BIGINT NOT NULL, "
        f"hash {blob} NOT NULL, position BIGINT, PRIMARY KEY (level, idx))",
        f"CREATE UNIQUE INDEX IF NOT EXISTS {NODES}_position ON {NODES} (position)",
        f"CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (size BIGINT PRIMARY KEY, root TEXT NOT NULL, "
        "timestamp TEXT NOT NULL, signature TEXT NOT NULL, key_id TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {KEYS} (key_id TEXT PRIMARY KEY, public_key TEXT NOT NULL, "
        "created_at TEXT NOT NULL)",
    ]
    with db.transaction():
        if db.engine == "postgres":
            # Concurrent CREATE ... IF NOT EXISTS still collides on PostgreSQL.
            db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK_KEY,))
            statements.append(
                "CREATE OR REPLACE FUNCTION ledger_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME "
                "USING ERRCODE = 'restrict_violation'; END $$"
            )
            statements += [
                f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_audit_append_only()"
                for table in _APPEND_ONLY
            ]
        else:
            statements += [
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END"
                for table in _APPEND_ONLY
                for op in ("UPDATE", "DELETE")
            ]
        for statement in statements:
            db.execute(statement)
