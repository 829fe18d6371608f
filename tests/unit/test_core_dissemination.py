"""node/core/dissemination.py on its own: who is sent a client's transaction and when,
and what a peer's forwarded transactions may fill."""

from __future__ import annotations

import pytest

from node.config import (
    FORWARD_LEADERS,
    PEER_VERIFY_FORWARD_RESERVE,
    SIGNERS_PER_TX_MAX,
    TX_FORWARD_BATCH_MAX,
)
from node.core import AddResult, Mempool, Message, TxForward
from node.core.budget import Bucket
from node.core.dissemination import Dissemination, TxCheck
from node.core.refusal import Reason
from tests.unit.test_core_replica import Disk

N, ME = 7, 0


def leader(view: int) -> int:
    return view % N  # a plain rotation: who gets what is easy to read


def spread(
    mempool: Mempool | None = None, tx_check: TxCheck | None = None, disk: Disk | None = None
) -> tuple[Dissemination, list[tuple[int, Message]]]:
    sent: list[tuple[int, Message]] = []
    d = Dissemination(
        ME,
        N,
        Mempool() if mempool is None else mempool,
        source=Disk() if disk is None else disk,
        leader=leader,
        send=lambda dst, m: sent.append((dst, m)),
        tx_check=tx_check,
    )
    return d, sent


def test_after_idleness_a_transaction_goes_to_every_other_validator() -> None:
    d, sent = spread()
    assert d.submit(b"t1", view=3) is AddResult.ACCEPTED
    assert sent == []  # queued until the flush
    d.flush(view=3)
    assert sorted(dst for dst, _ in sent) == [1, 2, 3, 4, 5, 6]


def test_under_load_a_transaction_goes_to_the_next_leaders_only() -> None:
    d, sent = spread()
    d.submit(b"t1", view=3)
    d.flush(view=3)
    sent.clear()
    d.submit(b"t2", view=3)
    d.flush(view=3)
    assert sorted(dst for dst, _ in sent) == [leader(3 + k) for k in range(FORWARD_LEADERS)]
    assert {m for _, m in sent} == {TxForward((b"t2",))}


def test_a_full_batch_is_sent_at_once() -> None:
    d, sent = spread()
    for k in range(TX_FORWARD_BATCH_MAX):
        d.submit(b"t%d" % k, view=0)
    assert sent, "the batch waited for a flush"


def test_a_committed_transaction_is_a_duplicate_and_not_sent() -> None:
    disk = Disk()
    d, sent = spread(disk=disk)
    disk.tx_committed = lambda tx: tx == b"old"  # type: ignore[method-assign]
    assert d.submit(b"old", view=0) is AddResult.DUPLICATE
    d.flush(view=0)
    assert sent == []


def test_after_a_commit_pending_own_transactions_go_to_the_next_leaders_once_due() -> None:
    d, sent = spread()
    d.submit(b"t1", view=0)
    d.flush(view=0)
    sent.clear()
    d.reforward(view=FORWARD_LEADERS - 1)  # its leaders are still having their turn
    assert sent == []
    d.reforward(view=FORWARD_LEADERS)
    assert sorted(dst for dst, _ in sent) == [
        leader(FORWARD_LEADERS + k) for k in range(FORWARD_LEADERS)
    ]
    sent.clear()
    d.mempool.remove_committed([b"t1"])
    d.reforward(view=5 * FORWARD_LEADERS)
    assert sent == []  # committed: forgotten


def test_a_timeout_regossips_the_oldest_to_everyone_but_us() -> None:
    d, sent = spread()
    d.submit(b"t1", view=0)
    d.regossip()
    assert sorted(dst for dst, _ in sent) == list(range(1, N))
    sent.clear()
    d.mempool.remove_committed([b"t1"])
    d.regossip()
    assert sent == []


def test_a_forward_is_checked_charged_and_capped_at_the_peer_share() -> None:
    checked: list[bytes] = []

    def check(tx: bytes) -> bool:
        checked.append(tx)
        return not tx.startswith(b"bad")

    d, _ = spread(Mempool(txs_max=12), check)  # a peer's share: 12 // 6 = 2
    budget = Bucket(1, PEER_VERIFY_FORWARD_RESERVE + 100 * SIGNERS_PER_TX_MAX, 0)
    got = d.receive(3, TxForward((b"bad1", b"t1", b"t1", b"t2", b"t3")), budget, 0)
    assert got == [Reason.FAILS_ADMISSION, Reason.OVER_MEMPOOL_SHARE]
    assert checked == [b"bad1", b"t1", b"t2"]  # the repeat is known: not checked again
    assert len(d.mempool) == 2
    assert d.receive(4, TxForward((b"t4",)), None, 0) == []  # another peer, its own share


def test_a_forward_stops_where_the_peer_budget_runs_out() -> None:
    d, _ = spread(tx_check=lambda tx: True)
    # enough for one transaction above the reserve kept for the peer's consensus messages
    budget = Bucket(1, PEER_VERIFY_FORWARD_RESERVE + SIGNERS_PER_TX_MAX, 0)
    got = d.receive(3, TxForward((b"t1", b"t2", b"t3")), budget, 0)
    assert got == [Reason.OVER_VERIFY_BUDGET] and len(d.mempool) == 1
    assert budget.available(0)  # the reserve is left: the peer's votes still count


# --- edges found by mutation testing (docs/testing.md, core.dissemination) ------------------


def test_a_reforward_of_more_than_two_batches_sends_every_transaction() -> None:
    """2 * TX_FORWARD_BATCH_MAX + 1 own transactions fall due at once: three messages to
    each next leader, every transaction in exactly one of them."""
    d, sent = spread()
    txs = [b"t%d" % i for i in range(2 * TX_FORWARD_BATCH_MAX + 1)]
    for tx in txs:
        d.submit(tx, view=0)
    d.flush(view=0)
    sent.clear()
    d.reforward(view=FORWARD_LEADERS)
    first = leader(FORWARD_LEADERS)
    got = [tx for dst, m in sent if dst == first for tx in m.txs]  # type: ignore[attr-defined]
    assert sorted(got) == sorted(txs)
    assert sum(dst == first for dst, _ in sent) == 3


def test_a_timeout_regossips_to_every_validator_below_and_above_us() -> None:
    sent: list[tuple[int, Message]] = []
    d = Dissemination(
        3, N, Mempool(), source=Disk(), leader=leader,
        send=lambda dst, m: sent.append((dst, m)), tx_check=None,
    )  # fmt: skip
    d.submit(b"t1", view=0)
    d.regossip()
    assert sorted(dst for dst, _ in sent) == [0, 1, 2, 4, 5, 6]
    sent.clear()  # 300 validators: index 280 and ours are equal ints, not the same object
    big = Dissemination(
        int(str(280)), 300, Mempool(), source=Disk(), leader=leader,
        send=lambda dst, m: sent.append((dst, m)), tx_check=None,
    )  # fmt: skip
    big.submit(b"t1", view=0)
    big.regossip()
    assert sorted(dst for dst, _ in sent) == [i for i in range(300) if i != 280]


def test_a_peer_share_divides_the_mempool_by_the_other_validators() -> None:
    for n, divisor in ((4, 3), (20, 19)):
        d = Dissemination(
            0, n, Mempool(), source=Disk(), leader=leader, send=lambda dst, m: None,
            tx_check=None,
        )  # fmt: skip
        assert d.peer_share() == d.mempool.txs_max // divisor


def test_dissemination_takes_its_ports_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        Dissemination(0, N, Mempool(), Disk(), leader, lambda d, m: None, None)  # type: ignore[misc]


def test_a_reforward_before_the_leaders_have_had_their_turn_sends_nothing() -> None:
    d, sent = spread()
    d.submit(b"t1", view=5)
    d.flush(view=5)
    sent.clear()
    for view in (0, 5, 5 + FORWARD_LEADERS - 1):  # earlier views too (a lagging caller)
        d.reforward(view=view)
    assert sent == []


def test_after_idleness_a_burst_above_256_goes_to_every_validator() -> None:
    d, sent = spread()
    for i in range(300):
        d.submit(b"t%d" % i, view=0)
    d.flush(view=0)
    assert {dst for dst, _ in sent} == set(range(1, N))


def test_own_transactions_are_remembered_up_to_the_mempool_bound_newest_kept() -> None:
    """A mempool of 4: six own transactions, two committed between flushes; only the
    newest four are remembered, so only pending ones are ever re-forwarded."""
    d, sent = spread(Mempool(txs_max=4))
    for tx in (b"a", b"b", b"c", b"d"):
        d.submit(tx, view=0)
    d.flush(view=0)
    d.mempool.remove_committed([b"a", b"b"])
    for tx in (b"e", b"f"):
        d.submit(tx, view=0)
    d.flush(view=0)  # six remembered, bound 4: a and b (the oldest) go
    sent.clear()
    d.reforward(view=FORWARD_LEADERS)
    first = leader(FORWARD_LEADERS)
    got = sorted(tx for dst, m in sent if dst == first for tx in m.txs)  # type: ignore[attr-defined]
    assert got == [b"c", b"d", b"e", b"f"]


def test_a_forward_over_the_share_stops_at_the_first_refusal() -> None:
    d, _ = spread(Mempool(txs_max=12))  # a peer's share: 2
    got = d.receive(3, TxForward((b"t1", b"t2", b"t3", b"t4", b"t5")), None, 0)
    assert got == [Reason.OVER_MEMPOOL_SHARE] and len(d.mempool) == 2
