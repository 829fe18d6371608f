"""The safety-state file (docs/adr/0010): two slots written in turn, one fdatasync per
save, a torn or corrupt newest slot falls back to the previous save, no valid slot is
fail-stop, and a state LMDB held before the file existed is migrated once."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest

from node import config
from node.genesis import DemoNetwork, load_genesis
from node.netconfig import load_network, load_node_config
from node.store import LmdbStore, StorageError
from node.store._lmdb import SAFETY_FILE
from node.store._safety_file import SLOT_BYTES, SafetyFile, encode_slot, slot_offset

NODE_EXIT_TIMEOUT_S = 60  # a node that does not refuse serves until killed: fail, not hang


def _corrupt(path: Path, offset: int, data: bytes = b"\xff\xff\xff\xff") -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _saved(path: Path, *payloads: bytes) -> None:
    f = SafetyFile(str(path))
    for p in payloads:
        f.save(p)
    f.close()


def _load(path: Path) -> bytes | None:
    f = SafetyFile(str(path))
    try:
        return f.load()
    finally:
        f.close()


def test_no_file_means_never_saved_and_a_save_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s"
    assert _load(path) is None and not path.exists()
    _saved(path, b"first")
    assert _load(path) == b"first"
    _saved(path, b"second", b"third")
    assert _load(path) == b"third"


def test_saves_alternate_slots_and_the_other_slot_keeps_the_previous_save(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s"
    _saved(path, b"a", b"bb", b"ccc")  # sequence numbers 0, 1, 2
    raw = path.read_bytes()
    assert raw[: len(encode_slot(2, b"ccc"))] == encode_slot(2, b"ccc")
    assert raw[SLOT_BYTES:] == encode_slot(1, b"bb")
    assert slot_offset(2) == 0 and slot_offset(1) == SLOT_BYTES


HEADER = len(encode_slot(0, b""))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: _corrupt(p, SLOT_BYTES + HEADER + 3), id="payload-byte"),
        pytest.param(lambda p: _corrupt(p, SLOT_BYTES + 8), id="sequence"),
        pytest.param(lambda p: _corrupt(p, SLOT_BYTES + 16), id="length"),
        pytest.param(lambda p: _corrupt(p, SLOT_BYTES, bytes(8)), id="magic"),
        pytest.param(lambda p: _corrupt(p, SLOT_BYTES, b"\xff" * 8), id="magic-high"),
        pytest.param(lambda p: os.truncate(p, SLOT_BYTES + HEADER + 5), id="torn-tail"),
        pytest.param(lambda p: os.truncate(p, SLOT_BYTES + 7), id="torn-header"),
    ],
)
def test_a_torn_or_corrupt_newest_slot_falls_back_to_the_previous_save(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / "s"
    _saved(path, b"older state", b"newest state")  # the newest is in the slot at SLOT_BYTES
    damage(path)
    assert _load(path) == b"older state"
    _saved(path, b"after the fall-back")  # overwrites the damaged slot, keeps the good one
    assert _load(path) == b"after the fall-back"
    _corrupt(path, SLOT_BYTES + HEADER)
    assert _load(path) == b"older state"


def test_a_valid_slot_copied_to_the_wrong_offset_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _saved(path, b"zero", b"one")
    _corrupt(path, 0, encode_slot(3, b"moved"))  # sequence 3 belongs at SLOT_BYTES
    assert _load(path) == b"one"
    _saved(path, b"two", b"three")  # sequence 2 at 0, sequence 3 at SLOT_BYTES
    _corrupt(path, SLOT_BYTES, encode_slot(4, b"moved"))  # sequence 4 belongs at 0
    assert _load(path) == b"two"


def test_the_on_disk_format_is_pinned(tmp_path: Path) -> None:
    """ADR 0010's layout, spelled out independently of the code: a change here is a
    format change, which needs a new magic and a migration."""
    path = tmp_path / "s"
    _saved(path, b"abc", b"defg")
    slot_1 = 24 + config.SAFETY_STATE_BYTES_MAX
    raw = path.read_bytes()
    assert len(raw) == slot_1 + 24 + 4
    for offset, seq, payload in ((0, 0, b"abc"), (slot_1, 1, b"defg")):
        covered = seq.to_bytes(8, "big") + len(payload).to_bytes(4, "big") + payload
        header = b"dvpsafe1" + covered[:12] + zlib.crc32(covered).to_bytes(4, "big")
        assert raw[offset : offset + 24 + len(payload)] == header + payload
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_state_of_the_maximum_size_is_kept_and_one_byte_more_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s"
    biggest = bytes(range(256)) * (config.SAFETY_STATE_BYTES_MAX // 256)
    assert len(biggest) == config.SAFETY_STATE_BYTES_MAX
    _saved(path, b"small", biggest)  # the largest goes to the slot at SLOT_BYTES
    assert _load(path) == biggest
    f = SafetyFile(str(path))
    with pytest.raises(StorageError, match="SAFETY_STATE_BYTES_MAX"):
        f.save(biggest + b"!")
    f.close()


def test_a_slot_claiming_more_than_the_maximum_is_not_taken(tmp_path: Path) -> None:
    """Even with a right checksum: save() never writes one, and reading it would read
    past the slot's room."""
    path = tmp_path / "s"
    _saved(path, b"older", b"newer")
    _corrupt(path, SLOT_BYTES, encode_slot(1, bytes(config.SAFETY_STATE_BYTES_MAX + 1)))
    assert _load(path) == b"older"


def test_short_writes_are_continued_at_the_right_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.pwrite

    def seven_at_a_time(fd: int, data: Any, offset: int) -> int:
        return real(fd, bytes(data[:7]), offset)

    monkeypatch.setattr(os, "pwrite", seven_at_a_time)
    _saved(tmp_path / "s", b"a payload longer than seven bytes", b"and a second one")
    monkeypatch.undo()
    assert _load(tmp_path / "s") == b"and a second one"


def test_a_write_that_makes_no_progress_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _saved(tmp_path / "s", b"first")
    f = SafetyFile(str(tmp_path / "s"))
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: 0)
    with pytest.raises(OSError, match="pwrite wrote 0 bytes"):
        f.save(b"second")
    f.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_failed_first_save_leaves_no_file_and_no_open_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def eio(fd: int) -> None:
        raise OSError(5, "Input/output error")

    f = SafetyFile(str(tmp_path / "s"))
    before = _open_fds()
    monkeypatch.setattr(os, "fdatasync", eio)
    with pytest.raises(OSError):
        f.save(b"never durable")
    assert _open_fds() == before and not (tmp_path / "s").exists() and not f.exists()


def record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths ``os.fsync`` is called on from now on, in order (each still synced)."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_the_first_save_syncs_the_directory_that_holds_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = record_fsyncs(monkeypatch)
    _saved(tmp_path / "s", b"first", b"second")
    assert synced == [str(tmp_path)]  # the rename's directory, once; no fsync afterwards


@pytest.mark.parametrize("newest_too", [False, True])
def test_no_valid_slot_is_fail_stop_not_a_reset(tmp_path: Path, newest_too: bool) -> None:
    path = tmp_path / "s"
    _saved(path, *((b"older", b"newest") if newest_too else (b"only",)))
    _corrupt(path, HEADER + 1)
    if newest_too:
        _corrupt(path, SLOT_BYTES + HEADER + 1)
    with pytest.raises(StorageError, match=r"no valid slot.*never voted"):
        SafetyFile(str(path))


def test_an_empty_file_is_fail_stop(tmp_path: Path) -> None:
    """save() creates the file by rename, so an existing file always had a complete slot;
    an empty one was damaged after the fact."""
    (tmp_path / "s").write_bytes(b"")
    with pytest.raises(StorageError, match="no valid slot"):
        SafetyFile(str(tmp_path / "s"))


def test_a_stale_temporary_file_from_a_crashed_first_save_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "s.tmp").write_bytes(b"half a slot")
    assert _load(tmp_path / "s") is None
    _saved(tmp_path / "s", b"first")
    assert _load(tmp_path / "s") == b"first" and not (tmp_path / "s.tmp").exists()


def test_an_oversized_state_is_refused(tmp_path: Path) -> None:
    f = SafetyFile(str(tmp_path / "s"))
    with pytest.raises(StorageError, match="SAFETY_STATE_BYTES_MAX"):
        f.save(bytes(config.SAFETY_STATE_BYTES_MAX + 1))


# --- through LmdbStore -------------------------------------------------------------------
@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts os.fdatasync, os.fsync and LMDB write transactions made by the store."""
    seen: Counter[str] = Counter()

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            seen[name] += 1
            return real(*args)

        return call

    monkeypatch.setattr(os, "fdatasync", counting("fdatasync", os.fdatasync))
    monkeypatch.setattr(os, "fsync", counting("fsync", os.fsync))
    monkeypatch.setattr(LmdbStore, "_write", counting("lmdb write", LmdbStore._write))
    yield seen


def test_a_save_costs_one_fdatasync_and_no_lmdb_write(
    tmp_path: Path, net: DemoNetwork, syncs: Counter[str]
) -> None:
    with LmdbStore(tmp_path, net.genesis) as disk:
        disk.save_safety(b"first")  # creates the file: temp, fdatasync, rename, dir fsync
        # genesis: one LMDB write and the parent's fsync (the new data directory's entry)
        assert syncs == Counter({"lmdb write": 1, "fdatasync": 1, "fsync": 2})
        syncs.clear()
        for i in range(5):
            disk.save_safety(b"vote %d" % i)
        assert syncs == Counter({"fdatasync": 5})
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert disk.load_safety() == b"vote 4"
        assert (tmp_path / SAFETY_FILE).exists()


def test_a_failed_safety_write_is_a_storage_error_that_halts(
    tmp_path: Path, net: DemoNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    halted: list[StorageError] = []
    with LmdbStore(tmp_path, net.genesis) as disk:
        disk.on_error = halted.append
        disk.save_safety(b"durable")

        def eio(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fdatasync", eio)
        with pytest.raises(StorageError, match=r"safety-state file save failed.*Input/output"):
            disk.save_safety(b"lost")
        assert len(halted) == 1


def _lmdb_safety(path: Path, value: bytes | None = None) -> bytes | None:
    """Read (or put) the safety state where stores before ADR 0010 kept it."""
    env = lmdb.open(str(path), max_dbs=config.LMDB_MAX_DBS)
    try:
        db = env.open_db(b"safety")
        with env.begin(write=value is not None) as txn:
            if value is not None:
                txn.put(b"consensus", value, db=db)
            raw = txn.get(b"consensus", db=db)
            return None if raw is None else bytes(raw)
    finally:
        env.close()


def test_a_state_held_in_lmdb_is_migrated_once(tmp_path: Path, net: DemoNetwork) -> None:
    LmdbStore(tmp_path, net.genesis).close()
    _lmdb_safety(tmp_path, b"voted in view 9 before the upgrade")
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert disk.load_safety() == b"voted in view 9 before the upgrade"
    assert _lmdb_safety(tmp_path) is None  # stop reading it: the file is the only copy
    assert _load(tmp_path / SAFETY_FILE) == b"voted in view 9 before the upgrade"
    with LmdbStore(tmp_path, net.genesis) as disk:
        disk.save_safety(b"view 10")
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert disk.load_safety() == b"view 10"


def test_a_crash_between_migration_and_cleanup_keeps_the_file(
    tmp_path: Path, net: DemoNetwork
) -> None:
    """The file is written first; an LMDB copy still present next to it is older."""
    LmdbStore(tmp_path, net.genesis).close()
    _saved(tmp_path / SAFETY_FILE, b"migrated", b"newer vote")
    _lmdb_safety(tmp_path, b"migrated")
    with LmdbStore(tmp_path, net.genesis) as disk:
        assert disk.load_safety() == b"newer vote"
    assert _lmdb_safety(tmp_path) is None


def test_a_corrupt_file_stops_the_store_from_opening(tmp_path: Path, net: DemoNetwork) -> None:
    with LmdbStore(tmp_path, net.genesis) as disk:
        disk.save_safety(b"voted")
    (tmp_path / SAFETY_FILE).write_bytes(b"\x00" * 100)
    with pytest.raises(StorageError, match="no valid slot"):
        LmdbStore(tmp_path, net.genesis)


@pytest.mark.serial  # starts a child process (tests/isolation.py)
def test_a_validator_with_no_valid_slot_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    """The real entry point, on a generated one-validator network: exit 2 with the reason,
    instead of serving with its votes forgotten."""
    run = tmp_path / "run"
    netgen = [sys.executable, "-m", "devtools.netgen", "--out", str(run), "--n", "1", "--q", "1"]
    subprocess.run(netgen, check=True, capture_output=True)
    config = load_network(run).nodes[0].config
    cfg = load_node_config(config)
    cfg.data_dir.mkdir(parents=True, mode=0o700)
    with LmdbStore(cfg.data_dir, load_genesis(cfg.genesis)) as disk:
        disk.save_safety(b"voted")
    _corrupt(cfg.data_dir / SAFETY_FILE, HEADER)
    cmd = [sys.executable, "-m", "node", "--config", str(config)]
    timeout = NODE_EXIT_TIMEOUT_S
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "node: cannot start: " in proc.stderr and "no valid slot" in proc.stderr
