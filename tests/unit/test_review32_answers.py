"""A lying validator's answer is bounded before protobuf parses it (review 32).

Every answer the SDK receives is walked first (client/_answers.py): a repeated field with
more entries than the node's own limit for it refuses the answer as BadResponseError, and
the call goes to the next node. Before, a 5 MiB GetPending or GetLocks answer of empty
entries cost the client process ~780 MB and 8-13 s of CPU per call. Each bound has a
test that an honest answer at it passes and one entry more is refused; the SDK is also
run against real lying gRPC nodes (tests/liar_server.py)."""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import resource
import time
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from client import BadResponseError, EndpointDown, NodeStatusView, UnavailableError
from client._answers import _plans, _Stream, decode
from client._limits import (
    ANSWER_ENTRIES_MAX,
    ANSWER_UNKNOWN_FIELDS_MAX,
    RECEIVE_MESSAGE_BYTES_MAX,
)
from node.config import ID_BYTES_MAX, PENDING_MAX, U64_MAX, VALIDATORS_MAX
from node.wire import ledger_pb2 as pb
from tests.liar_server import Answer, Liars
from tests.unit.test_client_stream import _Call, _plain_signed, _raw, _stream
from tests.unit.test_client_stream_hostile import NOT_DONE, _outcome_answered_by

__all__ = ["_plain_signed"]  # the fixture: raw bytes stand for signed transactions

_SERVICE = pb.DESCRIPTOR.services_by_name["Ledger"]
MiB = 1024 * 1024
GUARD_S = 3.0  # far below any deadline here: an answer within it came by failover


# --- the bounds cover every repeated field -----------------------------------------------


def _reachable(desc: Descriptor, seen: set[str]) -> Iterator[tuple[Descriptor, FieldDescriptor]]:
    if desc.full_name in seen:
        return
    seen.add(desc.full_name)
    for f in desc.fields:
        yield desc, f
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            yield from _reachable(f.message_type, seen)


def _routes() -> dict[str, tuple[str, list[FieldDescriptor]]]:
    """Per repeated field ``Message.field`` of any answer: a method answering with it and
    the fields leading from that answer to the message holding it."""
    out: dict[str, tuple[str, list[FieldDescriptor]]] = {}

    def walk(method: str, desc: Descriptor, route: list[FieldDescriptor], seen: set[str]) -> None:
        for f in desc.fields:
            if f.is_repeated:
                out.setdefault(f"{desc.name}.{f.name}", (method, route))
            if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.full_name not in seen:
                walk(method, f.message_type, [*route, f], seen | {f.message_type.full_name})

    for m in _SERVICE.methods:
        walk(m.name, m.output_type, [], {m.output_type.full_name})
    return out


def test_every_repeated_field_of_every_answer_has_a_bound() -> None:
    repeated = {
        f"{d.name}.{f.name}"
        for m in _SERVICE.methods
        for d, f in _reachable(m.output_type, set())
        if f.is_repeated
    }
    assert repeated == set(ANSWER_ENTRIES_MAX)  # none unbounded, none stale
    assert set(_routes()) == repeated


def test_an_unbounded_repeated_field_stops_the_sdk_from_loading() -> None:
    """The negative control of the test above: the plans refuse a table with a gap."""
    bounds = dict(ANSWER_ENTRIES_MAX)
    del bounds["PendingBook.instructions"]
    with pytest.raises(LookupError, match=r"PendingBook\.instructions"):
        _plans(bounds)


def test_no_client_request_has_a_field_that_parses_to_more_than_its_bytes() -> None:
    """The node's side (node/runtime/_server.py): a request is at most
    CLIENT_MESSAGE_BYTES_MAX (64 KiB) and, with no repeated or nested field, parses to at
    most its own size (unknown fields are kept as their bytes; 200 requests of 64 KiB of
    them held at once: +12 MB). A request type that gains one needs a bound as above."""
    nested = {
        f"{m.input_type.name}.{f.name}"
        for m in _SERVICE.methods
        for f in m.input_type.fields
        if f.is_repeated or f.message_type is not None
    }
    assert nested == set()


# --- each bound: an honest answer at it passes, one entry more is refused unparsed --------


def _largest(f: FieldDescriptor) -> Any:
    """The largest value an honest node puts in scalar field ``f``."""
    t = f.type
    if t == FieldDescriptor.TYPE_STRING:
        return "x" * ID_BYTES_MAX
    if t == FieldDescriptor.TYPE_BYTES:
        return b"\xff" * 32
    if t == FieldDescriptor.TYPE_BOOL:
        return True
    if t == FieldDescriptor.TYPE_ENUM:
        return max(v.number for v in f.enum_type.values)
    if t == FieldDescriptor.TYPE_UINT32:
        return 2**32 - 1
    assert t == FieldDescriptor.TYPE_UINT64, f.full_name
    return U64_MAX


def _fill(msg: Message, entries: dict[str, int], route: frozenset[str] = frozenset()) -> Message:
    """``msg`` with every field set to its largest: a repeated one ``entries[Name.field]``
    times (the bound, unless told) of full entries, a sub-message full as well; of a
    oneof, the member on ``route`` (fields' full names), else its first."""
    desc = msg.DESCRIPTOR
    for f in desc.fields:
        key = f"{desc.name}.{f.name}"
        if f.containing_oneof is not None:
            members = [m.full_name for m in f.containing_oneof.fields]
            chosen = next((m for m in members if m in route), members[0])
            if f.full_name != chosen:
                continue
        n = entries.get(key, ANSWER_ENTRIES_MAX.get(key, 1))
        field = getattr(msg, f.name)
        if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.GetOptions().map_entry:
            for k in range(n):
                field[f"{k:0{ID_BYTES_MAX}d}"] = "x" * ID_BYTES_MAX
        elif f.type == FieldDescriptor.TYPE_MESSAGE and f.is_repeated:
            entry = _fill(getattr(pb, f.message_type.name)(), entries, route)
            field.extend([entry] * n)
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            field.CopyFrom(_fill(getattr(pb, f.message_type.name)(), entries, route))
        elif f.is_repeated:
            field.extend([_largest(f)] * n)
        else:
            setattr(msg, f.name, _largest(f))
    return msg


def _answer(key: str, n: int) -> tuple[str, Message]:
    """A method and its full answer with field ``key`` holding ``n`` entries."""
    method, route = _routes()[key]
    output = _SERVICE.methods_by_name[method].output_type
    answer = _fill(getattr(pb, output.name)(), {key: n}, frozenset(f.full_name for f in route))
    return method, answer


@pytest.mark.parametrize("key", sorted(ANSWER_ENTRIES_MAX))
def test_an_answer_at_each_bound_passes_and_one_entry_more_is_refused(key: str) -> None:
    bound = ANSWER_ENTRIES_MAX[key]
    method, at = _answer(key, bound)
    assert decode(method, at.SerializeToString()) == at  # parsed whole: every entry kept
    _, over = _answer(key, bound + 1)
    with pytest.raises(BadResponseError, match=f"more than {bound} entries"):
        decode(method, over.SerializeToString())


@pytest.mark.parametrize("method", sorted(m.name for m in _SERVICE.methods))
def test_every_field_of_an_answer_at_its_bound_at_once_passes(method: str) -> None:
    """The largest answer an honest node can send for ``method``, every repeated field at
    its bound in every message (a filtered block's 2,000 receipts, each with full paths)."""
    output = _SERVICE.methods_by_name[method].output_type
    answer = _fill(getattr(pb, output.name)(), {})
    assert decode(method, answer.SerializeToString()) == answer


def test_fields_beyond_a_messages_own_are_refused_before_they_are_walked() -> None:
    """A flood of one singular field (protobuf keeps the last copy: no memory, but the walk
    would visit every one) stops at the message's field bound; up to it is fine, so a
    newer node's few added fields are read (and ignored)."""
    # its height, its entries, and fields a newer node may add
    bound = 1 + ANSWER_ENTRIES_MAX["PendingBook.instructions"] + ANSWER_UNKNOWN_FIELDS_MAX
    height = b"\x08\x05"
    assert decode("GetPending", height * bound).height == 5
    with pytest.raises(BadResponseError, match=f"more than {bound} fields"):
        decode("GetPending", height * (bound + 1))
    unknown = b"\xf8\x07\x01"  # field 127, a varint: none a node of this version sends
    book = pb.PendingBook(height=5).SerializeToString()
    assert decode("GetPending", book + unknown * ANSWER_UNKNOWN_FIELDS_MAX).height == 5
    started = time.process_time()
    with pytest.raises(BadResponseError, match="fields"):
        decode("GetPending", height * (5 * MiB // 2))
    assert time.process_time() - started < 0.5  # the walk stopped at the bound


def test_copies_of_a_singular_message_count_as_one() -> None:
    """Protobuf merges copies of a singular sub-message, concatenating their repeated
    fields: 65 copies of a receipt's result proof, each with a one-hash path, parse to one
    proof with a 65-hash path, one past MERKLE_PATH_LEN_MAX; copies of the receipt around
    it merge the same way."""
    bound = ANSWER_ENTRIES_MAX["ResultProof.path"]
    copy = pb.Receipt(result_proof=pb.ResultProof(path=[b"\x01" * 32])).SerializeToString()
    assert len(decode("WaitForFinality", copy * bound).result_proof.path) == bound
    with pytest.raises(BadResponseError, match=f"more than {bound} entries"):
        decode("WaitForFinality", copy * (bound + 1))
    # ... and so do copies of the receipt holding it: two of them, half the bound each,
    # and one hash more in the second
    half = pb.ResultProof(path=[b"\x01" * 32] * (bound // 2))
    status = pb.TransactionStatus(receipt=pb.Receipt(result_proof=half)).SerializeToString()
    assert len(decode("GetTransaction", status * 2).receipt.result_proof.path) == bound
    more = pb.TransactionStatus(receipt=pb.Receipt(result_proof=pb.ResultProof(path=[b""])))
    with pytest.raises(BadResponseError, match=f"more than {bound} entries"):
        decode("GetTransaction", status * 2 + more.SerializeToString())


@pytest.mark.parametrize(
    "raw", [b"\x12\x05\x0a", b"\x12", b"\x0b", b"\x08" + b"\xff" * 11], ids=repr
)
def test_bytes_that_are_no_protobuf_are_a_bad_response(raw: bytes) -> None:
    """A length past the end, a truncated tag, a group, a varint of 11 bytes."""
    with pytest.raises(BadResponseError, match="GetPending"):
        decode("GetPending", raw)


# --- the SDK against real lying nodes -----------------------------------------------------


def _flood(tag: bytes, size: int = RECEIVE_MESSAGE_BYTES_MAX - 64) -> bytes:
    """A repeated field of empty entries, up to the SDK's receive limit (5 MiB in review
    32; 7 MiB since session 33: the largest flood a lying node can send now)."""
    return tag * (size // len(tag))


def _book(n: int) -> bytes:
    return pb.PendingBook(height=7, instructions=[pb.PendingInstruction()] * n).SerializeToString()


def _always(raw: bytes) -> Answer:
    return lambda request: raw


async def test_an_oversize_pending_book_is_refused_and_the_next_node_answers() -> None:
    """One entry more than PENDING_MAX at the first node: before the fix the SDK took all
    of them (and 2.6 million from a 5 MiB answer); now the second node answers."""
    honest = {"GetPending": _always(_book(PENDING_MAX))}  # the control: at the bound
    async with Liars([{"GetPending": _always(_book(PENDING_MAX + 1))}, honest]) as nodes:
        async with nodes.client() as c:
            height, trades = await c.pending()
        assert (height, len(trades)) == (7, PENDING_MAX)
        assert nodes.asked[0] == {"GetPending": 1} and nodes.asked[1] == {"GetPending": 1}


async def test_a_flooded_status_is_an_endpoint_down_and_the_others_are_read() -> None:
    flood = _flood(b"\x72\x00")  # NodeStatus.peers: 3.7 million empty entries
    ok = pb.NodeStatus(height=9, peers=[pb.PeerStatus()] * VALIDATORS_MAX).SerializeToString()
    nodes = Liars([{"GetStatus": _always(flood)}, {"GetStatus": _always(ok)}])
    async with nodes, nodes.client() as c:
        down, up = await c.status()
    assert isinstance(down, EndpointDown) and f"more than {VALIDATORS_MAX} entries" in down.error
    assert isinstance(up, NodeStatusView) and up.height == 9


def _pending_in_child(port: int, certs: bytes, genesis: Any, name: str, out: Any) -> None:
    from client import AsyncLedgerClient, Endpoint

    async def run() -> None:
        ep = Endpoint(f"127.0.0.1:{port}", name)
        async with AsyncLedgerClient([ep], tls_certs=certs, genesis=genesis) as c:
            await c.status()  # the channel, TLS and imports warmed up before measuring
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            try:
                await c.pending()
                outcome = "answered"
            except UnavailableError as e:
                outcome = str(e)
            grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
            out.put((grown_kib, outcome))

    asyncio.run(run())


@pytest.mark.serial  # a child process: runs alone (tests/isolation.py)
async def test_a_5_mib_flood_costs_the_client_a_few_mb_not_hundreds() -> None:
    """The review's figure, measured in a child process (its peak resident size before
    and after one ``pending()`` against a node that answers 2.6 million empty entries,
    twice): +781 MB and 8.4 s of CPU before the fix, a few MB and milliseconds after.
    Since session 33 the flood fills the 7 MiB cap (3.7 million entries)."""
    answers = {
        "GetPending": _always(_flood(b"\x12\x00")),
        "GetStatus": _always(pb.NodeStatus(height=1).SerializeToString()),
    }
    async with Liars([answers]) as nodes:
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        args = (nodes.ports[0], nodes.certs, nodes.genesis, nodes.names[0], out)
        child = ctx.Process(target=_pending_in_child, args=args)
        child.start()
        read = functools.partial(out.get, timeout=60)
        grown_kib, outcome = await asyncio.get_running_loop().run_in_executor(None, read)
        await asyncio.get_running_loop().run_in_executor(None, child.join, 10)
    assert f"more than {PENDING_MAX} entries" in outcome
    assert grown_kib < 64 * 1024, f"one call grew the client by {grown_kib // 1024} MB"


# --- a submit stream's oversize event ------------------------------------------------------


def _flooded_error(corr: int) -> bytes:
    """An error event whose metadata has one entry more than any refusal's."""
    n = ANSWER_ENTRIES_MAX["SubmitStreamError.metadata"] + 1
    err = pb.SubmitStreamError(status=3, message="no", metadata={str(k): "v" for k in range(n)})
    return pb.SubmitStreamEvent(correlation=corr, error=err).SerializeToString()


async def test_an_oversize_stream_event_fails_over_and_keeps_the_requests() -> None:
    """The stream's reader gets BadResponseError from the bounded stub (a LedgerError):
    it broke the whole stream, failing every request in flight. It is the node's fault:
    the stream leaves it and the requests settle on the next node."""
    raw_first, second = _Call(), _Call()

    async def reopen(failed: str) -> tuple[Any, str]:
        return second, "127.0.0.1:8001"

    s = _stream(_Stream(raw_first, "SubmitStream"), inflight_max=4, reopen=reopen)  # type: ignore[arg-type]
    try:
        fut = await s.submit(_raw(1))
        raw_first.events.put_nowait(_flooded_error(raw_first.sent[0].correlation))
        outcome = await _outcome_answered_by(second, fut)
        assert outcome is not NOT_DONE, "the request waited at the node that sent the flood"
        assert not isinstance(outcome, BaseException), f"failed, not failed over: {outcome!r}"
        assert s.address == "127.0.0.1:8001"
    finally:
        await s.cancel()
