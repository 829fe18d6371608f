"""Pipelining (ADR 0012): the leader of view v + 1 proposes block h + 1 on the prepare QC
of block h from view v, before h commits, with the roots of executing h speculatively.
Each test names the rule it pins; the mutants that break them are in
tests/mutation/known.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from node.config import BATCH_DELAY_MS
from node.core import (
    Block,
    Phase,
    Proposal,
    QCMessage,
    QuorumCert,
    Replica,
    SyncRequest,
    SyncResponse,
    Timeout,
    TxForward,
    Vote,
)
from node.core.engine import SpeculationCache
from node.core.leader import LeaderSchedule
from node.core.refusal import Kind, Reason
from node.core.types import timeout_message, vote_message
from tests.sim.harness import HashSigner
from tests.unit.test_core_replica import CHAIN, Net

Q = 3


def _qc(phase: Phase, view: int, block: Block) -> QuorumCert:
    msg = vote_message(CHAIN, phase, view, block.height, block.hash)
    sigs = tuple((i, HashSigner(i).sign(msg)) for i in range(Q))
    return QuorumCert(phase, view, block.height, block.hash, sigs)


def _pqc(view: int, block: Block) -> QuorumCert:
    return _qc(Phase.PREPARE, view, block)


def _commit_certs_of(height: int, held: list[tuple[int, int, object]]):  # type: ignore[no-untyped-def]
    """A tamper that holds back every commit certificate of ``height`` (into ``held``)."""

    def hold(src: int, dst: int, msg: object) -> object | None:
        if isinstance(msg, QCMessage) and msg.qc.phase is Phase.COMMIT and msg.qc.height == height:
            held.append((src, dst, msg))
            return None
        return msg

    return hold


def _tick_every_half_second(net: Net, until: Callable[[], object] = lambda: False) -> None:
    """Ticks from t = 1.5 s to 20.5 s, half a second apart (views time out at 1 s and
    back off), stopping early once ``until()`` holds."""
    for k in range(1, 40):
        net.now = 1_000 + k * 500
        net.tick(net.now)
        if until():
            return


def _silence_view_1(net: Net) -> list[tuple[int, int, object]]:
    """A trade at validator 0 at t = 1 s, with view 1's proposals lost and block 1's commit
    certificates held back (returned): every replica that hears them holds block 1's PQC."""
    held: list[tuple[int, int, object]] = []
    hold = _commit_certs_of(1, held)
    net.tamper = lambda s, d, m: None if isinstance(m, Proposal) and m.view == 1 else hold(s, d, m)
    net.now = 1_000
    net.nodes[0].submit(b"trade-1")
    net.run()
    return held


def _proposals(net: Net, src: int, view: int) -> list[Proposal]:
    return [m for m in net.sent(src, Proposal) if m.view == view]  # type: ignore[attr-defined]


def _votes(net: Net, src: int, phase: Phase, view: int) -> list[Vote]:
    return [m for m in net.sent(src, Vote) if m.phase is phase and m.view == view]  # type: ignore[attr-defined]


def _certified_not_committed(net: Net) -> tuple[list[tuple[int, int, object]], Block]:
    """Block 1 (a trade) gets its prepare QC in view 0; its commit certificates are held
    back, so every replica holds the PQC and nothing is committed. Returns what was held
    and block 1."""
    held: list[tuple[int, int, object]] = []
    net.now = 1_000
    net.tamper = _commit_certs_of(1, held)
    net.nodes[0].submit(b"trade-1")
    net.run()
    block = _proposals(net, 0, 0)[0].block
    assert all(d.committed_height() == 0 for d in net.disks)
    assert all(n.safety.high_pqc is not None and n.safety.high_pqc.height == 1 for n in net.nodes)
    return held, block


@pytest.mark.parametrize("speculate", [True, False])
def test_the_next_leader_proposes_on_the_prepare_qc_before_the_commit_certificate(
    speculate: bool,
) -> None:
    """With the speculate port the leader of view 1 proposes block 2 on block 1's PQC, with
    the roots after block 1, while block 1's commit certificate is still on its way; both
    commit, in height order, with one commit certificate each. Without the port (the
    control) it waits for the certificate, as before pipelining."""
    net = Net(speculate=speculate)
    held, first = _certified_not_committed(net)
    net.tick(1_000 + BATCH_DELAY_MS)
    pipelined = _proposals(net, 1, 1)
    if not speculate:
        assert pipelined == []
        return
    assert len(pipelined) == 3  # to every peer (the leader decides its own vote inline)
    p = pipelined[0]
    assert p.parent_cert is not None and p.parent_cert.phase is Phase.PREPARE
    assert (p.block.height, p.block.parent_hash, p.parent_cert.view) == (2, first.hash, 0)
    assert [len(_votes(net, i, Phase.PREPARE, 1)) for i in range(4)] == [1, 1, 1, 1]
    assert all(d.committed_height() == 0 for d in net.disks)
    # Block 2 carries the roots after block 1, executed speculatively on the head.
    assert (p.block.state_root, p.block.results_root) == net._roots(0, first)
    net.tamper = None
    net.queue.extend(held)
    net.run()
    for d in net.disks:
        assert d.committed_height() == 2
        (b1, c1), (b2, c2) = d.blocks[1], d.blocks[2]
        assert (b1.hash, b2.hash) == (first.hash, p.block.hash)
        assert (c1.phase, c1.height, c2.phase, c2.height) == (Phase.COMMIT, 1, Phase.COMMIT, 2)


def test_a_pipelined_block_gets_no_commit_vote_before_its_parent_commits() -> None:
    """Commit in height order: block 2's PQC reaches replicas that have not committed
    block 1; they keep it and commit-vote block 2 only once block 1 commits (a commit
    certificate for block 2 before block 1's would leave block 1 without its own)."""
    net = Net()
    held, _ = _certified_not_committed(net)
    net.tick(1_000 + BATCH_DELAY_MS)
    assert all(n.committed_height == 0 for n in net.nodes)
    assert all(_votes(net, i, Phase.COMMIT, 1) == [] for i in range(4))
    assert all(n.safety.high_pqc.height == 1 for n in net.nodes)  # type: ignore[union-attr]
    net.tamper = None
    net.queue.extend(held)
    net.run()
    assert [len(_votes(net, i, Phase.COMMIT, 1)) for i in range(4)] == [1, 1, 1, 1]


def _commit_votes_to_0_held(net: Net) -> list[tuple[int, int, object]]:
    """Leader 0 proposes block 1 (a trade) in view 0; the others' COMMIT votes to it are
    held back (returned) while the pipelined proposal of view 1 moves it to view 1."""
    net.now = 1_000
    held: list[tuple[int, int, object]] = []

    def late_commit_votes_to_0(src: int, dst: int, msg: object) -> object | None:
        if isinstance(msg, Vote) and msg.phase is Phase.COMMIT and dst == 0 and src != 0:
            held.append((src, dst, msg))
            return None
        return msg

    net.tamper = late_commit_votes_to_0
    net.nodes[0].submit(b"trade-1")
    net.run()
    net.tick(1_000 + BATCH_DELAY_MS)
    return held


def test_the_leader_of_a_view_left_still_forms_its_commit_certificate() -> None:
    """Leader 0 receives the pipelined proposal of view 1 (and moves to view 1) before the
    commit votes of view 0 reach it: it still counts them and sends block 1's commit
    certificate, so block 1 commits without a view change."""
    net = Net()
    held = _commit_votes_to_0_held(net)
    assert net.nodes[0].view == 1 and len(_proposals(net, 1, 1)) == 3
    net.tamper = None
    net.queue.extend(held)
    net.run()
    certs = [m for m in net.sent(0, QCMessage) if m.qc.phase is Phase.COMMIT]  # type: ignore[attr-defined]
    assert certs and certs[0].qc.view == 0 and certs[0].qc.height == 1
    assert all(d.committed_height() == 2 for d in net.disks)


def test_a_pipelined_block_leaves_out_its_parents_transactions() -> None:
    """Block 1's trade is still pending everywhere when block 2 is proposed on block 1's
    PQC: block 2 carries only the trade that came after."""
    net = Net()
    _, first = _certified_not_committed(net)
    assert first.txs == (b"trade-1",)
    net.nodes[1].submit(b"trade-2")
    net.run()
    assert b"trade-1" in net.nodes[1].mempool._pending.values()
    net.tick(1_000 + BATCH_DELAY_MS)
    assert _proposals(net, 1, 1)[0].block.txs == (b"trade-2",)


def test_a_lost_pipelined_proposal_costs_one_view_change_not_the_chain() -> None:
    """Validator 3 is down; block 1's commit certificate and the pipelined proposal of
    view 1 are lost. Every live replica holds block 1's PQC, which moved it to view 1, so
    the three time out view 1 together, form a TC, and block 1 commits by re-proposal.
    (When only the next leader moved on its PQC, it timed out view 1 alone while the
    others timed out view 0: no quorum for either, the chain stopped; simulator seed
    1892 at 4/3.)"""
    net = Net()
    net.down = {3}
    _silence_view_1(net)
    assert [n.view for n in net.nodes[:3]] == [1, 1, 1]
    net.tamper = None
    _tick_every_half_second(net)
    for d in net.disks[:3]:
        assert d.committed_height() >= 1 and d.blocks[1][0].txs == (b"trade-1",)


def test_a_replica_that_missed_the_prepare_qc_gets_it_when_it_times_out_the_view_left() -> None:
    """Validator 2 is down; block 1's PQC reaches only its leader, 0, which moves to view
    1 on it; 1 and 3 stay in view 0. When they time out view 0, 0 (past it) answers with
    the PQC, which moves them to view 1 too; the three time out view 1 together and block
    1 commits. (Unanswered, 0 timed out view 1 alone and 1 and 3 view 0: no quorum for
    either, the chain stopped; simulator seed 1719 at 4/3.)"""
    net = Net()
    net.down = {2}
    net.tamper = lambda s, d, m: None if isinstance(m, QCMessage) and d != 0 else m
    net.now = 1_000
    net.nodes[0].submit(b"trade-1")
    net.run()
    assert [net.nodes[i].view for i in (0, 1, 3)] == [1, 0, 0]
    net.tamper = None
    _tick_every_half_second(net)
    for i in (0, 1, 3):
        assert net.disks[i].committed_height() >= 1
        assert net.disks[i].blocks[1][0].txs == (b"trade-1",)


def _pipelined_at(net: Net) -> tuple[Block, QuorumCert]:
    """Node 3 holds block 1's PQC of view 0 and its speculative roots; the leader of view
    1 stays silent (tests propose by hand). Returns block 1 and its PQC."""
    _silence_view_1(net)
    net.tick(1_000 + BATCH_DELAY_MS)
    node = net.nodes[3]
    pqc = node.safety.high_pqc
    block = node.safety.high_pqc_block
    assert pqc is not None and block is not None and pqc.view == 0 and node.committed_height == 0
    return block, pqc


def _child(parent: Block, roots: tuple[bytes, bytes], **changes: object) -> Block:
    """A fresh child of ``parent`` in view 1, or the view given, proposed on the parent's
    certificate of the view before."""
    changes.setdefault("parent_view", int(changes.get("view", 1)) - 1)  # type: ignore[call-overload]
    block = Block(
        CHAIN, 2, 1, parent.hash, 1, parent.time_ms + 1, 1, roots[0], roots[1], (b"trade-2",)
    )
    return replace(block, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("none", None),
        ("roots_of_the_committed_head", Reason.ROOTS_DIFFER),
        ("timed_as_its_parent", Reason.TIME_NOT_AFTER_PARENT),
    ],
    ids=["control", "roots", "time"],
)
def test_a_pipelined_block_is_checked_against_its_certified_parent(
    change: str, reason: Reason | None
) -> None:
    """The voting rules apply with the certified parent in place of the committed head:
    the roots after the parent (executed speculatively), a time after the parent's.
    ``none`` is the control: the same block, correct, gets the vote."""
    net = Net()
    parent, pqc = _pipelined_at(net)
    node = net.nodes[3]
    roots = net._roots(3, parent)
    child = {
        "none": _child(parent, roots),
        "roots_of_the_committed_head": _child(parent, node._executed_roots()),
        "timed_as_its_parent": _child(parent, roots, time_ms=parent.time_ms),
    }[change]
    before = sum(node.refused.values())
    node.step(1, Proposal(1, child, pqc, None))
    net.drain(3)
    votes = _votes(net, 3, Phase.PREPARE, 1)
    if reason is None:
        assert [v.block_hash for v in votes] == [child.hash]
        assert sum(node.refused.values()) == before
    else:
        assert votes == []
        assert node.refused[(Kind.PROPOSAL, reason)] == 1


def test_an_empty_block_on_an_empty_certified_parent_gets_no_vote() -> None:
    """Idle means quiet, pipelined too: block 1 has a trade and commits, block 2 (empty,
    certifying block 1's results) is certified but not committed; an empty block 3 on it
    is refused, although the committed head (block 1) has transactions. The control: the
    same block with a trade gets the vote."""
    net = Net()
    net.now = 1_000
    net.nodes[0].submit(b"trade-1")
    net.run()
    assert all(d.committed_height() == 1 for d in net.disks)
    net.tamper = _commit_certs_of(2, [])
    net.tick(1_000 + BATCH_DELAY_MS)
    node = net.nodes[3]
    empty, pqc = node.safety.high_pqc_block, node.safety.high_pqc
    assert empty is not None and pqc is not None and empty.height == 2 and not empty.txs
    assert node.committed_height == 1
    roots = node._spec_roots[empty.hash]
    view = pqc.view + 1
    leader = node.leader(view)
    child = Block(CHAIN, 3, view, empty.hash, leader, empty.time_ms + 1, 2, *roots, (), pqc.view)
    node.step(leader, Proposal(view, child, pqc, None))
    net.drain(3)
    assert node.refused[(Kind.PROPOSAL, Reason.EMPTY_AFTER_EMPTY)] == 1
    assert _votes(net, 3, Phase.PREPARE, view) == []
    with_trade = replace(child, txs=(b"trade-2",))
    node.step(leader, Proposal(view, with_trade, pqc, None))
    net.drain(3)
    assert [v.block_hash for v in _votes(net, 3, Phase.PREPARE, view)] == [with_trade.hash]


def test_a_timeout_whose_lock_does_not_extend_its_commit_is_refused() -> None:
    """Pipelining certifies children of blocks that never commit; a timeout reporting such
    a block as its lock (a PQC at committed + 1 off the committed chain) is refused, or
    its TC would make the next leader re-propose a block no honest replica can vote for."""
    net = Net()
    node = net.nodes[3]
    off_chain = Block(CHAIN, 1, 0, b"\x07" * 32, 0, 5, 0, bytes(32), bytes(32), (b"t",))
    on_chain = replace(off_chain, parent_hash=node.committed_hash)
    for block, counted in ((on_chain, 0), (off_chain, 1)):
        pqc = _pqc(0, block)
        sig = HashSigner(2).sign(timeout_message(CHAIN, 0, 0, 0))
        node.step(2, Timeout(0, 0, None, pqc, block, 2, sig))
        assert node.refused[(Kind.TIMEOUT, Reason.UNPROVEN_LOCK)] == counted


def test_a_kept_speculative_outcome_is_taken_only_on_the_state_it_ran_on() -> None:
    """The commit of a block writes the outcome kept from its speculation only if the
    committed state is still the one it ran on; either way nothing else stays kept."""
    a = Block(CHAIN, 1, 0, bytes(32), 0, 5, 0, bytes(32), bytes(32), (b"a",))
    b = replace(a, txs=(b"b",))
    cache: SpeculationCache[str] = SpeculationCache(size_max=2)
    cache.keep(a, b"root-0", "outcome-a")
    cache.keep(b, b"root-0", "outcome-b")
    assert cache.take(a, b"root-1") is None  # another state: execute again
    cache.keep(a, b"root-0", "outcome-a")
    assert cache.take(a, b"root-0") == "outcome-a"
    assert cache.take(b, b"root-0") is None  # discarded at a's commit


def _certified_after_a_failed_view(net: Net) -> tuple[list[tuple[int, int, object]], Block]:
    """Block 1 (a trade) commits in view 0; view 1 fails (its proposals are lost), so block
    2, proposed in view 2 after the TC, is certified and charges view 1 to its leader when
    it commits (the leader of view 3 becomes 0 instead of 3). Block 2's commit
    certificates are held back (returned, with block 2): every replica is in view 3."""
    net.now = 1_000
    net.nodes[0].submit(b"trade-1")
    net.run()
    assert [d.committed_height() for d in net.disks] == [1, 1, 1, 1]
    held: list[tuple[int, int, object]] = []
    hold = _commit_certs_of(2, held)
    net.tamper = lambda s, d, m: None if isinstance(m, Proposal) and m.view == 1 else hold(s, d, m)
    for k in range(2):
        net.nodes[k].submit(f"trade-{k + 2}".encode())
    net.run()
    # View 1 times out; view 2 proposes block 2, which is certified.
    _tick_every_half_second(
        net,
        until=lambda: all(n.safety.high_pqc and n.safety.high_pqc.height == 2 for n in net.nodes),
    )
    block2 = _proposals(net, 2, 2)[0].block
    assert block2.height == 2 and all(d.committed_height() == 1 for d in net.disks)
    assert all(n.safety.high_pqc is not None and n.safety.high_pqc.height == 2 for n in net.nodes)
    assert all(n.view == 3 for n in net.nodes)
    return held, block2


@pytest.mark.parametrize("probe", [True, False])
def test_nothing_is_pipelined_on_a_block_whose_commit_changes_the_leaders(
    monkeypatch: pytest.MonkeyPatch, probe: bool
) -> None:
    """View 1 fails (its proposals are lost), so block 2, proposed in view 2 after the TC,
    charges view 1 to its leader when it commits: validator 1 leaves the candidates and
    view 3's leader becomes 0 instead of 3. Block 2's commit certificate is held back. A
    replica that has committed block 2 and one that has not would name different leaders
    for view 3, refuse each other's proposals and votes, and time out (seen at 26/16 under
    load as stalls of a second, again and again), so nobody pipelines on block 2: view 3
    is proposed by 0, on block 2's commit certificate. The control (``probe`` off: the
    schedule never changes, as far as the replica knows) pipelines: 3 proposes on the PQC."""
    if not probe:
        monkeypatch.setattr(LeaderSchedule, "changes_at", lambda *_, **__: False)
    net = Net()
    held, _ = _certified_after_a_failed_view(net)
    net.nodes[2].submit(b"trade-4")  # work beyond block 2 for view 3's leader
    net.run()
    net.tick(net.now + BATCH_DELAY_MS)  # type: ignore[operator]
    pipelined = [p for i in range(4) for p in _proposals(net, i, 3)]
    if not probe:
        assert pipelined and {net.nodes[3].leader(3)} == {3} == {
            p.block.proposer for p in pipelined
        }
        return
    assert pipelined == []
    net.tamper = None
    net.queue.extend(held)
    net.run()
    net.tick(net.now + 2 * BATCH_DELAY_MS)  # type: ignore[operator]
    assert all(d.committed_height() >= 3 for d in net.disks)
    b3 = net.disks[0].blocks[3][0]
    assert (b3.view, b3.proposer) == (3, 0) and all(n.leader(3) == 0 for n in net.nodes)


def test_a_flood_of_refused_pipelined_proposals_does_not_push_out_the_certified_parent() -> None:
    """The leader of view 1 sends validator 2 twenty pipelined proposals on block 1's PQC,
    each with roots nobody has: each is refused, and none displaces block 1 from the
    blocks a certificate may name, so block 1's commit certificate commits it at once (it
    used to push block 1 out after eight, and the commit waited for catch-up from peers
    that might not have it either: a view change). Found by review in session 13."""
    net = Net()
    held, first = _certified_not_committed(net)
    r = net.nodes[2]
    for k in range(20):
        junk = replace(
            first, height=2, view=1, parent_hash=first.hash, proposer=1,
            time_ms=first.time_ms + 1, executed_height=1, state_root=b"x" * 32,
            results_root=b"y" * 32, txs=(b"junk-%d" % k,),
        )  # fmt: skip
        net.engine(2).step(1, Proposal(1, junk, _pqc(0, first), None), net.now)
    assert r.refused[(Kind.PROPOSAL, Reason.ROOTS_DIFFER)] == 20
    assert first.hash in r._candidates  # (its lock's block would also do: the next test)
    cqc = next(m for _, dst, m in held if dst == 2)
    net.engine(2).step(0, cqc, net.now)  # type: ignore[arg-type]
    assert r.committed_height == 1 and net.disks[2].blocks[1][0].hash == first.hash


def test_a_replica_restarted_with_its_lock_commits_on_the_certificate_without_catch_up() -> None:
    """Validator 2 locked on block 1's PQC, then restarted: its candidates are gone, its
    lock and the lock's block are on disk. The commit certificate then commits the lock's
    block at once, with no catch-up request."""
    net = Net()
    held, first = _certified_not_committed(net)
    disk = net.disks[2]
    old = net.nodes[2]
    net.nodes[2] = reborn = Replica(
        old.cfg, HashSigner(2), net.verifier, disk, executed_root=old.executed_root,
        results_root=old.executed_results, safety=disk.safety,
    )  # fmt: skip
    assert reborn.safety.high_pqc_block == first and first.hash not in reborn._candidates
    cqc = next(m for _, dst, m in held if dst == 2)
    net.engine(2).step(0, cqc, net.now)  # type: ignore[arg-type]
    assert reborn.committed_height == 1 and net.sent(2, SyncRequest) == []


def test_a_pipelined_proposal_that_overtakes_a_commit_certificate_costs_no_view_change() -> None:
    """No fault, only order: block 1's commit certificate reaches 1 and 2 but is late to 0
    and 3; leader 2's pipelined proposal of view 2 (on block 2's PQC of view 1) reaches 0
    and 3 first, so they move to view 2 and commit block 1 only afterwards. They still
    commit-vote block 2 (view 1, left on a certificate, not a TC), so block 2 commits with
    no timeout. (Refused, it cost a view change: found by review in session 13.)"""
    net = Net()
    held: list[tuple[int, int, object]] = []
    released: set[int] = set()

    def hold_cqc_1(src: int, dst: int, msg: object) -> object | None:
        late = isinstance(msg, QCMessage) and msg.qc.phase is Phase.COMMIT
        if late and msg.qc.height == 1 and dst not in released:  # type: ignore[attr-defined]
            held.append((src, dst, msg))
            return None
        return msg

    net.tamper = hold_cqc_1
    net.now = 1_000
    net.nodes[0].submit(b"trade-1")
    net.run()
    for node in net.nodes:
        node.submit(b"trade-2")
    net.run()
    net.now = 1_000 + BATCH_DELAY_MS
    net.tick(net.now)  # leader 1 pipelines block 2 on block 1's PQC
    assert _proposals(net, 1, 1)[0].parent_cert.phase is Phase.PREPARE  # type: ignore[union-attr]
    released.update({1, 2})
    net.queue.extend(h for h in held if h[1] in released)
    held[:] = [h for h in held if h[1] not in released]
    for node in net.nodes:
        node.submit(b"trade-3")
    net.run()
    net.now += BATCH_DELAY_MS
    net.tick(net.now)  # leader 2 pipelines block 3 on block 2's PQC
    assert [p.block.height for p in _proposals(net, 2, 2)][:1] == [3]
    released.update({0, 3})
    net.queue.extend(held)
    net.run()
    assert [len(_votes(net, i, Phase.COMMIT, 1)) for i in range(4)] == [1, 1, 1, 1]
    _tick_every_half_second(net, until=lambda: min(d.committed_height() for d in net.disks) >= 2)
    assert min(d.committed_height() for d in net.disks) >= 2
    assert sum(len(net.sent(i, Timeout)) for i in range(4)) == 0


def test_a_prepare_qc_for_a_block_off_our_chain_does_not_lock_us() -> None:
    """Validator 3 committed block 1. A timeout from 2 claims another block 1' committed
    at height 1 and reports X, a certified child of 1', as its lock; then X's prepare QC
    arrives. Validator 3 neither locks on X, nor commit-votes it, nor moves on: it votes
    for the chain's block 2. (Both certificates are forged: beyond the safety bound.
    Within it no block off our chain is ever kept at committed + 1: a commit keeps only
    the committed block's children, a vote needs the parent, and a timeout's lock must
    extend its commit certificate, which then names our committed block.)"""
    net = Net()
    net.now = 1_000
    net.nodes[0].submit(b"trade-1")
    net.run()
    node = net.nodes[3]
    first = net.disks[3].blocks[1][0]
    assert (node.committed_height, node.view) == (1, 1)
    lost = replace(first, time_ms=first.time_ms + 1)  # the same trade: the same roots after it
    x = Block(CHAIN, 2, 1, lost.hash, 1, lost.time_ms + 1, 1, *node._executed_roots(), ())
    sig = HashSigner(2).sign(timeout_message(CHAIN, 1, 1, 1))
    node.step(2, Timeout(1, 1, _qc(Phase.COMMIT, 0, lost), _pqc(1, x), x, 2, sig))
    assert x.hash in node._candidates and not node.refused
    node.step(1, QCMessage(_pqc(1, x)))
    net.drain(3)
    assert node.safety.high_pqc is not None and node.safety.high_pqc.block_hash == first.hash
    assert node.view == 1 and node.halted is None
    assert _votes(net, 3, Phase.COMMIT, 1) == []
    net.tick(1_000 + BATCH_DELAY_MS)
    second = _proposals(net, 1, 1)[0].block
    assert second.parent_hash == first.hash
    assert [v.block_hash for v in _votes(net, 3, Phase.PREPARE, 1)] == [second.hash]
    assert all(d.committed_height() == 2 for d in net.disks)


def test_a_kept_prepare_qc_of_a_view_long_left_does_not_lock_when_its_parent_commits() -> None:
    """Block 1 is certified in view 0 and its commit certificates are lost; leader 1
    pipelines block 2 on it in view 1, and block 2 is certified too (everyone keeps that
    PQC: block 1 has not committed). View 1 times out and block 1 commits by re-proposal
    in view 2. The kept PQC of block 2 is from view 1, two views behind: it is dropped,
    so nobody locks on block 2 and view 3's fresh block at height 2 gets every vote
    (locked on block 2, all would refuse it and view 3 would time out)."""
    net = Net()
    _certified_not_committed(net)
    net.tick(1_000 + BATCH_DELAY_MS)
    pipelined = _proposals(net, 1, 1)[0].block
    assert pipelined.height == 2 and all(n._ahead is not None for n in net.nodes)
    # Block 1's commit certificates of view 0 stay lost; view 2's go through.
    net.tamper = lambda s, d, m: (
        None if isinstance(m, QCMessage) and m.qc.phase is Phase.COMMIT and m.qc.view == 0 else m
    )
    _tick_every_half_second(net, until=lambda: all(d.committed_height() >= 1 for d in net.disks))
    assert all(n.committed_view == 2 and n.view == 3 for n in net.nodes)
    assert all(n.safety.high_pqc.height == 1 for n in net.nodes)  # type: ignore[union-attr]
    net.tick(net.now + BATCH_DELAY_MS)  # type: ignore[operator]
    fresh = next(p.block for i in range(4) for p in _proposals(net, i, 3))
    assert fresh.height == 2 and fresh.hash != pipelined.hash
    assert [[v.block_hash for v in _votes(net, i, Phase.PREPARE, 3)] for i in range(4)] == [
        [fresh.hash]
    ] * 4
    assert all(d.committed_height() == 2 for d in net.disks)


def test_a_lagging_leader_does_not_pipeline_on_a_prepare_qc_of_an_older_view() -> None:
    """Validator 2, leader of view 2, locked on block 1's PQC of view 0 and then heard
    nothing while the others committed blocks 1 and 2. Block 2's commit certificate
    (view 1) moves it to view 2 while its catch-up is on the way: it does not propose on
    its old lock (nobody could vote for that), so once caught up it proposes block 3 on
    the commit certificate and the chain goes on in view 2."""
    net = Net()
    held, _ = _certified_not_committed(net)
    cut: list[tuple[int, int, object]] = []

    def cut_off_2(src: int, dst: int, msg: object) -> object | None:
        if dst == 2:
            cut.append((src, dst, msg))
            return None
        return msg

    net.tamper = cut_off_2
    net.queue.extend(h for h in held if h[1] != 2)
    net.run()
    net.tick(1_000 + BATCH_DELAY_MS)
    assert [d.committed_height() for d in net.disks] == [2, 2, 0, 2]
    lagging = net.nodes[2]
    assert lagging.leader(2) == 2 and lagging.safety.high_pqc.view == 0  # type: ignore[union-attr]
    cqcs = [m for _, _, m in cut if isinstance(m, QCMessage) and m.qc.phase is Phase.COMMIT]
    cqc = next(m for m in cqcs if m.qc.height == 2)
    lagging.submit(b"trade-3")
    responses: list[tuple[int, int, object]] = []

    def hold_sync_responses(src: int, dst: int, msg: object) -> object | None:
        if isinstance(msg, SyncResponse):
            responses.append((src, dst, msg))
            return None
        return msg

    net.tamper = hold_sync_responses
    net.now = 1_000 + 3 * BATCH_DELAY_MS  # past its batch delay
    net.engine(2).step(1, cqc, net.now)
    net.run()
    assert lagging.view == 2 and lagging.committed_height == 0 and responses
    assert _proposals(net, 2, 2) == []
    net.tamper = None
    net.queue.extend(responses)
    net.run()
    net.tick(net.now + BATCH_DELAY_MS)
    assert [(p.block.height, p.parent_cert.phase) for p in _proposals(net, 2, 2)] == [  # type: ignore[union-attr]
        (3, Phase.COMMIT)
    ] * 3
    assert all(d.committed_height() == 3 for d in net.disks)


def test_after_a_timeout_certificate_the_leader_follows_it_not_its_own_prepare_qc() -> None:
    """View 0's prepare QC of block 1 is lost, so view 0 times out; leader 1 (which has no
    transaction) gets the TC and has nothing to propose, then the late PQC, which locks
    it, then a trade. The TC rules view 1: leader 1 proposes its trade on the committed
    head with the TC (the TC reports no lock), and it commits in view 1. Pipelined on its
    own PQC instead, its block would be voted for but block 1, with no commit votes after
    the TC, would not commit: a view change more."""
    net = Net()
    net.now = 1_000
    held: list[tuple[int, int, object]] = []

    def hold(src: int, dst: int, msg: object) -> object | None:
        pqc = isinstance(msg, QCMessage) and msg.qc.phase is Phase.PREPARE
        if pqc or (dst == 1 and isinstance(msg, TxForward)):
            held.append((src, dst, msg))
            return None
        return msg

    net.tamper = hold
    net.nodes[0].submit(b"trade-1")
    net.run()
    assert net.nodes[1].mempool.pending_beyond(frozenset())[0] == 0
    _tick_every_half_second(net, until=lambda: all(n.view == 1 for n in net.nodes))
    leader = net.nodes[1]
    assert leader._last_tc is not None and leader._last_tc.view == 0
    assert leader.safety.high_pqc is None and _proposals(net, 1, 1) == []
    net.tamper = None
    net.queue.extend(h for h in held if h[1] == 1 and isinstance(h[2], QCMessage))
    net.run()
    assert leader.safety.high_pqc is not None and leader.safety.high_pqc.view == 0
    leader.submit(b"trade-2")
    net.run()
    net.tick(net.now + BATCH_DELAY_MS)
    proposals = _proposals(net, 1, 1)
    assert [(p.block.height, p.block.txs, p.tc is not None) for p in proposals] == [
        (1, (b"trade-2",), True)
    ] * 3
    for d in net.disks:
        assert d.committed_height() >= 1 and d.blocks[1][0].txs == (b"trade-2",)
        assert d.blocks[1][1].view == 1
    assert not any(m.view >= 1 for i in range(4) for m in net.sent(i, Timeout))


@pytest.mark.parametrize("probe", [True, False])
def test_a_pipelined_proposal_on_a_block_whose_commit_changes_the_leaders_gets_no_vote(
    monkeypatch: pytest.MonkeyPatch, probe: bool
) -> None:
    """The voters' side of the rule above: block 2's commit makes 0 the leader of view 3,
    but before it commits the schedule still names 3, and 3 (Byzantine, or not knowing the
    rule) proposes block 3 on block 2's PQC. Validator 1 keeps it, unvoted, until block 2
    commits, and then refuses it: 3 does not lead view 3. The control (``probe`` off: the
    schedule never changes, as far as the replica knows): the same proposal gets the vote."""
    if not probe:
        monkeypatch.setattr(LeaderSchedule, "changes_at", lambda *_, **__: False)
    net = Net()
    held, block2 = _certified_after_a_failed_view(net)
    voter = net.nodes[1]
    pqc = voter.safety.high_pqc
    assert pqc is not None and pqc.block_hash == block2.hash and voter.leader(3) == 3
    roots = voter._spec_roots[block2.hash]
    time_ms = max(voter.now_ms, block2.time_ms + 1)
    block3 = Block(CHAIN, 3, 3, block2.hash, 3, time_ms, 2, *roots, (b"trade-4",), pqc.view)
    voter.step(3, Proposal(3, block3, pqc, None))
    net.drain(1)
    votes = [v.block_hash for v in _votes(net, 1, Phase.PREPARE, 3)]
    if not probe:
        assert votes == [block3.hash]
        return
    assert votes == [] and voter.refused[(Kind.PROPOSAL, Reason.NOT_LEADER)] == 0
    cqc = next(m for _, dst, m in held if dst == 1)
    net.engine(1).step(0, cqc, net.now)  # type: ignore[arg-type]
    assert voter.committed_height == 2 and voter.leader(3) == 0
    assert voter.refused[(Kind.PROPOSAL, Reason.NOT_LEADER)] == 1
    assert _votes(net, 1, Phase.PREPARE, 3) == []
