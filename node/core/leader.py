"""Who leads a view: a rotation that skips validators which recently failed to lead.

Plain round-robin (leader of view v is v mod n) has two faults under crashes: every dead
validator costs one view timeout per rotation, for ever, and validators that are down
together and adjacent in the rotation cost one timeout each in a row (10 adjacent dead
validators at 26/16 stalled a cluster for 36 s). This schedule fixes both, deterministically
from committed history, so every honest replica at the same committed height computes the
same leader for every view (leader choice is a liveness matter only: safety never depends
on agreeing on it, see docs/consensus.md).

*Reputation* (as Diem/Aptos' LeaderReputation, in a simple form). A committed block's
header names its proposer, the view it was first proposed in and the view of the
certificate of its parent that its proposal carried (ADR 0022). So the headers of a block
and of its child tell, for every view since the grandparent's certificate, whether its
leader produced a certified block in it:

- the views between the parent's certificate and the block's first proposal were views
  whose leader proposed nothing that was certified: each is charged to its leader;
- the block's own view is a success if the child's header names a certificate of that
  view; if it names a later one, the block was certified only after a view change (it
  was re-proposed, the Jolteon lock rule): its proposer is charged, the leader of the view
  it was certified in is credited, and the views in between are charged, all but the
  first. That first view's leader could not propose: it had the block's prepare
  certificate and no commit certificate, which is the proposer's to form (a slow leader
  whose view overran at some replicas only; docs/consensus.md "Slow leaders").

A block's own outcome is therefore known one block later, when its child commits. Each
view is charged to the leader it had when it ran (the schedule in force then), once: a
later change of the candidates never moves a past failure onto another validator. A
validator whose latest outcome is a failure is *excluded* for a penalty that doubles with
each failure since it last led a certified block (``LEADER_PENALTY_BASE_BLOCKS``
committed blocks, up to ``LEADER_PENALTY_MAX_BLOCKS``), the most recent failures first,
at most ``n - q`` at once (so at least q validators remain candidates; more than n - q
down is beyond the liveness bound anyway). When its penalty ends it is tried once more
(one timeout if it is still down, and a penalty twice as long); when it leads a certified
block it is trusted again. The state is a few integers per validator, updated per
committed block in order: a restarted replica replays it from block 1 (headers alone) and
computes exactly what the others have.

*Spread.* The candidates are visited with a stride coprime to their number, as far from 1
as possible (11 of 26), so validators adjacent in index order, when down together, are not
tried one after another: with a stride s, no two consecutive views fall in any run of fewer
than min(s, m - s) adjacent candidates.
"""

from __future__ import annotations

import copy
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
    """The leader of each view, from the (view, proposer, parent view) of every committed
    block, in order."""

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
        self._last: tuple[int, int] | None = None  # the last block's (view, proposer)
        self._failed_at = [0] * n  # height of the block that charged its latest failure
        self._ok_at = [0] * n  # height of the block that credited its latest success
        self._strikes = [0] * n  # failures since it last led a certified block
        self._candidates: tuple[int, ...] = tuple(range(n))
        self._stride = stride(n)
        # The candidates the last block's views ran under (its outcome is charged by them).
        self._ran_under = self._candidates

    @property
    def candidates(self) -> tuple[int, ...]:
        return self._candidates

    @property
    def excluded(self) -> frozenset[int]:
        return frozenset(range(self.n)) - frozenset(self._candidates)

    @property
    def last_view(self) -> int | None:
        """The view the last committed block was first proposed in (None: none yet)."""
        return None if self._last is None else self._last[0]

    def leader(self, view: int) -> int:
        return _leader_of(self._candidates, self._stride, view)

    def changes_at(self, view: int, proposer: int, *, parent_view: int) -> bool:
        """Whether committing a block with this header next would change the candidates,
        and so the leader of some view. A pipelined block is judged before its parent
        commits (ADR 0012): honest replicas agree on its view's leader only if the
        parent's commit changes nothing, so only then is it made."""
        probe = copy.copy(self)  # every field; the lists a commit changes in place, copied:
        probe._failed_at, probe._ok_at = list(self._failed_at), list(self._ok_at)
        probe._strikes = list(self._strikes)
        probe.committed(view, proposer, parent_view=parent_view)
        return probe._candidates != self._candidates

    def committed(self, view: int, proposer: int, *, parent_view: int) -> None:
        """A block first proposed in ``view`` by ``proposer``, whose proposal carried a
        certificate of its parent of ``parent_view``, was committed (in order). The
        parent's outcome is charged under the candidates its views ran under, the views
        before this block's under today's (the schedule after the parent)."""
        self._height += 1
        now = self._candidates
        if self._last is not None:
            last_view, last_proposer = self._last
            # Within the safety bound a parent is certified in its view or later, and its
            # child proposed after that; a header that says otherwise reads as on time.
            certified = parent_view if last_view <= parent_view < view else last_view
            if certified == last_view:
                self._ok(last_proposer)
            else:
                # Re-proposed after a view change: its proposer failed, the view after
                # it is excused (no commit certificate to propose on), later ones not.
                ran = self._ran_under
                self._fail({last_proposer})
                self._fail(_leaders(ran, last_view + 2, certified))
                self._ok(_leader_of(ran, stride(len(ran)), certified))
            self._fail(_leaders(now, certified + 1, view))
        self._last = (view, proposer)
        self._ran_under = now
        self._recompute()

    def _fail(self, validators: set[int]) -> None:
        for i in validators:
            if 0 <= i < self.n:
                self._failed_at[i] = self._height
                self._strikes[i] += 1
                # Outcomes are applied in the order of their views: a failure after a
                # success charged by the same block is the latest outcome.
                self._ok_at[i] = min(self._ok_at[i], self._height - 1)

    def _ok(self, validator: int) -> None:
        if 0 <= validator < self.n:
            self._ok_at[validator] = self._height
            self._strikes[validator] = 0

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


def _leader_of(candidates: tuple[int, ...], step: int, view: int) -> int:
    return candidates[(view * step) % len(candidates)]


def _leaders(candidates: tuple[int, ...], first: int, end: int) -> set[int]:
    """The leaders of views first .. end - 1 under ``candidates``. At most one rotation's
    worth: older views of a long gap repeat the same validators, and a huge gap would
    otherwise cost a long loop."""
    if first >= end:
        return set()  # no view between (the usual case: each block certified on time)
    step = stride(len(candidates))
    first = max(first, end - len(candidates))
    return {_leader_of(candidates, step, w) for w in range(first, end)}
