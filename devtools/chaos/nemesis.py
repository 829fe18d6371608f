"""The nemesis: a seeded schedule of faults, and the code that inflicts them on real processes.

The schedule (:func:`plan`) is a pure function of the seed, n, q and the fault kinds: the
same ``SEED`` gives the same sequence of faults, nodes, durations and gaps. Faults run one
at a time, each hitting ``1..n - q`` validators (never more: the ledger promises liveness
with up to n - q down, nothing beyond), held for its duration, then healed; the next fault
starts only after the healed nodes answer again and have caught up with the others, so the
bound holds even while a restarted node is still replaying blocks.

Kinds (``--faults``; all by default):

``kill``           SIGKILL (kill -9), restarted at the end of the window
``pause``          SIGSTOP, SIGCONT at the end: the process is frozen with its sockets open
``restart``        SIGTERM (a clean stop), started again at the end
``partition``      the chosen nodes are cut off from the rest, both ways (the proxy)
``delay``          every link to and from the chosen nodes delivers 100-500 ms late
``kill-leaders``   SIGKILL the current leader and the validators after it in the rotation
``pause-leaders``  the same with SIGSTOP

Which nodes lead is known only at run time, so leader faults name their nodes when they
start (from GetStatus: the leader of the highest view any validator reports); everything
else about them is in the schedule.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from client import AsyncLedgerClient, EndpointDown, NodeStatusView
from devtools.chaos.deadline import Deadline
from devtools.cluster import is_running, kill_node, start_node
from node.netconfig import Network

__all__ = ["FAULT_KINDS", "Fault", "FaultRecord", "Nemesis", "plan"]

FAULT_KINDS = (
    "kill",
    "pause",
    "restart",
    "partition",
    "delay",
    "kill-leaders",
    "pause-leaders",
)
FAULT_S = (3.0, 8.0)  # a fault lasts this long (uniform)
GAP_S = (2.0, 5.0)  # healthy time after each heal (uniform)
DELAY_MS = (100, 500)
RECOVER_TIMEOUT_S = 60.0  # healed nodes must answer and catch up within this
STOP_TIMEOUT_S = 15.0
POLL_S = 0.2
FAULTS_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Fault:
    """One planned fault: ``nodes`` is empty for leader faults (named when they start)."""

    kind: str
    count: int
    nodes: tuple[int, ...]
    duration_s: float
    gap_s: float
    delay_ms: int = 0


@dataclass(slots=True)
class FaultRecord:
    """What the nemesis did, in wall-clock microseconds."""

    kind: str
    nodes: list[int]
    start_us: int
    end_us: int = 0  # when the heal was issued
    recovered_us: int = 0  # when the healed nodes answered at the cluster's height (0: never)
    note: str = ""
    leader_at_start: int | None = None
    view_at_start: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "nodes": self.nodes,
            "start_us": self.start_us,
            "end_us": self.end_us,
            "recovered_us": self.recovered_us,
            "leader_at_start": self.leader_at_start,
            "view_at_start": self.view_at_start,
            "note": self.note,
        }


def plan(
    seed: int,
    n: int,
    q: int,
    kinds: Sequence[str],
    *,
    fault_s: tuple[float, float] = FAULT_S,
    gap_s: tuple[float, float] = GAP_S,
    faults_max: int = FAULTS_MAX,
) -> list[Fault]:
    """The fault sequence of ``seed`` (the run takes as many as fit in its duration).

    Kinds come in rounds, each a shuffle of all of ``kinds``, so the first ``len(kinds)``
    faults inflict every kind once, and so does each round after.
    """
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad or not kinds:
        raise ValueError(f"fault kinds {bad or '(none)'}: choose from {', '.join(FAULT_KINDS)}")
    if n - q < 1:
        raise ValueError(f"n={n}, q={q}: no node may fail (n - q = 0), so no fault can be injected")
    if not (0 < fault_s[0] <= fault_s[1] and 0 <= gap_s[0] <= gap_s[1]):
        raise ValueError(f"fault seconds {fault_s}, gap seconds {gap_s}: need 0 < min <= max")
    rng = random.Random(f"chaos/{seed}/{n}/{q}")
    out: list[Fault] = []
    round_: list[str] = []
    while len(out) < faults_max:
        if not round_:
            round_ = sorted(set(kinds))
            rng.shuffle(round_)
        kind = round_.pop()
        count = rng.randint(1, n - q)
        nodes = () if kind.endswith("-leaders") else tuple(sorted(rng.sample(range(n), count)))
        out.append(
            Fault(
                kind,
                count,
                nodes,
                duration_s=round(rng.uniform(*fault_s), 2),
                gap_s=round(rng.uniform(*gap_s), 2),
                delay_ms=rng.randint(*DELAY_MS) if kind == "delay" else 0,
            )
        )
    return out


def _now_us() -> int:
    return time.time_ns() // 1_000


ProxyCommand = Callable[[str], Awaitable[None]]


@dataclass
class Nemesis:
    """Inflicts faults on the validators of ``net``; ``proxy`` sends one proxy command."""

    net: Network
    proxy: ProxyCommand
    status: AsyncLedgerClient  # every endpoint, for views, leaders and heights
    log: Callable[[str], None] = print
    records: list[FaultRecord] = field(default_factory=list)

    async def run(self, faults: Sequence[Fault], until: Deadline) -> None:
        """Inflict ``faults`` in order while each fits before ``until``."""
        for f in faults:
            if f.duration_s > until.left_s():
                break
            await self._one(f)
            await asyncio.sleep(min(f.gap_s, until.left_s()))

    async def _one(self, f: Fault) -> None:
        statuses = await self._statuses()
        rec = FaultRecord(f.kind, list(f.nodes), _now_us())
        if statuses:
            top = max(statuses, key=lambda s: s.view)
            rec.leader_at_start, rec.view_at_start = top.leader, top.view
        if not f.nodes:
            lead = rec.leader_at_start if rec.leader_at_start is not None else 0
            rec.nodes = [(lead + k) % self.net.n for k in range(f.count)]
        self.records.append(rec)
        self.log(f"nemesis: {f.kind} {rec.nodes} for {f.duration_s:.1f} s")
        rec.start_us = _now_us()
        await self._inflict(f, rec.nodes)
        await asyncio.sleep(f.duration_s)
        rec.end_us = _now_us()
        await self._heal(f, rec.nodes)
        rec.recovered_us, rec.note = await self._recovered(rec.nodes)

    async def _inflict(self, f: Fault, nodes: list[int]) -> None:
        kind = f.kind.removesuffix("-leaders")
        if kind == "kill":
            await self._signal(nodes, signal.SIGKILL)
        elif kind == "pause":
            await self._signal(nodes, signal.SIGSTOP)
        elif kind == "restart":
            await self._signal(nodes, signal.SIGTERM)
            await self._gone(nodes)
        elif kind == "partition":
            for a, b in self._cross(nodes):
                await self.proxy(f"cut {a} {b}")
        elif kind == "delay":
            for a, b in self._cross(nodes):
                await self.proxy(f"delay {a} {b} {f.delay_ms}")

    async def _heal(self, f: Fault, nodes: list[int]) -> None:
        kind = f.kind.removesuffix("-leaders")
        if kind in ("kill", "restart"):
            for i in nodes:
                await asyncio.to_thread(start_node, self.net, i)
        elif kind == "pause":
            await self._signal(nodes, signal.SIGCONT)
        else:
            await self.proxy("heal-all")

    def _cross(self, nodes: list[int]) -> list[tuple[int, int]]:
        """Every directed link between ``nodes`` and the others."""
        rest = [i for i in range(self.net.n) if i not in nodes]
        return [(a, b) for a in nodes for b in rest] + [(b, a) for a in nodes for b in rest]

    async def _signal(self, nodes: list[int], sig: int) -> None:
        for i in nodes:
            await asyncio.to_thread(kill_node, self.net, i, sig)

    async def _gone(self, nodes: list[int]) -> None:
        """Wait for a clean stop; SIGKILL what is still there after STOP_TIMEOUT_S."""
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(is_running(self.net, i) for i in nodes):
            if time.monotonic() > deadline:
                await self._signal(nodes, signal.SIGKILL)
                break
            await asyncio.sleep(POLL_S)

    async def _statuses(self) -> list[NodeStatusView]:
        return [s for s in await self.status.status() if not isinstance(s, EndpointDown)]

    async def _recovered(self, nodes: list[int]) -> tuple[int, str]:
        """When every node of ``nodes`` answers at the height the others had at the heal."""
        names = {self.net.nodes[i].name for i in nodes}
        others = [s.height for s in await self._statuses() if s.endpoint.server_name not in names]
        target = max(others, default=0)
        deadline = time.monotonic() + RECOVER_TIMEOUT_S
        while time.monotonic() < deadline:
            mine = [s for s in await self._statuses() if s.endpoint.server_name in names]
            if len(mine) == len(names) and all(s.height >= target for s in mine):
                return _now_us(), ""
            await asyncio.sleep(POLL_S)
        note = f"{sorted(names)} not caught up to height {target} within {RECOVER_TIMEOUT_S:.0f} s"
        self.log(f"nemesis: {note}")
        return 0, note

    async def heal_everything(self) -> None:
        """The end of the run: every process running and unfrozen, every link whole."""
        await self.proxy("heal-all")
        for i in range(self.net.n):
            if is_running(self.net, i):
                await asyncio.to_thread(kill_node, self.net, i, signal.SIGCONT)
            else:
                await asyncio.to_thread(start_node, self.net, i)
