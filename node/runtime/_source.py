"""The consensus core's read-only view of committed blocks, backed by the node's store."""

from __future__ import annotations

from functools import lru_cache

from node.core import Block, BlockHeader, QuorumCert, decode_block, decode_block_header, decode_qc
from node.invariant import InvariantError
from node.merkle import EMPTY_ROOT
from node.settlement import (
    DecodeError,
    PartyIndex,
    Registry,
    SignedTx,
    raw_names,
    results_root,
    tx_id,
)
from node.store import Storage, StoredBlock

__all__ = ["StoreSource", "party_index"]


def party_index(store: Storage, sb: StoredBlock, txs: tuple[bytes, ...]) -> PartyIndex:
    """Committed block ``sb``'s party index (ADR 0025), worked out again from its
    transactions (``txs``, decoded once each), its results' ids and the participants
    registered after it, and which of them observed then: what its execution built, so
    its root is the one the next header certifies (a node that built another would have
    halted at that header)."""
    if not txs:
        return PartyIndex((), (), (), observers=())
    reg = Registry.of(store)
    return PartyIndex(
        [raw_names(raw) for raw in txs],
        reg.participants_at(sb.height),
        [r.tx_id for r in sb.results[: len(txs)]],
        observers=reg.observers_at(sb.height),
    )


class StoreSource:
    def __init__(self, store: Storage) -> None:
        self.store = store

    def executed_roots(self) -> tuple[bytes, bytes]:
        """The state root after the head block and the Merkle root of its results (what
        the replica needs at start to propose and check the next block)."""
        head = self.store.head()
        if head.height == 0:
            return head.state_root, EMPTY_ROOT
        sb = self.store.block(head.height)
        if sb is None:
            raise InvariantError(f"storage reports head {head.height} but cannot return it")
        txs = _decode_stored(sb.block_bytes, sb.certificate)[0].txs
        return head.state_root, results_root(sb.results, party_index(self.store, sb, txs))

    def committed_height(self) -> int:
        return self.store.head().height

    def committed_block(self, height: int) -> tuple[Block, QuorumCert] | None:
        sb = self.store.block(height)
        if sb is None:
            return None
        return _decode_stored(sb.block_bytes, sb.certificate)

    def committed_header(self, height: int) -> BlockHeader | None:
        sb = self.store.block(height)
        if sb is None:
            return None
        return decode_block_header(sb.block_bytes)

    def tx_committed(self, tx: bytes) -> bool:
        try:
            body = SignedTx.decode(tx).body
        except DecodeError:
            return False
        return self.store.tx_record(tx_id(body)) is not None


@lru_cache(maxsize=256)  # catch-up serves the same recent blocks to several peers
def _decode_stored(block_bytes: bytes, cert: bytes) -> tuple[Block, QuorumCert]:
    return decode_block(block_bytes), decode_qc(cert)
