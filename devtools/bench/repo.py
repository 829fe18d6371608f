"""``make bench WORKLOAD=repo`` (issue 18 item 6): repo round trips beside the DvP load.

A ``REPO_SHARE`` of the offered rate is repo round trips, on their own open-loop schedule
(like ``devtools/bench/mixed.py``); the DvP load runs at the rest. Each round trip opens an
intraday repo (``RepoOpen``, signed by both, ``QUANTITY`` bond units against ``PURCHASE``
cents at ``RATE_BP``), waits for its receipt to be final, then closes it at once signed
by both parties (an early close needs both: docs/ledger.md "Repo"), and waits for that
receipt. Pairs of banks go round the ring, so every repo is between two parties that
hold the bonds and the cash at genesis.

Each round trip records its scheduled time, when its open was sent and final
(``open_start_us``, ``open_end_us``), when its close was sent and final, and both codes.
``devtools/bench/report.py`` (``repo_summary``) gives the latency of each leg and of the
round trip (p50, p90, p99), over the round trips scheduled in the measurement window.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from client import LedgerError, ParticipantKey, RejectedError, Transactions, load_key, sign

if TYPE_CHECKING:
    from devtools.demo.run import ValidatorClients
    from node.genesis import DemoNetwork

__all__ = ["REPO_SHARE", "RepoLoad"]

REPO_SHARE = 0.2  # of the offered rate: repo round trips; the DvP load runs at the rest
QUANTITY = 10  # bond units per repo
PURCHASE = 1_000  # cents per repo
RATE_BP = 500
TERM_S = 3600.0  # the close time; closes come early, signed by both
GRACE_S = 3600.0


@dataclass(slots=True)
class RoundTrip:
    sched_us: int
    open_start_us: int = 0
    open_end_us: int | None = None
    close_start_us: int | None = None
    close_end_us: int | None = None
    open_code: str = "NO_OUTCOME"
    close_code: str = "NO_OUTCOME"


def _now_us() -> int:
    return time.time_ns() // 1_000


class RepoLoad:
    """The repo round trips of one run, sent through ``clients``."""

    def __init__(self, clients: ValidatorClients, demo: DemoNetwork, run_dir: Path) -> None:
        self.clients, self.demo = clients, demo
        self.t = Transactions(demo.genesis)
        self.keys: dict[str, ParticipantKey] = {
            p: load_key(run_dir / "participants" / f"{p}.key") for p in demo.banks
        }
        self.trips: list[RoundTrip] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count()
        self._run = f"{time.time_ns():x}"  # repo ids are never reused: unique per run

    async def drive(self, t0: float, t0_us: int, rate: float, seconds: float) -> None:
        """Round trips at ``rate`` from monotonic ``t0`` (wall clock ``t0_us``)."""
        for i in range(int(seconds * rate)):
            at = i / rate
            delay = t0 + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._trip(i, t0_us + round(at * 1e6)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def finish(self, timeout_s: float) -> None:
        """Wait for the round trips still running (at most ``timeout_s``)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in list(self._tasks):
            task.cancel()

    def record(self) -> dict[str, Any]:
        """The raw record's ``repo`` section."""
        return {
            "trips": [asdict(t) for t in self.trips],
            "quantity": QUANTITY,
            "purchase": PURCHASE,
            "rate_bp": RATE_BP,
        }

    async def _trip(self, i: int, sched_us: int) -> None:
        trip = RoundTrip(sched_us)
        self.trips.append(trip)
        banks = self.demo.banks
        borrower, lender = banks[i % len(banks)], banks[(i + 1) % len(banks)]
        repo_id = f"B{self._run}.{next(self._ids)}"
        close_ms = int(time.time() * 1000 + TERM_S * 1000)
        tx = self.t.repo_open(
            repo_id, borrower, lender, self.demo.bonds[0], QUANTITY, self.demo.cash, PURCHASE,
            close_ms, close_ms + int(GRACE_S * 1000), rate_bp=RATE_BP,
        )  # fmt: skip
        both = (self.keys[borrower], self.keys[lender])
        client = self.clients.via(i)
        trip.open_start_us = max(_now_us(), sched_us)
        trip.open_code = await _leg(client, sign(tx, *both, genesis=self.demo.genesis))
        trip.open_end_us = _now_us()
        if trip.open_code != "OK":
            return
        close = self.t.repo_close(repo_id, borrower, lender, borrower, lender)
        trip.close_start_us = _now_us()
        trip.close_code = await _leg(client, sign(close, *both, genesis=self.demo.genesis))
        trip.close_end_us = _now_us()


async def _leg(client: Any, stx: Any) -> str:
    """One leg submitted and final: its code, or the SDK error's name."""
    try:
        receipt = await client.submit(stx, prove_result=False)
        return str(receipt.code.name)
    except RejectedError as e:
        return str(e.receipt.code.name)
    except LedgerError as e:
        return type(e).__name__
