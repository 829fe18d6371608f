"""Margin calls and substitution on an open repo (issue 18 item 3; docs/ledger.md
"Prices, margin and substitution"): each code with its negative control (the same call
settling once the rule allows it), and the collateral a call adds returned at close.

The repo under test: BANK01 borrows $9,500.00 from BANK02 against 1,000,000 units
($10,000 face) of the first demo bond (2% haircut) and repays $9,510.00 at close.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from node.config import U64_MAX
from node.genesis import DemoNetwork
from node.settlement import (
    AttestPrice,
    CouponPay,
    Holding,
    Instrument,
    InstrumentKind,
    MarginCall,
    RepoClose,
    RepoOpen,
    RepoSubstitute,
    ResultCode,
    collateral_value,
    repo,
    units_for,
)
from node.settlement._lifecycle import coupon_amount
from node.store import MemoryStore
from tests.ledger_helpers import HOUR_MS, TxFactory
from tests.life_helpers import AGENT, run_at
from tests.life_helpers import at as day
from tests.lock_helpers import lock, release
from tests.margin_helpers import PAR, attest, codes, coupon_net, margin_net, run

RC = ResultCode
MIN = 60_000
QTY, PURCHASE, REPURCHASE = 1_000_000, 950_000, 951_000
CLOSE_MS = 4 * HOUR_MS
BORROWER, LENDER = "BANK01", "BANK02"


@pytest.fixture
def net() -> DemoNetwork:
    return margin_net()


@pytest.fixture
def txf(net: DemoNetwork) -> TxFactory:
    return TxFactory(net)


def t(net: DemoNetwork, ms: int) -> int:
    return net.genesis.genesis_time_ms + ms


def open_repo(txf: TxFactory, repo_id: str = "R-1") -> bytes:
    tx = RepoOpen(
        txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, repo_id, BORROWER, LENDER,
        txf.net.bonds[0], QTY, txf.net.cash, PURCHASE, REPURCHASE, 0, txf.t0 + CLOSE_MS,
        txf.t0 + CLOSE_MS + HOUR_MS,
    )  # fmt: skip
    return txf.signed(tx)


def call(
    txf: TxFactory, repo_id: str = "R-1", lender: str = LENDER, borrower: str = BORROWER
) -> bytes:
    tx = MarginCall(txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, repo_id, borrower, lender)
    return txf.signed(tx)


def swap(txf: TxFactory, quantity: int, instrument: str = "", repo_id: str = "R-1") -> bytes:
    tx = RepoSubstitute(
        txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, repo_id, BORROWER, LENDER,
        instrument or txf.net.bonds[1], quantity,
    )  # fmt: skip
    return txf.signed(tx)


def prices(txf: TxFactory, price: int, at_ms: int, bond: str = "", n: int = 2) -> list[bytes]:
    """``n`` sources attest ``price`` as of genesis + ``at_ms``."""
    sources = ("CASHCO", "CSD", "AUDITOR")[:n]
    when = txf.net.genesis.genesis_time_ms + at_ms
    return [attest(txf, price, when, source=s, bond=bond or None) for s in sources]


@pytest.fixture
def store(net: DemoNetwork, txf: TxFactory) -> MemoryStore:
    """The repo open at genesis + 1 minute."""
    s = MemoryStore(net.genesis)
    assert codes(run(s, open_repo(txf), at_ms=MIN)) == [RC.OK]
    return s


def holdings(store: MemoryStore, net: DemoNetwork) -> dict[tuple[str, str], int]:
    return {(p, b): store.balance(p, b) for p in (BORROWER, LENDER) for b in net.bonds}


# --- MarginCall ----------------------------------------------------------------------------


def test_no_deficit_moves_nothing_and_a_price_drop_calls_exactly_the_deficit(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, *prices(txf, 990_000, 2 * MIN), at_ms=2 * MIN)
    before = holdings(store, net)
    assert codes(run(store, call(txf), at_ms=3 * MIN)) == [RC.NO_MARGIN_DEFICIT]
    assert holdings(store, net) == before  # 970,200 covers 951,000: nothing to call
    run(store, *prices(txf, 900_000, 4 * MIN), at_ms=4 * MIN)  # worth 882,000 now
    assert codes(run(store, call(txf), at_ms=5 * MIN)) == [RC.OK]
    need = units_for(REPURCHASE, 900_000, 200)
    assert need == 1_078_232 and collateral_value(need, 900_000, 200) >= REPURCHASE
    extra = need - QTY
    assert store.balance(BORROWER, net.bonds[0]) == before[(BORROWER, net.bonds[0])] - extra
    assert store.balance(LENDER, net.bonds[0]) == before[(LENDER, net.bonds[0])] + extra
    rec = repo(store, "R-1")
    assert rec is not None and rec.quantity == need  # returned at close
    assert codes(run(store, call(txf), at_ms=6 * MIN)) == [RC.NO_MARGIN_DEFICIT]  # covered now


def test_the_called_units_come_back_at_close(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    start = store.balance(BORROWER, net.bonds[0]) + QTY  # what the borrower had before open
    run(store, *prices(txf, 900_000, 2 * MIN), at_ms=2 * MIN)
    assert codes(run(store, call(txf), at_ms=3 * MIN)) == [RC.OK]
    close = RepoClose(
        txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, "R-1", BORROWER, LENDER, (BORROWER,)
    )
    assert codes(run(store, txf.signed(close), at_ms=CLOSE_MS)) == [RC.OK]
    assert store.balance(BORROWER, net.bonds[0]) == start


@pytest.mark.parametrize(
    ("sources", "call_at", "why"),
    [
        (1, 3 * MIN, "one source, k = 2"),
        (2, 2 * MIN + HOUR_MS + 1, "k sources, but older than the max age at the call"),
        (0, 3 * MIN, "no price at all"),
    ],
)
def test_no_fresh_price_moves_nothing(
    store: MemoryStore, txf: TxFactory, sources: int, call_at: int, why: str
) -> None:
    net = txf.net
    if sources:
        run(store, *prices(txf, 900_000, 2 * MIN, n=sources), at_ms=2 * MIN)
    before = holdings(store, net)
    assert codes(run(store, call(txf), at_ms=call_at)) == [RC.NO_FRESH_PRICE], why
    assert holdings(store, net) == before
    run(store, *prices(txf, 900_000, call_at + 1), at_ms=call_at + 1)
    assert codes(run(store, call(txf), at_ms=call_at + 2)) == [RC.OK]  # control: k fresh


def test_only_the_repos_lender_calls_and_only_an_open_repo(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, *prices(txf, 900_000, 2 * MIN), at_ms=2 * MIN)
    # another lender, a borrower the repo does not name (sorting before and after), none
    refused = [
        call(txf, lender="BANK03"),
        call(txf, borrower="AUDITOR"),
        call(txf, borrower="BANK05"),
        call(txf, repo_id="R-404"),
    ]
    assert codes(run(store, *refused, at_ms=3 * MIN)) == [RC.UNAUTHORIZED] * 3 + [RC.NO_SUCH_REPO]
    both = RepoClose(
        txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, "R-1", BORROWER, LENDER,
        (BORROWER, LENDER),
    )  # fmt: skip
    out = run(store, txf.signed(both), call(txf), at_ms=4 * MIN)
    assert codes(out) == [RC.OK, RC.REPO_NOT_OPEN]  # closed first in the block


def test_a_borrower_short_of_units_is_refused_whole(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, *prices(txf, 900_000, 2 * MIN), at_ms=2 * MIN)
    held = store.balance(BORROWER, net.bonds[0])
    away = txf.signed(txf.transfer(BORROWER, "BANK03", held - 1, net.bonds[0]))
    before_lender = store.balance(LENDER, net.bonds[0])
    assert codes(run(store, away, call(txf), at_ms=3 * MIN)) == [
        RC.OK,
        RC.INSUFFICIENT_SECURITIES,
    ]
    assert store.balance(LENDER, net.bonds[0]) == before_lender
    assert store.balance(BORROWER, net.bonds[0]) == 1
    back = txf.signed(txf.transfer("BANK03", BORROWER, held - 1, net.bonds[0]))
    assert codes(run(store, back, call(txf), at_ms=4 * MIN)) == [RC.OK, RC.OK]  # control


def test_a_borrowers_pledged_units_are_locked_not_called(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    """Locks (docs/ledger.md "Locks and swaps"): a margin call takes only units the
    borrower may spend; pledged ones are LOCKED, nothing moved, until released."""
    run(store, *prices(txf, 900_000, 2 * MIN), at_ms=2 * MIN)
    held = store.balance(BORROWER, net.bonds[0])
    pledge = lock(txf, BORROWER, held - 1, "BANK03")
    before_lender = store.balance(LENDER, net.bonds[0])
    assert codes(run(store, pledge, call(txf), at_ms=3 * MIN)) == [RC.OK, RC.LOCKED]
    assert store.balance(LENDER, net.bonds[0]) == before_lender
    assert store.balance(BORROWER, net.bonds[0]) == held
    freed = release(txf, pledge, by="BANK03")
    assert codes(run(store, freed, call(txf), at_ms=4 * MIN)) == [RC.OK, RC.OK]  # control


# --- RepoSubstitute ------------------------------------------------------------------------


def test_substitution_below_value_moves_nothing_and_at_value_swaps_both_legs(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, *prices(txf, 1_000_000, 2 * MIN, bond=net.bonds[1]), at_ms=2 * MIN)
    need = units_for(REPURCHASE, 1_000_000, 500)  # the second bond has a 5% haircut
    assert need == 1_001_053
    before = holdings(store, net)
    assert codes(run(store, swap(txf, need - 1), at_ms=3 * MIN)) == [RC.SUBSTITUTION_BELOW_VALUE]
    assert holdings(store, net) == before
    assert codes(run(store, swap(txf, need), at_ms=4 * MIN)) == [RC.OK]
    old, new = net.bonds
    assert holdings(store, net) == {
        (BORROWER, old): before[(BORROWER, old)] + QTY,
        (LENDER, old): before[(LENDER, old)] - QTY,
        (BORROWER, new): before[(BORROWER, new)] - need,
        (LENDER, new): before[(LENDER, new)] + need,
    }
    rec = repo(store, "R-1")
    assert rec is not None and (rec.bond, rec.quantity) == (new, need)


def test_substitution_needs_a_fresh_price_of_the_new_collateral(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, *prices(txf, 1_000_000, 2 * MIN), at_ms=2 * MIN)  # the old bond's only
    before = holdings(store, net)
    assert codes(run(store, swap(txf, 2 * QTY), at_ms=3 * MIN)) == [RC.NO_FRESH_PRICE]
    assert holdings(store, net) == before
    run(store, *prices(txf, 1_000_000, 3 * MIN, bond=net.bonds[1]), at_ms=3 * MIN)
    assert codes(run(store, swap(txf, 2 * QTY), at_ms=4 * MIN)) == [RC.OK]  # control


def test_substitution_into_ineligible_or_unknown_collateral_is_refused(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    refused = [swap(txf, QTY, net.cash), swap(txf, QTY, "XX0000000000"), swap(txf, 0)]
    assert codes(run(store, *refused, at_ms=2 * MIN)) == [
        RC.NOT_ELIGIBLE_COLLATERAL,
        RC.UNKNOWN_INSTRUMENT,
        RC.INVALID_AMOUNT,
    ]
    rec = repo(store, "R-1")
    assert rec is not None and (rec.bond, rec.quantity) == (net.bonds[0], QTY)


def test_a_call_on_collateral_that_matured_is_refused_and_one_before_moves() -> None:
    """A repo on the second bond (matures 2027-05-20) left open past its close time, its
    default deadline a millisecond before the maturity: a call in the block that reaches
    the maturity is MATURED (the repo lapses only at the end of that block, session 31);
    the same call a day before maturity moves."""
    net = margin_net()
    txf = TxFactory(net)
    maturity = net.genesis.maturity_ms(net.bonds[1])
    assert maturity is not None
    matures = maturity - net.genesis.genesis_time_ms
    for at, code in ((matures - 24 * HOUR_MS, RC.OK), (matures, RC.MATURED)):
        s = MemoryStore(net.genesis)
        tx = RepoOpen(
            txf.chain_id, txf.nonce(), txf.t0 + matures + 48 * HOUR_MS, "R-9", BORROWER,
            LENDER, net.bonds[1], QTY, net.cash, PURCHASE, REPURCHASE, 0,
            txf.t0 + MIN + HOUR_MS, maturity - 1,
        )  # fmt: skip
        assert codes(run(s, txf.signed(tx), at_ms=MIN)) == [RC.OK]
        later = TxFactory(net, now_ms=txf.t0 + at - 2)  # transactions that expire after it
        run(s, *prices(later, 800_000, at - 2, bond=net.bonds[1]), at_ms=at - 2)
        late = MarginCall(later.chain_id, later.nonce(), later.t0 + HOUR_MS, "R-9", BORROWER,
                          LENDER)  # fmt: skip
        assert codes(run(s, later.signed(late), at_ms=at)) == [code]


def _keep_only(txf: TxFactory, store: MemoryStore, account: str, bond: str, keep: int) -> bytes:
    """A transfer leaving ``account`` exactly ``keep`` units of ``bond``."""
    away = store.balance(account, bond) - keep
    return txf.signed(txf.transfer(account, "BANK05", away, bond))


def test_the_borrower_needs_exactly_the_new_units_and_no_more(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, *prices(txf, 1_000_000, 2 * MIN, bond=net.bonds[1]), at_ms=2 * MIN)
    need = units_for(REPURCHASE, 1_000_000, 500)
    short = _keep_only(txf, store, BORROWER, net.bonds[1], need - 1)
    assert codes(run(store, short, swap(txf, need), at_ms=3 * MIN)) == [
        RC.OK,
        RC.INSUFFICIENT_SECURITIES,
    ]
    top_up = txf.signed(txf.transfer("BANK05", BORROWER, 1, net.bonds[1]))
    assert codes(run(store, top_up, swap(txf, need), at_ms=4 * MIN)) == [RC.OK, RC.OK]
    assert store.balance(BORROWER, net.bonds[1]) == 0  # exactly enough: all of it delivered


def test_a_resize_in_kind_returns_the_difference_and_needs_none_of_the_borrowers_units(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    bond = net.bonds[0]
    run(store, *prices(txf, 990_000, 2 * MIN), at_ms=2 * MIN)
    need = units_for(REPURCHASE, 990_000, 200)  # fewer than the QTY the repo holds
    assert need < QTY
    empty = _keep_only(txf, store, BORROWER, bond, 0)
    lender = store.balance(LENDER, bond)
    assert codes(run(store, empty, swap(txf, need, bond), at_ms=3 * MIN)) == [RC.OK, RC.OK]
    assert store.balance(BORROWER, bond) == QTY - need  # the difference came back
    assert store.balance(LENDER, bond) == lender - (QTY - need)
    rec = repo(store, "R-1")
    assert rec is not None and (rec.bond, rec.quantity) == (bond, need)


def test_a_new_bond_maturing_by_the_default_deadline_breaks_the_repos_terms() -> None:
    """Session 31: as at open, the repo's whole life (to its default deadline, not just
    its close time) must fall before the new collateral matures: the second bond may not
    replace the first in a repo closing before its maturity but defaulting on it."""
    net = margin_net()
    maturity = net.genesis.maturity_ms(net.bonds[1])
    assert maturity is not None
    for default_ms, code in ((maturity, RC.REPO_TERMS), (maturity - 1, RC.OK)):
        s, txf = MemoryStore(net.genesis), TxFactory(net)
        tx = RepoOpen(
            txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, "R-1", BORROWER, LENDER,
            net.bonds[0], QTY, net.cash, PURCHASE, REPURCHASE, 0, maturity - HOUR_MS,
            default_ms,
        )  # fmt: skip
        assert codes(run(s, txf.signed(tx), at_ms=MIN)) == [RC.OK]
        run(s, *prices(txf, 1_000_000, 2 * MIN, bond=net.bonds[1]), at_ms=2 * MIN)
        assert codes(run(s, swap(txf, 2 * QTY), at_ms=3 * MIN)) == [code]


def test_a_new_bond_maturing_by_the_close_breaks_the_repos_terms() -> None:
    """A repo on the first bond (2034) closing on the second's maturity (2027-05-20): the
    second may not replace it (REPO_TERMS); closing a millisecond before, it may."""
    net = margin_net()
    maturity = net.genesis.maturity_ms(net.bonds[1])
    assert maturity is not None
    for close_ms, code in (
        (maturity + 1, RC.REPO_TERMS),
        (maturity, RC.REPO_TERMS),
        (maturity - 1, RC.OK),
    ):
        s, txf = MemoryStore(net.genesis), TxFactory(net)
        tx = RepoOpen(
            txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, "R-1", BORROWER, LENDER,
            net.bonds[0], QTY, net.cash, PURCHASE, REPURCHASE, 0, close_ms, close_ms,
        )  # fmt: skip
        assert codes(run(s, txf.signed(tx), at_ms=MIN)) == [RC.OK]
        run(s, *prices(txf, 1_000_000, 2 * MIN, bond=net.bonds[1]), at_ms=2 * MIN)
        assert codes(run(s, swap(txf, 2 * QTY), at_ms=3 * MIN)) == [code]


def test_collateral_quoted_in_another_cash_is_not_eligible() -> None:
    """A repo in another cash token (one sorting before USD.CASHCO, one after): the bond's
    price is quoted in USD.CASHCO, so it values nothing there (NOT_ELIGIBLE_COLLATERAL);
    the same repo in USD.CASHCO is called."""
    net = margin_net()
    others = [Instrument(i, InstrumentKind.CASH, "CASHCO", "USD") for i in ("USD.AAA", "USD.ZED")]
    g = replace(
        net.genesis,
        instruments=(*net.genesis.instruments, *others),
        holdings=(*net.genesis.holdings, *(Holding(LENDER, o.id, PURCHASE) for o in others)),
    )
    zed = replace(net, genesis=g)
    cases = [(o.id, RC.NOT_ELIGIBLE_COLLATERAL) for o in others] + [(net.cash, RC.OK)]
    for cash, code in cases:
        s, txf = MemoryStore(g), TxFactory(zed)
        tx = RepoOpen(
            txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, "R-1", BORROWER, LENDER,
            net.bonds[0], QTY, cash, PURCHASE, REPURCHASE, 0, txf.t0 + CLOSE_MS,
            txf.t0 + CLOSE_MS,
        )  # fmt: skip
        assert codes(run(s, txf.signed(tx), at_ms=MIN)) == [RC.OK]
        run(s, *prices(txf, 900_000, 2 * MIN), at_ms=2 * MIN)
        assert codes(run(s, call(txf), at_ms=3 * MIN)) == [code]


def test_a_resize_up_in_kind_needs_exactly_the_added_units(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    bond = net.bonds[0]
    run(store, *prices(txf, 990_000, 2 * MIN), at_ms=2 * MIN)
    nine = _keep_only(txf, store, BORROWER, bond, 9)
    assert codes(run(store, nine, swap(txf, QTY + 10, bond), at_ms=3 * MIN)) == [
        RC.OK,
        RC.INSUFFICIENT_SECURITIES,
    ]
    ten = txf.signed(txf.transfer("BANK05", BORROWER, 1, bond))
    assert codes(run(store, ten, swap(txf, QTY + 10, bond), at_ms=4 * MIN)) == [RC.OK, RC.OK]
    assert store.balance(BORROWER, bond) == 0
    rec = repo(store, "R-1")
    assert rec is not None and rec.quantity == QTY + 10


def test_a_steep_fall_calls_more_units_than_the_repo_held(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, *prices(txf, 450_000, 2 * MIN), at_ms=2 * MIN)  # 45.0: more than double
    before = store.balance(LENDER, net.bonds[0])
    assert codes(run(store, call(txf), at_ms=3 * MIN)) == [RC.OK]
    extra = units_for(REPURCHASE, 450_000, 200) - QTY
    assert extra > QTY  # the call more than doubles the collateral
    assert store.balance(LENDER, net.bonds[0]) == before + extra


def test_substituting_a_bond_that_sorts_after_the_old_one_needs_all_its_units() -> None:
    """A repo on the second bond replaced by the first (whose ISIN sorts after it): the
    borrower must hold every new unit (one fewer: INSUFFICIENT_SECURITIES)."""
    net = margin_net()
    old, new = net.bonds[1], net.bonds[0]
    assert new > old
    for keep, code in ((0, RC.INSUFFICIENT_SECURITIES), (1, RC.OK)):
        s, txf = MemoryStore(net.genesis), TxFactory(net)
        tx = RepoOpen(
            txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, "R-1", BORROWER, LENDER, old,
            QTY, net.cash, PURCHASE, REPURCHASE, 0, txf.t0 + CLOSE_MS, txf.t0 + CLOSE_MS,
        )  # fmt: skip
        assert codes(run(s, txf.signed(tx), at_ms=MIN)) == [RC.OK]
        run(s, *prices(txf, 1_000_000, 2 * MIN, bond=new), at_ms=2 * MIN)
        need = units_for(REPURCHASE, 1_000_000, 200)
        leave = _keep_only(txf, s, BORROWER, new, need - 1 + keep)
        assert codes(run(s, leave, swap(txf, need, new), at_ms=3 * MIN)) == [RC.OK, code]


def test_a_call_that_would_take_the_repos_quantity_past_u64_is_overflow() -> None:
    """Title transfer lets the lender hand the collateral back to the borrower, so the
    units a call demands can exceed what the record may count: OVERFLOW, nothing moves
    (not a failed encoding halting every validator). The bond's whole supply (2**64 - 1)
    is BANK01's, the repo holds 2**63, the price is one cent per 1,000,000 units. Control:
    a repurchase amount one cent-step lower fits the record and the call moves."""
    net = margin_net()
    bond = net.bonds[0]
    held = tuple(h for h in net.genesis.holdings if h.instrument != bond)
    g = replace(net.genesis, holdings=(*held, Holding(BORROWER, bond, U64_MAX)))
    big = replace(net, genesis=g)
    half = 2**63
    over = -(-(U64_MAX + 1) * 9_800 // 10**10)  # the least amount needing > 2**64 - 1 units
    fits = U64_MAX * 9_800 // 10**10
    for repurchase, code in ((over, RC.OVERFLOW), (fits, RC.OK)):
        s, txf = MemoryStore(g), TxFactory(big)
        tx = RepoOpen(
            txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, "R-1", BORROWER, LENDER, bond,
            half, net.cash, PURCHASE, repurchase, 0, txf.t0 + CLOSE_MS, txf.t0 + CLOSE_MS,
        )  # fmt: skip
        back = txf.signed(txf.transfer(LENDER, BORROWER, half, bond))
        assert codes(run(s, txf.signed(tx), back, at_ms=MIN)) == [RC.OK, RC.OK]
        run(s, *prices(txf, 1, 2 * MIN), at_ms=2 * MIN)
        assert codes(run(s, call(txf), at_ms=3 * MIN)) == [code]
        rec = repo(s, "R-1")
        assert rec is not None and (rec.quantity == half) is (code is RC.OVERFLOW)


# --- manufactured coupons across a change of collateral (manuf) ---------------------------
# The close nets the coupons the lender received on the collateral it held: each margin
# call or substitution closes the current collateral's span, so a coupon counts on the
# bond and quantity held when it was dated (docs/ledger.md "Prices, margin and
# substitution"). ``coupon_net``: the first demo bond pays 4.25% on 15 May and 15 November,
# the second 6.00% monthly on the 20th, and TREASURY, their agent, holds the cash.

EXP = 2**63  # these tests jump weeks ahead; nothing should expire on the way


def _coupon(txf: TxFactory, bond: str, iso: str) -> bytes:
    """The agent's payment of ``bond``'s period dated ``iso``."""
    period = txf.net.genesis.schedules[bond].index(day(iso)) + 1
    return txf.signed(CouponPay(txf.chain_id, txf.nonce(), EXP, bond, period, AGENT))


def _open_on(txf: TxFactory, close_ms: int) -> bytes:
    tx = RepoOpen(
        txf.chain_id, txf.nonce(), EXP, "R-1", BORROWER, LENDER, txf.net.bonds[0], QTY,
        txf.net.cash, PURCHASE, REPURCHASE, 0, close_ms, close_ms + HOUR_MS,
    )  # fmt: skip
    return txf.signed(tx)


def _priced(txf: TxFactory, price: int, now_ms: int, bond: str) -> list[bytes]:
    """Two sources' ``price`` of ``bond`` as of ``now_ms``: a price in force then."""
    return [
        txf.signed(AttestPrice(txf.chain_id, txf.nonce(), EXP, s, bond, price, now_ms))
        for s in ("CASHCO", "CSD")
    ]


def _closed(s: MemoryStore, txf: TxFactory, time_ms: int) -> tuple[int, int]:
    """Close R-1 (both parties) at ``time_ms``: (manufactured netted, cash paid)."""
    tx = RepoClose(txf.chain_id, txf.nonce(), EXP, "R-1", BORROWER, LENDER, (BORROWER, LENDER))
    assert codes(run_at(s, time_ms, txf.signed(tx))) == [RC.OK]
    rec = repo(s, "R-1")
    assert rec is not None
    return rec.manufactured, rec.close_amount


def _call(txf: TxFactory) -> bytes:
    return txf.signed(MarginCall(txf.chain_id, txf.nonce(), EXP, "R-1", BORROWER, LENDER))


def _swap(txf: TxFactory, quantity: int, instrument: str) -> bytes:
    tx = RepoSubstitute(
        txf.chain_id, txf.nonce(), EXP, "R-1", BORROWER, LENDER, instrument, quantity
    )
    return txf.signed(tx)


@pytest.mark.parametrize("call_day", ["2026-05-14", "2026-05-16"])
def test_called_units_earn_the_borrower_only_coupons_dated_after_the_call(call_day: str) -> None:
    """Opened 14 May; a price fall calls units at noon on 14 May (before the 15 May
    coupon) or on 16 May (after it); closed 18 May. The coupon nets on the units the
    lender held on 15 May: the called ones too if called before, not if after."""
    net = coupon_net()
    s, txf, bond = MemoryStore(net.genesis), TxFactory(net), net.bonds[0]
    assert codes(run_at(s, day("2026-05-14"), _open_on(txf, day("2026-05-18")))) == [RC.OK]
    call_ms = day(call_day, 12 * HOUR_MS)
    blocks = [
        (day("2026-05-15"), [_coupon(txf, bond, "2026-05-15")]),
        (call_ms - MIN, _priced(txf, 900_000, call_ms - MIN, bond)),
        (call_ms, [_call(txf)]),
    ]
    for time_ms, raws in sorted(blocks):
        assert set(codes(run_at(s, time_ms, *raws))) == {RC.OK}
    called_first = call_ms < day("2026-05-15")
    rec = repo(s, "R-1")  # after the coupon the exposure is 21,250 less: fewer units called
    assert rec is not None and rec.quantity == (1_078_232 if called_first else 1_054_139)
    held_on_15_may = rec.quantity if called_first else QTY
    coupon = coupon_amount(net.genesis.instrument_by_id[bond], held_on_15_may)
    assert coupon == (22_912 if called_first else 21_250)
    assert _closed(s, txf, day("2026-05-18")) == (coupon, REPURCHASE - coupon)


def test_a_call_and_close_before_any_coupon_date_net_nothing() -> None:
    """Control: the same call with the repo closed on 14 May, before the coupon date."""
    net = coupon_net()
    s, txf, bond = MemoryStore(net.genesis), TxFactory(net), net.bonds[0]
    assert codes(run_at(s, day("2026-05-14"), _open_on(txf, day("2026-05-18")))) == [RC.OK]
    call_ms = day("2026-05-14", 12 * HOUR_MS)
    run_at(s, call_ms - MIN, *_priced(txf, 900_000, call_ms - MIN, bond))
    assert codes(run_at(s, call_ms, _call(txf))) == [RC.OK]
    assert _closed(s, txf, day("2026-05-14", 20 * HOUR_MS)) == (0, REPURCHASE)


def test_a_substitution_nets_the_old_bonds_coupons_before_it_and_the_new_ones_after() -> None:
    """Opened 14 May on 1,000,000 units of the first bond, which pays 21,250 on 15 May;
    substituted on 1 June by 2,000,000 units of the second, whose 20 May coupon went to
    holders the repo did not make (the lender held none of it for the repo) and whose 20
    June coupon is 10,000; closed 25 June: 31,250 netted."""
    net = coupon_net()
    s, txf = MemoryStore(net.genesis), TxFactory(net)
    old, new = net.bonds
    assert codes(run_at(s, day("2026-05-14"), _open_on(txf, day("2026-06-25")))) == [RC.OK]
    run_at(s, day("2026-05-15"), _coupon(txf, old, "2026-05-15"))
    run_at(s, day("2026-05-20"), _coupon(txf, new, "2026-05-20"))
    sub_ms = day("2026-06-01")
    run_at(s, sub_ms - MIN, *_priced(txf, PAR, sub_ms - MIN, new))
    assert codes(run_at(s, sub_ms, _swap(txf, 2 * QTY, new))) == [RC.OK]
    run_at(s, day("2026-06-20"), _coupon(txf, new, "2026-06-20"))
    inst = net.genesis.instrument_by_id
    before, after = coupon_amount(inst[old], QTY), coupon_amount(inst[new], 2 * QTY)
    assert (before, after) == (21_250, 10_000)
    assert _closed(s, txf, day("2026-06-25")) == (31_250, REPURCHASE - 31_250)


def test_a_substitution_between_coupon_dates_nets_nothing() -> None:
    """Control: opened 16 May, substituted 17 May, closed 19 May: neither bond has a
    coupon dated in its span, though both have paid ones before."""
    net = coupon_net()
    s, txf = MemoryStore(net.genesis), TxFactory(net)
    old, new = net.bonds
    run_at(s, day("2026-05-15"), _coupon(txf, old, "2026-05-15"))
    assert codes(run_at(s, day("2026-05-16"), _open_on(txf, day("2026-05-19")))) == [RC.OK]
    sub_ms = day("2026-05-17")
    run_at(s, sub_ms - MIN, *_priced(txf, PAR, sub_ms - MIN, new))
    assert codes(run_at(s, sub_ms, _swap(txf, 2 * QTY, new))) == [RC.OK]
    assert _closed(s, txf, day("2026-05-19")) == (0, REPURCHASE)
