"""The one driver of a :class:`~node.core.replica.Replica`: the ready loop, and only one.

Theory of operation. A replica is a state machine with no I/O: the caller feeds it events
(``step``, ``tick``, ``submit``, ``peer_height``) and drains its ``Ready`` work. Doing that
work in the right order is what keeps a validator safe, so it is written once, here, and
the validator runtime (``node/runtime/_node.py``), the simulator (``tests/sim/harness.py``)
and the replica unit tests all run this code:

1. persist the safety state (durable before any message leaves: a vote sent and then
   forgotten by a crash would let this node vote twice);
2. send each message; one addressed to this node itself (a leader's own proposal, its own
   vote) is stepped back into the replica here, after the whole ``Ready`` is handled, so
   it never crosses the network. With a ``loopback`` port (the validator runtime) it is
   stepped later instead, when the caller calls ``step_loopback``: the runtime does that
   on the next event-loop turn, after the transport has written what this drain sent, so
   a leader's peers get its certificate before it spends its own time on the certificate
   (a lock's fdatasync, executing the block it commits);
3. execute each committed block, in height order, and report its roots (``executed``),
   stopping at a block whose roots halt the replica (they differ from the certified
   ones: nothing is applied on top of a diverged state); then execute each block the
   replica wants speculatively (certified, not committed: a pipelined child carries the
   roots after it, ADR 0012) and report its roots (``speculated``) — the ``speculate``
   port keeps that outcome to write at commit;
4. ``advance``; repeat until the replica has nothing left to do.

The engine touches the world only through its ports: a store that makes the safety state
durable (``save_safety``), a ``send`` function, an ``execute`` function that applies a
committed block and returns its roots, optionally a ``speculate`` function that executes a
certified block on the committed state without committing it (without one the replica
does not pipeline), and the clock value passed with every input. It has
no clock, randomness or I/O of its own, so it stays in the pure layer.

Seams for callers that watch or modify the traffic, at no cost when unused: observers
(:class:`Observer`) see every input and every decision (the simulator's checker, the
transcript of :mod:`node.core.transcript`), and ``rewrite`` replaces what the replica
sends with what actually leaves (the simulator's Byzantine validators: modified code
between an honest replica and the network).

Fail-stop. An exception that escapes a port or the replica leaves a ``Ready`` half done,
so the engine refuses every later input (:class:`EngineFailedError`); the runtime turns
the first exception into a node halt (``Node._guard``: log, metric, NOT_SERVING, exit).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

from node.config import SPECULATIVE_OUTCOMES_MAX
from node.core.mempool import AddResult
from node.core.replica import Replica
from node.core.types import Block, Message, QuorumCert

__all__ = [
    "Engine",
    "EngineFailedError",
    "Execute",
    "Loopback",
    "Observer",
    "Rewrite",
    "SafetyStore",
    "Send",
    "Speculate",
    "SpeculationCache",
]


class SafetyStore(Protocol):
    def save_safety(self, data: bytes) -> None:
        """Make the encoded safety state durable before returning."""


T = TypeVar("T")
Send = Callable[[int, Message], None]  # (destination validator, message): hand it out
# Apply a committed block to the ledger; returns (state root, results root) after it.
Execute = Callable[[Block, QuorumCert], tuple[bytes, bytes]]
# Execute a certified block at committed + 1 without committing it; returns the roots after
# it. The port keeps the outcome by block hash and ``Execute`` writes it if that block
# commits (a commit discards the others).
Speculate = Callable[[Block], tuple[bytes, bytes]]
# What actually leaves for one message the replica sends: (destination, message) pairs.
Rewrite = Callable[[int, Message], Iterable[tuple[int, Message]]]
# Messages to this node itself are waiting: call ``Engine.step_loopback`` soon (once).
Loopback = Callable[[], None]


class SpeculationCache(Generic[T]):
    """The ``speculate`` port's memory (one implementation for every caller): the outcome
    of executing a certified block, kept by block hash with the state root it ran on, so
    that the block's commit writes it instead of executing the block again."""

    def __init__(self, size_max: int = SPECULATIVE_OUTCOMES_MAX) -> None:
        self._size_max = size_max
        self._kept: dict[bytes, tuple[bytes, T]] = {}

    def keep(self, block: Block, base_root: bytes, outcome: T) -> None:
        if len(self._kept) >= self._size_max:
            self._kept.pop(next(iter(self._kept)))
        self._kept[block.hash] = (base_root, outcome)

    def take(self, block: Block, base_root: bytes) -> T | None:
        """The kept outcome of ``block`` if it ran on ``base_root`` (the state it commits
        on); every other kept outcome is for a block that can no longer commit."""
        kept = self._kept.pop(block.hash, None)
        self._kept.clear()
        if kept is None or kept[0] != base_root:
            return None
        return kept[1]


class EngineFailedError(RuntimeError):
    """An earlier input failed inside the engine; it takes no more (fail-stop)."""


class Observer:
    """Sees every input before the replica does and every decision the engine carries out.
    Subclasses override what they need; observers must not feed the engine."""

    def on_step(self, src: int, msg: Message, now_ms: int | None) -> None:
        """A message from ``src`` (this node itself for loopback) is about to be stepped."""

    def on_tick(self, now_ms: int) -> None:
        """The timer fired."""

    def on_submit(self, raw: bytes, result: AddResult, now_ms: int | None) -> None:
        """A client's transaction was offered to the mempool, with its answer."""

    def on_peer_height(self, peer: int, height: int, now_ms: int | None) -> None:
        """A peer said how far its chain goes."""

    def on_persist(self, data: bytes) -> None:
        """This safety state is durable (no message that depends on it has left yet)."""

    def on_send(self, dst: int, msg: Message) -> None:
        """The replica sends ``msg`` to ``dst`` (before any ``rewrite``)."""

    def on_commit(self, block: Block, cert: QuorumCert, roots: tuple[bytes, bytes]) -> None:
        """``block`` was executed, with these roots, and reported to the replica."""

    def on_speculate(self, block: Block, roots: tuple[bytes, bytes]) -> None:
        """``block`` was executed speculatively, with these roots, and reported."""

    def on_drained(self) -> None:
        """The replica has nothing left to do until the next input."""


class Engine:
    """Drives one replica. Every input method feeds it, then drains its work (``drain``).

    ``now_ms`` is the caller's clock; None (unit tests without a clock) keeps the
    replica's last one, as ``Replica.step`` does."""

    def __init__(
        self,
        replica: Replica,
        store: SafetyStore,
        send: Send,
        execute: Execute,
        *,
        rewrite: Rewrite | None = None,
        observers: Iterable[Observer] = (),
        loopback: Loopback | None = None,
        speculate: Speculate | None = None,
    ) -> None:
        self.replica = replica
        self._store, self._send, self._execute = store, send, execute
        self._speculate = speculate
        self.rewrite = rewrite  # settable: the simulator corrupts an instance after boot
        self.observers: list[Observer] = list(observers)
        self._me = replica.cfg.me
        # Loopback messages, stepped after each Ready (or, with a loopback port, at the
        # caller's next step_loopback): bounded by what the Ready objects of one drain
        # address to this node (its votes, the certificates it formed, its timeout).
        self._local: deque[Message] = deque()
        self._loopback = loopback
        self._loopback_due = False  # the port was called and step_loopback has not run
        self._draining = False
        self.failed: BaseException | None = None  # the exception that stopped the engine

    # --- inputs --------------------------------------------------------------------------

    def step(self, src: int, msg: Message, now_ms: int | None) -> None:
        """A message from validator ``src`` (authenticated by the caller's transport)."""
        self._check_running()
        for o in self.observers:
            o.on_step(src, msg, now_ms)
        try:
            self.replica.step(src, msg, now_ms)
            self._drain_once(now_ms)
        except Exception as e:
            self._stop(e)
            raise

    def tick(self, now_ms: int) -> None:
        """The caller's timer reached ``deadline_ms`` (early or late ticks are harmless)."""
        self._check_running()
        for o in self.observers:
            o.on_tick(now_ms)
        try:
            self.replica.tick(now_ms)
            self._drain_once(now_ms)
        except Exception as e:
            self._stop(e)
            raise

    def submit(self, raw: bytes, now_ms: int | None, *, drain: bool = True) -> AddResult:
        """A client's transaction. With ``drain=False`` the caller records the answer first
        and then calls ``drain`` (a commit inside the drain may settle what it records)."""
        self._check_running()
        try:
            result = self.replica.submit(raw, now_ms)
            for o in self.observers:
                o.on_submit(raw, result, now_ms)
            if drain:
                self._drain_once(now_ms)
        except Exception as e:
            self._stop(e)
            raise
        return result

    def peer_height(self, peer: int, height: int, now_ms: int | None) -> None:
        """``peer`` says its chain reaches ``height`` (catch-up starts if we are behind)."""
        self._check_running()
        for o in self.observers:
            o.on_peer_height(peer, height, now_ms)
        try:
            self.replica.peer_height(peer, height)
            self._drain_once(now_ms)
        except Exception as e:
            self._stop(e)
            raise

    def step_loopback(self, now_ms: int | None) -> None:
        """Step the messages this node sent itself so far, then drain (a ``loopback`` port's
        call-back; without one, loopback happens inside every drain and this only drains)."""
        self._check_running()
        try:
            if self._draining:
                # From inside a drain this call could do nothing, and the messages would
                # wait for some later input: the port must call back after it returns.
                raise RuntimeError("step_loopback called from inside a drain")
            self._loopback_due = False  # what this drain sends us asks the port again
            self._drain_once(now_ms, step_local=True)
        except Exception as e:
            self._stop(e)
            raise

    def deadline_ms(self) -> int | None:
        """When the caller's timer should call ``tick`` next (None: only on input)."""
        return self.replica.deadline_ms()

    # --- the loop ------------------------------------------------------------------------

    def drain(self, now_ms: int | None) -> None:
        """Do all the replica's work: persist, send, execute, advance, loopback; repeat."""
        self._check_running()
        try:
            self._drain_once(now_ms)
        except Exception as e:
            self._stop(e)
            raise

    def _drain_once(self, now_ms: int | None, *, step_local: bool = False) -> None:
        if self._draining:
            return  # a port fed an input from inside the loop: the outer loop finishes it
        self._draining = True
        try:
            self._drain(now_ms, step_local)
        finally:
            self._draining = False
        for o in self.observers:
            o.on_drained()

    def _drain(self, now_ms: int | None, step_local: bool) -> None:
        self._drain_ready()
        while self._local:
            if self._loopback is not None:
                if not step_local:
                    if not self._loopback_due:
                        self._loopback_due = True
                        self._loopback()
                    return
                step_local = False  # what these steps send to us waits for the next call
            batch = list(self._local)
            self._local.clear()
            for msg in batch:
                for o in self.observers:
                    o.on_step(self._me, msg, now_ms)
                self.replica.step(self._me, msg, now_ms)
            self._drain_ready()

    def _drain_ready(self) -> None:
        r = self.replica
        while not (ready := r.ready()).empty():
            if ready.to_persist is not None:
                self._store.save_safety(ready.to_persist)  # durable before any vote leaves
                for o in self.observers:
                    o.on_persist(ready.to_persist)
            for dst, msg in ready.to_send:
                for o in self.observers:
                    o.on_send(dst, msg)
                if self.rewrite is None:
                    self._route(dst, msg)
                else:
                    for d, m in self.rewrite(dst, msg):
                        self._route(d, m)
            for block, cert in ready.committed:
                roots = self._execute(block, cert)
                r.executed(block.height, roots[0], roots[1])
                for o in self.observers:
                    o.on_commit(block, cert, roots)
                if r.halted is not None:
                    # The roots differ from the certified ones: nothing more is applied on
                    # top, so the store keeps the state the divergence showed in, for the
                    # operator to examine (the later blocks were applied too before 35).
                    break
            if r.halted is None:
                self._run_speculation(ready.speculate)
            r.advance()
        r.advance()

    def _run_speculation(self, blocks: tuple[Block, ...]) -> None:
        """Execute what the replica wants speculatively, on the state the commits of the
        same ``Ready`` left; without the port it never learns the roots (no pipelining)."""
        if self._speculate is None:
            return
        for block in blocks:
            roots = self._speculate(block)
            self.replica.speculated(block.hash, roots[0], roots[1])
            for o in self.observers:
                o.on_speculate(block, roots)

    def _route(self, dst: int, msg: Message) -> None:
        if dst == self._me:
            self._local.append(msg)
        else:
            self._send(dst, msg)

    # --- fail-stop -----------------------------------------------------------------------

    def _check_running(self) -> None:
        if self.failed is not None:
            raise EngineFailedError(f"the engine stopped at: {self.failed!r}") from self.failed

    def _stop(self, e: Exception) -> None:
        """An exception escaped (whatever it is, as the runtime's ``_guard`` treats it): the
        engine takes no more input; the caller re-raises it."""
        if self.failed is None:
            self.failed = e
