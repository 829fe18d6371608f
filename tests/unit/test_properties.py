"""Property tests over random transaction sequences, on both stores.

The oracle is independent of the implementation's bookkeeping: from the result codes
alone it predicts every balance change (each OK transaction moves exactly its legs, each
failed one moves nothing) and every supply change (only OK mints and burns).

Rare branches are aimed at, not hoped for: every block of the boundary history opens
with a transaction sized from the state it runs on (a leg exactly covered or one unit
short, a mint exactly at the supply cap or one over, an expiry or deadline one before,
at or one after the block time), whose code is predicted exactly; forged, wrong-chain,
malformed and replayed copies are mixed in. Example counts scale with the hypothesis
profile (tests/conftest.py: "ci" by default, HYPOTHESIS_PROFILE=long for deeper runs).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from hypothesis import given, settings
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

_BASE = shared_net()
CAPPED = _BASE.bonds[1]  # a bond whose attested supply leaves little headroom
HEADROOM = 5_000_000
_CAP = sum(h.amount for h in _BASE.genesis.holdings if h.instrument == CAPPED) + HEADROOM
NET = replace(
    _BASE,
    genesis=replace(
        _BASE.genesis,
        instruments=tuple(
            replace(i, max_supply=_CAP) if i.id == CAPPED else i for i in _BASE.genesis.instruments
        ),
    ),
)
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
    txs = draw(st.lists(_tx_strategy(f), min_size=1, max_size=60))
    cuts = sorted(draw(st.lists(st.integers(0, len(txs)), max_size=6)))
    blocks, start = [], 0
    for c in [*cuts, len(txs)]:
        blocks.append(txs[start:c])
        start = c
    return blocks


@settings(max_examples=2 * settings().max_examples)
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


# --- aimed boundaries ----------------------------------------------------------------------

RC = ResultCode
BANKS = NET.banks[:4]
NEAR = st.sampled_from([-1, 0, 1])  # one unit below, exactly at, one unit above a bound
NEAR_OR_FAR = st.sampled_from([-1, 0, 1, 10**7])


def _expect(store: MemoryStore, tx: Transaction, time_ms: int) -> ResultCode:
    """The rules, restated for authentic transactions between banks on known instruments
    (the only kind ``_aimed`` builds): the code ``tx`` must get on ``store`` at ``time_ms``."""
    if time_ms > tx.expiry_ms:
        return RC.EXPIRED
    bal = store.balance
    if isinstance(tx, DvP):
        if tx.quantity == 0 or tx.amount == 0:
            return RC.INVALID_AMOUNT
        if time_ms > tx.deadline_ms:
            return RC.DEADLINE_PASSED
        if bal(tx.seller, tx.bond) < tx.quantity:
            return RC.INSUFFICIENT_SECURITIES
        return RC.INSUFFICIENT_CASH if bal(tx.buyer, tx.cash) < tx.amount else RC.OK
    if isinstance(tx, Mint):
        cap = NET.genesis.instrument_by_id[tx.instrument].max_supply
        if tx.amount == 0:
            return RC.INVALID_AMOUNT
        return RC.SUPPLY_LIMIT if store.supply(tx.instrument) + tx.amount > cap else RC.OK
    account = tx.sender if isinstance(tx, Transfer) else tx.holder
    if tx.amount == 0:
        return RC.INVALID_AMOUNT
    if bal(account, tx.instrument) < tx.amount:
        cash = tx.instrument == NET.cash
        return RC.INSUFFICIENT_CASH if cash else RC.INSUFFICIENT_SECURITIES
    return RC.OK


def _aimed(data: st.DataObject, store: MemoryStore, f: TxFactory, time_ms: int) -> Transaction:
    """A transaction sized from the state it will run on: each amount is what the paying
    side holds (or what the cap leaves) minus one, exactly, or plus one; the expiry and
    deadline one before, at, or one after the block time (or far after)."""
    seller, buyer = data.draw(st.lists(st.sampled_from(BANKS), min_size=2, max_size=2, unique=True))
    bond = data.draw(st.sampled_from(NET.bonds))
    inst = data.draw(st.sampled_from([*NET.bonds, NET.cash]))
    expiry = time_ms + data.draw(NEAR_OR_FAR)
    bal = store.balance
    kind = data.draw(st.sampled_from(["dvp", "dvp", "transfer", "burn", "mint"]))
    if kind == "dvp":
        qty = max(0, bal(seller, bond) + data.draw(NEAR))
        amount = max(0, bal(buyer, NET.cash) + data.draw(NEAR))
        deadline = time_ms + data.draw(NEAR_OR_FAR)
        return f.dvp(seller, buyer, qty, amount, bond=bond, deadline_ms=deadline, expiry_ms=expiry)
    if kind == "transfer":
        amount = max(0, bal(seller, inst) + data.draw(NEAR))
        return f.transfer(seller, buyer, amount, instrument=inst, expiry_ms=expiry)
    if kind == "burn":
        by = "CASHCO" if inst == NET.cash else "TREASURY"
        amount = max(0, bal(seller, inst) + data.draw(NEAR))
        return f.burn(seller, amount, instrument=inst, by=by, expiry_ms=expiry)
    left = NET.genesis.instrument_by_id[CAPPED].max_supply - store.supply(CAPPED)
    return f.mint(seller, max(0, left + data.draw(NEAR)), instrument=CAPPED, expiry_ms=expiry)


def _forged(raw: bytes) -> bytes:
    """Somebody's body with garbage signatures: the same id, a copy never recorded."""
    stx = SignedTx.decode(raw)
    return SignedTx(stx.body, tuple((s, bytes(64)) for s, _ in stx.signatures)).encode()


def _copies(
    f: TxFactory, tx: Transaction, raw: bytes, time_ms: int
) -> list[tuple[bytes, ResultCode]]:
    """Hostile copies of ``tx`` and the code each must get whatever the state."""
    other_chain = f.signed(replace(tx, chain_id="another-chain"))
    replay = RC.EXPIRED if time_ms > tx.expiry_ms else RC.DUPLICATE  # EXPIRED comes first
    return [
        (_forged(raw), RC.BAD_SIGNATURE),
        (other_chain, RC.WRONG_CHAIN),
        (raw[:-1], RC.MALFORMED),
        (raw, replay),  # after the original in the same block
    ]


@settings(max_examples=settings().max_examples)
@given(st.data())
def test_aimed_boundaries_get_exact_codes_and_conserve(data: st.DataObject) -> None:
    """Every block opens with an aimed transaction whose code is predicted exactly, then
    hostile copies of it, replays of earlier ones and random traffic; the oracle of
    ``_check_block`` checks that refused transactions moved nothing. A DvP that moved
    its bond leg before checking the buyer's cash, or any of the exact comparisons
    (cash, securities, supply cap, expiry, deadline) off by one, fails here every run."""
    f = TxFactory(NET)
    store = MemoryStore(NET.genesis)
    history: list[tuple[Transaction, bytes]] = []
    for i in range(data.draw(st.integers(1, 8), label="blocks")):
        dt = 1_000 * (i + 1)
        time_ms = NET.genesis.genesis_time_ms + dt
        tx = _aimed(data, store, f, time_ms)
        raw = f.signed(tx)
        want = [_expect(store, tx, time_ms)]
        picked = data.draw(st.lists(st.sampled_from(_copies(f, tx, raw, time_ms)), max_size=2))
        raws = [raw, *(r for r, _ in picked)]
        want += [c for _, c in picked]
        replays = data.draw(st.lists(st.sampled_from(history), max_size=2)) if history else []
        for old, old_raw in replays:
            raws.append(old_raw)
            want.append(RC.EXPIRED if time_ms > old.expiry_ms else RC.DUPLICATE)
        fillers = data.draw(st.lists(_tx_strategy(f), max_size=6))
        raws += [_sign(f, t) for t in fillers]
        codes = _check_block(store, raws, dt)
        assert codes[: len(want)] == want, (tx, codes[: len(want)], want)
        history.append((tx, raw))
