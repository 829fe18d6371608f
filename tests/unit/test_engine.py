"""The one driver (node/core/engine.py): the order of its work, loopback, its seams, and
fail-stop. The replica tests (test_core_*.py, through ``Net``), the simulator and the
runtime all drive it; these tests pin the contract they rely on."""

from __future__ import annotations

import pytest

from node.core import Block, Message, Proposal, QCMessage, QuorumCert, SafetyState, Vote
from node.core.engine import Engine, EngineFailedError, Observer
from node.crypto import sha256
from node.invariant import InvariantError
from tests.unit.test_core_replica import Disk, Net


class Ports(Observer):
    """Every port call and observation, in order."""

    def __init__(self, disk: Disk) -> None:
        self.disk = disk
        self.calls: list[tuple[str, object]] = []

    def save_safety(self, data: bytes) -> None:
        self.disk.safety = data
        self.calls.append(("persist", data))

    def send(self, dst: int, msg: Message) -> None:
        self.calls.append(("send", (dst, msg)))

    def execute(self, block: Block, cert: QuorumCert) -> tuple[bytes, bytes]:
        self.disk.blocks[block.height] = (block, cert)
        self.calls.append(("execute", block.height))
        return sha256(b"state", block.hash), sha256(b"results", block.hash)

    def on_step(self, src: int, msg: Message, now_ms: int | None) -> None:
        self.calls.append(("step", (src, msg)))

    def of(self, kind: str) -> list[tuple[int, Message]]:
        """(validator, message) of each ``send`` or ``step`` call."""
        return [what for k, what in self.calls if k == kind]  # type: ignore[misc]


def _engine(n: int, me: int = 0) -> tuple[Engine, Ports]:
    net = Net(n=n, q=1 if n == 1 else None)
    ports = Ports(net.disks[me])
    engine = Engine(net.nodes[me], ports, ports.send, ports.execute, observers=[ports])
    return engine, ports


def test_a_one_node_cluster_commits_by_loopback_alone() -> None:
    """Its own votes and certificates are stepped back in by the engine (its own proposal
    it votes on as it proposes): nothing is sent, the block is persisted for, voted on,
    committed and executed inside one submit."""
    engine, ports = _engine(1)
    engine.submit(b"trade-1", 1_000)
    kinds = [k for k, _ in ports.calls]
    assert "send" not in kinds
    assert kinds.count("execute") == 1 and ports.disk.committed_height() == 1
    assert {src for src, _ in ports.of("step")} == {0}
    assert {type(m) for _, m in ports.of("step")} == {Vote, QCMessage}
    assert engine.replica.executed_height == 1  # executed() was reported
    assert engine.deadline_ms() is not None  # the empty block certifying the results


def test_the_state_is_persisted_before_any_message_that_depends_on_it_leaves() -> None:
    engine, ports = _engine(4, me=1)
    leader = Net(n=4)
    leader.nodes[0].submit(b"trade-1", 1_000)
    leader.drain(0)
    proposal = next(m for m in leader.sent(0, Proposal))
    engine.step(0, proposal, 1_000)  # type: ignore[arg-type]
    kinds = [k for k, _ in ports.calls]
    assert kinds[:3] == ["step", "persist", "send"]  # the vote goes after its view is on disk
    vote = ports.calls[2][1][1]  # type: ignore[index]
    assert isinstance(vote, Vote) and vote.voter == 1


def test_a_leader_makes_its_proposal_and_its_own_vote_durable_in_one_save() -> None:
    """One sync, not two, before its proposal leaves: the saved state already holds its
    prepare vote for the view, and its own proposal is not stepped back into it."""
    engine, ports = _engine(4, me=0)
    engine.submit(b"trade-1", 1_000)
    kinds = [k for k, _ in ports.calls]
    assert kinds.count("persist") == 1 and kinds.index("persist") < kinds.index("send")
    saved = SafetyState.decode(ports.calls[kinds.index("persist")][1])  # type: ignore[arg-type]
    assert (saved.proposed_view, saved.prepare_view) == (0, 0)
    assert [type(m) for _, m in ports.of("step")] == [Vote]  # its own vote, by loopback
    assert [d for d, m in ports.of("send") if isinstance(m, Proposal)] == [1, 2, 3]


def _deferred(n: int, me: int = 0) -> tuple[Engine, Ports, list[int]]:
    """An engine with a loopback port, as the runtime builds it: the port only records
    that it was called; the test plays the event loop's next turn (``step_loopback``)."""
    net = Net(n=n, q=1 if n == 1 else None)
    ports = Ports(net.disks[me])
    called: list[int] = []
    engine = Engine(
        net.nodes[me],
        ports,
        ports.send,
        ports.execute,
        observers=[ports],
        loopback=lambda: called.append(len(ports.calls)),
    )
    return engine, ports, called


def test_with_a_loopback_port_what_a_node_sends_itself_waits_for_the_next_turn() -> None:
    """The runtime's mode: a drain sends to the peers and only then, on a later call,
    steps what the node sent itself, so its peers' copies leave first."""
    engine, ports, called = _deferred(4, me=0)
    engine.submit(b"trade-1", 1_000)
    assert ports.of("step") == []  # its own vote waits
    assert len(called) == 1 and called[0] == len(ports.calls)  # after every send
    assert [d for d, m in ports.of("send") if isinstance(m, Proposal)] == [1, 2, 3]
    engine.submit(b"trade-2", 1_000)  # more input before the next turn: no second call
    assert len(called) == 1 and ports.of("step") == []
    engine.step_loopback(1_000)
    assert [type(m) for _, m in ports.of("step")] == [Vote]


def test_with_a_loopback_port_a_one_node_cluster_commits_one_turn_per_step() -> None:
    """Each vote and certificate it sends itself is stepped on the turn after: its
    prepare vote, the prepare QC (it locks and votes to commit), its commit vote, the
    commit QC (it commits and executes). The same result as inside one submit without
    the port (the first test), four turns later."""
    engine, ports, called = _deferred(1)
    engine.submit(b"trade-1", 1_000)
    turns = 0
    while ports.disk.committed_height() == 0:
        assert len(called) == turns + 1  # one call per turn with something to step
        engine.step_loopback(1_000)
        turns += 1
        assert turns <= 5, "the block never committed"
    assert turns == 4
    assert [type(m) for _, m in ports.of("step")] == [Vote, QCMessage, Vote, QCMessage]
    assert "send" not in [k for k, _ in ports.calls]
    assert engine.replica.executed_height == 1


def test_a_loopback_port_that_calls_back_at_once_stops_the_engine() -> None:
    """step_loopback from inside a drain could do nothing (the messages would wait for
    some later input): it is a bug in the caller, so the engine fails loudly."""
    net = Net(n=1, q=1)
    ports = Ports(net.disks[0])
    engine: Engine

    def at_once() -> None:
        engine.step_loopback(1_000)

    engine = Engine(net.nodes[0], ports, ports.send, ports.execute, loopback=at_once)
    with pytest.raises(RuntimeError, match="inside a drain"):
        engine.submit(b"trade-1", 1_000)
    with pytest.raises(EngineFailedError):
        engine.step_loopback(1_000)


def test_rewrite_sees_every_message_and_decides_what_leaves_loopback_included() -> None:
    net = Net(n=1, q=1)
    ports = Ports(net.disks[0])
    seen: list[tuple[int, Message]] = []

    def divert_own_votes(dst: int, msg: Message) -> list[tuple[int, Message]]:
        seen.append((dst, msg))
        return [(7, msg)] if isinstance(msg, Vote) else [(dst, msg)]

    engine = Engine(net.nodes[0], ports, ports.send, ports.execute, rewrite=divert_own_votes)
    engine.submit(b"trade-1", 1_000)
    # A one-node cluster sends its proposal to no one and votes on it as it proposes.
    assert [(d, type(m)) for d, m in seen] == [(0, Vote)]
    assert ports.disk.committed_height() == 0  # its own vote never came back
    assert [(d, type(m)) for d, m in ports.of("send")] == [(7, Vote)]


def test_an_input_fed_from_inside_a_port_is_finished_by_the_outer_loop() -> None:
    engine, ports = _engine(1)
    fed = []

    def reentrant(block: Block, cert: QuorumCert) -> tuple[bytes, bytes]:
        if not fed:
            fed.append(engine.submit(b"trade-2", 1_000))  # e.g. a callback into the node
        return Ports.execute(ports, block, cert)

    engine._execute = reentrant  # type: ignore[assignment]
    engine.submit(b"trade-1", 1_000)
    assert fed and engine.replica.mempool.contains(b"trade-2")
    assert engine.replica.ready().empty()  # nothing left undone
    engine.replica.advance()


def test_a_failure_inside_the_engine_stops_it_for_good() -> None:
    """Fail-stop: an exception out of a port propagates (the runtime halts the node on
    it) and the engine, its Ready half done, refuses every later input."""
    engine, ports = _engine(1)
    boom = OSError("disk gone")

    def broken(data: bytes) -> None:
        raise boom

    ports.save_safety = broken  # type: ignore[method-assign]
    with pytest.raises(OSError):
        engine.submit(b"trade-1", 1_000)
    assert engine.failed is boom
    for feed in (
        lambda: engine.tick(2_000),
        lambda: engine.submit(b"trade-2", 2_000),
        lambda: engine.drain(2_000),
        lambda: engine.peer_height(0, 5, 2_000),
    ):
        with pytest.raises(EngineFailedError):
            feed()


def test_a_replica_refusing_its_input_contract_stops_the_engine_too() -> None:
    engine, _ = _engine(4)
    with pytest.raises(InvariantError):
        engine.step(9, Vote(0, 0, 1, bytes(32), 9, b""), 1_000)  # type: ignore[arg-type]
    with pytest.raises(EngineFailedError):
        engine.tick(2_000)


def test_the_negative_control_a_healthy_engine_keeps_taking_input() -> None:
    engine, _ = _engine(1)
    engine.submit(b"trade-1", 1_000)
    engine.tick(1_000 + 10_000)
    assert engine.failed is None and engine.replica.committed_height >= 1
