"""One validator process on its own: what it refuses at start, who it lets onto its peer
port, and its operational surfaces (health, reflection, metrics, status exit codes)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from devtools import cluster
from node import probe
from node.genesis import load_genesis
from node.netconfig import Network
from node.store import LmdbStore
from node.wire import peer_pb2 as peer_pb
from node.wire import peer_pb2_grpc as peer_grpc
from tests.cluster.harness import generate, make_status, wait_until
from tests.tls_helpers import _make_ca, _make_node_cert, _pem_cert, _pem_key

pytestmark = pytest.mark.slow


def _run_node(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_node_refuses_data_of_another_chain(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", 4, 3)
    b = generate(tmp_path / "b", 4, 3)
    LmdbStore(a.nodes[0].dir / "data", load_genesis(a.genesis)).close()
    shutil.copytree(a.nodes[0].dir / "data", b.nodes[0].dir / "data")
    done = _run_node(b.nodes[0].config)
    assert done.returncode == 2
    assert "cannot start" in done.stderr and "data directory holds chain" in done.stderr


def test_node_refuses_a_certificate_genesis_does_not_pin(tmp_path: Path) -> None:
    net = generate(tmp_path / "run", 4, 3)
    for name in ("tls.pem", "tls.key"):
        shutil.copy(net.nodes[1].dir / name, net.nodes[0].dir / name)
    done = _run_node(net.nodes[0].config)
    assert done.returncode == 2
    assert "not the TLS certificate genesis pins for val00" in done.stderr


@pytest.fixture
def lone_node(tmp_path: Path) -> Iterator[Network]:
    """Validator 0 of a 4-validator network, running alone (no quorum)."""
    net = generate(tmp_path / "run", 4, 3)
    cluster.start_node(net, 0)
    try:
        wait_until(lambda: cluster.node_state(net, 0).up, 30, "node 0 to answer")
        yield net
    finally:
        cluster.stop_cluster(net)


def _channel(net: Network, port: int, *creds_pems: bytes) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(net.tls_pinned.read_bytes(), *creds_pems)
    return grpc.secure_channel(
        f"127.0.0.1:{port}", creds, [("grpc.ssl_target_name_override", net.nodes[0].name)]
    )


def _dial_peer_port(net: Network, key_pem: bytes, cert_pem: bytes) -> grpc.StatusCode:
    with _channel(net, net.nodes[0].peer_port, key_pem, cert_pem) as ch:
        stream = peer_grpc.PeerStub(ch).Connect(iter([peer_pb.PeerFrame()]), timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            for _ in stream:
                pass
    return info.value.code()


def test_peer_port_admits_only_pinned_validators(lone_node: Network) -> None:
    net = lone_node
    ca = _make_ca("attacker", datetime.now(UTC))  # the network has no CA (ADR 0019)
    key, cert = _make_node_cert(ca, "node-01", "val01")  # CA-signed, but not pinned
    # The acceptor's client roots are the pinned certificates: refused in the handshake.
    assert _dial_peer_port(net, _pem_key(key), _pem_cert(cert)) is grpc.StatusCode.UNAVAILABLE
    own = [(net.nodes[0].dir / f).read_bytes() for f in ("tls.key", "tls.pem")]
    assert _dial_peer_port(net, *own) is grpc.StatusCode.UNAUTHENTICATED  # not from itself
    # A pinned peer is welcome: the node answers with its hello.
    peer = [(net.nodes[2].dir / f).read_bytes() for f in ("tls.key", "tls.pem")]
    with _channel(net, net.nodes[0].peer_port, *peer) as ch:
        hello = next(peer_grpc.PeerStub(ch).Connect(iter([]), timeout=10))
    assert (hello.validator, hello.chain_id) == (0, net.chain_id)


def test_health_reflection_metrics_and_status_exit_code(lone_node: Network) -> None:
    net = lone_node
    node = net.nodes[0]
    with _channel(net, node.client_port) as ch:
        check = health_pb2_grpc.HealthStub(ch).Check
        assert check(health_pb2.HealthCheckRequest(), timeout=5).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
        # Alone it cannot reach a quorum: the ledger service says so.
        wait_until(
            lambda: (
                check(health_pb2.HealthCheckRequest(service="ledger.v1.Ledger"), timeout=5).status
                == health_pb2.HealthCheckResponse.NOT_SERVING
            ),
            10,
            "ledger service NOT_SERVING",
        )
        listing = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for s in next(listing).list_services_response.service}
    assert {"ledger.v1.Ledger", "grpc.health.v1.Health"} <= names

    url = f"http://127.0.0.1:{node.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    for metric in (
        "ledger_height 0.0",
        "ledger_peers_connected 0.0",
        "ledger_commit_latency_seconds_bucket",
        'ledger_transactions_total{code="OK"} 0.0',
        "ledger_view_changes_total",
        "ledger_mempool_txs 0.0",
    ):
        assert metric in text, metric

    assert cluster.main(["--run-dir", str(net.run_dir), "status"]) == 1  # 3 nodes down
    code, doc = make_status(net)
    assert code == 1
    assert [n["up"] for n in doc["nodes"]] == [True, False, False, False]
    assert len(doc["problems"]) == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _second_config(net: Network, **fields: object) -> Path:
    """Node 0's config for a second process: another data directory (a restored copy of
    its data, say) and ``fields`` changed; its key, certificate and other ports as they are."""
    doc = json.loads(net.nodes[0].config.read_text())
    doc.update({"data_dir": "data-second", **fields})
    path = net.nodes[0].dir / "config-second.json"
    path.write_text(json.dumps(doc))
    return path


def _refused(config: Path) -> str:
    """The second process's refusal line; fails the test if the process runs."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "node", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a second process of a running validator ran beside it")
    assert done.returncode == 2, done.stderr
    return done.stderr


def test_a_second_process_of_a_running_validator_is_refused(lone_node: Network) -> None:
    """Review 33o: gRPC's SO_REUSEPORT let a second process of validator 0 (its own data
    directory, its own metrics port) bind the peer and client ports node 0 serves and run
    with the same key; now its peer port refuses it, and with node 0's metrics port too it
    is refused by a line that names the port (before: '[Errno 98] Address already in use')."""
    node = lone_node.nodes[0]
    err = _refused(_second_config(lone_node, metrics_port=_free_port()))
    assert f"cannot listen on 127.0.0.1:{node.peer_port}" in err
    err = _refused(_second_config(lone_node, peer_port=_free_port(), client_port=_free_port()))
    assert f"cannot listen on 127.0.0.1:{node.metrics_port} (metrics_port)" in err
    # Control: with ports of its own the same second process does start.
    config = _second_config(
        lone_node, peer_port=_free_port(), client_port=_free_port(), metrics_port=_free_port()
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "node", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = json.loads(proc.stderr.readline())  # the node's first log line
        assert first["event"] == "started", first
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_pod_probe_reads_health_over_tls(lone_node: Network) -> None:
    """node/probe.py, the Kubernetes manifests' exec probe: alive (service "": the node's
    heartbeat file), not ready (ledger.v1.Ledger, gRPC health over TLS: alone, no quorum);
    once stopped, not alive either (the file removed)."""
    config = str(lone_node.nodes[0].config)
    assert probe.main(["--config", config]) == 0
    assert probe.main(["--config", config, "--service", "ledger.v1.Ledger"]) == 1
    cluster.stop_cluster(lone_node)
    assert probe.main(["--config", config]) == 1
