"""Review 34t: the validator-to-validator transport as a Byzantine validator holding a
valid certificate sees it (node/runtime/_transport.py; docs/cluster.md "Peer streams",
docs/consensus.md "Work one peer can cause").

Found by the review, each measured against the real acceptor:

- a message that does not decode was charged its bytes alone, though the decoder may have
  built every item before the last byte refused it: a catch-up answer of 32,048 tiny
  transactions and one trailing byte cost 137 us of the loop per KiB charged (35 ms for
  258 KiB), so 127 a second within the budget took 4.5 s of loop a second;
- a frame's bytes outside its messages (a field PeerFrame does not know, which protobuf
  keeps) were charged nothing: an empty frame padded to 5 MiB cost 16 KiB of the budget,
  and 82 a second (428 MB/s over loopback) took 67% of the acceptor's core;
- a Connect call cost nothing of the budget: a validator opening Connect after Connect on
  one connection made ~1,000 a second, 57% of the acceptor's core and a log line each;
- a dialer reset its backoff after any hello: a peer that says hello and hangs up was
  redialled every PEER_RECONNECT_BASE_MS for ever.

And what held (kept by tests here): a peer that never reads holds its own link's queue at
its bound and never another link's sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable

import pytest

from node.config import (
    PEER_BYTES_BURST,
    PEER_CONNECT_CHARGE_BYTES,
    PEER_ITEM_CHARGE_BYTES,
    PEER_JUNK_LOG_INTERVAL_MS,
    PEER_MESSAGE_CHARGE_MIN_BYTES,
    PEER_SEND_QUEUE_BYTES_MAX,
    PEER_SESSION_STABLE_MS,
    TX_BYTES_MAX,
)
from node.core import Phase, SyncResponse, TxForward, Vote, encode_message
from node.core.codec import decoded_items
from node.core.refusal import Kind
from node.runtime import Metrics, _transport
from node.runtime._grpc import Ctx
from node.runtime._transport import MESSAGE_REFUSED, PeerLink, PeerService
from node.wire import peer_pb2 as peer_pb
from node.wire import peer_pb2_grpc as peer_grpc
from tests.unit.test_peer_bytes import BYZ, HONEST, _Acceptor, _block, _qc
from tests.unit.test_peer_streams import (
    _CERTS,
    _KEYS,
    _PINS,
    WAIT_S,
    _Context,
    _Dialer,
    _frames,
    _Node,
    _port,
)


def _refused(a: _Acceptor, reason: str) -> float:
    return float(a.h.node.metrics.refused.labels(reason=reason)._value.get())


def _vote(view: int, voter: int) -> bytes:
    return encode_message(Vote(Phase.PREPARE, view, 1, bytes(32), voter, bytes(64)))


async def _repeat(frame: peer_pb.PeerFrame, sent: list[int]) -> AsyncIterator[peer_pb.PeerFrame]:
    while True:
        sent[0] += 1
        yield frame


# --- what a message that does not decode costs ---------------------------------------------


def _junk_answer() -> bytes:
    """A catch-up answer of 16 blocks of 2,000 four-byte transactions (32,048 items, 258
    KiB), and one byte more: the decoder builds every block, hashes every Merkle tree, and
    refuses it at the last byte."""
    tiny = tuple(k.to_bytes(4, "big") for k in range(2_000))
    answer = SyncResponse(tuple((_block(tiny, BYZ), _qc()) for _ in range(16)))
    assert decoded_items(answer) == 32_048
    return encode_message(answer) + b"\x00"


async def test_a_message_refused_at_its_last_byte_is_charged_as_the_items_it_could_hold() -> None:
    """Scenario: a Byzantine validator streams the junk answer. Charged its bytes alone,
    254 of them fitted the burst (35 ms of the loop each: 9 s); now one does, and the
    validator is held back; another validator's vote still passes."""
    a = _Acceptor()
    junk = _junk_answer()
    flood = a.connect(BYZ, _repeat(peer_pb.PeerFrame(messages=[junk]), [0]))
    try:
        await a.until(lambda: a.held.is_set() or _refused(a, MESSAGE_REFUSED) > 2)
        assert _refused(a, MESSAGE_REFUSED) == 1 and a.held.is_set()
        assert (len(junk) // 4) * PEER_ITEM_CHARGE_BYTES > PEER_BYTES_BURST
        await a.connect(HONEST, _frames_of(_vote(7, HONEST)))
        assert a.delivered[HONEST] == 1
    finally:
        flood.cancel()


async def test_control_junk_of_one_byte_is_charged_the_minimum_once() -> None:
    """Control: a message too short to hold an item is charged as before (its minimum),
    not twice: a burst's worth of them is read before the peer waits."""
    a = _Acceptor()
    sent = [0]
    flood = a.connect(BYZ, _repeat(peer_pb.PeerFrame(messages=[b"\x07"]), sent))
    try:
        await a.until(a.held.is_set)
        burst = PEER_BYTES_BURST - PEER_CONNECT_CHARGE_BYTES  # the Connect call took its part
        assert _refused(a, MESSAGE_REFUSED) == burst // PEER_MESSAGE_CHARGE_MIN_BYTES
    finally:
        flood.cancel()


async def _frames_of(*messages: bytes) -> AsyncIterator[peer_pb.PeerFrame]:
    yield peer_pb.PeerFrame(messages=list(messages))


# --- a frame's bytes outside its messages --------------------------------------------------


def _padded(messages: list[bytes], pad_bytes: int) -> peer_pb.PeerFrame:
    """A frame as protobuf parses it off the wire: ``messages``, then field 2 (which
    PeerFrame does not have) of ``pad_bytes``; protobuf keeps it as an unknown field."""
    raw = peer_pb.PeerFrame(messages=messages).SerializeToString()
    raw += b"\x12" + _varint(pad_bytes) + bytes(pad_bytes)
    frame = peer_pb.PeerFrame.FromString(raw)
    assert frame.ByteSize() == len(raw)
    return frame


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@pytest.mark.parametrize("messages", [0, 1], ids=["empty-frame", "one-vote"])
async def test_a_frame_padded_with_a_field_it_does_not_know_is_charged_its_bytes(
    messages: int,
) -> None:
    """Scenario: a Byzantine validator pads each frame with 5 MiB of a field PeerFrame does
    not know (gRPC receives it, protobuf parses and keeps it). Charged 16 KiB a frame, 4,096
    frames (20 GiB) fitted the burst; now about 13 do (64 MiB)."""
    a = _Acceptor()
    pad = 5 * 1024 * 1024
    frame = _padded([_vote(1, BYZ)] * messages, pad)
    sent = [0]
    flood = a.connect(BYZ, _repeat(frame, sent))
    try:
        await a.until(a.held.is_set)
        assert sent[0] <= PEER_BYTES_BURST // pad + 2
    finally:
        flood.cancel()


async def test_control_an_honest_frames_framing_costs_a_few_bytes() -> None:
    """Control: a frame of 100 votes is charged its messages and their framing (2 bytes a
    vote) only, not a minimum more."""
    a = _Acceptor()
    charged: list[int] = []
    admit = a.h.node.admit

    def recording(src: int, size: int, kind: Kind | None) -> int:
        charged.append(size)
        return admit(src, size, kind)

    a.h.node.admit = recording  # type: ignore[method-assign]
    votes = [_vote(v, HONEST) for v in range(1, 101)]
    await a.connect(HONEST, _frames_of(*votes))
    frame = peer_pb.PeerFrame(messages=votes)
    outside = frame.ByteSize() - sum(map(len, votes))
    assert outside == 2 * len(votes)
    assert charged[1:] == [len(votes[0]) + outside] + [len(v) for v in votes[1:]]


# --- what a Connect call costs -------------------------------------------------------------


async def _hellos_before_held(a: _Acceptor, service: PeerService, src: int, most: int) -> int:
    """Connect calls from ``src`` (each ending when its requests do) until one waits for
    its budget; how many wrote their hello before."""
    for written in range(most):
        context = _Context(src)
        call = asyncio.create_task(service.Connect(_frames(), context))  # type: ignore[arg-type]
        async with asyncio.timeout(WAIT_S):
            while not (context.writing.is_set() or a.held.is_set()):
                await asyncio.sleep(0)
        if a.held.is_set():
            assert not context.writing.is_set()
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
            return written
        await call
    return most


async def test_a_validator_reconnecting_in_a_loop_is_held_to_its_budget() -> None:
    """Scenario: a Byzantine validator opens Connect after Connect. Each wrote its hello at
    once, without end; now each is charged PEER_CONNECT_CHARGE_BYTES before its hello, so
    a burst's worth are taken and the next waits. Another validator connects at once."""
    a = _Acceptor()
    burst = PEER_BYTES_BURST // PEER_CONNECT_CHARGE_BYTES
    assert await _hellos_before_held(a, a.service, BYZ, 4 * burst) == burst
    other = _Context(HONEST)
    await a.service.Connect(_frames(), other)  # type: ignore[arg-type]
    assert other.writing.is_set()


async def test_stream_replacements_are_logged_once_an_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Scenario: a validator replacing its live stream again and again wrote one line per
    replacement. Now the metric counts each and one line per PEER_JUNK_LOG_INTERVAL_MS says
    how many were left out."""
    clock = [0.0]
    node = _Node()
    service = PeerService(node, _PINS, clock_ms=lambda: clock[0])  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="node")
    held: list[asyncio.Task[None]] = []

    async def forever() -> AsyncIterator[peer_pb.PeerFrame]:
        await asyncio.Event().wait()
        yield peer_pb.PeerFrame()

    async def connect() -> None:
        context = _Context(1)
        held.append(asyncio.create_task(service.Connect(forever(), context)))  # type: ignore[arg-type]
        async with asyncio.timeout(WAIT_S):
            await context.writing.wait()
        await asyncio.sleep(0)  # it becomes the live stream

    def lines() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "peer_stream_replaced"]

    try:
        for _ in range(6):
            await connect()
        assert node.replaced() == 5 and len(lines()) == 1
        clock[0] += PEER_JUNK_LOG_INTERVAL_MS
        await connect()
        assert len(lines()) == 2 and lines()[1].fields["left_out"] == 4  # type: ignore[attr-defined]
        assert lines()[1].levelno == logging.INFO
    finally:
        for t in held:
            t.cancel()
        await asyncio.gather(*held, return_exceptions=True)


# --- the dialer's backoff ------------------------------------------------------------------


class _HelloAndHangUp(peer_grpc.PeerServicer):
    """A Byzantine acceptor: the right hello, then the call ends at once."""

    async def Connect(
        self, request_iterator: AsyncIterator[peer_pb.PeerFrame], context: Ctx
    ) -> None:
        await context.write(peer_pb.PeerHello(chain_id="test-chain", validator=0))


class _CountingDialer(_Dialer):
    def __init__(self, on_up: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self.sessions = 0
        self._on_up = on_up
        self.changed = asyncio.Event()

    def peer_up(self, peer: int, height: int) -> None:
        self.sessions += 1
        self._on_up()
        self.changed.set()

    async def reach(self, sessions: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while self.sessions < sessions:
                self.changed.clear()
                await self.changed.wait()


async def _dial(
    dialer: _Dialer, port: int, clock_ms: Callable[[], float], dst: int = 0
) -> PeerLink:
    return PeerLink(
        dialer,  # type: ignore[arg-type]
        dst,
        address=f"127.0.0.1:{port}",
        tls_name="node-00",
        credentials=_transport.peer_channel_credentials(_CERTS[0], _KEYS[1], _CERTS[1]),
        metrics=Metrics(),
        clock_ms=clock_ms,
    )


def _link_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses between dials every ``PeerLink`` asks for (s), in order."""
    real_pause, pauses = PeerLink._pause, []

    async def pause(link: PeerLink, delay_s: float) -> None:
        pauses.append(delay_s)
        await real_pause(link, delay_s)

    monkeypatch.setattr(PeerLink, "_pause", pause)
    return pauses


def _pauses_of_run(monkeypatch: pytest.MonkeyPatch, of: Callable[..., object]) -> list[float]:
    """The pauses ``of`` asks ``asyncio.sleep`` for, in order (others' sleeps pass through
    unrecorded)."""
    real_sleep, pauses = asyncio.sleep, []
    code = of.__code__  # type: ignore[attr-defined]

    async def sleep(delay: float, result: object = None) -> object:
        caller = sys._getframe(1)
        if caller.f_code is code:
            pauses.append(delay)
        return await real_sleep(delay, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return pauses


@pytest.mark.parametrize("stable", [False, True], ids=["hangs-up-at-once", "control-lasts"])
async def test_a_peer_that_hangs_up_after_its_hello_is_redialled_with_backoff(
    monkeypatch: pytest.MonkeyPatch, stable: bool
) -> None:
    """Scenario: the peer writes its hello and ends the call. A hello reset the backoff, so
    it was redialled every PEER_RECONNECT_BASE_MS for ever; now a session resets it only
    once it lasted PEER_SESSION_STABLE_MS, and the delay doubles as for an unreachable
    peer. Control: sessions that last (the clock moves on PEER_SESSION_STABLE_MS while
    each is up) keep the base delay. (The base is 1 ms here, so the test takes ms; the
    pauses the link asks for are recorded as it asks.)"""
    monkeypatch.setattr(_transport, "PEER_RECONNECT_BASE_MS", 1)
    pauses = _link_pauses(monkeypatch)
    clock = [1_000_000.0]  # not zero: a duration is a difference of two readings

    def on_up() -> None:
        if stable:  # exactly PEER_SESSION_STABLE_MS, then 1 ms more, in turn
            clock[0] += PEER_SESSION_STABLE_MS + dialer.sessions % 2

    dialer = _CountingDialer(on_up)
    async with _port(_HelloAndHangUp()) as port:
        link = await _dial(dialer, port, lambda: clock[0])
        running = asyncio.create_task(link.run())
        try:
            await dialer.reach(5)
            assert pauses[:4] == ([0.001] * 4 if stable else [0.002, 0.004, 0.008, 0.016])
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


async def _received(node: _Node, chunks: int) -> None:
    async with asyncio.timeout(WAIT_S):
        while len(node.delivered) < chunks:
            node._arrived.clear()
            await node._arrived.wait()


# --- a peer that never reads ---------------------------------------------------------------


class _NeverReads(peer_grpc.PeerServicer):
    """A Byzantine acceptor: the hello, then it never reads (HTTP/2 flow control closes)."""

    async def Connect(
        self, request_iterator: AsyncIterator[peer_pb.PeerFrame], context: Ctx
    ) -> None:
        await context.write(peer_pb.PeerHello(chain_id="test-chain", validator=0))
        await asyncio.Event().wait()


async def test_a_peer_that_never_reads_fills_its_own_queue_and_no_other_link_waits() -> None:
    """Scenario: one peer takes its hello's stream and never reads. 64 MiB sent to it and to
    an honest peer: its link's queue stays at PEER_SEND_QUEUE_BYTES_MAX (the oldest
    dropped, counted), while the honest peer receives every message in order."""
    stuck_dialer, honest_dialer, honest = _Dialer(), _Dialer(), _Node()
    forward = encode_message(TxForward(tuple(bytes([k]) * TX_BYTES_MAX for k in range(256))))
    async with (
        _port(_NeverReads()) as stuck_port,
        _port(PeerService(honest, _PINS)) as honest_port,  # type: ignore[arg-type]
    ):
        stuck = await _dial(stuck_dialer, stuck_port, lambda: 0.0)
        good = await _dial(honest_dialer, honest_port, lambda: 0.0)
        tasks = [asyncio.create_task(link.run()) for link in (stuck, good)]
        try:
            async with asyncio.timeout(WAIT_S):
                await stuck_dialer.up.wait()
                await honest_dialer.up.wait()
            for k in range(1, 65):
                for link in (stuck, good):
                    link.send(forward)
                await _received(honest, k * 256 // 16)  # every forward, in chunks of 16
                assert stuck._queued_bytes <= PEER_SEND_QUEUE_BYTES_MAX
            assert stuck._metrics.dropped._value.get() > 0
            assert good._metrics.dropped._value.get() == 0
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
