"""The consensus safety state in its own small file: one fdatasync per save (ADR 0010).

Every vote waits for the safety state to be durable (persist, then send), so its cost is
on the path of every block, twice. An LMDB commit pays two syncs (data pages, then the
meta page); this file pays one.

Format: two slots of ``SLOT_BYTES`` at offsets 0 and ``SLOT_BYTES``. A slot is a header
(magic, sequence number, payload length, CRC-32 of sequence, length and payload) followed
by the payload. Save number ``s`` overwrites slot ``s % 2`` in place, then fdatasyncs, so
the other slot, holding save ``s - 1``, is never touched while this one may be torn. Load
takes the valid slot with the higher sequence number. A torn newest slot therefore falls
back to the previous save, which is the durable one: the torn save's fdatasync never
returned, so no vote left on it. No valid slot in an existing file is corruption and
fail-stop (StorageError), never a silent reset to "never voted", which would let the
validator vote twice in a view.

The first save creates the file atomically (write a temporary file, fdatasync, rename,
fsync the directory), so an existing file always holds at least one complete slot.
"""

from __future__ import annotations

import os
import struct
import zlib

from node import config, tags
from node.store._base import StorageError

__all__ = ["SLOT_BYTES", "SafetyFile", "fsync_dir"]

_MAGIC = tags.SAFETY_FILE_SLOT
_HEADER = struct.Struct(">8sQII")  # magic, sequence, payload length, CRC-32
_SEQ_LEN = struct.Struct(">QI")  # what the CRC covers before the payload
SLOT_BYTES = _HEADER.size + config.SAFETY_STATE_BYTES_MAX


def _crc(seq: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(_SEQ_LEN.pack(seq, len(payload))))


def encode_slot(seq: int, payload: bytes) -> bytes:
    """One slot's bytes: the header, then the payload."""
    return _HEADER.pack(_MAGIC, seq, len(payload), _crc(seq, payload)) + payload


def slot_offset(seq: int) -> int:
    return (seq % 2) * SLOT_BYTES


class SafetyFile:
    """The safety-state file at ``path``; opened (and checked) by the constructor."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None
        self._seq = -1  # sequence number of the newest valid slot; -1: no file yet
        try:
            self._fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return  # never saved. Not os.path.exists: it says False for any error (EIO too)
        try:
            self._seq = self._newest()[0]
        except BaseException:
            self.close()
            raise

    def exists(self) -> bool:
        return self._fd is not None

    def load(self) -> bytes | None:
        """The newest complete save, or None if nothing was ever saved."""
        return None if self._fd is None else self._newest()[1]

    def holds(self, payload: bytes) -> bool:
        """Whether a valid slot (the newest save or the one before) is ``payload``."""
        fd = self._fd
        if fd is None:
            return False
        slots = (_read_slot(fd, 0), _read_slot(fd, SLOT_BYTES))
        return any(s is not None and s[1] == payload for s in slots)

    def save(self, payload: bytes) -> None:
        """Durable when this returns: one pwrite and one fdatasync (the first save creates
        the file instead)."""
        if len(payload) > config.SAFETY_STATE_BYTES_MAX:
            raise StorageError(
                f"safety state of {len(payload)} bytes exceeds SAFETY_STATE_BYTES_MAX "
                f"({config.SAFETY_STATE_BYTES_MAX})"
            )
        seq = self._seq + 1
        if self._fd is None:
            self._create(encode_slot(seq, payload))
        else:
            _write_all(self._fd, encode_slot(seq, payload), slot_offset(seq))
            os.fdatasync(self._fd)
        self._seq = seq

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _create(self, slot: bytes) -> None:
        tmp = self._path + ".tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, slot, 0)
            os.fdatasync(fd)
            os.replace(tmp, self._path)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd  # the open descriptor now names the file at self._path
        fsync_dir(os.path.dirname(self._path) or ".")

    def _newest(self) -> tuple[int, bytes]:
        fd = self._fd
        slots = [] if fd is None else [_read_slot(fd, 0), _read_slot(fd, SLOT_BYTES)]
        valid = [s for s in slots if s is not None]
        if not valid:
            raise StorageError(
                f"safety-state file {self._path} has no valid slot (both torn or corrupt); "
                "refusing to start as if this validator had never voted. Restore the file "
                "from a backup of this validator, never from another one"
            )
        return max(valid)


def _read_slot(fd: int, offset: int) -> tuple[int, bytes] | None:
    """The slot at ``offset`` as (sequence, payload), or None if torn, corrupt or unwritten."""
    header = os.pread(fd, _HEADER.size, offset)
    if len(header) < _HEADER.size:
        return None
    magic, seq, length, crc = _HEADER.unpack(header)
    if magic != _MAGIC or length > config.SAFETY_STATE_BYTES_MAX or slot_offset(seq) != offset:
        return None  # unwritten, torn inside the header, or not a slot save() wrote here
    payload = os.pread(fd, length, offset + _HEADER.size)
    if len(payload) != length or _crc(seq, payload) != crc:
        return None
    return seq, payload


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(f"pwrite wrote {n} bytes at offset {offset}")
        view, offset = view[n:], offset + n


def fsync_dir(path: str) -> None:
    """Make a rename in ``path``, or an entry made in it, durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
