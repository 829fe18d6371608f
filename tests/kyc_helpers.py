"""A demo network with KYC and AML rules small enough to breach by hand (issue 15 items
4-5): BANK06 is onboarded at tier 1 only; the first bond is held from tier 2."""

from __future__ import annotations

import functools
from dataclasses import replace

from node.genesis import DemoNetwork, demo_genesis
from node.settlement import ComplianceRules, TierLimit
from tests.ledger_helpers import shared_net

TIER1 = "BANK06"  # the one tier-1 participant
T1_TRADE, T1_DAY = 1_000, 2_500
T2_TRADE, T2_DAY = 1_000_000, 3_000_000
COSIGN_ABOVE = 10_000
HOUR_MS = 3_600_000


def kyc_rules(net: DemoNetwork) -> ComplianceRules:
    return ComplianceRules.of(
        min_tier={net.bonds[0]: 2},
        limits=[
            TierLimit(1, net.cash, T1_TRADE, T1_DAY),
            TierLimit(2, net.cash, T2_TRADE, T2_DAY),
        ],
        cosign_above={net.cash: COSIGN_ABOVE},
    )


@functools.cache
def kyc_net() -> DemoNetwork:
    """The demo network (seed "kyc") with ``TIER1`` at tier 1 and ``kyc_rules``."""
    net = demo_genesis(validators=4, quorum=3, seed=b"kyc")
    g = net.genesis
    parts = tuple(replace(p, kyc_tier=1) if p.id == TIER1 else p for p in g.participants)
    return replace(net, genesis=replace(g, participants=parts, compliance=kyc_rules(net)))


def tier2_limited(
    trade_max: int, day_max: int, *, cash_tier: int = 0, cash: dict[str, int] | None = None
) -> DemoNetwork:
    """The shared demo network whose tier-2 banks may move ``trade_max`` cash per trade
    and ``day_max`` a day; holding cash needs ``cash_tier`` (0: no rule); the banks in
    ``cash`` hold that much cash at genesis."""
    net = shared_net()
    rules = ComplianceRules.of(
        min_tier={net.cash: cash_tier} if cash_tier else {},
        limits=[TierLimit(2, net.cash, trade_max, day_max)],
        cosign_above={},
    )
    amounts = cash or {}
    holdings = tuple(
        replace(h, amount=amounts[h.account])
        if h.instrument == net.cash and h.account in amounts
        else h
        for h in net.genesis.holdings
    )
    return replace(net, genesis=replace(net.genesis, compliance=rules, holdings=holdings))
