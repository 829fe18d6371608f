"""The peer acceptor (node/runtime/_transport.py) bounds the work of one frame: forwarded
transactions are delivered PEER_FORWARD_CHUNK_TXS at a time with an event-loop turn in
between, and a frame of more than PEER_FRAME_MESSAGES_MAX messages is refused whole.
(tests/cluster/test_rogue.py plays both against real processes.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from node.config import PEER_FORWARD_CHUNK_TXS, PEER_FRAME_MESSAGES_MAX
from node.core import Message, SyncRequest, TxForward, encode_message
from node.keyfiles import cert_pin_from_pem
from node.runtime import Metrics, _transport
from node.runtime._transport import FRAME_REFUSED, PeerLink, PeerService
from node.wire import peer_pb2 as peer_pb
from tests.tls_helpers import _make_ca, _make_node_cert, _pem_cert

_CA = _make_ca("test", datetime.now(UTC))
_PEER_PEM = _pem_cert(_make_node_cert(_CA, "node-01", "127.0.0.1")[1])


class _Node:
    """What the acceptor uses of a node: who it is, and where messages go (with the loop
    turn each arrived in)."""

    def __init__(self) -> None:
        self.index = 0
        self.genesis = SimpleNamespace(chain_id="test-chain")
        self.replica = SimpleNamespace(committed_height=0)
        self.metrics = Metrics()
        self.turn = 0
        self.delivered: list[tuple[int, Message, int]] = []

    def admit(self, src: int, size_bytes: int, kind: object) -> int:
        """Every peer within its byte budget (tests/unit/test_peer_bytes.py plays the budget)."""
        return 0

    def deliver(self, src: int, msg: Message) -> None:
        self.delivered.append((src, msg, self.turn))


class _Context:
    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [_PEER_PEM]}

    async def write(self, msg: Any) -> None:
        assert isinstance(msg, peer_pb.PeerHello)


async def _serve(frames: list[list[Message]]) -> _Node:
    """Run one Connect call from validator 1 over ``frames``, counting loop turns."""
    node = _Node()
    service = PeerService(node, [b"\x00" * 32, cert_pin_from_pem(_PEER_PEM)])  # type: ignore[arg-type]

    async def requests() -> AsyncIterator[peer_pb.PeerFrame]:
        for frame in frames:
            yield peer_pb.PeerFrame(messages=[encode_message(m) for m in frame])

    async def count_turns() -> None:
        while True:
            node.turn += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    try:
        await service.Connect(requests(), _Context())  # type: ignore[arg-type]
    finally:
        counter.cancel()
    return node


async def test_a_forward_is_checked_in_chunks_one_per_loop_turn() -> None:
    txs = tuple(bytes([i]) * 8 for i in range(2 * PEER_FORWARD_CHUNK_TXS + 3))
    node = await _serve([[TxForward(txs), SyncRequest(1, 1)]])
    parts = [m for _, m, _ in node.delivered]
    assert parts[:-1] == [
        TxForward(txs[i : i + PEER_FORWARD_CHUNK_TXS])
        for i in range(0, len(txs), PEER_FORWARD_CHUNK_TXS)
    ]
    assert parts[-1] == SyncRequest(1, 1) and {src for src, _, _ in node.delivered} == {1}
    turns = [turn for _, _, turn in node.delivered]
    assert len(set(turns)) == len(turns), "two chunks were handled in one loop turn"


async def test_a_frame_of_too_many_messages_is_refused_whole() -> None:
    too_many: list[Message] = [SyncRequest(1, 1)] * (PEER_FRAME_MESSAGES_MAX + 1)
    node = await _serve([too_many, [SyncRequest(2, 1)]])
    assert [m for _, m, _ in node.delivered] == [SyncRequest(2, 1)]
    assert node.metrics.refused.labels(reason=FRAME_REFUSED)._value.get() == 1


def _link() -> PeerLink:
    return PeerLink(
        _Node(),  # type: ignore[arg-type]
        1,
        address="127.0.0.1:1",
        tls_name="node-01",
        credentials=None,  # type: ignore[arg-type]
        metrics=Metrics(),
    )


async def test_a_burst_sent_in_one_loop_turn_leaves_in_one_frame() -> None:
    """The driver sends a whole Ready's messages before the link's writer runs, so the
    votes and forwards of one drain to one peer cost one stream write, not one each."""
    link = _link()
    burst = [encode_message(SyncRequest(h, 1)) for h in range(1, 11)]
    for data in burst:
        link.send(data)
    frames = link._frames(link._session_id)
    assert list((await anext(frames)).messages) == burst
    link.send(burst[0])  # the queue was emptied: the next frame holds only what came next
    assert list((await anext(frames)).messages) == burst[:1]


async def test_a_frame_stops_at_the_frame_byte_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    burst = [encode_message(SyncRequest(h, 1)) for h in range(1, 8)]
    monkeypatch.setattr(_transport, "PEER_FRAME_BYTES_MAX", 3 * len(burst[0]))
    link = _link()
    for data in burst:
        link.send(data)
    frames = link._frames(link._session_id)
    sizes = [len((await anext(frames)).messages) for _ in range(3)]
    assert sizes == [3, 3, 1]
