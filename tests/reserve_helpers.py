"""A demo network with backed instruments, and signed attestations (issue 15 item 2)."""

from __future__ import annotations

import functools
from dataclasses import replace

from node import crypto
from node.genesis import DemoNetwork
from node.settlement import AttestCustody, AttestReserves, Bill, CustodyBacking, ReserveRules
from tests.ledger_helpers import HOUR_MS, TxFactory, shared_net

DOC = crypto.sha256(b"custody statement")
# Real CUSIPs of Treasury bills with valid check digits (cusip_check_digit).
BILL_A, BILL_B = "912797GL5", "912797HR1"


@functools.cache
def backed_net() -> DemoNetwork:
    """The shared demo network with its first bond custody-backed (CSD attests) and its
    cash reserve-backed (CASHCO attests); the second bond stays unbacked."""
    net = shared_net()
    rules = ReserveRules(net.cash, bill_days_max=93, bills_min_bp=8_000, deposits_max_bp=2_000)
    g = replace(net.genesis, custody=(CustodyBacking(net.bonds[0], "CSD"),), reserves=(rules,))
    return replace(net, genesis=g)


def attest_custody(
    txf: TxFactory, amount: int, as_of_ms: int, bond: str | None = None, by: str = "CSD"
) -> bytes:
    tx = AttestCustody(
        txf.chain_id, txf.nonce(), txf.t0 + HOUR_MS, by, bond or txf.net.bonds[0], amount,
        as_of_ms, DOC,
    )  # fmt: skip
    return txf.signed(tx)


def attest_reserves(
    txf: TxFactory,
    as_of_ms: int,
    *,
    deposits: int = 0,
    bills: tuple[Bill, ...] = (),
    cash: str | None = None,
    by: str = "CASHCO",
) -> bytes:
    tx = AttestReserves(
        txf.chain_id, txf.nonce(), txf.t0 + HOUR_MS, by, cash or txf.net.cash, as_of_ms, DOC,
        deposits, bills,
    )  # fmt: skip
    return txf.signed(tx)
