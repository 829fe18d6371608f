"""The split of make test into a parallel run and a serial run (tests/isolation.py): a test
of the parallel run that starts a process fails, however it starts it; ``serial`` tests,
the serial directories and a known mutant's child pytest may.

The negative control plants tests in a temporary tree and runs pytest there with the
guard loaded, in a child process (so this test is serial itself).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.isolation import names_serial_test

ROOT = Path(__file__).resolve().parents[2]

PLANTED = {
    "pytest.ini": "[pytest]\naddopts = -p tests.isolation -p no:cacheprovider\n"
    "asyncio_mode = auto\n",
    "test_planted.py": """\
import multiprocessing, os, subprocess, sys
import pytest

def test_popen():
    subprocess.run(["true"], check=True)

def test_swallowed():
    try:
        subprocess.run(["true"], check=True)
    except BaseException:
        pass

@pytest.fixture
def started():
    subprocess.run(["true"], check=True)

def test_in_a_fixture(started):
    pass

def test_os_system():
    os.system("true")

def test_fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)

def test_multiprocessing_spawn():
    p = multiprocessing.get_context("spawn").Process(target=print)
    p.start()
    p.join()

async def test_asyncio_subprocess():
    import asyncio
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()

@pytest.mark.child_pytest
def test_child_pytest_may_start_no_other_process():
    subprocess.run(["true"], check=True)

@pytest.mark.child_pytest
def test_child_pytest_may_start_pytest():
    subprocess.run([sys.executable, "-m", "pytest", "--version"], check=True)

@pytest.mark.child_pytest
def test_child_pytest_may_start_the_warm_runner():
    subprocess.run([sys.executable, "-m", "tests.mutation.warm"], input=b"", check=True)

def test_warm_runner_unmarked():
    subprocess.run([sys.executable, "-m", "tests.mutation.warm"], input=b"", check=True)

@pytest.mark.serial
def test_serial_may():
    subprocess.run(["true"], check=True)

def test_computes():
    assert sum(range(10)) == 45
""",
    "tests/cluster/test_in_a_serial_dir.py": """\
import subprocess

def test_cluster_dir_may():
    subprocess.run(["true"], check=True)
""",
}
# Each fails (a start in a fixture fails the test's setup: an ERROR).
FLAGGED = {
    "test_popen": "FAILED", "test_swallowed": "FAILED", "test_in_a_fixture": "ERROR",
    "test_os_system": "FAILED", "test_fork": "FAILED", "test_multiprocessing_spawn": "FAILED",
    "test_asyncio_subprocess": "FAILED", "test_child_pytest_may_start_no_other_process": "FAILED",
    "test_warm_runner_unmarked": "FAILED",
}  # fmt: skip
PASSED = [
    "test_child_pytest_may_start_pytest", "test_child_pytest_may_start_the_warm_runner",
    "test_serial_may", "test_computes",
]  # fmt: skip


def _planted_run(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    for name, text in PLANTED.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="400")
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", f"--basetemp={tree / '.pt'}", *args],
        cwd=tree, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def _outcomes(stdout: str) -> dict[str, str]:
    found = re.findall(r"^(PASSED|FAILED|ERROR) \S*::(\w+)", stdout, flags=re.MULTILINE)
    return {name: outcome for outcome, name in found}


@pytest.mark.serial
def test_the_guard_flags_every_way_of_starting_a_process(tmp_path: Path) -> None:
    run = _planted_run(tmp_path)
    outcomes = _outcomes(run.stdout)
    assert {n: outcomes.get(n) for n in FLAGGED} == FLAGGED, run.stdout
    assert {n: outcomes.get(n) for n in PASSED} == dict.fromkeys(PASSED, "PASSED"), run.stdout
    assert outcomes.get("test_cluster_dir_may") == "PASSED", run.stdout
    assert "test_popen started a process (subprocess.Popen" in run.stdout
    assert "is not marked serial" in run.stdout


@pytest.mark.serial
def test_the_two_runs_select_every_planted_test_once(tmp_path: Path) -> None:
    parallel = _planted_run(tmp_path, "--collect-only", "-q", "-m", "not serial")
    serial = _planted_run(tmp_path, "--collect-only", "-q", "-m", "serial")
    ids = [line for run in (parallel, serial) for line in run.stdout.splitlines() if "::" in line]
    assert sorted(i.split("::")[-1] for i in ids if "::" in i) == sorted(
        [*FLAGGED, *PASSED, "test_cluster_dir_may"]
    )
    assert "test_cluster_dir_may" in serial.stdout and "test_serial_may" in serial.stdout


def test_a_known_mutant_is_serial_when_a_test_it_names_is() -> None:
    quorum = "tests/unit/test_quorum.py::test_classic_quorum"
    assert not names_serial_test([quorum])
    assert names_serial_test([quorum, "tests/cluster/test_ops.py::test_anything"])
    assert names_serial_test(["tests/packaging/test_version.py::test_anything"])
    # a serial marker on the function, and on the module
    assert names_serial_test(
        ["tests/unit/test_failstop.py::test_store_invariants_survive_python_dash_o"]
    )
    assert names_serial_test(
        ["tests/unit/test_bad_genesis.py::test_cash_tokens_refuse_bond_fields"]
    )
    assert not names_serial_test(
        ["tests/unit/test_failstop.py::test_a_commit_prunes_the_intake_log"]
    )
