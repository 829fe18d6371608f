"""node/core/votes.py on its own: the certificate memo and its signature count, the
leader's tally, what is unproven in a timeout, and the timeout certificate's proofs."""

from __future__ import annotations

import pytest

from node.core import Phase, Proposal, QuorumCert, Vote, verify_timeout_cert
from node.core.refusal import Reason
from node.core.votes import Certificates, VoteCollector, form_tc, timeout_problem
from tests.sim.harness import HashVerifier
from tests.unit.test_core_refusals import CHAIN, block, qc, timeout, vote

N, Q = 4, 3


def certs(memo_max: int = 8) -> Certificates:
    return Certificates(CHAIN, N, Q, HashVerifier(N), memo_max)


def test_a_certificate_is_verified_once_and_each_signature_counted() -> None:
    c = certs()
    cert = qc(Phase.COMMIT, 0, 1, block(0).hash)
    c.start_count()
    assert c.qc(cert, Phase.COMMIT) and c.count == Q
    c.start_count()
    assert c.qc(cert, Phase.COMMIT) and c.count == 0  # the memo
    assert not c.qc(cert, Phase.PREPARE)  # valid, but not of the phase asked


def test_a_short_certificate_is_remembered_as_invalid() -> None:
    c = certs()
    short = qc(Phase.COMMIT, 0, 1, block(0).hash, signers=Q - 1)
    assert not c.qc(short, Phase.COMMIT)
    c.start_count()
    assert not c.qc(short, Phase.COMMIT) and c.count == 0


def test_the_memo_is_bounded_oldest_out() -> None:
    c = certs(memo_max=2)
    first, *rest = [qc(Phase.COMMIT, v, 1, block(0).hash) for v in range(3)]
    for cert in (first, *rest):
        c.qc(cert, Phase.COMMIT)
    c.start_count()
    c.qc(rest[-1], Phase.COMMIT)
    assert c.count == 0  # still remembered
    c.qc(first, Phase.COMMIT)
    assert c.count == Q  # forgotten: checked again


def _tally() -> tuple[VoteCollector, Proposal]:
    v = VoteCollector()
    v.open()
    return v, Proposal(0, block(0), None, None)


def _add(v: VoteCollector, p: Proposal, src: int, vote_: Vote, c: Certificates) -> object:
    return v.add(src, vote_, view=0, leads=True, proposal=p, certs=c)


def test_q_verified_votes_make_exactly_one_certificate_of_their_signatures() -> None:
    v, p = _tally()
    c = certs()
    h = p.block.hash
    assert _add(v, p, 1, vote(1, 0, h), c) is None
    c.start_count()
    assert _add(v, p, 1, vote(1, 0, h), c) is Reason.DUPLICATE  # one voter counts once
    assert c.count == 0  # and its re-send costs no verification
    assert _add(v, p, 2, vote(2, 0, h), c) is None
    got = _add(v, p, 3, vote(3, 0, h), c)
    assert isinstance(got, QuorumCert) and [i for i, _ in got.signatures] == [1, 2, 3]
    c.start_count()
    assert c.qc(got, Phase.PREPARE) and c.count == 0  # formed here: not checked again
    assert _add(v, p, 0, vote(0, 0, h), c) is Reason.QUORUM_COMPLETE


def test_a_new_view_clears_the_tally() -> None:
    v, p = _tally()
    c = certs()
    v.clear()
    assert _add(v, p, 1, vote(1, 0, p.block.hash), c) is Reason.NO_PROPOSAL


def test_a_vote_is_refused_before_its_signature_is_checked_when_it_cannot_count() -> None:
    v, p = _tally()
    c = certs()
    c.start_count()
    h = p.block.hash
    assert v.add(1, vote(1, 1, h), view=0, leads=True, proposal=p, certs=c) is Reason.FUTURE_VIEW
    assert v.add(1, vote(1, 0, h), view=0, leads=False, proposal=p, certs=c) is Reason.NOT_LEADER
    assert _add(v, p, 2, vote(1, 0, h), c) is Reason.VOTER_NOT_SENDER
    assert _add(v, p, 1, vote(1, 0, bytes(32)), c) is Reason.OTHER_BLOCK
    assert c.count == 0
    assert _add(v, p, 1, vote(1, 0, h, good_sig=False), c) is Reason.BAD_SIGNATURE
    assert c.count == 1


def test_a_timeout_is_checked_for_each_claim() -> None:
    c = certs()
    assert timeout_problem(2, timeout(2), c) is None
    assert timeout_problem(3, timeout(2), c) is Reason.VOTER_NOT_SENDER
    assert timeout_problem(2, timeout(2, committed=1), c) is Reason.MALFORMED_CLAIMS
    b1 = block(0)
    cq1 = qc(Phase.COMMIT, 0, 1, b1.hash)
    assert timeout_problem(2, timeout(2, committed=1, commit_cert=cq1), c) is None
    assert timeout_problem(2, timeout(2, committed=2, commit_cert=cq1), c) is (
        Reason.UNPROVEN_COMMIT
    )
    lock = qc(Phase.PREPARE, 0, 1, b1.hash)
    assert timeout_problem(2, timeout(2, lock=lock, lock_block=b1), c) is None
    other = block(0, txs=(b"other",))
    assert timeout_problem(2, timeout(2, lock=lock, lock_block=other), c) is Reason.UNPROVEN_LOCK


def test_a_tc_carries_the_proofs_of_its_highest_claims_and_verifies() -> None:
    b1 = block(0)
    cq1 = qc(Phase.COMMIT, 0, 1, b1.hash)
    b2 = block(0, height=2, parent=b1.hash)
    low, high = qc(Phase.PREPARE, 1, 2, b2.hash), qc(Phase.PREPARE, 2, 2, b2.hash)
    bucket = {
        0: timeout(0, 5),  # lower committed height: its claims do not count
        1: timeout(1, 5, 1, commit_cert=cq1, lock=low, lock_block=b2),
        2: timeout(2, 5, 1, commit_cert=cq1, lock=high, lock_block=b2),
        3: timeout(3, 5, 1, commit_cert=cq1),
    }
    tc = form_tc(5, bucket, Q)
    assert [e.voter for e in tc.entries] == [0, 1, 2]  # q of them, lowest indexes
    assert tc.high_commit == cq1 and tc.high_lock == high
    assert verify_timeout_cert(tc, CHAIN, N, Q, HashVerifier(N))


# --- edges found by mutation testing (docs/testing.md, core.votes) -------------------------


def test_a_leader_of_400_validators_forms_the_qc_at_exactly_q_votes() -> None:
    """q = 267: the 267th vote forms the QC and the 268th is refused as too late; voters
    above index 256 are their own senders though the ints are distinct objects."""
    n, q = 400, 267
    c = Certificates(CHAIN, n, q, HashVerifier(n), 8)
    v, p = _tally()
    got: list[object] = []
    for voter in range(q + 1):
        got.append(v.add(int(str(voter)), vote(voter, 0, p.block.hash), view=0, leads=True,
                         proposal=p, certs=c))  # fmt: skip
    assert got[: q - 1] == [None] * (q - 1)
    assert isinstance(got[q - 1], QuorumCert) and len(got[q - 1].signatures) == q  # type: ignore[union-attr]
    assert got[q] is Reason.QUORUM_COMPLETE


def test_a_timeout_from_a_voter_above_index_256_is_its_senders() -> None:
    c = Certificates(CHAIN, 300, 201, HashVerifier(300), 8)
    assert timeout_problem(int(str(280)), timeout(280), c) is None


def test_a_timeout_claiming_height_0_with_a_commit_certificate_is_malformed() -> None:
    cq1 = qc(Phase.COMMIT, 0, 1, block(0).hash)
    got = timeout_problem(2, timeout(2, committed=0, commit_cert=cq1), certs())
    assert got is Reason.MALFORMED_CLAIMS


def test_the_memo_is_bounded_above_256_entries() -> None:
    c = certs(memo_max=300)
    first, *rest = [qc(Phase.COMMIT, v, 1, block(0).hash) for v in range(301)]
    for cert in (first, *rest):
        c.qc(cert, Phase.COMMIT)
    c.start_count()
    c.qc(first, Phase.COMMIT)
    assert c.count == Q  # forgotten: the memo holds the latest 300


def test_the_tally_takes_its_context_by_keyword_only() -> None:
    v, p = _tally()
    with pytest.raises(TypeError):
        v.add(0, vote(0, 0, p.block.hash), 0, True, p, certs())  # type: ignore[misc]
