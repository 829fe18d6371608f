"""The SDK's walk of an answer's bytes (client/_answers.py), review 33m: what `make
mutate` found no test held. No answer of this version has a fixed-width field, so the
walk's handling of wire types 1 (8 bytes) and 5 (4 bytes) was never run: a newer node may
add such a field (ANSWER_UNKNOWN_FIELDS_MAX allows for it), and a lying node may use one
to make the walk skip bytes protobuf then parses as entries. And a bounded stream is
iterated with ``async for``, as the generated stub's call is."""

from __future__ import annotations

from typing import Any

import pytest
from grpc.aio import EOF

from client import BadResponseError
from client._answers import _Stream, decode
from client._limits import ANSWER_ENTRIES_MAX
from node.wire import ledger_pb2 as pb

BOUND = ANSWER_ENTRIES_MAX["PendingBook.instructions"]
ENTRY = b"\x12\x00"  # field 2 (instructions), length 0: an empty instruction


def _tag(number: int, wire_type: int) -> bytes:
    v, out = (number << 3) | wire_type, bytearray()
    while v >= 0x80:
        out.append(0x80 | (v & 0x7F))
        v >>= 7
    out.append(v)
    return bytes(out)


# Unknown fields of every wire type a newer node may send; the fixed-width values hold
# bytes that, read from the wrong offset, are entries (0x12 0x00) or tags.
VARINT = _tag(100, 0) + b"\x96\x01"
FIXED64 = _tag(101, 1) + ENTRY * 4
FIXED32 = _tag(102, 5) + ENTRY * 2
DELIMITED = _tag(103, 2) + b"\x02" + ENTRY


def test_a_newer_nodes_fixed_width_fields_are_read_past() -> None:
    """A book at its bound with unknown fields of each wire type before, between and after
    its entries: accepted, every entry parsed (a walk that skipped a fixed field by the
    wrong width, or stopped at it, refused every answer of such a node)."""
    unknown = (VARINT, FIXED64, FIXED32, DELIMITED)
    raw = b"\x08\x05" + b"".join(unknown) + ENTRY * (BOUND - 1) + b"".join(unknown) + ENTRY
    raw += FIXED32 + FIXED64
    book = decode("GetPending", raw)
    assert book.height == 5 and len(book.instructions) == BOUND
    for field in unknown:  # each alone after the height, and as the last field
        assert decode("GetPending", b"\x08\x05" + field + ENTRY).height == 5
        assert len(decode("GetPending", b"\x08\x05" + ENTRY + field).instructions) == 1


@pytest.mark.parametrize("fixed", [FIXED32, FIXED64], ids=["fixed32", "fixed64"])
def test_entries_after_a_fixed_width_field_are_counted(fixed: bytes) -> None:
    """A book at its bound, a fixed-width field, then two entries more: protobuf parses
    BOUND + 2 entries, so the walk must count them (refused); a walk skipping the field
    by more than its width would pass them uncounted."""
    raw = b"\x08\x05" + ENTRY * BOUND + fixed + ENTRY * 2
    with pytest.raises(BadResponseError, match=f"more than {BOUND} entries"):
        decode("GetPending", raw)
    at = b"\x08\x05" + ENTRY * (BOUND - 2) + fixed + ENTRY * 2  # control: at the bound
    assert len(decode("GetPending", at).instructions) == BOUND


class _Reads:
    """A server-streaming call answering ``raws`` then EOF."""

    def __init__(self, raws: list[bytes]) -> None:
        self._raws = [*raws, EOF]

    async def read(self) -> Any:
        return self._raws.pop(0)


async def test_a_bounded_stream_is_iterated_to_its_end() -> None:
    """``async for`` over a bounded StreamBlocks call: every message, decoded, then the
    end; an oversize message in it is refused as any answer is."""
    blocks = [pb.BlockInfo(height=h).SerializeToString() for h in (3, 4, 5)]
    got = [b.height async for b in _Stream(_Reads(blocks), "StreamBlocks")]
    assert got == [3, 4, 5]
    assert [b async for b in _Stream(_Reads([]), "StreamBlocks")] == []
    over = pb.BlockInfo(events=[pb.TransactionResult()] * 10**5).SerializeToString()
    with pytest.raises(BadResponseError):
        [b async for b in _Stream(_Reads([blocks[0], over]), "StreamBlocks")]


def test_a_varint_byte_of_127_ends_the_varint() -> None:
    """A height of 127 and an entry of 127 bytes (one varint byte 0x7f each): read as the
    values they are, the answer accepted."""
    content = _tag(103, 2) + bytes([124]) + b"x" * 124
    assert len(content) == 127
    raw = b"\x08\x7f" + ENTRY + b"\x12\x7f" + content
    book = decode("GetPending", raw)
    assert book.height == 127 and len(book.instructions) == 2


def test_an_answer_in_which_nothing_repeats_is_not_walked() -> None:
    """SubmitResponse holds no repeated field: protobuf keeps the last of any copies of a
    singular field, so nothing amplifies and the walk does not visit it (its cost is
    what an honest answer's is). Copies past the field bound of a walked message are
    parsed, the last one kept."""
    one = pb.SubmitResponse(tx_id=b"\x01" * 32, outcome=1).SerializeToString()
    last = pb.SubmitResponse(tx_id=b"\x02" * 32, outcome=2).SerializeToString()
    answer = decode("Submit", one * 100 + last)
    assert answer.tx_id == b"\x02" * 32 and answer.outcome == 2


def test_a_group_is_refused_so_it_cannot_hide_entries() -> None:
    """A group (wire types 3 and 4, which no answer has) holding one length-delimited
    field: protobuf parses the group to its end tag, then 55 more entries. A walk that
    read the group's start as a length (its first content byte, 114) would skip those
    entries uncounted: the book's bound passed by 55. Refused at the group."""
    group = _tag(100, 3) + _tag(14, 2) + b"\x01x" + _tag(100, 4)
    raw = b"\x08\x05" + group + ENTRY * 55 + ENTRY * BOUND
    assert len(pb.PendingBook.FromString(raw).instructions) == BOUND + 55  # what it parses to
    with pytest.raises(BadResponseError, match="wire type 3"):
        decode("GetPending", raw)
