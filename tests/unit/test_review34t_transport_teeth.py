"""Teeth for the peer transport (node/runtime/_transport.py), from the first mutation run
of target ``runtime.transport`` (review 34t; docs/testing.md, "The peer transport and its
neighbours"). Each test fails on a survivor named in its docstring and passes on the code
as it is; each shows the rule both ways where there are two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from node.config import (
    PEER_BYTES_BURST,
    PEER_BYTES_PER_S,
    PEER_CALLS_PER_VALIDATOR_MAX,
    PEER_CONNECT_CHARGE_BYTES,
    PEER_FRAME_BYTES_MAX,
    PEER_ITEM_CHARGE_BYTES,
    PEER_JUNK_LOG_INTERVAL_MS,
    PEER_MESSAGE_CHARGE_MIN_BYTES,
    PEER_SEND_QUEUE_BYTES_MAX,
    PEER_SEND_QUEUE_MAX,
)
from node.core import SyncRequest, TxForward, encode_message
from node.core.refusal import Kind
from node.runtime import Metrics, _transport
from node.runtime._grpc import Ctx
from node.runtime._transport import FRAME_REFUSED, MESSAGE_REFUSED, PeerLink, PeerService
from node.wire import peer_pb2 as peer_pb
from node.wire import peer_pb2_grpc as peer_grpc
from tests.unit.test_peer_bytes import BYZ, _Acceptor
from tests.unit.test_peer_streams import _PINS, WAIT_S, _Context, _Dialer, _frames, _Node, _port
from tests.unit.test_review34t_transport import (
    _dial,
    _frames_of,
    _HelloAndHangUp,
    _junk_answer,
    _pauses_of_run,
    _received,
    _refused,
    _repeat,
)

# --- the largest frame ---------------------------------------------------------------------


def _link() -> PeerLink:
    """A dialer's link to validator 0 at an address nobody listens on."""
    return PeerLink(
        _Dialer(),  # type: ignore[arg-type]
        0,
        address="127.0.0.1:1",
        tls_name="node-00",
        credentials=None,  # type: ignore[arg-type]
        metrics=Metrics(),
    )


def _forward_of(size: int) -> bytes:
    """A forward of one transaction, ``size`` bytes encoded."""
    data = encode_message(TxForward((bytes(size - 9),)))
    assert len(data) == size
    return data


async def test_the_largest_frame_a_link_makes_passes_both_ends_grpc_limits() -> None:
    """A frame holds messages up to PEER_FRAME_BYTES_MAX, and protobuf frames each (a tag
    and a length: 3 bytes here, 12 KiB for 4,096): gRPC's limits on both ends allow for
    that framing (_FRAME_OVERHEAD_BYTES). With 1,088 bytes of allowance (``64 + 1024``)
    the dialer's gRPC refused to send the frame, and nothing arrived."""
    per = PEER_FRAME_BYTES_MAX // PEER_SEND_QUEUE_MAX
    assert per * PEER_SEND_QUEUE_MAX == PEER_FRAME_BYTES_MAX
    node, dialer = _Node(), _Dialer()
    async with _port(PeerService(node, _PINS)) as port:  # type: ignore[arg-type]
        link = await _dial(dialer, port, lambda: 0.0)
        for _ in range(PEER_SEND_QUEUE_MAX):
            link.send(_forward_of(per))
        running = asyncio.create_task(link.run())
        try:
            await _received(node, PEER_SEND_QUEUE_MAX)
            assert link._metrics.dropped._value.get() == 0
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


# --- the clocks ----------------------------------------------------------------------------


@pytest.fixture
def monotonic_s(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """time.monotonic() reads the list's first item (a test without an event loop)."""
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    yield now


def test_the_acceptors_own_clock_counts_milliseconds(
    monotonic_s: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """A junk line is logged at most once per PEER_JUNK_LOG_INTERVAL_MS of the monotonic
    clock: 0.6 of the interval later it is left out, 1.2 later it is logged. (A default
    clock of seconds, or of milliseconds plus or minus 1,000, or modulo 1,000, left the
    second line out; so did logging only at exactly the interval, ``!=`` for ``<``.)"""
    service = PeerService(_Node(), _PINS)  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="node")
    step_s = PEER_JUNK_LOG_INTERVAL_MS / 1000 * 0.6
    for _ in range(3):
        service._log_throttled(1, "bad_peer_message")
        monotonic_s[0] += step_s
    lines = [r for r in caplog.records if r.getMessage() == "bad_peer_message"]
    assert len(lines) == 2
    assert [r.fields["left_out"] for r in lines] == [0, 1]  # type: ignore[attr-defined]


def test_the_dialers_own_clock_counts_milliseconds(monotonic_s: list[float]) -> None:
    """How long a session lasted is measured in ms (PEER_SESSION_STABLE_MS)."""
    link = _link()
    start = link._clock_ms()
    monotonic_s[0] += 2.5
    assert link._clock_ms() - start == 2_500


# --- the byte budget -----------------------------------------------------------------------


def _junk_charge(junk: bytes) -> int:
    """What one junk answer costs its sender: its bytes, then the items they could hold."""
    return len(junk) + len(junk) // 4 * PEER_ITEM_CHARGE_BYTES


async def test_a_junk_messages_debt_is_its_items_and_is_repaid_at_the_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the junk answer its sender owes what it was charged beyond its burst; once
    the clock has moved on that long, the next is read (one more decoded), not before.
    (``items_max ** PEER_ITEM_CHARGE_BYTES`` left a debt nothing repays.)"""
    a = _Acceptor()
    junk = _junk_answer()
    debt = _junk_charge(junk) - (PEER_BYTES_BURST - PEER_CONNECT_CHARGE_BYTES)
    assert 0 < debt < PEER_BYTES_PER_S // 10  # a wait of tens of ms
    pauses = _pauses_of_run(monkeypatch, PeerService._within_budget)
    flood = a.connect(BYZ, _repeat(peer_pb.PeerFrame(messages=[junk]), [0]))
    try:
        await a.until(a.held.is_set)
        assert _refused(a, MESSAGE_REFUSED) == 1
        wait_ms = -(-debt * 1000 // PEER_BYTES_PER_S)
        a.h.now_ms += wait_ms + 1
        await a.until(lambda: _refused(a, MESSAGE_REFUSED) == 2)
        # the stream was left unread for the wait and a millisecond more, then looked at
        assert pauses[0] == (wait_ms + 1) / 1000
    finally:
        flood.cancel()


async def test_a_held_stream_is_looked_at_again_only_once_it_refilled() -> None:
    """A peer held back waits out the time its budget needs before the acceptor asks the
    budget again: during a hundred loop turns it is asked once. (A pause of ``wait_ms & 1``
    ms, zero for an even wait, asked it every turn: a spinning loop per held peer.)"""
    a = _Acceptor()
    asked = [0]
    admit = a.h.node.admit

    def counting(src: int, size: int, kind: Kind | None) -> int:
        asked[0] += 1
        return admit(src, size, kind)

    a.h.node.admit = counting  # type: ignore[method-assign]
    flood = a.connect(BYZ, _repeat(peer_pb.PeerFrame(messages=[_junk_answer()]), [0]))
    try:
        await a.until(a.held.is_set)
        before = asked[0]
        for _ in range(100):
            await asyncio.sleep(0)
        assert asked[0] == before
    finally:
        flood.cancel()


# --- the dialer ----------------------------------------------------------------------------


class _Hello(peer_grpc.PeerServicer):
    """An acceptor whose hello names ``chain`` and ``validator``, then holds the call."""

    def __init__(self, chain: str, validator: int) -> None:
        self.chain, self.validator = chain, validator
        self.calls = 0
        self.called = asyncio.Event()

    async def Connect(
        self, request_iterator: AsyncIterator[peer_pb.PeerFrame], context: Ctx
    ) -> None:
        self.calls += 1
        self.called.set()
        await context.write(peer_pb.PeerHello(chain_id=self.chain, validator=self.validator))
        await asyncio.Event().wait()

    async def reach(self, calls: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while self.calls < calls:
                self.called.clear()
                await self.called.wait()


@contextlib.asynccontextmanager
async def _running(link: PeerLink) -> AsyncIterator[None]:
    task = asyncio.create_task(link.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    ("chain", "validator", "dst"),
    [("other-chain", 0, 0), ("zz-chain", 0, 0), ("test-chain", 2, 0), ("test-chain", 0, 1)],
    ids=["chain-before", "chain-after", "index-above", "index-below"],
)
async def test_a_hello_of_another_chain_or_validator_is_no_session(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    chain: str,
    validator: int,
    dst: int,
) -> None:
    """The dialer takes the peer only if its hello names this chain and the validator it
    dialed: another is logged ``peer_mismatch``, never reported up, and dialed again.
    (Comparing the chain ids by identity took a hello of any chain; by order, those on
    one side.)"""
    monkeypatch.setattr(_transport, "PEER_RECONNECT_BASE_MS", 1)
    caplog.set_level(logging.ERROR, logger="node")
    dialer, peer = _Dialer(), _Hello(chain, validator)
    async with _port(peer) as port:
        link = await _dial(dialer, port, lambda: 0.0, dst)
        async with _running(link):
            await peer.reach(3)
        assert not dialer.up.is_set() and not link.connected
        # The node's lines only: gRPC's poller can log an error of an earlier test's closed
        # event loop through asyncio's logger here (seen at a load average of 10).
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("node")]
        assert lines[:1] == ["peer_mismatch"]
    control, right = _Dialer(), _Hello("test-chain", 0)
    async with _port(right) as port, _running(await _dial(control, port, lambda: 0.0)):
        async with asyncio.timeout(WAIT_S):
            await control.up.wait()


def _unreachable(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.getMessage() == "peer_unreachable" for r in caplog.records)


async def test_an_unreachable_peer_is_logged_once_not_at_every_dial(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A peer that never answers is logged ``peer_unreachable`` on the first failure only
    (``not reached`` logged each one)."""
    monkeypatch.setattr(_transport, "PEER_RECONNECT_BASE_MS", 1)
    caplog.set_level(logging.INFO, logger="node")
    async with _port(_HelloAndHangUp()) as port:
        pass  # a port nobody listens on any more
    link = await _dial(_Dialer(), port, lambda: 0.0)
    assert not link.connected  # nor before its first dial
    async with _running(link):
        async with asyncio.timeout(WAIT_S):
            while link.failures < 3:
                await asyncio.sleep(0.001)
    assert _unreachable(caplog) == 1
    # never connected: not counted among the peers, nor taken off them
    assert not link.connected and link._metrics.peers._value.get() == 0


async def test_a_peer_gone_after_a_clean_hang_up_is_logged_unreachable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A session that reached the hello resets the failures, so the first dial that fails
    after it is logged ``peer_unreachable`` (reset to 1, it never was: the peer that hung
    up cleanly, then went away, was never reported)."""
    monkeypatch.setattr(_transport, "PEER_RECONNECT_BASE_MS", 1)
    caplog.set_level(logging.INFO, logger="node")
    dialer = _Dialer()
    async with _port(_HelloAndHangUp()) as port:
        link = await _dial(dialer, port, lambda: 0.0)
        async with _running(link), asyncio.timeout(WAIT_S):
            await dialer.up.wait()
    assert link.failures == 0 and _unreachable(caplog) == 0 and not link.connected
    async with _running(link):
        async with asyncio.timeout(WAIT_S):
            while _unreachable(caplog) == 0:
                await asyncio.sleep(0.001)


# --- the acceptor ---------------------------------------------------------------------------


class _Certificates(_Context):
    """A call whose TLS session shows ``pems`` as the client's certificate (the port's
    mutual TLS lets only a pinned one through; the handler does not count on it)."""

    def __init__(self, pems: list[bytes]) -> None:
        super().__init__(1)
        self._pems = pems

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": self._pems}


@pytest.mark.parametrize("pems", [[], [b"not a certificate"]], ids=["none", "garbage"])
async def test_a_call_without_a_certificate_is_refused_unauthenticated(pems: list[bytes]) -> None:
    """Not an exception in the handler (``len(pems) > 1`` read the first of none; a
    certificate that does not parse raised ValueError through the handler)."""
    context = _Certificates(pems)
    with pytest.raises(grpc.aio.AbortError):
        await PeerService(_Node(), _PINS).Connect(_frames(), context)  # type: ignore[arg-type]
    assert context.code is grpc.StatusCode.UNAUTHENTICATED
    ok = _Context(1)  # control: validator 1's certificate
    await PeerService(_Node(), _PINS).Connect(_frames(), ok)  # type: ignore[arg-type]
    assert ok.writing.is_set()


async def test_a_message_that_does_not_decode_leaves_the_rest_of_its_frame() -> None:
    """A frame of junk, then a request: the request is delivered (``break`` for
    ``continue`` dropped the rest of the frame with the junk)."""
    node = _Node()
    frames = _frames_of(b"\x07", encode_message(SyncRequest(4, 1)))
    await PeerService(node, _PINS).Connect(frames, _Context(1))  # type: ignore[arg-type]
    assert node.delivered == [(1, SyncRequest(4, 1))]


async def test_two_messages_of_more_than_half_a_frame_go_in_two_frames() -> None:
    """A frame holds messages while their sizes add up to PEER_FRAME_BYTES_MAX: two of 3
    MiB are two frames (``size | len`` took both, 6 MiB, which gRPC refuses to send)."""
    link = _link()
    big = bytes(3 * 1024 * 1024)
    link.send(big)
    link.send(big)
    frames = link._frames(link._session_id)
    async with asyncio.timeout(WAIT_S):  # a third frame would wait for a message
        assert [len((await anext(frames)).messages) for _ in range(2)] == [1, 1]


async def test_a_message_queued_between_sessions_waits_for_the_next() -> None:
    """The peer hangs up after its first hello. A message sent while the link waits to
    redial goes out on the next session: the finished call's request generator, retired,
    does not take it (not retired, ``+= 0``, it took the message into the dead call)."""

    class FirstHangsUp(PeerService):
        calls = 0

        async def Connect(
            self, request_iterator: AsyncIterator[peer_pb.PeerFrame], context: Ctx
        ) -> None:
            self.calls += 1
            if self.calls == 1:
                await context.write(peer_pb.PeerHello(chain_id="test-chain", validator=0))
                return
            await super().Connect(request_iterator, context)

    node, dialer = _Node(), _Dialer()
    async with _port(FirstHangsUp(node, _PINS)) as port:  # type: ignore[arg-type]
        link = await _dial(dialer, port, lambda: 0.0)
        async with _running(link):
            async with asyncio.timeout(WAIT_S):
                await dialer.up.wait()
                while link.connected:  # the first session has ended; the link waits
                    await asyncio.sleep(0.001)
            link.send(encode_message(SyncRequest(8, 1)))
            await node.delivery(1, SyncRequest(8, 1))


async def test_a_queue_holds_its_byte_limit_exactly() -> None:
    """Four messages of a quarter of PEER_SEND_QUEUE_BYTES_MAX are all kept; one byte more
    drops the oldest. (The queue's bytes counted from 1, ``>=`` for ``>``, or the sizes
    multiplied or shifted, dropped some of the four.)"""
    link = _link()
    quarter = [bytes([k]) * (PEER_SEND_QUEUE_BYTES_MAX // 4) for k in range(4)]
    for data in quarter:
        link.send(data)
    assert link._metrics.dropped._value.get() == 0
    link.send(b"x")
    assert link._metrics.dropped._value.get() == 1
    assert list(link._queue) == [*quarter[1:], b"x"]


async def test_a_message_over_the_frame_limit_is_dropped_and_the_next_goes_out() -> None:
    """A message larger than PEER_FRAME_BYTES_MAX (the codec never makes one) is dropped
    from the queue, and the session goes on with the next (``break`` ended the session's
    frames)."""
    link = _link()
    link.send(bytes(PEER_FRAME_BYTES_MAX + 1))
    link.send(b"next")
    frames = link._frames(link._session_id)
    async with asyncio.timeout(WAIT_S):
        assert list((await anext(frames)).messages) == [b"next"]
    assert link._queued_bytes == 0


@pytest.mark.parametrize("src", [0, 2])
async def test_only_the_acceptors_own_certificate_is_refused(src: int) -> None:
    """The acceptor is validator 1 here: validators 0 and 2 are served, its own certificate
    is refused (comparing by ``<`` served its own; by ``<=`` refused validator 0)."""
    node = _Node()
    node.index = 1
    service = PeerService(node, _PINS)  # type: ignore[arg-type]
    other = _Context(src)
    await service.Connect(_frames(), other)  # type: ignore[arg-type]
    assert other.writing.is_set()
    own = _Context(1)
    with pytest.raises(grpc.aio.AbortError):
        await service.Connect(_frames(), own)  # type: ignore[arg-type]
    assert own.code is grpc.StatusCode.UNAUTHENTICATED


async def test_a_validators_ended_calls_give_back_exactly_their_share() -> None:
    """After calls that ended, validator 1 still holds PEER_CALLS_PER_VALIDATOR_MAX calls
    at most: that many whose hello never leaves, and the next is refused (giving back two
    per call, ``-= 2``, let the ended calls' credit hold more)."""
    service = PeerService(_Node(), _PINS)  # type: ignore[arg-type]
    for _ in range(PEER_CALLS_PER_VALIDATOR_MAX):
        await service.Connect(_frames(), _Context(1))  # type: ignore[arg-type]
    stalled = [_Context(1, stall=True) for _ in range(PEER_CALLS_PER_VALIDATOR_MAX)]
    held = [asyncio.create_task(service.Connect(_frames(), c)) for c in stalled]  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(WAIT_S):
            for c in stalled:
                await c.writing.wait()
        one_more = _Context(1)
        with pytest.raises(grpc.aio.AbortError):
            await service.Connect(_frames(), one_more)  # type: ignore[arg-type]
        assert one_more.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        for t in held:
            t.cancel()
        await asyncio.gather(*held, return_exceptions=True)


async def test_a_queue_holds_its_message_limit_exactly() -> None:
    """PEER_SEND_QUEUE_MAX messages are kept; one more drops the oldest (``>`` kept one
    more; ``is`` compared a length to the limit by identity and never dropped)."""
    link = _link()
    for k in range(PEER_SEND_QUEUE_MAX):
        link.send(k.to_bytes(2, "big"))
    assert link._metrics.dropped._value.get() == 0
    link.send(b"last")
    assert link._metrics.dropped._value.get() == 1
    assert len(link._queue) == PEER_SEND_QUEUE_MAX and link._queue[0] == (1).to_bytes(2, "big")


async def test_a_retired_sessions_frames_end() -> None:
    """Once its session is over, a request generator waiting for messages ends when woken
    (``>`` for ``!=`` left it waiting for ever: one task per session, woken by every send)."""
    link = _link()
    waiting = asyncio.ensure_future(anext(link._frames(link._session_id)))
    await asyncio.sleep(0)
    link._session_id += 1
    link._wake.set()
    async with asyncio.timeout(WAIT_S):
        with pytest.raises(StopAsyncIteration):
            await waiting


async def test_the_first_failure_to_reach_a_peer_is_logged_at_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The line comes with the first failed dial, not a later one (the failures counted
    from -1, or logged at the second)."""
    monkeypatch.setattr(_transport, "PEER_RECONNECT_BASE_MS", 200)  # 400 ms to the next
    caplog.set_level(logging.INFO, logger="node")
    async with _port(_HelloAndHangUp()) as port:
        pass
    link = await _dial(_Dialer(), port, lambda: 0.0)
    async with _running(link), asyncio.timeout(WAIT_S):
        while link.failures == 0:
            await asyncio.sleep(0.001)
        assert link.failures == 1 and _unreachable(caplog) == 1


async def test_an_empty_frame_is_charged_one_message() -> None:
    """A burst's worth of empty frames is read before the peer waits, no fewer (charged
    as two messages each, half were)."""
    a = _Acceptor()
    flood = a.connect(BYZ, _repeat(peer_pb.PeerFrame(), [0]))
    try:
        await a.until(a.held.is_set)
        burst = PEER_BYTES_BURST - PEER_CONNECT_CHARGE_BYTES
        assert _refused(a, FRAME_REFUSED) == burst // PEER_MESSAGE_CHARGE_MIN_BYTES
    finally:
        flood.cancel()
