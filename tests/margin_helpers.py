"""A demo network with margin terms, and signed prices (issue 18 item 3)."""

from __future__ import annotations

import functools
from dataclasses import replace

from node import crypto
from node.config import PRICE_UNITS
from node.genesis import DemoNetwork
from node.settlement import (
    AttestPrice,
    BlockContext,
    BlockOutcome,
    Haircut,
    Holding,
    MarginTerms,
    ResultCode,
    apply_block,
)
from node.store import MemoryStore
from tests.ledger_helpers import HOUR_MS, TxFactory, shared_net

SOURCES = ("AUDITOR", "CASHCO", "CSD")  # three institutions, none a repo party
AGE_MS = HOUR_MS
HAIRCUT_BP = (200, 500)  # 2% on the first demo bond, 5% on the second
PAR = PRICE_UNITS  # one unit of a demo bond is one cent of face: par is PRICE_UNITS cents


@functools.cache
def margin_net(threshold: int = 2) -> DemoNetwork:
    """The shared demo network with three price sources, ``threshold`` of them needed, a
    price age of an hour, and both demo bonds eligible (quoted in the demo cash)."""
    net = shared_net()
    rows = [Haircut(b, net.cash, h) for b, h in zip(net.bonds, HAIRCUT_BP, strict=True)]
    rows.sort(key=lambda r: r.instrument)
    terms = MarginTerms(SOURCES, threshold, AGE_MS, tuple(rows))
    return replace(net, genesis=replace(net.genesis, margin=terms))


@functools.cache
def coupon_net() -> DemoNetwork:
    """``margin_net()`` with coupons to manufacture (manuf): the first bond pays 4.25% on
    15 May and 15 November, the second (a bill there) 6.00% monthly on the 20th, and
    TREASURY, their paying agent, holds cash to pay them."""
    net = margin_net()
    g = net.genesis
    monthly = {"coupon_bp": 600, "coupon_freq": 12}
    instruments = tuple(replace(i, **monthly) if i.id == net.bonds[1] else i for i in g.instruments)
    holdings = (*g.holdings, Holding("TREASURY", net.cash, 10**12))
    return replace(net, genesis=replace(g, instruments=instruments, holdings=holdings))


def attest(
    txf: TxFactory, price: int, as_of_ms: int, *, source: str = "CSD", bond: str | None = None
) -> bytes:
    tx = AttestPrice(
        txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, source, bond or txf.net.bonds[0],
        price, as_of_ms,
    )  # fmt: skip
    return txf.signed(tx)


def run(store: MemoryStore, *txs: bytes, at_ms: int) -> BlockOutcome:
    """Apply and commit one block at genesis time + ``at_ms``."""
    head = store.head()
    ctx = BlockContext(head.height + 1, store.genesis.genesis_time_ms + at_ms)
    out = apply_block(store, list(txs), ctx)
    store.commit_block(crypto.sha256(b"block", ctx.height.to_bytes(8, "big")), b"", b"", ctx, out)
    return out


def codes(out: BlockOutcome) -> list[ResultCode]:
    return [r.code for r in out.results if not r.event]
