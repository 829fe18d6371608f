"""The pacemaker: the replica's timers, each a named deadline.

- ``Timer.VIEW_TIMEOUT``: a replica with pending work that sees no commit gives up the
  view. It runs from when the work appeared (or the last timeout was sent: a stuck
  replica re-sends every period); the period is ``timeout_ms()``, the base for the first
  n - q views without a commit, then doubling up to the maximum. A view with work from
  its start has less: the progress deadline, from its entry, a few times the median of
  how long recent views took to move on (never under a floor, never over the base), so a
  leader running modified code that proposes just before the timeout costs the chain a
  few honest views' time, not the base timeout, each time it leads (docs/consensus.md,
  "Slow leaders").
- ``Timer.COMMIT_RELAY``: only a view's leader collects its COMMIT votes, and the next
  leader's proposal waits for the commit certificate. A replica that entered a view on
  the previous view's prepare certificate and, a few median commit rounds later, still
  has no commit certificate sends its COMMIT vote to the leaders of the new view and the
  next one too, which form the certificate themselves: a leader running modified code
  that holds its commit certificate slows the next view by that much, not by its whole
  deadline.
- ``Timer.BATCH_DELAY``: under load the leader waits this long after the previous commit
  (or, pipelined, after the prepare certificate of the parent) so its block fills.
- ``Timer.CATCHUP_RETRY``: an unanswered catch-up request goes to the next peer (kept
  by ``node.core.catchup``; named here so every deadline has one name).
- ``Timer.HELP_LAGGING``: a peer's stale timeouts are answered at most once an interval
  (a rate limit per peer, not a wake-up: it never sets a deadline).

Pure: the caller's ``now_ms`` is the only clock.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum

from node.config import (
    HELP_LAGGING_INTERVAL_MS,
    VIEW_PROGRESS_CALM,
    VIEW_PROGRESS_SAMPLES,
)

__all__ = ["Pacemaker", "Timer"]

_LONG_AGO_MS = -(10**12)  # the first transaction is proposed at once
_DOUBLINGS_MAX = 30  # keeps the shift bounded; the maximum caps the period long before


def _median_low(values: deque[int]) -> int:
    """The lower median (``statistics`` is no pure module: it imports ``random``)."""
    return sorted(values)[(len(values) - 1) // 2]


class Timer(StrEnum):
    VIEW_TIMEOUT = "view_timeout"
    COMMIT_RELAY = "commit_relay"
    BATCH_DELAY = "batch_delay"
    CATCHUP_RETRY = "catchup_retry"
    HELP_LAGGING = "help_lagging"


class Pacemaker:
    def __init__(
        self,
        base_ms: int,
        max_ms: int,
        batch_delay_ms: int,
        liveness_bound: int,
        *,
        progress_factor: int = 0,
        progress_floor_ms: int = 0,
        relay_factor: int = 0,
        relay_floor_ms: int = 0,
    ) -> None:
        self.base_ms, self.max_ms = base_ms, max_ms
        # The progress deadline: ``progress_factor`` times the median of recent views, at
        # least ``progress_floor_ms`` (factor 0: none, only the view timer).
        self._progress_factor, self._progress_floor_ms = progress_factor, progress_floor_ms
        # How long recent views took, from entering each to entering the next on a
        # certificate, for views that had work from their start and sent no timeout.
        self._durations: deque[int] = deque(maxlen=VIEW_PROGRESS_SAMPLES)
        self._entered_ms: int | None = None  # when we entered the current view
        self._at_start = False  # the current view has had work since we entered it
        self._timed_out = False  # this replica gave up the current view (sent its timeout)
        self._calm = 0  # views measured since a view last timed out here (or the start)
        # The commit-vote relay: ``relay_factor`` times the median commit round, at least
        # ``relay_floor_ms`` (factor 0: none). A commit round is how long this replica
        # waited, after entering a view on the prepare certificate of the view before, for
        # that block's commit.
        self._relay_factor, self._relay_floor_ms = relay_factor, relay_floor_ms
        self._commit_rounds: deque[int] = deque(maxlen=VIEW_PROGRESS_SAMPLES)
        self._excess = 0  # the current view's commit round beyond the median: not its own
        self.batch_delay_ms = batch_delay_ms
        self._liveness_bound = liveness_bound
        self.consecutive_timeouts = 0  # views since the last commit that timed out
        self.last_commit_ms = _LONG_AGO_MS
        self.last_certified_ms = _LONG_AGO_MS  # the last new lock (a pipelined parent)
        self.started_ms: int | None = None  # the view timer runs (there is work)
        self.sent_ms: int | None = None  # when this view's timeout was last sent
        self._helped_ms: dict[int, int] = {}  # peer -> when we last answered its stale timeout

    def timeout_ms(self) -> int:
        """The base timeout for the first n - q views without a commit (as many leaders
        may be down, each costing one view), then doubling: one dead leader after another
        must not cost ever longer timeouts, and under asynchrony the timeout still grows
        until a view fits in it."""
        exp = min(max(0, self.consecutive_timeouts - self._liveness_bound), _DOUBLINGS_MAX)
        return min(self.base_ms << exp, self.max_ms)

    def progress_ms(self) -> int | None:
        """How long a view may take: ``progress_factor`` times the median time from
        entering a view to entering the next on a certificate, over the last
        ``VIEW_PROGRESS_SAMPLES`` views that had work from their start and sent no timeout
        here, at least the floor. None (only the view timer): no factor, or fewer than
        ``VIEW_PROGRESS_CALM`` such views since a view last timed out here (or since the
        start), so the median is of views since the last disruption: a view change leaves
        a backlog and the views after it are slower (26/16 on 2 cores: without this, one
        timeout led to the next, p50 3.6 s).

        What is measured is what the deadline bounds: from a view's entry (a prepare
        certificate moves a replica on before the commit, so the commit of the height
        before falls inside the view) to the next view's. Measuring from the view timer's
        start instead (restarted by that commit: the commit round only) gave a deadline a
        third of the views it bounded, and honest views timed out at 26/16.

        The median, because a leader running modified code leads at most n - q < n / 2 of
        the views: it cannot move the median by being slow, only by being fast. A view that
        overruns times out like any other, its leader is charged by the leader schedule,
        and the views after it have the base timeout again, doubling as before, so a
        network that became slower is still waited for (and its views, slower, raise the
        median)."""
        durations = self._durations
        if not self._progress_factor or min(self._calm, len(durations)) < VIEW_PROGRESS_CALM:
            return None
        return max(self._progress_factor * _median_low(durations), self._progress_floor_ms)

    def progress_deadline_ms(self) -> int | None:
        """When the current view must have moved on: its entry plus ``progress_ms``, for a
        view that has had work since its start (None: only the view timer)."""
        if self._entered_ms is None or not self._at_start:
            return None
        progress = self.progress_ms()
        if progress is None:
            return None
        return self._entered_ms + self._excess + min(progress, self.base_ms)

    def relay_ms(self) -> int | None:
        """How long after entering a view on the previous view's prepare certificate this
        replica waits for that block's commit certificate before it sends its COMMIT vote
        to the leaders of the new view and the next too: ``relay_factor`` times the median
        commit round, at least the floor. None: no factor, or no commit round seen yet (one
        is enough, as the relay tests rely on: the lower median of two is the faster, so
        one held certificate sets it for one view only). The median, because a leader
        running modified code holds the certificates of at most n - q < n / 2 of the
        views."""
        rounds = self._commit_rounds
        if not self._relay_factor or not rounds:
            return None
        return max(self._relay_factor * _median_low(rounds), self._relay_floor_ms)

    def relay_deadline_ms(self) -> int | None:
        relay = self.relay_ms()
        return None if relay is None or self._entered_ms is None else self._entered_ms + relay

    def parent_committed(self, now_ms: int) -> None:
        """The block certified in the view just left committed in this one: a commit round.
        Its part beyond the median is the previous leader's time, not this view's: the
        view's sample leaves it out and its progress deadline starts after it. Otherwise a
        leader holding its commit certificate (up to the relay) would make two slow views
        of each it leads, and from 7 validators up (2 (n - q) > n / 2) raise the median."""
        if self._entered_ms is None:
            return
        took = max(0, now_ms - self._entered_ms)
        rounds = self._commit_rounds
        if rounds:
            self._excess = max(0, took - _median_low(rounds))
        rounds.append(took)

    def view_deadline_ms(self) -> int | None:
        if self.started_ms is None:
            return None
        base = self.started_ms if self.sent_ms is None else self.sent_ms
        deadline = base + self.timeout_ms()
        tight = None if self.sent_ms is not None else self.progress_deadline_ms()
        return deadline if tight is None else min(deadline, tight)

    def batch_deadline_ms(self) -> int:
        return max(self.last_commit_ms, self.last_certified_ms) + self.batch_delay_ms

    def batching(self, now_ms: int) -> bool:
        """The leader should let its next block fill a moment longer."""
        return now_ms < self.batch_deadline_ms()

    def arm(self, now_ms: int, active: bool) -> None:
        """Run the view timer while there is work, stop it when there is none."""
        if not active:
            self.stop()
            self._at_start = False  # idle in this view: its progress is not measured
        elif self.started_ms is None:
            self.started_ms = now_ms

    def stop(self) -> None:
        """A commit (or no work): the view timer starts again with the next work."""
        self.started_ms = self.sent_ms = None

    def entered(self, now_ms: int, *, progressed: bool) -> None:
        """We enter a new view; ``progressed``: the one we leave, the view just before,
        ended on a certificate (not on timeouts), so it is a sample if it had work from its
        start and sent no timeout."""
        last = self._entered_ms
        if progressed and last is not None and self._at_start and not self._timed_out:
            self._durations.append(max(0, now_ms - last - self._excess))
            self._calm += 1
        self._entered_ms, self._excess = now_ms, 0
        self._at_start, self._timed_out = True, False
        self.stop()

    def certified(self, now_ms: int) -> None:
        """A new lock: a pipelined leader lets its block fill from here."""
        self.last_certified_ms = now_ms

    def committed(self, now_ms: int) -> None:
        self.consecutive_timeouts = 0
        self.last_commit_ms = now_ms
        self.stop()

    def fire(self, now_ms: int) -> bool:
        """Whether the view timer is due at ``now_ms``; its first firing in a view counts
        one more view without a commit."""
        deadline = self.view_deadline_ms()
        if deadline is None or now_ms < deadline:
            return False
        if self.sent_ms is None:
            self.consecutive_timeouts += 1
            self._calm = 0
        return True

    def view_failed(self) -> None:
        """A timeout certificate moved us on (our own timer may not have fired)."""
        self._calm = 0

    def timeout_sent(self, now_ms: int) -> None:
        self.sent_ms = now_ms
        self._timed_out = True
        if self.started_ms is None:
            self.started_ms = now_ms

    def may_help(self, src: int, now_ms: int) -> bool:
        """At most one answer per ``HELP_LAGGING_INTERVAL_MS`` to a peer's stale timeouts:
        replayed stale timeouts must not make us a traffic amplifier."""
        last = self._helped_ms.get(src)
        if last is not None and now_ms < last + HELP_LAGGING_INTERVAL_MS:
            return False
        self._helped_ms[src] = now_ms
        return True
