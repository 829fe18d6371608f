"""The Storage interface every node uses, whatever keeps the bytes.

A store is the settlement ``StateView`` as of its last committed block, plus the block
log, the transaction index and the consensus safety state. ``commit_block`` writes one
block and everything it changes atomically: after a crash a store is at the old height
or the new one, never between.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from node.config import U64_MAX
from node.settlement import BlockContext, BlockOutcome, Genesis, Head, TxRecord, TxResult

__all__ = ["GenesisMismatchError", "Storage", "StorageError", "StoredBlock"]


class StorageError(RuntimeError):
    """The store cannot do what was asked (full disk, map size limit, corrupt data)."""


class GenesisMismatchError(StorageError):
    """The data directory belongs to another chain; refusing to mix histories."""


@dataclass(frozen=True, slots=True)
class StoredBlock:
    height: int
    block_hash: bytes
    block_bytes: bytes  # the consensus layer's canonical block encoding, opaque here
    certificate: bytes  # the commit certificate, opaque here
    time_ms: int
    state_root: bytes
    results: tuple[TxResult, ...]


class Storage(ABC):
    """A node's durable state. Single-writer; reads see the last committed block."""

    @property
    @abstractmethod
    def genesis(self) -> Genesis: ...

    @abstractmethod
    def head(self) -> Head: ...

    @abstractmethod
    def balance(self, account: str, instrument: str) -> int: ...

    @abstractmethod
    def supply(self, instrument: str) -> int: ...

    @abstractmethod
    def tx_record(self, tx_id: bytes) -> TxRecord | None: ...

    @abstractmethod
    def all_balances(self) -> dict[tuple[str, str], int]:
        """Every non-zero balance (for audits, invariant checks and state dumps)."""

    @abstractmethod
    def block(self, height: int) -> StoredBlock | None: ...

    @abstractmethod
    def save_safety(self, data: bytes) -> None:
        """Persist the consensus safety state; durable when this returns."""

    @abstractmethod
    def load_safety(self) -> bytes | None: ...

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release in memory
        """Release resources; the store is unusable afterwards."""

    def commit_block(
        self,
        block_hash: bytes,
        block_bytes: bytes,
        certificate: bytes,
        ctx: BlockContext,
        outcome: BlockOutcome,
    ) -> None:
        """Write the block, its results, its balance changes and the new head at once."""
        head = self.head()
        assert ctx.height == head.height + 1 == outcome.height, (
            f"commit of block {ctx.height} onto height {head.height}"
        )
        assert len(block_hash) == 32 and len(outcome.state_root) == 32
        assert all(0 <= v <= U64_MAX for v in outcome.balances.values())
        assert all(0 <= v <= U64_MAX for v in outcome.supplies.values())
        block = StoredBlock(
            ctx.height,
            block_hash,
            block_bytes,
            certificate,
            ctx.time_ms,
            outcome.state_root,
            outcome.results,
        )
        self._write_block(block, outcome)

    @abstractmethod
    def _write_block(self, block: StoredBlock, outcome: BlockOutcome) -> None: ...

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
