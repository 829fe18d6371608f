"""House rule 1: node/core and node/settlement do no I/O and read no clock or randomness."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_PACKAGES = ["node/core", "node/settlement"]
FORBIDDEN = {
    "asyncio",
    "grpc",
    "lmdb",
    "time",
    "random",
    "secrets",
    "socket",
    "threading",
    "subprocess",
    "os",
    "io",
    "pathlib",
    "multiprocessing",
    "uuid",
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_packages_import_no_io_clock_or_randomness(package: str) -> None:
    files = sorted((ROOT / package).glob("**/*.py"))
    if package == "node/settlement":
        assert files, "node/settlement has no modules"
    bad = {str(f.relative_to(ROOT)): sorted(_imports(f) & FORBIDDEN) for f in files}
    assert {f: m for f, m in bad.items() if m} == {}


def test_pure_packages_do_not_pull_in_transport_or_storage() -> None:
    code = (
        "import sys, importlib\n"
        "for m in ('node.settlement', 'node.core'):\n"
        "    try: importlib.import_module(m)\n"
        "    except ModuleNotFoundError: pass\n"
        "print(sorted(m for m in ('grpc', 'lmdb', 'asyncio') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_checker_fires_on_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("import time\nfrom random import choice\n")
    assert _imports(bad) & FORBIDDEN == {"time", "random"}
