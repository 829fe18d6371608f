"""Paged answers: GetReference and GetAttestations (docs/adr/0020, amendment "pages").

Theory of operation. At the node's limits these answers outgrow a client's receive cap
(gRPC's default 4 MiB; the SDK's 5 MiB then, 7 MiB since session 33; reference data can
reach 5.13 MB, attestations 36 MB), so a client may ask for pages of at most
``page_bytes_max`` bytes. The node keeps nothing between pages: a page token is
``u64 version | u32 offset``, the block that last changed what the answer shows when the
read began (``Node.paged_version``) and the entry the next page starts at. A
continuation whose version is no longer the node's is refused (ABORTED, PAGE_STALE):
what the earlier pages showed has changed, so the client reads again from the first
page. While the version holds, the entries and their order are those the first page was
cut from, so the pages together are the answer at every height from the first page's to
the last's. Heights alone would not do: a busy chain commits blocks faster than a client
reads pages, and every read would be refused; trades change neither the reference data
nor the attestations, so only governance, an attestation or a mint or burn restarts a
read.

A token is the client's input: it is parsed with fixed bounds (INVALID_ARGUMENT for one
that is not the node's shape or points past the answer) and proves nothing; it only says
where to continue in data the caller may read anyway.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message

from node.config import ANSWER_PAGE_BYTES_MIN

__all__ = ["Page", "PageError", "StalePageError", "fill", "page_of", "paged", "token"]

_M = TypeVar("_M", bound=Message)
_TOKEN = struct.Struct(">QI")
# A page's next_page_token field: its tag, its length and the token.
_TOKEN_FIELD_BYTES = 2 + _TOKEN.size


class PageError(ValueError):
    """A page token that is not one this node made (the caller's INVALID_ARGUMENT)."""


@dataclass(frozen=True, slots=True)
class Page:
    """Which part of an answer a request asks for: entries from ``offset`` in a message
    of at most ``bytes_max`` bytes (0: every entry, unpaged), of the answer at
    ``version``."""

    version: int
    offset: int
    bytes_max: int

    @property
    def first(self) -> bool:
        return self.offset == 0


def page_of(page_bytes_max: int, page_token: bytes, version: int) -> Page:
    """The page a request's two fields ask for, the answer now at ``version``; PageError
    for a token that does not parse or comes without a page size. A token of another
    version is returned as it is (the caller refuses it as stale)."""
    if not page_token:
        size = max(page_bytes_max, ANSWER_PAGE_BYTES_MIN) if page_bytes_max else 0
        return Page(version, 0, size)
    if not page_bytes_max:
        raise PageError("a page_token needs a page_bytes_max (0 asks for the whole answer)")
    if len(page_token) != _TOKEN.size:
        raise PageError(f"a page_token is {_TOKEN.size} bytes, not {len(page_token)}")
    was, offset = _TOKEN.unpack(page_token)
    if offset == 0:
        raise PageError("a page_token continues after the first entry")
    return Page(was, offset, max(page_bytes_max, ANSWER_PAGE_BYTES_MIN))


def token(version: int, offset: int) -> bytes:
    return _TOKEN.pack(version, offset)


def _varint_bytes(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def fill(
    base: Message, count: int, page: Page, entry: Callable[[int], tuple[str, Message]]
) -> tuple[list[tuple[str, Message]], int]:
    """The entries of ``page`` of an answer of ``count`` entries (``entry(i)``: the
    repeated field of ``base``'s type it goes in, and its message), and the offset the
    next page starts at (``count``: none). A page holds entries while the message (its
    fields in ``base``, the entries, a next_page_token) stays within ``page.bytes_max``,
    and at least one. PageError for an offset past the answer."""
    if page.offset > count or (page.offset == count and not page.first):
        raise PageError(f"a page_token past the answer's {count} entries")
    used = base.ByteSize() + _TOKEN_FIELD_BYTES
    out: list[tuple[str, Message]] = []
    i = page.offset
    while i < count:
        name, msg = entry(i)
        size = msg.ByteSize()
        cost = 1 + _varint_bytes(size) + size  # tag (field numbers below 16), length, bytes
        if page.bytes_max and out and used + cost > page.bytes_max:
            break
        used += cost
        out.append((name, msg))
        i += 1
    return out, i


class StalePageError(Exception):
    """A continuation of a read whose answer changed since its first page (ABORTED)."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"what this answer shows changed at block {version}, after the read's first "
            "page: read again from the first page"
        )
        self.version = version


def paged(
    base: _M,
    count: int,
    page: Page | None,
    version: int,
    entry: Callable[[int], tuple[str, Message]],
) -> _M:
    """``base`` with the entries of ``page`` (None: all of them) of an answer of ``count``
    entries now at ``version``, and the token of the next page if there is one;
    StalePageError if the answer is no longer the one ``page`` continues."""
    if page is None:
        page = Page(version, 0, 0)
    if page.version != version:
        raise StalePageError(version)
    entries, after = fill(base, count, page, entry)
    for name, msg in entries:
        getattr(base, name).append(msg)
    if after < count:
        base.next_page_token = token(version, after)  # type: ignore[attr-defined]
    return base
