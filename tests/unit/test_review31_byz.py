"""Review 31 (Byzantine costs): work one Byzantine validator can make an honest one do
without being charged for it (docs/consensus.md, "Work one peer can cause").

Each test plays the Byzantine validator by stepping crafted messages into one honest
replica of the unit tests' ``Net`` and counts the signatures that replica checks, beside
a control without the attacker.
"""

from __future__ import annotations

import pytest

from node.config import PEER_VERIFY_BURST, PEER_VERIFY_FORWARD_RESERVE
from node.core import NewView, Phase, Proposal, QCMessage, QuorumCert, Timeout, Vote
from node.core.refusal import Kind, Reason
from node.core.types import vote_message
from node.core.votes import Certificates
from node.crypto import sha256
from tests.sim.harness import CountingVerifier, HashSigner, HashVerifier
from tests.unit.test_core_replica import CHAIN, Net

_SIG = bytes(32)


def _repeated_signer_qc(view: int, height: int, q: int) -> QuorumCert:
    """A prepare certificate naming validator 0 twice: refused before any signature is
    checked, so it costs its sender nothing from its verification budget."""
    signers = ((0, _SIG), (0, _SIG), *((i, _SIG) for i in range(1, q)))
    return QuorumCert(Phase.PREPARE, view, height, sha256(b"junk %d" % view), signers)


def _valid_qc(view: int, q: int) -> QuorumCert:
    block_hash = sha256(b"block of view %d" % view)
    msg = vote_message(CHAIN, Phase.COMMIT, view, 1, block_hash)
    signatures = tuple((i, HashSigner(i).sign(msg)) for i in range(q))
    return QuorumCert(Phase.COMMIT, view, 1, block_hash, signatures)


def test_certificates_that_fail_push_no_verified_one_out_of_the_memo() -> None:
    counter = CountingVerifier(HashVerifier(4))
    certs = Certificates(CHAIN, 4, 3, counter, memo_max=4)
    good = _valid_qc(3, 3)
    assert certs.qc(good, Phase.COMMIT) and counter.count == 3
    for k in range(8):
        assert not certs.qc(_repeated_signer_qc(100 + k, 2, 3), Phase.PREPARE)
    assert counter.count == 3  # the junk checked no signature
    assert certs.qc(good, Phase.COMMIT) and counter.count == 3  # kept: not checked again
    # A failure is not kept either: checked (and charged) each time it comes.
    bad = QuorumCert(Phase.COMMIT, 3, 1, good.block_hash, ((0, _SIG), *good.signatures[1:]))
    assert not certs.qc(bad, Phase.COMMIT) and not certs.qc(bad, Phase.COMMIT)
    assert counter.count == 3 + 2
    # Control: verified certificates do push it out (the memo is bounded), each charged.
    for view in range(10, 14):
        assert certs.qc(_valid_qc(view, 3), Phase.COMMIT)
    assert counter.count == 5 + 4 * 3
    assert certs.qc(good, Phase.COMMIT) and counter.count == 17 + 3


def _view_change_signatures(n: int, q: int, *, flood: bool) -> tuple[int, int, int]:
    """Signatures honest validator 1 checks while the cluster, after a first commit,
    changes view past a leader that is down and commits a trade; with ``flood``, the
    Byzantine validator n - 1 steps 32 certificates with a repeated signer into it before
    every certificate-carrying message an honest peer sends it. Returns (signatures
    checked, heights committed, verification tokens the Byzantine validator was charged
    there: its own timeouts and votes, and nothing for the junk)."""
    net = Net(n, q=q)
    victim, byz = 1, n - 1
    counter = CountingVerifier(net.nodes[victim]._certs.verifier.inner)
    net.nodes[victim]._certs.verifier.inner = counter
    net.nodes[0].submit(b"trade-1")
    net.run()
    net.tick(net.nodes[0].now_ms + 10)
    start = net.disks[victim].committed_height()
    sent = 0

    def tamper(src: int, dst: int, msg: object) -> object:
        nonlocal sent
        carries = isinstance(msg, Timeout | Proposal | QCMessage | NewView)
        if flood and dst == victim and src != byz and carries:
            for _ in range(32):
                junk = _repeated_signer_qc(10**6 + sent, net.nodes[victim].committed_height + 1, q)
                net.engine(victim).step(byz, QCMessage(junk), net.now)
                sent += 1
        return msg

    net.tick(net.nodes[0].now_ms + 1_000)
    net.down = {net.nodes[victim].leader(net.nodes[victim].view)}
    net.tamper = tamper
    before = counter.count
    for i in range(n):
        if i not in net.down:
            net.nodes[i].submit(b"trade-2")
    net.run()
    t = net.nodes[victim].now_ms
    for dt in range(100, 3_000, 100):
        net.tick(t + dt)
    assert not flood or sent > 0
    bucket = net.nodes[victim]._verify_budget.get(byz)
    charged = 0 if bucket is None else PEER_VERIFY_BURST - bucket._tokens
    return counter.count - before, net.disks[victim].committed_height() - start, charged


@pytest.mark.parametrize(("n", "q"), [(4, 3), (7, 5), (26, 16)])
def test_a_peer_cannot_empty_the_certificate_memo_for_free(n: int, q: int) -> None:
    """Before review 31f the memo kept failures too: a Byzantine validator's stream of
    certificates with a repeated signer (0 signatures checked, so 0 charged) pushed every
    verified certificate out, and the honest timeouts' commit certificates were checked
    again each: 26/16, 80 -> 400 signatures for one view change; 7/5, 25 -> 70; 4/3,
    15 -> 27, the flooder charged nothing."""
    control, heights, charged = _view_change_signatures(n, q, flood=False)
    assert heights == 2  # the trade's block and the empty block after it, past a timeout
    flooded, heights_flooded, charged_flooded = _view_change_signatures(n, q, flood=True)
    assert heights_flooded == heights
    assert charged_flooded == charged  # the junk checks no signature: its sender pays nothing...
    assert flooded == control  # ...and so must cost nobody else anything either


def _withheld_votes_and_a_busy_validator(txs: int) -> tuple[Net, int, int]:
    """4/3: validator 3 withholds its votes (every honest vote is needed), and the clients
    of honest validator ``busy`` submit ``txs`` trades at once, which it forwards to the
    others (the admission check passes them all). Returns (net, busy, leader)."""
    net = Net(4, tx_check=lambda tx: True)
    net.tamper = lambda src, dst, msg: None if src == 3 and isinstance(msg, Vote) else msg
    leader = net.nodes[0].leader(0)
    busy = next(i for i in range(3) if i != leader)
    for k in range(txs):
        net.nodes[busy].submit(b"trade %06d " % k + bytes(200))
    net.run()
    return net, busy, leader


def test_a_validator_whose_clients_outrun_its_forwarding_budget_still_votes() -> None:
    """Before review 31f a peer's forwarded transactions drew on the bucket its votes,
    timeouts and proposals need, to zero: 1,500 trades submitted at once to one honest
    validator (charged SIGNERS_PER_TX_MAX each: 4,500 of a 4,000 burst) had its PREPARE
    vote dropped at the leader (`over_verify_budget`), and with validator 3 withholding
    its votes nothing committed; 1,000 trades a second for 10 s failed 2 views. The
    forwards now stop at a reserve the peer's consensus messages keep."""
    net, busy, leader = _withheld_votes_and_a_busy_validator(1_500)
    assert [net.disks[i].committed_height() for i in range(3)] == [1, 1, 1]
    assert net.nodes[leader].refused[(Kind.VOTE, Reason.OVER_VERIFY_BUDGET)] == 0
    # The forwards are still bounded by the budget: the rest are refused (they stay in
    # the busy validator's mempool, which proposes and re-forwards them).
    assert net.nodes[leader].refused[(Kind.TX_FORWARD, Reason.OVER_VERIFY_BUDGET)] >= 1
    bucket = net.nodes[leader]._verify_budget[busy]
    assert not bucket.above(PEER_VERIFY_FORWARD_RESERVE, net.nodes[leader].now_ms)


def test_a_validator_within_its_forwarding_budget_votes_control() -> None:
    net, _, leader = _withheld_votes_and_a_busy_validator(100)
    assert [net.disks[i].committed_height() for i in range(3)] == [1, 1, 1]
    assert not net.nodes[leader].refused
