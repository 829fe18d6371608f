"""A node's finality wait (``Node.wait_for``) sees every commit after its check.

The liveness defect behind "transaction ... not final within 60 s" in the 4-validator
demo under load: a wait for a result proof read the store (block h committed, h + 1 not
yet), then waited for the next commit through ``asyncio.wait_for``, which on Python 3.11
starts the awaited coroutine a loop turn later, and only then took the node's
head-changed event. A commit in that turn (block h + 1, which carries the proof) set the
old event and replaced it; the wait took the new one and slept until its timeout, since
an idle cluster makes no block h + 2. The tests put the commit exactly in that turn.
"""

from __future__ import annotations

import asyncio

from node.core import Block, QuorumCert
from node.genesis import DemoNetwork
from node.runtime._metrics import Metrics
from node.runtime._node import Node
from node.settlement import SignedTx, tx_id
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory
from tests.patience import HANG_S

# Long enough never to end a wait that works (it needs no time at all); a wait that
# missed its commit ends with TimeoutError after it, which is the failure.
_WAIT_S = HANG_S


def _node_with_trade_at_height_1(net: DemoNetwork, txf: TxFactory) -> tuple[Node, bytes, Block]:
    """A node whose head is block 1 holding a trade, and the empty block 2 that certifies
    its result (not committed yet)."""
    chain, raw = Chain(net), txf.signed(txf.dvp())
    chain.commit([raw])
    node = Node(net.genesis, 0, net.validator_keys[0], chain.store, Metrics())
    return node, tx_id(SignedTx.decode(raw).body), chain.next_block([])


def _qc(net: DemoNetwork, block: Block) -> QuorumCert:
    return Chain(net).qc(block)


async def test_a_commit_in_the_turn_after_the_check_still_ends_the_proof_wait(
    net: DemoNetwork, txf: TxFactory
) -> None:
    node, tid, second = _node_with_trade_at_height_1(net, txf)
    waiting = asyncio.ensure_future(node.wait_for(tid, _WAIT_S, prove_result=True))
    await asyncio.sleep(0)  # one turn: the wait read the store, found no proof, and waits
    assert not waiting.done()
    node._execute(second, _qc(net, second))  # the engine's execute port: block 2 commits
    receipt = await waiting  # before the fix: TimeoutError after _WAIT_S
    assert receipt.height == 1 and receipt.result_proof is not None


async def test_a_proof_wait_ends_with_a_later_commit_too(net: DemoNetwork, txf: TxFactory) -> None:
    """The control: the same commit a few turns after the wait began ends it as well (this
    passed before the fix; the race needs the commit in the one turn after the check)."""
    node, tid, second = _node_with_trade_at_height_1(net, txf)
    waiting = asyncio.ensure_future(node.wait_for(tid, _WAIT_S, prove_result=True))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiting.done()
    node._execute(second, _qc(net, second))
    receipt = await waiting
    assert receipt.height == 1 and receipt.result_proof is not None
