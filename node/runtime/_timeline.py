"""When this validator first saw each consensus step of recent blocks.

The benchmark (``make bench``) splits a trade's latency into phases — submitted, block
proposed, prepare certificate, commit certificate, applied, client notified — by asking
every validator for these marks and taking the earliest: the leader's own marks are the
moments it sent the proposal and formed each certificate. Marks are wall-clock
microseconds, comparable across processes on one machine (across machines only as far
as their clocks agree). Bounded: the oldest heights are forgotten first.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict

__all__ = ["Step", "Timeline"]


class Step(enum.IntEnum):
    PROPOSED = 0
    PREPARE_QC = 1
    COMMIT_QC = 2
    APPLIED = 3


class Timeline:
    def __init__(self, heights_max: int) -> None:
        self._heights_max = heights_max
        self._marks: OrderedDict[int, list[int]] = OrderedDict()

    def mark(self, height: int, step: Step, at_us: int | None = None) -> None:
        """Record ``step`` of block ``height`` now (or at ``at_us``, wall-clock
        microseconds), unless it was recorded already."""
        marks = self._marks.get(height)
        if marks is None:
            marks = self._marks[height] = [0, 0, 0, 0]
            if len(self._marks) > self._heights_max:
                self._marks.popitem(last=False)
        if not marks[step]:
            marks[step] = time.time_ns() // 1_000 if at_us is None else at_us

    def get(self, height: int) -> tuple[int, int, int, int] | None:
        """The marks of ``height`` in Step order (0 = not seen), or None if none."""
        marks = self._marks.get(height)
        return None if marks is None else (marks[0], marks[1], marks[2], marks[3])

    def __len__(self) -> int:
        return len(self._marks)
