"""CI's fast regression set: every known mutant (tests/mutation/known.py) must make its
named tests fail, and those tests must pass without it.

Each mutant is applied to a fresh copy of the repository's ``node/`` (generated protobuf
code included), ``client/``, ``devtools/``, ``tests/``, ``docs/``, ``docker/`` and
``pyproject.toml``; the named tests run there in a child pytest with the copy first on the
path, forked by a warm runner that imported pytest and the third-party libraries once
(tests/mutation/warm.py), with the Hypothesis profile that does not shrink. The copies
share bytecode compiled once in the unmutated copy; the mutated file compiles afresh. Only
pytest's exit code 1 (tests failed) counts as killed: 0 is a surviving mutant, and 2-5
(interrupted, internal error, usage error, no tests collected) mean the mutant or the test
ids are broken.
"""

from __future__ import annotations

import compileall
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.isolation import names_serial_test
from tests.mutation.driver import ROOT, copy_repo
from tests.mutation.known import MUTANTS, Mutant

RUN_TIMEOUT_S = 120  # one mutant's named tests
# The control runs every named test in one process (89 s on a quiet machine with 918
# mutants, for the serial run's share; growing with the catalogue): a slow CI machine
# must not fail it.
CONTROL_TIMEOUT_S = 900
# The named tests' guards against a hang (tests/patience.py), down from 10 s: a mutant
# that hangs a test waits the guard out. The control runs with it too.
MUTANT_HANG_S = 4.0
NAMED = sorted({t for m in MUTANTS for t in m.tests})
_EXIT_MEANING = {
    0: "all tests passed: the mutant SURVIVED",
    2: "pytest was interrupted (the mutant may break collection or import)",
    3: "pytest had an internal error",
    4: "pytest usage error (a malformed test id?)",
    5: "no tests were collected (a test id names nothing?)",
}


class Pristine:
    """The unmutated copy. Each mutant's copy is made of hard links to its files (a byte
    copy of its 15 MB cost more than most mutants' tests), so a copy's file may be
    replaced but never written in place: ``_apply`` writes the mutated file anew. A run
    that writes through a link anyway (as root, this machine's user, a read-only mode
    would not stop it) is found: after every run by ``changed`` (times, sizes, modes and
    the set of files), and at the end by ``rewritten`` (every file's content, for a write
    whose times were put back)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stamps = self._stamps()
        self.digests = self._digests()
        self.altered_by: str | None = None  # the first run that changed it, and what

    def _files(self) -> list[Path]:
        return sorted(p for p in self.path.rglob("*") if p.is_file() and not p.is_symlink())

    def _stamps(self) -> dict[Path, tuple[int, int, int]]:
        return {
            p: (st.st_mtime_ns, st.st_size, st.st_mode) for p in self._files() for st in [p.stat()]
        }

    def _digests(self) -> dict[Path, bytes]:
        return {p: hashlib.sha256(p.read_bytes()).digest() for p in self._files()}

    def copy(self, name: str) -> Path:
        dst = self.path.parent / name
        shutil.copytree(self.path, dst, copy_function=os.link)
        return dst

    def changed(self) -> list[str]:
        """Files added, removed, or whose time, size or mode changed since it was made."""
        return self._differing(self.stamps, self._stamps())

    def rewritten(self) -> list[str]:
        """Files whose content is not what it was (reads every file: for the end)."""
        return self._differing(self.digests, self._digests())

    def _differing(self, then: Mapping[Path, object], now: Mapping[Path, object]) -> list[str]:
        """The files in either mapping whose entries differ, relative to the copy."""
        differ = (p for p in then.keys() | now.keys() if then.get(p) != now.get(p))
        return sorted(str(p.relative_to(self.path)) for p in differ)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pristine]:
    """One unmutated copy of the repository, linked again for each mutant."""
    if not (ROOT / "node" / "wire" / "ledger_pb2.py").exists():
        pytest.fail("node/wire/ledger_pb2.py is missing: run `make setup` first")
    dst = tmp_path_factory.mktemp("known-mutants") / "pristine"
    dst.mkdir()
    copy_repo(dst)
    # Bytecode once for every copy (copies keep the sources' times, so it stays valid
    # but for the mutated file, whose time and size change), the test modules' as
    # pytest rewrites them included: collecting them writes it.
    compileall.compile_dir(dst, quiet=1, workers=1)
    files = sorted({t.split("::")[0] for t in NAMED})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", *files],
        cwd=dst, env=_child_env(dst, bytecode=True), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"the named test files do not collect:\n{proc.stdout[-3000:]}"
    pristine = Pristine(dst)
    yield pristine
    rewritten = pristine.rewritten()
    assert not rewritten, f"runs wrote into the unmutated copy through its links: {rewritten}"


class Warm:
    """One warm runner (tests/mutation/warm.py) per pytest process, fed one run at a time."""

    def __init__(self, pristine: Pristine) -> None:
        self.pristine = pristine
        cwd = pristine.path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.mutation.warm"],
            cwd=cwd, env=_child_env(cwd), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    def run(self, repo: Path, args: list[str], timeout_s: float) -> tuple[int | None, str]:
        """pytest's exit code in ``repo`` (None past ``timeout_s``) and its output's tail."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"repo": str(repo), "args": args, "env": _child_env(repo), "timeout_s": timeout_s}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            pytest.fail(f"the warm runner ended (exit {self.proc.wait()})")
        reply = json.loads(line)
        p = self.pristine
        if p.altered_by is None and (changed := p.changed()):
            p.altered_by = f"the run in {repo.name}: {changed}"
        if p.altered_by is not None:  # this run and every later one ran on altered code
            pytest.fail(f"the unmutated copy was written through its links by {p.altered_by}")
        return reply["rc"], reply["output"]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def warm(pristine: Pristine) -> Iterator[Warm]:
    runner = Warm(pristine)
    yield runner
    runner.close()


def _child_env(repo: Path, bytecode: bool = False) -> dict[str, str]:
    """A child's environment: the copy first on the path, the Hypothesis profile that
    does not shrink and Hypothesis's files beside the copies, shorter hang guards
    (tests/patience.py), and bytecode written only when ``bytecode`` (this machine's
    environment sets PYTHONDONTWRITEBYTECODE)."""
    env = dict(os.environ, PYTHONPATH=str(repo), HYPOTHESIS_PROFILE="mutants")
    # Hypothesis's own files (its cache of each module's constants, by the source's hash,
    # written atomically) beside the copies, shared by them: not in the unmutated copy,
    # its default for the warm runner's children (the directory it was imported from).
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(repo.parent / "hypothesis")
    env["LEDGER_TEST_HANG_S"] = str(MUTANT_HANG_S)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _pytest(
    warm: Warm, repo: Path, ids: list[str], timeout_s: float = RUN_TIMEOUT_S
) -> tuple[int | None, str]:
    args = ["-x", "-q", "-p", "no:cacheprovider", f"--basetemp={repo / '.pt'}", *ids]
    return warm.run(repo, args, timeout_s)


def _apply(repo: Path, m: Mutant) -> None:
    path = repo / m.file
    text = path.read_text()
    count = text.count(m.old)
    if count != 1:
        pytest.fail(f"mutant {m.id}: its old text occurs {count} times in {m.file}, need 1")
    path.unlink()  # a hard link to the unmutated copy's file: replaced, not written
    path.write_text(text.replace(m.old, m.new))
    for pyc in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        pyc.unlink()  # the unmutated copy's bytecode of it


def test_catalogue_is_well_formed() -> None:
    ids = [m.id for m in MUTANTS]
    assert len(ids) == len(set(ids)), "mutant ids repeat"
    for m in MUTANTS:
        assert m.old != m.new and m.tests, m.id
        count = (ROOT / m.file).read_text().count(m.old)
        assert count == 1, f"mutant {m.id}: old text occurs {count} times in {m.file}, need 1"
        for test_id in m.tests:
            file = test_id.split("::")[0]
            assert (ROOT / file).is_file(), f"mutant {m.id}: no test file {file}"
            assert "::" in test_id, f"mutant {m.id}: name a test, not a whole file: {test_id}"


def _param(m: Mutant) -> object:
    """A mutant runs in make test's parallel run unless a test it names starts processes
    (clusters, browsers): then in the serial run (tests/isolation.py)."""
    run = pytest.mark.serial if names_serial_test(m.tests) else pytest.mark.child_pytest
    return pytest.param(m, id=m.id, marks=run)


HARMLESS = Mutant(
    "harmless", "node/core/quorum.py", old="(for 26 validators: 18)", new="(26: 18)",
    breaks="nothing (a docstring)", tests=["tests/unit/test_quorum.py::test_classic_quorum"],
)  # fmt: skip
# Run in a copy with HARMLESS applied: the child imports the copy's code and the mutated
# file's new text.
WHERE_TEST = """
import os
from pathlib import Path

from hypothesis.configuration import storage_directory

import node
import tests
from node.core import quorum
from tests.patience import HANG_S


def test_where():
    repo = Path(os.environ["PYTHONPATH"])
    for module in (node, tests, quorum):
        assert Path(module.__file__).is_relative_to(repo), module.__file__
    assert HANG_S == float(os.environ["LEDGER_TEST_HANG_S"]) < 10  # the mutants' guards
    hypothesis_files = storage_directory("constants", intent_to_write=False).path
    assert not hypothesis_files.is_relative_to(repo.parent / "pristine"), hypothesis_files
    assert "(26: 18)" in quorum.__doc__ + "".join(
        f.__doc__ or "" for f in vars(quorum).values() if callable(f)
    )
"""


@pytest.mark.parametrize(
    "serial",
    [
        pytest.param(False, id="in-parallel", marks=pytest.mark.child_pytest),
        pytest.param(True, id="serial", marks=pytest.mark.serial),  # clusters among them
    ],
)
def test_named_tests_pass_without_the_mutants(pristine: Pristine, warm: Warm, serial: bool) -> None:
    """The control: every named test passes on the unmutated copy. Those of make test's
    parallel run are run in it, the others in the serial run."""
    repo = pristine.copy(f"control-{serial}")
    ids = [t for t in NAMED if names_serial_test([t]) == serial]
    rc, output = _pytest(warm, repo, ids, CONTROL_TIMEOUT_S)
    assert ids and rc == 0, f"named tests fail WITHOUT any mutant:\n{output[-4000:]}"


def test_a_copy_is_linked_and_a_write_through_a_link_is_found(tmp_path: Path) -> None:
    """Applying a mutant to a linked copy leaves the unmutated copy as it was; a write
    through a link is found (the negative controls): content, mode, a file added, and
    content whose times were put back."""
    src = tmp_path / "pristine"
    (src / "node" / "core").mkdir(parents=True)
    source = f"# {HARMLESS.old}\n"
    (src / HARMLESS.file).write_text(source)
    (src / "README").write_text("unchanged\n")
    (src / "LICENSE").write_text("unchanged\n")
    pristine = Pristine(src)
    copy = pristine.copy("mutated")
    assert (copy / "README").stat().st_ino == (src / "README").stat().st_ino
    _apply(copy, HARMLESS)
    assert (copy / HARMLESS.file).read_text() == f"# {HARMLESS.new}\n"
    assert (src / HARMLESS.file).read_text() == source
    assert pristine.changed() == [] and pristine.rewritten() == []
    with open(copy / "README", "a") as f:  # what a run must not do in its copy
        f.write("written through a link\n")
    assert pristine.changed() == ["README"] == pristine.rewritten()
    os.chmod(copy / HARMLESS.file, 0o600)  # the unmutated file: unlinked, not changed
    os.chmod(copy / "LICENSE", 0o600)
    (src / "added").write_text("")
    assert pristine.changed() == ["LICENSE", "README", "added"]
    x = tmp_path / "other" / "x"
    x.parent.mkdir()
    x.write_text("abc\n")
    other, st = Pristine(x.parent), x.stat()
    x.write_text("abd\n")  # the same size, its times put back: only the content tells
    os.utime(x, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert other.changed() == [] and other.rewritten() == ["x"]


@pytest.mark.child_pytest
def test_the_child_runs_the_copys_code(pristine: Pristine, warm: Warm) -> None:
    """The warm runner's child imports the copy's code: not the working tree's, and not
    the unmutated copy's bytecode for the file a mutant changed."""
    where = pristine.copy("where")
    _apply(where, HARMLESS)
    (where / "tests" / "unit" / "test_where.py").write_text(WHERE_TEST)
    rc, output = _pytest(warm, where, ["tests/unit/test_where.py::test_where"])
    assert rc == 0, f"the child does not run the copy's code:\n{output[-4000:]}"


def _why_alive(mutant: Mutant, rc: int | None, output: str) -> str | None:
    """None when the mutant was killed (exit code 1), else what went wrong."""
    if rc == 1:
        return None
    if rc is None:
        meaning = "its tests ran past their time bound"
    else:
        meaning = _EXIT_MEANING.get(rc, "unexpected exit code")
    return (
        f"mutant {mutant.id} ({mutant.breaks}) in {mutant.file}: pytest exit "
        f"{rc}, {meaning}; tests {mutant.tests}\n{output[-5000:]}"
    )


@pytest.mark.parametrize("mutant", [_param(m) for m in MUTANTS])
def test_known_mutant_is_killed(pristine: Pristine, warm: Warm, mutant: Mutant) -> None:
    repo = pristine.copy(mutant.id)
    _apply(repo, mutant)
    why = _why_alive(mutant, *_pytest(warm, repo, mutant.tests))
    if why is not None:
        pytest.fail(why)
    shutil.rmtree(repo)  # kept when the mutant survives, to look at


@pytest.mark.child_pytest
def test_negative_control_a_harmless_mutant_or_a_wrong_test_id_is_reported(
    pristine: Pristine, warm: Warm
) -> None:
    """The checker itself fires: a mutant no test can see survives (exit 0) and a test id
    that names nothing is an error (exit 4 or 5); neither passes as killed."""
    repo = pristine.copy("negative-control")
    _apply(repo, HARMLESS)
    survived = _why_alive(HARMLESS, *_pytest(warm, repo, HARMLESS.tests))
    assert survived is not None and "SURVIVED" in survived
    wrong_id = dataclasses.replace(HARMLESS, tests=["tests/unit/test_quorum.py::no_such"])
    broken = _why_alive(wrong_id, *_pytest(warm, repo, wrong_id.tests))
    assert broken is not None and ("exit 4" in broken or "exit 5" in broken), broken


HANGS = """
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.serial  # it starts a process
def test_hangs():
    # A validator-like process in its own session, its command line naming the copy.
    repo = os.environ["PYTHONPATH"]
    code = "import sys, time; time.sleep(600)"
    proc = subprocess.Popen([sys.executable, "-c", code, repo], start_new_session=True)
    (Path(repo) / "started.pid").write_text(str(proc.pid))
    time.sleep(600)
"""


@pytest.mark.child_pytest
def test_a_run_past_its_bound_is_reported_and_what_it_started_is_killed(
    pristine: Pristine, warm: Warm
) -> None:
    """A mutant whose tests hang is not killed by them: the run ends at its bound, and
    the processes it started, in its own session too, end with it."""
    repo = pristine.copy("hangs")
    (repo / "tests" / "unit" / "test_hangs.py").write_text(HANGS)
    rc, output = _pytest(warm, repo, ["tests/unit/test_hangs.py::test_hangs"], timeout_s=5)
    why = _why_alive(HARMLESS, rc, output)
    assert why is not None and "ran past their time bound" in why, output
    pid = int((repo / "started.pid").read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the process the hung run started is alive"


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that may never reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
