"""A careless or hostile user's file arguments to ``ledger`` and ``ledger-node`` (session 30).

A FIFO named where a file is read blocked ``open()`` for ever (no writer comes) and a
device such as /dev/zero never ends: each such path is one error line now, at once. A
write cut short (a full disk) left half a file, over the very file ``admin sign`` rewrites
in place, losing the earlier admins' signatures: a file is now written beside its target
and renamed over it. docs/testing.md, "Review 30 (hostile): the command line's file
arguments".
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from client import ParticipantKey, Transactions, sign
from devtools.netgen import NetSpec, free_port_base, generate
from node.__main__ import main as node_main
from node.config import FILE_BYTES_MAX
from node.files import read_regular, sha256_regular
from node.genesis import dump_genesis
from node.keyfiles import write_signing_key
from node.netconfig import load_node_config
from tests.ledger_helpers import shared_net
from tests.unit.test_cli import _one_error_line, run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    net = shared_net()
    dump_genesis(net.genesis, tmp_path / "genesis.json")
    (tmp_path / "participants").mkdir()
    for pid in ("BANK01", "BANK02", "CSD", "COMPLIANCE"):
        write_signing_key(tmp_path / "participants" / f"{pid}.key", net.participant_keys[pid])
    return tmp_path


def _sign_dvp(out: str) -> list[str]:
    net = shared_net()
    return ["sign", "dvp", "--seller", "BANK01", "--buyer", "BANK02", "--bond", net.bonds[0],
            "--quantity", "5", "--cash", net.cash, "--amount", "5", "--out", out]  # fmt: skip


@pytest.mark.timeout(30)  # before the fix each of these waited for ever in open()
@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "show", "{f}"],
        ["verify-receipt", "{f}"],
        ["verify-receipt", "{d}/r.json", "--genesis", "{f}"],
        ["cosign", "{f}", "--out", "{d}/out.json"],
        ["sign", "compliance", "{f}", "--out", "{d}/out.json"],
        ["submit", "dvp", "{f}"],
        ["admin", "sign", "{f}", "--admin", "CSD"],
        ["admin", "submit", "{f}"],
        _sign_dvp("{f}"),  # an output path too: a FIFO waited for its reader
    ],
    ids=lambda a: " ".join(a[:2]) + (" --out" if a[0] == "sign" and a[1] == "dvp" else ""),
)
def test_a_fifo_for_a_file_is_one_error_line_not_a_hang(
    capsys: pytest.CaptureFixture[str], run_dir: Path, argv: list[str]
) -> None:
    fifo = run_dir / "fifo"
    os.mkfifo(fifo)
    args = [a.format(f=fifo, d=run_dir) for a in argv]
    code, out, err = run(capsys, "--run-dir", str(run_dir), *args)
    assert code in (1, 2)
    assert out == ""
    said = _one_error_line(err)
    if "--out" in argv and argv[argv.index("--out") + 1] == "{f}":  # nobody reads it
        assert said.startswith(f"ledger: error: cannot write {fifo}: No such device"), said
    else:
        assert "not a regular file" in said
    assert not (run_dir / "out.json").exists()


@pytest.mark.timeout(30)
def test_an_output_to_a_fifo_with_a_reader_is_written_through_not_replaced(
    capsys: pytest.CaptureFixture[str], run_dir: Path
) -> None:
    """--out /dev/stdout (a pipe) or another reader's FIFO is written into as before: the
    write beside the target and the rename are for regular files only (a rename would
    replace the FIFO or the device node). A FIFO here, not /dev/null: a regression must
    not replace the machine's own device."""
    fifo = run_dir / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    try:
        code, _, err = run(capsys, "--run-dir", str(run_dir), *_sign_dvp(str(fifo)))
    finally:
        if reader.is_alive():  # the command never opened it: let the reader go
            with open(fifo, "wb"):
                pass
        reader.join(10)
    assert code == 0, err
    assert got and got[0].startswith(b"{") and got[0].endswith(b"}\n")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(f.name for f in run_dir.iterdir()) == ["genesis.json", "participants", "pipe"]


def test_a_device_for_a_file_is_refused_before_it_is_read(
    capsys: pytest.CaptureFixture[str], run_dir: Path
) -> None:
    """/dev/zero never ended (the command grew without bound). /dev/null stands in for it:
    a broken check must not exhaust the machine's memory."""
    code, _, err = run(capsys, "--run-dir", str(run_dir), "verify-receipt", "/dev/null")
    assert code == 1 and "not a regular file" in _one_error_line(err)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--config", "{f}"],
        [
            "genesis",
            "assemble",
            "--bundles",
            "{d}",
            "--template",
            "{f}",
            "--q",
            "1",
            "--out",
            "{d}/a",
        ],
        [
            "genesis",
            "assemble",
            "--bundles",
            "{f}",
            "--template",
            "{d}/t.json",
            "--q",
            "1",
            "--out",
            "{d}/a",
        ],
    ],
    ids=["run --config", "assemble --template", "assemble --bundles"],
)
def test_ledger_node_refuses_a_fifo_at_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert node_main([a.format(f=fifo, d=tmp_path) for a in argv]) == 2
    assert "not a regular file" in capsys.readouterr().err


def _governance_file(run_dir: Path) -> Path:
    """A SetKycTier for admins CSD and COMPLIANCE, signed by CSD only (what `ledger admin
    set-kyc-tier --out FILE --sign-as CSD` writes)."""
    net = shared_net()
    tx = Transactions(net.genesis).set_kyc_tier("BANK03", 3, ["COMPLIANCE", "CSD"])
    stx = sign(tx, ParticipantKey("CSD", net.participant_keys["CSD"]), genesis=net.genesis)
    path = run_dir / "tier.json"
    path.write_text(stx.dumps() + "\n")
    return path


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))


@pytest.mark.serial  # starts a child process (tests/isolation.py)
def test_a_write_cut_short_leaves_the_file_it_would_replace(run_dir: Path) -> None:
    """`ledger admin sign FILE` rewrites FILE; a full disk (here: a 512-byte file size
    limit) cut the write short and left half of it, CSD's signature lost with the rest."""
    tier = _governance_file(run_dir)
    before = tier.read_bytes()
    assert len(before) > 512
    argv = [sys.executable, "-m", "client.cli", "--run-dir", str(run_dir),
            "admin", "sign", str(tier), "--admin", "COMPLIANCE"]  # fmt: skip
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.run(  # preexec_fn: the child's own file size limit
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        preexec_fn=_limit_file_size,
    )  # fmt: skip
    assert p.returncode == 1, p.stderr
    assert "cannot write" in _one_error_line(p.stderr)
    assert tier.read_bytes() == before
    left = sorted(f.name for f in run_dir.iterdir())
    assert left == ["genesis.json", "participants", "tier.json"]  # no temporary file left


@contextlib.contextmanager
def _reader_released(fifo: Path) -> Iterator[None]:
    """While open: a reader that opens ``fifo`` (and waits there for a writer) is given a
    writer that leaves at once, so it reads an empty file instead of waiting for ever.
    Before the fix `ledger-node run` waited in open(); a regression now fails in a
    moment, not at the test's timeout (30 s a parameter, in every CI run of its mutant)."""
    done = threading.Event()

    def release() -> None:
        while not done.wait(0.05):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO: no reader
            except OSError:
                continue

    writer = threading.Thread(target=release, daemon=True)
    writer.start()
    try:
        yield
    finally:
        done.set()
        writer.join()


@pytest.mark.timeout(30)  # before the fix `ledger-node run` waited in open() for ever
@pytest.mark.parametrize("name", ["tls.pem", "tls.key", "pinned.pem"])
def test_ledger_node_run_refuses_tls_files_that_are_fifos(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    """The files a node's config names are read as every file a person names is: the TLS
    certificate, its key and the pinned certificates too (found re-reading this change)."""
    net = generate(tmp_path / "run", NetSpec(4, 3, free_port_base(4)), progress=lambda _: None)
    node = net.nodes[0]
    target = {"tls.pem": node.dir / "tls.pem", "tls.key": node.dir / "tls.key",
              "pinned.pem": load_node_config(node.config).tls_pinned}[name]  # fmt: skip
    target.unlink()
    os.mkfifo(target)
    with _reader_released(target):
        assert node_main(["run", "--config", str(node.config)]) == 2
    assert "not a regular file" in capsys.readouterr().err


# A file over FILE_BYTES_MAX (session 31): a disk image or a log named by mistake was read
# whole, until memory ran out; now it is one error line before a byte is read.


@pytest.mark.parametrize(
    "argv",
    [["verify-receipt", "{f}"], ["submit", "dvp", "{f}"], ["admin", "submit", "{f}"]],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_file_over_the_size_bound_is_one_error_line_before_it_is_read(
    capsys: pytest.CaptureFixture[str], run_dir: Path, argv: list[str]
) -> None:
    big = run_dir / "big.json"
    with big.open("wb") as f:  # sparse: no disk, and reading it would still cost memory
        f.truncate(FILE_BYTES_MAX + 1)
    code, out, err = run(capsys, "--run-dir", str(run_dir), *(a.format(f=big) for a in argv))
    assert code in (1, 2) and out == ""
    assert f"larger than {FILE_BYTES_MAX:,} bytes" in _one_error_line(err)


def test_a_file_over_the_size_bound_is_refused_before_a_byte_is_read(tmp_path: Path) -> None:
    """Refused from its size: read whole and then measured, the sparse file below would
    cost 256 MB of memory first (traced: the peak of Python's allocations)."""
    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate(FILE_BYTES_MAX + 1)
    tracemalloc.start()
    try:
        with pytest.raises(OSError) as e:
            read_regular(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert e.value.errno == errno.EFBIG
    assert peak < 1024 * 1024


def test_read_regular_refuses_one_byte_over_its_bound_and_reads_one_at_it(tmp_path: Path) -> None:
    at, over = tmp_path / "at", tmp_path / "over"
    at.write_bytes(b"x" * 10)
    over.write_bytes(b"x" * 11)
    assert read_regular(at, 10) == b"x" * 10
    with pytest.raises(OSError, match="larger than 10 bytes") as e:
        read_regular(over, 10)
    assert e.value.errno == errno.EFBIG


def test_a_document_to_hash_is_hashed_at_any_size_and_a_fifo_is_still_refused(
    tmp_path: Path,
) -> None:
    """``--attestation FILE`` hashes a custody or reserve document (a scanned PDF may be
    large): it is read a chunk at a time, never whole, so no size bound applies."""
    doc = tmp_path / "doc.pdf"
    body = os.urandom(3 * 1024 * 1024 + 17)  # several chunks and a partial one
    doc.write_bytes(body)
    assert sha256_regular(doc) == hashlib.sha256(body).digest()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        sha256_regular(fifo)
