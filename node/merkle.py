"""RFC 6962 / RFC 9162 Merkle trees: roots, audit paths and their verification.

Leaf hash ``sha256(0x00 || data)``, node hash ``sha256(0x01 || left || right)``; the
empty tree's root is ``sha256()``. The split rule (the largest power of two below the
size) makes a path's shape a function of (index, size) alone, so a verifier needs only
the leaf, its index, the tree size and the path.

Block headers commit to their transactions with ``root(txs)`` and to the previous
block's results with ``root(result leaves)`` (ADR 0005).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from node.config import MERKLE_PATH_LEN_MAX
from node.crypto import HASH_LEN, sha256
from node.tags import MERKLE_LEAF, MERKLE_NODE

__all__ = ["EMPTY_ROOT", "MerkleTree", "leaf_hash", "path", "root", "root_from_path"]

EMPTY_ROOT = sha256()


def leaf_hash(data: bytes) -> bytes:
    return sha256(MERKLE_LEAF, data)


def _node(left: bytes, right: bytes) -> bytes:
    return sha256(MERKLE_NODE, left, right)


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every level bottom-up; an odd last node is promoted unchanged (RFC 6962 shape).
    The hashes of ``leaf_hash`` and ``_node``, written out: one C call each instead of
    three Python calls (a block's trees, and a party index of one leaf per participant,
    are built for every block: session 20, docs/performance.md)."""
    sha = hashlib.sha256
    level = [sha(MERKLE_LEAF + d).digest() for d in leaves]
    levels = [level]
    while len(level) > 1:
        nxt = [
            sha(MERKLE_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


class MerkleTree:
    """Every level of one tree, kept so that many paths cost one build (a node serving
    receipts for a whole block builds the block's trees once)."""

    __slots__ = ("_levels", "size")

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.size = len(leaves)
        self._levels = _levels(leaves) if leaves else []

    @property
    def root(self) -> bytes:
        return self._levels[-1][0] if self._levels else EMPTY_ROOT

    def path(self, index: int) -> tuple[bytes, ...]:
        """The audit path of leaf ``index``: sibling hashes from the leaf up to the root."""
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} of a tree of {self.size}")
        out = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                out.append(level[sibling])
            index //= 2
        return tuple(out)


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of ``leaves`` (raw leaf data, hashed here)."""
    return MerkleTree(leaves).root


def path(leaves: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """The audit path of leaf ``index`` in the tree of ``leaves``."""
    return MerkleTree(leaves).path(index)


def root_from_path(data: bytes, index: int, size: int, audit: Sequence[bytes]) -> bytes | None:
    """The root that ``audit`` leads to from leaf ``data`` at ``index`` of ``size``.

    None when the path cannot belong to such a tree (wrong length or malformed hashes).
    This is RFC 9162's inclusion-proof verification, returning the computed root so the
    caller compares it with the one a certified header holds.
    """
    if not 0 <= index < size or len(audit) > MERKLE_PATH_LEN_MAX:
        return None
    if any(len(h) != HASH_LEN for h in audit):
        return None
    fn, sn = index, size - 1
    h = leaf_hash(data)
    for sibling in audit:
        if sn == 0:
            return None  # path longer than the tree is tall
        if fn % 2 == 1 or fn == sn:
            h = _node(sibling, h)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            h = _node(h, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None  # path shorter than the tree is tall
    return h
