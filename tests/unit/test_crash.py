"""Crash trials: a writer is killed with SIGKILL at chosen points inside its writes
(between two puts of one block commit, just before and just after the commit, the same
inside intake-log writes, and inside the safety-state file's slot write, before and after
its fdatasync); every reopen must equal an in-memory replay of exactly the operations that
completed. One allowance: a safety save killed just before its fdatasync has written its
whole slot, which the page cache keeps through a SIGKILL, so the reopen may see it; it must
then see exactly it (a power cut could lose it, which is safe: no vote left before the
fdatasync returned; tests/unit/test_safety_file.py checks that the fdatasync is made).

The kill points come from the seed alone (``tests/unit/crash_writer.py`` stops itself
there, nothing is timed), so ``CRASH_SEED=<seed>`` replays the same kills. Every failure
names the seed, the trial and the kill point.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from node.settlement import SignedTx
from node.store import LmdbStore, MemoryStore, Storage
from tests.ledger_helpers import TxFactory, shared_net
from tests.unit.crash_writer import (
    KINDS,
    NOT_REACHED,
    TXS_PER_BLOCK,
    Plan,
    block_txs,
    run_op,
    safety_record,
)

ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 120  # bounds a wait for a child that should die within a second
# Writes of each operation, as the store does them today: a block commit deletes its 40
# intake entries and puts block, certificate, meta, results, 40 index entries, 12 balances
# and the head; a safety save writes its slot in three pieces (crash_writer.install). A
# kill is aimed at one of them uniformly.
WRITES = {"intake": TXS_PER_BLOCK, "safety": 3, "block": 2 * TXS_PER_BLOCK + 17}
# Where the 24 kills of a run land (shuffled by the seed); most aim at block commits.
AIMS = (
    [("block", "write")] * 8
    + [("block", "commit"), ("block", "committed")] * 4
    + [(k, s) for k in ("intake", "safety") for s in ("write", "commit", "committed")]
    + [("intake", "write")] * 2
)
HEIGHTS_PER_CHILD = 3  # the child completes 0..2 heights before the aimed-at operation


def plans(
    seed: int, count: int = len(AIMS), *, split: bool = False, one_slot: bool = False
) -> list[Plan]:
    """The kill points of a run: a function of the seed alone."""
    rng = random.Random(seed)
    aims = rng.sample(AIMS, len(AIMS))[:count]
    return [
        Plan(
            rng.randrange(HEIGHTS_PER_CHILD) * len(KINDS) + KINDS.index(kind),
            stage,
            rng.randrange(WRITES[kind]) if stage == "write" else 0,
            split,
            one_slot,
        )
        for kind, stage in aims
    ]


def _kill_at(path: Path, plan: Plan) -> str:
    """Run the writer until it kills itself at ``plan``; return its kill line."""
    with subprocess.Popen(
        [sys.executable, "-m", "tests.unit.crash_writer", str(path), *plan.args()],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            out = proc.communicate(timeout=CHILD_TIMEOUT_S)[0].strip().splitlines()
        finally:
            proc.kill()
    last = out[-1] if out else "(no output)"
    assert proc.returncode != NOT_REACHED, f"kill point not reached: {last} (is WRITES stale?)"
    assert proc.returncode == -signal.SIGKILL, f"writer exited {proc.returncode}: {last}"
    return last


def _advance(replay: MemoryStore, f: TxFactory, plan: Plan) -> tuple[str, int]:
    """Apply to ``replay`` what the killed writer completed; return the killed operation's
    kind and height."""
    for op in range(plan.op):
        run_op(replay, f, KINDS[op % len(KINDS)])
    kind, height = plan.kind(), replay.head().height + 1
    if plan.stage == "committed":
        run_op(replay, f, kind)
    return kind, height


def _same_state(disk: Storage, replay: MemoryStore, f: TxFactory) -> None:
    head = replay.head()
    assert disk.head().height == head.height, f"head at {disk.head().height}, not {head.height}"
    assert disk.head() == head, "head hash or state root differs from the replay"
    assert disk.all_balances() == replay.all_balances(), "balances differ from the replay"
    for inst in (*f.net.bonds, f.net.cash):
        assert disk.supply(inst) == replay.supply(inst), f"supply of {inst} differs"
    assert disk.block(head.height) == replay.block(head.height), "last block differs"
    assert disk.block(head.height + 1) is None, "a block above the head is visible"
    assert sorted(disk.intake()) == sorted(replay.intake()), "intake log differs"
    assert disk.load_safety() == replay.load_safety(), "safety state differs"
    for h in (head.height, head.height + 1):
        for raw in block_txs(f, h) if h else ():
            tid = SignedTx.decode(raw).tx_id
            assert disk.tx_record(tid) == replay.tx_record(tid), f"index of a tx of block {h}"


def _take_unsynced_save(disk: Storage, replay: MemoryStore, f: TxFactory) -> None:
    """A safety slot written in full before the kill is in the page cache: if the reopen
    sees it, the replay takes it too (_same_state still demands one or the other)."""
    if disk.load_safety() == safety_record(replay.head().height + 1):
        run_op(replay, f, "safety")


def run_trials(
    path: Path, seed: int, count: int = len(AIMS), *, split: bool = False, one_slot: bool = False
) -> list[str]:
    """Kill a writer at each of the seed's kill points; check every reopen. Returns the
    kill lines. Every failure names the seed, the trial and the kill point."""
    f = TxFactory(shared_net())
    replay = MemoryStore(f.net.genesis)
    lines: list[str] = []
    for trial, plan in enumerate(plans(seed, count, split=split, one_slot=one_slot)):
        where = f"trial {trial} ({plan})"
        try:
            start = replay.head().height
            line = _kill_at(path, plan)
            where = f"trial {trial} ({plan}), {line!r}"
            kind, height = _advance(replay, f, plan)
            point = f"write {plan.write} (" if plan.stage == "write" else f"{plan.stage} ("
            assert line.startswith(f"kill {kind} {height} {point}"), "killed elsewhere"
            assert height == start + 1 + plan.op // len(KINDS)
            with LmdbStore(path, f.net.genesis) as disk:
                if (kind, plan.stage) == ("safety", "commit"):
                    _take_unsynced_save(disk, replay, f)
                _same_state(disk, replay, f)
        except Exception as e:
            raise AssertionError(
                f"crash seed {seed}, {where}: {e} (replay with CRASH_SEED={seed})"
            ) from e
        lines.append(line)
    return lines


@pytest.mark.serial  # starts a child process (tests/isolation.py)
@pytest.mark.slow
def test_kill_minus_nine_inside_writes_never_leaves_a_mix(tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(2**32)))
    lines = run_trials(tmp_path / "db", seed)
    landed = Counter(tuple(line.split()[1:4:2]) for line in lines)  # (kind, stage)
    print(f"crash seed {seed}: kills by (operation, point): {dict(landed)}")
    # Every kill landed where it was aimed: 16 inside block commits, 8 in the others.
    assert landed == Counter(AIMS), f"crash seed {seed}: kills landed {landed}, aimed {AIMS}"


def test_the_kill_points_are_a_function_of_the_seed() -> None:
    assert plans(7) == plans(7) and plans(7) != plans(8)
    kinds = Counter((p.kind(), p.stage) for p in plans(7))
    assert kinds == Counter(AIMS)
    assert all(0 <= p.write < WRITES[p.kind()] for p in plans(7))


@pytest.mark.serial  # starts a child process (tests/isolation.py)
@pytest.mark.slow
def test_a_seed_replays_the_same_kills(tmp_path: Path) -> None:
    first = run_trials(tmp_path / "a", 11, count=2)
    assert run_trials(tmp_path / "b", 11, count=2) == first


@pytest.mark.serial  # starts a child process (tests/isolation.py)
@pytest.mark.slow
def test_the_trials_catch_a_block_commit_split_in_two(tmp_path: Path) -> None:
    """Negative control: a store that commits the head in a second transaction is caught
    by a kill between the two, and the failure names the seed and the kill point."""
    seed = next(s for s in range(100) if plans(s)[0] == Plan(2, "committed"))
    with pytest.raises(AssertionError) as e:
        run_trials(tmp_path / "db", seed, count=1, split=True)
    msg = str(e.value)
    assert f"crash seed {seed}, trial 0" in msg and f"CRASH_SEED={seed}" in msg
    assert "kill block 1 committed (txn 1, after 97 writes)" in msg and "head" in msg


@pytest.mark.serial  # starts a child process (tests/isolation.py)
@pytest.mark.slow
def test_the_trials_catch_a_safety_file_with_one_slot(tmp_path: Path) -> None:
    """Negative control: a safety file that overwrites its only copy in place is caught by
    a kill inside the second save (op 4: the first save, op 1, created the file), which
    leaves no complete record."""
    torn = {Plan(4, "write", w, one_slot=True) for w in (1, 2)}
    seed = next(s for s in range(10_000) if plans(s, one_slot=True)[0] in torn)
    with pytest.raises(AssertionError) as e:
        run_trials(tmp_path / "db", seed, count=1, one_slot=True)
    msg = str(e.value)
    assert f"crash seed {seed}, trial 0" in msg and "kill safety 2 write" in msg
    assert "no valid slot" in msg
