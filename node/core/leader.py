"""Who leads a view: a rotation that skips validators which recently failed to lead.

Plain round-robin (leader of view v is v mod n) has two faults under crashes: every dead
validator costs one view timeout per rotation, for ever, and validators that are down
together and adjacent in the rotation cost one timeout each in a row (10 adjacent dead
validators at 26/16 stalled a cluster for 36 s). This schedule fixes both, deterministically
from committed history, so every honest replica at the same committed height computes the
same leader for every view (leader choice is a liveness matter only: safety never depends
on agreeing on it, see docs/consensus.md).

*Reputation* (as Diem/Aptos' LeaderReputation, in a simple form). A committed block's
header names its proposer and the view it was first proposed in; the views between the
parent's view and the block's were views whose leader did not produce a committed block,
charged to the leaders those views had when they ran. Over the last
``LEADER_WINDOW_BLOCKS`` committed blocks, a validator whose latest outcome is such a
failure is *excluded*, the most recent failures first, at most ``n - q`` of them (so at
least q validators remain candidates; more than n - q down is beyond the liveness bound
anyway). An excluded validator comes back when its failure leaves the window (a re-probe:
one timeout if it is still down) or when it proposes a committed block again. The schedule
is replayed from block 1 at start (``Replica`` reads each header once), so a restarted
replica computes exactly what the others do.

*Spread.* The candidates are visited with a stride coprime to their number, as far from 1
as possible (11 of 26), so validators adjacent in index order, when down together, are not
tried one after another: with a stride s, no two consecutive views fall in any run of fewer
than min(s, m - s) adjacent candidates.
"""

from __future__ import annotations

from collections import deque
from math import gcd

from node.config import LEADER_WINDOW_BLOCKS

__all__ = ["LeaderSchedule", "stride"]


def stride(m: int) -> int:
    """The step through ``m`` candidates: coprime to m, and as near m/2 as that allows, so
    that consecutive views are led by validators far apart in index order."""
    for d in range(m):
        for s in (m // 2 - d, m // 2 + d):
            if 0 < s < m and gcd(s, m) == 1:
                return s
    return 1


class LeaderSchedule:
    """The leader of each view, from the (view, proposer) of every committed block, in order.

    When a block is committed, the views between its parent's and its own are charged to
    the leaders they had *then* (the schedule as it stood after the parent), and that
    attribution is kept as a fact of the block: it is never recomputed, so a later change
    of the candidates cannot move a past failure onto another validator. The candidates
    are a function of the facts of the last ``window`` blocks.
    """

    def __init__(self, n: int, excluded_max: int, window: int = LEADER_WINDOW_BLOCKS) -> None:
        if not (n > 0 and 0 <= excluded_max < n and window > 0):
            raise ValueError("a schedule needs n > 0, 0 <= excluded_max < n and a window")
        self.n, self._excluded_max, self._window = n, excluded_max, window
        # Per committed block of the window, oldest first: (proposer, leaders that failed).
        self._facts: deque[tuple[int, tuple[int, ...]]] = deque(maxlen=window)
        self._last_view: int | None = None
        self._candidates: tuple[int, ...] = tuple(range(n))
        self._stride = stride(n)

    @property
    def window(self) -> int:
        """How many of the last committed blocks the schedule looks at."""
        return self._window

    @property
    def candidates(self) -> tuple[int, ...]:
        return self._candidates

    @property
    def excluded(self) -> frozenset[int]:
        return frozenset(range(self.n)) - frozenset(self._candidates)

    def leader(self, view: int) -> int:
        return self._candidates[(view * self._stride) % len(self._candidates)]

    def committed(self, view: int, proposer: int) -> None:
        """A block first proposed in ``view`` by ``proposer`` was committed (in order)."""
        failed: tuple[int, ...] = ()
        if self._last_view is not None and view > self._last_view + 1:
            # At most one rotation's worth: older views of a long gap repeat the same
            # validators, and a huge gap would otherwise cost a long loop.
            first = max(self._last_view + 1, view - len(self._candidates))
            failed = tuple(self.leader(w) for w in range(first, view))
        self._last_view = view
        self._facts.append((proposer, failed))
        if failed or proposer in self.excluded or len(self._facts) == self._window:
            self._recompute()

    def _recompute(self) -> None:
        failed_at: dict[int, int] = {}  # validator -> position of its latest failure
        ok_at: dict[int, int] = {}  # validator -> position of its latest committed block
        for pos, (proposer, failed) in enumerate(self._facts):
            for i in failed:
                failed_at[i] = pos
            ok_at[proposer] = pos
        latest = sorted((p, i) for i, p in failed_at.items() if p > ok_at.get(i, -1))
        out = {i for _, i in latest[max(0, len(latest) - self._excluded_max) :]}
        new = tuple(i for i in range(self.n) if i not in out)
        if new != self._candidates:
            self._candidates, self._stride = new, stride(len(new))
