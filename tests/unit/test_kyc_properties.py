"""Properties (issue 15 items 4-5): a refused breach changes nothing; a daily total never
exceeds its limit.

Random histories of one-transaction blocks over about three days of block time: the
tier-1 account ``TIER1`` only ever pays cash (buys in DvPs and pending DvPs, sends cash
transfers), so each block's fall in its cash balance is exactly the volume it moved in
that block, events of recycled pending trades included. The oracle keeps that volume
per hour itself and requires, after every block, that the volume in the rolling window
is within ``T1_DAY`` and equals what the ledger recorded (``day_total``). A block whose
transaction gets a KYC or AML code must write no balance and no volume. The negative
control switches the daily check off and requires the oracle to fire.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import crypto
from node.config import KYC_BUCKET_MS, KYC_WINDOW_HOURS
from node.settlement import (
    BlockContext,
    BlockOutcome,
    RecordKind,
    ResultCode,
    Transaction,
    _compliance,
    apply_block,
    day_total,
)
from node.store import MemoryStore
from tests.kyc_helpers import COSIGN_ABOVE, HOUR_MS, T1_DAY, T1_TRADE, TIER1, kyc_net
from tests.ledger_helpers import TxFactory

NET = kyc_net()
CASH = NET.cash
OTHERS = ["BANK01", "BANK02", "BANK03"]
KYC_CODES = {
    ResultCode.COSIGN_REQUIRED,
    ResultCode.TIER_TOO_LOW,
    ResultCode.TRADE_LIMIT,
    ResultCode.DAILY_LIMIT,
}
FAR = 10 * 24 * HOUR_MS


def _tx(txf: TxFactory, draw: st.DrawFn) -> Transaction:
    kind = draw(st.sampled_from(["dvp", "pending", "transfer", "other"]))
    peer = draw(st.sampled_from(OTHERS))
    amount = draw(st.sampled_from([1, 40, 400, 990, T1_TRADE, T1_TRADE + 1, COSIGN_ABOVE + 1]))
    cosigner = "COMPLIANCE" if draw(st.booleans()) else ""
    far = {"expiry_ms": txf.t0 + FAR, "cosigner": cosigner}
    bond = NET.bonds[draw(st.integers(0, 1))]  # the first is held from tier 2
    if kind == "transfer":
        return txf.transfer(TIER1, peer, amount, **far)
    if kind == "other":  # between tier-2 banks: their own limits, not TIER1's
        a, b = draw(st.permutations(OTHERS))[:2]
        return txf.dvp(a, b, quantity=10, amount=amount, bond=bond, deadline_ms=txf.t0 + FAR, **far)
    # A pending trade in 10 lots; 10_000_010 bond units: more than the seller holds, so it
    # waits until "other" trades bring the seller bonds.
    qty = 10 if draw(st.booleans()) else 10_000_010
    terms = {"quantity": qty, "amount": max(10, amount - amount % 10), "bond": bond, **far}
    if kind == "dvp":
        return txf.dvp(peer, TIER1, deadline_ms=txf.t0 + FAR, **terms)
    return txf.pending(peer, TIER1, lot=qty // 10, deadline_ms=txf.t0 + FAR, **terms)


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    """(block time offset ms, transaction), times increasing over up to ~3 days."""
    txf = TxFactory(NET)
    offset, blocks = 0, []
    for _ in range(draw(st.integers(1, 25))):
        offset += draw(st.sampled_from([1, 60_000, 20 * 60_000, HOUR_MS, 5 * HOUR_MS]))
        blocks.append((offset, txf.signed(_tx(txf, draw))))
    return blocks


def _run(store: MemoryStore, raw: bytes, time_ms: int) -> BlockOutcome:
    ctx = BlockContext(store.head().height + 1, time_ms)
    out = apply_block(store, [raw], ctx)
    store.commit_block(crypto.sha256(b"b", ctx.height.to_bytes(8, "big")), b"", b"", ctx, out)
    return out


def check_history(blocks: list[tuple[int, bytes]]) -> None:
    store = MemoryStore(NET.genesis)
    paid: dict[int, int] = {}  # hour -> TIER1's cash out in that hour, by the oracle
    for offset, raw in blocks:
        now = NET.genesis.genesis_time_ms + offset
        before = store.balance(TIER1, CASH)
        out = _run(store, raw, now)
        hour = now // KYC_BUCKET_MS
        paid[hour] = paid.get(hour, 0) + before - store.balance(TIER1, CASH)
        window = sum(v for h, v in paid.items() if h > hour - KYC_WINDOW_HOURS)
        assert window <= T1_DAY, (offset, window)
        assert day_total(store, TIER1, CASH, now) == window
        if out.results[0].code in KYC_CODES and len(out.results) == 1:
            volume = [k for k in out.records if k[0] == RecordKind.KYC_VOLUME]
            assert out.balances == {} and volume == [], out.results[0].code


@settings(max_examples=150, deadline=None)
@given(histories())
def test_daily_totals_stay_within_the_limit_and_refusals_change_nothing(
    blocks: list[tuple[int, bytes]],
) -> None:
    check_history(blocks)


def test_negative_control_the_oracle_fires_without_the_daily_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    txf = TxFactory(NET)
    far = {"expiry_ms": txf.t0 + FAR, "deadline_ms": txf.t0 + FAR}
    blocks = [
        (
            i * 60_000,
            txf.signed(
                txf.dvp("BANK01", TIER1, quantity=10, amount=T1_TRADE, bond=NET.bonds[1], **far)
            ),
        )
        for i in range(1, 4)
    ]
    check_history(blocks[:2])  # within the limit: the oracle is quiet
    monkeypatch.setattr(_compliance, "day_total", lambda *a: 0)
    monkeypatch.setattr(_compliance, "note_volume", lambda *a, **k: None)
    with pytest.raises(AssertionError):
        check_history(blocks)
