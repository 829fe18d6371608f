"""`python -m devtools.bench.gate` runs and prints one figure per way of reading identities
(docs/performance.md "Issue 15: access checks" keeps the figures; no timing asserted)."""

from __future__ import annotations

import re

import pytest

from devtools.bench import gate


def test_the_gate_benchmark_prints_both_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert gate.main(["--calls", "20"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"genesis only +\d+\.\d us CPU per call", out)
    assert re.search(r"registry at head \(LMDB\) +\d+\.\d us CPU per call", out)


def test_a_call_count_below_one_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as e:
        gate.main(["--calls", "0"])
    assert e.value.code == 2
