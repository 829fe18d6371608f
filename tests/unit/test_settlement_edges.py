"""What mutation testing of node/settlement/_apply.py found untested (docs/testing.md):
the result-leaf format receipts depend on, the state root's dependence on every write,
the overlay's own guards, which copies are recorded, who may issue, and precheck's
defaults. Each test here kills a mutant that survived the rest of the suite.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from node import crypto
from node.config import BLOCK_TXS_MAX
from node.genesis import DemoNetwork
from node.invariant import InvariantError
from node.settlement import (
    BlockContext,
    DecodeError,
    Participant,
    ResultCode,
    Role,
    SignedTx,
    Transaction,
    TxRecord,
    TxResult,
    apply_block,
    decode_body,
    encode_body,
    precheck,
    result_leaf,
    results_root,
    sign_tx,
)
from node.settlement._state import Head, Overlay
from node.store import MemoryStore
from tests.ledger_helpers import TxFactory
from tests.unit.test_boundaries import _View

RC = ResultCode
U64_MAX = 2**64 - 1


def test_result_leaf_layout_is_pinned() -> None:
    """ADR 0005/0007: tag, the 32-byte id, the code as big-endian u16. Node and verifier
    share result_leaf, so only a pinned layout catches a change to both at once."""
    tid = bytes(range(32))
    assert result_leaf(TxResult(tid, RC.INSUFFICIENT_CASH, True)) == b"\x01" + tid + b"\x00\x0e"
    assert result_leaf(TxResult(tid, RC.OK, False)) == b"\x02" + tid + b"\x00\x50"  # 80 (ADR 0020)


def test_outcome_results_root_is_the_merkle_root_of_its_leaves(
    store: MemoryStore, txf: TxFactory
) -> None:
    out = apply_block(store, [txf.signed(txf.transfer())], BlockContext(1, txf.t0 + 1))
    assert isinstance(out.results_root, bytes)
    assert out.results_root == results_root(out.results, out.parties)


def test_records_are_immutable(store: MemoryStore, txf: TxFactory) -> None:
    out = apply_block(store, [txf.signed(txf.transfer())], BlockContext(1, txf.t0 + 1))
    for value, name in ((out.results[0], "code"), (out.recorded[0][1], "code"), (out, "height")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, name, RC.OK)
    with pytest.raises(dataclasses.FrozenInstanceError):
        BlockContext(1, 0).height = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        store.head().height = 5  # type: ignore[misc]


def test_a_block_of_exactly_the_size_limit_applies(store: MemoryStore) -> None:
    """Consensus admits up to BLOCK_TXS_MAX transactions; one more is a bug upstream."""
    out = apply_block(store, [b""] * BLOCK_TXS_MAX, BlockContext(1, 0))
    assert len(out.results) == BLOCK_TXS_MAX
    with pytest.raises(InvariantError, match="oversized block"):
        apply_block(store, [b""] * (BLOCK_TXS_MAX + 1), BlockContext(1, 0))


def test_state_root_covers_balance_and_supply_writes(txf: TxFactory, net: DemoNetwork) -> None:
    """Same transactions, same results, different values written: different roots."""
    bond = net.bonds[0]
    ctx = BlockContext(1, txf.t0 + 1)
    transfer = txf.signed(txf.transfer("BANK01", "BANK02", 1))
    roots = set()
    for held in (10, 20):
        out = apply_block(_View(net.genesis, {("BANK01", net.cash): held}), [transfer], ctx)
        assert [r.code for r in out.results] == [RC.OK]
        roots.add(out.state_root)
    mint = txf.signed(txf.mint("BANK01", 1))
    for supply in (5, 6):
        out = apply_block(_View(net.genesis, {("BANK01", bond): 5}, {bond: supply}), [mint], ctx)
        assert [r.code for r in out.results] == [RC.OK]
        roots.add(out.state_root)
    assert len(roots) == 4


def test_a_block_applies_only_on_its_parent_height(store: MemoryStore) -> None:
    for height in (0, 2):
        with pytest.raises(InvariantError, match="applied on height 0"):
            apply_block(store, [], BlockContext(height, 0))


def test_a_block_applies_on_its_parent_above_height_256(net: DemoNetwork) -> None:
    """Heights 299 and 300 as a store and a certified block give them: equal to one plus
    the other, never the same int object."""

    class At299(_View):
        def head(self) -> Head:
            return replace(super().head(), height=int(str(299)))

    out = apply_block(At299(net.genesis), [], BlockContext(int(str(300)), 0))
    assert out.results == ()


def test_overlay_guards_hold_on_their_own(net: DemoNetwork) -> None:
    """The overlay refuses an unchecked move or mint even if a caller's check were wrong."""
    cash = net.cash
    view = _View(net.genesis, {("A", cash): 10, ("B", cash): U64_MAX - 10}, {cash: 10})
    o = Overlay(view)
    o.move(cash, "A", "B", 10)  # all of A's balance, B exactly to 2**64 - 1
    assert (o.balance("A", cash), o.balance("B", cash)) == (0, U64_MAX)
    # The source short; the target full; the target over by one with an amount above 1.
    for dst_held, amount in ((0, 6), (U64_MAX, 1), (U64_MAX - 1, 2)):
        o = Overlay(_View(net.genesis, {("A", cash): 5, ("B", cash): dst_held}))
        with pytest.raises(InvariantError, match="unchecked move"):
            o.move(cash, "A", "B", amount)
    # adjust_supply: balance and supply each within [0, 2**64 - 1], both required.
    o = Overlay(_View(net.genesis, {("A", cash): 10}, {cash: 10}))
    o.adjust_supply(cash, "A", -10)  # burn everything
    assert (o.balance("A", cash), o.supply(cash)) == (0, 0)
    o = Overlay(_View(net.genesis, {("A", cash): U64_MAX - 1}, {cash: 0}))
    o.adjust_supply(cash, "A", 1)  # balance lands exactly on 2**64 - 1
    for bal, sup, delta in ((0, 10, -1), (U64_MAX, 0, 1), (10, 0, -1), (0, U64_MAX, 1)):
        o = Overlay(_View(net.genesis, {("A", cash): bal}, {cash: sup}))
        with pytest.raises(InvariantError, match="unchecked mint"):
            o.adjust_supply(cash, "A", delta)


def test_a_move_adds_to_what_the_receiver_holds(net: DemoNetwork) -> None:
    """3 + 5 = 8 where the bits overlap (3 ^ 5 = 6, 3 | 5 = 7): the credit is a sum."""
    cash = net.cash
    o = Overlay(_View(net.genesis, {("A", cash): 5, ("B", cash): 3}, {cash: 8}))
    o.move(cash, "A", "B", 5)
    assert (o.balance("A", cash), o.balance("B", cash)) == (0, 8)


def test_an_expired_authentic_transaction_is_recorded(store: MemoryStore, txf: TxFactory) -> None:
    """Its id is spent with EXPIRED: a copy is never executed later."""
    raw = txf.signed(txf.transfer(expiry_ms=txf.t0))
    ctx = BlockContext(1, txf.t0 + 1)
    out = apply_block(store, [raw], ctx)
    assert out.results[0] == TxResult(SignedTx.decode(raw).tx_id, RC.EXPIRED, recorded=True)
    assert out.recorded == ((out.results[0].tx_id, TxRecord(1, 0, RC.EXPIRED)),)


def test_an_envelope_around_an_undecodable_body_is_malformed(
    store: MemoryStore, txf: TxFactory
) -> None:
    body = b"\x01\x63garbage"
    raw = SignedTx(body, ()).encode()
    out = apply_block(store, [raw], BlockContext(1, txf.t0 + 1))
    assert out.results[0] == TxResult(crypto.sha256(body), RC.MALFORMED, recorded=False)


def test_an_outcome_carries_each_transaction_body_as_executed(
    store: MemoryStore, txf: TxFactory
) -> None:
    """The velocity watch reads these instead of decoding the block again: one per
    transaction in order, None where nothing decoded, whatever the result."""
    ok, refused = txf.transfer(), txf.transfer(amount=10**15)
    raws = [b"junk", txf.signed(ok), txf.signed(refused)]
    out = apply_block(store, raws, BlockContext(1, txf.t0 + 1))
    assert [r.code for r in out.results] == [RC.MALFORMED, RC.OK, RC.INSUFFICIENT_CASH]
    assert out.bodies == (None, ok, refused)


def _with_issuers(net: DemoNetwork, *extra: tuple[str, Role, int]) -> TxFactory:
    """``net`` plus participants (id, role, KYC tier), each with its own key."""
    keys = dict(net.participant_keys)
    added = []
    for pid, role, tier in extra:
        keys[pid] = crypto.SigningKey(crypto.sha256(b"edge-key", pid.encode()))
        added.append(Participant(pid, keys[pid].public_key, frozenset({role}), tier))
    g = replace(net.genesis, participants=(*net.genesis.participants, *added))
    return TxFactory(replace(net, genesis=g, participant_keys=keys))


def test_only_the_issuer_of_an_instrument_mints_it(net: DemoNetwork) -> None:
    """Other cash or bond issuers (ids sorting before and after the issuer's) may not mint
    it; a custodian may mint bonds, never cash."""
    f = _with_issuers(
        net,
        ("AACASH", Role.CASH_ISSUER, 3),
        ("ZZCASH", Role.CASH_ISSUER, 3),
        ("AAISSUER", Role.BOND_ISSUER, 3),
        ("ZZISSUER", Role.BOND_ISSUER, 3),
    )
    store = MemoryStore(f.net.genesis)
    for by in ("AACASH", "ZZCASH"):
        raw = f.signed(f.mint(amount=1, instrument=net.cash, by=by))
        assert apply_block(store, [raw], BlockContext(1, f.t0)).results[0].code is RC.UNAUTHORIZED
    for by in ("AAISSUER", "ZZISSUER"):
        raw = f.signed(f.mint(amount=1, by=by))
        assert apply_block(store, [raw], BlockContext(1, f.t0)).results[0].code is RC.UNAUTHORIZED
    ok = [f.signed(f.mint(amount=1, instrument=net.cash, by="CASHCO")), f.signed(f.mint(by="CSD"))]
    assert [r.code for r in apply_block(store, ok, BlockContext(1, f.t0)).results] == [RC.OK] * 2


@pytest.mark.parametrize(("tier", "want"), [(0, RC.UNAUTHORIZED), (1, RC.OK)])
def test_an_issuer_needs_a_kyc_tier_above_zero(
    net: DemoNetwork, tier: int, want: ResultCode
) -> None:
    f = _with_issuers(net, ("CUST2", Role.CUSTODIAN, tier))
    raw = f.signed(f.mint(amount=1, by="CUST2"))
    out = apply_block(MemoryStore(f.net.genesis), [raw], BlockContext(1, f.t0))
    assert out.results[0].code is want


def test_precheck_never_records_and_defaults_to_no_tolerance(
    txf: TxFactory, net: DemoNetwork
) -> None:
    now = txf.t0 + 1_000
    at_expiry = txf.signed(txf.transfer(expiry_ms=now))
    unknown = txf.signed(txf.mint(instrument="XS0000000000"))  # apply_block's own code
    assert precheck(net.genesis, unknown, now_ms=now).code is RC.OK
    assert precheck(net.genesis, at_expiry, now_ms=now).code is RC.OK
    assert precheck(net.genesis, at_expiry, now_ms=now + 1).code is RC.EXPIRED
    cases = [
        at_expiry,
        txf.signed(txf.transfer(expiry_ms=now - 1)),  # EXPIRED
        txf.signed(txf.mint(by="BANK01")),  # UNAUTHORIZED
        txf.signed(txf.dvp(deadline_ms=now - 1)),  # DEADLINE_PASSED
        txf.signed(txf.dvp(chain_id="other")),  # WRONG_CHAIN
    ]
    codes = [precheck(net.genesis, raw, now_ms=now) for raw in cases]
    assert [r.code for r in codes] == [
        RC.OK,
        RC.EXPIRED,
        RC.UNAUTHORIZED,
        RC.DEADLINE_PASSED,
        RC.WRONG_CHAIN,
    ]
    assert not any(r.recorded for r in codes)


# --- node/settlement/_tx.py ----------------------------------------------------------------


def test_body_header_bytes_are_pinned(txf: TxFactory) -> None:
    """ADR 0001: version 1, then the kind (MINT 1, BURN 2, TRANSFER 3, DVP 4). Encoder and
    decoder share the constants, so only pinned bytes catch a change to both (every tx id
    would change with them)."""
    kinds: list[Transaction] = [txf.mint(), txf.burn(), txf.transfer(), txf.dvp()]
    assert [encode_body(tx)[:2] for tx in kinds] == [
        b"\x01\x01",
        b"\x01\x02",
        b"\x01\x03",
        b"\x01\x04",
    ]


@pytest.mark.parametrize("version", [0, 2])
def test_other_body_versions_are_malformed(txf: TxFactory, version: int) -> None:
    body = bytes([version]) + encode_body(txf.transfer())[1:]
    with pytest.raises(DecodeError, match="version"):
        decode_body(body)


def test_transactions_and_envelopes_are_immutable(txf: TxFactory) -> None:
    stx = SignedTx.decode(txf.signed(txf.dvp()))
    for value in (txf.mint(), txf.burn(), txf.transfer(), txf.dvp()):
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.nonce = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        stx.body = b""  # type: ignore[misc]


def test_signing_again_replaces_the_signers_signature(txf: TxFactory, net: DemoNetwork) -> None:
    stx = SignedTx.decode(txf.signed(txf.dvp()))
    again = stx.with_signature("BANK01", net.participant_keys["BANK01"])
    assert again.signatures == stx.signatures  # deterministic Ed25519: the same two


def test_sign_tx_says_which_keys_it_needs(txf: TxFactory, net: DemoNetwork) -> None:
    key = net.participant_keys["BANK01"]
    for keys in ([key], [key, key, key]):
        with pytest.raises(ValueError, match="needs keys for"):
            sign_tx(txf.dvp(), keys)


def test_each_code_has_a_meaning_a_person_can_read() -> None:
    assert ResultCode.OK.meaning == "applied in full: every leg moved, every record made"
    assert all(isinstance(c.meaning, str) and c.meaning for c in ResultCode)


def test_parties_settle_in_either_order_of_their_ids(store: MemoryStore, txf: TxFactory) -> None:
    """SELF_TRADE means the same party, not an ordering of ids."""
    raws = [
        txf.signed(txf.transfer("BANK02", "BANK01", 1)),
        txf.signed(txf.dvp("BANK02", "BANK01", 1, 1)),
        txf.signed(txf.transfer("BANK01", "BANK02", 1)),
        txf.signed(txf.dvp("BANK01", "BANK02", 1, 1)),
    ]
    out = apply_block(store, raws, BlockContext(1, txf.t0 + 1))
    assert [r.code for r in out.results] == [RC.OK] * 4


def test_the_clock_and_the_verifier_are_passed_by_keyword_only(
    txf: TxFactory, net: DemoNetwork
) -> None:
    """A clock passed by position could land in the wrong parameter: refused outright.
    So is apply_block's verifier (the one argument that must never be a stand-in)."""
    raw = txf.signed(txf.transfer())
    with pytest.raises(TypeError):
        precheck(net.genesis, raw, crypto.verify, txf.t0)  # type: ignore[misc]
    assert precheck(net.genesis, raw, crypto.verify, now_ms=txf.t0).code is RC.OK
    store, ctx = MemoryStore(net.genesis), BlockContext(1, txf.t0)
    with pytest.raises(TypeError):
        apply_block(store, [raw], ctx, crypto.verify)  # type: ignore[misc]
    assert apply_block(store, [raw], ctx, verify=crypto.verify).results[0].code is RC.OK
