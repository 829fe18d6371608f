"""``python -m devtools.bench.gate [--calls N]``: the CPU one client-call identity check costs.

In process, no cluster: parse a signed request's metadata and verify it (node/access.py
``parse_claim``, ``verify_claim``) against the participants read two ways: the genesis
alone (the gate before governance) and the registry over an LMDB store at its head (the
gate since ADR 0016: a governance-added participant or a rotated key counts at once).
Prints the best of three rounds of CPU time per call for each; docs/performance.md
("Issue 15: access checks") keeps the figures.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence

from node.access import parse_claim, signed_metadata, verify_claim
from node.genesis import demo_genesis
from node.settlement import Registry
from node.store import LmdbStore

METHOD = "/ledger.v1.Ledger/GetBalances"
NODE = "val00"
REQUEST = b"\x0a\x06BANK01"  # GetBalances(account="BANK01"), as the SDK encodes it
ROUNDS = 3


def _per_call_us(
    metadata: Sequence[tuple[tuple[str, str], ...]], reg: Callable[[], Registry]
) -> float:
    """Best of ROUNDS rounds: CPU microseconds per check, the registry built per call as
    the gate builds it."""
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.process_time()
        for md in metadata:
            verify_claim(parse_claim(md), reg(), NODE, METHOD, REQUEST)
        best = min(best, (time.process_time() - t0) / len(metadata) * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devtools.bench.gate", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--calls", type=int, default=5_000, help="signed calls per round (default 5,000)"
    )
    args = p.parse_args(argv)
    if args.calls < 1:
        p.error("--calls must be at least 1")
    net = demo_genesis(4, 3, seed=b"bench-gate")
    g, key = net.genesis, net.participant_keys["BANK01"]
    print(f"signing {args.calls:,} calls as BANK01 ...", flush=True)
    metadata = [
        signed_metadata(
            key, "BANK01", g.chain_id, METHOD, REQUEST, node=NODE, time_ms=i, nonce=os.urandom(16)
        )
        for i in range(args.calls)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as d:
        store = LmdbStore(d, g)
        try:
            for name, reg in (
                ("genesis only", lambda: Registry.at_genesis(g)),
                ("registry at head (LMDB)", lambda: Registry.of(store)),
            ):
                us = _per_call_us(metadata, reg)
                print(f"{name:<26}{us:8.1f} us CPU per call (best of {ROUNDS})")
        finally:
            store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
