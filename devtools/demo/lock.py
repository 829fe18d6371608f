"""``make demo``, locks and swaps (issue 18 items 1 and 4): a bank pledges bonds to
another without moving them, a transfer of the pledged bonds is refused ``LOCKED`` with
nothing moved, the lock is listed, the beneficiary releases it and the same transfer
settles; then the two banks swap one bond for the other, both legs at once.

Every outcome is checked, and every receipt verified offline against genesis: a spend of
locked units that settles, or a swap that moves one leg only, fails the demo.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from client import Receipt, ResultCode, Transactions, sign
from devtools.demo.lifecycle import LifecycleMismatch, expect_code
from node.genesis import DemoNetwork
from node.settlement import Transaction

if TYPE_CHECKING:  # devtools.demo.run imports this module, so only for the annotations
    from devtools.demo.run import ValidatorClients

__all__ = ["show_locks"]

HOLDER, BENEFICIARY = "BANK03", "BANK04"
PLEDGED = 10_000_00  # $10,000 face of the pledged bonds, transferred once released
SWAP_GIVE, SWAP_TAKE = 5_000_00, 4_900_00


async def show_locks(clients: ValidatorClients, demo: DemoNetwork) -> None:
    """Lock, a refused spend, the lock list, release, the spend settles, a swap."""
    client, t = clients.all[0], Transactions(clients.genesis)
    # The bonds each bank holds most of, after the trades above.
    mine = (await client.balances(HOLDER)).amounts
    theirs = (await client.balances(BENEFICIARY)).amounts
    bond = max(demo.bonds, key=lambda b: mine.get(b, 0))
    other = max((b for b in demo.bonds if b != bond), key=lambda b: theirs.get(b, 0))
    held = mine[bond]
    until = int(time.time() * 1000) + 3_600_000
    pledge = await _submit(clients, t.lock(HOLDER, bond, held, BENEFICIARY, until))
    print(
        f"\nlocks: {HOLDER} pledges all its {held / 100:,.2f} {bond} to {BENEFICIARY} "
        f"(both sign) at height {pledge.height}; the units stay in its balance"
    )
    spend = t.transfer(bond, HOLDER, BENEFICIARY, PLEDGED)
    refused = await _submit(clients, spend)
    expect_code("a transfer of locked units", refused, ResultCode.LOCKED)
    if (await client.balances(HOLDER)).amounts[bond] != held:
        raise LifecycleMismatch(f"{HOLDER}'s pledged bonds moved")
    print(f"  {HOLDER} transfers {PLEDGED / 100:,.2f} of them: {refused.code.name}, nothing moved")
    for k in (await client.locks(HOLDER))[1]:
        print(f"  listed: {k.lock_id.hex()[:16]}  {k.amount / 100:,.2f} {k.instrument} "
              f"for {k.beneficiary} until {k.until_ms}")  # fmt: skip
    released = await _submit(clients, t.release_lock(pledge.tx_id, HOLDER, BENEFICIARY))
    settled = await _submit(clients, t.transfer(bond, HOLDER, BENEFICIARY, PLEDGED))
    expect_code("the transfer after the release", settled, ResultCode.OK)
    print(
        f"  {BENEFICIARY} releases it at height {released.height}; the transfer, signed "
        f"again: {settled.code.name} at height {settled.height}"
    )
    swap = t.swap(HOLDER, bond, SWAP_GIVE, BENEFICIARY, other, SWAP_TAKE)
    swapped = await _submit(clients, swap)
    expect_code("the swap", swapped, ResultCode.OK)
    print(
        f"  swap: {HOLDER} gives {SWAP_GIVE / 100:,.2f} {bond} for {SWAP_TAKE / 100:,.2f} "
        f"{other} of {BENEFICIARY}, both legs at height {swapped.height}"
    )
    print("  every receipt verified offline against genesis")


async def _submit(clients: ValidatorClients, tx: Transaction) -> Receipt:
    """Signed by every party it needs; the final receipt, refused or not, verified."""
    stx = sign(tx, *(clients.keys[p] for p in tx.required_signers()), genesis=clients.genesis)
    return await clients.final(stx.raw)
