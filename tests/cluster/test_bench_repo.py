"""``make bench WORKLOAD=repo`` end to end on a fresh 4-validator cluster, briefly: repo
round trips beside the DvP load, both legs' latencies reported and ordered (no timing
thresholds: the figures belong to the benchmark, docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_bench_repo_reports_both_legs(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    p = subprocess.run(
        [sys.executable, "-m", "devtools.bench", "--n", "4", "--q", "3", "--rate", "20",
         "--duration", "3", "--warmup", "1", "--workload", "repo", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["config"]["workload"] == "repo" and r["config"]["dvp_rate"] == 16
    m = r["repo"]
    # 20/s x 20% = 4 round trips a second, 3 s counted.
    assert 10 <= m["trips"] <= 14
    assert m["open_codes"] == {"OK": m["trips"]} and m["close_codes"] == {"OK": m["trips"]}
    for leg in ("open", "close", "round_trip"):
        q = m[leg]
        assert q["samples"] == m["trips"]
        assert 0 < q["p50"] <= q["p90"] <= q["p99"]
    # Each round trip spans its own open and close: its quantiles are at least theirs.
    assert m["round_trip"]["p50"] >= max(m["open"]["p50"], m["close"]["p50"])
    assert "repo round trip p50 / p90 / p99" in p.stdout
