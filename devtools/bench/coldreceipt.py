"""``python -m devtools.bench.coldreceipt [--participants 1000 10000] [--trades 200]``.

What a receipt (with its result proof) and a party-filtered read of an old block cost a
node: "cold", the block's Merkle trees and party index not kept (ADR 0025; the node
keeps the last eight blocks read). For each registry size, a one-validator node on an
LMDB store in a temporary directory, under a genesis with that many participants,
commits ``--blocks`` blocks of about ``--trades`` DvPs among twelve banks, then ten
blocks of one transfer each (so the first ones leave both caches), and reads each old
block once cold: half of them a receipt, half a filtered block (as BANK01). Prints the
CPU time (the thread's, which the node's block-read budget charges) and wall time of a
read, median and best. docs/performance.md ("Issue 13, session 20") has the figures
before and after the size and root of each block's party index were stored with it; the
tool uses nothing newer than ADR 0025, so it runs in a tree from before that change too.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from node.access import Caller
from node.genesis import DemoNetwork, demo_genesis
from node.runtime import Metrics, Node, wall_ms
from node.runtime._api import filtered_block_pb
from node.settlement import DvP, SignedTx, Transfer, sign_tx, tx_id
from node.store import LmdbStore, Storage

HOUR_MS = 3_600_000
FILLER_BLOCKS = 10  # more than the node's trees cache (8): the measured blocks leave it
TRADERS = 12  # banks that trade; the other participants only have leaves
COMMIT_WAIT_S = 120.0

Timing = tuple[float, float]  # (thread CPU ms, wall ms) of one read


def _dvp(net: DemoNetwork, nonce: int, now_ms: int) -> bytes:
    banks = net.banks[: min(TRADERS, len(net.banks))]
    seller, buyer = banks[nonce % len(banks)], banks[(nonce + 1) % len(banks)]
    g = net.genesis
    tx = DvP(
        g.chain_id, nonce, now_ms + HOUR_MS, seller, buyer, net.bonds[nonce % 2], 1, net.cash,
        1, now_ms + HOUR_MS,
    )  # fmt: skip
    return sign_tx(tx, [net.participant_keys[s] for s in tx.required_signers()])


def _transfer(net: DemoNetwork, nonce: int, now_ms: int) -> bytes:
    g, sender = net.genesis, net.banks[0]
    tx = Transfer(g.chain_id, nonce, now_ms + HOUR_MS, net.cash, sender, net.banks[1], 1)
    return sign_tx(tx, [net.participant_keys[sender]])


async def _commit(node: Node, raws: list[bytes]) -> None:
    """Submit ``raws`` and wait until they are all committed."""
    ids = [tx_id(SignedTx.decode(r).body) for r in raws]
    await asyncio.gather(*(node.submit(r, t) for r, t in zip(raws, ids, strict=True)))
    async with asyncio.timeout(COMMIT_WAIT_S):
        while any(node.store.tx_record(t) is None for t in ids):
            await asyncio.sleep(0.01)


def _timed(read: Callable[[], object]) -> Timing:
    """(thread CPU ms, wall ms) of one call."""
    c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
    read()
    return (time.thread_time_ns() - c0) / 1e6, (time.perf_counter_ns() - w0) / 1e6


def _read_cold(node: Node, store: Storage, heights: list[int]) -> dict[str, list[Timing]]:
    """Read each block of ``heights`` once, cold: a receipt, a filtered block in turn."""
    caller = Caller("BANK01", observer=False)
    out: dict[str, list[Timing]] = {"receipt": [], "filtered block": []}
    for k, h in enumerate(heights):
        sb = store.block(h)
        if sb is None or node.trees_kept(h):
            raise SystemExit(f"block {h} is not an old block whose trees left the cache")
        if k % 2 == 0:
            tid = sb.results[len(sb.results) // 2].tx_id
            out["receipt"].append(_timed(functools.partial(node.receipt, tid)))
        else:
            read = functools.partial(filtered_block_pb, node, sb, caller)
            out["filtered block"].append(_timed(read))
    return out


async def measure(participants: int, blocks: int, trades: int) -> dict[str, list[Timing]]:
    net = demo_genesis(validators=1, quorum=1, seed=b"cold-receipt", banks=participants - 6)
    nonce = iter(range(1, 10**9))
    with tempfile.TemporaryDirectory() as d, LmdbStore(d, net.genesis) as store:
        node = Node(net.genesis, 0, net.validator_keys[0], store, Metrics())
        node.start()
        try:
            for _ in range(blocks):
                now = wall_ms()
                await _commit(node, [_dvp(net, next(nonce), now) for _ in range(trades)])
            measured = [
                h
                for h in range(1, store.head().height + 1)
                if len(store.block(h).results) > 1  # type: ignore[union-attr]
            ]
            for _ in range(FILLER_BLOCKS):
                await _commit(node, [_transfer(net, next(nonce), wall_ms())])
            return _read_cold(node, store, measured)
        finally:
            node.stop()
            node.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devtools.bench.coldreceipt", description=__doc__.split("\n\n")[1]
    )
    p.add_argument("--participants", type=int, nargs="+", default=[1_000, 10_000])
    p.add_argument("--blocks", type=int, default=10, help="blocks of trades (default 10)")
    p.add_argument("--trades", type=int, default=200, help="DvPs per block (default 200)")
    args = p.parse_args(argv)
    if not all(7 <= n <= 10_000 for n in args.participants):
        p.error("--participants must be 7..10000 (PARTICIPANTS_MAX)")
    cpu_h, wall_h = "CPU ms: median, best", "wall ms: median, best"
    print(f"{'participants':>12}  {'read':<15}{'n':>3}  {cpu_h:>22}  {wall_h:>22}", flush=True)
    for n in args.participants:
        print(f"  {n} participants: committing...", file=sys.stderr)
        figures = asyncio.run(measure(n, args.blocks, args.trades))
        for what, samples in figures.items():
            cpu, wall = [s[0] for s in samples], [s[1] for s in samples]
            print(
                f"{n:>12,}  {what:<15}{len(samples):>3}  "
                f"{statistics.median(cpu):>13.2f}, {min(cpu):>6.2f}  "
                f"{statistics.median(wall):>13.2f}, {min(wall):>6.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
