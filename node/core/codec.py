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
``node.config``); signatures and protocol rules are the replica's job. The two ways to
fail are split by whose fault it is: :class:`~node.core.types.DecodeError` for bytes from
a peer, :class:`EncodeError` for a message this node built that breaks a wire limit (a peer
would reject it), so the sender can drop and log it instead of sending it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TypeVar

from node.config import (
    BLOCK_BYTES_MAX,
    BLOCK_TXS_MAX,
    CATCHUP_BATCH_BLOCKS_MAX,
    CONSENSUS_MESSAGE_BYTES_MAX,
    TX_BYTES_MAX,
    TX_FORWARD_BATCH_MAX,
    VALIDATORS_MAX,
)
from node.core.types import (
    _QC_HEAD,
    _SIG_HEAD,
    HASH_LEN,
    SIGNATURE_BYTES_MAX,
    Block,
    DecodeError,
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
    _Reader,
    decode_block,
    decode_qc,
    encode_block,
    encode_qc,
)

__all__ = ["EncodeError", "decode_message", "encode_message"]

_TAG_PROPOSAL = 1
_TAG_VOTE = 2
_TAG_QC = 3
_TAG_TIMEOUT = 4
_TAG_NEW_VIEW = 5
_TAG_TX_FORWARD = 6
_TAG_SYNC_REQUEST = 7
_TAG_SYNC_RESPONSE = 8

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_VOTE = struct.Struct(">BQQ32sI")
_TWO_U64 = struct.Struct(">QQ")
_ENTRY = struct.Struct(">IQ")
_SYNC_REQUEST = struct.Struct(">QI")

# decode_block accepts this much (the payload bound plus headroom for length prefixes).
_BLOCK_WIRE_BYTES_MAX = BLOCK_BYTES_MAX + 64 * 1024
_QC_WIRE_BYTES_MAX = _QC_HEAD.size + VALIDATORS_MAX * (_SIG_HEAD.size + SIGNATURE_BYTES_MAX)

_T = TypeVar("_T")


class EncodeError(ValueError):
    """A message this node built breaks a wire limit, so every peer would reject it
    (for example a catch-up response whose blocks together exceed
    ``CONSENSUS_MESSAGE_BYTES_MAX``). Nothing was sent; the caller drops the message."""


# --- encoding ----------------------------------------------------------------------------


def encode_message(msg: Message) -> bytes:
    """The canonical bytes of ``msg``; raises :class:`EncodeError` if a peer would reject
    them (so ``decode_message(encode_message(m)) == m`` whenever this returns)."""
    w: list[bytes] = []
    try:
        _put_message(w, msg)
    except struct.error as e:
        raise EncodeError(f"{type(msg).__name__}: a field is out of range ({e})") from e
    data = b"".join(w)
    if len(data) > CONSENSUS_MESSAGE_BYTES_MAX:
        raise EncodeError(
            f"{type(msg).__name__} of {len(data)} bytes exceeds "
            f"CONSENSUS_MESSAGE_BYTES_MAX ({CONSENSUS_MESSAGE_BYTES_MAX})"
        )
    return data


def _put_message(w: list[bytes], msg: Message) -> None:
    match msg:
        case Proposal():
            w.append(_U8.pack(_TAG_PROPOSAL) + _U64.pack(msg.view))
            _put_block(w, msg.block)
            _put_opt(w, msg.parent_cert, _put_qc)
            _put_opt(w, msg.tc, _put_tc)
        case Vote():
            _check_hash(msg.block_hash)
            phase = _check_phase(msg.phase)
            w.append(_U8.pack(_TAG_VOTE))
            w.append(_VOTE.pack(phase, msg.view, msg.height, msg.block_hash, msg.voter))
            _put_sig(w, msg.signature)
        case QCMessage():
            w.append(_U8.pack(_TAG_QC))
            _put_qc(w, msg.qc)
        case Timeout():
            w.append(_U8.pack(_TAG_TIMEOUT) + _TWO_U64.pack(msg.view, msg.committed_height))
            _put_opt(w, msg.commit_cert, _put_qc)
            _put_opt(w, msg.high_pqc, _put_qc)
            _put_opt(w, msg.pqc_block, _put_block)
            w.append(_U32.pack(msg.voter))
            _put_sig(w, msg.signature)
        case NewView():
            w.append(_U8.pack(_TAG_NEW_VIEW))
            _put_tc(w, msg.tc)
        case TxForward():
            _put_tx_forward(w, msg)
        case SyncRequest():
            _check_count(msg.count, CATCHUP_BATCH_BLOCKS_MAX, "blocks requested")
            w.append(_U8.pack(_TAG_SYNC_REQUEST))
            w.append(_SYNC_REQUEST.pack(msg.from_height, msg.count))
        case SyncResponse():
            _check_count(len(msg.blocks), CATCHUP_BATCH_BLOCKS_MAX, "blocks in a response")
            w.append(_U8.pack(_TAG_SYNC_RESPONSE) + _U32.pack(len(msg.blocks)))
            for block, cert in msg.blocks:
                _put_block(w, block)
                _put_qc(w, cert)
        case _:
            raise EncodeError(f"not a consensus message: {type(msg).__name__}")


def _check_count(n: int, limit: int, what: str) -> None:
    if n > limit:
        raise EncodeError(f"{n} {what} exceed the limit of {limit}")


def _check_hash(h: bytes) -> None:
    if len(h) != HASH_LEN:
        raise EncodeError(f"a hash has {len(h)} bytes, not {HASH_LEN}")


def _check_phase(phase: Phase) -> Phase:
    try:
        return Phase(phase)
    except ValueError as e:
        raise EncodeError(f"unknown phase {phase!r}") from e


def _put_opt(w: list[bytes], value: _T | None, put: Callable[[list[bytes], _T], None]) -> None:
    if value is None:
        w.append(b"\x00")
    else:
        w.append(b"\x01")
        put(w, value)


def _put_u64(w: list[bytes], v: int) -> None:
    w.append(_U64.pack(v))


def _put_blob(w: list[bytes], data: bytes) -> None:
    w.append(_U32.pack(len(data)))
    w.append(data)


def _put_sig(w: list[bytes], sig: bytes) -> None:
    _check_count(len(sig), SIGNATURE_BYTES_MAX, "signature bytes")
    w.append(_U16.pack(len(sig)))
    w.append(sig)


def _put_block(w: list[bytes], block: Block) -> None:
    # The limits decode_block enforces (Block itself checks only the header's form).
    _check_count(len(block.txs), BLOCK_TXS_MAX, "transactions in a block")
    for tx in block.txs:
        _check_count(len(tx), TX_BYTES_MAX, "bytes in a transaction")
    data = encode_block(block)
    _check_count(len(data), _BLOCK_WIRE_BYTES_MAX, "bytes in an encoded block")
    _put_blob(w, data)


def _put_qc(w: list[bytes], qc: QuorumCert) -> None:
    _check_phase(qc.phase)
    _check_hash(qc.block_hash)
    _check_count(len(qc.signatures), VALIDATORS_MAX, "signatures in a certificate")
    for _, sig in qc.signatures:
        _check_count(len(sig), SIGNATURE_BYTES_MAX, "signature bytes")
    _put_blob(w, encode_qc(qc))


def _put_tc(w: list[bytes], tc: TimeoutCert) -> None:
    _check_count(len(tc.entries), VALIDATORS_MAX, "entries in a timeout certificate")
    w.append(_U64.pack(tc.view) + _U16.pack(len(tc.entries)))
    for e in tc.entries:
        w.append(_ENTRY.pack(e.voter, e.committed_height))
        _put_opt(w, e.pqc_view, _put_u64)
        _put_sig(w, e.signature)
    _put_opt(w, tc.high_commit, _put_qc)
    _put_opt(w, tc.high_lock, _put_qc)


def _put_tx_forward(w: list[bytes], msg: TxForward) -> None:
    _check_count(len(msg.txs), TX_FORWARD_BATCH_MAX, "transactions in a forward")
    w.append(_U8.pack(_TAG_TX_FORWARD) + _U32.pack(len(msg.txs)))
    for tx in msg.txs:
        _check_count(len(tx), TX_BYTES_MAX, "bytes in a transaction")
        _put_blob(w, tx)


# --- decoding ----------------------------------------------------------------------------


def decode_message(data: bytes) -> Message:
    """The message ``data`` encodes; raises DecodeError (and nothing else) for any bytes
    that are not exactly the canonical encoding of a message within the limits."""
    if len(data) > CONSENSUS_MESSAGE_BYTES_MAX:
        raise DecodeError(f"message of {len(data)} bytes exceeds {CONSENSUS_MESSAGE_BYTES_MAX}")
    r = _Reader(data)
    tag = r.u8()
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise DecodeError(f"unknown message tag {tag}")
    msg = decoder(r)
    r.done()
    return msg


def _limit(n: int, limit: int, what: str) -> int:
    if n > limit:
        raise DecodeError(f"{n} {what} exceed the limit of {limit}")
    return n


def _phase(value: int) -> Phase:
    try:
        return Phase(value)
    except ValueError as e:
        raise DecodeError(f"unknown phase {value}") from e


def _get_sig(r: _Reader) -> bytes:
    return r.take(_limit(r.u16(), SIGNATURE_BYTES_MAX, "signature bytes"))


def _get_block(r: _Reader) -> Block:
    return decode_block(r.blob(_BLOCK_WIRE_BYTES_MAX))


def _get_qc(r: _Reader) -> QuorumCert:
    qc = decode_qc(r.blob(_QC_WIRE_BYTES_MAX))
    _limit(len(qc.signatures), VALIDATORS_MAX, "signatures in a certificate")
    return qc


def _get_tc(r: _Reader) -> TimeoutCert:
    view = r.u64()
    count = _limit(r.u16(), VALIDATORS_MAX, "entries in a timeout certificate")
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
    return Vote(_phase(phase), view, height, block_hash, voter, _get_sig(r))


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
    count = _limit(r.u32(), TX_FORWARD_BATCH_MAX, "transactions in a forward")
    return TxForward(tuple(r.blob(TX_BYTES_MAX) for _ in range(count)))


def _dec_sync_request(r: _Reader) -> SyncRequest:
    from_height, count = r.unpack(_SYNC_REQUEST)
    return SyncRequest(from_height, _limit(count, CATCHUP_BATCH_BLOCKS_MAX, "blocks requested"))


def _dec_sync_response(r: _Reader) -> SyncResponse:
    count = _limit(r.u32(), CATCHUP_BATCH_BLOCKS_MAX, "blocks in a response")
    blocks = []
    for _ in range(count):
        block = _get_block(r)
        blocks.append((block, _get_qc(r)))
    return SyncResponse(tuple(blocks))


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
