"""The SDK against one lying validator (session 32's adversarial review): each test is a
defect the review found, and failed on the code before its fix; each has a control the
fix must not break. The node is faked in-process, as in test_sdk_vs_lying_node.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from client import AsyncLedgerClient, Endpoint, NotFoundError, ParticipantKey, PermissionDeniedError
from node.runtime._api import block_pb
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory, pinned_tls, shared_net
from tests.unit.test_client_api_hostile import _Stub
from tests.unit.test_client_stream import _Call, _final, _plain_signed, _raw, _stream
from tests.unit.test_client_stream_hostile import NOT_DONE, _done_within, _outcome_answered_by
from tests.unit.test_party_index_hostile import _BlockStream, _filtered, _sdk
from tests.unit.test_party_index_hostile import _Stub as _PartyStub
from tests.unit.test_sdk_vs_lying_node import _AskedAnotherNode, _client, _honest

__all__ = ["_plain_signed"]  # the fixture: raw bytes stand for signed transactions

NET = shared_net()
GUARD_S = 3.0  # far below the requests' 30 s deadline: an answer here came by failover


# --- 1. an unexpected event on a submit stream broke it for good ---------------------------


def _opened_again(corr: int) -> pb.SubmitStreamEvent:
    return pb.SubmitStreamEvent(opened=pb.SubmitStreamOpened(inflight_max=4))


def _no_kind(corr: int) -> pb.SubmitStreamEvent:
    return pb.SubmitStreamEvent(correlation=corr)


def _final_for_no_request(corr: int) -> pb.SubmitStreamEvent:
    return _final(corr + 98)


@pytest.mark.parametrize("event", [_final_for_no_request, _opened_again, _no_kind])
async def test_an_unexpected_stream_event_fails_over_and_keeps_the_requests(event: Any) -> None:
    """The stream's node sends an event no request of it called for (a final for a
    correlation never sent, a second opened event, an event of no kind) and then nothing.
    ``_on_event`` raised BadResponseError, which ``_read`` took for the whole stream's
    failure: every request in flight failed, every later submit was refused, and the
    client's current endpoint stayed on that node, so the caller's next stream opened there
    and broke again. One node's bad answer is its own fault: the stream leaves it and the
    requests in flight are resent on the next node, which settles them."""
    second = _Call()
    opened: list[str] = []

    async def reopen(failed: str) -> tuple[Any, str]:
        opened.append(failed)
        return second, "127.0.0.1:8001"

    first = _Call()
    s = _stream(first, inflight_max=4, reopen=reopen)
    try:
        fut = await s.submit(_raw(1))
        first.events.put_nowait(event(1))  # then the hostile node says nothing more
        outcome = await _outcome_answered_by(second, fut)
        assert outcome is not NOT_DONE, "the request waited at the node that sent nonsense"
        assert not isinstance(outcome, BaseException), f"failed, not failed over: {outcome!r}"
        assert opened == ["127.0.0.1:8000"] and s.address == "127.0.0.1:8001"
        # The stream still works: a later request goes to the next node and settles.
        later = await s.submit(_raw(2))
        second.events.put_nowait(_final(second.sent[-1].correlation))
        assert (await _done_within(asyncio.shield(later), GUARD_S)).tx_id == _raw(2)[-8:]
    finally:
        await s.cancel()


# --- 2. a block stream kept open and silent parked blocks() for ever ------------------------


class _BlockNode:
    """A node's stub for a block stream: its status claims ``height``; its StreamBlocks
    call sends nothing and never ends (``silent``), or marks that it was asked."""

    def __init__(self, height: int, *, silent: bool) -> None:
        self.height, self.silent, self.streams, self.statuses = height, silent, 0, 0

    def GetStatus(self, req: Any, **kw: Any) -> Any:
        self.statuses += 1

        async def answer() -> pb.NodeStatus:
            return pb.NodeStatus(height=self.height)

        return asyncio.ensure_future(answer())

    def StreamBlocks(self, req: Any, **kw: Any) -> Any:
        self.streams += 1
        if not self.silent:
            raise _AskedAnotherNode("StreamBlocks")
        return _SilentCall()


class _SilentCall:
    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> Any:
        await asyncio.Event().wait()  # nothing, ever

    def cancel(self) -> bool:
        return True


async def _first_block(nodes: list[_BlockNode], seconds: float) -> Any:
    c = _client([_Stub(_honest) for _ in nodes])
    c._stub = lambda i: nodes[i]  # type: ignore[method-assign,assignment,return-value]
    try:
        return await _done_within(c.blocks(5).__anext__(), seconds)
    finally:
        await c.aclose()


@pytest.fixture
def _quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("client._async.BLOCK_STREAM_CHECK_S", 0.05)


@pytest.mark.usefixtures("_quick_checks")
async def test_a_node_that_withholds_blocks_the_chain_has_is_left() -> None:
    """Endpoint 0 opens the block stream and sends nothing, for ever, while every
    validator (itself too) reports the chain at height 20: blocks(5) waited there for good
    ("the stream has no idle timeout because an idle cluster makes no blocks"), so one
    validator hid every block from ``events()`` (a bank's settlement feed) and
    ``holders_at``. More than f validators report the chain past the block owed: an honest
    one has it, and the stream moves to the next node."""
    nodes = [_BlockNode(20, silent=True)] + [_BlockNode(20, silent=False) for _ in range(3)]
    outcome = await _first_block(nodes, GUARD_S)
    assert isinstance(outcome, _AskedAnotherNode), f"stayed on the silent node: {outcome!r}"
    assert nodes[1].streams == 1


@pytest.mark.usefixtures("_quick_checks")
@pytest.mark.parametrize("heights", [(4, 4, 4, 4), (1000, 4, 4, 4), (6, 6, 5, 5)])
async def test_an_idle_chain_or_f_liars_keep_the_stream(heights: tuple[int, ...]) -> None:
    """Controls: the chain has not reached the block owed (an idle chain: the stream waits
    for it), only f = 1 validator claims it has (a liar cannot make the client leave an
    honest node), or the chain is only one block past it (an honest node sends a block
    once its successor commits): the stream stays, though its status checks ran."""
    nodes = [_BlockNode(heights[0], silent=True)]
    nodes += [_BlockNode(h, silent=False) for h in heights[1:]]
    assert await _first_block(nodes, 0.5) is NOT_DONE
    assert nodes[0].statuses >= 3 and nodes[1].streams == 0


# --- 3. one node ends an observer's holders_at with a permission error ----------------------


@pytest.fixture(scope="module")
def idle_first() -> tuple[Any, bytes, Chain]:
    """Block 1 idle (no transactions), block 2 a DvP BANK01/BANK02 of the first bond, block
    3 empty (certifies it)."""
    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([])
    chain.commit([txf.signed(txf.dvp())])
    chain.commit([])
    return pinned, certs, chain


def _whole(chain: Chain, height: int) -> pb.BlockInfo:
    sb = chain.store.block(height)
    assert sb is not None
    return block_pb(chain.node(), sb)


async def _holders_at(c: AsyncLedgerClient, bond: str, infos: list[pb.BlockInfo]) -> Any:
    stub = _PartyStub(lambda m, r: pb.NodeStatus(height=len(infos)))
    stub.StreamBlocks = lambda req, **kw: _BlockStream(list(infos))  # type: ignore[attr-defined]
    c._stub = lambda i: stub  # type: ignore[method-assign]
    try:
        async with asyncio.timeout(GUARD_S):
            return await c.holders_at(bond, 2)
    finally:
        await c.aclose()


async def test_a_filtered_block_that_hides_nothing_does_not_end_holders_at(
    idle_first: tuple[Any, bytes, Chain],
) -> None:
    """AUDITOR (a genesis observer whose app does not say ``observer=True``) replays the
    first bond's holders after block 2 through a hostile validator, which sends block 1,
    which has no transactions, party-filtered. The SDK accepts the copy (an idle block
    has no party index, so no observer flag: ADR 0025), and ``Replay.check_root`` raised
    PermissionDeniedError ("a replay needs full blocks"), documented as what every node
    answers the same and not retry-safe: one node ended the auditor's replay, no other
    node was asked. Review 20c fixed this for ``events()`` and left ``holders_at``. A
    filtered block whose certified header counts no more transactions than it shows
    hides none: the replay applies it."""
    pinned, certs, chain = idle_first
    honest = [_whole(chain, h) for h in (1, 2, 3)]
    bond = pinned.bonds[0]
    control = await _holders_at(_sdk(pinned, certs, "AUDITOR"), bond, honest)
    hostile = [_filtered(chain, "AUDITOR", 1), *honest[1:]]
    got = await _holders_at(_sdk(pinned, certs, "AUDITOR"), bond, hostile)
    assert got.proven and got.state_root == control.state_root and got == control


async def test_a_filtered_block_that_hides_transactions_still_ends_holders_at(
    idle_first: tuple[Any, bytes, Chain],
) -> None:
    """Control: BANK03 is shown block 2 without BANK01/BANK02's DvP (an honest node's
    filtered copy): the replay cannot reach the state, PermissionDeniedError."""
    pinned, certs, chain = idle_first
    infos = [_filtered(chain, "BANK03", h) for h in (1, 2, 3)]
    with pytest.raises(PermissionDeniedError, match="filtered"):
        await _holders_at(_sdk(pinned, certs, "BANK03"), pinned.bonds[0], infos)


# --- 4. one node's low head makes holders_at deny a block the chain has ---------------------


def _auditor(pinned: Any, certs: bytes, statuses: list[int], infos: list[pb.BlockInfo]) -> Any:
    """An AUDITOR client of 4 endpoints: endpoint i's status says ``statuses[i]``, and each
    streams ``infos``."""
    key = ParticipantKey("AUDITOR", pinned.participant_keys["AUDITOR"])
    endpoints = [Endpoint(f"127.0.0.1:{i + 1}", f"node-{i:02d}") for i in range(4)]
    c = AsyncLedgerClient(endpoints, tls_certs=certs, genesis=pinned.genesis, identity=key)
    stubs = []
    for height in statuses:
        stub = _PartyStub(lambda m, r, h=height: pb.NodeStatus(height=h))
        stub.StreamBlocks = lambda req, **kw: _BlockStream(list(infos))  # type: ignore[attr-defined]
        stubs.append(stub)
    c._stub = lambda i: stubs[i]  # type: ignore[method-assign]
    return c


async def test_one_nodes_low_head_does_not_make_holders_at_deny_a_block(
    idle_first: tuple[Any, bytes, Chain],
) -> None:
    """The current endpoint says its head is block 1; the other three, block 3.
    ``holders_at(bond, 2)`` checked the height against ``head()``, which never exceeds
    the current endpoint's claim, and raised NotFoundError ("block 2 is above the head"),
    documented as "no such block" and not retry-safe, on that one node's word. A block
    more than f validators report reached exists: the replay goes on."""
    pinned, certs, chain = idle_first
    infos = [_whole(chain, h) for h in (1, 2, 3)]
    c = _auditor(pinned, certs, [1, 3, 3, 3], infos)
    try:
        async with asyncio.timeout(GUARD_S):
            got = await c.holders_at(pinned.bonds[0], 2)
    finally:
        await c.aclose()
    assert got.height == 2 and got.proven  # block 3, which more than f report, proves it


async def test_a_block_no_honest_node_reports_is_not_found(
    idle_first: tuple[Any, bytes, Chain],
) -> None:
    """Control: only one node (f = 1) says the chain reached block 3: not found."""
    pinned, certs, chain = idle_first
    c = _auditor(pinned, certs, [2, 3, 2, 2], [_whole(chain, h) for h in (1, 2, 3)])
    try:
        with pytest.raises(NotFoundError, match="above the head"):
            await c.holders_at(pinned.bonds[0], 3)
    finally:
        await c.aclose()
