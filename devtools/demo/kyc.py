"""``make demo``, the AML large-value rule (issue 15 item 5; docs/ledger.md "KYC tiers and
AML"): a trade above the cash token's co-sign threshold, signed by both parties only, is
refused ``COSIGN_REQUIRED``; the same terms co-signed by the compliance officer settle.
Both receipts are verified offline; any other outcome fails the demo."""

from __future__ import annotations

from typing import TYPE_CHECKING

from client import RejectedError, ResultCode, accept_dvp, cosign, propose_dvp, verify_receipt
from devtools.demo.lifecycle import LifecycleMismatch
from node.genesis import DEMO_COSIGN_ABOVE_CENTS, DemoNetwork

if TYPE_CHECKING:  # devtools.demo.run imports this module, so only for the annotations
    from devtools.demo.run import ValidatorClients

__all__ = ["KycMismatch", "show_kyc"]

SELLER, BUYER, OFFICER = "BANK05", "BANK06", "COMPLIANCE"  # untouched by the lifecycle step
UNITS = 100_00  # bond units of the large trade (the price is what the rule looks at)
PRICE = DEMO_COSIGN_ABOVE_CENTS + 100_000_00  # $100,000 above the threshold
WAIT_TIMEOUT_S = 60.0


class KycMismatch(LifecycleMismatch):
    """The ledger answered the large trade other than the rule says: the demo fails (a
    LifecycleMismatch, so ``devtools.demo.run`` reports it the same way)."""


async def show_kyc(clients: ValidatorClients, demo: DemoNetwork) -> None:
    """The large trade twice: without, then with the compliance co-signature."""
    g, client = clients.genesis, clients.all[0]
    threshold = g.compliance.threshold(demo.cash)
    if threshold is None:
        print("\nAML: this network has no co-sign threshold (generated before the rule)")
        return
    print(f"\nAML: trades above ${threshold / 100:,.2f} need a compliance co-signature")
    bond = demo.bonds[0]
    for officer in ("", OFFICER):
        dvp = client.tx.dvp(SELLER, BUYER, bond, UNITS, demo.cash, PRICE, cosigner=officer)
        offer = propose_dvp(dvp, clients.keys[SELLER], g)
        signed = accept_dvp(offer, clients.keys[BUYER], g)
        if officer:
            signed = cosign(signed, clients.keys[officer], g)
        try:
            receipt = await client.submit(signed, timeout_s=WAIT_TIMEOUT_S)
        except RejectedError as e:
            receipt = e.receipt
        verify_receipt(receipt, g)
        want = ResultCode.OK if officer else ResultCode.COSIGN_REQUIRED
        if receipt.code is not want:
            raise KycMismatch(f"the large trade got {receipt.code.name}, expected {want.name}")
        who = f"{SELLER}, {BUYER} and {officer}" if officer else f"{SELLER} and {BUYER} only"
        print(
            f"  ${PRICE / 100:,.2f} signed by {who}: {receipt.code.name} at height "
            f"{receipt.height} (receipt verified offline)"
        )
