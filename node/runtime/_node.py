"""One validator's event loop glue: the consensus core, settlement, LMDB and the network.

Theory of operation. Everything runs on one asyncio loop and every handler below is
synchronous, so the replica, the store and the waiters never see concurrent access. An
event (a peer's message, a client's submit, a timer) is fed to the consensus engine
(``node/core/engine.py``, the one driver the simulator and the replica tests run too),
which does what the core asks in the house order: persist the safety state with fsync
(``Storage.save_safety``), then send (``_send``: encode, hand to the transport), then
apply committed blocks to LMDB and report their roots (``_execute``), then advance, and
loops back messages addressed to itself. After each event the node updates its metrics,
halts if the replica halted, and re-arms the one timer at the replica's next deadline.

Fail-stop. Every entry into the driver (``deliver``, ``submit``, ``peer_up``, ``start``,
the timer, the intake flush) runs under ``_guard``: any exception there -- a storage
error, a broken invariant, a bug -- halts the node at once (one ERROR ``fatal`` log line,
the ``ledger_halted`` metric, health NOT_SERVING, then exit EXIT_FATAL). A replica that
halts itself on divergent execution stops the process the same way (EXIT_DIVERGED).
After either, the node takes no more input, and a restart recovers from LMDB, which is
at its last durable commit (docs/cluster.md "Fail-stop").

Acknowledged means durable. A client transaction the mempool accepts is appended to an
in-memory batch; one LMDB write per loop turn (group commit, one fsync for every submit
in that turn) makes the batch durable, and only then does ``submit`` return ACCEPTED.
Commits prune the log in the block's own write; ``start`` replays it into the mempool
(docs/adr/0006-durable-intake.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any, Literal, TypeVar

from node import codec, crypto
from node.config import (
    ADMISSION_EXPIRY_TOLERANCE_MS,
    ADMISSION_QUEUE_MAX_MS,
    COMMIT_RELAY_FACTOR,
    INTAKE_TXS_MAX,
    MEMPOOL_TXS_MAX,
    PENDING_IDS_MAX,
    PIPELINE_DEFAULT,
    SYNC_PROBE_INTERVAL_MS,
    TIMELINE_HEIGHTS_MAX,
    VIEW_PROGRESS_FACTOR,
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
    decode_block_header,
    encode_block,
    encode_message,
    encode_qc,
)
from node.core.engine import Engine, Observer, SpeculationCache
from node.core.mempool import AddResult, Mempool, tx_key
from node.core.refusal import Kind
from node.core.transcript import describe
from node.invariant import InvariantError, require
from node.merkle import MerkleTree
from node.receipt import EventProof, Receipt, ResultProof
from node.runtime._admission import Admission
from node.runtime._logs import event, logging_at
from node.runtime._metrics import CONSENSUS_STEPS, Metrics
from node.runtime._source import StoreSource, _decode_stored, party_index
from node.runtime._timeline import Step, Timeline
from node.runtime._velocity import VelocityWatch
from node.settlement import (
    QUIET_RESULTS_ROOT,
    BlockContext,
    BlockOutcome,
    DecodeError,
    DvP,
    Genesis,
    PartyIndex,
    PartyRoot,
    PendingDvP,
    RecordKind,
    Registry,
    ResultCode,
    SignedTx,
    TxResult,
    apply_block,
    decode_body,
    genesis_state_root,
    outcome,
    pending_count,
    precheck,
    results_leaves,
    settlement_fail,
)
from node.store import Storage, StorageError, StoredBlock

__all__ = [
    "EXIT_DIVERGED",
    "EXIT_FATAL",
    "Node",
    "NodeHaltedError",
    "TooManyWaitersError",
    "wall_ms",
]

_T = TypeVar("_T")
_IDLE_TICK_MS = 1_000  # wake at least this often, whatever the core's deadline says
_TREES_CACHED_MAX = 8  # blocks whose Merkle trees are kept for receipts
# Record kinds whose change changes a paged answer (docs/adr/0020, amendment "pages"):
# the reference data (node/settlement/_registry.py: GetReference, and who may read
# GetAttestations) and custody and reserve attestations; a supply change does too.
_PAGED_KINDS = frozenset(
    bytes([k])
    for k in (
        RecordKind.PARTICIPANT,
        RecordKind.INSTRUMENT,
        RecordKind.SUPPLY_ATTESTATION,
        RecordKind.ADDED,
        RecordKind.PARTICIPANT_SINCE,
        RecordKind.OBSERVER_AT,
        RecordKind.CUSTODY,
        RecordKind.RESERVES,
    )
)

# Process exit codes of a node that halts itself (2 is a refusal to start, see __main__).
EXIT_FATAL = 3  # storage error, broken invariant or exception in the driver: fix, restart
EXIT_DIVERGED = 4  # this node's execution disagrees with a certified state root: investigate


def wall_ms() -> int:
    """Block times are wall-clock milliseconds (settlement deadlines are wall-clock)."""
    return time.time_ns() // 1_000_000


class TooManyWaitersError(RuntimeError):
    """WAITERS_MAX finality waits are parked already."""


class NodeHaltedError(RuntimeError):
    """The node halted itself (fail-stop) and takes no more input."""


@dataclass(slots=True)
class _BlockTrees:
    block: Block
    txs: MerkleTree
    results: MerkleTree
    parties_leaf: bytes  # the results tree's last leaf: its party index's size and root
    # The party index itself, once a filtered read needed it: a receipt needs only its
    # size and root, stored with the block (ADR 0025, amendment).
    parties: PartyIndex | None


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
        admission_queue_max_ms: int = ADMISSION_QUEUE_MAX_MS,
        pipeline: bool = PIPELINE_DEFAULT,
        view_progress_factor: int = VIEW_PROGRESS_FACTOR,
        commit_relay_factor: int = COMMIT_RELAY_FACTOR,
    ) -> None:
        require(genesis.validators[index].public_key == key.public_key, "wrong validator key")
        self.genesis, self.index, self.store, self.metrics = genesis, index, store, metrics
        self.quorum = Quorum(len(genesis.validators), genesis.quorum)
        self._clock = clock
        self.velocity = VelocityWatch(self.registry)  # kyc: alerts, not consensus rules
        source = StoreSource(store)
        state_root, results = source.executed_roots()
        # Signatures checked at admission (a client's submit or a peer's forward) are not
        # checked again when their block executes.
        self.verify = crypto.VerifiedSignatures(2 * mempool_txs_max)
        try:
            self.replica = Replica(
                CoreConfig(
                    chain_id=genesis.chain_id,
                    quorum=self.quorum,
                    me=index,
                    genesis_state_root=genesis_state_root(genesis),
                    view_progress_factor=view_progress_factor,
                    commit_relay_factor=commit_relay_factor,
                    quiet_results_root=QUIET_RESULTS_ROOT,
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
        except codec.DecodeError as e:  # not a default: refuse to start, in one line
            raise StorageError(
                "a consensus record in the data directory does not decode or is another "
                "validator's or another chain's (the safety state, or the last committed "
                f"block or its certificate): {e}"
            ) from e
        self.send_frame: SendFrame = lambda dst, data: None  # set by the transport
        # Outcomes of certified blocks executed before their commit (ADR 0012).
        self._speculated: SpeculationCache[BlockOutcome] = SpeculationCache()
        self.engine = Engine(
            self.replica,
            store,
            self._send,
            self._execute,
            observers=[_Marks(self)],
            loopback=self._loopback_soon,
            speculate=self._speculate if pipeline else None,
        )
        self._encoded: tuple[Message | None, bytes] = (None, b"")  # a broadcast: encode once
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0  # when the armed timer fires (ms, the node's clock)
        self._gauges: tuple[int, int, int] | None = None  # the last view and mempool set
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        # Waits for the next commit (a result proof, a settlement): ended by ``stop`` too.
        self._head_waits: set[asyncio.Future[Literal[True]]] = set()
        self._waits_ended = False  # stopped: a wait that would park ends at once
        self._trees_cache: OrderedDict[int, _BlockTrees] = OrderedDict()
        # Party indexes execution built (ADR 0025), until the block's trees take them.
        self._parties_kept: OrderedDict[int, PartyIndex] = OrderedDict()
        self.trees_built = 0  # blocks' Merkle trees built (cache misses): what a read rebuilt
        self._waiter_count = 0
        self._pending: OrderedDict[bytes, float] = OrderedDict()  # tx id -> accepted at
        self._last_probe_ms: dict[int, int] = {}
        self._head_changed = asyncio.Event()
        self.timeline = Timeline(TIMELINE_HEIGHTS_MAX)
        self._halt_logged = False
        self.fatal: str | None = None  # why the node halted itself (fail-stop), if it did
        self._stopped = False  # halted or closed: no more input reaches the replica or store
        self.on_halt: Callable[[], None] = lambda: None  # set by the server: stop the process
        self._intake_batch: list[tuple[bytes, bytes, bytes]] = []  # acked once durable
        self._intake_flush: asyncio.Future[None] | None = None
        self._views_timed_out = 0
        self._commit_votes_relayed = 0
        store.on_error = lambda e: self.fail("storage", e)  # API reads included
        self._refused_counted: dict[tuple[str, str], int] = {}  # replica.refused in metrics
        self.started_ms = clock()
        # admission control (node/runtime/_stream.py)
        self.load = Admission(self.started_ms, queue_max_ms=admission_queue_max_ms)
        self.metrics.height.set(store.head().height)
        # The last block that changed what a paged answer shows (GetReference,
        # GetAttestations: ``_PAGED_KINDS``, supplies); the head at start, as this node
        # knows no earlier one. A continued page is served only while it is unchanged.
        self.paged_version = store.head().height

    # --- inputs ----------------------------------------------------------------------------

    def admission(self, raw: bytes) -> TxResult:
        """The checks any transaction passes before a mempool takes it, a client's submit
        or a peer's forward alike: form, signatures, chain, and what can never succeed
        (roles, expiry and deadline by this node's clock, with the block-time tolerance)."""
        return precheck(
            self.registry(),
            raw,
            self.verify.admit,
            now_ms=self._clock(),
            tolerance_ms=ADMISSION_EXPIRY_TOLERANCE_MS,
        )

    def registry(self) -> Registry:
        """Participants, instruments and admins at the committed head (ADR 0016): what
        admission, the API and the access gate read, so governance needs no restart."""
        return Registry.of(self.store)

    def clock_ms(self) -> int:
        """This node's clock (block times and admission control read the same one)."""
        return self._clock()

    def _forward_ok(self, raw: bytes) -> bool:
        return self.admission(raw).code is ResultCode.OK

    def deliver(self, src: int, msg: Message) -> None:
        """A consensus message from validator ``src`` (authenticated by the transport, which
        splits forwarded transactions into chunks: see ``node/runtime/_transport.py``)."""
        self._guard("deliver", self._deliver, src, msg)

    def admit(self, src: int, size_bytes: int, kind: Kind | None) -> int:
        """Before the transport decodes ``size_bytes`` from validator ``src`` (a message of
        ``kind``, or a frame refused whole with None): 0 to go on (charged to ``src``'s byte
        budget), else how many ms to leave ``src``'s stream unread (Replica.admit)."""
        wait_ms = self._guard("admit", self.replica.admit, src, size_bytes, kind, self._clock())
        if wait_ms:
            self._count_refused()
        return wait_ms or 0

    def _deliver(self, src: int, msg: Message) -> None:
        if logging_at(logging.DEBUG):  # no formatting per message unless asked for
            event("recv", logging.DEBUG, src=src, msg=describe(msg))
        # "First seen" is the arrival time, recorded only if the replica took the message:
        # a peer's refused junk marks no height (session 14's review).
        arrived_us, refused = time.time_ns() // 1_000, self.replica.refused.total()
        self.engine.step(src, msg, self._clock())
        if self.replica.refused.total() == refused:
            self._mark(msg, arrived_us)
        self._after_drain()

    async def submit(self, raw: bytes, tid: bytes) -> AddResult:
        """A client's transaction with its id, already prechecked (node/runtime/_api.py).
        Returns ACCEPTED (or DUPLICATE) only once the transaction is in the fsynced intake
        log; raises NodeHaltedError if the node halted (before or while making it durable)."""
        if self._stopped or self.halted is not None:
            raise NodeHaltedError(self._why_stopped())
        result = self._guard("submit", self._submit, raw, tid)
        if result is None or self._stopped:
            # Halted in the drain after the mempool took it (a replica that diverged there
            # halts without an exception): the batch was dropped, so nothing is durable.
            raise NodeHaltedError(self._why_stopped())
        flush = self._intake_flush
        if flush is not None and result is not AddResult.FULL:
            # A duplicate may be the same transaction still on its way to disk: wait too.
            await asyncio.shield(flush)
        return result

    def _submit(self, raw: bytes, tid: bytes) -> AddResult:
        if self.store.intake_count() + len(self._intake_batch) >= INTAKE_TXS_MAX:
            return AddResult.FULL
        now = self._clock()
        result = self.engine.submit(raw, now, drain=False)
        key = tx_key(raw)
        if result is AddResult.ACCEPTED:
            self._pending[tid] = time.monotonic()
            while len(self._pending) > PENDING_IDS_MAX:
                self._pending.popitem(last=False)
        # A duplicate pending here may be a peer's forward, never logged: the client is told
        # ALREADY_PENDING, which promises durable here too (a copy logged already is a no-op).
        if result is AddResult.ACCEPTED or (
            result is AddResult.DUPLICATE and self.replica.mempool.contains_key(key)
        ):
            self._intake_batch.append((key, tid, raw))
            if self._intake_flush is None:
                loop = asyncio.get_running_loop()
                self._intake_flush = loop.create_future()
                loop.call_soon(self._guard, "intake", self._flush_intake)
        self._drain(now)  # after the bookkeeping (a commit may settle what it recorded)
        return result

    def _flush_intake(self) -> None:
        """Make this loop turn's accepted transactions durable in one write (group commit)."""
        flush, batch = self._intake_flush, self._intake_batch
        if flush is None:
            raise InvariantError("an intake flush ran with no batch")
        self._intake_flush, self._intake_batch = None, []
        # One that committed already (in a drain before this turn's flush) is done.
        mempool = self.replica.mempool
        try:
            self.store.intake_put([e for e in batch if mempool.contains_key(e[0])])
        except BaseException:
            # Not durable, so not acknowledged: the waiting submits answer UNAVAILABLE.
            flush.set_exception(NodeHaltedError("node halted: the intake log write failed"))
            flush.exception()  # retrieved here; the waiting submits raise it
            raise
        flush.set_result(None)

    def peer_up(self, peer: int, peer_height: int) -> None:
        """A link to ``peer`` came up: ask it for blocks we miss (an idle cluster sends no
        proposals, so a node that missed the last commit would otherwise stay behind)."""
        self._guard("peer_up", self._peer_up, peer, peer_height)

    def _peer_up(self, peer: int, peer_height: int) -> None:
        now = self._clock()
        if now - self._last_probe_ms.get(peer, -SYNC_PROBE_INTERVAL_MS) < SYNC_PROBE_INTERVAL_MS:
            return
        if peer_height <= self.replica.committed_height:
            return
        self._last_probe_ms[peer] = now
        self.engine.peer_height(peer, peer_height, now)
        self._after_drain()

    def start(self) -> None:
        """Replay the intake log into the mempool, then run the first drain."""
        self._guard("start", self._start)

    def _start(self) -> None:
        entries = self.store.intake()
        stale = []
        now = self._clock()
        for tid, raw in entries:
            if self.store.tx_record(tid) is not None:
                stale.append(tx_key(raw))  # its id committed (another copy): nothing to do
            elif self.engine.submit(raw, now, drain=False) is AddResult.ACCEPTED:
                self._pending[tid] = time.monotonic()
            elif not self.replica.mempool.contains(raw):
                # Only if the operator lowered this node's limits across the restart.
                event("intake_dropped", logging.ERROR, tx_id=tid.hex(), why="mempool refused")
                stale.append(tx_key(raw))
        if entries:
            self.store.intake_drop(stale)
            event("intake_replayed", txs=len(entries) - len(stale), pruned=len(stale))
        self._drain(now)

    def close(self) -> None:
        """The servers have stopped and the store is about to close: callbacks still queued
        on the loop (a loopback step, an intake flush) must not reach it any more, and a
        submit still waiting for its intake write is answered (not durable: refused)."""
        self._stopped = True
        self.stop()
        self._fail_intake_flush(NodeHaltedError("node shut down: the intake write did not run"))

    def stop(self) -> None:
        """Cancel the timer and end every finality wait, parked for a commit or for the
        next one (a result proof, a settlement), and any wait asked for later: a halted or
        stopping node commits nothing more, so none may sleep until its timeout."""
        if self._timer is not None:
            self._timer.cancel()
        self._waits_ended = True
        for futures in self._waiters.values():
            for f in futures:
                if not f.done():
                    f.cancel()
        self._waiters.clear()
        for changed in self._head_waits:
            changed.cancel()
        self._head_waits.clear()

    # --- queries ---------------------------------------------------------------------------

    @property
    def halted(self) -> str | None:
        """Why this node stopped taking input (fail-stop or divergence), else None."""
        return self.fatal or self.replica.halted

    @property
    def exit_code(self) -> int:
        """The process exit code once halted."""
        return EXIT_FATAL if self.fatal is not None else EXIT_DIVERGED

    def fail(self, where: str, exc: BaseException) -> None:
        """Halt for good: an exception escaped the driver (or a task it depends on)."""
        if self.fatal is not None:
            return
        self.fatal = f"{where}: {type(exc).__name__}: {exc}"
        event(
            "fatal",
            logging.ERROR,
            exc=exc,
            where=where,
            reason=self.fatal,
            height=self.store.head().height,
            exit_code=EXIT_FATAL,
        )
        self._halt()

    def _halt(self) -> None:
        self._stopped = True
        self.metrics.halted.set(1)
        self.stop()
        self._fail_intake_flush(NodeHaltedError(f"node halted: {self.halted}"))
        self.on_halt()

    def _why_stopped(self) -> str:
        return "node shut down" if self.halted is None else f"node halted: {self.halted}"

    def _fail_intake_flush(self, error: NodeHaltedError) -> None:
        flush, self._intake_flush, self._intake_batch = self._intake_flush, None, []
        if flush is not None and not flush.done():
            flush.set_exception(error)
            flush.exception()  # retrieved: a submit that awaits it raises, none may

    def _guard(self, where: str, fn: Callable[..., _T], *args: Any) -> _T | None:
        """Run one driver step; any exception halts the node. None once halted."""
        if self._stopped:
            return None
        try:
            return fn(*args)
        except Exception as e:  # fail-stop: whatever it is, halt loudly
            self.fail(where, e)
            return None

    def is_pending(self, tid: bytes) -> bool:
        return tid in self._pending

    def receipt(self, tid: bytes) -> Receipt | None:
        record = self.store.tx_record(tid)
        if record is None:
            return None
        sb = self.store.block(record.height)
        if sb is None:
            # A corrupt data directory halts the node (fail-stop), a read of it as well.
            raise self._corrupt(f"the index names block {record.height}, not in the store")
        trees = self._trees(record.height, sb)
        proof = None
        after = self.store.block(record.height + 1)
        if after is not None:
            header = _decode_stored(after.block_bytes, after.certificate)[0].header
            path = trees.results.path(record.position)
            proof = ResultProof(header, after.certificate, path, _leaf_count(trees))
        event = self._event_proof(tid) if record.code is ResultCode.PENDING_SETTLEMENT else None
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
            event_proof=event,
        )

    def _event_proof(self, tid: bytes) -> EventProof | None:
        """The proof of a pending DvP's latest event, once the next block certifies it."""
        latest = outcome(self.store, tid)
        if latest is None or latest.code is ResultCode.PENDING_SETTLEMENT:
            return None
        sb, after = self.store.block(latest.height), self.store.block(latest.height + 1)
        if sb is None or after is None:
            return None
        results = self._trees(latest.height, sb).results
        header = _decode_stored(after.block_bytes, after.certificate)[0].header
        return EventProof(
            latest.code,
            latest.height,
            latest.index,
            results.size,
            header,
            after.certificate,
            results.path(latest.index),
        )

    def block_receipt(self, sb: StoredBlock, position: int) -> Receipt:
        """The receipt of the transaction at ``position`` of committed block ``sb``, without
        the result proof: what a party-filtered block carries for each of its transactions
        (node/access.py), so the party verifies inclusion offline."""
        trees = self._trees(sb.height, sb)
        r = sb.results[position]
        return Receipt(
            tx_id=r.tx_id,
            code=r.code,
            height=sb.height,
            position=position,
            block_hash=sb.block_hash,
            block_time_ms=sb.time_ms,
            certificate=sb.certificate,
            block_header=trees.block.header,
            transaction=trees.block.txs[position],
            tx_path=trees.txs.path(position),
            result_proof=None,
        )

    def block_parties(self, sb: StoredBlock) -> PartyIndex:
        """Committed block ``sb``'s party index (ADR 0025): which positions each party
        is shown, built by execution or once again for all the block's readers (a
        filtered read; a receipt needs only its size and root)."""
        trees = self._trees(sb.height, sb)
        if trees.parties is None:
            parties = party_index(self.store, sb, trees.block.txs)
            if parties.leaf != trees.parties_leaf:
                raise self._corrupt(
                    f"block {sb.height}'s party index, worked out again, is not the one "
                    "stored with it"
                )
            trees.parties = parties
        return trees.parties

    def result_paths(self, sb: StoredBlock, positions: Sequence[int]) -> list[tuple[bytes, ...]]:
        """The audit paths of the results at ``positions`` of ``sb`` to its results root."""
        results = self._trees(sb.height, sb).results
        return [results.path(p) for p in positions]

    def parties_proof(self, sb: StoredBlock, party: str) -> tuple[bytes, ResultProof] | None:
        """The proof that a party-filtered read of ``sb`` shows ``party`` all its
        positions: its party proof, and the path of the index's root (the results tree's
        last leaf) to the results root block ``sb.height + 1`` certifies. None while that
        block is not committed, or when ``sb`` has no transactions (nothing to hide)."""
        if not self._trees(sb.height, sb).block.txs:
            return None
        proven = self.results_proof(sb)
        if proven is None:
            return None
        return self.block_parties(sb).proof(party).encode(), proven[0]

    def results_proof(self, sb: StoredBlock) -> tuple[ResultProof, bytes] | None:
        """Block ``sb.height + 1``'s header and certificate with the path of ``sb``'s
        results tree's last leaf (its party index's size and root) to the results root
        that header carries, and that leaf; None while that block is not committed (the
        trees are built only then: a whole read of the head builds none)."""
        after = self.store.block(sb.height + 1)
        if after is None:
            return None
        trees = self._trees(sb.height, sb)
        header = _decode_stored(after.block_bytes, after.certificate)[0].header
        size = trees.results.size
        path = trees.results.path(size - 1)
        return ResultProof(header, after.certificate, path, size), trees.parties_leaf

    def block_parts(self, sb: StoredBlock) -> tuple[bytes, tuple[bytes, ...]]:
        """Committed block ``sb``'s canonical header and signed transactions (decoded once
        for all its readers, cached)."""
        block = self._trees(sb.height, sb).block
        return block.header, block.txs

    def trees_kept(self, height: int) -> bool:
        """Whether block ``height``'s Merkle trees are kept: a receipt from it rebuilds
        nothing."""
        return height in self._trees_cache

    def _trees(self, height: int, sb: StoredBlock) -> _BlockTrees:
        """A committed block's Merkle trees, built once for all its receipts (bounded LRU).
        The results tree ends with the party index's size and root: the index execution
        built, or the size and root stored with the block, or (a block stored before
        session 20) the index worked out again (ADR 0025, amendment)."""
        cached = self._trees_cache.get(height)
        if cached is not None:
            self._trees_cache.move_to_end(height)
            return cached
        self.trees_built += 1
        block, _ = _decode_stored(sb.block_bytes, sb.certificate)
        top, parties, certified = self._party_top(sb, block)
        results = MerkleTree(results_leaves(sb.results, top))
        if certified is not None and results.root != certified:
            # The stored root disagrees with the block that certifies it: a corrupt data
            # directory halts the node, never serves a proof every client refuses.
            raise self._corrupt(
                f"block {sb.height}'s results tree, built with the party root stored with "
                f"it, is not the one block {sb.height + 1} certifies"
            )
        trees = _BlockTrees(block, MerkleTree(block.txs), results, top.leaf, parties)
        self._trees_cache[height] = trees
        if len(self._trees_cache) > _TREES_CACHED_MAX:
            self._trees_cache.popitem(last=False)
        return trees

    def _party_top(
        self, sb: StoredBlock, block: Block
    ) -> tuple[PartyIndex | PartyRoot, PartyIndex | None, bytes | None]:
        """What ends block ``sb``'s results tree, its party index if that was needed, and
        the results root the tree must have when it was not: the index execution built
        (kept for the last blocks executed); else the size and root stored with the
        block, once block ``sb.height + 1``, which certifies them, is committed (the only
        time a results tree is served), with that block's results root; else the index
        worked out again (a block stored before session 20, or the head after a
        restart)."""
        kept = self._parties_kept.pop(sb.height, None)
        if kept is not None:
            return kept, kept, None
        after = None if sb.parties is None else self.store.block(sb.height + 1)
        if sb.parties is not None and after is not None:
            return sb.parties, None, decode_block_header(after.block_bytes).results_root
        parties = party_index(self.store, sb, block.txs)
        return parties, parties, None

    def _corrupt(self, what: str) -> StorageError:
        """A read found the data directory corrupt: the node halts (fail-stop), as for any
        storage error, and the read fails with the returned error."""
        error = StorageError(f"{what}: the data directory is corrupt")
        self.fail("storage", error)
        return error

    async def wait_for(
        self, tid: bytes, timeout_s: float, *, prove_result: bool, settled: bool = False
    ) -> Receipt:
        """The receipt once ``tid`` is committed; with ``prove_result`` once the next block
        certifies its result too; with ``settled``, for a pending DvP, once its final event
        is certified (ADR 0014). TimeoutError after ``timeout_s`` in all."""
        found = self.receipt(tid)
        if (
            found is not None
            and (found.result_proof is not None or not prove_result)
            and not (settled and found.waiting)
        ):
            return found
        if self._waits_ended:
            # Stopped or halted: no commit will end it. Ended as ``stop`` ends those parked.
            raise asyncio.CancelledError(self._why_stopped())
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
                found = self._committed_receipt(tid)
            while (prove_result and found.result_proof is None) or (settled and found.waiting):
                changed = asyncio.ensure_future(self.head_changed())
                self._head_waits.add(changed)
                try:
                    await asyncio.wait_for(changed, max(0.0, deadline - loop.time()))
                finally:
                    self._head_waits.discard(changed)
                found = self._committed_receipt(tid)
            return found
        finally:
            self._waiter_count -= 1

    def _committed_receipt(self, tid: bytes) -> Receipt:
        found = self.receipt(tid)
        if found is None:
            # A commit ended the wait and the store has no record of it: a broken invariant
            # halts the node (fail-stop), not only this call (review 36n).
            error = InvariantError(f"a wait for {tid.hex()} resolved before its commit")
            self.fail("wait_for", error)
            raise error
        return found

    def next_commit(self) -> asyncio.Future[Literal[True]]:
        """Completes after the next commit from this call on, as ``head_changed`` (the
        event is taken now); cancelled once the node stopped (``stop`` ends it, and one
        asked for after raises CancelledError at once): a stopped node commits nothing
        more, so a block stream or a read of the head must not wait for one."""
        if self._waits_ended:  # stopped: no commit will come
            raise asyncio.CancelledError(self._why_stopped())
        changed = asyncio.ensure_future(self.head_changed())
        self._head_waits.add(changed)
        changed.add_done_callback(self._head_waits.discard)
        return changed

    def head_changed(self) -> Coroutine[Any, Any, Literal[True]]:
        """Completes after the next commit from this call on. Not a coroutine function: the
        event is taken now, not when the awaitable first runs. ``asyncio.wait_for`` (Python
        3.11) runs it a loop turn later, and a commit in that turn (the block carrying a
        result proof) was missed: the wait slept until its timeout on an idle cluster."""
        return self._head_changed.wait()

    # --- the loop --------------------------------------------------------------------------

    def _on_timer(self) -> None:
        self._timer = None
        self._guard("timer", self._tick)

    def _tick(self) -> None:
        self.engine.tick(self._clock())
        self._after_drain()

    def _drain(self, now: int) -> None:
        self.engine.drain(now)
        self._after_drain()

    def _loopback_soon(self) -> None:
        """The engine's loopback port: step what this node sent itself on the next loop
        turn, behind the transport's writes of what it just sent its peers (a leader's
        certificate leaves before the leader locks on it or executes the block it commits)."""
        asyncio.get_running_loop().call_soon(self._guard, "loopback", self._loopback)

    def _loopback(self) -> None:
        self.engine.step_loopback(self._clock())
        self._after_drain()

    def _send(self, dst: int, msg: Message) -> None:
        """The engine's send port: encode (once per broadcast) and hand to the transport."""
        if logging_at(logging.DEBUG):
            event("send", logging.DEBUG, dst=dst, msg=describe(msg))
        last, data = self._encoded
        if last is not msg:  # a broadcast is one object sent to each peer in a row
            data = _encode(msg)
            self._encoded = (msg, data)
        if data:
            self.send_frame(dst, data)

    def _execute(self, block: Block, cert: QuorumCert) -> tuple[bytes, bytes]:
        """The engine's execute port: apply a committed block, commit it to LMDB with its
        certificate, settle its waiters; the engine reports the roots to the replica."""
        ctx = BlockContext(block.height, block.time_ms)
        outcome = self._speculated.take(block, self.store.head().state_root)
        if outcome is None:
            outcome = apply_block(self.store, block.txs, ctx, verify=self.verify)
        else:
            self.metrics.speculation_used.inc()
        done = [tx_key(tx) for tx in block.txs] if self.store.intake_count() else []
        self.store.commit_block(
            block.hash, encode_block(block), encode_qc(cert), ctx, outcome, intake_done=done
        )
        if outcome.supplies or any(k[:1] in _PAGED_KINDS for k in outcome.records):
            self.paged_version = block.height
        self._parties_kept[block.height] = outcome.parties
        if len(self._parties_kept) > _TREES_CACHED_MAX:
            self._parties_kept.popitem(last=False)
        self.load.committed(len(block.txs), len(self.replica.mempool), self._clock())
        self.timeline.mark(block.height, Step.APPLIED)
        self._step_metrics(block.height)
        now = time.monotonic()
        m = self.metrics
        m.blocks.inc()
        m.height.set(block.height)
        self._settlement_metrics(block.txs, outcome)
        for alert in self.velocity.block(ctx.time_ms, outcome.bodies, outcome.results):
            m.velocity_alerts.labels(rule=alert.rule).inc()
        for res in outcome.results:
            if res.event:
                continue  # a pending instruction's later outcome, not a transaction
            m.transactions.labels(code=res.code.name).inc()
            # Only the recorded copy settles the id: a forged copy refused first leaves the
            # genuine one pending (ADR 0007).
            accepted = self._pending.pop(res.tx_id, None) if res.recorded else None
            if accepted is not None:
                m.commit_latency.observe(now - accepted)
        for tid, _ in outcome.recorded:
            self._resolve(tid)
        self._head_changed.set()
        self._head_changed = asyncio.Event()
        if logging_at(logging.DEBUG):
            event(
                "commit",
                logging.DEBUG,
                height=block.height,
                view=cert.view,
                txs=len(block.txs),
                root=outcome.state_root.hex()[:16],
            )
        return outcome.state_root, outcome.results_root

    def _settlement_metrics(self, txs: Sequence[bytes], outcome: BlockOutcome) -> None:
        """Pending count, settled after recycling, fails by reason (issue 14 item 5): a
        trade's recorded refusal among FAIL_CODES (a transfer short of funds is no
        settlement fail), or a pending instruction's event among FAIL_EVENT_CODES (review
        32: COSIGN_REQUIRED and TRADE_LIMIT endings too; a repo's lapse is none)."""
        m = self.metrics
        for raw, res in zip_longest(txs, outcome.results):
            if res.event and res.code is ResultCode.OK:
                m.settled_after_recycling.inc()
            elif settlement_fail(res.code, event=res.event) and (
                res.event or (res.recorded and _is_trade(raw))
            ):
                m.settlement_fails.labels(reason=res.code.name).inc()
        m.pending.set(pending_count(self.store))

    def _step_metrics(self, height: int) -> None:
        """Each step's time since the proposal, from the timeline's marks; a block this
        node did not see proposed (caught up) has no start, and a wall clock stepped back
        gives no negative time."""
        marks = self.timeline.get(height)
        if marks is None or not marks[Step.PROPOSED]:
            return
        steps = (Step.PREPARE_QC, Step.COMMIT_QC, Step.APPLIED)
        for label, step in zip(CONSENSUS_STEPS, steps, strict=True):
            if marks[step] >= marks[Step.PROPOSED]:
                elapsed_s = (marks[step] - marks[Step.PROPOSED]) / 1e6
                self.metrics.consensus_step.labels(step=label).observe(elapsed_s)

    def _speculate(self, block: Block) -> tuple[bytes, bytes]:
        """The engine's speculate port: execute a certified block on the committed state
        without committing it; its commit writes this outcome (``_execute``)."""
        ctx = BlockContext(block.height, block.time_ms)
        outcome = apply_block(self.store, block.txs, ctx, verify=self.verify)
        self._speculated.keep(block, self.store.head().state_root, outcome)
        self.metrics.speculated.inc()
        return outcome.state_root, outcome.results_root

    def _mark(self, msg: Message, at_us: int | None = None) -> None:
        """Note the first time this node sees a block's proposal or certificates."""
        if isinstance(msg, Proposal):
            self.timeline.mark(msg.block.height, Step.PROPOSED, at_us)
        elif isinstance(msg, QCMessage):
            qc = msg.qc
            step = Step.PREPARE_QC if qc.phase is Phase.PREPARE else Step.COMMIT_QC
            self.timeline.mark(qc.height, step, at_us)

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
        if r.views_timed_out != self._views_timed_out:
            # Only a timeout certificate: a prepare certificate also moves the view (before
            # the commit), which counted every view as a change before session 16.
            self.metrics.view_changes.inc(r.views_timed_out - self._views_timed_out)
            self._views_timed_out = r.views_timed_out
            event("view_change", view=r.view, height=r.committed_height)
        if r.commit_votes_relayed != self._commit_votes_relayed:
            self.metrics.commit_votes_relayed.inc(
                r.commit_votes_relayed - self._commit_votes_relayed
            )
            self._commit_votes_relayed = r.commit_votes_relayed
        gauges = (r.view, len(r.mempool), r.mempool.size_bytes)
        if gauges != self._gauges:  # perf: most messages change none of them
            self._gauges = gauges
            self.metrics.view.set(r.view)
            self.metrics.mempool.set(len(r.mempool))
            self.metrics.mempool_bytes.set(r.mempool.size_bytes)
        self._count_refused()
        if r.halted is not None and not self._halt_logged:
            self._halt_logged = True
            event(
                "halted",
                logging.ERROR,
                reason=r.halted,
                height=r.committed_height,
                applied=r.executed_height,  # the store's head: the state it diverged in
                exit_code=EXIT_DIVERGED,
            )
            self._halt()
            return
        self._arm_timer()

    def _count_refused(self) -> None:
        for (kind, reason), count in self.replica.refused.items():
            new = count - self._refused_counted.get((kind, reason), 0)
            if new:
                self.metrics.consensus_refused.labels(kind=kind, reason=reason).inc(new)
                self._refused_counted[(kind, reason)] = count

    def _arm_timer(self) -> None:
        now = self._clock()
        deadline = self.replica.deadline_ms()
        at = now + _IDLE_TICK_MS if deadline is None else min(deadline, now + _IDLE_TICK_MS)
        if self._timer is not None:
            if self._timer_at <= at:
                # It fires no later than needed, and the tick it runs arms the next: an
                # early tick does nothing the next message would not (perf: re-arming
                # after every message cost 5% of a validator's CPU at 26/16).
                return
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0, at - now) / 1000, self._on_timer)
        self._timer_at = at


def _encode(msg: Message) -> bytes:
    """The wire form, or b"" for a message over a wire limit (dropped: a peer would refuse
    it, and the protocol recovers from a lost message by timeout or catch-up)."""
    try:
        return encode_message(msg)
    except EncodeError as e:
        event("message_dropped", logging.ERROR, msg=describe(msg), error=str(e))
        return b""


class _Marks(Observer):
    """Notes in the node's timeline every proposal and certificate it sends, its loopback
    messages included (what it receives from peers is noted in ``_deliver``)."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def on_send(self, dst: int, msg: Message) -> None:
        self._node._mark(msg)


def _leaf_count(trees: _BlockTrees) -> int:
    """A result proof's tree size: 0 (the header's tx count plus the party index's root,
    ADR 0025) unless the block has pending-settlement events after its transactions
    (ADR 0014), so receipts of event-free blocks stay short."""
    size = trees.results.size
    return 0 if size == len(trees.block.txs) + 1 else size


def _is_trade(raw: bytes) -> bool:
    """Whether ``raw`` is a DvP or a pending DvP (decoded only for a short-leg refusal)."""
    try:
        return isinstance(decode_body(SignedTx.decode(raw).body), DvP | PendingDvP)
    except DecodeError:
        return False
