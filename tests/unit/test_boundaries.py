"""Exact boundaries (issue 19 item 4): every comparison that decides a settlement outcome
is tested on both sides of its edge, so a ``<`` turned ``<=`` (or the reverse) fails a
test. Balances exactly enough and one unit short on every leg, supply exactly at the cap
and one over, u64 sums at 2**64 - 1 and one past, amounts 0 and 1, expiry and deadline one
before, at and one after the block time, admission's clock tolerance likewise.

The overflow checks guard states that conservation makes unreachable (no balance exceeds
its instrument's supply, itself at most 2**64 - 1), so they are tested on a hand-built
state view that breaks conservation: the checks must hold whatever the view says.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest

from node import crypto
from node.config import ID_BYTES_MAX, TX_BYTES_MAX, U64_MAX
from node.genesis import DemoNetwork
from node.settlement import (
    BlockContext,
    BlockOutcome,
    DecodeError,
    Genesis,
    Head,
    ResultCode,
    SignedTx,
    TxRecord,
    apply_block,
    genesis_state_root,
    precheck,
)
from node.settlement._codec import Reader, Writer, check_id
from node.store import MemoryStore
from tests.ledger_helpers import HOUR_MS, TxFactory

RC = ResultCode
T1 = 1_000  # every block here runs at genesis time + T1


def run(store: MemoryStore, raw: bytes) -> BlockOutcome:
    """Apply a block of one transaction at genesis time + T1 and commit it."""
    ctx = BlockContext(store.head().height + 1, store.genesis.genesis_time_ms + T1)
    out = apply_block(store, [raw], ctx)
    store.commit_block(crypto.sha256(b"b", bytes([ctx.height])), b"", b"", ctx, out)
    return out


def code(store: MemoryStore, raw: bytes) -> ResultCode:
    """The transaction's code; a refused one must have changed nothing."""
    out = run(store, raw)
    if out.results[0].code is not RC.OK:
        assert out.balances == {} and out.supplies == {}, "a refused transaction moved"
    return out.results[0].code


# --- balances: exactly enough and one unit short ------------------------------------------


@pytest.mark.parametrize("short", [0, 1], ids=["exact", "one-short"])
def test_dvp_cash_leg(store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: int) -> None:
    cash = store.balance("BANK02", net.cash)
    got = code(store, txf.signed(txf.dvp("BANK01", "BANK02", 1, cash + short)))
    assert got is (RC.INSUFFICIENT_CASH if short else RC.OK)
    assert store.balance("BANK02", net.cash) == (cash if short else 0)


@pytest.mark.parametrize("short", [0, 1], ids=["exact", "one-short"])
def test_dvp_bond_leg(store: MemoryStore, txf: TxFactory, net: DemoNetwork, short: int) -> None:
    units = store.balance("BANK01", net.bonds[0])
    got = code(store, txf.signed(txf.dvp("BANK01", "BANK02", units + short, 1)))
    assert got is (RC.INSUFFICIENT_SECURITIES if short else RC.OK)
    assert store.balance("BANK01", net.bonds[0]) == (units if short else 0)


def test_dvp_cash_short_by_one_moves_no_bond(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    """The bond leg is covered, the cash leg one unit short: neither leg moves (a DvP that
    moved the bond before checking the cash would leave the bond with the buyer)."""
    before = store.all_balances()
    cash = store.balance("BANK02", net.cash)
    assert code(store, txf.signed(txf.dvp(amount=cash + 1))) is RC.INSUFFICIENT_CASH
    assert store.all_balances() == before


@pytest.mark.parametrize("short", [0, 1], ids=["exact", "one-short"])
@pytest.mark.parametrize("leg", ["cash", "bond"])
def test_transfer(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, leg: str, short: int
) -> None:
    inst = net.cash if leg == "cash" else net.bonds[0]
    held = store.balance("BANK01", inst)
    got = code(store, txf.signed(txf.transfer("BANK01", "BANK02", held + short, instrument=inst)))
    shortfall = RC.INSUFFICIENT_CASH if leg == "cash" else RC.INSUFFICIENT_SECURITIES
    assert got is (shortfall if short else RC.OK)


@pytest.mark.parametrize("short", [0, 1], ids=["exact", "one-short"])
@pytest.mark.parametrize("leg", ["cash", "bond"])
def test_burn(store: MemoryStore, txf: TxFactory, net: DemoNetwork, leg: str, short: int) -> None:
    inst, by = (net.cash, "CASHCO") if leg == "cash" else (net.bonds[0], "TREASURY")
    held, supply = store.balance("BANK01", inst), store.supply(inst)
    got = code(store, txf.signed(txf.burn("BANK01", held + short, instrument=inst, by=by)))
    shortfall = RC.INSUFFICIENT_CASH if leg == "cash" else RC.INSUFFICIENT_SECURITIES
    assert got is (shortfall if short else RC.OK)
    assert store.supply(inst) == (supply if short else supply - held)


# --- amounts 0 and 1 ------------------------------------------------------------------------


def test_amount_one_settles_and_zero_is_refused(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    for zero in (
        txf.dvp(quantity=0),
        txf.dvp(amount=0),
        txf.transfer(amount=0),
        txf.mint(amount=0),
        txf.burn(amount=0),
    ):
        assert code(store, txf.signed(zero)) is RC.INVALID_AMOUNT, zero
    for one in (
        txf.dvp(quantity=1, amount=1),
        txf.transfer(amount=1),
        txf.mint(amount=1),
        txf.burn(amount=1),
        txf.mint(amount=1, instrument=net.cash, by="CASHCO"),
    ):
        assert code(store, txf.signed(one)) is RC.OK, one


# --- supply: at the cap and one over; u64 sums at 2**64 - 1 and one past ---------------


def _capped(net: DemoNetwork, headroom: int) -> tuple[MemoryStore, TxFactory]:
    bond = net.bonds[0]
    supply = sum(h.amount for h in net.genesis.holdings if h.instrument == bond)
    instruments = tuple(
        replace(i, max_supply=supply + headroom) if i.id == bond else i
        for i in net.genesis.instruments
    )
    g = replace(net.genesis, instruments=instruments)
    return MemoryStore(g), TxFactory(replace(net, genesis=g))


@pytest.mark.parametrize("over", [0, 1], ids=["at-cap", "one-over"])
def test_mint_up_to_the_attested_supply(net: DemoNetwork, over: int) -> None:
    store, f = _capped(net, headroom=500)
    assert code(store, f.signed(f.mint(amount=500 + over))) is (RC.SUPPLY_LIMIT if over else RC.OK)
    # At the cap exactly, one more unit is refused; one unit short of it is not.
    if not over:
        assert code(store, f.signed(f.mint(amount=1))) is RC.SUPPLY_LIMIT
    else:
        assert code(store, f.signed(f.mint(amount=499))) is RC.OK


@pytest.mark.parametrize("over", [0, 1], ids=["u64-max", "one-past"])
def test_mint_up_to_u64_max(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, over: int
) -> None:
    left = U64_MAX - store.supply(net.bonds[0])  # the demo bond's cap is 2**64 - 1
    got = code(store, txf.signed(txf.mint("BANK03", left + over)))
    assert got is (RC.OVERFLOW if over else RC.OK)
    if not over:
        assert store.supply(net.bonds[0]) == U64_MAX
        assert code(store, txf.signed(txf.mint(amount=1))) is RC.OVERFLOW


@dataclass
class _View:
    """A state view with whatever balances and supplies a test sets (conservation not
    required): the overflow checks must not rely on it."""

    genesis: Genesis
    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    supplies: dict[str, int] = field(default_factory=dict)

    def head(self) -> Head:
        return Head(0, bytes(32), genesis_state_root(self.genesis))

    def balance(self, account: str, instrument: str) -> int:
        return self.balances.get((account, instrument), 0)

    def supply(self, instrument: str) -> int:
        return self.supplies.get(instrument, 0)

    def tx_record(self, tx_id: bytes) -> TxRecord | None:
        return None

    def record(self, key: bytes) -> bytes | None:
        return None

    def records(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return iter(())


def _code_on(view: _View, raw: bytes) -> ResultCode:
    ctx = BlockContext(1, view.genesis.genesis_time_ms + T1)
    out = apply_block(view, [raw], ctx)
    if out.results[0].code is not RC.OK:
        assert out.balances == {} and out.supplies == {}
    return out.results[0].code


@pytest.mark.parametrize("past", [0, 1], ids=["u64-max", "one-past"])
def test_receiving_balance_overflow(txf: TxFactory, net: DemoNetwork, past: int) -> None:
    bond, cash = net.bonds[0], net.cash
    full = U64_MAX - 10 + past  # the receiver's balance: +10 lands at or one past 2**64 - 1
    want = RC.OVERFLOW if past else RC.OK
    for view, tx in (
        (
            _View(net.genesis, {("BANK01", cash): 10, ("BANK02", cash): full}),
            txf.transfer("BANK01", "BANK02", 10),
        ),
        (
            _View(net.genesis, {("BANK01", bond): 10, ("BANK02", bond): full, ("BANK02", cash): 1}),
            txf.dvp("BANK01", "BANK02", 10, 1),
        ),
        (
            _View(net.genesis, {("BANK01", bond): 1, ("BANK02", cash): 10, ("BANK01", cash): full}),
            txf.dvp("BANK01", "BANK02", 1, 10),
        ),
        (
            _View(net.genesis, {("BANK03", bond): full}, {bond: 5}),
            txf.mint("BANK03", 10),
        ),
    ):
        assert _code_on(view, txf.signed(tx)) is want, tx


# --- time: expiry and deadline one before, at, one after the block time ----------------


@pytest.mark.parametrize(("dt", "want"), [(-1, RC.EXPIRED), (0, RC.OK), (1, RC.OK)])
def test_expiry_at_the_block_time(
    store: MemoryStore, txf: TxFactory, dt: int, want: ResultCode
) -> None:
    """A transaction is valid up to and including the block time equal to its expiry."""
    assert code(store, txf.signed(txf.transfer(expiry_ms=txf.t0 + T1 + dt))) is want


@pytest.mark.parametrize(("dt", "want"), [(-1, RC.DEADLINE_PASSED), (0, RC.OK), (1, RC.OK)])
def test_deadline_at_the_block_time(
    store: MemoryStore, txf: TxFactory, dt: int, want: ResultCode
) -> None:
    assert code(store, txf.signed(txf.dvp(deadline_ms=txf.t0 + T1 + dt))) is want


@pytest.mark.parametrize(("dt", "want"), [(-1, RC.EXPIRED), (0, RC.OK), (1, RC.OK)])
def test_admission_expiry_with_tolerance(
    txf: TxFactory, net: DemoNetwork, dt: int, want: ResultCode
) -> None:
    """Admission refuses what expired more than ``tolerance_ms`` ago by its clock."""
    tolerance, now = 300, txf.t0 + T1
    raw = txf.signed(txf.transfer(expiry_ms=now - tolerance + dt))
    assert precheck(net.genesis, raw, now_ms=now, tolerance_ms=tolerance).code is want
    assert precheck(net.genesis, raw).code is RC.OK  # no clock: time is not judged


@pytest.mark.parametrize(("dt", "want"), [(-1, RC.DEADLINE_PASSED), (0, RC.OK), (1, RC.OK)])
def test_admission_deadline_with_tolerance(
    txf: TxFactory, net: DemoNetwork, dt: int, want: ResultCode
) -> None:
    tolerance, now = 300, txf.t0 + T1
    raw = txf.signed(txf.dvp(deadline_ms=now - tolerance + dt, expiry_ms=now + HOUR_MS))
    assert precheck(net.genesis, raw, now_ms=now, tolerance_ms=tolerance).code is want


# --- the codec at the edges of u64 ---------------------------------------------------------


def test_u64_encodes_from_zero_to_max_and_refuses_past_either_end() -> None:
    for v in (0, 1, U64_MAX - 1, U64_MAX):
        assert Reader(Writer().u64(v).finish()).u64() == v
    for bad in (-1, U64_MAX + 1):
        with pytest.raises(ValueError, match="64-bit"):
            Writer().u64(bad)


# --- envelopes and identifiers at their size limits ---------------------------------------


def test_envelope_of_exactly_the_size_limit_decodes() -> None:
    # version (1) + body length (4) + body + signature count (1)
    at_limit = SignedTx(b"x" * (TX_BYTES_MAX - 6), ()).encode()
    assert len(at_limit) == TX_BYTES_MAX
    assert SignedTx.decode(at_limit).body == b"x" * (TX_BYTES_MAX - 6)
    with pytest.raises(DecodeError, match="exceeds"):
        SignedTx.decode(SignedTx(b"x" * (TX_BYTES_MAX - 5), ()).encode())


def test_envelope_version_zero_is_malformed(txf: TxFactory) -> None:
    with pytest.raises(DecodeError, match="version"):
        SignedTx.decode(b"\x00" + txf.signed(txf.transfer())[1:])


def test_a_repeated_signer_is_not_canonical(txf: TxFactory) -> None:
    stx = SignedTx.decode(txf.signed(txf.transfer()))
    with pytest.raises(DecodeError, match="sorted"):
        SignedTx.decode(SignedTx(stx.body, stx.signatures * 2).encode())


def test_identifiers_from_one_byte_to_the_limit() -> None:
    for ok in ("A", "A" * ID_BYTES_MAX):
        assert check_id(ok) == ok
        assert Reader(Writer().ident(ok).finish()).ident() == ok
    for bad in ("", "A" * (ID_BYTES_MAX + 1), "a b"):
        with pytest.raises(ValueError, match="must be 1-"):
            check_id(bad)
        raw = bad.encode()
        with pytest.raises(DecodeError, match="invalid identifier at offset 1"):
            Reader(bytes([len(raw)]) + raw).ident()


def test_fixed_fields_take_exactly_their_size() -> None:
    assert Writer().fixed(bytes(32), 32).finish() == bytes(32)
    for wrong in (31, 33):
        with pytest.raises(ValueError, match="expected 32 bytes"):
            Writer().fixed(bytes(wrong), 32)
