"""A validator's peer and client ports are its own: a port another gRPC server listens on
is refused at start (docs/cluster.md, the start-up checks), not shared.

Review 33o found gRPC's default, SO_REUSEPORT, let a second process bind a port a running
node served (the kernel then splits the connections between the two): a second process
of one validator, started on a restored copy of its data directory beside the running
one, ran with the same key and another safety state. tests/cluster/test_node_process.py
shows it with real processes; here the servers themselves, in this process.
"""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from node.runtime._server import StartupError, _bind, new_client_server, new_peer_server
from tests.tls_helpers import _make_ca, _make_node_cert, _pem_cert, _pem_key


def _credentials() -> grpc.ServerCredentials:
    key, cert = _make_node_cert(_make_ca("ports", datetime.now(UTC)), "node-00", "val00")
    return grpc.ssl_server_credentials([(_pem_key(key), _pem_cert(cert))])


@pytest.mark.parametrize("server", ["peer", "client"])
async def test_a_port_another_grpc_server_listens_on_is_refused(server: str) -> None:
    other = grpc.aio.server()  # another node's, with gRPC's defaults (SO_REUSEPORT on)
    port = other.add_insecure_port("127.0.0.1:0")
    await other.start()
    try:
        ours = new_peer_server(4) if server == "peer" else new_client_server()
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
            _bind(ours, "127.0.0.1", port, _credentials())
    finally:
        await other.stop(None)
    # Control: the port itself was free to take once the other server let it go.
    ours = new_peer_server(4) if server == "peer" else new_client_server()
    _bind(ours, "127.0.0.1", port, _credentials())
    await ours.stop(None)
