"""Why the replica dropped a message: one closed set of (kind, reason) pairs.

Every early return that drops or refuses a message (or holds it back: a peer over its
byte budget) records one pair in
``Replica.refused`` (a ``collections.Counter``); the runtime exports the counter as
``ledger_consensus_refused_total{kind,reason}``. The reasons are part of the operator's
interface (dashboards, alerts): rename one only with the docs' table
(docs/consensus.md, "Refusals") and the dashboards.

Two families, told apart by ``BENIGN``: a *benign* drop is what honest peers cause too
(a message that arrives after its view ended, a re-send, a vote after the quorum); every
other reason is a message no honest, up-to-date peer sends (a bad signature, an unproven
claim, a block breaking a voting rule) or a peer over its budget. A rising count of the
second family names the peer's misbehaviour; of the first, at most a slow network.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BENIGN", "Kind", "Reason", "Refusal"]


class Kind(StrEnum):
    """The message kind a refusal is about (the label ``kind``)."""

    PROPOSAL = "proposal"
    VOTE = "vote"
    QC = "qc"
    TIMEOUT = "timeout"
    NEW_VIEW = "new_view"
    SYNC_REQUEST = "sync_request"
    SYNC_RESPONSE = "sync_response"
    TX_FORWARD = "tx_forward"


class Reason(StrEnum):
    """Why (the label ``reason``); docs/consensus.md has one line per value."""

    # --- benign: honest peers cause these too --------------------------------------------
    HALTED = "halted"  # this node halted (divergence): it handles nothing more
    STALE_VIEW = "stale_view"  # for a view this node has left
    STALE_HEIGHT = "stale_height"  # for a height this node has committed
    FUTURE_VIEW = "future_view"  # for a later view its certificates do not move us to
    DUPLICATE = "duplicate"  # a re-send of what this node holds
    ALREADY_VOTED = "already_voted"  # this node voted (or gave up) in the view already
    QUORUM_COMPLETE = "quorum_complete"  # a vote after the certificate was formed
    NO_PROPOSAL = "no_proposal"  # a vote for a proposal this node has not seen
    OTHER_BLOCK = "other_block"  # a vote for another block than this view's proposal
    UNKNOWN_BLOCK = "unknown_block"  # a prepare QC for a block this node does not hold
    NOT_HELD = "not_held"  # a catch-up request for blocks this node does not have
    HELPED_RECENTLY = "helped_recently"  # answered already (a stale timeout, a relayed vote)
    MEMPOOL_FULL = "mempool_full"  # a forwarded transaction finds the mempool full
    # --- a peer over its budget (docs/consensus.md "Work one peer can cause") -------------
    OVER_VERIFY_BUDGET = "over_verify_budget"
    OVER_SYNC_BUDGET = "over_sync_budget"
    # a message that found its sender's byte budget empty: held back (not dropped) until it
    # refills, the sender's stream unread meanwhile (Replica.admit, before any decoding)
    OVER_BYTE_BUDGET = "over_byte_budget"
    OVER_MEMPOOL_SHARE = "over_mempool_share"
    VIEW_TOO_FAR_AHEAD = "view_too_far_ahead"  # a timeout TIMEOUT_VIEWS_TRACKED_MAX ahead
    # --- invalid: no honest, up-to-date peer sends these ----------------------------------
    WRONG_CHAIN = "wrong_chain"
    NOT_LEADER = "not_leader"  # a proposal from (or a vote to) who does not lead the view
    VOTER_NOT_SENDER = "voter_not_sender"  # a vote or timeout signed in another's name
    BAD_SIGNATURE = "bad_signature"
    INVALID_CERTIFICATE = "invalid_certificate"  # a QC or TC that does not verify
    INVALID_PARENT_CERT = "invalid_parent_cert"  # a proposal's parent commit certificate
    INVALID_TC = "invalid_tc"  # a proposal's timeout certificate (wrong view or unproven)
    MALFORMED_CLAIMS = "malformed_claims"  # a timeout's claims and proofs do not pair up
    UNPROVEN_COMMIT = "unproven_commit"  # a timeout's committed height without its proof
    UNPROVEN_LOCK = "unproven_lock"  # a timeout's lock without its prepare QC and block
    PARENT_MISMATCH = "parent_mismatch"  # a block not extending this node's committed one
    TIME_NOT_AFTER_PARENT = "time_not_after_parent"
    TIME_TOO_FAR_AHEAD = "time_too_far_ahead"  # more than BLOCK_TIME_DRIFT_MAX_MS ahead
    TIME_TOO_FAR_BEHIND = "time_too_far_behind"  # a fresh block more than the drift behind
    NOT_FRESH_BLOCK = "not_fresh_block"  # a new block naming another view, proposer or parent view
    TOO_MANY_TXS = "too_many_txs"
    TOO_MANY_BYTES = "too_many_bytes"
    EMPTY_AFTER_EMPTY = "empty_after_empty"  # an empty block on a parent with no results
    REPEATED_TX = "repeated_tx"
    ROOTS_DIFFER = "roots_differ"  # the block's state or results root is not ours
    NOT_JUSTIFIED = "not_justified"  # neither a parent certificate of view - 1 nor a TC
    CONFLICTS_WITH_LOCK = "conflicts_with_lock"  # a fresh block against this node's lock
    BELOW_TC_COMMIT = "below_tc_commit"  # a height its TC proves committed already
    IGNORES_TC_LOCK = "ignores_tc_lock"  # not the block of the TC's highest lock
    FAILS_ADMISSION = "fails_admission"  # a forwarded transaction fails the precheck
    TX_TOO_LARGE = "tx_too_large"


Refusal = tuple[Kind, Reason]

BENIGN: frozenset[Reason] = frozenset(
    {
        Reason.HALTED,
        Reason.STALE_VIEW,
        Reason.STALE_HEIGHT,
        Reason.FUTURE_VIEW,
        Reason.DUPLICATE,
        Reason.ALREADY_VOTED,
        Reason.QUORUM_COMPLETE,
        Reason.NO_PROPOSAL,
        Reason.OTHER_BLOCK,
        Reason.UNKNOWN_BLOCK,
        Reason.NOT_HELD,
        Reason.HELPED_RECENTLY,
        Reason.MEMPOOL_FULL,
    }
)
