"""One validator's event loop glue: the consensus core, settlement, LMDB and the network.

Theory of operation. Everything runs on one asyncio loop and every handler below is
synchronous, so the replica, the store and the waiters never see concurrent access. An
event (a peer's message, a client's submit, a timer) is fed to the replica; then
``_drain`` does what the core asks in the house order (persist the safety state with
fsync, then send, then apply committed blocks to LMDB and report their roots, then
advance), loops back messages addressed to itself, and re-arms the one timer at the
replica's next deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from node import crypto
from node.config import (
    CATCHUP_BATCH_BLOCKS_MAX,
    MEMPOOL_TXS_MAX,
    PEER_FORWARD_CHUNK_TXS,
    PENDING_IDS_MAX,
    SYNC_PROBE_INTERVAL_MS,
    TIMELINE_HEIGHTS_MAX,
    WAITERS_MAX,
)
from node.core import (
    Block,
    CoreConfig,
    Ed25519Signer,
    Ed25519Verifier,
    EncodeError,
    Message,
    Phase,
    Proposal,
    QCMessage,
    Quorum,
    QuorumCert,
    Replica,
    SyncRequest,
    TxForward,
    encode_block,
    encode_message,
    encode_qc,
)
from node.core.mempool import AddResult, Mempool
from node.merkle import MerkleTree
from node.receipt import Receipt, ResultProof
from node.runtime._logs import event
from node.runtime._metrics import Metrics
from node.runtime._source import StoreSource, _decode_stored
from node.runtime._timeline import Step, Timeline
from node.settlement import (
    BlockContext,
    Genesis,
    ResultCode,
    apply_block,
    genesis_state_root,
    precheck,
    result_leaf,
)
from node.store import Storage, StoredBlock

__all__ = ["Node", "TooManyWaitersError", "wall_ms"]

_IDLE_TICK_MS = 1_000  # wake at least this often, whatever the core's deadline says
_TREES_CACHED_MAX = 8  # blocks whose Merkle trees are kept for receipts


def wall_ms() -> int:
    """Block times are wall-clock milliseconds (settlement deadlines are wall-clock)."""
    return time.time_ns() // 1_000_000


class TooManyWaitersError(RuntimeError):
    """WAITERS_MAX finality waits are parked already."""


@dataclass(frozen=True, slots=True)
class _BlockTrees:
    block: Block
    txs: MerkleTree
    results: MerkleTree


SendFrame = Callable[[int, bytes], None]


class Node:
    def __init__(
        self,
        genesis: Genesis,
        index: int,
        key: crypto.SigningKey,
        store: Storage,
        metrics: Metrics,
        *,
        clock: Callable[[], int] = wall_ms,
        mempool_txs_max: int = MEMPOOL_TXS_MAX,
    ) -> None:
        assert genesis.validators[index].public_key == key.public_key, "wrong validator key"
        self.genesis, self.index, self.store, self.metrics = genesis, index, store, metrics
        self.quorum = Quorum(len(genesis.validators), genesis.quorum)
        self._clock = clock
        source = StoreSource(store)
        state_root, results = source.executed_roots()
        # Signatures checked at admission (a client's submit or a peer's forward) are not
        # checked again when their block executes.
        self.verify = crypto.VerifiedSignatures(2 * mempool_txs_max)
        self.replica = Replica(
            CoreConfig(
                chain_id=genesis.chain_id,
                quorum=self.quorum,
                me=index,
                genesis_state_root=genesis_state_root(genesis),
            ),
            Ed25519Signer(key),
            Ed25519Verifier([v.public_key for v in genesis.validators]),
            source,
            executed_root=state_root,
            results_root=results,
            safety=store.load_safety(),
            now_ms=clock(),
            mempool=Mempool(txs_max=mempool_txs_max),
            tx_check=self._forward_ok,
        )
        self.send_frame: SendFrame = lambda dst, data: None  # set by the transport
        self._local: deque[Message] = deque()
        self._draining = False
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._trees_cache: OrderedDict[int, _BlockTrees] = OrderedDict()
        self._waiter_count = 0
        self._pending: OrderedDict[bytes, float] = OrderedDict()  # tx id -> accepted at
        self._last_probe_ms: dict[int, int] = {}
        self._head_changed = asyncio.Event()
        self.timeline = Timeline(TIMELINE_HEIGHTS_MAX)
        self._halt_logged = False
        self._last_view = self.replica.view
        self.started_ms = clock()
        self.metrics.height.set(store.head().height)

    # --- inputs ----------------------------------------------------------------------------

    def _forward_ok(self, raw: bytes) -> bool:
        """A peer's forwarded transaction passes the checks a client's submission does."""
        return precheck(self.genesis, raw, self.verify.admit).code is ResultCode.OK

    def deliver(self, src: int, msg: Message) -> None:
        """A consensus message from validator ``src`` (authenticated by the transport)."""
        if isinstance(msg, TxForward) and len(msg.txs) > PEER_FORWARD_CHUNK_TXS:
            # Checking a forward's signatures is the costliest work a peer can ask for: in
            # chunks, one per event-loop turn, so no single message blocks the loop long.
            loop = asyncio.get_running_loop()
            for i in range(0, len(msg.txs), PEER_FORWARD_CHUNK_TXS):
                chunk = TxForward(msg.txs[i : i + PEER_FORWARD_CHUNK_TXS])
                loop.call_soon(self.deliver, src, chunk)
            return
        event("recv", logging.DEBUG, src=src, msg=_describe(msg))
        self._mark(msg)
        self.replica.step(src, msg, self._clock())
        self._drain()

    def submit(self, raw: bytes, tid: bytes) -> AddResult:
        """A client's transaction with its id, already prechecked (node/runtime/_api.py)."""
        result = self.replica.submit(raw, self._clock())
        if result is AddResult.ACCEPTED:
            self._pending[tid] = time.monotonic()
            while len(self._pending) > PENDING_IDS_MAX:
                self._pending.popitem(last=False)
        self._drain()
        return result

    def peer_up(self, peer: int, peer_height: int) -> None:
        """A link to ``peer`` came up: ask it for blocks we miss (an idle cluster sends no
        proposals, so a node that missed the last commit would otherwise stay behind)."""
        now = self._clock()
        if now - self._last_probe_ms.get(peer, -SYNC_PROBE_INTERVAL_MS) < SYNC_PROBE_INTERVAL_MS:
            return
        if peer_height <= self.replica.committed_height:
            return
        self._last_probe_ms[peer] = now
        req = SyncRequest(self.replica.committed_height + 1, CATCHUP_BATCH_BLOCKS_MAX)
        self.send_frame(peer, _encode(req))

    def start(self) -> None:
        self._drain()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for futures in self._waiters.values():
            for f in futures:
                if not f.done():
                    f.cancel()
        self._waiters.clear()

    # --- queries ---------------------------------------------------------------------------

    @property
    def halted(self) -> str | None:
        return self.replica.halted

    def is_pending(self, tid: bytes) -> bool:
        return tid in self._pending

    def receipt(self, tid: bytes) -> Receipt | None:
        record = self.store.tx_record(tid)
        if record is None:
            return None
        sb = self.store.block(record.height)
        assert sb is not None, "the index names a block the store does not hold"
        trees = self._trees(record.height, sb)
        proof = None
        after = self.store.block(record.height + 1)
        if after is not None:
            header = _decode_stored(after.block_bytes, after.certificate)[0].header
            proof = ResultProof(header, after.certificate, trees.results.path(record.position))
        return Receipt(
            tx_id=tid,
            code=record.code,
            height=record.height,
            position=record.position,
            block_hash=sb.block_hash,
            block_time_ms=sb.time_ms,
            certificate=sb.certificate,
            block_header=trees.block.header,
            transaction=trees.block.txs[record.position],
            tx_path=trees.txs.path(record.position),
            result_proof=proof,
        )

    def _trees(self, height: int, sb: StoredBlock) -> _BlockTrees:
        """A committed block's Merkle trees, built once for all its receipts (bounded LRU)."""
        cached = self._trees_cache.get(height)
        if cached is not None:
            self._trees_cache.move_to_end(height)
            return cached
        block, _ = _decode_stored(sb.block_bytes, sb.certificate)
        trees = _BlockTrees(
            block, MerkleTree(block.txs), MerkleTree([result_leaf(r) for r in sb.results])
        )
        self._trees_cache[height] = trees
        if len(self._trees_cache) > _TREES_CACHED_MAX:
            self._trees_cache.popitem(last=False)
        return trees

    async def wait_for(self, tid: bytes, timeout_s: float, *, prove_result: bool) -> Receipt:
        """The receipt once ``tid`` is committed; with ``prove_result`` once the next block
        certifies its result too. TimeoutError after ``timeout_s`` in all."""
        found = self.receipt(tid)
        if found is not None and (found.result_proof is not None or not prove_result):
            return found
        if self._waiter_count >= WAITERS_MAX:
            raise TooManyWaitersError(f"{WAITERS_MAX} finality waits are in progress")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._waiter_count += 1
        try:
            if found is None:
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.setdefault(tid, []).append(fut)
                try:
                    await asyncio.wait_for(fut, timeout_s)
                finally:
                    self._forget_waiter(tid, fut)
                found = self.receipt(tid)
                assert found is not None
            while prove_result and found.result_proof is None:
                await asyncio.wait_for(self.head_changed(), max(0.0, deadline - loop.time()))
                found = self.receipt(tid)
                assert found is not None
            return found
        finally:
            self._waiter_count -= 1

    async def head_changed(self) -> None:
        """Returns after the next commit."""
        await self._head_changed.wait()

    # --- the loop --------------------------------------------------------------------------

    def _on_timer(self) -> None:
        self._timer = None
        self.replica.tick(self._clock())
        self._drain()

    def _drain(self) -> None:
        if self._draining:
            return  # re-entered from a loopback delivery; the outer loop finishes the job
        self._draining = True
        try:
            while True:
                self._drain_ready()
                if not self._local:
                    break
                while self._local:
                    self.replica.step(self.index, self._local.popleft(), self._clock())
        finally:
            self._draining = False
        self._after_drain()

    def _drain_ready(self) -> None:
        r = self.replica
        while True:
            ready = r.ready()
            if ready.empty():
                r.advance()
                return
            if ready.to_persist is not None:
                self.store.save_safety(ready.to_persist)  # durable before any vote leaves
            encoded: dict[int, bytes] = {}  # a broadcast is one object sent n times
            for dst, msg in ready.to_send:
                self._mark(msg)
                if dst == self.index:
                    self._local.append(msg)
                    continue
                event("send", logging.DEBUG, dst=dst, msg=_describe(msg))
                data = encoded.get(id(msg))
                if data is None:
                    data = encoded[id(msg)] = _encode(msg)
                if data:
                    self.send_frame(dst, data)
            for block, cert in ready.committed:
                self._apply(block, cert)
            r.advance()

    def _apply(self, block: Block, cert: QuorumCert) -> None:
        ctx = BlockContext(block.height, block.time_ms)
        outcome = apply_block(self.store, block.txs, ctx, verify=self.verify)
        self.store.commit_block(block.hash, encode_block(block), encode_qc(cert), ctx, outcome)
        self.replica.executed(block.height, outcome.state_root, outcome.results_root)
        self.timeline.mark(block.height, Step.APPLIED)
        now = time.monotonic()
        m = self.metrics
        m.blocks.inc()
        m.height.set(block.height)
        for res in outcome.results:
            m.transactions.labels(code=res.code.name).inc()
            accepted = self._pending.pop(res.tx_id, None)
            if accepted is not None:
                m.commit_latency.observe(now - accepted)
        for tid, _ in outcome.recorded:
            self._resolve(tid)
        self._head_changed.set()
        self._head_changed = asyncio.Event()
        event(
            "commit",
            logging.DEBUG,
            height=block.height,
            view=cert.view,
            txs=len(block.txs),
            root=outcome.state_root.hex()[:16],
        )

    def _mark(self, msg: Message) -> None:
        """Note the first time this node sees a block's proposal or certificates."""
        if isinstance(msg, Proposal):
            self.timeline.mark(msg.block.height, Step.PROPOSED)
        elif isinstance(msg, QCMessage):
            qc = msg.qc
            step = Step.PREPARE_QC if qc.phase is Phase.PREPARE else Step.COMMIT_QC
            self.timeline.mark(qc.height, step)

    def _resolve(self, tid: bytes) -> None:
        for f in self._waiters.get(tid, ()):
            if not f.done():
                f.set_result(None)

    def _forget_waiter(self, tid: bytes, fut: asyncio.Future[None]) -> None:
        futures = self._waiters.get(tid)
        if futures is not None and fut in futures:
            futures.remove(fut)
            if not futures:
                del self._waiters[tid]

    def _after_drain(self) -> None:
        r = self.replica
        if r.view != self._last_view:
            if r.view > self._last_view + 1 or r.committed_view != r.view - 1:
                self.metrics.view_changes.inc()
                event("view_change", view=r.view, height=r.committed_height)
            self._last_view = r.view
        self.metrics.view.set(r.view)
        self.metrics.mempool.set(len(r.mempool))
        if r.halted is not None and not self._halt_logged:
            self._halt_logged = True
            event("halted", logging.ERROR, reason=r.halted, height=r.committed_height)
        self._arm_timer()

    def _arm_timer(self) -> None:
        now = self._clock()
        deadline = self.replica.deadline_ms()
        at = now + _IDLE_TICK_MS if deadline is None else min(deadline, now + _IDLE_TICK_MS)
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0, at - now) / 1000, self._on_timer)


def _encode(msg: Message) -> bytes:
    """The wire form, or b"" for a message over a wire limit (dropped: a peer would refuse
    it, and the protocol recovers from a lost message by timeout or catch-up)."""
    try:
        return encode_message(msg)
    except EncodeError as e:
        event("message_dropped", logging.ERROR, msg=_describe(msg), error=str(e))
        return b""


def _describe(msg: Message) -> str:
    """A short form of a message for debug logs."""
    kind = type(msg).__name__
    view = getattr(msg, "view", None)
    if view is None and hasattr(msg, "qc"):
        qc = msg.qc
        return f"{kind}({qc.phase.name} v{qc.view} h{qc.height})"
    block = getattr(msg, "block", None)
    height = block.height if block is not None else getattr(msg, "height", None)
    return f"{kind}(v{view} h{height})" if view is not None else kind
