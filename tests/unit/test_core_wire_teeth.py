"""The consensus wire codec (node/core/codec.py), rules no test held until review 34e's
mutation run: the kind a message's tag byte names (what the transport counts a refused
or over-budget message under, before decoding), and the items decoding a message built
(what a peer is charged beyond its bytes) for every optional part. Each test names the
survivor it kills in docs/testing.md ("The consensus driver and the wire codec")."""

from __future__ import annotations

import pytest

from node.core import (
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
    decode_message,
    encode_message,
)
from node.core.codec import decoded_items, message_kind
from node.core.refusal import Kind
from tests.unit.test_core_wire import EXAMPLES, _block

KIND_OF = {
    Proposal: Kind.PROPOSAL,
    Vote: Kind.VOTE,
    QCMessage: Kind.QC,
    Timeout: Kind.TIMEOUT,
    NewView: Kind.NEW_VIEW,
    TxForward: Kind.TX_FORWARD,
    SyncRequest: Kind.SYNC_REQUEST,
    SyncResponse: Kind.SYNC_RESPONSE,
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_message_is_counted_under_the_kind_its_first_byte_names(name: str) -> None:
    """The kind is the tag's, read from the first byte alone: the same for the message
    and for junk after the tag (the transport charges the bytes to that kind before it
    decodes them). Kills ``data[1]`` and ``data[-1]`` for ``data[0]``, and ``if not
    data`` (every message counted under no kind)."""
    wire = encode_message(EXAMPLES[name])
    kind = KIND_OF[type(EXAMPLES[name])]
    assert message_kind(wire) is kind
    assert message_kind(wire[:1]) is kind
    assert message_kind(wire[:1] + b"\xff" * 40) is kind


def test_no_kind_for_no_bytes_or_an_unknown_tag() -> None:
    assert message_kind(b"") is None
    for tag in (0, 9, 255):
        assert message_kind(bytes([tag]) + encode_message(EXAMPLES["vote"])[1:]) is None


def _qc(signatures: int) -> QuorumCert:
    return QuorumCert(
        Phase.COMMIT, 3, 1, bytes(32), tuple((i, b"s" * 64) for i in range(signatures))
    )


def _tc(entries: int, high_commit: int | None, high_lock: int | None) -> TimeoutCert:
    return TimeoutCert(
        4,
        tuple(TimeoutEntry(i, 1, None, b"a" * 64) for i in range(entries)),
        None if high_commit is None else _qc(high_commit),
        None if high_lock is None else _qc(high_lock),
    )


# What the decoder builds, counted by hand: a block's transactions, each certificate's
# signatures, each timeout entry. Sizes chosen so no two sums or other combinations agree
# (5 entries, 3 and 7 signatures, 2 transactions).
ITEMS = {
    "proposal with cert and full tc": (
        Proposal(5, _block(), _qc(3), _tc(5, 7, 11)),
        2 + 3 + 5 + 7 + 11,
    ),
    "proposal with a tc without certs": (Proposal(5, _block(), None, _tc(5, None, None)), 2 + 5),
    "proposal with a tc, lock only": (Proposal(5, _block(), None, _tc(5, None, 7)), 2 + 5 + 7),
    "proposal with a tc, commit only": (
        Proposal(5, _block(), _qc(3), _tc(5, 7, None)),
        2 + 3 + 5 + 7,
    ),
    "proposal bare": (Proposal(5, _block(), None, None), 2),
    "timeout unlocked": (Timeout(5, 0, None, None, None, 2, b"w" * 64), 0),
    "timeout with a commit cert": (Timeout(5, 1, _qc(3), None, None, 2, b"w" * 64), 3),
    "timeout locked": (Timeout(5, 1, _qc(3), _qc(7), _block(), 2, b"w" * 64), 3 + 7 + 2),
    "new view": (NewView(_tc(5, 3, 7)), 5 + 3 + 7),
    "new view bare": (NewView(_tc(5, None, None)), 5),
    "qc": (QCMessage(_qc(7)), 7),
}


@pytest.mark.parametrize("name", sorted(ITEMS))
def test_a_message_is_charged_each_item_its_decoding_built(name: str) -> None:
    """A Byzantine peer pays per object its bytes make this node build; an absent part
    builds nothing and is charged nothing. Before, only a proposal without a TC and a
    timeout with every part were counted: the TC's sum (22 edits) and an absent part
    counted 1 or -1 (4) survived; ``-`` for ``+`` let a proposal's TC cut its charge."""
    msg, items = ITEMS[name]
    assert decode_message(encode_message(msg)) == msg  # the bytes a peer would send
    assert decoded_items(msg) == items
