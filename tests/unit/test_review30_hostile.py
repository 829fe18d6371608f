"""Review 30 (hostile): the console's commit 044dca2 and the safety state's owner, c1d6b97.

Two holes, each shown beside a control; both failed before the fix (the same session):

- The console's status poll now reads timelines up to the head the block stream followed,
  so that a validator claiming height 2**63 cannot freeze the finality chart. But the
  stream starts ``CONSOLE_BLOCKS_KEPT`` below the SDK's ``head()``, which was that same
  claim: ``GetStatus`` of the current endpoint, validator 0 at start. Validator 0 saying
  2**63 made the console follow from 2**63 - 299, a block honest nodes wait for forever:
  no block, no timeline, head 0 and no error, on every restart; ``ledger watch``,
  ``ledger blocks`` and ``holders_at`` start from the same ``head()``. Fixed in the SDK:
  ``head()`` is never above the height that more than the Byzantine validators safety
  tolerates report, so at least one honest one has it.
- ``/api/positions`` promised that "requests that come while one is under way wait for it
  and take its answer", but a waiter read again whenever the console followed a block
  during that read. Blocks come every few milliseconds under load, far faster than one read
  per participant, so every queued request made its own read, one after the other: the
  cache never answered, and the k-th request waited k reads. Fixed: a request takes any
  read that finished after it came.
"""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from client import AsyncLedgerClient
from client._reference import Reference
from client.console import ConsoleServer
from node.wire import ledger_pb2 as pb
from tests.patience import HANG_S
from tests.unit.test_client_api_hostile import _Stub
from tests.unit.test_console import NET, Gated, Lying
from tests.unit.test_sdk_vs_lying_node import _client


def _statuses(*heights: int) -> AsyncLedgerClient:
    """A client of four nodes whose GetStatus say ``heights``, validator 0 its endpoint."""

    def node(height: int) -> _Stub:
        return _Stub(lambda method, req: pb.NodeStatus(chain_id="c", height=height))

    return _client([node(h) for h in heights])


async def test_a_current_endpoint_claiming_height_2_63_is_not_the_head() -> None:
    assert len(NET.genesis.validators) == 4 and NET.genesis.quorum == 3  # f = 1
    assert await asyncio.wait_for(_statuses(2**63, 3, 3, 3).head(), HANG_S) == 3
    assert await asyncio.wait_for(_statuses(2**63, 3, 2, 4).head(), HANG_S) == 4
    # Controls: honest endpoints are believed, a lagging current one is not raised.
    assert await asyncio.wait_for(_statuses(3, 3, 3, 3).head(), HANG_S) == 3
    assert await asyncio.wait_for(_statuses(2, 5, 5, 5).head(), HANG_S) == 2
    assert await asyncio.wait_for(_statuses(7, 0, 0, 0).head(), HANG_S) == 0


async def test_the_console_follows_from_the_sdks_head() -> None:
    """The console asks the SDK (above) where to start: its fake's head is the chain's."""
    server = ConsoleServer(Lying(3), poll_s=0.01)  # type: ignore[arg-type]
    async with TestClient(TestServer(server.app())) as http:
        assert await asyncio.wait_for(server.client.timed_to(3), HANG_S) == [1, 2, 3]  # type: ignore[attr-defined]
        doc = await (await asyncio.wait_for(http.get("/api/network"), HANG_S)).json()
    assert doc["head"] == 3 and doc["followed_height"] == 3


class Busy(Gated):
    """A ledger under load: the console follows a new block during every positions read."""

    server: ConsoleServer | None = None

    async def reference(self) -> Reference:
        assert self.server is not None
        self.server.model.head += 1  # a block followed while this read is under way
        return await super().reference()


async def test_requests_during_a_read_take_its_answer_even_if_a_block_came_meanwhile() -> None:
    client = Busy()
    server = client.server = ConsoleServer(client, poll_s=0.01)  # type: ignore[arg-type]
    server.model.head = 7
    request = make_mocked_request("GET", "/api/positions")
    answers = [asyncio.create_task(server._positions(request)) for _ in range(5)]
    await asyncio.wait_for(client.asked.wait(), HANG_S)  # the first read is under way
    client.gate.set()
    bodies = {r.text for r in await asyncio.wait_for(asyncio.gather(*answers), HANG_S)}
    once = len(NET.genesis.participants)
    assert (client.references, client.balance_reads, len(bodies)) == (1, once, 1)
    # Control: a request that comes after that read, a block later, reads again.
    await asyncio.wait_for(server._positions(request), HANG_S)
    assert (client.references, client.balance_reads) == (2, 2 * once)
