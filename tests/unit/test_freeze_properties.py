"""Property (issue 15, "Bad input and invariants"): frozen balances never change.

Random histories alternate blocks of freezes and unfreezes (by the regulator or
compliance, of accounts and of holdings) with blocks of movements: transfers, DvPs,
pending DvPs (some short, so they wait and are recycled), mints and burns, between four
banks. Freezes and movements are kept in separate blocks so that what is frozen is fixed
during a movement block; the oracle then requires every holding frozen at the start of
the block (as an account or as that holding) to end the block with the same balance,
events of pending instructions included. The negative control runs the oracle with the
freeze checks switched off and requires it to fire.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import crypto
from node.settlement import (
    BlockContext,
    FreezeReason,
    Transaction,
    _freeze,
    _lifecycle,
    _pending,
    apply_block,
    freezes,
)
from node.store import MemoryStore
from tests.freeze_helpers import freeze, unfreeze
from tests.ledger_helpers import HOUR_MS, TxFactory, shared_net

NET = shared_net()
BANKS = list(NET.banks[:4])
BOND, CASH = NET.bonds[0], NET.cash
HELD = 10_000_000
HOLDINGS = [(b, i) for b in BANKS for i in (BOND, CASH)]


def _movement(txf: TxFactory, draw: st.DrawFn, t0: int) -> Transaction:
    kind = draw(st.sampled_from(["transfer", "dvp", "pending", "mint", "burn"]))
    a, b = draw(st.permutations(BANKS))[:2]
    expiry = {"expiry_ms": t0 + HOUR_MS}
    if kind == "transfer":
        inst = draw(st.sampled_from([BOND, CASH]))
        return txf.transfer(a, b, draw(st.integers(1, 1_000)), instrument=inst, **expiry)
    if kind in ("dvp", "pending"):
        qty = HELD + draw(st.sampled_from([-100, 100]))  # +100: short, waits if pending
        terms = {"quantity": qty, "amount": draw(st.integers(1, 10**6)), **expiry}
        deadline = {"deadline_ms": t0 + draw(st.integers(0, 30_000))}
        if kind == "dvp":
            return txf.dvp(a, b, **terms, **deadline)
        return txf.pending(a, b, **terms, **deadline)
    if kind == "mint":
        return txf.mint(a, draw(st.integers(1, 1_000)), expiry_ms=t0 + HOUR_MS)
    return txf.burn(a, draw(st.integers(1, 1_000)), expiry_ms=t0 + HOUR_MS)


def _governance(txf: TxFactory, draw: st.DrawFn, t0: int) -> bytes:
    account = draw(st.sampled_from(BANKS))
    instrument = draw(st.sampled_from(["", BOND, CASH]))
    by = "REGULATOR" if instrument or draw(st.booleans()) else "COMPLIANCE"
    expiry = {"expiry_ms": t0 + HOUR_MS}
    if draw(st.booleans()):
        reason = draw(st.sampled_from(list(FreezeReason)))
        return freeze(txf, account, instrument, by=by, reason=reason, **expiry)
    return unfreeze(txf, account, instrument, by=by, **expiry)


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[int, list[bytes]]]:
    """Blocks as (time offset ms, transactions): freeze blocks and movement blocks."""
    txf = TxFactory(NET)
    t0, offset, blocks = txf.t0, 0, []
    for _ in range(draw(st.integers(2, 10))):
        offset += draw(st.integers(1, 5_000))
        if draw(st.booleans()):
            raws = [_governance(txf, draw, t0) for _ in range(draw(st.integers(1, 3)))]
        else:
            n = draw(st.integers(1, 6))
            raws = [txf.signed(_movement(txf, draw, t0)) for _ in range(n)]
        blocks.append((offset, raws))
    return blocks


def _frozen_holdings(store: MemoryStore) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for f in freezes(store):
        out |= (
            {(f.account, i) for i in (BOND, CASH)}
            if not f.instrument
            else {(f.account, f.instrument)}
        )
    return out


def _violations(history: list[tuple[int, list[bytes]]]) -> list[str]:
    """Every (block, holding) whose balance changed while it was frozen."""
    store = MemoryStore(NET.genesis)
    found = []
    for offset, raws in history:
        frozen = _frozen_holdings(store)
        before = {h: store.balance(*h) for h in frozen}
        ctx = BlockContext(store.head().height + 1, NET.genesis.genesis_time_ms + offset)
        out = apply_block(store, raws, ctx)
        store.commit_block(crypto.sha256(bytes([ctx.height])), b"", b"", ctx, out)
        found += [f"block {ctx.height}: {h}" for h in frozen if store.balance(*h) != before[h]]
    return found


@settings(max_examples=60, deadline=None)
@given(histories())
def test_frozen_balances_never_change(history: list[tuple[int, list[bytes]]]) -> None:
    assert _violations(history) == []


def test_the_oracle_fires_when_freezes_are_not_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: the oracle over a history that moves a frozen holding, once with
    the checks and once with ``any_frozen`` answering False everywhere it is used."""
    txf = TxFactory(NET)
    history = [
        (1_000, [freeze(txf, "BANK01", CASH)]),
        (2_000, [txf.signed(txf.transfer("BANK01", "BANK02", 5, instrument=CASH))]),
    ]
    assert _violations(history) == []
    for module in (_freeze, _pending, _lifecycle):
        monkeypatch.setattr(module, "any_frozen", lambda *_: False)
    assert _violations(history) == [f"block 2: {('BANK01', CASH)}"]
