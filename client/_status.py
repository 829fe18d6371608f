"""The one status command: what ``ledger status`` and ``make status`` print, and its schema.

Both commands ask every node of a run directory for its status through the SDK
(:meth:`LedgerClient.status`), look for nodes that disagree on a block, and print the
same table or the same JSON document (``--json``), whose schema is :class:`StatusDoc`
and :class:`NodeDoc` below, versioned by :data:`STATUS_SCHEMA` (docs/cluster.md
"Status"). Exit codes: :data:`EXIT_HEALTHY` when every node is up, not halted and all
agree; :data:`EXIT_UNHEALTHY` otherwise; usage errors (no run directory, a bad network
file) are the caller's, exit 2.

A monitoring script checks a document with :func:`schema_problems` instead of trusting
its shape; the tests run both commands' output through it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from client._async import EndpointDown, NodeStatusView
from client._cli_common import emit_json, table
from client._sync import LedgerClient

__all__ = [
    "EXIT_HEALTHY",
    "EXIT_UNHEALTHY",
    "STATUS_SCHEMA",
    "NodeDoc",
    "StatusDoc",
    "collect",
    "disagreements",
    "node_doc",
    "print_table",
    "schema_problems",
    "show",
    "status_doc",
]

# Bumped when a field changes meaning or goes away; a new optional field keeps the number.
STATUS_SCHEMA = "ledger.status/1"
EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1  # a node down, halted, or on another block than the majority


class Answer(Protocol):
    """What a node's GetStatus answer has: the SDK's NodeStatusView or the wire message."""

    @property
    def chain_id(self) -> str: ...
    @property
    def validator_id(self) -> str: ...
    @property
    def height(self) -> int: ...
    @property
    def view(self) -> int: ...
    @property
    def leader(self) -> int: ...
    @property
    def n(self) -> int: ...
    @property
    def q(self) -> int: ...
    @property
    def peers_connected(self) -> int: ...
    @property
    def mempool_txs(self) -> int: ...
    @property
    def halted(self) -> str: ...
    @property
    def uptime_ms(self) -> int: ...
    @property
    def state_root(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class NodeDoc:
    """One node's entry; a node that did not answer has ``up`` false, ``error`` set and
    every figure null."""

    node: str  # its name, node-XX
    address: str  # host:port of its client port
    pid: int | None  # the process, when the caller runs the cluster on this machine
    up: bool
    state: str  # "up", "halted" or "down"
    error: str | None  # why it did not answer (the gRPC status first)
    validator: str | None
    height: int | None
    view: int | None
    leader: int | None
    peers_connected: int | None
    mempool_txs: int | None
    uptime_ms: int | None
    halted: str | None  # the reason it stopped itself
    state_root: str | None  # hex


@dataclass(frozen=True, slots=True)
class StatusDoc:
    """The whole answer; ``healthy`` is true exactly when ``problems`` is empty."""

    schema: str
    chain_id: str | None  # the first answering node's
    n: int | None
    q: int | None
    healthy: bool
    nodes: list[NodeDoc]
    problems: list[str]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def node_doc(
    name: str, address: str, pid: int | None, answer: Answer | None, error: str
) -> NodeDoc:
    """The entry of one node from its answer (None: it did not answer, for ``error``)."""
    if answer is None:
        return NodeDoc(name, address, pid, False, "down", error or "no answer",
                       *([None] * 9))  # fmt: skip
    return NodeDoc(
        node=name,
        address=address,
        pid=pid,
        up=True,
        state="halted" if answer.halted else "up",
        error=None,
        validator=answer.validator_id,
        height=int(answer.height),
        view=int(answer.view),
        leader=int(answer.leader),
        peers_connected=int(answer.peers_connected),
        mempool_txs=int(answer.mempool_txs),
        uptime_ms=int(answer.uptime_ms),
        halted=answer.halted or None,
        state_root=bytes(answer.state_root).hex(),
    )


def disagreements(
    names: Sequence[str],
    heights: Sequence[int | None],
    hash_at: Callable[[int, int], bytes | None],
) -> list[str]:
    """Nodes whose block at the lowest height every answering node has differs from the
    majority's. ``heights[i]`` is None for a node that did not answer; ``hash_at(i, h)``
    asks node ``i`` for its block ``h`` (None: it did not say)."""
    up = [i for i, h in enumerate(heights) if h is not None]
    common = min((heights[i] or 0 for i in up), default=0)
    if common == 0:
        return []  # nothing committed everywhere yet: nothing to compare
    hashes = {i: hash_at(i, common) for i in up}
    votes: dict[bytes | None, int] = {}
    for h in hashes.values():
        votes[h] = votes.get(h, 0) + 1
    majority = max(votes, key=lambda h: votes[h])
    return [f"{names[i]} has another block at height {common}" for i, h in hashes.items()
            if h != majority]  # fmt: skip


def status_doc(
    nodes: Sequence[NodeDoc], answers: Sequence[Answer | None], disagreeing: Sequence[str]
) -> StatusDoc:
    problems = [f"{d.node} is down ({d.error})" for d in nodes if not d.up]
    problems += [f"{d.node} halted: {d.halted}" for d in nodes if d.halted]
    problems += disagreeing
    first = next((a for a in answers if a is not None), None)
    return StatusDoc(
        schema=STATUS_SCHEMA,
        chain_id=None if first is None else first.chain_id,
        n=None if first is None else int(first.n),
        q=None if first is None else int(first.q),
        healthy=not problems,
        nodes=list(nodes),
        problems=problems,
    )


def collect(client: LedgerClient, pids: Mapping[str, int | None] | None = None) -> StatusDoc:
    """Ask every endpoint of ``client``; ``pids`` gives the process of a node by name (the
    local cluster's pid files), else null."""
    answers = client.status()
    views: list[NodeStatusView | None] = [
        None if isinstance(a, EndpointDown) else a for a in answers
    ]
    nodes = [
        node_doc(
            a.endpoint.server_name,
            a.endpoint.address,
            (pids or {}).get(a.endpoint.server_name),
            v,
            a.error if isinstance(a, EndpointDown) else "",
        )
        for a, v in zip(answers, views, strict=True)
    ]

    def hash_at(i: int, height: int) -> bytes | None:
        v = views[i]
        if v is not None and v.height == height and v.block_hash:
            return v.block_hash  # its own head: no second call
        return client.block_hash_at(i, height)

    heights = [None if v is None else v.height for v in views]
    disagreeing = disagreements([d.node for d in nodes], heights, hash_at)
    return status_doc(nodes, views, disagreeing)


def show(doc: StatusDoc, as_json: bool, out: TextIO | None = None) -> int:
    """Print ``doc`` (JSON or the table) and return the exit code it calls for."""
    if as_json:
        emit_json(doc.to_json(), out)
    else:
        print_table(doc, out)
    return EXIT_HEALTHY if doc.healthy else EXIT_UNHEALTHY


def print_table(doc: StatusDoc, out: TextIO | None = None) -> None:
    """The human form: one line on the chain, a row per node, then each problem."""
    if doc.chain_id is not None:
        print(f"chain {doc.chain_id[:16]}...  n={doc.n} q={doc.q}", file=out)
    rows = [_row(d, doc.n) for d in doc.nodes]
    headers = ("node", "address", "pid", "state", "height", "view", "leader", "peers", "mempool")
    table((*headers, "state root / error"), rows, right=(2, 4, 5, 6, 7, 8), out=out)
    for p in doc.problems:
        print(f"problem: {p}", file=out)


def _row(d: NodeDoc, n: int | None) -> tuple[object, ...]:
    pid = "-" if d.pid is None else d.pid
    if not d.up:
        code = (d.error or "").split(":", 1)[0]  # the gRPC status; --json has the whole error
        return (d.node, d.address, pid, d.state, "", "", "", "", "", code)
    peers = f"{d.peers_connected}/{(n or 1) - 1}"
    root = (d.state_root or "")[:16]
    return (d.node, d.address, pid, d.state, d.height, d.view, d.leader, peers, d.mempool_txs,
            root)  # fmt: skip


# --- checking a document against the schema --------------------------------------------------


def schema_problems(doc: object) -> list[str]:
    """Every way ``doc`` (parsed JSON) departs from :class:`StatusDoc`: a missing or
    unknown key, a value of the wrong type, another schema version. Empty: it conforms."""
    problems = _object_problems(doc, StatusDoc, "status")
    if isinstance(doc, dict):
        if doc.get("schema") != STATUS_SCHEMA:
            problems.append(f"status.schema is {doc.get('schema')!r}, not {STATUS_SCHEMA!r}")
        if isinstance(doc.get("problems"), list) and doc.get("healthy") is not (
            not doc["problems"]
        ):
            problems.append("status.healthy must be true exactly when problems is empty")
    return problems


def _object_problems(value: object, cls: type, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where} is not an object"]
    hints = typing.get_type_hints(cls)
    problems = [f"{where}.{k} is missing" for k in hints if k not in value]
    problems += [f"{where}.{k} is not in the schema" for k in value if k not in hints]
    for key, hint in hints.items():
        if key in value:
            problems += _value_problems(value[key], hint, f"{where}.{key}")
    return problems


def _value_problems(value: object, hint: Any, where: str) -> list[str]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is types.UnionType:  # X | None
        if value is None and type(None) in args:
            return []
        (inner,) = [a for a in args if a is not type(None)]
        return _value_problems(value, inner, where)
    if origin is list:
        if not isinstance(value, list):
            return [f"{where} is not a list"]
        return [
            p for i, v in enumerate(value) for p in _value_problems(v, args[0], f"{where}[{i}]")
        ]
    if dataclasses.is_dataclass(hint):
        return _object_problems(value, typing.cast(type, hint), where)
    # bool is an int in Python; JSON keeps them apart, so does the schema.
    ok = isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    return [] if ok else [f"{where} is {type(value).__name__}, not {hint.__name__}"]
