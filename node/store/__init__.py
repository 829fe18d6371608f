"""Storage: the ``Storage`` interface, its LMDB implementation and an in-memory one."""

from node.store._base import GenesisMismatchError, Storage, StorageError, StoredBlock
from node.store._lmdb import LmdbStore
from node.store._memory import MemoryStore
from node.settlement import Head

__all__ = [
    "GenesisMismatchError",
    "Head",
    "LmdbStore",
    "MemoryStore",
    "Storage",
    "StorageError",
    "StoredBlock",
]
