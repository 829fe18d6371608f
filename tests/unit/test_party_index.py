"""A block's party index (ADR 0025, node/settlement/_parties.py): what it commits to, the
proofs it gives (a party's leaf, the leaves around an id it has no leaf for, the public
leaf), their checks, and their codec's refusals. Pure: no node, no store."""

from __future__ import annotations

import dataclasses

import pytest

from node import crypto, tags
from node.config import BLOCK_TXS_MAX, ID_BYTES_MAX, MERKLE_PATH_LEN_MAX
from node.settlement import (
    DecodeError,
    PartyIndex,
    PartyProof,
    PartyProofError,
    decode_party_proof,
    tx_names,
)
from node.settlement._codec import Writer
from node.settlement._parties import PartyLeaf, leaf_data, positions_digest
from tests.ledger_helpers import TxFactory, shared_net

NET = shared_net()
KEYS = ("AUDITOR", "BANK01", "BANK02", "BANK03", "BANK05", "CSD")
OBSERVERS = ("AUDITOR", "BANK99")  # BANK99: an observer added after the block, no key here
# positions: 0 BANK01/BANK02, 1 public (a coupon), 2 BANK03/BANK01, 3 undecodable, 4 BANK02
NAMED = [
    (frozenset({"BANK01", "BANK02", "US0000000000"}), False),
    (frozenset({"TREASURY"}), True),
    (frozenset({"BANK03", "BANK01", ""}), False),  # "": an empty cosigner, never a key
    (frozenset(), False),
    (frozenset({"BANK02", "BANK99"}), False),  # BANK99: not registered after the block
]
IDS = [crypto.sha256(bytes([i])) for i in range(len(NAMED))]


@pytest.fixture(scope="module")
def index() -> PartyIndex:
    return PartyIndex(NAMED, KEYS, IDS, observers=OBSERVERS)


def _proven(
    index: PartyIndex, party: str, proof: PartyProof | None
) -> tuple[tuple[int, ...], bool]:
    wire = (proof or index.proof(party)).encode()
    leaf, positions, observer = decode_party_proof(wire).positions_for(party, len(NAMED))
    assert leaf == index.leaf
    return positions, observer


def _check(index: PartyIndex, party: str, proof: PartyProof | None = None) -> tuple[int, ...]:
    """What the proof (by default the index's own, through its encoding) shows ``party``,
    after checking its leaf is the index's own."""
    return _proven(index, party, proof)[0]


def test_each_party_is_shown_its_positions_and_the_public_ones(index: PartyIndex) -> None:
    assert _check(index, "BANK01") == index.positions("BANK01") == (0, 1, 2)
    assert _check(index, "BANK02") == (0, 1, 4)
    assert _check(index, "BANK03") == (1, 2)


def test_a_registered_party_with_no_trade_gets_its_empty_leaf(index: PartyIndex) -> None:
    proof = index.proof("BANK05")
    assert proof.mine is not None and proof.mine.positions == ()
    assert _check(index, "BANK05") == (1,)  # the public one only


@pytest.mark.parametrize("party", ["BANK99", "AAA", "ZZZ", "BANK04"])
def test_an_id_with_no_leaf_is_proven_absent_by_its_two_neighbours(
    index: PartyIndex, party: str
) -> None:
    """BANK99 named at position 4 but added later; AAA before every key (its left
    neighbour is the public leaf); ZZZ after every key (the last leaf, no right one)."""
    proof = index.proof(party)
    assert proof.mine is None and 1 <= len(proof.around) <= 2
    assert _check(index, party) == (1,)


def test_a_party_that_has_a_leaf_cannot_be_shown_absent(index: PartyIndex) -> None:
    """Forged absences of BANK01 (positions 0 and 2): its neighbours with a gap between
    them, a neighbour moved next to the other, its left neighbour alone, the absence
    proofs of the ids just after and just before it, and BANK01's own leaf emptied or
    cut."""
    honest = index.proof("BANK01")
    around = index.proof("BANK00")  # AUDITOR, BANK01: encloses BANK00, not BANK01
    left, right = index._leaf(1), index._leaf(3)  # AUDITOR and BANK02 (BANK01 is leaf 2)
    moved = dataclasses.replace(right, index=2)
    forged = [
        PartyProof(honest.size, honest.public, None, (left, right)),
        PartyProof(honest.size, honest.public, None, (left, moved)),
        PartyProof(honest.size, honest.public, None, (left,)),  # "the last leaf"
        index.proof("BANK015"),  # BANK01, BANK02: encloses BANK015, not BANK01
        around,
        dataclasses.replace(honest, mine=dataclasses.replace(honest.mine, positions=())),  # type: ignore[arg-type]
        dataclasses.replace(honest, mine=dataclasses.replace(honest.mine, positions=(0,))),  # type: ignore[arg-type]
    ]
    for proof in forged:
        with pytest.raises(PartyProofError):
            _check(index, "BANK01", proof)


def test_another_partys_leaf_or_a_hidden_public_position_is_refused(index: PartyIndex) -> None:
    mine, public = index.proof("BANK02"), index.proof("BANK01").public
    with pytest.raises(PartyProofError, match="BANK02"):
        _check(index, "BANK01", mine)
    no_public = dataclasses.replace(public, positions=())
    with pytest.raises(PartyProofError):
        _check(index, "BANK01", dataclasses.replace(index.proof("BANK01"), public=no_public))


def test_a_smaller_size_cannot_drop_a_right_neighbour(index: PartyIndex) -> None:
    """Forged: BANK05 (leaf 5 of 7) shown absent by BANK03 (leaf 4) claimed to be the last
    leaf of a tree of 5. The index's size is committed with its root, and no path makes a
    leaf of 7 the last of 5: refused, or at best another leaf than the certified one."""
    honest = index.proof("BANK05")
    assert honest.size == 7
    forged = PartyProof(5, honest.public, None, (index._leaf(4),))
    try:
        leaf, _, _ = forged.positions_for("BANK05", len(NAMED))
    except PartyProofError:
        return
    assert leaf != index.leaf


def test_positions_past_the_block_or_out_of_order_are_refused(index: PartyIndex) -> None:
    proof = index.proof("BANK01")
    with pytest.raises(PartyProofError, match="past the block"):
        proof.positions_for("BANK01", 2)  # position 2 in a block of 2
    for bad in ((2, 0), (0, 0, 2)):
        mine = dataclasses.replace(proof.mine, positions=bad)  # type: ignore[arg-type]
        with pytest.raises(PartyProofError):
            dataclasses.replace(proof, mine=mine).positions_for("BANK01", len(NAMED))


def test_the_index_commits_to_the_block_its_ids_and_the_keys() -> None:
    """Another id (another block's secret, so other salts), another key set or another
    position gives another leaf: the salts hide positions from the neighbours, not from
    the certificate."""
    obs = {"observers": OBSERVERS}
    base = PartyIndex(NAMED, KEYS, IDS, **obs).leaf
    assert PartyIndex(NAMED, KEYS, [*IDS[:-1], crypto.sha256(b"other")], **obs).leaf != base
    assert PartyIndex(NAMED, (*KEYS, "BANK98"), IDS, **obs).leaf != base
    moved = [NAMED[1], NAMED[0], *NAMED[2:]]
    assert PartyIndex(moved, KEYS, IDS, **obs).leaf != base
    assert PartyIndex((), KEYS, (), **obs).leaf != base  # no transactions: the empty tree's


def test_the_index_commits_to_who_was_an_observer_and_the_proof_reports_it(
    index: PartyIndex,
) -> None:
    """Each participant's leaf commits to whether it held an observer role after the block
    (ADR 0025, amendment "observers"): its client reads whole blocks then, and learns
    that from the certified index rather than from one node's reference data. The flag
    is reported by ``positions_for``; an id with no leaf (BANK99, added later, an
    observer now) was no observer then. A proof with the flag flipped, either way, does
    not lead to the index's root; the flag changes the root the certificate covers; a
    flag byte other than 0 or 1 does not decode."""
    assert _proven(index, "AUDITOR", None) == ((1,), True)
    assert _proven(index, "BANK01", None) == ((0, 1, 2), False)
    assert _proven(index, "BANK99", None) == ((1,), False)
    assert index.observer("AUDITOR") and not index.observer("BANK01")
    assert not index.observer("BANK99") and not index.observer("")
    for party in ("AUDITOR", "BANK01"):
        honest = index.proof(party)
        assert honest.mine is not None
        flipped = dataclasses.replace(honest.mine, observer=not honest.mine.observer)
        with pytest.raises(PartyProofError, match="does not lead"):
            _check(index, party, dataclasses.replace(honest, mine=flipped))
    assert PartyIndex(NAMED, KEYS, IDS, observers=()).leaf != index.leaf
    assert PartyIndex(NAMED, KEYS, IDS, observers=("BANK01", *OBSERVERS)).leaf != index.leaf
    assert not PartyIndex((), KEYS, (), observers=OBSERVERS).observer("AUDITOR")  # no index
    wire = _encoded(index, "AUDITOR")
    at = wire.index(b"AUDITOR") + len(b"AUDITOR")  # the flag follows the caller's key
    assert wire[at] == 1
    with pytest.raises(DecodeError, match="not 0 or 1"):
        decode_party_proof(wire[:at] + b"\x02" + wire[at + 1 :])


def test_a_neighbours_positions_are_not_in_its_proof(index: PartyIndex) -> None:
    """What BANK05 is shown of its neighbours: hashes only, none its positions' digest
    with a salt BANK05 could compute (its own salt is not theirs)."""
    proof = index.proof("BANK05")
    assert proof.mine is not None
    for other in ("BANK03", "CSD"):
        assert index._salts[other] != proof.mine.salt  # type: ignore[attr-defined]
    assert b"BANK03" not in proof.encode() and b"CSD" not in proof.encode()


def test_tx_names_takes_every_field_nested_or_not() -> None:
    txf = TxFactory(NET)
    dvp = txf.dvp("BANK01", "BANK02")
    assert {"BANK01", "BANK02", dvp.bond, dvp.cash} <= tx_names(dvp)
    assert NET.genesis.chain_id not in tx_names(dvp)


# --- the codec: every malformed proof is the settlement codec's DecodeError ---------------


def _encoded(index: PartyIndex, party: str) -> bytes:
    return index.proof(party).encode()


def test_a_proof_round_trips_byte_for_byte(index: PartyIndex) -> None:
    for party in ("BANK01", "BANK05", "BANK99", "ZZZ"):
        wire = _encoded(index, party)
        assert decode_party_proof(wire).encode() == wire


@pytest.mark.parametrize("party", ["BANK01", "BANK99"])
def test_a_truncated_or_extended_proof_is_refused(index: PartyIndex, party: str) -> None:
    wire = _encoded(index, party)
    for cut in range(len(wire)):
        with pytest.raises(DecodeError):
            decode_party_proof(wire[:cut])
    with pytest.raises(DecodeError, match="trailing"):
        decode_party_proof(wire + b"\x00")


def _proof_bytes(kind: int, tail: bytes) -> bytes:
    """A proof of size 2 with an empty public leaf, then ``kind`` and ``tail``."""
    w = Writer().u32(2).u32(0).fixed(bytes(32), 32).u32(0).u8(0).u8(kind)
    return w.finish() + tail


def test_a_malformed_proof_is_refused_with_the_codecs_error() -> None:
    leaf = Writer().u32(1).blob16(b"BANK01", 64).fixed(bytes(32), 32).u8(0).finish()
    cases = {
        "unknown kind": _proof_bytes(3, b""),
        "no neighbour": _proof_bytes(2, b"\x00"),
        "three neighbours": _proof_bytes(2, b"\x03" + leaf * 3),
        "a non-ASCII key": _proof_bytes(
            2, b"\x01" + Writer().u32(1).blob16(b"BANK\xe9", 64).finish() + bytes(33)
        ),
        "a key past the id limit": _proof_bytes(
            2, b"\x01" + Writer().u32(1).u16(65).finish() + b"A" * 65 + bytes(33)
        ),
        "a path past the limit": Writer()
        .u32(2)
        .u32(0)
        .fixed(bytes(32), 32)
        .u32(0)
        .u8(MERKLE_PATH_LEN_MAX + 1)
        .finish()
        + bytes(32) * (MERKLE_PATH_LEN_MAX + 1),
        "positions past the limit": Writer()
        .u32(2)
        .u32(0)
        .fixed(bytes(32), 32)
        .u32(BLOCK_TXS_MAX + 1)
        .finish(),
    }
    for why, data in cases.items():
        with pytest.raises(DecodeError):
            decode_party_proof(data)
        assert why  # (the case's name, for a reader of a failure)
    # control: the same layout, well formed, decodes
    assert decode_party_proof(_proof_bytes(2, b"\x01" + leaf)).around == (
        PartyLeaf(1, "BANK01", bytes(32), ()),
    )


@pytest.mark.parametrize(
    ("key", "positions", "observer"),
    [("", (), False), ("BANK01", (0, 2), False), ("AUDITOR", (), True), ("B" * 64, (7,), True)],
)
def test_the_leaf_encodings_are_the_codecs(
    key: str, positions: tuple[int, ...], observer: bool
) -> None:
    """``leaf_data`` and ``positions_digest`` encode with struct directly (session 20: a
    third of an index's build went to the codec's calls); the bytes are the settlement
    codec's, field by field, as docs/adr/0025 states them."""
    salt, digest = crypto.sha256(b"salt"), crypto.sha256(b"digest")
    w = Writer().flag(observer).u32(len(positions))
    for p in positions:
        w.u32(p)
    assert positions_digest(salt, positions, observer) == crypto.sha256(
        tags.PARTY_POSITIONS, salt, w.finish()
    )
    leaf = Writer().raw(tags.PARTY_LEAF).blob16(key.encode(), ID_BYTES_MAX)
    assert leaf_data(key, digest) == leaf.fixed(digest, crypto.HASH_LEN).finish()
