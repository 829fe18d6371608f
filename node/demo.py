"""``make demo``: a real cluster settles sample DvP trades, end to end.

Generates a fresh network (26 validators, quorum 16 by default) in a temporary run
directory, starts every validator as its own process talking gRPC over loopback with
mutual TLS, submits signed DvP trades through the client port, waits for each trade's
commit certificate, prints its finality latency and the final balances, checks that every
validator holds the same state root, and stops the cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from node.cluster import client_aio_channel, node_states, start_cluster, stop_cluster
from node.genesis import DemoNetwork, load_genesis
from node.netconfig import Network
from node.netgen import NetSpec, default_quorum, free_port_base, generate, load_signing_key
from node.settlement import DvP, InstrumentKind, ResultCode, sign_tx
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc

__all__ = ["load_run_network", "main"]

# (seller, buyer, bond index, quantity in $0.01 face units, price in cents)
TRADES = [
    ("BANK01", "BANK02", 0, 10_000_00, 9_987_50),  # $10,000 face at 99.875
    ("BANK03", "BANK01", 1, 25_000_00, 24_780_00),
    ("BANK02", "BANK04", 0, 5_000_00, 4_993_75),
    ("BANK05", "BANK06", 1, 50_000_00, 49_560_00),
    ("BANK04", "BANK03", 0, 500_000_000, 499_000_000),  # more bonds than BANK04 holds
    ("BANK06", "BANK05", 0, 2_500_00, 2_496_88),
]
BURST_TRADES = 50
TRADE_TTL_MS = 10 * 60_000
RPC_TIMEOUT_S = 60.0


def load_run_network(run_dir: str | Path) -> DemoNetwork:
    """The genesis and participant keys of a run directory written by ``make genesis``."""
    run_dir = Path(run_dir)
    g = load_genesis(run_dir / "genesis.json")
    keys = {
        p.id: load_signing_key(run_dir / "participants" / f"{p.id}.key") for p in g.participants
    }
    bonds = tuple(i.id for i in g.instruments if i.kind is InstrumentKind.BOND)
    cash = next(i.id for i in g.instruments if i.kind is InstrumentKind.CASH)
    banks = tuple(sorted(p for p in keys if p.startswith("BANK")))
    return DemoNetwork(g, keys, [], banks, bonds, cash)


class _Client:
    """Round-robin over the validators' client ports (the SDK replaces this)."""

    def __init__(self, net: Network) -> None:
        self._channels = [client_aio_channel(net, i) for i in range(net.n)]
        self.stubs = [pb_grpc.LedgerStub(c) for c in self._channels]

    async def settle(self, raw: bytes, via: int) -> tuple[pb.Receipt, float]:
        stub = self.stubs[via % len(self.stubs)]
        t0 = time.perf_counter()
        resp = await stub.Submit(pb.SubmitRequest(transaction=raw), timeout=RPC_TIMEOUT_S)
        receipt = await stub.WaitForFinality(
            pb.WaitRequest(tx_id=resp.tx_id, timeout_ms=int(RPC_TIMEOUT_S * 1000)),
            timeout=RPC_TIMEOUT_S + 5,
        )
        return receipt, (time.perf_counter() - t0) * 1000

    async def close(self) -> None:
        for c in self._channels:
            await c.close(None)


def _dvp(net: DemoNetwork, nonce: int, terms: tuple[str, str, str, int, int]) -> bytes:
    """A DvP signed by both parties; ``terms`` are (seller, buyer, bond, quantity, price)."""
    seller, buyer, bond, qty, cash = terms
    now = int(time.time() * 1000)
    tx = DvP(
        net.genesis.chain_id,
        nonce,
        now + TRADE_TTL_MS,
        seller,
        buyer,
        bond,
        qty,
        net.cash,
        cash,
        now + TRADE_TTL_MS,
    )
    return sign_tx(tx, [net.participant_keys[s] for s in tx.required_signers()])


async def _trades(net: Network, demo: DemoNetwork) -> None:
    client = _Client(net)
    try:
        print(
            f"\n{'#':>2}  {'seller':<7}{'buyer':<8}{'bond':<14}{'face $':>14}{'price $':>14}"
            f"  {'via':<8}{'result':<25}{'height':>7}{'finality ms':>13}"
        )
        nonce = random.randrange(1 << 40)
        for i, (seller, buyer, b, qty, cash) in enumerate(TRADES, 1):
            raw = _dvp(demo, nonce + i, (seller, buyer, demo.bonds[b], qty, cash))
            receipt, ms = await client.settle(raw, via=i)
            code = ResultCode(receipt.code)
            print(
                f"{i:>2}  {seller:<7}{buyer:<8}{demo.bonds[b]:<14}{qty / 100:>14,.2f}"
                f"{cash / 100:>14,.2f}  {net.nodes[i % net.n].name:<8}{code.name:<25}"
                f"{receipt.height:>7}{ms:>13.1f}"
            )
        print(f"\nburst: {BURST_TRADES} trades submitted at once through every node")
        banks = demo.banks
        pairs = [(banks[k % len(banks)], banks[(k + 1) % len(banks)]) for k in range(BURST_TRADES)]
        burst = [
            _dvp(demo, nonce + 100 + k, (s, b, demo.bonds[k % 2], 100_00, 99_50))
            for k, (s, b) in enumerate(pairs)
        ]
        t0 = time.perf_counter()
        results = await asyncio.gather(*(client.settle(raw, via=k) for k, raw in enumerate(burst)))
        wall = time.perf_counter() - t0
        lat = sorted(ms for _, ms in results)
        ok = sum(1 for r, _ in results if ResultCode(r.code) is ResultCode.OK)
        blocks = len({r.height for r, _ in results})
        print(
            f"  {ok}/{BURST_TRADES} OK in {blocks} blocks, {wall:.2f} s; finality ms: "
            f"p50 {statistics.median(lat):.1f}  p90 {lat[int(0.9 * (len(lat) - 1))]:.1f}  "
            f"max {lat[-1]:.1f}"
        )
        await _balances(client, demo)
    finally:
        await client.close()


async def _balances(client: _Client, demo: DemoNetwork) -> None:
    print(f"\n{'bank':<8}" + "".join(f"{x:>18}" for x in (*demo.bonds, "cash $")))
    for bank in demo.banks:
        got = await client.stubs[0].GetBalances(pb.BalancesRequest(account=bank), timeout=10)
        by = {b.instrument: b.amount for b in got.balances}
        bonds = "".join(f"{by[x] / 100:>18,.2f}" for x in demo.bonds)
        print(f"{bank:<8}{bonds}{by[demo.cash] / 100:>18,.2f}")


def _agreement(net: Network) -> bool:
    states = [s.status for s in node_states(net)]
    roots = {(s.height, bytes(s.state_root)) for s in states if s is not None}
    up = sum(1 for s in states if s is not None)
    if len(roots) == 1:
        height, root = next(iter(roots))
        verdict = f"all at height {height} with state root {root.hex()[:16]}..."
    else:
        verdict = f"DISAGREE: {len(roots)} different (height, state root) pairs"
    print(f"\n{up}/{net.n} validators answering; {verdict}")
    return len(roots) == 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m node.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=26, help="validators (default 26)")
    p.add_argument("--q", type=int, help="quorum (default 16 for 26, else the classic quorum)")
    p.add_argument("--keep", metavar="DIR", help="use DIR as the run directory and keep it")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ledger-demo-") as tmp:
        run_dir = Path(args.keep or Path(tmp) / "run")
        q = default_quorum(args.n) if args.q is None else args.q
        spec = NetSpec(n=args.n, q=q, port_base=free_port_base(args.n))
        net = generate(run_dir, spec, force=bool(args.keep))
        print(f"chain {net.chain_id[:16]}...: {net.n} validators, quorum {net.q}")
        t0 = time.monotonic()
        try:
            start_cluster(net)
            print(f"cluster ready in {time.monotonic() - t0:.1f} s")
            # Demo block times are wall-clock: trades expire 10 minutes from now.
            asyncio.run(_trades(net, load_run_network(run_dir)))
            # Let the last commit certificate reach every validator before comparing.
            time.sleep(0.5)
            agreed = _agreement(net)
        finally:
            stopped = stop_cluster(net)
            print(f"stopped {stopped} validators")
    return 0 if agreed else 1


if __name__ == "__main__":
    raise SystemExit(main())
