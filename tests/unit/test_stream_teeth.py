"""Checks of the submit path (node/runtime/_stream.py), the request wrapper
(node/runtime/_handlers.py) and the store's write checks (node/store/_base.py) that no
test guarded (session 23, sweep F). Each test here kills a mutant of
``tests/mutation/known.py`` ("Session 23: sweep F").

The stand-in node of ``test_submit_stream`` submits bytes that do not decode, so admission
control never judged them: here the transactions decode, the node holds a real
``Admission`` estimator, and its mempool a backlog the test sets."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import grpc.aio
import pytest

from node import crypto
from node.access import signed_metadata
from node.config import (
    ADMISSION_QUEUE_MAX_LIMIT_MS,
    TX_BYTES_MAX,
    U64_MAX,
    WAIT_TIMEOUT_DEFAULT_MS,
    WAIT_TIMEOUT_MAX_MS,
)
from node.core.mempool import AddResult
from node.genesis import demo_genesis
from node.invariant import InvariantError
from node.runtime._access import Gate
from node.runtime._admission import Admission
from node.runtime._handlers import _handler, add_service
from node.runtime._node import NodeHaltedError, TooManyWaitersError
from node.runtime._server import new_client_server
from node.runtime._shares import Shares
from node.runtime._stream import Refusal, SubmitSession, offer
from node.settlement import (
    BlockContext,
    BlockOutcome,
    PartyRoot,
    Registry,
    ResultCode,
    SignedTx,
    TxResult,
    apply_block,
)
from node.store import LmdbStore, MemoryStore
from node.wire import ledger_pb2 as pb
from node.wire.errors import Details, Reason, from_trailer
from tests.ledger_helpers import shared_net
from tests.patience import HANG_S
from tests.unit.test_submit_stream import (
    PEER,
    _kinds,
    _Node,
    _Receipt,
    _Requests,
    _session,
    _settle,
    _take,
)

_Code = grpc.StatusCode
FLOOR_TPS = 10  # the estimator's rate before it measured any: 100 ms per held transaction


def _tx(k: int) -> bytes:
    """A transaction that decodes (admission control judges it), unsigned: the stand-in
    precheck passes it."""
    return SignedTx(b"trade %d" % k, ()).encode()


def _tid(raw: bytes) -> bytes:
    return SignedTx.decode(raw).tx_id


class _Mempool:
    def __init__(self) -> None:
        self.backlog = 0
        self.held: set[bytes] = set()

    def __len__(self) -> int:
        return self.backlog

    def contains(self, raw: bytes) -> bool:
        return raw in self.held


class _Record:
    def __init__(self, height: int) -> None:
        self.height = height


class _AdmittingNode(_Node):
    """The stand-in node, with admission control: a real estimator at its floor rate, a
    mempool holding ``backlog`` transactions, a clock that stands still. ``submit`` answers
    ``result`` (or raises ``submit_error``), ``wait_for`` raises ``wait_error`` if set and
    records the timeout it was given."""

    def __init__(self, queue_max_ms: int = ADMISSION_QUEUE_MAX_LIMIT_MS) -> None:
        super().__init__()
        self.replica = self
        self.mempool = _Mempool()
        self.load = Admission(0, rate_floor_tps=FLOOR_TPS, queue_max_ms=queue_max_ms)
        self.committed: dict[bytes, _Record] = {}
        self.prechecked: list[bytes] = []
        self.result = AddResult.ACCEPTED
        self.submit_error: Exception | None = None
        self.wait_error: Exception | None = None
        self.waits: list[tuple[bytes, float, bool]] = []

    def clock_ms(self) -> int:
        return 0

    def tx_record(self, tid: bytes) -> Any:
        return self.committed.get(tid)

    def admission(self, raw: bytes) -> TxResult:
        self.prechecked.append(raw)
        code = ResultCode.BAD_SIGNATURE if raw.startswith(b"bad") else ResultCode.OK
        try:
            tid = _tid(raw)
        except Exception:
            tid = b"\x00" * 32
        return TxResult(tid, code, recorded=False)

    async def submit(self, raw: bytes, tid: bytes) -> AddResult:
        await asyncio.sleep(0)
        if self.submit_error is not None:
            raise self.submit_error
        return self.result

    async def wait_for(self, tid: bytes, timeout_s: float, *, prove_result: bool) -> _Receipt:
        self.waits.append((tid, timeout_s, prove_result))
        if self.wait_error is not None:
            raise self.wait_error
        return await super().wait_for(tid, timeout_s, prove_result=prove_result)

    def final_of(self, raw: bytes, height: int, position: int = 0) -> None:
        tid = _tid(raw)
        fut = self.finals.setdefault(tid, asyncio.get_running_loop().create_future())
        fut.set_result(_Receipt(ResultCode.OK, height, position, raw))


def _refused(node: _AdmittingNode, reason: str) -> float:
    return float(node.metrics.admission_refused.labels(reason=reason)._value.get())


async def _events_of(node: _AdmittingNode, *reqs: pb.SubmitStreamRequest, n: int) -> list[Any]:
    """The first ``n`` events of a stream sent ``reqs``; the session is closed after."""
    session, _ = _session(node, inflight_max=8)
    requests = _Requests()
    reader = asyncio.create_task(session.read(requests.__aiter__()))
    for r in reqs:
        requests.queue.put_nowait(r)
    await _settle()
    try:
        return await _take(session.events(), n)
    finally:
        session.close()
        reader.cancel()


def _req(corr: int, raw: bytes, **kw: Any) -> pb.SubmitStreamRequest:
    return pb.SubmitStreamRequest(correlation=corr, transaction=raw, **kw)


# --- admission control on the submit path ---------------------------------------------------


async def test_an_overloaded_node_refuses_before_the_precheck_with_a_hint_and_says_so() -> None:
    """A backlog of 1,000 at 10 tps settles in 100 s, more than half a 30 s deadline: the
    submission is refused RESOURCE_EXHAUSTED (OVERLOADED) with the estimator's retry hint,
    before the signatures are checked; the refusal is counted and the estimate exported.
    An idle node admits the same bytes."""
    node = _AdmittingNode()
    raw = _tx(1)
    node.mempool.backlog = 1_000
    verdict = node.load.check(1_000, 30_000, 0)
    assert verdict is not None
    got = await offer(node, raw, 30_000)  # type: ignore[arg-type]
    assert isinstance(got, Refusal)
    assert (got.status, got.reason) == (_Code.RESOURCE_EXHAUSTED, Reason.OVERLOADED)
    assert got.tx_id == _tid(raw) and got.retry_after_ms == verdict.retry_after_ms > 0
    assert got.details().retry_after_ms == verdict.retry_after_ms  # the unary call's hint
    assert node.prechecked == []  # shed before the signatures cost anything
    assert _refused(node, "deadline") == 1
    assert node.metrics.admission_settle_ms._value.get() == 100_000
    assert node.metrics.admission_rate._value.get() == FLOOR_TPS
    node.mempool.backlog = 0
    assert await offer(node, raw, 30_000) == (_tid(raw), pb.ACCEPTED)  # type: ignore[arg-type]


async def test_an_overloaded_nodes_stream_error_carries_the_retry_hint() -> None:
    node = _AdmittingNode()
    node.mempool.backlog = 1_000
    (ev,) = await _events_of(node, _req(4, _tx(4)), n=1)
    assert _kinds([ev]) == [(4, "error")]
    assert ev.error.status == _Code.RESOURCE_EXHAUSTED.value[0]
    assert ev.error.reason == Reason.OVERLOADED and ev.tx_id == _tid(_tx(4))
    assert ev.error.retry_after_ms == node.load.check(1_000, 30_000, 0).retry_after_ms > 0  # type: ignore[union-attr]
    assert ev.error.metadata["tx_id"] == _tid(_tx(4)).hex()


async def test_an_overloaded_node_lets_through_what_it_holds_or_committed() -> None:
    """Its answer (ALREADY_PENDING, ALREADY_COMMITTED) costs nothing to give: neither a
    transaction in the mempool nor one committed is refused for the backlog."""
    node = _AdmittingNode()
    node.mempool.backlog = 1_000
    pending, committed, new = _tx(1), _tx(2), _tx(3)
    node.mempool.held.add(pending)
    node.committed[_tid(committed)] = _Record(5)
    node.result = AddResult.DUPLICATE
    assert await offer(node, pending) == (_tid(pending), pb.ALREADY_PENDING)  # type: ignore[arg-type]
    assert await offer(node, committed) == (_tid(committed), pb.ALREADY_COMMITTED)  # type: ignore[arg-type]
    refused = await offer(node, new)  # type: ignore[arg-type]
    assert isinstance(refused, Refusal) and refused.reason == Reason.OVERLOADED


async def test_admission_judges_by_the_requests_deadline_defaulted_and_capped() -> None:
    """A backlog of 100 settles in 10 s: a request with a 10 s deadline (5 s budget) is
    refused, one with none (the 30 s default, 15 s budget) admitted. A backlog of 1,600
    (160 s) is refused even for a deadline of 49 days: it counts as the longest wait,
    300 s (150 s budget), whatever the node's queue bound (here its highest, 300 s)."""
    node = _AdmittingNode(queue_max_ms=ADMISSION_QUEUE_MAX_LIMIT_MS)
    node.mempool.backlog = 100
    short, default = _tx(1), _tx(2)
    got = await _events_of(node, _req(1, short, timeout_ms=10_000), _req(2, default), n=2)
    kinds = dict(_kinds(got))
    assert kinds == {1: "error", 2: "accepted"}
    assert next(e for e in got if e.correlation == 1).error.reason == Reason.OVERLOADED
    node.mempool.backlog = 1_600
    (ev,) = await _events_of(node, _req(3, _tx(3), timeout_ms=2**32 - 1), n=1)
    assert _kinds([ev]) == [(3, "error")] and ev.error.reason == Reason.OVERLOADED


# --- what a submission that is not taken says -------------------------------------------


async def test_a_full_mempool_is_resource_exhausted_and_counted() -> None:
    node = _AdmittingNode()
    node.result = AddResult.FULL
    got = await offer(node, _tx(1))  # type: ignore[arg-type]
    assert isinstance(got, Refusal)
    assert (got.status, got.reason) == (_Code.RESOURCE_EXHAUSTED, Reason.MEMPOOL_FULL)
    assert got.tx_id == _tid(_tx(1)) and _refused(node, "full") == 1


async def test_a_node_that_halts_during_the_submit_says_unavailable_with_the_tx_id() -> None:
    node = _AdmittingNode()
    node.submit_error = NodeHaltedError("node halted: storage: disk full")
    got = await offer(node, _tx(1))  # type: ignore[arg-type]
    assert isinstance(got, Refusal)
    assert (got.status, got.reason) == (_Code.UNAVAILABLE, Reason.NODE_HALTED)
    assert got.tx_id == _tid(_tx(1)) and "disk full" in got.message


async def test_a_transaction_of_exactly_the_size_limit_is_offered_and_one_more_refused() -> None:
    node = _AdmittingNode()
    at_limit = b"x" * TX_BYTES_MAX
    assert await offer(node, at_limit) == (b"\x00" * 32, pb.ACCEPTED)  # type: ignore[arg-type]
    over = await offer(node, at_limit + b"x")  # type: ignore[arg-type]
    assert isinstance(over, Refusal) and over.reason == Reason.TRANSACTION_TOO_LARGE
    assert over.details().metadata == {"limit": str(TX_BYTES_MAX)}  # no tx_id: not hashed


async def test_a_precheck_refusal_names_its_result_code() -> None:
    node = _AdmittingNode()
    got = await offer(node, b"bad signature")  # type: ignore[arg-type]
    assert isinstance(got, Refusal) and got.reason == Reason.TRANSACTION_REFUSED
    assert got.details().metadata == {"result_code": "BAD_SIGNATURE", "tx_id": "00" * 32}


# --- finality waits on the stream -------------------------------------------------------


async def test_a_streams_finality_wait_is_defaulted_and_capped() -> None:
    """A hostile client asks for a wait of 49 days: the node waits at most
    WAIT_TIMEOUT_MAX_MS (the wait holds a node-wide waiter until then); 0 is the default;
    the request's proof wish is passed on."""
    node = _AdmittingNode()
    reqs = [
        _req(1, _tx(1), timeout_ms=2**32 - 1),
        _req(2, _tx(2)),
        _req(3, _tx(3), timeout_ms=5_000, prove_result=True),
    ]
    await _events_of(node, *reqs, n=3)
    waits = {tid: (t, prove) for tid, t, prove in node.waits}
    assert waits == {
        _tid(_tx(1)): (WAIT_TIMEOUT_MAX_MS / 1000, False),
        _tid(_tx(2)): (WAIT_TIMEOUT_DEFAULT_MS / 1000, False),
        _tid(_tx(3)): (5.0, True),
    }


async def test_a_wait_that_ends_first_is_deadline_exceeded_with_its_timeout_and_tx_id() -> None:
    node = _AdmittingNode()
    node.wait_error = TimeoutError()
    got = await _events_of(node, _req(1, _tx(1), timeout_ms=2**32 - 1), n=2)
    assert _kinds(got) == [(1, "accepted"), (1, "error")]
    err = got[1]
    assert err.error.status == _Code.DEADLINE_EXCEEDED.value[0]
    assert err.error.reason == Reason.NOT_FINAL and err.tx_id == _tid(_tx(1))
    assert err.error.metadata["timeout_ms"] == str(WAIT_TIMEOUT_MAX_MS)


async def test_too_many_waiters_is_a_limit_with_its_name_and_tx_id() -> None:
    node = _AdmittingNode()
    node.wait_error = TooManyWaitersError("10000 finality waits are in progress")
    got = await _events_of(node, _req(1, _tx(1)), n=2)
    assert _kinds(got) == [(1, "accepted"), (1, "error")]
    err = got[1]
    assert err.error.status == _Code.RESOURCE_EXHAUSTED.value[0]
    assert err.error.reason == Reason.LIMIT_REACHED and err.tx_id == _tid(_tx(1))
    assert err.error.metadata["limit"] == "finality waits"


async def test_a_final_event_carries_its_position_and_the_receipt_only_when_asked() -> None:
    node = _AdmittingNode()
    session, _ = _session(node, inflight_max=8)
    requests = _Requests()
    reader = asyncio.create_task(session.read(requests.__aiter__()))
    requests.queue.put_nowait(_req(1, _tx(1)))
    requests.queue.put_nowait(_req(2, _tx(2), want_receipt=True))
    await _settle()
    node.final_of(_tx(1), height=9, position=3)
    node.final_of(_tx(2), height=9, position=4)
    await _settle()
    got = await _take(session.events(), 4)
    session.close()
    reader.cancel()
    finals = {e.correlation: e.final for e in got if e.WhichOneof("kind") == "final"}
    assert (finals[1].height, finals[1].position) == (9, 3)
    assert (finals[2].height, finals[2].position) == (9, 4)
    assert not finals[1].HasField("receipt") and finals[2].receipt.height == 9


# --- the stream's own bounds and errors ----------------------------------------------------


async def test_a_connections_finality_wait_share_bounds_every_stream_it_opens() -> None:
    """One connection may hold only its share of the node's finality waits, however many
    streams it opens: past it a request is refused (LIMIT_REACHED naming the limit) and
    the stream goes on; another connection still gets waits."""
    node = _AdmittingNode()
    waits = Shares("finality waits", 10, 2)
    sessions = []
    reqs: list[_Requests] = []
    readers = []
    for connection in (PEER, PEER, "ipv4:127.0.0.1:5001"):
        s = SubmitSession(
            node,  # type: ignore[arg-type]
            waits,
            connection,
            8,
            node.metrics,
            caller="BANK03",
            may_read=lambda raw, height: True,
        )
        sessions.append(s)
        reqs.append(_Requests())
        readers.append(asyncio.create_task(s.read(reqs[-1].__aiter__())))
    try:
        reqs[0].queue.put_nowait(_req(1, _tx(1)))
        reqs[0].queue.put_nowait(_req(2, _tx(2)))
        reqs[1].queue.put_nowait(_req(1, _tx(3)))  # the connection's third wait
        reqs[2].queue.put_nowait(_req(1, _tx(4)))  # another connection's first
        await _settle()
        (refused,) = await _take(sessions[1].events(), 1)
        assert _kinds([refused]) == [(1, "error")]
        assert refused.error.status == _Code.RESOURCE_EXHAUSTED.value[0]
        assert refused.error.reason == Reason.LIMIT_REACHED
        assert refused.error.metadata["limit"] == "finality waits"
        assert _kinds(await _take(sessions[2].events(), 1)) == [(1, "accepted")]
        assert waits.total == 3 and not sessions[1].inflight
    finally:
        for s, r in zip(sessions, readers, strict=True):
            s.close()
            r.cancel()


async def test_a_stream_over_its_in_flight_bound_names_the_limit() -> None:
    node = _AdmittingNode()
    session, _ = _session(node, inflight_max=1)
    requests = _Requests()
    reader = asyncio.create_task(session.read(requests.__aiter__()))
    requests.queue.put_nowait(_req(1, _tx(1)))
    requests.queue.put_nowait(_req(2, _tx(2)))
    await _settle()
    got = await _take(session.events(), 2)
    session.close()
    reader.cancel()
    refused = next(e for e in got if e.correlation == 2)
    assert refused.error.reason == Reason.LIMIT_REACHED
    assert refused.error.metadata == {"limit": "stream in flight"}


async def test_a_non_party_is_refused_with_the_caller_and_what_it_asked() -> None:
    node = _AdmittingNode()
    session, _ = _session(node, inflight_max=2, may_read=lambda raw, height: False)
    requests = _Requests()
    reader = asyncio.create_task(session.read(requests.__aiter__()))
    requests.queue.put_nowait(_req(1, _tx(1)))
    await _settle()
    got = await _take(session.events(), 2)
    session.close()
    reader.cancel()
    assert _kinds(got) == [(1, "accepted"), (1, "error")]
    assert got[1].error.reason == Reason.NOT_PERMITTED
    assert dict(got[1].error.metadata) == {
        "what": "transaction",
        "caller": "BANK03",
        "tx_id": _tid(_tx(1)).hex(),
    }


class _Garbage(Exception):
    """What the request wrapper raises for a request of the stream that does not parse."""


async def test_a_request_that_does_not_parse_ends_the_stream_with_its_error() -> None:
    """The reader meets an error in the request stream (the wrapper's ``_UnparsedError``):
    the events already queued are sent, then the writer raises it, so the call ends with
    INVALID_ARGUMENT, not as if the client had half-closed."""
    node = _AdmittingNode()
    session, _ = _session(node, inflight_max=4)

    async def requests() -> Any:
        yield _req(1, b"bad signature")
        raise _Garbage("garbage")

    reader = asyncio.create_task(session.read(requests()))
    await _settle()
    events = session.events()
    (first,) = await _take(events, 1)
    assert _kinds([first]) == [(1, "error")]
    with pytest.raises(_Garbage):
        async with asyncio.timeout(HANG_S):
            await anext(events)
    await reader


async def test_each_request_has_exactly_one_terminal_event_and_the_stream_then_ends() -> None:
    """Refused by the precheck, refused as a non-party, or final: one terminal event
    each, then the half-closed stream ends (no second event for the same correlation)."""
    node = _AdmittingNode()
    session, waits = _session(node, inflight_max=4, may_read=lambda raw, h: raw != _tx(2))
    requests = _Requests()
    reader = asyncio.create_task(session.read(requests.__aiter__()))
    for r in (_req(1, b"bad signature"), _req(2, _tx(2)), _req(3, _tx(3)), None):
        requests.queue.put_nowait(r)
    await _settle()
    node.final_of(_tx(3), height=2)
    async with asyncio.timeout(HANG_S):
        got = [e async for e in session.events()]
    assert sorted(_kinds(got)) == [
        (1, "error"),
        (2, "accepted"),
        (2, "error"),
        (3, "accepted"),
        (3, "final"),
    ]
    await reader
    assert waits.total == 0 and not session.inflight
    assert [w[0] for w in node.waits] == [_tid(_tx(3))]  # the non-party's held no wait


async def test_a_node_that_stops_names_the_accepted_transaction() -> None:
    """Node.stop cancels the parked waits: the request's error (UNAVAILABLE, NODE_STOPPED)
    carries the id of the transaction the node had accepted."""
    node = _AdmittingNode()
    session, _ = _session(node, inflight_max=2)
    requests = _Requests()
    reader = asyncio.create_task(session.read(requests.__aiter__()))
    requests.queue.put_nowait(_req(1, _tx(1)))
    await _settle()
    node.finals[_tid(_tx(1))].cancel()
    got = await _take(session.events(), 2)
    session.close()
    reader.cancel()
    assert _kinds(got) == [(1, "accepted"), (1, "error")]
    assert got[1].error.reason == Reason.NODE_STOPPED and got[1].tx_id == _tid(_tx(1))


# --- the store's write checks (node/store/_base.py) --------------------------------------


def _outcome(store: MemoryStore, height: int = 1) -> tuple[BlockContext, BlockOutcome]:
    ctx = BlockContext(height, store.genesis.genesis_time_ms + height)
    return ctx, apply_block(store, [], ctx)


class _Parties:
    """A party index whose root is not a hash."""

    top = PartyRoot(0, b"\x00" * 31)


_ACCOUNT, _INSTRUMENT = ("BANK01", "USD")


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("outcome of another height", lambda ctx, out: (ctx, replace(out, height=2))),
        (
            "block two ahead",
            lambda ctx, out: (BlockContext(2, ctx.time_ms), replace(out, height=2)),
        ),
        ("state root of 31 bytes", lambda ctx, out: (ctx, replace(out, state_root=bytes(31)))),
        (
            "balance below 0",
            lambda ctx, out: (ctx, replace(out, balances={(_ACCOUNT, _INSTRUMENT): -1})),
        ),
        (
            "balance over u64",
            lambda ctx, out: (ctx, replace(out, balances={(_ACCOUNT, _INSTRUMENT): U64_MAX + 1})),
        ),
        ("supply below 0", lambda ctx, out: (ctx, replace(out, supplies={_INSTRUMENT: -1}))),
        (
            "supply over u64",
            lambda ctx, out: (ctx, replace(out, supplies={_INSTRUMENT: U64_MAX + 1})),
        ),
        ("party index root of 31 bytes", lambda ctx, out: (ctx, replace(out, parties=_Parties()))),
    ],
)
def test_a_block_the_store_cannot_hold_is_refused_and_nothing_written(
    what: str, change: Any
) -> None:
    """Each check of ``Storage.commit_block``: the write raises InvariantError (the node
    halts) and the store stays at its height, never writing a balance outside u64, a
    block at a gap, or a header's hashes of the wrong size."""
    store = MemoryStore(shared_net().genesis)
    ctx, out = change(*_outcome(store))
    with pytest.raises(InvariantError):
        store.commit_block(crypto.sha256(b"b"), b"", b"", ctx, out)
    assert store.head().height == 0 and store.block(1) is None, what


def test_a_block_hash_of_31_bytes_is_refused() -> None:
    store = MemoryStore(shared_net().genesis)
    ctx, out = _outcome(store)
    with pytest.raises(InvariantError):
        store.commit_block(bytes(31), b"", b"", ctx, out)
    assert store.head().height == 0


def test_balances_and_supplies_of_0_and_u64_max_are_written() -> None:
    """The control of the bounds: both ends of u64 are a balance and a supply."""
    store = MemoryStore(shared_net().genesis)
    ctx, out = _outcome(store)
    balances = {(_ACCOUNT, _INSTRUMENT): U64_MAX, ("BANK02", _INSTRUMENT): 0}
    out = replace(out, balances=balances, supplies={_INSTRUMENT: U64_MAX, "EUR": 0})
    store.commit_block(crypto.sha256(b"b"), b"", b"", ctx, out)
    assert store.head().height == 1
    assert store.balance(_ACCOUNT, _INSTRUMENT) == U64_MAX
    assert store.supply(_INSTRUMENT) == U64_MAX
    block = store.block(1)
    assert block is not None and block.time_ms == ctx.time_ms


# --- the request wrapper (node/runtime/_handlers.py), over a real in-process server --------

T0 = 1_800_000_000_000
_LEDGER = pb.DESCRIPTOR.services_by_name["Ledger"]


class _Servicer:
    """Every Ledger method, counting its calls: ``GetBalances`` answers empty balances,
    ``SubmitStream`` answers each request ``accepted``; the others are never called."""

    def __init__(self) -> None:
        self.called: list[str] = []

    async def GetBalances(self, req: pb.BalancesRequest, context: Any) -> pb.Balances:
        self.called.append(f"GetBalances {req.account}")
        return pb.Balances()

    async def SubmitStream(self, requests: Any, context: Any) -> Any:
        self.called.append("SubmitStream")
        async for r in requests:
            yield pb.SubmitStreamEvent(correlation=r.correlation, accepted=pb.ACCEPTED)

    def __getattr__(self, name: str) -> Any:
        async def unused(*args: Any) -> None:
            raise AssertionError(f"{name} called")

        return unused


class _Served:
    def __init__(self, gate: Gate | None) -> None:
        self.gate, self.servicer = gate, _Servicer()

    async def __aenter__(self) -> _Served:
        self.server = new_client_server()
        add_service(self.server, self.servicer, _LEDGER, self.gate)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()
        await self.server.stop(None)

    async def balances(self, raw: bytes, md: Any = None) -> pb.Balances:
        call = self.channel.unary_unary(
            "/ledger.v1.Ledger/GetBalances", response_deserializer=pb.Balances.FromString
        )
        return await call(raw, metadata=md, timeout=HANG_S)  # type: ignore[no-any-return]

    def stream(self, md: Any = None) -> Any:
        call = self.channel.stream_stream(
            "/ledger.v1.Ledger/SubmitStream",
            response_deserializer=pb.SubmitStreamEvent.FromString,
        )
        return call(metadata=md, timeout=HANG_S)


async def _refusal(call: Any) -> tuple[grpc.StatusCode, Details | None]:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call
    err = e.value
    return err.code(), from_trailer(err.code(), err.details() or "", err.trailing_metadata())


_GARBAGE = b"\x0a\x05ab"  # field 1, 5 bytes long, 2 sent: does not parse


async def test_a_unary_request_that_does_not_parse_is_malformed_naming_method_and_type() -> None:
    async with _Served(None) as s:
        code, details = await _refusal(s.balances(_GARBAGE))
        assert code is _Code.INVALID_ARGUMENT and details is not None
        assert details.reason == Reason.MALFORMED_REQUEST
        assert details.metadata == {
            "method": "ledger.v1.Ledger.GetBalances",
            "message_type": "ledger.v1.BalancesRequest",
        }
        assert s.servicer.called == []
        # the control: a request that parses is served
        await s.balances(pb.BalancesRequest(account="BANK01").SerializeToString())
        assert s.servicer.called == ["GetBalances BANK01"]


async def test_a_stream_request_that_does_not_parse_ends_the_stream_malformed() -> None:
    """A hostile client sends garbage after a good request: it is not skipped (the call
    waiting for more), nor does the call end as if it were done, or UNKNOWN: it ends
    INVALID_ARGUMENT, MALFORMED_REQUEST naming the message type."""
    async with _Served(None) as s:
        call = s.stream()
        await call.write(pb.SubmitStreamRequest(correlation=1).SerializeToString())
        first = await call.read()
        assert first.correlation == 1
        await call.write(_GARBAGE)
        code = await call.code()
        assert code is _Code.INVALID_ARGUMENT, code
        details = from_trailer(code, await call.details(), await call.trailing_metadata())
        assert details is not None and details.reason == Reason.MALFORMED_REQUEST
        assert details.metadata == {
            "method": "ledger.v1.Ledger.SubmitStream",
            "message_type": "ledger.v1.SubmitStreamRequest",
        }


_NODE = "val00"  # the validator (genesis id) the gate here is, and calls are signed for


def _gate(**kw: int) -> Gate:
    return Gate(lambda: Registry.at_genesis(shared_net().genesis), lambda: T0, _NODE, **kw)


def _signed(method: str, request: bytes, nonce: int, pid: str = "BANK01") -> Any:
    net = shared_net()
    n = nonce.to_bytes(16, "big")
    key = net.participant_keys[pid]
    return signed_metadata(
        key, pid, net.genesis.chain_id, method, request, node=_NODE, time_ms=T0, nonce=n
    )


async def test_the_gate_refuses_an_unsigned_stream_before_it_runs() -> None:
    """SubmitStream is signed over the empty request: without an identity the call ends
    UNAUTHENTICATED before the servicer runs; signed, it is served."""
    path = "/ledger.v1.Ledger/SubmitStream"
    async with _Served(_gate()) as s:
        call = s.stream()
        code, details = await _refusal(call.read())
        assert code is _Code.UNAUTHENTICATED and details is not None
        assert details.reason == Reason.IDENTITY_REFUSED
        assert s.servicer.called == []
        call = s.stream(_signed(path, b"", 1))
        await call.write(pb.SubmitStreamRequest(correlation=5).SerializeToString())
        assert (await call.read()).correlation == 5
        assert s.servicer.called == ["SubmitStream"]
        call.cancel()


async def test_a_unary_signature_covers_the_request_bytes() -> None:
    """A signature over other bytes (here: the empty request) does not admit a request:
    the gate checks the request as received."""
    path = "/ledger.v1.Ledger/GetBalances"
    raw = pb.BalancesRequest(account="BANK02").SerializeToString()
    async with _Served(_gate()) as s:
        code, details = await _refusal(s.balances(raw, _signed(path, b"", 1)))
        assert code is _Code.UNAUTHENTICATED and s.servicer.called == []
        assert details is not None and details.reason == Reason.IDENTITY_REFUSED
        await s.balances(raw, _signed(path, raw, 2))  # the control: signed over its bytes
        assert s.servicer.called == ["GetBalances BANK02"]


async def test_a_full_gate_is_resource_exhausted_naming_its_limit() -> None:
    path = "/ledger.v1.Ledger/GetBalances"
    raw = pb.BalancesRequest(account="BANK01").SerializeToString()
    async with _Served(_gate(participant_nonces_max=1)) as s:
        await s.balances(raw, _signed(path, raw, 1))
        code, details = await _refusal(s.balances(raw, _signed(path, raw, 2)))
        assert code is _Code.RESOURCE_EXHAUSTED and details is not None
        assert details.reason == Reason.LIMIT_REACHED
        assert details.metadata == {"limit": "request nonces per participant"}
        assert s.servicer.called == ["GetBalances BANK01"]


async def test_a_stream_half_closed_after_its_last_final_ends() -> None:
    """The writer waits with nothing in flight; the client then half-closes: the reader's
    end wakes the writer and the call ends (it does not hang until the client leaves)."""
    node = _AdmittingNode()
    session, _ = _session(node, inflight_max=2)
    requests = _Requests()
    reader = asyncio.create_task(session.read(requests.__aiter__()))
    requests.queue.put_nowait(_req(1, _tx(1)))
    await _settle()
    node.final_of(_tx(1), height=3)
    events = session.events()
    assert _kinds(await _take(events, 2)) == [(1, "accepted"), (1, "final")]
    waiting = asyncio.create_task(anext(events, None))
    await _settle()  # the writer now waits for an event or the reader's end
    requests.queue.put_nowait(None)
    async with asyncio.timeout(HANG_S):
        assert await waiting is None
        await reader


def test_a_client_streaming_method_is_refused_at_registration() -> None:
    """The wrapper serves unary, server-streaming and bidirectional methods; a
    client-streaming one would be served as bidirectional and break at its first call:
    registering it fails at once instead."""
    md: Any = SimpleNamespace(
        client_streaming=True, server_streaming=False, full_name="ledger.v1.Ledger.Upload"
    )
    with pytest.raises(TypeError, match="client-streaming methods are not served here"):
        _handler(lambda *a: None, md, None)


def test_a_data_directory_of_another_chain_stops_the_validator_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m node run`` on a data directory another chain wrote: "cannot start"
    and exit 2 (node/__main__.py reports every StorageError so), not a traceback."""
    import node.__main__ as cli
    import node.runtime

    LmdbStore(tmp_path, demo_genesis(seed=b"other").genesis).close()

    async def run(cfg: Any) -> int:
        LmdbStore(tmp_path, shared_net().genesis)
        return 0

    monkeypatch.setattr(
        cli, "load_node_config", lambda path: SimpleNamespace(validator=0, log_level="INFO")
    )
    monkeypatch.setattr(node.runtime, "setup_logging", lambda *a: None)
    monkeypatch.setattr(node.runtime, "run", run)
    assert cli._run(SimpleNamespace(config=tmp_path / "node.json")) == 2
    assert "node: cannot start:" in capsys.readouterr().err
