"""``python -m node.probe --config FILE [--service NAME]``: ask this validator's own client
port for its gRPC health, for an orchestrator's probe; exit 0 when SERVING, else 1.

Kubernetes' built-in gRPC probe cannot speak TLS, and the client port speaks nothing else,
so the manifests (devtools/k8s.py) run this as an exec probe inside the container. It trusts
only the node's own certificate (the one genesis pins) and needs no participant key:
health is open to any TLS client (docs/cluster.md "Health, metrics, logs").
Service ``""``: the process runs and has not halted (liveness); ``ledger.v1.Ledger``: it
also reaches a quorum (readiness).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "probe"]

PROBE_TIMEOUT_S = 3.0  # within the manifests' timeoutSeconds (5)


def probe(config_path: str, service: str) -> bool:
    """True when the node of ``config_path`` answers SERVING for ``service``."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from node.keyfiles import dns_names
    from node.netconfig import host_port, load_node_config

    cfg = load_node_config(config_path)
    pem = cfg.tls_cert.read_bytes()
    host = "127.0.0.1" if cfg.listen_host in ("0.0.0.0", "::") else cfg.listen_host
    options = [("grpc.ssl_target_name_override", sorted(dns_names(pem))[0])]
    creds = grpc.ssl_channel_credentials(pem)
    with grpc.secure_channel(host_port(host, cfg.client_port), creds, options) as ch:
        try:
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=PROBE_TIMEOUT_S
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m node.probe", description=__doc__)
    p.add_argument("--config", required=True, help="the node's config.json")
    p.add_argument("--service", default="", help="'' (liveness) or ledger.v1.Ledger (readiness)")
    args = p.parse_args(argv)
    try:
        ok = probe(args.config, args.service)
    except (OSError, ValueError) as e:
        print(f"probe: {e}", file=sys.stderr)
        return 1
    print("SERVING" if ok else "NOT_SERVING")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
