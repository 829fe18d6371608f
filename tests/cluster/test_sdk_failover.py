"""The SDK leaves a node that stops answering with its TCP connection open (SIGSTOP: the
kernel keeps the connection, the process answers nothing) within a stated bound, and the
trade takes effect exactly once. Real 4-validator cluster (quorum 3)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import grpc
import pytest

from client import AsyncLedgerClient, load_key
from client._limits import SILENT_NODE_FAILOVER_S
from devtools.cluster import kill_node, start_node
from node.config import VIEW_TIMEOUT_BASE_MS
from node.wire import ledger_pb2 as pb
from tests.cluster.harness import (
    Cluster,
    module_cluster,
    wait_until,
)

pytestmark = pytest.mark.slow

PAUSED = 1  # the client's preferred node
# The deadline of each wait through the paused node (a FinalityTimeoutError beyond it, so
# no duration is measured): the SDK's failover bound, one view change in case the paused
# node leads the current view, and slack for a 2-core machine shared with other work.
SETTLE_BOUND_S = SILENT_NODE_FAILOVER_S + VIEW_TIMEOUT_BASE_MS / 1000 + 1.5


cluster = module_cluster("failover")  # 4 validators, quorum 3, one per module


def _client(c: Cluster, first: int) -> AsyncLedgerClient:
    base = AsyncLedgerClient.from_run_dir(c.net.run_dir, identity="AUDITOR")
    order = [base.endpoints[(first + k) % c.net.n] for k in range(c.net.n)]
    return AsyncLedgerClient(
        order,
        tls_certs=c.net.tls_pinned.read_bytes(),
        genesis=base.genesis,
        identity=load_key(c.net.participant_key("AUDITOR")),
    )


@contextlib.asynccontextmanager
async def _paused(c: Cluster, i: int) -> AsyncIterator[None]:
    assert kill_node(c.net, i, signal.SIGSTOP)
    try:
        yield
    finally:
        kill_node(c.net, i, signal.SIGCONT)


def _all_agree(c: Cluster) -> bool:
    try:
        pairs = {(s.height, bytes(s.state_root)) for s in (c.status(i) for i in range(c.net.n))}
    except grpc.RpcError:
        return False
    return len(pairs) == 1


def _bond_balance(c: Cluster, account: str, via: int) -> int:
    b = c.stub(via).GetBalances(pb.BalancesRequest(account=account), timeout=5)
    return {x.instrument: x.amount for x in b.balances}[c.demo.bonds[0]]


def _recorded_once_everywhere(c: Cluster, tid: bytes) -> set[tuple[int, int]]:
    """(height, position) of the id's receipt at every node: one pair means one record."""
    places = set()
    for i in range(c.net.n):
        s = c.stub(i).GetTransaction(pb.TransactionRequest(tx_id=tid), timeout=5)
        assert s.state == pb.COMMITTED
        places.add((s.receipt.height, s.receipt.position))
    return places


async def _submit_through_paused_node(cluster: Cluster, *, connected: bool) -> None:
    seller, qty = "BANK04", 1_234 if connected else 4_321
    before = _bond_balance(cluster, seller, via=0)
    async with _client(cluster, first=PAUSED) as c:
        if connected:
            await c.head()  # the TCP connection to the preferred node is open
        stx = c.sign(
            c.tx.dvp(seller, "BANK05", cluster.demo.bonds[0], qty, cluster.demo.cash, qty),
            load_key(cluster.net.run_dir / "participants" / f"{seller}.key"),
            load_key(cluster.net.run_dir / "participants" / "BANK05.key"),
        )
        async with _paused(cluster, PAUSED):
            receipt = await c.submit(stx, timeout_s=SETTLE_BOUND_S, prove_result=False)
    assert receipt.ok
    await asyncio.to_thread(wait_until, lambda: _all_agree(cluster), 30, "all nodes agree")
    assert len(_recorded_once_everywhere(cluster, stx.tx_id)) == 1
    for i in range(cluster.net.n):
        assert _bond_balance(cluster, seller, via=i) == before - qty


async def test_submit_leaves_a_paused_node_it_is_connected_to(cluster: Cluster) -> None:
    await _submit_through_paused_node(cluster, connected=True)


async def test_submit_leaves_a_paused_node_it_first_dials(cluster: Cluster) -> None:
    # A TLS handshake with a stopped process fails at once (UNAVAILABLE): this passed
    # before the per-attempt deadline too, and stays as a guard.
    await _submit_through_paused_node(cluster, connected=False)


async def test_a_finality_wait_leaves_a_paused_node(cluster: Cluster) -> None:
    """A wait parked at a node that then stops answering moves to another node."""
    async with _client(cluster, first=PAUSED) as c:
        stx = c.sign(
            c.tx.transfer(cluster.demo.cash, "BANK03", "BANK06", 7),
            load_key(cluster.net.run_dir / "participants" / "BANK03.key"),
        )
        await c.submit(stx, prove_result=False)  # settled, through the preferred node
        assert c.current_endpoint == c.endpoints[0]
        async with _paused(cluster, PAUSED):
            # waits for the result proof
            receipt = await c.receipt(stx.tx_id, timeout_s=SETTLE_BOUND_S)
    assert receipt.ok and receipt.result_proof is not None


def _agree(c: Cluster, nodes: list[int]) -> bool:
    try:
        pairs = {(s.height, bytes(s.state_root)) for s in (c.status(i) for i in nodes)}
    except grpc.RpcError:
        return False
    return len(pairs) == 1


async def test_a_trade_held_only_by_a_paused_node_is_resent_and_takes_effect_once(
    cluster: Cluster,
) -> None:
    """The preferred node accepted the trade while every other node was down, then stopped
    answering: only the client's resending brings the trade to the others. After the node
    resumes it holds the same trade too, and the ledger still records it once."""
    others = [i for i in range(cluster.net.n) if i != PAUSED]
    seller, qty = "BANK06", 2_468
    before = _bond_balance(cluster, seller, via=0)
    async with _client(cluster, first=PAUSED) as c:
        stx = c.sign(
            c.tx.dvp(seller, "BANK01", cluster.demo.bonds[0], qty, cluster.demo.cash, qty),
            load_key(cluster.net.run_dir / "participants" / f"{seller}.key"),
            load_key(cluster.net.run_dir / "participants" / "BANK01.key"),
        )
        for i in others:
            await asyncio.to_thread(kill_node, cluster.net, i)
        assert await c.submit(stx, wait=False) == stx.tx_id  # held by the preferred node only
        async with _paused(cluster, PAUSED):
            for i in others:
                await asyncio.to_thread(start_node, cluster.net, i)
            await asyncio.to_thread(wait_until, lambda: _agree(cluster, others), 30, "quorum back")
            assert c.current_endpoint == c.endpoints[0]  # still the paused node
            receipt = await c.submit(stx, timeout_s=SETTLE_BOUND_S, prove_result=False)
    assert receipt.ok
    await asyncio.to_thread(wait_until, lambda: _all_agree(cluster), 30, "all nodes agree")
    await asyncio.to_thread(cluster.settle, cluster.txf.signed(cluster.txf.transfer()), PAUSED)
    assert len(_recorded_once_everywhere(cluster, stx.tx_id)) == 1
    for i in range(cluster.net.n):
        assert _bond_balance(cluster, seller, via=i) == before - qty
