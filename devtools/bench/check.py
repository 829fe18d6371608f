"""``make bench ... CHECK="p50<=6,p99<=20"``: thresholds on a benchmark result.

A check is a comma-separated list of ``METRIC OP NUMBER`` (spaces allowed, OP one of
``<= < >= >``). Latencies are milliseconds: ``p50 p90 p99 p999 max mean`` from each
trade's *scheduled* send time (the honest figure: a generator that fell behind does not
hide the delay), ``sent_p50`` ... ``sent_mean`` from when the trade was actually sent;
``tps`` is the committed throughput (trades/s) and ``not_ok`` the number of counted
trades without an OK outcome (refused, failed or no outcome). A metric with no value
(no committed trade) misses its threshold. ``parse`` raises ``CheckSyntaxError`` with a
message a person can act on; ``missed`` lists each threshold a result misses.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["METRICS", "CheckSyntaxError", "Threshold", "describe", "missed", "parse", "value"]

_LATENCY = ("p50", "p90", "p99", "p999", "max", "mean")
_Read = Callable[[dict[str, Any]], "float | None"]


def _field(section: str, key: str) -> _Read:
    def read(result: dict[str, Any]) -> float | None:
        got: float | None = result[section][key]
        return got

    return read


def _tps(result: dict[str, Any]) -> float | None:
    got: float | None = result["throughput_tps"]
    return got


def _not_ok(result: dict[str, Any]) -> float | None:
    return float(sum(result["failed_by_code"].values()))


# metric -> (unit, how to read it from a result of devtools.bench.report.summarize)
METRICS: dict[str, tuple[str, _Read]] = {
    **{k: ("ms", _field("latency_ms", k)) for k in _LATENCY},
    **{f"sent_{k}": ("ms", _field("latency_sent_ms", k)) for k in _LATENCY},
    "tps": ("trades/s", _tps),
    "not_ok": ("trades", _not_ok),
}
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_TERM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([0-9]+(?:\.[0-9]+)?)\s*$")


class CheckSyntaxError(ValueError):
    """A CHECK that does not parse; the message says which term and what is expected."""


@dataclass(frozen=True, slots=True)
class Threshold:
    metric: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g} {METRICS[self.metric][0]}"


def parse(text: str) -> list[Threshold]:
    """``"p50<=6, p99<=20"`` -> thresholds, in order (CheckSyntaxError if malformed)."""
    if not text.strip():
        raise CheckSyntaxError('CHECK is empty; give e.g. CHECK="p50<=6,p99<=20"')
    out = []
    for term in text.split(","):
        m = _TERM.match(term)
        if m is None:
            raise CheckSyntaxError(
                f"CHECK term {term.strip()!r} is not METRIC OP NUMBER "
                f"(OP one of <=, <, >=, >; e.g. p99<=20)"
            )
        metric, op, number = m.groups()
        if metric not in METRICS:
            raise CheckSyntaxError(
                f"CHECK names an unknown metric {metric!r}; known: {', '.join(METRICS)}"
            )
        bound = float(number)
        if not math.isfinite(bound):  # pragma: no cover - the pattern admits digits only
            raise CheckSyntaxError(f"CHECK term {term.strip()!r}: the bound is not finite")
        out.append(Threshold(metric, op, bound))
    return out


def value(result: dict[str, Any], metric: str) -> float | None:
    return METRICS[metric][1](result)


def missed(result: dict[str, Any], thresholds: list[Threshold]) -> list[str]:
    """One line per threshold the result misses (empty: every one is met)."""
    lines = []
    for t in thresholds:
        got = value(result, t.metric)
        if got is None:
            lines.append(f"{t}: no value (no committed trade)")
        elif not _OPS[t.op](got, t.bound):
            lines.append(f"{t}: measured {got:g} {METRICS[t.metric][0]}")
    return lines


def describe(result: dict[str, Any], thresholds: list[Threshold]) -> str:
    """Every threshold with the measured value and whether it is met."""
    rows = []
    for t in thresholds:
        got = value(result, t.metric)
        ok = got is not None and _OPS[t.op](got, t.bound)
        shown = "-" if got is None else f"{got:g}"
        rows.append(f"  {'ok  ' if ok else 'MISS'}  {t}  (measured {shown})")
    return "\n".join(rows)
