"""``ledger-node check-config CONFIG``: every reason this node would refuse to start, before
it starts.

It loads the node config and its genesis and checks what ``ledger-node run`` checks at
start (the same functions: node/runtime/_server.py), plus what a node only finds out
later or by a traceback: private key files readable by others, a TLS key that is not the
certificate's, a data directory it cannot write, a port another process holds. It
reports every problem it finds, not just the first, so one run fixes a config.

Exit codes (docs/cluster.md "check-config"): 0 every check passed; 1 a problem (each on
its own line); 2 a usage error. Run it before starting the node: a running node holds
its own ports, which then show as in use.
"""

from __future__ import annotations

import argparse
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node.files import read_regular
from node.genesis import load_genesis
from node.keyfiles import KeyFileError, load_signing_key
from node.netconfig import ConfigError, NodeConfig, load_node_config
from node.settlement import Genesis, GenesisError

__all__ = ["EXIT_OK", "EXIT_PROBLEMS", "EXIT_USAGE", "check", "register"]

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
PRIVATE_MODE_MASK = 0o077  # group and other bits: a private key file must have none


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "check-config",
        help="check a node config, its genesis, keys, files and ports; OK or every problem",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("config", type=Path, help="node config JSON (run/nodes/node-XX/config.json)")
    p.set_defaults(fn=_main)


def _main(args: argparse.Namespace) -> int:
    cfg, problems = check(args.config)
    for p in problems:
        print(f"problem: {p}")
    if problems or cfg is None:  # a config that does not load is a problem, said above
        print(f"{args.config}: {len(problems)} problem(s); the node would not run as configured")
        return EXIT_PROBLEMS
    print(f"OK: {args.config} (validator {cfg.validator}, genesis {cfg.genesis})")
    return EXIT_OK


def check(path: Path) -> tuple[NodeConfig | None, list[str]]:
    """The loaded config (None if it does not load) and every problem found."""
    try:
        cfg = load_node_config(path)
    except (ConfigError, OSError) as e:
        return None, [f"config: {e}"]
    problems = _files(cfg)
    try:
        genesis = load_genesis(cfg.genesis)
    except (GenesisError, ValueError, OSError) as e:
        return cfg, [*problems, f"genesis {cfg.genesis}: {e}"]
    for step in (_identity, _signing_key, _tls_pair, _peers):
        problems += step(cfg, genesis)
    problems += _data_dir(cfg) + _ports(cfg)
    return cfg, problems


def _files(cfg: NodeConfig) -> list[str]:
    """Every file the config names exists; the private keys are the owner's alone."""
    problems: list[str] = []
    named = {
        "genesis": cfg.genesis,
        "signing_key": cfg.signing_key,
        "tls_pinned": cfg.tls_pinned,
        "tls_cert": cfg.tls_cert,
        "tls_key": cfg.tls_key,
    }
    for field, p in named.items():
        if not p.is_file():
            problems.append(f"{field} {p} does not exist or is not a file")
    for field in ("signing_key", "tls_key"):
        p = named[field]
        if p.is_file() and stat.S_IMODE(p.stat().st_mode) & PRIVATE_MODE_MASK:
            mode = stat.S_IMODE(p.stat().st_mode)
            problems.append(f"{field} {p} has mode {mode:04o}; a private key must be 0600")
    return problems


def _startup_check(run: Callable[[], object]) -> list[str]:
    """What the node's own start-up check says (its StartupError), or nothing."""
    from node.runtime import StartupError  # the validator extra; see node/__main__.py

    try:
        run()
    except StartupError as e:
        return [str(e)]
    except OSError as e:
        return [f"{e.filename}: {e.strerror}"]
    return []


def _identity(cfg: NodeConfig, genesis: Genesis) -> list[str]:
    """The certificate genesis pins for this validator, and every peer's pin."""
    from node.runtime._server import check_identity, pinned_peers

    if not cfg.tls_cert.is_file() or not cfg.tls_pinned.is_file():
        return []  # _files said so
    problems = _startup_check(lambda: check_identity(cfg, genesis, read_regular(cfg.tls_cert)))
    return problems or _startup_check(lambda: pinned_peers(cfg, genesis))


def _signing_key(cfg: NodeConfig, genesis: Genesis) -> list[str]:
    if not cfg.signing_key.is_file() or not 0 <= cfg.validator < len(genesis.validators):
        return []  # _files or _identity said so
    try:
        key = load_signing_key(cfg.signing_key)
    except KeyFileError as e:
        return [f"signing_key: {e}"]
    me = genesis.validators[cfg.validator]
    if key.public_key != me.public_key:
        return [f"signing_key {cfg.signing_key} is not the key genesis lists for {me.id}"]
    return []


def _tls_pair(cfg: NodeConfig, genesis: Genesis) -> list[str]:
    """The TLS key is the certificate's: gRPC would only fail the first handshake."""
    if not cfg.tls_cert.is_file() or not cfg.tls_key.is_file():
        return []
    try:
        cert = x509.load_pem_x509_certificate(read_regular(cfg.tls_cert))
        key = serialization.load_pem_private_key(read_regular(cfg.tls_key), password=None)
    except (ValueError, TypeError) as e:
        return [f"tls_cert/tls_key: not a PEM certificate and unencrypted key ({e})"]
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if cert.public_key().public_bytes(der, raw) != key.public_key().public_bytes(der, raw):
        return [f"tls_key {cfg.tls_key} is not the key of tls_cert {cfg.tls_cert}"]
    return []


def _peers(cfg: NodeConfig, genesis: Genesis) -> list[str]:
    """An address for every other validator of genesis, and for no stranger."""
    listed = {p.validator for p in cfg.peers}
    others = set(range(len(genesis.validators))) - {cfg.validator}
    problems = []
    if listed - others:
        problems.append(f"peers lists validators {sorted(listed - others)}, not in genesis")
    if others - listed:
        problems.append(f"peers lists no address for validators {sorted(others - listed)}")
    return problems


def _data_dir(cfg: NodeConfig) -> list[str]:
    """The node creates data_dir if missing: it or its nearest existing parent must be a
    writable directory."""
    p = cfg.data_dir
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        return [f"data_dir {cfg.data_dir}: {p} is not a directory"]
    if not os.access(p, os.W_OK | os.X_OK):
        return [f"data_dir {cfg.data_dir}: {p} is not writable by this user"]
    return []


def _ports(cfg: NodeConfig) -> list[str]:
    problems = []
    for field in ("peer_port", "client_port", "metrics_port"):
        port: int = getattr(cfg, field)
        why = _bind_error(cfg.listen_host, port)
        if why:
            problems.append(f"{field} {cfg.listen_host}:{port}: {why}")
    return problems


def _bind_error(host: str, port: int) -> str:
    """Why this process could not listen on host:port (empty: it could)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # As the node binds (gRPC and the metrics server set SO_REUSEADDR): without it, the
        # connections a stopped node left in TIME_WAIT made its ports "in use" here for a
        # minute, though the node binds them at once (review 33o).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return f"cannot listen ({e.strerror}: in use, e.g. by a running node, or not an " \
                "address of this machine)"  # fmt: skip
    return ""
