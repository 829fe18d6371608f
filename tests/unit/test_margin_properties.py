"""Properties (issue 18 "Bad input and invariants", item 3) over random histories of price
attestations (fresh, stale, future, lying), margin calls and substitutions on two open
repos, one transaction a block:

- conservation: every instrument's balances add up to its supply, which never changes
  (margin moves and swaps units, it never creates them), and each open repo's lender
  holds at least the collateral its record will return;
- no collateral moves on a price with fewer than k fresh sources: a margin call or a
  substitution whose instrument has fewer than k sources fresh at the block's time moves
  no balance.

With negative controls: each oracle fires when its rule is broken on purpose.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import crypto
from node.settlement import (
    BlockContext,
    MarginCall,
    RepoOpen,
    RepoSubstitute,
    ResultCode,
    SignedTx,
    _margin,
    _price,
    apply_block,
    decode_body,
    price_records,
    repo,
)
from node.settlement._state import Overlay
from node.store import MemoryStore
from tests.ledger_helpers import HOUR_MS, TxFactory
from tests.margin_helpers import AGE_MS, SOURCES, attest, margin_net

NET = margin_net()
G = NET.genesis
BONDS = NET.bonds
# (id, borrower, lender, bond): two repos, on different bonds and parties
REPOS = (("R-1", "BANK01", "BANK02", BONDS[0]), ("R-2", "BANK03", "BANK04", BONDS[1]))
QTY, PURCHASE, REPURCHASE = 1_000_000, 950_000, 951_000
PARTIES = tuple(p for r in REPOS for p in r[1:3])
ACCOUNTS = tuple(G.participant_ids)


def _open(txf: TxFactory) -> list[bytes]:
    return [
        txf.signed(
            RepoOpen(
                txf.chain_id,
                txf.nonce(),
                txf.t0 + 48 * HOUR_MS,
                rid,
                b,
                lender,
                bond,
                QTY,
                NET.cash,
                PURCHASE,
                REPURCHASE,
                0,
                txf.t0 + 40 * HOUR_MS,
                txf.t0 + 41 * HOUR_MS,
            )
        )
        for rid, b, lender, bond in REPOS
    ]


def _prices(txf: TxFactory, draw: st.DrawFn, now_ms: int, bond: str) -> list[bytes]:
    """One to three sources attest ``bond``: mostly fresh; some in the future, some
    stale, some lies (1 and 10**9)."""
    sources = draw(st.permutations(SOURCES))[: draw(st.integers(1, 3))]
    out = []
    for source in sources:
        as_of = now_ms - draw(st.sampled_from([0, 0, 1_000, 60_000, -1_000, 2 * AGE_MS]))
        price = draw(st.sampled_from([1, 850_000, 900_000, 990_000, 1_000_000, 10**9]))
        out.append(attest(txf, price, as_of, source=source, bond=bond))
    return out


def _block(txf: TxFactory, draw: st.DrawFn, now_ms: int) -> list[bytes]:
    rid, borrower, lender, _ = draw(st.sampled_from(REPOS))
    bond = draw(st.sampled_from(BONDS))
    exp = txf.t0 + 48 * HOUR_MS
    match draw(st.sampled_from(["price", "price", "call", "swap"])):
        case "price":
            return _prices(txf, draw, now_ms, bond)
        case "call":
            return [txf.signed(MarginCall(txf.chain_id, txf.nonce(), exp, rid, borrower, lender))]
        case _:
            qty = draw(st.integers(QTY // 2, 2 * QTY))
            swap = RepoSubstitute(txf.chain_id, txf.nonce(), exp, rid, borrower, lender, bond, qty)
            return [txf.signed(swap)]


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[int, list[bytes]]]:
    """Blocks as (time offset ms after the opening block, transactions): prices, or one
    margin call or substitution alone, so each is judged on the state it ran on."""
    txf = TxFactory(NET)
    offset, blocks = 0, []
    for _ in range(draw(st.integers(2, 40))):
        offset += draw(st.sampled_from([1, 1_000, 1_000, 60_000, AGE_MS]))
        blocks.append((offset, _block(txf, draw, txf.t0 + 1_000 + offset)))
    return blocks


def _fresh_sources(store: MemoryStore, instrument: str, time_ms: int) -> int:
    oldest = time_ms - AGE_MS
    return sum(oldest <= r.as_of_ms <= time_ms for r in price_records(store, instrument))


def _moved_on(store: MemoryStore, raw: bytes) -> str | None:
    """The instrument whose price a margin call or substitution would use; None else."""
    tx = decode_body(SignedTx.decode(raw).body)
    if isinstance(tx, RepoSubstitute):
        return tx.instrument
    if isinstance(tx, MarginCall):
        rec = repo(store, tx.repo)
        return None if rec is None else rec.bond
    return None


def _balances(store: MemoryStore) -> dict[tuple[str, str], int]:
    return {(a, i): store.balance(a, i) for a in ACCOUNTS for i in (*BONDS, NET.cash)}


def _commit(store: MemoryStore, raws: list[bytes], time_ms: int) -> ResultCode:
    ctx = BlockContext(store.head().height + 1, time_ms)
    out = apply_block(store, raws, ctx)
    store.commit_block(crypto.sha256(ctx.height.to_bytes(8, "big")), b"", b"", ctx, out)
    return out.results[-1].code


def _violations(history: list[tuple[int, list[bytes]]]) -> list[str]:
    store, txf = MemoryStore(G), TxFactory(NET)
    assert all(c is ResultCode.OK for c in [_commit(store, _open(txf), G.genesis_time_ms + 1_000)])
    supply = {i: store.supply(i) for i in (*BONDS, NET.cash)}
    found: list[str] = []
    for k, (offset, raws) in enumerate(history):
        now = G.genesis_time_ms + 1_000 + offset
        instrument, before = _moved_on(store, raws[-1]), _balances(store)
        few = instrument is not None and _fresh_sources(store, instrument, now) < G.margin.threshold
        code = _commit(store, raws, now)
        if few and (_balances(store) != before or code is ResultCode.OK):
            found.append(f"tx {k}: {code.name} moved collateral on fewer than k fresh prices")
        found += _conservation(store, supply, k)
    return found


def _conservation(store: MemoryStore, supply: dict[str, int], k: int) -> list[str]:
    found = []
    for i, total in supply.items():
        held = sum(store.balance(a, i) for a in ACCOUNTS)
        if store.supply(i) != total or held != total:
            found.append(f"tx {k}: {i} supply {store.supply(i)}, held {held}, was {total}")
    for rid, *_ in REPOS:
        rec = repo(store, rid)
        if rec is not None and store.balance(rec.lender, rec.bond) < rec.quantity:
            found.append(f"tx {k}: {rid}'s lender holds less than the collateral it returns")
    return found


@settings(max_examples=60, deadline=None)
@given(histories())
def test_margin_conserves_and_never_moves_on_fewer_than_k_fresh_prices(
    history: list[tuple[int, list[bytes]]],
) -> None:
    assert _violations(history) == []


def _one_source_then_a_call() -> list[tuple[int, list[bytes]]]:
    txf = TxFactory(NET)
    now = txf.t0 + 1_000
    call = MarginCall(txf.chain_id, 1, now + HOUR_MS, "R-1", "BANK01", "BANK02")
    return [(1, [attest(txf, 850_000, now, bond=BONDS[0])]), (2, [txf.signed(call)])]


def test_the_k_oracle_fires_when_one_source_makes_a_price(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Negative control: one source's low price, then a call: refused as it should be;
    with a ``fresh_price`` that takes any one recorded price, the oracle reports it."""
    history = _one_source_then_a_call()
    assert _violations(history) == []
    monkeypatch.setattr(
        _price, "fresh_price", lambda reg, v, i, t: min(r.price for r in price_records(v, i))
    )
    assert any("fewer than k" in v for v in _violations(history))


def test_the_conservation_oracle_fires_when_a_call_mints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: a margin call that credits the lender without debiting the
    borrower breaks conservation, and the oracle says so."""
    txf = TxFactory(NET)
    now = txf.t0 + 1_000
    prices = [attest(txf, 850_000, now, source=s, bond=BONDS[0]) for s in SOURCES[:2]]
    call = MarginCall(txf.chain_id, 99_999, now + HOUR_MS, "R-1", "BANK01", "BANK02")
    history = [(1, prices), (2, [txf.signed(call)])]
    assert _violations(history) == []

    def minting_call(reg: object, o: Overlay, tx: MarginCall, *, time_ms: int) -> ResultCode:
        o.balances[(tx.lender, BONDS[0])] = o.balance(tx.lender, BONDS[0]) + 1
        return ResultCode.OK

    monkeypatch.setattr(_margin, "margin_call", minting_call)
    assert any("held" in v for v in _violations(history))
