"""The per-block cost of the velocity watch (``node/runtime/_velocity.py``) in steady state.

The bench's DvP ring moves 6 banks; at 100 trades/s each bank makes about 33 moves a
second, so its 60 s window holds ``VELOCITY_EVENTS_MAX`` (2,000) moves once full. This
fills every window, then times ``observe`` (what a committed block costs the watch beyond
decoding its transactions) for blocks of ``--per-block`` trades at ``--rate``:

    .venv/bin/python -m devtools.bench.velocity [--rate 100] [--per-block 2] [--blocks 2000]

CPU time per block, best of three rounds. Run from another tree (``PYTHONPATH``) it
measures that tree's watch: the before/after of docs/performance.md ("Session 10").
"""

from __future__ import annotations

import argparse
import time

from node.runtime._velocity import VelocityWatch
from node.settlement import Registry

__all__ = ["main"]

BANKS = tuple(f"BANK0{i}" for i in range(1, 7))
CASH = "USD-TOKEN"
AMOUNT = 5


def _block(i: int, per_block: int) -> list[tuple[str, str, int]]:
    """The moves of trades ``i * per_block ...``: seller and buyer around the ring."""
    moves = []
    for k in range(i * per_block, (i + 1) * per_block):
        seller, buyer = BANKS[k % len(BANKS)], BANKS[(k + 1) % len(BANKS)]
        moves += [(seller, CASH, AMOUNT), (buyer, CASH, AMOUNT)]
    return moves


def us_per_block(rate: float, per_block: int, blocks: int) -> float:
    def no_registry() -> Registry:
        raise AssertionError("observe reads no registry")

    watch = VelocityWatch(no_registry, txs_max=10**9, value_max=10**15)
    step_ms = max(1, round(1000 * per_block / rate))
    fill = watch.window_ms // step_ms + 10
    t = 0
    for i in range(fill):
        t += step_ms
        watch.observe(t, _block(i, per_block))
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for i in range(blocks):
            t += step_ms
            watch.observe(t, _block(i, per_block))
        best = min(best, (time.process_time() - start) / blocks)
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(
        prog="python -m devtools.bench.velocity", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--rate", type=float, default=100.0, help="trades per second")
    ap.add_argument("--per-block", type=int, default=2, help="trades per block")
    ap.add_argument("--blocks", type=int, default=2_000, help="blocks timed per round")
    args = ap.parse_args()
    cost = us_per_block(args.rate, args.per_block, args.blocks)
    print(f"{args.rate:g} trades/s, {args.per_block} per block: {cost:.1f} us per block")


if __name__ == "__main__":
    main()
