"""Refusals as structured details: the one mapping both ways (docs/adr/0020).

A node refuses a call with a gRPC status code and a message a person reads; beside them
it sends a ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer (the gRPC
convention that grpcio-status reads and writes) whose details hold an ``ErrorInfo``
(``reason``: a stable UPPER_SNAKE name from :class:`Reason`, ``domain``: :data:`DOMAIN`,
``metadata``: e.g. ``tx_id`` in hex, ``result_code`` by name) and, when the node knows when
a retry may be admitted, a ``RetryInfo``. A ``SubmitStream`` ``error`` event carries the
same fields in its own message. The node builds the trailer with :func:`trailer`; the SDK
reads it back with :func:`from_trailer` (None for an old node, which sends none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import grpc
from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from node.wire import RETRY_AFTER_METADATA

__all__ = [
    "DOMAIN",
    "RETRY_AFTER_METADATA",
    "Details",
    "Reason",
    "from_trailer",
    "trailer",
]

DOMAIN = "ledger.v1"


class Reason(StrEnum):
    """Why a node refused a call or a stream request. Stable: clients branch on these, so
    one is added for a new refusal and none is ever renamed (ADR 0020)."""

    # The call itself
    MALFORMED_REQUEST = "MALFORMED_REQUEST"  # the request message does not parse
    INVALID_ARGUMENT = "INVALID_ARGUMENT"  # a field out of range (metadata: field)
    IDENTITY_REFUSED = "IDENTITY_REFUSED"  # no signed identity, or one that does not verify
    PEER_NOT_PINNED = "PEER_NOT_PINNED"  # a peer stream from no other validator of genesis
    PEER_STREAM_REPLACED = "PEER_STREAM_REPLACED"  # a newer peer stream from that validator
    NODE_HALTED = "NODE_HALTED"  # the node stopped itself (fail-stop): ask another
    NODE_STOPPED = "NODE_STOPPED"  # shutting down or halted while the request waited
    LIMIT_REACHED = "LIMIT_REACHED"  # a call or wait limit (metadata: limit names it)
    INTERNAL_ERROR = "INTERNAL_ERROR"  # a bug in the node (logged there): the request failed
    # A transaction offered
    TRANSACTION_TOO_LARGE = "TRANSACTION_TOO_LARGE"  # over TX_BYTES_MAX (metadata: limit)
    TRANSACTION_REFUSED = "TRANSACTION_REFUSED"  # admission precheck (metadata: result_code)
    MEMPOOL_FULL = "MEMPOOL_FULL"  # the validators are saturated: retry with backoff
    OVERLOADED = "OVERLOADED"  # admission control: retry after RetryInfo's delay
    CORRELATION_IN_FLIGHT = "CORRELATION_IN_FLIGHT"  # a stream request reusing a correlation
    NOT_FINAL = "NOT_FINAL"  # no finality within the wait (metadata: tx_id, timeout_ms)
    # Reads
    NOT_FOUND = "NOT_FOUND"  # metadata: what (transaction, participant, block, ...) and id
    NOT_PERMITTED = "NOT_PERMITTED"  # access rules (metadata: caller, what)
    # A paged answer's page asked for after what the answer shows changed (ABORTED): read
    # again from the first page (metadata: since, the block that changed it)
    PAGE_STALE = "PAGE_STALE"


@dataclass(frozen=True, slots=True)
class Details:
    """A refusal's structured details. ``reason`` is a str, not a :class:`Reason`: a newer
    node may send one this code does not know, and the SDK passes it on as it came."""

    reason: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    retry_after_ms: int = 0  # 0: no hint

    def status(self, code: grpc.StatusCode, message: str) -> status_pb2.Status:
        """The ``google.rpc.Status`` of a call refused with ``code`` and ``message``."""
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=DOMAIN, metadata=dict(self.metadata)
        )
        details = [_packed(info)]
        if self.retry_after_ms > 0:
            retry = error_details_pb2.RetryInfo()
            retry.retry_delay.FromMilliseconds(self.retry_after_ms)
            details.append(_packed(retry))
        return status_pb2.Status(code=code.value[0], message=message, details=details)


def _packed(msg: error_details_pb2.ErrorInfo | error_details_pb2.RetryInfo) -> AnyPb:
    out = AnyPb()
    out.Pack(msg)
    return out


def trailer(
    code: grpc.StatusCode, message: str, details: Details
) -> tuple[tuple[str, str | bytes], ...]:
    """The trailing metadata of a call refused with ``code`` and ``message``: the status
    details, and the pre-ADR 0020 ``retry-after-ms`` when there is a hint."""
    status = rpc_status.to_status(details.status(code, message))
    out: tuple[tuple[str, str | bytes], ...] = tuple(status.trailing_metadata)
    if details.retry_after_ms > 0:
        out += ((RETRY_AFTER_METADATA, str(details.retry_after_ms)),)
    return out


def from_trailer(
    code: grpc.StatusCode, message: str, metadata: Sequence[tuple[str, str | bytes]] | None
) -> Details | None:
    """The details of a refused call, from its code, message and trailing metadata: None
    when it has none (an old node), or details that do not match the status (grpcio-status
    refuses those), or no ErrorInfo of this domain. Never raises on what a node sent."""
    status = _status(code, message, metadata or ())
    if status is None:
        return None
    try:
        return _read(status)
    except DecodeError:  # a detail that does not parse: no details
        return None


def _read(status: status_pb2.Status) -> Details | None:
    reason, meta, retry_ms = None, {}, 0
    for d in status.details:
        info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
        if d.Is(info.DESCRIPTOR) and d.Unpack(info) and info.domain == DOMAIN:
            reason, meta = info.reason, dict(info.metadata)
        elif d.Is(retry.DESCRIPTOR) and d.Unpack(retry):
            retry_ms = max(0, retry.retry_delay.ToMilliseconds())
    return None if reason is None else Details(reason, meta, retry_ms)


class _Call:
    """What grpcio-status's ``from_call`` reads of a call."""

    def __init__(
        self, code: grpc.StatusCode, message: str, md: Sequence[tuple[str, str | bytes]]
    ) -> None:
        self._code, self._message, self._md = code, message, md

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self) -> Sequence[tuple[str, str | bytes]]:
        return self._md


def _status(
    code: grpc.StatusCode, message: str, md: Sequence[tuple[str, str | bytes]]
) -> status_pb2.Status | None:
    try:
        return rpc_status.from_call(_Call(code, message, md))  # type: ignore[arg-type]
    except (ValueError, DecodeError):  # a node's bytes: bad details are no details
        return None
