"""No debug formatting on the hot path: a node's per-message and per-block debug lines
(recv, send, commit) are not even built while debug logging is off."""

from __future__ import annotations

import logging

import pytest

from node.runtime import _node
from node.store import MemoryStore
from tests.ledger_helpers import TxFactory, shared_net
from tests.unit.test_failstop import Harness


async def _send_some(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, level: int
) -> tuple[int, int]:
    """Describe calls and sends of one submit at a node of 4 (it forwards the trade)."""
    calls = []
    real = _node.describe
    monkeypatch.setattr(_node, "describe", lambda msg: calls.append(msg) or real(msg))
    caplog.set_level(level, logger="node")  # restored after the test
    net = shared_net()
    h = Harness(net, MemoryStore(net.genesis), index=2)
    sent: list[bytes] = []
    h.node.send_frame = lambda dst, data: sent.append(data)
    h.node.start()
    txf = TxFactory(net)
    await h.submit(txf.signed(txf.transfer()))
    h.node.stop()
    return len(calls), len(sent)


async def test_debug_lines_are_not_formatted_when_debug_is_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    described, sent = await _send_some(monkeypatch, caplog, logging.INFO)
    assert sent >= 1 and described == 0


async def test_negative_control_with_debug_on_each_send_is_described(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    described, sent = await _send_some(monkeypatch, caplog, logging.DEBUG)
    assert sent >= 1 and described >= sent
    assert any(r.getMessage() == "send" for r in caplog.records)
