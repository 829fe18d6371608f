"""``make bench WORKLOAD=mixed``: the report's ``mixed`` figures from hand-built raw runs
(settlement, fail and unresolved rates, pending outcomes, time to settle after funding,
coupons), the table rows, and their absence for the plain DvP load."""

from __future__ import annotations

from typing import Any

from devtools.bench import report
from tests.unit.test_bench_report import LO, S, raw_run, thousand_trades, trade


def pending(
    sched: int,
    *,
    funded: bool,
    code: str,
    settle_ms: float | None = None,
    first: str = "PENDING_SETTLEMENT",
) -> dict[str, Any]:
    """A pending trade: recorded 100 ms after its send, funded 200 ms later, final after
    ``settle_ms`` more (funded) or at its 3 s deadline (never funded)."""
    funded_us = sched + 300_000 if funded else None
    end = (
        None
        if code == "NO_OUTCOME"
        else (funded_us + int((settle_ms or 0) * 1000) if funded_us else sched + 3 * S)
    )
    return {
        "sched_us": sched,
        "funded": funded,
        "start_us": sched,
        "pending_us": sched + 100_000,
        "funded_us": funded_us,
        "end_us": end,
        "first_code": first,
        "code": code,
    }


def mixed_run(pend: list[dict[str, Any]], dvps: list[dict[str, Any]]) -> dict[str, Any]:
    raw = raw_run(dvps, mixed={"pending": pend, "coupons": []})
    raw["config"] |= {"workload": "mixed", "fail_rate": 0.02}
    return raw


def test_rates_count_dvps_and_pending_trades_and_sum_to_one() -> None:
    dvps = [
        *thousand_trades()[:96],
        trade(LO + 5 * S, 10.0, "INSUFFICIENT_CASH"),
        trade(LO + 6 * S, None, "NO_OUTCOME"),
    ]
    pend = [
        pending(LO + 1 * S, funded=True, code="OK", settle_ms=40.0),
        pending(LO + 2 * S, funded=False, code="FAILED_DEADLINE"),
        pending(LO + 3 * S, funded=True, code="FinalityTimeoutError"),
        pending(LO - 1 * S, funded=False, code="FAILED_DEADLINE"),  # warm-up: not counted
    ]
    m = report.summarize(mixed_run(pend, dvps))["mixed"]
    assert m["trades"] == 98 + 3
    assert m["settlement_rate"] == round(97 / 101, 4)  # 96 DvPs and the funded trade
    assert m["fail_rate"] == round(2 / 101, 4)  # the refused DvP and FAILED_DEADLINE
    assert m["unresolved_rate"] == round(2 / 101, 4)  # no outcome, a client error
    assert m["pending"] == {
        "counted": 3,
        "funded": 2,
        "never_funded": 1,
        "recorded_pending": 3,
        "by_code": {"FAILED_DEADLINE": 1, "FinalityTimeoutError": 1, "OK": 1},
    }
    # Only the funded trade that settled has a time to settle; the one that timed out not.
    assert m["recycle_settle_ms"] == {"p50": 40.0, "p99": 40.0, "max": 40.0, "samples": 1}


def test_time_to_settle_runs_from_the_funding_to_the_proven_event() -> None:
    pend = [
        pending(LO + i * 50_000, funded=True, code="OK", settle_ms=float(ms))
        for i, ms in enumerate(range(1, 101))
    ]
    pend += [pending(LO + 9 * S, funded=False, code="FAILED_DEADLINE")]  # not a settlement
    rs = report.summarize(mixed_run(pend, thousand_trades()))["mixed"]["recycle_settle_ms"]
    assert rs == {"p50": 50.0, "p99": 99.0, "max": 100.0, "samples": 100}


def test_a_trade_refused_at_once_is_not_counted_as_recorded_pending() -> None:
    pend = [pending(LO + S, funded=False, code="PENDING_FULL", first="PENDING_FULL")]
    m = report.summarize(mixed_run(pend, []))["mixed"]
    assert m["pending"]["recorded_pending"] == 0
    assert m["fail_rate"] == 1.0


def test_coupons_are_counted_by_code() -> None:
    raw = mixed_run([], thousand_trades())
    raw["mixed"]["coupons"] = [
        {"sched_us": LO, "period": 3, "code": "OK"},
        {"sched_us": LO + S, "period": 4, "code": "OK"},
        {"sched_us": LO + 2 * S, "period": 4, "code": "ALREADY_PAID"},
    ]
    assert report.summarize(raw)["mixed"]["coupons"] == {"ALREADY_PAID": 1, "OK": 2}


def test_the_table_shows_the_mixed_rows_and_the_dvp_load_has_none() -> None:
    pend = [pending(LO + S, funded=True, code="OK", settle_ms=12.0)]
    text = report.table(report.summarize(mixed_run(pend, thousand_trades())))
    assert "settlement / fail / unresolved rate" in text
    assert "12 / 12 / 12 ms (1)" in text
    plain = report.summarize(raw_run(thousand_trades()))
    assert "mixed" not in plain
    assert "settlement / fail" not in report.table(plain)
