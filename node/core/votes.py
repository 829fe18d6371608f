"""Votes and certificates: checking them, collecting them, forming them.

``Certificates`` verifies quorum and timeout certificates once each (the same certificate
arrives many times: in proposals, timeouts, QC broadcasts) and counts every signature it
checks, so the replica can charge the sender's budget for exactly its own work.
``VoteCollector`` is the leader's tally for the proposal of its view: q verified votes
of one phase make a quorum certificate. ``timeout_problem`` says what is unproven in a
timeout, and ``form_tc`` makes a timeout certificate of q verified timeouts with the
proofs of their highest claims. Pure: no I/O, no clock.
"""

from __future__ import annotations

from node.core.refusal import Reason
from node.core.signing import Verifier, verify_certificate, verify_timeout_cert
from node.core.types import (
    Block,
    Phase,
    Proposal,
    QuorumCert,
    Timeout,
    TimeoutCert,
    Vote,
    genesis_hash,
    signable_lock_view,
    timeout_message,
    vote_message,
)

__all__ = ["Certificates", "VoteCollector", "form_tc", "timeout_problem"]


class _CountingVerifier:
    """The injected verifier, counting verifications so each peer is charged for its own."""

    __slots__ = ("count", "inner")

    def __init__(self, inner: Verifier) -> None:
        self.inner, self.count = inner, 0

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        self.count += 1
        return self.inner.verify(index, message, signature)


def _qc_key(qc: QuorumCert) -> tuple[object, ...]:
    return (qc.phase, qc.view, qc.height, qc.block_hash, qc.signatures)


class Certificates:
    """Signature and certificate checks for one chain and validator set, with a bounded
    memo of the certificates already verified."""

    def __init__(self, chain_id: str, n: int, q: int, verifier: Verifier, memo_max: int) -> None:
        self.chain_id, self.n, self.q = chain_id, n, q
        self.verifier = _CountingVerifier(verifier)
        self._memo_max = memo_max
        self._verified: dict[tuple[object, ...], bool] = {}

    def start_count(self) -> None:
        """Count the signatures checked from here on (one message's worth)."""
        self.verifier.count = 0

    @property
    def count(self) -> int:
        return self.verifier.count

    def signed(self, index: int, message: bytes, signature: bytes) -> bool:
        return self.verifier.verify(index, message, signature)

    def qc(self, qc: QuorumCert, phase: Phase) -> bool:
        """``qc`` holds q valid signatures of distinct validators and is of ``phase``."""
        key = _qc_key(qc)
        ok = self._verified.get(key)
        if ok is None:
            ok = verify_certificate(qc, self.chain_id, self.n, self.q, self.verifier)
            self._remember(key, ok)
        return ok and qc.phase == phase

    def tc(self, tc: TimeoutCert) -> bool:
        """``tc`` holds q valid timeouts and the proofs of its highest claims."""
        key: tuple[object, ...] = ("tc", tc)
        ok = self._verified.get(key)
        if ok is None:
            ok = verify_timeout_cert(tc, self.chain_id, self.n, self.q, self.verifier)
            self._remember(key, ok)
        return ok

    def formed_qc(self, qc: QuorumCert) -> None:
        """A QC made here of votes verified one by one: no need to check it again."""
        self._remember(_qc_key(qc), True)

    def formed_tc(self, tc: TimeoutCert) -> None:
        """A TC made here of timeouts verified one by one."""
        self._remember(("tc", tc), True)

    def _remember(self, key: tuple[object, ...], ok: bool) -> None:
        """Keep a certificate that verified, pushing out the oldest. One that did not is
        checked again each time it comes, charged to its sender again: remembered, it cost
        nothing to push a good one out (a repeated signer fails before any signature is
        checked), and a peer's stream of such certificates, each charged 0, kept the memo
        empty, so every honest timeout's certificates were checked again (review 31f:
        26/16 view change, 80 -> 384 signatures). A certificate already kept pushes none out."""
        if not ok or key in self._verified:
            return
        if len(self._verified) >= self._memo_max:
            self._verified.pop(next(iter(self._verified)))
        self._verified[key] = ok


class VoteCollector:
    """The leader's tally of PREPARE and COMMIT votes for the proposal of its view, and of
    the COMMIT votes for its proposal of the view just left (pipelining: the next
    leader's proposal moves us on while those votes are still arriving).

    As a leader of one of the next two views it also counts COMMIT votes relayed to it (the previous
    leader's certificate was late: docs/consensus.md "Slow leaders"): one tally per view
    and block, of the latest view relayed and the one before (the two views a replica
    takes relayed votes of), each voter counted once in a view (an honest one commit-votes
    one block per view), so at most 2n signatures are held, no vote for another block can
    push the certified block's tally out, and no vote of the later view can wipe the
    earlier view's tally (session 26's review: a Byzantine validator's own relayed vote of
    view v + 1 dropped the honest relays of view v, and the certificate never formed)."""

    def __init__(self) -> None:
        self._tally: dict[Phase, dict[int, bytes]] = {}
        self._prev: tuple[Proposal, dict[int, bytes]] | None = None
        self._relayed_view = -1  # the latest view of a relayed tally (the one before is kept)
        self._relayed: dict[tuple[int, bytes], dict[int, bytes]] = {}  # (view, block hash)

    def open(self) -> None:
        """A proposal of ours: start counting both phases."""
        self._tally = {Phase.PREPARE: {}, Phase.COMMIT: {}}

    def clear(self, keep: Proposal | None = None) -> None:
        """A new view: votes of the old one count for nothing, except the COMMIT votes
        for ``keep``, our proposal of the view just left."""
        commit = self._tally.get(Phase.COMMIT)
        self._prev = None if keep is None or commit is None else (keep, commit)
        self._tally = {}

    def relayed(
        self, src: int, v: Vote, block: Block, certs: Certificates
    ) -> QuorumCert | Reason | None:
        """Count a COMMIT vote for ``block`` (at committed + 1) relayed to us as the leader
        of the view after ``v.view``: the QC when it completes a quorum."""
        if v.voter != src:
            return Reason.VOTER_NOT_SENDER
        if v.view < self._relayed_view - 1:
            return Reason.STALE_VIEW
        if v.view > self._relayed_view:
            self._relayed_view = v.view
            self._relayed = {k: t for k, t in self._relayed.items() if k[0] >= v.view - 1}
        if any(v.voter in t for (view, _), t in self._relayed.items() if view == v.view):
            return Reason.DUPLICATE  # counted in this view already (for this block or not)
        key = (v.view, block.hash)
        tally = self._relayed.get(key, {})
        got = _count(v, block, tally, certs)
        if tally:  # only a vote whose signature checked opens a tally
            self._relayed[key] = tally
        return got

    def add(
        self,
        src: int,
        v: Vote,
        *,
        view: int,
        leads: bool,
        proposal: Proposal | None,
        certs: Certificates,
    ) -> QuorumCert | Reason | None:
        """Count ``v`` from ``src``: the QC when it completes a quorum, None when it is
        counted short of one, else why it is refused (``leads``: this node leads ``view``)."""
        prev = self._prev
        if prev is not None and v.phase is Phase.COMMIT and v.view == prev[0].view:
            if v.voter != src:
                return Reason.VOTER_NOT_SENDER
            return _count(v, prev[0].block, prev[1], certs)
        if v.view != view:
            return Reason.STALE_VIEW if v.view < view else Reason.FUTURE_VIEW
        if not leads:
            return Reason.NOT_LEADER
        if v.voter != src:
            return Reason.VOTER_NOT_SENDER
        if proposal is None:
            return Reason.NO_PROPOSAL
        tally = self._tally.get(v.phase)
        if tally is None:
            if v.block_hash != proposal.block.hash or v.height != proposal.block.height:
                return Reason.OTHER_BLOCK
            return Reason.NO_PROPOSAL
        return _count(v, proposal.block, tally, certs)


def _count(
    v: Vote, block: Block, tally: dict[int, bytes], certs: Certificates
) -> QuorumCert | Reason | None:
    """Add a vote for ``block`` to ``tally`` once its signature checks: the QC at q votes."""
    if v.block_hash != block.hash or v.height != block.height:
        return Reason.OTHER_BLOCK
    if v.voter in tally:
        return Reason.DUPLICATE
    if len(tally) >= certs.q:
        return Reason.QUORUM_COMPLETE
    msg = vote_message(certs.chain_id, v.phase, v.view, v.height, v.block_hash)
    if not certs.signed(v.voter, msg, v.signature):
        return Reason.BAD_SIGNATURE
    tally[v.voter] = v.signature
    if len(tally) < certs.q:
        return None
    qc = QuorumCert(v.phase, v.view, v.height, v.block_hash, tuple(sorted(tally.items())))
    certs.formed_qc(qc)
    return qc


def timeout_problem(src: int, t: Timeout, certs: Certificates) -> Reason | None:
    """What is wrong with ``t`` from ``src`` (None: nothing). It must be signed by its
    sender and every claim in it proven: the committed height by a commit certificate,
    the lock by a prepare QC for the next height and its block."""
    if t.voter != src:
        return Reason.VOTER_NOT_SENDER
    if (t.high_pqc is None) != (t.pqc_block is None):
        return Reason.MALFORMED_CLAIMS
    if (t.commit_cert is None) != (t.committed_height == 0):
        return Reason.MALFORMED_CLAIMS
    pqc_view = None if t.high_pqc is None else t.high_pqc.view
    if not signable_lock_view(pqc_view):
        return Reason.MALFORMED_CLAIMS
    msg = timeout_message(certs.chain_id, t.view, t.committed_height, pqc_view)
    if not certs.signed(t.voter, msg, t.signature):
        return Reason.BAD_SIGNATURE
    if t.commit_cert is not None and (
        t.commit_cert.height != t.committed_height or not certs.qc(t.commit_cert, Phase.COMMIT)
    ):
        return Reason.UNPROVEN_COMMIT
    if t.high_pqc is not None and t.pqc_block is not None:
        # The lock must extend the committed block: pipelining certifies children of
        # blocks that never commit, and such a lock would steer the next leader off-chain.
        parent = genesis_hash(certs.chain_id) if t.commit_cert is None else t.commit_cert.block_hash
        ok = (
            t.high_pqc.height == t.committed_height + 1
            and t.pqc_block.parent_hash == parent
            and t.pqc_block.hash == t.high_pqc.block_hash
            and t.pqc_block.chain_id == certs.chain_id
            and certs.qc(t.high_pqc, Phase.PREPARE)
        )
        if not ok:
            return Reason.UNPROVEN_LOCK
    return None


def form_tc(view: int, bucket: dict[int, Timeout], q: int) -> TimeoutCert:
    """q verified timeouts of ``view``, with the proofs of their highest claims (from the
    timeouts that made them, so anyone can check the certificate alone)."""
    chosen = [bucket[i] for i in sorted(bucket)[:q]]
    top = max(t.committed_height for t in chosen)
    at_top = [t for t in chosen if t.committed_height == top]
    locks = [t.high_pqc for t in at_top if t.high_pqc is not None]
    return TimeoutCert(
        view,
        tuple(t.entry() for t in chosen),
        at_top[0].commit_cert,
        max(locks, key=lambda qc: qc.view, default=None),
    )
