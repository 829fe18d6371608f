"""Shares: a connection's share and the node-wide total are both enforced, a refusal is
RESOURCE_EXHAUSTED with a message that says which limit, and every share comes back."""

from __future__ import annotations

import contextlib
from typing import Any, NoReturn

import grpc
import pytest

from node.runtime._shares import Shares
from node.wire.errors import Details, from_trailer


class _Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str, trailing: Any = ()) -> None:
        super().__init__(details)
        self.code, self.details, self.trailing = code, details, trailing


class _Ctx:
    def __init__(self, peer: str) -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer

    async def abort(
        self, code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, Any], ...] = ()
    ) -> NoReturn:
        raise _Aborted(code, details, trailing)


async def _hold(shares: Shares, stack: contextlib.AsyncExitStack, peer: str) -> None:
    ctx: Any = _Ctx(peer)
    await stack.enter_async_context(shares.hold(ctx))


async def test_a_connection_gets_its_share_and_no_more() -> None:
    shares = Shares("block streams", total_max=5, per_connection_max=2)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            await _hold(shares, stack, "ipv4:10.0.0.1:1000")
        with pytest.raises(_Aborted) as e:
            await _hold(shares, stack, "ipv4:10.0.0.1:1000")
        assert e.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit per connection" in e.value.details
        details = from_trailer(e.value.code, e.value.details, e.value.trailing)  # ADR 0020
        assert details == Details("LIMIT_REACHED", {"limit": "block streams"})
        await _hold(shares, stack, "ipv4:10.0.0.1:1001")  # another connection still gets one
        assert shares.total == 3


async def test_the_node_total_holds_across_connections() -> None:
    shares = Shares("health watches", total_max=3, per_connection_max=2)
    async with contextlib.AsyncExitStack() as stack:
        for peer in ("a:1", "b:1", "c:1"):
            await _hold(shares, stack, peer)
        with pytest.raises(_Aborted) as e:
            await _hold(shares, stack, "d:1")
        assert "3 health watches are open at this node" in e.value.details
    assert shares.total == 0 and shares.refusal("a:1") is None


async def test_shares_come_back_when_the_call_fails() -> None:
    shares = Shares("finality waits", total_max=4, per_connection_max=1)
    ctx: Any = _Ctx("a:1")
    with pytest.raises(RuntimeError):
        async with shares.hold(ctx):
            raise RuntimeError("the call ended")
    assert shares.total == 0 and shares.refusal("a:1") is None


def test_a_share_must_be_smaller_than_the_whole() -> None:
    with pytest.raises(ValueError, match="per_connection_max"):
        Shares("x", total_max=2, per_connection_max=2)
