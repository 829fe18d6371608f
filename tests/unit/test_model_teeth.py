"""Genesis validation and the reference-data checks governance reuses
(node/settlement/_model.py), one rule at a time on the demo genesis: docs/ledger.md
("Participants", "Instruments", "Governance") and docs/adr/0016-reference-data-in-state.md
(AddParticipant and AddInstrument are checked exactly as genesis checks its own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from node.config import (
    ADMINS_MAX,
    BACKINGS_MAX,
    GENESIS_HOLDINGS_MAX,
    INSTRUMENTS_MAX,
    PARTICIPANTS_MAX,
    RESERVE_RULE_DAYS_MAX,
    U64_MAX,
)
from node.settlement import (
    KYC_TIER_MAX,
    GenesisError,
    Instrument,
    InstrumentKind,
    Participant,
    Role,
)
from node.settlement._codec import DecodeError, Reader, Writer
from node.settlement._kyc_rules import ComplianceRules
from node.settlement._margin_terms import Haircut, MarginTerms
from node.settlement._model import (
    CustodyBacking,
    Genesis,
    Holding,
    ReserveRules,
    decode_instrument,
    decode_participant,
    encode_instrument,
    encode_participant,
    validate_instrument,
    validate_participant,
)
from tests.gov_helpers import cash_token, new_key
from tests.ledger_helpers import shared_net

NET = shared_net()
G = NET.genesis
BOND = G.instrument_by_id["US91282CJK72"]
CASH = G.instrument_by_id[NET.cash]
BANK = G.participant_by_id["BANK01"]


def _genesis(**changes: object) -> Genesis:
    return dataclasses.replace(G, **changes)  # type: ignore[arg-type]


def test_genesis_counts_are_bounded_before_anything_else_is_checked() -> None:
    """docs/ledger.md, node/config.py: genesis holds 1..PARTICIPANTS_MAX participants, at
    most INSTRUMENTS_MAX instruments and GENESIS_HOLDINGS_MAX holdings; one over is
    refused for its count (not for whatever the oversized list breaks next)."""
    with pytest.raises(GenesisError, match=f"1..{PARTICIPANTS_MAX} participants"):
        _genesis(participants=(BANK,) * (PARTICIPANTS_MAX + 1))
    with pytest.raises(GenesisError, match="too many instruments"):
        _genesis(instruments=(CASH,) * (INSTRUMENTS_MAX + 1))
    holding = G.holdings[0]
    with pytest.raises(GenesisError, match="too many instruments or holdings"):
        _genesis(holdings=(holding,) * (GENESIS_HOLDINGS_MAX + 1))


def test_genesis_ids_are_unique() -> None:
    """A participant, an instrument, a validator id or key, an admin: each appears once
    (a second entry would shadow the first in every lookup by id)."""
    with pytest.raises(GenesisError, match="appears twice"):
        _genesis(participants=(*G.participants, BANK))
    with pytest.raises(GenesisError, match="instrument ids must be unique"):
        _genesis(instruments=(*G.instruments, dataclasses.replace(CASH, max_supply=5)))
    v = G.validators[0]
    same_id = dataclasses.replace(v, public_key=new_key("V-OTHER").public_key)
    same_key = dataclasses.replace(v, id="V-OTHER")
    for validators in ((*G.validators, same_key), (*G.validators, same_id)):
        with pytest.raises(GenesisError, match="unique"):
            _genesis(validators=validators)


def test_genesis_admins_are_few_sorted_unique_participants() -> None:
    """docs/adr/0016: admins are sorted unique participant ids, at most ADMINS_MAX."""
    with pytest.raises(GenesisError, match=r"governance\.admins"):
        _genesis(admins=("CSD", "CSD"), admin_threshold=1)
    many = tuple(sorted(G.participant_by_id))[: ADMINS_MAX + 1]
    with pytest.raises(GenesisError, match=r"governance\.admins"):
        _genesis(admins=many, admin_threshold=2)


def test_genesis_holdings_are_held_by_who_may_hold_within_the_cap() -> None:
    """docs/ledger.md: only a participant with a holding role and a KYC tier above 0 holds
    assets; a holding is 1..2**64-1; an instrument's holdings add up to at most its
    max_supply."""
    regulator = next(p.id for p in G.participants if not p.can_hold())
    for bad, why in [
        (Holding(regulator, CASH.id, 1), "may not hold"),
        (Holding("BANK06", CASH.id, 0), "amount"),
        (Holding("BANK06", CASH.id, CASH.max_supply), "exceed its max_supply"),
        (Holding("BANK06", "NO.SUCH", 1), "unknown account or instrument"),
    ]:
        rest = tuple(h for h in G.holdings if (h.account, h.instrument) != (bad.account, CASH.id))
        with pytest.raises(GenesisError, match=why):
            _genesis(holdings=(*rest, bad))


def test_a_participant_is_refused_for_a_malformed_id() -> None:
    """validate_participant (genesis and AddParticipant): ids are 1-64 ASCII letters,
    digits or . _ : - (they are record keys, ADR 0016)."""
    for pid in ("", "has space", "x" * 65):
        with pytest.raises(GenesisError, match="participant id"):
            validate_participant(dataclasses.replace(BANK, id=pid))
    validate_participant(BANK)


def test_a_participant_tier_is_0_to_kyc_tier_max() -> None:
    """validate_participant: kyc_tier is 0..KYC_TIER_MAX (docs/ledger.md "KYC tiers"); a
    negative tier would pass as "below every minimum" and break the u8 encoding."""
    for tier in (-1, KYC_TIER_MAX + 1):
        with pytest.raises(GenesisError, match="kyc_tier"):
            validate_participant(dataclasses.replace(BANK, kyc_tier=tier))
    validate_participant(dataclasses.replace(BANK, kyc_tier=KYC_TIER_MAX))


_BAD_TERMS: list[tuple[str, Callable[[Instrument], Instrument], str]] = [
    ("cash id", lambda i: dataclasses.replace(CASH, id="has space"), "instrument id"),
    ("issuer", lambda i: dataclasses.replace(i, issuer="NOBODY"), "issuer 'NOBODY' is not a"),
    ("maturity", lambda i: dataclasses.replace(i, maturity_date="soon"), "maturity_date"),
    ("currency", lambda i: dataclasses.replace(CASH, currency="USDX"), "ISO 4217"),
    ("cap 0", lambda i: dataclasses.replace(CASH, max_supply=0), "max_supply"),
    ("cap 2**64", lambda i: dataclasses.replace(CASH, max_supply=U64_MAX + 1), "max_supply"),
    ("isin case", lambda i: dataclasses.replace(i, id=i.id.lower()), "ISIN"),
    ("face 0", lambda i: dataclasses.replace(i, unit_face_minor=0), "unit_face_minor"),
    ("face 2**64", lambda i: dataclasses.replace(i, unit_face_minor=U64_MAX + 1), "unit_face"),
    ("coupon", lambda i: dataclasses.replace(i, coupon_bp=100_001), "coupon_bp"),
    ("zero bp", lambda i: dataclasses.replace(i, coupon_bp=0), "zero coupon"),
    ("zero freq", lambda i: dataclasses.replace(i, coupon_freq=0), "zero coupon"),
]


@pytest.mark.parametrize(("case", "bad", "why"), _BAD_TERMS, ids=[c[0] for c in _BAD_TERMS])
def test_an_instrument_is_refused_for_terms_genesis_refuses(
    case: str, bad: Callable[[Instrument], Instrument], why: str
) -> None:
    """validate_instrument (genesis and AddInstrument, ADR 0016): an id, an ISO 4217
    currency of exactly three capitals, 1 <= max_supply <= 2**64-1; a bond's id an
    upper-case ISIN with its check digit, a face value of 1..2**64-1, a coupon of at most
    100000 bp, and a zero coupon exactly when its frequency is zero."""
    inst = bad(BOND)
    with pytest.raises(GenesisError, match=why):
        validate_instrument(inst, G.participant_by_id, G.instrument_by_id, G.genesis_time_ms)


def test_the_demo_instruments_pass_the_checks_the_table_breaks() -> None:
    """Control for the table above: the unbroken instruments pass."""
    for inst in (BOND, CASH):
        validate_instrument(inst, G.participant_by_id, G.instrument_by_id, G.genesis_time_ms)
    assert isinstance(BANK, Participant)


def test_genesis_validators_are_well_formed() -> None:
    """A validator has an id, an acceptable Ed25519 key (not small-order) and a TLS pin of
    0 or 32 bytes; the quorum is 1..n (docs/ledger.md, node/settlement/_model.Validator).
    The consensus core trusts these: a quorum of 0 would certify anything."""
    v = G.validators[0]
    rest = G.validators[1:]
    for bad, why in [
        (dataclasses.replace(v, id="has space"), "validator id"),
        (dataclasses.replace(v, public_key=bytes(32)), "public_key"),
        (dataclasses.replace(v, tls_cert_sha256=bytes(31)), "tls_cert_sha256"),
    ]:
        with pytest.raises(GenesisError, match=why):
            _genesis(validators=(bad, *rest))
    for quorum in (0, len(G.validators) + 1):
        with pytest.raises(GenesisError, match="quorum"):
            _genesis(quorum=quorum)


def test_genesis_backings_are_one_per_instrument_within_range() -> None:
    """docs/ledger.md "Custody and reserves": at most BACKINGS_MAX backings and reserve
    rules, one per instrument, shares 0..10000 bp, days 1..RESERVE_RULE_DAYS_MAX."""
    rule = ReserveRules(CASH.id)
    with pytest.raises(GenesisError, match=f"at most {BACKINGS_MAX}"):
        _genesis(reserves=(rule,) * (BACKINGS_MAX + 1))
    with pytest.raises(GenesisError, match="appears twice"):
        _genesis(reserves=(rule, rule))
    for bad in (
        dataclasses.replace(rule, bills_min_bp=10_001),
        dataclasses.replace(rule, deposits_max_bp=10_001),
    ):
        with pytest.raises(GenesisError, match=r"0\.\.10000"):
            _genesis(reserves=(bad,))
    for days in (0, RESERVE_RULE_DAYS_MAX + 1):
        with pytest.raises(GenesisError, match=f"1..{RESERVE_RULE_DAYS_MAX}"):
            _genesis(reserves=(dataclasses.replace(rule, age_max_days=days),))
    _genesis(reserves=(dataclasses.replace(rule, age_max_days=RESERVE_RULE_DAYS_MAX),))


def _participant_record(roles: list[str]) -> Reader:
    w = Writer().fixed(BANK.public_key, 32).u8(2).u8(len(roles))
    for r in roles:
        w.ident(r)
    return Reader(w.finish())


def test_a_corrupt_reference_record_is_a_decode_error() -> None:
    """decode_participant and decode_instrument read governance's state records (ADR
    0016): roles known, sorted and unique, a known instrument kind, a day number on the
    calendar; anything else is a DecodeError (a corrupt state), never a ValueError or
    OverflowError from deep inside, nor a second encoding of one participant."""
    assert decode_participant(_participant_record(["trader"]), "B").roles == {Role.TRADER}
    for roles in (["trader", "custodian"], ["trader", "trader"], ["king"]):
        with pytest.raises(DecodeError):
            decode_participant(_participant_record(roles), "B")
    every = dataclasses.replace(BANK, roles=frozenset(Role))  # one canonical role order
    assert decode_participant(Reader(encode_participant(Writer(), every).finish()), "B") == (
        dataclasses.replace(every, id="B")
    )
    good = encode_instrument(Writer(), BOND).finish()
    assert decode_instrument(Reader(good), BOND.id) == BOND
    agent = dataclasses.replace(BOND, paying_agent="TREASURY")
    raw = encode_instrument(Writer(), agent).finish()
    cash_flag = sum(len(x) + 1 for x in ("bond", BOND.issuer, BOND.currency)) + 8 + 8 + 4 + 1 + 8
    agent_flag = cash_flag + 1 + len(BOND.payment_cash) + 1
    for at in (cash_flag, agent_flag):
        assert raw[at] == 1
        with pytest.raises(DecodeError):  # a presence byte is 0 or 1: one encoding
            decode_instrument(Reader(raw[:at] + b"\x02" + raw[at + 1 :]), BOND.id)
    with pytest.raises(DecodeError):
        decode_instrument(Reader(b"\x04coin" + good[5:]), BOND.id)
    past = encode_instrument(Writer(), dataclasses.replace(BOND, issue_date="")).finish()
    at = len(past) - 9  # issue date u64, then distribution day u8
    with pytest.raises(DecodeError):
        decode_instrument(Reader(past[:at] + (2**40).to_bytes(8, "big") + past[-1:]), BOND.id)


def test_the_chain_id_commits_to_every_genesis_section() -> None:
    """node/settlement/_model.Genesis.chain_id: the hash of the canonical genesis, so "a
    different genesis, a different chain" (docs/ledger.md): the admin threshold, the
    validators' order (the leader rotation), each backing's days, the KYC rules and the
    margin terms each change it."""
    base = _genesis(custody=(CustodyBacking(BOND.id, "CSD"),), reserves=(ReserveRules(CASH.id),))
    variants = {
        "threshold": dataclasses.replace(base, admin_threshold=base.admin_threshold + 1),
        "validator order": dataclasses.replace(base, validators=base.validators[::-1]),
        "custody days": dataclasses.replace(
            base, custody=(CustodyBacking(BOND.id, "CSD", age_max_days=8),)
        ),
        "reserve days": dataclasses.replace(
            base, reserves=(ReserveRules(CASH.id, age_max_days=8),)
        ),
        "kyc": dataclasses.replace(base, compliance=ComplianceRules(min_tier=((BOND.id, 2),))),
        "margin": dataclasses.replace(
            base, margin=MarginTerms(("CSD",), 1, 60_000, (Haircut(BOND.id, CASH.id, 200),))
        ),
    }
    variants["reserves alone"] = _genesis(reserves=(ReserveRules(CASH.id),))
    for what, g in variants.items():
        assert g.chain_id != base.chain_id, what
        assert g.chain_id != G.chain_id, what


def test_the_chain_id_does_not_depend_on_the_order_of_backings() -> None:
    """The canonical genesis sorts custody backings by bond and reserve rules by cash
    token: the same genesis written in another order is the same chain."""
    eur = cash_token("EUR.CASHCO", "EUR")
    bonds = [i.id for i in G.instruments if i.kind is InstrumentKind.BOND][:2]
    custody = tuple(CustodyBacking(b, "CSD") for b in bonds)
    reserves = (ReserveRules(CASH.id), ReserveRules(eur.id))
    one = _genesis(instruments=(*G.instruments, eur), custody=custody, reserves=reserves)
    other = dataclasses.replace(one, custody=custody[::-1], reserves=reserves[::-1])
    assert len(bonds) == 2 and one.chain_id == other.chain_id


def test_a_genesis_time_past_the_calendar_is_one_genesis_error() -> None:
    """_model._validate_terms: a bond's schedule starts at its issue date, default the
    genesis date; a genesis_time_ms whose date is past year 9999 makes the schedule leave
    the calendar, refused as one GenesisError (not an OverflowError traceback)."""
    assert not BOND.issue_date
    with pytest.raises(GenesisError, match="leaves the calendar"):
        _genesis(genesis_time_ms=U64_MAX)
