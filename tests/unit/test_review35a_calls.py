"""The SDK's call machinery under lying and failing nodes (review 35a): how a call picks its
node and fails over (``AsyncLedgerClient._call``), the busy and overload retries and the
hint they read (``_retry_after_ms``: a node's hint of hours, or below zero), the finality
wait and its timeout, submit idempotence, and how statuses map to the public exceptions
of client/_errors.py. Each test of a fix failed on the code before it; its control keeps
a nearby rule. The nodes are stand-in stubs (``_Stub``: every call goes through the real
client, only the channel is replaced) and, where the wire matters, real TLS gRPC servers
(tests/liar_server.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest

from client import (
    AsyncLedgerClient,
    BusyError,
    FinalityTimeoutError,
    InvalidFieldError,
    InvalidTransactionError,
    LedgerError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RejectedError,
    UnauthenticatedError,
    UnavailableError,
    _async,
)
from client._limits import (
    BUSY_BACKOFF_BASE_S,
    BUSY_BACKOFF_MAX_S,
    BUSY_RETRIES_MAX,
    FAILOVER_ROUNDS_MAX,
    OVERLOAD_RETRIES_MAX,
    OVERLOAD_WAIT_MAX_S,
)
from node.config import U64_MAX
from node.settlement import ResultCode
from node.wire import RETRY_AFTER_METADATA
from node.wire import ledger_pb2 as pb
from node.wire.errors import Details, Reason, trailer
from tests.liar_server import Answer, Liars
from tests.unit.test_client_api_hostile import _AskedAnotherNode, _client, _honest, _Stub

_Code = grpc.StatusCode


def _error(
    code: _Code,
    message: str = "refused",
    *,
    hint_ms: int | None = None,
    details: Details | None = None,
) -> grpc.aio.AioRpcError:
    """A refused call as the client sees it: ``details`` in the trailer (ADR 0020), or
    only the old ``retry-after-ms`` trailer carrying ``hint_ms`` (a node before it)."""
    trailing = grpc.aio.Metadata()
    if details is not None:
        for key, value in trailer(code, message, details):
            trailing.add(key, value)
    elif hint_ms is not None:
        trailing.add(RETRY_AFTER_METADATA, str(hint_ms))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, message)


def _overloaded(hint_ms: int) -> grpc.aio.AioRpcError:
    return _error(
        _Code.RESOURCE_EXHAUSTED,
        "overloaded",
        details=Details(Reason.OVERLOADED.value, {"tx_id": "00"}, hint_ms),
    )


@pytest.fixture
def hints(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The overload hints the client waited out; waiting takes no time here."""
    seen: list[int] = []

    def wait(hint_ms: int, jitter: Any = None) -> float:
        seen.append(hint_ms)
        return 0.0

    monkeypatch.setattr("client._async.overload_wait_s", wait)
    return seen


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The busy retries' backoff numbers; backing off takes no time here."""
    seen: list[int] = []

    async def backoff(busy: int) -> None:
        seen.append(busy)

    monkeypatch.setattr("client._async._busy_backoff", backoff)
    return seen


def _tid_of(stubs_tid: list[bytes]) -> Any:
    """A node that accepts the one transaction and answers its status probes."""

    def answer(method: str, req: Any) -> Any:
        if method == "Submit":
            return pb.SubmitResponse(tx_id=stubs_tid[0], outcome=pb.ACCEPTED)
        if method == "GetStatus":
            return pb.NodeStatus()
        raise AssertionError(f"unexpected {method}")

    return answer


# --- 1. an overloaded node keeps no call --------------------------------------------------


async def test_a_node_that_always_says_overloaded_is_left_for_another(hints: list[int]) -> None:
    """Scenario: endpoint 0, every client's first, answers every Submit RESOURCE_EXHAUSTED
    with admission control's hint (a lying node; or an honest one in a minority partition,
    which holds a backlog and commits nothing: its estimate never falls, docs/cluster.md
    "Admission control"). The SDK waited the hint and sent the same bytes to the same
    node, 3 times, then raised OverloadedError, and stayed on that node: every later call
    of the client, the resubmit included, met it again. The honest nodes were never asked.
    A busy node without a hint was left for the next already ("one that always says busy
    keeps no call"); an overloaded one is now too: the retry after the hint goes to the
    next node."""
    hostile = _Stub(lambda m, r: _overloaded(400))
    c, stx = _client([hostile, _Stub(_honest)])
    try:
        with pytest.raises(_AskedAnotherNode, match="Submit"):
            await c.submit(stx, wait=False)
        assert hostile.calls == ["Submit"] and hints == [400]
    finally:
        await c.aclose()


class _Refusing(Liars):
    """Real TLS nodes (tests/liar_server.py) where an answer that is an AioRpcError is sent
    as the call's status, with its trailing metadata, as a node's refusal is."""

    def _handler(self, i: int, method: str, answer: Answer) -> grpc.RpcMethodHandler:
        async def unary(request: bytes, context: Any) -> bytes:
            self.asked[i][method] = self.asked[i].get(method, 0) + 1
            out: Any = answer(request)
            if isinstance(out, grpc.aio.AioRpcError):
                context.set_trailing_metadata(tuple(out.trailing_metadata() or ()))
                await context.abort(out.code(), out.details() or "")
            return bytes(out)

        return grpc.unary_unary_rpc_method_handler(unary)


async def test_over_the_wire_an_overloaded_first_node_is_left_for_the_next(
    hints: list[int],
) -> None:
    """The same over real TLS gRPC: the hint travels in the refusal's trailer (RetryInfo
    and the old ``retry-after-ms``), and the submit is taken by node 1."""

    def taken(request: bytes) -> bytes:
        tid = _async.SignedTransaction.ready_to_send(
            pb.SubmitRequest.FromString(request).transaction
        ).tx_id
        return pb.SubmitResponse(tx_id=tid, outcome=pb.ACCEPTED).SerializeToString()

    overloaded: Answer = lambda _: _overloaded(250)  # type: ignore[assignment,return-value]  # noqa: E731
    async with _Refusing([{"Submit": overloaded}, {"Submit": taken}]) as nodes:
        c = nodes.client()
        try:
            other, stx = _client([_Stub(_honest)])  # a signed trade of the same network
            await other.aclose()
            assert await c.submit(stx.raw, wait=False) == stx.tx_id
            assert [a.get("Submit") for a in nodes.asked] == [1, 1] and hints == [250]
        finally:
            await c.aclose()


async def test_an_overloaded_error_leaves_its_node_for_the_next_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With one hint that does not fit in what is left of the deadline the call raises
    OverloadedError at once (control of the deadline rule); the caller's retry after
    ``retry_after_s`` then goes to the next node, not back to the one that refused."""
    hostile = _Stub(lambda m, r: _overloaded(400))
    c, stx = _client([hostile, _Stub(_honest)])
    monkeypatch.setattr("client._async.overload_wait_s", lambda hint_ms: 10.0)  # > timeout
    try:
        with pytest.raises(OverloadedError) as info:
            await c.submit(stx, timeout_s=1)
        assert info.value.retry_after_s == 0.4 and info.value.reason == "OVERLOADED"
        assert hostile.calls == ["Submit"]
        assert c.current_endpoint == c.endpoints[1]
    finally:
        await c.aclose()


async def test_control_every_node_overloaded_raises_after_the_retries_round_the_nodes(
    hints: list[int],
) -> None:
    """Control: when every node says overloaded the retries stay bounded (3 after the
    first refusal), each on the next node, and the error carries the last node's hint."""
    stubs = [_Stub(lambda m, r, h=h: _overloaded(h)) for h in (300, 500, 700)]
    c, stx = _client(stubs)
    try:
        with pytest.raises(OverloadedError) as info:
            await c.submit(stx, wait=False)
        assert [len(s.calls) for s in stubs] == [2, 1, 1]
        assert hints == [300, 500, 700, 300] and info.value.retry_after_s == 0.3
        assert info.value.retry_safe
    finally:
        await c.aclose()


async def test_a_lying_hint_of_hours_is_capped_and_one_below_zero_is_no_hint(
    no_backoff: list[int],
) -> None:
    """A node's hint of ~115 days (RetryInfo) is waited at most ``OVERLOAD_WAIT_MAX_S``
    (stretched by the jitter) and reported capped; with a deadline it cannot fit in, the
    call raises at once instead of parking. A hint below zero (the old trailer) is no hint:
    RESOURCE_EXHAUSTED keeps its busy meaning, retried with backoff on the next node; after
    the last retry the client is on the node after the last busy one (session 35)."""
    days = _overloaded(10**10)
    assert _async._retry_after_ms(days) == 10**10
    loop = asyncio.get_running_loop()
    with pytest.raises(OverloadedError) as info:
        await _async._wait_overload("submit", days, 10**10, 1, loop.time() + 1)
    assert info.value.retry_after_s == OVERLOAD_WAIT_MAX_S
    assert _async.overload_wait_s(10**10, lambda: 1.0) == 1.5 * OVERLOAD_WAIT_MAX_S

    negative = _error(_Code.RESOURCE_EXHAUSTED, "busy", hint_ms=-5_000)
    assert _async._retry_after_ms(negative) == 0
    stubs = [_Stub(lambda m, r: negative) for _ in range(2)]
    c, stx = _client(stubs)
    try:
        with pytest.raises(BusyError) as busy:
            await c.submit(stx, wait=False)
        assert not isinstance(busy.value, OverloadedError)
        assert [len(s.calls) for s in stubs] == [4, 3] and no_backoff == list(range(1, 7))
        # The last answer was endpoint 0's: the caller's retry after BusyError goes to the
        # next node, as after OverloadedError (it stayed on the last busy one before).
        assert c.current_endpoint == c.endpoints[1]
    finally:
        await c.aclose()


# --- 2. a finality wait's refusal is one node's word --------------------------------------


@pytest.mark.parametrize("code", [_Code.NOT_FOUND, _Code.PERMISSION_DENIED, _Code.INVALID_ARGUMENT])
@pytest.mark.parametrize("settled", [False, True])
async def test_one_nodes_refusal_of_a_receipt_wait_is_not_final(code: _Code, settled: bool) -> None:
    """Scenario: the back office, after a FinalityTimeoutError, waits for the trade's
    receipt (``receipt(tx_id)``, or ``wait_settled`` for a pending DvP); endpoint 0 lies
    that the transaction does not exist (NOT_FOUND: an honest node's wait waits for a
    transaction it does not know) or that the caller is no party. The SDK raised
    NotFoundError (or PermissionDeniedError), not retry-safe, on that one node's word: the
    trade, which may well have settled, is written off. The same refusal of ``submit``'s
    wait asks the next node ("One node's word", docs/sdk.md); so does this one now."""
    hostile = _Stub(lambda m, r: _error(code, "no such transaction (a hostile node's word)"))
    c, stx = _client([hostile, _Stub(_honest)])
    try:
        with pytest.raises(_AskedAnotherNode, match="WaitForFinality"):
            if settled:
                await c.wait_settled(stx.tx_id, timeout_s=5)
            else:
                await c.receipt(stx.tx_id, timeout_s=5)
    finally:
        await c.aclose()


@pytest.mark.parametrize(
    ("code", "error"),
    [(_Code.NOT_FOUND, NotFoundError), (_Code.PERMISSION_DENIED, PermissionDeniedError)],
)
async def test_control_two_nodes_refusal_of_a_receipt_wait_is_raised(
    code: _Code, error: type[LedgerError]
) -> None:
    """Control: when the next node refuses too, the refusal is the answer, typed as
    docs/sdk.md promises, and no third node is asked."""
    refuse = lambda m, r: _error(code, "refused")  # noqa: E731
    third = _Stub(_honest)
    c, stx = _client([_Stub(refuse), _Stub(refuse), third])
    try:
        with pytest.raises(error) as caught:
            await c.receipt(stx.tx_id, timeout_s=5)
        assert not caught.value.retry_safe and third.calls == []
    finally:
        await c.aclose()


# --- 3. the rules of the machinery (what the mutation target asks of its tests) ------------


class _Asyncio:
    """``asyncio`` as client/_async.py sees it, with a recorded sleep (no time passes) and,
    when ``now`` is set, a loop clock that stands still at it."""

    def __init__(self, now: float | None = None, *, sleeps_pass: bool = False) -> None:
        self.slept: list[float] = []
        self._now = now
        self._sleeps_pass = sleeps_pass  # a sleep moves the standing clock on

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        if self._sleeps_pass and self._now is not None:
            self._now += s

    def get_running_loop(self) -> Any:
        if self._now is None:
            return asyncio.get_running_loop()
        return type("Loop", (), {"time": lambda _: self._now})()

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Asyncio:
    fake = _Asyncio()
    monkeypatch.setattr(_async, "asyncio", fake)
    return fake


async def test_the_busy_backoff_doubles_from_its_base_to_its_cap(clock: _Asyncio) -> None:
    for busy in range(1, 9):
        await _async._busy_backoff(busy)
    expected = [min(BUSY_BACKOFF_MAX_S, BUSY_BACKOFF_BASE_S * 2**k) for k in range(8)]
    assert clock.slept == pytest.approx(expected) and clock.slept[-1] == BUSY_BACKOFF_MAX_S
    assert clock.slept[0] == BUSY_BACKOFF_BASE_S


async def test_an_overload_wait_that_reaches_the_deadline_or_the_last_retry_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _Asyncio(now=100.0)
    monkeypatch.setattr(_async, "asyncio", fake)
    monkeypatch.setattr("client._async.overload_wait_s", lambda hint_ms: 2.0)
    e = _overloaded(1_500)
    await _async._wait_overload("submit", e, 1_500, OVERLOAD_RETRIES_MAX, None)  # the last
    await _async._wait_overload("submit", e, 1_500, 1, 102.001)  # fits: waits
    assert fake.slept == [2.0, 2.0]
    for tries, deadline in [(OVERLOAD_RETRIES_MAX + 1, None), (1, 102.0), (1, 101.0)]:
        with pytest.raises(OverloadedError) as info:
            await _async._wait_overload("submit x", e, 1_500, tries, deadline)
        assert info.value.retry_after_s == 1.5 and info.value.reason == "OVERLOADED"
        assert str(info.value).startswith("submit x: overloaded")
    assert fake.slept == [2.0, 2.0]


def test_the_hint_is_the_retry_info_else_the_old_trailer_and_only_on_resource_exhausted() -> None:
    assert _async._retry_after_ms(_error(_Code.RESOURCE_EXHAUSTED, hint_ms=250)) == 250
    assert _async._retry_after_ms(_error(_Code.RESOURCE_EXHAUSTED, hint_ms=0)) == 0
    assert _async._retry_after_ms(_error(_Code.UNAVAILABLE, hint_ms=250)) == 0
    assert _async._retry_after_ms(_error(_Code.RESOURCE_EXHAUSTED)) == 0
    assert _async._retry_after_ms(_overloaded(700)) == 700
    for junk in ("soon", "1.5", "", "9" * 5_000):
        trailing = grpc.aio.Metadata((RETRY_AFTER_METADATA, junk))
        e = grpc.aio.AioRpcError(_Code.RESOURCE_EXHAUSTED, grpc.aio.Metadata(), trailing, "x")
        assert _async._retry_after_ms(e) == 0, junk
    fresh_key = "".join(["retry-after", "-ms"])  # as gRPC hands it over: not the constant
    other = grpc.aio.Metadata(("retry-after", "250"), ("zz", "251"), (fresh_key, "90"))
    e = grpc.aio.AioRpcError(_Code.RESOURCE_EXHAUSTED, grpc.aio.Metadata(), other, "x")
    assert _async._retry_after_ms(e) == 90
    # Details without a RetryInfo (a full mempool) have no hint, whatever the old trailer says.
    full = Details(Reason.MEMPOOL_FULL.value, {}, 0)
    e = _error(_Code.RESOURCE_EXHAUSTED, "mempool full", details=full)
    e.trailing_metadata().add(RETRY_AFTER_METADATA, "300")
    assert _async._details(e) == full and _async._retry_after_ms(e) == 0
    assert _async._details(_error(_Code.NOT_FOUND)) is None


def test_heights_and_timeouts_are_checked_at_their_bounds() -> None:
    for ok in (1, U64_MAX):
        _async._check_height("h", ok)
    for bad in (0, -1, U64_MAX + 1):
        with pytest.raises(InvalidFieldError) as info:
            _async._check_height("from_height", bad)
        assert info.value.field == "from_height"
    for ok_s in (0.001, _async.WAIT_TIMEOUT_MAX_S):
        _async._check_timeout(ok_s)
    for bad_s in (0.0, -1.0, _async.WAIT_TIMEOUT_MAX_S + 0.001, float("nan"), float("inf")):
        with pytest.raises(InvalidFieldError):
            _async._check_timeout(bad_s)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (_Code.INVALID_ARGUMENT, InvalidTransactionError),
        (_Code.NOT_FOUND, NotFoundError),
        (_Code.UNAUTHENTICATED, UnauthenticatedError),
        (_Code.PERMISSION_DENIED, PermissionDeniedError),
    ],
)
def test_each_refusal_is_its_public_error_with_its_details(
    code: _Code, error: type[LedgerError]
) -> None:
    """docs/sdk.md's table: each refusal code is one public error, never retry-safe, with
    the node's reason and metadata."""
    details = Details("NOT_PERMITTED", {"what": "transaction"})
    e = _async._mapped(_error(code, "transaction ab is not yours", details=details), "receipt ab")
    assert type(e) is error and not e.retry_safe
    assert e.reason == "NOT_PERMITTED" and e.metadata == {"what": "transaction"}
    assert "transaction ab is not yours" in str(e) and str(e).startswith("receipt ab")


def test_a_refusal_message_names_the_call_once() -> None:
    named = _async._mapped(_error(_Code.NOT_FOUND, "transaction 0a is neither"), "transaction 0a")
    assert str(named) == "transaction 0a is neither"
    other = _async._mapped(_error(_Code.NOT_FOUND, "transaction 0ab is x"), "transaction 0a")
    assert str(other) == "transaction 0a: transaction 0ab is x"
    bad = _async._mapped(_error(_Code.INVALID_ARGUMENT, "BAD_SIGNATURE: no"), "submit 0a")
    assert str(bad) == "submit 0a: refused by the node: BAD_SIGNATURE: no"
    assert bad.result_code is not None and bad.result_code.name == "BAD_SIGNATURE"
    odd = _async._mapped(_error(_Code.ABORTED, "odd"), "balances")
    assert type(odd) is LedgerError and str(odd) == "balances: ABORTED: odd"


def test_a_block_streams_failure_is_a_line_a_refusal_or_busy_past_the_retries() -> None:
    ep = _async.Endpoint("127.0.0.1:9", "node-00")
    down = _error(_Code.UNAVAILABLE, "gone")
    assert _async._block_stream_failed(ep, down, BUSY_RETRIES_MAX, 7) == (
        "127.0.0.1:9: UNAVAILABLE gone"
    )
    full = _error(_Code.RESOURCE_EXHAUSTED, "too many streams")
    assert "RESOURCE_EXHAUSTED" in _async._block_stream_failed(ep, full, BUSY_RETRIES_MAX, 7)
    with pytest.raises(BusyError) as busy:
        _async._block_stream_failed(ep, full, BUSY_RETRIES_MAX + 1, 7)
    assert str(busy.value) == "block stream at height 7: the nodes stay saturated: too many streams"
    with pytest.raises(PermissionDeniedError):
        _async._block_stream_failed(ep, _error(_Code.PERMISSION_DENIED, "no"), 0, 7)


async def test_every_node_down_is_unavailable_after_two_rounds_with_a_pause_between(
    clock: _Asyncio,
) -> None:
    stubs = [_Stub(lambda m, r, i=i: _error(_Code.UNAVAILABLE, f"down {i}")) for i in range(3)]
    c, stx = _client(stubs)
    try:
        with pytest.raises(UnavailableError) as info:
            await c.submit(stx, wait=False)
        assert [len(s.calls) for s in stubs] == [FAILOVER_ROUNDS_MAX] * 3
        assert clock.slept == [_async.FAILOVER_ROUND_BACKOFF_S] * FAILOVER_ROUNDS_MAX
        lines = info.value.errors
        assert lines[:2] == [
            f"{c.endpoints[0].address}: UNAVAILABLE down 0",
            f"{c.endpoints[1].address}: UNAVAILABLE down 1",
        ]
        assert len(lines) == 3 * FAILOVER_ROUNDS_MAX and info.value.retry_safe
    finally:
        await c.aclose()


async def test_a_node_answering_is_kept_and_another_tasks_move_is_not_undone() -> None:
    c, _ = _client([_Stub(_honest), _Stub(_honest), _Stub(_honest)])
    try:
        c._current = 2
        c._advance(0)  # a task that failed at 0 after another moved on: stays at 2
        assert c._current == 2
        c._current = 0
        c._advance(1)  # and one that failed at 1 after another moved on to 0
        assert c._current == 0
        c._current = 2
        c._advance(2)
        assert c._current == 0
        loop = asyncio.get_running_loop()
        before = loop.time()
        assert await c._call("x", lambda i: asyncio.sleep(0, result=i)) == 0
        assert c._current == 0 and c._answered[0] >= before
    finally:
        await c.aclose()


async def test_one_node_refusing_twice_is_still_one_nodes_word(clock: _Asyncio) -> None:
    """Node 0 refuses, node 1 is down, node 0 refuses again: no second node refused, so the
    submit ends UnavailableError (retry-safe), not the refusal. With one endpoint only
    there is no second node to ask: its refusal is raised at once (control)."""
    refuse = _Stub(lambda m, r: _error(_Code.INVALID_ARGUMENT, "BAD_SIGNATURE: lie"))
    down = _Stub(lambda m, r: _error(_Code.UNAVAILABLE, "down"))
    c, stx = _client([refuse, down])
    try:
        with pytest.raises(UnavailableError):
            await c.submit(stx, wait=False)
        assert len(refuse.calls) == FAILOVER_ROUNDS_MAX
    finally:
        await c.aclose()
    alone = _Stub(lambda m, r: _error(_Code.INVALID_ARGUMENT, "BAD_SIGNATURE: no"))
    c, stx = _client([alone])
    try:
        with pytest.raises(InvalidTransactionError):
            await c.submit(stx, wait=False)
        assert alone.calls == ["Submit"]
    finally:
        await c.aclose()


async def test_closing_before_the_first_attempt_sent_nothing_and_after_one_may_have(
    clock: _Asyncio,
) -> None:
    closed = _async.ClosedError("submit", "this client is closed", sent=False)
    c, stx = _client([_Stub(lambda m, r: closed), _Stub(_honest)])
    try:
        with pytest.raises(_async.ClosedError) as first:
            await c.submit(stx, wait=False)
        assert first.value is closed
    finally:
        await c.aclose()
    down = _Stub(lambda m, r: _error(_Code.UNAVAILABLE, "down"))
    c, stx = _client([down, _Stub(lambda m, r: closed)])
    try:
        with pytest.raises(_async.ClosedError) as later:
            await c.submit(stx, wait=False)
        assert later.value is not closed and "closed during the call" in str(later.value)
        assert later.value.__cause__ is closed
    finally:
        await c.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        pb.SubmitResponse(tx_id=b"\x00" * 32, outcome=pb.ACCEPTED),  # another id, below
        pb.SubmitResponse(tx_id=b"\xff" * 32, outcome=pb.ACCEPTED),  # and above
        "no outcome",
        "unknown outcome",
    ],
)
async def test_a_submit_answer_of_another_id_or_no_outcome_is_a_bad_response(answer: Any) -> None:
    tids: list[bytes] = []

    def lying(method: str, req: Any) -> Any:
        if answer == "no outcome":
            return pb.SubmitResponse(tx_id=tids[0])
        if answer == "unknown outcome":
            return pb.SubmitResponse(tx_id=tids[0], outcome=99)  # type: ignore[arg-type]
        return answer

    c, stx = _client([_Stub(lying), _Stub(_honest)])
    tids.append(stx.tx_id)
    try:
        with pytest.raises(_AskedAnotherNode):
            await c.submit(stx, wait=False)
    finally:
        await c.aclose()


@pytest.mark.parametrize("outcome", [pb.ACCEPTED, pb.ALREADY_PENDING, pb.ALREADY_COMMITTED])
async def test_a_submit_without_wait_is_its_id_and_sends_what_is_left_of_the_timeout(
    outcome: int,
) -> None:
    sent: list[Any] = []
    tids: list[bytes] = []

    def taken(method: str, req: Any) -> Any:
        sent.append(req)
        return pb.SubmitResponse(tx_id=tids[0], outcome=outcome)  # type: ignore[arg-type]

    c, stx = _client([_Stub(taken)])
    tids.append(stx.tx_id)
    try:
        assert await c.submit(stx, wait=False, timeout_s=0.0004) == stx.tx_id
        assert await c.submit(stx, wait=False, timeout_s=12.5) == stx.tx_id
        assert sent[0].timeout_ms == 1 and 12_000 < sent[1].timeout_ms <= 12_500
        assert sent[1].transaction == stx.raw
    finally:
        await c.aclose()


# --- 4. the finality wait ------------------------------------------------------------------


class _Waits:
    """A node's stub for a finality wait: ``WaitForFinality`` ends after ``after_s`` with
    ``error`` (None: never), ``GetStatus`` answers after ``status_s`` or fails."""

    def __init__(
        self, error: BaseException | None, after_s: float = 0.0, status: bool = True
    ) -> None:
        self.error, self.after_s, self.status = error, after_s, status
        self.waits: list[tuple[Any, float]] = []
        self.probes = 0

    def WaitForFinality(self, req: Any, *, timeout: float, metadata: Any) -> Any:
        self.waits.append((req, timeout))

        async def run() -> Any:
            await asyncio.sleep(self.after_s)
            if self.error is None:
                await asyncio.Event().wait()
            raise self.error

        return asyncio.ensure_future(run())

    def GetStatus(self, req: Any, *, timeout: float, metadata: Any) -> Any:
        self.probes += 1

        async def run() -> Any:
            await asyncio.sleep(0.02)
            if not self.status:
                raise _error(_Code.UNAVAILABLE, "down")
            return pb.NodeStatus()

        return asyncio.ensure_future(run())


def _not_final(tid: bytes) -> grpc.aio.AioRpcError:
    details = Details(Reason.NOT_FINAL.value, {"tx_id": tid.hex(), "timeout_ms": "100"})
    return _error(_Code.DEADLINE_EXCEEDED, "not final", details=details)


@pytest.fixture
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_async, "SILENCE_CHECK_S", 0.01)


async def test_a_wait_asks_for_what_is_left_and_its_call_outlives_it_by_the_rpc_timeout() -> None:
    c, stx = _client([_Stub(_honest)])
    node = _Waits(_error(_Code.UNAVAILABLE, "gone"))
    c._stub = lambda i: node  # type: ignore[method-assign,assignment,return-value]
    loop = asyncio.get_running_loop()
    try:
        with pytest.raises(grpc.aio.AioRpcError):  # any other status: _call's to judge
            await c._wait(0, stx.tx_id, loop.time() + 10, 10, False, settled=True)
        ((req, timeout),) = node.waits
        assert 9_900 < req.timeout_ms <= 10_000 and req.tx_id == stx.tx_id
        assert not req.prove_result and req.wait_settled
        assert 11.9 < timeout <= 10 + c._rpc_timeout_s
        with pytest.raises(FinalityTimeoutError):  # nothing left: no call at all
            await c._wait(0, stx.tx_id, loop.time(), 10, True)
        assert len(node.waits) == 1
    finally:
        await c.aclose()


async def test_a_wait_that_ends_with_its_deadline_is_a_finality_timeout_with_details() -> None:
    c, stx = _client([_Stub(_honest)])
    node = _Waits(_not_final(stx.tx_id))
    c._stub = lambda i: node  # type: ignore[method-assign,assignment,return-value]
    loop = asyncio.get_running_loop()
    try:
        with pytest.raises(FinalityTimeoutError) as info:
            await c._wait(0, stx.tx_id, loop.time() + 0.3, 7, True)
        assert info.value.reason == "NOT_FINAL" and info.value.retry_safe
        assert info.value.tx_id == stx.tx_id and "within 7 s" in str(info.value)
        with pytest.raises(_async.BadResponseError, match="timed out with"):
            await c._wait(0, stx.tx_id, loop.time() + 0.9, 7, True)
    finally:
        await c.aclose()


async def test_a_silent_node_is_left_and_one_that_answers_its_probe_is_kept(
    quick_checks: None,
) -> None:
    c, stx = _client([_Stub(_honest)])
    silent = _Waits(None, status=False)
    c._stub = lambda i: silent  # type: ignore[method-assign,assignment,return-value]
    loop = asyncio.get_running_loop()
    try:
        with pytest.raises(_async._SilentNodeError):
            await c._wait(0, stx.tx_id, loop.time() + 5, 5, True)
        assert silent.probes == 1 and 0 not in c._answered
        alive = _Waits(_not_final(stx.tx_id), after_s=0.2)
        c._stub = lambda i: alive  # type: ignore[method-assign,assignment,return-value]
        with pytest.raises(FinalityTimeoutError):
            await c._wait(0, stx.tx_id, loop.time() + 0.25, 5, True)
        # one probe, then its answer is fresh for SILENCE_FRESH_S: no probe per check
        assert 1 <= alive.probes <= 2 and c._answered[0] > 0
    finally:
        await c.aclose()


async def test_waits_parked_at_one_node_share_one_probe() -> None:
    c, _ = _client([_Stub(_honest)])
    node = _Waits(None)
    c._stub = lambda i: node  # type: ignore[method-assign,assignment,return-value]
    try:
        assert await asyncio.gather(*(c._answers(0) for _ in range(5))) == [True] * 5
        assert node.probes == 1 and c._probes == {}
        assert await c._answers(0) and node.probes == 1  # fresh: no probe
        node.status = False
        c._answered.clear()
        assert not await c._answers(0) and node.probes == 2
    finally:
        await c.aclose()


async def test_a_probe_answered_with_a_bad_response_is_no_answer() -> None:
    c, _ = _client([_Stub(lambda m, r: _async.BadResponseError("too big"))])
    try:
        assert not await c._probe(0) and 0 not in c._answered
    finally:
        await c.aclose()


async def test_a_receipt_without_waiting_is_not_found_while_pending_or_unproven(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c, stx = _client([_Stub(_honest)])
    proven = type("R", (), {"result_proof": object(), "height": 5})()
    unproven = type("R", (), {"result_proof": None, "height": 5})()
    statuses = {"pending": None, "unproven": unproven, "proven": proven}

    async def transaction(tid: bytes) -> Any:
        return type("S", (), {"receipt": statuses[which]})()

    monkeypatch.setattr(c, "transaction", transaction)
    try:
        which = "pending"
        with pytest.raises(NotFoundError, match="pending"):
            await c.receipt(stx.tx_id, wait=False)
        which = "unproven"
        with pytest.raises(NotFoundError, match="once block 6 commits"):
            await c.receipt(stx.tx_id, wait=False)
        assert await c.receipt(stx.tx_id, wait=False, prove_result=False) is unproven
        which = "proven"
        assert await c.receipt(stx.tx_id, wait=False) is proven
        with pytest.raises(InvalidFieldError):
            await c.receipt(stx.tx_id, timeout_s=0)
    finally:
        await c.aclose()


async def test_a_paged_read_that_stays_overloaded_leaves_its_node_for_the_next_call(
    hints: list[int],
) -> None:
    """A paged read (``reference()``) waits the hint of each page at the same node (a read
    restarted on every hint would never end), then raises OverloadedError: the caller's
    read again now starts at the next node, not back at one that always says overloaded."""
    hostile = _Stub(lambda m, r: _overloaded(300))
    c, _ = _client([hostile, _Stub(_honest)])
    try:
        with pytest.raises(OverloadedError):
            await c.reference()
        assert len(hostile.calls) == OVERLOAD_RETRIES_MAX + 1
        assert c.current_endpoint == c.endpoints[1]
        with pytest.raises(_AskedAnotherNode, match="GetReference"):
            await c.reference()
    finally:
        await c.aclose()


async def test_a_probe_of_a_closed_client_is_no_answer() -> None:
    c, _ = _client([_Stub(_honest)])
    c._stub = AsyncLedgerClient._stub.__get__(c)  # type: ignore[method-assign]  # the real one
    await c.aclose()
    assert not await c._probe(0) and 0 not in c._answered


class _Verified:
    """Receipts as ``_verified`` would pass them, in order; the requests they answered."""

    def __init__(self, *receipts: Any) -> None:
        self.receipts = list(receipts)
        self.asked: list[bool] = []

    def __call__(self, msg: Any, tid: bytes, prove_result: bool) -> Any:
        self.asked.append(prove_result)
        return self.receipts.pop(0)


def _r(*, ok: bool, proof: bool, waiting: bool = False) -> Any:
    return type(
        "R", (), {"ok": ok, "result_proof": object() if proof else None, "waiting": waiting}
    )()


async def test_an_unproven_refusal_is_waited_for_with_its_proof_and_an_unproven_ok_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/sdk.md: a refusal is reported only with its result proof; a receipt asked
    without proof (``prove_result=False``) that says OK is returned as it is."""
    c, stx = _client([_Stub(lambda m, r: pb.Receipt())])
    loop = asyncio.get_running_loop()
    try:
        refused, proven = _r(ok=False, proof=False), _r(ok=False, proof=True)
        verified = _Verified(refused, proven)
        monkeypatch.setattr(c, "_verified", verified)
        assert await c._wait(0, stx.tx_id, loop.time() + 5, 5, False) is proven
        assert verified.asked == [False, True]
        ok = _r(ok=True, proof=False)
        verified = _Verified(ok)
        monkeypatch.setattr(c, "_verified", verified)
        assert await c._wait(0, stx.tx_id, loop.time() + 5, 5, False) is ok
        assert verified.asked == [False]
    finally:
        await c.aclose()


async def test_a_settlement_wait_answered_before_the_final_event_is_a_bad_response(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c, stx = _client([_Stub(lambda m, r: pb.Receipt())])
    loop = asyncio.get_running_loop()
    try:
        waiting = _r(ok=True, proof=True, waiting=True)
        monkeypatch.setattr(c, "_verified", _Verified(waiting, waiting))
        with pytest.raises(_async.BadResponseError, match="before the final event"):
            await c._wait(0, stx.tx_id, loop.time() + 5, 5, True, settled=True)
        assert await c._wait(0, stx.tx_id, loop.time() + 5, 5, True) is waiting  # control
    finally:
        await c.aclose()


@pytest.mark.parametrize("settled", [False, True])
async def test_a_receipt_wait_asks_each_node_for_what_is_left_of_its_timeout(
    clock: _Asyncio, settled: bool
) -> None:
    c, stx = _client([_Stub(_honest)])
    node = _Waits(_error(_Code.UNAVAILABLE, "gone"))
    c._stub = lambda i: node  # type: ignore[method-assign,assignment,return-value]
    try:
        with pytest.raises(UnavailableError):
            if settled:
                await c.wait_settled(stx.tx_id, timeout_s=3)
            else:
                await c.receipt(stx.tx_id, timeout_s=3, prove_result=False)
        assert len(node.waits) == FAILOVER_ROUNDS_MAX
        for req, _ in node.waits:
            assert 2_900 < req.timeout_ms <= 3_000
            assert req.wait_settled is settled and req.prove_result is settled
    finally:
        await c.aclose()


async def test_submit_waits_for_the_proof_by_default_and_takes_its_options_by_keyword() -> None:
    tids: list[bytes] = []
    waits: list[Any] = []

    def node(method: str, req: Any) -> Any:
        if method == "Submit":
            return pb.SubmitResponse(tx_id=tids[0], outcome=pb.ACCEPTED)
        waits.append(req)
        return _error(_Code.UNAVAILABLE, "gone")

    c, stx = _client([_Stub(node)])
    tids.append(stx.tx_id)
    try:
        with pytest.raises(UnavailableError):
            await c.submit(stx, timeout_s=5)
        assert waits and all(w.prove_result and not w.wait_settled for w in waits)
        with pytest.raises(TypeError):
            await c.submit(stx, False)  # type: ignore[misc]
    finally:
        await c.aclose()


async def test_a_wait_with_under_a_millisecond_left_asks_for_one() -> None:
    c, stx = _client([_Stub(_honest)])
    node = _Waits(_error(_Code.UNAVAILABLE, "gone"))
    c._stub = lambda i: node  # type: ignore[method-assign,assignment,return-value]
    try:
        with pytest.raises(grpc.aio.AioRpcError):
            await c._wait(0, stx.tx_id, asyncio.get_running_loop().time() + 0.0004, 1, True)
        assert node.waits[0][0].timeout_ms == 1
    finally:
        await c.aclose()


async def test_wait_settled_raises_a_refused_outcome_and_returns_a_settled_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c, stx = _client([_Stub(_honest)])
    refused = type(
        "R",
        (),
        {
            "refused": True,
            "outcome": ResultCode.DEADLINE_PASSED,
            "tx_id": stx.tx_id,
            "height": 3,
            "event_proof": None,
        },
    )()
    settled = type("R", (), {"refused": False})()
    answers = [refused, settled]

    async def wait(*args: Any, **kw: Any) -> Any:
        return answers.pop(0)

    monkeypatch.setattr(c, "_wait", wait)
    try:
        with pytest.raises(RejectedError) as info:
            await c.wait_settled(stx.tx_id, timeout_s=5)
        assert info.value.code is ResultCode.DEADLINE_PASSED
        assert await c.wait_settled(stx.tx_id, timeout_s=5) is settled
    finally:
        await c.aclose()


async def test_a_close_after_a_busy_answer_says_the_call_may_have_sent(
    no_backoff: list[int],
) -> None:
    closed = _async.ClosedError("submit", "this client is closed", sent=False)
    busy = _Stub(lambda m, r: _error(_Code.RESOURCE_EXHAUSTED, "mempool full"))
    c, stx = _client([busy, _Stub(lambda m, r: closed)])
    try:
        with pytest.raises(_async.ClosedError, match="closed during the call"):
            await c.submit(stx, wait=False)
        assert no_backoff == [1]
    finally:
        await c.aclose()


async def test_the_time_left_is_the_deadline_less_the_clock_not_a_remainder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the loop clock at 100 s: a 250 s submit asks for 250,000 ms (not what a
    remainder of the clock would give), and a wait with 100.3 s left that its node says
    timed out is a bad response, not a timeout."""
    fake = _Asyncio(now=100.0)
    monkeypatch.setattr(_async, "asyncio", fake)
    sent: list[Any] = []
    tids: list[bytes] = []

    def taken(method: str, req: Any) -> Any:
        sent.append(req)
        return pb.SubmitResponse(tx_id=tids[0], outcome=pb.ACCEPTED)

    c, stx = _client([_Stub(taken)])
    tids.append(stx.tx_id)
    try:
        await c.submit(stx, wait=False, timeout_s=250)
        assert sent[0].timeout_ms == 250_000
        node = _Waits(_not_final(stx.tx_id))
        c._stub = lambda i: node  # type: ignore[method-assign,assignment,return-value]
        with pytest.raises(_async.BadResponseError):
            await c._wait(0, stx.tx_id, 200.3, 250, True)
        assert 100_300 <= node.waits[0][0].timeout_ms <= 100_301
        with pytest.raises(FinalityTimeoutError):  # none left, to the microsecond: no call
            await c._wait(0, stx.tx_id, 100.0, 250, True)
        assert len(node.waits) == 1
    finally:
        await c.aclose()


async def test_a_resend_past_the_deadline_still_asks_for_a_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _Asyncio(now=100.0, sleeps_pass=True)
    monkeypatch.setattr(_async, "asyncio", fake)
    sent: list[Any] = []

    def down(method: str, req: Any) -> Any:
        sent.append(req)
        return _error(_Code.UNAVAILABLE, "down")

    c, stx = _client([_Stub(down)])
    try:
        with pytest.raises(UnavailableError):
            await c.submit(stx, wait=False, timeout_s=0.1)  # the round's pause outlasts it
        assert [r.timeout_ms for r in sent] == [100, 1]
    finally:
        await c.aclose()


@pytest.mark.parametrize(
    ("outcome", "said"),
    [
        (0, "no submit outcome (0)"),
        (99, "unknown submit outcome 99"),
        (-1, "unknown submit outcome -1"),
    ],
)
async def test_a_submit_answer_without_a_known_outcome_says_which(outcome: int, said: str) -> None:
    tids: list[bytes] = []
    c, stx = _client([_Stub(lambda m, r: pb.SubmitResponse(tx_id=tids[0], outcome=outcome))])  # type: ignore[arg-type]
    tids.append(stx.tx_id)
    try:
        with pytest.raises(UnavailableError) as info:
            await c.submit(stx, wait=False)
        assert all(line.endswith(said) for line in info.value.errors)
    finally:
        await c.aclose()


async def test_a_node_never_heard_from_is_probed_whatever_the_loop_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_async, "asyncio", _Asyncio(now=0.2))
    c, _ = _client([_Stub(_honest)])
    node = _Waits(None, status=False)
    c._stub = lambda i: node  # type: ignore[method-assign,assignment,return-value]
    try:
        assert not await c._answers(0) and node.probes == 1
    finally:
        await c.aclose()


async def test_wait_settled_and_receipt_take_their_options_by_keyword() -> None:
    c, stx = _client([_Stub(_honest)])
    try:
        with pytest.raises(TypeError):
            await c.wait_settled(stx.tx_id, 5)  # type: ignore[misc]
        with pytest.raises(TypeError):
            await c.receipt(stx.tx_id, True)  # type: ignore[misc]
    finally:
        await c.aclose()
