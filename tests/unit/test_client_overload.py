"""The SDK honours admission control's hint (docs/sdk.md "Overload"): on RESOURCE_EXHAUSTED
with ``retry-after-ms`` it waits the hint (capped, jittered) and sends the same bytes again
while that fits in the caller's deadline and retries are left, else raises OverloadedError
carrying the hint; RESOURCE_EXHAUSTED without a hint keeps its old meaning (BusyError)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import grpc
import grpc.aio
import pytest

from client import AsyncLedgerClient, BusyError, OverloadedError
from client._limits import OVERLOAD_RETRIES_MAX, OVERLOAD_WAIT_MAX_S
from client._stream import overload_wait_s
from node.wire import RETRY_AFTER_METADATA
from node.wire import ledger_pb2 as pb
from tests.patience import HANG_S
from tests.unit.test_client_stream import _Call, _final, _plain_signed, _raw, _stream

__all__ = ["_plain_signed"]  # the fixture: raw bytes stand for signed transactions

_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


class _Watched(_Call):
    """A scripted call that lets the test await the next write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: asyncio.Queue[pb.SubmitStreamRequest] = asyncio.Queue()

    async def write(self, req: pb.SubmitStreamRequest) -> None:
        await super().write(req)
        self.writes.put_nowait(pb.SubmitStreamRequest.FromString(req.SerializeToString()))

    async def next_write(self) -> pb.SubmitStreamRequest:
        async with asyncio.timeout(HANG_S):
            return await self.writes.get()


def _overloaded(corr: int, retry_after_ms: int) -> pb.SubmitStreamEvent:
    err = pb.SubmitStreamError(
        status=_EXHAUSTED.value[0], message="overloaded", retry_after_ms=retry_after_ms
    )
    return pb.SubmitStreamEvent(correlation=corr, error=err)


@pytest.fixture
def no_wait(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The hints the SDK was given; waiting them takes no time here."""
    hints: list[int] = []

    def wait(hint_ms: int, jitter: Any = None) -> float:
        hints.append(hint_ms)
        return 0.0

    monkeypatch.setattr("client._stream.overload_wait_s", wait)
    monkeypatch.setattr("client._async.overload_wait_s", wait)
    return hints


def test_the_wait_is_the_hint_capped_and_stretched_by_at_most_the_jitter() -> None:
    assert overload_wait_s(100, lambda: 0.0) == pytest.approx(0.1)
    assert overload_wait_s(100, lambda: 1.0) == pytest.approx(0.15)
    assert overload_wait_s(10**9, lambda: 0.0) == OVERLOAD_WAIT_MAX_S


async def test_the_stream_resends_after_the_hint_and_the_retry_settles(no_wait: list[int]) -> None:
    call = _Watched()
    s = _stream(call, 1)
    fut = await s.submit(_raw(1), timeout_s=30)
    first = await call.next_write()
    call.events.put_nowait(_overloaded(first.correlation, 400))
    again = await call.next_write()  # the same request, the slot still taken
    assert (again.correlation, again.transaction) == (first.correlation, first.transaction)
    assert 0 < again.timeout_ms <= first.timeout_ms
    assert s.in_flight == 1 and no_wait == [400]
    call.events.put_nowait(_final(first.correlation))
    async with asyncio.timeout(HANG_S):
        assert (await fut).ok
    await s.cancel()


async def test_the_stream_gives_up_with_the_hint_after_its_retries(no_wait: list[int]) -> None:
    call = _Watched()
    s = _stream(call, 1)
    fut = await s.submit(_raw(1), timeout_s=30)
    for _ in range(OVERLOAD_RETRIES_MAX + 1):
        req = await call.next_write()
        call.events.put_nowait(_overloaded(req.correlation, 700))
    with pytest.raises(OverloadedError) as info:
        async with asyncio.timeout(HANG_S):
            await fut
    assert info.value.retry_after_s == 0.7 and info.value.retry_safe
    assert len(call.sent) == OVERLOAD_RETRIES_MAX + 1 and s.in_flight == 0
    await s.cancel()


async def test_a_hint_longer_than_the_deadline_fails_at_once() -> None:
    call = _Watched()
    s = _stream(call, 1)
    fut = await s.submit(_raw(1), timeout_s=0.05)
    req = await call.next_write()
    call.events.put_nowait(_overloaded(req.correlation, 5_000))
    with pytest.raises(OverloadedError):
        await fut
    assert len(call.sent) == 1
    await s.cancel()


async def test_without_a_hint_resource_exhausted_is_busy_and_not_retried(
    no_wait: list[int],
) -> None:
    call = _Watched()
    s = _stream(call, 1)
    fut = await s.submit(_raw(1), timeout_s=30)
    req = await call.next_write()
    call.events.put_nowait(_overloaded(req.correlation, 0))
    with pytest.raises(BusyError) as info:
        await fut
    assert not isinstance(info.value, OverloadedError)
    assert len(call.sent) == 1 and no_wait == []
    await s.cancel()


# --- unary calls ------------------------------------------------------------------------------


def _rpc_error(hint_ms: int | None) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata()
    if hint_ms is not None:
        trailing.add(RETRY_AFTER_METADATA, str(hint_ms))
    return grpc.aio.AioRpcError(_EXHAUSTED, grpc.aio.Metadata(), trailing, "overloaded")


def _client() -> Any:
    """What ``AsyncLedgerClient._call`` uses of its client: one endpoint."""
    return SimpleNamespace(endpoints=["node-00"], _current=0, _answered={}, _advance=lambda i: None)


async def test_a_unary_call_waits_the_hint_then_succeeds(no_wait: list[int]) -> None:
    answers: list[Any] = [_rpc_error(300), _rpc_error(200), "accepted"]

    async def fn(i: int) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    deadline = asyncio.get_running_loop().time() + 30
    assert await AsyncLedgerClient._call(_client(), "submit", fn, deadline) == "accepted"
    assert no_wait == [300, 200]


async def test_a_unary_call_raises_overloaded_after_its_retries(no_wait: list[int]) -> None:
    calls = 0

    async def fn(i: int) -> Any:
        nonlocal calls
        calls += 1
        raise _rpc_error(900)

    deadline = asyncio.get_running_loop().time() + 30
    with pytest.raises(OverloadedError) as info:
        await AsyncLedgerClient._call(_client(), "submit", fn, deadline)
    assert info.value.retry_after_s == 0.9
    assert calls == OVERLOAD_RETRIES_MAX + 1


# --- one write at a time ------------------------------------------------------------------------


class _OneWriteAtATime(_Call):
    """A call that, like gRPC's, fails when a write starts before the last one completed."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = False
        self.overlaps = 0

    async def write(self, req: pb.SubmitStreamRequest) -> None:
        if self.writing:
            self.overlaps += 1
        self.writing = True
        await asyncio.sleep(0)  # the write is in progress across a loop turn, as in gRPC
        self.writing = False
        await super().write(req)


async def test_concurrent_submitters_never_overlap_their_writes() -> None:
    call = _OneWriteAtATime()
    s = _stream(call, 100)
    await asyncio.gather(*(s.submit(_raw(k)) for k in range(20)))
    assert len(call.sent) == 20 and call.overlaps == 0
    await s.cancel()


async def test_negative_control_the_fake_call_sees_overlapping_writes() -> None:
    call = _OneWriteAtATime()
    reqs = [pb.SubmitStreamRequest(correlation=k) for k in range(3)]
    await asyncio.gather(*(call.write(r) for r in reqs))
    assert call.overlaps == 2
