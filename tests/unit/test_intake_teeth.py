"""Teeth for transaction intake and admission (session 23, mutation sweep E):
node/core/mempool.py, node/core/dissemination.py, node/runtime/_admission.py and
node/runtime/_velocity.py. Each test here fails on a hand-made mutant that the earlier
tests let through (tests/mutation/known.py, "Session 23: sweep E"), and passes on the code
as it is; where it can, each shows the rule both ways, the case it allows beside the case
it refuses.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from node.config import FORWARD_LEADERS, PEER_VERIFY_FORWARD_RESERVE, SIGNERS_PER_TX_MAX
from node.core import AddResult, Mempool, TxForward, tx_key
from node.core.budget import Bucket
from node.core.dissemination import Dissemination
from node.core.refusal import Reason
from node.invariant import InvariantError
from node.runtime._admission import Admission
from node.runtime._velocity import VelocityWatch, moves_of
from node.settlement import Registry, ResultCode, TxResult
from tests.kyc_helpers import kyc_net
from tests.ledger_helpers import TxFactory
from tests.unit.test_admission_control import WINDOW_MS, _busy_at, _estimator
from tests.unit.test_core_dissemination import leader, spread
from tests.unit.test_core_replica import Disk

# --- the mempool ------------------------------------------------------------------------------


def test_a_full_mempool_still_answers_duplicate_for_what_it_holds_or_settled() -> None:
    """DUPLICATE comes before FULL (AddResult's precedence): a client resending the bytes
    it was acknowledged for is told it is in, not to retry later."""
    pool = Mempool(txs_max=1, bytes_max=100, committed_ids_max=10)
    pool.remove_committed([b"settled"])
    assert pool.add(b"held") is AddResult.ACCEPTED
    assert pool.add(b"other") is AddResult.FULL  # full indeed
    assert pool.add(b"held") is AddResult.DUPLICATE
    assert pool.add(b"settled") is AddResult.DUPLICATE


def test_what_is_pending_beyond_a_parent_counts_and_sizes_only_what_it_leaves() -> None:
    """A pipelined block's parent carries some transactions: what is left decides whether
    a block is due at all and whether it is full at once."""
    pool = Mempool(txs_max=10, bytes_max=100, committed_ids_max=10)
    for tx in (b"a" * 3, b"b" * 5, b"c" * 7):
        pool.add(tx)
    assert pool.pending_beyond(frozenset()) == (3, 15)
    carried = frozenset({tx_key(b"a" * 3), tx_key(b"c" * 7), tx_key(b"not pending")})
    assert pool.pending_beyond(carried) == (1, 5)
    everything = frozenset(tx_key(tx) for tx in (b"a" * 3, b"b" * 5, b"c" * 7))
    assert pool.pending_beyond(everything) == (0, 0)  # nothing due: no empty block


def test_a_peer_share_is_freed_once_for_a_transaction_committed_twice() -> None:
    """A peer's transaction commits; once its id is forgotten a client resubmits the same
    bytes, which commit again: the peer's count goes down once, not twice (else it holds
    more than its share)."""
    pool = Mempool(txs_max=10, bytes_max=100, committed_ids_max=1)
    assert pool.add(b"p1", origin=1, share_max=1) is AddResult.ACCEPTED
    pool.remove_committed([b"p1"])
    pool.remove_committed([b"other"])  # p1's id is forgotten
    assert pool.add(b"p1") is AddResult.ACCEPTED  # a client's this time
    pool.remove_committed([b"p1"])
    assert pool.add(b"p2", origin=1, share_max=1) is AddResult.ACCEPTED
    assert pool.share_full(1, 1)
    assert pool.add(b"p3", origin=1, share_max=1) is AddResult.FULL


# --- dissemination ----------------------------------------------------------------------------


def test_a_timeout_regossips_every_pending_transaction_oldest_first() -> None:
    d, sent = spread()
    for tx in (b"t1", b"t2", b"t3"):
        d.submit(tx, view=0)
    d.regossip()
    assert {dst for dst, _ in sent} == set(range(1, 7))
    assert {m for _, m in sent} == {TxForward((b"t1", b"t2", b"t3"))}


def test_a_resubmission_or_a_refused_transaction_is_not_forwarded() -> None:
    d, sent = spread(Mempool(txs_max=1))
    assert d.submit(b"t1", view=0) is AddResult.ACCEPTED
    d.flush(view=0)
    assert sent  # the accepted one went out
    sent.clear()
    assert d.submit(b"t1", view=0) is AddResult.DUPLICATE
    assert d.submit(b"t2", view=0) is AddResult.FULL
    d.flush(view=0)
    assert sent == []


def test_a_reforwarded_transaction_waits_for_its_new_leaders_turn() -> None:
    d, sent = spread()
    d.submit(b"t1", view=0)
    d.flush(view=0)
    sent.clear()
    d.reforward(view=FORWARD_LEADERS)
    assert sent
    sent.clear()
    for view in range(FORWARD_LEADERS, 2 * FORWARD_LEADERS):  # commits in its leaders' views
        d.reforward(view=view)
    assert sent == []
    d.reforward(view=2 * FORWARD_LEADERS)
    want = {leader(2 * FORWARD_LEADERS + k) for k in range(FORWARD_LEADERS)} - {0}  # not us
    assert sorted(dst for dst, _ in sent) == sorted(want)


def test_a_committed_own_transaction_is_forgotten_so_a_pending_one_keeps_its_place() -> None:
    """A mempool of 2: a and b are ours, b commits first (another leader's order), then c.
    Forgetting b at the commit leaves room for a and c; a remembered b would push out a,
    still pending, which would then never be re-forwarded."""
    d, sent = spread(Mempool(txs_max=2))
    d.submit(b"a", view=0)
    d.submit(b"b", view=0)
    d.flush(view=0)
    d.mempool.remove_committed([b"b"])
    d.reforward(view=1)  # after the commit: a is not due yet
    d.submit(b"c", view=1)
    d.flush(view=1)
    sent.clear()
    d.reforward(view=1 + FORWARD_LEADERS)
    first = leader(1 + FORWARD_LEADERS)
    got = sorted(tx for dst, m in sent if dst == first and isinstance(m, TxForward) for tx in m.txs)
    assert got == [b"a", b"c"]


def test_committed_lookups_cost_one_verification_per_four() -> None:
    """A peer re-gossiping eight settled transactions costs two verifications: an honest
    peer's backlog after a pause leaves room for its new transaction."""
    disk = Disk()
    disk.tx_committed = lambda tx: tx.startswith(b"old")  # type: ignore[method-assign]
    d, _ = spread(tx_check=lambda tx: True, disk=disk)
    reserve = PEER_VERIFY_FORWARD_RESERVE  # left for the peer's consensus messages
    budget = Bucket(1, reserve + 3, 0)
    olds = tuple(b"old%d" % i for i in range(8))
    assert d.receive(3, TxForward((*olds, b"new")), budget, 0) == []
    assert d.mempool.contains(b"new")
    # then the new one's check: reserve + 3 - 2 - SIGNERS_PER_TX_MAX
    assert not budget.above(reserve, 0)


def test_a_forwarded_transaction_that_fails_its_check_is_charged_too() -> None:
    """The check is the cost (signatures), whatever it finds: a peer forwarding invalid
    transactions runs out of budget as fast as one forwarding valid ones."""
    checked: list[bytes] = []

    def check(tx: bytes) -> bool:
        checked.append(tx)
        return not tx.startswith(b"bad")

    d, _ = spread(tx_check=check)
    # enough for one transaction above the reserve kept for the peer's consensus messages
    budget = Bucket(1, PEER_VERIFY_FORWARD_RESERVE + SIGNERS_PER_TX_MAX, 0)
    got = d.receive(3, TxForward((b"bad1", b"bad2", b"t1")), budget, 0)
    assert got == [Reason.FAILS_ADMISSION, Reason.OVER_VERIFY_BUDGET]
    assert checked == [b"bad1"] and len(d.mempool) == 0


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_in_a_small_network_a_peer_share_is_still_at_most_a_third(n: int) -> None:
    d = Dissemination(
        0, n, Mempool(txs_max=12), source=Disk(), leader=leader, send=lambda dst, m: None,
        tx_check=None,
    )  # fmt: skip
    assert d.peer_share() == 4


# --- admission control ------------------------------------------------------------------------


def test_every_block_of_a_window_counts_toward_its_rate() -> None:
    """Blocks commit several times a window: the rate is what they all committed."""
    a = _estimator()
    t = WINDOW_MS
    a.committed(0, 5_000, t)
    for _ in range(4):
        a.committed(50, 5_000, t + WINDOW_MS // 2)
        t += WINDOW_MS
        a.committed(50, 5_000, t)
    assert a.rate_tps == 1_000


def test_the_estimate_rounds_up_so_a_fraction_over_the_budget_refuses() -> None:
    a = _estimator(rate_floor_tps=3)  # one transaction: 333.3 ms
    assert a.settle_ms(1) == 334
    refused = a.check(1, 666, 0)  # a 333 ms budget
    assert refused is not None and (refused.settle_ms, refused.budget_ms) == (334, 333)
    assert a.check(1, 668, 0) is None  # a 334 ms budget


def test_after_the_clock_steps_back_a_window_closes_a_window_later() -> None:
    """The window restarts at the earlier time: a stall in it is seen then, not once the
    clock has caught up with where it was."""
    a, t = _busy_at(1_000, backlog=5_000)
    back = t - 10_000
    a.committed(0, 5_000, back)
    a.committed(0, 5_000, back + WINDOW_MS)  # nothing committed, a backlog held
    assert a.rate_tps == 500


def test_a_window_that_committed_exactly_what_it_held_does_not_lower_the_rate() -> None:
    """Committing all it held at the window's start, the node may have run dry: the
    window's rate is a lower bound only. One fewer, and it was busy throughout."""
    for last, rate in ((20, 1_000), (19, 595)):
        a, t = _busy_at(1_000, backlog=5_000)
        t += WINDOW_MS
        a.committed(100, 20, t)  # busy: 1,000/s, and 20 held at the next window's start
        assert a.rate_tps == 1_000
        t += WINDOW_MS
        a.committed(last, 0, t)
        assert a.rate_tps == rate


def test_the_hint_rounds_the_drain_time_up() -> None:
    """At 3/s a 333 ms budget settles 0.999 of 2 held: the excess drains in 333.7 ms, so a
    client retrying after 333 would be refused once more."""
    a = _estimator(rate_floor_tps=3, retry_min_ms=1)
    refused = a.check(2, 666, 0)
    assert refused is not None and refused.retry_after_ms == 334


@pytest.mark.parametrize(
    "bad",
    [
        {"rate_floor_tps": 0},
        {"window_ms": 0},
        {"weight_pct": 0},
        {"weight_pct": 101},
        {"share_pct": 0},
        {"share_pct": 101},
        {"retry_min_ms": 0},
        {"retry_min_ms": 5_001},  # above retry_max_ms
        {"queue_max_ms": 0},
    ],
)
def test_the_estimator_refuses_bounds_that_mean_nothing(bad: dict[str, int]) -> None:
    _estimator()  # the defaults of these tests are fine
    with pytest.raises(InvariantError):
        _estimator(**bad)


def test_the_estimator_accepts_its_bounds_at_their_edges() -> None:
    a = Admission(0, rate_floor_tps=1, window_ms=1, weight_pct=100, share_pct=100,
                  retry_min_ms=7, retry_max_ms=7, queue_max_ms=1)  # fmt: skip
    assert a.check(0, 1, 0) is None


# --- velocity alerts --------------------------------------------------------------------------

NET = kyc_net()
REG = Registry.at_genesis(NET.genesis)


def test_a_pending_dvp_settled_at_once_counts_for_both_parties() -> None:
    txf = TxFactory(NET)
    raw = txf.pending("BANK01", "BANK02", amount=700)
    assert moves_of(REG, raw) == [("BANK01", NET.cash, 700), ("BANK02", NET.cash, 700)]


def test_a_mint_counts_for_its_recipient_with_a_value_for_cash_only() -> None:
    txf = TxFactory(NET)
    bonds = txf.mint("BANK03", 1_000)
    assert moves_of(REG, bonds) == [("BANK03", "", 0)]
    cash = txf.mint("BANK03", 800, instrument=NET.cash)
    assert moves_of(REG, cash) == [("BANK03", NET.cash, 800)]


def test_a_cash_transfer_counts_its_value_for_both_parties() -> None:
    txf = TxFactory(NET)
    raw = txf.transfer("BANK03", "BANK04", 700)
    assert moves_of(REG, raw) == [("BANK03", NET.cash, 700), ("BANK04", NET.cash, 700)]


def _watch(**kw: int) -> VelocityWatch:
    return VelocityWatch(lambda: REG, **({"window_ms": 1_000} | kw))


def test_a_move_leaves_the_window_exactly_window_ms_later() -> None:
    """The window is the last ``window_ms`` of block time: (t - window_ms, t]."""
    watch = _watch(txs_max=1, value_max=10**9)
    assert watch.observe(0, [("A", "", 0)]) == []
    assert watch.observe(1_000, [("A", "", 0)]) == []  # the first one has just left
    assert watch.observe(0, [("B", "", 0)]) == []
    (alert,) = watch.observe(999, [("B", "", 0)])  # the first one is still in
    assert (alert.account, alert.rule, alert.observed) == ("B", "count", 2)


def test_a_value_alert_ends_when_its_token_leaves_the_window() -> None:
    """Over the value bound in USD, then a move with no USD after the USD has left the
    window: the account fell back, so its next crossing alerts again."""
    watch = _watch(txs_max=100, value_max=100)
    assert [a.rule for a in watch.observe(0, [("A", "USD", 150)])] == ["value"]
    assert watch.observe(2_000, [("A", "", 0)]) == []
    assert [(a.rule, a.cash) for a in watch.observe(2_001, [("A", "USD", 150)])] == [
        ("value", "USD")
    ]


def test_a_large_payment_alerts_again_once_the_account_has_fallen_back_between() -> None:
    """A bug this sweep found: an account paying more than the value bound in one move,
    once every few windows, fell back within the bound between the payments (its window
    emptied) but was only looked at with the new payment in: it alerted once, ever. Each
    payment is a crossing (docs/cluster.md "Velocity alerts"); two in one window are not."""
    watch = _watch(txs_max=100, value_max=100)
    for t in (0, 5_000, 10_000):
        (alert,) = watch.observe(t, [("A", "USD", 150)])
        assert (alert.rule, alert.cash, alert.observed) == ("value", "USD", 150)
    assert watch.observe(10_500, [("A", "USD", 150)]) == []  # still over: the same episode
    (count,) = _watch(txs_max=1).observe(0, [("B", "", 0), ("B", "", 0)])
    assert count.rule == "count"  # a block's own moves are counted before it is judged


def test_each_block_reads_the_reference_data_at_the_head() -> None:
    """A cash token the registry did not know at one block (governance adds it) has its
    value counted from the next block on."""
    txf = TxFactory(NET)
    raw = txf.transfer("BANK03", "BANK04", 700)
    regs = iter([SimpleNamespace(instrument_by_id={}), REG])
    watch = VelocityWatch(lambda: next(regs), window_ms=1_000, value_max=100)  # type: ignore[arg-type, return-value]
    t = NET.genesis.genesis_time_ms
    ok = [TxResult(b"\0" * 32, ResultCode.OK, recorded=True)]
    assert watch.block(t, [raw], ok) == []  # no cash token known: no value
    alerts = watch.block(t + 1, [raw], ok)
    assert sorted((a.account, a.rule, a.observed) for a in alerts) == [
        ("BANK03", "value", 700),
        ("BANK04", "value", 700),
    ]
