"""Reading a file a person named: a regular file of bounded size, or an error before any
wait.

Every path an operator or a ``ledger`` user passes (a key, genesis, a config, a trade or
receipt file) is read through :func:`read_regular` (or, as UTF-8 text,
:func:`read_regular_text`); a document named only to be hashed through
:func:`sha256_regular`. A FIFO blocks ``open()`` until a writer comes, for ever for a
mistyped path, and a device such as ``/dev/zero`` never ends; both are refused at once,
and so is a file over ``FILE_BYTES_MAX`` (a disk image named by mistake), each as an
``OSError`` every caller already turns into its one-line error.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from node.config import FILE_BYTES_MAX

__all__ = ["read_regular", "read_regular_text", "sha256_regular"]

_HASH_CHUNK_BYTES = 1024 * 1024


@contextmanager
def _open_regular(path: str | Path) -> Iterator[tuple[BinaryIO, int]]:
    """``path`` open for reading, and its size; ``OSError`` (EINVAL, "not a regular file")
    for a FIFO, a device, a socket or a directory, without waiting for a writer."""
    # O_NONBLOCK: opening a FIFO returns at once instead of waiting for its writer (no
    # effect on a regular file's reads).
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        with os.fdopen(fd, "rb", closefd=False) as f:
            yield f, st.st_size
    finally:
        os.close(fd)


def read_regular(path: str | Path, size_max: int = FILE_BYTES_MAX) -> bytes:
    """The bytes of ``path``; ``OSError`` (EFBIG) when it holds more than ``size_max``
    (checked before reading, and again after, for a file that grew meanwhile)."""
    too_big = OSError(errno.EFBIG, f"larger than {size_max:,} bytes", str(path))
    with _open_regular(path) as (f, size):
        if size > size_max:
            raise too_big
        data = f.read(size_max + 1)
    if len(data) > size_max:
        raise too_big
    return data


def read_regular_text(path: str | Path) -> str:
    """:func:`read_regular` as UTF-8 text (``UnicodeDecodeError`` for other bytes)."""
    return read_regular(path).decode("utf-8")


def sha256_regular(path: str | Path) -> bytes:
    """The SHA-256 of ``path``'s bytes, read a chunk at a time (any size)."""
    h = hashlib.sha256()
    with _open_regular(path) as (f, _):
        while chunk := f.read(_HASH_CHUNK_BYTES):
            h.update(chunk)
    return h.digest()
