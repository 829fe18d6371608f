"""kill -9 a writer at random moments; every reopen must be a consistent prefix."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.store import LmdbStore, MemoryStore
from tests.ledger_helpers import TxFactory, shared_net
from tests.unit.crash_writer import commit_next

TRIALS = 24
ROOT = Path(__file__).resolve().parents[2]


def _kill_writer_at_random(path: Path, rng: random.Random) -> str:
    """Start the writer, let it run a random while, SIGKILL it; return its last line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.crash_writer", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "open"
    time.sleep(rng.uniform(0.0, 0.4))  # the writer's pace is what we sample, not awaited
    proc.send_signal(signal.SIGKILL)
    out = proc.communicate()[0].strip().splitlines()
    assert proc.returncode == -signal.SIGKILL
    return out[-1] if out else "open"


@pytest.mark.slow
def test_kill_minus_nine_never_leaves_a_mix(tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    f = TxFactory(shared_net())
    replay = MemoryStore(f.net.genesis)
    in_write = 0
    for trial in range(TRIALS):
        last = _kill_writer_at_random(tmp_path / "db", rng)
        with LmdbStore(tmp_path / "db", f.net.genesis) as disk:
            head = disk.head()
            phase, _, num = last.partition(" ")
            if phase in ("apply", "write"):
                in_write += phase == "write"
                assert head.height in (int(num) - 1, int(num)), (seed, trial, last, head.height)
            while replay.head().height < head.height:
                commit_next(replay, f)
            assert disk.head() == replay.head(), f"seed {seed}: trial {trial} diverged"
            assert disk.all_balances() == replay.all_balances()
            assert disk.block(head.height) == replay.block(head.height)
            assert disk.block(head.height + 1) is None
    print(
        f"crash seed {seed}: {TRIALS} kills, {in_write} inside the LMDB write transaction, "
        f"final height {replay.head().height} (replay with CRASH_SEED={seed})"
    )
    assert replay.head().height > 0, "the writer never committed: the test proved nothing"
