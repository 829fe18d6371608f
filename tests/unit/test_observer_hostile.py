"""Adversarial review 20c of ADR 0025's session-20 amendments (observers in the party index,
``OBSERVER_AT``, ``Registry.observers_at``, the node's ``_block_for``, ``result_paths``).
Three holes were fixed the same session (an open block stream follows the caller's role
as governance changes it; a submit stream reads a committed transaction with the
registry of its block; ``events`` takes an idle filtered block as hiding nothing), and a
fourth the next session (an idle block has no index, so no observer flag: an honest node
served a demoted auditor's idle blocks of its auditor days filtered; the registry's role
history answers now); the other tests pin what was tried and held. In-process only: a
chain of real blocks with real certificates (``tests.chain_helpers``), the real
servicer, the real SDK with stand-in stubs. No cluster.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from client import BadResponseError, PermissionDeniedError
from node.access import Caller
from node.runtime._access import Gate
from node.runtime._api import LedgerService, block_pb
from node.settlement import RecordKind, Registry, ResultCode, Role, SignedTx
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.gov_helpers import add_participant, set_roles
from tests.gov_helpers import signed as gov_signed
from tests.ledger_helpers import TxFactory, pinned_tls, shared_net
from tests.unit.test_block_reads import _Ctx
from tests.unit.test_party_index_hostile import _event_positions, _filtered, _sdk

NET = shared_net()
TRADER = frozenset({Role.TRADER})
AUDITOR = frozenset({Role.AUDITOR})


async def _get_block(svc: LedgerService, caller: Caller, height: int) -> pb.BlockInfo:
    Gate.enter(caller)
    return await svc.GetBlock(pb.BlockRequest(height=height), _Ctx())  # type: ignore[arg-type]


# --- 1. a demoted auditor's open block stream keeps serving it whole blocks -------------


async def test_a_demoted_auditors_open_block_stream_serves_it_later_blocks_filtered() -> None:
    """ADR 0025 (amendment "observers") and docs/cluster.md: "a demoted auditor reads the
    blocks of its auditor days whole and later ones filtered". AUDITOR, an observer,
    opens ``StreamBlocks`` (the SDK's ``blocks()`` / ``events()`` keep one open for as
    long as the app follows the ledger) and reads block 1 whole. Block 3 demotes it
    (SetRoles trader, the access layer now says no observer: the control, a fresh
    ``GetBlock`` of block 4 is filtered and shows none of BANK01/BANK02's trade). But
    ``StreamBlocks`` took ``current_caller()`` once, with ``observer=True``, and
    ``_block_for`` trusts ``caller.observer``: block 4, made after the demotion, comes
    down the old stream whole, with BANK01/BANK02's DvP in it, and so does every later
    block for as long as the stream stays open (no lifetime, no re-check). The same
    held for a participant whose key governance rotated out (the stream was
    authenticated once): ``test_stream_identity.py``."""
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([txf.signed(txf.dvp())])  # block 1
    chain.commit([])  # block 2 certifies it
    node = chain.node()
    svc = LedgerService(node, {})
    Gate.enter(Caller("AUDITOR", observer=True))  # what the access layer says at the open
    stream = svc.StreamBlocks(pb.StreamBlocksRequest(from_height=1), _Ctx())  # type: ignore[arg-type]
    try:
        first = await anext(stream)  # type: ignore[call-overload]
        assert first.height == 1 and not first.filtered and len(first.results) == 1
        assert (await anext(stream)).height == 2  # type: ignore[call-overload]
        chain.commit([gov_signed(pinned, set_roles(txf, "AUDITOR", TRADER))])  # block 3
        chain.commit([txf.signed(txf.dvp())])  # block 4: after the demotion
        chain.commit([])  # block 5 certifies it
        assert chain.outcomes[3].results[0].code is ResultCode.OK
        assert not Registry.of(chain.store).participant_by_id["AUDITOR"].observer
        node._head_changed.set()
        # control: a fresh read, with what the access layer says now, is filtered
        fresh = await _get_block(svc, Caller("AUDITOR", observer=False), 4)
        assert fresh.filtered and list(fresh.results) == []
        Gate.enter(Caller("AUDITOR", observer=True))  # the stream's own context
        got = {}
        for _ in range(3):
            info = await asyncio.wait_for(anext(stream), 5)  # type: ignore[call-overload]
            got[info.height] = info
        assert got[4].filtered, "block 4 (after the demotion) came down the old stream whole"
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


# --- 2. one hostile node ends an observer's events()/holders_at with a permission error --


@pytest.fixture(scope="module")
def idle_first() -> tuple[object, bytes, Chain]:
    """Block 1 idle (no transactions: no party index, no flag), block 2 a DvP
    BANK01/BANK02, block 3 empty (certifies it)."""
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


async def test_a_hostile_node_cannot_end_an_auditors_events_with_a_permission_error(
    idle_first: tuple[object, bytes, Chain],
) -> None:
    """Scenario: AUDITOR (a genesis observer) follows BANK01 with ``events("BANK01")``
    through a hostile validator. The node sends block 1, which has no transactions,
    party-filtered for AUDITOR. Since 789fe54 the SDK takes "observer" only from a party
    index leaf, and an idle block has none, so it accepts the filtered copy (ADR 0025
    "Left as it is" counts only the hidden pending-settlement events). But ``events``
    then sees ``b.filtered`` for another account and raises ``PermissionDeniedError``
    ("an observer identity reads whole blocks"), which is not a node failure: no
    failover to an honest node, and the app is told its auditor may not read BANK01.
    ``holders_at`` fails the same way (``Replay.check_root``: "a replay needs full
    blocks"). Before 789fe54 the SDK refused a filtered block for a genesis observer
    (BadResponseError: the next node). Fixed for ``events``: a filtered block whose
    certified header counts no transaction hides none, and raises nothing (``holders_at``
    still needs whole blocks). The control: the honest node's whole blocks give BANK01's
    trade."""
    pinned, certs, chain = idle_first
    honest = [_whole(chain, h) for h in (1, 2, 3)]
    hostile = [_filtered(chain, "AUDITOR", 1), *honest[1:]]
    c = _sdk(pinned, certs, "AUDITOR")  # type: ignore[arg-type]
    try:
        assert await _event_positions(c, "BANK01", honest, 1) == [0]  # control
        assert c._block_view(hostile[0]).filtered  # accepted: the SDK cannot tell
        try:
            await _event_positions(c, "BANK01", hostile, 1)
        except PermissionDeniedError as e:
            pytest.fail(f"one hostile node's idle filtered block ended events(): {e}")
    finally:
        await c.aclose()


# --- 3. a demoted auditor's idle blocks of its auditor days come filtered (honest node) --


async def test_a_demoted_auditor_reads_all_blocks_of_its_auditor_days_whole() -> None:
    """ADR 0025: "a demoted auditor therefore still reads the blocks of its auditor days
    whole". Block 1 idle and block 2 a DvP, both while AUDITOR is an auditor; block 3
    demotes it; block 4 certifies. Block 2 is whole by its leaf's flag; block 1 has no
    transactions, so no index and no flag: the node asks the registry's role history
    (review 20c found it served filtered, hiding an idle block's pending-settlement
    events of AUDITOR's auditor days). Controls: the idle block 4, after the demotion,
    and block 1 for a trader that never observed are filtered."""
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([])
    chain.commit([txf.signed(txf.dvp())])
    chain.commit([gov_signed(pinned, set_roles(txf, "AUDITOR", TRADER))])
    chain.commit([])
    chain.commit([])
    assert "AUDITOR" in Registry.of(chain.store).observers_at(1)
    svc = LedgerService(chain.node(), {})
    now = Caller("AUDITOR", observer=False)
    assert not (await _get_block(svc, now, 2)).filtered
    assert not (await _get_block(svc, now, 1)).filtered, "block 1 of its auditor days"
    assert (await _get_block(svc, now, 4)).filtered, "idle block 4, after the demotion"
    assert (await _get_block(svc, Caller("BANK01", observer=False), 1)).filtered


# --- held: observers_at(h) is the registry execution used at h; the rebuild is exact -----


def _observers(reg: Registry) -> frozenset[str]:
    return frozenset(p for p in reg.participant_ids if reg.participant_by_id[p].observer)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_observers_at_is_the_registry_after_each_block_and_a_fresh_node_rebuilds_exactly(
    seed: int,
) -> None:
    """Random governance sequences: several SetRoles of one participant in one block
    (undone, redone, flipped twice), additions with and without an observer role, a
    change in the block of the addition, SetRoles of a participant before its addition
    (UNKNOWN_ACCOUNT) and after, a genesis observer that is also an admin demoted and
    restored, blocks with no governance and idle blocks. After each block the observers
    the registry holds are snapshotted; at the end ``observers_at(h)`` restricted to the
    participants at h equals each snapshot (no off-by-one at h itself), and a fresh node
    (nothing kept) works every block's index out again and ends the certified results
    tree with it (else ``block_parties`` halts it), each leaf's flag the snapshot's."""
    rng = random.Random(seed)
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    pool = ["AUDITOR", "REGULATOR", "BANK03", "BANK04", "BANK05", "NEW01", "NEW02", "NEW03"]
    added: set[str] = set()
    snap: dict[int, frozenset[str]] = {}
    for _ in range(10):
        txs: list[bytes] = []
        kind = rng.random()
        if kind < 0.1:
            pass  # idle
        else:
            for _ in range(rng.randint(0, 5)):
                pid = rng.choice(pool)
                if pid.startswith("NEW") and pid not in added and rng.random() < 0.5:
                    roles = rng.choice([TRADER, AUDITOR, frozenset({Role.REGULATOR})])
                    txs.append(gov_signed(pinned, add_participant(txf, pid, roles=roles)))
                    added.add(pid)
                else:
                    roles = rng.choice([TRADER, AUDITOR, frozenset({Role.COMPLIANCE})])
                    txs.append(gov_signed(pinned, set_roles(txf, pid, roles)))
            if rng.random() < 0.8:
                txs.insert(rng.randint(0, len(txs)), txf.signed(txf.dvp()))
        chain.commit(txs)
        h = chain.store.head().height
        snap[h] = _observers(Registry.of(chain.store))
    chain.commit([])
    reg = Registry.of(chain.store)
    for h, expected in snap.items():
        at = reg.observers_at(h) & frozenset(reg.participants_at(h))
        assert at == expected, (seed, h, at ^ expected)
    writes = [
        k for o in chain.outcomes.values() for k in o.records if k[0] == RecordKind.OBSERVER_AT
    ]
    assert len(writes) == len(set(writes))
    node = chain.node()
    for h, expected in snap.items():
        sb = chain.store.block(h)
        assert sb is not None
        index = node.block_parties(sb)  # halts (raises) if the rebuild is not execution's
        assert not node.halted
        if any(not r.event for r in sb.results):
            for p in reg.participants_at(h):
                assert index.observer(p) == (p in expected), (seed, h, p)


# --- held: result paths in a block whose results tree has events after its transactions --


async def test_result_paths_with_events_after_the_transactions_are_accepted_and_bound() -> None:
    """Block 1: a pending DvP BANK01 -> BANK02 whose seller is short. Block 2: BANK03
    delivers to BANK01 (position 0) and a DvP BANK02 -> BANK01 (position 1); the pending DvP
    settles at the end of block 2: its results tree is 2 transactions, 1 event, then the
    party index's leaf (leaf_count 4 > tx_count + 1). The honest filtered block is
    accepted with its result paths for BANK01 and BANK02; a node claiming another size
    (3, or 5..8) cannot make the party leaf or any result path lead to the root."""
    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    held = chain.store.balance("BANK01", pinned.bonds[0])
    pend = txf.signed(txf.pending(quantity=held + 100, amount=5_000))
    chain.commit([pend])
    assert chain.outcomes[1].results[0].code is ResultCode.PENDING_SETTLEMENT
    deliver = txf.signed(txf.transfer("BANK03", "BANK01", 100, instrument=pinned.bonds[0]))
    chain.commit([deliver, txf.signed(txf.dvp("BANK02", "BANK01"))])
    chain.commit([])
    res = chain.outcomes[2].results
    assert [r.event for r in res] == [False, False, True]
    assert res[2].tx_id == SignedTx.decode(pend).tx_id and res[2].code is ResultCode.OK

    for who, positions in (("BANK01", [0, 1]), ("BANK02", [1])):
        info = _filtered(chain, who, 2)
        assert info.parties_root_proof.leaf_count == 4
        c = _sdk(pinned, certs, who)
        try:
            view = c._block_view(info)
            assert [t.position for t in view.transactions] == positions
            for size in (3, 5, 6, 7, 8):
                bad = pb.BlockInfo()
                bad.CopyFrom(info)
                bad.parties_root_proof.leaf_count = size
                with pytest.raises(BadResponseError):
                    c._block_view(bad)
        finally:
            await c.aclose()


# --- 4. SubmitStream reads a transaction with the registry at the head, not its block's --


class _Requests:
    def __init__(self, reqs: list[pb.SubmitStreamRequest]) -> None:
        self._reqs = reqs

    def __aiter__(self) -> object:
        return self._gen()

    async def _gen(self) -> object:
        for r in self._reqs:
            yield r
        await asyncio.sleep(3600)  # the client keeps the stream open


class _StreamCtx(_Ctx):
    def add_done_callback(self, cb: object) -> None:
        pass


async def test_a_participant_added_later_is_not_given_an_earlier_receipt_by_submit_stream() -> None:
    """09399b0: a participant added at block k reads only the public transactions of an
    earlier block (GetTransaction and WaitForFinality pass the block's height to
    ``may_read_tx``; the control). Block 1: BANK01 transfers cash to BANK99, not yet a
    participant (UNKNOWN_ACCOUNT, recorded). Block 2 adds BANK99. BANK99, holding the
    signed bytes, sends them on ``SubmitStream``: admission passes (BANK99 is known now),
    the node answers ALREADY_COMMITTED, and the session's ``may_read`` (bound in
    ``LedgerService.SubmitStream`` as ``may_read_tx(caller, raw, registry)``, no height)
    admits BANK99, so the final event gives it the block, position and code, and the
    receipt, of a transaction from before it existed, which its filtered block 1 does
    not show and GetTransaction refuses. Low: BANK99 holds the bytes already."""
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    far = int(time.time() * 1000) + 3_600_000  # admission checks expiry on the wall clock
    raw = txf.signed(txf.transfer("BANK01", "BANK99", 5, expiry_ms=far))
    chain.commit([raw])
    assert chain.outcomes[1].results[0].code is ResultCode.UNKNOWN_ACCOUNT
    chain.commit([gov_signed(pinned, add_participant(txf, "BANK99"))])
    chain.commit([])
    node = chain.node()
    svc = LedgerService(node, {})
    tid = SignedTx.decode(raw).tx_id
    bank99 = Caller("BANK99", observer=False)
    Gate.enter(bank99)
    from tests.unit.test_block_reads import _Refused

    with pytest.raises(_Refused):  # control: by id, refused (its block's registry)
        await svc.GetTransaction(pb.TransactionRequest(tx_id=tid), _Ctx())  # type: ignore[arg-type]
    req = pb.SubmitStreamRequest(correlation=1, transaction=raw, want_receipt=True)
    Gate.enter(bank99)
    events = svc.SubmitStream(_Requests([req]), _StreamCtx())  # type: ignore[arg-type]
    got = []
    try:
        async with asyncio.timeout(10):
            async for ev in events:  # type: ignore[attr-defined]
                got.append(ev)
                if ev.WhichOneof("kind") in ("final", "error"):
                    break
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    last = got[-1]
    assert last.WhichOneof("kind") == "error", f"BANK99 was given block 1's receipt: {last}"
