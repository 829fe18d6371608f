"""``make demo``, a freeze (issue 15 item 3): the regulator freezes a bank's account, a
trade with that bank is refused ``FROZEN`` with nothing moved, the freeze is listed, the
regulator lifts it, and the same terms, signed again, settle.

Every outcome is checked, and every receipt verified offline against genesis: a trade
that settles while the account is frozen, or is still refused after the unfreeze, fails
the demo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from client import Receipt, ResultCode, Transactions, sign, verify_receipt
from devtools.demo.lifecycle import LifecycleMismatch, expect_code
from node.genesis import DemoNetwork
from node.settlement import FreezeReason, Transaction

if TYPE_CHECKING:  # devtools.demo.run imports this module, so only for the annotations
    from devtools.demo.run import ValidatorClients

__all__ = ["show_freeze"]

REGULATOR = "REGULATOR"
SELLER, FROZEN_BANK = "BANK01", "BANK02"
QUANTITY, PRICE = 1_000_00, 998_75  # $1,000 face at 99.875


async def show_freeze(clients: ValidatorClients, demo: DemoNetwork) -> None:
    """Freeze, a refused trade, the freeze list, unfreeze, the trade settles."""
    client, t = clients.all[0], Transactions(clients.genesis)
    bond = demo.bonds[0]
    freeze = t.freeze(FROZEN_BANK, REGULATOR, FreezeReason.AML_INVESTIGATION)
    frozen_at = await _signed_by_regulator(clients, t, freeze)
    print(
        f"\nfreeze: {REGULATOR} freezes {FROZEN_BANK}'s account "
        f"({FreezeReason.AML_INVESTIGATION.name}) at height {frozen_at.height}"
    )
    before = (await client.balances(FROZEN_BANK)).amounts
    refused = await _trade(clients, demo, bond)
    expect_code("the trade with the frozen bank", refused, ResultCode.FROZEN)
    if (await client.balances(FROZEN_BANK)).amounts != before:
        raise LifecycleMismatch(f"{FROZEN_BANK}'s balances changed while it was frozen")
    print(
        f"  {SELLER} sells {QUANTITY / 100:,.2f} {bond} to {FROZEN_BANK}: "
        f"{refused.code.name} at height {refused.height}, nothing moved"
    )
    _, listed = await client.freezes()
    for f in listed:
        target = f.account + (f" / {f.instrument}" if f.instrument else " (account)")
        print(f"  listed: {target}, {f.reason.name}, by {f.by} at height {f.height}")
    lifted = await _signed_by_regulator(clients, t, t.unfreeze(FROZEN_BANK, REGULATOR))
    settled = await _trade(clients, demo, bond)
    expect_code("the trade after the unfreeze", settled, ResultCode.OK)
    print(
        f"  {REGULATOR} unfreezes at height {lifted.height}; the same terms signed again: "
        f"{settled.code.name} at height {settled.height}"
    )
    print("  every receipt verified offline against genesis")


async def _signed_by_regulator(
    clients: ValidatorClients, t: Transactions, tx: Transaction
) -> Receipt:
    receipt = await clients.all[0].submit(sign(tx, clients.keys[REGULATOR], genesis=t.genesis))
    verify_receipt(receipt, t.genesis)
    return receipt


async def _trade(clients: ValidatorClients, demo: DemoNetwork, bond: str) -> Receipt:
    """The seller proposes, the frozen bank co-signs; the final receipt, refused or not."""
    return await clients.final(
        clients.trade((SELLER, FROZEN_BANK, bond, QUANTITY, PRICE), demo.cash)
    )
