"""Child process for test_crash.py: runs store operations on LMDB and SIGKILLs itself at a
planned point inside one of them.

The writer repeats, for h = head + 1, head + 2, ...: ``intake h`` (record block h's
transactions in the intake log, ADR 0006), ``safety h`` (save a consensus safety record)
and ``block h`` (commit block h, pruning its transactions from the intake log). Block h is
a pure function of h (``block_txs``), so the parent replays the same operations on a
``MemoryStore`` and compares.

The kill point is exact, not timed: a probe wraps the LMDB environment the store opens
(``lmdb.open`` is patched in this process only; the store's code is unchanged and pays
nothing) and counts the writes (``put``/``delete``) and commits of every write
transaction. It wraps the safety-state file's system calls the same way (``os.pwrite``,
``os.fdatasync``, ``os.replace``; docs/adr/0010): a slot's pwrite is three writes (the
header, then each half of the payload, so a kill between them leaves a torn slot), its
commit is the fdatasync, and when the first save creates the file, the commit ends with
the rename that makes it visible. ``Plan`` names an operation (its index since this
process opened the store) and a point inside it: before its j-th write, just before its
first commit, or just after its first commit. At that point the probe prints ``kill
<where>`` and sends SIGKILL to its own process, which dies on the spot as under an
external ``kill -9``. If the planned point is never reached the writer exits with status
3 and says why.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lmdb

from node import crypto
from node.core.mempool import tx_key
from node.settlement import BlockContext, SignedTx, apply_block
from node.store import LmdbStore, Storage, _safety_file
from tests.ledger_helpers import TxFactory, shared_net

TXS_PER_BLOCK = 40
KINDS = ("intake", "safety", "block")  # the operations of one height, in order
STAGES = ("write", "commit", "committed")
NOT_REACHED = 3  # exit status: the planned kill point was never reached


@dataclass(frozen=True)
class Plan:
    op: int  # index of the operation to kill, counted from 0 when this process opened
    stage: str  # "write": before write number ``write``; "commit"/"committed": around it
    write: int = 0
    split: bool = False  # negative control: run SplitCommitStore, a broken store
    one_slot: bool = False  # negative control: a safety file that overwrites its one slot

    def kind(self) -> str:
        return KINDS[self.op % len(KINDS)]

    def args(self) -> list[str]:
        flags = ["split"] * self.split + ["one-slot"] * self.one_slot
        return [str(self.op), self.stage, str(self.write), *flags]


def block_txs(f: TxFactory, height: int) -> list[bytes]:
    key = (f.chain_id, f.t0, height)
    if key not in _TXS:
        _TXS[key] = _make_block_txs(f, height)
    return _TXS[key]


_TXS: dict[tuple[str, int, int], list[bytes]] = {}


def _make_block_txs(f: TxFactory, height: int) -> list[bytes]:
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


def safety_record(height: int) -> bytes:
    """A stand-in for the consensus core's persisted vote and lock, distinct per height
    and long enough that a torn write would show."""
    return b"safety %d " % height + crypto.sha256(b"safety", height.to_bytes(8, "big")) * 8


def run_op(store: Storage, f: TxFactory, kind: str) -> int:
    """Run the next operation of kind ``kind`` on ``store``; return its height."""
    h = store.head().height + 1
    txs = block_txs(f, h)
    if kind == "intake":
        store.intake_put([(tx_key(raw), SignedTx.decode(raw).tx_id, raw) for raw in txs])
    elif kind == "safety":
        store.save_safety(safety_record(h))
    else:
        ctx = BlockContext(h, f.t0 + h)
        store.commit_block(
            crypto.sha256(b"crash", h.to_bytes(8, "big")),
            b"B%d" % h,
            b"C%d" % h,
            ctx,
            apply_block(store, txs, ctx),
            intake_done=[tx_key(raw) for raw in txs],
        )
    return h


class Probe:
    """Counts the writes and commits of the operation the plan aims at; kills there."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.where = ""  # "<kind> <height>" while the aimed-at operation runs
        self.writes = self.commits = self.txns = 0

    def start(self, op: int, kind: str, height: int) -> None:
        self.where = f"{kind} {height}" if op == self.plan.op else ""

    def finish(self) -> None:
        if self.where:
            print(
                f"not reached: {self.where} had {self.writes} writes and {self.commits} "
                f"commits, planned {self.plan.stage} {self.plan.write}",
                flush=True,
            )
            sys.exit(NOT_REACHED)

    def on_begin(self) -> None:
        self.txns += bool(self.where)

    def on_write(self, what: str, db: str) -> None:
        if not self.where:
            return
        if self.plan.stage == "write" and self.writes == self.plan.write:
            self._kill(f"write {self.writes} ({what} {db}, txn {self.txns})")
        self.writes += 1

    def on_commit(self, done: bool) -> None:
        if not self.where:
            return
        if not self.commits and self.plan.stage == ("committed" if done else "commit"):
            self._kill(f"{self.plan.stage} (txn {self.txns}, after {self.writes} writes)")
        self.commits += done

    def _kill(self, point: str) -> None:
        print(f"kill {self.where} {point}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        os._exit(99)  # unreachable: SIGKILL cannot be caught or ignored


class _ProbedTxn:
    """A write transaction that reports every put, delete and its commit to the probe.
    Any other method fails, so a new write path cannot slip past the probe unseen."""

    def __init__(self, txn: Any, env: _ProbedEnv) -> None:
        self._txn, self._env = txn, env

    def __enter__(self) -> _ProbedTxn:
        self._txn.__enter__()
        self._env.probe.on_begin()
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self._env.probe.on_commit(done=False)
        self._txn.__exit__(*exc)
        if exc[0] is None:
            self._env.probe.on_commit(done=True)

    def put(self, key: bytes, value: bytes, *, db: Any, **kw: Any) -> Any:
        self._env.probe.on_write("put", self._env.names[id(db)])
        return self._txn.put(key, value, db=db, **kw)

    def delete(self, key: bytes, *, db: Any) -> Any:
        self._env.probe.on_write("delete", self._env.names[id(db)])
        return self._txn.delete(key, db=db)

    def get(self, key: bytes, *, db: Any) -> Any:
        return self._txn.get(key, db=db)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"crash probe: write transaction method {name!r} is not probed")


class _ProbedEnv:
    def __init__(self, env: Any, probe: Probe) -> None:
        self._env, self.probe = env, probe
        self.names: dict[int, str] = {}

    def open_db(self, name: bytes, **kw: Any) -> Any:
        db = self._env.open_db(name, **kw)
        self.names[id(db)] = name.decode()
        return db

    def begin(self, write: bool = False, **kw: Any) -> Any:
        txn = self._env.begin(write=write, **kw)
        return _ProbedTxn(txn, self) if write else txn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


class _HoldHead:
    """A write transaction that keeps back the head record (see SplitCommitStore)."""

    def __init__(self, txn: Any, held: list[tuple[bytes, Any]]) -> None:
        self._txn, self._held = txn, held

    def put(self, key: bytes, value: bytes, *, db: Any, **kw: Any) -> Any:
        if key == b"head":
            self._held.append((value, db))
            return True
        return self._txn.put(key, value, db=db, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)


class SplitCommitStore(LmdbStore):
    """A deliberately broken store for the trials' negative control: every write puts the
    head record in a second transaction, so a block's state can be durable without it."""

    def _write(self, fn: Callable[[Any], None]) -> None:
        held: list[tuple[bytes, Any]] = []
        super()._write(lambda txn: fn(_HoldHead(txn, held)))
        for value, db in held:
            super()._write(functools.partial(_put_head, value=value, db=db))


def _put_head(txn: Any, *, value: bytes, db: Any) -> None:
    txn.put(b"head", value, db=db)


def install(probe: Probe) -> None:
    """Make every LMDB environment opened in this process, and the safety-state file's
    system calls, report to ``probe``."""
    real_open: Callable[..., Any] = lmdb.open
    lmdb.open = lambda *a, **kw: _ProbedEnv(real_open(*a, **kw), probe)  # type: ignore[assignment]
    real_pwrite, real_sync, real_replace = os.pwrite, os.fdatasync, os.replace

    def pwrite(fd: int, data: Any, offset: int) -> int:
        view = memoryview(data)
        cuts = (0, _SLOT_HEADER, (_SLOT_HEADER + len(view)) // 2, len(view))
        for start, end in itertools.pairwise(cuts):
            probe.on_write("pwrite", "safety file")
            real_pwrite(fd, view[start:end], offset + start)
        return len(view)

    def fdatasync(fd: int) -> None:
        probe.on_commit(done=False)
        real_sync(fd)
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            probe.on_commit(done=True)  # else the rename below publishes the record

    def replace(src: str, dst: str) -> None:
        real_replace(src, dst)
        probe.on_commit(done=True)

    os.pwrite, os.fdatasync, os.replace = pwrite, fdatasync, replace


_SLOT_HEADER = len(_safety_file.encode_slot(0, b""))


def _one_slot(seq: int) -> int:
    return 0


def main(path: str, plan: Plan) -> None:
    probe = Probe(plan)
    install(probe)
    if plan.one_slot:  # every save overwrites the one copy: a torn save loses the state
        _safety_file.slot_offset = _one_slot  # type: ignore[assignment]
    f = TxFactory(shared_net())
    cls = SplitCommitStore if plan.split else LmdbStore
    store = cls(path, f.net.genesis, map_size_bytes=512 * 1024)  # forces growth too
    print(f"open {store.head().height}", flush=True)
    for op in range(plan.op + 1):
        kind = KINDS[op % len(KINDS)]
        probe.start(op, kind, store.head().height + 1)
        run_op(store, f, kind)
        probe.finish()


if __name__ == "__main__":
    op, stage, write, *flags = sys.argv[2:]
    main(sys.argv[1], Plan(int(op), stage, int(write), "split" in flags, "one-slot" in flags))
