"""A full mempool answers RESOURCE_EXHAUSTED, and what was accepted is never dropped: it
settles once a quorum is back, even though no quorum existed when it was accepted."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from devtools.cluster import kill_node, start_node
from node.wire import ledger_pb2 as pb
from tests.cluster.harness import running_cluster

pytestmark = pytest.mark.slow

MEMPOOL_TXS_MAX = 8


def test_full_mempool_pushes_back_and_accepted_trades_survive(tmp_path: Path) -> None:
    with running_cluster(tmp_path / "run", 4, 3, {"mempool_txs_max": MEMPOOL_TXS_MAX}) as c:
        for i in (2, 3):
            assert kill_node(c.net, i)  # 2 of 4 down: no quorum, nothing commits
        stub = c.stub(0)
        raws = [c.txf.signed(c.txf.dvp()) for _ in range(MEMPOOL_TXS_MAX + 1)]
        accepted = [stub.Submit(pb.SubmitRequest(transaction=raw), timeout=5) for raw in raws[:-1]]
        assert {a.outcome for a in accepted} == {pb.ACCEPTED}
        with pytest.raises(grpc.RpcError) as info:
            stub.Submit(pb.SubmitRequest(transaction=raws[-1]), timeout=5)
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "retry" in info.value.details()
        assert c.status(0).mempool_txs == MEMPOOL_TXS_MAX

        for i in (2, 3):
            start_node(c.net, i)
        receipts = [
            stub.WaitForFinality(pb.WaitRequest(tx_id=a.tx_id, timeout_ms=60_000), timeout=70)
            for a in accepted
        ]
        assert [r.code_name for r in receipts] == ["OK"] * MEMPOOL_TXS_MAX
        # Room again: the refused trade goes through now.
        assert c.settle(raws[-1], via=1).code_name == "OK"
