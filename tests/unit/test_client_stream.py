"""The SDK's side of a submit stream (client/_stream.py) against a scripted call: it never
exceeds the node's in-flight limit, settles each future from its own events, turns error
events into the unary call's errors, asks for the proof of an unproven refusal, and fails
every open future (retry-safe) when the stream breaks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from client import (
    BusyError,
    FinalityTimeoutError,
    InvalidTransactionError,
    RejectedError,
    SubmitStream,
    UnavailableError,
)
from client._limits import STREAM_REOPENS_MAX
from client._stream import EOF
from node.settlement import ResultCode
from node.wire import ledger_pb2 as pb


@dataclass
class _Receipt:
    tx_id: bytes
    code: ResultCode = ResultCode.OK
    height: int = 5
    result_proof: object | None = None  # a final event's receipt comes without (prove=False)

    @property
    def ok(self) -> bool:
        return self.code is ResultCode.OK

    @property
    def refused(self) -> bool:
        return not self.ok  # no pending DvPs here (ADR 0014)

    @property
    def outcome(self) -> ResultCode:
        return self.code

    event_proof: None = None


class _Call:
    """A SubmitStream call whose events the test pushes."""

    def __init__(self) -> None:
        self.sent: list[pb.SubmitStreamRequest] = []
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = False

    async def write(self, req: pb.SubmitStreamRequest) -> None:
        self.sent.append(req)

    async def read(self) -> Any:
        return await self.events.get()

    async def done_writing(self) -> None:
        self.events.put_nowait(EOF)

    def cancel(self) -> None:
        self.cancelled = True


def _raw(k: int) -> bytes:
    return b"signed transaction %d" % k  # SignedTransaction is not parsed until needed


def _stream(
    call: _Call,
    inflight_max: int,
    proven: Any = None,
    reopen: Any = None,
    *,
    rpc_timeout_s: float = 2.0,
    second: Any = None,
) -> SubmitStream:
    def verify(msg: pb.Receipt, tid: bytes, prove: bool) -> Any:
        return _Receipt(tid, ResultCode(msg.code))

    async def no_proof(tid: bytes, timeout_s: float) -> Any:
        raise AssertionError("no proof expected")

    return SubmitStream(
        call,
        inflight_max,
        address="127.0.0.1:8000",
        prove_result=False,
        rpc_timeout_s=rpc_timeout_s,
        verify=verify,
        proven=proven or no_proof,
        reopen=reopen,
        second=second,
    )


def _final(corr: int, code: pb.ResultCode = pb.OK) -> pb.SubmitStreamEvent:
    final = pb.SubmitStreamFinal(code=code, height=5, receipt=pb.Receipt(code=code))
    return pb.SubmitStreamEvent(correlation=corr, final=final)


def _error(corr: int, status: grpc.StatusCode, msg: str) -> pb.SubmitStreamEvent:
    err = pb.SubmitStreamError(status=status.value[0], message=msg)
    return pb.SubmitStreamEvent(correlation=corr, error=err)


async def _submit(s: SubmitStream, raw: bytes) -> asyncio.Future[Any]:
    async with asyncio.timeout(10):  # a guard against a hang, not a timing assertion
        return await s.submit(raw)


@pytest.fixture(autouse=True)
def _plain_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raw bytes stand for signed transactions: nothing here decodes them."""

    @dataclass
    class _Signed:
        raw: bytes

        @property
        def tx_id(self) -> bytes:
            return self.raw[-8:]

        @classmethod
        def ready_to_send(cls, stx: object) -> object:
            return stx if isinstance(stx, cls) else cls(bytes(stx))

    monkeypatch.setattr("client._stream.SignedTransaction", _Signed)


async def test_a_submit_waits_for_a_slot_and_each_future_gets_its_own_final() -> None:
    call = _Call()
    s = _stream(call, inflight_max=2)
    f1, f2 = await _submit(s, _raw(1)), await _submit(s, _raw(2))
    third = asyncio.create_task(s.submit(_raw(3)))
    await asyncio.sleep(0)
    assert not third.done() and [r.correlation for r in call.sent] == [1, 2]
    call.events.put_nowait(pb.SubmitStreamEvent(correlation=2, accepted=pb.ACCEPTED))
    call.events.put_nowait(_final(2))
    async with asyncio.timeout(10):
        f3 = await third  # the slot of 2 came free
        assert (await f2).tx_id == _raw(2)[-8:]
    assert not f1.done() and s.in_flight == 2
    assert call.sent[-1].correlation == 3 and call.sent[-1].want_receipt
    call.events.put_nowait(_final(1))
    call.events.put_nowait(_final(3))
    async with asyncio.timeout(10):
        assert [(await f).tx_id for f in (f1, f3)] == [_raw(1)[-8:], _raw(3)[-8:]]
        await s.aclose()
    assert s.in_flight == 0 and call.cancelled


async def test_error_events_raise_the_unary_errors() -> None:
    call = _Call()
    s = _stream(call, inflight_max=4)
    futures = [await _submit(s, _raw(k)) for k in range(1, 5)]
    call.events.put_nowait(_error(1, grpc.StatusCode.INVALID_ARGUMENT, "BAD_SIGNATURE: x"))
    call.events.put_nowait(_error(2, grpc.StatusCode.RESOURCE_EXHAUSTED, "mempool full"))
    call.events.put_nowait(_error(3, grpc.StatusCode.DEADLINE_EXCEEDED, "not committed"))
    call.events.put_nowait(_final(4, pb.INSUFFICIENT_CASH))  # unproven refusal
    async with asyncio.timeout(10):
        got = await asyncio.gather(*futures[:3], return_exceptions=True)
    assert [type(e) for e in got] == [InvalidTransactionError, BusyError, FinalityTimeoutError]
    assert "BAD_SIGNATURE" in str(got[0])
    await s.cancel()


async def test_an_unproven_refusal_is_reported_only_with_its_proof() -> None:
    call = _Call()
    asked: list[bytes] = []

    async def proven(tid: bytes, timeout_s: float) -> Any:
        asked.append(tid)
        return _Receipt(tid, ResultCode.INSUFFICIENT_CASH, result_proof=object())

    s = _stream(call, inflight_max=4, proven=proven)
    fut = await _submit(s, _raw(1))
    call.events.put_nowait(_final(1, pb.INSUFFICIENT_CASH))
    with pytest.raises(RejectedError) as e:
        async with asyncio.timeout(10):
            await fut
    assert asked == [_raw(1)[-8:]] and e.value.receipt.result_proof is not None
    await s.cancel()


async def test_a_broken_stream_fails_every_open_future_retry_safe() -> None:
    call = _Call()
    s = _stream(call, inflight_max=1)
    fut = await _submit(s, _raw(1))
    waiting = asyncio.create_task(s.submit(_raw(2)))  # no slot: waits
    await asyncio.sleep(0)
    call.events.put_nowait(EOF)  # the node went away
    with pytest.raises(UnavailableError) as e:
        async with asyncio.timeout(10):
            await fut
    assert e.value.retry_safe and "the stream ended" in str(e.value)
    with pytest.raises(UnavailableError):
        async with asyncio.timeout(10):
            await waiting  # woken, and refused: the stream is gone
    with pytest.raises(UnavailableError):
        await _submit(s, _raw(3))
    await s.cancel()


async def test_each_submit_on_a_broken_stream_raises_a_traceback_of_its_own() -> None:
    """The stream keeps one error for every later submit; each raise starts its traceback
    afresh (raised as it was, the traceback grew by a call's frames with each submit: a
    program retrying in a loop held every one). Control: the error is the stream's."""
    call = _Call()
    s = _stream(call, inflight_max=1)
    call.events.put_nowait(EOF)
    depths, errors = [], []
    for k in range(3):
        with pytest.raises(UnavailableError) as e:
            async with asyncio.timeout(10):
                while True:  # until the reader has seen the EOF
                    await (await _submit(s, _raw(10 + k)))
        errors.append(e.value)
        tb, depth = e.value.__traceback__, 0
        while tb is not None:
            tb, depth = tb.tb_next, depth + 1
        depths.append(depth)
    assert depths[1] == depths[2], depths
    assert errors[1] is errors[2] and "the stream ended" in str(errors[2])
    await s.cancel()


async def test_an_event_for_no_request_breaks_a_stream_with_no_other_node() -> None:
    """A node's event for no request is its fault: the stream leaves it (review 32,
    tests/unit/test_review32_sdk.py); with no other endpoint, the requests in flight fail
    retry-safe, naming what it sent."""
    call = _Call()
    s = _stream(call, inflight_max=2)
    fut = await _submit(s, _raw(1))
    call.events.put_nowait(_final(99))
    with pytest.raises(UnavailableError, match="correlation 99"):
        async with asyncio.timeout(10):
            await fut
    await s.cancel()


async def test_a_broken_stream_resends_what_is_in_flight_on_the_next_node() -> None:
    first, second = _Call(), _Call()
    asked: list[str] = []

    async def reopen(failed: str) -> tuple[Any, str]:
        asked.append(failed)
        return second, "127.0.0.1:8001"

    s = _stream(first, inflight_max=4, reopen=reopen)
    f1, f2 = await _submit(s, _raw(1)), await _submit(s, _raw(2))
    first.events.put_nowait(_final(1))
    first.events.put_nowait(EOF)  # the node ended the call with 2 in flight
    async with asyncio.timeout(10):
        assert (await f1).tx_id == _raw(1)[-8:]
        while not second.sent:
            await asyncio.sleep(0)
    assert asked == ["127.0.0.1:8000"] and first.cancelled
    assert second.sent == [first.sent[1]]  # the same request, the same correlation
    f3 = await _submit(s, _raw(3))
    assert [r.correlation for r in second.sent] == [2, 3] and s.address == "127.0.0.1:8001"
    second.events.put_nowait(_final(2))
    second.events.put_nowait(_final(3))
    async with asyncio.timeout(10):
        assert [(await f).tx_id for f in (f2, f3)] == [_raw(2)[-8:], _raw(3)[-8:]]
    await s.cancel()


async def test_reopens_in_a_row_without_an_answer_end_in_unavailable() -> None:
    reopened: list[_Call] = []

    async def reopen(failed: str) -> tuple[Any, str]:
        call = _Call()
        call.events.put_nowait(EOF)  # every node ends the call at once
        reopened.append(call)
        return call, failed

    first = _Call()
    s = _stream(first, inflight_max=2, reopen=reopen)
    fut = await _submit(s, _raw(1))
    first.events.put_nowait(EOF)
    with pytest.raises(UnavailableError) as e:
        async with asyncio.timeout(10):
            await fut
    assert len(reopened) == STREAM_REOPENS_MAX and e.value.retry_safe
    assert all(c.sent == [first.sent[0]] for c in reopened)  # resent each time
    await s.cancel()


async def test_cancel_does_not_fail_over() -> None:
    async def reopen(failed: str) -> tuple[Any, str]:
        raise AssertionError("a cancelled stream must not reopen")

    call = _Call()
    s = _stream(call, inflight_max=2, reopen=reopen)
    fut = await _submit(s, _raw(1))
    await s.cancel()
    with pytest.raises(UnavailableError, match="closed"):
        await fut
