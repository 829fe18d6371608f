"""Deterministic simulation of a validator cluster (FoundationDB / VOPR style).

Every validator's consensus core runs in this process against the real settlement
``apply_block`` and a ``MemoryStore`` per node (the node's "disk"). One seeded
``random.Random`` drives the network (delay, drop, duplicate, reorder through random
delays, partitions), crashes and restarts, Byzantine twins, Byzantine strategies
(``tests/sim/byzantine.py``) and the client workload, so a seed replays exactly. The
:class:`~tests.sim.invariants.Checker` sees every send, every persisted safety state and
every applied block.

Each instance runs the validator's own driver, :class:`~node.core.engine.Engine` (the
ready loop of ``node/runtime/_node.py``): the harness only supplies its ports (the
instance's ``MemoryStore``, a send into the simulated network, an execute that applies the
block and shows it to the checker, and, as the runtime does, a loopback port that steps
what an instance sent itself as a later event at the same time, behind the other events
due then), a rewrite port for Byzantine code and an observer
(``_Watch``) for the checker's per-message hooks. A failing seed can replay with
transcripts (``Cluster.transcripts``, ``node/core/transcript.py``).
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, partial

from node import crypto
from node.config import ADMISSION_EXPIRY_TOLERANCE_MS, COMMIT_RELAY_FACTOR, VIEW_PROGRESS_FACTOR
from node.core import (
    AddResult,
    Block,
    CoreConfig,
    Ed25519Signer,
    Ed25519Verifier,
    Message,
    Phase,
    Proposal,
    Quorum,
    QuorumCert,
    Replica,
    Signer,
    Verifier,
    encode_block,
    encode_qc,
)
from node.core.engine import Engine, Observer, SpeculationCache
from node.core.transcript import Transcript
from node.genesis import DemoNetwork
from node.runtime import StoreSource
from node.settlement import (
    QUIET_RESULTS_ROOT,
    BlockContext,
    BlockOutcome,
    Registry,
    ResultCode,
    Transaction,
    apply_block,
    precheck,
)
from node.store import MemoryStore
from tests.sim.byzantine import STRATEGIES, Env, Equivocate, Strategy, wire
from tests.sim.invariants import Checker, Violation
from tests.sim.workload import SimTx, late_for, ok_pool, refusal_pool, sim_network

VIEW_TIMEOUT_BASE_MS = 400
VIEW_TIMEOUT_MAX_MS = 3_200
BATCH_DELAY_MS = 5
CLIENT_RETRY_MS = 3_000
LIVENESS_BOUND_MS = 30_000  # after heal: every acknowledged tx committed within this
QUIET_CHECK_MS = 2 * VIEW_TIMEOUT_MAX_MS
EVENTS_MAX = 2_000_000


@cache
def memo_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Each Ed25519 signature is checked once per process (the result is identical)."""
    return crypto.verify(public_key, message, signature)


class HashSigner:
    """Fast deterministic stand-in for Ed25519 in most seeds: a keyed hash per validator."""

    def __init__(self, index: int) -> None:
        self._key = b"sim-key-%d" % index

    def sign(self, message: bytes) -> bytes:
        return hashlib.sha256(self._key + message).digest()


class HashVerifier:
    def __init__(self, n: int) -> None:
        self._signers = [HashSigner(i) for i in range(n)]

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        return 0 <= index < len(self._signers) and self._signers[index].sign(message) == signature


class CountingVerifier:
    """Counts the signature checks a replica does, so the checker can charge each peer."""

    def __init__(self, inner: Verifier) -> None:
        self.inner, self.count = inner, 0

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        self.count += 1
        return self.inner.verify(index, message, signature)


class MemoVerifier(Ed25519Verifier):
    def __init__(self, public_keys: list[bytes]) -> None:
        super().__init__(public_keys)
        self._pk = public_keys

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        return 0 <= index < len(self._pk) and memo_verify(self._pk[index], message, signature)


@dataclass
class Scenario:
    """Everything a seed decides, drawn up front so the run is reproducible."""

    n: int
    q: int
    seed: int
    unsafe: bool = False
    twins: tuple[int, ...] = ()  # validators running as two instances with one key
    byz: dict[int, str] = field(default_factory=dict)  # validator -> Byzantine strategy
    byz_pool: tuple[str, ...] = ()  # the strategies byz was drawn from (for the replay)
    byz_count: int | None = None  # forced number of Byzantine validators (controls)
    ed25519: bool = False
    txs: int = 24
    chaos_ms: int = 4_000
    delay_ms: tuple[int, int] = (1, 20)
    drop: float = 0.0
    dup: float = 0.0
    faults: list[tuple[int, str, tuple[int, ...]]] = field(default_factory=list)
    submit_times: list[int] = field(default_factory=list)
    # Refusals (tests/sim/workload.py): (submit offset, kind, index): "pool" takes
    # refusal_pool()[index]; "expired" and "past_deadline" the late trade for that time.
    refusals: list[tuple[int, str, int]] = field(default_factory=list)
    replay_times: list[int] = field(default_factory=list)  # a client resends a committed tx
    groups_at: dict[int, dict[int, int]] = field(default_factory=dict)  # scripted partitions
    # Which validators pipeline (ADR 0012: the engine's speculate port, the runtime's
    # ``pipeline`` config): "all", "none", or "mixed" (the even indexes).
    pipeline: str = "all"
    # The progress deadline's factor (node/core/pacemaker.py; 0: none, a control).
    progress_factor: int = VIEW_PROGRESS_FACTOR
    # The commit-vote relay's factor (node/core/pacemaker.py; 0: none, a control).
    relay_factor: int = COMMIT_RELAY_FACTOR

    def pipelines(self, index: int) -> bool:
        return self.pipeline == "all" or (self.pipeline == "mixed" and index % 2 == 0)


@dataclass
class Instance:
    """One running copy of a validator (twins and equivocators have two per index)."""

    name: int  # unique instance id
    index: int  # validator index (the key)
    store: MemoryStore
    core: Replica | None
    honest: bool
    tick_at: int | None = None
    byz: Strategy | None = None  # modified code between the replica and the network
    face: int | None = None  # an equivocator's face: it talks to honest half ``face`` only
    verifier: CountingVerifier | None = None
    engine: Engine | None = None  # the validator's driver around ``core`` (None: crashed)
    verify_src: int | None = None  # the sender whose message the verifier is checking
    verify_mark: int = 0  # the verifier's count when that message was stepped
    # Outcomes of certified blocks executed ahead of their commit (lost with a crash).
    speculated: SpeculationCache[BlockOutcome] = field(default_factory=SpeculationCache)


def _network(n: int) -> DemoNetwork:
    return sim_network(n)


def _tx_pool(n: int) -> tuple[tuple[bytes, Transaction], ...]:
    return ok_pool(n)


class Cluster:
    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.rng = random.Random(sc.seed * 7919 + sc.n)
        self.net = _network(sc.n)
        self.genesis = self.net.genesis
        self.quorum = Quorum(sc.n, sc.q, unsafe=sc.unsafe)
        self.now = self.genesis.genesis_time_ms
        self.t0 = self.now
        self._events: list[tuple[int, int, str, object]] = []
        self._seq = 0
        self.groups: dict[int, int] = {}  # instance name -> partition group
        self.instances: list[Instance] = []
        pool = _tx_pool(sc.n)
        self.workload = random.Random(sc.seed).sample(pool, min(sc.txs, len(pool)))
        self.refusals = [(t, _refusal(sc.n, kind, k, t)) for t, kind, k in sc.refusals]
        txs: dict[bytes, Transaction | None] = {raw: tx for raw, tx in self.workload}
        for _, sim in self.refusals:
            txs[sim.raw] = sim.tx
            if sim.twin is not None:
                txs[sim.twin] = sim.tx
            for _, raw, tx in sim.companions:
                txs[raw] = tx
        self.checker = Checker(self.genesis, txs)
        # Client transactions honest admission refused, with the code: a final answer.
        self.answered: dict[bytes, ResultCode] = {}
        self.admission_codes: Counter[ResultCode] = Counter()
        self.acked: dict[bytes, int] = {}  # tx bytes -> time acknowledged by honest code
        self.submitted: dict[bytes, None] = {}  # every tx a client sent (it retries them)
        # After stabilisation: tx -> highest honest view when an honest node first held it.
        self.start_view: dict[bytes, int] = {}
        self._watching = False
        self.events_run = 0
        # The runtime's loopback order, exercised: loopback steps run, and inputs stepped
        # on an instance while its loopback step was pending (peer messages, ticks).
        self.loopback_steps = 0
        self.loopback_overtaken = 0
        self._loopback_pending: set[int] = set()
        # (validator, view) of every pipelined proposal an honest instance sent (ADR 0012).
        self.pipelined: set[tuple[int, int]] = set()
        self.sent: Counter[str] = Counter()  # message kinds, for coverage figures
        self.kept_down: set[int] = set()  # instances that stay crashed after heal
        self._wired: tuple[object, Message | None] = (None, None)  # last message through wire()
        # Engine transcripts per instance name, when asked for (``record_transcripts``).
        self.transcripts: dict[int, Transcript] | None = None
        # A planted network fault (directed tests): messages it returns True for are lost.
        self.drop_if: Callable[[Instance, int, Message], bool] | None = None
        # Honest halves an equivocator's two faces talk to (own PRNG: other draws unchanged).
        byz_rng = random.Random(sc.seed * 104_729 + sc.n)
        honest = [i for i in range(sc.n) if i not in sc.byz and i not in sc.twins]
        byz_rng.shuffle(honest)
        self.half = {index: k % 2 for k, index in enumerate(honest)}
        for index in range(sc.n):
            strategy = sc.byz.get(index)
            copies = 2 if index in sc.twins or strategy == Equivocate.name else 1
            for copy in range(copies):
                inst = self._add_instance(index, honest=index not in sc.twins and not strategy)
                if strategy is not None:
                    self._corrupt(inst, strategy, copy, byz_rng.randrange(2**32))

    # --- construction ------------------------------------------------------------------

    def _signer(self, index: int) -> Signer:
        if self.sc.ed25519:
            return Ed25519Signer(self.net.validator_keys[index])
        return HashSigner(index)

    def _verifier(self) -> Verifier:
        if self.sc.ed25519:
            return MemoVerifier([k.public_key for k in self.net.validator_keys])
        return HashVerifier(self.sc.n)

    def _add_instance(self, index: int, honest: bool) -> Instance:
        inst = Instance(len(self.instances), index, MemoryStore(self.genesis), None, honest)
        self.instances.append(inst)
        self._boot(inst)
        return inst

    def _corrupt(self, inst: Instance, strategy: str, copy: int, salt: int) -> None:
        """Put modified code between this instance's replica and the network."""
        env = Env(
            index=inst.index,
            n=self.sc.n,
            q=self.sc.q,
            chain_id=self.genesis.chain_id,
            signer=self._signer(inst.index),
            core=lambda: inst.core,
            peer=lambda: next((i.core for i in self.instances if i.honest and i.core), None),
            workload=tuple(raw for raw, _ in self.workload),
            coalition=self.sc.seed,
            now=lambda: self.now,
        )
        inst.byz = STRATEGIES[strategy](env, random.Random(salt))
        if inst.engine is not None:
            inst.engine.rewrite = partial(self._byz_out, inst)
        if isinstance(inst.byz, Equivocate):
            inst.face = inst.byz.face = copy
        pulse = inst.byz.pulse_ms
        if pulse is not None:
            self._push(self.now + pulse, "call", lambda: self._pulse(inst, pulse))

    def _pulse(self, inst: Instance, every_ms: int) -> None:
        if inst.core is not None and inst.byz is not None:
            for dst, msg in inst.byz.pulse():
                self._send_byz(inst, dst, msg)
        self._push(self.now + every_ms, "call", lambda: self._pulse(inst, every_ms))

    def _send_byz(self, inst: Instance, dst: int, msg: Message) -> None:
        sent = self._wire(msg)
        if sent is not None:
            self.send(inst, dst, sent)

    def _wire(self, msg: Message) -> Message | None:
        # One message is often sent to every peer: encode it once.
        if self._wired[0] is not msg:
            self._wired = (msg, wire(msg))
        return self._wired[1]

    def _byz_out(self, inst: Instance, dst: int, msg: Message) -> list[tuple[int, Message]]:
        """The engine's rewrite port of a Byzantine instance: what its modified code sends
        for what the inner replica sends. A loopback message also passes the strategy's
        ``incoming``, as any message reaching the inner replica does."""
        assert inst.byz is not None
        out = []
        for d, m in inst.byz.outgoing(dst, msg):
            sent = self._wire(m)
            if sent is not None and d == inst.index:
                sent = inst.byz.incoming(d, sent)
            if sent is not None:
                out.append((d, sent))
        return out

    def _tx_check(self, raw: bytes) -> bool:
        """The runtime's admission precheck, which forwarded transactions pass too."""
        return self.admission(raw) is ResultCode.OK

    def admission(self, raw: bytes) -> ResultCode:
        """What an honest node's runtime answers a client before its mempool sees the
        transaction (node/runtime/_node.py ``admission``): by its clock, with the tolerance."""
        check = precheck(
            Registry.at_genesis(self.genesis),  # the sim's signers keep their genesis keys
            raw,
            memo_verify,
            now_ms=self.now,
            tolerance_ms=ADMISSION_EXPIRY_TOLERANCE_MS,
        )
        return check.code

    def _boot(self, inst: Instance) -> None:
        cfg = CoreConfig(
            chain_id=self.genesis.chain_id,
            quorum=self.quorum,
            me=inst.index,
            genesis_state_root=inst.store.head().state_root,
            view_timeout_base_ms=VIEW_TIMEOUT_BASE_MS,
            view_timeout_max_ms=VIEW_TIMEOUT_MAX_MS,
            view_progress_factor=self.sc.progress_factor,
            commit_relay_factor=self.sc.relay_factor,
            batch_delay_ms=BATCH_DELAY_MS,
            quiet_results_root=QUIET_RESULTS_ROOT,
        )
        source = StoreSource(inst.store)
        state_root, results = source.executed_roots()
        inst.verifier = CountingVerifier(self._verifier())
        inst.core = core = Replica(
            cfg,
            self._signer(inst.index),
            inst.verifier,
            source,
            executed_root=state_root,
            results_root=results,
            safety=inst.store.load_safety(),
            now_ms=self.now,
            tx_check=self._tx_check,
        )
        inst.engine = Engine(
            core,
            inst.store,
            partial(self.send, inst),
            partial(self._apply, inst),
            rewrite=None if inst.byz is None else partial(self._byz_out, inst),
            observers=[_Watch(self, inst)],
            loopback=partial(self._push_loopback, inst),
            speculate=partial(self._speculate, inst) if self.sc.pipelines(inst.index) else None,
        )
        inst.speculated = SpeculationCache()
        if self.transcripts is not None:
            self._record(inst)
        inst.tick_at = None
        inst.engine.drain(self.now)

    def record_transcripts(self) -> None:
        """From now on (and across restarts) every instance's engine keeps a transcript."""
        self.transcripts = {}
        for inst in self.instances:
            if inst.engine is not None:
                self._record(inst)

    def _record(self, inst: Instance) -> None:
        """A transcript for this instance's engine; after a restart it goes on in the same
        lines as before the crash."""
        assert self.transcripts is not None and inst.engine is not None
        label = f"i{inst.name} "
        before = self.transcripts.get(inst.name)
        if before is not None:
            before.lines.append(f"{label}t={self.now - self.t0} restart (memory lost, disk kept)")
        t = Transcript(
            inst.engine.replica, label, None if before is None else before.lines, t0_ms=self.t0
        )
        self.transcripts[inst.name] = t
        inst.engine.observers.append(t)

    # --- events ------------------------------------------------------------------------

    def _push(self, at: int, kind: str, data: object) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, kind, data))

    def _push_loopback(self, inst: Instance) -> None:
        self._loopback_pending.add(inst.name)
        self._push(self.now, "loopback", (inst.name, inst.engine))

    def send(self, src: Instance, dst: int, msg: Message) -> None:
        if self.drop_if is not None and self.drop_if(src, dst, msg):
            return
        kind = type(msg).__name__
        if kind == "Proposal" and msg.tc is not None:  # type: ignore[union-attr]
            kind = "Proposal+TC"
        self.sent[kind] += 1
        if dst == src.index:  # loopback: never lost, never delayed
            self._push(self.now, "msg", (src.name, src.index, msg))
            return
        for inst in self.instances:
            if inst.index != dst or not self._connected(src.name, inst.name):
                continue
            if self.rng.random() < self.sc.drop:
                continue
            copies = 2 if self.rng.random() < self.sc.dup else 1
            for _ in range(copies):
                lo, hi = self.sc.delay_ms
                self._push(self.now + self.rng.randint(lo, hi), "msg", (inst.name, src.index, msg))

    def _connected(self, a: int, b: int) -> bool:
        if self.groups.get(a, 0) != self.groups.get(b, 0):
            return False
        fa, fb = self.instances[a].face, self.instances[b].face
        if fa is None or fb is None:
            face, other = (fa, b) if fb is None else (fb, a)
            return face is None or self.half.get(self.instances[other].index, face) == face
        return fa == fb

    def _apply(self, inst: Instance, block: Block, cert: QuorumCert) -> tuple[bytes, bytes]:
        """The engine's execute port: the real settlement, the instance's disk, the checker."""
        ctx = BlockContext(block.height, block.time_ms)
        outcome = inst.speculated.take(block, inst.store.head().state_root)
        if outcome is None:
            outcome = apply_block(inst.store, block.txs, ctx, verify=memo_verify)
        inst.store.commit_block(block.hash, encode_block(block), encode_qc(cert), ctx, outcome)
        self.checker.on_commit(inst, block, cert, outcome, self.now)
        return outcome.state_root, outcome.results_root

    def _speculate(self, inst: Instance, block: Block) -> tuple[bytes, bytes]:
        """The engine's speculate port: the real settlement on the committed state, kept."""
        ctx = BlockContext(block.height, block.time_ms)
        outcome = apply_block(inst.store, block.txs, ctx, verify=memo_verify)
        inst.speculated.keep(block, inst.store.head().state_root, outcome)
        return outcome.state_root, outcome.results_root

    def _charge_verified(self, inst: Instance, src: int | None) -> None:
        """Charge the signature checks since the last message stepped to its sender, and
        start counting for ``src`` (None: no message is being stepped)."""
        assert inst.verifier is not None
        count = inst.verifier.count
        if inst.verify_src is not None:
            self.checker.on_verified(inst, inst.verify_src, count - inst.verify_mark, self.now)
        inst.verify_src, inst.verify_mark = src, count

    def _schedule_tick(self, inst: Instance) -> None:
        assert inst.core is not None
        at = inst.core.deadline_ms()
        if at is None:
            inst.tick_at = None
            return
        at = max(at, self.now + 1)
        if inst.tick_at is None or at < inst.tick_at or inst.tick_at < self.now:
            inst.tick_at = at
            self._push(at, "tick", inst.name)

    def _run_event(self, kind: str, data: object) -> None:
        if kind == "msg":
            name, src, msg = data  # type: ignore[misc]
            inst = self.instances[name]
            if inst.core is not None and inst.byz is not None:
                msg = inst.byz.incoming(src, msg)
            if inst.engine is not None and msg is not None:
                self.loopback_overtaken += name in self._loopback_pending
                inst.engine.step(src, msg, self.now)
                self._charge_verified(inst, None)
        elif kind == "loopback":
            name, engine = data  # type: ignore[misc]
            inst = self.instances[name]
            if inst.engine is engine:  # not one a crash has since replaced
                self._loopback_pending.discard(name)
                self.loopback_steps += 1
                engine.step_loopback(self.now)
                self._charge_verified(inst, None)
        elif kind == "tick":
            inst = self.instances[data]  # type: ignore[index]
            if inst.engine is not None and inst.tick_at == self.now:
                inst.tick_at = None
                inst.engine.tick(self.now)
        elif kind == "call":
            data()  # type: ignore[operator]

    def run_until(self, t_end: int, stop: Callable[[], bool] | None = None) -> None:
        while self._events and self._events[0][0] <= t_end:
            at, _, kind, data = heapq.heappop(self._events)
            self.now = max(self.now, at)
            self._run_event(kind, data)
            self.events_run += 1
            if self.events_run > EVENTS_MAX:
                raise Violation("livelock", f"more than {EVENTS_MAX} events")
            if stop is not None and stop():
                return
        self.now = max(self.now, t_end)

    def at(self, offset_ms: int, fn: Callable[[], None]) -> None:
        self._push(self.t0 + offset_ms, "call", fn)

    # --- faults and clients ------------------------------------------------------------

    def crash(self, name: int) -> None:
        inst = self.instances[name]
        self.sent["(crash)"] += 1
        inst.core = inst.engine = None  # memory is gone; the store (disk) stays
        inst.tick_at = None
        inst.verify_src = None
        self.checker.on_crash(name)

    def restart(self, name: int) -> None:
        inst = self.instances[name]
        if inst.core is None and name not in self.kept_down:
            self._boot(inst)

    def partition(self, groups: dict[int, int]) -> None:
        self.groups = dict(groups)

    def heal(self) -> None:
        self.groups = {}

    def live(self) -> list[Instance]:
        return [i for i in self.instances if i.core is not None]

    def submit(self, raw: bytes, name: int | None = None) -> None:
        live = self.live()
        if not live:
            return
        inst = self.instances[name] if name is not None else self.rng.choice(live)
        if inst.engine is None:
            return
        self.submitted[raw] = None
        if inst.byz is not None and not inst.byz.accepts(raw):
            return  # it says nothing (a lie either way)
        if inst.byz is None:
            code = self.admission(raw)
            if code is not ResultCode.OK:
                self.answered[raw] = code
                self.admission_codes[code] += 1
                self.checker.on_refused(raw, code)
                return
        result = inst.engine.submit(raw, self.now, drain=False)
        if inst.byz is None:
            self.checker.on_submit(inst, raw, result, self.now)
            if result in (AddResult.ACCEPTED, AddResult.DUPLICATE):
                self.acked.setdefault(raw, self.now)
                if self._watching and inst.honest:
                    self._start_watch(raw)
        inst.engine.drain(self.now)

    def client_retry(self) -> None:
        """The SDK resubmits what it has no receipt for (idempotent: same tx id)."""
        for raw in list(self.submitted):
            if raw not in self.answered and not self.checker.committed_anywhere(raw):
                self.submit(raw)

    def replay_committed(self) -> None:
        """A client resends a transaction that has committed (to any node, lagging or not):
        at most a DUPLICATE, never a second application."""
        done = [raw for raw in self.submitted if self.checker.committed_anywhere(raw)]
        if done:
            self.submit(self.rng.choice(done))

    def due(self, raw: bytes) -> bool:
        """Whether ``raw`` must commit at every live honest node: not refused by honest
        admission (a final answer), unless some honest node committed it anyway."""
        return raw not in self.answered or self.checker.committed_anywhere(raw)

    def watch_censorship(self) -> None:
        """The network has stabilised: from now on count the views every transaction held
        by a live honest node waits for its commit."""
        self._watching = True
        holders = [i.core for i in self.live() if i.honest and i.core is not None]
        for raw in self.acked:
            if any(core.mempool.contains(raw) for core in holders):
                self._start_watch(raw)

    def _start_watch(self, raw: bytes) -> None:
        if raw in self.start_view or self.checker.committed_anywhere(raw):
            return
        views = [i.core.view for i in self.live() if i.honest and i.core is not None]
        self.start_view[raw] = max(views)

    def all_done(self) -> bool:
        """Every live honest node committed every transaction: those honest code
        acknowledged, and, since clients retry on random nodes, those only a Byzantine one
        took."""
        honest = [i for i in self.live() if i.honest]
        due = [raw for raw in self.submitted if self.due(raw)]
        return bool(honest) and all(
            self.checker.committed_at(i, raw) for i in honest for raw in due
        )

    def missing(self, raws: Iterable[bytes]) -> list[bytes]:
        """Of ``raws``, those some live honest node has not committed."""
        honest = [i for i in self.live() if i.honest]
        return [raw for raw in raws if not all(self.checker.committed_at(i, raw) for i in honest)]

    def honest_refusals(self) -> Counter[str]:
        """What honest replicas refused (``Replica.refused``), summed over the live ones,
        by "kind:reason"."""
        out: Counter[str] = Counter()
        for inst in self.live():
            if inst.honest and inst.core is not None:
                out.update({f"{k}:{r}": n for (k, r), n in inst.core.refused.items()})
        return out

    def crafted(self) -> Counter[str]:
        """What Byzantine strategies that count their crafted messages sent, by kind."""
        out: Counter[str] = Counter()
        for inst in self.instances:
            counts = getattr(inst.byz, "crafted", None)
            if counts is not None:
                out.update({f"{inst.byz.name}:{k}": v for k, v in counts.items()})  # type: ignore[union-attr]
        return out


class _Watch(Observer):
    """The checker's view of one instance's engine: every message the replica sends (with
    the safety state on its disk), the signature checks each received message cost its
    sender, and the next tick once the engine is idle."""

    def __init__(self, cl: Cluster, inst: Instance) -> None:
        self.cl, self.inst = cl, inst

    def on_step(self, src: int, msg: Message, now_ms: int | None) -> None:
        self.cl._charge_verified(self.inst, src)

    def on_send(self, dst: int, msg: Message) -> None:
        inst = self.inst
        cert = msg.parent_cert if isinstance(msg, Proposal) else None
        if inst.honest and cert is not None and cert.phase is Phase.PREPARE:
            self.cl.pipelined.add((inst.index, msg.view))
        self.cl.checker.on_send(inst, dst, msg, inst.store.load_safety(), self.cl.now)

    def on_drained(self) -> None:
        self.cl._schedule_tick(self.inst)


def _refusal(n: int, kind: str, index: int, offset_ms: int) -> SimTx:
    if kind == "pool":
        pool = refusal_pool(n)
        return pool[index % len(pool)]
    return late_for(n, kind, offset_ms)
