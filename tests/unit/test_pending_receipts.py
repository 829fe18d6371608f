"""The later outcome of a pending DvP is provable offline (ADR 0014), and only that.

Chains are built by hand from the real pieces (``_Chain`` of test_receipt_ids: apply_block,
real headers, commit certificates by q genesis validators, the node's receipt builder),
so each forged receipt is one a Byzantine node could assemble from committed data.
"""

from __future__ import annotations

import dataclasses

import pytest

from client import (
    EventProof,
    InvalidReceiptError,
    Receipt,
    RejectedError,
    ResultCode,
    ResultProof,
    verify_receipt,
)
from node.genesis import DemoNetwork
from node.merkle import MerkleTree
from node.settlement import SignedTx, TxResult, result_leaf, results_leaves, tx_id
from tests.chain_helpers import Chain as _Chain
from tests.ledger_helpers import TxFactory

RC = ResultCode
_BIG = 10_000_100  # 100 bond units more than the seller holds


def _id(raw: bytes) -> bytes:
    return tx_id(SignedTx.decode(raw).body)


def _deliver(txf: TxFactory, net: DemoNetwork) -> bytes:
    return txf.signed(txf.transfer("BANK03", "BANK01", 100, instrument=net.bonds[0]))


@pytest.fixture
def settled(net: DemoNetwork, txf: TxFactory) -> tuple[_Chain, bytes, bytes]:
    """Block 1 records a short pending DvP, block 2 delivers and settles it (an event
    after the block's one transaction), block 3 certifies block 2's results."""
    raw = txf.signed(txf.pending(quantity=_BIG, amount=5_000))
    delivery = _deliver(txf, net)
    chain = _Chain(net)
    chain.commit([raw])
    chain.commit([delivery])
    chain.commit([])
    return chain, raw, delivery


def test_the_node_proves_a_later_settlement(
    settled: tuple[_Chain, bytes, bytes], net: DemoNetwork
) -> None:
    chain, raw, _ = settled
    receipt = chain.node().receipt(_id(raw))
    assert receipt is not None and receipt.code is RC.PENDING_SETTLEMENT
    ev = receipt.event_proof
    assert ev is not None and (ev.code, ev.height, ev.index, ev.leaf_count) == (RC.OK, 2, 1, 3)
    verify_receipt(receipt, net.genesis)
    verify_receipt(dataclasses.replace(receipt, result_proof=None), net.genesis,
                   require_result=False)  # fmt: skip
    assert receipt.ok and not receipt.waiting and not receipt.refused


def test_an_event_is_proven_only_once_certified(net: DemoNetwork, txf: TxFactory) -> None:
    raw = txf.signed(txf.pending(quantity=_BIG, amount=5_000))
    chain = _Chain(net)
    chain.commit([raw])
    chain.commit([_deliver(txf, net)])
    receipt = chain.node().receipt(_id(raw))
    assert receipt is not None and receipt.event_proof is None
    assert receipt.waiting and not receipt.ok and not receipt.refused


def test_a_swapped_event_code_is_refused(settled: tuple[_Chain, bytes, bytes]) -> None:
    chain, raw, _ = settled
    receipt = chain.node().receipt(_id(raw))
    assert receipt is not None and receipt.event_proof is not None
    for code in (RC.FAILED_DEADLINE, RC.CANCELLED, RC.PARTIALLY_SETTLED):
        forged = dataclasses.replace(
            receipt, event_proof=dataclasses.replace(receipt.event_proof, code=code)
        )
        with pytest.raises(InvalidReceiptError, match="no such event"):
            verify_receipt(forged, chain.net.genesis)


def test_an_event_cannot_be_shown_as_the_trades_own_result(
    settled: tuple[_Chain, bytes, bytes],
) -> None:
    """The settlement event (tx id, OK) sits in block 2's results tree; claiming it as the
    recorded outcome (OK at once) fails: its leaf has the event tag, not the recorded one."""
    chain, raw, _ = settled
    receipt = chain.node().receipt(_id(raw))
    assert receipt is not None and receipt.result_proof is not None
    block2 = chain.store.block(2)
    assert block2 is not None
    leaves = results_leaves(block2.results, chain.outcomes[2].parties)
    forged = dataclasses.replace(
        receipt,
        code=RC.OK,
        event_proof=None,
        result_proof=ResultProof(
            chain.blocks[3].header, chain.store.block(3).certificate,  # type: ignore[union-attr]
            MerkleTree(leaves).path(1), leaf_count=3,
        ),
    )  # fmt: skip
    assert result_leaf(TxResult(_id(raw), RC.OK, recorded=True)) not in leaves
    with pytest.raises(InvalidReceiptError):
        verify_receipt(forged, chain.net.genesis)


def test_an_event_proof_on_a_receipt_that_is_not_pending_is_refused(
    settled: tuple[_Chain, bytes, bytes],
) -> None:
    chain, raw, delivery = settled
    node = chain.node()
    pending, other = node.receipt(_id(raw)), node.receipt(_id(delivery))
    assert pending is not None and other is not None
    grafted = dataclasses.replace(other, event_proof=pending.event_proof)
    with pytest.raises(InvalidReceiptError, match="not a pending DvP"):
        verify_receipt(grafted, chain.net.genesis)


def test_results_of_a_block_with_events_need_their_leaf_count(
    settled: tuple[_Chain, bytes, bytes],
) -> None:
    chain, _, delivery = settled
    receipt = chain.node().receipt(_id(delivery))
    assert receipt is not None and receipt.result_proof is not None
    assert receipt.result_proof.leaf_count == 3  # a transaction, an event, the party index
    verify_receipt(receipt, chain.net.genesis)
    as_before = dataclasses.replace(
        receipt, result_proof=dataclasses.replace(receipt.result_proof, leaf_count=0)
    )
    with pytest.raises(InvalidReceiptError, match="result path"):
        verify_receipt(as_before, chain.net.genesis)


def test_a_leaf_count_below_the_transactions_is_refused(net: DemoNetwork, txf: TxFactory) -> None:
    chain = _Chain(net)
    raws = [txf.signed(txf.transfer()), txf.signed(txf.transfer())]
    chain.commit(raws)
    chain.commit([])
    receipt = chain.node().receipt(_id(raws[0]))
    assert receipt is not None and receipt.result_proof is not None
    short = dataclasses.replace(
        receipt, result_proof=dataclasses.replace(receipt.result_proof, leaf_count=1)
    )
    with pytest.raises(InvalidReceiptError, match="claims 1 results"):
        verify_receipt(short, net.genesis)


def test_a_failure_at_the_deadline_is_proven_and_raised_as_refused(
    net: DemoNetwork, txf: TxFactory
) -> None:
    g0 = net.genesis.genesis_time_ms
    raw = txf.signed(txf.pending(quantity=_BIG, amount=5_000, deadline_ms=g0 + 1_500))
    chain = _Chain(net)
    chain.commit([raw])  # block time g0 + 1,000: pending
    chain.commit([])  # g0 + 2,000: past the deadline
    chain.commit([])
    receipt = chain.node().receipt(_id(raw))
    assert receipt is not None
    verify_receipt(receipt, net.genesis)
    assert receipt.outcome is RC.FAILED_DEADLINE and receipt.refused
    err = RejectedError(receipt)
    assert err.code is RC.FAILED_DEADLINE and "at the end of block 2" in str(err)


def test_event_proofs_survive_json_and_protobuf(settled: tuple[_Chain, bytes, bytes]) -> None:
    chain, raw, _ = settled
    receipt = chain.node().receipt(_id(raw))
    assert receipt is not None and isinstance(receipt.event_proof, EventProof)
    assert Receipt.loads(receipt.dumps()) == receipt
    assert Receipt.from_bytes(receipt.to_bytes()) == receipt
