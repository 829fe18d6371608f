"""The safety state: what a validator must remember across a crash to never vote twice.

It is written to storage (durable on return) before any vote, timeout or proposal that
depends on it leaves the node. Views are -1 when nothing has happened yet.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from node.core.types import (
    Block,
    DecodeError,
    QuorumCert,
    decode_block,
    decode_qc,
    encode_block,
    encode_qc,
)

__all__ = ["SafetyState"]

_MAGIC = b"dvp-safety/1"
_VIEWS = struct.Struct(">QQQQI")
_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class SafetyState:
    proposed_view: int = -1  # highest view in which this node proposed
    prepare_view: int = -1  # highest view with a PREPARE vote sent
    commit_view: int = -1  # highest view with a COMMIT vote sent
    timeout_view: int = -1  # highest view given up on: no votes in it afterwards
    high_pqc: QuorumCert | None = None  # the lock: highest prepare QC seen
    high_pqc_block: Block | None = None  # its block, to hand to the next leader

    def __post_init__(self) -> None:
        assert (self.high_pqc is None) == (self.high_pqc_block is None)
        assert self.high_pqc is None or self.high_pqc.block_hash == self.high_pqc_block.hash  # type: ignore[union-attr]

    @property
    def last_view(self) -> int:
        return max(self.proposed_view, self.prepare_view, self.commit_view, self.timeout_view)

    def encode(self) -> bytes:
        views = (self.proposed_view, self.prepare_view, self.commit_view, self.timeout_view)
        out = _MAGIC + _VIEWS.pack(*(v + 1 for v in views), 0 if self.high_pqc is None else 1)
        if self.high_pqc is not None and self.high_pqc_block is not None:
            qc, block = encode_qc(self.high_pqc), encode_block(self.high_pqc_block)
            out += _U32.pack(len(qc)) + qc + _U32.pack(len(block)) + block
        return out

    @classmethod
    def decode(cls, data: bytes) -> SafetyState:
        if not data.startswith(_MAGIC):
            raise DecodeError("not a safety state")
        pos = len(_MAGIC)
        p, pr, c, t, has = _VIEWS.unpack_from(data, pos)
        pos += _VIEWS.size
        if not has:
            return cls(p - 1, pr - 1, c - 1, t - 1)
        (n,) = _U32.unpack_from(data, pos)
        qc = decode_qc(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
        (m,) = _U32.unpack_from(data, pos)
        block = decode_block(data[pos + 4 : pos + 4 + m])
        if pos + 4 + m != len(data):
            raise DecodeError("trailing bytes in safety state")
        return cls(p - 1, pr - 1, c - 1, t - 1, qc, block)
