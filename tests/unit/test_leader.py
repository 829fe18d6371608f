"""The leader schedule: skips validators that failed to lead, deterministic from committed
headers, and never tries validators adjacent in index order one after another."""

from __future__ import annotations

from math import gcd

import pytest

from node.config import VIEW_TIMEOUT_BASE_MS
from node.core.leader import LeaderSchedule, stride
from tests.unit.test_core_replica import Net


@pytest.mark.parametrize("m", range(1, 60))
def test_stride_is_coprime_so_every_candidate_leads_once_per_rotation(m: int) -> None:
    s = stride(m)
    assert 0 < s <= max(1, m - 1) and gcd(s, m) == 1
    sched = LeaderSchedule(m, 0)
    assert sorted(sched.leader(v) for v in range(m)) == list(range(m))


def test_no_two_consecutive_views_fall_in_any_run_of_ten_adjacent_validators() -> None:
    """26 validators, any n - q = 10 adjacent ones down: never two dead leaders in a row."""
    sched = LeaderSchedule(26, 10)
    for first in range(26):
        dead = {(first + k) % 26 for k in range(10)}
        for v in range(200):
            assert not (sched.leader(v) in dead and sched.leader(v + 1) in dead)


def test_validators_that_failed_to_lead_are_skipped_at_most_n_minus_q() -> None:
    sched = LeaderSchedule(7, 2)
    # Blocks in views 0 and 1, then nothing until view 6: views 2..5 failed.
    failed = {sched.leader(v) for v in range(2, 6)}
    sched.reset([(0, sched.leader(0)), (1, sched.leader(1)), (6, sched.leader(6))])
    assert len(sched.excluded) == 2 and sched.excluded <= failed
    assert all(sched.leader(v) not in sched.excluded for v in range(50))


def test_a_validator_that_leads_again_is_trusted_again_and_the_window_forgets() -> None:
    sched = LeaderSchedule(4, 1, window=8)
    dead = sched.leader(1)
    sched.reset([(0, sched.leader(0)), (2, sched.leader(2))])
    assert sched.excluded == {dead}
    sched.committed(3, dead)  # it proposed a committed block: back in
    assert sched.excluded == frozenset()
    sched.reset([(0, sched.leader(0)), (2, sched.leader(2))])
    for view in range(3, 3 + 8):  # eight healthy blocks later the failure left the window
        sched.committed(view, sched.leader(view))
    assert sched.excluded == frozenset()


def test_incremental_and_rebuilt_schedules_agree() -> None:
    """Every honest replica at one height computes one leader per view, whether it followed
    the commits one by one or rebuilt the schedule from storage after a restart."""
    history, live = [], LeaderSchedule(26, 10, window=40)
    view = 0
    for k in range(120):
        view += 1 + (k * 7919) % 4  # gaps: failed views
        history.append((view, live.leader(view)))
        live.committed(*history[-1])
        rebuilt = LeaderSchedule(26, 10, window=40)
        rebuilt.reset(history)
        assert rebuilt.candidates == live.candidates
        assert [rebuilt.leader(v) for v in range(30)] == [live.leader(v) for v in range(30)]


def test_ten_validators_down_together_cost_one_timeout_then_none() -> None:
    """26/16 with the 10 leaders of views 0-9 of the old round-robin down: the first commit
    comes after one view timeout, and once each dead validator has failed once, blocks
    follow without timeouts."""
    net = Net(n=26, q=16)
    net.down = set(range(10))
    now, heights = 0, []
    for k in range(40):
        net.nodes[10 + k % 16].submit(b"trade-%d" % k)
        net.run()
        for _ in range(4):
            now += VIEW_TIMEOUT_BASE_MS // 4
            net.tick(now)
        heights.append(net.disks[12].committed_height())
    assert heights[0] >= 1  # within one base timeout
    # Later trades commit without a timeout each: at least one block per trade in the second
    # half, where a timeout per dead leader would have cost a second per rotation.
    assert heights[-1] - heights[19] >= 20
    assert net.nodes[12].schedule.excluded <= set(range(10))
