"""Invariant checks that survive ``python -O`` (house rule 10).

A bare ``assert`` vanishes under ``-O``; a check that guards state must not. ``require``
raises :class:`InvariantError`, which the validator's driver treats as fatal: the node
halts (health NOT_SERVING, non-zero exit) instead of serving half-alive. Use it for
programming errors and corrupted state, never for bad input from a peer or a client
(those get a typed result or error and change nothing).
"""

from __future__ import annotations

__all__ = ["InvariantError", "require"]


class InvariantError(Exception):
    """A broken invariant: a bug or corrupted state. Fatal to the validator."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`InvariantError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise InvariantError(message)
