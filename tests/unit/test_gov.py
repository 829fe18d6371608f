"""Governance (issue 15 item 1; docs/ledger.md "Governance", ADR 0016): one rule per test,
each with its negative control (the same change going through with a quorum of admins,
or the same transaction before the change). Codes are named, never numbered.
"""

from __future__ import annotations

import dataclasses

import pytest

from node import crypto
from node.genesis import DEMO_ADMINS, demo_genesis, genesis_to_json, parse_genesis
from node.settlement import (
    GOVERNANCE_KINDS,
    ComplianceRules,
    DecodeError,
    GenesisError,
    Instrument,
    InstrumentKind,
    Registry,
    ResultCode,
    Role,
    SignedTx,
    _gov,
    decode_body,
    encode_body,
    isin_check_digit,
    precheck,
)
from node.store import MemoryStore
from tests.gov_helpers import (
    TWO_ADMINS,
    add_instrument,
    add_participant,
    cash_token,
    new_key,
    rotate,
    set_cap,
    set_roles,
    set_rules,
    set_tier,
    signed,
)
from tests.ledger_helpers import TxFactory, shared_net
from tests.unit.test_freeze import own, run

RC = ResultCode
NET = shared_net()
NEW = "BANK99"


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(NET.genesis)


@pytest.fixture
def txf() -> TxFactory:
    return TxFactory(NET)


def _dvp_with_new_bank(txf: TxFactory, key: crypto.SigningKey, quantity: int = 10) -> bytes:
    """BANK01 sells the new bank ``quantity`` bond units for as many cents; both sign."""
    tx = txf.dvp(seller="BANK01", buyer=NEW, quantity=quantity, amount=quantity)
    stx = SignedTx(encode_body(tx), ()).with_signature("BANK01", NET.participant_keys["BANK01"])
    return stx.with_signature(NEW, key).encode()


def _fund_new_bank(txf: TxFactory, amount: int = 1_000) -> bytes:
    return txf.signed(txf.transfer("BANK02", NEW, amount))


# --- the admin quorum --------------------------------------------------------------------


def test_k_admins_add_a_participant_who_trades_in_the_same_block(
    store: MemoryStore, txf: TxFactory
) -> None:
    key = new_key(NEW)
    add = signed(NET, add_participant(txf, NEW, key))
    # Before the addition (earlier in the block) the bank is unknown: control.
    early = _dvp_with_new_bank(txf, key)
    out = run(store, early, add, _fund_new_bank(txf), _dvp_with_new_bank(txf, key))
    assert own(out) == [RC.BAD_SIGNATURE, RC.OK, RC.OK, RC.OK]
    assert store.balance(NEW, NET.bonds[0]) == 10
    assert store.balance(NEW, NET.cash) == 1_000 - 10
    p = Registry.of(store).participant(NEW)
    assert p is not None and p.public_key == key.public_key and p.kyc_tier == 2


def test_k_minus_one_admin_signatures_are_refused_and_change_nothing(
    store: MemoryStore, txf: TxFactory
) -> None:
    one = signed(NET, add_participant(txf, admins=DEMO_ADMINS[:1]))
    assert precheck(Registry.of(store), one).code is RC.NOT_ADMIN_QUORUM
    out = run(store, one)
    assert own(out) == [RC.NOT_ADMIN_QUORUM] and out.records == {}
    assert NEW not in Registry.of(store).participant_by_id
    # Control: the threshold of two admins adds it.
    assert own(run(store, signed(NET, add_participant(txf)))) == [RC.OK]
    assert NEW in Registry.of(store).participant_by_id


def test_a_non_admin_signer_is_refused(store: MemoryStore, txf: TxFactory) -> None:
    tx = add_participant(txf, admins=("BANK01", "CSD"))
    assert own(run(store, signed(NET, tx))) == [RC.NOT_ADMIN_QUORUM]
    assert own(run(store, signed(NET, add_participant(txf, admins=DEMO_ADMINS)))) == [RC.OK]


def test_an_admin_signature_under_another_key_is_a_bad_signature(
    store: MemoryStore, txf: TxFactory
) -> None:
    forged = signed(NET, add_participant(txf), keys={"CSD": new_key("not CSD")})
    assert own(run(store, forged)) == [RC.BAD_SIGNATURE]
    assert NEW not in Registry.of(store).participant_by_id


def test_a_chain_without_admins_refuses_all_governance(txf: TxFactory) -> None:
    g = dataclasses.replace(NET.genesis, admins=(), admin_threshold=0)
    store = MemoryStore(g)
    tx = dataclasses.replace(add_participant(txf), chain_id=g.chain_id)
    assert own(run(store, signed(NET, tx))) == [RC.NOT_ADMIN_QUORUM]


# --- RotateKey ----------------------------------------------------------------------------


def test_after_rotate_key_the_old_key_is_a_bad_signature(
    store: MemoryStore, txf: TxFactory
) -> None:
    old = NET.participant_keys["BANK01"]
    new = new_key("BANK01 rotated")
    before = txf.signed(txf.transfer("BANK01", "BANK02", 5))
    assert own(run(store, before)) == [RC.OK]  # control: the old key works before
    stale = txf.signed(txf.transfer("BANK01", "BANK02", 5))
    t = txf.transfer("BANK01", "BANK02", 7)
    fresh = SignedTx(encode_body(t), ()).with_signature("BANK01", new).encode()
    out = run(store, signed(NET, rotate(txf, "BANK01", new)), stale, fresh)
    assert own(out) == [RC.OK, RC.BAD_SIGNATURE, RC.OK]
    p = Registry.of(store).participant("BANK01")
    assert p is not None and p.public_key == new.public_key != old.public_key


def test_a_rotated_admin_signs_governance_with_its_new_key(
    store: MemoryStore, txf: TxFactory
) -> None:
    new = new_key("CSD rotated")
    assert own(run(store, signed(NET, rotate(txf, "CSD", new)))) == [RC.OK]
    old_sig = signed(NET, add_participant(txf))
    new_sig = signed(NET, add_participant(txf), keys={"CSD": new})
    assert own(run(store, old_sig, new_sig)) == [RC.BAD_SIGNATURE, RC.OK]


def test_rotate_key_refuses_unknown_participants_and_bad_keys(
    store: MemoryStore, txf: TxFactory
) -> None:
    same = rotate(txf, "BANK01", NET.participant_keys["BANK01"])
    unknown = rotate(txf, "NOBODY", new_key("x"))
    assert own(run(store, signed(NET, same), signed(NET, unknown))) == [
        RC.INVALID_REFERENCE,
        RC.UNKNOWN_ACCOUNT,
    ]


# --- roles and tiers ----------------------------------------------------------------------


def test_set_roles_takes_effect_for_the_next_transaction(
    store: MemoryStore, txf: TxFactory
) -> None:
    ok = txf.signed(txf.dvp(seller="BANK01", buyer="BANK02"))
    strip = signed(NET, set_roles(txf, "BANK02", frozenset({Role.AUDITOR})))
    refused = txf.signed(txf.dvp(seller="BANK01", buyer="BANK02"))
    assert own(run(store, ok, strip, refused)) == [RC.OK, RC.OK, RC.UNAUTHORIZED]
    p = Registry.of(store).participant("BANK02")
    assert p is not None and p.roles == {Role.AUDITOR}


def test_set_kyc_tier_zero_stops_trading_and_a_tier_out_of_range_is_refused(
    store: MemoryStore, txf: TxFactory
) -> None:
    out = run(
        store,
        signed(NET, set_tier(txf, "BANK02", 4)),
        txf.signed(txf.dvp(seller="BANK01", buyer="BANK02")),  # control: still tier 2
        signed(NET, set_tier(txf, "BANK02", 0)),
        txf.signed(txf.dvp(seller="BANK01", buyer="BANK02")),
        signed(NET, set_tier(txf, "NOBODY", 1)),
    )
    assert own(out) == [
        RC.INVALID_REFERENCE,
        RC.OK,
        RC.OK,
        RC.UNAUTHORIZED,
        RC.UNKNOWN_ACCOUNT,
    ]


# --- AddParticipant -----------------------------------------------------------------------


def test_add_participant_refuses_a_duplicate_and_invalid_fields(
    store: MemoryStore, txf: TxFactory
) -> None:
    dup = add_participant(txf, "BANK01")
    bad_tier = add_participant(txf, "BANK98", tier=9)
    out = run(store, signed(NET, dup), signed(NET, bad_tier))
    assert own(out) == [RC.ALREADY_EXISTS, RC.INVALID_REFERENCE] and out.records == {}


def test_add_participant_refuses_beyond_participants_max(
    store: MemoryStore, txf: TxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = len(NET.genesis.participants)
    monkeypatch.setattr(_gov, "PARTICIPANTS_MAX", n + 1)
    out = run(store, signed(NET, add_participant(txf, "BANK98")), signed(NET, add_participant(txf)))
    assert own(out) == [RC.OK, RC.REGISTRY_FULL]  # the first one fits: control
    assert Registry.of(store).added() == (1, 0)


# --- AddInstrument ------------------------------------------------------------------------


def _isin(base11: str) -> str:
    return base11 + str(isin_check_digit(base11))


def _bond(iid: str) -> Instrument:
    return Instrument(
        iid, InstrumentKind.BOND, "TREASURY", "USD", unit_face_minor=1,
        maturity_date="2031-06-30", coupon_bp=400, coupon_freq=2, payment_cash=NET.cash,
    )  # fmt: skip


def test_add_instrument_then_mint_and_trade_it(store: MemoryStore, txf: TxFactory) -> None:
    eur, bond = cash_token(), _bond(_isin("US91282CXX1"))
    mint = txf.signed(txf.mint("BANK01", 500, eur.id, by="CASHCO"))
    add = [signed(NET, add_instrument(txf, i)) for i in (eur, bond)]
    early_mint = txf.signed(txf.mint("BANK01", 500, eur.id, by="CASHCO"))
    out = run(store, early_mint, *add, mint)
    assert own(out) == [RC.UNKNOWN_INSTRUMENT, RC.OK, RC.OK, RC.OK]
    assert store.balance("BANK01", eur.id) == 500
    reg = Registry.of(store)
    assert reg.instrument(bond.id) == bond
    assert reg.schedule(bond.id) and reg.maturity_ms(bond.id) is not None
    assert list(reg.instrument_by_id)[-2:] == sorted([eur.id, bond.id])


def test_add_instrument_validates_as_genesis_does(store: MemoryStore, txf: TxFactory) -> None:
    bad_isin = _bond("US91282CXX10")  # wrong check digit
    not_issuer = dataclasses.replace(cash_token("EUR.BANK01"), issuer="BANK01")
    wrong_cash = dataclasses.replace(_bond(_isin("US91282CYY1")), payment_cash="EUR.NONE")
    dup = cash_token(NET.cash, "USD")
    out = run(
        store,
        *(signed(NET, add_instrument(txf, i)) for i in (bad_isin, not_issuer, wrong_cash, dup)),
    )
    assert own(out) == [RC.INVALID_REFERENCE] * 3 + [RC.ALREADY_EXISTS]
    assert out.records == {}


# --- SetMaxSupply -------------------------------------------------------------------------


def test_set_max_supply_caps_mints(store: MemoryStore, txf: TxFactory) -> None:
    supply = store.supply(NET.cash)
    t = NET.genesis.genesis_time_ms
    cap = signed(NET, set_cap(txf, NET.cash, supply + 100, as_of_ms=t))
    over = txf.signed(txf.mint("BANK01", 101, NET.cash, by="CASHCO"))
    within = txf.signed(txf.mint("BANK01", 100, NET.cash, by="CASHCO"))
    assert own(run(store, cap, over, within)) == [RC.OK, RC.SUPPLY_LIMIT, RC.OK]
    assert Registry.of(store).attestation(NET.cash) is not None


def test_set_max_supply_refusals(store: MemoryStore, txf: TxFactory) -> None:
    supply = store.supply(NET.cash)
    t = NET.genesis.genesis_time_ms
    out = run(
        store,
        signed(NET, set_cap(txf, NET.cash, supply - 1, as_of_ms=t)),
        signed(NET, set_cap(txf, NET.cash, supply, as_of_ms=t)),  # control: equal is fine
        signed(NET, set_cap(txf, NET.cash, supply + 5, as_of_ms=t)),  # not newer
        signed(NET, set_cap(txf, NET.cash, supply + 5, as_of_ms=t + 10**9)),  # after block
        signed(NET, set_cap(txf, NET.cash, 0, as_of_ms=t + 1)),
        signed(NET, set_cap(txf, "NOPE", 5, as_of_ms=t + 1)),
    )
    assert own(out) == [
        RC.CAP_BELOW_SUPPLY,
        RC.OK,
        RC.STALE_ATTESTATION,
        RC.STALE_ATTESTATION,
        RC.INVALID_AMOUNT,
        RC.UNKNOWN_INSTRUMENT,
    ]
    inst = Registry.of(store).instrument(NET.cash)
    assert inst is not None and inst.max_supply == supply


# --- encoding and genesis ----------------------------------------------------------------


def test_every_governance_kind_round_trips(txf: TxFactory) -> None:
    txs = [
        add_participant(txf),
        set_roles(txf, "BANK01", frozenset({Role.TRADER, Role.CUSTODIAN})),
        set_tier(txf, "BANK01", 3),
        rotate(txf, "BANK01", new_key("r")),
        add_instrument(txf, _bond(_isin("US91282CZZ1"))),
        set_cap(txf, NET.cash, 10, 5),
        set_rules(txf, ComplianceRules.of({}, (), {NET.cash: 10})),
    ]
    assert {type(t) for t in txs} == set(GOVERNANCE_KINDS)
    for tx in txs:
        assert decode_body(encode_body(tx)) == tx


def test_admin_signers_must_be_sorted_and_unique(txf: TxFactory) -> None:
    with pytest.raises(ValueError, match="sorted unique"):
        encode_body(add_participant(txf, admins=("CSD", "COMPLIANCE")))
    body = bytearray(encode_body(add_participant(txf, admins=("COMPLIANCE", "CSD"))))
    tail = body.rindex(b"\x0aCOMPLIANCE")
    body[tail:] = b"\x03CSD\x0aCOMPLIANCE"  # the same two, unsorted
    with pytest.raises(DecodeError):
        decode_body(bytes(body))


def test_genesis_governance_json_and_chain_id() -> None:
    g = NET.genesis
    assert (g.admins, g.admin_threshold) == (DEMO_ADMINS, 2)
    assert parse_genesis(genesis_to_json(g)) == g
    plain = dataclasses.replace(g, admins=(), admin_threshold=0)
    assert "governance" not in genesis_to_json(plain)
    # No admins: no trailing section, so a chain generated before governance keeps its id.
    assert g.canonical_bytes.startswith(plain.canonical_bytes)
    assert len(g.canonical_bytes) > len(plain.canonical_bytes)


@pytest.mark.parametrize(
    ("admins", "k"),
    [(("CSD", "COMPLIANCE"), 1), (("CSD", "NOBODY"), 1), (("CSD",), 2), (("CSD",), 0), ((), 1)],
)
def test_genesis_refuses_bad_governance(admins: tuple[str, ...], k: int) -> None:
    with pytest.raises(GenesisError, match="governance"):
        dataclasses.replace(demo_genesis().genesis, admins=admins, admin_threshold=k)


def test_a_refused_governance_transaction_leaves_the_state_root_of_an_empty_block(
    txf: TxFactory,
) -> None:
    a, b = MemoryStore(NET.genesis), MemoryStore(NET.genesis)
    refused = signed(NET, add_participant(txf, admins=DEMO_ADMINS[:1]))
    ok = signed(NET, add_participant(txf, admins=TWO_ADMINS))
    ra, rb = run(a, refused), run(b, ok)
    assert ra.records == {} and rb.records != {}


def test_add_instrument_refuses_beyond_instruments_max(
    store: MemoryStore, txf: TxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_gov, "INSTRUMENTS_MAX", len(NET.genesis.instruments) + 1)
    eur, gbp = cash_token(), cash_token("GBP.CASHCO", "GBP")
    out = run(store, *(signed(NET, add_instrument(txf, i)) for i in (eur, gbp)))
    assert own(out) == [RC.OK, RC.REGISTRY_FULL]  # the first one fits: control
    assert (
        Registry.of(store).added() == (0, 1) and gbp.id not in Registry.of(store).instrument_by_id
    )


# --- aimed at the survivors of `python -m tests.mutation run --target settlement.gov` -----


@pytest.mark.parametrize("kind", ["participants", "instruments"])
def test_the_registry_limit_counts_genesis_plus_additions(
    kind: str, txf: TxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for five more, the sixth addition is REGISTRY_FULL (the counts are
    added, never combined bitwise); with the limit below what genesis has, none fits."""
    n = len(getattr(NET.genesis, kind))
    name = "PARTICIPANTS_MAX" if kind == "participants" else "INSTRUMENTS_MAX"

    def additions() -> list[bytes]:
        if kind == "participants":
            return [signed(NET, add_participant(txf, f"BANK9{i}")) for i in range(6)]
        return [signed(NET, add_instrument(txf, cash_token(f"X{i}.CASHCO"))) for i in range(6)]

    monkeypatch.setattr(_gov, name, n + 5)
    assert own(run(MemoryStore(NET.genesis), *additions())) == [RC.OK] * 5 + [RC.REGISTRY_FULL]
    monkeypatch.setattr(_gov, name, n - 1)
    assert own(run(MemoryStore(NET.genesis), *additions()[:1])) == [RC.REGISTRY_FULL]


def _key_ordered(pid: str, above: bool) -> crypto.SigningKey:
    """A fresh key whose public key sorts above (or below) ``pid``'s current one."""
    current = NET.participant_keys[pid].public_key
    for i in range(100):
        key = new_key(f"{pid} {i}")
        if (key.public_key > current) == above:
            return key
    raise AssertionError("no such key in 100 tries")


def test_changes_are_not_additions_and_boundaries_are_inclusive(
    store: MemoryStore, txf: TxFactory
) -> None:
    t = NET.genesis.genesis_time_ms + 1_000  # run()'s block time
    supply = store.supply(NET.cash)
    out = run(
        store,
        signed(NET, set_tier(txf, "BANK01", 3)),  # KYC_TIER_MAX itself
        signed(NET, rotate(txf, "BANK02", _key_ordered("BANK02", above=True))),
        signed(NET, rotate(txf, "BANK03", _key_ordered("BANK03", above=False))),
        signed(NET, set_roles(txf, "BANK04", frozenset({Role.TRADER, Role.CUSTODIAN}))),
        signed(NET, set_cap(txf, NET.cash, supply, as_of_ms=t - 10)),
        signed(NET, set_cap(txf, NET.cash, supply, as_of_ms=t - 20)),  # older: stale
        signed(NET, set_cap(txf, NET.cash, supply + 1, as_of_ms=t)),  # the block time itself
    )
    assert own(out) == [RC.OK] * 5 + [RC.STALE_ATTESTATION, RC.OK]
    reg = Registry.of(store)
    assert reg.added() == (0, 0)  # changes, not additions
    assert reg.attestation(NET.cash) is not None and reg.attestation(NET.cash)[0] == t
