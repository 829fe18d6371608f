"""``make bench CHECK=...``: the threshold parser, the check against a result, and the
command's usage errors and exit codes (no cluster: the result is built by hand)."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.bench import __main__ as bench
from devtools.bench import check
from devtools.bench.check import CheckSyntaxError, Threshold


def result(p50: float | None = 5.0, p99: float | None = 18.0, **over: Any) -> dict[str, Any]:
    lat = {"p50": p50, "p90": 9.0, "p99": p99, "p999": 30.0, "max": 41.0, "mean": 6.0}
    sent = {k: None if v is None else v / 2 for k, v in lat.items()}
    out = {
        "latency_ms": lat,
        "latency_sent_ms": sent,
        "throughput_tps": 99.5,
        "failed_by_code": {},
    }
    return out | over


def test_parse_reads_each_term_with_spaces_and_every_operator() -> None:
    got = check.parse(" p50<=6, p99 < 20.5,tps>=90 , sent_max>1,not_ok<=0")
    assert got == [
        Threshold("p50", "<=", 6.0),
        Threshold("p99", "<", 20.5),
        Threshold("tps", ">=", 90.0),
        Threshold("sent_max", ">", 1.0),
        Threshold("not_ok", "<=", 0.0),
    ]
    assert str(got[0]) == "p50 <= 6 ms" and str(got[2]) == "tps >= 90 trades/s"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "CHECK is empty"),
        ("p50", "is not METRIC OP NUMBER"),
        ("p50=6", "is not METRIC OP NUMBER"),
        ("p50<=", "is not METRIC OP NUMBER"),
        ("p50<=6ms", "is not METRIC OP NUMBER"),
        ("p50<=6,", "'' is not METRIC OP NUMBER"),
        ("p50<=-1", "is not METRIC OP NUMBER"),
        ("p50=<6", "is not METRIC OP NUMBER"),
        ("p42<=6", "unknown metric 'p42'; known: p50, p90, p99"),
        ("latency<=6", "unknown metric 'latency'"),
    ],
)
def test_parse_refuses_with_a_message_that_says_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(CheckSyntaxError) as e:
        check.parse(text)
    assert words in str(e.value)


def test_missed_lists_each_missed_threshold_and_only_those() -> None:
    thresholds = check.parse("p50<=6,p99<=20,sent_p99<=8,tps>=100,not_ok<=0")
    assert check.missed(result(), thresholds) == [
        "sent_p99 <= 8 ms: measured 9 ms",
        "tps >= 100 trades/s: measured 99.5 trades/s",
    ]
    assert check.missed(result(p50=6.0, p99=20.0), check.parse("p50<=6,p99<=20")) == []
    assert check.missed(result(p50=6.0), check.parse("p50<6")) == ["p50 < 6 ms: measured 6 ms"]
    failed = result(failed_by_code={"FinalityTimeoutError": 2, "INSUFFICIENT_CASH": 1})
    assert check.missed(failed, check.parse("not_ok<=0")) == [
        "not_ok <= 0 trades: measured 3 trades"
    ]


def test_a_metric_without_a_value_misses() -> None:
    assert check.missed(result(p99=None), check.parse("p99<=20")) == [
        "p99 <= 20 ms: no value (no committed trade)"
    ]


def test_checked_exits_non_zero_listing_every_miss(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.checked(result(p50=7.5, p99=25.0), check.parse("p50<=6,p99<=20,tps>=90")) == 1
    out, err = capsys.readouterr()
    assert "missed 2 of 3 thresholds" in err
    assert "p50 <= 6 ms: measured 7.5 ms" in err and "p99 <= 20 ms: measured 25 ms" in err
    assert "tps" not in err and "ok    tps >= 90 trades/s" in out
    assert bench.checked(result(), check.parse("p50<=6,p99<=20")) == 0
    assert "met all 2 thresholds" in capsys.readouterr().out
    assert bench.checked(result(p50=100.0), []) == 0  # no CHECK: nothing to miss


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--check", "p42<=6"], "unknown metric 'p42'"),
        (["--check", "p50 6"], "is not METRIC OP NUMBER"),
        (["--check", "p50<=6", "--sweep"], "--check applies to one run"),
        (["--submit", "carrier-pigeon"], "invalid choice"),
    ],
)
def test_a_bad_check_is_a_usage_error_before_anything_starts(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        bench.main(["--run-dir", "/nonexistent", *argv])
    assert e.value.code == 2
    assert words in capsys.readouterr().err
