"""The ``pipeline`` node option on a real 4-validator cluster (quorum 3; ADR 0012): with it
every validator executes each certified block ahead of its commit, its commits write that
outcome, and trades settle as without it, every node agreeing on the state; without it
(the control) no block is executed ahead. Whether a leader then proposes on the prepare
certificate depends on timing (the batch delay against the commit round), so that is the
simulator's to prove (tests/sim: seeds with every, no and half the validators
pipelining) and this test's only to show that the option reaches the engine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from node.wire import ledger_pb2 as pb
from tests.cluster.harness import Cluster, running_cluster, wait_until
from tests.cluster.rogue import _metrics

pytestmark = pytest.mark.slow
TRADES = 24


def _counter(c: Cluster, i: int, name: str) -> float:
    for family in text_string_to_metric_families(_metrics(c.net, i)):
        if family.name == name:
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    raise AssertionError(f"no {name} metric")


def _agree(c: Cluster, height: int) -> bool:
    pairs = {(s.height, bytes(s.state_root)) for s in (c.status(i) for i in range(4))}
    return len(pairs) == 1 and next(iter(pairs))[0] >= height


@pytest.mark.parametrize("pipeline", [True, False])
def test_the_pipeline_option_executes_certified_blocks_ahead_and_settles_the_same(
    tmp_path: Path, pipeline: bool
) -> None:
    with running_cluster(tmp_path / "run", 4, 3, {"pipeline": pipeline}) as c:
        raws = [c.txf.signed(c.txf.dvp(quantity=10 + k, amount=9 + k)) for k in range(TRADES)]
        with ThreadPoolExecutor(8) as pool:  # concurrent: blocks follow one another
            receipts = list(pool.map(lambda a: c.settle(a[1], via=a[0] % 4), enumerate(raws)))
        assert all(r.code == pb.OK for r in receipts)
        top = max(r.height for r in receipts)
        wait_until(lambda: _agree(c, top + 1), 10, "all nodes agree")
        speculated = [_counter(c, i, "ledger_blocks_speculated") for i in range(4)]
        used = [_counter(c, i, "ledger_blocks_speculation_used") for i in range(4)]
        if pipeline:
            assert all(s > 0 for s in speculated), speculated
            assert all(u > 0 for u in used), used  # the kept outcome is what commits
        else:
            assert speculated == used == [0, 0, 0, 0]
