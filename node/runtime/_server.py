"""Assemble and run one validator process from its config file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from node.config import (
    CLIENT_CONNECTION_IDLE_MS,
    CLIENT_CONNECTIONS_MAX,
    CLIENT_HANDSHAKE_TIMEOUT_MS,
    CLIENT_MESSAGE_BYTES_MAX,
    CLIENT_RPCS_MAX,
    CLIENT_STREAMS_PER_CONNECTION_MAX,
    HALT_LINGER_MS,
    PEER_CONNECTION_IDLE_MS,
    PEER_HANDSHAKE_TIMEOUT_MS,
    PEER_RPCS_PER_VALIDATOR_MAX,
    SHUTDOWN_GRACE_MS,
)
from node.crypto import SigningKey
from node.files import read_regular
from node.genesis import load_genesis
from node.health import Heartbeat
from node.keyfiles import cert_pin_from_pem, load_signing_key, pinned_certificates
from node.netconfig import NodeConfig
from node.runtime._access import Gate
from node.runtime._api import HealthService, LedgerService, ReflectionService
from node.runtime._handlers import add_service
from node.runtime._logs import event
from node.runtime._metrics import Metrics
from node.runtime._node import Node, wall_ms
from node.runtime._transport import (
    PEER_SERVER_OPTIONS,
    PeerLink,
    PeerService,
    peer_channel_credentials,
    peer_server_credentials,
)
from node.settlement import Genesis
from node.store import LmdbStore
from node.wire import ledger_pb2 as pb
from node.wire import peer_pb2_grpc as peer_grpc

__all__ = ["StartupError", "new_client_server", "new_peer_server", "run"]

LEDGER_SERVICE = pb.DESCRIPTOR.services_by_name["Ledger"].full_name
_REFLECTION = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
# gRPC core arguments of the client port (grpcio 1.85.1): a TCP connection that has not
# finished its TLS handshake in time is closed, and connections beyond the limit
# (handshakes in progress included) are closed at once, both checked by
# tests/cluster/test_client_limits.py; HTTP/2 streams beyond max_concurrent_streams wait
# in the client (seen by hand: a third stream with a limit of 2 waited for its deadline);
# a connection with no call for ``idle_ms`` is closed (tests/unit/test_client_api_hostile.py).
CLIENT_SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", CLIENT_MESSAGE_BYTES_MAX),
    ("grpc.server_handshake_timeout_ms", CLIENT_HANDSHAKE_TIMEOUT_MS),
    ("grpc.max_allowed_incoming_connections", CLIENT_CONNECTIONS_MAX),
    ("grpc.max_concurrent_streams", CLIENT_STREAMS_PER_CONNECTION_MAX),
]
# gRPC listens with SO_REUSEPORT unless told not to: a second process then binds a port a
# running node serves and the kernel splits the connections between them, so a second
# process of one validator (a restored data directory started beside the running node:
# one key, two safety states) ran instead of refusing (review 33o). SO_REUSEADDR stays:
# a node restarted at once still binds beside its old connections in TIME_WAIT.
EXCLUSIVE_PORT = ("grpc.so_reuseport", 0)
_READY_CHECK_S = 0.5


def new_client_server(
    rpcs_max: int = CLIENT_RPCS_MAX, *, idle_ms: int = CLIENT_CONNECTION_IDLE_MS
) -> grpc.aio.Server:
    """The client port's server, no service added yet. Every call in progress counts
    against ``rpcs_max``, parked ones included (a unary method opened as a stream whose
    request never comes, which no share sees): beyond it, RESOURCE_EXHAUSTED."""
    options = [*CLIENT_SERVER_OPTIONS, EXCLUSIVE_PORT, ("grpc.max_connection_idle_ms", idle_ms)]
    return grpc.aio.server(options=options, maximum_concurrent_rpcs=rpcs_max)


def new_peer_server(
    validators: int,
    *,
    handshake_timeout_ms: int = PEER_HANDSHAKE_TIMEOUT_MS,
    idle_ms: int = PEER_CONNECTION_IDLE_MS,
) -> grpc.aio.Server:
    """The peer port's server, no service added yet: PEER_STREAMS_PER_CONNECTION_MAX
    streams per connection (PEER_SERVER_OPTIONS) and PEER_RPCS_PER_VALIDATOR_MAX calls in
    progress per validator of genesis; beyond it, RESOURCE_EXHAUSTED. A connection that has
    not finished its TLS handshake within ``handshake_timeout_ms``, or that carries no call
    for ``idle_ms``, is closed (review 36s)."""
    options = [
        *PEER_SERVER_OPTIONS,
        EXCLUSIVE_PORT,
        ("grpc.server_handshake_timeout_ms", handshake_timeout_ms),
        ("grpc.max_connection_idle_ms", idle_ms),
    ]
    return grpc.aio.server(
        options=options,
        maximum_concurrent_rpcs=PEER_RPCS_PER_VALIDATOR_MAX * validators,
    )


class StartupError(RuntimeError):
    """The node refuses to start; the message says why and what to fix."""


def check_identity(cfg: NodeConfig, genesis: Genesis, cert_pem: bytes) -> None:
    n = len(genesis.validators)
    if not 0 <= cfg.validator < n:
        raise StartupError(f"config names validator {cfg.validator}; genesis has {n} (0..{n - 1})")
    unpinned = [v.id for v in genesis.validators if not v.tls_cert_sha256]
    if unpinned:
        raise StartupError(
            f"genesis pins no TLS certificate for {', '.join(unpinned)}; "
            "generate the network with `make genesis`"
        )
    me = genesis.validators[cfg.validator]
    try:
        pin = cert_pin_from_pem(cert_pem)
    except ValueError as e:
        raise StartupError(f"{cfg.tls_cert} is not a PEM certificate ({e})") from e
    if pin != me.tls_cert_sha256:
        raise StartupError(f"{cfg.tls_cert} is not the TLS certificate genesis pins for {me.id}")


def pinned_peers(cfg: NodeConfig, genesis: Genesis) -> dict[int, bytes]:
    """Every validator's certificate from ``tls_pinned``, each checked against its genesis
    pin: the one trust root of the channel to that validator (docs/cluster.md)."""
    try:
        certs = pinned_certificates(
            read_regular(cfg.tls_pinned), [v.tls_cert_sha256 for v in genesis.validators]
        )
    except (OSError, ValueError) as e:
        raise StartupError(f"{cfg.tls_pinned}: {e}") from e
    missing = [v.id for i, v in enumerate(genesis.validators) if i not in certs]
    if missing:
        raise StartupError(f"{cfg.tls_pinned} lacks the pinned certificate of {', '.join(missing)}")
    return certs


async def run(cfg: NodeConfig) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    genesis = load_genesis(cfg.genesis)
    cert, key_pem = (read_regular(p) for p in (cfg.tls_cert, cfg.tls_key))
    check_identity(cfg, genesis, cert)
    pinned = pinned_peers(cfg, genesis)
    key = load_signing_key(cfg.signing_key)
    me = genesis.validators[cfg.validator]
    if key.public_key != me.public_key:
        raise StartupError(f"{cfg.signing_key} is not the signing key genesis lists for {me.id}")
    cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # GenesisMismatchError: another chain's data
    store = LmdbStore(cfg.data_dir, genesis, map_size_max_bytes=cfg.lmdb_map_size_max_bytes)
    try:
        return await _serve(cfg, genesis, key, store, (pinned, cert, key_pem))
    finally:
        store.close()


async def _serve(
    cfg: NodeConfig,
    genesis: Genesis,
    key: SigningKey,
    store: LmdbStore,
    tls: tuple[dict[int, bytes], bytes, bytes],
) -> int:
    pinned, cert, key_pem = tls
    metrics = Metrics()
    node = Node(
        genesis,
        cfg.validator,
        key,
        store,
        metrics,
        mempool_txs_max=cfg.mempool_txs_max,
        admission_queue_max_ms=cfg.admission_queue_max_ms,
        pipeline=cfg.pipeline,
        view_progress_factor=cfg.view_progress_factor,
        commit_relay_factor=cfg.commit_relay_factor,
    )
    links = _peer_links(cfg, node, tls, metrics)
    node.send_frame = lambda dst, data: links[dst].send(data)
    peers = PeerService(
        node,
        [v.tls_cert_sha256 for v in genesis.validators],
        dialed_in=lambda src: links[src].peer_dialed_in(),
    )

    peer_server = new_peer_server(len(genesis.validators))
    peer_grpc.add_PeerServicer_to_server(peers, peer_server)
    _bind(
        peer_server,
        cfg.listen_host,
        cfg.peer_port,
        peer_server_credentials(key_pem, cert, b"".join(pinned.values())),
    )
    client_server = new_client_server()
    ledger = LedgerService(node, links, stream_inflight_max=cfg.submit_stream_inflight_max)
    # Every Ledger call proves its caller (node/access.py); health and reflection stay open
    # to any TLS client: orchestrators probe them without keys, and they tell nothing of
    # any participant (docs/cluster.md "Security: who reads what"). A call is signed for
    # one validator, by its genesis id: this one's (ADR 0015, "Session 23").
    gate = Gate(node.registry, wall_ms, genesis.validators[cfg.validator].id)
    add_service(client_server, ledger, pb.DESCRIPTOR.services_by_name["Ledger"], gate)
    health_servicer = HealthService()
    add_service(client_server, health_servicer, health_pb2.DESCRIPTOR.services_by_name["Health"])
    names = (LEDGER_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
    add_service(client_server, ReflectionService(names), _REFLECTION)
    _bind(
        client_server,
        cfg.listen_host,
        cfg.client_port,
        grpc.ssl_server_credentials([(key_pem, cert)]),
    )
    _serve_metrics(metrics, cfg)

    await peer_server.start()
    await client_server.start()
    stop = asyncio.Event()
    node.on_halt = stop.set
    tasks = [asyncio.create_task(link.run(), name=f"link-{i}") for i, link in links.items()]
    for t in tasks:
        t.add_done_callback(lambda t: _link_ended(node, t))
    node.start()
    event(
        "started",
        validator=me_id(genesis, cfg.validator),
        chain_id=genesis.chain_id,
        height=store.head().height,
        quorum=node.quorum.describe(),
        peer_port=cfg.peer_port,
        client_port=cfg.client_port,
        metrics_port=cfg.metrics_port,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if node.halted is None:
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    heartbeat = Heartbeat(cfg.data_dir)
    try:
        while not stop.is_set():
            heartbeat.beat()
            await _report_health(health_servicer, node, links)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _READY_CHECK_S)
        heartbeat.stop()  # halted or stopping: not alive from now on
        if node.halted is not None:
            await _linger_halted(health_servicer, node, links)
    finally:
        heartbeat.stop()
        event("stopping", height=store.head().height)
        await health_servicer.enter_graceful_shutdown()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _stop_servers(node, (client_server, peer_server))
        event("stopped", height=store.head().height)
    return 0 if node.halted is None else node.exit_code


async def _stop_servers(node: Node, servers: tuple[grpc.aio.Server, ...]) -> None:
    """Stop the servers (in-flight calls get the grace period), then close the node:
    whatever happened, nothing still queued on the loop reaches the store after this."""
    node.stop()
    try:
        await asyncio.gather(*(s.stop(SHUTDOWN_GRACE_MS / 1000) for s in servers))
    finally:
        node.close()


def _peer_links(
    cfg: NodeConfig, node: Node, tls: tuple[dict[int, bytes], bytes, bytes], metrics: Metrics
) -> dict[int, PeerLink]:
    """One dialing link per peer of the config, each trusting only that peer's pin."""
    pinned, cert, key_pem = tls
    strangers = [p.validator for p in cfg.peers if p.validator not in pinned]
    if strangers:
        raise StartupError(f"config lists peers {strangers}, which genesis does not have")
    links = {
        p.validator: PeerLink(
            node,
            p.validator,
            address=p.address,
            tls_name=p.tls_name,
            # The peer's own pinned certificate is the channel's only root: any other
            # certificate, whoever signed it, is refused.
            credentials=peer_channel_credentials(pinned[p.validator], key_pem, cert),
            metrics=metrics,
        )
        for p in cfg.peers
    }
    missing = set(range(len(node.genesis.validators))) - set(links) - {cfg.validator}
    if missing:
        raise StartupError(f"config lists no address for validators {sorted(missing)}")
    return links


def _link_ended(node: Node, task: asyncio.Task[None]) -> None:
    """A peer link runs until cancelled; one that ends by an exception is a bug: halt."""
    exc = None if task.cancelled() else task.exception()
    if exc is not None:
        node.fail(task.get_name(), exc)


async def _linger_halted(servicer: HealthService, node: Node, links: dict[int, PeerLink]) -> None:
    """Fail-stop: NOT_SERVING (overall and the ledger) for HALT_LINGER_MS, so health
    checks see the halt before the process exits with ``node.exit_code``."""
    await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    await _report_health(servicer, node, links)
    event("exiting", logging.WARNING, reason=node.halted, exit_code=node.exit_code)
    await asyncio.sleep(HALT_LINGER_MS / 1000)


async def _report_health(servicer: HealthService, node: Node, links: dict[int, PeerLink]) -> None:
    """``ledger.v1.Ledger`` is SERVING when this node can reach a quorum (itself included)
    and has not halted."""
    reachable = 1 + sum(link.connected for link in links.values())
    ok = node.halted is None and reachable >= node.quorum.q
    status = (
        health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    await servicer.set(LEDGER_SERVICE, status)


def me_id(genesis: Genesis, index: int) -> str:
    return genesis.validators[index].id


def _serve_metrics(metrics: Metrics, cfg: NodeConfig) -> None:
    try:
        metrics.serve(cfg.listen_host, cfg.metrics_port)
    except OSError as e:  # the line names the port (before: "[Errno 98] Address already in use")
        raise StartupError(
            f"cannot listen on {cfg.listen_host}:{cfg.metrics_port} (metrics_port): {e.strerror}"
        ) from e


def _bind(server: grpc.aio.Server, host: str, port: int, creds: grpc.ServerCredentials) -> None:
    address = f"{host}:{port}"
    try:
        bound = server.add_secure_port(address, creds)
    except RuntimeError as e:
        raise StartupError(f"cannot listen on {address}: {e}") from e
    if bound == 0:
        raise StartupError(f"cannot listen on {address} (in use, or not an address here)")
