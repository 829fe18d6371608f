"""Benchmark: apply 1,000-trade DvP blocks to an LMDB store (fsync on), one node.

Prints trades per second and CPU microseconds per trade, with signature verification
(what every validator does) and without it (to show what the rest of execution costs).
Every trade must settle OK, so the figures are never those of cheap rejections.

Usage: python -m devtools.bench.apply [--blocks 5] [--trades 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

from node import crypto
from node.genesis import DemoNetwork, demo_genesis
from node.settlement import BlockContext, DvP, ResultCode, Verify, apply_block, sign_tx
from node.store import LmdbStore


@dataclass
class Figures:
    mode: str
    trades: int
    wall_s: float
    cpu_s: float
    apply_cpu_s: float
    commit_wall_s: float

    @property
    def trades_per_s(self) -> float:
        return self.trades / self.wall_s

    @property
    def cpu_us_per_trade(self) -> float:
        return self.cpu_s / self.trades * 1e6


def make_blocks(net: DemoNetwork, blocks: int, trades: int) -> list[list[bytes]]:
    g, banks, keys = net.genesis, net.banks, net.participant_keys
    out = []
    for b in range(blocks):
        block = []
        for i in range(trades):
            seller, buyer = banks[i % len(banks)], banks[(i + 1 + b) % len(banks)]
            if seller == buyer:
                buyer = banks[(i + 2) % len(banks)]
            tx = DvP(
                g.chain_id,
                b * trades + i,
                g.genesis_time_ms + 10**9,
                seller,
                buyer,
                net.bonds[i % 2],
                1 + i % 97,
                net.cash,
                1 + i % 89,
                g.genesis_time_ms + 10**9,
            )
            block.append(sign_tx(tx, [keys[s] for s in tx.required_signers()]))
        out.append(block)
    return out


def run(net: DemoNetwork, blocks: list[list[bytes]], mode: str, verify: Verify) -> Figures:
    with tempfile.TemporaryDirectory() as d, LmdbStore(d, net.genesis) as store:
        wall = cpu = apply_cpu = commit_wall = 0.0
        for i, txs in enumerate(blocks):
            ctx = BlockContext(i + 1, net.genesis.genesis_time_ms + 1_000 * (i + 1))
            w0, c0 = time.perf_counter(), time.process_time()
            out = apply_block(store, txs, ctx, verify=verify)
            c1, w1 = time.process_time(), time.perf_counter()
            store.commit_block(crypto.sha256(bytes([i])), b"", b"", ctx, out)
            w2, c2 = time.perf_counter(), time.process_time()
            bad = [r.code for r in out.results if r.code is not ResultCode.OK]
            if bad:
                raise SystemExit(f"benchmark trades failed: {bad[:3]}... (a bug in the bench)")
            wall += w2 - w0
            cpu += c2 - c0
            apply_cpu += c1 - c0
            commit_wall += w2 - w1
            print(f"  {mode}: block {i + 1}/{len(blocks)} {len(txs)} trades", file=sys.stderr)
    return Figures(mode, sum(map(len, blocks)), wall, cpu, apply_cpu, commit_wall)


def measure_verify_us(samples: int = 2_000) -> float:
    key = crypto.SigningKey(bytes(32))
    msg = b"x" * 200
    sig = key.sign(msg)
    t0 = time.process_time()
    for _ in range(samples):
        crypto.verify(key.public_key, msg, sig)
    return (time.process_time() - t0) / samples * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devtools.bench.apply", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--blocks", type=int, default=5, help="blocks per mode (default 5)")
    p.add_argument("--trades", type=int, default=1_000, help="DvP trades per block (default 1000)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args(argv)
    if not 0 < args.trades <= 2_000 or not 0 < args.blocks <= 1_000:
        p.error("--trades must be 1..2000 (BLOCK_TXS_MAX) and --blocks 1..1000")
    net = demo_genesis(validators=4, quorum=3, seed=b"bench")
    print(f"signing {args.blocks * args.trades * 2} trade signatures per mode...", file=sys.stderr)
    results = [
        run(net, make_blocks(net, args.blocks, args.trades), "verify", crypto.verify),
        run(net, make_blocks(net, args.blocks, args.trades), "no-verify", lambda *_: True),
    ]
    verify_us = measure_verify_us()
    print(f"\napply {args.blocks} blocks x {args.trades} DvP trades to LMDB (fsync on), 1 process")
    print(
        f"{'mode':<11}{'trades/s':>10}{'CPU us/trade':>14}{'apply CPU us/trade':>20}"
        f"{'commit ms/block':>17}"
    )
    for f in results:
        apply_us = f.apply_cpu_s / f.trades * 1e6
        commit_ms = f.commit_wall_s / args.blocks * 1e3
        print(
            f"{f.mode:<11}{f.trades_per_s:>10.0f}{f.cpu_us_per_trade:>14.1f}"
            f"{apply_us:>20.1f}{commit_ms:>17.2f}"
        )
    print(f"Ed25519 verify (strict, this run): {verify_us:.1f} us; a DvP carries 2 signatures")
    if args.json:
        doc = {
            "verify_us": verify_us,
            "blocks": args.blocks,
            "trades_per_block": args.trades,
            "runs": [
                asdict(f) | {"trades_per_s": f.trades_per_s, "cpu_us_per_trade": f.cpu_us_per_trade}
                for f in results
            ],
        }
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
