"""``make chaos``: a Jepsen-style run on real validator processes, then an honest check.

Generates a fresh network in a temporary run directory whose node configs dial every peer
through the fault-injecting proxy (``devtools/chaos/proxy.py``, its own process), starts the
proxy and the validators, then for ``--duration`` seconds runs the bank workload
(``workload.py``) while the nemesis (``nemesis.py``) inflicts the faults of ``--seed``'s
schedule, at most n - q validators at a time. Then it heals everything, waits for the
validators to agree, asks each of them for its blocks, transactions and balances, runs
the checker (``checker.py``), prints recovery and latency per fault window
(``report.py``) and writes everything to a JSON file. Exit status 1 if the checker found
a violation, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from client import AsyncLedgerClient, CertificateCache, EndpointDown, load_key
from devtools.bench.load import git_commit
from devtools.chaos import checker, report
from devtools.chaos.deadline import Deadline
from devtools.chaos.nemesis import FAULT_KINDS, FAULT_S, GAP_S, Fault, Nemesis, plan
from devtools.chaos.proxy import proxy_port
from devtools.chaos.workload import TradeRecord, Workload
from devtools.cluster import start_cluster, stop_cluster
from devtools.netgen import NetSpec, default_quorum, free_port_base, generate
from node.netconfig import (
    OPERATOR_IDENTITY,
    Network,
    PeerAddress,
    host_port,
    load_node_config,
    write_node_config,
)

__all__ = ["main"]

PROXY_PORT_OFFSET = 3000  # after netgen's peer, client and metrics blocks of 1,000
PROXY_PORTS_MAX = 1000  # n * n of them, so n <= 31
CONVERGE_TIMEOUT_S = 90.0
CONVERGE_STABLE_POLLS = 3
POLL_S = 0.5
PROGRESS_S = 10.0
WORKERS_MIN = 8
STATUS_RPC_TIMEOUT_S = 2.0


def _proxy_base(port_base: int) -> int:
    return port_base + PROXY_PORT_OFFSET


def route_through_proxy(net: Network, host: str) -> None:
    """Rewrite every node config so node i dials peer j at the proxy's port for i->j."""
    pbase = _proxy_base(net.nodes[0].peer_port)
    for node in net.nodes:
        cfg = load_node_config(node.config)
        peers = tuple(
            PeerAddress(
                p.validator,
                host_port(host, proxy_port(pbase, net.n, node.validator, p.validator)),
                p.tls_name,
            )
            for p in cfg.peers
        )
        write_node_config(node.config, dataclasses.replace(cfg, peers=peers))


class ProxyProcess:
    """The proxy as a child process, driven one command line at a time."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, net: Network, host: str) -> ProxyProcess:
        base = net.nodes[0].peer_port
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devtools.chaos.proxy", "--n", str(net.n), "--host", host,
            "--proxy-base", str(_proxy_base(base)), "--peer-base", str(base),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self = cls(proc)
        line = await self._line()
        if line != "ready":
            raise RuntimeError(f"the proxy did not start: {line!r}")
        return self

    async def _line(self) -> str:
        assert self._proc.stdout is not None
        return (await self._proc.stdout.readline()).decode().strip()

    async def command(self, line: str) -> None:
        assert self._proc.stdin is not None
        async with self._lock:
            self._proc.stdin.write(line.encode() + b"\n")
            await self._proc.stdin.drain()
            answer = await self._line()
        if answer != "ok":
            raise RuntimeError(f"proxy: {line!r} -> {answer!r}")

    async def stop(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        await self._proc.wait()


async def _converge(status: AsyncLedgerClient, log: Callable[[str], None]) -> str:
    """Wait until every validator answers at one height and root with an empty mempool,
    for a few polls in a row; a message if that does not happen in CONVERGE_TIMEOUT_S."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    stable, last = 0, None
    while time.monotonic() < deadline:
        answers = await status.status()
        up = [s for s in answers if not isinstance(s, EndpointDown)]
        state = {(s.height, s.state_root) for s in up}
        if len(up) == len(answers) and len(state) == 1 and all(s.mempool_txs == 0 for s in up):
            stable = stable + 1 if state == last else 1
            last = state
            if stable >= CONVERGE_STABLE_POLLS:
                return ""
        else:
            stable, last = 0, None
        await asyncio.sleep(POLL_S)
    view = [
        f"{s.endpoint.server_name}: down" if isinstance(s, EndpointDown)
        else f"{s.endpoint.server_name}: h{s.height} mempool {s.mempool_txs}"
        for s in await status.status()
    ]  # fmt: skip
    msg = f"validators did not converge within {CONVERGE_TIMEOUT_S:.0f} s of the heal: {view}"
    log(f"chaos: {msg}")
    return msg


async def _progress(work: Workload, until: Deadline, log: Callable[[str], None]) -> None:
    while until.left_s() > PROGRESS_S:
        await asyncio.sleep(PROGRESS_S)
        h = work.history
        acked = sum(1 for t in h if t.ack_us is not None)
        final = sum(1 for t in h if t.final_us is not None)
        log(f"chaos: {len(h)} trades sent, {acked} acknowledged, {final} final")


async def run(args: argparse.Namespace, net: Network, host: str) -> dict[str, Any]:
    def log(line: str) -> None:
        print(line, flush=True)

    faults = plan(args.seed, net.n, net.q, args.faults, fault_s=args.fault_s, gap_s=args.gap_s)
    proxy = await ProxyProcess.start(net, host)
    try:
        t0 = time.monotonic()
        await asyncio.to_thread(start_cluster, net, progress=False)
        log(f"chaos: {net.n} validators up in {time.monotonic() - t0:.1f} s (quorum {net.q})")
        return await _run(args, net, proxy, faults, log)
    finally:
        log(f"chaos: stopped {await asyncio.to_thread(stop_cluster, net)} validators")
        await proxy.stop()


async def _run(
    args: argparse.Namespace,
    net: Network,
    proxy: ProxyProcess,
    faults: list[Fault],
    log: Callable[[str], None],
) -> dict[str, Any]:
    work = Workload(net, args.workers, args.rate, args.seed)
    status = AsyncLedgerClient.from_run_dir(
        net.run_dir, rpc_timeout_s=STATUS_RPC_TIMEOUT_S, identity=OPERATOR_IDENTITY
    )
    nemesis = Nemesis(net, proxy.command, status, log)
    try:
        start_us = time.time_ns() // 1000
        until = Deadline(time.monotonic() + args.duration)
        _on_ctrl_c(until, log)

        async def faults_then_heal() -> None:
            await asyncio.sleep(args.quiet_start)
            await nemesis.run(faults, until)
            await nemesis.heal_everything()
            log("chaos: faults over, everything healed")

        progress = asyncio.create_task(_progress(work, until, log))
        try:
            await asyncio.gather(work.run(until), faults_then_heal())
        finally:
            progress.cancel()
        end_us = time.time_ns() // 1000
        converged = await _converge(status, log)
        log("chaos: checking every validator ...")
        views = await _observe(net, work.history)
    finally:
        await work.close()
        await status.aclose()
    return _result(
        args,
        net,
        history=work.history,
        nemesis=nemesis,
        views=views,
        converged=converged,
        start_us=start_us,
        end_us=end_us,
    )


def _on_ctrl_c(until: Deadline, log: Callable[[str], None]) -> None:
    """The first Ctrl-C ends the faults and the load early (then heal and check as
    usual); a second one interrupts."""
    loop = asyncio.get_running_loop()

    def first() -> None:
        log("chaos: Ctrl-C: ending the run early, then healing and checking (again: abort)")
        until.now()
        loop.remove_signal_handler(signal.SIGINT)

    loop.add_signal_handler(signal.SIGINT, first)


async def _observe(net: Network, history: Sequence[TradeRecord]) -> list[checker.ValidatorView]:
    probe = AsyncLedgerClient.from_run_dir(net.run_dir, identity=OPERATOR_IDENTITY)
    acked = [t.tx_id for t in history if t.ack_us is not None]
    cache = CertificateCache()
    pinned = net.tls_pinned.read_bytes()
    identity = load_key(net.participant_key(OPERATOR_IDENTITY))
    try:
        return [
            await checker.observe(ep, pinned, probe.genesis, acked, cache, identity=identity)
            for ep in probe.endpoints
        ]
    finally:
        await probe.aclose()


def _result(
    args: argparse.Namespace,
    net: Network,
    *,
    history: Sequence[TradeRecord],
    nemesis: Nemesis,
    views: Sequence[checker.ValidatorView],
    converged: str,
    start_us: int,
    end_us: int,
) -> dict[str, Any]:
    probe = AsyncLedgerClient.from_run_dir(net.run_dir, identity=OPERATOR_IDENTITY)
    violations = checker.check(history, views, checker.genesis_supply(probe.genesis))
    if converged:
        violations.insert(0, checker.Violation("liveness", converged))
    times = next((v.block_times_ms for v in views if not v.error), [])
    codes: dict[str, int] = {}
    for t in history:
        key = t.code or ("NOT_ACKNOWLEDGED" if t.ack_us is None else "NO_RECEIPT")
        codes[key] = codes.get(key, 0) + 1
    return {
        "config": {
            "n": net.n,
            "q": net.q,
            "seed": args.seed,
            "duration_s": args.duration,
            "rate": args.rate,
            "workers": args.workers,
            "faults": list(args.faults),
            "fault_s": list(args.fault_s),
            "gap_s": list(args.gap_s),
            "git_commit": git_commit(),
            "cores": len(os.sched_getaffinity(0)),
            "load_avg_at_end": os.getloadavg(),
        },
        "run_s": round((end_us - start_us) / 1e6, 1),  # less than duration_s after Ctrl-C
        "start_us": start_us,
        "end_us": end_us,
        "trades": len(history),
        "acknowledged": sum(1 for t in history if t.ack_us is not None),
        "by_outcome": codes,
        "height": max((v.height for v in views), default=0),
        "violations": [dataclasses.asdict(v) for v in violations],
        "windows": report.windows(history, nemesis.records, times),
        "block_times_ms": times,
        "faults_inflicted": [r.to_json() for r in nemesis.records],
        "validators": [v.to_json() for v in views],
        "history": [t.to_json() for t in history],
    }


def _print(result: dict[str, Any], out: Path) -> None:
    c = result["config"]
    print(
        f"\nchaos n={c['n']} q={c['q']} seed={c['seed']} {c['duration_s']:g} s: "
        f"{result['trades']} trades, {result['acknowledged']} acknowledged, "
        f"outcomes {result['by_outcome']}, {len(result['faults_inflicted'])} faults, "
        f"final height {result['height']}"
    )
    print(report.table(result["windows"]))
    if result["violations"]:
        print(f"\nCHECKER: {len(result['violations'])} violation(s):")
        for v in result["violations"][:50]:
            print(f"  [{v['rule']}] {v['detail']}")
    else:
        print(
            "\nCHECKER: OK: every acknowledged trade committed exactly once with one result on "
            "every validator; every instrument's supply conserved; one state root"
        )
    print(f"wrote {out}")


def _span(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(",")
    return float(lo), float(hi or lo)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devtools.chaos", description=__doc__.split("\n\n")[0].replace("``", "")
    )
    p.add_argument("--n", type=int, default=26, help="validators (default 26, at most 31)")
    p.add_argument("--q", type=int, help="quorum (default 16 for 26, else the classic quorum)")
    p.add_argument(
        "--duration", type=float, default=300.0, help="seconds of load and faults (default 300)"
    )
    p.add_argument(
        "--seed", type=int, default=1, help="the fault schedule and trade choices (default 1)"
    )
    p.add_argument(
        "--rate", type=float, default=20.0, help="trades/s offered by all workers (default 20)"
    )
    p.add_argument(
        "--workers",
        type=int,
        help="SDK clients, one trade at a time each (default: one per validator, at least 8)",
    )
    p.add_argument(
        "--faults",
        default=",".join(FAULT_KINDS),
        type=lambda s: tuple(k for k in s.split(",") if k),
        help=f"comma-separated fault kinds (default all: {','.join(FAULT_KINDS)})",
    )
    p.add_argument(
        "--fault-s",
        type=_span,
        default=FAULT_S,
        help=f"MIN,MAX seconds a fault lasts (default {FAULT_S[0]:g},{FAULT_S[1]:g})",
    )
    p.add_argument(
        "--gap-s",
        type=_span,
        default=GAP_S,
        help=f"MIN,MAX healthy seconds between faults (default {GAP_S[0]:g},{GAP_S[1]:g})",
    )
    p.add_argument(
        "--quiet-start", type=float, default=3.0, help="seconds of load before faults (default 3)"
    )
    p.add_argument("--out", type=Path, help="result JSON (default chaos-out/chaos-N-Q-SEED.json)")
    p.add_argument("--keep", type=Path, help="use this run directory (wiped first) and keep it")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    q = default_quorum(args.n) if args.q is None else args.q
    args.workers = args.workers or max(WORKERS_MIN, args.n)
    if (
        args.n * args.n > PROXY_PORTS_MAX
        or args.duration <= 0
        or args.rate <= 0
        or args.workers < 1
    ):
        p.error("need n <= 31, --duration > 0, --rate > 0, --workers >= 1")
    try:
        plan(
            args.seed, args.n, q, args.faults, fault_s=args.fault_s, gap_s=args.gap_s, faults_max=1
        )
    except ValueError as e:
        p.error(str(e))
    host = "127.0.0.1"
    out = args.out or Path("chaos-out") / f"chaos-{args.n}-{q}-{args.seed}.json"

    def proxy_ports(base: int) -> list[int]:
        return list(range(_proxy_base(base), _proxy_base(base) + args.n * args.n))

    with tempfile.TemporaryDirectory(prefix="ledger-chaos-") as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        spec = NetSpec(n=args.n, q=q, port_base=free_port_base(args.n, host, also=proxy_ports))
        net = generate(run_dir, spec, force=args.keep is not None, progress=lambda _: None)
        route_through_proxy(net, host)
        kinds = ",".join(args.faults)
        print(f"chaos: {net.n} validators, quorum {net.q}, seed {args.seed}, faults {kinds}")
        try:
            result = asyncio.run(run(args, net, host))
        except KeyboardInterrupt:
            print(f"chaos: aborted; stopped {stop_cluster(net)} validators", file=sys.stderr)
            return 130
        finally:
            stop_cluster(net)  # no-op after a normal end or an abort
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    _print(result, out)
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
