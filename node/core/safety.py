"""The safety state: what a validator must remember across a crash to never vote twice.

It is written to storage (durable on return) before any vote, timeout or proposal that
depends on it leaves the node. Views are -1 when nothing has happened yet.

It names its owner, the chain and the validator whose votes it records: a state copied
from another validator's data directory (a cloned disk, a restored backup of the wrong
machine) would let this one vote again in views it has already voted in, and is refused
at start (session 30). A state written before the owner was recorded (format 1) has
none; the replica takes it as its own and records the owner with its next save.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from node import tags
from node.config import BLOCK_WIRE_BYTES_MAX, CHAIN_ID_BYTES_MAX
from node.core.types import (
    QC_BYTES_MAX,
    Block,
    DecodeError,
    QuorumCert,
    _Reader,
    _Writer,
    decode_block,
    decode_qc,
    encode_block,
    encode_qc,
)

__all__ = ["SafetyOwner", "SafetyState"]

_MAGIC = tags.SAFETY_STATE
_MAGIC_V1 = tags.SAFETY_STATE_V1  # no owner (before session 30): read, never written
# Four views shifted by one (so -1, "never", is 0), then whether a lock follows, as a u32
# that must be 0 or 1 (one encoding per state).
_VIEWS = struct.Struct(">QQQQI")


@dataclass(frozen=True, slots=True)
class SafetyOwner:
    """Whose votes a safety state records: one validator of one chain."""

    chain_id: str
    validator: int  # its index in the chain's validator list

    def __str__(self) -> str:
        return f"validator {self.validator} of chain {self.chain_id[:32]!r}"


@dataclass(frozen=True, slots=True)
class SafetyState:
    proposed_view: int = -1  # highest view in which this node proposed
    prepare_view: int = -1  # highest view with a PREPARE vote sent
    commit_view: int = -1  # highest view with a COMMIT vote sent
    timeout_view: int = -1  # highest view given up on: no votes in it afterwards
    high_pqc: QuorumCert | None = None  # the lock: highest prepare QC seen
    high_pqc_block: Block | None = None  # its block, to hand to the next leader
    owner: SafetyOwner | None = None  # None: not recorded (format 1, or a bare test state)

    def __post_init__(self) -> None:
        assert (self.high_pqc is None) == (self.high_pqc_block is None)
        assert self.high_pqc is None or self.high_pqc.block_hash == self.high_pqc_block.hash  # type: ignore[union-attr]

    @property
    def last_view(self) -> int:
        return max(self.proposed_view, self.prepare_view, self.commit_view, self.timeout_view)

    def encode(self) -> bytes:
        views = (self.proposed_view, self.prepare_view, self.commit_view, self.timeout_view)
        locked = self.high_pqc is not None and self.high_pqc_block is not None
        # The owner: its chain id (empty: none recorded) and its index (0 without one).
        owner = self.owner
        chain = b"" if owner is None else owner.chain_id.encode()
        w = _Writer().raw(_MAGIC).blob16(chain, CHAIN_ID_BYTES_MAX)
        w.u32(0 if owner is None else owner.validator)
        w.pack(_VIEWS, *(v + 1 for v in views), int(locked))
        if self.high_pqc is not None and self.high_pqc_block is not None:
            w.blob(encode_qc(self.high_pqc), QC_BYTES_MAX)
            w.blob(encode_block(self.high_pqc_block), BLOCK_WIRE_BYTES_MAX)
        return w.finish()

    @classmethod
    def decode(cls, data: bytes) -> SafetyState:
        """The state ``data`` encodes; DecodeError (and nothing else) for anything that is
        not exactly a canonical encoding: a torn or corrupt record must halt the node, not
        be read as "never voted"."""
        r = _Reader(data)
        magic = r.take(len(_MAGIC))
        owner = None
        if magic == _MAGIC:
            chain = r.utf8(r.limit(r.u16(), CHAIN_ID_BYTES_MAX, "bytes in the owner's chain id"))
            validator = r.u32()
            if chain:
                owner = SafetyOwner(chain, validator)
            elif validator:
                raise DecodeError(f"validator {validator} named without a chain")
        elif magic != _MAGIC_V1:
            raise DecodeError("not a safety state")
        p, pr, c, t, locked = r.unpack(_VIEWS)
        if locked > 1:
            raise DecodeError(f"lock flag {locked} is not 0 or 1")
        qc = decode_qc(r.blob(QC_BYTES_MAX)) if locked else None
        block = decode_block(r.blob(BLOCK_WIRE_BYTES_MAX)) if locked else None
        r.done()
        if qc is not None and block is not None and qc.block_hash != block.hash:
            raise DecodeError("the locked certificate is not for the locked block")
        return cls(p - 1, pr - 1, c - 1, t - 1, qc, block, owner)
