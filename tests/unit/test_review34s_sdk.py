"""The SDK under a demanding concurrent program (review 34s): one async client shared by
many tasks and closed while they are in calls, a sync client shared by threads and closed
from another one. Each test failed on the code before its fix. The nodes are real TLS gRPC
servers (tests/liar_server.py) whose calls park, so a call is truly in flight when the
client closes; the sync tests fake the async client under ``LedgerClient``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from client import (
    BusyError,
    ClosedError,
    Endpoint,
    LedgerClient,
    UnavailableError,
)
from client._limits import BUSY_RETRIES_MAX, FAILOVER_ROUNDS_MAX
from node.wire import ledger_pb2 as pb
from tests.ledger_helpers import pinned_tls, shared_net
from tests.liar_server import Answer, Liars
from tests.unit.test_client_stream import _Call, _final, _plain_signed, _raw, _stream
from tests.unit.test_client_stream_hostile import NOT_DONE, _done_within

__all__ = ["_plain_signed"]  # the fixture: raw bytes stand for signed transactions

GUARD_S = 10.0  # a guard against a hang, far beyond what any step here takes
HANG_S = 3.0  # a thread's call that takes this long is parked: the test fails, not hangs
STATUS = pb.NodeStatus(height=3).SerializeToString()


class _Parked(Liars):
    """Nodes whose finality waits and submit streams are taken and never answered (a
    stream first sends its ``opened`` event): a client's call stays in flight."""

    def _handler(self, i: int, method: str, answer: Answer) -> grpc.RpcMethodHandler:
        if method == "WaitForFinality":

            async def park(request: bytes, context: Any) -> bytes:
                self.asked[i][method] = self.asked[i].get(method, 0) + 1
                await asyncio.Event().wait()
                raise AssertionError("unreachable")

            return grpc.unary_unary_rpc_method_handler(park)
        if method == "SubmitStream":

            async def opened(requests: Any, context: Any) -> AsyncIterator[bytes]:
                self.asked[i][method] = self.asked[i].get(method, 0) + 1
                ev = pb.SubmitStreamEvent(opened=pb.SubmitStreamOpened(inflight_max=8))
                yield ev.SerializeToString()
                await asyncio.Event().wait()

            return grpc.stream_stream_rpc_method_handler(opened)
        return super()._handler(i, method, answer)


def _parked_nodes(n: int = 2) -> _Parked:
    answers: dict[str, Answer] = {
        "GetStatus": lambda _: STATUS,
        "WaitForFinality": lambda _: b"",
        "SubmitStream": lambda _: b"",
    }
    return _Parked([dict(answers) for _ in range(n)])


def _calls(nodes: Liars) -> int:
    return sum(sum(asked.values()) for asked in nodes.asked)


# --- 1. closing the async client while tasks are in calls -----------------------------------


async def test_closing_the_client_ends_every_call_in_flight_with_a_closed_error() -> None:
    """Three tasks wait for receipts when the program closes the client. Each waiting call
    raised a bare ``asyncio.CancelledError`` (no message, and in a TaskGroup or gather it
    reads as the caller's own cancellation), and the client then opened a channel again
    (a status probe after the close). Now each ends with ClosedError, which says the
    client was closed and what is safe next, and nothing more reaches a node."""
    async with _parked_nodes() as nodes:
        c = nodes.client()
        waits = [asyncio.create_task(c.receipt(bytes([k]) * 32, timeout_s=30)) for k in (1, 2, 3)]
        while nodes.asked[0].get("WaitForFinality", 0) < 3:
            await asyncio.sleep(0.01)
        await c.aclose()
        outcomes = await _done_within(asyncio.gather(*waits, return_exceptions=True), GUARD_S)
        assert outcomes is not NOT_DONE, "a call outlived the client"
        for outcome in outcomes:
            assert isinstance(outcome, ClosedError), repr(outcome)
            assert "the client was closed during the call" in str(outcome)
        asked = _calls(nodes)
        with pytest.raises(ClosedError, match="this client is closed"):
            await c.head()
        await asyncio.sleep(1.5)  # a status probe's interval (SILENCE_CHECK_S) and more
        assert _calls(nodes) == asked, "a closed client called a node"
        assert not c._channels, "a closed client opened a channel"


async def test_a_call_its_channel_close_failed_says_it_may_have_sent() -> None:
    """On the cluster a finality wait cut by ``aclose()`` ended with gRPC's CANCELLED
    ("Channel closed"), not a CancelledError: the call failed over to the next endpoint,
    whose channel the closed client refused, and said "this client is closed; nothing was
    sent" of a submit that had been sent. Now it says the client closed during the call
    and that the transaction may still settle."""
    async with _parked_nodes() as nodes:
        c = nodes.client()

        async def attempt(i: int) -> None:
            c._stub(i)  # the call's channel (a closed client refuses it)
            await c.aclose()
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.CANCELLED, grpc.aio.Metadata(), grpc.aio.Metadata(), "closed"
            )

        with pytest.raises(ClosedError) as e:
            await c._call("submit ab", attempt)
        assert "closed during the call" in str(e.value) and "may still settle" in str(e.value)
        with pytest.raises(ClosedError, match="nothing was sent"):
            await c._call("submit cd", attempt)  # the control: closed before it started


async def test_a_task_cancelled_in_a_call_is_still_cancelled_not_closed() -> None:
    """The control: the caller's own cancellation (``asyncio.wait_for``) stays a
    cancellation, and the client, not closed, keeps serving the other tasks."""
    async with _parked_nodes() as nodes, nodes.client() as c:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(c.receipt(b"\x01" * 32, timeout_s=30), 0.5)
        assert await c.head() == 3


async def test_a_stream_of_a_closed_client_fails_its_submissions_closed() -> None:
    """A submit stream open when the client closes: its call ends with the channel, and
    the stream reopened itself on a new channel of the closed client (which nobody would
    ever close). Now its submissions in flight fail with ClosedError and no node is
    called again."""
    async with _parked_nodes() as nodes:
        c = nodes.client()
        s = await c.open_stream()
        fut = await s.submit(_raw(1), timeout_s=30)
        await c.aclose()
        outcome = await _done_within(asyncio.shield(fut), GUARD_S)
        assert isinstance(outcome, ClosedError), repr(outcome)
        assert "the client was closed" in str(outcome) and "may still settle" in str(outcome)
        assert nodes.asked[0].get("SubmitStream") == 1 and "SubmitStream" not in nodes.asked[1]
        with pytest.raises(ClosedError):
            await s.submit(_raw(2), timeout_s=30)
        await s.cancel()
        assert not c._channels


# --- 2. a cancelled stream said "no node answered; check the nodes are up" ------------------


async def test_a_cancelled_stream_says_it_was_closed_not_that_the_nodes_are_down() -> None:
    """``SubmitStream.cancel()`` (and an exception leaving ``stream()``) failed what was
    in flight with UnavailableError "no node answered (the stream was closed); check the
    nodes are up (make status)": the program closed it, every node was up. Now it is a
    ClosedError (an UnavailableError still, for the handlers written for that), whose
    message says the stream was closed and what is safe."""
    s = _stream(_Call(), inflight_max=2)
    fut = await s.submit(_raw(1))
    await s.cancel()
    outcome = await _done_within(asyncio.shield(fut), GUARD_S)
    assert isinstance(outcome, ClosedError) and isinstance(outcome, UnavailableError)
    assert "the stream was closed" in str(outcome) and "make status" not in str(outcome)
    with pytest.raises(ClosedError):
        await s.submit(_raw(2))


# --- 3. the sync client shared by threads ---------------------------------------------------


class _FakeAsync:
    """What ``LedgerClient`` runs: ``submit`` records the call and parks until ``go`` is
    set (a finality wait); ``head`` answers at once."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.go = threading.Event()
        self.closed = False
        self.streams_closed = 0

    async def submit(self, stx: bytes, **kw: Any) -> bytes:
        self.sent.append(stx)
        while not self.go.is_set():
            await asyncio.sleep(0.01)
        return stx

    async def head(self) -> int:
        return 3

    def blocks(self, from_height: int = 1) -> AsyncIterator[int]:
        async def gen() -> AsyncIterator[int]:
            try:
                for h in range(from_height, from_height + 100):
                    yield h
            finally:
                self.streams_closed += 1  # the node's block stream ends here

        return gen()

    async def aclose(self) -> None:
        self.closed = True


def _sync_client() -> tuple[LedgerClient, _FakeAsync]:
    net, certs = pinned_tls(shared_net())
    c = LedgerClient([Endpoint("127.0.0.1:1", "node-00")], tls_certs=certs, genesis=net.genesis)
    fake = _FakeAsync()
    c._client = fake  # type: ignore[assignment]
    return c, fake


def _in_thread(fn: Any, out: dict[str, Any], key: str) -> threading.Thread:
    def run() -> None:
        try:
            out[key] = fn()
        except BaseException as e:
            out[key] = e

    t = threading.Thread(target=run, daemon=True)  # a failed test leaves no thread parked
    t.start()
    return t


def test_a_second_threads_call_is_refused_and_sends_nothing() -> None:
    """Thread A parks in a submit; thread B submits too. B got RuntimeError("This event
    loop is already running"), yet its coroutine had been put on A's loop and ran there
    once the loop turned: the trade B was told failed was sent, and settled (seen on a
    real cluster: three of four threads' trades committed, each thread told RuntimeError).
    Now B's call is refused before anything is scheduled, saying what to do, and A's call
    and later ones run as before."""
    c, fake = _sync_client()
    out: dict[str, Any] = {}
    a = _in_thread(lambda: c.submit(b"A"), out, "A")
    while fake.sent != [b"A"]:
        threading.Event().wait(0.01)
    b = _in_thread(lambda: c.submit(b"B"), out, "B")
    b.join(HANG_S)
    fake.go.set()  # A's call ends whatever B got
    a.join(GUARD_S)
    refused = out.pop("B", None)
    assert isinstance(refused, RuntimeError), f"B's call: {refused!r}"
    assert "one LedgerClient per thread" in str(refused) and "nothing was sent" in str(refused)
    assert out == {"A": b"A"}
    assert c.submit(b"C") == b"C"  # the loop turns again: B's call must not run on it
    assert fake.sent == [b"A", b"C"], "the refused call ran"
    c.close()


def test_closing_the_sync_client_from_another_thread_ends_its_call() -> None:
    """A thread parks in a submit and the main thread closes the client. ``close()``
    raised RuntimeError("This event loop is already running") and left the client open,
    while the thread's call ended with a bare CancelledError. Now ``close()`` ends the call
    (ClosedError, saying what is safe), closes the client, and later calls raise
    ClosedError."""
    c, fake = _sync_client()
    out: dict[str, Any] = {}
    a = _in_thread(lambda: c.submit(b"A"), out, "A")
    while fake.sent != [b"A"]:
        threading.Event().wait(0.01)
    closing = _in_thread(c.close, out, "close")
    closing.join(HANG_S)
    assert "close" in out, "close() waited for the other thread's call to end by itself"
    a.join(GUARD_S)
    assert isinstance(out["A"], ClosedError), repr(out["A"])
    assert "closed during the call" in str(out["A"])
    assert fake.closed
    with pytest.raises(ClosedError, match="this client is closed") as later:
        c.head()
    assert "nothing was sent" in str(later.value)
    c.close()  # closing twice is harmless


def test_a_context_managed_sync_client_closes_on_an_exception_inside() -> None:
    """The control: an exception inside ``with`` propagates unchanged, the client closes,
    and a later call says it is closed."""
    c, fake = _sync_client()
    with pytest.raises(KeyError), c:
        assert c.head() == 3
        raise KeyError("the program's own error")
    assert fake.closed
    with pytest.raises(ClosedError):
        c.head()


# --- 4. a stream's close interrupted left what was in flight open ---------------------------


class _HalfCloseIgnored(_Call):
    """A stream call whose node keeps it open after the client's half-close (its finals
    are due later)."""

    async def done_writing(self) -> None:
        pass


async def test_a_cancel_interrupted_still_fails_what_is_in_flight() -> None:
    """``cancel()`` cancelled the reader and waited for it before it failed the futures
    still open; a second cancellation of the caller there (a TaskGroup, a wait_for, a
    second Ctrl-C) left them open until their deadlines (30 s, then FinalityTimeoutError,
    though the stream was closed). Now they fail ClosedError before anything is awaited."""
    s = _stream(_Call(), inflight_max=2)
    fut = await s.submit(_raw(1))
    closing = asyncio.create_task(s.cancel())
    await asyncio.sleep(0)  # cancel() is waiting for the reader to end
    closing.cancel()
    await asyncio.gather(closing, return_exceptions=True)
    assert fut.done(), "the submission stayed open after the stream's cancel()"
    assert isinstance(fut.exception(), ClosedError)


async def test_an_interrupted_aclose_still_ends_the_stream() -> None:
    """``aclose()`` waits for the finals still due; a caller that gives up on that wait
    (``asyncio.wait_for(s.aclose(), 1)``) left the call open, its reader running and its
    node's stream slot taken until every deadline passed. Now the stream is cancelled as
    the wait is given up, and what was in flight fails ClosedError."""
    call = _HalfCloseIgnored()
    s = _stream(call, inflight_max=2)
    fut = await s.submit(_raw(1))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(s.aclose(), 0.2)
    assert call.cancelled, "the call stayed open"
    assert fut.done() and isinstance(fut.exception(), ClosedError)
    assert s._reader.done()


async def test_a_stream_closed_after_its_finals_settles_them_not_closed() -> None:
    """The control: ``aclose()`` that sees every final in time leaves each future its
    receipt."""
    call = _Call()
    s = _stream(call, inflight_max=2)
    fut = await s.submit(_raw(1))
    call.events.put_nowait(_final(1))
    await s.aclose()
    assert fut.result().tx_id == _raw(1)[-8:]


# --- 5. a node's limit of block streams read as "no node answered" -------------------------


class _Refusing(Liars):
    """Nodes whose StreamBlocks ends at once with ``code`` and the node's message."""

    def __init__(self, n: int, code: grpc.StatusCode, message: str) -> None:
        super().__init__([{"StreamBlocks": lambda _: b""} for _ in range(n)])
        self.code, self.message = code, message

    def _handler(self, i: int, method: str, answer: Answer) -> grpc.RpcMethodHandler:
        async def refuse(request: bytes, context: Any) -> AsyncIterator[bytes]:
            self.asked[i][method] = self.asked[i].get(method, 0) + 1
            await context.abort(self.code, self.message)
            yield b""  # unreachable: an async generator, as a streaming handler is

        return grpc.unary_stream_rpc_method_handler(refuse)


LIMIT = "this connection holds 8 block streams, the limit per connection; finish or cancel some"


async def test_a_block_stream_every_node_says_busy_for_is_busy_not_unavailable() -> None:
    """One client's 33rd ``blocks()`` on a 4-validator cluster (8 block streams per
    connection, one connection per node) was refused RESOURCE_EXHAUSTED by every node and
    raised UnavailableError "no node answered ...; check the nodes are up": every node had
    answered, and the docs promise BusyError for a node's limit of block streams. Now it
    is BusyError, after the busy retries, carrying the node's word."""
    async with _Refusing(2, grpc.StatusCode.RESOURCE_EXHAUSTED, LIMIT) as nodes:
        async with nodes.client() as c:
            with pytest.raises(BusyError) as e:
                await asyncio.wait_for(anext(c.blocks(1)), GUARD_S)
        assert not isinstance(e.value, UnavailableError) and e.value.retry_safe
        assert LIMIT in str(e.value) and "make status" not in str(e.value)
        assert _calls(nodes) == BUSY_RETRIES_MAX + 1  # each retry on the next node


async def test_a_block_stream_every_node_fails_is_still_unavailable() -> None:
    """The control: nodes that fail the stream (UNAVAILABLE) are no answer:
    UnavailableError after every endpoint failed ``FAILOVER_ROUNDS_MAX`` times."""
    async with _Refusing(2, grpc.StatusCode.UNAVAILABLE, "stopping") as nodes:
        async with nodes.client() as c:
            with pytest.raises(UnavailableError, match="no node answered"):
                await asyncio.wait_for(anext(c.blocks(1)), GUARD_S)
        assert _calls(nodes) == 2 * FAILOVER_ROUNDS_MAX


def test_a_sync_iterator_left_closes_its_stream_now_or_on_the_next_call() -> None:
    """A ``blocks()`` iterator left (``break``) closes its block stream at once; one left
    while another thread is in a call (refused the lock) closes it on the loop as that call
    runs it, not never, and waits for nothing; after ``close()`` leaving one is harmless."""
    c, fake = _sync_client()
    blocks = c.blocks(5)
    assert next(blocks) == 5
    blocks.close()
    assert fake.streams_closed == 1
    later = c.blocks(7)
    assert next(later) == 7
    out: dict[str, Any] = {}
    a = _in_thread(lambda: c.submit(b"A"), out, "A")
    while fake.sent != [b"A"]:
        threading.Event().wait(0.01)
    leaving = _in_thread(later.close, out, "left")
    leaving.join(HANG_S)
    assert "left" in out, "leaving an iterator waited for the other thread's call"
    while fake.streams_closed < 2 and a.is_alive():  # the loop A runs closes it
        threading.Event().wait(0.01)
    fake.go.set()
    a.join(GUARD_S)
    assert fake.streams_closed == 2
    last = c.blocks(9)
    assert next(last) == 9
    c.close()
    last.close()  # the runner's close closed its generator; nothing raises
