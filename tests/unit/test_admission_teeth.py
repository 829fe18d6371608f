"""Teeth for admission control (node/runtime/_admission.py), from the cosmic-ray target
``runtime.admission`` (review 32; docs/testing.md "The client port: targets `access` and
`runtime.admission`"). Each test here fails on a mutant the earlier tests
(test_admission_control.py, test_intake_teeth.py) let through and passes on the code as it
is; where a rule has two sides, both are shown.
"""

from __future__ import annotations

import dataclasses

import pytest

from node.invariant import InvariantError
from node.runtime._admission import Admission
from tests.unit.test_admission_control import WINDOW_MS, _busy_at, _estimator


def test_a_refusal_is_a_value_nobody_can_change() -> None:
    """The handler reads the refusal's fields for the client's message and retry hint."""
    a, t = _busy_at(1_000, backlog=5_000)
    refused = a.check(1_001, 2_000, t)
    assert refused is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        refused.retry_after_ms = 0  # type: ignore[misc]
    assert not hasattr(refused, "__dict__")  # slots: no attribute can be added either


def test_the_estimators_bounds_are_keyword_only() -> None:
    """Seven integers in a row: passed by position, a floor could land in the window."""
    with pytest.raises(TypeError):
        Admission(0, 10)  # type: ignore[misc]
    assert Admission(0, rate_floor_tps=10).rate_tps == 10


@pytest.mark.parametrize(
    "bad",
    [
        {"rate_floor_tps": -1},
        {"window_ms": -1},
        {"weight_pct": -1},
        {"share_pct": -1},
        {"retry_min_ms": -1},
        {"queue_max_ms": -1},
    ],
)
def test_the_estimator_refuses_negative_bounds(bad: dict[str, int]) -> None:
    """Not only 0: a negative floor or window would make every rate negative, a negative
    share or queue bound refuse everything."""
    with pytest.raises(InvariantError):
        _estimator(**bad)


def test_the_estimator_accepts_percentages_of_one() -> None:
    a = _estimator(weight_pct=1, share_pct=1)
    assert a.check(0, 1, 0) is None
    # 1% of a 100 s deadline at the floor of 10/s: a budget of 1 s settles 10, not 11.
    assert a.check(10, 100_000, 0) is None
    refused = a.check(11, 100_000, 0)
    assert refused is not None and refused.budget_ms == 1_000


def test_the_first_window_that_commits_is_measured_from_its_first_transaction() -> None:
    """Nothing is counted before the estimator starts: the first window's 50 transactions
    are 500/s, and a window of a single transaction is a measurement too."""
    a = _estimator(rate_floor_tps=1)
    a.committed(50, 100, WINDOW_MS)
    assert a.rate_tps == 500
    one = _estimator(rate_floor_tps=1)
    one.committed(1, 100, WINDOW_MS)
    assert one.rate_tps == 10  # 1 in 100 ms, above the floor of 1/s
    idle = _estimator(rate_floor_tps=1)
    idle.committed(0, 100, WINDOW_MS)
    assert idle.rate_tps == 1  # control: nothing committed measures nothing


def test_the_budget_is_whole_milliseconds() -> None:
    """50% of a 667 ms deadline is 333 ms (rounded down, as the refusal says), not 333.5."""
    a = _estimator(rate_floor_tps=3)
    refused = a.check(1, 667, 0)
    assert refused is not None
    assert refused.budget_ms == 333 and type(refused.budget_ms) is int
    assert "the 333 ms it may hold" in refused.message()


def test_the_hint_is_the_exact_drain_time_of_a_large_excess() -> None:
    """At 1,000/s with a 1 s budget, 5,000 held leave 4,000 to drain: 4,000 ms, not 3,996."""
    a, t = _busy_at(1_000, backlog=5_000)
    refused = a.check(5_000, 2_000, t)
    assert refused is not None and refused.retry_after_ms == 4_000


def test_a_window_closes_at_the_first_event_past_its_length() -> None:
    """Blocks do not commit on the window's edge: a window closed 150 ms after it opened
    is measured over its 150 ms, exactly (100 in 150 ms is 666.7/s, not 666 or 1,000)."""
    a = _estimator()
    a.committed(0, 5_000, WINDOW_MS)  # the first window: nothing held at its start
    a.committed(100, 5_000, WINDOW_MS + 150)
    assert a.rate_tps == 100 * 1000 / 150


def test_blocks_in_the_millisecond_a_window_opened_count_toward_it() -> None:
    """A window opens at a commit; another block in that same millisecond is no step of
    the clock back, and its transactions count."""
    a = _estimator()
    a.committed(0, 5_000, WINDOW_MS)  # closes the first window: the next opens at 100
    a.committed(50, 5_000, WINDOW_MS)
    a.committed(50, 5_000, 2 * WINDOW_MS)
    assert a.rate_tps == 1_000


def test_a_clock_stepping_back_by_one_millisecond_restarts_the_window() -> None:
    """A window opened at ``t``; 50 commit at ``t + 50``; then the clock reads ``t - 1``:
    what was counted is dropped and the window restarts there, so 100 more at ``t + 100``
    are 100 in 101 ms. Control: the clock reading ``t`` again is no step back, and the
    window closes at ``t + 100`` with all 150 in it."""
    for step_ms, sample in ((-1, 100_000 / 101), (0, 1_500.0)):
        a, t = _busy_at(1_000, backlog=5_000)  # weight 50%: the average moves half way
        a.committed(50, 5_000, t + 50)
        a.committed(0, 5_000, t + step_ms)
        a.committed(100, 5_000, t + 100)
        assert a.rate_tps == pytest.approx(1_000 + (sample - 1_000) / 2, rel=1e-12)
