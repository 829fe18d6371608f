"""Tests written to kill mutants of the consensus core that the rest of the suite let live
(issue 19; docs/testing.md lists each mutant and the test that kills it).

Each test pins one safety rule at its exact boundary: a certificate of q signatures and
one of q - 1, a signer inside the validator set and one just outside, a proposal that
extends the lock a timeout certificate reports and one that does not.
"""

from __future__ import annotations

from dataclasses import replace

from node.config import VIEW_TIMEOUT_BASE_MS
from node.core import (
    Block,
    Phase,
    Proposal,
    QCMessage,
    QuorumCert,
    SyncResponse,
    Timeout,
    TimeoutCert,
    Vote,
    timeout_message,
    verify_certificate,
    verify_timeout_cert,
    vote_message,
)
from node.merkle import EMPTY_ROOT
from tests.sim.harness import HashSigner, HashVerifier
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


def test_a_signature_from_outside_the_validator_set_is_not_counted() -> None:
    # The verifier knows a fifth key (a retired validator, a key of another chain): the
    # certificate check itself must bound indexes by n, not trust the verifier to.
    verifier = HashVerifier(N + 1)
    assert verify_certificate(_qc([1, 2, 3]), CHAIN, N, Q, verifier)
    assert not verify_certificate(_qc([1, 2, 4]), CHAIN, N, Q, verifier)
    assert not verify_certificate(_qc([0, 1, -1]), CHAIN, N, Q, verifier)


def test_a_certificate_is_checked_for_the_phase_asked() -> None:
    verifier = HashVerifier(N)
    prepare = _qc([0, 1, 2], Phase.PREPARE)
    assert verify_certificate(prepare, CHAIN, N, Q, verifier, phase=Phase.PREPARE)
    assert not verify_certificate(prepare, CHAIN, N, Q, verifier, phase=Phase.COMMIT)
    assert verify_certificate(prepare, CHAIN, N, Q, verifier)


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


def _locked_in_view_0() -> tuple[Net, Block]:
    """Block 1 gets a prepare QC in view 0 (every replica locks on it) but its COMMIT votes
    are lost, so view 0 times out with the lock in every timeout."""
    net = Net()

    def lose_commit_votes_of_view_0(src: int, dst: int, msg: object) -> object | None:
        if isinstance(msg, Vote) and msg.phase == Phase.COMMIT and msg.view == 0:
            return None
        return msg

    net.tamper = lose_commit_votes_of_view_0
    net.nodes[1].submit(b"trade-1")
    net.run()
    locked = net.nodes[0].safety.high_pqc_block
    assert locked is not None and locked.height == 1
    assert all(n.safety.high_pqc_block == locked for n in net.nodes)
    assert all(d.committed_height() == 0 for d in net.disks)
    return net, locked


def test_after_a_view_change_the_locked_block_is_the_one_committed() -> None:
    """The TC carries the highest lock; the next leader re-proposes that block (a leader
    that drops the lock from its TC would propose another block at the same height)."""
    net, locked = _locked_in_view_0()
    net.tick(VIEW_TIMEOUT_BASE_MS)
    net.tick(VIEW_TIMEOUT_BASE_MS + 10)
    proposals = [m for m in net.sent(1, Proposal) if m.view == 1]  # type: ignore[attr-defined]
    assert proposals and proposals[0].tc.high_lock is not None
    assert proposals[0].tc.high_lock.block_hash == locked.hash
    assert all(d.blocks[1][0].hash == locked.hash for d in net.disks)


def test_a_proposal_ignoring_the_lock_in_its_tc_gets_no_vote() -> None:
    """The leader of view 1 holds a TC whose high_lock is block 1 but proposes another
    block at height 1: honest replicas refuse (the Jolteon lock rule). Without the rule the
    other block could be committed after a replica already committed the locked one."""
    net, locked = _locked_in_view_0()
    rogue: list[Block] = []

    def leader_1_ignores_the_lock(src: int, dst: int, msg: object) -> object | None:
        if isinstance(msg, Proposal) and src == 1 and msg.view == 1:
            other = Block(
                CHAIN, 1, 1, locked.parent_hash, 1, locked.time_ms + 1, 0, ROOT0, EMPTY_ROOT,
                (b"trade-other",),
            )  # fmt: skip
            rogue[:] = [other]
            return replace(msg, block=other)
        return msg

    net.tamper = leader_1_ignores_the_lock
    net.tick(VIEW_TIMEOUT_BASE_MS)
    assert rogue, "view 1 was never proposed"
    for i in (0, 2, 3):
        votes = [m for m in net.sent(i, Vote) if m.block_hash == rogue[0].hash]  # type: ignore[attr-defined]
        assert votes == [], f"replica {i} voted for a block conflicting with its TC's lock"
        assert net.nodes[i].refused["proposal breaks a voting rule"] >= 1
    assert all(d.committed_height() == 0 or d.blocks[1][0].hash == locked.hash for d in net.disks)


# --- one vote per view -------------------------------------------------------------------


def test_an_equivocating_leader_gets_one_prepare_vote_per_replica() -> None:
    """Leader 0 sends two different blocks for view 0; each replica votes for the first it
    sees and never for the second (the persisted prepare_view is the guard)."""
    net = Net()
    twin_txs = (b"trade-twin",)

    def equivocate(src: int, dst: int, msg: object) -> object | None:
        if isinstance(msg, Proposal) and (src, dst) == (0, 2) and msg.block.txs != twin_txs:
            twin = replace(msg.block, txs=twin_txs)
            net.queue.appendleft((0, 2, replace(msg, block=twin)))  # right behind the first
        return msg

    net.tamper = equivocate
    net.nodes[0].submit(b"trade-1")
    net.run()
    prepare = [m for m in net.sent(2, Vote) if m.phase == Phase.PREPARE and m.view == 0]  # type: ignore[attr-defined]
    assert len(prepare) == 1
    assert net.nodes[2].safety.prepare_view == 0


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
