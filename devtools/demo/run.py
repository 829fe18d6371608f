"""``make demo``: a real cluster settles sample DvP trades, end to end.

Generates a fresh network (26 validators, quorum 16 by default) in a temporary run
directory, starts every validator as its own process talking gRPC over loopback with
mutual TLS, and settles DvP trades through the SDK (``client``): the seller proposes, the
buyer checks the terms and co-signs, a client submits through one validator and waits
for the commit certificate. It prints each trade's finality latency and when its result
proof (the next block) verified offline, a burst of concurrent trades, the final
balances, then the bond lifecycle (devtools/demo/lifecycle.py: a coupon, a pending trade
that settles once funded, one that fails at its deadline, a redemption at maturity), a
freeze (devtools/demo/freeze.py: a trade with a frozen bank refused, then settled after the
unfreeze), the reserves behind the reserve-backed cash token (devtools/demo/reserve.py:
attested, minted within, refused beyond, the reserve report), locks and a swap
(devtools/demo/lock.py: a spend of pledged bonds refused LOCKED, released, settled; two
bonds swapped), prices and margin (devtools/demo/margin.py: a margin call with no
deficit, one after a price fall, a substitution, the repo closed), checks that every
validator holds the same state root, and stops the cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from client import (
    AsyncLedgerClient,
    CertificateCache,
    Endpoint,
    LedgerError,
    Receipt,
    RejectedError,
    accept_dvp,
    load_key,
    propose_dvp,
    verify_receipt,
)
from devtools.cluster import node_states, start_cluster, status_table, stop_cluster
from devtools.demo.console import CONSOLE_HELP, console_or_hint
from devtools.demo.freeze import show_freeze
from devtools.demo.gov import show_governance
from devtools.demo.kyc import show_kyc
from devtools.demo.lifecycle import LifecycleMismatch, show_lifecycle
from devtools.demo.lock import show_locks
from devtools.demo.margin import show_margin
from devtools.demo.repo import show_repo
from devtools.demo.reserve import ReserveMismatch, show_reserves
from devtools.netgen import NetSpec, default_quorum, free_port_base, generate
from node.genesis import DEMO_DUE_BOND, DEMO_MATURED_BOND, DemoNetwork, load_genesis
from node.keyfiles import load_signing_key
from node.netconfig import OPERATOR_IDENTITY, PINNED_CERTS_FILE, Network
from node.settlement import InstrumentKind

__all__ = ["ValidatorClients", "load_run_network", "main"]

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
WAIT_TIMEOUT_S = 60.0


def load_run_network(run_dir: str | Path) -> DemoNetwork:
    """The genesis and participant keys of a run directory written by ``make genesis``."""
    run_dir = Path(run_dir)
    g = load_genesis(run_dir / "genesis.json")
    keys = {
        p.id: load_signing_key(run_dir / "participants" / f"{p.id}.key") for p in g.participants
    }
    every = tuple(i.id for i in g.instruments if i.kind is InstrumentKind.BOND)
    lifecycle = tuple(b for b in (DEMO_DUE_BOND, DEMO_MATURED_BOND) if b in every)
    bonds = tuple(b for b in every if b not in lifecycle)  # the tradable ones
    cash = next(i.id for i in g.instruments if i.kind is InstrumentKind.CASH)
    banks = tuple(sorted(p for p in keys if p.startswith("BANK")))
    fund = next((i.id for i in g.instruments if i.kind is InstrumentKind.FUND), "")
    return DemoNetwork(g, keys, [], banks, bonds, cash, fund, lifecycle)


class ValidatorClients:
    """One SDK client per validator, each preferring its own node (and failing over to the
    others), so the demo's trades enter the cluster through every validator. With
    ``count``, that many clients instead, client k preferring node k mod n."""

    def __init__(self, run_dir: Path, count: int | None = None) -> None:
        certificates = CertificateCache()  # each block's certificate is verified once in all
        # The auditor reads every trade, balance and block whole (node/access.py): the
        # demo's and the benchmark's views are cluster-wide.
        me = load_key(run_dir / "participants" / f"{OPERATOR_IDENTITY}.key")
        first = AsyncLedgerClient.from_run_dir(run_dir, certificates=certificates, identity=me)
        ends, pinned = first.endpoints, (run_dir / PINNED_CERTS_FILE).read_bytes()
        self.genesis = first.genesis
        self.all = [first] + [
            AsyncLedgerClient(
                _rotated(ends, i % len(ends)),
                tls_certs=pinned,
                genesis=first.genesis,
                certificates=certificates,
                identity=me,
            )
            for i in range(1, count or len(ends))
        ]
        self.keys = {
            p.id: load_key(run_dir / "participants" / f"{p.id}.key")
            for p in first.genesis.participants
        }

    async def connect(self) -> None:
        """Open every client's TLS channel first, so latencies measure settlement."""
        await asyncio.gather(*(c.head() for c in self.all))

    def via(self, k: int) -> AsyncLedgerClient:
        return self.all[k % len(self.all)]

    def trade(self, terms: tuple[str, str, str, int, int], cash: str) -> bytes:
        """The two-party flow: the seller proposes, the buyer checks the terms, co-signs."""
        seller, buyer, bond, qty, price = terms
        dvp = self.all[0].tx.dvp(seller, buyer, bond, qty, cash, price)
        offer = propose_dvp(dvp, self.keys[seller], self.genesis)
        expect = {"bond": bond, "quantity": qty, "amount": price}
        return accept_dvp(offer, self.keys[buyer], self.genesis, expect=expect).raw

    async def settle(self, raw: bytes, via: int) -> tuple[Receipt, float]:
        """Submit; the receipt at finality and the finality latency in ms."""
        t0 = time.perf_counter()
        try:
            receipt = await self.via(via).submit(raw, timeout_s=WAIT_TIMEOUT_S, prove_result=False)
        except RejectedError as e:  # final too: the ledger recorded the refusal
            receipt = e.receipt
        return receipt, (time.perf_counter() - t0) * 1000

    async def final(self, raw: bytes) -> Receipt:
        """Submit with its result proof; the final receipt, refused or not (the ledger
        recorded the refusal), verified offline against genesis."""
        try:
            receipt = await self.all[0].submit(raw, timeout_s=WAIT_TIMEOUT_S, prove_result=True)
        except RejectedError as e:
            receipt = e.receipt
        verify_receipt(receipt, self.genesis)
        return receipt

    async def close(self) -> None:
        for c in self.all:
            await c.aclose()


def _rotated(ends: tuple[Endpoint, ...], i: int) -> list[Endpoint]:
    return [*ends[i:], *ends[:i]]


async def _trades(net: Network, demo: DemoNetwork) -> None:
    clients = ValidatorClients(net.run_dir)
    try:
        await clients.connect()
        print(
            f"\n{'#':>2}  {'seller':<7}{'buyer':<8}{'bond':<14}{'face $':>14}{'price $':>14}"
            f"  {'via':<8}{'result':<25}{'height':>7}{'finality ms':>13}{'proof ms':>10}"
        )
        for i, (seller, buyer, b, qty, cash) in enumerate(TRADES, 1):
            raw = clients.trade((seller, buyer, demo.bonds[b], qty, cash), demo.cash)
            receipt, ms = await clients.settle(raw, via=i)
            # The result proof comes with the next block; the SDK verifies it offline.
            t0 = time.perf_counter()
            await clients.via(i).receipt(receipt.tx_id, timeout_s=WAIT_TIMEOUT_S)
            proof_ms = ms + (time.perf_counter() - t0) * 1000
            print(
                f"{i:>2}  {seller:<7}{buyer:<8}{demo.bonds[b]:<14}{qty / 100:>14,.2f}"
                f"{cash / 100:>14,.2f}  {net.nodes[i % net.n].name:<8}{receipt.code.name:<25}"
                f"{receipt.height:>7}{ms:>13.1f}{proof_ms:>10.1f}"
            )
        print(
            "finality: the commit certificate is back; proof: the next block certifies the "
            "result and the receipt verified offline"
        )
        await _burst(clients, demo)
        await _balances(clients.all[0], demo)
        await show_lifecycle(clients, demo)  # devtools/demo/lifecycle.py
        await show_freeze(clients, demo)  # devtools/demo/freeze.py
        await show_reserves(clients, demo)  # devtools/demo/reserve.py
        await show_kyc(clients, demo)  # devtools/demo/kyc.py
        await show_governance(clients, demo, net.run_dir)  # devtools/demo/gov.py
        await show_locks(clients, demo)  # devtools/demo/lock.py
        await show_repo(clients, demo)  # devtools/demo/repo.py
        await show_margin(clients, demo)  # devtools/demo/margin.py
    finally:
        await clients.close()


async def _burst(clients: ValidatorClients, demo: DemoNetwork) -> None:
    print(f"\nburst: {BURST_TRADES} trades submitted at once through every node")
    banks = demo.banks
    pairs = [(banks[k % len(banks)], banks[(k + 1) % len(banks)]) for k in range(BURST_TRADES)]
    burst = [
        clients.trade((s, b, demo.bonds[k % 2], 100_00, 99_50), demo.cash)
        for k, (s, b) in enumerate(pairs)
    ]
    t0 = time.perf_counter()
    results = await asyncio.gather(*(clients.settle(raw, via=k) for k, raw in enumerate(burst)))
    wall = time.perf_counter() - t0
    lat = sorted(ms for _, ms in results)
    ok = sum(1 for r, _ in results if r.ok)
    blocks = len({r.height for r, _ in results})
    print(
        f"  {ok}/{BURST_TRADES} OK in {blocks} blocks, {wall:.2f} s; finality ms: "
        f"p50 {statistics.median(lat):.1f}  p90 {lat[int(0.9 * (len(lat) - 1))]:.1f}  "
        f"max {lat[-1]:.1f}"
    )


async def _balances(client: AsyncLedgerClient, demo: DemoNetwork) -> None:
    print(f"\n{'bank':<8}" + "".join(f"{x:>18}" for x in (*demo.bonds, "cash $")))
    for bank in demo.banks:
        by = (await client.balances(bank)).amounts
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
    p = argparse.ArgumentParser(
        prog="python -m devtools.demo", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--n", type=int, default=26, help="validators (default 26)")
    p.add_argument("--q", type=int, help="quorum (default 16 for 26, else the classic quorum)")
    p.add_argument("--keep", metavar="DIR", help="use DIR as the run directory and keep it")
    p.add_argument("--console", type=int, metavar="PORT", help=CONSOLE_HELP)
    args = p.parse_args(argv)
    # A temporary run directory is removed only after a demo that succeeded: a failed one
    # keeps its node logs, which are the only record of why (a liveness stall seen under
    # load was not diagnosable with them gone).
    tmp = Path(tempfile.mkdtemp(prefix="ledger-demo-"))
    run_dir = Path(args.keep or tmp / "run")
    q = default_quorum(args.n) if args.q is None else args.q
    spec = NetSpec(n=args.n, q=q, port_base=free_port_base(args.n))
    agreed = False
    try:
        net = generate(run_dir, spec, force=bool(args.keep))
        agreed = _run(net, run_dir, args.console)
    finally:
        if agreed and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif not agreed:
            print(f"demo: run directory kept: {run_dir} (node logs in logs/)", file=sys.stderr)
    return 0 if agreed else 1


def _run(net: Network, run_dir: Path, console: int | None) -> bool:
    """Start the cluster, run every step, check agreement, stop it: whether all went well."""
    print(f"chain {net.chain_id[:16]}...: {net.n} validators, quorum {net.q}")
    t0 = time.monotonic()
    try:
        start_cluster(net)
        print(f"cluster ready in {time.monotonic() - t0:.1f} s")
        # Demo block times are wall-clock: trades expire 10 minutes from now.
        try:
            asyncio.run(_trades(net, load_run_network(run_dir)))
        except (LedgerError, LifecycleMismatch, ReserveMismatch) as e:
            print(f"demo: {e}", file=sys.stderr)
            # The cluster as it stands at the failure (a stall: who is behind, in which
            # view, holding what), before stopping it changes anything.
            print(status_table(net, node_states(net)), file=sys.stderr)
            return False
        # Let the last commit certificate reach every validator before comparing.
        time.sleep(0.5)
        agreed = _agreement(net)
        console_or_hint(net.run_dir, console)  # devtools/demo/console.py
    finally:
        stopped = stop_cluster(net)
        print(f"stopped {stopped} validators")
    return agreed


if __name__ == "__main__":
    raise SystemExit(main())
