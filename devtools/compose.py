"""Generate a docker compose file for an N-validator cluster, with Prometheus and Grafana.

    python -m devtools.compose --n 26 --q 16 --out docker/generated
    docker compose -f docker/generated/compose.yaml up --build

It runs network generation (devtools.netgen) for containers into ``--out``: every node is
reached at its container name (node-XX), listens on 0.0.0.0 and names its files by the
paths compose mounts them at. Then it writes ``compose.yaml`` (one service per validator,
each with its own node directory, genesis and the pinned certificates mounted read-only and a
named volume for its LMDB data; client and metrics ports published on 127.0.0.1 only)
and ``prometheus.yml`` (scrapes every node). Grafana is provisioned from docker/grafana.

The YAML is PyYAML's (``devtools.k8s.dump_yaml``, which the Kubernetes manifests use too: it
quotes any string YAML 1.1 would read as another type, "yes" or 22:22). Run it with the
project's Python (``.venv/bin/python``) from the repository root.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devtools.k8s import dump_yaml
from devtools.netgen import (
    CONTAINER_CONFIG,
    CONTAINER_DATA_DIR,
    CONTAINER_GENESIS,
    CONTAINER_NODE_DIR,
    CONTAINER_PINNED,
    NetgenError,
    NetSpec,
    default_quorum,
    generate,
)
from node.netconfig import Network

REPO = Path(__file__).resolve().parent.parent
IMAGE = "dvp-ledger-node:local"
PROMETHEUS_IMAGE = "prom/prometheus:v3.1.0"
GRAFANA_IMAGE = "grafana/grafana:11.4.0"
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
SCRAPE_INTERVAL = "5s"
PUBLISH_HOST = "127.0.0.1"  # published ports are reachable from this machine only
ALERTS_IN_CONTAINER = "/etc/prometheus/alerts.yml"  # docker/prometheus/alerts.yml

Yaml = Any  # a document: mappings, lists, strings, integers, booleans


# --- compose and prometheus documents ----------------------------------------------------


def _rel(target: Path, out: Path) -> str:
    """A path compose resolves against the compose file's directory."""
    rel = os.path.relpath(target, out)
    return rel if rel.startswith("..") else f"./{rel}"


def _bind(source: str, target: str) -> Yaml:
    return {"type": "bind", "source": source, "target": target, "read_only": True}


def published_ports(net: Network) -> list[int]:
    """Every port compose publishes on the host, in order; they must all differ."""
    node_ports = [p for x in net.nodes for p in (x.client_port, x.metrics_port)]
    return [*node_ports, PROMETHEUS_PORT, GRAFANA_PORT]


# `ledger-node health`: SERVING while the process runs and has not halted (docs/cluster.md).
HEALTHCHECK: Yaml = {
    "test": ["CMD", "python", "-m", "node", "health", CONTAINER_CONFIG],
    "interval": "10s",
    "timeout": "5s",
    "retries": 3,
    "start_period": "30s",
}


def _image(i: int, out: Path) -> dict[str, Yaml]:
    """The first node's service builds the image; the others run it (one build, not N),
    and never pull it: the tag exists only where it was built."""
    if i == 0:
        return {"build": {"context": _rel(REPO, out), "dockerfile": "docker/Dockerfile"},
                "image": IMAGE}  # fmt: skip
    return {"image": IMAGE, "pull_policy": "never"}


def _node_service(net: Network, i: int, out: Path, user: str) -> Yaml:
    node = net.nodes[i]
    return {
        **_image(i, out),
        "healthcheck": HEALTHCHECK,
        "hostname": node.name,
        # The key files are 0600 and belong to whoever generated them.
        "user": user,
        "restart": "unless-stopped",
        "stop_grace_period": "10s",
        "volumes": [
            _bind(_rel(node.dir, out), CONTAINER_NODE_DIR),
            _bind(_rel(net.genesis, out), CONTAINER_GENESIS),
            _bind(_rel(net.tls_pinned, out), CONTAINER_PINNED),
            {"type": "volume", "source": f"{node.name}-data", "target": CONTAINER_DATA_DIR},
        ],
        "ports": [f"{PUBLISH_HOST}:{p}:{p}" for p in (node.client_port, node.metrics_port)],
        "networks": ["ledger"],
    }


def compose_doc(net: Network, out: Path, user: str) -> Yaml:
    services: dict[str, Yaml] = {
        x.name: _node_service(net, i, out, user) for i, x in enumerate(net.nodes)
    }
    grafana = REPO / "docker" / "grafana"
    services["prometheus"] = {
        "image": PROMETHEUS_IMAGE,
        "command": [
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            "--storage.tsdb.retention.time=7d",
        ],
        "volumes": [
            _bind("./prometheus.yml", "/etc/prometheus/prometheus.yml"),
            _bind(_rel(REPO / "docker" / "prometheus" / "alerts.yml", out), ALERTS_IN_CONTAINER),
            {"type": "volume", "source": "prometheus-data", "target": "/prometheus"},
        ],
        "ports": [f"{PUBLISH_HOST}:{PROMETHEUS_PORT}:9090"],
        "networks": ["ledger"],
        "restart": "unless-stopped",
    }
    services["grafana"] = {
        "image": GRAFANA_IMAGE,
        "environment": {
            "GF_AUTH_ANONYMOUS_ENABLED": "true",
            "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
            "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH": "/etc/grafana/dashboards/ledger.json",
        },
        "volumes": [
            _bind(_rel(grafana / "provisioning", out), "/etc/grafana/provisioning"),
            _bind(_rel(grafana / "dashboards", out), "/etc/grafana/dashboards"),
            {"type": "volume", "source": "grafana-data", "target": "/var/lib/grafana"},
        ],
        "ports": [f"{PUBLISH_HOST}:{GRAFANA_PORT}:3000"],
        "depends_on": ["prometheus"],
        "networks": ["ledger"],
        "restart": "unless-stopped",
    }
    volumes: dict[str, Yaml] = {f"{x.name}-data": {} for x in net.nodes}
    volumes.update({"prometheus-data": {}, "grafana-data": {}})
    return {
        "name": "dvp-ledger",
        "services": services,
        "volumes": volumes,
        "networks": {"ledger": {}},
    }


def prometheus_doc(net: Network) -> Yaml:
    targets: list[Yaml] = [
        {
            "targets": [f"{x.name}:{x.metrics_port}"],
            "labels": {"node": x.name, "validator": str(x.validator)},
        }
        for x in net.nodes
    ]
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "15s"},
        "rule_files": [ALERTS_IN_CONTAINER],
        "scrape_configs": [{"job_name": "ledger", "static_configs": targets}],
    }


def write_compose(net: Network, user: str) -> tuple[Path, Path]:
    """Write compose.yaml and prometheus.yml into the run directory of ``net``."""
    out = net.run_dir
    ports = published_ports(net)
    if len(set(ports)) != len(ports):
        raise NetgenError(
            f"published ports collide (Prometheus {PROMETHEUS_PORT}, Grafana {GRAFANA_PORT} "
            "or a node's client or metrics port); choose another --port-base"
        )
    header = (
        f"Generated by devtools/compose.py for chain {net.chain_id}\n"
        f"({net.n} validators, quorum {net.q}). Regenerate instead of editing."
    )
    compose, prometheus = out / "compose.yaml", out / "prometheus.yml"
    compose.write_text(dump_yaml([compose_doc(net, out, user)], header), encoding="utf-8")
    prometheus.write_text(dump_yaml([prometheus_doc(net)], header), encoding="utf-8")
    return compose, prometheus


def _check_ports(spec: NetSpec, out: Path) -> None:
    """Refuse before anything is written if a node port is Prometheus's or Grafana's."""
    for i in range(spec.n):
        node = spec.node(i, out)
        for port in (node.client_port, node.metrics_port):
            if port in (PROMETHEUS_PORT, GRAFANA_PORT):
                raise NetgenError(
                    f"{node.name} would publish port {port}, which Prometheus or Grafana "
                    "uses; choose another --port-base"
                )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devtools.compose",
        description="Generate keys, genesis and node configs for containers, and a docker "
        "compose file running them with Prometheus and Grafana.",
    )
    p.add_argument("--n", type=int, default=26, help="number of validators (default: 26)")
    p.add_argument(
        "--q", type=int, help="quorum (default: 16 for 26 validators, else the classic one)"
    )
    p.add_argument(
        "--port-base",
        type=int,
        default=7000,
        help="peer port of node 0; client at +1000, metrics at +2000 (default: 7000)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=REPO / "docker" / "generated",
        help="output directory (default: docker/generated)",
    )
    p.add_argument("--force", action="store_true", help="wipe a previous output first")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    q = args.q if args.q is not None else default_quorum(args.n)
    spec = NetSpec(args.n, q, args.port_base, containers=True)
    try:
        spec.check()
        _check_ports(spec, Path(os.path.abspath(args.out)))
        net = generate(args.out, spec, force=args.force)
        compose, prometheus = write_compose(net, f"{os.getuid()}:{os.getgid()}")
    except NetgenError as e:
        print(f"compose: error: {e}", file=sys.stderr)
        return 2
    first, last = net.nodes[0], net.nodes[-1]
    print(f"wrote {compose} and {prometheus}")
    print(f"chain id {net.chain_id}, {net.n} validators, quorum {net.q}")
    print(
        f"published on {PUBLISH_HOST}: client {first.client_port}-{last.client_port}, "
        f"metrics {first.metrics_port}-{last.metrics_port}, "
        f"Prometheus {PROMETHEUS_PORT}, Grafana {GRAFANA_PORT}"
    )
    shown = compose.relative_to(Path.cwd()) if compose.is_relative_to(Path.cwd()) else compose
    print(f"run: docker compose -f {shown} up --build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
