"""Answers bounded before protobuf parses them (review 32).

Theory of operation. Protobuf builds an object for every entry of a repeated field, so a
node's answer of a few MiB made of millions of tiny entries parsed to hundreds of MB (and
the SDK's dataclasses built from it to as much again): one lying validator could make a
client's process spike per call, and run it out of memory with a few calls at once. The
SDK therefore never hands a node's bytes to protobuf unchecked. Its stubs
(:class:`BoundedStub`) receive each answer as bytes, and :func:`decode` first walks them
(the wire format's tags and lengths, building nothing): in every message of the answer,
each repeated field may hold at most its ``ANSWER_ENTRIES_MAX`` entries (the node's own
limit for that field) and the message at most its declared fields, those entries and
``ANSWER_UNKNOWN_FIELDS_MAX`` more; a singular sub-message sent several times (protobuf
merges the copies) counts as one. Anything beyond, or bytes that are no protobuf, are the
node's fault: BadResponseError, so the call goes to the next node like any bad answer.
Only sub-messages that hold repeated fields are walked into; the walk costs at most what
an honest node's largest answer costs, and stops at the first entry over a bound.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from client._errors import BadResponseError
from client._limits import ANSWER_ENTRIES_MAX, ANSWER_UNKNOWN_FIELDS_MAX
from client._stream import EOF
from node.wire import ledger_pb2 as pb

__all__ = ["BoundedStub", "decode"]

_SERVICE = pb.DESCRIPTOR.services_by_name["Ledger"]
_LENGTH_DELIMITED = 2
# Repeated fields whose every entry is one field on the wire (packed scalars are not).
_COUNTED = frozenset(
    (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_STRING)
)


@dataclass
class _Plan:
    """What the walk checks in one message type: per field number, its entry bound (0:
    singular) and the plan of its sub-message when that must be walked into."""

    name: str
    fields: dict[int, tuple[int, _Plan | None]] = field(default_factory=dict)
    fields_max: int = 0  # field occurrences one message may carry


def _build(desc: Descriptor, plans: dict[str, _Plan], bounds: Mapping[str, int]) -> _Plan | None:
    """The plan of ``desc``, or None when nothing in it can repeat (protobuf merges
    repeated copies of a singular field: no amplification to walk for)."""
    if desc.full_name in plans:
        return plans[desc.full_name]
    plan = _Plan(desc.name)
    plans[desc.full_name] = plan  # answers hold no recursive types; this ends any cycle
    walked = False
    for f in desc.fields:
        key = f"{desc.name}.{f.name}"
        repeated = f.is_repeated
        sub = None
        if f.message_type is not None:
            sub = _build(f.message_type, plans, bounds)
        if repeated:
            if key not in bounds:
                raise LookupError(f"{key} is repeated and ANSWER_ENTRIES_MAX bounds it not")
            if f.type not in _COUNTED:
                raise LookupError(f"{key}: packed scalars are not counted by the walk")
            walked = True
        plan.fields[f.number] = (bounds[key] if repeated else 0, sub)
        walked = walked or sub is not None
        plan.fields_max += bounds[key] if repeated else 1
    plan.fields_max += ANSWER_UNKNOWN_FIELDS_MAX
    if not walked:
        del plans[desc.full_name]
        return None
    return plan


def _plans(bounds: Mapping[str, int]) -> dict[str, _Plan | None]:
    """Per Ledger method, the plan of its answer."""
    plans: dict[str, _Plan] = {}
    return {m.name: _build(m.output_type, plans, bounds) for m in _SERVICE.methods}


_PLANS = _plans(ANSWER_ENTRIES_MAX)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


@dataclass
class _Seen:
    """What the walk counted in one message (every copy of it: protobuf merges copies of a
    singular sub-message, concatenating their repeated fields, so they count together)."""

    fields: int = 0
    entries: dict[int, int] = field(default_factory=dict)  # per repeated field number
    merged: dict[int, _Seen] = field(default_factory=dict)  # per singular sub-message


def _walk(data: bytes, pos: int, end: int, plan: _Plan, seen: _Seen) -> None:
    """Check the message in ``data[pos:end]`` against ``plan``, adding to ``seen``."""
    while pos < end:
        tag, pos = _varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        seen.fields += 1
        if seen.fields > plan.fields_max:
            raise ValueError(f"a {plan.name} with more than {plan.fields_max} fields")
        if wire_type == 0:
            _, pos = _varint(data, pos)
            continue
        if wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
            continue
        if wire_type != _LENGTH_DELIMITED:
            raise ValueError(f"wire type {wire_type} in a {plan.name}")
        size, pos = _varint(data, pos)
        if pos + size > end:
            raise ValueError(f"a field of a {plan.name} runs past its end")
        bound, sub = plan.fields.get(number, (0, None))
        if bound:
            k = seen.entries[number] = seen.entries.get(number, 0) + 1
            if k > bound:
                raise ValueError(f"a {plan.name} with more than {bound} entries of field {number}")
        if sub is not None:
            inner = _Seen() if bound else seen.merged.setdefault(number, _Seen())
            _walk(data, pos, pos + size, sub, inner)
        pos += size
    if pos != end:
        raise ValueError(f"a {plan.name} runs past its end")


def decode(method: str, raw: bytes) -> Any:
    """Ledger ``method``'s answer ``raw``, parsed once it is within its bounds;
    BadResponseError if it is not, or is no protobuf."""
    desc = _SERVICE.methods_by_name[method].output_type
    plan = _PLANS[method]
    try:
        if plan is not None:
            _walk(raw, 0, len(raw), plan, _Seen())
        msg: Message = getattr(pb, desc.name).FromString(raw)
    except (ValueError, IndexError, DecodeError) as e:
        raise BadResponseError(f"{method}: an answer of {len(raw)} bytes refused: {e}") from e
    return msg


class _Unary:
    """A unary call whose answer is decoded when awaited (``cancel`` as gRPC's)."""

    def __init__(self, call: Any, method: str) -> None:
        self._call, self._method = call, method

    def __await__(self) -> Generator[Any, None, Any]:
        raw = yield from self._call.__await__()
        return decode(self._method, raw)

    def cancel(self) -> bool:
        return bool(self._call.cancel())


class _Stream:
    """A streaming call whose messages are decoded as they are read."""

    def __init__(self, call: Any, method: str) -> None:
        self._call, self._method = call, method

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> Any:
        msg = await self.read()
        if msg is EOF:
            raise StopAsyncIteration
        return msg

    async def read(self) -> Any:
        raw = await self._call.read()
        return raw if raw is EOF else decode(self._method, raw)

    async def write(self, request: Any) -> None:
        await self._call.write(request)

    async def done_writing(self) -> None:
        await self._call.done_writing()

    def cancel(self) -> bool:
        return bool(self._call.cancel())


class BoundedStub:
    """The Ledger stub of ``channel``, its answers checked by :func:`decode` (attributes
    named as the generated ``LedgerStub``'s, called the same way)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        for m in _SERVICE.methods:
            serialize = getattr(pb, m.input_type.name).SerializeToString
            path = f"/{_SERVICE.full_name}/{m.name}"
            setattr(self, m.name, _bind(channel, path, m.name, serialize, m))


def _bind(
    channel: grpc.aio.Channel, path: str, name: str, serialize: Callable[[Any], bytes], m: Any
) -> Callable[..., Any]:
    if m.client_streaming:
        multi: Any = channel.stream_stream(path, serialize, None)
    elif m.server_streaming:
        multi = channel.unary_stream(path, serialize, None)
    else:
        unary = channel.unary_unary(path, serialize, None)
        return lambda *a, **kw: _Unary(unary(*a, **kw), name)
    return lambda *a, **kw: _Stream(multi(*a, **kw), name)
