"""``make demo``, a repo round trip (issue 18 item 2; docs/ledger.md "Repo"): a bank
borrows cash against bonds in an intraday repo closing a few seconds later, the borrower
alone closes it at the close time, and the demo prints both legs' latency and the
interest.

Every outcome is checked and every receipt verified offline against genesis: balances
after the open and after the close must be exactly what the terms say (the bonds back,
the cash back plus ACT/360 interest), else the demo fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from client import Receipt, Transactions, sign, verify_receipt
from devtools.demo.lifecycle import LifecycleMismatch
from node.genesis import DemoNetwork
from node.settlement import RepoStatus, Transaction

if TYPE_CHECKING:  # devtools.demo.run imports this module, so only for the annotations
    from devtools.demo.run import ValidatorClients

__all__ = ["show_repo"]

BORROWER, LENDER = "BANK03", "BANK04"
PURCHASE = 4_000_000_00  # cents: $4,000,000 (below the AML co-sign threshold)
RATE_BP = 500
TERM_MS = 3_000  # intraday, and short: the demo waits for the close time
GRACE_MS = 60_000


async def show_repo(clients: ValidatorClients, demo: DemoNetwork) -> None:
    """Open, wait for the close time, close by the borrower alone; legs and interest."""
    client, t = clients.all[0], Transactions(clients.genesis)
    before = (await client.balances(BORROWER)).amounts
    # Collateral: half the borrower's largest holding of a tradable bond (after the demo's
    # trades, burst and redemptions, whatever is left).
    bond = max(demo.bonds, key=lambda b: before.get(b, 0))
    quantity = before.get(bond, 0) // 2
    if quantity == 0:
        raise LifecycleMismatch(f"{BORROWER} holds none of {demo.bonds} to repo")
    repo_id = f"DEMO.{time.time_ns():x}"
    close_ms = int(time.time() * 1000) + TERM_MS
    tx = t.repo_open(
        repo_id, BORROWER, LENDER, bond, quantity, demo.cash, PURCHASE, close_ms,
        close_ms + GRACE_MS, rate_bp=RATE_BP,
    )  # fmt: skip
    opened, open_ms = await _submit(clients, tx, BORROWER, LENDER)
    print(
        f"\nrepo {repo_id}: {BORROWER} sells {quantity:,} units of {bond} to {LENDER} "
        f"for ${PURCHASE / 100:,.2f}, back at {RATE_BP / 100:.2f}% ACT/360 "
        f"from {TERM_MS / 1000:.0f} s later"
    )
    print(f"  open  {opened.code.name} at height {opened.height} in {open_ms:.1f} ms")
    mid = (await client.balances(BORROWER)).amounts
    _check("after the open", mid, before, {bond: -quantity, demo.cash: PURCHASE})
    await asyncio.sleep(max(0.0, close_ms / 1000 - time.time()) + 0.2)  # block time >= close
    closed, close_ms_taken = await _submit(
        clients, t.repo_close(repo_id, BORROWER, LENDER, BORROWER), BORROWER
    )
    _, (rec,) = await client.repos(repo_id)
    if rec.status is not RepoStatus.CLOSED:
        raise LifecycleMismatch(f"repo {repo_id} is {rec.status.name} after its close")
    interest = rec.close_amount - PURCHASE
    after = (await client.balances(BORROWER)).amounts
    _check("after the close", after, before, {bond: 0, demo.cash: -interest})
    print(
        f"  close {closed.code.name} at height {closed.height} in {close_ms_taken:.1f} ms, "
        f"signed by {BORROWER} alone at the close time"
    )
    print(
        f"  interest {interest} cents over {rec.close_ms - rec.open_ms} ms (ACT/360, half up); "
        f"{BORROWER} paid ${rec.close_amount / 100:,.2f} and has its bonds back"
    )
    print("  every receipt verified offline against genesis")


async def _submit(
    clients: ValidatorClients, tx: Transaction, *signers: str
) -> tuple[Receipt, float]:
    keys = [clients.keys[s] for s in signers]
    t0 = time.perf_counter()
    receipt = await clients.all[0].submit(sign(tx, *keys, genesis=clients.genesis))
    took_ms = (time.perf_counter() - t0) * 1000
    verify_receipt(receipt, clients.genesis)
    return receipt, took_ms


def _check(
    when: str, now: Mapping[str, int], before: Mapping[str, int], want: dict[str, int]
) -> None:
    """The borrower's balances moved by exactly ``want`` (instrument -> change)."""
    moved = {i: now.get(i, 0) - before.get(i, 0) for i in want}
    if moved != want:
        raise LifecycleMismatch(f"{BORROWER} {when}: moved {moved}, the terms say {want}")
