"""Governance in the SDK without a cluster: the builders check admins, ids, keys, roles
and tiers before anything is signed; a transaction survives the JSON file admins pass
between machines; a client registry built from a node's answer sees what governance did.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from client import InvalidFieldError, SignedTransaction, SigningError, Transactions, sign
from client._identity import RequestSigner
from client._keys import ParticipantKey
from node.access import AccessError, Caller, parse_claim, verify_claim
from node.genesis import DEMO_ADMINS
from node.settlement import Registry, Role, decode_body
from tests.gov_helpers import cash_token, new_key
from tests.ledger_helpers import shared_net

NET = shared_net()
G = NET.genesis


def _key(pid: str) -> ParticipantKey:
    return ParticipantKey(pid, NET.participant_keys[pid])


def test_builders_need_k_admins_of_this_genesis() -> None:
    tx = Transactions(G)
    pk = new_key("BANK99").public_key
    built = tx.add_participant("BANK99", pk, ["trader"], 2, admins=["CSD", "COMPLIANCE"])
    assert built.admins == ("COMPLIANCE", "CSD")  # sorted for the body
    for admins in (["CSD"], ["CSD", "BANK01"]):
        with pytest.raises(InvalidFieldError, match="admins"):
            tx.add_participant("BANK99", pk, ["trader"], 2, admins=admins)
    with pytest.raises(InvalidFieldError, match="admins"):
        Transactions(dataclasses.replace(G, admins=(), admin_threshold=0)).set_kyc_tier(
            "BANK01", 1, admins=DEMO_ADMINS
        )


PK = new_key("x").public_key
A = DEMO_ADMINS


@pytest.mark.parametrize(
    ("field", "call"),
    [
        ("participant", lambda t: t.add_participant("BANK01", PK, ["trader"], 2, A)),
        ("participant", lambda t: t.add_participant("has space", PK, ["trader"], 2, A)),
        ("public_key", lambda t: t.add_participant("BANK99", b"\x00" * 32, ["trader"], 2, A)),
        ("roles", lambda t: t.set_roles("BANK01", ["king"], DEMO_ADMINS)),
        ("kyc_tier", lambda t: t.set_kyc_tier("BANK01", 4, DEMO_ADMINS)),
        ("participant", lambda t: t.rotate_key("NOBODY", new_key("x").public_key, DEMO_ADMINS)),
        ("instrument", lambda t: t.add_instrument(cash_token(NET.cash, "USD"), DEMO_ADMINS)),
        ("attestation_sha256", lambda t: t.set_max_supply(NET.cash, 5, b"short", 1, DEMO_ADMINS)),
        ("cap", lambda t: t.set_max_supply(NET.cash, 0, bytes(32), 1, DEMO_ADMINS)),
    ],
)  # fmt: skip
def test_builders_refuse_bad_fields(field: str, call: object) -> None:
    with pytest.raises(InvalidFieldError) as e:
        call(Transactions(G))  # type: ignore[operator]
    assert e.value.field == field


def test_admins_cosign_through_the_json_file() -> None:
    tx = Transactions(G).add_participant(
        "BANK99", new_key("BANK99").public_key, [Role.TRADER], 2, admins=["CSD", "REGULATOR"]
    )
    first = sign(tx, _key("CSD"), genesis=G)
    assert first.missing_signers() == ("REGULATOR",)
    carried = SignedTransaction.loads(json.dumps(first.to_json()))  # another machine
    done = sign(carried, _key("REGULATOR"), genesis=G)
    assert done.missing_signers() == () and decode_body(done.envelope.body) == tx
    with pytest.raises(SigningError, match="not a signer"):
        sign(carried, _key("COMPLIANCE"), genesis=G)


def test_a_client_registry_sees_added_and_rotated_participants() -> None:
    bank = dataclasses.replace(G.participant_by_id["BANK01"], id="BANK99")
    rotated = dataclasses.replace(G.participant_by_id["BANK01"], public_key=new_key("r").public_key)
    reg = Registry.from_values(G, [*G.participants[1:], rotated, bank], G.instruments)
    assert reg.participant("BANK99") == bank and "BANK99" in reg.participant_ids
    assert reg.participant("BANK01") == rotated
    assert reg.participant("CSD") == G.participant_by_id["CSD"]
    # A key check against the registry: the old key no longer matches, the new one does.
    assert not _key("BANK01").matches(reg) and _key("BANK01").matches(G)
    tx = Transactions(G)
    with pytest.raises(InvalidFieldError, match="BANK99"):
        tx.transfer(NET.cash, "BANK01", "BANK99", 5)  # genesis knows no BANK99
    tx.reference = reg
    assert tx.transfer(NET.cash, "BANK01", "BANK99", 5).receiver == "BANK99"


def test_a_request_signed_with_a_rotated_key_is_refused_and_the_new_one_taken() -> None:
    """The node's gate checks a call's identity against the registry at its head."""
    new = new_key("BANK01 rotated")
    rotated = dataclasses.replace(G.participant_by_id["BANK01"], public_key=new.public_key)
    after = Registry.from_values(G, [rotated], G.instruments)
    request = b"\x0a\x06BANK01"

    def claim(key: ParticipantKey, reg: Registry) -> str:
        md = RequestSigner(key, G).metadata("val00", "/ledger.v1.Ledger/GetBalances", request)
        return verify_claim(
            parse_claim(md), reg, "val00", "/ledger.v1.Ledger/GetBalances", request
        ).participant

    assert claim(_key("BANK01"), Registry.at_genesis(G)) == "BANK01"  # control: before
    with pytest.raises(AccessError, match="current key"):
        claim(_key("BANK01"), after)
    assert claim(ParticipantKey("BANK01", new), after) == "BANK01"
    added = dataclasses.replace(rotated, id="BANK99")
    with pytest.raises(AccessError, match="not a participant"):
        claim(ParticipantKey("BANK99", new), Registry.at_genesis(G))
    assert claim(ParticipantKey("BANK99", new), Registry.from_values(G, [added], ())) == "BANK99"


def test_a_reference_holds_only_the_supplies_the_node_showed() -> None:
    """GetReference leaves out a supply the caller may not read (node side:
    test_api_teeth.py); the SDK's ``Reference.supplies`` then has no entry for it, not a
    zero, and a shown zero stays a zero."""
    from client._reference import reference_from_pb
    from node.runtime._api import reference_pb
    from node.store import MemoryStore

    store = MemoryStore(NET.genesis)
    node = dataclasses.make_dataclass("N", ["store"])(store)
    msg = reference_pb(node, Caller("BANK01", observer=False))  # a holder, issuer of none
    assert msg.instruments and not any(i.HasField("supply") for i in msg.instruments)
    assert reference_from_pb(NET.genesis, msg).supplies == {}
    shown = reference_pb(node, Caller("AUDITOR", observer=True))
    supplies = reference_from_pb(NET.genesis, shown).supplies
    assert supplies == {i.id: store.supply(i.id) for i in shown.instruments}
    assert 0 in supplies.values()  # the control: a zero supply shown is kept as zero
