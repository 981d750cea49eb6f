"""The stored Merkle tree answers the same roots and proofs as the reference, while it grows."""

from __future__ import annotations

import random

from audit import merkle
from audit.db import AuditDB
from audit.tree import StoredTree
from tests.audit.test_merkle import naive_path, naive_root, naive_subproof


def test_stored_tree_matches_reference_as_it_grows(store_url: str) -> None:
    rng = random.Random(9162)
    with AuditDB(store_url) as db:
        tree = StoredTree(db)
        leaves = [leaf for _, _, leaf in db.hashes()]  # policy v1, written by init
        position = max((p for p, _, _ in db.hashes()), default=0)
        for _ in range(8):
            chunk = rng.randint(1, 12)
            rows = []
            for _ in range(chunk):
                position += rng.choice([1, 1, 1, 3])  # PostgreSQL positions may have gaps
                leaf = merkle.hash_leaf(position.to_bytes(8, "big"))
                rows.append((position, bytes(32), leaf))
                leaves.append(leaf)
            db.executemany(f"INSERT INTO {db.hashes_table} (position, hash, leaf) VALUES (?, ?, ?)", rows)
            n = tree.sync()
            assert n == len(leaves)
            assert tree.root(n) == naive_root(leaves)
            for m in range(n):
                assert tree.inclusion(m, n) == naive_path(m, leaves)
            for first in range(1, n + 1):
                assert tree.consistency(first, n) == naive_subproof(first, leaves, True)
                assert tree.root(first) == naive_root(leaves[:first])
        assert tree.index_of(position) == len(leaves) - 1
        assert tree.position_of(len(leaves) - 1) == position
