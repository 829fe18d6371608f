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

from node.runtime._grpc import Ctx

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

    @asynccontextmanager
    async def hold(self, context: Ctx) -> AsyncIterator[None]:
        """One share for the calling connection while the block runs; RESOURCE_EXHAUSTED
        (the call ends, nothing else happens) when none is left."""
        connection = context.peer()
        why = self.refusal(connection)
        if why is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, why)
        self.total += 1
        self._held[connection] = self._held.get(connection, 0) + 1
        try:
            yield
        finally:
            self.total -= 1
            left = self._held[connection] - 1
            if left:
                self._held[connection] = left
            else:
                del self._held[connection]  # the map holds live connections only
