"""State records (ADR 0013): the overlay a block writes through, both stores, the root."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from node import crypto, tags
from node.genesis import DemoNetwork
from node.invariant import InvariantError
from node.settlement import BlockContext, apply_block
from node.settlement._apply import _state_root
from node.settlement._state import Overlay
from node.store import LmdbStore, MemoryStore, Storage

A1, A2, B1 = b"\x01a1", b"\x01a2", b"\x02b1"


def _commit(store: Storage, records: dict[bytes, bytes | None]) -> None:
    """Commit an empty block that writes ``records`` (no kind writes them yet)."""
    h = store.head().height + 1
    ctx = BlockContext(h, store.genesis.genesis_time_ms + h)
    out = dataclasses.replace(apply_block(store, [], ctx), records=records)
    store.commit_block(crypto.sha256(h.to_bytes(8, "big")), b"blk", b"cert", ctx, out)


@pytest.fixture(params=["memory", "lmdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path, net: DemoNetwork) -> Storage:
    if request.param == "memory":
        return MemoryStore(net.genesis)
    return LmdbStore(tmp_path, net.genesis)


def test_a_store_keeps_puts_and_deletes_and_scans_one_prefix_in_key_order(
    store: Storage,
) -> None:
    _commit(store, {A2: b"two", B1: b"b", A1: b"one"})
    assert store.record(A1) == b"one" and store.record(b"\x01a3") is None
    assert list(store.records(b"\x01")) == [(A1, b"one"), (A2, b"two")]
    assert list(store.records(b"\x02")) == [(B1, b"b")]
    _commit(store, {A1: None, A2: b"2"})
    assert store.record(A1) is None
    assert list(store.records(b"\x01")) == [(A2, b"2")]
    assert list(store.records(b"\x03")) == []


def test_lmdb_records_survive_a_reopen(tmp_path: Path, net: DemoNetwork) -> None:
    with LmdbStore(tmp_path, net.genesis) as disk:
        _commit(disk, {A1: b"one", B1: b"b"})
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert list(disk.records(b"")) == [(A1, b"one"), (B1, b"b")]


def test_the_overlay_reads_its_own_writes_over_the_view(net: DemoNetwork) -> None:
    store = MemoryStore(net.genesis)
    _commit(store, {A1: b"old", A2: b"kept", B1: b"b"})
    o = Overlay(store)
    o.put_record(A1, b"new")
    o.delete_record(A2)
    o.put_record(b"\x01a0", b"first")
    assert o.record(A1) == b"new" and o.record(A2) is None and o.record(B1) == b"b"
    assert o.records(b"\x01") == [(b"\x01a0", b"first"), (A1, b"new")]
    assert store.record(A2) == b"kept"  # the view is untouched until the block commits


def test_record_limits_are_bugs_not_inputs(net: DemoNetwork) -> None:
    o = Overlay(MemoryStore(net.genesis))
    with pytest.raises(InvariantError):
        o.put_record(b"", b"x")
    with pytest.raises(InvariantError):
        o.put_record(b"\x01" * 257, b"x")
    with pytest.raises(InvariantError):
        o.put_record(A1, bytes(64 * 1024 + 1))


def test_records_are_under_the_state_root_and_absent_ones_change_nothing(
    net: DemoNetwork,
) -> None:
    """A written record, its value, or a deletion each change the root; a block that
    writes none has the root it had before records existed (the section is absent)."""
    store = MemoryStore(net.genesis)
    ctx = BlockContext(1, net.genesis.genesis_time_ms + 1)
    prev = store.head().state_root

    def root(records: dict[bytes, bytes | None]) -> bytes:
        o = Overlay(store)
        o.records_written.update(records)
        return _state_root(prev, ctx, [], o)

    roots = {root({}), root({A1: b"x"}), root({A1: b"y"}), root({A1: None}), root({A2: b"x"})}
    assert len(roots) == 5
    assert root({}) == apply_block(store, [], ctx).state_root
    # The root of a record-free block is the pre-records formula: no trailing section.
    w_roots = crypto.sha256(
        tags.STATE,
        prev,
        ctx.height.to_bytes(8, "big"),
        ctx.time_ms.to_bytes(8, "big"),
        bytes(12),
    )
    assert root({}) == w_roots
