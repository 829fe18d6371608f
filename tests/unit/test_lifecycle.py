"""The bond lifecycle (issue 14 items 1-3): schedules, CouponPay, Distribute, maturity,
Redeem and RedeemAll. Each rule and each code, with "a failed transaction changes nothing"
checked for every refusal (docs/ledger.md "Lifecycle")."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from node.config import SCHEDULE_PERIODS_MAX, U64_MAX
from node.genesis import DemoNetwork, genesis_to_json, parse_genesis
from node.settlement import (
    CouponPay,
    Distribute,
    GenesisError,
    Holding,
    Instrument,
    InstrumentKind,
    Redeem,
    RedeemAll,
    ResultCode,
    Transaction,
    decode_body,
    encode_body,
    precheck,
    sign_tx,
)
from node.settlement._lifecycle import (
    Paid,
    Redeemed,
    coupon_key,
    distribution_key,
    distribution_parts,
    redeemed_key,
)
from node.settlement._schedule import (
    coupon_dates,
    date_of_ms,
    day_start_ms,
    distribution_dates,
)
from node.store import MemoryStore
from tests.ledger_helpers import TxFactory
from tests.life_helpers import (
    AGENT,
    AGENT_CASH,
    BOND_UNITS,
    FUND_UNITS,
    LifeTx,
    at,
    life_net,
    run_at,
)

RC = ResultCode
P1 = "2026-07-15"  # BOND's first coupon date
MATURITY = "2027-01-15"
F1 = "2026-01-15"  # FUND's first distribution date (issued at genesis, 2026-01-01)


@pytest.fixture
def lnet() -> DemoNetwork:
    return life_net()


@pytest.fixture
def ls(lnet: DemoNetwork) -> MemoryStore:
    return MemoryStore(lnet.genesis)


@pytest.fixture
def lt(lnet: DemoNetwork) -> LifeTx:
    return LifeTx(lnet)


def _state(store: MemoryStore) -> tuple[object, ...]:
    g = store.genesis
    return (
        store.all_balances(),
        {i.id: store.supply(i.id) for i in g.instruments},
        sorted(store.records(b"")),
    )


def refused(store: MemoryStore, time_ms: int, raw: bytes, code: ResultCode) -> None:
    """``raw`` gets ``code`` and changes no balance, supply or record."""
    before = _state(store)
    out = run_at(store, time_ms, raw)
    assert [r.code for r in out.results] == [code]
    assert out.balances == {} and out.supplies == {} and out.records == {}
    assert _state(store) == before


def ok(store: MemoryStore, time_ms: int, *raws: bytes) -> None:
    out = run_at(store, time_ms, *raws)
    assert [r.code for r in out.results] == [RC.OK] * len(raws)


def _coupon(units: int) -> int:
    return units * 100 * 500 // (10_000 * 2)  # BOND: face 100, 500 bp, twice a year


# --- schedules ---------------------------------------------------------------------------


def _d(iso: str) -> date:
    return date.fromisoformat(iso)


def test_coupon_dates_count_back_from_maturity_on_its_day() -> None:
    dates = coupon_dates(_d("2027-05-30"), 4, _d("2026-06-01"), 100)
    assert dates == (_d("2026-08-30"), _d("2026-11-30"), _d("2027-02-28"), _d("2027-05-30"))


def test_end_of_month_maturity_pays_on_every_month_end() -> None:
    dates = coupon_dates(_d("2027-02-28"), 2, _d("2025-12-31"), 100)
    assert dates == (_d("2026-02-28"), _d("2026-08-31"), _d("2027-02-28"))


def test_a_date_on_the_issue_date_is_not_a_period() -> None:
    assert coupon_dates(_d("2027-01-15"), 2, _d("2026-01-15"), 100) == (
        _d("2026-07-15"),
        _d("2027-01-15"),
    )
    assert coupon_dates(_d("2027-01-15"), 2, _d("2026-01-14"), 100) == (
        _d("2026-01-15"),
        _d("2026-07-15"),
        _d("2027-01-15"),
    )


def test_coupon_dates_beyond_the_limit_are_refused() -> None:
    assert coupon_dates(_d("2027-01-15"), 12, _d("2026-01-15"), 12) is not None
    assert coupon_dates(_d("2027-01-15"), 12, _d("2026-01-14"), 12) is None


def test_distribution_dates_are_monthly_after_the_issue_date() -> None:
    assert distribution_dates(15, _d("2026-01-15"), 2) == (_d("2026-02-15"), _d("2026-03-15"))
    assert distribution_dates(15, _d("2026-12-14"), 2) == (_d("2026-12-15"), _d("2027-01-15"))


def test_day_starts_are_utc_midnights_in_ms() -> None:
    assert day_start_ms(_d("2026-01-01")) == 1_767_225_600_000  # the demo genesis time
    assert day_start_ms(_d("1970-01-02")) == 86_400_000
    assert date_of_ms(1_767_225_600_000) == _d("2026-01-01")
    assert date_of_ms(1_767_225_600_000 - 1) == _d("2025-12-31")


def test_month_ends_leap_years_and_annual_coupons() -> None:
    assert coupon_dates(_d("2028-02-29"), 2, _d("2027-01-01"), 100) == (
        _d("2027-02-28"),
        _d("2027-08-31"),
        _d("2028-02-29"),
    )
    assert coupon_dates(_d("2028-08-30"), 2, _d("2027-12-31"), 100) == (
        _d("2028-02-29"),  # a leap February clamps the 30th to its 29th
        _d("2028-08-30"),
    )
    assert coupon_dates(_d("2027-05-31"), 2, _d("2026-06-01"), 100) == (
        _d("2026-11-30"),
        _d("2027-05-31"),
    )
    assert coupon_dates(_d("2027-01-15"), 1, _d("2025-01-15"), 100) == (
        _d("2026-01-15"),
        _d("2027-01-15"),
    )
    assert distribution_dates(15, _d("2026-01-20"), 1) == (_d("2026-02-15"),)


def test_genesis_schedules_are_day_starts(lnet: DemoNetwork) -> None:
    g = lnet.genesis
    assert g.schedules[lnet.bonds[0]] == (at(P1), at(MATURITY))
    assert g.schedules[lnet.bonds[1]] == ()  # a bill pays no coupon
    assert g.schedules[lnet.fund][:2] == (at(F1), at("2026-02-15"))
    assert len(g.schedules[lnet.fund]) == SCHEDULE_PERIODS_MAX
    assert g.maturity_ms(lnet.bonds[0]) == at(MATURITY)


def _bond(lnet: DemoNetwork, **terms: object) -> DemoNetwork:
    g = lnet.genesis
    insts = tuple(replace(i, **terms) if i.id == lnet.bonds[0] else i for i in g.instruments)  # type: ignore[arg-type]
    return replace(lnet, genesis=replace(g, instruments=insts))


@pytest.mark.parametrize(
    ("terms", "words"),
    [
        ({"payment_cash": ""}, "payment_cash"),
        ({"payment_cash": "US912797GL51"}, "payment_cash"),  # a bond, not cash
        ({"currency": "EUR"}, "payment_cash"),  # cash in another currency
        ({"paying_agent": "NOBODY"}, "paying_agent"),
        ({"paying_agent": "REGULATOR"}, "paying_agent"),  # may not hold
        ({"issue_date": "2027-01-15"}, "issue_date"),  # not before maturity
        ({"issue_date": "soon"}, "issue_date"),
        ({"coupon_freq": 5}, "coupon_freq"),  # not a divisor of 12
        ({"distribution_day": 15}, "distribution_day"),
        ({"coupon_freq": 12, "issue_date": "1900-01-01"}, "coupon periods"),
    ],
)
def test_genesis_refuses_bad_bond_terms(
    lnet: DemoNetwork, terms: dict[str, object], words: str
) -> None:
    with pytest.raises(GenesisError, match=words):
        _bond(lnet, **terms)


@pytest.mark.parametrize(
    ("terms", "words"),
    [
        ({"distribution_day": 0}, "distribution_day"),
        ({"distribution_day": 29}, "distribution_day"),
        ({"coupon_bp": 5}, "coupon_bp"),
        ({"payment_cash": ""}, "payment_cash"),
        ({"issuer": "CASHCO"}, "bond_issuer"),
    ],
)
def test_genesis_refuses_bad_fund_terms(
    lnet: DemoNetwork, terms: dict[str, object], words: str
) -> None:
    g = lnet.genesis
    insts = tuple(replace(i, **terms) if i.id == lnet.fund else i for i in g.instruments)  # type: ignore[arg-type]
    with pytest.raises(GenesisError, match=words):
        replace(g, instruments=insts)


def test_cash_tokens_take_no_payment_terms(lnet: DemoNetwork) -> None:
    g = lnet.genesis
    bad = Instrument(lnet.cash, InstrumentKind.CASH, "CASHCO", "USD", paying_agent="CASHCO")
    insts = tuple(bad if i.id == lnet.cash else i for i in g.instruments)
    with pytest.raises(GenesisError, match="paying_agent"):
        replace(g, instruments=insts)


def test_terms_survive_json_and_enter_the_chain_id(lnet: DemoNetwork) -> None:
    g = lnet.genesis
    assert parse_genesis(genesis_to_json(g)) == g
    other = _bond(lnet, paying_agent="CSD").genesis
    assert other.chain_id != g.chain_id
    assert genesis_to_json(other)["instruments"][0]["paying_agent"] == "CSD"


def test_new_kinds_round_trip_the_codec(lnet: DemoNetwork) -> None:
    c = lnet.genesis.chain_id
    for tx in (
        CouponPay(c, 1, 2, "B", 7, "A"),
        Distribute(c, 1, 2, "F", 3, U64_MAX, "A"),
        Redeem(c, 1, 2, "B", "H"),
        RedeemAll(c, 1, 2, "B", "A"),
    ):
        assert decode_body(encode_body(tx)) == tx


# --- CouponPay -----------------------------------------------------------------------------


def test_coupon_pays_every_holder_of_record(ls: MemoryStore, lt: LifeTx, lnet: DemoNetwork) -> None:
    cash = lnet.cash
    before = ls.all_balances()
    ok(ls, at(P1), lt.coupon(1))
    per_bank = _coupon(BOND_UNITS)
    for b in lnet.banks:
        assert ls.balance(b, cash) == before[(b, cash)] + per_bank
    assert ls.balance(AGENT, cash) == AGENT_CASH - per_bank * len(lnet.banks)
    paid = Paid.decode(ls.record(coupon_key(lnet.bonds[0], 1)) or b"")
    assert paid == Paid(per_bank * len(lnet.banks), len(lnet.banks))


def test_coupon_once_per_period_whatever_the_nonce(ls: MemoryStore, lt: LifeTx) -> None:
    ok(ls, at(P1), lt.coupon(1))
    refused(ls, at(P1, 1), lt.coupon(1), RC.ALREADY_PAID)


def test_coupon_twice_in_one_block_pays_once(
    ls: MemoryStore, lt: LifeTx, lnet: DemoNetwork
) -> None:
    out = run_at(ls, at(P1), lt.coupon(1), lt.coupon(1))
    assert [r.code for r in out.results] == [RC.OK, RC.ALREADY_PAID]
    assert ls.balance(AGENT, lnet.cash) == AGENT_CASH - _coupon(BOND_UNITS) * len(lnet.banks)


def test_coupon_before_its_date_is_not_due(ls: MemoryStore, lt: LifeTx) -> None:
    refused(ls, at(P1, -1), lt.coupon(1), RC.NOT_DUE)
    ok(ls, at(P1), lt.coupon(1))  # 00:00:00 UTC of the date


@pytest.mark.parametrize("period", [0, 2, 3, 2**32 - 1])
def test_final_and_unknown_periods_are_refused(ls: MemoryStore, lt: LifeTx, period: int) -> None:
    refused(ls, at("2030-01-01"), lt.coupon(period), RC.NO_SUCH_PERIOD)


def test_a_bill_has_no_coupon(ls: MemoryStore, lt: LifeTx, lnet: DemoNetwork) -> None:
    refused(ls, at(P1), lt.coupon(1, bond=lnet.bonds[1]), RC.NO_SUCH_PERIOD)


def test_coupon_wrong_instrument_and_wrong_agent(
    ls: MemoryStore, lt: LifeTx, lnet: DemoNetwork
) -> None:
    refused(ls, at(P1), lt.coupon(1, bond="US0000000000"), RC.UNKNOWN_INSTRUMENT)
    refused(ls, at(P1), lt.coupon(1, bond=lnet.cash), RC.WRONG_INSTRUMENT_KIND)
    refused(ls, at(P1), lt.coupon(1, bond=lnet.fund), RC.WRONG_INSTRUMENT_KIND)
    raw = lt.coupon(1, agent="CSD")
    refused(ls, at(P1), raw, RC.UNAUTHORIZED)
    assert precheck(lnet.genesis, raw).code is RC.UNAUTHORIZED  # never admitted
    assert precheck(lnet.genesis, lt.coupon(1)).code is RC.OK


def test_coupon_signed_by_another_party_is_a_bad_signature(lt: LifeTx, lnet: DemoNetwork) -> None:
    tx = CouponPay(lt.chain, 1, 2**63, lnet.bonds[0], 1, AGENT)
    forged = sign_tx(tx, [lnet.participant_keys["BANK01"]])
    assert precheck(lnet.genesis, forged).code is RC.BAD_SIGNATURE


def test_coupon_when_the_agent_is_short_pays_nobody(lnet: DemoNetwork) -> None:
    g = lnet.genesis
    need = _coupon(BOND_UNITS) * len(lnet.banks)
    holdings = tuple(
        replace(h, amount=need - 1) if (h.account, h.instrument) == (AGENT, lnet.cash) else h
        for h in g.holdings
    )
    short = MemoryStore(replace(g, holdings=holdings))
    lt = LifeTx(replace(lnet, genesis=short.genesis))
    refused(short, at(P1), lt.coupon(1), RC.INSUFFICIENT_CASH)


def test_coupon_pays_holders_of_the_previous_block(
    ls: MemoryStore, lt: LifeTx, lnet: DemoNetwork
) -> None:
    """A transfer earlier in the coupon's block does not change who is paid."""
    f = TxFactory(lnet, now_ms=at(P1))
    move = f.signed(f.transfer("BANK01", "BANK02", BOND_UNITS, instrument=lnet.bonds[0]))
    c1, c2 = ls.balance("BANK01", lnet.cash), ls.balance("BANK02", lnet.cash)
    ok(ls, at(P1), move, lt.coupon(1))
    assert ls.balance("BANK01", lnet.cash) == c1 + _coupon(BOND_UNITS)
    assert ls.balance("BANK02", lnet.cash) == c2 + _coupon(BOND_UNITS)


def test_agent_holding_units_is_not_paid_by_itself(lnet: DemoNetwork) -> None:
    g = lnet.genesis
    net = replace(lnet, genesis=replace(g, holdings=(*g.holdings, _h(AGENT, lnet.bonds[0], 10**6))))
    store = MemoryStore(net.genesis)
    ok(store, at(P1), LifeTx(net).coupon(1))
    total_cash = sum(store.balance(p.id, lnet.cash) for p in g.participants)
    assert total_cash == AGENT_CASH + 10**9 * len(lnet.banks)  # no cash created
    assert store.balance(AGENT, lnet.cash) == AGENT_CASH - _coupon(BOND_UNITS) * len(lnet.banks)
    paid = Paid.decode(store.record(coupon_key(lnet.bonds[0], 1)) or b"")
    assert paid.holders == len(lnet.banks) + 1


def _h(account: str, instrument: str, amount: int) -> Holding:
    return Holding(account, instrument, amount)


def test_coupon_floors_per_holder_and_the_agent_keeps_the_rest(lnet: DemoNetwork) -> None:
    g = lnet.genesis
    # 3 units x 100 x 500 / 20,000 = 7.5 cents: each holder gets 7
    holdings = tuple(
        replace(h, amount=3) if h.instrument == lnet.bonds[0] else h for h in g.holdings
    )
    store = MemoryStore(replace(g, holdings=holdings))
    before = store.balance("BANK01", lnet.cash)
    ok(store, at(P1), LifeTx(replace(lnet, genesis=store.genesis)).coupon(1))
    assert store.balance("BANK01", lnet.cash) == before + 7
    assert store.balance(AGENT, lnet.cash) == AGENT_CASH - 7 * len(lnet.banks)


# --- u64 edges -------------------------------------------------------------------------------


def _edge(units: int) -> tuple[DemoNetwork, MemoryStore]:
    """Face 10**12 per unit, 10,000 bp a year paid once (the final period, at redemption):
    a redemption pays units x 2 x 10**12; the agent holds all 2**64 - 1 of the cash."""
    net = _bond(life_net(), unit_face_minor=10**12, coupon_bp=10_000, coupon_freq=1)
    g = net.genesis
    holdings = [replace(h, amount=units) if h.instrument == net.bonds[0] else h for h in g.holdings]
    holdings = [h for h in holdings if h.instrument != net.cash]
    holdings.append(_h(AGENT, net.cash, U64_MAX))
    g = replace(g, holdings=tuple(holdings))
    return replace(net, genesis=g), MemoryStore(g)


def test_redemption_over_u64_is_overflow_not_a_wrap() -> None:
    net, store = _edge(units=2**25)  # 2**25 x 2 x 10**12 > 2**64
    lt = LifeTx(net)
    refused(store, at(MATURITY), lt.redeem("BANK01"), RC.OVERFLOW)
    refused(store, at(MATURITY), lt.redeem_all(), RC.OVERFLOW)


def test_large_redemptions_near_u64_are_exact_or_overflow() -> None:
    net, store = _edge(units=9_300_000)  # face + coupon = 1.86 x 10**19 > 2**64
    refused(store, at(MATURITY), LifeTx(net).redeem("BANK01"), RC.OVERFLOW)
    net, store = _edge(units=9_000_000)  # 1.8 x 10**19 fits
    ok(store, at(MATURITY), LifeTx(net).redeem("BANK01"))
    assert store.balance("BANK01", net.cash) == 18 * 10**18
    assert store.balance(AGENT, net.cash) == U64_MAX - 18 * 10**18


def test_total_over_u64_is_overflow_even_when_each_part_fits() -> None:
    net, store = _edge(units=5_000_000)  # 10**19 each, six banks
    refused(store, at(MATURITY), LifeTx(net).redeem_all(), RC.OVERFLOW)


def test_coupon_over_u64_is_overflow() -> None:
    """One holder owed 2**26 x 10**12 / 2 > 2**64 - 1, an agent rich enough to pay a
    wrapped amount: the coupon must be OVERFLOW, not a payment of the amount mod 2**64."""
    net = _bond(life_net(), unit_face_minor=10**12, coupon_bp=10_000, coupon_freq=2)
    g = net.genesis
    holdings = [h for h in g.holdings if h.instrument != net.bonds[0]]
    holdings = [h for h in holdings if (h.account, h.instrument) != (AGENT, net.cash)]
    holdings += [_h("BANK01", net.bonds[0], 2**26), _h(AGENT, net.cash, 2**64 - 10**10)]
    store = MemoryStore(replace(g, holdings=tuple(holdings)))
    refused(store, at(P1), LifeTx(replace(net, genesis=store.genesis)).coupon(1), RC.OVERFLOW)


# --- Distribute ----------------------------------------------------------------------------


def test_largest_remainder_sums_exactly_and_breaks_ties_by_id() -> None:
    assert distribution_parts(10, [("A", 1), ("B", 1), ("C", 1)]) == [4, 3, 3]
    assert distribution_parts(10, [("A", 1), ("B", 2), ("C", 4)]) == [1, 3, 6]
    assert distribution_parts(U64_MAX, [("A", 1), ("B", 1)]) == [2**63, 2**63 - 1]


def test_distribute_splits_the_total_over_holders(
    ls: MemoryStore, lt: LifeTx, lnet: DemoNetwork
) -> None:
    before = {b: ls.balance(b, lnet.cash) for b in FUND_UNITS}
    ok(ls, at(F1), lt.distribute(1, 1_000))
    got = {b: ls.balance(b, lnet.cash) - before[b] for b in FUND_UNITS}
    assert got == {"BANK01": 143, "BANK02": 286, "BANK03": 571}  # 142.9, 285.7, 571.4
    assert ls.balance(AGENT, lnet.cash) == AGENT_CASH - 1_000
    assert Paid.decode(ls.record(distribution_key(lnet.fund, 1)) or b"") == Paid(1_000, 3)


def test_distribute_codes(ls: MemoryStore, lt: LifeTx, lnet: DemoNetwork) -> None:
    refused(ls, at(F1, -1), lt.distribute(1, 1_000), RC.NOT_DUE)
    refused(ls, at(F1), lt.distribute(0, 1_000), RC.NO_SUCH_PERIOD)
    refused(ls, at(F1), lt.distribute(SCHEDULE_PERIODS_MAX + 1, 1), RC.NO_SUCH_PERIOD)
    refused(ls, at(F1), lt.distribute(1, 0), RC.INVALID_AMOUNT)
    refused(ls, at(F1), lt.distribute(1, 1, fund="NOFUND"), RC.UNKNOWN_INSTRUMENT)
    refused(ls, at(F1), lt.distribute(1, 1, fund=lnet.bonds[0]), RC.WRONG_INSTRUMENT_KIND)
    refused(ls, at(F1), lt.distribute(1, 1, agent="CSD"), RC.UNAUTHORIZED)
    refused(ls, at(F1), lt.distribute(1, AGENT_CASH + 1), RC.INSUFFICIENT_CASH)
    ok(ls, at(F1), lt.distribute(1, 7))
    refused(ls, at(F1, 1), lt.distribute(1, 7), RC.ALREADY_PAID)


def test_distribute_with_no_holders_is_refused(lnet: DemoNetwork) -> None:
    g = lnet.genesis
    holdings = tuple(h for h in g.holdings if h.instrument != lnet.fund)
    store = MemoryStore(replace(g, holdings=holdings))
    lt = LifeTx(replace(lnet, genesis=store.genesis))
    refused(store, at(F1), lt.distribute(1, 7), RC.INSUFFICIENT_SECURITIES)


# --- maturity ------------------------------------------------------------------------------


def test_a_matured_bond_does_not_move(ls: MemoryStore, lnet: DemoNetwork) -> None:
    bill = lnet.bonds[1]
    f = TxFactory(lnet, now_ms=at("2026-03-01"))

    def moves() -> list[bytes]:
        txs: list[Transaction] = [
            f.transfer("BANK01", "BANK02", 1, instrument=bill),
            f.dvp(bond=bill, quantity=1, amount=1),
            f.mint(to="BANK01", amount=1, instrument=bill),
            f.burn(holder="BANK01", amount=1, instrument=bill),
        ]
        return [f.signed(tx) for tx in txs]

    for raw in moves():
        refused(ls, at("2026-03-01"), raw, RC.MATURED)
    ok(ls, at("2026-03-01", -1), *moves())  # a millisecond before maturity: fine
    cash_move = f.transfer("BANK01", "BANK02", 1, instrument=lnet.cash)
    ok(ls, at("2026-03-01", 1), f.signed(cash_move))


# --- redemption ----------------------------------------------------------------------------


def test_redeem_burns_and_pays_face_plus_the_final_coupon(
    ls: MemoryStore, lt: LifeTx, lnet: DemoNetwork
) -> None:
    bond, cash = lnet.bonds[0], lnet.cash
    ok(ls, at(P1), lt.coupon(1))
    supply, c1, agent = ls.supply(bond), ls.balance("BANK01", cash), ls.balance(AGENT, cash)
    ok(ls, at(MATURITY), lt.redeem("BANK01"))
    pay = BOND_UNITS * 100 + _coupon(BOND_UNITS)
    assert ls.balance("BANK01", bond) == 0
    assert ls.supply(bond) == supply - BOND_UNITS
    assert ls.balance("BANK01", cash) == c1 + pay
    assert ls.balance(AGENT, cash) == agent - pay
    assert Redeemed.decode(ls.record(redeemed_key(bond, "BANK01")) or b"") == Redeemed(
        BOND_UNITS, pay
    )
    refused(ls, at(MATURITY, 1), lt.redeem("BANK01"), RC.ALREADY_PAID)


def test_redeem_before_maturity_or_with_a_coupon_unpaid(ls: MemoryStore, lt: LifeTx) -> None:
    refused(ls, at(MATURITY, -1), lt.redeem("BANK01"), RC.NOT_DUE)
    refused(ls, at(MATURITY), lt.redeem("BANK01"), RC.COUPON_OUTSTANDING)
    refused(ls, at(MATURITY), lt.redeem_all(), RC.COUPON_OUTSTANDING)
    ok(ls, at(MATURITY), lt.coupon(1), lt.redeem("BANK01"))  # paid earlier in the block


def test_redeem_codes(ls: MemoryStore, lt: LifeTx, lnet: DemoNetwork) -> None:
    t = at("2026-03-01")
    bill = lnet.bonds[1]
    refused(ls, t, lt.redeem("BANK01", bond="US0000000000"), RC.UNKNOWN_INSTRUMENT)
    refused(ls, t, lt.redeem("BANK01", bond=lnet.fund), RC.WRONG_INSTRUMENT_KIND)
    refused(ls, t, lt.redeem("REGULATOR", bond=bill), RC.UNAUTHORIZED)
    assert precheck(lnet.genesis, lt.redeem("REGULATOR", bond=bill)).code is RC.UNAUTHORIZED
    assert precheck(lnet.genesis, lt.redeem_all(bond=bill, agent="CSD")).code is RC.UNAUTHORIZED
    assert precheck(lnet.genesis, lt.distribute(1, 5, agent="CSD")).code is RC.UNAUTHORIZED
    assert precheck(lnet.genesis, lt.redeem("BANK01", bond=bill)).code is RC.OK
    refused(ls, t, lt.redeem("CSD", bond=bill), RC.INSUFFICIENT_SECURITIES)  # holds none
    refused(ls, t, lt.redeem_all(bond=bill, agent="CSD"), RC.UNAUTHORIZED)


def test_a_bill_redeems_at_face(ls: MemoryStore, lt: LifeTx, lnet: DemoNetwork) -> None:
    bill, cash = lnet.bonds[1], lnet.cash
    c1 = ls.balance("BANK01", cash)
    ok(ls, at("2026-03-01"), lt.redeem("BANK01", bond=bill))
    assert ls.balance("BANK01", cash) == c1 + BOND_UNITS  # face 1 cent a unit, no coupon


def _agent_cash(lnet: DemoNetwork, cash: int) -> tuple[MemoryStore, LifeTx]:
    g = lnet.genesis
    holdings = tuple(
        replace(h, amount=cash) if (h.account, h.instrument) == (AGENT, lnet.cash) else h
        for h in g.holdings
    )
    store = MemoryStore(replace(g, holdings=holdings))
    return store, LifeTx(replace(lnet, genesis=store.genesis))


def test_redeem_when_the_agent_is_short_burns_nothing(lnet: DemoNetwork) -> None:
    bill, t = lnet.bonds[1], at("2026-03-01")
    store, lt = _agent_cash(lnet, BOND_UNITS - 1)  # a bill pays 1 cent a unit
    refused(store, t, lt.redeem("BANK01", bond=bill), RC.INSUFFICIENT_CASH)
    store, lt = _agent_cash(lnet, BOND_UNITS * len(lnet.banks) - 1)  # one, not all
    refused(store, t, lt.redeem_all(bond=bill), RC.INSUFFICIENT_CASH)
    ok(store, t, lt.redeem("BANK01", bond=bill))


def test_redeem_all_redeems_every_holder_once(
    ls: MemoryStore, lt: LifeTx, lnet: DemoNetwork
) -> None:
    bill, cash = lnet.bonds[1], lnet.cash
    t = at("2026-03-01")
    ok(ls, t, lt.redeem("BANK02", bond=bill))
    cash_before = {b: ls.balance(b, cash) for b in lnet.banks}
    ok(ls, t, lt.redeem_all(bond=bill))
    assert ls.supply(bill) == 0
    for b in lnet.banks:
        paid = 0 if b == "BANK02" else BOND_UNITS
        assert ls.balance(b, cash) == cash_before[b] + paid
    refused(ls, t, lt.redeem_all(bond=bill), RC.INSUFFICIENT_SECURITIES)
    refused(ls, t, lt.redeem("BANK03", bond=bill), RC.ALREADY_PAID)


def test_redeem_is_signed_by_the_holder_only(lt: LifeTx, lnet: DemoNetwork) -> None:
    tx = Redeem(lt.chain, 1, 2**63, lnet.bonds[1], "BANK01")
    assert tx.required_signers() == ("BANK01",)
    forged = sign_tx(tx, [lnet.participant_keys[AGENT]])
    assert precheck(lnet.genesis, forged).code is RC.BAD_SIGNATURE


def test_instrument_state_reads_holders_paid_periods_and_redemptions(
    ls: MemoryStore, lt: LifeTx, lnet: DemoNetwork
) -> None:
    from node.settlement import instrument_state

    bond = lnet.bonds[0]
    ok(ls, at(P1), lt.coupon(1))
    ok(ls, at(MATURITY), lt.redeem("BANK02"))
    state = instrument_state(ls, lnet.genesis.instrument_by_id[bond])
    assert state.holdings == tuple((b, BOND_UNITS) for b in lnet.banks if b != "BANK02")
    assert state.paid == {1: Paid(_coupon(BOND_UNITS) * len(lnet.banks), len(lnet.banks))}
    pay = BOND_UNITS * 100 + _coupon(BOND_UNITS)
    assert state.redeemed == {"BANK02": Redeemed(BOND_UNITS, pay)}
    ok(ls, at(MATURITY), lt.distribute(2, 70))
    fund = instrument_state(ls, lnet.genesis.instrument_by_id[lnet.fund])
    assert fund.holdings == tuple(FUND_UNITS.items())
    assert fund.paid == {2: Paid(70, 3)} and fund.redeemed == {}


# --- boundaries found by mutation testing (docs/testing.md, settlement.lifecycle) ----------


def test_largest_remainder_small_totals_and_ties_by_id_not_by_size() -> None:
    assert distribution_parts(1, [("A", 1), ("B", 1)]) == [1, 0]  # every floor is 0
    assert distribution_parts(2, [("A", 1), ("B", 1), ("C", 1)]) == [1, 1, 0]
    # remainders all equal (8 mod 6 = 2 mod 6): the smallest id wins, not the smallest holding
    assert distribution_parts(2, [("A", 4), ("B", 1), ("C", 1)]) == [2, 0, 0]


def test_later_periods_are_due_on_their_own_dates(ls: MemoryStore, lt: LifeTx) -> None:
    refused(ls, at("2026-02-15", -1), lt.distribute(2, 10), RC.NOT_DUE)
    ok(ls, at("2026-02-15"), lt.distribute(2, 10))
    refused(ls, at("2026-03-15", -1), lt.distribute(3, 10), RC.NOT_DUE)
    ok(ls, at("2026-03-15"), lt.distribute(3, 10))
    refused(ls, at("2026-03-15"), lt.distribute(4, 10), RC.NOT_DUE)


def test_a_holder_owed_nothing_gets_no_write_and_is_not_counted(lnet: DemoNetwork) -> None:
    # BOND pays 2.5 cents a unit: 1 unit floors to 2, 0.2 units do not exist, so use a
    # face of 1 cent: 1 unit earns 0.025 (nothing), 40 units earn exactly 1.
    net = _bond(lnet, unit_face_minor=1)
    g = net.genesis
    holdings = [h for h in g.holdings if h.instrument != net.bonds[0]]
    holdings += [_h("BANK01", net.bonds[0], 1), _h("BANK02", net.bonds[0], 40)]
    store = MemoryStore(replace(g, holdings=tuple(holdings)))
    out = run_at(store, at(P1), LifeTx(replace(net, genesis=store.genesis)).coupon(1))
    assert [r.code for r in out.results] == [RC.OK]
    assert set(out.balances) == {("BANK02", net.cash), (AGENT, net.cash)}
    assert Paid.decode(store.record(coupon_key(net.bonds[0], 1)) or b"") == Paid(1, 1)


def test_a_payment_of_exactly_u64_max_is_not_overflow(lnet: DemoNetwork) -> None:
    """Face 2, 10,000 bp twice a year: one period pays each unit 1 cent. One holder of
    2**64 - 1 units, an agent with exactly 2**64 - 1 cents: paid in full, nothing left."""
    net = _bond(lnet, unit_face_minor=2, coupon_bp=10_000)
    g = net.genesis
    keep = [h for h in g.holdings if h.instrument not in {net.bonds[0], net.cash}]
    keep += [_h("BANK01", net.bonds[0], U64_MAX), _h(AGENT, net.cash, U64_MAX)]
    store = MemoryStore(replace(g, holdings=tuple(keep)))
    ok(store, at(P1), LifeTx(replace(net, genesis=store.genesis)).coupon(1))
    assert store.balance("BANK01", net.cash) == U64_MAX
    assert store.balance(AGENT, net.cash) == 0


def test_an_agent_that_sorts_before_holders_pays_them_all(lnet: DemoNetwork) -> None:
    """The agent is CSD; TREASURY (an id after it) holds units too and must be paid, and
    TREASURY (after CSD) may not sign CSD's coupons."""
    net = _bond(lnet, paying_agent="CSD")
    g = net.genesis
    holdings = (*g.holdings, _h("CSD", net.cash, 10**12), _h(AGENT, net.bonds[0], BOND_UNITS))
    store = MemoryStore(replace(g, holdings=holdings))
    lt = LifeTx(replace(net, genesis=store.genesis))
    refused(store, at(P1), lt.coupon(1, agent=AGENT), RC.UNAUTHORIZED)
    before = store.balance(AGENT, net.cash)
    ok(store, at(P1), lt.coupon(1, agent="CSD"))
    assert store.balance(AGENT, net.cash) == before + _coupon(BOND_UNITS)


def test_every_period_but_the_last_is_payable(lnet: DemoNetwork) -> None:
    net = _bond(lnet, coupon_freq=4)  # 2026-04-15, 07-15, 10-15, 2027-01-15 (final)
    store, lt = MemoryStore(net.genesis), LifeTx(net)
    ok(store, at("2026-10-15"), lt.coupon(1), lt.coupon(2), lt.coupon(3))
    refused(store, at("2027-01-15"), lt.coupon(4), RC.NO_SUCH_PERIOD)


def test_the_agents_own_share_over_u64_is_overflow_too(lnet: DemoNetwork) -> None:
    """No cash moves to the agent for its own units, but its share is still an amount
    the rule covers: over 2**64 - 1 is OVERFLOW, never silently skipped."""
    net = _bond(lnet, unit_face_minor=10**12, coupon_bp=10_000)
    g = net.genesis
    holdings = [h for h in g.holdings if h.instrument != net.bonds[0]]
    holdings.append(_h(AGENT, net.bonds[0], 2**26))  # 2**26 x 10**12 / 2 > 2**64 - 1
    store = MemoryStore(replace(g, holdings=tuple(holdings)))
    refused(store, at(P1), LifeTx(replace(net, genesis=store.genesis)).coupon(1), RC.OVERFLOW)
