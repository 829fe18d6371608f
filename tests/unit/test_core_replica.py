"""The replica state machine driven by hand: ordering rules, idleness, view change, halts,
and offline verification of a real Ed25519 commit certificate."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import replace

import pytest

from node.config import BATCH_DELAY_MS, VIEW_TIMEOUT_BASE_MS
from node.core import (
    Block,
    BlockHeader,
    CoreConfig,
    Ed25519Signer,
    Ed25519Verifier,
    Message,
    Phase,
    Proposal,
    QCMessage,
    Quorum,
    QuorumCert,
    Replica,
    SafetyState,
    Timeout,
    TimeoutCert,
    TxForward,
    Vote,
    decode_header,
    timeout_message,
    verify_certificate,
    vote_message,
)
from node.core.engine import Engine, Observer
from node.core.refusal import Kind, Reason
from node.crypto import sha256
from node.genesis import demo_genesis
from node.merkle import EMPTY_ROOT
from tests.sim.harness import HashSigner, HashVerifier

CHAIN = "test-chain"
ROOT0 = bytes(32)
QUIET = sha256(b"quiet results")  # the stand-in execution's quiet results root


class Disk:
    """Committed blocks of one node (the BlockSource) plus its persisted safety state."""

    def __init__(self) -> None:
        self.blocks: dict[int, tuple[Block, QuorumCert]] = {}
        self.safety: bytes | None = None

    def save_safety(self, data: bytes) -> None:
        self.safety = data

    def committed_height(self) -> int:
        return max(self.blocks, default=0)

    def committed_block(self, height: int) -> tuple[Block, QuorumCert] | None:
        return self.blocks.get(height)

    def committed_header(self, height: int) -> BlockHeader | None:
        got = self.committed_block(height)
        return None if got is None else decode_header(got[0].header)

    def tx_committed(self, tx: bytes) -> bool:
        return any(tx in b.txs for b, _ in self.blocks.values())


Tamper = Callable[[int, int, object], object | None]


class Outbox(Observer):
    """What one node's engine did, in order: ("persist", safety bytes) and ("send", dst,
    message) entries."""

    def __init__(self) -> None:
        self.log: list[tuple[str, object, object]] = []

    def on_persist(self, data: bytes) -> None:
        self.log.append(("persist", data, None))

    def on_send(self, dst: int, msg: Message) -> None:
        self.log.append(("send", dst, msg))

    def sent(self) -> list[object]:
        return [msg for kind, _, msg in self.log if kind == "send"]

    def clear(self) -> None:
        self.log.clear()


class Net:
    """n replicas, each driven by the validator's engine, wired by a FIFO queue;
    ``tamper(src, dst, msg)`` may rewrite or drop (None) any message in flight, a node's
    loopback messages included, which is how a test plays a Byzantine sender. Tests feed a
    replica directly (``net.nodes[i].step(...)``) and then let its engine do the work
    (``net.drain(i)``)."""

    def __init__(
        self,
        n: int = 4,
        ed25519: bool = False,
        roots: list[bytes] | None = None,
        *,
        q: int | None = None,
        tx_check: Callable[[bytes], bool] | None = None,
        speculate: bool = True,
        events_at: frozenset[int] | None = None,
    ):
        self.quorum = Quorum(n, q) if q is not None else Quorum.classic(n)
        self.disks = [Disk() for _ in range(n)]
        keys = demo_genesis(validators=n, quorum=self.quorum.q).validator_keys
        verifier = Ed25519Verifier([k.public_key for k in keys]) if ed25519 else HashVerifier(n)
        self.verifier = verifier
        self.nodes = [
            Replica(
                CoreConfig(
                    CHAIN,
                    self.quorum,
                    i,
                    ROOT0,
                    quiet_results_root=None if events_at is None else QUIET,
                ),
                Ed25519Signer(keys[i]) if ed25519 else HashSigner(i),
                verifier,
                self.disks[i],
                executed_root=(roots or [ROOT0] * n)[i],
                results_root=EMPTY_ROOT,
                tx_check=tx_check,
            )
            for i in range(n)
        ]
        self.tamper: Tamper | None = None
        self.queue: deque[tuple[int, int, object]] = deque()
        self.down: set[int] = set()
        self.outboxes = [Outbox() for _ in range(n)]
        self._engines: dict[int, Engine] = {}
        self.speculate = speculate  # engines with the speculate port: replicas pipeline
        self.now: int | None = None  # the clock run() delivers at (None: the replica's last)
        # With ``events_at``, an empty block's results are quiet unless it is at one of
        # these heights (stand-in events); without, every block's are its own.
        self.events_at = events_at

    def engine(self, i: int) -> Engine:
        """Node ``i``'s engine (a new one if a test replaced the replica)."""
        engine = self._engines.get(i)
        if engine is None or engine.replica is not self.nodes[i]:
            engine = self._engines[i] = Engine(
                self.nodes[i],
                self.disks[i],
                lambda dst, msg: self.queue.append((i, dst, msg)),
                lambda block, cert: self._execute(i, block, cert),
                rewrite=lambda dst, msg: self._loopback(i, dst, msg),
                observers=[self.outboxes[i]],
                speculate=(lambda block: self._roots(i, block)) if self.speculate else None,
            )
        return engine

    def _execute(self, i: int, block: Block, cert: QuorumCert) -> tuple[bytes, bytes]:
        """Stand-in roots: a chain of hashes (``roots`` seeds one node's to diverge)."""
        self.disks[i].blocks[block.height] = (block, cert)
        return self._roots(i, block)

    def _roots(self, i: int, block: Block) -> tuple[bytes, bytes]:
        """Executing ``block`` on node ``i``'s executed head (committing or speculating)."""
        results = sha256(b"results", block.hash)
        if self.events_at is not None and not block.txs and block.height not in self.events_at:
            results = QUIET
        return sha256(self.nodes[i].executed_root, block.hash), results

    def _loopback(self, i: int, dst: int, msg: Message) -> list[tuple[int, Message]]:
        """A loopback message is stepped by the engine at once: tamper sees it here."""
        if dst != i or self.tamper is None:
            return [(dst, msg)]
        if i in self.down:
            return []
        kept = self.tamper(i, dst, msg)
        return [] if kept is None else [(dst, kept)]  # type: ignore[list-item]

    def drain(self, i: int) -> None:
        """Let node ``i``'s engine do what its replica was fed directly."""
        self.engine(i).drain(self.now)

    def run(self) -> None:
        for i in range(len(self.nodes)):
            self.drain(i)
        while self.queue:
            src, dst, msg = self.queue.popleft()
            if dst in self.down or src in self.down:
                continue
            if self.tamper is not None and (msg := self.tamper(src, dst, msg)) is None:
                continue
            self.engine(dst).step(src, msg, self.now)  # type: ignore[arg-type]

    def tick(self, now_ms: int) -> None:
        if self.now is not None:
            self.now = now_ms
        for i in range(len(self.nodes)):
            if i not in self.down:
                self.engine(i).tick(now_ms)
        self.run()

    def sent(self, i: int, kind: type) -> list[object]:
        return [m for m in self.outboxes[i].sent() if isinstance(m, kind)]


def test_idle_cluster_is_quiet() -> None:
    net = Net()
    net.tick(60_000)
    assert all(node.deadline_ms() is None for node in net.nodes)
    assert all(not box.log for box in net.outboxes)


def test_first_transaction_is_proposed_at_once_and_committed_everywhere() -> None:
    net = Net()
    net.nodes[2].submit(b"trade-1")
    net.run()
    assert [d.committed_height() for d in net.disks] == [1, 1, 1, 1]
    block, cert = net.disks[3].blocks[1]
    assert block.txs == (b"trade-1",) and cert.phase is Phase.COMMIT
    assert all(node.view == 1 for node in net.nodes)  # next block, next leader
    # The next leader owes one empty block: its header certifies block 1's results.
    assert net.nodes[1].deadline_ms() is not None
    net.tick(BATCH_DELAY_MS)
    assert [d.committed_height() for d in net.disks] == [2, 2, 2, 2]
    empty, _ = net.disks[0].blocks[2]
    assert empty.txs == () and empty.results_root == sha256(b"results", block.hash)
    net.tick(60_000)
    assert [d.committed_height() for d in net.disks] == [2, 2, 2, 2]  # no more blocks
    assert all(node.deadline_ms() is None for node in net.nodes)  # quiet again


@pytest.mark.parametrize("events", [True, False])
def test_an_events_only_block_is_certified_by_a_block_after_it(events: bool) -> None:
    """ADR 0026: the empty block after a trade's block has events (its results root is
    not the quiet one), so a block is due on it as on a block with transactions; then
    the chain is quiet. The control: without events, the chain stops after the first
    empty block, as before."""
    net = Net(events_at=frozenset({2} if events else ()))
    net.nodes[2].submit(b"trade-1")
    net.run()
    net.tick(BATCH_DELAY_MS)
    assert [d.committed_height() for d in net.disks] == [2, 2, 2, 2]
    net.tick(2 * BATCH_DELAY_MS)
    top = 3 if events else 2
    assert [d.committed_height() for d in net.disks] == [top] * 4
    if events:
        third, _ = net.disks[1].blocks[3]
        second, _ = net.disks[1].blocks[2]
        assert third.txs == () and third.results_root == sha256(b"results", second.hash)
    net.tick(60_000)
    assert [d.committed_height() for d in net.disks] == [top] * 4  # quiet again
    assert all(node.deadline_ms() is None for node in net.nodes)
    assert not any(n.refused[(Kind.PROPOSAL, Reason.EMPTY_AFTER_EMPTY)] for n in net.nodes)


def test_an_empty_block_on_a_quiet_parent_is_refused() -> None:
    """The rule's other side (ADR 0026): the leader after a quiet block (no
    transactions, its results root the quiet one) that proposes an empty block anyway is
    refused by every replica (``empty_after_empty``), and nothing is committed."""
    net = Net(events_at=frozenset())
    net.nodes[2].submit(b"trade-1")
    net.run()
    net.tick(BATCH_DELAY_MS)
    assert [d.committed_height() for d in net.disks] == [2, 2, 2, 2]
    lead = net.nodes[0].leader(net.nodes[0].view)
    leader = net.nodes[lead]
    assert not leader._head().certify
    lie = replace(leader._head(), certify=True)  # the leader's own view of the parent
    leader._propose(leader._new_block(lie, leader.committed_cert), None, leader.committed_cert, lie)
    net.drain(lead)
    net.run()
    others = [n for i, n in enumerate(net.nodes) if i != lead]
    assert [n.refused[(Kind.PROPOSAL, Reason.EMPTY_AFTER_EMPTY)] for n in others] == [1, 1, 1]
    assert [d.committed_height() for d in net.disks] == [2, 2, 2, 2]


def test_a_commit_certificate_goes_to_the_next_leader_first() -> None:
    """The next view's proposal waits for it, the others only apply the block: the
    transport writes in send order, so the next leader is first. (A prepare QC goes out
    in index order.) Leader 0's next is validator 1 in plain index order, which would
    pass by luck; a 7-node cluster's schedule strides (3 of 7), so the next is not 1."""
    net = Net(n=7)
    net.nodes[2].submit(b"trade-1")
    net.run()
    nxt = net.nodes[0].leader(1)
    assert nxt not in (0, 1)  # the stride makes the order tell
    commit_qcs = [
        dst
        for kind, dst, msg in net.outboxes[0].log
        if kind == "send" and isinstance(msg, QCMessage) and msg.qc.phase is Phase.COMMIT
    ]
    assert commit_qcs[0] == nxt and sorted(commit_qcs) == list(range(7))
    prepare_qcs = [
        dst
        for kind, dst, msg in net.outboxes[0].log
        if kind == "send" and isinstance(msg, QCMessage) and msg.qc.phase is Phase.PREPARE
    ]
    assert prepare_qcs == list(range(7))


def test_an_empty_block_needs_a_parent_with_transactions() -> None:
    net = Net()
    block = Block(CHAIN, 1, 0, net.nodes[1].committed_hash, 0, 500, 0, ROOT0, EMPTY_ROOT, ())
    net.nodes[1].step(0, Proposal(0, block, None, None), now_ms=1_000)
    net.drain(1)
    assert not net.sent(1, Vote)


def test_votes_leave_only_with_the_safety_state_that_covers_them() -> None:
    net = Net()
    net.nodes[0].submit(b"trade-1")
    net.run()
    votes = 0
    for i in range(4):
        state = SafetyState()  # what is on disk when each message leaves
        for kind, what, msg in net.outboxes[i].log:
            if kind == "persist":
                state = SafetyState.decode(what)  # type: ignore[arg-type]
            elif isinstance(msg, Vote):
                votes += 1
                voted = state.prepare_view if msg.phase is Phase.PREPARE else state.commit_view
                assert voted >= msg.view
    assert votes >= 8  # each node voted in both phases


def test_leader_loss_costs_one_timeout() -> None:
    net = Net()
    net.down = {0}  # leader of view 0
    for i in (1, 2, 3):
        net.nodes[i].submit(b"trade-1")
    net.run()
    assert all(d.committed_height() == 0 for d in net.disks)
    net.tick(net.nodes[1].cfg.view_timeout_base_ms)
    assert [d.committed_height() for d in net.disks[1:]] == [1, 1, 1]
    proposals = net.sent(1, Proposal)
    assert proposals and proposals[0].tc is not None  # type: ignore[attr-defined]
    assert net.sent(2, Timeout)
    # One view left on a timeout certificate (ledger_view_changes_total); the views the
    # commits moved through are not counted, though a prepare QC moves the view first.
    assert [net.nodes[i].views_timed_out for i in (1, 2, 3)] == [1, 1, 1]
    for i in (1, 2, 3):
        net.nodes[i].submit(b"trade-2")
    for later in (100, 200, 300):  # past the batch delays; under the next view timeout
        net.tick(net.nodes[1].cfg.view_timeout_base_ms + later)
    assert all(d.committed_height() >= 3 for d in net.disks[1:])
    assert [net.nodes[i].views_timed_out for i in (1, 2, 3)] == [1, 1, 1]


def test_replica_with_a_different_state_root_does_not_vote() -> None:
    net = Net(roots=[ROOT0, ROOT0, ROOT0, b"\x01" * 32])
    net.nodes[0].submit(b"trade-1")
    net.run()
    assert not net.sent(3, Vote)
    assert [d.committed_height() for d in net.disks[:3]] == [1, 1, 1]


def test_a_certified_root_we_do_not_share_halts_the_replica() -> None:
    net = Net()
    net.nodes[0].submit(b"trade-1")
    net.run()
    # Node 3's execution of block 1 diverges; block 2 carries everyone else's root.
    net.nodes[3].executed_root = b"\x02" * 32
    net.nodes[1].submit(b"trade-2")
    net.tick(100)  # past the batching delay that follows a commit
    assert net.nodes[3].halted is not None and "root" in net.nodes[3].halted
    assert [d.committed_height() for d in net.disks[:3]] == [2, 2, 2]


def test_commit_certificate_verifies_offline_with_ed25519() -> None:
    net = Net(ed25519=True)
    net.nodes[0].submit(b"trade-1")
    net.run()
    _, cert = net.disks[2].blocks[1]
    n, q = 4, 3
    assert verify_certificate(cert, CHAIN, n, q, net.verifier, phase=Phase.COMMIT)
    assert not verify_certificate(cert, "other-chain", n, q, net.verifier)
    forged = QuorumCert(cert.phase, cert.view, cert.height, bytes(32), cert.signatures)
    assert not verify_certificate(forged, CHAIN, n, q, net.verifier)
    doubled = cert.signatures[:1] * 3
    assert not verify_certificate(
        QuorumCert(cert.phase, cert.view, cert.height, cert.block_hash, doubled),
        CHAIN,
        n,
        q,
        net.verifier,
    )


def test_restart_from_disk_never_votes_twice_in_a_view() -> None:
    net = Net()
    net.nodes[0].submit(b"trade-1")
    net.run()
    disk = net.disks[1]
    reborn = Replica(
        net.nodes[1].cfg,
        HashSigner(1),
        net.verifier,
        disk,
        executed_root=net.nodes[1].executed_root,
        results_root=net.nodes[1].executed_results,
        safety=disk.safety,
    )
    assert reborn.view >= 1 and reborn.safety.prepare_view == 0
    assert reborn.committed_height == 1


def test_under_load_blocks_fill_up_to_the_bound() -> None:
    net = Net()
    net.nodes = [
        Replica(
            CoreConfig(CHAIN, net.quorum, i, ROOT0, block_txs_max=2),
            HashSigner(i),
            net.verifier,
            net.disks[i],
            executed_root=ROOT0,
            results_root=EMPTY_ROOT,
        )
        for i in range(4)
    ]
    net.nodes[0].submit(b"trade-0")  # idle: proposed at once, alone
    for k in range(1, 6):
        net.nodes[k % 4].submit(b"trade-%d" % k)
    net.run()
    for now in range(10, 200, 10):
        net.tick(now)
    sizes = [len(net.disks[0].blocks[h][0].txs) for h in sorted(net.disks[0].blocks)]
    assert sizes[0] == 1 and all(s <= 2 for s in sizes) and sum(sizes) == 6
    # ... and one empty block follows the last one, certifying its results (ADR 0005).
    assert sizes[1:] == [2, 2, 1, 0]


def test_block_timed_far_ahead_of_our_clock_gets_no_vote() -> None:
    net = Net()
    block = Block(CHAIN, 1, 0, net.nodes[1].committed_hash, 0, 10**9, 0, ROOT0, EMPTY_ROOT, (b"t",))
    net.nodes[1].step(0, Proposal(0, block, None, None), now_ms=1_000)
    net.drain(1)
    assert not net.sent(1, Vote)
    on_time = Block(
        CHAIN, 1, 0, net.nodes[2].committed_hash, 0, 1_500, 0, ROOT0, EMPTY_ROOT, (b"t",)
    )
    net.nodes[2].step(0, Proposal(0, on_time, None, None), now_ms=1_000)
    net.drain(2)
    assert net.sent(2, Vote)


@pytest.mark.parametrize("shift", [0, 1, 7])
def test_a_fresh_block_names_the_view_of_the_parent_certificate_it_is_proposed_on(
    shift: int,
) -> None:
    """The leader schedule reads whether a block's parent was certified in its own view
    from the block's ``parent_view`` (ADR 0022), so a voter checks it against the
    certificate the proposal carries: another view is refused (``not_fresh_block``); the
    control (``shift`` 0) gets the vote."""
    net = Net()
    net.nodes[0].submit(b"trade-1")
    net.run()
    voter = next(v for v in net.nodes if v.leader(v.view) != v.cfg.me)
    cert, view = voter.committed_cert, voter.view
    assert cert is not None and cert.view == view - 1 and cert.height >= 1
    leader, now = voter.leader(view), voter.committed_time_ms + 1
    block = Block(
        CHAIN, cert.height + 1, view, voter.committed_hash, leader, now, cert.height,
        *voter._executed_roots(), (b"trade-2",), cert.view + shift,
    )  # fmt: skip
    i = voter.cfg.me
    voter.step(leader, Proposal(view, block, cert, None), now_ms=now)
    net.drain(i)
    voted = [m for m in net.sent(i, Vote) if m.view == view]  # type: ignore[attr-defined]
    assert bool(voted) == (shift == 0)
    assert voter.refused[(Kind.PROPOSAL, Reason.NOT_FRESH_BLOCK)] == (shift != 0)


def _forged_qc(phase: Phase, view: int, block: Block, signers: range) -> QuorumCert:
    """A certificate the test signs for ``signers`` (the sim's hash keys): one that q
    validators could have formed."""
    msg = vote_message(CHAIN, phase, view, block.height, block.hash)
    sigs = tuple((i, HashSigner(i).sign(msg)) for i in signers)
    return QuorumCert(phase, view, block.height, block.hash, sigs)


@pytest.mark.parametrize("carried", ["ours", "first_prepare", "first_commit"])
def test_a_fresh_block_after_a_timeout_carries_no_older_parent_certificate_than_ours(
    carried: str,
) -> None:
    """Review r-pview (ADR 0022). A leader proposing after a timeout chooses which
    certificate of the parent it carries, and the block's ``parent_view`` names it. Block 1
    is certified in its first view (0) and again in view 2, as a block re-proposed after a
    view change is; the voter holds the certificate of view 2. A Byzantine leader of view
    4, after a timeout of view 3, carrying the prepare or commit certificate of view 0,
    would have the leader schedule read block 1 as certified on time: its proposer
    credited, the excused and the crediting views' leaders charged. Refused
    (``not_fresh_block``); the control carries the certificate of view 2 and gets the vote."""
    net = Net()
    net.nodes[0].submit(b"trade-1")
    net.run()
    q = net.quorum.q
    voter = next(v for v in net.nodes if v.leader(4) != v.cfg.me)
    i = voter.cfg.me
    parent, first = net.disks[i].blocks[1]
    assert first.view == 0 and voter.committed_height == 1
    again = _forged_qc(Phase.COMMIT, 2, parent, range(q))  # block 1, re-proposed in view 2
    voter.step(2, QCMessage(again))
    net.drain(i)
    assert voter.committed_view == 2 and voter.view == 3
    entries = tuple(
        Timeout(3, 1, None, None, None, j, HashSigner(j).sign(timeout_message(CHAIN, 3, 1, None)))
        .entry()
        for j in range(q)
    )  # fmt: skip
    tc = TimeoutCert(3, entries, again, None)
    cert = {
        "ours": again,
        "first_prepare": _forged_qc(Phase.PREPARE, 0, parent, range(q)),
        "first_commit": first,
    }[carried]
    leader, now = voter.leader(4), voter.committed_time_ms + 1
    block = Block(
        CHAIN, 2, 4, parent.hash, leader, now, 1, *voter._executed_roots(), (b"trade-2",),
        cert.view,
    )  # fmt: skip
    voter.step(leader, Proposal(4, block, cert, tc), now_ms=now)
    net.drain(i)
    assert voter.view == 4
    voted = [m for m in net.sent(i, Vote) if m.view == 4]  # type: ignore[attr-defined]
    assert bool(voted) == (carried == "ours")
    assert voter.refused[(Kind.PROPOSAL, Reason.NOT_FRESH_BLOCK)] == (carried != "ours")


def _forward_targets(net: Net, i: int) -> set[int]:
    log = net.outboxes[i].log
    return {dst for kind, dst, m in log if kind == "send" and isinstance(m, TxForward)}  # type: ignore[misc]


def test_client_transactions_go_to_the_next_leaders_not_to_everyone() -> None:
    """After idleness a transaction goes to all (every view timer starts with it); while
    others are pending, to the leaders of the next three views only."""
    net = Net(n=7)
    net.nodes[6].submit(b"trade-1")
    net.drain(6)
    assert _forward_targets(net, 6) == set(range(6))
    net.outboxes[6].clear()
    net.nodes[6].submit(b"trade-2")
    net.drain(6)
    leaders = {net.nodes[6].leader(view) for view in range(3)}
    assert len(leaders) == 3 and _forward_targets(net, 6) == leaders - {6}
    net.run()
    net.tick(BATCH_DELAY_MS)  # the next leader lets its block fill for a moment
    assert all(d.committed_height() >= 1 for d in net.disks)
    committed = {tx for block, _ in net.disks[3].blocks.values() for tx in block.txs}
    assert committed == {b"trade-1", b"trade-2"}


def test_a_pending_transaction_follows_the_leaders_after_each_commit() -> None:
    """Its first forwards are lost; once views 0-2 have passed (other trades commit), the
    node that accepted it sends it to the next leaders: committed with no view timeout."""
    net = Net(n=7)
    net.nodes[6].submit(b"lost-forward")
    net.drain(6)
    net.queue.clear()  # the forwards to leaders 0, 1 and 2 never arrive
    now = 0
    for leader, trade in ((0, b"b"), (2, b"c")):
        net.nodes[leader].submit(trade)
        for _ in range(5):  # commit, then the empty block that certifies its results
            now += BATCH_DELAY_MS
            net.tick(now)
    committed = {tx for d in net.disks[:1] for b, _ in d.blocks.values() for tx in b.txs}
    assert committed == {b"b", b"c", b"lost-forward"}
    assert now < VIEW_TIMEOUT_BASE_MS and not any(net.sent(i, Timeout) for i in range(7))
