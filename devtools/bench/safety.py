"""Benchmark: the latency of one durable save of the consensus safety state, one node.

Every vote a validator sends waits for this save (house rule 2: persist, then send), so
its latency is on the path of every block, twice. Three ways, interleaved call by call so
that a disk shared with other processes loads each the same (docs/adr/0010):

- ``store``: ``LmdbStore.save_safety``, the safety-state file (one pwrite, one fdatasync);
- ``lmdb``: one synced LMDB write transaction, as ``save_safety`` was before ADR 0010
  (an fdatasync of the data pages, then the meta page through an O_DSYNC descriptor);
- ``rename``: write a temporary file, fdatasync, rename, fsync the directory.

Prints the median, p90 and p99 of each. Count the syncs with strace:

    strace -f -c -e trace=fsync,fdatasync python -m devtools.bench.safety --modes store

Usage: python -m devtools.bench.safety [--saves 300] [--bytes 8192] [--modes store,lmdb,rename]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import lmdb

from node import config
from node.genesis import demo_genesis
from node.store import LmdbStore

Save = Callable[[bytes], None]


def _lmdb_save(path: str) -> Save:
    env = lmdb.open(path, max_dbs=config.LMDB_MAX_DBS, sync=True, metasync=True)
    db = env.open_db(b"safety")

    def save(data: bytes) -> None:
        with env.begin(write=True) as txn:
            txn.put(b"consensus", data, db=db)

    return save


def _rename_save(path: str) -> Save:
    os.makedirs(path)
    target, tmp = os.path.join(path, "safety"), os.path.join(path, "safety.tmp")

    def save(data: bytes) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    return save


def measure(root: str, modes: list[str], saves: int, size: int) -> dict[str, list[float]]:
    """Microseconds per save, per mode; the modes take turns call by call."""
    store = LmdbStore(os.path.join(root, "store"), demo_genesis(4).genesis)
    makers: dict[str, Callable[[], Save]] = {
        "store": lambda: store.save_safety,
        "lmdb": lambda: _lmdb_save(os.path.join(root, "lmdb")),
        "rename": lambda: _rename_save(os.path.join(root, "rename")),
    }
    fns = {m: makers[m]() for m in modes}
    out: dict[str, list[float]] = {m: [] for m in modes}
    try:
        for i in range(saves):
            record = i.to_bytes(8, "big") * (size // 8)  # distinct per call, like a vote
            for mode, fn in fns.items():
                t0 = time.perf_counter()
                fn(record)
                out[mode].append((time.perf_counter() - t0) * 1e6)
    finally:
        store.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m devtools.bench.safety", description=(__doc__ or "").splitlines()[0]
    )
    p.add_argument("--saves", type=int, default=300)
    p.add_argument("--bytes", type=int, default=8192)
    p.add_argument("--modes", default="store,lmdb,rename")
    p.add_argument("--dir", default=None, help="a directory on the disk to measure")
    args = p.parse_args()
    if args.dir is not None and not os.path.isdir(args.dir):
        p.error(f"--dir {args.dir}: no such directory")
    if args.saves < 2:
        p.error("--saves must be at least 2")
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        figures = measure(d, args.modes.split(","), args.saves, args.bytes)
    for mode, us in figures.items():
        # inclusive: the default ("exclusive") puts p99 past the largest of fewer than 99
        q = statistics.quantiles(us, n=100, method="inclusive")
        print(
            f"{mode:<7} {args.saves} saves of {args.bytes} bytes: p50 {q[49]:.0f} us, "
            f"p90 {q[89]:.0f} us, p99 {q[98]:.0f} us, max {max(us):.0f} us"
        )


if __name__ == "__main__":
    main()
