"""Liveness without the network (node/health.py): the node's heartbeat file and what the
probes read from it. Through the client port, a liveness probe failed whenever anonymous
connections held every slot, and an orchestrator restarted a healthy validator (session
26's review); the cluster side is tests/cluster/test_client_limits.py."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

from node import health
from node.config import LIVENESS_STALE_MS


def test_a_beating_node_is_alive_until_it_stops(tmp_path: Path) -> None:
    beat = health.Heartbeat(tmp_path)
    assert (tmp_path / health.ALIVE_FILE).read_text() == str(os.getpid())
    assert health.alive(tmp_path) == "SERVING"
    beat.stop()
    assert health.alive(tmp_path) == "NOT_RUNNING"  # stopped or halted: the file is gone
    beat.stop()  # twice is harmless (the halt path, then the shutdown's)


def test_a_heartbeat_older_than_the_bound_is_stuck_and_a_beat_freshens_it(tmp_path: Path) -> None:
    beat = health.Heartbeat(tmp_path)
    now = time.time()
    later = now + LIVENESS_STALE_MS / 1000 + 1
    assert health.alive(tmp_path, now_s=now + LIVENESS_STALE_MS / 1000 - 1) == "SERVING"
    assert health.alive(tmp_path, now_s=later) == "STUCK"  # the loop stopped turning
    old = now - LIVENESS_STALE_MS / 1000 - 5
    os.utime(tmp_path / health.ALIVE_FILE, (old, old))
    assert health.alive(tmp_path) == "STUCK"
    beat.beat()
    assert health.alive(tmp_path) == "SERVING"


def test_a_heartbeat_of_a_killed_process_is_gone(tmp_path: Path) -> None:
    """A node killed (SIGKILL) leaves its file behind, fresh for a while: the process id
    in it tells (Linux gives ids below pid_max, so pid_max names no process)."""
    (tmp_path / health.ALIVE_FILE).write_text(Path("/proc/sys/kernel/pid_max").read_text())
    assert health.alive(tmp_path) == "GONE"


def test_a_heartbeat_file_removed_under_the_node_is_written_again(tmp_path: Path) -> None:
    beat = health.Heartbeat(tmp_path)
    (tmp_path / health.ALIVE_FILE).unlink()
    assert health.alive(tmp_path) == "NOT_RUNNING"
    beat.beat()
    assert health.alive(tmp_path) == "SERVING"


def test_a_heartbeat_file_that_names_no_process_is_not_running(tmp_path: Path) -> None:
    (tmp_path / health.ALIVE_FILE).write_text("not a pid")
    assert health.alive(tmp_path) == "NOT_RUNNING"


def test_the_liveness_probe_reads_the_heartbeat_not_the_network(tmp_path: Path) -> None:
    """``probe`` for service "" answers from the data directory alone: a config whose
    client port nothing listens on (none at all here) is alive while it beats."""
    cfg = SimpleNamespace(data_dir=tmp_path)
    beat = health.Heartbeat(tmp_path)
    assert health.probe(cfg, "") == "SERVING"  # type: ignore[arg-type]
    beat.stop()
    assert health.probe(cfg, "") == "NOT_RUNNING"  # type: ignore[arg-type]
