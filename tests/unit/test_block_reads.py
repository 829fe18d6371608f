"""The block-read budget (node/runtime/_reads.py): what one participant's GetBlock and
StreamBlocks calls may cost the node's event loop.

Scenario (session 14's review, left open): an authenticated participant that is no
observer calls GetBlock on old, distinct, full blocks in a loop. Each misses the cache of
blocks' readers and decodes every body of the block (37 ms for 1,499 DvPs), so the loop
consensus shares is held most of the time. Guarded: each read is charged the CPU time it
took to the caller's participant, and over budget a GetBlock is refused RESOURCE_EXHAUSTED
with a retry-after hint (a stream waits instead). The servicer runs in-process on a real
``Node`` with a stand-in context; the budget's clocks are the test's, so nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
import grpc.aio
import pytest

from client import AsyncLedgerClient, Endpoint, OverloadedError, ParticipantKey
from client._limits import OVERLOAD_RETRIES_MAX
from node import crypto
from node.access import Caller
from node.config import BLOCK_READ_BUCKETS_MAX, BLOCK_READ_CPU_US_BURST
from node.genesis import DemoNetwork, demo_genesis
from node.invariant import InvariantError
from node.merkle import EMPTY_ROOT, MerkleTree
from node.receipt import InvalidReceiptError, verify_receipt
from node.runtime import Metrics, Node
from node.runtime import _node as node_module
from node.runtime._access import Gate
from node.runtime._api import LedgerService, filtered_block_pb
from node.runtime._reads import ReadBudget
from node.settlement import PartyIndex, PartyRoot, precheck, results_leaves
from node.store import MemoryStore, StorageError, StoredBlock
from node.wire import RETRY_AFTER_METADATA
from node.wire import ledger_pb2 as pb
from node.wire.errors import Details, from_trailer, trailer
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory, pinned_tls

READ_US = 40_000  # what each read costs on the scripted CPU meter


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, trailing: Any) -> None:
        super().__init__(code, message)
        self.code, self.message = code, message
        self.details = from_trailer(code, message, trailing)
        self.hint = dict(trailing or ()).get(RETRY_AFTER_METADATA)


class _Ctx:
    def peer(self) -> str:
        return "ipv4:127.0.0.1:5000"

    def time_remaining(self) -> float | None:
        return None

    async def abort(self, code: grpc.StatusCode, message: str, trailing: Any = None) -> None:
        raise _Refused(code, message, trailing)


class _Clock:
    """The budget's wall clock (ms) and CPU meter (ns): the test moves them."""

    def __init__(self, read_us: int = READ_US) -> None:
        self.now_ms, self._cpu_ns, self._read_us = 1_000_000, 0, read_us

    def ms(self) -> int:
        return self.now_ms

    def cpu_ns(self) -> int:
        # each read samples the meter at its start and its end: it costs read_us
        self._cpu_ns += self._read_us * 1_000
        return self._cpu_ns

    async def sleep(self, seconds: float) -> None:
        self.now_ms += round(seconds * 1000)


@pytest.fixture(scope="module")
def solo() -> DemoNetwork:
    return demo_genesis(validators=1, quorum=1, seed=b"block-reads")


async def _node(net: DemoNetwork, blocks: int, txs: int) -> Node:
    """A real one-validator node that committed ``blocks`` blocks of ``txs`` DvPs each."""
    node = Node(net.genesis, 0, net.validator_keys[0], MemoryStore(net.genesis), Metrics())
    node.start()
    txf = TxFactory(net)
    for _ in range(blocks):
        raws = [txf.signed(txf.dvp()) for _ in range(txs)]
        height = node.store.head().height
        await asyncio.gather(*(node.submit(r, precheck(net.genesis, r).tx_id) for r in raws))
        async with asyncio.timeout(60):
            while node.store.head().height == height or node.replica.mempool:
                await asyncio.sleep(0.01)
    return node


@pytest.fixture
async def node(solo: DemoNetwork) -> AsyncIterator[Node]:
    n = await _node(solo, blocks=6, txs=20)
    try:
        yield n
    finally:
        n.stop()
        n.close()


def _service(node: Node, clock: _Clock, **budget: Any) -> LedgerService:
    reads = ReadBudget(clock.ms, cpu_ns=clock.cpu_ns, **budget)
    return LedgerService(node, {}, reads=reads, sleep=clock.sleep)


async def _get(svc: LedgerService, who: str, height: int, *, observer: bool = False) -> str:
    """OK, or the refusal's code: what ``who`` is answered for GetBlock(height)."""
    Gate.enter(Caller(who, observer=observer))
    try:
        await svc.GetBlock(pb.BlockRequest(height=height), _Ctx())  # type: ignore[arg-type]
        return "OK"
    except _Refused as e:
        return e.code.name


async def test_cold_reads_beyond_the_budget_are_refused_with_a_retry_after_hint(
    node: Node,
) -> None:
    """BANK05 reads block after block, each costing 40 ms on the meter. The burst (100 ms)
    takes three (the third into debt: a read starts while the balance is positive); the
    fourth is refused RESOURCE_EXHAUSTED, LIMIT_REACHED naming the limit, with the hint
    in RetryInfo and ``retry-after-ms``: 20 ms of debt repaid at 50 ms/s is 401 ms."""
    clock = _Clock()
    svc = _service(node, clock)
    answers = [await _get(svc, "BANK05", h) for h in (1, 2, 3)]
    assert answers == ["OK"] * 3
    Gate.enter(Caller("BANK05", observer=False))
    with pytest.raises(_Refused) as refused:
        await svc.GetBlock(pb.BlockRequest(height=4), _Ctx())  # type: ignore[arg-type]
    e = refused.value
    assert e.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.details == Details(
        "LIMIT_REACHED", {"limit": "reads per participant"}, retry_after_ms=401
    )
    assert e.hint == "401" and "BANK05" in e.message and "retry in 401 ms" in e.message
    assert node.metrics.block_reads_over_budget.labels(call="GetBlock")._value.get() == 1


async def test_the_budget_refills_over_time(node: Node) -> None:
    """After the hint has passed, the next read is served; before it, not."""
    clock = _Clock()
    svc = _service(node, clock)
    for h in (1, 2, 3):
        assert await _get(svc, "BANK05", h) == "OK"
    clock.now_ms += 400
    assert await _get(svc, "BANK05", 4) == "RESOURCE_EXHAUSTED"
    clock.now_ms += 1
    assert await _get(svc, "BANK05", 4) == "OK"  # 50 us of balance: one read, into debt
    assert await _get(svc, "BANK05", 5) == "RESOURCE_EXHAUSTED"
    clock.now_ms += 10_000  # a quiet while refills the burst, no more: three reads again
    assert [await _get(svc, "BANK05", h) for h in (1, 2, 3, 4)] == ["OK"] * 3 + [
        "RESOURCE_EXHAUSTED"
    ]


async def test_another_participant_is_unaffected(node: Node) -> None:
    """BANK05's budget spent leaves BANK02's (and an observer's) whole: the bucket is the
    caller's participant, whatever connection it calls on."""
    clock = _Clock()
    svc = _service(node, clock)
    while await _get(svc, "BANK05", 1) == "OK":
        pass
    assert [await _get(svc, "BANK02", h) for h in (1, 2, 3)] == ["OK"] * 3
    assert await _get(svc, "REGULATOR", 4, observer=True) == "OK"
    assert await _get(svc, "BANK05", 1) == "RESOURCE_EXHAUSTED"


async def test_a_refused_or_missing_block_read_costs_what_it_did(node: Node) -> None:
    """A refusal is decided before the store is read and charges nothing, so a refused
    caller does not dig itself deeper; a height above the head is NOT_FOUND, charged."""
    clock = _Clock()
    svc = _service(node, clock)
    assert await _get(svc, "BANK05", 999) == "NOT_FOUND"
    assert [await _get(svc, "BANK05", h) for h in (1, 2)] == ["OK", "OK"]
    assert await _get(svc, "BANK05", 3) == "RESOURCE_EXHAUSTED"  # the NOT_FOUND counted
    for _ in range(5):
        assert await _get(svc, "BANK05", 3) == "RESOURCE_EXHAUSTED"
    clock.now_ms += 401
    assert await _get(svc, "BANK05", 3) == "OK"  # the refusals added no debt


async def test_honest_reads_of_recent_blocks_never_meet_the_default_budget(
    solo: DemoNetwork,
) -> None:
    """With the real CPU meter and the default budget, a participant reads each of its
    recent blocks (cold), then reads them again and again (their readers cached) with no
    time passing at all: none is refused, and what the cached reads cost is a small part
    of what the cold ones did."""
    node = await _node(solo, blocks=3, txs=150)
    clock = _Clock(read_us=0)
    reads = ReadBudget(clock.ms)  # real thread CPU time
    svc = LedgerService(node, {}, reads=reads)
    try:
        heights = range(1, node.store.head().height + 1)
        for h in heights:
            assert await _get(svc, "BANK05", h) == "OK"
        cold_us = BLOCK_READ_CPU_US_BURST - reads._buckets["BANK05"]._tokens
        for _ in range(30):
            for h in heights:
                assert await _get(svc, "BANK05", h) == "OK"
        warm_us = BLOCK_READ_CPU_US_BURST - reads._buckets["BANK05"]._tokens - cold_us
        reads_warm = 30 * len(heights)
        assert warm_us / reads_warm < cold_us / len(heights) / 5, (cold_us, warm_us)
    finally:
        node.stop()
        node.close()


async def test_a_cold_read_is_charged_the_decoding_it_causes(solo: DemoNetwork) -> None:
    """The unit is the CPU time of the read: a party-filtered read of a block whose party
    index is not kept (an older block: every body decoded to work it out, ADR 0025) is
    charged many times a kept one."""
    node = await _node(solo, blocks=1, txs=300)
    clock = _Clock(read_us=0)
    reads = ReadBudget(clock.ms, burst=10**9)
    big = max(
        (node.store.block(h) for h in range(1, node.store.head().height + 1)),
        key=lambda b: len(b.results),
    )
    assert big is not None
    caller = Caller("BANK05", observer=False)
    try:
        node._trees_cache.clear()  # as if read long after its commit
        node._parties_kept.clear()
        with reads.charged("cold"):
            filtered_block_pb(node, big, caller)
        with reads.charged("warm"):
            filtered_block_pb(node, big, caller)
        cold = 10**9 - reads._buckets["cold"]._tokens
        warm = 10**9 - reads._buckets["warm"]._tokens
        assert cold > 5 * warm, (cold, warm)
    finally:
        node.stop()
        node.close()


async def test_a_block_stream_over_budget_waits_rather_than_fails(node: Node) -> None:
    """StreamBlocks from height 1 is the same work as GetBlock on each height: it is
    charged to the same bucket and, over budget, waits out the hint before each read,
    so the stream costs the node at most the budget's rate and the client sees no error."""
    clock = _Clock()
    svc = _service(node, clock)
    Gate.enter(Caller("BANK05", observer=False))
    stream = svc.StreamBlocks(pb.StreamBlocksRequest(from_height=1), _Ctx())  # type: ignore[arg-type]
    head = node.store.head().height
    started = clock.now_ms
    try:
        heights = [(await anext(stream)).height for _ in range(head)]
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert heights == list(range(1, head + 1))
    # 6 reads of 40 ms, 100 ms at once and 50 ms a second: the last read starts once the
    # 200 ms the first five cost less the 100 ms burst is repaid: 2 s of waiting at least
    assert clock.now_ms - started >= 2_000
    waits = node.metrics.block_reads_over_budget.labels(call="StreamBlocks")._value.get()
    assert waits >= head - 3
    # and the stream's reads spent the participant's budget, as GetBlock's would
    assert await _get(svc, "BANK05", 1) == "RESOURCE_EXHAUSTED"


async def _receipt_calls(svc: LedgerService, tids: list[bytes]) -> list[str]:
    """OK, or the refusal's code, for GetTransaction and WaitForFinality in turn."""
    answers = []
    for k, tid in enumerate(tids):
        call = (
            svc.GetTransaction(pb.TransactionRequest(tx_id=tid), _Ctx())  # type: ignore[arg-type]
            if k % 2 == 0
            else svc.WaitForFinality(pb.WaitRequest(tx_id=tid, timeout_ms=1_000), _Ctx())  # type: ignore[arg-type]
        )
        try:
            await call
            answers.append("OK")
        except _Refused as e:
            answers.append(e.code.name)
            assert e.hint is not None and "receipt" in e.message
    return answers


def _first_txs(node: Node, blocks: int) -> list[bytes]:
    """The first transaction of each of the first ``blocks`` blocks that hold one."""
    found = []
    for h in range(1, node.store.head().height + 1):
        sb = node.store.block(h)
        if sb is not None and sb.results:
            found.append(sb.results[0].tx_id)
    assert len(found) >= blocks
    return found[:blocks]


async def test_receipts_that_rebuild_an_old_blocks_trees_are_charged_and_refused(
    node: Node,
) -> None:
    """A receipt from a block whose Merkle trees are not kept (the last eight blocks' are)
    rebuilds them, 5-7 ms for a full block: GetTransaction and WaitForFinality on such
    ids are charged to the caller's block-read budget and refused over it, with the hint,
    and they spend the same bucket as GetBlock."""
    clock = _Clock()
    svc = _service(node, clock)
    node._trees_cache.clear()  # every block cold: as for blocks long committed
    Gate.enter(Caller("REGULATOR", observer=True))
    tids = _first_txs(node, 4)
    assert await _receipt_calls(svc, tids) == ["OK", "OK", "OK", "RESOURCE_EXHAUSTED"]
    assert await _get(svc, "REGULATOR", 1, observer=True) == "RESOURCE_EXHAUSTED"
    over = node.metrics.block_reads_over_budget
    assert over.labels(call="WaitForFinality")._value.get() == 1


async def test_receipts_from_kept_blocks_are_never_refused(node: Node) -> None:
    """A receipt from a block whose trees are kept costs microseconds: a client waiting
    for a backlog of settled trades one by one is neither charged nor refused, even with
    its budget spent on cold reads (the first version of this guard refused such a
    backlog: tests/cluster/test_admission_control.py)."""
    clock = _Clock()
    reads = ReadBudget(clock.ms, cpu_ns=clock.cpu_ns)
    svc = LedgerService(node, {}, reads=reads, sleep=clock.sleep)
    node._trees_cache.clear()
    Gate.enter(Caller("REGULATOR", observer=True))
    *kept, cold = _first_txs(node, 4)
    assert await _receipt_calls(svc, kept) == ["OK"] * 3  # cold: the budget spent
    balance = reads._buckets["REGULATOR"]._tokens
    assert await _receipt_calls(svc, kept * 20) == ["OK"] * 60  # kept now: free
    assert reads._buckets["REGULATOR"]._tokens == balance
    assert await _receipt_calls(svc, [cold]) == ["RESOURCE_EXHAUSTED"]


def test_the_bucket_table_forgets_refilled_buckets_when_full() -> None:
    """One bucket per participant that read: at most the registry's participants. When the
    table is full, buckets refilled to their burst (the same as none) are dropped; more
    readers than that is a broken invariant (only verified participants read)."""
    clock = _Clock()
    reads = ReadBudget(clock.ms, cpu_ns=clock.cpu_ns, buckets_max=2)
    for who in ("A", "B"):
        with reads.charged(who):
            pass
    clock.now_ms += 10_000  # both refilled
    with reads.charged("C"):
        pass
    assert len(reads) == 1 and reads.wait_ms("C") == 0
    with reads.charged("D"):
        pass
    with pytest.raises(InvariantError), reads.charged("E"):
        pass


def test_the_bucket_table_at_its_default_size_forgets_and_refuses_as_a_small_one() -> None:
    """The default table holds BLOCK_READ_BUCKETS_MAX (PARTICIPANTS_MAX) buckets, more than
    the small integers CPython shares: the table is full, and its count is compared, by
    value. A participant added once the table is full (one removed left its bucket) is a
    reader too: once the others refilled it gets a bucket; before, none is free, a broken
    invariant (review 32: cosmic-ray's ``is`` for ``>=`` and ``is not`` for ``<``)."""
    clock = _Clock(read_us=1)
    reads = ReadBudget(clock.ms, cpu_ns=clock.cpu_ns)
    for k in range(BLOCK_READ_BUCKETS_MAX):
        with reads.charged(f"P{k}"):
            pass
    assert len(reads) == BLOCK_READ_BUCKETS_MAX
    no_room = pytest.raises(InvariantError, match="more readers than participants")
    with no_room, reads.charged("NEWCOMER"):  # nobody refilled yet
        pass
    clock.now_ms += 1_000  # every bucket refilled its one microsecond
    with reads.charged("NEWCOMER"):
        pass
    assert len(reads) == 1 and reads.wait_ms("NEWCOMER") == 0


def test_the_budget_takes_its_clocks_and_bounds_by_keyword_only() -> None:
    """Two clocks and three integers of the same kind: by position one could pass the CPU
    meter as the wall clock or the burst as the rate, so after the clock every parameter
    is named; a read's ``when`` too (review 32: cosmic-ray's ``/`` for ``*``)."""
    clock = _Clock()
    with pytest.raises(TypeError):
        ReadBudget(clock.ms, clock.cpu_ns)  # type: ignore[call-arg]
    reads = ReadBudget(clock_ms=clock.ms, cpu_ns=clock.cpu_ns)  # control: named, it works
    with pytest.raises(TypeError), reads.charged("BANK01", lambda: False):  # type: ignore[call-arg]
        pass
    with reads.charged(participant="BANK01", when=lambda: False):  # control: named
        pass
    assert len(reads) == 0


# --- the SDK -------------------------------------------------------------------------------


def _over_budget(hint_ms: int) -> grpc.aio.AioRpcError:
    code, message = grpc.StatusCode.RESOURCE_EXHAUSTED, "BANK01 has used its budget"
    details = Details("LIMIT_REACHED", {"limit": "reads per participant"}, hint_ms)
    md = grpc.aio.Metadata(*trailer(code, message, details))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), md, message)


async def test_the_sdk_waits_out_the_hint_then_reports_overloaded(solo: DemoNetwork) -> None:
    """``block(h)`` refused over budget waits the hint (capped, with jitter) and asks the
    same node again; refused every time, it raises OverloadedError (a BusyError) with
    ``retry_after_s``, the reason and the limit named."""
    pinned, certs = pinned_tls(solo)
    node = await _node(pinned, blocks=1, txs=5)
    try:
        async with asyncio.timeout(30):  # block 2 certifies block 1's party index
            while node.store.head().height < 2:
                await node.head_changed()
        honest = filtered_block_pb(node, node.store.block(1), Caller("BANK01", observer=False))  # type: ignore[arg-type]
    finally:
        node.stop()
        node.close()
    answers: list[Any] = [_over_budget(20), honest]
    calls = 0

    class _Stub:
        def GetBlock(self, req: Any, **kw: Any) -> Any:
            nonlocal calls
            calls += 1
            answer = answers.pop(0) if len(answers) > 1 else answers[0]

            async def run() -> Any:
                if isinstance(answer, BaseException):
                    raise answer
                return answer

            return asyncio.ensure_future(run())

    me = ParticipantKey("BANK01", pinned.participant_keys["BANK01"])
    c = AsyncLedgerClient(
        [Endpoint("127.0.0.1:1", "node-00")], tls_certs=certs, genesis=pinned.genesis, identity=me
    )
    c._stub = lambda i: _Stub()  # type: ignore[assignment, method-assign, return-value]
    try:
        assert (await c.block(1)).height == 1 and calls == 2
        answers[:] = [_over_budget(20)]
        with pytest.raises(OverloadedError) as over:
            await c.block(1)
        e = over.value
        assert e.reason == "LIMIT_REACHED" and e.metadata["limit"] == "reads per participant"
        assert e.retry_after_s == pytest.approx(0.02) and e.retry_safe
        assert calls == 2 + 1 + OVERLOAD_RETRIES_MAX  # the same node asked again, bounded
    finally:
        with contextlib.suppress(Exception):
            await c.aclose()


# --- cold receipts: the party root stored with the block (ADR 0025, amendment) ----------


@pytest.fixture
def chained(solo: DemoNetwork) -> Node:
    """A node over blocks 1 to 5 of six DvPs each, committed with real headers and
    certificates and no consensus running, so every height's content is fixed: block
    h + 1 certifies block h's party root, and block 5, the head, has no successor yet."""
    chain, txf = Chain(solo), TxFactory(solo)
    for _ in range(5):
        chain.commit([txf.signed(txf.dvp()) for _ in range(6)])
    return chain.node()


def _cold(node: Node) -> None:
    """As if every block was committed long ago: no trees and no party index kept."""
    node._trees_cache.clear()
    node._parties_kept.clear()


def _no_index(*_: object) -> NoReturn:
    raise AssertionError("the party index was worked out again")


def _tx_of(node: Node, height: int) -> tuple[StoredBlock, bytes]:
    sb = node.store.block(height)
    assert sb is not None and len(sb.results) > 3 and sb.parties is not None
    return sb, sb.results[3].tx_id


async def test_a_cold_receipt_builds_no_party_index(
    chained: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receipt from an old block whose trees are not kept proves its result with the
    results tree ended by the party root stored with the block, once the next block
    (which certifies it) is committed: the index is not worked out again (71 ms a block
    at 10,000 participants). It verifies, and is the receipt the worked-out index gives.
    Controls: a block stored without its root (by a store of before session 20), and the
    head (no committed block certifies its root yet: after a restart), work it out."""
    sb, tid = _tx_of(chained, 2)
    _, head_tid = _tx_of(chained, chained.store.head().height)
    _cold(chained)
    monkeypatch.setattr(node_module, "party_index", _no_index)
    receipt = chained.receipt(tid)
    assert receipt is not None and receipt.result_proof is not None
    verify_receipt(receipt, chained.store.genesis)
    with pytest.raises(AssertionError, match="worked out again"):
        chained.receipt(head_tid)
    chained.store._blocks[2] = dataclasses.replace(sb, parties=None)  # type: ignore[attr-defined]
    _cold(chained)
    with pytest.raises(AssertionError, match="worked out again"):
        chained.receipt(tid)
    monkeypatch.undo()
    assert chained.receipt(tid) == receipt
    assert chained.halted is None


async def test_a_filtered_read_after_a_cold_receipt_works_the_index_out(chained: Node) -> None:
    """Filtered reads still need the index (the caller's own leaf and path): worked out
    after a cold receipt built the block's trees from the stored root, and checked to
    end the same results tree."""
    sb, tid = _tx_of(chained, 4)
    _cold(chained)
    chained.receipt(tid)
    assert chained._trees_cache[4].parties is None
    shown = filtered_block_pb(chained, sb, Caller("BANK01", observer=False))
    assert shown.party_proof and len(shown.receipts) > 0
    assert chained._trees_cache[4].parties is not None


async def test_a_wrong_stored_party_root_halts_the_node(chained: Node) -> None:
    """A stored root that is not the one execution built (a corrupt data directory) would
    give result paths to another root than block h + 1 certifies: the chained halts
    (fail-stop) rather than serve them, whether the root or the size is wrong."""
    sb, tid = _tx_of(chained, 2)
    assert sb.parties is not None
    for wrong in (
        PartyRoot(sb.parties.size, crypto.sha256(b"not the root")),
        PartyRoot(sb.parties.size + 1, sb.parties.root),
    ):
        chained.store._blocks[2] = dataclasses.replace(sb, parties=wrong)  # type: ignore[attr-defined]
        _cold(chained)
        with pytest.raises(StorageError, match="block 3 certifies"):
            chained.receipt(tid)
        assert chained.halted is not None and "data directory is corrupt" in chained.halted


async def test_an_index_worked_out_unlike_the_stored_root_halts_the_node(
    chained: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other way round: the stored root is certified, but the index a filtered read
    works out again (from the registry's records) ends another results tree. Halted,
    rather than show the caller positions the certified index does not hold."""
    sb, tid = _tx_of(chained, 2)
    _cold(chained)
    chained.receipt(tid)
    monkeypatch.setattr(
        node_module,
        "party_index",
        lambda store, b, txs: PartyIndex(
            [(frozenset(), False)] * len(txs), (), [bytes(32)] * len(txs), observers=()
        ),
    )
    with pytest.raises(StorageError, match="worked out again"):
        chained.block_parties(sb)
    assert chained.halted is not None


def test_a_result_path_to_a_wrong_party_root_is_refused(chained: Node) -> None:
    """Were a chained to serve result paths from a results tree ended by a wrong party root
    (its own check aside), the SDK refuses them: the path does not lead to the results
    root block h + 1 certifies. Whatever the stored root, it cannot make a proof pass."""
    sb, tid = _tx_of(chained, 2)
    receipt = chained.receipt(tid)
    assert receipt is not None and receipt.result_proof is not None and sb.parties is not None
    verify_receipt(receipt, chained.store.genesis)
    for wrong in (
        PartyRoot(sb.parties.size, crypto.sha256(b"not the root")),
        PartyRoot(sb.parties.size + 1, sb.parties.root),
        PartyRoot(0, EMPTY_ROOT),
    ):
        path = MerkleTree(results_leaves(sb.results, wrong)).path(receipt.position)
        proof = dataclasses.replace(receipt.result_proof, path=path)
        with pytest.raises(InvalidReceiptError, match="results root certified by block 3"):
            verify_receipt(dataclasses.replace(receipt, result_proof=proof), chained.store.genesis)
