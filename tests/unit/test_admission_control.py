"""The admission estimator (node/runtime/_admission.py), driven by explicit times: it admits
when idle, refuses what cannot settle within the client's deadline with a bounded and
honest retry-after hint, and admits again once the backlog drains."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest

from node.config import ADMISSION_QUEUE_MAX_LIMIT_MS, ADMISSION_QUEUE_MAX_MS
from node.netconfig import ConfigError, load_node_config, write_node_config
from node.runtime._admission import Admission, Overloaded
from tests.unit.test_submit_stream import _node_config

WINDOW_MS = 100


def _estimator(**kw: int) -> Admission:
    args = {
        "rate_floor_tps": 10,
        "window_ms": WINDOW_MS,
        "weight_pct": 50,
        "share_pct": 50,
        "retry_min_ms": 10,
        "retry_max_ms": 5_000,
        "queue_max_ms": 10**9,  # the deadline alone decides, unless a test says otherwise
    }
    args.update(kw)
    return Admission(0, **args)


def _busy_at(rate_tps: int, backlog: int, *, windows: int = 4, **kw: int) -> tuple[Admission, int]:
    """An estimator that watched the node commit ``rate_tps`` with ``backlog`` always held."""
    a = _estimator(**kw)
    t = WINDOW_MS
    a.committed(0, backlog, t)  # the first window (idle, nothing held) measures nothing
    for _ in range(windows):
        t += WINDOW_MS
        a.committed(rate_tps * WINDOW_MS // 1000, backlog, t)
    assert a.rate_tps == rate_tps
    return a, t


def test_an_idle_node_admits_at_the_floor_rate() -> None:
    a = _estimator()
    assert a.rate_tps == 10
    assert a.check(0, 30_000, 0) is None
    for t in range(WINDOW_MS, 10_000, WINDOW_MS):  # long idle: nothing held, nothing committed
        a.committed(0, 0, t)
    assert a.rate_tps == 10
    assert a.check(0, 30_000, 10_000) is None
    # At the floor, a 30 s deadline (15 s budget) admits a backlog of 150 and not 151.
    assert a.check(150, 30_000, 10_000) is None
    assert a.check(151, 30_000, 10_000) is not None
    # Holding nothing, it admits whatever the deadline: the transaction waits for no one.
    assert a.check(0, 1, 10_000) is None


def test_the_backlog_is_admitted_exactly_up_to_the_deadline_share() -> None:
    a, t = _busy_at(1_000, backlog=5_000)
    # 1,000/s and a 2 s deadline: 1 s budget, so 1,000 held settle in time ...
    assert a.check(1_000, 2_000, t) is None
    # ... one more does not (negative control of the line above: the same check fires).
    refused = a.check(1_001, 2_000, t)
    assert refused == Overloaded(settle_ms=1_001, budget_ms=1_000, retry_after_ms=10)
    assert "retry after 10 ms" in refused.message()
    # A longer deadline admits the same backlog.
    assert a.check(1_001, 4_000, t) is None


def test_whatever_the_deadline_the_queue_stays_within_its_bound() -> None:
    a, t = _busy_at(1_000, backlog=5_000, queue_max_ms=2_000)
    assert a.check(2_000, 300_000, t) is None
    refused = a.check(2_001, 300_000, t)
    assert refused is not None and refused.budget_ms == 2_000
    # A deadline shorter than the bound is still the deadline's share.
    assert a.check(1_000, 2_000, t) is None and a.check(1_001, 2_000, t) is not None


def test_the_hint_is_the_drain_time_of_the_excess_and_bounded() -> None:
    a, t = _busy_at(1_000, backlog=5_000)
    refused = a.check(1_500, 2_000, t)
    assert refused is not None and refused.retry_after_ms == 500
    # After the hint, at the rate measured, 500 committed: the same client now gets in.
    a.committed(500, 1_000, t + 500)
    assert a.check(1_000, 2_000, t + 500) is None
    huge = a.check(10**9, 2_000, t + 500)
    assert huge is not None and huge.retry_after_ms == 5_000  # capped
    barely = a.check(1_001, 2_000, t + 500)
    assert barely is not None and barely.retry_after_ms == 10  # at least the minimum


def test_a_stalled_node_refuses_more_until_it_commits_again() -> None:
    a, t = _busy_at(1_000, backlog=500)
    assert a.check(500, 2_000, t) is None
    for _ in range(20):  # a view change: backlog held, nothing commits
        t += WINDOW_MS
        a.committed(0, 500, t)
    assert a.rate_tps == 10  # down to the floor
    assert a.check(500, 2_000, t) is not None
    for _ in range(20):  # committing again, the backlog drains
        t += WINDOW_MS
        a.committed(100, 400, t)
    assert a.rate_tps == pytest.approx(1_000, rel=0.01)
    assert a.check(400, 2_000, t) is None


def test_a_partly_idle_window_never_lowers_the_measured_rate() -> None:
    a, t = _busy_at(1_000, backlog=5_000)
    t += WINDOW_MS
    a.committed(100, 0, t)  # the last busy window drains what was held
    for _ in range(10):  # light load: everything held commits within each window
        t += WINDOW_MS
        a.committed(5, 0, t)
    assert a.rate_tps == 1_000
    # ... but one that shows more capacity raises it.
    t += WINDOW_MS
    a.committed(300, 0, t)
    assert a.rate_tps == 2_000


def test_checks_alone_close_windows_so_a_silent_stall_is_seen() -> None:
    a, t = _busy_at(1_000, backlog=500)
    for _ in range(20):  # no block commits at all: only the submits tick the estimator
        t += WINDOW_MS
        a.check(500, 2_000, t)
    assert a.rate_tps == 10


def test_a_clock_stepping_back_restarts_the_window() -> None:
    a, t = _busy_at(1_000, backlog=5_000)
    a.committed(50, 5_000, t - 10_000)
    a.committed(100, 5_000, t - 10_000 + WINDOW_MS)
    assert a.rate_tps == 1_000


# --- the target of issue 13 item 7, on a model queue ----------------------------------------

Check = Callable[[int, int, int], Overloaded | None]


def _overload(check: Check, on_commit: Callable[[int, int, int], None]) -> tuple[int, int, int]:
    """A FIFO node committing 100 txs/s (5 every 50 ms) offered 200/s for 20 s with a 2 s
    deadline: (committed, refused, accepted trades that missed their deadline)."""
    deadline_ms, queue, t = 2_000, deque[int](), 0
    committed = refused = missed = 0
    while t < 20_000:
        t += 5
        if check(len(queue), deadline_ms, t) is None:
            queue.append(t)
        else:
            refused += 1
        if t % 50 == 0:
            done = [queue.popleft() for _ in range(min(5, len(queue)))]
            committed += len(done)
            missed += sum(1 for sent in done if t - sent > deadline_ms)
            on_commit(len(done), len(queue), t)
    return committed, refused, missed


def test_at_twice_capacity_throughput_holds_and_accepted_trades_meet_their_deadline() -> None:
    a = _estimator()
    committed, refused, missed = _overload(a.check, a.committed)
    assert committed >= 0.9 * 100 * 20  # within 10% of capacity
    assert refused >= 0.4 * 200 * 20  # about half the offered load is turned away
    assert missed == 0


def test_negative_control_without_admission_accepted_trades_miss_their_deadline() -> None:
    a = _estimator()
    _, refused, missed = _overload(lambda b, d, t: None, a.committed)
    assert refused == 0
    assert missed > 1_000  # the queue grows without bound: what the check above prevents


# --- the node config's queue bound ------------------------------------------------------------


def test_a_node_config_may_set_the_queue_bound_within_limits(tmp_path: Path) -> None:
    cfg = _node_config(tmp_path, admission_queue_max_ms=60_000)
    write_node_config(tmp_path / "node.json", cfg)
    assert load_node_config(tmp_path / "node.json").admission_queue_max_ms == 60_000
    write_node_config(tmp_path / "default.json", _node_config(tmp_path))
    assert "admission_queue_max_ms" not in (tmp_path / "default.json").read_text()
    default = load_node_config(tmp_path / "default.json")
    assert default.admission_queue_max_ms == ADMISSION_QUEUE_MAX_MS
    for bad in (0, ADMISSION_QUEUE_MAX_LIMIT_MS + 1):
        why = re.escape(f"admission_queue_max_ms: must be 1..{ADMISSION_QUEUE_MAX_LIMIT_MS}")
        with pytest.raises(ConfigError, match=why):
            _node_config(tmp_path, admission_queue_max_ms=bad)
