"""A real ``Node`` exports what its replica refused as
``ledger_consensus_refused_total{kind,reason}`` (node/core/refusal.py), counting each
refusal once however often the metrics are brought up to date."""

from __future__ import annotations

from node.core import Timeout, timeout_message
from node.store import MemoryStore
from tests.ledger_helpers import shared_net
from tests.unit.test_failstop import Harness


def _sample(h: Harness, kind: str, reason: str) -> float | None:
    return h.node.metrics.registry.get_sample_value(
        "ledger_consensus_refused_total", {"kind": kind, "reason": reason}
    )


async def test_a_refused_peer_message_shows_in_the_metric_by_kind_and_reason() -> None:
    net = shared_net()
    h = Harness(net, MemoryStore(net.genesis), index=2)
    h.node.start()
    view = h.node.replica.view
    forged = Timeout(view, 0, None, None, None, 1, bytes(64))
    h.node.deliver(1, forged)
    assert _sample(h, "timeout", "bad_signature") == 1.0
    h.node.deliver(1, forged)
    h.node.deliver(3, Timeout(view + 100, 0, None, None, None, 3, bytes(64)))
    assert _sample(h, "timeout", "bad_signature") == 2.0  # counted once each
    assert _sample(h, "timeout", "view_too_far_ahead") == 1.0


async def test_a_valid_peer_message_counts_no_refusal() -> None:
    """The control: the same timeout, signed by its validator."""
    net = shared_net()
    h = Harness(net, MemoryStore(net.genesis), index=2)
    h.node.start()
    view = h.node.replica.view
    sig = net.validator_keys[1].sign(timeout_message(net.genesis.chain_id, view, 0, None))
    h.node.deliver(1, Timeout(view, 0, None, None, None, 1, sig))
    assert h.node.replica.refused == {}
    assert _sample(h, "timeout", "bad_signature") is None
