"""Child process for test_crash.py: commits deterministic blocks to LMDB until killed.

Block h is a pure function of h (see ``block_txs``), so the parent can replay any prefix
in memory and compare. Prints ``apply h`` before executing block h, ``write h`` just
before its LMDB write transaction and ``end h`` after it returned.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from node import crypto
from node.settlement import BlockContext, apply_block
from node.store import LmdbStore, Storage
from tests.ledger_helpers import TxFactory, shared_net

TXS_PER_BLOCK = 40


def block_txs(f: TxFactory, height: int) -> list[bytes]:
    banks = f.net.banks
    out = []
    for i in range(TXS_PER_BLOCK):
        s, b = banks[(height + i) % len(banks)], banks[(height + 2 * i + 1) % len(banks)]
        tx = f.dvp(
            s,
            b,
            quantity=1 + (height * 7 + i) % 500,
            amount=1 + (height + i) % 900,
            nonce=height * 1000 + i,
        )
        out.append(f.signed(tx))
    return out


def commit_next(store: Storage, f: TxFactory, say: Callable[[str], None] = lambda _: None) -> int:
    h = store.head().height + 1
    ctx = BlockContext(h, f.t0 + h)
    say(f"apply {h}")
    out = apply_block(store, block_txs(f, h), ctx)
    say(f"write {h}")
    store.commit_block(
        crypto.sha256(b"crash", h.to_bytes(8, "big")), b"B%d" % h, b"C%d" % h, ctx, out
    )
    return h


def main(path: str) -> None:
    f = TxFactory(shared_net())
    store = LmdbStore(path, f.net.genesis, map_size_bytes=512 * 1024)  # forces growth too
    print("open", flush=True)
    while True:
        h = commit_next(store, f, lambda line: print(line, flush=True))
        print(f"end {h}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
