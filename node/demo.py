"""Single-node settlement demo: sample DvP trades applied to an LMDB ledger.

This runs the settlement core and LMDB store as they stand today, one block per trade,
and prints each trade's outcome and apply+commit latency, then the final balances. The
multi-validator cluster (consensus over gRPC, the SDK) replaces it as `make demo` once
the cluster issue lands.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from node import crypto
from node.genesis import demo_genesis
from node.settlement import BlockContext, DvP, apply_block, sign_tx
from node.store import LmdbStore

# (seller, buyer, bond index, quantity in $0.01 face units, price in cents)
TRADES = [
    ("BANK01", "BANK02", 0, 10_000_00, 9_987_50),  # $10,000 face at 99.875
    ("BANK03", "BANK01", 1, 25_000_00, 24_780_00),
    ("BANK02", "BANK04", 0, 5_000_00, 4_993_75),
    ("BANK05", "BANK06", 1, 50_000_00, 49_560_00),
    ("BANK04", "BANK03", 0, 500_000_000, 499_000_000),  # more bonds than BANK04 holds
    ("BANK06", "BANK05", 0, 2_500_00, 2_496_88),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="LMDB directory (default: a temporary one)")
    args = p.parse_args(argv)
    net = demo_genesis(validators=26, quorum=16, seed=b"demo")
    g = net.genesis
    print(f"chain {g.chain_id[:16]}...  {len(net.banks)} banks, bonds {', '.join(net.bonds)}")
    with tempfile.TemporaryDirectory() as tmp, LmdbStore(args.data or tmp, g) as store:
        print(
            f"\n{'#':>2}  {'seller':<7}{'buyer':<8}{'bond':<14}{'face $':>14}{'price $':>14}"
            f"  {'result':<24}{'ms':>6}"
        )
        for i, (seller, buyer, b, qty, cash) in enumerate(TRADES, 1):
            h = store.head().height + 1
            now = g.genesis_time_ms + h * 1_000
            tx = DvP(
                g.chain_id,
                h,
                now + 60_000,
                seller,
                buyer,
                net.bonds[b],
                qty,
                net.cash,
                cash,
                now + 60_000,
            )
            raw = sign_tx(tx, [net.participant_keys[s] for s in tx.required_signers()])
            t0 = time.perf_counter()
            ctx = BlockContext(h, now)
            out = apply_block(store, [raw], ctx)
            store.commit_block(crypto.sha256(b"demo", bytes([h])), raw, b"", ctx, out)
            ms = (time.perf_counter() - t0) * 1e3
            code = out.results[0].code
            print(
                f"{i:>2}  {seller:<7}{buyer:<8}{net.bonds[b]:<14}{qty / 100:>14,.2f}"
                f"{cash / 100:>14,.2f}  {code.name:<24}{ms:>6.2f}"
            )
        print(
            f"\nfinal balances at height {store.head().height} "
            f"(state root {store.head().state_root.hex()[:16]}...)"
        )
        print(f"{'bank':<8}" + "".join(f"{x:>18}" for x in (*net.bonds, "cash $")))
        for bank in net.banks:
            bonds = "".join(f"{store.balance(bank, x) / 100:>18,.2f}" for x in net.bonds)
            print(f"{bank:<8}{bonds}{store.balance(bank, net.cash) / 100:>18,.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
