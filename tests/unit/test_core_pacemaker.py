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


def commit_views(p: Pacemaker, durations: list[int], start: int = 0) -> int:
    """Views whose timer started at ``start`` and committed ``duration`` later, in turn."""
    for d in durations:
        p.arm(start, active=True)
        start += d
        p.committed(start)
    return start


def test_after_enough_commits_a_view_may_take_the_factor_times_their_median() -> None:
    p = progressing()
    now = commit_views(p, [60] * (VIEW_PROGRESS_CALM - 1))
    assert p.progress_ms() is None and p.timeout_ms() == BASE  # too few commits yet
    now = commit_views(p, [60], now)
    assert p.progress_ms() == FACTOR * 60 and p.timeout_ms() == FACTOR * 60
    p.arm(now, active=True)
    assert p.view_deadline_ms() == now + FACTOR * 60
    assert not p.fire(now + FACTOR * 60 - 1)
    assert p.fire(now + FACTOR * 60) and p.consecutive_timeouts == 1


def test_the_progress_deadline_has_a_floor_and_never_exceeds_the_base() -> None:
    p = progressing()
    commit_views(p, [2] * VIEW_PROGRESS_CALM)
    assert p.timeout_ms() == FLOOR
    commit_views(p, [BASE] * VIEW_PROGRESS_SAMPLES)
    assert p.progress_ms() == FACTOR * BASE and p.timeout_ms() == BASE


def test_a_view_after_a_timeout_has_the_base_and_doubling_as_before() -> None:
    """A slower network is still waited for: only the view after a commit is held to the
    progress deadline, and the views that then commit, slower, raise the median."""
    p = progressing()
    now = commit_views(p, [50] * VIEW_PROGRESS_SAMPLES)
    p.arm(now, active=True)
    assert p.fire(now + FACTOR * 50)
    p.timeout_sent(now + FACTOR * 50)
    assert p.view_deadline_ms() == now + FACTOR * 50 + BASE  # re-sent every base period
    p.stop()  # the TC's view
    assert p.timeout_ms() == BASE
    p.consecutive_timeouts += 1
    assert p.timeout_ms() == 2 * BASE
    # The views after it commit, slower (a backlog): the base timeout until more than half
    # the samples are of them, then their median.
    now = commit_views(p, [700] * (VIEW_PROGRESS_CALM - 1), now + 10_000)
    assert p.progress_ms() is None and p.timeout_ms() == BASE
    now = commit_views(p, [700], now)
    assert p.progress_ms() == FACTOR * 700 and p.timeout_ms() == BASE
    p.view_failed()  # a TC moved us on though our own timer did not fire
    assert p.progress_ms() is None


def test_slow_views_a_minority_leads_do_not_move_the_deadline() -> None:
    """Fewer than half of the samples (a leader running modified code leads at most n - q
    of n views) cannot raise the median, however slow they are."""
    p = progressing()
    durations = [20, 20, 20, 900] * (VIEW_PROGRESS_SAMPLES // 4)
    commit_views(p, durations)
    assert p.progress_ms() == FLOOR  # 4 x 20 = 80, under the floor
    commit_views(p, [30, 30, 900, 900] * (VIEW_PROGRESS_SAMPLES // 4))
    assert p.progress_ms() == FACTOR * 30  # half slow: the lower median still holds


def test_only_views_whose_timer_ran_are_samples() -> None:
    p = progressing()
    for k in range(VIEW_PROGRESS_CALM):
        p.committed(1_000 * k)  # a commit learnt with no work pending: no view timed
    assert p.progress_ms() is None


def test_without_a_factor_there_is_no_progress_deadline() -> None:
    p = pacemaker()
    commit_views(p, [10] * VIEW_PROGRESS_SAMPLES)
    assert p.progress_ms() is None and p.timeout_ms() == BASE


def test_timers_started_with_the_view_and_later_are_compared_like_with_like() -> None:
    """A timer that started with its view (work was pending) is held to views that did
    the same; one that started when work appeared later (an idle replica's first work is
    often the proposal) to those. Mixed, a replica idle at most views' starts measured
    from the proposal and held a whole view to four of those."""
    p = progressing()
    now = 0
    for _ in range(VIEW_PROGRESS_CALM):
        p.arm(now, active=False)  # idle when the view begins
        now += 150
        p.arm(now, active=True)  # the proposal: work
        now += 50
        p.committed(now)  # 50 ms from its start
    p.arm(now, active=False)
    p.arm(now + 150, active=True)
    assert p.timeout_ms() == max(FACTOR * 50, FLOOR)
    p.stop()  # the next view, with work from its start: nothing measured that way yet
    p.arm(now, active=True)
    assert p.progress_ms() is None and p.timeout_ms() == BASE
    for _ in range(VIEW_PROGRESS_CALM):
        p.arm(now, active=True)
        now += 200
        p.committed(now)
    p.arm(now, active=True)
    assert p.timeout_ms() == FACTOR * 200
