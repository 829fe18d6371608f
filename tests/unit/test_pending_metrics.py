"""The settlement metrics of issue 14 item 5, from real blocks: pending count, settled
after recycling, fails by reason (trades only: a transfer short of funds is no fail)."""

from __future__ import annotations

from node.genesis import DemoNetwork
from node.settlement import ComplianceRules, ResultCode, SignedTx
from tests.chain_helpers import Chain as _Chain
from tests.gov_helpers import set_rules
from tests.gov_helpers import signed as gov_signed
from tests.ledger_helpers import TxFactory

_BIG = 10_000_100  # 100 bond units more than the seller holds


def _value(chain_node: object, name: str, **labels: str) -> float:
    registry = chain_node.metrics.registry  # type: ignore[attr-defined]
    value = registry.get_sample_value(name, labels)
    assert value is not None, name
    return float(value)


def test_pending_recycled_and_failed_trades_are_counted(net: DemoNetwork, txf: TxFactory) -> None:
    chain = _Chain(net)
    node = chain.node()
    pending = txf.signed(txf.pending(quantity=_BIG, amount=5))
    short_dvp = txf.signed(txf.dvp(quantity=_BIG))
    short_transfer = txf.signed(txf.transfer("BANK03", "BANK04", 2 * 10**9))
    block = chain.commit([pending, short_dvp, short_transfer])
    assert chain.last is not None
    node._settlement_metrics(block.txs, chain.last)
    assert _value(node, "ledger_pending_instructions") == 1
    assert _value(node, "ledger_settlement_fails_total", reason="INSUFFICIENT_SECURITIES") == 1
    assert _value(node, "ledger_settlement_fails_total", reason="INSUFFICIENT_CASH") == 0
    delivery = txf.signed(txf.transfer("BANK03", "BANK01", 100, instrument=net.bonds[0]))
    block = chain.commit([delivery])
    assert chain.last is not None and chain.last.results[-1].event
    node._settlement_metrics(block.txs, chain.last)
    assert _value(node, "ledger_pending_instructions") == 0
    assert _value(node, "ledger_settled_after_recycling_total") == 1
    assert SignedTx.decode(pending).tx_id == chain.last.results[-1].tx_id


def test_a_pending_trade_the_rules_refuse_at_settlement_is_a_fail_its_first_attempt_is_not(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """Review 32: an instruction recorded PENDING_SETTLEMENT was accepted; when the
    compliance rules in force at settlement end it COSIGN_REQUIRED (session 31) it did
    not settle, a settlement fail like a cancelled one, which the metric did not count.
    The control, a new DvP refused COSIGN_REQUIRED at its first attempt in the same block,
    was never accepted: a bad instruction, not counted."""
    chain = _Chain(net)
    node = chain.node()
    pending = txf.signed(txf.pending(quantity=_BIG, amount=5_000))
    chain.commit([pending])
    rules = ComplianceRules.of({}, (), {net.cash: 4_999})
    delivery = txf.signed(txf.transfer("BANK03", "BANK01", 100, instrument=net.bonds[0]))
    fresh = txf.signed(txf.dvp("BANK03", "BANK04", amount=5_000))
    block = chain.commit([gov_signed(net, set_rules(txf, rules)), delivery, fresh])
    assert chain.last is not None
    assert [(r.event, r.code) for r in chain.last.results] == [
        (False, ResultCode.OK),
        (False, ResultCode.OK),
        (False, ResultCode.COSIGN_REQUIRED),
        (True, ResultCode.COSIGN_REQUIRED),
    ]
    node._settlement_metrics(block.txs, chain.last)
    assert _value(node, "ledger_settlement_fails_total", reason="COSIGN_REQUIRED") == 1
    assert _value(node, "ledger_settlement_fails_total", reason="TRADE_LIMIT") == 0
