"""The log's Merkle tree in the database (默克尔树存储): leaves in log order plus cached subtree roots.

``ledger_merkle_nodes(level, idx, hash, position)`` holds every complete aligned subtree root
(level 0 = the leaves, copied from the chain table with their log position; level L, index i =
the root of leaves ``[i·2^L, (i+1)·2^L)``), as tile-based transparency logs do. A complete
subtree never changes, so the cache only grows; any root or proof then reads O(log n) rows.
Leaf indices count chained events in position order (PostgreSQL positions may have gaps).
"""

from __future__ import annotations

from audit import merkle
from audit.db import AuditDB, as_bytes
from audit.schema import NODES, ensure_tables

# Arbitrary constant naming "Merkle cache update" among PostgreSQL advisory locks.
_SYNC_LOCK_KEY = 0x4C45444745520003
BATCH = 4096  # even, so a batch of children always pairs up


class StoredTree:
    """Roots and proofs over the cached tree; ``sync()`` first to include the newest events."""

    def __init__(self, db: AuditDB) -> None:
        self.db = db

    def size(self) -> int:
        """Leaves in the cache."""
        if not self.db.table_exists(NODES):
            return 0
        return int(self.db.query(f"SELECT COUNT(*) FROM {NODES} WHERE level = 0")[0][0])

    def sync(self) -> int:
        """Add the chain rows recorded since the last sync, and every subtree they complete."""
        ensure_tables(self.db)
        with self.db.transaction():
            if self.db.engine == "postgres":
                self.db.execute("SELECT pg_advisory_xact_lock(?)", (_SYNC_LOCK_KEY,))
            old, last = self.db.query(f"SELECT COUNT(*), COALESCE(MAX(position), 0) FROM {NODES} WHERE level = 0")[0]
            size = self._copy_leaves(int(old), int(last))
            level = 1
            while (size >> level) > (old >> level):
                self._complete_level(level, old >> level, size >> level)
                level += 1
        return size

    def _copy_leaves(self, size: int, last_position: int) -> int:
        while True:
            rows = self.db.query(
                f"SELECT position, leaf FROM {self.db.hashes_table} WHERE position > ? ORDER BY position LIMIT {BATCH}",
                (last_position,),
            )
            if not rows:
                return size
            self.db.executemany(
                f"INSERT INTO {NODES} (level, idx, hash, position) VALUES (0, ?, ?, ?)",
                [(size + i, as_bytes(leaf), pos) for i, (pos, leaf) in enumerate(rows)],
            )
            size += len(rows)
            last_position = rows[-1][0]

    def _complete_level(self, level: int, have: int, want: int) -> None:
        for start in range(2 * have, 2 * want, BATCH):
            stop = min(start + BATCH, 2 * want)
            children = [
                as_bytes(h)
                for (h,) in self.db.query(
                    f"SELECT hash FROM {NODES} WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
                    (level - 1, start, stop),
                )
            ]
            self.db.executemany(
                f"INSERT INTO {NODES} (level, idx, hash) VALUES (?, ?, ?)",
                [
                    (level, (start + i) // 2, merkle.hash_node(children[i], children[i + 1]))
                    for i in range(0, len(children), 2)
                ],
            )

    def node(self, level: int, idx: int) -> bytes:
        rows = self.db.query(f"SELECT hash FROM {NODES} WHERE level = ? AND idx = ?", (level, idx))
        if not rows:
            msg = f"Merkle node ({level}, {idx}) is not cached: sync the tree first"
            raise LookupError(msg)
        return as_bytes(rows[0][0])

    def range_root(self, lo: int, hi: int) -> bytes:
        return merkle.fold([self.node(level, idx) for level, idx in merkle.perfect_parts(lo, hi)])

    def root(self, size: int) -> bytes:
        return self.range_root(0, size) if size else merkle.EMPTY_ROOT

    def index_of(self, position: int) -> int:
        """The leaf index of a log position (LookupError if it is not in the tree)."""
        rows = self.db.query(f"SELECT idx FROM {NODES} WHERE level = 0 AND position = ?", (position,))
        if not rows:
            msg = f"position {position} is not in the Merkle tree"
            raise LookupError(msg)
        return int(rows[0][0])

    def position_of(self, index: int) -> int:
        rows = self.db.query(f"SELECT position FROM {NODES} WHERE level = 0 AND idx = ?", (index,))
        if not rows:
            msg = f"leaf {index} is not in the Merkle tree"
            raise LookupError(msg)
        return int(rows[0][0])

    def first_bad_node(self) -> tuple[int, str] | None:
        """The first cached node that is not what the hash chain makes it, as the log position of the first leaf
        under it and why; ``None`` when every one is. Proofs and roots are read from this cache, so a node edited
        in it would hand out proofs that fail for intact events while the chain itself verifies."""
        size = self.size()
        done = 0
        while done < size:
            rows = self.db.query(
                f"SELECT n.idx, n.hash, n.position, h.leaf FROM {NODES} n LEFT JOIN {self.db.hashes_table} h"
                f" ON h.position = n.position WHERE n.level = 0 AND n.idx >= ? ORDER BY n.idx LIMIT {BATCH}",
                (done,),
            )
            for i, (idx, cached, position, leaf) in enumerate(rows):
                if int(idx) != done + i or leaf is None or as_bytes(cached) != as_bytes(leaf):
                    return int(position or 0), f"the Merkle tree's leaf {idx} is not the chain's leaf at {position}"
            done += len(rows)
        level = 1
        while size >> level:
            for start in range(0, size >> level, BATCH // 2):
                stop = min(start + BATCH // 2, size >> level)
                children = self._level(level - 1, 2 * start, 2 * stop)
                for i, (idx, cached) in enumerate(self._level(level, start, stop)):
                    if idx != start + i or cached != merkle.hash_node(children[2 * i][1], children[2 * i + 1][1]):
                        first = self.position_of(idx << level)
                        return first, f"the Merkle tree's node ({level}, {idx}) is not its children's hash"
            level += 1
        return None

    def _level(self, level: int, lo: int, hi: int) -> list[tuple[int, bytes]]:
        rows = self.db.query(
            f"SELECT idx, hash FROM {NODES} WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx", (level, lo, hi)
        )
        return [(int(idx), as_bytes(h)) for idx, h in rows]

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return merkle.inclusion_path(index, size, self.range_root)

    def consistency(self, first: int, second: int) -> list[bytes]:
        return merkle.consistency_path(first, second, self.range_root)
