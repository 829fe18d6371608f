"""The SDK against one lying validator (session 32's adversarial review): each test is a
defect the review found, and failed on the code before its fix; each has a control the
fix must not break. The node is faked in-process, as in test_sdk_vs_lying_node.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from node.wire import ledger_pb2 as pb
from tests.unit.test_client_stream import _Call, _final, _plain_signed, _raw, _stream
from tests.unit.test_client_stream_hostile import NOT_DONE, _done_within

__all__ = ["_plain_signed"]  # the fixture: raw bytes stand for signed transactions

GUARD_S = 3.0  # far below the requests' 30 s deadline: an answer here came by failover


# --- 1. an unexpected event on a submit stream broke it for good ---------------------------


def _opened_again(corr: int) -> pb.SubmitStreamEvent:
    return pb.SubmitStreamEvent(opened=pb.SubmitStreamOpened(inflight_max=4))


def _no_kind(corr: int) -> pb.SubmitStreamEvent:
    return pb.SubmitStreamEvent(correlation=corr)


def _final_for_no_request(corr: int) -> pb.SubmitStreamEvent:
    return _final(corr + 98)


@pytest.mark.parametrize("event", [_final_for_no_request, _opened_again, _no_kind])
async def test_an_unexpected_stream_event_fails_over_and_keeps_the_requests(event: Any) -> None:
    """The stream's node sends an event no request of it called for (a final for a
    correlation never sent, a second opened event, an event of no kind) and then nothing.
    ``_on_event`` raised BadResponseError, which ``_read`` took for the whole stream's
    failure: every request in flight failed, every later submit was refused, and the
    client's current endpoint stayed on that node, so the caller's next stream opened there
    and broke again. One node's bad answer is its own fault: the stream leaves it and the
    requests in flight are resent on the next node, which settles them."""
    second = _Call()
    opened: list[str] = []

    async def reopen(failed: str) -> tuple[Any, str]:
        opened.append(failed)
        return second, "127.0.0.1:8001"

    first = _Call()
    s = _stream(first, inflight_max=4, reopen=reopen)
    try:
        fut = await s.submit(_raw(1))
        first.events.put_nowait(event(1))  # then the hostile node says nothing more

        async def answer_on_second() -> None:
            while not second.sent:
                await asyncio.sleep(0.01)
            second.events.put_nowait(_final(second.sent[0].correlation))

        helper = asyncio.create_task(answer_on_second())
        outcome = await _done_within(asyncio.shield(fut), GUARD_S)
        helper.cancel()
        await asyncio.gather(helper, return_exceptions=True)
        assert outcome is not NOT_DONE, "the request waited at the node that sent nonsense"
        assert not isinstance(outcome, BaseException), f"failed, not failed over: {outcome!r}"
        assert opened == ["127.0.0.1:8000"] and s.address == "127.0.0.1:8001"
        # The stream still works: a later request goes to the next node and settles.
        later = await s.submit(_raw(2))
        second.events.put_nowait(_final(second.sent[-1].correlation))
        assert (await _done_within(asyncio.shield(later), GUARD_S)).tx_id == _raw(2)[-8:]
    finally:
        await s.cancel()
