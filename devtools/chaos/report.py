"""Figures of a chaos run: recovery after each fault and latency per fault window.

Pure functions of the history, the nemesis's records and the committed block times.

- **to next commit after start / end**: from the moment the fault was inflicted (or
  healed) to the next commit, by two clocks: the first verified receipt any client got
  (``receipt``), and the first block proposed after it (``block``, the leader's clock).
  A fault that does not stop the ledger shows the ordinary gap between commits here.
- **latency** of the trades *in flight* during the window (submitted before it ended,
  final after it began; submit to verified receipt, ms): p50, p90, p99, max; ``no
  outcome`` counts trades that got no receipt (not acknowledged, or acknowledged and not
  final within the finality timeout). A window lasts from the fault to the healed nodes'
  recovery. The workers are closed-loop (one trade at a time each), so a stall shows as
  few trades in a window and a long time to the next commit, not as a queue.
- **longest stall**: the longest time without a commit from the fault's start to the
  first commit after its window, by blocks (the ledger's view) and by receipts (the
  clients' view: a client waiting on a paused node sees a stall the ledger does not have).
- the **healthy** row holds every trade in flight during no fault window.

``python -m devtools.chaos.report RESULT.json`` prints the table of a run's result file again.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devtools.chaos.nemesis import FaultRecord
from devtools.chaos.workload import TradeRecord

__all__ = ["main", "percentiles", "table", "windows"]


def percentiles(xs: Sequence[float]) -> dict[str, float | None]:
    s = sorted(xs)

    def at(p: float) -> float | None:
        return round(s[min(len(s) - 1, int(p * len(s)))], 1) if s else None

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(s[-1], 1) if s else None}


def _next(times_us: Sequence[int], after_us: int) -> float | None:
    """Seconds from ``after_us`` to the first of ``times_us`` after it."""
    later = [t for t in times_us if t > after_us]
    return round((min(later) - after_us) / 1e6, 3) if later else None


def _stall(times_us: Sequence[int], start_us: int, end_us: int) -> float | None:
    """The longest stretch without any of ``times_us`` from ``start_us`` to the first of
    them at or after ``end_us``, in seconds (None if none came after ``end_us``)."""
    after = [t for t in times_us if t >= end_us]
    if not after:
        return None
    points = [start_us, *(t for t in times_us if start_us < t < end_us), min(after)]
    return round(max(b - a for a, b in itertools.pairwise(points)) / 1e6, 3)


def _overlaps(t: TradeRecord, start_us: int, end_us: int) -> bool:
    """Was ``t`` in flight at some moment of [start_us, end_us)? (No receipt: until the end.)"""
    return t.submit_us < end_us and (t.final_us is None or t.final_us > start_us)


def _bucket(trades: Sequence[TradeRecord]) -> dict[str, Any]:
    lat = [(t.final_us - t.submit_us) / 1000 for t in trades if t.final_us is not None]
    return {
        "trades": len(trades),
        "no_outcome": sum(1 for t in trades if t.final_us is None),
        "latency_ms": percentiles(lat),
    }


def windows(
    history: Sequence[TradeRecord], faults: Sequence[FaultRecord], block_times_ms: Sequence[int]
) -> list[dict[str, Any]]:
    """One row per fault, then the healthy row."""
    receipts = sorted(t.final_us for t in history if t.final_us is not None)
    blocks = sorted(ms * 1000 for ms in block_times_ms)
    rows: list[dict[str, Any]] = []
    spans = []
    for f in faults:
        end = f.recovered_us or f.end_us
        spans.append((f.start_us, end))
        inside = [t for t in history if _overlaps(t, f.start_us, end)]
        rows.append(
            {
                "fault": f"{f.kind} {f.nodes}",
                "leader_hit": f.leader_at_start in f.nodes,
                "held_s": round((f.end_us - f.start_us) / 1e6, 2),
                "recovered_s": round((f.recovered_us - f.end_us) / 1e6, 2)
                if f.recovered_us
                else None,
                "next_commit_after_start_s": {
                    "receipt": _next(receipts, f.start_us),
                    "block": _next(blocks, f.start_us),
                },
                "longest_stall_s": {
                    "receipt": _stall(receipts, f.start_us, end),
                    "block": _stall(blocks, f.start_us, end),
                },
                "next_commit_after_end_s": {
                    "receipt": _next(receipts, f.end_us),
                    "block": _next(blocks, f.end_us),
                },
                **_bucket(inside),
            }
        )
    healthy = [t for t in history if not any(_overlaps(t, a, b) for a, b in spans)]
    rows.append({"fault": "healthy", **_bucket(healthy)})
    return rows


def _f(x: float | None, width: int, digits: int = 1) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:>{width}.{digits}f}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a fixed-width table for the terminal; * marks a fault that hit the
    leader of the moment."""
    head = (
        f"{'fault':<26}{'held s':>7}{'stall: blocks s':>16}{'receipts s':>11}"
        f"{'heal>block s':>13}{'recov s':>8}"
        f"{'trades':>7}{'no out':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    )
    lines = [head]
    for r in rows:
        lat = r["latency_ms"]
        stall = r.get("longest_stall_s", {})
        end = r.get("next_commit_after_end_s", {}).get("block")
        name = ("* " if r.get("leader_hit") else "") + r["fault"]
        lines.append(
            f"{name:<26.25}{_f(r.get('held_s'), 7)}{_f(stall.get('block'), 16, 2)}"
            f"{_f(stall.get('receipt'), 11, 2)}{_f(end, 13, 2)}"
            f"{_f(r.get('recovered_s'), 8)}{r['trades']:>7}{r['no_outcome']:>7}"
            f"{_f(lat['p50'], 9)}{_f(lat['p90'], 9)}{_f(lat['p99'], 9)}{_f(lat['max'], 9)}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devtools.chaos.report", description="Print a chaos result file's table."
    )
    p.add_argument("result", type=Path, help="a result JSON written by make chaos")
    args = p.parse_args(argv)
    r = json.loads(args.result.read_text())
    history = [TradeRecord.from_json(t) for t in r["history"]]
    faults = [FaultRecord(**f) for f in r["faults_inflicted"]]
    print(table(windows(history, faults, r.get("block_times_ms", []))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
