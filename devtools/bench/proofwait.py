"""``python -m devtools.bench.proofwait [--trades N] [--wait-s S]``: proof waits that end.

The reproducer of the liveness defect in docs/reliability.md ("A finality wait that
missed its commit"). It starts a fresh 4-validator cluster and settles N trades one after
another, each through the next validator. Each trade is submitted without its result
proof, then its receipt is asked for with the proof, which comes with the next block.
That is the demo's pattern, and it races the next commit. The tool prints each proof
wait that did not end within ``--wait-s`` and the count. Before the fix about 5 in 1,000
timed out on a 2-core machine at load 5; after it none did. A dev tool beside the
benchmark: the validator never imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from client import FinalityTimeoutError, RejectedError
from devtools.cluster import start_cluster, stop_cluster
from devtools.demo.run import ValidatorClients, load_run_network
from devtools.netgen import NetSpec, free_port_base, generate
from node.genesis import DemoNetwork

SUBMIT_WAIT_S = 30.0  # the commit itself (not what is measured)


async def _trades(run_dir: Path, demo: DemoNetwork, count: int, wait_s: float) -> int:
    """Settle ``count`` trades in a row; how many proof waits timed out."""
    clients = ValidatorClients(run_dir)
    misses = 0
    try:
        await clients.connect()
        banks = demo.banks
        for k in range(count):
            terms = (banks[k % len(banks)], banks[(k + 1) % len(banks)], demo.bonds[k % 2])
            raw = clients.trade((*terms, 1_00, 99), demo.cash)
            try:
                receipt = await clients.via(k).submit(
                    raw, timeout_s=SUBMIT_WAIT_S, prove_result=False
                )
            except RejectedError as e:
                receipt = e.receipt
            try:
                await clients.via(k).receipt(receipt.tx_id, timeout_s=wait_s)
            except FinalityTimeoutError:
                misses += 1
                print(f"trade {k}: no result proof within {wait_s:g} s (height {receipt.height})")
    finally:
        await clients.close()
    return misses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.bench.proofwait", description=__doc__)
    p.add_argument("--trades", type=int, default=1_000, help="trades in a row (default 1000)")
    p.add_argument("--wait-s", type=float, default=3.0, help="each proof wait (default 3 s)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ledger-proofwait-") as tmp:
        run_dir = Path(tmp) / "run"
        net = generate(run_dir, NetSpec(n=4, q=3, port_base=free_port_base(4)))
        t0 = time.monotonic()
        try:
            start_cluster(net, progress=False)
            demo = load_run_network(run_dir)
            misses = asyncio.run(_trades(run_dir, demo, args.trades, args.wait_s))
        finally:
            stop_cluster(net)
    print(f"{args.trades} trades, {misses} proof waits timed out, {time.monotonic() - t0:.0f} s")
    return 0 if misses == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
