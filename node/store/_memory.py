"""In-memory store: the reference implementation, used by tests and the simulator."""

from __future__ import annotations

from node.settlement import BlockOutcome, Genesis, Head, TxRecord, genesis_state_root
from node.store._base import Storage, StoredBlock

__all__ = ["MemoryStore"]

ZERO_HASH = bytes(32)


class MemoryStore(Storage):
    def __init__(self, genesis: Genesis) -> None:
        self._genesis = genesis
        self._head = Head(0, ZERO_HASH, genesis_state_root(genesis))
        self._balances: dict[tuple[str, str], int] = {}
        self._supply: dict[str, int] = {}
        for h in genesis.holdings:
            self._balances[(h.account, h.instrument)] = h.amount
            self._supply[h.instrument] = self._supply.get(h.instrument, 0) + h.amount
        self._txs: dict[bytes, TxRecord] = {}
        self._blocks: dict[int, StoredBlock] = {}
        self._safety: bytes | None = None

    @property
    def genesis(self) -> Genesis:
        return self._genesis

    def head(self) -> Head:
        return self._head

    def balance(self, account: str, instrument: str) -> int:
        return self._balances.get((account, instrument), 0)

    def supply(self, instrument: str) -> int:
        return self._supply.get(instrument, 0)

    def tx_record(self, tx_id: bytes) -> TxRecord | None:
        return self._txs.get(tx_id)

    def all_balances(self) -> dict[tuple[str, str], int]:
        return {k: v for k, v in self._balances.items() if v}

    def block(self, height: int) -> StoredBlock | None:
        return self._blocks.get(height)

    def save_safety(self, data: bytes) -> None:
        self._safety = data

    def load_safety(self) -> bytes | None:
        return self._safety

    def _write_block(self, block: StoredBlock, outcome: BlockOutcome) -> None:
        self._blocks[block.height] = block
        self._balances.update(outcome.balances)
        self._supply.update(outcome.supplies)
        self._txs.update(outcome.recorded)
        self._head = Head(block.height, block.block_hash, block.state_root)
