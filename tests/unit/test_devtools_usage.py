"""Every dev tool's ``--help`` names a command that runs (issue 16 item 2 moved them into
devtools/, run from the repository root as ``python -m devtools.<tool>``). A usage line
naming a file path (``python devtools/compose.py``) or a bare file name (``apply.py``)
sends the reader to a command that fails: run as a file, ``import devtools`` is not found.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from tests.purity import ROOT

# Each case runs a dev tool's --help in a child Python (tests/isolation.py).
pytestmark = pytest.mark.serial


def _runnable() -> list[str]:
    """The dev tools' modules that run as commands: a package's ``__main__`` or a module
    with a ``__main__`` guard."""
    out = []
    for path in sorted((ROOT / "devtools").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            out.append(".".join(parts[:-1]))
        elif 'if __name__ == "__main__"' in path.read_text():
            out.append(".".join(parts))
    return out


def test_the_tools_are_where_the_check_looks() -> None:
    tools = _runnable()
    assert {"devtools.demo", "devtools.bench", "devtools.compose", "devtools.netgen"} <= set(tools)


@pytest.mark.parametrize("module", _runnable())
def test_a_dev_tool_usage_names_a_command_that_runs(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    m = re.match(r"usage: python -m (\S+)", done.stdout)
    assert m is not None, f"{module}: {done.stdout.splitlines()[0]!r}"
    assert importlib.util.find_spec(m.group(1)) is not None, m.group(1)
