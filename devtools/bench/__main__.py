"""``make bench``: settlement latency of a real cluster under open-loop DvP load.

Starts a fresh cluster in a temporary run directory (or uses the running cluster of
``--run-dir``), runs the load generator (``devtools/bench/load.py``) as a separate process,
then writes the result JSON, the raw record next to it and three PNG plots, and prints
the summary table (``devtools/bench/report.py`` says what each figure means).

``--sweep`` instead raises the rate step by step on one cluster until p99 passes 1 s or
trades fail, and reports the highest sustainable rate with its latencies.

``--check "p50<=6,p99<=20"`` (``make bench CHECK=...``) then compares the result with each
threshold (``devtools/bench/check.py``): exit 1 listing every missed one. A CHECK that does
not parse, or names an unknown metric, is a usage error (exit 2) before anything starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devtools.bench import check, report
from devtools.bench.load import SUBMIT_MODES
from devtools.bench.mixed import WORKLOADS
from devtools.cluster import node_states, start_cluster, stop_cluster
from devtools.netgen import NetSpec, default_quorum, free_port_base, generate
from node.config import PIPELINE_DEFAULT
from node.netconfig import Network, load_network

__all__ = ["main"]

SWEEP_P99_MAX_MS = 1_000.0  # a rate is sustainable while p99 stays at or under this
SWEEP_DELIVERED_MIN = 0.9  # ... and at least this fraction of the offered rate commits
SWEEP_STEPS_MAX = 30


@contextlib.contextmanager
def cluster(
    run_dir: Path | None, *, n: int, q: int | None, pipeline: bool = False
) -> Iterator[Network]:
    """The running cluster of ``run_dir``, or a fresh one of ``n`` validators and quorum
    ``q`` (default: the usual one for ``n``), stopped and deleted after. Keywords, not the
    caller's argparse namespace: `make outage` crashed on a missing ``pipeline`` attribute
    from session 13 to 35."""
    if run_dir is not None:
        net = load_network(run_dir)
        down = [s.node.name for s in node_states(net) if not s.up]
        if down:
            raise SystemExit(
                f"bench: {len(down)} validators of {run_dir} are down: "
                f"{', '.join(down[:5])} (start them with `make cluster`)"
            )
        print(f"bench: using the running cluster of {run_dir}: {net.n} validators, quorum {net.q}")
        yield net
        return
    q = default_quorum(n) if q is None else q
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        spec = NetSpec(n=n, q=q, port_base=free_port_base(n), pipeline=pipeline)
        net = generate(Path(tmp) / "run", spec)
        print(f"bench: starting {net.n} validators, quorum {net.q} ...", flush=True)
        t0 = time.monotonic()
        try:
            start_cluster(net)
            print(f"bench: cluster ready in {time.monotonic() - t0:.1f} s", flush=True)
            yield net
        finally:
            print(f"bench: stopped {stop_cluster(net)} validators")


def _cluster(args: argparse.Namespace) -> contextlib.AbstractContextManager[Network]:
    return cluster(args.run_dir, n=args.n, q=args.q, pipeline=args.pipeline)


def run_step(net: Network, rate: float, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One load-generator process at ``rate``; writes and returns the result."""
    raw_file = report.raw_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "devtools.bench.load", "--run-dir", str(net.run_dir),
        "--rate", str(rate), "--duration", str(args.duration), "--warmup", str(args.warmup),
        "--raw", str(raw_file), "--submit", args.submit, *_workload_args(args),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    raw = json.loads(raw_file.read_text())
    return report.write(raw, out)


def _workload_args(args: argparse.Namespace) -> list[str]:
    """The load generator's workload options (devtools/bench/mixed.py)."""
    return ["--workload", args.workload, "--fail-rate", str(args.fail_rate)]


def _bench(args: argparse.Namespace) -> int:
    with _cluster(args) as net:
        args.out = args.out or _default_out(net, "bench", args.rate)
        result = run_step(net, args.rate, args, args.out)
    print()
    print(report.table(result))
    print(
        f"\nwrote {args.out}, {report.raw_path(args.out).name} and the plots "
        f"{args.out.stem}-*.png next to it"
    )
    return checked(result, args.thresholds)


def checked(result: dict[str, Any], thresholds: list[check.Threshold]) -> int:
    """Print each threshold against the result; 1 (every miss listed on stderr) if any is
    missed, else 0."""
    if not thresholds:
        return 0
    print(f"\ncheck:\n{check.describe(result, thresholds)}")
    misses = check.missed(result, thresholds)
    if misses:
        print(f"bench: CHECK missed {len(misses)} of {len(thresholds)} thresholds:",
              file=sys.stderr)  # fmt: skip
        for line in misses:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"bench: CHECK met all {len(thresholds)} thresholds")
    return 0


def sustainable(result: dict[str, Any]) -> bool:
    """p99 (from the scheduled send) within SWEEP_P99_MAX_MS, nothing failed, and the
    ledger kept up with the rate."""
    p99 = result["latency_ms"]["p99"]
    rate = result["config"]["rate"]
    return (
        p99 is not None
        and p99 <= SWEEP_P99_MAX_MS
        and not result["failed_by_code"]
        and result["throughput_tps"] >= SWEEP_DELIVERED_MIN * rate
    )


def _sweep(args: argparse.Namespace) -> int:
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    rate = args.rate
    with _cluster(args) as net:
        args.out = args.out or _default_out(net, "sweep", args.rate)
        for k in range(min(args.steps, SWEEP_STEPS_MAX)):
            out = args.out.with_name(f"{args.out.stem}-step{k + 1:02d}-{rate:g}tps.json")
            print(f"\nsweep step {k + 1}: {rate:g} trades/s for {args.duration:g} s", flush=True)
            result = run_step(net, rate, args, out)
            lat = result["latency_ms"]
            ok = sustainable(result)
            steps.append({"rate": rate, "sustainable": ok, "result": out.name, **_brief(result)})
            print(
                f"sweep: {rate:g}/s -> {result['throughput_tps']:.1f}/s committed, p50 "
                f"{lat['p50']} ms, p99 {lat['p99']} ms, failed {result['failed_by_code'] or 0}"
                f" -> {'sustainable' if ok else 'NOT sustainable'}",
                flush=True,
            )
            if not ok:
                break
            best = {"rate": rate, **_brief(result)}
            rate = round(rate * args.factor, 1)
    summary = {
        "n": net.n,
        "q": net.q,
        "best": best,
        "steps": steps,
        "p99_max_ms": SWEEP_P99_MAX_MS,
        "delivered_min": SWEEP_DELIVERED_MIN,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{'rate/s':>8}{'tps':>9}{'p50 ms':>9}{'p99 ms':>9}{'crypto %':>10}  sustainable")
    for s in steps:
        frac = s["crypto_bound_fraction"]
        print(
            f"{s['rate']:>8g}{s['throughput_tps']:>9.1f}{_f(s['p50_ms'])}{_f(s['p99_ms'])}"
            f"{_f(None if frac is None else 100 * frac, 10)}  {'yes' if s['sustainable'] else 'no'}"
        )
    if best is None:
        print(f"\nno sustainable rate: even {args.rate:g}/s failed the criteria")
        return 1
    print(
        f"\nhighest sustainable rate: {best['rate']:g} trades/s (p50 {best['p50_ms']} ms, p99 "
        f"{best['p99_ms']} ms); wrote {args.out}"
    )
    return 0


def _default_out(net: Network, what: str, rate: float) -> Path:
    return Path("bench-out") / f"{what}-{net.n}-{net.q}-{rate:g}tps.json"


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    lat = result["latency_ms"]
    return {
        "throughput_tps": result["throughput_tps"],
        "p50_ms": lat["p50"],
        "p99_ms": lat["p99"],
        "failed_by_code": result["failed_by_code"],
        "crypto_bound_fraction": result["crypto_bound_fraction"],
        "cpu_us_per_trade_per_validator": result["cpu_us_per_trade_per_validator"],
    }


def _f(x: float | None, width: int = 9) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:>{width}.1f}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devtools.bench", description=__doc__.split("\n\n")[0].strip("`")
    )
    p.add_argument("--n", type=int, default=26, help="validators of a fresh cluster (26)")
    p.add_argument("--q", type=int, help="quorum (default 16 for 26, else the classic quorum)")
    p.add_argument("--run-dir", type=Path, help="use this running cluster instead of a fresh one")
    p.add_argument("--rate", type=float, default=50.0, help="trades/s offered (sweep: first)")
    p.add_argument("--duration", type=float, default=60.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds of load not counted")
    p.add_argument("--out", type=Path, help="result JSON (default bench-out/bench-N-Q-RATE.json)")
    p.add_argument(
        "--submit",
        choices=SUBMIT_MODES,
        default="stream",
        help="how the load generator submits: one SubmitStream per client "
        "(default) or unary Submit + WaitForFinality (as before issue 13)",
    )
    p.add_argument(
        "--pipeline",
        action=argparse.BooleanOptionalAction,
        default=PIPELINE_DEFAULT,
        help="a fresh cluster's validators propose on the prepare certificate, executing "
        f"its block speculatively (ADR 0012; default {'on' if PIPELINE_DEFAULT else 'off'})",
    )
    p.add_argument(
        "--check",
        metavar="THRESHOLDS",
        help='exit 1 unless the result meets each, e.g. "p50<=6,p99<=20" (ms from '
        f"the scheduled send); metrics: {', '.join(check.METRICS)}",
    )
    p.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="dvp",
        help="dvp: DvP trades (default); mixed: a FAIL_RATE share of under-funded pending "
        "trades, half funded later, and coupons (devtools/bench/mixed.py); repo: a 20%% share of "
        "repo round trips, open then close (devtools/bench/repo.py)",
    )
    p.add_argument("--fail-rate", type=float, default=0.02, help="mixed: that share (0.02)")
    p.add_argument("--sweep", action="store_true", help="raise the rate until p99 > 1 s or fails")
    p.add_argument("--factor", type=float, default=1.5, help="sweep: rate multiplier per step")
    p.add_argument("--steps", type=int, default=12, help=f"sweep: at most this many steps "
                   f"(<= {SWEEP_STEPS_MAX})")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.warmup < 0 or args.factor <= 1:
        p.error("need --rate > 0, --duration > 0, --warmup >= 0 and --factor > 1")
    if not 0 < args.fail_rate < 1:
        p.error("need 0 < --fail-rate < 1")
    args.thresholds = []
    if args.check is not None:
        if args.sweep:
            p.error("--check applies to one run, not to --sweep")
        try:
            args.thresholds = check.parse(args.check)
        except check.CheckSyntaxError as e:
            p.error(str(e))
    return _sweep(args) if args.sweep else _bench(args)


if __name__ == "__main__":
    raise SystemExit(main())
