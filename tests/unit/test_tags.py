"""Domain-separation tags: one home (``node/tags.py``), distinct, prefix-free, pinned.

The scanner below walks every module of ``node/`` and ``client/`` for a tag written
anywhere else (a ``b"dvp-..."`` literal, or a bytes literal fed to ``sha256`` before
data); its negative control plants one and shows it is found.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path
from typing import TypeGuard

import pytest

from node import tags
from node.core import genesis_hash, timeout_message, vote_message
from node.core.types import Phase
from node.settlement import ResultCode, TxResult, genesis_state_root, result_leaf
from tests.ledger_helpers import shared_net

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / "node" / "tags.py"


def test_prefix_tags_are_distinct_prefix_free_and_nul_terminated() -> None:
    values = list(tags.PREFIX_TAGS.values())
    assert len(set(values)) == len(values)
    for name, tag in tags.PREFIX_TAGS.items():
        assert tag.endswith(b"\x00") and tag.count(b"\x00") == 1, name
        for other_name, other in tags.PREFIX_TAGS.items():
            if other_name != name:
                assert not other.startswith(tag), f"{name} is a prefix of {other_name}"


def test_every_tag_constant_is_in_the_family_it_is_checked_in() -> None:
    # A tag added to tags.py but left out of PREFIX_TAGS would escape the test above.
    long_tags = {
        name: getattr(tags, name)
        for name in tags.__all__
        if isinstance(getattr(tags, name), bytes) and len(getattr(tags, name)) > 1
    }
    assert long_tags == {**tags.PREFIX_TAGS, **tags.RECORD_MAGICS}
    for magic in tags.RECORD_MAGICS.values():
        assert not any(
            magic.startswith(t) or t.startswith(magic) for t in tags.PREFIX_TAGS.values()
        )
    assert tags.MERKLE_LEAF != tags.MERKLE_NODE
    assert tags.LEAF_RECORDED != tags.LEAF_UNRECORDED


def _is_bytes(node: ast.AST) -> TypeGuard[ast.Constant]:
    return isinstance(node, ast.Constant) and isinstance(node.value, bytes)


def _stray_tags(source: str) -> list[str]:
    """Where ``source`` writes a tag of its own: a bytes literal starting ``dvp-``, or one
    passed to ``sha256`` ahead of other data."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if _is_bytes(node) and node.value.startswith(b"dvp-"):
            found.append(f"line {node.lineno}: {node.value!r}")
        if isinstance(node, ast.Call) and len(node.args) > 1 and _is_bytes(node.args[0]):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "sha256":
                found.append(f"line {node.lineno}: sha256({node.args[0].value!r}, ...)")
    return found


def test_no_module_but_node_tags_writes_a_tag() -> None:
    stray = {}
    for path in sorted([*ROOT.glob("node/**/*.py"), *ROOT.glob("client/**/*.py")]):
        if path != HOME and "wire" not in path.parts:
            found = _stray_tags(path.read_text())
            if found:
                stray[str(path.relative_to(ROOT))] = found
    assert stray == {}, f"tags outside node/tags.py: {stray}"


@pytest.mark.parametrize(
    "planted",
    [
        'TAG = b"dvp-ledger/v1/genesis\\x00"',
        'h = crypto.sha256(b"x/y\\x00", data)',
        'h = sha256(b"\\x00", data)',
    ],
)
def test_negative_control_the_scanner_finds_a_planted_tag(planted: str) -> None:
    assert _stray_tags(planted)
    assert not _stray_tags("h = sha256(tags.STATE, data)")


# --- golden vectors: what changed with ADR 0011, pinned so it does not change again ------


def test_block_ones_parent_and_the_genesis_state_root_have_their_own_tags() -> None:
    """Both were SHA-256 over b"dvp-ledger/v1/genesis\\0" (one literal, two digests)."""
    sha = lambda *p: hashlib.sha256(b"".join(p)).digest()  # noqa: E731
    assert genesis_hash("c") == sha(b"dvp-ledger/v1/genesis-block\x00", b"\x00\x01c")
    assert genesis_hash("c").hex().startswith(sha(tags.GENESIS_BLOCK, b"\x00\x01c").hex())
    g = shared_net().genesis
    assert genesis_state_root(g) == sha(b"dvp-ledger/v1/genesis-state\x00", g.canonical_bytes)
    old = b"dvp-ledger/v1/genesis\x00"
    assert genesis_hash("c") != sha(old, b"\x00\x01c")
    assert genesis_state_root(g) != sha(old, g.canonical_bytes)


def test_votes_and_timeouts_are_signed_under_different_tags() -> None:
    vote = vote_message("c", Phase.COMMIT, 1, 1, bytes(32))
    timeout = timeout_message("c", 1, 1, None)
    assert vote.startswith(tags.VOTE) and timeout.startswith(tags.TIMEOUT)


def test_result_leaves_keep_their_layout() -> None:
    leaf = result_leaf(TxResult(b"i" * 32, ResultCode.DUPLICATE, recorded=False))
    assert leaf == tags.LEAF_UNRECORDED + b"i" * 32 + int(ResultCode.DUPLICATE).to_bytes(2, "big")
