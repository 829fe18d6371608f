"""Adversarial review 22 of ADR 0026 (a block is due after an events-only block; whole
blocks carry the proof of their results and the SDK checks it; ``blocks()`` holds an
idle chain's last block until its successor shows it was quiet).

Each finding was a strict xfail beside its control; all four were fixed the same
session (each test's docstring says how) and pass now. The other tests pin what was
tried and held (several of them checks that could be removed with
every earlier test green). In-process only: a chain of real blocks with real
certificates (``tests.chain_helpers``), the real servicer with stand-in contexts, the
real SDK with stand-in stubs, and the replica on the unit tests' ``Net``. No cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

import pytest

from client import BadResponseError, Endpoint, LedgerClient, ParticipantKey
from client._cli_net import _blocks_in
from client.console._model import block_json
from node import merkle
from node.access import Caller
from node.config import BATCH_DELAY_MS
from node.core import Phase, Proposal, QCMessage, Vote
from node.runtime._api import LedgerService, block_pb
from node.settlement import ResultCode, result_leaf
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory, pinned_tls, shared_net
from tests.unit.test_core_replica import Net
from tests.unit.test_party_index_hostile import _filtered, _Stub
from tests.unit.test_review21_hostile import _get_block, _stubbed
from tests.unit.test_whole_blocks import _expired

NET = shared_net()


def _far() -> int:
    return int(time.time() * 1000) + 3_600_000  # admission checks expiry on the wall clock


def _unproven(info: pb.BlockInfo) -> pb.BlockInfo:
    """``info`` as a node sends it while it is the head: no proof of its results yet."""
    out = pb.BlockInfo()
    out.CopyFrom(info)
    out.ClearField("parties_root_proof")
    out.parties_leaf = b""
    return out


class _Stream:
    """A StreamBlocks call: ``now`` from ``start`` on, then nothing until ``later`` is set
    (an idle chain), then ``after`` (the next transaction's block)."""

    def __init__(
        self, start: int, now: list[pb.BlockInfo], after: list[pb.BlockInfo], later: Any
    ) -> None:
        self.start, self.now, self.after, self.later = start, now, after, later

    def __aiter__(self) -> Any:
        return self._gen()

    async def _gen(self) -> Any:
        for info in self.now:
            if info.height >= self.start:
                yield info
        while not self.later.is_set():
            await asyncio.sleep(0.02)
        for info in self.after:
            if info.height >= self.start:
                yield info
        await asyncio.sleep(3_600)

    def cancel(self) -> None:
        pass


class _IdleNode:
    """An honest node of an idle chain: head ``head``, quiet; its stream sends every block
    up to the head (the head unproven: nothing certifies it yet)."""

    def __init__(
        self, head: int, now: list[pb.BlockInfo], after: list[pb.BlockInfo], later: Any
    ) -> None:
        self.head, self.now, self.after, self.later = head, now, after, later

    def GetStatus(self, req: Any, **kw: Any) -> Any:
        async def answer() -> pb.NodeStatus:
            return pb.NodeStatus(height=self.head)

        return asyncio.ensure_future(answer())

    def StreamBlocks(self, req: Any, **kw: Any) -> _Stream:
        return _Stream(req.from_height, self.now, self.after, self.later)

    def GetBlock(self, req: Any, **kw: Any) -> Any:
        async def answer() -> pb.BlockInfo:
            return next(i for i in self.now if i.height == req.height)

        return asyncio.ensure_future(answer())


def _traded_then_idle() -> tuple[Any, bytes, dict[int, pb.BlockInfo]]:
    """Block 1 a DvP, block 2 the empty block that certifies it (quiet: the chain's last
    block while idle), then block 3 (the next trade) and block 4: every block's honest
    whole copy, with its proof."""
    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([txf.signed(txf.dvp(expiry_ms=_far(), deadline_ms=_far()))])
    chain.commit([])
    assert chain.outcomes[2].results == ()  # quiet
    chain.commit([txf.signed(txf.transfer(amount=1))])
    chain.commit([])
    node = chain.node()
    infos = {h: block_pb(node, chain.store.block(h)) for h in range(1, 4)}  # type: ignore[arg-type]
    return pinned, certs, infos


# --- 1. `ledger fails` / `ledger report settlement` hang on an idle chain ----------------


@pytest.mark.parametrize(
    "to_height",
    [
        None,
        1,  # control: a range that ends below the head
    ],
)
def test_the_fails_and_report_commands_return_on_an_idle_chain(to_height: int | None) -> None:
    """``ledger fails`` and ``ledger report settlement`` read ``--from``..``--to`` (the
    head when omitted) with ``client._blocks_in``: ``blocks(from)`` until a block at or
    above the last height. Their default identity (``OPERATOR_IDENTITY``, AUDITOR) reads
    whole blocks, and ADR 0026 made ``blocks()`` hold an unproven last block until its
    successor arrives: on an idle chain (every chain between bursts: its head is the
    quiet block that certified the last trades) the head never comes, and both commands
    hang until someone trades. ``holders_at`` was moved to ``_blocks(hold=False)`` for
    this reason; the CLI was not. Scenario: an honest node, head 2 (quiet); the command
    with no ``--to``. It returned only after block 3 was committed. The control: ``--to 1``
    returns at once. Fixed: ``_blocks_in`` streams to the head's parent and reads the
    head with ``block()``."""
    pinned, certs, infos = _traded_then_idle()
    later = threading.Event()
    node = _IdleNode(2, [infos[1], _unproven(infos[2])], [infos[3]], later)
    out: list[tuple[int, list[int]]] = []

    def command() -> None:
        key = ParticipantKey("AUDITOR", pinned.participant_keys["AUDITOR"])
        with LedgerClient(
            [Endpoint("127.0.0.1:1", "node-00")],
            tls_certs=certs,
            genesis=pinned.genesis,
            identity=key,
        ) as client:
            client._client._stub = lambda i: node  # type: ignore[method-assign, assignment, return-value]
            args = argparse.Namespace(from_height=1, to_height=to_height)
            last, blocks = _blocks_in(client, args)
            out.append((last, [b.height for b in blocks]))

    worker = threading.Thread(target=command, daemon=True)
    worker.start()
    worker.join(3)
    returned_while_idle = not worker.is_alive()
    later.set()  # the next trade: whatever happened, let the command end
    worker.join(10)
    top = 2 if to_height is None else to_height
    assert out == [(top, list(range(1, top + 1)))]
    assert returned_while_idle, "the command waited for the next transaction"


# --- 2. block(h) of a stripped events-only block: consumers drop the flag ---------------


@pytest.mark.parametrize(
    "served",
    [
        "stripped",
        "honest",  # control
    ],
)
async def test_the_consoles_block_page_shows_an_unproven_block_as_unproven(served: str) -> None:
    """ADR 0026: ``block(h)`` takes a whole block without a proof if it shows no
    transactions and no events, ``results_proven`` False, "the flag says so". The SDK
    cannot tell an idle chain's last block from any events-only block a hostile node
    strips and sends without its proof: block 3 below (its FAILED_DEADLINE; block 4 is
    committed, so every honest node sends it proven). The console's block page (a block
    past its window of ``CONSOLE_BLOCKS_KEPT``: ``_block`` calls ``client.block``)
    renders it with ``block_json``, which has no ``results_proven``: the auditor sees
    block 3 with no event and nothing saying it rests on one node's word (``ledger
    block`` likewise prints its state root under "commit certificate checked against
    genesis"). The control: the honest copy shows the event. Fixed: ``block_json`` and the
    block page carry ``results_proven`` ("unproven"), and ``ledger block`` says what
    proves the results."""
    chain, certs = _expired()
    chain.commit([])  # block 4 certifies block 3's event
    honest = block_pb(chain.node(), chain.store.block(3))  # type: ignore[arg-type]
    info = honest
    if served == "stripped":
        info = _unproven(honest)
        del info.events[:]
    c = _stubbed(chain.net, certs, "AUDITOR", nodes=1)
    c._stub = lambda i: _Stub(lambda method, req: info)  # type: ignore[method-assign]
    try:
        doc = block_json(await c.block(3))
    finally:
        await c.aclose()
    shown = [e["code"] for e in doc["events"]]
    assert shown == ["FAILED_DEADLINE"] or doc.get("results_proven") is False


# --- held ------------------------------------------------------------------------------


class _Nodes:
    """Endpoint ``i`` streams ``streams[i]`` (then nothing); ``served`` logs each open."""

    def __init__(self, streams: list[list[pb.BlockInfo]]) -> None:
        self.streams, self.served = streams, list[int]()
        self.never = threading.Event()

    def stub(self, i: int) -> Any:
        nodes = self

        class _Node:
            def StreamBlocks(self, req: Any, **kw: Any) -> _Stream:
                nodes.served.append(i)
                return _Stream(req.from_height, nodes.streams[i], [], nodes.never)

        return _Node()


async def test_blocks_refuses_a_quiet_last_block_shown_with_another_state_root() -> None:
    """Held (``_check_quiet``'s state-root half, which no earlier test needed): a hostile
    node sends the idle chain's quiet block 2 unproven with a state root after it of its
    own, then block 3. Block 3's certified header carries the real one: the node is
    refused and the next node's block 2 goes out. The control is that honest block 2."""
    pinned, certs, infos = _traded_then_idle()
    forged = _unproven(infos[2])
    forged.state_root = bytes(32)
    nodes = _Nodes([[infos[1], forged, infos[3]], [infos[1], _unproven(infos[2]), infos[3]]])
    c = _stubbed(pinned, certs, "AUDITOR")
    c._stub = nodes.stub  # type: ignore[method-assign]
    gen = c.blocks(1)
    try:
        got = [await asyncio.wait_for(anext(gen), 5) for _ in range(2)]
    finally:
        await gen.aclose()
        await c.aclose()
    assert [b.height for b in got] == [1, 2] and nodes.served == [0, 1]
    assert got[1].state_root == infos[2].state_root and got[1].results_proven


async def test_a_whole_block_with_transactions_never_comes_unproven() -> None:
    """Held (the ``block.txs`` half of ``_whole_results_proven``'s refusal, which no
    earlier test needed): block 1 (a trade) sent whole without its proof, its result
    turned into another, is refused, not shown as ``results_proven`` False. Control:
    the honest copy."""
    pinned, certs, infos = _traded_then_idle()
    c = _stubbed(pinned, certs, "AUDITOR", nodes=1)
    try:
        assert c._block_view(infos[1]).results_proven  # control
        bad = _unproven(infos[1])
        bad.results[0].code = pb.ResultCode.INSUFFICIENT_CASH
        with pytest.raises(BadResponseError, match="without the proof"):
            c._block_view(bad)
    finally:
        await c.aclose()


async def test_an_observers_get_block_of_a_head_with_events_waits_for_its_proof() -> None:
    """Held (GetBlock's wait now covers observers, which no earlier test needed: with the
    old ``if not caller.observer`` every test stayed green): an auditor's GetBlock of
    block 3, the head, whose event block 4 certifies, waits for block 4 and comes with
    its proof; the SDK would refuse it without one."""
    chain, _ = _expired()
    node = chain.node()
    svc = LedgerService(node, {})
    read = asyncio.ensure_future(_get_block(svc, Caller("AUDITOR", observer=True), 3))
    try:
        await asyncio.sleep(0.2)
        assert not read.done()
        chain.commit([])
        node._head_changed.set()
        info = await asyncio.wait_for(read, 5)
    finally:
        read.cancel()
    assert info.HasField("parties_root_proof") and list(info.events)


async def test_a_results_tree_cannot_be_packed_into_the_party_leaf() -> None:
    """Held: a node cannot strip block 3's event and pass the two hashes under the root
    off as its one "party leaf" (the leaf and node hashes are domain-separated). The
    control: the honest block."""
    chain, certs = _expired()
    chain.commit([])
    honest = block_pb(chain.node(), chain.store.block(3))  # type: ignore[arg-type]
    c = _stubbed(chain.net, certs, "AUDITOR", nodes=1)
    try:
        assert [e.code for e in c._block_view(honest).events] == [ResultCode.FAILED_DEADLINE]
        event = merkle.leaf_hash(result_leaf(chain.outcomes[3].results[0]))
        packed = pb.BlockInfo()
        packed.CopyFrom(honest)
        del packed.events[:]
        packed.parties_leaf = event + merkle.leaf_hash(bytes(honest.parties_leaf))
        with pytest.raises(BadResponseError, match="certifies"):
            c._block_view(packed)
    finally:
        await c.aclose()


def test_a_fresh_idle_chain_makes_no_block_under_the_quiet_rule() -> None:
    """Held (``_head_certify``'s genesis guard, which no earlier test needed): with
    ``quiet_results_root`` set, genesis's results root (the empty tree's, what a node
    passes at height 0) is not the quiet one; without the guard every replica took
    genesis for a parent with events and an idle new chain committed an empty block 1.
    Here four replicas stay at height 0 with no timer; the control is the first
    transaction, committed with the one empty block that certifies it."""
    net = Net(events_at=frozenset())
    net.tick(60_000)
    assert [d.committed_height() for d in net.disks] == [0, 0, 0, 0]
    assert all(node.deadline_ms() is None for node in net.nodes)
    net.nodes[2].submit(b"trade-1")  # control
    net.run()
    net.tick(60_000 + BATCH_DELAY_MS)
    net.tick(120_000)
    assert [d.committed_height() for d in net.disks] == [2, 2, 2, 2]


# --- 3. a malformed id in a result escapes the SDK instead of failing over ---------------


@pytest.mark.parametrize(
    "served",
    [
        "whole",
        "filtered",
        "honest",  # control
    ],
)
async def test_a_result_id_of_the_wrong_length_sends_the_sdk_to_the_next_node(
    served: str,
) -> None:
    """ADR 0026 builds a whole block's results tree on the client from what the node
    sends. A transaction's id is checked against its certified bytes first
    (``_block_tx``), but an event's ``tx_id`` goes straight into ``result_leaf``, whose
    ``Writer.fixed`` raises ``EncodeError`` for anything but 32 bytes. That is a
    ``ValueError``, not ``BadResponseError``: ``_call`` and ``_blocks`` fail over only on
    the latter, so one hostile validator ends an auditor's ``block()``, ``blocks()`` and
    ``events()`` with a codec error (every retry of the application meets it again while
    that node is current) instead of the SDK reading the honest next node. Scenario:
    node 0 sends block 3 (its FAILED_DEADLINE proven by block 4) with the event's id cut
    to 5 bytes; node 1 is honest. The filtered path has the same hole for a shown
    result's id (``verify_party_positions`` builds its leaf before the receipt checks the
    id). The control: both nodes honest. Fixed: ``_result_id`` refuses an id of another
    length with BadResponseError, for both paths."""
    if served == "filtered":
        pinned, certs = pinned_tls(NET)
        chain, txf = Chain(pinned), TxFactory(pinned)
        chain.commit([txf.signed(txf.dvp(expiry_ms=_far(), deadline_ms=_far()))])
        chain.commit([])
        height, honest = 1, _filtered(chain, "BANK01", 1)
        bad = pb.BlockInfo()
        bad.CopyFrom(honest)
        bad.results[0].tx_id = b"\x01" * 5
        c = _stubbed(pinned, certs, "BANK01", observer=False)
    else:
        chain, certs = _expired()
        chain.commit([])
        height, honest = 3, block_pb(chain.node(), chain.store.block(3))  # type: ignore[arg-type]
        bad = pb.BlockInfo()
        bad.CopyFrom(honest)
        if served == "whole":
            bad.events[0].tx_id = b"\x01" * 5
        c = _stubbed(chain.net, certs, "AUDITOR")
    stubs = [_Stub(lambda method, req: bad), _Stub(lambda method, req: honest)]
    c._stub = lambda i: stubs[i]  # type: ignore[method-assign]
    try:
        view = await asyncio.wait_for(c.block(height), 5)
    finally:
        await c.aclose()
    assert view.height == height and view.results_proven
    if served == "filtered":
        assert [t.tx_id for t in view.transactions] == [bytes(honest.results[0].tx_id)]
    else:
        assert [e.code for e in view.events] == [ResultCode.FAILED_DEADLINE]


# --- 4. a filtered read of an events-only head waits for a proof it never carries -------


@pytest.mark.parametrize(
    "who",
    [
        "BANK01",
        "AUDITOR",  # control: a whole read, which does need block 4
    ],
)
async def test_a_filtered_read_of_an_events_only_head_goes_at_once(who: str) -> None:
    """Low. ``_proven_head`` now holds back a head with events for everyone (it held back
    only a head with transactions for filtered readers). A filtered copy never carries
    events (``filtered_block_pb``) and, for a block with no transactions, no proof
    (``_committed_positions``: nothing to hide): BANK01's GetBlock of head 3 (idle but for
    its FAILED_DEADLINE) waits for block 4 (up to 2 s, then sent as it would have been),
    and its block stream stays a block behind, for nothing. Consensus makes block 4 at
    once, so it costs a round; while it cannot (a view change, a stalled quorum) every
    party's reads of the head wait. The control: the auditor's whole read, which waits
    because it does need block 4's header. Fixed: ``_proven_head(whole)`` holds an
    events-only head back from whole reads only."""
    chain, _ = _expired()
    node = chain.node()
    svc = LedgerService(node, {})
    read = asyncio.ensure_future(_get_block(svc, Caller(who, observer=who == "AUDITOR"), 3))
    try:
        await asyncio.sleep(0.3)
        answered = read.done()
        chain.commit([])
        node._head_changed.set()
        info = await asyncio.wait_for(read, 5)
    finally:
        read.cancel()
    assert info.height == 3 and info.filtered == (who == "BANK01")
    assert answered == (who == "BANK01")


@pytest.mark.parametrize("tamper", ["unrecorded", "extra_event", "event_id", "party_leaf"])
async def test_a_proven_whole_block_binds_flags_ids_count_and_party_leaf(tamper: str) -> None:
    """Held: with block 4's proof attached, a node cannot flip block 1's trade to
    unrecorded (hiding it from ``events()``), add an event to block 3, relabel block 3's
    event with another instruction's id, or pass block 1's party leaf off as block 3's:
    each changes a leaf of the tree block h + 1 certifies. Control: the honest copies."""
    chain, certs = _expired()
    chain.commit([])
    node = chain.node()
    honest = {h: block_pb(node, chain.store.block(h)) for h in (1, 3)}  # type: ignore[arg-type]
    c = _stubbed(chain.net, certs, "AUDITOR", nodes=1)
    try:
        for info in honest.values():
            assert c._block_view(info).results_proven  # control
        bad = pb.BlockInfo()
        if tamper == "unrecorded":
            bad.CopyFrom(honest[1])
            assert bad.results[0].recorded
            bad.results[0].recorded = False
        else:
            bad.CopyFrom(honest[3])
        if tamper == "extra_event":
            extra = bad.events.add()
            extra.CopyFrom(bad.events[0])
            extra.position += 1
        if tamper == "event_id":
            bad.events[0].tx_id = bytes(32)
        if tamper == "party_leaf":
            bad.parties_leaf = honest[1].parties_leaf
        with pytest.raises(BadResponseError, match="certifies"):
            c._block_view(bad)
    finally:
        await c.aclose()


@pytest.mark.parametrize("events", [True, False])
def test_an_events_only_block_gets_its_certifying_block_pipelined(events: bool) -> None:
    """Held (``_certified_parent``'s events half, which no earlier test, nor the
    simulator's seed 287, needed: without it the chain only waited a commit round). Block
    2, the empty block certifying block 1's trade, has events: with its commit round
    stalled (every COMMIT vote and certificate dropped), the next leader pipelines the
    empty block 3 on block 2's prepare certificate, and the replicas vote for it, each
    telling block 2's events by its speculative results root. The control: a quiet block
    2 gets no block 3."""
    net = Net(events_at=frozenset({2} if events else ()))
    net.nodes[2].submit(b"trade-1")
    net.run()

    def no_commit(src: int, dst: int, msg: Any) -> Any:
        if isinstance(msg, Vote) and msg.phase is Phase.COMMIT:
            return None
        if isinstance(msg, QCMessage) and msg.qc.phase is Phase.COMMIT:
            return None
        return msg

    net.tamper = no_commit
    net.tick(BATCH_DELAY_MS)
    net.tick(2 * BATCH_DELAY_MS)
    assert all(n.committed_height == 1 and n._lock_parent() is not None for n in net.nodes)
    assert [n._lock_parent().certify for n in net.nodes] == [events] * 4  # type: ignore[union-attr]
    third = [m for i in range(4) for m in net.sent(i, Proposal) if m.block.height == 3]
    assert bool(third) == events
    if events:
        assert all(p.parent_cert is not None for p in third)
        assert {p.parent_cert.phase for p in third} == {Phase.PREPARE}  # type: ignore[union-attr]
        voted = {i for i in range(4) for v in net.sent(i, Vote) if v.height == 3}
        assert voted == {0, 1, 2, 3}
