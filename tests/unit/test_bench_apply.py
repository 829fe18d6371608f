"""The apply benchmark runs end to end (tiny sizes) and refuses bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.bench import apply as bench_apply


def test_bench_apply_small_run_writes_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert bench_apply.main(["--blocks", "2", "--trades", "20", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [r["mode"] for r in doc["runs"]] == ["verify", "no-verify"]
    assert all(r["trades"] == 40 and r["trades_per_s"] > 0 for r in doc["runs"])


def test_bench_apply_rejects_oversized_blocks() -> None:
    with pytest.raises(SystemExit):
        bench_apply.main(["--trades", "5000"])
