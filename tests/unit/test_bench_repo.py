"""The ``repo`` figures of the bench report (devtools/bench/report.py ``repo_summary``)."""

from __future__ import annotations

from typing import Any

from devtools.bench.report import repo_summary


def _trip(sched: int, open_ms: int, close_ms: int | None, close_code: str = "OK") -> dict[str, Any]:
    start = sched
    opened = start + open_ms * 1000
    closed = None if close_ms is None else opened + 5 + close_ms * 1000
    return {
        "sched_us": sched, "open_start_us": start, "open_end_us": opened,
        "close_start_us": opened + 5, "close_end_us": closed, "open_code": "OK",
        "close_code": close_code if close_ms is not None else "NO_OUTCOME",
    }  # fmt: skip


def test_both_legs_and_the_round_trip_over_the_window_only() -> None:
    trips = [_trip(1_000_000 + i, 10 + i, 20 + i) for i in range(10)]
    trips.append(_trip(0, 999, 999))  # scheduled before the window: not counted
    trips.append(_trip(1_000_100, 1, None))  # its close never ended: open only
    raw = {"window": {"start_us": 1_000_000, "end_us": 2_000_000}, "repo": {"trips": trips}}
    m = repo_summary(raw)
    assert m is not None
    assert m["trips"] == 11 and m["open_codes"] == {"OK": 11}
    assert m["close_codes"] == {"NO_OUTCOME": 1, "OK": 10}
    assert m["open"]["samples"] == 11 and m["close"]["samples"] == 10
    assert (m["close"]["p50"], m["close"]["p99"]) == (24, 29)
    assert m["open"]["p99"] == 19 and m["open"]["p50"] == 14
    assert m["round_trip"]["p50"] == 38.005  # the 5th of 30 + 2i ms and the 5 us gap


def test_no_repo_section_without_the_workload() -> None:
    assert repo_summary({"window": {"start_us": 0, "end_us": 1}}) is None
