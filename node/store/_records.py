"""The LMDB store's records, through the node's one reader/writer pair (``node.codec``).

Every value the store writes has one canonical encoding here, and every read decodes
through :class:`RecordError` (a ``node.codec.DecodeError``): a truncated or corrupt
record is a corrupt data directory, which the store turns into ``StorageError`` and the
validator into a halt (fail-stop), never a ``struct.error`` from deep inside a read or a
record read as something it is not. Layouts (big-endian, fixed width)::

    u64 value   balances, supplies, and the height keys of the per-block databases
    head        height u64, block hash 32, state root 32
    tx record   height u64, position u32, code u8
    block meta  block hash 32, state root 32, time_ms u64
    results     count x (tx id 32, code u8, flag: 0 unrecorded, 1 recorded, 2 event)
    party root  the block's party index: size u32, root 32 (ADR 0025, amendment)
    intake      tx id 32, then the raw transaction
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from node import codec
from node.config import BLOCK_RESULTS_MAX, PARTICIPANTS_MAX, TX_BYTES_MAX
from node.crypto import HASH_LEN
from node.settlement import (
    Head,
    PartyRoot,
    ResultCode,
    TxRecord,
    TxResult,
    decode_result_code,
)

__all__ = [
    "RecordError",
    "decode_block_meta",
    "decode_head",
    "decode_intake",
    "decode_party_root",
    "decode_results",
    "decode_tx_record",
    "decode_u64",
    "encode_block_meta",
    "encode_head",
    "encode_intake",
    "encode_party_root",
    "encode_results",
    "encode_tx_record",
    "encode_u64",
]

_HEAD = struct.Struct(">Q32s32s")
_TXREC = struct.Struct(">QIB")
_BLOCKMETA = struct.Struct(">32s32sQ")
_RESULT = struct.Struct(">32sBB")
_PARTY_ROOT = struct.Struct(">I32s")
# a party index has a leaf per participant and the public one: a larger size is corrupt
_PARTY_LEAVES_MAX = PARTICIPANTS_MAX + 1


class RecordError(codec.DecodeError):
    """A stored record that is not a canonical encoding: the data directory is corrupt."""


class _Reader(codec.Reader):
    __slots__ = ()
    error = RecordError


def _code(value: int) -> ResultCode:
    return decode_result_code(value, RecordError)


def _hashes(*values: bytes) -> None:
    for v in values:  # struct's "32s" would pad or cut a wrong length silently
        if len(v) != HASH_LEN:
            raise codec.EncodeError(f"a {len(v)}-byte hash in a record, not {HASH_LEN}")


def encode_u64(value: int) -> bytes:
    return codec.Writer().u64(value).finish()


def decode_u64(raw: bytes) -> int:
    r = _Reader(raw)
    value = r.u64()
    r.done()
    return value


def encode_head(head: Head) -> bytes:
    _hashes(head.block_hash, head.state_root)
    return codec.Writer().pack(_HEAD, head.height, head.block_hash, head.state_root).finish()


def decode_head(raw: bytes) -> Head:
    r = _Reader(raw)
    height, block_hash, state_root = r.unpack(_HEAD)
    r.done()
    return Head(height, block_hash, state_root)


def encode_tx_record(rec: TxRecord) -> bytes:
    return codec.Writer().pack(_TXREC, rec.height, rec.position, rec.code).finish()


def decode_tx_record(raw: bytes) -> TxRecord:
    r = _Reader(raw)
    height, position, code = r.unpack(_TXREC)
    r.done()
    return TxRecord(height, position, _code(code))


def encode_block_meta(block_hash: bytes, state_root: bytes, time_ms: int) -> bytes:
    _hashes(block_hash, state_root)
    return codec.Writer().pack(_BLOCKMETA, block_hash, state_root, time_ms).finish()


def decode_block_meta(raw: bytes) -> tuple[bytes, bytes, int]:
    """(block hash, state root, time_ms)."""
    r = _Reader(raw)
    block_hash, state_root, time_ms = r.unpack(_BLOCKMETA)
    r.done()
    return block_hash, state_root, time_ms


def encode_results(results: Sequence[TxResult]) -> bytes:
    w = codec.Writer().limit(len(results), BLOCK_RESULTS_MAX, "results in a block")
    for res in results:
        _hashes(res.tx_id)
        w.pack(_RESULT, res.tx_id, res.code, res.flag)
    return w.finish()


def decode_results(raw: bytes) -> tuple[TxResult, ...]:
    r = _Reader(raw)
    count = r.limit(len(raw) // _RESULT.size, BLOCK_RESULTS_MAX, "results in a block")
    out = []
    for _ in range(count):
        tx_id, code, flag = r.unpack(_RESULT)
        if flag > 2:
            raise RecordError(f"result flag {flag} is not 0, 1 or 2 (unrecorded, recorded, event)")
        out.append(TxResult(tx_id, _code(code), flag == 1, event=flag == 2))
    r.done()
    return tuple(out)


def encode_party_root(parties: PartyRoot) -> bytes:
    _hashes(parties.root)
    w = codec.Writer().limit(parties.size, _PARTY_LEAVES_MAX, "leaves of a party index")
    return w.pack(_PARTY_ROOT, parties.size, parties.root).finish()


def decode_party_root(raw: bytes) -> PartyRoot:
    r = _Reader(raw)
    size, root = r.unpack(_PARTY_ROOT)
    r.limit(size, _PARTY_LEAVES_MAX, "leaves of a party index")
    r.done()
    return PartyRoot(size, root)


def encode_intake(tx_id: bytes, raw: bytes) -> bytes:
    return codec.Writer().fixed(tx_id, HASH_LEN).raw(raw).finish()


def decode_intake(value: bytes) -> tuple[bytes, bytes]:
    """(tx id, raw transaction)."""
    r = _Reader(value)
    tx_id = r.fixed(HASH_LEN)
    raw = r.take(r.limit(len(value) - HASH_LEN, TX_BYTES_MAX, "bytes in a transaction"))
    r.done()
    return tx_id, raw
