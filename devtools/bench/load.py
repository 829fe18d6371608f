"""The load generator of ``make bench``: its own process, driving DvP trades through the SDK.

``python -m devtools.bench.load --run-dir DIR --rate R --duration S --warmup W --raw FILE
[--submit stream|unary]``

Open loop: trade ``i`` is scheduled at ``t0 + i / rate`` whatever happened to the trades
before it, so a slow ledger shows up as latency rather than as a lower offered rate (a
closed loop would hide it: "coordinated omission"). Each trade's scheduled time is
recorded beside the time it was actually sent: when the generator falls behind (its own
CPU, a busy machine), trades go out late, and the report counts latency from the
scheduled time too, so the generator's delay is not hidden either. Every trade is a DvP
between two banks of the run's genesis (``QUANTITY`` bond units against ``AMOUNT`` cents,
around a ring of banks so that no balance drifts), built and signed by both parties
before the clock starts. Trades go through one SDK client per validator, each preferring
its own node, in turn, and each waits for the commit certificate (finality; the SDK
verifies it, once per block). With ``--submit stream`` (the default) each client keeps
one ``SubmitStream`` open and a trade is one request and its events on it; with
``unary`` a trade is a ``Submit`` and a ``WaitForFinality`` call, as before issue 13.
Trades sent during the warm-up are not counted. With ``--workload mixed`` a
``--fail-rate`` share of the offered rate is under-funded pending trades and coupons on
their own schedule beside the DvPs (``devtools/bench/mixed.py``), recorded apart; with
``--workload repo`` a share is repo round trips (``devtools/bench/repo.py``), likewise.

It writes the raw record ``devtools/bench/report.py`` turns into the result: every trade's
scheduled, sent and final times (wall-clock microseconds) with its code, height and the
validator it entered through (``via``); every validator's consensus step times for those
heights (GetTimeline: the earliest over all validators, each validator's own applied time,
and which validator proposed); each validator process's CPU time and anonymous memory
(its ``/metrics``: ``process_cpu_seconds_total`` and ``ledger_process_rss_anon_bytes``, so
the validators may run on other machines) at the window's start and end and every few
seconds; and the Ed25519 verify cost measured here before the load starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client import (
    LedgerError,
    ParticipantKey,
    Receipt,
    RejectedError,
    SubmitStream,
    Transactions,
    load_key,
    sign,
)
from devtools.bench.mixed import WORKLOADS, Mixed
from devtools.bench.repo import REPO_SHARE, RepoLoad
from devtools.demo.run import ValidatorClients, load_run_network
from node import crypto
from node.netconfig import Network, NetworkNode, host_port, load_network

__all__ = ["GENERATOR_OVERLOAD", "main", "measure_verify_us", "usage_of", "validator_usage"]

QUANTITY = 1  # bond units ($0.01 face) per trade
AMOUNT = 1  # cash cents per trade
SIGS_PER_TRADE = 2  # a DvP is signed by seller and buyer
INFLIGHT_MAX = 20_000  # trades awaiting finality at once; beyond it a send is skipped
GENERATOR_OVERLOAD = "GENERATOR_OVERLOAD"  # the code of a trade skipped for INFLIGHT_MAX
FINALITY_TIMEOUT_S = 30.0  # per trade; then FinalityTimeoutError
SAMPLE_INTERVAL_S = 2.0  # validator CPU and memory samples
SCRAPE_TIMEOUT_S = 2.0  # one validator's /metrics; a node that takes longer has no sample
TRADES_MAX = 2_000_000  # rate x (warm-up + duration) must stay below this
VERIFY_SAMPLES = 2_000
SUBMIT_MODES = ("stream", "unary")


def _now_us() -> int:
    return time.time_ns() // 1_000


def measure_verify_us(samples: int = VERIFY_SAMPLES) -> float:
    """Mean cost of one Ed25519 verification here, in microseconds."""
    key = crypto.SigningKey(crypto.sha256(b"bench-verify"))
    msg = b"x" * 200  # about a DvP body
    sig = key.sign(msg)
    pub = key.public_key
    for _ in range(50):
        crypto.verify(pub, msg, sig)
    t0 = time.perf_counter()
    for _ in range(samples):
        crypto.verify(pub, msg, sig)
    return (time.perf_counter() - t0) / samples * 1e6


# --- validator processes --------------------------------------------------------------------

# What a validator's /metrics says about its process (node/runtime/_metrics.py).
CPU_METRIC = "process_cpu_seconds_total"
RSS_METRIC = "ledger_process_rss_anon_bytes"
VIEW_CHANGES_METRIC = "ledger_view_changes_total"  # views left on a timeout certificate
RELAYED_METRIC = "ledger_commit_votes_relayed_total"  # a late commit certificate, each
USAGE_METRICS = (CPU_METRIC, RSS_METRIC, VIEW_CHANGES_METRIC, RELAYED_METRIC)
ValidatorUsage = tuple[float, float, float, float]


def usage_of(metrics_text: str) -> ValidatorUsage | None:
    """(CPU seconds, anonymous resident MB, views timed out, commit votes relayed) from a
    /metrics page; None if any is absent."""
    found: dict[str, float] = {}
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name in USAGE_METRICS:
            found[name] = float(value)
    if len(found) < len(USAGE_METRICS):
        return None
    mb = found[RSS_METRIC] / (1024 * 1024)
    return found[CPU_METRIC], mb, found[VIEW_CHANGES_METRIC], found[RELAYED_METRIC]


def validator_usage(node: NetworkNode) -> ValidatorUsage | None:
    """``usage_of`` a validator's /metrics, or None if it did not answer."""
    url = f"http://{host_port(node.host, node.metrics_port)}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as resp:
            return usage_of(resp.read().decode())
    except (OSError, urllib.error.URLError, ValueError):
        return None


async def _usage_all(net: Network) -> list[ValidatorUsage | None]:
    """Every validator's usage, scraped at once off the event loop (trades keep going)."""
    return list(await asyncio.gather(*(asyncio.to_thread(validator_usage, x) for x in net.nodes)))


# --- the run --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Trade:
    sched_us: int
    start_us: int = 0
    end_us: int | None = None
    code: str = "NO_OUTCOME"
    height: int | None = None
    via: int | None = None  # the validator whose client sent it (the one it prefers)


@dataclass(slots=True)
class _Run:
    trades: list[_Trade] = field(default_factory=list)
    inflight: int = 0
    final: int = 0
    ok_latencies_ms: list[float] = field(default_factory=list)


def build_trades(run_dir: Path, count: int, ttl_s: float) -> list[bytes]:
    """``count`` signed DvPs around the ring of banks, alternating bonds."""
    demo = load_run_network(run_dir)
    keys: dict[str, ParticipantKey] = {
        b: load_key(run_dir / "participants" / f"{b}.key") for b in demo.banks
    }
    tx = Transactions(demo.genesis, ttl_s=ttl_s)
    banks, out = demo.banks, []
    for i in range(count):
        seller, buyer = banks[i % len(banks)], banks[(i + 1) % len(banks)]
        dvp = tx.dvp(seller, buyer, demo.bonds[i % len(demo.bonds)], QUANTITY, demo.cash, AMOUNT)
        out.append(sign(dvp, keys[seller], keys[buyer], genesis=demo.genesis).raw)
    return out


class _Progress:
    """One status line on stderr: redrawn in place on a terminal, every 5 s otherwise."""

    def __init__(self, total_s: float, warmup_s: float) -> None:
        self.total_s, self.warmup_s = total_s, warmup_s
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def show(self, elapsed_s: float, run: _Run, *, done: bool = False) -> None:
        now = time.monotonic()
        if not done and now - self._last < (0.25 if self.tty else 5.0):
            return
        self._last = now
        frac = min(1.0, max(0.0, elapsed_s / self.total_s))
        bar = "#" * int(frac * 30) + "." * (30 - int(frac * 30))
        phase = "warm-up" if elapsed_s < self.warmup_s else "measure"
        lat = sorted(run.ok_latencies_ms[-500:])
        p50 = f"{lat[len(lat) // 2]:.1f} ms" if lat else "-"
        line = (
            f"[{bar}] {min(elapsed_s, self.total_s):5.1f}/{self.total_s:.0f} s {phase:<7} "
            f"sent {len(run.trades)}  final {run.final}  in flight {run.inflight}  "
            f"recent p50 {p50}"
        )
        if self.tty:
            print("\r" + line, end="\n" if done else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


class _Sender:
    """Sends trade ``k`` through client ``k mod n``: unary calls, or that client's stream."""

    def __init__(self, clients: ValidatorClients, mode: str) -> None:
        self.clients, self.mode = clients, mode
        self.streams: list[SubmitStream] = []
        self._index = {ep.address: i for i, ep in enumerate(clients.all[0].endpoints)}

    async def open(self) -> None:
        await self.clients.connect()
        if self.mode == "stream":
            self.streams = list(
                await asyncio.gather(*(c.open_stream(prove_result=False) for c in self.clients.all))
            )

    def via(self, k: int) -> int | None:
        """The validator trade ``k`` goes to as it is sent: its client's stream's node, or
        (unary) its client's current endpoint (a client fails over when one is down)."""
        if self.streams:
            address = self.streams[k % len(self.streams)].address
        else:
            address = self.clients.via(k).current_endpoint.address
        return self._index.get(address)

    async def settle(self, k: int, raw: bytes) -> Receipt:
        if not self.streams:
            client = self.clients.via(k)
            return await client.submit(raw, timeout_s=FINALITY_TIMEOUT_S, prove_result=False)
        s = self.streams[k % len(self.streams)]
        return await (await s.submit(raw, timeout_s=FINALITY_TIMEOUT_S))

    async def close(self) -> None:
        await asyncio.gather(*(s.cancel() for s in self.streams))


async def _settle(sender: _Sender, k: int, raw: bytes, t: _Trade, run: _Run) -> None:
    run.inflight += 1
    # Sent no earlier than scheduled (the generator sleeps until then on the monotonic
    # clock); a wall-clock reading a few microseconds before it is the two clocks' skew.
    t.start_us = max(_now_us(), t.sched_us)
    try:
        receipt = await sender.settle(k, raw)
        t.code, t.height = receipt.code.name, receipt.height
    except RejectedError as e:  # final too: the ledger recorded the refusal
        t.code, t.height = e.receipt.code.name, e.receipt.height
    except LedgerError as e:
        t.code = type(e).__name__
    finally:
        run.inflight -= 1
    t.end_us = _now_us()
    run.final += 1
    if t.code == "OK":
        run.ok_latencies_ms.append((t.end_us - t.start_us) / 1000)


async def _sample(net: Network, run: _Run, out: list[dict[str, Any]]) -> None:
    while True:
        usage = await _usage_all(net)
        out.append(
            {
                "t_us": _now_us(),
                "committed": run.final,
                "rss_anon_mb": [round(u[1], 2) for u in usage if u is not None],
            }
        )
        await asyncio.sleep(SAMPLE_INTERVAL_S)


async def _timeline(clients: ValidatorClients, heights: set[int]) -> dict[str, dict[str, Any]]:
    """For each height, the earliest time any validator saw each step (absent if none did),
    every validator's own applied time (``applied_by_node_us``, 0 where it has none: down,
    or forgotten) and the ``proposer``: the validator whose proposal mark is the earliest
    (the leader marks its proposal as it sends it, the others as they receive it)."""
    if not heights:
        return {}
    per_node = await clients.all[0].timelines(min(heights), max(heights))
    steps = ("proposed_us", "prepare_qc_us", "commit_qc_us", "applied_us")
    out: dict[str, dict[str, Any]] = {}
    for i, answer in enumerate(per_node):
        if not isinstance(answer, list):
            continue  # a node that is down
        for b in answer:
            if b.height not in heights:
                continue
            entry = out.setdefault(str(b.height), {"applied_by_node_us": [0] * len(per_node)})
            entry["applied_by_node_us"][i] = b.applied_us
            if b.proposed_us and (
                "proposed_us" not in entry or b.proposed_us < entry["proposed_us"]
            ):
                entry["proposer"] = i
            for s in steps:
                v = getattr(b, s)
                if v and (s not in entry or v < entry[s]):
                    entry[s] = v
    return out


Usage = list[ValidatorUsage | None]


def _dvp_rate(args: argparse.Namespace) -> float:
    """The DvP load's rate: all of it, or with WORKLOAD=mixed the share pending trades
    leave (devtools/bench/mixed.py)."""
    if args.workload == "repo":
        return float(args.rate * (1 - REPO_SHARE))
    return args.rate * (1 - args.fail_rate) if args.workload == "mixed" else float(args.rate)


async def run_load(args: argparse.Namespace) -> dict[str, Any]:
    net = load_network(args.run_dir)
    total = round(_dvp_rate(args) * (args.warmup + args.duration))
    if not 0 < total <= TRADES_MAX:
        raise SystemExit(
            f"load: rate x (warm-up + duration) = {total} trades; need 1..{TRADES_MAX}"
        )
    verify_us = measure_verify_us()
    print(f"load: Ed25519 verify {verify_us:.1f} us; signing {total} trades ...", file=sys.stderr)
    t_build = time.monotonic()
    ttl_s = min(7 * 24 * 3600, args.warmup + args.duration + FINALITY_TIMEOUT_S + 600)
    raws = build_trades(net.run_dir, total, ttl_s)
    print(f"load: signed in {time.monotonic() - t_build:.1f} s", file=sys.stderr)
    clients = ValidatorClients(net.run_dir)
    sender = _Sender(clients, args.submit)
    run, samples = _Run(), list[dict[str, Any]]()
    mixed = Mixed(clients, load_run_network(net.run_dir), net.run_dir)
    repos = RepoLoad(clients, mixed.demo, net.run_dir)
    try:
        await sender.open()
        if args.workload == "mixed":
            await mixed.fund_agent()
        sampler = asyncio.create_task(_sample(net, run, samples))
        window, usage_start, usage_end = await _drive(
            args, net, sender, raws, run, mixed=mixed, repos=repos
        )
        sampler.cancel()
        heights = {t.height for t in run.trades if t.height is not None}
        timeline = await _timeline(clients, heights)
    finally:
        await sender.close()
        await clients.close()
    validators = [
        {
            "name": node.name,
            "cpu_s_start": s[0],
            "cpu_s_end": e[0],
            "rss_anon_mb_start": round(s[1], 2),
            "rss_anon_mb_end": round(e[1], 2),
            "view_changes_start": s[2],
            "view_changes_end": e[2],
            "commit_votes_relayed_start": s[3],
            "commit_votes_relayed_end": e[3],
        }
        for node, s, e in zip(net.nodes, usage_start, usage_end, strict=True)
        if s is not None and e is not None
    ]
    return {
        "config": {
            "n": net.n,
            "q": net.q,
            "rate": args.rate,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "git_commit": git_commit(),
            "deadline_s": FINALITY_TIMEOUT_S,
            "submit": args.submit,
            "cores": len(os.sched_getaffinity(0)),
            "sigs_per_trade": SIGS_PER_TRADE,
            "trade": f"DvP, {QUANTITY} bond unit against {AMOUNT} cent, signed by both",
            **_workload_config(args),
        },
        "window": window,
        "trades": [
            {
                "sched_us": t.sched_us,
                "start_us": t.start_us,
                "end_us": t.end_us,
                "code": t.code,
                "height": t.height,
                "via": t.via,
            }
            for t in run.trades
        ],
        "timeline": timeline,
        "validators": validators,
        "rss_samples": samples,
        "verify_us": round(verify_us, 2),
        **({"mixed": mixed.record()} if args.workload == "mixed" else {}),
        **({"repo": repos.record()} if args.workload == "repo" else {}),
    }


def _workload_config(args: argparse.Namespace) -> dict[str, Any]:
    """The workload's keys of the raw record's config (the plain DvP load: just its name)."""
    if args.workload == "repo":
        return {"workload": "repo", "repo_share": REPO_SHARE, "dvp_rate": _dvp_rate(args)}
    if args.workload != "mixed":
        return {"workload": "dvp"}
    return {"workload": "mixed", "fail_rate": args.fail_rate, "dvp_rate": _dvp_rate(args)}


async def _drive(
    args: argparse.Namespace,
    net: Network,
    sender: _Sender,
    raws: list[bytes],
    run: _Run,
    *,
    mixed: Mixed,
    repos: RepoLoad,
) -> tuple[dict[str, int], Usage, Usage]:
    """Send every trade on schedule (and with WORKLOAD=mixed the pending trades and
    coupons on theirs), then wait for the stragglers. Returns the measurement window and
    the validators' usage at its start and end."""
    progress = _Progress(args.warmup + args.duration, args.warmup)
    tasks: set[asyncio.Task[None]] = set()
    usage_start: Usage = []
    t0, t0_us = time.monotonic() + 0.05, _now_us() + 50_000
    window_start_us = t0_us + round(args.warmup * 1e6)
    side = _start_mixed(args, mixed, t0, t0_us)
    repo_side = _start_repos(args, repos, t0, t0_us)
    rate = _dvp_rate(args)
    for i, raw in enumerate(raws):
        at = i / rate
        if not usage_start and at >= args.warmup:
            usage_start = await _usage_all(net)
        delay = t0 + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = _Trade(sched_us=t0_us + round(at * 1e6), via=sender.via(i))
        run.trades.append(t)
        if run.inflight >= INFLIGHT_MAX:
            t.code = GENERATOR_OVERLOAD
            continue
        task = asyncio.create_task(_settle(sender, i, raw, t, run))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        progress.show(time.monotonic() - t0, run)
    delay = t0 + args.warmup + args.duration - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    window = {"start_us": window_start_us, "end_us": _now_us()}
    usage_end = await _usage_all(net)
    deadline = time.monotonic() + FINALITY_TIMEOUT_S + 5
    while tasks and time.monotonic() < deadline:
        progress.show(time.monotonic() - t0, run)
        await asyncio.sleep(0.2)
    progress.show(time.monotonic() - t0, run, done=True)
    for task in list(tasks):
        task.cancel()
    if side is not None:
        await side
        await mixed.finish(max(1.0, deadline - time.monotonic()))
    if repo_side is not None:
        await repo_side
        await repos.finish(max(1.0, deadline - time.monotonic()))
    return window, usage_start or usage_end, usage_end


def _start_mixed(
    args: argparse.Namespace, mixed: Mixed, t0: float, t0_us: int
) -> asyncio.Task[None] | None:
    """With WORKLOAD=mixed, the pending trades' and coupons' own open loop, same clock."""
    if args.workload != "mixed":
        return None
    seconds = args.warmup + args.duration
    return asyncio.create_task(mixed.drive(t0, t0_us, args.rate * args.fail_rate, seconds))


def _start_repos(
    args: argparse.Namespace, repos: RepoLoad, t0: float, t0_us: int
) -> asyncio.Task[None] | None:
    """With WORKLOAD=repo, the repo round trips' own open loop, same clock."""
    if args.workload != "repo":
        return None
    seconds = args.warmup + args.duration
    return asyncio.create_task(repos.drive(t0, t0_us, args.rate * REPO_SHARE, seconds))


def git_commit() -> str:
    """The checked-out commit (with "-dirty" if the tree has changes), or "unknown"."""

    def git(*args: str) -> str:
        here = Path(__file__).resolve().parent
        done = subprocess.run(
            ["git", *args], cwd=here, capture_output=True, text=True, check=True, timeout=10
        )
        return done.stdout.strip()

    try:
        rev = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devtools.bench.load",
        description="Open-loop DvP load through the SDK against the running cluster of a run "
        "directory; writes the raw record that devtools.bench.report summarizes.",
    )
    p.add_argument("--run-dir", type=Path, required=True, help="the cluster's run directory")
    p.add_argument("--rate", type=float, required=True, help="trades per second offered")
    p.add_argument("--duration", type=float, required=True, help="measured seconds")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds sent first, not counted")
    p.add_argument("--raw", type=Path, required=True, help="where to write the raw JSON record")
    p.add_argument(
        "--submit",
        choices=SUBMIT_MODES,
        default="stream",
        help="one SubmitStream per client (default), or Submit + WaitForFinality",
    )
    p.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="dvp",
        help="dvp: DvP trades only (default); mixed: with under-funded pending trades and "
        "coupons (devtools/bench/mixed.py); repo: with repo round trips (devtools/bench/repo.py)",
    )
    p.add_argument(
        "--fail-rate",
        type=float,
        default=0.02,
        help="mixed: the share of the offered rate that is under-funded pending trades",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.warmup < 0:
        parser().error("need --rate > 0, --duration > 0 and --warmup >= 0")
    if not 0 < args.fail_rate < 1:
        parser().error("need 0 < --fail-rate < 1")
    raw = asyncio.run(run_load(args))
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    args.raw.write_text(json.dumps(raw))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
