"""Property tests over random transaction sequences, on both stores.

The oracle is independent of the implementation's bookkeeping: from the result codes
alone it predicts every balance change (each OK transaction moves exactly its legs, each
failed one moves nothing) and every supply change (only OK mints and burns).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import crypto
from node.genesis import DemoNetwork
from node.settlement import (
    BlockContext,
    Burn,
    DvP,
    Mint,
    ResultCode,
    SignedTx,
    Transaction,
    Transfer,
    apply_block,
    decode_body,
    encode_body,
)
from node.store import LmdbStore, MemoryStore, Storage
from tests.ledger_helpers import TxFactory, shared_net

NET = shared_net()
ACCOUNTS = [*NET.banks[:4], "CSD", "TREASURY", "CASHCO", "REGULATOR", "NOBODY"]
INSTRUMENTS = [*NET.bonds, NET.cash, "XS0000000000"]
ISSUERS = ["TREASURY", "CSD", "CASHCO", "BANK01"]
AMOUNTS = st.one_of(
    st.integers(0, 3), st.integers(1, 20_000_000), st.sampled_from([2**63, 2**64 - 1])
)
SIGNABLE = {p.id for p in NET.genesis.participants}


def _tx_strategy(f: TxFactory) -> st.SearchStrategy[Transaction]:
    """Mostly plausible bank trades (so many succeed), plus arbitrary hostile mixes."""
    bank, bond = st.sampled_from(NET.banks[:4]), st.sampled_from(NET.bonds)
    qty = st.integers(1, 12_000_000)
    plausible = st.one_of(
        st.builds(
            lambda s, b, bd, q, a: f.dvp(s, b, q, a, bond=bd),
            bank,
            bank,
            bond,
            qty,
            st.integers(1, 1_200_000_000),
        ),
        st.builds(f.transfer, bank, bank, st.integers(1, 10**9)),
        st.builds(lambda t, a, i: f.mint(t, a, instrument=i), bank, qty, bond),
        st.builds(lambda h, a, i: f.burn(h, a, instrument=i), bank, qty, bond),
    )
    acct, inst = st.sampled_from(ACCOUNTS), st.sampled_from(INSTRUMENTS)
    expiry = st.sampled_from([f.t0 + 10**7, f.t0 + 1_500])
    hostile = st.one_of(
        st.builds(
            lambda s, b, bd, q, c, a, dl, e: f.dvp(
                s, b, q, a, bond=bd, cash=c, deadline_ms=dl, expiry_ms=e
            ),
            acct,
            acct,
            inst,
            AMOUNTS,
            inst,
            AMOUNTS,
            st.sampled_from([f.t0 + 10**7, f.t0 + 2_500]),
            expiry,
        ),
        st.builds(
            lambda s, r, a, i, e: f.transfer(s, r, a, instrument=i, expiry_ms=e),
            acct,
            acct,
            AMOUNTS,
            inst,
            expiry,
        ),
        st.builds(
            lambda t, a, i, b: f.mint(t, a, instrument=i, by=b),
            acct,
            AMOUNTS,
            inst,
            st.sampled_from(ISSUERS),
        ),
        st.builds(
            lambda h, a, i, b: f.burn(h, a, instrument=i, by=b),
            acct,
            AMOUNTS,
            inst,
            st.sampled_from(ISSUERS),
        ),
    )
    return st.one_of(plausible, plausible, hostile)


def _sign(f: TxFactory, tx: Transaction) -> bytes:
    if not set(tx.required_signers()) <= SIGNABLE:
        # Sign with some key anyway: an unknown signer must be a BAD_SIGNATURE.
        stx = SignedTx(encode_body(tx), ())
        for s in tx.required_signers():
            stx = stx.with_signature(s, f.net.participant_keys["BANK01"])
        return stx.encode()
    return f.signed(tx)


def _expected_deltas(tx: Transaction) -> tuple[Counter[tuple[str, str]], Counter[str]]:
    bal: Counter[tuple[str, str]] = Counter()
    sup: Counter[str] = Counter()
    if isinstance(tx, DvP):
        bal[(tx.seller, tx.bond)] -= tx.quantity
        bal[(tx.buyer, tx.bond)] += tx.quantity
        bal[(tx.buyer, tx.cash)] -= tx.amount
        bal[(tx.seller, tx.cash)] += tx.amount
    elif isinstance(tx, Transfer):
        bal[(tx.sender, tx.instrument)] -= tx.amount
        bal[(tx.receiver, tx.instrument)] += tx.amount
    elif isinstance(tx, Mint):
        bal[(tx.to, tx.instrument)] += tx.amount
        sup[tx.instrument] += tx.amount
    elif isinstance(tx, Burn):
        bal[(tx.holder, tx.instrument)] -= tx.amount
        sup[tx.instrument] -= tx.amount
    return bal, sup


def _supplies(store: Storage) -> dict[str, int]:
    return {i.id: store.supply(i.id) for i in store.genesis.instruments}


def _check_block(store: Storage, raws: list[bytes], dt_ms: int) -> list[ResultCode]:
    before_bal, before_sup = store.all_balances(), _supplies(store)
    ctx = BlockContext(store.head().height + 1, store.genesis.genesis_time_ms + dt_ms)
    out = apply_block(store, raws, ctx)
    store.commit_block(crypto.sha256(ctx.height.to_bytes(8, "big")), b"b", b"c", ctx, out)
    want_bal: Counter[tuple[str, str]] = Counter()
    want_sup: Counter[str] = Counter()
    for raw, res in zip(raws, out.results, strict=True):
        if res.code is ResultCode.OK:
            bal, sup = _expected_deltas(decode_body(SignedTx.decode(raw).body))
            want_bal.update(bal)
            want_sup.update(sup)
    after_bal, after_sup = store.all_balances(), _supplies(store)
    for key in set(before_bal) | set(after_bal) | set(want_bal):
        got = after_bal.get(key, 0) - before_bal.get(key, 0)
        assert got == want_bal[key], f"balance {key} moved {got}, expected {want_bal[key]}"
        assert after_bal.get(key, 0) >= 0
    for inst in after_sup:
        assert after_sup[inst] - before_sup[inst] == want_sup[inst], f"supply of {inst}"
        held = sum(v for (_, i), v in after_bal.items() if i == inst)
        assert held == after_sup[inst], f"{inst}: balances {held} != supply {after_sup[inst]}"
    return [r.code for r in out.results]


@contextmanager
def _lmdb(net: DemoNetwork) -> Iterator[LmdbStore]:
    with tempfile.TemporaryDirectory() as d:
        s = LmdbStore(d, net.genesis, map_size_bytes=1 << 20)
        try:
            yield s
        finally:
            s.close()


@st.composite
def _blocks(draw: st.DrawFn) -> list[list[Transaction]]:
    f = TxFactory(NET)
    txs = draw(st.lists(_tx_strategy(f), min_size=1, max_size=40))
    cuts = sorted(draw(st.lists(st.integers(0, len(txs)), max_size=4)))
    blocks, start = [], 0
    for c in [*cuts, len(txs)]:
        blocks.append(txs[start:c])
        start = c
    return blocks


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_blocks(), st.data())
def test_random_histories_conserve_and_agree(
    blocks: list[list[Transaction]], data: st.DataObject
) -> None:
    f = TxFactory(NET)
    mem = MemoryStore(NET.genesis)
    seen: list[bytes] = []
    with _lmdb(NET) as disk:
        for i, block in enumerate(blocks):
            raws = [_sign(f, tx) for tx in block]
            # Re-submit some earlier transactions: they must be answered, never re-applied.
            if seen:
                raws += data.draw(st.lists(st.sampled_from(seen), max_size=3))
            dt = 1_000 * (i + 1)
            codes = _check_block(mem, raws, dt)
            assert _check_block(disk, raws, dt) == codes
            assert mem.head() == disk.head(), "LMDB and memory stores diverged"
            for raw, code in zip(raws, codes, strict=True):
                if raw in seen:
                    assert code in (ResultCode.DUPLICATE, ResultCode.EXPIRED), code
            seen += [
                r
                for r, c in zip(raws, codes, strict=True)
                if c not in (ResultCode.BAD_SIGNATURE, ResultCode.MALFORMED)
            ]
        assert mem.all_balances() == disk.all_balances()
