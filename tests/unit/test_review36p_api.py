"""Review 36p: the client API (node/runtime/_api.py) as a hostile or sloppy client sees
it. Each finding is a test that failed on the code before its fix, beside its control;
the servicer runs in-process (the helpers of test_api_teeth.py and test_block_reads.py),
on a loopback port where what the client receives depends on the wire; no cluster."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from client import EndpointDown
from client._limits import BUSY_RETRIES_MAX
from node.access import Caller
from node.config import (
    BLOCK_PROOF_WAIT_MS,
    REFUSAL_MESSAGE_BYTES_MAX,
    TIMELINE_SPAN_MAX,
    TX_BYTES_MAX,
)
from node.core.types import encode_block
from node.runtime import Metrics
from node.runtime._access import Gate
from node.runtime._api import LedgerService, reference_pb
from node.runtime._handlers import add_service
from node.runtime._pages import token
from node.runtime._server import new_client_server
from node.runtime._timeline import Step, Timeline
from node.settlement import BlockContext, Registry, apply_block
from node.store import MemoryStore
from node.wire import RETRY_AFTER_METADATA
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc
from node.wire.errors import from_trailer
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory, shared_net
from tests.life_helpers import BOND_UNITS, FUND_UNITS, LifeTx, at, life_net, run_at
from tests.patience import HANG_S
from tests.unit.test_api_teeth import OBSERVERS, _one_trade
from tests.unit.test_block_reads import _Clock, _Ctx, _Refused, _service
from tests.unit.test_client_api_hostile import _client, _rpc_error, _Stub

# --- a refusal that echoes what the client sent must still reach it ----------------------


class _As:
    """A stand-in gate: the caller is the participant the call's ``as`` metadata names
    (the identity checks are test_access.py's; here only the answers matter)."""

    enter = staticmethod(Gate.enter)

    def admit(self, path: str, raw: bytes, md: Any) -> Caller:
        who = dict(md or ())["as"]
        return Caller(who, observer=who in OBSERVERS)


@contextlib.asynccontextmanager
async def _port() -> AsyncIterator[pb_grpc.LedgerStub]:
    """A stub on a loopback client port serving a real node whose head holds one trade."""
    node, _ = _one_trade()
    server = new_client_server()
    add_service(server, LedgerService(node, {}), pb.DESCRIPTOR.services_by_name["Ledger"], _As())  # type: ignore[arg-type]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.LedgerStub(channel)
    finally:
        await channel.close()
        await server.stop(None)
        node.close()


async def _refusal(stub: Any, method: str, req: Any, who: str) -> tuple[str, Any, str]:
    """(status code name, details, message) of ``who``'s refused call, as received."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await getattr(stub, method)(req, metadata=(("as", who),), timeout=10)
    e = refused.value
    details = from_trailer(e.code(), e.details() or "", e.trailing_metadata())
    return e.code().name, details, e.details() or ""


LONG = "B" * 6_000  # what a sloppy client passes for an id: a file's contents, say


@pytest.mark.parametrize(
    ("method", "req", "who", "code"),
    [
        ("GetInstrument", pb.InstrumentRequest(instrument=LONG), "BANK01", "NOT_FOUND"),
        ("GetBalances", pb.BalancesRequest(account=LONG), "AUDITOR", "NOT_FOUND"),
        ("GetBalances", pb.BalancesRequest(account=LONG), "BANK01", "PERMISSION_DENIED"),
        ("GetLocks", pb.LocksRequest(party=LONG), "BANK01", "INVALID_ARGUMENT"),
        ("GetAttestations", pb.AttestationsRequest(instrument=LONG), "BANK01", "NOT_FOUND"),
        ("GetPrices", pb.PricesRequest(instrument="é" * 3_000), "BANK01", "NOT_FOUND"),
    ],
)
async def test_a_refusal_echoing_a_long_id_reaches_the_client_as_itself(
    method: str, req: Any, who: str, code: str
) -> None:
    """Scenario: a client sends a 6,000-byte name where an id goes. The node's refusal
    (NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT) echoed it whole in its message and
    its details, three times over in the trailers: past the client's gRPC metadata limit
    (16 KiB hard, 8 KiB soft), so the client got RESOURCE_EXHAUSTED "received metadata
    size exceeds hard limit" with no details, and the SDK retried it as a busy node on
    every node before raising BusyError. Now the echo is cut: the refusal arrives."""
    async with _port() as stub:
        got, details, message = await _refusal(stub, method, req, who)
    assert got == code
    assert details is not None and len(message.encode()) < 2 * REFUSAL_MESSAGE_BYTES_MAX
    assert "more bytes left out" in message


async def test_control_a_short_refusal_is_sent_whole() -> None:
    """A refusal within the bounds goes as it was: the message and the id in details."""
    async with _port() as stub:
        got, details, message = await _refusal(
            stub, "GetInstrument", pb.InstrumentRequest(instrument="NOBOND"), "BANK01"
        )
    assert (got, message) == ("NOT_FOUND", "no instrument 'NOBOND'")
    assert details is not None and details.metadata == {"what": "instrument", "id": "NOBOND"}


# --- GetTimeline is a read like the others: metered ----------------------------------------


def _timeline_service(clock: _Clock) -> LedgerService:
    timeline = Timeline(TIMELINE_SPAN_MAX)
    for h in range(1, TIMELINE_SPAN_MAX + 1):
        for step in Step:
            timeline.mark(h, step, at_us=1_000 * h + int(step))
    node: Any = SimpleNamespace(timeline=timeline, metrics=Metrics(), index=0)
    return _service(node, clock)


async def _timeline(svc: LedgerService, who: str) -> str:
    Gate.enter(Caller(who, observer=False))
    req = pb.TimelineRequest(first_height=1, last_height=TIMELINE_SPAN_MAX)
    try:
        got = await svc.GetTimeline(req, _Ctx())  # type: ignore[arg-type]
    except _Refused as e:
        return e.code.name
    assert len(got.blocks) == TIMELINE_SPAN_MAX
    b = got.blocks[6]  # each step's mark in its own field
    assert [b.proposed_us, b.prepare_qc_us, b.commit_qc_us, b.applied_us] == [
        1_000 * 7 + int(step) for step in Step
    ]
    return "OK"


async def test_a_timeline_read_is_metered_as_the_other_reads() -> None:
    """Scenario: any participant calls GetTimeline over its widest span in a loop. Each
    answer builds 4,096 BlockTimings (5 to 10 ms of the event loop's CPU, 135 KB), as
    GetBalances did at 9 ms when session 28 metered it: unmetered, one caller held the
    loop consensus shares. Now it is charged to the caller's read budget and refused
    over it (40 ms a read on the test's meter: the fourth is refused); another
    participant's budget is its own (the control)."""
    clock = _Clock()
    svc = _timeline_service(clock)
    assert [await _timeline(svc, "BANK05") for _ in range(4)] == ["OK"] * 3 + ["RESOURCE_EXHAUSTED"]
    assert await _timeline(svc, "BANK04") == "OK"
    over = svc._metrics.block_reads_over_budget.labels(call="GetTimeline")
    assert over._value.get() == 1


# --- a block stream on a node that halts or stops ------------------------------------------


def _stream(svc: LedgerService, from_height: int) -> Any:
    Gate.enter(Caller("BANK01", observer=False))
    req = pb.StreamBlocksRequest(from_height=from_height)
    return anext(svc.StreamBlocks(req, _Ctx()))  # type: ignore[arg-type]


async def test_a_block_stream_on_a_halted_node_is_refused_at_once() -> None:
    """Scenario: a node halted (fail-stop) and lingers before it exits; a client opens a
    block stream there. It was taken and parked, holding a stream share, until the
    process exited: the SDK's ``blocks()`` learned nothing before then. Now it is
    refused at once, UNAVAILABLE ``NODE_HALTED``, as a submit stream is, and the SDK asks
    another node. Control: the live node holds the stream open."""
    node, _ = _one_trade()
    svc = LedgerService(node, {})
    parked = asyncio.ensure_future(_stream(svc, 0))
    await asyncio.sleep(0.05)
    assert not parked.done() and svc._streams.total == 1  # the control: held
    parked.cancel()
    node.fatal = "store: StorageError: disk gone"
    with pytest.raises(_Refused) as refused:
        async with asyncio.timeout(HANG_S):
            await _stream(svc, 0)
    assert refused.value.code is grpc.StatusCode.UNAVAILABLE
    assert refused.value.details is not None
    assert refused.value.details.reason == "NODE_HALTED"
    node.close()


async def test_a_parked_block_stream_ends_when_the_node_stops() -> None:
    """Scenario: a client's block stream waits for the next block when the node halts or
    shuts down (``Node.stop``). It waited for a commit that never comes, with no status,
    until the server was torn down (the halt's linger and the servers' grace: 3 s), where
    finality waits and submit streams are answered at once. Now it ends UNAVAILABLE
    ``NODE_STOPPED`` and the SDK asks another node. Control: a stream whose own call is
    cancelled (its client left) stays cancelled."""
    node, _ = _one_trade()
    svc = LedgerService(node, {})
    mine = asyncio.ensure_future(_stream(svc, 0))  # the control
    parked = asyncio.ensure_future(_stream(svc, 0))
    await asyncio.sleep(0.05)
    mine.cancel()
    with pytest.raises(asyncio.CancelledError):
        await mine
    assert not parked.done()
    node.stop()
    with pytest.raises(_Refused) as refused:
        async with asyncio.timeout(HANG_S):
            await parked
    assert refused.value.code is grpc.StatusCode.UNAVAILABLE
    assert refused.value.details is not None
    assert refused.value.details.reason == "NODE_STOPPED"
    with pytest.raises(_Refused):  # and one opened after the stop, at once
        async with asyncio.timeout(HANG_S):
            await _stream(svc, 0)
    node.close()


async def test_a_read_of_the_head_ends_when_the_node_stops() -> None:
    """Scenario: a client reads the head block, whose proof only its successor certifies,
    and the node halts or shuts down. The read waited out BLOCK_PROOF_WAIT_MS (2 s) for a
    block that never comes, then answered without the proof, which the SDK refuses; and
    so did every read of the head after the stop. Now each ends UNAVAILABLE
    ``NODE_STOPPED`` at once. Control: before the stop the read waits."""
    node, _ = _one_trade()
    svc = LedgerService(node, {})

    def read() -> Any:
        Gate.enter(Caller("BANK01", observer=False))
        return svc.GetBlock(pb.BlockRequest(height=1), _Ctx())  # type: ignore[arg-type]

    waiting = asyncio.ensure_future(read())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the control: it waits for the proof
    node.stop()
    for call in (waiting, read()):
        with pytest.raises(_Refused) as refused:
            async with asyncio.timeout(BLOCK_PROOF_WAIT_MS / 1000 * 0.75):
                await call
        assert refused.value.code is grpc.StatusCode.UNAVAILABLE
        assert refused.value.details is not None
        assert refused.value.details.reason == "NODE_STOPPED"
    node.close()


# --- what a refusal tells a non-party ------------------------------------------------------


async def test_a_non_party_is_not_told_which_block_holds_a_trade() -> None:
    """Scenario: BANK03 holds the bytes of BANK01's trade (relayed, intercepted) and asks
    GetTransaction and WaitForFinality for its id. Refused, as it must be; but the refusal
    said "(of block 1)": where and so when the trade settled, which the filtered blocks
    hide from a non-party (the submit stream's refusal never said it). Control: the party
    reads its receipt, height included."""
    node, tid = _one_trade()
    svc = LedgerService(node, {})
    for call, req in (
        (svc.GetTransaction, pb.TransactionRequest(tx_id=tid)),
        (svc.WaitForFinality, pb.WaitRequest(tx_id=tid, timeout_ms=50)),
    ):
        Gate.enter(Caller("BANK03", observer=False))
        with pytest.raises(_Refused) as refused:
            await call(req, _Ctx())  # type: ignore[arg-type]
        assert refused.value.code is grpc.StatusCode.PERMISSION_DENIED
        assert "block" not in refused.value.message, refused.value.message
    Gate.enter(Caller("BANK01", observer=False))
    got = await svc.GetTransaction(pb.TransactionRequest(tx_id=tid), _Ctx())  # type: ignore[arg-type]
    assert got.receipt.height == 1
    node.close()


# --- answers the existing tests did not look at (the runtime.api target's survivors) -------


async def test_a_redeemed_holder_is_listed_with_what_it_was_paid() -> None:
    """GetInstrument after BANK01 redeemed its bills at maturity: BANK01 holds no unit but
    is still a holder, with the units burned and the cash paid (it is in the redeemed
    records, not the holdings); BANK02, not redeemed, shows zeros there. Its issuer and
    paying agent (TREASURY) reads both; BANK01 itself only its own line."""
    lt = LifeTx(life_net())
    store = MemoryStore(lt.net.genesis)
    bill = lt.net.bonds[1]  # no coupon outstanding: a redemption at maturity pays the face
    out = run_at(store, at("2026-03-02"), lt.redeem("BANK01", bill))
    assert [int(r.code) for r in out.results if not r.event] == [80]
    node: Any = SimpleNamespace(
        store=store,
        genesis=lt.net.genesis,
        metrics=Metrics(),
        registry=lambda: Registry.of(store),
        clock_ms=lambda: 0,
    )
    svc = LedgerService(node, {})
    req = pb.InstrumentRequest(instrument=bill)

    async def holders(who: str) -> dict[str, tuple[int, int, bool]]:
        Gate.enter(Caller(who, observer=False))
        got = await svc.GetInstrument(req, _Ctx())  # type: ignore[arg-type]
        return {h.account: (h.units, h.redeemed_units, h.redeemed_paid > 0) for h in got.holders}

    seen = await holders("TREASURY")
    assert seen["BANK01"] == (0, BOND_UNITS, True)
    assert seen["BANK02"] == (BOND_UNITS, 0, False)
    assert await holders("BANK01") == {"BANK01": (0, BOND_UNITS, True)}
    req = pb.InstrumentRequest(instrument=lt.net.fund)  # a fund has holders too
    assert (await holders("TREASURY"))["BANK03"] == (FUND_UNITS["BANK03"], 0, False)


def _busy(hint_ms: int) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata((RETRY_AFTER_METADATA, str(hint_ms)))
    return grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.aio.Metadata(), trailing, "reads budget"
    )


async def test_the_sdks_timelines_wait_out_a_nodes_read_budget() -> None:
    """GetTimeline is metered now, and the CLI's settlement report reads its blocks first
    (on the same budget): a node's RESOURCE_EXHAUSTED with a hint is waited out and the
    span asked again, not taken as the node being down. Controls: a node that always
    says so is down after BUSY_RETRIES_MAX retries; another refusal at once."""
    answers = {"busy once": [_busy(5)], "always busy": [_busy(5)] * 99, "down": []}

    def answer(name: str) -> Callable[[str, Any], Any]:
        def get(method: str, req: Any) -> Any:
            assert method == "GetTimeline"
            if name == "down":
                return _rpc_error(grpc.StatusCode.UNAVAILABLE, "gone")
            if answers[name]:
                return answers[name].pop()
            return pb.Timeline(blocks=[pb.BlockTiming(height=req.first_height, applied_us=7)])

        return get

    stubs = [_Stub(answer(n)) for n in answers]
    c, _ = _client(stubs)
    try:
        got = await c.timelines(3, 3)
    finally:
        await c.aclose()
    assert isinstance(got[0], list) and [t.applied_us for t in got[0]] == [7]
    assert isinstance(got[1], EndpointDown) and len(stubs[1].calls) == BUSY_RETRIES_MAX + 1
    assert isinstance(got[2], EndpointDown) and len(stubs[2].calls) == 1


async def test_a_read_of_a_head_past_256_waits_for_its_proof() -> None:
    """GetBlock compares the height asked with the head's: a value, not an object (the
    ints of a request and of the store are the same object only below 257, as CPython
    keeps them). Block 301, the head, holds a trade no block proves yet: its read waits;
    block 300 below it is answered at once (the control)."""
    chain, txf = Chain(shared_net()), TxFactory(shared_net())
    for _ in range(299):  # empty blocks, their certificates left out: none is read
        block = chain.next_block([])
        ctx = BlockContext(block.height, block.time_ms)
        chain.last = apply_block(chain.store, [], ctx)
        chain.store.commit_block(block.hash, encode_block(block), b"", ctx, chain.last)
    chain.commit([])
    chain.commit([txf.signed(txf.dvp())])
    node = chain.node()
    svc = LedgerService(node, {})
    Gate.enter(Caller("BANK01", observer=False))
    below = await svc.GetBlock(pb.BlockRequest(height=300), _Ctx())  # type: ignore[arg-type]
    assert below.height == 300
    head = asyncio.ensure_future(svc.GetBlock(pb.BlockRequest(height=301), _Ctx()))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert not head.done()
    head.cancel()
    node.close()


async def test_a_page_token_past_the_answer_is_an_invalid_argument() -> None:
    """A page token is the client's input: one of the node's shape and version whose
    offset lies past the answer is INVALID_ARGUMENT naming ``page_token``, not an error
    out of the handler; the control: the first page of the same read is served."""
    node, _ = _one_trade()
    svc = LedgerService(node, {})
    Gate.enter(Caller("BANK01", observer=False))
    first = await svc.GetReference(pb.ReferenceRequest(page_bytes_max=1), _Ctx())  # type: ignore[arg-type]
    assert first.participants
    past = token(node.paged_version, 10**6)
    for call, req in (
        (svc.GetReference, pb.ReferenceRequest(page_bytes_max=1, page_token=past)),
        (svc.GetAttestations, pb.AttestationsRequest(page_bytes_max=1, page_token=past)),
        (svc.GetReference, pb.ReferenceRequest(page_bytes_max=1, page_token=past[:5])),
    ):
        with pytest.raises(_Refused) as refused:
            await call(req, _Ctx())  # type: ignore[operator]
        assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details is not None
        assert refused.value.details.metadata == {"field": "page_token"}
    node.close()


async def test_a_callers_key_and_role_are_read_again_from_the_registry() -> None:
    """What a long call checks at each head (``_now``): the key it was opened with is
    still the participant's (a key lower or higher than the current one alike is
    rotated away; an in-process reader has none), and its observer role is the
    registry's, whichever way it changed."""
    node, _ = _one_trade()
    svc = LedgerService(node, {})
    reg = node.registry()
    key = bytes(bytearray(reg.participant_by_id["BANK01"].public_key))  # equal, not the same
    assert svc._now(Caller("BANK01", False, key)) == Caller("BANK01", False, key)
    assert svc._now(Caller("BANK01", False)) == Caller("BANK01", False)
    for old in (b"\x00" * 32, b"\xff" * 32):
        assert svc._now(Caller("BANK01", False, old)) is None
    assert svc._now(Caller("NOBODY", False)) is None
    auditor = reg.participant_by_id["AUDITOR"].public_key
    assert svc._now(Caller("AUDITOR", False, auditor)) == Caller("AUDITOR", True, auditor)
    assert svc._now(Caller("BANK01", True, key)) == Caller("BANK01", False, key)
    node.close()


async def test_a_stream_sends_every_block_but_the_unproven_head() -> None:
    """Four blocks of one trade each: a stream from block 1 sends blocks 1 to 3 and holds
    the head, 4, until a block proves it (its height less one: not a bit operation)."""
    chain, txf = Chain(shared_net()), TxFactory(shared_net())
    for _ in range(4):
        chain.commit([txf.signed(txf.dvp())])
    node = chain.node()
    svc = LedgerService(node, {})
    Gate.enter(Caller("BANK01", observer=False))
    blocks = svc.StreamBlocks(pb.StreamBlocksRequest(from_height=1), _Ctx())  # type: ignore[arg-type]
    async with asyncio.timeout(HANG_S):
        sent = [(await anext(blocks)).height for _ in range(3)]
    assert sent == [1, 2, 3]
    fourth = asyncio.ensure_future(anext(blocks))
    await asyncio.sleep(0.05)
    assert not fourth.done()
    fourth.cancel()
    node.close()


async def test_the_reference_lists_every_instrument_in_order() -> None:
    node, _ = _one_trade()
    Gate.enter(Caller("BANK01", observer=False))
    ref = reference_pb(node, Caller("BANK01", False))
    reg = node.registry()
    assert [i.id for i in ref.instruments] == list(reg.instrument_by_id)
    assert [p.id for p in ref.participants] == list(reg.participant_ids)
    node.close()


async def test_a_submission_over_the_size_limit_is_refused_before_anything() -> None:
    """Submit's refusal is the call's status (INVALID_ARGUMENT, TRANSACTION_TOO_LARGE),
    raised before the node looks at the bytes."""
    node, _ = _one_trade()
    svc = LedgerService(node, {})
    Gate.enter(Caller("BANK01", observer=False))
    req = pb.SubmitRequest(transaction=b"\x00" * (TX_BYTES_MAX + 1))
    with pytest.raises(_Refused) as refused:
        await svc.Submit(req, _Ctx())  # type: ignore[arg-type]
    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details is not None
    assert refused.value.details.reason == "TRANSACTION_TOO_LARGE"
    node.close()
