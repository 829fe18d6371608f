"""The demo network's lifecycle bonds (``demo_genesis(lifecycle_date=...)``, what
``make demo`` and ``make bench WORKLOAD=mixed`` generate): on the day they are generated a
coupon is due and a bond has matured with no coupon outstanding; and the demo's own
checks fire when the ledger pays other than the terms."""

from __future__ import annotations

from datetime import date

import pytest

from client import ResultCode, Transactions
from devtools.demo.lifecycle import LifecycleMismatch, _check, _coupon_on, _expect
from node.genesis import DEMO_DUE_BOND, DEMO_MATURED_BOND, demo_genesis
from node.settlement import InstrumentKind
from node.settlement._schedule import day_start_ms

# Month ends, a leap day, New Year: the dates the bonds are derived from.
DAYS = [date(2026, 11, 29), date(2026, 1, 1), date(2028, 2, 29), date(2027, 3, 1),
        date(2026, 12, 31), date(2027, 7, 31)]  # fmt: skip


@pytest.mark.parametrize("today", DAYS, ids=str)
def test_on_the_day_generated_a_coupon_is_due_and_a_bond_is_redeemable(today: date) -> None:
    net = demo_genesis(seed=b"tests", lifecycle_date=today)
    g, now_ms = net.genesis, day_start_ms(today)
    assert net.lifecycle == (DEMO_DUE_BOND, DEMO_MATURED_BOND)
    assert DEMO_DUE_BOND not in net.bonds and DEMO_MATURED_BOND not in net.bonds
    due = g.schedules[DEMO_DUE_BOND]
    assert sum(1 for at in due[:-1] if at <= now_ms) >= 20  # coupons for the bench too
    assert due[-1] > now_ms  # not matured
    maturity = g.maturity_ms(DEMO_MATURED_BOND)
    assert maturity is not None and maturity < now_ms
    assert g.schedules[DEMO_MATURED_BOND] == (maturity,)  # only the final period: none owed
    holders = {h.account for h in g.holdings if h.instrument == DEMO_MATURED_BOND}
    assert holders == set(net.banks)


def test_without_a_date_the_demo_network_is_unchanged() -> None:
    plain = demo_genesis(seed=b"tests")
    assert plain.lifecycle == ()
    bonds = [i.id for i in plain.genesis.instruments if i.kind is InstrumentKind.BOND]
    assert bonds == list(plain.bonds)
    dated = demo_genesis(seed=b"tests", lifecycle_date=date(2026, 11, 29))
    assert dated.genesis.chain_id != plain.genesis.chain_id  # the terms are in the chain id


def test_the_demo_coupon_formula_floors_per_holder() -> None:
    t = Transactions(demo_genesis(seed=b"tests", lifecycle_date=date(2026, 11, 29)).genesis)
    assert _coupon_on(10_000_000, DEMO_DUE_BOND, t) == 41_666  # 10^7 x 500 / 120,000
    assert _coupon_on(10_000_000, DEMO_MATURED_BOND, t) == 150_000  # 10^7 x 300 / 20,000


def test_the_demo_fails_when_the_ledger_pays_other_than_the_terms() -> None:
    assert _check("BANK01", 41_666, 41_666) == "= terms"
    with pytest.raises(LifecycleMismatch, match="paid 41667, the terms say 41666"):
        _check("BANK01", 41_667, 41_666)


def test_the_demo_fails_when_a_pending_trade_ends_otherwise() -> None:
    class NoEvent:
        event_proof = None

    with pytest.raises(LifecycleMismatch, match="ended no event, not OK"):
        _expect("funded later", NoEvent(), ResultCode.OK)  # type: ignore[arg-type]
