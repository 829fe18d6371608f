"""Tests written to kill mutants of the consensus core that the rest of the suite let live
(issue 19; docs/testing.md lists each mutant and the test that kills it).

Each test pins one safety rule at its exact boundary: a certificate of q signatures and
one of q - 1, a signer inside the validator set and one just outside, a proposal that
extends the lock a timeout certificate reports and one that does not.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from node.config import VIEW_TIMEOUT_BASE_MS
from node.core import (
    Block,
    DecodeError,
    Phase,
    Proposal,
    QCMessage,
    Quorum,
    QuorumCert,
    Replica,
    SafetyOwner,
    SafetyState,
    SyncResponse,
    Timeout,
    TimeoutCert,
    Vote,
    encode_block,
    encode_qc,
    timeout_message,
    verify_certificate,
    verify_timeout_cert,
    vote_message,
)
from node.core.refusal import Kind, Reason
from node.merkle import EMPTY_ROOT
from tests.sim.harness import HashSigner, HashVerifier
from tests.unit.core_refusals import (
    NOT_LEADER,
    PROPOSAL_CERT,
    TIMEOUT_TOO_FAR_AHEAD,
    TIMEOUT_UNPROVEN,
    VOTING_RULE,
    refused,
)
from tests.unit.test_core_refusals import NOW, replica
from tests.unit.test_core_replica import CHAIN, ROOT0, Net

N, Q = 4, 3
BLOCK_HASH = bytes(range(32))


def _qc(signers: list[int], phase: Phase = Phase.COMMIT, view: int = 5) -> QuorumCert:
    msg = vote_message(CHAIN, phase, view, 2, BLOCK_HASH)
    sigs = tuple((i, HashSigner(i).sign(msg)) for i in signers)
    return QuorumCert(phase, view, 2, BLOCK_HASH, sigs)


# --- certificates: q distinct validators, no fewer, no outsiders ---------------------------


def test_a_certificate_needs_q_signatures_and_q_minus_1_is_refused() -> None:
    verifier = HashVerifier(N)
    assert verify_certificate(_qc([0, 1, 2]), CHAIN, N, Q, verifier)
    assert verify_certificate(_qc([0, 1, 2, 3]), CHAIN, N, Q, verifier)
    assert not verify_certificate(_qc([0, 1]), CHAIN, N, Q, verifier)
    assert not verify_certificate(_qc([]), CHAIN, N, Q, verifier)
    # q = n: all four, and three is not enough.
    assert verify_certificate(_qc([0, 1, 2, 3]), CHAIN, N, 4, verifier)
    assert not verify_certificate(_qc([0, 1, 3]), CHAIN, N, 4, verifier)


def test_a_signer_counted_twice_does_not_make_a_quorum() -> None:
    verifier = HashVerifier(N)
    assert not verify_certificate(_qc([0, 1, 1]), CHAIN, N, Q, verifier)
    assert not verify_certificate(_qc([2, 2, 2]), CHAIN, N, Q, verifier)
    # Duplicates beside a real quorum are refused too: the certificate must be canonical.
    assert not verify_certificate(_qc([0, 1, 2, 2]), CHAIN, N, Q, verifier)
    assert not verify_certificate(_qc([0, 1, 2, 3, 3]), CHAIN, N, Q, verifier)  # > n


def test_a_certificate_of_another_phase_than_a_vote_is_refused() -> None:
    qc = _qc([0, 1, 2])
    assert not verify_certificate(replace(qc, phase=Phase.TIMEOUT), CHAIN, N, Q, HashVerifier(N))


def test_a_signature_from_outside_the_validator_set_is_not_counted() -> None:
    # The verifier knows a fifth key (a retired validator, a key of another chain): the
    # certificate check itself must bound indexes by n, not trust the verifier to.
    verifier = HashVerifier(N + 2)
    assert verify_certificate(_qc([1, 2, 3]), CHAIN, N, Q, verifier)
    assert not verify_certificate(_qc([1, 2, 4]), CHAIN, N, Q, verifier)
    assert not verify_certificate(_qc([1, 2, 5]), CHAIN, N, Q, verifier)
    assert not verify_certificate(_qc([0, 1, -1]), CHAIN, N, Q, verifier)


def test_a_certificate_is_checked_for_the_phase_asked() -> None:
    verifier = HashVerifier(N)
    prepare = _qc([0, 1, 2], Phase.PREPARE)
    assert verify_certificate(prepare, CHAIN, N, Q, verifier, phase=Phase.PREPARE)
    assert not verify_certificate(prepare, CHAIN, N, Q, verifier, phase=Phase.COMMIT)
    assert verify_certificate(prepare, CHAIN, N, Q, verifier)
    commit = _qc([0, 1, 2], Phase.COMMIT)
    assert not verify_certificate(commit, CHAIN, N, Q, verifier, phase=Phase.PREPARE)


class _AnyVerifier:
    """A verifier that accepts every signature: what is left is the certificate's own
    checks, which must not lean on the verifier's range check."""

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        return True


def test_certificate_indexes_are_bounded_by_n_whatever_the_verifier() -> None:
    qc = _qc([0, 1, 2])
    assert verify_certificate(qc, CHAIN, N, Q, _AnyVerifier())
    for signers in ([0, 1, -1], [0, 1, N], [0, 1, N + 1]):
        assert not verify_certificate(_qc(signers), CHAIN, N, Q, _AnyVerifier()), signers
    assert not verify_timeout_cert(_tc([0, 1, -1]), CHAIN, N, Q, _AnyVerifier())
    assert not verify_timeout_cert(_tc([0, 1, N]), CHAIN, N, Q, _AnyVerifier())


# --- timeout certificates: q timeouts ------------------------------------------------------


def _tc(voters: list[int], view: int = 7) -> TimeoutCert:
    entries = tuple(
        Timeout(
            view, 0, None, None, None, v, HashSigner(v).sign(timeout_message(CHAIN, view, 0, None))
        ).entry()
        for v in voters
    )
    return TimeoutCert(view, entries, None, None)


def test_a_timeout_certificate_needs_q_distinct_timeouts() -> None:
    verifier = HashVerifier(N + 1)
    assert verify_timeout_cert(_tc([0, 1, 2]), CHAIN, N, Q, verifier)
    assert verify_timeout_cert(_tc([0, 1, 2, 3]), CHAIN, N, Q, verifier)  # all n
    assert not verify_timeout_cert(_tc([0, 1]), CHAIN, N, Q, verifier)
    assert not verify_timeout_cert(_tc([0, 1, 1]), CHAIN, N, Q, verifier)
    assert not verify_timeout_cert(_tc([0, 1, 4]), CHAIN, N, Q, verifier)


def test_a_replica_does_not_change_view_on_q_minus_1_timeouts() -> None:
    net = Net()
    node = net.nodes[3]
    node.step(0, _new_view(_tc([0, 1])))
    assert node.view == 0
    node.step(0, _new_view(_tc([0, 1, 2])))
    assert node.view == 8


def _new_view(tc: TimeoutCert) -> object:
    from node.core import NewView

    return NewView(tc)


# --- the lock a timeout certificate reports --------------------------------------------------


def _locked(commit_first: bool = False, base: int = 0) -> tuple[Net, Block, int]:
    """A block gets a prepare QC in view v (every replica locks on it, and the QC moves it
    to view v + 1) but its COMMIT votes are lost, so view v + 1 times out with the lock in
    every timeout. Returns (net, the locked block, v). With ``commit_first`` one block
    commits first and the lock is on the next (the TC's top committed height is then not
    the chain's start). ``base``: the height the replicas start at (restarted on a chain
    of that many blocks). Without speculation, so no pipelined proposal in view v + 1;
    the pipelined case is test_core_pipeline.py's lost pipelined proposal."""
    net = _net_at_height(base, speculate=False) if base else Net(speculate=False)
    lost_view = [-1 if commit_first else net.nodes[0].view]

    def lose_commit_votes(src: int, dst: int, msg: object) -> object | None:
        if isinstance(msg, Vote) and msg.phase == Phase.COMMIT and msg.view == lost_view[0]:
            return None
        return msg

    net.tamper = lose_commit_votes
    if commit_first:
        net.nodes[1].submit(b"trade-0")
        net.run()
        assert all(d.committed_height() == base + 1 for d in net.disks)
        lost_view[0] = net.nodes[0].view
        net.tick(net.nodes[0].now_ms + 10)  # the next block, certifying the last's results
    else:
        net.nodes[1].submit(b"trade-1")
        net.run()
    locked = net.nodes[0].safety.high_pqc_block
    height = base + (2 if commit_first else 1)
    assert locked is not None and locked.height == height
    assert all(n.safety.high_pqc_block == locked for n in net.nodes)
    assert all(d.committed_height() == height - 1 for d in net.disks)
    return net, locked, lost_view[0]


def _locked_in_view_0() -> tuple[Net, Block]:
    net, locked, _ = _locked()
    return net, locked


@pytest.mark.parametrize("commit_first", [False, True])
def test_after_a_view_change_the_locked_block_is_the_one_committed(commit_first: bool) -> None:
    """The TC carries the highest lock; the next leader re-proposes that block (a leader
    that drops the lock from its TC would propose another block at the same height)."""
    net, locked, view = _locked(commit_first)
    after = view + 2  # the view after the one that times out
    leader = net.nodes[0].leader(after)
    now = net.nodes[0].now_ms
    net.tick(now + VIEW_TIMEOUT_BASE_MS)
    net.tick(now + VIEW_TIMEOUT_BASE_MS + 10)
    proposals = [m for m in net.sent(leader, Proposal) if m.view == after]  # type: ignore[attr-defined]
    assert proposals and proposals[0].tc.high_lock is not None
    assert proposals[0].tc.high_lock.block_hash == locked.hash
    assert all(d.blocks[locked.height][0].hash == locked.hash for d in net.disks)


def _next_leader_proposes_and_gets_no_vote(net: Net, view: int, block: Block) -> None:
    """The leader of ``view`` proposes ``block`` (conflicting with the lock its TC reports)
    instead of its own: every other replica refuses it by the voting rule."""
    leader = net.nodes[0].leader(view)
    sent: list[Block] = []

    def leader_ignores_the_lock(src: int, dst: int, msg: object) -> object | None:
        if isinstance(msg, Proposal) and src == leader and msg.view == view:
            sent[:] = [block]
            return replace(msg, block=block)
        return msg

    net.tamper = leader_ignores_the_lock
    net.tick(net.nodes[0].now_ms + VIEW_TIMEOUT_BASE_MS)
    assert sent, "the next view was never proposed"
    for i in set(range(N)) - {leader}:
        votes = [m for m in net.sent(i, Vote) if m.block_hash == block.hash]  # type: ignore[attr-defined]
        assert votes == [], f"replica {i} voted for a block conflicting with its TC's lock"
        assert refused(net.nodes[i], VOTING_RULE) >= 1


@pytest.mark.parametrize("commit_first", [False, True])
def test_a_proposal_ignoring_the_lock_in_its_tc_gets_no_vote(commit_first: bool) -> None:
    """The next leader holds a TC whose high_lock is the locked block but proposes another
    block at that height: honest replicas refuse (the Jolteon lock rule). Without the rule
    the other block could be committed after a replica already committed the locked one."""
    net, locked, view = _locked(commit_first)
    after = view + 2  # the view after the one that times out
    leader = net.nodes[0].leader(after)
    other = Block(
        CHAIN, locked.height, after, locked.parent_hash, leader, locked.time_ms + 1,
        locked.height - 1, locked.state_root, locked.results_root, (b"trade-other",),
    )  # fmt: skip
    _next_leader_proposes_and_gets_no_vote(net, after, other)
    h = locked.height
    assert all(d.committed_height() < h or d.blocks[h][0].hash == locked.hash for d in net.disks)


def test_a_lagging_replica_refuses_a_block_the_tc_proves_committed() -> None:
    """The TC proves height 1 committed (its high_commit); a replica still at height 0 must
    not vote for a block at height 1 with it: that height is taken, by another block."""
    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    cert = chain[0][1]
    view = 9
    entries = tuple(
        Timeout(
            view, 1, None, None, None, v, HashSigner(v).sign(timeout_message(CHAIN, view, 1, None))
        ).entry()
        for v in (0, 1, 2)
    )
    tc = TimeoutCert(view, entries, cert, None)
    leader = node.leader(view + 1)
    block = _block(None, view + 1, leader, 1, b"trade-conflicting")
    node.step(leader, Proposal(view + 1, block, None, tc))
    net.drain(3)
    assert node.view == view + 1
    assert refused(node, VOTING_RULE) == 1
    assert not net.sent(3, Vote)


# --- one vote per view -------------------------------------------------------------------


@pytest.mark.parametrize("base", [0, 300])
def test_an_equivocating_leader_gets_one_prepare_vote_per_replica(base: int) -> None:
    """Leader 0 sends two different blocks for one view; each replica votes for the first
    it sees and never for the second (the persisted prepare_view is the guard). Also at
    view 300, where the view in the proposal and the one persisted are distinct ints."""
    net = _net_at_height(base) if base else Net()
    view = net.nodes[0].view
    assert net.nodes[0].leader(view) == 0
    twin_txs = (b"trade-twin",)

    def equivocate(src: int, dst: int, msg: object) -> object | None:
        if isinstance(msg, Proposal) and (src, dst) == (0, 2) and msg.block.txs != twin_txs:
            twin = replace(msg.block, txs=twin_txs)
            again = replace(msg, view=int(str(msg.view)), block=twin)
            net.queue.appendleft((0, 2, again))  # right behind the first
        return msg

    net.tamper = equivocate
    net.nodes[0].submit(b"trade-1")
    net.run()
    prepare = [m for m in net.sent(2, Vote) if m.phase == Phase.PREPARE and m.view == view]  # type: ignore[attr-defined]
    assert len(prepare) == 1
    assert net.nodes[2].safety.prepare_view == view


def test_no_commit_vote_in_a_view_given_up() -> None:
    """Replica 3 voted PREPARE in view 0, then timed out of it; a prepare QC of view 0
    arriving afterwards locks it but gets no COMMIT vote (the timeout promised none)."""
    net = Net()
    net.tamper = lambda src, dst, msg: msg if (src, dst) == (0, 3) else None
    net.nodes[0].submit(b"trade-1")
    net.run()
    node = net.nodes[3]
    assert node.safety.prepare_view == 0
    node.tick(VIEW_TIMEOUT_BASE_MS * 2)
    net.drain(3)
    assert node.safety.timeout_view == 0 and node.view == 0
    b = net.sent(0, Proposal)[0].block  # type: ignore[attr-defined]
    msg = vote_message(CHAIN, Phase.PREPARE, 0, 1, b.hash)
    pqc = QuorumCert(
        Phase.PREPARE, 0, 1, b.hash, tuple((i, HashSigner(i).sign(msg)) for i in range(Q))
    )
    node.step(0, QCMessage(pqc))
    net.drain(3)
    assert node.safety.high_pqc == pqc
    assert not [m for m in net.sent(3, Vote) if m.phase == Phase.COMMIT]  # type: ignore[attr-defined]


def test_a_proposal_from_a_lower_index_than_the_leader_gets_no_vote() -> None:
    net, block, cert = _committed_one()
    node = net.nodes[3]
    view = node.view
    leader = node.leader(view)
    assert leader > 0
    child = _block(block, view, 0, node.now_ms + 1, b"trade-2")
    node.step(0, Proposal(view, child, cert, None))
    assert refused(node, NOT_LEADER) == 1


def test_a_fresh_proposal_needs_its_parent_certified_in_the_view_before() -> None:
    net, block, cert = _committed_one()
    node = net.nodes[2]
    node.step(0, _new_view(_tc([0, 1, 2], view=2)))
    assert node.view == 3  # the parent was certified in view 0, not 2, and there is no TC
    leader = node.leader(3)
    child = Block(
        CHAIN, 2, 3, block.hash, leader, block.time_ms + 1, 1, node.executed_root,
        node.executed_results, (b"trade-2",),
    )  # fmt: skip
    node.step(leader, Proposal(3, child, cert, None))
    net.drain(2)
    assert refused(node, VOTING_RULE) == 1
    assert not [m for m in net.sent(2, Vote) if m.view == 3]  # type: ignore[attr-defined]
    # The control: the same block with a TC of view 2 gets the vote.
    node.step(leader, Proposal(3, child, cert, _tc([0, 1, 2], view=2)))
    net.drain(2)
    assert [m.block_hash for m in net.sent(2, Vote) if m.view == 3] == [child.hash]  # type: ignore[attr-defined]


# --- only a commit certificate commits ---------------------------------------------------


def test_a_prepare_certificate_does_not_commit() -> None:
    """Block 1 is certified by a prepare QC only: handed to a replica as a commit (in a
    QC message or a catch-up answer) it commits nothing."""
    net, locked = _locked_in_view_0()
    pqc = net.nodes[0].safety.high_pqc
    assert pqc is not None and pqc.phase is Phase.PREPARE
    node = net.nodes[3]
    node.step(0, QCMessage(replace(pqc, phase=Phase.COMMIT)))  # signatures are PREPARE votes
    node.step(0, SyncResponse(((locked, pqc),)))
    net.drain(3)
    assert node.committed_height == 0 and net.disks[3].committed_height() == 0
    commit_sigs = tuple(
        (i, HashSigner(i).sign(vote_message(CHAIN, Phase.COMMIT, pqc.view, 1, locked.hash)))
        for i in range(Q)
    )
    node.step(
        0, SyncResponse(((locked, replace(pqc, phase=Phase.COMMIT, signatures=commit_sigs)),))
    )
    assert node.committed_height == 1  # the control: a real commit certificate commits


def test_a_commit_certificate_of_q_minus_1_signatures_does_not_commit() -> None:
    net, locked = _locked_in_view_0()
    node = net.nodes[3]
    pqc = net.nodes[0].safety.high_pqc
    assert pqc is not None

    def commit_cert(signers: range) -> QuorumCert:
        msg = vote_message(CHAIN, Phase.COMMIT, pqc.view, 1, locked.hash)
        sigs = tuple((i, HashSigner(i).sign(msg)) for i in signers)
        return QuorumCert(Phase.COMMIT, pqc.view, 1, locked.hash, sigs)

    node.step(0, QCMessage(commit_cert(range(Q - 1))))
    node.step(0, SyncResponse(((locked, commit_cert(range(Q - 1))),)))
    assert node.committed_height == 0
    node.step(0, QCMessage(commit_cert(range(Q))))
    assert node.committed_height == 1  # the control: q signatures commit


# --- the whole protocol over the wire codec, at views above the small-int cache -----------


def test_the_protocol_works_with_every_message_decoded_from_bytes_at_high_views() -> None:
    """In-process tests hand replicas the very objects their peers made, so a comparison by
    identity (``is``) where equality is meant passes; real peers send bytes. Every message
    here goes through the codec, and the views start above 256 (CPython caches smaller
    ints, so ``is`` on them behaves like ``==``)."""
    from node.core import NewView
    from node.core.codec import decode_message, encode_message

    net = Net()
    net.tamper = lambda src, dst, msg: decode_message(encode_message(msg))  # type: ignore[arg-type]
    for i in range(N):
        net.nodes[i].step(0, NewView(_tc([0, 1, 2], view=999)))
        net.drain(i)
    assert all(node.view == 1000 for node in net.nodes)
    for k in range(3):
        net.nodes[k % N].submit(b"trade-%d" % k)
        net.run()
        net.tick(net.nodes[0].now_ms + 10)
    assert all(d.committed_height() >= 3 for d in net.disks)
    hashes = {d.blocks[3][0].hash for d in net.disks}
    assert len(hashes) == 1


# --- proposals carry valid certificates ----------------------------------------------------


def _committed_one() -> tuple[Net, Block, QuorumCert]:
    net = Net()
    net.nodes[1].submit(b"trade-1")
    net.run()
    block, cert = net.disks[0].blocks[1]
    assert all(d.committed_height() == 1 for d in net.disks)
    return net, block, cert


def _commit_cert(
    view: int, height: int, block_hash: bytes, signers: range = range(Q)
) -> QuorumCert:
    msg = vote_message(CHAIN, Phase.COMMIT, view, height, block_hash)
    return QuorumCert(
        Phase.COMMIT, view, height, block_hash, tuple((i, HashSigner(i).sign(msg)) for i in signers)
    )


def _block(parent: Block | None, view: int, proposer: int, time_ms: int, tx: bytes) -> Block:
    height = 1 if parent is None else parent.height + 1
    parent_hash = parent.hash if parent is not None else net_genesis()
    return Block(
        CHAIN, height, view, parent_hash, proposer, time_ms, height - 1, ROOT0, EMPTY_ROOT, (tx,)
    )


def net_genesis() -> bytes:
    from node.core import genesis_hash

    return genesis_hash(CHAIN)


def test_a_proposal_above_height_1_needs_the_parent_commit_certificate() -> None:
    net, parent, cert = _committed_one()
    node = net.nodes[2]
    view = node.view
    block = _block(parent, view, node.leader(view), node.now_ms + 1, b"trade-2")
    wrong_height = replace(cert, height=2)
    signed_wrong_height = _commit_cert(cert.view, 2, parent.hash)  # q forged signatures
    other_parent = (bytes(32), b"\xff" * 32)
    cases = [None, wrong_height, signed_wrong_height]
    cases += [_commit_cert(cert.view, 1, h) for h in other_parent]
    # And a block two above the parent that certificate proves (height 1, parent of 3).
    skip = _block(replace(parent, height=2, executed_height=1), view, node.leader(view), 1, b"t")
    node.step(node.leader(view), Proposal(view, replace(skip, parent_hash=parent.hash), cert, None))
    assert refused(node, PROPOSAL_CERT) == 1
    for k, parent_cert in enumerate(cases, 2):
        node.step(node.leader(view), Proposal(view, block, parent_cert, None))
        assert refused(node, PROPOSAL_CERT) == k, parent_cert
    # A good parent certificate does not carry a forged TC through.
    node.step(node.leader(view), Proposal(view, block, cert, _tc([0, 1], view - 1)))
    assert refused(node, PROPOSAL_CERT) == len(cases) + 2
    assert node.view == view


def test_a_proposal_with_a_tc_of_another_view_or_a_forged_tc_is_refused() -> None:
    net = Net()
    node = net.nodes[3]
    block = _block(None, 1, node.leader(1), 1, b"trade-x")
    for k, tc in enumerate((_tc([0, 1, 2], view=5), _tc([0, 1], view=0)), 1):
        node.step(node.leader(1), Proposal(1, block, None, tc))
        assert refused(node, PROPOSAL_CERT) == k
    assert node.view == 0
    block = _block(None, 6, node.leader(6), 1, b"trade-z")
    node.step(node.leader(6), Proposal(6, block, None, _tc([0, 1, 2], view=3)))  # too old
    assert refused(node, PROPOSAL_CERT) == 3
    # The control, at an even view (view - 1 and view ^ 1 differ there): a TC of view - 1.
    block = _block(None, 6, node.leader(6), 1, b"trade-y")
    node.step(node.leader(6), Proposal(6, block, None, _tc([0, 1, 2], view=5)))
    assert refused(node, PROPOSAL_CERT) == 3
    assert node.view == 6


# --- votes the leader counts --------------------------------------------------------------


def _leader_with_proposal() -> tuple[Net, Proposal]:
    """Leader 0 proposed block 1 in view 0; no vote has reached it yet."""
    net = Net()
    net.tamper = lambda src, dst, msg: None  # nothing is delivered
    net.nodes[0].submit(b"trade-1")
    net.run()
    sent = net.sent(0, Proposal)
    assert len(sent) == N - 1  # to every other validator (its own vote was dropped too)
    net.outboxes[0].clear()
    return net, sent[0]  # type: ignore[return-value]


def _vote(voter: int, view: int, height: int, block_hash: bytes) -> Vote:
    sig = HashSigner(voter).sign(vote_message(CHAIN, Phase.PREPARE, view, height, block_hash))
    return Vote(Phase.PREPARE, view, height, block_hash, voter, sig)


def test_a_leader_counts_only_votes_sent_by_their_voter_for_its_block() -> None:
    net, p = _leader_with_proposal()
    leader = net.nodes[0]
    b = p.block
    # Relayed by another validator (genuine signatures): not counted.
    for voter in (0, 1, 2):
        leader.step(3, _vote(voter, 0, b.height, b.hash))
    for voter in (1, 2, 3):
        leader.step(0, _vote(voter, 0, b.height, b.hash))  # by the leader's own index
    # For other blocks, lower and higher hashes: not counted.
    for other in (bytes(32), b"\xff" * 32):
        for voter in (1, 2, 3):
            leader.step(voter, _vote(voter, 0, b.height, other))
    net.drain(0)
    assert not net.sent(0, QCMessage)
    for voter in (1, 2, 3):
        leader.step(voter, _vote(voter, 0, b.height, b.hash))
    net.drain(0)
    assert [m.qc.block_hash for m in net.sent(0, QCMessage)][:1] == [b.hash]  # type: ignore[attr-defined]


# --- timeouts: what one validator can and cannot make a replica do -----------------------


def _timeout(voter: int, view: int) -> Timeout:
    sig = HashSigner(voter).sign(timeout_message(CHAIN, view, 0, None))
    return Timeout(view, 0, None, None, None, voter, sig)


def test_one_timeout_neither_moves_a_replica_nor_makes_it_give_up_the_view() -> None:
    net = Net()
    node = net.nodes[3]
    node.step(2, _timeout(2, 0))
    net.drain(3)
    assert node.view == 0 and node.safety.timeout_view == -1
    assert not net.sent(3, Timeout)


@pytest.mark.parametrize("start", [0, 1000])
def test_f_plus_1_timeouts_make_a_replica_join_and_q_move_it_on(start: int) -> None:
    """At view 0 and at view 1000 (above the small-int cache: the view a replica holds and
    the one a message carries are equal but distinct objects, as with real peers)."""
    net = Net()
    node = net.nodes[3]
    if start:
        node.step(0, _new_view(_tc([0, 1, 2], view=start - 1)))
    view = int(str(start))
    assert node.view == view
    node.step(1, _timeout(1, view))
    node.step(2, _timeout(2, view))  # f + 1 = 2 of 4: one of them is honest, so join
    net.tamper = lambda src, dst, msg: None  # its engine would step its own back in at once
    net.drain(3)
    assert node.safety.timeout_view == view
    assert {m.view for m in net.sent(3, Timeout)} == {view}  # type: ignore[attr-defined]
    assert node.view == view  # its own makes 3 = q, but it has not been delivered to itself
    node.step(3, net.sent(3, Timeout)[0])  # type: ignore[arg-type]
    assert node.view == view + 1


def test_timeouts_exactly_at_the_tracked_window_edge() -> None:
    from node.config import TIMEOUT_VIEWS_TRACKED_MAX as W

    net = Net()
    node = net.nodes[1]
    node.step(2, _timeout(2, W))
    assert refused(node, TIMEOUT_TOO_FAR_AHEAD) == 1
    node.step(2, _timeout(2, W - 1))
    assert refused(node, TIMEOUT_TOO_FAR_AHEAD) == 1


def test_a_timeout_with_a_forged_commit_certificate_is_refused() -> None:
    net, _, cert = _committed_one()
    node = net.nodes[3]
    view = node.view
    sig = HashSigner(2).sign(timeout_message(CHAIN, view, 1, None))
    forged = replace(cert, signatures=tuple((i, bytes(64)) for i, _ in cert.signatures))
    node.step(2, Timeout(view, 1, forged, None, None, 2, sig))
    assert refused(node, TIMEOUT_UNPROVEN) == 1
    higher = _commit_cert(cert.view, 2, BLOCK_HASH)  # valid, but of another height
    node.step(2, Timeout(view, 1, higher, None, None, 2, sig))
    assert refused(node, TIMEOUT_UNPROVEN) == 2


def test_a_timeout_lock_must_be_for_the_next_height_and_its_own_block() -> None:
    net, block, cert = _committed_one()
    node = net.nodes[3]
    view = node.view
    old_pqc = net.nodes[0].safety.high_pqc  # the prepare QC of block 1, now committed
    assert old_pqc is not None and old_pqc.height == 1
    sig = HashSigner(2).sign(timeout_message(CHAIN, view, 1, old_pqc.view))
    node.step(2, Timeout(view, 1, cert, old_pqc, block, 2, sig))  # a lock below next height
    assert refused(node, TIMEOUT_UNPROVEN) == 1
    # A lock at the next height whose block is not the certified one (lower, higher hash).
    pqc_msg = lambda h: vote_message(CHAIN, Phase.PREPARE, view - 1, 2, h)  # noqa: E731
    real = _block(block, view - 1, 0, block.time_ms + 1, b"trade-2")
    pqc = QuorumCert(
        Phase.PREPARE, view - 1, 2, real.hash,
        tuple((i, HashSigner(i).sign(pqc_msg(real.hash))) for i in range(Q)),
    )  # fmt: skip
    others = [_block(block, view - 1, 0, block.time_ms + 1, b"x%d" % k) for k in range(64)]
    low = min(others, key=lambda b: b.hash)
    high = max(others, key=lambda b: b.hash)
    assert low.hash < real.hash < high.hash  # both sides of an ordering mutant
    sig = HashSigner(2).sign(timeout_message(CHAIN, view, 1, pqc.view))
    for k, wrong in enumerate((low, high), 2):
        node.step(2, Timeout(view, 1, cert, pqc, wrong, 2, sig))
        assert refused(node, TIMEOUT_UNPROVEN) == k
    # A lock two heights up (a valid QC and its block) is no lock for the next height.
    up = _block(real, view - 1, 0, real.time_ms + 1, b"trade-3")
    up_msg = vote_message(CHAIN, Phase.PREPARE, view - 1, 3, up.hash)
    up_qc = QuorumCert(
        Phase.PREPARE,
        view - 1,
        3,
        up.hash,
        tuple((i, HashSigner(i).sign(up_msg)) for i in range(Q)),
    )
    node.step(2, Timeout(view, 1, cert, up_qc, up, 2, sig))
    assert refused(node, TIMEOUT_UNPROVEN) == 4
    node.step(2, Timeout(view, 1, cert, pqc, real, 2, sig))  # the control: accepted
    assert refused(node, TIMEOUT_UNPROVEN) == 4


# --- catch-up and commit certificates --------------------------------------------------------


def _node_3_behind_by_two() -> tuple[Net, list[tuple[Block, QuorumCert]]]:
    """Blocks 1 (a trade) and 2 (its results) commit while node 3 is down."""
    net = Net()
    net.down = {3}
    net.nodes[1].submit(b"trade-1")
    net.run()
    net.tick(net.nodes[0].now_ms + 10)
    chain = [net.disks[0].blocks[h] for h in (1, 2)]
    net.down = set()
    assert net.nodes[3].committed_height == 0 and net.nodes[3].view == 0
    return net, chain


def _sync_requests(net: Net, i: int) -> list[tuple[int, int]]:
    from node.core import SyncRequest

    return [(m.from_height, m.count) for m in net.sent(i, SyncRequest)]  # type: ignore[attr-defined]


def test_catch_up_commits_past_blocks_it_holds_and_moves_to_the_next_view() -> None:
    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    node.step(0, SyncResponse((chain[0],)))
    assert node.committed_height == 1
    node.step(0, SyncResponse(tuple(chain)))  # starts with a block it holds already
    net.drain(3)
    assert node.committed_height == 2
    assert node.view == chain[1][1].view + 1
    assert _sync_requests(net, 3)[-1][0] == 3  # the follow-up asks from the next height


def test_catch_up_refuses_a_block_without_its_commit_certificate() -> None:
    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    block, cert = chain[0]
    bad = [
        _commit_cert(cert.view, 1, bytes(32)),  # another block (lower hash)
        _commit_cert(cert.view, 1, b"\xff" * 32),  # another block (higher hash)
        replace(cert, signatures=tuple((i, bytes(32)) for i, _ in cert.signatures)),  # forged
        _commit_cert(cert.view, 0, block.hash),  # signed for another height
    ]
    for c in bad:
        node.step(0, SyncResponse(((block, c),)))
        assert node.committed_height == 0, c
    assert node.halted is None


def test_a_commit_certificate_far_ahead_moves_the_view_and_starts_catch_up() -> None:
    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    cert = chain[1][1]
    node.step(0, QCMessage(cert))
    net.drain(3)
    assert node.view == cert.view + 1
    assert _sync_requests(net, 3) == [(1, 2)]


def test_a_commit_certificate_of_an_older_view_still_counts_for_a_new_height() -> None:
    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    node.step(0, _new_view(_tc([0, 1, 2], view=20)))
    assert node.view == 21
    node.step(0, QCMessage(chain[0][1]))  # height 1, certified in view 0
    net.drain(3)
    assert _sync_requests(net, 3) == [(1, 1)]


def test_a_prepare_qc_two_heights_ahead_is_kept_and_a_proposal_on_it_starts_catch_up() -> None:
    """Pipelined, a PQC for committed + 2 is what a replica sees while the commit
    certificate of committed + 1 is on its way: kept, no catch-up. A proposal on it proves
    its leader committed the height between (it pipelines only then): catch up that one."""
    net, chain = _node_3_behind_by_two()
    pqc = net.nodes[0].safety.high_pqc
    assert pqc is not None and pqc.height == 2
    node = net.nodes[3]
    node.step(0, QCMessage(pqc))
    net.drain(3)
    assert _sync_requests(net, 3) == []
    view = pqc.view + 1
    child = _block(chain[1][0], view, node.leader(view), node.now_ms + 1, b"trade-3")
    node.step(node.leader(view), Proposal(view, child, pqc, None))
    net.drain(3)
    assert _sync_requests(net, 3) == [(1, 1)]
    assert node.view == view  # the PQC of the previous view moved it on


def test_a_later_commit_certificate_of_our_block_is_kept_never_an_older() -> None:
    net, block, _ = _committed_one()
    node = net.nodes[2]
    node.step(0, QCMessage(_commit_cert(5, 1, block.hash)))
    assert (node.committed_view, node.view) == (5, 6)
    assert node.committed_cert is not None and node.committed_cert.view == 5
    child = _block(block, 6, node.leader(6), node.now_ms + 1, b"trade-2")
    node.step(node.leader(6), Proposal(6, child, _commit_cert(3, 1, block.hash), None))
    assert node.committed_view == 5


# --- block validity at its exact edges ---------------------------------------------------


def test_a_block_timed_as_its_parent_or_from_an_earlier_view_gets_no_vote() -> None:
    net = Net()
    net.tick(10**6)  # times far above the small-int cache
    net.nodes[1].submit(b"trade-1")
    net.run()
    parent, cert = net.disks[0].blocks[1]
    node = net.nodes[2]
    view = node.view
    leader = node.leader(view)

    def block(block_view: int, time_ms: int, tx: bytes) -> Block:
        return Block(
            CHAIN, 2, block_view, parent.hash, leader, time_ms, 1, node.executed_root,
            node.executed_results, (tx,),
        )  # fmt: skip

    same_time = int(str(parent.time_ms))  # equal, but another int object
    for bad in (block(view, same_time, b"trade-2"), block(view - 1, parent.time_ms + 1, b"t3")):
        node.step(leader, Proposal(view, bad, cert, None))
        net.drain(2)
        votes = [m for m in net.sent(2, Vote) if m.block_hash == bad.hash]  # type: ignore[attr-defined]
        assert votes == []
    assert refused(node, VOTING_RULE) == 2
    good = block(view, parent.time_ms + 1, b"trade-4")  # the control: one ms later is fine
    node.step(leader, Proposal(view, good, cert, None))
    net.drain(2)
    assert [m.block_hash for m in net.sent(2, Vote)][-1:] == [good.hash]  # type: ignore[attr-defined]


# --- per-peer budgets ------------------------------------------------------------------------


def test_a_bucket_needs_a_positive_rate_and_burst() -> None:
    from node.core.budget import Bucket

    Bucket(1, 1, 0)
    for rate, burst in ((0, 1), (1, 0), (-1, 1), (1, -1)):
        with pytest.raises(ValueError, match="positive"):
            Bucket(rate, burst, 0)


def test_a_bucket_refills_exactly_rate_per_second_and_never_from_a_clock_going_back() -> None:
    from node.core.budget import Bucket

    start = 5_003  # not a power of two: a bitwise operator gives another result
    b = Bucket(10, 100, start)
    b.charge(100, start)
    assert not b.available(start + 99)  # 0.99 tokens: none yet
    assert b.available(start + 100)  # 1 token
    b.charge(1, start + 100)
    assert not b.available(start + 100)
    assert not b.available(start - 1_000)  # a clock stepping back refills nothing
    assert not b.available(start + 199)
    assert b.available(start + 200)
    b.charge(1, start + 200)
    b.charge(10, start + 1_200)  # 10 tokens came in the second that passed
    assert not b.available(start + 1_200)
    assert b.available(start + 1_300)


def _net_at_height(height: int, *, speculate: bool = True) -> Net:
    """Four replicas restarted on a chain of ``height`` committed blocks (one transaction
    each, block h first proposed in view h - 1 by its round-robin leader)."""
    from node.core import genesis_hash

    net = Net(speculate=speculate)
    chain: dict[int, tuple[Block, QuorumCert]] = {}
    parent_hash = genesis_hash(CHAIN)
    for h in range(1, height + 1):
        view = h - 1
        block = Block(
            CHAIN, h, view, parent_hash, view % N, h, h - 1, ROOT0, EMPTY_ROOT, (b"old-%d" % h,)
        )
        chain[h] = (block, _commit_cert(view, h, block.hash))
        parent_hash = block.hash
    for disk in net.disks:
        disk.blocks = dict(chain)
    net.nodes = [
        Replica(
            node.cfg,
            HashSigner(i),
            net.verifier,
            net.disks[i],
            executed_root=ROOT0,
            results_root=EMPTY_ROOT,
        )
        for i, node in enumerate(net.nodes)
    ]
    return net


def test_the_protocol_over_the_codec_at_height_300_through_a_view_change() -> None:
    """As above at heights and views above 256, with a lock carried through a view change
    (timeouts with locks, a TC with high_commit and high_lock, a re-proposal)."""
    from node.core.codec import decode_message, encode_message

    net = _net_at_height(300)
    assert all(node.view == 300 and node.committed_height == 300 for node in net.nodes)

    def over_the_wire(src: int, dst: int, msg: object) -> object | None:
        if isinstance(msg, Vote) and msg.phase == Phase.COMMIT and msg.view == lost[0]:
            return None
        return decode_message(encode_message(msg))  # type: ignore[arg-type]

    lost = [-1]
    net.tamper = over_the_wire
    net.nodes[1].submit(b"trade-1")
    net.run()
    assert all(d.committed_height() == 301 for d in net.disks)
    lost[0] = net.nodes[0].view  # block 302 (results of 301) locks but does not commit
    net.tick(net.nodes[0].now_ms + 10)
    locked = net.nodes[0].safety.high_pqc_block
    assert locked is not None and locked.height == 302
    assert all(d.committed_height() == 301 for d in net.disks)
    now = net.nodes[0].now_ms
    net.tick(now + VIEW_TIMEOUT_BASE_MS)
    net.tick(now + VIEW_TIMEOUT_BASE_MS + 10)
    assert all(d.committed_height() >= 302 for d in net.disks)
    assert all(d.blocks[302][0].hash == locked.hash for d in net.disks)


def test_a_bucket_refills_whole_tokens_only_after_their_full_time() -> None:
    from node.core.budget import Bucket

    b = Bucket(1, 5, 7_000)  # one token a second
    b.charge(5, 7_000)
    assert not b.available(7_999)
    assert b.available(8_000)


@pytest.mark.parametrize("base", [0, 300])
def test_a_fresh_proposal_conflicting_with_the_lock_gets_no_vote(base: int) -> None:
    """Unreachable within the safety bound (the parent would need a commit certificate in
    a view after the lock's), so played by a Byzantine quorum: the parent is certified
    again in a later view and a fresh block at the locked height, not the locked block, is
    proposed on it. A locked replica refuses, whatever the two hashes' order."""
    net, locked, view = _locked(commit_first=True, base=base)
    parent, _ = net.disks[0].blocks[locked.height - 1]
    node = net.nodes[3]
    later = view + 5
    recertified = _commit_cert(later - 1, parent.height, parent.hash)
    leader = node.leader(later)
    height = int(str(locked.height))  # equal, but not the lock's own int object
    rivals = [
        Block(
            CHAIN, height, later, parent.hash, leader, locked.time_ms + 1,
            locked.height - 1, locked.state_root, locked.results_root, (b"rival-%d" % k,),
        )
        for k in range(64)
    ]  # fmt: skip
    low = min(rivals, key=lambda b: b.hash)
    high = max(rivals, key=lambda b: b.hash)
    assert low.hash < locked.hash < high.hash
    for k, rival in enumerate((low, high), 1):
        node.step(leader, Proposal(later, rival, recertified, None))
        net.drain(3)
        assert node.view == later
        assert refused(node, VOTING_RULE) == k
    assert not [m for m in net.sent(3, Vote) if m.view == later]  # type: ignore[attr-defined]


def test_progress_resets_the_unanswered_count_of_a_catch_up_on_a_peer_word() -> None:
    """A peer's word lasts one round of unanswered requests (n - 1); an answer that moves
    the node on starts a new round. Requests 0, 2 and 3 go unanswered and 1 is answered:
    the node must still send request 4 (only two misses since its progress)."""
    from node.config import CATCHUP_RETRY_MS
    from node.core import SyncRequest
    from tests.unit.test_core_hostile import _behind_by_many

    net = Net()
    now = _behind_by_many(net)
    top = net.disks[0].committed_height()
    sent = [0]

    def lose_requests_0_2_3(src: int, dst: int, msg: object) -> object | None:
        if src == 3 and isinstance(msg, SyncRequest):
            k, sent[0] = sent[0], sent[0] + 1
            return None if k in (0, 2, 3) else msg
        return msg

    net.tamper = lose_requests_0_2_3
    node = net.nodes[3]
    node.peer_height(0, top)
    net.run()
    for _ in range(12):
        now += CATCHUP_RETRY_MS
        net.tick(now)
    assert sent[0] > 4
    assert node.committed_height == top


def test_ed25519_verifier_knows_exactly_its_validators() -> None:
    from node.core import Ed25519Signer, Ed25519Verifier
    from node.genesis import demo_genesis

    keys = demo_genesis(validators=N, quorum=Q).validator_keys
    verifier = Ed25519Verifier([k.public_key for k in keys])
    msg = b"message"
    for i in (0, N - 1):
        assert verifier.verify(i, msg, Ed25519Signer(keys[i]).sign(msg))
    sig = Ed25519Signer(keys[0]).sign(msg)
    for i in (-1, N, N + 1):
        assert not verifier.verify(i, msg, sig)
    # Python would read index -1 as the last key: its own signature must not pass there.
    assert not verifier.verify(-1, msg, Ed25519Signer(keys[N - 1]).sign(msg))


@pytest.mark.parametrize("base", [0, 1000])
def test_a_timeout_certificate_proves_exactly_its_claims(base: int) -> None:
    """At small heights and views and above 256 (where equal ints are distinct objects)."""
    from node.core.types import TimeoutEntry

    verifier = HashVerifier(N)
    view = 7

    def entries(height: int, lock: int | None) -> tuple[TimeoutEntry, ...]:
        msg = timeout_message(CHAIN, view, height, lock)
        return tuple(TimeoutEntry(v, height, lock, HashSigner(v).sign(msg)) for v in range(Q))

    def cert(phase: Phase, cview: int, height: int) -> QuorumCert:
        cview, height = int(str(base + cview)), int(str(base + height))
        msg = vote_message(CHAIN, phase, cview, height, BLOCK_HASH)
        return QuorumCert(
            phase, cview, height, BLOCK_HASH, tuple((i, HashSigner(i).sign(msg)) for i in range(Q))
        )

    def ok(
        height: int, lock: int | None, commit: QuorumCert | None, high: QuorumCert | None
    ) -> bool:
        lock = None if lock is None else base + lock
        tc = TimeoutCert(view, entries(base + height, lock), commit, high)
        return verify_timeout_cert(tc, CHAIN, N, Q, verifier)

    c1 = cert(Phase.COMMIT, 3, 1)
    assert ok(1, None, c1, None)
    assert ok(1, 4, c1, cert(Phase.PREPARE, 4, 2))
    assert not ok(1, None, cert(Phase.COMMIT, 3, 2), None)  # proves a height nobody claims
    assert not ok(1, None, cert(Phase.COMMIT, 3, 0), None)  # ... or a lower one
    assert not ok(1, None, cert(Phase.PREPARE, 3, 1), None)  # a prepare QC is no commit
    forged = replace(c1, signatures=tuple((i, bytes(32)) for i, _ in c1.signatures))
    assert not ok(1, None, forged, None)  # the proof's signatures are checked too
    if base == 0:
        assert not ok(0, None, c1, None)  # a proof of a claim nobody makes
    assert not ok(1, 4, c1, cert(Phase.COMMIT, 4, 2))  # a lock must be a prepare QC
    assert not ok(1, 4, c1, cert(Phase.PREPARE, 4, 3))  # ... for the next height
    assert not ok(1, 4, c1, cert(Phase.PREPARE, 4, 1))  # ... not the committed one
    assert not ok(1, 4, c1, cert(Phase.PREPARE, 5, 2))  # ... of the lock view claimed
    assert not ok(1, 4, c1, cert(Phase.PREPARE, 3, 2))  # ... not an older one


def test_a_leader_does_not_count_a_vote_for_its_block_at_another_height() -> None:
    net, p = _leader_with_proposal()
    leader = net.nodes[0]
    b = p.block
    for height in (b.height - 1, b.height + 1):
        for voter in (1, 2, 3):
            leader.step(voter, _vote(voter, 0, height, b.hash))
    net.drain(0)
    assert not net.sent(0, QCMessage)


def test_a_timeout_counts_only_from_its_voter_and_with_its_whole_lock() -> None:
    net, _, cert = _committed_one()
    node = net.nodes[3]
    view = node.view
    node.step(1, _timeout(2, view))  # validator 2's genuine timeout, relayed by 1
    node.step(3, _timeout(2, view))  # ... and by ourselves
    assert refused(node, TIMEOUT_UNPROVEN) == 2
    pqc = net.nodes[0].safety.high_pqc
    assert pqc is not None
    sig = HashSigner(2).sign(timeout_message(CHAIN, view, 1, pqc.view))
    node.step(2, Timeout(view, 1, cert, pqc, None, 2, sig))  # a lock without its block
    assert refused(node, TIMEOUT_UNPROVEN) == 3


# --- what validators sign, byte for byte -------------------------------------------------


def test_signed_vote_and_timeout_messages_are_pinned_byte_for_byte() -> None:
    """Signer and verifier share these functions, so a change to them passes every
    in-process test yet splits a cluster running two versions, or lets two claims share
    one signature (a timeout with no lock and one locked in view 0). Pinned here."""
    tag = "6476702d6c65646765722f76312f766f746500" + "0001" + "63"  # "dvp-ledger/v1/vote\0", "c"
    assert vote_message("c", Phase.COMMIT, 300, 7, bytes(range(32))).hex() == tag + (
        "02" "000000000000012c" "0000000000000007" + bytes(range(32)).hex()
    )  # fmt: skip
    assert vote_message("c", Phase.PREPARE, 1, 2, bytes(32)).hex() == tag + (
        "01" "0000000000000001" "0000000000000002" + "00" * 32
    )  # fmt: skip
    timeouts = {
        (300, 7, None): "03" "000000000000012c" "0000000000000007" "0000000000000000",
        (300, 7, 0): "03" "000000000000012c" "0000000000000007" "0000000000000001",
        (9, 0, 299): "03" "0000000000000009" "0000000000000000" "000000000000012c",
    }  # fmt: skip
    timeout_tag = b"dvp-ledger/v1/timeout\x00".hex() + "0001" + "63"  # its own tag (ADR 0011)
    for (view, height, lock), body in timeouts.items():
        assert timeout_message("c", view, height, lock).hex() == timeout_tag + body


def test_a_timeout_certificate_reads_its_top_claims_from_its_entries() -> None:
    from node.core.types import TimeoutEntry

    def tc(*claims: tuple[int, int | None]) -> TimeoutCert:
        return TimeoutCert(7, tuple(TimeoutEntry(i, h, v, b"") for i, (h, v) in enumerate(claims)))

    assert (tc().top_height, tc().top_lock_view) == (0, None)
    assert tc((0, None), (0, None)).top_lock_view is None
    assert tc((2, None), (5, None), (3, 9)).top_height == 5
    # Only locks at the top height count, the highest of them; locks below are stale.
    assert tc((5, 2), (5, 4), (4, 9), (5, None)).top_lock_view == 4
    assert tc((5, None), (4, 9)).top_lock_view is None
    assert tc((0, 0), (0, None)).top_lock_view == 0
    h1, h2 = int(str(1000)), int(str(1000))  # equal heights, distinct objects (as decoded)
    assert tc((h1, 2), (h2, 4), (999, 9)).top_lock_view == 4
    assert tc((h1, 4), (h2, 2)).top_lock_view == 4


def test_a_vote_message_needs_a_vote_phase_and_a_32_byte_hash() -> None:
    # A precondition of the core's own calls (no peer input reaches it unchecked).
    vote_message(CHAIN, Phase.PREPARE, 0, 1, bytes(32))
    for phase, block_hash in ((Phase.TIMEOUT, bytes(32)), (Phase.PREPARE, bytes(31))):
        with pytest.raises(AssertionError):
            vote_message(CHAIN, phase, 0, 1, block_hash)
    with pytest.raises(AssertionError):
        vote_message(CHAIN, Phase.COMMIT, 0, 1, bytes(33))


# --- the safety state on disk: nothing forgotten across a restart ---------------------------


def _locked_state(
    views: tuple[int, int, int, int] = (3, 4, 4, 2), owner: SafetyOwner | None = None
) -> SafetyState:
    block = Block(CHAIN, 1, 0, bytes(32), 0, 5, 0, EMPTY_ROOT, EMPTY_ROOT, (b"tx",))
    qc = QuorumCert(Phase.PREPARE, 4, 1, block.hash, ((1, b"x"),))
    return SafetyState(*views, qc, block, owner)


def _u(width: int, value: int) -> bytes:
    return value.to_bytes(width, "big")


def test_the_safety_state_is_stored_byte_for_byte_as_pinned() -> None:
    """The bytes on disk are read back by the next version of the node: a change of
    format (an offset, a flag) must show here, not as a forgotten vote after an upgrade."""
    no_owner = _u(2, 0) + _u(4, 0)
    assert SafetyState().encode() == b"dvp-safety/2" + no_owner + bytes(4 * 8 + 4)
    state = _locked_state(owner=SafetyOwner(CHAIN, 3))
    qc, block = encode_qc(state.high_pqc), encode_block(state.high_pqc_block)  # type: ignore[arg-type]
    views = _u(8, 4) + _u(8, 5) + _u(8, 5) + _u(8, 3)  # each view + 1: -1 is stored as 0
    owner = _u(2, len(CHAIN)) + CHAIN.encode() + _u(4, 3)
    lock = _u(4, 1) + _u(4, len(qc)) + qc + _u(4, len(block)) + block
    assert state.encode() == b"dvp-safety/2" + owner + views + lock
    # Format 1 (before the owner was recorded) is still read: the same views and lock.
    old = SafetyState.decode(b"dvp-safety/1" + views + lock)
    assert old == replace(state, owner=None)


def test_every_view_and_the_lock_survive_a_restart() -> None:
    for views in [(-1, -1, -1, -1), (0, 0, 0, 0), (7, 1, 2, 3), (1, 7, 2, 3), (2, 1, 7, 3),
                  (3, 1, 2, 7), (2**40, 2**40 + 1, 2**40 + 2, 2**40 + 3)]:  # fmt: skip
        owner = SafetyOwner(CHAIN, 2**32 - 1)
        for state in (SafetyState(*views), _locked_state(views), _locked_state(views, owner)):
            again = SafetyState.decode(state.encode())
            assert again == state and again.last_view == max(views)


def test_the_last_view_is_the_highest_of_all_four() -> None:
    for k in range(4):
        views = [5, 5, 5, 5]
        views[k] = 9
        assert SafetyState(*views).last_view == 9
    assert SafetyState().last_view == -1


def test_a_stored_safety_state_that_is_not_one_is_refused() -> None:
    good = _locked_state().encode()
    with pytest.raises(DecodeError):
        SafetyState.decode(b"dvp-safety/0" + good[12:])
    with pytest.raises(DecodeError):
        SafetyState.decode(good + b"\x00")  # trailing bytes
    with pytest.raises(DecodeError):
        SafetyState.decode(good[:-1])  # the lock's block cut short
    block = encode_block(_locked_state().high_pqc_block)  # type: ignore[arg-type]
    with pytest.raises(DecodeError):  # its length claims one byte more than there is
        SafetyState.decode(good[: -len(block) - 4] + _u(4, len(block) + 1) + block)
    empty = SafetyState().encode()
    assert SafetyState.decode(empty) == SafetyState()


def test_a_lock_and_its_block_come_together_and_match() -> None:
    state = _locked_state()
    qc, block = state.high_pqc, state.high_pqc_block
    assert qc is not None and block is not None
    with pytest.raises(AssertionError):
        SafetyState(high_pqc=qc)
    with pytest.raises(AssertionError):
        SafetyState(high_pqc_block=block)
    with pytest.raises(AssertionError):
        SafetyState(high_pqc=replace(qc, block_hash=bytes(32)), high_pqc_block=block)
    with pytest.raises(AssertionError):
        SafetyState(high_pqc=replace(qc, block_hash=b"\xff" * 32), high_pqc_block=block)
    assert SafetyState(high_pqc=qc, high_pqc_block=block).high_pqc == qc


def test_the_safety_state_is_immutable() -> None:
    import dataclasses

    state = SafetyState()
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.prepare_view = 3  # type: ignore[misc]
    assert not hasattr(state, "__dict__")  # slots: no attribute can be added either


# --- the mempool at its exact bounds -------------------------------------------------------


def test_mempool_bounds_are_exact() -> None:
    from node.config import TX_BYTES_MAX
    from node.core import AddResult, Mempool

    assert Mempool().add(b"x" * TX_BYTES_MAX) is AddResult.ACCEPTED
    assert Mempool().add(b"y" * (TX_BYTES_MAX + 1)) is AddResult.TOO_LARGE
    pool = Mempool(txs_max=3, bytes_max=10, committed_ids_max=2)
    assert pool.add(b"a" * 6) is AddResult.ACCEPTED
    assert pool.add(b"b" * 5) is AddResult.FULL  # 11 bytes: one too many
    assert pool.add(b"c" * 4) is AddResult.ACCEPTED  # exactly 10
    assert (len(pool), pool.size_bytes) == (2, 10)
    pool.remove_committed([b"c" * 4])
    assert (len(pool), pool.size_bytes) == (1, 6)
    assert pool.add(b"d") is AddResult.ACCEPTED
    assert pool.add(b"e") is AddResult.ACCEPTED  # the third: the count bound is 3
    assert pool.add(b"f") is AddResult.FULL
    assert pool.batch(3, 7) == [b"a" * 6, b"d"]  # 8 bytes would exceed 7
    assert pool.batch(3, 8) == [b"a" * 6, b"d", b"e"]
    assert pool.batch(2, 100) == [b"a" * 6, b"d"]
    assert pool.oldest(1) == [b"a" * 6]
    assert pool.contains(b"d") and pool.known(b"d") and not pool.contains(b"c" * 4)
    assert pool.known(b"c" * 4)  # committed recently: known, not pending
    assert not pool.known(b"zz")


def test_mempool_remembers_exactly_its_bound_of_committed_ids() -> None:
    from node.core import AddResult, Mempool

    pool = Mempool(txs_max=10, bytes_max=100, committed_ids_max=2)
    pool.remove_committed([b"t1", b"t2"])
    assert pool.add(b"t1") is AddResult.DUPLICATE and pool.add(b"t2") is AddResult.DUPLICATE
    pool.remove_committed([b"t3"])  # the oldest, t1, is forgotten; t2 and t3 are kept
    assert pool.add(b"t2") is AddResult.DUPLICATE and pool.add(b"t3") is AddResult.DUPLICATE
    assert pool.add(b"t1") is AddResult.ACCEPTED
    pool.remove_committed([b"t2"])  # seen again: now the newest, t3 the oldest
    pool.remove_committed([b"t4"])
    assert pool.add(b"t2") is AddResult.DUPLICATE and pool.add(b"t3") is AddResult.ACCEPTED


def test_a_peer_share_is_exact_and_freed_on_commit() -> None:
    from node.core import AddResult, Mempool

    pool = Mempool(txs_max=10, bytes_max=100, committed_ids_max=10)
    assert not pool.share_full(1, 2)
    assert pool.add(b"p1", origin=1, share_max=2) is AddResult.ACCEPTED
    assert not pool.share_full(1, 2)
    assert pool.add(b"p2", origin=1, share_max=2) is AddResult.ACCEPTED
    assert pool.share_full(1, 2)
    assert pool.add(b"p3", origin=1, share_max=2) is AddResult.FULL
    assert pool.add(b"q1", origin=2, share_max=2) is AddResult.ACCEPTED  # another peer's
    assert pool.add(b"c1") is AddResult.ACCEPTED  # a client's: no share
    pool.remove_committed([b"p1", b"c1"])
    assert not pool.share_full(1, 2)
    assert pool.add(b"p3", origin=1, share_max=2) is AddResult.ACCEPTED


def test_only_the_locked_block_itself_skips_the_freshness_checks() -> None:
    """A TC's high_lock lets its block be re-proposed as it was (old view, old time). Any
    other block is fresh and must be of this view, whatever its hash's order against the
    lock's: here the TC reports a stale lock (height 1) to replicas at height 2."""
    net, block1, _ = _committed_one()
    net.tick(net.nodes[0].now_ms + 10)  # block 2 certifies block 1's results
    node = net.nodes[2]
    assert node.committed_height == 2
    parent, parent_cert = net.disks[2].blocks[2]
    prepare_msg = vote_message(CHAIN, Phase.PREPARE, 0, 1, block1.hash)
    lock = QuorumCert(
        Phase.PREPARE, 0, 1, block1.hash,
        tuple((i, HashSigner(i).sign(prepare_msg)) for i in range(Q)),
    )  # fmt: skip
    view = node.view + 4
    from node.core.types import TimeoutEntry

    msg = timeout_message(CHAIN, view - 1, 0, 0)
    entries = tuple(TimeoutEntry(i, 0, 0, HashSigner(i).sign(msg)) for i in range(Q))
    tc = TimeoutCert(view - 1, entries, None, lock)
    leader = node.leader(view)

    def block(block_view: int, tx: bytes) -> Block:
        return Block(
            CHAIN, 3, block_view, parent.hash, leader, parent.time_ms + 1, 2, node.executed_root,
            node.executed_results, (tx,), parent_cert.view,
        )  # fmt: skip

    stale = [block(view - 1, b"s%d" % k) for k in range(32)]
    low = min(stale, key=lambda b: b.hash)
    high = max(stale, key=lambda b: b.hash)
    assert low.hash < block1.hash < high.hash
    for k, bad in enumerate((low, high), 1):
        node.step(leader, Proposal(view, bad, parent_cert, tc))
        net.drain(2)
        assert node.view == view
        assert refused(node, VOTING_RULE) == k
    good = block(view, b"fresh")  # the control: the same, made in this view, gets a vote
    node.step(leader, Proposal(view, good, parent_cert, tc))
    net.drain(2)
    assert [m.block_hash for m in net.sent(2, Vote)][-1:] == [good.hash]  # type: ignore[attr-defined]


def test_the_phase_to_check_is_passed_by_keyword_only() -> None:
    # A sixth positional argument would be easy to mistake for another parameter.
    with pytest.raises(TypeError):
        verify_certificate(_qc([0, 1, 2]), CHAIN, N, Q, HashVerifier(N), Phase.COMMIT)  # type: ignore[misc]


def test_a_tc_forms_when_one_timeout_alone_reports_the_top_height() -> None:
    """The TC's high_commit comes from a timeout at the top height: here the only one, and
    not the first by index (the others report height 0)."""
    net = Net()
    node = net.nodes[3]
    top_cert = _commit_cert(0, 1, BLOCK_HASH)
    node.step(0, _timeout(0, 0))
    node.step(1, _timeout(1, 0))
    sig = HashSigner(2).sign(timeout_message(CHAIN, 0, 1, None))
    node.step(2, Timeout(0, 1, top_cert, None, None, 2, sig))
    assert node.view == 1
    tc = node._last_tc  # what this replica would hand a lagging peer or put in a proposal
    assert tc is not None and tc.high_commit == top_cert
    assert verify_timeout_cert(tc, CHAIN, N, Q, net.verifier)


def test_a_leader_counts_only_votes_of_the_current_view() -> None:
    """Validator 0 leads views 4 and, four views on, 8 (and led 0): votes signed for those
    other views of its own, for the very block it proposes now, must not count."""
    net = _net_at_height(4)
    net.tamper = lambda src, dst, msg: None
    leader = net.nodes[0]
    assert leader.view == 4 and leader.leader(4) == leader.leader(8) == leader.leader(0) == 0
    leader.submit(b"trade-1")
    net.run()
    proposals = net.sent(0, Proposal)
    assert proposals
    b = proposals[0].block  # type: ignore[attr-defined]
    net.outboxes[0].clear()
    for other_view in (0, 8):
        for voter in (1, 2, 3):
            leader.step(voter, _vote(voter, other_view, b.height, b.hash))
    net.drain(0)
    assert not net.sent(0, QCMessage)
    for voter in (1, 2, 3):
        leader.step(voter, _vote(voter, 4, b.height, b.hash))
    net.drain(0)
    assert net.sent(0, QCMessage)  # the control


def test_timeouts_with_malformed_claims_are_refused() -> None:
    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    (block1, cert1), (_, cert2) = chain
    view = node.view

    def sig(voter: int, height: int, lock: int | None) -> bytes:
        return HashSigner(voter).sign(timeout_message(CHAIN, view, height, lock))

    bad = [
        (Timeout(view, 0, None, None, None, 2, bytes(32)), Reason.BAD_SIGNATURE),
        # height 2, the proof of height 1
        (Timeout(view, 2, cert1, None, None, 2, sig(2, 2, None)), Reason.UNPROVEN_COMMIT),
        # a commit QC as the lock
        (Timeout(view, 0, None, cert1, block1, 2, sig(2, 0, cert1.view)), Reason.UNPROVEN_LOCK),
        # a block without its QC
        (Timeout(view, 0, None, None, block1, 2, sig(2, 0, None)), Reason.MALFORMED_CLAIMS),
    ]
    for t, reason in bad:
        node.step(2, t)
        assert node.refused[(Kind.TIMEOUT, reason)] == 1, t
    node.step(2, Timeout(view, 2, cert2, None, None, 2, sig(2, 2, None)))  # the control
    assert refused(node, TIMEOUT_UNPROVEN) == len(bad)


def test_a_tc_carries_the_highest_lock_whichever_timeout_reports_it() -> None:
    """At height 300 (heights as distinct int objects, as decoded): of three timeouts at
    the top height, the second and third report locks; the TC must carry the highest."""
    net = _net_at_height(300)
    top = 300
    block300, cert300 = net.disks[0].blocks[top]
    view = net.nodes[0].view
    leader = net.nodes[0].leader(view + 1)
    node = net.nodes[leader]
    locks = []
    for lock_view in (view - 1, view):  # two blocks at 301, locked in two views
        b = Block(
            CHAIN, 301, lock_view, block300.hash, 0, block300.time_ms + 1, top, ROOT0,
            EMPTY_ROOT, (b"lock-%d" % lock_view,),
        )  # fmt: skip
        msg = vote_message(CHAIN, Phase.PREPARE, lock_view, 301, b.hash)
        sigs = tuple((i, HashSigner(i).sign(msg)) for i in range(Q))
        qc = QuorumCert(Phase.PREPARE, lock_view, 301, b.hash, sigs)
        locks.append((qc, b))
    voters = [i for i in range(N) if i != leader][:Q]
    claims = [(None, None), locks[1], locks[0]]  # the highest lock in the second timeout
    for voter, (qc, b) in zip(voters, claims, strict=True):
        height = int(str(top))
        lock_view = None if qc is None else qc.view
        sig = HashSigner(voter).sign(timeout_message(CHAIN, view, height, lock_view))
        node.step(voter, Timeout(view, height, cert300, qc, b, voter, sig))
    net.drain(leader)
    assert node.view == view + 1
    proposals = [m for m in net.sent(leader, Proposal) if m.view == view + 1]  # type: ignore[attr-defined]
    assert proposals and proposals[0].block.hash == locks[1][1].hash


def test_mempool_needs_positive_bounds() -> None:
    from node.core import Mempool
    from node.invariant import InvariantError

    Mempool(1, 1, 1)
    for bounds in ((0, 1, 1), (1, 0, 1), (1, 1, 0), (-1, 1, 1), (1, -1, 1), (1, 1, -1)):
        with pytest.raises(InvariantError):
            Mempool(*bounds)


def test_a_forwarded_transaction_needs_a_share_given() -> None:
    from node.core import AddResult, Mempool

    assert Mempool().add(b"tx", origin=1) is AddResult.FULL


def test_mempool_bounds_hold_above_256() -> None:
    """Bounds in production are in the thousands: counts compared to them are ints above
    CPython's small-int cache, so equality by identity would never hold."""
    from node.core import AddResult, Mempool

    big = int(str(300))
    pool = Mempool(txs_max=big, bytes_max=10**6, committed_ids_max=10)
    for i in range(300):
        assert pool.add(b"tx-%d" % i, origin=1, share_max=big) is AddResult.ACCEPTED
    assert pool.share_full(1, int(str(300)))
    assert pool.add(b"one-more", origin=2, share_max=big) is AddResult.FULL  # the count bound
    assert len(pool.batch(int(str(299)), 10**6)) == 299
    pool2 = Mempool(txs_max=1000, bytes_max=10**6, committed_ids_max=10)
    for i in range(300):
        pool2.add(b"p-%d" % i, origin=1, share_max=big)
    assert pool2.add(b"p-300", origin=1, share_max=int(str(300))) is AddResult.FULL


def test_a_batch_stops_at_the_first_transaction_that_does_not_fit() -> None:
    from node.core import Mempool

    pool = Mempool(txs_max=10, bytes_max=100, committed_ids_max=10)
    for tx in (b"a" * 6, b"b" * 5, b"c"):
        pool.add(tx)
    assert pool.batch(3, 8) == [b"a" * 6]  # FIFO: c fits but b, older, comes first


def test_a_peer_share_counts_down_one_per_commit() -> None:
    from node.core import AddResult, Mempool

    pool = Mempool(txs_max=10, bytes_max=100, committed_ids_max=10)
    pool.add(b"p1", origin=1, share_max=2)
    pool.add(b"p2", origin=1, share_max=2)
    pool.remove_committed([b"p1"])
    assert pool.add(b"p3", origin=1, share_max=2) is AddResult.ACCEPTED
    assert pool.add(b"p4", origin=1, share_max=2) is AddResult.FULL


def test_a_smaller_share_or_count_than_already_held_takes_nothing() -> None:
    from node.core import AddResult, Mempool

    pool = Mempool(txs_max=10, bytes_max=100, committed_ids_max=10)
    pool.add(b"p1", origin=1, share_max=2)
    pool.add(b"p2", origin=1, share_max=2)
    assert pool.share_full(1, 1)  # the share shrank below what the peer holds
    assert pool.add(b"p3", origin=1, share_max=1) is AddResult.FULL
    assert pool.batch(-1, 100) == [] and pool.batch(0, 100) == []


# --- the voting rules at their edges (core.replica.rules, the end of the session) ----------


def _prepare_qc(view: int, height: int, block_hash: bytes, signers: range = range(Q)) -> QuorumCert:
    msg = vote_message(CHAIN, Phase.PREPARE, view, height, block_hash)
    return QuorumCert(
        Phase.PREPARE,
        view,
        height,
        block_hash,
        tuple((i, HashSigner(i).sign(msg)) for i in signers),
    )


def _decoded(qc: QuorumCert) -> QCMessage:
    """The certificate as a peer's bytes make it: no int shared with the replica's own."""
    from node.core.codec import decode_message, encode_message

    msg = decode_message(encode_message(QCMessage(qc)))
    assert isinstance(msg, QCMessage)
    return msg


def _commit_votes(net: Net, i: int) -> list[Vote]:
    return [m for m in net.sent(i, Vote) if m.phase == Phase.COMMIT]  # type: ignore[attr-defined]


@pytest.mark.parametrize("base", [0, 300])
def test_a_lock_moves_only_to_a_later_view_of_its_height_and_only_on_q_signatures(
    base: int,
) -> None:
    """Replica 3 is locked on block h by a prepare QC of view v (and voted COMMIT in v; the
    QC moved it to v + 1). A QC of q - 1 signatures for v + 2 moves nothing; a real one
    for v + 2 moves the lock (the same block certified again after a view change) but gets
    no COMMIT vote, v + 2 not being the replica's view; the QC of v arriving again after
    it moves the lock back to nothing and gets no second COMMIT vote. At height and view
    300 too, decoded."""
    net, locked, view = _locked(base=base)
    node = net.nodes[3]
    old = node.safety.high_pqc
    assert old is not None and old.view == view and node.view == view + 1
    votes = len(_commit_votes(net, 3))
    assert votes == 1 and node.safety.commit_view == view
    node.step(0, _decoded(_prepare_qc(view + 2, locked.height, locked.hash, range(Q - 1))))
    net.drain(3)
    assert node.safety.high_pqc == old
    later = _prepare_qc(view + 2, locked.height, locked.hash)
    node.step(0, _decoded(later))
    net.drain(3)
    assert node.safety.high_pqc == later and node.safety.high_pqc_block == locked
    node.step(0, _decoded(old))
    net.drain(3)
    assert node.safety.high_pqc == later
    assert len(_commit_votes(net, 3)) == votes and node.halted is None


def test_no_commit_vote_for_a_prepare_qc_of_a_view_left_behind() -> None:
    """Replica 3 voted PREPARE in view 0 and moved to view 1 on a TC it did not sign (no
    timeout of its own): a prepare QC of view 0 locks it but gets no COMMIT vote."""
    net = Net()
    net.tamper = lambda src, dst, msg: msg if (src, dst) == (0, 3) else None
    net.nodes[0].submit(b"trade-1")
    net.run()
    node = net.nodes[3]
    assert node.safety.prepare_view == 0 and node.safety.timeout_view == -1
    node.step(0, _new_view(_tc([0, 1, 2], view=0)))
    net.drain(3)
    assert node.view == 1 and node.safety.timeout_view == -1
    b = net.sent(0, Proposal)[0].block  # type: ignore[attr-defined]
    pqc = _prepare_qc(0, 1, b.hash)
    node.step(0, QCMessage(pqc))
    net.drain(3)
    assert node.safety.high_pqc == pqc
    assert _commit_votes(net, 3) == []


@pytest.mark.parametrize("base", [0, 300])
def test_a_prepare_qc_on_roots_we_do_not_share_halts_before_any_commit_vote(base: int) -> None:
    """Replica 3's execution of block h diverges (its root below everyone's); the prepare
    QC on block h + 1, which carries the others' root, halts it at once: no COMMIT vote for
    a block whose roots it does not share. At height 300 too, over the codec."""
    from node.core.codec import decode_message, encode_message

    net = _net_at_height(base) if base else Net()
    net.tamper = lambda src, dst, msg: decode_message(encode_message(msg))  # type: ignore[arg-type]
    net.nodes[0].submit(b"trade-1")
    net.run()
    assert all(d.committed_height() == base + 1 for d in net.disks)
    node = net.nodes[3]
    node.executed_root = bytes(32)
    assert node.executed_root < net.nodes[0].executed_root
    net.nodes[1].submit(b"trade-2")
    net.tick(net.nodes[0].now_ms + 100)
    assert [d.committed_height() for d in net.disks[:3]] == [base + 2] * 3
    assert node.halted is not None and "certified other roots" in node.halted
    assert not [v for v in _commit_votes(net, 3) if v.height == base + 2]


def test_a_prepare_qc_far_ahead_starts_catch_up_of_every_height_before_it() -> None:
    net = Net()
    node = net.nodes[3]
    node.step(0, QCMessage(_prepare_qc(7, 4, BLOCK_HASH)))
    net.drain(3)
    assert _sync_requests(net, 3) == [(1, 3)]


def test_a_proposal_ignoring_the_tc_lock_at_height_300_gets_no_vote() -> None:
    """As test_a_proposal_ignoring_the_lock_in_its_tc_gets_no_vote, at height 300 (the
    height compared with the TC's top + 1 is not a cached int) and with the rogue block's
    hash above the locked one's (an order compare of hashes would let it through)."""
    net, locked, view = _locked(base=300)
    after = view + 2  # the view after the one that times out
    leader = net.nodes[0].leader(after)

    def other_block(k: int) -> Block:
        return Block(
            CHAIN, locked.height, after, locked.parent_hash, leader, locked.time_ms + 1,
            locked.height - 1, locked.state_root, locked.results_root, (b"trade-other-%d" % k,),
        )  # fmt: skip

    above = next(b for b in map(other_block, range(100)) if b.hash > locked.hash)
    _next_leader_proposes_and_gets_no_vote(net, after, above)


def test_a_commit_certificate_of_our_block_from_the_current_view_moves_us_on() -> None:
    """Block 1 committed in view 0; the same block certified again in view 1 (re-proposed
    after a view change somewhere) moves replica 2, in view 1, to view 2 with that
    certificate, so its next proposal is fresh."""
    net, block, _ = _committed_one()
    node = net.nodes[2]
    view = node.view
    assert view == 1 and node.committed_view == 0
    node.step(0, QCMessage(_commit_cert(view, 1, block.hash)))
    assert (node.committed_view, node.view) == (view, view + 1)


def test_a_first_block_with_a_parent_certificate_from_its_own_view_gets_no_vote() -> None:
    """In view 1 a block of height 1 is justified only by a TC of view 0: genesis has no
    certificate, so one claiming a certificate (of any view) gets no vote."""
    net = Net()
    node = net.nodes[2]
    node.step(0, _new_view(_tc([0, 1, 2], view=0)))
    net.drain(2)
    assert node.view == 1 and node.committed_height == 0
    leader = node.leader(1)
    block = _block(None, 1, leader, node.now_ms + 1, b"trade-1")
    for view in (1, 2):
        node.step(leader, Proposal(1, block, _commit_cert(view, 1, BLOCK_HASH), None))
        net.drain(2)
    assert refused(node, PROPOSAL_CERT) == 2
    assert not net.sent(2, Vote)
    node.step(leader, Proposal(1, block, None, _tc([0, 1, 2], view=0)))  # the control
    net.drain(2)
    assert [m.block_hash for m in net.sent(2, Vote)] == [block.hash]  # type: ignore[attr-defined]


def test_a_tc_lock_one_height_below_the_proposal_does_not_bind_it() -> None:
    """Block 1 is locked everywhere; replica 3 alone learns its commit. The TC of the view
    (from the others: top height 0, lock on block 1) then justifies a proposal of block 2
    on block 1: the TC's lock binds only height top + 1, which block 2 is not."""
    net, locked, view = _locked()
    node = net.nodes[3]
    cert = _commit_cert(view, 1, locked.hash)
    node.step(0, QCMessage(cert))
    net.drain(3)
    assert node.committed_height == 1 and node.view == view + 1
    after = view + 2  # the others time out view + 1 (their PQC moved them there)
    leader = node.leader(after)
    assert leader != 3
    net.down = {3}
    net.tick(net.nodes[0].now_ms + VIEW_TIMEOUT_BASE_MS)
    tcs = [m.tc for m in net.sent(leader, Proposal) if m.view == after]  # type: ignore[attr-defined]
    assert tcs and tcs[0] is not None and tcs[0].top_height == 0
    assert tcs[0].high_lock is not None and tcs[0].high_lock.block_hash == locked.hash
    child = Block(
        CHAIN, 2, after, locked.hash, leader, max(locked.time_ms, node.now_ms) + 1, 1,
        node.executed_root, node.executed_results, (b"trade-2",),
    )  # fmt: skip
    node.step(leader, Proposal(after, child, cert, tcs[0]))
    net.drain(3)
    assert refused(node, VOTING_RULE) == 0
    assert [m.block_hash for m in net.sent(3, Vote) if m.view == after] == [child.hash]  # type: ignore[attr-defined]


# --- core.replica.commit, the gaps left at the end of the first session ----------------------


def _view_spans_after_a_commit(views: int) -> list[int]:
    """How long each of the first ``views`` views after a commit lasts when every proposal
    is lost (each view ends by a timeout certificate)."""
    from itertools import pairwise

    net, _, _ = _committed_one()
    net.tamper = lambda src, dst, msg: None if isinstance(msg, Proposal) else msg
    net.nodes[1].submit(b"trade-2")
    net.run()
    node = net.nodes[0]
    entered = [(node.view, node.now_ms)]
    while len(entered) <= views:
        deadline = min(d for n in net.nodes if (d := n.deadline_ms()) is not None)
        net.tick(deadline)
        if node.view != entered[-1][0]:
            entered.append((node.view, deadline))
    return [b - a for (_, a), (_, b) in pairwise(entered)]


def test_a_commit_resets_the_timeout_count_so_doubling_starts_after_n_minus_q_views() -> None:
    """n - q = 1 here: the first two views after a commit last the base timeout (the first
    only ends the view the commit was in), the third twice as long. A count reset to -1
    would give one more view at the base timeout."""
    assert _view_spans_after_a_commit(3) == [
        VIEW_TIMEOUT_BASE_MS,
        VIEW_TIMEOUT_BASE_MS,
        2 * VIEW_TIMEOUT_BASE_MS,
    ]


def test_catch_up_commits_blocks_decoded_from_bytes() -> None:
    """A real catch-up answer arrives as bytes: the block's hash (computed on decoding) and
    its certificate's hash are equal but distinct objects."""
    from node.core.codec import decode_message, encode_message

    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    answer = decode_message(encode_message(SyncResponse(tuple(chain))))
    assert isinstance(answer, SyncResponse)
    block, cert = answer.blocks[0]
    assert block.hash == cert.block_hash and block.hash is not cert.block_hash
    node.step(0, answer)
    net.drain(3)
    assert node.committed_height == 2
    assert [net.disks[3].blocks[h][0].hash for h in (1, 2)] == [b.hash for b, _ in chain]


def test_after_progress_a_peer_word_lasts_exactly_n_minus_1_more_misses() -> None:
    """A catch-up on a peer's word (no certificate) that moved the node on: its follow-up
    and n - 2 = 2 retries go unanswered, and that ends the word (3 misses since progress).
    The node sends the one answered request and exactly 3 more, never a fifth."""
    from node.config import CATCHUP_RETRY_MS
    from node.core import SyncRequest
    from tests.unit.test_core_hostile import _behind_by_many

    net = Net()
    now = _behind_by_many(net)
    top = net.disks[0].committed_height()
    sent = [0]

    def answer_only_the_first(src: int, dst: int, msg: object) -> object | None:
        if src == 3 and isinstance(msg, SyncRequest):
            sent[0] += 1
            return msg if sent[0] == 1 else None
        return msg

    net.tamper = answer_only_the_first
    node = net.nodes[3]
    node.peer_height(0, top)
    net.run()
    assert 0 < node.committed_height < top  # one answer, part of the way
    for _ in range(12):
        now += CATCHUP_RETRY_MS
        net.tick(now)
    assert sent[0] == 1 + (N - 1)


def test_a_block_of_exactly_the_byte_limit_gets_a_vote_and_one_byte_more_none() -> None:
    from node.config import BLOCK_BYTES_MAX

    net = Net()
    net.nodes[1].submit(b"trade-1")
    net.run()
    parent, cert = net.disks[0].blocks[1]
    node = net.nodes[2]
    view = node.view
    leader = node.leader(view)

    def block(size: int) -> Block:
        txs = (b"a" * (size // 2), b"b" * (size - size // 2))
        return Block(
            CHAIN, 2, view, parent.hash, leader, parent.time_ms + 1, 1, node.executed_root,
            node.executed_results, txs,
        )  # fmt: skip

    over = block(BLOCK_BYTES_MAX + 1)
    node.step(leader, Proposal(view, over, cert, None))
    net.drain(2)
    assert [m for m in net.sent(2, Vote) if m.block_hash == over.hash] == []  # type: ignore[attr-defined]
    assert refused(node, VOTING_RULE) == 1
    at = block(BLOCK_BYTES_MAX)  # the control: exactly the limit is fine
    node.step(leader, Proposal(view, at, cert, None))
    net.drain(2)
    assert [m.block_hash for m in net.sent(2, Vote)][-1:] == [at.hash]  # type: ignore[attr-defined]


def test_catch_up_refuses_a_certified_block_that_does_not_extend_ours() -> None:
    """A commit certificate for a block whose parent is not our committed block proves a
    fork (q signers beyond the fault model): catch-up refuses it, it does not fail-stop on
    it. Parents below and above ours, so an ordering comparison cannot stand in for ``!=``."""
    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    block = chain[0][0]
    for parent in (bytes(32), b"\xff" * 32):
        fork = replace(block, parent_hash=parent)
        assert fork.hash != block.hash
        node.step(0, SyncResponse(((fork, _commit_cert(0, 1, fork.hash)),)))
        assert node.committed_height == 0 and node.halted is None
    node.step(0, SyncResponse((chain[0],)))  # the control: the real block commits
    assert node.committed_height == 1


def _fresh_proposal_setup() -> tuple[Net, Block, QuorumCert]:
    """Block 1 committed by all at times above the small-int cache; node 2 awaits block 2."""
    net = Net()
    net.tick(10**6)
    net.nodes[1].submit(b"trade-1")
    net.run()
    parent, cert = net.disks[0].blocks[1]
    return net, parent, cert


def _block_2(net: Net, parent: Block, **fields: object) -> Block:
    node = net.nodes[2]
    block = Block(
        CHAIN, 2, node.view, parent.hash, node.leader(node.view), parent.time_ms + 1, 1,
        node.executed_root, node.executed_results, (b"trade-2",),
    )  # fmt: skip
    return replace(block, **fields)  # type: ignore[arg-type]


def _votes_for(net: Net, block: Block) -> int:
    return len([m for m in net.sent(2, Vote) if m.block_hash == block.hash])  # type: ignore[attr-defined]


def test_a_first_block_that_does_not_extend_genesis_gets_no_vote() -> None:
    """At height 1 no parent certificate ties a block to our chain: only its parent hash
    does. Parents below and above genesis get no vote (an ordering comparison must not
    stand in for ``!=``); above height 1 the parent certificate already pins the parent."""
    net = Net()
    node = net.nodes[2]
    leader = node.leader(0)
    good = _block(None, 0, leader, 1, b"trade-1")
    for other in (bytes(32), b"\xff" * 32):
        bad = replace(good, parent_hash=other)
        node.step(leader, Proposal(0, bad, None, None))
        net.drain(2)
        assert _votes_for(net, bad) == 0
    assert refused(node, VOTING_RULE) == 2
    node.step(leader, Proposal(0, good, None, None))  # the control
    net.drain(2)
    assert _votes_for(net, good) == 1


def test_a_block_of_exactly_the_transaction_limit_gets_a_vote_and_one_more_none() -> None:
    from node.config import BLOCK_TXS_MAX

    net, parent, cert = _fresh_proposal_setup()
    node = net.nodes[2]
    leader = node.leader(node.view)
    over = _block_2(net, parent, txs=tuple(b"tx-%d" % k for k in range(BLOCK_TXS_MAX + 1)))
    node.step(leader, Proposal(node.view, over, cert, None))
    net.drain(2)
    assert _votes_for(net, over) == 0
    assert refused(node, VOTING_RULE) == 1
    at = _block_2(net, parent, txs=over.txs[:BLOCK_TXS_MAX])  # the control
    node.step(leader, Proposal(node.view, at, cert, None))
    net.drain(2)
    assert _votes_for(net, at) == 1


def test_a_fresh_block_naming_another_proposer_than_its_sender_gets_no_vote() -> None:
    """The leader sends a block naming a validator below or above it as proposer (the
    schedule credits a block's proposer): no vote."""
    net, parent, cert = _fresh_proposal_setup()
    node = net.nodes[2]
    leader = node.leader(node.view)
    for other in ((leader - 1) % N, (leader + 1) % N):
        assert other != leader
        bad = _block_2(net, parent, proposer=other)
        node.step(leader, Proposal(node.view, bad, cert, None))
        net.drain(2)
        assert _votes_for(net, bad) == 0
    assert refused(node, VOTING_RULE) == 2


def test_a_fresh_block_timed_more_than_the_drift_before_us_gets_no_vote() -> None:
    """A leader must not backdate a fresh block to run trades past their deadline: timed
    more than BLOCK_TIME_DRIFT_MAX_MS before our clock, no vote; exactly that, a vote."""
    from node.config import BLOCK_TIME_DRIFT_MAX_MS

    net, parent, cert = _fresh_proposal_setup()
    node = net.nodes[2]
    leader = node.leader(node.view)
    now = parent.time_ms + 2 + BLOCK_TIME_DRIFT_MAX_MS
    late = _block_2(net, parent, time_ms=now - BLOCK_TIME_DRIFT_MAX_MS - 1)
    node.step(leader, Proposal(node.view, late, cert, None), now_ms=now)
    net.drain(2)
    assert _votes_for(net, late) == 0
    assert refused(node, VOTING_RULE) == 1
    edge = _block_2(net, parent, time_ms=now - BLOCK_TIME_DRIFT_MAX_MS)  # the control
    node.step(leader, Proposal(node.view, edge, cert, None), now_ms=now)
    net.drain(2)
    assert _votes_for(net, edge) == 1


def test_one_timeout_of_seven_validators_does_not_make_a_replica_join() -> None:
    """n = 7, f + 1 = 3: one timeout and two leave a replica in its view; the third makes
    it join (with n = 4 one timeout is exactly f, where ``>`` and ``!=`` agree)."""
    net = Net(7)
    node = net.nodes[6]
    for k, voter in enumerate((0, 1, 2)):
        node.step(voter, _timeout(voter, 0))
        net.drain(6)
        assert node.safety.timeout_view == (0 if k == 2 else -1)
    assert {m.view for m in net.sent(6, Timeout)} == {0}  # type: ignore[attr-defined]


def test_catch_up_above_height_256() -> None:
    """Heights above the small-int cache: the block's height and ours + 1 are equal but
    distinct objects."""
    from node.core import genesis_hash

    net = _net_at_height(299)
    node = net.nodes[3]
    top = net.disks[3].blocks[299][0]
    assert node.committed_height == 299 and top.parent_hash != genesis_hash(CHAIN)
    block = Block(CHAIN, 300, 299, top.hash, 299 % N, 300, 299, ROOT0, EMPTY_ROOT, (b"old-300",))
    cert = _commit_cert(299, int(str(block.height)), block.hash)  # equal, another object
    node.step(0, SyncResponse(((block, cert),)))
    assert node.committed_height == 300 and node.halted is None


def test_a_block_repeating_a_transaction_gets_no_vote() -> None:
    net, parent, cert = _fresh_proposal_setup()
    node = net.nodes[2]
    leader = node.leader(node.view)
    twice = _block_2(net, parent, txs=(b"trade-2", b"trade-3", b"trade-2"))
    node.step(leader, Proposal(node.view, twice, cert, None))
    net.drain(2)
    assert _votes_for(net, twice) == 0
    assert refused(node, VOTING_RULE) == 1
    once = _block_2(net, parent, txs=(b"trade-2", b"trade-3"))  # the control
    node.step(leader, Proposal(node.view, once, cert, None))
    net.drain(2)
    assert _votes_for(net, once) == 1


def test_a_later_commit_certificate_of_our_block_is_kept_above_height_256() -> None:
    net = _net_at_height(299)
    node = net.nodes[2]
    top = net.disks[2].blocks[299][0]
    assert node.committed_view == 298
    node.step(0, QCMessage(_commit_cert(500, int(str(top.height)), top.hash)))
    assert (node.committed_view, node.view) == (500, 501)


def test_a_timeout_proving_a_higher_committed_height_starts_catch_up() -> None:
    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    cert = chain[1][1]
    sig = HashSigner(0).sign(timeout_message(CHAIN, 0, 2, None))
    node.step(0, Timeout(0, 2, cert, None, None, 0, sig))
    net.drain(3)
    assert refused(node, TIMEOUT_UNPROVEN) == 0
    assert _sync_requests(net, 3) == [(1, 2)]


def test_an_answer_that_moved_catch_up_on_asks_from_the_next_height() -> None:
    """At odd and even heights (``h + 1`` and ``h ^ 1`` agree only at even ones)."""
    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    for k, (block, cert) in enumerate(chain, 1):
        node.step(1, SyncResponse(((block, cert),)))
        net.drain(3)
        assert node.committed_height == k
        assert _sync_requests(net, 3)[-1][0] == k + 1


def test_catch_up_refuses_a_certificate_signed_for_a_later_height() -> None:
    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    block = chain[0][0]
    node.step(0, SyncResponse(((block, _commit_cert(0, 2, block.hash)),)))
    assert node.committed_height == 0 and node.halted is None


def test_reaching_the_certified_target_still_asks_the_peer_for_more() -> None:
    from node.config import CATCHUP_BATCH_BLOCKS_MAX

    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    node.step(0, QCMessage(chain[1][1]))  # target: height 2
    node.step(1, SyncResponse(tuple(chain)))
    net.drain(3)
    assert node.committed_height == 2
    assert _sync_requests(net, 3) == [(1, 2), (3, CATCHUP_BATCH_BLOCKS_MAX)]


def test_an_answer_that_moves_nothing_ends_the_chain_of_requests() -> None:
    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    node.step(1, SyncResponse(tuple(chain)))
    net.drain(3)
    before = len(_sync_requests(net, 3))
    node.step(1, SyncResponse(tuple(chain)))  # blocks we hold now
    net.drain(3)
    assert node.committed_height == 2 and len(_sync_requests(net, 3)) == before


# --- the last gaps of core.replica.commit (docs/testing.md) ---------------------------------


def test_a_catch_up_request_in_flight_is_retried_after_a_commit_by_consensus() -> None:
    """Node 3 asks for blocks up to a height a peer claims (10); the request is lost, and
    meanwhile block 1 commits by consensus. The target is still above it, so the request
    is retried to the next peer one retry interval later (dropping the retry timer on
    any commit would leave catch-up stalled until some other message restarts it)."""
    from node.config import CATCHUP_RETRY_MS
    from node.core import SyncRequest

    net = Net()
    asked: list[int] = []

    def lose_requests(src: int, dst: int, msg: object) -> object | None:
        if isinstance(msg, SyncRequest):
            asked.append(dst)
            return None
        return msg

    net.tamper = lose_requests
    node = net.nodes[3]
    node.peer_height(0, 10)
    net.nodes[1].submit(b"trade-1")
    net.run()
    assert asked == [0] and node.committed_height == 1
    net.tick(CATCHUP_RETRY_MS)
    assert asked[:2] == [0, 1]


def test_a_catch_up_target_reached_by_consensus_above_height_256_leaves_no_timer() -> None:
    """The target (300, another int object than the committed height) is reached exactly
    by a commit by consensus: no retry is pending, so the idle node has no deadline."""
    from node.core import SyncRequest

    net = _net_at_height(299)
    net.tamper = lambda src, dst, msg: None if isinstance(msg, SyncRequest) else msg
    node = net.nodes[3]
    node.peer_height(0, int(str(300)))
    assert node.deadline_ms() is not None  # the request's retry is pending
    net.tick(1)  # the leader proposes the block that follows the last block's trade
    assert node.committed_height == 300 and len(net.disks[3].blocks[300][0].txs) == 0
    assert node.deadline_ms() is None


def test_a_fresh_block_from_a_leader_above_index_256_gets_a_vote() -> None:
    """n = 300: the leader of the first view led by an index above 256 sends a fresh first
    block after a TC; its index in the block and as the sender are equal but distinct int
    objects (as decoded from a peer), and the replica votes."""
    from node.core import NewView, genesis_hash

    node = replica(5, quorum=Quorum.classic(300))
    view = next(v for v in range(1, 300) if node.leader(v) > 256)
    tc = _tc(list(range(node.q)), view=view - 1)
    node.step(0, NewView(tc))
    assert node.view == view
    leader = node.leader(view)
    block = Block(
        CHAIN, 1, view, genesis_hash(CHAIN), int(str(leader)), NOW, 0, ROOT0, EMPTY_ROOT, (b"t",)
    )
    node.step(int(str(leader)), Proposal(view, block, None, tc))
    votes = [m for _, m in node.ready().to_send if isinstance(m, Vote)]
    assert [(v.phase, v.block_hash) for v in votes] == [(Phase.PREPARE, block.hash)]


def test_q_timeouts_form_a_tc_when_q_is_above_256() -> None:
    """n = 400, q = 267: the 267th timeout of a view makes a replica form the TC and move
    on (the count and q are equal ints, never the same object)."""
    node = replica(399, quorum=Quorum.classic(400))
    q = node.q
    assert q > 256
    for voter in range(q):
        node.step(voter, _timeout(voter, 0))
        assert node.view == (0 if voter < q - 1 else 1)


def test_a_later_commit_certificate_of_our_block_with_its_hash_decoded_is_kept() -> None:
    """As from a peer: the certificate's block hash is equal to ours, not the same object."""
    net, block, _ = _committed_one()
    node = net.nodes[2]
    node.step(0, QCMessage(_commit_cert(5, 1, bytes(bytearray(block.hash)))))
    assert (node.committed_view, node.view) == (5, 6)


def _catching_up_from_peer_0() -> tuple[Net, list[tuple[Block, QuorumCert]], int]:
    """Node 3 holds blocks 1 and 2 and asks peer 0 for more on its word (height 5); the
    request is in flight. Returns the net, the chain and the time a retry is due."""
    from node.config import CATCHUP_RETRY_MS

    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    node.step(0, SyncResponse(tuple(chain)))
    node.peer_height(0, 5)
    net.drain(3)
    assert node.committed_height == 2
    return net, chain, node.now_ms + CATCHUP_RETRY_MS


def _sync_request_peers(net: Net, i: int) -> list[int]:
    from node.core import SyncRequest

    sends = net.outboxes[i].log
    return [dst for kind, dst, m in sends if kind == "send" and isinstance(m, SyncRequest)]


def _peers_asked_at_the_retry(net: Net, retry_at: int) -> list[int]:
    """Node 3's engine finishes what it was fed; the peers its retry then asks."""
    net.drain(3)
    before = len(_sync_request_peers(net, 3))
    net.nodes[3].tick(retry_at)
    net.drain(3)
    return _sync_request_peers(net, 3)[before:]


@pytest.mark.parametrize("height", [1, 2])
def test_a_peer_certifying_no_height_above_ours_is_not_asked_for_blocks(height: int) -> None:
    """A commit certificate of height 1 or 2 (ours: 2) from peer 2, in a later view, proves
    peer 2 holds nothing we lack: the unanswered request to peer 0 is retried to the next
    peer in turn (1), not to one after peer 2."""
    net, chain, retry_at = _catching_up_from_peer_0()
    node = net.nodes[3]
    block = chain[height - 1][0]
    node.step(2, QCMessage(_commit_cert(node.view, height, block.hash)))
    assert _peers_asked_at_the_retry(net, retry_at) == [1]


def test_a_timeout_proving_a_lower_committed_height_does_not_redirect_catch_up() -> None:
    """The same through a timeout: peer 2 proves it committed height 1 (ours: 2)."""
    net, chain, retry_at = _catching_up_from_peer_0()
    node = net.nodes[3]
    view = node.view
    sig = HashSigner(2).sign(timeout_message(CHAIN, view, 1, None))
    node.step(2, Timeout(view, 1, chain[0][1], None, None, 2, sig))
    assert _peers_asked_at_the_retry(net, retry_at) == [1]


def test_catch_up_takes_the_next_block_wherever_it_stands_in_an_answer() -> None:
    """An answer listing block 2 before block 1: block 2 is skipped, block 1 committed."""
    net, chain = _node_3_behind_by_two()
    node = net.nodes[3]
    node.step(1, SyncResponse((chain[1], chain[0])))
    assert node.committed_height == 1 and node.halted is None


def test_a_block_timed_before_its_parent_gets_no_vote() -> None:
    net, parent, cert = _fresh_proposal_setup()
    node = net.nodes[2]
    leader = node.leader(node.view)
    early = _block_2(net, parent, time_ms=parent.time_ms - 1)
    node.step(leader, Proposal(node.view, early, cert, None))
    net.drain(2)
    assert _votes_for(net, early) == 0
    later = _block_2(net, parent, time_ms=parent.time_ms + 1)  # the control
    node.step(leader, Proposal(node.view, later, cert, None))
    net.drain(2)
    assert _votes_for(net, later) == 1


def test_a_replica_that_joined_a_view_change_sends_its_timeout_once() -> None:
    """n = 7: the third timeout of view 0 makes a replica join (one timeout sent); a
    fourth, still short of q = 5, does not make it send its timeout again."""
    net = Net(7)
    node = net.nodes[6]
    for voter in (0, 1, 2, 3):
        node.step(voter, _timeout(voter, 0))
        net.drain(6)
    to_0 = [m for kind, dst, m in net.outboxes[6].log if kind == "send" and dst == 0]
    assert [type(m) for m in to_0] == [Timeout]  # one broadcast: one copy to each peer


def test_a_fresh_block_on_roots_other_than_ours_gets_no_vote_whichever_way_they_differ() -> None:
    """Roots above or below ours (as bytes), in the state root or the results root: no
    vote; our own roots: a vote."""
    net, parent, cert = _fresh_proposal_setup()
    node = net.nodes[2]
    leader = node.leader(node.view)
    ours = (node.executed_root, node.executed_results)
    for k, (state, results) in enumerate(
        ((b"\xff" * 32, ours[1]), (b"\x00" * 32, ours[1]), (ours[0], b"\xff" * 32))
    ):
        other = _block_2(net, parent, state_root=state, results_root=results, txs=(b"o%d" % k,))
        node.step(leader, Proposal(node.view, other, cert, None))
        net.drain(2)
        assert _votes_for(net, other) == 0
    same = _block_2(net, parent)  # the control
    node.step(leader, Proposal(node.view, same, cert, None))
    net.drain(2)
    assert _votes_for(net, same) == 1
