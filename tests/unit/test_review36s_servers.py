"""Review 36s (servers): what a host that reaches a validator's ports, a validator running
modified code, or a flooding client can make the servers hold (node/runtime/_server.py,
node/runtime/_metrics.py, node/__main__.py).

Each test names the attacker, what it did before the fix, and a control showing the
checker fires (docs/testing.md, "Review 36s (servers)"). Real servers on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from node.__main__ import GRPC_VERBOSITY, _run
from node.config import (
    CLIENT_HANDSHAKE_TIMEOUT_MS,
    PEER_CONNECTION_IDLE_MS,
    PEER_HANDSHAKE_TIMEOUT_MS,
    PEER_SESSION_STABLE_MS,
)
from node.runtime import _server
from node.runtime._metrics import Metrics, MetricsServer
from node.runtime._server import new_peer_server
from node.runtime._transport import peer_server_credentials
from node.wire import peer_pb2_grpc as peer_grpc
from tests.patience import HANG_S
from tests.unit.test_peer_streams import _CERTS, _KEYS, _channel, _Parked

_BOUND_MS = 300  # the handshake and idle bounds of the peer ports below


@asynccontextmanager
async def _peer_port(parked: _Parked) -> AsyncIterator[int]:
    """The peer port's real server with ``_BOUND_MS`` bounds, a handler holding each call."""
    server = new_peer_server(1, handshake_timeout_ms=_BOUND_MS, idle_ms=_BOUND_MS)
    peer_grpc.add_PeerServicer_to_server(parked, server)
    creds = peer_server_credentials(_KEYS[0], _CERTS[0], _CERTS[1])
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


async def _closed_within(sock: socket.socket, wait_s: float) -> bool:
    """Whether the server closes ``sock`` (which sent nothing) within ``wait_s``."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    try:
        return await asyncio.wait_for(loop.sock_recv(sock, 1), wait_s) == b""
    except TimeoutError:
        return False


# --- the peer port: connections no handshake or call justifies -----------------------------


def test_the_peer_ports_bounds_are_an_honest_dialers_and_no_more() -> None:
    """An honest handshake takes milliseconds (the client port gives 5 s); an honest
    dialer's connection carries its call from its first moment to its close."""
    assert 0 < PEER_HANDSHAKE_TIMEOUT_MS <= CLIENT_HANDSHAKE_TIMEOUT_MS
    assert 0 < PEER_CONNECTION_IDLE_MS <= PEER_SESSION_STABLE_MS * 2


async def test_a_connection_that_never_finishes_its_handshake_is_closed() -> None:
    """Scenario: any host that reaches the peer port (no key needed) opens TCP connections
    and sends nothing. gRPC's default kept each for 120 s: 3,000 of them held 3,000 of
    the validator's file descriptors and 60 MB, and a validator under a service manager's
    default of 1,024 descriptors could then open neither a client connection nor a link.
    Now each is closed once PEER_HANDSHAKE_TIMEOUT_MS has passed (here 300 ms)."""
    parked = _Parked()
    async with _peer_port(parked) as port:
        with socket.create_connection(("127.0.0.1", port)) as silent:
            started = time.monotonic()
            assert await _closed_within(silent, HANG_S)
            assert time.monotonic() - started >= _BOUND_MS / 1000 / 2
        assert parked.started == 0


async def test_a_validators_connection_with_no_call_is_closed_after_the_idle_bound() -> None:
    """Scenario: a validator running modified code (its key passes the mutual TLS) opens
    connection after connection and calls nothing on them. gRPC kept each for ever, as many
    as it opened (the port's call limits count calls, not connections). Now one with no
    call for PEER_CONNECTION_IDLE_MS (here 300 ms) is closed (HTTP/2 GOAWAY: the channel
    leaves READY)."""
    async with _peer_port(_Parked()) as port, _channel(port, 1) as channel:
        await asyncio.wait_for(channel.channel_ready(), HANG_S)
        await asyncio.wait_for(
            channel.wait_for_state_change(grpc.ChannelConnectivity.READY), HANG_S
        )
        assert channel.get_state() is not grpc.ChannelConnectivity.READY


async def test_control_a_connection_carrying_its_connect_call_is_kept_past_both_bounds() -> None:
    """Control: an honest dialer's connection (its handshake done, its Connect call in
    progress) is kept for three times both bounds, its call open: the bounds touch only
    what no honest dialer holds. (And the checker fires: the channel would leave READY.)"""
    parked = _Parked()
    async with _peer_port(parked) as port, _channel(port, 1) as channel:
        call = peer_grpc.PeerStub(channel).Connect(iter(()))
        try:
            await parked.count(1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    channel.wait_for_state_change(grpc.ChannelConnectivity.READY),
                    3 * _BOUND_MS / 1000,
                )
            assert channel.get_state() is grpc.ChannelConnectivity.READY
            assert not call.done()
        finally:
            call.cancel()


# --- the metrics port: a request trickled in ------------------------------------------------

_METRICS_TIMEOUT_S = 0.5


@pytest.fixture
def metrics_port() -> Iterator[int]:
    server: MetricsServer = Metrics().serve(
        "127.0.0.1", 0, connections_max=2, timeout_s=_METRICS_TIMEOUT_S
    )
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _trickle(port: int, request: bytes, gap_s: float, give_up_s: float) -> tuple[bytes, float]:
    """Send ``request`` a byte every ``gap_s``; what the server sent back and when it closed
    (or ``give_up_s``, the connection still open)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.settimeout(gap_s)
        for byte in request:
            try:
                c.sendall(bytes([byte]))
            except OSError:
                return b"", time.monotonic() - started
            with contextlib.suppress(TimeoutError):
                if c.recv(1, socket.MSG_PEEK) == b"":
                    return b"", time.monotonic() - started
            if time.monotonic() - started > give_up_s:
                return b"", give_up_s
        c.settimeout(HANG_S)
        answer = b""
        while chunk := c.recv(65536):
            answer += chunk
        return answer, time.monotonic() - started


def test_a_request_trickled_a_byte_at_a_time_is_dropped_at_its_deadline(metrics_port: int) -> None:
    """Scenario: anyone who reaches the metrics port (plain HTTP, no key) sends its
    request a byte every 0.1 s. The timeout counted each read alone, so the connection was
    held as long as bytes kept coming: still open after 4 s with a 0.5 s timeout, and
    ``METRICS_CONNECTIONS_MAX`` such clients refused every scrape for as long as they
    liked (docs/deploy.md promised a request not sent within 5 s is dropped). Now the
    whole request has the timeout: closed at 0.5 s."""
    request = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    answer, closed_s = _trickle(metrics_port, request, 0.1, give_up_s=2.0)
    assert answer == b""
    assert _METRICS_TIMEOUT_S <= closed_s < 2.0


def test_control_a_request_sent_in_pieces_within_the_timeout_is_answered(
    metrics_port: int,
) -> None:
    """Control: a request whose bytes take a while but arrive within the timeout (36
    bytes, one each 5 ms) is answered in full, then a whole scrape."""
    answer, _ = _trickle(metrics_port, b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n", 0.005, 3.0)
    assert answer.startswith(b"HTTP/1.0 200 OK") and b"ledger_height" in answer
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=HANG_S) as r:
        assert b"ledger_height" in r.read()


# --- gRPC core's own lines on the node's log ------------------------------------------------


def test_the_validator_runs_grpc_core_at_errors_only_unless_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``ledger-node run`` sets GRPC_VERBOSITY before grpc is imported, unless the operator
    set it (control: INFO is kept). The config does not exist: the run stops there."""
    args = argparse.Namespace(config=str(tmp_path / "missing.json"))
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    assert _run(args) == 2
    assert os.environ["GRPC_VERBOSITY"] == GRPC_VERBOSITY == "ERROR"
    monkeypatch.setenv("GRPC_VERBOSITY", "INFO")
    assert _run(args) == 2
    assert os.environ["GRPC_VERBOSITY"] == "INFO"


_CHILD = textwrap.dedent(
    """
    import argparse, asyncio, sys
    from node.__main__ import _run
    assert _run(argparse.Namespace(config="/nonexistent/config.json")) == 2
    import grpc
    from tests.unit.test_node_ports import _credentials

    async def serve():
        server = grpc.aio.server()
        print(server.add_secure_port("127.0.0.1:0", _credentials()), flush=True)
        await server.start()
        sys.stdin.readline()
        await server.stop(None)

    asyncio.run(serve())
    """
)


def _handshake_lines(env: dict[str, str], connections: int) -> int:
    """Lines a server process, started as ``ledger-node run`` starts, writes on stderr
    for ``connections`` that fail their TLS handshake."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        for _ in range(connections):
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(b"GET / HTTP/1.1\r\n\r\n")
                c.settimeout(HANG_S)
                with contextlib.suppress(OSError):
                    c.recv(64)
        child.stdin.write("\n")
        child.stdin.flush()
        _, err = child.communicate(timeout=HANG_S)
    finally:
        child.kill()
    return sum("Handshake failed" in line for line in err.splitlines())


@pytest.mark.serial
def test_connections_failing_their_handshake_write_nothing_on_the_log() -> None:
    """Scenario: any host that reaches a port connects and sends anything but a TLS
    handshake, in a loop. gRPC core wrote a plain-text line for each on stderr, between
    the node's JSON lines: 3,281 lines (672 KB) in 2 s from one loop. Control: the same
    process told GRPC_VERBOSITY=INFO writes them, one per connection."""
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    assert _handshake_lines(env, 20) == 0
    assert _handshake_lines({**env, "GRPC_VERBOSITY": "INFO"}, 20) == 20


# --- shutdown with hostile connections held -----------------------------------------------


class _StoppingNode:
    """What ``_stop_servers`` uses of a node: stop, then close, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


async def test_stopping_with_hostile_connections_held_ends_within_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scenario: at SIGTERM, a host holds a connection to the peer port that never
    handshakes, and a validator holds a Connect call its handler never ends. The servers
    stop once the grace has passed (here 200 ms): the held call is cancelled, nothing waits
    on the hostile connections, and the node is stopped before and closed after."""
    monkeypatch.setattr(_server, "SHUTDOWN_GRACE_MS", 200)
    parked, node = _Parked(), _StoppingNode()
    server = new_peer_server(1)
    peer_grpc.add_PeerServicer_to_server(parked, server)
    creds = peer_server_credentials(_KEYS[0], _CERTS[0], _CERTS[1])
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    with socket.create_connection(("127.0.0.1", port)):
        async with _channel(port, 1) as channel:
            call = peer_grpc.PeerStub(channel).Connect(iter(()))
            await parked.count(1)
            started = time.monotonic()
            await asyncio.wait_for(_server._stop_servers(node, (server,)), HANG_S)  # type: ignore[arg-type]
            took_s = time.monotonic() - started
            assert node.calls == ["stop", "close"]
            assert 0.15 <= took_s < HANG_S / 2
            code = await asyncio.wait_for(call.code(), HANG_S)
            assert code is not grpc.StatusCode.OK
