"""Quorum arithmetic: bounds, classic quorum, validation, operator-facing text."""

from __future__ import annotations

import pytest

from node.core import Quorum, classic_quorum


@pytest.mark.parametrize(
    ("n", "q", "safe", "live", "both"),
    [(26, 16, 5, 10, 5), (26, 18, 9, 8, 8), (4, 3, 1, 1, 1), (7, 5, 2, 2, 2), (1, 1, 0, 0, 0)],
)
def test_bounds(n: int, q: int, safe: int, live: int, both: int) -> None:
    # 26/18: the overlap of two quorums is 10 validators, so safety alone survives 9
    # Byzantine (2q - n - 1); the classic "f = 8" is the bound for safety and liveness
    # together, because Byzantine validators may also fall silent.
    quorum = Quorum(n, q)
    assert (quorum.safety_bound, quorum.liveness_bound) == (safe, live)
    assert quorum.byzantine_bound == both


def test_classic_quorum() -> None:
    assert classic_quorum(26) == 18
    assert classic_quorum(4) == 3
    assert classic_quorum(7) == 5
    assert Quorum.classic(26) == Quorum(26, 18)


def test_description_and_warning() -> None:
    assert Quorum(26, 16).describe() == (
        "16 of 26: safe with up to 5 Byzantine, live with up to 10 down"
    )
    warning = Quorum(26, 16).warning()
    assert warning is not None and "classic" in warning and "18" in warning
    assert Quorum(26, 18).warning() is None


@pytest.mark.parametrize(("n", "q"), [(26, 13), (4, 2), (26, 27), (4, 0), (0, 0), (5, -1)])
def test_invalid_quorums_are_rejected_with_a_reason(n: int, q: int) -> None:
    with pytest.raises(ValueError, match=r"quorum|validator"):
        Quorum(n, q)


def test_unsafe_flag_is_explicit() -> None:
    assert Quorum(4, 2, unsafe=True).safety_bound == -1
