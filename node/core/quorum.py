"""Quorum arithmetic for n validators and a quorum of q signatures.

Two quorums of size q overlap in at least 2q - n validators. Safety needs one honest
validator in every overlap, so it tolerates f_safe = 2q - n - 1 Byzantine validators.
Liveness needs q validators up, so it tolerates n - q down. The classic BFT choice
q = floor(2n/3) + 1 balances both at floor((n - 1)/3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Quorum", "classic_quorum"]


def classic_quorum(n: int) -> int:
    """The classic BFT quorum floor(2n/3) + 1 (for 26 validators: 18)."""
    if n < 1:
        raise ValueError(f"a validator set needs at least 1 validator, got n={n}")
    return (2 * n) // 3 + 1


@dataclass(frozen=True, slots=True)
class Quorum:
    """A validated (n, q) pair with the bounds it implies."""

    n: int
    q: int
    # Test-only: skip validation so the simulator can show a non-intersecting quorum fail.
    unsafe: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        if self.unsafe:
            return
        if self.n < 1:
            raise ValueError(f"a validator set needs at least 1 validator, got n={self.n}")
        if 2 * self.q <= self.n:
            raise ValueError(
                f"quorum q={self.q} is not more than half of n={self.n}: two quorums "
                f"could be disjoint and finalize conflicting blocks; choose q > {self.n // 2}"
            )
        if self.q > self.n:
            raise ValueError(
                f"quorum q={self.q} exceeds the number of validators n={self.n}; "
                f"no block could ever be finalized"
            )

    @classmethod
    def classic(cls, n: int) -> Quorum:
        return cls(n, classic_quorum(n))

    @property
    def safety_bound(self) -> int:
        """Byzantine validators tolerated without two conflicting finalized blocks."""
        return 2 * self.q - self.n - 1

    @property
    def liveness_bound(self) -> int:
        """Validators that may be down while the ledger keeps finalizing."""
        return self.n - self.q

    @property
    def byzantine_bound(self) -> int:
        """Byzantine validators tolerated for safety and liveness at once (a silent
        Byzantine validator also counts as down): min(2q - n - 1, n - q). For 26 of 18: 8."""
        return min(self.safety_bound, self.liveness_bound)

    @property
    def classic_bound(self) -> int:
        return (self.n - 1) // 3

    def warning(self) -> str | None:
        """A warning when the safety bound is below the classic floor((n - 1)/3)."""
        if self.safety_bound >= self.classic_bound:
            return None
        return (
            f"quorum {self.q} of {self.n} tolerates only {self.safety_bound} Byzantine "
            f"validators, below the classic {self.classic_bound}; the classic quorum "
            f"for {self.n} is {classic_quorum(self.n)}"
        )

    def describe(self) -> str:
        return (
            f"{self.q} of {self.n}: safe with up to {self.safety_bound} Byzantine, "
            f"live with up to {self.liveness_bound} down"
        )
