"""Genesis loading with teeth: every field of the file is a lie until proven.

The module docstring of node/genesis.py states the rule: "Loading is strict: unknown keys,
missing keys, floats and wrong types are errors that name the field". These tests run
``parse_genesis`` in process (no netgen child, unlike the serial tests/unit/
test_bad_genesis.py) on the JSON form of a demo network with every optional part, so a
check deleted from the parser fails here in well under a second.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from node.genesis import demo_genesis, genesis_to_json, parse_genesis
from node.settlement import Genesis, GenesisError


def _full_genesis() -> Genesis:
    """A demo genesis with every optional part, and non-default values in the optional
    fields a parser could drop unnoticed (paying_agent, max_supply, age_max_days)."""
    net = demo_genesis(lifecycle_date=date(2026, 6, 1), backing=True, compliance=True, margin=True)
    g = net.genesis
    insts = tuple(
        dataclasses.replace(i, paying_agent="CSD", max_supply=10**15) if i.id == net.bonds[0] else i
        for i in g.instruments
    )
    custody = tuple(dataclasses.replace(c, age_max_days=30) for c in g.custody)
    return dataclasses.replace(g, instruments=insts, custody=custody)


FULL = _full_genesis()


def test_every_field_of_a_full_genesis_survives_the_json_round_trip() -> None:
    """docs/ledger.md: the JSON form is what operators edit and ship, and the canonical
    form of what it parses to is the chain id. A field the parser drops (an optional
    instrument term, a custody horizon, a tier's daily limit) silently changes the chain."""
    again = parse_genesis(genesis_to_json(FULL))
    assert again == FULL
    assert again.chain_id == FULL.chain_id


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        parent[path[-1]] = value

    return edit


# (case, edit of the good document, what the one-line GenesisError must say)
_P0, _V0 = ("participants", 0), ("validators", 0)
_BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("entry-not-object", _set(_P0, "CSD"), r"participants\[0\]: expected an object"),
    ("name-not-string", _set(("name",), 7), r"genesis\.name: expected a string"),
    ("id-not-string", _set((*_P0, "id"), ["CSD"]), r"participants\[0\]\.id: expected a string"),
    ("holdings-not-list", _set(("holdings",), {}), r"holdings: expected a list"),
    ("validators-not-list", _set(("validators",), ""), r"validators: expected a list"),
    ("roles-not-list", _set((*_P0, "roles"), 5), r"participants\[0\]\.roles: expected a list"),
    ("roles-no-names", _set((*_P0, "roles"), [5]), r"participants\[0\]\.roles: each must be"),
    ("key-not-hex", _set((*_P0, "public_key"), "zz"), r"participants\[0\]\.public_key: not hex"),
    ("pin-not-hex", _set((*_V0, "tls_cert_sha256"), "zz"), r"tls_cert_sha256: not hex"),
    ("admins-not-list", _set(("governance", "admins"), "CSD"), r"governance\.admins: expected"),
    ("admins-not-ids", _set(("governance", "admins"), ["CSD", 7]), r"governance\.admins: expected"),
    ("sources-not-list", _set(("margin", "sources"), "CSD"), r"margin\.sources: expected a list"),
    ("sources-not-ids", _set(("margin", "sources"), ["CSD", 7]), r"margin\.sources: expected"),
    ("min-tier-not-object", _set(("compliance", "min_tier"), []), r"min_tier: expected an object"),
    ("kyc-tier-bool", _set((*_P0, "kyc_tier"), True), r"kyc_tier: expected an integer, got bool"),
    ("day-max-bool", _set(("compliance", "limits", 0, "day_max"), True), r"day_max: expected an"),
    ("day-max-text", _set(("compliance", "limits", 0, "day_max"), "9"), r"day_max: expected an"),
    ("cosign-not-object", _set(("compliance", "cosign_above"), [1]), r"cosign_above: expected an"),
]


@pytest.mark.parametrize(
    ("edit", "says"), [(e, s) for _, e, s in _BAD], ids=[i for i, _, _ in _BAD]
)
def test_a_wrong_type_anywhere_is_a_genesis_error_naming_the_field(
    edit: Callable[[dict[str, Any]], None], says: str
) -> None:
    """node/genesis.py: "wrong types are errors that name the field": a GenesisError (what
    the node and the CLI print in one line), never a TypeError or AttributeError from
    deeper in, and never a silently empty list."""
    doc = copy.deepcopy(genesis_to_json(FULL))
    edit(doc)
    with pytest.raises(GenesisError, match=says):
        parse_genesis(doc)


@pytest.mark.parametrize("doc", [[], "genesis", None, 7])
def test_a_genesis_that_is_no_object_is_a_genesis_error(doc: Any) -> None:
    """The document itself must be an object (node/genesis.py, strict loading)."""
    with pytest.raises(GenesisError, match="genesis: expected an object"):
        parse_genesis(doc)


def test_a_repeated_compliance_row_is_a_genesis_error() -> None:
    """docs/ledger.md "KYC tiers and AML": one limit per (tier, cash token). The rules'
    ValueError must come out as a GenesisError naming the compliance section."""
    doc = copy.deepcopy(genesis_to_json(FULL))
    limits = doc["compliance"]["limits"]
    limits.append(dict(limits[0]))
    with pytest.raises(GenesisError, match="compliance: "):
        parse_genesis(doc)


@pytest.mark.parametrize("roles", ["", {"trader": 1}, ["trader", "trader"]])
def test_roles_that_are_no_list_are_a_genesis_error(roles: Any) -> None:
    """node/genesis.py: "wrong types are errors that name the field". ``roles`` is a list
    of role names, each once; another JSON type must not parse to a participant, let
    alone one whose genesis has the chain id of the well-formed file (the sweep of
    session 21 found a string read as no roles and an object read as its keys)."""
    doc = copy.deepcopy(genesis_to_json(FULL))
    who = next(i for i, p in enumerate(doc["participants"]) if p["id"] == "AUDITOR")
    doc["participants"][who]["roles"] = roles
    with pytest.raises(GenesisError, match=rf"participants\[{who}\]\.roles"):
        parse_genesis(doc)


def _validators_edit(edit: Callable[[list[dict[str, Any]]], object]) -> Callable[[Any], Any]:
    def apply(doc: dict[str, Any]) -> None:
        edit(doc["validators"])

    return apply


# (case, edit of the validators list or the quorum, what the GenesisError must say)
_UNIQUE, _PIN_LEN = "ids and public keys must be unique", "tls_cert_sha256 must be empty or 32"
_BAD_VALIDATORS: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    ("none", lambda d: d.update(validators=[], quorum=1), "at least one validator"),
    ("same-id", _validators_edit(lambda v: v[1].update(id=v[0]["id"])), _UNIQUE),
    ("same-key", _validators_edit(lambda v: v[1].update(public_key=v[0]["public_key"])), _UNIQUE),
    ("bad-id", _validators_edit(lambda v: v[0].update(id="val 00")), "validator id 'val 00'"),
    ("pin-31", _validators_edit(lambda v: v[0].update(tls_cert_sha256="ab" * 31)), _PIN_LEN),
    ("pin-33", _validators_edit(lambda v: v[0].update(tls_cert_sha256="ab" * 33)), _PIN_LEN),
    ("small-order", _validators_edit(lambda v: v[0].update(public_key="00" * 32)), "is invalid"),
    ("quorum-0", lambda d: d.update(quorum=0), "quorum 0 must be between 1 and"),
    ("quorum-over-n", lambda d: d.update(quorum=len(d["validators"]) + 1), "quorum 5 must be"),
]


@pytest.mark.parametrize(
    ("edit", "says"),
    [(e, s) for _, e, s in _BAD_VALIDATORS],
    ids=[i for i, _, _ in _BAD_VALIDATORS],
)
def test_the_validator_set_and_quorum_are_checked_one_rule_at_a_time(
    edit: Callable[[dict[str, Any]], object], says: str
) -> None:
    """docs/ledger.md and node/settlement/_model.py: at least one validator, ids and
    public keys each unique, ids valid identifiers, each key acceptable (not small-order),
    a certificate pin empty or one SHA-256 (ADR 0019), and 1 <= quorum <= n. Each case
    breaks exactly one rule, so no other check can refuse it in the rule's place."""
    doc = copy.deepcopy(genesis_to_json(FULL))
    edit(doc)
    with pytest.raises(GenesisError, match=says):
        parse_genesis(doc)


@pytest.mark.parametrize("quorum", [1, 4])
def test_a_quorum_of_1_or_n_and_a_32_byte_pin_are_taken(quorum: int) -> None:
    """Controls for the table above: the bounds themselves are valid."""
    doc = copy.deepcopy(genesis_to_json(FULL))
    doc["quorum"] = quorum
    doc["validators"][0]["tls_cert_sha256"] = "ab" * 32
    g = parse_genesis(doc)
    assert g.quorum == quorum and g.validators[0].tls_cert_sha256 == b"\xab" * 32
