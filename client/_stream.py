"""Many submissions over one ``SubmitStream`` call, each answered by a future.

Theory of operation. ``AsyncLedgerClient.stream()`` opens the call on the current
endpoint (failing over like any call until one node answers with its ``opened`` event,
which says how many submissions the stream may have in flight). ``submit`` waits for a
free slot, sends the transaction with a fresh correlation number and returns a future;
one reader task takes every event off the stream and settles the future of its
correlation: ``final`` with the receipt (verified against genesis as ``submit`` does;
a refusal only with its result proof, ADR 0007), or ``error`` as the typed error the
unary call would raise. An ``error`` from admission control (RESOURCE_EXHAUSTED with
``retry_after_ms``) is not terminal while the hint fits in the request's deadline and
retries are left: the request keeps its slot and is resent after the hint. A slot frees
when its terminal event arrives, which the node sent after freeing it there, so the
client never exceeds the node's in-flight limit.

Failover. When the stream breaks (the node goes down or ends the call, the connection
drops), the reader opens a new stream on the next endpoint (``reopen``: the client's
failover, bounded as any call) and resends every submission still in flight there under
the same correlation; resending is idempotent (a transaction id settles at most once, the
node answers ``ALREADY_PENDING`` or ``ALREADY_COMMITTED`` and then its final), so each
future still gets one outcome. New submissions wait while it reconnects. Only when no
endpoint opens a stream, or ``STREAM_REOPENS_MAX`` reopens in a row bring no answer, do
the futures still open fail with ``UnavailableError`` (``retry_safe``). A node that
stops answering without breaking the connection is caught by each future's deadline
(``timeout_s`` plus the RPC timeout): ``FinalityTimeoutError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from client._errors import (
    BadResponseError,
    BusyError,
    FinalityTimeoutError,
    InvalidTransactionError,
    LedgerError,
    OverloadedError,
    PermissionDeniedError,
    RejectedError,
    UnavailableError,
    with_details,
)
from client._limits import (
    OVERLOAD_JITTER,
    OVERLOAD_RETRIES_MAX,
    OVERLOAD_WAIT_MAX_S,
    STREAM_REOPENS_MAX,
    SUBMIT_TIMEOUT_DEFAULT_S,
)
from client._trades import SignedTransaction
from node.receipt import Receipt
from node.wire import ledger_pb2 as pb
from node.wire.errors import Details

__all__ = ["EOF", "SubmitStream", "overload_wait_s", "stream_error"]

_Code = grpc.StatusCode
_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}
EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]  # the stubs predate it


def overload_wait_s(hint_ms: int, jitter: Callable[[], float] = random.random) -> float:
    """How long to wait after admission control's hint: capped, and stretched by a random
    factor in [1, 1 + OVERLOAD_JITTER] so the refused clients spread their retries."""
    return min(OVERLOAD_WAIT_MAX_S, hint_ms / 1000) * (1 + OVERLOAD_JITTER * jitter())


def stream_error(tid: bytes, error: pb.SubmitStreamError, timeout_s: float) -> LedgerError:
    """The typed error for an ``error`` event: what the unary call's status would raise,
    with the event's structured details (ADR 0020; none from an older node)."""
    return with_details(_stream_error(tid, error, timeout_s), _event_details(error), error.message)


def _event_details(error: pb.SubmitStreamError) -> Details | None:
    if not error.reason:
        return None
    return Details(error.reason, dict(error.metadata), error.retry_after_ms)


def _stream_error(tid: bytes, error: pb.SubmitStreamError, timeout_s: float) -> LedgerError:
    code, message = _BY_NUMBER.get(error.status, _Code.UNKNOWN), error.message
    what = f"submit {tid.hex()}" if tid else "submit"
    if code is _Code.INVALID_ARGUMENT:
        return InvalidTransactionError(f"{what}: refused by the node: {message}")
    if code is _Code.RESOURCE_EXHAUSTED and error.retry_after_ms:
        return OverloadedError(f"{what}: {message}", error.retry_after_ms / 1000)
    if code is _Code.RESOURCE_EXHAUSTED:
        return BusyError(f"{what}: {message}")
    if code is _Code.DEADLINE_EXCEEDED and tid:
        return FinalityTimeoutError(tid, timeout_s)
    if code is _Code.UNAVAILABLE:
        return UnavailableError(what, [message])
    if code is _Code.PERMISSION_DENIED:
        return PermissionDeniedError(f"{what}: {message}")
    return LedgerError(f"{what}: {code.name}: {message}")


@dataclass(slots=True)
class _Pending:
    tid: bytes
    future: asyncio.Future[Receipt]
    timeout_s: float
    request: pb.SubmitStreamRequest  # resent as it is after a failover
    deadline: float  # loop time: an overload retry must be sent before it
    timer: asyncio.TimerHandle | None = None
    retry: asyncio.TimerHandle | None = None  # an overload retry waiting for its hint
    retries: int = 0


# The AsyncLedgerClient's part a stream needs: verify a receipt, fetch a proven one, and
# open a stream on another endpoint than the one at ``address`` (call, address).
Verify = Callable[[pb.Receipt, bytes, bool], Receipt]
Proven = Callable[[bytes, float], Any]
Reopen = Callable[[str], Awaitable[tuple[Any, str]]]
_FAILOVER_CODES = frozenset(
    {_Code.UNAVAILABLE, _Code.DEADLINE_EXCEEDED, _Code.UNKNOWN, _Code.INTERNAL, _Code.CANCELLED}
)


class SubmitStream:
    """One open ``SubmitStream`` call (use ``AsyncLedgerClient.stream()``)."""

    def __init__(
        self,
        call: Any,
        inflight_max: int,
        *,
        address: str,
        prove_result: bool,
        rpc_timeout_s: float,
        verify: Verify,
        proven: Proven,
        reopen: Reopen | None = None,
    ) -> None:
        self._call, self.address, self._reopen = call, address, reopen
        self.inflight_max = inflight_max
        self._prove, self._rpc_timeout_s = prove_result, rpc_timeout_s
        self._verify, self._proven = verify, proven
        self._slots = asyncio.Semaphore(inflight_max)
        self._pending: dict[int, _Pending] = {}
        self._numbers = itertools.count(1)
        self._broken: LedgerError | None = None
        self._ready = asyncio.Event()  # cleared while reconnecting: submissions wait
        self._ready.set()
        self._closing = self._cancelled = False
        self._reopens = 0  # in a row without an answer
        self._reader = asyncio.create_task(self._read())
        self._followups: set[asyncio.Task[None]] = set()
        # gRPC takes one write at a time on a call: a second one started before the first
        # completes fails the call ("INTERNAL: Internal error from Core"), which many
        # concurrent submitters did at a few hundred trades/s.
        self._writing = asyncio.Lock()

    @property
    def in_flight(self) -> int:
        """Submissions sent whose final or error event has not arrived."""
        return len(self._pending)

    async def submit(
        self, stx: SignedTransaction | bytes, *, timeout_s: float = SUBMIT_TIMEOUT_DEFAULT_S
    ) -> asyncio.Future[Receipt]:
        """Send once a slot is free; the future gives the verified receipt once final, or
        raises as ``AsyncLedgerClient.submit`` would (RejectedError, InvalidTransactionError,
        BusyError, FinalityTimeoutError, UnavailableError)."""
        signed = SignedTransaction.ready_to_send(stx)
        await self._slots.acquire()
        await self._ready.wait()
        if self._broken is not None:
            self._slots.release()
            raise self._broken
        loop = asyncio.get_running_loop()
        corr = next(self._numbers)
        req = pb.SubmitStreamRequest(
            correlation=corr,
            transaction=signed.raw,
            want_receipt=True,
            prove_result=self._prove,
            timeout_ms=max(1, math.ceil(timeout_s * 1000)),
        )
        p = _Pending(signed.tx_id, loop.create_future(), timeout_s, req, loop.time() + timeout_s)
        self._pending[corr] = p
        p.timer = loop.call_later(timeout_s + self._rpc_timeout_s, self._expire, p)
        # Registered and written to the same call: if that call breaks meanwhile, the
        # reader resends this request on the next one (it is in _pending already).
        await self._send(self._call, req)
        return p.future

    def _expire(self, p: _Pending) -> None:
        """The node said nothing in time: the slot stays taken until it answers."""
        if not p.future.done():
            p.future.set_exception(FinalityTimeoutError(p.tid, p.timeout_s))

    async def _read(self) -> None:
        errors: list[str] = []
        try:
            while True:
                try:
                    await self._read_call(self._call)
                    if self._closing and not self._pending:
                        return  # half-closed and every submission answered: done
                    errors.append(f"{self.address}: the stream ended")
                except grpc.aio.AioRpcError as e:
                    errors.append(f"{self.address}: {e.code().name} {e.details()}")
                    if self._cancelled or e.code() not in _FAILOVER_CODES:
                        raise UnavailableError("submit stream", errors) from e
                if self._cancelled:
                    return
                await self._reconnect(errors)
        except LedgerError as e:
            self._break(e)
        except Exception as e:  # a bug here must not leave the futures waiting forever
            self._break(LedgerError(f"stream to {self.address} failed: {e!r}"))
            raise

    async def _read_call(self, call: Any) -> None:
        """Handle the events of ``call`` until it ends (returns) or fails (raises)."""
        while True:
            event = await call.read()
            if event is EOF:
                return
            self._on_event(event)

    async def _reconnect(self, errors: list[str]) -> None:
        """Open a stream on the next endpoint and resend what is in flight there."""
        self._reopens += 1
        if self._reopen is None or self._reopens > STREAM_REOPENS_MAX:
            raise UnavailableError("submit stream", errors)
        self._ready.clear()
        try:
            self._call.cancel()
            call, self.address = await self._reopen(self.address)
        finally:
            self._ready.set()  # a break below wakes the waiting submitters too
        self._call = call
        for p in list(self._pending.values()):
            if p.retry is not None:  # a new node: no need to wait the old one's hint
                p.retry.cancel()
                p.retry = None
            await self._send(call, p.request)  # a failure shows in the next read
        if self._closing:
            async with self._writing:
                await _done_writing(call)

    def _on_event(self, event: pb.SubmitStreamEvent) -> None:
        kind = event.WhichOneof("kind")
        if kind == "accepted":
            return
        corr = event.correlation
        p = self._pending.get(corr)
        if p is None or p.retry is not None or kind not in ("final", "error"):
            raise BadResponseError(f"unexpected {kind} event for correlation {corr}")
        self._reopens = 0
        if kind == "error" and self._retry_later(corr, p, event.error):
            return  # the slot stays taken: the request goes again after the hint
        del self._pending[corr]
        self._slots.release()
        if p.timer is not None:
            p.timer.cancel()
        if kind == "error":
            _settle(p.future, stream_error(p.tid, event.error, p.timeout_s))
            return
        try:
            receipt = self._verify(event.final.receipt, p.tid, self._prove)
        except BadResponseError as e:
            _settle(p.future, e)
            return
        if receipt.ok:
            _settle(p.future, receipt)
        elif receipt.result_proof is not None:  # a pending DvP's receipt is no refusal
            _settle(p.future, RejectedError(receipt) if receipt.refused else receipt)
        else:  # a refusal without its proof is one node's word: fetch the proof first
            task = asyncio.create_task(self._prove_refusal(p))
            self._followups.add(task)
            task.add_done_callback(self._followups.discard)

    def _retry_later(self, corr: int, p: _Pending, error: pb.SubmitStreamError) -> bool:
        """Admission control refused ``corr``: schedule its resend after the hint if that
        fits in its deadline and retries are left (True), else let it fail (False)."""
        if error.status != _Code.RESOURCE_EXHAUSTED.value[0] or not error.retry_after_ms:
            return False
        loop = asyncio.get_running_loop()
        wait_s = overload_wait_s(error.retry_after_ms)
        if p.retries >= OVERLOAD_RETRIES_MAX or loop.time() + wait_s >= p.deadline:
            return False
        p.retries += 1
        p.retry = loop.call_later(wait_s, self._resend, corr, p)
        return True

    def _resend(self, corr: int, p: _Pending) -> None:
        p.retry = None
        if self._pending.get(corr) is not p:
            return  # settled or broken meanwhile
        if p.future.done():  # its client-side deadline passed: give the slot back
            del self._pending[corr]
            self._slots.release()
            return
        remaining_s = p.deadline - asyncio.get_running_loop().time()
        p.request.timeout_ms = max(1, math.ceil(remaining_s * 1000))
        task = asyncio.create_task(self._send(self._call, p.request))
        self._followups.add(task)
        task.add_done_callback(self._followups.discard)

    async def _send(self, call: Any, req: pb.SubmitStreamRequest) -> None:
        async with self._writing:
            await _write(call, req)

    async def _prove_refusal(self, p: _Pending) -> None:
        try:
            receipt: Receipt = await self._proven(p.tid, p.timeout_s)
        except LedgerError as e:
            _settle(p.future, e)
            return
        _settle(p.future, RejectedError(receipt) if receipt.refused else receipt)

    def _break(self, err: LedgerError) -> None:
        if self._broken is None:
            self._broken = err
        for p in self._pending.values():
            for handle in (p.timer, p.retry):
                if handle is not None:
                    handle.cancel()
            _settle(p.future, err)
        self._pending.clear()
        # Wake one waiting submitter: it sees the break and releases again, waking the next.
        self._slots.release()

    async def aclose(self) -> None:
        """Half-close, wait for every outstanding final event, then end the call."""
        self._closing = True
        if self._broken is None:
            async with self._writing:
                await _done_writing(self._call)
            await asyncio.wait({self._reader})
        if self._followups:
            await asyncio.wait(self._followups)
        await self.cancel()

    async def cancel(self) -> None:
        """End the call now; futures still open fail with UnavailableError."""
        self._cancelled = True
        self._call.cancel()
        tasks = [self._reader, *self._followups]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._break(UnavailableError(f"stream to {self.address}", ["the stream was closed"]))


_WRITE_ERRORS = (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError)


async def _write(call: Any, req: pb.SubmitStreamRequest) -> None:
    """Write, ignoring a call that failed: the reader sees it fail and resends."""
    with contextlib.suppress(*_WRITE_ERRORS):
        await call.write(req)


async def _done_writing(call: Any) -> None:
    with contextlib.suppress(*_WRITE_ERRORS):
        await call.done_writing()


def _settle(fut: asyncio.Future[Receipt], outcome: Receipt | BaseException) -> None:
    if fut.done():
        return  # the client-side deadline fired first
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)
