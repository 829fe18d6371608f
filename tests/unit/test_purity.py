"""House rule 1: node/core and node/settlement do no I/O and read no clock or randomness.

Checked three ways (tests/purity.py): the import graph followed through the project, the
builtins and clock reads named in it, and the pure layers' own tests run under a guard
that fails on effects. Each check has a negative control that plants a violation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.purity import ROOT, builtin_calls, import_graph

# The pure layers' tests, rerun under the effect guard (about 165 tests, 3 s of CPU;
# test_settlement_invariants is left out: it runs the pure code in a child process).
GUARDED_TESTS = [
    "tests/unit/test_core_replica.py",
    "tests/unit/test_engine.py",
    "tests/unit/test_transcripts.py",
    "tests/unit/test_core_hostile.py",
    "tests/unit/test_core_codec.py",
    "tests/unit/test_core_sync_size.py",
    "tests/unit/test_quorum.py",
    "tests/unit/test_leader.py",
    "tests/unit/test_settlement.py",
    "tests/unit/test_receipt_ids.py",
    "tests/unit/test_merkle.py",
]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_pure_import_graph_reaches_only_pure_modules() -> None:
    graph = import_graph()
    assert graph.findings == []
    # followed through the project, and no further than it should go
    assert {"node.core.replica", "node.settlement._apply", "node.crypto", "node.codec"} <= set(
        graph.modules
    )
    assert not [m for m in graph.modules if m.startswith(("node.store", "node.runtime"))]


def test_the_import_graph_check_fires_through_chains(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/core/__init__.py": "from pkg.core import logic\n",
            "pkg/core/logic.py": "from pkg import util\nfrom ..lib import deep\n",
            "pkg/lib/__init__.py": "",
            "pkg/lib/deep.py": "def f():\n    import socket\n",
            "pkg/util.py": "import os.path\nfrom random import choice\nimport struct\n",
        },
    )
    graph = import_graph(["pkg.core"], tmp_path, frozenset({"struct"}))
    assert graph.findings == [
        "os imported by pkg.util <- pkg.core.logic",
        "random imported by pkg.util <- pkg.core.logic",
        "socket imported by pkg.lib.deep <- pkg.core.logic",
    ]


def test_pure_code_names_no_impure_builtin_or_clock_read() -> None:
    assert builtin_calls(import_graph().modules.values()) == []


def test_the_builtin_check_fires_on_each(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "m.py": (
                "import datetime\n"
                "def f(x):\n"
                "    print(open(x).read(), datetime.datetime.now())\n"
                "    return eval(x) or __import__('time') or breakpoint() or input()\n"
                "t = datetime.date.today\n"
            )
        },
    )
    assert builtin_calls([tmp_path / "m.py"], tmp_path) == sorted(
        f"m.py:{line} {name}"
        for line, name in [
            *[(3, "print"), (3, "open"), (3, ".now"), (4, "eval")],
            *[(4, "__import__"), (4, "breakpoint"), (4, "input"), (5, ".today")],
        ]
    )


@pytest.mark.serial  # starts a child process (tests/isolation.py)
def test_pure_packages_do_not_pull_in_transport_or_storage() -> None:
    code = (
        "import sys, importlib\n"
        "for m in ('node.settlement', 'node.core'):\n"
        "    importlib.import_module(m)\n"
        "print(sorted(m for m in ('grpc', 'lmdb', 'asyncio') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def _guarded_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    plugin = ["-p", "tests.purity", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'pt'}"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfE", *plugin, *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},  # whole failure messages in the summary
        timeout=600,
    )


@pytest.mark.serial  # starts a child process (tests/isolation.py)
@pytest.mark.slow
def test_the_pure_layers_tests_pass_under_the_effect_guard(tmp_path: Path) -> None:
    run = _guarded_pytest(tmp_path, *GUARDED_TESTS)
    assert run.returncode == 0, run.stdout[-4000:]
    pure = len(import_graph().modules)
    assert f"effect guard: armed over {pure} pure files, 0 effects" in run.stdout
    passed = int(run.stdout.rsplit(" passed", 1)[0].rsplit(maxsplit=1)[-1])
    assert passed >= 150, run.stdout[-2000:]


PLANTED = {
    "planted_helper.py": "import random\n\ndef roll():\n    return random.random()\n",
    "planted.py": """\
import os, socket, subprocess
import planted_helper

def read_file():
    with open(__file__) as f:
        return f.read()

def clock():
    return __import__("time").monotonic()

def via_helper():
    return planted_helper.roll()

def os_randomness():
    return os.urandom(8)

def network():
    socket.socket().close()

def spawn():
    subprocess.run(["true"], check=True)

def speak():
    print("hello")

def swallowed():
    try:
        return open(__file__).read()
    except Exception:
        return ""

def late_import():
    import colorsys
""",
    "test_planted.py": """\
import time
import pytest
import planted

@pytest.mark.parametrize("name", [n for n in dir(planted) if not n.startswith("_")
                                  and callable(getattr(planted, n)) and n.islower()
                                  and n not in ("os", "socket", "subprocess")])
def test_effect(name):
    getattr(planted, name)()

def test_an_impure_caller_may_do_all_that():
    open(__file__).close()
    time.monotonic()
""",
}
# function -> the effect the guard must report, and where
EXPECTED = {
    "read_file": "open('", "clock": "time.monotonic()", "via_helper": "random.random()",
    "os_randomness": "os.urandom()", "network": "socket.__new__", "spawn": "subprocess.Popen",
    "speak": "print()", "swallowed": "open('", "late_import": "import('colorsys'",
}  # fmt: skip


@pytest.mark.serial  # starts a child process (tests/isolation.py)
@pytest.mark.slow
def test_the_effect_guard_fires_on_each_planted_effect(tmp_path: Path) -> None:
    _write(tmp_path / "plant", PLANTED)
    d = tmp_path / "plant"
    plant = [f"--purity-plant={d / f}" for f in ("planted.py", "planted_helper.py")]
    run = _guarded_pytest(tmp_path, *plant, str(d / "test_planted.py"))
    out = run.stdout
    assert f"{len(EXPECTED)} failed, 1 passed" in out, out[-4000:]
    for name, effect in EXPECTED.items():
        line = next(x for x in out.splitlines() if x.startswith("FAILED") and f"[{name}]" in x)
        where = "planted_helper.py" if name == "via_helper" else "planted.py"
        assert f"effect guard: {effect}" in line and f"from pure code at {where}:" in line, line
