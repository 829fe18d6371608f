"""Paged answers read whole (docs/sdk.md "Paged answers"; ADR 0020, amendment "pages").

GetReference and GetAttestations outgrow the channel's receive cap at the node's limits,
so the SDK asks for pages of at most ANSWER_PAGE_BYTES and merges them into the message
one unpaged answer would have been: the callers (``reference()``, ``attestations()``, the
CLI, the console) see no difference. Every page of one read comes from one node; the
pages of one read are the node's answer at one state (the node refuses a continuation
once that state changed: ABORTED, reason PAGE_STALE), and such a read starts again from
the first page, at most PAGE_RESTARTS_MAX times. What a lying node can make this do is
bounded: at most ANSWER_PAGES_MAX pages (each within the cap and its per-message bounds,
client/_answers.py), at most ANSWER_ENTRIES_MAX entries of each field in all, and heights
that never go back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import grpc.aio

from client._errors import BadResponseError
from client._limits import ANSWER_ENTRIES_MAX, ANSWER_PAGES_MAX, PAGE_RESTARTS_MAX
from node.wire.errors import Reason, from_trailer

__all__ = ["read_pages"]


async def read_pages(
    call: Callable[[bytes], Awaitable[Any]], fields: Sequence[str], what: str
) -> Any:
    """Every page of one paged answer, merged: ``call(token)`` asks one node for the page
    ``token`` continues (empty: the first); ``fields`` are the answer's paged repeated
    fields, concatenated in page order; the other fields are the first page's, the
    height the last page's (the pages hold at every height from the first's to it)."""
    for restart in range(PAGE_RESTARTS_MAX + 1):
        try:
            return await _read(call, fields, what)
        except grpc.aio.AioRpcError as e:
            if restart == PAGE_RESTARTS_MAX or not _stale(e):
                raise
    raise AssertionError("unreachable: the last restart raises")


async def _read(call: Callable[[bytes], Awaitable[Any]], fields: Sequence[str], what: str) -> Any:
    merged = await call(b"")
    token, pages = bytes(merged.next_page_token), 1
    while token:
        if pages == ANSWER_PAGES_MAX:
            raise BadResponseError(f"{what}: more than {ANSWER_PAGES_MAX} pages")
        page = await call(token)
        pages += 1
        if page.height < merged.height:
            raise BadResponseError(
                f"{what}: a page at height {page.height} after one at {merged.height}"
            )
        merged.height = page.height
        for name in fields:
            entries = getattr(merged, name)
            entries.extend(getattr(page, name))
            bound = ANSWER_ENTRIES_MAX[f"{merged.DESCRIPTOR.name}.{name}"]
            if len(entries) > bound:
                raise BadResponseError(f"{what}: more than {bound} {name} in its pages")
        token = bytes(page.next_page_token)
    merged.next_page_token = b""
    return merged


def _stale(e: grpc.aio.AioRpcError) -> bool:
    """Whether the node refused a continuation because the answer changed."""
    if e.code() is not grpc.StatusCode.ABORTED:
        return False
    pairs: Any = e.trailing_metadata() or ()
    details = from_trailer(e.code(), e.details() or "", list(pairs))
    return details is not None and details.reason == Reason.PAGE_STALE
