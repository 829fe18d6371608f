"""Run a local cluster: start, status, stop, kill and restart nodes of a run directory.

``python -m devtools.cluster start`` launches every validator of ``run/`` (written by ``make
genesis``) as a background process, with its log in ``run/logs/`` and its pid in
``run/pids/``, and returns once every node is up, connected to every peer and ready to
commit. ``status`` is ``ledger status`` (client/_status.py) with each node's pid: a table
or ``--json``, exit 1 if a node is down, halted or two nodes disagree on a block;
``stop`` leaves no process behind. Every subcommand has ``--help``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from client import Endpoint, LedgerClient
from client import _status as node_status
from client._async import pinned_credentials
from client._identity import RequestSigner, aio_interceptors, signed_channel
from client._keys import load_key
from node.genesis import load_genesis
from node.netconfig import OPERATOR_IDENTITY, ConfigError, Network, NetworkNode, load_network
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc

__all__ = [
    "ClusterError",
    "NodeState",
    "client_aio_channel",
    "client_channel",
    "is_running",
    "kill_node",
    "main",
    "node_states",
    "signer_for",
    "start_cluster",
    "start_node",
    "status_table",
    "stop_cluster",
]

START_TIMEOUT_S = 240.0  # 26 validators importing grpc on 2 cores take a while
STOP_TIMEOUT_S = 15.0
STATUS_RPC_TIMEOUT_S = 2.0
_POLL_S = 0.25


class ClusterError(RuntimeError):
    """The cluster cannot do what was asked; the message says why."""


# --- processes ---------------------------------------------------------------------------


def _pid_file(net: Network, node: NetworkNode) -> Path:
    return net.run_dir / "pids" / f"{node.name}.pid"


def _log_file(net: Network, node: NetworkNode) -> Path:
    return net.run_dir / "logs" / f"{node.name}.log"


def _pid(net: Network, node: NetworkNode) -> int | None:
    """The node's pid if that process is alive and is this node (not a recycled pid)."""
    try:
        pid = int(_pid_file(net, node).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    # Right after Popen returns, the child's cmdline often reads empty (measured: 16 of
    # 40 spawns); only a non-empty one that names another config is a recycled pid.
    if cmdline and str(node.config).encode() not in cmdline:
        return None
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            os.waitpid(pid, os.WNOHANG)  # our own child that died: reap it
            return None
    return pid


def is_running(net: Network, index: int) -> bool:
    return _pid(net, net.nodes[index]) is not None


def start_node(net: Network, index: int) -> int:
    """Launch validator ``index`` in the background (no-op if running); returns its pid."""
    node = net.nodes[index]
    pid = _pid(net, node)
    if pid is not None:
        return pid
    for d in ("pids", "logs"):
        (net.run_dir / d).mkdir(mode=0o700, exist_ok=True)
    with open(_log_file(net, node), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "node", "--config", str(node.config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal does not reach the nodes
            cwd=Path(__file__).resolve().parent.parent,
        )
    _pid_file(net, node).write_text(f"{proc.pid}\n")
    return proc.pid


def kill_node(net: Network, index: int, sig: int = signal.SIGKILL) -> bool:
    """Signal validator ``index`` (SIGKILL: a crash); False if it was not running."""
    node = net.nodes[index]
    pid = _pid(net, node)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if sig == signal.SIGKILL:
        _wait_gone([pid], STOP_TIMEOUT_S)
        _pid_file(net, node).unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pids: Sequence[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [p for p in left if _alive(p)]
        if left:
            time.sleep(0.05)
    return left


def stop_cluster(net: Network, timeout_s: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM every node, SIGKILL what is left after ``timeout_s``; returns nodes stopped."""
    pids = {i: p for i, x in enumerate(net.nodes) if (p := _pid(net, x)) is not None}
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in _wait_gone(list(pids.values()), timeout_s):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    left = _wait_gone(list(pids.values()), timeout_s)
    if left:
        raise ClusterError(f"processes {left} survived SIGKILL")
    for x in net.nodes:
        _pid_file(net, x).unlink(missing_ok=True)
    return len(pids)


# --- status ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeState:
    node: NetworkNode
    pid: int | None
    status: pb.NodeStatus | None  # None: not answering
    error: str = ""

    @property
    def up(self) -> bool:
        return self.status is not None


def _client_target(
    net: Network, index: int
) -> tuple[tuple[str, grpc.ChannelCredentials, list[tuple[str, str]]], str]:
    """Node ``index``'s address, TLS credentials whose one root is the genesis-pinned
    certificate carrying its name (as the SDK's), the name it must prove; and the genesis
    id of that certificate's validator, which a call to it is signed for (ADR 0015)."""
    node = net.nodes[index]
    creds, validators = _pinned(net, net.tls_pinned.read_bytes())
    target = (node.client_address, creds[index], [("grpc.ssl_target_name_override", node.name)])
    return target, validators[index]


@functools.lru_cache(maxsize=16)
def _pinned(net: Network, pinned: bytes) -> tuple[list[grpc.ChannelCredentials], list[str]]:
    """Per node of ``net``, its one trust root and its validator's genesis id (cached per
    network and certificate bundle: parsed once, not per channel)."""
    endpoints = [Endpoint(n.client_address, n.name) for n in net.nodes]
    return pinned_credentials(endpoints, pinned, load_genesis(net.genesis))


def signer_for(net: Network, identity: str = OPERATOR_IDENTITY) -> RequestSigner:
    """Signs calls as ``identity``, with its key from the run directory."""
    return _signer(net.run_dir, identity)


@functools.lru_cache(maxsize=16)
def _signer(run_dir: Path, identity: str) -> RequestSigner:
    net = load_network(run_dir)
    genesis = load_genesis(net.genesis)
    return RequestSigner(load_key(net.participant_key(identity), identity), genesis)


def client_channel(
    net: Network, index: int, identity: str | None = OPERATOR_IDENTITY
) -> grpc.Channel:
    """A TLS channel to node ``index``'s client port, every call signed as ``identity``
    (None: unsigned, refused UNAUTHENTICATED by the Ledger service; health stays open)."""
    target, validator = _client_target(net, index)
    channel = grpc.secure_channel(*target)
    if identity is None:
        return channel
    return signed_channel(channel, _signer(net.run_dir, identity), validator)


def client_aio_channel(
    net: Network, index: int, identity: str | None = OPERATOR_IDENTITY
) -> grpc.aio.Channel:
    """The same for asyncio."""
    target, validator = _client_target(net, index)
    signed = [] if identity is None else aio_interceptors(_signer(net.run_dir, identity), validator)
    return grpc.aio.secure_channel(*target, interceptors=signed)


@contextlib.contextmanager
def _channel(net: Network, node: NetworkNode) -> Iterator[grpc.Channel]:
    with client_channel(net, node.validator) as channel:
        yield channel


def node_state(net: Network, index: int) -> NodeState:
    node = net.nodes[index]
    pid = _pid(net, node)
    try:
        with _channel(net, node) as ch:
            status = pb_grpc.LedgerStub(ch).GetStatus(
                pb.StatusRequest(), timeout=STATUS_RPC_TIMEOUT_S
            )
    except grpc.RpcError as e:
        return NodeState(node, pid, None, e.code().name)
    return NodeState(node, pid, status)


def node_states(net: Network) -> list[NodeState]:
    return [node_state(net, i) for i in range(net.n)]


def _status_doc(net: Network, states: Sequence[NodeState]) -> node_status.StatusDoc:
    """The shared status document (client/_status.py) of what start's polling saw."""
    docs = [
        node_status.node_doc(s.node.name, s.node.client_address, s.pid, s.status, s.error)
        for s in states
    ]
    return node_status.status_doc(docs, [s.status for s in states], [])


def status_table(net: Network, states: Sequence[NodeState]) -> str:
    out = io.StringIO()
    node_status.print_table(_status_doc(net, states), out)
    return out.getvalue().rstrip("\n")


def _ready(states: Sequence[NodeState]) -> bool:
    return all(
        s.status is not None and not s.status.halted and s.status.peers_connected == s.status.n - 1
        for s in states
    )


def start_cluster(
    net: Network, timeout_s: float = START_TIMEOUT_S, *, progress: bool = True
) -> list[NodeState]:
    """Start every node and wait until all are connected to all; ClusterError on timeout."""
    for i in range(net.n):
        start_node(net, i)
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        states = node_states(net)
        if _ready(states):
            return states
        dead = [s.node.name for s in states if s.pid is None]
        if dead:
            raise ClusterError(f"{', '.join(dead)} exited during start; see {net.run_dir / 'logs'}")
        up = sum(s.up for s in states)
        linked = sum(1 for s in states if s.status and s.status.peers_connected == net.n - 1)
        line = f"  {up}/{net.n} nodes answering, {linked}/{net.n} connected to every peer"
        if progress and line != last:
            print(line, flush=True)
            last = line
        if time.monotonic() > deadline:
            table = status_table(net, states)
            raise ClusterError(f"cluster not ready after {timeout_s:.0f} s:\n{table}")
        time.sleep(_POLL_S)


# --- command line ------------------------------------------------------------------------


def _cmd_status(net: Network, args: argparse.Namespace) -> int:
    """`make status`: the one status command (client/_status.py, as `ledger status`),
    with each node's pid from this machine's pid files."""
    pids = {x.name: _pid(net, x) for x in net.nodes}
    key = load_key(net.participant_key(OPERATOR_IDENTITY), OPERATOR_IDENTITY)
    with LedgerClient.from_run_dir(net.run_dir, identity=key) as client:
        doc = node_status.collect(client, pids)
    return node_status.show(doc, args.json)


def _cmd_start(net: Network, args: argparse.Namespace) -> int:
    print(f"starting {net.n} validators (quorum {net.q}) from {net.run_dir}")
    t0 = time.monotonic()
    states = start_cluster(net, args.timeout)
    print(status_table(net, states))
    print(f"cluster ready in {time.monotonic() - t0:.1f} s; logs in {net.run_dir / 'logs'}")
    return 0


def _cmd_stop(net: Network, args: argparse.Namespace) -> int:
    stopped = stop_cluster(net, args.timeout)
    print(f"stopped {stopped} node(s)")
    return 0


def _index(net: Network, value: int) -> int:
    if not 0 <= value < net.n:
        raise ClusterError(f"no node {value}: this cluster has nodes 0..{net.n - 1}")
    return value


def _cmd_kill_node(net: Network, args: argparse.Namespace) -> int:
    i = _index(net, args.index)
    if not kill_node(net, i):
        print(f"{net.nodes[i].name} was not running")
        return 1
    print(f"killed {net.nodes[i].name} (SIGKILL)")
    return 0


def _cmd_start_node(net: Network, args: argparse.Namespace) -> int:
    i = _index(net, args.index)
    pid = start_node(net, i)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        s = node_state(net, i)
        # Connected to every peer that runs: with another validator down (n - q may be),
        # waiting for all n - 1 timed out with the node up and well (review 33o).
        running = sum(is_running(net, j) for j in range(net.n) if j != i)
        if s.status is not None and s.status.peers_connected >= running:
            down = net.n - 1 - running
            note = f"; {down} peer(s) not running" if down else ""
            print(f"{net.nodes[i].name} up (pid {pid}) at height {s.status.height}{note}")
            return 0
        if _pid(net, net.nodes[i]) is None:
            raise ClusterError(f"{net.nodes[i].name} exited; see {_log_file(net, net.nodes[i])}")
        time.sleep(_POLL_S)
    raise ClusterError(f"{net.nodes[i].name} not connected after {args.timeout:.0f} s")


def _cmd_clean(net: Network, args: argparse.Namespace) -> int:
    stop_cluster(net)
    shutil.rmtree(net.run_dir)
    print(f"removed {net.run_dir} (genesis, keys, data, logs)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devtools.cluster", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--run-dir", default="run", help="run directory from make genesis (default run)")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="start every node and wait until all are connected")
    s.add_argument("--timeout", type=float, default=START_TIMEOUT_S, help="seconds (default 240)")
    s.set_defaults(fn=_cmd_start)
    s = sub.add_parser("status", help="table of every node; exit 1 if down or disagreeing")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(fn=_cmd_status)
    s = sub.add_parser("stop", help="stop every node (SIGTERM, then SIGKILL)")
    s.add_argument("--timeout", type=float, default=STOP_TIMEOUT_S, help="seconds before SIGKILL")
    s.set_defaults(fn=_cmd_stop)
    s = sub.add_parser("kill-node", help="SIGKILL one node (a crash, for fault demos)")
    s.add_argument("index", type=int, help="validator index")
    s.set_defaults(fn=_cmd_kill_node)
    s = sub.add_parser("start-node", help="start one node and wait until it is connected")
    s.add_argument("index", type=int, help="validator index")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    s.set_defaults(fn=_cmd_start_node)
    s = sub.add_parser("clean", help="stop the nodes and delete the run directory")
    s.set_defaults(fn=_cmd_clean)
    args = p.parse_args(argv)
    try:
        net = load_network(args.run_dir)
    except FileNotFoundError:
        print(f"no network in {args.run_dir}: run `make genesis` first", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"bad network file: {e}", file=sys.stderr)
        return 2
    try:
        code: int = args.fn(net, args)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
