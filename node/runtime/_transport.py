"""Validator-to-validator transport: one long-lived gRPC stream per ordered pair.

Node i dials node j and sends its consensus messages to j over the request side of a
``Peer.Connect`` stream; j authenticates i by the TLS client certificate that genesis pins
for validator i, so ``src`` of every delivered message is proven, never claimed. Each link
has a bounded send queue (oldest dropped when full: consensus tolerates loss, and a
client's transaction stays in the accepting node's mempool until a block holds it) and
reconnects with capped exponential backoff, cut short once when that peer dials us
(``PeerLink.peer_dialed_in``: a restarted validator hears its peers at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import grpc

from node.config import (
    DECODED_ITEM_BYTES_MIN,
    PEER_CALLS_PER_VALIDATOR_MAX,
    PEER_CONNECT_CHARGE_BYTES,
    PEER_FORWARD_CHUNK_TXS,
    PEER_FRAME_BYTES_MAX,
    PEER_FRAME_MESSAGES_MAX,
    PEER_ITEM_CHARGE_BYTES,
    PEER_JUNK_LOG_INTERVAL_MS,
    PEER_MESSAGE_CHARGE_MIN_BYTES,
    PEER_RECONNECT_BASE_MS,
    PEER_RECONNECT_MAX_MS,
    PEER_SEND_QUEUE_BYTES_MAX,
    PEER_SEND_QUEUE_MAX,
    PEER_SESSION_STABLE_MS,
    PEER_STREAMS_PER_CONNECTION_MAX,
)
from node.core import DecodeError, Message, TxForward, decode_message
from node.core.codec import message_kind
from node.core.refusal import Kind
from node.keyfiles import cert_pin_from_pem
from node.runtime._grpc import Ctx
from node.runtime._logs import event
from node.runtime._metrics import Metrics
from node.runtime._node import Node
from node.runtime._refuse import refuse
from node.wire import peer_pb2 as peer_pb
from node.wire import peer_pb2_grpc as peer_grpc
from node.wire.errors import Reason

__all__ = [
    "PEER_SERVER_OPTIONS",
    "PeerLink",
    "PeerService",
    "peer_channel_credentials",
    "peer_channel_options",
    "peer_server_credentials",
]

FRAME_REFUSED = "frame of no message or more than PEER_FRAME_MESSAGES_MAX messages"
MESSAGE_REFUSED = "message that does not decode"
STREAM_REPLACED = "a newer Connect stream from this validator replaced this one"
CALLS_REFUSED = "this validator has PEER_CALLS_PER_VALIDATOR_MAX Connect calls in progress here"
_FRAME_OVERHEAD_BYTES = 64 * 1024  # protobuf framing around the messages of one frame
_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
]
PEER_SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", PEER_FRAME_BYTES_MAX + _FRAME_OVERHEAD_BYTES),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_concurrent_streams", PEER_STREAMS_PER_CONNECTION_MAX),
]


def peer_channel_credentials(
    peer_cert: bytes, key_pem: bytes, cert: bytes
) -> grpc.ChannelCredentials:
    """What a dialer presents and trusts on a peer link (the one place dialers build them):
    its own certificate (the acceptor pins it), and as the only root the peer's own pinned
    certificate, so no CA-signed impostor passes."""
    return grpc.ssl_channel_credentials(peer_cert, key_pem, cert)


def peer_server_credentials(key_pem: bytes, cert: bytes, pinned: bytes) -> grpc.ServerCredentials:
    """What an acceptor presents and trusts on its peer port: its own certificate, and as
    client roots only the pinned certificates (``pinned``, PEM concatenated); a dialer must
    present one (the pin lookup then tells which validator it is)."""
    return grpc.ssl_server_credentials([(key_pem, cert)], pinned, require_client_auth=True)


def peer_channel_options(tls_name: str) -> list[tuple[str, int | str]]:
    return [
        ("grpc.ssl_target_name_override", tls_name),
        ("grpc.max_send_message_length", PEER_FRAME_BYTES_MAX + _FRAME_OVERHEAD_BYTES),
        *_KEEPALIVE,
    ]


class PeerService(peer_grpc.PeerServicer):
    """The acceptor side: authenticate the dialer, then deliver its messages in order.

    One live ``Connect`` per source validator: a newer one ends the older (newest wins, so
    an honest dialer that reconnects after a half-open TCP connection is heard at once, not
    after keepalive notices). A Byzantine validator's many streams would each hold a frame
    in gRPC's buffers and each take turns on the event loop. And at most
    PEER_CALLS_PER_VALIDATOR_MAX calls per source in the handler at once, live or not: one
    whose hello never leaves holds its own validator's share, not the port's call limit."""

    def __init__(
        self,
        node: Node,
        pins: Sequence[bytes],
        *,
        clock_ms: Callable[[], float] | None = None,
        dialed_in: Callable[[int], None] = lambda src: None,
    ) -> None:
        self._node = node
        self._dialed_in = dialed_in  # told each source whose hello left: PeerLink.peer_dialed_in
        self._clock_ms = clock_ms or (lambda: time.monotonic() * 1000)
        # Per (source, line): when it was last logged, and how many were left out since
        # (at most a few lines per validator of genesis).
        self._logged_ms: dict[tuple[int, str], float] = {}
        self._unlogged: Counter[tuple[int, str]] = Counter()
        self._index_by_pin = {pin: i for i, pin in enumerate(pins)}
        self._pin_by_pem: dict[bytes, int | None] = {}
        self._live: dict[int, asyncio.Task[object]] = {}  # source -> its live Connect's task
        self._calls = [0] * len(pins)  # Connect calls of each source in this servicer

    def _authenticate(self, context: Ctx) -> int | None:
        pems = list(context.auth_context().get("x509_pem_cert") or [])
        if len(pems) != 1:
            return None
        pem = pems[0]
        if pem not in self._pin_by_pem:
            try:
                self._pin_by_pem[pem] = self._index_by_pin.get(cert_pin_from_pem(pem))
            except ValueError:
                self._pin_by_pem[pem] = None
        src = self._pin_by_pem[pem]
        return None if src == self._node.index else src

    async def Connect(
        self, request_iterator: AsyncIterator[peer_pb.PeerFrame], context: Ctx
    ) -> None:
        src = self._authenticate(context)
        if src is None:
            await refuse(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "peer certificate is not pinned for any other validator in genesis",
                Reason.PEER_NOT_PINNED,
            )
        if self._calls[src] >= PEER_CALLS_PER_VALIDATOR_MAX:
            await refuse(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                CALLS_REFUSED,
                Reason.LIMIT_REACHED,
                {"limit": "peer calls per validator"},
            )
        self._calls[src] += 1
        try:
            # Taking a call in costs the acceptor what ~0.5 MiB of messages does: a validator
            # reconnecting in a loop waits here, holding its own share of calls (review 34t).
            await self._within_budget(src, PEER_CONNECT_CHARGE_BYTES)
            node = self._node
            await context.write(
                peer_pb.PeerHello(
                    chain_id=node.genesis.chain_id,
                    validator=node.index,
                    committed_height=node.replica.committed_height,
                )
            )
            self._dialed_in(src)
            await self._live_stream(src, request_iterator, context)
        finally:
            self._calls[src] -= 1

    async def _live_stream(
        self, src: int, request_iterator: AsyncIterator[peer_pb.PeerFrame], context: Ctx
    ) -> None:
        """Deliver as ``src``'s one live stream until the dialer leaves or a newer replaces
        it. Only now, the hello written: a stream replaced is cancelled while it reads or
        yields, never in a write (whose core operation would outlive the cancellation and
        refuse the status: the call would stay open)."""
        me = asyncio.current_task()
        if me is None:  # grpc.aio runs each call's handler in a task of its own
            raise RuntimeError("Peer.Connect handler outside a task")
        self._replace(src, me)
        try:
            await self._receive(src, request_iterator)
        except asyncio.CancelledError:
            if self._live.get(src) is me:
                raise  # gRPC's (the dialer left, the server stops): not a replacement
            # Replaced: end the call with a status (a handler cancelled ends no call: the
            # stream would stay open, its dialer waiting). Nothing was delivered since.
            me.uncancel()
            await refuse(
                context, grpc.StatusCode.ABORTED, STREAM_REPLACED, Reason.PEER_STREAM_REPLACED
            )
        finally:
            if self._live.get(src) is me:  # a replaced stream leaves the newer's entry
                del self._live[src]

    def _replace(self, src: int, me: asyncio.Task[object]) -> None:
        """Make ``me`` the live stream of ``src``, ending the older one if any. No await
        between this and the older's cancellation: the older delivers nothing more."""
        older = self._live.get(src)
        self._live[src] = me
        if older is not None:
            older.cancel()
            # Logged at most once an interval: a validator replacing its stream in a loop
            # wrote a line per call (17 KB of log a second, review 34t).
            self._log_throttled(src, "peer_stream_replaced", logging.INFO)
            self._node.metrics.peer_streams_replaced.inc()

    async def _receive(self, src: int, request_iterator: AsyncIterator[peer_pb.PeerFrame]) -> None:
        node = self._node
        async for frame in request_iterator:
            count = len(frame.messages)
            # What gRPC received and protobuf parsed outside the messages (their tags and
            # lengths, and any field PeerFrame does not know, which protobuf keeps): charged
            # with the frame's first message. Not charged, an empty frame padded to 5 MiB
            # cost 16 KiB of the budget (review 34t).
            outside = frame.ByteSize() - sum(map(len, frame.messages))
            if not 0 < count <= PEER_FRAME_MESSAGES_MAX:
                # An honest sender's frame holds 1 to PEER_FRAME_MESSAGES_MAX messages: the
                # frame is the peer's fault. gRPC parsed it entry by entry all the same (2
                # million one-byte entries: 81 ms): charged as that many messages, at least
                # one (an empty frame is a read too).
                charge = max(count, 1) * PEER_MESSAGE_CHARGE_MIN_BYTES + outside
                await self._within_budget(src, charge)
                self._junk(src, FRAME_REFUSED, "bad_peer_frame", messages=count)
                await asyncio.sleep(0)
                continue
            for data in frame.messages:
                await self._within_budget(src, len(data) + outside, message_kind(data))
                outside = 0
                try:
                    msg = decode_message(data)
                except DecodeError as e:
                    self._junk(src, MESSAGE_REFUSED, "bad_peer_message", error=str(e))
                    # The decoder may have built every item before the last byte refused
                    # the message: charged as the most its bytes could hold (they are
                    # charged once decoded, and this one never is).
                    if items_max := len(data) // DECODED_ITEM_BYTES_MIN:
                        await self._within_budget(src, items_max * PEER_ITEM_CHARGE_BYTES)
                    # A message that does not decode takes its turn as one that does: a
                    # frame of junk held the loop for the whole frame (review 31).
                    await asyncio.sleep(0)
                    continue
                for part in _parts(msg):
                    node.deliver(src, part)
                    # One at a time: other peers, clients and timers run in between.
                    await asyncio.sleep(0)

    async def _within_budget(self, src: int, size_bytes: int, kind: Kind | None = None) -> None:
        """Return once ``src``'s byte budget takes ``size_bytes`` (charged then, before
        any decoding). Until then ``src``'s stream is not read: HTTP/2 flow control holds
        its sends, so a flooding peer costs its rate and nothing it sends beyond; its
        messages wait in order, none is dropped (review 32a: a stream of 4 MiB proposals
        it did not lead took 96% of a receiver's loop)."""
        while (wait_ms := self._node.admit(src, size_bytes, kind)) > 0:
            self._log_throttled(src, "peer_over_byte_budget", wait_ms=wait_ms, kind=str(kind))
            await asyncio.sleep((wait_ms + 1) / 1000)  # + 1: not a turn before it refilled

    def _junk(self, src: int, reason: str, name: str, **fields: Any) -> None:
        """Count ``src``'s frame or message that is refused as ``reason``, and log it."""
        self._node.metrics.refused.labels(reason=reason).inc()
        self._log_throttled(src, name, **fields)

    def _log_throttled(
        self, src: int, name: str, level: int = logging.WARNING, **fields: Any
    ) -> None:
        """Log ``name`` about ``src`` unless it was logged less than
        PEER_JUNK_LOG_INTERVAL_MS ago (the line says how many were left out since)."""
        now = self._clock_ms()
        key = (src, name)
        last = self._logged_ms.get(key)
        if last is not None and now - last < PEER_JUNK_LOG_INTERVAL_MS:
            self._unlogged[key] += 1
            return
        self._logged_ms[key] = now
        left_out = self._unlogged.pop(key, 0)
        event(name, level, peer=src, left_out=left_out, **fields)


def _parts(msg: Message) -> Iterator[Message]:
    """Checking forwarded transactions' signatures is the costliest work a peer can ask for:
    they are handled PEER_FORWARD_CHUNK_TXS per event-loop turn. (Chunks scheduled all at
    once with call_soon would run in one turn: a forward of 1,000 garbage transactions then
    blocked the loop for 200-400 ms, measured by tests/cluster/test_rogue.py.)"""
    if not isinstance(msg, TxForward) or len(msg.txs) <= PEER_FORWARD_CHUNK_TXS:
        yield msg
        return
    for i in range(0, len(msg.txs), PEER_FORWARD_CHUNK_TXS):
        yield TxForward(msg.txs[i : i + PEER_FORWARD_CHUNK_TXS])


class PeerLink:
    """The dialer side towards one peer: a bounded queue and a reconnecting stream."""

    def __init__(
        self,
        node: Node,
        dst: int,
        *,
        address: str,
        tls_name: str,
        credentials: grpc.ChannelCredentials,
        metrics: Metrics,
        clock_ms: Callable[[], float] | None = None,
    ) -> None:
        self.node, self.dst, self.address = node, dst, address
        self._clock_ms = clock_ms or (lambda: time.monotonic() * 1000)
        self.delay_ms = PEER_RECONNECT_BASE_MS  # before the next dial
        self._tls_name, self._creds, self._metrics = tls_name, credentials, metrics
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._redial = asyncio.Event()  # set by peer_dialed_in: end the backoff's wait
        self._pausing = False  # in the backoff's wait
        self._early_ms: float | None = None  # when a dial-in last ended that wait
        self.connected = False
        self.failures = 0
        self._session_id = 0  # a finished call's request generator must not take messages

    def send(self, data: bytes) -> None:
        while self._queue and (
            len(self._queue) >= PEER_SEND_QUEUE_MAX
            or self._queued_bytes + len(data) > PEER_SEND_QUEUE_BYTES_MAX
        ):
            self._queued_bytes -= len(self._queue.popleft())
            self._metrics.dropped.inc()
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._wake.set()

    async def run(self) -> None:
        while True:
            lasted_ms = await self._session()
            if lasted_ms is not None and lasted_ms >= PEER_SESSION_STABLE_MS:
                self.delay_ms = PEER_RECONNECT_BASE_MS
            else:  # no hello, or a peer that hung up soon after it: redialled as a failure
                self.delay_ms = min(self.delay_ms * 2, PEER_RECONNECT_MAX_MS)
            await self._pause(self.delay_ms / 1000)

    async def _pause(self, delay_s: float) -> None:
        """Wait ``delay_s`` before the next dial, or less if the peer dials in meanwhile."""
        self._redial.clear()
        self._pausing = True
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._redial.wait(), delay_s)
        finally:
            self._pausing = False

    def peer_dialed_in(self) -> None:
        """The peer's own stream to us said hello (authenticated, charged): it is up. A link
        waiting out its backoff dials now, not up to PEER_RECONNECT_MAX_MS later: a validator
        restarted after a few seconds down got its peers' streams, so its catch-up answers
        and proposals, 1 to 5 s after it started (review 33o). At most once per
        PEER_SESSION_STABLE_MS: a peer that dials in and hangs up in a loop does not make us
        dial it in a loop (the backoff still doubles after each short session)."""
        now = self._clock_ms()
        if not self._pausing or (
            self._early_ms is not None and now - self._early_ms < PEER_SESSION_STABLE_MS
        ):
            return
        self._early_ms = now
        self._redial.set()

    async def _session(self) -> float | None:
        """One connection; how long it lasted after the peer's hello (ms), None if no hello."""
        options = peer_channel_options(self._tls_name)
        reached = False
        hello_ms = 0.0
        self._session_id += 1
        try:
            async with grpc.aio.secure_channel(self.address, self._creds, options) as channel:
                call = peer_grpc.PeerStub(channel).Connect(self._frames(self._session_id))
                hello = await call.read()
                if not isinstance(hello, peer_pb.PeerHello):  # EOF: the peer hung up
                    return None
                if hello.chain_id != self.node.genesis.chain_id or hello.validator != self.dst:
                    event(
                        "peer_mismatch",
                        logging.ERROR,
                        peer=self.dst,
                        their_chain=hello.chain_id,
                        their_index=hello.validator,
                    )
                    call.cancel()
                    return None
                reached = self.connected = True
                hello_ms = self._clock_ms()
                self.failures = 0
                event("peer_connected", peer=self.dst, their_height=hello.committed_height)
                self._metrics.peers.inc()
                self.node.peer_up(self.dst, hello.committed_height)
                await call.read()  # returns (or raises) when the stream ends
        except grpc.aio.AioRpcError as e:
            self.failures += 1
            if reached or self.failures == 1:
                event("peer_unreachable", peer=self.dst, status=e.code().name)
        finally:
            self._session_id += 1  # retire this session's generator
            self._wake.set()
            if self.connected:
                self.connected = False
                self._metrics.peers.dec()
                event("peer_disconnected", peer=self.dst)
        return self._clock_ms() - hello_ms if reached else None

    async def _frames(self, session_id: int) -> AsyncIterator[peer_pb.PeerFrame]:
        while True:
            while not self._queue or session_id != self._session_id:
                if session_id != self._session_id:
                    return
                self._wake.clear()
                await self._wake.wait()
            batch: list[bytes] = []
            size = 0
            while self._queue and size + len(self._queue[0]) <= PEER_FRAME_BYTES_MAX:
                data = self._queue.popleft()
                batch.append(data)
                size += len(data)
            self._queued_bytes -= size
            if not batch:  # a single message over the limit: the codec forbids it
                self._queued_bytes -= len(self._queue.popleft())
                continue
            yield peer_pb.PeerFrame(messages=batch)
