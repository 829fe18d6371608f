"""The SDK against a real 4-validator cluster (quorum 3): every transaction type settles
with a receipt that verifies offline, refusals are typed and provable, resubmission is
idempotent, and both submit and the block stream carry on through another node when the
connected one is killed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import grpc
import pytest

from client import (
    AsyncLedgerClient,
    Endpoint,
    FinalityTimeoutError,
    LedgerClient,
    NodeStatusView,
    Receipt,
    RejectedError,
    ResultCode,
    accept_dvp,
    load_key,
    propose_dvp,
    verify_receipt,
)
from devtools.cluster import kill_node, start_node
from node.wire import ledger_pb2 as pb
from tests.cluster.harness import (
    Cluster,
    module_cluster,
    participant_key,
    wait_until,
)

pytestmark = pytest.mark.slow


cluster = module_cluster("sdk")  # 4 validators, quorum 3, one per module


def _client(c: Cluster, first: int = 0) -> AsyncLedgerClient:
    """A client over every node, trying node ``first`` first."""
    base = AsyncLedgerClient.from_run_dir(c.net.run_dir, identity="AUDITOR")
    order = [base.endpoints[(first + k) % c.net.n] for k in range(c.net.n)]
    return AsyncLedgerClient(
        order,
        tls_certs=c.net.tls_pinned.read_bytes(),
        genesis=base.genesis,
        identity=load_key(c.net.participant_key("AUDITOR")),
    )


def _endpoint(c: Cluster, i: int) -> Endpoint:
    node = c.net.nodes[i]
    return Endpoint(node.client_address, node.name)


def _all_agree(c: Cluster) -> bool:
    try:
        pairs = {(s.height, bytes(s.state_root)) for s in (c.status(i) for i in range(c.net.n))}
    except grpc.RpcError:
        return False  # a restarted node is not listening yet
    return len(pairs) == 1


def _restart(c: Cluster, *nodes: int) -> None:
    for i in nodes:
        start_node(c.net, i)
    wait_until(lambda: _all_agree(c), 30, f"nodes {nodes} back and in agreement")


async def test_every_transaction_type_settles_with_a_verifiable_receipt(cluster: Cluster) -> None:
    bond = cluster.demo.bonds[0]
    async with _client(cluster) as c:
        treasury, b3, b4 = (
            participant_key(cluster, "TREASURY"),
            participant_key(cluster, "BANK03"),
            participant_key(cluster, "BANK04"),
        )
        start = await c.balances("BANK04")

        issued = await c.submit(c.sign(c.tx.issue(bond, "BANK03", 5_000, by="TREASURY"), treasury))
        moved = await c.submit(c.sign(c.tx.transfer(bond, "BANK03", "BANK04", 3_000), b3))
        offer = propose_dvp(
            c.tx.dvp("BANK04", "BANK03", bond, 1_000, cluster.demo.cash, 990), b4, c.genesis
        )
        traded = await c.submit(accept_dvp(offer, b3, c.genesis, expect={"amount": 990}))
        redeemed = await c.submit(
            c.sign(c.tx.redeem(bond, "BANK04", 500, by="TREASURY"), treasury, b4)
        )
        receipts = [issued, moved, traded, redeemed]
        for r in receipts:
            assert r.ok and r.result_proof is not None
            verify_receipt(r, c.genesis)
        end = await c.balances("BANK04")
        assert end.amounts[bond] == start.amounts[bond] + 3_000 - 1_000 - 500
        assert end.amounts[cluster.demo.cash] == start.amounts[cluster.demo.cash] + 990

        # The account's events: the same three trades, with its legs.
        seen = []
        async with asyncio.timeout(10):
            async for ev in c.events("BANK04", from_height=moved.height):
                seen.append((ev.tx_id, ev.kind, ev.legs))
                if ev.tx_id == redeemed.tx_id:
                    break
        assert seen == [
            (moved.tx_id, "TRANSFER", ((bond, 3_000),)),
            (traded.tx_id, "DVP", ((bond, -1_000), (cluster.demo.cash, 990))),
            (redeemed.tx_id, "BURN", ((bond, -500),)),
        ]
        block = await c.block(traded.height)
        assert [t.tx_id for t in block.transactions if t.code is ResultCode.OK] == [traded.tx_id]


async def test_a_refused_trade_raises_rejected_with_a_provable_receipt(cluster: Cluster) -> None:
    async with _client(cluster, first=1) as c:
        dvp = c.tx.dvp("BANK01", "BANK02", cluster.demo.bonds[0], 10**15, cluster.demo.cash, 1)
        stx = c.sign(dvp, participant_key(cluster, "BANK01"), participant_key(cluster, "BANK02"))
        with pytest.raises(RejectedError) as info:
            await c.submit(stx)
        e = info.value
        assert e.code is ResultCode.INSUFFICIENT_SECURITIES and not e.retry_safe
        assert e.meaning in str(e) and e.receipt.tx_id == stx.tx_id
        verify_receipt(e.receipt, c.genesis)
        # A refusal is final: the same transaction again gets the same refusal.
        with pytest.raises(RejectedError) as again:
            await c.submit(stx)
        assert again.value.receipt == e.receipt


def _but_certificates(r: Receipt) -> Receipt:
    """A receipt without its commit certificates: two nodes may hold different ones of a
    block, each a proof (after a view change, or a relayed commit certificate: ADR 0021)."""
    proof = r.result_proof
    return dataclasses.replace(
        r,
        certificate=b"",
        result_proof=None if proof is None else dataclasses.replace(proof, certificate=b""),
    )


async def test_resubmission_returns_the_same_receipt_and_settles_once(cluster: Cluster) -> None:
    cash = cluster.demo.cash
    async with _client(cluster, first=0) as c0, _client(cluster, first=2) as c2:
        before = (await c0.balances("BANK05")).amounts[cash]
        stx = c0.sign(
            c0.tx.transfer(cash, "BANK05", "BANK06", 77), participant_key(cluster, "BANK05")
        )
        with pytest.raises(FinalityTimeoutError) as info:
            await c0.submit(stx, timeout_s=0.001)
        assert info.value.retry_safe and info.value.tx_id == stx.tx_id
        first = await c2.submit(stx)  # another node
        assert c2.current_endpoint == _endpoint(cluster, 2)
        second = await c0.submit(stx)
        third = await c0.receipt(stx.tx_id)
        assert second == third and first.ok  # one node: byte for byte
        assert _but_certificates(first) == _but_certificates(second)
        after = await c2.balances("BANK05")
        assert after.height >= first.height
        assert after.amounts[cash] == before - 77


async def test_block_stream_fails_over_without_gaps_or_repeats(cluster: Cluster) -> None:
    cash = cluster.demo.cash
    async with _client(cluster, first=0) as watcher, _client(cluster, first=1) as sender:
        key = participant_key(cluster, "BANK01")
        seed = sender.sign(sender.tx.transfer(cash, "BANK01", "BANK02", 1), key)
        # A block to replay, even if run alone: the seed's, which a stream sends once the
        # block certifying its results is committed (that one, quiet, waits for the next
        # block to show it was: ADR 0026).
        head = (await sender.submit(seed)).height
        heights: list[int] = []
        caught_up = asyncio.Event()
        goal: list[int] = []
        done = asyncio.Event()

        async def follow() -> None:
            async for b in watcher.blocks(1):
                heights.append(b.height)
                if b.height >= head:
                    caught_up.set()
                if goal and b.height >= goal[0]:
                    done.set()

        task = asyncio.create_task(follow())
        async with asyncio.timeout(20):
            await caught_up.wait()
            assert watcher.current_endpoint == _endpoint(cluster, 0)
            await asyncio.to_thread(kill_node, cluster.net, 0)
            last = None
            for amount in (1, 2, 3):
                stx = sender.sign(sender.tx.transfer(cash, "BANK01", "BANK02", amount), key)
                last = await sender.submit(stx)
            assert last is not None
            goal.append(last.height)
            if heights[-1] >= goal[0]:
                done.set()  # the stream got there before the receipt came back
            await done.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert heights == list(range(1, heights[-1] + 1)) and heights[-1] >= last.height
        assert watcher.current_endpoint != _endpoint(cluster, 0)
    await asyncio.to_thread(_restart, cluster, 0)


async def test_submit_fails_over_when_its_node_dies_mid_wait(cluster: Cluster) -> None:
    cash = cluster.demo.cash
    # Two of four down: no quorum, so the trade waits at node 0 until we act.
    for i in (2, 3):
        await asyncio.to_thread(kill_node, cluster.net, i)
    async with _client(cluster, first=0) as c:
        stx = c.sign(c.tx.transfer(cash, "BANK02", "BANK03", 5), participant_key(cluster, "BANK02"))
        task = asyncio.create_task(c.submit(stx, timeout_s=45))
        probe = cluster.stub(0)

        def pending_at_node0() -> bool:
            try:
                s = probe.GetTransaction(pb.TransactionRequest(tx_id=stx.tx_id), timeout=2)
            except grpc.RpcError:
                return False
            return bool(s.state == pb.PENDING)

        await asyncio.to_thread(wait_until, pending_at_node0, 10, "node 0 holds the trade")
        await asyncio.to_thread(kill_node, cluster.net, 0)
        for i in (2, 3):
            await asyncio.to_thread(start_node, cluster.net, i)
        receipt = await asyncio.wait_for(task, 45)
        assert receipt.ok and receipt.tx_id == stx.tx_id
        verify_receipt(receipt, c.genesis)
        assert c.current_endpoint != _endpoint(cluster, 0)
    await asyncio.to_thread(_restart, cluster, 0)


def test_sync_client_settles_a_dvp_proposed_and_accepted(cluster: Cluster) -> None:
    bond, cash = cluster.demo.bonds[1], cluster.demo.cash
    seller, buyer = participant_key(cluster, "BANK06"), participant_key(cluster, "BANK01")
    with LedgerClient.from_run_dir(cluster.net.run_dir, identity="AUDITOR") as c:
        statuses = c.status()
        assert len(statuses) == 4 and all(isinstance(s, NodeStatusView) for s in statuses)
        before = c.balances("BANK06").amounts
        offer = propose_dvp(c.tx.dvp("BANK06", "BANK01", bond, 250, cash, 240), seller, c.genesis)
        stx = accept_dvp(offer, buyer, c.genesis, expect={"bond": bond, "quantity": 250})
        receipt = c.submit(stx)
        assert receipt.ok
        verify_receipt(receipt, c.genesis)
        after = c.balances("BANK06").amounts
        assert (after[bond], after[cash]) == (before[bond] - 250, before[cash] + 240)
        event = next(iter(c.events("BANK06", from_height=receipt.height)))
        assert (event.tx_id, event.kind, event.legs) == (
            receipt.tx_id,
            "DVP",
            ((bond, -250), (cash, 240)),
        )
        assert c.transaction(stx.tx_id).state == "COMMITTED"
