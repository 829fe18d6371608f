"""The three packages and who may import whom (issue 16 item 2).

The validator (``node``) imports neither the SDK (``client``) nor the dev tools
(``devtools``), and the SDK does not import the dev tools: the image carries the
validator alone and the wheel no dev tools, so an import across these lines would fail
only where they are installed. Checked on the import graph, an AST walk of every module
(imports inside functions too, relative ones resolved; tests/purity.py's reader), not a
regex on the text. Dynamic imports by name (``importlib.import_module``) are not seen;
none of the three packages makes one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.purity import ROOT, _imported, _module_file, _package_modules

# package -> the top-level packages it must not import
LAYERS = {"node": ("client", "devtools"), "client": ("devtools",)}


def crossings(package: str, forbidden: Iterable[str], root: Path = ROOT) -> list[str]:
    """``module imports target`` for every import in ``package`` of a ``forbidden`` one."""
    banned = set(forbidden)
    found = set()
    for name in _package_modules(package, root):
        path = _module_file(name, root)
        assert path is not None, name
        for target in _imported(name, path, root):
            if target.split(".")[0] in banned:
                found.add(f"{name} imports {target}")
    return sorted(found)


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_no_package_imports_a_layer_above_it(package: str) -> None:
    assert crossings(package, LAYERS[package]) == []


def test_the_packages_are_where_the_check_looks() -> None:
    """Guards the check against passing on nothing: each package has modules to walk."""
    for package in ("node", "client", "devtools"):
        assert len(_package_modules(package, ROOT)) > 10, package


def _plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_the_check_fires_on_each_planted_import(tmp_path: Path) -> None:
    """Negative control: a tree with one import across a line of each kind."""
    _plant(
        tmp_path,
        {
            "node/__init__.py": "",
            "node/clean.py": "import os\nfrom node import crypto\n",
            "node/crypto.py": "",
            "node/planted.py": "from client import x\n",
            "node/sub/__init__.py": "",
            "node/sub/lazy.py": "def f():\n    import devtools.bench.load\n",
            "client/__init__.py": "from node import crypto\n",
            "client/tool.py": "from devtools.demo import run\n",
        },
    )
    assert crossings("node", LAYERS["node"], tmp_path) == [
        "node.planted imports client",
        "node.sub.lazy imports devtools.bench.load",
    ]
    assert crossings("client", LAYERS["client"], tmp_path) == [
        "client.tool imports devtools.demo",
    ]
