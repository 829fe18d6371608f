"""A block's party index and Merkle trees, built as execution builds them for every block.

Execution builds, for every block with transactions, a party index of one leaf per
registered participant (ADR 0025: up to ``PARTICIPANTS_MAX``, 10,000) and the block's
results tree; every validator does it for every block. This prints the CPU time of one
build (the best and the median of ``--repeat`` builds), with fixed inputs, and the roots
(the same inputs give the same roots in every version: compare two trees' figures only
when their roots agree):

    .venv/bin/python -m devtools.bench.partyindex [--participants 1000 10000] [--txs 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from node import crypto
from node.merkle import MerkleTree
from node.settlement import PartyIndex

__all__ = ["main"]


def _cpu_ms(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1000)
    return min(times), statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m devtools.bench.partyindex",
        description="CPU time of one party index and one Merkle tree build, fixed inputs.",
    )
    ap.add_argument("--participants", type=int, nargs="+", default=[1_000, 10_000])
    ap.add_argument("--txs", type=int, default=200, help="transactions in the block")
    ap.add_argument("--repeat", type=int, default=9, help="builds timed (best and median)")
    args = ap.parse_args(argv)
    ids = [crypto.sha256(k.to_bytes(4, "big")) for k in range(args.txs)]
    for count in args.participants:
        keys = [f"P{k:05d}" for k in range(count)]
        named = [
            (frozenset({keys[k % count], keys[k * 7 % count]}), False) for k in range(args.txs)
        ]
        observers = keys[:5]

        def build(
            keys: list[str] = keys,
            named: list[tuple[frozenset[str], bool]] = named,
            observers: list[str] = observers,
        ) -> PartyIndex:
            return PartyIndex(named, keys, ids, observers=observers)

        best, median = _cpu_ms(build, args.repeat)
        root = build().top.root.hex()[:16]
        print(
            f"party index, {count} participants, {args.txs} txs: {best:.2f} ms best, "
            f"{median:.2f} ms median (root {root})"
        )
    leaves = [crypto.sha256(k.to_bytes(4, "big")) + bytes(8) for k in range(10 * args.txs)]
    best, median = _cpu_ms(lambda: MerkleTree(leaves), args.repeat)
    root = MerkleTree(leaves).root.hex()[:16]
    print(
        f"Merkle tree, {len(leaves)} leaves of 40 bytes: {best:.2f} ms best, "
        f"{median:.2f} ms median (root {root})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
