"""A node's config.json and a run directory's network.json, with teeth.

Every option's bound is stated in docs/cluster.md ("Node config options beyond the
generated ones": ``log_level`` debug|info|warning|error, ``mempool_txs_max`` 1..20,000,
``submit_stream_inflight_max`` 1..1,000, ``admission_queue_max_ms`` up to 300 s,
``view_progress_factor`` and ``commit_relay_factor`` 0..100) and in node/config.py; the
loaders are strict (node/netconfig.py: "an unknown key, a missing key or a wrong type
raises ConfigError naming the file and the field"). Each bound is tested on both sides:
the last value inside is taken, the first outside is refused, naming the field. In
process, on configs built here: no netgen, no child process.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from node.config import (
    ADMISSION_QUEUE_MAX_LIMIT_MS,
    COMMIT_RELAY_FACTOR_MAX,
    LMDB_MAP_SIZE_MAX_BYTES,
    LMDB_MAP_SIZE_MIN_BYTES,
    MEMPOOL_TXS_MAX,
    SUBMIT_STREAM_INFLIGHT_MAX,
    VALIDATORS_MAX,
    VIEW_PROGRESS_FACTOR_MAX,
)
from node.netconfig import (
    ConfigError,
    Network,
    NetworkNode,
    NodeConfig,
    PeerAddress,
    load_network,
    load_node_config,
    write_network,
    write_node_config,
)
from tests.unit.test_bad_genesis import NOT_A_DOCUMENT


def _config(**changes: Any) -> NodeConfig:
    base = NodeConfig(
        validator=0,
        genesis=Path("/run/genesis.json"),
        data_dir=Path("/run/nodes/node-00/data"),
        signing_key=Path("/run/nodes/node-00/validator.key"),
        tls_pinned=Path("/run/validators.pem"),
        tls_cert=Path("/run/nodes/node-00/tls.pem"),
        tls_key=Path("/run/nodes/node-00/tls.key"),
        listen_host="127.0.0.1",
        peer_port=7000,
        client_port=8000,
        metrics_port=9000,
        peers=(
            PeerAddress(1, "127.0.0.1:7001", "node-01"),
            PeerAddress(2, "127.0.0.1:7002", "node-02"),
        ),
    )
    return replace(base, **changes)


# (field, the last value it takes on one side, the first it refuses there)
_BOUNDS: list[tuple[str, int, int]] = [
    ("validator", 0, -1),
    ("validator", VALIDATORS_MAX - 1, VALIDATORS_MAX),
    ("peer_port", 1, 0),
    ("client_port", 65_535, 65_536),
    ("metrics_port", 1, 0),
    ("lmdb_map_size_max_bytes", LMDB_MAP_SIZE_MIN_BYTES, LMDB_MAP_SIZE_MIN_BYTES - 1),
    ("lmdb_map_size_max_bytes", LMDB_MAP_SIZE_MAX_BYTES, LMDB_MAP_SIZE_MAX_BYTES + 1),
    ("admission_queue_max_ms", 1, 0),
    ("admission_queue_max_ms", ADMISSION_QUEUE_MAX_LIMIT_MS, ADMISSION_QUEUE_MAX_LIMIT_MS + 1),
    ("mempool_txs_max", 1, 0),
    ("mempool_txs_max", MEMPOOL_TXS_MAX, MEMPOOL_TXS_MAX + 1),
    ("submit_stream_inflight_max", 1, 0),
    ("submit_stream_inflight_max", SUBMIT_STREAM_INFLIGHT_MAX, SUBMIT_STREAM_INFLIGHT_MAX + 1),
    ("view_progress_factor", 0, -1),
    ("view_progress_factor", VIEW_PROGRESS_FACTOR_MAX, VIEW_PROGRESS_FACTOR_MAX + 1),
    ("commit_relay_factor", 0, -1),
    ("commit_relay_factor", COMMIT_RELAY_FACTOR_MAX, COMMIT_RELAY_FACTOR_MAX + 1),
]


@pytest.mark.parametrize(("field", "inside", "outside"), _BOUNDS)
def test_every_node_config_bound_takes_its_last_value_and_refuses_the_next(
    field: str, inside: int, outside: int
) -> None:
    """docs/cluster.md and node/config.py bound every node option; a value past a bound
    (a zero mempool, a negative factor, a port 0) is a ConfigError naming the field."""
    changes: dict[str, Any] = {field: inside}
    if field == "validator":  # the peers must leave the node's own index free
        changes["peers"] = (PeerAddress(inside + 1, "127.0.0.1:7001", "node-01"),)
    assert getattr(_config(**changes), field) == inside
    changes[field] = outside
    if field == "validator":
        changes["peers"] = ()
    with pytest.raises(ConfigError, match=f"^{field}: "):
        _config(**changes)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"listen_host": ""}, "listen_host: must not be empty"),
        ({"client_port": 7000}, "ports must differ"),
        ({"metrics_port": 8000}, "ports must differ"),
        ({"metrics_port": 7000}, "ports must differ"),
        ({"log_level": "loud"}, "log_level: must be one of"),
        ({"log_level": "INFO"}, "log_level: must be one of"),
        ({"peers": (PeerAddress(0, "h:7000", "node-00"),)}, "lists this node itself"),
        (
            {"peers": (PeerAddress(1, "h:7001", "node-01"), PeerAddress(1, "h:7002", "x"))},
            "lists a validator twice",
        ),
    ],
)
def test_a_node_config_that_contradicts_itself_is_refused(
    changes: dict[str, Any], says: str
) -> None:
    """node/netconfig.py NodeConfig: three distinct ports, a known log level, every other
    validator at most once and never this node itself."""
    with pytest.raises(ConfigError, match=says):
        _config(**changes)


@pytest.mark.parametrize(
    ("validator", "address", "tls_name", "says"),
    [
        (-1, "h:7000", "node-00", "validator: must be >= 0"),
        (1, "h:7000", "", "tls_name: must not be empty"),
        (1, "node-01", "node-01", "is not host:port"),
        (1, ":7000", "node-01", "is not host:port"),
        (1, "node-01:", "node-01", "is not host:port"),
        (1, "node-01:70x0", "node-01", "is not host:port"),
        (1, "node-01:-1", "node-01", "is not host:port"),
        (1, "node-01:0", "node-01", "port 0 is not in"),
        (1, "node-01:65536", "node-01", "port 65536 is not in"),
    ],
)
def test_a_peer_address_is_a_validator_a_host_port_and_a_tls_name(
    validator: int, address: str, tls_name: str, says: str
) -> None:
    """A peer entry says where to dial which validator and what name its certificate
    carries (node/netconfig.py PeerAddress); each part is checked."""
    with pytest.raises(ConfigError, match=says):
        PeerAddress(validator, address, tls_name)


@pytest.mark.parametrize("address", ["h:1", "h:65535", "[::1]:7000", "10.0.0.1:7000"])
def test_a_good_peer_address_is_taken(address: str) -> None:
    assert PeerAddress(1, address, "node-01").address == address


def _write_config(tmp_path: Path, edit: Any) -> Path:
    path = tmp_path / "config.json"
    write_node_config(path, _config())
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d.update(listen_host=""), "listen_host: expected a non-empty string"),
        (lambda d: d.update(tls_key="a\x00b"), "tls_key: expected a non-empty string"),
        (lambda d: d.update(listen_host=["127.0.0.1"]), "listen_host: expected a non-empty"),
        (lambda d: d.update(mempool_txs_max=True), "mempool_txs_max: expected an integer"),
        (lambda d: d.update(mempool_txs_max=10.0), "mempool_txs_max: expected an integer"),
        (lambda d: d.update(pipeline=1), "pipeline: expected true or false"),
        (lambda d: d.update(pipeline="true"), "pipeline: expected true or false"),
        (lambda d: d.update(peers="node-01"), "peers: expected a list"),
        (lambda d: d["peers"].__setitem__(0, "node-01:7001"), r"peers\[0\]: expected an object"),
        (lambda d: d.pop("metrics_port"), "metrics_port: missing field"),
        (lambda d: d.update(colour="blue"), "colour: unknown field"),
    ],
)
def test_load_node_config_refuses_each_wrong_type(tmp_path: Path, edit: Any, says: str) -> None:
    """node/netconfig.py: "an unknown key, a missing key or a wrong type raises
    ConfigError naming the file and the field" (1 is no boolean, true no integer, an
    empty string or one with NUL no path or host)."""
    with pytest.raises(ConfigError, match=says):
        load_node_config(_write_config(tmp_path, edit))


def test_a_config_without_log_level_logs_at_info(tmp_path: Path) -> None:
    """docs/cluster.md: ``log_level`` is optional; left out, the node logs at info."""
    assert load_node_config(_write_config(tmp_path, lambda d: d.pop("log_level"))).log_level == (
        "info"
    )


def test_a_config_file_written_and_read_back_is_the_same_config(tmp_path: Path) -> None:
    cfg = _config(mempool_txs_max=7, pipeline=True, view_progress_factor=0, commit_relay_factor=100)
    write_node_config(tmp_path / "config.json", cfg)
    assert load_node_config(tmp_path / "config.json") == cfg


@pytest.mark.parametrize(("content", "says"), NOT_A_DOCUMENT)
def test_a_config_file_that_is_no_document_is_one_config_error(
    tmp_path: Path, content: bytes, says: str
) -> None:
    """A file that is not a JSON object is a ConfigError (one line at startup), never a
    UnicodeDecodeError, RecursionError or AttributeError traceback."""
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=says):
        load_node_config(path)


def test_a_config_file_that_cannot_be_read_is_one_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_node_config(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_node_config(tmp_path)  # a directory


# --- network.json ------------------------------------------------------------------------


def _nodes(n: int, run_dir: Path, *, one_host: bool = True) -> tuple[NetworkNode, ...]:
    """n nodes on 127.0.0.1 (ports 7000 + i...), or each on a host of its own."""
    return tuple(
        NetworkNode(
            i, f"val{i:02d}", "127.0.0.1" if one_host else f"node-{i:04d}",
            7000 + i, 8000 + i, 9000 + i,
            run_dir / "nodes" / f"node-{i:02d}" / "config.json",
        )
        for i in range(n)
    )  # fmt: skip


def test_a_network_of_one_and_of_n_with_q_n_is_taken(tmp_path: Path) -> None:
    assert Network(tmp_path, "c", 1, 1, _nodes(1, tmp_path)).q == 1
    net = Network(tmp_path, "c", 4, 4, _nodes(4, tmp_path))
    write_network(net)
    assert load_network(tmp_path) == net


@pytest.mark.parametrize(
    ("n", "q", "count", "says"),
    [
        (0, 0, 0, "n: must be 1.."),
        (VALIDATORS_MAX + 1, 1, VALIDATORS_MAX + 1, "n: must be 1.."),
        (4, 0, 4, "q: must be 1..n"),
        (4, 5, 4, "q: must be 1..n"),
        (4, 3, 5, "nodes: lists 5 nodes, n=4"),
        (4, 3, 3, "nodes: lists 3 nodes, n=4"),
    ],
)
def test_network_sizes_are_bounded(tmp_path: Path, n: int, q: int, count: int, says: str) -> None:
    """network.json: 1 <= n <= VALIDATORS_MAX (node/config.py: ports come in blocks of
    1,000 per role), 1 <= q <= n, and exactly n nodes."""
    with pytest.raises(ConfigError, match=says):
        Network(tmp_path, "c", n, q, _nodes(count, tmp_path, one_host=False))


def test_network_nodes_are_in_validator_order_on_valid_distinct_ports(tmp_path: Path) -> None:
    nodes = _nodes(3, tmp_path)
    swapped = (nodes[1], nodes[0], nodes[2])
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.validator: expected 0"):
        Network(tmp_path, "c", 3, 2, swapped)
    for f, zero in [
        ("peer_port", replace(nodes[1], peer_port=0)),
        ("client_port", replace(nodes[1], client_port=0)),
        ("metrics_port", replace(nodes[1], metrics_port=0)),
    ]:
        with pytest.raises(ConfigError, match=rf"nodes\[1\]\.{f}: port 0"):
            Network(tmp_path, "c", 3, 2, (nodes[0], zero, nodes[2]))
    clash = (nodes[0], replace(nodes[1], metrics_port=nodes[0].peer_port), nodes[2])
    with pytest.raises(ConfigError, match="share a host and port"):
        Network(tmp_path, "c", 3, 2, clash)
    # the same port on two hosts (containers: node-00:7000, node-01:7000) is no clash
    hosts = tuple(replace(x, host=f"node-{x.validator:02d}", peer_port=7000) for x in nodes)
    assert Network(tmp_path, "c", 3, 2, hosts).n == 3
