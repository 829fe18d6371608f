"""The submit path shared by ``Submit`` and ``SubmitStream``, and one stream's state.

Theory of operation. ``offer`` is the one statement of what a client's submission goes
through (size, halted, admission control against the client's deadline, the admission
precheck, the mempool, the durable intake log) and what each refusal says; the unary
``Submit`` turns a refusal into the call's status with its details (reason, metadata,
admission control's hint: ADR 0020), a stream into an ``error`` event with the same
status code, message, reason, metadata and hint.

A ``SubmitSession`` serves one ``SubmitStream`` call. Its reader (``read``) takes each
request in turn: a request that may not take an in-flight slot (a correlation already in
flight, the stream's limit reached, its connection out of finality waits) is answered at
once with an ``error`` event; otherwise it takes a slot and one finality-wait share of its
connection, and a task offers it, sends ``accepted``, waits for finality (``Node.wait_for``,
so the node-wide waiter limit holds too) and sends ``final`` (or ``error``). The writer
(``events``) hands queued events to gRPC one at a time and frees a request's slot only
as its terminal event leaves the queue for gRPC. So a client that stops reading stops freeing
slots: its further requests are refused for the in-flight limit, and once
``SUBMIT_STREAM_ERRORS_QUEUED_MAX`` such refusals wait to be sent, the reader stops
reading requests (HTTP/2 flow control then holds the client's sends). The queue never
holds more than two events per slot plus that many refusals, and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc

from node.config import (
    ADMISSION_DEADLINE_DEFAULT_MS,
    SUBMIT_STREAM_ERRORS_QUEUED_MAX,
    TX_BYTES_MAX,
    WAIT_TIMEOUT_DEFAULT_MS,
    WAIT_TIMEOUT_MAX_MS,
)
from node.core.mempool import AddResult
from node.invariant import InvariantError
from node.runtime._logs import event
from node.runtime._metrics import Metrics
from node.runtime._node import Node, NodeHaltedError, TooManyWaitersError
from node.runtime._shares import Shares
from node.settlement import DecodeError, ResultCode, SignedTx
from node.wire import ledger_pb2 as pb
from node.wire.errors import Details, Reason

__all__ = [
    "Refusal",
    "SubmitSession",
    "admission_deadline_ms",
    "limit_reached",
    "not_final",
    "offer",
    "wait_timeout_ms",
]

_Code = grpc.StatusCode
# Whether the stream's caller may read the outcome of a transaction (its raw bytes, and the
# height of the block that holds it if committed): the handler binds
# node.access.may_read_tx to the verified caller and the registry.
MayRead = Callable[[bytes, int | None], bool]
_REFUSAL = -1  # in the queue: this event refuses a request that took no slot


@dataclass(frozen=True, slots=True)
class Refusal:
    """A submission the node did not take, as the unary call answers it."""

    status: grpc.StatusCode
    reason: Reason
    message: str
    tx_id: bytes = b""  # empty when the bytes were not even hashed (oversize)
    retry_after_ms: int = 0  # admission control's hint (RESOURCE_EXHAUSTED), 0 for none
    metadata: tuple[tuple[str, str], ...] = ()

    def details(self) -> Details:
        """Its structured details: the metadata, and the transaction id when known."""
        meta = dict(self.metadata)
        if self.tx_id:
            meta["tx_id"] = self.tx_id.hex()
        return Details(self.reason, meta, self.retry_after_ms)


async def offer(
    node: Node, raw: bytes, deadline_ms: int = ADMISSION_DEADLINE_DEFAULT_MS
) -> tuple[bytes, pb.SubmitOutcome] | Refusal:
    """Check and submit a client's transaction that must settle within ``deadline_ms``:
    (tx id, outcome) once durable (ADR 0006), else why not."""
    if node.halted is not None:
        return Refusal(_Code.UNAVAILABLE, Reason.NODE_HALTED, f"node halted: {node.halted}")
    if len(raw) > TX_BYTES_MAX:
        return Refusal(
            _Code.INVALID_ARGUMENT,
            Reason.TRANSACTION_TOO_LARGE,
            f"transaction of {len(raw)} bytes exceeds the limit of {TX_BYTES_MAX}",
            metadata=(("limit", str(TX_BYTES_MAX)),),
        )
    overloaded = _overloaded(node, raw, deadline_ms)
    if overloaded is not None:
        return overloaded
    check = node.admission(raw)
    tid = check.tx_id
    if check.code is not ResultCode.OK:
        if node.store.tx_record(tid) is not None:
            # Committed: its one outcome, whatever the precheck says of it by now (expired,
            # past its deadline, a key rotated out): a resubmit is always safe (review 35a).
            return tid, pb.ALREADY_COMMITTED
        return Refusal(
            _Code.INVALID_ARGUMENT,
            Reason.TRANSACTION_REFUSED,
            f"{check.code.name}: {check.code.meaning}",
            tid,
            metadata=(("result_code", check.code.name),),
        )
    try:
        result = await node.submit(raw, tid)
    except NodeHaltedError as e:
        return Refusal(_Code.UNAVAILABLE, Reason.NODE_HALTED, str(e), tid)
    if result is AddResult.FULL:
        node.metrics.admission_refused.labels(reason="full").inc()
        return Refusal(
            _Code.RESOURCE_EXHAUSTED,
            Reason.MEMPOOL_FULL,
            "mempool full: the validators are saturated, retry with backoff",
            tid,
        )
    if result is AddResult.TOO_LARGE:  # pragma: no cover - checked above
        return Refusal(
            _Code.INVALID_ARGUMENT, Reason.TRANSACTION_TOO_LARGE, "transaction too large", tid
        )
    if result is AddResult.ACCEPTED:
        return tid, pb.ACCEPTED
    if node.store.tx_record(tid) is not None:
        return tid, pb.ALREADY_COMMITTED
    return tid, pb.ALREADY_PENDING


def _overloaded(node: Node, raw: bytes, deadline_ms: int) -> Refusal | None:
    """Admission control (node/runtime/_admission.py): refuse, before the signatures are
    checked (so shedding load costs little) and before any durable write, a transaction
    this node cannot settle within ``deadline_ms`` on top of what it holds. One it holds or
    has committed already is let through: its answer (ALREADY_...) costs nothing to give."""
    try:
        tid = SignedTx.decode(raw).tx_id
    except DecodeError:
        return None  # the precheck refuses it as MALFORMED
    mempool = node.replica.mempool
    if mempool.contains(raw) or node.store.tx_record(tid) is not None:
        return None
    load, backlog = node.load, len(mempool)
    verdict = load.check(backlog, deadline_ms, node.clock_ms())
    node.metrics.admission_settle_ms.set(load.settle_ms(backlog))
    node.metrics.admission_rate.set(load.rate_tps)
    if verdict is None:
        return None
    node.metrics.admission_refused.labels(reason="deadline").inc()
    return Refusal(
        _Code.RESOURCE_EXHAUSTED, Reason.OVERLOADED, verdict.message(), tid, verdict.retry_after_ms
    )


def admission_deadline_ms(requested_ms: int) -> int:
    """The deadline admission control judges by: the client's, else the default; capped
    as a finality wait is (a longer one buys no more than the longest wait)."""
    return min(requested_ms or ADMISSION_DEADLINE_DEFAULT_MS, WAIT_TIMEOUT_MAX_MS)


def wait_timeout_ms(requested_ms: int) -> int:
    """A finality wait's length: the default for 0, capped by the node."""
    return min(requested_ms or WAIT_TIMEOUT_DEFAULT_MS, WAIT_TIMEOUT_MAX_MS)


def node_stopped(node: Node, tid: bytes) -> Refusal:
    """A finality wait the node ended (shutdown or halt: ``Node.stop``): ask another."""
    why = node.halted or "the node is shutting down"
    return Refusal(_Code.UNAVAILABLE, Reason.NODE_STOPPED, f"node stopped: {why}", tid)


def not_final(tid: bytes, timeout_ms: int) -> Refusal:
    """A finality wait that ended first (DEADLINE_EXCEEDED)."""
    message = (
        f"transaction {tid.hex()} not committed within {timeout_ms} ms; "
        "waiting again or resubmitting the same bytes is safe"
    )
    meta = (("timeout_ms", str(timeout_ms)),)
    return Refusal(_Code.DEADLINE_EXCEEDED, Reason.NOT_FINAL, message, tid, metadata=meta)


def limit_reached(what: str, message: str, tid: bytes = b"") -> Refusal:
    """A call or wait limit (RESOURCE_EXHAUSTED); ``what`` names the limit."""
    meta = (("limit", what),)
    return Refusal(_Code.RESOURCE_EXHAUSTED, Reason.LIMIT_REACHED, message, tid, metadata=meta)


def _not_a_party(participant: str, tid: bytes) -> Refusal:
    return Refusal(
        _Code.PERMISSION_DENIED,
        Reason.NOT_PERMITTED,
        f"{participant} is not a party to transaction {tid.hex()}: it was accepted; only its "
        "parties (and observers) read its outcome",
        tid,
        metadata=(("what", "transaction"), ("caller", participant)),
    )


def _internal_error(e: Exception, tid: bytes) -> Refusal:
    what = "it was accepted; ask WaitForFinality for its outcome" if tid else "it was not accepted"
    return Refusal(
        _Code.INTERNAL,
        Reason.INTERNAL_ERROR,
        f"the node failed on this request ({type(e).__name__}, in its log): {what}",
        tid,
    )


def _error(corr: int, refusal: Refusal) -> pb.SubmitStreamEvent:
    d = refusal.details()
    error = pb.SubmitStreamError(
        status=refusal.status.value[0],
        message=refusal.message,
        retry_after_ms=d.retry_after_ms,
        reason=d.reason,
        metadata=d.metadata,
    )
    return pb.SubmitStreamEvent(correlation=corr, tx_id=refusal.tx_id, error=error)


class SubmitSession:
    """One ``SubmitStream`` call: its requests in flight and its queue of events."""

    def __init__(
        self,
        node: Node,
        waits: Shares,
        connection: str,
        inflight_max: int,
        metrics: Metrics,
        *,
        caller: str,
        may_read: MayRead,
    ) -> None:
        self._node, self._waits, self._connection = node, waits, connection
        self._caller, self._may_read = caller, may_read
        self._gauge = metrics.stream_inflight
        self.inflight_max = inflight_max
        self.inflight: dict[int, asyncio.Task[None]] = {}  # correlation -> its task
        # (event, what writing it settles): a correlation whose slot then frees, _REFUSAL
        # for a request refused without a slot, None for `accepted`
        self._queue: deque[tuple[pb.SubmitStreamEvent, int | None]] = deque()
        self._refusals_queued = 0
        self._wake = asyncio.Event()  # the writer: an event queued, or the reader ended
        self._room = asyncio.Event()  # the reader: refusals were sent
        self._reading = True
        self._reader_error: BaseException | None = None
        self.closed = False

    # --- the reader ----------------------------------------------------------------------

    async def read(self, requests: AsyncIterator[pb.SubmitStreamRequest]) -> None:
        """Take every request until the client half-closes the stream."""
        try:
            async for req in requests:
                self.take(req)
                while self._refusals_queued >= SUBMIT_STREAM_ERRORS_QUEUED_MAX:
                    self._room.clear()
                    await self._room.wait()  # the client is not reading: stop reading too
        except Exception as e:  # a request that does not parse: ``events`` ends the call
            self._reader_error = e
        finally:
            self._reading = False
            self._wake.set()

    def take(self, req: pb.SubmitStreamRequest) -> None:
        """Start ``req`` in a slot, or queue its refusal."""
        corr = req.correlation
        why = self._slot_refusal(corr)
        if why is not None:
            self._refusals_queued += 1
            self._push(_error(corr, why), _REFUSAL)
            return
        self._waits.take(self._connection)
        self._gauge.inc()
        self.inflight[corr] = asyncio.create_task(self._settle(corr, req))

    def _slot_refusal(self, corr: int) -> Refusal | None:
        if corr in self.inflight:
            return Refusal(
                _Code.INVALID_ARGUMENT,
                Reason.CORRELATION_IN_FLIGHT,
                f"correlation {corr} is in flight on this stream already; "
                "give each request its own until its final or error event",
                metadata=(("correlation", str(corr)),),
            )
        if len(self.inflight) >= self.inflight_max:
            return limit_reached(
                "stream in flight",
                f"this stream has {len(self.inflight)} submissions in flight, its limit: "
                "read their final or error events before sending more (a slot frees when "
                "its last event is sent), or open another stream",
            )
        why = self._waits.refusal(self._connection)
        return None if why is None else limit_reached(self._waits.what, why)

    async def _settle(self, corr: int, req: pb.SubmitStreamRequest) -> None:
        """Offer, report acceptance, wait for finality, report it: one terminal event."""
        tid = b""
        try:
            deadline_ms = admission_deadline_ms(req.timeout_ms)
            offered = await offer(self._node, req.transaction, deadline_ms)
            if isinstance(offered, Refusal):
                self._push(_error(corr, offered), corr)
                return
            tid, outcome = offered
            self._push(pb.SubmitStreamEvent(correlation=corr, tx_id=tid, accepted=outcome), None)
            if not self._readable(req.transaction, tid):
                # Its signatures authorized the submission; its outcome is for its parties,
                # as WaitForFinality answers (docs/cluster.md "Security: who reads what"):
                # refused now, so a non-party holds no wait and learns no time of finality.
                self._push(_error(corr, _not_a_party(self._caller, tid)), corr)
                return
            final = await self._final(corr, tid, req)
            if final.HasField("final") and not self._readable(req.transaction, tid):
                # The wait may have outlasted the caller's role (review 21): a demoted
                # auditor waiting on another's trade is not sent its outcome.
                final = _error(corr, _not_a_party(self._caller, tid))
            self._push(final, corr)
        except asyncio.CancelledError:
            if self.closed:
                raise
            # The node stopped and cancelled its waits (shutdown or halt): say so.
            self._push(_error(corr, node_stopped(self._node, tid)), corr)
        except Exception as e:  # a bug below: this request says so, the call and the rest go on
            event("stream_request_failed", logging.ERROR, exc=e, correlation=corr)
            self._push(_error(corr, _internal_error(e, tid)), corr)

    def _readable(self, raw: bytes, tid: bytes) -> bool:
        """Whether this stream's caller, as it is now, may read ``raw``'s outcome."""
        record = self._node.store.tx_record(tid)
        return self._may_read(raw, None if record is None else record.height)

    async def _final(
        self, corr: int, tid: bytes, req: pb.SubmitStreamRequest
    ) -> pb.SubmitStreamEvent:
        timeout_ms = wait_timeout_ms(req.timeout_ms)
        try:
            receipt = await self._node.wait_for(
                tid, timeout_ms / 1000, prove_result=req.prove_result
            )
        except TooManyWaitersError as e:
            return _error(corr, limit_reached("finality waits", f"{e}; retry later", tid))
        except TimeoutError:
            return _error(corr, not_final(tid, timeout_ms))
        final = pb.SubmitStreamFinal(
            code=int(receipt.code),  # type: ignore[arg-type]
            height=receipt.height,
            position=receipt.position,
            receipt=receipt.to_pb() if req.want_receipt else None,
        )
        return pb.SubmitStreamEvent(correlation=corr, tx_id=tid, final=final)

    # --- the writer ----------------------------------------------------------------------

    def _push(self, event: pb.SubmitStreamEvent, frees: int | None) -> None:
        self._queue.append((event, frees))
        self._wake.set()

    async def events(self) -> AsyncIterator[pb.SubmitStreamEvent]:
        """Every queued event in order; ends once the client half-closed and every
        request has had its terminal event."""
        while True:
            while self._queue:
                event, frees = self._queue.popleft()
                # Freed before gRPC sends it: the client may act on the event (send the
                # next request) before this generator resumes after the send.
                self._written(frees)
                yield event  # returns once gRPC took it (flow control: the client reads)
            if self._reader_error is not None:
                raise self._reader_error
            if not self._reading and not self.inflight:
                return
            self._wake.clear()
            await self._wake.wait()

    def _written(self, frees: int | None) -> None:
        if frees is None:
            return
        if frees == _REFUSAL:
            self._refusals_queued -= 1
            self._room.set()
            return
        if self.inflight.pop(frees, None) is None:
            raise InvariantError(f"correlation {frees} freed twice")
        self._waits.give_back(self._connection)
        self._gauge.dec()

    def close(self) -> None:
        """The call ended (done, cancelled by the client, or the server stopping): cancel
        what is in flight and give back its shares."""
        self.closed = True
        for task in self.inflight.values():
            task.cancel()
        for _ in self.inflight:
            self._waits.give_back(self._connection)
        self._gauge.dec(len(self.inflight))
        self.inflight.clear()
        self._queue.clear()
