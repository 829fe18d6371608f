"""Fail-stop on real processes (issue 12 item 5): a validator whose LMDB fills up halts
loudly and exits; restarted with room, it recovers from its data directory and the
cluster keeps settling.

The storage failure is real: validator 0 runs with the test-only node config knob
``lmdb_map_size_max_bytes`` set to a few hundred KB, so its map reaches the ceiling after
some blocks and LMDB raises MapFullError inside the block commit, as on a full disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devtools import cluster
from devtools.cluster import client_channel
from devtools.demo.run import load_run_network
from node.netconfig import Network
from node.runtime._node import EXIT_FATAL
from node.wire import ledger_pb2 as pb
from tests.cluster.harness import RPC_TIMEOUT_S, Cluster, generate, wait_until
from tests.ledger_helpers import TxFactory

pytestmark = pytest.mark.slow

MAP_CEILING_BYTES = 256 * 1024  # genesis takes ~45 KB, a block of a few trades ~10 KB
LOAD_S = 60.0  # the map fills within ~15 s of this load; the node must have exited by then
EXIT_WAIT_S = 10.0  # HALT_LINGER_MS plus a graceful stop, with room for a loaded machine


def spawn(net: Network, index: int) -> subprocess.Popen[bytes]:
    """Start validator ``index`` as devtools.cluster does, but keep the handle for its exit
    code (the pid file lets devtools.cluster stop it like the others)."""
    node = net.nodes[index]
    for d in ("pids", "logs"):
        (net.run_dir / d).mkdir(mode=0o700, exist_ok=True)
    with open(net.run_dir / "logs" / f"{node.name}.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "node", "--config", str(node.config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
        )
    (net.run_dir / "pids" / f"{node.name}.pid").write_text(f"{proc.pid}\n")
    return proc


def set_option(net: Network, index: int, key: str, value: object | None) -> None:
    path = net.nodes[index].config
    doc = json.loads(path.read_text())
    if value is None:
        doc.pop(key, None)
    else:
        doc[key] = value
    path.write_text(json.dumps(doc, indent=2))


class HealthWatch:
    """Every status the node's health service sends for ``service``, until it goes away."""

    def __init__(self, net: Network, index: int, service: str) -> None:
        self.seen: list[int] = []
        stub = health_pb2_grpc.HealthStub(client_channel(net, index))
        self._call = stub.Watch(health_pb2.HealthCheckRequest(service=service))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for resp in self._call:
                self.seen.append(resp.status)
        except grpc.RpcError:
            pass  # the process exited


def log_events(net: Network, index: int) -> list[dict[str, object]]:
    path = net.run_dir / "logs" / f"{net.nodes[index].name}.log"
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_a_full_store_halts_the_node_and_a_restart_recovers(tmp_path: Path) -> None:
    net = generate(tmp_path / "run", 4, 3)
    set_option(net, 0, "lmdb_map_size_max_bytes", MAP_CEILING_BYTES)
    victim = spawn(net, 0)
    try:
        cluster.start_cluster(net, progress=False)
        demo = load_run_network(net.run_dir)
        c = Cluster(net, demo, TxFactory(demo, now_ms=int(time.time() * 1000)))
        watch = HealthWatch(net, 0, "")
        wait_until(lambda: health_pb2.HealthCheckResponse.SERVING in watch.seen, 10, "SERVING")

        # Load the cluster through validator 1 until validator 0's store is full.
        deadline = time.monotonic() + LOAD_S
        while victim.poll() is None and time.monotonic() < deadline:
            raws = [c.txf.signed(c.txf.dvp()) for _ in range(4)]
            for raw in raws[:-1]:
                c.stub(1).Submit(pb.SubmitRequest(transaction=raw), timeout=RPC_TIMEOUT_S)
            c.settle(raws[-1], via=1)
        try:
            code = victim.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"validator 0 still runs {LOAD_S:.0f} s into a load its store cannot hold")
        assert code == EXIT_FATAL, f"validator 0 exited {code}, expected {EXIT_FATAL}"

        fatal = [e for e in log_events(net, 0) if e["event"] == "fatal"]
        assert len(fatal) == 1, fatal
        assert fatal[0]["level"] == "error"
        assert "LMDB map reached its limit" in str(fatal[0]["reason"])
        assert health_pb2.HealthCheckResponse.NOT_SERVING in watch.seen  # before it exited
        halted_height = int(str(fatal[0]["height"]))

        # The other three are a quorum: settling goes on without validator 0.
        assert c.settle(c.txf.signed(c.txf.transfer()), via=2).code == pb.OK

        # Restart with room: it reopens at its last durable block and catches up.
        set_option(net, 0, "lmdb_map_size_max_bytes", None)
        cluster.start_node(net, 0)
        wait_until(lambda: cluster.node_state(net, 0).up, 30, "validator 0 to answer")
        head = c.status(1).height
        wait_until(lambda: c.status(0).height >= head, 30, "validator 0 to catch up")
        assert c.status(0).height > halted_height
        assert not c.status(0).halted
        receipt = c.settle(c.txf.signed(c.txf.dvp()), via=0)
        assert receipt.code == pb.OK
        wait_until(
            lambda: c.status(0).height == c.status(1).height == receipt.height + 1,
            30,
            "both at the block that certifies the last result",
        )
        assert c.status(0).state_root == c.status(1).state_root
    finally:
        cluster.stop_cluster(net)
        if victim.poll() is None:
            victim.kill()
