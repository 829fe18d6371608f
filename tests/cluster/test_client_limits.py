"""Hostile clients against a real 4-validator cluster (quorum 3): one connection cannot
take a node's finality waits, block streams or health watches from another; a TCP
connection that never starts its TLS handshake is closed; connections beyond the limit
are refused; garbage protobuf gets INVALID_ARGUMENT; a transaction that can never
succeed is refused at admission."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from client._identity import aio_interceptors, signed_channel
from devtools.cluster import signer_for
from node import health as node_health
from node.config import (
    BLOCK_STREAMS_PER_CONNECTION_MAX,
    CLIENT_CONNECTIONS_MAX,
    CLIENT_HANDSHAKE_TIMEOUT_MS,
    HEALTH_WATCHES_PER_CONNECTION_MAX,
    WAITERS_PER_CONNECTION_MAX,
)
from node.crypto import sha256
from node.netconfig import load_node_config
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc
from tests.cluster.harness import RPC_TIMEOUT_S, Cluster, module_cluster

pytestmark = pytest.mark.slow
_Code = grpc.StatusCode
_LEDGER = pb.DESCRIPTOR.services_by_name["Ledger"]


cluster = module_cluster("limits")  # 4 validators, quorum 3, one per module


@contextlib.asynccontextmanager
async def _connection(c: Cluster, i: int) -> AsyncIterator[grpc.aio.Channel]:
    """A channel on its own TCP connection (channels of one process otherwise share one)."""
    node = c.net.nodes[i]
    ch = grpc.aio.secure_channel(
        node.client_address,
        grpc.ssl_channel_credentials(c.net.tls_pinned.read_bytes()),
        options=[
            ("grpc.ssl_target_name_override", node.name),
            ("grpc.use_local_subchannel_pool", 1),
        ],
        interceptors=aio_interceptors(signer_for(c.net), node.id),  # an authenticated client
    )
    try:
        yield ch
    finally:
        await ch.close(None)


def _raw_socket(c: Cluster, i: int) -> socket.socket:
    node = c.net.nodes[i]
    return socket.create_connection((node.host, node.client_port), timeout=RPC_TIMEOUT_S)


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call  # type: ignore[misc]
    return e.value


async def _settled(ch: grpc.aio.Channel, raw: bytes) -> pb.Receipt:
    stub = pb_grpc.LedgerStub(ch)
    resp = await stub.Submit(pb.SubmitRequest(transaction=raw), timeout=RPC_TIMEOUT_S)
    return await stub.WaitForFinality(
        pb.WaitRequest(tx_id=resp.tx_id, timeout_ms=20_000), timeout=30
    )


async def _fill_waits(stub: pb_grpc.LedgerStub, parked: list[Any]) -> grpc.aio.AioRpcError:
    """Park this connection's share of finality waits and return the error of one more.

    The node starts a connection's calls concurrently, so a short probe may slip in before
    the parked ones; and gRPC may cancel some of a burst of thousands of calls before the
    node sees them: both are retried, a bounded number of times."""
    for attempt in range(50):
        parked[:] = [p for p in parked if not p.done()]
        parked.extend(
            stub.WaitForFinality(
                pb.WaitRequest(tx_id=sha256(b"%d-%d" % (attempt, k)), timeout_ms=60_000)
            )
            for k in range(WAITERS_PER_CONNECTION_MAX - len(parked))
        )
        probe = pb.WaitRequest(tx_id=sha256(b"one more"), timeout_ms=200)
        err = await _refused(stub.WaitForFinality(probe, timeout=RPC_TIMEOUT_S))
        if err.code() not in (_Code.DEADLINE_EXCEEDED, _Code.CANCELLED):
            return err
    raise AssertionError("every probe was parked: no limit per connection")


async def test_one_connection_cannot_take_every_finality_wait(cluster: Cluster) -> None:
    async with _connection(cluster, 1) as hog, _connection(cluster, 1) as other:
        parked: list[Any] = []
        try:
            err = await _fill_waits(pb_grpc.LedgerStub(hog), parked)
            assert err.code() is _Code.RESOURCE_EXHAUSTED, err
            assert "limit per connection" in (err.details() or "")
            receipt = await _settled(other, cluster.txf.signed(cluster.txf.dvp()))
            assert receipt.code_name == "OK"
        finally:
            for call in parked:
                call.cancel()


async def test_one_connection_cannot_take_every_block_stream(cluster: Cluster) -> None:
    async with _connection(cluster, 2) as hog, _connection(cluster, 2) as other:
        # Block 1 of its own for the streams to send: alone on a fresh cluster there is none
        # (it used to rely on the trades of the tests before it, and hung when run alone).
        await _settled(other, cluster.txf.signed(cluster.txf.transfer()))
        streams = [
            pb_grpc.LedgerStub(hog).StreamBlocks(pb.StreamBlocksRequest(from_height=1))
            for _ in range(BLOCK_STREAMS_PER_CONNECTION_MAX)
        ]
        try:
            for s in streams:
                assert (await s.read()).height == 1
            extra = pb_grpc.LedgerStub(hog).StreamBlocks(pb.StreamBlocksRequest(from_height=1))
            err = await _refused(extra.read())
            assert err.code() is _Code.RESOURCE_EXHAUSTED
            assert "block streams" in (err.details() or "")
            theirs = pb_grpc.LedgerStub(other).StreamBlocks(pb.StreamBlocksRequest(from_height=1))
            assert (await theirs.read()).height == 1
            theirs.cancel()
        finally:
            for s in streams:
                s.cancel()


async def test_one_connection_cannot_take_every_health_watch(cluster: Cluster) -> None:
    req = health_pb2.HealthCheckRequest(service="")
    async with _connection(cluster, 3) as hog, _connection(cluster, 3) as other:
        watches = [
            health_pb2_grpc.HealthStub(hog).Watch(req)
            for _ in range(HEALTH_WATCHES_PER_CONNECTION_MAX)
        ]
        try:
            for w in watches:
                assert (await w.read()).status == health_pb2.HealthCheckResponse.SERVING
            err = await _refused(health_pb2_grpc.HealthStub(hog).Watch(req).read())
            assert err.code() is _Code.RESOURCE_EXHAUSTED
            assert "health watches" in (err.details() or "")
            theirs = health_pb2_grpc.HealthStub(other).Watch(req)
            assert (await theirs.read()).status == health_pb2.HealthCheckResponse.SERVING
            theirs.cancel()
        finally:
            for w in watches:
                w.cancel()


def _closed_by_peer(s: socket.socket, timeout_s: float) -> bool:
    s.settimeout(timeout_s)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_connection_that_never_handshakes_is_closed(cluster: Cluster) -> None:
    timeout_s = CLIENT_HANDSHAKE_TIMEOUT_MS / 1000
    with _raw_socket(cluster, 0) as s:
        start = time.monotonic()
        assert _closed_by_peer(s, timeout_s + 5), "the silent connection stayed open"
        elapsed = time.monotonic() - start
    assert timeout_s - 0.5 <= elapsed <= timeout_s + 5


async def test_connections_beyond_the_limit_are_refused(cluster: Cluster) -> None:
    # Connections still in their handshake count: hold the limit with silent sockets.
    held = [_raw_socket(cluster, 0) for _ in range(CLIENT_CONNECTIONS_MAX)]
    try:
        with _raw_socket(cluster, 0) as beyond:
            assert _closed_by_peer(beyond, 2.0), "a connection beyond the limit was kept"
        async with _connection(cluster, 0) as ch:
            err = await _refused(pb_grpc.LedgerStub(ch).GetStatus(pb.StatusRequest(), timeout=2.0))
            assert err.code() in (_Code.UNAVAILABLE, _Code.DEADLINE_EXCEEDED)
        # The port full, the node is still alive to its orchestrator (the heartbeat: no
        # network; session 26), while readiness, the node's answer over the port, is not.
        cfg = load_node_config(cluster.net.nodes[0].config)
        assert node_health.probe(cfg, "") == "SERVING"
        ready = node_health.probe(cfg, "ledger.v1.Ledger")
        assert ready in ("UNAVAILABLE", "DEADLINE_EXCEEDED"), ready
    finally:
        for s in held:
            s.close()
    async with _connection(cluster, 0) as ch:  # the slots are free again
        status = await pb_grpc.LedgerStub(ch).GetStatus(
            pb.StatusRequest(), timeout=RPC_TIMEOUT_S, wait_for_ready=True
        )
        assert status.validator == 0


def _parses(method: MethodDescriptor, raw: bytes) -> bool:
    try:
        GetMessageClass(method.input_type).FromString(raw)
    except DecodeError:
        return False
    return True


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x02\xff\xfe"])
def test_garbage_protobuf_gets_invalid_argument(cluster: Cluster, garbage: bytes) -> None:
    node = cluster.net.nodes[1]
    creds = grpc.ssl_channel_credentials(cluster.net.tls_pinned.read_bytes())
    options = [("grpc.ssl_target_name_override", node.name)]
    every = [
        *_LEDGER.methods,
        *health_pb2.DESCRIPTOR.services_by_name["Health"].methods,
        *reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].methods,
    ]
    methods = [m for m in every if not _parses(m, garbage)]  # some bytes parse for some
    assert len(methods) >= 4
    # Signed (the garbage's own bytes): an unsigned call is refused UNAUTHENTICATED first.
    with grpc.secure_channel(node.client_address, creds, options) as plain:
        ch = signed_channel(plain, signer_for(cluster.net), node.id)
        for m in methods:
            path = f"/{m.containing_service.full_name}/{m.name}"
            with pytest.raises(grpc.RpcError) as e:
                if m.client_streaming:  # read on: SubmitStream says `opened` first
                    list(ch.stream_stream(path)(iter([garbage]), timeout=RPC_TIMEOUT_S))
                elif m.server_streaming:
                    next(iter(ch.unary_stream(path)(garbage, timeout=RPC_TIMEOUT_S)))
                else:
                    ch.unary_unary(path)(garbage, timeout=RPC_TIMEOUT_S)
            err: grpc.Call = e.value  # type: ignore[assignment]
            assert err.code() is _Code.INVALID_ARGUMENT, path
            assert f"expects a {m.input_type.full_name}" in (err.details() or ""), path


def test_what_can_never_succeed_is_refused_at_admission(cluster: Cluster) -> None:
    txf, stub = cluster.txf, cluster.stub(1)
    now = int(time.time() * 1000)
    cases = {
        "EXPIRED": txf.signed(txf.transfer(expiry_ms=now - 60_000)),
        "UNAUTHORIZED": txf.signed(txf.mint(by="BANK01")),
    }
    for code, raw in cases.items():
        with pytest.raises(grpc.RpcError) as e:
            stub.Submit(pb.SubmitRequest(transaction=raw), timeout=RPC_TIMEOUT_S)
        err: grpc.Call = e.value  # type: ignore[assignment]
        assert err.code() is _Code.INVALID_ARGUMENT and code in (err.details() or "")
        assert cluster.status(1).mempool_txs == 0
