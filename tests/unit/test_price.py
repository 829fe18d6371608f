"""Prices and valuation (issue 18 item 3; docs/ledger.md "Prices, margin and
substitution"): the oracle's rules one per test, each with its negative control (the same
statement accepted, or the price formed, when the rule allows it). Codes are named, never
numbered.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import crypto
from node.config import HAIRCUT_BP_MAX, PRICE_AGE_LIMIT_MS, PRICE_UNITS
from node.genesis import DemoNetwork, genesis_to_json, parse_genesis
from node.invariant import InvariantError
from node.settlement import (
    AttestPrice,
    GenesisError,
    Haircut,
    MarginCall,
    MarginTerms,
    Registry,
    RepoSubstitute,
    ResultCode,
    SignedTx,
    collateral_value,
    decode_body,
    encode_body,
    fresh_price,
    precheck,
    price_records,
    sign_tx,
    units_for,
)
from node.settlement._price import BP
from node.store import MemoryStore
from tests.ledger_helpers import HOUR_MS, TxFactory, shared_net
from tests.margin_helpers import AGE_MS, PAR, SOURCES, attest, codes, margin_net, run

RC = ResultCode
MIN = 60_000


@pytest.fixture
def net() -> DemoNetwork:
    return margin_net()


@pytest.fixture
def store(net: DemoNetwork) -> MemoryStore:
    return MemoryStore(net.genesis)


@pytest.fixture
def txf(net: DemoNetwork) -> TxFactory:
    return TxFactory(net)


def t(net: DemoNetwork, ms: int) -> int:
    return net.genesis.genesis_time_ms + ms


def price_at(store: MemoryStore, at_ms: int, bond: str = "") -> int | None:
    """The price in force at genesis + ``at_ms`` on the committed state."""
    g = store.genesis
    instrument = bond or margin_net().bonds[0]
    return fresh_price(Registry(g, store), store, instrument, g.genesis_time_ms + at_ms)


# --- genesis -------------------------------------------------------------------------------


def test_margin_section_round_trips_and_leaves_other_chain_ids_alone(net: DemoNetwork) -> None:
    g = net.genesis
    assert parse_genesis(genesis_to_json(g)) == g
    plain = replace(g, margin=MarginTerms())
    assert "margin" not in genesis_to_json(plain)
    assert plain.chain_id == shared_net().genesis.chain_id  # no section: the old bytes
    assert g.chain_id != plain.chain_id  # the terms are part of what every party signs


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"sources": ("CSD", "NOBODY")}, "not a participant"),
        ({"sources": ("CSD", "AUDITOR")}, "sorted"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": 4}, "threshold"),
        ({"price_age_max_ms": 0}, "price_age_max_ms"),
        ({"price_age_max_ms": PRICE_AGE_LIMIT_MS + 1}, "price_age_max_ms"),
    ],
)
def test_bad_margin_terms_are_refused_by_name(
    net: DemoNetwork, change: dict[str, object], says: str
) -> None:
    terms = replace(net.genesis.margin, **change)  # type: ignore[arg-type]
    with pytest.raises(GenesisError, match=says):
        replace(net.genesis, margin=terms)
    replace(net.genesis, margin=net.genesis.margin)  # control: the terms as they are pass


@pytest.mark.parametrize(
    ("row", "says"),
    [
        (lambda n: Haircut(n.cash, n.cash, 100), "not a bond"),
        (lambda n: Haircut(n.bonds[0], n.bonds[1], 100), "cash token"),
        (lambda n: Haircut(n.bonds[0], n.cash, HAIRCUT_BP_MAX + 1), "haircut_bp"),
    ],
)
def test_bad_haircut_rows_are_refused(net: DemoNetwork, row: object, says: str) -> None:
    terms = replace(net.genesis.margin, haircuts=(row(net),))  # type: ignore[operator]
    with pytest.raises(GenesisError, match=says):
        replace(net.genesis, margin=terms)
    ok = replace(net.genesis.margin, haircuts=(Haircut(net.bonds[0], net.cash, HAIRCUT_BP_MAX),))
    replace(net.genesis, margin=ok)  # control: a 99.99% haircut on a bond is a valid row


# --- transactions: encoding ----------------------------------------------------------------


def test_margin_bodies_round_trip(txf: TxFactory) -> None:
    c = txf.chain_id
    for tx in (
        AttestPrice(c, 1, 2, "CSD", txf.net.bonds[0], 995_000, 7),
        MarginCall(c, 1, 2, "R-1", "BANK01", "BANK02"),
        RepoSubstitute(c, 1, 2, "R-1", "BANK01", "BANK02", txf.net.bonds[1], 5),
    ):
        assert decode_body(encode_body(tx)) == tx
    sub = RepoSubstitute(c, 1, 2, "R-1", "BANK02", "BANK01", txf.net.bonds[1], 5)
    assert sub.required_signers() == ("BANK01", "BANK02")  # both, sorted


# --- AttestPrice ---------------------------------------------------------------------------


def test_one_source_below_k_gives_no_price_and_a_second_does(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    assert codes(run(store, attest(txf, 990_000, t(net, 0), source="CSD"), at_ms=MIN)) == [RC.OK]
    assert price_at(store, MIN) is None  # k = 2: one source alone never makes a price
    run(store, attest(txf, 994_000, t(net, MIN), source="CASHCO"), at_ms=2 * MIN)
    assert price_at(store, 2 * MIN) == 990_000  # control: two fresh sources, lower median


def test_a_non_source_is_unauthorized_in_a_block_and_at_admission(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    raw = attest(txf, 990_000, t(net, 0), source="BANK01")
    assert codes(run(store, raw, at_ms=MIN)) == [RC.UNAUTHORIZED]
    assert precheck(Registry(net.genesis, store), raw).code is RC.UNAUTHORIZED
    assert price_records(store, net.bonds[0]) == []
    good = attest(txf, 990_000, t(net, 0), source="CSD")
    assert precheck(Registry(net.genesis, store), good).code is RC.OK  # control


def test_a_price_signed_by_another_key_is_a_bad_signature(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    tx = AttestPrice(txf.chain_id, 1, t(net, HOUR_MS), "CSD", net.bonds[0], 1, t(net, 0))
    forged = sign_tx(tx, [net.participant_keys["BANK01"]])  # CSD's name, BANK01's key
    unsigned = SignedTx(encode_body(tx), ()).encode()
    assert codes(run(store, forged, unsigned, at_ms=MIN)) == [RC.BAD_SIGNATURE] * 2
    assert price_records(store, net.bonds[0]) == []  # neither recorded anything


@pytest.mark.parametrize(
    ("as_of", "why"),
    [(-AGE_MS - 1, "older than the max price age at the block time"), (1, "after the block time")],
)
def test_stale_or_future_prices_are_refused(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, as_of: int, why: str
) -> None:
    at = 2 * AGE_MS
    raw = attest(txf, 990_000, t(net, at + as_of))
    assert codes(run(store, raw, at_ms=at)) == [RC.STALE_ATTESTATION], why
    assert price_records(store, net.bonds[0]) == []
    fresh_at = at + as_of + (AGE_MS if as_of < 0 else 0)  # control: a block it is fresh in
    assert codes(run(MemoryStore(net.genesis), raw, at_ms=fresh_at)) == [RC.OK]


def test_a_replayed_or_older_statement_never_replaces_the_latest(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    run(store, attest(txf, 990_000, t(net, 2 * MIN)), at_ms=3 * MIN)
    same = attest(txf, 500_000, t(net, 2 * MIN))  # same as-of, new nonce: a replay
    older = attest(txf, 500_000, t(net, MIN))
    assert codes(run(store, same, older, at_ms=4 * MIN)) == [RC.STALE_ATTESTATION] * 2
    [rec] = price_records(store, net.bonds[0])
    assert (rec.price, rec.as_of_ms) == (990_000, t(net, 2 * MIN))
    newer = attest(txf, 991_000, t(net, 3 * MIN))
    assert codes(run(store, newer, at_ms=4 * MIN)) == [RC.OK]  # control: newer replaces
    assert [r.price for r in price_records(store, net.bonds[0])] == [991_000]


def test_a_price_ages_out_of_use(store: MemoryStore, txf: TxFactory, net: DemoNetwork) -> None:
    both = [attest(txf, 990_000, t(net, 0), source=s) for s in ("CASHCO", "CSD")]
    run(store, *both, at_ms=MIN)
    assert price_at(store, AGE_MS) == 990_000  # exactly the max age: still fresh
    assert price_at(store, AGE_MS + 1) is None  # one ms later: fewer than k fresh


@pytest.mark.parametrize(
    ("tx", "code"),
    [
        (lambda f, n: attest(f, 0, t(n, 0)), RC.INVALID_AMOUNT),
        (lambda f, n: attest(f, 1, t(n, 0), bond=n.cash), RC.NOT_ELIGIBLE_COLLATERAL),
        (lambda f, n: attest(f, 1, t(n, 0), bond="XX0000000000"), RC.UNKNOWN_INSTRUMENT),
    ],
)
def test_prices_of_nothing_eligible_are_refused(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork, tx: object, code: ResultCode
) -> None:
    assert codes(run(store, tx(txf, net), at_ms=MIN)) == [code]  # type: ignore[operator]
    assert codes(run(store, attest(txf, 1, t(net, 0)), at_ms=MIN)) == [RC.OK]  # control


@pytest.mark.parametrize("lie", [1, 10 * PAR])
def test_one_lying_source_cannot_move_the_median(lie: int) -> None:
    net3 = margin_net(threshold=3)
    store, f3 = MemoryStore(net3.genesis), TxFactory(net3)
    honest = [
        attest(f3, p, t(net3, 0), source=s) for p, s in ((990_000, "CASHCO"), (992_000, "CSD"))
    ]
    run(store, *honest, at_ms=MIN)
    assert price_at(store, MIN) is None  # k = 3: two are not enough
    run(store, attest(f3, lie, t(net3, 0), source="AUDITOR"), at_ms=2 * MIN)
    assert price_at(store, 2 * MIN) in (990_000, 992_000)  # between the honest two


# --- valuation -----------------------------------------------------------------------------


def test_valuation_worked_examples() -> None:
    # $100,000 face (10,000,000 one-cent units) at 99.5 with a 2% haircut: $97,510.00.
    assert collateral_value(10_000_000, 995_000, 200) == 9_751_000
    # Rounded down, in the lender's favour: one unit at 99.9999 is worth no whole cent.
    assert collateral_value(1, 999_999, 0) == 0
    assert collateral_value(3, 500_000, 0) == 1  # 1.5 cents -> 1
    # The inverse: the fewest units worth at least $97,510.00 are the 10,000,000 above.
    assert units_for(9_751_000, 995_000, 200) == 10_000_000
    assert units_for(2, 500_000, 0) == 4


@given(
    value=st.integers(0, 10**15),
    price=st.integers(1, 10**9),
    haircut=st.integers(0, HAIRCUT_BP_MAX),
)
def test_units_for_is_the_least_quantity_covering_a_value(
    value: int, price: int, haircut: int
) -> None:
    n = units_for(value, price, haircut)
    assert collateral_value(n, price, haircut) >= value
    assert n == 0 or collateral_value(n - 1, price, haircut) < value


def test_sources_of_the_test_network_are_participants() -> None:
    g = margin_net().genesis
    assert set(SOURCES) <= set(g.participant_by_id)
    assert crypto.sha256(g.canonical_bytes).hex() == g.chain_id
    assert PRICE_UNITS == PAR


@pytest.mark.parametrize(
    ("margin", "says"),
    [
        ({"sources": "CSD", "threshold": 1, "price_age_max_ms": 1, "haircuts": []}, "sources"),
        ({"sources": ["CSD"], "threshold": 1, "price_age_max_ms": 1}, "missing"),
        ({"sources": ["CSD"], "threshold": True, "price_age_max_ms": 1, "haircuts": []}, "integer"),
        ({"sources": ["CSD"], "threshold": 1, "price_age_max_ms": 1, "haircuts": [{}]}, "haircuts"),
    ],
)
def test_bad_margin_json_is_refused_naming_the_field(
    net: DemoNetwork, margin: dict[str, object], says: str
) -> None:
    doc = genesis_to_json(net.genesis)
    with pytest.raises(GenesisError, match=says):
        parse_genesis({**doc, "margin": margin})
    ok = {"sources": ["CSD"], "threshold": 1, "price_age_max_ms": 1, "haircuts": []}
    assert parse_genesis({**doc, "margin": ok}).margin.sources == ("CSD",)  # control


def test_the_median_with_more_fresh_sources_than_k_and_a_single_source_chain(
    txf: TxFactory, net: DemoNetwork
) -> None:
    three = [attest(txf, p, t(net, 0), source=s) for p, s in zip((3, 1, 2), SOURCES, strict=True)]
    store = MemoryStore(net.genesis)
    run(store, *three, at_ms=MIN)
    assert price_at(store, MIN) == 2  # k = 2, three fresh: their (lower) median
    assert {r.instrument for r in price_records(store, net.bonds[0])} == {net.bonds[0]}
    one = replace(net.genesis.margin, sources=("CSD",), threshold=1)
    solo = MemoryStore(replace(net.genesis, margin=one))
    f1 = TxFactory(replace(net, genesis=solo.genesis))
    run(solo, attest(f1, 7, t(net, 0), source="CSD"), at_ms=MIN)
    assert price_at(solo, MIN) == 7  # k = 1: the one source is the price


@pytest.mark.parametrize(
    ("args", "ok"),
    [((1, 1, BP), False), ((1, 0, 0), False), ((-1, 1, 0), False), ((1, 1, BP - 1), True)],
)
def test_valuation_refuses_what_no_caller_may_pass(args: tuple[int, int, int], ok: bool) -> None:
    """A 100% haircut, a zero price or a negative quantity is a bug in the caller (genesis
    and AttestPrice exclude them): InvariantError, not a value. Control: a 99.99% haircut."""
    if ok:
        assert collateral_value(*args) == 0 and units_for(1, args[1], args[2]) > 0
        return
    with pytest.raises(InvariantError):
        collateral_value(*args)
    quantity, price, haircut = args
    with pytest.raises(InvariantError):  # the inverse: a negative value stands for it
        units_for(quantity if quantity >= 0 else -1, price, haircut)


def test_a_price_as_of_the_block_time_is_in_force_at_once(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    """Attested as of the block's own time, the price is used by the rest of that block
    (and by a block at the same time); one millisecond earlier is fresh too (control)."""
    both = [attest(txf, 990_000, t(net, MIN), source=s) for s in ("CASHCO", "CSD")]
    run(store, *both, at_ms=MIN)
    assert price_at(store, MIN) == 990_000
    earlier = MemoryStore(net.genesis)
    run(earlier, *[attest(txf, 990_000, t(net, MIN - 1), source=s) for s in ("CASHCO", "CSD")],
        at_ms=MIN)  # fmt: skip
    assert price_at(earlier, MIN) == 990_000
