"""Settlement's state-guarding checks survive ``python -O`` (house rule 10): they are
``require`` calls, not bare asserts, and a broken one raises InvariantError."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
from node.invariant import InvariantError
from node.settlement import BlockContext, apply_block
from node.settlement._state import Overlay
from node.store import MemoryStore
from tests.ledger_helpers import shared_net

store = MemoryStore(shared_net().genesis)
caught = []
try:
    apply_block(store, [], BlockContext(height=5, time_ms=0))  # the head is at 0, not 4
except InvariantError as e:
    caught.append(str(e))
try:
    Overlay(store).move("USD.CASHCO", "BANK01", "BANK02", 10**30)  # more than held
except InvariantError as e:
    caught.append(str(e))
print(caught)
"""


@pytest.mark.serial  # starts a child process (tests/isolation.py)
def test_settlement_invariants_hold_under_python_O() -> None:
    out = subprocess.run(
        [sys.executable, "-O", "-c", _PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "block 5 applied on height 0" in out and "unchecked move" in out
