"""Honest answers larger than the SDK's receive cap are read in pages (review 32).

At the node's limits the reference data (PARTICIPANTS_MAX participants and
INSTRUMENTS_MAX instruments with the longest ids) and the reserve attestations
(BACKINGS_MAX instruments with ATTESTATIONS_KEPT of the largest records) are larger than
RECEIVE_MESSAGE_BYTES_MAX (5 MiB then, the cap of the SDK's channel): every node's honest
answer was refused RESOURCE_EXHAUSTED by the client's own gRPC, so no SDK client, CLI
command or console could read them. Now both are paged (node/runtime/_pages.py,
client/_pages.py) and the SDK merges the pages into the answer it returned before.

The largest answers are built by a real node from the records governance and attestations
write (one block holding them all: 10,000 AddParticipant, 10,000 AddInstrument and 16,000
AttestReserves transactions would take minutes to execute here), served by the node's
real client port (TLS, identity gate, handlers) in this process, and read by the real SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_status.rpc_status import GRPC_DETAILS_METADATA_KEY

from client import AsyncLedgerClient, BadResponseError, Endpoint, ParticipantKey
from client._answers import decode
from client._limits import (
    ANSWER_PAGE_BYTES,
    ANSWER_PAGES_MAX,
    PAGE_RESTARTS_MAX,
    RECEIVE_MESSAGE_BYTES_MAX,
)
from client._pages import read_pages
from node.access import Caller
from node.config import (
    ANSWER_PAGE_BYTES_MIN,
    ATTESTATIONS_KEPT,
    BACKINGS_MAX,
    ID_BYTES_MAX,
    INSTRUMENTS_MAX,
    PARTICIPANTS_MAX,
    PENDING_MAX,
    REPO_LAPSES_PER_BLOCK_MAX,
    RESERVE_BILLS_MAX,
    U64_MAX,
)
from node.core import encode_block, encode_qc
from node.genesis import DemoNetwork, demo_genesis
from node.keyfiles import cert_pin
from node.netconfig import node_name
from node.runtime import Node
from node.runtime._access import Gate
from node.runtime._api import LedgerService, reference_pb
from node.runtime._handlers import add_service
from node.runtime._node import wall_ms
from node.runtime._pages import Page, PageError, StalePageError, fill, page_of, paged, token
from node.runtime._reads import ReadBudget
from node.runtime._server import new_client_server
from node.settlement import (
    Bill,
    BlockContext,
    Instrument,
    InstrumentKind,
    Participant,
    RecordKind,
    Registry,
    ReserveRules,
    ResultCode,
    Role,
    apply_block,
    precheck,
)
from node.settlement._kyc_rules import KYC_TIER_MAX
from node.settlement._reserve import (
    CustodyAttestation,
    ReserveAttestation,
    _key,
    attestation_records,
    reserve_attestations,
)
from node.wire import ledger_pb2 as pb
from node.wire.errors import Details
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory
from tests.tls_helpers import _make_ca, _make_node_cert, _pem_cert, _pem_key
from tests.unit.test_block_reads import _Ctx, _node, _Refused


def _ident(k: int, tag: str) -> str:
    """The ``k``th id of a kind, as long as ids go."""
    head = f"{tag}{k:06d}"
    return head + "X" * (ID_BYTES_MAX - len(head))


@dataclasses.dataclass
class Largest:
    """A one-validator network at its limits, its node and the certificate it serves."""

    net: DemoNetwork
    node: Node
    key_pem: bytes
    cert_pem: bytes


def _genesis(net: DemoNetwork, cert: Any) -> tuple[DemoNetwork, list[Instrument]]:
    """``net`` pinning ``cert``, with BACKINGS_MAX reserve-backed cash tokens of the
    longest ids (genesis alone may back an instrument)."""
    g = net.genesis
    issuer = next(p for p in g.participants if Role.CASH_ISSUER in p.roles)
    usd = next(i for i in g.instruments if i.kind is InstrumentKind.CASH)
    backed = len(g.reserves) + len(g.custody)
    cash = [
        Instrument(_ident(k, "C"), InstrumentKind.CASH, issuer.id, usd.currency)
        for k in range(BACKINGS_MAX - backed)
    ]
    validators = (dataclasses.replace(g.validators[0], tls_cert_sha256=cert_pin(cert)),)
    genesis = dataclasses.replace(
        g,
        validators=validators,
        instruments=(*g.instruments, *cash),
        reserves=(*g.reserves, *(ReserveRules(c.id) for c in cash)),
    )
    return dataclasses.replace(net, genesis=genesis), cash


def _records(net: DemoNetwork, cash: list[Instrument]) -> dict[bytes, bytes | None]:
    """What governance writes to fill the registry to PARTICIPANTS_MAX and
    INSTRUMENTS_MAX (every participant with every role, funds with every term, each with
    a SetMaxSupply's attestation), and ATTESTATIONS_KEPT reserve attestations of
    RESERVE_BILLS_MAX bills on every backed cash token: the records' own encoders."""
    g = net.genesis
    key = g.participants[0].public_key
    people = [
        Participant(_ident(k, "P"), key, frozenset(Role), KYC_TIER_MAX)
        for k in range(PARTICIPANTS_MAX - len(g.participants))
    ]
    usd = next(i for i in g.instruments if i.kind is InstrumentKind.CASH)
    pay = cash[0]  # the longest id a fund's payment cash can have
    funds = [
        Instrument(
            _ident(k, "F"),
            InstrumentKind.FUND,
            people[k].id,
            usd.currency,
            max_supply=U64_MAX,
            payment_cash=pay.id,
            paying_agent=people[-1 - k].id,
            issue_date="2026-01-01",
            distribution_day=28,
        )
        for k in range(INSTRUMENTS_MAX - len(g.instruments))
    ]
    attested = {i.id: (U64_MAX, b"\xff" * 32) for i in (*g.instruments, *funds)}
    reg = Registry.from_values(g, [*g.participants, *people], [*g.instruments, *funds], attested)
    records: dict[bytes, bytes | None] = dict(reg.source._records)  # type: ignore[attr-defined]
    bills = tuple(Bill("912797AB1", "2099-12-31", U64_MAX) for _ in range(RESERVE_BILLS_MAX))
    # A record does not hold its cash token's id (its key does): ATTESTATIONS_KEPT of them,
    # encoded once each, serve every token (16,000 encodings took seconds of the set-up).
    raw = [
        ReserveAttestation("", k, b"\xff" * 32, U64_MAX, people[0].id, U64_MAX, bills).encode()
        for k in range(ATTESTATIONS_KEPT)
    ]
    for c in (*g.reserves_by_cash, *(c.id for c in cash)):
        for k in range(ATTESTATIONS_KEPT):
            records[_key(RecordKind.RESERVES, c, U64_MAX - k)] = raw[k]
    return records


@pytest.fixture(scope="module")
def largest() -> Iterator[Largest]:
    base = demo_genesis(validators=1, quorum=1, seed=b"review32-pages", backing=True)
    ca = _make_ca("pages", datetime.now(UTC))
    key, cert = _make_node_cert(ca, node_name(0, 1), "127.0.0.1")
    net, cash = _genesis(base, cert)
    chain = Chain(net)
    store = chain.store
    block = chain.next_block([])
    ctx = BlockContext(block.height, block.time_ms)
    out = apply_block(store, [], ctx)
    out.records.update(_records(net, cash))
    out.supplies.update({i: U64_MAX for i in Registry.of(store).instrument_by_id})
    store.commit_block(block.hash, encode_block(block), encode_qc(chain.qc(block)), ctx, out)
    node = chain.node()
    try:
        yield Largest(net, node, _pem_key(key), _pem_cert(cert))
    finally:
        node.close()


@contextlib.asynccontextmanager
async def _served(largest: Largest, ledger: LedgerService | None = None) -> AsyncIterator[int]:
    """The node's client port as ``run`` builds it (TLS, identity gate, handlers)."""
    node = largest.node
    server = new_client_server()
    gate = Gate(node.registry, wall_ms, largest.net.genesis.validators[0].id)
    service = pb.DESCRIPTOR.services_by_name["Ledger"]
    add_service(server, ledger or LedgerService(node, {}), service, gate)
    creds = grpc.ssl_server_credentials([(largest.key_pem, largest.cert_pem)])
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


@contextlib.asynccontextmanager
async def _client(largest: Largest, port: int, who: str) -> AsyncIterator[AsyncLedgerClient]:
    net = largest.net
    c = AsyncLedgerClient(
        [Endpoint(f"127.0.0.1:{port}", node_name(0, 1))],
        tls_certs=largest.cert_pem,
        genesis=net.genesis,
        identity=ParticipantKey(who, net.participant_keys[who]),
        # Pages of megabytes built and checked on the loop the server shares, beside the
        # other worker: the default 2 s per call timed out on a page in CI (session 35).
        rpc_timeout_s=30,
    )
    try:
        yield c
    finally:
        await c.aclose()


class _Counting(LedgerService):
    """The node's servicer, counting the pages it served per method, and the refusals."""

    def __init__(self, node: Node, **kw: Any) -> None:
        super().__init__(node, {}, **kw)
        self.pages: dict[str, int] = {}
        self.refused = 0

    async def _count(self, method: str, request: Any, context: Any) -> Any:
        try:
            answer = await getattr(super(), method)(request, context)
        except BaseException:
            self.refused += 1
            raise
        self.pages[method] = self.pages.get(method, 0) + 1
        return answer

    async def GetReference(self, request: Any, context: Any) -> Any:
        return await self._count("GetReference", request, context)

    async def GetAttestations(self, request: Any, context: Any) -> Any:
        return await self._count("GetAttestations", request, context)


@pytest.mark.slow
async def test_the_largest_reference_data_is_read_whole(largest: Largest) -> None:
    """10,000 participants with every role and 10,000 instruments, every id 64 bytes:
    5.13 MB unpaged, 98% of the SDK's cap of review 32 (5 MiB; 7 MiB since session 33).
    The SDK reads it in two pages (the node's real read budget makes the second wait its
    hint) and returns what the unpaged answer holds."""
    whole = reference_pb(largest.node, Caller("AUDITOR", observer=True))
    assert ANSWER_PAGE_BYTES < whole.ByteSize() <= RECEIVE_MESSAGE_BYTES_MAX
    ledger = _Counting(largest.node)
    async with _served(largest, ledger) as port, _client(largest, port, "AUDITOR") as c:
        ref = await c.reference()
    assert ledger.pages == {"GetReference": 2}
    assert ledger.refused >= 1  # the second page waited out the budget's hint
    assert [p.id for p in ref.participants] == [p.id for p in whole.participants]
    assert [i.id for i in ref.instruments] == [i.id for i in whole.instruments]
    assert ref.supplies == {i.id: i.supply for i in whole.instruments}
    assert len(ref.participants) == PARTICIPANTS_MAX and len(ref.instruments) == INSTRUMENTS_MAX


def _roomy(node: Node) -> _Counting:
    """A servicer whose read budget does not pace these reads (the budget is not what
    is tested here; the test above meets it)."""
    return _Counting(node, reads=ReadBudget(node.clock_ms, rate_per_s=10**9, burst=10**9))


@pytest.mark.slow
async def test_the_largest_attestations_are_read_whole_in_pages(largest: Largest) -> None:
    """BACKINGS_MAX reserve-backed cash tokens, each with ATTESTATIONS_KEPT attestations
    of RESERVE_BILLS_MAX bills: 35.8 MB, seven times the SDK's cap of review 32 (five times
    the 7 MiB of session 33). ``attestations()``
    reads it in 9 pages and returns every instrument and record of the unpaged answer."""
    node = largest.node
    ledger = _roomy(node)
    async with _served(largest, ledger) as port, _client(largest, port, "AUDITOR") as c:
        height, backed = await c.attestations()
    assert ledger.pages == {"GetAttestations": 9}
    Gate.enter(Caller("AUDITOR", observer=True))
    whole = await LedgerService(node, {}).GetAttestations(pb.AttestationsRequest(), _Ctx())  # type: ignore[arg-type]
    assert whole.ByteSize() > 4 * RECEIVE_MESSAGE_BYTES_MAX
    assert height == whole.height and len(backed) == BACKINGS_MAX
    assert [b.instrument for b in backed] == [b.instrument for b in whole.instruments]
    assert [b.supply for b in backed] == [b.supply for b in whole.instruments]
    got = [a.encode() for b in backed for a in b.attestations]
    assert got == [a.record for b in whole.instruments for a in b.attestations]
    assert len(got) == BACKINGS_MAX * ATTESTATIONS_KEPT


@pytest.mark.slow
async def test_control_unpaged_the_largest_attestations_never_reach_the_sdk(
    largest: Largest,
) -> None:
    """What every SDK client met before (and an old client's request still meets): the
    honest node's one-message answer is refused by the client's own channel."""
    served = _served(largest, _roomy(largest.node))
    async with served as port, _client(largest, port, "AUDITOR") as c:
        req = pb.AttestationsRequest()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await c._stub(0).GetAttestations(
                req, timeout=120, metadata=c._md(0, "GetAttestations", req)
            )
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (refused.value.details() or "")


async def test_attestations_go_out_as_stored_without_decoding(
    largest: Largest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node sends each attestation record as it is stored: decoding and encoding again
    the largest answer (1,000 instruments of 16 records of 100 bills) cost 7 s of the
    loop's CPU on LMDB, consensus's loop (session 36). The control: what goes out is the
    stored bytes, which are the attestations' encodings (the SDK decodes them)."""
    node, cash = largest.node, max(largest.net.genesis.reserves_by_cash)
    Gate.enter(Caller("AUDITOR", observer=True))
    service, req = LedgerService(node, {}), pb.AttestationsRequest(instrument=cash)
    stored = attestation_records(node.store, cash, custody=False)
    encoded = [a.encode() for a in reserve_attestations(node.store, cash)]
    assert [raw for _, raw in stored] == encoded and len(stored) == ATTESTATIONS_KEPT

    def refused(*_: Any) -> None:
        raise AssertionError("an attestation record decoded to be served")

    for kind in (ReserveAttestation, CustodyAttestation):
        monkeypatch.setattr(kind, "decode", refused)
    (got,) = (await service.GetAttestations(req, _Ctx())).instruments  # type: ignore[arg-type]
    assert [(a.as_of_ms, a.record) for a in got.attestations] == stored


# --- a page's bounds (node/runtime/_pages.py) ----------------------------------------------


def _entry(k: int) -> tuple[str, Message]:
    return "participants", pb.ReferenceParticipant(id="x" * 38)  # 40 bytes


def _page_entries(bytes_max: int, count: int = 10_000, offset: int = 0) -> tuple[int, int]:
    """(entries on the page, where the next starts) of an answer of ``count`` 40-byte
    entries, each 42 bytes on the wire with its tag and length."""
    base = pb.Reference(height=7)  # 2 bytes; a next_page_token adds 14
    got, after = fill(base, count, Page(0, offset, bytes_max), _entry)
    return len(got), after


def test_a_page_holds_entries_up_to_its_size_exactly() -> None:
    """A page of 2 + 14 + 42 k bytes holds k entries; one byte less, k - 1; always one."""
    k = 1_600
    assert _page_entries(16 + 42 * k) == (k, k)
    assert _page_entries(16 + 42 * k - 1) == (k - 1, k - 1)  # the boundary's control
    assert _page_entries(16 + 42 * k, offset=k) == (k, 2 * k)
    assert _page_entries(1) == (1, 1)  # a page smaller than one entry still holds it
    assert _page_entries(0, count=5) == (5, 5)  # unpaged: every entry
    assert _page_entries(16 + 42 * k, count=k + 3, offset=k) == (3, k + 3)


def test_a_page_size_is_raised_to_the_minimum_and_a_token_is_checked() -> None:
    assert page_of(1, b"", 9) == Page(9, 0, ANSWER_PAGE_BYTES_MIN)
    assert page_of(0, b"", 9) == Page(9, 0, 0)
    assert page_of(ANSWER_PAGE_BYTES_MIN * 2, token(9, 5), 9) == Page(
        9, 5, ANSWER_PAGE_BYTES_MIN * 2
    )
    assert page_of(1, token(3, 5), 9).version == 3  # the caller refuses it as stale
    for size, raw in ((0, token(9, 5)), (1, b"\0" * 11), (1, token(9, 0))):
        with pytest.raises(PageError):
            page_of(size, raw, 9)
    with pytest.raises(PageError, match="past the answer"):
        _page_entries(100, count=5, offset=6)


def test_a_continuation_of_a_changed_answer_is_stale() -> None:
    """The node's version moved after the first page: refused; at the same version the
    page is served (the control)."""
    with pytest.raises(StalePageError):
        paged(pb.Reference(), 10, Page(3, 4, 10**6), 4, _entry)
    msg = paged(pb.Reference(), 10, Page(4, 4, 10**6), 4, _entry)
    assert len(msg.participants) == 6 and not msg.next_page_token


# --- one read, one state: the version a continuation must match -------------------------


async def _commit(node: Node, *raws: bytes) -> int:
    """Submit ``raws`` to the running one-validator node; the height they committed at."""
    height = node.store.head().height
    await asyncio.gather(*(node.submit(r, precheck(node.genesis, r).tx_id) for r in raws))
    async with asyncio.timeout(60):
        while node.store.head().height == height or node.replica.mempool:
            await asyncio.sleep(0.01)
    return node.store.head().height


async def test_trades_keep_a_read_going_and_a_mint_makes_it_start_again() -> None:
    """Blocks of DvPs change nothing a paged answer shows: a continuation cut before them
    is served after them (a read by heights would be refused on every busy chain). A
    mint changes a supply the reference shows: the same continuation is then refused
    ABORTED with PAGE_STALE, naming the block."""
    net = demo_genesis(validators=1, quorum=1, seed=b"review32-pages-live")
    node = await _node(net, blocks=1, txs=2)
    try:
        txf = TxFactory(net, now_ms=node.clock_ms())
        svc = LedgerService(node, {})
        Gate.enter(Caller("AUDITOR", observer=True))
        stale = token(node.paged_version, 1)
        request = pb.ReferenceRequest(page_bytes_max=1, page_token=stale)
        before = node.store.head().height
        assert await _commit(node, *(txf.signed(txf.dvp()) for _ in range(3))) > before
        page = await svc.GetReference(request, _Ctx())  # type: ignore[arg-type]
        assert len(page.participants) == len(net.genesis.participants) - 1  # the control
        bond = net.bonds[0]
        mint = txf.signed(txf.mint(instrument=bond, to="BANK04"))
        await _commit(node, mint)
        record = node.store.tx_record(precheck(net.genesis, mint).tx_id)
        assert record is not None and record.code is ResultCode.OK
        minted = record.height
        assert node.paged_version == minted
        with pytest.raises(_Refused) as refused:
            await svc.GetReference(request, _Ctx())  # type: ignore[arg-type]
        e = refused.value
        assert e.code is grpc.StatusCode.ABORTED
        assert e.details is not None and e.details.reason == "PAGE_STALE"
        assert e.details.metadata == {"since": str(minted)}
        fresh = pb.ReferenceRequest(page_bytes_max=1)  # the read again, from its first page
        again = await svc.GetReference(fresh, _Ctx())  # type: ignore[arg-type]
        assert len(again.participants) == len(net.genesis.participants)
    finally:
        node.stop()
        node.close()


# --- the SDK's side: pages merged, bounded, restarted (client/_pages.py) ----------------


def _stale() -> grpc.aio.AioRpcError:
    details = Details("PAGE_STALE", {"since": "9"})
    status = details.status(grpc.StatusCode.ABORTED, "changed")
    trailing = grpc.aio.Metadata((GRPC_DETAILS_METADATA_KEY, status.SerializeToString()))
    return grpc.aio.AioRpcError(grpc.StatusCode.ABORTED, grpc.aio.Metadata(), trailing, "changed")


def _book(pages: list[Any]) -> Any:
    """A node answering the pages in turn (an exception is raised), and what it was asked."""
    asked: list[bytes] = []

    async def call(tok: bytes) -> Any:
        asked.append(tok)
        page = pages.pop(0)
        if isinstance(page, BaseException):
            raise page
        return page

    call.asked = asked  # type: ignore[attr-defined]
    return call


def _ref(height: int, ids: str, nxt: bytes = b"") -> pb.Reference:
    people = [pb.ReferenceParticipant(id=i) for i in ids]
    return pb.Reference(height=height, participants=people, admins=["A"], next_page_token=nxt)


async def test_the_sdk_merges_pages_and_starts_again_when_the_answer_changed() -> None:
    call = _book([_ref(5, "ab", b"t1"), _stale(), _ref(6, "xy", b"t1"), _ref(7, "z")])
    merged = await read_pages(call, ("participants",), "reference data")
    assert [p.id for p in merged.participants] == ["x", "y", "z"]
    assert merged.height == 7 and list(merged.admins) == ["A"] and not merged.next_page_token
    assert call.asked == [b"", b"t1", b"", b"t1"]  # the first page again after PAGE_STALE


async def test_control_the_sdk_gives_up_after_its_restarts_and_on_other_refusals() -> None:
    pages: list[Any] = []
    for _ in range(PAGE_RESTARTS_MAX + 1):
        pages += [_ref(5, "a", b"t"), _stale()]
    with pytest.raises(grpc.aio.AioRpcError):
        await read_pages(_book(pages), ("participants",), "reference data")
    aborted = grpc.aio.AioRpcError(
        grpc.StatusCode.ABORTED, grpc.aio.Metadata(), grpc.aio.Metadata(), "no details"
    )
    call = _book([_ref(5, "a", b"t"), aborted, _ref(5, "a")])
    with pytest.raises(grpc.aio.AioRpcError):  # not PAGE_STALE: the node's fault, next node
        await read_pages(call, ("participants",), "reference data")
    assert len(call.asked) == 2


async def test_a_lying_nodes_pages_are_bounded() -> None:
    endless = [_ref(5, "a", b"t") for _ in range(ANSWER_PAGES_MAX + 1)]
    with pytest.raises(BadResponseError, match="pages"):
        await read_pages(_book(endless), ("participants",), "reference data")
    just = [*(_ref(5, "a", b"t") for _ in range(ANSWER_PAGES_MAX - 1)), _ref(5, "a")]
    assert len((await read_pages(_book(just), ("participants",), "r")).participants) == 16
    back = [_ref(5, "a", b"t"), _ref(4, "b")]
    with pytest.raises(BadResponseError, match="height 4 after one at 5"):
        await read_pages(_book(back), ("participants",), "reference data")
    half = "x" * (PARTICIPANTS_MAX // 2)
    too_many = [_ref(5, half, b"t"), _ref(5, half, b"t"), _ref(5, "x")]
    with pytest.raises(BadResponseError, match=f"more than {PARTICIPANTS_MAX} participants"):
        await read_pages(_book(too_many), ("participants",), "reference data")


# --- a block's events: pending instructions' and repo lapses' (review 32) ------------------


def test_a_block_with_every_pending_event_and_every_lapse_is_read() -> None:
    """A block's events are one per pending instruction resolved (PENDING_MAX) and one
    per repo lapsed (REPO_LAPSES_PER_BLOCK_MAX) at most: the SDK's bound was PENDING_MAX
    alone, so such a block was refused as a bad response from every honest node and
    ``blocks()``, ``events()`` and ``holders_at`` stopped at it. One event more than both
    is still refused (the control)."""
    event = pb.TransactionResult(tx_id=b"\xff" * 32, code=71, height=9, position=1, recorded=False)
    most = PENDING_MAX + REPO_LAPSES_PER_BLOCK_MAX
    full = pb.BlockInfo(events=[event] * most).SerializeToString()
    assert len(decode("GetBlock", full).events) == most
    with pytest.raises(BadResponseError):
        decode("GetBlock", pb.BlockInfo(events=[event] * (most + 1)).SerializeToString())
