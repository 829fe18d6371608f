"""Prometheus metrics of one validator (served over HTTP on the metrics port).

Each node owns a registry, so tests that start several nodes in one process keep their
figures apart. Names are the contract of docker/grafana/dashboards/ledger.json.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, ClassVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    make_wsgi_app,
)

from node._code import code_digest
from node._version import __version__
from node.config import METRICS_CONNECTIONS_MAX, METRICS_REQUEST_TIMEOUT_S
from node.settlement import FAIL_CODES, FAIL_EVENT_CODES, ResultCode

__all__ = ["CONSENSUS_STEPS", "FAIL_REASONS", "Metrics", "MetricsServer", "rss_anon_bytes"]

# What the settlement fails metric counts: a trade's own result among FAIL_CODES, a pending
# instruction's event among FAIL_EVENT_CODES (node.settlement.settlement_fail says which).
FAIL_REASONS = frozenset(FAIL_CODES) | frozenset(FAIL_EVENT_CODES)

# Finality is milliseconds to seconds; the buckets cover a loaded 26-node cluster too.
_LATENCY_BUCKETS_S = (
    0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip


# A block's consensus steps after its proposal, as ledger_consensus_step_seconds labels them.
CONSENSUS_STEPS = ("prepare_qc", "commit_qc", "applied")


def rss_anon_bytes() -> float:
    """This process's anonymous resident memory (RssAnon: heap and stacks). The process
    collector's resident memory also counts the LMDB file pages the node has mapped, which
    the kernel may drop at any time; this is what grows if the node leaks."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return float(int(line.split()[1]) * 1024)  # the kernel writes kB
    return 0.0


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        Info("ledger_build", "This validator's version and code digest", registry=r).info(
            {"version": __version__, "code": code_digest()}
        )
        # process_cpu_seconds_total, process_resident_memory_bytes, open fds...: the
        # client library's own collector (Linux /proc; empty elsewhere).
        ProcessCollector(registry=r)
        Gauge(
            "ledger_process_rss_anon_bytes",
            "Anonymous resident memory of this process (RssAnon: not the LMDB pages mapped)",
            registry=r,
        ).set_function(rss_anon_bytes)
        self.height = Gauge("ledger_height", "Height of the last committed block", registry=r)
        self.view = Gauge("ledger_view", "Current consensus view", registry=r)
        self.view_changes = Counter(
            "ledger_view_changes", "Views left by timeout certificate", registry=r
        )
        self.commit_votes_relayed = Counter(
            "ledger_commit_votes_relayed",
            "COMMIT votes also sent to the next two leaders: the commit certificate was late",
            registry=r,
        )
        self.commit_latency = Histogram(
            "ledger_commit_latency_seconds",
            "From a transaction's acceptance at this node to its commit here",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.scrapes_refused = Counter(
            "ledger_metrics_connections_refused",
            "Connections to the metrics port closed unserved: every scrape slot was busy",
            registry=r,
        )
        self.mempool = Gauge("ledger_mempool_txs", "Transactions waiting for a block", registry=r)
        self.mempool_bytes = Gauge(
            "ledger_mempool_bytes", "Bytes of the transactions waiting for a block", registry=r
        )
        self.consensus_step = Histogram(
            "ledger_consensus_step_seconds",
            "From this node first seeing a block's proposal to its prepare certificate, its "
            "commit certificate and its application here (step); blocks it saw proposed",
            ["step"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        for step in CONSENSUS_STEPS:
            self.consensus_step.labels(step=step)
        self.peers = Gauge("ledger_peers_connected", "Peers this node can send to", registry=r)
        self.transactions = Counter(
            "ledger_transactions", "Committed transactions by result code", ["code"], registry=r
        )
        self.blocks = Counter("ledger_blocks", "Committed blocks", registry=r)
        # Pipelining (ADR 0012, node config ``pipeline``): certified blocks executed ahead
        # of their commit, and commits that wrote such an outcome instead of executing.
        self.speculated = Counter(
            "ledger_blocks_speculated", "Certified blocks executed before their commit", registry=r
        )
        self.speculation_used = Counter(
            "ledger_blocks_speculation_used",
            "Committed blocks whose speculative outcome was written, not executed again",
            registry=r,
        )
        self.dropped = Counter(
            "ledger_peer_messages_dropped", "Messages dropped by full peer send queues", registry=r
        )
        self.peer_streams_replaced = Counter(
            "ledger_peer_streams_replaced",
            "Peer Connect streams ended because a newer one from the same validator arrived",
            registry=r,
        )
        self.halted = Gauge(
            "ledger_halted",
            "1 once this node halted itself (fail-stop or divergence); it exits non-zero",
            registry=r,
        )
        self.refused = Counter(
            "ledger_peer_messages_refused",
            "Peer frames refused by the transport before the consensus core, by reason",
            ["reason"],
            registry=r,
        )
        self.consensus_refused = Counter(
            "ledger_consensus_refused",
            "Consensus messages dropped without effect, by message kind and reason "
            "(node/core/refusal.py; docs/consensus.md, Refusals)",
            ["kind", "reason"],
            registry=r,
        )
        self.calls_ended_key_rotated = Counter(
            "ledger_calls_ended_key_rotated_total",
            "open streams and parked finality waits ended because governance rotated the "
            "key they were opened with",
            registry=r,
        )
        self.submit_streams = Gauge(
            "ledger_submit_streams", "SubmitStream calls open at this node", registry=r
        )
        self.stream_inflight = Gauge(
            "ledger_submit_stream_inflight",
            "Submissions over SubmitStream without their final or error event sent yet",
            registry=r,
        )
        self.admission_refused = Counter(
            "ledger_admission_refused",
            "Client transactions refused with RESOURCE_EXHAUSTED before any durable write: "
            "deadline (cannot settle within the client's deadline), full (mempool or intake)",
            ["reason"],
            registry=r,
        )
        self.block_reads_over_budget = Counter(
            "ledger_block_reads_over_budget",
            "Reads over their participant's read budget: a GetBlock, a GetTransaction or "
            "WaitForFinality whose receipt would rebuild an old block's trees, or a read "
            "that scans state (GetBalances, GetReference, ...), refused with "
            "RESOURCE_EXHAUSTED, or a block stream's wait (node/runtime/_reads.py)",
            ["call"],
            registry=r,
        )
        self.admission_settle_ms = Gauge(
            "ledger_admission_settle_ms",
            "Admission control's estimate of the time to settle what this node holds",
            registry=r,
        )
        self.admission_rate = Gauge(
            "ledger_admission_rate_tps",
            "Admission control's commit rate (moving average, at least its floor)",
            registry=r,
        )
        # pend: pending settlement (issue 14 item 5; docs/ledger.md "Pending settlement")
        self.pending = Gauge(
            "ledger_pending_instructions",
            "Pending DvP instructions waiting for their legs after the last committed block",
            registry=r,
        )
        self.settled_after_recycling = Counter(
            "ledger_settled_after_recycling",
            "Pending instructions that settled in full at the end of a later block",
            registry=r,
        )
        self.settlement_fails = Counter(
            "ledger_settlement_fails",
            "Trades that did not settle, by reason: a DvP refused for a short leg, a pending "
            "instruction failed at its deadline, cancelled, or refused with the book full",
            ["reason"],
            registry=r,
        )
        # kyc: velocity alerts (node/runtime/_velocity.py; docs/cluster.md)
        self.velocity_alerts = Counter(
            "ledger_velocity_alerts",
            "Accounts crossing a velocity bound (rule: count or value) in the sliding window",
            ["rule"],
            registry=r,
        )
        for rule in ("count", "value"):
            self.velocity_alerts.labels(rule=rule)
        for fail in sorted(FAIL_REASONS):
            self.settlement_fails.labels(reason=fail.name)
        for reason in ("deadline", "full"):
            self.admission_refused.labels(reason=reason)
        for code in ResultCode:
            self.transactions.labels(code=code.name)  # every code present from the start

    def serve(
        self,
        host: str,
        port: int,
        *,
        connections_max: int = METRICS_CONNECTIONS_MAX,
        timeout_s: float = METRICS_REQUEST_TIMEOUT_S,
    ) -> MetricsServer:
        """Serve the registry over HTTP on ``host:port`` from a daemon thread: at most
        ``connections_max`` scrapes at once (a connection beyond is closed unserved), each
        connection closed if its request has not arrived within ``timeout_s``."""
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        server = MetricsServer(
            (host, port),
            connections_max=connections_max,
            timeout_s=timeout_s,
            family=family[0][0],
            on_refused=self.scrapes_refused.inc,
        )
        server.set_app(make_wsgi_app(self.registry))
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return server


class _RequestReader(io.RawIOBase):
    """A connection's bytes up to the end of its request, all within one deadline. The
    socket's own timeout bounds each read alone: a client sending a byte every few seconds
    held its slot for as long as it liked, and eight such clients refused every scrape
    (review 36s)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive within METRICS_REQUEST_TIMEOUT_S")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _QuietHandler(WSGIRequestHandler):
    """One scrape per connection, its request read within ``timeout`` in all, no access
    log on stderr."""

    timeout: ClassVar[float] = METRICS_REQUEST_TIMEOUT_S  # MetricsServer sets the port's own

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the socket's own reader: its timeout restarts at each byte
        deadline = time.monotonic() + self.timeout
        self.rfile = io.BufferedReader(_RequestReader(self.connection, deadline))

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.connection.settimeout(self.timeout)  # the answer's writes: each within it
        return parsed

    def log_message(self, format: str, *args: Any) -> None:
        pass


class MetricsServer(ThreadingMixIn, WSGIServer):
    """The metrics port's HTTP server with bounds (prometheus_client's own had none: each
    connection held open was a thread for ever, session 28's review)."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        connections_max: int,
        timeout_s: float,
        family: socket.AddressFamily,
        on_refused: Callable[[], None],
    ) -> None:
        self.address_family = family
        self._slots = threading.BoundedSemaphore(connections_max)
        self._on_refused = on_refused
        handler = type("_Handler", (_QuietHandler,), {"timeout": timeout_s})
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._on_refused()
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # starts the thread
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or went away: its connection is closed, nothing to log
        (the base class printed a traceback on stderr for each)."""

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
