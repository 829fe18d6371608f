"""Tests for the survivors of cosmic-ray on client/_stream.py (review 32, target
``client.stream``; docs/testing.md "The submit stream and the read budget"): how long a
submit, a write and leaving the stream may wait, what a resent request asks for, which
errors fail over and which end the stream, the typed error of every status, what a
cancelled submitter or a settled request leaves behind.

The scripted calls of ``test_client_stream`` stand for the node; times are the loop's."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

import grpc
import grpc.aio
import pytest

from client import (
    BadResponseError,
    BusyError,
    FinalityTimeoutError,
    InvalidTransactionError,
    LedgerError,
    OverloadedError,
    PermissionDeniedError,
    SubmitStream,
    UnavailableError,
)
from client._limits import STREAM_REOPENS_MAX
from client._stream import EOF, stream_error
from node.settlement import ResultCode
from node.wire import ledger_pb2 as pb
from tests.unit.test_client_stream import _Call, _error, _final, _plain_signed, _raw, _Receipt
from tests.unit.test_client_stream import _stream as _open
from tests.unit.test_client_stream_hostile import GUARD_S, _done_within, _StuckWrites

__all__ = ["_plain_signed"]  # the fixture: raw bytes stand for signed transactions

_Code = grpc.StatusCode
TID = b"\x01" * 32


async def _turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


# --- stream_error: the typed error of each status --------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after_ms", "tid", "error"),
    [
        (_Code.INVALID_ARGUMENT, 0, TID, InvalidTransactionError),
        (_Code.RESOURCE_EXHAUSTED, 250, TID, OverloadedError),
        (_Code.RESOURCE_EXHAUSTED, 0, TID, BusyError),
        (_Code.DEADLINE_EXCEEDED, 0, TID, FinalityTimeoutError),
        (_Code.UNAVAILABLE, 0, TID, UnavailableError),
        (_Code.PERMISSION_DENIED, 0, TID, PermissionDeniedError),
        (_Code.INTERNAL, 0, TID, UnavailableError),
        (_Code.UNKNOWN, 0, TID, UnavailableError),
        (_Code.OK, 0, TID, BadResponseError),
        (_Code.NOT_FOUND, 0, TID, LedgerError),
        (_Code.ABORTED, 0, b"", LedgerError),
        (_Code.DEADLINE_EXCEEDED, 0, b"", LedgerError),  # no transaction: no finality wait
    ],
)
def test_each_status_of_an_error_event_is_its_own_typed_error(
    status: _Code, retry_after_ms: int, tid: bytes, error: type[LedgerError]
) -> None:
    """Exactly one typed error per status (and none of the others: a PERMISSION_DENIED
    read as UNAVAILABLE would be resent for ever; cosmic-ray's ``is not``, ``!=``, ``<``
    ... for ``is``), naming the transaction when there is one (``not tid``)."""
    event = pb.SubmitStreamError(
        status=status.value[0], message="the node's words", retry_after_ms=retry_after_ms
    )
    err = stream_error(tid, event, 30.0)
    assert type(err) is error
    if error is not FinalityTimeoutError:
        assert "the node's words" in str(err)
    if tid:
        assert tid.hex() in str(err)
    else:
        assert str(err).startswith("submit: ")
    if error is LedgerError:
        assert status.name in str(err)


# --- keyword-only arguments -----------------------------------------------------------------


async def test_the_streams_options_and_a_submits_timeout_are_named() -> None:
    """Two booleans, a timeout and three callables by position could be swapped
    unnoticed (cosmic-ray's ``/`` for ``*``)."""
    call = _Call()
    with pytest.raises(TypeError):
        SubmitStream(call, 2, "127.0.0.1:8000", False, 2.0, None, None)  # type: ignore[call-arg,arg-type]
    s = _open(call, 2)
    with pytest.raises(TypeError):
        await s.submit(_raw(1), 5.0)  # type: ignore[call-arg]
    fut = await s.submit(_raw(1), timeout_s=5.0)  # control: named, it works
    assert call.sent[0].timeout_ms == 5_000 and not fut.done()
    await s.cancel()


# --- how long a submit and a write may wait -------------------------------------------------


@pytest.mark.parametrize(("timeout_s", "rpc_s"), [(0.5, 0.5), (1.0, 0.01)])
async def test_a_submit_waits_for_a_slot_exactly_its_timeout_plus_the_rpc_timeout(
    timeout_s: float, rpc_s: float
) -> None:
    """No slot frees: BusyError after timeout_s + rpc_timeout_s, neither before nor much
    after, and the message says how long (cosmic-ray's ``*``, ``/``, ``**`` in the wait,
    every operator in the message, the ``except TimeoutError``)."""
    call = _Call()
    s = _open(call, 1, rpc_timeout_s=rpc_s)
    await s.submit(_raw(1), timeout_s=30)
    loop = asyncio.get_running_loop()
    start = loop.time()
    outcome = await _done_within(s.submit(_raw(2), timeout_s=timeout_s), GUARD_S)
    elapsed = loop.time() - start
    await s.cancel()
    assert isinstance(outcome, BusyError), outcome
    assert f"stayed in flight for {timeout_s + rpc_s:g} s" in str(outcome)
    assert timeout_s + rpc_s - 0.02 <= elapsed <= timeout_s + rpc_s + 1.0


@pytest.mark.parametrize(("timeout_s", "rpc_s"), [(0.5, 0.5), (1.0, 0.01)])
async def test_a_write_blocked_by_the_node_is_given_up_at_the_deadline_not_before(
    timeout_s: float, rpc_s: float
) -> None:
    """A node that stops reading: submit returns (the request stays in flight for the
    next node) after timeout_s + rpc_timeout_s, not before (a write given up early is a
    request the node could have had) nor long after (cosmic-ray's ``*``, ``/``, ``**``)."""
    call = _StuckWrites()
    s = _open(call, 4, rpc_timeout_s=rpc_s)
    loop = asyncio.get_running_loop()
    start = loop.time()
    outcome = await _done_within(s.submit(_raw(1), timeout_s=timeout_s), GUARD_S)
    elapsed = loop.time() - start
    await s.cancel()
    assert isinstance(outcome, asyncio.Future), outcome
    assert timeout_s + rpc_s - 0.02 <= elapsed <= timeout_s + rpc_s + 1.0


async def test_a_request_expires_only_after_its_timeout_plus_the_rpc_timeout() -> None:
    """A silent node: the future fails FinalityTimeoutError at timeout_s + rpc_timeout_s,
    not at their product (cosmic-ray's ``*`` in the timer), and the stream leaves the
    node saying how long it waited (every operator in ``waited_s``)."""
    call = _Call()
    s = _open(call, 2, rpc_timeout_s=0.3)
    fut = await s.submit(_raw(1), timeout_s=0.6)
    await asyncio.sleep(0.4)
    assert not fut.done()  # the product, 0.18 s, is past; the sum, 0.9 s, is not
    with pytest.raises(FinalityTimeoutError):
        async with asyncio.timeout(GUARD_S):
            await fut
    with pytest.raises(UnavailableError, match=re.escape("no answer to a request in 0.9 s")):
        async with asyncio.timeout(GUARD_S):
            await s.submit(_raw(2), timeout_s=0.6)
    await s.cancel()


async def test_a_request_being_proven_at_its_expiry_does_not_move_the_stream() -> None:
    """The node answered (an unproven refusal) and the proof is slow: the future fails at
    its deadline, but the node kept its word, so the stream stays (cosmic-ray's ``or``
    for either ``and`` in ``_expire``)."""

    async def proven(tid: bytes, timeout_s: float) -> Any:
        await asyncio.Event().wait()

    call = _Call()
    reopen = _Reopen(_Call())
    s = _open(call, 4, proven=proven, reopen=reopen, rpc_timeout_s=0.05)
    fut = await s.submit(_raw(1), timeout_s=0.1)
    call.events.put_nowait(_final(1, pb.INSUFFICIENT_CASH))
    with pytest.raises(FinalityTimeoutError):
        async with asyncio.timeout(GUARD_S):
            await fut
    await asyncio.sleep(0.1)
    assert reopen.asked == 0 and s.address == "127.0.0.1:8000"
    await s.cancel()


# --- what a request asks the node for -------------------------------------------------------


async def test_a_request_asks_for_its_timeout_in_whole_milliseconds_at_least_one() -> None:
    """timeout_ms is the caller's timeout rounded up, never 0 (which the node reads as its
    default of 30 s): cosmic-ray's ``max(0, ...)``, ``max(2, ...)``, ``* 1001``."""
    call = _Call()
    s = _open(call, 8)
    for timeout_s in (0.0, 0.0004, 1.0, 2.5):
        await s.submit(_raw(int(timeout_s * 10_000)), timeout_s=timeout_s)
    assert [r.timeout_ms for r in call.sent] == [1, 1, 1_000, 2_500]
    await s.cancel()


class _Reopen:
    """The next nodes: each reopen answers the next call, and records when it was asked."""

    def __init__(self, *calls: _Call) -> None:
        self.calls, self.asked, self.at = list(calls), 0, 0.0

    async def __call__(self, failed: str) -> tuple[Any, str]:
        self.asked += 1
        self.at = asyncio.get_running_loop().time()
        if not self.calls:
            call = _Call()
            call.events.put_nowait(EOF)
            return call, failed
        return self.calls.pop(0), f"127.0.0.1:{8000 + self.asked}"


async def _resent(second: _Call, n: int = 1) -> None:
    async with asyncio.timeout(GUARD_S):
        while len(second.sent) < n:
            await asyncio.sleep(0)


async def test_a_resent_request_asks_for_what_is_left_of_its_deadline() -> None:
    """After a failover the request asks the next node for the time left, in ms:
    cosmic-ray's every operator in ``_left_in``."""
    first, second = _Call(), _Call()
    reopen = _Reopen(second)
    s = _open(first, 4, reopen=reopen)
    loop = asyncio.get_running_loop()
    await s.submit(_raw(1), timeout_s=100)
    deadline = s._pending[1].deadline
    first.events.put_nowait(EOF)
    await _resent(second)
    after = loop.time()
    got = second.sent[0].timeout_ms
    await s.cancel()
    assert math.ceil((deadline - after) * 1000) <= got <= math.ceil((deadline - reopen.at) * 1000)


async def test_a_request_resent_past_its_deadline_asks_for_one_millisecond() -> None:
    """Its deadline passed, its future not failed yet (that waits the RPC timeout too):
    the next node is asked for 1 ms, not 0 (its default of 30 s) nor more."""
    first, second = _Call(), _Call()
    s = _open(first, 4, reopen=_Reopen(second), rpc_timeout_s=5.0)
    await s.submit(_raw(1), timeout_s=0.05)
    await asyncio.sleep(0.1)
    first.events.put_nowait(EOF)
    await _resent(second)
    await s.cancel()
    assert second.sent[0].timeout_ms == 1


async def test_a_request_whose_future_expired_is_not_resent_and_the_others_are() -> None:
    """Two in flight, the first past its deadline and RPC timeout: the failover forgets
    it and still resends the second (cosmic-ray's ``break`` for ``continue``)."""
    first, second = _Call(), _Call()
    s = _open(first, 4, reopen=_Reopen(second), rpc_timeout_s=0.05)
    f1 = await s.submit(_raw(1), timeout_s=0.05)
    await s.submit(_raw(2), timeout_s=30)
    with pytest.raises(FinalityTimeoutError):
        async with asyncio.timeout(GUARD_S):
            await f1  # ... and the stream leaves the node that did not answer it
    await _resent(second)
    await _turns()
    assert [r.correlation for r in second.sent] == [2] and s.in_flight == 1
    await s.cancel()


# --- which errors fail over, which end the stream -------------------------------------------


class _Failing(_Call):
    """A call whose read fails with ``code``."""

    def __init__(self, code: _Code) -> None:
        super().__init__()
        self.code = code

    async def read(self) -> Any:
        await asyncio.sleep(0)
        md = grpc.aio.Metadata()
        raise grpc.aio.AioRpcError(self.code, md, md, "the call failed", None)


async def test_a_call_failing_unavailable_fails_over_and_one_failing_otherwise_ends() -> None:
    """UNAVAILABLE (a node down) moves the stream to the next node; UNAUTHENTICATED
    (this client's key) is the same everywhere: the futures fail at once, no reopen
    (cosmic-ray's ``not self._cancelled``, ``and`` for ``or``)."""
    second = _Call()
    reopen = _Reopen(second)
    s = _open(_Failing(_Code.UNAVAILABLE), 4, reopen=reopen)
    await s.submit(_raw(1))
    await _resent(second)
    assert reopen.asked == 1
    await s.cancel()

    reopen = _Reopen(_Call())
    s = _open(_Failing(_Code.UNAUTHENTICATED), 4, reopen=reopen)
    fut = await s.submit(_raw(1))
    with pytest.raises(UnavailableError, match="UNAUTHENTICATED"):
        async with asyncio.timeout(GUARD_S):
            await fut
    assert reopen.asked == 0
    await s.cancel()


async def test_a_bug_while_reconnecting_fails_the_futures_instead_of_leaving_them() -> None:
    """An unexpected exception in the reader (here the reopen) fails every open future
    with a LedgerError naming it, at once, not at its deadline (cosmic-ray's
    ``except Exception`` replaced)."""

    async def reopen(failed: str) -> tuple[Any, str]:
        raise RuntimeError("a bug in the reopen")

    call = _Call()
    s = _open(call, 4, reopen=reopen)
    fut = await s.submit(_raw(1), timeout_s=30)
    call.events.put_nowait(EOF)
    outcome = await _done_within(fut, GUARD_S)
    await s.cancel()
    assert isinstance(outcome, LedgerError) and "a bug in the reopen" in str(outcome)


async def test_the_node_left_is_read_no_more() -> None:
    """Leaving a node stops reading its call: a final it sends afterwards settles nothing
    (the request is the next node's now); cosmic-ray's ``reading.done()`` for ``not``."""
    first, second = _Call(), _Call()
    s = _open(first, 4, reopen=_Reopen(second))
    fut = await s.submit(_raw(1))
    first.events.put_nowait(_error(1, _Code.UNAVAILABLE, "node stopped"))  # leave it
    await _resent(second)
    first.events.put_nowait(_final(1, pb.INSUFFICIENT_CASH))  # too late: not read
    await _turns()
    assert not fut.done() and first.events.qsize() == 1
    second.events.put_nowait(_final(1))
    async with asyncio.timeout(GUARD_S):
        assert (await fut).ok
    await s.cancel()


async def test_an_answer_resets_the_count_of_reopens_in_a_row() -> None:
    """After an answer, STREAM_REOPENS_MAX reopens without one, no fewer, no more, end the
    stream (cosmic-ray's reset to 1 or -1)."""
    first = _Call()
    reopen = _Reopen()  # every next node ends the call at once
    s = _open(first, 4, reopen=reopen)
    f1, f2 = await s.submit(_raw(1)), await s.submit(_raw(2))
    first.events.put_nowait(_final(1))
    first.events.put_nowait(EOF)
    with pytest.raises(UnavailableError):
        async with asyncio.timeout(GUARD_S):
            await f2
    assert (await f1).ok and reopen.asked == STREAM_REOPENS_MAX
    await s.cancel()


# --- overload retries -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [(_Code.INVALID_ARGUMENT, InvalidTransactionError), (_Code.INTERNAL, UnavailableError)],
)
async def test_only_resource_exhausted_is_retried_after_a_hint(
    status: _Code, error: type[LedgerError]
) -> None:
    """A hint on another status (a confused or hostile node) is no invitation to resend:
    the request fails as its status says (cosmic-ray's ``<`` and ``>`` for ``!=``)."""
    call = _Call()
    s = _open(call, 4)
    fut = await s.submit(_raw(1), timeout_s=30)
    event = _error(1, status, "no")
    event.error.retry_after_ms = 10
    call.events.put_nowait(event)
    with pytest.raises(error):
        async with asyncio.timeout(GUARD_S):
            await fut
    await asyncio.sleep(0.05)
    assert len(call.sent) == 1
    await s.cancel()


async def test_a_hint_under_a_second_past_the_deadline_is_not_waited() -> None:
    """A hint of 0.5 s for a request with 0.1 s left fails at once, not after a retry that
    comes too late (cosmic-ray's ``*`` and ``**`` for ``+`` with the loop's time)."""
    call = _Call()
    s = _open(call, 4)
    fut = await s.submit(_raw(1), timeout_s=0.1)
    event = _error(1, _Code.RESOURCE_EXHAUSTED, "overloaded")
    event.error.retry_after_ms = 500
    call.events.put_nowait(event)
    outcome = await _done_within(fut, 0.09)
    await asyncio.sleep(0.6)
    await s.cancel()
    assert isinstance(outcome, OverloadedError) and len(call.sent) == 1


# --- proving a refusal ----------------------------------------------------------------------


async def test_a_refusal_is_proven_within_what_is_left_of_the_deadline() -> None:
    """The proof is asked with the time left (not the deadline divided by the clock), and
    asked even with less than a second left (cosmic-ray's ``//`` and ``<= 1``)."""
    asked: list[float] = []

    async def proven(tid: bytes, timeout_s: float) -> Any:
        asked.append(timeout_s)
        return _Receipt(tid, ResultCode.INSUFFICIENT_CASH, result_proof=object())

    call = _Call()
    s = _open(call, 4, proven=proven)
    long, short = await s.submit(_raw(1), timeout_s=20), await s.submit(_raw(2), timeout_s=0.8)
    call.events.put_nowait(_final(1, pb.INSUFFICIENT_CASH))
    call.events.put_nowait(_final(2, pb.INSUFFICIENT_CASH))
    for fut in (long, short):
        outcome = await _done_within(fut, GUARD_S)
        assert type(outcome).__name__ == "RejectedError", outcome
    await s.cancel()
    assert len(asked) == 2 and 19 < asked[0] <= 20 and 0.5 < asked[1] <= 0.8


# --- what a cancelled submitter, a settled request, a break leave behind ----------------------


async def test_a_submitter_cancelled_during_its_write_keeps_the_request_in_flight() -> None:
    """Its write started: the node may have it and will answer it, so the slot stays
    taken until it does, and that answer is no stranger's (a forgotten one would make
    the stream leave a good node): cosmic-ray's ``or`` for ``and``, ``written = False``."""
    call = _StuckWrites()
    reopen = _Reopen(_Call())
    s = _open(call, 2, reopen=reopen)
    task = asyncio.create_task(s.submit(_raw(1)))
    await _turns()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and s.in_flight == 1
    call.flowing.set()
    call.events.put_nowait(_final(1))
    await _turns()
    assert s.in_flight == 0 and reopen.asked == 0
    await s.cancel()


async def test_a_request_that_leaves_holds_no_timer() -> None:
    """A submitter cancelled before its write, a final, a break: each request's expiry
    timer is cancelled as it leaves, and the cancelled submitter sees its cancellation,
    not an error of the clean-up (cosmic-ray's loops over no handle, ``is None``)."""
    call = _StuckWrites()
    s = _open(call, 4)
    first = asyncio.create_task(s.submit(_raw(1)))  # writing, blocked
    second = asyncio.create_task(s.submit(_raw(2)))  # waits for the write lock
    await _turns()
    forgotten = s._pending[2]
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert second.cancelled() and forgotten.timer is not None and forgotten.timer.cancelled()
    call.flowing.set()
    f1 = await first
    answered = s._pending[1]
    call.events.put_nowait(_final(1))
    async with asyncio.timeout(GUARD_S):
        await f1
    assert answered.timer is not None and answered.timer.cancelled()
    await s.submit(_raw(3))
    broken = s._pending[3]
    await s.cancel()
    assert broken.timer is not None and broken.timer.cancelled()


# --- leaving the stream ---------------------------------------------------------------------


class _Deaf(_Call):
    """A node that never ends the call: its half-close blocks (flow control), and no EOF."""

    async def done_writing(self) -> None:
        await asyncio.Event().wait()


async def test_leaving_a_deaf_node_ends_by_the_rpc_timeout() -> None:
    """Nothing in flight: aclose ends within the RPC timeout even when the half-close and
    the end of the call never come (cosmic-ray's ``max(1.0, ...)`` and the operators
    of the two waits)."""
    s = _open(_Deaf(), 4, rpc_timeout_s=0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    closed = await _done_within(s.aclose(), GUARD_S)
    assert closed is None and loop.time() - start <= 0.5


async def test_leaving_ends_by_the_deadline_while_a_refusal_is_being_proven() -> None:
    """A refusal's proof that never comes: aclose ends by the request's deadline plus the
    RPC timeout, and the future fails (cosmic-ray's operators in the follow-ups' wait)."""

    async def proven(tid: bytes, timeout_s: float) -> Any:
        await asyncio.Event().wait()

    call = _Call()
    s = _open(call, 4, proven=proven, rpc_timeout_s=0.05)
    loop = asyncio.get_running_loop()
    fut = await s.submit(_raw(1), timeout_s=0.1)
    start = loop.time()
    call.events.put_nowait(_final(1, pb.INSUFFICIENT_CASH))
    await _turns()
    closed = await _done_within(s.aclose(), GUARD_S)
    assert closed is None and loop.time() - start <= 0.6
    with pytest.raises(LedgerError):
        await fut


async def test_a_node_ending_the_call_after_the_half_close_is_not_left_for_another() -> None:
    """Every request answered, the client half-closes and the node ends the call: done,
    no reopen (cosmic-ray's ``_closing = False``)."""
    call = _Call()
    reopen = _Reopen(_Call())
    s = _open(call, 4, reopen=reopen)
    fut = await s.submit(_raw(1))
    call.events.put_nowait(_final(1))
    assert (await fut).ok
    closed = await _done_within(s.aclose(), GUARD_S)
    assert closed is None and reopen.asked == 0


class _Silent(_Call):
    """A node that takes the half-close and never ends the call."""

    async def done_writing(self) -> None:
        return None


async def test_leaving_a_node_that_never_ends_the_call_ends_by_the_rpc_timeout() -> None:
    """The half-close goes through at once, the end of the call never comes: aclose ends
    within the RPC timeout (cosmic-ray's ``//`` in the reader's wait: 1 s)."""
    s = _open(_Silent(), 4, rpc_timeout_s=0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    closed = await _done_within(s.aclose(), GUARD_S)
    assert closed is None and loop.time() - start <= 0.5


class _DeadOnCancel(_Call):
    """Writes block until the call is cancelled; then they fail (returning, as ``_write``
    swallows the error), as a real call's do."""

    def __init__(self) -> None:
        super().__init__()
        self.dead = asyncio.Event()

    async def write(self, req: pb.SubmitStreamRequest) -> None:
        await self.dead.wait()

    def cancel(self) -> None:
        super().cancel()
        self.dead.set()


class _SlowWrites(_Call):
    """Each write takes a few loop turns (a real one waits for the transport)."""

    async def write(self, req: pb.SubmitStreamRequest) -> None:
        await _turns()
        await super().write(req)


async def test_a_request_forgotten_during_the_resend_does_not_stop_the_others() -> None:
    """Three requests in flight on a node that stopped reading: the first is writing, the
    other two wait for the write lock. The stream fails over; while it resends, the
    second's caller gives up (its write never started, so it is forgotten): the third is
    still resent (cosmic-ray's ``break`` for ``continue``, "answered meanwhile")."""
    first, second = _DeadOnCancel(), _SlowWrites()
    tasks: list[asyncio.Task[Any]] = []

    async def reopen(failed: str) -> tuple[Any, str]:
        tasks[1].cancel()  # waiting for the lock: seen once the resend loop began
        return second, "127.0.0.1:8001"

    s = _open(first, 4, reopen=reopen)
    for k in (1, 2, 3):
        tasks.append(asyncio.create_task(s.submit(_raw(k), timeout_s=30)))
        await _turns()
    first.events.put_nowait(EOF)
    async with asyncio.timeout(GUARD_S):
        while len(second.sent) < 2:
            await asyncio.sleep(0)
    await _turns()
    assert tasks[1].cancelled()
    assert [r.correlation for r in second.sent] == [1, 3] and s.in_flight == 2
    await s.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
