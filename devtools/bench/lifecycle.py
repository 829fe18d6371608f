"""Benchmark: one CouponPay, Distribute and RedeemAll over many holders, one node.

A lifecycle payment is one transaction however many holders it pays (docs/ledger.md
"Lifecycle"): it reads every participant's balance and writes one cash balance per holder
(a RedeemAll also a bond balance and a record each). This measures what that costs at the
genesis limit: ``--holders`` participants (default PARTICIPANTS_MAX - 1, so with the cash
issuer genesis holds the maximum) each hold the bond and the fund; the paying agent is one
of them. For each store (MemoryStore, LmdbStore with fsync) and each kind it prints the
CPU time of ``apply_block`` on a block of that one transaction (best of ``--repeat``;
signature checks included) and, for LMDB, the wall time of committing its writes.

Usage: python -m devtools.bench.lifecycle [--holders 9999] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from node import crypto, tags
from node.config import PARTICIPANTS_MAX
from node.genesis import _isin
from node.settlement import (
    BlockContext,
    CouponPay,
    Distribute,
    Genesis,
    Holding,
    Instrument,
    InstrumentKind,
    Participant,
    RedeemAll,
    ResultCode,
    Role,
    Transaction,
    Validator,
    apply_block,
    sign_tx,
)
from node.store import LmdbStore, MemoryStore, Storage

AGENT, CASHCO, CASH, FUND = "H00000", "CASHCO", "USD.CASHCO", "FUND.BENCH"
BOND = _isin("US91282BNCH")
GENESIS_MS = 1_767_225_600_000  # 2026-01-01; the bond matures on it, coupons before
UNITS = 1_000_000  # per holder


@dataclass
class Figure:
    store: str
    kind: str
    holders: int
    apply_ms: float  # CPU, best of --repeat
    commit_ms: float | None  # LMDB wall time of the block's commit; None for memory
    writes: int  # balances, supplies and records the block writes


def _key(label: str) -> crypto.SigningKey:
    return crypto.SigningKey(crypto.sha256(tags.DEMO_KEY, b"bench-lifecycle", label.encode()))


def make_genesis(holders: int) -> tuple[Genesis, crypto.SigningKey]:
    ids = [f"H{i:05d}" for i in range(holders)]
    agent_key = _key(AGENT)
    parts = [
        Participant(p, (agent_key if p == AGENT else _key(p)).public_key,
                    frozenset({Role.BOND_ISSUER if p == AGENT else Role.TRADER}), 2)
        for p in ids
    ]  # fmt: skip
    parts.append(Participant(CASHCO, _key(CASHCO).public_key, frozenset({Role.CASH_ISSUER}), 3))
    insts = (
        Instrument(BOND, InstrumentKind.BOND, AGENT, "USD", unit_face_minor=1,
                   maturity_date="2026-01-01", coupon_bp=425, coupon_freq=2,
                   issue_date="2024-01-01", payment_cash=CASH),
        Instrument(CASH, InstrumentKind.CASH, CASHCO, "USD"),
        Instrument(FUND, InstrumentKind.FUND, AGENT, "USD", payment_cash=CASH,
                   distribution_day=1, issue_date="2025-12-01"),
    )  # fmt: skip
    holdings = [Holding(p, i, UNITS) for p in ids for i in (BOND, FUND)]
    holdings.append(Holding(AGENT, CASH, 10**15))
    validator = Validator("val00", _key("validator").public_key)
    g = Genesis("bench-lifecycle", GENESIS_MS, tuple(parts), insts, tuple(holdings),
                (validator,), 1)  # fmt: skip
    return g, agent_key


def transactions(g: Genesis, agent_key: crypto.SigningKey) -> dict[str, Transaction]:
    """The three payments, each due at genesis time (the bond has matured, its earlier
    coupons are due; RedeemAll is measured after CouponPay of every earlier period)."""
    far = GENESIS_MS + 10**9
    return {
        "CouponPay": CouponPay(g.chain_id, 1, far, BOND, 1, AGENT),
        "Distribute": Distribute(g.chain_id, 2, far, FUND, 1, 10**9, AGENT),
        "RedeemAll": RedeemAll(g.chain_id, 3, far, BOND, AGENT),
    }


def _sign(tx: Transaction, key: crypto.SigningKey) -> bytes:
    return sign_tx(tx, [key])


@contextmanager
def _stores(g: Genesis) -> Iterator[list[tuple[str, Storage]]]:
    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as tmp:
        lmdb = LmdbStore(tmp, g)
        try:
            yield [("memory", MemoryStore(g)), ("lmdb", lmdb)]
        finally:
            lmdb.close()


def _commit(store: Storage, txs: list[bytes], height_time: int) -> None:
    ctx = BlockContext(store.head().height + 1, height_time)
    out = apply_block(store, txs, ctx)
    if any(r.code is not ResultCode.OK for r in out.results):
        raise SystemExit(f"setup block refused: {[r.code.name for r in out.results]}")
    store.commit_block(crypto.sha256(ctx.height.to_bytes(8, "big")), b"", b"", ctx, out)


def measure(store_name: str, store: Storage, kind: str, raw: bytes, repeat: int) -> Figure:
    """Best CPU time of applying ``raw`` alone, then one commit of its outcome."""
    ctx = BlockContext(store.head().height + 1, GENESIS_MS + 1_000 * (store.head().height + 1))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        out = apply_block(store, [raw], ctx)
        best = min(best, time.process_time() - t0)
    if out.results[0].code is not ResultCode.OK:
        raise SystemExit(f"{kind} on {store_name}: {out.results[0].code.name}")
    t0 = time.perf_counter()
    store.commit_block(crypto.sha256(ctx.height.to_bytes(8, "big")), b"", b"", ctx, out)
    commit = time.perf_counter() - t0
    writes = len(out.balances) + len(out.supplies) + len(out.records)
    return Figure(
        store_name, kind, len(store.genesis.participants) - 1, round(best * 1000, 1),
        None if store_name == "memory" else round(commit * 1000, 1), writes,
    )  # fmt: skip


def run(holders: int, repeat: int) -> list[Figure]:
    g, agent_key = make_genesis(holders)
    txs = {k: _sign(tx, agent_key) for k, tx in transactions(g, agent_key).items()}
    figures = []
    with _stores(g) as stores:
        for name, store in stores:
            for kind in ("CouponPay", "Distribute"):
                figures.append(measure(name, store, kind, txs[kind], repeat))
            # Redemption waits for every earlier coupon (period 1 was paid just above).
            earlier = range(2, len(g.schedules[BOND]))
            coupons = [_sign(CouponPay(g.chain_id, 100 + k, GENESIS_MS + 10**9, BOND, k, AGENT),
                             agent_key) for k in earlier]  # fmt: skip
            _commit(store, coupons, GENESIS_MS + 500_000)
            figures.append(measure(name, store, "RedeemAll", txs["RedeemAll"], repeat))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.bench.lifecycle", description=__doc__)
    p.add_argument("--holders", type=int, default=PARTICIPANTS_MAX - 1)
    p.add_argument("--repeat", type=int, default=3, help="applies per figure (best is kept)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args(argv)
    if not 1 <= args.holders <= PARTICIPANTS_MAX - 1:
        p.error(f"--holders must be 1..{PARTICIPANTS_MAX - 1} (genesis also has the cash issuer)")
    figures = run(args.holders, args.repeat)
    head = ("store", "transaction", "holders", "apply ms", "commit ms", "writes")
    print("{:8} {:11} {:>8} {:>9} {:>10} {:>7}".format(*head))
    for f in figures:
        commit = "-" if f.commit_ms is None else f"{f.commit_ms:.1f}"
        row = (f.store, f.kind, f"{f.holders:,}", f"{f.apply_ms:.1f}", commit, f"{f.writes:,}")
        print("{:8} {:11} {:>8} {:>9} {:>10} {:>7}".format(*row))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([asdict(f) for f in figures], out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
