"""One SubmitStream's state (node/runtime/_stream.py) against a stand-in node: one
terminal event per request, the in-flight bound and its message, a client that does not
read cannot make the node queue without bound, and leaving gives every share back. Plus
the SDK's mapping of error events to the unary call's typed errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from client import (
    BusyError,
    FinalityTimeoutError,
    InvalidTransactionError,
    PermissionDeniedError,
    UnavailableError,
)
from client._stream import stream_error
from node.config import SUBMIT_STREAM_ERRORS_QUEUED_MAX, SUBMIT_STREAM_INFLIGHT_MAX, TX_BYTES_MAX
from node.core.mempool import AddResult
from node.crypto import sha256
from node.netconfig import (
    ConfigError,
    NodeConfig,
    PeerAddress,
    load_node_config,
    write_node_config,
)
from node.runtime._metrics import Metrics
from node.runtime._shares import Shares
from node.runtime._stream import Refusal, SubmitSession, offer
from node.settlement import ResultCode, TxResult
from node.wire import ledger_pb2 as pb
from tests.patience import HANG_S

PEER = "ipv4:127.0.0.1:5000"
_RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
_INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]
_PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]


@dataclass
class _Receipt:
    code: ResultCode
    height: int
    position: int = 0
    transaction: bytes = b""

    def to_pb(self) -> pb.Receipt:
        return pb.Receipt(code=int(self.code), height=self.height)  # type: ignore[arg-type]


class _Node:
    """What a session uses of a Node: admission, submit, wait_for. Finality comes when the
    test resolves ``finals[tx_id]``."""

    def __init__(self) -> None:
        self.halted: str | None = None
        self.metrics = Metrics()
        self.finals: dict[bytes, asyncio.Future[_Receipt]] = {}
        self.store = self

    def tx_record(self, tid: bytes) -> None:
        return None

    def admission(self, raw: bytes) -> TxResult:
        code = ResultCode.BAD_SIGNATURE if raw.startswith(b"bad") else ResultCode.OK
        return TxResult(sha256(raw), code, recorded=False)

    async def submit(self, raw: bytes, tid: bytes) -> AddResult:
        await asyncio.sleep(0)  # durable after a loop turn, as the intake flush is
        return AddResult.ACCEPTED

    async def wait_for(self, tid: bytes, timeout_s: float, *, prove_result: bool) -> _Receipt:
        fut = self.finals.setdefault(tid, asyncio.get_running_loop().create_future())
        return await fut

    def final(self, raw: bytes, height: int) -> None:
        tid = sha256(raw)
        fut = self.finals.setdefault(tid, asyncio.get_running_loop().create_future())
        fut.set_result(_Receipt(ResultCode.OK, height, transaction=raw))


def _req(corr: int, raw: bytes | None = None) -> pb.SubmitStreamRequest:
    return pb.SubmitStreamRequest(correlation=corr, transaction=raw or b"tx%d" % corr)


class _Requests:
    """The client's side of the request stream: fed by the test, counting what was read."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[pb.SubmitStreamRequest | None] = asyncio.Queue()
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[pb.SubmitStreamRequest]:
        while (req := await self.queue.get()) is not None:
            self.read += 1
            yield req


async def _settle() -> None:
    """Let every runnable task run to its next wait (a bounded number of loop turns)."""
    for _ in range(50):
        await asyncio.sleep(0)


def _session(
    node: _Node,
    inflight_max: int,
    may_read: Callable[[bytes, int | None], bool] = lambda raw, height: True,
) -> tuple[SubmitSession, Shares]:
    waits = Shares("finality waits", 100, 50)
    node_: Any = node
    session = SubmitSession(
        node_, waits, PEER, inflight_max, node.metrics, caller="BANK03", may_read=may_read
    )
    return session, waits


async def _take(events: AsyncIterator[pb.SubmitStreamEvent], n: int) -> list[pb.SubmitStreamEvent]:
    async with asyncio.timeout(HANG_S):
        return [await anext(events) for _ in range(n)]


def _kinds(evs: list[pb.SubmitStreamEvent]) -> list[tuple[int, str | None]]:
    return [(e.correlation, e.WhichOneof("kind")) for e in evs]


async def test_the_in_flight_bound_refuses_with_a_message_and_frees_on_the_final() -> None:
    node = _Node()
    session, waits = _session(node, inflight_max=2)
    reqs = _Requests()
    reader = asyncio.create_task(session.read(reqs.__aiter__()))
    for req in (_req(1), _req(2), _req(3), _req(1, b"again")):
        reqs.queue.put_nowait(req)
    await _settle()
    events = session.events()
    first = await _take(events, 4)
    assert sorted(_kinds(first)) == [(1, "accepted"), (1, "error"), (2, "accepted"), (3, "error")]
    errors = {e.correlation: e.error for e in first if e.WhichOneof("kind") == "error"}
    assert errors[3].status == _RESOURCE_EXHAUSTED
    assert "2 submissions in flight" in errors[3].message
    assert errors[1].status == _INVALID_ARGUMENT and "in flight" in errors[1].message
    assert waits.total == 2 and node.metrics.stream_inflight._value.get() == 2

    node.final(b"tx1", height=7)
    (final,) = await _take(events, 1)
    assert _kinds([final]) == [(1, "final")] and final.final.height == 7
    assert set(session.inflight) == {2} and waits.total == 1  # freed as it was sent

    reqs.queue.put_nowait(_req(3))  # room again: the same request now goes through
    await _settle()
    assert _kinds(await _take(events, 1)) == [(3, "accepted")]
    session.close()
    reader.cancel()
    assert waits.total == 0 and node.metrics.stream_inflight._value.get() == 0


async def test_a_final_goes_to_a_reader_of_the_transaction_and_frees_the_slot_either_way() -> None:
    """A transaction the caller may not read (``may_read``: the handler binds
    node.access.may_read_tx) is answered ``accepted`` and at once an error event,
    PERMISSION_DENIED, naming the caller: it holds no finality wait and frees its slot;
    a readable one waits for its final as before."""
    node = _Node()
    session, waits = _session(node, inflight_max=2, may_read=lambda raw, height: raw != b"tx2")
    reqs = _Requests()
    reader = asyncio.create_task(session.read(reqs.__aiter__()))
    for req in (_req(1), _req(2)):
        reqs.queue.put_nowait(req)
    await _settle()
    events = session.events()
    got = await _take(events, 3)
    assert sorted(_kinds(got)) == [(1, "accepted"), (2, "accepted"), (2, "error")]
    denied = next(e for e in got if e.WhichOneof("kind") == "error")
    assert denied.error.status == _PERMISSION_DENIED and denied.tx_id == sha256(b"tx2")
    assert "BANK03 is not a party" in denied.error.message
    assert set(session.inflight) == {1} and waits.total == 1  # tx2 holds nothing
    node.final(b"tx1", height=3)
    (final,) = await _take(events, 1)
    assert _kinds([final]) == [(1, "final")] and final.final.height == 3
    assert session.inflight == {} and waits.total == 0
    session.close()
    reader.cancel()


async def test_a_client_that_does_not_read_cannot_grow_the_queue() -> None:
    node = _Node()
    inflight_max = 3
    session, _ = _session(node, inflight_max)
    reqs = _Requests()
    reader = asyncio.create_task(session.read(reqs.__aiter__()))
    for k in range(1, 2_001):
        reqs.queue.put_nowait(_req(k))
    await _settle()
    # Three took slots; then refusals queue up to their limit and the node stops reading.
    assert reqs.read == inflight_max + SUBMIT_STREAM_ERRORS_QUEUED_MAX
    queued = len(session._queue)
    assert queued == inflight_max + SUBMIT_STREAM_ERRORS_QUEUED_MAX  # accepted + refused
    for k in range(1, inflight_max + 1):
        node.final(b"tx%d" % k, height=1)  # finals of unread streams queue, bounded by slots
    await _settle()
    assert len(session._queue) == queued + inflight_max
    assert reqs.read == inflight_max + SUBMIT_STREAM_ERRORS_QUEUED_MAX

    events = session.events()
    sent = await _take(events, 1)  # one refusal read: one request more is read (and refused)
    await _settle()
    assert _kinds(sent) == [(inflight_max + 1, "error")]
    assert reqs.read == inflight_max + SUBMIT_STREAM_ERRORS_QUEUED_MAX + 1
    assert len(session._queue) == queued + inflight_max
    session.close()
    reader.cancel()


async def test_a_request_refused_by_admission_frees_its_slot_with_the_unary_message() -> None:
    node = _Node()
    session, waits = _session(node, inflight_max=1)
    reqs = _Requests()
    reader = asyncio.create_task(session.read(reqs.__aiter__()))
    reqs.queue.put_nowait(_req(9, b"bad signature"))
    await _settle()
    (ev,) = await _take(session.events(), 1)
    assert ev.error.status == _INVALID_ARGUMENT
    assert ev.error.message == f"BAD_SIGNATURE: {ResultCode.BAD_SIGNATURE.meaning}"
    assert ev.tx_id == sha256(b"bad signature")
    assert not session.inflight and waits.total == 0
    session.close()
    reader.cancel()


async def test_the_stream_ends_once_half_closed_and_every_request_answered() -> None:
    node = _Node()
    session, _ = _session(node, inflight_max=4)
    reqs = _Requests()
    reader = asyncio.create_task(session.read(reqs.__aiter__()))
    reqs.queue.put_nowait(_req(1))
    reqs.queue.put_nowait(None)  # the client half-closes with one in flight
    await _settle()
    node.final(b"tx1", height=3)
    got = [e async for e in session.events()]
    assert _kinds(got) == [(1, "accepted"), (1, "final")]
    await reader


async def test_a_node_that_stops_answers_unavailable_not_silence() -> None:
    node = _Node()
    session, _ = _session(node, inflight_max=4)
    reqs = _Requests()
    reader = asyncio.create_task(session.read(reqs.__aiter__()))
    reqs.queue.put_nowait(_req(1))
    await _settle()
    node.halted = "storage: disk full"
    node.finals[sha256(b"tx1")].cancel()  # Node.stop cancels every parked wait
    events = session.events()
    got = await _take(events, 2)
    assert _kinds(got) == [(1, "accepted"), (1, "error")]
    assert got[1].error.status == _UNAVAILABLE and "disk full" in got[1].error.message
    session.close()
    reader.cancel()


class _BrokenNode(_Node):
    """A node with a bug: the submit of ``tx1`` and the wait for ``tx2`` raise."""

    async def submit(self, raw: bytes, tid: bytes) -> AddResult:
        if raw == b"tx1":
            raise KeyError("a bug in submit")
        return await super().submit(raw, tid)

    async def wait_for(self, tid: bytes, timeout_s: float, *, prove_result: bool) -> _Receipt:
        if tid == sha256(b"tx2"):
            raise ValueError("a bug in the wait")
        return await super().wait_for(tid, timeout_s, prove_result=prove_result)


async def test_a_bug_under_one_request_answers_it_internal_and_the_stream_goes_on() -> None:
    """An unexpected exception is that request's error event (INTERNAL, saying whether it
    was accepted), never silence: its slot frees and the other requests settle."""
    node = _BrokenNode()
    session, waits = _session(node, inflight_max=3)
    reqs = _Requests()
    reader = asyncio.create_task(session.read(reqs.__aiter__()))
    for req in (_req(1), _req(2), _req(3)):
        reqs.queue.put_nowait(req)
    await _settle()
    events = session.events()
    got = await _take(events, 4)
    assert sorted(_kinds(got)) == [(1, "error"), (2, "accepted"), (2, "error"), (3, "accepted")]
    errors = {e.correlation: e.error for e in got if e.WhichOneof("kind") == "error"}
    assert {e.status for e in errors.values()} == {grpc.StatusCode.INTERNAL.value[0]}
    assert {e.reason for e in errors.values()} == {"INTERNAL_ERROR"}
    assert "KeyError" in errors[1].message and "not accepted" in errors[1].message
    assert "ValueError" in errors[2].message and "WaitForFinality" in errors[2].message
    assert set(session.inflight) == {3} and waits.total == 1
    node.final(b"tx3", height=4)
    assert _kinds(await _take(events, 1)) == [(3, "final")]
    reqs.queue.put_nowait(None)
    assert [e async for e in events] == []  # half-closed, every request answered: it ends
    await reader


async def test_leaving_gives_back_every_share_and_cancels_the_waits() -> None:
    node = _Node()
    session, waits = _session(node, inflight_max=8)
    reqs = _Requests()
    reader = asyncio.create_task(session.read(reqs.__aiter__()))
    for k in range(1, 6):
        reqs.queue.put_nowait(_req(k))
    await _settle()
    tasks = list(session.inflight.values())
    assert waits.total == 5
    session.close()
    reader.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(t.cancelled() for t in tasks)
    assert waits.total == 0 and waits.refusal(PEER) is None
    assert node.metrics.stream_inflight._value.get() == 0


async def test_offer_says_what_the_unary_call_says() -> None:
    node = _Node()
    node_: Any = node
    big = await offer(node_, b"x" * (TX_BYTES_MAX + 1))
    assert isinstance(big, Refusal) and big.status is grpc.StatusCode.INVALID_ARGUMENT
    assert f"exceeds the limit of {TX_BYTES_MAX}" in big.message
    assert await offer(node_, b"fine") == (sha256(b"fine"), pb.ACCEPTED)
    node.halted = "diverged at height 9"
    down = await offer(node_, b"fine")
    assert isinstance(down, Refusal) and down.status is grpc.StatusCode.UNAVAILABLE
    assert "diverged at height 9" in down.message


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidTransactionError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, BusyError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, FinalityTimeoutError),
        (grpc.StatusCode.UNAVAILABLE, UnavailableError),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),
    ],
)
def test_error_events_raise_what_the_unary_call_raises(
    code: grpc.StatusCode, error: type[Exception]
) -> None:
    event = pb.SubmitStreamError(status=code.value[0], message="the node's words")
    err = stream_error(b"\x01" * 32, event, 30.0)
    assert type(err) is error
    if error is not FinalityTimeoutError:
        assert "the node's words" in str(err)


def _node_config(tmp: Path, **over: Any) -> NodeConfig:
    paths = {f: tmp / f for f in ("genesis", "data_dir", "signing_key", "tls_pinned")}
    paths |= {"tls_cert": tmp / "c.pem", "tls_key": tmp / "k.pem"}
    return NodeConfig(
        validator=0,
        listen_host="127.0.0.1",
        peer_port=7000,
        client_port=8000,
        metrics_port=9000,
        peers=(PeerAddress(1, "127.0.0.1:7001", "node-01"),),
        **paths,
        **over,
    )


def test_a_node_config_may_lower_the_in_flight_bound_and_no_more(tmp_path: Path) -> None:
    cfg = _node_config(tmp_path, submit_stream_inflight_max=4)
    write_node_config(tmp_path / "node.json", cfg)
    assert load_node_config(tmp_path / "node.json").submit_stream_inflight_max == 4
    default = _node_config(tmp_path)
    write_node_config(tmp_path / "default.json", default)
    assert "submit_stream_inflight_max" not in (tmp_path / "default.json").read_text()
    assert load_node_config(tmp_path / "default.json").submit_stream_inflight_max == (
        SUBMIT_STREAM_INFLIGHT_MAX
    )
    for bad in (0, SUBMIT_STREAM_INFLIGHT_MAX + 1):
        with pytest.raises(
            ConfigError,
            match=f"submit_stream_inflight_max: must be 1..{SUBMIT_STREAM_INFLIGHT_MAX}",
        ):
            _node_config(tmp_path, submit_stream_inflight_max=bad)
