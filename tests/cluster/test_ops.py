"""The operator surface on a real 4-validator cluster (issue 16 item 5): one status command
and schema, `ledger-node health` and `check-config` against running nodes, the new metrics
on a node's /metrics, and the benchmark reading CPU and memory from there.

The node killed at the end is every negative control at once: status exits 1 (both
commands, still in the schema), health says it is not serving.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from client._status import STATUS_SCHEMA, schema_problems
from client.cli import main as ledger
from devtools import cluster as node_cluster
from devtools.bench.load import usage_of, validator_usage
from devtools.cluster import kill_node
from node.netconfig import Network, NetworkNode
from node.wire import ledger_pb2 as pb
from tests.cluster.harness import Cluster, make_status, module_cluster, wait_until

pytestmark = pytest.mark.slow

cluster = module_cluster("ops")


@pytest.fixture(scope="module")
def traded(cluster: Cluster) -> Cluster:
    """The cluster after one DvP committed (so every consensus step was observed)."""
    receipt = cluster.settle(cluster.txf.signed(cluster.txf.dvp()))
    assert receipt.code_name == "OK", receipt
    return cluster


def _ledger_status(net: Network) -> tuple[int, dict[str, object]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = ledger(["--run-dir", str(net.run_dir), "status", "--json"])
    doc: dict[str, object] = json.loads(out.getvalue())
    return code, doc


def _scrape(node: NetworkNode) -> str:
    url = f"http://127.0.0.1:{node.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text: str = resp.read().decode()
    return text


def _value(text: str, series: str) -> float:
    """The value of one series line (name with its labels, exactly as exposed)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} is not on /metrics")


def _health(node: NetworkNode, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", "health", str(node.config), *extra],
        capture_output=True,
        text=True,
        check=False,
    )


def test_both_status_commands_print_one_schema(traded: Cluster) -> None:
    net = traded.net
    (lcode, ldoc), (mcode, mdoc) = _ledger_status(net), make_status(net)
    assert (lcode, mcode) == (0, 0)
    for doc in (ldoc, mdoc):
        assert schema_problems(doc) == [], doc
        assert (doc["schema"], doc["healthy"], doc["problems"]) == (STATUS_SCHEMA, True, [])
        assert doc["chain_id"] == net.chain_id
    nodes_l, nodes_m = ldoc["nodes"], mdoc["nodes"]
    assert isinstance(nodes_l, list) and isinstance(nodes_m, list)
    assert (
        [n["node"] for n in nodes_l] == [n["node"] for n in nodes_m] == [x.name for x in net.nodes]
    )
    # make status knows the local processes; ledger status, possibly elsewhere, does not.
    assert all(isinstance(n["pid"], int) for n in nodes_m)
    assert all(n["pid"] is None for n in nodes_l)
    assert all(n["height"] >= 1 for n in nodes_l)


def test_the_table_is_the_same_for_both(traded: Cluster) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert ledger(["--run-dir", str(traded.net.run_dir), "status"]) == 0
    ledger_header = out.getvalue().splitlines()[1].split()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert node_cluster.main(["--run-dir", str(traded.net.run_dir), "status"]) == 0
    assert out.getvalue().splitlines()[1].split() == ledger_header  # widths follow the pids


def test_a_node_exports_every_new_series(traded: Cluster) -> None:
    text = _scrape(traded.net.nodes[0])
    assert _value(text, "process_cpu_seconds_total") > 0
    assert _value(text, "process_resident_memory_bytes") > 0
    assert _value(text, "ledger_process_rss_anon_bytes") > 0
    for step in ("prepare_qc", "commit_qc", "applied"):
        assert _value(text, f'ledger_consensus_step_seconds_count{{step="{step}"}}') >= 1, step
    assert _value(text, "ledger_halted") == 0
    assert _value(text, "ledger_mempool_bytes") >= 0
    assert "# TYPE ledger_consensus_refused_total counter" in text  # labelled on first use


def test_the_benchmark_reads_cpu_and_memory_from_metrics(traded: Cluster) -> None:
    usage = validator_usage(traded.net.nodes[1])
    assert usage is not None
    cpu_s, anon_mb, view_changes, relayed = usage
    assert cpu_s > 0 and 1 < anon_mb < 4096 and view_changes >= 0 and relayed >= 0
    assert usage_of("process_cpu_seconds_total 1.5\n") is None  # negative control: no memory


def test_health_and_check_config_on_running_nodes(traded: Cluster) -> None:
    node = traded.net.nodes[2]
    r = _health(node)
    assert (r.returncode, r.stdout.rstrip().endswith("SERVING")) == (0, True), r.stdout
    r = _health(node, "--service", "ledger.v1.Ledger")
    assert r.returncode == 0, r.stdout
    # A running node holds its ports: check-config, meant for before the start, says so.
    r = subprocess.run(
        [sys.executable, "-m", "node", "check-config", str(node.config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 1
    assert [line.split()[1] for line in r.stdout.splitlines()[:-1]] == [
        "peer_port", "client_port", "metrics_port"
    ]  # fmt: skip


@pytest.fixture
def one_down(traded: Cluster) -> Iterator[NetworkNode]:
    kill_node(traded.net, 3)
    try:
        yield traded.net.nodes[3]
    finally:
        node_cluster.start_node(traded.net, 3)


def test_a_node_down_is_unhealthy_everywhere(traded: Cluster, one_down: NetworkNode) -> None:
    net = traded.net
    (lcode, ldoc), (mcode, mdoc) = _ledger_status(net), make_status(net)
    assert (lcode, mcode) == (1, 1)
    for doc in (ldoc, mdoc):
        assert schema_problems(doc) == [], doc
        assert doc["healthy"] is False
        problems = doc["problems"]
        assert isinstance(problems, list) and len(problems) == 1
        assert problems[0].startswith(f"{one_down.name} is down (UNAVAILABLE")
    r = _health(one_down)  # killed: its heartbeat file names a process that is gone
    assert r.returncode == 1
    assert r.stdout.rstrip().endswith("GONE"), r.stdout
    r = _health(one_down, "--service", "ledger.v1.Ledger")
    assert r.returncode == 1
    assert r.stdout.rstrip().endswith("UNAVAILABLE"), r.stdout


def test_mempool_bytes_count_what_waits_without_a_quorum(traded: Cluster) -> None:
    """Two of four down: nothing commits, so a trade accepted by node 0 waits there, and
    its mempool gauges say how much (the bytes: exactly the signed transaction's)."""
    net = traded.net
    for i in (2, 3):
        kill_node(net, i)
    try:
        raw = traded.txf.signed(traded.txf.dvp())
        traded.stub(0).Submit(pb.SubmitRequest(transaction=raw), timeout=10)

        def waiting() -> bool:
            text = _scrape(net.nodes[0])
            return _value(text, "ledger_mempool_txs") == 1

        wait_until(waiting, 10, "the trade in node 0's mempool")
        assert _value(_scrape(net.nodes[0]), "ledger_mempool_bytes") == len(raw)
    finally:
        for i in (2, 3):
            node_cluster.start_node(net, i)


def _caught_up(c: Cluster, i: int) -> bool:
    """Node ``i`` answers and holds node 0's block (height and state root)."""
    try:
        mine, theirs = c.status(i), c.status(0)
    except grpc.RpcError:
        return False
    return (mine.height, mine.state_root) == (theirs.height, theirs.state_root)


def test_a_validator_on_a_restored_or_an_empty_data_directory_catches_up_and_votes(
    traded: Cluster,
) -> None:
    """docs/deploy.md "8. A validator's data": a copy of node 2's data directory taken while
    it was stopped, restored after the chain moved on, and then an empty data directory (a
    lost disk): each time node 2 starts, catches up and takes part again. With node 3 down
    a block needs node 2's votes (q = 3 of 4), so a trade settling through it shows it
    votes, not only answers."""
    c, net = traded, traded.net
    data = net.nodes[2].dir / "data"
    backup = net.run_dir / "node-02-data-backup"
    kill_node(net, 2)
    shutil.copytree(data, backup)
    node_cluster.start_node(net, 2)
    try:
        for _ in range(3):  # the chain moves past the copy
            assert c.settle(c.txf.signed(c.txf.dvp())).code_name == "OK"
        for restore in (lambda: shutil.copytree(backup, data), lambda: None):
            kill_node(net, 2)
            kill_node(net, 3)
            shutil.rmtree(data)
            restore()
            node_cluster.start_node(net, 2)
            wait_until(lambda: _caught_up(c, 2), 60, "node 2 to catch up")
            assert c.settle(c.txf.signed(c.txf.dvp()), via=2).code_name == "OK"
    finally:
        for i in (2, 3):
            node_cluster.start_node(net, i)


def test_start_node_returns_once_connected_to_the_peers_that_run(traded: Cluster) -> None:
    """`make start-node I=1` with validator 3 down (n - q = 1 may be): it waited for a
    connection to all n - 1 peers and failed after its timeout with node 1 up and well
    (review 33o); now it returns once node 1 is connected to every peer that runs."""
    net = traded.net
    for i in (3, 1):
        kill_node(net, i)
    try:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = node_cluster.main(
                ["--run-dir", str(net.run_dir), "start-node", "1", "--timeout", "30"]
            )
        assert code == 0, out.getvalue()
        assert "1 peer(s) not running" in out.getvalue()
        status = node_cluster.node_state(net, 1).status
        assert status is not None and status.peers_connected == 2
    finally:
        for i in (1, 3):
            node_cluster.start_node(net, i)
