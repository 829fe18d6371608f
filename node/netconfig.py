"""A validator's config file and a run directory's network.json, strict both ways.

``nodes/node-XX/config.json`` tells one validator process where its genesis, keys, TLS
material and data live, where to listen and how to reach every other validator. Paths on
disk are relative to the config file's directory, so a run directory can be moved or
mounted into a container whole; :func:`load_node_config` returns them absolute.

``network.json`` lists every node of a run directory (ports, host, config path) for the
tools that drive a cluster: the cluster manager and the docker compose generator.

Loading is strict like genesis loading: an unknown key, a missing key or a wrong type
raises :class:`ConfigError` naming the file and the field.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from node.config import (
    ADMISSION_QUEUE_MAX_LIMIT_MS,
    ADMISSION_QUEUE_MAX_MS,
    COMMIT_RELAY_FACTOR,
    COMMIT_RELAY_FACTOR_MAX,
    LMDB_MAP_SIZE_MAX_BYTES,
    LMDB_MAP_SIZE_MIN_BYTES,
    MEMPOOL_TXS_MAX,
    PIPELINE_DEFAULT,
    SUBMIT_STREAM_INFLIGHT_MAX,
    VALIDATORS_MAX,
    VIEW_PROGRESS_FACTOR,
    VIEW_PROGRESS_FACTOR_MAX,
)
from node.files import read_regular_text

__all__ = [
    "LOG_LEVELS",
    "PINNED_CERTS_FILE",
    "ConfigError",
    "Network",
    "NetworkNode",
    "NodeConfig",
    "PeerAddress",
    "host_port",
    "is_ip",
    "load_network",
    "load_node_config",
    "node_config_to_json",
    "node_name",
    "write_network",
    "write_node_config",
]

LOG_LEVELS = ("debug", "info", "warning", "error")
PINNED_CERTS_FILE = "validators.pem"
PORT_MAX = 65_535
_PATH_FIELDS = ("genesis", "data_dir", "signing_key", "tls_pinned", "tls_cert", "tls_key")


# The participant the operator's tools (status, waits, benchmark, demo, chaos, the CLI's
# default) call the client port as: an auditor reads every node's blocks whole
# (node/access.py). `make genesis` writes its key with the others.
OPERATOR_IDENTITY = "AUDITOR"


class ConfigError(ValueError):
    """A config or network file is malformed; the message names the file and the field."""


def node_name(index: int, n: int) -> str:
    """The node's directory, TLS name and container name: node-07 (node-007 when n > 100)."""
    return f"node-{index:03d}" if n > 100 else f"node-{index:02d}"


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 literal in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address, not a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check(ok: bool, field: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"{field}: {msg}")


def _check_port(port: int, field: str) -> None:
    _check(0 < port <= PORT_MAX, field, f"port {port} is not in 1..{PORT_MAX}")


def _split_address(address: str, field: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    _check(bool(sep and host and port.isdigit()), field, f"{address!r} is not host:port")
    _check_port(int(port), field)
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """Where to dial another validator, and the name its TLS certificate carries."""

    validator: int  # index in genesis
    address: str  # host:port of its peer port
    tls_name: str  # node-XX: checked against the certificate's SAN (target name override)

    def __post_init__(self) -> None:
        _check(self.validator >= 0, "validator", "must be >= 0")
        _split_address(self.address, "address")
        _check(bool(self.tls_name), "tls_name", "must not be empty")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One validator process's configuration (``python -m node --config FILE``)."""

    validator: int  # index in genesis
    genesis: Path
    data_dir: Path  # the store: LMDB environment and safety-state file (created by the node)
    signing_key: Path  # Ed25519, PKCS8 PEM, mode 0600
    tls_pinned: Path  # every validator's TLS certificate, each pinned by genesis: the only roots
    tls_cert: Path  # this node's certificate: peer port (mutual TLS) and client port
    tls_key: Path
    listen_host: str  # "127.0.0.1" locally, "0.0.0.0" in a container
    peer_port: int
    client_port: int
    metrics_port: int
    peers: tuple[PeerAddress, ...]  # every other validator
    log_level: str = "info"
    mempool_txs_max: int = MEMPOOL_TXS_MAX  # lower it to shed load earlier (or to test it)
    # submissions in flight per SubmitStream; lower it to test the limit
    submit_stream_inflight_max: int = SUBMIT_STREAM_INFLIGHT_MAX
    # Test-only: a low LMDB map ceiling makes the store fill up (and the node halt) on
    # purpose; tests/cluster/test_failstop.py. Production leaves the default.
    lmdb_map_size_max_bytes: int = LMDB_MAP_SIZE_MAX_BYTES
    # the longest queue admission control lets this node hold (docs/cluster.md)
    admission_queue_max_ms: int = ADMISSION_QUEUE_MAX_MS
    # propose on the prepare certificate, executing its block speculatively (ADR 0012)
    pipeline: bool = PIPELINE_DEFAULT
    # a view times out this many times the median recent view after its entry (0: only
    # the view timer, as before; docs/consensus.md "Slow leaders")
    view_progress_factor: int = VIEW_PROGRESS_FACTOR
    # a late commit certificate: COMMIT votes go to the next leader too after this many
    # median commit rounds (0: never; docs/consensus.md "Slow leaders")
    commit_relay_factor: int = COMMIT_RELAY_FACTOR

    def __post_init__(self) -> None:
        _check(0 <= self.validator < VALIDATORS_MAX, "validator", "out of range")
        _check(bool(self.listen_host), "listen_host", "must not be empty")
        for f in ("peer_port", "client_port", "metrics_port"):
            _check_port(getattr(self, f), f)
        ports = {self.peer_port, self.client_port, self.metrics_port}
        _check(len(ports) == 3, "peer_port", "peer, client and metrics ports must differ")
        _check(self.log_level in LOG_LEVELS, "log_level", f"must be one of {list(LOG_LEVELS)}")
        _check(
            LMDB_MAP_SIZE_MIN_BYTES <= self.lmdb_map_size_max_bytes <= LMDB_MAP_SIZE_MAX_BYTES,
            "lmdb_map_size_max_bytes",
            f"must be {LMDB_MAP_SIZE_MIN_BYTES}..{LMDB_MAP_SIZE_MAX_BYTES}",
        )
        _check(
            0 < self.admission_queue_max_ms <= ADMISSION_QUEUE_MAX_LIMIT_MS,
            "admission_queue_max_ms",
            f"must be 1..{ADMISSION_QUEUE_MAX_LIMIT_MS}",
        )
        _check(
            0 < self.mempool_txs_max <= MEMPOOL_TXS_MAX,
            "mempool_txs_max",
            f"must be 1..{MEMPOOL_TXS_MAX}",
        )
        _check(
            0 < self.submit_stream_inflight_max <= SUBMIT_STREAM_INFLIGHT_MAX,
            "submit_stream_inflight_max",
            f"must be 1..{SUBMIT_STREAM_INFLIGHT_MAX}",
        )
        _check(
            0 <= self.view_progress_factor <= VIEW_PROGRESS_FACTOR_MAX,
            "view_progress_factor",
            f"must be 0..{VIEW_PROGRESS_FACTOR_MAX}",
        )
        _check(
            0 <= self.commit_relay_factor <= COMMIT_RELAY_FACTOR_MAX,
            "commit_relay_factor",
            f"must be 0..{COMMIT_RELAY_FACTOR_MAX}",
        )
        indexes = [p.validator for p in self.peers]
        _check(self.validator not in indexes, "peers", "lists this node itself")
        _check(len(set(indexes)) == len(indexes), "peers", "lists a validator twice")


# --- strict JSON reading -----------------------------------------------------------------


class _Reader:
    """Typed access to one JSON object; errors name ``where.field``."""

    def __init__(self, doc: Any, where: str, required: set[str], optional: set[str]) -> None:
        if not isinstance(doc, dict):
            raise ConfigError(f"{where}: expected an object")
        missing = sorted(required - doc.keys())
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: missing field")
        unknown = sorted(doc.keys() - required - optional)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown field")
        self.doc = doc
        self.where = where

    def integer(self, key: str) -> int:
        v = self.doc[key]
        if type(v) is not int:  # bool is an int subclass and 7000.0 is not a port
            raise ConfigError(f"{self.where}.{key}: expected an integer, got {type(v).__name__}")
        return v

    def string(self, key: str) -> str:
        v = self.doc[key]
        if not isinstance(v, str) or not v or "\x00" in v:  # NUL: no path or host has one
            raise ConfigError(f"{self.where}.{key}: expected a non-empty string without NUL")
        return v

    def boolean(self, key: str) -> bool:
        v = self.doc[key]
        if type(v) is not bool:  # 1 and "true" are not booleans
            raise ConfigError(f"{self.where}.{key}: expected true or false, got {type(v).__name__}")
        return v

    def array(self, key: str) -> list[Any]:
        v = self.doc[key]
        if not isinstance(v, list):
            raise ConfigError(f"{self.where}.{key}: expected a list")
        return v


# A node config's optional integer and boolean fields, with the default each takes when a
# config leaves it out (a node's own choices: docs/cluster.md).
_TUNABLES: dict[str, int | bool] = {
    "mempool_txs_max": MEMPOOL_TXS_MAX,
    "lmdb_map_size_max_bytes": LMDB_MAP_SIZE_MAX_BYTES,
    "submit_stream_inflight_max": SUBMIT_STREAM_INFLIGHT_MAX,
    "admission_queue_max_ms": ADMISSION_QUEUE_MAX_MS,
    "pipeline": PIPELINE_DEFAULT,
    "view_progress_factor": VIEW_PROGRESS_FACTOR,
    "commit_relay_factor": COMMIT_RELAY_FACTOR,
}


def _read_tunables(r: _Reader) -> dict[str, Any]:
    """Each tunable the config gives, typed as its default, else the default."""
    return {
        k: d if k not in r.doc else r.boolean(k) if isinstance(d, bool) else r.integer(k)
        for k, d in _TUNABLES.items()
    }


def _read_json(path: Path) -> Any:
    try:
        return json.loads(read_regular_text(path))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except RecursionError as e:
        raise ConfigError(f"{path}: JSON nested too deeply") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from e


def _absolute(base: Path, value: str) -> Path:
    # normpath, not resolve(): keep the operator's symlinks as written.
    return Path(os.path.normpath(base / value))


def _relative(base: Path, p: Path) -> str:
    return os.path.relpath(p, base) if p.is_absolute() else str(p)


@contextmanager
def _within(where: str) -> Iterator[None]:
    """Prefix a dataclass's own validation error with the file and entry it came from."""
    try:
        yield
    except ConfigError as e:
        raise ConfigError(f"{where}.{e}") from None


# --- node config -------------------------------------------------------------------------


def load_node_config(path: str | Path) -> NodeConfig:
    """Read a node config; relative paths resolve against the config file's directory."""
    path = Path(os.path.abspath(path))
    where = path.name
    optional = {"log_level", *_TUNABLES}
    required = {f.name for f in fields(NodeConfig)} - optional
    r = _Reader(_read_json(path), where, required, optional)
    peers = []
    for i, item in enumerate(r.array("peers")):
        p = _Reader(item, f"{where}.peers[{i}]", {"validator", "address", "tls_name"}, set())
        with _within(p.where):
            peers.append(
                PeerAddress(p.integer("validator"), p.string("address"), p.string("tls_name"))
            )
    paths: dict[str, Any] = {f: _absolute(path.parent, r.string(f)) for f in _PATH_FIELDS}
    with _within(where):
        return NodeConfig(
            validator=r.integer("validator"),
            listen_host=r.string("listen_host"),
            peer_port=r.integer("peer_port"),
            client_port=r.integer("client_port"),
            metrics_port=r.integer("metrics_port"),
            peers=tuple(peers),
            log_level=r.string("log_level") if "log_level" in r.doc else "info",
            **_read_tunables(r),
            **paths,
        )


def node_config_to_json(cfg: NodeConfig, base: Path) -> dict[str, Any]:
    """The JSON form; absolute paths become relative to ``base`` (the config's directory)."""
    doc: dict[str, Any] = {"validator": cfg.validator}
    doc.update({f: _relative(base, getattr(cfg, f)) for f in _PATH_FIELDS})
    doc.update(
        listen_host=cfg.listen_host,
        peer_port=cfg.peer_port,
        client_port=cfg.client_port,
        metrics_port=cfg.metrics_port,
        peers=[
            {"validator": p.validator, "address": p.address, "tls_name": p.tls_name}
            for p in cfg.peers
        ],
        log_level=cfg.log_level,
    )
    # The tunables a config leaves out take their defaults: written only when they differ.
    doc.update({k: getattr(cfg, k) for k, d in _TUNABLES.items() if getattr(cfg, k) != d})
    return doc


def write_node_config(path: str | Path, cfg: NodeConfig) -> None:
    """Write ``cfg`` as JSON. Absolute paths are written relative to the file's directory;
    relative ones are written as they are (they already mean "from the config's directory",
    which is how container layouts are described)."""
    path = Path(os.path.abspath(path))
    doc = node_config_to_json(cfg, path.parent)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


# --- network.json ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetworkNode:
    validator: int  # index in genesis
    id: str  # validator id in genesis (val00)
    host: str  # where peers and clients reach it: 127.0.0.1, or node-XX in containers
    peer_port: int
    client_port: int
    metrics_port: int
    config: Path  # absolute path of its config.json

    @property
    def name(self) -> str:
        """node-XX: its directory, TLS name and container name."""
        return self.config.parent.name

    @property
    def dir(self) -> Path:
        return self.config.parent

    @property
    def client_address(self) -> str:
        return host_port(self.host, self.client_port)

    @property
    def peer_address(self) -> str:
        return host_port(self.host, self.peer_port)


@dataclass(frozen=True, slots=True)
class Network:
    """A run directory as netgen wrote it."""

    run_dir: Path
    chain_id: str
    n: int
    q: int
    nodes: tuple[NetworkNode, ...]

    def __post_init__(self) -> None:
        _check(0 < self.n <= VALIDATORS_MAX, "n", f"must be 1..{VALIDATORS_MAX}")
        _check(0 < self.q <= self.n, "q", "must be 1..n")
        _check(len(self.nodes) == self.n, "nodes", f"lists {len(self.nodes)} nodes, n={self.n}")
        for i, node in enumerate(self.nodes):
            _check(node.validator == i, f"nodes[{i}].validator", f"expected {i}")
            for f in ("peer_port", "client_port", "metrics_port"):
                _check_port(getattr(node, f), f"nodes[{i}].{f}")
        ports = [
            (x.host, p) for x in self.nodes for p in (x.peer_port, x.client_port, x.metrics_port)
        ]
        _check(len(set(ports)) == len(ports), "nodes", "two nodes share a host and port")

    @property
    def genesis(self) -> Path:
        return self.run_dir / "genesis.json"

    def participant_key(self, participant: str) -> Path:
        """A participant's Ed25519 key file as netgen wrote it (the client identity too)."""
        return self.run_dir / "participants" / f"{participant}.key"

    @property
    def tls_pinned(self) -> Path:
        """Every validator's TLS certificate (PEM), each pinned by genesis: what nodes and
        clients trust, one certificate per peer; no CA is trusted at run time."""
        return self.run_dir / PINNED_CERTS_FILE


_NODE_KEYS = {"validator", "id", "host", "peer_port", "client_port", "metrics_port", "config"}


def load_network(run_dir: str | Path) -> Network:
    """Read ``<run_dir>/network.json``; config paths come back absolute."""
    run_dir = Path(os.path.abspath(run_dir))
    where = "network.json"
    r = _Reader(_read_json(run_dir / where), where, {"chain_id", "n", "q", "nodes"}, set())
    nodes = []
    for i, item in enumerate(r.array("nodes")):
        x = _Reader(item, f"{where}.nodes[{i}]", _NODE_KEYS, set())
        nodes.append(
            NetworkNode(
                validator=x.integer("validator"),
                id=x.string("id"),
                host=x.string("host"),
                peer_port=x.integer("peer_port"),
                client_port=x.integer("client_port"),
                metrics_port=x.integer("metrics_port"),
                config=_absolute(run_dir, x.string("config")),
            )
        )
    with _within(where):
        return Network(run_dir, r.string("chain_id"), r.integer("n"), r.integer("q"), tuple(nodes))


def write_network(network: Network) -> None:
    doc = {
        "chain_id": network.chain_id,
        "n": network.n,
        "q": network.q,
        "nodes": [
            {
                "validator": x.validator,
                "id": x.id,
                "host": x.host,
                "peer_port": x.peer_port,
                "client_port": x.client_port,
                "metrics_port": x.metrics_port,
                "config": _relative(network.run_dir, x.config),
            }
            for x in network.nodes
        ],
    }
    text = json.dumps(doc, indent=2) + "\n"
    (network.run_dir / "network.json").write_text(text, encoding="utf-8")
