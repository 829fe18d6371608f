"""``make bench WORKLOAD=mixed FAIL_RATE=f`` (issue 14 item 7): under-funded pending trades
and coupons mixed into the DvP load, on their own open-loop schedule beside it.

A share ``f`` of the offered rate is pending DvPs (``PendingDvP``) whose seller lacks the
bonds, so each is recorded ``PENDING_SETTLEMENT`` and waits; the DvP load runs at the
rest, ``(1 - f) x rate``. Every other pending trade (even index) is *funded*: once its
``PENDING_SETTLEMENT`` receipt is final, the bond's issuer mints the missing units to the
seller and the trade settles in recycling (event ``OK``); the others are *never funded*
and fail at a deadline a few seconds out (``FAILED_DEADLINE``). The funded ones sell
``FUNDED_UNITS`` (more than any bank holds at genesis) from sellers that only ever sell
in these trades to buyers that never sell in them, so a mint funds exactly one trade's
worth and no trade is funded by another's mint out of order; the never-funded ones sell
``NEVER_UNITS``, more than can ever be minted to anybody in a run. Every
``COUPON_EVERY_S`` seconds the paying agent pays the next coupon period already due of
the network's monthly-coupon bond (``node.genesis.DEMO_DUE_BOND``).

Each pending trade records its scheduled and actual send time, when its
``PENDING_SETTLEMENT`` receipt came back (``pending_us``), when its funding mint was final
(``funded_us``, funded ones), and when the client knew the final outcome, proven
(``end_us``, ``wait_settled``), with that outcome's code. ``devtools/bench/report.py``
summarizes them (``mixed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from client import (
    LedgerError,
    ParticipantKey,
    RejectedError,
    SignedTransaction,
    Transactions,
    load_key,
    sign,
)
from node.genesis import DEMO_DUE_BOND

if TYPE_CHECKING:
    from devtools.demo.run import ValidatorClients
    from node.genesis import DemoNetwork

__all__ = ["WORKLOADS", "Mixed"]

WORKLOADS = ("dvp", "mixed", "repo")  # repo: devtools/bench/repo.py
FUNDED_UNITS = 1_000_000_000  # > any bank's genesis holding (DEMO_BOND_UNITS, 10^7)
NEVER_UNITS = 10**18  # more than any participant can come to hold in a run
PRICE = 1  # cents per pending trade: the short leg is the bonds
FUNDED_DEADLINE_S = 60.0  # ample: a funded trade must settle, not expire
NEVER_DEADLINE_S = 3.0  # a never-funded trade fails this long after it is sent
COUPON_EVERY_S = 10.0
AGENT_CASH = 10**12  # cents minted to the paying agent first, for the coupons
SETTLE_TIMEOUT_S = 90.0
TICK_S = 1.0
# (seller, buyer) of funded trades: sellers never buy in them, buyers never sell.
FUNDED_PAIRS = (("BANK01", "BANK02"), ("BANK03", "BANK04"), ("BANK05", "BANK06"))


@dataclass(slots=True)
class PendingRecord:
    sched_us: int
    funded: bool
    start_us: int = 0
    pending_us: int | None = None  # the PENDING_SETTLEMENT receipt is final
    funded_us: int | None = None  # the funding mint is final
    end_us: int | None = None  # the final outcome is known, proven
    first_code: str = "NO_OUTCOME"  # the trade's own result
    code: str = "NO_OUTCOME"  # its final outcome (the event's code, or the refusal)


def _now_us() -> int:
    return time.time_ns() // 1_000


class Mixed:
    """The pending trades and coupons of one run, sent through ``clients``."""

    def __init__(self, clients: ValidatorClients, demo: DemoNetwork, run_dir: Path) -> None:
        self.clients, self.demo = clients, demo
        self.t = Transactions(demo.genesis)
        who = {*demo.banks, "TREASURY", "CASHCO"}
        self.keys: dict[str, ParticipantKey] = {
            p: load_key(run_dir / "participants" / f"{p}.key") for p in who
        }
        self.pending: list[PendingRecord] = []
        self.coupons: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def _sign(self, tx: Any, *signers: str) -> SignedTransaction:
        return sign(tx, *(self.keys[s] for s in signers), genesis=self.demo.genesis)

    async def fund_agent(self) -> None:
        """Cash for the coupons, before the clock starts."""
        mint = self.t.issue(self.demo.cash, "TREASURY", AGENT_CASH, "CASHCO")
        await self.clients.all[0].submit(self._sign(mint, "CASHCO"))

    async def drive(self, t0: float, t0_us: int, rate: float, seconds: float) -> None:
        """Pending trades at ``rate`` and a coupon every COUPON_EVERY_S, from monotonic
        ``t0`` (wall clock ``t0_us``) for ``seconds``, open loop like the DvP load."""
        due = self._due_periods()
        events = [(i / rate, "pending", i) for i in range(int(seconds * rate))]
        events += [
            ((k + 1) * COUPON_EVERY_S, "coupon", p)
            for k, p in enumerate(due)
            if (k + 1) * COUPON_EVERY_S < seconds
        ]
        for at, kind, arg in sorted(events):
            delay = t0 + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sched_us = t0_us + round(at * 1e6)
            job = self._trade(arg, sched_us) if kind == "pending" else self._coupon(arg, sched_us)
            task = asyncio.create_task(job)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def finish(self, timeout_s: float) -> None:
        """Wait for every pending trade's outcome (at most ``timeout_s``). A deadline ends
        a trade in the first block after it, and once the load stops an idle cluster makes
        none: so a 1-unit transfer every TICK_S while any is waiting."""
        end = time.monotonic() + timeout_s
        while self._tasks and time.monotonic() < end:
            await asyncio.wait(set(self._tasks), timeout=TICK_S)
            if self._tasks:
                await self._tick()
        for task in list(self._tasks):
            task.cancel()

    async def _tick(self) -> None:
        seller, buyer = self.demo.banks[0], self.demo.banks[1]
        tx = self.t.transfer(self.demo.bonds[0], seller, buyer, 1)
        with contextlib.suppress(LedgerError):
            await self.clients.all[0].submit(self._sign(tx, seller), prove_result=False)

    def record(self) -> dict[str, Any]:
        """The raw record's ``mixed`` section."""
        return {
            "pending": [asdict(p) for p in self.pending],
            "coupons": self.coupons,
            "funded_units": FUNDED_UNITS,
            "never_deadline_s": NEVER_DEADLINE_S,
            "coupon_every_s": COUPON_EVERY_S,
        }

    def _due_periods(self) -> list[int]:
        """The monthly bond's non-final periods already due, earliest first."""
        if DEMO_DUE_BOND not in self.demo.lifecycle:
            return []
        now_ms = int(time.time() * 1000)
        payable = self.demo.genesis.schedules[DEMO_DUE_BOND][:-1]
        return [k for k, at in enumerate(payable, start=1) if at <= now_ms]

    async def _coupon(self, period: int, sched_us: int) -> None:
        entry: dict[str, Any] = {"sched_us": sched_us, "period": period, "start_us": _now_us()}
        self.coupons.append(entry)
        stx = self._sign(self.t.coupon(DEMO_DUE_BOND, period), "TREASURY")
        try:
            receipt = await self.clients.all[0].submit(stx, prove_result=False)
            entry["code"] = receipt.code.name
        except RejectedError as e:
            entry["code"] = e.receipt.code.name
        except LedgerError as e:
            entry["code"] = type(e).__name__
        entry["end_us"] = _now_us()

    async def _trade(self, i: int, sched_us: int) -> None:
        rec = PendingRecord(sched_us, funded=i % 2 == 0)
        self.pending.append(rec)
        seller, buyer = FUNDED_PAIRS[(i // 2) % len(FUNDED_PAIRS)]
        if not rec.funded:  # any bank may sell what nobody holds
            banks = self.demo.banks
            seller, buyer = banks[i % len(banks)], banks[(i + 1) % len(banks)]
        units = FUNDED_UNITS if rec.funded else NEVER_UNITS
        deadline = FUNDED_DEADLINE_S if rec.funded else NEVER_DEADLINE_S
        bond = self.demo.bonds[0]
        dvp = self.t.pending_dvp(seller, buyer, bond, units, self.demo.cash, PRICE, deadline)
        client = self.clients.via(i)
        rec.start_us = max(_now_us(), sched_us)
        try:
            receipt = await client.submit(self._sign(dvp, seller, buyer), prove_result=False)
            rec.pending_us, rec.first_code = _now_us(), receipt.code.name
            if rec.funded:
                mint = self.t.issue(bond, seller, units, "TREASURY")
                await client.submit(self._sign(mint, "TREASURY"), prove_result=False)
                rec.funded_us = _now_us()
            settled = await client.wait_settled(receipt.tx_id, timeout_s=SETTLE_TIMEOUT_S)
            rec.code = _final_code(settled)
        except RejectedError as e:
            rec.code = _final_code(e.receipt)
            if rec.pending_us is None:
                rec.first_code = rec.code
        except LedgerError as e:
            rec.code = type(e).__name__
        rec.end_us = _now_us()


def _final_code(receipt: Any) -> str:
    """The event's code for a pending trade, else the transaction's own."""
    ev = receipt.event_proof
    return str(receipt.code.name if ev is None else ev.code.name)
