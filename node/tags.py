"""Every domain-separation tag, in one home (docs/adr/0011-domain-tags.md).

A tag is the first bytes of what is signed or hashed, naming what the rest is, so that no
signature or digest made for one purpose is ever valid for another: a signed transaction
is never a vote, a state root is never the parent hash of block 1. Each tag names exactly
one kind of statement (what builds it is named beside it); no tag serves two;
``tests/unit/test_tags.py`` checks that the tags are distinct, that none is a prefix of
another (so tag plus data never reads as another tag plus other data), and that no tag
literal appears anywhere else in ``node/`` or ``client/``.

Untagged digests, and why they need no tag, are in the ADR: the transaction id
(SHA-256 of the body), the chain id (of the genesis encoding), the block hash (of the
header) and the RFC 6962 Merkle hashes, whose one-byte prefixes are below.

Pure constants: no imports, so every layer (the pure cores, the store, the SDK) reads the
same bytes.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BUNDLE",
    "DEMO_KEY",
    "FINGERPRINT",
    "GENESIS_BLOCK",
    "GENESIS_STATE",
    "LEAF_EVENT",
    "LEAF_PARTIES",
    "LEAF_RECORDED",
    "LEAF_UNRECORDED",
    "MERKLE_LEAF",
    "MERKLE_NODE",
    "PARTIES_SECRET",
    "PARTY_LEAF",
    "PARTY_POSITIONS",
    "PARTY_SALT",
    "PREFIX_TAGS",
    "RECORD_MAGICS",
    "REQUEST",
    "SAFETY_FILE_SLOT",
    "SAFETY_STATE",
    "SAFETY_STATE_V1",
    "STATE",
    "TIMEOUT",
    "TX",
    "VOTE",
]

# --- signed (Ed25519 over tag || canonical bytes) -----------------------------------------
TX: Final = b"dvp-ledger/v1/tx\x00"  # a transaction body (node.settlement: SignedTx)
VOTE: Final = b"dvp-ledger/v1/vote\x00"  # a prepare or commit vote (core: vote_message)
TIMEOUT: Final = b"dvp-ledger/v1/timeout\x00"  # giving up a view (core: timeout_message)
REQUEST: Final = b"dvp-ledger/v1/request\x00"  # a client call's identity (node.access)
# an operator's public key bundle for the genesis ceremony (node.ceremony: Bundle)
BUNDLE: Final = b"dvp-ledger/v1/bundle\x00"

# --- hashed (SHA-256 over tag || data) ----------------------------------------------------
STATE: Final = b"dvp-ledger/v1/state\x00"  # the state root after a block (settlement)
GENESIS_STATE: Final = b"dvp-ledger/v1/genesis-state\x00"  # the state root at height 0
GENESIS_BLOCK: Final = b"dvp-ledger/v1/genesis-block\x00"  # block 1's parent hash (core)
DEMO_KEY: Final = b"dvp-ledger/demo-key\x00"  # demo and test key seeds (node.genesis)
# what operators compare out of band after a ceremony (node.ceremony: fingerprint)
FINGERPRINT: Final = b"dvp-ledger/v1/ceremony-fingerprint\x00"
# a block's party index (node.settlement: PartyIndex, ADR 0025): the block secret (over
# its transaction ids), a party's salt (from that secret), the digest of a party's salted
# positions, and one leaf of the index (a party id and that digest)
PARTIES_SECRET: Final = b"dvp-ledger/v1/parties-secret\x00"
PARTY_SALT: Final = b"dvp-ledger/v1/party-salt\x00"
PARTY_POSITIONS: Final = b"dvp-ledger/v1/party-positions\x00"
PARTY_LEAF: Final = b"dvp-ledger/v1/party-leaf\x00"

# The tags above, by name: one family, all distinct and prefix-free (tests/unit/test_tags.py).
PREFIX_TAGS: Final = {
    "TX": TX,
    "VOTE": VOTE,
    "TIMEOUT": TIMEOUT,
    "REQUEST": REQUEST,
    "STATE": STATE,
    "GENESIS_STATE": GENESIS_STATE,
    "GENESIS_BLOCK": GENESIS_BLOCK,
    "DEMO_KEY": DEMO_KEY,
    "BUNDLE": BUNDLE,
    "FINGERPRINT": FINGERPRINT,
    "PARTIES_SECRET": PARTIES_SECRET,
    "PARTY_SALT": PARTY_SALT,
    "PARTY_POSITIONS": PARTY_POSITIONS,
    "PARTY_LEAF": PARTY_LEAF,
}

# --- record magics: the first bytes of a stored record, naming its format -------------------
SAFETY_STATE: Final = b"dvp-safety/2"  # the consensus safety state (core: SafetyState)
SAFETY_STATE_V1: Final = b"dvp-safety/1"  # the same without its owner: read, never written
SAFETY_FILE_SLOT: Final = b"dvpsafe1"  # a slot of the safety-state file (store, ADR 0010)
RECORD_MAGICS: Final = {
    "SAFETY_STATE": SAFETY_STATE,
    "SAFETY_STATE_V1": SAFETY_STATE_V1,
    "SAFETY_FILE_SLOT": SAFETY_FILE_SLOT,
}

# --- RFC 6962 Merkle trees (node.merkle): leaf and interior-node hash prefixes -------------
MERKLE_LEAF: Final = b"\x00"
MERKLE_NODE: Final = b"\x01"

# --- result leaves (node.settlement: result_leaf, ADR 0007) ---------------------------------
# A receipt proves an id's outcome only from a RECORDED leaf; no unrecorded copy's leaf can
# take that form, whatever its id and code.
LEAF_RECORDED: Final = b"\x01"
LEAF_UNRECORDED: Final = b"\x02"
# A later event of a pending instruction (settled, partly settled, failed at its deadline,
# cancelled), appended after the block's transaction results (ADR 0014): never a
# transaction's own result, so a receipt of the one can never be read as the other.
LEAF_EVENT: Final = b"\x03"
# The root of the block's party index (ADR 0025), the last leaf of every results tree:
# never a result, so no receipt of a transaction or an event can be read as it.
LEAF_PARTIES: Final = b"\x04"
