"""Locks and swaps (issue 18 items 1 and 4; docs/ledger.md "Locks and swaps"): one rule
per test, each with its negative control (the same debit going through once the lock is
released, or a lock that does not cover it). Codes are named, never numbered.

Every demo bank starts with 10,000,000 units of each bond and 1,000,000,000 of cash.
"""

from __future__ import annotations

import pytest

from node.genesis import DemoNetwork
from node.invariant import InvariantError
from node.settlement import (
    BlockOutcome,
    ClaimLock,
    Lock,
    ReleaseLock,
    ResultCode,
    Secured,
    SecuredKind,
    SignedTx,
    Swap,
    available,
    decode_body,
    encode_body,
    locked,
    locks,
    precheck,
)
from node.settlement import _lock as lock_mod
from node.settlement._codec import DecodeError, Writer
from node.settlement._state import Overlay
from node.store import MemoryStore, Storage
from tests.freeze_helpers import freeze
from tests.ledger_helpers import HOUR_MS, TxFactory
from tests.ledger_helpers import run_block as run
from tests.life_helpers import BOND_UNITS, LifeTx, at, life_net, run_at
from tests.lock_helpers import claim, lock, release, swap

RC = ResultCode
_HELD = 10_000_000
_CASH = 1_000_000_000


def own(out: BlockOutcome) -> list[ResultCode]:
    return [r.code for r in out.results if not r.event]


def events(out: BlockOutcome) -> list[ResultCode]:
    return [r.code for r in out.results if r.event]


def tid(raw: bytes) -> bytes:
    return SignedTx.decode(raw).tx_id


def bal(store: Storage, net: DemoNetwork) -> dict[tuple[str, str], int]:
    ids = (*net.bonds, net.cash)
    return {(b, i): store.balance(b, i) for b in ("BANK01", "BANK02", "BANK03") for i in ids}


# --- locking ---------------------------------------------------------------------------


def test_a_lock_keeps_the_units_in_the_balance_but_not_available(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    raw = lock(txf, amount=1_000)
    out = run(store, raw, at_ms=5_000)
    assert own(out) == [RC.OK]
    assert store.balance("BANK01", net.bonds[0]) == _HELD
    assert locked(store, "BANK01", net.bonds[0]) == 1_000
    assert available(Overlay(store), "BANK01", net.bonds[0]) == _HELD - 1_000
    (rec,) = locks(store)
    assert (rec.lock_id, rec.holder, rec.beneficiary, rec.amount) == (
        tid(raw),
        "BANK01",
        "BANK02",
        1_000,
    )
    assert (rec.height, rec.time_ms) == (1, store.genesis.genesis_time_ms + 5_000)
    assert locked(store, "BANK02", net.bonds[0]) == 0  # control: only the holder's


def test_spending_locked_units_is_locked_and_moves_nothing(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    bond = net.bonds[0]
    run(store, lock(txf, amount=_HELD - 10))
    before = bal(store, net)
    out = run(
        store,
        txf.signed(txf.transfer("BANK01", "BANK03", 11, instrument=bond)),
        txf.signed(txf.dvp("BANK01", "BANK03", quantity=11, amount=5)),
        txf.signed(txf.burn("BANK01", 11)),
    )
    assert own(out) == [RC.LOCKED, RC.LOCKED, RC.LOCKED]
    assert bal(store, net) == before
    # control: the available ten move; more than the balance is still a shortfall
    out = run(
        store,
        txf.signed(txf.transfer("BANK01", "BANK03", 10, instrument=bond)),
        txf.signed(txf.transfer("BANK01", "BANK03", _HELD + 1, instrument=bond)),
    )
    assert own(out) == [RC.OK, RC.INSUFFICIENT_SECURITIES]


def test_locked_cash_is_locked_for_the_buyer_of_a_dvp(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, lock(txf, "BANK02", _CASH, "BANK03", instrument=net.cash))
    out = run(store, txf.signed(txf.dvp(amount=1)))
    assert own(out) == [RC.LOCKED]
    run(store, release(txf, _last_lock(store), by="BANK03", holder="BANK02"))
    assert own(run(store, txf.signed(txf.dvp(amount=1)))) == [RC.OK]  # control


def _last_lock(store: Storage) -> bytes:
    """The only lock's id."""
    (rec,) = locks(store)
    return rec.lock_id


def test_lock_terms_are_checked(store: MemoryStore, txf: TxFactory, net: DemoNetwork) -> None:
    t0, bill = txf.t0, net.bonds[1]  # the bill matures 2027-05-20
    out = run(
        store,
        lock(txf, amount=0),
        lock(txf, beneficiary="BANK01"),
        lock(txf, until_ms=t0 + 1_000),  # not after the block time
        lock(txf, instrument=bill, until_ms=t0 + 2 * 365 * 24 * HOUR_MS),  # past maturity
        lock(txf, instrument="NOPE"),
        lock(txf, "BANK01", _HELD + 1),
        at_ms=1_000,
    )
    assert own(out) == [
        RC.INVALID_AMOUNT,
        RC.SELF_TRADE,
        RC.INVALID_LOCK_TERMS,
        RC.INVALID_LOCK_TERMS,
        RC.UNKNOWN_INSTRUMENT,
        RC.INSUFFICIENT_SECURITIES,
    ]
    assert locks(store) == []
    out = run(store, lock(txf, until_ms=t0 + 1_001), lock(txf, instrument=bill), at_ms=1_000)
    assert own(out) == [RC.OK, RC.OK]  # control: until just after the block time


def test_a_lock_beyond_the_available_units_is_locked(store: MemoryStore, txf: TxFactory) -> None:
    out = run(store, lock(txf, amount=_HELD - 5), lock(txf, amount=6), lock(txf, amount=5))
    assert own(out) == [RC.OK, RC.LOCKED, RC.OK]
    assert len(locks(store)) == 2


def test_a_frozen_holding_cannot_be_locked(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, freeze(txf, "BANK01", net.bonds[0]))
    assert own(run(store, lock(txf), lock(txf, instrument=net.bonds[1]))) == [RC.FROZEN, RC.OK]


def test_locks_per_holder_are_bounded(
    store: MemoryStore, txf: TxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lock_mod, "LOCKS_PER_HOLDER_MAX", 2)
    out = run(store, lock(txf), lock(txf), lock(txf), lock(txf, "BANK03"))
    assert own(out) == [RC.OK, RC.OK, RC.LOCKS_FULL, RC.OK]  # control: another holder
    run(store, release(txf, lock(txf), by="BANK02"))  # not a lock: nothing freed
    first = locks(store)[0]
    assert own(
        run(store, release(txf, first.lock_id, by=first.beneficiary, holder=first.holder))
    ) == [RC.OK]
    assert own(run(store, lock(txf))) == [RC.OK]


# --- releasing -------------------------------------------------------------------------


def test_the_beneficiary_releases_at_any_time_and_the_units_are_available_again(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    raw = lock(txf, amount=_HELD)
    run(store, raw)
    spend = txf.signed(txf.transfer("BANK01", "BANK03", 1, instrument=net.bonds[0]))
    assert own(run(store, spend)) == [RC.LOCKED]
    out = run(store, release(txf, raw, by="BANK02"), release(txf, raw, by="BANK02"))
    assert own(out) == [RC.OK, RC.NO_SUCH_LOCK]  # once
    assert locks(store) == [] and locked(store, "BANK01", net.bonds[0]) == 0
    spend = txf.signed(txf.transfer("BANK01", "BANK03", 1, instrument=net.bonds[0]))
    assert own(run(store, spend)) == [RC.OK]


def test_the_holder_releases_only_after_until(store: MemoryStore, txf: TxFactory) -> None:
    raw = lock(txf, until_ms=txf.t0 + 10_000)
    run(store, raw)
    out = run(store, release(txf, raw, by="BANK01"), release(txf, raw, by="BANK03"), at_ms=10_000)
    assert own(out) == [RC.LOCK_IN_FORCE, RC.UNAUTHORIZED]
    assert own(run(store, release(txf, raw, by="BANK01"), at_ms=10_001)) == [RC.OK]


# --- claiming --------------------------------------------------------------------------


def _secured_trade(store: MemoryStore, txf: TxFactory, net: DemoNetwork) -> tuple[bytes, bytes]:
    """BANK02 buys with 100 more cash than it has (pending, deadline at t0 + 10 s) and
    pledges 5,000 of its second bond to the seller, BANK01, against it: (trade, lock)."""
    trade = txf.signed(txf.pending(quantity=1_000, amount=_CASH + 100, deadline_ms=txf.t0 + 10_000))
    pledge = lock(txf, "BANK02", 5_000, "BANK01", instrument=net.bonds[1], secures=tid(trade))
    assert own(run(store, trade, pledge)) == [RC.PENDING_SETTLEMENT, RC.OK]
    return trade, pledge


def test_a_claim_after_the_holder_failed_a_pending_dvp_moves_the_locked_units(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    _, pledge = _secured_trade(store, txf, net)
    bill = net.bonds[1]
    early = run(store, claim(txf, pledge, "BANK01"), at_ms=5_000)
    assert own(early) == [RC.NOT_CLAIMABLE]  # control: no default yet
    assert events(run(store, at_ms=10_001)) == [RC.FAILED_DEADLINE]
    out = run(store, claim(txf, pledge, "BANK03"), claim(txf, pledge, "BANK01"), at_ms=11_000)
    assert own(out) == [RC.UNAUTHORIZED, RC.OK]  # only the beneficiary claims
    assert store.balance("BANK01", bill) == _HELD + 5_000
    assert store.balance("BANK02", bill) == _HELD - 5_000
    assert locks(store) == [] and locked(store, "BANK02", bill) == 0
    assert own(run(store, claim(txf, pledge, "BANK01"), at_ms=12_000)) == [RC.NO_SUCH_LOCK]


def test_no_claim_when_the_holder_delivered_and_the_other_party_failed(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    # The seller (BANK01) is the one short; the buyer (BANK02) pledged and could pay.
    trade = txf.signed(txf.pending(quantity=_HELD + 1, amount=10, deadline_ms=txf.t0 + 10_000))
    pledge = lock(txf, "BANK02", 5_000, "BANK01", instrument=net.bonds[1], secures=tid(trade))
    assert own(run(store, trade, pledge)) == [RC.PENDING_SETTLEMENT, RC.OK]
    assert events(run(store, at_ms=10_001)) == [RC.FAILED_DEADLINE]
    assert own(run(store, claim(txf, pledge, "BANK01"), at_ms=11_000)) == [RC.NOT_CLAIMABLE]


def test_a_hold_at_the_deadline_is_a_default_by_the_party_that_held(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    trade = txf.signed(txf.pending(quantity=_HELD + 1, amount=10, deadline_ms=txf.t0 + 10_000))
    pledge = lock(txf, "BANK02", 5_000, "BANK01", instrument=net.bonds[1], secures=tid(trade))
    run(store, trade, pledge, txf.signed(txf.hold(tid(trade), by="BANK02")))
    run(store, at_ms=10_001)
    assert own(run(store, claim(txf, pledge, "BANK01"), at_ms=11_000)) == [RC.OK]


def test_a_plain_or_lapsed_lock_is_not_claimable(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    _, pledge = _secured_trade(store, txf, net)
    plain = lock(txf, "BANK02", 5, "BANK01")
    run(store, plain, at_ms=10_001)  # the trade fails here
    assert own(run(store, claim(txf, plain, "BANK01"), at_ms=11_000)) == [RC.NOT_CLAIMABLE]
    late = claim(txf, pledge, "BANK01", expiry_ms=txf.t0 + 2 * HOUR_MS)
    assert own(run(store, late, at_ms=HOUR_MS + 1)) == [RC.NOT_CLAIMABLE]  # lapsed
    assert len(locks(store)) == 2


def test_a_claim_into_a_frozen_holding_is_frozen(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    _, pledge = _secured_trade(store, txf, net)
    run(store, freeze(txf, "BANK01", net.bonds[1]), at_ms=10_001)
    assert own(run(store, claim(txf, pledge, "BANK01"), at_ms=11_000)) == [RC.FROZEN]
    assert len(locks(store)) == 1


def test_a_lock_securing_a_trade_names_a_live_trade_between_its_parties(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    trade = txf.signed(txf.pending(quantity=1_000, amount=_CASH + 100))
    settled = txf.signed(txf.dvp())
    run(store, trade, settled)
    out = run(
        store,
        lock(txf, "BANK02", 5, "BANK01", secures=tid(settled)),
        lock(txf, "BANK02", 5, "BANK03", secures=tid(trade)),
        lock(txf, "BANK02", 5, "BANK01", secures=b"\x01" * 32),
        lock(txf, "BANK02", 5, "BANK01", secures=tid(trade)),
    )
    assert own(out) == [RC.NOT_PENDING, RC.INVALID_LOCK_TERMS, RC.NOT_PENDING, RC.OK]


# --- the available balance elsewhere ----------------------------------------------------


def test_a_pending_dvp_waits_for_locked_units_and_settles_on_the_release(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    pledge = lock(txf, amount=_HELD)
    run(store, pledge)
    trade = txf.signed(txf.pending(quantity=100, amount=50))
    assert own(run(store, trade)) == [RC.PENDING_SETTLEMENT]
    assert events(run(store, txf.signed(txf.transfer("BANK03", "BANK04", 1)))) == []
    out = run(store, release(txf, pledge, by="BANK02"))
    assert events(out) == [RC.OK]  # the release alone (no balance written) re-attempts it
    assert store.balance("BANK02", net.bonds[0]) == _HELD + 100


def test_recycling_settles_only_from_the_available_balance(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, lock(txf, amount=_HELD))
    trade = txf.signed(txf.pending(quantity=100, amount=50))
    assert own(run(store, trade)) == [RC.PENDING_SETTLEMENT]
    deliver = txf.signed(txf.transfer("BANK03", "BANK01", 99, instrument=net.bonds[0]))
    assert events(run(store, deliver)) == []  # re-attempted: 99 available, 100 due
    assert locked(store, "BANK01", net.bonds[0]) == _HELD
    deliver = txf.signed(txf.transfer("BANK03", "BANK01", 1, instrument=net.bonds[0]))
    assert events(run(store, deliver)) == [RC.OK]  # control: now 100 are available
    assert store.balance("BANK01", net.bonds[0]) == _HELD


def test_redemption_of_a_holding_with_locked_units_waits_for_the_release() -> None:
    net = life_net()
    store, txf, ltx = MemoryStore(net.genesis), TxFactory(net, now_ms=at("2026-01-20")), LifeTx(net)
    bill = net.bonds[1]  # matures 2026-03-01
    pledge = lock(txf, amount=10, instrument=bill, until_ms=at("2026-02-01"))
    assert [r.code for r in run_at(store, at("2026-01-20"), pledge).results] == [RC.OK]
    out = run_at(store, at("2026-03-01"), ltx.redeem_all(bill), ltx.redeem("BANK01", bill))
    assert [r.code for r in out.results] == [RC.OK, RC.LOCKED]
    assert store.balance("BANK01", bill) == BOND_UNITS  # skipped, still there
    assert store.balance("BANK02", bill) == 0  # control: the others redeemed
    late = release(txf, pledge, by="BANK01", expiry_ms=2**63)  # lapsed: the holder alone
    out = run_at(store, at("2026-03-02"), late, ltx.redeem("BANK01", bill))
    assert [r.code for r in out.results] == [RC.OK, RC.OK]
    assert store.balance("BANK01", bill) == 0


def test_a_paying_agent_cannot_pay_coupons_from_locked_cash() -> None:
    net = life_net()
    store, txf, ltx = MemoryStore(net.genesis), TxFactory(net, now_ms=at("2026-01-20")), LifeTx(net)
    agent_cash = store.balance("TREASURY", net.cash)
    pledge = lock(
        txf, "TREASURY", agent_cash, "BANK03", instrument=net.cash, until_ms=at("2026-08-01")
    )
    run_at(store, at("2026-01-20"), pledge)
    assert [r.code for r in run_at(store, at("2026-07-15"), ltx.coupon(1)).results] == [RC.LOCKED]
    run_at(store, at("2026-07-15", 1), release(txf, pledge, by="BANK03", expiry_ms=2**63))
    out = run_at(store, at("2026-07-15", 2), ltx.coupon(1))
    assert [r.code for r in out.results] == [RC.OK]  # control


def test_the_available_balance_check_is_fail_stop(store: MemoryStore, net: DemoNetwork) -> None:
    """More locked than held can only be a bug: the node halts rather than trade on it."""
    o = Overlay(store)
    o.put_record(bytes([97]) + b"BANK01".ljust(64, b"\0") + net.cash.encode().ljust(64, b"\0"),
                 Writer().u64(_CASH + 1).finish())  # fmt: skip
    with pytest.raises(InvariantError):
        available(o, "BANK01", net.cash)


# --- swaps -----------------------------------------------------------------------------


def test_a_swap_moves_both_bonds(store: MemoryStore, txf: TxFactory, net: DemoNetwork) -> None:
    a, b = net.bonds
    assert own(run(store, swap(txf, quantity_a=100, quantity_b=90))) == [RC.OK]
    assert (store.balance("BANK01", a), store.balance("BANK01", b)) == (_HELD - 100, _HELD + 90)
    assert (store.balance("BANK02", a), store.balance("BANK02", b)) == (_HELD + 100, _HELD - 90)


def test_a_swap_moves_neither_leg_unless_both_can(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, lock(txf, "BANK02", _HELD, "BANK03", instrument=net.bonds[1]))
    before = bal(store, net)
    out = run(
        store,
        swap(txf),  # BANK02's leg is locked
        swap(txf, quantity_a=_HELD + 1),  # BANK01's leg is short
        swap(txf, party_b="BANK01"),
        swap(txf, instrument_b=net.bonds[0]),
        swap(txf, instrument_b=net.cash),
        swap(txf, deadline_ms=txf.t0 + 500),
        swap(txf, quantity_b=0),
    )
    assert own(out) == [
        RC.LOCKED,
        RC.INSUFFICIENT_SECURITIES,
        RC.SELF_TRADE,
        RC.SAME_INSTRUMENT,
        RC.WRONG_INSTRUMENT_KIND,
        RC.DEADLINE_PASSED,
        RC.INVALID_AMOUNT,
    ]
    assert bal(store, net) == before
    assert own(run(store, swap(txf, party_b="BANK03"))) == [RC.OK]  # control


def test_a_swap_touching_a_frozen_holding_is_frozen(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, freeze(txf, "BANK02", net.bonds[0]))  # BANK02 would receive it
    assert own(run(store, swap(txf), swap(txf, party_b="BANK03"))) == [RC.FROZEN, RC.OK]


def test_precheck_refuses_a_swap_past_its_deadline(store: MemoryStore, txf: TxFactory) -> None:
    raw = swap(txf, deadline_ms=txf.t0 + 500)
    reg = Overlay(store).registry
    assert precheck(reg, raw, now_ms=txf.t0 + 501).code is RC.DEADLINE_PASSED
    assert precheck(reg, raw, now_ms=txf.t0 + 500).code is RC.OK  # control


# --- encoding --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tx",
    [
        Lock("c", 1, 2, "A", "I", 3, "B", 4),
        Lock("c", 1, 2, "A", "I", 3, "B", 4, Secured(SecuredKind.PENDING_DVP, b"\x07" * 32)),
        ReleaseLock("c", 1, 2, b"\x01" * 32, "A", "B"),
        ClaimLock("c", 1, 2, b"\x01" * 32, "A", "B", "I", 7),
        Swap("c", 1, 2, "A", "I", 3, "B", "J", 4, 5),
    ],
)
def test_lock_kinds_round_trip(tx: Lock | ReleaseLock | ClaimLock | Swap) -> None:
    assert decode_body(encode_body(tx)) == tx


def test_a_secured_reference_is_canonical() -> None:
    body = encode_body(Lock("c", 1, 2, "A", "I", 3, "B", 4))
    assert body.endswith(b"\x00" + b"\0\0\0\0")  # kind NONE, empty ref
    with pytest.raises(DecodeError):
        decode_body(body[:-5] + b"\x09" + b"\0\0\0\0")  # unknown kind
    with pytest.raises(DecodeError):
        decode_body(body[:-5] + b"\x00" + b"\0\0\0\x01" + b"x")  # NONE with an id
    with pytest.raises(DecodeError):
        decode_body(body[:-5] + b"\x01" + b"\0\0\0\0")  # a kind without its id
    with pytest.raises(ValueError):
        encode_body(Lock("c", 1, 2, "A", "I", 3, "B", 4, Secured(SecuredKind.PENDING_DVP)))


def test_a_release_or_claim_naming_other_terms_names_no_lock(
    store: MemoryStore, txf: TxFactory
) -> None:
    raw = lock(txf)
    run(store, raw)
    out = run(
        store,
        release(txf, raw, holder="BANK03"),
        claim(txf, raw, holder="BANK03"),
        claim(txf, raw, amount=999),
        claim(txf, raw, instrument=txf.net.bonds[1]),
        claim(txf, raw),  # control: the lock's own terms get to the default check
    )
    assert own(out) == [RC.NO_SUCH_LOCK] * 4 + [RC.NOT_CLAIMABLE]
    assert own(run(store, release(txf, raw))) == [RC.OK]  # control: the right holder


def test_the_holder_is_a_party_to_the_release_and_the_claim_of_its_lock(
    store: MemoryStore, txf: TxFactory
) -> None:
    """Access (node/access.py): the holder reads the transactions that end its lock (a
    claim moves its units), so their bodies name it."""
    from node.access import tx_parties

    raw = lock(txf, "BANK01", beneficiary="BANK02")
    reg = Overlay(store).registry
    for tx in (release(txf, raw), claim(txf, raw)):
        assert tx_parties(tx, reg) == {"BANK01", "BANK02"}
    assert tx_parties(swap(txf, "BANK03", party_b="BANK04"), reg) == {"BANK03", "BANK04"}


def test_a_cash_claim_above_the_aml_threshold_needs_a_compliance_cosigner() -> None:
    """kyc (docs/ledger.md "KYC tiers and AML"): a claim moves value like a transfer."""
    from node.genesis import DEMO_COSIGN_ABOVE_CENTS, demo_genesis

    net = demo_genesis(validators=4, quorum=3, seed=b"tests", compliance=True)
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    big = DEMO_COSIGN_ABOVE_CENTS + 1
    trade = txf.signed(txf.pending(quantity=_HELD + 1, amount=10, deadline_ms=txf.t0 + 10_000))
    pledge = lock(txf, "BANK01", big, "BANK02", instrument=net.cash, secures=tid(trade))
    assert own(run(store, trade, pledge)) == [RC.PENDING_SETTLEMENT, RC.OK]
    run(store, at_ms=10_001)  # the seller fails to deliver
    alone = claim(txf, pledge, "BANK02")
    signed = claim(txf, pledge, "BANK02", cosigner="COMPLIANCE")
    out = run(store, alone, signed, at_ms=11_000)
    assert own(out) == [RC.COSIGN_REQUIRED, RC.OK]
    assert store.balance("BANK02", net.cash) == _CASH + big
    reg = Overlay(store).registry
    bad = claim(txf, pledge, "BANK02", cosigner="BANK03")
    assert precheck(reg, bad).code is RC.COSIGN_REQUIRED  # not a compliance participant


def _limited(
    trade_max: int, day_max: int, cash_tier: int = 0
) -> tuple[DemoNetwork, MemoryStore, TxFactory]:
    """``tier2_limited``'s network with its store and transaction factory."""
    from tests.kyc_helpers import tier2_limited

    net = tier2_limited(trade_max, day_max, cash_tier=cash_tier)
    return net, MemoryStore(net.genesis), TxFactory(net)


def test_a_cash_pledge_counts_against_both_parties_limits_when_it_is_made() -> None:
    """ADR 0023: a lock is checked and counted as the move its claim would make, so the
    claim can be exempt from the limits (the holder cannot spend them to make it fail).
    Above the per-trade limit: TRADE_LIMIT; the day's volume of both parties grows by the
    pledge, released or not, and the next lock beyond the day is DAILY_LIMIT. A bond
    pledge has no value and counts nothing (the control)."""
    from node.settlement._compliance import day_total

    net, store, txf = _limited(5_000, 8_000)
    big = lock(txf, "BANK01", 5_001, "BANK02", instrument=net.cash)
    first = lock(txf, "BANK01", 5_000, "BANK02", instrument=net.cash)
    bonds = lock(txf, "BANK01", 9_000, "BANK02")
    assert own(run(store, big, first, bonds)) == [RC.TRADE_LIMIT, RC.OK, RC.OK]
    o = Overlay(store)
    assert [day_total(o, p, net.cash, txf.t0) for p in ("BANK01", "BANK02")] == [5_000, 5_000]
    run(store, release(txf, first))  # the beneficiary releases it: the day keeps it
    again = lock(txf, "BANK02", 3_001, "BANK03", instrument=net.cash)
    within = lock(txf, "BANK02", 3_000, "BANK03", instrument=net.cash)
    assert own(run(store, again, within)) == [RC.DAILY_LIMIT, RC.OK]


def test_a_claim_is_exempt_from_the_limits_but_not_from_the_tier_to_hold() -> None:
    """The claim of a pledge counted when it was made moves it even when both parties'
    day is full, and counts nothing more; the beneficiary must still be allowed to hold
    what it receives (a demotion since the lock: TIER_TOO_LOW, nothing moves)."""
    from node.settlement._compliance import day_total
    from tests.gov_helpers import set_tier, signed

    net, store, txf = _limited(5_000, 5_000)
    trade = txf.signed(txf.pending(quantity=_HELD + 1, amount=10, deadline_ms=txf.t0 + 10_000))
    pledge = lock(txf, "BANK01", 5_000, "BANK02", instrument=net.cash, secures=tid(trade))
    assert own(run(store, trade, pledge)) == [RC.PENDING_SETTLEMENT, RC.OK]
    run(store, at_ms=10_001)  # BANK01 fails to deliver
    full = [day_total(Overlay(store), p, net.cash, txf.t0 + 11_000) for p in ("BANK01", "BANK02")]
    assert full == [5_000, 5_000]
    before = store.balance("BANK02", net.cash)
    assert own(run(store, claim(txf, pledge, "BANK02"), at_ms=11_000)) == [RC.OK]
    assert store.balance("BANK02", net.cash) == before + 5_000
    after = [day_total(Overlay(store), p, net.cash, txf.t0 + 11_000) for p in ("BANK01", "BANK02")]
    assert after == full
    # The control: a second such pledge, its beneficiary demoted below the cash's tier.
    net, store, txf = _limited(5_000, 10_000, cash_tier=2)
    trade = txf.signed(txf.pending(quantity=_HELD + 1, amount=10, deadline_ms=txf.t0 + 10_000))
    pledge = lock(txf, "BANK01", 5_000, "BANK02", instrument=net.cash, secures=tid(trade))
    assert own(run(store, trade, pledge)) == [RC.PENDING_SETTLEMENT, RC.OK]
    run(store, signed(net, set_tier(txf, "BANK02", 1)), at_ms=10_001)
    assert own(run(store, claim(txf, pledge, "BANK02"), at_ms=11_000)) == [RC.TIER_TOO_LOW]
