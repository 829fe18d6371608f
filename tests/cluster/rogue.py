"""A rogue validator for cluster tests: validator k's own identity running hostile code.

The threat (DOMAIN.md, docs/consensus.md "What a replica acts on"): a bank runs modified
software with its legitimate keys. So the test stops validator k's real process and the
rogue takes its place with k's own material from the run directory:

- it *dials* every honest validator's peer port with k's TLS client certificate, so the
  acceptor authenticates it as k (the certificate genesis pins for k), and writes
  ``ledger.v1.Peer/Connect`` frames of canonical messages (``node/core/codec.py``), signed
  with k's validator key where the protocol wants a signature;
- it *listens* on k's peer port with k's server certificate, so the honest validators'
  links to k connect to it: it hears what they send k (proposals, certificates, timeouts,
  and the votes of views k leads) and can act as k's leader half.

Nothing is mocked and nothing in the validators knows about it. The rogue runs on its own
thread's event loop, so synchronous tests drive it (``run``/``spawn``) while they submit
trades through the SDK and sample the honest nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from prometheus_client.parser import text_string_to_metric_families

from node import crypto
from node.core import (
    Block,
    Message,
    Phase,
    QCMessage,
    QuorumCert,
    Timeout,
    Vote,
    decode_message,
    encode_message,
    timeout_message,
    vote_message,
)
from node.genesis import load_genesis
from node.keyfiles import cert_pin_from_pem, load_signing_key
from node.netconfig import Network, NodeConfig, load_node_config
from node.runtime._server import pinned_peers
from node.runtime._transport import (
    PEER_SERVER_OPTIONS,
    peer_channel_credentials,
    peer_channel_options,
)
from node.settlement import Genesis
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc
from node.wire import peer_pb2 as peer_pb
from node.wire import peer_pb2_grpc as peer_grpc

__all__ = ["Rogue", "StallProbe", "refused", "rss_mb", "view_changes"]

T = TypeVar("T")
_HEARD_MAX = 20_000  # messages the rogue remembers hearing (replays come from here)


@dataclass(frozen=True, slots=True)
class _Identity:
    """Validator k's own material, loaded the way its process loads it."""

    index: int
    cfg: NodeConfig
    genesis: Genesis
    key: crypto.SigningKey
    pinned: dict[int, bytes]  # every validator's pinned certificate (PEM), by index
    cert: bytes
    key_pem: bytes

    @classmethod
    def load(cls, net: Network, k: int) -> _Identity:
        cfg = load_node_config(net.nodes[k].config)
        genesis = load_genesis(cfg.genesis)
        cert, key_pem = cfg.tls_cert.read_bytes(), cfg.tls_key.read_bytes()
        pinned = pinned_peers(cfg, genesis)
        return cls(k, cfg, genesis, load_signing_key(cfg.signing_key), pinned, cert, key_pem)


class _Listener(peer_grpc.PeerServicer):
    """k's peer port: honest links to k land here; what they send is recorded."""

    def __init__(self, rogue: Rogue) -> None:
        self._rogue = rogue

    async def Connect(
        self,
        request_iterator: AsyncIterator[peer_pb.PeerFrame],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        rogue = self._rogue
        pems = list(context.auth_context().get("x509_pem_cert") or [])
        src = rogue.index_of_cert(pems[0]) if len(pems) == 1 else None
        await context.write(
            peer_pb.PeerHello(chain_id=rogue.chain_id, validator=rogue.me, committed_height=0)
        )
        async for frame in request_iterator:
            for data in frame.messages:
                rogue.heard(-1 if src is None else src, decode_message(data))


class Rogue:
    """Validator ``k`` of ``net`` on hostile code (k's real process must be stopped first)."""

    def __init__(self, net: Network, k: int) -> None:
        self.net = net
        self.id = _Identity.load(net, k)
        self.me = k
        self.chain_id = self.id.genesis.chain_id
        self.n = len(self.id.genesis.validators)
        self.honest = [i for i in range(self.n) if i != k]
        self._pins = {v.tls_cert_sha256: i for i, v in enumerate(self.id.genesis.validators)}
        self.inbox: deque[tuple[int, Message]] = deque(maxlen=_HEARD_MAX)
        self.heard_count = 0  # messages heard so far (the inbox keeps the last _HEARD_MAX)
        self.view = 0  # the highest view the honest validators' messages name
        self.commit_cert: QuorumCert | None = None  # the highest commit certificate heard
        self._news: asyncio.Event | None = None
        self._calls: dict[int, grpc.aio.StreamStreamCall[peer_pb.PeerFrame, peer_pb.PeerHello]] = {}
        self._channels: list[grpc.aio.Channel] = []
        self._server: grpc.aio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rogue", daemon=True)

    # --- life cycle (called from the test's thread) ----------------------------------------

    def start(self) -> dict[int, peer_pb.PeerHello]:
        """Listen on k's peer port, dial every honest validator as k; their hellos."""
        self._thread.start()
        return self.run(self._start())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self._close(), timeout_s=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
        """Run ``coro`` on the rogue's loop and wait for its result."""
        return self.spawn(coro).result(timeout_s)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the rogue's loop in the background."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _start(self) -> dict[int, peer_pb.PeerHello]:
        self._news = asyncio.Event()
        me = self.id
        server = grpc.aio.server(options=PEER_SERVER_OPTIONS)
        peer_grpc.add_PeerServicer_to_server(_Listener(self), server)
        creds = grpc.ssl_server_credentials(
            [(me.key_pem, me.cert)], b"".join(me.pinned.values()), require_client_auth=True
        )
        if not server.add_secure_port(f"{me.cfg.listen_host}:{me.cfg.peer_port}", creds):
            raise RuntimeError(f"validator {me.index}'s peer port is taken: stop it first")
        await server.start()
        self._server = server
        hellos = {}
        for j in self.honest:
            node = self.net.nodes[j]
            channel = grpc.aio.secure_channel(
                node.peer_address,
                peer_channel_credentials(me.pinned[j], me.key_pem, me.cert),
                peer_channel_options(node.name),
            )
            self._channels.append(channel)
            call = peer_grpc.PeerStub(channel).Connect()
            hello = await call.read()
            assert isinstance(hello, peer_pb.PeerHello), f"validator {j} refused the rogue"
            self._calls[j] = call
            hellos[j] = hello
        return hellos

    async def _close(self) -> None:
        for call in self._calls.values():
            call.cancel()
        for channel in self._channels:
            await channel.close(None)
        if self._server is not None:
            await self._server.stop(0)

    # --- what it hears ---------------------------------------------------------------------

    def index_of_cert(self, pem: bytes) -> int | None:
        return self._pins.get(cert_pin_from_pem(pem))

    def heard(self, src: int, msg: Message) -> None:
        self.inbox.append((src, msg))
        self.heard_count += 1
        view = getattr(msg, "view", None)
        if isinstance(msg, QCMessage):
            view = msg.qc.view
            if msg.qc.phase is Phase.COMMIT and (
                self.commit_cert is None or msg.qc.height > self.commit_cert.height
            ):
                self.commit_cert = msg.qc
        if view is not None:
            self.view = max(self.view, view)
        assert self._news is not None
        self._news.set()

    def heard_since(self, count: int) -> list[tuple[int, Message]]:
        """What was heard after the first ``count`` messages (as far as the inbox reaches)."""
        new = self.heard_count - count
        return list(self.inbox)[-new:] if new > 0 else []

    async def until(self, done: Callable[[], bool], timeout_s: float) -> None:
        """Wait until ``done()`` holds, re-checking as each message is heard."""
        assert self._news is not None
        async with asyncio.timeout(timeout_s):
            while not done():
                self._news.clear()
                await self._news.wait()

    # --- what it says ----------------------------------------------------------------------

    async def send(self, dst: int, messages: Iterable[Message | bytes]) -> None:
        """One frame to honest validator ``dst`` (raw bytes go out as they are)."""
        frame = peer_pb.PeerFrame(
            messages=[m if isinstance(m, bytes) else encode_message(m) for m in messages]
        )
        await self._calls[dst].write(frame)

    async def send_all(self, messages: Sequence[Message | bytes]) -> None:
        encoded = [m if isinstance(m, bytes) else encode_message(m) for m in messages]
        await asyncio.gather(*(self.send(j, encoded) for j in self.honest))

    def sign_vote(self, phase: Phase, view: int, height: int, block_hash: bytes) -> Vote:
        sig = self.id.key.sign(vote_message(self.chain_id, phase, view, height, block_hash))
        return Vote(phase, view, height, block_hash, self.me, sig)

    def sign_timeout(
        self,
        view: int,
        committed_height: int,
        commit_cert: QuorumCert | None,
        high_pqc: QuorumCert | None = None,
        pqc_block: Block | None = None,
    ) -> Timeout:
        """A timeout with whatever claims, signed with k's real key (the signature is
        genuine; only what it claims is not)."""
        pqc_view = None if high_pqc is None else high_pqc.view
        msg = timeout_message(self.chain_id, view, committed_height, pqc_view)
        return Timeout(
            view,
            committed_height,
            commit_cert,
            high_pqc,
            pqc_block,
            self.me,
            self.id.key.sign(msg),
        )


# --- observing the honest validators (from the test's thread) ------------------------------


def _pid(net: Network, i: int) -> int:
    pid = int((net.run_dir / "pids" / f"{net.nodes[i].name}.pid").read_text())
    assert Path(f"/proc/{pid}").exists(), f"validator {i} (pid {pid}) is gone"
    return pid


def rss_mb(net: Network, i: int) -> float:
    """Resident memory of validator ``i``'s process (VmRSS), in MiB."""
    for line in Path(f"/proc/{_pid(net, i)}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


def _metrics(net: Network, i: int) -> str:
    url = f"http://{net.nodes[i].host}:{net.nodes[i].metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text: str = resp.read().decode()
    return text


def refused(net: Network, i: int) -> dict[str, float]:
    """Validator ``i``'s refusals: ``ledger_consensus_refused_total`` by "kind:reason", and
    the transport's ``ledger_peer_messages_refused_total`` by reason."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(_metrics(net, i)):
        for s in family.samples:
            if not s.name.endswith("_total"):
                continue
            if family.name == "ledger_consensus_refused":
                out[f"{s.labels['kind']}:{s.labels['reason']}"] = s.value
            elif family.name == "ledger_peer_messages_refused":
                out[s.labels["reason"]] = s.value
    return out


def counter(net: Network, i: int, name: str) -> float:
    """Validator ``i``'s counter ``name`` (without ``_total``) from its /metrics."""
    for family in text_string_to_metric_families(_metrics(net, i)):
        if family.name == name:
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    raise AssertionError(f"no {name} metric")


def view_changes(net: Network, i: int) -> float:
    return counter(net, i, "ledger_view_changes")


class StallProbe:
    """Samples a validator's GetStatus round trip every ``interval_s`` on its own thread: the
    worst sample bounds how long that node's event loop was blocked (it answers GetStatus
    on the loop that handles peer messages). An upper bound: the round trip also waits for
    this test process's own threads (the rogue's loop, the SDK)."""

    def __init__(
        self,
        stub: pb_grpc.LedgerStub,
        rss: Callable[[], float],
        interval_s: float = 0.05,
        deadline_s: float = 30.0,
    ) -> None:
        self._stub, self._rss, self._interval_s = stub, rss, interval_s
        self._deadline_s = deadline_s  # a GetStatus unanswered this long fails the probe
        self._stop = threading.Event()
        self.samples: list[float] = []
        self.mempool_max = 0  # the most transactions its mempool held at a sample
        self.rss_max = 0.0  # its largest VmRSS at a sample, MiB
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stall-probe", daemon=True)

    def __enter__(self) -> StallProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        if self._error is not None:
            raise AssertionError("the node stopped answering GetStatus") from self._error

    @property
    def worst_s(self) -> float:
        return max(self.samples, default=0.0)

    def _run(self) -> None:
        try:
            self._sample()
        except BaseException as e:  # a node that stops answering fails the test, not the thread
            self._error = e

    def _sample(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            status = self._stub.GetStatus(pb.StatusRequest(), timeout=self._deadline_s)
            took = time.monotonic() - t0
            self.samples.append(took)
            self.mempool_max = max(self.mempool_max, status.mempool_txs)
            self.rss_max = max(self.rss_max, self._rss())
            self._stop.wait(max(0.0, self._interval_s - took))
