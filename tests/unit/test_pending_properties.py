"""Properties of recycling over random histories (issue 14: "recycling never settles a
trade twice or after its deadline").

Each history is blocks of pending DvPs (some in lots), deliveries of bonds and cash that
fund them, holds, releases and cancels, with block time moving forward by random steps.
The oracle knows only the trades' terms and the results:

- no pending trade settles twice (its own ``OK`` and ``OK`` events count together), none
  has an event after it ended, and none moves a unit in a block past its deadline;
- what each trade moved is whole lots at the trade's price, never more than the trade,
  all of it when it ends ``OK`` (the outcome record says how much; the balances must agree);
- every balance is genesis plus the legs of the results: deliveries, trades settled at
  once, and the lots each event moved. So nothing moves without a result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from node import crypto
from node.settlement import (
    BlockContext,
    PendingDvP,
    ResultCode,
    SignedTx,
    Transaction,
    Transfer,
    _pending,
    apply_block,
    outcome,
)
from node.store import MemoryStore
from tests.ledger_helpers import HOUR_MS, TxFactory, shared_net

RC = ResultCode
NET = shared_net()
BANKS = list(NET.banks[:4])
BOND, CASH = NET.bonds[0], NET.cash
HELD = 10_000_000  # every bank's genesis bonds; 1e9 cash
LOT = 10
_MOVES = (RC.OK, RC.PARTIALLY_SETTLED)
_ENDS = (RC.OK, RC.FAILED_DEADLINE, RC.CANCELLED)


def _trade(txf: TxFactory, draw: st.DrawFn, t0: int) -> PendingDvP:
    seller, buyer = draw(st.permutations(BANKS))[:2]
    lots = (HELD + draw(st.integers(-2, 5)) * LOT) // LOT  # about the seller's whole holding
    price = draw(st.sampled_from([1, 999, 1_001]))  # 1,001: the buyer's cash falls short
    in_lots = draw(st.booleans())
    return txf.pending(
        seller,
        buyer,
        lot=LOT if in_lots else 0,
        quantity=lots * LOT,
        amount=lots * price,
        deadline_ms=t0 + draw(st.integers(0, 20_000)),
        expiry_ms=t0 + HOUR_MS,
    )


def _extra(txf: TxFactory, draw: st.DrawFn, trades: list[PendingDvP]) -> Transaction:
    kind = draw(st.sampled_from(["bonds", "cash", "hold", "release", "cancel"]))
    src, dst = draw(st.permutations(BANKS))[:2]
    if trades and kind in ("bonds", "cash") and draw(st.booleans()):  # aim at a waiting leg
        t = draw(st.sampled_from(trades))
        dst = t.seller if kind == "bonds" else t.buyer
        src = draw(st.sampled_from([b for b in BANKS if b not in (t.seller, t.buyer)]))
    if kind == "bonds" or not trades:
        return txf.transfer(src, dst, draw(st.integers(1, 6)) * LOT, instrument=BOND)
    if kind == "cash":
        return txf.transfer(src, dst, draw(st.integers(1, 10**7)), instrument=CASH)
    t = draw(st.sampled_from(trades))
    tid = _id(txf, t)
    if kind == "cancel":
        return txf.cancel(tid, t.seller, t.buyer)
    by = draw(st.sampled_from([t.seller, t.buyer]))
    return txf.hold(tid, by) if kind == "hold" else txf.release(tid, by)


def _id(txf: TxFactory, tx: Transaction) -> bytes:
    return SignedTx.decode(txf.signed(tx)).tx_id


@st.composite
def _history(draw: st.DrawFn) -> list[tuple[int, list[Transaction]]]:
    txf = TxFactory(NET)
    t0 = NET.genesis.genesis_time_ms
    trades: list[PendingDvP] = []
    blocks: list[tuple[int, list[Transaction]]] = []
    at = t0
    for _ in range(draw(st.integers(2, 8))):
        at += draw(st.integers(0, 2_500))
        txs: list[Transaction] = []
        for _ in range(draw(st.integers(0, 5))):
            if draw(st.booleans()):
                trades.append(_trade(txf, draw, t0))
                txs.append(trades[-1])
            else:
                txs.append(_extra(txf, draw, trades))
        blocks.append((at, txs))
    return blocks


class _Oracle:
    def __init__(self) -> None:
        self.balances: Counter[tuple[str, str]] = Counter(
            {(h.account, h.instrument): h.amount for h in NET.genesis.holdings}
        )
        self.trades: dict[bytes, PendingDvP] = {}
        self.settled: Counter[bytes] = Counter()
        self.moved: Counter[bytes] = Counter()
        self.ended: set[bytes] = set()

    def legs(self, t: PendingDvP | Transfer, units: int, cash: int) -> None:
        b = self.balances
        if isinstance(t, Transfer):
            b[(t.sender, t.instrument)] -= t.amount
            b[(t.receiver, t.instrument)] += t.amount
            return
        b[(t.seller, BOND)] -= units
        b[(t.buyer, BOND)] += units
        b[(t.buyer, CASH)] -= cash
        b[(t.seller, CASH)] += cash

    def event(self, store: MemoryStore, tid: bytes, code: RC, time_ms: int) -> None:
        t = self.trades[tid]
        assert tid not in self.ended, "an event after the trade ended"
        if code in _MOVES:
            assert time_ms <= t.deadline_ms, "units moved after the deadline"
        self.settled[tid] += code is RC.OK
        assert self.settled[tid] <= 1, "settled twice"
        if code in _ENDS:
            self.ended.add(tid)
        record = outcome(store, tid)
        assert record is not None and record.code is code
        units = record.settled_quantity - self.moved[tid]
        lot_q = t.lot or t.quantity
        lot_cash = t.amount // (t.quantity // lot_q)
        assert units >= 0 and units % lot_q == 0
        assert (units > 0) == (code in _MOVES)
        assert record.settled_amount == record.settled_quantity // lot_q * lot_cash
        assert record.settled_quantity <= t.quantity
        if code is RC.OK:
            assert record.settled_quantity == t.quantity
        self.moved[tid] += units
        self.legs(t, units, units // lot_q * lot_cash)


@settings(max_examples=settings().max_examples)
@given(_history())
def test_recycling_settles_each_trade_at_most_once_and_never_late(
    blocks: list[tuple[int, list[Transaction]]],
) -> None:
    txf = TxFactory(NET)
    store = MemoryStore(NET.genesis)
    oracle = _Oracle()
    for height, (at, txs) in enumerate(blocks, start=1):
        raws = [txf.signed(tx) for tx in txs]
        out = apply_block(store, raws, BlockContext(height, at))
        store.commit_block(crypto.sha256(bytes([height])), b"", b"", BlockContext(height, at), out)
        for tx, res in zip(txs, out.results, strict=False):
            if isinstance(tx, PendingDvP):
                oracle.trades[res.tx_id] = tx
            if res.code is RC.OK and isinstance(tx, PendingDvP):
                oracle.settled[res.tx_id] += 1
                oracle.ended.add(res.tx_id)
                oracle.moved[res.tx_id] = tx.quantity
                oracle.legs(tx, tx.quantity, tx.amount)
            elif res.code is RC.OK and isinstance(tx, Transfer):
                oracle.legs(tx, 0, 0)
        for ev in out.results[len(txs) :]:
            assert ev.event
            oracle.event(store, ev.tx_id, ev.code, at)
    actual = store.all_balances()
    assert actual == {k: v for k, v in oracle.balances.items() if v}


@settings(max_examples=settings().max_examples)
@given(_history())
def test_skipping_unchanged_instructions_changes_no_outcome(
    blocks: list[tuple[int, list[Transaction]]],
) -> None:
    """Recycling re-attempts only what a block can have changed (``_pending._changed``);
    the same history re-attempting every instruction every block reaches the same root."""
    txf = TxFactory(NET)
    lazy, eager = MemoryStore(NET.genesis), MemoryStore(NET.genesis)
    for height, (at, txs) in enumerate(blocks, start=1):
        raws = [txf.signed(tx) for tx in txs]
        ctx = BlockContext(height, at)
        a = apply_block(lazy, raws, ctx)
        with _always_attempt():
            b = apply_block(eager, raws, ctx)
        assert a.results == b.results and a.state_root == b.state_root
        for store, out in ((lazy, a), (eager, b)):
            store.commit_block(crypto.sha256(bytes([height])), b"", b"", ctx, out)


@contextmanager
def _always_attempt() -> Iterator[None]:
    original = _pending._changed
    _pending._changed = lambda o, key, inst: True  # type: ignore[assignment]
    try:
        yield
    finally:
        _pending._changed = original  # type: ignore[assignment]
