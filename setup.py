"""The build hook: every build (wheel, sdist's wheel, ``pip install .``, editable) makes
node/wire's protobuf and gRPC code from proto/ledger/v1/*.proto (proto/generate.py).

The metadata is in pyproject.toml; this file only adds the hook to setuptools' build_py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _generator() -> ModuleType:
    # Loaded from its file: proto/ is not a package, and the build runs from any cwd.
    spec = importlib.util.spec_from_file_location("proto_generate", HERE / "proto/generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithProto(build_py):
    """build_py, then protoc into the build tree (or the source tree for an editable
    install, which imports from there)."""

    def run(self) -> None:
        super().run()
        out = HERE if self.editable_mode else Path(self.build_lib)
        for path in _generator().generate(out, HERE):
            self.announce(f"generated {path}", level=2)


setup(cmdclass={"build_py": BuildPyWithProto})
