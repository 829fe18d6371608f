"""Generate a local validator network by running the genesis ceremony for every node in
one directory (node/ceremony.py: keygen, assemble, config; docs/deploy.md does it across
machines).

``python -m devtools.netgen --out run --n 26 --q 16 --port-base 7000`` writes a run directory::

    genesis.json                    the chain; its hash (chain id) is printed at the end
    validators.pem                  every validator's TLS certificate: the run-time trust
    addresses.json                  where each validator is reached (ceremony.Assembly)
    network.json                    every node's host, ports and config (netconfig.Network)
    bundles/<name>.bundle.json      every validator's and participant's public bundle
    nodes/node-XX/config.json       the node's config (netconfig.NodeConfig)
    nodes/node-XX/validator.key     Ed25519 consensus key, PKCS8 PEM
    nodes/node-XX/tls.pem, tls.key  TLS certificate (ECDSA P-256, self-signed, pinned)
    participants/<ID>.key           each demo participant's Ed25519 key, PKCS8 PEM

Every private key file is created with mode 0600 (never chmod-ed afterwards, so it is
never readable by others, not even for a moment) and every directory with 0700.

Genesis pins each validator's TLS certificate by the SHA-256 of its DER form. Peers
accept a peer connection only from the certificate pinned for the validator it claims to
be (``node.keyfiles.cert_pin_from_pem``). Dialers and SDK clients pin too: the one trust
root of a channel to validator i is validator i's pinned certificate, taken from
``validators.pem`` and checked against genesis (``node.keyfiles.pinned_certificates``).
There is no CA (ADR 0019). This is a dev tool (the validator and the SDK never import
it); what they need of key and certificate files is node/keyfiles.py.

Validator i is ``val<i>`` in genesis (a name that sorts in index order, as assemble
orders validators by name) and ``node-<i>`` on disk, in compose and in its certificate.
The keys are fresh random keys, one keygen each; the key files are the only copy. The
demo participants, instruments and holdings are those of ``demo_genesis``: its genesis is
the template.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import posixpath
import random
import secrets
import shutil
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from node import ceremony
from node.config import PIPELINE_DEFAULT, VALIDATORS_MAX
from node.core.quorum import Quorum, classic_quorum
from node.genesis import demo_genesis
from node.netconfig import (
    PINNED_CERTS_FILE,
    PORT_MAX,
    Network,
    NetworkNode,
    NodeConfig,
    load_network,
    node_name,
    write_network,
    write_node_config,
)

__all__ = [
    "CONTAINER_CONFIG",
    "CONTAINER_DATA_DIR",
    "CONTAINER_GENESIS",
    "CONTAINER_NODE_DIR",
    "CONTAINER_PINNED",
    "NetSpec",
    "NetgenError",
    "default_quorum",
    "generate",
    "main",
    "parser",
    "summary",
]

CLIENT_PORT_OFFSET = 1000
METRICS_PORT_OFFSET = 2000

# Where devtools/compose.py mounts a node's files. The config names them relative to
# CONTAINER_NODE_DIR, where the node's own directory is mounted read-only.
CONTAINER_NODE_DIR = "/run/node"
CONTAINER_CONFIG = "/run/node/config.json"
CONTAINER_GENESIS = "/run/genesis.json"
CONTAINER_PINNED = "/run/validators.pem"
CONTAINER_DATA_DIR = "/run/data"  # a named volume

# Files netgen writes; a directory holding one of them may be wiped by --force.
_RUN_DIR_MARKERS = ("network.json", "genesis.json", "validators.pem", "bundles", "nodes")


class NetgenError(ValueError):
    """The requested network cannot be generated; the message says why and what to do."""


# --- the network -------------------------------------------------------------------------


@dataclass(frozen=True)
class NetSpec:
    """What to generate.

    ``containers``: one container per node (devtools/compose.py). Each node is reached at
    its container name (node-XX), listens on 0.0.0.0 and names its files by the paths
    compose mounts them at (CONTAINER_*). Otherwise every node is on ``host``.
    """

    n: int = 26
    q: int = 16
    port_base: int = 7000
    host: str = "127.0.0.1"
    listen_host: str | None = None  # default: host
    containers: bool = False
    pipeline: bool = PIPELINE_DEFAULT  # every node's config (ADR 0012)

    def check(self) -> Quorum:
        if not 0 < self.n <= VALIDATORS_MAX:
            raise NetgenError(f"n={self.n}: a network has 1..{VALIDATORS_MAX} validators")
        try:
            quorum = Quorum(self.n, self.q)
        except ValueError as e:
            raise NetgenError(str(e)) from e
        top = self.port_base + METRICS_PORT_OFFSET + self.n - 1
        if self.port_base < 1 or top > PORT_MAX:
            raise NetgenError(
                f"port base {self.port_base} puts ports outside 1..{PORT_MAX} "
                f"(the highest is port base + {METRICS_PORT_OFFSET} + n - 1 = {top})"
            )
        return quorum

    def host_of(self, name: str) -> str:
        return name if self.containers else self.host

    def node(self, i: int, run_dir: Path) -> NetworkNode:
        name = node_name(i, self.n)
        return NetworkNode(
            validator=i,
            id=f"val{i:03d}" if self.n > 100 else f"val{i:02d}",  # sorts in index order
            host=self.host_of(name),
            peer_port=self.port_base + i,
            client_port=self.port_base + CLIENT_PORT_OFFSET + i,
            metrics_port=self.port_base + METRICS_PORT_OFFSET + i,
            config=run_dir / "nodes" / name / "config.json",
        )


def _prepare_run_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NetgenError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise NetgenError(f"{out} is not empty; pass --force to wipe it and generate anew")
        if not any((out / m).exists() for m in _RUN_DIR_MARKERS):
            raise NetgenError(
                f"refusing to wipe {out}: it holds no network.json, genesis.json, bundles/ "
                "or nodes/, so it does not look like a run directory; remove it yourself"
            )
        # Empty it rather than remove it: it may be a mount point or a symlink.
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for sub in ("bundles", "nodes", "participants"):
        (out / sub).mkdir(mode=0o700)


def _config_paths(spec: NetSpec, node: NetworkNode) -> ceremony.ConfigPaths:
    if spec.containers:
        # Relative to CONTAINER_NODE_DIR: e.g. ../genesis.json is /run/genesis.json.
        genesis, data_dir, tls_pinned = (
            Path(posixpath.relpath(p, CONTAINER_NODE_DIR))
            for p in (CONTAINER_GENESIS, CONTAINER_DATA_DIR, CONTAINER_PINNED)
        )
        return ceremony.ConfigPaths(genesis, tls_pinned, Path("."), data_dir)
    run_dir = node.dir.parent.parent
    return ceremony.ConfigPaths(
        run_dir / ceremony.GENESIS_FILE, run_dir / PINNED_CERTS_FILE, node.dir, node.dir / "data"
    )


def _node_config(spec: NetSpec, node: NetworkNode, a: ceremony.Assembly) -> NodeConfig:
    listen = "0.0.0.0" if spec.containers else (spec.listen_host or spec.host)
    cfg = ceremony.node_config(
        a,
        node.id,
        _config_paths(spec, node),
        listen_host=listen,
        metrics_port=node.metrics_port,
    )
    return dataclasses.replace(cfg, pipeline=spec.pipeline)


def _keygen(out: Path, spec: NetSpec, nodes: Sequence[NetworkNode]) -> list[ceremony.Bundle]:
    """Each validator's keygen into its node directory, as its operator would run it;
    the bundles go to bundles/, as if handed over."""
    bundles = []
    for node in nodes:
        b = ceremony.keygen_validator(
            node.dir, node.id, node.host, node.peer_port, node.client_port,
            extra_names=(node.name, "localhost", "127.0.0.1"),
        )  # fmt: skip
        bundles.append(b)
    return bundles


def _ceremony(
    out: Path,
    spec: NetSpec,
    nodes: Sequence[NetworkNode],
    template: dict[str, object],
    participants: Sequence[str],
) -> ceremony.Assembly:
    """keygen for every validator and participant, assemble, a config per node."""
    bundles = _keygen(out, spec, nodes)
    for pid in participants:
        bundles.append(ceremony.keygen_participant(out / "participants", pid))
    for b in bundles:
        ceremony.write_bundle(out / "bundles" / f"{b.name}{ceremony.BUNDLE_SUFFIX}", b)
    for f in (out / "participants").glob("*" + ceremony.BUNDLE_SUFFIX):
        f.unlink()  # the copy in bundles/ is the one handed over
    assembly = ceremony.assemble(bundles, template, spec.q)
    ceremony.write_assembly(out, assembly)
    for node in nodes:
        write_node_config(node.config, _node_config(spec, node, assembly))
    return assembly


def generate(
    out: str | Path,
    spec: NetSpec,
    *,
    force: bool = False,
    progress: Callable[[str], None] = print,
) -> Network:
    """Write a run directory for ``spec`` into ``out`` and return its network.

    Raises NetgenError (nothing written) for a bad spec or a non-empty ``out`` without
    ``force``; with ``force`` a previous run directory is wiped first.
    """
    spec.check()
    out = Path(os.path.abspath(out))
    _prepare_run_dir(out, force)
    now = datetime.now(UTC)
    # The lifecycle bonds' dates are relative to today: the demo pays a due coupon and
    # redeems a matured bond (block time is the wall clock). The demo's keys (from its
    # seed) are not used: every key below is a keygen's.
    demo = demo_genesis(
        spec.n,
        spec.q,
        b"template",
        lifecycle_date=now.date(),
        backing=True,
        compliance=True,
        margin=True,
    )
    label = f"local-{secrets.token_hex(4)}"
    progress(f"running the genesis ceremony for {spec.n} validators in {out}")
    nodes = [spec.node(i, out) for i in range(spec.n)]
    try:
        assembly = _ceremony(
            out,
            spec,
            nodes,
            ceremony.template_from_genesis(demo.genesis, name=label),
            list(demo.participant_keys),
        )
    except ceremony.CeremonyError as e:
        raise NetgenError(str(e)) from e
    write_network(Network(out, assembly.genesis.chain_id, spec.n, spec.q, tuple(nodes)))
    return load_network(out)


def summary(net: Network, spec: NetSpec) -> list[str]:
    """What was generated, for people: quorum bounds, ports, where the keys are."""
    quorum = Quorum(net.n, net.q)
    first, last = net.nodes[0], net.nodes[-1]
    where = "node-XX" if spec.containers else spec.host
    lines = [
        f"quorum      {quorum.describe()}",
        f"ports       peer {first.peer_port}-{last.peer_port}, "
        f"client {first.client_port}-{last.client_port}, "
        f"metrics {first.metrics_port}-{last.metrics_port} on {where}",
        f"genesis     {net.genesis}",
        f"network     {net.run_dir / 'network.json'} (configs in nodes/node-XX/config.json)",
        "keys (0600) nodes/node-XX/validator.key (Ed25519), nodes/node-XX/tls.key (TLS), "
        "participants/<ID>.key (demo participants)",
        f"trust       {PINNED_CERTS_FILE}: each validator's self-signed certificate, pinned by "
        "genesis (no CA)",
    ]
    warning = quorum.warning()
    if warning:
        lines.append(f"warning     {warning}")
    lines.append(f"chain id    {net.chain_id}")
    return lines


_EPHEMERAL_PORT_MIN = 32_768


def free_port_base(
    n: int, host: str = "127.0.0.1", *, also: Callable[[int], Sequence[int]] | None = None
) -> int:
    """A port base whose peer, client and metrics ports for ``n`` nodes are all free now
    (for demos and tests that must not collide with a running `make cluster`), and the
    ports ``also(base)`` too (the chaos run's proxy ports)."""
    for _ in range(200):
        # Below Linux's ephemeral range (32768..60999): there, the outgoing connections of
        # other clusters on this machine take ports between this check and the bind.
        base = random.randrange(10_000, _EPHEMERAL_PORT_MIN - METRICS_PORT_OFFSET - n, 10)
        ports = [
            base + off + i for off in (0, CLIENT_PORT_OFFSET, METRICS_PORT_OFFSET) for i in range(n)
        ]
        ports += also(base) if also else []
        if all(p < _EPHEMERAL_PORT_MIN and _bindable(host, p) for p in ports):
            return base
    raise NetgenError(f"no free range of ports on {host} for {n} nodes")


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def default_quorum(n: int) -> int:
    """16 for the standard 26-validator network (issue #4), else the classic quorum."""
    return 16 if n == 26 else classic_quorum(max(n, 1))


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m devtools.netgen`` (``make genesis``)."""
    p = argparse.ArgumentParser(
        prog="python -m devtools.netgen",
        description="Run the genesis ceremony for every validator in one run directory: "
        "keys, self-signed TLS certificates, bundles, genesis and one config per node.",
    )
    p.add_argument("--out", type=Path, default=Path("run"), help="run directory (default: run)")
    p.add_argument("--n", type=int, default=26, help="number of validators (default: 26)")
    p.add_argument(
        "--q",
        type=int,
        help="quorum, more than n/2 (default: 16 for 26 validators, else the classic "
        "floor(2n/3) + 1)",
    )
    p.add_argument(
        "--port-base",
        type=int,
        default=7000,
        help="peer port of node 0; client ports at +1000, metrics at +2000 (default: 7000)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address peers and clients use to reach the nodes; also in the certificates "
        "(default: 127.0.0.1)",
    )
    p.add_argument("--listen-host", help="address the nodes listen on (default: --host)")
    p.add_argument("--force", action="store_true", help="wipe an existing run directory first")
    p.add_argument(
        "--containers",
        action="store_true",
        help="one container or pod per node: each reached at node-XX, listening on 0.0.0.0 "
        "(make k8s; devtools/compose.py does it too)",
    )
    p.add_argument(
        "--pipeline",
        action=argparse.BooleanOptionalAction,
        default=PIPELINE_DEFAULT,
        help="every node proposes on the prepare certificate, executing its block "
        f"speculatively (ADR 0012; default {'on' if PIPELINE_DEFAULT else 'off'})",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    q = args.q if args.q is not None else default_quorum(args.n)
    spec = NetSpec(
        args.n, q, args.port_base, args.host, args.listen_host, args.containers, args.pipeline
    )
    try:
        net = generate(args.out, spec, force=args.force)
    except NetgenError as e:
        print(f"netgen: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(summary(net, spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
