"""Adversarial review 21 of session 21: an open stream ends once governance rotates the
key it was opened with and reads with its caller's role at the head (``LedgerService
._as_now`` / ``_now`` / ``_may_read_now``), an idle block is served whole to whoever
``Registry.observers_at`` says observed after it (``_observed``), and the SDK's
``observer=True`` refuses every party-filtered block.

Three holes were fixed the same session (a submit stream's final event, a parked
``WaitForFinality``, a block stream's backlog: each now reads the caller again after
its wait); the strict xfail left pins what is still open, with a control beside it;
the plain tests pin what was tried and held. In-process only: a chain of real blocks with
real certificates (``tests.chain_helpers``), the real servicer with stand-in contexts,
and the real SDK with stand-in stubs. No cluster.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest

from client import (
    AsyncLedgerClient,
    BadResponseError,
    Endpoint,
    ParticipantKey,
    UnavailableError,
)
from node import crypto
from node.access import AccessError, Caller, signed_metadata
from node.runtime._access import Gate
from node.runtime._api import LedgerService, block_pb
from node.settlement import Registry, ResultCode, Role, SignedTx
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.gov_helpers import rotate, set_roles
from tests.gov_helpers import signed as gov_signed
from tests.ledger_helpers import TxFactory, pinned_tls, shared_net
from tests.unit.test_block_reads import _Ctx, _Refused
from tests.unit.test_party_index_hostile import _filtered, _sdk, _Stub
from tests.unit.test_stream_identity import _caller, _events, _Held, _status
from tests.unit.test_whole_blocks import _expired

NET = shared_net()
TRADER = frozenset({Role.TRADER})
AUDITOR = frozenset({Role.AUDITOR})


def _stubbed(
    net: Any, certs: bytes, who: str, *, nodes: int = 2, observer: bool = True
) -> AsyncLedgerClient:
    """A client of ``nodes`` nodes (a test stubs them), signing as ``who``; by default
    it says it observes."""
    key = ParticipantKey(who, net.participant_keys[who])
    return AsyncLedgerClient(
        [Endpoint(f"127.0.0.1:{i + 1}", f"node-{i:02}") for i in range(nodes)],
        tls_certs=certs,
        genesis=net.genesis,
        identity=key,
        observer=observer,
    )


def _far() -> int:
    return int(time.time() * 1000) + 3_600_000  # admission checks expiry on the wall clock


async def _next(it: Any) -> Any:
    return await asyncio.wait_for(anext(it), 5)


async def _get_block(svc: LedgerService, caller: Caller, height: int) -> pb.BlockInfo:
    Gate.enter(caller)
    return await svc.GetBlock(pb.BlockRequest(height=height), _Ctx())  # type: ignore[arg-type]


# --- 1. SubmitStream: a demotion during the finality wait does not stop the final event ---


async def _terminal(events: Any) -> str:
    """The kind of the next terminal event: a result code's name, or an error's status."""
    async with asyncio.timeout(5):
        async for ev in events:
            if ev.WhichOneof("kind") == "final":
                return ResultCode(ev.final.code).name + (
                    "+receipt" if ev.final.HasField("receipt") else ""
                )
            if ev.WhichOneof("kind") == "error":
                return _status(ev.error.status)
    raise AssertionError("the stream ended without a terminal event")


@pytest.mark.parametrize("trade_block", ["with_demotion", "before_demotion"])
async def test_a_submit_stream_sends_no_final_to_an_auditor_demoted_while_it_waits(
    trade_block: str,
) -> None:
    """docs/cluster.md: a demoted auditor's "open submit stream answers the final event of
    a trade it is no party to with PERMISSION_DENIED". Scenario: AUDITOR (an observer)
    holds the bytes of BANK01/BANK02's DvP and sends them on its submit stream with
    ``prove_result`` and ``want_receipt``; ``_settle`` calls ``may_read`` at once
    (AUDITOR observes: yes) and then waits for the result's proof. AUDITOR is demoted
    in the trade's own block (with_demotion): the final event, with the receipt, was
    built after the demotion and went out (review 21; now checked again before it is
    sent). When the trade's block came before the demotion (before_demotion), it is of
    the auditor's days: GetBlock serves it that block whole, and the final event goes
    (sweep D of session 22 made reads by id agree). Control: the same request after the
    demotion is answered the same way (the check at acceptance)."""
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    raw = txf.signed(txf.dvp(expiry_ms=_far(), deadline_ms=_far()))
    demote = gov_signed(pinned, set_roles(txf, "AUDITOR", TRADER))
    if trade_block == "before_demotion":
        chain.commit([raw])  # block 1, the head: its result is not proven yet
        sent = pb.ALREADY_COMMITTED
    else:
        chain.commit([])
        sent = pb.ACCEPTED
    node = chain.node()
    svc = LedgerService(node, {})
    req = pb.SubmitStreamRequest(
        correlation=1, transaction=raw, prove_result=True, want_receipt=True
    )
    reqs = _Held(req)
    events: Any = await _events(svc, _caller(chain, "AUDITOR"), reqs)
    try:
        assert (await _next(events)).WhichOneof("kind") == "opened"
        reqs.go[0].set()
        assert (await _next(events)).accepted == sent
        await asyncio.sleep(0.01)  # the settle task is parked
        chain.commit([demote] if trade_block == "before_demotion" else [demote, raw])
        node._resolve(SignedTx.decode(raw).tx_id)  # what the node's commit does
        chain.commit([])  # proves the trade's result
        node._head_changed.set()
        late = await _terminal(events)
    finally:
        await events.aclose()
    expected = "PERMISSION_DENIED" if trade_block == "with_demotion" else "OK+receipt"
    # control: a request after the demotion
    reqs = _Held(pb.SubmitStreamRequest(correlation=1, transaction=raw))
    fresh: Any = await _events(svc, _caller(chain, "AUDITOR"), reqs)
    try:
        await _next(fresh)
        reqs.go[0].set()
        assert await _terminal(fresh) == expected.removesuffix("+receipt")
    finally:
        await fresh.aclose()
    assert late == expected, f"the demoted auditor was sent {late}"


async def test_a_submit_streams_final_queued_before_a_rotation_is_not_sent() -> None:
    """Held: the key check runs as each event leaves, not as it is queued. BANK01's
    final event (its resubmitted committed trade) is queued while the client does not
    read; governance then rotates BANK01's key; the next read ends the stream with
    UNAUTHENTICATED instead of the queued final."""
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    raw = txf.signed(txf.dvp(expiry_ms=_far(), deadline_ms=_far()))
    chain.commit([raw])
    chain.commit([])
    svc = LedgerService(chain.node(), {})
    reqs = _Held(pb.SubmitStreamRequest(correlation=1, transaction=raw))
    events: Any = await _events(svc, _caller(chain, "BANK01"), reqs)
    try:
        await _next(events)
        reqs.go[0].set()
        assert (await _next(events)).WhichOneof("kind") == "accepted"
        await asyncio.sleep(0.01)  # the final is queued now
        chain.commit([gov_signed(pinned, rotate(txf, "BANK01", crypto.SigningKey.generate()))])
        with pytest.raises(_Refused) as e:
            await _next(events)
        assert e.value.code is grpc.StatusCode.UNAUTHENTICATED
    finally:
        await events.aclose()


# --- 2. WaitForFinality: a parked wait is answered with the identity it was opened with --


@pytest.mark.parametrize("change", ["rotate", "demote"])
async def test_a_parked_finality_wait_is_not_answered_after_a_rotation_or_demotion(
    change: str,
) -> None:
    """docs/cluster.md: "whoever holds the old key keeps nothing it opened with it", and a
    changed role "counts from there on". Scenario (rotate): a thief holding BANK01's
    stolen key parks ``WaitForFinality(tx, prove_result, timeout 300 s)`` for BANK01's
    trade (or with ``wait_settled``, a pending DvP's outcome; up to 2,000 such waits per
    connection); governance rotates BANK01's key; the wait still returns the receipt.
    (demote): AUDITOR parks a wait on BANK01/BANK02's trade, is demoted in the trade's own
    block (a trade of its auditor days it still reads, as GetBlock serves it that block
    whole: sweep D of session 22); the receipt was still returned (``_may_read`` used
    the caller of the call's start). Controls: a fresh call signed with the old key is
    refused by the gate; the demoted AUDITOR's fresh wait is PERMISSION_DENIED."""
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    raw = txf.signed(txf.dvp())
    # rotate: block 1, the head, holds the trade: the wait parks until block 2 proves it;
    # demote: the wait parks until the trade commits, in block 2 with the demotion
    chain.commit([raw] if change == "rotate" else [])
    tid = SignedTx.decode(raw).tx_id
    node = chain.node()
    svc = LedgerService(node, {})
    who = "BANK01" if change == "rotate" else "AUDITOR"
    opened = _caller(chain, who)
    old_key = pinned.participant_keys[who]
    Gate.enter(opened)
    req = pb.WaitRequest(tx_id=tid, prove_result=True, timeout_ms=300_000)
    parked = asyncio.ensure_future(svc.WaitForFinality(req, _Ctx()))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert not parked.done()
    if change == "rotate":
        gov = gov_signed(pinned, rotate(txf, who, crypto.SigningKey.generate()))
        chain.commit([gov])  # block 2: proves block 1's result
    else:
        gov = gov_signed(pinned, set_roles(txf, who, TRADER))
        chain.commit([gov, raw])  # block 2
        node._resolve(tid)  # what the node's commit does
        chain.commit([])  # block 3: proves block 2's results
    assert chain.outcomes[2].results[0].code is ResultCode.OK
    node._head_changed.set()
    # controls: what a call opened now gets
    if change == "rotate":
        gate = Gate(lambda: Registry.of(chain.store), lambda: 1_000_000, "val00")
        md = signed_metadata(
            old_key,
            who,
            pinned.genesis.chain_id,
            "M",
            b"r",
            node="val00",
            time_ms=1_000_000,
            nonce=b"n" * 16,
        )
        with pytest.raises(AccessError, match="current key"):
            gate.admit("M", b"r", md)
    else:
        Gate.enter(_caller(chain, who))
        with pytest.raises(_Refused) as e:
            await svc.WaitForFinality(req, _Ctx())  # type: ignore[arg-type]
        assert e.value.code is grpc.StatusCode.PERMISSION_DENIED
    try:
        receipt = await asyncio.wait_for(parked, 5)
        got = f"the receipt of block {receipt.height}"
    except _Refused as e:
        got = e.code.name
    expected = "UNAUTHENTICATED" if change == "rotate" else "PERMISSION_DENIED"
    assert got == expected, f"the parked wait opened as {who} was answered: {got}"


# --- 3. StreamBlocks: the batch below one head is served whatever governance did since ---


@pytest.mark.parametrize("change", ["rotate", "demote"])
async def test_a_block_streams_backlog_stops_at_a_rotation_or_demotion(change: str) -> None:
    """Scenario: blocks 1..4 each a DvP BANK01/BANK02; block 5 makes BANK03 an auditor;
    block 6 idle. BANK03 (the auditor now) opens ``StreamBlocks(from_height=1)`` to
    catch up (on a long chain a backlog of thousands of blocks, paced by its block-read
    budget: minutes or hours, stretched further by a client that reads slowly) and
    reads block 1 whole. Block 7 then rotates BANK03's key (stolen) or demotes it. The
    stream's next block is block 2, whole, and so are 3..6: the key and role are read
    only when the batch up to the head of the last check is done. The controls: the
    stream does end (rotate) or turn filtered (demote) after the batch, and a fresh
    ``GetBlock(2)`` by the demoted BANK03 is filtered (its leaf says no observer then)."""
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    for _ in range(4):
        chain.commit([txf.signed(txf.dvp())])
    chain.commit([gov_signed(pinned, set_roles(txf, "BANK03", AUDITOR))])  # block 5
    chain.commit([])  # block 6
    node = chain.node()
    svc = LedgerService(node, {})
    Gate.enter(_caller(chain, "BANK03"))
    stream: Any = svc.StreamBlocks(pb.StreamBlocksRequest(from_height=1), _Ctx())  # type: ignore[arg-type]
    served_after: list[tuple[int, bool]] = []
    try:
        first = await _next(stream)
        assert first.height == 1 and not first.filtered
        if change == "rotate":
            gov = gov_signed(pinned, rotate(txf, "BANK03", crypto.SigningKey.generate()))
        else:
            gov = gov_signed(pinned, set_roles(txf, "BANK03", TRADER))
        chain.commit([gov])  # block 7
        chain.commit([])  # block 8 certifies it
        assert chain.outcomes[7].results[0].code is ResultCode.OK
        node._head_changed.set()  # left set: the stream must find a block at every turn
        ended = False
        for _ in range(8):
            try:
                info = await _next(stream)
            except _Refused as e:
                assert e.code is grpc.StatusCode.UNAUTHENTICATED
                ended = True
                break
            served_after.append((info.height, info.filtered))
            if info.filtered:
                break
        # controls: the check does come, after the batch
        assert ended if change == "rotate" else served_after[-1][1]
    finally:
        await stream.aclose()
    if change == "demote":
        assert (await _get_block(svc, _caller(chain, "BANK03"), 2)).filtered  # control
    whole_after = [h for h, filtered in served_after if not filtered]
    assert whole_after == [], f"served whole after block 7's {change}: blocks {whole_after}"


# --- 4. observer=True: a whole copy's events are still the node's word -------------------


@pytest.fixture(scope="module")
def expired() -> tuple[Any, bytes, Chain]:
    """Block 1: a pending DvP BANK01 -> BANK02 short of bonds, deadline genesis + 2.5 s;
    block 2 idle; block 3 idle but for its FAILED_DEADLINE event (the block a chain makes
    for an event); block 4 certifies it."""
    chain, certs = _expired(idle=3)
    assert [(r.event, r.code) for r in chain.outcomes[3].results] == [
        (True, ResultCode.FAILED_DEADLINE)
    ]
    return chain.net, certs, chain


@pytest.mark.parametrize("tamper", ["strip", "forge", "strip_unproven", "forge_results"])
async def test_an_observer_client_refuses_a_whole_idle_block_with_its_events_changed(
    expired: tuple[Any, bytes, Chain], tamper: str
) -> None:
    """Review 21, closed by ADR 0026: a block with no transactions has no index and no
    flag; ``observer=True`` refuses its filtered copy (the control), and a hostile node
    sends the whole block 3 with ``events`` emptied (strip), the FAILED_DEADLINE turned
    into OK (forge: the auditor told the trade settled), both and the proof left out
    (strip_unproven: it poses as an idle chain's last block), or block 1's PENDING result
    turned into OK (forge_results). A whole block now comes with block h + 1's certified
    header and the last leaf of its results tree, and the client rebuilds the tree:
    refused, but for strip_unproven, which ``block()`` shows unproven
    (``results_proven`` False) and ``blocks()`` never yields (below)."""
    pinned, certs, chain = expired
    node = chain.node()
    sb = chain.store.block(3)
    assert sb is not None
    honest = block_pb(node, sb)
    c = _sdk(pinned, certs, "AUDITOR", observer=True)
    try:
        view = c._block_view(honest)
        assert [e.code for e in view.events] == [ResultCode.FAILED_DEADLINE]  # control
        assert view.results_proven
        with pytest.raises(BadResponseError, match="observer"):
            c._block_view(_filtered(chain, "AUDITOR", 3))  # control: the filtered copy
        bad = pb.BlockInfo()
        bad.CopyFrom(honest)
        if tamper.startswith("strip"):
            del bad.events[:]
        if tamper == "forge":
            bad.events[0].code = pb.ResultCode.OK
        if tamper == "forge_results":
            first = chain.store.block(1)
            assert first is not None
            bad = block_pb(node, first)
            assert c._block_view(bad).results_proven  # control: block 1 as it is
            bad.results[0].code = pb.ResultCode.OK
        if tamper == "strip_unproven":
            bad.ClearField("parties_root_proof")
            bad.parties_leaf = b""
            assert not c._block_view(bad).results_proven
            return
        with pytest.raises(BadResponseError, match="certifies"):
            c._block_view(bad)
    finally:
        await c.aclose()


async def test_blocks_never_yields_a_stripped_block_posing_as_the_last() -> None:
    """ADR 0026: a hostile node streams block 3 (idle but for its FAILED_DEADLINE) with its
    events and proof stripped, posing as an idle chain's last block, then block 4. The
    client holds block 3 until block 4's certified header shows its results root, which
    is not the quiet one: the node is refused and the next one's honest block 3 goes out,
    its event in it. The control: an honest quiet last block (block 4 here, after which
    the fixture commits nothing) is held, then yielded once block 5 shows it quiet."""
    chain, certs = _expired(idle=4)
    pinned = chain.net
    node = chain.node()
    honest = {h: block_pb(node, chain.store.block(h)) for h in range(1, 6)}  # type: ignore[arg-type]
    assert list(honest[3].events) and not list(honest[4].events)
    stripped = pb.BlockInfo()
    stripped.CopyFrom(honest[3])
    del stripped.events[:]
    stripped.ClearField("parties_root_proof")
    stripped.parties_leaf = b""
    last = pb.BlockInfo()
    last.CopyFrom(honest[5])  # the chain's last block, as a node serves it: no proof yet
    last.ClearField("parties_root_proof")
    last.parties_leaf = b""
    streams = [
        [honest[1], honest[2], stripped, honest[4], honest[5]],  # hostile
        [honest[h] for h in range(1, 5)] + [last],  # honest
    ]
    served: list[int] = []

    class _Stream:
        def __init__(self, i: int, start: int) -> None:
            self.i, self.start = i, start

        def __aiter__(self) -> Any:
            return self._gen()

        async def _gen(self) -> Any:
            served.append(self.i)
            for info in streams[self.i]:
                if info.height >= self.start:
                    yield info
            await asyncio.sleep(3_600)

        def cancel(self) -> None:
            pass

    class _Node:
        def __init__(self, i: int) -> None:
            self.i = i

        def StreamBlocks(self, req: Any, **kw: Any) -> Any:
            return _Stream(self.i, req.from_height)

    c = _stubbed(pinned, certs, "AUDITOR")
    c._stub = _Node  # type: ignore[method-assign, assignment]
    gen = c.blocks(1)
    try:
        got = [await asyncio.wait_for(anext(gen), 5) for _ in range(4)]
        assert [b.height for b in got] == [1, 2, 3, 4]
        assert [e.code for e in got[2].events] == [ResultCode.FAILED_DEADLINE]
        assert served == [0, 1]  # the hostile node was left at block 3
        assert all(b.results_proven for b in got)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(gen), 0.3)  # block 5: held, nothing follows it
    finally:
        await gen.aclose()
        await c.aclose()


# --- held: observer=True ends, with a clear error, when every node filters ---------------


async def test_an_observer_client_that_every_node_filters_for_ends_saying_why() -> None:
    """Held: ``observer=True`` for an identity that holds no observer role (BANK01) reads
    every honest node's filtered block as a node's fault; ``block()`` and ``blocks()``
    end with UnavailableError naming the cause, after a bounded number of tries. The
    control: the same client without the flag takes the filtered block."""
    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([txf.signed(txf.dvp())])
    chain.commit([])
    info = _filtered(chain, "BANK01", 1)
    calls: list[str] = []

    class _Stream:
        def __aiter__(self) -> Any:
            return self._gen()

        async def _gen(self) -> Any:
            calls.append("StreamBlocks")
            yield info

        def cancel(self) -> None:
            pass

    def answer(method: str, req: Any) -> Any:
        calls.append(method)
        return info

    stub = _Stub(answer)
    stub.StreamBlocks = lambda req, **kw: _Stream()  # type: ignore[attr-defined]
    c = _stubbed(pinned, certs, "BANK01")
    plain = _sdk(pinned, certs, "BANK01")
    try:
        assert plain._block_view(info).filtered  # control
        c._stub = lambda i: stub  # type: ignore[method-assign]
        with pytest.raises(UnavailableError, match="holds no observer role"):
            await asyncio.wait_for(c.block(1), 5)
        assert 1 < calls.count("GetBlock") <= 4
        gen = c.blocks(1)
        with pytest.raises(UnavailableError, match="holds no observer role"):
            await asyncio.wait_for(anext(gen), 5)
        await gen.aclose()
    finally:
        await c.aclose()
        await plain.aclose()
