"""The runtime's timer and per-block observers, on a real ``Node`` on the test's loop.

The node arms one loop timer for the replica's next deadline (or the idle tick). It
re-arms only when the deadline moves earlier than the armed timer: a timer that fires
early runs a tick that does nothing and arms the next (docs/performance.md, "Issue 13,
session 28": re-arming after every message cost 5% of a validator's CPU at 26/16).
"""

from __future__ import annotations

import asyncio

import pytest

from node.runtime._node import _IDLE_TICK_MS
from node.runtime._velocity import VelocityWatch
from node.settlement import precheck
from node.store import MemoryStore
from tests.ledger_helpers import TxFactory, shared_net
from tests.patience import HANG_S
from tests.unit.test_failstop import Harness, solo_net


class _Deadline:
    """Stands in for the replica's deadline, which the test sets."""

    def __init__(self) -> None:
        self.at: int | None = None

    def __call__(self) -> int | None:
        return self.at


def _started(monkeypatch: pytest.MonkeyPatch) -> tuple[Harness, _Deadline]:
    net = shared_net()  # 4 validators, this one alone: the test says when its deadline is
    h = Harness(net, MemoryStore(net.genesis), index=2)
    deadline = _Deadline()
    monkeypatch.setattr(h.node.replica, "deadline_ms", deadline)
    h.node.start()
    return h, deadline


async def test_the_timer_moves_only_earlier_and_keeps_its_handle_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h, deadline = _started(monkeypatch)
    node, now = h.node, h.now_ms
    deadline.at = now + 500
    node._arm_timer()
    first = node._timer
    assert first is not None and node._timer_at == now + 500
    deadline.at = now + 800  # later: the armed timer stays (it fires early, harmlessly)
    node._arm_timer()
    assert node._timer is first and node._timer_at == now + 500
    deadline.at = None  # only the idle tick, later still
    node._arm_timer()
    assert node._timer is first
    deadline.at = now + 100  # earlier: re-armed, the old handle cancelled
    node._arm_timer()
    assert node._timer is not first and first.cancelled()
    assert node._timer_at == now + 100
    node.stop()


async def test_an_early_timer_ticks_and_arms_the_next_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h, deadline = _started(monkeypatch)
    node, now = h.node, h.now_ms
    ticks: list[int] = []
    real_tick = node.engine.tick
    monkeypatch.setattr(node.engine, "tick", lambda t: (ticks.append(t), real_tick(t))[1])
    deadline.at = now + 20  # 20 ms of loop time from now
    node._arm_timer()
    deadline.at = None  # the deadline went away before the timer fired
    await asyncio.sleep(0.3)
    assert ticks == [now]  # it fired once, early for what is left: the idle tick
    assert node._timer is not None and node._timer_at == now + _IDLE_TICK_MS
    node.stop()


async def test_a_committed_block_reaches_the_velocity_watch_as_executed() -> None:
    """The node hands the watch the bodies its execution decoded (no second decode): two
    settled transfers between two accounts cross a bound of one move, counted in the metric."""
    net = solo_net()
    h = Harness(net, MemoryStore(net.genesis))
    h.node.velocity = VelocityWatch(h.node.registry, txs_max=1)
    h.node.start()
    txf = TxFactory(net)
    ids = []
    for _ in range(2):
        raw = txf.signed(txf.transfer("BANK01", "BANK02", 5))
        ids.append(precheck(net.genesis, raw).tx_id)
        await h.node.submit(raw, ids[-1])
    async with asyncio.timeout(HANG_S):
        while any(h.store.tx_record(tid) is None for tid in ids):
            h.now_ms += 10  # the node's clock, past its batch delay
            await asyncio.sleep(0.01)
    alerts = h.node.metrics.registry.get_sample_value(
        "ledger_velocity_alerts_total", {"rule": "count"}
    )
    assert alerts == 2.0  # BANK01 and BANK02 each moved twice: one alert each
    h.node.stop()
