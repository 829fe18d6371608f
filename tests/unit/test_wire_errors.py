"""Refusals with structured details (docs/adr/0020-wire-conventions.md): a node's status
carries a google.rpc.Status (ErrorInfo, RetryInfo) that reads back both ways; the SDK
exposes it as error fields, takes its retry-after first, and still maps an old node's
refusal without details (reason None, no crash)."""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from client import (
    AsyncLedgerClient,
    InvalidTransactionError,
    LedgerError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ResultCode,
)
from client._async import _mapped, _retry_after_ms
from client._limits import OVERLOAD_WAIT_MAX_S
from client._stream import stream_error
from node.wire import RETRY_AFTER_METADATA
from node.wire import ledger_pb2 as pb
from node.wire.errors import DOMAIN, Details, Reason, from_trailer, trailer
from tests.unit.test_result_codes import fake_client

_TID = bytes(range(32))
_INVALID = grpc.StatusCode.INVALID_ARGUMENT
_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


# --- structured refusals ----------------------------------------------------------------


def _error(code: grpc.StatusCode, message: str, md: Any = ()) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata(*md)
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, message)


def test_the_trailer_is_a_google_rpc_status_and_reads_back() -> None:
    sent = Details(Reason.OVERLOADED, {"tx_id": _TID.hex()}, retry_after_ms=350)
    md = trailer(_EXHAUSTED, "busy", sent)
    status = rpc_status.from_call(_error(_EXHAUSTED, "busy", md))  # what any client reads
    assert status is not None and status.message == "busy" and len(status.details) == 2
    assert (RETRY_AFTER_METADATA, "350") in md  # and the old trailer, for older SDKs
    got = from_trailer(_EXHAUSTED, "busy", md)
    assert got == Details("OVERLOADED", {"tx_id": _TID.hex()}, 350)
    plain = trailer(_INVALID, "no", Details(Reason.MALFORMED_REQUEST))
    assert all(k != RETRY_AFTER_METADATA for k, _ in plain)  # no hint, no retry trailer
    assert from_trailer(_INVALID, "no", plain) == Details("MALFORMED_REQUEST", {}, 0)


def test_details_that_are_absent_or_do_not_match_are_none() -> None:
    md = trailer(_INVALID, "bad", Details(Reason.TRANSACTION_REFUSED))
    assert from_trailer(_INVALID, "bad", md) is not None  # negative control
    assert from_trailer(_INVALID, "bad", None) is None  # an old node: no trailer
    assert from_trailer(_INVALID, "other words", md) is None  # not this status's details
    assert from_trailer(_EXHAUSTED, "bad", md) is None
    garbage = (("grpc-status-details-bin", b"\xff\xff\xff"),)
    assert from_trailer(_INVALID, "bad", garbage) is None
    status = rpc_status.from_call(_error(_INVALID, "bad", md))
    status.details[0].value = b"\xff\xff"  # an ErrorInfo that does not parse
    assert from_trailer(_INVALID, "bad", _bin(status)) is None
    info = error_details_pb2.ErrorInfo(reason="X", domain="other.example")
    status.details[0].Pack(info)  # another domain's reason is not ours to expose
    assert from_trailer(_INVALID, "bad", _bin(status)) is None
    info.domain = DOMAIN
    status.details[0].Pack(info)
    assert from_trailer(_INVALID, "bad", _bin(status)) == Details("X")  # control


def _bin(status: Any) -> tuple[tuple[str, bytes], ...]:
    return (("grpc-status-details-bin", status.SerializeToString()),)


def test_the_sdk_exposes_a_refusal_details_as_fields() -> None:
    meta = {"tx_id": _TID.hex(), "result_code": "BAD_SIGNATURE"}
    msg = "BAD_SIGNATURE: a required signature is missing"
    md = trailer(_INVALID, msg, Details(Reason.TRANSACTION_REFUSED, meta))
    err = _mapped(_error(_INVALID, msg, md), "submit")
    assert isinstance(err, InvalidTransactionError) and msg in str(err)
    assert err.reason == "TRANSACTION_REFUSED" and dict(err.metadata) == meta
    assert err.result_code is ResultCode.BAD_SIGNATURE and err.retry_after_s is None
    denied_md = trailer(
        grpc.StatusCode.PERMISSION_DENIED, "no", Details(Reason.NOT_PERMITTED, {"what": "repos"})
    )
    denied = _mapped(_error(grpc.StatusCode.PERMISSION_DENIED, "no", denied_md), "repos")
    assert isinstance(denied, PermissionDeniedError) and denied.reason == "NOT_PERMITTED"
    assert denied.result_code is None


def test_an_old_node_refusal_without_details_still_maps() -> None:
    """Negative control: no details, no crash; reason None, metadata empty, the result
    code read from the message as such a node wrote it."""
    err = _mapped(_error(_INVALID, "MALFORMED: not a canonical transaction"), "submit")
    assert isinstance(err, InvalidTransactionError)
    assert (err.reason, dict(err.metadata), err.retry_after_s) == (None, {}, None)
    assert err.result_code is ResultCode.MALFORMED
    missing = _mapped(_error(grpc.StatusCode.NOT_FOUND, "no block 9: head is 3"), "block")
    assert isinstance(missing, NotFoundError) and missing.result_code is None
    assert missing.reason is None
    other = _mapped(_error(grpc.StatusCode.INTERNAL, "boom"), "x")
    assert type(other) is LedgerError and other.reason is None


def test_the_retry_after_comes_from_the_details_first_then_the_old_trailer() -> None:
    details = Details(Reason.OVERLOADED, {}, retry_after_ms=300)
    md = (*trailer(_EXHAUSTED, "busy", details)[:1], (RETRY_AFTER_METADATA, "900"))
    assert _retry_after_ms(_error(_EXHAUSTED, "busy", md)) == 300  # structured wins
    assert _retry_after_ms(_error(_EXHAUSTED, "busy", [(RETRY_AFTER_METADATA, "900")])) == 900
    assert _retry_after_ms(_error(_EXHAUSTED, "busy")) == 0


async def test_an_overloaded_error_carries_the_details(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("client._async.overload_wait_s", lambda hint_ms, jitter=None: 0.0)
    md = trailer(_EXHAUSTED, "busy", Details(Reason.OVERLOADED, {"tx_id": "ab"}, 700))

    async def fn(i: int) -> Any:
        raise _error(_EXHAUSTED, "busy", md)

    with pytest.raises(OverloadedError) as info:
        await AsyncLedgerClient._call(fake_client(None), "submit", fn, None)
    assert info.value.retry_after_s == 0.7 and info.value.reason == "OVERLOADED"
    assert info.value.metadata["tx_id"] == "ab"


def test_a_stream_error_event_carries_the_same_fields() -> None:
    event = pb.SubmitStreamError(
        status=_INVALID.value[0],
        message="CORRELATION 7 in flight",
        reason="CORRELATION_IN_FLIGHT",
        metadata={"correlation": "7"},
    )
    err = stream_error(_TID, event, 30.0)
    assert isinstance(err, InvalidTransactionError)
    assert err.reason == "CORRELATION_IN_FLIGHT" and err.metadata == {"correlation": "7"}
    old = stream_error(_TID, pb.SubmitStreamError(status=_INVALID.value[0], message="x"), 30.0)
    assert old.reason is None and not old.metadata  # negative control: an old node


# --- what a hostile node may send ---------------------------------------------------------


async def test_a_hostile_retry_hint_is_clamped_not_passed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node may ask for any delay (RetryInfo's Duration, the stream event's uint32, the
    old trailer); a caller who sleeps ``retry_after_s`` as docs/sdk.md shows must never be
    parked for hours: the SDK caps it at OVERLOAD_WAIT_MAX_S, what it waits itself."""
    monkeypatch.setattr("client._async.overload_wait_s", lambda hint_ms, jitter=None: 0.0)
    day_ms = 86_400_000
    md = trailer(_EXHAUSTED, "busy", Details(Reason.OVERLOADED, {}, 50 * day_ms))

    async def fn(i: int) -> Any:
        raise _error(_EXHAUSTED, "busy", md)

    with pytest.raises(OverloadedError) as info:
        await AsyncLedgerClient._call(fake_client(None), "submit", fn, None)
    assert info.value.retry_after_s == OVERLOAD_WAIT_MAX_S

    old = [(RETRY_AFTER_METADATA, str(50 * day_ms))]

    async def old_fn(i: int) -> Any:
        raise _error(_EXHAUSTED, "busy", old)

    with pytest.raises(OverloadedError) as info:
        await AsyncLedgerClient._call(fake_client(None), "submit", old_fn, None)
    assert info.value.retry_after_s == OVERLOAD_WAIT_MAX_S

    event = pb.SubmitStreamError(
        status=_EXHAUSTED.value[0], message="busy", reason="OVERLOADED", retry_after_ms=2**32 - 1
    )
    assert stream_error(_TID, event, 30.0).retry_after_s == OVERLOAD_WAIT_MAX_S
    event.reason = ""  # an old node: no details, the hint alone
    assert stream_error(_TID, event, 30.0).retry_after_s == OVERLOAD_WAIT_MAX_S
    limit = trailer(_EXHAUSTED, "x", Details(Reason.LIMIT_REACHED, {}, 50 * day_ms))
    assert _mapped(_error(_EXHAUSTED, "x", limit), "x").retry_after_s == OVERLOAD_WAIT_MAX_S
    small = trailer(_EXHAUSTED, "x", Details(Reason.LIMIT_REACHED, {}, 250))
    assert _mapped(_error(_EXHAUSTED, "x", small), "x").retry_after_s == 0.25  # control


def test_a_refusal_never_carries_ok_as_its_result_code() -> None:
    """A refusal whose details (or, from an old node, whose message) name OK is a
    contradiction a hostile node can send: ``result_code`` is None, never OK."""
    md = trailer(_INVALID, "no", Details(Reason.TRANSACTION_REFUSED, {"result_code": "OK"}))
    err = _mapped(_error(_INVALID, "no", md), "submit")
    assert err.reason == "TRANSACTION_REFUSED" and err.result_code is None
    old = _mapped(_error(_INVALID, "OK: applied: every leg moved"), "submit")
    assert old.result_code is None
    event = pb.SubmitStreamError(
        status=_INVALID.value[0], message="no", reason="X", metadata={"result_code": "OK"}
    )
    assert stream_error(_TID, event, 30.0).result_code is None
    control = _mapped(_error(_INVALID, "EXPIRED: the block time is past"), "submit")
    assert control.result_code is ResultCode.EXPIRED


def test_oversized_details_from_a_node_are_no_details() -> None:
    """A stream event's details are bounded only by the message size (megabytes): a node
    may send a reason or metadata no honest refusal has. The SDK exposes none of it (as
    for details that do not parse) and still raises the typed error."""
    flood = {f"k{i}": "v" * 100 for i in range(10_000)}
    event = pb.SubmitStreamError(
        status=_INVALID.value[0], message="no", reason="TRANSACTION_REFUSED", metadata=flood
    )
    err = stream_error(_TID, event, 30.0)
    assert isinstance(err, InvalidTransactionError)
    assert err.reason is None and not err.metadata
    event = pb.SubmitStreamError(status=_INVALID.value[0], message="no", reason="R" * 100_000)
    assert stream_error(_TID, event, 30.0).reason is None
    event.metadata["tx_id"] = "ab" * 40_000
    event.reason = "TRANSACTION_REFUSED"
    assert stream_error(_TID, event, 30.0).reason is None
    meta = {"tx_id": _TID.hex(), "result_code": "BAD_SIGNATURE"}  # control: what a node sends
    event = pb.SubmitStreamError(
        status=_INVALID.value[0], message="no", reason="TRANSACTION_REFUSED", metadata=meta
    )
    ok = stream_error(_TID, event, 30.0)
    assert ok.reason == "TRANSACTION_REFUSED" and dict(ok.metadata) == meta
    md = trailer(_INVALID, "no", Details(Reason.NOT_FOUND, {"id": "x" * 5_000}))
    assert _mapped(_error(_INVALID, "no", md), "x").reason is None  # the unary path too


def test_an_error_names_its_subject_once() -> None:
    """``ledger tx ID`` of an unknown id printed the id twice (``transaction ID: transaction
    ID is neither committed nor pending ...``): a node's text that names the subject already
    is taken as it is; one that does not is prefixed (the control)."""
    tid = "ab" * 32
    said = f"transaction {tid} is neither committed nor pending at this node"
    for code in (
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    ):
        assert str(_mapped(_error(code, said), f"transaction {tid}")) == said
    other = _mapped(_error(grpc.StatusCode.NOT_FOUND, "no block 9: head is 3"), "block 9")
    assert str(other) == "block 9: no block 9: head is 3"
