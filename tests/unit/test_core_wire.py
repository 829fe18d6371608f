"""Wire encoding of consensus messages: round trips, canonical form, hostile input.

The decoder faces bytes from any peer, so every test that feeds it garbage goes through
``_decode_or_reject``: it either gets a message whose re-encoding is byte-identical, or a
``DecodeError``. Any other exception (IndexError, struct.error, UnicodeDecodeError...)
fails the test.
"""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import codec as shared_codec
from node.config import (
    BLOCK_WIRE_BYTES_MAX,
    CATCHUP_BATCH_BLOCKS_MAX,
    CONSENSUS_MESSAGE_BYTES_MAX,
    SIGNATURE_BYTES_MAX,
    TX_BYTES_MAX,
    TX_FORWARD_BATCH_MAX,
    VALIDATORS_MAX,
)
from node.core import (
    Block,
    DecodeError,
    EncodeError,
    Message,
    NewView,
    Phase,
    Proposal,
    QCMessage,
    QuorumCert,
    SyncRequest,
    SyncResponse,
    Timeout,
    TimeoutCert,
    TimeoutEntry,
    TxForward,
    Vote,
    decode_block,
    decode_message,
    encode_block,
    encode_message,
    encode_qc,
)
from node.core.types import QC_BYTES_MAX
from node.settlement import DecodeError as SettlementDecodeError

U64 = st.integers(0, 2**64 - 1)
U32 = st.integers(0, 2**32 - 1)
HASH = st.binary(min_size=32, max_size=32)
SIG = st.binary(max_size=SIGNATURE_BYTES_MAX)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_reject(data: bytes) -> Message | None:
    """None for a DecodeError; otherwise the message, after checking it re-encodes to data."""
    try:
        msg = decode_message(data)
    except DecodeError:
        return None
    assert encode_message(msg) == data, "decoded bytes are not the canonical encoding"
    return msg


# --- strategies ------------------------------------------------------------------------


@st.composite
def blocks(draw: st.DrawFn) -> Block:
    height = draw(st.integers(1, 2**64 - 1))
    return Block(
        draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)),
        height,
        draw(U64),
        draw(HASH),
        draw(U32),
        draw(U64),
        height - 1,
        draw(HASH),
        draw(HASH),
        tuple(draw(st.lists(st.binary(max_size=48), max_size=4))),
    )


QCS = st.builds(
    QuorumCert,
    st.sampled_from(Phase),
    U64,
    U64,
    HASH,
    st.lists(st.tuples(U32, SIG), max_size=4).map(tuple),
)
ENTRIES = st.builds(TimeoutEntry, U32, U64, st.none() | U64, SIG)
TCS = st.builds(
    TimeoutCert, U64, st.lists(ENTRIES, max_size=4).map(tuple), st.none() | QCS, st.none() | QCS
)
LOCKS = st.none() | st.tuples(QCS, blocks())

MESSAGES: dict[str, st.SearchStrategy[Message]] = {
    "proposal": st.builds(Proposal, U64, blocks(), st.none() | QCS, st.none() | TCS),
    "vote": st.builds(Vote, st.sampled_from(Phase), U64, U64, HASH, U32, SIG),
    "qc": st.builds(QCMessage, QCS),
    "timeout": st.builds(
        lambda view, height, cert, lock, voter, sig: Timeout(
            view, height, cert, lock and lock[0], lock and lock[1], voter, sig
        ),
        U64,
        U64,
        st.none() | QCS,
        LOCKS,
        U32,
        SIG,
    ),
    "new-view": st.builds(NewView, TCS),
    "tx-forward": st.builds(TxForward, st.lists(st.binary(max_size=64), max_size=8).map(tuple)),
    "sync-request": st.builds(SyncRequest, U64, st.integers(0, CATCHUP_BATCH_BLOCKS_MAX)),
    "sync-response": st.builds(
        SyncResponse, st.lists(st.tuples(blocks(), QCS), max_size=3).map(tuple)
    ),
}
ANY_MESSAGE = st.one_of(*MESSAGES.values())


# --- fixed examples, every optional part present or absent -------------------------------


def _block(height: int = 2, txs: tuple[bytes, ...] = (b"tx-a", b"tx-b")) -> Block:
    return Block(
        "chain", height, 3, bytes(range(32)), 1, 1_000, height - 1, bytes(32), bytes(32), txs
    )


QC = QuorumCert(Phase.COMMIT, 3, 1, bytes(range(32)), ((0, b"s" * 64), (2, b"t" * 64)))
PQC = replace(QC, phase=Phase.PREPARE, height=2)
TC = TimeoutCert(
    4, (TimeoutEntry(0, 1, None, b"a" * 64), TimeoutEntry(1, 1, 3, b"b" * 64)), QC, PQC
)
TC_BARE = TimeoutCert(4, (TimeoutEntry(0, 0, None, b"a" * 64),))
EXAMPLES: dict[str, Message] = {
    "proposal-full": Proposal(5, _block(), QC, TC),
    "proposal-bare": Proposal(0, _block(1), None, None),
    "vote": Vote(Phase.PREPARE, 5, 2, bytes(32), 3, b"v" * 64),
    "qc": QCMessage(QC),
    "timeout-locked": Timeout(5, 1, QC, PQC, _block(), 2, b"w" * 64),
    "timeout-unlocked": Timeout(5, 0, None, None, None, 2, b"w" * 64),
    "new-view": NewView(TC),
    "new-view-bare": NewView(TC_BARE),
    "tx-forward": TxForward((b"x", b"", b"yz")),
    "sync-request": SyncRequest(7, CATCHUP_BATCH_BLOCKS_MAX),
    "sync-response": SyncResponse(((_block(), QC), (_block(3), QC))),
}


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MESSAGES))
@FAST
@given(data=st.data())
def test_every_message_type_round_trips_canonically(kind: str, data: st.DataObject) -> None:
    msg = data.draw(MESSAGES[kind])
    wire = encode_message(msg)
    again = decode_message(wire)
    assert again == msg and type(again) is type(msg)
    assert encode_message(again) == wire


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_round_trip_and_keep_block_hashes(name: str) -> None:
    msg = EXAMPLES[name]
    again = decode_message(encode_message(msg))
    assert again == msg
    if isinstance(msg, Proposal) and isinstance(again, Proposal):
        assert again.block.hash == msg.block.hash


def test_message_at_the_limits_round_trips() -> None:
    full = TxForward(tuple(bytes([i % 256]) * TX_BYTES_MAX for i in range(TX_FORWARD_BATCH_MAX)))
    assert decode_message(encode_message(full)) == full
    many = QuorumCert(Phase.COMMIT, 1, 1, bytes(32), tuple((i, b"s" * 64) for i in range(1000)))
    assert decode_message(encode_message(QCMessage(many))) == QCMessage(many)


# --- hostile input -----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=256)
    | st.tuples(st.integers(0, 9), st.binary()).map(lambda t: bytes([t[0]]) + t[1])
)
def test_random_bytes_decode_canonically_or_raise_decode_error(data: bytes) -> None:
    _decode_or_reject(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_MESSAGE, st.data())
def test_mutated_encodings_decode_canonically_or_raise_decode_error(
    msg: Message, data: st.DataObject
) -> None:
    wire = bytearray(encode_message(msg))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(wire)))
        how = data.draw(st.sampled_from(["flip", "delete", "insert", "cut"]))
        if how == "flip" and at < len(wire):
            wire[at] ^= data.draw(st.integers(1, 255))
        elif how == "delete":
            del wire[at : at + data.draw(st.integers(1, 8))]
        elif how == "insert":
            wire[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del wire[at:]
    _decode_or_reject(bytes(wire))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_truncation_and_any_trailing_byte_is_rejected(name: str) -> None:
    wire = encode_message(EXAMPLES[name])
    for cut in range(len(wire)):
        with pytest.raises(DecodeError):
            decode_message(wire[:cut])
    for extra in (b"\x00", b"\x01", b"\xff" * 9):
        with pytest.raises(DecodeError, match="trailing"):
            decode_message(wire + extra)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_flipped_tag_is_rejected(name: str) -> None:
    wire = encode_message(EXAMPLES[name])
    for tag in range(256):
        if tag != wire[0]:
            with pytest.raises(DecodeError):
                decode_message(bytes([tag]) + wire[1:])
    for tag in (0, 9, 255):
        with pytest.raises(DecodeError, match="unknown message tag"):
            decode_message(bytes([tag]) + wire[1:])


def _presence_cases() -> dict[str, tuple[Message, int]]:
    after_block = 1 + 8 + 4 + len(encode_block(_block()))  # tag, view, blob(block)
    full, bare = EXAMPLES["proposal-full"], EXAMPLES["proposal-bare"]
    return {
        "proposal parent_cert": (full, after_block),
        "proposal tc": (full, after_block + 1 + 4 + len(encode_qc(QC))),
        "proposal tc (bare)": (bare, after_block + 1),  # parent_cert absent
        "timeout commit_cert": (EXAMPLES["timeout-unlocked"], 1 + 16),
        "timeout high_pqc": (EXAMPLES["timeout-unlocked"], 1 + 16 + 1),
        "timeout pqc_block": (EXAMPLES["timeout-unlocked"], 1 + 16 + 2),
        "timeout entry pqc_view": (EXAMPLES["new-view"], 1 + 8 + 2 + 4 + 8),
        "tc high_commit": (EXAMPLES["new-view-bare"], 1 + 8 + 2 + 12 + 1 + 2 + 64),
        "tc high_lock": (EXAMPLES["new-view-bare"], 1 + 8 + 2 + 12 + 1 + 2 + 64 + 1),
    }


@pytest.mark.parametrize("name", sorted(_presence_cases()))
def test_a_presence_byte_other_than_0_or_1_is_rejected(name: str) -> None:
    msg, offset = _presence_cases()[name]
    wire = encode_message(msg)
    assert wire[offset] in (0, 1)
    for bad in (2, 0x80, 0xFF):
        with pytest.raises(DecodeError, match="presence"):
            decode_message(wire[:offset] + bytes([bad]) + wire[offset + 1 :])


def _u32(n: int) -> bytes:
    return struct.pack(">I", n)


def _u16(n: int) -> bytes:
    return struct.pack(">H", n)


def _qc_bytes(signatures: int, sig_len: int = 0, phase: int = Phase.COMMIT) -> bytes:
    head = struct.pack(">BQQ32sH", phase, 1, 1, bytes(32), signatures)
    return head + (struct.pack(">IH", 0, sig_len) + b"s" * sig_len) * signatures


OVERSIZE = {
    "tx-forward count": b"\x06" + _u32(TX_FORWARD_BATCH_MAX + 1) + _u32(0) * 1_001,
    "tx-forward count 2^32-1": b"\x06" + _u32(2**32 - 1),
    "tx too large": b"\x06" + _u32(1) + _u32(TX_BYTES_MAX + 1) + b"x" * (TX_BYTES_MAX + 1),
    "sync-request count": b"\x07" + bytes(8) + _u32(CATCHUP_BATCH_BLOCKS_MAX + 1),
    "sync-response count": b"\x08" + _u32(CATCHUP_BATCH_BLOCKS_MAX + 1),
    "timeout-cert entries": b"\x05" + bytes(8) + _u16(VALIDATORS_MAX + 1),
    "qc signatures": b"\x03"
    + _u32(len(_qc_bytes(VALIDATORS_MAX + 1)))
    + _qc_bytes(VALIDATORS_MAX + 1),
    "qc signature length": b"\x03" + _u32(len(_qc_bytes(1, 129))) + _qc_bytes(1, 129),
    "vote signature length": b"\x02"
    + struct.pack(">BQQ32sIH", 1, 0, 0, bytes(32), 0, 129)
    + b"s" * 129,
    "whole message": b"\x06" + bytes(CONSENSUS_MESSAGE_BYTES_MAX),
}


@pytest.mark.parametrize("name", sorted(OVERSIZE))
def test_counts_and_lengths_over_the_limits_are_rejected(name: str) -> None:
    with pytest.raises(DecodeError, match=r"limit|exceeds|too long"):
        decode_message(OVERSIZE[name])


def test_unknown_phase_and_invalid_utf8_chain_id_are_decode_errors() -> None:
    vote = bytearray(encode_message(EXAMPLES["vote"]))
    for phase in (0, 4, 255):
        vote[1] = phase
        with pytest.raises(DecodeError, match="phase"):
            decode_message(bytes(vote))
    qc = b"\x03" + _u32(len(_qc_bytes(0, phase=9))) + _qc_bytes(0, phase=9)
    with pytest.raises(DecodeError, match="phase"):
        decode_message(qc)
    wire = encode_message(EXAMPLES["proposal-bare"])
    chain_at = wire.index(b"chain")
    bad = wire[:chain_at] + b"\xff\xfe" + wire[chain_at + 2 :]
    with pytest.raises(DecodeError, match="UTF-8"):
        decode_message(bad)
    with pytest.raises(DecodeError, match="UTF-8"):
        decode_block(bad[1 + 8 + 4 : -3])


# --- the encoder refuses what a peer would reject -------------------------------------


def _big_sync_response() -> SyncResponse:
    # Two committed blocks of ~3.2 MB: a catch-up answer that cannot fit one message.
    txs = tuple(bytes([i % 256]) * 4_000 for i in range(800))
    return SyncResponse(((_block(2, txs), QC), (_block(3, txs), QC)))


OVER_LIMIT = {
    "response over CONSENSUS_MESSAGE_BYTES_MAX": _big_sync_response,
    "forward count": lambda: TxForward((b"",) * (TX_FORWARD_BATCH_MAX + 1)),
    "forward tx size": lambda: TxForward((b"x" * (TX_BYTES_MAX + 1),)),
    "request count": lambda: SyncRequest(1, CATCHUP_BATCH_BLOCKS_MAX + 1),
    "response count": lambda: SyncResponse(((_block(), QC),) * (CATCHUP_BATCH_BLOCKS_MAX + 1)),
    "qc signatures": lambda: QCMessage(
        QuorumCert(Phase.COMMIT, 1, 1, bytes(32), ((0, b""),) * (VALIDATORS_MAX + 1))
    ),
    "tc entries": lambda: NewView(
        TimeoutCert(1, (TimeoutEntry(0, 0, None, b""),) * (VALIDATORS_MAX + 1))
    ),
    "vote signature": lambda: Vote(Phase.PREPARE, 0, 1, bytes(32), 0, b"s" * 129),
    "vote hash": lambda: Vote(Phase.PREPARE, 0, 1, bytes(31), 0, b"s"),
    "qc hash": lambda: QCMessage(replace(QC, block_hash=bytes(33))),
    "negative view": lambda: Vote(Phase.PREPARE, -1, 1, bytes(32), 0, b"s"),
    "negative pqc_view": lambda: NewView(TimeoutCert(1, (TimeoutEntry(0, 0, -1, b""),))),
}


@pytest.mark.parametrize("name", sorted(OVER_LIMIT))
def test_encoder_raises_encode_error_for_what_a_peer_would_reject(name: str) -> None:
    with pytest.raises(EncodeError):
        encode_message(OVER_LIMIT[name]())


def test_every_signature_the_encoder_writes_is_bounded_as_the_decoder_bounds_it() -> None:
    """node/core/codec.py: ``sig`` is at most SIGNATURE_BYTES_MAX bytes, and every limit the
    decoder enforces the encoder enforces too: a vote's, a timeout's and each timeout
    certificate entry's signature, not only the vote's."""
    big = b"s" * (SIGNATURE_BYTES_MAX + 1)
    ok = b"s" * SIGNATURE_BYTES_MAX
    for make in (
        lambda sig: Vote(Phase.PREPARE, 0, 1, bytes(32), 0, sig),
        lambda sig: Timeout(5, 0, None, None, None, 1, sig),
        lambda sig: NewView(TimeoutCert(1, (TimeoutEntry(0, 0, None, sig),))),
        lambda sig: Proposal(5, _block(), None, TimeoutCert(4, (TimeoutEntry(0, 0, 2, sig),))),
    ):
        assert decode_message(encode_message(make(ok))) == make(ok)
        with pytest.raises(EncodeError):
            encode_message(make(big))


def test_an_unknown_phase_or_a_value_that_is_no_message_is_an_encode_error() -> None:
    """node/core/codec.py: the encoder raises EncodeError for a message a peer would reject
    (a vote's phase is one of Phase, as the decoder checks), and for anything that is not a
    consensus message at all, rather than sending bytes or nothing."""
    for phase in (0, 4, 255):
        with pytest.raises(EncodeError, match="phase"):
            encode_message(Vote(phase, 0, 1, bytes(32), 0, b"s"))  # type: ignore[arg-type]
    for value in ("vote", None, _block()):
        with pytest.raises(EncodeError, match="not a consensus message"):
            encode_message(value)  # type: ignore[arg-type]


def test_a_message_of_exactly_the_limit_encodes_and_one_byte_more_does_not() -> None:
    """node/core/codec.py: a message is at most CONSENSUS_MESSAGE_BYTES_MAX bytes, the
    decoder's bound; the encoder's is the same, to the byte (a message one byte over would
    be built, sent and refused by every peer)."""

    def response(txs_b: tuple[bytes, ...]) -> SyncResponse:
        txs_a = tuple(bytes([i % 256]) * 4_000 for i in range(640))
        return SyncResponse(((_block(2, txs_a), QC), (_block(3, txs_b), QC)))

    txs = [bytes(4_000)] * 640
    gap = CONSENSUS_MESSAGE_BYTES_MAX - len(encode_message(response(tuple(txs))))
    while gap > 4 + TX_BYTES_MAX:
        txs.append(bytes(4_000))
        gap -= 4 + 4_000
    txs.append(bytes(gap - 4))  # a blob: u32 length then the bytes
    exact = response(tuple(txs))
    wire = encode_message(exact)
    assert len(wire) == CONSENSUS_MESSAGE_BYTES_MAX
    assert decode_message(wire) == exact
    with pytest.raises(EncodeError, match="CONSENSUS_MESSAGE_BYTES_MAX"):
        encode_message(response((*txs[:-1], txs[-1] + b"x")))


LOOSE_INT = st.integers(-1, 2**64)
LOOSE_SIG = st.binary(max_size=SIGNATURE_BYTES_MAX + 2)
LOOSE_HASH = st.binary(min_size=31, max_size=33)
LOOSE_MESSAGES = st.one_of(
    st.builds(Vote, st.sampled_from(Phase), LOOSE_INT, LOOSE_INT, LOOSE_HASH, LOOSE_INT, LOOSE_SIG),
    st.builds(
        QCMessage,
        st.builds(
            QuorumCert,
            st.sampled_from(Phase),
            LOOSE_INT,
            LOOSE_INT,
            LOOSE_HASH,
            st.lists(st.tuples(LOOSE_INT, LOOSE_SIG), max_size=3).map(tuple),
        ),
    ),
    st.builds(
        NewView,
        st.builds(
            TimeoutCert,
            LOOSE_INT,
            st.lists(
                st.builds(TimeoutEntry, LOOSE_INT, LOOSE_INT, st.none() | LOOSE_INT, LOOSE_SIG),
                max_size=3,
            ).map(tuple),
        ),
    ),
)


@FAST
@given(LOOSE_MESSAGES)
def test_encode_either_raises_encode_error_or_round_trips(msg: Message) -> None:
    try:
        wire = encode_message(msg)
    except EncodeError:
        return
    assert decode_message(wire) == msg


def test_the_largest_proposal_and_timeout_fit_one_message() -> None:
    # Every message the replica builds must fit, except a catch-up response of big blocks.
    qc = 4 + QC_BYTES_MAX
    tc = 8 + 2 + VALIDATORS_MAX * (4 + 8 + 9 + 2 + SIGNATURE_BYTES_MAX)
    proposal = 1 + 8 + 4 + BLOCK_WIRE_BYTES_MAX + 3 + 2 * qc + tc
    timeout = 1 + 16 + 2 + qc + 4 + BLOCK_WIRE_BYTES_MAX + 4 + 2 + SIGNATURE_BYTES_MAX
    assert max(proposal, timeout) <= CONSENSUS_MESSAGE_BYTES_MAX


# --- the shared reader -------------------------------------------------------------------


def test_each_package_keeps_its_own_decode_error_under_one_base() -> None:
    assert issubclass(DecodeError, shared_codec.DecodeError)
    assert issubclass(SettlementDecodeError, shared_codec.DecodeError)
    assert not issubclass(DecodeError, SettlementDecodeError)
    assert not issubclass(SettlementDecodeError, DecodeError)
    r = shared_codec.Reader(b"\x01\x02")
    assert r.flag() is True
    with pytest.raises(shared_codec.DecodeError, match="presence"):
        r.flag()
    with pytest.raises(shared_codec.DecodeError, match="truncated"):
        shared_codec.Reader(b"").take(-1)
