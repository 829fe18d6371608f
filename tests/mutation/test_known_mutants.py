"""CI's fast regression set: every known mutant (tests/mutation/known.py) must make its
named tests fail, and those tests must pass without it.

Each mutant is applied to a fresh copy of the repository's ``node/`` (generated protobuf
code included), ``client/``, ``devtools/``, ``tests/``, ``docs/``, ``docker/`` and
``pyproject.toml``; the named tests run there in a subprocess with the copy first on the
path. Only pytest's exit code 1 (tests failed) counts as killed: 0 is a surviving mutant,
and 2-5 (interrupted, internal error, usage error, no tests collected) mean the mutant or
the test ids are broken.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.isolation import names_serial_test
from tests.mutation.driver import ROOT, copy_repo
from tests.mutation.known import MUTANTS, Mutant

RUN_TIMEOUT_S = 120  # one mutant's named tests
# The control runs every named test in one process (48 s on a quiet machine with 293
# mutants, and growing with the catalogue): a slow CI machine must not fail it.
CONTROL_TIMEOUT_S = 900
_EXIT_MEANING = {
    0: "all tests passed: the mutant SURVIVED",
    2: "pytest was interrupted (the mutant may break collection or import)",
    3: "pytest had an internal error",
    4: "pytest usage error (a malformed test id?)",
    5: "no tests were collected (a test id names nothing?)",
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One unmutated copy of the repository, copied again for each mutant."""
    if not (ROOT / "node" / "wire" / "ledger_pb2.py").exists():
        pytest.fail("node/wire/ledger_pb2.py is missing: run `make setup` first")
    dst = tmp_path_factory.mktemp("known-mutants") / "pristine"
    dst.mkdir()
    copy_repo(dst)
    return dst


def _copy(pristine: Path, name: str) -> Path:
    dst = pristine.parent / name
    shutil.copytree(pristine, dst)
    return dst


def _pytest(
    repo: Path, ids: list[str], timeout_s: float = RUN_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(repo), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    cmd += [f"--basetemp={repo / '.pt'}", *ids]
    return subprocess.run(
        cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def _apply(repo: Path, m: Mutant) -> None:
    path = repo / m.file
    text = path.read_text()
    count = text.count(m.old)
    if count != 1:
        pytest.fail(f"mutant {m.id}: its old text occurs {count} times in {m.file}, need 1")
    path.write_text(text.replace(m.old, m.new))


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


@pytest.mark.serial  # it runs every named test, the cluster tests among them
def test_named_tests_pass_without_the_mutants(pristine: Path) -> None:
    """The control: every named test passes on the unmutated copy, and the copy (not the
    installed working tree) is what the subprocess imports."""
    repo = _copy(pristine, "control")
    env = dict(os.environ, PYTHONPATH=str(repo))
    where = subprocess.run(
        [sys.executable, "-c", "import node, tests; print(node.__file__, tests.__file__)"],
        cwd=repo, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    for path in where.stdout.split():
        assert Path(path).is_relative_to(repo), f"the copy imports {path}, not its own code"
    ids = sorted({t for m in MUTANTS for t in m.tests})
    proc = _pytest(repo, ids, CONTROL_TIMEOUT_S)
    assert proc.returncode == 0, f"named tests fail WITHOUT any mutant:\n{proc.stdout[-4000:]}"


def _why_alive(mutant: Mutant, proc: subprocess.CompletedProcess[str]) -> str | None:
    """None when the mutant was killed (exit code 1), else what went wrong."""
    if proc.returncode == 1:
        return None
    meaning = _EXIT_MEANING.get(proc.returncode, "unexpected exit code")
    return (
        f"mutant {mutant.id} ({mutant.breaks}) in {mutant.file}: pytest exit "
        f"{proc.returncode}, {meaning}; tests {mutant.tests}\n"
        f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
    )


@pytest.mark.parametrize("mutant", [_param(m) for m in MUTANTS])
def test_known_mutant_is_killed(pristine: Path, mutant: Mutant) -> None:
    repo = _copy(pristine, mutant.id)
    _apply(repo, mutant)
    why = _why_alive(mutant, _pytest(repo, mutant.tests))
    if why is not None:
        pytest.fail(why)


@pytest.mark.child_pytest
def test_negative_control_a_harmless_mutant_or_a_wrong_test_id_is_reported(
    pristine: Path,
) -> None:
    """The checker itself fires: a mutant no test can see survives (exit 0) and a test id
    that names nothing is an error (exit 4 or 5); neither passes as killed."""
    harmless = Mutant(
        "harmless", "node/core/quorum.py", old="(for 26 validators: 18)", new="(26: 18)",
        breaks="nothing (a docstring)", tests=["tests/unit/test_quorum.py::test_classic_quorum"],
    )  # fmt: skip
    repo = _copy(pristine, "negative-control")
    _apply(repo, harmless)
    survived = _why_alive(harmless, _pytest(repo, harmless.tests))
    assert survived is not None and "SURVIVED" in survived
    wrong_id = dataclasses.replace(harmless, tests=["tests/unit/test_quorum.py::no_such"])
    broken = _why_alive(wrong_id, _pytest(repo, wrong_id.tests))
    assert broken is not None and ("exit 4" in broken or "exit 5" in broken), broken
