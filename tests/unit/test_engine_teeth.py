"""The one driver (node/core/engine.py), rules no test held until review 34e's mutation run:
the order of one Ready's work to the call, fail-stop on every input, a validator numbered
past 256, the speculation cache's bound and base root, and the answer recorded before a
submitted transaction's drain. Each test names the survivor it kills in docs/testing.md
("The consensus driver and the wire codec")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest

from node.config import SPECULATIVE_OUTCOMES_MAX
from node.core import (
    AddResult,
    Block,
    CoreConfig,
    Message,
    Quorum,
    QuorumCert,
    Replica,
    SyncRequest,
    Timeout,
    TxForward,
    Vote,
)
from node.core.engine import Engine, EngineFailedError, Observer, SpeculationCache
from node.core.replica import Ready
from node.crypto import sha256
from node.merkle import EMPTY_ROOT
from tests.sim.harness import HashSigner, HashVerifier
from tests.unit.test_core_replica import CHAIN, ROOT0, Disk, Net
from tests.unit.test_engine import Ports

# --- one Ready, to the call ----------------------------------------------------------------


def _block(height: int) -> Block:
    return Block(CHAIN, height, 0, bytes(32), 0, 5, height - 1, bytes(32), bytes(32), (b"t",))


CERT = QuorumCert(0, 0, 1, bytes(32), ())  # type: ignore[arg-type]  # never looked at


@dataclass
class Script:
    """A stand-in replica that hands out the Ready objects a test wrote, one per ``ready``
    call (then empty ones), and logs what the engine tells it into the shared ``calls``."""

    calls: list[tuple[str, object]]
    readies: list[Ready] = field(default_factory=list)
    me: int = 0
    halt_at: int | None = None  # the roots reported for this height halt it (they diverge)
    halted: str | None = None

    @property
    def cfg(self) -> CoreConfig:
        return CoreConfig(CHAIN, Quorum(4, 3), self.me, ROOT0)

    def ready(self) -> Ready:
        return self.readies.pop(0) if self.readies else Ready(None, (), ())

    def advance(self) -> None:
        self.calls.append(("advance", None))

    def executed(self, height: int, state_root: bytes, results_root: bytes) -> None:
        self.calls.append(("executed", height))
        if height == self.halt_at:
            self.halted = f"state or results root of height {height} differs"

    def speculated(self, block_hash: bytes, state_root: bytes, results_root: bytes) -> None:
        self.calls.append(("speculated", block_hash))

    def step(self, src: int, msg: Message, now_ms: int | None) -> None:
        self.calls.append(("replica.step", (src, msg)))

    def tick(self, now_ms: int) -> None:
        self.calls.append(("replica.tick", now_ms))

    def peer_height(self, peer: int, height: int) -> None:
        self.calls.append(("replica.peer_height", (peer, height)))

    def submit(self, raw: bytes, now_ms: int | None) -> AddResult:
        self.calls.append(("replica.submit", raw))
        return AddResult.ACCEPTED

    def deadline_ms(self) -> int | None:
        return None


class Watch(Observer):
    def __init__(self, calls: list[tuple[str, object]]) -> None:
        self.calls = calls

    def on_persist(self, data: bytes) -> None:
        self.calls.append(("on_persist", data))

    def on_commit(self, block: Block, cert: QuorumCert, roots: tuple[bytes, bytes]) -> None:
        self.calls.append(("on_commit", block.height))

    def on_speculate(self, block: Block, roots: tuple[bytes, bytes]) -> None:
        self.calls.append(("on_speculate", block.height))


def _scripted(*readies: Ready) -> tuple[Engine, Script]:
    calls: list[tuple[str, object]] = []
    script = Script(calls, list(readies))

    def save(data: bytes) -> None:
        calls.append(("persist", data))

    def execute(block: Block, cert: QuorumCert) -> tuple[bytes, bytes]:
        calls.append(("execute", block.height))
        return sha256(b"s", block.hash), sha256(b"r", block.hash)

    def speculate(block: Block) -> tuple[bytes, bytes]:
        calls.append(("speculate", block.height))
        return sha256(b"s", block.hash), sha256(b"r", block.hash)

    store = type("Store", (), {"save_safety": staticmethod(save)})()
    engine = Engine(
        script,  # type: ignore[arg-type]
        store,
        lambda dst, msg: calls.append(("send", dst)),
        execute,
        observers=[Watch(calls)],
        speculate=speculate,
    )
    return engine, script


def test_one_ready_is_persisted_sent_executed_in_height_order_then_speculated() -> None:
    """House rule 2, to the call: the state is durable (and only then reported durable)
    before any message leaves; each committed block is executed and reported to the
    replica, in height order, before the observers hear of it; the certified block is
    executed speculatively only after the commits of the same Ready (it runs on the state
    they leave: ``Ready.speculate``); the message to this node itself is stepped after the
    whole Ready. Kills: persist after the sends, the commits before the sends, speculation
    before the commits, the commits in reverse, ``on_persist`` before the save,
    ``on_commit`` before ``executed``."""
    vote = Vote(1, 0, 1, bytes(32), 0, b"")  # type: ignore[arg-type]
    ready = Ready(
        b"safety",
        ((1, vote), (0, vote), (2, vote)),
        ((_block(1), CERT), (_block(2), CERT)),
        (_block(3),),
    )
    engine, script = _scripted(ready)
    engine.drain(None)
    assert script.calls[:15] == [
        ("persist", b"safety"),
        ("on_persist", b"safety"),
        ("send", 1),
        ("send", 2),
        ("execute", 1),
        ("executed", 1),
        ("on_commit", 1),
        ("execute", 2),
        ("executed", 2),
        ("on_commit", 2),
        ("speculate", 3),
        ("speculated", _block(3).hash),
        ("on_speculate", 3),
        ("advance", None),
        ("advance", None),  # the empty Ready that ends the loop
    ]
    assert script.calls[15:] == [("replica.step", (0, vote)), ("advance", None)]


FEEDS: dict[str, Callable[[Engine], object]] = {
    "step": lambda e: e.step(1, Vote(1, 0, 1, bytes(32), 1, b""), 1_000),  # type: ignore[arg-type]
    "tick": lambda e: e.tick(1_000),
    "submit": lambda e: e.submit(b"trade", 1_000),
    "peer_height": lambda e: e.peer_height(1, 9, 1_000),
    "drain": lambda e: e.drain(1_000),
}


@pytest.mark.parametrize("feed", sorted(FEEDS))
def test_a_store_failing_on_any_input_stops_the_engine_for_good(feed: str) -> None:
    """Fail-stop on every input, not only those the first tests fed: the store fails (a
    disk gone) while persisting what the input led to; the error propagates, nothing is
    sent, the state is not reported durable, and every later input is refused. Kills the
    ``except Exception`` of ``tick``, ``peer_height`` and ``drain`` narrowed (the engine
    ran on with a Ready half done)."""
    engine, script = _scripted(Ready(b"safety", ((1, TxForward((b"t",))),), ()))
    boom = OSError("disk gone")

    def broken(data: bytes) -> None:
        raise boom

    engine._store = type("Broken", (), {"save_safety": staticmethod(broken)})()
    with pytest.raises(OSError):
        FEEDS[feed](engine)
    assert engine.failed is boom
    assert not [c for c in script.calls if c[0] in ("send", "on_persist")]
    for again in FEEDS.values():
        with pytest.raises(EngineFailedError):
            again(engine)


def test_the_control_a_working_store_lets_every_input_through() -> None:
    for feed in FEEDS.values():
        engine, script = _scripted(Ready(b"safety", ((1, TxForward((b"t",))),), ()))
        feed(engine)
        assert engine.failed is None and ("send", 1) in script.calls


# --- a validator numbered past 256 -----------------------------------------------------------


def test_a_validator_numbered_past_256_steps_its_own_timeout_back_in() -> None:
    """VALIDATORS_MAX is 1,000. The replica addresses its broadcast to ``range(n)``, whose
    integers past 256 are new objects each time, never the config's ``me``: loopback is by
    value. With ``dst is self._me`` validator 299 of 300 sent its own timeout to the
    network (which has no link to itself) and never counted it."""
    disk = Disk()
    replica = Replica(
        CoreConfig(CHAIN, Quorum.classic(300), 299, ROOT0),
        HashSigner(299),
        HashVerifier(300),
        disk,
        executed_root=ROOT0,
        results_root=EMPTY_ROOT,
    )
    ports = Ports(disk)
    engine = Engine(replica, ports, ports.send, ports.execute, observers=[ports])
    engine.submit(b"trade-1", 1_000)  # forwarded to the leader; the view's timer starts
    deadline = engine.deadline_ms()
    assert deadline is not None
    engine.tick(deadline)
    timeouts = [d for d, m in ports.of("send") if isinstance(m, Timeout)]
    assert sorted(timeouts) == list(range(299))
    assert [(s, type(m)) for s, m in ports.of("step")] == [(299, Timeout)]


# --- inputs ---------------------------------------------------------------------------------


def test_a_peer_ahead_is_asked_for_blocks_by_the_same_input() -> None:
    """``peer_height`` drains like every input: the catch-up request leaves at once, not
    at whatever input comes next (an idle node gets none)."""
    engine, ports = _engine4()
    engine.peer_height(2, 5, 1_000)
    assert [(d, type(m)) for d, m in ports.of("send")] == [(2, SyncRequest)]


def test_submit_without_drain_leaves_the_work_to_the_callers_drain() -> None:
    """The runtime records a client's transaction as pending between ``submit(...,
    drain=False)`` and ``drain``: a one-node cluster commits it inside the drain, and the
    commit settles what was recorded. Drained inside ``submit`` it committed before it was
    recorded, and stayed pending for ever."""
    net = Net(n=1, q=1)
    ports = Ports(net.disks[0])
    engine = Engine(net.nodes[0], ports, ports.send, ports.execute, observers=[ports])
    assert engine.submit(b"trade-1", 1_000, drain=False) is AddResult.ACCEPTED
    assert ports.calls == [] and net.disks[0].committed_height() == 0
    engine.drain(1_000)
    assert net.disks[0].committed_height() == 1


def test_the_optional_ports_and_submits_drain_are_taken_by_keyword_only() -> None:
    """``rewrite``, ``loopback`` and ``speculate`` are all callables: by position, one
    could silently be taken for another (a speculate port as a rewrite drops every
    message). ``drain`` of submit likewise (a bare False)."""
    engine, ports = _engine4()
    with pytest.raises(TypeError):
        Engine(engine.replica, ports, ports.send, ports.execute, None)  # type: ignore[misc]
    with pytest.raises(TypeError):
        engine.submit(b"trade-1", 1_000, False)  # type: ignore[misc]


def _engine4() -> tuple[Engine, Ports]:
    net = Net(n=4)
    ports = Ports(net.disks[1])
    return Engine(net.nodes[1], ports, ports.send, ports.execute, observers=[ports]), ports


# --- the speculation cache ------------------------------------------------------------------


def _blocks(n: int) -> list[Block]:
    return [replace(_block(1), txs=(bytes([i]),)) for i in range(n)]


@pytest.mark.parametrize("halt_at", [2, None], ids=["diverges-at-2", "control-agrees"])
def test_no_block_is_applied_on_top_of_a_diverged_state(halt_at: int | None) -> None:
    """Blocks 1 to 3 committed in one Ready, block 2's roots halting the replica (they
    differ from the certified ones): the engine applies 1 and 2 and stops, so the store
    keeps the state the divergence showed in. Before session 35 it applied 3 on top and
    speculated on 4 (review 34e's leftover). Control: roots that agree, every block
    applied, then the speculation."""
    ready = Ready(None, (), tuple((_block(h), CERT) for h in (1, 2, 3)), (_block(4),))
    engine, script = _scripted(ready)
    script.halt_at = halt_at
    engine.drain(None)
    done = [(k, v) for k, v in script.calls if k in ("execute", "speculate")]
    assert done == (
        [("execute", 1), ("execute", 2)]
        if halt_at
        else [("execute", 1), ("execute", 2), ("execute", 3), ("speculate", 4)]
    )
    assert script.calls[-1] == ("advance", None)  # the Ready is still finished


def test_the_speculation_cache_holds_its_max_and_no_more() -> None:
    """SPECULATIVE_OUTCOMES_MAX outcomes are kept; one more pushes out the oldest (the
    bound of every map: house rule 3). Kills ``>`` for ``>=``: one over the bound kept."""
    blocks = _blocks(SPECULATIVE_OUTCOMES_MAX + 1)
    for oldest_out in (True, False):
        cache: SpeculationCache[int] = SpeculationCache()
        kept = blocks if oldest_out else blocks[:-1]
        for i, block in enumerate(kept):
            cache.keep(block, ROOT0, i)
        taken = cache.take(blocks[0], ROOT0)
        assert taken == (None if oldest_out else 0)
    cache = SpeculationCache()
    for i, block in enumerate(blocks):
        cache.keep(block, ROOT0, i)
    assert cache.take(blocks[1], ROOT0) == 1  # the second oldest stayed


def test_a_kept_outcome_is_taken_on_an_equal_root_and_refused_on_any_other() -> None:
    """The base root is compared by value: the commit's root is computed afresh, never
    the object the speculation kept (``is not``: every kept outcome thrown away, the block
    executed twice). A kept root greater than the commit's is another state too (``<``:
    the outcome of another state written)."""
    block = _blocks(1)[0]
    cache: SpeculationCache[str] = SpeculationCache()
    cache.keep(block, sha256(b"root"), "outcome")
    assert cache.take(block, sha256(b"root")) == "outcome"
    low, high = sorted((sha256(b"root-a"), sha256(b"root-b")))
    for kept, base in ((high, low), (low, high)):
        cache.keep(block, kept, "outcome")
        assert cache.take(block, base) is None
