"""Canonical wire encoding of the consensus messages validators send each other.

The transport moves these bytes and nothing else; blocks and certificates inside a message
keep the encodings of ``node.core.types`` (the ones their hashes and signatures are over).
Every value has exactly one encoding, so ``encode_message(decode_message(b)) == b`` for
every ``b`` that decodes. All integers are big-endian; ``blob`` is a u32 length and that
many bytes; ``opt X`` is a presence byte (exactly 0 or 1) followed by X when it is 1;
``sig`` is a u16 length and at most ``SIGNATURE_BYTES_MAX`` bytes::

    tag 1 Proposal      view u64, blob(block), opt blob(qc) parent_cert, opt tc
    tag 2 Vote          phase u8, view u64, height u64, block_hash 32, voter u32, sig
    tag 3 QCMessage     blob(qc)
    tag 4 Timeout       view u64, committed_height u64, opt blob(qc) commit_cert,
                        opt blob(qc) high_pqc, opt blob(block) pqc_block, voter u32, sig
    tag 5 NewView       tc
    tag 6 TxForward     count u32 (<= TX_FORWARD_BATCH_MAX), count x blob(tx)
    tag 7 SyncRequest   from_height u64, count u32 (<= CATCHUP_BATCH_BLOCKS_MAX)
    tag 8 SyncResponse  count u32 (<= CATCHUP_BATCH_BLOCKS_MAX), count x (blob(block), blob(qc))

    tc     = view u64, count u16 (<= VALIDATORS_MAX), count x entry,
             opt blob(qc) high_commit, opt blob(qc) high_lock
    entry  = voter u32, committed_height u64, opt pqc_view u64, sig
    block  = encode_block(...), qc = encode_qc(...) (at most VALIDATORS_MAX signatures)

Decoding checks form only (lengths, counts, enum values, presence bytes, limits from
``node.config``); signatures and protocol rules are the replica's job. Both directions go
through the one reader/writer pair of ``node.codec``, and the two ways to fail are split
by whose fault it is: :class:`~node.core.types.DecodeError` for bytes from a peer,
:class:`~node.core.types.EncodeError` for a message this node built that breaks a wire
limit (a peer would reject it), so the sender can drop and log it instead of sending it.
Every limit the decoder enforces, the encoder enforces too (``decode_message(
encode_message(m)) == m`` whenever ``encode_message`` returns).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TypeVar, assert_never

from node.config import (
    BLOCK_WIRE_BYTES_MAX,
    CATCHUP_BATCH_BLOCKS_MAX,
    CONSENSUS_MESSAGE_BYTES_MAX,
    SIGNATURE_BYTES_MAX,
    TX_BYTES_MAX,
    TX_FORWARD_BATCH_MAX,
    VALIDATORS_MAX,
)
from node.core.refusal import Kind
from node.core.types import (
    QC_BYTES_MAX,
    Block,
    DecodeError,
    EncodeError,
    Message,
    NewView,
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
    _Reader,
    _Writer,
    decode_block,
    decode_phase,
    decode_qc,
    encode_block,
    encode_qc,
)
from node.crypto import HASH_LEN

__all__ = ["EncodeError", "decode_message", "decoded_items", "encode_message", "message_kind"]

_TAG_PROPOSAL = 1
_TAG_VOTE = 2
_TAG_QC = 3
_TAG_TIMEOUT = 4
_TAG_NEW_VIEW = 5
_TAG_TX_FORWARD = 6
_TAG_SYNC_REQUEST = 7
_TAG_SYNC_RESPONSE = 8

_VOTE = struct.Struct(">BQQ32sI")
_TWO_U64 = struct.Struct(">QQ")
_ENTRY = struct.Struct(">IQ")
_SYNC_REQUEST = struct.Struct(">QI")

_T = TypeVar("_T")


# --- encoding ----------------------------------------------------------------------------


def encode_message(msg: Message) -> bytes:
    """The canonical bytes of ``msg``; raises :class:`EncodeError` if a peer would reject
    them (so ``decode_message(encode_message(m)) == m`` whenever this returns)."""
    w = _Writer()
    _put_message(w, msg)
    data = w.finish()
    if len(data) > CONSENSUS_MESSAGE_BYTES_MAX:
        raise EncodeError(
            f"{type(msg).__name__} of {len(data)} bytes exceeds "
            f"CONSENSUS_MESSAGE_BYTES_MAX ({CONSENSUS_MESSAGE_BYTES_MAX})"
        )
    return data


def _put_message(w: _Writer, msg: Message) -> None:
    match msg:
        case Proposal():
            w.u8(_TAG_PROPOSAL).u64(msg.view)
            _put_block(w, msg.block)
            _put_opt(w, msg.parent_cert, _put_qc)
            _put_opt(w, msg.tc, _put_tc)
        case Vote():
            _put_vote(w, msg)
        case QCMessage():
            _put_qc(w.u8(_TAG_QC), msg.qc)
        case Timeout():
            w.u8(_TAG_TIMEOUT).pack(_TWO_U64, msg.view, msg.committed_height)
            _put_opt(w, msg.commit_cert, _put_qc)
            _put_opt(w, msg.high_pqc, _put_qc)
            _put_opt(w, msg.pqc_block, _put_block)
            w.u32(msg.voter).blob16(msg.signature, SIGNATURE_BYTES_MAX)
        case NewView():
            _put_tc(w.u8(_TAG_NEW_VIEW), msg.tc)
        case TxForward():
            w.u8(_TAG_TX_FORWARD).limit(len(msg.txs), TX_FORWARD_BATCH_MAX, "forwarded txs")
            w.u32(len(msg.txs)).blobs(msg.txs, TX_BYTES_MAX)
        case SyncRequest():
            w.u8(_TAG_SYNC_REQUEST).limit(msg.count, CATCHUP_BATCH_BLOCKS_MAX, "blocks asked")
            w.pack(_SYNC_REQUEST, msg.from_height, msg.count)
        case SyncResponse():
            n = len(msg.blocks)
            w.u8(_TAG_SYNC_RESPONSE).limit(n, CATCHUP_BATCH_BLOCKS_MAX, "blocks in a response")
            w.u32(n)
            for block, cert in msg.blocks:
                _put_block(w, block)
                _put_qc(w, cert)
        case _:
            raise EncodeError(f"not a consensus message: {type(msg).__name__}")


def _put_vote(w: _Writer, v: Vote) -> None:
    if len(v.block_hash) != HASH_LEN:  # struct's "32s" would pad or cut it silently
        raise EncodeError(f"a block hash of {len(v.block_hash)} bytes, not {HASH_LEN}")
    w.u8(_TAG_VOTE).pack(_VOTE, _phase_out(v.phase), v.view, v.height, v.block_hash, v.voter)
    w.blob16(v.signature, SIGNATURE_BYTES_MAX)


def _phase_out(phase: int) -> int:
    try:
        return decode_phase(phase)
    except DecodeError as e:
        raise EncodeError(f"unknown phase {phase!r}") from e


def _put_opt(w: _Writer, value: _T | None, put: Callable[[_Writer, _T], None]) -> None:
    w.flag(value is not None)
    if value is not None:
        put(w, value)


def _put_block(w: _Writer, block: Block) -> None:
    w.blob(encode_block(block), BLOCK_WIRE_BYTES_MAX)


def _put_qc(w: _Writer, qc: QuorumCert) -> None:
    w.blob(encode_qc(qc), QC_BYTES_MAX)


def _put_pqc_view(w: _Writer, view: int) -> None:
    w.u64(view)


def _put_tc(w: _Writer, tc: TimeoutCert) -> None:
    n = len(tc.entries)
    w.limit(n, VALIDATORS_MAX, "entries in a timeout certificate").u64(tc.view).u16(n)
    for e in tc.entries:
        w.pack(_ENTRY, e.voter, e.committed_height)
        _put_opt(w, e.pqc_view, _put_pqc_view)
        w.blob16(e.signature, SIGNATURE_BYTES_MAX)
    _put_opt(w, tc.high_commit, _put_qc)
    _put_opt(w, tc.high_lock, _put_qc)


# --- decoding ----------------------------------------------------------------------------


def decode_message(data: bytes) -> Message:
    """The message ``data`` encodes; raises DecodeError (and nothing else) for any bytes
    that are not exactly the canonical encoding of a message within the limits."""
    r = _Reader(data)
    r.limit(len(data), CONSENSUS_MESSAGE_BYTES_MAX, "bytes in a message")
    tag = r.u8()
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise DecodeError(f"unknown message tag {tag}")
    msg = decoder(r)
    r.done()
    return msg


def _get_block(r: _Reader) -> Block:
    return decode_block(r.blob(BLOCK_WIRE_BYTES_MAX))


def _get_qc(r: _Reader) -> QuorumCert:
    return decode_qc(r.blob(QC_BYTES_MAX))


def _get_sig(r: _Reader) -> bytes:
    return r.blob16(SIGNATURE_BYTES_MAX)


def _get_tc(r: _Reader) -> TimeoutCert:
    view = r.u64()
    count = r.limit(r.u16(), VALIDATORS_MAX, "entries in a timeout certificate")
    entries = []
    for _ in range(count):
        voter, committed_height = r.unpack(_ENTRY)
        pqc_view = r.u64() if r.flag() else None
        entries.append(TimeoutEntry(voter, committed_height, pqc_view, _get_sig(r)))
    high_commit = _get_qc(r) if r.flag() else None
    high_lock = _get_qc(r) if r.flag() else None
    return TimeoutCert(view, tuple(entries), high_commit, high_lock)


def _dec_proposal(r: _Reader) -> Proposal:
    view = r.u64()
    block = _get_block(r)
    parent_cert = _get_qc(r) if r.flag() else None
    tc = _get_tc(r) if r.flag() else None
    return Proposal(view, block, parent_cert, tc)


def _dec_vote(r: _Reader) -> Vote:
    phase, view, height, block_hash, voter = r.unpack(_VOTE)
    return Vote(decode_phase(phase), view, height, block_hash, voter, _get_sig(r))


def _dec_qc(r: _Reader) -> QCMessage:
    return QCMessage(_get_qc(r))


def _dec_timeout(r: _Reader) -> Timeout:
    view, committed_height = r.unpack(_TWO_U64)
    commit_cert = _get_qc(r) if r.flag() else None
    high_pqc = _get_qc(r) if r.flag() else None
    pqc_block = _get_block(r) if r.flag() else None
    voter = r.u32()
    return Timeout(view, committed_height, commit_cert, high_pqc, pqc_block, voter, _get_sig(r))


def _dec_new_view(r: _Reader) -> NewView:
    return NewView(_get_tc(r))


def _dec_tx_forward(r: _Reader) -> TxForward:
    count = r.limit(r.u32(), TX_FORWARD_BATCH_MAX, "transactions in a forward")
    return TxForward(r.blobs(count, TX_BYTES_MAX))


def _dec_sync_request(r: _Reader) -> SyncRequest:
    from_height, count = r.unpack(_SYNC_REQUEST)
    return SyncRequest(from_height, r.limit(count, CATCHUP_BATCH_BLOCKS_MAX, "blocks requested"))


def _dec_sync_response(r: _Reader) -> SyncResponse:
    count = r.limit(r.u32(), CATCHUP_BATCH_BLOCKS_MAX, "blocks in a response")
    blocks = []
    for _ in range(count):
        block = _get_block(r)
        blocks.append((block, _get_qc(r)))
    return SyncResponse(tuple(blocks))


def message_kind(data: bytes) -> Kind | None:
    """The kind ``data`` says it is by its tag byte, read before anything is decoded (what
    a refusal of it is counted under); None for no known tag (decoding will refuse it)."""
    return _KINDS.get(data[0]) if data else None


def decoded_items(msg: Message) -> int:
    """The items decoding ``msg`` built, each an object and most a hash (a transaction, a
    timeout entry, a certificate signature): what decoding costs beyond its bytes, charged
    to the sender (node.config PEER_ITEM_CHARGE_BYTES)."""
    match msg:
        case Proposal():
            return _block_items(msg.block) + _qc_items(msg.parent_cert) + _tc_items(msg.tc)
        case QCMessage():
            return _qc_items(msg.qc)
        case Timeout():
            certs = _qc_items(msg.commit_cert) + _qc_items(msg.high_pqc)
            return certs + (0 if msg.pqc_block is None else _block_items(msg.pqc_block))
        case NewView():
            return _tc_items(msg.tc)
        case TxForward():
            return len(msg.txs)
        case SyncResponse():
            return sum(_block_items(b) + _qc_items(qc) for b, qc in msg.blocks)
        case Vote() | SyncRequest():
            return 0
        case _:
            assert_never(msg)


def _block_items(block: Block) -> int:
    return len(block.txs)


def _qc_items(qc: QuorumCert | None) -> int:
    return 0 if qc is None else len(qc.signatures)


def _tc_items(tc: TimeoutCert | None) -> int:
    if tc is None:
        return 0
    return len(tc.entries) + _qc_items(tc.high_commit) + _qc_items(tc.high_lock)


_KINDS: dict[int, Kind] = {
    _TAG_PROPOSAL: Kind.PROPOSAL,
    _TAG_VOTE: Kind.VOTE,
    _TAG_QC: Kind.QC,
    _TAG_TIMEOUT: Kind.TIMEOUT,
    _TAG_NEW_VIEW: Kind.NEW_VIEW,
    _TAG_TX_FORWARD: Kind.TX_FORWARD,
    _TAG_SYNC_REQUEST: Kind.SYNC_REQUEST,
    _TAG_SYNC_RESPONSE: Kind.SYNC_RESPONSE,
}

_DECODERS: dict[int, Callable[[_Reader], Message]] = {
    _TAG_PROPOSAL: _dec_proposal,
    _TAG_VOTE: _dec_vote,
    _TAG_QC: _dec_qc,
    _TAG_TIMEOUT: _dec_timeout,
    _TAG_NEW_VIEW: _dec_new_view,
    _TAG_TX_FORWARD: _dec_tx_forward,
    _TAG_SYNC_REQUEST: _dec_sync_request,
    _TAG_SYNC_RESPONSE: _dec_sync_response,
}
