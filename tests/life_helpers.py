"""A demo network with bond lifecycle terms chosen for tests, and lifecycle transactions.

``life_net()``: the demo participants and keys; the coupon bond ``BOND`` pays 5.00% twice a
year on a $1 unit (face 100 cents) from 2026-01-15 to maturity on 2027-01-15 (periods
2026-07-15 and 2027-01-15, the final one paid by redemption); the bill ``BILL`` (face 1
cent, no coupon) matures on 2026-03-01; the fund ``FUND`` distributes on the 15th. The
paying agent of all three is TREASURY, which holds ``AGENT_CASH`` of the cash token.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from node import crypto
from node.genesis import DemoNetwork
from node.settlement import (
    BlockContext,
    BlockOutcome,
    CouponPay,
    Distribute,
    Holding,
    Instrument,
    InstrumentKind,
    Redeem,
    RedeemAll,
    Transaction,
    apply_block,
    sign_tx,
)
from node.settlement._schedule import day_start_ms
from node.store import Storage
from tests.ledger_helpers import shared_net

AGENT = "TREASURY"
AGENT_CASH = 10**15
BOND_UNITS = 1_000_000  # per bank
FUND_UNITS = {"BANK01": 1, "BANK02": 2, "BANK03": 4}
EXPIRY_MS = 2**63  # lifecycle tests jump months ahead; nothing should expire on the way


def at(iso: str, plus_ms: int = 0) -> int:
    """00:00 UTC of ``iso`` plus ``plus_ms``: a block time."""
    return day_start_ms(date.fromisoformat(iso)) + plus_ms


def life_net(**bond_terms: Any) -> DemoNetwork:
    """The demo network with the lifecycle terms above; ``bond_terms`` override BOND's."""
    base = shared_net()
    bond, bill = base.bonds
    terms: dict[str, Any] = {
        "unit_face_minor": 100,
        "coupon_bp": 500,
        "coupon_freq": 2,
        "maturity_date": "2027-01-15",
        "issue_date": "2026-01-15",
        "payment_cash": base.cash,
    }
    instruments = (
        replace(Instrument(bond, InstrumentKind.BOND, AGENT, "USD"), **(terms | bond_terms)),
        Instrument(
            bill,
            InstrumentKind.BOND,
            AGENT,
            "USD",
            unit_face_minor=1,
            maturity_date="2026-03-01",
            payment_cash=base.cash,
        ),
        Instrument(base.cash, InstrumentKind.CASH, "CASHCO", "USD"),
        Instrument(
            base.fund,
            InstrumentKind.FUND,
            AGENT,
            "USD",
            payment_cash=base.cash,
            distribution_day=15,
        ),
    )
    holdings = [
        *(Holding(b, i, BOND_UNITS) for b in base.banks for i in (bond, bill)),
        *(Holding(b, base.cash, 10**9) for b in base.banks),
        Holding(AGENT, base.cash, AGENT_CASH),
        *(Holding(b, base.fund, u) for b, u in FUND_UNITS.items()),
    ]
    g = replace(base.genesis, instruments=instruments, holdings=tuple(holdings))
    return replace(base, genesis=g)


@dataclass
class LifeTx:
    """Signed lifecycle transactions for ``net`` with fresh nonces."""

    net: DemoNetwork
    _nonces: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def chain(self) -> str:
        return self.net.genesis.chain_id

    def nonce(self) -> int:
        return next(self._nonces)

    def signed(self, tx: Transaction) -> bytes:
        return sign_tx(tx, [self.net.participant_keys[s] for s in tx.required_signers()])

    def coupon(self, period: int, bond: str | None = None, agent: str = AGENT) -> bytes:
        bond = bond or self.net.bonds[0]
        return self.signed(CouponPay(self.chain, self.nonce(), EXPIRY_MS, bond, period, agent))

    def distribute(
        self, period: int, total: int, fund: str | None = None, agent: str = AGENT
    ) -> bytes:
        fund = fund or self.net.fund
        tx = Distribute(self.chain, self.nonce(), EXPIRY_MS, fund, period, total, agent)
        return self.signed(tx)

    def redeem(self, holder: str, bond: str | None = None) -> bytes:
        bond = bond or self.net.bonds[0]
        return self.signed(Redeem(self.chain, self.nonce(), EXPIRY_MS, bond, holder))

    def redeem_all(self, bond: str | None = None, agent: str = AGENT) -> bytes:
        bond = bond or self.net.bonds[0]
        return self.signed(RedeemAll(self.chain, self.nonce(), EXPIRY_MS, bond, agent))


def run_at(store: Storage, time_ms: int, *raws: bytes) -> BlockOutcome:
    """Apply one block at ``time_ms`` on ``store`` and commit it."""
    ctx = BlockContext(store.head().height + 1, time_ms)
    out = apply_block(store, list(raws), ctx)
    store.commit_block(crypto.sha256(ctx.height.to_bytes(8, "big")), b"b", b"c", ctx, out)
    return out
