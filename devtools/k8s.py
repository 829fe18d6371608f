"""Kubernetes manifests for validators from a ceremony's public files (docs/deploy.md).

    python -m devtools.k8s --genesis DIR/genesis.json --out k8s/ [--validator val07]
        [--keys val07=/secure/val07] [--image REGISTRY/dvp-ledger-node:TAG]
    python -m devtools.k8s --from-run-dir k8s/run --out k8s/   (make k8s: all nodes, Secrets)

Per validator (``--validator``, default every one in genesis): a ConfigMap with its node
config, a headless-free ClusterIP Service with its peer, client and metrics ports, and a
StatefulSet of one replica (a validator is one process with one LMDB store: never two)
with a volume claim for its data, resource requests, Prometheus scrape annotations and
gRPC health probes (node/probe.py: the built-in gRPC probe cannot speak TLS). One
ConfigMap ``ledger-genesis`` carries genesis.json and validators.pem, both public.

Keys: a validator's pod mounts the Secret ``<name>-keys`` (validator.key, tls.key,
tls.pem). By default the manifests only refer to it, so the operator creates it from its
private directory without the key passing through any file this tool writes::

    kubectl create secret generic val07-keys --from-file=/secure/val07/validator.key \\
        --from-file=/secure/val07/tls.key --from-file=/secure/val07/tls.pem

With ``--keys NAME=DIR`` (or ``--from-run-dir``) the Secret manifests are written too,
into ``secrets/`` (0700, files 0600): for a test cluster, never for a bank's own keys.

The YAML is PyYAML's (``dump_yaml``, also devtools/compose.py's), a tools-only dependency.
"""

from __future__ import annotations

import argparse
import base64
import json
import posixpath
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from node import ceremony
from node._version import __version__
from node.keyfiles import write_private_file
from node.netconfig import PINNED_CERTS_FILE, load_network, node_config_to_json

__all__ = ["dump_yaml", "main", "manifests", "secret_manifest"]

IMAGE = f"dvp-ledger-node:{__version__}"
GENESIS_CONFIGMAP = "ledger-genesis"
# Where the pod finds its files (the image's entrypoint reads /run/node/config.json).
MOUNT_NODE, MOUNT_LEDGER, MOUNT_KEYS, MOUNT_DATA = (
    "/run/node",
    "/run/ledger",
    "/run/keys",
    "/run/data",
)
IMAGE_USER = 10001  # docker/Dockerfile's `ledger` user
KEY_FILES = (ceremony.VALIDATOR_KEY_FILE, ceremony.TLS_KEY_FILE, ceremony.TLS_CERT_FILE)
# One validator on 2 cores runs 26/16 at about 40% of a core (docs/performance.md); the
# request reserves that and memory for a full mempool; the limit stops a runaway process
# before it starves its neighbours.
REQUESTS = {"cpu": "500m", "memory": "512Mi"}
LIMITS = {"memory": "2Gi"}
DATA_SIZE = "10Gi"
METRICS_PORT_OFFSET = 1000  # from the client port, as `ledger-node config` defaults it
# Liveness: the process runs and has not halted (a halted node exits on its own anyway);
# readiness: it also reaches a quorum, so clients' Services route only to useful nodes.
LIVENESS_SERVICE, READINESS_SERVICE = "", "ledger.v1.Ledger"


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no type stubs
    """SafeDumper, writing multi-line strings (a config.json, genesis, PEM) as literal
    blocks a person can read and diff; PyYAML falls back to quoting where a block cannot
    hold the string exactly."""


def _represent_str(dumper: Any, data: str) -> Any:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(docs: Sequence[Any], header: str) -> str:
    """YAML documents (``---`` between them) under a ``#`` comment header. PyYAML quotes
    any string YAML 1.1 would read as another type ("yes", "22:22"), and keeps key order."""
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    body = yaml.dump_all(list(docs), Dumper=_Dumper, sort_keys=False, default_flow_style=False)
    return comments + str(body)


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "dvp-ledger-validator", "app.kubernetes.io/instance": name}


def _service_name(a: ceremony.Address) -> str:
    """Peers dial a validator at its bundle's host: when that is a bare name, it is this
    Service's (same namespace); otherwise the validator's name, and the host is routed to
    it by whatever the operator set up (a LoadBalancer, an ingress, DNS)."""
    return a.host if "." not in a.host and not a.host[0].isdigit() else a.id


def _node_config_doc(
    asm: ceremony.Assembly, index: int, overrides: Mapping[str, str]
) -> dict[str, Any]:
    rel = [
        Path(posixpath.relpath(p, MOUNT_NODE))
        for p in (f"{MOUNT_LEDGER}/genesis.json", f"{MOUNT_LEDGER}/{PINNED_CERTS_FILE}",
                  MOUNT_KEYS, MOUNT_DATA)
    ]  # fmt: skip
    a = asm.addresses[index]
    cfg = ceremony.node_config(
        asm, a.id, ceremony.ConfigPaths(*rel), listen_host="0.0.0.0",
        metrics_port=a.client_port + METRICS_PORT_OFFSET, overrides=overrides,
    )  # fmt: skip
    return node_config_to_json(cfg, Path(MOUNT_NODE))


def _probe(service: str, period_s: int) -> dict[str, Any]:
    cmd = ["python", "-m", "node.probe", "--config", f"{MOUNT_NODE}/config.json"]
    return {
        "exec": {"command": [*cmd, "--service", service]},
        "periodSeconds": period_s,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def _ports(a: ceremony.Address) -> list[tuple[str, int]]:
    return [("peer", a.peer_port), ("client", a.client_port),
            ("metrics", a.client_port + METRICS_PORT_OFFSET)]  # fmt: skip


def _statefulset(a: ceremony.Address, image: str) -> dict[str, Any]:
    metrics = a.client_port + METRICS_PORT_OFFSET
    container = {
        "name": "validator",
        "image": image,
        "ports": [{"name": n, "containerPort": p} for n, p in _ports(a)],
        "resources": {"requests": dict(REQUESTS), "limits": dict(LIMITS)},
        "livenessProbe": _probe(LIVENESS_SERVICE, 10),
        "readinessProbe": _probe(READINESS_SERVICE, 5),
        "volumeMounts": [
            {"name": "config", "mountPath": MOUNT_NODE, "readOnly": True},
            {"name": "genesis", "mountPath": MOUNT_LEDGER, "readOnly": True},
            {"name": "keys", "mountPath": MOUNT_KEYS, "readOnly": True},
            {"name": "data", "mountPath": MOUNT_DATA},
        ],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
    }
    pod = {
        "metadata": {
            "labels": _labels(a.id),
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(metrics),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {
            # SIGTERM, then the node's own orderly stop (docs/cluster.md) before SIGKILL.
            "terminationGracePeriodSeconds": 15,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": IMAGE_USER,
                "runAsGroup": IMAGE_USER,
                "fsGroup": IMAGE_USER,
            },
            "containers": [container],
            "volumes": [
                {"name": "config", "configMap": {"name": f"{a.id}-config"}},
                {"name": "genesis", "configMap": {"name": GENESIS_CONFIGMAP}},
                # 0440: readable by the pod's group (fsGroup) only; the node warns that a
                # group may read its key, which here is its own group alone.
                {"name": "keys", "secret": {"secretName": f"{a.id}-keys", "defaultMode": 0o440}},
            ],
        },
    }
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": DATA_SIZE}}},
    }  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": a.id, "labels": _labels(a.id)},
        "spec": {
            "replicas": 1,  # one process per validator, ever: two would sign twice
            "serviceName": _service_name(a),
            "selector": {"matchLabels": _labels(a.id)},
            # One at a time, and only once the new pod is ready: a rolling upgrade keeps
            # every other validator up, so the quorum holds (docs/deploy.md "Upgrades").
            "updateStrategy": {"type": "RollingUpdate"},
            "podManagementPolicy": "OrderedReady",
            "template": pod,
            "volumeClaimTemplates": [claim],
        },
    }


def _validator_docs(
    asm: ceremony.Assembly, index: int, image: str, overrides: Mapping[str, str]
) -> list[dict[str, Any]]:
    a = asm.addresses[index]
    config = json.dumps(_node_config_doc(asm, index, overrides), indent=2) + "\n"
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": f"{a.id}-config", "labels": _labels(a.id)},
         "data": {"config.json": config}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": _service_name(a), "labels": _labels(a.id)},
         "spec": {"selector": _labels(a.id),
                  "ports": [{"name": n, "port": p, "targetPort": p} for n, p in _ports(a)]}},
        _statefulset(a, image),
    ]  # fmt: skip


def manifests(
    asm: ceremony.Assembly,
    genesis_text: str,
    pinned: bytes,
    *,
    only: Sequence[str] = (),
    image: str = IMAGE,
    overrides: Mapping[str, str] = {},
) -> dict[str, list[dict[str, Any]]]:
    """File name -> its documents: ``genesis.yaml`` and one ``<name>.yaml`` per validator."""
    ids = [a.id for a in asm.addresses]
    unknown = sorted(set(only) - set(ids))
    if unknown:
        raise ceremony.CeremonyError(f"--validator {unknown[0]}: not in genesis")
    genesis_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": GENESIS_CONFIGMAP, "labels": {"app.kubernetes.io/name": "dvp-ledger"}},
        "data": {"genesis.json": genesis_text, PINNED_CERTS_FILE: pinned.decode("ascii")},
    }
    out = {"genesis.yaml": [genesis_map]}
    for i, name in enumerate(ids):
        if not only or name in only:
            out[f"{name}.yaml"] = _validator_docs(asm, i, image, overrides)
    return out


def secret_manifest(name: str, key_dir: Path) -> dict[str, Any]:
    """The Secret ``<name>-keys`` from a private directory (test clusters only)."""
    data = {f: base64.b64encode((key_dir / f).read_bytes()).decode() for f in KEY_FILES}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": f"{name}-keys", "labels": _labels(name)},
        "data": data,
    }


def _write(out: Path, files: Mapping[str, list[dict[str, Any]]], header: str) -> None:
    for name, docs in files.items():
        (out / name).write_text(dump_yaml(docs, header), encoding="utf-8")


def _write_secrets(out: Path, keys: Mapping[str, Path], asm: ceremony.Assembly) -> None:
    for name, key_dir in keys.items():  # all checked before any is written
        ceremony.check_private_dir(asm, name, key_dir)
    if not keys:
        return
    (out / "secrets").mkdir(mode=0o700, exist_ok=True)
    for name, key_dir in keys.items():
        text = dump_yaml([secret_manifest(name, key_dir)], "private keys: never commit")
        write_private_file(out / "secrets" / f"{name}.yaml", text.encode())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devtools.k8s", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--genesis", type=Path, help="a ceremony's genesis.json (files beside it)")
    src.add_argument("--from-run-dir", type=Path, help="a run dir: every node, with Secrets")
    p.add_argument("--out", type=Path, required=True, help="directory for the manifests")
    p.add_argument("--validator", action="append", default=[], help="only these (repeat)")
    p.add_argument("--keys", action="append", default=[], help="NAME=DIR: write its Secret")
    p.add_argument("--peer", action="append", default=[], help="NAME=HOST:PORT peer override")
    p.add_argument("--image", default=IMAGE, help=f"validator image (default: {IMAGE})")
    return p


def _key_dirs(args: argparse.Namespace) -> dict[str, Path]:
    if args.from_run_dir:
        net = load_network(args.from_run_dir)
        return {x.id: x.dir for x in net.nodes}
    pairs = [k.split("=", 1) for k in args.keys]
    if any(len(kv) != 2 for kv in pairs):
        raise ceremony.CeremonyError("--keys takes NAME=DIR")
    return {k: Path(v) for k, v in pairs}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    genesis = args.genesis or args.from_run_dir / ceremony.GENESIS_FILE
    try:
        asm = ceremony.load_assembly(genesis)
        overrides = ceremony.parse_overrides(args.peer, "--peer")
        files = manifests(
            asm, genesis.read_text(encoding="utf-8"),
            (genesis.parent / PINNED_CERTS_FILE).read_bytes(),
            only=args.validator, image=args.image, overrides=overrides,
        )  # fmt: skip
        keys = _key_dirs(args)
        for name, key_dir in keys.items():  # before anything is written
            ceremony.check_private_dir(asm, name, key_dir)
        args.out.mkdir(parents=True, exist_ok=True)
        header = f"Generated by python -m devtools.k8s for chain {asm.genesis.chain_id}; regenerate"
        _write(args.out, files, header)
        _write_secrets(args.out, keys, asm)
    except (ceremony.CeremonyError, OSError, ValueError) as e:
        print(f"k8s: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} files to {args.out}; fingerprint {asm.fingerprint}")
    if not keys:
        print("create each validator's Secret <name>-keys from its private directory first")
    print(f"apply: kubectl apply -f {args.out}" + (f" -f {args.out}/secrets" if keys else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
