"""Register a servicer so that a request which does not parse gets INVALID_ARGUMENT.

gRPC's generated registration parses each request in the server core with the message's
``FromString``; when that raises, the client sees UNKNOWN or INTERNAL, which tells it
nothing it can act on (and the SDK reads them as "this node is broken, try another").
Here every method takes the raw bytes and this module's one wrapper parses them: garbage
gets INVALID_ARGUMENT naming the method and the message type, and the servicer's method
only ever sees a parsed request.

With a :class:`Gate`, the same wrapper first checks each call's signed identity against
the request's bytes as received (node/access.py): no identity, or one that does not
verify, gets UNAUTHENTICATED before the method runs; the method reads the verified
caller with ``current_caller()``. A bidirectional stream is signed over the empty
request.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from node.access import AccessError
from node.runtime._access import Gate, GateFullError
from node.runtime._grpc import Ctx
from node.runtime._refuse import refuse
from node.wire.errors import Reason

__all__ = ["add_service"]


def add_service(
    server: grpc.aio.Server, servicer: object, service: ServiceDescriptor, gate: Gate | None = None
) -> None:
    """Serve ``service`` from ``servicer``'s methods of the same name, parsing each request
    in one place (unary requests, and the request stream of bidirectional methods), and
    with a ``gate`` admitting only callers with a verified identity."""
    handlers = {m.name: _handler(getattr(servicer, m.name), m, gate) for m in service.methods}
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    # as generated code does (the published stubs predate this method)
    server.add_registered_method_handlers(service.full_name, handlers)  # type: ignore[attr-defined]


class _UnparsedError(Exception):
    """A request of a stream that does not parse (ends the call with INVALID_ARGUMENT)."""


async def _admit(gate: Gate | None, path: str, raw: bytes, context: Ctx) -> None:
    if gate is None:
        return
    try:
        gate.enter(gate.admit(path, raw, context.invocation_metadata()))
    except AccessError as e:
        await refuse(context, grpc.StatusCode.UNAUTHENTICATED, str(e), Reason.IDENTITY_REFUSED)
    except GateFullError as e:
        limit = {"limit": e.limit}
        await refuse(
            context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(e), Reason.LIMIT_REACHED, limit
        )


async def _malformed(context: Ctx, message: str, md: MethodDescriptor) -> NoReturn:
    meta = {"method": md.full_name, "message_type": md.input_type.full_name}
    await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, message, Reason.MALFORMED_REQUEST, meta)


def _handler(
    method: Callable[..., Any], md: MethodDescriptor, gate: Gate | None
) -> grpc.RpcMethodHandler[Any, Any]:
    if md.client_streaming and not md.server_streaming:
        raise TypeError(f"{md.full_name}: client-streaming methods are not served here")
    request_cls: type[Message] = GetMessageClass(md.input_type)
    serialize = GetMessageClass(md.output_type).SerializeToString
    what = f"{md.full_name} expects a {md.input_type.full_name} message"
    path = f"/{md.containing_service.full_name}/{md.name}"

    async def parse(raw: bytes, context: Ctx) -> Message:
        await _admit(gate, path, raw, context)
        try:
            return request_cls.FromString(raw)
        except DecodeError as e:
            await _malformed(context, f"{what}: {e}", md)

    if md.client_streaming:  # bidirectional: each request of the stream is parsed

        async def bidi(requests: AsyncIterator[bytes], context: Ctx) -> AsyncIterator[Message]:
            await _admit(gate, path, b"", context)

            async def parsed() -> AsyncIterator[Message]:
                async for raw in requests:
                    try:
                        yield request_cls.FromString(raw)
                    except DecodeError as e:
                        raise _UnparsedError(f"{what}: {e}") from e

            # The method may read its requests in another task (SubmitStream does): the
            # abort happens here, in the call's own task, where the method hands it back.
            try:
                async for item in method(parsed(), context):
                    yield item
            except _UnparsedError as e:
                await _malformed(context, str(e), md)

        return grpc.stream_stream_rpc_method_handler(bidi, response_serializer=serialize)
    if not md.server_streaming:

        async def unary(raw: bytes, context: Ctx) -> Message:
            return await method(await parse(raw, context), context)  # type: ignore[no-any-return]

        return grpc.unary_unary_rpc_method_handler(unary, response_serializer=serialize)
    if inspect.isasyncgenfunction(method):

        async def stream(raw: bytes, context: Ctx) -> AsyncIterator[Message]:
            async for item in method(await parse(raw, context), context):
                yield item

        return grpc.unary_stream_rpc_method_handler(stream, response_serializer=serialize)

    async def writer(raw: bytes, context: Ctx) -> None:  # streams through context.write
        await method(await parse(raw, context), context)

    return grpc.unary_stream_rpc_method_handler(writer, response_serializer=serialize)
