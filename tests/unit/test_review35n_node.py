"""Review 35n: the validator's runtime glue (``node/runtime/_node.py``), on a real ``Node``
in-process (a memory store, the test's loop).

Two defects, each with its control:

- A replica that halts itself in the drain that follows an accepted submit (divergence:
  no exception, so ``_guard`` returns normally) dropped the intake batch, and the submit
  still answered ACCEPTED: acknowledged but not durable (ADR 0006).
- ``stop`` (a halt, a shutdown) cancelled only the waits parked for a commit: a wait for
  the next commit (a result proof, a settlement) and a wait asked for after the halt slept
  until their timeout, though a stopped node commits nothing more.
"""

from __future__ import annotations

import asyncio

import pytest

from node.core.mempool import AddResult
from node.genesis import DemoNetwork
from node.runtime._node import EXIT_DIVERGED, NodeHaltedError
from tests.ledger_helpers import TxFactory, shared_net
from tests.patience import HANG_S
from tests.unit.test_failstop import CountingStore, Harness
from tests.unit.test_finality_wait import _node_with_trade_at_height_1, _qc


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


# --- acknowledged means durable ----------------------------------------------------------


def _diverging_drain(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drain after the submit finds this node's execution diverged: the replica halts
    itself (no exception), as ``Replica`` does on a certified root it did not compute."""
    real = h.node.engine.drain

    def drain(now: int) -> None:
        real(now)
        h.node.replica.halted = "injected: state root differs from the certified one"

    monkeypatch.setattr(h.node.engine, "drain", drain)


async def test_a_halt_in_the_drain_after_an_accept_refuses_the_ack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Acknowledged means durable (ADR 0006): the halt dropped the intake batch before its
    write, so the submit must be refused (UNAVAILABLE), never told ACCEPTED."""
    net = shared_net()  # 4 validators, node 0 alone: nothing commits
    store = CountingStore(net.genesis)
    h = Harness(net, store)
    h.node.start()
    _diverging_drain(h, monkeypatch)
    txf = TxFactory(net)
    with pytest.raises(NodeHaltedError, match="differs from the certified"):
        await h.submit(txf.signed(txf.transfer()))
    assert store.intake() == [] and store.intake_writes == 0  # nothing durable
    assert h.halts == 1 and h.node.exit_code == EXIT_DIVERGED


async def test_control_an_accept_without_a_halt_is_durable_before_its_answer() -> None:
    net = shared_net()
    store = CountingStore(net.genesis)
    h = Harness(net, store)
    h.node.start()
    txf = TxFactory(net)
    raw = txf.signed(txf.transfer())
    assert await h.submit(raw) is AddResult.ACCEPTED
    assert [r for _, r in store.intake()] == [raw] and store.intake_writes == 1
    assert h.halts == 0 and h.node.halted is None
    h.node.stop()


# --- a halt ends every finality wait -------------------------------------------------------


async def test_a_halt_ends_a_wait_for_the_next_commit(net: DemoNetwork, txf: TxFactory) -> None:
    """A halted node commits nothing more: a wait for a result proof (the next block) is
    ended with the halt (cancelled, as the waits parked for a commit are: the submit stream
    answers NODE_STOPPED), not left to sleep until its timeout."""
    node, tid, _ = _node_with_trade_at_height_1(net, txf)
    waiting = asyncio.ensure_future(node.wait_for(tid, HANG_S, prove_result=True))
    await _turns(1)
    assert not waiting.done()  # committed, its proof not yet: waits for the next commit
    node.fail("test", RuntimeError("injected"))
    await _turns()
    assert waiting.cancelled()
    assert node._waiter_count == 0 and not node._head_waits


async def test_a_wait_asked_for_after_a_halt_ends_at_once(net: DemoNetwork, txf: TxFactory) -> None:
    """Nothing will end it: a wait for an unknown id, and one for a proof that needs the
    next block, end at once after a halt; a receipt complete already is still answered."""
    node, tid, _ = _node_with_trade_at_height_1(net, txf)
    node.fail("test", RuntimeError("injected"))
    for wait in (
        node.wait_for(b"\x07" * 32, HANG_S, prove_result=False),
        node.wait_for(tid, HANG_S, prove_result=True),
    ):
        task = asyncio.ensure_future(wait)
        await _turns()
        assert task.cancelled()
    receipt = await asyncio.wait_for(node.wait_for(tid, HANG_S, prove_result=False), HANG_S)
    assert receipt.height == 1 and node._waiter_count == 0


async def test_control_a_halt_ends_a_wait_for_a_commit(net: DemoNetwork, txf: TxFactory) -> None:
    """The wait parked for a commit was ended by a halt before the fix as well."""
    node, _, _ = _node_with_trade_at_height_1(net, txf)
    waiting = asyncio.ensure_future(node.wait_for(b"\x07" * 32, HANG_S, prove_result=False))
    await _turns(1)
    node.fail("test", RuntimeError("injected"))
    await _turns()
    assert waiting.cancelled() and not node._waiters and node._waiter_count == 0


async def test_control_the_next_commit_still_ends_a_proof_wait(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """Ending waits on a halt changes nothing for a running node: the next commit ends a
    wait for a result proof, and the wait is forgotten."""
    node, tid, second = _node_with_trade_at_height_1(net, txf)
    waiting = asyncio.ensure_future(node.wait_for(tid, HANG_S, prove_result=True))
    await _turns(1)
    node._execute(second, _qc(net, second))
    receipt = await asyncio.wait_for(waiting, HANG_S)
    assert receipt.result_proof is not None and node._waiter_count == 0
    assert not getattr(node, "_head_waits", ())
