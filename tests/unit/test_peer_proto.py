"""The validators' Peer service apart from the public API (docs/adr/0020): peer.proto's
generated module is loaded by the validator, never by the SDK."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Each case imports the SDK in a child Python, to see which modules it loads
# (tests/isolation.py).
pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parents[2]


# --- the peer service apart -------------------------------------------------------------


def _loads_peer_module(module: str) -> bool:
    code = (
        f"import sys, importlib, pkgutil, {module} as m\n"
        "for info in pkgutil.walk_packages(getattr(m, '__path__', []), m.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "print('node.wire.peer_pb2' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip() == "True"


def test_the_sdk_never_loads_the_peer_module() -> None:
    assert not _loads_peer_module("client")
    assert _loads_peer_module("node.runtime._transport")  # negative control: a validator does
