"""``make demo``, reserves (issue 15 item 2): the cash issuer attests the Treasury bills
and deposits behind the reserve-backed token, mints against them, is refused a mint
beyond them, and the reserve report is printed (docs/ledger.md "Custody and reserves").

The amounts are checked here against what was attested: a report whose coverage or
composition differs fails the demo.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import TYPE_CHECKING

from client import RejectedError, ResultCode, Transactions, sign
from client._cli_reserve import print_reserve_report, reserve_report
from node import crypto
from node.genesis import DEMO_RESERVE_CASH, DemoNetwork

if TYPE_CHECKING:  # devtools.demo.run imports this module, so only for the annotations
    from devtools.demo.run import ValidatorClients

__all__ = ["ReserveMismatch", "show_reserves"]

ISSUER = "CASHCO"
# $85M in two bills maturing within the genesis rule's 93 days, $15M on deposit.
BILLS = (("912797GL5", 30, 40_000_000_00), ("912797HR1", 60, 45_000_000_00))
DEPOSITS = 15_000_000_00
MINTED = 90_000_000_00  # to BANK01; the rest of the reserves stays headroom
AS_OF_LAG_MS = 1_000  # as of a second ago: the block's time may trail this clock


class ReserveMismatch(Exception):
    """The report disagrees with what was attested and minted: the demo fails."""


async def show_reserves(clients: ValidatorClients, demo: DemoNetwork) -> None:
    """Attest, mint within and beyond the reserves, print the report; check it."""
    g = clients.genesis
    if DEMO_RESERVE_CASH not in g.reserves_by_cash:
        print("\nreserves: this network has no reserve-backed token (generated before them)")
        return
    client, t, key = clients.all[0], Transactions(g), clients.keys[ISSUER]
    today = date.today()
    bills = [(c, (today + timedelta(days=d)).isoformat(), a) for c, d, a in BILLS]
    statement = crypto.sha256(b"demo reserve statement " + today.isoformat().encode())
    as_of = int(time.time() * 1000) - AS_OF_LAG_MS
    att = t.attest_reserves(ISSUER, DEMO_RESERVE_CASH, as_of, statement, DEPOSITS, bills)
    await client.submit(sign(att, key, genesis=g))
    print(
        f"\nreserves: {ISSUER} attested {len(bills)} bills and deposits behind {DEMO_RESERVE_CASH}"
    )
    await client.submit(sign(t.issue(DEMO_RESERVE_CASH, "BANK01", MINTED, ISSUER), key, genesis=g))
    over = t.issue(DEMO_RESERVE_CASH, "BANK01", DEPOSITS, ISSUER)
    try:
        await client.submit(sign(over, key, genesis=g))
        raise ReserveMismatch("a mint beyond the attested reserves went through")
    except RejectedError as e:
        if e.code is not ResultCode.RESERVES_SHORT:
            raise
        print(f"a further mint of {DEPOSITS:,} is refused: {e.code.name}")
    height, backed = await client.attestations(DEMO_RESERVE_CASH)
    lines = reserve_report(g, backed, int(time.time() * 1000))
    print_reserve_report(height, lines)
    _check(lines[0].supply, lines[0].reserves, [ok for _, ok, _ in lines[0].rules])


def _check(supply: int, reserves: int, passed: list[bool]) -> None:
    total = DEPOSITS + sum(a for _, _, a in BILLS)
    if (supply, reserves) != (MINTED, total) or not all(passed):
        raise ReserveMismatch(
            f"report shows supply {supply}, reserves {reserves}, rules {passed}; "
            f"expected {MINTED}, {total}, all PASS"
        )
