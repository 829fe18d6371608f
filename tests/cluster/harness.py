"""A real cluster for tests: netgen into a temporary run directory, validator processes on
loopback, gRPC clients over TLS. Nothing is mocked."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from client import ParticipantKey, load_key
from devtools.cluster import client_channel, is_running, start_cluster, stop_cluster
from devtools.demo.run import load_run_network
from devtools.netgen import free_port_base
from node.genesis import DemoNetwork
from node.netconfig import Network, load_network
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc
from tests.ledger_helpers import TxFactory

RPC_TIMEOUT_S = 10.0


def generate(run_dir: Path, n: int, q: int, *extra: str) -> Network:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.netgen",
            "--out",
            str(run_dir),
            "--n",
            str(n),
            "--q",
            str(q),
            "--port-base",
            str(free_port_base(n)),
            *extra,
        ],
        check=True,
        capture_output=True,
    )
    return load_network(run_dir)


@dataclass
class Cluster:
    net: Network
    demo: DemoNetwork
    txf: TxFactory

    def stub(self, i: int) -> pb_grpc.LedgerStub:
        return pb_grpc.LedgerStub(client_channel(self.net, i))

    def status(self, i: int) -> pb.NodeStatus:
        return self.stub(i).GetStatus(pb.StatusRequest(), timeout=RPC_TIMEOUT_S)

    def settle(self, raw: bytes, via: int = 0, timeout_ms: int = 30_000) -> pb.Receipt:
        """Submit and wait for the full receipt (finality and the certified result)."""
        stub = self.stub(via)
        resp = stub.Submit(pb.SubmitRequest(transaction=raw), timeout=RPC_TIMEOUT_S)
        return stub.WaitForFinality(
            pb.WaitRequest(tx_id=resp.tx_id, timeout_ms=timeout_ms, prove_result=True),
            timeout=timeout_ms / 1000 + RPC_TIMEOUT_S,
        )

    def running(self) -> list[int]:
        return [i for i in range(self.net.n) if is_running(self.net, i)]


def participant_key(c: Cluster, pid: str) -> ParticipantKey:
    """A participant's key from the cluster's run directory."""
    return load_key(c.net.run_dir / "participants" / f"{pid}.key")


def module_cluster(name: str) -> Callable[[pytest.TempPathFactory], Iterator[Cluster]]:
    """A module-scoped fixture: one 4-validator cluster (quorum 3) for the module's tests,
    in a run directory named after ``name``; assign it to ``cluster`` in the module."""

    @pytest.fixture(scope="module")
    def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
        with running_cluster(tmp_path_factory.mktemp(name) / "run", 4, 3) as c:
            yield c

    return cluster


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``cond`` (a cross-process condition: there is nothing to await)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def set_node_option(net: Network, key: str, value: object) -> None:
    """Add ``key: value`` to every node's config file (before the nodes start)."""
    for node in net.nodes:
        doc = json.loads(node.config.read_text())
        doc[key] = value
        node.config.write_text(json.dumps(doc, indent=2))


@contextmanager
def running_cluster(
    run_dir: Path, n: int, q: int, options: dict[str, object] | None = None
) -> Iterator[Cluster]:
    net = generate(run_dir, n, q)
    for key, value in (options or {}).items():
        set_node_option(net, key, value)
    try:
        start_cluster(net, progress=False)
        demo = load_run_network(run_dir)
        yield Cluster(net, demo, TxFactory(demo, now_ms=int(time.time() * 1000)))
    finally:
        stop_cluster(net)
        left = [i for i in range(n) if is_running(net, i)]
        assert not left, f"nodes {left} still running after stop"


def make_status(net: Network) -> tuple[int, dict[str, object]]:
    """What `make status` runs: python -m devtools.cluster status --json, as its own
    process; its exit code and the JSON document it printed."""
    cmd = ["-m", "devtools.cluster", "--run-dir", str(net.run_dir), "status", "--json"]
    r = subprocess.run(
        [sys.executable, *cmd],
        capture_output=True,
        text=True,
        check=False,
    )
    doc: dict[str, object] = json.loads(r.stdout)
    return r.returncode, doc
