"""Fails management (issue 14 item 5): ``ledger pending``, ``ledger fails`` and ``ledger
report settlement``, over the SDK.

Ranges are block heights, ``--from`` to ``--to`` inclusive (the head when omitted): the
ledger's own clock, so two runs over the same range agree on every node. What counts:

- a **trade** is a recorded DvP or pending DvP (its first authentic copy) in the range;
- **settled on first attempt**: recorded ``OK``; **pending**: recorded
  ``PENDING_SETTLEMENT``; **settled after recycling**: an ``OK`` event in the range
  (its trade may have been recorded before ``--from``);
- a **fail** (``settlement_fail``): a trade refused for a short leg, a full pending
  book, a matured bond or a frozen holding (``FAIL_CODES``), or a pending trade's
  ``FAILED_DEADLINE`` / ``CANCELLED`` / ``MATURED`` event, or its ``COSIGN_REQUIRED`` /
  ``TRADE_LIMIT`` event (the rules in force at settlement refused it: review 32;
  ``FAIL_EVENT_CODES``); other
  refusals (expired, unauthorized...) are bad instructions, counted apart;
- **repos lapsed**: ``REPO_LAPSED`` events (review 32), a repo nobody closed by its
  default deadline: a default, not a fail (no settlement instruction was entered);
- **fail rate**: fails / trades;
- **time to settle after recycling**: from the block that recorded the trade pending to
  the block whose end settled it (block times), p50 and p99;
- **finality**, p50 and p99 over the range's blocks with trades: from the first
  validator seeing a block's proposal to the first holding its commit certificate, the
  earliest over every validator's timeline (``GetTimeline``; a validator keeps the last
  ``TIMELINE_HEIGHTS_MAX`` heights, older blocks are left out and counted). A trade's
  finality from its client's submission adds its wait for the block, which is not on
  the chain: each validator exports that as the histogram
  ``ledger_commit_latency_seconds`` (docs/cluster.md).

Block contents and events are the node's report (each block's certificate is checked);
a receipt proves one trade's outcome.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from client._async import BlockTiming, BlockView, EndpointDown, PendingTrade
from client._cli_common import amount, emit_json, table, timestamp
from node.settlement import DvP, PendingDvP, ResultCode, settlement_fail

__all__ = [
    "Fail",
    "SettlementReport",
    "fails_of",
    "finality_of",
    "print_fails",
    "print_pending",
    "print_report",
    "report_of",
]

RC = ResultCode


@dataclass(frozen=True, slots=True)
class Fail:
    height: int
    tx_id: bytes
    code: ResultCode
    event: bool  # a pending trade's later outcome, not the trade's own result


@dataclass
class SettlementReport:
    from_height: int
    to_height: int
    trades: int = 0
    settled_first_attempt: int = 0
    pending: int = 0
    settled_after_recycling: int = 0
    partly_settled: int = 0
    repos_lapsed: int = 0  # REPO_LAPSED events (review 32): a repo default, not a trade's fail
    failed: Counter[str] = field(default_factory=Counter)
    refused_other: Counter[str] = field(default_factory=Counter)
    recycle_ms: list[int] = field(default_factory=list)
    finality_ms: list[int] = field(default_factory=list)
    finality_unknown: int = 0  # blocks with trades no validator's timeline still holds

    @property
    def fail_rate(self) -> float:
        return sum(self.failed.values()) / self.trades if self.trades else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "from_height": self.from_height,
            "to_height": self.to_height,
            "trades": self.trades,
            "settled_first_attempt": self.settled_first_attempt,
            "pending": self.pending,
            "settled_after_recycling": self.settled_after_recycling,
            "partly_settled_events": self.partly_settled,
            "repos_lapsed": self.repos_lapsed,
            "failed_by_reason": dict(self.failed),
            "fail_rate": round(self.fail_rate, 6),
            "refused_other": dict(self.refused_other),
            "settle_after_recycling_ms": {
                "count": len(self.recycle_ms),
                "p50": _percentile(self.recycle_ms, 50),
                "p99": _percentile(self.recycle_ms, 99),
            },
            "finality_ms": {
                "blocks": len(self.finality_ms),
                "p50": _percentile(self.finality_ms, 50),
                "p99": _percentile(self.finality_ms, 99),
                "blocks_not_in_timelines": self.finality_unknown,
            },
        }


def _percentile(values: list[int], p: int) -> int | None:
    """Nearest-rank percentile of integers (None when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-p * len(ordered) // 100))  # ceil(p/100 * n), at least 1
    return ordered[rank - 1]


def _trades(b: BlockView) -> Iterator[tuple[bytes, ResultCode]]:
    for t in b.transactions:
        if t.recorded and isinstance(t.tx, DvP | PendingDvP):
            yield t.tx_id, t.code


def fails_of(blocks: Iterable[BlockView]) -> list[Fail]:
    out: list[Fail] = []
    for b in blocks:
        out += [
            Fail(b.height, tid, code, False)
            for tid, code in _trades(b)
            if settlement_fail(code, event=False)
        ]
        out += [
            Fail(b.height, e.tx_id, e.code, True)
            for e in b.events
            if settlement_fail(e.code, event=True)
        ]
    return out


def finality_of(timelines: Iterable[list[BlockTiming] | EndpointDown]) -> dict[int, int]:
    """Per height, ms from the earliest proposal to the earliest commit certificate any
    validator's timeline shows (heights where either is missing are left out)."""
    proposed: dict[int, int] = {}
    committed: dict[int, int] = {}
    for timeline in timelines:
        if isinstance(timeline, EndpointDown):
            continue
        for t in timeline:
            if t.proposed_us:
                proposed[t.height] = min(proposed.get(t.height, t.proposed_us), t.proposed_us)
            if t.commit_qc_us:
                committed[t.height] = min(committed.get(t.height, t.commit_qc_us), t.commit_qc_us)
    return {
        h: (committed[h] - us) // 1000
        for h, us in proposed.items()
        if h in committed and committed[h] >= us
    }


def report_of(
    blocks: Iterable[BlockView],
    from_height: int,
    to_height: int,
    recorded_at_ms: Callable[[bytes], int | None],
    finality_ms: dict[int, int] | None = None,
) -> SettlementReport:
    """The report over ``blocks``. ``recorded_at_ms(tx_id)``: the block time of a trade
    recorded before the range (None: unknown, left out of the timing); ``finality_ms``:
    per height, proposal to commit certificate (``finality_of``)."""
    r = SettlementReport(from_height, to_height)
    pending_since: dict[bytes, int] = {}
    for b in blocks:
        if any(True for _ in _trades(b)):
            known = None if finality_ms is None else finality_ms.get(b.height)
            if known is None:
                r.finality_unknown += 1
            else:
                r.finality_ms.append(known)
        for tid, code in _trades(b):
            r.trades += 1
            if code is RC.OK:
                r.settled_first_attempt += 1
            elif code is RC.PENDING_SETTLEMENT:
                r.pending += 1
                pending_since[tid] = b.time_ms
            elif settlement_fail(code, event=False):
                r.failed[code.name] += 1
            else:
                r.refused_other[code.name] += 1
        for e in b.events:
            if e.code is RC.OK:
                r.settled_after_recycling += 1
                since = pending_since.get(e.tx_id)
                since = recorded_at_ms(e.tx_id) if since is None else since
                if since is not None:
                    r.recycle_ms.append(b.time_ms - since)
            elif e.code is RC.PARTIALLY_SETTLED:
                r.partly_settled += 1
            elif e.code is RC.REPO_LAPSED:
                r.repos_lapsed += 1
            elif settlement_fail(e.code, event=True):
                r.failed[e.code.name] += 1
    return r


def print_report(r: SettlementReport, as_json: bool) -> None:
    if as_json:
        emit_json(r.to_json())
        return
    doc = r.to_json()
    timing = doc["settle_after_recycling_ms"]
    rows: list[tuple[object, ...]] = [
        ("trades", r.trades),
        ("settled on first attempt", r.settled_first_attempt),
        ("recorded pending", r.pending),
        ("settled after recycling", r.settled_after_recycling),
        ("partly settled (events)", r.partly_settled),
        ("repos lapsed (events; not a trade's fail)", r.repos_lapsed),
        *((f"failed: {k}", v) for k, v in sorted(r.failed.items())),
        ("fail rate", f"{100 * r.fail_rate:.2f}%"),
        *((f"refused (not a fail): {k}", v) for k, v in sorted(r.refused_other.items())),
        ("settle after recycling p50 ms", _or_dash(timing["p50"])),
        ("settle after recycling p99 ms", _or_dash(timing["p99"])),
        ("finality p50 ms (proposal to commit)", _or_dash(doc["finality_ms"]["p50"])),
        ("finality p99 ms (proposal to commit)", _or_dash(doc["finality_ms"]["p99"])),
        ("blocks past the validators' timelines", r.finality_unknown),
    ]
    print(f"settlement report, blocks {r.from_height}..{r.to_height} (heights, inclusive)")
    table(("measure", "value"), rows, right=(1,))
    print("finality from submission: each node's ledger_commit_latency_seconds histogram")


def _or_dash(v: object) -> object:
    return "-" if v is None else v


def print_fails(fails: list[Fail], describe: Callable[[bytes], str], as_json: bool) -> None:
    if as_json:
        emit_json(
            [
                {
                    "height": f.height,
                    "tx_id": f.tx_id.hex(),
                    "reason": f.code.name,
                    "event": f.event,
                    "trade": describe(f.tx_id),
                }
                for f in fails
            ]
        )
        return
    if not fails:
        print("no settlement fails in the range")
        return
    rows = [
        (
            f.height,
            f.tx_id.hex()[:16],
            f.code.name,
            "event" if f.event else "own",
            describe(f.tx_id),
        )
        for f in fails
    ]
    table(("height", "tx id", "reason", "result", "trade"), rows, right=(0,))


def print_pending(height: int, book: tuple[PendingTrade, ...], as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "height": height,
                "pending": [
                    {
                        "tx_id": p.tx_id.hex(),
                        "since": [p.height, p.position],
                        "seller": p.seller,
                        "buyer": p.buyer,
                        "bond": p.bond,
                        "quantity_left": p.quantity_left,
                        "cash": p.cash,
                        "amount_left": p.amount_left,
                        "lot_quantity": p.lot_quantity,
                        "deadline_ms": p.deadline_ms,
                        "held_by": [
                            who
                            for who, held in (
                                (p.seller, p.held_by_seller),
                                (p.buyer, p.held_by_buyer),
                            )
                            if held
                        ],
                    }
                    for p in book
                ],
            }
        )
        return
    print(f"{len(book)} pending trades after block {height}, in recycling order")
    if book:
        rows = [
            (
                p.tx_id.hex()[:16],
                f"{p.height}/{p.position}",
                f"{p.seller} -> {p.buyer}",
                f"{amount(p.quantity_left)} {p.bond}",
                f"{amount(p.amount_left)} {p.cash}",
                amount(p.lot_quantity),
                timestamp(p.deadline_ms),
                _holds(p),
            )
            for p in book
        ]
        headers = ("tx id", "since", "trade", "bonds left", "cash left", "lot", "deadline", "held")
        table(headers, rows)


def _holds(p: PendingTrade) -> str:
    held = [who for who, on in ((p.seller, p.held_by_seller), (p.buyer, p.held_by_buyer)) if on]
    return ", ".join(held) or "-"
