"""node/core/catchup.py on its own: whom a replica asks for missing blocks, for which,
when it asks again, how long a peer's unproven word lasts, and serving within a budget."""

from __future__ import annotations

from dataclasses import replace

import pytest

from node.config import (
    CATCHUP_BATCH_BLOCKS_MAX,
    CATCHUP_BLOCK_CHARGE_MIN_BYTES,
    CATCHUP_RETRY_MS,
)
from node.core import Block, Message, Phase, Proposal, QCMessage, SyncRequest, SyncResponse
from node.core.budget import Bucket
from node.core.catchup import CatchUp, serve_sync
from node.core.refusal import Kind, Reason
from tests.unit import test_core_refusals as refusals
from tests.unit.test_core_refusals import block, qc
from tests.unit.test_core_replica import Disk

N, ME = 4, 1


def catchup() -> tuple[CatchUp, list[tuple[int, Message]]]:
    sent: list[tuple[int, Message]] = []
    return CatchUp(ME, N, lambda dst, m: sent.append((dst, m))), sent


def test_a_certified_height_asks_its_sender_for_at_most_a_batch() -> None:
    c, sent = catchup()
    c.want(3, 10 * CATCHUP_BATCH_BLOCKS_MAX, committed=4, now_ms=0)
    assert sent == [(3, SyncRequest(5, CATCHUP_BATCH_BLOCKS_MAX))]
    c.want(2, 20, committed=4, now_ms=5)  # one request out at a time
    assert len(sent) == 1 and c.retry_deadline_ms() == CATCHUP_RETRY_MS


def test_an_unanswered_request_goes_round_robin_to_the_next_peer_never_to_itself() -> None:
    c, sent = catchup()
    c.want(0, 9, committed=0, now_ms=0)
    c.retry(0, CATCHUP_RETRY_MS - 1)
    assert len(sent) == 1  # not yet
    for k in range(1, 4):
        c.retry(0, k * CATCHUP_RETRY_MS)
    assert [dst for dst, _ in sent] == [0, 2, 3, 0]  # skips ME = 1
    assert c.target == 9  # a certified height is not given up


def test_a_peer_word_lasts_one_round_of_unanswered_requests() -> None:
    c, sent = catchup()
    c.peer_height(2, 50, committed=0, now_ms=0)
    assert sent == [(2, SyncRequest(1, min(50, CATCHUP_BATCH_BLOCKS_MAX)))]
    for k in range(1, N - 1):
        c.retry(0, k * CATCHUP_RETRY_MS)
    assert len(sent) == N - 1 and c.target == 50
    c.retry(0, (N - 1) * CATCHUP_RETRY_MS)  # n - 1 misses: the word is spent
    assert len(sent) == N - 1 and c.target == 0 and c.retry_deadline_ms() is None


def test_our_own_word_and_a_lower_word_are_ignored() -> None:
    c, sent = catchup()
    c.peer_height(ME, 50, committed=0, now_ms=0)
    c.peer_height(2, 5, committed=5, now_ms=0)
    assert sent == [] and c.target == 0


def test_an_answer_that_moves_us_on_asks_the_same_peer_for_more_once() -> None:
    c, sent = catchup()
    c.peer_height(2, 3, committed=0, now_ms=0)
    c.answered(2, start=0, committed=3, now_ms=10)
    assert sent[-1] == (2, SyncRequest(4, CATCHUP_BATCH_BLOCKS_MAX))
    assert c.retry_deadline_ms() is None  # not retried: an empty answer ends the chain
    c.answered(2, start=3, committed=3, now_ms=20)
    assert len(sent) == 2


def test_an_answer_short_of_the_target_asks_for_the_rest() -> None:
    """A full answer (all the blocks asked for) short of the target: the rest from the
    same peer. One with fewer blocks than asked: from the next peer (session 26: a peer
    answering one block per request, just before the deadline, was asked for ever)."""
    c, sent = catchup()
    c.want(2, 40, committed=0, now_ms=0)
    assert sent[-1] == (2, SyncRequest(1, 16))
    c.misses = 2
    c.answered(2, start=0, committed=16, now_ms=10)  # full
    assert sent[-1] == (2, SyncRequest(17, 16)) and c.misses == 0
    c.answered(2, start=16, committed=20, now_ms=20)  # short: 4 of 16
    assert sent[-1] == (3, SyncRequest(21, 16)) and c.misses == 0
    c.answered(3, start=20, committed=21, now_ms=30)  # short again: the next, round-robin
    assert sent[-1] == (0, SyncRequest(22, 16))
    # An unasked peer's short answer moves us on but does not change whom we ask.
    c.answered(1, start=21, committed=22, now_ms=40)
    assert sent[-1] == (0, SyncRequest(23, 16))


def _chain(length: int) -> Disk:
    disk = Disk()
    parent: Block | None = None
    for h in range(1, length + 1):
        b = block(0, height=h, parent=parent.hash if parent else block(0).parent_hash)
        disk.blocks[h] = (b, qc(Phase.COMMIT, 0, h, b.hash))
        parent = b
    return disk


def test_serving_sends_what_is_held_and_charges_at_least_the_minimum_per_block() -> None:
    disk = _chain(3)
    budget = Bucket(1, 10 * CATCHUP_BLOCK_CHARGE_MIN_BYTES, 0)
    got = serve_sync(SyncRequest(2, 5), disk, budget, 0)
    assert isinstance(got, SyncResponse)
    assert [b.height for b, _ in got.blocks] == [2, 3]
    for _ in range(7):  # 10 minimum charges in the burst, 2 spent
        assert budget.available(0)
        budget.charge(CATCHUP_BLOCK_CHARGE_MIN_BYTES, 0)
    assert budget.available(0)
    budget.charge(CATCHUP_BLOCK_CHARGE_MIN_BYTES, 0)
    assert not budget.available(0)


def test_serving_nothing_held_still_charges_and_says_why() -> None:
    budget = Bucket(1, CATCHUP_BLOCK_CHARGE_MIN_BYTES, 0)
    assert serve_sync(SyncRequest(1, 5), Disk(), budget, 0) is Reason.NOT_HELD
    assert not budget.available(0)


def test_a_request_below_height_1_starts_at_1() -> None:
    got = serve_sync(SyncRequest(0, 2), _chain(2), Bucket(1, 1 << 30, 0), 0)
    assert isinstance(got, SyncResponse) and [b.height for b, _ in got.blocks] == [1]


# --- edges found by mutation testing (docs/testing.md, core.catchup) -----------------------


def test_a_first_request_on_our_own_certificate_goes_to_the_next_validator() -> None:
    """Before any peer has named a height, the peer to ask is the one after us (wrapping
    at n), never ourselves."""
    for me, expected in ((1, 2), (3, 0)):
        sent: list[tuple[int, Message]] = []
        c = CatchUp(me, N, lambda dst, m, sent=sent: sent.append((dst, m)))  # type: ignore[misc]
        c.want(me, 5, committed=0, now_ms=0)
        assert [dst for dst, _ in sent] == [expected]


def test_the_retry_is_due_one_interval_after_the_request_was_sent() -> None:
    c, _ = catchup()
    c.want(2, 5, committed=0, now_ms=CATCHUP_RETRY_MS)  # bits shared: + and ^ differ
    assert c.retry_deadline_ms() == 2 * CATCHUP_RETRY_MS


def test_a_lower_word_does_not_redirect_a_certified_catch_up() -> None:
    """A peer's word of a height below the certified target changes neither the target nor
    the peer asked next."""
    c, sent = catchup()
    c.want(2, 10, committed=0, now_ms=0)
    c.peer_height(0, 5, committed=0, now_ms=0)
    assert c.target == 10
    c.retry(0, CATCHUP_RETRY_MS)
    assert [dst for dst, _ in sent] == [2, 3]


def test_a_request_starts_at_the_height_after_ours_odd_or_even() -> None:
    for committed in (3, 4):
        c, sent = catchup()
        c.want(2, 10, committed=committed, now_ms=0)
        assert sent == [(2, SyncRequest(committed + 1, 10 - committed))]


def test_after_a_spent_word_catch_up_goes_on_to_the_certified_height() -> None:
    """A certified target (5) under a peer's word (10, from 3's hello while the request to
    2 is out: it raises the target, it does not redirect the request): when the word is
    spent after n - 1 unanswered requests, the node still asks the next peer for blocks up
    to 5."""
    c, sent = catchup()
    c.want(2, 5, committed=0, now_ms=0)
    c.peer_height(3, 10, committed=0, now_ms=0)
    for k in range(1, N):
        c.retry(0, k * CATCHUP_RETRY_MS)
    assert c.target == 5
    assert [dst for dst, _ in sent] == [2, 3, 0, 2]  # round robin from the peer asked
    assert sent[-1] == (2, SyncRequest(1, 5)) and len(sent) == N
    assert c.retry_deadline_ms() == N * CATCHUP_RETRY_MS  # the last request, plus one interval


def test_the_round_robin_skips_us_wherever_we_stand() -> None:
    """ME = 2 of 4: after peer 1 comes 3 (not 2, and not 1 << 1 = 2 either)."""
    sent: list[tuple[int, Message]] = []
    c = CatchUp(2, N, lambda dst, m: sent.append((dst, m)))
    c.want(1, 9, committed=0, now_ms=0)
    c.retry(0, CATCHUP_RETRY_MS)
    assert [dst for dst, _ in sent] == [1, 3]


def test_indexes_above_256_are_compared_by_value() -> None:
    """n = 300, me = 280: our own certificate does not make us the peer to ask, and the
    round robin skips us though the index it computes is another int object. (279's
    certificate, arriving while the request to 281 is out, does not redirect it.)"""
    me = int(str(280))
    sent: list[tuple[int, Message]] = []
    c = CatchUp(me, 300, lambda dst, m: sent.append((dst, m)))
    c.want(int(str(280)), 9, committed=0, now_ms=0)
    c.want(279, 9, committed=0, now_ms=0)
    c.retry(0, CATCHUP_RETRY_MS)
    assert [dst for dst, _ in sent] == [281, 282]
    c2 = CatchUp(me, 300, lambda dst, m: sent.append((dst, m)))
    c2.want(279, 9, committed=0, now_ms=0)
    c2.retry(0, CATCHUP_RETRY_MS)
    assert [dst for dst, _ in sent][2:] == [279, 281]  # skips 280, by value


def test_the_size_bound_is_a_blocks_exact_share_of_a_response_plus_4_bytes() -> None:
    """The bound counts a block, its certificate and its framing exactly, plus 4 bytes (its
    share of the message's count), so a response of k >= 2 blocks is never larger than
    the sum of their bounds. Blocks of 0, 1 and 30 transactions."""
    from node.core import encode_message
    from node.core.catchup import _wire_size_bound

    empty = len(encode_message(SyncResponse(())))
    for txs in ((), (b"x",), tuple(b"t%d" % i * 50 for i in range(30))):
        b = block(0, txs=txs)
        cert = qc(Phase.COMMIT, 0, 1, b.hash)
        share = len(encode_message(SyncResponse(((b, cert),)))) - empty
        assert _wire_size_bound(b, cert) == share + 4
        two = len(encode_message(SyncResponse(((b, cert), (b, cert)))))
        assert two <= 2 * _wire_size_bound(b, cert)


def test_a_response_fills_exactly_up_to_the_byte_limit_and_stays_contiguous(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the limit at the bounds of blocks 1 and 2 together, both are sent; one byte
    less, block 1 alone. A block over the limit ends the response: a smaller block after
    it is not sent (a gap would stop the receiver at the missing height)."""
    import node.core.catchup as catchup_module
    from node.core.catchup import _wire_size_bound

    disk = _chain(3)
    bounds = [_wire_size_bound(*disk.blocks[h]) for h in (1, 2, 3)]
    budget = Bucket(1, 1 << 30, 0)
    for limit, heights in ((bounds[0] + bounds[1], [1, 2]), (bounds[0] + bounds[1] - 1, [1])):
        monkeypatch.setattr(catchup_module, "CATCHUP_RESPONSE_BYTES_MAX", limit)
        got = serve_sync(SyncRequest(1, 3), disk, budget, 0)
        assert isinstance(got, SyncResponse) and [b.height for b, _ in got.blocks] == heights
    big, cert = disk.blocks[2]
    disk.blocks[2] = (replace(big, txs=(*big.txs, b"x" * 500)), cert)
    monkeypatch.setattr(catchup_module, "CATCHUP_RESPONSE_BYTES_MAX", bounds[0] + bounds[2] + 1)
    got = serve_sync(SyncRequest(1, 3), disk, budget, 0)
    assert isinstance(got, SyncResponse) and [b.height for b, _ in got.blocks] == [1]


def test_our_own_word_is_ignored_above_index_256() -> None:
    sent: list[tuple[int, Message]] = []
    c = CatchUp(280, 300, lambda dst, m: sent.append((dst, m)))
    c.peer_height(int(str(280)), 50, committed=0, now_ms=0)
    assert sent == [] and c.target == 0


def test_wanting_a_height_we_hold_asks_nothing() -> None:
    for height in (5, 3):  # our own height, and below it
        c, sent = catchup()
        c.want(2, height, committed=5, now_ms=0)
        assert sent == [] and c.retry_deadline_ms() is None


def test_a_peer_word_lasts_one_round_with_300_validators() -> None:
    """n - 1 = 299 unanswered requests spend the word (counts above the small-int cache)."""
    sent: list[tuple[int, Message]] = []
    c = CatchUp(5, 300, lambda dst, m: sent.append((dst, m)))
    c.peer_height(7, 50, committed=0, now_ms=0)
    for k in range(1, 300):
        c.retry(0, k * CATCHUP_RETRY_MS)
    assert c.target == 0 and c.retry_deadline_ms() is None and len(sent) == 299


@pytest.mark.parametrize("base", [0, 300])
def test_an_answer_that_moves_nothing_does_not_renew_a_peer_word(base: int) -> None:
    """A peer that answers with nothing new (at heights 0 and 300: equal values, distinct
    objects) does not reset the count of misses: the word is spent after n - 1 of them."""
    c, _ = catchup()
    c.peer_height(2, base + 50, committed=base, now_ms=0)
    c.retry(base, CATCHUP_RETRY_MS)
    c.answered(2, start=int(str(base)), committed=int(str(base)), now_ms=CATCHUP_RETRY_MS)
    for k in (2, 3):
        c.retry(base, k * CATCHUP_RETRY_MS + CATCHUP_RETRY_MS)
    assert c.target == 0


def test_an_empty_answer_counts_only_from_the_peer_asked() -> None:
    """Answers that give nothing from peers we did not ask (or a late one) neither restart
    the request nor move it: each would make us send a request, a tiny message buying a
    large answer from an honest peer. The peer asked answering with nothing is a miss:
    the next peer is asked at once."""
    c, sent = catchup()
    c.want(2, 9, committed=0, now_ms=0)
    for src in (0, 3, 0):
        c.answered(src, 0, 0, now_ms=10)
    assert [dst for dst, _ in sent] == [2] and c.retry_deadline_ms() == CATCHUP_RETRY_MS
    c.answered(2, 0, 0, now_ms=20)
    assert [dst for dst, _ in sent] == [2, 3] and c.retry_deadline_ms() == 20 + CATCHUP_RETRY_MS


# --- empty answers (session 20: pipelined, a hidden leader's request to a peer that had
# not committed the block yet waited CATCHUP_RETRY_MS for nothing, past its own view) -----


def test_a_replica_holding_none_of_the_blocks_asked_says_so_at_once() -> None:
    """An empty answer, counted as ``not_held``; a request over the peer's budget stays
    unanswered (the control: the budget is what bounds the answers)."""
    r = refusals.replica(refusals.ME)
    r.step(refusals.OTHER, SyncRequest(1, 4))
    assert (refusals.OTHER, SyncResponse(())) in r.ready().to_send
    assert r.refused[(Kind.SYNC_REQUEST, Reason.NOT_HELD)] == 1
    while not r.refused[(Kind.SYNC_REQUEST, Reason.OVER_SYNC_BUDGET)]:
        r.ready()
        r.step(refusals.OTHER, SyncRequest(1, 4))
    assert not r.ready().to_send


def test_a_round_of_empty_answers_rests_until_the_retry_deadline() -> None:
    """Each empty answer from the peer asked sends the request to the next peer at once;
    when every peer has said it holds nothing, the next round waits ``CATCHUP_RETRY_MS``
    (no storm of requests), and empty answers meanwhile change nothing."""
    c, sent = catchup()
    c.want(3, 9, committed=0, now_ms=0)
    c.answered(3, 0, 0, now_ms=2)
    c.answered(0, 0, 0, now_ms=4)
    assert [dst for dst, _ in sent] == [3, 0, 2]  # at once, round-robin, never ME
    c.answered(2, 0, 0, now_ms=6)  # the round is complete: a rest
    assert len(sent) == 3 and c.retry_deadline_ms() == 6 + CATCHUP_RETRY_MS
    c.answered(3, 0, 0, now_ms=7)  # the next peer's unasked empty answer: nothing
    c.retry(0, 6 + CATCHUP_RETRY_MS - 1)
    assert len(sent) == 3
    c.retry(0, 6 + CATCHUP_RETRY_MS)
    assert sent[3:] == [(3, SyncRequest(1, 9))] and c.target == 9
    c.answered(3, 0, 0, now_ms=8 + CATCHUP_RETRY_MS)  # the next round starts at once again
    assert [dst for dst, _ in sent] == [3, 0, 2, 3, 0]


def test_an_answer_that_moves_us_on_ends_a_rest() -> None:
    c, sent = catchup()
    c.want(3, 9, committed=0, now_ms=0)
    for src in (3, 0, 2):
        c.answered(src, 0, 0, now_ms=1)
    assert c.resting
    c.answered(0, start=0, committed=4, now_ms=2)
    assert sent[-1] == (3, SyncRequest(5, 5)) and not c.resting
    assert c.retry_deadline_ms() == 2 + CATCHUP_RETRY_MS


@pytest.mark.parametrize("via", ["answer", "certificate"])
def test_a_commit_by_a_peers_answer_ends_the_commit_round_as_the_certificate_would(
    via: str,
) -> None:
    """The block whose prepare certificate moved us into this view, committed by a peer's
    catch-up answer that beat the leader's certificate: it ends the commit round all the
    same (``Pacemaker.parent_committed``: the relay's wait is measured, a held
    certificate's excess moves this view's progress deadline). Before session 20 only the
    certificate did, and with empty answers making catch-up quicker, a view whose parent
    came by an answer timed out early (the accomplice test's control at 7/5)."""
    r = refusals.replica(refusals.ME)
    b = block(0)
    r.step(refusals.L0, Proposal(0, b, None, None))
    r.step(refusals.L0, QCMessage(qc(Phase.PREPARE, 0, 1, b.hash)))
    assert r.view == 1 and r.committed_height == 0
    assert r._pacemaker.relay_ms() is None  # no commit round seen yet
    cert = qc(Phase.COMMIT, 0, 1, b.hash)
    r.step(refusals.OTHER, SyncResponse(((b, cert),)) if via == "answer" else QCMessage(cert))
    assert r.committed_height == 1 and r._pacemaker.relay_ms() is not None


def test_a_block_caught_up_from_a_view_left_on_timeouts_is_no_commit_round() -> None:
    """The control: a block committed by an answer, of the view just left on a timeout
    certificate (no commit round: nothing moved us on to wait for its commit)."""
    r = refusals.at_view_1(refusals.replica(refusals.ME))
    b = block(0)
    r.step(refusals.OTHER, SyncResponse(((b, qc(Phase.COMMIT, 0, 1, b.hash)),)))
    assert r.committed_height == 1 and r._pacemaker.relay_ms() is None
