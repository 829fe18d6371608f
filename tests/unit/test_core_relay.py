"""The commit-vote relay (docs/consensus.md "Slow leaders", ADR 0021): only a view's leader
collects its COMMIT votes, and the next leader's proposal waits for the certificate. A
replica that entered the next view on the prepare certificate and has no commit
certificate a few median commit rounds later sends its COMMIT vote to the new view's
leader too, which forms the certificate itself. Driven through the engine (``Net``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from node.config import BATCH_DELAY_MS, COMMIT_RELAY_FLOOR_MS
from node.core import Phase, QCMessage, QuorumCert, Replica, Vote, verify_certificate, vote_message
from node.core.pacemaker import Timer
from node.core.refusal import Kind, Reason
from node.core.votes import VoteCollector
from tests.sim.harness import HashSigner
from tests.unit.test_core_refusals import CHAIN, block
from tests.unit.test_core_replica import Net
from tests.unit.test_core_votes import certs

T0 = 1_000


def _withheld_by(leader: int, height: int):  # type: ignore[no-untyped-def]
    """A leader running modified code: it forms the commit certificate of ``height`` and
    sends it to nobody (its own loopback included, so it does not commit either)."""

    def tamper(src: int, dst: int, msg: object) -> object | None:
        held = isinstance(msg, QCMessage) and msg.qc.phase is Phase.COMMIT
        return None if held and src == leader and msg.qc.height == height else msg  # type: ignore[union-attr]

    return tamper


def _first_block(net: Net) -> tuple[int, int, int]:
    """Block 1 commits normally (each replica's first commit round: 0 ms here, so the
    relay waits the floor). Returns the view every replica is then in, its leader and the
    next view's."""
    net.now = T0
    net.nodes[2].submit(b"trade-1")
    net.run()
    assert [d.committed_height() for d in net.disks] == [1, 1, 1, 1]
    view = net.nodes[0].view
    return view, net.nodes[0].leader(view), net.nodes[0].leader(view + 1)


def _second_block_withheld(net: Net) -> tuple[int, int, int]:
    """Block 1 commits normally; block 2's leader withholds its commit certificate after
    everyone locked on block 2 and moved to the next view. Returns (that leader, the
    next, the view of block 2)."""
    view, slow, nxt = _first_block(net)
    net.tamper = _withheld_by(slow, 2)
    net.nodes[slow].submit(b"trade-2")
    net.tick(T0 + 10)  # past the batch delay: block 2 proposed, prepared, commit-voted
    assert all(node.view == view + 1 for node in net.nodes)
    assert [d.committed_height() for d in net.disks] == [1, 1, 1, 1]
    return slow, nxt, view


def _relayed(net: Net, i: int) -> list[Vote]:
    """COMMIT votes node ``i`` sent to a leader other than their view's."""
    node = net.nodes[i]
    return [
        msg
        for kind, dst, msg in net.outboxes[i].log
        if kind == "send"
        and isinstance(msg, Vote)
        and msg.phase is Phase.COMMIT
        and dst != node.leader(msg.view)
    ]


def test_a_withheld_commit_certificate_is_formed_by_the_next_leader() -> None:
    net = Net(speculate=False)
    slow, nxt, view = _second_block_withheld(net)
    entered = T0 + 10
    honest = [i for i in range(4) if i != slow]
    assert all(
        net.nodes[i].deadlines()[Timer.COMMIT_RELAY] == entered + COMMIT_RELAY_FLOOR_MS
        for i in honest
    )
    net.tick(entered + COMMIT_RELAY_FLOOR_MS - 1)
    assert not any(_relayed(net, i) for i in range(4))  # not before the relay is due
    net.tick(entered + COMMIT_RELAY_FLOOR_MS)
    # Each relays its own vote, once, to the next two leaders (the withholding leader's
    # replica too: only its certificate is held back); the next leader, whose proposal
    # waits for the certificate, to every validator but the withholding leader.
    for i in range(4):
        votes = _relayed(net, i)
        assert [(v.view, v.height, v.voter) for v in votes] == [(view, 2, i)] * (
            3 if i == nxt else 2
        )
    assert [d.committed_height() for d in net.disks] == [2, 2, 2, 2]
    _, cert = net.disks[nxt].blocks[2]
    assert cert.phase is Phase.COMMIT and len(cert.signatures) == net.quorum.q
    assert all(node.commit_votes_relayed == 1 for node in net.nodes)
    net.tick(entered + 10 * COMMIT_RELAY_FLOOR_MS)
    assert [len(_relayed(net, i)) for i in range(4)] == [3 if i == nxt else 2 for i in range(4)]


@pytest.mark.parametrize("after_next", [True, False])
def test_a_next_leader_ignoring_the_relayed_votes_cannot_hold_the_block(
    after_next: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Block 2's leader withholds its commit certificate and the next leader, its
    accomplice, drops every relayed vote. The leader of the view after counts them too,
    forms the certificate and broadcasts it: block 2 commits at the relay's wait, and the
    next leader has it to propose on (its view's deadline starts after the commit). The
    control (``after_next`` off: relayed to the next leader only, as first built) waits."""
    if not after_next:
        monkeypatch.setattr(
            Replica,
            "_relay_targets",
            lambda self, view: frozenset({self.leader(view + 1)}) - {self.leader(view)},
        )
    net = Net(speculate=False)
    _, nxt, view = _second_block_withheld(net)
    withheld = net.tamper
    assert withheld is not None

    def accomplice(src: int, dst: int, msg: object) -> object | None:
        relayed = isinstance(msg, Vote) and msg.phase is Phase.COMMIT and msg.view == view
        return None if relayed and dst == nxt else withheld(src, dst, msg)

    net.tamper = accomplice  # type: ignore[assignment]
    net.tick(T0 + 10 + COMMIT_RELAY_FLOOR_MS)
    heights = [d.committed_height() for d in net.disks]
    assert heights == ([2, 2, 2, 2] if after_next else [1, 1, 1, 1])
    if after_next:
        _, cert = net.disks[nxt].blocks[2]
        assert cert.phase is Phase.COMMIT and cert.view == view


def test_without_the_relay_the_next_view_waits_for_the_certificate_until_it_times_out() -> None:
    """The negative control: ``commit_relay_factor`` 0, the same withheld certificate."""
    net = Net(speculate=False)
    for i, node in enumerate(net.nodes):
        cfg = replace(node.cfg, commit_relay_factor=0)
        net.nodes[i] = Replica(
            cfg,
            node._signer,
            net.verifier,
            net.disks[i],
            executed_root=node.executed_root,
            results_root=node.executed_results,
        )
    _second_block_withheld(net)
    net.tick(T0 + 10 + 10 * COMMIT_RELAY_FLOOR_MS)
    assert not any(_relayed(net, i) for i in range(4))
    assert [d.committed_height() for d in net.disks] == [1, 1, 1, 1]
    assert all(Timer.COMMIT_RELAY not in node.deadlines() for node in net.nodes)


def test_a_commit_certificate_in_time_is_never_relayed() -> None:
    net = Net(speculate=False)
    net.now = T0
    for k in range(12):
        net.nodes[k % 4].submit(b"trade-%d" % k)
        net.tick(T0 + 10 * (k + 1))
    assert all(d.committed_height() >= 12 for d in net.disks)
    assert not any(_relayed(net, i) for i in range(4))
    assert all(Timer.COMMIT_RELAY not in node.deadlines() for node in net.nodes)


def test_relayed_votes_count_only_at_the_next_leader_from_their_voter() -> None:
    net = Net(speculate=False)
    slow, nxt, view = _second_block_withheld(net)
    other = net.nodes[0].leader(view + 2)
    assert other not in (slow, nxt)
    block, _ = next((b, None) for b in net.nodes[nxt]._candidates.values() if b.height == 2)
    votes = [
        v
        for kind, dst, v in net.outboxes[other].log
        if kind == "send" and isinstance(v, Vote) and v.phase is Phase.COMMIT and v.view == view
    ]
    assert votes and votes[0].block_hash == block.hash
    vote = votes[0]
    # Relayed to a validator that leads neither of the next two views: refused.
    third = next(i for i in range(4) if i not in (slow, nxt, other))
    before = net.nodes[third].refused[(Kind.VOTE, Reason.STALE_VIEW)]
    net.engine(third).step(other, vote, T0 + 11)
    assert net.nodes[third].refused[(Kind.VOTE, Reason.STALE_VIEW)] == before + 1
    # At the next leader, a vote sent by another than its voter is refused.
    net.engine(nxt).step(third, vote, T0 + 11)
    assert net.nodes[nxt].refused[(Kind.VOTE, Reason.VOTER_NOT_SENDER)] == 1
    # Its voter's counts once; the same again is a duplicate; short of q nothing forms.
    net.engine(nxt).step(other, vote, T0 + 11)
    net.engine(nxt).step(other, vote, T0 + 11)
    assert net.nodes[nxt].refused[(Kind.VOTE, Reason.DUPLICATE)] == 1
    assert net.disks[nxt].committed_height() == 1
    # A forged signature is refused.
    forged = replace(vote, voter=third, signature=bytes(len(vote.signature)))
    net.engine(nxt).step(third, forged, T0 + 11)
    assert net.nodes[nxt].refused[(Kind.VOTE, Reason.BAD_SIGNATURE)] == 1
    assert net.disks[nxt].committed_height() == 1


# --- review of the relay (adversarial): the relayed tallies ----------------------------------


def _commit_vote(voter: int, view: int, block_hash: bytes, *, good_sig: bool = True) -> Vote:
    msg = vote_message(CHAIN, Phase.COMMIT, view, 1, block_hash)
    sig = HashSigner(voter).sign(msg) if good_sig else bytes(32)
    return Vote(Phase.COMMIT, view, 1, block_hash, voter, sig)


def test_votes_for_other_blocks_cannot_push_the_honest_relayed_tally_out() -> None:
    """The next leader holds five blocks at committed + 1 (views changed at that height).
    Two honest relayed votes for the certified one are counted; a Byzantine validator then
    sends votes for the four others, unsigned and signed; the third honest vote must still
    complete the certificate."""
    blocks = [block(0, txs=(b"trade-%d" % k,)) for k in range(5)]
    certified, others = blocks[0], blocks[1:]
    collector, c = VoteCollector(), certs()
    view = 0
    for voter in (1, 2):
        assert (
            collector.relayed(voter, _commit_vote(voter, view, certified.hash), certified, c)
            is None
        )
    for b in others:  # unsigned: refused, and must change nothing
        forged = _commit_vote(3, view, b.hash, good_sig=False)
        assert collector.relayed(3, forged, b, c) is Reason.BAD_SIGNATURE
    # Signed by the Byzantine validator: one vote of it per view counts, the rest are
    # duplicates (an honest validator commit-votes one block per view).
    got = [collector.relayed(3, _commit_vote(3, view, b.hash), b, c) for b in others]
    assert got == [None] + [Reason.DUPLICATE] * (len(others) - 1)
    got = collector.relayed(0, _commit_vote(0, view, certified.hash), certified, c)
    assert isinstance(got, QuorumCert) and got.phase is Phase.COMMIT
    assert [i for i, _ in got.signatures] == [0, 1, 2]


def test_a_relayed_vote_of_the_next_view_does_not_wipe_this_views_tally() -> None:
    """Scenario (adversarial review, session 26): two honest relays of view 5 are counted;
    a Byzantine validator sends its own signed COMMIT vote of view 6 (a replica takes
    relayed votes of its view and the one before); the tally of view 5 was dropped, the
    third honest relay refused as stale, and the withheld certificate never formed. Both
    views' tallies are kept now. Control: a view two behind the latest is still stale."""
    b = block(0)
    collector, c = VoteCollector(), certs()
    for voter in (1, 2):
        assert collector.relayed(voter, _commit_vote(voter, 5, b.hash), b, c) is None
    assert collector.relayed(0, _commit_vote(0, 6, b.hash), b, c) is None
    got = collector.relayed(3, _commit_vote(3, 5, b.hash), b, c)
    assert isinstance(got, QuorumCert) and got.view == 5
    assert [i for i, _ in got.signatures] == [1, 2, 3]
    assert certs().qc(got, Phase.COMMIT)  # every signature is of view 5
    assert collector.relayed(1, _commit_vote(1, 6, b.hash), b, c) is None  # its view-6 vote
    assert collector.relayed(0, _commit_vote(0, 7, b.hash), b, c) is None
    assert collector.relayed(3, _commit_vote(3, 5, b.hash), b, c) is Reason.STALE_VIEW


def test_relayed_tallies_hold_two_views_at_most() -> None:
    """Keeping the view before the latest must not keep every view: votes relayed over
    ten views leave the tallies of the last two, at most n signatures each."""
    b = block(0)
    collector, c = VoteCollector(), certs()
    for view in range(10):
        assert collector.relayed(view % 4, _commit_vote(view % 4, view, b.hash), b, c) is None
    assert sorted(view for view, _ in collector._relayed) == [8, 9]


def test_relayed_votes_of_two_views_never_make_one_certificate() -> None:
    """The same block relayed in two views (re-proposed after a view change): a vote of
    the later view must not complete a tally holding the earlier view's signatures (a
    certificate of mixed views proves nothing, and formed here it is never checked)."""
    b = block(0)
    collector, c = VoteCollector(), certs()
    for voter in (1, 2):
        assert collector.relayed(voter, _commit_vote(voter, 0, b.hash), b, c) is None
    assert collector.relayed(0, _commit_vote(0, 3, b.hash), b, c) is None
    assert collector.relayed(1, _commit_vote(1, 0, b.hash), b, c) is Reason.STALE_VIEW
    assert collector.relayed(1, _commit_vote(1, 3, b.hash), b, c) is None
    got = collector.relayed(2, _commit_vote(2, 3, b.hash), b, c)
    assert isinstance(got, QuorumCert) and got.view == 3
    assert [i for i, _ in got.signatures] == [0, 1, 2]
    assert certs().qc(got, Phase.COMMIT)  # every signature is of view 3


def test_a_next_leader_that_missed_the_prepare_certificate_still_forms_the_commit_one() -> None:
    """The withholding leader also keeps its prepare certificate from the next leader,
    which stays in the view: the others' relayed votes reach it there (a vote of its own
    view, for a view it does not lead) and it forms the commit certificate, commits and
    moves on. (The relayed votes to the leader after it are dropped here, so that only
    the next leader can form it.)"""
    net = Net(speculate=False)
    view, slow, nxt = _first_block(net)
    after = net.nodes[0].leader(view + 2)

    def tamper(src: int, dst: int, msg: object) -> object | None:
        mine = src == slow and isinstance(msg, QCMessage) and msg.qc.height == 2
        held = mine and (msg.qc.phase is Phase.COMMIT or dst == nxt)  # type: ignore[attr-defined]
        relayed = isinstance(msg, Vote) and msg.phase is Phase.COMMIT and dst == after
        return None if held or relayed else msg

    net.tamper = tamper
    net.nodes[slow].submit(b"trade-2")
    net.tick(T0 + 10)
    assert net.nodes[nxt].view == view  # no prepare certificate: still in the view
    assert all(node.view == view + 1 for i, node in enumerate(net.nodes) if i != nxt)
    net.tick(T0 + 10 + COMMIT_RELAY_FLOOR_MS)
    assert sum(len(_relayed(net, i)) for i in range(4)) == 6  # all but the next leader's
    assert [d.committed_height() for d in net.disks] == [2, 2, 2, 2]
    _, cert = net.disks[nxt].blocks[2]
    assert cert.view == view and net.nodes[nxt].view == view + 1


def test_a_relayed_prepare_vote_counts_for_nothing() -> None:
    """Only COMMIT votes are relayed: PREPARE votes of the view just left, sent to the
    next leader, are refused there and form nothing (mixed into a relayed tally they
    would make a certificate of two phases, trusted where it was formed)."""
    net = Net(speculate=False)
    _, nxt, view = _second_block_withheld(net)
    prepares = [
        v
        for i in range(4)
        for kind, _, v in net.outboxes[i].log
        if kind == "send" and isinstance(v, Vote) and v.phase is Phase.PREPARE and v.view == view
    ]
    assert len({v.voter for v in prepares}) == 4
    for v in prepares:
        net.engine(nxt).step(v.voter, v, T0 + 11)
    assert net.disks[nxt].committed_height() == 1
    assert net.nodes[nxt].refused[(Kind.VOTE, Reason.STALE_VIEW)] == len(prepares)
    formed = [m for m in net.sent(nxt, QCMessage) if m.qc.view == view]  # type: ignore[attr-defined]
    assert not formed


def test_two_honest_nodes_may_hold_different_commit_certificates_of_one_block() -> None:
    """Review (relay): a leader releases its held commit certificate to one validator just
    as the relay fires, and the next leader forms its own: honest nodes then hold two
    certificates of the block, of its view, other signers (ADR 0021 accepts it: it happened
    after view changes already). Each is a proof of the same block, so receipts from two
    nodes agree on everything but the certificate (test_cluster4, test_sdk)."""
    net = Net(speculate=False)
    view, slow, nxt = _first_block(net)
    held: list[QCMessage] = []

    def tamper(src: int, dst: int, msg: object) -> object | None:
        if src == slow and isinstance(msg, QCMessage) and msg.qc.phase is Phase.COMMIT:
            held.append(msg)
            return None
        return msg

    net.tamper = tamper
    net.nodes[slow].submit(b"trade-2")
    net.tick(T0 + 10)
    mine = held[0]
    # Released to one of its signers (not the next leader) just as the relay is due.
    x = next(i for i, _ in mine.qc.signatures if i not in (slow, nxt))
    net.engine(x).step(slow, mine, T0 + 10 + COMMIT_RELAY_FLOOR_MS)
    net.tick(T0 + 10 + COMMIT_RELAY_FLOOR_MS)
    assert [d.committed_height() for d in net.disks] == [2, 2, 2, 2]
    blocks = {net.disks[i].blocks[2][0] for i in range(4)}
    certs = {net.disks[i].blocks[2][1] for i in range(4) if i != slow}
    assert len(blocks) == 1 and len(certs) == 2
    (only,) = blocks
    for cert in certs:
        assert (cert.phase, cert.view, cert.block_hash) == (Phase.COMMIT, view, only.hash)
        assert verify_certificate(cert, CHAIN, 4, net.quorum.q, net.verifier, phase=Phase.COMMIT)


def test_a_commit_in_its_certificates_own_view_is_no_commit_round() -> None:
    """A replica the prepare certificate did not reach commits in the view itself: that
    wait is the whole view, not a commit round (nor a wait beyond one to leave out of the
    view's sample), so it must not raise the relay's median or shrink the sample."""
    net = Net(speculate=False)
    view, slow, nxt = _first_block(net)
    x = next(i for i in range(4) if i not in (slow, nxt))
    rounds = list(net.nodes[x]._pacemaker._commit_rounds)

    def tamper(src: int, dst: int, msg: object) -> object | None:
        missed = isinstance(msg, QCMessage) and msg.qc.phase is Phase.PREPARE and dst == x
        return None if missed else msg

    net.tamper = tamper
    net.nodes[slow].submit(b"trade-2")
    net.tick(T0 + 10)
    assert [d.committed_height() for d in net.disks] == [2, 2, 2, 2]
    assert net.disks[x].blocks[2][1].view == view  # committed on the view's own certificate
    assert list(net.nodes[x]._pacemaker._commit_rounds) == rounds
    assert len(net.nodes[slow]._pacemaker._commit_rounds) == len(rounds) + 1  # it left


def test_a_relayed_vote_for_a_committed_block_is_answered_with_its_certificate() -> None:
    """Review r-pview: a leader may send its commit certificate to all but the next
    leader, so that nobody else relays. The next leader's vote, relayed to everyone, is
    answered by each replica that committed the block, with its certificate, once per
    peer and height (a second copy is refused, ``helped_recently``). The vote's own
    leader does not answer: late votes of its own tally are no relays."""
    net = Net(speculate=False)
    _first_block(net)
    cert = net.nodes[0].committed_cert
    assert cert is not None and cert.height == 1
    slow, nxt = net.nodes[0].leader(cert.view), net.nodes[0].leader(cert.view + 1)
    answering = next(i for i in range(4) if i not in (slow, nxt))
    node = net.nodes[answering]
    vote = _commit_vote(nxt, cert.view, cert.block_hash)
    net.outboxes[answering].clear()
    for _ in range(2):
        net.engine(answering).step(nxt, vote, T0 + 50)
    sent = [m for kind, dst, m in net.outboxes[answering].log if kind == "send" and dst == nxt]
    assert sent == [QCMessage(cert)]
    assert node.refused[(Kind.VOTE, Reason.HELPED_RECENTLY)] == 1
    leader = net.nodes[slow]  # the control: the vote's own leader, block committed too
    net.outboxes[slow].clear()
    net.engine(slow).step(nxt, vote, T0 + 50)
    assert not [m for kind, _, m in net.outboxes[slow].log if isinstance(m, QCMessage)]
    assert leader.committed_height == 1


def _hidden_from(leader: int, height: int, hidden: frozenset[int]):  # type: ignore[no-untyped-def]
    """A leader running modified code (``hide_qc``): it sends the commit certificate of
    ``height`` to every validator but those in ``hidden``."""

    def tamper(src: int, dst: int, msg: object) -> object | None:
        held = isinstance(msg, QCMessage) and msg.qc.phase is Phase.COMMIT
        mine = held and src == leader and msg.qc.height == height  # type: ignore[union-attr]
        return None if mine and dst in hidden else msg

    return tamper


@pytest.mark.parametrize("broadcast", [True, False])
def test_a_certificate_hidden_from_the_next_two_leaders_reaches_the_next_by_its_relay(
    broadcast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review of session 19: block 2's leader sends its commit certificate to all but the
    leaders of the next two views. The other replicas commit and relay nothing; the next
    leader, still without it at the relay's wait, sends its COMMIT vote to every validator
    but the withholding leader, and the replica that committed answers with its
    certificate: the next leader commits and proposes in its own view. The control
    (``broadcast`` off: the vote to the two relay targets only, as in session 18) reaches
    nobody who committed, and the next leader waits."""
    if not broadcast:
        monkeypatch.setattr(Replica, "_relay_sends", lambda self, view: self._relay_targets(view))
    net = Net(speculate=False)
    view, slow, nxt = _first_block(net)
    after = net.nodes[0].leader(view + 2)
    holder = next(i for i in range(4) if i not in (slow, nxt, after))
    net.tamper = _hidden_from(slow, 2, frozenset({nxt, after}))
    net.nodes[slow].submit(b"trade-2")
    net.tick(T0 + 10)
    heights = [d.committed_height() for d in net.disks]
    assert [heights[i] for i in (nxt, after, holder)] == [1, 1, 2]
    net.outboxes[holder].clear()
    net.tick(T0 + 10 + COMMIT_RELAY_FLOOR_MS)  # the relay's wait
    net.tick(T0 + 10 + COMMIT_RELAY_FLOOR_MS + BATCH_DELAY_MS)
    if broadcast:
        assert [d.committed_height() for d in net.disks] == [3, 3, 3, 3]
        block3, _ = net.disks[holder].blocks[3]
        assert (block3.proposer, block3.view) == (nxt, view + 1)  # in its own view
        answers = [m for k, d, m in net.outboxes[holder].log if k == "send" and d == nxt]
        certs = [m.qc for m in answers if isinstance(m, QCMessage) and m.qc.height == 2]
        assert certs == [net.disks[holder].blocks[2][1]]  # its certificate, once
    else:
        assert net.disks[nxt].committed_height() == 1
