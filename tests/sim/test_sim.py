"""CI entry for the deterministic simulation: seeds over n in {4, 7, 26}, and the
negative controls that prove the checker can fire.

A failing seed prints the one command that replays it.
"""

from __future__ import annotations

import pytest

from tests.sim.invariants import Violation
from tests.sim.runner import make_scenario, replay_command, run, split_brain

# (n, q, first seed, seeds): 3,800 seeds in all; q None = classic quorum.
BATCHES = [
    (4, None, 0, 2_000),
    (7, None, 0, 1_200),
    (7, 6, 200_000, 200),
    (7, 4, 250_000, 100),
    (26, 16, 0, 200),
    (26, 18, 300_000, 100),
]
CHUNK = 50


def _chunks() -> list[tuple[int, int | None, int, int]]:
    out = []
    for n, q, start, count in BATCHES:
        for first in range(start, start + count, CHUNK):
            out.append((n, q, first, min(CHUNK, start + count - first)))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("n", "q", "first", "count"), _chunks())
def test_seeds(n: int, q: int | None, first: int, count: int) -> None:
    for seed in range(first, first + count):
        sc = make_scenario(n, q, seed)
        try:
            run(sc)
        except Violation as e:
            pytest.fail(f"seed {seed} n={sc.n} q={sc.q}: {e}\nreplay: {replay_command(sc)}")


def test_replay_is_exact() -> None:
    a, b = run(make_scenario(7, None, 3)), run(make_scenario(7, None, 3))
    assert a == b


@pytest.mark.parametrize(
    ("n", "q", "twins", "unsafe"),
    [
        (4, 2, (), True),
        (4, 3, (0, 1), False),
        (7, 5, (0, 1, 2), False),
        (26, 16, tuple(range(6)), False),
    ],
)
def test_negative_control_checker_fires(
    n: int, q: int, twins: tuple[int, ...], unsafe: bool
) -> None:
    """Beyond the safety bound (2q - n - 1 twins, or q <= n/2) the checker must fire."""
    with pytest.raises(Violation) as caught:
        split_brain(n, q, twins, unsafe=unsafe)
    assert caught.value.kind == "agreement"


@pytest.mark.parametrize(
    ("n", "q", "twins"), [(4, 3, (0,)), (7, 5, (0, 1)), (26, 16, tuple(range(5)))]
)
def test_twins_at_the_bound_are_safe(n: int, q: int, twins: tuple[int, ...]) -> None:
    cl = split_brain(n, q, twins)
    assert cl.checker.max_height >= 1


def test_liveness_checker_fires_beyond_n_minus_q_down() -> None:
    """With n - q + 1 validators down nothing can commit, and the checker must say so."""
    with pytest.raises(Violation) as caught:
        run(make_scenario(7, 5, 1), keep_down=3)
    assert caught.value.kind == "liveness"


def test_exactly_n_minus_q_down_stays_live() -> None:
    result = run(make_scenario(7, 5, 1), keep_down=2)
    assert result.height >= 1
