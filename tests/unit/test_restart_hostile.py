"""Crash and restart (session 29's adversarial review): what a validator killed at any
instant, or handed a hostile file, does after it restarts. Each test failed on the code
before its fix (docs/testing.md, "Adversarial reviews (session 29)")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from node.config import BATCH_DELAY_MS
from node.core import CoreConfig, Phase, Replica, SafetyState, Timeout
from node.genesis import demo_genesis
from node.merkle import EMPTY_ROOT
from node.runtime._metrics import Metrics
from node.runtime._node import Node
from node.store import LmdbStore, StorageError
from node.store._lmdb import SAFETY_FILE
from tests.ledger_helpers import shared_net
from tests.sim.harness import HashSigner
from tests.unit.test_core_pipeline import _certified_not_committed, _votes
from tests.unit.test_core_replica import CHAIN, ROOT0, Disk, Net

# --- 1. the lock at h + 1 is made durable before the commit of h ---------------------------


class _CrashPoints(Disk):
    """A Disk that notes, at every safety save, what a kill -9 right after that save's
    fdatasync would leave: the committed blocks already applied (LMDB) and the state."""

    def __init__(self, old: Disk) -> None:
        super().__init__()
        self.blocks = old.blocks
        self.safety = old.safety
        self.points: list[tuple[dict, bytes]] = []  # type: ignore[type-arg]

    def save_safety(self, data: bytes) -> None:
        super().save_safety(data)
        self.points.append((dict(self.blocks), data))


def _watch(net: Net) -> list[_CrashPoints]:
    disks = [_CrashPoints(d) for d in net.disks]
    net.disks[:] = disks
    net._engines.clear()  # the engines hold the old disks
    return disks


def _restart(net: Net, i: int, blocks: dict, safety: bytes, now_ms: int) -> None:  # type: ignore[type-arg]
    """Node ``i`` after a kill -9: LMDB holds ``blocks``, the safety file ``safety``."""
    disk = Disk()
    disk.blocks = dict(blocks)
    disk.safety = safety
    net.disks[i] = disk
    net.nodes[i] = Replica(
        CoreConfig(CHAIN, net.quorum, i, ROOT0),
        HashSigner(i),
        net.verifier,
        disk,
        executed_root=ROOT0 if not blocks else net.nodes[i].executed_root,
        results_root=EMPTY_ROOT,
        safety=safety,
        now_ms=now_ms,
    )


def _pipelined_commit_with_crash_points() -> tuple[Net, list[_CrashPoints]]:
    """Block 1 prepared in view 0, its commit certificates held back; the leader of view 1
    pipelines block 2 and gets its PQC; then block 1's commit certificates arrive: every
    replica commits block 1, locks on block 2's PQC and commit-votes block 2."""
    net = Net()
    held, _ = _certified_not_committed(net)
    net.tick(1_000 + BATCH_DELAY_MS)
    disks = _watch(net)
    net.tamper = None
    net.queue.extend(held)
    net.run()
    assert [len(_votes(net, i, Phase.COMMIT, 1)) for i in range(4)] == [1, 1, 1, 1]
    return net, disks


def test_a_lock_is_never_durable_above_the_durable_committed_height_plus_one() -> None:
    """docs/performance.md ("metasync") and docs/consensus.md Lemma 0 rely on "a replica
    locks on the prepare QC of h + 1 only after committing h" and "committed heights are
    durable": a timeout reports a lock only at committed + 1. The engine persists the
    Ready's safety state (lock on block 2, commit_view 1) and sends the COMMIT vote for
    block 2 *before* it executes (commits to LMDB) block 1 of the same Ready. A kill -9
    between the two leaves a node whose store is at height 0 and whose lock is at 2."""
    _, disks = _pipelined_commit_with_crash_points()
    bad = []
    for i, d in enumerate(disks):
        for blocks, data in d.points:
            lock = SafetyState.decode(data).high_pqc
            durable = max(blocks, default=0)
            if lock is not None and lock.height > durable + 1:
                bad.append((i, durable, lock.height))
    assert bad == [], f"(node, durable committed height, durable lock height): {bad}"


def test_a_replica_killed_after_its_commit_vote_forgets_the_block_it_voted_on() -> None:
    """The consequence, end to end at 4/3 with no Byzantine node: validators 0, 2 and 3
    lose power right after they commit-voted block 2 (lock on block 2 durable, block 1
    not yet in LMDB); validator 1, the leader of view 1, commits blocks 1 and 2 and serves
    them, then is cut off. The three restart at height 0 with a lock at height 2, so their
    timeouts report neither block 1 nor any lock: their TC justifies any fresh block at
    height 1, and they commit a block 1 that is not validator 1's block 1 (a fork; the
    safety argument allows none for any number of crashes)."""
    net, disks = _pipelined_commit_with_crash_points()
    assert net.disks[1].committed_height() == 2  # the leader of view 1 committed both
    committed_1 = net.disks[1].blocks[1][0]
    now = 5_000
    for i in (0, 2, 3):
        # The crash point right after the save that carried the lock on block 2.
        blocks, data = next(
            (b, s)
            for b, s in disks[i].points
            if (lk := SafetyState.decode(s).high_pqc) is not None and lk.height == 2
        )
        _restart(net, i, blocks, data, now)
    net.down = {1}
    net.now = now
    net.nodes[0].submit(b"trade-after-restart")
    net.run()
    for k in range(1, 40):
        net.now = now + k * 500
        net.tick(net.now)
        if any(net.disks[i].committed_height() >= 1 for i in (0, 2, 3)):
            break
    timeouts = [m for m in net.sent(0, Timeout) if m.committed_height == 0]  # type: ignore[attr-defined]
    forked = [
        i
        for i in (0, 2, 3)
        if 1 in net.disks[i].blocks and net.disks[i].blocks[1][0] != committed_1
    ]
    assert forked == [], (
        f"validators {forked} committed a block 1 other than validator 1's "
        f"({len(timeouts)} timeouts at height 0 without a lock sent by validator 0)"
    )


# --- 2. a truncated data.mdb ---------------------------------------------------------------

_OPEN = """
import os, sys
from node.genesis import demo_genesis
from node.store import LmdbStore, StorageError
g = demo_genesis(validators=4, quorum=3).genesis
try:
    with LmdbStore(sys.argv[1], g) as s:
        print("opened at height", s.head().height)
except StorageError as e:
    print("StorageError:", e)
"""


def _voted_data_dir(tmp_path: Path) -> Path:
    """A validator's data directory: LMDB at genesis plus a few blocks' worth of pages, and
    a safety file (it voted)."""
    g = demo_genesis(validators=4, quorum=3).genesis
    path = tmp_path / "data"
    with LmdbStore(path, g) as store:
        store.save_safety(b"voted in view 7")
        store.intake_put([(bytes([k]) * 32, bytes([k]) * 32, b"tx%d" % k) for k in range(200)])
    return path


def _open_in_child(path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", _OPEN, str(path)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env, check=False)


@pytest.mark.serial
def test_an_lmdb_file_cut_short_is_a_storage_error_not_a_bus_error(tmp_path: Path) -> None:
    """data.mdb cut after its meta pages (a bad restore, a full disk during a copy, a
    hostile edit): LMDB maps the file and the first read of a page past its end kills the
    process with SIGBUS, before any message (a supervisor restarts it forever, silently).
    The store can tell from the meta page: (last_pgno + 1) * page size > file size."""
    path = _voted_data_dir(tmp_path)
    mdb = path / "data.mdb"
    assert mdb.stat().st_size > 3 * 4096
    os.truncate(mdb, 2 * 4096)  # both meta pages kept, every data page gone
    proc = _open_in_child(path)
    assert proc.returncode != -signal.SIGBUS, "killed by SIGBUS opening a truncated data.mdb"
    assert "StorageError" in proc.stdout, proc.stdout + proc.stderr[-500:]


def test_an_lmdb_file_that_is_not_lmdb_is_a_storage_error(tmp_path: Path) -> None:
    """data.mdb cut inside its meta pages: lmdb.InvalidError escapes LmdbStore (not a
    StorageError, not an OSError), so ``node run`` prints a traceback instead of its
    one-line "cannot start" (node/__main__.py catches StorageError and OSError only)."""
    path = _voted_data_dir(tmp_path)
    os.truncate(path / "data.mdb", 4096)
    g = demo_genesis(validators=4, quorum=3).genesis
    with pytest.raises(StorageError):
        LmdbStore(path, g).close()


def test_an_emptied_data_mdb_beside_a_safety_file_is_not_a_new_data_directory(
    tmp_path: Path,
) -> None:
    """data.mdb of length 0 (a crash of a copy tool, ``: > data.mdb``, a restore that
    lost the file's contents) is taken for a new data directory: genesis is written again,
    the head goes back to 0 and the intake log (transactions answered ACCEPTED) is gone,
    while the safety file keeps this validator's votes and lock. The safety file proves
    this validator ran here; its store cannot be new."""
    path = _voted_data_dir(tmp_path)
    os.truncate(path / "data.mdb", 0)
    g = demo_genesis(validators=4, quorum=3).genesis
    try:
        store = LmdbStore(path, g)
    except StorageError:
        return
    with store:
        lost = 200 - store.intake_count()
        pytest.fail(
            f"opened as a new store at height {store.head().height} with {lost} acknowledged "
            f"intake entries gone, beside a safety file that says it voted ({SAFETY_FILE})"
        )


# --- 3. a safety file that is not this validator's ---------------------------------------


def test_a_safety_file_from_another_chain_is_refused(tmp_path: Path) -> None:
    """A consensus-safety file whose lock is a block and certificate of another chain
    (a data directory restored from the wrong backup, a test network's file left in a
    production one): nothing in the slot or the state names the chain or the validator,
    so the node starts on it, with views and a lock that say nothing about its votes on
    this chain (the ones it made here are forgotten: it may vote twice in them)."""
    net_other = Net()
    _certified_not_committed(net_other)  # a lock on chain "test-chain"
    foreign = net_other.nodes[0].safety
    assert foreign.high_pqc_block is not None and foreign.high_pqc_block.chain_id == CHAIN
    net = shared_net()
    assert net.genesis.chain_id != CHAIN
    with LmdbStore(tmp_path, net.genesis) as store:
        store.save_safety(foreign.encode())
        try:
            node = Node(net.genesis, 0, net.validator_keys[0], store, Metrics(), clock=lambda: 0)
        except StorageError:
            return
        lock = node.replica.safety.high_pqc_block
        pytest.fail(
            f"started on a safety state whose lock is a block of chain {lock.chain_id!r} "  # type: ignore[union-attr]
            f"(this chain: {net.genesis.chain_id[:16]}...), views {node.replica.safety}"[:300]
        )
