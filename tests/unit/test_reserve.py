"""Custody and reserves (issue 15 item 2; docs/ledger.md "Custody and reserves"): one
rule per test, each with its negative control (the same transaction going through once
the attestation allows it, or on an unbacked instrument). Codes are named, never numbered.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from node import crypto
from node.config import ATTESTATIONS_KEPT, RESERVE_BILLS_MAX, U64_MAX
from node.genesis import DemoNetwork, genesis_to_json, parse_genesis
from node.settlement import (
    AttestCustody,
    AttestReserves,
    Bill,
    BlockContext,
    BlockOutcome,
    CustodyBacking,
    GenesisError,
    Registry,
    ReserveRules,
    ResultCode,
    SignedTx,
    apply_block,
    cusip_check_digit,
    custody_attestations,
    decode_body,
    encode_body,
    latest_custody,
    latest_reserves,
    precheck,
    reserve_attestations,
    valid_cusip,
)
from node.settlement._codec import DecodeError
from node.store import MemoryStore
from tests.ledger_helpers import CountingView, TxFactory
from tests.reserve_helpers import BILL_A, BILL_B, DOC, attest_custody, attest_reserves, backed_net

RC = ResultCode
_HELD = 6 * 10_000_000  # the demo banks' genesis supply of each bond
_CASH = 6 * 1_000_000_000  # and of the cash token


@pytest.fixture
def bnet() -> DemoNetwork:
    return backed_net()


@pytest.fixture
def bstore(bnet: DemoNetwork) -> MemoryStore:
    return MemoryStore(bnet.genesis)


@pytest.fixture
def btx(bnet: DemoNetwork) -> TxFactory:
    return TxFactory(bnet)


def run(store: MemoryStore, *txs: bytes, at_ms: int = 10_000) -> BlockOutcome:
    head = store.head()
    ctx = BlockContext(head.height + 1, store.genesis.genesis_time_ms + at_ms)
    out = apply_block(store, list(txs), ctx)
    store.commit_block(crypto.sha256(b"block", bytes([ctx.height])), b"", b"", ctx, out)
    return out


def codes(out: BlockOutcome) -> list[ResultCode]:
    return [r.code for r in out.results if not r.event]


def t(net: DemoNetwork, ms: int) -> int:
    return net.genesis.genesis_time_ms + ms


def mint(txf: TxFactory, amount: int, instrument: str | None = None, by: str = "CSD") -> bytes:
    return txf.signed(txf.mint("BANK01", amount, instrument, by=by))


# --- custody ------------------------------------------------------------------------------


def test_until_the_first_attestation_the_genesis_supply_stands_as_custody(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    latest = latest_custody(bnet.genesis, bstore, bnet.bonds[0])
    assert (latest.amount, latest.height, latest.by) == (_HELD, 0, "")
    out = run(bstore, mint(btx, 1), mint(btx, 1, bnet.bonds[1]))
    assert codes(out) == [RC.CUSTODY_EXCEEDED, RC.OK]  # control: the unbacked bond mints
    assert bstore.supply(bnet.bonds[0]) == _HELD


def test_an_instrument_nobody_holds_at_genesis_mints_nothing_unattested(
    bnet: DemoNetwork,
) -> None:
    bond, cash = bnet.bonds[0], bnet.cash
    held = tuple(h for h in bnet.genesis.holdings if h.instrument not in (bond, cash))
    g = replace(bnet.genesis, holdings=held)
    store, txf = MemoryStore(g), TxFactory(replace(bnet, genesis=g))
    assert latest_custody(g, store, bond).amount == 0
    stand_in = latest_reserves(g, store, cash)
    assert (stand_in.total, stand_in.bills, stand_in.height, stand_in.by) == (0, (), 0, "")
    assert codes(run(store, mint(txf, 1), cash_mint(txf, 1))) == [
        RC.CUSTODY_EXCEEDED,
        RC.RESERVES_SHORT,
    ]
    attested = (
        attest_custody(txf, 1, t(bnet, 5_000)),
        attest_reserves(txf, t(bnet, 5_000), deposits=1),
    )
    assert codes(run(store, *attested, mint(txf, 1), cash_mint(txf, 1))) == [RC.OK] * 4


def test_a_mint_up_to_the_attested_custody_goes_through_one_more_unit_does_not(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    out = run(bstore, attest_custody(btx, _HELD + 500, t(bnet, 5_000)))
    assert codes(out) == [RC.OK]
    assert codes(run(bstore, mint(btx, 501))) == [RC.CUSTODY_EXCEEDED]
    assert bstore.supply(bnet.bonds[0]) == _HELD  # nothing moved
    assert codes(run(bstore, mint(btx, 499), mint(btx, 1), mint(btx, 1))) == [
        RC.OK,  # below the custody
        RC.OK,  # up to it
        RC.CUSTODY_EXCEEDED,
    ]
    assert bstore.supply(bnet.bonds[0]) == _HELD + 500


def test_an_attestation_counts_for_mints_later_in_the_same_block(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    out = run(bstore, mint(btx, 7), attest_custody(btx, _HELD + 7, t(bnet, 5_000)), mint(btx, 7))
    assert codes(out) == [RC.CUSTODY_EXCEEDED, RC.OK, RC.OK]


def test_a_burn_makes_room_under_the_same_attestation(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    burn = btx.signed(btx.burn("BANK01", 10, bnet.bonds[0], by="CSD"))
    assert codes(run(bstore, mint(btx, 10), burn, mint(btx, 10))) == [
        RC.CUSTODY_EXCEEDED,
        RC.OK,
        RC.OK,
    ]


def test_the_record_says_what_who_when_and_which_document(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    run(bstore, attest_custody(btx, 123, t(bnet, 5_000)), at_ms=6_000)
    (rec,) = custody_attestations(bstore, bnet.bonds[0])
    assert (rec.bond, rec.amount, rec.as_of_ms, rec.document_sha256, rec.height, rec.by) == (
        bnet.bonds[0],
        123,
        t(bnet, 5_000),
        DOC,
        1,
        "CSD",
    )
    assert latest_custody(bnet.genesis, bstore, bnet.bonds[0]) == rec


@pytest.mark.parametrize(
    ("as_of", "why"),
    [
        (0, "as old as the genesis supply's stand-in"),
        (-1, "older than it"),
        (10_001, "after the block time"),
    ],
)
def test_a_stale_or_future_custody_attestation_changes_nothing(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork, as_of: int, why: str
) -> None:
    out = run(bstore, attest_custody(btx, _HELD * 2, t(bnet, as_of)), at_ms=10_000)
    assert codes(out) == [RC.STALE_ATTESTATION], why
    assert custody_attestations(bstore, bnet.bonds[0]) == []
    assert out.records == {}
    # control: as of the block time itself is fresh
    assert codes(run(bstore, attest_custody(btx, _HELD * 2, t(bnet, 10_000)))) == [RC.OK]


def test_a_replayed_or_back_dated_attestation_cannot_replace_a_newer_one(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    first = attest_custody(btx, _HELD + 100, t(bnet, 5_000))
    run(bstore, first, attest_custody(btx, _HELD + 200, t(bnet, 6_000)))
    out = run(
        bstore,
        first,  # the same bytes: its id is recorded
        attest_custody(btx, _HELD + 100, t(bnet, 5_000)),  # the same statement, new nonce
        attest_custody(btx, _HELD + 900, t(bnet, 6_000)),  # as of the latest: not newer
    )
    assert codes(out) == [RC.DUPLICATE, RC.STALE_ATTESTATION, RC.STALE_ATTESTATION]
    assert latest_custody(bnet.genesis, bstore, bnet.bonds[0]).amount == _HELD + 200


def test_only_the_named_custodian_attests_and_only_a_backed_bond(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    # ids sorting after and before the named custodian "CSD"
    by_issuer = attest_custody(btx, _HELD * 2, t(bnet, 5_000), by="TREASURY")
    by_bank = attest_custody(btx, _HELD * 2, t(bnet, 5_000), by="BANK01")
    unbacked = attest_custody(btx, _HELD * 2, t(bnet, 5_000), bond=bnet.bonds[1])
    for raw in (by_issuer, by_bank, unbacked):
        assert precheck(Registry.at_genesis(bnet.genesis), raw).code is RC.UNAUTHORIZED
    named = attest_custody(btx, _HELD * 2, t(bnet, 5_000))
    assert precheck(Registry.at_genesis(bnet.genesis), named).code is RC.OK  # control
    out = run(bstore, by_issuer, by_bank, unbacked, named)
    assert codes(out) == [RC.UNAUTHORIZED] * 3 + [RC.OK]


def test_attesting_custody_of_cash_or_of_nothing_gets_its_code(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    out = run(
        bstore,
        attest_custody(btx, 1, t(bnet, 5_000), bond=bnet.cash),
        attest_custody(btx, 1, t(bnet, 5_000), bond="NO.SUCH"),
    )
    assert codes(out) == [RC.WRONG_INSTRUMENT_KIND, RC.UNKNOWN_INSTRUMENT]


def test_custody_history_keeps_the_latest_attestations_only(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    n = ATTESTATIONS_KEPT + 3
    run(bstore, *(attest_custody(btx, 1_000 + i, t(bnet, 1 + i)) for i in range(n)))
    kept = custody_attestations(bstore, bnet.bonds[0])
    assert [a.amount for a in kept] == [1_000 + i for i in range(3, n)]
    assert latest_custody(bnet.genesis, bstore, bnet.bonds[0]).amount == 1_000 + n - 1


def test_attesting_less_than_the_supply_is_recorded_and_stops_mints(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    """A custodian must be able to report a loss truthfully: the break shows in the report."""
    assert codes(run(bstore, attest_custody(btx, 5, t(bnet, 5_000)), mint(btx, 1))) == [
        RC.OK,
        RC.CUSTODY_EXCEEDED,
    ]


# --- reserves -----------------------------------------------------------------------------


def _bills(*amounts: int) -> tuple[Bill, ...]:
    return tuple(Bill(c, "2026-03-01", a) for c, a in zip((BILL_A, BILL_B), amounts, strict=False))


def cash_mint(txf: TxFactory, amount: int) -> bytes:
    return txf.signed(txf.mint("BANK01", amount, txf.net.cash, by="CASHCO"))


def test_cash_mints_keep_coverage_at_or_above_100_percent(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    assert codes(run(bstore, cash_mint(btx, 1))) == [RC.RESERVES_SHORT]  # genesis supply only
    att = attest_reserves(btx, t(bnet, 5_000), deposits=100, bills=_bills(_CASH, 400))
    assert codes(run(bstore, att, cash_mint(btx, 501), cash_mint(btx, 499), cash_mint(btx, 1))) == [
        RC.OK,
        RC.RESERVES_SHORT,
        RC.OK,  # below the reserves
        RC.OK,  # up to them
    ]
    assert bstore.supply(bnet.cash) == _CASH + 500
    assert latest_reserves(bnet.genesis, bstore, bnet.cash).total == _CASH + 500


def test_the_reserve_record_keeps_the_composition(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    run(bstore, attest_reserves(btx, t(bnet, 5_000), deposits=7, bills=_bills(3, 4)))
    (rec,) = reserve_attestations(bstore, bnet.cash)
    assert (rec.deposits, rec.bills, rec.by, rec.height, rec.total) == (
        7,
        _bills(3, 4),
        "CASHCO",
        1,
        14,
    )


@pytest.mark.parametrize(
    ("bills", "deposits", "why"),
    [
        ((Bill("912797GL4", "2026-03-01", 1),), 0, "wrong check digit"),
        ((Bill("912797gl5", "2026-03-01", 1),), 0, "lower case"),
        (_bills(1, 1)[::-1], 0, "not in CUSIP order"),
        ((Bill(BILL_A, "2026-03-01", 1),) * 2, 0, "a repeat"),
        ((Bill(BILL_A, "2026-03-01", 1), *_bills(1, 1)), 0, "a repeat, then another bill"),
        ((Bill(BILL_A, "2026-03-01", 0),), 0, "a bill worth zero"),
        ((Bill(BILL_A, "2026-03-01", U64_MAX),), 1, "a total beyond 2**64 - 1"),
    ],
)
def test_an_invalid_composition_is_refused_at_admission_and_in_a_block(
    bstore: MemoryStore,
    btx: TxFactory,
    bills: tuple[Bill, ...],
    deposits: int,
    why: str,
) -> None:
    bnet = btx.net
    raw = attest_reserves(btx, t(bnet, 5_000), deposits=deposits, bills=bills)
    assert precheck(Registry.at_genesis(bnet.genesis), raw).code is RC.INVALID_ATTESTATION, why
    assert codes(run(bstore, raw)) == [RC.INVALID_ATTESTATION]
    assert reserve_attestations(bstore, bnet.cash) == []
    good = attest_reserves(btx, t(bnet, 5_000), deposits=deposits, bills=_bills(1, 2))
    assert codes(run(bstore, good)) == [RC.OK]  # control


def test_reserves_of_exactly_2_64_minus_1_are_valid(bstore: MemoryStore, btx: TxFactory) -> None:
    raw = attest_reserves(btx, t(btx.net, 5_000), deposits=U64_MAX - 1, bills=_bills(1))
    assert precheck(Registry.at_genesis(btx.net.genesis), raw).code is RC.OK
    assert codes(run(bstore, raw)) == [RC.OK]


def test_stale_future_and_unauthorized_reserve_attestations_change_nothing(
    bstore: MemoryStore, btx: TxFactory, bnet: DemoNetwork
) -> None:
    run(bstore, attest_reserves(btx, t(bnet, 5_000), deposits=_CASH * 2))
    out = run(
        bstore,
        attest_reserves(btx, t(bnet, 5_000), deposits=_CASH * 3),
        attest_reserves(btx, t(bnet, 10_001), deposits=_CASH * 3),
        attest_reserves(btx, t(bnet, 6_000), deposits=_CASH * 3, by="BANK01"),
        attest_reserves(btx, t(bnet, 6_000), deposits=_CASH * 3, by="TREASURY"),
        attest_reserves(btx, t(bnet, 6_000), deposits=1, cash=bnet.bonds[0]),
    )
    assert codes(out) == [
        RC.STALE_ATTESTATION,
        RC.STALE_ATTESTATION,
        RC.UNAUTHORIZED,  # ids sorting before and after the issuer "CASHCO"
        RC.UNAUTHORIZED,
        RC.WRONG_INSTRUMENT_KIND,
    ]
    assert out.records == {}
    assert latest_reserves(bnet.genesis, bstore, bnet.cash).deposits == _CASH * 2


def test_an_unbacked_cash_token_is_not_attested_and_mints_as_before(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    raw = attest_reserves(txf, t(net, 5_000), deposits=1)
    assert precheck(Registry.at_genesis(net.genesis), raw).code is RC.UNAUTHORIZED
    assert codes(run(store, raw, cash_mint(txf, 10**9))) == [RC.UNAUTHORIZED, RC.OK]


# --- encoding -----------------------------------------------------------------------------


def test_attestations_round_trip_through_the_canonical_encoding(btx: TxFactory) -> None:
    for raw in (
        attest_custody(btx, 5, 6),
        attest_reserves(btx, 7, deposits=8, bills=_bills(1, 2)),
    ):
        tx = decode_body(SignedTx.decode(raw).body)
        assert isinstance(tx, AttestCustody | AttestReserves)
        assert decode_body(encode_body(tx)) == tx


def test_more_bills_than_the_limit_do_not_encode_or_decode(btx: TxFactory) -> None:
    bill = Bill(BILL_A, "2026-03-01", 1)
    tx = AttestReserves(btx.chain_id, 1, 2, "CASHCO", btx.net.cash, 3, DOC, 0, (bill,))
    body = encode_body(tx)
    with pytest.raises(ValueError, match="bills"):
        encode_body(replace(tx, bills=(bill,) * (RESERVE_BILLS_MAX + 1)))
    count_at = len(body) - 22  # u8 count, then one bill of 9 + 4 + 8 bytes
    assert body[count_at] == 1
    forged = body[:count_at] + bytes([RESERVE_BILLS_MAX + 1]) + body[count_at + 1 :]
    with pytest.raises(DecodeError):
        decode_body(forged)
    no_date = body[: count_at + 10] + b"\0\0\0\0" + body[count_at + 14 :]
    with pytest.raises(DecodeError):
        decode_body(no_date)


def test_cusip_check_digits() -> None:
    assert [cusip_check_digit(c) for c in ("03783310", "59491810", "912797GL")] == [0, 4, 5]
    assert valid_cusip("037833100") and not valid_cusip("037833101")
    assert not valid_cusip("03783310") and not valid_cusip("0378331000")


# --- genesis ------------------------------------------------------------------------------


def test_backings_change_the_chain_id_and_survive_json(bnet: DemoNetwork) -> None:
    plain = replace(bnet.genesis, custody=(), reserves=())
    assert b"reserve" not in plain.canonical_bytes  # no trailing section: old chain ids hold
    assert plain.chain_id != bnet.genesis.chain_id
    assert parse_genesis(genesis_to_json(bnet.genesis)).chain_id == bnet.genesis.chain_id
    assert "custody" not in genesis_to_json(plain)


@pytest.mark.parametrize(
    ("custody", "reserves", "message"),
    [
        (("bonds0", "TREASURY"), None, "role custodian"),
        (("cash", "CSD"), None, "not a bond"),
        (None, ReserveRules("CASH", bills_min_bp=10_001), "0..10000"),
        (None, ReserveRules("BOND"), "not a cash token"),
        (None, ReserveRules("CASH", age_max_days=0), "age_max_days"),
    ],
)
def test_bad_backings_are_refused_naming_the_entry(
    bnet: DemoNetwork,
    custody: tuple[str, str] | None,
    reserves: ReserveRules | None,
    message: str,
) -> None:
    ids = {"bonds0": bnet.bonds[0], "cash": bnet.cash, "BOND": bnet.bonds[0], "CASH": bnet.cash}
    g = replace(bnet.genesis, custody=(), reserves=())
    c = () if custody is None else (CustodyBacking(ids[custody[0]], custody[1]),)
    r = () if reserves is None else (replace(reserves, cash=ids[reserves.cash]),)
    with pytest.raises(GenesisError, match=message):
        replace(g, custody=c, reserves=r)


def test_a_bond_backed_twice_is_refused(bnet: DemoNetwork) -> None:
    twice = (CustodyBacking(bnet.bonds[0], "CSD"),) * 2
    with pytest.raises(GenesisError, match="twice"):
        replace(bnet.genesis, custody=twice)


def _reads(net: DemoNetwork, raw: bytes) -> int:
    view = CountingView(MemoryStore(net.genesis))
    ctx = BlockContext(1, net.genesis.genesis_time_ms + 10_000)
    apply_block(view, [raw], ctx)  # type: ignore[arg-type]
    return view.reads


def test_an_unbacked_mint_reads_no_attestation_a_backed_one_does(
    bnet: DemoNetwork, net: DemoNetwork
) -> None:
    """Backings cost nothing to instruments genesis does not list."""
    plain_tx, backed_tx = TxFactory(net), TxFactory(bnet)
    unbacked = _reads(bnet, mint(backed_tx, 1, bnet.bonds[1]))
    assert unbacked == _reads(net, mint(plain_tx, 1, net.bonds[1]))
    assert _reads(bnet, mint(backed_tx, 1)) == unbacked + 1  # control: one prefix scan
