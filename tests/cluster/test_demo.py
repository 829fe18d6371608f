"""`make demo` runs the demo module: a real cluster settles its trades and refuses the bad
one (4 validators here to keep the suite short; `make demo` runs 26)."""

from __future__ import annotations

import re

import pytest

from node import demo

pytestmark = pytest.mark.slow


def test_demo_settles_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--n", "4"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"\s*\d+\s+BANK", line)]
    assert len(rows) == len(demo.TRADES)
    assert sum(" OK " in r for r in rows) == len(demo.TRADES) - 1
    assert "INSUFFICIENT_SECURITIES" in rows[4]
    assert f"{demo.BURST_TRADES}/{demo.BURST_TRADES} OK" in out
    assert re.search(r"4/4 validators answering; all at height \d+ with state root", out)
    assert "stopped 4 validators" in out
