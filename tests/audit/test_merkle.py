"""RFC 9162 Merkle proofs against a naive reference: every honest proof verifies, every tampered one fails."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import merkle
from audit.merkle import ProofError


def leaves(n: int) -> list[bytes]:
    return [merkle.hash_leaf(i.to_bytes(4, "big")) for i in range(n)]


def naive_root(data: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 §2.1.1, over already-hashed leaves."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return data[0]
    k = 1
    while k * 2 < len(data):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_root(data[:k]) + naive_root(data[k:])).digest()


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) from RFC 9162 §2.1.3.1."""
    n = len(data)
    if n == 1:
        return []
    k = merkle.split(n)
    if m < k:
        return [*naive_path(m, data[:k]), naive_root(data[k:])]
    return [*naive_path(m - k, data[k:]), naive_root(data[:k])]


def naive_subproof(m: int, data: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) from RFC 9162 §2.1.4.1."""
    n = len(data)
    if m == n:
        return [] if whole else [naive_root(data)]
    k = merkle.split(n)
    if m <= k:
        return [*naive_subproof(m, data[:k], whole), naive_root(data[k:])]
    return [*naive_subproof(m - k, data[k:], False), naive_root(data[:k])]


def range_root(data: list[bytes]) -> merkle.RangeRoot:
    return lambda lo, hi: naive_root(data[lo:hi])


def flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


@given(st.integers(min_value=0, max_value=300))
def test_roots_agree_with_the_rfc_definition(n: int) -> None:
    data = leaves(n)
    acc = merkle.Accumulator()
    acc.extend(data)
    assert merkle.root_of(data) == naive_root(data) == acc.root()
    assert merkle.fold([naive_root(data[lo:hi]) for lo, hi in _parts(n)]) == naive_root(data)


def _parts(n: int) -> list[tuple[int, int]]:
    return [(idx << level, (idx + 1) << level) for level, idx in merkle.perfect_parts(0, n)]


@settings(max_examples=200)
@given(st.data())
def test_inclusion_proofs(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=200))
    m = data.draw(st.integers(min_value=0, max_value=n - 1))
    tree = leaves(n)
    root = naive_root(tree)
    path = merkle.inclusion_path(m, n, range_root(tree))
    assert path == naive_path(m, tree)
    merkle.verify_inclusion(m, n, tree[m], path, root)
    # Tampering with the leaf, any path element, the index, the size or the path's length fails.
    with pytest.raises(ProofError):
        merkle.verify_inclusion(m, n, flip(tree[m]), path, root)
    if path:
        i = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        with pytest.raises(ProofError):
            merkle.verify_inclusion(m, n, tree[m], [*path[:i], flip(path[i]), *path[i + 1 :]], root)
        with pytest.raises(ProofError):
            merkle.verify_inclusion(m, n, tree[m], path[:-1], root)
    if n > 1:
        other = data.draw(st.integers(min_value=0, max_value=n - 1).filter(lambda x: x != m))
        with pytest.raises(ProofError):
            merkle.verify_inclusion(other, n, tree[m], path, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(m, n, tree[m], [*path, tree[0]], root)


@settings(max_examples=200)
@given(st.data())
def test_consistency_proofs(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=200))
    m = data.draw(st.integers(min_value=1, max_value=n))
    tree = leaves(n)
    first, second = naive_root(tree[:m]), naive_root(tree)
    path = merkle.consistency_path(m, n, range_root(tree))
    assert path == naive_subproof(m, tree, True)
    merkle.verify_consistency(m, n, first, second, path)
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, flip(first), second, path)
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, first, flip(second), path)
    if path:
        i = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, first, second, [*path[:i], flip(path[i]), *path[i + 1 :]])
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, first, second, path[:-1])
    if m < n:
        # A history that differs anywhere in the first m leaves is not consistent.
        j = data.draw(st.integers(min_value=0, max_value=m - 1))
        forged = [*tree[:j], flip(tree[j]), *tree[j + 1 :]]
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, first, naive_root(forged), path)


def test_rfc_examples_shapes() -> None:
    """The RFC's 7-leaf example: PATH(b), PATH(d) have 3 nodes; PROOF(3, D[7]) has 4."""
    tree = leaves(7)
    rr = range_root(tree)
    assert len(merkle.inclusion_path(1, 7, rr)) == 3
    assert merkle.inclusion_path(3, 7, rr) == [tree[2], naive_root(tree[0:2]), naive_root(tree[4:7])]
    assert merkle.consistency_path(3, 7, rr) == [tree[2], tree[3], naive_root(tree[0:2]), naive_root(tree[4:7])]
    assert merkle.consistency_path(4, 7, rr) == [naive_root(tree[4:7])]
    assert merkle.consistency_path(6, 7, rr) == [naive_root(tree[4:6]), tree[6], naive_root(tree[0:4])]
