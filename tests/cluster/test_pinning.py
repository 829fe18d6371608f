"""Dialers pin peers (issue 12, item 10): a server holding a certificate from the network's
own CA, named as a validator but not the certificate genesis pins for it, is refused by a
dialing validator process and by the SDK before any call reaches it. This is what a thief
of the CA key could build; the negative controls show that trusting the CA (the old
behaviour) lets such a server take the call.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from client import AsyncLedgerClient, Endpoint, LedgerClient, UnavailableError
from devtools import cluster
from devtools.demo.run import load_run_network
from node import ceremony
from node.genesis import load_genesis
from node.netconfig import Network
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc
from node.wire import peer_pb2_grpc as peer_grpc
from tests.cluster.harness import generate, wait_until
from tests.ledger_helpers import TxFactory
from tests.tls_helpers import _make_ca, _make_node_cert, _pem_cert, _pem_key

pytestmark = pytest.mark.slow


@dataclass
class _Rogue(grpc.GenericRpcHandler):
    """Counts every call that got past the TLS handshake, and refuses it."""

    calls: list[str] = field(default_factory=list)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        self.calls.append(details.method)  # type: ignore[attr-defined]

        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "rogue")

        if details.method.endswith("/Connect"):  # type: ignore[attr-defined]
            return grpc.stream_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)


# A CA an attacker controls (or one a dialer wrongly trusts): the network has none of its
# own (ADR 0019), so a CA-signed certificate for a validator's names is the impostor.
_ATTACKER_CA = _make_ca("attacker", datetime.now(UTC))


def _ca_signed_impostor(net: Network, index: int) -> tuple[bytes, bytes]:
    """Key and certificate carrying both names of validator ``index`` (its node-XX name
    and its genesis id, the TLS name peers dial it by), signed by a CA: not the pinned one."""
    node = net.nodes[index]
    key, cert = _make_node_cert(_ATTACKER_CA, node.name, node.id)
    return _pem_key(key), _pem_cert(cert)


@pytest.fixture
def impostor(tmp_path: Path) -> Iterator[tuple[Network, _Rogue]]:
    """A 4-validator network whose node-01 ports are held by a CA-signed impostor."""
    net = generate(tmp_path / "run", 4, 3)
    rogue = _Rogue()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((rogue,))
    creds = grpc.ssl_server_credentials([_ca_signed_impostor(net, 1)])
    for port in (net.nodes[1].peer_port, net.nodes[1].client_port):
        assert server.add_secure_port(f"127.0.0.1:{port}", creds) == port
    server.start()
    try:
        yield net, rogue
    finally:
        server.stop(None)
        cluster.stop_cluster(net)


def _ca_trusting_call(net: Network, port: int, call: Callable[[grpc.Channel], object]) -> None:
    """Negative control: what a dialer that trusts the CA (the old code) would do."""
    creds = grpc.ssl_channel_credentials(_pem_cert(_ATTACKER_CA.cert))
    options = [("grpc.ssl_target_name_override", net.nodes[1].name)]
    with (
        grpc.secure_channel(f"127.0.0.1:{port}", creds, options) as ch,
        pytest.raises(grpc.RpcError) as info,
    ):
        call(ch)
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED  # the rogue answered


def _logged(net: Network, node: int, event: str, **fields: object) -> bool:
    log = net.run_dir / "logs" / f"{net.nodes[node].name}.log"
    if not log.exists():
        return False
    for line in log.read_text().splitlines():
        doc = json.loads(line) if line.startswith("{") else {}
        if doc.get("event") == event and all(doc.get(k) == v for k, v in fields.items()):
            return True
    return False


def test_a_dialing_validator_refuses_a_ca_signed_impostor(
    impostor: tuple[Network, _Rogue],
) -> None:
    net, rogue = impostor
    cluster.start_node(net, 0)
    wait_until(lambda: _logged(net, 0, "peer_unreachable", peer=1), 30, "node 0 to dial node 1")
    assert rogue.calls == []  # refused in the handshake: no frame reached the impostor
    assert not _logged(net, 0, "peer_connected", peer=1)

    peer_port = net.nodes[1].peer_port
    _ca_trusting_call(net, peer_port, lambda ch: list(peer_grpc.PeerStub(ch).Connect(iter([]))))
    assert rogue.calls == ["/ledger.v1.Peer/Connect"]


async def test_the_sdk_refuses_a_ca_signed_impostor(impostor: tuple[Network, _Rogue]) -> None:
    net, rogue = impostor
    genesis = load_genesis(net.genesis)
    node1 = net.nodes[1]
    endpoint = Endpoint(node1.client_address, node1.name)
    pinned = net.tls_pinned.read_bytes()
    async with AsyncLedgerClient(
        [endpoint], tls_certs=pinned, genesis=genesis, rpc_timeout_s=2
    ) as c:
        with pytest.raises(UnavailableError):
            await c.head()
    assert rogue.calls == []

    # The CA is no trust root the SDK accepts at all.
    ca_pem = _pem_cert(_ATTACKER_CA.cert)
    with pytest.raises(ValueError, match="not pinned by genesis"):
        AsyncLedgerClient([endpoint], tls_certs=ca_pem, genesis=genesis)

    port = node1.client_port
    _ca_trusting_call(
        net, port, lambda ch: pb_grpc.LedgerStub(ch).GetStatus(pb.StatusRequest(), timeout=5)
    )
    assert rogue.calls == ["/ledger.v1.Ledger/GetStatus"]


def test_a_ceremony_made_cluster_settles_with_the_bundles_gone(tmp_path: Path) -> None:
    """`make cluster`'s run directory is a ceremony's (ADR 0019): every validator's and
    participant's bundle verifies against what assemble wrote, there is no CA, and nothing
    reads the bundles at run time: delete them and a trade still settles, its receipt
    verifies."""
    net = generate(tmp_path / "run", 4, 3)
    assembly = ceremony.load_assembly(net.genesis)
    bundles = ceremony.read_bundles([net.run_dir / "bundles"])
    assert sorted(b.name for b in bundles if b.kind == ceremony.VALIDATOR) == [
        x.id for x in net.nodes
    ]
    for b in bundles:
        ceremony.verify(assembly, b, assembly.fingerprint)
    assert not (net.run_dir / "ca").exists()
    shutil.rmtree(net.run_dir / "bundles")
    try:
        cluster.start_cluster(net, progress=False)
        demo = load_run_network(net.run_dir)
        txf = TxFactory(demo, now_ms=int(time.time() * 1000))
        with LedgerClient.from_run_dir(net.run_dir, identity="AUDITOR") as c:
            receipt = c.submit(txf.signed(txf.transfer()))
        assert receipt.ok and receipt.result_proof is not None
    finally:
        cluster.stop_cluster(net)
