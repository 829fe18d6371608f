"""Every refusal reason, played: for each (kind, reason) of node/core/refusal.py one case
feeds a replica the offending message and asserts that exactly that pair, and nothing
else, is counted in ``Replica.refused``. A reason added without a case fails
``test_every_reason_has_a_case``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from node.config import (
    BLOCK_TIME_DRIFT_MAX_MS,
    CONSENSUS_MESSAGE_BYTES_MAX,
    PEER_BYTES_BURST,
    PEER_VERIFY_BURST,
    TX_BYTES_MAX,
)
from node.core import (
    Block,
    CoreConfig,
    Mempool,
    NewView,
    Phase,
    Proposal,
    QCMessage,
    Quorum,
    QuorumCert,
    Replica,
    SafetyState,
    SyncRequest,
    SyncResponse,
    Timeout,
    TimeoutCert,
    TxForward,
    Vote,
    genesis_hash,
    timeout_message,
    vote_message,
)
from node.core.refusal import Kind, Reason, Refusal
from node.merkle import EMPTY_ROOT
from tests.sim.harness import HashSigner, HashVerifier
from tests.unit.test_core_replica import CHAIN, ROOT0, Disk

N, Q = 4, 3
QUORUM = Quorum(N, Q)
NOW = 100_000
GENESIS = genesis_hash(CHAIN)


def replica(
    me: int,
    disk: Disk | None = None,
    *,
    safety: SafetyState | None = None,
    mempool: Mempool | None = None,
    tx_check: Callable[[bytes], bool] | None = None,
    txs_max: int = 2_000,
    bytes_max: int = 1 << 20,
    quorum: Quorum = QUORUM,
) -> Replica:
    cfg = CoreConfig(CHAIN, quorum, me, ROOT0, block_txs_max=txs_max, block_bytes_max=bytes_max)
    return Replica(
        cfg,
        HashSigner(me),
        HashVerifier(quorum.n),
        Disk() if disk is None else disk,
        executed_root=ROOT0,
        results_root=EMPTY_ROOT,
        safety=None if safety is None else safety.encode(),
        now_ms=NOW,
        mempool=mempool,
        tx_check=tx_check,
    )


_PROBE = replica(0)
L0, L1 = _PROBE.leader(0), _PROBE.leader(1)
ME = next(i for i in range(N) if i not in {_PROBE.leader(v) for v in range(3)})
OTHER = next(i for i in range(N) if i not in {ME, L0})


def block(
    view: int = 0,
    *,
    height: int = 1,
    parent: bytes = GENESIS,
    proposer: int | None = None,
    time_ms: int = NOW,
    txs: tuple[bytes, ...] = (b"trade",),
    state_root: bytes = ROOT0,
    chain: str = CHAIN,
) -> Block:
    who = _PROBE.leader(view) if proposer is None else proposer
    return Block(chain, height, view, parent, who, time_ms, height - 1, state_root, EMPTY_ROOT, txs)


def qc(phase: Phase, view: int, height: int, block_hash: bytes, signers: int = Q) -> QuorumCert:
    msg = vote_message(CHAIN, phase, view, height, block_hash)
    return QuorumCert(
        phase, view, height, block_hash, tuple((i, HashSigner(i).sign(msg)) for i in range(signers))
    )


def vote(voter: int, view: int, block_hash: bytes, *, good_sig: bool = True) -> Vote:
    msg = vote_message(CHAIN, Phase.PREPARE, view, 1, block_hash)
    sig = HashSigner(voter).sign(msg) if good_sig else bytes(32)
    return Vote(Phase.PREPARE, view, 1, block_hash, voter, sig)


def timeout(
    voter: int,
    view: int = 0,
    committed: int = 0,
    *,
    commit_cert: QuorumCert | None = None,
    lock: QuorumCert | None = None,
    lock_block: Block | None = None,
    good_sig: bool = True,
) -> Timeout:
    lock_view = None if lock is None else lock.view
    msg = timeout_message(CHAIN, view, committed, lock_view)
    sig = HashSigner(voter).sign(msg) if good_sig else bytes(32)
    return Timeout(view, committed, commit_cert, lock, lock_block, voter, sig)


def tc(
    view: int,
    voters: int = Q,
    committed: int = 0,
    *,
    high_commit: QuorumCert | None = None,
    high_lock: QuorumCert | None = None,
) -> TimeoutCert:
    entries = tuple(
        timeout(v, view, committed, commit_cert=high_commit, lock=high_lock).entry()
        for v in range(voters)
    )
    return TimeoutCert(view, entries, high_commit, high_lock)


def at_view_1(r: Replica) -> Replica:
    """``r`` after a valid timeout certificate for view 0."""
    r.step(OTHER, NewView(tc(0)))
    assert r.view == 1
    return r


def at_height_1() -> Replica:
    """Validator ME restarted on a chain of one block, committed in view 0."""
    disk = Disk()
    b1 = block(0)
    disk.blocks[1] = (b1, qc(Phase.COMMIT, 0, 1, b1.hash))
    r = replica(ME, disk)
    assert (r.committed_height, r.view) == (1, 1)
    return r


def leader_with_proposal() -> tuple[Replica, Block]:
    r = replica(L0)
    r.submit(b"trade", NOW)
    [p] = {m for _, m in r.ready().to_send if isinstance(m, Proposal)}
    r.advance()
    return r, p.block


Feed = Callable[[Replica], None]
Case = Callable[[], tuple[Replica, Feed]]
CASES: dict[Refusal, Case] = {}


def case(kind: Kind, reason: Reason) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[(kind, reason)] = fn
        return fn

    return register


def _propose(src: int, p: Proposal) -> Feed:
    return lambda r: r.step(src, p)


# --- proposals ----------------------------------------------------------------------------


@case(Kind.PROPOSAL, Reason.HALTED)
def _halted() -> tuple[Replica, Feed]:
    r = replica(ME)
    r.halted = "diverged (set by the test)"
    return r, _propose(L0, Proposal(0, block(0), None, None))


@case(Kind.PROPOSAL, Reason.OVER_VERIFY_BUDGET)
def _over_budget() -> tuple[Replica, Feed]:
    r = replica(ME)
    for _ in range(PEER_VERIFY_BURST):  # one signature checked (and refused) each
        r.step(L0, timeout(L0, good_sig=False))
    return r, _propose(L0, Proposal(0, block(0), None, None))


@case(Kind.PROPOSAL, Reason.STALE_VIEW)
def _stale_proposal() -> tuple[Replica, Feed]:
    return at_view_1(replica(ME)), _propose(L0, Proposal(0, block(0), None, None))


@case(Kind.PROPOSAL, Reason.WRONG_CHAIN)
def _wrong_chain() -> tuple[Replica, Feed]:
    return replica(ME), _propose(L0, Proposal(0, block(0, chain="other"), None, None))


@case(Kind.PROPOSAL, Reason.INVALID_PARENT_CERT)
def _no_parent_cert() -> tuple[Replica, Feed]:
    b2 = block(0, height=2, parent=bytes(32))
    return replica(ME), _propose(L0, Proposal(0, b2, None, None))


@case(Kind.PROPOSAL, Reason.INVALID_TC)
def _short_tc() -> tuple[Replica, Feed]:
    return replica(ME), _propose(L1, Proposal(1, block(1), None, tc(0, voters=Q - 1)))


@case(Kind.PROPOSAL, Reason.FUTURE_VIEW)
def _future_proposal() -> tuple[Replica, Feed]:
    leader = _PROBE.leader(5)
    return replica(ME), _propose(leader, Proposal(5, block(5), None, None))


@case(Kind.PROPOSAL, Reason.STALE_HEIGHT)
def _stale_height() -> tuple[Replica, Feed]:
    return at_height_1(), _propose(L1, Proposal(1, block(1), None, None))


@case(Kind.PROPOSAL, Reason.ALREADY_VOTED)
def _already_voted() -> tuple[Replica, Feed]:
    r = replica(ME)
    r.step(L0, Proposal(0, block(0), None, None))
    assert r.safety.prepare_view == 0
    return r, _propose(L0, Proposal(0, block(0, txs=(b"other",)), None, None))


@case(Kind.PROPOSAL, Reason.NOT_LEADER)
def _not_leader() -> tuple[Replica, Feed]:
    return replica(ME), _propose(OTHER, Proposal(0, block(0, proposer=OTHER), None, None))


def _voting_rule(b: Block, r: Replica | None = None) -> tuple[Replica, Feed]:
    return replica(ME) if r is None else r, _propose(L0, Proposal(0, b, None, None))


@case(Kind.PROPOSAL, Reason.PARENT_MISMATCH)
def _parent_mismatch() -> tuple[Replica, Feed]:
    return _voting_rule(block(0, parent=bytes(32)))


@case(Kind.PROPOSAL, Reason.TIME_NOT_AFTER_PARENT)
def _time_not_after_parent() -> tuple[Replica, Feed]:
    return _voting_rule(block(0, time_ms=0))


@case(Kind.PROPOSAL, Reason.TIME_TOO_FAR_AHEAD)
def _time_ahead() -> tuple[Replica, Feed]:
    return _voting_rule(block(0, time_ms=NOW + BLOCK_TIME_DRIFT_MAX_MS + 1))


@case(Kind.PROPOSAL, Reason.TIME_TOO_FAR_BEHIND)
def _time_behind() -> tuple[Replica, Feed]:
    return _voting_rule(block(0, time_ms=NOW - BLOCK_TIME_DRIFT_MAX_MS - 1))


@case(Kind.PROPOSAL, Reason.NOT_FRESH_BLOCK)
def _not_fresh() -> tuple[Replica, Feed]:
    return _voting_rule(block(0, proposer=OTHER))


@case(Kind.PROPOSAL, Reason.TOO_MANY_TXS)
def _too_many_txs() -> tuple[Replica, Feed]:
    return _voting_rule(block(0, txs=(b"a", b"b", b"c")), replica(ME, txs_max=2))


@case(Kind.PROPOSAL, Reason.TOO_MANY_BYTES)
def _too_many_bytes() -> tuple[Replica, Feed]:
    return _voting_rule(block(0, txs=(b"x" * 65,)), replica(ME, bytes_max=64))


@case(Kind.PROPOSAL, Reason.EMPTY_AFTER_EMPTY)
def _empty() -> tuple[Replica, Feed]:
    return _voting_rule(block(0, txs=()))


@case(Kind.PROPOSAL, Reason.REPEATED_TX)
def _repeated() -> tuple[Replica, Feed]:
    return _voting_rule(block(0, txs=(b"a", b"a")))


@case(Kind.PROPOSAL, Reason.ROOTS_DIFFER)
def _roots() -> tuple[Replica, Feed]:
    return _voting_rule(block(0, state_root=b"\x01" * 32))


@case(Kind.PROPOSAL, Reason.NOT_JUSTIFIED)
def _not_justified() -> tuple[Replica, Feed]:
    return at_view_1(replica(ME)), _propose(L1, Proposal(1, block(1), None, None))


@case(Kind.PROPOSAL, Reason.CONFLICTS_WITH_LOCK)
def _against_lock() -> tuple[Replica, Feed]:
    """Locked on a block of view 0 (restored; no vote of ours recorded), an equivocating
    leader of view 0 proposes a rival at the same height: fresh in view 0 (genesis needs no
    certificate), refused by the lock."""
    locked = block(0)
    lock = SafetyState(high_pqc=qc(Phase.PREPARE, 0, 1, locked.hash), high_pqc_block=locked)
    return replica(ME, safety=lock), _propose(
        L0, Proposal(0, block(0, txs=(b"rival",)), None, None)
    )


@case(Kind.PROPOSAL, Reason.BELOW_TC_COMMIT)
def _below_tc_commit() -> tuple[Replica, Feed]:
    b1 = block(0)
    proof = tc(3, committed=1, high_commit=qc(Phase.COMMIT, 0, 1, b1.hash))
    leader = _PROBE.leader(4)
    return replica(ME), _propose(leader, Proposal(4, block(4, txs=(b"rival",)), None, proof))


@case(Kind.PROPOSAL, Reason.IGNORES_TC_LOCK)
def _ignores_tc_lock() -> tuple[Replica, Feed]:
    locked = block(0)
    proof = tc(0, high_lock=qc(Phase.PREPARE, 0, 1, locked.hash))
    return replica(ME), _propose(L1, Proposal(1, block(1, txs=(b"rival",)), None, proof))


# --- votes (at the leader) ----------------------------------------------------------------


@case(Kind.VOTE, Reason.STALE_VIEW)
def _stale_vote() -> tuple[Replica, Feed]:
    return at_view_1(replica(ME)), lambda r: r.step(OTHER, vote(OTHER, 0, bytes(32)))


@case(Kind.VOTE, Reason.FUTURE_VIEW)
def _future_vote() -> tuple[Replica, Feed]:
    return replica(ME), lambda r: r.step(OTHER, vote(OTHER, 5, bytes(32)))


@case(Kind.VOTE, Reason.NOT_LEADER)
def _vote_not_leader() -> tuple[Replica, Feed]:
    return replica(ME), lambda r: r.step(OTHER, vote(OTHER, 0, bytes(32)))


@case(Kind.VOTE, Reason.VOTER_NOT_SENDER)
def _vote_relayed() -> tuple[Replica, Feed]:
    r, b = leader_with_proposal()
    return r, lambda r: r.step(OTHER, vote(ME, 0, b.hash))


@case(Kind.VOTE, Reason.NO_PROPOSAL)
def _no_proposal() -> tuple[Replica, Feed]:
    return replica(L0), lambda r: r.step(ME, vote(ME, 0, bytes(32)))


@case(Kind.VOTE, Reason.OTHER_BLOCK)
def _other_block() -> tuple[Replica, Feed]:
    r, _ = leader_with_proposal()
    return r, lambda r: r.step(ME, vote(ME, 0, bytes(32)))


@case(Kind.VOTE, Reason.DUPLICATE)
def _duplicate_vote() -> tuple[Replica, Feed]:
    r, b = leader_with_proposal()
    r.step(ME, vote(ME, 0, b.hash))
    return r, lambda r: r.step(ME, vote(ME, 0, b.hash))


@case(Kind.VOTE, Reason.QUORUM_COMPLETE)
def _late_vote() -> tuple[Replica, Feed]:
    r, b = leader_with_proposal()
    voters = [i for i in range(N) if i != L0]
    for i in voters:
        r.step(i, vote(i, 0, b.hash))
    assert any(isinstance(m, QCMessage) for _, m in r.ready().to_send)
    return r, lambda r: r.step(L0, vote(L0, 0, b.hash))


@case(Kind.VOTE, Reason.BAD_SIGNATURE)
def _forged_vote() -> tuple[Replica, Feed]:
    r, b = leader_with_proposal()
    return r, lambda r: r.step(ME, vote(ME, 0, b.hash, good_sig=False))


# --- certificates -------------------------------------------------------------------------


@case(Kind.QC, Reason.STALE_HEIGHT)
def _stale_qc() -> tuple[Replica, Feed]:
    b1 = block(0)
    return at_height_1(), lambda r: r.step(OTHER, QCMessage(qc(Phase.COMMIT, 0, 1, b1.hash)))


@case(Kind.QC, Reason.INVALID_CERTIFICATE)
def _short_qc() -> tuple[Replica, Feed]:
    short = qc(Phase.COMMIT, 0, 1, block(0).hash, signers=Q - 1)
    return replica(ME), lambda r: r.step(OTHER, QCMessage(short))


@case(Kind.QC, Reason.UNKNOWN_BLOCK)
def _unknown_block() -> tuple[Replica, Feed]:
    prepare = qc(Phase.PREPARE, 0, 1, block(0).hash)
    return replica(ME), lambda r: r.step(OTHER, QCMessage(prepare))


@case(Kind.NEW_VIEW, Reason.STALE_VIEW)
def _stale_new_view() -> tuple[Replica, Feed]:
    return at_view_1(replica(ME)), lambda r: r.step(OTHER, NewView(tc(0)))


@case(Kind.NEW_VIEW, Reason.INVALID_CERTIFICATE)
def _short_new_view() -> tuple[Replica, Feed]:
    return replica(ME), lambda r: r.step(OTHER, NewView(tc(0, voters=Q - 1)))


# --- timeouts -----------------------------------------------------------------------------


@case(Kind.TIMEOUT, Reason.VIEW_TOO_FAR_AHEAD)
def _far_timeout() -> tuple[Replica, Feed]:
    return replica(ME), lambda r: r.step(OTHER, timeout(OTHER, view=8))


@case(Kind.TIMEOUT, Reason.DUPLICATE)
def _duplicate_timeout() -> tuple[Replica, Feed]:
    r = replica(ME)
    r.step(OTHER, timeout(OTHER))
    return r, lambda r: r.step(OTHER, timeout(OTHER))


@case(Kind.TIMEOUT, Reason.VOTER_NOT_SENDER)
def _relayed_timeout() -> tuple[Replica, Feed]:
    return replica(ME), lambda r: r.step(L0, timeout(OTHER))


@case(Kind.TIMEOUT, Reason.MALFORMED_CLAIMS)
def _claim_without_proof() -> tuple[Replica, Feed]:
    return replica(ME), lambda r: r.step(OTHER, timeout(OTHER, committed=1))


@case(Kind.TIMEOUT, Reason.BAD_SIGNATURE)
def _forged_timeout() -> tuple[Replica, Feed]:
    return replica(ME), lambda r: r.step(OTHER, timeout(OTHER, good_sig=False))


@case(Kind.TIMEOUT, Reason.UNPROVEN_COMMIT)
def _short_commit_proof() -> tuple[Replica, Feed]:
    short = qc(Phase.COMMIT, 0, 1, block(0).hash, signers=Q - 1)
    return replica(ME), lambda r: r.step(OTHER, timeout(OTHER, committed=1, commit_cert=short))


@case(Kind.TIMEOUT, Reason.UNPROVEN_LOCK)
def _lock_of_another_height() -> tuple[Replica, Feed]:
    b2 = block(0, height=2, parent=block(0).hash)
    lock = qc(Phase.PREPARE, 0, 2, b2.hash)  # valid, but not for our next height
    t = timeout(OTHER, lock=lock, lock_block=b2)
    return replica(ME), lambda r: r.step(OTHER, t)


@case(Kind.TIMEOUT, Reason.HELPED_RECENTLY)
def _helped() -> tuple[Replica, Feed]:
    r = at_view_1(replica(ME))
    r.step(OTHER, timeout(OTHER))  # answered with the TC that moved us on
    assert any(isinstance(m, NewView) for _, m in r.ready().to_send)
    return r, lambda r: r.step(OTHER, timeout(OTHER))


# --- catch-up -----------------------------------------------------------------------------


@case(Kind.SYNC_REQUEST, Reason.NOT_HELD)
def _not_held() -> tuple[Replica, Feed]:
    return replica(ME), lambda r: r.step(OTHER, SyncRequest(1, 4))


@case(Kind.SYNC_REQUEST, Reason.OVER_SYNC_BUDGET)
def _over_sync_budget() -> tuple[Replica, Feed]:
    r = replica(ME)
    while not r.refused[(Kind.SYNC_REQUEST, Reason.OVER_SYNC_BUDGET)]:
        r.step(OTHER, SyncRequest(1, 4))  # each charged at least the minimum
    return r, lambda r: r.step(OTHER, SyncRequest(1, 4))


@case(Kind.PROPOSAL, Reason.OVER_BYTE_BUDGET)
def _over_byte_budget() -> tuple[Replica, Feed]:
    r = replica(ME)
    for _ in range(PEER_BYTES_BURST // CONSENSUS_MESSAGE_BYTES_MAX + 1):
        r.admit(OTHER, CONSENSUS_MESSAGE_BYTES_MAX, Kind.PROPOSAL, NOW)  # each charged its bytes
    return r, lambda r: r.admit(OTHER, CONSENSUS_MESSAGE_BYTES_MAX, Kind.PROPOSAL, NOW)


def _respond(b: Block, cert: QuorumCert) -> Feed:
    return lambda r: r.step(OTHER, SyncResponse(((b, cert),)))


@case(Kind.SYNC_RESPONSE, Reason.PARENT_MISMATCH)
def _sync_parent() -> tuple[Replica, Feed]:
    b = block(0, parent=bytes(32))
    return replica(ME), _respond(b, qc(Phase.COMMIT, 0, 1, b.hash))


@case(Kind.SYNC_RESPONSE, Reason.INVALID_CERTIFICATE)
def _sync_short_cert() -> tuple[Replica, Feed]:
    b = block(0)
    return replica(ME), _respond(b, qc(Phase.COMMIT, 0, 1, b.hash, signers=Q - 1))


@case(Kind.SYNC_RESPONSE, Reason.WRONG_CHAIN)
def _sync_other_chain() -> tuple[Replica, Feed]:
    b = block(0, chain="other")
    return replica(ME), _respond(b, qc(Phase.COMMIT, 0, 1, b.hash))


# --- forwarded transactions ---------------------------------------------------------------


def _forward(*txs: bytes) -> Feed:
    return lambda r: r.step(OTHER, TxForward(txs))


@case(Kind.TX_FORWARD, Reason.FAILS_ADMISSION)
def _garbage() -> tuple[Replica, Feed]:
    return replica(ME, tx_check=lambda tx: False), _forward(b"garbage")


@case(Kind.TX_FORWARD, Reason.OVER_MEMPOOL_SHARE)
def _over_share() -> tuple[Replica, Feed]:
    r = replica(ME, mempool=Mempool(txs_max=6))  # a peer's share: 6 // 3 = 2
    r.step(OTHER, TxForward((b"t1", b"t2")))
    return r, _forward(b"t3")


@case(Kind.TX_FORWARD, Reason.MEMPOOL_FULL)
def _full() -> tuple[Replica, Feed]:
    r = replica(ME, mempool=Mempool(txs_max=6))
    for k in range(6):  # the node's own clients are not capped by a share
        r.submit(b"own-%d" % k)
    return r, _forward(b"t1")


@case(Kind.TX_FORWARD, Reason.TX_TOO_LARGE)
def _too_large() -> tuple[Replica, Feed]:
    return replica(ME), _forward(b"x" * (TX_BYTES_MAX + 1))


# --- the table ----------------------------------------------------------------------------


@pytest.mark.parametrize("refusal", list(CASES), ids=[f"{k}:{r}" for k, r in CASES])
def test_each_refusal_is_counted_with_its_kind_and_reason(refusal: Refusal) -> None:
    r, feed = CASES[refusal]()
    before = Counter(r.refused)
    feed(r)
    assert r.refused - before == Counter({refusal: 1})


def test_every_reason_has_a_case() -> None:
    assert {reason for _, reason in CASES} == set(Reason)


def test_every_kind_has_a_case() -> None:
    assert {kind for kind, _ in CASES} == set(Kind)


def test_a_valid_message_counts_no_refusal() -> None:
    """The control: the cases' builders make valid messages unless told otherwise."""
    r = replica(ME)
    r.step(L0, Proposal(0, block(0), None, None))
    r.step(OTHER, timeout(OTHER))
    assert r.safety.prepare_view == 0 and not r.refused


def test_the_docs_table_explains_every_reason() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "consensus.md").read_text()
    table = docs.split("### Refusals", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    named = {r.strip(" `") for row in rows for r in row.split("|")[1].split(" / ")}
    assert named == {str(r) for r in Reason}
