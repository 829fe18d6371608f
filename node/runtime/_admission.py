"""Admission control: may this node take one more client transaction within its deadline?

Theory of operation. A node that accepts more than it can settle only moves the failure
later: its backlog grows until every wait times out, and the work spent on trades that
then miss their deadline is lost (issue 13 measured 759 trades/s offered at 4/3 and 249/s
committed). So before a client's transaction takes any durable step, the node estimates
how long it needs to settle what it already holds, and refuses early (RESOURCE_EXHAUSTED
with a retry-after hint) when that does not fit in the client's deadline (so a node that
holds nothing admits whatever the deadline: the new transaction then waits for no one).
The estimate is ``backlog / rate``:

- ``backlog``: the transactions this node holds (its mempool, which holds every
  acknowledged transaction until a block commits it: the intake log is its durable copy);
- ``rate``: an exponentially weighted moving average of the transactions committed per
  second, measured over windows of ``window_ms``, never below ``rate_floor_tps`` (so an
  idle node, or one that has measured nothing yet, admits).

A window's rate measures capacity only if the backlog did not run dry during it. That is
taken to hold when the node committed fewer transactions in the window than it held at
its start; otherwise the window was (partly) idle, its rate is only a lower bound of
capacity, and it may raise the average but never lower it. A window with a backlog and no
commit at all (a stalled view) is a sample of zero, so a node that stops committing
refuses more and more until it commits again.

The transaction is admitted when the estimate is at most ``share_pct`` percent of the
client's deadline (the rest of the deadline is the margin for the estimate's error and
for the notice's way back to the client) and at most ``queue_max_ms`` whatever the
deadline: a longer queue adds no throughput, only latency and big blocks. A refusal
carries ``retry_after_ms``: the time the current rate needs to drain the excess, bounded
to ``[retry_min_ms, retry_max_ms]``.

Pure: every method takes the time as an argument (milliseconds on any monotonic scale),
so tests drive it with explicit values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from node.config import (
    ADMISSION_DEADLINE_SHARE_PCT,
    ADMISSION_QUEUE_MAX_MS,
    ADMISSION_RATE_FLOOR_TPS,
    ADMISSION_RATE_WEIGHT_PCT,
    ADMISSION_RATE_WINDOW_MS,
    ADMISSION_RETRY_AFTER_MAX_MS,
    ADMISSION_RETRY_AFTER_MIN_MS,
)
from node.invariant import require

__all__ = ["Admission", "Overloaded"]


@dataclass(frozen=True, slots=True)
class Overloaded:
    """Why a transaction is refused: the estimate, what the deadline allows, and when to retry."""

    settle_ms: int  # estimated time to settle what the node already holds
    budget_ms: int  # the share of the client's deadline (or the queue bound) it had to fit in
    retry_after_ms: int  # when the backlog should have drained enough, at the current rate

    def message(self) -> str:
        return (
            f"overloaded: this node needs about {self.settle_ms} ms to settle what it holds, "
            f"more than the {self.budget_ms} ms it may hold for this client's deadline; "
            f"retry after {self.retry_after_ms} ms (resending the same bytes is safe)"
        )


class Admission:
    """The estimator (see the module docstring); one per node."""

    def __init__(
        self,
        now_ms: int,
        *,
        rate_floor_tps: int = ADMISSION_RATE_FLOOR_TPS,
        window_ms: int = ADMISSION_RATE_WINDOW_MS,
        weight_pct: int = ADMISSION_RATE_WEIGHT_PCT,
        share_pct: int = ADMISSION_DEADLINE_SHARE_PCT,
        queue_max_ms: int = ADMISSION_QUEUE_MAX_MS,
        retry_min_ms: int = ADMISSION_RETRY_AFTER_MIN_MS,
        retry_max_ms: int = ADMISSION_RETRY_AFTER_MAX_MS,
    ) -> None:
        require(rate_floor_tps > 0 and window_ms > 0, "admission: floor and window positive")
        require(0 < weight_pct <= 100 and 0 < share_pct <= 100, "admission: percentages")
        require(0 < retry_min_ms <= retry_max_ms, "admission: retry-after bounds")
        require(queue_max_ms > 0, "admission: queue bound")
        self._queue_max_ms = queue_max_ms
        self._floor, self._window_ms = rate_floor_tps, window_ms
        self._weight, self._share = weight_pct / 100, share_pct
        self._retry_min, self._retry_max = retry_min_ms, retry_max_ms
        self._measured: float | None = None  # the moving average, once a window closed
        self._start_ms, self._start_backlog, self._txs = now_ms, 0, 0

    @property
    def rate_tps(self) -> float:
        """Transactions the node is taken to commit per second (at least the floor)."""
        return max(float(self._floor), self._measured or 0.0)

    def settle_ms(self, backlog: int) -> int:
        """Estimated milliseconds to settle ``backlog`` transactions."""
        return math.ceil(backlog * 1000 / self.rate_tps)

    def committed(self, txs: int, backlog: int, now_ms: int) -> None:
        """A block of ``txs`` transactions committed at ``now_ms``, leaving ``backlog``."""
        self._txs += txs
        self._roll(backlog, now_ms)

    def check(self, backlog: int, deadline_ms: int, now_ms: int) -> Overloaded | None:
        """None to admit one more transaction with ``backlog`` held and a client deadline
        of ``deadline_ms``, else the refusal."""
        self._roll(backlog, now_ms)
        budget_ms = min(deadline_ms * self._share // 100, self._queue_max_ms)
        settle_ms = self.settle_ms(backlog)
        if settle_ms <= budget_ms:
            return None
        fits = budget_ms * self.rate_tps / 1000  # transactions the budget can settle
        drain_ms = math.ceil((backlog - fits) * 1000 / self.rate_tps)
        retry_ms = min(self._retry_max, max(self._retry_min, drain_ms))
        return Overloaded(settle_ms, budget_ms, retry_ms)

    def _roll(self, backlog: int, now_ms: int) -> None:
        """Close the current window once it is ``window_ms`` long and fold in its rate."""
        elapsed_ms = now_ms - self._start_ms
        if elapsed_ms < self._window_ms:
            if elapsed_ms < 0:  # the clock stepped back: start again from here
                self._start_ms, self._txs = now_ms, 0
            return
        sample = self._txs * 1000 / elapsed_ms
        busy = self._txs < self._start_backlog  # never ran dry: the rate is capacity
        if self._measured is None:
            if self._txs > 0:  # (a stall before any commit leaves the floor in force)
                self._measured = sample
        elif busy or sample > self._measured:
            self._measured += self._weight * (sample - self._measured)
        self._start_ms, self._start_backlog, self._txs = now_ms, backlog, 0
