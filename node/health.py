"""``ledger-node health CONFIG``: ask a node on this machine whether it is serving.

The probe of compose healthchecks (devtools/compose.py) and of anything else that runs next
to the node: it reads the node's config, dials its client port on loopback with TLS
trusting only the node's own certificate (and a DNS name that certificate carries), and
calls ``grpc.health.v1.Health/Check``, which needs no identity. The
service ``""`` (the default) is SERVING while the process runs and has not halted;
``ledger.v1.Ledger`` only while the node also reaches a quorum (docs/cluster.md).

Exit codes: 0 SERVING; 1 anything else (NOT_SERVING, no answer within the timeout, a
config it cannot read); 2 a usage error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from node.config import HEALTH_PROBE_TIMEOUT_MS
from node.keyfiles import dns_names
from node.netconfig import ConfigError, NodeConfig, host_port, load_node_config

__all__ = ["EXIT_NOT_SERVING", "EXIT_SERVING", "probe", "register", "target"]

EXIT_SERVING = 0
EXIT_NOT_SERVING = 1
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "health",
        help="gRPC health check of the node of CONFIG on this machine; exit 0 if SERVING",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("config", type=Path, help="node config JSON")
    p.add_argument(
        "--service", default="", help='health service: "" (default: alive) or ledger.v1.Ledger'
    )
    p.set_defaults(fn=_main)


def _main(args: argparse.Namespace) -> int:
    try:
        cfg = load_node_config(args.config)
        answer = probe(cfg, args.service)
    except (ConfigError, OSError, ValueError) as e:
        print(f"health: {e}")
        return EXIT_NOT_SERVING
    print(f"{target(cfg)} {args.service or '(process)'}: {answer}")
    return EXIT_SERVING if answer == "SERVING" else EXIT_NOT_SERVING


def target(cfg: NodeConfig) -> str:
    """Where this machine reaches the node's client port: its listen address, or loopback
    when it listens on every address (a container)."""
    return host_port(_WILDCARDS.get(cfg.listen_host, cfg.listen_host), cfg.client_port)


def probe(cfg: NodeConfig, service: str = "") -> str:
    """The node's health status name for ``service`` (SERVING, NOT_SERVING, ...), or the
    gRPC status code name of a call that failed (UNAVAILABLE, DEADLINE_EXCEEDED)."""
    import grpc  # the validator extra; imported here so --help works without it
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    cert = cfg.tls_cert.read_bytes()
    names = sorted(dns_names(cert))
    if not names:
        raise ValueError(f"{cfg.tls_cert} names no DNS name to check")
    creds = grpc.ssl_channel_credentials(cert)
    options = [("grpc.ssl_target_name_override", names[0])]
    with grpc.secure_channel(target(cfg), creds, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=service),
                timeout=HEALTH_PROBE_TIMEOUT_MS / 1000,
            )
        except grpc.RpcError as e:
            return str(e.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
