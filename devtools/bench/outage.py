"""``make outage``: how a real cluster rides out validators going down together.

Starts a fresh cluster (or uses ``--run-dir``), runs the open-loop load generator
(``devtools/bench/load.py``) in its own process, watches commits on one validator that stays
up, and after ``--before`` seconds kills ``--count`` validators with SIGKILL: by default
the current leader and the validators after it in index order (adjacent validators were
consecutive leaders under the old round-robin rotation), or ``--pick random``. It prints:

- time from the kill to the next commit (the issue 12 target: within 3 s at 26/16);
- the median block interval before the kill and over the steady state after it
  (``--settle`` seconds after the kill until the end; target: within 2x the healthy one);
- every gap between commits longer than 500 ms, and trade latency p50/p99 before and
  after the kill, from the load generator's record;
- with ``--down-s S``: the validators are started again S seconds after the kill, and for
  each, from its start: when it first answers a status call, when every validator that
  stayed up has its stream to it back (their redial), and when it has caught up (its
  committed height at least the watcher's when it was started).

Dev tool (devtools/bench), like the benchmark: the validator never imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devtools.bench.__main__ import cluster
from devtools.cluster import client_aio_channel, kill_node, node_state, node_states, start_node
from node.netconfig import Network
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc

__all__ = ["main"]

GAP_REPORT_MS = 500
RESTART_POLL_S = 0.05
RESTART_WAIT_S = 60.0  # give up on a restarted validator's marks after this long


def _down_set(net: Network, pick: str, count: int, seed: int) -> list[int]:
    states = node_states(net)
    leader = next((s.status.leader for s in states if s.status is not None), 0)
    if pick == "random":
        return sorted(random.Random(seed).sample(range(net.n), count))
    return [(leader + k) % net.n for k in range(count)]


async def _watch(net: Network, index: int, out: list[tuple[int, float, int]]) -> None:
    """(height, arrival wall time s, transactions) of every block committed at ``index``."""
    async with client_aio_channel(net, index) as channel:
        stub = pb_grpc.LedgerStub(channel)
        async for info in stub.StreamBlocks(pb.StreamBlocksRequest()):
            out.append((info.height, time.time(), len(info.results)))


async def _run(args: argparse.Namespace, net: Network, raw_file: Path) -> dict[str, Any]:
    total = args.before + args.after
    load = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devtools.bench.load", "--run-dir", str(net.run_dir),
        "--rate", str(args.rate), "--duration", str(total), "--warmup", "0",
        "--raw", str(raw_file),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    # count + 1 validators watched: whichever count go down, one watcher stays up.
    seen: dict[int, list[tuple[int, float, int]]] = {i: [] for i in range(args.count + 1)}
    watchers = [asyncio.create_task(_watch(net, i, out)) for i, out in seen.items()]
    await asyncio.sleep(args.before)
    # The leader of now (status calls in a thread: the watchers keep timing blocks).
    down = await asyncio.to_thread(_down_set, net, args.pick, args.count, args.seed)
    kill_at = time.time()
    sig = signal.SIGSTOP if args.pause_s else signal.SIGKILL
    for i in down:
        kill_node(net, i, sig)
    what = f"paused for {args.pause_s:g} s" if args.pause_s else "killed"
    print(f"outage: {what} {len(down)} validators {down} at t={args.before:g} s", flush=True)
    restarts: dict[str, Any] = {}
    if args.pause_s:
        await asyncio.sleep(args.pause_s)
        for i in down:
            kill_node(net, i, signal.SIGCONT)
        await asyncio.sleep(max(0.0, args.after - args.pause_s))
    elif args.down_s:
        await asyncio.sleep(args.down_s)
        monitor = next(i for i in seen if i not in down)
        target = seen[monitor][-1][0] if seen[monitor] else 0
        print(f"outage: starting {down} again at height {target}", flush=True)
        restarts = await asyncio.to_thread(_restart, net, down, target)
        await asyncio.sleep(max(0.0, args.after - args.down_s - restarts.pop("_took_s")))
    else:
        await asyncio.sleep(args.after)
    for w in watchers:
        w.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    await load.wait()
    monitor = next(i for i in seen if i not in down)
    raw = json.loads(raw_file.read_text())
    result = _summary(args, net, down, kill_at, blocks=seen[monitor], raw=raw)
    if restarts:
        result["restarted"] = restarts
    return result


def _restart(net: Network, down: list[int], target: int) -> dict[str, Any]:
    """Start ``down`` again; per validator (by name), ms from its start to: its first
    status answer, every other validator's stream to it back, its height >= ``target``
    (None: not within RESTART_WAIT_S)."""
    started = time.monotonic()
    for i in down:
        start_node(net, i)
    marks: dict[int, dict[str, float | None]] = {
        i: {"answering_ms": None, "peers_back_ms": None, "caught_up_ms": None} for i in down
    }
    others = [i for i in range(net.n) if i not in down]
    while time.monotonic() - started < RESTART_WAIT_S:
        now_ms = round(1000 * (time.monotonic() - started))
        states = {i: node_state(net, i).status for i in range(net.n)}
        for i, m in marks.items():
            st = states[i]
            if st is not None and m["answering_ms"] is None:
                m["answering_ms"] = now_ms
            if st is not None and st.height >= target and m["caught_up_ms"] is None:
                m["caught_up_ms"] = now_ms
            if m["peers_back_ms"] is None and all(
                (s := states[j]) is not None
                and any(p.validator == i and p.connected for p in s.peers)
                for j in others
            ):
                m["peers_back_ms"] = now_ms
        if all(v is not None for m in marks.values() for v in m.values()):
            break
        time.sleep(RESTART_POLL_S)
    out: dict[str, Any] = {net.nodes[i].name: m for i, m in marks.items()}
    out["_took_s"] = time.monotonic() - started
    return out


def _median_interval_ms(times: list[float]) -> float | None:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return round(1000 * statistics.median(gaps), 1) if gaps else None


def _latency(trades: list[dict[str, Any]], lo_s: float, hi_s: float) -> dict[str, Any]:
    lat: list[float] = sorted(
        (t["end_us"] - t["start_us"]) / 1000
        for t in trades
        if t["code"] == "OK" and lo_s <= t["start_us"] / 1e6 < hi_s
    )
    if not lat:
        return {"trades": 0}

    def pick(f: float) -> float:
        return round(lat[min(len(lat) - 1, int(f * len(lat)))], 1)

    return {"trades": len(lat), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": lat[-1]}


def _summary(
    args: argparse.Namespace,
    net: Network,
    down: list[int],
    kill_at: float,
    *,
    blocks: list[tuple[int, float, int]],
    raw: dict[str, Any],
) -> dict[str, Any]:
    start = blocks[0][1] if blocks else kill_at
    before = [t for _, t, _ in blocks if start + args.warmup <= t < kill_at]
    after = [t for _, t, _ in blocks if t >= kill_at]
    steady = [t for t in after if t >= kill_at + args.settle]
    times = [t for _, t, _ in blocks]
    gaps = [
        {"at_s": round(a - kill_at, 2), "gap_ms": round(1000 * (b - a))}
        for a, b in itertools.pairwise(times)
        if b - a > GAP_REPORT_MS / 1000
    ]
    healthy, steady_ms = _median_interval_ms(before), _median_interval_ms(steady)
    trades = raw["trades"]
    return {
        "n": net.n,
        "q": net.q,
        "rate": args.rate,
        "down": down,
        "pick": args.pick,
        "next_commit_after_kill_ms": round(1000 * (after[0] - kill_at)) if after else None,
        "healthy_block_interval_ms": healthy,
        "steady_block_interval_ms": steady_ms,
        "steady_over_healthy": round(steady_ms / healthy, 2) if healthy and steady_ms else None,
        "gaps_over_500ms": gaps,
        "latency_before": _latency(trades, start + args.warmup, kill_at),
        "latency_after_settle": _latency(trades, kill_at + args.settle, float("inf")),
        "failed": sum(1 for t in trades if t["code"] not in (None, "OK")),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devtools.bench.outage", description=__doc__)
    p.add_argument("--n", type=int, default=26, help="validators of a fresh cluster")
    p.add_argument("--q", type=int, default=None, help="quorum (default: 16 for 26)")
    p.add_argument("--run-dir", type=Path, default=None, help="use this running cluster")
    p.add_argument("--count", type=int, default=10, help="validators to kill (default 10)")
    p.add_argument(
        "--pick",
        choices=("consecutive", "random"),
        default="consecutive",
        help="the leader and the next validators in index order, or a seeded random set",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of --pick random")
    p.add_argument(
        "--pause-s",
        type=float,
        default=0.0,
        help="SIGSTOP the validators for this long, then SIGCONT (default: kill -9)",
    )
    p.add_argument(
        "--down-s",
        type=float,
        default=0.0,
        help="start the killed validators again after this long and time their catch-up"
        " (default: they stay down)",
    )
    p.add_argument("--rate", type=float, default=20.0, help="trades per second offered")
    p.add_argument("--before", type=float, default=30.0, help="seconds of load before kill")
    p.add_argument("--after", type=float, default=60.0, help="seconds of load after it")
    p.add_argument("--warmup", type=float, default=10.0, help="not counted as healthy (s)")
    p.add_argument("--settle", type=float, default=15.0, help="steady state from here (s)")
    p.add_argument("--out", type=Path, default=None, help="also write the result JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="ledger-outage-") as tmp,
        cluster(args.run_dir, n=args.n, q=args.q) as net,
    ):
        if not 0 < args.count < net.n:
            raise SystemExit(f"outage: --count must be 1..{net.n - 1}")
        if args.down_s and args.pause_s:
            raise SystemExit("outage: --down-s restarts killed validators; not with --pause-s")
        if args.down_s >= args.after:
            raise SystemExit("outage: --down-s must be shorter than --after")
        result = asyncio.run(_run(args, net, Path(tmp) / "load.json"))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
