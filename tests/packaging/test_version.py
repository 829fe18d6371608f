"""One version, node/_version.py, everywhere: the installed metadata, both packages'
``__version__``, every console script's ``--version`` and the validator's build_info
metric."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

from prometheus_client import generate_latest

import client
import node
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
        assert done.stdout == f"{script.name} {node.__version__}\n"


def test_the_validator_exports_its_version_as_build_info() -> None:
    text = generate_latest(Metrics().registry).decode()
    assert f'ledger_build_info{{version="{node.__version__}"}} 1.0' in text.splitlines()
