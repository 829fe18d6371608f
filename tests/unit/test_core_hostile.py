"""A Byzantine validator against the pure replica: every claim it makes is proven or
ignored, and the work it can cause is bounded (issue 12, docs/consensus.md "What a replica
acts on").

Each test plays the attacker through ``Net.tamper`` or by stepping a crafted message into
one honest replica, and asserts what the honest side does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

from node.config import (
    BLOCK_TIME_DRIFT_MAX_MS,
    CATCHUP_BLOCK_CHARGE_MIN_BYTES,
    CATCHUP_RESPONSE_BYTES_MAX,
    CATCHUP_RETRY_MS,
    PEER_SYNC_BYTES_BURST,
    PEER_VERIFY_BURST,
    PEER_VERIFY_PER_S,
    TX_BYTES_MAX,
    U64_MAX,
)
from node.core import (
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
    TimeoutEntry,
    TxForward,
    Vote,
    genesis_hash,
    timeout_message,
    verify_timeout_cert,
)
from node.core.codec import decode_message, encode_message
from node.core.pacemaker import Timer
from node.core.refusal import Kind, Reason
from node.merkle import EMPTY_ROOT
from tests.sim.harness import HashSigner
from tests.unit.core_refusals import (
    CATCHUP_BUDGET,
    FORWARD_FAILS_ADMISSION,
    NOT_LEADER,
    TIMEOUT_TOO_FAR_AHEAD,
    TIMEOUT_UNPROVEN,
    VERIFY_BUDGET,
    refused,
)
from tests.unit.test_core_replica import CHAIN, ROOT0, Net


def _commit_one(net: Net, trade: bytes = b"trade-1") -> None:
    net.nodes[1].submit(trade)
    net.run()
    net.tick(net.nodes[0].now_ms + 10)  # the empty block that certifies the results
    assert all(d.committed_height() >= 1 for i, d in enumerate(net.disks) if i not in net.down)


def _behind_by_many(net: Net) -> int:
    """Node 3 misses 25 trades and their results blocks; returns the time reached."""
    net.down, now = {3}, 0
    for k in range(25):
        net.nodes[k % 3].submit(b"trade-%d" % k)
        for _ in range(6):
            now += 300
            net.tick(now)
    net.down = set()
    return now


def _lying_timeout(t: Timeout, height: int, lock_view: int | None = None) -> Timeout:
    """The same timeout with an inflated committed height (and lock view), re-signed with
    the sender's own key: a signature it can make, a claim it cannot prove."""
    sig = HashSigner(t.voter).sign(timeout_message(CHAIN, t.view, height, lock_view))
    return replace(t, committed_height=height, signature=sig)


# --- 1. claims are proven -------------------------------------------------------------------


def test_one_byzantine_of_four_cannot_halt_the_chain_with_an_unproven_height() -> None:
    """Validator 0 leads view 0 but stays silent and, in its timeouts, claims a committed
    height nobody can extend. Before issue 12 the honest TC took its claim (sorted first by
    index) and no leader could propose again; now the claim needs a commit certificate."""
    net = Net()

    def byzantine(src: int, dst: int, msg: object) -> object | None:
        if src != 0:
            return msg
        if isinstance(msg, Proposal | Vote):
            return None  # a silent leader, withholding votes too
        if isinstance(msg, Timeout):
            return _lying_timeout(msg, 10**9)
        return msg

    net.tamper = byzantine
    for i in (1, 2, 3):
        net.nodes[i].submit(b"trade-%d" % i)
    net.run()
    now = 0
    for _ in range(6):
        now += net.nodes[1].cfg.view_timeout_base_ms
        net.tick(now)
    honest = [net.disks[i].committed_height() for i in (1, 2, 3)]
    assert min(honest) >= 1, honest
    assert refused(net.nodes[1], TIMEOUT_UNPROVEN) > 0


def test_a_timeout_must_carry_the_certificate_of_its_height() -> None:
    net = Net()
    _commit_one(net)
    node = net.nodes[1]
    cert = net.disks[2].blocks[1][1]
    view = node.view
    sig = HashSigner(2).sign(timeout_message(CHAIN, view, 1, None))
    # No certificate for a height above 0, and a certificate of another height: refused.
    for forged in (
        Timeout(view, 1, None, None, None, 2, sig),
        Timeout(view, 1, replace(cert, height=2), None, None, 2, sig),
    ):
        before = refused(node, TIMEOUT_UNPROVEN)
        node.step(2, forged)
        assert refused(node, TIMEOUT_UNPROVEN) == before + 1
    # The genuine one is taken (a later re-send of it costs nothing).
    node.step(2, Timeout(view, 1, cert, None, None, 2, sig))
    assert refused(node, TIMEOUT_UNPROVEN) == 2


def test_a_timeout_certificate_must_prove_its_highest_claims() -> None:
    net = Net()
    _commit_one(net)
    cert = net.disks[0].blocks[1][1]
    verifier, view = net.verifier, 7

    def entry(voter: int, height: int, lock: int | None = None) -> object:
        sig = HashSigner(voter).sign(timeout_message(CHAIN, view, height, lock))
        return Timeout(view, height, None, None, None, voter, sig).entry()

    honest = tuple(entry(i, 1) for i in range(3))
    good = TimeoutCert(view, honest, cert, None)  # type: ignore[arg-type]
    assert verify_timeout_cert(good, CHAIN, 4, 3, verifier)
    inflated = (entry(0, 10**9), *honest[1:])
    for bad in (
        TimeoutCert(view, inflated, cert, None),  # top claim 10**9, proof for 1
        TimeoutCert(view, honest, None, None),  # no proof at all
        TimeoutCert(view, (entry(0, 1, lock=5), *honest[1:]), cert, None),  # a lock, unproven
        TimeoutCert(view, honest, replace(cert, phase=Phase.PREPARE), None),
    ):
        assert not verify_timeout_cert(bad, CHAIN, 4, 3, verifier)  # type: ignore[arg-type]
    # A node handed the inflated TC (NewView) does not move on it.
    node = net.nodes[1]
    at = node.view
    node.step(0, NewView(TimeoutCert(view, inflated, cert, None)))  # type: ignore[arg-type]
    assert node.view == at


def test_a_lock_view_no_timeout_can_sign_is_refused_not_fatal() -> None:
    """Scenario (adversarial review, session 26): one Byzantine validator sends every
    peer a Timeout claiming a lock of view 2^64 - 1, unsigned and unproven. Checking it
    built the signed message, which encodes the lock view plus one in a u64: EncodeError
    escaped the replica, the engine failed and every honest node halted (fail-stop).
    A NewView whose certificate has such an entry did the same in its verification. Both
    are now refused, through the wire codec as a peer's bytes arrive, and the node goes
    on; the control is the same Timeout with any signable view, refused as unsigned."""
    net = Net()
    _commit_one(net)
    node, engine = net.nodes[1], net.engine(1)
    view, height, cert = node.view, node.committed_height, net.disks[2].blocks[1][1]
    block = Block(CHAIN, 1, 0, genesis_hash(CHAIN), 0, 1, 0, ROOT0, EMPTY_ROOT, (b"x",))

    def timeout(lock_view: int) -> Timeout:
        lock = QuorumCert(Phase.PREPARE, lock_view, 1, block.hash, ((0, b"\0" * 64),))
        return Timeout(view, 0, None, lock, block, 0, b"\0" * 64)

    for lock_view, reason in (
        (U64_MAX - 1, Reason.BAD_SIGNATURE),
        (U64_MAX, Reason.MALFORMED_CLAIMS),
    ):
        msg = decode_message(encode_message(timeout(lock_view)))  # a peer's bytes
        before = node.refused[(Kind.TIMEOUT, reason)]
        engine.step(0, msg, 0)
        assert engine.failed is None, lock_view
        assert node.refused[(Kind.TIMEOUT, reason)] == before + 1, lock_view
    # A timeout certificate with such an entry below its top height (its top proven by a
    # real commit certificate, which any validator holds) is no certificate.
    entries = (
        TimeoutEntry(0, 0, U64_MAX, b"\0" * 64),
        *(TimeoutEntry(i, 1, None, b"\0" * 64) for i in (1, 2)),
    )
    tc = TimeoutCert(view, entries, cert, None)
    assert not verify_timeout_cert(tc, CHAIN, 4, 3, net.verifier)
    engine.step(0, decode_message(encode_message(NewView(tc))), 0)
    assert engine.failed is None and node.view == view
    _commit_one(net, b"trade-2")  # and the node still takes part
    assert node.committed_height > height


def _extreme_messages(net: Net) -> list[Message]:
    """Each kind of consensus message with 0, 1, 2, 2^64 - 2 and 2^64 - 1 in its views and
    heights (unsigned: what a Byzantine peer can send without any key), those the types
    admit."""
    cert, block = net.disks[2].blocks[1][1], net.disks[2].blocks[1][0]
    sig, values = b"\0" * 64, (0, 1, 2, U64_MAX - 1, U64_MAX)

    def makers(v: int, h: int) -> tuple[Callable[[], Message], ...]:
        at = lambda: replace(block, height=h, executed_height=h - 1, view=v)  # noqa: E731
        return (
            lambda: Vote(Phase.PREPARE, v, h, block.hash, 0, sig),
            lambda: Vote(Phase.COMMIT, v, h, block.hash, 0, sig),
            lambda: Timeout(v, h, None if h == 0 else replace(cert, height=h), None, None, 0, sig),
            lambda: Timeout(
                v, 1, cert, replace(cert, phase=Phase.PREPARE, view=h, height=2), block, 0, sig
            ),
            lambda: QCMessage(replace(cert, view=v, height=h)),
            lambda: QCMessage(replace(cert, view=v, height=h, phase=Phase.PREPARE)),
            lambda: Proposal(v, at(), cert, None),
            lambda: Proposal(v, block, replace(cert, view=h), None),
            lambda: SyncRequest(h, 16),
            lambda: NewView(
                TimeoutCert(v, tuple(TimeoutEntry(i, h, h, sig) for i in range(3)), cert, None)
            ),
            lambda: NewView(
                TimeoutCert(
                    v,
                    (TimeoutEntry(0, 0, h, sig), *(TimeoutEntry(i, 1, None, sig) for i in (1, 2))),
                    cert,
                    None,
                )
            ),
            lambda: SyncResponse(((at(), replace(cert, view=v, height=h)),)),
        )

    out = []
    for v, h in itertools.product(values, values):
        for make in makers(v, h):
            try:
                out.append(make())
            except AssertionError:
                continue  # a value the type itself refuses (a height of 0)
    return out


def test_extreme_views_and_heights_in_any_message_are_refused_never_fatal() -> None:
    """Every message above, as a peer's bytes (through the wire codec), from a peer and
    from the node's own index, leaves the engine running: whatever a peer sends, an honest
    node refuses it or acts on it, and never halts on it. The lock view of 2^64 - 1 (the
    test above) was the one that did."""
    net = Net()
    _commit_one(net)
    engine, sent = net.engine(1), 0
    for msg in _extreme_messages(net):
        try:
            wire = decode_message(encode_message(msg))
        except DecodeError:
            continue  # the codec refuses it: it never reaches the replica
        for src in (0, 2):
            engine.step(src, wire, 10**6)
            assert engine.failed is None, msg
            sent += 1
    assert sent > 400  # the control: the messages did reach the replica


# --- 7. block time bounded on both sides ------------------------------------------------------


def _fresh_block(net: Net, node: int, time_ms: int, proposer: int = 0) -> Block:
    return Block(
        CHAIN, 1, 0, net.nodes[node].committed_hash, proposer, time_ms, 0, ROOT0, EMPTY_ROOT,
        (b"t",),
    )  # fmt: skip


def test_a_backdated_block_gets_no_vote_and_the_bound_is_exact() -> None:
    now = 100_000
    cases = {
        now - BLOCK_TIME_DRIFT_MAX_MS - 1: False,
        now - BLOCK_TIME_DRIFT_MAX_MS: True,
        now + BLOCK_TIME_DRIFT_MAX_MS: True,
        now + BLOCK_TIME_DRIFT_MAX_MS + 1: False,
    }
    for time_ms, votes in cases.items():
        net = Net()
        net.nodes[1].step(0, Proposal(0, _fresh_block(net, 1, time_ms), None, None), now_ms=now)
        net.drain(1)
        assert bool(net.sent(1, Vote)) is votes, time_ms


def test_a_fresh_block_must_name_its_leader_and_view() -> None:
    for block_view, proposer in ((0, 2), (5, 0)):
        net = Net()
        block = replace(_fresh_block(net, 1, 1_000, proposer), view=block_view)
        net.nodes[1].step(0, Proposal(0, block, None, None), now_ms=1_000)
        net.drain(1)
        assert not net.sent(1, Vote)


def test_a_proposal_from_a_validator_that_does_not_lead_gets_no_vote() -> None:
    net = Net()
    block = _fresh_block(net, 1, 1_000, proposer=2)
    net.nodes[1].step(2, Proposal(0, block, None, None), now_ms=1_000)
    net.drain(1)
    assert not net.sent(1, Vote)
    assert refused(net.nodes[1], NOT_LEADER) == 1


# --- 4. forwarded transactions and per-peer bounds --------------------------------------------


def test_forwarded_garbage_never_enters_the_mempool() -> None:
    net = Net(tx_check=lambda tx: tx.startswith(b"ok"))
    node = net.nodes[1]
    node.step(2, TxForward((b"junk-1", b"ok-1", b"junk-2")))
    assert len(node.mempool) == 1 and node.mempool.contains(b"ok-1")
    assert refused(node, FORWARD_FAILS_ADMISSION) == 2


def test_a_peer_fills_at_most_its_share_of_the_mempool() -> None:
    net = Net(tx_check=lambda tx: True)
    node = net.nodes[1]
    share = node.mempool.txs_max // 3  # n - 1 = 3 peers
    txs = tuple(b"tx-%d" % i for i in range(share + 50))
    for i in range(0, len(txs), 1_000):
        node.step(2, TxForward(txs[i : i + 1_000]), now_ms=10**9 + 10 * i)  # budget refilled
    assert len(node.mempool) == share
    # Another peer and the node's own clients still get in.
    node.step(3, TxForward((b"from-3",)))
    assert node.submit(b"client").name == "ACCEPTED"
    assert len(node.mempool) == share + 2


def test_a_flooding_peer_is_cut_off_at_its_verification_budget_and_refills() -> None:
    net = Net()
    node = net.nodes[1]
    view = node.view

    def forged(src: int, k: int) -> Timeout:  # checked, then found false: a verification each
        return Timeout(view, 0, None, None, None, src, b"%064d" % k)

    for k in range(PEER_VERIFY_BURST + 100):
        node.step(2, forged(2, k), now_ms=10)
    cut = refused(node, VERIFY_BUDGET)
    assert cut == 100
    # Other peers are unaffected, and the flooder gets its rate back over time.
    node.step(3, forged(3, 0), now_ms=10)
    assert refused(node, VERIFY_BUDGET) == cut
    node.step(2, forged(2, 1), now_ms=10 + 2_000 * 1_000 // PEER_VERIFY_PER_S)
    assert refused(node, VERIFY_BUDGET) == cut


def test_catch_up_answers_are_bounded_in_bytes_per_peer() -> None:
    """A peer gets at most its burst of catch-up at once, then its rate. A block is charged
    what it weighs on the wire (its certificate as sent, not a worst case: that starved a
    restarted node) but at least CATCHUP_BLOCK_CHARGE_MIN_BYTES (serving a small block
    costs more than its bytes: charged bytes alone, a flood filled the send queue)."""
    net = Net()
    for k in range(3):
        _commit_one(net, b"trade-%d-" % k + bytes(4_000))
    for k in range(3):
        _commit_one(net, b"large-%d-" % k + bytes(TX_BYTES_MAX - 16))
    node, requests = net.nodes[1], 1_000
    for height in (1, 1 + net.disks[1].committed_height() // 2):
        node.step(2, SyncRequest(height, 1), now_ms=5)
    answers = [m for _, m in node.ready().to_send if isinstance(m, SyncResponse)]
    node.advance()
    assert len(answers) == 2
    for _ in range(requests):
        node.step(2, SyncRequest(1, 16), now_ms=5)
    served = sum(isinstance(m, SyncResponse) for _, m in node.ready().to_send)
    node.advance()
    blocks = [
        net.disks[1].blocks[h] for h in range(1, min(16, net.disks[1].committed_height()) + 1)
    ]
    sizes = [len(encode_message(SyncResponse((b,)))) for b in blocks]
    assert 4_000 < max(sizes) < CATCHUP_BLOCK_CHARGE_MIN_BYTES  # each block charged the floor
    per_answer = len(blocks) * CATCHUP_BLOCK_CHARGE_MIN_BYTES
    assert 0 < served < requests
    assert refused(node, CATCHUP_BUDGET) == requests - served
    # The burst, less the two single-block answers, in answers of this weight (one in debt).
    spent = PEER_SYNC_BYTES_BURST - 2 * CATCHUP_BLOCK_CHARGE_MIN_BYTES
    assert served == -(-spent // per_answer) or served == spent // per_answer + 1
    assert PEER_SYNC_BYTES_BURST >= CATCHUP_RESPONSE_BYTES_MAX  # one full answer always fits
    # The rate comes back: after a second, a second's worth.
    node.step(2, SyncRequest(1, 16), now_ms=5 + 1_000)
    assert any(isinstance(m, SyncResponse) for _, m in node.ready().to_send)


def test_timeouts_for_far_future_views_are_ignored_before_any_check() -> None:
    net = Net()
    node = net.nodes[1]
    far = node.view + 1_000
    sig = HashSigner(2).sign(timeout_message(CHAIN, far, 0, None))
    node.step(2, Timeout(far, 0, None, None, None, 2, sig))
    assert refused(node, TIMEOUT_TOO_FAR_AHEAD) == 1
    assert node.view < far


def test_a_node_far_behind_catches_up_from_one_request() -> None:
    """A restarted node asks a peer for blocks once (on the peer's hello); full answers
    that move it on are followed up until it holds everything, with no certificate to
    name the target."""
    net = Net()
    _behind_by_many(net)
    assert net.disks[3].committed_height() == 0 and net.disks[0].committed_height() >= 40
    net.queue.append((3, 0, SyncRequest(1, 16)))
    net.run()
    assert net.disks[3].committed_height() == net.disks[0].committed_height()


def test_a_restarted_node_asking_every_peer_at_once_still_catches_up_fully() -> None:
    """Every peer's hello starts a request chain; the chains' answers overlap, and one
    that only partly moves the node on must not end its chain (CI saw a restarted node stop
    60 blocks short on an idle cluster)."""
    net = Net()
    _behind_by_many(net)
    # Hellos seen at different heights: each chain starts where the node stood then.
    for peer, start in ((0, 1), (1, 5), (2, 9)):
        net.queue.append((3, peer, SyncRequest(start, 16)))
    net.run()
    assert net.disks[3].committed_height() == net.disks[0].committed_height()


def test_a_peer_word_of_its_height_is_caught_up_to_though_that_peer_is_silent() -> None:
    """A hello names a height nothing proves yet; the node asks the peer, and when it does
    not answer (gone, or over its budget for us) asks the next, as for a certified height."""
    net = Net()
    now = _behind_by_many(net)
    top = net.disks[0].committed_height()
    net.down = {0}
    net.nodes[3].peer_height(0, top)
    net.run()
    assert net.disks[3].committed_height() == 0  # validator 0 said it, and went silent
    net.tick(now + CATCHUP_RETRY_MS)
    assert net.disks[3].committed_height() == top


def test_a_peer_that_lies_about_its_height_costs_one_round_of_requests() -> None:
    net = Net()
    _commit_one(net)
    node, top = net.nodes[3], net.disks[3].committed_height()
    node.peer_height(2, top + 1_000_000)
    asked = 0
    for _ in range(40):  # 20 s of retries
        net.tick(node.now_ms + CATCHUP_RETRY_MS)
        asked += sum(isinstance(m, SyncRequest) for m in net.outboxes[3].sent())
        net.outboxes[3].clear()
    assert node.committed_height == top
    assert asked <= net.quorum.n  # the first request and one round of retries, then quiet
    assert node.deadline_ms() is None or node.deadline_ms() > node.now_ms


def test_forwarded_transactions_already_committed_are_not_checked_again() -> None:
    """A resumed node's timeout re-gossips its whole backlog, mostly settled meanwhile:
    checking each one's signatures again cost every peer seconds of CPU (measured: a pause
    of 8 of 26 validators stalled the cluster 8 s after they resumed)."""
    checked: list[bytes] = []

    def check(tx: bytes) -> bool:
        checked.append(tx)
        return True

    net = Net(tx_check=check)
    _commit_one(net, b"settled")
    checked.clear()
    net.nodes[2].step(3, TxForward((b"settled", b"new")))
    assert checked == [b"new"]


def test_blocks_caught_up_in_one_answer_are_no_samples_of_the_progress_deadline() -> None:
    """Review (session 16): a catch-up answer commits up to 16 blocks in one step, each
    moving the view on by one on its certificate. Taken as views that progressed, a node
    restarted behind (its hello, before any certificate moved its view) had 32 samples of
    0 ms after 50 blocks and, with work, gave up every view after the floor (100 ms): at
    26/16 views take 170 ms, so it stopped voting in each, and with 5 Byzantine timeouts
    its own made every honest replica join the view change."""
    net = Net()
    _behind_by_many(net)
    top = net.disks[0].committed_height()
    node = net.nodes[3]
    # Work of its own (kept to itself), so every view it enters has work from its start.
    net.tamper = lambda src, dst, msg: msg if src != 3 or isinstance(msg, SyncRequest) else None
    node.submit(b"trade-late")
    node.peer_height(0, top)
    net.run()
    assert net.disks[3].committed_height() == top
    assert node.deadlines()[Timer.VIEW_TIMEOUT] == node.now_ms + node.cfg.view_timeout_base_ms
