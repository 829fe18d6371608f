"""One version, node/_version.py, everywhere: the installed metadata, both packages'
``__version__``, every console script's ``--version`` and the validator's build_info
metric; and the validator's code digest beside it (two builds of one version told apart)."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from prometheus_client import generate_latest

import client
import node
from node._code import code_digest
from node.runtime._metrics import Metrics
from tests.packaging.dist import ROOT, pyproject

BIN = Path(sys.executable).parent


def test_both_packages_and_the_metadata_carry_the_one_version() -> None:
    assert node.__version__ == client.__version__
    assert importlib.metadata.version("dvp-ledger") == node.__version__
    project = pyproject()["project"]
    assert isinstance(project, dict)
    assert "version" not in project and project["dynamic"] == ["version"]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["dynamic"]["version"] == {"attr": "node._version.__version__"}


def test_every_console_script_answers_version() -> None:
    scripts = importlib.metadata.distribution("dvp-ledger").entry_points.select(
        group="console_scripts"
    )
    assert {s.name for s in scripts} == {"ledger", "ledger-node"}
    for script in scripts:
        done = subprocess.run(
            [BIN / script.name, "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        code = f" (code {code_digest()})" if script.name == "ledger-node" else ""
        assert done.stdout == f"{script.name} {node.__version__}{code}\n"


def test_the_validator_exports_its_version_and_code_as_build_info() -> None:
    text = generate_latest(Metrics().registry).decode()
    info = f'ledger_build_info{{code="{code_digest()}",version="{node.__version__}"}} 1.0'
    assert info in text.splitlines()


def test_the_code_digest_tells_two_builds_of_one_version_apart(tmp_path: Path) -> None:
    """A copy of the validator's sources has its digest; one byte changed in any source
    file, or a file added or renamed, gives another (the control: what the version alone
    misses); compiled caches and other files do not count."""
    source = Path(node.__file__).parent
    copy = tmp_path / "node"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    digest = code_digest(copy)
    assert digest == code_digest(source) and len(digest) == 16
    extra = tmp_path / "extra"
    shutil.copytree(copy, extra)
    (extra / "__pycache__").mkdir(exist_ok=True)
    (extra / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"compiled")
    (extra / "notes.txt").write_text("not code")
    assert code_digest(extra) == digest
    changed = tmp_path / "changed"
    shutil.copytree(copy, changed)
    crypto = changed / "crypto.py"
    crypto.write_bytes(crypto.read_bytes() + b"\n")
    assert code_digest(changed) != digest
    renamed = tmp_path / "renamed"
    shutil.copytree(copy, renamed)
    (renamed / "merkle.py").rename(renamed / "merkle2.py")
    assert code_digest(renamed) != digest
    added = tmp_path / "added"
    shutil.copytree(copy, added)
    (added / "plugin.py").write_text("")
    assert code_digest(added) != digest
