"""Resubmitting is safe (review 35a): docs/sdk.md promises that the same signed transaction
may be sent again at any time, to any node, and is answered with its one outcome. A node's
``Submit`` (and a stream's request, through the same ``offer``) ran the precheck before it
looked the id up, so a transaction committed long ago and sent again after its expiry (the
SDK's own resend after the node that accepted it died; a back office's resubmit after a
FinalityTimeoutError) was refused INVALID_ARGUMENT ``EXPIRED`` by every honest node: the
SDK raised InvalidTransactionError, "fix it and sign a new transaction", for a trade that
had settled, and the new one pays again. A real one-validator node, in process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from node.genesis import DemoNetwork, demo_genesis
from node.runtime import Metrics, Node
from node.runtime._stream import Refusal, offer
from node.settlement import precheck
from node.store import MemoryStore
from node.wire import ledger_pb2 as pb
from tests.ledger_helpers import TxFactory

_MINUTE_MS = 60_000


@pytest.fixture(scope="module")
def solo() -> DemoNetwork:
    return demo_genesis(validators=1, quorum=1, seed=b"review35a-resubmit")


class _Clock:
    """The node's clock: the wall's, plus what the test moved it on by."""

    def __init__(self) -> None:
        self.skew_ms = 0

    def __call__(self) -> int:
        return int(time.time() * 1000) + self.skew_ms


@pytest.fixture
async def node(solo: DemoNetwork) -> AsyncIterator[tuple[Node, _Clock]]:
    clock = _Clock()
    n = Node(
        solo.genesis, 0, solo.validator_keys[0], MemoryStore(solo.genesis), Metrics(), clock=clock
    )
    n.start()
    try:
        yield n, clock
    finally:
        n.stop()
        n.close()


async def _committed(n: Node, raw: bytes) -> bytes:
    offered = await offer(n, raw)
    assert not isinstance(offered, Refusal), offered
    tid, outcome = offered
    assert outcome == pb.ACCEPTED
    async with asyncio.timeout(30):
        while n.store.tx_record(tid) is None:
            await asyncio.sleep(0.01)
    return tid


async def test_a_committed_transaction_sent_again_after_its_expiry_is_already_committed(
    solo: DemoNetwork, node: tuple[Node, _Clock]
) -> None:
    n, clock = node
    now = clock()
    raw = TxFactory(solo, now_ms=now).signed(
        TxFactory(solo, now_ms=now).dvp(expiry_ms=now + _MINUTE_MS)
    )
    tid = await _committed(n, raw)
    assert precheck(solo.genesis, raw).tx_id == tid
    clock.skew_ms = 10 * _MINUTE_MS  # long past its expiry and the node's tolerance
    assert await offer(n, raw) == (tid, pb.ALREADY_COMMITTED)


async def test_control_a_new_transaction_past_its_expiry_is_refused_expired(
    solo: DemoNetwork, node: tuple[Node, _Clock]
) -> None:
    n, clock = node
    now = clock()
    txf = TxFactory(solo, now_ms=now)
    await _committed(n, txf.signed(txf.dvp(expiry_ms=now + _MINUTE_MS)))
    clock.skew_ms = 10 * _MINUTE_MS
    late = await offer(n, txf.signed(txf.dvp(expiry_ms=now + _MINUTE_MS)))
    assert isinstance(late, Refusal) and "EXPIRED" in late.message
