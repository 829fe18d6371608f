"""RFC 6962 Merkle trees: roots against the RFC's recursive definition, paths that verify
and paths that must not."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import merkle


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, literally: split at the largest power of two below n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


LEAVES = st.lists(st.binary(max_size=40), min_size=1, max_size=70)


def test_known_roots() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT
    one = hashlib.sha256(b"\x00a").digest()
    assert merkle.root([b"a"]) == one
    two = hashlib.sha256(b"\x01" + one + hashlib.sha256(b"\x00b").digest()).digest()
    assert merkle.root([b"a", b"b"]) == two


@given(LEAVES)
def test_root_is_the_rfc_6962_tree_hash(leaves: list[bytes]) -> None:
    assert merkle.root(leaves) == _mth(leaves)


@given(LEAVES, st.data())
def test_every_path_leads_to_the_root(leaves: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    audit = merkle.path(leaves, index)
    assert merkle.root_from_path(leaves[index], index, len(leaves), audit) == merkle.root(leaves)


@given(LEAVES, st.data())
def test_a_path_proves_nothing_else(leaves: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    audit = merkle.path(leaves, index)
    root, size = merkle.root(leaves), len(leaves)
    # Another leaf, another position or an altered path: never the root. (The tree size
    # only fixes the path's shape; a receipt takes it from the certified header.)
    assert merkle.root_from_path(leaves[index] + b"x", index, size, audit) != root
    if size > 1:
        other = (index + 1) % size
        if leaves[other] != leaves[index]:
            assert merkle.root_from_path(leaves[index], other, size, audit) != root
    if audit:
        k = data.draw(st.integers(0, len(audit) - 1))
        flipped = bytes([audit[k][0] ^ 1]) + audit[k][1:]
        bent = (*audit[:k], flipped, *audit[k + 1 :])
        assert merkle.root_from_path(leaves[index], index, size, bent) != root
        assert merkle.root_from_path(leaves[index], index, size, audit[:-1]) is None
    assert merkle.root_from_path(leaves[index], index, size, (*audit, bytes(32))) is None


def test_malformed_paths_are_refused() -> None:
    leaves = [b"a", b"b", b"c"]
    audit = merkle.path(leaves, 2)
    assert merkle.root_from_path(b"c", 3, 3, audit) is None  # index outside the tree
    assert merkle.root_from_path(b"c", 2, 3, (audit[0][:31],)) is None  # short hash
    assert merkle.root_from_path(b"c", 0, 1, (bytes(32),) * 65) is None  # absurdly long


def test_index_and_hash_length_edges_are_refused() -> None:
    """The edges of root_from_path's input checks: index -1 and one past the size, hashes
    one byte short and one byte long (found by mutation testing, docs/testing.md)."""
    leaves = [b"a", b"b", b"c", b"d"]
    audit = merkle.path(leaves, 0)
    assert merkle.root_from_path(b"a", 0, 4, audit) == merkle.root(leaves)
    assert merkle.root_from_path(b"a", -1, 4, audit) is None
    assert merkle.root_from_path(b"a", 4, 4, audit) is None
    assert merkle.root_from_path(b"a", 5, 4, audit) is None
    for bad in (audit[0][:31], audit[0] + b"\x00"):
        assert merkle.root_from_path(b"a", 0, 4, (bad, audit[1])) is None


def test_every_path_of_every_small_tree_verifies() -> None:
    """Exhaustive for sizes 1-33: right edges promoted at every depth are all covered."""
    for size in range(1, 34):
        leaves = [bytes([i]) for i in range(size)]
        tree = merkle.MerkleTree(leaves)
        for i in range(size):
            assert merkle.root_from_path(leaves[i], i, size, tree.path(i)) == tree.root
        for bad in (-1, size, size + 1):
            with pytest.raises(IndexError):
                tree.path(bad)


def test_a_path_of_the_longest_allowed_length_is_computed() -> None:
    """64 hashes: leaf 0 of a tree of 2**64 leaves, the largest any u64 count allows."""
    assert merkle.root_from_path(b"a", 0, 2**64, (bytes(32),) * 64) is not None
    assert merkle.root_from_path(b"a", 0, 2**64, (bytes(32),) * 63) is None
    # 65 hashes are refused whatever size is claimed (even one that would need them).
    assert merkle.root_from_path(b"a", 0, 2**65, (bytes(32),) * 65) is None


def test_the_last_leaf_of_a_tree_above_256_leaves_proves_its_root() -> None:
    """301 leaves: the last leaf's index (300) is even and its sibling index equals the
    level's length, and both are ints above the small-int cache."""
    leaves = [b"leaf-%d" % i for i in range(301)]
    tree = merkle.MerkleTree(leaves)
    for index in (299, 300):
        audit = tree.path(int(str(index)))
        assert merkle.root_from_path(leaves[index], index, 301, audit) == tree.root
