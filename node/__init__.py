"""Validator node: settlement state machine, consensus core, storage and transport.

Layout (see docs/ and README):

- ``node.settlement``: the deterministic ledger state machine (no I/O).
- ``node.core``: the consensus protocol as a pure state machine (no I/O).
- ``node.store``: the ``Storage`` interface, its LMDB and in-memory implementations.
- ``node.crypto``: Ed25519 and hashing, with strict signature checks.
- ``node.config``: every limit in one place.
"""

from node._version import __version__

__all__ = ["__version__"]
