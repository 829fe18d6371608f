"""``python -m devtools.bench.ack [--count 400]``: what an acknowledgement costs.

Times the ``Submit`` round trip of sequential DvPs to one validator of a fresh
4-validator network that runs alone, so no consensus work shares its loop: what is left
is admission (decode, signature checks, mempool) and, since ADR 0006, the fsync of the
intake log. docs/performance.md ("Durable intake") compares it before and after.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from devtools.bench.load import build_trades
from devtools.cluster import client_channel, node_state, start_node, stop_cluster
from devtools.netgen import NetSpec, free_port_base, generate
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc

WARMUP_SUBMITS = 50
START_TIMEOUT_S = 60.0
RPC_TIMEOUT_S = 10.0
TTL_S = 3_600.0


def _percentile(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(p * len(sorted_ms)))]


def measure(count: int) -> list[float]:
    """Round trips in ms of ``count`` submits after WARMUP_SUBMITS unmeasured ones."""
    with tempfile.TemporaryDirectory(prefix="ledger-ack-") as tmp:
        net = generate(Path(tmp) / "run", NetSpec(n=4, q=3, port_base=free_port_base(4)))
        try:
            start_node(net, 0)
            deadline = time.monotonic() + START_TIMEOUT_S
            while not node_state(net, 0).up:
                if time.monotonic() > deadline:
                    raise SystemExit("ack: validator 0 did not answer")
                time.sleep(0.1)
            trades = build_trades(net.run_dir, count + WARMUP_SUBMITS, TTL_S)
            stub = pb_grpc.LedgerStub(client_channel(net, 0))  # type: ignore[no-untyped-call]
            out = []
            for i, raw in enumerate(trades):
                t0 = time.perf_counter()
                resp = stub.Submit(pb.SubmitRequest(transaction=raw), timeout=RPC_TIMEOUT_S)
                elapsed_ms = (time.perf_counter() - t0) * 1000
                if resp.outcome != pb.ACCEPTED:
                    raise SystemExit(f"ack: submit {i} answered {resp.outcome}")
                if i >= WARMUP_SUBMITS:
                    out.append(elapsed_ms)
            return out
        finally:
            stop_cluster(net)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.bench.ack", description=__doc__)
    p.add_argument("--count", type=int, default=400, help="measured submits (default 400)")
    args = p.parse_args(argv)
    ms = sorted(measure(args.count))
    print(
        f"Submit round trip over {len(ms)} sequential DvPs to a lone validator: "
        f"p50 {_percentile(ms, 0.5):.2f} ms, p90 {_percentile(ms, 0.9):.2f} ms, "
        f"p99 {_percentile(ms, 0.99):.2f} ms, mean {statistics.mean(ms):.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
