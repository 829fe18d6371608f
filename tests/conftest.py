from __future__ import annotations

import pytest

from node.genesis import DemoNetwork
from node.store import MemoryStore
from tests.ledger_helpers import TxFactory, shared_net


@pytest.fixture
def net() -> DemoNetwork:
    return shared_net()


@pytest.fixture
def txf(net: DemoNetwork) -> TxFactory:
    return TxFactory(net)


@pytest.fixture
def store(net: DemoNetwork) -> MemoryStore:
    return MemoryStore(net.genesis)
