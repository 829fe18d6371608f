"""A peer that dials in ends our wait to redial it (node/runtime/_transport.py,
``PeerLink.peer_dialed_in``; docs/cluster.md "Peer streams").

A validator restarted after a few seconds down dials its peers at once, but their streams
to it, which carry its catch-up answers and the proposals, came back only when each
peer's backoff ran out: 1 to 5 s after it started (review 33o; `make outage --down-s`
measured 1.4 to 5.7 s). Now the acceptor tells the link to that peer when the peer's
hello has left (authenticated and charged), and a link waiting out its backoff dials at
once, at most once per PEER_SESSION_STABLE_MS so a peer dialing in a loop does not make
us dial it in a loop. Real gRPC over loopback; the clock of the rate is the test's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest

from node.config import PEER_RECONNECT_MAX_MS, PEER_SESSION_STABLE_MS
from node.runtime import _transport
from node.runtime._transport import PeerLink, PeerService
from tests.unit.test_peer_streams import _PINS, _Context, _frames, _Node, _port
from tests.unit.test_review34t_transport import (
    _CountingDialer,
    _dial,
    _HelloAndHangUp,
    _link_pauses,
)

SOON_S = 1.0  # well inside the 5 s backoff, well above a loopback dial


@contextlib.asynccontextmanager
async def _waiting_link(
    monkeypatch: pytest.MonkeyPatch, clock: list[float]
) -> AsyncIterator[tuple[PeerLink, _CountingDialer, list[float]]]:
    """A link whose peer says hello and hangs up, after its first session: waiting
    PEER_RECONNECT_MAX_MS before the next dial."""
    monkeypatch.setattr(_transport, "PEER_RECONNECT_BASE_MS", PEER_RECONNECT_MAX_MS)
    pauses = _link_pauses(monkeypatch)
    dialer = _CountingDialer()
    async with _port(_HelloAndHangUp()) as port:
        link = await _dial(dialer, port, lambda: clock[0])
        running = asyncio.create_task(link.run())
        try:
            await dialer.reach(1)
            async with asyncio.timeout(SOON_S):
                while not pauses:
                    await asyncio.sleep(0.001)
            assert pauses == [PEER_RECONNECT_MAX_MS / 1000]
            yield link, dialer, pauses
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


async def _dials_soon(dialer: _CountingDialer, sessions: int) -> bool:
    try:
        async with asyncio.timeout(SOON_S):
            await dialer.reach(sessions)
    except TimeoutError:
        return False
    return True


async def test_a_peer_that_dials_in_is_redialled_at_once_not_after_the_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second dial comes within SOON_S of the dial-in, not PEER_RECONNECT_MAX_MS after
    the first session. Control: without a dial-in, no second dial within SOON_S."""
    clock = [1_000_000.0]
    async with _waiting_link(monkeypatch, clock) as (link, dialer, _):
        assert not await _dials_soon(dialer, 2)  # control: the backoff holds
        link.peer_dialed_in()
        assert await _dials_soon(dialer, 2)


async def test_a_peer_dialing_in_a_loop_ends_the_wait_once_per_stable_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After one early dial, dial-ins within PEER_SESSION_STABLE_MS leave the backoff as it
    is (a peer that dials in and hangs up in a loop would otherwise have us dial it in a
    loop); once that long has passed, a dial-in ends the wait again."""
    clock = [1_000_000.0]
    async with _waiting_link(monkeypatch, clock) as (link, dialer, pauses):
        link.peer_dialed_in()
        assert await _dials_soon(dialer, 2)
        async with asyncio.timeout(SOON_S):
            while len(pauses) < 2:  # waiting again after the second short session
                await asyncio.sleep(0.001)
        clock[0] += PEER_SESSION_STABLE_MS - 1
        link.peer_dialed_in()
        assert not await _dials_soon(dialer, 3)
        clock[0] += 1
        link.peer_dialed_in()
        assert await _dials_soon(dialer, 3)


async def test_a_dial_in_while_the_link_is_not_waiting_is_not_kept_for_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dial-in that comes while the link is in a session (or dialing) does nothing: it
    would otherwise end the next backoff before it began, a free redial for a peer that
    dials in just before it hangs up. And it does not use up the once-per-period wake."""
    clock = [1_000_000.0]
    monkeypatch.setattr(_transport, "PEER_RECONNECT_BASE_MS", PEER_RECONNECT_MAX_MS)
    # A lambda: the link is made after the dialer.
    dialer = _CountingDialer(on_up=lambda: link.peer_dialed_in())  # noqa: PLW0108
    async with _port(_HelloAndHangUp()) as port:
        link = await _dial(dialer, port, lambda: clock[0])
        running = asyncio.create_task(link.run())
        try:
            await dialer.reach(1)
            assert not await _dials_soon(dialer, 2)
            link.peer_dialed_in()  # control: now waiting, the wake was not used up
            assert await _dials_soon(dialer, 2)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


async def test_the_acceptor_tells_the_link_only_after_an_authenticated_hello_left() -> None:
    """``PeerService`` calls ``dialed_in`` with the source once its hello has left: not
    while the hello is held back (a dialer holding flow control at zero), not for a call
    without a pinned certificate. Control: a call whose hello leaves tells it."""
    told: list[int] = []
    held = _Context(1, stall=True)
    call = asyncio.create_task(
        PeerService(_Node(), _PINS, dialed_in=told.append).Connect(_frames(), held)  # type: ignore[arg-type]
    )
    await held.writing.wait()
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await call
    stranger = _Context(1)
    stranger.auth_context = lambda: {"x509_pem_cert": [b"not a certificate"]}  # type: ignore[method-assign]
    with pytest.raises(grpc.aio.AbortError):
        await PeerService(_Node(), _PINS, dialed_in=told.append).Connect(_frames(), stranger)  # type: ignore[arg-type]
    assert told == []
    ok = _Context(2)
    await PeerService(_Node(), _PINS, dialed_in=told.append).Connect(_frames(), ok)  # type: ignore[arg-type]
    assert told == [2]
