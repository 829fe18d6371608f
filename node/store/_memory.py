"""In-memory store: the reference implementation, used by tests and the simulator."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from node.crypto import HASH_LEN
from node.settlement import BlockOutcome, Genesis, Head, TxRecord, genesis_state_root
from node.store._base import Storage, StoredBlock

__all__ = ["MemoryStore"]

ZERO_HASH = bytes(HASH_LEN)


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
        self._records: dict[bytes, bytes] = {}
        self._keys: list[bytes] | None = None  # the records' keys in order, made on demand
        self._blocks: dict[int, StoredBlock] = {}
        self._safety: bytes | None = None
        self._intake: dict[bytes, tuple[bytes, bytes]] = {}  # key -> (tx_id, raw)

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

    def record(self, key: bytes) -> bytes | None:
        return self._records.get(key)

    def records(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        # A range of the sorted keys, as LMDB's cursor reads it: a scan of every record per
        # prefix took 30 s for the attestations of 1,000 instruments (45,000 records).
        if self._keys is None:
            self._keys = sorted(self._records)
        keys, found = self._keys, []
        i = bisect_left(keys, prefix)
        while i < len(keys) and keys[i].startswith(prefix):
            found.append((keys[i], self._records[keys[i]]))
            i += 1
        return iter(found)

    def all_balances(self) -> dict[tuple[str, str], int]:
        return {k: v for k, v in self._balances.items() if v}

    def block(self, height: int) -> StoredBlock | None:
        return self._blocks.get(height)

    def save_safety(self, data: bytes) -> None:
        self._safety = data

    def load_safety(self) -> bytes | None:
        return self._safety

    def intake_put(self, entries: Sequence[tuple[bytes, bytes, bytes]]) -> None:
        for key, tid, raw in entries:
            self._intake[key] = (tid, raw)

    def intake(self) -> list[tuple[bytes, bytes]]:
        return list(self._intake.values())

    def intake_count(self) -> int:
        return len(self._intake)

    def intake_drop(self, keys: Sequence[bytes]) -> None:
        for key in keys:
            self._intake.pop(key, None)

    def _write_block(
        self, block: StoredBlock, outcome: BlockOutcome, intake_done: Sequence[bytes]
    ) -> None:
        self.intake_drop(intake_done)
        self._blocks[block.height] = block
        self._balances.update(outcome.balances)
        self._supply.update(outcome.supplies)
        self._txs.update(outcome.recorded)
        for key, value in outcome.records.items():
            if (value is None) == (key in self._records):
                self._keys = None  # a key comes or goes: the order is made again
            if value is None:
                self._records.pop(key, None)
            else:
                self._records[key] = value
        self._head = Head(block.height, block.block_hash, block.state_root)
