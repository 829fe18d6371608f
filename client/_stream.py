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
the futures still open fail with ``UnavailableError`` (``retry_safe``).

A node leaves the stream in two more ways. It answers a request ``UNAVAILABLE`` (it is
stopping or halted, ``NODE_STOPPED`` or ``NODE_HALTED``): that request stays in flight and
the stream fails over at once. Or it breaks its promise to answer every request within
the request's ``timeout_ms`` (at the latest ``NOT_FINAL``): a request with no final or
error event within ``timeout_s`` plus the RPC timeout fails with ``FinalityTimeoutError``,
and the stream fails over (a paused node, one that stopped reading, a hostile one). A
request whose future is already settled is not resent: its slot frees instead. So no
``submit`` waits past its deadline for long (a slot, a reconnect, a write), and leaving
the stream ends by the latest deadline plus the RPC timeout.

Closing. ``cancel()`` (and ``aclose()`` past the latest deadline) fails what is still open
with ``ClosedError``; so does closing the client, whose channel the call runs on: the
stream then reopens on no other node (review 34s: it opened a new channel of the closed
client and its submissions waited there for their deadlines).
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
    ClosedError,
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
    code, message = _BY_NUMBER.get(error.status), error.message
    what = f"submit {tid.hex()}" if tid else "submit"
    if code is None or code is _Code.OK:
        return BadResponseError(f"{what}: an error event with status {error.status}: {message}")
    if code in (_Code.INTERNAL, _Code.UNKNOWN):  # the node failed on it (INTERNAL_ERROR)
        return UnavailableError(what, [f"{code.name}: {message}"])
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
    written: bool = False  # its write started on some call: a node may answer it


# The AsyncLedgerClient's part a stream needs: verify a receipt, fetch a proven one, open
# a stream on another endpoint than the one at ``address`` (call, address), and submit
# signed bytes one node refused through another endpoint than ``address`` (its receipt).
Verify = Callable[[pb.Receipt, bytes, bool], Receipt]
Proven = Callable[[bytes, float], Any]
Reopen = Callable[[str], Awaitable[tuple[Any, str]]]
Second = Callable[[bytes, str, float], Awaitable[Receipt]]
_Ask = Callable[["_Pending", float], Awaitable[Receipt]]  # p's outcome within the time left
_FAILOVER_CODES = frozenset(
    {_Code.UNAVAILABLE, _Code.DEADLINE_EXCEEDED, _Code.UNKNOWN, _Code.INTERNAL, _Code.CANCELLED}
)
# What a node answers one request with (node/runtime/_stream.py): its precheck's refusals,
# which another node is asked about, and the statuses stream_error types. Any other status
# is no answer: the request stays in flight and the stream leaves the node.
_REFUSALS = frozenset({_Code.INVALID_ARGUMENT, _Code.PERMISSION_DENIED})
_ANSWERS = _REFUSALS | {
    _Code.RESOURCE_EXHAUSTED,
    _Code.DEADLINE_EXCEEDED,
    _Code.UNAVAILABLE,
    _Code.INTERNAL,
    _Code.UNKNOWN,
}


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
        second: Second | None = None,
    ) -> None:
        self._call, self.address, self._reopen = call, address, reopen
        self._second = second
        self.inflight_max = inflight_max
        self._prove, self._rpc_timeout_s = prove_result, rpc_timeout_s
        self._verify, self._proven = verify, proven
        self._slots = asyncio.Semaphore(inflight_max)
        self._pending: dict[int, _Pending] = {}
        self._numbers = itertools.count(1)
        self._broken: LedgerError | None = None
        self._ready = asyncio.Event()  # cleared while reconnecting: submissions wait
        self._ready.set()
        self._leave = asyncio.Event()  # set: fail over now (why: _leave_reason)
        self._leave_reason = ""
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
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout_s + self._rpc_timeout_s)
        except TimeoutError:
            raise BusyError(
                f"submit: all {self.inflight_max} of the stream's slots stayed in flight for "
                f"{timeout_s + self._rpc_timeout_s:g} s; resubmit later"
            ) from None
        try:
            await self._ready.wait()
        except BaseException:  # the caller gave up (cancelled) while we reconnected
            self._slots.release()
            raise
        if self._broken is not None:
            self._slots.release()
            # One error object for every later submit: raised afresh, or its traceback grew
            # by this call's frames with each (review 34s's leftover).
            raise self._broken.with_traceback(None)
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
        p.timer = loop.call_later(timeout_s + self._rpc_timeout_s, self._expire, corr, p)
        # Registered and written to the same call: if that call breaks meanwhile, the
        # reader resends this request on the next one (it is in _pending already). A write
        # still blocked at the deadline (a node that stopped reading) is given up: the
        # expiry has failed the stream over, and the request goes on the next call.
        try:
            await asyncio.wait_for(self._send(self._call, p), timeout_s + self._rpc_timeout_s)
        except TimeoutError:
            pass
        except BaseException:  # the caller gave up: a request no node got frees its slot
            if not p.written and self._pending.get(corr) is p:
                self._forget(corr, p)
            raise
        return p.future

    def _expire(self, corr: int, p: _Pending) -> None:
        """No terminal event in time: the future fails. If the request is still in flight,
        its node broke its promise to answer within ``timeout_ms``: fail over."""
        _settle(p.future, FinalityTimeoutError(p.tid, p.timeout_s))
        if self._pending.get(corr) is p and p.retry is None and self._ready.is_set():
            waited_s = p.timeout_s + self._rpc_timeout_s
            self._fail_over(f"{self.address}: no answer to a request in {waited_s:g} s")

    def _fail_over(self, reason: str) -> None:
        """Leave this stream's node for the next one (the reader does it)."""
        if not self._leave.is_set():
            self._leave_reason = reason
            self._leave.set()

    def _forget(self, corr: int, p: _Pending) -> None:
        """``corr`` leaves the stream unanswered: its slot frees and its timers stop."""
        del self._pending[corr]
        self._slots.release()
        for handle in (p.timer, p.retry):
            if handle is not None:
                handle.cancel()

    async def _read(self) -> None:
        errors: list[str] = []
        try:
            while True:
                try:
                    if not await self._read_call(self._call):
                        errors.append(self._leave_reason)
                    elif self._closing and not self._pending:
                        return  # half-closed and every submission answered: done
                    else:
                        errors.append(f"{self.address}: the stream ended")
                except grpc.aio.AioRpcError as e:
                    errors.append(f"{self.address}: {e.code().name} {e.details()}")
                    if self._cancelled or e.code() not in _FAILOVER_CODES:
                        raise UnavailableError("submit stream", errors) from e
                except BadResponseError as e:
                    # An event refused unparsed (client/_answers.py): its node's fault, so
                    # what is in flight goes to the next node, as for a nonsense event.
                    errors.append(f"{self.address}: {e}")
                if self._cancelled:
                    return
                await self._reconnect(errors)
        except LedgerError as e:
            self._break(e)
        except Exception as e:  # a bug here must not leave the futures waiting forever
            self._break(LedgerError(f"stream to {self.address} failed: {e!r}"))
            raise

    async def _read_call(self, call: Any) -> bool:
        """Handle the events of ``call`` until it ends (True), the stream must leave its
        node (False), or it fails (raises)."""
        reading = asyncio.ensure_future(self._read_events(call))
        leaving = asyncio.ensure_future(self._leave.wait())
        try:
            await asyncio.wait({reading, leaving}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            leaving.cancel()
            if not reading.done():
                reading.cancel()
        if reading.done() and not reading.cancelled():
            reading.result()  # raises what it failed with
            return True
        return False

    async def _read_events(self, call: Any) -> None:
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
        self._leave.clear()  # a reason to leave the next node comes from the next node
        for p in self._pending.values():
            if p.retry is not None:  # a new node: no need to wait the old one's hint
                p.retry.cancel()
                p.retry = None
        try:
            self._call.cancel()
            call, self.address = await self._reopen(self.address)
        finally:
            self._ready.set()  # a break below wakes the waiting submitters too
        self._call = call
        for corr, p in list(self._pending.items()):
            if self._pending.get(corr) is not p:
                continue  # answered meanwhile
            if p.future.done():  # past its deadline: nobody waits for its outcome
                self._forget(corr, p)
                continue
            _left_in(p)  # the next node's promise: an answer by the deadline
            await self._send(call, p)  # a failure shows in the next read
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
            # The node's fault, not the stream's: leave it, and what is in flight goes to
            # the next node. Raising here failed every request in flight and kept the
            # client on that node, so each new stream broke there again (review 32).
            self._fail_over(f"{self.address}: unexpected {kind} event for correlation {corr}")
            return
        code = _BY_NUMBER.get(event.error.status) if kind == "error" else None
        if kind == "error" and (code is _Code.UNAVAILABLE or code not in _ANSWERS):
            # Its node is stopping or halted (NODE_STOPPED, NODE_HALTED), or says what no
            # node says (a hostile one: session 26's review); the request did not fail: it
            # stays in flight and goes to the next node.
            self._fail_over(f"{self.address}: {event.error.message}")
            return
        self._reopens = 0
        if kind == "error" and self._retry_later(corr, p, event.error):
            return  # the slot stays taken: the request goes again after the hint
        del self._pending[corr]
        self._slots.release()
        if kind == "error":
            if code in _REFUSALS and self._second is not None:
                # One node's refusal, as for the unary submit: another node is asked.
                self._follow_up(p, self._ask_another)
                return
            _stop_timer(p)
            _settle(p.future, stream_error(p.tid, event.error, p.timeout_s))
            if code is _Code.DEADLINE_EXCEEDED:
                # Not final by its deadline: the stream leaves the node, as for no answer,
                # so one that accepts and never finalizes cannot keep it (session 29).
                self._fail_over(f"{self.address}: a request not final by its deadline")
            return
        try:
            receipt = self._verify(event.final.receipt, p.tid, self._prove)
        except BadResponseError:
            self._follow_up(p, self._ask_proof)  # one node's bad receipt: ask the nodes
            return
        if receipt.ok or receipt.result_proof is not None:  # (a pending DvP's: no refusal)
            _stop_timer(p)
            _settle(p.future, RejectedError(receipt) if receipt.refused else receipt)
        else:  # a refusal without its proof is one node's word: fetch the proof first
            self._follow_up(p, self._ask_proof)

    async def _ask_proof(self, p: _Pending, left_s: float) -> Receipt:
        receipt: Receipt = await self._proven(p.tid, left_s)
        return receipt

    async def _ask_another(self, p: _Pending, left_s: float) -> Receipt:
        assert self._second is not None  # only asked with a second opinion to ask
        return await self._second(p.request.transaction, self.address, left_s)

    def _follow_up(self, p: _Pending, ask: _Ask) -> None:
        task = asyncio.create_task(self._proven_outcome(p, ask))
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
            self._forget(corr, p)
            return
        _left_in(p)
        task = asyncio.create_task(self._send(self._call, p))
        self._followups.add(task)
        task.add_done_callback(self._followups.discard)

    async def _send(self, call: Any, p: _Pending) -> None:
        async with self._writing:
            p.written = True
            await _write(call, p.request)

    async def _proven_outcome(self, p: _Pending, ask: _Ask) -> None:
        """``p``'s outcome as the nodes prove it (``ask``: the client's receipt fetch, or its
        submit through another node, failing over), by its deadline (its timer still runs):
        after one node's unproven refusal, precheck refusal or bad receipt."""
        remaining_s = p.deadline - asyncio.get_running_loop().time()
        outcome: Receipt | LedgerError
        if remaining_s <= 0:  # past its deadline: no time to ask anyone (session 29's review)
            _stop_timer(p)
            _settle(p.future, FinalityTimeoutError(p.tid, p.timeout_s))
            return
        try:
            receipt = await ask(p, remaining_s)
        except LedgerError as e:
            outcome = e
        except asyncio.CancelledError:  # the stream was cancelled: no outcome, say so
            _settle(p.future, self._closed_error())
            _stop_timer(p)
            raise
        except Exception as e:  # a bug below must not leave the future open for ever
            outcome = LedgerError(f"submit {p.tid.hex()}: asking the nodes failed: {e!r}")
        else:
            outcome = RejectedError(receipt) if receipt.refused else receipt
        _stop_timer(p)
        _settle(p.future, outcome)

    def _closed_error(self) -> ClosedError:
        return ClosedError(f"submit stream to {self.address}", "the stream was closed")

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
        """Half-close, wait for every outstanding final event (by the latest deadline plus
        the RPC timeout at most), then end the call. A caller that gives up the wait
        (cancelled) ends it at once, as ``cancel()``: the call stayed open, its node's
        slot taken, until every deadline passed (review 34s)."""
        self._closing = True
        loop = asyncio.get_running_loop()
        latest = max((p.deadline for p in self._pending.values()), default=loop.time())
        until = latest + self._rpc_timeout_s
        try:
            if self._broken is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._half_close(), max(0.0, until - loop.time()))
                await asyncio.wait({self._reader}, timeout=max(0.0, until - loop.time()))
            if self._followups:
                await asyncio.wait(self._followups, timeout=max(0.0, until - loop.time()))
        finally:
            await self.cancel()

    async def _half_close(self) -> None:
        async with self._writing:
            await _done_writing(self._call)

    async def cancel(self) -> None:
        """End the call now; futures still open fail with ClosedError (an
        UnavailableError that says the stream was closed, not that the nodes are down)."""
        self._cancelled = True
        self._call.cancel()
        tasks = [self._reader, *self._followups]
        for t in tasks:
            t.cancel()
        # Settled before the wait, which a second cancellation of the caller may end: the
        # futures stayed open until their deadlines then (review 34s).
        self._break(self._closed_error())
        await asyncio.gather(*tasks, return_exceptions=True)


_WRITE_ERRORS = (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError)


async def _write(call: Any, req: pb.SubmitStreamRequest) -> None:
    """Write, ignoring a call that failed: the reader sees it fail and resends."""
    with contextlib.suppress(*_WRITE_ERRORS):
        await call.write(req)


async def _done_writing(call: Any) -> None:
    with contextlib.suppress(*_WRITE_ERRORS):
        await call.done_writing()


def _left_in(p: _Pending) -> None:
    """``p``'s request asks for what is left of its deadline (a resend)."""
    remaining_s = p.deadline - asyncio.get_running_loop().time()
    p.request.timeout_ms = max(1, math.ceil(remaining_s * 1000))


def _stop_timer(p: _Pending) -> None:
    if p.timer is not None:
        p.timer.cancel()


def _settle(fut: asyncio.Future[Receipt], outcome: Receipt | BaseException) -> None:
    if fut.done():
        return  # the client-side deadline fired first
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)
