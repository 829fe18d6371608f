"""Adversarial review (session 20) of ADR 0024 (only the result proof says final) and ADR
0025 (a block's party index), merged without one. Each strict xfail pins a hole found,
with a control beside it that passes today; the rest of what was tried and held is in
the review's report. Everything runs in-process: a chain of real blocks with real
certificates (``tests.chain_helpers``), the real servicer with a stand-in context and a
scripted CPU meter, and the real ``AsyncLedgerClient`` with stand-in stubs. No cluster.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from client import (
    AsyncLedgerClient,
    BadResponseError,
    Endpoint,
    ParticipantKey,
    PermissionDeniedError,
    UnavailableError,
)
from node.access import Caller
from node.genesis import DemoNetwork
from node.runtime._access import Gate
from node.runtime._api import LedgerService, filtered_block_pb, reference_pb
from node.runtime._reads import ReadBudget
from node.settlement import RecordKind, Registry, ResultCode, Role
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory, pinned_tls, shared_net
from tests.unit.test_block_reads import _Ctx, _get, _Refused

NET = shared_net()


class _Meter:
    """The budget's wall clock (frozen: nothing refills) and a CPU meter on which every
    read costs ``read_us`` (sampled at its start and its end)."""

    def __init__(self, read_us: int) -> None:
        self._ns, self._read_us = 0, read_us

    def ms(self) -> int:
        return 1_000_000

    def cpu_ns(self) -> int:
        self._ns += self._read_us * 1_000
        return self._ns


# --- 1. parked GetBlock(head) calls all pass the read budget's check, then all charge -----


async def test_parked_reads_of_the_head_cannot_spend_the_read_budget_many_times_over() -> None:
    """Scenario: BANK01 (no observer) sends many GetBlock(h) at once while block h, the
    head, has transactions and block h + 1 is not committed yet (on a loaded chain: most
    of the time). Each call checks the caller's block-read budget (positive: no read has
    been charged yet), then waits in ``_proof_committed`` for block h + 1 (at most 2 s),
    and only then reads the block inside ``charged``. Before ADR 0025 the check and the
    charged read ran with no await between them, so on the node's one event loop a
    participant's reads were charged one after the other and the budget refused the one
    after the balance ran out. Now every parked call has already passed the check: when
    block h + 1 commits they all run back to back on the loop consensus shares, whatever
    the budget says (at most CLIENT_RPCS_MAX, 14,352 calls; with receipts built for a
    party to many trades, ~16 ms each for a 1,499-DvP block). Here each read costs 60
    ms on the meter against a burst of 100 ms: read one after another, the third is
    refused (the control); parked, all 20 were served. Fixed: a read that waited checks
    the budget again (``LedgerService._within_budget``), with no await before its charged
    read."""
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([txf.signed(txf.dvp())])  # block 1, the head, has a transaction
    node = chain.node()

    # control: once block 2 certifies block 1's proof, reads do not wait, and the third
    # one in a row finds the budget spent
    ctl_chain = Chain(pinned)
    ctl_chain.commit([txf.signed(txf.dvp())])
    ctl_chain.commit([])
    ctl = LedgerService(ctl_chain.node(), {}, reads=_budget(_Meter(60_000)))
    assert [await _get(ctl, "BANK01", 1) for _ in range(3)] == ["OK", "OK", "RESOURCE_EXHAUSTED"]

    svc = LedgerService(node, {}, reads=_budget(_Meter(60_000)))
    parked = [asyncio.ensure_future(_get(svc, "BANK01", 1)) for _ in range(20)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert not any(p.done() for p in parked)  # all waiting for block 2
    chain.commit([])
    node._head_changed.set()  # what the node's own commit does
    answers = await asyncio.wait_for(asyncio.gather(*parked), 5)
    served = answers.count("OK")
    assert served <= 2, f"{served} of 20 reads served against a budget that holds 2"


def _budget(meter: _Meter) -> ReadBudget:
    return ReadBudget(meter.ms, cpu_ns=meter.cpu_ns)


# --- 2. the SDK takes a node's GetReference word for whether its identity is an observer -


@pytest.fixture(scope="module")
def traded() -> tuple[DemoNetwork, bytes, Chain]:
    """Block 1: DvPs BANK01/BANK02 (positions 0, 2), a DvP BANK02/BANK03 (1); block 2,
    empty, certifies block 1's results and its party index."""
    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit(
        [txf.signed(txf.dvp()), txf.signed(txf.dvp("BANK02", "BANK03")), txf.signed(txf.dvp())]
    )
    chain.commit([])
    return pinned, certs, chain


def _sdk(net: DemoNetwork, certs: bytes, who: str, observer: bool = False) -> AsyncLedgerClient:
    key = ParticipantKey(who, net.participant_keys[who])
    return AsyncLedgerClient(
        [Endpoint("127.0.0.1:1", "node-00")],
        tls_certs=certs,
        genesis=net.genesis,
        identity=key,
        observer=observer,
    )


def _filtered(chain: Chain, who: str, height: int = 1) -> pb.BlockInfo:
    block = chain.store.block(height)
    assert block is not None
    return filtered_block_pb(chain.node(), block, Caller(who, observer=False))


class _Stub:
    def __init__(self, answer: Callable[[str, Any], Any]) -> None:
        self._answer = answer

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(req: Any, **kw: Any) -> Any:
            async def run() -> Any:
                return self._answer(method, req)

            return asyncio.ensure_future(run())

        return call


async def test_a_node_cannot_unmake_the_callers_observer_role_then_filter_its_blocks(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """Scenario: an auditor (AUDITOR: an observer in genesis) follows every trade with
    ``blocks()`` / ``events("BANK01")`` through a hostile validator. ADR 0025 item 4: the
    SDK refuses a filtered block when its identity is an observer, since a block
    filtered for an observer hides every other party's trades (its own leaf, honestly
    proven, lists none of them). The control: with genesis reference data the SDK
    refuses it. But ``_committed_positions`` reads the role from
    ``self.tx.reference``, and ``client.reference()`` (which an app calls to sign
    against current keys, docs/sdk.md "Governance") replaces it with the node's
    GetReference answer: one node's word, not certified (client/_reference.py). The
    hostile node answers it with AUDITOR's roles emptied (as a governance SetRoles
    would record); from then on the SDK accepted the block filtered for AUDITOR, every
    trade of BANK01/BANK02/BANK03 left out, as the whole block (review 20). Observers
    added by governance had no check at all (``known is None``). Fixed (ADR 0025,
    amendment "observers"): each participant's leaf of the party index commits to
    whether it held an observer role after the block, and the SDK refuses a filtered
    block with transactions whose proven leaf says its identity did, whatever the
    reference data says; it no longer reads the reference for this."""
    pinned, certs, chain = traded
    honest = reference_pb(chain.node(), Caller("AUDITOR", observer=True))
    lying = pb.Reference()
    lying.CopyFrom(honest)
    for p in lying.participants:
        if p.id == "AUDITOR":
            assert Role.AUDITOR.value in p.roles
            del p.roles[:]
    hidden = _filtered(chain, "AUDITOR")  # AUDITOR names no trade: an empty view, proven
    c = _sdk(pinned, certs, "AUDITOR")
    stub = _Stub(lambda m, r: lying if m == "GetReference" else hidden)
    c._stub = lambda i: stub  # type: ignore[method-assign]
    try:
        with pytest.raises(BadResponseError, match="observer"):
            c._block_view(hidden)  # control: genesis says AUDITOR is an observer
        await c.reference()  # the hostile node's reference data
        with pytest.raises(BadResponseError, match="observer"):
            c._block_view(hidden)  # the index, not the reference, says AUDITOR observed
    finally:
        await c.aclose()


async def test_a_node_cannot_make_the_caller_an_observer_and_so_deny_it_every_block(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """The other direction of the test above: the hostile node's GetReference answer
    gives BANK01 the auditor role. From then on the SDK refuses, as "an observer reads
    whole blocks", the honest filtered block of every node (the honest nodes filter:
    BANK01 is no observer on the ledger), so one node's unproven word ends BANK01's
    ``block()``, ``blocks()`` and ``events()`` everywhere until the app reads the
    reference again from another node (review 20). Fixed: the SDK takes whether its
    identity was an observer from its certified party index leaf (BANK01's says no), not
    from the reference data. The control: the same honest block is accepted with
    genesis reference data."""
    pinned, certs, chain = traded
    lying = reference_pb(chain.node(), Caller("AUDITOR", observer=True))
    for p in lying.participants:
        if p.id == "BANK01":
            p.roles.append(Role.AUDITOR.value)
    honest = _filtered(chain, "BANK01")
    c = _sdk(pinned, certs, "BANK01")
    stub = _Stub(lambda m, r: lying)
    c._stub = lambda i: stub  # type: ignore[method-assign]
    try:
        assert [t.position for t in c._block_view(honest).transactions] == [0, 2]  # control
        await c.reference()
        assert [t.position for t in c._block_view(honest).transactions] == [0, 2]
    finally:
        await c.aclose()


async def _block(svc: LedgerService, caller: Caller, height: int) -> pb.BlockInfo:
    Gate.enter(caller)
    return await svc.GetBlock(pb.BlockRequest(height=height), _Ctx())  # type: ignore[arg-type]


async def test_who_was_an_observer_at_a_block_is_the_ledgers_word_node_and_sdk_agree() -> None:
    """The fix of the two holes above, end to end (ADR 0025, amendment "observers").
    Block 1: a DvP BANK01/BANK02. Block 2: governance demotes AUDITOR (SetRoles trader),
    adds BANK77 as a regulator, and makes BANK03 an auditor and a trader again (no change
    over the block). Block 3: a DvP BANK01/BANK02; block 4 certifies it. A fresh node (no
    index kept: each one is worked out again, with ``Registry.observers_at``, and must
    end the results tree the next header certifies, or the node halts) serves AUDITOR,
    no observer now, block 1 whole (it was one then: its SDK would refuse a filtered
    copy) and block 3 filtered, which its SDK accepts; BANK77, added by governance (no
    check at all before: ``known is None``), refuses block 3 filtered for it. Only the
    two real changes are recorded (``OBSERVER_AT``)."""
    from tests.gov_helpers import add_participant, new_key, set_roles
    from tests.gov_helpers import signed as gov_signed

    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    trader = frozenset({Role.TRADER})
    chain.commit([txf.signed(txf.dvp())])
    gov = [
        set_roles(txf, "AUDITOR", trader),
        add_participant(txf, "BANK77", roles=frozenset({Role.REGULATOR})),
        set_roles(txf, "BANK03", frozenset({Role.AUDITOR})),
        set_roles(txf, "BANK03", trader),
    ]
    chain.commit([gov_signed(pinned, g) for g in gov])
    assert [r.code for r in chain.outcomes[2].results] == [ResultCode.OK] * 4
    chain.commit([txf.signed(txf.dvp())])
    chain.commit([])
    changes = sorted(k for k in chain.outcomes[2].records if k[0] == RecordKind.OBSERVER_AT)
    assert [k[1:8].rstrip(b"\0") for k in changes] == [b"AUDITOR", b"BANK77"]
    reg = Registry.of(chain.store)
    assert {"AUDITOR", "REGULATOR"} <= reg.observers_at(1) and "BANK77" not in reg.observers_at(1)
    assert "AUDITOR" not in reg.observers_at(2) and "BANK77" in reg.observers_at(2)
    assert "BANK03" not in reg.observers_at(1) | reg.observers_at(2)

    svc = LedgerService(chain.node(), {})
    auditor = Caller("AUDITOR", observer=False)  # what the access layer says now
    old, new = await _block(svc, auditor, 1), await _block(svc, auditor, 3)
    assert not old.filtered and len(old.results) == 1  # its auditor days: whole
    assert new.filtered and list(new.results) == []
    c = _sdk(pinned, certs, "AUDITOR")
    try:
        assert len(c._block_view(old).transactions) == 1
        assert c._block_view(new).transactions == ()  # no observer after block 3: accepted
        with pytest.raises(BadResponseError, match="observer"):  # control: block 1 filtered
            c._block_view(_filtered(chain, "AUDITOR", 1))
    finally:
        await c.aclose()
    regulator = AsyncLedgerClient(
        [Endpoint("127.0.0.1:1", "node-00")],
        tls_certs=certs,
        genesis=pinned.genesis,
        identity=ParticipantKey("BANK77", new_key("BANK77")),
    )
    try:
        with pytest.raises(BadResponseError, match="observer"):
            regulator._block_view(_filtered(chain, "BANK77", 3))
        assert regulator._block_view(_filtered(chain, "BANK77", 1)).transactions == ()
    finally:
        await regulator.aclose()


async def test_a_client_that_says_it_observes_refuses_an_older_block_filtered_for_it() -> None:
    """Left open by the fix above (found while building it), closed in session 21 by the
    client's ``observer=True``. Block 1: a DvP BANK01/BANK02; block 2: governance makes
    BANK03 an auditor; block 3 idle. An auditor appointed to audit the past reads block 1
    whole from an honest node (the access layer says it is an observer now: the
    control). But block 1's index says BANK03 was no observer then, which is true, so a
    client left to the certified flag alone accepts a hostile node's copy of block 1
    filtered for BANK03 (no transaction shown) as the whole block, and one of the idle
    block 3 (no index, no flag) too: the flag says who observed after block h, not who
    observes now. A client told ``observer=True`` (the app knows it audits) refuses both
    and reads the next node; it still takes the honest whole copies."""
    from tests.gov_helpers import set_roles
    from tests.gov_helpers import signed as gov_signed

    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([txf.signed(txf.dvp())])
    chain.commit([gov_signed(pinned, set_roles(txf, "BANK03", frozenset({Role.AUDITOR})))])
    chain.commit([])
    svc = LedgerService(chain.node(), {})
    now = Caller("BANK03", observer=True)
    whole = await _block(svc, now, 1)
    assert not whole.filtered and len(whole.results) == 1  # control: the honest node
    idle_whole = await _block(svc, now, 3)
    assert not idle_whole.filtered
    told, left = _sdk(pinned, certs, "BANK03", observer=True), _sdk(pinned, certs, "BANK03")
    try:
        assert len(told._block_view(whole).transactions) == 1
        assert not told._block_view(idle_whole).filtered
        for h in (1, 3):
            assert left._block_view(_filtered(chain, "BANK03", h)).filtered  # the limit
            with pytest.raises(BadResponseError, match="observer"):
                told._block_view(_filtered(chain, "BANK03", h))
    finally:
        await told.aclose()
        await left.aclose()


def test_observer_needs_an_identity() -> None:
    pinned, certs = pinned_tls(NET)
    with pytest.raises(ValueError, match="identity"):
        AsyncLedgerClient(
            [Endpoint("127.0.0.1:1", "node-00")],
            tls_certs=certs,
            genesis=pinned.genesis,
            observer=True,
        )


# --- 3. events(account) of another participant: a filtered subset, reported as all -------


class _BlockStream:
    """A StreamBlocks call answering ``infos``, then ending."""

    def __init__(self, infos: list[pb.BlockInfo]) -> None:
        self._infos = infos

    def __aiter__(self) -> AsyncIterator[pb.BlockInfo]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[pb.BlockInfo]:
        for i in self._infos:
            yield i

    def cancel(self) -> None:
        pass


async def _event_positions(
    c: AsyncLedgerClient, account: str, infos: list[pb.BlockInfo], most: int
) -> list[int]:
    """The positions of ``c.events(account)`` over a stand-in stream answering ``infos``
    (at most ``most``; the stream's end, or a refused block, ends the list)."""
    stub = _Stub(lambda m, r: None)
    stub.StreamBlocks = lambda req, **kw: _BlockStream(list(infos))  # type: ignore[attr-defined]
    c._stub = lambda i: stub  # type: ignore[method-assign]
    got: list[int] = []
    gen = c.events(account)
    try:
        while len(got) < most:
            try:  # the stand-in stream ends after its blocks; the SDK then fails over
                ev = await asyncio.wait_for(gen.__anext__(), 0.5)
            except (TimeoutError, UnavailableError, BadResponseError):
                break
            got.append(ev.position)
    finally:
        await gen.aclose()
    return got


async def test_events_of_another_account_are_not_a_silent_subset(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """Scenario: BANK01's back office calls ``events("BANK02")`` (a counterparty it
    follows; ``events`` accepts any participant id). The honest node filters each block
    for BANK01 (ADR 0025: proven complete *for BANK01*), so BANK02's DvP with BANK03
    (block 1, position 1) is not in the block view, and ``events`` yields BANK02's two
    trades with BANK01 and nothing else: no error, no flag on the event, while its
    docstring says "each committed transaction that names account". Every check passes
    because the proof is about the caller, not about ``account``. The control: the
    caller's own account gets exactly its positions. Fixed: ``events(account)`` of
    another participant raises ``PermissionDeniedError`` at the first filtered block."""
    pinned, certs, chain = traded
    infos = [_filtered(chain, "BANK01", 1), _filtered(chain, "BANK01", 2)]
    c = _sdk(pinned, certs, "BANK01")

    try:
        assert await _event_positions(c, "BANK01", infos, 3) == [0, 2]  # control: the caller's own
        with pytest.raises(PermissionDeniedError, match="filtered for BANK01"):
            await _event_positions(c, "BANK02", infos, 3)
    finally:
        await c.aclose()


# --- held, and unguarded: the result proof's size bound is what binds its position -------


def test_a_final_receipt_of_an_unrecorded_copy_cannot_borrow_the_recorded_copys_leaf() -> None:
    """Held today; pinned because nothing else guards it (no known mutant names
    ``_leaf_count``) and its docstring says the bound "only refuses nonsense early".
    Block 1 holds five transactions: at position 2 a copy of a DvP with garbage signatures
    (BAD_SIGNATURE, not recorded), at position 4 the genuine copy (OK, recorded). A
    hostile node builds a receipt of the forged copy at position 2 (its transactions
    path is genuine) whose result proof is the path of leaf 4, with ``leaf_count`` 4: in
    a tree of 4 leaves, index 2's path has the same shape as index 4's in the real tree
    of 6 (RFC 6962 verification binds a leaf's index only together with the tree's
    size), so the path leads to the certified results root. Only the bound (at least
    the block's transactions plus the party index's leaf) refuses it; without it the
    forged copy verifies as ``final``, the copy the ledger recorded under the id (ADR
    0007's claim). The control: the same receipt with the bound taken out verifies."""
    from unittest import mock

    from node import receipt as receipt_mod
    from node.merkle import MerkleTree
    from node.settlement import SignedTx, results_leaves

    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    genuine = txf.signed(txf.dvp())
    stx = SignedTx.decode(genuine)
    forged = SignedTx(stx.body, tuple((s, bytes(64)) for s, _ in stx.signatures)).encode()
    others = [txf.signed(txf.dvp()) for _ in range(3)]
    chain.commit([others[0], others[1], forged, others[2], genuine])
    chain.commit([])
    out = chain.outcomes[1]
    assert not out.results[2].recorded and out.results[4].recorded
    leaves = results_leaves(out.results, out.parties)
    base = chain.forged_receipt(1, 2)
    assert base.result_proof is not None
    borrowed = dataclasses.replace(
        base,
        code=out.results[4].code,
        result_proof=dataclasses.replace(
            base.result_proof, path=MerkleTree(leaves).path(4), leaf_count=4
        ),
    )
    with pytest.raises(receipt_mod.InvalidReceiptError, match="claims 4 results"):
        receipt_mod.verify_receipt(borrowed, pinned.genesis)
    with mock.patch.object(receipt_mod, "_leaf_count", lambda claimed, n: claimed or n + 1):
        receipt_mod.verify_receipt(borrowed, pinned.genesis)  # control: the bound is all
    assert borrowed.final and borrowed.position == 2


# --- 4. events(): a position proven shown is dropped on the node's unproven word ---------


async def test_a_node_cannot_hide_the_callers_trade_from_events_by_calling_it_unrecorded(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """ADR 0025's scenario is a bank following its trades with ``events("BANK01")``
    through a hostile validator, which left a trade out and the bank did not reconcile
    it. The party index makes the node show every position naming BANK01, but
    ``_event`` skips a transaction whose ``recorded`` flag is False ("a copy not
    recorded under its id ... is nothing the account did"), and in a filtered block that
    flag (like ``code``) was the node's word. The hostile node sent the honest filtered
    block 1 with position 0 flagged ``recorded=False``: every check passed, and
    ``events("BANK01")`` yielded position 2 only, with no error (review 20). Fixed: a
    filtered block carries, for each result it shows, the audit path of its result leaf
    to the results root block h + 1 certifies (``result_paths``); the SDK refuses a
    flag or a code the path does not prove. The control: the honest block yields both."""
    pinned, certs, chain = traded
    honest = [_filtered(chain, "BANK01", 1), _filtered(chain, "BANK01", 2)]
    c = _sdk(pinned, certs, "BANK01")

    try:
        assert await _event_positions(c, "BANK01", honest, 2) == [0, 2]  # control
        for lie in ("recorded", "code", "path"):
            lying = pb.BlockInfo()
            lying.CopyFrom(honest[0])
            assert lying.results[0].position == 0 and lying.results[0].recorded
            if lie == "recorded":
                lying.results[0].recorded = False
            elif lie == "code":
                lying.results[0].code = int(ResultCode.INSUFFICIENT_CASH)  # type: ignore[assignment]
            else:
                del lying.result_paths[-1]
            with pytest.raises(BadResponseError, match=r"certifies|paths that certify"):
                c._block_view(lying)
            # refused, not a silent subset
            assert await _event_positions(c, "BANK01", [lying, honest[1]], 2) == []
    finally:
        await c.aclose()


# --- 5. a transaction read and a filtered block disagree for a participant added later ----


async def test_a_participant_added_later_reads_no_earlier_transaction_that_named_it() -> None:
    """ADR 0025, Consequences: "a participant added by governance is shown, in a block
    before its addition, only the public transactions; one that named it before it
    existed is the observers'"; and node/access.py says the party index uses the same
    names "so a party-filtered block and a transaction read agree". Block 1: a transfer
    BANK01 -> BANK99 (refused: BANK99 is no participant yet); block 2 adds BANK99. The
    filtered block 1 shows BANK99 nothing (the control, proven by its absence proof), but
    GetTransaction of that transfer's id, by BANK99, is answered with the transaction
    and its receipt: ``may_read_tx`` names with the registry at the head, where BANK99
    now is. Low stakes (the body named BANK99), but the two reads disagreed about a
    block the index proves. Fixed: ``may_read_tx`` takes the block's height, and a
    participant added after it reads only its public transactions. The second control:
    a transfer to BANK99 in block 3, after its addition, is BANK99's to read."""
    from tests.gov_helpers import add_participant
    from tests.gov_helpers import signed as gov_signed

    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    to99 = txf.signed(txf.transfer("BANK01", "BANK99"))
    chain.commit([to99])
    chain.commit([gov_signed(pinned, add_participant(txf, "BANK99"))])
    chain.commit([txf.signed(txf.transfer("BANK01", "BANK99"))])
    chain.commit([])
    assert [r.position for r in _filtered(chain, "BANK99", 1).results] == []  # control
    assert [r.position for r in _filtered(chain, "BANK99", 3).results] == [0]
    svc = LedgerService(chain.node(), {})
    Gate.enter(Caller("BANK99", observer=False))

    async def read(height: int) -> str:
        tid = chain.outcomes[height].results[0].tx_id
        try:
            await svc.GetTransaction(pb.TransactionRequest(tx_id=tid), _Ctx())  # type: ignore[arg-type]
        except _Refused as e:
            return e.code.name
        return "OK"

    assert await read(3) == "OK"  # control: named after its addition
    assert await read(1) == "PERMISSION_DENIED"
