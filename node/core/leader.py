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
Each is charged, when the block commits, to the leader it had when it ran (the schedule as
it stood after the parent), once: a later change of the candidates never moves a past
failure onto another validator. A validator whose latest outcome is a failure is
*excluded* for a penalty that doubles with each failure since it last led a committed
block (``LEADER_PENALTY_BASE_BLOCKS`` committed blocks, up to
``LEADER_PENALTY_MAX_BLOCKS``), the most recent failures first, at most ``n - q`` at once
(so at least q validators remain candidates; more than n - q down is beyond the liveness
bound anyway). When its penalty ends it is tried once more (one timeout if it is still
down, and a penalty twice as long); when it leads a committed block it is trusted again.
The state is a few integers per validator, updated per committed block in order: a
restarted replica replays it from block 1 (headers alone) and computes exactly what the
others have.

*Spread.* The candidates are visited with a stride coprime to their number, as far from 1
as possible (11 of 26), so validators adjacent in index order, when down together, are not
tried one after another: with a stride s, no two consecutive views fall in any run of fewer
than min(s, m - s) adjacent candidates.
"""

from __future__ import annotations

from math import gcd

from node.config import LEADER_PENALTY_BASE_BLOCKS, LEADER_PENALTY_MAX_BLOCKS

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
    """The leader of each view, from the (view, proposer) of every committed block, in order."""

    def __init__(
        self,
        n: int,
        excluded_max: int,
        *,
        penalty_base: int = LEADER_PENALTY_BASE_BLOCKS,
        penalty_max: int = LEADER_PENALTY_MAX_BLOCKS,
    ) -> None:
        if not (n > 0 and 0 <= excluded_max < n and 0 < penalty_base <= penalty_max):
            raise ValueError("a schedule needs n > 0, 0 <= excluded_max < n and penalties")
        self.n, self._excluded_max = n, excluded_max
        self._penalty_base, self._penalty_max = penalty_base, penalty_max
        self._height = 0  # committed blocks seen
        self._last_view: int | None = None
        self._failed_at = [0] * n  # height of the block that charged its latest failure
        self._ok_at = [0] * n  # height of its latest committed block
        self._strikes = [0] * n  # failures since it last led a committed block
        self._candidates: tuple[int, ...] = tuple(range(n))
        self._stride = stride(n)

    @property
    def candidates(self) -> tuple[int, ...]:
        return self._candidates

    @property
    def excluded(self) -> frozenset[int]:
        return frozenset(range(self.n)) - frozenset(self._candidates)

    def leader(self, view: int) -> int:
        return self._candidates[(view * self._stride) % len(self._candidates)]

    def changes_at(self, view: int, proposer: int) -> bool:
        """Whether committing a block first proposed in ``view`` by ``proposer`` next would
        change the candidates, and so the leader of some view. A pipelined block is judged
        before its parent commits (ADR 0012): honest replicas agree on its view's leader
        only if the parent's commit changes nothing, so only then is it made."""
        probe = LeaderSchedule.__new__(LeaderSchedule)
        probe.n, probe._excluded_max = self.n, self._excluded_max
        probe._penalty_base, probe._penalty_max = self._penalty_base, self._penalty_max
        probe._height, probe._last_view = self._height, self._last_view
        probe._failed_at, probe._ok_at = list(self._failed_at), list(self._ok_at)
        probe._strikes = list(self._strikes)
        probe._candidates, probe._stride = self._candidates, self._stride
        probe.committed(view, proposer)
        return probe._candidates != self._candidates

    def committed(self, view: int, proposer: int) -> None:
        """A block first proposed in ``view`` by ``proposer`` was committed (in order)."""
        self._height += 1
        if self._last_view is not None and view > self._last_view + 1:
            # At most one rotation's worth: older views of a long gap repeat the same
            # validators, and a huge gap would otherwise cost a long loop.
            first = max(self._last_view + 1, view - len(self._candidates))
            for i in {self.leader(w) for w in range(first, view)}:
                self._failed_at[i] = self._height
                self._strikes[i] += 1
        self._last_view = view
        if 0 <= proposer < self.n:
            self._ok_at[proposer] = self._height
            self._strikes[proposer] = 0
        self._recompute()

    def _penalty(self, strikes: int) -> int:
        return min(self._penalty_max, self._penalty_base << min(strikes - 1, 30))

    def _recompute(self) -> None:
        failing = sorted(
            (self._failed_at[i], i)
            for i in range(self.n)
            if self._failed_at[i] > self._ok_at[i]
            and self._height - self._failed_at[i] < self._penalty(self._strikes[i])
        )
        out = {i for _, i in failing[max(0, len(failing) - self._excluded_max) :]}
        new = tuple(i for i in range(self.n) if i not in out)
        if new != self._candidates:
            self._candidates, self._stride = new, stride(len(new))
