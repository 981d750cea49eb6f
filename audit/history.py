"""Time travel helpers (追溯): a record's events as stored, and entries recorded long after the fact.

Personal fields are shown as stored (sealed): an auditor sees that a petitioner was recorded and
that the bytes are intact, never who it was. Fields an event class withholds (``withheld_fields``: a
token grant's secret hash) are left out of what is shown, and only of that: the stored bytes keep
them, the chain hash shown is over those bytes, and an exported bundle carries them as stored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import OriginatorIDError, OriginatorVersionError
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from audit.bundle import offline_decoder
from audit.db import AuditDB, as_bytes
from domain.access import AccessLog
from domain.application import Ledger, record_class
from domain.base import check_id, record_uuid, unit_of
from domain.errors import RecordNotFound
from domain.policy import Policy

#: Fields every event carries, shown beside ``data`` rather than in it.
_ENVELOPE = {"originator_id", "originator_version", "timestamp", "actor", "occurred_at"}


def history(ledger: Ledger, kind: str, record_id: str) -> list[dict[str, Any]]:
    """Every event of a record in order: position, type, actor, times, data (sealed), the record's unit once the
    event happened (``unit_id``, 属地: a diversion moves a petition; None for a record of no one unit) and chain
    hash."""
    cls = record_class(kind)
    check_id(record_id)
    oid = record_uuid(cls.KIND, record_id)
    rows = _stored_with_chain(ledger, oid)
    if not rows:
        raise RecordNotFound(kind, record_id)
    decode = offline_decoder()
    out = []
    record: Any = None
    for position, version, topic, state, chain_hash in rows:
        event = decode(StoredEvent(oid, version, topic, state))
        record = _applied(record, event)
        out.append(
            {
                "position": position,
                "version": version,
                **describe(event),
                "unit_id": unit_of(record) if record is not None else None,
                "hash": chain_hash.hex() if chain_hash else None,
            }
        )
    return out


def describe(event: Any) -> dict[str, Any]:
    """An event as JSON-ready fields: type, actor, business and recording time, and its data — without the fields
    its class withholds from every reader (a token grant's secret hash, as ``GET /v1/tokens/{id}`` never shows)."""
    withheld: tuple[str, ...] = getattr(type(event), "withheld_fields", ())
    return {
        "type": type(event).__qualname__,
        "actor": getattr(event, "actor", None),
        "occurred_at": _plain(getattr(event, "occurred_at", None)),
        "recorded_at": _plain(event.timestamp),
        "data": {k: _plain(v) for k, v in vars(event).items() if k not in _ENVELOPE and k not in withheld},
    }


def late_entries(
    url: str,
    min_gap: timedelta,
    start: int = 1,
    limit: int = 100,
    within: Callable[[Owner], bool] | None = None,
) -> list[dict[str, Any]]:
    """Events from ``start`` recorded at least ``min_gap`` after they occurred or (a policy amendment) took effect
    (补录/倒签), oldest first, each naming
    its record's kind, id and unit (``unit_id``, None for a record of no one unit). With ``within``, only the
    entries whose record it accepts (kind, id and unit: a unit-bound token's territory, 属地管理, which also reads
    the policy, its agreements and the decisions on its triggers) count towards ``limit``."""
    decode = offline_decoder()
    found: list[dict[str, Any]] = []
    with AuditDB(url) as db:
        records = _Records(db, decode)
        for row in db.events(start=start):
            event = decode(StoredEvent(UUID(row.originator_id), row.originator_version, row.topic, row.state))
            if isinstance(event, Policy.Established):
                continue  # the defaults, in force from the ledger's epoch as every store begins: dated so by design
            occurred = getattr(event, "occurred_at", None)
            # An amendment takes effect from its effective_from: one recorded today for a year ago rewrites that
            # year's outcomes, and is as back-dated as any entry dated then.
            effective = getattr(event, "effective_from", None)
            if occurred is not None and effective is not None:
                occurred = min(occurred, effective)
            if occurred is None or event.timestamp - occurred < min_gap:
                continue
            kind, record_id, unit_id = records.at(row.originator_id, row.originator_version)
            record_id = record_id or getattr(event, "record_id", None)
            if within is not None and not within((kind, record_id, unit_id)):
                continue
            gap = event.timestamp - occurred
            found.append(
                {
                    "position": row.position,
                    "kind": kind,
                    "record_id": record_id,
                    "unit_id": unit_id,
                    "originator_id": row.originator_id,
                    **{k: v for k, v in describe(event).items() if k != "data"},
                    "effective_from": _plain(effective),
                    "gap": iso_duration(gap),
                    "gap_seconds": int(gap.total_seconds()),
                }
            )
            if len(found) >= limit:
                break
    return found


def _applied(record: Any, event: Any) -> Any:
    """``record`` with ``event`` applied, as the ledger folds it; None where the stored events no longer fold in
    order (a record's first event missing, versions out of step: verification names where)."""
    try:
        return event.mutate(record)
    except (OriginatorIDError, OriginatorVersionError, AssertionError):
        return None


#: What a late entry names of its record: kind, public id and unit (each None where unknown).
Owner = tuple[str | None, str | None, str | None]


class _Records:
    """The record each late event belongs to, as it stood once that event happened: kind, id and unit (属地).

    Only a creation event carries the record's id, and a petition changes unit when diverted, so each record's
    events are read once by its originator id (the store's key: no scan of the log) and folded as the ledger folds
    them. A record whose stored events no longer fold (verification names where) names what its event itself says.
    """

    def __init__(self, db: AuditDB, decode: Callable[[StoredEvent], Any]) -> None:
        self._db = db
        self._decode = decode
        self._owners: dict[str, dict[int, Owner]] = {}

    def at(self, originator_id: str, version: int) -> Owner:
        if originator_id not in self._owners:
            self._owners[originator_id] = self._fold(originator_id)
        return self._owners[originator_id].get(version, (None, None, None))

    def _fold(self, originator_id: str) -> dict[int, Owner]:
        owners: dict[int, Owner] = {}
        record: Any = None
        for row in self._db.record_events(originator_id):
            event = self._decode(StoredEvent(UUID(originator_id), row.originator_version, row.topic, row.state))
            record = _applied(record, event)
            if record is None:
                break
            owners[row.originator_version] = (record.KIND, record.record_id, unit_of(record))
        return owners


#: Log positions a scan for personal-data reads covers at first, per read asked for; the window doubles, up to
#: ``READS_WINDOW_MAX``, while reads are sparse.
READS_WINDOW_PER_READ = 50
READS_WINDOW_MAX = 100_000


def personal_data_reads(
    ledger: Ledger,
    limit: int = 200,
    before: int | None = None,
    within: Callable[[str, str], bool] | None = None,
) -> list[dict[str, Any]]:
    """The latest ``limit`` reads of personal data (个人信息查阅记录) before log position ``before``, oldest first, each
    naming the record read (``kind``, ``id``). With ``within``, only reads of records it accepts (by kind and id: a
    unit-bound token's territory, 属地管理) count towards ``limit``.

    Reads are one topic among every event, so the log is read backwards in windows of positions, widening while they
    are sparse, until ``limit`` reads are found or the log's start is reached: a page holds the latest reads however
    far back they lie, not only those among the newest positions."""
    topic = get_topic(AccessLog.PersonalDataRead)
    head = ledger.recorder.max_notification_id() or 0
    # Never from past the log's head: a `before` of 10^12 walked back through a million empty windows.
    stop = head if before is None else min(before - 1, head)
    window = READS_WINDOW_PER_READ * limit
    owners = _ReadRecords(ledger, within)
    found: list[dict[str, Any]] = []
    while stop >= 1 and len(found) < limit:
        start = max(stop - window + 1, 1)
        rows = ledger.recorder.select_notifications(start=start, limit=window, stop=stop, topics=[topic])
        kept = [(n, owner) for n in rows if (owner := owners.of(n.originator_id)) is not None]
        newest = kept[-(limit - len(found)) :]
        found = [_read(n.id, owner, ledger.mapper.to_domain_event(n)) for n, owner in newest] + found
        stop, window = start - 1, min(2 * window, READS_WINDOW_MAX)
    return found


def personal_data_reads_of(ledger: Ledger, kind: str, record_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """The latest ``limit`` reads of one record's personal data, oldest first (its access log's own events)."""
    events = ledger.events.get(record_uuid(AccessLog.KIND, f"{kind}.{record_id}"))
    reads = [e for e in events if isinstance(e, AccessLog.PersonalDataRead)]
    return [_read(None, (kind, record_id), e) for e in reads[-limit:]]


def _read(position: int | None, record: tuple[str, str], event: Any) -> dict[str, Any]:
    """One read of personal data as the access log shows it: where, whose, which fields, why, who, when."""
    kind, record_id = record
    return {
        "position": position,
        "kind": kind,
        "id": record_id,
        "fields": list(getattr(event, "fields", [])),
        "purpose": str(getattr(event, "purpose", "")),
        "actor": str(getattr(event, "actor", "")),
        "grant_id": getattr(event, "grant_id", None),
        "read_at": event.timestamp,
    }


class _ReadRecords:
    """The record each access log is about (kind, id), or None where ``within`` refuses it; each found once."""

    def __init__(self, ledger: Ledger, within: Callable[[str, str], bool] | None) -> None:
        self._ledger = ledger
        self._within = within
        self._records: dict[UUID, tuple[str, str] | None] = {}

    def of(self, stored_id: UUID | str) -> tuple[str, str] | None:
        originator_id = stored_id if isinstance(stored_id, UUID) else UUID(stored_id)
        if originator_id not in self._records:
            log_id: str = self._ledger.repository.get(originator_id).record_id
            kind, _dot, record_id = log_id.partition(".")
            accepted = self._within is None or self._within(kind, record_id)
            self._records[originator_id] = (kind, record_id) if accepted else None
        return self._records[originator_id]


def iso_duration(delta: timedelta) -> str:
    """ISO 8601 duration, days and time (``P7DT3H``); whole seconds."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    if not days:
        return f"PT{time or '0S'}"
    return f"P{days}DT{time}" if time else f"P{days}D"


def _stored_with_chain(ledger: Ledger, oid: UUID) -> list[tuple[int, int, str, bytes, bytes | None]]:
    """The record's stored events with their log position and chain hash, in version order."""
    recorder: Any = ledger.recorder
    events, hashes = recorder.events_table_name, f"{recorder.events_table_name}_hashes"
    if hasattr(recorder.datastore, "schema"):  # PostgreSQL
        schema = recorder.datastore.schema
        sql = (
            "SELECT e.notification_id, e.originator_version, e.topic, e.state, h.hash "
            f'FROM "{schema}"."{events}" e LEFT JOIN "{schema}"."{hashes}" h ON h.position = e.notification_id '
            "WHERE e.originator_id = %s ORDER BY e.originator_version"
        )
        key: Any = oid
    else:
        sql = (
            f"SELECT e.rowid, e.originator_version, e.topic, e.state, h.hash FROM {events} e "
            f"LEFT JOIN {hashes} h ON h.position = e.rowid WHERE e.originator_id = ? ORDER BY e.originator_version"
        )
        key = oid.hex
    with recorder.datastore.transaction(commit=False) as cur:
        cur.execute(sql, (key,))
        rows = cur.fetchall()
    return [
        (int(r[0]), int(r[1]), str(r[2]), bytes(r[3]), as_bytes(r[4]) if r[4] is not None else None)
        for r in (tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in rows)
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, UUID):
        return value.hex
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


__all__ = ["describe", "history", "iso_duration", "late_entries", "personal_data_reads", "personal_data_reads_of"]
