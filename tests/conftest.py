from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings

from node.genesis import DemoNetwork
from node.store import MemoryStore
from tests.ledger_helpers import TxFactory, shared_net

# The serial marker and the guard that fails a test of the parallel run (make test's
# `-n 2 -m "not serial"`) when it starts a process.
pytest_plugins = ["tests.isolation"]

# Hypothesis profiles (issue 19 item 5). "ci", the default, is derandomized: every run
# draws the same examples, so a failure in CI reproduces on any machine with the same
# command, and print_blob prints the blob that replays it (@reproduce_failure). "long"
# (HYPOTHESIS_PROFILE=long) draws fresh random examples, ten times as many, for deeper
# runs by hand. A test that sets max_examples scales it from settings.default, so the
# long profile deepens it too. The examples database stays off in both: derandomized
# runs do not need it, and a long run's failure prints its blob.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=100,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", settings.get_profile("ci"), derandomize=False, database=None, max_examples=1_000
)
# "mutants": the ci examples without shrinking, for runs that only ask whether a test
# fails (the known-mutant regression set): a failure is reported at once, not minimized.
settings.register_profile(
    "mutants",
    settings.get_profile("ci"),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def net() -> DemoNetwork:
    return shared_net()


@pytest.fixture
def txf(net: DemoNetwork) -> TxFactory:
    return TxFactory(net)


@pytest.fixture
def store(net: DemoNetwork) -> MemoryStore:
    return MemoryStore(net.genesis)
