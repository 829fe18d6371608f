"""A bounded, deduplicating pool of transactions waiting for a block.

Pure: no clock, no I/O. Transactions are opaque bytes; the id is SHA-256 of the encoded
bytes, so a resubmission of the same signed transaction is a duplicate. A transaction
stays until a committed block contains it (an acknowledged transaction is never dropped
for a view change), and ids of recently committed transactions are remembered, within a
bound, so a late forward does not put a committed transaction back.
"""

from __future__ import annotations

import enum
from collections import Counter, OrderedDict
from collections.abc import Iterable

from node.config import MEMPOOL_BYTES_MAX, MEMPOOL_COMMITTED_IDS_MAX, MEMPOOL_TXS_MAX, TX_BYTES_MAX
from node.crypto import sha256
from node.invariant import require

__all__ = ["AddResult", "Mempool", "tx_key"]


def tx_key(tx: bytes) -> bytes:
    """The consensus-level id of an encoded transaction."""
    return sha256(tx)


class AddResult(enum.Enum):
    """Outcome of offering a transaction, in precedence order (back-pressure, not errors)."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # pending already, or committed recently
    TOO_LARGE = "too_large"  # exceeds TX_BYTES_MAX
    FULL = "full"  # count or byte bound reached (or the origin's share): retry later


class Mempool:
    def __init__(
        self,
        txs_max: int = MEMPOOL_TXS_MAX,
        bytes_max: int = MEMPOOL_BYTES_MAX,
        committed_ids_max: int = MEMPOOL_COMMITTED_IDS_MAX,
    ) -> None:
        require(txs_max > 0 and bytes_max > 0 and committed_ids_max > 0, "mempool bounds")
        self._txs_max = txs_max
        self._bytes_max = bytes_max
        self._committed_ids_max = committed_ids_max
        self._pending: OrderedDict[bytes, bytes] = OrderedDict()  # insertion order = FIFO
        self._bytes = 0
        # Who put each transaction here, for those a peer forwarded: a peer's share is bounded.
        self._origin: dict[bytes, int] = {}
        self._per_origin: Counter[int] = Counter()
        self._committed: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def add(self, tx: bytes, origin: int | None = None, share_max: int = 0) -> AddResult:
        """Offer ``tx``; ``origin`` is the peer that forwarded it (None: a client of this
        node), which may hold at most ``share_max`` pending transactions."""
        key = tx_key(tx)
        if key in self._pending or key in self._committed:
            return AddResult.DUPLICATE
        if len(tx) > TX_BYTES_MAX:
            return AddResult.TOO_LARGE
        if len(self._pending) >= self._txs_max or self._bytes + len(tx) > self._bytes_max:
            return AddResult.FULL
        if origin is not None:
            if self._per_origin[origin] >= share_max:
                return AddResult.FULL
            self._origin[key] = origin
            self._per_origin[origin] += 1
        self._pending[key] = tx
        self._bytes += len(tx)
        return AddResult.ACCEPTED

    def share_full(self, origin: int, share_max: int) -> bool:
        """Whether ``origin`` already holds its whole share (nothing more of it is taken)."""
        return self._per_origin[origin] >= share_max

    @property
    def txs_max(self) -> int:
        return self._txs_max

    def known(self, tx: bytes) -> bool:
        """Pending, or committed recently: either way nothing to check or add again."""
        key = tx_key(tx)
        return key in self._pending or key in self._committed

    def contains(self, tx: bytes) -> bool:
        return self.contains_key(tx_key(tx))

    def contains_key(self, key: bytes) -> bool:
        """Whether the transaction with this ``tx_key`` is pending."""
        return key in self._pending

    def batch(
        self, txs_max: int, bytes_max: int, skip: frozenset[bytes] = frozenset()
    ) -> list[bytes]:
        """The oldest pending transactions that fit both bounds (not removed), leaving out
        those whose key is in ``skip`` (a pipelined block's parent carries them already)."""
        out: list[bytes] = []
        total = 0
        for key, tx in self._pending.items():
            if key in skip:
                continue
            if len(out) >= txs_max or total + len(tx) > bytes_max:
                break
            out.append(tx)
            total += len(tx)
        return out

    def pending_beyond(self, skip: frozenset[bytes]) -> tuple[int, int]:
        """How many pending transactions, and how many bytes, are not in ``skip``."""
        count, size = len(self._pending), self._bytes
        for key in skip:
            tx = self._pending.get(key)
            if tx is not None:
                count, size = count - 1, size - len(tx)
        return count, size

    def oldest(self, count_max: int) -> list[bytes]:
        return self.batch(count_max, self._bytes_max)

    def remove_committed(self, txs: Iterable[bytes]) -> None:
        for tx in txs:
            key = tx_key(tx)
            popped = self._pending.pop(key, None)
            if popped is not None:
                self._bytes -= len(popped)
                origin = self._origin.pop(key, None)
                if origin is not None:
                    self._per_origin[origin] -= 1
            self._committed[key] = None
            self._committed.move_to_end(key)
            if len(self._committed) > self._committed_ids_max:
                self._committed.popitem(last=False)
        require(self._bytes >= 0, "mempool byte count went negative")
