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
import dataclasses
import logging
from typing import Any

import grpc
import pytest

from node.access import Caller
from node.config import SYNC_PROBE_INTERVAL_MS
from node.core.mempool import AddResult
from node.core.refusal import Kind
from node.genesis import DemoNetwork
from node.runtime import Metrics, Node, _node
from node.runtime._access import Gate
from node.runtime._api import LedgerService
from node.runtime._node import EXIT_DIVERGED, NodeHaltedError, TooManyWaitersError
from node.settlement import precheck
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory, shared_net
from tests.patience import HANG_S
from tests.unit.test_api_teeth import _one_trade
from tests.unit.test_client_api_hostile import _Aborted, _Ctx
from tests.unit.test_failstop import CountingStore, Harness, solo_net
from tests.unit.test_finality_wait import _node_with_trade_at_height_1, _qc


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def _started(
    net: DemoNetwork | None = None, index: int = 0
) -> tuple[Harness, CountingStore, TxFactory]:
    """A started node ``index`` of ``net`` on a store that counts its intake writes, and a
    factory of the network's transactions. The default network has 4 validators and node
    0 runs alone: nothing commits."""
    net = shared_net() if net is None else net
    store = CountingStore(net.genesis)
    h = Harness(net, store, index)
    h.node.start()
    return h, store, TxFactory(net)


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
    h, store, txf = _started()  # 4 validators, node 0 alone: nothing commits
    _diverging_drain(h, monkeypatch)
    with pytest.raises(NodeHaltedError, match="differs from the certified"):
        await h.submit(txf.signed(txf.transfer()))
    assert store.intake() == [] and store.intake_writes == 0  # nothing durable
    assert h.halts == 1 and h.node.exit_code == EXIT_DIVERGED


async def test_control_an_accept_without_a_halt_is_durable_before_its_answer() -> None:
    h, store, txf = _started()
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


# --- what the mutation target "runtime.node" left alive ----------------------------------


async def test_the_intake_log_is_bounded_across_turns_and_within_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every queue has a maximum (house rule 3): the intake log, durable entries plus this
    turn's batch, holds at most INTAKE_TXS_MAX; a client past it is told FULL, not logged."""
    monkeypatch.setattr(_node, "INTAKE_TXS_MAX", 4)
    h, store, txf = _started()  # node 0 alone: nothing commits, the log only grows
    raws = [txf.signed(txf.transfer(amount=k + 1)) for k in range(6)]
    got = await asyncio.gather(*(h.submit(r) for r in raws[:3]))  # one turn: a batch of 3
    assert got == [AddResult.ACCEPTED] * 3 and store.intake_count() == 3
    # Three durable and one in this turn's batch reach the bound.
    got = await asyncio.gather(*(h.submit(r) for r in raws[3:5]))
    assert got == [AddResult.ACCEPTED, AddResult.FULL] and store.intake_count() == 4
    assert await h.submit(raws[5]) is AddResult.FULL  # the durable log alone
    assert store.intake_count() == 4
    h.node.stop()


async def test_a_restart_under_a_lower_limit_says_what_it_dropped_and_prunes_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Acknowledged transactions a restarted node cannot take back (its operator lowered
    the mempool's size) are each logged at ERROR and pruned from the log; the ones it took
    back stay logged (durable until they commit)."""
    caplog.set_level(logging.INFO)
    net = shared_net()
    h, store, txf = _started(net)
    got = await asyncio.gather(
        *(h.submit(txf.signed(txf.transfer(amount=k + 1))) for k in range(3))
    )
    assert got == [AddResult.ACCEPTED] * 3
    h.node.stop()
    node = Node(
        net.genesis, 0, net.validator_keys[0], store, Metrics(), clock=lambda: h.now_ms,
        mempool_txs_max=1,
    )  # fmt: skip
    node.start()
    dropped = [r for r in caplog.records if r.getMessage() == "intake_dropped"]
    assert len(dropped) == 2 and all(r.levelno == logging.ERROR for r in dropped)
    [replayed] = [r for r in caplog.records if r.getMessage() == "intake_replayed"]
    assert replayed.fields == {"txs": 1, "pruned": 2}  # type: ignore[attr-defined]
    assert len(node.replica.mempool) == 1 and store.intake_count() == 1
    node.stop()


async def test_a_restart_logs_how_many_it_replayed(caplog: pytest.LogCaptureFixture) -> None:
    """The operator's word on a restart: every logged transaction replayed, none pruned."""
    caplog.set_level(logging.INFO)
    net = shared_net()
    h, store, txf = _started(net)
    for k in range(3):
        assert await h.submit(txf.signed(txf.transfer(amount=k + 1))) is AddResult.ACCEPTED
    h.node.stop()
    again = Harness(net, store)
    again.node.start()
    [line] = [r for r in caplog.records if r.getMessage() == "intake_replayed"]
    assert line.fields == {"txs": 3, "pruned": 0}  # type: ignore[attr-defined]
    again.node.stop()


class _Probes:
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def __call__(self, peer: int, height: int, now_ms: int | None) -> None:
        self.seen.append((peer, height))


async def test_a_peer_coming_up_is_probed_only_when_ahead_and_at_most_once_an_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bound the work one peer causes (house rule 11): a link that flaps asks for blocks
    at most once per SYNC_PROBE_INTERVAL_MS, and a peer not ahead of us is asked nothing
    (nor does it use up the interval)."""
    h, _, _ = _started()
    probes = _Probes()
    monkeypatch.setattr(h.node.engine, "peer_height", probes)
    h.node.peer_up(1, 0)  # at our height: nothing to ask
    assert probes.seen == []
    h.node.peer_up(1, 5)
    h.node.peer_up(1, 6)  # the same interval: not again
    h.node.peer_up(2, 5)  # another peer has its own interval
    assert probes.seen == [(1, 5), (2, 5)]
    h.now_ms += SYNC_PROBE_INTERVAL_MS
    h.node.peer_up(1, 7)
    assert probes.seen[-1] == (1, 7)
    h.node.stop()


async def test_finality_waits_are_bounded_and_each_ending_frees_its_place(
    monkeypatch: pytest.MonkeyPatch, net: DemoNetwork, txf: TxFactory
) -> None:
    """A client cannot park more than WAITERS_MAX waits (memory, house rule 3); a wait that
    times out or is cancelled gives its place back and is forgotten."""
    monkeypatch.setattr(_node, "WAITERS_MAX", 2)
    node, _, _ = _node_with_trade_at_height_1(net, txf)
    a = asyncio.ensure_future(node.wait_for(b"\x01" * 32, HANG_S, prove_result=False))
    b = asyncio.ensure_future(node.wait_for(b"\x02" * 32, 0.01, prove_result=False))
    await _turns(1)
    with pytest.raises(TooManyWaitersError):
        await node.wait_for(b"\x03" * 32, HANG_S, prove_result=False)
    with pytest.raises(TimeoutError):
        await b
    a.cancel()
    await _turns()
    assert a.cancelled() and node._waiter_count == 0 and not node._waiters
    c = asyncio.ensure_future(node.wait_for(b"\x03" * 32, HANG_S, prove_result=False))
    await _turns(1)
    assert not c.done() and node._waiter_count == 1
    node.stop()
    await _turns()


async def test_a_commit_ends_every_wait_for_it_and_skips_one_cancelled() -> None:
    """The finality wait's point: a commit settles the waits parked for that id; a wait
    cancelled meanwhile (its client went away) is skipped, not set, and the commit goes
    on (a set_result on it would raise inside the commit: fail-stop for nothing)."""
    net = solo_net()
    h, _, txf = _started(net)
    raw = txf.signed(txf.transfer())
    tid = precheck(net.genesis, raw).tx_id
    first = asyncio.ensure_future(h.node.wait_for(tid, HANG_S, prove_result=False))
    gone = asyncio.ensure_future(h.node.wait_for(tid, HANG_S, prove_result=False))
    await _turns(1)
    inner = h.node._waiters[tid][1]
    inner.cancel()  # what stop does to one, or a race with its caller's cancel
    assert await h.submit(raw) is AddResult.ACCEPTED
    receipt = await asyncio.wait_for(first, HANG_S)
    assert receipt.height == 1 and h.node.halted is None
    with pytest.raises(asyncio.CancelledError):
        await gone
    h.node.stop()


def _sample(h: Harness, name: str, **labels: str) -> float:
    value = h.node.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


async def test_a_commit_counts_its_transactions_and_their_latency() -> None:
    """Operators' figures (docs/operations.md): each transaction by result code, and the
    commit latency of one accepted here; a pending instruction's later event is no
    transaction."""
    net = solo_net()
    h, _, txf = _started(net)
    raw = txf.signed(txf.transfer())
    assert await h.submit(raw) is AddResult.ACCEPTED
    assert h.node.is_pending(precheck(net.genesis, raw).tx_id)
    for _ in range(20):
        await asyncio.sleep(0)
    assert h.store.head().height == 1
    assert _sample(h, "ledger_transactions_total", code="OK") == 1.0
    assert _sample(h, "ledger_commit_latency_seconds_count") == 1.0
    assert _sample(h, "ledger_blocks_total") == 1.0 and _sample(h, "ledger_height") == 1.0
    assert not h.node.is_pending(precheck(net.genesis, raw).tx_id)  # settled
    h.node.stop()


async def test_view_changes_and_relayed_votes_are_counted_by_their_increase() -> None:
    """The metrics follow the replica's counters by their increase, however many at once."""
    h, _, _ = _started(index=2)
    r = h.node.replica
    for timed_out, relayed in ((3, 3), (5, 6)):
        r.views_timed_out, r.commit_votes_relayed = timed_out, relayed
        h.node._after_drain()
    assert _sample(h, "ledger_view_changes_total") == 5.0
    assert _sample(h, "ledger_commit_votes_relayed_total") == 6.0
    h.node.stop()


async def test_a_proof_wait_ends_at_its_timeout(net: DemoNetwork, txf: TxFactory) -> None:
    """A wait for a result proof on an idle chain (no next block) is bounded by its
    caller's timeout, as a wait for the commit is: its place is then given back."""
    node, tid, _ = _node_with_trade_at_height_1(net, txf)
    waiting = asyncio.ensure_future(node.wait_for(tid, 0.05, prove_result=True))
    await asyncio.wait({waiting}, timeout=HANG_S)  # the guard: not a TimeoutError itself
    assert waiting.done() and isinstance(waiting.exception(), TimeoutError)
    assert node._waiter_count == 0 and not node._head_waits


async def test_a_proof_wait_past_its_deadline_ends_without_waiting_longer(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """The caller's timeout is the whole wait's: one with no time left ends within a few
    loop turns, whatever the clock (no wait for the next commit is started)."""
    node, tid, _ = _node_with_trade_at_height_1(net, txf)
    waiting = asyncio.ensure_future(node.wait_for(tid, 0.0, prove_result=True))
    await _turns(10)
    assert waiting.done() and isinstance(waiting.exception(), TimeoutError)


async def test_the_party_indexes_execution_built_are_kept_for_the_last_blocks_only(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """A receipt or filtered read of a recent block reuses the party index its execution
    built (ADR 0025), and the node keeps at most the last _TREES_CACHED_MAX of them."""
    node, _, block = _node_with_trade_at_height_1(net, txf)
    chain = Chain(net)
    chain.store = node.store  # the chain the node commits to
    for _ in range(_node._TREES_CACHED_MAX + 2):
        node._execute(block, _qc(net, block))
        assert block.height in node._parties_kept
        block = chain.next_block([])
    assert len(node._parties_kept) == _node._TREES_CACHED_MAX
    assert min(node._parties_kept) == node.store.head().height - _node._TREES_CACHED_MAX + 1


def test_a_blocks_results_are_proven_by_the_next_block_only(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """What a party-filtered read proves its positions with: block h's results tree's
    last leaf against the results root block h + 1 certifies, so the head has none yet
    (a proof from the block itself would certify nothing)."""
    chain = Chain(net)
    chain.commit([txf.signed(txf.transfer(amount=k + 1)) for k in range(3)])  # 5 leaves
    chain.commit([])
    node = chain.node()
    first, head = chain.store.block(1), chain.store.block(2)
    assert first is not None and head is not None
    assert node.results_proof(head) is None
    proven = node.results_proof(first)
    assert proven is not None
    proof, leaf = proven
    assert proof.header == node.block_parts(head)[0]
    assert proof.certificate == head.certificate
    assert proof.path == node.result_paths(first, [proof.leaf_count - 1])[0]
    assert leaf == node._trees(1, first).parties_leaf


# --- the API's answer to a wait the node ended ---------------------------------------------


async def _ended(call: asyncio.Future[Any]) -> BaseException | None:
    await asyncio.wait({call}, timeout=HANG_S)
    assert call.done(), "the call still waits"
    return None if call.cancelled() else call.exception()


@pytest.mark.parametrize("prove_result", [False, True])
async def test_a_finality_wait_the_node_ends_is_answered_node_stopped(prove_result: bool) -> None:
    """A CancelledError out of a gRPC handler sends no status (grpc.aio logs it and ends
    the call without one): a WaitForFinality whose wait a halt (or a shutdown) ended left
    its client waiting until its own deadline. It is answered UNAVAILABLE NODE_STOPPED, as
    the submit stream answers, so the SDK asks another node at once."""
    node, trade = _one_trade()
    svc = LedgerService(node, {})
    Gate.enter(Caller("BANK01", observer=False))  # a party to the trade
    tid = trade if prove_result else b"\x09" * 32  # the next block's proof / the commit
    req = pb.WaitRequest(tx_id=tid, prove_result=prove_result, timeout_ms=60_000)
    call = asyncio.ensure_future(svc.WaitForFinality(req, _Ctx()))  # type: ignore[arg-type]
    await _turns()
    assert not call.done()
    node.fail("test", RuntimeError("injected"))
    ended = await _ended(call)
    assert isinstance(ended, _Aborted) and ended.code is grpc.StatusCode.UNAVAILABLE
    assert ended.message.startswith("node stopped: test: RuntimeError: injected")


async def test_control_a_wait_whose_call_is_cancelled_stays_cancelled() -> None:
    """The call's own cancellation (its client went away, the server stopping) is not the
    node's: it propagates, nothing is answered."""
    node, _ = _one_trade()
    svc = LedgerService(node, {})
    Gate.enter(Caller("BANK01", observer=False))
    req = pb.WaitRequest(tx_id=b"\x09" * 32, timeout_ms=60_000)
    call = asyncio.ensure_future(svc.WaitForFinality(req, _Ctx()))  # type: ignore[arg-type]
    await _turns()
    call.cancel()
    assert await _ended(call) is None and node._waiter_count == 0


# --- receipts ------------------------------------------------------------------------------


def _three_and_next(net: DemoNetwork, txf: TxFactory) -> tuple[Chain, list[bytes], Node]:
    chain = Chain(net)
    raws = [txf.signed(txf.transfer(amount=k + 1)) for k in range(3)]
    chain.commit(raws)
    chain.commit([])
    return chain, raws, chain.node()


def test_a_blocks_receipt_at_a_position_is_that_transactions_receipt(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """What a party-filtered block carries for each position is the receipt of the very
    transaction there (its id, code, bytes and path), without the result proof: never
    another transaction's."""
    chain, raws, node = _three_and_next(net, txf)
    sb = chain.store.block(1)
    assert sb is not None
    for position, raw in enumerate(raws):
        full = node.receipt(precheck(net.genesis, raw).tx_id)
        assert full is not None and full.position == position and full.transaction == raw
        assert full.result_proof is not None
        assert node.block_receipt(sb, position) == dataclasses.replace(full, result_proof=None)


def test_a_party_proof_needs_transactions_and_the_next_block(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """A filtered read's completeness proof: none for a block with nothing to hide (no
    transactions) nor for the head (nothing certifies its results yet); else the party's
    proof with the path the results proof carries."""
    chain, _, node = _three_and_next(net, txf)
    first, second = chain.store.block(1), chain.store.block(2)
    assert first is not None and second is not None
    assert node.parties_proof(second, "BANK01") is None  # no transactions
    got = node.parties_proof(first, "BANK01")
    proven = node.results_proof(first)
    assert got is not None and proven is not None
    party, proof = got
    assert proof == proven[0]
    assert party == node.block_parties(first).proof("BANK01").encode()
    chain.commit([txf.signed(txf.transfer())])  # block 3: the head, nothing after it
    third = chain.store.block(3)
    assert third is not None and node.parties_proof(third, "BANK01") is None


# --- the execute and speculate ports, fail-stop --------------------------------------------


async def test_a_speculated_outcome_is_what_the_commit_writes(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """Pipelining (ADR 0012): a certified block executed ahead gives the roots its commit
    reports, and the commit writes that outcome instead of executing again (counted)."""
    node, _, block = _node_with_trade_at_height_1(net, txf)
    raw = txf.signed(txf.transfer())
    block = dataclasses.replace(block, txs=(raw,))
    speculated = node._speculate(block)
    assert node.store.head().height == 1  # nothing committed
    assert node._execute(block, _qc(net, block)) == speculated
    m = node.metrics.registry
    assert m.get_sample_value("ledger_blocks_speculated_total") == 1.0
    assert m.get_sample_value("ledger_blocks_speculation_used_total") == 1.0
    assert node.store.head().state_root == speculated[0]
    assert node.receipt(precheck(net.genesis, raw).tx_id) is not None


async def test_the_first_failure_is_the_one_reported_and_a_halted_node_takes_no_input(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fail-stop (house rule 10): one fatal line, the first cause kept, exit code 3; then
    every driver entry does nothing (a peer's frame is not refused for it either)."""
    h, _, _ = _started()
    h.node.fail("first", RuntimeError("one"))
    h.node.fail("second", RuntimeError("two"))
    assert h.node.halted == "first: RuntimeError: one" and h.node.exit_code == _node.EXIT_FATAL
    assert h.halts == 1 and len([r for r in caplog.records if r.getMessage() == "fatal"]) == 1
    assert h.node._guard("test", lambda: 1) is None
    assert h.node.admit(1, 100, None) == 0


# --- more of what "runtime.node" left alive ------------------------------------------------


async def test_a_peer_over_its_byte_budget_is_held_back_and_counted_at_once() -> None:
    """A peer's bytes beyond its budget (house rule 11): the transport is told how long to
    leave its stream unread, and the refusal shows in the metric right away."""
    h, _, _ = _started()
    assert h.node.admit(1, 10**9, Kind.VOTE) == 0  # charged: the budget is spent
    wait_ms = h.node.admit(1, 100, Kind.VOTE)
    assert wait_ms > 0
    labels = {"kind": "vote", "reason": "over_byte_budget"}
    assert _sample(h, "ledger_consensus_refused_total", **labels) == 1.0
    h.node.stop()


async def test_a_committed_transaction_submitted_again_is_a_duplicate_at_once() -> None:
    """Resubmitting the same bytes is safe (the SDK does after a lost answer): one already
    committed is DUPLICATE, with no intake write to wait for."""
    net = solo_net()
    h, _, txf = _started(net)
    raw = txf.signed(txf.transfer())
    assert await h.submit(raw) is AddResult.ACCEPTED
    await _turns(20)
    assert h.store.head().height == 1
    assert h.node._intake_flush is None
    assert await h.submit(raw) is AddResult.DUPLICATE
    h.node.stop()


async def test_the_ids_pending_here_are_bounded_oldest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The map of ids accepted here and not committed (GetTransaction's PENDING, the commit
    latency) holds at most PENDING_IDS_MAX: the oldest is forgotten first. The mempool
    gauge follows what waits."""
    monkeypatch.setattr(_node, "PENDING_IDS_MAX", 2)
    net = shared_net()  # nothing commits
    h, _, txf = _started(net)
    raws = [txf.signed(txf.transfer(amount=k + 1)) for k in range(3)]
    for raw in raws:
        assert await h.submit(raw) is AddResult.ACCEPTED
    pending = [h.node.is_pending(precheck(net.genesis, r).tx_id) for r in raws]
    assert pending == [False, True, True]
    assert _sample(h, "ledger_mempool_txs") == 3.0
    h.node.stop()


async def test_a_proof_wait_with_time_left_gets_the_next_commit(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """Its deadline is the caller's timeout from now (under a second here), not a
    function of the loop's clock: the next commit, a turn later, ends it."""
    node, tid, second = _node_with_trade_at_height_1(net, txf)
    waiting = asyncio.ensure_future(node.wait_for(tid, 0.9, prove_result=True))
    await _turns(1)
    node._execute(second, _qc(net, second))
    receipt = await asyncio.wait_for(waiting, HANG_S)
    assert receipt.result_proof is not None


async def test_a_pending_trade_is_final_at_its_commit_unless_settlement_is_asked_for(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """A pending DvP (ADR 0014) is committed, and final, with PENDING_SETTLEMENT: only a
    wait that asks for its settlement waits for that."""
    chain = Chain(net)
    raw = txf.signed(txf.pending(quantity=10_000_100, amount=5_000))  # the seller short
    chain.commit([raw])
    node, tid = chain.node(), precheck(net.genesis, raw).tx_id
    receipt = await asyncio.wait_for(node.wait_for(tid, HANG_S, prove_result=False), HANG_S)
    assert receipt.waiting
    proven = asyncio.ensure_future(node.wait_for(tid, HANG_S, prove_result=True))
    settled = asyncio.ensure_future(node.wait_for(tid, HANG_S, prove_result=False, settled=True))
    await _turns()
    assert not proven.done() and not settled.done()
    second = chain.next_block([])  # certifies block 1's results; the trade still waits
    node._execute(second, _qc(net, second))
    await asyncio.wait({proven}, timeout=HANG_S)
    assert proven.done() and proven.result().result_proof is not None
    assert proven.result().waiting and not settled.done()
    node.stop()
    await _turns()


async def test_only_a_block_that_changes_paged_answers_moves_their_version(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """A continued page is served while its answer is unchanged (ADR 0020, "pages"): a
    block of transfers or an empty one changes no reference data, attestation or supply."""
    node, _, block = _node_with_trade_at_height_1(net, txf)
    before = node.paged_version
    node._execute(block, _qc(net, block))
    chain = Chain(net)
    chain.store = node.store
    block = chain.next_block([txf.signed(txf.transfer())])
    node._execute(block, _qc(net, block))
    assert node.paged_version == before


async def test_the_commit_latency_is_the_time_since_the_accept() -> None:
    net = solo_net()
    h, _, txf = _started(net)
    assert await h.submit(txf.signed(txf.transfer())) is AddResult.ACCEPTED
    await _turns(20)
    assert 0.0 <= _sample(h, "ledger_commit_latency_seconds_sum") < HANG_S
    h.node.stop()


async def test_at_debug_each_commit_is_one_line_with_its_root_prefix(
    caplog: pytest.LogCaptureFixture, net: DemoNetwork, txf: TxFactory
) -> None:
    """An operator who turns on DEBUG sees each commit: height, view, size and the state
    root's first 16 hex digits (docs/cluster.md, logs)."""
    caplog.set_level(logging.DEBUG)
    node, _, block = _node_with_trade_at_height_1(net, txf)
    node._execute(block, _qc(net, block))
    [line] = [r for r in caplog.records if r.getMessage() == "commit"]
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["height"] == 2 and fields["txs"] == 0
    assert fields["root"] == node.store.head().state_root.hex()[:16]
