"""Turn a load generator run ("raw" dict) into the benchmark result, a text table and plots.

Which trades count: a trade is *counted* when its scheduled send time (``sched_us``) lies in
the measurement window ``[start_us, end_us)``; warm-up trades are sent but not counted. A trade
is *committed* when the client learned a final ledger outcome: ``OK`` or a ledger refusal code
(a refusal is a certified outcome too, so it is committed and also listed in
``failed_by_code``). Error names (``...Error``) and ``GENERATOR_OVERLOAD`` are failures, and a
trade still in flight at the end (no ``end_us``) is reported as ``NO_OUTCOME``.

The figures:

- ``latency_ms``: from the trade's *scheduled* send time (``sched_us``, on the open-loop
  schedule) until the client knows the final outcome, over counted committed trades;
  nearest-rank percentiles of the exact values (p50, p90, p99, p99.9), max and mean. When
  the generator falls behind its schedule, the delay counts: no coordinated omission.
- ``latency_sent_ms``: the same from when the trade was actually sent (the SDK's submit
  call, ``start_us``); what ``latency_ms`` measured before issue 13. ``send_lag_ms``:
  actual minus scheduled send time (p50, p99, max), how far the generator fell behind.
- ``throughput_tps``: committed trades whose outcome arrived inside the window, per second of
  window (whatever their send time, so the pipeline is measured in steady state).
- ``overload`` (admission control, issue 13 item 7): ``offered_tps`` (counted trades per
  second of window), ``accepted_tps`` (those the nodes did not turn away), ``refused``
  (trades that ended ``OverloadedError`` or ``BusyError``: refused, after the SDK's
  retries, before the node took them) and ``accepted_missed_deadline`` (taken, then no
  outcome within the generator's per-trade deadline ``deadline_s``, or one later than it
  after the actual send).
- ``phases_ms``: median time from the submit call (actual send) to the first time any
  validator proposed the trade's block (``proposed``), formed its first quorum certificate
  (``first_qc``), its commit certificate (``commit``), applied it (``applied``), and to the
  client's notification (``notified``). ``phases_samples`` counts the trades whose block
  has a timeline entry.
- ``blocks``: the blocks whose proposal any validator saw in the window (``count``),
  committed trades per block over the window (``trades_per_block``), and the medians of a
  block's steps, each from the first validator to reach it: proposal to first QC
  (``to_first_qc_ms``), to commit QC (``to_commit_ms``), to applied (``to_applied_ms``),
  from applied to the next height's proposal (``applied_to_next_ms``), and from one
  proposal to the next (``interval_ms``); ``cpu_ms_per_block_per_validator`` is the
  validators' mean CPU in the window per block (F, the cost a block puts on each
  validator: on a machine the validators saturate, the interval is about n * F / cores);
  ``later_block_share``: of the committed trades with a timeline entry, the share whose
  block was not the first proposed after their submit (the trade reached that proposer
  too late, and waited one more interval).
- ``notice`` (raw runs since session 32; None before): how long a block's outcome takes
  to reach its clients once some validator has applied it. ``applied_spread_ms``: over
  the blocks proposed in the window, the median time from the first validator's
  application to the median validator's (``median_node``) and to the last one's
  (``last_node``). Over the counted committed trades with their validator's marks:
  ``via_applied_after_first_ms``, the median time from the block's first application to
  the application at the validator the trade was sent to (the client's notice waits for
  that one); ``via_applied_to_notified_ms``, the median from there to the client's
  notification; ``via_proposer_share``, the share of trades sent to the validator that
  proposed their block, and ``p50_via_proposer_ms`` / ``p50_via_other_ms``, the latency
  p50 (from the scheduled send) of those trades and of the rest.
- ``cpu_us_per_trade_per_validator``: validator CPU spent in the window, averaged over
  validators, per trade committed in the window. Compare with ``verify_us_per_trade`` (the
  Ed25519 verify cost of one trade's signatures): ``cpu_vs_verify`` says how many times the bare
  signature checks a validator spends per trade. ``cpu_cores_used``: cores busy, all validators.
- ``rss_mb_per_validator``: anonymous resident memory at window end (mean, max) and its growth
  over the window; ``rss_kb_per_1k_trades``: least-squares slope of the mean validator RSS
  against trades committed, after warm-up, in KB (1 MB = 1024 KB) per 1,000 trades. A value
  near 0 means memory does not grow with the ledger's history.
- ``crypto_bound_tps``: the rate at which the host's cores would be saturated by signature
  verification alone (every one of ``n`` validators checks every signature of every trade);
  ``crypto_bound_fraction`` is the measured throughput as a fraction of it.

With ``WORKLOAD=mixed`` (``devtools/bench/mixed.py``) the result also has ``mixed``, over the
counted DvPs and the pending trades scheduled in the window (``mixed_summary``):

- ``settlement_rate``: trades whose final outcome is OK (a DvP's own result, a pending
  trade's final event), over all counted trades; ``fail_rate``: those whose final
  outcome is a ledger refusal or a pending trade's FAILED_DEADLINE / CANCELLED / MATURED;
  ``unresolved_rate``: the rest (no outcome, client errors). The three sum to 1.
- ``pending``: pending trades counted, funded and never funded, how many were recorded
  PENDING_SETTLEMENT first, and their final outcomes by code.
- ``recycle_settle_ms``: for funded trades that settled, from when their funding mint was
  final at the client to when the client knew the OK event, proven (p50, p99, max): the
  time recycling takes to settle a trade once it can.
- ``coupons``: coupons paid during the run, by code.

With ``WORKLOAD=repo`` (``devtools/bench/repo.py``) the result also has ``repo``, over the
round trips scheduled in the window (``repo_summary``): how many, their open and close
codes, and the latency in ms (p50, p90, p99, samples) of the ``open`` leg (sent to final),
the ``close`` leg (sent to final) and the ``round_trip`` (open sent to close final), each
over the legs that ended OK.

Plots (next to the result JSON): ``<stem>-latency-cdf.png`` (CDFs of counted committed
latencies, from the scheduled and from the actual send), ``<stem>-latency-time.png`` (every
trade's latency against its scheduled send time, both measures) and
``<stem>-throughput.png`` (trades sent and committed per second over the whole run).
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Percentile name -> fraction as (numerator, denominator), so ranks are exact integers.
PERCENTILES: dict[str, tuple[int, int]] = {
    "p50": (50, 100),
    "p90": (90, 100),
    "p99": (99, 100),
    "p999": (999, 1000),
}
PHASES: dict[str, str] = {
    "proposed": "proposed_us",
    "first_qc": "prepare_qc_us",
    "commit": "commit_qc_us",
    "applied": "applied_us",
    "notified": "end_us",
}
NO_OUTCOME = "NO_OUTCOME"
# Codes of trades the nodes turned away before taking them (admission control's
# OverloadedError is a BusyError; a full mempool is a BusyError too).
REFUSED_CODES = frozenset({"OverloadedError", "BusyError"})
MISSED_CODES = frozenset({"FinalityTimeoutError", NO_OUTCOME})  # taken, then no outcome in time
DEADLINE_DEFAULT_S = 30.0  # the load generator's per-trade deadline when the raw run omits it


def is_committed(trade: dict[str, Any]) -> bool:
    """True when the ledger gave a final outcome (OK or a refusal) and the client saw it."""
    code = str(trade["code"])
    failed = code.endswith("Error") or code == "GENERATOR_OVERLOAD"
    return trade.get("end_us") is not None and not failed


def percentile(ordered: list[float], num: int, den: int) -> float | None:
    """Nearest-rank percentile num/den of an already sorted list (None when empty)."""
    if not ordered:
        return None
    rank = max(1, -(-num * len(ordered) // den))  # ceil(num/den * N), at least 1
    return ordered[rank - 1]


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _window_mean(vals: list[dict[str, Any]], counter: str) -> float | None:
    """A counter's mean rise per validator over the window (None: not read in this run)."""
    rises = [v[f"{counter}_end"] - v[f"{counter}_start"] for v in vals if f"{counter}_end" in v]
    return _r(statistics.fmean(rises) if rises else None, 1)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys against xs (None with < 3 points or no spread in xs)."""
    if len(xs) < 3:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def _counted(raw: dict[str, Any]) -> list[dict[str, Any]]:
    lo, hi = raw["window"]["start_us"], raw["window"]["end_us"]
    return [t for t in raw["trades"] if lo <= t["sched_us"] < hi]


def _latencies_ms(trades: list[dict[str, Any]], since: str = "sched_us") -> list[float]:
    """Sorted latencies of the committed ``trades``, from ``since`` (``sched_us``: the
    scheduled send, or ``start_us``: the actual send) to the outcome."""
    return sorted((t["end_us"] - t[since]) / 1000 for t in trades if is_committed(t))


def _stats(lat: list[float]) -> dict[str, float | None]:
    """Percentiles, max and mean of sorted latencies, rounded."""
    out: dict[str, float | None] = {k: percentile(lat, *f) for k, f in PERCENTILES.items()}
    out["max"] = lat[-1] if lat else None
    out["mean"] = statistics.fmean(lat) if lat else None
    return {k: _r(v) for k, v in out.items()}


def overload(raw: dict[str, Any], counted: list[dict[str, Any]], window_s: float) -> dict[str, Any]:
    """Offered, accepted and committed rates, refusals, and accepted trades that missed their
    deadline (no outcome in time, or an outcome later than the deadline after the send)."""
    deadline_us = float(raw.get("config", {}).get("deadline_s", DEADLINE_DEFAULT_S)) * 1e6

    def code(t: dict[str, Any]) -> str:
        return NO_OUTCOME if t.get("end_us") is None else str(t["code"])

    refused = sum(1 for t in counted if code(t) in REFUSED_CODES)
    accepted = len(counted) - refused
    missed = sum(
        1
        for t in counted
        if code(t) in MISSED_CODES
        or (is_committed(t) and t["end_us"] - t["start_us"] > deadline_us)
    )
    per_s = 1 / window_s if window_s > 0 else 0.0
    return {
        "deadline_s": deadline_us / 1e6,
        "offered_tps": _r(len(counted) * per_s, 2),
        "accepted_tps": _r(accepted * per_s, 2),
        "refused": refused,
        "accepted_missed_deadline": missed,
    }


_BLOCK_STEPS = tuple(key for key in PHASES.values() if key != "end_us")  # a block's own


def _later_block_share(raw: dict[str, Any], timeline: dict[int, dict[str, Any]]) -> float | None:
    heights = sorted(h for h, e in timeline.items() if e.get("proposed_us") is not None)
    proposed = [timeline[h]["proposed_us"] for h in heights]
    later = total = 0
    for t in _counted(raw):
        h = t.get("height")
        if not is_committed(t) or h not in timeline or timeline[h].get("proposed_us") is None:
            continue
        first = bisect.bisect_right(proposed, t["start_us"])  # the first proposal after it
        if first == len(heights) or heights[first] > h:
            continue  # none after it in the timeline, or clocks disagree: no answer
        total += 1
        later += heights[first] < h
    return later / total if total else None


def blocks_summary(
    raw: dict[str, Any], committed_in_window: int, cpu_us_per_validator: float | None
) -> dict[str, Any]:
    """Per-block figures from the timeline (see ``blocks`` in the module docstring)."""
    lo, hi = raw["window"]["start_us"], raw["window"]["end_us"]
    timeline = {int(h): e for h, e in raw.get("timeline", {}).items()}
    heights = sorted(
        h
        for h, e in timeline.items()
        if e.get("proposed_us") is not None and lo <= e["proposed_us"] < hi
    )
    steps: dict[str, list[float]] = {
        k: [] for k in ("to_first_qc_ms", "to_commit_ms", "to_applied_ms", "applied_to_next_ms")
    }
    intervals: list[float] = []
    for h in heights:
        e = timeline[h]
        at = [e.get(k) for k in _BLOCK_STEPS]
        for name, a, b in zip(steps, at, at[1:], strict=False):
            if a is not None and b is not None:
                steps[name].append((b - a) / 1000)
        nxt = timeline.get(h + 1, {}).get("proposed_us")
        if nxt is not None:
            intervals.append((nxt - e["proposed_us"]) / 1000)
            if at[3] is not None:
                steps["applied_to_next_ms"].append((nxt - at[3]) / 1000)
    count = len(heights)
    return {
        "count": count,
        "trades_per_block": _r(committed_in_window / count if count else None, 2),
        **{k: _r(statistics.median(v) if v else None) for k, v in steps.items()},
        "interval_ms": _r(statistics.median(intervals) if intervals else None),
        "cpu_ms_per_block_per_validator": _r(
            cpu_us_per_validator / count / 1000 if cpu_us_per_validator and count else None
        ),
        "later_block_share": _r(_later_block_share(raw, timeline)),
    }


def _median(xs: list[float]) -> float | None:
    return _r(statistics.median(xs)) if xs else None


def notice_summary(raw: dict[str, Any]) -> dict[str, Any]:
    """From a block's first application to its clients' notices (``notice`` in the module
    docstring); every figure None for a raw run without per-validator marks."""
    lo, hi = raw["window"]["start_us"], raw["window"]["end_us"]
    timeline: dict[str, dict[str, Any]] = raw.get("timeline", {})
    to_median: list[float] = []
    to_last: list[float] = []
    for block in timeline.values():
        marks = sorted(x for x in block.get("applied_by_node_us", ()) if x)
        if len(marks) > 1 and lo <= block.get("proposed_us", lo - 1) < hi:
            to_median.append((statistics.median_low(marks) - marks[0]) / 1000)
            to_last.append((marks[-1] - marks[0]) / 1000)
    waits: list[float] = []
    to_client: list[float] = []
    via_proposer: list[float] = []
    via_other: list[float] = []
    for t in _counted(raw):
        e = timeline.get(str(t.get("height")))
        via = t.get("via")
        if not is_committed(t) or e is None or via is None:
            continue
        by = e.get("applied_by_node_us", ())
        mine = by[via] if 0 <= via < len(by) else 0
        if mine and e.get("applied_us"):
            waits.append((mine - e["applied_us"]) / 1000)
            to_client.append((t["end_us"] - mine) / 1000)
        if "proposer" in e:
            lat = (t["end_us"] - t["sched_us"]) / 1000
            (via_proposer if e["proposer"] == via else via_other).append(lat)
    sent = len(via_proposer) + len(via_other)
    return {
        "applied_spread_ms": {"median_node": _median(to_median), "last_node": _median(to_last)},
        "via_applied_after_first_ms": _median(waits),
        "via_applied_to_notified_ms": _median(to_client),
        "via_proposer_share": _r(len(via_proposer) / sent if sent else None),
        "p50_via_proposer_ms": _median(via_proposer),
        "p50_via_other_ms": _median(via_other),
    }


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """The benchmark result (JSON-serialisable) for one raw run; see the module docstring."""
    cfg: dict[str, Any] = dict(raw.get("config", {}))
    lo, hi = raw["window"]["start_us"], raw["window"]["end_us"]
    window_s = (hi - lo) / 1e6
    counted = _counted(raw)
    committed = [t for t in counted if is_committed(t)]
    lags = sorted((t["start_us"] - t["sched_us"]) / 1000 for t in counted if t["start_us"])

    failed = Counter(
        NO_OUTCOME if t.get("end_us") is None else str(t["code"])
        for t in counted
        if t.get("end_us") is None or t["code"] != "OK"
    )
    done_in_window = sum(1 for t in raw["trades"] if is_committed(t) and lo <= t["end_us"] < hi)

    timeline: dict[str, dict[str, Any]] = raw.get("timeline", {})
    phase_samples: dict[str, list[float]] = {p: [] for p in PHASES}
    with_timeline = 0
    for t in committed:
        entry = None if t.get("height") is None else timeline.get(str(t["height"]))
        if entry is None:
            continue
        with_timeline += 1
        for phase, key in PHASES.items():
            at = t["end_us"] if key == "end_us" else entry.get(key)
            if at is not None:
                phase_samples[phase].append((at - t["start_us"]) / 1000)

    vals: list[dict[str, Any]] = raw.get("validators", [])
    cpu_total = sum(v["cpu_s_end"] - v["cpu_s_start"] for v in vals)
    cpu_per_val = cpu_total * 1e6 / len(vals) if vals else None
    rss_end = [float(v["rss_anon_mb_end"]) for v in vals]
    growth = [v["rss_anon_mb_end"] - v["rss_anon_mb_start"] for v in vals]

    after = [s for s in raw.get("rss_samples", []) if s["t_us"] >= lo and s["rss_anon_mb"]]
    slope = _slope(
        [float(s["committed"]) for s in after], [statistics.fmean(s["rss_anon_mb"]) for s in after]
    )

    throughput = done_in_window / window_s if window_s > 0 else None
    verify_us = raw.get("verify_us")
    n, cores, sigs = cfg.get("n"), cfg.get("cores"), cfg.get("sigs_per_trade")
    verify_per_trade = sigs * verify_us if sigs and verify_us else None
    crypto_bound = (
        cores / (n * verify_per_trade * 1e-6) if cores and n and verify_per_trade else None
    )
    cpu_per_trade = _ratio(cpu_per_val, done_in_window)
    return {
        "config": cfg,
        "latency_ms": _stats(_latencies_ms(counted)),
        "latency_sent_ms": _stats(_latencies_ms(counted, "start_us")),
        "send_lag_ms": {
            "p50": _r(percentile(lags, 50, 100)),
            "p99": _r(percentile(lags, 99, 100)),
            "max": _r(lags[-1] if lags else None),
        },
        "submitted": len(counted),
        "committed": len(committed),
        "failed_by_code": dict(sorted(failed.items())),
        "throughput_tps": _r(throughput, 2),
        "overload": overload(raw, counted, window_s),
        "phases_ms": {
            p: _r(statistics.median(xs)) if xs else None for p, xs in phase_samples.items()
        },
        "phases_samples": with_timeline,
        "blocks": blocks_summary(raw, done_in_window, cpu_per_val),
        "notice": notice_summary(raw),
        # Views left on a timeout certificate (raw files before session 16: None), and
        # COMMIT votes relayed to the next leader, its certificate late (before 17: None).
        "views_timed_out_per_validator": _window_mean(vals, "view_changes"),
        "commit_votes_relayed_per_validator": _window_mean(vals, "commit_votes_relayed"),
        "cpu_us_per_trade_per_validator": _r(cpu_per_trade, 1),
        "cpu_cores_used": _r(_ratio(cpu_total, window_s) if vals else None),
        "rss_mb_per_validator": {
            "mean": _r(statistics.fmean(rss_end) if vals else None, 2),
            "max": _r(max(rss_end) if vals else None, 2),
            "growth_mean": _r(statistics.fmean(growth) if vals else None, 2),
        },
        "rss_kb_per_1k_trades": _r(None if slope is None else slope * 1024 * 1000, 2),
        "verify_us": _r(verify_us, 2),
        "verify_us_per_trade": _r(verify_per_trade, 2),
        "crypto_bound_tps": _r(crypto_bound, 1),
        "crypto_bound_fraction": _r(_ratio(throughput, crypto_bound), 4),
        "cpu_vs_verify": _r(_ratio(cpu_per_trade, verify_per_trade), 2),
        **({"mixed": m} if (m := mixed_summary(raw, counted)) is not None else {}),
        **({"repo": r} if (r := repo_summary(raw)) is not None else {}),
    }


def _is_ledger_fail(code: str) -> bool:
    """A final outcome the ledger decided against the trade (not a client-side error)."""
    return code not in ("OK", NO_OUTCOME, "GENERATOR_OVERLOAD") and not code.endswith("Error")


def mixed_summary(raw: dict[str, Any], counted: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ``mixed`` figures (module docstring); None for the plain DvP load."""
    mixed = raw.get("mixed")
    if mixed is None:
        return None
    lo, hi = raw["window"]["start_us"], raw["window"]["end_us"]
    pend = [p for p in mixed["pending"] if lo <= p["sched_us"] < hi]
    codes = [str(t["code"]) if t.get("end_us") is not None else NO_OUTCOME for t in counted]
    codes += [str(p["code"]) if p.get("end_us") is not None else NO_OUTCOME for p in pend]
    total = len(codes)
    ok = sum(1 for c in codes if c == "OK")
    fails = sum(1 for c in codes if _is_ledger_fail(c))
    settle = sorted(
        (p["end_us"] - p["funded_us"]) / 1000
        for p in pend
        if p["code"] == "OK" and p.get("funded_us") is not None and p.get("end_us") is not None
    )
    return {
        "trades": total,
        "settlement_rate": _r(_ratio(ok, total), 4),
        "fail_rate": _r(_ratio(fails, total), 4),
        "unresolved_rate": _r(_ratio(total - ok - fails, total), 4),
        "pending": {
            "counted": len(pend),
            "funded": sum(1 for p in pend if p["funded"]),
            "never_funded": sum(1 for p in pend if not p["funded"]),
            "recorded_pending": sum(1 for p in pend if p["first_code"] == "PENDING_SETTLEMENT"),
            "by_code": dict(sorted(Counter(str(p["code"]) for p in pend).items())),
        },
        "recycle_settle_ms": {
            "p50": _r(percentile(settle, 50, 100)),
            "p99": _r(percentile(settle, 99, 100)),
            "max": _r(settle[-1] if settle else None),
            "samples": len(settle),
        },
        "coupons": dict(sorted(Counter(str(c.get("code")) for c in mixed["coupons"]).items())),
    }


def repo_summary(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The ``repo`` figures (module docstring); None without repo round trips."""
    repo = raw.get("repo")
    if repo is None:
        return None
    lo, hi = raw["window"]["start_us"], raw["window"]["end_us"]
    trips = [t for t in repo["trips"] if lo <= t["sched_us"] < hi]
    opened = [t for t in trips if t["open_code"] == "OK" and t["open_end_us"] is not None]
    closed = [t for t in opened if t["close_code"] == "OK" and t["close_end_us"] is not None]
    return {
        "trips": len(trips),
        "open_codes": dict(sorted(Counter(str(t["open_code"]) for t in trips).items())),
        "close_codes": dict(sorted(Counter(str(t["close_code"]) for t in opened).items())),
        "open": _quantiles([t["open_end_us"] - t["open_start_us"] for t in opened]),
        "close": _quantiles([t["close_end_us"] - t["close_start_us"] for t in closed]),
        "round_trip": _quantiles([t["close_end_us"] - t["open_start_us"] for t in closed]),
    }


def _quantiles(us: list[int]) -> dict[str, Any]:
    """p50, p90, p99 (ms) of microsecond durations, and how many."""
    ms = sorted(u / 1000 for u in us)
    q = {f"p{p}": _r(percentile(ms, p, 100)) for p in (50, 90, 99)}
    return {**q, "samples": len(ms)}


def _repo_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    m = result.get("repo")
    if m is None:
        return []

    def leg(q: dict[str, Any]) -> str:
        return f"{_fmt(q['p50'])} / {_fmt(q['p90'])} / {_fmt(q['p99'])} ms ({q['samples']})"

    return [
        ("workload", f"repo, {m['trips']} round trips in the window"),
        ("repo open codes", ", ".join(f"{k} {v}" for k, v in m["open_codes"].items()) or "none"),
        ("repo close codes", ", ".join(f"{k} {v}" for k, v in m["close_codes"].items()) or "none"),
        ("repo open p50 / p90 / p99", leg(m["open"])),
        ("repo close p50 / p90 / p99", leg(m["close"])),
        ("repo round trip p50 / p90 / p99", leg(m["round_trip"])),
    ]


def _mixed_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    m = result.get("mixed")
    if m is None:
        return []
    pend, rs = m["pending"], m["recycle_settle_ms"]
    by_code = ", ".join(f"{k} {v}" for k, v in pend["by_code"].items()) or "none"
    return [
        ("workload", f"mixed, fail rate {_fmt(result['config'].get('fail_rate'))}"),
        ("settlement / fail / unresolved rate",
         f"{_fmt(m['settlement_rate'])} / {_fmt(m['fail_rate'])} / {_fmt(m['unresolved_rate'])}"),
        ("pending trades (funded / never)",
         f"{pend['counted']} ({pend['funded']} / {pend['never_funded']}), "
         f"{pend['recorded_pending']} recorded PENDING_SETTLEMENT"),
        ("pending outcomes", by_code),
        ("settle after funding p50 / p99 / max",
         f"{_fmt(rs['p50'])} / {_fmt(rs['p99'])} / {_fmt(rs['max'])} ms ({rs['samples']})"),
        ("coupons", ", ".join(f"{k} {v}" for k, v in m["coupons"].items()) or "none"),
    ]  # fmt: skip


def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.3f}".rstrip("0").rstrip(".") + unit
    return f"{x}{unit}"


def table(result: dict[str, Any]) -> str:
    """A plain-text, two-column summary of a result from summarize()."""
    cfg, ph = result["config"], result["phases_ms"]
    lat, sent, lag = result["latency_ms"], result["latency_sent_ms"], result["send_lag_ms"]
    rss, over, bl = result["rss_mb_per_validator"], result["overload"], result["blocks"]
    failed = ", ".join(f"{k} {v}" for k, v in result["failed_by_code"].items()) or "none"
    rows = [
        ("validators n / quorum q", f"{_fmt(cfg.get('n'))} / {_fmt(cfg.get('q'))}"),
        ("offered rate", _fmt(cfg.get("rate"), " trades/s")),
        (
            "duration (+ warm-up)",
            f"{_fmt(cfg.get('duration_s'))} s (+{_fmt(cfg.get('warmup_s'))} s)",
        ),
        ("git commit", _fmt(cfg.get("git_commit"))),
        ("submitted through", _fmt(cfg.get("submit"))),
        ("submitted / committed", f"{result['submitted']} / {result['committed']}"),
        ("not OK, by code", failed),
        ("throughput", _fmt(result["throughput_tps"], " trades/s")),
        (
            "offered / accepted / committed",
            f"{_fmt(over['offered_tps'])} / {_fmt(over['accepted_tps'])} / "
            f"{_fmt(result['throughput_tps'])} trades/s",
        ),
        ("refused (overloaded or busy)", _fmt(over["refused"])),
        (
            f"accepted, missed the {_fmt(over['deadline_s'])} s deadline",
            _fmt(over["accepted_missed_deadline"]),
        ),
        *[(f"latency {_name(k)} from scheduled send", _fmt(v, " ms")) for k, v in lat.items()],
        *[(f"latency {_name(k)} from actual send", _fmt(v, " ms")) for k, v in sent.items()],
        *[(f"send lag {_name(k)} (behind schedule)", _fmt(v, " ms")) for k, v in lag.items()],
        *[(f"phase {p} (median)", _fmt(ph[p], " ms")) for p in PHASES],
        ("phase samples", _fmt(result["phases_samples"])),
        (
            "blocks proposed / trades per block",
            f"{_fmt(bl['count'])} / {_fmt(bl['trades_per_block'])}",
        ),
        (
            "block steps (medians)",
            f"first QC {_fmt(bl['to_first_qc_ms'])}, commit QC {_fmt(bl['to_commit_ms'])}, "
            f"applied {_fmt(bl['to_applied_ms'])}, next proposal "
            f"{_fmt(bl['applied_to_next_ms'])} ms",
        ),
        ("block interval (median)", _fmt(bl["interval_ms"], " ms")),
        *_notice_rows(result.get("notice")),
        ("views timed out per validator", _fmt(result["views_timed_out_per_validator"])),
        (
            "commit votes relayed per validator",
            _fmt(result["commit_votes_relayed_per_validator"]),
        ),
        ("trades in a later block than the next", _fmt(bl["later_block_share"])),
        ("CPU per block per validator", _fmt(bl["cpu_ms_per_block_per_validator"], " ms")),
        ("CPU per trade per validator", _fmt(result["cpu_us_per_trade_per_validator"], " us")),
        ("verify cost per trade", _fmt(result["verify_us_per_trade"], " us")),
        ("CPU / verify cost", _fmt(result["cpu_vs_verify"], "x")),
        ("CPU cores used (all)", _fmt(result["cpu_cores_used"])),
        ("RSS per validator mean/max", f"{_fmt(rss['mean'])} / {_fmt(rss['max'])} MB"),
        ("RSS growth in window (mean)", _fmt(rss["growth_mean"], " MB")),
        ("RSS per 1k trades", _fmt(result["rss_kb_per_1k_trades"], " KB")),
        ("Ed25519 verify", _fmt(result["verify_us"], " us")),
        ("crypto bound", _fmt(result["crypto_bound_tps"], " trades/s")),
        ("fraction of crypto bound", _fmt(result["crypto_bound_fraction"])),
        *_mixed_rows(result),
        *_repo_rows(result),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _notice_rows(nt: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The ``notice`` figures (absent from results summarized before session 32)."""
    if nt is None:
        return []
    spread = nt["applied_spread_ms"]
    return [
        (
            "applied after the first: median / last node",
            f"{_fmt(spread['median_node'])} / {_fmt(spread['last_node'])} ms",
        ),
        (
            "trade's node applied after the first",
            _fmt(nt["via_applied_after_first_ms"], " ms"),
        ),
        ("trade's node applied to notified", _fmt(nt["via_applied_to_notified_ms"], " ms")),
        (
            "sent to the proposer: share, p50 / others' p50",
            f"{_fmt(nt['via_proposer_share'])}, {_fmt(nt['p50_via_proposer_ms'])} / "
            f"{_fmt(nt['p50_via_other_ms'])} ms",
        ),
    ]


def _name(key: str) -> str:
    return key.replace("p999", "p99.9")


def _draw_cdf(ax: Axes, raw: dict[str, Any], result: dict[str, Any], t0: int) -> bool:
    """CDFs of counted committed latencies from the scheduled and the actual send, log x,
    p50 and p99 of each marked."""
    counted = _counted(raw)
    curves = (("from scheduled send", "sched_us", "latency_ms", "C0"),
              ("from actual send", "start_us", "latency_sent_ms", "C1"))  # fmt: skip
    any_lat = False
    for label, since, key, color in curves:
        lat = _latencies_ms(counted, since)
        if not lat:
            continue
        any_lat = True
        ax.step(lat, [(i + 1) / len(lat) for i in range(len(lat))], where="post",
                color=color, label=label)  # fmt: skip
        for name in ("p50", "p99"):
            x = result[key][name]
            ax.axvline(x, color=color, linestyle="--", linewidth=1)
            ax.annotate(f" {name} {x:.4g} ms", (x, 0.02), rotation=90, ha="right", va="bottom",
                        color=color)  # fmt: skip
    if any_lat:
        ax.set_xscale("log")
        ax.legend(loc="lower right")
    ax.set(xlabel="latency (ms)", ylabel="fraction of trades", title="Latency CDF")
    return any_lat


def _draw_latency_time(ax: Axes, raw: dict[str, Any], result: dict[str, Any], t0: int) -> bool:
    """Every trade's latency against its scheduled send time, from the scheduled send and
    (grey) from the actual send; failures as crosses, no outcome on top."""
    styles = {"OK": ("C0", ".", 4), "refused": ("C1", "o", 10), "failed": ("red", "x", 16)}
    styles["OK, from actual send"] = ("grey", ".", 2)
    points: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in styles}
    pending: list[float] = []
    for t in raw["trades"]:
        sched_s = (t["sched_us"] - t0) / 1e6
        if t.get("end_us") is None:
            pending.append(sched_s)
            continue
        kind = "OK" if t["code"] == "OK" else "refused" if is_committed(t) else "failed"
        points[kind][0].append(sched_s)
        points[kind][1].append((t["end_us"] - t["sched_us"]) / 1000)
        if kind == "OK":
            points["OK, from actual send"][0].append(sched_s)
            points["OK, from actual send"][1].append((t["end_us"] - t["start_us"]) / 1000)
    for kind, (xs, ys) in points.items():
        if xs:
            color, marker, size = styles[kind]
            label = "OK, from scheduled send" if kind == "OK" else kind
            ax.scatter(xs, ys, s=size, c=color, marker=marker, label=label)
    if pending:  # no latency to show: mark them along the top edge
        top = ax.get_xaxis_transform()
        ax.scatter(pending, [0.98] * len(pending), c="black", marker="v", s=16, transform=top)
        ax.scatter([], [], c="black", marker="v", s=16, label=NO_OUTCOME)
    ax.set(xlabel="scheduled send time (s)", ylabel="latency (ms)", title="Latency over time")
    return bool(points["OK"][0] or points["refused"][0])


def _draw_throughput(ax: Axes, raw: dict[str, Any], result: dict[str, Any], t0: int) -> bool:
    """Trades sent (by submit time) and committed (by outcome time) per second."""
    trades = raw["trades"]
    sent = Counter(int((t["start_us"] - t0) // 1_000_000) for t in trades if t["start_us"])
    done = Counter(int((t["end_us"] - t0) // 1_000_000) for t in trades if is_committed(t))
    secs = range(max([*sent, *done, (raw["window"]["end_us"] - t0) // 1_000_000]) + 1)
    ax.stairs([sent[s] for s in secs], range(len(secs) + 1), label="sent")
    ax.stairs([done[s] for s in secs], range(len(secs) + 1), label="committed")
    ax.set(xlabel="time (s)", ylabel="trades per second", title="Throughput")
    return bool(done)


def plot(raw: dict[str, Any], result: dict[str, Any], out_json: Path) -> list[Path]:
    """Draw the three PNGs next to out_json (see the module docstring); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = result["config"]
    suffix = f", n={cfg.get('n')} q={cfg.get('q')}, {_fmt(cfg.get('rate'))} trades/s"
    start_us, end_us = raw["window"]["start_us"], raw["window"]["end_us"]
    t0 = min([t["sched_us"] for t in raw["trades"]] + [start_us])
    figures = [("latency-cdf", _draw_cdf, False)]
    figures += [("latency-time", _draw_latency_time, True), ("throughput", _draw_throughput, True)]
    paths = []
    for name, draw, over_time in figures:
        path = out_json.with_name(f"{out_json.stem}-{name}.png")
        fig, ax = plt.subplots(figsize=(10, 5))
        try:
            if over_time:
                ax.axvspan(0, (start_us - t0) / 1e6, color="grey", alpha=0.2, label="warm-up")
                ax.axvline((end_us - t0) / 1e6, color="grey", linestyle="--", label="window end")
            if not draw(ax, raw, result, t0):
                ax.text(0.5, 0.5, "no committed trades", ha="center", transform=ax.transAxes)
            ax.set_title(ax.get_title() + suffix)
            if over_time:
                ax.legend(loc="best")
            fig.savefig(path, dpi=100)
        finally:
            plt.close(fig)
        paths.append(path)
    return paths


def raw_path(out_json: Path) -> Path:
    """Where the caller stores the raw run next to the result: ``x.json`` -> ``x.raw.json``."""
    return out_json.with_suffix(".raw.json")


def write(raw: dict[str, Any], out_json: Path) -> dict[str, Any]:
    """Summarize raw, write the result JSON (indent 2) and the plots; returns the result."""
    result = summarize(raw)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    plot(raw, result, out_json)
    return result
