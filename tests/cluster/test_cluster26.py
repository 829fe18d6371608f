"""The default size: 26 validator processes, quorum 16, on this one machine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from devtools.cluster import client_aio_channel
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc
from tests.cluster.harness import Cluster, running_cluster, wait_until

pytestmark = pytest.mark.slow

TRADES = 100


async def _settle_all(c: Cluster, raws: list[bytes]) -> list[pb.Receipt]:
    channels = [client_aio_channel(c.net, i) for i in range(c.net.n)]
    stubs = [pb_grpc.LedgerStub(ch) for ch in channels]

    async def settle(k: int, raw: bytes) -> pb.Receipt:
        stub = stubs[k % len(stubs)]  # spread the trades over every validator
        resp = await stub.Submit(pb.SubmitRequest(transaction=raw), timeout=30)
        return await stub.WaitForFinality(
            pb.WaitRequest(tx_id=resp.tx_id, timeout_ms=120_000), timeout=130
        )

    try:
        return await asyncio.gather(*(settle(k, raw) for k, raw in enumerate(raws)))
    finally:
        for ch in channels:
            await ch.close(None)


def test_26_validators_quorum_16_settle_100_trades_with_one_state_root(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with running_cluster(tmp_path / "run", 26, 16) as c:
        started = time.monotonic()
        status = c.status(0)
        assert (status.n, status.q, status.peers_connected) == (26, 16, 25)
        assert (status.safety_bound, status.liveness_bound) == (5, 10)
        banks = c.demo.banks
        raws = [
            c.txf.signed(c.txf.dvp(banks[k % 6], banks[(k + 1) % 6], quantity=10 + k, amount=9))
            for k in range(TRADES)
        ]
        receipts = asyncio.run(_settle_all(c, raws))
        assert [r.code_name for r in receipts] == ["OK"] * TRADES
        assert len({r.tx_id for r in receipts}) == TRADES
        top = max(r.height for r in receipts)

        def one_root() -> bool:
            pairs = {(s.height, bytes(s.state_root)) for s in (c.status(i) for i in range(26))}
            # One empty block follows the last trades: it certifies their results.
            return len(pairs) == 1 and next(iter(pairs))[0] == top + 1

        wait_until(one_root, 30, "all 26 validators at one height and state root")
        settled = time.monotonic()
    print(
        f"\n26/16: started in {started - t0:.1f} s, {TRADES} trades in {top} blocks settled "
        f"in {settled - started:.1f} s, stopped in {time.monotonic() - settled:.1f} s"
    )
