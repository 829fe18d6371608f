"""Real gRPC validators that lie (review 32): TLS servers pinned by genesis, as the SDK
dials nodes, whose Ledger methods answer with whatever bytes a test gives, unparsed. The
SDK under test is the real one: channel, stubs, decoding and failover."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import grpc
import grpc.aio

from client import AsyncLedgerClient, Endpoint
from node.genesis import Genesis
from node.keyfiles import cert_pin
from node.netconfig import node_name
from node.wire import ledger_pb2 as pb
from tests.ledger_helpers import shared_net
from tests.tls_helpers import _make_ca, _make_node_cert, _pem_cert, _pem_key

__all__ = ["Answer", "Liars"]

# What a method answers to a request's bytes: the answer's bytes, or for a stream a list.
Answer = Callable[[bytes], bytes | list[bytes]]
_METHODS = pb.DESCRIPTOR.services_by_name["Ledger"].methods_by_name


class Liars:
    """One node per dict of ``answers`` (method name -> Answer), node i on validator i's
    pinned certificate at 127.0.0.1 (``async with``). ``client()`` is an SDK client whose
    endpoints are these nodes, in order; ``asked[i]`` counts node i's calls per method."""

    def __init__(self, answers: Sequence[dict[str, Answer]]) -> None:
        net = shared_net()
        ca = _make_ca("liar", datetime.now(UTC))
        n = len(net.genesis.validators)
        assert len(answers) <= n, "one node per validator of the shared network"
        made = [_make_node_cert(ca, node_name(i, n), "127.0.0.1") for i in range(n)]
        validators = tuple(
            replace(v, tls_cert_sha256=cert_pin(c))
            for v, (_, c) in zip(net.genesis.validators, made, strict=True)
        )
        self.genesis: Genesis = replace(net.genesis, validators=validators)
        self.certs = b"".join(_pem_cert(c) for _, c in made)
        self.names = [node_name(i, n) for i in range(len(answers))]
        self.asked: list[dict[str, int]] = [{} for _ in answers]
        self.servers: list[grpc.aio.Server] = []
        self.ports: list[int] = []
        for i, node_answers in enumerate(answers):
            server = grpc.aio.server(options=[("grpc.max_send_message_length", 64 << 20)])
            handlers = {m: self._handler(i, m, a) for m, a in node_answers.items()}
            server.add_generic_rpc_handlers(
                [grpc.method_handlers_generic_handler("ledger.v1.Ledger", handlers)]
            )
            creds = grpc.ssl_server_credentials([(_pem_key(made[i][0]), _pem_cert(made[i][1]))])
            self.ports.append(server.add_secure_port("127.0.0.1:0", creds))
            self.servers.append(server)

    def _handler(self, i: int, method: str, answer: Answer) -> grpc.RpcMethodHandler:
        def count() -> None:
            self.asked[i][method] = self.asked[i].get(method, 0) + 1

        async def unary(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            count()
            out = answer(request)
            return out if isinstance(out, bytes) else out[0]

        async def streaming(
            request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
        ) -> AsyncIterator[bytes]:
            count()
            out = answer(request)
            for raw in [out] if isinstance(out, bytes) else out:
                yield raw

        if _METHODS[method].server_streaming:
            return grpc.unary_stream_rpc_method_handler(streaming)
        return grpc.unary_unary_rpc_method_handler(unary)

    async def __aenter__(self) -> Liars:
        for s in self.servers:
            await s.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for s in self.servers:
            await s.stop(None)

    def client(self) -> AsyncLedgerClient:
        eps = [
            Endpoint(f"127.0.0.1:{p}", name) for p, name in zip(self.ports, self.names, strict=True)
        ]
        return AsyncLedgerClient(eps, tls_certs=self.certs, genesis=self.genesis)
