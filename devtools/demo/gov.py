"""``make demo``, governance (issue 15 item 1, ADR 0016): k of the genesis admins add a new
bank while the cluster runs; the bank is funded, settles a DvP and reads its own balances
through the API, with no restart. One admin alone is refused first (NOT_ADMIN_QUORUM).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from client import (
    AsyncLedgerClient,
    InvalidTransactionError,
    ParticipantKey,
    ResultCode,
    accept_dvp,
    propose_dvp,
    sign,
)
from devtools.demo.lifecycle import LifecycleMismatch
from node import crypto
from node.genesis import DemoNetwork

if TYPE_CHECKING:  # devtools.demo.run imports this module, so only for the annotations
    from devtools.demo.run import ValidatorClients

__all__ = ["GovernanceMismatch", "show_governance"]

NEW_BANK = "BANK07"
FUNDING = 1_000_000_00  # cents BANK01 sends the new bank
QUANTITY, PRICE = 10_000_00, 9_990_00  # $10,000 face at 99.90


class GovernanceMismatch(LifecycleMismatch):
    """The new bank's balances are not what the trades say, or one admin alone changed
    the reference data: the demo fails (``devtools.demo.run`` reports it as it reports a
    lifecycle mismatch)."""


async def show_governance(clients: ValidatorClients, demo: DemoNetwork, run_dir: Path) -> None:
    """Add a bank by k admins (one alone refused), fund it, trade, read its balances."""
    client, g = clients.all[0], clients.genesis
    admins = g.admins[: g.admin_threshold]
    if not admins:
        print("\ngovernance: this network's genesis names no admins")
        return
    print(f"\ngovernance: admins {', '.join(g.admins)}, any {g.admin_threshold} of them")
    bank = ParticipantKey(NEW_BANK, crypto.SigningKey(os.urandom(32)))
    add = client.tx.add_participant(NEW_BANK, bank.public_key, ["trader"], 2, admins)
    alone = dataclasses.replace(add, admins=admins[:1])
    try:
        await client.submit(sign(alone, clients.keys[admins[0]], genesis=g))
        raise GovernanceMismatch("one admin alone added a bank")
    except InvalidTransactionError:
        print(f"  AddParticipant {NEW_BANK} signed by {admins[0]} alone: NOT_ADMIN_QUORUM")
    done = await client.submit(sign(add, *(clients.keys[a] for a in admins), genesis=g))
    print(f"  AddParticipant {NEW_BANK} signed by {' and '.join(admins)}: {done.code.name} "
          f"at height {done.height}")  # fmt: skip
    await client.reference()  # the builders now know the bank
    fund = client.tx.transfer(demo.cash, "BANK01", NEW_BANK, FUNDING)
    await client.submit(client.sign(fund, clients.keys["BANK01"]))
    await _trade(clients, client, demo, bank, run_dir)


async def _trade(
    clients: ValidatorClients,
    client: AsyncLedgerClient,
    demo: DemoNetwork,
    bank: ParticipantKey,
    run_dir: Path,
) -> None:
    bond = demo.bonds[0]
    dvp = client.tx.dvp("BANK02", NEW_BANK, bond, QUANTITY, demo.cash, PRICE)
    reg = client.tx.reference
    offer = propose_dvp(dvp, clients.keys["BANK02"], reg)
    done = await client.submit(accept_dvp(offer, bank, reg, expect={"quantity": QUANTITY}))
    print(f"  {NEW_BANK} buys {QUANTITY / 100:,.2f} face of {bond} from BANK02: "
          f"{done.code.name} at height {done.height}")  # fmt: skip
    async with AsyncLedgerClient.from_run_dir(run_dir, identity=bank) as me:
        amounts = (await me.balances(NEW_BANK)).amounts  # as itself, no restart
    want = {bond: QUANTITY, demo.cash: FUNDING - PRICE}
    if done.code is not ResultCode.OK or any(amounts.get(k) != v for k, v in want.items()):
        raise GovernanceMismatch(f"{NEW_BANK} holds {amounts}, expected {want}")
    print(f"  {NEW_BANK} reads its own balances: {amounts[bond] / 100:,.2f} face, "
          f"${amounts[demo.cash] / 100:,.2f} cash")  # fmt: skip
