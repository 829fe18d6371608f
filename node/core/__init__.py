"""Consensus core: a pure BFT state machine (no I/O, no clock, no randomness).

See ``node/core/replica.py`` for the theory of operation and docs/consensus.md for the
protocol and its safety argument.
"""

from node.core.codec import EncodeError, decode_message, encode_message
from node.core.mempool import AddResult, Mempool, tx_key
from node.core.quorum import Quorum, classic_quorum
from node.core.replica import BlockSource, CoreConfig, Ready, Replica
from node.core.safety import SafetyOwner, SafetyState
from node.core.signing import (
    Ed25519Signer,
    Ed25519Verifier,
    Signer,
    Verifier,
    verify_certificate,
    verify_timeout_cert,
)
from node.core.types import (
    Block,
    BlockHeader,
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
    decode_block,
    decode_block_header,
    decode_header,
    decode_qc,
    encode_block,
    encode_qc,
    genesis_hash,
    timeout_message,
    vote_message,
)

__all__ = [
    "AddResult",
    "Block",
    "BlockHeader",
    "BlockSource",
    "CoreConfig",
    "DecodeError",
    "Ed25519Signer",
    "Ed25519Verifier",
    "EncodeError",
    "Mempool",
    "Message",
    "NewView",
    "Phase",
    "Proposal",
    "QCMessage",
    "Quorum",
    "QuorumCert",
    "Ready",
    "Replica",
    "SafetyOwner",
    "SafetyState",
    "Signer",
    "SyncRequest",
    "SyncResponse",
    "Timeout",
    "TimeoutCert",
    "TimeoutEntry",
    "TxForward",
    "Verifier",
    "Vote",
    "classic_quorum",
    "decode_block",
    "decode_block_header",
    "decode_header",
    "decode_message",
    "decode_qc",
    "encode_block",
    "encode_message",
    "encode_qc",
    "genesis_hash",
    "timeout_message",
    "tx_key",
    "verify_certificate",
    "verify_timeout_cert",
    "vote_message",
]
