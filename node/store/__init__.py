"""Storage: the ``Storage`` interface, its LMDB implementation and an in-memory one."""

from typing import TYPE_CHECKING

from node.settlement import Head
from node.store._base import GenesisMismatchError, Storage, StorageError, StoredBlock
from node.store._memory import MemoryStore

if TYPE_CHECKING:
    from node.store._lmdb import LmdbStore

__all__ = [
    "GenesisMismatchError",
    "Head",
    "LmdbStore",
    "MemoryStore",
    "Storage",
    "StorageError",
    "StoredBlock",
]


def __getattr__(name: str) -> object:
    # lmdb comes with the validator extra only: the SDK replays blocks into a MemoryStore
    # (client/_replay.py) on an install without it, so the LMDB store loads on first use.
    if name == "LmdbStore":
        from node.store._lmdb import LmdbStore

        return LmdbStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
