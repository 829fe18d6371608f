"""Tests for the survivors of cosmic-ray on node/runtime/_stream.py (review 32, target
``runtime.stream``; docs/testing.md "The submit stream and the read budget"): a
correlation of 0, the bounds at sizes above the integers CPython shares, a refusal's
default hint, fractions of a second in a finality wait, the session's named arguments."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest

from node.config import SUBMIT_STREAM_INFLIGHT_MAX
from node.core.mempool import AddResult
from node.runtime import _stream as stream_module
from node.runtime._shares import Shares
from node.runtime._stream import Refusal, SubmitSession, limit_reached, offer
from node.wire.errors import Reason
from tests.unit.test_stream_teeth import _AdmittingNode, _events_of, _req, _tid, _tx
from tests.unit.test_submit_stream import PEER, _kinds, _Node, _Requests, _settle, _take
from tests.unit.test_submit_stream import _req as _plain

_Code = grpc.StatusCode


def _open(node: _Node, inflight_max: int, waits: Shares) -> tuple[SubmitSession, _Requests]:
    session = SubmitSession(
        node,  # type: ignore[arg-type]
        waits,
        PEER,
        inflight_max,
        node.metrics,
        caller="BANK03",
        may_read=lambda raw, height: True,
    )
    return session, _Requests()


async def test_a_request_of_correlation_0_takes_and_frees_its_slot_like_any_other() -> None:
    """The client chooses correlations (any uint64; the `opened` event's 0 is no reason
    to refuse one). A request numbered 0 settles, its final frees its slot and its wait
    share, and the stream ends clean: the marker of a refusal that took no slot must not
    be a correlation a client may send (cosmic-ray's ``_REFUSAL`` of 0 and ``not 1``)."""
    node = _Node()
    waits = Shares("finality waits", 100, 50)
    session, reqs = _open(node, 2, waits)
    reader = asyncio.create_task(session.read(reqs.__aiter__()))
    reqs.queue.put_nowait(_req(0, b"tx0"))
    reqs.queue.put_nowait(_req(0, b"tx0 again"))  # control: 0 in flight is refused as such
    await _settle()
    events = session.events()
    got = await _take(events, 2)
    assert sorted(_kinds(got)) == [(0, "accepted"), (0, "error")]
    refused = next(e for e in got if e.WhichOneof("kind") == "error")
    assert refused.error.reason == Reason.CORRELATION_IN_FLIGHT
    assert set(session.inflight) == {0} and waits.total == 1
    node.final(b"tx0", height=4)
    assert _kinds(await _take(events, 1)) == [(0, "final")]
    assert session.inflight == {} and waits.total == 0
    assert node.metrics.stream_inflight._value.get() == 0
    reqs.queue.put_nowait(None)
    async with asyncio.timeout(5):
        assert [e async for e in events] == []  # half-closed, all answered: it ends
        await reader


async def test_the_in_flight_bound_holds_at_its_default_size() -> None:
    """A node's default bound is SUBMIT_STREAM_INFLIGHT_MAX (1,000), above the integers
    CPython shares: the count is compared by value, and the request past it is refused
    naming the limit (cosmic-ray's ``is`` for ``>=``: no bound at all)."""
    node = _Node()
    most = SUBMIT_STREAM_INFLIGHT_MAX
    waits = Shares("finality waits", 10 * most, 2 * most)
    session, reqs = _open(node, SUBMIT_STREAM_INFLIGHT_MAX, waits)
    reader = asyncio.create_task(session.read(reqs.__aiter__()))
    try:
        for k in range(1, SUBMIT_STREAM_INFLIGHT_MAX + 2):
            reqs.queue.put_nowait(_plain(k))
        async with asyncio.timeout(10):
            while reqs.read < SUBMIT_STREAM_INFLIGHT_MAX + 1:
                await asyncio.sleep(0)
        assert len(session.inflight) == SUBMIT_STREAM_INFLIGHT_MAX
        refused = [ev for ev, frees in session._queue if ev.WhichOneof("kind") == "error"]
        assert [e.correlation for e in refused] == [SUBMIT_STREAM_INFLIGHT_MAX + 1]
        assert dict(refused[0].error.metadata) == {"limit": "stream in flight"}
    finally:
        session.close()
        reader.cancel()


async def test_the_refusal_queue_bound_holds_above_the_small_integers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SUBMIT_STREAM_ERRORS_QUEUED_MAX is 64 today; a node configured with more than 256
    must still stop reading a client that does not read (cosmic-ray's ``is`` for ``>=``
    holds only while the bound is an integer CPython shares)."""
    bound = 300
    monkeypatch.setattr(stream_module, "SUBMIT_STREAM_ERRORS_QUEUED_MAX", bound)
    node = _Node()
    session, reqs = _open(node, 1, Shares("finality waits", 100, 50))
    reader = asyncio.create_task(session.read(reqs.__aiter__()))
    for k in range(1, bound + 50):
        reqs.queue.put_nowait(_plain(k))
    for _ in range(5):
        await _settle()
    assert reqs.read == 1 + bound  # one took the slot, then `bound` refusals: reading stops
    session.close()
    reader.cancel()


def test_a_refusal_is_a_value_nobody_can_change() -> None:
    """A Refusal is built once and read by the unary status, the stream event and the
    metrics: nothing may change it on the way (cosmic-ray's ``frozen=False``,
    ``slots=False``)."""
    refused = limit_reached("stream in flight", "full")
    with pytest.raises(dataclasses.FrozenInstanceError):
        refused.retry_after_ms = 5  # type: ignore[misc]
    assert not hasattr(refused, "__dict__")  # slots: no attribute can be added either


async def test_a_refusal_without_a_hint_says_no_retry_time() -> None:
    """Only admission control's refusal (OVERLOADED) carries a retry hint; a full mempool
    or a limit carries 0, which the SDK reads as BusyError, not as a wait-and-resend
    (client/_stream.py ``_retry_later``; cosmic-ray's default ``retry_after_ms = 1``)."""
    assert Refusal(_Code.RESOURCE_EXHAUSTED, Reason.MEMPOOL_FULL, "full").retry_after_ms == 0
    node = _AdmittingNode()
    node.result = AddResult.FULL
    full = await offer(node, _tx(1))  # type: ignore[arg-type]
    assert isinstance(full, Refusal) and full.details().retry_after_ms == 0
    assert limit_reached("stream in flight", "x").details().retry_after_ms == 0
    got = await _events_of(node, _req(1, _tx(2)), n=1)
    assert got[0].error.reason == Reason.MEMPOOL_FULL and got[0].error.retry_after_ms == 0
    # control: an overloaded node's refusal does carry its hint
    node.result = AddResult.ACCEPTED
    node.mempool.backlog = 10**6
    over = await offer(node, _tx(3), 1_000)  # type: ignore[arg-type]
    assert isinstance(over, Refusal) and over.reason == Reason.OVERLOADED
    assert over.retry_after_ms > 0


async def test_a_finality_wait_keeps_the_milliseconds_of_its_timeout() -> None:
    """A request's ``timeout_ms`` of 2,500 waits 2.5 s, not 2; one of 500 waits 0.5 s, not
    0 (a wait of 0 s ends at once: NOT_FINAL for every sub-second request; cosmic-ray's
    ``//`` for ``/``)."""
    node = _AdmittingNode()
    await _events_of(node, _req(1, _tx(1), timeout_ms=2_500), _req(2, _tx(2), timeout_ms=500), n=2)
    assert {tid: t for tid, t, _ in node.waits} == {_tid(_tx(1)): 2.5, _tid(_tx(2)): 0.5}


def test_the_sessions_caller_and_read_rule_are_named() -> None:
    """The caller (a participant id) and its read rule are passed by keyword: by position
    the connection's address (also a string) could be taken for the caller (cosmic-ray's
    ``/`` for ``*``)."""
    node = _Node()
    waits = Shares("finality waits", 10, 5)
    args = (node, waits, PEER, 4, node.metrics)
    with pytest.raises(TypeError):
        SubmitSession(*args, "BANK03", lambda raw, height: True)  # type: ignore[arg-type,call-arg]
    named = SubmitSession(*args, caller="BANK03", may_read=lambda raw, h: True)  # type: ignore[arg-type]
    assert named.inflight_max == 4  # control: named, it works
