"""Property (issue 15 "Bad input and invariants"): supply never exceeds the latest
attestation, over random histories of attestations (fresh, stale, future, lowering),
mints and burns of a custody-backed bond and a reserve-backed cash token. Precisely: no
block raises a backed instrument's supply above its latest attestation (an attestation
may fall below the supply, a loss reported truthfully; then nothing more is minted until
one covers it). With a negative control: the oracle fires when the mint check is off.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import crypto
from node.settlement import (
    Bill,
    BlockContext,
    Genesis,
    _reserve,
    apply_block,
    latest_custody,
    latest_reserves,
)
from node.store import MemoryStore
from tests.ledger_helpers import TxFactory
from tests.reserve_helpers import BILL_A, attest_custody, attest_reserves, backed_net

NET = backed_net()
BOND, CASH = NET.bonds[0], NET.cash
BANKS = NET.banks[:3]


def _latest(g: Genesis, store: MemoryStore, instrument: str) -> int:
    if instrument == BOND:
        return latest_custody(g, store, BOND).amount
    return latest_reserves(g, store, CASH).total


def _tx(txf: TxFactory, draw: st.DrawFn, now_ms: int) -> bytes:
    instrument = draw(st.sampled_from([BOND, CASH]))
    supply_ish = 6 * (10_000_000 if instrument == BOND else 1_000_000_000)
    amount = draw(st.integers(1, supply_ish // 1_000))
    as_of = now_ms + draw(st.integers(-3_000, 500))  # some stale, some in the future
    match draw(st.sampled_from(["attest", "mint", "mint", "burn"])):
        case "attest" if instrument == BOND:
            level = supply_ish + draw(st.integers(-amount, 3 * amount))
            return attest_custody(txf, level, as_of)
        case "attest":
            level = supply_ish + draw(st.integers(-amount, 3 * amount))
            return attest_reserves(
                txf, as_of, deposits=level // 10, bills=(Bill(BILL_A, "2026-03-01", level),)
            )
        case "mint":
            by = "CSD" if instrument == BOND else "CASHCO"
            return txf.signed(txf.mint(draw(st.sampled_from(BANKS)), amount, instrument, by=by))
        case _:
            by = "CSD" if instrument == BOND else "CASHCO"
            return txf.signed(txf.burn(draw(st.sampled_from(BANKS)), amount, instrument, by=by))


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[int, list[bytes]]]:
    """Blocks as (time offset ms, transactions)."""
    txf = TxFactory(NET)
    offset, blocks = 0, []
    for _ in range(draw(st.integers(2, 10))):
        offset += draw(st.integers(1, 5_000))
        now = txf.t0 + offset
        blocks.append((offset, [_tx(txf, draw, now) for _ in range(draw(st.integers(1, 5)))]))
    return blocks


def _violations(history: list[tuple[int, list[bytes]]]) -> list[str]:
    """Every transaction after which a backed instrument's supply rose above its latest
    attestation. Judged at each transaction's place in its block (the block cut after it,
    on a copy of the store): an attestation later in the same block may truthfully lower
    custody below what an earlier mint, checked against the custody then, brought."""
    g = NET.genesis
    store = MemoryStore(g)
    found = []
    for offset, raws in history:
        ctx = BlockContext(store.head().height + 1, g.genesis_time_ms + offset)
        before = {i: store.supply(i) for i in (BOND, CASH)}
        for k in range(1, len(raws) + 1):
            cut = copy.deepcopy(store, {id(g): g})
            _commit(cut, raws[:k], ctx)
            for i in (BOND, CASH):
                after, latest = cut.supply(i), _latest(g, cut, i)
                if after > before[i] and after > latest:
                    found.append(f"block {ctx.height} tx {k}: {i} supply {after} > {latest}")
                before[i] = after
        _commit(store, raws, ctx)
    return found


def _commit(store: MemoryStore, raws: list[bytes], ctx: BlockContext) -> None:
    out = apply_block(store, raws, ctx)
    store.commit_block(crypto.sha256(bytes([ctx.height])), b"", b"", ctx, out)


@settings(max_examples=80, deadline=None)
@given(histories())
def test_supply_never_exceeds_the_latest_attestation(
    history: list[tuple[int, list[bytes]]],
) -> None:
    assert _violations(history) == []


def test_the_oracle_fires_when_mints_are_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: a history minting one unit past the attested custody, once with
    the check and once with ``mint_code`` answering None (no check)."""
    txf = TxFactory(NET)
    history = [(1_000, [txf.signed(txf.mint("BANK01", 1, BOND, by="CSD"))])]
    assert _violations(history) == []
    monkeypatch.setattr(_reserve, "mint_code", lambda *_: None)
    assert _violations(history) == [f"block 1 tx 1: {BOND} supply 60000001 > 60000000"]


def test_a_mint_then_a_lower_attestation_in_one_block_is_no_violation() -> None:
    """The case Hypothesis found against a per-block oracle: custody raised by one unit,
    then a block that mints that unit and, after it, attests the lower custody again (a
    truthful loss report). The mint was covered when it ran."""
    txf = TxFactory(NET)
    t0 = txf.t0
    history = [
        (1_000, [attest_custody(txf, 60_000_001, t0 + 500)]),
        (
            2_000,
            [
                txf.signed(txf.mint("BANK01", 1, BOND, by="CSD")),
                attest_custody(txf, 60_000_000, t0 + 1_500),
            ],
        ),
    ]
    assert _violations(history) == []
    store = MemoryStore(NET.genesis)  # the case happened: the unit was minted, then the loss
    for height, (offset, raws) in enumerate(history, start=1):
        _commit(store, raws, BlockContext(height, NET.genesis.genesis_time_ms + offset))
    assert store.supply(BOND) == 60_000_001
    assert _latest(NET.genesis, store, BOND) == 60_000_000
