"""Bounded shares of a node-wide resource per client connection.

A node-wide cap alone (``WAITERS_MAX`` finality waits, ``BLOCK_STREAMS_MAX`` streams,
``HEALTH_WATCHES_MAX`` watches) lets one anonymous client take all of it and refuse every
other client. A ``Shares`` also caps what one connection (gRPC's peer string: address and
port of the TCP connection) holds at once, so another connection always finds room
unless many connections fill it together, and ``CLIENT_CONNECTIONS_MAX`` bounds those.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from node.invariant import InvariantError
from node.runtime._grpc import Ctx
from node.runtime._refuse import refuse
from node.wire.errors import Reason

__all__ = ["Shares"]


class Shares:
    def __init__(self, what: str, total_max: int, per_connection_max: int) -> None:
        if not 0 < per_connection_max < total_max:
            raise ValueError("need 0 < per_connection_max < total_max")
        self.what, self.total_max, self.per_connection_max = what, total_max, per_connection_max
        self.total = 0
        self._held: dict[str, int] = {}

    def refusal(self, connection: str) -> str | None:
        """Why ``connection`` may not take one more share now, or None."""
        mine = self._held.get(connection, 0)
        if mine >= self.per_connection_max:
            return (
                f"this connection holds {mine} {self.what}, the limit per connection; "
                "finish or cancel some first, or open them at another node"
            )
        if self.total >= self.total_max:
            return (
                f"{self.total_max} {self.what} are open at this node; "
                "retry later or use another node"
            )
        return None

    def take(self, connection: str) -> None:
        """One share for ``connection``; the caller checked ``refusal`` first."""
        if self.refusal(connection) is not None:
            raise InvariantError(f"{self.what}: a share taken past its limit")
        self.total += 1
        self._held[connection] = self._held.get(connection, 0) + 1

    def give_back(self, connection: str) -> None:
        """Return one share ``connection`` holds."""
        held = self._held.get(connection, 0)
        if held <= 0:
            raise InvariantError(f"{self.what}: {connection} gives back a share it does not hold")
        self.total -= 1
        if held > 1:
            self._held[connection] = held - 1
        else:
            del self._held[connection]  # the map holds live connections only

    @asynccontextmanager
    async def hold(self, context: Ctx) -> AsyncIterator[None]:
        """One share for the calling connection while the block runs; RESOURCE_EXHAUSTED
        (the call ends, nothing else happens) when none is left."""
        connection = context.peer()
        why = self.refusal(connection)
        if why is not None:
            limit = {"limit": self.what}
            await refuse(
                context, grpc.StatusCode.RESOURCE_EXHAUSTED, why, Reason.LIMIT_REACHED, limit
            )
        self.take(connection)
        try:
            yield
        finally:
            self.give_back(connection)
