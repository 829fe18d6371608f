"""Review 32: `ledger submit ... --wait-settled` on a pending trade said "settled in N ms"
above its `result PENDING_SETTLEMENT` line whatever had happened. The headline now says
what the proven receipt shows: settled after recycling, still pending (a timeout: exit 1),
or failed (the error names the event, not a refusal). Receipts are real: a chain of
committed blocks (``Chain``) and the node's receipt builder."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest

from client import FinalityTimeoutError, Receipt, RejectedError, _cli_net
from node.genesis import DemoNetwork
from node.settlement import ResultCode, SignedTx, decode_body
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory

RC = ResultCode
_BIG = 10_000_100  # 100 bond units more than the seller holds


def _receipts(net: DemoNetwork, txf: TxFactory) -> tuple[bytes, Receipt, Receipt, Receipt]:
    """The trade, its receipt while pending, once settled, and (another chain) once
    failed at its deadline."""
    g0 = net.genesis.genesis_time_ms
    raw = txf.signed(txf.pending(quantity=_BIG, amount=5_000, deadline_ms=g0 + 2_500))
    tid = SignedTx.decode(raw).tx_id
    chain = Chain(net)
    chain.commit([raw])
    chain.commit([])  # block time g0 + 2,000: still before the deadline
    waiting = chain.node().receipt(tid)
    chain = Chain(net)
    chain.commit([raw])
    chain.commit([txf.signed(txf.transfer("BANK03", "BANK01", 100, instrument=net.bonds[0]))])
    chain.commit([])
    settled = chain.node().receipt(tid)
    other = Chain(net)
    for txs in ([raw], [], [], []):
        other.commit(txs)
    failed = other.node().receipt(tid)
    assert waiting is not None and settled is not None and failed is not None
    assert (waiting.waiting, settled.ok, failed.outcome) == (True, True, RC.FAILED_DEADLINE)
    return raw, waiting, settled, failed


class _Client:
    def __init__(self, first: Receipt, then: Receipt | Exception) -> None:
        self.first, self.then = first, then

    def submit(self, stx: object, **kw: object) -> Receipt:
        return self.first

    def wait_settled(self, tx_id: bytes, **kw: object) -> Receipt:
        if isinstance(self.then, Exception):
            raise self.then
        return self.then


def _args(**kw: object) -> argparse.Namespace:
    base = {"no_wait": False, "timeout": 5.0, "finality_only": False, "wait_settled": True,
            "receipt_out": None, "json": False}  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


def _submit(raw: bytes, client: _Client, args: argparse.Namespace) -> int:
    stx = SimpleNamespace(
        tx_id=SignedTx.decode(raw).tx_id, tx=decode_body(SignedTx.decode(raw).body)
    )
    return _cli_net._submit_with(client, args, stx)  # type: ignore[arg-type]


def test_wait_settled_says_settled_after_recycling_or_still_pending(
    net: DemoNetwork, txf: TxFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, waiting, settled, _ = _receipts(net, txf)
    assert _submit(raw, _Client(waiting, settled), _args()) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    assert head.startswith("settled after recycling in ") and "end of block 2" in head
    assert "result    PENDING_SETTLEMENT" in out and "later     OK at the end of block 2" in out
    timeout = FinalityTimeoutError(waiting.tx_id, 5.0)
    assert _submit(raw, _Client(waiting, timeout), _args()) == 1  # asked to settle: it did not
    out = capsys.readouterr().out
    assert out.startswith("STILL PENDING after ") and "settled in" not in out
    # Without --wait-settled the trade is recorded pending: said so, exit 0.
    assert _submit(raw, _Client(waiting, settled), _args(wait_settled=False)) == 0
    assert capsys.readouterr().out.startswith("recorded PENDING_SETTLEMENT in ")
    # Control: a trade that settles at once is "settled in".
    direct = txf.signed(txf.dvp())
    chain = Chain(net)
    chain.commit([direct])
    chain.commit([])
    ok = chain.node().receipt(SignedTx.decode(direct).tx_id)
    assert ok is not None and ok.code is RC.OK
    assert _submit(direct, _Client(ok, ok), _args()) == 0
    assert capsys.readouterr().out.startswith("settled in ")


def test_wait_settled_json_says_the_outcome(
    net: DemoNetwork, txf: TxFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, waiting, settled, _ = _receipts(net, txf)
    assert _submit(raw, _Client(waiting, settled), _args(json=True)) == 0
    out = capsys.readouterr().out
    assert '"outcome": "OK"' in out and '"settled": true' in out and '"waiting": false' in out
    timeout = FinalityTimeoutError(waiting.tx_id, 5.0)
    assert _submit(raw, _Client(waiting, timeout), _args(json=True)) == 1
    assert '"waiting": true' in capsys.readouterr().out


def test_a_pending_trade_that_failed_is_reported_failed_not_refused(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """`wait_settled` raises RejectedError for a pending trade that ended unsettled; the
    CLI prints its message: it was accepted and failed, not refused (the control: a
    trade refused at once is "refused at height")."""
    _, _, _, failed = _receipts(net, txf)
    msg = str(RejectedError(failed))
    assert "recorded PENDING_SETTLEMENT at height 1, failed: FAILED_DEADLINE" in msg
    assert "refused" not in msg
    direct = txf.signed(txf.dvp(quantity=_BIG))
    chain = Chain(net)
    chain.commit([direct])
    chain.commit([])
    refused = chain.node().receipt(SignedTx.decode(direct).tx_id)
    assert refused is not None
    assert "refused at height 1: INSUFFICIENT_SECURITIES" in str(RejectedError(refused))
