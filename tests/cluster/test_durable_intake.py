"""Acknowledged means durable (issue 12 item 8, ADR 0006), on real processes.

Validator 0 runs alone, so its forward of a client's trade cannot reach any peer; it
acknowledges the trade, is killed with SIGKILL right after, and is restarted together
with the other three. The trade commits with no resubmission, proven by another
validator's receipt. Before the intake log, the ack lived only in the dead process's
memory and the trade was lost.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from client import Receipt, verify_receipt
from devtools import cluster
from devtools.demo.run import load_run_network
from node.wire import ledger_pb2 as pb
from tests.cluster.harness import RPC_TIMEOUT_S, Cluster, generate, wait_until
from tests.ledger_helpers import TxFactory

pytestmark = pytest.mark.slow


def test_an_acked_trade_survives_kill_9_of_the_accepting_node(tmp_path: Path) -> None:
    net = generate(tmp_path / "run", 4, 3)
    try:
        cluster.start_node(net, 0)
        wait_until(lambda: cluster.node_state(net, 0).up, 30, "validator 0 to answer")
        demo = load_run_network(net.run_dir)
        c = Cluster(net, demo, TxFactory(demo, now_ms=int(time.time() * 1000)))
        raw = c.txf.signed(c.txf.dvp())
        ack = c.stub(0).Submit(pb.SubmitRequest(transaction=raw), timeout=RPC_TIMEOUT_S)
        assert ack.outcome == pb.ACCEPTED
        assert c.status(0).peers_connected == 0  # nobody else can hold it
        cluster.kill_node(net, 0, signal.SIGKILL)

        cluster.start_cluster(net, progress=False)  # validator 0 restarts with the others
        receipt = c.stub(1).WaitForFinality(
            pb.WaitRequest(tx_id=ack.tx_id, timeout_ms=30_000, prove_result=True),
            timeout=30 + RPC_TIMEOUT_S,
        )
        assert receipt.tx_id == ack.tx_id and receipt.code == pb.OK
        verify_receipt(Receipt.from_pb(receipt), demo.genesis)  # as the SDK does: no trust
        log = (net.run_dir / "logs" / f"{net.nodes[0].name}.log").read_text().splitlines()
        replayed = [json.loads(x) for x in log if '"intake_replayed"' in x]
        assert replayed and replayed[-1]["txs"] == 1
    finally:
        cluster.stop_cluster(net)
