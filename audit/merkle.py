"""RFC 9162 Merkle tree (默克尔树): hashing, inclusion and consistency proofs, and their checks.

Pure functions, no storage. Proof generation asks a ``RangeRoot`` for the root of a leaf range
``[lo, hi)``; the ranges it asks for are always split on powers of two, so a store that keeps the
roots of complete aligned subtrees answers each one from O(log n) stored hashes (see
``audit.tree``). Indices are 0-based leaf indices; sizes count leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
#: RFC 9162 §2.1.1: the hash of an empty tree is the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

RangeRoot = Callable[[int, int], bytes]
"""Root of the leaves ``[lo, hi)`` (a non-empty range)."""


class ProofError(ValueError):
    """A proof does not verify (证明无效): the reason says which check failed."""


def hash_leaf(data: bytes) -> bytes:
    """SHA-256(0x00 ‖ data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def hash_node(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): where RFC 9162 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_parts(lo: int, hi: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` as aligned perfect subtrees ``(level, index)``, left to right.

    Valid for the ranges proofs ask about: ``lo`` is a multiple of a power of two at least
    ``hi - lo`` rounded up, so the binary digits of the size give the subtrees.
    """
    parts: list[tuple[int, int]] = []
    start, size = lo, hi - lo
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            parts.append((level, start >> level))
            start += 1 << level
    return parts


def fold(peaks: Sequence[bytes]) -> bytes:
    """Root of a tree from its perfect subtrees' roots, left to right (right-to-left fold)."""
    if not peaks:
        return EMPTY_ROOT
    acc = peaks[-1]
    for peak in reversed(peaks[:-1]):
        acc = hash_node(peak, acc)
    return acc


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves (the reference definition, recursive; for tests and bundles)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = split(n)
    return hash_node(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


class Accumulator:
    """Streaming root (compact range): add leaf hashes in order, read the root at any size.

    Keeps at most one unpaired node per level (one per set bit of the size), so verifying millions
    of leaves takes O(log n) memory; ``extend`` pairs a whole batch level by level.
    """

    def __init__(self) -> None:
        self.size = 0
        self._carry: list[bytes | None] = []  # by level: the unpaired left node, if any

    def append(self, leaf: bytes) -> None:
        self.extend([leaf])

    def extend(self, leaves: list[bytes]) -> None:
        self.size += len(leaves)
        nodes, level = leaves, 0
        while nodes:
            if level == len(self._carry):
                self._carry.append(None)
            carry = self._carry[level]
            if carry is not None:
                nodes = [carry, *nodes]
            paired = len(nodes) & ~1
            self._carry[level] = nodes[paired] if len(nodes) & 1 else None
            nodes = [hash_node(nodes[i], nodes[i + 1]) for i in range(0, paired, 2)]
            level += 1

    def root(self) -> bytes:
        return fold([node for node in reversed(self._carry) if node is not None])


# --- generation (RFC 9162 §2.1.3.1 and §2.1.4.1) ---------------------------------------------


def inclusion_path(index: int, size: int, range_root: RangeRoot) -> list[bytes]:
    """PATH(m, D[n]): sibling roots from the leaf up to the root."""
    if not 0 <= index < size:
        msg = f"leaf index {index} is outside a tree of {size}"
        raise ValueError(msg)
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split(hi - lo)
        if index < lo + k:
            path.append(range_root(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_root(lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_path(first: int, second: int, range_root: RangeRoot) -> list[bytes]:
    """PROOF(m, D[n]) for 0 < m <= n: the RFC's SUBPROOF, iteratively."""
    if not 0 < first <= second:
        msg = f"no consistency proof from size {first} to {second}"
        raise ValueError(msg)
    tail: list[bytes] = []  # siblings, collected top-down; the proof lists them bottom-up
    m, lo, hi, whole = first, 0, second, True
    while m != hi - lo:
        k = split(hi - lo)
        if m <= k:
            tail.append(range_root(lo + k, hi))
            hi = lo + k
        else:
            tail.append(range_root(lo, lo + k))
            m -= k
            lo += k
            whole = False
    head = [] if whole else [range_root(lo, hi)]
    return head + tail[::-1]


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) -------------------------------------------


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to; raises ProofError when its shape is wrong."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        _check_hash(p)
        if sn == 0:
            raise ProofError("inclusion path is too long")
        if fn & 1 or fn == sn:
            r = hash_node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion path is too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root``."""
    if root_from_inclusion(index, size, leaf, path) != root:
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the root of size {size}")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]) -> None:
    """Raise ProofError unless the tree of ``second`` extends the tree of ``first``."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to {second}")
    for p in path:
        _check_hash(p)
    if first == second:
        if path:
            raise ProofError("consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError("equal sizes with different roots")
        return
    if not path:
        raise ProofError("consistency path is empty")
    nodes = list(path)
    if first & (first - 1) == 0:  # a power of two: the first tree is itself a node of the second
        nodes.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            raise ProofError("consistency path is too long")
        if fn & 1 or fn == sn:
            fr = hash_node(c, fr)
            sr = hash_node(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency path is too short")
    if fr != first_root:
        raise ProofError(f"consistency proof does not lead to the root of size {first}")
    if sr != second_root:
        raise ProofError(f"consistency proof does not lead to the root of size {second}")


def _check_hash(value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError("a proof hash is not 32 bytes")
