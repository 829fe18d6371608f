"""Review 31 (bounds): what a hostile client can make a validator or the console wait on.

Each test names the attacker, what it did before the fix, and a control showing that the
checker fires (docs/testing.md, "Review 31 (bounds)").
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.runtime._api import HealthService
from node.runtime._handlers import add_service
from node.runtime._server import LEDGER_SERVICE, new_client_server
from tests.patience import HANG_S

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
