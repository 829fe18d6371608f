"""node/core/catchup.py on its own: whom a replica asks for missing blocks, for which,
when it asks again, how long a peer's unproven word lasts, and serving within a budget."""

from __future__ import annotations

from node.config import (
    CATCHUP_BATCH_BLOCKS_MAX,
    CATCHUP_BLOCK_CHARGE_MIN_BYTES,
    CATCHUP_RETRY_MS,
)
from node.core import Block, Message, Phase, SyncRequest, SyncResponse
from node.core.budget import Bucket
from node.core.catchup import CatchUp, serve_sync
from node.core.refusal import Reason
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
    c, sent = catchup()
    c.want(2, 10, committed=0, now_ms=0)
    c.misses = 2
    c.answered(2, start=0, committed=4, now_ms=10)
    assert sent[-1] == (2, SyncRequest(5, 6)) and c.misses == 0


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
