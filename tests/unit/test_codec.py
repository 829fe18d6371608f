"""Every binary decoder in the node fails one way: ``node.codec.DecodeError``.

One table lists every decoder (consensus messages, blocks, headers, certificates, the
safety state, transactions, stored records) with a valid encoding. Each is then fed its
every truncation, a trailing byte, over-limit lengths and bad tags, and fuzzed a little
(hypothesis, CI profile): it must return a value or raise DecodeError, never
``struct.error``, ``IndexError``, ``AssertionError`` or ``UnicodeDecodeError``, and never
accept the hostile cases. The checker itself is shown to fire on a decoder that leaks
``struct.error`` (the old safety-state decoder did) and on one that accepts trailing bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import codec, tags
from node.config import (
    BLOCK_RESULTS_MAX,
    BLOCK_WIRE_BYTES_MAX,
    CHAIN_ID_BYTES_MAX,
    SIGNATURE_BYTES_MAX,
    SIGNERS_PER_TX_MAX,
    TX_BYTES_MAX,
    U64_MAX,
    VALIDATORS_MAX,
)
from node.core import (
    Block,
    NewView,
    Phase,
    Proposal,
    QuorumCert,
    SafetyOwner,
    SafetyState,
    TimeoutCert,
    TimeoutEntry,
    TxForward,
    Vote,
    decode_block,
    decode_block_header,
    decode_header,
    decode_message,
    decode_qc,
    encode_block,
    encode_message,
    encode_qc,
    genesis_hash,
)
from node.core import DecodeError as CoreDecodeError
from node.core import EncodeError as CoreEncodeError
from node.settlement import DecodeError as TxDecodeError
from node.settlement import Head, ResultCode, SignedTx, TxRecord, TxResult, decode_body
from node.settlement._codec import Writer as TxWriter
from node.store import _records as rec
from tests.ledger_helpers import TxFactory, shared_net

Decoder = Callable[[bytes], object]


# --- the table: every decoder, with one valid encoding -----------------------------------


def _block(txs: tuple[bytes, ...] = (b"tx-a", b"tx-b")) -> Block:
    return Block("chain", 1, 0, genesis_hash("chain"), 0, 5, 0, bytes(32), bytes(32), txs)


BLOCK = _block()
QC = QuorumCert(Phase.PREPARE, 4, 1, BLOCK.hash, ((1, b"s" * 64), (3, b"t" * 64)))
OWNER = SafetyOwner(BLOCK.chain_id, 2)
TC = TimeoutCert(5, (TimeoutEntry(0, 1, None, b"a" * 64), TimeoutEntry(1, 1, 4, b"b" * 64)), QC)
_TXF = TxFactory(shared_net())
SIGNED_TX = _TXF.signed(_TXF.transfer())


@dataclass(frozen=True)
class Case:
    decode: Decoder
    valid: bytes
    # For the records framed by their container (an LMDB value's length ends them), the
    # lengths at which a shorter value is itself complete; None: only the whole encoding.
    complete_at: Callable[[int], bool] | None = None


CASES: dict[str, Case] = {
    "message: proposal": Case(decode_message, encode_message(Proposal(5, BLOCK, QC, TC))),
    "message: vote": Case(
        decode_message, encode_message(Vote(Phase.COMMIT, 5, 1, BLOCK.hash, 2, b"v" * 64))
    ),
    "message: new view": Case(decode_message, encode_message(NewView(TC))),
    "message: tx forward": Case(decode_message, encode_message(TxForward((b"x", b"yz")))),
    "block": Case(decode_block, encode_block(BLOCK)),
    "block header (of a block)": Case(
        decode_block_header, encode_block(BLOCK), lambda n: n >= 4 + len(BLOCK.header)
    ),
    "header": Case(decode_header, BLOCK.header),
    "quorum certificate": Case(decode_qc, encode_qc(QC)),
    "safety state (bare)": Case(SafetyState.decode, SafetyState(1, 2, 2, 0, owner=OWNER).encode()),
    "safety state (locked)": Case(
        SafetyState.decode, SafetyState(3, 4, 4, 2, QC, BLOCK, OWNER).encode()
    ),
    "safety state (no owner)": Case(SafetyState.decode, SafetyState(1, 2, 2, 0).encode()),
    "transaction envelope": Case(SignedTx.decode, SIGNED_TX),
    "transaction body": Case(decode_body, SignedTx.decode(SIGNED_TX).body),
    "record: u64": Case(rec.decode_u64, rec.encode_u64(7)),
    "record: head": Case(rec.decode_head, rec.encode_head(Head(3, b"h" * 32, b"r" * 32))),
    "record: tx": Case(rec.decode_tx_record, rec.encode_tx_record(TxRecord(3, 1, ResultCode.OK))),
    "record: block meta": Case(
        rec.decode_block_meta, rec.encode_block_meta(b"h" * 32, b"r" * 32, 9)
    ),
    "record: results": Case(
        rec.decode_results,
        rec.encode_results((
            TxResult(b"i" * 32, ResultCode.OK, True),
            TxResult(b"j" * 32, ResultCode.DUPLICATE, False),
        )),
        lambda n: n % 34 == 0,  # count x (tx id, code, recorded)
    ),
    "record: intake": Case(
        rec.decode_intake, rec.encode_intake(b"i" * 32, SIGNED_TX), lambda n: n >= 32
    ),
}  # fmt: skip


def _rejects(decode: Decoder, data: bytes) -> codec.DecodeError:
    """The checker: ``decode(data)`` must raise DecodeError, and nothing else."""
    try:
        value = decode(data)
    except codec.DecodeError as e:
        return e
    except Exception as e:
        raise AssertionError(f"raised {type(e).__name__} ({e}), not DecodeError") from e
    raise AssertionError(f"accepted hostile bytes as {value!r:.80}")


def _decodes_or_rejects(decode: Decoder, data: bytes) -> None:
    """The fuzz checker: a value, or DecodeError; never another exception."""
    try:
        decode(data)
    except codec.DecodeError:
        return
    except Exception as e:
        raise AssertionError(f"raised {type(e).__name__} ({e}), not DecodeError") from e


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_valid_encoding_decodes(name: str) -> None:
    case = CASES[name]
    case.decode(case.valid)


def _cuts(n: int) -> list[int]:
    # Every cut of a short encoding; of a long one, the first and last 64 and a stride.
    return list(range(n)) if n <= 512 else sorted({*range(64), *range(n - 64, n), *range(0, n, 37)})


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_truncation_raises_decode_error(name: str) -> None:
    case = CASES[name]
    for cut in _cuts(len(case.valid)):
        if case.complete_at is not None and case.complete_at(cut):
            case.decode(case.valid[:cut])  # a shorter record, complete in itself
        else:
            error = _rejects(case.decode, case.valid[:cut])
            # The reader says so, not a later check tripping over what it read (a record
            # framed by its container has no length to be short of: a partial entry is
            # left over instead).
            assert case.complete_at is not None or "truncated" in str(error), error


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_trailing_byte_raises_decode_error(name: str) -> None:
    case = CASES[name]
    for extra in (b"\x00", b"\x01", b"\xff" * 9):
        if case.complete_at is None or not case.complete_at(len(case.valid + extra)):
            _rejects(case.decode, case.valid + extra)
        else:  # the tail is the record's own (an intake entry's transaction bytes)
            case.decode(case.valid + extra)


# --- over-limit lengths and counts, and bad tags, decoder by decoder ----------------------


def _u16(n: int) -> bytes:
    return struct.pack(">H", n)


def _u32(n: int) -> bytes:
    return struct.pack(">I", n)


def _qc_head(count: int, phase: int = Phase.COMMIT) -> bytes:
    return struct.pack(">BQQ32sH", phase, 1, 1, bytes(32), count)


def _replace_at(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


_SAFETY_LOCKED = CASES["safety state (locked)"].valid
# (A proposal's parent-certificate presence byte follows tag 1, view 8 and the block blob.)
_SAFETY_OWNER_END = len(tags.SAFETY_STATE) + 2 + len(OWNER.chain_id) + 4
_SAFETY_VIEWS_END = _SAFETY_OWNER_END + 8 * 4 + 4
_ENVELOPE = SIGNED_TX
_BODY_LEN = struct.unpack(">I", _ENVELOPE[1:5])[0]

HOSTILE: dict[str, tuple[Decoder, bytes]] = {
    # over-limit lengths and counts
    "qc: signatures over VALIDATORS_MAX": (
        decode_qc, _qc_head(VALIDATORS_MAX + 1) + struct.pack(">IH", 0, 0) * (VALIDATORS_MAX + 1)
    ),
    "qc: a signature over SIGNATURE_BYTES_MAX": (
        decode_qc, _qc_head(1) + struct.pack(">IH", 0, SIGNATURE_BYTES_MAX + 1)
        + b"s" * (SIGNATURE_BYTES_MAX + 1),
    ),
    "block: over BLOCK_WIRE_BYTES_MAX": (decode_block, bytes(BLOCK_WIRE_BYTES_MAX + 1)),
    "block: header blob over its maximum": (decode_block, _u32(2**31) + bytes(16)),
    "header: chain id over CHAIN_ID_BYTES_MAX": (
        decode_header, _u16(CHAIN_ID_BYTES_MAX + 1) + b"c" * (CHAIN_ID_BYTES_MAX + 1)
    ),
    "header: empty chain id": (decode_header, _u16(0) + BLOCK.header[2 + len("chain") :]),
    "block: a transaction over TX_BYTES_MAX": (
        decode_block, _u32(len(BLOCK.header)) + BLOCK.header + _u32(TX_BYTES_MAX + 1)
        + bytes(TX_BYTES_MAX + 1),
    ),
    "message: tx forward over TX_BYTES_MAX": (
        decode_message, b"\x06" + _u32(1) + _u32(TX_BYTES_MAX + 1) + bytes(TX_BYTES_MAX + 1)
    ),
    "safety: locked QC blob over its maximum": (
        SafetyState.decode, _SAFETY_LOCKED[:_SAFETY_VIEWS_END] + _u32(2**31),
    ),
    "envelope: over TX_BYTES_MAX": (SignedTx.decode, b"\x01" + bytes(TX_BYTES_MAX)),
    "envelope: signatures over SIGNERS_PER_TX_MAX": (
        SignedTx.decode, _ENVELOPE[: 5 + _BODY_LEN] + bytes([SIGNERS_PER_TX_MAX + 1]),
    ),
    "record: results over BLOCK_RESULTS_MAX": (
        rec.decode_results, bytes(34 * (BLOCK_RESULTS_MAX + 1))
    ),
    "record: intake transaction over TX_BYTES_MAX": (
        rec.decode_intake, bytes(32 + TX_BYTES_MAX + 1)
    ),
    # bad tags, versions, enum values and presence bytes
    "message: unknown tag": (decode_message, b"\x09" + CASES["message: vote"].valid[1:]),
    "message: presence byte 2": (
        decode_message,
        _replace_at(CASES["message: proposal"].valid, 13 + len(encode_block(BLOCK)), b"\x02"),
    ),
    "message: unknown phase": (
        decode_message, _replace_at(CASES["message: vote"].valid, 1, b"\x07")
    ),
    "qc: unknown phase": (decode_qc, _qc_head(0, phase=0)),
    "header: invalid UTF-8 chain id": (decode_header, _replace_at(BLOCK.header, 2, b"\xff")),
    "safety: wrong magic": (SafetyState.decode, b"X" + _SAFETY_LOCKED[1:]),
    "safety: owner's chain id over CHAIN_ID_BYTES_MAX": (
        SafetyState.decode, tags.SAFETY_STATE + _u16(CHAIN_ID_BYTES_MAX + 1) + b"c" * 200
    ),
    "safety: owner's chain id not UTF-8": (
        SafetyState.decode, _replace_at(_SAFETY_LOCKED, len(tags.SAFETY_STATE) + 2, b"\xff")
    ),
    "safety: a validator without a chain": (
        SafetyState.decode, tags.SAFETY_STATE + _u16(0) + _u32(2) + bytes(36)
    ),
    "safety: lock flag 2": (
        SafetyState.decode, _replace_at(_SAFETY_LOCKED, _SAFETY_VIEWS_END - 1, b"\x02")
    ),
    "safety: lock of another block": (
        SafetyState.decode,
        SafetyState(3, 4, 4, 2, QC, BLOCK).encode().replace(BLOCK.hash, bytes(32)),
    ),
    "envelope: unknown version": (SignedTx.decode, b"\x02" + _ENVELOPE[1:]),
    "envelope: signers not sorted": (
        SignedTx.decode, TxWriter().u8(1).blob(b"body", TX_BYTES_MAX).u8(2)
        .ident("B").fixed(bytes(64), 64).ident("A").fixed(bytes(64), 64).finish(),
    ),
    "body: unknown version": (decode_body, b"\x02" + CASES["transaction body"].valid[1:]),
    "body: unknown kind": (decode_body, _replace_at(CASES["transaction body"].valid, 1, b"\x09")),
    "record: unknown result code": (
        rec.decode_tx_record, _replace_at(CASES["record: tx"].valid, 12, b"\xee")
    ),
    "record: result flag 3": (  # 0 unrecorded, 1 recorded, 2 pending event (ADR 0014)
        rec.decode_results, _replace_at(CASES["record: results"].valid, 33, b"\x03")
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_over_limit_lengths_and_bad_tags_raise_decode_error(name: str) -> None:
    decode, data = HOSTILE[name]
    error = _rejects(decode, data)
    # Each case is whole up to the bad field, so only that field's own check explains it.
    assert "truncated" not in str(error) and "trailing" not in str(error), error


@settings(max_examples=25)
@given(st.sampled_from(sorted(CASES)), st.binary(max_size=96))
def test_random_bytes_decode_or_raise_decode_error(name: str, data: bytes) -> None:
    _decodes_or_rejects(CASES[name].decode, data)


@settings(max_examples=60)
@given(st.sampled_from(sorted(CASES)), st.data())
def test_mutated_encodings_decode_or_raise_decode_error(name: str, data: st.DataObject) -> None:
    wire = bytearray(CASES[name].valid)
    for _ in range(data.draw(st.integers(1, 3), "edits")):
        at = data.draw(st.integers(0, len(wire)), "at")
        if data.draw(st.booleans(), "flip") and at < len(wire):
            wire[at] ^= data.draw(st.integers(1, 255), "mask")
        else:
            wire[at:at] = data.draw(st.binary(min_size=1, max_size=4), "insert")
    _decodes_or_rejects(CASES[name].decode, bytes(wire))


def test_one_except_clause_catches_every_layers_decode_error() -> None:
    for layer_error in (CoreDecodeError, TxDecodeError, rec.RecordError):
        assert issubclass(layer_error, codec.DecodeError)
    assert issubclass(CoreEncodeError, codec.EncodeError)
    # Each layer still tells its own failures apart.
    assert not issubclass(CoreDecodeError, TxDecodeError)
    assert isinstance(_rejects(SignedTx.decode, b""), TxDecodeError)
    assert isinstance(_rejects(decode_qc, b""), CoreDecodeError)
    assert isinstance(_rejects(rec.decode_u64, b""), rec.RecordError)


# --- negative controls: the checker fires --------------------------------------------------


def _old_safety_decode(data: bytes) -> object:
    """The safety-state decoder before it used the shared reader: ``unpack_from`` raises
    ``struct.error`` on a short record, and a bare state ignored trailing bytes."""
    if not data.startswith(tags.SAFETY_STATE):
        raise CoreDecodeError("not a safety state")
    return struct.Struct(">QQQQI").unpack_from(data, len(tags.SAFETY_STATE))


def test_negative_control_the_checker_fires_on_a_leaky_or_lenient_decoder() -> None:
    bare = CASES["safety state (bare)"].valid
    with pytest.raises(AssertionError, match=r"raised error"):
        _rejects(_old_safety_decode, bare[:20])
    with pytest.raises(AssertionError, match="accepted"):
        _rejects(_old_safety_decode, bare + b"\x00")
    with pytest.raises(AssertionError, match="not DecodeError"):
        _decodes_or_rejects(lambda b: b[10], b"short")
    # and the real decoder passes where the old one failed
    _rejects(SafetyState.decode, bare[:20])
    _rejects(SafetyState.decode, bare + b"\x00")


# --- the writer: what the reader would refuse is never written ----------------------------


ENCODE_REFUSED: dict[str, Callable[[], object]] = {
    "u64 over 2**64 - 1": lambda: codec.Writer().u64(U64_MAX + 1),
    "negative u32": lambda: codec.Writer().u32(-1),
    "u8 of 256": lambda: codec.Writer().u8(256),
    "u16 of 65536": lambda: codec.Writer().u16(65_536),
    "fixed longer than its size": lambda: codec.Writer().fixed(b"xyz", 2),
    "blob of its limit plus one": lambda: codec.Writer().blob(b"xy", 1),
    "short blob of 65536 under a larger limit": lambda: codec.Writer().blob16(
        bytes(65_536), 100_000
    ),
    "blob over its limit": lambda: codec.Writer().blob(b"xx", 1),
    "short blob over 65535": lambda: codec.Writer().blob16(bytes(70_000), 100_000),
    "fixed of the wrong size": lambda: codec.Writer().fixed(b"x", 2),
    "struct field out of range": lambda: codec.Writer().pack(struct.Struct(">H"), 70_000),
    "qc: 31-byte block hash": lambda: encode_qc(QuorumCert(Phase.COMMIT, 1, 1, bytes(31), ())),
    "qc: a signature over the limit": lambda: encode_qc(
        QuorumCert(Phase.COMMIT, 1, 1, bytes(32), ((0, bytes(SIGNATURE_BYTES_MAX + 1)),))
    ),
    "block: a transaction over TX_BYTES_MAX": lambda: encode_block(
        _block((bytes(TX_BYTES_MAX + 1),))
    ),
    "record: head with a short hash": lambda: rec.encode_head(Head(1, b"h", b"r" * 32)),
    "record: head with a long hash": lambda: rec.encode_head(Head(1, b"h" * 33, b"r" * 32)),
    "envelope: signatures over SIGNERS_PER_TX_MAX": lambda: SignedTx(
        b"b", (("A", bytes(64)),) * (SIGNERS_PER_TX_MAX + 1)
    ).encode(),
    "identifier with a space": lambda: TxWriter().ident("not an id"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ENCODE_REFUSED))
def test_the_writer_refuses_what_the_reader_would_refuse(name: str) -> None:
    with pytest.raises(codec.EncodeError):
        ENCODE_REFUSED[name]()


def test_a_certificate_keeps_its_bytes_and_they_are_its_canonical_encoding() -> None:
    fresh = QuorumCert(QC.phase, QC.view, QC.height, QC.block_hash, QC.signatures)
    first = encode_qc(fresh)
    assert encode_qc(fresh) is first  # encoded once, however often it is sent or stored
    assert decode_qc(first) == fresh and encode_qc(decode_qc(first)) == first


def test_stored_records_round_trip_field_for_field() -> None:
    head = Head(3, b"h" * 32, b"r" * 32)
    assert rec.decode_head(rec.encode_head(head)) == head
    record = TxRecord(2**64 - 1, 7, ResultCode.INSUFFICIENT_CASH)
    assert rec.decode_tx_record(rec.encode_tx_record(record)) == record
    assert rec.decode_block_meta(rec.encode_block_meta(b"h" * 32, b"r" * 32, 9)) == (
        b"h" * 32, b"r" * 32, 9,
    )  # fmt: skip
    results = (
        TxResult(b"i" * 32, ResultCode.OK, recorded=True),
        TxResult(b"j" * 32, ResultCode.DUPLICATE, recorded=False),
    )
    assert rec.decode_results(rec.encode_results(results)) == results
    assert rec.decode_intake(rec.encode_intake(b"i" * 32, b"raw")) == (b"i" * 32, b"raw")
    assert rec.decode_u64(rec.encode_u64(U64_MAX)) == U64_MAX


def test_the_writer_takes_every_value_up_to_its_limit() -> None:
    w = codec.Writer().u8(255).u16(65_535).u32(2**32 - 1).u64(U64_MAX).fixed(b"ab", 2)
    w.blob(b"x" * 3, 3).blob16(bytes(65_535), 100_000).blobs([b"yy"], 2)
    w.entries(struct.Struct(">IH"), [(7, b"s" * 4)], 4)
    r = codec.Reader(w.finish())
    assert (r.u8(), r.u16(), r.u32(), r.u64(), r.fixed(2)) == (
        255,
        65_535,
        2**32 - 1,
        U64_MAX,
        b"ab",
    )
    assert (r.blob(3), r.blob16(65_535), r.blobs(1, 2)) == (b"xxx", bytes(65_535), (b"yy",))
    assert r.entries(struct.Struct(">IH"), 1, 4) == ((7, b"ssss"),)
    r.done()
    longest = QuorumCert(Phase.COMMIT, 1, 1, bytes(32), ((0, bytes(SIGNATURE_BYTES_MAX)),))
    assert decode_qc(encode_qc(longest)) == longest


def test_errors_say_what_and_where() -> None:
    """An operator reading a refused peer's log line needs the field and the offset."""
    vote = CASES["message: vote"].valid
    with pytest.raises(codec.DecodeError, match="presence byte 7 at offset 0 is"):
        codec.Reader(b"\x07").flag()
    with pytest.raises(codec.DecodeError, match="invalid UTF-8 at offset 2"):
        decode_header(_replace_at(BLOCK.header, 2, b"\xff"))
    with pytest.raises(codec.DecodeError, match=r"^9 trailing bytes"):
        decode_message(vote + bytes(9))
    for method, bits, value in (("u8", 8, 256), ("u16", 16, 2**16), ("u32", 32, 2**32)):
        with pytest.raises(codec.EncodeError, match=f"unsigned {bits}-bit"):
            getattr(codec.Writer(), method)(value)
