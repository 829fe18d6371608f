"""`make demo` runs the demo module; it must settle its trades and refuse the bad one."""

from __future__ import annotations

import pytest

from node import demo


def test_demo_settles_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert out.count(" OK ") == len(demo.TRADES) - 1
    assert "INSUFFICIENT_SECURITIES" in out
    assert "final balances at height 6" in out
