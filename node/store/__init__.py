"""Storage: the ``Storage`` interface, its LMDB implementation and an in-memory one."""

from node.settlement import Head
from node.store._base import GenesisMismatchError, Storage, StorageError, StoredBlock
from node.store._lmdb import LmdbStore
from node.store._memory import MemoryStore

__all__ = [
    "GenesisMismatchError",
    "Head",
    "LmdbStore",
    "MemoryStore",
    "Storage",
    "StorageError",
    "StoredBlock",
]
