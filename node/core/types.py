"""Blocks, certificates and consensus messages, with their canonical byte encodings.

Everything here is a frozen dataclass. Hashes and signatures are always computed over the
canonical encoding produced here (never over a re-serialization of decoded data), so a
block hash names exactly one byte string: ``block_hash = sha256(header_bytes)``. The
header commits to the transactions through ``txs_root`` (an RFC 6962 Merkle root, so one
transaction is provable without the block) and, with ``state_root`` and
``results_root``, to the outcome of executing the parent block (ADR 0005).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from functools import lru_cache

from node import codec, merkle, tags
from node.config import (
    BLOCK_TXS_MAX,
    BLOCK_WIRE_BYTES_MAX,
    CHAIN_ID_BYTES_MAX,
    SIGNATURE_BYTES_MAX,
    TX_BYTES_MAX,
    U64_MAX,
    VALIDATORS_MAX,
)
from node.crypto import HASH_LEN, sha256

__all__ = [
    "Block",
    "BlockHeader",
    "DecodeError",
    "EncodeError",
    "Message",
    "NewView",
    "Phase",
    "Proposal",
    "QCMessage",
    "QuorumCert",
    "SyncRequest",
    "SyncResponse",
    "Timeout",
    "TimeoutCert",
    "TimeoutEntry",
    "TxForward",
    "Vote",
    "decode_block",
    "decode_block_header",
    "decode_header",
    "decode_qc",
    "encode_block",
    "encode_qc",
    "genesis_hash",
    "signable_lock_view",
    "timeout_message",
    "vote_message",
]

# After the length-prefixed chain id: height, view, parent hash, parent view, proposer,
# time, executed height, state root, results root, transactions root, transaction count.
_HEADER = struct.Struct(">QQ32sQIQQ32s32s32sI")
_HEADER_BYTES_MAX = 2 + CHAIN_ID_BYTES_MAX + _HEADER.size
_QC_HEAD = struct.Struct(">BQQ32sH")
_SIG_HEAD = struct.Struct(">IH")
_VOTE = struct.Struct(">BQQ32s")
_TIMEOUT = struct.Struct(">BQQQ")
# The largest canonical QC: what a decoder of a blob holding one accepts.
QC_BYTES_MAX = _QC_HEAD.size + VALIDATORS_MAX * (_SIG_HEAD.size + SIGNATURE_BYTES_MAX)


class DecodeError(codec.DecodeError):
    """Bytes from a peer or from storage that are not a canonical encoding."""


class EncodeError(codec.EncodeError):
    """A block, certificate or message this node built breaks a wire limit, so every peer
    would reject it (for example a catch-up response whose blocks together exceed
    ``CONSENSUS_MESSAGE_BYTES_MAX``). Nothing was sent; the caller drops the message."""


class _Reader(codec.Reader):
    """The shared reader (``node.codec``), failing with this package's DecodeError."""

    __slots__ = ()
    error = DecodeError


class _Writer(codec.Writer):
    """The shared writer (``node.codec``), failing with this package's EncodeError."""

    __slots__ = ()
    error = EncodeError


class Phase(enum.IntEnum):
    PREPARE = 1
    COMMIT = 2
    TIMEOUT = 3


@lru_cache(maxsize=16)  # one chain per process, encoded into every vote and header
def _chain_bytes(chain_id: str) -> bytes:
    raw = chain_id.encode()
    if not raw:
        raise EncodeError("the chain id is empty")
    return _Writer().blob16(raw, CHAIN_ID_BYTES_MAX).finish()


def genesis_hash(chain_id: str) -> bytes:
    """The parent hash of block 1."""
    return sha256(tags.GENESIS_BLOCK, _chain_bytes(chain_id))


def vote_message(chain_id: str, phase: Phase, view: int, height: int, block_hash: bytes) -> bytes:
    """What a validator signs to vote; a commit certificate is q of these (phase COMMIT)."""
    assert phase in (Phase.PREPARE, Phase.COMMIT) and len(block_hash) == HASH_LEN
    w = _Writer().raw(tags.VOTE).raw(_chain_bytes(chain_id))
    return w.pack(_VOTE, phase, view, height, block_hash).finish()


def signable_lock_view(pqc_view: int | None) -> bool:
    """Whether a timeout can sign this lock view: ``timeout_message`` encodes it plus one
    in a u64, so 2^64 - 1 cannot be. No honest timeout carries it; a peer's claim of it is
    refused before the message is built (building it raises EncodeError)."""
    return pqc_view is None or pqc_view < U64_MAX


def timeout_message(chain_id: str, view: int, committed_height: int, pqc_view: int | None) -> bytes:
    # pqc_view is shifted by one so that "no prepare QC" has a distinct encoding (0).
    shifted = 0 if pqc_view is None else pqc_view + 1
    w = _Writer().raw(tags.TIMEOUT).raw(_chain_bytes(chain_id))
    return w.pack(_TIMEOUT, Phase.TIMEOUT, view, committed_height, shifted).finish()


@dataclass(frozen=True, slots=True)
class Block:
    """A block: header fields plus the opaque encoded transactions it carries.

    ``view`` is the view the block was first proposed in; a later leader that re-proposes a
    locked block sends it unchanged, so its hash stays the same. ``parent_view`` is the
    view of the parent's certificate that the first proposal carried (0 for block 1): with
    the parent's ``view`` it tells the leader schedule whether the parent was certified in
    its own view or only after a view change (ADR 0022). ``executed_height`` is
    always ``height - 1``; ``state_root`` is the state root after executing it and
    ``results_root`` the Merkle root of its results (``merkle.EMPTY_ROOT`` at height 1).
    Only a block whose parent carries transactions may itself be empty (it certifies
    those transactions' results, ADR 0005).
    """

    chain_id: str
    height: int
    view: int
    parent_hash: bytes
    proposer: int
    time_ms: int
    executed_height: int
    state_root: bytes
    results_root: bytes
    txs: tuple[bytes, ...]
    parent_view: int = 0
    header: bytes = field(init=False, repr=False, compare=False)
    hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        assert self.height >= 1 and self.executed_height == self.height - 1
        assert len(self.parent_hash) == HASH_LEN and len(self.state_root) == HASH_LEN
        assert len(self.results_root) == HASH_LEN
        header = (
            _Writer()
            .raw(_chain_bytes(self.chain_id))
            .pack(
                _HEADER,
                self.height,
                self.view,
                self.parent_hash,
                self.parent_view,
                self.proposer,
                self.time_ms,
                self.executed_height,
                self.state_root,
                self.results_root,
                merkle.root(self.txs),
                len(self.txs),
            )
            .finish()
        )
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "hash", sha256(header))

    @property
    def payload_bytes(self) -> int:
        return sum(len(tx) for tx in self.txs)


def encode_block(block: Block) -> bytes:
    """The header, then each transaction, as blobs; raises EncodeError for a block that
    ``decode_block`` would refuse (too many or too large transactions)."""
    w = _Writer().limit(len(block.txs), BLOCK_TXS_MAX, "transactions in a block")
    w.blob(block.header, _HEADER_BYTES_MAX).blobs(block.txs, TX_BYTES_MAX)
    data = w.finish()
    w.limit(len(data), BLOCK_WIRE_BYTES_MAX, "bytes in an encoded block")
    return data


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """A decoded header: what a certificate over ``hash`` vouches for, without the body."""

    chain_id: str
    height: int
    view: int
    parent_hash: bytes
    proposer: int
    time_ms: int
    executed_height: int
    state_root: bytes
    results_root: bytes
    txs_root: bytes
    tx_count: int
    hash: bytes
    parent_view: int


def decode_header(data: bytes) -> BlockHeader:
    """Parse canonical header bytes (a receipt carries headers without their blocks)."""
    hr = _Reader(data)
    chain_len = hr.u16()
    if not 0 < chain_len <= CHAIN_ID_BYTES_MAX:
        raise DecodeError(f"chain id of {chain_len} bytes: 1 to {CHAIN_ID_BYTES_MAX} expected")
    chain_id = hr.utf8(chain_len)
    fields = hr.unpack(_HEADER)
    hr.done()
    height, view, parent, parent_view, proposer, time_ms, ex_h, root, results, txs_root, count = (
        fields
    )
    if count > BLOCK_TXS_MAX or height < 1 or ex_h != height - 1:
        raise DecodeError("bad block header")
    return BlockHeader(
        chain_id,
        height,
        view,
        parent,
        proposer,
        time_ms,
        ex_h,
        root,
        results,
        txs_root,
        count,
        sha256(data),
        parent_view,
    )


def decode_block_header(data: bytes) -> BlockHeader:
    """The header of an encoded block, leaving its transactions unread (and unchecked)."""
    r = _Reader(data)
    return decode_header(r.blob(_HEADER_BYTES_MAX))


def decode_block(data: bytes) -> Block:
    r = _Reader(data)
    r.limit(len(data), BLOCK_WIRE_BYTES_MAX, "bytes in an encoded block")
    h = decode_header(r.blob(_HEADER_BYTES_MAX))
    txs = r.blobs(h.tx_count, TX_BYTES_MAX)
    r.done()
    block = Block(
        h.chain_id,
        h.height,
        h.view,
        h.parent_hash,
        h.proposer,
        h.time_ms,
        h.executed_height,
        h.state_root,
        h.results_root,
        txs,
        h.parent_view,
    )
    if block.hash != h.hash:
        raise DecodeError("transactions do not match the header's transactions root")
    return block


@dataclass(frozen=True, slots=True)
class QuorumCert:
    """q signatures over ``vote_message(chain, phase, view, height, block_hash)``.

    A QC with phase COMMIT is the block's commit certificate: anyone holding the validator
    public keys and q can check finality offline from it alone.
    """

    phase: Phase
    view: int
    height: int
    block_hash: bytes
    signatures: tuple[tuple[int, bytes], ...]  # (validator index, signature), sorted by index
    # Its canonical bytes, once encoded: a certificate is encoded again for every message,
    # safety record and stored block that carries it. (Not set by decode_qc, so a decoded
    # certificate's first encoding is computed, and round-trip tests keep their teeth.)
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)


def encode_qc(qc: QuorumCert) -> bytes:
    """Raises EncodeError for a certificate ``decode_qc`` would refuse."""
    wire = qc._wire
    if wire is None:
        wire = _encode_qc(qc)
        object.__setattr__(qc, "_wire", wire)
    return wire


def _encode_qc(qc: QuorumCert) -> bytes:
    sigs = qc.signatures
    if qc.phase not in _PHASES or len(qc.block_hash) != HASH_LEN or len(sigs) > VALIDATORS_MAX:
        # (A block hash of another length would be padded or cut silently by "32s".)
        raise EncodeError(
            f"no certificate has phase {qc.phase!r}, a {len(qc.block_hash)}-byte block hash "
            f"and {len(sigs)} signatures (at most {VALIDATORS_MAX})"
        )
    w = _Writer().pack(_QC_HEAD, qc.phase, qc.view, qc.height, qc.block_hash, len(sigs))
    return w.entries(_SIG_HEAD, sigs, SIGNATURE_BYTES_MAX).finish()


def decode_qc(data: bytes) -> QuorumCert:
    r = _Reader(data)
    phase, view, height, block_hash, count = r.unpack(_QC_HEAD)
    r.limit(count, VALIDATORS_MAX, "signatures in a certificate")
    sigs = r.entries(_SIG_HEAD, count, SIGNATURE_BYTES_MAX)
    r.done()
    return QuorumCert(decode_phase(phase), view, height, block_hash, sigs)


_PHASES = frozenset(Phase)


def decode_phase(value: int) -> Phase:
    """The phase ``value`` names; DecodeError if none."""
    try:
        return Phase(value)
    except ValueError as e:
        raise DecodeError(f"unknown phase {value}") from e


# --- messages ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeoutEntry:
    """One signed timeout inside a timeout certificate (the QC itself stays with the leader)."""

    voter: int
    committed_height: int
    pqc_view: int | None
    signature: bytes


@dataclass(frozen=True, slots=True)
class TimeoutCert:
    """q signed timeouts for one view: proof that the next view may start without a commit.

    Each entry's claims (committed height, lock view) are signed by its voter but a signature
    is not proof: a Byzantine voter can sign any number. So the certificate carries the proof
    of the two claims anyone acts on: ``high_commit``, the commit certificate of the highest
    committed height among the entries (None when that height is 0), and ``high_lock``, the
    prepare QC of the highest lock view reported at that height (None when none is). A
    certificate whose highest claims are not proven this way is invalid as a whole.
    """

    view: int
    entries: tuple[TimeoutEntry, ...]
    high_commit: QuorumCert | None = None
    high_lock: QuorumCert | None = None

    @property
    def top_height(self) -> int:
        """The highest committed height its entries report."""
        return max((e.committed_height for e in self.entries), default=0)

    @property
    def top_lock_view(self) -> int | None:
        """The highest lock view reported at ``top_height`` (None: no entry there is locked)."""
        top = self.top_height
        locks = [
            e.pqc_view for e in self.entries if e.committed_height == top and e.pqc_view is not None
        ]
        return max(locks, default=None)


@dataclass(frozen=True, slots=True)
class Proposal:
    """Leader of ``view`` proposes ``block`` at height committed + 1.

    ``parent_cert`` is the commit certificate of the parent (None for height 1). Either the
    parent was committed in ``view - 1`` (a fresh view) or ``tc`` proves ``view - 1`` timed
    out; then, if ``tc.high_lock`` is at this height, ``block`` is that locked block.
    """

    view: int
    block: Block
    parent_cert: QuorumCert | None
    tc: TimeoutCert | None


@dataclass(frozen=True, slots=True)
class Vote:
    phase: Phase
    view: int
    height: int
    block_hash: bytes
    voter: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class QCMessage:
    """A prepare QC (replicas lock and commit-vote) or a commit QC (replicas commit)."""

    qc: QuorumCert


@dataclass(frozen=True, slots=True)
class Timeout:
    """Sender gives up on ``view``; carries the commit certificate that proves its committed
    height (None at height 0) and its highest prepare QC for committed + 1 with its block."""

    view: int
    committed_height: int
    commit_cert: QuorumCert | None
    high_pqc: QuorumCert | None
    pqc_block: Block | None
    voter: int
    signature: bytes

    def entry(self) -> TimeoutEntry:
        pqc_view = None if self.high_pqc is None else self.high_pqc.view
        return TimeoutEntry(self.voter, self.committed_height, pqc_view, self.signature)


@dataclass(frozen=True, slots=True)
class NewView:
    """A timeout certificate sent to a peer that is still in an older view."""

    tc: TimeoutCert


@dataclass(frozen=True, slots=True)
class TxForward:
    txs: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class SyncRequest:
    from_height: int
    count: int


@dataclass(frozen=True, slots=True)
class SyncResponse:
    blocks: tuple[tuple[Block, QuorumCert], ...]


Message = Proposal | Vote | QCMessage | Timeout | NewView | TxForward | SyncRequest | SyncResponse
