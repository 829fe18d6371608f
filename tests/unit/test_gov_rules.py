"""Governance of the KYC tier and AML rules (issue 15 items 1 and 4; docs/ledger.md
"KYC tiers and AML"): k admins replace the rules in force with ``SetComplianceRules``,
seen by the next transaction; k - 1 admins, rules naming an instrument of the wrong kind
or one that does not exist, and non-canonical rules are refused and change nothing. Each
with its control. Codes are named, never numbered.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from node.genesis import DEMO_ADMINS
from node.settlement import (
    ComplianceRules,
    DecodeError,
    Registry,
    ResultCode,
    Role,
    SignedTx,
    TierLimit,
    decode_body,
    encode_body,
    precheck,
    rules_in_force,
)
from node.store import MemoryStore
from tests.gov_helpers import (
    TWO_ADMINS,
    Gov,
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
THRESHOLD = 1_000  # cents: above this a move of the demo cash needs a co-signature


def _cosign_rule(cash: str = NET.cash) -> ComplianceRules:
    return ComplianceRules.of({}, (), {cash: THRESHOLD})


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(NET.genesis)


@pytest.fixture
def txf() -> TxFactory:
    return TxFactory(NET)


def _rules(store: MemoryStore) -> ComplianceRules:
    return rules_in_force(Registry.of(store), store)


def test_k_admins_replace_the_rules_seen_by_the_next_transaction(
    store: MemoryStore, txf: TxFactory
) -> None:
    before = txf.signed(txf.transfer("BANK01", "BANK02", THRESHOLD + 1))  # control: no rule
    rules = signed(NET, set_rules(txf, _cosign_rule()))
    after = txf.signed(txf.transfer("BANK01", "BANK02", THRESHOLD + 1))
    at = txf.signed(txf.transfer("BANK01", "BANK02", THRESHOLD))  # at the threshold: fine
    out = run(store, before, rules, after, at)
    assert own(out) == [RC.OK, RC.OK, RC.COSIGN_REQUIRED, RC.OK]
    assert _rules(store) == _cosign_rule()


def test_k_minus_one_admins_leave_the_rules_as_they_are(store: MemoryStore, txf: TxFactory) -> None:
    one = signed(NET, set_rules(txf, _cosign_rule(), admins=DEMO_ADMINS[:1]))
    assert precheck(Registry.of(store), one).code is RC.NOT_ADMIN_QUORUM
    out = run(store, one)
    assert own(out) == [RC.NOT_ADMIN_QUORUM] and out.records == {}
    assert _rules(store) == NET.genesis.compliance


_GOV_BUILDERS: dict[str, Callable[[TxFactory], Gov]] = {
    "add participant": add_participant,
    "set roles": lambda txf: set_roles(txf, "BANK01", frozenset({Role.TRADER})),
    "set tier": lambda txf: set_tier(txf, "BANK01", 3),
    "rotate key": lambda txf: rotate(txf, "BANK01", new_key("BANK01 again")),
    "add instrument": lambda txf: add_instrument(txf, cash_token()),
    "set max supply": lambda txf: set_cap(txf, NET.cash, 10**15, txf.t0),
    "set compliance rules": lambda txf: set_rules(txf, _cosign_rule()),
}


@pytest.mark.parametrize("kind", sorted(_GOV_BUILDERS))
def test_every_admin_a_governance_body_names_must_sign_it(
    store: MemoryStore, txf: TxFactory, kind: str
) -> None:
    """docs/ledger.md "Governance": the signers of a governance transaction are the admins
    it names (k of them for a quorum). A body naming two admins that only the first signed
    is BAD_SIGNATURE (a required signature is missing) and changes nothing: else one
    admin names a second and acts alone, below the threshold k."""
    tx = _GOV_BUILDERS[kind](txf)
    assert tx.admins == TWO_ADMINS and tx.required_signers() == TWO_ADMINS
    first = TWO_ADMINS[0]
    alone = SignedTx(encode_body(tx), ()).with_signature(first, NET.participant_keys[first])
    out = run(store, alone.encode())
    assert own(out) == [RC.BAD_SIGNATURE] and out.records == {}
    assert _rules(store) == NET.genesis.compliance


@pytest.mark.parametrize(
    "rules",
    [
        ComplianceRules.of({}, (), {NET.bonds[0]: THRESHOLD}),  # a bond as a cash token
        ComplianceRules.of({}, (TierLimit(2, "NOPE.CASH", 10, 20),), {}),  # unknown token
        ComplianceRules.of({"US0000000000": 2}, (), {}),  # an instrument nobody defined
    ],
    ids=["bond as cash", "unknown cash", "unknown instrument"],
)
def test_rules_naming_the_wrong_instruments_are_refused(
    store: MemoryStore, txf: TxFactory, rules: ComplianceRules
) -> None:
    out = run(store, signed(NET, set_rules(txf, rules)))
    assert own(out) == [RC.INVALID_REFERENCE] and out.records == {}
    assert _rules(store) == NET.genesis.compliance


def test_the_rules_travel_in_their_canonical_encoding() -> None:
    txf = TxFactory(NET)
    tx = set_rules(txf, ComplianceRules.of({NET.bonds[0]: 2}, (TierLimit(1, NET.cash, 5, 9),), {}))
    assert decode_body(encode_body(tx)) == tx
    # Negative control: rules bytes a decoder would read differently are MALFORMED.
    body = encode_body(tx)
    raw = tx.rules.encode()
    broken = body.replace(raw, bytes([raw[0] + 1]) + raw[1:])  # an unknown rules version
    with pytest.raises(DecodeError):
        decode_body(broken)
    assert own(run(MemoryStore(NET.genesis), SignedTx(broken, ()).encode())) == [RC.MALFORMED]


def test_a_replacement_is_whole_not_merged(store: MemoryStore, txf: TxFactory) -> None:
    first = ComplianceRules.of({}, (TierLimit(2, NET.cash, 10**9, 10**10),), {NET.cash: 10})
    second = _cosign_rule()
    run(store, signed(NET, set_rules(txf, first)), signed(NET, set_rules(txf, second)))
    assert _rules(store) == second and not _rules(store).limits
