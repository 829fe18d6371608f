"""Seeds to scenarios, scenarios to runs, and for a failing seed the replay command and
the engine transcripts of its nodes (``explain``)."""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from node.core import Phase, Quorum, Vote, tx_key
from tests.sim.byzantine import STRATEGIES, SlowLeader, SlowQC
from tests.sim.harness import (
    CLIENT_RETRY_MS,
    LIVENESS_BOUND_MS,
    QUIET_CHECK_MS,
    Cluster,
    Scenario,
    _tx_pool,
)
from tests.sim.invariants import Violation, censorship_bound_views
from tests.sim.workload import refusal_pool

FAULT_KINDS = (
    "isolate_leader",
    "halves",
    "minority",
    "crash",
    "crash_leader",
    "twins_split",
    "none",
)


# Where ``explain`` writes the transcripts of a failing seed (the repository's build/ by
# default; the environment variable moves it).
TRANSCRIPT_DIR_ENV = "SIM_TRANSCRIPT_DIR"
TRANSCRIPT_DIR_DEFAULT = Path(__file__).resolve().parents[2] / "build" / "sim-transcripts"


def replay_command(sc: Scenario) -> str:
    byz = f" BYZ={','.join(sc.byz_pool)}" if sc.byz_pool else ""
    count = f" BYZ_COUNT={sc.byz_count}" if sc.byz_count is not None else ""
    return f"make sim SEEDS=1 SEED_START={sc.seed} N={sc.n} Q={sc.q}{byz}{count}"


# Each seed's pipelining (Scenario.pipeline): every validator, none, or half of them, so
# the seeds run both drivers' paths and a cluster whose validators differ.
PIPELINE_MODES = ("all", "none", "mixed")


def make_scenario(
    n: int,
    q: int | None,
    seed: int,
    byz: tuple[str, ...] = (),
    byz_count: int | None = None,
) -> Scenario:
    """Draw a scenario from the seed: network weather, faults, twins, load; with ``byz``,
    Byzantine validators instead of twins, each running one of those strategies.

    ``byz_count`` Byzantine validators (default: drawn from 1 to the bound for safety and
    liveness together, min(2q - n - 1, n - q)); a count above it is a negative control.
    """
    quorum = Quorum(n, q) if q is not None else Quorum.classic(n)
    rng = random.Random(seed * 1_000_003 + n)
    sc = Scenario(n=n, q=quorum.q, seed=seed)
    sc.ed25519 = seed % 20 == 7  # real Ed25519 votes on one seed in twenty
    sc.pipeline = PIPELINE_MODES[seed % 3]  # not drawn: the other draws stay as they were
    sc.txs = rng.randint(8, 30) if n < 26 else rng.randint(6, 16)
    sc.chaos_ms = rng.randint(1_500, 5_000)
    hi = rng.choice((5, 20, 60, 150))
    sc.delay_ms = (1, hi)
    sc.drop = rng.choice((0.0, 0.0, 0.01, 0.05, 0.1))
    sc.dup = rng.choice((0.0, 0.02, 0.1))
    if quorum.safety_bound > 0 and rng.random() < 0.25:
        count = rng.randint(1, quorum.safety_bound)
        sc.twins = tuple(sorted(rng.sample(range(n), count)))
    for _ in range(rng.randint(0, 3)):
        start = rng.randint(0, sc.chaos_ms)
        length = rng.randint(100, 2_500)
        sc.faults.append((start, rng.choice(FAULT_KINDS), (length, rng.randint(0, 2**30))))
    sc.submit_times = sorted(rng.randint(0, sc.chaos_ms) for _ in range(sc.txs))
    _refusals(sc)
    if byz:
        _corrupt(sc, quorum, byz, byz_count)
    return sc


ROTATION_SEEDS = 13  # consecutive seeds that send every refusal kind between them


def _refusals(sc: Scenario) -> None:
    """Refusals mixed into the load, and replays of committed trades (own PRNG: the rest
    of the scenario is what the seed drew before refusals existed)."""
    rng = random.Random(sc.seed * 32_452_843 + sc.n)
    extra = rng.randint(0, 1)
    pool = refusal_pool(sc.n)
    by_kind: dict[str, list[int]] = {}
    for k, sim in enumerate(pool):
        by_kind.setdefault(sim.kind, []).append(k)
    # Twice: kinds whose code needs luck. pending_fails fails only if a block follows its
    # deadline; a duplicate is DUPLICATE only if both envelopes reach blocks.
    twice = ["duplicate", "pending_fails"]
    kinds = [*sorted(by_kind), "expired", "past_deadline", *twice, *twice]
    # Enough by rotation over the seeds that every ROTATION_SEEDS consecutive seeds send
    # every kind, however many kinds the workload grows; one more drawn half the time.
    rotated = -(-len(kinds) // ROTATION_SEEDS)
    for j in range(rotated + extra):
        at = rng.randint(0, sc.chaos_ms)
        kind = kinds[(rotated * sc.seed + j) % len(kinds)] if j < rotated else rng.choice(kinds)
        if kind in by_kind:
            sc.refusals.append((at, "pool", rng.choice(by_kind[kind])))
        else:
            sc.refusals.append((at, kind, 0))
    sc.replay_times = sorted(rng.randint(sc.chaos_ms // 2, sc.chaos_ms) for _ in range(2))


def _corrupt(sc: Scenario, quorum: Quorum, pool: tuple[str, ...], count: int | None) -> None:
    # Its own PRNG, so the rest of the scenario is the same seed with or without them.
    unknown = [name for name in pool if name not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown Byzantine strategy {unknown}; known: {sorted(STRATEGIES)}")
    rng = random.Random(sc.seed * 15_485_863 + sc.n)
    bound = min(quorum.safety_bound, quorum.liveness_bound)
    chosen = count if count is not None else rng.randint(min(1, bound), bound)
    sc.twins = ()
    sc.byz_pool, sc.byz_count = pool, count
    sc.byz = {i: rng.choice(pool) for i in sorted(rng.sample(range(sc.n), chosen))}


@dataclass
class RunResult:
    seed: int
    height: int
    commits: int
    sim_ms: int
    events: int
    twins: int
    acked: int
    sent: dict[str, int]
    censored_views: int = 0  # most views any tracked transaction waited after stabilising
    codes: dict[str, int] = field(default_factory=dict)  # result codes in blocks
    refused: dict[str, int] = field(default_factory=dict)  # codes honest admission answered
    refusals: dict[str, int] = field(default_factory=dict)  # honest Replica.refused, summed
    crafted: dict[str, int] = field(default_factory=dict)  # Byzantine messages, by kind
    loopback_steps: int = 0  # the runtime's deferred loopback, stepped (harness.Cluster)
    loopback_overtaken: int = 0  # peer messages stepped while a loopback step was pending
    pipelined_by: dict[int, int] = field(default_factory=dict)  # validator -> its proposals


def _fault(cl: Cluster, kind: str, length: int, salt: int) -> None:
    rng = random.Random(salt)
    sc, names = cl.sc, [i.name for i in cl.instances]
    cores = [i.core for i in cl.live() if i.core is not None]
    ahead = max(cores, key=lambda core: core.view, default=None)
    leader = ahead.leader(ahead.view) if ahead is not None else 0
    if kind == "isolate_leader":
        cl.partition({i.name: 1 for i in cl.instances if i.index == leader})
    elif kind == "twins_split" and sc.twins:
        cl.partition(_twin_sides(cl, rng))
    elif kind in ("halves", "twins_split"):
        rng.shuffle(names)
        cl.partition({name: 1 for name in names[: len(names) // 2]})
    elif kind == "minority":
        cl.partition({name: 1 for name in rng.sample(names, sc.n - sc.q)})
    elif kind in ("crash", "crash_leader"):
        victims = rng.sample(names, max(1, sc.n - sc.q))
        if kind == "crash_leader":
            victims = [i.name for i in cl.instances if i.index == leader]
        for name in victims:
            cl.crash(name)
        for name in victims:
            cl.at(_offset(cl) + length, lambda name=name: cl.restart(name))
        return
    else:
        return
    cl.at(_offset(cl) + length, cl.heal)


def _twin_sides(cl: Cluster, rng: random.Random) -> dict[int, int]:
    """The twins attack: one copy of each twin per side, honest validators split evenly."""
    side: dict[int, int] = {}
    seen: set[int] = set()
    honest = [i for i in range(cl.sc.n) if i not in cl.sc.twins]
    rng.shuffle(honest)
    for inst in cl.instances:
        if inst.index in cl.sc.twins:
            side[inst.name] = 1 if inst.index in seen else 0
            seen.add(inst.index)
        else:
            side[inst.name] = 0 if honest.index(inst.index) < len(honest) // 2 else 1
    return side


def _offset(cl: Cluster) -> int:
    return cl.now - cl.t0


def build(sc: Scenario) -> Cluster:
    cl = Cluster(sc)
    for start, kind, (length, salt) in sc.faults:
        cl.at(start, lambda k=kind, n=length, s=salt: _fault(cl, k, n, s))
    for (raw, _), t in zip(cl.workload, sc.submit_times, strict=False):
        cl.at(t, lambda raw=raw: cl.submit(raw))
    for t, sim in cl.refusals:
        for raw in (sim.raw, sim.twin):
            if raw is not None:
                cl.at(t, lambda raw=raw: cl.submit(raw))
        for delay, raw, _ in sim.companions:  # all load within the chaos phase
            cl.at(min(t + delay, sc.chaos_ms), lambda raw=raw: cl.submit(raw))
    for t in sc.replay_times:
        cl.at(t, cl.replay_committed)
    for t in range(CLIENT_RETRY_MS, sc.chaos_ms + LIVENESS_BOUND_MS, CLIENT_RETRY_MS):
        cl.at(t, cl.client_retry)
    return cl


def heal_all(cl: Cluster, keep_down: int) -> None:
    """End of chaos: networks heal, crashed nodes restart (except ``keep_down`` of them)."""
    cl.heal()
    cl.sc.drop = 0.0
    down = 0
    for inst in cl.instances:
        if inst.core is None:
            if down < keep_down and inst.honest:
                down += 1
                cl.kept_down.add(inst.name)
                continue
            cl.restart(inst.name)


def run(
    sc: Scenario, keep_down: int | None = None, *, transcripts: Path | None = None
) -> RunResult:
    """Run one scenario; raises :class:`Violation` naming the broken invariant.

    ``keep_down`` validators stay crashed after heal (default: a seeded number within
    the liveness bound n - q). With ``transcripts``, every engine records a transcript
    (no effect on the run: observers draw no randomness) and a violation writes them
    all to that file before it propagates.
    """
    cl = build(sc)
    if transcripts is None:
        return _run(cl, sc, keep_down)
    cl.record_transcripts()
    try:
        return _run(cl, sc, keep_down)
    except Violation:
        _write_transcripts(cl, transcripts)
        raise


def explain(sc: Scenario, keep_down: int | None = None) -> Path | None:
    """Replay a failing scenario with transcripts on; the file they are in, or None if
    the replay passed (a failure that does not replay is itself worth reporting)."""
    where = Path(os.environ.get(TRANSCRIPT_DIR_ENV) or TRANSCRIPT_DIR_DEFAULT)
    q = "-".join(sorted(sc.byz_pool)) or "honest"
    path = where / f"seed-{sc.seed}-n{sc.n}-q{sc.q}-{q}.txt"
    try:
        run(sc, keep_down, transcripts=path)
    except Violation:
        return path
    return None


def _write_transcripts(cl: Cluster, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        f.write(f"# {replay_command(cl.sc)}\n# simulated time {cl.now - cl.t0} ms\n")
        for name, t in sorted((cl.transcripts or {}).items()):
            inst = cl.instances[name]
            role = "honest" if inst.honest else (inst.byz.name if inst.byz else "twin")
            f.write(f"\n## instance {name}: validator {inst.index}, {role}\n{t.text()}")


def failure_report(sc: Scenario, e: Violation, keep_down: int | None = None) -> str:
    """What a failing seed prints: the violation, the replay command, the transcripts."""
    path = explain(sc, keep_down)
    where = f"transcripts: {path}" if path else "transcripts: the replay did not fail"
    return f"seed {sc.seed} n={sc.n} q={sc.q}: {e}\nreplay: {replay_command(sc)}\n{where}"


def _run(cl: Cluster, sc: Scenario, keep_down: int | None) -> RunResult:
    cl.run_until(cl.t0 + sc.chaos_ms)
    quorum = Quorum(sc.n, sc.q)
    rng = random.Random(sc.seed)
    if keep_down is None:
        faulty = len(sc.twins) + len(sc.byz)
        keep_down = rng.randint(0, max(0, quorum.liveness_bound - faulty))
    else:
        for inst in cl.instances[:keep_down]:
            cl.crash(inst.name)
    heal_all(cl, keep_down)
    cl.watch_censorship()
    # New load after heal: a probe reaches every live node, so a lagging idle node has work
    # and learns what it missed (an idle cluster is otherwise, by design, silent).
    used = {raw for raw, _ in cl.workload}
    probe, probe_tx = next((raw, tx) for raw, tx in reversed(_tx_pool(sc.n)) if raw not in used)
    cl.checker.txs[probe] = probe_tx
    for inst in cl.live():
        cl.submit(probe, inst.name)
    heal_at = cl.now
    cl.run_until(heal_at + LIVENESS_BOUND_MS, stop=cl.all_done)
    if not cl.all_done():
        missing = sum(1 for raw in cl.submitted if not cl.checker.committed_anywhere(raw))
        raise Violation(
            "liveness",
            f"{missing} of {len(cl.submitted)} submitted txs not committed everywhere "
            f"{LIVENESS_BOUND_MS} ms after heal (max height {cl.checker.max_height})",
        )
    waited = censored_views(cl)
    height = cl.checker.max_height
    cl.run_until(cl.now + QUIET_CHECK_MS)
    top = cl.checker.max_height

    # Load after the last commit can only be what honest admission refused and a Byzantine
    # node took (it may propose it whenever it leads), or a second envelope of a trade
    # that waited in a mempool while its twin committed; anything else is a block from
    # nothing (e.g. a committed transaction proposed again).
    def waiting(raw: bytes, h: int) -> bool:
        return raw in cl.answered or cl.checker.late_copy(raw, h)

    loaded = [
        h
        for h in range(height + 1, top + 1)
        if not all(waiting(raw, h) for raw in cl.checker.txs_at[h])
    ]
    if loaded:
        raise Violation(
            "idle", f"{len(loaded)} blocks with transactions were committed with no load"
        )
    if not cl.checker.quiet_at[top]:
        raise Violation("results", f"no block certifies the results of the last block {top}")
    check_acknowledged(cl)
    return RunResult(
        sc.seed, height, cl.checker.commits, cl.now - cl.t0, cl.events_run, len(sc.twins),
        len(cl.acked), dict(cl.sent), waited,
        {c.name: k for c, k in cl.checker.codes.items()},
        {c.name: k for c, k in cl.admission_codes.items()}, dict(cl.honest_refusals()),
        dict(cl.crafted()), cl.loopback_steps, cl.loopback_overtaken,
        dict(Counter(index for index, _ in cl.pipelined)),
    )  # fmt: skip


def check_acknowledged(cl: Cluster) -> None:
    """Every transaction honest code acknowledged (ACCEPTED, or DUPLICATE: pending or
    committed already) is committed at every live honest node (exactly once: the commit
    checks count). Unless honest admission later answered the client a refusal (a late
    trade whose only holder crashed: the simulator has no intake log; the refusal is
    final, and checked to stand). In ``run`` the liveness check covers this too (clients
    retry until a receipt); on its own it is the check for runs whose clients trust an
    acknowledgement."""
    acked = [raw for raw in cl.acked if raw not in cl.answered]
    missing = cl.missing(acked)
    if missing:
        raise Violation(
            "acknowledged",
            f"{len(missing)} of {len(acked)} acknowledged txs not committed at every live "
            f"honest node (max height {cl.checker.max_height})",
        )


def censored_views(cl: Cluster, bound: int | None = None) -> int:
    """Most views from stabilisation to commit of any transaction honest nodes held;
    raises a censorship violation above ``bound`` (default: censorship_bound_views)."""
    if bound is None:
        bound = censorship_bound_views(cl.sc.n, len(cl.sc.byz) + len(cl.sc.twins))
    worst = 0
    for raw, start in cl.start_view.items():
        view = cl.checker.commit_view_of(raw)
        if view is None and not cl.due(raw):
            continue  # refused at admission since: never committed, and need not be
        assert view is not None, "all_done() held, so every due transaction committed"
        waited = view - start
        worst = max(worst, waited)
        if waited > bound:
            raise Violation(
                "censorship",
                f"a transaction held by honest nodes since view {start} committed in view "
                f"{start + waited}: {waited} views, bound {bound}",
            )
    return worst


def split_brain(n: int, q: int, twins: tuple[int, ...], *, unsafe: bool = False) -> Cluster:
    """Two sides from the start, each with its own trades, then heal.

    Each side holds one instance of every twinned validator (with its key), so a side can
    reach q signatures only by counting twins; conflicting commits need more twins than
    2q - n - 1 (or a quorum that does not intersect).
    """
    sc = Scenario(n=n, q=q, seed=0, unsafe=unsafe, twins=twins, txs=4, chaos_ms=20_000)
    cl = Cluster(sc)
    side = _twin_sides(cl, random.Random(0))
    cl.partition(side)
    for k, (raw, _) in enumerate(cl.workload):
        members = [i.name for i in cl.instances if side[i.name] == k % 2]
        cl.at(10 + k, lambda raw=raw, name=members[0]: cl.submit(raw, name))
    cl.run_until(cl.t0 + sc.chaos_ms)
    cl.heal()
    cl.run_until(cl.now + LIVENESS_BOUND_MS)
    return cl


def equivocation_attack(n: int, q: int, count: int) -> Cluster:
    """``count`` equivocating validators, each with one face per honest half, and trades
    sent to both halves (each face keeps half of them, so an equivocator that leads shows
    the halves different blocks); then the run goes on with no other fault.

    Within the bound (count <= 2q - n - 1) no half reaches q with its honest members and
    the faces alone; one more and each half commits its own block.
    """
    sc = Scenario(n=n, q=q, seed=0, txs=16, chaos_ms=10_000)
    sc.byz = dict.fromkeys(range(count), "equivocate")
    cl = Cluster(sc)
    halves = [[i.name for i in cl.instances if i.honest and cl.half[i.index] == k] for k in (0, 1)]
    # In pairs, one trade for each face (a face keeps the trades whose id has its parity,
    # tests/sim/byzantine.py), to both halves.
    by_face = [[raw for raw, _ in cl.workload if tx_key(raw)[0] % 2 == f] for f in (0, 1)]
    # Sixteen trades, so that both parities occur (eight once all fell on one at 7/5 after
    # a genesis change, and the attack sent nothing: a vacuous pass and a silent control).
    if min(map(len, by_face)) < 2:
        raise ValueError(f"the workload gives the faces {list(map(len, by_face))} trades")
    for k, pair in enumerate(zip(*by_face, strict=False)):
        for raw in pair:
            for half in halves:
                cl.at(10 + 300 * k, lambda raw=raw, name=half[0]: cl.submit(raw, name))
    cl.run_until(cl.t0 + sc.chaos_ms)
    return cl


def every_refusal(n: int = 4, seed: int = 1) -> Scenario:
    """A seed's scenario with one of every refusal kind in its load, all sent early (the
    fast check that every result code is reached and refused trades move nothing).

    Without the seed's faults: a trade and the transaction that acts on it (a cancel, a
    hold) can straddle a partition and reach a block in the wrong order, which is right
    (NOT_PENDING) but leaves a code unreached; the seeds' runs cover codes under faults."""
    sc = make_scenario(n, None, seed)
    sc.faults = []
    kinds: dict[str, int] = {}
    pool = refusal_pool(n)
    for k, sim in enumerate(pool):
        kinds.setdefault(sim.kind, k)
    sc.refusals = [(100 + 40 * j, "pool", k) for j, k in enumerate(kinds.values())]
    sc.refusals += [(300, "expired", 0), (400, "past_deadline", 0), (500, "pending_fails", 0)]
    # Companions are sent at most at the end of the chaos phase (build): end it after the
    # last one, or the late kinds' companions arrive together with them, in any order.
    last = max(t for t, _, _ in sc.refusals)
    longest = max((d for sim in pool for d, _, _ in sim.companions), default=0)
    sc.chaos_ms = max(sc.chaos_ms, last + longest + 100)
    return sc


def lock_attack(variant: str, until_ms: int = 20_000) -> Cluster:
    """A Byzantine leader after a view change whose TC reports a lock (4 validators, q 3).

    View 0's leader (0, honest) proposes block 1 and forms its prepare QC, so every
    replica locks on it and moves to view 1; the COMMIT votes of view 0 are lost (a
    planted network fault), so block 1 cannot commit, nor the block view 1 pipelines on
    it, and view 1 ends in a TC reporting the lock. View 2's leader is validator 2,
    running ``lock_violation`` with only ``variant``: it proposes a block conflicting with
    the lock. Honest replicas must refuse it; the leader of view 3 re-proposes block 1.
    """
    sc = Scenario(n=4, q=3, seed=0, txs=4, chaos_ms=until_ms)
    sc.byz = {2: "lock_violation"}
    cl = Cluster(sc)
    byz = next(i.byz for i in cl.instances if i.index == 2)
    byz.VARIANTS = (variant,)  # type: ignore[union-attr,misc]
    cl.drop_if = lambda src, dst, m: isinstance(m, Vote) and m.phase is Phase.COMMIT and m.view == 0
    for k, (raw, _) in enumerate(cl.workload):
        cl.at(10 + k, lambda raw=raw: cl.submit(raw, 0))
    cl.run_until(cl.t0 + until_ms, stop=cl.all_done)
    return cl


@dataclass
class Steady:
    """What a steady load did (simulated time: deterministic from the scenario)."""

    blocks: int
    seconds: float
    latencies_ms: list[int]  # submit to the first honest commit, per trade, in submit order
    views_failed: int  # proposals sent on a timeout certificate (one per failed view, per peer)
    held: int  # proposals the Byzantine leaders held back
    relayed: int = 0  # COMMIT votes honest replicas relayed to the next leader
    warm_from: int = 0  # the first trade submitted after WARM_UP_MS
    # An honest replica's progress deadline and relay wait at the end (None: not applied).
    progress_ms: int | None = None
    relay_ms: int | None = None
    excluded: frozenset[int] = frozenset()  # left out of the leader order at the end (honest view)

    def warmed_up(self) -> list[int]:
        """Latencies of the trades submitted after the warm-up (in submit order)."""
        return self.latencies_ms[self.warm_from :]

    def percentile(self, p: float) -> int:
        ranked = sorted(self.latencies_ms)
        return ranked[min(len(ranked) - 1, int(p * len(ranked)))]


# The first 2.5 s of a steady load are its warm-up: the progress deadline needs
# VIEW_PROGRESS_CALM views first, and until then slow leaders' views take most of the base
# timeout (docs/consensus.md "Slow leaders").
WARM_UP_MS = 2_500


def steady_load(
    n: int,
    q: int,
    byz: dict[int, str],
    *,
    rate_per_s: int = 100,
    seconds: int = 4,
    progress_factor: int | None = None,
    relay_factor: int | None = None,
    hold: float | None = None,
    hold_commit: float | None = None,
    pipeline: str = "none",
) -> Steady:
    """A steady load on a calm network (1 to 5 ms per message, no loss, no faults):
    ``rate_per_s`` trades a second for ``seconds``, each to a random validator, with the
    validators in ``byz`` running those strategies. How many blocks the chain made and how
    long each trade waited, for comparing strategies (``slow_leader``, which holds its
    proposals for ``hold`` of the view's time to progress if given; ``slow_qc``, its commit
    certificates for ``hold_commit`` of the next view's, whether or not honest replicas
    relay their commit votes by then). ``pipeline``: which validators pipeline (one of
    ``PIPELINE_MODES``; none by default)."""
    txs = rate_per_s * seconds
    sc = Scenario(n=n, q=q, seed=0, txs=txs, chaos_ms=seconds * 1_000, delay_ms=(1, 5))
    sc.pipeline = pipeline
    sc.byz = dict(byz)
    if progress_factor is not None:
        sc.progress_factor = progress_factor
    if relay_factor is not None:
        sc.relay_factor = relay_factor
    cl = Cluster(sc)
    if hold is not None:
        for inst in cl.instances:
            if isinstance(inst.byz, SlowLeader):
                inst.byz.HOLD = hold
    if hold_commit is not None:
        for inst in cl.instances:
            if isinstance(inst.byz, SlowQC):
                inst.byz.HOLD_COMMIT_PAST = hold_commit
    if len(cl.workload) < txs:
        raise ValueError(f"the workload holds {len(cl.workload)} trades, not {txs}")
    submitted: dict[bytes, int] = {}
    for k, (raw, _) in enumerate(cl.workload):
        at = 10 + k * 1_000 // rate_per_s
        submitted[raw] = cl.t0 + at
        cl.at(at, lambda raw=raw: cl.submit(raw))
    cl.run_until(cl.t0 + sc.chaos_ms)
    cl.run_until(cl.now + LIVENESS_BOUND_MS, stop=cl.all_done)
    check_acknowledged(cl)
    checker = cl.checker
    latencies = [
        checker.commit_ms[checker.first_at[raw]] - at
        for raw, at in submitted.items()
        if raw in checker.first_at
    ]
    last = max(checker.commit_ms.values(), default=cl.t0)
    peer = next((i.core for i in cl.instances if i.honest and i.core is not None), None)
    return Steady(
        blocks=checker.max_height,
        seconds=(last - cl.t0) / 1_000,
        latencies_ms=latencies,
        views_failed=cl.sent["Proposal+TC"],
        held=sum(cl.crafted().values()),
        warm_from=WARM_UP_MS * rate_per_s // 1_000,
        relayed=sum(i.core.commit_votes_relayed for i in cl.instances if i.honest and i.core),
        excluded=frozenset() if peer is None else peer.schedule.excluded,
        progress_ms=None if peer is None else peer._pacemaker.progress_ms(),
        relay_ms=None if peer is None else peer._pacemaker.relay_ms(),
    )
