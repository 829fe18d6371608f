"""Properties (issue 18 "Bad input and invariants", item 3) over random histories of price
attestations (fresh, stale, future, lying), margin calls and substitutions on two open
repos, one transaction a block:

- conservation: every instrument's balances add up to its supply, which never changes
  (margin moves and swaps units, it never creates them), and each open repo's lender
  holds at least the collateral its record will return;
- no collateral moves on a price with fewer than k fresh sources: a margin call or a
  substitution whose instrument has fewer than k sources fresh at the block's time moves
  no balance;
- manufactured coupons (manuf), over months of coupon payments, calls and substitutions
  on one repo: the close nets what the lender received as holder of record on the
  repo's collateral (the oracle reads the record before each coupon's block, not the
  netting rule).

With negative controls: each oracle fires when its rule is broken on purpose.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import crypto
from node.settlement import (
    AttestPrice,
    BlockContext,
    CouponPay,
    MarginCall,
    RepoClose,
    RepoOpen,
    RepoRecord,
    RepoStatus,
    RepoSubstitute,
    ResultCode,
    SignedTx,
    _margin,
    _price,
    _repo,
    apply_block,
    decode_body,
    price_records,
    repo,
)
from node.settlement._lifecycle import coupon_amount
from node.settlement._state import Overlay
from node.store import MemoryStore
from tests.ledger_helpers import HOUR_MS, TxFactory
from tests.life_helpers import AGENT, at
from tests.margin_helpers import AGE_MS, SOURCES, attest, coupon_net, margin_net

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


# --- manufactured coupons across changes of collateral (manuf) ----------------------------
# Over random months of coupon payments (each in the first block at or after its date,
# before anything else there), margin calls and substitutions on one repo, the close nets
# exactly what the lender received as holder of record on the repo's collateral: for each
# coupon paid, the coupon on the quantity the record held at the end of the block before,
# when the record's bond was the one paid; at most the amount due less one minor unit.

CNET = coupon_net()
CG = CNET.genesis
C_OPEN, C_CLOSE = at("2026-05-01"), at("2026-12-31")
C_EXP = 2**63  # the histories run for months


def _coupons_due(txf: TxFactory, after_ms: int, now_ms: int) -> list[bytes]:
    """Every coupon of either bond dated in (``after_ms``, ``now_ms``]."""
    return [
        txf.signed(CouponPay(txf.chain_id, txf.nonce(), C_EXP, bond, k, AGENT))
        for bond in BONDS
        for k, due_ms in enumerate(CG.schedules[bond], start=1)
        if after_ms < due_ms <= now_ms
    ]


def _change(txf: TxFactory, draw: st.DrawFn, now_ms: int) -> list[bytes]:
    """Nothing, or two sources' price and then a margin call or a substitution."""
    bond = draw(st.sampled_from(BONDS))
    kind = draw(st.sampled_from(["none", "call", "swap"]))
    if kind == "none":
        return []
    price = draw(st.sampled_from([600_000, 900_000, 1_000_000]))
    priced = [
        txf.signed(AttestPrice(txf.chain_id, txf.nonce(), C_EXP, s, bond, price, now_ms))
        for s in SOURCES[:2]
    ]
    if kind == "call":
        tx: MarginCall | RepoSubstitute = MarginCall(
            txf.chain_id, txf.nonce(), C_EXP, "R-1", "BANK01", "BANK02"
        )
    else:
        qty = draw(st.integers(QTY // 2, 3 * QTY))
        tx = RepoSubstitute(txf.chain_id, txf.nonce(), C_EXP, "R-1", "BANK01", "BANK02", bond, qty)
    return [*priced, txf.signed(tx)]


@st.composite
def coupon_histories(draw: st.DrawFn) -> tuple[int, list[tuple[int, list[bytes]]]]:
    """(repurchase amount, blocks as (time, transactions)): the open, then up to six
    blocks days or weeks apart, then the close (by both, with the coupons due)."""
    txf = TxFactory(CNET)
    repurchase = draw(st.sampled_from([REPURCHASE, 30_000]))  # 30,000: the netting caps
    opening = RepoOpen(
        txf.chain_id, txf.nonce(), C_EXP, "R-1", "BANK01", "BANK02", BONDS[0], QTY, NET.cash,
        PURCHASE if repurchase == REPURCHASE else 29_000, repurchase, 0, C_CLOSE,
        C_CLOSE + HOUR_MS,
    )  # fmt: skip
    blocks, last = [(C_OPEN, [txf.signed(opening)])], C_OPEN
    for _ in range(draw(st.integers(0, 6))):
        now = last + draw(st.integers(1, 30)) * 24 * HOUR_MS + draw(st.integers(0, HOUR_MS))
        blocks.append((now, [*_coupons_due(txf, last, now), *_change(txf, draw, now)]))
        last = now
    now = last + 24 * HOUR_MS
    close = RepoClose(
        txf.chain_id, txf.nonce(), C_EXP, "R-1", "BANK01", "BANK02", ("BANK01", "BANK02")
    )
    blocks.append((now, [*_coupons_due(txf, last, now), txf.signed(close)]))
    return repurchase, blocks


def _netting_violations(repurchase: int, blocks: list[tuple[int, list[bytes]]]) -> list[str]:
    store, received = MemoryStore(CG), 0
    for time_ms, raws in blocks:
        held = repo(store, "R-1")  # the holder of record: the end of the block before
        ctx = BlockContext(store.head().height + 1, time_ms)
        out = apply_block(store, raws, ctx)
        store.commit_block(crypto.sha256(ctx.height.to_bytes(8, "big")), b"", b"", ctx, out)
        for raw, result in zip(raws, out.results, strict=False):
            tx = decode_body(SignedTx.decode(raw).body)
            if isinstance(tx, CouponPay) and held is not None and held.bond == tx.bond:
                assert result.code is ResultCode.OK, result.code
                received += coupon_amount(CG.instrument_by_id[tx.bond], held.quantity)
    rec = repo(store, "R-1")
    assert rec is not None and rec.status is RepoStatus.CLOSED
    due = min(received, repurchase - 1)
    if (rec.manufactured, rec.close_amount) != (due, repurchase - due):
        return [f"netted {rec.manufactured}, paid {rec.close_amount}; received {received}"]
    return []


@settings(max_examples=40, deadline=None)
@given(coupon_histories())
def test_the_close_nets_the_coupons_the_lender_received_on_the_collateral(
    history: tuple[int, list[tuple[int, list[bytes]]]],
) -> None:
    assert _netting_violations(*history) == []


def test_the_netting_oracle_fires_when_a_change_of_collateral_carries_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Negative control: the 15 May coupon, then a margin call on 1 June; with a
    ``change_collateral`` that neither carries nor restarts the count (the rule before
    the fix), the close nets the coupon on the called units too, and the oracle says so."""
    txf = TxFactory(CNET)
    opening = RepoOpen(
        txf.chain_id, txf.nonce(), C_EXP, "R-1", "BANK01", "BANK02", BONDS[0], QTY, NET.cash,
        PURCHASE, REPURCHASE, 0, C_CLOSE, C_CLOSE + HOUR_MS,
    )  # fmt: skip
    june = at("2026-06-01")
    call = MarginCall(txf.chain_id, txf.nonce(), C_EXP, "R-1", "BANK01", "BANK02")
    priced = [
        txf.signed(AttestPrice(txf.chain_id, txf.nonce(), C_EXP, s, BONDS[0], 600_000, june))
        for s in SOURCES[:2]
    ]
    close = RepoClose(
        txf.chain_id, txf.nonce(), C_EXP, "R-1", "BANK01", "BANK02", ("BANK01", "BANK02")
    )
    history = [
        (C_OPEN, [txf.signed(opening)]),
        (june, [*_coupons_due(txf, C_OPEN, june), *priced, txf.signed(call)]),
        (june + HOUR_MS, [txf.signed(close)]),
    ]
    assert _netting_violations(REPURCHASE, history) == []

    def uncarried(
        reg: object, o: object, rec: RepoRecord, time_ms: int, *, bond: str, quantity: int
    ) -> RepoRecord:
        return dataclasses.replace(rec, bond=bond, quantity=quantity)

    monkeypatch.setattr(_repo, "change_collateral", uncarried)
    assert _netting_violations(REPURCHASE, history) != []
