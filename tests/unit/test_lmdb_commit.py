"""The LMDB block commit, checked where mutation testing found it unchecked
(docs/testing.md): every write of an outcome reaches disk (supplies too), an id is never
recorded twice, intake pruning counts right, a block with its intake pruning is one write
transaction (one commit's syncs per block), and an LMDB failure is a StorageError.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from node import crypto
from node.core import tx_key
from node.genesis import DemoNetwork
from node.invariant import InvariantError
from node.settlement import BlockContext, apply_block
from node.store import LmdbStore, MemoryStore, Storage, StorageError
from node.store import _records as rec
from tests.ledger_helpers import TxFactory


def _commit(store: Storage, raws: list[bytes], intake_done: list[bytes] | None = None) -> None:
    h = store.head().height + 1
    ctx = BlockContext(h, store.genesis.genesis_time_ms + h)
    out = apply_block(store, raws, ctx)
    digest = crypto.sha256(h.to_bytes(8, "big"))
    store.commit_block(digest, b"blk", b"cert", ctx, out, intake_done=intake_done or [])


def test_mints_and_burns_reach_disk(tmp_path: Path, net: DemoNetwork, txf: TxFactory) -> None:
    bond, cash = net.bonds[0], net.cash
    raws = [
        txf.signed(txf.mint("BANK03", 700)),
        txf.signed(txf.burn("BANK04", 300)),
        txf.signed(txf.mint("BANK05", 9, instrument=cash, by="CASHCO")),
    ]
    mem = MemoryStore(net.genesis)
    _commit(mem, raws)
    with LmdbStore(tmp_path, net.genesis) as disk:
        _commit(disk, raws)
    with LmdbStore(tmp_path, net.genesis) as disk:
        for inst in (bond, cash):
            assert disk.supply(inst) == mem.supply(inst)
        assert disk.supply(bond) == 6 * 10_000_000 + 400
        assert disk.all_balances() == mem.all_balances()


def test_recording_an_id_twice_is_an_invariant_error(
    tmp_path: Path, net: DemoNetwork, txf: TxFactory
) -> None:
    """apply_block never records an id twice; if an outcome did, the commit refuses it
    rather than overwrite the first record."""
    raw = txf.signed(txf.transfer())
    with LmdbStore(tmp_path, net.genesis) as disk:
        _commit(disk, [raw])
        ctx = BlockContext(2, net.genesis.genesis_time_ms + 2)
        out = apply_block(MemoryStore(net.genesis), [raw], BlockContext(1, ctx.time_ms))
        forged = dataclasses.replace(out, height=2, balances={}, supplies={}, records={})
        with pytest.raises(InvariantError, match="recorded twice"):
            disk.commit_block(crypto.sha256(b"2"), b"b", b"c", ctx, forged)
        rec = disk.tx_record(out.results[0].tx_id)
        assert rec is not None and rec.height == 1 and disk.head().height == 1


def test_intake_count_follows_pruning(tmp_path: Path, net: DemoNetwork, txf: TxFactory) -> None:
    raws = [txf.signed(txf.transfer(amount=i)) for i in (1, 2)]
    with LmdbStore(tmp_path, net.genesis) as disk:
        _commit(disk, [])  # no intake: nothing pruned, the count stays 0
        assert disk.intake_count() == 0
        tid = crypto.sha256(b"id")
        disk.intake_put([(tx_key(r), tid, r) for r in raws])
        assert disk.intake_count() == 2
        _commit(disk, raws[:1], intake_done=[tx_key(raws[0])])
        assert disk.intake_count() == 1
        assert [r for _, r in disk.intake()] == raws[1:]


class _CountingEnv:
    """An LMDB environment that counts its write transactions."""

    def __init__(self, env: Any) -> None:
        self._env, self.write_txns = env, 0

    def begin(self, write: bool = False, **kw: Any) -> Any:
        self.write_txns += write
        return self._env.begin(write=write, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


def test_a_block_and_its_intake_pruning_are_one_write_transaction(
    tmp_path: Path, net: DemoNetwork, txf: TxFactory
) -> None:
    raws = [txf.signed(txf.transfer(amount=i)) for i in (1, 2, 3)]
    with LmdbStore(tmp_path, net.genesis) as disk:
        disk.intake_put([(tx_key(r), crypto.sha256(r), r) for r in raws])
        env = disk._env = _CountingEnv(disk._env)
        _commit(disk, raws[:2], intake_done=[tx_key(r) for r in raws[:2]])
        assert env.write_txns == 1 and disk.intake_count() == 1
        _commit(disk, [])  # an empty block, nothing to prune: still one
        assert env.write_txns == 2


def test_a_failed_lmdb_write_is_a_storage_error(tmp_path: Path, net: DemoNetwork) -> None:
    disk = LmdbStore(tmp_path, net.genesis)
    disk._env.close()  # as on a vanished device: every LMDB call now fails
    with pytest.raises(StorageError, match="LMDB write failed"):
        disk.intake_put([(bytes(32), bytes(32), b"x")])


def test_intake_replays_in_arrival_order_on_both_stores(
    tmp_path: Path, net: DemoNetwork, txf: TxFactory
) -> None:
    """The intake log gives back what it holds in the order it was acknowledged, as the
    FIFO mempool it is replayed into had it (docs/consensus.md "Mempool"): a client's
    trade and the hold, cancel or funding sent after it stay in that order across a
    restart. LMDB gave them in the order of their keys (SHA-256 of the bytes), the
    memory store in arrival order (review 31, determinism)."""
    raws = [txf.signed(txf.transfer(amount=k + 1)) for k in range(12)]
    entries = [(tx_key(r), crypto.sha256(r), r) for r in raws]
    assert sorted(entries) != entries  # else key order would pass for arrival order
    mem = MemoryStore(net.genesis)
    with LmdbStore(tmp_path, net.genesis) as disk:
        for store in (mem, disk):
            store.intake_put(entries[:5])  # one write
            for e in entries[5:]:
                store.intake_put([e])  # one write each
            store.intake_put(entries[2:4])  # already there: keeps its place
            store.intake_drop([tx_key(raws[1])])
        _commit(disk, [], intake_done=[tx_key(raws[7])])
        _commit(mem, [], intake_done=[tx_key(raws[7])])
    want = [r for k, r in enumerate(raws) if k not in (1, 7)]
    assert [r for _, r in mem.intake()] == want
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert [r for _, r in disk.intake()] == want
        assert disk.intake_count() == len(want)
        disk.intake_put([(tx_key(raws[1]), crypto.sha256(raws[1]), raws[1])])  # after a reopen
        assert [r for _, r in disk.intake()] == [*want, raws[1]]


def test_intake_entries_of_an_older_store_replay_first_and_prune(
    tmp_path: Path, net: DemoNetwork, txf: TxFactory
) -> None:
    """A data directory of before review 31 keys its intake entries by tx_key alone:
    they are read, replayed before any newer entry (they arrived first) and pruned."""
    old, new = ([txf.signed(txf.transfer(amount=k + 1)) for k in range(i, i + 3)] for i in (0, 3))
    with LmdbStore(tmp_path, net.genesis) as disk, disk._env.begin(write=True) as txn:
        for r in old:
            txn.put(tx_key(r), rec.encode_intake(crypto.sha256(r), r), db=disk._db["intake"])
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert disk.intake_count() == 3
        disk.intake_put([(tx_key(r), crypto.sha256(r), r) for r in new])
        assert sorted(r for _, r in disk.intake()[:3]) == sorted(old)
        assert [r for _, r in disk.intake()[3:]] == new
        disk.intake_drop([tx_key(old[0]), tx_key(new[0])])
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert disk.intake_count() == 4
        assert {r for _, r in disk.intake()} == {*old[1:], *new[1:]}
