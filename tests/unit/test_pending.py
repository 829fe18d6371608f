"""Pending settlement with recycling (issue 14 item 4, ADR 0014): one rule per test.

Every demo bank starts with 10,000,000 units of each bond and 1,000,000,000 of cash, so a
trade of ``_BIG`` bond units leaves the seller short by 100 until somebody delivers them.
Codes are named, never numbered (the numbers may move at a merge).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from node import merkle
from node.config import PENDING_AGE_MAX_MS
from node.genesis import DemoNetwork
from node.receipt import EventProof, Receipt
from node.settlement import (
    BlockContext,
    BlockOutcome,
    ComplianceRules,
    PendingDvP,
    RecordKind,
    ResultCode,
    SignedTx,
    TierLimit,
    Transaction,
    TxResult,
    _pending,
    apply_block,
    decode_body,
    encode_body,
    instructions,
    outcome,
    precheck,
    result_leaf,
)
from node.store import LmdbStore, MemoryStore
from tests.gov_helpers import set_rules
from tests.gov_helpers import signed as gov_signed
from tests.ledger_helpers import HOUR_MS, TxFactory
from tests.ledger_helpers import run_block as run
from tests.life_helpers import BOND_UNITS, at, life_net, run_at

RC = ResultCode
_HELD = 10_000_000  # every bank's genesis holding of each bond
_BIG = _HELD + 100  # a sale the seller can deliver only after receiving 100 more units


def tid(raw: bytes) -> bytes:
    return SignedTx.decode(raw).tx_id


def events(out: BlockOutcome) -> list[tuple[bytes, ResultCode]]:
    return [(r.tx_id, r.code) for r in out.results if r.event]


def own(out: BlockOutcome) -> list[ResultCode]:
    """The codes of the block's transactions (not its events)."""
    return [r.code for r in out.results if not r.event]


def deliver(txf: TxFactory, net: DemoNetwork, units: int = 100, **kw: object) -> bytes:
    """BANK03 delivers ``units`` of the first bond to BANK01, the sellers' seller."""
    return txf.signed(txf.transfer("BANK03", "BANK01", units, instrument=net.bonds[0], **kw))


@pytest.fixture
def short(store: MemoryStore, txf: TxFactory) -> bytes:
    """A pending DvP, seller short by 100 bonds, recorded in block 1."""
    raw = txf.signed(txf.pending(quantity=_BIG, amount=5_000))
    assert own(run(store, raw)) == [RC.PENDING_SETTLEMENT]
    return raw


def test_a_funded_pending_dvp_settles_at_once_like_a_dvp(
    store: MemoryStore, txf: TxFactory
) -> None:
    out = run(store, txf.signed(txf.pending(quantity=300, amount=297)))
    assert own(out) == [RC.OK] and events(out) == []
    assert store.balance("BANK02", txf.net.bonds[0]) == _HELD + 300
    assert instructions(store) == []


def test_a_short_leg_is_pending_and_moves_nothing(
    store: MemoryStore, txf: TxFactory, short: bytes
) -> None:
    assert store.balance("BANK01", txf.net.bonds[0]) == _HELD
    assert store.balance("BANK02", txf.net.cash) == 1_000_000_000
    [(height, position, inst)] = instructions(store)
    assert (height, position, inst.tx_id, inst.lots_left) == (1, 0, tid(short), 1)
    rec = store.tx_record(tid(short))
    assert rec is not None and rec.code is RC.PENDING_SETTLEMENT
    found = outcome(store, tid(short))
    assert found is not None and (found.code, found.height, found.index) == (
        RC.PENDING_SETTLEMENT,
        1,
        0,
    )


def test_other_refusals_stay_final(store: MemoryStore, txf: TxFactory) -> None:
    out = run(store, txf.signed(txf.pending(buyer="BANK01")))
    assert own(out) == [RC.SELF_TRADE] and instructions(store) == []


def test_it_settles_at_the_end_of_the_block_that_funds_it(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    out = run(store, deliver(txf, net), at_ms=2_000)
    assert own(out) == [RC.OK]
    assert events(out) == [(tid(short), RC.OK)]
    assert store.balance("BANK02", net.bonds[0]) == _HELD + _BIG
    assert store.balance("BANK01", net.bonds[0]) == 0
    assert store.balance("BANK01", net.cash) == 1_000_000_000 + 5_000
    assert instructions(store) == []
    done = outcome(store, tid(short))
    assert done is not None
    assert (done.code, done.height, done.index) == (RC.OK, 2, 1)  # after the 1 transaction
    assert (done.settled_quantity, done.settled_amount) == (_BIG, 5_000)


def test_a_later_transaction_of_the_same_block_can_fund_it(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    raw = txf.signed(txf.pending(quantity=_BIG, amount=5_000))
    out = run(store, raw, deliver(txf, net))
    assert own(out) == [RC.PENDING_SETTLEMENT, RC.OK]
    assert events(out) == [(tid(raw), RC.OK)]


def test_a_settled_instruction_never_settles_again(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    run(store, deliver(txf, net), at_ms=2_000)
    refund = [  # enough for the seller to deliver the whole trade again
        txf.signed(txf.transfer(bank, "BANK01", _HELD, instrument=net.bonds[0]))
        for bank in ("BANK04", "BANK05")
    ]
    out = run(store, *refund, at_ms=3_000)
    assert own(out) == [RC.OK, RC.OK] and events(out) == []
    assert events(run(store, at_ms=4_000)) == []
    assert store.balance("BANK02", net.bonds[0]) == _HELD + _BIG


def test_unfunded_until_its_deadline_it_fails_and_moves_nothing(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    deadline = HOUR_MS  # the factory's deadline, relative to genesis time
    assert events(run(store, at_ms=deadline)) == []  # at the deadline it is still attempted
    out = run(store, at_ms=deadline + 1)
    assert events(out) == [(tid(short), RC.FAILED_DEADLINE)]
    assert out.balances == {} and instructions(store) == []
    assert events(run(store, deliver(txf, net), at_ms=deadline + 2)) == []


def test_funded_at_its_deadline_instant_it_settles(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    out = run(store, deliver(txf, net), at_ms=HOUR_MS)
    assert events(out) == [(tid(short), RC.OK)]


def test_funded_after_its_deadline_it_fails_instead(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    out = run(store, deliver(txf, net, expiry_ms=txf.t0 + 2 * HOUR_MS), at_ms=HOUR_MS + 1)
    assert own(out) == [RC.OK]
    assert events(out) == [(tid(short), RC.FAILED_DEADLINE)]
    assert store.balance("BANK02", net.bonds[0]) == _HELD


def test_the_age_bound_fails_it_before_a_far_deadline(store: MemoryStore, txf: TxFactory) -> None:
    far = txf.t0 + 10 * PENDING_AGE_MAX_MS
    raw = txf.signed(txf.pending(quantity=_BIG, amount=5, deadline_ms=far))
    run(store, raw, at_ms=1_000)
    assert events(run(store, at_ms=1_000 + PENDING_AGE_MAX_MS)) == []
    assert events(run(store, at_ms=1_001 + PENDING_AGE_MAX_MS)) == [(tid(raw), RC.FAILED_DEADLINE)]


def test_instructions_are_attempted_in_height_then_position_order(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    """Two buyers of the same seller's bonds: only 100 more units arrive, so only the
    earlier instruction (lower height, then lower position) can settle."""
    first = txf.signed(txf.pending(buyer="BANK02", quantity=_BIG, amount=1))
    second = txf.signed(txf.pending(buyer="BANK04", quantity=_BIG, amount=2))
    third = txf.signed(txf.pending(buyer="BANK05", quantity=_BIG, amount=3))
    run(store, second, third)
    run(store, first, at_ms=2_000)
    # Block 1 holds second (position 0) and third; block 2 holds first: second goes first.
    out = run(store, deliver(txf, net), at_ms=3_000)
    assert events(out) == [(tid(second), RC.OK)]
    assert [i.tx_id for _, _, i in instructions(store)] == [tid(third), tid(first)]


def test_a_held_instruction_is_not_attempted_until_released(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    out = run(store, txf.signed(txf.hold(tid(short), by="BANK02")), deliver(txf, net))
    assert own(out) == [RC.OK, RC.OK] and events(out) == []
    assert store.balance("BANK02", net.bonds[0]) == _HELD
    out = run(store, txf.signed(txf.release(tid(short), by="BANK02")), at_ms=2_000)
    assert events(out) == [(tid(short), RC.OK)]


def test_each_party_releases_only_its_own_hold(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    run(
        store,
        txf.signed(txf.hold(tid(short), by="BANK01")),
        txf.signed(txf.hold(tid(short), by="BANK02")),
        deliver(txf, net),
    )
    out = run(store, txf.signed(txf.release(tid(short), by="BANK01")), at_ms=2_000)
    assert events(out) == []  # the buyer's hold stands
    out = run(store, txf.signed(txf.release(tid(short), by="BANK02")), at_ms=3_000)
    assert events(out) == [(tid(short), RC.OK)]


def test_a_held_instruction_still_fails_at_its_deadline(
    store: MemoryStore, txf: TxFactory, short: bytes
) -> None:
    run(store, txf.signed(txf.hold(tid(short), by="BANK01")))
    out = run(store, at_ms=HOUR_MS + 1)
    assert events(out) == [(tid(short), RC.FAILED_DEADLINE)]


def test_only_a_party_holds_and_only_a_pending_instruction(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    settled = txf.signed(txf.dvp())
    out = run(
        store,
        txf.signed(txf.hold(tid(short), by="BANK03")),
        txf.signed(txf.hold(bytes(32), by="BANK01")),
        settled,
        txf.signed(txf.hold(tid(settled), by="BANK01")),
    )
    assert own(out) == [RC.UNAUTHORIZED, RC.NOT_PENDING, RC.OK, RC.NOT_PENDING]
    [(_, _, inst)] = instructions(store)
    assert inst.holds == 0


def test_cancel_by_both_ends_it_and_nothing_settles_later(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    out = run(store, txf.signed(txf.cancel(tid(short))), deliver(txf, net))
    assert own(out) == [RC.OK, RC.OK]
    assert events(out) == [(tid(short), RC.CANCELLED)]
    assert out.balances.get(("BANK02", net.bonds[0])) is None
    assert instructions(store) == []
    again = run(store, txf.signed(txf.cancel(tid(short))), at_ms=2_000)
    assert own(again) == [RC.NOT_PENDING]


def test_cancel_must_name_the_instructions_parties(
    store: MemoryStore, txf: TxFactory, short: bytes
) -> None:
    out = run(store, txf.signed(txf.cancel(tid(short), buyer="BANK03")))
    assert own(out) == [RC.UNAUTHORIZED] and events(out) == []
    assert len(instructions(store)) == 1


def test_cancel_needs_both_signatures(store: MemoryStore, txf: TxFactory, short: bytes) -> None:
    tx = txf.cancel(tid(short))
    one = SignedTx(encode_body(tx), ()).with_signature("BANK01", txf.net.participant_keys["BANK01"])
    out = run(store, one.encode())
    assert own(out) == [RC.BAD_SIGNATURE] and len(instructions(store)) == 1


def test_a_partial_settlement_moves_whole_lots_and_leaves_the_rest(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    """Lots of 50 units at 7 each: the seller, short by 100, gets 60 more, so it can
    deliver all but 40 units: the largest whole number of lots is all but one lot."""
    raw = txf.signed(txf.pending(quantity=_BIG, amount=7 * (_BIG // 50), lot=50))
    out = run(store, raw, deliver(txf, net, 60))
    assert events(out) == [(tid(raw), RC.PARTIALLY_SETTLED)]
    assert store.balance("BANK02", net.bonds[0]) == _HELD + _BIG - 50
    assert store.balance("BANK01", net.bonds[0]) == 10
    assert store.balance("BANK01", net.cash) == 1_000_000_000 + 7 * (_BIG // 50 - 1)
    [(_, _, inst)] = instructions(store)
    assert inst.lots_left == 1
    out = run(store, deliver(txf, net, 40), at_ms=2_000)
    assert events(out) == [(tid(raw), RC.OK)]
    done = outcome(store, tid(raw))
    assert done is not None and (done.settled_quantity, done.settled_amount) == (
        _BIG,
        7 * (_BIG // 50),
    )


def test_a_lot_that_does_not_split_the_trade_is_refused(store: MemoryStore, txf: TxFactory) -> None:
    uneven_units = txf.signed(txf.pending(quantity=100, amount=10, lot=30))
    uneven_price = txf.signed(txf.pending(quantity=100, amount=10, lot=25))  # 4 lots, 10/4
    for raw in (uneven_units, uneven_price):
        assert precheck(txf.net.genesis, raw).code is RC.INVALID_AMOUNT
    assert own(run(store, uneven_units, uneven_price)) == [RC.INVALID_AMOUNT] * 2


def test_the_book_is_bounded_and_a_full_book_refuses(
    store: MemoryStore, txf: TxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pending, "PENDING_MAX", 2)
    raws = [txf.signed(txf.pending(quantity=_BIG, amount=i + 1)) for i in range(3)]
    out = run(store, *raws)
    assert own(out) == [RC.PENDING_SETTLEMENT, RC.PENDING_SETTLEMENT, RC.PENDING_FULL]
    assert len(instructions(store)) == 2
    assert store.tx_record(tid(raws[2])) is not None  # recorded, with its refusal


def test_one_party_cannot_fill_the_book(
    store: MemoryStore, txf: TxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pending trades per party at most (here): BANK01's third is refused, another
    pair's is not; once one of BANK01's ends, it may wait again."""
    monkeypatch.setattr(_pending, "PENDING_PER_PARTY_MAX", 2)
    mine = [txf.signed(txf.pending(buyer=b, quantity=_BIG, amount=1)) for b in BANK_BUYERS]
    others = txf.signed(txf.pending("BANK05", "BANK06", quantity=_BIG, amount=1))
    out = run(store, *mine, others)
    assert own(out) == [RC.PENDING_SETTLEMENT] * 2 + [RC.PENDING_FULL, RC.PENDING_SETTLEMENT]
    run(store, txf.signed(txf.cancel(tid(mine[0]), buyer=BANK_BUYERS[0])), at_ms=2_000)
    again = txf.signed(txf.pending(buyer="BANK06", quantity=_BIG, amount=2))
    assert own(run(store, again, at_ms=3_000)) == [RC.PENDING_SETTLEMENT]


BANK_BUYERS = ("BANK02", "BANK03", "BANK04")


def test_events_are_leaves_no_transaction_result_can_be_mistaken_for(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    out = run(store, deliver(txf, net))
    event = out.results[-1]
    as_tx = TxResult(event.tx_id, event.code, recorded=True)
    assert result_leaf(event) != result_leaf(as_tx)
    leaves = [result_leaf(r) for r in out.results]
    assert out.results_root == merkle.root([*leaves, out.parties.leaf]) and len(leaves) == 2


def test_events_are_under_the_state_root(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    """The same block on two equal states, one of which forgot the instruction: the
    roots differ, so validators that disagree about recycling cannot agree on a block."""
    other = MemoryStore(net.genesis)
    run(other, txf.signed(txf.pending(quantity=_BIG, amount=5_000)))  # another id
    raw = deliver(txf, net)
    ctx = BlockContext(2, net.genesis.genesis_time_ms + 2_000)
    a, b = apply_block(store, [raw], ctx), apply_block(other, [raw], ctx)
    assert a.state_root != b.state_root


def test_instructions_survive_a_restart(tmp_path: Path, txf: TxFactory, net: DemoNetwork) -> None:
    store = LmdbStore(tmp_path / "db", net.genesis)
    raw = txf.signed(txf.pending(quantity=_BIG, amount=5_000))
    run(store, raw)
    store.close()
    reopened = LmdbStore(tmp_path / "db", net.genesis)
    assert [i.tx_id for _, _, i in instructions(reopened)] == [tid(raw)]
    out = run(reopened, deliver(txf, net), at_ms=2_000)
    assert events(out) == [(tid(raw), RC.OK)]
    stored = reopened.block(2)
    assert stored is not None and stored.results == out.results
    reopened.close()


@pytest.mark.parametrize("kind", ["pending", "hold", "release", "cancel"])
def test_new_kinds_round_trip_canonically(txf: TxFactory, kind: str) -> None:
    builders: dict[str, Callable[[], Transaction]] = {
        "pending": lambda: txf.pending(lot=5),
        "hold": lambda: txf.hold(b"\x07" * 32),
        "release": lambda: txf.release(b"\x07" * 32),
        "cancel": lambda: txf.cancel(b"\x07" * 32),
    }
    tx = builders[kind]()
    body = encode_body(tx)
    assert decode_body(body) == tx and encode_body(decode_body(body)) == body


def test_a_pending_dvp_is_not_a_dvp_on_the_wire(txf: TxFactory) -> None:
    tx = txf.pending()
    assert isinstance(decode_body(encode_body(tx)), PendingDvP)
    assert encode_body(tx) != encode_body(tx.as_dvp())


def test_a_trade_funded_by_a_later_instructions_settlement_settles_next_block(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    """A (first in the order) waits for BANK01's bonds; B, after it, delivers them to
    BANK01 when BANK03 is funded. B settles after A's attempt in that block, so A settles
    at the end of the next one, even an empty block: recycling skips only instructions
    nothing can have changed for (the recheck record)."""
    a = txf.signed(txf.pending(quantity=_BIG, amount=5))
    b = txf.signed(txf.pending("BANK03", "BANK01", quantity=_HELD + 50, amount=7))
    run(store, a, b)
    funding = txf.signed(txf.transfer("BANK04", "BANK03", 50, instrument=net.bonds[0]))
    out = run(store, funding, at_ms=2_000)
    assert events(out) == [(tid(b), RC.OK)]
    assert events(run(store, at_ms=3_000)) == [(tid(a), RC.OK)]
    assert events(run(store, at_ms=4_000)) == []


# --- aimed at the survivors of the settlement.pending mutation run (docs/testing.md) ---


def test_holds_are_per_party_and_idempotent(
    store: MemoryStore, txf: TxFactory, short: bytes
) -> None:
    def held() -> tuple[bool, bool]:
        [(_, _, inst)] = instructions(store)
        return inst.held_by_seller, inst.held_by_buyer

    run(store, txf.signed(txf.hold(tid(short), by="BANK01")))
    assert held() == (True, False)
    run(store, txf.signed(txf.hold(tid(short), by="BANK01")), at_ms=2_000)  # again: still held
    assert held() == (True, False)
    run(store, txf.signed(txf.hold(tid(short), by="BANK02")), at_ms=3_000)
    assert held() == (True, True)
    run(store, txf.signed(txf.release(tid(short), by="BANK01")), at_ms=4_000)
    assert held() == (False, True)


def test_a_cancel_naming_one_party_twice_is_refused(
    store: MemoryStore, txf: TxFactory, short: bytes
) -> None:
    out = run(store, txf.signed(txf.cancel(tid(short), seller="BANK01", buyer="BANK01")))
    assert own(out) == [RC.UNAUTHORIZED] and len(instructions(store)) == 1


def test_a_lot_that_does_not_divide_the_units_is_refused_even_at_an_even_price(
    store: MemoryStore, txf: TxFactory
) -> None:
    raw = txf.signed(txf.pending(quantity=100, amount=9, lot=30))  # 3 lots would price evenly
    assert own(run(store, raw)) == [RC.INVALID_AMOUNT]


def test_ended_instructions_record_only_what_moved(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    """Failed and cancelled trades moved nothing; a partial one that fails keeps its lots."""
    failing = txf.signed(txf.pending(quantity=_BIG, amount=5))
    cancelled = txf.signed(txf.pending("BANK03", "BANK04", quantity=_BIG, amount=5))
    lots = (_HELD + 30) // 10  # at 1 each
    partial = txf.signed(txf.pending("BANK05", "BANK06", quantity=_HELD + 30, amount=lots, lot=10))
    run(store, failing, cancelled, partial)  # BANK05 settles all but 3 lots at once
    run(store, txf.signed(txf.cancel(tid(cancelled), "BANK03", "BANK04")), at_ms=2_000)
    run(store, at_ms=HOUR_MS + 1)
    expected = {
        failing: (RC.FAILED_DEADLINE, 0, 0),
        cancelled: (RC.CANCELLED, 0, 0),
        partial: (RC.FAILED_DEADLINE, _HELD, _HELD // 10),
    }
    for raw, want in expected.items():
        done = outcome(store, tid(raw))
        assert done is not None
        assert (done.code, done.settled_quantity, done.settled_amount) == want


def test_events_of_one_block_point_at_their_own_leaves(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    a = txf.signed(txf.pending(quantity=_BIG, amount=5))
    b = txf.signed(txf.pending("BANK03", "BANK04", quantity=_BIG, amount=5))
    c = txf.signed(txf.pending("BANK05", "BANK06", quantity=_BIG, amount=5))
    run(store, a, b, c)
    funding = [
        txf.signed(txf.transfer("BANK02", seller, 100, instrument=net.bonds[0]))
        for seller in ("BANK01", "BANK03", "BANK05")
    ]
    out = run(store, *funding, at_ms=2_000)
    assert events(out) == [(tid(a), RC.OK), (tid(b), RC.OK), (tid(c), RC.OK)]
    for index, raw in enumerate((a, b, c), start=3):
        done = outcome(store, tid(raw))
        assert done is not None and (done.height, done.index) == (2, index)
        assert out.results[index].tx_id == tid(raw)


def test_lots_left_after_a_partial_settlement(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    """Three lots of 50; the seller can deliver one: two are left, then one more, then
    the last."""
    seller_units = store.balance("BANK01", net.bonds[0])
    give = txf.signed(txf.transfer("BANK01", "BANK04", seller_units - 50, instrument=net.bonds[0]))
    raw = txf.signed(txf.pending(quantity=150, amount=30, lot=50))
    run(store, give, raw)
    [(_, _, inst)] = instructions(store)
    assert inst.lots_left == 2
    run(store, deliver(txf, net, 50), at_ms=2_000)
    [(_, _, inst)] = instructions(store)
    assert inst.lots_left == 1


def test_the_buyers_cash_limits_a_partial_settlement(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    """Lots of 10 units at 400,000,000 each: the buyer's 1,000,000,000 pays for two."""
    raw = txf.signed(txf.pending(quantity=30, amount=1_200_000_000, lot=10))
    out = run(store, raw)
    assert events(out) == [(tid(raw), RC.PARTIALLY_SETTLED)]
    assert store.balance("BANK02", net.cash) == 1_000_000_000 - 800_000_000
    assert store.balance("BANK02", net.bonds[0]) == _HELD + 20


def test_the_recheck_record_follows_recycling_that_moved(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    """Present after a block whose recycling moved balances, gone after one that did not;
    an event that moves nothing (a failure) sets none."""
    recheck = bytes([RecordKind.PENDING_RECHECK])
    assert store.record(recheck) is None  # recording a trade moves nothing
    second = txf.signed(txf.pending("BANK03", "BANK04", quantity=_BIG, amount=5))
    run(store, deliver(txf, net), second, at_ms=2_000)
    assert store.record(recheck) is not None
    to_bank03 = txf.signed(txf.transfer("BANK05", "BANK03", 200, instrument=net.bonds[0]))
    assert events(run(store, to_bank03, at_ms=2_500)) == [(tid(second), RC.OK)]
    assert store.record(recheck) is not None  # moved again: it stays
    run(store, at_ms=3_000)
    assert store.record(recheck) is None
    run(store, txf.signed(txf.pending(quantity=_BIG, amount=5)), at_ms=4_000)
    run(store, at_ms=HOUR_MS + 1)  # it fails at its deadline
    assert store.record(recheck) is None


def test_a_trade_waiting_when_its_bond_matures_ends_matured_held_or_not() -> None:
    """A matured bond can no longer be delivered in a trade (docs/ledger.md "Maturity"), so
    a pending trade of it ends MATURED at the first block on or after the maturity date,
    even held, and moves nothing; a trade of another bond is untouched."""
    net = life_net()
    bond, bill = net.bonds
    store = MemoryStore(net.genesis)
    txf = TxFactory(net, now_ms=at("2026-02-28"))
    far = at("2026-03-02")
    waiting = txf.signed(txf.pending(bond=bill, quantity=BOND_UNITS + 1, amount=5,
                                     deadline_ms=far, expiry_ms=far))  # fmt: skip
    held = txf.signed(txf.pending(bond=bill, quantity=BOND_UNITS + 2, amount=5,
                                  deadline_ms=far, expiry_ms=far))  # fmt: skip
    other = txf.signed(txf.pending(bond=bond, quantity=BOND_UNITS + 1, amount=5,
                                   deadline_ms=far, expiry_ms=far))  # fmt: skip
    out = run_at(store, at("2026-02-28"), waiting, held, other)
    assert own(out) == [RC.PENDING_SETTLEMENT] * 3
    hold = txf.signed(txf.hold(tid(held), by="BANK01", expiry_ms=far))
    assert own(run_at(store, at("2026-02-28", 1), hold)) == [RC.OK]
    assert events(run_at(store, at("2026-03-01") - 1)) == []  # the day before: still waiting
    out = run_at(store, at("2026-03-01"))
    assert events(out) == [(tid(waiting), RC.MATURED), (tid(held), RC.MATURED)]
    assert out.balances == {}
    assert [i.tx_id for _, _, i in instructions(store)] == [tid(other)]


def test_many_lots_settled_at_once_end_the_trade(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    """1,000,010 lots of 10 units, all settled by one recycling attempt: OK, not a
    partial settlement with nothing left."""
    raw = txf.signed(txf.pending(quantity=_BIG, amount=_BIG // 10, lot=10))
    out = run(store, raw, deliver(txf, net))
    assert events(out) == [(tid(raw), RC.OK)] and instructions(store) == []


# --- session 31: the compliance rules in force when it settles apply --------------------


def _rules(net: DemoNetwork, *, cosign_above: int = 0, trade_max: int = 0) -> ComplianceRules:
    """Rules with one co-signature threshold or one per-trade limit (every tier)."""
    limits = [TierLimit(t, net.cash, trade_max) for t in (1, 2, 3)] if trade_max else []
    above = {net.cash: cosign_above} if cosign_above else {}
    return ComplianceRules.of({}, limits, above)


def _govern(txf: TxFactory, net: DemoNetwork, rules: ComplianceRules) -> bytes:
    return gov_signed(net, set_rules(txf, rules))


@pytest.mark.parametrize(
    ("rules", "code"),
    [
        ({"cosign_above": 4_999}, RC.COSIGN_REQUIRED),
        ({"cosign_above": 5_000}, RC.OK),  # control: the amount is not above it
        ({"trade_max": 4_999}, RC.TRADE_LIMIT),
        ({"trade_max": 5_000}, RC.OK),  # control: within the limit
    ],
)
def test_an_instruction_recorded_under_old_rules_meets_the_rules_in_force_when_it_settles(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes, *,
    rules: dict[str, int], code: ResultCode,
) -> None:  # fmt: skip
    """A 5,000-cent pending DvP recorded with no co-signer and no limit; governance then
    puts a threshold or a per-trade limit in force, and the units arrive in the same
    block. The rules of the day it settles apply, as to a new trade: above them it ends
    with their code and nothing moves (before, recycling settled it); within, it settles."""
    bond_before = store.balance("BANK02", net.bonds[0])
    out = run(store, _govern(txf, net, _rules(net, **rules)), deliver(txf, net), at_ms=2_000)
    assert own(out) == [RC.OK, RC.OK]
    assert events(out) == [(tid(short), code)]
    assert instructions(store) == []
    found = outcome(store, tid(short))
    assert found is not None and found.code is code
    moved = store.balance("BANK02", net.bonds[0]) - bond_before
    assert moved == (_BIG if code is RC.OK else 0)


def test_a_co_signed_instruction_settles_under_a_threshold_lowered_after_it(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    """The co-signer is kept with the instruction (it signed the trade): a threshold put
    in force later is met. Its record round-trips, and one without a co-signer encodes as
    before (nothing appended)."""
    raw = txf.signed(txf.pending(quantity=_BIG, amount=5_000, cosigner="COMPLIANCE"))
    assert own(run(store, raw)) == [RC.PENDING_SETTLEMENT]
    [(_, _, inst)] = instructions(store)
    assert inst.cosigner == "COMPLIANCE"
    assert _pending.Instruction.decode(inst.encode()) == inst
    bare = replace(inst, cosigner="")
    assert _pending.Instruction.decode(bare.encode()) == bare
    assert len(bare.encode()) == len(inst.encode()) - 1 - len("COMPLIANCE")
    out = run(store, _govern(txf, net, _rules(net, cosign_above=1)), deliver(txf, net))
    assert events(out) == [(tid(raw), RC.OK)]


def test_a_pending_dvp_refused_by_the_new_rules_records_no_default(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: bytes
) -> None:
    """A rule change is nobody's default: a pledge securing the trade stays unclaimable."""
    out = run(store, _govern(txf, net, _rules(net, trade_max=1)), at_ms=2_000)
    assert events(out) == [(tid(short), RC.TRADE_LIMIT)]
    assert list(store.records(bytes([RecordKind.LOCK_DEFAULT]))) == []


@pytest.mark.parametrize(
    ("code", "waiting"),
    [(RC.COSIGN_REQUIRED, False), (RC.TRADE_LIMIT, False), (RC.PARTIALLY_SETTLED, True)],
)
def test_a_refusal_under_the_rules_in_force_is_a_final_event_for_receipts(
    code: ResultCode, waiting: bool
) -> None:
    """``wait_settled`` and ``ledger submit --wait-settled`` stop at a final event: the two
    codes recycling may now end an instruction with are final (PARTIALLY_SETTLED, the
    control, is not)."""
    event = EventProof(code, 2, 1, 2, b"", b"", ())
    receipt = Receipt(
        b"\0" * 32, RC.PENDING_SETTLEMENT, 1, 0, b"", 0, b"", b"", b"", (), None, event
    )
    assert receipt.waiting is waiting
