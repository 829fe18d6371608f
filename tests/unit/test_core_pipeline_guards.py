"""Four guards of pipelining (ADR 0012) that an adversarial review could delete with every
other test green: the pipelined clause of the lock-conflict check, a proposal on a TC
not being taken for a pipelined one, the lagging-peer answer sending only a lock above
the committed head, and the leader refusing a relayed COMMIT vote of the view it just
left. Each test shows what the guard prevents; its mutant is in tests/mutation/known.py
("pipelining rules pinned (B)")."""

from __future__ import annotations

from dataclasses import replace

from node.core import (
    Block,
    Phase,
    Proposal,
    QCMessage,
    QuorumCert,
    SyncRequest,
    Timeout,
    TimeoutCert,
)
from node.core.refusal import Kind, Reason
from node.core.types import timeout_message
from tests.sim.harness import HashSigner
from tests.unit.test_core_pipeline import (
    _child,
    _commit_votes_to_0_held,
    _pipelined_at,
    _pqc,
    _silence_view_1,
    _votes,
)
from tests.unit.test_core_replica import CHAIN, Net

Q = 3


def _timeout(view: int, voter: int, lock: QuorumCert, block: Block) -> Timeout:
    """``voter``'s timeout of ``view`` at committed height 0, reporting ``lock``."""
    sig = HashSigner(voter).sign(timeout_message(CHAIN, view, 0, lock.view))
    return Timeout(view, 0, None, lock, block, voter, sig)


def _commit_certs(net: Net, i: int) -> list[QuorumCert]:
    return [m.qc for m in net.sent(i, QCMessage) if m.qc.phase is Phase.COMMIT]  # type: ignore[attr-defined]


def test_a_replica_locked_on_one_block_refuses_a_pipelined_child_of_another() -> None:
    """Beyond the safety bound (enough Byzantine signers to certify two blocks at one
    height in one view): replica 3 locked on block 1 = Y in view 0 and executed it
    speculatively; leader 0 also made a rival X at height 1, and X's PQC of view 1 moves
    replica 3's lock to X. Y's PQC of view 1 then comes in a pipelined proposal of view 2
    for a child of Y: every other check passes (Y's speculative roots, Y's time), only
    the lock on X refuses it. The control: a child of X in the same view gets the vote."""
    net = Net()
    y, _ = _pipelined_at(net)
    node = net.nodes[3]
    x = replace(y, txs=(b"rival",))  # leader 0 equivocated in view 0
    x_qc, y_qc = _pqc(1, x), _pqc(1, y)
    node.step(2, _timeout(1, 2, x_qc, x))  # a timeout reporting X: its block is kept
    node.step(2, QCMessage(x_qc))
    net.drain(3)  # the lock's block X is executed speculatively
    assert node.safety.high_pqc == x_qc and node.view == 2 and node.committed_height == 0
    leader = node.leader(2)
    on_y = _child(y, net._roots(3, y), view=2, proposer=leader)
    node.step(leader, Proposal(2, on_y, y_qc, None))
    net.drain(3)
    assert node.refused[(Kind.PROPOSAL, Reason.CONFLICTS_WITH_LOCK)] == 1
    assert node.safety.high_pqc == x_qc  # Y's PQC of the same view does not move it
    assert _votes(net, 3, Phase.PREPARE, 2) == []
    on_x = _child(x, net._roots(3, x), view=2, proposer=leader)
    node.step(leader, Proposal(2, on_x, x_qc, None))
    net.drain(3)
    assert [v.block_hash for v in _votes(net, 3, Phase.PREPARE, 2)] == [on_x.hash]


def test_a_proposal_on_a_tc_above_the_committed_head_waits_for_its_parent_to_commit() -> None:
    """Replica 3 holds block 1 = Y certified in view 0 (not committed) with its
    speculative roots. View 1 times out; the TC reports a lock on a rival X at height 1 of
    view 1. The leader of view 2 proposes a child of Y on that TC: it is not a pipelined
    proposal (those carry no TC), so it is not judged against the certified Y: if it
    were, the TC rule would let it through (it is above the TC's top height + 1) and the
    replica would vote a block that ignores the TC's lock. It waits, unrefused; once Y
    commits, X is moot and the block extends the committed head: then it gets the vote."""
    net = Net()
    held = _silence_view_1(net)
    node = net.nodes[3]
    y = node.safety.high_pqc_block
    assert y is not None and node.committed_height == 0 and node.view == 1
    x = replace(y, txs=(b"rival",))
    x_qc = _pqc(1, x)
    entries = tuple(_timeout(1, v, x_qc, x).entry() for v in range(Q))
    tc = TimeoutCert(1, entries, None, x_qc)
    leader = node.leader(2)
    block = _child(y, net._roots(3, y), view=2, proposer=leader, parent_view=0)
    before = sum(node.refused.values())
    node.step(leader, Proposal(2, block, _pqc(0, y), tc))
    net.drain(3)
    assert node.view == 2 and sum(node.refused.values()) == before
    assert _votes(net, 3, Phase.PREPARE, 2) == []
    cqc = next(m for _, dst, m in held if dst == 3)
    net.engine(3).step(0, cqc, net.now)  # type: ignore[arg-type]
    assert node.committed_height == 1 and sum(node.refused.values()) == before
    assert [v.block_hash for v in _votes(net, 3, Phase.PREPARE, 2)] == [block.hash]


def test_a_lagging_peer_is_sent_the_commit_certificate_and_not_a_lock_already_committed() -> None:
    """Validator 2 hears nothing while block 1 commits at the others, then times out view
    0. Replica 3 answers with what moved it on: block 1's commit certificate, and nothing
    else; its lock is block 1's PQC, at its committed height now, which would only be
    refused by the peer (unknown block before catch-up, stale after). The peer catches up
    on the certificate and commits block 1, refusing nothing."""
    net = Net()
    net.now = 1_000
    net.tamper = lambda s, d, m: None if d == 2 else m
    net.nodes[2].submit(b"trade-1")
    net.run()
    node, lagging = net.nodes[3], net.nodes[2]
    assert [d.committed_height() for d in net.disks] == [1, 1, 0, 1] and node.view == 1
    lock = node.safety.high_pqc
    assert lock is not None and lock.height == node.committed_height  # stale, kept
    net.tamper = None
    deadline = lagging.deadline_ms()
    assert deadline is not None
    net.now = deadline
    net.engine(2).tick(deadline)
    timeout = next(m for _, d, m in net.queue if d == 3 and isinstance(m, Timeout))
    assert timeout.view == 0
    net.queue.clear()
    net.engine(3).step(2, timeout, net.now)
    replies = [m for s, d, m in net.queue if (s, d) == (3, 2)]
    assert replies == [QCMessage(node.committed_cert)]  # type: ignore[arg-type]
    net.queue.clear()
    for m in replies:
        net.engine(2).step(3, m, net.now)  # type: ignore[arg-type]
    assert net.sent(2, SyncRequest) != []
    net.run()
    assert lagging.committed_height == 1 and sum(lagging.refused.values()) == 0


def test_a_commit_vote_of_the_view_left_counts_only_from_its_voter() -> None:
    """Leader 0 of view 0 moved to view 1 on the pipelined proposal before the COMMIT
    votes of view 0 reached it (it still counts those). Validator 2 relays the COMMIT
    votes of 1 and 3 (genuine, signed by them): each is refused as not its sender's, and
    with leader 0's own vote they do not make the commit certificate; the voters' own
    votes do."""
    net = Net()
    held = _commit_votes_to_0_held(net)
    leader = net.nodes[0]
    assert leader.view == 1 and sorted(s for s, _, _ in held) == [1, 2, 3]
    votes = {src: v for src, _, v in held}
    for voter in (1, 3):
        net.engine(0).step(2, votes[voter], net.now)  # type: ignore[arg-type]
    assert leader.refused[(Kind.VOTE, Reason.VOTER_NOT_SENDER)] == 2
    assert _commit_certs(net, 0) == []
    net.tamper = None
    for voter in (1, 3):
        net.engine(0).step(voter, votes[voter], net.now)  # type: ignore[arg-type]
    (cqc,) = set(_commit_certs(net, 0))  # one certificate, to every validator
    assert (cqc.view, cqc.height, [i for i, _ in cqc.signatures]) == (0, 1, [0, 1, 3])
    assert leader.refused[(Kind.VOTE, Reason.VOTER_NOT_SENDER)] == 2
