"""Byzantine validators for the simulator: modified code, deterministic from the seed.

A Byzantine instance runs an honest :class:`~node.core.Replica` with the validator's real
signer; its :class:`Strategy` sits between that replica and the network and rewrites,
drops or injects messages (so a strategy survives refactors of the replica's internals),
and a few strategies craft messages directly from ``node.core`` types and the key. Every
message a strategy emits goes through the wire codec first (``encode_message`` /
``decode_message``): what cannot be encoded could not reach a real node and is dropped.

Strategies (``STRATEGIES``), each the behaviour of one validator:

- ``silent``: receives, sends nothing.
- ``silent_leader``: votes and times out, but never proposes or broadcasts a certificate.
- ``withhold_votes``: proposes and times out, never votes.
- ``equivocate``: two faces, each a replica with the same key, each talking to one half
  of the honest validators (and to the same face of other equivocators): different
  blocks to different halves when leading, votes and timeouts for both sides.
- ``censor``: drops chosen transactions (a third of the workload, drawn from the seed)
  from everything it receives, so its proposals never hold them, and withholds its votes
  on blocks that hold them.
- ``inflate_timeout``: its timeouts claim a committed height above the real one (signed).
- ``forge_tc``: collects the honest timeouts of a view and broadcasts a timeout
  certificate in which its own entry claims an inflated height or lock view (signed).
- ``forge``: forged claims in the other fields: votes for other views, for other voters,
  bogus signatures; certificates with bogus or repeated signers; proposals with a wrong
  parent certificate, a TC from another view or with a bogus lock proof; timeouts whose
  lock is for another block or whose commit certificate is for another height;
  catch-up blocks with another block's certificate.
- ``far_future``: signed timeouts and votes for views far ahead, certificates and
  proposals at far heights, catch-up requests beyond the chain, and stale timeouts.
- ``replay``: re-sends old messages it received or sent, to random peers.
- ``junk_flood``: forwards batches of junk transactions (random bytes, and real trades
  with a broken signature) to every peer.
- ``sync_flood``: floods every peer with catch-up requests for the whole chain.
- ``steer_sync``: re-sends the newest commit certificate to every peer every 2 ms and an
  empty catch-up answer every 200 ms, and serves no catch-up request (catch-up steered to
  itself: session 14).
- ``verify_flood``: for a second and a half, floods every peer with real certificates
  whose last signature is replaced (every other one checks out, so all are checked).
- ``under_signed``: next to each proposal, timeout, certificate and TC it sends, a copy
  whose certificate is one valid signature short of q, or counts a signer twice, or names
  a signer that is no validator (parent certificates, TC entries and proofs, the
  certificates inside timeouts, QC broadcasts).
- ``lock_violation``: as the leader after a view change whose TC reports a lock, proposes
  a block conflicting with that lock (same height and parent, its own view and time):
  with the TC as it is, with the TC's lock proof removed, with no TC, or with a TC of q
  timeouts that report no lock when it holds them (which does justify the block). As the
  leader of a fresh view it withholds the commit certificate half of the time, so honest
  replicas carry a lock into the next view change.
- ``slow_leader``: leads as slowly as honest replicas allow: holds each proposal it makes
  until most of the view's time to progress is gone (what its own replica computes: the
  same rule honest replicas apply), then sends it; its votes, timeouts and certificates
  leave at once. It never lets a view time out, so the leader schedule never charges it.
- ``slow_qc``: proposes at once, but holds the certificates it forms as leader (only
  the leader of a view collects its votes): the prepare certificate until most of the
  view's time to progress is gone, then the commit certificate, which the next leader
  (honest) waits for, until just before honest replicas would relay their commit votes
  to that leader (or most of the next view's time, before the relay applies). Timed by
  an honest peer's own timers, so no view times out and the leader schedule never
  charges it; its slow views and the honest ones after them are most of the views from
  7 validators up.
- ``relay_forge``: beside each COMMIT vote, sends the next two leaders an early copy, its
  votes for the other blocks at the height and for the next view, copies with a bad
  signature or another voter, its PREPARE vote; as leader, passes on the votes it gets.
- ``slow_next``: a ``slow_leader`` that ignores the COMMIT votes relayed to it, so it
  forms no commit certificate of the view before: the accomplice of a ``slow_qc`` leading
  that view, whose held certificate its own (slow) view waits for.
- ``hide_qc``: an honest leader that sends each commit certificate it forms to every
  validator but the leaders of the next two views (review r-pview; session 18 hid it from
  the next one only). The others commit and relay nothing; the next leader has nothing to
  propose on, and the leader after it, to which the next relays its COMMIT vote, has not
  committed either.
- ``hide_qc_next``: ``hide_qc`` keeping its certificates from the next view's leader only
  (session 18's attack; the review of session 19 brought it back: on an idle chain that
  session's first fix did not cover it).
"""

from __future__ import annotations

import random
import struct
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

from node.config import (
    CATCHUP_BATCH_BLOCKS_MAX,
    MEMPOOL_TXS_MAX,
    TX_FORWARD_BATCH_MAX,
)
from node.core import (
    Block,
    DecodeError,
    EncodeError,
    Message,
    NewView,
    Phase,
    Proposal,
    QCMessage,
    QuorumCert,
    Replica,
    Signer,
    SyncRequest,
    SyncResponse,
    Timeout,
    TimeoutCert,
    TimeoutEntry,
    TxForward,
    Vote,
    decode_message,
    encode_message,
    timeout_message,
    tx_key,
    vote_message,
)
from node.core.pacemaker import Timer

Out = list[tuple[int, Message]]

FAR = 10**6  # "far ahead": views and heights no honest run reaches
JUNK_TX_BYTES = 120


@dataclass
class Env:
    """What a strategy may know: its key, the genesis numbers, its replica, the workload."""

    index: int
    n: int
    q: int
    chain_id: str
    signer: Signer
    core: Callable[[], Replica | None]  # the running replica (None while crashed)
    # An honest validator's replica, for its timers only: what an attacker watching the
    # network could estimate, given exactly (the worst case for the rule under test).
    peer: Callable[[], Replica | None]
    workload: tuple[bytes, ...]  # the signed transactions clients will submit
    coalition: int  # shared by the Byzantine validators of a run (e.g. whom to censor)
    now: Callable[[], int]


class Strategy:
    """Honest behaviour; subclasses rewrite, drop or inject."""

    name: ClassVar[str] = "honest"
    pulse_ms: ClassVar[int | None] = None  # how often ``pulse`` injects messages

    def __init__(self, env: Env, rng: random.Random) -> None:
        self.env, self.rng = env, rng

    def outgoing(self, dst: int, msg: Message) -> Out:
        """A message the inner replica sends: what actually leaves."""
        return [(dst, msg)]

    def incoming(self, src: int, msg: Message) -> Message | None:
        """A message for the inner replica: what it gets to see (None: nothing)."""
        return msg

    def accepts(self, raw: bytes) -> bool:
        """A client's transaction: pass it to the inner replica?"""
        return True

    def pulse(self) -> Out:
        return []

    # --- helpers for crafting -------------------------------------------------------------

    def vote(self, phase: Phase, view: int, height: int, block_hash: bytes) -> Vote:
        msg = vote_message(self.env.chain_id, phase, view, height, block_hash)
        return Vote(phase, view, height, block_hash, self.env.index, self.env.signer.sign(msg))

    def sign_timeout(self, t: Timeout) -> Timeout:
        pqc_view = None if t.high_pqc is None else t.high_pqc.view
        msg = timeout_message(self.env.chain_id, t.view, t.committed_height, pqc_view)
        return replace(t, voter=self.env.index, signature=self.env.signer.sign(msg))

    def entry(self, view: int, committed_height: int, pqc_view: int | None) -> TimeoutEntry:
        msg = timeout_message(self.env.chain_id, view, committed_height, pqc_view)
        return TimeoutEntry(self.env.index, committed_height, pqc_view, self.env.signer.sign(msg))

    def bogus_sigs(self, count: int) -> tuple[tuple[int, bytes], ...]:
        return tuple((i, self.rng.randbytes(64)) for i in range(min(count, self.env.n)))

    def everyone(self, msg: Message) -> Out:
        return [(dst, msg) for dst in range(self.env.n) if dst != self.env.index]

    def leader(self, view: int) -> int:
        core = self.env.core()
        return core.leader(view) if core is not None else view % self.env.n


def honest_timeout(core: Replica, view: int) -> Timeout:
    """A timeout of ``view`` with the replica's true committed height and its proof, no lock
    (unsigned: a strategy signs what it finally sends)."""
    return Timeout(
        view=view,
        committed_height=core.committed_height,
        commit_cert=core.committed_cert,
        high_pqc=None,
        pqc_block=None,
        voter=core.cfg.me,
        signature=b"",
    )


def wire(msg: Message) -> Message | None:
    """A crafted message as a real peer would receive it, or None if it cannot be sent."""
    try:
        return decode_message(encode_message(msg))
    except (EncodeError, DecodeError, ValueError, OverflowError, struct.error):
        return None


class Silent(Strategy):
    name = "silent"

    def outgoing(self, dst: int, msg: Message) -> Out:
        return []


class SilentLeader(Strategy):
    name = "silent_leader"

    def outgoing(self, dst: int, msg: Message) -> Out:
        if isinstance(msg, Proposal | QCMessage | NewView):
            return []
        return [(dst, msg)]


class WithholdVotes(Strategy):
    name = "withhold_votes"

    def outgoing(self, dst: int, msg: Message) -> Out:
        return [] if isinstance(msg, Vote) else [(dst, msg)]


class Equivocate(Strategy):
    """A face of a split validator: the harness routes each face to one honest half. Each
    face keeps only the transactions of its own parity (by id), so when the validator leads,
    the two halves are shown different blocks."""

    name = "equivocate"
    face = 0  # set by the harness

    def _mine(self, tx: bytes) -> bool:
        return tx_key(tx)[0] % 2 == self.face

    def accepts(self, raw: bytes) -> bool:
        return self._mine(raw)

    def incoming(self, src: int, msg: Message) -> Message | None:
        if isinstance(msg, TxForward):
            kept = tuple(tx for tx in msg.txs if self._mine(tx))
            return TxForward(kept) if kept else None
        return msg


class Censor(Strategy):
    name = "censor"

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        pool, plot = list(env.workload), random.Random(env.coalition)  # censors collude
        self.victims = frozenset(plot.sample(pool, max(1, len(pool) // 3))) if pool else frozenset()
        self._tainted: set[bytes] = set()  # hashes of proposed blocks holding a victim

    def accepts(self, raw: bytes) -> bool:
        return raw not in self.victims

    def incoming(self, src: int, msg: Message) -> Message | None:
        if isinstance(msg, TxForward):
            kept = tuple(tx for tx in msg.txs if tx not in self.victims)
            return TxForward(kept) if kept else None
        if isinstance(msg, Proposal) and any(tx in self.victims for tx in msg.block.txs):
            self._tainted.add(msg.block.hash)
        return msg

    def outgoing(self, dst: int, msg: Message) -> Out:
        if isinstance(msg, Vote) and msg.block_hash in self._tainted:
            return []
        return [(dst, msg)]


class InflateTimeout(Strategy):
    """Timeouts claim a committed height the sender does not have (no lock: nothing to
    check it against), sent at once in every view; as leader it proposes nothing, so the
    view ends in a TC, which its lie may join. A replica that believes the claim waits for
    blocks that do not exist, and a TC holding it asks every next proposal to extend them."""

    name = "inflate_timeout"
    pulse_ms = 20

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self.extra = rng.choice((1, 2, 1_000))
        self._view = -1  # the last view it sent its lie in

    def outgoing(self, dst: int, msg: Message) -> Out:
        if isinstance(msg, Proposal):
            return []
        if not isinstance(msg, Timeout):
            return [(dst, msg)]
        return [(dst, self._lie(msg))]

    def pulse(self) -> Out:
        core = self.env.core()
        if core is None or core.view == self._view:
            return []
        self._view = core.view
        return self.everyone(self._lie(honest_timeout(core, core.view)))

    def _lie(self, t: Timeout) -> Timeout:
        # The commit certificate, if it carries one, stays the real one (of a lower height).
        lied = replace(t, committed_height=t.committed_height + self.extra, high_pqc=None)
        return self.sign_timeout(replace(lied, pqc_block=None))


class ForgeTC(Strategy):
    """Builds timeout certificates from the honest timeouts it receives, with its own entry
    lying about its committed height or its lock view, and sends them to everyone. Its own
    real timeout never reaches the next leader, so its forgery (q - 1 honest timeouts)
    reaches that leader before the leader can form an honest TC (q honest timeouts)."""

    name = "forge_tc"
    pulse_ms = 20

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self._seen: dict[int, dict[int, TimeoutEntry]] = {}
        self._sent: set[int] = set()

    def incoming(self, src: int, msg: Message) -> Message | None:
        if isinstance(msg, Timeout) and msg.voter == src:
            self._seen.setdefault(msg.view, {})[src] = msg.entry()
            if len(self._seen) > 8:
                del self._seen[min(self._seen)]
        return msg

    def outgoing(self, dst: int, msg: Message) -> Out:
        if isinstance(msg, Proposal):
            return []  # as leader: silent, so the view ends in a TC
        if isinstance(msg, Timeout) and dst == self.leader(msg.view + 1):
            return []
        return [(dst, msg)]

    def pulse(self) -> Out:
        """As soon as it holds q - 1 honest timeouts of a view."""
        out: Out = []
        for view in list(self._seen):
            tc = None if view in self._sent else self._forge(view)
            if tc is not None:
                self._sent.add(view)
                out += self.everyone(NewView(tc))
        return out

    def _forge(self, view: int) -> TimeoutCert | None:
        skip = {self.env.index, self.leader(view + 1)}  # race that leader's own timeout
        others = [e for i, e in sorted(self._seen[view].items()) if i not in skip]
        core = self.env.core()
        if len(others) < self.env.q - 1 or core is None:
            return None
        height = max([core.committed_height, *(e.committed_height for e in others)])
        if self.rng.random() < 0.5:
            own = self.entry(view, height + self.rng.choice((1, FAR)), None)
        else:
            own = self.entry(view, height, FAR)  # a lock nobody has
        entries = sorted([own, *others[: self.env.q - 1]], key=lambda e: e.voter)
        # The best proof it has: the commit certificate of its real height.
        return TimeoutCert(view, tuple(entries), high_commit=core.committed_cert)


class Forge(Strategy):
    """Sends, next to each message, a copy with a forged field; as leader, a forged
    proposal instead of the real one half of the time."""

    name = "forge"

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self._proposals: dict[bytes, Proposal] = {}  # block hash -> what we send for it

    def outgoing(self, dst: int, msg: Message) -> Out:
        if dst == self.env.index:
            return [(dst, msg)]
        if isinstance(msg, Proposal):
            return [(dst, self._proposal(msg))]
        return [(dst, msg), *self._forge(dst, msg)]

    def _proposal(self, p: Proposal) -> Proposal:
        sent = self._proposals.get(p.block.hash)
        if sent is None or sent.view != p.view:
            sent = p if self.rng.random() < 0.5 else self._bad_proposal(p)
            self._proposals = {p.block.hash: sent}
        return sent

    def _forge(self, dst: int, msg: Message) -> Out:
        rng, me = self.rng, self.env.index
        if isinstance(msg, Vote):
            view = max(0, msg.view + rng.choice((-1, 1, 2)))
            choices: list[Vote] = [
                self.vote(msg.phase, view, msg.height, msg.block_hash),
                replace(msg, signature=rng.randbytes(64)),
                replace(msg, voter=(me + 1) % self.env.n),
                self.vote(msg.phase, msg.view, msg.height, rng.randbytes(32)),
            ]
            pick = rng.choice(choices)
            return [(self.leader(pick.view), pick)]
        if isinstance(msg, QCMessage):
            return [(dst, QCMessage(self._bad_qc(msg.qc)))]
        if isinstance(msg, Timeout):
            return [(dst, self._bad_timeout(msg))]
        if isinstance(msg, NewView):
            entries = msg.tc.entries
            return [(dst, NewView(replace(msg.tc, entries=entries[:1] * len(entries))))]
        if isinstance(msg, SyncResponse) and msg.blocks:
            (block, cert), *rest = msg.blocks
            other = replace(cert, block_hash=rng.randbytes(32))
            return [(dst, SyncResponse(((block, other), *rest)))]
        return []

    def _bad_qc(self, qc: QuorumCert) -> QuorumCert:
        rng = self.rng
        kind = rng.randrange(4)
        if kind == 0:
            return replace(qc, signatures=self.bogus_sigs(len(qc.signatures)))
        if kind == 1:  # one real signature counted q times
            first = qc.signatures[0]
            return replace(qc, signatures=(first,) * len(qc.signatures))
        if kind == 2:  # real signatures, claimed for another view
            return replace(qc, view=qc.view + 1)
        return replace(qc, phase=Phase.COMMIT if qc.phase is Phase.PREPARE else Phase.PREPARE)

    def _bad_timeout(self, t: Timeout) -> Timeout:
        rng = self.rng
        kind = rng.randrange(4)
        if kind == 0 and t.high_pqc is not None and t.pqc_block is not None:
            other = replace(t.pqc_block, time_ms=t.pqc_block.time_ms + 1)  # another block
            return replace(t, pqc_block=other)
        if kind == 1:
            return replace(t, voter=(self.env.index + 1) % self.env.n)
        if t.commit_cert is not None:  # the certificate of another height
            return replace(t, commit_cert=replace(t.commit_cert, height=t.committed_height + 1))
        return replace(t, signature=rng.randbytes(64))

    def _bad_proposal(self, p: Proposal) -> Proposal:
        rng = self.rng
        kind = rng.randrange(5)
        if kind == 4:  # its block naming another parent view: honest leaders charged
            return replace(p, block=replace(p.block, parent_view=p.block.parent_view + 1))
        if kind == 0 and p.parent_cert is not None:
            bogus = replace(p.parent_cert, signatures=self.bogus_sigs(self.env.q))
            return replace(p, parent_cert=bogus)
        if kind == 1 and p.parent_cert is not None:  # the parent's certificate, other view
            return replace(p, parent_cert=replace(p.parent_cert, view=p.parent_cert.view + 3))
        if kind == 2:  # a TC from elsewhere: a view that is not the previous one
            entry = self.entry(p.view + 5, 0, None)
            return replace(p, tc=TimeoutCert(p.view + 5, (entry,) * self.env.q))
        lock = QuorumCert(
            Phase.PREPARE, p.view - 1, p.block.height, p.block.hash, self.bogus_sigs(self.env.q)
        )
        if p.tc is not None:
            return replace(p, tc=replace(p.tc, high_lock=lock))
        if p.view == 0:
            return p
        # A TC for the previous view made of its own entry, and a forged lock.
        entry = self.entry(p.view - 1, p.block.height - 1, lock.view)
        return replace(p, tc=TimeoutCert(p.view - 1, (entry,) * self.env.q, None, lock))


class FarFuture(Strategy):
    """Messages for views and heights far ahead (signed where a signature is its own), and
    stale ones far behind."""

    name = "far_future"
    pulse_ms = 50

    def pulse(self) -> Out:
        core = self.env.core()
        if core is None:
            return []
        rng, view, height = self.rng, core.view, core.committed_height
        far_view = view + rng.randint(2, FAR)
        kind = rng.randrange(6)
        if kind == 0:
            t = self.sign_timeout(honest_timeout(core, far_view))
            return self.everyone(t)
        if kind == 1:
            vote = self.vote(Phase.PREPARE, far_view, height + FAR, rng.randbytes(32))
            return [(self.leader(far_view), vote)]
        if kind == 2:
            qc = QuorumCert(
                Phase.COMMIT, far_view, height + FAR, rng.randbytes(32), self.bogus_sigs(self.env.q)
            )
            return self.everyone(QCMessage(qc))
        if kind == 3:
            return self._far_proposal(core, far_view)
        if kind == 4:
            return self.everyone(SyncRequest(height + FAR, CATCHUP_BATCH_BLOCKS_MAX))
        stale = self.sign_timeout(honest_timeout(core, rng.randint(0, max(0, view - 1))))
        return self.everyone(stale)

    def _far_proposal(self, core: Replica, far_view: int) -> Out:
        view = next((v for v in range(far_view, far_view + 4 * self.env.n) if self.leader(v) ==
                     self.env.index), None)  # fmt: skip
        if view is None:
            return []
        parent = QuorumCert(
            Phase.COMMIT, view - 1, FAR - 1, self.rng.randbytes(32), self.bogus_sigs(self.env.q)
        )
        block = Block(
            chain_id=self.env.chain_id, height=FAR, view=view, parent_hash=parent.block_hash,
            proposer=self.env.index, time_ms=self.env.now(), executed_height=FAR - 1,
            state_root=bytes(32), results_root=bytes(32),
            txs=tuple(self.env.workload[:1]), parent_view=parent.view,
        )  # fmt: skip
        return self.everyone(Proposal(view, block, parent, None))


class Replay(Strategy):
    """Re-sends messages it received or sent before, to random peers."""

    name = "replay"
    pulse_ms = 40
    KEPT = 256

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self._old: deque[Message] = deque(maxlen=self.KEPT)

    def incoming(self, src: int, msg: Message) -> Message | None:
        self._old.append(msg)
        return msg

    def outgoing(self, dst: int, msg: Message) -> Out:
        self._old.append(msg)
        return [(dst, msg)]

    def pulse(self) -> Out:
        if not self._old:
            return []
        out: Out = []
        for _ in range(3):
            msg = self._old[self.rng.randrange(len(self._old))]
            out.append((self.rng.randrange(self.env.n), msg))
        return out


class JunkFlood(Strategy):
    """Forwards junk transactions to every peer: enough to fill a mempool within a few
    pulses, then a trickle."""

    name = "junk_flood"
    pulse_ms = 100
    BURST = MEMPOOL_TXS_MAX // TX_FORWARD_BATCH_MAX + 2  # full batches before the trickle

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self._pulses = 0

    def pulse(self) -> Out:
        self._pulses += 1
        if self._pulses > self.BURST and self._pulses % 20:
            return []
        return self.everyone(TxForward(tuple(self._junk() for _ in range(TX_FORWARD_BATCH_MAX))))

    def _junk(self) -> bytes:
        rng = self.rng
        if self.env.workload and rng.random() < 0.1:
            raw = bytearray(rng.choice(self.env.workload))  # a real trade, signature broken
            raw[-1 - rng.randrange(32)] ^= 1 + rng.randrange(255)
            return bytes(raw)
        return rng.randbytes(JUNK_TX_BYTES)


class SyncFlood(Strategy):
    """Asks every peer for the whole chain, again and again."""

    name = "sync_flood"
    pulse_ms = 10

    def pulse(self) -> Out:
        return self.everyone(SyncRequest(1, CATCHUP_BATCH_BLOCKS_MAX))


class SteerSync(Strategy):
    """Steers catch-up to itself (session 14's review): every 2 ms the newest commit
    certificate to every peer (free: memoised), every 200 ms an empty catch-up answer, and
    it serves no catch-up request. Before the fix a lagging honest replica asked only it,
    for ever."""

    name = "steer_sync"
    pulse_ms = 2

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self._pulses = 0

    def outgoing(self, dst: int, msg: Message) -> Out:
        return [] if isinstance(msg, SyncResponse) else [(dst, msg)]

    def pulse(self) -> Out:
        core = self.env.core()
        if core is None or core.committed_cert is None:
            return []
        self._pulses += 1
        out = self.everyone(QCMessage(core.committed_cert))
        if self._pulses % 100 == 0:
            out += self.everyone(SyncResponse(()))
        return out


class VerifyFlood(Strategy):
    """Real certificates with the last signature replaced: each costs the receiver q
    signature checks (all but the last verify) and proves nothing. About 12,000 checks a
    second per peer, above what the per-peer budget allows (PEER_VERIFY_BURST +
    PEER_VERIFY_PER_S), for a second and a half."""

    name = "verify_flood"
    pulse_ms = 10
    START_MS, LENGTH_MS = 1_000, 1_500

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self._qc: QuorumCert | None = None  # the latest real certificate it saw
        self._start: int | None = None

    def incoming(self, src: int, msg: Message) -> Message | None:
        if isinstance(msg, QCMessage) and len(msg.qc.signatures) >= 2:
            self._qc = msg.qc
        return msg

    def pulse(self) -> Out:
        now = self.env.now()
        self._start = now if self._start is None else self._start
        live = self.START_MS <= now - self._start < self.START_MS + self.LENGTH_MS
        if self._qc is None or not live:
            return []
        *real, (last, _) = self._qc.signatures
        out: Out = []
        for _ in range(1 + 120 // self.env.q):
            sigs = (*real, (last, self.rng.randbytes(64)))
            out += self.everyone(QCMessage(replace(self._qc, signatures=tuple(sigs))))
        return out


def _one_short(qc: QuorumCert, variant: str, n: int, q: int, rng: random.Random) -> QuorumCert:
    """``qc`` with q - 1 distinct valid signers, plus nothing (``short``), a repeat of one
    of them (``repeated``) or a signer index that is no validator (``outsider``)."""
    kept = tuple(rng.sample(qc.signatures, min(q - 1, len(qc.signatures))))
    if variant == "repeated":
        kept = (*kept, kept[0])
    elif variant == "outsider":
        kept = (*kept, (n + rng.randrange(4), rng.randbytes(64)))
    return replace(qc, signatures=kept)


class UnderSigned(Strategy):
    """Sends, before each proposal, timeout, certificate and TC, a copy whose certificate
    has fewer than q distinct validator signatures (see ``_one_short``); the real message
    follows, so the run stays live and every honest replica sees both."""

    name = "under_signed"
    VARIANTS: ClassVar[tuple[str, ...]] = ("short", "repeated", "outsider")

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self.crafted: Counter[str] = Counter()

    def outgoing(self, dst: int, msg: Message) -> Out:
        if dst == self.env.index:
            return [(dst, msg)]
        bad = self._under(msg)
        if bad is None:
            return [(dst, msg)]
        self.crafted[type(msg).__name__] += 1
        return [(dst, bad), (dst, msg)]

    def _cut(self, qc: QuorumCert) -> QuorumCert:
        variant = self.rng.choice(self.VARIANTS)
        return _one_short(qc, variant, self.env.n, self.env.q, self.rng)

    def _cut_tc(self, tc: TimeoutCert) -> TimeoutCert:
        proofs = [f for f in ("high_commit", "high_lock") if getattr(tc, f) is not None]
        if proofs and self.rng.random() < 0.5:
            field = self.rng.choice(proofs)
            return replace(tc, **{field: self._cut(getattr(tc, field))})
        entries = tc.entries[: self.env.q - 1]
        variant = self.rng.choice(self.VARIANTS)
        if variant == "repeated":
            entries = (*entries, entries[0])
        elif variant == "outsider":
            e = entries[0]
            entries = (*entries, replace(e, voter=self.env.n + self.rng.randrange(4)))
        return replace(tc, entries=entries)

    def _under(self, msg: Message) -> Message | None:
        if isinstance(msg, Proposal):
            if msg.tc is not None and (msg.parent_cert is None or self.rng.random() < 0.5):
                return replace(msg, tc=self._cut_tc(msg.tc))
            if msg.parent_cert is not None:
                return replace(msg, parent_cert=self._cut(msg.parent_cert))
            return None
        if isinstance(msg, Timeout):
            if msg.commit_cert is not None:
                return replace(msg, commit_cert=self._cut(msg.commit_cert))
            if msg.high_pqc is not None:
                return replace(msg, high_pqc=self._cut(msg.high_pqc))
            return None
        if isinstance(msg, QCMessage):
            return QCMessage(self._cut(msg.qc))
        if isinstance(msg, NewView):
            return NewView(self._cut_tc(msg.tc))
        return None


class LockViolation(Strategy):
    """See the module docstring. ``crafted`` counts the conflicting proposals by variant."""

    name = "lock_violation"
    VARIANTS: ClassVar[tuple[str, ...]] = ("keep_tc", "strip_lock", "no_tc", "unlocked_tc")

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self.crafted: Counter[str] = Counter()
        self._timeouts: dict[int, dict[int, Timeout]] = {}  # view -> voter -> timeout
        self._withheld: set[int] = set()  # views whose commit certificate it kept
        self._conflicts: dict[int, Proposal] = {}  # view -> the proposal it sends instead

    def incoming(self, src: int, msg: Message) -> Message | None:
        if isinstance(msg, Timeout) and msg.voter == src:
            self._timeouts.setdefault(msg.view, {})[src] = msg
            while len(self._timeouts) > 8:
                del self._timeouts[min(self._timeouts)]
        return msg

    def outgoing(self, dst: int, msg: Message) -> Out:
        if dst == self.env.index:
            return [(dst, msg)]
        if isinstance(msg, QCMessage) and msg.qc.phase is Phase.COMMIT and self._withhold(msg.qc):
            return []
        if isinstance(msg, Proposal) and msg.tc is not None and msg.tc.high_lock is not None:
            conflict = self._conflicts.get(msg.view)
            if conflict is None:
                conflict = self._conflict(msg, msg.tc)
                self._conflicts = {msg.view: conflict}
            return [(dst, conflict)]
        return [(dst, msg)]

    def _withhold(self, qc: QuorumCert) -> bool:
        """Its own fresh view's commit certificate, half of the time (decided once a view)."""
        core = self.env.core()
        if core is None or core.leader(qc.view) != self.env.index:
            return False
        if qc.view not in self._withheld and self.rng.random() < 0.5:
            self._withheld.add(qc.view)
        return qc.view in self._withheld

    def _conflict(self, p: Proposal, tc: TimeoutCert) -> Proposal:
        """A block at the locked height, conflicting with the lock, and a justification."""
        core = self.env.core()
        time_ms = (
            self.env.now() if core is None else max(self.env.now(), core.committed_time_ms + 1)
        )
        block = replace(p.block, view=p.view, proposer=self.env.index, time_ms=time_ms)
        variant = self.rng.choice(self.VARIANTS)
        if variant == "unlocked_tc":
            unlocked = self._unlocked_tc(tc)
            variant = "keep_tc" if unlocked is None else variant
        self.crafted[variant] += 1
        if variant == "keep_tc":
            return replace(p, block=block)
        if variant == "strip_lock":
            return replace(p, block=block, tc=replace(tc, high_lock=None))
        if variant == "no_tc":
            return replace(p, block=block, tc=None)
        return replace(p, block=block, tc=self._unlocked_tc(tc))

    def _unlocked_tc(self, tc: TimeoutCert) -> TimeoutCert | None:
        """A TC for the same view from q signed timeouts that report no lock, if it holds
        that many: it proves no block of the view could have committed, so it justifies
        any block extending its top commit (honest replicas vote for it)."""
        free = [t for _, t in sorted(self._timeouts.get(tc.view, {}).items()) if t.high_pqc is None]
        if len(free) < self.env.q:
            return None
        chosen = free[: self.env.q]
        top = max(t.committed_height for t in chosen)
        proof = next(t.commit_cert for t in chosen if t.committed_height == top)
        return TimeoutCert(tc.view, tuple(t.entry() for t in chosen), proof, None)


class SlowLeader(Strategy):
    """See the module docstring. ``crafted`` counts the proposals it held back."""

    name = "slow_leader"
    pulse_ms = 2
    HOLD = 0.7  # of the time left to the deadline: the rest is for the vote round

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self.crafted: Counter[str] = Counter()
        self._held: list[tuple[int, int, Message]] = []  # (release time, destination, message)

    def outgoing(self, dst: int, msg: Message) -> Out:
        if dst == self.env.index or not isinstance(msg, Proposal):
            return [(dst, msg)]
        self.crafted["held"] += 1
        self._held.append((self._release_at(), dst, msg))
        return []

    def _release_at(self) -> int:
        """Most of the way to the view's deadline, by its own replica's clock and rule."""
        now, core = self.env.now(), self.env.core()
        deadline = None if core is None else core.deadlines().get(Timer.VIEW_TIMEOUT)
        return now if deadline is None else now + int(self.HOLD * max(0, deadline - now))

    def pulse(self) -> Out:
        now = self.env.now()
        due = [(dst, msg) for at, dst, msg in self._held if at <= now]
        self._held = [held for held in self._held if held[0] > now]
        return due


class SlowQC(Strategy):
    """See the module docstring. ``crafted`` counts the certificates it held back."""

    name = "slow_qc"
    pulse_ms = 1
    HOLD_PREPARE = 0.9  # of the time left to the view's deadline, by an honest peer's timers
    HOLD_COMMIT = 0.6  # of the time left to the next view's, where no relay applies yet
    HOLD_COMMIT_PAST: float | None = None  # else this much of it, relay or not

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self.crafted: Counter[str] = Counter()
        self._release: dict[tuple[Phase, int], int] = {}  # (phase, view) -> when it leaves
        self._held: list[tuple[int, int, Message]] = []

    def _release_at(self, phase: Phase, now: int) -> int:
        """Just before honest replicas would give up waiting for it, by a peer's timers:
        for the prepare certificate the view's deadline (the peer is still in the view);
        for the commit certificate the relay of commit votes to the next leader (the peer
        entered the next view on the prepare certificate), else that view's deadline."""
        peer = self.env.peer()
        timers = {} if peer is None else peer.deadlines()
        relay = timers.get(Timer.COMMIT_RELAY)
        past = self.HOLD_COMMIT_PAST
        if phase is Phase.COMMIT and relay is not None and past is None:
            return max(now, relay - 1)
        deadline = timers.get(Timer.VIEW_TIMEOUT)
        hold = self.HOLD_PREPARE if phase is Phase.PREPARE else past or self.HOLD_COMMIT
        return now if deadline is None else now + int(hold * max(0, deadline - now))

    def outgoing(self, dst: int, msg: Message) -> Out:
        core = self.env.core()
        if core is None or dst == self.env.index or not isinstance(msg, QCMessage):
            return [(dst, msg)]
        qc, now = msg.qc, self.env.now()
        if core.leader(qc.view) != self.env.index:
            return [(dst, msg)]
        key = (qc.phase, qc.view)
        at = self._release.get(key)
        if at is None:
            at = self._release[key] = self._release_at(qc.phase, now)
            if len(self._release) > 64:
                self._release.pop(next(iter(self._release)))
        if at <= now:
            return [(dst, msg)]
        self.crafted[qc.phase.name.lower()] += 1
        self._held.append((at, dst, msg))
        return []

    def pulse(self) -> Out:
        now = self.env.now()
        due = [(dst, msg) for at, dst, msg in self._held if at <= now]
        self._held = [held for held in self._held if held[0] > now]
        return due


class SlowNext(SlowLeader):
    """``slow_next``: a ``slow_leader`` that also ignores the COMMIT votes relayed to it
    (those of a view it does not lead): the accomplice of a ``slow_qc`` leading the view
    before, whose held commit certificate it waits for rather than forming its own."""

    name = "slow_next"

    def incoming(self, src: int, msg: Message) -> Message | None:
        relayed = isinstance(msg, Vote) and msg.phase is Phase.COMMIT
        if relayed and self.leader(msg.view) != self.env.index:  # type: ignore[union-attr]
            self.crafted["ignored"] += 1
            return None
        return msg


class HideQC(Strategy):
    """``hide_qc``: its commit certificates reach every validator but the next ``AHEAD``
    views' leaders. ``crafted`` counts the copies withheld."""

    name = "hide_qc"
    AHEAD = 2

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self.crafted: Counter[str] = Counter()

    def outgoing(self, dst: int, msg: Message) -> Out:
        core = self.env.core()
        if core is None or dst == self.env.index or not isinstance(msg, QCMessage):
            return [(dst, msg)]
        qc = msg.qc
        mine = qc.phase is Phase.COMMIT and core.leader(qc.view) == self.env.index
        if mine and dst in {core.leader(qc.view + k) for k in range(1, self.AHEAD + 1)}:
            self.crafted["hidden"] += 1
            return []
        return [(dst, msg)]


class HideQCNext(HideQC):
    """``hide_qc_next``: session 18's ``hide_qc``, its commit certificates kept from the
    next view's leader only."""

    name = "hide_qc_next"
    AHEAD = 1


class RelayForge(Strategy):
    """``relay_forge``: attacks the next leader's count of relayed COMMIT votes. Beside
    each COMMIT vote its replica sends, it sends the next two leaders at once: the vote
    itself (an early relay), its own signed COMMIT votes of that view for every other
    block its replica holds at the height, the vote for the next view, a copy with a bad
    signature, a copy naming another voter, and its PREPARE vote of the view; as a leader
    it passes on the COMMIT votes it was sent, under its own name. ``crafted`` counts them
    by kind."""

    name = "relay_forge"
    pulse_ms = 3

    def __init__(self, env: Env, rng: random.Random) -> None:
        super().__init__(env, rng)
        self.crafted: Counter[str] = Counter()
        self._prepared: dict[int, Vote] = {}  # view -> our PREPARE vote of it
        self.pending: list[Vote] = []  # COMMIT votes sent to us, to pass on

    def _to_next(self, view: int, msg: Vote, kind: str) -> Out:
        self.crafted[kind] += 1
        nxt = {self.leader(view + 1), self.leader(view + 2)} - {self.env.index}
        return [(dst, msg) for dst in sorted(nxt)]

    def outgoing(self, dst: int, msg: Message) -> Out:
        out: Out = [(dst, msg)]
        core = self.env.core()
        if core is None or not isinstance(msg, Vote) or msg.voter != self.env.index:
            return out
        if msg.phase is Phase.PREPARE:
            self._prepared[msg.view] = msg
            if len(self._prepared) > 8:
                self._prepared.pop(next(iter(self._prepared)))
            return out
        v = msg
        out += self._to_next(v.view, v, "early")
        for b in list(core._candidates.values()):
            if b.height == v.height and b.hash != v.block_hash:
                other = self.vote(Phase.COMMIT, v.view, b.height, b.hash)
                out += self._to_next(v.view, other, "other_block")
        out += self._to_next(
            v.view, self.vote(Phase.COMMIT, v.view + 1, v.height, v.block_hash), "next_view"
        )
        out += self._to_next(v.view, replace(v, signature=bytes(len(v.signature))), "bad_sig")
        someone = (self.env.index + 1) % self.env.n
        out += self._to_next(v.view, replace(v, voter=someone), "other_voter")
        prepared = self._prepared.get(v.view)
        if prepared is not None:
            out += self._to_next(v.view, prepared, "prepare")
        return out

    def incoming(self, src: int, msg: Message) -> Message | None:
        if isinstance(msg, Vote) and msg.phase is Phase.COMMIT and msg.voter != self.env.index:
            self.pending.append(msg)
        return msg

    def pulse(self) -> Out:
        out: Out = []
        for v in self.pending[:32]:
            out += self._to_next(v.view, v, "passed_on")
        self.pending = []
        return out


STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s
    for s in (
        Silent,
        SilentLeader,
        WithholdVotes,
        Equivocate,
        Censor,
        InflateTimeout,
        ForgeTC,
        Forge,
        FarFuture,
        Replay,
        JunkFlood,
        SyncFlood,
        VerifyFlood,
        SteerSync,
        UnderSigned,
        LockViolation,
        SlowLeader,
        SlowQC,
        SlowNext,
        RelayForge,
        HideQC,
        HideQCNext,
    )
}
