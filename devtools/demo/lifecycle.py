"""``make demo``, the bond lifecycle (issue 14 item 6): after the DvP trades, a coupon paid
to every holder, a pending trade that waits and settles once its seller is funded, one
that fails at its deadline, and a redemption at maturity, each result verified offline.

The demo network's lifecycle bonds (``node.genesis.demo_lifecycle_bonds``) are dated
relative to the day the network was generated and block time is the wall clock, so a
coupon is already due and a bond has already matured. Every amount printed is checked
against the bond's terms computed here, independently of the ledger: a mismatch fails the
demo.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from client import (
    AsyncLedgerClient,
    Receipt,
    RejectedError,
    ResultCode,
    Transactions,
    accept_dvp,
    propose_dvp,
    sign,
    verify_receipt,
)
from node.genesis import DEMO_DUE_BOND, DEMO_MATURED_BOND, DemoNetwork

if TYPE_CHECKING:  # devtools.demo.run imports this module, so only for the annotations
    from devtools.demo.run import ValidatorClients

__all__ = ["LifecycleMismatch", "show_lifecycle"]

AGENT = "TREASURY"  # the demo bonds' issuer, and so their paying agent
AGENT_CASH = 1_000_000_000  # cents the cash issuer gives the agent to pay with
SHORT_BY = 1_000_000  # bond units the pending trades' sellers lack
FAIL_DEADLINE_S = 3.0  # the trade never funded fails this long after it is signed
WAIT_TIMEOUT_S = 60.0
DEADLINE_MARGIN_S = 0.5  # past the deadline on this clock, so the next block's time is too


class LifecycleMismatch(Exception):
    """The ledger paid an amount other than the bond's terms say: the demo fails."""


async def show_lifecycle(clients: ValidatorClients, demo: DemoNetwork) -> None:
    """Fund the paying agent, then the four lifecycle steps, each printed and checked."""
    if demo.lifecycle != (DEMO_DUE_BOND, DEMO_MATURED_BOND):
        print("\nlifecycle: this network has no lifecycle bonds (generated before them)")
        return
    client, t = clients.all[0], Transactions(clients.genesis)
    mint = t.issue(demo.cash, AGENT, AGENT_CASH, "CASHCO")
    await client.submit(sign(mint, clients.keys["CASHCO"], genesis=clients.genesis))
    await _coupon(clients, demo, t)
    never, deadline = await _pending(clients, demo, t)
    # A deadline ends a trade in the first block after it; an idle cluster makes none, so
    # the redemption's block is that block.
    await asyncio.sleep(max(0.0, deadline - time.time()) + DEADLINE_MARGIN_S)
    await _redemption(clients, demo, t)
    await _failed(client, never, t)


def _coupon_on(units: int, bond: str, t: Transactions) -> int:
    """The terms' formula: units x face x bp / (10,000 x freq), floored."""
    inst = next(i for i in t.genesis.instruments if i.id == bond)
    return units * inst.unit_face_minor * inst.coupon_bp // (10_000 * inst.coupon_freq)


def _face(bond: str, t: Transactions) -> int:
    return next(i.unit_face_minor for i in t.genesis.instruments if i.id == bond)


async def _holdings(
    client: AsyncLedgerClient, demo: DemoNetwork, bond: str
) -> dict[str, tuple[int, int]]:
    """(bond units, cash) of every bank."""
    out = {}
    for bank in demo.banks:
        by = (await client.balances(bank)).amounts
        out[bank] = (by.get(bond, 0), by.get(demo.cash, 0))
    return out


def _check(what: str, got: int, want: int) -> str:
    if got != want:
        raise LifecycleMismatch(f"{what}: the ledger paid {got}, the terms say {want}")
    return "= terms"


async def _coupon(clients: ValidatorClients, demo: DemoNetwork, t: Transactions) -> None:
    """The latest coupon period already due (the final one is paid by redemption)."""
    bond, client = DEMO_DUE_BOND, clients.all[0]
    now_ms = int(time.time() * 1000)
    payable = t.genesis.schedules[bond][:-1]
    period = max(k for k, at in enumerate(payable, start=1) if at <= now_ms)
    before = await _holdings(client, demo, bond)
    receipt = await client.submit(
        sign(t.coupon(bond, period), clients.keys[AGENT], genesis=t.genesis)
    )
    verify_receipt(receipt, t.genesis)
    after = await _holdings(client, demo, bond)
    print(
        f"\ncoupon: {bond} period {period} of {len(payable) + 1} paid by {AGENT}: "
        f"{receipt.code.name} at height {receipt.height}, receipt verified offline"
    )
    print(f"  {'holder':<8}{'units':>14}{'received $':>14}  units x face x bp / (10,000 x freq)")
    for bank, (units, cash) in before.items():
        got, want = after[bank][1] - cash, _coupon_on(units, bond, t)
        print(f"  {bank:<8}{units:>14,}{got / 100:>14,.2f}  {_check(bank, got, want)}")


async def _pending(
    clients: ValidatorClients, demo: DemoNetwork, t: Transactions
) -> tuple[bytes, float]:
    """Two under-funded trades: one whose seller is then funded (it settles, OK), one
    never funded (it ends FAILED_DEADLINE, see _failed). Both wait as PENDING_SETTLEMENT
    first. Returns the never-funded trade's id and deadline (Unix seconds)."""
    bond, client = demo.bonds[0], clients.all[0]
    units = {b: u for b, (u, _) in (await _holdings(client, demo, bond)).items()}
    short = {s: units[s] + SHORT_BY for s in ("BANK03", "BANK05")}
    funded = _signed(clients, t, ("BANK03", "BANK01", bond, short["BANK03"]), demo.cash, None)
    deadline = time.time() + FAIL_DEADLINE_S
    never = _signed(
        clients, t, ("BANK05", "BANK02", bond, short["BANK05"]), demo.cash, FAIL_DEADLINE_S
    )
    print(f"\npending settlement: two trades whose seller is {SHORT_BY:,} {bond} units short")
    first = await asyncio.gather(
        *(client.submit(raw, prove_result=True) for raw in (funded, never))
    )
    for name, r in zip(("funded later", "never funded"), first, strict=True):
        verify_receipt(r, t.genesis)
        print(f"  {name:<13} {r.code.name} at height {r.height}, receipt verified offline")
    transfer = t.transfer(bond, "BANK04", "BANK03", SHORT_BY)
    moved = await client.submit(sign(transfer, clients.keys["BANK04"], genesis=t.genesis))
    print(f"  BANK04 transfers {SHORT_BY:,} units to BANK03 at height {moved.height}")
    settled = await client.wait_settled(first[0].tx_id, timeout_s=WAIT_TIMEOUT_S)
    _print_event("funded later", settled, t)
    _expect("funded later", settled, ResultCode.OK)
    print(f"  never funded: its deadline is {FAIL_DEADLINE_S:.0f} s after it was signed")
    return first[1].tx_id, deadline


async def _failed(client: AsyncLedgerClient, tx_id: bytes, t: Transactions) -> None:
    """The never-funded trade's final event, proven: FAILED_DEADLINE."""
    try:
        failed = await client.wait_settled(tx_id, timeout_s=WAIT_TIMEOUT_S)
    except RejectedError as e:
        failed = e.receipt
    print("\npending settlement, the trade never funded, after its deadline:")
    _print_event("never funded", failed, t)
    _expect("never funded", failed, ResultCode.FAILED_DEADLINE)


def expect_code(what: str, r: Receipt, want: ResultCode) -> None:
    """LifecycleMismatch unless ``r`` ended ``want`` (the demo steps' check of a result)."""
    if r.code is not want:
        raise LifecycleMismatch(f"{what} ended {r.code.name}, not {want.name}")


def _expect(name: str, r: Receipt, want: ResultCode) -> None:
    got = "no event" if r.event_proof is None else r.event_proof.code.name
    if got != want.name:
        raise LifecycleMismatch(f"the {name} trade ended {got}, not {want.name}")


def _signed(
    clients: ValidatorClients,
    t: Transactions,
    terms: tuple[str, str, str, int],
    cash: str,
    deadline_s: float | None,
) -> bytes:
    """A pending DvP at 0.99 per unit, proposed by the seller and co-signed by the buyer."""
    seller, buyer, bond, qty = terms
    dvp = t.pending_dvp(seller, buyer, bond, qty, cash, qty * 99 // 100, deadline_s)
    offer = propose_dvp(dvp, clients.keys[seller], t.genesis)
    return accept_dvp(offer, clients.keys[buyer], t.genesis).raw


def _print_event(name: str, r: Receipt, t: Transactions) -> None:
    verify_receipt(r, t.genesis)
    ev = r.event_proof
    outcome = "no event" if ev is None else f"{ev.code.name} event at height {ev.height}"
    print(f"  {name:<13} {outcome}, proven by the receipt, verified offline")


async def _redemption(clients: ValidatorClients, demo: DemoNetwork, t: Transactions) -> None:
    """RedeemAll of the matured bond: every holder's units burned for face plus the final
    coupon on them."""
    bond, client = DEMO_MATURED_BOND, clients.all[0]
    before = await _holdings(client, demo, bond)
    receipt = await client.submit(sign(t.redeem_all(bond), clients.keys[AGENT], genesis=t.genesis))
    verify_receipt(receipt, t.genesis)
    after = await _holdings(client, demo, bond)
    maturity = next(i.maturity_date for i in t.genesis.instruments if i.id == bond)
    print(
        f"\nredemption: {bond} matured {maturity}; RedeemAll by {AGENT}: "
        f"{receipt.code.name} at height {receipt.height}, receipt verified offline"
    )
    print(f"  {'holder':<8}{'burned':>14}{'left':>8}{'received $':>14}  face + final coupon")
    for bank, (units, cash) in before.items():
        left, got = after[bank][0], after[bank][1] - cash
        want = units * _face(bond, t) + _coupon_on(units, bond, t)
        print(
            f"  {bank:<8}{units - left:>14,}{left:>8}{got / 100:>14,.2f}  {_check(bank, got, want)}"
        )
        if left:
            raise LifecycleMismatch(f"{bank} still holds {left} units of {bond} after RedeemAll")
