"""The one reader/writer pair of every binary encoding in the node (house rule 12).

Fixed-layout, big-endian, canonical encodings: blocks and certificates
(``node.core.types``), consensus messages (``node.core.codec``), the safety state
(``node.core.safety``), transactions and genesis (``node.settlement``), stored records
(``node.store._records``). Each of those owns its layout and its limits; this module only
reads and writes the primitives, so every decoder fails the same way. Pure: no I/O.

Two typed errors, split by whose fault it is:

- :class:`DecodeError`: bytes (from a peer, a client or storage) that are not exactly a
  canonical encoding within the limits: truncated, trailing bytes, a length over its
  limit, a bad tag or presence byte, invalid UTF-8. Every decoder raises it and nothing
  else (no ``struct.error``, ``IndexError`` or ``UnicodeDecodeError`` leaks out).
- :class:`EncodeError`: a value this node was asked to encode that has no encoding (an
  integer out of range, a length over the limit the decoder enforces), so nothing that
  would be refused on the other side is ever written.

A package may keep its own subclass (``node.core.DecodeError``,
``node.settlement.DecodeError``) by subclassing :class:`Reader` / :class:`Writer` and
setting ``error``; ``except node.codec.DecodeError`` still catches them all.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, ClassVar, Self

__all__ = ["DecodeError", "EncodeError", "Reader", "Writer"]

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class DecodeError(ValueError):
    """Bytes that are not a canonical encoding of the expected value."""


class EncodeError(ValueError):
    """A value with no canonical encoding (out of range, or over a limit the decoder
    enforces); nothing was written."""


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
        """A fixed group of fields in one call (the fast path for headers)."""
        return s.unpack(self.take(s.size))

    def u8(self) -> int:
        return int(_U8.unpack(self.take(1))[0])

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def fixed(self, size: int) -> bytes:
        """Exactly ``size`` bytes (a hash, a key, a signature of fixed length)."""
        return self.take(size)

    def flag(self) -> bool:
        """A presence byte: exactly 0 or 1, so absence and presence have one encoding each."""
        v = self.u8()
        if v > 1:
            raise self.error(f"presence byte {v} at offset {self._pos - 1} is not 0 or 1")
        return v == 1

    def blob(self, max_len: int) -> bytes:
        """A u32 length, then that many bytes (at most ``max_len``)."""
        return self.take(self.limit(self.u32(), max_len, "bytes in a blob"))

    def blob16(self, max_len: int) -> bytes:
        """A u16 length, then that many bytes (at most ``max_len``)."""
        return self.take(self.limit(self.u16(), max_len, "bytes in a short blob"))

    def blobs(self, count: int, max_len: int) -> tuple[bytes, ...]:
        """``count`` blobs (the transactions of a block or a forward), in one call."""
        return tuple(n for _, n in self._sized(_U32, count, max_len, numbered=False))

    def entries(self, s: struct.Struct, count: int, max_len: int) -> tuple[tuple[int, bytes], ...]:
        """``count`` entries ``(number, data)``, each ``s`` (the number, then the data's
        length) followed by the data, at most ``max_len`` bytes: a certificate's signatures."""
        return tuple(self._sized(s, count, max_len, numbered=True))

    def _sized(
        self, s: struct.Struct, count: int, max_len: int, *, numbered: bool
    ) -> list[tuple[int, bytes]]:
        # The hot loops of every decoder (a block's transactions, a certificate's
        # signatures), so the bounds checks of take() are inlined here.
        buf, pos, end, size, unpack_from = (
            self._buf,
            self._pos,
            len(self._buf),
            s.size,
            s.unpack_from,
        )
        out = []
        for _ in range(count):
            if pos + size > end:
                raise self.error(f"truncated: need {size} bytes at offset {pos}")
            fields = unpack_from(buf, pos)
            number, n = fields if numbered else (0, fields[0])
            pos += size
            if n > max_len:
                raise self.error(f"an entry of {n} bytes exceeds the limit of {max_len}")
            if pos + n > end:
                raise self.error(f"truncated: need {n} bytes at offset {pos}")
            out.append((number, buf[pos : pos + n]))
            pos += n
        self._pos = pos
        return out

    def limit(self, n: int, limit: int, what: str) -> int:
        """``n`` if it is at most ``limit`` (a count or length read from the input)."""
        if n > limit:
            raise self.error(f"{n} {what} exceed the limit of {limit}")
        return n

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


class Writer:
    """Appends parts and joins them once in :meth:`finish`. Every method returns the
    writer, so a layout reads as one chain: ``Writer().u8(tag).u64(view).finish()``."""

    __slots__ = ("_parts",)
    error: ClassVar[type[EncodeError]] = EncodeError

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def raw(self, data: bytes) -> Self:
        """Bytes that are already a canonical encoding (a block header, a nested record)."""
        self._parts.append(data)
        return self

    def pack(self, s: struct.Struct, *values: Any) -> Self:
        """A fixed group of fields in one call (the fast path for headers). Integers out
        of range raise; but a ``32s`` field pads or cuts its bytes silently, so the
        caller checks the length of every fixed-size bytes field first."""
        try:
            self._parts.append(s.pack(*values))
        except struct.error as e:
            raise self.error(f"a field is out of range for {s.format!r}: {e}") from e
        return self

    # (u8 to u64 are written out, not one helper: a call each on the hot path.)
    def u8(self, v: int) -> Self:
        try:
            self._parts.append(_U8.pack(v))
        except struct.error as e:
            raise self._range_error(v, 8) from e
        return self

    def u16(self, v: int) -> Self:
        try:
            self._parts.append(_U16.pack(v))
        except struct.error as e:
            raise self._range_error(v, 16) from e
        return self

    def u32(self, v: int) -> Self:
        try:
            self._parts.append(_U32.pack(v))
        except struct.error as e:
            raise self._range_error(v, 32) from e
        return self

    def u64(self, v: int) -> Self:
        try:
            self._parts.append(_U64.pack(v))
        except struct.error as e:
            raise self._range_error(v, 64) from e
        return self

    def _range_error(self, v: int, bits: int) -> EncodeError:
        return self.error(f"{v!r} does not fit an unsigned {bits}-bit integer")

    def fixed(self, v: bytes, size: int) -> Self:
        """Exactly ``size`` bytes."""
        if len(v) != size:
            raise self.error(f"expected {size} bytes, got {len(v)}")
        self._parts.append(v)
        return self

    def flag(self, present: bool) -> Self:
        self._parts.append(b"\x01" if present else b"\x00")
        return self

    def blob(self, v: bytes, max_len: int) -> Self:
        """A u32 length, then ``v`` (at most ``max_len`` bytes, as the reader demands)."""
        n = len(v)
        if n > max_len:
            raise self.error(f"a blob of {n} bytes exceeds the limit of {max_len}")
        self._parts.append(_U32.pack(n))
        self._parts.append(v)
        return self

    def blob16(self, v: bytes, max_len: int) -> Self:
        """A u16 length, then ``v`` (at most ``max_len`` bytes, as the reader demands)."""
        self.limit(len(v), min(max_len, 0xFFFF), "bytes in a short blob")
        self._parts.append(_U16.pack(len(v)))
        self._parts.append(v)
        return self

    def blobs(self, items: Sequence[bytes], max_len: int) -> Self:
        """Each of ``items`` as a blob (no count: the caller writes it where the layout
        puts it), in one call."""
        put, u32 = self._parts.append, _U32.pack
        for data in items:
            n = len(data)
            if n > max_len:
                raise self.error(f"a blob of {n} bytes exceeds the limit of {max_len}")
            put(u32(n))
            put(data)
        return self

    def entries(self, s: struct.Struct, rows: Sequence[tuple[int, bytes]], max_len: int) -> Self:
        """Each ``(number, data)`` of ``rows`` as ``s`` (the number, then the data's length)
        followed by the data, at most ``max_len`` bytes: a certificate's signatures."""
        put, pack = self._parts.append, s.pack
        try:
            for number, data in rows:
                n = len(data)
                if n > max_len:
                    raise self.error(f"an entry of {n} bytes exceeds the limit of {max_len}")
                put(pack(number, n))
                put(data)
        except struct.error as e:
            raise self.error(f"an entry is out of range for {s.format!r}: {e}") from e
        return self

    def limit(self, n: int, limit: int, what: str) -> Self:
        """Refuse ``n`` over ``limit``: the count the reader would refuse is never written."""
        if n > limit:
            raise self.error(f"{n} {what} exceed the limit of {limit}")
        return self

    def finish(self) -> bytes:
        return b"".join(self._parts)
