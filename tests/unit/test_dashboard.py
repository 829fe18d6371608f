"""The Grafana dashboard and the Prometheus alert rules against what a node exports.

A query on a metric no node exports shows an empty panel, and an alert on one never
fires: nothing fails, so these tests do. The metric names come from a real node's
registry (node/runtime/_metrics.py), not from a list kept by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from node.runtime._metrics import Metrics

DOCKER = Path(__file__).resolve().parents[2] / "docker"
ALERTS = DOCKER / "prometheus" / "alerts.yml"
# Series Prometheus makes itself for every target; an alert may use them.
PROMETHEUS_SERIES = frozenset({"up"})
# Issue 16 item 5's signals and those before it: each has a panel.
SIGNALS = frozenset(
    {
        "ledger_height",
        "ledger_view",
        "ledger_view_changes_total",
        "ledger_commit_latency_seconds_bucket",
        "ledger_mempool_txs",
        "ledger_mempool_bytes",
        "ledger_peers_connected",
        "ledger_transactions_total",
        "ledger_blocks_total",
        "ledger_consensus_refused_total",
        "ledger_consensus_step_seconds_bucket",
        "ledger_halted",
        "ledger_settlement_fails_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "ledger_process_rss_anon_bytes",
    }
)
ALERTS_REQUIRED = frozenset(
    {"LedgerNodeHalted", "LedgerNoCommit", "LedgerViewChangesRising", "LedgerSettlementFailRate"}
)
_PROMQL_WORDS = frozenset(
    {
        "sum", "max", "min", "avg", "count", "by", "without", "rate", "irate", "increase",
        "histogram_quantile", "changes", "min_over_time", "max_over_time", "clamp_min", "and",
        "or", "unless", "on", "ignoring", "bool",
    }
)  # fmt: skip


_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}


def exported() -> frozenset[str]:
    """Every series name a node's /metrics has (counters' _total, histograms' _bucket...)."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names |= {s.name for s in family.samples}
        # A labelled family with no child yet has no sample; its series names by type.
        names |= {f"{family.name}{suffix}" for suffix in _SUFFIXES.get(family.type, ("",))}
    return frozenset(names)


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", expr)  # matchers, ranges, strings
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # label lists
    return set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr)) - _PROMQL_WORDS


def unknown_metrics(exprs: list[str], known: frozenset[str]) -> set[str]:
    """The checker: names in ``exprs`` that are not series of ``known``."""
    return set().union(*(metric_names(e) for e in exprs)) - known


def _dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DOCKER / "grafana/dashboards/ledger.json").read_text())
    return doc


def _panel_exprs() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]


def _alert_rules(text: str | None = None) -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text() if text is None else text)
    return [r for group in doc["groups"] for r in group["rules"]]


def test_the_node_exports_the_new_series() -> None:
    names = exported()
    assert names >= SIGNALS, SIGNALS - names


def test_dashboard_uses_only_the_metrics_the_node_exports() -> None:
    exprs = _panel_exprs()
    assert unknown_metrics(exprs, exported()) == set()
    assert all(metric_names(e) for e in exprs)  # no expression without a metric


def test_dashboard_has_a_panel_for_every_signal() -> None:
    used = set().union(*(metric_names(e) for e in _panel_exprs()))
    assert used >= SIGNALS, SIGNALS - used


def test_every_series_on_the_dashboard_is_filtered_by_the_validator_variable() -> None:
    (var,) = _dashboard()["templating"]["list"]
    assert (var["name"], var["multi"], var["includeAll"]) == ("node", True, True)
    assert var["query"]["query"] == "label_values(ledger_height, node)"
    for expr in _panel_exprs():
        for m in re.finditer(r"\b(?:ledger|process)_[a-z_]+", expr):
            assert expr[m.end() :].startswith('{node=~"$node"'), (expr, m.group())


def test_alert_rules_cover_the_issue_and_name_only_exported_metrics() -> None:
    rules = _alert_rules()
    assert {r["alert"] for r in rules} >= ALERTS_REQUIRED
    for rule in rules:
        assert metric_names(rule["expr"]), rule["alert"]
        assert unknown_metrics([rule["expr"]], exported() | PROMETHEUS_SERIES) == set(), rule
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


@pytest.mark.parametrize(
    ("right", "wrong"),
    [("ledger_halted", "ledger_halt"), ("ledger_view_changes_total", "ledger_view_changes")],
)
def test_the_checker_fires_on_a_misspelled_metric(right: str, wrong: str) -> None:
    """Negative control: the same rules with one metric misspelled fail the check."""
    text = ALERTS.read_text()
    assert right in text
    exprs = [r["expr"] for r in _alert_rules(text.replace(right, wrong))]
    assert unknown_metrics(exprs, exported() | PROMETHEUS_SERIES) == {wrong}
    panels = [e.replace(right, wrong) for e in _panel_exprs()]
    assert unknown_metrics(panels, exported()) == {wrong}


def test_metric_names_skips_promql_words_matchers_and_ranges() -> None:
    expr = 'sum by (code) (rate(x_total{code="OK"}[1m])) / clamp_min(up{job="a"}, 0.000001)'
    assert metric_names(expr) == {"x_total", "up"}


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    datasources = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    uid = datasources["datasources"][0]["uid"]
    dashboard = _dashboard()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        assert p["datasource"]["uid"] == uid
        assert {t["datasource"]["uid"] for t in p["targets"]} == {uid}
