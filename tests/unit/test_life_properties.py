"""Hypothesis properties of the bond lifecycle (issue 14, "Bad input and invariants"):
cash paid out equals the coupons an independent oracle computes (exact fractions, floored
per holder), or the payment is refused and moves nothing; distributions sum exactly to
their total by the largest-remainder rule; supply falls exactly by the units redeemed and
no holding is redeemed twice; values at the u64 edges (face 10**12, 10,000 bp) never wrap."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from hypothesis import event, given, settings
from hypothesis import strategies as st

from node.config import U64_MAX
from node.genesis import DemoNetwork
from node.settlement import Holding, ResultCode
from node.settlement._lifecycle import Redeemed, distribution_parts, redeemed_key
from node.store import MemoryStore
from tests.life_helpers import AGENT, LifeTx, at, life_net, run_at

RC = ResultCode
BASE = life_net()
BANKS = BASE.banks
BOND, CASH = BASE.bonds[0], BASE.cash
BANK_CASH = 10**9
UNITS = st.one_of(
    st.integers(0, 3), st.integers(0, 10**7), st.sampled_from([2**32, 2**40, 2**61])
)  # six sum below 2**64
FACE = st.one_of(st.integers(1, 10_000), st.just(10**12))
BP = st.one_of(st.integers(1, 10_000), st.just(10_000))


def _net(units: list[int], agent_cash: int, **terms: object) -> tuple[DemoNetwork, MemoryStore]:
    net = life_net(**terms)
    g = net.genesis
    holdings = [h for h in g.holdings if h.instrument not in {BOND, CASH}]
    holdings += [Holding(b, BOND, u) for b, u in zip(BANKS, units, strict=False) if u]
    holdings += [Holding(b, CASH, BANK_CASH) for b in BANKS]
    holdings.append(Holding(AGENT, CASH, agent_cash))
    g = replace(g, holdings=tuple(holdings))
    return replace(net, genesis=g), MemoryStore(g)


def _oracle_coupon(units: int, face: int, bp: int, freq: int) -> int:
    exact = Fraction(units * face * bp, 10_000 * freq)
    return exact.numerator // exact.denominator


@settings(max_examples=60)
@given(
    units=st.lists(UNITS, min_size=1, max_size=len(BANKS)),
    face=FACE,
    bp=BP,
    freq=st.sampled_from([1, 2, 4, 12]),
    agent_cash=st.one_of(st.integers(1, 10**12), st.just(U64_MAX - len(BANKS) * BANK_CASH)),
)
def test_coupon_pays_what_the_oracle_says_or_nothing(
    units: list[int], face: int, bp: int, freq: int, agent_cash: int
) -> None:
    # Maturity two years after issue: every frequency has a non-final period 1.
    terms = {"unit_face_minor": face, "coupon_bp": bp, "coupon_freq": freq}
    net, store = _net(units, agent_cash, maturity_date="2028-01-15", **terms)
    due = net.genesis.schedules[BOND][0]
    before = store.all_balances()
    code = run_at(store, due, LifeTx(net).coupon(1)).results[0].code
    event(code.name)  # --hypothesis-show-statistics: every branch below is reached
    owed = {b: _oracle_coupon(u, face, bp, freq) for b, u in zip(BANKS, units, strict=False)}
    total = sum(owed.values())
    after = store.all_balances()
    if max(owed.values()) > U64_MAX or total > U64_MAX:
        assert code is RC.OVERFLOW
    elif total > agent_cash:
        assert code is RC.INSUFFICIENT_CASH
    else:
        assert code is RC.OK
        for b in BANKS:
            assert after[(b, CASH)] - before[(b, CASH)] == owed.get(b, 0)
        assert before[(AGENT, CASH)] - after[(AGENT, CASH)] == total
        return
    assert after == before  # refused: nothing moved


@given(
    total=st.one_of(st.integers(1, 10**6), st.just(U64_MAX)),
    units=st.lists(st.integers(1, 2**64 - 1), min_size=1, max_size=20),
)
def test_distribution_parts_sum_exactly_by_largest_remainder(total: int, units: list[int]) -> None:
    holdings = [(f"P{i:03d}", u) for i, u in enumerate(units)]
    parts = distribution_parts(total, holdings)
    assert sum(parts) == total
    all_units = sum(units)
    for part, u in zip(parts, units, strict=True):
        share = Fraction(total * u, all_units)
        assert share - 1 < part <= share + 1
        assert part in {
            share.numerator // share.denominator,
            share.numerator // share.denominator + 1,
        }
    # Those rounded up have remainders at least those of everyone rounded down.
    rem = [total * u % all_units for u in units]
    floor = [total * u // all_units for u in units]
    up = [r for r, p, f in zip(rem, parts, floor, strict=True) if p > f]
    down = [r for r, p, f in zip(rem, parts, floor, strict=True) if p == f]
    assert not up or not down or min(up) >= max(down)


@settings(max_examples=40)
@given(
    units=st.lists(st.integers(0, 10**9), min_size=1, max_size=len(BANKS)),
    order=st.lists(st.sampled_from([*BANKS, "ALL"]), max_size=10),
)
def test_redemptions_burn_exactly_what_they_pay_for_once(
    units: list[int], order: list[str]
) -> None:
    net, store = _net(units, U64_MAX - len(BANKS) * BANK_CASH)
    lt = LifeTx(net)
    maturity = at("2027-01-15")
    assert run_at(store, maturity, lt.coupon(1)).results[0].code is RC.OK
    supply, agent = store.supply(BOND), store.balance(AGENT, CASH)
    raws = [lt.redeem_all() if who == "ALL" else lt.redeem(who) for who in order]
    run_at(store, maturity, *raws)
    redeemed = {b: Redeemed.decode(r) for b in BANKS if (r := store.record(redeemed_key(BOND, b)))}
    burned = sum(r.units for r in redeemed.values())
    assert store.supply(BOND) == supply - burned
    assert agent - store.balance(AGENT, CASH) == sum(r.paid for r in redeemed.values())
    for b, r in redeemed.items():
        assert r.paid == r.units * 100 + _oracle_coupon(r.units, 100, 500, 2)
        assert store.balance(b, BOND) == 0
    for b, u in zip(BANKS, units, strict=False):
        assert (b in redeemed) == (u > 0 and ("ALL" in order or b in order))
