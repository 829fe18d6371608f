"""The benchmark's overload figures (devtools/bench/report.py ``overload``): offered, accepted
and committed rates, refusals, and accepted trades that missed their deadline."""

from __future__ import annotations

from typing import Any

from devtools.bench.report import summarize

S = 1_000_000  # microseconds per second


def _trade(at_s: float, code: str, took_s: float | None) -> dict[str, Any]:
    sched = round(at_s * S)
    end = None if took_s is None else sched + round(took_s * S)
    return {"sched_us": sched, "start_us": sched, "end_us": end, "code": code, "height": None}


def _raw(deadline_s: float) -> dict[str, Any]:
    return {
        "config": {"deadline_s": deadline_s},
        "window": {"start_us": 0, "end_us": 10 * S},
        "trades": [
            _trade(1, "OK", 0.5),
            _trade(2, "OK", 1.0),
            _trade(3, "INSUFFICIENT_CASH", 0.5),  # a ledger refusal: accepted and settled
            _trade(4, "OverloadedError", 0.001),  # admission control turned it away
            _trade(5, "BusyError", 0.001),  # a full mempool did
            _trade(6, "FinalityTimeoutError", 5.0),  # taken, no outcome in time
            _trade(7, "OK", 3.0),  # settled after the deadline
            _trade(8, "OK", None),  # no outcome by the end of the run
            _trade(11, "OK", 0.5),  # after the window: not counted
        ],
    }


def test_offered_accepted_refused_and_missed_are_counted() -> None:
    over = summarize(_raw(deadline_s=2.0))["overload"]
    assert over == {
        "deadline_s": 2.0,
        "offered_tps": 0.8,
        "accepted_tps": 0.6,
        "refused": 2,
        "accepted_missed_deadline": 3,
    }


def test_negative_control_a_longer_deadline_is_missed_only_without_an_outcome() -> None:
    over = summarize(_raw(deadline_s=10.0))["overload"]
    assert over["accepted_missed_deadline"] == 2  # the timeout and the one with no outcome
