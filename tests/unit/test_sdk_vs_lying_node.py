"""The SDK against one lying validator (session 29's adversarial review): each test is a
defect the review found, and failed on the code before its fix. The node is faked
in-process, as in test_client_api_hostile.py and test_client_stream_hostile.py."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from client import (
    AsyncLedgerClient,
    Endpoint,
    FinalityTimeoutError,
    LedgerError,
    ParticipantKey,
    Transactions,
    sign,
)
from client._stream import SubmitStream
from node.access import Caller
from node.runtime._api import block_pb, filtered_block_pb
from node.settlement import ResultCode
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory, pinned_tls, shared_net
from tests.unit.test_client_api_hostile import _Stub  # answers coroutines too
from tests.unit.test_client_stream import (
    _Call,
    _error,
    _final,
    _plain_signed,
    _raw,
    _Receipt,
    _stream,
)

__all__ = ["_plain_signed"]  # the fixture: raw bytes stand for signed transactions

NET = shared_net()
GUARD_S = 3.0


class _AskedAnotherNode(Exception):
    """The next (honest) node was asked: the SDK failed over."""


def _honest(method: str, req: Any) -> Any:
    raise _AskedAnotherNode(method)


def _client(stubs: list[_Stub]) -> AsyncLedgerClient:
    net, certs = pinned_tls(NET)
    endpoints = [Endpoint(f"127.0.0.1:{i + 1}", f"node-{i:02d}") for i in range(len(stubs))]
    c = AsyncLedgerClient(endpoints, tls_certs=certs, genesis=net.genesis)
    c._stub = lambda i: stubs[i]  # type: ignore[method-assign]
    return c


# --- 1. a stream's follow-up after the caller's deadline: wrong error class -------------------


async def test_a_streams_unproven_refusal_after_the_deadline_is_a_retry_safe_timeout() -> None:
    """The stream's node answers a request with an unproven refusal (or a receipt that
    fails verification) after the request's deadline but before its timer (deadline + RPC
    timeout). The SDK asks the nodes for the proof with ``AsyncLedgerClient.receipt(
    timeout_s=0)``, which refuses its own argument (InvalidFieldError); the follow-up wraps
    that bug as a bare LedgerError, retry_safe False: the back office is told the trade
    failed for good though it may well settle."""
    c = _client([_Stub(_honest)])
    call = _Call()
    s = SubmitStream(
        call,
        2,
        address="127.0.0.1:1",
        prove_result=False,
        rpc_timeout_s=1.0,
        verify=lambda msg, tid, prove: _Receipt(tid, ResultCode(msg.code)),
        proven=c._proven,  # the real client's proof fetch
    )
    try:
        fut = await s.submit(_raw(1), timeout_s=0.1)
        await asyncio.sleep(0.15)  # past the deadline, before the timer (0.1 + 1.0 s)
        call.events.put_nowait(_final(1, pb.INSUFFICIENT_CASH))  # one node's word
        async with asyncio.timeout(GUARD_S):
            with pytest.raises(LedgerError) as caught:
                await asyncio.shield(fut)
    finally:
        await s.cancel()
        await c.aclose()
    err = caught.value
    assert isinstance(err, FinalityTimeoutError) and err.retry_safe, (
        f"{type(err).__name__} retry_safe={err.retry_safe}: {err}"
    )


# --- 2. a hostile GetReference answer crashes reference() ------------------------------------


def _reference_pb() -> pb.Reference:
    g = pinned_tls(NET)[0].genesis
    m = pb.Reference(height=1, admins=list(g.admins), threshold=g.admin_threshold)
    for p in g.participants:
        m.participants.add(
            id=p.id,
            public_key=p.public_key,
            roles=sorted(r.value for r in p.roles),
            kyc_tier=p.kyc_tier,
        )
    return m


@pytest.mark.parametrize("field", ["participant id", "kyc tier"])
async def test_a_malformed_reference_answer_is_a_bad_response_not_a_crash(field: str) -> None:
    """Endpoint 0 answers GetReference with a participant whose id is not ASCII (or whose
    KYC tier does not fit its u8). ``reference_from_pb`` checks the records inside its
    try, but ``Registry.from_values`` (outside it) encodes them: UnicodeEncodeError /
    EncodeError (ValueErrors, which the SDK documents as *the caller's* input errors)
    escape ``reference()`` and the next node is never asked."""
    answer = _reference_pb()
    if field == "participant id":
        answer.participants[0].id = "B\u00c4NK01"
    else:
        answer.participants[0].kyc_tier = 300
    c = _client([_Stub(lambda m, r: answer), _Stub(_honest)])
    try:
        async with asyncio.timeout(GUARD_S):
            with pytest.raises((_AskedAnotherNode, LedgerError)):
                await c.reference()
    finally:
        await c.aclose()


# --- 3. a node that accepts, answers probes and withholds the receipt keeps the client ------


def _signed() -> Any:
    net = pinned_tls(NET)[0]
    dvp = Transactions(net.genesis).dvp(
        seller="BANK01", buyer="BANK02", bond=net.bonds[0], quantity=100, cash=net.cash, amount=99
    )
    keys = [ParticipantKey(p, net.participant_keys[p]) for p in ("BANK01", "BANK02")]
    return sign(dvp, *keys, genesis=net.genesis)


async def test_a_node_that_withholds_every_receipt_is_left_after_a_finality_timeout() -> None:
    """Endpoint 0 (a censoring validator) answers Submit ACCEPTED, answers every GetStatus
    probe at once, and holds WaitForFinality until its deadline, then DEADLINE_EXCEEDED
    (what an honest node says when the trade is not final). The SDK raises
    FinalityTimeoutError (retry-safe: "resubmit") from ``_wait`` straight through
    ``_call``, which never advances the endpoint: the resubmit docs/sdk.md recommends goes
    to the same node, and so does every later submit of this client: one node censors the
    client for ever, though the next node would settle the trade."""
    stx = _signed()

    async def hold(req: Any) -> Any:
        await asyncio.sleep(max(0.0, req.timeout_ms / 1000 - 0.05))
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), "not final"
        )

    def censor(method: str, req: Any) -> Any:
        if method == "Submit":
            return pb.SubmitResponse(tx_id=stx.tx_id, outcome=pb.ACCEPTED)
        if method == "GetStatus":
            return pb.NodeStatus()
        if method == "WaitForFinality":
            return hold(req)
        raise AssertionError(method)

    c = _client([_Stub(censor), _Stub(_honest)])
    try:
        async with asyncio.timeout(GUARD_S):
            with pytest.raises(FinalityTimeoutError):
                await c.submit(stx, timeout_s=0.4)  # one timeout: fair
            with pytest.raises(_AskedAnotherNode):
                await c.submit(stx, timeout_s=0.4)  # the resubmit: another node
    finally:
        await c.aclose()


# --- 4. a filtered block's state root is the node's word, shown as proven -------------------


async def test_a_filtered_blocks_state_root_is_checked_or_not_called_proven() -> None:
    """A whole block's ``state_root`` must be the one block h+1's certified header carries
    (ADR 0026), else BadResponseError. A party-filtered block carries that very header
    (its ``parties_root_proof``), but ``_filtered_view`` copies ``info.state_root``
    unchecked and leaves ``results_proven`` at True: a lying node shows BANK01 any state
    root, which ``ledger block`` and the console print beside "results_proven": true."""

    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([txf.signed(txf.dvp()), txf.signed(txf.transfer("BANK03", "BANK04"))])
    chain.commit([])
    block = chain.store.block(1)
    assert block is not None
    info = filtered_block_pb(chain.node(), block, Caller("BANK01", observer=False))
    key = ParticipantKey("BANK01", pinned.participant_keys["BANK01"])
    c = AsyncLedgerClient(
        [Endpoint("127.0.0.1:1", "node-00")], tls_certs=certs, genesis=pinned.genesis, identity=key
    )
    try:
        honest = c._block_view(info)  # control
        assert honest.filtered and honest.state_root == chain.store.block(1).state_root
        forged = pb.BlockInfo()
        forged.CopyFrom(info)
        forged.state_root = b"\x66" * 32
        try:
            view = c._block_view(forged)
        except LedgerError:
            return  # refused: what a whole block gets
        assert not view.results_proven, (
            f"forged state root {view.state_root.hex()[:16]}.. accepted, results_proven=True"
        )
    finally:
        await c.aclose()


# --- 5. a block stream of endless repeats: no failover, a busy loop ---------------------------


class _Repeats:
    """A StreamBlocks call that repeats a block below the one asked for, for ever."""

    def __init__(self) -> None:
        self.sent = 0

    def StreamBlocks(self, req: Any, **kw: Any) -> Any:
        outer = self

        class Call:
            def __aiter__(self) -> Any:
                return self

            async def __anext__(self) -> Any:
                outer.sent += 1
                await asyncio.sleep(0)
                return pb.BlockInfo(height=req.from_height - 1)  # "a repeat"

            def cancel(self) -> bool:
                return True

        return Call()


class _HonestBlocks:
    def StreamBlocks(self, req: Any, **kw: Any) -> Any:
        raise _AskedAnotherNode("StreamBlocks")


async def test_a_block_stream_of_endless_repeats_is_left_for_another_node() -> None:
    """``_blocks`` skips any block below the next height (``continue``: "a repeat after
    failover"), without decoding it and without limit. The SDK asks from that very height,
    so an honest node never sends one below it; a lying node sending block h-1 for ever
    keeps ``blocks()``/``events()`` spinning (CPU, no yield, no failover), never
    reaching the next endpoint."""
    c = _client([_Stub(_honest), _Stub(_honest)])
    hostile = _Repeats()
    c._stub = lambda i: (hostile, _HonestBlocks())[i]  # type: ignore[method-assign,assignment,return-value]
    try:
        with pytest.raises((_AskedAnotherNode, LedgerError)):
            async with asyncio.timeout(2.0):
                await c.blocks(5).__anext__()
    finally:
        await c.aclose()
    assert hostile.sent < 1000, f"{hostile.sent} repeats consumed"


# --- 6. block(h) answered with another certified block ----------------------------------------


async def test_block_h_answered_with_another_certified_block_is_refused() -> None:
    """``block(height)`` checks the answer is certified at the height *it claims*
    (``info.height``) but never that this is the height asked for: a lying node answers
    GetBlock(2) with block 1 (genuine, certified, its results proven) and the SDK returns
    it. ``ledger fails`` / ``ledger report settlement`` read the head block with
    ``block(last)`` (client/_cli_net.py ``_blocks_in``): the node swaps in an older block,
    counting its fails twice and hiding the head's."""

    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([txf.signed(txf.dvp()), txf.signed(txf.transfer("BANK03", "BANK04"))])
    chain.commit([txf.signed(txf.dvp())])
    chain.commit([])
    node = chain.node()
    block1 = chain.store.block(1)
    assert block1 is not None
    old = block_pb(node, block1)

    def swap(method: str, req: Any) -> Any:
        assert method == "GetBlock"
        return old  # whatever height was asked

    c = AsyncLedgerClient(
        [Endpoint("127.0.0.1:1", "node-00"), Endpoint("127.0.0.1:2", "node-01")],
        tls_certs=certs,
        genesis=pinned.genesis,
    )
    stubs = [_Stub(swap), _Stub(_honest)]
    c._stub = lambda i: stubs[i]  # type: ignore[method-assign]
    try:
        async with asyncio.timeout(GUARD_S):
            with pytest.raises((_AskedAnotherNode, LedgerError)):
                got = await c.block(2)
                raise AssertionError(f"block(2) returned block {got.height}")
    finally:
        await c.aclose()


async def test_a_stream_whose_node_says_not_final_leaves_it_for_the_next_request() -> None:
    """The stream form of the censoring node: it answers every request NOT_FINAL
    (DEADLINE_EXCEEDED) at its deadline. That request fails retry-safe, as from an honest
    node; the stream then leaves the node, so the resubmit settles on the next one."""
    second = _Call()

    async def reopen(failed: str) -> tuple[Any, str]:
        return second, "127.0.0.1:8001"

    first = _Call()
    s = _stream(first, inflight_max=4, reopen=reopen)
    try:
        fut = await s.submit(_raw(1))
        first.events.put_nowait(_error(1, grpc.StatusCode.DEADLINE_EXCEEDED, "not final"))
        async with asyncio.timeout(GUARD_S):
            with pytest.raises(FinalityTimeoutError):
                await asyncio.shield(fut)
            again = await s.submit(_raw(1))  # the resubmit: on the next node
            while not second.sent:
                await asyncio.sleep(0.01)
            second.events.put_nowait(_final(second.sent[-1].correlation))
            receipt = await asyncio.shield(again)
    finally:
        await s.cancel()
    assert s.address == "127.0.0.1:8001" and receipt.ok
    assert len(first.sent) == 1, "the resubmit went to the node that never finalizes"
