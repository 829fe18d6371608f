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


def test_classic_quorum_starts_at_one_validator() -> None:
    assert classic_quorum(1) == 1
    assert classic_quorum(2) == 2
    for n in (0, -1):
        with pytest.raises(ValueError, match="at least 1 validator"):
            classic_quorum(n)


def test_no_validators_is_refused_for_that_reason() -> None:
    # n = 0 fails several checks; the operator must read the first that applies.
    with pytest.raises(ValueError, match="at least 1 validator"):
        Quorum(0, 1)


@pytest.mark.parametrize(("n", "half"), [(26, 13), (4, 2), (7, 3)])
def test_a_minority_quorum_error_names_the_smallest_safe_choice(n: int, half: int) -> None:
    with pytest.raises(ValueError, match=rf"choose q > {half}$"):
        Quorum(n, half)


@pytest.mark.parametrize(("n", "bound"), [(1, 0), (3, 0), (4, 1), (6, 1), (7, 2), (26, 8)])
def test_classic_bound_is_floor_of_n_minus_1_over_3(n: int, bound: int) -> None:
    assert Quorum.classic(n).classic_bound == bound


def test_no_warning_when_the_safety_bound_equals_the_classic_one() -> None:
    assert Quorum(4, 3).safety_bound == Quorum(4, 3).classic_bound == 1
    assert Quorum(4, 3).warning() is None


def test_liveness_bound_holds_for_an_unsafe_quorum_too() -> None:
    # The simulator's non-intersecting quorum still sizes timeouts and leader exclusion.
    assert Quorum(4, 2, unsafe=True).liveness_bound == 2
    assert Quorum(6, 2, unsafe=True).liveness_bound == 4


def test_a_quorum_is_immutable_and_the_unsafe_flag_only_by_keyword() -> None:
    import dataclasses

    quorum = Quorum(4, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        quorum.q = 2  # type: ignore[misc]
    assert not hasattr(quorum, "__dict__")  # slots: no attribute can be added either
    with pytest.raises(TypeError):
        Quorum(4, 2, True)  # type: ignore[misc]
