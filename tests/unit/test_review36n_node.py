"""Review 36n: the validator's runtime glue (``node/runtime/_node.py``), continued from
review 35n (its tests: ``test_review35n_node.py``), on a real ``Node`` in-process.

Two defects, each with its control (fail-stop, docs/cluster.md "Fail-stop": a broken
invariant or a corrupt data directory halts the node, it never serves on half-alive):

- A finality wait that a commit ended while the store holds no record of its id (a
  broken invariant) failed that one call, and the node served on.
- A receipt whose index names a block the store does not hold (a corrupt data
  directory), in a finality wait or any read of a receipt, failed that one call with an
  ``InvariantError``, and the node served on.

Then what the mutation target ``runtime.node`` left alive after review 35n.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from client import verify_receipt
from node.core import encode_block, encode_qc
from node.core.mempool import AddResult
from node.genesis import DemoNetwork
from node.invariant import InvariantError
from node.runtime import Metrics, Node, _node
from node.runtime._node import EXIT_FATAL, TooManyWaitersError
from node.settlement import BlockContext, ResultCode, Role, SignedTx, apply_block, precheck, tx_id
from node.store import StorageError
from tests.chain_helpers import Chain
from tests.gov_helpers import add_participant, set_roles
from tests.gov_helpers import signed as gov_signed
from tests.ledger_helpers import TxFactory
from tests.life_helpers import BOND_UNITS, at, life_net
from tests.patience import HANG_S
from tests.unit.test_failstop import solo_net
from tests.unit.test_finality_wait import _node_with_trade_at_height_1, _qc
from tests.unit.test_review35n_node import _Probes, _sample, _started, _turns

_BIG = 10_000_100  # 100 bond units more than the seller holds: a pending DvP waits


def _halts(node: Node) -> list[int]:
    seen: list[int] = []
    node.on_halt = lambda: seen.append(1)
    return seen


# --- fail-stop inside a finality wait ------------------------------------------------------


async def test_a_wait_its_commit_ends_without_a_record_halts_the_node(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """A commit settles the waits of each id it recorded; one whose record the store does
    not hold then is a broken invariant: the node halts (exit 3), not only the call."""
    node, _, _ = _node_with_trade_at_height_1(net, txf)
    halts = _halts(node)
    tid = b"\x07" * 32
    waiting = asyncio.ensure_future(node.wait_for(tid, HANG_S, prove_result=False))
    await _turns(1)
    node._resolve(tid)  # what a commit does for an id it recorded: not in this store
    await asyncio.wait({waiting}, timeout=HANG_S)
    assert isinstance(waiting.exception(), InvariantError)  # the call fails too
    assert (
        node.halted
        == f"wait_for: InvariantError: a wait for {tid.hex()} resolved before its commit"
    )
    assert node.exit_code == EXIT_FATAL and halts == [1]


async def test_control_a_wait_its_commit_records_is_answered_and_the_node_runs_on(
    net: DemoNetwork, txf: TxFactory
) -> None:
    node, _, _ = _node_with_trade_at_height_1(net, txf)
    halts = _halts(node)
    chain = Chain(net)
    chain.store = node.store
    raw = txf.signed(txf.transfer())
    block = chain.next_block([raw])
    waiting = asyncio.ensure_future(
        node.wait_for(precheck(net.genesis, raw).tx_id, HANG_S, prove_result=False)
    )
    await _turns(1)
    node._execute(block, _qc(net, block))
    receipt = await asyncio.wait_for(waiting, HANG_S)
    assert receipt.height == 2 and node.halted is None and halts == []


def _index_names_a_lost_block(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """Block 1 is gone from the store while the index still names it for its trade."""
    real = node.store.block
    monkeypatch.setattr(node.store, "block", lambda h: None if h == 1 else real(h))


async def test_a_wait_whose_receipt_names_a_missing_block_halts_the_node(
    net: DemoNetwork, txf: TxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data directory is corrupt (the index names block 1, the store lacks it): the
    node halts as on any storage error (exit 3); the wait, and a receipt read alike, fail
    with the error instead of failing alone while the node serves on."""
    node, tid, _ = _node_with_trade_at_height_1(net, txf)
    halts = _halts(node)
    _index_names_a_lost_block(node, monkeypatch)
    with pytest.raises(StorageError, match="names block 1, not in the store: the data"):
        await node.wait_for(tid, HANG_S, prove_result=False)
    assert node.halted is not None and node.halted.startswith("storage: StorageError")
    assert node.exit_code == EXIT_FATAL and halts == [1]
    with pytest.raises(StorageError):
        node.receipt(tid)  # GetTransaction's read: the same error


async def test_control_a_wait_whose_receipt_is_whole_is_answered(
    net: DemoNetwork, txf: TxFactory
) -> None:
    node, tid, _ = _node_with_trade_at_height_1(net, txf)
    halts = _halts(node)
    receipt = await asyncio.wait_for(node.wait_for(tid, HANG_S, prove_result=False), HANG_S)
    assert receipt.height == 1 and node.halted is None and halts == []


# --- the intake log and its replay ---------------------------------------------------------


async def test_the_intake_bound_holds_at_scale_and_over_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bound is a count compared with ``>=``: at a bound above the small ints Python
    caches (the real one is 20,000) one turn's batch alone reaches it, and a log already
    over it (written by a build with a higher bound, then restarted) takes no more."""
    monkeypatch.setattr(_node, "INTAKE_TXS_MAX", 300)
    h, store, txf = _started()  # node 0 alone: nothing commits
    raws = [txf.signed(txf.transfer(amount=k + 1)) for k in range(302)]
    got = await asyncio.gather(*(h.submit(r) for r in raws[:301]))  # one turn
    assert got == [AddResult.ACCEPTED] * 300 + [AddResult.FULL]
    assert store.intake_count() == 300 and store.intake_writes == 1
    monkeypatch.setattr(_node, "INTAKE_TXS_MAX", 250)
    assert await h.submit(raws[301]) is AddResult.FULL
    assert store.intake_count() == 300
    h.node.stop()


async def test_a_committed_transaction_submitted_again_writes_nothing() -> None:
    """Resubmitting committed bytes costs no intake write (one fsync on LMDB) and waits
    for none: nothing of it is logged."""
    h, store, txf = _started(solo_net())
    raw = txf.signed(txf.transfer())
    assert await h.submit(raw) is AddResult.ACCEPTED
    await _turns(20)
    assert store.head().height == 1 and store.intake_writes == 1
    assert await h.submit(raw) is AddResult.DUPLICATE
    assert store.intake_writes == 1 and h.node._intake_flush is None
    h.node.stop()


async def test_a_restart_that_drops_some_counts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    """The replay's line: 4 logged, 1 taken back, 3 dropped and pruned."""
    caplog.set_level(logging.INFO)
    h, store, txf = _started()
    for k in range(4):
        assert await h.submit(txf.signed(txf.transfer(amount=k + 1))) is AddResult.ACCEPTED
    h.node.stop()
    node = Node(
        h.net.genesis, 0, h.net.validator_keys[0], store, Metrics(), clock=lambda: h.now_ms,
        mempool_txs_max=1,
    )  # fmt: skip
    node.start()
    [line] = [r for r in caplog.records if r.getMessage() == "intake_replayed"]
    assert line.fields == {"txs": 1, "pruned": 3}  # type: ignore[attr-defined]
    node.stop()


# --- peers, waits ------------------------------------------------------------------------


async def test_a_peer_behind_us_is_not_probed(
    net: DemoNetwork, txf: TxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node at height 1 asks a peer at 0 for nothing (it has nothing we miss); a peer
    ahead is asked (the control)."""
    node, _, _ = _node_with_trade_at_height_1(net, txf)
    probes = _Probes()
    monkeypatch.setattr(node.engine, "peer_height", probes)
    node.peer_up(1, 0)
    assert probes.seen == []
    node.peer_up(1, 2)
    assert probes.seen == [(1, 2)]
    node.stop()


async def test_the_waiters_bound_holds_at_scale(
    monkeypatch: pytest.MonkeyPatch, net: DemoNetwork, txf: TxFactory
) -> None:
    """At a bound above the small ints Python caches (the real one is 10,000) the waits
    parked are counted against it too: the one past it is refused."""
    monkeypatch.setattr(_node, "WAITERS_MAX", 300)
    node, _, _ = _node_with_trade_at_height_1(net, txf)
    waits = [
        asyncio.ensure_future(node.wait_for(k.to_bytes(32, "big"), HANG_S, prove_result=False))
        for k in range(1, 301)
    ]
    await _turns(1)
    assert node._waiter_count == 300
    with pytest.raises(TooManyWaitersError):
        await node.wait_for(b"\xff" * 32, HANG_S, prove_result=False)
    node.stop()
    await asyncio.wait(waits, timeout=HANG_S)
    assert all(w.cancelled() for w in waits) and node._waiter_count == 0


async def test_a_proof_wait_ends_at_its_timeout_not_a_second_later(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """The wait for the next commit is given the time left (50 ms here), not a second."""
    node, tid, _ = _node_with_trade_at_height_1(net, txf)
    waiting = asyncio.ensure_future(node.wait_for(tid, 0.05, prove_result=True))
    await asyncio.wait({waiting}, timeout=0.7)
    assert waiting.done() and isinstance(waiting.exception(), TimeoutError)


def _pending_trade(net: DemoNetwork, txf: TxFactory) -> tuple[Chain, bytes]:
    chain = Chain(net)
    raw = txf.signed(txf.pending(quantity=_BIG, amount=5_000))  # the seller short
    chain.commit([raw])
    return chain, precheck(net.genesis, raw).tx_id


async def test_a_halted_node_still_answers_a_pending_trades_receipt(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """A pending DvP is final at its commit unless settlement is asked for: that receipt
    is complete, so a halted node answers it rather than ending the wait."""
    chain, tid = _pending_trade(net, txf)
    node = chain.node()
    node.fail("test", RuntimeError("injected"))
    receipt = await asyncio.wait_for(node.wait_for(tid, HANG_S, prove_result=False), HANG_S)
    assert receipt.waiting and receipt.height == 1


# --- receipts and proofs -----------------------------------------------------------------


def test_a_pending_trades_receipt_has_no_event_proof_while_it_waits(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """Its next block committed, a DvP still pending has no event to prove: no proof of
    its pending state passed off as one."""
    chain, tid = _pending_trade(net, txf)
    chain.commit([])
    receipt = chain.node().receipt(tid)
    assert receipt is not None and receipt.result_proof is not None
    assert receipt.event_proof is None and receipt.waiting


def test_an_event_at_an_odd_height_is_proven_by_the_next_block(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """The settlement's event in block 3 is certified by block 4's header (not block 3's
    own, nor block 2's): the receipt verifies offline."""
    chain, tid = _pending_trade(net, txf)
    chain.commit([])
    chain.commit([txf.signed(txf.transfer("BANK03", "BANK01", 100, instrument=net.bonds[0]))])
    chain.commit([])
    receipt = chain.node().receipt(tid)
    assert receipt is not None and receipt.event_proof is not None
    assert receipt.event_proof.height == 3 and receipt.event_proof.code is ResultCode.OK
    assert receipt.event_proof.header == chain.blocks[4].header
    verify_receipt(receipt, net.genesis)


def _commit_at(chain: Chain, txs: list[bytes], time_ms: int) -> None:
    """``Chain.commit`` with the block's time set (a date far from genesis)."""
    block = dataclasses.replace(chain.next_block(txs), time_ms=time_ms)
    ctx = BlockContext(block.height, block.time_ms)
    outcome = apply_block(chain.store, txs, ctx)
    chain.store.commit_block(
        block.hash, encode_block(block), encode_qc(chain.qc(block)), ctx, outcome
    )
    chain.last, chain.blocks[block.height], chain.outcomes[block.height] = outcome, block, outcome


def test_a_trade_that_ends_matured_is_final_in_its_receipt() -> None:
    """MATURED (a code below PENDING_SETTLEMENT's) is a final event like any other: the
    receipt proves it and no longer waits (wait_settled ends)."""
    net = life_net()
    bill = net.bonds[1]
    txf = TxFactory(net, now_ms=at("2026-02-28"))
    far = at("2026-03-02")
    raw = txf.signed(txf.pending(bond=bill, quantity=BOND_UNITS + 1, amount=5,
                                 deadline_ms=far, expiry_ms=far))  # fmt: skip
    chain = Chain(net)
    _commit_at(chain, [raw], at("2026-02-28"))
    _commit_at(chain, [], at("2026-03-01"))  # the bill matures: the trade ends
    _commit_at(chain, [], at("2026-03-01", 1))
    receipt = chain.node().receipt(precheck(net.genesis, raw).tx_id)
    assert receipt is not None and receipt.event_proof is not None
    assert receipt.event_proof.code is ResultCode.MATURED and not receipt.waiting
    verify_receipt(receipt, net.genesis)


def test_a_middle_blocks_results_are_proven_by_the_block_after_it(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """Block 2's results are certified by block 3 (a filtered read of block 2)."""
    chain = Chain(net)
    chain.commit([txf.signed(txf.transfer())])
    chain.commit([txf.signed(txf.transfer(amount=2))])
    chain.commit([])
    node, second = chain.node(), chain.store.block(2)
    assert second is not None
    proven = node.results_proof(second)
    assert proven is not None and proven[0].header == chain.blocks[3].header


# --- the execute port ----------------------------------------------------------------------


async def test_a_block_that_changes_a_participant_moves_the_paged_version(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """Reference data changed with no supply change (a participant added, then its
    roles): a continued page of GetReference must be refused from that block on (ADR
    0020, "pages")."""
    node, _, block = _node_with_trade_at_height_1(net, txf)
    node._execute(block, _qc(net, block))
    chain = Chain(net)
    chain.store = node.store
    raw = gov_signed(net, add_participant(txf, "BANK77"))
    block = chain.next_block([raw])
    node._execute(block, _qc(net, block))
    record = node.store.tx_record(tx_id(SignedTx.decode(raw).body))
    assert record is not None and record.code is ResultCode.OK
    assert node.paged_version == 3
    # A participant's roles changed: its record alone (no one-byte count record with it).
    raw = gov_signed(net, set_roles(txf, "BANK77", frozenset({Role.TRADER, Role.AUDITOR})))
    block = chain.next_block([raw])
    node._execute(block, _qc(net, block))
    record = node.store.tx_record(tx_id(SignedTx.decode(raw).body))
    assert record is not None and record.code is ResultCode.OK
    assert node.paged_version == 4


async def test_the_commit_latency_counts_from_the_accept() -> None:
    """An accept a quarter of a second before its commit is observed as that."""
    h, _, txf = _started(solo_net())
    raw = txf.signed(txf.transfer())
    tid = precheck(h.net.genesis, raw).tx_id
    assert await h.submit(raw) is AddResult.ACCEPTED
    h.node._pending[tid] -= 0.25  # accepted a quarter of a second earlier
    await _turns(20)
    assert h.store.head().height == 1
    assert 0.25 <= _sample(h, "ledger_commit_latency_seconds_sum") < 0.75
    h.node.stop()
