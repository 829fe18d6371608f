"""Review 31 (bounds): what a hostile client can make a validator or the console wait on.

Each test names the attacker, what it did before the fix, and a control showing that the
checker fires (docs/testing.md, "Review 31 (bounds)").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer
from grpc_health.v1 import health_pb2, health_pb2_grpc

from client.console._server import ConsoleServer
from node.config import PEER_FRAME_MESSAGES_MAX, PEER_JUNK_LOG_INTERVAL_MS
from node.core import SyncRequest, encode_message
from node.runtime._api import HealthService
from node.runtime._handlers import add_service
from node.runtime._server import LEDGER_SERVICE, new_client_server
from node.runtime._transport import MESSAGE_REFUSED, PeerService
from node.wire import peer_pb2 as peer_pb
from tests.patience import HANG_S
from tests.unit.test_console import FakeClient
from tests.unit.test_peer_streams import _PINS, _Context, _Node

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


# --- a raw HTTP/2 client (no library: what an attacker writes in a page of code) ----------


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    head = struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream)
    return head + payload


def _literal(name: str, value: str) -> bytes:
    """One HPACK header, literal without indexing, no Huffman (names and values < 127)."""
    n, v = name.encode(), value.encode()
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


_DATA, _HEADERS, _SETTINGS, _PING = 0x0, 0x1, 0x4, 0x6
_INITIAL_WINDOW_SIZE = 0x4


class _RawWatch:
    """An anonymous client's health ``Watch`` over a hand-written HTTP/2 connection whose
    stream window is ``window`` bytes: at 0, the server may send the response's headers
    but none of its messages, for as long as the client likes. It answers the server's
    SETTINGS and PINGs (keepalive sees a live peer) and notes the DATA frames it gets."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.data_frames = 0
        self.got_data = asyncio.Event()

    @asynccontextmanager
    async def open(self, port: int, service: str) -> AsyncIterator[_RawWatch]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        settings = struct.pack(">HI", _INITIAL_WINDOW_SIZE, self.window)
        headers = b"".join(
            _literal(k, v)
            for k, v in (
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/grpc.health.v1.Health/Watch"),
                (":authority", "node"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            )
        )
        body = health_pb2.HealthCheckRequest(service=service).SerializeToString()
        writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(_SETTINGS, 0, 0, settings))
        writer.write(_frame(_HEADERS, 0x4, 1, headers))  # END_HEADERS
        writer.write(_frame(_DATA, 0x1, 1, b"\x00" + struct.pack(">I", len(body)) + body))
        await writer.drain()
        pump = asyncio.create_task(self._pump(reader, writer))
        try:
            yield self
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await pump
            writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readexactly(9)
            payload = await reader.readexactly(int.from_bytes(head[:3], "big"))
            kind, flags = head[3], head[4]
            if kind == _SETTINGS and not flags & 0x1:
                writer.write(_frame(_SETTINGS, 0x1, 0))
            elif kind == _PING and not flags & 0x1:
                writer.write(_frame(_PING, 0x1, 0, payload))
            elif kind == _DATA and payload:
                self.data_frames += 1
                self.got_data.set()
            await writer.drain()


@asynccontextmanager
async def _health_port() -> AsyncIterator[tuple[HealthService, int]]:
    """The client port's server (its real options) with the node's health service, the
    ledger SERVING as a node's ready loop sets it."""
    server = new_client_server()
    health = HealthService()
    add_service(server, health, health_pb2.DESCRIPTOR.services_by_name["Health"])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await health.set(LEDGER_SERVICE, SERVING)
        yield health, port
    finally:
        await server.stop(None)


async def _watching(health: HealthService, count: int) -> None:
    """Until ``count`` Watch handlers hold their share (and so are writing or waiting)."""
    async with asyncio.timeout(HANG_S):
        while health._watches.total < count:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # into its first write


# --- health Watch: a status that never leaves must not block the node's ready loop ------


async def test_a_watch_held_at_a_zero_window_does_not_block_setting_the_health() -> None:
    """Scenario: an anonymous client (health needs no identity; any TLS client) opens
    ``Watch(ledger.v1.Ledger)`` with its HTTP/2 stream window at 0, so the first status
    never leaves. grpc's ``HealthServicer.Watch`` writes each status while holding the
    service's condition, and ``set`` takes that condition: ``set`` waited for ever. The
    node calls it every 0.5 s in its ready loop (node/runtime/_server.py ``_serve``), so
    that loop stopped: no heartbeat (the liveness probe then reports a healthy node stuck
    and the orchestrator restarts it, for as long as the client likes), SIGTERM no longer
    stopped the node, and a halted node never exited (fail-stop). Now ``set`` returns at
    once, and an honest watcher still sees every change."""
    async with _health_port() as (health, port):
        stalled = _RawWatch(window=0)
        async with stalled.open(port, LEDGER_SERVICE):
            await _watching(health, 1)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                honest = health_pb2_grpc.HealthStub(channel).Watch(
                    health_pb2.HealthCheckRequest(service=LEDGER_SERVICE)
                )
                async with asyncio.timeout(HANG_S):
                    assert (await honest.read()).status == SERVING
                    await asyncio.wait_for(health.set(LEDGER_SERVICE, NOT_SERVING), HANG_S)
                    await asyncio.wait_for(health.set("", NOT_SERVING), HANG_S)
                    assert (await honest.read()).status == NOT_SERVING
                    await asyncio.wait_for(health.enter_graceful_shutdown(), HANG_S)
                honest.cancel()
            assert stalled.data_frames == 0  # its status never left: the window held


async def test_control_the_raw_watch_gets_its_status_with_a_window_and_none_without() -> None:
    """Control: the hand-written client is a working gRPC client (with a normal window
    the server's status reaches it), and at 0 the server's status write really stays
    stuck (no DATA frame in the time the test above gives ``set``)."""
    async with _health_port() as (health, port):
        normal = _RawWatch(window=65_535)
        async with normal.open(port, LEDGER_SERVICE):
            await asyncio.wait_for(normal.got_data.wait(), HANG_S)
        stalled = _RawWatch(window=0)
        async with stalled.open(port, LEDGER_SERVICE):
            await _watching(health, 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stalled.got_data.wait(), 1.0)
            assert stalled.data_frames == 0


# --- a Byzantine validator's junk: one loop turn and no log line per message ---------------


class _Turns:
    """Counts the event loop's turns another task gets while it runs."""

    def __init__(self) -> None:
        self.count = 0

    async def __aenter__(self) -> _Turns:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0)
            self.count += 1


async def _frames(*frames: list[bytes]) -> AsyncIterator[peer_pb.PeerFrame]:
    for messages in frames:
        yield peer_pb.PeerFrame(messages=messages)


def _junk_frame() -> list[bytes]:
    """The most messages a frame may carry, each one byte that decodes as nothing: 12 KB."""
    return [b"\x07"] * PEER_FRAME_MESSAGES_MAX


def _refused(node: _Node, reason: str) -> float:
    return float(node.metrics.refused.labels(reason=reason)._value.get())


async def test_a_frame_of_junk_messages_shares_the_event_loop() -> None:
    """Scenario: a Byzantine validator (its own pinned certificate) sends frames of
    PEER_FRAME_MESSAGES_MAX one-byte messages that do not decode. A message that decodes
    is delivered one per loop turn; one that did not was skipped without yielding, so
    each 12 KB frame held the loop (consensus, clients, timers) for all of its 4,096
    decodes and log lines (52 ms measured, 0 turns for anything else). Now each takes
    a turn, as a good one does."""
    node = _Node()
    service = PeerService(node, _PINS)  # type: ignore[arg-type]
    async with _Turns() as turns:
        await service.Connect(_frames(_junk_frame()), _Context(1))  # type: ignore[arg-type]
    assert _refused(node, MESSAGE_REFUSED) == PEER_FRAME_MESSAGES_MAX
    assert turns.count >= PEER_FRAME_MESSAGES_MAX // 2, f"{turns.count} turns for the rest"
    assert node.delivered == []


async def test_junk_from_a_peer_is_counted_each_time_and_logged_once_an_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Scenario: as above. Each junk message was one WARNING line (~160 bytes for a
    message of 3 bytes on the wire): 660 KB of log per 12 KB frame, so a peer sending
    1 MB/s of junk wrote 54 MB/s to the node's disk. Now the metric counts every one and
    one line per peer per PEER_JUNK_LOG_INTERVAL_MS says how many were left out."""
    clock = [0.0]
    node = _Node()
    service = PeerService(node, _PINS, clock_ms=lambda: clock[0])  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="node")
    await service.Connect(_frames(_junk_frame(), _junk_frame()), _Context(1))  # type: ignore[arg-type]
    lines = [r for r in caplog.records if r.getMessage() == "bad_peer_message"]
    assert len(lines) == 1, f"{len(lines)} log lines for {2 * PEER_FRAME_MESSAGES_MAX} messages"
    assert _refused(node, MESSAGE_REFUSED) == 2 * PEER_FRAME_MESSAGES_MAX
    clock[0] += PEER_JUNK_LOG_INTERVAL_MS
    await service.Connect(_frames([b"\x07"]), _Context(1))  # type: ignore[arg-type]
    lines = [r for r in caplog.records if r.getMessage() == "bad_peer_message"]
    assert len(lines) == 2
    assert lines[1].fields["left_out"] == 2 * PEER_FRAME_MESSAGES_MAX - 1  # type: ignore[attr-defined]


async def test_control_a_frame_of_good_messages_is_delivered_one_per_turn_and_junk_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Control: the turn counter sees the turns good messages give, and the log catches a
    junk message (the checkers above fire), from each of two peers."""
    node = _Node()
    service = PeerService(node, _PINS)  # type: ignore[arg-type]
    good = [encode_message(SyncRequest(h, 1)) for h in range(1, 101)]
    async with _Turns() as turns:
        await service.Connect(_frames(good), _Context(1))  # type: ignore[arg-type]
    assert len(node.delivered) == 100 and turns.count >= 50
    caplog.set_level(logging.WARNING, logger="node")
    for src in (1, 2):
        await service.Connect(_frames([b"\x07"]), _Context(src))  # type: ignore[arg-type]
    lines = [r for r in caplog.records if r.getMessage() == "bad_peer_message"]
    assert [r.fields["peer"] for r in lines] == [1, 2]  # type: ignore[attr-defined]


# --- the console: a live stream that reads nothing is cut, not kept for ever --------------


async def _open_connections(http: TestServer) -> int:
    assert http.runner is not None and http.runner.server is not None
    return len(http.runner.server.connections)


async def _stalled_event_stream(write_timeout_s: float, wait_s: float) -> int:
    """Open the console's live stream from a client that never reads (a 4 KB receive
    buffer), publish until the hub drops it for lagging, wait ``wait_s``: the console's
    open connections then."""
    server = ConsoleServer(FakeClient(None), poll_s=3600)  # type: ignore[arg-type]
    server.hub.queue_max = 4
    server.sse_write_timeout_s = write_timeout_s
    http = TestServer(server.app())
    await http.start_server()
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", http.port or 0))
        sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        async with asyncio.timeout(HANG_S):
            while not len(server.hub):
                await asyncio.sleep(0.01)
            big = {"block": "x" * 200_000}  # a full block's page is of this order
            while server.hub.dropped == 0:
                server.hub.publish("block", big)
                await asyncio.sleep(0.01)
        await asyncio.sleep(wait_s)
        return await _open_connections(http)
    finally:
        sock.close()
        await http.close()


async def test_a_live_stream_that_reads_nothing_is_cut() -> None:
    """Scenario: a client of the console (a hostile one, or a tab whose machine sleeps)
    opens ``/api/events`` and reads nothing. Once its socket buffers fill, the handler's
    write waits; the hub drops the lagging subscriber and frees its slot, but the handler
    stayed in that write for ever, holding the connection, its task and up to
    CONSOLE_SSE_QUEUE_MAX frames: opened again and again, such connections added up
    without bound. Now a write not done within CONSOLE_SSE_WRITE_TIMEOUT_S (0.3 s here)
    aborts the connection."""
    assert await _stalled_event_stream(write_timeout_s=0.3, wait_s=1.0) == 0


async def test_control_the_stalled_stream_is_held_without_the_write_bound() -> None:
    """Control: with a write bound longer than the wait, the same stream's connection is
    still open (the checker sees a stalled stream)."""
    assert await _stalled_event_stream(write_timeout_s=60.0, wait_s=1.0) == 1


async def test_control_a_reader_is_not_cut_by_the_write_bound() -> None:
    """Control: a client that reads gets every event within the same bound."""
    server = ConsoleServer(FakeClient(None), poll_s=3600)  # type: ignore[arg-type]
    server.sse_write_timeout_s = 0.3
    async with TestClient(TestServer(server.app())) as http:
        r = await asyncio.wait_for(http.get("/api/events"), HANG_S)
        async with asyncio.timeout(HANG_S):
            while not len(server.hub):
                await asyncio.sleep(0.01)
            for i in range(20):
                server.hub.publish("block", {"n": i, "block": "x" * 50_000})
                await asyncio.sleep(0.05)
            seen = 0
            while seen < 20:
                line = await r.content.readline()
                seen += line.startswith(b"event: block")
        r.close()
    assert server.hub.dropped == 0
