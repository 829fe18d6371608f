"""Admission control on a real 4-validator cluster (quorum 3): a node that cannot settle
what it holds within a client's deadline answers RESOURCE_EXHAUSTED with a retry-after
hint (unary: trailing metadata; stream: the error event), takes nothing of what it refuses,
and the SDK's retry goes through once the backlog drains.

Deterministic, not timing-based: with two validators down nothing commits, so the node's
commit rate is its floor (ADMISSION_RATE_FLOOR_TPS) and the backlog is exactly what the
test submitted; only the SDK's retry waits for the restarted validators. The node's queue
bound (``admission_queue_max_ms``) is raised so that the client's deadline decides."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from client import AsyncLedgerClient, OverloadedError
from client._async import _run_dir_config
from client._identity import identity_key
from devtools.cluster import kill_node, start_node
from node.config import (
    ADMISSION_DEADLINE_SHARE_PCT,
    ADMISSION_RATE_FLOOR_TPS,
    ADMISSION_RETRY_AFTER_MAX_MS,
    ADMISSION_RETRY_AFTER_MIN_MS,
)
from node.settlement import SignedTx
from node.wire import RETRY_AFTER_METADATA
from node.wire import ledger_pb2 as pb
from tests.cluster.harness import RPC_TIMEOUT_S, Cluster, running_cluster, wait_until
from tests.cluster.rogue import _metrics

pytestmark = pytest.mark.slow
_Code = grpc.StatusCode
# Held by node 0 with nothing committing: at the floor rate they need 20 s, more than half
# of a 30 s deadline, so the SDK's first attempt below is refused.
BACKLOG = 1_000
LONG_MS = 60_000  # a deadline the floor rate admits BACKLOG within
SDK_TIMEOUT_S = 30.0
QUEUE_MAX_MS = 120_000  # above every budget here: the deadlines decide


def _held_ms(backlog: int) -> int:
    return -(-backlog * 1000 // ADMISSION_RATE_FLOOR_TPS)


def _refused_deadline(c: Cluster, i: int) -> float:
    for family in text_string_to_metric_families(_metrics(c.net, i)):
        if family.name == "ledger_admission_refused":
            for s in family.samples:
                if s.name.endswith("_total") and s.labels["reason"] == "deadline":
                    return s.value
    raise AssertionError("no ledger_admission_refused metric")


def _submit(c: Cluster, raw: bytes, timeout_ms: int) -> pb.SubmitResponse:
    req = pb.SubmitRequest(transaction=raw, timeout_ms=timeout_ms)
    return c.stub(0).Submit(req, timeout=RPC_TIMEOUT_S)


def _not_found_anywhere(c: Cluster, tid: bytes) -> bool:
    for i in c.running():
        try:
            c.stub(i).GetTransaction(pb.TransactionRequest(tx_id=tid), timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as e:
            if e.code() is _Code.NOT_FOUND:
                continue
            raise
        return False
    return True


def _node_0_only(c: Cluster) -> AsyncLedgerClient:
    """An SDK client of node 0 alone: its retry after the hint goes to the next endpoint
    (review 35a), and node 1, which holds none of the backlog, would admit it at once."""
    endpoints, pinned, genesis = _run_dir_config(c.net.run_dir)
    me = identity_key(c.net.run_dir, "AUDITOR")
    return AsyncLedgerClient(endpoints[:1], tls_certs=pinned, genesis=genesis, identity=me)


def _stream_refusal(c: Cluster, raw: bytes, timeout_ms: int) -> pb.SubmitStreamError:
    req = pb.SubmitStreamRequest(correlation=7, transaction=raw, timeout_ms=timeout_ms)
    events = c.stub(0).SubmitStream(iter([req]), timeout=RPC_TIMEOUT_S)
    kinds = [(e.WhichOneof("kind"), e) for e in events]
    assert [k for k, _ in kinds] == ["opened", "error"]
    return kinds[1][1].error


def test_an_overloaded_node_refuses_early_with_a_hint_and_the_sdk_retry_succeeds(
    tmp_path: Path,
) -> None:
    with running_cluster(tmp_path / "run", 4, 3, {"admission_queue_max_ms": QUEUE_MAX_MS}) as c:
        for i in (2, 3):
            assert kill_node(c.net, i)  # no quorum: nothing commits, the rate is the floor
        raws = [c.txf.signed(c.txf.dvp(quantity=1, amount=1)) for _ in range(BACKLOG + 4)]
        held, refused_unary, refused_stream, control, retried = raws[:BACKLOG], *raws[BACKLOG:]
        per_tx_ms = 1000 // ADMISSION_RATE_FLOOR_TPS
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda r: _submit(c, r, LONG_MS), held))
        assert {a.outcome for a in answers} == {pb.ACCEPTED}
        assert c.status(0).mempool_txs == BACKLOG

        # A deadline shorter than what the node holds needs: refused, with the hint.
        budget_ms = _held_ms(BACKLOG) - per_tx_ms  # one transaction's time short
        short_ms = budget_ms * 100 // ADMISSION_DEADLINE_SHARE_PCT
        with pytest.raises(grpc.RpcError) as info:
            _submit(c, refused_unary, short_ms)
        assert info.value.code() is _Code.RESOURCE_EXHAUSTED
        assert "retry after" in info.value.details()
        hint = dict(info.value.trailing_metadata())[RETRY_AFTER_METADATA]
        assert ADMISSION_RETRY_AFTER_MIN_MS <= int(hint) <= ADMISSION_RETRY_AFTER_MAX_MS
        # Negative control: a budget longer by one transaction's time admits (so the
        # refusal above is the deadline's doing, not some other limit).
        admitted = _submit(c, control, short_ms + per_tx_ms * 100 // ADMISSION_DEADLINE_SHARE_PCT)
        assert admitted.outcome == pb.ACCEPTED
        answers.append(admitted)
        error = _stream_refusal(c, refused_stream, short_ms)
        assert error.status == _Code.RESOURCE_EXHAUSTED.value[0]
        assert ADMISSION_RETRY_AFTER_MIN_MS <= error.retry_after_ms <= ADMISSION_RETRY_AFTER_MAX_MS
        assert _refused_deadline(c, 0) == 2
        # Nothing of a refused transaction was taken.
        assert c.status(0).mempool_txs == BACKLOG + 1
        assert _not_found_anywhere(c, _tid(refused_unary))
        assert _not_found_anywhere(c, _tid(refused_stream))

        async def sdk() -> None:
            async with _node_0_only(c) as client:
                # Too short a deadline for the hint: a typed error, nothing retried.
                with pytest.raises(OverloadedError) as over:
                    await client.submit(retried, timeout_s=0.5, prove_result=False)
                assert over.value.retry_after_s * 1000 == ADMISSION_RETRY_AFTER_MAX_MS
                assert over.value.retry_safe
                refusals = _refused_deadline(c, 0)
                # A 30 s deadline: refused now (20 s held), admitted once the backlog drains.
                task = asyncio.create_task(
                    client.submit(retried, timeout_s=SDK_TIMEOUT_S, prove_result=False)
                )
                await asyncio.to_thread(
                    wait_until, lambda: _refused_deadline(c, 0) > refusals, 10, "a refusal"
                )
                for i in (2, 3):
                    start_node(c.net, i)
                receipt = await task
                assert receipt.ok

        asyncio.run(sdk())
        for a in answers:  # everything accepted settles
            c.stub(0).WaitForFinality(
                pb.WaitRequest(tx_id=a.tx_id, timeout_ms=LONG_MS), timeout=LONG_MS / 1000
            )
        # ... and nothing refused was ever committed, pending, or left in the intake log.
        assert _not_found_anywhere(c, _tid(refused_unary))
        assert _not_found_anywhere(c, _tid(refused_stream))
        assert c.status(0).mempool_txs == 0
        kill_node(c.net, 0)  # a restart replays the intake log: it holds nothing refused
        start_node(c.net, 0)
        back = c.stub(0).GetStatus(pb.StatusRequest(), timeout=30, wait_for_ready=True)
        assert back.height > 0 and back.mempool_txs == 0
        assert _not_found_anywhere(c, _tid(refused_stream))


def _tid(raw: bytes) -> bytes:
    return SignedTx.decode(raw).tx_id
