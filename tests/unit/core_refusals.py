"""Groups of refusal reasons for tests that count a family of refusals at once (a test
feeding several different rule-breaking proposals counts them as one family); the exact
(kind, reason) of each is tested in tests/unit/test_core_refusals.py."""

from __future__ import annotations

from collections.abc import Iterable

from node.core import Replica
from node.core.refusal import Kind, Reason, Refusal

__all__ = [
    "CATCHUP_BUDGET",
    "FORWARD_FAILS_ADMISSION",
    "NOT_LEADER",
    "PROPOSAL_CERT",
    "TIMEOUT_TOO_FAR_AHEAD",
    "TIMEOUT_UNPROVEN",
    "VERIFY_BUDGET",
    "VOTING_RULE",
    "refused",
]


def _of(kind: Kind, *reasons: Reason) -> frozenset[Refusal]:
    return frozenset((kind, r) for r in reasons)


# A proposal whose block breaks a voting rule (docs/consensus.md, rule 2).
VOTING_RULE = _of(
    Kind.PROPOSAL,
    Reason.PARENT_MISMATCH,
    Reason.TIME_NOT_AFTER_PARENT,
    Reason.TIME_TOO_FAR_AHEAD,
    Reason.TIME_TOO_FAR_BEHIND,
    Reason.NOT_FRESH_BLOCK,
    Reason.TOO_MANY_TXS,
    Reason.TOO_MANY_BYTES,
    Reason.EMPTY_AFTER_EMPTY,
    Reason.REPEATED_TX,
    Reason.ROOTS_DIFFER,
    Reason.NOT_JUSTIFIED,
    Reason.CONFLICTS_WITH_LOCK,
    Reason.BELOW_TC_COMMIT,
    Reason.IGNORES_TC_LOCK,
)
PROPOSAL_CERT = _of(Kind.PROPOSAL, Reason.INVALID_PARENT_CERT, Reason.INVALID_TC)
NOT_LEADER = _of(Kind.PROPOSAL, Reason.NOT_LEADER)
TIMEOUT_UNPROVEN = _of(
    Kind.TIMEOUT,
    Reason.VOTER_NOT_SENDER,
    Reason.MALFORMED_CLAIMS,
    Reason.BAD_SIGNATURE,
    Reason.UNPROVEN_COMMIT,
    Reason.UNPROVEN_LOCK,
)
TIMEOUT_TOO_FAR_AHEAD = _of(Kind.TIMEOUT, Reason.VIEW_TOO_FAR_AHEAD)
VERIFY_BUDGET = frozenset((k, Reason.OVER_VERIFY_BUDGET) for k in Kind)
CATCHUP_BUDGET = _of(Kind.SYNC_REQUEST, Reason.OVER_SYNC_BUDGET)
FORWARD_FAILS_ADMISSION = _of(Kind.TX_FORWARD, Reason.FAILS_ADMISSION)


def refused(node: Replica, group: Iterable[Refusal]) -> int:
    """How many of ``node``'s refusals fall in ``group``."""
    return sum(node.refused[r] for r in group)
