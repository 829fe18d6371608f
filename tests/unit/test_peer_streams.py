"""The peer port bounds the streams one validator holds (node/runtime/_transport.py
``PeerService``, node/runtime/_server.py ``new_peer_server``).

Only pinned validators pass the port's mutual TLS, so the attacker is a Byzantine validator
running modified code. Each ``Connect`` stream it holds can keep a frame of up to
PEER_FRAME_BYTES_MAX (~6.3 MB) in gRPC's buffers and delivers messages in turn with every
other peer's. Found by the review: the acceptor took any number of streams from one
validator, and the port limited neither streams per connection nor calls. Now one live
stream per source validator (the newest wins: an honest dialer reconnecting after a
half-open TCP connection is heard at once), PEER_STREAMS_PER_CONNECTION_MAX streams per
HTTP/2 connection, and PEER_RPCS_PER_VALIDATOR_MAX calls per validator on the port.

Real gRPC servers on 127.0.0.1 with pinned self-signed certificates, as validators run them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

from node.ceremony import _self_signed
from node.config import (
    PEER_CALLS_PER_VALIDATOR_MAX,
    PEER_RPCS_PER_VALIDATOR_MAX,
    PEER_STREAMS_PER_CONNECTION_MAX,
)
from node.core import Message, SyncRequest, encode_message
from node.keyfiles import cert_pin_from_pem, pem_cert, pem_key
from node.runtime import Metrics
from node.runtime._grpc import Ctx
from node.runtime._server import new_peer_server
from node.runtime._transport import (
    PeerLink,
    PeerService,
    peer_channel_credentials,
    peer_channel_options,
    peer_server_credentials,
)
from node.wire import peer_pb2 as peer_pb
from node.wire import peer_pb2_grpc as peer_grpc

WAIT_S = 3.0  # anything awaited here takes milliseconds on loopback


def _identity(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    return pem_cert(_self_signed(key, [name, "127.0.0.1"], datetime.now(UTC))), pem_key(key)


# The acceptor is validator 0; validators 1 and 2 dial it.
_CERTS, _KEYS = zip(*(_identity(f"node-{i:02}") for i in range(3)), strict=True)
_PINS = [cert_pin_from_pem(c) for c in _CERTS]


class _Node:
    """What the acceptor uses of a node: who it is, and where messages go."""

    def __init__(self) -> None:
        self.index = 0
        self.genesis = SimpleNamespace(chain_id="test-chain")
        self.replica = SimpleNamespace(committed_height=0)
        self.metrics = Metrics()
        self.delivered: list[tuple[int, Message]] = []
        self._arrived = asyncio.Event()

    def admit(self, src: int, size_bytes: int, kind: object) -> int:
        """Every peer within its byte budget (tests/unit/test_peer_bytes.py plays the budget)."""
        return 0

    def deliver(self, src: int, msg: Message) -> None:
        self.delivered.append((src, msg))
        self._arrived.set()

    async def delivery(self, src: int, msg: Message) -> None:
        async with asyncio.timeout(WAIT_S):
            while (src, msg) not in self.delivered:
                self._arrived.clear()
                await self._arrived.wait()

    def replaced(self) -> float:
        return float(self.metrics.peer_streams_replaced._value.get())


@asynccontextmanager
async def _port(servicer: peer_grpc.PeerServicer, validators: int = 3) -> AsyncIterator[int]:
    server = new_peer_server(validators)
    peer_grpc.add_PeerServicer_to_server(servicer, server)
    port = server.add_secure_port(
        "127.0.0.1:0", peer_server_credentials(_KEYS[0], _CERTS[0], _CERTS[1] + _CERTS[2])
    )
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


@asynccontextmanager
async def _channel(port: int, src: int) -> AsyncIterator[grpc.aio.Channel]:
    """One HTTP/2 connection from validator ``src`` to the acceptor, as PeerLink dials."""
    creds = peer_channel_credentials(_CERTS[0], _KEYS[src], _CERTS[src])
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{port}", creds, peer_channel_options("node-00")
    ) as channel:
        yield channel


class _Stream:
    """One Connect call; ``send`` puts a message on it."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._queue: asyncio.Queue[peer_pb.PeerFrame] = asyncio.Queue()
        self.call: Any = peer_grpc.PeerStub(channel).Connect(self._frames())

    async def _frames(self) -> AsyncIterator[peer_pb.PeerFrame]:
        while True:
            yield await self._queue.get()

    def send(self, msg: Message) -> None:
        self._queue.put_nowait(peer_pb.PeerFrame(messages=[encode_message(msg)]))

    async def hello(self) -> None:
        hello = await asyncio.wait_for(self.call.read(), WAIT_S)
        assert isinstance(hello, peer_pb.PeerHello), hello

    async def ended(self) -> grpc.StatusCode:
        """The call's status once the acceptor ends it. (gRPC hands the status over only
        after the messages before it are read: the hello, if the caller did not.)"""
        async with asyncio.timeout(WAIT_S):
            with contextlib.suppress(grpc.aio.AioRpcError):
                while await self.call.read() is not grpc.aio.EOF:
                    pass
            return await self.call.code()  # type: ignore[no-any-return]


async def test_a_newer_connect_from_a_validator_ends_the_older_and_only_it_delivers() -> None:
    """Scenario: validator 1 holds a stream, then connects again over a new connection (an
    honest dialer after a half-open TCP connection, or a Byzantine one multiplying its
    streams). The older ends at once with ABORTED (no keepalive wait), and what is sent on
    it after the newer was accepted is never delivered; the newer's messages are."""
    node = _Node()
    service = PeerService(node, _PINS)  # type: ignore[arg-type]
    async with _port(service) as port, _channel(port, 1) as first, _channel(port, 1) as second:
        older = _Stream(first)
        await older.hello()
        older.send(SyncRequest(1, 1))
        await node.delivery(1, SyncRequest(1, 1))
        newer = _Stream(second)
        await newer.hello()
        older.send(SyncRequest(2, 1))
        assert await older.ended() is grpc.StatusCode.ABORTED
        newer.send(SyncRequest(3, 1))
        await node.delivery(1, SyncRequest(3, 1))
        assert node.delivered == [(1, SyncRequest(1, 1)), (1, SyncRequest(3, 1))]
        assert node.replaced() == 1
        newer.call.cancel()


async def test_a_validator_opening_many_connect_streams_holds_at_most_one() -> None:
    """Scenario: a Byzantine validator opens Connect after Connect, each over a connection
    of its own (the per-connection stream limit does not apply across connections). Each
    new one ends the one before; only the last is live and delivers."""
    node = _Node()
    async with _port(PeerService(node, _PINS)) as port:  # type: ignore[arg-type]
        channels = [_channel(port, 1) for _ in range(6)]
        streams: list[_Stream] = []
        try:
            for c in channels:
                streams.append(_Stream(await c.__aenter__()))
                await streams[-1].hello()
                if len(streams) > 1:
                    assert await streams[-2].ended() is grpc.StatusCode.ABORTED
            for i, s in enumerate(streams, start=1):
                s.send(SyncRequest(i, 1))
            await node.delivery(1, SyncRequest(len(streams), 1))
            assert node.delivered == [(1, SyncRequest(len(streams), 1))]
            assert not streams[-1].call.done()
            assert node.replaced() == len(streams) - 1
        finally:
            for c in channels[: len(streams)]:
                await c.__aexit__(None, None, None)


async def test_connect_streams_opened_at_once_leave_one_live() -> None:
    """The same, the streams opened all at once: whichever the acceptor took last is the
    one live stream, every other ends (ABORTED, or RESOURCE_EXHAUSTED if it came while the
    validator's share of calls was full)."""
    node = _Node()
    async with _port(PeerService(node, _PINS)) as port:  # type: ignore[arg-type]
        channels = [_channel(port, 1) for _ in range(6)]
        streams = [_Stream(await c.__aenter__()) for c in channels]
        ends = {asyncio.ensure_future(s.ended()): s for s in streams}
        try:
            live = set(ends)
            async with asyncio.timeout(WAIT_S):
                while len(live) > 1:
                    _, live = await asyncio.wait(live, return_when=asyncio.FIRST_COMPLETED)
            # replaced, or refused while PEER_CALLS_PER_VALIDATOR_MAX others wrote hellos
            assert {t.result() for t in set(ends) - live} <= {
                grpc.StatusCode.ABORTED,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            }
            survivor = ends[live.pop()]
            survivor.send(SyncRequest(9, 1))
            await node.delivery(1, SyncRequest(9, 1))
            assert 1 <= node.replaced() <= len(streams) - 1
        finally:
            for t in ends:
                t.cancel()
            for c in channels:
                await c.__aexit__(None, None, None)


async def test_a_stream_from_another_validator_is_unaffected_by_a_replacement() -> None:
    node = _Node()
    service = PeerService(node, _PINS)  # type: ignore[arg-type]
    async with (
        _port(service) as port,
        _channel(port, 2) as two,
        _channel(port, 1) as a,
        _channel(port, 1) as b,
    ):
        other = _Stream(two)
        await other.hello()
        older = _Stream(a)
        await older.hello()
        newer = _Stream(b)
        await newer.hello()
        assert await older.ended() is grpc.StatusCode.ABORTED
        other.send(SyncRequest(7, 1))
        await node.delivery(2, SyncRequest(7, 1))
        assert not other.call.done() and node.replaced() == 1
        other.call.cancel()
        newer.call.cancel()


async def test_once_a_validators_stream_ends_a_fresh_one_is_accepted_and_nothing_leaks() -> None:
    """After validator 1's live stream ends (its dialer left), the acceptor forgets it: a
    fresh stream from 1 is accepted and delivers, replacing nothing."""
    node = _Node()
    service = PeerService(node, _PINS)  # type: ignore[arg-type]
    async with _port(service) as port:
        for round_ in range(1, 3):
            async with _channel(port, 1) as channel:
                stream = _Stream(channel)
                await stream.hello()
                stream.send(SyncRequest(round_, 1))
                await node.delivery(1, SyncRequest(round_, 1))
                stream.call.cancel()
            async with asyncio.timeout(WAIT_S):  # the acceptor's handler ends in turn
                while service._live:
                    await asyncio.sleep(0.01)
        assert node.replaced() == 0


class _Context:
    """A call's context as PeerService uses it, without gRPC: validator ``src``'s
    certificate, a hello that never leaves if ``stall`` (a Byzantine dialer holding HTTP/2
    flow control at zero), and the status the call ended with."""

    def __init__(self, src: int, *, stall: bool = False) -> None:
        self._pem, self._stall = _CERTS[src], stall
        self.code: grpc.StatusCode | None = None
        self.writing = asyncio.Event()

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self._pem]}

    async def write(self, msg: Any) -> None:
        self.writing.set()
        if self._stall:
            await asyncio.Event().wait()

    async def abort(self, code: grpc.StatusCode, details: str, trailers: Any = ()) -> None:
        self.code = code
        raise grpc.aio.AbortError(details)


async def _frames(*msgs: Message) -> AsyncIterator[peer_pb.PeerFrame]:
    for msg in msgs:
        yield peer_pb.PeerFrame(messages=[encode_message(msg)])


async def test_hellos_that_never_leave_hold_their_validators_share_not_the_port() -> None:
    """Scenario: a Byzantine validator opens Connect calls whose hello it never lets leave
    (HTTP/2 flow control held at zero), so they never become its live stream and nothing
    replaces them. Unbounded, they would fill the port's call limit and refuse every honest
    validator's reconnect. They hold PEER_CALLS_PER_VALIDATOR_MAX of the acceptor's calls,
    the next is refused RESOURCE_EXHAUSTED, another validator is served, and once they end
    validator 1 is served again."""
    node = _Node()
    service = PeerService(node, _PINS)  # type: ignore[arg-type]
    stalled = [_Context(1, stall=True) for _ in range(PEER_CALLS_PER_VALIDATOR_MAX)]
    held = [asyncio.create_task(service.Connect(_frames(), c)) for c in stalled]  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(WAIT_S):
            for c in stalled:
                await c.writing.wait()
        one_more = _Context(1)
        with contextlib.suppress(grpc.aio.AbortError):
            await service.Connect(_frames(SyncRequest(1, 1)), one_more)  # type: ignore[arg-type]
        assert one_more.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        await service.Connect(_frames(SyncRequest(2, 1)), _Context(2))  # type: ignore[arg-type]
        assert node.delivered == [(2, SyncRequest(2, 1))]
    finally:
        for t in held:
            t.cancel()
        await asyncio.gather(*held, return_exceptions=True)
    await service.Connect(_frames(SyncRequest(3, 1)), _Context(1))  # type: ignore[arg-type]
    assert node.delivered[-1] == (1, SyncRequest(3, 1))


class _Parked(peer_grpc.PeerServicer):
    """Holds every Connect call open and counts those whose handler runs."""

    def __init__(self) -> None:
        self.started = 0
        self.changed = asyncio.Event()

    async def Connect(
        self, request_iterator: AsyncIterator[peer_pb.PeerFrame], context: Ctx
    ) -> None:
        self.started += 1
        self.changed.set()
        await asyncio.Event().wait()

    async def count(self, at_least: int) -> int:
        """``started`` once it reaches ``at_least`` and no more arrive for a while."""
        async with asyncio.timeout(WAIT_S):
            while self.started < at_least:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.sleep(0.3)  # any further stream would arrive in a millisecond
        return self.started


async def test_one_connection_holds_at_most_the_peer_streams_per_connection_limit() -> None:
    """Scenario: a Byzantine validator opens many Connect calls on one HTTP/2 connection.
    The port advertises PEER_STREAMS_PER_CONNECTION_MAX concurrent streams: those beyond
    it wait in the dialer and no handler runs for them (a handler that holds every call,
    not PeerService, shows the limit alone)."""
    parked = _Parked()
    async with _port(parked) as port, _channel(port, 1) as channel:
        calls = [peer_grpc.PeerStub(channel).Connect(iter(())) for _ in range(6)]
        try:
            assert await parked.count(PEER_STREAMS_PER_CONNECTION_MAX) == (
                PEER_STREAMS_PER_CONNECTION_MAX
            )
            assert not any(c.done() for c in calls)  # the others wait, they are not refused
        finally:
            for c in calls:
                c.cancel()


async def test_calls_beyond_the_peer_ports_limit_are_refused() -> None:
    """Scenario: streams over many connections, none ending (a handler that holds every
    call). The port takes PEER_RPCS_PER_VALIDATOR_MAX calls per validator of genesis and
    refuses the next RESOURCE_EXHAUSTED before any handler runs (one validator here)."""
    parked = _Parked()
    async with _port(parked, validators=1) as port:
        channels = [_channel(port, 1) for _ in range(PEER_RPCS_PER_VALIDATOR_MAX + 1)]
        calls = [peer_grpc.PeerStub(await c.__aenter__()).Connect(iter(())) for c in channels]
        try:
            assert await parked.count(PEER_RPCS_PER_VALIDATOR_MAX) == PEER_RPCS_PER_VALIDATOR_MAX
            ended = [c for c in calls if c.done()]
            assert len(ended) == 1
            assert await ended[0].code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            for c in calls:
                c.cancel()
            for c in channels:
                await c.__aexit__(None, None, None)


class _Dialer:
    """What a PeerLink uses of its node: the chain, and where a peer's hello goes."""

    def __init__(self) -> None:
        self.genesis = SimpleNamespace(chain_id="test-chain")
        self.up = asyncio.Event()

    def peer_up(self, peer: int, height: int) -> None:
        self.up.set()


async def test_an_honest_link_is_heard_through_the_limited_port() -> None:
    """The control: validator 1's own PeerLink, as nodes run it, dials the port with its
    limits and is delivered; no stream is replaced."""
    node, dialer = _Node(), _Dialer()
    async with _port(PeerService(node, _PINS)) as port:  # type: ignore[arg-type]
        link = PeerLink(
            dialer,  # type: ignore[arg-type]
            0,
            address=f"127.0.0.1:{port}",
            tls_name="node-00",
            credentials=peer_channel_credentials(_CERTS[0], _KEYS[1], _CERTS[1]),
            metrics=Metrics(),
        )
        running = asyncio.create_task(link.run())
        try:
            async with asyncio.timeout(WAIT_S):
                await dialer.up.wait()
            link.send(encode_message(SyncRequest(5, 1)))
            await node.delivery(1, SyncRequest(5, 1))
            assert node.replaced() == 0
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
