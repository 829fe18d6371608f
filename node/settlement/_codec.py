"""Canonical binary encoding (docs/adr/0001-canonical-encoding.md).

Fixed-width big-endian integers and length-prefixed ASCII identifiers, in a fixed field
order. There are no optional fields, varints or maps, so every value has exactly one
encoding; the decoder rejects trailing bytes, short input, out-of-range lengths and
non-ASCII identifiers. That makes SHA-256 of the bytes a stable identity: two different
byte strings never decode to the same transaction.
"""

from __future__ import annotations

import re
import struct

from node import codec
from node.config import ID_BYTES_MAX, U64_MAX

__all__ = ["DecodeError", "Reader", "Writer", "check_id"]

_ID_RE = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:\-]*\Z")
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


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


class Writer:
    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, v: int) -> Writer:
        self._parts.append(_U8.pack(v))
        return self

    def u16(self, v: int) -> Writer:
        self._parts.append(_U16.pack(v))
        return self

    def u32(self, v: int) -> Writer:
        self._parts.append(_U32.pack(v))
        return self

    def u64(self, v: int) -> Writer:
        if not 0 <= v <= U64_MAX:
            raise ValueError(f"{v} does not fit an unsigned 64-bit integer")
        self._parts.append(_U64.pack(v))
        return self

    def ident(self, v: str, max_len: int = ID_BYTES_MAX) -> Writer:
        raw = check_id(v, max_len=max_len).encode("ascii")
        self._parts.append(_U8.pack(len(raw)) + raw)
        return self

    def fixed(self, v: bytes, size: int) -> Writer:
        if len(v) != size:
            raise ValueError(f"expected {size} bytes, got {len(v)}")
        self._parts.append(v)
        return self

    def blob(self, v: bytes) -> Writer:
        self._parts.append(_U32.pack(len(v)) + v)
        return self

    def finish(self) -> bytes:
        return b"".join(self._parts)


class Reader(codec.Reader):
    """The shared reader, failing with this package's DecodeError, plus identifiers."""

    __slots__ = ()
    error = DecodeError

    def ident(self, max_len: int = ID_BYTES_MAX) -> str:
        n = self.u8()
        raw = self.take(n)
        if not 0 < n <= max_len or not _ID_RE.match(raw):
            raise DecodeError(f"invalid identifier at offset {self._pos - n}")
        return raw.decode("ascii")

    def fixed(self, size: int) -> bytes:
        return self.take(size)
