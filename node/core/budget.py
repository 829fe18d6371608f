"""Per-peer work budgets: token buckets on the caller's clock (pure, no clock of its own).

A peer is a validator that may be Byzantine; what it sends costs us signature
verifications (certificates, timeouts, forwarded transactions) and catch-up reads. Each
peer gets a bucket per kind of work that refills at a fixed rate up to a burst; work is
charged as it is done, and a peer whose bucket is empty is ignored until it refills. An
honest peer stays far inside its budget (docs/consensus.md gives the figures); a flooding
one costs at most its rate, whatever it sends.
"""

from __future__ import annotations

__all__ = ["Bucket"]


class Bucket:
    """``rate_per_s`` tokens a second up to ``burst``; may go into debt by one charge."""

    __slots__ = ("_at_ms", "_burst", "_rate", "_tokens")

    def __init__(self, rate_per_s: int, burst: int, now_ms: int) -> None:
        if not (rate_per_s > 0 and burst > 0):
            raise ValueError("a bucket needs a positive rate and burst")
        self._rate, self._burst = rate_per_s, burst
        self._tokens, self._at_ms = burst, now_ms

    def available(self, now_ms: int) -> bool:
        """Whether any work may be done now (the balance is positive)."""
        return self.above(0, now_ms)

    def above(self, level: int, now_ms: int) -> bool:
        """Whether the balance is above ``level``: work that must leave ``level`` for other
        work (a peer's forwards leave its consensus messages a reserve)."""
        self._refill(now_ms)
        return self._tokens > level

    def charge(self, cost: int, now_ms: int) -> None:
        """Work done: the balance may go negative, which blocks the peer until repaid."""
        self._refill(now_ms)
        self._tokens -= cost

    def wait_ms(self, now_ms: int) -> int:
        """How long until work may be done (0: now): until the balance is positive again."""
        self._refill(now_ms)
        if self._tokens > 0:
            return 0
        # the refill counts whole milliseconds since _at_ms; the part already elapsed counts
        needed_ms = -(-(1 - self._tokens) * 1000 // self._rate)
        return max(1, needed_ms - (now_ms - self._at_ms))

    def full(self, now_ms: int) -> bool:
        """Whether the bucket has refilled to its burst: as good as a new one."""
        self._refill(now_ms)
        return self._tokens >= self._burst

    def _refill(self, now_ms: int) -> None:
        if now_ms > self._at_ms:
            gained = (now_ms - self._at_ms) * self._rate // 1000
            if gained:
                self._tokens = min(self._burst, self._tokens + gained)
                self._at_ms = now_ms
