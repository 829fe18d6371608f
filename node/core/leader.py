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
parent's view and the block's were views whose leader did not produce a committed block.
Walking the last ``LEADER_WINDOW_BLOCKS`` committed headers from an all-trusted start, a
validator whose latest outcome in the window is a failure is *excluded*, the most recent
failures first, at most ``n - q`` of them (so at least q validators remain candidates; more
than n - q down is beyond the liveness bound anyway). An excluded validator comes back when
its failure leaves the window (a re-probe: one timeout if it is still down) or when it
proposes a committed block again.

*Spread.* The candidates are visited with a stride coprime to their number, as far from 1
as possible (11 of 26), so validators adjacent in index order, when down together, are not
tried one after another: with a stride s, no two consecutive views fall in any run of fewer
than min(s, m - s) adjacent candidates.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    """The leader of each view, given the (view, proposer) of recent committed blocks."""

    def __init__(self, n: int, excluded_max: int, window: int = LEADER_WINDOW_BLOCKS) -> None:
        if not (n > 0 and 0 <= excluded_max < n and window > 0):
            raise ValueError("a schedule needs n > 0, 0 <= excluded_max < n and a window")
        self.n, self._excluded_max, self._window = n, excluded_max, window
        self._history: list[tuple[int, int]] = []  # (block view, proposer), oldest first
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
        return _leader(self._candidates, self._stride, view)

    def reset(self, history: Iterable[tuple[int, int]]) -> None:
        """Start from the (view, proposer) of the last committed blocks, oldest first."""
        self._history = list(history)[-self._window :]
        self._recompute()

    def committed(self, view: int, proposer: int) -> None:
        """A block first proposed in ``view`` by ``proposer`` was committed."""
        self._history.append((view, proposer))
        if len(self._history) > self._window:
            del self._history[0]
        self._recompute()

    def _recompute(self) -> None:
        """Walk the window from an all-trusted start; each gap of views between two blocks
        is charged to the leaders those views had at that point of the walk."""
        candidates: tuple[int, ...] = tuple(range(self.n))
        step = stride(self.n)
        failed_at: dict[int, int] = {}  # validator -> position of its latest failure
        ok_at: dict[int, int] = {}  # validator -> position of its latest committed block
        prev_view: int | None = None
        for pos, (view, proposer) in enumerate(self._history):
            changed = proposer in failed_at
            if prev_view is not None and view > prev_view + 1:
                # At most one rotation's worth: older views of a long gap repeat the same
                # validators, and a huge gap would otherwise cost a long loop.
                for w in range(max(prev_view + 1, view - self.n), view):
                    failed_at[_leader(candidates, step, w)] = pos
                changed = True
            ok_at[proposer] = pos
            prev_view = view
            if changed:
                new = self._without(self._failing(failed_at, ok_at))
                if new != candidates:
                    candidates, step = new, stride(len(new))
        self._candidates, self._stride = candidates, step

    def _failing(self, failed_at: dict[int, int], ok_at: dict[int, int]) -> set[int]:
        """Validators whose latest outcome is a failure, the most recent excluded_max."""
        latest = sorted((p, i) for i, p in failed_at.items() if p > ok_at.get(i, -1))
        return {i for _, i in latest[max(0, len(latest) - self._excluded_max) :]}

    def _without(self, out: set[int]) -> tuple[int, ...]:
        return tuple(i for i in range(self.n) if i not in out)


def _leader(candidates: tuple[int, ...], step: int, view: int) -> int:
    return candidates[(view * step) % len(candidates)]
