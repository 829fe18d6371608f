"""The benchmark report: exact figures from hand-built raw runs, the table, and the plots."""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib.font_manager  # noqa: F401  (see below)
import pytest

from client import BlockTiming, Endpoint, EndpointDown
from devtools.bench import load, report

# matplotlib builds its font cache on first use, running fc-list: on a machine without the
# cache (a fresh CI machine) that happened inside the first plotting test, and the isolation
# guard (tests/isolation.py) took it for a process the test started. Importing the font
# manager here builds the cache at collection, outside any test.

LO = 1_700_000_000_000_000  # window start, wall-clock microseconds
HI = LO + 10_000_000  # a 10 s window
S = 1_000_000  # one second in microseconds


def trade(
    sched: int, latency_ms: float | None, code: str = "OK", height: int | None = None
) -> dict[str, Any]:
    end = None if latency_ms is None else sched + int(latency_ms * 1000)
    return {"sched_us": sched, "start_us": sched, "end_us": end, "code": code, "height": height}


def raw_run(trades: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "config": {"n": 4, "q": 3, "rate": 100.0, "duration_s": 10.0, "warmup_s": 2.0}
        | {"git_commit": "abc123", "cores": 2, "sigs_per_trade": 2, "extra": "kept"},
        "window": {"start_us": LO, "end_us": HI},
        "trades": trades,
        "timeline": {},
        "validators": [],
        "rss_samples": [],
        "verify_us": 50.0,
    }
    return raw | extra


def thousand_trades() -> list[dict[str, Any]]:
    """1,000 counted trades, latencies 1..1000 ms (shuffled), 9 ms apart: all end in the window."""
    latencies = list(range(1, 1001))
    random.Random(7).shuffle(latencies)
    return [trade(LO + i * 9_000, lat) for i, lat in enumerate(latencies)]


def test_nearest_rank_percentiles_exclude_warm_up() -> None:
    warm_up = [trade(LO - 2 * S + i, 50_000.0) for i in range(100)]  # slow, before the window
    result = report.summarize(raw_run(warm_up + thousand_trades()))
    assert result["latency_ms"] == {
        "p50": 500.0,
        "p90": 900.0,
        "p99": 990.0,
        "p999": 999.0,
        "max": 1000.0,
        "mean": 500.5,
    }
    assert result["submitted"] == 1000
    assert result["committed"] == 1000
    assert result["failed_by_code"] == {}
    assert result["config"]["extra"] == "kept"


def test_percentile_helper_small_lists() -> None:
    assert report.percentile([], 50, 100) is None
    assert report.percentile([7.0], 999, 1000) == 7.0
    assert report.percentile([1.0, 2.0, 3.0, 4.0], 50, 100) == 2.0
    assert report.percentile([1.0, 2.0, 3.0, 4.0], 51, 100) == 3.0


def test_counting_refusals_failures_and_no_outcome() -> None:
    trades = [
        trade(LO - 1, 5.0),  # warm-up: not counted
        trade(LO, 10.0),
        trade(LO + S, 20.0),
        trade(LO + 2 * S, 30.0, "INSUFFICIENT_FUNDS"),  # refused: committed, and listed
        trade(LO + 3 * S, 8000.0, "FinalityTimeoutError"),
        trade(LO + 4 * S, 0.1, "GENERATOR_OVERLOAD"),
        trade(LO + 5 * S, 1.0, "UnavailableError"),
        trade(LO + 6 * S, None, "FinalityTimeoutError"),  # still in flight at the end
        trade(HI, 1.0),  # the window is half-open: not counted
    ]
    result = report.summarize(raw_run(trades))
    assert result["submitted"] == 7
    assert result["committed"] == 3
    assert result["failed_by_code"] == {
        "FinalityTimeoutError": 1,
        "GENERATOR_OVERLOAD": 1,
        "INSUFFICIENT_FUNDS": 1,
        "NO_OUTCOME": 1,
        "UnavailableError": 1,
    }
    # Latency is over committed trades only, refusals included (10, 20, 30 ms).
    assert result["latency_ms"]["p50"] == 20.0
    assert result["latency_ms"]["max"] == 30.0
    assert result["latency_ms"]["mean"] == 20.0


def test_throughput_counts_outcomes_inside_the_window() -> None:
    trades = [trade(LO - S, 1500.0)]  # sent in warm-up, final inside the window: counts
    trades += [trade(LO + i * 400_000, 100.0) for i in range(20)]  # 20 final inside
    trades += [trade(HI - 1000, 50.0)]  # sent inside, final after the window: does not count
    trades += [trade(LO + S, 10.0, "BusyError")]  # a failure never counts
    result = report.summarize(raw_run(trades))
    assert result["throughput_tps"] == 2.1  # 21 outcomes / 10 s
    assert result["committed"] == 21


def test_phase_medians_skip_missing_blocks_and_events() -> None:
    timeline = {
        "1": {"proposed_us": LO + 1000, "prepare_qc_us": LO + 3000}
        | {"commit_qc_us": LO + 5000, "applied_us": LO + 6000},
        "2": {"proposed_us": LO + 2000, "prepare_qc_us": LO + 5000}
        | {"commit_qc_us": LO + 9000, "applied_us": None},
    }
    trades = [
        trade(LO, 7.0, height=1),
        trade(LO, 10.0, height=2),
        trade(LO, 12.0, height=2),
        trade(LO, 99.0, height=3),  # no timeline entry
        trade(LO, 98.0, height=None),
        trade(LO, 97.0, "FinalityTimeoutError", height=1),  # not committed
    ]
    result = report.summarize(raw_run(trades, timeline=timeline))
    assert result["phases_samples"] == 3
    assert result["phases_ms"] == {
        "proposed": 2.0,  # 1, 2, 2 ms
        "first_qc": 5.0,  # 3, 5, 5
        "commit": 9.0,  # 5, 9, 9
        "applied": 6.0,  # only block 1 has it
        "notified": 10.0,  # 7, 10, 12
    }


def validators() -> list[dict[str, Any]]:
    cpu = [2.0, 3.0, 1.0, 2.0]  # 8 CPU seconds in all, 2 per validator
    return [
        {"name": f"node{i:02}", "cpu_s_start": 100.0 * i, "cpu_s_end": 100.0 * i + c}
        | {"rss_anon_mb_start": 90.0 + 10 * i, "rss_anon_mb_end": 100.0 + 10 * i}
        for i, c in enumerate(cpu)
    ]


def test_block_figures_from_the_timeline() -> None:
    """Three blocks proposed in the window, 10 ms apart (one before it, not counted), each
    step a known length; F is the validators' mean CPU in the window per block."""
    ms = 1000
    timeline = {
        "1": {"proposed_us": LO - 10 * ms},  # before the window
        **{
            str(h): {
                "proposed_us": LO + (h - 2) * 10 * ms,
                "prepare_qc_us": LO + (h - 2) * 10 * ms + 2 * ms,
                "commit_qc_us": LO + (h - 2) * 10 * ms + 5 * ms,
                "applied_us": LO + (h - 2) * 10 * ms + 6 * ms,
            }
            for h in (2, 3, 4)
        },
        "5": {"proposed_us": HI + 5 * ms},  # after: the last interval's end only
    }
    trades = [trade(LO + i * 1000, 1.0) for i in range(6)]
    vals = [
        {
            "name": f"node-0{i}",
            "cpu_s_start": 1.0,
            "cpu_s_end": 1.03,
            "rss_anon_mb_start": 30.0,
            "rss_anon_mb_end": 30.0,
        }
        for i in range(4)
    ]
    blocks = report.summarize(raw_run(trades, timeline=timeline, validators=vals))["blocks"]
    assert blocks["count"] == 3 and blocks["trades_per_block"] == 2.0
    assert (blocks["to_first_qc_ms"], blocks["to_commit_ms"], blocks["to_applied_ms"]) == (
        2.0,
        3.0,
        1.0,
    )
    assert blocks["applied_to_next_ms"] == 4.0  # 6 ms in, the next 10 ms in (h 4: 9.999 s)
    assert blocks["interval_ms"] == 10.0
    assert blocks["cpu_ms_per_block_per_validator"] == 10.0  # 30 ms of CPU each, 3 blocks
    text = report.table(report.summarize(raw_run(trades, timeline=timeline, validators=vals)))
    assert re.search(r"blocks proposed / trades per block +3 / 2\n", text)
    assert re.search(r"block interval \(median\) +10 ms\n", text)
    assert re.search(r"CPU per block per validator +10 ms\n", text)


def test_trades_that_missed_the_next_proposal_are_counted() -> None:
    """Blocks proposed at 0, 10 and 20 ms into the window. A trade sent at 1 ms that lands
    in the block of 10 ms made the next one; one sent at 2 ms that lands at 20 ms did not;
    one sent after the last proposal, or whose block has no timeline entry, is not
    counted either way."""
    ms = 1000
    timeline = {str(h): {"proposed_us": LO + (h - 1) * 10 * ms} for h in (1, 2, 3)}
    trades = [
        trade(LO + 1 * ms, 30.0, height=2),  # next block
        trade(LO + 2 * ms, 30.0, height=3),  # one later
        trade(LO + 3 * ms, 30.0, height=2),  # next block
        trade(LO + 4 * ms, 30.0, height=2),  # next block
        trade(LO + 25 * ms, 30.0, height=3),  # sent after block 3 was proposed: no answer
        trade(LO + 5 * ms, 30.0, height=9),  # no timeline entry
    ]
    blocks = report.summarize(raw_run(trades, timeline=timeline))["blocks"]
    assert blocks["later_block_share"] == 0.25


def test_notice_figures_from_each_validators_marks() -> None:
    """Two blocks in the window, applied by four validators 0, 4, 10 and 30 ms after the
    first; trades sent to validators 0 (block 1's proposer), 2 and 3 (one down for block
    2: no mark); a trade with no ``via`` (an old raw run) counts for nothing."""
    ms = 1000

    def block(at: int, proposer: int, applied: list[int]) -> dict[str, Any]:
        first = at + 5 * ms
        return {
            "proposed_us": at,
            "applied_us": first,
            "proposer": proposer,
            "applied_by_node_us": [first + a * ms if a >= 0 else 0 for a in applied],
        }

    timeline = {
        "1": block(LO, 0, [0, 4, 10, 30]),
        "2": block(LO + 20 * ms, 1, [30, 0, 10, -1]),
        "3": block(LO - 50 * ms, 0, [0, 99, 99, 99]),  # proposed before the window
    }
    trades = [
        trade(LO, 20.0, height=1) | {"via": 0},  # the proposer: applied first, 15 ms after
        trade(LO + ms, 40.0, height=1) | {"via": 2},  # applied 10 ms after the first
        trade(LO + 2 * ms, 60.0, height=2) | {"via": 3},  # its node has no mark
        trade(LO + 3 * ms, 50.0, height=1) | {"via": None},
    ]
    nt = report.summarize(raw_run(trades, timeline=timeline))["notice"]
    # block 1: marks 0, 4, 10, 30 -> median_low 4, last 30; block 2: 0, 10, 30 -> 10, 30
    assert nt["applied_spread_ms"] == {"median_node": 7.0, "last_node": 30.0}
    assert nt["via_applied_after_first_ms"] == 5.0  # 0 and 10
    # trade 0: applied at +5 ms of 20; trade 1: applied at +15 (10 after the first), end 41
    assert nt["via_applied_to_notified_ms"] == 20.5  # 15 and 26
    assert nt["via_proposer_share"] == round(1 / 3, 3)
    assert (nt["p50_via_proposer_ms"], nt["p50_via_other_ms"]) == (20.0, 50.0)
    text = report.table(report.summarize(raw_run(trades, timeline=timeline)))
    assert re.search(r"applied after the first: median / last node +7 / 30 ms\n", text)
    assert re.search(r"sent to the proposer: share, p50 / others' p50 +0\.333, 20 / 50 ms", text)


def test_notice_figures_are_absent_from_a_raw_run_without_per_validator_marks() -> None:
    timeline = {"1": {"proposed_us": LO, "applied_us": LO + 5000}}
    nt = report.summarize(raw_run([trade(LO, 20.0, height=1)], timeline=timeline))["notice"]
    assert nt["applied_spread_ms"] == {"median_node": None, "last_node": None}
    assert nt["via_applied_after_first_ms"] is None and nt["via_proposer_share"] is None


def test_cpu_and_crypto_bound_arithmetic() -> None:
    result = report.summarize(raw_run(thousand_trades(), validators=validators()))
    # 2e6 us per validator over the 1000 trades final in the window (all end before HI).
    assert result["throughput_tps"] == 100.0
    assert result["cpu_us_per_trade_per_validator"] == 2000.0
    assert result["cpu_cores_used"] == 0.8
    assert result["verify_us"] == 50.0
    assert result["verify_us_per_trade"] == 100.0  # 2 signatures x 50 us
    assert result["cpu_vs_verify"] == 20.0
    assert result["crypto_bound_tps"] == 5000.0  # 2 cores / (4 validators x 100 us)
    assert result["crypto_bound_fraction"] == 0.02
    assert result["rss_mb_per_validator"] == {"mean": 115.0, "max": 130.0, "growth_mean": 10.0}


def rss_samples(mb_per_trade: float) -> list[dict[str, Any]]:
    # Before the window the memory is all over the place: those samples must be ignored.
    samples = [{"t_us": LO - S, "committed": 0, "rss_anon_mb": [500.0, 10.0]}]
    for i in range(6):
        mb = 50.0 + mb_per_trade * 1000 * i
        samples.append({"t_us": LO + i * S, "committed": 1000 * i, "rss_anon_mb": [mb - 1, mb + 1]})
    return samples


def test_rss_slope_linear_growth_and_flat() -> None:
    grows = report.summarize(raw_run([], rss_samples=rss_samples(0.002)))
    assert grows["rss_kb_per_1k_trades"] == pytest.approx(2048.0)  # 2 MB per 1,000 trades
    flat = report.summarize(raw_run([], rss_samples=rss_samples(0.0)))
    assert flat["rss_kb_per_1k_trades"] == pytest.approx(0.0, abs=1e-6)


def test_rss_slope_needs_three_samples_and_spread() -> None:
    few = report.summarize(raw_run([], rss_samples=rss_samples(0.002)[:3]))  # 2 after start
    assert few["rss_kb_per_1k_trades"] is None
    same = [{"t_us": LO + i, "committed": 5, "rss_anon_mb": [float(i)]} for i in range(4)]
    assert report.summarize(raw_run([], rss_samples=same))["rss_kb_per_1k_trades"] is None


def test_no_samples_gives_none_and_serialises() -> None:
    result = report.summarize(raw_run([trade(LO, None, "FinalityTimeoutError")]))
    assert set(result["latency_ms"].values()) == {None}
    assert set(result["phases_ms"].values()) == {None}
    assert result["phases_samples"] == 0
    assert result["committed"] == 0
    assert result["throughput_tps"] == 0.0
    assert result["cpu_us_per_trade_per_validator"] is None
    assert result["cpu_cores_used"] is None
    assert result["rss_mb_per_validator"] == {"mean": None, "max": None, "growth_mean": None}
    assert result["rss_kb_per_1k_trades"] is None
    assert result["cpu_vs_verify"] is None
    assert result["crypto_bound_fraction"] == 0.0
    assert json.loads(json.dumps(result)) == result
    text = report.table(result)
    assert "latency p99.9" in text
    assert "NO_OUTCOME 1" in text
    assert " -" in text


def test_table_mentions_key_figures() -> None:
    trades = [*thousand_trades(), trade(LO + 5, 1.0, "INSUFFICIENT_FUNDS")]
    text = report.table(report.summarize(raw_run(trades, validators=validators())))
    for expected in [
        "4 / 3",  # n / q
        "100 trades/s",  # offered rate
        "abc123",
        "1001 / 1001",  # submitted / committed
        "INSUFFICIENT_FUNDS 1",
        "500 ms",  # p50
        "999 ms",  # p99.9
        "1,998 us",  # CPU per trade per validator: 2e6 us / 1001 trades
        "19.98x",  # CPU / verify cost
        "5,000 trades/s",  # crypto bound
    ]:
        assert expected in text, expected
    labels = [line.split("  ")[0] for line in text.splitlines()]
    assert len({len(line) - len(line.lstrip()) for line in labels}) == 1  # left-aligned


def assert_pngs(paths: list[Path], tmp_path: Path, stem: str) -> None:
    names = [f"{stem}-latency-cdf.png", f"{stem}-latency-time.png", f"{stem}-throughput.png"]
    assert [p.name for p in paths] == names
    for p in paths:
        assert p.parent == tmp_path
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size > 1000


def test_write_stores_result_and_three_plots(tmp_path: Path) -> None:
    trades = [trade(LO - S + i * 10_000, 5.0) for i in range(100)]  # warm-up
    trades += [*thousand_trades(), trade(LO + 3, 900.0, "BusyError"), trade(LO + 4, None)]
    raw = raw_run(trades, validators=validators(), rss_samples=rss_samples(0.001))
    out = tmp_path / "run.json"
    result = report.write(raw, out)
    assert json.loads(out.read_text()) == result == report.summarize(raw)
    assert_pngs(report.plot(raw, result, out), tmp_path, "run")
    assert report.raw_path(out) == tmp_path / "run.raw.json"


def test_plot_with_no_committed_trades(tmp_path: Path) -> None:
    raw = raw_run([trade(LO, 100.0, "UnavailableError"), trade(LO + S, None, "OK")])
    out = tmp_path / "empty.json"
    assert_pngs(report.plot(raw, report.summarize(raw), out), tmp_path, "empty")
    nothing = raw_run([])
    assert_pngs(report.plot(nothing, report.summarize(nothing), out), tmp_path, "empty")


def test_a_generator_behind_schedule_counts_its_delay_from_the_scheduled_send() -> None:
    """No coordinated omission: trades every 10 ms, the ledger answers 5 ms after each is
    sent, but from the 500th on the generator sends each 40 ms late. Latency from the
    scheduled send shows the 40 ms; from the actual send it does not."""
    trades = []
    for i in range(1000):
        sched = LO + i * 10_000
        lag = 0 if i < 500 else 40_000
        trades.append(
            {"sched_us": sched, "start_us": sched + lag, "end_us": sched + lag + 5_000}
            | {"code": "OK", "height": None}
        )
    result = report.summarize(raw_run(trades))
    assert result["latency_ms"]["p50"] == 5.0 and result["latency_ms"]["p99"] == 45.0
    assert result["latency_ms"]["max"] == 45.0
    assert result["latency_sent_ms"]["p50"] == result["latency_sent_ms"]["max"] == 5.0
    assert result["send_lag_ms"] == {"p50": 0.0, "p99": 40.0, "max": 40.0}
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in report.table(result).splitlines())
    assert rows["latency p99 from scheduled send"] == "45 ms"
    assert rows["latency p99 from actual send"] == "5 ms"
    assert rows["send lag p99 (behind schedule)"] == "40 ms"


@pytest.mark.parametrize(
    ("counter", "key", "label"),
    [
        ("view_changes", "views_timed_out_per_validator", "views timed out per validator"),
        (
            "commit_votes_relayed",
            "commit_votes_relayed_per_validator",
            "commit votes relayed per validator",
        ),
    ],
)
def test_a_consensus_counter_is_the_mean_per_validator_in_the_window(
    counter: str, key: str, label: str
) -> None:
    """``ledger_view_changes_total`` and ``ledger_commit_votes_relayed_total``, read at the
    window's start and end; raw files from before one was read have none (None, not
    zero)."""
    vals = [
        v | {f"{counter}_start": 5.0, f"{counter}_end": 5.0 + k} for k, v in enumerate(validators())
    ]
    result = report.summarize(raw_run(thousand_trades(), validators=vals))
    assert result[key] == 1.5  # 0 + 1 + 2 + 3 over 4
    assert re.search(rf"{label} +1.5\n", report.table(result))
    old = report.summarize(raw_run(thousand_trades(), validators=validators()))
    assert old[key] is None


def test_the_load_generators_timeline_keeps_each_validators_applied_mark_and_the_proposer() -> None:
    """The raw record the notice figures read: the earliest of each step, each validator's
    own applied time (0 for a node that is down), and the proposer as the validator with
    the earliest proposal mark; heights outside the run are left out."""
    answers = [
        [BlockTiming(1, 120, 0, 0, 400), BlockTiming(2, 0, 0, 0, 900)],
        [BlockTiming(1, 100, 200, 300, 350), BlockTiming(7, 1, 1, 1, 1)],
        EndpointDown(Endpoint("127.0.0.1:8402", "node-02"), "UNAVAILABLE: down"),
    ]

    class Client:
        async def timelines(self, first: int, last: int) -> list[Any]:
            assert (first, last) == (1, 2)
            return answers

    clients = SimpleNamespace(all=[Client()])
    out = asyncio.run(load._timeline(clients, {1, 2}))  # type: ignore[arg-type]
    assert out == {
        "1": {
            "applied_by_node_us": [400, 350, 0],
            "proposer": 1,
            "proposed_us": 100,
            "prepare_qc_us": 200,
            "commit_qc_us": 300,
            "applied_us": 350,
        },
        "2": {"applied_by_node_us": [900, 0, 0], "applied_us": 900},
    }
