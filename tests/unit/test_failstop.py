"""Fail-stop and durable intake of a real ``Node`` (issue 12 items 5 and 8).

The node runs its real replica, settlement and store code on the test's event loop; only
the store's failure is injected (a subclass whose write raises, as a full disk would).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from node.core.mempool import AddResult, tx_key
from node.crypto import sha256
from node.genesis import DemoNetwork, demo_genesis
from node.invariant import InvariantError
from node.runtime import Metrics, Node
from node.runtime._node import EXIT_DIVERGED, EXIT_FATAL, NodeHaltedError
from node.settlement import BlockContext, BlockOutcome, apply_block, precheck
from node.store import LmdbStore, MemoryStore, Storage, StorageError, StoredBlock
from tests.ledger_helpers import TxFactory, shared_net
from tests.patience import HANG_S


@functools.cache
def solo_net() -> DemoNetwork:
    """One validator, quorum 1: a submit proposes, certifies and commits at once."""
    return demo_genesis(validators=1, quorum=1, seed=b"failstop")


class FailingCommitStore(MemoryStore):
    """A store whose block writes fail, as LMDB does on a full disk or an I/O error."""

    def _write_block(
        self, block: StoredBlock, outcome: BlockOutcome, intake_done: Sequence[bytes]
    ) -> None:
        raise StorageError("injected: No space left on device")


class CountingStore(MemoryStore):
    """Counts intake writes (each is one fsync on LMDB); can be told to fail them."""

    def __init__(self, *args: object, fail_intake: bool = False) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.intake_writes = 0
        self.fail_intake = fail_intake

    def intake_put(self, entries: Sequence[tuple[bytes, bytes, bytes]]) -> None:
        if self.fail_intake:
            raise StorageError("injected: I/O error")
        self.intake_writes += 1
        super().intake_put(entries)


class Harness:
    def __init__(self, net: DemoNetwork, store: Storage, index: int = 0) -> None:
        self.net, self.store = net, store
        self.now_ms = net.genesis.genesis_time_ms + 1_000
        self.halts = 0
        self.node = Node(
            net.genesis,
            index,
            net.validator_keys[index],
            store,
            Metrics(),
            clock=lambda: self.now_ms,
        )
        self.node.on_halt = self._on_halt

    def _on_halt(self) -> None:
        self.halts += 1

    def halted_metric(self) -> float | None:
        return self.node.metrics.registry.get_sample_value("ledger_halted")

    async def submit(self, raw: bytes) -> AddResult:
        tid = precheck(self.net.genesis, raw).tx_id
        return await self.node.submit(raw, tid)


def _fatal_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "fatal"]


async def test_a_failing_block_commit_halts_the_node(caplog: pytest.LogCaptureFixture) -> None:
    net = solo_net()
    h = Harness(net, FailingCommitStore(net.genesis))
    h.node.start()
    txf = TxFactory(net)
    # Accepted once in the intake log; the block commits a few loop turns later (each of
    # its own votes and certificates is stepped back on the next turn) and its write fails.
    assert await h.submit(txf.signed(txf.transfer())) is AddResult.ACCEPTED
    for _ in range(20):
        await asyncio.sleep(0)
    assert h.node.halted is not None and "No space left on device" in h.node.halted
    assert h.node.exit_code == EXIT_FATAL
    assert h.halts == 1 and h.halted_metric() == 1.0
    [line] = _fatal_lines(caplog)
    assert line.levelno == logging.ERROR
    assert line.fields["where"] == "loopback"  # type: ignore[attr-defined]
    assert line.exc_info is not None  # the traceback rides on the one line
    # Halted means no more input: a second submit is refused, a timer does nothing.
    with pytest.raises(NodeHaltedError):
        await h.submit(txf.signed(txf.transfer()))
    h.node._on_timer()
    assert h.halts == 1 and len(_fatal_lines(caplog)) == 1
    assert h.store.head().height == 0  # nothing half-written


async def test_an_exception_in_a_timer_callback_halts_the_node(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The view timer fires with no peers: the replica's timeout persists its safety state,
    and that write fails. The exception must not vanish into the loop's handler."""

    class FailingSafetyStore(MemoryStore):
        def save_safety(self, data: bytes) -> None:
            raise StorageError("injected: I/O error")

    net = shared_net()  # 4 validators, this one alone: no commit, the view times out
    h = Harness(net, FailingSafetyStore(net.genesis), index=2)
    h.node.start()
    r = h.node.replica
    assert r.leader(r.view) != 2  # so the submit itself persists nothing
    txf = TxFactory(net)
    assert await h.submit(txf.signed(txf.transfer())) is AddResult.ACCEPTED  # view timer on
    h.now_ms += 60_000  # past any view deadline
    h.node._on_timer()  # what the loop calls; it must not raise
    assert h.node.halted is not None and "save_safety" not in h.node.halted
    assert "I/O error" in h.node.halted
    assert h.halts == 1 and h.halted_metric() == 1.0
    [line] = _fatal_lines(caplog)
    assert line.fields["where"] == "timer"  # type: ignore[attr-defined]
    h.node.stop()


async def test_divergence_stops_the_process_too(caplog: pytest.LogCaptureFixture) -> None:
    net = shared_net()
    h = Harness(net, MemoryStore(net.genesis))
    h.node.start()
    h.node.replica.halted = "state root differs from the certified one at height 1"
    h.node._on_timer()  # any event reaches _after_drain
    assert h.halts == 1 and h.node.exit_code == EXIT_DIVERGED
    assert h.halted_metric() == 1.0
    (line,) = [r for r in caplog.records if r.getMessage() == "halted"]
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["reason"] == h.node.replica.halted
    assert fields["applied"] == h.node.store.head().height == 0  # the store's head, named


async def test_accepted_means_in_the_intake_log_and_a_restart_replays_it() -> None:
    net = shared_net()  # 4 validators, node 0 alone: nothing commits
    store = CountingStore(net.genesis)
    h = Harness(net, store)
    h.node.start()
    txf = TxFactory(net)
    raws = [txf.signed(txf.transfer(amount=k + 1)) for k in range(5)]
    results = await asyncio.gather(*(h.submit(raw) for raw in raws))
    assert results == [AddResult.ACCEPTED] * 5
    assert sorted(raw for _, raw in store.intake()) == sorted(raws)
    assert store.intake_writes == 1  # group commit: one write (one fsync) for the five
    h.node.stop()

    again = Harness(net, store)  # the process restarts on the same durable state
    assert len(again.node.replica.mempool) == 0
    again.node.start()
    assert len(again.node.replica.mempool) == 5
    tid = precheck(net.genesis, raws[0]).tx_id
    assert again.node.is_pending(tid)
    again.node.stop()


async def test_a_failing_intake_write_refuses_the_ack_and_halts() -> None:
    net = shared_net()
    h = Harness(net, CountingStore(net.genesis, fail_intake=True))
    h.node.start()
    txf = TxFactory(net)
    with pytest.raises(NodeHaltedError):
        await h.submit(txf.signed(txf.transfer()))
    assert h.halts == 1 and h.node.exit_code == EXIT_FATAL


async def test_a_commit_prunes_the_intake_log() -> None:
    net = solo_net()
    store = MemoryStore(net.genesis)
    h = Harness(net, store)
    h.node.start()
    txf = TxFactory(net)
    assert await h.submit(txf.signed(txf.transfer())) is AddResult.ACCEPTED
    assert store.intake_count() == 1  # durable before the answer
    for _ in range(20):  # its block commits a few loop turns later (loopback)
        await asyncio.sleep(0)
    assert store.head().height == 1
    assert store.intake_count() == 0  # the commit pruned it


async def test_after_close_a_queued_loopback_step_does_not_reach_the_store() -> None:
    """Shutdown: the servers stop, ``close`` runs, then the store closes while the loop
    may still run callbacks queued before (a one-node cluster's next loopback step). They
    must do nothing: no block, no fatal halt on a closed store. Without ``close`` the
    same callbacks commit the block (the control below)."""

    async def accepted_then(close: bool) -> Harness:
        net = solo_net()
        h = Harness(net, MemoryStore(net.genesis))
        h.node.start()
        txf = TxFactory(net)
        assert await h.submit(txf.signed(txf.transfer())) is AddResult.ACCEPTED
        if close:
            h.node.close()
        for _ in range(20):
            await asyncio.sleep(0)
        return h

    closed = await accepted_then(close=True)
    assert closed.store.head().height == 0 and closed.node.halted is None
    assert closed.halts == 0
    control = await accepted_then(close=False)
    assert control.store.head().height == 1


async def test_close_answers_a_submit_still_waiting_for_its_intake_write() -> None:
    """Its flush was queued and will never run: the submit is refused (not durable, so not
    acknowledged), not left waiting; a later submit is refused as a shutdown."""
    net = solo_net()
    h = Harness(net, MemoryStore(net.genesis))
    h.node.start()
    txf = TxFactory(net)
    waiting = asyncio.create_task(h.submit(txf.signed(txf.transfer())))
    await asyncio.sleep(0)  # submit ran and waits for the intake write
    h.node.close()
    with pytest.raises(NodeHaltedError, match="shut down"):
        await asyncio.wait_for(waiting, HANG_S)
    with pytest.raises(NodeHaltedError, match="node shut down"):
        await h.submit(txf.signed(txf.transfer(amount=2)))
    assert h.halts == 0 and h.node.halted is None


def test_lmdb_intake_survives_reopen_and_commits_prune_it(tmp_path: Path) -> None:
    net = shared_net()
    txf = TxFactory(net)
    raws = [txf.signed(txf.transfer(amount=k + 1)) for k in range(3)]
    entries = [(tx_key(r), precheck(net.genesis, r).tx_id, r) for r in raws]
    with LmdbStore(tmp_path, net.genesis) as disk:
        disk.intake_put(entries)
        disk.intake_put(entries[:1])  # idempotent
        assert disk.intake_count() == 3
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert disk.intake_count() == 3
        assert sorted(disk.intake()) == sorted((tid, r) for _, tid, r in entries)
        ctx = BlockContext(1, net.genesis.genesis_time_ms + 1)
        out = apply_block(disk, raws[:2], ctx)
        disk.commit_block(sha256(b"b1"), b"b", b"c", ctx, out, intake_done=[tx_key(raws[0])])
        assert disk.intake_count() == 2
        disk.intake_drop([tx_key(raws[1])])
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert [r for _, r in disk.intake()] == [raws[2]]


def test_lmdb_map_ceiling_is_a_storage_error(tmp_path: Path) -> None:
    net = solo_net()
    txf = TxFactory(net)
    with (
        LmdbStore(tmp_path, net.genesis, map_size_max_bytes=256 * 1024) as disk,
        pytest.raises(StorageError, match="map reached its limit"),
    ):
        for _ in range(1_000):
            raw = txf.signed(txf.transfer())
            disk.intake_put([(tx_key(raw), bytes(32), raw * 200)])


@pytest.mark.serial  # starts a child process (tests/isolation.py)
def test_store_invariants_survive_python_dash_o(tmp_path: Path) -> None:
    """A commit onto the wrong height is refused even where ``assert`` is compiled out."""
    script = f"""
import sys
from node.genesis import demo_genesis
from node.invariant import InvariantError
from node.settlement import BlockContext, apply_block
from node.store import LmdbStore
net = demo_genesis(validators=1, quorum=1, seed=b"failstop")
with LmdbStore({str(tmp_path)!r}, net.genesis) as disk:
    out = apply_block(disk, [], BlockContext(1, 0))
    try:
        disk.commit_block(bytes(32), b"", b"", BlockContext(2, 0), out)
    except InvariantError as e:
        print(e)
        sys.exit(0)
    print("committed", disk.head().height)
    sys.exit(1)
"""
    done = subprocess.run(
        [sys.executable, "-O", "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "onto height 0" in done.stdout


def test_invariant_error_is_what_the_store_raises(tmp_path: Path) -> None:
    net = solo_net()
    with LmdbStore(tmp_path, net.genesis) as disk:
        out = apply_block(disk, [], BlockContext(1, 0))
        with pytest.raises(InvariantError):
            disk.commit_block(bytes(32), b"", b"", BlockContext(2, 0), out)


async def test_a_storage_error_met_by_an_api_read_halts_the_node_too(tmp_path: Path) -> None:
    """Reads outside the driver (GetTransaction, GetBalances...) meet the same disk: the
    store reports its failure to the node, which halts, whoever was reading."""
    net = shared_net()
    store = LmdbStore(tmp_path, net.genesis)
    h = Harness(net, store)
    h.node.start()
    store._env.close()  # every later LMDB call fails, as on a vanished device
    with pytest.raises(StorageError, match="LMDB read failed"):
        h.node.receipt(bytes(32))
    assert h.halts == 1 and h.node.exit_code == EXIT_FATAL
    assert h.node.halted is not None and h.node.halted.startswith("storage: ")


async def test_a_full_lmdb_intake_refuses_the_ack_and_halts(tmp_path: Path) -> None:
    """The real LmdbStore at its map ceiling, met by the intake write of a submit."""
    net = shared_net()
    store = LmdbStore(tmp_path, net.genesis, map_size_max_bytes=128 * 1024)
    h = Harness(net, store)
    h.node.start()
    txf = TxFactory(net)
    with pytest.raises(NodeHaltedError):
        for _ in range(200):  # ~1 KB each; the map has room for far fewer
            assert await h.submit(txf.signed(txf.dvp())) is AddResult.ACCEPTED
    assert h.halts == 1 and h.node.exit_code == EXIT_FATAL
    assert h.node.halted is not None and "map reached its limit" in h.node.halted
    acked = store.intake_count()
    store.close()
    with LmdbStore(tmp_path, net.genesis) as reopened:  # every ack given is on disk
        assert reopened.intake_count() == acked > 0
