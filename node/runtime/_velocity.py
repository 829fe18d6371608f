"""Velocity alerts (issue 15 item 5; docs/cluster.md "Velocity alerts").

Each node watches the transactions it commits for accounts that move too often or too
much in a short time: per account, the settled moves in the last ``VELOCITY_WINDOW_MS``
of block time (count), and their cash value per cash token (minor units). An account
*crossing* ``VELOCITY_TXS_MAX`` moves, or ``VELOCITY_VALUE_MAX_MINOR`` of one token,
logs one ``velocity_alert`` line (WARNING) and counts ``ledger_velocity_alerts{rule}``;
it alerts again only after falling back within the bound, so a busy account makes one
line per episode, not one per block.

These are screening signals for a compliance officer, not consensus rules: a settlement
that passed every rule is not refused for them, each node may tune them without a new
genesis, and nothing here is under the state root. Counted: recorded ``OK`` results of
``Transfer`` (cash value only for a cash token), ``DvP`` and ``PendingDvP`` settled at
once (both parties; the cash leg is the value) and ``Mint`` (the recipient). Pending
trades settled later by recycling are not counted (their events carry no amounts).
Memory is bounded: at most ``VELOCITY_EVENTS_MAX`` moves are kept per account (the
oldest dropped first, so a sum is then a lower bound) and accounts are participants.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from node.config import (
    VELOCITY_EVENTS_MAX,
    VELOCITY_TXS_MAX,
    VELOCITY_VALUE_MAX_MINOR,
    VELOCITY_WINDOW_MS,
)
from node.runtime._logs import event
from node.settlement import (
    DvP,
    InstrumentKind,
    Mint,
    PendingDvP,
    Registry,
    ResultCode,
    Transaction,
    Transfer,
    TxResult,
)

__all__ = ["Alert", "VelocityWatch", "moves_of"]

Move = tuple[str, str, int]  # (account, cash token or "", value in its minor units)


@dataclass(frozen=True, slots=True)
class Alert:
    account: str
    rule: str  # "count" or "value"
    observed: int
    limit: int
    cash: str = ""


def moves_of(reg: Registry, tx: Transaction | None) -> list[Move]:
    """What one settled transaction (its decoded body) counts as, per account."""
    match tx:
        case DvP() | PendingDvP():
            return [(tx.seller, tx.cash, tx.amount), (tx.buyer, tx.cash, tx.amount)]
        case Transfer():
            cash = _cash(reg, tx.instrument)
            value = tx.amount if cash else 0
            return [(tx.sender, cash, value), (tx.receiver, cash, value)]
        case Mint():
            cash = _cash(reg, tx.instrument)
            return [(tx.to, cash, tx.amount if cash else 0)]
        case _:
            return []


def _cash(reg: Registry, instrument: str) -> str:
    inst = reg.instrument_by_id.get(instrument)
    return instrument if inst is not None and inst.kind is InstrumentKind.CASH else ""


class VelocityWatch:
    """Sliding windows per account over the blocks one node commits."""

    def __init__(
        self,
        registry: Callable[[], Registry],
        *,
        window_ms: int = VELOCITY_WINDOW_MS,
        txs_max: int = VELOCITY_TXS_MAX,
        value_max: int = VELOCITY_VALUE_MAX_MINOR,
        events_max: int = VELOCITY_EVENTS_MAX,
    ) -> None:
        self.registry = registry  # the reference data at the node's head (ADR 0016)
        self.window_ms, self.txs_max, self.value_max = window_ms, txs_max, value_max
        self.events_max = events_max
        self._windows: dict[str, _Window] = {}
        self._over: set[tuple[str, str, str]] = set()  # (account, rule, cash) in alert

    def block(
        self, time_ms: int, bodies: Sequence[Transaction | None], results: Sequence[TxResult]
    ) -> list[Alert]:
        """Take one committed block (its transactions' bodies, as execution decoded them,
        and its results); log and return the alerts it raises."""
        settled = (
            tx
            for tx, res in zip(bodies, results, strict=False)
            if res.recorded and res.code is ResultCode.OK
        )
        reg = self.registry()
        alerts = self.observe(time_ms, (m for tx in settled for m in moves_of(reg, tx)))
        for a in alerts:
            event(
                "velocity_alert",
                logging.WARNING,
                account=a.account,
                rule=a.rule,
                observed=a.observed,
                limit=a.limit,
                cash=a.cash,
                window_ms=self.window_ms,
            )
        return alerts

    def observe(self, time_ms: int, moves: Iterable[Move]) -> list[Alert]:
        touched: set[str] = set()
        for account, cash, value in moves:
            window = self._windows.get(account)
            if window is None:
                window = self._windows[account] = _Window(self.events_max)
            if account not in touched:
                # Only accounts that move can cross a bound; the others are looked at when
                # next they move (a window only shrinks while an account is idle). Whether
                # it fell back within a bound meanwhile is judged before its new moves.
                touched.add(account)
                self._check(account, time_ms, alert=False)
            window.add(time_ms, cash, value)
        return [a for account in sorted(touched) for a in self._check(account, time_ms)]

    def _check(self, account: str, time_ms: int, *, alert: bool = True) -> list[Alert]:
        """End the alerts of the bounds ``account`` is within at ``time_ms`` and, if
        ``alert``, raise those of the bounds it has just crossed."""
        window = self._windows[account]
        window.expire(time_ms - self.window_ms)
        totals = {cash: 0 for (acc, rule, cash) in self._over if acc == account and cash}
        totals.update(window.sums)
        checks = [("count", "", len(window.moves), self.txs_max)]
        checks += [("value", c, v, self.value_max) for c, v in sorted(totals.items())]
        out: list[Alert] = []
        for rule, cash, observed, limit in checks:
            key = (account, rule, cash)
            if observed <= limit:
                self._over.discard(key)
            elif alert and key not in self._over:
                self._over.add(key)
                out.append(Alert(account, rule, observed, limit, cash))
        return out


class _Window:
    """One account's moves in the window, oldest first, with each cash token's sum kept as
    moves enter and leave: a block costs what it adds and what expires, not a pass over
    the whole window (up to ``VELOCITY_EVENTS_MAX`` moves per touched account per block,
    measured at 13-15% of a validator's CPU under DvP load; docs/performance.md)."""

    __slots__ = ("events_max", "moves", "sums")

    def __init__(self, events_max: int) -> None:
        self.events_max = events_max
        self.moves: deque[tuple[int, str, int]] = deque()
        self.sums: dict[str, int] = {}  # cash token -> value of its moves in ``moves``

    def add(self, time_ms: int, cash: str, value: int) -> None:
        if len(self.moves) >= self.events_max:
            self._drop()  # the memory bound: the oldest goes first, so sums become lower bounds
        self.moves.append((time_ms, cash, value))
        if cash:
            self.sums[cash] = self.sums.get(cash, 0) + value

    def expire(self, cutoff_ms: int) -> None:
        """Drop the moves at or before ``cutoff_ms``."""
        while self.moves and self.moves[0][0] <= cutoff_ms:
            self._drop()

    def _drop(self) -> None:
        _, cash, value = self.moves.popleft()
        if cash:
            left = self.sums.get(cash, 0) - value
            if left:
                self.sums[cash] = left
            else:
                self.sums.pop(cash, None)  # no value left in the window: nothing to check
