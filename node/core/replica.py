"""The consensus replica: a pure state machine (theory of operation).

Protocol: two-phase, leader-collected BFT in the HotStuff-2 / Jolteon family (see
docs/consensus.md). One block per view; the leader schedule is ``node.core.leader``.

Fresh view: the leader of v holds the commit certificate (CQC) of height h - 1 formed in
view v - 1 and proposes block h. Pipelined (ADR 0012): it holds the prepare QC (PQC) of
block h formed in view v - 1, has committed h - 1 and executed block h speculatively, and
proposes block h + 1 on it; the commit round of h runs beside the prepare round of h + 1.

Timeout view: it holds a timeout certificate (TC) of q signed timeouts for v - 1; each
timeout reports the sender's committed height and highest prepare QC (its lock), and the
leader re-proposes the block of the highest one, if any.

Replica: checks the proposal, persists prepare_view = v, sends a PREPARE vote to the
leader. Leader: q PREPARE votes -> prepare QC (PQC), broadcast. Replica: locks on the PQC
(persisted) and sends a COMMIT vote. Leader: q COMMIT votes -> commit certificate,
broadcast; everyone commits and moves to view v + 1 (a PQC of view v moves it there too).
Locks and commit votes stay at height committed + 1: a PQC for committed + 2 is kept and
acted on once committed + 1 commits, so blocks commit in height order.

Caller contract (etcd-io/raft style): feed ``step``/``tick``/``submit``; take ``ready()``;
persist ``to_persist`` durably, then send ``to_send``, then apply ``committed`` in order and
report each with ``executed(height, state_root, results_root)``, then execute each block
of ``speculate`` against the committed state without committing it and report its roots
with ``speculated(block_hash, state_root, results_root)``, then call ``advance()``.

Blocks carry transactions, except one kind: after a block with transactions the next
leader proposes even with an empty mempool, because only the next block's header
certifies a block's results (ADR 0005). An idle cluster therefore stops after at most
one empty block.

Modules, one concern each; this one is the coordinator and holds the safety rules (what
to vote for, lock, commit, and when to give up a view):

- ``node.core.votes``: checking certificates (with a memo), the leader's vote tally,
  timeout checks and timeout certificates;
- ``node.core.pacemaker``: the timers, each a named deadline (``Timer``);
- ``node.core.catchup``: whom to ask for missing blocks and when; serving peers' requests;
- ``node.core.dissemination``: the mempool and who is sent which transaction;
- ``node.core.refusal``: why a message was dropped, the closed set of (kind, reason)
  counted in ``Replica.refused``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import assert_never

from node.config import (
    BATCH_DELAY_MS,
    BLOCK_BYTES_MAX,
    BLOCK_TIME_DRIFT_MAX_MS,
    BLOCK_TXS_MAX,
    CATCHUP_BATCH_BLOCKS_MAX,
    CATCHUP_RETRY_MS,
    COMMIT_RELAY_FACTOR,
    COMMIT_RELAY_FLOOR_MS,
    PEER_BYTES_BURST,
    PEER_BYTES_PER_S,
    PEER_ITEM_CHARGE_BYTES,
    PEER_MESSAGE_CHARGE_MIN_BYTES,
    PEER_SYNC_BYTES_BURST,
    PEER_SYNC_BYTES_PER_S,
    PEER_VERIFY_BURST,
    PEER_VERIFY_PER_S,
    TIMEOUT_VIEWS_TRACKED_MAX,
    VIEW_PROGRESS_FACTOR,
    VIEW_PROGRESS_FLOOR_MS,
    VIEW_TIMEOUT_BASE_MS,
    VIEW_TIMEOUT_MAX_MS,
)
from node.core.budget import Bucket
from node.core.catchup import BlockSource, CatchUp, serve_sync
from node.core.codec import decoded_items
from node.core.dissemination import Dissemination, TxCheck
from node.core.leader import LeaderSchedule
from node.core.mempool import AddResult, Mempool, tx_key
from node.core.pacemaker import Pacemaker, Timer
from node.core.quorum import Quorum
from node.core.refusal import Kind, Reason, Refusal
from node.core.safety import SafetyOwner, SafetyState
from node.core.signing import Signer, Verifier
from node.core.types import (
    Block,
    DecodeError,
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
    genesis_hash,
    timeout_message,
    vote_message,
)
from node.core.votes import Certificates, VoteCollector, form_tc, timeout_problem
from node.invariant import InvariantError, require

__all__ = ["BlockSource", "CoreConfig", "Ready", "Replica", "TxCheck"]

_CANDIDATES_MAX = TIMEOUT_VIEWS_TRACKED_MAX  # blocks kept for height committed + 1
_VERIFIED_MAX = 4 * TIMEOUT_VIEWS_TRACKED_MAX  # memo of verified certificates

# The kind each message is counted under when it is refused before its handler runs.
_KIND: dict[type, Kind] = {
    Proposal: Kind.PROPOSAL,
    Vote: Kind.VOTE,
    QCMessage: Kind.QC,
    Timeout: Kind.TIMEOUT,
    NewView: Kind.NEW_VIEW,
    TxForward: Kind.TX_FORWARD,
    SyncRequest: Kind.SYNC_REQUEST,
    SyncResponse: Kind.SYNC_RESPONSE,
}


def _view_of(parent_cert: QuorumCert | None) -> int:
    """The parent view a fresh block on this certificate names (block 1 has none: 0)."""
    return 0 if parent_cert is None else parent_cert.view


@dataclass(frozen=True, slots=True)
class CoreConfig:
    chain_id: str
    quorum: Quorum
    me: int
    genesis_state_root: bytes
    view_timeout_base_ms: int = VIEW_TIMEOUT_BASE_MS
    view_timeout_max_ms: int = VIEW_TIMEOUT_MAX_MS
    view_progress_factor: int = VIEW_PROGRESS_FACTOR  # 0: no progress deadline (a control)
    view_progress_floor_ms: int = VIEW_PROGRESS_FLOOR_MS
    commit_relay_factor: int = COMMIT_RELAY_FACTOR  # 0: no commit-vote relay (a control)
    commit_relay_floor_ms: int = COMMIT_RELAY_FLOOR_MS
    batch_delay_ms: int = BATCH_DELAY_MS
    block_txs_max: int = BLOCK_TXS_MAX
    block_bytes_max: int = BLOCK_BYTES_MAX
    # The results root execution gives a block with no transaction and no event: a parent
    # whose results root differs has events to certify, and a block is due on it (an
    # events-only block is certified by the next one, as a block with transactions is;
    # ADR 0026). None: only transactions make a block due (an execution with no events).
    quiet_results_root: bytes | None = None

    def __post_init__(self) -> None:
        if not (
            0 <= self.me < self.quorum.n
            and 0 < self.view_timeout_base_ms <= self.view_timeout_max_ms
            and self.view_progress_factor >= 0
            and self.view_progress_floor_ms > 0
            and self.commit_relay_factor >= 0
            and self.commit_relay_floor_ms > 0
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
    # Certified blocks at committed + 1 to execute without committing (after ``committed``).
    speculate: tuple[Block, ...] = ()

    def empty(self) -> bool:
        return (
            self.to_persist is None
            and not self.to_send
            and not self.committed
            and not self.speculate
        )


@dataclass(frozen=True, slots=True)
class _Parent:
    """What a new block at ``height + 1`` extends: the committed head, or (pipelined) the
    certified block above it, with the roots after it (speculative for the latter)."""

    hash: bytes
    height: int
    time_ms: int
    certify: bool  # its results need a block after it: it has transactions or events
    skip: frozenset[bytes]  # keys of its transactions still pending here (none: committed)
    roots: tuple[bytes, bytes]


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
        self._certs = Certificates(config.chain_id, self.n, self.q, verifier, _VERIFIED_MAX)
        self.schedule = LeaderSchedule(self.n, config.quorum.liveness_bound)
        # (committed height, block hash) -> whether its commit changes the schedule
        self._schedule_probe: tuple[tuple[int, bytes] | None, bool] = (None, False)
        self._verify_budget: dict[int, Bucket] = {}
        self._sync_budget: dict[int, Bucket] = {}
        self._byte_budget: dict[int, Bucket] = {}  # decoding a peer's messages (admit)
        # Messages dropped without effect, by (kind, reason): node.core.refusal.
        self.refused: Counter[Refusal] = Counter()
        self.views_timed_out = 0  # views this replica left on a timeout certificate
        self.commit_votes_relayed = 0  # COMMIT votes also sent to the next two leaders
        self.safety = self._own_safety(safety)
        self.mempool = Mempool() if mempool is None else mempool
        self.now_ms = now_ms
        self.halted: str | None = None
        self._out: list[tuple[int, Message]] = []
        self._committed_out: list[tuple[Block, QuorumCert]] = []
        self._load_head(executed_root, results_root)
        self.view = max(self.safety.last_view, self.committed_view + 1, 0)
        self._pacemaker = Pacemaker(
            config.view_timeout_base_ms,
            config.view_timeout_max_ms,
            config.batch_delay_ms,
            config.quorum.liveness_bound,
            progress_factor=config.view_progress_factor,
            progress_floor_ms=config.view_progress_floor_ms,
            relay_factor=config.commit_relay_factor,
            relay_floor_ms=config.commit_relay_floor_ms,
        )
        self._catchup = CatchUp(config.me, self.n, self._send, self._catchup_retry_ms)
        self._spread = Dissemination(
            config.me,
            self.n,
            self.mempool,
            source=source,
            leader=self.leader,
            send=self._send,
            tx_check=tx_check,
        )
        self._votes = VoteCollector()
        self._candidates: dict[bytes, Block] = {}  # blocks for heights committed + 1 and + 2
        self._ahead: QuorumCert | None = None  # a PQC kept: committed + 2, or + 1 before the apply
        # Roots after a certified block at committed + 1, from the engine's speculation.
        self._spec_asked: dict[bytes, None] = {}
        self._spec_roots: dict[bytes, tuple[bytes, bytes]] = {}
        self._proposal: Proposal | None = None  # accepted proposal of the current view
        self._commit_vote: Vote | None = None  # our last COMMIT vote, until relayed
        self._buffered: dict[int, Proposal] = {}  # by sender, waiting for catch-up/execution
        self._answered: dict[int, int] = {}  # peer -> the height whose certificate it was sent
        self._timeouts: dict[int, dict[int, Timeout]] = {}
        self._last_tc: TimeoutCert | None = None
        # The latest view whose commit certificate came without its block: its commit round
        # is over (counted then, if we were in it), whatever brings the block later.
        self._rounds_over = -1
        # height -> (state root, results root) that a certified block says it produced
        self._expected_roots: dict[int, tuple[bytes, bytes]] = {}
        self._dirty = False
        self._in_ready = False

    # --- construction --------------------------------------------------------------------

    def _own_safety(self, data: bytes | None) -> SafetyState:
        """The safety state saved in ``data`` (None: never saved), if it is this validator's.
        Another's (a cloned data directory, a restored backup of the wrong machine, a test
        network's) says nothing of this validator's votes: starting on it would let it vote
        again in views it has voted in, so it may not start (node.core.safety)."""
        me = SafetyOwner(self.cfg.chain_id, self.cfg.me)
        if data is None:
            return SafetyState(owner=me)
        state = SafetyState.decode(data)
        if state.owner is not None and state.owner != me:
            raise DecodeError(f"the safety state is that of {state.owner}, not of {me}")
        lock = state.high_pqc_block
        if lock is not None and lock.chain_id != me.chain_id:
            # A format-1 state records no owner; its lock still names a chain (session 29).
            raise DecodeError(
                f"the safety state's lock is a block of chain {lock.chain_id[:16]}..., "
                "not of this one"
            )
        return replace(state, owner=me)  # recorded with the next save

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
            self.schedule.committed(header.view, header.proposer, parent_view=header.parent_view)

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
        result = self._spread.submit(tx, self.view)
        if result is AddResult.ACCEPTED:
            self._after_event()
        return result

    def step(self, src: int, msg: Message, now_ms: int | None = None) -> None:
        """A message from validator ``src`` (the transport authenticates the sender).

        ``now_ms`` is the caller's clock at arrival; timers started by this message count
        from it (without it they count from the last ``tick``).
        """
        require(0 <= src < self.n, f"message from validator {src} of {self.n}")
        self._clock(now_ms)
        if src != self.cfg.me:
            # What decoding it built beyond its bytes (admit charged those before).
            self._bytes_of(src).charge(decoded_items(msg) * PEER_ITEM_CHARGE_BYTES, self.now_ms)
        if isinstance(msg, SyncRequest):
            self._on_sync_request(src, msg)  # public data: served even by a halted node
            return
        if self.halted is not None:
            self._refuse(_KIND[type(msg)], Reason.HALTED)
            return
        budget = None
        if src != self.cfg.me:
            budget = self._bucket(self._verify_budget, src, PEER_VERIFY_PER_S, PEER_VERIFY_BURST)
            if not budget.available(self.now_ms):
                self._refuse(_KIND[type(msg)], Reason.OVER_VERIFY_BUDGET)
                return
        self._certs.start_count()
        self._dispatch(src, msg)
        if budget is not None and self._certs.count:
            budget.charge(self._certs.count, self.now_ms)
        self._after_event()

    def admit(self, src: int, size_bytes: int, kind: Kind | None, now_ms: int | None = None) -> int:
        """Before decoding ``size_bytes`` from peer ``src`` (a message of ``kind``, None if
        its tag names none): 0 when its byte budget allows, and then charged (at least
        PEER_MESSAGE_CHARGE_MIN_BYTES; ``step`` charges the items decoded); else the ms
        until it refills, the message held back meanwhile (counted under ``kind``)."""
        require(0 <= src < self.n and src != self.cfg.me, f"bytes from validator {src}")
        self._clock(now_ms)
        budget = self._bytes_of(src)
        wait_ms = budget.wait_ms(self.now_ms)
        if wait_ms:
            if kind is not None:
                self._refuse(kind, Reason.OVER_BYTE_BUDGET)
            return wait_ms
        budget.charge(max(size_bytes, PEER_MESSAGE_CHARGE_MIN_BYTES), self.now_ms)
        return 0

    def _bytes_of(self, src: int) -> Bucket:
        return self._bucket(self._byte_budget, src, PEER_BYTES_PER_S, PEER_BYTES_BURST)

    def _dispatch(self, src: int, msg: Message) -> None:
        match msg:
            case Proposal():
                self._on_proposal(src, msg)
            case Vote():
                self._on_vote(src, msg)
            case QCMessage():
                self._on_qc(src, msg)
            case Timeout():
                self._on_timeout(src, msg)
            case NewView():
                self._on_new_view(msg)
            case TxForward():
                self._on_tx_forward(src, msg)
            case SyncResponse():
                self._on_sync_response(src, msg)
            case SyncRequest():
                self._on_sync_request(src, msg)
            case _:
                assert_never(msg)

    def _bucket(self, table: dict[int, Bucket], src: int, rate: int, burst: int) -> Bucket:
        bucket = table.get(src)
        if bucket is None:
            bucket = table[src] = Bucket(rate, burst, self.now_ms)
        return bucket

    def tick(self, now_ms: int) -> None:
        self._clock(now_ms)
        if self.halted is not None:
            return
        self._catchup.retry(self.committed_height, self.now_ms)
        if self._pacemaker.fire(self.now_ms):
            self._send_timeout(self.view)
        self._maybe_relay()
        self._after_event()
        self._spread.flush(self.view)

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
        self._spread.flush(self.view)
        out = Ready(
            to_persist=self.safety.encode() if self._dirty else None,
            to_send=tuple(self._out),
            committed=tuple(self._committed_out),
            speculate=self._speculation_due(),
        )
        self._out, self._committed_out, self._dirty = [], [], False
        self._in_ready = True
        return out

    def speculated(self, block_hash: bytes, state_root: bytes, results_root: bytes) -> None:
        """The caller executed the certified block ``block_hash`` (from ``speculate``) on
        the committed state without committing it: the roots a pipelined child carries."""
        if block_hash not in self._spec_asked or self.halted is not None:
            return  # its height committed meanwhile: the answer is moot
        self._spec_roots[block_hash] = (state_root, results_root)
        self._after_event()

    def _speculation_due(self) -> tuple[Block, ...]:
        """Our lock's block, once, when it is the certified block above the committed head."""
        lock, block = self.safety.high_pqc, self.safety.high_pqc_block
        if lock is None or block is None or self.halted is not None:
            return ()
        if lock.height != self.committed_height + 1 or block.parent_hash != self.committed_hash:
            return ()
        if block.hash in self._spec_asked:
            return ()
        if len(self._spec_asked) >= _CANDIDATES_MAX:
            self._spec_asked.pop(next(iter(self._spec_asked)))
        self._spec_asked[block.hash] = None
        return (block,)

    def advance(self) -> None:
        require(self._in_ready, "advance() without ready()")
        require(
            self.executed_height == self.committed_height or self.halted is not None,
            "advance() before every committed block was applied and reported",
        )
        self._in_ready = False

    def deadlines(self) -> dict[Timer, int]:
        """The pending timers by name, each with when ``tick`` should run for it."""
        out: dict[Timer, int] = {}
        view = self._pacemaker.view_deadline_ms()
        if view is not None:
            out[Timer.VIEW_TIMEOUT] = view
        retry = self._catchup.retry_deadline_ms()
        if retry is not None:
            out[Timer.CATCHUP_RETRY] = retry
        if self._is_leader_waiting():
            out[Timer.BATCH_DELAY] = self._pacemaker.batch_deadline_ms()
        relay = self._relay_deadline_ms()
        if relay is not None:
            out[Timer.COMMIT_RELAY] = relay
        return out

    def deadline_ms(self) -> int | None:
        """The next time ``tick`` has work to do (None: nothing until a message arrives)."""
        times = self.deadlines()
        return min(times.values()) if times else None

    def peer_height(self, src: int, height: int) -> None:
        """A peer's unproven word (its hello) that it holds blocks up to ``height``: catch
        up as for a certified height, but a word only lasts one round of unanswered
        requests to every peer (a liar costs n - 1 small requests, once)."""
        self._catchup.peer_height(src, height, self.committed_height, self.now_ms)

    # --- common helpers ----------------------------------------------------------------

    def _clock(self, now_ms: int | None) -> None:
        if now_ms is not None:
            self.now_ms = max(self.now_ms, now_ms)  # a clock that steps back changes nothing

    def _refuse(self, kind: Kind, reason: Reason) -> None:
        self.refused[(kind, reason)] += 1

    def _send(self, dst: int, msg: Message) -> None:
        self._out.append((dst, msg))

    def _broadcast(self, msg: Message, first: int | None = None) -> None:
        """To every validator, this one included; ``first`` ahead of the others (the
        transport writes in this order, one peer after another)."""
        if first is not None:
            self._out.append((first, msg))
        for dst in range(self.n):
            if dst != first:
                self._out.append((dst, msg))

    def _persist(self, **changes: object) -> None:
        self.safety = replace(self.safety, **changes)  # type: ignore[arg-type]
        self._dirty = True

    def _halt(self, reason: str) -> None:
        # Divergent execution: signing anything more could certify a wrong state.
        self.halted = reason

    def _enter_view(self, view: int, *, progressed: bool = True) -> None:
        """Move to ``view``: on a certificate of the view before it (``progressed``), or on
        timeouts (a TC, or enough peers' timeouts to join them)."""
        if view <= self.view:
            return
        p = self._proposal
        # Our proposal of the view just left keeps collecting its COMMIT votes.
        led = p is not None and p.view == self.view == view - 1 == self.safety.proposed_view
        self._votes.clear(p if led else None)
        self._pacemaker.entered(self.now_ms, progressed=progressed and view == self.view + 1)
        self.view = view
        self._proposal = None
        for old in [v for v in self._timeouts if v < view]:
            del self._timeouts[old]

    def _after_event(self) -> None:
        if self.halted is not None:
            return
        self._take_ahead()
        self._retry_buffered()
        self._maybe_propose()
        self._pacemaker.arm(self.now_ms, self._timer_active())

    def _catchup_retry_ms(self) -> int:
        """How long a catch-up request waits for its answer before the next peer is asked:
        the commit relay's wait once known (the same scale: a few median commit rounds),
        else ``CATCHUP_RETRY_MS`` (catchup.py caps it there)."""
        relay = self._pacemaker.relay_ms()
        return CATCHUP_RETRY_MS if relay is None else relay

    def _want_sync(self, src: int, height: int) -> None:
        self._catchup.want(src, height, self.committed_height, self.now_ms)

    # --- commit and catch-up -------------------------------------------------------------

    def _remember_block(self, block: Block) -> None:
        """Keep a block at committed + 1, or a pipelined child at committed + 2, for a
        certificate that may name it; at most _CANDIDATES_MAX. A full table drops a child
        before any block at committed + 1, and a child never displaces one: a leader's
        flood of refused pipelined proposals cannot push out the block whose commit
        certificate is on its way."""
        if not 0 < block.height - self.committed_height <= 2:
            return
        if len(self._candidates) >= _CANDIDATES_MAX and block.hash not in self._candidates:
            nxt = self.committed_height + 1
            child = next((h for h, b in self._candidates.items() if b.height != nxt), None)
            if child is not None:
                self._candidates.pop(child)
            elif block.height != nxt:
                return
            else:
                self._candidates.pop(next(iter(self._candidates)))
        self._candidates[block.hash] = block

    def _learn_commit(self, src: int, cert: QuorumCert) -> None:
        """A verified commit certificate: commit now if we hold the block, else catch up."""
        same_block = cert.height == self.committed_height and cert.block_hash == self.committed_hash
        if same_block and cert.view > self.committed_view:
            # Same block, later view: carry this one so our next proposal is "fresh".
            self.committed_cert, self.committed_view = cert, cert.view
        left = self._left_on_certificate(cert.view)  # before the move: a commit round
        self._enter_view(cert.view + 1)
        if cert.height == self.committed_height + 1:
            block = self._block_of(cert.block_hash)  # a candidate, or our lock's block
            if block is not None:
                self._commit(block, cert, commit_round=left)
                return
            # The certificate is here, its block is not: a commit round we were in ends
            # now, and the block's arrival by a catch-up answer ends none (review 20b: a
            # view entered on this very certificate counted the answer's delay).
            if left:
                self._pacemaker.parent_committed(self.now_ms)
            self._rounds_over = max(self._rounds_over, cert.view)
        if cert.height > self.committed_height:
            self._want_sync(src, cert.height)

    def _commit(
        self, block: Block, cert: QuorumCert, *, caught_up: bool = False, commit_round: bool = False
    ) -> None:
        """Commit ``block`` and move past its certificate's view; ``caught_up``: a block of
        a catch-up answer, whose views are no samples of the progress deadline (an answer
        commits up to 16 blocks in one step: 0 ms views); ``commit_round``: we had left the
        certificate's view on its prepare certificate, so the wait was a commit round."""
        require(
            block.height == self.committed_height + 1
            and block.hash == cert.block_hash
            and block.parent_hash == self.committed_hash,
            f"block {block.height} committed out of order or not extending ours",
        )
        self.schedule.committed(block.view, block.proposer, parent_view=block.parent_view)
        self.committed_height, self.committed_hash = block.height, block.hash
        self.committed_time_ms, self.committed_cert = block.time_ms, cert
        self.committed_view = cert.view  # the certificate our proposals will carry
        self.committed_has_txs = bool(block.txs)
        self._committed_out.append((block, cert))
        self.mempool.remove_committed(block.txs)
        # Children of the committed block stay candidates (a pipelined block voted on).
        kept = self._candidates.values()
        self._candidates = {b.hash: b for b in kept if b.parent_hash == block.hash}
        self._spec_asked, self._spec_roots = {}, {}
        if commit_round:
            self._pacemaker.parent_committed(self.now_ms)
        self._pacemaker.committed(self.now_ms)
        self._record_expected_root(block)
        self._enter_view(cert.view + 1, progressed=not caught_up)
        self._spread.reforward(self.view)
        self._catchup.committed(self.committed_height)

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
        return self._work_on(self._head_certify(), frozenset())

    def _work_on(self, parent_certify: bool, skip: frozenset[bytes]) -> bool:
        """A block is due on a parent: it certifies the parent's results, or transactions
        wait that the parent does not carry (the keys in ``skip``)."""
        return parent_certify or self.mempool.pending_beyond(skip)[0] > 0

    def _head_certify(self) -> bool:
        """Whether the committed block's results need a block after it: it has
        transactions, or (once executed) its results root is not that of a quiet block."""
        if self.committed_has_txs:
            return True
        if self.committed_height == 0:
            return False  # genesis: nothing to certify
        executed = self.executed_height == self.committed_height
        return executed and self._has_events(self.executed_results)

    def _has_events(self, results_root: bytes) -> bool:
        """Whether a block with no transactions, whose results have this root, has
        events (pending-settlement outcomes at its end: ADR 0014, ADR 0026)."""
        quiet = self.cfg.quiet_results_root
        return quiet is not None and results_root != quiet

    def _on_sync_request(self, src: int, msg: SyncRequest) -> None:
        """Serve committed blocks, at most the peer's catch-up budget in bytes; none held:
        say so with an empty answer, so the peer asks the next one at once (catchup.py)."""
        budget = self._bucket(self._sync_budget, src, PEER_SYNC_BYTES_PER_S, PEER_SYNC_BYTES_BURST)
        if src != self.cfg.me and not budget.available(self.now_ms):
            self._refuse(Kind.SYNC_REQUEST, Reason.OVER_SYNC_BUDGET)
            return
        match serve_sync(msg, self._source, budget, self.now_ms):
            case SyncResponse() as response:
                self._send(src, response)
            case Reason() as reason:
                self._refuse(Kind.SYNC_REQUEST, reason)
                self._send(src, SyncResponse(()))

    def _on_sync_response(self, src: int, msg: SyncResponse) -> None:
        """Committed blocks, each checked against its commit certificate, in order."""
        start = self.committed_height
        for block, cert in msg.blocks[:CATCHUP_BATCH_BLOCKS_MAX]:
            if block.height != self.committed_height + 1:
                continue
            if block.parent_hash != self.committed_hash:
                self._refuse(Kind.SYNC_RESPONSE, Reason.PARENT_MISMATCH)
                return
            if (
                cert.block_hash != block.hash
                or cert.height != block.height
                or not self._certs.qc(cert, Phase.COMMIT)
            ):
                self._refuse(Kind.SYNC_RESPONSE, Reason.INVALID_CERTIFICATE)
                return
            if block.chain_id != self.cfg.chain_id:
                self._refuse(Kind.SYNC_RESPONSE, Reason.WRONG_CHAIN)
                return
            # The block whose prepare certificate moved us into this view: its commit ends
            # the commit round however it reaches us (a peer's answer can beat the leader's
            # certificate), and the round's excess moves the progress deadline as then.
            left = self._left_on_certificate(cert.view) and cert.view > self._rounds_over
            self._commit(block, cert, caught_up=True, commit_round=left)
            if self.halted is not None:
                return
        self._catchup.answered(src, start, self.committed_height, self.now_ms)

    # --- proposals -------------------------------------------------------------------------

    def _is_leader_waiting(self) -> bool:
        if self.leader(self.view) != self.cfg.me or self.safety.proposed_view >= self.view:
            return False
        fresh = self._fresh_parent()
        return fresh is not None and self._work_on(fresh[0].certify, fresh[0].skip)

    def _fresh_parent(self) -> tuple[_Parent, QuorumCert | None] | None:
        """What a fresh block of this view extends, with the certificate that justifies it:
        the committed block on its commit certificate of the previous view, or, unless the
        previous view timed out (then the TC's lock rules), the certified block above it
        on its PQC of the previous view (pipelined)."""
        if self._justified_fresh():
            return self._head(), self.committed_cert
        if self._last_tc is not None and self._last_tc.view == self.view - 1:
            return None
        pipe = self._pipelined_parent()
        return None if pipe is None else (pipe, self.safety.high_pqc)

    def _justified_fresh(self) -> bool:
        if self.committed_height == 0:
            return self.view == 0
        return self.committed_view == self.view - 1

    def _maybe_propose(self) -> None:
        if self.leader(self.view) != self.cfg.me or self.safety.proposed_view >= self.view:
            return
        if self.executed_height != self.committed_height or self.view <= self.safety.timeout_view:
            return
        fresh = self._fresh_parent()
        if fresh is not None:
            self._propose_fresh(*fresh)
        elif self._last_tc is not None and self._last_tc.view == self.view - 1:
            self._propose_after_timeout(self._last_tc)

    def _head(self) -> _Parent:
        """The committed block as a parent (its roots are ours once it is executed)."""
        return _Parent(
            self.committed_hash,
            self.committed_height,
            self.committed_time_ms,
            self._head_certify(),
            frozenset(),  # its transactions left the mempool when it committed
            self._executed_roots(),
        )

    def _pipelined_parent(self) -> _Parent | None:
        """Our lock, when it is a PQC of the previous view: a block may be proposed on it."""
        lock = self.safety.high_pqc
        if lock is None or lock.view != self.view - 1:
            return None
        return self._lock_parent()

    def _lock_parent(self) -> _Parent | None:
        """Our lock's block as a parent, when it is certified for committed + 1 and we
        have executed it speculatively (ADR 0012)."""
        lock, block = self.safety.high_pqc, self.safety.high_pqc_block
        if lock is None or block is None:
            return None
        if lock.height != self.committed_height + 1 or block.parent_hash != self.committed_hash:
            return None
        return self._certified_parent(block.hash)

    def _certified_parent(self, block_hash: bytes) -> _Parent | None:
        """A candidate at committed + 1 with its speculative roots, as a parent."""
        block = self._block_of(block_hash)
        roots = self._spec_roots.get(block_hash)
        if block is None or roots is None or self.executed_height != self.committed_height:
            return None
        if block.height != self.committed_height + 1 or self._leaders_change_at(block):
            return None
        skip = frozenset(tx_key(tx) for tx in block.txs)  # pending until it commits
        certify = bool(block.txs) or self._has_events(roots[1])
        return _Parent(block.hash, block.height, block.time_ms, certify, skip, roots)

    def _leaders_change_at(self, block: Block) -> bool:
        """Whether committing ``block`` (at committed + 1) changes the leader schedule. Then
        nothing is pipelined on it: a replica that has committed it and one that has not
        would name different leaders for the views after it, refuse each other's proposals
        and votes, and time out (ADR 0012). Remembered for the block in hand."""
        key = (self.committed_height, block.hash)
        if self._schedule_probe[0] != key:
            changes = self.schedule.changes_at(
                block.view, block.proposer, parent_view=block.parent_view
            )
            self._schedule_probe = (key, changes)
        return self._schedule_probe[1]

    def _propose_fresh(self, parent: _Parent, cert: QuorumCert | None) -> None:
        if not self._work_on(parent.certify, parent.skip):
            return  # no load, no blocks
        count, size = self.mempool.pending_beyond(parent.skip)
        full = count >= self.cfg.block_txs_max or size >= self.cfg.block_bytes_max
        if not full and self._pacemaker.batching(self.now_ms):
            return  # under load: let the next block fill for a moment
        self._propose(self._new_block(parent, cert), None, cert, parent)

    def _propose_after_timeout(self, tc: TimeoutCert) -> None:
        top = tc.top_height
        if top > self.committed_height:
            return  # we must catch up before we can extend the highest commit
        lock = tc.high_lock
        if top < self.committed_height or lock is None:
            if self._has_work():
                head = self._head()
                self._propose(
                    self._new_block(head, self.committed_cert), tc, self.committed_cert, head
                )
            return
        block = self._block_of(lock.block_hash)
        if block is not None:
            # Jolteon: re-propose the highest lock
            self._propose(block, tc, self.committed_cert, self._head())
        # else: the TC reached us without the locked block; the next view will do

    def _block_of(self, block_hash: bytes) -> Block | None:
        """The block a prepare or commit QC (or vote) for height committed + 1 names, if we
        hold it: a candidate, or the block of our lock (persisted: it survives a restart)."""
        block = self._candidates.get(block_hash)
        held = self.safety.high_pqc_block
        if block is None and held is not None and held.hash == block_hash:
            block = held
        return block

    def _new_block(self, parent: _Parent, cert: QuorumCert | None) -> Block:
        """A fresh block on ``parent``, whose proposal carries ``cert`` (its certificate)."""
        txs = self.mempool.batch(self.cfg.block_txs_max, self.cfg.block_bytes_max, parent.skip)
        require(bool(txs) or parent.certify, "an empty block only certifies a parent's")
        return Block(
            chain_id=self.cfg.chain_id,
            height=parent.height + 1,
            view=self.view,
            parent_hash=parent.hash,
            proposer=self.cfg.me,
            time_ms=max(self.now_ms, parent.time_ms + 1),
            executed_height=parent.height,
            state_root=parent.roots[0],
            results_root=parent.roots[1],
            txs=tuple(txs),
            parent_view=_view_of(cert),
        )

    def _propose(
        self, block: Block, tc: TimeoutCert | None, cert: QuorumCert | None, parent: _Parent
    ) -> None:
        self._persist(proposed_view=self.view)
        self._votes.open()
        proposal = Proposal(self.view, block, cert, tc)
        self._proposal = proposal
        for dst in range(self.n):
            if dst != self.cfg.me:
                self._send(dst, proposal)
        # Our own vote, decided now by the rules every voter applies: its prepare_view is
        # then made durable in the same save as proposed_view (one sync before the proposal
        # leaves, not a second one for our own copy stepped back).
        self._consider(self.cfg.me, proposal, parent)

    def _on_proposal(self, src: int, p: Proposal) -> None:
        if p.view < self.view:
            self._refuse(Kind.PROPOSAL, Reason.STALE_VIEW)
            return
        if p.block.chain_id != self.cfg.chain_id:
            self._refuse(Kind.PROPOSAL, Reason.WRONG_CHAIN)
            return
        # Certificates prove themselves whoever carries them (the sender's budget pays for
        # checking them); who leads the view is decided once we stand at the parent.
        problem = self._absorb_proposal_certs(src, p)
        if problem is not None:
            self._refuse(Kind.PROPOSAL, problem)
            return
        if p.view != self.view:
            stale = p.view < self.view
            self._refuse(Kind.PROPOSAL, Reason.STALE_VIEW if stale else Reason.FUTURE_VIEW)
            return
        if p.block.height <= self.committed_height:
            self._refuse(Kind.PROPOSAL, Reason.STALE_HEIGHT)
            return
        parent = self._parent_of(p)
        if parent is None:
            self._buffered[src] = p  # one per sender; retried after catch-up / execution
            return
        self._consider(src, p, parent)

    def _parent_of(self, p: Proposal) -> _Parent | None:
        """What ``p``'s block is checked against, once we can check it: the executed head
        for committed + 1; for committed + 2 (pipelined, on a PQC) the certified block
        above the head, executed speculatively. None: not yet (or never)."""
        if self.executed_height < self.committed_height:
            return None
        if p.block.height == self.committed_height + 1:
            return self._head()
        pipelined = p.tc is None and p.parent_cert is not None
        if p.block.height != self.committed_height + 2 or not pipelined:
            return None
        return self._certified_parent(p.block.parent_hash)

    def _absorb_proposal_certs(self, src: int, p: Proposal) -> Reason | None:
        """Act on the proposal's certificates (each moves us on by itself), or say which
        one does not prove what it must."""
        parent = p.parent_cert
        if p.block.height == 1 and parent is not None:
            return Reason.INVALID_PARENT_CERT  # genesis has none: an honest leader sends none
        if p.block.height > 1:
            if parent is None or parent.height != p.block.height - 1:
                return Reason.INVALID_PARENT_CERT
            if parent.block_hash != p.block.parent_hash or not self._certs.qc(parent, parent.phase):
                return Reason.INVALID_PARENT_CERT
            if parent.phase is Phase.COMMIT:
                self._learn_commit(src, parent)
            else:
                self._learn_prepared(src, parent)
        if p.tc is not None:
            if p.tc.view != p.view - 1 or not self._certs.tc(p.tc):
                return Reason.INVALID_TC
            self._accept_tc(p.tc)
        return None

    def _learn_prepared(self, src: int, qc: QuorumCert) -> None:
        """A verified PQC carried by a pipelined proposal: its leader committed the height
        below it (catch up if we have not) and its view is over (move on)."""
        if qc.height == self.committed_height + 1:
            block = self._candidates.get(qc.block_hash)
            if block is not None:
                self._on_prepared(qc, block)
        elif qc.height > self.committed_height + 1:
            self._keep_ahead(qc)
            self._want_sync(src, qc.height - 1)
        self._enter_view(qc.view + 1)

    def _retry_buffered(self) -> None:
        if not self._buffered or self.executed_height < self.committed_height:
            return
        for src, p in list(self._buffered.items()):
            if p.view < self.view or p.block.height <= self.committed_height:
                del self._buffered[src]
                stale = Reason.STALE_VIEW if p.view < self.view else Reason.STALE_HEIGHT
                self._refuse(Kind.PROPOSAL, stale)
            elif p.view == self.view and (parent := self._parent_of(p)) is not None:
                del self._buffered[src]
                self._consider(src, p, parent)

    # --- the voting rules ----------------------------------------------------------------

    def _consider(self, src: int, p: Proposal, parent: _Parent) -> None:
        """Vote PREPARE for a proposal in the current view extending ``parent`` (the
        committed head, or the certified block above it), if valid."""
        block = p.block
        require(
            block.height == parent.height + 1 and p.view == self.view,
            "considering a proposal not for the next height in this view",
        )
        if p.view <= max(self.safety.prepare_view, self.safety.timeout_view):
            self._refuse(Kind.PROPOSAL, Reason.ALREADY_VOTED)  # never vote twice in a view
            return
        if src != self.leader(p.view):
            self._refuse(Kind.PROPOSAL, Reason.NOT_LEADER)
            return
        if block.parent_hash == parent.hash:
            # Kept even if we refuse to vote: a certificate on it may prove *we* are wrong.
            self._remember_block(block)
        problem = self._block_problem(block, src, p, parent)
        if problem is None:
            problem = self._justify_problem(p)
        if problem is not None:
            self._refuse(Kind.PROPOSAL, problem)
            return
        self._proposal = p
        self._persist(prepare_view=p.view)
        self._send_vote(Phase.PREPARE, p.view, block)

    def _block_problem(self, block: Block, src: int, p: Proposal, parent: _Parent) -> Reason | None:
        """Which voting rule the block breaks (None: none)."""
        if block.parent_hash != parent.hash:
            return Reason.PARENT_MISMATCH
        if block.time_ms <= parent.time_ms:
            return Reason.TIME_NOT_AFTER_PARENT
        if block.time_ms > self.now_ms + BLOCK_TIME_DRIFT_MAX_MS:
            return Reason.TIME_TOO_FAR_AHEAD  # a leader must not move deadlines by its clock
        lock = p.tc.high_lock if p.tc is not None else None
        if lock is None or lock.block_hash != block.hash:
            # A fresh block: made in this view by its leader on the parent certificate it
            # carries (the leader schedule reads that view, ADR 0022), timed by a clock near
            # ours, so a Byzantine leader cannot backdate it to run trades past expiry or
            # deadline. (A re-proposed locked block keeps its view, parent view and time: q
            # voters, one of them honest, checked them when it was fresh.)
            if block.view != p.view or block.proposer != src:
                return Reason.NOT_FRESH_BLOCK
            if block.parent_view != _view_of(p.parent_cert):
                return Reason.NOT_FRESH_BLOCK
            if p.tc is not None and block.parent_view < self.committed_view:
                # After a timeout the leader picks the certificate of the parent it carries:
                # an older one than ours (the prepare certificate of a re-proposed parent's
                # first view, say) would have the schedule read the parent as certified on
                # time, crediting its proposer and charging its re-proposer.
                return Reason.NOT_FRESH_BLOCK
            if block.time_ms < self.now_ms - BLOCK_TIME_DRIFT_MAX_MS:
                return Reason.TIME_TOO_FAR_BEHIND
        return self._payload_problem(block, parent)

    def _payload_problem(self, block: Block, parent: _Parent) -> Reason | None:
        if len(block.txs) > self.cfg.block_txs_max:
            return Reason.TOO_MANY_TXS
        if not block.txs and not parent.certify:
            return Reason.EMPTY_AFTER_EMPTY  # empty blocks only follow txs or events
        if block.payload_bytes > self.cfg.block_bytes_max:
            return Reason.TOO_MANY_BYTES
        if len({tx_key(tx) for tx in block.txs}) != len(block.txs):
            return Reason.REPEATED_TX
        # Our own roots differ from the proposer's: refuse to vote (who diverged is decided
        # by a certificate: a QC on this block means we did, see _record_expected_root).
        if (block.state_root, block.results_root) != parent.roots:
            return Reason.ROOTS_DIFFER
        return None

    def _justify_problem(self, p: Proposal) -> Reason | None:
        """Fresh (the parent's commit certificate, or pipelined its PQC, of the previous
        view, and no lock of ours against it), or allowed by its TC (None: justified)."""
        if p.tc is None:
            fresh = p.parent_cert.view if p.parent_cert is not None else -1
            if fresh != p.view - 1:
                return Reason.NOT_JUSTIFIED
            return Reason.CONFLICTS_WITH_LOCK if self._conflicts_with_lock(p.block) else None
        return self._tc_problem(p.tc, p)

    def _conflicts_with_lock(self, block: Block) -> bool:
        """Our lock is another block at this height, or (pipelined) at the parent's height
        not yet committed. Cannot happen within the safety bound; refusing keeps the lock
        rule literal."""
        lock = self.safety.high_pqc
        if lock is None:
            return False
        if lock.height == block.height:
            return lock.block_hash != block.hash
        if lock.height == block.height - 1 > self.committed_height:
            return lock.block_hash != block.parent_hash
        return False

    def _tc_problem(self, tc: TimeoutCert, p: Proposal) -> Reason | None:
        """Jolteon rule: extend the highest commit and the highest lock reported in the TC
        (both proven by the TC itself: ``Certificates.tc`` checked them)."""
        top = tc.top_height
        if p.block.height < top + 1:
            return Reason.BELOW_TC_COMMIT
        if p.block.height > top + 1 or tc.high_lock is None:
            return None
        if tc.high_lock.block_hash == p.block.hash:
            return None
        return Reason.IGNORES_TC_LOCK

    # --- votes and certificates ----------------------------------------------------------

    def _send_vote(self, phase: Phase, view: int, block: Block) -> Vote:
        msg = vote_message(self.cfg.chain_id, phase, view, block.height, block.hash)
        vote = Vote(phase, view, block.height, block.hash, self.cfg.me, self._signer.sign(msg))
        self._send(self.leader(view), vote)
        return vote

    def _on_vote(self, src: int, v: Vote) -> None:
        if self._answer_relayed(src, v):
            return
        block = self._relayed_block(v)
        if block is not None:
            counted = self._votes.relayed(src, v, block, self._certs)
        else:
            leads = v.view == self.view and self.leader(v.view) == self.cfg.me
            counted = self._votes.add(
                src, v, view=self.view, leads=leads, proposal=self._proposal, certs=self._certs
            )
        match counted:
            case QuorumCert() as qc:
                # A commit certificate goes to the next view's leader first: its proposal
                # waits for it, while the others only apply the block.
                nxt = self.leader(qc.view + 1) if qc.phase is Phase.COMMIT else None
                self._broadcast(QCMessage(qc), first=nxt)
            case Reason() as reason:
                self._refuse(Kind.VOTE, reason)
            case None:
                pass  # counted, short of a quorum

    def _on_qc(self, src: int, m: QCMessage) -> None:
        qc = m.qc
        if qc.phase == Phase.COMMIT:
            # A newer height, or a later view's certificate for a height we hold (the same
            # block certified again after a view change): both move us forward.
            useful = qc.height > self.committed_height or qc.view >= self.view
            if not useful:
                self._refuse(Kind.QC, Reason.STALE_HEIGHT)
            elif not self._certs.qc(qc, Phase.COMMIT):
                self._refuse(Kind.QC, Reason.INVALID_CERTIFICATE)
            else:
                self._learn_commit(src, qc)
            return
        if qc.height <= self.committed_height:
            self._refuse(Kind.QC, Reason.STALE_HEIGHT)
            return
        if not self._certs.qc(qc, Phase.PREPARE):
            self._refuse(Kind.QC, Reason.INVALID_CERTIFICATE)
            return
        if qc.height == self.committed_height + 2:
            self._keep_ahead(qc)  # the pipelined block: acted on once its parent commits
            return
        if qc.height > self.committed_height + 2:
            self._want_sync(src, qc.height - 1)
            return
        block = self._candidates.get(qc.block_hash)
        if block is None:
            self._refuse(Kind.QC, Reason.UNKNOWN_BLOCK)
            return
        self._on_prepared(qc, block)

    def _on_prepared(self, qc: QuorumCert, block: Block) -> None:
        """A verified PQC for our next height, with its block: lock, commit-vote if still
        in its view, then move to the next view, whose leader may propose on this PQC
        (pipelining). Like a commit certificate, it moves every replica that holds it, so
        the next view's timeouts gather a quorum even if its proposal is lost."""
        if block.parent_hash != self.committed_hash:
            return  # certified, but off our chain (a pipelined child of a block that lost)
        if self.executed_height < self.committed_height:
            # Locked only once the height below is applied, so in the store before the lock
            # is saved: a lock saved above the store's head, then a crash, and the restarted
            # node's timeouts reported neither; a TC of such nodes justified a fork at the
            # height below (session 29's review). ``executed`` takes it up.
            self._keep_ahead(qc)
            return
        self._lock(qc, block)
        if self.halted is None:
            self._maybe_commit_vote(qc, block)
            self._enter_view(qc.view + 1)

    def _keep_ahead(self, qc: QuorumCert) -> None:
        if self._ahead is None or self._ahead.height < qc.height or self._ahead.view < qc.view:
            self._ahead = qc

    def _take_ahead(self) -> None:
        """The kept PQC for committed + 2 (or + 1 while that height is not applied yet:
        ``_on_prepared`` keeps it until then), once its height is the next one, if we are
        still in its view (a commit vote is due) or the next (whose proposal extends it): a
        view further behind may have moved on to another block at that height, and a lock
        nobody needs would only refuse that block."""
        qc = self._ahead
        if qc is None or qc.height > self.committed_height + 1:
            return
        self._ahead = None
        block = self._candidates.get(qc.block_hash)
        due = self.view - 1 <= qc.view <= self.view
        if qc.height == self.committed_height + 1 and due and block is not None:
            self._on_prepared(qc, block)

    def _lock(self, qc: QuorumCert, block: Block) -> None:
        require(qc.height == self.executed_height + 1, "a lock above the applied height")
        roots = (block.state_root, block.results_root)
        if self.executed_height == block.executed_height and roots != self._executed_roots():
            self._halt(f"q validators certified other roots at {block.executed_height}")
            return
        lock = self.safety.high_pqc
        if lock is None or lock.height < qc.height or lock.view < qc.view:
            self._persist(high_pqc=qc, high_pqc_block=block)
            self._pacemaker.certified(self.now_ms)

    def _maybe_commit_vote(self, qc: QuorumCert, block: Block) -> None:
        """COMMIT for a PQC of this view, or of the view just left on a certificate, not a
        TC: pipelined, the next leader's proposal (which carries this PQC) can overtake the
        commit certificate of the height below, and the PQC is acted on only once that
        commits (rule 5); refusing then cost a view change with no fault at all. Safe for
        the same reason as in the view itself: never after our own timeout of that view or
        a later one, nor twice (commit_view, timeout_view)."""
        left = self._left_on_certificate(qc.view)
        if not (qc.view == self.view or left) or qc.view <= max(
            self.safety.commit_view, self.safety.timeout_view
        ):
            return
        self._persist(commit_view=qc.view)
        self._commit_vote = self._send_vote(Phase.COMMIT, qc.view, block)

    def _left_on_certificate(self, view: int) -> bool:
        """``view`` is the one just left, and not on a timeout certificate."""
        tc = self._last_tc
        return view == self.view - 1 and (tc is None or tc.view != view)

    # --- the commit-vote relay (docs/consensus.md "Slow leaders") -------------------------

    def _relay_targets(self, view: int) -> frozenset[int]:
        """Who a COMMIT vote of ``view`` is relayed to: the leaders of the next two views,
        never the vote's own. The next proposes on the certificate it forms; the one after
        forms it too and broadcasts it, so a next leader that ignores the relayed votes (an
        accomplice of the leader holding the certificate) cannot hold the block either."""
        return frozenset((self.leader(view + 1), self.leader(view + 2))) - {self.leader(view)}

    def _relay_deadline_ms(self) -> int | None:
        """When our COMMIT vote of the view just left also goes to the next two leaders: we
        left that view on its prepare certificate and have not committed its block."""
        vote = self._commit_vote
        if vote is None or vote.height != self.committed_height + 1:
            return None
        if not self._left_on_certificate(vote.view) or not self._relay_targets(vote.view):
            return None
        return self._pacemaker.relay_deadline_ms()

    def _relay_sends(self, view: int) -> frozenset[int]:
        """Where our late COMMIT vote of ``view`` goes: to the two relay targets; from the
        next leader, whose proposal waits for the certificate, to every validator but the
        vote's own leader. A leader running modified code may send its certificate to
        everyone but the next two leaders: then nobody who committed hears from a relay
        target, and whoever has committed answers the next leader with its certificate
        (``_answer_relayed``)."""
        if self.leader(view + 1) != self.cfg.me:
            return self._relay_targets(view)
        return frozenset(range(self.n)) - {self.leader(view)}

    def _maybe_relay(self) -> None:
        due, vote = self._relay_deadline_ms(), self._commit_vote
        if due is not None and vote is not None and self.now_ms >= due:
            for dst in sorted(self._relay_sends(vote.view)):
                self._send(dst, vote)
            self._commit_vote = None
            self.commit_votes_relayed += 1

    def _answer_relayed(self, src: int, v: Vote) -> bool:
        """A COMMIT vote relayed to us for the block we committed last: its sender has no
        commit certificate, which we answer with ours, once per peer and height (not the
        votes of our own tally: late votes at a view's leader are no relays)."""
        if v.phase is not Phase.COMMIT or src == self.cfg.me or self.leader(v.view) == self.cfg.me:
            return False
        cert = self.committed_cert
        if cert is None or (v.height, v.block_hash) != (cert.height, cert.block_hash):
            return False
        if self._answered.get(src) == cert.height:
            self._refuse(Kind.VOTE, Reason.HELPED_RECENTLY)
        else:
            self._answered[src] = cert.height
            self._send(src, QCMessage(cert))
        return True

    def _relayed_block(self, v: Vote) -> Block | None:
        """The block a COMMIT vote counts for when it is relayed to us: we lead one of the
        two views after the vote's (not the vote's own: that is our tally as its leader),
        are in the vote's view or the next, and hold the block at committed + 1. Whoever
        forms a commit certificate, it proves the same: q validators commit-voted this
        block in this view."""
        me = self.cfg.me
        if v.phase is not Phase.COMMIT or v.height != self.committed_height + 1:
            return None
        if not self.view - 1 <= v.view <= self.view:
            return None
        if me not in self._relay_targets(v.view):
            return None
        block = self._block_of(v.block_hash)
        return block if block is not None and block.parent_hash == self.committed_hash else None

    # --- view change ---------------------------------------------------------------------

    def _timer_active(self) -> bool:
        lock = self.safety.high_pqc
        return (
            self._has_work()
            or self._proposal is not None
            or (lock is not None and lock.height == self.committed_height + 1)
        )

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
        self._pacemaker.timeout_sent(self.now_ms)
        self._spread.regossip()

    def _on_timeout(self, src: int, t: Timeout) -> None:
        if t.view < self.view:
            self._help_lagging(src, t)
            return
        if t.view >= self.view + TIMEOUT_VIEWS_TRACKED_MAX:
            # Too far ahead to matter yet (and the cheap kind to flood); a lagging replica
            # catches up by the certificates its own timeouts are answered with.
            self._refuse(Kind.TIMEOUT, Reason.VIEW_TOO_FAR_AHEAD)
            return
        bucket = self._timeouts.setdefault(t.view, {})
        if bucket.get(t.voter) == t:
            self._refuse(Kind.TIMEOUT, Reason.DUPLICATE)  # a re-send: nothing new to check
            return
        problem = timeout_problem(src, t, self._certs)
        if problem is not None:
            self._refuse(Kind.TIMEOUT, problem)
            return
        if t.pqc_block is not None:
            self._remember_block(t.pqc_block)  # a next leader may have to re-propose it
        if t.committed_height > self.committed_height:
            self._want_sync(src, t.committed_height)
        bucket[t.voter] = t
        if len(bucket) > self.cfg.quorum.safety_bound and self.safety.timeout_view < t.view:
            # f_safe + 1 timeouts include an honest one: join so the view change completes.
            self._enter_view(t.view, progressed=False)
            if self.view == t.view:
                self._send_timeout(t.view)
        if len(bucket) >= self.q:
            self._form_tc(t.view, bucket)

    def _help_lagging(self, src: int, t: Timeout) -> None:
        """A peer times out of a view we have left: send what moved us on (at most once per
        interval per peer: replayed stale timeouts must not make us a traffic amplifier)."""
        if not self._pacemaker.may_help(src, self.now_ms):
            self._refuse(Kind.TIMEOUT, Reason.HELPED_RECENTLY)
            return
        cert = self.committed_cert
        if cert is not None and (t.committed_height < cert.height or cert.view >= t.view):
            self._send(src, QCMessage(cert))
        if self._last_tc is not None and self._last_tc.view >= t.view:
            self._send(src, NewView(self._last_tc))
        # A PQC moved us on too: without it the peer, which missed the QC broadcast, times
        # out a view we have left, and neither view gathers q timeouts (simulator seed
        # 1719 at 4/3 with one validator down).
        lock = self.safety.high_pqc
        if lock is not None and lock.height == self.committed_height + 1 and lock.view >= t.view:
            self._send(src, QCMessage(lock))

    def _form_tc(self, view: int, bucket: dict[int, Timeout]) -> None:
        tc = form_tc(view, bucket, self.q)
        self._certs.formed_tc(tc)  # made of timeouts verified one by one
        self._accept_tc(tc)

    def _accept_tc(self, tc: TimeoutCert) -> None:
        if self._last_tc is None or tc.view > self._last_tc.view:
            self._last_tc = tc
        if tc.view + 1 > self.view:
            self.views_timed_out += 1
            self._pacemaker.view_failed()
            self._enter_view(tc.view + 1, progressed=False)

    def _on_new_view(self, m: NewView) -> None:
        if m.tc.view < self.view:
            self._refuse(Kind.NEW_VIEW, Reason.STALE_VIEW)
        elif not self._certs.tc(m.tc):
            self._refuse(Kind.NEW_VIEW, Reason.INVALID_CERTIFICATE)
        else:
            self._accept_tc(m.tc)

    def _on_tx_forward(self, src: int, m: TxForward) -> None:
        budget = self._verify_budget.get(src)
        for reason in self._spread.receive(src, m, budget, self.now_ms):
            self._refuse(Kind.TX_FORWARD, reason)
