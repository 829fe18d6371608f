"""Velocity alerts (issue 15 item 5; docs/cluster.md "Velocity alerts"): runtime
screening, not consensus. An account crossing a bound in the sliding window of block
time logs one ``velocity_alert`` line and counts ``ledger_velocity_alerts``; within the
bounds nothing fires (the negative control), and it fires again only after falling back."""

from __future__ import annotations

import logging

import pytest

from node.runtime._metrics import Metrics
from node.runtime._velocity import VelocityWatch, moves_of
from node.settlement import Registry, ResultCode, Transaction, TxResult
from tests.kyc_helpers import kyc_net
from tests.ledger_helpers import TxFactory

NET = kyc_net()


def _ok(txs: list[Transaction]) -> list[TxResult]:
    return [TxResult(b"\0" * 32, ResultCode.OK, recorded=True) for _ in txs]


def test_an_account_crossing_the_count_bound_logs_one_alert(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="node")
    txf = TxFactory(NET)
    watch = VelocityWatch(
        lambda: Registry.at_genesis(NET.genesis), window_ms=60_000, txs_max=3, value_max=10**12
    )
    txs = [txf.dvp("BANK01", f"BANK0{2 + i % 3}", amount=5) for i in range(5)]
    t = NET.genesis.genesis_time_ms
    assert watch.block(t, txs[:3], _ok(txs[:3])) == []  # at the bound: quiet
    assert caplog.records == []
    (alert,) = watch.block(t + 1_000, txs[3:4], _ok(txs[3:4]))
    assert (alert.account, alert.rule, alert.observed, alert.limit) == ("BANK01", "count", 4, 3)
    (line,) = [r for r in caplog.records if r.getMessage() == "velocity_alert"]
    assert line.levelno == logging.WARNING
    assert line.fields["account"] == "BANK01"  # type: ignore[attr-defined]
    assert watch.block(t + 2_000, txs[4:], _ok(txs[4:])) == []  # still over: no repeat
    # A minute later the window holds one move: back within, then over again fires anew.
    later = t + 62_000
    assert watch.block(later, txs[:1], _ok(txs[:1])) == []
    again = watch.block(later, txs[1:4], _ok(txs[1:4]))
    assert [a.account for a in again if a.rule == "count"] == ["BANK01"]


def test_value_is_counted_per_cash_token_for_both_parties_and_refusals_not_at_all() -> None:
    txf = TxFactory(NET)
    watch = VelocityWatch(
        lambda: Registry.at_genesis(NET.genesis), window_ms=60_000, txs_max=100, value_max=1_000
    )
    t = NET.genesis.genesis_time_ms
    big = txf.dvp("BANK01", "BANK02", amount=1_001)
    refused = [TxResult(b"\0" * 32, ResultCode.INSUFFICIENT_CASH, recorded=True)]
    assert watch.block(t, [big], refused) == []  # a refusal moved nothing
    alerts = watch.block(t, [big], _ok([big]))
    assert sorted((a.account, a.rule, a.cash) for a in alerts) == [
        ("BANK01", "value", NET.cash),
        ("BANK02", "value", NET.cash),
    ]
    bonds = txf.transfer("BANK03", "BANK04", 10**9, instrument=NET.bonds[1])
    assert moves_of(Registry.at_genesis(NET.genesis), bonds) == [
        ("BANK03", "", 0),
        ("BANK04", "", 0),
    ]


def test_the_metric_is_exported_for_both_rules() -> None:
    text = Metrics().registry.get_sample_value("ledger_velocity_alerts_total", {"rule": "count"})
    assert text == 0.0


def _reference_alerts(
    moves: list[tuple[int, list[tuple[str, str, int]]]],
    window_ms: int,
    txs_max: int,
    value_max: int,
    events_max: int,
) -> list[list[tuple[str, str, int, str]]]:
    """The rule stated plainly: per block, each touched account's moves in the window (at
    most ``events_max``, oldest dropped), counted and summed per cash token afresh; an
    alert ends where the account is within its bound, before the block's moves (it fell
    back meanwhile) or after them."""
    kept: dict[str, list[tuple[int, str, int]]] = {}
    over: set[tuple[str, str, str]] = set()
    out = []

    def check(account: str, time_ms: int, alerts: list[tuple[str, str, int, str]] | None) -> None:
        kept[account] = [m for m in kept.get(account, []) if m[0] > time_ms - window_ms]
        totals = {c: 0 for (a, _, c) in over if a == account and c}
        for _, cash, value in kept[account]:
            if cash:
                totals[cash] = totals.get(cash, 0) + value
        checks = [("count", "", len(kept[account]), txs_max)]
        checks += [("value", c, v, value_max) for c, v in sorted(totals.items())]
        for rule, cash, observed, limit in checks:
            if observed <= limit:
                over.discard((account, rule, cash))
            elif alerts is not None and (account, rule, cash) not in over:
                over.add((account, rule, cash))
                alerts.append((account, rule, observed, cash))

    for time_ms, block in moves:
        touched = sorted({a for a, _, _ in block})
        for account in touched:
            check(account, time_ms, None)
        for account, cash, value in block:
            kept.setdefault(account, []).append((time_ms, cash, value))
            kept[account] = kept[account][-events_max:]
        alerts: list[tuple[str, str, int, str]] = []
        for account in touched:
            check(account, time_ms, alerts)
        out.append(alerts)
    return out


def test_running_window_sums_alert_exactly_as_a_fresh_count_would() -> None:
    """The window keeps its sums as moves enter, expire and are evicted by the memory
    bound; over 3,000 random blocks its alerts are those of recounting every block (the
    checker fires: it is the test's reference, and the first assertion shows alerts
    happen at all)."""
    import random

    rng = random.Random(13)
    accounts, cash = ["A", "B", "C", "D"], ["", "USD", "EUR"]
    blocks, t = [], 0
    for _ in range(3_000):
        t += rng.choice([1, 5, 50, 400])
        block = [
            (rng.choice(accounts), rng.choice(cash), rng.choice([0, 1, 7, 40]))
            for _ in range(rng.randint(1, 4))
        ]
        blocks.append((t, block))
    params = {"window_ms": 2_000, "txs_max": 12, "value_max": 150}
    watch = VelocityWatch(lambda: Registry.at_genesis(NET.genesis), events_max=16, **params)
    got = [
        [(a.account, a.rule, a.observed, a.cash) for a in watch.observe(t, block)]
        for t, block in blocks
    ]
    want = _reference_alerts(blocks, events_max=16, **params)
    assert sum(map(len, want)) > 100  # both rules fire, many times
    assert {a[1] for alerts in want for a in alerts} == {"count", "value"}
    assert got == want
