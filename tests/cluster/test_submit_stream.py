"""SubmitStream on real 4-validator clusters (quorum 3): a few hundred trades over one
stream, each answered exactly once, refusals included, with the unary call's codes and
messages and receipts that verify offline; the SDK's async and sync stream APIs; the
in-flight bound; a client that disconnects mid-stream (the node lets go of everything)."""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from client import (
    AsyncLedgerClient,
    InvalidTransactionError,
    LedgerClient,
    RejectedError,
    ResultCode,
)
from devtools.cluster import client_aio_channel, kill_node, start_node
from node.config import CLIENT_MESSAGE_BYTES_MAX, TX_BYTES_MAX
from node.receipt import InvalidReceiptError, Receipt, verify_receipt
from node.settlement import SignedTx
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc
from tests.cluster.harness import RPC_TIMEOUT_S, Cluster, running_cluster, wait_until

pytestmark = pytest.mark.slow

INFLIGHT_MAX = 32  # the module cluster's submit_stream_inflight_max
TRADES = 300
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]
TERMINAL = ("final", "error")


def _code(status: grpc.StatusCode) -> int:
    return int(status.value[0])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    run_dir = tmp_path_factory.mktemp("stream") / "run"
    with running_cluster(run_dir, 4, 3, {"submit_stream_inflight_max": INFLIGHT_MAX}) as c:
        yield c


def _forged(c: Cluster) -> bytes:
    good = SignedTx.decode(c.txf.signed(c.txf.dvp(quantity=1, amount=1)))
    sigs = ((good.signatures[0][0], bytes(64)), good.signatures[1])
    return dataclasses.replace(good, signatures=sigs).encode()


async def _windowed(
    call: Any, requests: list[pb.SubmitStreamRequest], window: int
) -> dict[int, list[pb.SubmitStreamEvent]]:
    """Send ``requests`` keeping at most ``window`` without a terminal event, as a
    well-behaved client does; every event after ``opened``, by correlation."""
    slots = asyncio.Semaphore(window)
    events: dict[int, list[pb.SubmitStreamEvent]] = defaultdict(list)

    async def read() -> None:
        terminal = 0
        while terminal < len(requests):
            ev = await call.read()
            assert ev is not EOF, "the stream ended before every request was answered"
            events[ev.correlation].append(ev)
            if ev.WhichOneof("kind") in TERMINAL:
                terminal += 1
                slots.release()

    reader = asyncio.create_task(read())
    for req in requests:
        await slots.acquire()
        await call.write(req)
    await asyncio.wait_for(reader, 120)
    await call.done_writing()
    assert await call.read() is EOF  # every request answered: the node ends the call
    assert await call.code() is grpc.StatusCode.OK
    return events


def test_hundreds_of_trades_over_one_stream_each_answered_once(cluster: Cluster) -> None:
    txf, genesis = cluster.txf, cluster.demo.genesis
    trades = [txf.signed(txf.dvp(quantity=1, amount=1)) for _ in range(TRADES)]
    short = txf.signed(txf.dvp(quantity=10**15, amount=1))  # the seller lacks the bonds
    forged = _forged(cluster)
    raws = [*trades, forged, short, trades[0]]  # ... and the first trade again: a duplicate
    requests = [
        pb.SubmitStreamRequest(
            correlation=k + 1, transaction=raw, want_receipt=k % 50 == 0, prove_result=k == 0
        )
        for k, raw in enumerate(raws)
    ]
    requests[-2].want_receipt = requests[-2].prove_result = True

    async def run() -> tuple[int, dict[int, list[pb.SubmitStreamEvent]]]:
        async with client_aio_channel(cluster.net, 1) as ch:
            call = pb_grpc.LedgerStub(ch).SubmitStream()
            opened = await call.read()
            return opened.opened.inflight_max, await _windowed(call, requests, INFLIGHT_MAX)

    inflight_max, events = asyncio.run(run())
    assert inflight_max == INFLIGHT_MAX
    assert sorted(events) == [r.correlation for r in requests]
    kinds = {corr: [e.WhichOneof("kind") for e in evs] for corr, evs in events.items()}
    bad, refused, dup = TRADES + 1, TRADES + 2, TRADES + 3
    assert kinds[bad] == ["error"]
    odd = {corr: k for corr, k in kinds.items() if corr != bad and k != ["accepted", "final"]}
    assert not odd, {corr: events[corr] for corr in odd}

    finals = {corr: evs[-1].final for corr, evs in events.items() if corr != bad}
    assert {finals[k].code for k in range(1, TRADES + 1)} == {pb.OK}
    assert finals[refused].code == pb.INSUFFICIENT_SECURITIES  # a refusal is final too
    assert events[dup][0].accepted in (pb.ALREADY_PENDING, pb.ALREADY_COMMITTED)
    assert events[1][0].accepted == pb.ACCEPTED
    assert (finals[dup].height, finals[dup].position) == (finals[1].height, finals[1].position)

    # The bad signature: the unary call's status code and message, word for word.
    with pytest.raises(grpc.RpcError) as unary:
        cluster.stub(1).Submit(pb.SubmitRequest(transaction=forged), timeout=RPC_TIMEOUT_S)
    err = events[bad][0].error
    assert err.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert err.message == unary.value.details() and "BAD_SIGNATURE" in err.message

    # Receipts only where asked, and they verify offline against genesis alone.
    with_receipt = {k for k, f in finals.items() if f.HasField("receipt")}
    assert with_receipt == {r.correlation for r in requests if r.want_receipt} - {bad}
    first = Receipt.from_pb(finals[1].receipt)
    verify_receipt(first, genesis, require_result=True)  # prove_result: with its proof
    assert first.tx_id == events[1][0].tx_id and first.height == finals[1].height
    proof = Receipt.from_pb(finals[refused].receipt)
    verify_receipt(proof, genesis, require_result=True)  # the refusal, proven
    assert proof.code is ResultCode.INSUFFICIENT_SECURITIES
    with pytest.raises(InvalidReceiptError):  # negative control: the check has teeth
        verify_receipt(dataclasses.replace(first, code=ResultCode.INSUFFICIENT_CASH), genesis)


def test_a_request_that_does_not_parse_ends_the_stream_with_invalid_argument(
    cluster: Cluster,
) -> None:
    async def run() -> grpc.aio.AioRpcError:
        async with client_aio_channel(cluster.net, 2) as ch:
            call = ch.stream_stream("/ledger.v1.Ledger/SubmitStream")(iter([b"\xff\xff"]))
            with pytest.raises(grpc.aio.AioRpcError) as e:
                async for _ in call:
                    pass
            return e.value

    err = asyncio.run(run())
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "SubmitStreamRequest" in (err.details() or "")


def test_size_limits_apply_per_request_and_per_message(cluster: Cluster) -> None:
    """Over TX_BYTES_MAX: that request's error, as Submit says it; over the client port's
    message limit: gRPC ends the call (RESOURCE_EXHAUSTED), as it does a unary call."""
    big, huge = b"\x01" * (TX_BYTES_MAX + 1), b"\x01" * (CLIENT_MESSAGE_BYTES_MAX + 1)

    async def run() -> tuple[pb.SubmitStreamEvent, grpc.aio.AioRpcError]:
        async with client_aio_channel(cluster.net, 3) as ch:
            call = pb_grpc.LedgerStub(ch).SubmitStream()
            await call.read()  # opened
            await call.write(pb.SubmitStreamRequest(correlation=1, transaction=big))
            event = await call.read()
            await call.write(pb.SubmitStreamRequest(correlation=2, transaction=huge))
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call.read()
            return event, e.value

    event, err = asyncio.run(run())
    assert event.correlation == 1 and event.error.status == _code(grpc.StatusCode.INVALID_ARGUMENT)
    assert f"exceeds the limit of {TX_BYTES_MAX}" in event.error.message
    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_sdk_stream_settles_verifies_and_raises_as_submit_does(cluster: Cluster) -> None:
    txf = cluster.txf
    trades = [txf.signed(txf.dvp(quantity=1, amount=1)) for _ in range(40)]
    short = txf.signed(txf.dvp(quantity=10**15, amount=1))
    forged = _forged(cluster)

    async def run() -> list[Receipt | BaseException]:
        async with (
            AsyncLedgerClient.from_run_dir(cluster.net.run_dir, identity="AUDITOR") as c,
            c.stream(prove_result=False) as s,
        ):
            futures = [await s.submit(raw) for raw in [*trades, short, forged]]
            return list(await asyncio.gather(*futures, return_exceptions=True))

    *oks, rejected, invalid = asyncio.run(run())
    assert all(isinstance(r, Receipt) and r.ok for r in oks), oks
    assert isinstance(rejected, RejectedError)  # proven: fetched with its result proof
    assert rejected.code is ResultCode.INSUFFICIENT_SECURITIES
    assert rejected.receipt.result_proof is not None
    assert isinstance(invalid, InvalidTransactionError) and "BAD_SIGNATURE" in str(invalid)
    # The error event's structured fields (ADR 0020), as the unary call's details.
    assert invalid.reason == "TRANSACTION_REFUSED"
    assert invalid.result_code is ResultCode.BAD_SIGNATURE
    assert invalid.metadata["tx_id"] == SignedTx.decode(forged).tx_id.hex()

    with (
        LedgerClient.from_run_dir(cluster.net.run_dir, identity="AUDITOR") as sync,
        sync.stream() as s,
    ):
        handles = [s.submit(txf.signed(txf.transfer(amount=1))) for _ in range(5)]
        receipts = [h.result() for h in handles]
    assert [r.tx_id for r in receipts] == [h.tx_id for h in handles]
    assert all(r.ok and r.result_proof is not None for r in receipts)


# --- the in-flight bound and a client that leaves ----------------------------------------


def _gauge(c: Cluster, i: int, name: str) -> float:
    node = c.net.nodes[i]
    url = f"http://{node.host}:{node.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=RPC_TIMEOUT_S) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return float(family.samples[0].value)
    raise AssertionError(f"no metric {name}")


def test_in_flight_bound_and_a_client_that_disconnects(tmp_path: Path) -> None:
    bound = 4
    with running_cluster(tmp_path / "run", 4, 3, {"submit_stream_inflight_max": bound}) as c:
        for i in (2, 3):
            assert kill_node(c.net, i)  # no quorum: what is accepted stays in flight
        raws = [c.txf.signed(c.txf.dvp(quantity=1, amount=1)) for _ in range(bound + 1)]
        requests = [
            pb.SubmitStreamRequest(correlation=k + 1, transaction=raw) for k, raw in enumerate(raws)
        ]
        reuse = pb.SubmitStreamRequest(correlation=1, transaction=raws[-1])
        gauges = ("ledger_submit_streams", "ledger_submit_stream_inflight")

        async def run() -> tuple[dict[int, list[pb.SubmitStreamEvent]], list[float]]:
            async with client_aio_channel(c.net, 0) as ch:
                call = pb_grpc.LedgerStub(ch).SubmitStream()
                assert (await call.read()).opened.inflight_max == bound
                for req in [*requests, reuse]:
                    await call.write(req)
                events: dict[int, list[pb.SubmitStreamEvent]] = defaultdict(list)
                while sum(len(v) for v in events.values()) < bound + 2:
                    ev = await asyncio.wait_for(call.read(), 30)
                    events[ev.correlation].append(ev)
                held = [_gauge(c, 0, g) for g in gauges]
                call.cancel()  # the client leaves with 4 submissions in flight
            return events, held

        events, held = asyncio.run(run())
        assert held == [1, bound]
        over = events[bound + 1]
        assert [e.WhichOneof("kind") for e in over] == ["error"]
        assert over[0].error.status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert f"{bound} submissions in flight" in over[0].error.message
        errors = [e for e in events[1] if e.WhichOneof("kind") == "error"]
        assert len(errors) == 1 and "in flight on this stream already" in errors[0].error.message
        accepted = {k: v[0].tx_id for k, v in events.items() if v[0].accepted == pb.ACCEPTED}
        assert sorted(accepted) == list(range(1, bound + 1))

        wait_until(
            lambda: [_gauge(c, 0, g) for g in gauges] == [0, 0],
            30,
            "the node to let go of the stream and its submissions",
        )
        for i in (2, 3):
            start_node(c.net, i)
        stub = c.stub(0)
        for tid in accepted.values():  # accepted means durable, whoever left
            r = stub.WaitForFinality(pb.WaitRequest(tx_id=tid, timeout_ms=60_000), timeout=70)
            assert r.code_name == "OK"


def test_the_sdk_stream_fails_over_and_every_trade_settles_once(tmp_path: Path) -> None:
    """The stream's node dies holding trades no quorum could commit yet: the SDK reopens
    the stream on the next node, resends them, and each future gets its one receipt."""
    with running_cluster(tmp_path / "run", 4, 3) as c:
        for i in (2, 3):
            assert kill_node(c.net, i)  # no quorum: the trades stay in flight at node 0
        raws = [c.txf.signed(c.txf.dvp(quantity=1, amount=1)) for _ in range(20)]

        async def run() -> tuple[str, str, list[Receipt]]:
            async with (
                AsyncLedgerClient.from_run_dir(c.net.run_dir, identity="AUDITOR") as client,
                client.stream(prove_result=False) as s,
            ):
                first = s.address
                futures = [await s.submit(raw, timeout_s=90) for raw in raws]
                async with asyncio.timeout(30):  # node 0 holds them all (polled)
                    while (await client.status())[0].mempool_txs < len(raws):  # type: ignore[union-attr]
                        await asyncio.sleep(0.05)
                assert kill_node(c.net, 0)
                for i in (2, 3):
                    start_node(c.net, i)
                receipts = list(await asyncio.gather(*futures))
                return first, s.address, receipts

        first, after, receipts = asyncio.run(run())
        assert first == c.net.nodes[0].client_address and after != first
        assert [r.tx_id for r in receipts] == [SignedTx.decode(raw).tx_id for raw in raws]
        assert all(r.ok for r in receipts)
        heights = {(r.height, r.position) for r in receipts}
        assert len(heights) == len(raws)  # each recorded once, at its own place
