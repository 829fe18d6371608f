"""`make chaos` in small: 4 real validators (quorum 3) behind the fault-injecting proxy,
the bank workload through the SDK, ~40 s of seeded faults, then the checker.

The checker's rules fire on doctored histories in tests/unit/test_chaos_checker.py; here
the run must pass them on its own merits, and the result file must carry the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from node.chaos.nemesis import FAULT_KINDS

REPO = Path(__file__).resolve().parents[2]
# An acknowledged trade is lost today if its validator stops before forwarding it: with
# SIGKILL (`python -m node.chaos --n 4 --q 3 --duration 60 --seed 4 --faults
# kill,kill-leaders --rate 100 --workers 32 --fault-s 1,2 --gap-s 1,1`: 7 trades the
# leader acknowledged within ~10 ms of its kill are in no block) and with SIGTERM (`make
# chaos N=26 Q=16 DURATION=120 SEED=1`: a transfer node-03 acknowledged 0.49 s after its
# SIGTERM, while shutting down, is in no block). Until acknowledged-means-durable (issue
# 12 item 8) lands, those kinds stay out of `make test`; CHAOS_TEST_FAULTS=all (or a
# list) puts them back.
PENDING_FIX = {"kill", "kill-leaders", "restart"}
_ENV = os.environ.get("CHAOS_TEST_FAULTS", "")
FAULTS = (
    ",".join(FAULT_KINDS)
    if _ENV == "all"
    else _ENV or ",".join(k for k in FAULT_KINDS if k not in PENDING_FIX)
)


def test_chaos_on_four_validators_keeps_every_acknowledged_trade(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    p = subprocess.run(
        [
            sys.executable, "-m", "node.chaos", "--n", "4", "--q", "3", "--duration", "35",
            "--seed", "1", "--fault-s", "2,4", "--gap-s", "1,2", "--rate", "20",
            "--faults", FAULTS, "--out", str(out),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    r = json.loads(out.read_text())
    assert r["violations"] == []
    assert r["acknowledged"] >= 250 and r["by_outcome"].get("OK", 0) >= 250
    kinds = {f["kind"] for f in r["faults_inflicted"]}
    assert kinds == set(FAULTS.split(","))  # every enabled kind at least once
    assert all(len(f["nodes"]) == 1 and f["recovered_us"] for f in r["faults_inflicted"])
    leaders = [f for f in r["faults_inflicted"] if f["kind"].endswith("-leaders")]
    assert all(f["nodes"] == [f["leader_at_start"]] for f in leaders)
    assert len({v["state_root"] for v in r["validators"]}) == 1
    assert {v["height"] for v in r["validators"]} == {r["height"]} and r["height"] > 0
    rows = {w["fault"] for w in r["windows"]}
    assert "healthy" in rows and len(rows) >= 5
    assert "CHECKER: OK" in p.stdout
