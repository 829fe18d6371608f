"""A chain of blocks committed to a MemoryStore with real headers and commit
certificates, for tests of what the node serves from them (receipts, proof waits)."""

from __future__ import annotations

from client import Receipt, ResultProof
from node.core import Block, Phase, QuorumCert, encode_block, encode_qc
from node.core.types import vote_message
from node.genesis import DemoNetwork
from node.merkle import EMPTY_ROOT, MerkleTree
from node.runtime._metrics import Metrics
from node.runtime._node import Node
from node.settlement import BlockContext, BlockOutcome, apply_block, results_leaves
from node.store import MemoryStore


class Chain:
    """Commits blocks to a MemoryStore with real headers and commit certificates."""

    def __init__(self, net: DemoNetwork) -> None:
        self.net = net
        self.store = MemoryStore(net.genesis)
        self.last: BlockOutcome | None = None
        self.blocks: dict[int, Block] = {}
        self.outcomes: dict[int, BlockOutcome] = {}

    def commit(self, txs: list[bytes]) -> Block:
        block = self.next_block(txs)
        ctx = BlockContext(block.height, block.time_ms)
        outcome = apply_block(self.store, txs, ctx)
        self.store.commit_block(
            block.hash, encode_block(block), encode_qc(self.qc(block)), ctx, outcome
        )
        self.last, self.blocks[block.height], self.outcomes[block.height] = outcome, block, outcome
        return block

    def next_block(self, txs: list[bytes]) -> Block:
        g, head = self.net.genesis, self.store.head()
        height = head.height + 1
        return Block(
            chain_id=g.chain_id,
            height=height,
            view=height,
            parent_hash=head.block_hash,
            proposer=height % len(g.validators),
            time_ms=g.genesis_time_ms + 1_000 * height,
            executed_height=height - 1,
            state_root=head.state_root,
            results_root=EMPTY_ROOT if self.last is None else self.last.results_root,
            txs=tuple(txs),
        )

    def qc(self, block: Block) -> QuorumCert:
        g = self.net.genesis
        msg = vote_message(g.chain_id, Phase.COMMIT, block.view, block.height, block.hash)
        sigs = tuple((i, self.net.validator_keys[i].sign(msg)) for i in range(g.quorum))
        return QuorumCert(Phase.COMMIT, block.view, block.height, block.hash, sigs)

    def node(self) -> Node:
        return Node(self.net.genesis, 0, self.net.validator_keys[0], self.store, Metrics())

    def forged_receipt(self, height: int, position: int) -> Receipt:
        """What a Byzantine node can assemble for the copy at (height, position), claiming
        the result the block gave that copy: every byte of it is committed and certified."""
        block, outcome = self.blocks[height], self.outcomes[height]
        result = outcome.results[position]
        nxt = self.store.block(height + 1)
        assert nxt is not None
        # The attacker's best leaf is the recorded form: that is what verifiers check.
        leaves = results_leaves(outcome.results, outcome.parties)
        sb = self.store.block(height)
        assert sb is not None
        return Receipt(
            tx_id=result.tx_id,
            code=result.code,
            height=height,
            position=position,
            block_hash=block.hash,
            block_time_ms=block.time_ms,
            certificate=sb.certificate,
            block_header=block.header,
            transaction=block.txs[position],
            tx_path=MerkleTree(block.txs).path(position),
            result_proof=ResultProof(
                self.blocks[height + 1].header, nxt.certificate, MerkleTree(leaves).path(position)
            ),
        )
