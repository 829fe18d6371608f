"""``ledger-node health CONFIG``: ask a node on this machine whether it is serving.

The probe of compose healthchecks (devtools/compose.py), of the Kubernetes manifests
(node/probe.py) and of anything else that runs next to the node.

Liveness (service ``""``, the default) needs no network: while the node runs and has not
halted it touches ``alive`` in its data directory (its process id) every ready check
(``Heartbeat``); ``alive`` reads SERVING while that file names a running process and is
at most ``LIVENESS_STALE_MS`` old, else NOT_RUNNING (no file: never started, stopped,
halted), GONE (its process is gone: killed) or STUCK (the event loop stopped turning).
Through the client port, liveness failed whenever anonymous connections held every slot,
and an orchestrator restarted a healthy validator (session 26's review).

Readiness (``ledger.v1.Ledger``, SERVING only while the node also reaches a quorum:
docs/cluster.md) is the node's own answer: the probe reads the node's config, dials its
client port on loopback with TLS trusting only the node's own certificate (and a DNS name
that certificate carries), and calls ``grpc.health.v1.Health/Check``, which needs no
identity.

Exit codes: 0 SERVING; 1 anything else (NOT_SERVING, no answer within the timeout, a
config it cannot read); 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from node.config import HEALTH_PROBE_TIMEOUT_MS, LIVENESS_STALE_MS
from node.files import read_regular
from node.keyfiles import dns_names
from node.netconfig import ConfigError, NodeConfig, host_port, load_node_config

__all__ = [
    "ALIVE_FILE",
    "EXIT_NOT_SERVING",
    "EXIT_SERVING",
    "Heartbeat",
    "alive",
    "probe",
    "register",
    "target",
]

EXIT_SERVING = 0
EXIT_NOT_SERVING = 1
ALIVE_FILE = "alive"  # in the data directory: the process id, touched while the node lives
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "health",
        help="liveness (heartbeat) or readiness (gRPC health) of the node of CONFIG on this "
        "machine; exit 0 if SERVING",
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
    where = target(cfg) if args.service else cfg.data_dir / ALIVE_FILE
    print(f"{where} {args.service or '(process)'}: {answer}")
    return EXIT_SERVING if answer == "SERVING" else EXIT_NOT_SERVING


def target(cfg: NodeConfig) -> str:
    """Where this machine reaches the node's client port: its listen address, or loopback
    when it listens on every address (a container)."""
    return host_port(_WILDCARDS.get(cfg.listen_host, cfg.listen_host), cfg.client_port)


class Heartbeat:
    """The node's side of liveness: ``ALIVE_FILE`` in ``data_dir``, written with this
    process's id at once, touched by ``beat``, removed by ``stop``."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / ALIVE_FILE
        self._write()

    def _write(self) -> None:
        tmp = self._path.with_name(ALIVE_FILE + ".tmp")
        tmp.write_text(str(os.getpid()))
        os.replace(tmp, self._path)  # a reader sees a whole id or none

    def beat(self) -> None:
        try:
            os.utime(self._path)
        except FileNotFoundError:  # removed under us (an operator's clean-up): again
            self._write()

    def stop(self) -> None:
        self._path.unlink(missing_ok=True)


def alive(data_dir: Path, now_s: float | None = None) -> str:
    """SERVING, NOT_RUNNING, GONE or STUCK (module docstring) for the node whose data
    directory is ``data_dir``, at ``now_s`` (wall-clock seconds; now if None)."""
    path = data_dir / ALIVE_FILE
    try:
        touched = path.stat().st_mtime
        pid = int(path.read_text())
    except (FileNotFoundError, ValueError):
        return "NOT_RUNNING"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "GONE"
    except PermissionError:
        pass  # it runs, as another user
    age_ms = ((time.time() if now_s is None else now_s) - touched) * 1000
    return "SERVING" if age_ms <= LIVENESS_STALE_MS else "STUCK"


def probe(cfg: NodeConfig, service: str = "") -> str:
    """The node's status name for ``service``: liveness (``""``) from its heartbeat
    (``alive``), anything else from its gRPC health (SERVING, NOT_SERVING, ...), or the
    gRPC status code name of a call that failed (UNAVAILABLE, DEADLINE_EXCEEDED)."""
    if not service:
        return alive(cfg.data_dir)
    import grpc  # the validator extra; imported here so --help works without it
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    cert = read_regular(cfg.tls_cert)
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
