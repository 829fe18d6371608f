"""What one participant's reads may cost the node: a token bucket per participant.

A block read runs on the node's event loop, which consensus shares. A party-filtered read
of a block whose party index is not kept (node/runtime/_node.py ``block_parties``, ADR
0025) decodes every body of the block to work it out again: 37 ms for 1,499 DvPs.
Reading old, distinct blocks misses that cache every time, so without a bound one
authenticated participant calling GetBlock in a loop holds the loop most of the time.
Reads of state that scan up to a bound of the state itself (GetReference with the
registry full: 73 ms; GetBalances, GetLocks, ...) share the same budget
(node/runtime/_api.py ``_scan``).

Each read is charged the CPU time it took on the loop's thread to the caller's
participant id (verified, and the same on every connection), against
BLOCK_READ_CPU_US_PER_S up to BLOCK_READ_CPU_US_BURST (node/config.py says why). A read
starts only while the balance is positive and may leave it in debt by what it cost, so a
read costlier than what is left is still served once, never refused for ever, and its
debt is repaid before the next. Over budget, a unary read is refused with a hint
(when the balance is positive again); a block stream waits that long instead
(node/runtime/_api.py ``StreamBlocks`` says why).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from node.config import BLOCK_READ_BUCKETS_MAX, BLOCK_READ_CPU_US_BURST, BLOCK_READ_CPU_US_PER_S
from node.core.budget import Bucket
from node.invariant import require

__all__ = ["ReadBudget"]


class ReadBudget:
    def __init__(
        self,
        clock_ms: Callable[[], int],
        *,
        cpu_ns: Callable[[], int] = time.thread_time_ns,
        rate_per_s: int = BLOCK_READ_CPU_US_PER_S,
        burst: int = BLOCK_READ_CPU_US_BURST,
        buckets_max: int = BLOCK_READ_BUCKETS_MAX,
    ) -> None:
        self._clock_ms, self._cpu_ns = clock_ms, cpu_ns
        self.rate_per_s, self.burst, self._buckets_max = rate_per_s, burst, buckets_max
        self._buckets: dict[str, Bucket] = {}  # participant -> its bucket, once it read

    def wait_ms(self, participant: str) -> int:
        """0 when ``participant`` may read now, else how many ms until it may."""
        bucket = self._buckets.get(participant)
        return 0 if bucket is None else bucket.wait_ms(self._clock_ms())

    @contextmanager
    def charged(
        self, participant: str, *, when: Callable[[], bool] = lambda: True
    ) -> Iterator[None]:
        """Charge ``participant`` the CPU time (us, at least 1) of the block it wraps: a
        read whose ``wait_ms`` was 0. Charged whether the block ends or raises, if ``when``
        says so at its end (a receipt: only if it rebuilt a block's trees)."""
        started = self._cpu_ns()
        try:
            yield
        finally:
            if when():
                self._charge(participant, max(1, (self._cpu_ns() - started) // 1_000))

    def _charge(self, participant: str, cost_us: int) -> None:
        now = self._clock_ms()
        bucket = self._buckets.get(participant)
        if bucket is None:
            if len(self._buckets) >= self._buckets_max:
                self._forget_full(now)
            # only verified participants read, and the registry holds at most PARTICIPANTS_MAX
            require(len(self._buckets) < self._buckets_max, "more readers than participants")
            bucket = self._buckets[participant] = Bucket(self.rate_per_s, self.burst, now)
        bucket.charge(cost_us, now)

    def _forget_full(self, now_ms: int) -> None:
        """Drop the buckets that refilled to their burst: each is the same as none."""
        for participant in [p for p, b in self._buckets.items() if b.full(now_ms)]:
            del self._buckets[participant]

    def __len__(self) -> int:
        return len(self._buckets)
