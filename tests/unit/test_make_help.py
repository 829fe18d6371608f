"""`make help` prints every target's `#? target: description` line whole.

Review 33o: the help split each line at every ': ', so a description holding one
(`status`: "ledger status with pids: table of every node ...", `genesis`, `k8s`, `bench`)
was cut there, and `make help` said of `make status` only "ledger status with pids".
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_HELP_LINE = re.compile(r"^#\? ([\w-]+): (.*)$")

pytestmark = pytest.mark.serial  # runs make (tests/isolation.py)


def test_make_help_prints_every_description_whole() -> None:
    lines = (REPO / "Makefile").read_text().splitlines()
    documented = [m.groups() for line in lines if (m := _HELP_LINE.match(line))]
    # Control: the case that was cut is among them (a description with ': ' inside).
    assert any(": " in description for _, description in documented)
    shown = subprocess.run(
        ["make", "-s", "-C", str(REPO), "help"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [line.split(maxsplit=1) for line in shown] == [list(d) for d in documented]
