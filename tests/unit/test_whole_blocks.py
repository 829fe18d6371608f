"""ADR 0026 on a real node: an events-only block is certified by a block after it, a node
sends a whole block with the proof of its results (and holds back a head with
transactions or events until it has one), and the SDK checks that proof."""

from __future__ import annotations

import asyncio

import pytest

from client import BadResponseError
from node.access import Caller
from node.genesis import DemoNetwork, demo_genesis
from node.runtime._access import Gate
from node.runtime._api import LedgerService, block_pb
from node.runtime._metrics import Metrics
from node.runtime._node import Node, wall_ms
from node.settlement import QUIET_RESULTS_ROOT, ResultCode, precheck
from node.store import MemoryStore
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory, pinned_tls, shared_net
from tests.patience import HANG_S
from tests.unit.test_block_reads import _Ctx
from tests.unit.test_party_index_hostile import _sdk

NET = shared_net()
JUMP_MS = 60_000  # the node's clock, once block 1 is committed: past the deadline


@pytest.fixture(scope="module")
def solo() -> DemoNetwork:
    return demo_genesis(validators=1, quorum=1, seed=b"whole-blocks")


async def _settled(node: Node, height: int) -> None:
    """Wait until ``node`` has committed ``height`` and made no block for 0.3 s."""
    async with asyncio.timeout(HANG_S):
        while node.store.head().height < height:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)


async def test_a_node_certifies_the_events_of_a_block_without_transactions(
    solo: DemoNetwork,
) -> None:
    """A one-validator node: block 1 holds a pending DvP short of bonds, deadline in 30 s.
    Its clock then jumps past the deadline, so the empty block 2 that certifies block 1
    ends the DvP FAILED_DEADLINE (an event, no transaction). Block 3 follows to certify
    that event, and nothing after it: the chain is idle again. Before ADR 0026 the chain
    stopped at block 2, its event certified by no block."""
    committed = [False]

    def clock() -> int:
        return wall_ms() + (JUMP_MS if committed[0] else 0)

    node = Node(
        solo.genesis, 0, solo.validator_keys[0], MemoryStore(solo.genesis), Metrics(), clock=clock
    )
    node.start()
    try:
        txf = TxFactory(solo)
        held = node.store.balance("BANK01", solo.bonds[0])
        raw = txf.signed(
            txf.pending(
                quantity=held + 100,
                amount=5_000,
                deadline_ms=wall_ms() + 30_000,
                expiry_ms=wall_ms() + 30_000,
            )
        )
        await node.submit(raw, precheck(solo.genesis, raw).tx_id)
        # Block 1 is proposed at once (the first transaction after idleness); block 2
        # waits the batch delay, by which time the clock has jumped.
        async with asyncio.timeout(30):
            while node.store.head().height < 1:
                await asyncio.sleep(0)
        committed[0] = True
        await _settled(node, 3)
        assert node.store.head().height == 3
        b1, b2, b3 = (node.store.block(h) for h in (1, 2, 3))
        assert b1 is not None and b2 is not None and b3 is not None
        assert [r.code for r in b1.results] == [ResultCode.PENDING_SETTLEMENT]
        assert [(r.event, r.code) for r in b2.results] == [(True, ResultCode.FAILED_DEADLINE)]
        assert b3.results == ()  # quiet: nothing more to certify
        assert node.store.block(4) is None
    finally:
        node.stop()
        node.close()


def _expired(idle: int = 2) -> tuple[Chain, bytes]:
    """Block 1 a pending DvP BANK01 -> BANK02 short of bonds, deadline genesis + 2.5 s,
    then ``idle`` blocks without transactions: block 3 holds its FAILED_DEADLINE (blocks
    are a second apart from genesis)."""
    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    g = pinned.genesis.genesis_time_ms
    held = chain.store.balance("BANK01", pinned.bonds[0])
    chain.commit(
        [txf.signed(txf.pending(quantity=held + 100, amount=5_000, deadline_ms=g + 2_500))]
    )
    assert chain.outcomes[1].results[0].code is ResultCode.PENDING_SETTLEMENT
    for _ in range(idle):
        chain.commit([])
    assert [r.event for r in chain.outcomes[3].results] == [True]
    return chain, certs


def test_a_whole_block_carries_its_proof_once_the_next_is_committed() -> None:
    """``block_pb``: block 3 (events) has no proof while it is the head, and block 4's
    header and certificate with its results tree's last leaf once block 4 is committed."""
    chain, _ = _expired()
    node = chain.node()
    head = chain.store.block(3)
    assert head is not None
    assert not block_pb(node, head).HasField("parties_root_proof")
    chain.commit([])
    info = block_pb(chain.node(), head)
    assert info.HasField("parties_root_proof") and info.parties_leaf
    assert info.parties_root_proof.leaf_count == 2  # its event and the party leaf


def test_a_node_holds_back_a_head_with_events_or_transactions() -> None:
    """``_proven_head``: for a whole read, block 3's event makes it wait for block 4 (as
    block 1's trade does for block 2); a filtered copy of it shows no event and, with no
    transaction, needs no proof (review 22); a quiet head goes at once (nothing will
    follow it)."""
    chain, _ = _expired()
    node = chain.node()
    svc = LedgerService(node, {})
    assert (svc._proven_head(True), svc._proven_head(False)) == (2, 3)
    chain.commit([])  # block 4: quiet
    assert chain.outcomes[4].results == ()
    svc = LedgerService(chain.node(), {})
    assert (svc._proven_head(True), svc._proven_head(False)) == (4, 4)


async def test_a_whole_block_stream_waits_for_the_proof_of_a_head_with_events() -> None:
    """An observer's StreamBlocks from block 3 (the head, with an event) sends nothing
    until block 4 is committed; then block 3 with its proof."""
    chain, _ = _expired()
    node = chain.node()
    svc = LedgerService(node, {})
    Gate.enter(Caller("AUDITOR", observer=True))
    stream = svc.StreamBlocks(pb.StreamBlocksRequest(from_height=3), _Ctx())  # type: ignore[arg-type]
    try:
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.2)
        assert not first.done()
        chain.commit([])
        node._head_changed.set()  # what the node's commit does: wake the waiting streams
        info = await asyncio.wait_for(first, 5)
        assert info.height == 3 and info.HasField("parties_root_proof")
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_the_sdk_checks_a_whole_blocks_state_root_and_its_next_header() -> None:
    """A whole block's state root after it and the next header it is proven by: a node
    that changes either is refused; a quiet last block comes unproven, and the quiet
    results root is the empty results list and party index's."""
    chain, certs = _expired()
    chain.commit([])
    c = _sdk(chain.net, certs, "AUDITOR")
    node = chain.node()
    try:
        honest = block_pb(node, chain.store.block(3))  # type: ignore[arg-type]
        assert c._block_view(honest).results_proven  # control
        moved = pb.BlockInfo()
        moved.CopyFrom(honest)
        moved.state_root = bytes(32)
        with pytest.raises(BadResponseError, match="state root"):
            c._block_view(moved)
        other = pb.BlockInfo()
        other.CopyFrom(honest)
        other.parties_root_proof.header = block_pb(
            node, chain.store.block(2)
        ).parties_root_proof.header  # type: ignore[arg-type]
        with pytest.raises(BadResponseError, match="child"):
            c._block_view(other)
        unproven = pb.BlockInfo()
        unproven.CopyFrom(honest)
        unproven.ClearField("parties_root_proof")
        with pytest.raises(BadResponseError, match="without the proof"):
            c._block_view(unproven)  # it shows an event: it must come proven
        last = c._block_view(block_pb(node, chain.store.block(4)))  # type: ignore[arg-type]
        assert not last.results_proven and not last.events and not last.transactions
        assert chain.outcomes[4].results_root == QUIET_RESULTS_ROOT
        assert chain.outcomes[3].results_root != QUIET_RESULTS_ROOT  # its event
    finally:
        await c.aclose()


async def test_the_sdk_refuses_results_labelled_out_of_their_leaf_order() -> None:
    """The results tree binds each code to its leaf, not the position a node labels it
    with: an event moved to position 0 (the transaction's) would show the auditor the
    wrong index for it. Refused; the control is the honest block 1 and block 3."""
    chain, certs = _expired()
    chain.commit([])
    c = _sdk(chain.net, certs, "AUDITOR")
    node = chain.node()
    try:
        for h, field in ((1, "results"), (3, "events")):
            honest = block_pb(node, chain.store.block(h))  # type: ignore[arg-type]
            assert c._block_view(honest).results_proven  # control
            moved = pb.BlockInfo()
            moved.CopyFrom(honest)
            getattr(moved, field)[0].position += 1
            with pytest.raises(BadResponseError, match="leaf order"):
                c._block_view(moved)
    finally:
        await c.aclose()
