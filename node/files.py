"""Reading a file a person named: a regular file, or an error before any wait.

Every path an operator or a ``ledger`` user passes (a key, genesis, a config, a trade or
receipt file, a document to hash) is read through :func:`read_regular` (or, as UTF-8
text, :func:`read_regular_text`). A FIFO blocks
``open()`` until a writer comes, for ever for a mistyped path, and a device such as
``/dev/zero`` never ends; both are refused at once, as an ``OSError`` every caller
already turns into its one-line error.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["read_regular", "read_regular_text"]


def read_regular(path: str | Path, size_max: int = -1) -> bytes:
    """The bytes of ``path`` (at most ``size_max``, when given); ``OSError`` (EINVAL, "not
    a regular file") for a FIFO, a device, a socket or a directory, without waiting for a
    writer."""
    # O_NONBLOCK: opening a FIFO returns at once instead of waiting for its writer (no
    # effect on a regular file's reads).
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(size_max)
    finally:
        os.close(fd)


def read_regular_text(path: str | Path) -> str:
    """:func:`read_regular` as UTF-8 text (``UnicodeDecodeError`` for other bytes)."""
    return read_regular(path).decode("utf-8")
