"""The metrics port's bounds (session 28's review), on the real server over loopback.

prometheus_client's own server gave every connection a thread and no timeout: 300
connections that sent half a request held 300 threads of the validator for ever. Now at
most ``METRICS_CONNECTIONS_MAX`` are served at once (one beyond is closed unserved and
counted), and a request not sent in full within ``METRICS_REQUEST_TIMEOUT_S`` is dropped.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from node.config import METRICS_CONNECTIONS_MAX, METRICS_REQUEST_TIMEOUT_S
from node.runtime._metrics import Metrics, MetricsServer
from tests.patience import HANG_S

_SLOTS = 4
_TIMEOUT_S = 0.5


@pytest.fixture
def serve() -> Iterator[Callable[[float], tuple[Metrics, int]]]:
    """Starts the port with ``_SLOTS`` slots and the given request timeout."""
    servers: list[MetricsServer] = []

    def start(timeout_s: float) -> tuple[Metrics, int]:
        metrics = Metrics()
        server = metrics.serve("127.0.0.1", 0, connections_max=_SLOTS, timeout_s=timeout_s)
        servers.append(server)
        return metrics, server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _handlers() -> int:
    return sum(1 for t in threading.enumerate() if "process_request" in t.name)


def _half_requests(port: int, count: int) -> list[socket.socket]:
    out = []
    for _ in range(count):
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the blank line that ends it
        out.append(c)
    return out


def _closed(c: socket.socket, wait_s: float) -> bool:
    c.settimeout(wait_s)
    try:
        return c.recv(1) == b""
    except TimeoutError:
        return False


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=HANG_S) as r:
        return str(r.read().decode())


def test_the_defaults_bound_the_port() -> None:
    assert 1 <= METRICS_CONNECTIONS_MAX <= 64
    assert 0 < METRICS_REQUEST_TIMEOUT_S <= 30


def test_a_scrape_is_served(serve: Callable[[float], tuple[Metrics, int]]) -> None:
    """The control: the bounds leave an ordinary scrape alone."""
    _, port = serve(_TIMEOUT_S)
    body = _scrape(port)
    assert "ledger_height" in body and "ledger_metrics_connections_refused_total 0.0" in body


def test_connections_beyond_the_bound_are_closed_and_counted(
    serve: Callable[[float], tuple[Metrics, int]],
) -> None:
    metrics, port = serve(HANG_S)  # no request times out during this test
    held = _half_requests(port, _SLOTS + 3)
    try:
        closed = [_closed(c, 0.3) for c in held]
        assert closed == [False] * _SLOTS + [True] * 3  # the first ones wait for their request
        assert _handlers() <= _SLOTS
        refused = metrics.registry.get_sample_value("ledger_metrics_connections_refused_total")
        assert refused == 3.0
    finally:
        for c in held:
            c.close()


def test_a_request_not_sent_in_time_frees_its_slot(
    serve: Callable[[float], tuple[Metrics, int]],
) -> None:
    _, port = serve(_TIMEOUT_S)
    held = _half_requests(port, _SLOTS)
    try:
        assert not any(_closed(c, 0.05) for c in held)  # every slot taken
        deadline = time.monotonic() + HANG_S
        assert all(_closed(c, max(0.0, deadline - time.monotonic())) for c in held)
        while _handlers() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _handlers() == 0
        assert "ledger_height" in _scrape(port)  # the port serves again
    finally:
        for c in held:
            c.close()
