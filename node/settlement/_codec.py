"""Canonical binary encoding (docs/adr/0001-canonical-encoding.md).

Fixed-width big-endian integers and length-prefixed ASCII identifiers, in a fixed field
order. There are no optional fields, varints or maps, so every value has exactly one
encoding; the decoder rejects trailing bytes, short input, out-of-range lengths and
non-ASCII identifiers. That makes SHA-256 of the bytes a stable identity: two different
byte strings never decode to the same transaction.

The reader and writer are the node's one pair (``node.codec``); this package adds
identifiers and fails with its own :class:`DecodeError` (a ``node.codec.DecodeError``).
"""

from __future__ import annotations

import re
from typing import Self

from node import codec
from node.config import ID_BYTES_MAX

__all__ = ["DecodeError", "Reader", "Writer", "check_id"]

_ID_RE = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:\-]*\Z")


class DecodeError(codec.DecodeError):
    """The bytes are not a canonical encoding of the expected value."""


def check_id(value: str, what: str = "id", max_len: int = ID_BYTES_MAX) -> str:
    """Return ``value`` if it is a valid identifier, else raise ValueError saying why."""
    raw = value.encode("ascii", "replace")
    if not 0 < len(raw) <= max_len or not _ID_RE.match(raw):
        raise ValueError(
            f"{what} {value!r} must be 1-{max_len} ASCII letters, digits or . _ : - "
            "and start with a letter or digit"
        )
    return value


class Writer(codec.Writer):
    """The shared writer, plus identifiers (a u8 length, then ASCII). Out-of-range values
    raise ``node.codec.EncodeError``, a ValueError."""

    __slots__ = ()

    def ident(self, v: str, max_len: int = ID_BYTES_MAX) -> Self:
        try:
            raw = check_id(v, max_len=max_len).encode("ascii")
        except ValueError as e:
            raise self.error(str(e)) from e
        self.u8(len(raw)).raw(raw)
        return self


class Reader(codec.Reader):
    """The shared reader, failing with this package's DecodeError, plus identifiers."""

    __slots__ = ()
    error = DecodeError

    def more(self) -> bool:
        """Whether bytes are left: how a trailing optional field is told apart."""
        return self._pos < len(self._buf)

    def ident(self, max_len: int = ID_BYTES_MAX) -> str:
        n = self.u8()
        raw = self.take(n)
        if not 0 < n <= max_len or not _ID_RE.match(raw):
            raise DecodeError(f"invalid identifier at offset {self._pos - n}")
        return raw.decode("ascii")
