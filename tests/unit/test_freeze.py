"""Freezes (issue 15 item 3; docs/ledger.md "Freezes"): one rule per test, each with its
negative control (the same transaction going through when nothing, or something else, is
frozen). Codes are named, never numbered.
"""

from __future__ import annotations

import pytest

from node.config import ID_BYTES_MAX, PENDING_AGE_MAX_MS
from node.genesis import DemoNetwork
from node.invariant import InvariantError
from node.settlement import (
    BlockContext,
    BlockOutcome,
    Freeze,
    FreezeReason,
    FreezeRecord,
    RecordKind,
    ResultCode,
    SignedTx,
    Unfreeze,
    _freeze,
    apply_block,
    decode_body,
    encode_body,
    freezes,
    precheck,
)
from node.settlement._codec import Writer
from node.settlement._state import Overlay
from node.store import MemoryStore
from tests.freeze_helpers import freeze, unfreeze
from tests.ledger_helpers import CountingView, TxFactory
from tests.ledger_helpers import run_block as run
from tests.life_helpers import AGENT, BOND_UNITS, LifeTx, at, life_net, run_at

RC = ResultCode
_HELD = 10_000_000  # every demo bank's genesis holding of each bond
_LATER = 2**63  # lifecycle tests jump months ahead


def own(out: BlockOutcome) -> list[ResultCode]:
    return [r.code for r in out.results if not r.event]


def events(out: BlockOutcome) -> list[ResultCode]:
    return [r.code for r in out.results if r.event]


def tid(raw: bytes) -> bytes:
    return SignedTx.decode(raw).tx_id


# --- freezing and unfreezing ------------------------------------------------------------


def test_a_regulator_freezes_an_account_and_the_record_says_who_when_and_why(
    store: MemoryStore, txf: TxFactory
) -> None:
    assert freezes(store) == []
    out = run(store, freeze(txf, "BANK01", reason=FreezeReason.COURT_ORDER), at_ms=5_000)
    assert own(out) == [RC.OK]
    (rec,) = freezes(store)
    assert (rec.account, rec.instrument, rec.reason, rec.by) == (
        "BANK01",
        "",
        FreezeReason.COURT_ORDER,
        "REGULATOR",
    )
    assert (rec.height, rec.time_ms) == (1, store.genesis.genesis_time_ms + 5_000)
    assert own(run(store, unfreeze(txf, "BANK01"))) == [RC.OK]
    assert freezes(store) == []


def test_freezes_list_an_account_before_its_holdings(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, freeze(txf, "BANK02", net.cash), freeze(txf, "BANK02"), freeze(txf, "BANK01"))
    assert [(f.account, f.instrument) for f in freezes(store)] == [
        ("BANK01", ""),
        ("BANK02", ""),
        ("BANK02", net.cash),
    ]


def test_freezing_twice_is_already_frozen_and_keeps_the_first_reason(
    store: MemoryStore, txf: TxFactory
) -> None:
    out = run(
        store,
        freeze(txf, "BANK01", reason=FreezeReason.FRAUD),
        freeze(txf, "BANK01", reason=FreezeReason.OTHER),
    )
    assert own(out) == [RC.OK, RC.ALREADY_FROZEN]
    assert [f.reason for f in freezes(store)] == [FreezeReason.FRAUD]


def test_an_account_freeze_and_a_holding_freeze_are_separate_targets(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    out = run(store, freeze(txf, "BANK01"), freeze(txf, "BANK01", net.cash))
    assert own(out) == [RC.OK, RC.OK]
    assert own(run(store, unfreeze(txf, "BANK01"))) == [RC.OK]
    assert own(run(store, txf.signed(txf.transfer("BANK01", "BANK02")))) == [RC.FROZEN]


def test_unfreezing_what_is_not_frozen_is_not_frozen(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, freeze(txf, "BANK01"))
    out = run(store, unfreeze(txf, "BANK02"), unfreeze(txf, "BANK01", net.cash))
    assert own(out) == [RC.NOT_FROZEN, RC.NOT_FROZEN]
    assert len(freezes(store)) == 1  # the account freeze stands
    assert own(run(store, unfreeze(txf, "BANK01"), unfreeze(txf, "BANK01"))) == [
        RC.OK,
        RC.NOT_FROZEN,
    ]


def test_unknown_targets_get_their_codes(store: MemoryStore, txf: TxFactory) -> None:
    out = run(store, freeze(txf, "NOBODY"), freeze(txf, "BANK01", "NO.SUCH"))
    assert own(out) == [RC.UNKNOWN_ACCOUNT, RC.UNKNOWN_INSTRUMENT]
    assert freezes(store) == []


def test_the_number_of_freezes_is_bounded(
    store: MemoryStore, txf: TxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_freeze, "FREEZES_MAX", 3)
    first = [freeze(txf, b) for b in ("BANK01", "BANK02", "BANK03", "BANK04")]
    assert own(run(store, *first)) == [RC.OK, RC.OK, RC.OK, RC.FREEZES_FULL]
    # An unfreeze makes room for exactly one more (the count goes down by one, from 3).
    out = run(store, unfreeze(txf, "BANK01"), freeze(txf, "BANK04"), freeze(txf, "BANK05"))
    assert own(out) == [RC.OK, RC.OK, RC.FREEZES_FULL]
    assert [f.account for f in freezes(store)] == ["BANK02", "BANK03", "BANK04"]


def test_a_count_out_of_bounds_is_a_broken_invariant(store: MemoryStore) -> None:
    """The count record is the ledger's own bookkeeping: a negative count fails the node."""
    with pytest.raises(InvariantError):
        _freeze._set_count(Overlay(store), -1)


def test_record_keys_decode_ids_of_the_longest_length() -> None:
    account, instrument = "A" * ID_BYTES_MAX, "B" * ID_BYTES_MAX
    rec = FreezeRecord(account, instrument, FreezeReason.FRAUD, 1, 2, "REGULATOR")
    back = FreezeRecord.decode(_freeze._key(account, instrument), rec.encode())
    assert back == rec
    whole = FreezeRecord.decode(_freeze._key(account, ""), rec.encode())
    assert (whole.account, whole.instrument) == (account, "")


def test_with_nothing_frozen_a_dvp_reads_no_freeze_of_its_legs(
    store: MemoryStore, txf: TxFactory
) -> None:
    view = CountingView(store)
    ctx = BlockContext(1, store.genesis.genesis_time_ms + 1)
    apply_block(view, [txf.signed(txf.dvp())], ctx)  # type: ignore[arg-type]
    baseline = view.reads  # the count record, plus what pending and the rest read
    run(store, freeze(txf, "BANK05"))  # somebody else frozen: the DvP checks its legs
    view = CountingView(store)
    out = apply_block(view, [txf.signed(txf.dvp())], BlockContext(2, ctx.time_ms + 1))  # type: ignore[arg-type]
    assert own(out) == [RC.OK]
    assert view.reads == baseline + 6  # two accounts and four holdings


# --- who may freeze: apply and admission ------------------------------------------------


@pytest.mark.parametrize(
    ("by", "holding", "allowed"),
    [
        ("REGULATOR", False, True),
        ("REGULATOR", True, True),
        ("COMPLIANCE", False, True),
        ("COMPLIANCE", True, False),  # a holding freeze is the regulator's alone
        ("BANK02", False, False),
        ("TREASURY", False, False),
    ],
)
def test_who_may_freeze_at_admission_and_in_a_block(
    store: MemoryStore, txf: TxFactory, *, by: str, holding: bool, allowed: bool
) -> None:
    net = txf.net
    instrument = net.cash if holding else ""
    raws = [freeze(txf, "BANK01", instrument, by=by), unfreeze(txf, "BANK01", instrument, by=by)]
    expected = RC.OK if allowed else RC.UNAUTHORIZED
    assert [precheck(net.genesis, r).code for r in raws] == [expected, expected]
    assert own(run(store, raws[0])) == [expected]
    assert len(freezes(store)) == int(allowed)
    assert own(run(store, raws[1])) == [expected]
    assert freezes(store) == []


def test_a_freeze_by_a_regulator_is_lifted_by_compliance_for_an_account(
    store: MemoryStore, txf: TxFactory
) -> None:
    run(store, freeze(txf, "BANK01", by="REGULATOR"))
    assert own(run(store, unfreeze(txf, "BANK01", by="COMPLIANCE"))) == [RC.OK]


# --- the encoding ------------------------------------------------------------------------


def test_freeze_and_unfreeze_round_trip_and_an_unknown_reason_is_malformed(
    txf: TxFactory, net: DemoNetwork
) -> None:
    for raw in (freeze(txf, "BANK01"), freeze(txf, "BANK01", net.cash), unfreeze(txf, "BANK01")):
        body = SignedTx.decode(raw).body
        tx = decode_body(body)
        assert isinstance(tx, Freeze | Unfreeze)
        assert encode_body(tx) == body
    body = SignedTx.decode(freeze(txf, "BANK01", reason=FreezeReason.OTHER)).body
    assert body[-len("REGULATOR") - 2] == FreezeReason.OTHER  # the reason byte, then `by`
    bad = body[: -len("REGULATOR") - 2] + bytes([0]) + body[-len("REGULATOR") - 1 :]
    stx = SignedTx(bad, ()).with_signature("REGULATOR", net.participant_keys["REGULATOR"])
    assert precheck(net.genesis, stx.encode()).code is RC.MALFORMED
    with pytest.raises(ValueError):
        encode_body(Freeze(txf.chain_id, 1, 2, "BANK01", "", 0, "REGULATOR"))  # type: ignore[arg-type]


def test_the_record_value_is_canonical(store: MemoryStore, txf: TxFactory) -> None:
    run(store, freeze(txf, "BANK01", reason=FreezeReason.KYC_LAPSED), at_ms=7)
    ((_, raw),) = list(store.records(bytes([RecordKind.FREEZE])))
    t = store.genesis.genesis_time_ms + 7
    assert raw == Writer().u8(5).u64(1).u64(t).ident("REGULATOR").finish()


# --- what a freeze blocks ----------------------------------------------------------------


def test_a_frozen_account_neither_sends_nor_receives(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, freeze(txf, "BANK01"))
    before = store.balance("BANK01", net.cash)
    out = run(
        store,
        txf.signed(txf.transfer("BANK01", "BANK02")),
        txf.signed(txf.transfer("BANK02", "BANK01")),
        txf.signed(txf.transfer("BANK02", "BANK03")),  # control: others still move
    )
    assert own(out) == [RC.FROZEN, RC.FROZEN, RC.OK]
    assert store.balance("BANK01", net.cash) == before
    run(store, unfreeze(txf, "BANK01"))
    assert own(run(store, txf.signed(txf.transfer("BANK01", "BANK02")))) == [RC.OK]


def test_a_holding_freeze_blocks_that_instrument_only(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, freeze(txf, "BANK01", net.cash))
    out = run(
        store,
        txf.signed(txf.transfer("BANK01", "BANK02", instrument=net.cash)),
        txf.signed(txf.transfer("BANK02", "BANK01", instrument=net.cash)),
        txf.signed(txf.transfer("BANK01", "BANK02", instrument=net.bonds[0])),
    )
    assert own(out) == [RC.FROZEN, RC.FROZEN, RC.OK]


@pytest.mark.parametrize("holding", ["seller bond", "buyer bond", "buyer cash", "seller cash"])
def test_a_dvp_touching_any_frozen_holding_is_frozen_and_moves_nothing(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, holding: str
) -> None:
    party, what = holding.split()
    account = "BANK01" if party == "seller" else "BANK02"
    instrument = net.bonds[0] if what == "bond" else net.cash
    run(store, freeze(txf, account, instrument))
    keys = [(a, i) for a in ("BANK01", "BANK02") for i in (net.bonds[0], net.cash)]
    before = {k: store.balance(*k) for k in keys}
    assert own(run(store, txf.signed(txf.dvp()))) == [RC.FROZEN]
    assert {k: store.balance(*k) for k in keys} == before
    run(store, unfreeze(txf, account, instrument))
    assert own(run(store, txf.signed(txf.dvp()))) == [RC.OK]


def test_frozen_comes_after_unauthorized_and_before_the_balances(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, freeze(txf, "BANK01"))
    out = run(
        store,
        txf.signed(txf.transfer("BANK01", "REGULATOR")),  # a regulator may not hold
        txf.signed(txf.transfer("BANK01", "BANK02", amount=10**15)),  # short, but frozen
        txf.signed(txf.dvp(quantity=10**12)),
    )
    assert own(out) == [RC.UNAUTHORIZED, RC.FROZEN, RC.FROZEN]


def test_no_mint_to_and_no_burn_from_a_frozen_holding(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, freeze(txf, "BANK01", net.bonds[0]))
    supply = store.supply(net.bonds[0])
    out = run(
        store,
        txf.signed(txf.mint("BANK01")),
        txf.signed(txf.burn("BANK01")),
        txf.signed(txf.mint("BANK02")),  # control
    )
    assert own(out) == [RC.FROZEN, RC.FROZEN, RC.OK]
    assert store.supply(net.bonds[0]) == supply + 1_000


# --- pending trades -----------------------------------------------------------------------


def test_a_pending_trade_of_a_frozen_party_is_refused_at_once(
    store: MemoryStore, txf: TxFactory
) -> None:
    run(store, freeze(txf, "BANK02"))
    raw = txf.signed(txf.pending(quantity=_HELD + 100, amount=5_000))
    assert own(run(store, raw)) == [RC.FROZEN]  # final: not kept pending


def test_a_frozen_partys_pending_trade_waits_and_settles_after_the_unfreeze(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    raw = txf.signed(txf.pending(quantity=_HELD + 100, amount=5_000))
    assert own(run(store, raw)) == [RC.PENDING_SETTLEMENT]
    run(store, freeze(txf, "BANK02", net.cash))
    deliver = txf.signed(txf.transfer("BANK03", "BANK01", 100, instrument=net.bonds[0]))
    out = run(store, deliver)  # funds the trade: it would settle now, but waits frozen
    assert (own(out), events(out)) == ([RC.OK], [])
    assert events(run(store)) == []
    # The unfreeze writes no balance: the block still re-attempts it, and it settles.
    out = run(store, unfreeze(txf, "BANK02", net.cash))
    assert (own(out), events(out)) == ([RC.OK], [RC.OK])
    assert store.balance("BANK02", net.bonds[0]) == 2 * _HELD + 100


def test_a_frozen_partys_pending_trade_still_fails_at_its_deadline(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    deadline = txf.t0 + 9_000
    run(store, txf.signed(txf.pending(quantity=_HELD + 100, amount=5_000, deadline_ms=deadline)))
    deliver = txf.signed(txf.transfer("BANK03", "BANK01", 100, instrument=net.bonds[0]))
    out = run(store, freeze(txf, "BANK02"), deliver)  # funded, but the buyer is frozen
    assert (own(out), events(out)) == ([RC.OK, RC.OK], [])
    assert events(run(store, at_ms=10_000)) == [RC.FAILED_DEADLINE]
    assert store.balance("BANK01", net.bonds[0]) == _HELD + 100  # nothing moved
    assert PENDING_AGE_MAX_MS > 9_000  # the deadline, not the age bound, ended it


# --- the lifecycle rule --------------------------------------------------------------------


@pytest.fixture
def life() -> tuple[DemoNetwork, MemoryStore, TxFactory, LifeTx]:
    net = life_net()
    return net, MemoryStore(net.genesis), TxFactory(net, now_ms=at("2026-01-20")), LifeTx(net)


def test_a_coupon_is_paid_into_a_frozen_holding(
    life: tuple[DemoNetwork, MemoryStore, TxFactory, LifeTx],
) -> None:
    net, store, txf, ltx = life
    run_at(store, at("2026-01-20"), freeze(txf, "BANK01", net.cash), freeze(txf, "BANK02"))
    before = {b: store.balance(b, net.cash) for b in ("BANK01", "BANK02", "BANK03")}
    out = run_at(store, at("2026-07-15"), ltx.coupon(1))
    assert [r.code for r in out.results] == [RC.OK]
    coupon = BOND_UNITS * 100 * 500 // (10_000 * 2)
    assert {b: store.balance(b, net.cash) - v for b, v in before.items()} == dict.fromkeys(
        before, coupon
    )
    assert len(freezes(store)) == 2  # still frozen


def test_a_paying_agent_with_frozen_cash_pays_nothing(
    life: tuple[DemoNetwork, MemoryStore, TxFactory, LifeTx],
) -> None:
    net, store, txf, ltx = life
    run_at(store, at("2026-01-20"), freeze(txf, AGENT, net.cash))
    out = run_at(store, at("2026-07-15"), ltx.coupon(1), ltx.distribute(1, 700))
    assert [r.code for r in out.results] == [RC.FROZEN, RC.FROZEN]
    run_at(store, at("2026-07-15", 1), unfreeze(txf, AGENT, net.cash, expiry_ms=_LATER))
    out = run_at(store, at("2026-07-15", 2), ltx.coupon(1))
    assert [r.code for r in out.results] == [RC.OK]  # control


def test_redeem_all_skips_a_frozen_holding_which_redeems_after_the_unfreeze(
    life: tuple[DemoNetwork, MemoryStore, TxFactory, LifeTx],
) -> None:
    net, store, txf, ltx = life
    bill = net.bonds[1]  # no coupons: redeemable at maturity
    run_at(store, at("2026-01-20"), freeze(txf, "BANK01", bill))
    out = run_at(store, at("2026-03-01"), ltx.redeem_all(bill), ltx.redeem("BANK01", bill))
    assert [r.code for r in out.results] == [RC.OK, RC.FROZEN]
    assert store.balance("BANK01", bill) == BOND_UNITS  # skipped, still there
    assert store.balance("BANK02", bill) == 0
    run_at(store, at("2026-03-02"), unfreeze(txf, "BANK01", bill, expiry_ms=_LATER))
    out = run_at(store, at("2026-03-02", 1), ltx.redeem("BANK01", bill))
    assert [r.code for r in out.results] == [RC.OK]
    assert store.balance("BANK01", bill) == 0
