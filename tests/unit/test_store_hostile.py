"""The store reviewed as an attacker and as a power failure would (issue 13, session 15).

Each test is one defect found in node/store: its docstring gives the scenario, the impact
and a severity. A defect still open is a strict xfail; a fixed one is a plain test with a
known mutant in tests/mutation/known.py.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import pytest

from node import config, crypto
from node.core import TxForward
from node.core.mempool import AddResult
from node.genesis import DemoNetwork, demo_genesis
from node.runtime._metrics import Metrics
from node.runtime._node import Node
from node.settlement import BlockContext, apply_block, precheck
from node.store import LmdbStore, Storage, StorageError
from node.store._lmdb import SAFETY_FILE
from tests.ledger_helpers import TxFactory, shared_net
from tests.unit.test_safety_file import record_fsyncs

pytestmark = pytest.mark.serial  # one test starts a child process (tests/isolation.py)


def _commit(store: Storage, raws: list[bytes]) -> None:
    h = store.head().height + 1
    ctx = BlockContext(h, store.genesis.genesis_time_ms + h)
    out = apply_block(store, raws, ctx)
    store.commit_block(crypto.sha256(h.to_bytes(8, "big")), b"blk", b"cert%d" % h, ctx, out)


def _lmdb_put(path: Path, db: bytes, key: bytes, value: bytes | None) -> None:
    """Write (or delete, ``value`` None) one record behind the store's back."""
    env = lmdb.open(str(path), max_dbs=config.LMDB_MAX_DBS)
    try:
        handle = env.open_db(db)
        with env.begin(write=True) as txn:
            if value is None:
                txn.delete(key, db=handle)
            else:
                txn.put(key, value, db=handle)
    finally:
        env.close()


def _lmdb_get(path: Path, db: bytes, key: bytes) -> bytes | None:
    env = lmdb.open(str(path), max_dbs=config.LMDB_MAX_DBS)
    try:
        with env.begin() as txn:
            raw = txn.get(key, db=env.open_db(db, txn=txn))
            return None if raw is None else bytes(raw)
    finally:
        env.close()


_HOLDER = """
import sys
from node.genesis import demo_genesis
from node.store import LmdbStore
disk = LmdbStore(sys.argv[1], demo_genesis(validators=1, quorum=1, seed=b"hostile").genesis)
disk.save_safety(b"voted in view 7")
print("open", flush=True)
sys.stdin.read()  # hold the store until killed
"""


def test_a_data_directory_in_use_is_refused_to_a_second_process(tmp_path: Path) -> None:
    """Scenario: a second validator process is started on a data directory a live one still
    uses (a supervisor restarting a node it thinks dead, two containers on one volume
    during a rolling update, an operator's second `ledger-node run` with other ports).
    LMDB is multi-process by design and the safety file was opened with no lock, so both
    open, each keeps its own in-memory safety state and sequence number, and both vote
    (and propose, with different mempools) with the same key.
    Impact: two signed votes or proposals in one view for different blocks from one
    validator (equivocation), and two writers interleaving slots of one safety file.
    Severity: HIGH impact, needs an operator or orchestrator mistake to trigger. Fix:
    the store takes an exclusive flock on its data directory, held until close or the
    process's death (SIGKILL leaves no stale lock: checked below)."""
    genesis = demo_genesis(validators=1, quorum=1, seed=b"hostile").genesis
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(StorageError, match="in use"):
            LmdbStore(tmp_path, genesis).close()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with LmdbStore(tmp_path, genesis) as disk:  # no stale lock after a SIGKILL
        assert disk.load_safety() == b"voted in view 7"


def test_an_lmdb_safety_state_the_file_never_held_is_not_thrown_away(
    tmp_path: Path, net: DemoNetwork
) -> None:
    """Scenario: a validator is upgraded past ADR 0010 (its state moves to the file), rolled
    back to the older binary (which keeps its votes in LMDB's `safety` sub-database again
    and never reads the file), then upgraded again. At open the store found the file and
    the LMDB copy, kept the file (the state of the first upgrade) and deleted the LMDB
    copy: the votes and the lock of the whole rollback period were thrown away.
    Impact: the validator restarts behind views it voted in and behind its lock: it can
    vote again in a view it voted in (equivocation) or against its lock.
    Severity: MEDIUM (needs a rollback across the upgrade, which ADR 0010's migration
    did not consider; the only legitimate way to find both copies, a crash between the
    migration's file write and the LMDB delete, leaves the LMDB copy equal to a slot of
    the file). Fix: a copy the file does not hold refuses to open."""
    with LmdbStore(tmp_path, net.genesis) as disk:
        disk.save_safety(b"view 100, lock at 99 (this version)")
    rolled_back = b"view 200, lock at 199 (the older binary, after a rollback)"
    _lmdb_put(tmp_path, b"safety", b"consensus", rolled_back)
    with pytest.raises(StorageError, match="safety"):
        LmdbStore(tmp_path, net.genesis).close()
    assert _lmdb_get(tmp_path, b"safety", b"consensus") == rolled_back  # still there


def test_a_missing_block_or_certificate_record_is_a_storage_error(
    tmp_path: Path, net: DemoNetwork, txf: TxFactory
) -> None:
    """Scenario: the data directory lost the `blocks` (or `certs`) record of a committed
    height (a damaged or hand-edited data directory). `block()` did `bytes(None)` and
    raised TypeError instead of StorageError, so `on_error` never heard of it: an API read
    (GetBlock, a receipt, a peer's catch-up request) got an INTERNAL error while the
    validator kept serving from a store it knows is damaged; inside the driver the halt
    reason read "TypeError: cannot convert 'NoneType' object to bytes".
    Impact: a corrupt store is served instead of fail-stop; the halt reason hides the cause.
    Severity: LOW. Fix: every record of a committed height goes through `_got`."""
    for db in (b"blocks", b"certs"):
        path = tmp_path / db.decode()
        with LmdbStore(path, net.genesis) as disk:
            _commit(disk, [txf.signed(txf.transfer())])
        _lmdb_put(path, db, (1).to_bytes(8, "big"), None)
        with LmdbStore(path, net.genesis) as disk:
            halted: list[StorageError] = []
            disk.on_error = halted.append
            with pytest.raises(StorageError, match="record is missing"):
                disk.block(1)
            assert len(halted) == 1


def test_a_corrupt_balance_key_is_a_storage_error(tmp_path: Path, net: DemoNetwork) -> None:
    """Scenario: a key of the `balances` sub-database is not `account NUL instrument` in
    ASCII (a flipped byte, a damaged page). `all_balances()` (audits, invariant checks,
    state dumps) raised UnicodeDecodeError or "not enough values to unpack": not a
    StorageError, so no halt through `on_error` and no clear reason.
    Impact: a corrupt store goes on serving; the error names no record. Severity: LOW.
    Fix: the key is decoded as a record (RecordError, so StorageError and fail-stop)."""
    for key in (b"\xff\xfe\x00USD", b"no-separator"):
        path = tmp_path / key.hex()
        LmdbStore(path, net.genesis).close()
        _lmdb_put(path, b"balances", key, (5).to_bytes(8, "big"))
        with LmdbStore(path, net.genesis) as disk:
            halted: list[StorageError] = []
            disk.on_error = halted.append
            with pytest.raises(StorageError, match="corrupt record"):
                disk.all_balances()
            assert len(halted) == 1


def test_a_corrupt_chain_id_refuses_to_open_with_a_storage_error(
    tmp_path: Path, net: DemoNetwork
) -> None:
    """Scenario: the stored chain id is not UTF-8 (a damaged meta page). Opening the store
    raised UnicodeDecodeError from `stored.decode()`, which `ledger-node run` does not
    catch: a traceback instead of "node: cannot start: ...".
    Impact: the validator does not start (correct) but says why in a traceback, not in
    the one line an operator reads. Severity: LOW. Fix: compared as bytes, shown
    with replacement characters, refused as a GenesisMismatchError (a StorageError)."""
    LmdbStore(tmp_path, net.genesis).close()
    _lmdb_put(tmp_path, b"meta", b"chain_id", b"\xff\xfe" + net.genesis.chain_id.encode()[2:])
    with pytest.raises(StorageError, match="data directory holds chain"):
        LmdbStore(tmp_path, net.genesis).close()


async def test_a_client_told_already_pending_has_its_transaction_in_the_intake_log(
    tmp_path: Path,
) -> None:
    """Scenario: a client submits T to validator B, which forwards it to A but never answers
    the client (B is Byzantine, or its answer is lost). The client's SDK fails over to A:
    T is in A's mempool already (B's forward), so A answered ALREADY_PENDING at once, an
    answer the SDK counts as taken (`client/_async.py` `_TAKEN`) and docs/cluster.md
    documents as "durable here". But a forward is never written to A's intake log: A
    restarts (a crash, a routine restart) before T commits, and T exists nowhere.
    Impact: an acknowledged transaction lost with one faulty peer and one restart, the
    promise ADR 0006 makes ("acknowledged means durable"). Severity: MEDIUM.
    Fix: a client's submit of a transaction pending here but not in the log is logged
    (fsynced) before the answer, as an ACCEPTED one is."""
    net = shared_net()
    txf = TxFactory(net)
    raw = txf.signed(txf.transfer())
    tid = precheck(net.genesis, raw).tx_id
    store = LmdbStore(tmp_path, net.genesis)
    node = Node(net.genesis, 0, net.validator_keys[0], store, Metrics(), clock=_clock(net))
    node.start()
    node.deliver(1, TxForward((raw,)))  # validator 1 forwards it, never logged here
    assert node.replica.mempool.contains(raw)
    assert await node.submit(raw, tid) is AddResult.DUPLICATE  # ALREADY_PENDING
    node.close()
    store.close()
    with LmdbStore(tmp_path, net.genesis) as reopened:  # the node restarted
        assert [r for _, r in reopened.intake()] == [raw]


def _clock(net: DemoNetwork) -> Callable[[], int]:
    return lambda: net.genesis.genesis_time_ms + 1_000


def test_a_new_data_directory_is_durable_in_its_parent(
    tmp_path: Path, net: DemoNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scenario: a validator's first start creates its data directory (`ledger-node run`
    and `LmdbStore` both `mkdir` it), votes (the first safety save fsyncs the data
    directory, so the file's entry in it is durable), and the power fails before the file
    system commits its metadata on its own. POSIX makes a new directory's entry durable
    only by an fsync of its parent, which nothing does: the data directory, safety file
    included, may be gone after the reboot, and the validator starts as if it had never
    voted. ext4 and XFS commit the whole journal on the directory fsync and hide this;
    POSIX does not promise it.
    Impact: equivocation possible after a power failure in the first seconds of a new
    validator's life. Severity: LOW (a short window, once per data directory, and not on
    journaling file systems in their usual modes). Fixed: the store fsyncs the parent once,
    when it writes genesis into a new data directory (a parent it cannot open for that is
    a StorageError: fail-stop, nothing voted)."""
    synced = record_fsyncs(monkeypatch)
    with LmdbStore(tmp_path / "data", net.genesis) as disk:
        disk.save_safety(b"voted in view 1")
    assert str(tmp_path / "data") in synced  # the safety file's entry: done
    assert str(tmp_path) in synced  # the data directory's entry in its parent


def test_a_safety_state_that_does_not_decode_is_a_storage_error(tmp_path: Path) -> None:
    """Scenario: the safety file's newest slot is whole (its CRC matches) but its payload is
    not a `SafetyState` encoding: a version with another encoding ran here (a rollback
    past a format change), or a bug wrote it. The replica's `SafetyState.decode` refused
    it (never read as "never voted": sound), but as a `DecodeError` out of `Node()`, which
    `ledger-node run` does not catch: exit 1 and a traceback, where every other corrupt
    data directory gets exit 2 and "node: cannot start: <why>" (checked by hand on a
    generated one-validator network).
    Impact: the halt is right, its reason is buried in a traceback. Severity: LOW.
    Fix: a consensus record in the store that does not decode is a StorageError."""
    net = shared_net()
    with LmdbStore(tmp_path, net.genesis) as store:
        store.save_safety(b"not a safety state, CRC fine")
        with pytest.raises(StorageError, match="not a safety state"):
            Node(net.genesis, 0, net.validator_keys[0], store, Metrics(), clock=_clock(net))


def test_an_io_error_looking_up_the_safety_file_is_not_never_voted(
    tmp_path: Path, net: DemoNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scenario: at start the safety file is there, but looking it up fails (EIO from a
    flaky disk or a network volume, ENOMEM, a transient error of the file system).
    `SafetyFile` asked `os.path.exists`, which answers False for every OSError: the store
    opened as if the validator had never voted, and its first save replaced the real file
    (write a temporary file, rename over it) with a state that knows none of its votes.
    Impact: a transient error at start silently erases the validator's votes and lock:
    equivocation. Severity: MEDIUM (HIGH impact, a rare trigger). Fix: only "no such
    file" means never saved; any other error of the lookup is a StorageError (fail-stop)."""
    with LmdbStore(tmp_path, net.genesis) as disk:
        disk.save_safety(b"voted in view 42")
    safety = str(tmp_path / SAFETY_FILE)
    real_stat, real_open = os.stat, os.open

    def stat(path: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(path) == safety:
            raise OSError(errno.EIO, "Input/output error", safety)
        return real_stat(path, *args, **kwargs)

    def open_(path: Any, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == safety:
            raise OSError(errno.EIO, "Input/output error", safety)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "open", open_)
    with pytest.raises(StorageError, match="Input/output error"):
        LmdbStore(tmp_path, net.genesis).close()
    monkeypatch.undo()
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert disk.load_safety() == b"voted in view 42"
