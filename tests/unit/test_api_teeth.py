"""Teeth for the client port's handlers (session 23, mutation sweep G):
node/runtime/_api.py, the ``ledger.v1.Ledger`` servicer. Each test here fails on a
hand-made mutant that the earlier tests let through (tests/mutation/known.py, "Session 23:
sweep G"), and passes on the code as it is; each shows a rule both ways, the caller it
serves beside the caller it refuses or filters. The servicer runs in-process over a
MemoryStore ledger of real blocks, with the caller set as the Gate sets it and a stand-in
context; no cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from types import SimpleNamespace
from typing import Any, NoReturn

import grpc
import pytest

from node.access import Caller
from node.config import (
    ADMISSION_DEADLINE_DEFAULT_MS,
    BLOCK_STREAMS_PER_CONNECTION_MAX,
    ID_BYTES_MAX,
    SUBMIT_STREAMS_PER_CONNECTION_MAX,
    TIMELINE_SPAN_MAX,
    WAIT_TIMEOUT_DEFAULT_MS,
    WAIT_TIMEOUT_MAX_MS,
    WAITERS_PER_CONNECTION_MAX,
)
from node.runtime import Metrics, Node
from node.runtime import _api as api
from node.runtime._access import Gate
from node.runtime._api import LedgerService
from node.runtime._timeline import Step, Timeline
from node.settlement import Registry, Role, SignedTx
from node.store import MemoryStore
from node.wire import ledger_pb2 as pb
from tests import freeze_helpers, lock_helpers
from tests.chain_helpers import Chain
from tests.gov_helpers import set_roles
from tests.gov_helpers import signed as gov_signed
from tests.ledger_helpers import TxFactory, run_block, shared_net
from tests.patience import HANG_S
from tests.repo_helpers import RepoTx
from tests.reserve_helpers import attest_custody, attest_reserves, backed_net
from tests.unit.test_client_api_hostile import _Aborted, _Ctx
from tests.unit.test_whole_blocks import _expired

NET = backed_net()
BOND, OTHER_BOND, CASH = NET.bonds[0], NET.bonds[1], NET.cash
OBSERVERS = ("REGULATOR", "COMPLIANCE", "AUDITOR")
REPOS = (("BANK01", "BANK02"), ("BANK01", "BANK06"), ("BANK04", "BANK05"))


@pytest.fixture(scope="module")
def svc() -> LedgerService:
    """The servicer over one block (the network's first bond custody-backed by CSD, its
    cash reserve-backed by CASHCO): a pending DvP BANK01 -> BANK02 (the seller short), a
    lock of BANK04's bonds for BANK05, a freeze of BANK03, both attestations, and the
    repos ``REPOS`` (R1, R2, R3: borrower, lender)."""
    txf, store = TxFactory(NET), MemoryStore(NET.genesis)
    repos = RepoTx(NET, txf.t0 + 1_000)
    out = run_block(
        store,
        txf.signed(txf.pending(quantity=10**9, amount=5_000)),
        lock_helpers.lock(txf, "BANK04", 1_000, "BANK05"),
        freeze_helpers.freeze(txf, "BANK03"),
        attest_custody(txf, store.supply(BOND), txf.t0 + 500),
        attest_reserves(txf, txf.t0 + 500, deposits=10**12),
        *(repos.open(f"R{i}", *pair) for i, pair in enumerate(REPOS, start=1)),
    )
    assert [int(r.code) for r in out.results if not r.event] == [22] + [80] * 7
    timeline = Timeline(16)
    for h in (1, 2, 3):
        for step in Step:
            timeline.mark(h, step, at_us=1_000 * h + int(step))
    node: Any = SimpleNamespace(
        store=store,
        genesis=NET.genesis,
        metrics=Metrics(),
        registry=lambda: Registry.of(store),
        clock_ms=lambda: 0,
        timeline=timeline,
        index=0,
        paged_version=0,
    )
    return LedgerService(node, {})


async def _call(svc: LedgerService, method: str, req: Any, who: str) -> Any:
    """``method``'s answer to ``who`` (an observer if its role is one), or the refusal's
    status code."""
    Gate.enter(Caller(who, observer=who in OBSERVERS))
    try:
        return await getattr(svc, method)(req, _Ctx())
    except _Aborted as e:
        return e.code


# --- what each caller is shown -----------------------------------------------------------


async def test_freezes_go_to_the_frozen_account_and_observers(svc: LedgerService) -> None:
    async def seen(who: str) -> list[str]:
        got = await _call(svc, "GetFreezes", pb.FreezesRequest(), who)
        return [f.account for f in got.freezes]

    assert await seen("BANK03") == ["BANK03"]  # the frozen account itself
    assert await seen("REGULATOR") == ["BANK03"]  # and the observers
    assert await seen("AUDITOR") == ["BANK03"]
    assert await seen("BANK04") == []  # another participant is not told of it


async def test_a_pending_trade_goes_to_its_seller_buyer_and_observers(svc: LedgerService) -> None:
    async def seen(who: str) -> list[tuple[str, str]]:
        got = await _call(svc, "GetPending", pb.PendingRequest(), who)
        return [(i.seller, i.buyer) for i in got.instructions]

    for who in ("BANK01", "BANK02", "COMPLIANCE"):
        assert await seen(who) == [("BANK01", "BANK02")], who
    assert await seen("BANK03") == []


async def test_a_lock_goes_to_its_holder_beneficiary_and_observers(svc: LedgerService) -> None:
    async def seen(who: str, party: str = "") -> list[tuple[str, str]]:
        got = await _call(svc, "GetLocks", pb.LocksRequest(party=party), who)
        return [(rec.holder, rec.beneficiary) for rec in got.locks]

    lock = [("BANK04", "BANK05")]
    assert await seen("BANK04") == await seen("BANK05") == await seen("AUDITOR") == lock
    assert await seen("BANK06") == []
    # ``party`` filters what the caller may read: either end names the lock ...
    assert await seen("BANK04", party="BANK05") == lock
    assert await seen("BANK05", party="BANK04") == lock
    assert await seen("REGULATOR", party="BANK05") == lock
    # ... and another name leaves it out, for an observer too; naming a party reads
    # nothing a caller may not read without it
    assert await seen("REGULATOR", party="BANK06") == []
    assert await seen("BANK06", party="BANK04") == []


async def test_attestations_go_to_the_issuer_custodian_and_observers(
    svc: LedgerService,
) -> None:
    async def seen(who: str) -> list[tuple[str, bool]]:
        got = await _call(svc, "GetAttestations", pb.AttestationsRequest(), who)
        return [(i.instrument, i.custody) for i in got.instruments]

    both = sorted([(BOND, True), (CASH, False)])
    assert await seen("REGULATOR") == both
    assert await seen("CSD") == [(BOND, True)]  # the custodian of the bond
    assert await seen("TREASURY") == [(BOND, True)]  # its issuer
    assert await seen("CASHCO") == [(CASH, False)]  # the cash's issuer
    assert await seen("BANK01") == []  # a holder of both reads neither


async def test_the_reference_datas_supplies_go_where_the_attestations_go(
    svc: LedgerService,
) -> None:
    """Scenario: BANK01 holds the bond and the cash. GetAttestations refuses it their
    supply (with its own balance it tells how the rest is held), yet GetReference gave
    every participant every instrument's supply. Now each supply is in the reference data
    for exactly those GetAttestations answers about that instrument; the rest of the
    reference data (every instrument, its terms and cap) still goes to everyone."""
    store = svc._node.store
    every = {i.id for i in Registry.of(store).instrument_by_id.values()}

    async def supplies(who: str) -> dict[str, int]:
        got = await _call(svc, "GetReference", pb.ReferenceRequest(), who)
        assert {i.id for i in got.instruments} == every, who  # the reference data: all
        return {i.id: i.supply for i in got.instruments if i.HasField("supply")}

    assert await supplies("BANK01") == {}  # a holder of both reads neither
    assert await supplies("CSD") == {BOND: store.supply(BOND)}  # the bond's custodian
    assert await supplies("CASHCO") == {CASH: store.supply(CASH)}  # the cash's issuer
    # Control: an observer reads every supply, a zero one included (present, not absent:
    # the fund has none issued in this network).
    seen = await supplies("REGULATOR")
    assert seen == {i: store.supply(i) for i in every} and 0 in seen.values()


async def test_one_instruments_attestations_refuse_a_holder_and_answer_its_issuer(
    svc: LedgerService,
) -> None:
    async def ask(who: str, instrument: str) -> Any:
        return await _call(
            svc, "GetAttestations", pb.AttestationsRequest(instrument=instrument), who
        )

    got = await ask("CSD", BOND)
    assert [(i.instrument, len(i.attestations)) for i in got.instruments] == [(BOND, 1)]
    got = await ask("AUDITOR", CASH)  # one asked: that one, not every one it may read
    assert [i.instrument for i in got.instruments] == [CASH]
    assert await ask("BANK01", BOND) == grpc.StatusCode.PERMISSION_DENIED
    # an instrument no attestation backs: NOT_FOUND, even to an observer
    assert await ask("AUDITOR", OTHER_BOND) == grpc.StatusCode.NOT_FOUND


async def test_an_instruments_holders_go_to_its_issuer_and_observers_only(
    svc: LedgerService,
) -> None:
    async def holders(who: str, instrument: str = BOND) -> Any:
        got = await _call(svc, "GetInstrument", pb.InstrumentRequest(instrument=instrument), who)
        return got if isinstance(got, grpc.StatusCode) else [h.account for h in got.holders]

    everyone = [f"BANK0{i}" for i in range(1, 7)]
    assert await holders("TREASURY") == everyone  # issuer and paying agent
    assert await holders("AUDITOR") == everyone
    assert await holders("BANK02") == ["BANK02"]  # a holder: its own holding only
    assert await holders("CSD") == []  # no holding, no staff: nobody
    assert await holders("TREASURY", "NO.SUCH") == grpc.StatusCode.NOT_FOUND
    assert await holders("TREASURY", CASH) == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_observer_reads_the_balances_of_the_account_it_asks_for(
    svc: LedgerService,
) -> None:
    async def bonds(who: str, account: str) -> Any:
        got = await _call(svc, "GetBalances", pb.BalancesRequest(account=account), who)
        if isinstance(got, grpc.StatusCode):
            return got
        return {b.instrument: b.amount for b in got.balances}[BOND]

    own = await bonds("BANK04", "BANK04")
    assert own > 0
    assert await bonds("AUDITOR", "BANK04") == own  # the account's, not the auditor's own
    assert await bonds("BANK05", "BANK04") == grpc.StatusCode.PERMISSION_DENIED
    assert await bonds("AUDITOR", "BANK99") == grpc.StatusCode.NOT_FOUND


async def _repos(svc: LedgerService, who: str, **req: Any) -> Any:
    got = await _call(svc, "GetRepos", pb.ReposRequest(**req), who)
    return got if isinstance(got, grpc.StatusCode) else [r.id for r in got.repos]


async def test_a_repo_list_holds_at_most_what_the_caller_asks_and_the_node_allows(
    svc: LedgerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``limit`` bounds the answer, and REPO_LIST_MAX bounds ``limit`` (shown with a
    bound of 2): a client asking for 2**32 - 1 records is given the node's bound."""
    assert await _repos(svc, "AUDITOR") == ["R1", "R2", "R3"]  # controls: unbounded here
    assert await _repos(svc, "BANK01") == ["R1", "R2"]
    assert await _repos(svc, "AUDITOR", limit=1) == ["R1"]
    assert await _repos(svc, "AUDITOR", party="BANK01", limit=1) == ["R1"]
    assert await _repos(svc, "BANK01", limit=1) == ["R1"]
    monkeypatch.setattr(api, "REPO_LIST_MAX", 2)
    for who in ("AUDITOR", "BANK01"):
        assert await _repos(svc, who, limit=2**32 - 1) == ["R1", "R2"], who


@pytest.mark.parametrize("field", ["id", "party"])
@pytest.mark.parametrize("who", ["BANK01", "AUDITOR"])
async def test_a_repo_read_takes_only_well_formed_ids(
    svc: LedgerService, field: str, who: str
) -> None:
    """An id or party that is no ledger id is INVALID_ARGUMENT before it reaches a state
    key (where it would raise: gRPC UNKNOWN, or read as nobody's)."""
    good, shown = ("R1", ["R1"]) if field == "id" else ("BANK01", ["R1", "R2"])
    assert await _repos(svc, who, **{field: good}) == shown  # control
    for bad in ("R 1", "-R1", "R1\u00e9", "R" * (ID_BYTES_MAX + 1)):
        assert await _repos(svc, who, **{field: bad}) == grpc.StatusCode.INVALID_ARGUMENT, bad


async def test_prices_of_an_instrument_that_is_no_collateral_are_not_found(
    svc: LedgerService,
) -> None:
    """The demo genesis makes no instrument eligible collateral: every price list is
    empty, and one instrument's is NOT_FOUND, the status of an unknown id (the module's
    contract: INVALID_ARGUMENT is for requests that can never succeed)."""
    got = await _call(svc, "GetPrices", pb.PricesRequest(), "BANK01")
    assert not isinstance(got, grpc.StatusCode) and list(got.instruments) == []
    req = pb.PricesRequest(instrument=BOND)
    assert await _call(svc, "GetPrices", req, "BANK01") == grpc.StatusCode.NOT_FOUND


# --- bounds --------------------------------------------------------------------------------


async def test_block_heights_start_at_one(svc: LedgerService) -> None:
    """Height 0 is no block a client can be sent (genesis is no block): INVALID_ARGUMENT,
    where a height above the head is NOT_FOUND (the client may retry that one later)."""
    req = pb.BlockRequest
    assert await _call(svc, "GetBlock", req(height=0), "BANK01") == grpc.StatusCode.INVALID_ARGUMENT
    assert await _call(svc, "GetBlock", req(height=2), "BANK01") == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("first", "last", "answer"),
    [
        (1, 3, [1, 2, 3]),
        (2, 2, [2]),
        (1, TIMELINE_SPAN_MAX, [1, 2, 3]),  # the widest span
        (0, 3, grpc.StatusCode.INVALID_ARGUMENT),  # heights start at 1
        (3, 2, grpc.StatusCode.INVALID_ARGUMENT),  # an empty span
        (1, TIMELINE_SPAN_MAX + 1, grpc.StatusCode.INVALID_ARGUMENT),  # one height too many
        (1, 2**64 - 1, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_a_timeline_read_is_bounded(
    svc: LedgerService, first: int, last: int, answer: Any
) -> None:
    """A GetTimeline loops over its span: a client must not make it walk 2**64 heights."""
    req = pb.TimelineRequest(first_height=first, last_height=last)
    got = await _call(svc, "GetTimeline", req, "BANK01")
    assert (got if isinstance(got, grpc.StatusCode) else [b.height for b in got.blocks]) == answer


# --- by id: transactions and finality waits, on a real node ---------------------------------


class _PeerCtx(_Ctx):
    """A context on the connection ``peer`` (what a share is counted by)."""

    def __init__(self, peer: str = "ipv4:127.0.0.1:5000") -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer

    def add_done_callback(self, cb: object) -> None:
        pass


def _one_trade() -> tuple[Node, bytes]:
    """A real node (not started) whose head, block 1, holds a DvP BANK01 -> BANK02 (no
    block certifies its result yet), and the trade's id."""
    chain, txf = Chain(shared_net()), TxFactory(shared_net())
    raw = txf.signed(txf.dvp())
    chain.commit([raw])
    return chain.node(), SignedTx.decode(raw).tx_id


async def _as(who: str, call: Awaitable[Any]) -> Any:
    Gate.enter(Caller(who, observer=who in OBSERVERS))
    try:
        return await call
    except _Aborted as e:
        return e.code


async def test_a_transaction_is_pending_to_anyone_unknown_not_found_and_a_bad_id_invalid() -> None:
    node, tid = _one_trade()
    svc = LedgerService(node, {})
    held = b"\x07" * 32
    node.is_pending = lambda tid: tid == held  # type: ignore[method-assign]

    async def state(who: str, tx_id: bytes) -> Any:
        got = await _as(who, svc.GetTransaction(pb.TransactionRequest(tx_id=tx_id), _Ctx()))  # type: ignore[arg-type]
        return got if isinstance(got, grpc.StatusCode) else pb.TxState.Name(got.state)

    assert await state("BANK01", tid) == "COMMITTED"  # control: a party reads its trade
    assert await state("BANK03", tid) == grpc.StatusCode.PERMISSION_DENIED
    assert await state("BANK03", held) == "PENDING"  # an id says nothing of its body
    assert await state("BANK03", b"\x08" * 32) == grpc.StatusCode.NOT_FOUND
    for bad in (b"", tid[:31], tid + b"\x00"):
        assert await state("BANK01", bad) == grpc.StatusCode.INVALID_ARGUMENT, len(bad)


async def test_a_non_party_is_refused_a_wait_before_it_holds_one() -> None:
    """BANK03 waits, proof of result asked, for BANK01's trade of the head block (no
    block proves its result yet): refused at once, PERMISSION_DENIED, not parked until
    its timeout with a wait share held and then told DEADLINE_EXCEEDED."""
    node, tid = _one_trade()
    svc = LedgerService(node, {})

    async def wait(who: str, prove: bool) -> Any:
        req = pb.WaitRequest(tx_id=tid, prove_result=prove, timeout_ms=50)
        got = await _as(who, svc.WaitForFinality(req, _Ctx()))  # type: ignore[arg-type]
        return got if isinstance(got, grpc.StatusCode) else got.height

    assert await wait("BANK01", prove=False) == 1  # controls: the party's receipt ...
    assert await wait("BANK01", prove=True) == grpc.StatusCode.DEADLINE_EXCEEDED  # ... waits
    assert await wait("BANK03", prove=True) == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("asked_ms", "waited_ms"),
    [(1_234, 1_234), (0, WAIT_TIMEOUT_DEFAULT_MS), (2**32 - 1, WAIT_TIMEOUT_MAX_MS)],
)
async def test_a_finality_wait_is_no_longer_than_the_node_allows(
    asked_ms: int, waited_ms: int
) -> None:
    """A client's ``timeout_ms`` is capped (WAIT_TIMEOUT_MAX_MS): a wait holds a share of
    the node's waits, and 2**32 - 1 ms would hold it for 49 days."""
    node, _ = _one_trade()
    svc = LedgerService(node, {})
    asked: list[float] = []

    async def wait_for(tid: bytes, timeout_s: float, **_: bool) -> NoReturn:
        asked.append(timeout_s)
        raise TimeoutError

    node.wait_for = wait_for  # type: ignore[method-assign]
    req = pb.WaitRequest(tx_id=b"\x09" * 32, timeout_ms=asked_ms)
    assert (
        await _as("BANK01", svc.WaitForFinality(req, _Ctx()))  # type: ignore[arg-type]
        == grpc.StatusCode.DEADLINE_EXCEEDED
    )
    assert [round(s * 1000) for s in asked] == [waited_ms]


async def test_one_connection_holds_at_most_its_share_of_finality_waits() -> None:
    node, _ = _one_trade()
    svc = LedgerService(node, {})
    release = asyncio.Event()

    async def wait_for(tid: bytes, timeout_s: float, **_: bool) -> NoReturn:
        await release.wait()
        raise TimeoutError

    node.wait_for = wait_for  # type: ignore[method-assign]
    req = pb.WaitRequest(tx_id=b"\x09" * 32)
    Gate.enter(Caller("BANK01", observer=False))
    mine = _PeerCtx("ipv4:10.0.0.1:4000")
    parked = [
        asyncio.ensure_future(svc.WaitForFinality(req, mine))  # type: ignore[arg-type]
        for _ in range(WAITERS_PER_CONNECTION_MAX)
    ]
    other = asyncio.ensure_future(svc.WaitForFinality(req, _PeerCtx("ipv4:10.0.0.2:4000")))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    try:
        assert not any(t.done() for t in [*parked, other])  # every one of them parked
        async with asyncio.timeout(HANG_S):  # refused at once, not parked
            extra = await _as("BANK01", svc.WaitForFinality(req, mine))  # type: ignore[arg-type]
        assert extra == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        release.set()
        await asyncio.gather(*parked, other, return_exceptions=True)


async def test_one_connection_holds_at_most_its_share_of_submit_streams() -> None:
    node, _ = _one_trade()
    svc = LedgerService(node, {})
    Gate.enter(Caller("BANK01", observer=False))
    opened = []
    try:
        for _ in range(SUBMIT_STREAMS_PER_CONNECTION_MAX):
            events = svc.SubmitStream(_Requests(), _PeerCtx("ipv4:10.0.0.1:4000"))  # type: ignore[arg-type]
            opened.append(events)
            first = await anext(events)
            assert first.WhichOneof("kind") == "opened"
        extra = svc.SubmitStream(_Requests(), _PeerCtx("ipv4:10.0.0.1:4000"))  # type: ignore[arg-type]
        with pytest.raises(_Aborted) as refused:
            async with asyncio.timeout(HANG_S):  # refused at once, not parked
                await anext(extra)
        assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        elsewhere = svc.SubmitStream(_Requests(), _PeerCtx("ipv4:10.0.0.2:4000"))  # type: ignore[arg-type]
        opened.append(elsewhere)
        assert (await anext(elsewhere)).WhichOneof("kind") == "opened"
    finally:
        for events in opened:
            await events.aclose()  # type: ignore[attr-defined]


async def test_one_connection_holds_at_most_its_share_of_block_streams() -> None:
    """Each block stream parks a task until the client leaves: one connection holds at
    most BLOCK_STREAMS_PER_CONNECTION_MAX; another connection still opens one."""
    node, _ = _one_trade()
    svc = LedgerService(node, {})
    Gate.enter(Caller("BANK01", observer=False))
    req = pb.StreamBlocksRequest()  # blocks from now on: each stream parks

    def stream(peer: str) -> AsyncIterator[pb.BlockInfo]:
        return svc.StreamBlocks(req, _PeerCtx(peer))  # type: ignore[arg-type]

    streams = [stream("ipv4:10.0.0.1:4000") for _ in range(BLOCK_STREAMS_PER_CONNECTION_MAX)]
    streams.append(stream("ipv4:10.0.0.2:4000"))
    parked = [asyncio.ensure_future(anext(s)) for s in streams]
    try:
        await asyncio.sleep(0)
        assert not any(t.done() for t in parked)
        extra = stream("ipv4:10.0.0.1:4000")
        with pytest.raises(_Aborted) as refused:
            async with asyncio.timeout(HANG_S):  # refused at once, not parked
                await anext(extra)
        assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        for t in parked:
            t.cancel()
        await asyncio.gather(*parked, return_exceptions=True)


async def test_a_halted_node_refuses_a_submit_stream_before_opening_it() -> None:
    node, _ = _one_trade()
    svc = LedgerService(node, {})
    Gate.enter(Caller("BANK01", observer=False))
    node.fatal = "disk full"
    events = svc.SubmitStream(_Requests(), _PeerCtx())  # type: ignore[arg-type]
    try:
        with pytest.raises(_Aborted) as refused:
            await anext(events)
        assert refused.value.code is grpc.StatusCode.UNAVAILABLE
    finally:
        await events.aclose()  # type: ignore[attr-defined]


async def test_a_read_of_the_head_gives_up_waiting_for_its_proof(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GetBlock of a head with transactions waits for the block that proves it, at most
    BLOCK_PROOF_WAIT_MS (here 20 ms); then the head goes without the proof. No block
    follows here: the read must still end, not spin on a wait already over."""
    monkeypatch.setattr(api, "BLOCK_PROOF_WAIT_MS", 20)
    node, tid = _one_trade()
    svc = LedgerService(node, {})
    async with asyncio.timeout(HANG_S):
        got = await _as("BANK01", svc.GetBlock(pb.BlockRequest(height=1), _Ctx()))  # type: ignore[arg-type]
    assert [r.tx_id for r in got.results] == [tid]
    assert got.filtered and not got.result_paths  # shown, with no proof of its result yet


async def test_a_read_of_the_head_waits_for_its_proof_at_most_half_its_callers_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BLOCK_PROOF_WAIT_MS (here 60 s) is what a read of the head waits at most; a caller
    with 1 s left is answered, without the proof, after half of it: not as it gives up
    (the SDK's RPC timeout equals BLOCK_PROOF_WAIT_MS) or after. The control: with no
    deadline, or one far off, the bound is BLOCK_PROOF_WAIT_MS."""
    monkeypatch.setattr(api, "BLOCK_PROOF_WAIT_MS", 60_000)
    node, tid = _one_trade()
    svc = LedgerService(node, {})
    async with asyncio.timeout(HANG_S):  # 60 s unless the caller's deadline bounds it
        got = await _as("BANK01", svc.GetBlock(pb.BlockRequest(height=1), _DeadlineCtx(1.0)))  # type: ignore[arg-type]
    assert [r.tx_id for r in got.results] == [tid] and not got.result_paths
    assert api._proof_wait_ms(_DeadlineCtx(1.0)) == 500  # type: ignore[arg-type]
    assert api._proof_wait_ms(_DeadlineCtx(None)) == 60_000  # type: ignore[arg-type]
    assert api._proof_wait_ms(_DeadlineCtx(600.0)) == 60_000  # type: ignore[arg-type]


async def test_an_idle_blocks_readers_are_its_own_heights_observers() -> None:
    """An idle block has no party index: whether a caller reads it whole is the
    registry's role history at that block (ADR 0025). Block 2 is idle; block 3 demotes
    AUDITOR. AUDITOR still reads block 2 whole, a block of its auditor days: the change
    of block 3 counts from block 3 on. Controls: the idle block 4, after the demotion,
    and block 2 for a trader that never observed, are filtered."""
    net = shared_net()
    chain, txf = Chain(net), TxFactory(net)
    chain.commit([txf.signed(txf.dvp())])
    chain.commit([])
    chain.commit([gov_signed(net, set_roles(txf, "AUDITOR", frozenset({Role.TRADER})))])
    chain.commit([])
    chain.commit([])
    assert [int(r.code) for r in chain.outcomes[3].results if not r.event] == [80]
    svc = LedgerService(chain.node(), {})

    async def filtered(who: str, height: int) -> bool:
        Gate.enter(Caller(who, observer=False))  # as the gate has them now
        got = await svc.GetBlock(pb.BlockRequest(height=height), _Ctx())  # type: ignore[arg-type]
        return bool(got.filtered)

    assert not await filtered("AUDITOR", 2)
    assert await filtered("AUDITOR", 4)
    assert await filtered("BANK02", 2)


async def test_a_block_stream_from_height_0_sends_only_blocks_committed_from_then_on() -> None:
    net = shared_net()
    chain, txf = Chain(net), TxFactory(net)
    chain.commit([txf.signed(txf.dvp())])
    chain.commit([])  # the head, idle: nothing waits for a proof
    node = chain.node()
    svc = LedgerService(node, {})
    Gate.enter(Caller("BANK01", observer=False))
    blocks = svc.StreamBlocks(pb.StreamBlocksRequest(), _PeerCtx())  # type: ignore[arg-type]
    first = asyncio.ensure_future(anext(blocks))
    try:
        await asyncio.sleep(0.01)
        assert not first.done(), "the stream sent a block committed before it opened"
        chain.commit([])
        node._head_changed.set()  # what the node's commit does
        async with asyncio.timeout(30):
            assert (await first).height == 3
    finally:
        first.cancel()
        await blocks.aclose()  # type: ignore[attr-defined]


async def test_a_filtered_block_stream_sends_an_events_only_head_at_once() -> None:
    """Block 3, the head, holds only an event (a pending DvP's FAILED_DEADLINE). A
    filtered copy shows no events and, with no transactions, needs no proof: BANK01's
    stream sends it without waiting for block 4 (which, on a quiet network, may not come
    until the next transaction), as its GetBlock does."""
    chain, _ = _expired()
    svc = LedgerService(chain.node(), {})
    Gate.enter(Caller("BANK01", observer=False))
    blocks = svc.StreamBlocks(pb.StreamBlocksRequest(from_height=3), _PeerCtx())  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(HANG_S):
            info = await anext(blocks)
        assert info.height == 3 and info.filtered
    finally:
        await blocks.aclose()  # type: ignore[attr-defined]


async def test_a_nodes_status_lists_its_peers_not_itself() -> None:
    node, _ = _one_trade()
    links: Any = {i: SimpleNamespace(connected=i != 2) for i in (1, 2, 3)}
    svc = LedgerService(node, links)
    status = await _as("BANK01", svc.GetStatus(pb.StatusRequest(), _Ctx()))  # type: ignore[arg-type]
    assert [(p.validator, p.connected) for p in status.peers] == [(1, True), (2, False), (3, True)]
    assert (status.validator, status.height, status.peers_connected) == (0, 1, 2)


class _Judged(Exception):
    """Admission control was asked: the test has what it wanted."""


class _DeadlineCtx(_Ctx):
    def __init__(self, remaining_s: float | None) -> None:
        self._remaining_s = remaining_s

    def time_remaining(self) -> float | None:
        return self._remaining_s


@pytest.mark.parametrize(
    ("timeout_ms", "remaining_s", "judged_ms"),
    [
        (1_234, None, 1_234),  # the client's timeout_ms ...
        (1_234, 60.0, 1_234),  # ... before its gRPC deadline
        (0, 2.5, 2_500),  # the gRPC deadline when it gives none
        (0, 0.0004, 1),  # less than a millisecond left is 1 ms, not "no deadline"
        (0, None, ADMISSION_DEADLINE_DEFAULT_MS),
        (2**32 - 1, None, WAIT_TIMEOUT_MAX_MS),
    ],
)
async def test_admission_control_judges_by_the_clients_deadline(
    timeout_ms: int, remaining_s: float | None, judged_ms: int
) -> None:
    """A submission the node cannot settle within the client's deadline is refused
    (RESOURCE_EXHAUSTED, retry-after): the deadline is the request's ``timeout_ms``,
    else the call's gRPC deadline, else the default."""
    node, _ = _one_trade()
    svc = LedgerService(node, {})
    judged: list[int] = []

    def check(backlog: int, deadline_ms: int, now_ms: int) -> NoReturn:
        judged.append(deadline_ms)
        raise _Judged

    node.load.check = check  # type: ignore[method-assign]
    txf = TxFactory(shared_net())
    req = pb.SubmitRequest(transaction=txf.signed(txf.transfer()), timeout_ms=timeout_ms)
    Gate.enter(Caller("BANK01", observer=False))
    with pytest.raises(_Judged):
        await svc.Submit(req, _DeadlineCtx(remaining_s))  # type: ignore[arg-type]
    assert judged == [judged_ms]


class _Requests:
    """A submit stream's requests: none, and the client keeps the stream open."""

    def __aiter__(self) -> AsyncIterator[pb.SubmitStreamRequest]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[pb.SubmitStreamRequest]:
        await asyncio.sleep(3600)
        yield pb.SubmitStreamRequest()
