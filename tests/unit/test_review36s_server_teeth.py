"""The assembly of node/runtime/_server.py held by unit tests (mutation target
``runtime.server``, review 36s): the health the ready loop reports, a link that ends, the
peer links built from the config, the ports' refusals at start, the client port's limits.
The whole process is the cluster tests' (tests/cluster/); here each piece alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from node.config import (
    CLIENT_CONNECTION_IDLE_MS,
    CLIENT_RPCS_MAX,
    PEER_CONNECTION_IDLE_MS,
    PEER_HANDSHAKE_TIMEOUT_MS,
    PEER_RPCS_PER_VALIDATOR_MAX,
)
from node.runtime import Metrics, _server
from node.runtime._server import (
    LEDGER_SERVICE,
    StartupError,
    _bind,
    _link_ended,
    _peer_links,
    _report_health,
    _serve_metrics,
)
from node.runtime._transport import PEER_SERVER_OPTIONS, PeerLink
from tests.unit.test_node_ports import _credentials
from tests.unit.test_peer_streams import _CERTS, _KEYS

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class _Health:
    """What ``_report_health`` uses of the health service: the statuses it sets."""

    def __init__(self) -> None:
        self.set_to: list[tuple[str, int]] = []

    async def set(self, service: str, status: int) -> None:
        self.set_to.append((service, status))


def _reported(q: int, connected: list[bool], halted: str | None = None) -> int:
    health = _Health()
    node = SimpleNamespace(halted=halted, quorum=SimpleNamespace(q=q))
    links = {i: SimpleNamespace(connected=c) for i, c in enumerate(connected, start=1)}
    asyncio.run(_report_health(health, node, links))  # type: ignore[arg-type]
    ((service, status),) = health.set_to
    assert service == LEDGER_SERVICE
    return status


def test_the_ledger_is_serving_exactly_when_a_quorum_with_this_node_is_reachable() -> None:
    """3 of 4 (q = 3): this node and two peers serve; one peer short does not; a halted
    node never does, whoever is reachable."""
    assert _reported(3, [True, True, False]) == SERVING
    assert _reported(3, [True, False, False]) == NOT_SERVING
    assert _reported(3, [True, True, True]) == SERVING
    assert _reported(1, [False, False, False]) == SERVING  # itself alone is a quorum of 1
    assert _reported(2, [True, False]) == SERVING  # itself and one peer: 1 + 1, not 1 | 1
    assert _reported(4, [True, True, False]) == NOT_SERVING  # 1 + 2, not 1 << 2
    assert _reported(3, [True, True, True], halted="storage error") == NOT_SERVING


class _FailingNode:
    def __init__(self) -> None:
        self.failed: list[tuple[str, BaseException]] = []

    def fail(self, what: str, exc: BaseException) -> None:
        self.failed.append((what, exc))


async def test_a_link_that_ends_by_an_exception_halts_the_node_and_no_other_end_does() -> None:
    node = _FailingNode()
    boom = RuntimeError("bug")

    async def raises() -> None:
        raise boom

    async def returns() -> None:
        return None

    failed = asyncio.create_task(raises(), name="link-2")
    finished = asyncio.create_task(returns(), name="link-3")
    cancelled = asyncio.create_task(asyncio.sleep(60), name="link-4")
    cancelled.cancel()
    await asyncio.gather(failed, finished, cancelled, return_exceptions=True)
    for task in (failed, finished, cancelled):
        _link_ended(node, task)  # type: ignore[arg-type]
    assert node.failed == [("link-2", boom)]


def _config(validator: int, peers: list[int]) -> Any:
    return SimpleNamespace(
        validator=validator,
        peers=[
            SimpleNamespace(validator=p, address=f"127.0.0.1:{7000 + p}", tls_name=f"node-{p:02}")
            for p in peers
        ],
    )


def _links(validator: int, peers: list[int], validators: int = 3) -> dict[int, PeerLink]:
    node = SimpleNamespace(genesis=SimpleNamespace(validators=[object()] * validators))
    pinned = dict(enumerate(_CERTS))
    return _peer_links(
        _config(validator, peers),
        node,  # type: ignore[arg-type]
        (pinned, _CERTS[validator], _KEYS[validator]),
        Metrics(),
    )


def test_one_link_per_peer_of_the_config_each_to_its_address() -> None:
    links = _links(0, [1, 2])
    assert sorted(links) == [1, 2]
    assert [(i, link.dst, link.address) for i, link in links.items()] == [
        (1, 1, "127.0.0.1:7001"),
        (2, 2, "127.0.0.1:7002"),
    ]


def test_a_peer_genesis_does_not_have_is_refused_at_start() -> None:
    with pytest.raises(StartupError, match=r"^config lists peers \[3\], which genesis does not"):
        _links(0, [1, 2, 3])


def test_a_validator_the_config_gives_no_address_is_refused_at_start() -> None:
    """Every other validator of genesis needs an address; this node needs none."""
    with pytest.raises(StartupError, match=r"^config lists no address for validators \[0, 2\]$"):
        _links(1, [])
    with pytest.raises(StartupError, match=r"^config lists no address for validators \[1\]$"):
        _links(2, [0])
    assert sorted(_links(2, [0, 1])) == [0, 1]


def test_a_metrics_port_in_use_is_refused_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = SimpleNamespace(listen_host="127.0.0.1", metrics_port=port)
        words = f"^cannot listen on 127.0.0.1:{port} \\(metrics_port\\): Address already in use$"
        with pytest.raises(StartupError, match=words):
            _serve_metrics(Metrics(), cfg)  # type: ignore[arg-type]


class _Refusing:
    """A server whose add_secure_port answers as gRPC may: 0, or RuntimeError."""

    def __init__(self, answer: int | Exception) -> None:
        self._answer = answer

    def add_secure_port(self, address: str, creds: object) -> int:
        if isinstance(self._answer, Exception):
            raise self._answer
        return self._answer


def test_a_port_grpc_cannot_bind_is_refused_naming_the_address() -> None:
    with pytest.raises(StartupError, match=r"^cannot listen on h:1 \(in use, or not an address"):
        _bind(_Refusing(0), "h", 1, _credentials())  # type: ignore[arg-type]
    with pytest.raises(StartupError, match=r"^cannot listen on h:2: no such interface$"):
        _bind(_Refusing(RuntimeError("no such interface")), "h", 2, _credentials())  # type: ignore[arg-type]
    _bind(_Refusing(5), "h", 3, _credentials())  # type: ignore[arg-type]  # bound: no error


async def _server_kwargs(make: Callable[[], grpc.aio.Server]) -> dict[str, Any]:
    """The arguments ``make`` gives ``grpc.aio.server`` (the server it makes is stopped)."""
    seen: list[dict[str, Any]] = []
    real = grpc.aio.server

    def spy(**kwargs: Any) -> grpc.aio.Server:
        seen.append(kwargs)
        return real(**kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(grpc.aio, "server", spy)
        server = make()
    with contextlib.suppress(Exception):
        await server.stop(None)
    (kwargs,) = seen
    return kwargs


async def test_the_client_ports_defaults_are_its_configured_limits() -> None:
    """``new_client_server()`` as the node makes it: the idle bound of CLIENT_CONNECTION_IDLE_MS
    (test_client_api_hostile.py shows a small one closing) and the options of
    CLIENT_SERVER_OPTIONS with the port its own."""
    kwargs = await _server_kwargs(_server.new_client_server)
    assert kwargs["maximum_concurrent_rpcs"] == CLIENT_RPCS_MAX
    options = dict(kwargs["options"])
    assert options["grpc.max_connection_idle_ms"] == CLIENT_CONNECTION_IDLE_MS
    assert options["grpc.so_reuseport"] == 0
    assert set(_server.CLIENT_SERVER_OPTIONS) <= set(kwargs["options"])


async def test_the_peer_ports_defaults_are_its_configured_limits() -> None:
    """``new_peer_server(n)`` as the node makes it: PEER_RPCS_PER_VALIDATOR_MAX calls per
    validator of genesis (3 here: 12), the handshake and idle bounds of node/config.py, the
    port its own, over PEER_SERVER_OPTIONS."""
    kwargs = await _server_kwargs(lambda: _server.new_peer_server(3))
    assert kwargs["maximum_concurrent_rpcs"] == PEER_RPCS_PER_VALIDATOR_MAX * 3 == 12
    options = dict(kwargs["options"])
    assert options["grpc.server_handshake_timeout_ms"] == PEER_HANDSHAKE_TIMEOUT_MS
    assert options["grpc.max_connection_idle_ms"] == PEER_CONNECTION_IDLE_MS
    assert options["grpc.so_reuseport"] == 0
    assert set(PEER_SERVER_OPTIONS) <= set(kwargs["options"])
