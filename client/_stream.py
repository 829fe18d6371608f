"""Many submissions over one ``SubmitStream`` call, each answered by a future.

Theory of operation. ``AsyncLedgerClient.stream()`` opens the call on the current
endpoint (failing over like any call until one node answers with its ``opened`` event,
which says how many submissions the stream may have in flight). ``submit`` waits for a
free slot, sends the transaction with a fresh correlation number and returns a future;
one reader task takes every event off the stream and settles the future of its
correlation: ``final`` with the receipt (verified against genesis as ``submit`` does;
a refusal only with its result proof, ADR 0007), or ``error`` as the typed error the
unary call would raise. A slot frees when its terminal event arrives, which the node sent
after freeing it there, so the client never exceeds the node's in-flight limit.

A stream lives on one node. If it breaks (the node goes down, the connection drops),
every future still open fails with ``UnavailableError`` (``retry_safe``: resubmitting
the same transaction, on a new stream or with ``submit``, settles it at most once) and
the stream refuses further submissions. A node that stops answering is caught by each
future's deadline (``timeout_s`` plus the RPC timeout): ``FinalityTimeoutError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections.abc import Callable
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
    RejectedError,
    UnavailableError,
)
from client._limits import SUBMIT_TIMEOUT_DEFAULT_S
from client._trades import SignedTransaction
from node.receipt import Receipt
from node.wire import ledger_pb2 as pb

__all__ = ["EOF", "SubmitStream", "stream_error"]

_Code = grpc.StatusCode
_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}
EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]  # the stubs predate it


def stream_error(tid: bytes, status: int, message: str, timeout_s: float) -> LedgerError:
    """The typed error for an ``error`` event: what the unary call's status would raise."""
    code = _BY_NUMBER.get(status, _Code.UNKNOWN)
    what = f"submit {tid.hex()}" if tid else "submit"
    if code is _Code.INVALID_ARGUMENT:
        return InvalidTransactionError(f"{what}: refused by the node: {message}")
    if code is _Code.RESOURCE_EXHAUSTED:
        return BusyError(f"{what}: {message}")
    if code is _Code.DEADLINE_EXCEEDED and tid:
        return FinalityTimeoutError(tid, timeout_s)
    if code is _Code.UNAVAILABLE:
        return UnavailableError(what, [message])
    return LedgerError(f"{what}: {code.name}: {message}")


@dataclass(slots=True)
class _Pending:
    tid: bytes
    future: asyncio.Future[Receipt]
    timeout_s: float
    timer: asyncio.TimerHandle | None = None


# The AsyncLedgerClient's part a stream needs: verify a receipt, fetch a proven one.
Verify = Callable[[pb.Receipt, bytes, bool], Receipt]
Proven = Callable[[bytes, float], Any]


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
    ) -> None:
        self._call, self.address = call, address
        self.inflight_max = inflight_max
        self._prove, self._rpc_timeout_s = prove_result, rpc_timeout_s
        self._verify, self._proven = verify, proven
        self._slots = asyncio.Semaphore(inflight_max)
        self._pending: dict[int, _Pending] = {}
        self._numbers = itertools.count(1)
        self._broken: LedgerError | None = None
        self._reader = asyncio.create_task(self._read())
        self._followups: set[asyncio.Task[None]] = set()

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
        signed = stx if isinstance(stx, SignedTransaction) else SignedTransaction(bytes(stx))
        missing = signed.missing_signers()
        if missing:
            raise InvalidTransactionError(
                f"transaction {signed.tx_id.hex()} still needs the signature of "
                f"{', '.join(missing)}; sign it first (nothing was sent)"
            )
        await self._slots.acquire()
        if self._broken is not None:
            self._slots.release()
            raise self._broken
        loop = asyncio.get_running_loop()
        corr = next(self._numbers)
        p = _Pending(signed.tx_id, loop.create_future(), timeout_s)
        self._pending[corr] = p
        req = pb.SubmitStreamRequest(
            correlation=corr,
            transaction=signed.raw,
            want_receipt=True,
            prove_result=self._prove,
            timeout_ms=max(1, math.ceil(timeout_s * 1000)),
        )
        p.timer = loop.call_later(timeout_s + self._rpc_timeout_s, self._expire, p)
        try:
            await self._call.write(req)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as e:
            self._break(UnavailableError(f"stream to {self.address}", [str(e)]))
        return p.future

    def _expire(self, p: _Pending) -> None:
        """The node said nothing in time: the slot stays taken until it answers."""
        if not p.future.done():
            p.future.set_exception(FinalityTimeoutError(p.tid, p.timeout_s))

    async def _read(self) -> None:
        try:
            while True:
                event = await self._call.read()
                if event is EOF:
                    raise UnavailableError(f"stream to {self.address}", ["the stream ended"])
                self._on_event(event)
        except grpc.aio.AioRpcError as e:
            why = f"{e.code().name}: {e.details()}"
            self._break(UnavailableError(f"stream to {self.address}", [why]))
        except LedgerError as e:
            self._break(e)
        except Exception as e:  # a bug here must not leave the futures waiting forever
            self._break(LedgerError(f"stream to {self.address} failed: {e!r}"))
            raise

    def _on_event(self, event: pb.SubmitStreamEvent) -> None:
        kind = event.WhichOneof("kind")
        if kind == "accepted":
            return
        p = self._pending.pop(event.correlation, None)
        if p is None or kind not in ("final", "error"):
            raise BadResponseError(f"unexpected {kind} event for correlation {event.correlation}")
        self._slots.release()
        if p.timer is not None:
            p.timer.cancel()
        if kind == "error":
            err = stream_error(p.tid, event.error.status, event.error.message, p.timeout_s)
            _settle(p.future, err)
            return
        try:
            receipt = self._verify(event.final.receipt, p.tid, self._prove)
        except BadResponseError as e:
            _settle(p.future, e)
            return
        if receipt.ok:
            _settle(p.future, receipt)
        elif receipt.result_proof is not None:
            _settle(p.future, RejectedError(receipt))
        else:  # a refusal without its proof is one node's word: fetch the proof first
            task = asyncio.create_task(self._prove_refusal(p))
            self._followups.add(task)
            task.add_done_callback(self._followups.discard)

    async def _prove_refusal(self, p: _Pending) -> None:
        try:
            receipt: Receipt = await self._proven(p.tid, p.timeout_s)
        except LedgerError as e:
            _settle(p.future, e)
            return
        _settle(p.future, receipt if receipt.ok else RejectedError(receipt))

    def _break(self, err: LedgerError) -> None:
        if self._broken is None:
            self._broken = err
        for p in self._pending.values():
            if p.timer is not None:
                p.timer.cancel()
            _settle(p.future, err)
        self._pending.clear()
        # Wake one waiting submitter: it sees the break and releases again, waking the next.
        self._slots.release()

    async def aclose(self) -> None:
        """Half-close, wait for every outstanding final event, then end the call."""
        if self._broken is None:
            with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError):
                await self._call.done_writing()
            await asyncio.wait({self._reader})
        if self._followups:
            await asyncio.wait(self._followups)
        await self.cancel()

    async def cancel(self) -> None:
        """End the call now; futures still open fail with UnavailableError."""
        self._call.cancel()
        tasks = [self._reader, *self._followups]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._break(UnavailableError(f"stream to {self.address}", ["the stream was closed"]))


def _settle(fut: asyncio.Future[Receipt], outcome: Receipt | BaseException) -> None:
    if fut.done():
        return  # the client-side deadline fired first
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)
