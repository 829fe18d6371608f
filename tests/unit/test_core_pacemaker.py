"""node/core/pacemaker.py on its own: the view timer's period, its deadline, when it
fires and restarts, the batch delay, and the help-lagging rate limit."""

from __future__ import annotations

from node.config import HELP_LAGGING_INTERVAL_MS, VIEW_PROGRESS_CALM, VIEW_PROGRESS_SAMPLES
from node.core.pacemaker import Pacemaker

BASE, MAX, BATCH, BOUND = 1_000, 60_000, 50, 1  # liveness bound n - q = 1 (4 of 3)


def pacemaker() -> Pacemaker:
    return Pacemaker(BASE, MAX, BATCH, BOUND)


def test_the_period_stays_at_the_base_for_n_minus_q_views_then_doubles_to_the_maximum() -> None:
    p = pacemaker()
    periods = []
    for _ in range(10):
        periods.append(p.timeout_ms())
        p.consecutive_timeouts += 1
    assert periods == [BASE, BASE] + [k * BASE for k in (2, 4, 8, 16, 32)] + [MAX] * 3
    p.consecutive_timeouts = 1_000  # the shift is bounded, the maximum caps it
    assert p.timeout_ms() == MAX


def test_no_work_no_deadline_and_work_starts_the_timer_once() -> None:
    p = pacemaker()
    p.arm(100, active=False)
    assert p.view_deadline_ms() is None and not p.fire(10**9)
    p.arm(100, active=True)
    p.arm(700, active=True)  # still the same timer: work did not restart it
    assert p.view_deadline_ms() == 100 + BASE
    p.arm(800, active=False)
    assert p.view_deadline_ms() is None


def test_the_timer_fires_at_its_deadline_not_before_and_counts_one_view_per_firing() -> None:
    p = pacemaker()
    p.arm(0, active=True)
    assert not p.fire(BASE - 1)
    assert p.fire(BASE) and p.consecutive_timeouts == 1
    p.timeout_sent(BASE)
    # A stuck replica re-sends every period, from the last send; re-sends are one view.
    assert p.view_deadline_ms() == 2 * BASE
    assert not p.fire(2 * BASE - 1)
    assert p.fire(2 * BASE) and p.consecutive_timeouts == 1


def test_a_new_view_stops_the_timer_and_a_commit_resets_the_count() -> None:
    p = pacemaker()
    p.arm(0, active=True)
    assert p.fire(BASE)
    p.timeout_sent(BASE)
    p.stop()
    assert p.view_deadline_ms() is None and p.consecutive_timeouts == 1
    p.committed(5_000)
    assert p.consecutive_timeouts == 0 and p.last_commit_ms == 5_000
    assert p.batch_deadline_ms() == 5_000 + BATCH


def test_a_timeout_sent_without_a_running_timer_starts_it() -> None:
    p = pacemaker()
    p.timeout_sent(300)
    assert p.view_deadline_ms() == 300 + BASE


def test_batching_lasts_exactly_the_batch_delay_after_a_commit() -> None:
    p = pacemaker()
    assert not p.batching(0)  # never committed: the first transaction goes at once
    p.committed(1_000)
    assert p.batching(1_000 + BATCH - 1)
    assert not p.batching(1_000 + BATCH)


def test_a_peer_is_helped_at_most_once_an_interval_each_peer_on_its_own() -> None:
    p = pacemaker()
    assert p.may_help(2, 1_000)
    assert not p.may_help(2, 1_000 + HELP_LAGGING_INTERVAL_MS - 1)
    assert p.may_help(3, 1_001)  # another peer has its own interval
    assert p.may_help(2, 1_000 + HELP_LAGGING_INTERVAL_MS)
    assert p.may_help(3, 1_001 + 3 * HELP_LAGGING_INTERVAL_MS)  # any time after, not only at


# --- the progress deadline (slow leaders) -----------------------------------------------

FACTOR, FLOOR = 4, 100


def progressing() -> Pacemaker:
    return Pacemaker(BASE, MAX, BATCH, BOUND, progress_factor=FACTOR, progress_floor_ms=FLOOR)


def run_views(p: Pacemaker, durations: list[int], now: int = 0) -> int:
    """Views with work from their start, each left on a certificate ``duration`` after it
    was entered; returns when the last was left (the next view, entered then, has work)."""
    for d in durations:
        p.entered(now, progressed=True)
        p.arm(now, active=True)
        p.committed(now)  # a commit inside the view restarts only the view timer
        p.arm(now, active=True)
        now += d
    p.entered(now, progressed=True)
    p.arm(now, active=True)
    return now


def test_after_calm_commits_a_view_may_take_the_factor_times_their_median() -> None:
    p = progressing()
    now = run_views(p, [60] * (VIEW_PROGRESS_CALM - 1))
    assert p.progress_ms() is None and p.view_deadline_ms() == now + BASE  # too few yet
    now = run_views(p, [60], now - 60)  # one more sample (the view just left again)
    assert p.progress_ms() == FACTOR * 60
    assert p.view_deadline_ms() == now + FACTOR * 60
    assert not p.fire(now + FACTOR * 60 - 1)
    assert p.fire(now + FACTOR * 60) and p.consecutive_timeouts == 1
    p.timeout_sent(now + FACTOR * 60)
    assert p.view_deadline_ms() == now + FACTOR * 60 + BASE  # re-sent every base period


def test_the_deadline_counts_from_the_views_entry_not_from_a_commit_inside_it() -> None:
    """Since a prepare certificate moves a replica to the next view before the commit
    (ADR 0012), the commit of the height before lands inside the view: it restarts the
    view timer, not the progress deadline."""
    p = progressing()
    now = run_views(p, [50] * VIEW_PROGRESS_CALM)
    p.committed(now + 30)
    p.arm(now + 30, active=True)
    assert p.view_deadline_ms() == now + FACTOR * 50


def test_the_progress_deadline_has_a_floor_and_never_exceeds_the_base() -> None:
    p = progressing()
    now = run_views(p, [2] * VIEW_PROGRESS_CALM)
    assert p.view_deadline_ms() == now + FLOOR
    now = run_views(p, [BASE] * VIEW_PROGRESS_SAMPLES, now)
    assert p.progress_ms() == FACTOR * BASE and p.view_deadline_ms() == now + BASE


def test_a_view_after_a_timeout_has_the_base_and_doubling_as_before() -> None:
    """A slower network is still waited for: after a view times out, the base timeout
    applies until VIEW_PROGRESS_CALM views have progressed since, and the median is then
    of those (a backlog after a view change makes the next views longer)."""
    p = progressing()
    now = run_views(p, [50] * VIEW_PROGRESS_SAMPLES)
    assert p.fire(now + FACTOR * 50)
    p.timeout_sent(now + FACTOR * 50)
    now += 2_000
    p.entered(now, progressed=False)  # the TC's view
    p.arm(now, active=True)
    assert p.view_deadline_ms() == now + BASE
    p.consecutive_timeouts += 1
    assert p.view_deadline_ms() == now + 2 * BASE
    p.committed(now + 300)
    # The TC's view progresses 700 ms after it began, and then the views after it.
    now = run_views(p, [700] * (VIEW_PROGRESS_CALM - 2), now + 700)
    assert p.progress_ms() is None and p.view_deadline_ms() == now + BASE
    now = run_views(p, [700], now - 700)
    assert p.progress_ms() == FACTOR * 700 and p.view_deadline_ms() == now + BASE
    p.view_failed()  # a TC moved us on though our own timer did not fire
    assert p.progress_ms() is None


def test_slow_views_a_minority_leads_do_not_move_the_deadline() -> None:
    """Fewer than half of the samples (a leader running modified code leads at most n - q
    of n views) cannot raise the median, however slow they are."""
    p = progressing()
    run_views(p, [20, 20, 20, 900] * (VIEW_PROGRESS_SAMPLES // 4))
    assert p.progress_ms() == FLOOR  # 4 x 20 = 80, under the floor
    run_views(p, [30, 30, 900, 900] * (VIEW_PROGRESS_SAMPLES // 4))
    assert p.progress_ms() == FACTOR * 30  # half slow: the lower median still holds


def test_only_views_with_work_from_their_start_left_on_a_certificate_are_samples() -> None:
    """An idle view (work appeared later, or never) and a view left on timeouts are not
    measured, and a view idle at its start has only the view timer."""
    p = progressing()
    now = 0
    for _ in range(VIEW_PROGRESS_CALM + 1):  # the first has no view before it to measure
        p.entered(now, progressed=True)
        p.arm(now, active=False)  # idle when it began
        p.arm(now + 150, active=True)  # the proposal: work
        now += 200
    p.entered(now, progressed=False)
    p.arm(now, active=True)
    for _ in range(VIEW_PROGRESS_CALM):
        now += 10
        p.entered(now, progressed=False)  # left on timeouts: not measured either
        p.arm(now, active=True)
    assert p.progress_ms() is None
    now = run_views(p, [20] * VIEW_PROGRESS_CALM, now)
    assert p.progress_ms() == FLOOR
    p.entered(now + 5, progressed=True)
    p.arm(now + 5, active=False)
    p.arm(now + 50, active=True)  # work only now: the view timer alone
    assert p.view_deadline_ms() == now + 50 + BASE


def test_a_view_this_replica_timed_out_is_no_sample() -> None:
    p = progressing()
    now = run_views(p, [20] * (VIEW_PROGRESS_CALM - 1))
    p.timeout_sent(now + 1_000)  # it gave up (say, joining others), then the view moved on
    p.entered(now + 5_000, progressed=True)
    assert p.progress_ms() is None  # still one sample short: the 5 s view is none
    run_views(p, [20], now + 5_000)
    assert p.progress_ms() == FLOOR


def test_without_a_factor_there_is_no_progress_deadline() -> None:
    p = pacemaker()
    now = run_views(p, [10] * VIEW_PROGRESS_SAMPLES)
    assert p.progress_ms() is None and p.view_deadline_ms() == now + BASE


# --- the commit-vote relay, and the commit round that is not the view's own ---------------

RELAY, RELAY_FLOOR = 4, 20


def relaying() -> Pacemaker:
    return Pacemaker(
        BASE,
        MAX,
        BATCH,
        BOUND,
        progress_factor=FACTOR,
        progress_floor_ms=FLOOR,
        relay_factor=RELAY,
        relay_floor_ms=RELAY_FLOOR,
    )


def commit_rounds(p: Pacemaker, rounds: list[int], now: int = 0) -> int:
    """Views entered on a prepare certificate, each whose parent commits ``round`` after
    the entry and which is left 50 ms after that; returns when the last was entered."""
    for r in rounds:
        p.entered(now, progressed=True)
        p.arm(now, active=True)
        p.parent_committed(now + r)
        p.committed(now + r)
        p.arm(now + r, active=True)
        now += r + 50
    p.entered(now, progressed=True)
    p.arm(now, active=True)
    return now


def test_the_relay_waits_the_factor_times_the_median_commit_round_at_least_the_floor() -> None:
    p = relaying()
    assert p.relay_ms() is None and p.relay_deadline_ms() is None  # no commit round yet
    now = commit_rounds(p, [10, 12, 500])  # one slow round of three: the median is 12
    assert p.relay_ms() == RELAY * 12 and p.relay_deadline_ms() == now + RELAY * 12
    p = relaying()
    commit_rounds(p, [1, 2, 3])
    assert p.relay_ms() == RELAY_FLOOR
    no_factor = Pacemaker(BASE, MAX, BATCH, BOUND, relay_factor=0, relay_floor_ms=RELAY_FLOOR)
    commit_rounds(no_factor, [10] * 5)
    assert no_factor.relay_ms() is None  # the control: no relay


def test_a_commit_round_beyond_the_median_is_no_part_of_the_views_sample_or_deadline() -> None:
    """A leader holding its commit certificate slows the next view: that wait (beyond the
    median commit round) is left out of the view's sample, and its deadline starts after
    it, so two slow views per such leader do not raise the median."""
    p = relaying()
    now = commit_rounds(p, [10] * VIEW_PROGRESS_CALM)  # views of 60 ms: 10 + 50
    assert p.progress_ms() == FACTOR * 60 and p.view_deadline_ms() == now + FACTOR * 60
    p.parent_committed(now + 70)  # 60 ms beyond the median commit round
    p.committed(now + 70)
    p.arm(now + 70, active=True)
    assert p.view_deadline_ms() == now + 60 + FACTOR * 60  # starts after the excess
    p.entered(now + 120, progressed=True)  # 50 ms of its own after the commit, as before
    assert p._durations[-1] == 60 and p.progress_ms() == FACTOR * 60
    p.arm(now + 120, active=True)
    p.parent_committed(now + 125)  # the next view's commit is in time: nothing carried over
    assert p.view_deadline_ms() == now + 120 + FACTOR * 60


def test_a_commit_in_time_leaves_the_sample_whole() -> None:
    p = relaying()
    now = commit_rounds(p, [10] * VIEW_PROGRESS_CALM)
    p.parent_committed(now + 8)  # under the median: no excess
    p.entered(now + 58, progressed=True)
    p.arm(now + 58, active=True)
    assert p._durations[-1] == 58 and p.view_deadline_ms() == now + 58 + FACTOR * 60
