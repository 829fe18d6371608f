"""``python -m devtools.bench.reads --run-dir RUN [--as ID | --unsigned]``: what reads cost.

Against a running cluster, one client (one channel to node 0) settles one transfer from
BANK01 to BANK02, then times ``--count`` GetBalances(BANK01) and ``--count``
GetTransaction(that transfer) calls, ``--concurrency`` at a time, and prints calls per
second. Signed as ``--as`` (default BANK01, a party: every read is allowed), or
``--unsigned`` for a cluster without access checks (the code before issue 15's item 6):
docs/performance.md ("Issue 15: access checks") compares the two.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from client._async import _details, _retry_after_ms
from client._identity import RequestSigner
from client._keys import load_key
from client._trades import Transactions, sign
from devtools.cluster import client_aio_channel
from node.genesis import load_genesis
from node.netconfig import load_network
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc

RPC_TIMEOUT_S = 10.0
READ_BUDGET_LIMIT = "reads per participant"  # the refusal's ``limit`` (node/runtime/_api.py)
WARMUP_CALLS = 200


def _metadata(
    signer: RequestSigner | None, node: str, method: str, req: Any
) -> tuple[tuple[str, str], ...]:
    return () if signer is None else signer.metadata(node, f"/ledger.v1.Ledger/{method}", req)


async def _rate(
    call: Callable[[], Awaitable[Any]], count: int, concurrency: int
) -> tuple[float, int]:
    """Calls per second of ``count`` calls served, ``concurrency`` in flight, and how many
    were refused over the participant's read budget (each waits its retry-after hint and
    is sent again: docs/cluster.md "What one participant's reads may cost"). Any other
    refusal ends the run (the node remembers 20,000 recent requests of one participant:
    keep ``count`` under about 9,000)."""
    left, refused = [count], [0]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            while True:
                try:
                    await call()
                    break
                except grpc.aio.AioRpcError as e:
                    details = _details(e)
                    limit = details.metadata.get("limit") if details is not None else None
                    if limit != READ_BUDGET_LIMIT:
                        raise
                    refused[0] += 1
                    await asyncio.sleep(max(1, _retry_after_ms(e)) / 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - t0), refused[0]


async def measure(
    run_dir: Path, identity: str | None, count: int, concurrency: int
) -> dict[str, tuple[float, int]]:
    net = load_network(run_dir)
    genesis = load_genesis(net.genesis)
    signer = None
    if identity is not None:
        signer = RequestSigner(load_key(net.participant_key(identity), identity), genesis)
    sender = load_key(net.participant_key("BANK01"), "BANK01")
    cash = next(i.id for i in genesis.instruments if i.kind.value == "cash")
    stx = sign(Transactions(genesis).transfer(cash, "BANK01", "BANK02", 1), sender, genesis=genesis)
    node = net.nodes[0].id  # every call goes to node 0, signed for its validator
    async with client_aio_channel(net, 0, identity=None) as ch:
        stub = pb_grpc.LedgerStub(ch)  # type: ignore[no-untyped-call]
        sub = pb.SubmitRequest(transaction=stx.raw)
        await stub.Submit(
            sub, timeout=RPC_TIMEOUT_S, metadata=_metadata(signer, node, "Submit", sub)
        )
        wait = pb.WaitRequest(tx_id=stx.tx_id, timeout_ms=30_000)
        md = _metadata(signer, node, "WaitForFinality", wait)
        await stub.WaitForFinality(wait, timeout=40, metadata=md)

        bal = pb.BalancesRequest(account="BANK01")
        txr = pb.TransactionRequest(tx_id=stx.tx_id)

        def balances() -> Awaitable[Any]:
            md = _metadata(signer, node, "GetBalances", bal)
            return stub.GetBalances(bal, timeout=RPC_TIMEOUT_S, metadata=md)  # type: ignore[no-any-return]

        def transaction() -> Awaitable[Any]:
            md = _metadata(signer, node, "GetTransaction", txr)
            return stub.GetTransaction(txr, timeout=RPC_TIMEOUT_S, metadata=md)  # type: ignore[no-any-return]

        await _rate(balances, WARMUP_CALLS, concurrency)
        return {
            "GetBalances": await _rate(balances, count, concurrency),
            "GetTransaction": await _rate(transaction, count, concurrency),
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.bench.reads", description=__doc__)
    p.add_argument("--run-dir", type=Path, default=Path("run"))
    who = p.add_mutually_exclusive_group()
    who.add_argument("--as", dest="identity", default="BANK01", help="identity (default BANK01)")
    who.add_argument("--unsigned", action="store_true", help="send no identity")
    p.add_argument("--count", type=int, default=2_000)
    p.add_argument("--concurrency", type=int, default=1)
    args = p.parse_args(argv)
    identity = None if args.unsigned else args.identity
    rates = asyncio.run(measure(args.run_dir, identity, args.count, args.concurrency))
    mode = "unsigned" if identity is None else f"signed as {identity}"
    for name, (rate, refused) in rates.items():
        print(
            f"{name:<15} {rate:8,.0f} calls/s  ({mode}, concurrency {args.concurrency}; "
            f"{refused:,} refused over the read budget, retried after the hint)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
