"""The SDK's submit stream (client/_stream.py) against a node that lies, goes quiet, stops
reading, stops or halts, and against callers that give up: found by an adversarial review
(session 14), each a defect then, each pinned here with a known mutant. What must hold
(docs/sdk.md "Many trades over one stream"): the SDK never hangs past the caller's
timeout, never leaks a slot, raises a typed error (retry-safe where resending is), and
fails a stream's requests over to the next node when their node stops or breaks its
promise to answer every request within its ``timeout_ms``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from client import (
    BadResponseError,
    FinalityTimeoutError,
    InvalidTransactionError,
    LedgerError,
    UnavailableError,
)
from client._stream import EOF, stream_error
from node.settlement import ResultCode
from node.wire import ledger_pb2 as pb
from tests.unit.test_client_stream import (
    _Call,
    _error,
    _final,
    _plain_signed,
    _raw,
    _Receipt,
    _stream,
)

__all__ = ["_plain_signed"]  # the fixture: raw bytes stand for signed transactions

GUARD_S = 3.0  # a guard against a hang, far above every deadline below


NOT_DONE = object()  # what _done_within returns for an awaitable still pending


async def _done_within(aw: Any, seconds: float) -> Any:
    """``aw``'s outcome (result or exception, returned), or NOT_DONE if it is not done in
    time (then it is cancelled)."""
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return NOT_DONE
    return task.exception() or task.result()


async def _outcome_answered_by(second: Any, fut: Any) -> Any:
    """``fut``'s outcome (as ``_done_within``, GUARD_S) while the node behind ``second``
    (a ``_Call``) answers final to the first request the stream resends to it."""

    async def answer_on_second() -> None:
        while not second.sent:
            await asyncio.sleep(0.01)
        second.events.put_nowait(_final(second.sent[0].correlation))

    helper = asyncio.create_task(answer_on_second())
    outcome = await _done_within(asyncio.shield(fut), GUARD_S)
    helper.cancel()
    await asyncio.gather(helper, return_exceptions=True)
    return outcome


# --- a silent node: the stream leaves it, no submit waits past its timeout -----------------


async def test_a_silent_node_does_not_hang_a_later_submit_past_its_timeout() -> None:
    call = _Call()  # the node opened the stream (inflight_max 1) and then says nothing
    s = _stream(call, inflight_max=1, rpc_timeout_s=0.05)
    fut = await s.submit(_raw(1), timeout_s=0.05)
    with pytest.raises(FinalityTimeoutError):
        async with asyncio.timeout(GUARD_S):
            await fut  # the future's own deadline holds ...
    # ... and the node broke its promise to answer by then: the stream leaves it (no other
    # node here, so it breaks) and this submit ends at once, retry-safe.
    outcome = await _done_within(s.submit(_raw(2), timeout_s=0.05), GUARD_S)
    await s.cancel()
    assert outcome is not NOT_DONE, "submit(timeout_s=0.05) still blocked after 3 s"
    assert isinstance(outcome, UnavailableError) and outcome.retry_safe  # it left the node


async def test_leaving_the_stream_of_a_silent_node_ends_once_every_future_expired() -> None:
    call = _Call()
    call.done_writing = _noop  # type: ignore[method-assign]  # the node never ends the call
    s = _stream(call, inflight_max=4, rpc_timeout_s=0.05)
    fut = await s.submit(_raw(1), timeout_s=0.05)
    with pytest.raises(FinalityTimeoutError):
        async with asyncio.timeout(GUARD_S):
            await fut
    closed = await _done_within(s.aclose(), GUARD_S)
    if closed is NOT_DONE:
        await s.cancel()
    assert closed is None, "aclose() still waiting after 3 s"


async def _noop() -> None:
    return None


async def test_leaving_ends_by_the_deadline_when_the_next_node_is_silent_too() -> None:
    """The stream leaves a silent node for another that opens the stream and then says
    nothing either, not even the end of the call after the half-close: leaving the
    stream still ends by the latest deadline plus the RPC timeout."""
    first, second = _Call(), _Call()
    second.done_writing = _noop  # type: ignore[method-assign]

    async def reopen(failed: str) -> tuple[Any, str]:
        return second, "127.0.0.1:8001"

    s = _stream(first, inflight_max=4, rpc_timeout_s=0.05, reopen=reopen)
    fut = await s.submit(_raw(1), timeout_s=0.05)
    closing = asyncio.ensure_future(s.aclose())
    with pytest.raises(FinalityTimeoutError):
        async with asyncio.timeout(GUARD_S):
            await fut
    closed = await _done_within(closing, GUARD_S)
    if closed is NOT_DONE:
        await s.cancel()
    assert closed is None, "aclose() still waiting after 3 s"
    assert s.address == "127.0.0.1:8001"  # it did leave the first node


# --- cancel() during the proof of a refusal settles that future -----------------------------


async def test_cancel_while_a_refusal_is_being_proven_settles_its_future() -> None:
    asked = asyncio.Event()

    async def proven(tid: bytes, timeout_s: float) -> Any:
        asked.set()
        await asyncio.sleep(3600)  # the proof is slow to come (the next block)

    call = _Call()
    s = _stream(call, inflight_max=2, proven=proven)
    fut = await s.submit(_raw(1))
    call.events.put_nowait(_final(1, pb.INSUFFICIENT_CASH))  # unproven refusal: fetch proof
    async with asyncio.timeout(GUARD_S):
        await asyncio.wait_for(asyncio.shield(asked.wait()), GUARD_S)
    await s.cancel()  # e.g. an exception leaves `async with c.stream()`
    outcome = await _done_within(asyncio.shield(fut), 0.5)
    assert outcome is not NOT_DONE, "the future of a cancelled stream never settled"
    assert isinstance(outcome, UnavailableError)


# --- a submitter cancelled while the stream reconnects gives its slot back -----------------


async def test_a_submitter_cancelled_during_a_reconnect_gives_its_slot_back() -> None:
    second = _Call()
    may_open = asyncio.Event()

    async def reopen(failed: str) -> tuple[Any, str]:
        await may_open.wait()  # the next node takes a while to open (up to rpc_timeout_s)
        return second, "127.0.0.1:8001"

    first = _Call()
    s = _stream(first, inflight_max=1, reopen=reopen)
    f1 = await s.submit(_raw(1))
    first.events.put_nowait(_final(1))
    async with asyncio.timeout(GUARD_S):
        await f1
    first.events.put_nowait(EOF)  # the node ends the call: the reader reconnects
    for _ in range(20):
        await asyncio.sleep(0)
    assert not s._ready.is_set()  # reconnecting
    caller = asyncio.create_task(s.submit(_raw(2)))  # takes the one slot, waits for _ready
    for _ in range(20):
        await asyncio.sleep(0)
    caller.cancel()  # the caller gave up (its own timeout, shutdown, ...)
    await asyncio.gather(caller, return_exceptions=True)
    may_open.set()
    outcome = await _done_within(s.submit(_raw(3)), 1.0)
    await s.cancel()
    assert outcome is not NOT_DONE, "the only slot leaked: submit blocked forever"


# --- a node that stops gracefully: its requests fail over ----------------------------------


async def _answered_then_on_the_next_node(event: pb.SubmitStreamEvent) -> Any:
    """Submit one request; its node answers ``event`` and ends the call; the next node
    answers the request's resend with a final. The request's outcome (NOT_DONE if none)."""
    second = _Call()

    async def reopen(failed: str) -> tuple[Any, str]:
        return second, "127.0.0.1:8001"

    first = _Call()
    s = _stream(first, inflight_max=4, reopen=reopen)
    fut = await s.submit(_raw(1))
    first.events.put_nowait(event)
    first.events.put_nowait(EOF)  # then the node ends the call (a stop: its grace period)
    outcome = await _outcome_answered_by(second, fut)
    await s.cancel()
    assert not isinstance(outcome, BaseException), f"failed instead of failing over: {outcome!r}"
    assert outcome is not NOT_DONE and outcome.tx_id == _raw(1)[-8:]
    return outcome


async def test_a_request_answered_node_stopped_is_resent_on_the_next_node() -> None:
    stopped = _error(1, grpc.StatusCode.UNAVAILABLE, "node stopped: the node is shutting down")
    stopped.error.reason = "NODE_STOPPED"  # Node.stop cancelled the wait (node/runtime/_stream.py)
    await _answered_then_on_the_next_node(stopped)


# --- proving a refusal keeps to the caller's deadline; a node that stops reading ----------


async def test_proving_a_refusal_keeps_to_the_callers_deadline() -> None:
    async def proven(tid: bytes, timeout_s: float) -> Any:
        await asyncio.sleep(timeout_s)  # a proof that never comes: the receipt wait times out
        raise FinalityTimeoutError(tid, timeout_s)

    call = _Call()
    timeout_s, rpc_s = 0.4, 0.05
    s = _stream(call, inflight_max=2, rpc_timeout_s=rpc_s, proven=proven)
    loop = asyncio.get_running_loop()
    start = loop.time()
    fut = await s.submit(_raw(1), timeout_s=timeout_s)
    await asyncio.sleep(timeout_s - 0.05)  # the node's unproven refusal comes just in time
    call.events.put_nowait(_final(1, pb.INSUFFICIENT_CASH))
    with pytest.raises(LedgerError):
        async with asyncio.timeout(GUARD_S):
            await fut
    elapsed = loop.time() - start
    await s.cancel()
    assert elapsed <= timeout_s + rpc_s + 0.15, f"the future took {elapsed:.2f} s"


class _StuckWrites(_Call):
    """A call whose writes block until ``flowing`` is set: HTTP/2 flow control of a node
    that stopped reading requests (node/runtime/_stream.py does so itself once 64
    refusals are queued unread; a hostile or paused node does it for ever)."""

    def __init__(self) -> None:
        super().__init__()
        self.flowing = asyncio.Event()

    async def write(self, req: pb.SubmitStreamRequest) -> None:
        await self.flowing.wait()
        await super().write(req)


async def test_a_node_that_stops_reading_does_not_hang_submit_past_its_timeout() -> None:
    call = _StuckWrites()
    s = _stream(call, inflight_max=4, rpc_timeout_s=0.05)
    outcome = await _done_within(s.submit(_raw(1), timeout_s=0.05), GUARD_S)
    await s.cancel()
    assert outcome is not NOT_DONE, "submit(timeout_s=0.05) still blocked after 3 s"


async def test_a_submitter_cancelled_before_its_write_gives_its_slot_back() -> None:
    call = _StuckWrites()
    s = _stream(call, inflight_max=2)
    first = asyncio.create_task(s.submit(_raw(1)))  # writes, blocked by flow control
    second = asyncio.create_task(s.submit(_raw(2)))  # registered, waits for the write lock
    for _ in range(20):
        await asyncio.sleep(0)
    second.cancel()  # its caller gave up
    await asyncio.gather(second, return_exceptions=True)
    call.flowing.set()
    async with asyncio.timeout(GUARD_S):
        f1 = await first
    call.events.put_nowait(_final(1))
    async with asyncio.timeout(GUARD_S):
        await f1
    assert [r.correlation for r in call.sent] == [1]  # request 2 never left
    in_flight = s.in_flight
    await s.cancel()
    assert in_flight == 0, f"{in_flight} slot(s) held by a request the node never got"


# --- failover during an overload retry sends each correlation once ------------------------


class _SlowFirstWrite(_Call):
    """The next node's first write takes a while (flow control, a busy connection)."""

    async def write(self, req: pb.SubmitStreamRequest) -> None:
        if not self.sent:
            await asyncio.sleep(0.2)
        await super().write(req)


async def test_a_failover_during_an_overload_retry_sends_each_correlation_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("client._stream.overload_wait_s", lambda hint_ms, jitter=None: 0.05)
    second = _SlowFirstWrite()

    async def reopen(failed: str) -> tuple[Any, str]:
        return second, "127.0.0.1:8001"

    first = _Call()
    s = _stream(first, inflight_max=4, reopen=reopen)
    await s.submit(_raw(1))
    await s.submit(_raw(2))
    overloaded = pb.SubmitStreamError(
        status=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="overloaded",
        retry_after_ms=50, reason="OVERLOADED",
    )  # fmt: skip
    first.events.put_nowait(pb.SubmitStreamEvent(correlation=2, error=overloaded))
    first.events.put_nowait(EOF)  # the node goes away while 2 waits for its retry
    await asyncio.sleep(0.5)
    sent = [r.correlation for r in second.sent]
    await s.cancel()
    assert sorted(sent) == [1, 2], f"correlations sent to the next node: {sent}"


# --- one node's bad receipt: the outcome is asked of the nodes -----------------------------


async def test_a_final_with_a_bad_receipt_is_proven_by_another_node() -> None:
    asked: list[bytes] = []

    async def proven(tid: bytes, timeout_s: float) -> Any:
        asked.append(tid)  # AsyncLedgerClient.receipt: fails over across the endpoints
        return _Receipt(tid, ResultCode.OK, result_proof=object())

    def verify(msg: pb.Receipt, tid: bytes, prove: bool) -> Any:
        raise BadResponseError("receipt failed verification: the receipt is for another tx")

    call = _Call()
    s = _stream(call, inflight_max=2, proven=proven)
    s._verify = verify
    fut = await s.submit(_raw(1))
    call.events.put_nowait(_final(1))
    outcome = await _done_within(asyncio.shield(fut), GUARD_S)
    await s.cancel()
    assert not isinstance(outcome, BaseException), f"failed at once: {outcome!r}"
    assert asked == [_raw(1)[-8:]]


# --- error events that prove nothing final are retry-safe ---------------------------------


@pytest.mark.parametrize("status", [0, grpc.StatusCode.INTERNAL.value[0], 999])
def test_an_error_event_that_proves_nothing_final_is_retry_safe(status: int) -> None:
    event = pb.SubmitStreamError(
        status=status,
        message="the node failed on this request (KeyError, in its log): it was accepted; "
        "ask WaitForFinality for its outcome",
        reason="INTERNAL_ERROR" if status else "",
    )
    err = stream_error(b"\x01" * 32, event, 30.0)
    assert err.retry_safe, f"{type(err).__name__} retry_safe=False for status {status}"


async def test_a_bug_while_asking_the_nodes_still_settles_the_future() -> None:
    """The follow-up that asks the nodes fails unexpectedly (a bug, not a LedgerError):
    the future still gets an error, at once, not silence."""

    async def broken(tid: bytes, timeout_s: float) -> Any:
        raise AssertionError("a bug")

    call = _Call()
    s = _stream(call, inflight_max=2, proven=broken)
    fut = await s.submit(_raw(1), timeout_s=30)
    call.events.put_nowait(_final(1, pb.INSUFFICIENT_CASH))  # unproven refusal: ask
    outcome = await _done_within(asyncio.shield(fut), GUARD_S)
    await s.cancel()
    assert isinstance(outcome, LedgerError) and "a bug" in str(outcome)


# --- one node's word: a precheck refusal asks another node; a status no node sends fails over


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED]
)
async def test_one_nodes_refusal_in_a_stream_asks_another_node(code: grpc.StatusCode) -> None:
    """Scenario (adversarial review, session 26): the stream's node refuses a valid
    submission at its precheck (INVALID_ARGUMENT: BAD_SIGNATURE, or PERMISSION_DENIED);
    the future raised at once, not retry-safe, though the unary submit asks a second node
    first. Now the stream asks the client to submit the same bytes through another node
    (``second``) and settles with what that proves."""
    asked: list[tuple[bytes, str]] = []

    async def second(raw: bytes, refused_by: str, timeout_s: float) -> Any:
        asked.append((raw, refused_by))
        assert 0 < timeout_s <= 30
        return _Receipt(raw[-8:], ResultCode.OK)

    call = _Call()
    s = _stream(call, inflight_max=2, second=second)
    fut = await s.submit(_raw(1))
    call.events.put_nowait(_error(1, code, "refused (a hostile node's word)"))
    outcome = await _done_within(asyncio.shield(fut), GUARD_S)
    await s.cancel()
    assert asked == [(_raw(1), "127.0.0.1:8000")]
    assert not isinstance(outcome, BaseException) and outcome is not NOT_DONE, outcome
    assert outcome.tx_id == _raw(1)[-8:]
    assert s.in_flight == 0  # its slot is free again


async def test_a_refusal_another_node_confirms_is_raised() -> None:
    """Control: when the other nodes refuse too, the future raises their refusal; and with
    no other node to ask (``second`` None: one endpoint), the node's own, at once."""

    async def second(raw: bytes, refused_by: str, timeout_s: float) -> Any:
        raise InvalidTransactionError("submit: refused by the node: BAD_SIGNATURE")

    for port in (second, None):
        call = _Call()
        s = _stream(call, inflight_max=2, second=port)
        fut = await s.submit(_raw(1))
        call.events.put_nowait(_error(1, grpc.StatusCode.INVALID_ARGUMENT, "BAD_SIGNATURE"))
        outcome = await _done_within(asyncio.shield(fut), GUARD_S)
        await s.cancel()
        assert isinstance(outcome, InvalidTransactionError) and not outcome.retry_safe, outcome


@pytest.mark.parametrize(
    "status", [grpc.StatusCode.ABORTED, grpc.StatusCode.DATA_LOSS, grpc.StatusCode.OK]
)
async def test_a_status_no_node_answers_with_fails_the_stream_over(status: grpc.StatusCode) -> None:
    """A request answered with a status no node sends (ABORTED, DATA_LOSS, OK in an error
    event) failed for good (LedgerError, BadResponseError); it is the node's failure: the
    request stays in flight and is resent on the next node, as for NODE_STOPPED."""
    await _answered_then_on_the_next_node(_error(1, status, "a hostile node's status"))
