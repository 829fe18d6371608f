"""The consensus replica: a pure state machine (theory of operation).

Protocol: two-phase, leader-collected BFT in the HotStuff-2 / Jolteon family (see
docs/consensus.md). One block per view; leader of view v is validator v mod n.

Fresh view: the leader of v holds the commit certificate (CQC) of height h - 1 formed in
view v - 1 and proposes block h. Timeout view: it holds a timeout certificate (TC) of q
signed timeouts for v - 1; each timeout reports the sender's committed height and highest
prepare QC (its lock), and the leader re-proposes the block of the highest one, if any.

Replica: checks the proposal, persists prepare_view = v, sends a PREPARE vote to the
leader. Leader: q PREPARE votes -> prepare QC (PQC), broadcast. Replica: locks on the PQC
(persisted) and sends a COMMIT vote. Leader: q COMMIT votes -> commit certificate,
broadcast; everyone commits and moves to view v + 1.

Caller contract (etcd-io/raft style): feed ``step``/``tick``/``submit``; take ``ready()``;
persist ``to_persist`` durably, then send ``to_send``, then apply ``committed`` in order and
report each with ``executed(height, state_root, results_root)``, then call ``advance()``.

Blocks carry transactions, except one kind: after a block with transactions the next
leader proposes even with an empty mempool, because only the next block's header
certifies a block's results (ADR 0005). An idle cluster therefore stops after at most
one empty block.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from node.config import (
    BATCH_DELAY_MS,
    BLOCK_BYTES_MAX,
    BLOCK_TIME_DRIFT_MAX_MS,
    BLOCK_TXS_MAX,
    CATCHUP_BATCH_BLOCKS_MAX,
    CATCHUP_BLOCK_CHARGE_MIN_BYTES,
    CATCHUP_RESPONSE_BYTES_MAX,
    CATCHUP_RETRY_MS,
    FORWARD_LEADERS,
    HELP_LAGGING_INTERVAL_MS,
    MEMPOOL_PEER_SHARE_DIVISOR_MIN,
    PEER_SYNC_BYTES_BURST,
    PEER_SYNC_BYTES_PER_S,
    PEER_VERIFY_BURST,
    PEER_VERIFY_PER_S,
    SIGNERS_PER_TX_MAX,
    TIMEOUT_VIEWS_TRACKED_MAX,
    TX_FORWARD_BATCH_MAX,
    VIEW_TIMEOUT_BASE_MS,
    VIEW_TIMEOUT_MAX_MS,
)
from node.core.budget import Bucket
from node.core.leader import LeaderSchedule
from node.core.mempool import AddResult, Mempool, tx_key
from node.core.quorum import Quorum
from node.core.safety import SafetyState
from node.core.signing import Signer, Verifier, verify_certificate, verify_timeout_cert
from node.core.types import (
    Block,
    BlockHeader,
    Message,
    NewView,
    Phase,
    Proposal,
    QCMessage,
    QuorumCert,
    SyncRequest,
    SyncResponse,
    Timeout,
    TimeoutCert,
    TxForward,
    Vote,
    encode_qc,
    genesis_hash,
    timeout_message,
    vote_message,
)
from node.invariant import InvariantError, require

__all__ = ["BlockSource", "CoreConfig", "Ready", "Replica"]

_CANDIDATES_MAX = TIMEOUT_VIEWS_TRACKED_MAX  # blocks kept for height committed + 1
_VERIFIED_MAX = 4 * TIMEOUT_VIEWS_TRACKED_MAX  # memo of verified certificates


class BlockSource(Protocol):
    """Read-only access to committed blocks in storage (for restart and serving catch-up)."""

    def committed_height(self) -> int: ...

    def committed_block(self, height: int) -> tuple[Block, QuorumCert] | None: ...

    def committed_header(self, height: int) -> BlockHeader | None:
        """The header of a committed block alone (cheap: the leader schedule replays every
        header at start)."""
        ...

    def tx_committed(self, tx: bytes) -> bool:
        """True when a committed block already applied ``tx`` (keeps replays out of blocks)."""
        ...


@dataclass(frozen=True, slots=True)
class CoreConfig:
    chain_id: str
    quorum: Quorum
    me: int
    genesis_state_root: bytes
    view_timeout_base_ms: int = VIEW_TIMEOUT_BASE_MS
    view_timeout_max_ms: int = VIEW_TIMEOUT_MAX_MS
    batch_delay_ms: int = BATCH_DELAY_MS
    block_txs_max: int = BLOCK_TXS_MAX
    block_bytes_max: int = BLOCK_BYTES_MAX

    def __post_init__(self) -> None:
        if not (
            0 <= self.me < self.quorum.n
            and 0 < self.view_timeout_base_ms <= self.view_timeout_max_ms
            and 0 < self.block_txs_max <= BLOCK_TXS_MAX
            and 0 < self.block_bytes_max <= BLOCK_BYTES_MAX
        ):
            raise ValueError(f"invalid consensus configuration {self}")


@dataclass(frozen=True, slots=True)
class Ready:
    """Work for the caller: persist, then send, then apply committed blocks, then advance."""

    to_persist: bytes | None
    to_send: tuple[tuple[int, Message], ...]
    committed: tuple[tuple[Block, QuorumCert], ...]

    def empty(self) -> bool:
        return self.to_persist is None and not self.to_send and not self.committed


TxCheck = Callable[[bytes], bool]
"""Whether a forwarded transaction passes the checks a client's submission passes (form,
chain, signatures: the runtime's admission precheck); pure from the core's point of view."""


class _CountingVerifier:
    """The injected verifier, counting verifications so each peer is charged for its own."""

    __slots__ = ("count", "inner")

    def __init__(self, inner: Verifier) -> None:
        self.inner, self.count = inner, 0

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        self.count += 1
        return self.inner.verify(index, message, signature)


class Replica:
    def __init__(
        self,
        config: CoreConfig,
        signer: Signer,
        verifier: Verifier,
        source: BlockSource,
        *,
        executed_root: bytes,
        results_root: bytes,
        safety: bytes | None = None,
        now_ms: int = 0,
        mempool: Mempool | None = None,
        tx_check: TxCheck | None = None,
    ) -> None:
        self.cfg = config
        self.n, self.q = config.quorum.n, config.quorum.q
        self._signer, self._source = signer, source
        self._verifier = _CountingVerifier(verifier)
        self._tx_check = tx_check
        self.schedule = LeaderSchedule(self.n, config.quorum.liveness_bound)
        self._verify_budget: dict[int, Bucket] = {}
        self._sync_budget: dict[int, Bucket] = {}
        self._helped_ms: dict[int, int] = {}  # peer -> when we last answered its stale timeout
        # Messages refused without effect, by reason (a peer over budget, a forged claim...).
        self.refused: Counter[str] = Counter()
        self.safety = SafetyState() if safety is None else SafetyState.decode(safety)
        self.mempool = Mempool() if mempool is None else mempool
        self.now_ms = now_ms
        self.halted: str | None = None
        self._load_head(executed_root, results_root)
        self.view = max(self.safety.last_view, self.committed_view + 1, 0)
        self._consecutive_timeouts = 0
        self._last_commit_ms = -(10**12)  # long ago: the first transaction is proposed at once
        self._timer_start_ms: int | None = None
        self._timeout_sent_ms: int | None = None  # when this view's timeout was last sent
        self._candidates: dict[bytes, Block] = {}  # blocks for height committed + 1
        self._proposal: Proposal | None = None  # accepted proposal of the current view
        self._buffered: dict[int, Proposal] = {}  # by sender, waiting for catch-up/execution
        self._votes: dict[Phase, dict[int, bytes]] = {}
        self._timeouts: dict[int, dict[int, Timeout]] = {}
        self._last_tc: TimeoutCert | None = None
        self._sync_target = 0  # the height we catch up to (certified, or a peer's word)
        self._sync_certified = 0  # the highest height a verified certificate names
        self._sync_misses = 0  # unanswered requests since the last progress
        self._sync_sent_ms: int | None = None
        self._sync_peer = (config.me + 1) % self.n
        self._verified: dict[tuple[object, ...], bool] = {}
        # height -> (state root, results root) that a certified block says it produced
        self._expected_roots: dict[int, tuple[bytes, bytes]] = {}
        self._out: list[tuple[int, Message]] = []
        self._committed_out: list[tuple[Block, QuorumCert]] = []
        self._forward: list[bytes] = []
        # Transactions submitted here and still pending, by id: the transaction and the
        # last view whose leader has been sent it (bounded like the mempool they sit in).
        self._own: OrderedDict[bytes, tuple[bytes, int]] = OrderedDict()
        self._dirty = False
        self._in_ready = False

    # --- construction --------------------------------------------------------------------

    def _load_head(self, executed_root: bytes, results_root: bytes) -> None:
        height = self._source.committed_height()
        self.committed_height = self.executed_height = height
        self.executed_root, self.executed_results = executed_root, results_root
        if height == 0:
            self.committed_hash = genesis_hash(self.cfg.chain_id)
            self.committed_time_ms = 0
            self.committed_cert: QuorumCert | None = None
            self.committed_view = -1
            self.committed_has_txs = False
            return
        block, cert = self._stored(height)
        self._replay_schedule(height)
        self.committed_hash, self.committed_time_ms = block.hash, block.time_ms
        self.committed_cert, self.committed_view = cert, cert.view
        self.committed_has_txs = bool(block.txs)

    def _replay_schedule(self, height: int) -> None:
        """The leader schedule as every replica that committed blocks 1..height has it."""
        for h in range(1, height + 1):
            header = self._source.committed_header(h)
            if header is None:
                raise InvariantError(f"storage has no committed block {h} (head is {height})")
            self.schedule.committed(header.view, header.proposer)

    def _stored(self, height: int) -> tuple[Block, QuorumCert]:
        got = self._source.committed_block(height)
        if got is None:
            raise InvariantError(f"storage has no committed block {height} (head is above it)")
        return got

    # --- caller API ------------------------------------------------------------------------

    def leader(self, view: int) -> int:
        return self.schedule.leader(view)

    def submit(self, tx: bytes, now_ms: int | None = None) -> AddResult:
        """A client's transaction arrives at this node; it is forwarded to the next leaders."""
        self._clock(now_ms)
        result = self._admit(tx)
        if result is AddResult.ACCEPTED:
            self._forward.append(tx)
            if len(self._forward) >= TX_FORWARD_BATCH_MAX:
                self._flush_forward()
            self._after_event()
        return result

    def step(self, src: int, msg: Message, now_ms: int | None = None) -> None:
        """A message from validator ``src`` (the transport authenticates the sender).

        ``now_ms`` is the caller's clock at arrival; timers started by this message count
        from it (without it they count from the last ``tick``).
        """
        require(0 <= src < self.n, f"message from validator {src} of {self.n}")
        self._clock(now_ms)
        if isinstance(msg, SyncRequest):
            self._on_sync_request(src, msg)
            return
        if self.halted is not None:
            return
        budget = None
        if src != self.cfg.me:
            budget = self._bucket(self._verify_budget, src, PEER_VERIFY_PER_S, PEER_VERIFY_BURST)
            if not budget.available(self.now_ms):
                self.refused["peer over verification budget"] += 1
                return
        self._verifier.count = 0
        handler: Callable[[int, Message], None] = getattr(self, _HANDLERS[type(msg)])
        handler(src, msg)
        if budget is not None and self._verifier.count:
            budget.charge(self._verifier.count, self.now_ms)
        self._after_event()

    def _bucket(self, table: dict[int, Bucket], src: int, rate: int, burst: int) -> Bucket:
        bucket = table.get(src)
        if bucket is None:
            bucket = table[src] = Bucket(rate, burst, self.now_ms)
        return bucket

    def tick(self, now_ms: int) -> None:
        self._clock(now_ms)
        if self.halted is not None:
            return
        self._maybe_sync_retry()
        self._check_timer()
        self._after_event()
        self._flush_forward()

    def executed(self, height: int, state_root: bytes, results_root: bytes) -> None:
        """The caller applied committed block ``height``: the state root after it and the
        Merkle root of its results."""
        require(
            height == self.executed_height + 1 and height <= self.committed_height,
            f"executed({height}) out of order (executed {self.executed_height}, "
            f"committed {self.committed_height})",
        )
        self.executed_height = height
        self.executed_root, self.executed_results = state_root, results_root
        expected = self._expected_roots.pop(height, None)
        if expected is not None and expected != (state_root, results_root):
            self._halt(f"state or results root of height {height} differs from the certified")
            return
        self._after_event()

    def ready(self) -> Ready:
        self._flush_forward()
        out = Ready(
            to_persist=self.safety.encode() if self._dirty else None,
            to_send=tuple(self._out),
            committed=tuple(self._committed_out),
        )
        self._out, self._committed_out, self._dirty = [], [], False
        self._in_ready = True
        return out

    def advance(self) -> None:
        require(self._in_ready, "advance() without ready()")
        require(
            self.executed_height == self.committed_height or self.halted is not None,
            "advance() before every committed block was applied and reported",
        )
        self._in_ready = False

    def deadline_ms(self) -> int | None:
        """The next time ``tick`` has work to do (None: nothing until a message arrives)."""
        times: list[int] = []
        if self._timer_start_ms is not None:
            base = self._timer_start_ms if self._timeout_sent_ms is None else self._timeout_sent_ms
            times.append(base + self._timeout_ms())
        if self._sync_sent_ms is not None:
            times.append(self._sync_sent_ms + CATCHUP_RETRY_MS)
        if self._is_leader_waiting():
            times.append(self._last_commit_ms + self.cfg.batch_delay_ms)
        return min(times) if times else None

    # --- common helpers ----------------------------------------------------------------

    def _clock(self, now_ms: int | None) -> None:
        if now_ms is not None:
            self.now_ms = max(self.now_ms, now_ms)  # a clock that steps back changes nothing

    def _admit(self, tx: bytes) -> AddResult:
        # The mempool only remembers recent commits of this process; storage knows all.
        if not self.mempool.contains(tx) and self._source.tx_committed(tx):
            return AddResult.DUPLICATE
        return self.mempool.add(tx)

    def _send(self, dst: int, msg: Message) -> None:
        self._out.append((dst, msg))

    def _broadcast(self, msg: Message, *, include_self: bool = True) -> None:
        for dst in range(self.n):
            if include_self or dst != self.cfg.me:
                self._out.append((dst, msg))

    def _persist(self, **changes: object) -> None:
        self.safety = replace(self.safety, **changes)  # type: ignore[arg-type]
        self._dirty = True

    def _halt(self, reason: str) -> None:
        # Divergent execution: signing anything more could certify a wrong state.
        self.halted = reason

    def _flush_forward(self) -> None:
        """Send new client transactions to the leaders of the next FORWARD_LEADERS views,
        not to every validator: only a proposer needs a transaction before its block, and
        the others receive it in the proposal. (A timeout re-gossips to all, so a view
        change cannot strand one.) Except after idleness (nothing else pending here): then
        every validator gets it, so all start their view timers together and a dead leader
        costs one timeout, not two (the others would learn of the work from the first
        timeouts only)."""
        if not self._forward:
            return
        txs, self._forward = self._forward, []
        last = self.view + FORWARD_LEADERS - 1
        for tx in txs:
            self._own[tx_key(tx)] = (tx, last)
        while len(self._own) > self.mempool.txs_max:
            self._own.popitem(last=False)
        if len(self.mempool) <= len(txs):
            self._forward_to(self.view, self.view + self.n - 1, tuple(txs))
        else:
            self._forward_to(self.view, last, tuple(txs))

    def _forward_to(self, first_view: int, last_view: int, txs: tuple[bytes, ...]) -> None:
        leaders = {self.leader(v) for v in range(first_view, last_view + 1)} - {self.cfg.me}
        for i in range(0, len(txs), TX_FORWARD_BATCH_MAX):
            msg = TxForward(txs[i : i + TX_FORWARD_BATCH_MAX])
            for dst in sorted(leaders):
                self._send(dst, msg)

    def _reforward_own(self) -> None:
        """After a commit: this node's transactions still pending whose leaders have all had
        their turn go to the next leaders."""
        last = self.view + FORWARD_LEADERS - 1
        due: list[bytes] = []
        for key, (tx, upto) in list(self._own.items()):
            if not self.mempool.contains_key(key):
                del self._own[key]  # committed (or dropped)
            elif upto < self.view:
                self._own[key] = (tx, last)
                due.append(tx)
        if due:
            self._forward_to(self.view, last, tuple(due))

    def _timeout_ms(self) -> int:
        """The base timeout for the first n - q views without a commit (as many leaders
        may be down, each costing one view), then doubling: one dead leader after another
        must not cost ever longer timeouts, and under asynchrony the timeout still grows
        until a view fits in it."""
        exp = min(max(0, self._consecutive_timeouts - self.cfg.quorum.liveness_bound), 30)
        return min(self.cfg.view_timeout_base_ms << exp, self.cfg.view_timeout_max_ms)

    def _verify_qc(self, qc: QuorumCert, phase: Phase) -> bool:
        key = _qc_key(qc)
        ok = self._verified.get(key)
        if ok is None:
            ok = verify_certificate(qc, self.cfg.chain_id, self.n, self.q, self._verifier)
            self._remember_verified(key, ok)
        return ok and qc.phase == phase

    def _remember_verified(self, key: tuple[object, ...], ok: bool) -> None:
        # The same certificate arrives many times (proposals, timeouts, QC broadcasts).
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.pop(next(iter(self._verified)))
        self._verified[key] = ok

    def _enter_view(self, view: int) -> None:
        if view <= self.view:
            return
        self.view = view
        self._proposal = None
        self._votes = {}
        self._timer_start_ms = None
        self._timeout_sent_ms = None
        for old in [v for v in self._timeouts if v < view]:
            del self._timeouts[old]

    def _after_event(self) -> None:
        if self.halted is not None:
            return
        self._retry_buffered()
        self._maybe_propose()
        self._update_timer()

    # --- commit and catch-up -------------------------------------------------------------

    def _remember_block(self, block: Block) -> None:
        if block.height != self.committed_height + 1:
            return
        if len(self._candidates) >= _CANDIDATES_MAX and block.hash not in self._candidates:
            self._candidates.pop(next(iter(self._candidates)))
        self._candidates[block.hash] = block

    def _learn_commit(self, src: int, cert: QuorumCert) -> None:
        """A verified commit certificate: commit now if we hold the block, else catch up."""
        same_block = cert.height == self.committed_height and cert.block_hash == self.committed_hash
        if same_block and cert.view > self.committed_view:
            # Same block, later view: carry this one so our next proposal is "fresh".
            self.committed_cert, self.committed_view = cert, cert.view
        self._enter_view(cert.view + 1)
        if cert.height == self.committed_height + 1:
            block = self._candidates.get(cert.block_hash)
            if block is not None:
                self._commit(block, cert)
                return
        if cert.height > self.committed_height:
            self._want_sync(src, cert.height)

    def _commit(self, block: Block, cert: QuorumCert) -> None:
        require(
            block.height == self.committed_height + 1
            and block.hash == cert.block_hash
            and block.parent_hash == self.committed_hash,
            f"block {block.height} committed out of order or not extending ours",
        )
        self.schedule.committed(block.view, block.proposer)
        self.committed_height, self.committed_hash = block.height, block.hash
        self.committed_time_ms, self.committed_cert = block.time_ms, cert
        self.committed_view = cert.view  # the certificate our proposals will carry
        self.committed_has_txs = bool(block.txs)
        self._committed_out.append((block, cert))
        self.mempool.remove_committed(block.txs)
        self._candidates = {}
        self._consecutive_timeouts = 0
        self._last_commit_ms = self.now_ms
        self._timer_start_ms = None
        self._timeout_sent_ms = None
        self._record_expected_root(block)
        self._enter_view(cert.view + 1)
        self._reforward_own()
        if self._sync_target <= self.committed_height:
            self._sync_sent_ms = None

    def _record_expected_root(self, block: Block) -> None:
        # Block h carries the roots of executing h - 1; q validators certified them.
        roots = (block.state_root, block.results_root)
        if block.executed_height > self.executed_height:
            self._expected_roots[block.executed_height] = roots
        elif roots != self._executed_roots():
            require(block.executed_height == self.executed_height, "roots of a skipped height")
            self._halt(f"roots of height {block.executed_height} differ from the certified")

    def _executed_roots(self) -> tuple[bytes, bytes]:
        return self.executed_root, self.executed_results

    def _has_work(self) -> bool:
        """Pending transactions, or a last block whose results no block certifies yet."""
        return len(self.mempool) > 0 or self.committed_has_txs

    def peer_height(self, src: int, height: int) -> None:
        """A peer's unproven word (its hello) that it holds blocks up to ``height``: catch
        up as for a certified height, but a word only lasts one round of unanswered
        requests to every peer (a liar costs n - 1 small requests, once)."""
        if src == self.cfg.me or height <= max(self.committed_height, self._sync_target):
            return
        self._sync_target = height
        self._sync_peer = src
        self._sync_misses = 0
        if self._sync_sent_ms is None:
            self._send_sync()

    def _want_sync(self, src: int, height: int) -> None:
        self._sync_certified = max(self._sync_certified, height)
        self._sync_target = max(self._sync_target, height)
        if src != self.cfg.me:
            self._sync_peer = src
        if self._sync_sent_ms is None:
            self._send_sync()

    def _send_sync(self) -> None:
        count = min(self._sync_target - self.committed_height, CATCHUP_BATCH_BLOCKS_MAX)
        if count <= 0:
            self._sync_sent_ms = None
            return
        self._send(self._sync_peer, SyncRequest(self.committed_height + 1, count))
        self._sync_sent_ms = self.now_ms

    def _maybe_sync_retry(self) -> None:
        if self._sync_sent_ms is None or self.now_ms < self._sync_sent_ms + CATCHUP_RETRY_MS:
            return
        # The peer did not answer (nothing to give, or over its budget for us): ask the
        # next one, round-robin, never ourselves; a peer's unproven word lasts one round.
        self._sync_misses += 1
        if self._sync_misses >= self.n - 1 and self._sync_target > self._sync_certified:
            self._sync_target = self._sync_certified
            if self._sync_target <= self.committed_height:
                self._sync_sent_ms = None
                return
        self._sync_peer = (self._sync_peer + 1) % self.n
        if self._sync_peer == self.cfg.me:
            self._sync_peer = (self._sync_peer + 1) % self.n
        self._send_sync()

    def _on_sync_request(self, src: int, msg: SyncRequest) -> None:
        """Serve committed blocks, at most the peer's catch-up budget in bytes."""
        budget = self._bucket(self._sync_budget, src, PEER_SYNC_BYTES_PER_S, PEER_SYNC_BYTES_BURST)
        if src != self.cfg.me and not budget.available(self.now_ms):
            self.refused["peer over catch-up budget"] += 1
            return
        blocks: list[tuple[Block, QuorumCert]] = []
        count = min(msg.count, CATCHUP_BATCH_BLOCKS_MAX)
        size = charge = 0
        for height in range(max(msg.from_height, 1), msg.from_height + count):
            got = self._source.committed_block(height)
            if got is None:
                break
            # One response must fit one wire message; the first block always does.
            block_bytes = _wire_size_bound(*got)
            size += block_bytes
            if blocks and size > CATCHUP_RESPONSE_BYTES_MAX:
                break
            blocks.append(got)
            charge += max(block_bytes, CATCHUP_BLOCK_CHARGE_MIN_BYTES)
        budget.charge(max(charge, CATCHUP_BLOCK_CHARGE_MIN_BYTES), self.now_ms)
        if blocks:
            self._send(src, SyncResponse(tuple(blocks)))

    def _on_sync_response(self, src: int, msg: SyncResponse) -> None:
        start = self.committed_height
        for block, cert in msg.blocks[:CATCHUP_BATCH_BLOCKS_MAX]:
            if block.height != self.committed_height + 1:
                continue
            if block.parent_hash != self.committed_hash or cert.block_hash != block.hash:
                return
            if cert.height != block.height or not self._verify_qc(cert, Phase.COMMIT):
                return
            if block.chain_id != self.cfg.chain_id:
                return
            self._commit(block, cert)
            if self.halted is not None:
                return
        if self.committed_height > start:
            self._sync_misses = 0
        if self._sync_target > self.committed_height:
            self._send_sync()
            return
        self._sync_sent_ms = None
        if self.committed_height > start:
            # An answer that moved us on: the peer may hold more (a restarted node asks on
            # the peer's word in its hello, with no certificate naming a target). Any
            # progress counts, not only a full answer: every hello starts a chain, and
            # chains that overlap move us on by part of an answer each. One more request,
            # not retried: an empty or missing answer ends the chain.
            self._send(src, SyncRequest(self.committed_height + 1, CATCHUP_BATCH_BLOCKS_MAX))

    # --- proposals -------------------------------------------------------------------------

    def _is_leader_waiting(self) -> bool:
        return (
            self.leader(self.view) == self.cfg.me
            and self.safety.proposed_view < self.view
            and self._has_work()
            and self._justified_fresh()
        )

    def _justified_fresh(self) -> bool:
        if self.committed_height == 0:
            return self.view == 0
        return self.committed_view == self.view - 1

    def _maybe_propose(self) -> None:
        if self.leader(self.view) != self.cfg.me or self.safety.proposed_view >= self.view:
            return
        if self.executed_height != self.committed_height or self.view <= self.safety.timeout_view:
            return
        if self._justified_fresh():
            self._propose_fresh()
        elif self._last_tc is not None and self._last_tc.view == self.view - 1:
            self._propose_after_timeout(self._last_tc)

    def _propose_fresh(self) -> None:
        if not self._has_work():
            return  # no load, no blocks
        full = len(self.mempool) >= self.cfg.block_txs_max or (
            self.mempool.size_bytes >= self.cfg.block_bytes_max
        )
        if not full and self.now_ms < self._last_commit_ms + self.cfg.batch_delay_ms:
            return  # under load: let the next block fill for a moment
        self._propose(self._new_block(), None)

    def _propose_after_timeout(self, tc: TimeoutCert) -> None:
        top = tc.top_height
        if top > self.committed_height:
            return  # we must catch up before we can extend the highest commit
        lock = tc.high_lock
        if top < self.committed_height or lock is None:
            if self._has_work():
                self._propose(self._new_block(), tc)
            return
        block = self._block_of(lock)
        if block is not None:
            self._propose(block, tc)  # the Jolteon rule: re-propose the highest lock
        # else: the TC reached us without the locked block; the next view will do

    def _block_of(self, qc: QuorumCert) -> Block | None:
        """The block a prepare QC for height committed + 1 certifies, if we hold it."""
        block = self._candidates.get(qc.block_hash)
        held = self.safety.high_pqc_block
        if block is None and held is not None and held.hash == qc.block_hash:
            block = held
        return block

    def _new_block(self) -> Block:
        txs = self.mempool.batch(self.cfg.block_txs_max, self.cfg.block_bytes_max)
        require(bool(txs) or self.committed_has_txs, "an empty block only certifies a parent's")
        return Block(
            chain_id=self.cfg.chain_id,
            height=self.committed_height + 1,
            view=self.view,
            parent_hash=self.committed_hash,
            proposer=self.cfg.me,
            time_ms=max(self.now_ms, self.committed_time_ms + 1),
            executed_height=self.committed_height,
            state_root=self.executed_root,
            results_root=self.executed_results,
            txs=tuple(txs),
        )

    def _propose(self, block: Block, tc: TimeoutCert | None) -> None:
        self._persist(proposed_view=self.view)
        self._votes = {Phase.PREPARE: {}, Phase.COMMIT: {}}
        proposal = Proposal(self.view, block, self.committed_cert, tc)
        self._proposal = proposal  # votes may arrive before our own copy of the proposal
        self._broadcast(proposal)

    def _on_proposal(self, src: int, p: Proposal) -> None:
        if p.view < self.view or p.block.chain_id != self.cfg.chain_id:
            return
        # Certificates prove themselves whoever carries them (the sender's budget pays for
        # checking them); who leads the view is decided once we stand at the parent.
        if not self._absorb_proposal_certs(src, p):
            self.refused["proposal with an invalid certificate"] += 1
            return
        if p.view != self.view:
            return
        if (
            p.block.height > self.committed_height + 1
            or self.executed_height < self.committed_height
        ):
            self._buffered[src] = p  # one per sender; retried after catch-up / execution
            return
        if p.block.height == self.committed_height + 1:
            self._consider(src, p)

    def _absorb_proposal_certs(self, src: int, p: Proposal) -> bool:
        parent = p.parent_cert
        if p.block.height > 1:
            if parent is None or parent.height != p.block.height - 1:
                return False
            if parent.block_hash != p.block.parent_hash or not self._verify_qc(
                parent, Phase.COMMIT
            ):
                return False
            self._learn_commit(src, parent)
        if p.tc is not None:
            if p.tc.view != p.view - 1 or not self._verify_tc(p.tc):
                return False
            self._accept_tc(p.tc)
        return True

    def _retry_buffered(self) -> None:
        if not self._buffered or self.executed_height < self.committed_height:
            return
        for src, p in list(self._buffered.items()):
            if p.view < self.view or p.block.height <= self.committed_height:
                del self._buffered[src]
            elif p.block.height == self.committed_height + 1 and p.view == self.view:
                del self._buffered[src]
                self._consider(src, p)

    def _consider(self, src: int, p: Proposal) -> None:
        """Vote PREPARE for a proposal at height committed + 1 in the current view, if valid."""
        block = p.block
        require(
            block.height == self.committed_height + 1 and p.view == self.view,
            "considering a proposal not for the next height in this view",
        )
        if p.view <= max(self.safety.prepare_view, self.safety.timeout_view):
            return  # already voted (or gave up) in this view: never vote twice
        if src != self.leader(p.view):
            self.refused["proposal from a validator that does not lead the view"] += 1
            return
        if block.parent_hash == self.committed_hash:
            # Kept even if we refuse to vote: a certificate on it may prove *we* are wrong.
            self._remember_block(block)
        if not self._block_valid(block, src, p) or not self._justified(p):
            self.refused["proposal breaks a voting rule"] += 1
            return
        self._proposal = p
        self._persist(prepare_view=p.view)
        self._send_vote(Phase.PREPARE, p.view, block)

    def _block_valid(self, block: Block, src: int, p: Proposal) -> bool:
        if block.parent_hash != self.committed_hash or block.time_ms <= self.committed_time_ms:
            return False
        if block.time_ms > self.now_ms + BLOCK_TIME_DRIFT_MAX_MS:
            return False  # a leader must not move settlement deadlines by its clock alone
        lock = p.tc.high_lock if p.tc is not None else None
        if lock is None or lock.block_hash != block.hash:
            # A fresh block: made in this view by its leader, timed by a clock near ours, so
            # a Byzantine leader cannot backdate it to run trades past expiry or deadline.
            # (A re-proposed locked block keeps its view and time: q voters, one of them
            # honest, checked both when it was fresh.)
            if block.view != p.view or block.proposer != src:
                return False
            if block.time_ms < self.now_ms - BLOCK_TIME_DRIFT_MAX_MS:
                return False
        if len(block.txs) > self.cfg.block_txs_max:
            return False
        if not block.txs and not self.committed_has_txs:
            return False  # empty blocks only follow blocks with transactions
        if block.payload_bytes > self.cfg.block_bytes_max:
            return False
        if len({tx_key(tx) for tx in block.txs}) != len(block.txs):
            return False
        # Our own roots differ from the proposer's: refuse to vote (who diverged is decided
        # by a certificate: a QC on this block means we did, see _record_expected_root).
        return (block.state_root, block.results_root) == self._executed_roots()

    def _justified(self, p: Proposal) -> bool:
        if p.tc is None:
            fresh = p.parent_cert.view if p.parent_cert is not None else -1
            if fresh != p.view - 1:
                return False
            lock = self.safety.high_pqc
            # Cannot happen within the safety bound; refusing keeps the lock rule literal.
            return lock is None or lock.height != p.block.height or lock.block_hash == p.block.hash
        return self._tc_allows(p.tc, p)

    def _tc_allows(self, tc: TimeoutCert, p: Proposal) -> bool:
        """Jolteon rule: extend the highest commit and the highest lock reported in the TC
        (both proven by the TC itself: ``_verify_tc`` checked them)."""
        top = tc.top_height
        if p.block.height < top + 1:
            return False
        if p.block.height > top + 1 or tc.high_lock is None:
            return True
        return tc.high_lock.block_hash == p.block.hash

    # --- votes and certificates ----------------------------------------------------------

    def _send_vote(self, phase: Phase, view: int, block: Block) -> None:
        msg = vote_message(self.cfg.chain_id, phase, view, block.height, block.hash)
        sig = self._signer.sign(msg)
        self._send(self.leader(view), Vote(phase, view, block.height, block.hash, self.cfg.me, sig))

    def _on_vote(self, src: int, v: Vote) -> None:
        if v.view != self.view or self.leader(v.view) != self.cfg.me or v.voter != src:
            return
        p = self._proposal
        if p is None or v.block_hash != p.block.hash or v.height != p.block.height:
            return
        tally = self._votes.get(v.phase)
        if tally is None or v.voter in tally or len(tally) >= self.q:
            return
        msg = vote_message(self.cfg.chain_id, v.phase, v.view, v.height, v.block_hash)
        if not self._verifier.verify(v.voter, msg, v.signature):
            return
        tally[v.voter] = v.signature
        if len(tally) == self.q:
            qc = QuorumCert(v.phase, v.view, v.height, v.block_hash, tuple(sorted(tally.items())))
            # Made of votes verified one by one above: our own copy need not be checked again.
            self._remember_verified(_qc_key(qc), True)
            self._broadcast(QCMessage(qc))

    def _on_qc(self, src: int, m: QCMessage) -> None:
        qc = m.qc
        if qc.phase == Phase.COMMIT:
            # A newer height, or a later view's certificate for a height we hold (the same
            # block certified again after a view change): both move us forward.
            useful = qc.height > self.committed_height or qc.view >= self.view
            if useful and self._verify_qc(qc, Phase.COMMIT):
                self._learn_commit(src, qc)
            return
        if qc.height > self.committed_height + 1:
            if self._verify_qc(qc, Phase.PREPARE):
                self._want_sync(src, qc.height - 1)
            return
        if qc.height != self.committed_height + 1 or not self._verify_qc(qc, Phase.PREPARE):
            return
        block = self._candidates.get(qc.block_hash)
        if block is None:
            return
        self._lock(qc, block)
        if self.halted is None:
            self._maybe_commit_vote(qc, block)

    def _lock(self, qc: QuorumCert, block: Block) -> None:
        roots = (block.state_root, block.results_root)
        if self.executed_height == block.executed_height and roots != self._executed_roots():
            self._halt(f"q validators certified other roots at {block.executed_height}")
            return
        lock = self.safety.high_pqc
        if lock is None or lock.height < qc.height or lock.view < qc.view:
            self._persist(high_pqc=qc, high_pqc_block=block)

    def _maybe_commit_vote(self, qc: QuorumCert, block: Block) -> None:
        if qc.view != self.view or qc.view <= max(
            self.safety.commit_view, self.safety.timeout_view
        ):
            return
        self._persist(commit_view=qc.view)
        self._send_vote(Phase.COMMIT, qc.view, block)

    # --- view change ---------------------------------------------------------------------

    def _timer_active(self) -> bool:
        lock = self.safety.high_pqc
        return (
            self._has_work()
            or self._proposal is not None
            or (lock is not None and lock.height == self.committed_height + 1)
        )

    def _update_timer(self) -> None:
        if not self._timer_active():
            self._timer_start_ms = None
            self._timeout_sent_ms = None
        elif self._timer_start_ms is None:
            self._timer_start_ms = self.now_ms

    def _check_timer(self) -> None:
        if self._timer_start_ms is None:
            return
        base = self._timer_start_ms if self._timeout_sent_ms is None else self._timeout_sent_ms
        if self.now_ms >= base + self._timeout_ms():
            if self._timeout_sent_ms is None:
                self._consecutive_timeouts += 1
            self._send_timeout(self.view)

    def _send_timeout(self, view: int) -> None:
        """Give up on ``view`` (persisted first) and tell everyone, with our lock."""
        require(view == self.view, "timeout for a view we are not in")
        if self.safety.timeout_view < view:
            self._persist(timeout_view=view)
        lock, block = self.safety.high_pqc, self.safety.high_pqc_block
        if lock is None or lock.height != self.committed_height + 1:
            lock, block = None, None
        pqc_view = None if lock is None else lock.view
        sig = self._signer.sign(
            timeout_message(self.cfg.chain_id, view, self.committed_height, pqc_view)
        )
        self._broadcast(
            Timeout(view, self.committed_height, self.committed_cert, lock, block, self.cfg.me, sig)
        )
        self._timeout_sent_ms = self.now_ms
        if self._timer_start_ms is None:
            self._timer_start_ms = self.now_ms
        # Re-gossip what we hold so a new leader (and idle peers) learn of pending work.
        pending = self.mempool.oldest(TX_FORWARD_BATCH_MAX)
        if pending:
            self._broadcast(TxForward(tuple(pending)), include_self=False)

    def _timeout_valid(self, src: int, t: Timeout) -> bool:
        """Signed by its sender, and every claim in it proven: the committed height by a
        commit certificate, the lock by a prepare QC for the next height and its block."""
        if t.voter != src:
            return False
        if (t.high_pqc is None) != (t.pqc_block is None):
            return False
        if (t.commit_cert is None) != (t.committed_height == 0):
            return False
        pqc_view = None if t.high_pqc is None else t.high_pqc.view
        msg = timeout_message(self.cfg.chain_id, t.view, t.committed_height, pqc_view)
        if not self._verifier.verify(t.voter, msg, t.signature):
            return False
        if t.commit_cert is not None and (
            t.commit_cert.height != t.committed_height
            or not self._verify_qc(t.commit_cert, Phase.COMMIT)
        ):
            return False
        if t.high_pqc is not None and t.pqc_block is not None:
            ok = (
                t.high_pqc.height == t.committed_height + 1
                and t.pqc_block.hash == t.high_pqc.block_hash
                and t.pqc_block.chain_id == self.cfg.chain_id
                and self._verify_qc(t.high_pqc, Phase.PREPARE)
            )
            if not ok:
                return False
        return True

    def _on_timeout(self, src: int, t: Timeout) -> None:
        if t.view < self.view:
            self._help_lagging(src, t)
            return
        if t.view >= self.view + TIMEOUT_VIEWS_TRACKED_MAX:
            # Too far ahead to matter yet (and the cheap kind to flood); a lagging replica
            # catches up by the certificates its own timeouts are answered with.
            self.refused["timeout for a view too far ahead"] += 1
            return
        bucket = self._timeouts.setdefault(t.view, {})
        if bucket.get(t.voter) == t:
            return  # a re-send: nothing new to check
        if not self._timeout_valid(src, t):
            self.refused["timeout with an unproven claim or a bad signature"] += 1
            return
        if t.pqc_block is not None:
            self._remember_block(t.pqc_block)  # a next leader may have to re-propose it
        if t.committed_height > self.committed_height:
            self._want_sync(src, t.committed_height)
        bucket[t.voter] = t
        if len(bucket) > self.cfg.quorum.safety_bound and self.safety.timeout_view < t.view:
            # f_safe + 1 timeouts include an honest one: join so the view change completes.
            self._enter_view(t.view)
            if self.view == t.view:
                self._send_timeout(t.view)
        if len(bucket) >= self.q:
            self._form_tc(t.view, bucket)

    def _help_lagging(self, src: int, t: Timeout) -> None:
        """A peer times out of a view we have left: send what moved us on (at most once per
        interval per peer: replayed stale timeouts must not make us a traffic amplifier)."""
        last = self._helped_ms.get(src)
        if last is not None and self.now_ms < last + HELP_LAGGING_INTERVAL_MS:
            return
        self._helped_ms[src] = self.now_ms
        cert = self.committed_cert
        if cert is not None and (t.committed_height < cert.height or cert.view >= t.view):
            self._send(src, QCMessage(cert))
        if self._last_tc is not None and self._last_tc.view >= t.view:
            self._send(src, NewView(self._last_tc))

    def _form_tc(self, view: int, bucket: dict[int, Timeout]) -> None:
        """q verified timeouts, with the proofs of their highest claims (from the timeouts
        that made them, so anyone can check the certificate alone)."""
        chosen = [bucket[i] for i in sorted(bucket)[: self.q]]
        top = max(t.committed_height for t in chosen)
        at_top = [t for t in chosen if t.committed_height == top]
        locks = [t.high_pqc for t in at_top if t.high_pqc is not None]
        tc = TimeoutCert(
            view,
            tuple(t.entry() for t in chosen),
            at_top[0].commit_cert,
            max(locks, key=lambda qc: qc.view, default=None),
        )
        self._remember_verified(("tc", tc), True)  # made of timeouts verified one by one
        self._accept_tc(tc)

    def _verify_tc(self, tc: TimeoutCert) -> bool:
        key: tuple[object, ...] = ("tc", tc)
        ok = self._verified.get(key)
        if ok is None:
            ok = verify_timeout_cert(tc, self.cfg.chain_id, self.n, self.q, self._verifier)
            self._remember_verified(key, ok)
        return ok

    def _accept_tc(self, tc: TimeoutCert) -> None:
        if self._last_tc is None or tc.view > self._last_tc.view:
            self._last_tc = tc
        if tc.view + 1 > self.view:
            self._enter_view(tc.view + 1)

    def _on_new_view(self, src: int, m: NewView) -> None:
        if m.tc.view >= self.view and self._verify_tc(m.tc):
            self._accept_tc(m.tc)

    def _on_tx_forward(self, src: int, m: TxForward) -> None:
        """A peer's transactions pass the checks a client's do (the runtime's precheck) and
        fill at most the peer's share of the mempool; checking them is charged to the peer,
        and the batch stops where its budget runs out."""
        share = self._peer_share()
        budget = self._verify_budget.get(src)
        for tx in m.txs[:TX_FORWARD_BATCH_MAX]:
            # Already held or already committed: nothing to check (a timeout re-gossips a
            # node's whole backlog, mostly settled by the time a paused node resumes).
            if self.mempool.known(tx) or self._source.tx_committed(tx):
                continue
            if self.mempool.share_full(src, share):
                self.refused["forward beyond the peer's mempool share"] += 1
                return
            if budget is not None and not budget.available(self.now_ms):
                self.refused["peer over verification budget"] += 1
                return
            if self._tx_check is not None:
                if budget is not None:
                    budget.charge(SIGNERS_PER_TX_MAX, self.now_ms)
                if not self._tx_check(tx):
                    self.refused["forwarded transaction fails admission checks"] += 1
                    continue
            self.mempool.add(tx, origin=src, share_max=share)

    def _peer_share(self) -> int:
        return self.mempool.txs_max // max(MEMPOOL_PEER_SHARE_DIVISOR_MIN, self.n - 1)


def _qc_key(qc: QuorumCert) -> tuple[object, ...]:
    return (qc.phase, qc.view, qc.height, qc.block_hash, qc.signatures)


def _wire_size_bound(block: Block, cert: QuorumCert) -> int:
    """An upper bound on a committed block's share of a SyncResponse (block and certificate,
    as they are: a bound for the largest possible certificate charged a peer's catch-up
    budget 134 KB per block at 16 of 26, and starved a restarted node 96 blocks in)."""
    framing = 16  # block blob and header lengths, certificate blob length, message share
    return (
        len(block.header)
        + block.payload_bytes
        + 4 * len(block.txs)
        + framing
        + len(encode_qc(cert))
    )


_HANDLERS: dict[type, str] = {
    Proposal: "_on_proposal",
    Vote: "_on_vote",
    QCMessage: "_on_qc",
    Timeout: "_on_timeout",
    NewView: "_on_new_view",
    TxForward: "_on_tx_forward",
    SyncResponse: "_on_sync_response",
}
