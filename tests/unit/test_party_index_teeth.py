"""The party index (ADR 0025, node/settlement/_parties.py), review 33m: what `make mutate`
found no test held. A party-filtered block must show each participant every position
that names it (a nested participant, a transaction it was added by), a proof of absence
must come from leaves that enclose the caller (a node showing the leaves after it would
hide every transaction of a participant that has a leaf), and registries above 256
participants must prove like small ones. Pure: no node, no store."""

from __future__ import annotations

import dataclasses

import pytest

from node import crypto
from node.invariant import InvariantError
from node.settlement import (
    AddParticipant,
    AttestReserves,
    Bill,
    DecodeError,
    Participant,
    PartyIndex,
    PartyProof,
    PartyProofError,
    Role,
    decode_party_proof,
    raw_names,
    tx_names,
)
from node.settlement._parties import OpenedLeaf, PartyLeaf, PartyRoot, leaf_data
from tests.ledger_helpers import TxFactory, shared_net
from tests.unit.test_party_index import IDS, KEYS, NAMED, OBSERVERS, _check, _proof_bytes

NET = shared_net()


@pytest.fixture(scope="module")
def index() -> PartyIndex:
    return PartyIndex(NAMED, KEYS, IDS, observers=OBSERVERS)


def test_a_party_with_a_leaf_cannot_be_shown_absent_by_the_leaves_after_it(
    index: PartyIndex,
) -> None:
    """BANK01 (leaf 2, positions 0 and 2) "proven absent" by leaves that do not enclose
    it: its right neighbours BANK02 and BANK03 (adjacent, both after it), or the last
    leaf CSD alone. Both lead to the certified root; accepted, the client would take a
    block filtered to the public position as all BANK01 is owed."""
    honest = index.proof("BANK01")
    after = PartyProof(honest.size, honest.public, None, (index._leaf(3), index._leaf(4)))
    last = PartyProof(honest.size, honest.public, None, (index._leaf(honest.size - 1),))
    for forged in (after, last):
        with pytest.raises(PartyProofError, match="does not sort before"):
            _check(index, "BANK01", forged)
    assert _check(index, "BANK01") == (0, 1, 2)  # control: its own leaf


def _big(count: int) -> tuple[PartyIndex, list[str]]:
    keys = [f"BANK{k:04d}" for k in range(count)]
    named = [(frozenset({keys[0], keys[-1]}), False), (frozenset(), True)]
    ids = [crypto.sha256(bytes([i])) for i in range(len(named))]
    return PartyIndex(named, keys, ids, observers=()), keys


@pytest.mark.parametrize("count", [300, 301])
def test_absence_and_presence_prove_alike_in_a_registry_of_300(count: int) -> None:
    """A registry above the integers CPython shares (-5..256; PARTICIPANTS_MAX is
    10,000), of an even and an odd number of leaves: an id added after the block that
    sorts after every key is proven absent by the last leaf alone (no right neighbour
    past the end); ones in the middle, below leaf 256 and above, by their two
    neighbours; the last key's own leaf shows its position."""
    index, keys = _big(count)
    size = index.top.size
    assert size == count + 1
    cases = [("ZZZ", (1,)), ("BANK0150A", (1,)), ("BANK0280A", (1,)), (keys[-1], (0, 1))]
    for party, shown in cases:
        proof = index.proof(party)
        assert (proof.mine is None) == (party not in keys)
        leaf, positions, observer = decode_party_proof(proof.encode()).positions_for(party, 2)
        assert (leaf, positions, observer) == (index.leaf, shown, False)
    assert index.proof("ZZZ").around[0].index == size - 1
    assert index.proof("BANK0280A").around[1].index == 282


def test_a_block_of_300_transactions_has_its_index() -> None:
    """One id per transaction, above the integers CPython shares (BLOCK_TXS_MAX is
    thousands): the index builds and shows each party its positions."""
    named = [(frozenset({"BANK01"} if k % 2 else {"BANK02"}), False) for k in range(300)]
    ids = [crypto.sha256(k.to_bytes(2, "big")) for k in range(300)]
    index = PartyIndex(named, KEYS, ids, observers=())
    assert index.positions("BANK01") == tuple(range(1, 300, 2))
    assert _check_one(index, "BANK02") == tuple(range(0, 300, 2))


def test_a_leaf_of_a_party_sorting_before_the_caller_is_not_the_callers(
    index: PartyIndex,
) -> None:
    """BANK02 shown BANK01's leaf, BANK01 shown AUDITOR's (the other way round from the
    older test): another's positions, and the caller's own hidden. Refused."""
    for caller, other in (("BANK02", "BANK01"), ("BANK01", "AUDITOR")):
        with pytest.raises(PartyProofError, match=f"{other!r}'s, not {caller!r}'s"):
            _check(index, caller, index.proof(other))


def test_a_party_with_a_leaf_cannot_be_shown_absent_by_the_leaves_before_it(
    index: PartyIndex,
) -> None:
    """BANK03 (leaf 4, position 2) "proven absent" by the adjacent leaves BANK01 and
    BANK02, both before it: refused."""
    honest = index.proof("BANK03")
    before = PartyProof(honest.size, honest.public, None, (index._leaf(2), index._leaf(3)))
    with pytest.raises(PartyProofError, match="do not enclose"):
        _check(index, "BANK03", before)
    assert _check(index, "BANK03") == (1, 2)  # control


def test_a_participant_is_shown_the_transaction_that_added_it() -> None:
    """AddParticipant names the new participant inside a nested value (its Participant):
    registered after the block, it has a leaf, and that leaf holds the position."""
    txf = TxFactory(NET)
    key = NET.genesis.participants[0].public_key
    added = Participant("BANK07", key, frozenset({Role.TRADER}), 1)
    tx = AddParticipant(txf.chain_id, txf.nonce, txf.t0 + 60_000, added, ("ADMIN1",))
    assert "BANK07" in tx_names(tx)
    index = PartyIndex([(tx_names(tx), False)], ("ADMIN1", "BANK07"), IDS[:1], observers=())
    assert index.positions("BANK07") == (0,)
    assert _check_one(index, "BANK07") == (0,)


def _check_one(index: PartyIndex, party: str) -> tuple[int, ...]:
    wire = index.proof(party).encode()
    return decode_party_proof(wire).positions_for(party, index.tx_count)[1]


def test_tx_names_walks_tuples_of_nested_values() -> None:
    """A reserve attestation's bills (a tuple of Bill): their strings are named, as
    every string of a body is (a kind added later is covered with no change here)."""
    txf = TxFactory(NET)
    bills = (Bill("912797AB1", "2026-03-01", 5), Bill("912797GL5", "2026-06-01", 7))
    tx = AttestReserves(
        txf.chain_id, txf.nonce, txf.t0 + 60_000, "CASHCO", "USDX", 1, bytes(32), 0, bills
    )
    assert {"CASHCO", "USDX", "912797AB1", "2026-03-01", "912797GL5"} <= tx_names(tx)


def test_an_undecodable_transaction_names_nobody_and_is_not_public() -> None:
    """raw_names of bytes that are no signed transaction: nobody, and not public (a node
    serving an older block works its index out again from raw_names; execution gave
    such a position to nobody, so anything else is another index)."""
    assert raw_names(b"\x00no transaction") == (frozenset(), False)
    index = PartyIndex([raw_names(b"junk")], KEYS, IDS[:1], observers=())
    assert index.positions("BANK01") == ()


def test_the_index_takes_one_id_per_transaction_and_observers_by_name() -> None:
    """One id per position (the secret is over the block's ids), exactly; the observers
    by keyword (keys and observers are both iterables of ids: by position they could be
    swapped unseen); a leaf's digest is a SHA-256."""
    with pytest.raises(InvariantError):
        PartyIndex(NAMED, KEYS, [*IDS, crypto.sha256(b"extra")], observers=())
    with pytest.raises(InvariantError):
        PartyIndex(NAMED, KEYS, IDS[:-1], observers=())
    with pytest.raises(TypeError):
        PartyIndex(NAMED, KEYS, IDS, OBSERVERS)  # type: ignore[misc]
    for key, digest in (("BANK01", bytes(33)), ("BANK01", bytes(31)), ("B" * 65, bytes(32))):
        with pytest.raises(InvariantError):
            leaf_data(key, digest)


def test_a_proof_and_its_parts_cannot_be_changed(index: PartyIndex) -> None:
    """A proof is checked, then its positions used: nothing may change it in between;
    the root a node stores with a block neither (frozen, and slots: no attribute added)."""
    proof = index.proof("BANK01")
    absent = index.proof("BANK04")
    assert proof.mine is not None
    values: list[object] = [proof, proof.mine, absent.around[0], index.top]
    assert [type(v) for v in values] == [PartyProof, OpenedLeaf, PartyLeaf, PartyRoot]
    for value in values:
        field = dataclasses.fields(value)[0].name  # type: ignore[arg-type]
        with pytest.raises(AttributeError):
            setattr(value, field, 0)
        assert not hasattr(value, "__dict__"), type(value).__name__  # slots: no growing


def test_a_proof_of_an_unknown_kind_is_refused_whatever_follows() -> None:
    """Kind 3 followed by a well-formed absence: not a proof (one canonical encoding)."""
    from node.settlement._codec import Writer

    leaf = Writer().u32(1).blob16(b"BANK01", 64).fixed(bytes(32), 32).u8(0).finish()
    assert decode_party_proof(_proof_bytes(2, b"\x01" + leaf)).around  # control
    with pytest.raises(DecodeError, match="unknown party proof kind 3"):
        decode_party_proof(_proof_bytes(3, b"\x01" + leaf))


def _kind_at(proof: PartyProof) -> int:
    """Where a proof's kind byte is: after its size and its public leaf."""
    public = proof.public
    return 4 + 4 + 32 + 4 + 4 * len(public.positions) + 1 + 32 * len(public.path)


def test_a_proofs_kind_byte_is_1_for_a_leaf_and_2_for_an_absence(index: PartyIndex) -> None:
    """The wire format nodes and SDKs of every version share: a proof showing the caller's
    leaf has kind 1, one of absence 2; kind 0 (or any other) is no proof, even followed
    by a well-formed leaf."""
    for party, kind in (("BANK01", 1), ("BANK04", 2)):
        proof = index.proof(party)
        wire = proof.encode()
        at = _kind_at(proof)
        assert wire[at] == kind
        for other in (0, 3):
            with pytest.raises(DecodeError, match=f"unknown party proof kind {other}"):
                decode_party_proof(wire[:at] + bytes([other]) + wire[at + 1 :])


def test_a_caller_id_that_is_not_ascii_is_refused_as_a_proof_error(index: PartyIndex) -> None:
    """``positions_for`` fails only with PartyProofError (the SDK's BadResponseError), for
    a caller id that is no participant id too: empty, or not ASCII."""
    proof = decode_party_proof(index.proof("BANK04").encode())
    for party in ("", "BANKÉ", "BANK01É"):
        with pytest.raises(PartyProofError, match="not a participant id"):
            proof.positions_for(party, len(NAMED))
