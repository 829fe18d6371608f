"""LMDB store: durability across reopen, genesis pinning, map growth, safety state."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from node import crypto
from node.config import PARTICIPANTS_MAX
from node.genesis import DemoNetwork, demo_genesis
from node.invariant import InvariantError
from node.merkle import EMPTY_ROOT
from node.settlement import BlockContext, PartyRoot, ResultCode, apply_block
from node.store import GenesisMismatchError, LmdbStore, MemoryStore, Storage, StorageError
from tests.ledger_helpers import TxFactory


def commit(store: Storage, raws: list[bytes], block_bytes: bytes = b"blk") -> None:
    h = store.head().height + 1
    ctx = BlockContext(h, store.genesis.genesis_time_ms + h)
    out = apply_block(store, raws, ctx)
    store.commit_block(crypto.sha256(h.to_bytes(8, "big")), block_bytes, b"cert%d" % h, ctx, out)


def test_reopen_keeps_everything(tmp_path: Path, net: DemoNetwork, txf: TxFactory) -> None:
    raws = [txf.signed(txf.dvp()), txf.signed(txf.transfer())]
    mem = MemoryStore(net.genesis)
    with LmdbStore(tmp_path, net.genesis) as disk:
        for s in (mem, disk):
            commit(s, raws)
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert disk.head() == mem.head()
        assert disk.all_balances() == mem.all_balances()
        block = disk.block(1)
        assert block is not None and block.certificate == b"cert1"
        assert [r.code for r in block.results] == [ResultCode.OK, ResultCode.OK]
        assert block == mem.block(1)
        rec = disk.tx_record(block.results[1].tx_id)
        assert rec is not None and (rec.height, rec.position) == (1, 1)
        assert disk.block(2) is None


def test_refuses_another_genesis(tmp_path: Path, net: DemoNetwork) -> None:
    LmdbStore(tmp_path, net.genesis).close()
    other = demo_genesis(seed=b"other").genesis
    with pytest.raises(GenesisMismatchError, match="matching genesis"):
        LmdbStore(tmp_path, other)


def test_map_grows_instead_of_failing(tmp_path: Path, net: DemoNetwork, txf: TxFactory) -> None:
    with LmdbStore(tmp_path, net.genesis, map_size_bytes=256 * 1024) as disk:
        for _ in range(12):
            commit(disk, [txf.signed(txf.transfer())], block_bytes=bytes(100_000))
        assert disk.head().height == 12
        assert disk._env.info()["map_size"] > 256 * 1024


def test_safety_state_survives_reopen(tmp_path: Path, net: DemoNetwork) -> None:
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert disk.load_safety() is None
        disk.save_safety(b"view=7;lock=abc")
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert disk.load_safety() == b"view=7;lock=abc"


def test_commit_out_of_order_is_a_bug(tmp_path: Path, net: DemoNetwork) -> None:
    with LmdbStore(tmp_path, net.genesis) as disk:
        out = apply_block(disk, [], BlockContext(1, 0))
        with pytest.raises(InvariantError):  # not an assert: it survives python -O
            disk.commit_block(bytes(32), b"", b"", BlockContext(2, 0), out)


def test_a_corrupt_record_halts_with_storage_error(
    tmp_path: Path, net: DemoNetwork, txf: TxFactory
) -> None:
    """A stored value that does not decode (a torn or flipped record) is a corrupt data
    directory: the read raises StorageError and tells on_error (fail-stop), where it used to
    leak struct.error or ValueError from inside the read."""
    raws = [txf.signed(txf.transfer())]
    with LmdbStore(tmp_path, net.genesis) as disk:
        commit(disk, raws)
        halted: list[StorageError] = []
        disk.on_error = halted.append
        (account, instrument), _ = next(iter(disk.all_balances().items()))
        tx_id = disk.block(1).results[0].tx_id  # type: ignore[union-attr]
        with disk._env.begin(write=True) as txn:
            txn.put(f"{account}\x00{instrument}".encode(), b"\x01\x02\x03", db=disk._db["balances"])
            txn.put(tx_id, b"\x00" * 12 + b"\xee", db=disk._db["txindex"])  # unknown code
        disk._drop_reader()
        with pytest.raises(StorageError, match="corrupt record"):
            disk.balance(account, instrument)
        with pytest.raises(StorageError, match="corrupt record"):
            disk.tx_record(tx_id)
        assert len(halted) == 2


def test_each_block_keeps_its_party_root(tmp_path: Path, net: DemoNetwork, txf: TxFactory) -> None:
    """The size and root of a block's party index are stored with it (ADR 0025,
    amendment): what execution built, an empty block's too. A block written by a store of
    before session 20 has none (read as None: the node works the index out again), and a
    record that does not decode, or claims more leaves than the registry can have, is a
    corrupt data directory."""
    raws = [txf.signed(txf.dvp()), txf.signed(txf.transfer())]
    with LmdbStore(tmp_path, net.genesis) as disk:
        ctx = BlockContext(1, net.genesis.genesis_time_ms + 1)
        out = apply_block(disk, raws, ctx)
        disk.commit_block(crypto.sha256(b"1"), b"blk", b"cert", ctx, out)
        commit(disk, [])
    with LmdbStore(tmp_path, net.genesis) as disk:
        first, empty = disk.block(1), disk.block(2)
        assert first is not None and empty is not None
        assert (
            first.parties == out.parties.top
            and first.parties.size == len(net.genesis.participants) + 1
        )
        assert empty.parties == PartyRoot(0, EMPTY_ROOT)
        halted: list[StorageError] = []
        disk.on_error = halted.append
        key = (1).to_bytes(8, "big")
        with disk._env.begin(write=True) as txn:
            txn.delete(key, db=disk._db["parties"])  # as a store of before session 20 wrote it
        disk._drop_reader()
        assert disk.block(1) == dataclasses.replace(first, parties=None)
        too_big = (PARTICIPANTS_MAX + 2).to_bytes(4, "big") + bytes(32)
        for bad in (b"\x00" * 35, too_big):
            with disk._env.begin(write=True) as txn:
                txn.put(key, bad, db=disk._db["parties"])
            disk._drop_reader()
            with pytest.raises(StorageError, match="corrupt record"):
                disk.block(1)
        assert len(halted) == 2
