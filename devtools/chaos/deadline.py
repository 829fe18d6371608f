"""The end of a chaos run's load and faults, which Ctrl-C can bring forward."""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["Deadline"]


@dataclass(slots=True)
class Deadline:
    at: float  # time.monotonic()

    def left_s(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def now(self) -> None:
        """End the run at once: the workers finish their trade, the nemesis heals."""
        self.at = min(self.at, time.monotonic())
