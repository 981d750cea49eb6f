"""The city's facts in memory (事实缓存), for the report issuer's folds.

A report is a fold of the whole city as known at one moment (``history.Known``), and reading the fact tables is a
third of it at a million events (seconds of rows fetched and decoded, every fold). The issuer folds again and
again — each period as it ends, each older one it back-issues, the periods in progress after every fact — from the
same facts, grown only by those applied since. So its process keeps them (:func:`kept`): read once, then only the
rows past the positions read; a fold cut at its moment (``recorded_at <= known_at``, ``occurred_at <= as_of``)
filters them in memory as the SQL ``WHERE`` would (``Known`` asks :meth:`Facts.cut_records`, :meth:`Facts.cut_events`).

Only lean city-wide folds read them (a territory's or a chunk's fold reads its own rows by index), and only in a
process that asks for them (the issuer's steps): a server process keeps nothing. The fact tables only ever grow
(rows are inserted, never changed); a table whose rows up to the last position read no longer number as many was
rebuilt or is being rebuilt, and is read afresh. Past ``LIMIT`` rows the facts are not kept at all: every fold
reads the tables, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from projections import history
from projections.catalog import PROJECTIONS
from projections.db import Db
from projections.history import EV_COLUMNS, REC_COLUMNS, Ev, Rec, _ev, _rec
from store.config import log_table

#: The fact projections a report's fold reads (the unit tree and the policy are kept by ``history.structure``).
FOLDED = ("cases", "petitions", "people", "accountability")
#: The most fact rows kept in memory: 687,616 at a million events took 384-449 MB (bench.back_issue), so about 1.3 GB
#: at this limit (some three million events); a larger history folds from the tables.
LIMIT = 2_000_000


@dataclass
class _Table:
    """One fact table's rows as read, in position order, and how far they go."""

    rows: list[Any] = field(default_factory=list)
    last: int = 0  # the highest position read


@dataclass
class Facts:
    """The fact rows of :data:`FOLDED`, each record with its type, each event lean (its data only when its type is
    in ``READ_DATA``), as a lean fold reads them."""

    records: dict[str, _Table] = field(default_factory=lambda: {p: _Table() for p in FOLDED})
    events: dict[str, _Table] = field(default_factory=lambda: {p: _Table() for p in FOLDED})
    #: The log's chain hash at the highest position read: the same hash there means the same log up to it (a store
    #: replaced under the same address would not have it), so the rows read are still its facts.
    anchor: tuple[int, bytes | None] = (0, None)

    def size(self) -> int:
        return sum(len(t.rows) for t in self.tables())

    def tables(self) -> list[_Table]:
        return [*self.records.values(), *self.events.values()]

    def catch_up(self, db: Db) -> None:
        """Read the rows applied since the last call (all of them for a table rebuilt since, or a log replaced)."""
        hashes = f"{log_table(db.url).events}_hashes"
        position, hashed = self.anchor
        if position and _hash(db, hashes, position) != hashed:
            for table in self.tables():
                table.rows, table.last = [], 0
        read = history.READ_DATA
        lean = f"CASE WHEN type IN ({', '.join('?' * len(read))}) THEN data END"
        for name in FOLDED:
            p = PROJECTIONS[name]
            self._read(db, p.records_table, f"{REC_COLUMNS}, type", (), self.records[name], _record)
            self._read(db, p.events_table, EV_COLUMNS.replace("data", lean), read, self.events[name], _ev)
        last = max(table.last for table in self.tables())
        self.anchor = (last, _hash(db, hashes, last) if last else None)

    @staticmethod
    def _read(db: Db, table: str, columns: str, params: tuple[Any, ...], kept: _Table, decode: Any) -> None:
        if kept.rows:
            (count,) = db.query(f"SELECT COUNT(*) FROM {table} WHERE position <= ?", (kept.last,))[0]
            if int(count) != len(kept.rows):
                kept.rows, kept.last = [], 0  # rebuilt, or being rebuilt: read afresh
        rows = db.query(f"SELECT {columns} FROM {table} WHERE position > ? ORDER BY position", (*params, kept.last))
        kept.rows += map(decode, rows)
        if kept.rows:
            kept.last = _position(kept.rows[-1])

    def cut_records(self, projection: str, as_of: int, known_at: int, type_: str | None) -> list[Rec]:
        """The records known at ``known_at`` that happened by ``as_of`` (of ``type_``), in position order."""
        return [
            rec
            for rec, kind in self.records[projection].rows
            if rec.recorded_at <= known_at and rec.occurred_at <= as_of and (type_ is None or kind == type_)
        ]

    def cut_events(self, projection: str, as_of: int, known_at: int, types: Collection[str] | None) -> list[Ev]:
        """The events known at ``known_at`` that happened by ``as_of``, of ``types`` (all when None), in position
        order."""
        return [
            e
            for e in self.events[projection].rows
            if e.recorded_at <= known_at and e.occurred_at <= as_of and (types is None or e.type in types)
        ]


def _hash(db: Db, table: str, position: int) -> bytes | None:
    rows = db.query(f"SELECT hash FROM {table} WHERE position = ?", (position,))
    return bytes(rows[0][0]) if rows else None


def _record(row: Any) -> tuple[Rec, str]:
    return _rec(row[:-1]), row[-1]


def _position(row: tuple[Rec, str] | Ev) -> int:
    return row.position if isinstance(row, Ev) else row[0].position


_kept: dict[str, Facts] = {}
_kept_lock = threading.Lock()


def kept(db: Db) -> Facts | None:
    """This process's facts of the store ``db`` reads, caught up with the tables; ``None`` past :data:`LIMIT`
    rows (then every fold reads the tables)."""
    with _kept_lock:
        facts = _kept.get(db.url)
        if facts is None:
            tables = [t for name in FOLDED for t in (PROJECTIONS[name].records_table, PROJECTIONS[name].events_table)]
            rows = db.query(" UNION ALL ".join(f"SELECT COUNT(*) FROM {t}" for t in tables))
            if sum(int(r[0]) for r in rows) > LIMIT:
                return None
            facts = _kept[db.url] = Facts()
        facts.catch_up(db)
        if facts.size() > LIMIT:  # grown past it since
            del _kept[db.url]
            return None
        return facts


__all__ = ["FOLDED", "LIMIT", "Facts", "kept"]
