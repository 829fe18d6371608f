"""Bounds-checked reading of fixed-layout, big-endian canonical encodings.

One reader for every decoder in the node (blocks and certificates in ``node.core``,
consensus messages in ``node.core.codec``, transactions in ``node.settlement``). It only
reads; each decoder owns its layout and its limits. Pure: no I/O.

Every failure raises the reader's ``error`` class, a :class:`DecodeError`. Each package
keeps its own subclass (``node.core.DecodeError``, ``node.settlement.DecodeError``) by
subclassing :class:`Reader` and setting ``error``, so an ``except`` clause catches exactly
the failures of the decoders it wraps.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

__all__ = ["DecodeError", "Reader"]

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class DecodeError(ValueError):
    """Bytes that are not a canonical encoding of the expected value."""


class Reader:
    """Consumes ``buf`` from the front; never reads past its end."""

    __slots__ = ("_buf", "_pos")
    error: ClassVar[type[DecodeError]] = DecodeError

    def __init__(self, buf: bytes) -> None:
        self._buf = buf
        self._pos = 0

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes."""
        end = self._pos + n
        if n < 0 or end > len(self._buf):
            raise self.error(f"truncated: need {n} bytes at offset {self._pos}")
        chunk = self._buf[self._pos : end]
        self._pos = end
        return chunk

    def unpack(self, s: struct.Struct) -> tuple[Any, ...]:
        return s.unpack(self.take(s.size))

    def u8(self) -> int:
        return int(_U8.unpack(self.take(1))[0])

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def flag(self) -> bool:
        """A presence byte: exactly 0 or 1, so absence and presence have one encoding each."""
        v = self.u8()
        if v > 1:
            raise self.error(f"presence byte {v} at offset {self._pos - 1} is not 0 or 1")
        return v == 1

    def blob(self, max_len: int) -> bytes:
        """A u32 length, then that many bytes (at most ``max_len``)."""
        n = self.u32()
        if n > max_len:
            raise self.error(f"blob of {n} bytes exceeds the limit of {max_len}")
        return self.take(n)

    def utf8(self, n: int) -> str:
        """``n`` bytes of strict UTF-8 (which re-encodes to the same bytes)."""
        raw = self.take(n)
        try:
            return raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError as e:
            raise self.error(f"invalid UTF-8 at offset {self._pos - n}") from e

    def done(self) -> None:
        if self._pos != len(self._buf):
            raise self.error(f"{len(self._buf) - self._pos} trailing bytes")
