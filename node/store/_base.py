"""The Storage interface every node uses, whatever keeps the bytes.

A store is the settlement ``StateView`` as of its last committed block, plus the block
log, the transaction index, the consensus safety state and the intake log (client
transactions this node acknowledged and no block has committed yet, docs/adr/0006).
``commit_block`` writes one block and everything it changes atomically, pruning the
intake log of the block's transactions in the same write: after a crash a store is at the
old height or the new one, never between.

Every write is checked with :func:`node.invariant.require` (not ``assert``: the checks
guard the ledger and must survive ``python -O``); a failed write raises
:class:`StorageError`, which the validator treats as fatal (docs/cluster.md "Fail-stop").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from node.config import U64_MAX
from node.crypto import HASH_LEN
from node.invariant import require
from node.settlement import (
    BlockContext,
    BlockOutcome,
    Genesis,
    Head,
    PartyRoot,
    TxRecord,
    TxResult,
)

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
    # The size and root of the block's party index, its results tree's last leaf (ADR
    # 0025, amendment): written by this node's own execution of the block, so a receipt
    # from it builds the results tree without working the index out again. None for a
    # block a store of before session 20 wrote: the index is worked out again.
    parties: PartyRoot | None


class Storage(ABC):
    """A node's durable state. Single-writer; reads see the last committed block."""

    # Called with every StorageError before it is raised, from a read as well as a write,
    # so a failure met by any caller (an API read too) halts the validator (fail-stop).
    on_error: Callable[[StorageError], None] | None = None

    def _failed(self, error: StorageError) -> StorageError:
        """``error``, after telling ``on_error`` (``raise self._failed(StorageError(...))``)."""
        if self.on_error is not None:
            self.on_error(error)
        return error

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
    def record(self, key: bytes) -> bytes | None: ...

    @abstractmethod
    def records(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every state record whose key starts with ``prefix``, in key order."""

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

    @abstractmethod
    def intake_put(self, entries: Sequence[tuple[bytes, bytes, bytes]]) -> None:
        """Record acknowledged transactions as ``(key, tx_id, raw)`` (``key`` is the
        mempool's ``tx_key(raw)``) in one write; durable when this returns, so many submits
        share one fsync."""

    @abstractmethod
    def intake(self) -> list[tuple[bytes, bytes]]:
        """Every recorded ``(tx_id, raw)`` not yet pruned by a commit (replayed at start),
        in the order they were first recorded: the FIFO mempool's order, so a restart
        keeps a client's trade ahead of the hold, cancel or claim it sent after it."""

    @abstractmethod
    def intake_count(self) -> int: ...

    @abstractmethod
    def intake_drop(self, keys: Sequence[bytes]) -> None:
        """Forget intake entries that can no longer commit (found stale at replay)."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release in memory
        """Release resources; the store is unusable afterwards."""

    def commit_block(
        self,
        block_hash: bytes,
        block_bytes: bytes,
        certificate: bytes,
        ctx: BlockContext,
        outcome: BlockOutcome,
        *,
        intake_done: Sequence[bytes] = (),
    ) -> None:
        """Write the block, its results, its balance changes and the new head at once, and
        prune ``intake_done`` (the intake keys of the block's transactions)."""
        head = self.head()
        require(
            ctx.height == head.height + 1 == outcome.height,
            f"commit of block {ctx.height} (outcome {outcome.height}) onto height {head.height}",
        )
        require(
            len(block_hash) == HASH_LEN and len(outcome.state_root) == HASH_LEN,
            "block hash and state root are 32 bytes",
        )
        require(all(0 <= v <= U64_MAX for v in outcome.balances.values()), "balance outside u64")
        require(all(0 <= v <= U64_MAX for v in outcome.supplies.values()), "supply outside u64")
        parties = outcome.parties.top
        require(len(parties.root) == HASH_LEN, "a party index's root is 32 bytes")
        block = StoredBlock(
            ctx.height,
            block_hash,
            block_bytes,
            certificate,
            ctx.time_ms,
            outcome.state_root,
            outcome.results,
            parties,
        )
        self._write_block(block, outcome, intake_done)

    @abstractmethod
    def _write_block(
        self, block: StoredBlock, outcome: BlockOutcome, intake_done: Sequence[bytes]
    ) -> None: ...

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
