"""The bank workload of a chaos run: several SDK clients settling DvPs and transfers.

Each worker is its own :class:`client.AsyncLedgerClient` over every validator, starting
at a different one (so trades enter through every node) and failing over as the SDK
does; by default there is one per validator (at least 8), so that the workers stuck on
paused validators leave most of them trading. A worker sends one trade at a time, paced
so that all workers together offer about ``rate`` trades per second. For each trade it records:

- ``submit_us``: when it was handed to the SDK;
- ``ack_us`` and ``ack_node``: when a validator acknowledged it (``Submit`` returned its
  id) and which one; unset if no validator did;
- ``final_us``, ``code``, ``height``: when its verified receipt came back, the result and
  the block; or ``error``, the SDK's exception, if none came within the finality timeout.

The finality wait never resubmits: an acknowledged trade that later commits did so on the
strength of that one acknowledgement, which is what the checker holds the ledger to.
A DvP goes through the two-party flow (seller proposes, buyer checks terms and co-signs);
a transfer is signed by its sender. Amounts are small against the genesis holdings, so
refusals (e.g. insufficient funds) are rare but legal: each is a committed result too.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

from client import AsyncLedgerClient, LedgerError, SignedTransaction, sign
from devtools.chaos.deadline import Deadline
from devtools.demo.run import ValidatorClients, load_run_network
from node.netconfig import Network

__all__ = ["FINALITY_TIMEOUT_S", "TradeRecord", "Workload"]

FINALITY_TIMEOUT_S = 60.0  # per trade, from its acknowledgement
DVP_FRACTION = 0.7  # the rest are transfers
AMOUNT_MAX = 100  # units or cents per leg


def _now_us() -> int:
    return time.time_ns() // 1_000


@dataclass(slots=True)
class TradeRecord:
    tx_id: str  # hex
    kind: str  # DVP or TRANSFER
    worker: int
    submit_us: int
    ack_us: int | None = None
    ack_node: str | None = None
    final_us: int | None = None
    code: str | None = None
    height: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TradeRecord:
        return cls(**doc)


class Workload:
    def __init__(self, net: Network, workers: int, rate: float, seed: int) -> None:
        demo = load_run_network(net.run_dir)
        self.net, self.rate, self.seed = net, rate, seed
        self.banks, self.bonds, self.cash = demo.banks, demo.bonds, demo.cash
        self.clients = ValidatorClients(net.run_dir, count=workers)
        self.history: list[TradeRecord] = []

    async def run(self, until: Deadline) -> None:
        """Every worker trades until ``until``, then finishes its trade."""
        await asyncio.gather(*(self._worker(w, until) for w in range(len(self.clients.all))))

    async def close(self) -> None:
        await self.clients.close()

    def _build(self, rng: random.Random, client: AsyncLedgerClient) -> tuple[str, bytes]:
        """A DvP through the two-party flow, or a transfer signed by its sender."""
        a, b = rng.sample(self.banks, 2)
        amount = rng.randint(1, AMOUNT_MAX)
        if rng.random() < DVP_FRACTION:
            bond, qty = rng.choice(self.bonds), rng.randint(1, AMOUNT_MAX)
            return "DVP", self.clients.trade((a, b, bond, qty, amount), self.cash)
        instrument = rng.choice((*self.bonds, self.cash))
        transfer = client.tx.transfer(instrument, a, b, amount)
        return "TRANSFER", sign(transfer, self.clients.keys[a], genesis=client.genesis).raw

    async def _worker(self, w: int, until: Deadline) -> None:
        rng = random.Random(f"chaos/{self.seed}/worker/{w}")
        client = self.clients.all[w]
        interval = len(self.clients.all) / self.rate
        next_at = time.monotonic() + rng.uniform(0, interval)
        while next_at < until.at:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at = max(next_at + interval, time.monotonic())
            kind, raw = self._build(rng, client)
            tid = SignedTransaction(raw).tx_id
            rec = TradeRecord(tid.hex(), kind, w, _now_us())
            self.history.append(rec)
            await self._trade(client, tid, raw, rec)

    @staticmethod
    async def _trade(client: AsyncLedgerClient, tid: bytes, raw: bytes, rec: TradeRecord) -> None:
        try:
            await client.submit(raw, wait=False)
        except LedgerError as e:
            rec.error = f"submit: {type(e).__name__}: {e}"[:500]
            return
        # One task per client: the endpoint that answered is still the current one.
        rec.ack_us, rec.ack_node = _now_us(), client.current_endpoint.server_name
        try:  # a refusal is a result too: receipt() returns it rather than raising
            receipt = await client.receipt(tid, timeout_s=FINALITY_TIMEOUT_S, prove_result=False)
        except LedgerError as e:
            rec.error = f"wait: {type(e).__name__}: {e}"[:500]
            return
        rec.final_us, rec.code, rec.height = _now_us(), receipt.code.name, receipt.height
