"""``make demo``, prices and margin (issue 18 item 3; docs/ledger.md "Prices, margin and
substitution"): two price sources attest both tradable bonds, a bank borrows against the
first, its lender's margin call finds no deficit at 99.0, the price falls to 90.0 and the
call moves exactly the deficit, both parties substitute the second bond, and they close
the repo early, the substituted collateral returned.

Every step is checked against the ledger's own valuation (``collateral_value``,
``units_for``) and the balances the nodes report; any other outcome fails the demo.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from client import RejectedError, ResultCode, Transactions, sign
from devtools.demo.lifecycle import LifecycleMismatch
from node.genesis import DemoNetwork
from node.settlement import units_for

if TYPE_CHECKING:  # devtools.demo.run imports this module, so only for the annotations
    from devtools.demo.run import ValidatorClients

__all__ = ["MarginMismatch", "show_margin"]

BORROWER, LENDER = "BANK05", "BANK06"  # the pending and lock steps spend BANK03's first bond
SOURCES = ("CASHCO", "CSD")  # two of the three genesis price sources: k = 2
REPO_ID = "DEMO-MARGIN"
UNITS, PURCHASE, REPURCHASE = 1_000_000, 950_000, 951_000  # $10,000 face for $9,500.00
PAR_99, PAR_90, PAR_99_5 = 990_000, 900_000, 995_000  # per 1,000,000 units, in cents
HOUR_MS = 3_600_000
AS_OF_LAG_MS = 1_000  # as of a second ago: the block's time may trail this clock
WAIT_TIMEOUT_S = 60.0


class MarginMismatch(LifecycleMismatch):
    """The ledger answered a margin step other than its rules say: the demo fails (a
    LifecycleMismatch, so ``devtools.demo.run`` reports it the same way)."""


async def show_margin(clients: ValidatorClients, demo: DemoNetwork) -> None:
    """Prices, a repo, a margin call with no deficit, one after a fall, a substitution."""
    g = clients.genesis
    if g.margin.is_default:
        print("\nmargin: this network has no price sources (generated before them)")
        return
    bond, other = demo.bonds
    haircut = {h.instrument: h.haircut_bp for h in g.margin.haircuts}
    print(f"\nmargin: {' and '.join(SOURCES)} price the bonds (k = {g.margin.threshold})")
    await _prices(clients, bond, PAR_99)
    await _prices(clients, other, PAR_99_5)
    await _open(clients, demo)
    await _expect(clients, _call(clients), ResultCode.NO_MARGIN_DEFICIT, "margin call at 99.0")
    await _prices(clients, bond, PAR_90)
    before = await _units(clients, LENDER, bond)
    await _expect(clients, _call(clients), ResultCode.OK, "margin call at 90.0")
    extra = units_for(REPURCHASE, PAR_90, haircut[bond]) - UNITS
    if await _units(clients, LENDER, bond) - before != extra:
        raise MarginMismatch(f"the margin call did not move exactly {extra:,} units")
    print(f"  the call moved {extra:,} more units of {bond} to {LENDER}, added to the repo")
    need = units_for(REPURCHASE, PAR_99_5, haircut[other])
    await _expect(clients, _substitute(clients, other, need), ResultCode.OK, "substitution")
    print(f"  {BORROWER} and {LENDER} substituted {need:,} units of {other} for them")
    back = await _units(clients, BORROWER, other)
    await _expect(clients, _close(clients), ResultCode.OK, "early close by both")
    if await _units(clients, BORROWER, other) - back != need:
        raise MarginMismatch("the close did not return the substituted collateral")
    print(f"  closed early by both: {need:,} units of {other} back to {BORROWER}")


async def _prices(clients: ValidatorClients, bond: str, price: int) -> None:
    g, t = clients.genesis, Transactions(clients.genesis)
    as_of = int(time.time() * 1000) - AS_OF_LAG_MS
    for source in SOURCES:
        tx = t.attest_price(source, bond, price, as_of)
        await clients.all[0].submit(sign(tx, clients.keys[source], genesis=g))
    print(f"  {bond} at {price / 10_000:.2f}% of face")


async def _open(clients: ValidatorClients, demo: DemoNetwork) -> None:
    g, t = clients.genesis, Transactions(clients.genesis)
    now = int(time.time() * 1000)
    tx = t.repo_open(
        REPO_ID, BORROWER, LENDER, demo.bonds[0], UNITS, demo.cash, PURCHASE,
        now + HOUR_MS, now + 2 * HOUR_MS, repurchase_amount=REPURCHASE,
    )  # fmt: skip
    signed = sign(tx, clients.keys[BORROWER], clients.keys[LENDER], genesis=g)
    await _expect(clients, signed.raw, ResultCode.OK, "repo open")
    print(f"  {BORROWER} borrows ${PURCHASE / 100:,.2f} from {LENDER} against {UNITS:,} units")


def _call(clients: ValidatorClients) -> bytes:
    g = clients.genesis
    tx = Transactions(g).margin_call(REPO_ID, BORROWER, LENDER)
    return sign(tx, clients.keys[LENDER], genesis=g).raw


def _substitute(clients: ValidatorClients, instrument: str, quantity: int) -> bytes:
    g = clients.genesis
    tx = Transactions(g).repo_substitute(REPO_ID, BORROWER, LENDER, instrument, quantity)
    return sign(tx, clients.keys[BORROWER], clients.keys[LENDER], genesis=g).raw


def _close(clients: ValidatorClients) -> bytes:
    g = clients.genesis
    tx = Transactions(g).repo_close(REPO_ID, BORROWER, LENDER, BORROWER, LENDER)
    return sign(tx, clients.keys[BORROWER], clients.keys[LENDER], genesis=g).raw


async def _expect(clients: ValidatorClients, raw: bytes, want: ResultCode, what: str) -> None:
    try:
        receipt = await clients.all[0].submit(raw, timeout_s=WAIT_TIMEOUT_S)
    except RejectedError as e:
        receipt = e.receipt
    if receipt.code is not want:
        raise MarginMismatch(f"{what}: {receipt.code.name}, expected {want.name}")
    if want is not ResultCode.OK:
        print(f"  {what}: {receipt.code.name}")


async def _units(clients: ValidatorClients, account: str, bond: str) -> int:
    return (await clients.all[0].balances(account)).amounts.get(bond, 0)
