"""Party-scoped access on a real 4-validator cluster (quorum 3): every Ledger call needs a
signed identity (UNAUTHENTICATED without one, or with a replayed, stale or foreign-key
one); balances, transactions, receipts and blocks go to their parties only
(PERMISSION_DENIED, or a block showing only the caller's transactions, each with a
receipt that verifies offline); an auditor and a regulator see everything; health stays
open (docs/cluster.md "Security: who reads what")."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from client import (
    AsyncLedgerClient,
    BadResponseError,
    InvalidTransactionError,
    ParticipantKey,
    PermissionDeniedError,
    Receipt,
    ResultCode,
    UnauthenticatedError,
    load_key,
    verify_receipt,
)
from client._identity import RequestSigner
from devtools.cluster import client_channel
from node.access import tx_parties
from node.settlement import SignedTx
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc
from node.wire.errors import from_trailer
from tests.cluster.harness import (
    RPC_TIMEOUT_S,
    Cluster,
    module_cluster,
)

pytestmark = pytest.mark.slow

_BALANCES = "/ledger.v1.Ledger/GetBalances"


cluster = module_cluster("access")  # 4 validators, quorum 3, one per module


@pytest.fixture(scope="module")
def trade(cluster: Cluster) -> Receipt:
    """A DvP between BANK01 (seller) and BANK02 (buyer), final with its result proof."""

    async def settle() -> Receipt:
        async with _as(cluster, "BANK01") as c:
            dvp = c.tx.dvp("BANK01", "BANK02", cluster.demo.bonds[0], 100, cluster.demo.cash, 99)
            return await c.submit(c.sign(dvp, _key(cluster, "BANK01"), _key(cluster, "BANK02")))

    return asyncio.run(settle())


def _key(c: Cluster, pid: str) -> ParticipantKey:
    return load_key(c.net.participant_key(pid))


def _node(c: Cluster, index: int) -> str:
    """The genesis id of node ``index``'s validator: what a call to it is signed for."""
    return c.net.nodes[index].id


def _as(c: Cluster, identity: str | None) -> AsyncLedgerClient:
    return AsyncLedgerClient.from_run_dir(c.net.run_dir, identity=identity)


def _raw_balances(
    c: Cluster, account: str, metadata: tuple[tuple[str, str], ...], node: int = 0
) -> None:
    with client_channel(c.net, node, identity=None) as ch:
        pb_grpc.LedgerStub(ch).GetBalances(
            pb.BalancesRequest(account=account), metadata=metadata, timeout=RPC_TIMEOUT_S
        )


# --- authentication ---------------------------------------------------------------------


async def test_a_call_without_identity_is_unauthenticated(cluster: Cluster) -> None:
    async with _as(cluster, None) as c:
        with pytest.raises(UnauthenticatedError, match="no identity"):
            await c.balances("BANK01")
        with pytest.raises(UnauthenticatedError):
            await c.head()  # status too: every Ledger call needs an identity


def test_health_stays_open_without_identity(cluster: Cluster) -> None:
    with client_channel(cluster.net, 0, identity=None) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=RPC_TIMEOUT_S
        )
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_a_replayed_request_is_refused_and_a_fresh_one_taken(cluster: Cluster) -> None:
    signer = RequestSigner(_key(cluster, "BANK01"), cluster.demo.genesis)
    md = signer.metadata(_node(cluster, 0), _BALANCES, pb.BalancesRequest(account="BANK01"))
    _raw_balances(cluster, "BANK01", md)  # negative control: the first use is taken
    with pytest.raises(grpc.RpcError) as e:
        _raw_balances(cluster, "BANK01", md)
    assert e.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "replayed" in (e.value.details() or "")


def test_a_signature_for_another_request_or_key_or_time_is_refused(cluster: Cluster) -> None:
    g = cluster.demo.genesis
    own_request = pb.BalancesRequest(account="BANK01")
    node0 = _node(cluster, 0)
    signed = RequestSigner(_key(cluster, "BANK01"), g).metadata(node0, _BALANCES, own_request)
    stale = RequestSigner(_key(cluster, "BANK01"), g, clock_ms=lambda: 1_000)
    # BANK02 signs, and the metadata claims BANK01
    by_bank02 = RequestSigner(_key(cluster, "BANK02"), g).metadata(node0, _BALANCES, own_request)
    claims_bank01 = (("ledger-participant", "BANK01"), *by_bank02[1:])
    cases = {
        "another request": ("BANK02", signed),  # signed for BANK01's balances
        "stale time": ("BANK01", stale.metadata(node0, _BALANCES, own_request)),
        "another key": ("BANK01", claims_bank01),
    }
    for what, (account, metadata) in cases.items():
        with pytest.raises(grpc.RpcError) as e:
            _raw_balances(cluster, account, metadata)
        assert e.value.code() is grpc.StatusCode.UNAUTHENTICATED, what


def test_a_call_signed_for_one_node_is_refused_by_the_others(cluster: Cluster) -> None:
    """ADR 0015: the signature names the node it is sent to, so a node's operator cannot
    replay a participant's call (a read, its per-participant budgets) at another node
    within the clock window: each node keeps only its own nonces."""
    signer = RequestSigner(_key(cluster, "BANK01"), cluster.demo.genesis)
    md = signer.metadata(_node(cluster, 0), _BALANCES, pb.BalancesRequest(account="BANK01"))
    _raw_balances(cluster, "BANK01", md, node=0)  # control: taken where it was sent
    for other in (1, 2):
        with pytest.raises(grpc.RpcError) as e:
            _raw_balances(cluster, "BANK01", md, node=other)
        assert e.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert f"another node than {_node(cluster, other)}" in (e.value.details() or "")
    # control: signed for node 1, node 1 takes it
    fresh = signer.metadata(_node(cluster, 1), _BALANCES, pb.BalancesRequest(account="BANK01"))
    _raw_balances(cluster, "BANK01", fresh, node=1)


# --- authorization ----------------------------------------------------------------------


async def test_balances_go_to_their_account_and_observers_only(cluster: Cluster) -> None:
    async with _as(cluster, "BANK01") as c:
        assert (await c.balances("BANK01")).account == "BANK01"  # negative control
        with pytest.raises(PermissionDeniedError, match="BANK01 may read only its own"):
            await c.balances("BANK02")
    for observer in ("AUDITOR", "REGULATOR", "COMPLIANCE"):
        async with _as(cluster, observer) as c:
            assert (await c.balances("BANK02")).amounts[cluster.demo.cash] > 0


async def test_a_transaction_and_its_receipt_go_to_its_parties(
    cluster: Cluster, trade: Receipt
) -> None:
    for party in ("BANK01", "BANK02", "AUDITOR"):
        async with _as(cluster, party) as c:
            status = await c.transaction(trade.tx_id)
            assert status.receipt is not None and status.receipt.tx_id == trade.tx_id
            assert (await c.receipt(trade.tx_id)).tx_id == trade.tx_id
    async with _as(cluster, "BANK03") as c:
        with pytest.raises(PermissionDeniedError, match="not a party"):
            await c.transaction(trade.tx_id)
        with pytest.raises(PermissionDeniedError, match="not a party"):
            await c.receipt(trade.tx_id)  # WaitForFinality
        with pytest.raises(PermissionDeniedError):
            await c.receipt(trade.tx_id, wait=False)


def _stream_events(c: Cluster, identity: str, raw: bytes) -> list[pb.SubmitStreamEvent]:
    req = pb.SubmitStreamRequest(correlation=7, transaction=raw, want_receipt=True)
    with client_channel(c.net, 0, identity=identity) as ch:
        return list(pb_grpc.LedgerStub(ch).SubmitStream(iter([req]), timeout=RPC_TIMEOUT_S))


async def test_a_submit_streams_outcome_goes_to_a_party_only(cluster: Cluster) -> None:
    """BANK03 relays a trade of BANK01 and BANK02 through SubmitStream: its signatures
    authorize it, so it is accepted and settles, but its outcome is the parties': an
    ``error`` event, PERMISSION_DENIED, as WaitForFinality answers (the SDK raises
    PermissionDeniedError); a party sending the same gets the final event and receipt."""
    async with _as(cluster, "BANK01") as c:
        dvp = c.tx.dvp("BANK01", "BANK02", cluster.demo.bonds[0], 7, cluster.demo.cash, 6)
        raw = c.sign(dvp, _key(cluster, "BANK01"), _key(cluster, "BANK02")).raw
    relayed = await asyncio.to_thread(_stream_events, cluster, "BANK03", raw)
    assert [e.WhichOneof("kind") for e in relayed] == ["opened", "accepted", "error"]
    error = relayed[-1].error
    assert error.status == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert "BANK03 is not a party" in error.message
    async with _as(cluster, "BANK03") as c:
        with pytest.raises(PermissionDeniedError, match="not a party"):
            await c.submit(raw)
    party = await asyncio.to_thread(_stream_events, cluster, "BANK02", raw)
    assert [e.WhichOneof("kind") for e in party] == ["opened", "accepted", "final"]
    final = party[-1].final
    assert final.code == pb.OK and final.receipt.tx_id == SignedTx.decode(raw).tx_id


async def test_a_block_shows_others_only_their_own_transactions_with_receipts(
    cluster: Cluster, trade: Receipt
) -> None:
    async with _as(cluster, "AUDITOR") as c:
        whole = await c.block(trade.height)
    assert not whole.filtered and trade.tx_id in [t.tx_id for t in whole.transactions]

    async with _as(cluster, "BANK03") as c:
        other = await c.block(trade.height)
    assert other.filtered and other.hash == whole.hash
    assert trade.tx_id not in [t.tx_id for t in other.transactions]

    async with _as(cluster, "BANK02") as c:
        mine = await c.block(trade.height)
        streamed = None
        async with asyncio.timeout(30):
            async for b in c.blocks(trade.height):
                streamed = b
                break
    assert mine.filtered and mine.hash == whole.hash
    g = cluster.demo.genesis
    own = [t for t in whole.transactions if "BANK02" in tx_parties(t.raw, g)]
    assert trade.tx_id in [t.tx_id for t in own]
    assert [t.tx_id for t in mine.transactions] == [t.tx_id for t in own]
    assert streamed is not None and streamed.transactions == mine.transactions
    for r in mine.receipts:  # each verifies offline against genesis alone
        verify_receipt(r, cluster.demo.genesis, require_result=False)
        assert r.block_hash == whole.hash


async def test_events_of_a_party_come_through_the_filtered_stream(
    cluster: Cluster, trade: Receipt
) -> None:
    async with _as(cluster, "BANK01") as c:
        async with asyncio.timeout(30):
            async for ev in c.events("BANK01", from_height=trade.height):
                assert ev.tx_id == trade.tx_id and ev.kind == "DVP"
                break


def test_the_sdk_refuses_a_tampered_filtered_block(cluster: Cluster, trade: Receipt) -> None:
    with client_channel(cluster.net, 0, identity="BANK02") as ch:
        stub = pb_grpc.LedgerStub(ch)
        info = stub.GetBlock(pb.BlockRequest(height=trade.height), timeout=RPC_TIMEOUT_S)
        other = stub.GetBlock(pb.BlockRequest(height=trade.height + 1), timeout=RPC_TIMEOUT_S)
    assert info.filtered and len(info.receipts) >= 1
    client = _as(cluster, "BANK02")
    assert client._block_view(info).filtered  # negative control: as served, it verifies

    def tampered(change: Callable[[pb.BlockInfo], None]) -> pb.BlockInfo:
        copy = pb.BlockInfo()
        copy.CopyFrom(info)
        change(copy)
        return copy

    def next_header(b: pb.BlockInfo) -> None:
        b.header = other.header

    def moved(b: pb.BlockInfo) -> None:
        b.results[0].position += 1

    def path_cut(b: pb.BlockInfo) -> None:
        b.receipts[0].tx_path.append(b"\x00" * 32)

    def result_dropped(b: pb.BlockInfo) -> None:
        del b.results[0]

    def other_code(b: pb.BlockInfo) -> None:
        b.results[0].code = pb.INSUFFICIENT_CASH

    for change in (next_header, moved, path_cut, result_dropped, other_code):
        with pytest.raises(BadResponseError):
            client._block_view(tampered(change))


async def test_the_pending_book_and_an_instruments_holders_go_to_whom_they_concern(
    cluster: Cluster,
) -> None:
    """GetPending: a pending trade to its two parties and observers; GetInstrument: the
    holders to the issuer (who pays them) and observers, anyone else its own holding."""
    bond, cash = cluster.demo.bonds[0], cluster.demo.cash
    async with _as(cluster, "BANK01") as c:
        held = (await c.balances("BANK01")).amounts[bond]
        tx = c.tx.pending_dvp("BANK01", "BANK02", bond, held + 100, cash, 777, 120)
        first = await c.submit(c.sign(tx, _key(cluster, "BANK01"), _key(cluster, "BANK02")))
        assert first.code is ResultCode.PENDING_SETTLEMENT
        assert first.tx_id in [p.tx_id for p in (await c.pending())[1]]  # negative control
    async with _as(cluster, "BANK03") as c:
        assert first.tx_id not in [p.tx_id for p in (await c.pending())[1]]
        assert [h.account for h in (await c.instrument(bond)).holders] == ["BANK03"]
    issuer = c.genesis.instrument_by_id[bond].issuer
    for staff in (issuer, "AUDITOR"):
        async with _as(cluster, staff) as c:
            holders = {h.account for h in (await c.instrument(bond)).holders}
            assert {"BANK01", "BANK02", "BANK03"} <= holders
    async with _as(cluster, "AUDITOR") as c:
        assert first.tx_id in [p.tx_id for p in (await c.pending())[1]]


# --- structured refusals (ADR 0020) -------------------------------------------------------


async def test_refusals_reach_the_sdk_as_fields(cluster: Cluster, trade: Receipt) -> None:
    """Three refusals of different kinds through the SDK, each with its reason and
    metadata: a forged transaction (admission precheck), a party-scoped read, a call
    without identity."""
    good = SignedTx.decode(cluster.txf.signed(cluster.txf.dvp(quantity=1, amount=1)))
    sigs = ((good.signatures[0][0], bytes(64)), good.signatures[1])
    forged = dataclasses.replace(good, signatures=sigs)
    async with _as(cluster, "BANK03") as c:
        with pytest.raises(InvalidTransactionError, match="BAD_SIGNATURE") as bad:
            await c.submit(forged.encode(), wait=False)
        with pytest.raises(PermissionDeniedError, match="not a party") as denied:
            await c.transaction(trade.tx_id)
    async with _as(cluster, None) as c:
        with pytest.raises(UnauthenticatedError) as unknown:
            await c.balances("BANK01")
    assert bad.value.reason == "TRANSACTION_REFUSED"
    assert bad.value.result_code is ResultCode.BAD_SIGNATURE
    assert dict(bad.value.metadata) == {"tx_id": good.tx_id.hex(), "result_code": "BAD_SIGNATURE"}
    assert denied.value.reason == "NOT_PERMITTED" and denied.value.result_code is None
    assert dict(denied.value.metadata) == {"what": "transaction", "caller": "BANK03"}
    assert unknown.value.reason == "IDENTITY_REFUSED" and unknown.value.retry_after_s is None


def test_the_details_are_a_standard_google_rpc_status(cluster: Cluster) -> None:
    """What any gRPC client reads with grpcio-status, on the raw call: the status, its
    message, an ErrorInfo of domain ledger.v1."""
    request = pb.BlockRequest(height=10**9)
    with client_channel(cluster.net, 0, identity="BANK01") as ch, pytest.raises(grpc.RpcError) as e:
        pb_grpc.LedgerStub(ch).GetBlock(request, timeout=RPC_TIMEOUT_S)
    status = rpc_status.from_call(e.value)  # type: ignore[arg-type]
    assert status is not None and status.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert status.message == e.value.details()
    got = from_trailer(e.value.code(), e.value.details(), e.value.trailing_metadata())  # type: ignore[attr-defined]
    assert got is not None and got.reason == "NOT_FOUND"
    assert got.metadata == {"what": "block", "id": str(10**9)}
