"""Paged answers, both ends (review 33m): what `make mutate` found no test held in
node/runtime/_pages.py (the node's cut of GetReference and GetAttestations into pages)
and client/_pages.py (the SDK's merge). Pure: no node, no network."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_status.rpc_status import GRPC_DETAILS_METADATA_KEY

from client import BadResponseError
from client._limits import ANSWER_ENTRIES_MAX, ANSWER_PAGES_MAX
from client._pages import read_pages
from node.runtime._pages import Page, PageError, StalePageError, fill, page_of, paged, token
from node.wire import ledger_pb2 as pb
from node.wire.errors import Details, Reason
from tests.unit.test_review32_pages import _book, _ref

# --- the node's cut (node/runtime/_pages.py) ----------------------------------------------

MANY = 300  # entries: above the integers CPython shares (-5..256), as real answers are


def _ids(count: int) -> list[str]:
    """``count`` ids of 1 kB: 300 make an answer of about 5 pages of the minimum size."""
    return [f"P{k:05d}" + "X" * 1_000 for k in range(count)]


def _entries(ids: list[str]) -> Any:
    return lambda k: ("participants", pb.ReferenceParticipant(id=ids[k]))


def _read_all(count: int, version: int, size: int) -> list[pb.Reference]:
    """Every page of an answer of ``count`` entries at ``version``, read as a client does:
    the first page, then each continuation its predecessor's token names."""
    ids, pages, tok = _ids(count), [], b""
    while True:
        page = page_of(size, tok, version)
        msg = paged(pb.Reference(height=5), count, page, version, _entries(ids))
        pages.append(msg)
        tok = bytes(msg.next_page_token)
        if not tok:
            return pages
        assert len(pages) <= count, "a read that never ends"


def test_a_long_answer_read_in_pages_ends_with_a_page_without_token() -> None:
    """An answer of 300 entries of 1 kB in pages of the minimum size (64 KiB): each entry
    once, in order, and the last page names no next one (a token there pointed at the answer's end,
    which the node refuses: the client's read failed on its last page)."""
    pages = _read_all(MANY, 1_000, 1)
    assert len(pages) > 1
    got = [p.id for page in pages for p in page.participants]
    assert got == _ids(MANY)
    assert all(page.next_page_token for page in pages[:-1])
    assert not pages[-1].next_page_token


def test_an_empty_answer_asked_in_pages_is_one_empty_page() -> None:
    """No attestation a caller may read (or no entry at all): the first page is empty and
    final, not an INVALID_ARGUMENT "past the answer"."""
    msg = paged(pb.AttestationList(height=5), 0, page_of(1, b"", 9), 9, _entries([]))
    assert list(msg.instruments) == [] and not msg.next_page_token
    assert fill(pb.AttestationList(), 0, page_of(1, b"", 9), _entries([])) == ([], 0)


@pytest.mark.parametrize("count", [3, MANY])
def test_a_continuation_at_the_answers_end_is_refused(count: int) -> None:
    """The node never makes a token pointing at the answer's end (the last page has
    none): one that does is not this node's (PageError, INVALID_ARGUMENT), at a small
    count and above the integers CPython shares."""
    page = page_of(1, token(9, count), 9)
    with pytest.raises(PageError, match="past the answer"):
        paged(pb.Reference(), count, page, 9, _entries(_ids(count)))
    # control: the token of the last entry is served, one entry and no token
    last = paged(
        pb.Reference(), count, page_of(1, token(9, count - 1), 9), 9, _entries(_ids(count))
    )
    assert len(last.participants) == 1 and not last.next_page_token


def test_a_token_of_any_other_length_is_refused_as_the_clients_error() -> None:
    """A token one byte longer or shorter than the node's: PageError (INVALID_ARGUMENT),
    not the struct error of its unpacking (which the handler answered INTERNAL)."""
    good = token(9, 5)
    for raw in (good + b"\0", good[:-1], good * 2):
        with pytest.raises(PageError, match="page_token is 12 bytes"):
            page_of(1, raw, 9)
    assert page_of(1, good, 9).offset == 5  # control


def test_a_continuation_is_served_at_its_version_whatever_the_height() -> None:
    """A chain past block 256: the token's version (parsed from the client's bytes) and the
    node's are equal integers, never the same object; the continuation is served."""
    version = 1_000_000
    page = page_of(1, token(version, 2), version)
    msg = paged(pb.Reference(), 5, page, version, _entries(_ids(5)))
    assert [p.id for p in msg.participants] == _ids(5)[2:]


@pytest.mark.parametrize("was", [8, 10])
def test_a_token_of_another_version_earlier_or_later_is_stale(was: int) -> None:
    """A continuation of version 8 or 10 on a node at 9: the pages would mix two states
    (a later version is another node's, further on, or one this node never reached)."""
    with pytest.raises(StalePageError):
        paged(pb.Reference(), 5, page_of(1, token(was, 2), 9), 9, _entries(_ids(5)))


def test_an_unpaged_answer_holds_every_entry_and_no_token() -> None:
    """``page`` None (``reference_pb``'s default): every entry from the first, no token."""
    msg = paged(pb.Reference(height=3), 5, None, 0, _entries(_ids(5)))
    assert [p.id for p in msg.participants] == _ids(5)
    assert not msg.next_page_token


# Entry sizes either side of each varint length of the entry's length prefix (1, 2 and 3
# bytes: below 128, below 16,384, above), and 0: an empty entry is 2 bytes on the wire.
SIZES = [0, 3, 63, 64, 126, 127, 128, 129, 200, 255, 256, 16_383, 16_384, 16_400]


def _sized(size: int) -> pb.ReferenceParticipant:
    """A participant entry of exactly ``size`` bytes (its id field: tag, length, id)."""
    if size == 0:
        return pb.ReferenceParticipant()
    for n in range(size, -1, -1):
        msg = pb.ReferenceParticipant(id="x" * n)
        if msg.ByteSize() == size:
            return msg
    raise AssertionError(f"no entry of {size} bytes")


def test_a_page_holds_entries_of_any_size_up_to_its_bytes_exactly() -> None:
    """For entries of every varint length: a page of exactly the bytes of the base, k
    entries and a next_page_token holds k entries, one byte less holds k - 1. The node
    counts each entry's bytes as protobuf encodes them; an undercount made pages larger
    than the client asked for (its cap), an overcount smaller."""
    entries = [_sized(s) for s in SIZES for _ in range(2)]
    assert [e.ByteSize() for e in entries[::2]] == SIZES

    def entry(k: int) -> tuple[str, Message]:
        return "participants", entries[k]

    base = pb.Reference(height=7)
    for k in range(1, len(entries)):
        whole = pb.Reference(height=7, participants=entries[:k], next_page_token=token(9, k))
        size = whole.ByteSize()
        got, after = fill(base, len(entries), Page(9, 0, size), entry)
        assert (len(got), after) == (k, k), (k, size)
        if k > 1:
            got, _ = fill(base, len(entries), Page(9, 0, size - 1), entry)
            assert len(got) == k - 1, (k, size)


# --- the SDK's merge (client/_pages.py) ----------------------------------------------------


def _aborted(reason: str) -> grpc.aio.AioRpcError:
    details = Details(reason, {})
    status = details.status(grpc.StatusCode.ABORTED, "aborted")
    trailing = grpc.aio.Metadata((GRPC_DETAILS_METADATA_KEY, status.SerializeToString()))
    return grpc.aio.AioRpcError(grpc.StatusCode.ABORTED, grpc.aio.Metadata(), trailing, "aborted")


async def test_a_node_sending_pages_without_end_is_asked_for_its_pages_max_no_more() -> None:
    """A lying node whose every page names another: the SDK asks ANSWER_PAGES_MAX pages
    (each up to its receive cap) and refuses the answer; not one page more."""
    endless = [_ref(5, "a", b"t") for _ in range(ANSWER_PAGES_MAX + 5)]
    call = _book(endless)
    with pytest.raises(BadResponseError, match=f"more than {ANSWER_PAGES_MAX} pages"):
        await read_pages(call, ("participants",), "reference data")
    assert len(call.asked) == ANSWER_PAGES_MAX


async def test_a_continuation_refused_otherwise_than_stale_is_not_read_again() -> None:
    """A continuation failing UNAVAILABLE, or ABORTED for another reason than
    PAGE_STALE (one sorting before it, one after): raised at once, for the caller's
    failover to the next node; the first page is not asked again."""
    errors = [
        grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
        ),
        _aborted(Reason.LIMIT_REACHED),
        _aborted(Reason.TRANSACTION_REFUSED),
    ]
    for error in errors:
        call = _book([_ref(5, "a", b"t"), error, _ref(5, "a", b"t"), _ref(5, "b")])
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await read_pages(call, ("participants",), "reference data")
        assert raised.value is error
        assert call.asked == [b"", b"t"]
    # control: PAGE_STALE starts the read again from its first page
    call = _book(
        [_ref(5, "a", b"t"), _aborted(Reason.PAGE_STALE), _ref(6, "a", b"t"), _ref(6, "b")]
    )
    merged = await read_pages(call, ("participants",), "reference data")
    assert [p.id for p in merged.participants] == ["a", "b"]
    assert call.asked == [b"", b"t", b"", b"t"]


def test_a_page_once_parsed_cannot_be_changed() -> None:
    """A Page is parsed from the client's request before the read budget is spent and
    used after: a value, so nothing in between moves where the read continues."""
    page = page_of(1, token(9, 5), 9)
    with pytest.raises(AttributeError):
        page.offset = 0  # type: ignore[misc]
    assert not hasattr(page, "__dict__")  # slots: no attribute added either


async def test_pages_merge_up_to_the_bound_of_one_answer_and_not_past_it() -> None:
    """Pages whose entries come to exactly PARTICIPANTS_MAX in all: the largest honest
    registry, read whole. Pages jumping from one under it to one over: refused, though
    no page ends on the bound itself."""
    bound = ANSWER_ENTRIES_MAX["Reference.participants"]
    exact = [_ref(5, "x" * (bound - 3), b"t"), _ref(5, "xyz")]
    merged = await read_pages(_book(exact), ("participants",), "reference data")
    assert len(merged.participants) == bound
    jump = [_ref(5, "x" * (bound - 1), b"t"), _ref(5, "xy")]
    with pytest.raises(BadResponseError, match=f"more than {bound} participants"):
        await read_pages(_book(jump), ("participants",), "reference data")
