"""RFC 6962/9162 Merkle tree: checked against the RFC's recursive definitions and pymerkle."""

from __future__ import annotations

import hashlib

import pymerkle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.governance.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)

MAX = 64
ENTRIES = [f"entry-{i}".encode() for i in range(MAX)]
LEAVES = [leaf_hash(e) for e in ENTRIES]


# The RFC 6962 §2.1 definitions, transcribed literally (recursive, on the data entries). ----


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + d[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _h(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


@pytest.fixture(scope="module")
def pm_tree() -> pymerkle.InmemoryTree:
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    for e in ENTRIES:
        tree.append_entry(e)
    return tree


def test_hash_domain_separation() -> None:
    assert leaf_hash(b"x") == _h(b"\x00x")
    assert node_hash(b"a" * 32, b"b" * 32) == _h(b"\x01" + b"a" * 32 + b"b" * 32)
    assert root_from_leaves([]) == EMPTY_ROOT == _h(b"")


def test_roots_match_rfc_and_pymerkle_for_every_size(pm_tree: pymerkle.InmemoryTree) -> None:
    rng = CompactRange()
    for n in range(1, MAX + 1):
        rng.append(LEAVES[n - 1])
        expected = ref_mth(ENTRIES[:n])
        assert rng.root() == expected == pm_tree.get_state(n)
        assert root_from_leaves(LEAVES[:n]) == expected


def test_inclusion_every_index_every_size(pm_tree: pymerkle.InmemoryTree) -> None:
    for n in range(1, MAX + 1):
        root = pm_tree.get_state(n)  # independent implementation's tree head
        for i in range(n):
            proof = inclusion_proof(LEAVES, i, n)
            assert proof == ref_path(i, ENTRIES[:n])
            pm_proof = pm_tree.prove_inclusion(i + 1, n)
            assert proof == pm_proof.path[1:]  # same audit path, bottom-up
            pymerkle.verify_inclusion(LEAVES[i], root, pm_proof)
            assert verify_inclusion(LEAVES[i], i, n, proof, root)
            # wrong leaf, index, size, root or path must all fail
            assert not verify_inclusion(LEAVES[(i + 1) % MAX], i, n, proof, root)
            if n > 1:
                assert not verify_inclusion(LEAVES[i], (i + 1) % n, n, proof, root)
                assert not verify_inclusion(LEAVES[i], i, n, proof[:-1], root)
                bad = [*proof]
                bad[0] = bytes(32)
                assert not verify_inclusion(LEAVES[i], i, n, bad, root)
            assert not verify_inclusion(LEAVES[i], i, n, proof, bytes(32))
            assert not verify_inclusion(LEAVES[i], i, n, [*proof, root], root)


def test_consistency_every_pair_of_sizes(pm_tree: pymerkle.InmemoryTree) -> None:
    for n in range(1, MAX + 1):
        new_root = pm_tree.get_state(n)
        for m in range(1, n + 1):
            old_root = pm_tree.get_state(m)
            proof = consistency_proof(LEAVES, m, n)
            assert proof == ref_subproof(m, ENTRIES[:n], True)
            assert verify_consistency(m, n, old_root, new_root, proof)
            # pymerkle's own proof verifies against our tree heads
            pymerkle.verify_consistency(
                CompactRange.from_leaves(LEAVES[:m]).root(),
                CompactRange.from_leaves(LEAVES[:n]).root(),
                pm_tree.prove_consistency(m, n),
            )
            if m < n:
                assert not verify_consistency(m, n, new_root, new_root, proof)
                assert not verify_consistency(m, n, old_root, old_root, proof)
                assert not verify_consistency(m, n, old_root, new_root, proof[:-1])
                assert not verify_consistency(m, n, old_root, new_root, [])
                bad = [*proof]
                bad[-1] = bytes(32)
                assert not verify_consistency(m, n, old_root, new_root, bad)
            else:
                assert proof == []
                assert not verify_consistency(m, n, old_root, bytes(32), proof)


def test_forked_history_has_no_valid_consistency_proof() -> None:
    forked = [*LEAVES[:40]]
    forked[7] = leaf_hash(b"rewritten")
    old_root = root_from_leaves(forked[:20])  # what a checkpoint signed before the rewrite
    for n in range(20, 41):
        honest_proof = consistency_proof(LEAVES, 20, n)
        assert not verify_consistency(20, n, old_root, root_from_leaves(LEAVES[:n]), honest_proof)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3000), data=st.data())
def test_compact_range_serialisation_and_large_proofs(n: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    rng = CompactRange.from_leaves(leaves)
    again = CompactRange.from_bytes(rng.size, rng.to_bytes())
    assert again.root() == rng.root() == root_from_leaves(leaves)
    i = data.draw(st.integers(0, n - 1))
    m = data.draw(st.integers(1, n))
    assert verify_inclusion(leaves[i], i, n, inclusion_proof(leaves, i), rng.root())
    old = root_from_leaves(leaves[:m])
    assert verify_consistency(m, n, old, rng.root(), consistency_proof(leaves, m))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(LEAVES, 5, 5)
    with pytest.raises(ValueError):
        consistency_proof(LEAVES, 0, 5)
    with pytest.raises(ValueError):
        CompactRange(3, [bytes(32)])


def test_kept_tree_matches_the_rfc_at_every_size(pm_tree: pymerkle.InmemoryTree) -> None:
    """The in-memory tree, grown one leaf at a time, answers every root and proof of every
    smaller size as the RFC's definitions and pymerkle do."""
    tree = MerkleTree()
    assert tree.root() == EMPTY_ROOT
    for n in range(1, MAX + 1):
        tree.append(LEAVES[n - 1])
        assert tree.size == n
        for m in range(1, n + 1):
            assert tree.root(m) == pm_tree.get_state(m)
            assert tree.consistency_proof(m, n) == ref_subproof(m, ENTRIES[:n], True)
            assert tree.inclusion_proof(m - 1, n) == ref_path(m - 1, ENTRIES[:n])
        assert tree.leaf(n - 1) == LEAVES[n - 1]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 5000), data=st.data())
def test_kept_tree_agrees_with_the_leaf_list_on_large_trees(n: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    tree = MerkleTree(leaves)
    size = data.draw(st.integers(1, n))
    i = data.draw(st.integers(0, size - 1))
    m = data.draw(st.integers(1, size))
    assert tree.root(size) == root_from_leaves(leaves[:size])
    assert tree.inclusion_proof(i, size) == inclusion_proof(leaves, i, size)
    assert tree.consistency_proof(m, size) == consistency_proof(leaves, m, size)
    assert verify_consistency(
        m, size, tree.root(m), tree.root(size), tree.consistency_proof(m, size)
    )


def test_kept_tree_refuses_what_it_does_not_hold() -> None:
    tree = MerkleTree(LEAVES[:10])
    with pytest.raises(ValueError):
        tree.append(b"short")
    with pytest.raises(ValueError):
        tree.root(11)
    with pytest.raises(ValueError):
        tree.inclusion_proof(10, 10)
    with pytest.raises(ValueError):
        tree.consistency_proof(3, 11)
    with pytest.raises(ValueError):
        tree.consistency_proof(0, 5)
    with pytest.raises(IndexError):
        tree.leaf(10)
    assert tree.size == 10
