"""One Byzantine validator of four (q = 3) on real processes: validator 0's process is
stopped and a rogue (tests/cluster/rogue.py) takes its place with its own keys and pinned
certificate, then lies, forges and floods. Throughout, honest trades submitted through the
SDK settle within TRADE_BOUND_S each, no honest validator halts, their resident memory
stays under RSS_BOUND_MB, and during the floods their event loop keeps answering GetStatus
(sampled every 50 ms, each call bounded by STALL_WAIT_S; the worst round trip is printed,
a figure rather than an assertion on a shared machine).

The tests share one cluster. The first needs a fresh chain, on which the rogue (validator
0) leads view 0: in file order it gets the shared one, in any other order a new cluster
(``fresh_attack``). The second needs a view the rogue leads and leaves to time out, which
comes round every four views.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from client import Endpoint, LedgerClient, ParticipantKey, load_key
from devtools.cluster import kill_node
from node import merkle
from node.config import (
    CATCHUP_BATCH_BLOCKS_MAX,
    PEER_FRAME_MESSAGES_MAX,
    TIMEOUT_VIEWS_TRACKED_MAX,
    TX_FORWARD_BATCH_MAX,
)
from node.core import (
    Block,
    Message,
    NewView,
    Phase,
    Proposal,
    QCMessage,
    QuorumCert,
    SyncRequest,
    SyncResponse,
    Timeout,
    TimeoutCert,
    TimeoutEntry,
    TxForward,
    Vote,
    decode_block,
    genesis_hash,
)
from node.runtime import wall_ms
from node.runtime._transport import FRAME_REFUSED
from node.settlement import SignedTx, genesis_state_root
from node.wire import ledger_pb2 as pb
from tests.cluster.harness import Cluster, running_cluster, wait_until
from tests.cluster.rogue import Rogue, StallProbe, refused, rss_mb, view_changes

pytestmark = pytest.mark.slow

K = 0  # the rogue: validator 0 leads view 0 of a fresh chain
HONEST = (1, 2, 3)
TRADE_BOUND_S = 10.0  # each honest trade, submit to receipt with its certified result
RSS_BOUND_MB = 300.0  # each honest validator's VmRSS, throughout
RSS_FLOOD_GROWTH_MB = 32.0  # and its growth during one flood (the flood's cost, not load)
STALL_WAIT_S = TRADE_BOUND_S  # a GetStatus an honest node leaves unanswered during a flood
_MARKERS = itertools.count(1)  # the height each flood's closing catch-up request asks for
BOGUS_QUORUM = tuple((i, bytes(64)) for i in range(3))  # three "signatures" that are not


@dataclass
class Attack:
    c: Cluster
    rogue: Rogue
    client: LedgerClient
    keys: dict[str, ParticipantKey]
    latencies_s: list[float]

    def trade_tx(self, amount: int = 1) -> SignedTx:
        """A fresh, validly signed honest transfer (BANK01 pays BANK02)."""
        tx = self.client.tx.transfer(self.c.demo.cash, "BANK01", "BANK02", amount)
        return SignedTx.decode(self.client.sign(tx, self.keys["BANK01"]).raw)

    def settle(self, count: int) -> None:
        """``count`` honest trades one after another (transfers and DvPs), each final with
        its certified result within TRADE_BOUND_S: the SDK raises otherwise."""
        c, tx, k = self.client, self.client.tx, self.keys
        bond, cash = self.c.demo.bonds[0], self.c.demo.cash
        for n in range(count):
            if n % 2:
                stx = c.sign(
                    tx.dvp("BANK01", "BANK02", bond, 10, cash, 9), k["BANK01"], k["BANK02"]
                )
            else:
                stx = c.sign(tx.transfer(cash, "BANK02", "BANK01", 1), k["BANK02"])
            t0 = time.monotonic()
            receipt = c.submit(stx, timeout_s=TRADE_BOUND_S)
            self.latencies_s.append(time.monotonic() - t0)
            assert receipt.ok

    def check_honest(self) -> None:
        """No honest validator halted or outgrew its memory bound."""
        for i in HONEST:
            assert self.c.status(i).halted == ""
            assert rss_mb(self.c.net, i) < RSS_BOUND_MB

    def refusals(self, *reasons: str) -> list[float]:
        """Per honest validator, its refusals of these reasons ("kind:reason") summed."""
        return [sum(refused(self.c.net, i).get(r, 0.0) for r in reasons) for i in HONEST]


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attack]:
    with _attack_on_a_fresh_cluster(tmp_path_factory.mktemp("rogue") / "run") as a:
        yield a


@pytest.fixture
def fresh_attack(attack: Attack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attack]:
    """The shared attack while its chain is still fresh (height 0, k leading view 0: the
    file order), else one on a new cluster, so the test needing it passes in any order."""
    if {(attack.c.status(i).height, attack.c.status(i).leader) for i in HONEST} == {(0, K)}:
        yield attack
        return
    with _attack_on_a_fresh_cluster(tmp_path_factory.mktemp("rogue-fresh") / "run") as a:
        yield a


@contextlib.contextmanager
def _attack_on_a_fresh_cluster(run_dir: Path) -> Iterator[Attack]:
    with running_cluster(run_dir, 4, 3) as c:
        assert kill_node(c.net, K)  # k's real process is replaced by the rogue
        rogue = Rogue(c.net, K)
        try:
            hellos = rogue.start()
            assert sorted(hellos) == list(HONEST)  # each acceptor took it for validator k
            wait_until(
                lambda: all(_linked_to_k(c.status(i)) for i in HONEST),
                15,
                "the honest validators' links to k to reach the rogue",
            )
            nodes = [c.net.nodes[i] for i in HONEST]
            keys = {
                p: load_key(run_dir / "participants" / f"{p}.key") for p in ("BANK01", "BANK02")
            }
            with LedgerClient(
                [Endpoint(x.client_address, x.name) for x in nodes],
                tls_certs=c.net.tls_pinned.read_bytes(),
                genesis=c.demo.genesis,
                identity=load_key(run_dir / "participants" / "AUDITOR.key"),
            ) as client:
                a = Attack(c, rogue, client, keys, [])
                yield a
                a.check_honest()
                print(f"\nhonest trade latency: worst {max(a.latencies_s, default=0):.3f} s")
        finally:
            rogue.close()


def _linked_to_k(status: pb.NodeStatus) -> bool:
    return [p.connected for p in status.peers if p.validator == K] == [True]


def _votes(rogue: Rogue, phase: Phase, block_hash: bytes) -> dict[int, Vote]:
    return {
        src: m
        for src, m in list(rogue.inbox)
        if isinstance(m, Vote) and m.phase is phase and m.block_hash == block_hash
    }


def _voters(rogue: Rogue, blocks: Iterable[Block]) -> set[int]:
    """The validators that sent k a PREPARE vote for any of ``blocks``."""
    return {src for b in blocks for src in _votes(rogue, Phase.PREPARE, b.hash)}


def _certify(rogue: Rogue, phase: Phase, block: Block, view: int) -> QuorumCert:
    """What k does as leader: wait for the honest votes and make them a certificate."""
    rogue.run(rogue.until(lambda: len(_votes(rogue, phase, block.hash)) == 3, 10))
    votes = _votes(rogue, phase, block.hash)
    sigs = tuple(sorted((v.voter, v.signature) for v in votes.values()))
    return QuorumCert(phase, view, block.height, block.hash, sigs)


def test_k_gets_votes_only_for_a_block_timed_by_the_clock(fresh_attack: Attack) -> None:
    """Block time bounded on both sides (issue 12 item 7): k leads view 0 and proposes a
    far-future block, then a backdated one, then a well-timed one. Only the last gets votes;
    k certifies and commits it as an honest leader would (the negative control)."""
    a, r = fresh_attack, fresh_attack.rogue
    g = a.c.demo.genesis
    assert {(a.c.status(i).height, a.c.status(i).leader) for i in HONEST} == {(0, K)}
    tx = a.trade_tx().encode()

    def block(time_ms: int) -> Block:
        return Block(
            g.chain_id, 1, 0, genesis_hash(g.chain_id), K, time_ms, 0,
            genesis_state_root(g), merkle.EMPTY_ROOT, (tx,),
        )  # fmt: skip

    now = wall_ms()
    future, backdated, good = block(now + 60_000), block(now - 60_000), block(now)
    blocks = {"far-future": future, "backdated": backdated, "well-timed": good}
    r.run(r.send_all([Proposal(0, b, None, None) for b in blocks.values()]))
    # An honest replica votes at most once in a view, for the first valid proposal.
    r.run(r.until(lambda: _voters(r, blocks.values()) == set(HONEST), 10))
    voted = {n: _votes(r, Phase.PREPARE, b.hash) for n, b in blocks.items()}
    assert {n: sorted(v) for n, v in voted.items() if v} == {"well-timed": list(HONEST)}
    assert all(n >= 1 for n in a.refusals("proposal:time_too_far_ahead"))
    assert all(n >= 1 for n in a.refusals("proposal:time_too_far_behind"))
    prepare = _certify(r, Phase.PREPARE, good, 0)

    r.run(r.send_all([QCMessage(prepare)]))
    commit = _certify(r, Phase.COMMIT, good, 0)
    r.run(r.send_all([QCMessage(commit)]))
    a.settle(1)
    first = decode_block(a.c.stub(1).GetBlock(pb.BlockRequest(height=1), timeout=10).block)
    assert (first.hash, first.proposer) == (good.hash, K)
    a.check_honest()


def _forged_claims(r: Rogue) -> list[Message]:
    """Every claim k can sign but not prove, for the views around the honest ones."""
    cert = r.commit_cert
    h, v = (0 if cert is None else cert.height), r.view
    chain = r.chain_id
    fake = Block(
        chain, h + 1, v, b"\x01" * 32, K, wall_ms(), h, b"\x02" * 32, b"\x03" * 32, (b"x",)
    )
    fake_lock = QuorumCert(Phase.PREPARE, v + 5, h + 1, fake.hash, BOGUS_QUORUM)
    msgs: list[Message] = []
    for w in range(v, v + TIMEOUT_VIEWS_TRACKED_MAX):
        msgs.append(r.sign_timeout(w, h + 1_000, cert))  # a height its certificate is not of
        if cert is not None:
            msgs.append(r.sign_timeout(w, h, cert, fake_lock, fake))  # a lock nobody certified
    # A timeout certificate far ahead whose top claim has no proof (and entries k forged).
    mine = r.sign_timeout(v + 1_000, h + 1_000, None)
    entries = tuple(TimeoutEntry(i, h + 1_000, None, mine.signature) for i in range(3))
    msgs.append(NewView(TimeoutCert(v + 1_000, entries)))
    msgs.append(QCMessage(QuorumCert(Phase.COMMIT, v + 1_000, h + 1, fake.hash, BOGUS_QUORUM)))
    msgs.append(Vote(Phase.PREPARE, v, h + 1, fake.hash, K, bytes(64)))
    msgs.append(r.sign_vote(Phase.COMMIT, v, h + 1, fake.hash))
    return msgs


async def _repeat(
    r: Rogue, stop: threading.Event, make: Callable[[Rogue], list[Message]], every_s: float
) -> int:
    """Send ``make(r)`` to every honest validator every ``every_s`` until ``stop``."""
    rounds = 0
    while not stop.is_set():
        await r.send_all(make(r))
        rounds += 1
        await asyncio.sleep(every_s)
    return rounds


def test_forged_claims_are_refused_and_trades_settle(attack: Attack) -> None:
    """Issue 12 item 1: timeouts with an inflated committed height or a fake lock (signed
    with k's real key), a timeout certificate with unproven top claims, certificates and
    votes with bogus signatures, resent every 100 ms. A view k leads times out meanwhile,
    so before the fix its timeout certificate took k's claim and the chain stalled."""
    a, r, net = attack, attack.rogue, attack.c.net
    start = {i: a.c.status(i).view for i in HONEST}
    changes = sum(view_changes(net, i) for i in HONEST)
    stop = threading.Event()
    attacking = r.spawn(_repeat(r, stop, _forged_claims, 0.1))
    try:
        a.settle(6)
    finally:
        stop.set()
    assert attacking.result(10) > 0
    assert sum(view_changes(net, i) for i in HONEST) > changes, "no view change met the attack"
    for i in HONEST:  # the forged certificates far ahead moved nobody
        assert a.c.status(i).view < start[i] + 1_000
    unproven = [
        f"timeout:{r}"
        for r in ("unproven_commit", "unproven_lock", "malformed_claims", "bad_signature")
    ]
    assert all(n > 0 for n in a.refusals(*unproven))
    a.check_honest()


def _flood(
    a: Attack, frames: list[list[Message | bytes]], during: Callable[[], None] | None = None
) -> list[StallProbe]:
    """Send ``frames`` to every honest validator while trades settle (``during``, three
    through the SDK by default) and probes sample each honest node's event loop, then a
    catch-up request whose answer shows the node has handled everything before it (it
    handles k's messages in order)."""
    r = a.rogue
    heard = r.heard_count
    height = next(_MARKERS)  # answers to an earlier flood's marker do not count

    async def send() -> None:
        for frame in frames:
            await r.send_all(frame)
        while not _answered(r, heard, height):
            # Resent until answered: the flood may have left the catch-up budget in debt.
            await r.send_all([SyncRequest(height, 1)])
            with contextlib.suppress(TimeoutError):
                await r.until(lambda: _answered(r, heard, height), 0.5)

    rss_before = [rss_mb(a.c.net, i) for i in HONEST]
    probes = [
        StallProbe(a.c.stub(i), functools.partial(rss_mb, a.c.net, i), deadline_s=STALL_WAIT_S)
        for i in HONEST
    ]
    for p in probes:
        p.__enter__()
    try:
        sending = r.spawn(send())
        (during or functools.partial(a.settle, 3))()
        sending.result(60)
        a.settle(1)
    finally:
        for p in probes:
            p.__exit__()
    for i, p, rss in zip(HONEST, probes, rss_before, strict=True):
        print(
            f"\nvalidator {i}: worst GetStatus {p.worst_s * 1000:.0f} ms over {len(p.samples)} "
            f"samples, mempool max {p.mempool_max}, RSS {rss:.0f} -> max {p.rss_max:.0f} MiB"
        )
        assert p.rss_max < RSS_BOUND_MB and p.rss_max - rss < RSS_FLOOD_GROWTH_MB
    return probes


def _answered(r: Rogue, since: int, height: int) -> bool:
    """Every honest validator answered a catch-up request for ``height`` since message
    ``since``."""
    got = {
        src
        for src, m in r.heard_since(since)
        if isinstance(m, SyncResponse) and m.blocks[0][0].height == height
    }
    return got >= set(HONEST)


def test_sync_request_flood_costs_its_budget_not_the_loop(attack: Attack) -> None:
    """Issue 12 item 4: frames of PEER_FRAME_MESSAGES_MAX catch-up requests for the whole
    chain (before the fix a few KB cost seconds of event loop and hundreds of MB)."""
    a = attack
    while a.c.status(HONEST[0]).height < 2 * CATCHUP_BATCH_BLOCKS_MAX:
        a.settle(4)  # a chain long enough that each request asks for a full batch
    req = SyncRequest(1, CATCHUP_BATCH_BLOCKS_MAX)
    frames: list[list[Message | bytes]] = [[req] * PEER_FRAME_MESSAGES_MAX] * 8
    _flood(a, frames)
    assert all(n > 0 for n in a.refusals("sync_request:over_sync_budget"))
    a.check_honest()


def test_forwarded_garbage_stays_out_of_mempools(attack: Attack) -> None:
    """Issue 12 items 3 and 4: TxForward floods of garbage (bytes that are no transaction,
    transactions with forged signatures) never enter an honest mempool and never make an
    honest client's submit meet RESOURCE_EXHAUSTED."""
    a = attack
    body = a.trade_tx().body
    forged = [SignedTx(body, (("BANK01", i.to_bytes(64, "big")),)).encode() for i in range(4_000)]
    junk = [b"\xff" + i.to_bytes(8, "big") * 8 for i in range(4_000)]
    garbage = [x for pair in zip(forged, junk, strict=True) for x in pair]
    batches: list[Message | bytes] = [
        TxForward(tuple(garbage[i : i + TX_FORWARD_BATCH_MAX]))
        for i in range(0, len(garbage), TX_FORWARD_BATCH_MAX)
    ]

    def submit_to_each() -> None:
        """A trade straight to each honest node's Submit, no SDK retries: accepted."""
        for i in HONEST:
            stx = a.trade_tx()
            got = a.c.stub(i).Submit(pb.SubmitRequest(transaction=stx.encode()), timeout=10)
            assert got.outcome == pb.ACCEPTED
            assert a.client.receipt(stx.tx_id, timeout_s=TRADE_BOUND_S).ok
        a.settle(2)

    probes = _flood(a, [batches, batches[::-1]], submit_to_each)
    assert all(p.mempool_max <= 2 for p in probes)  # at most the honest trade in flight
    checked = a.refusals("tx_forward:fails_admission")
    assert all(n > 0 for n in checked), {i: refused(a.c.net, i) for i in HONEST}
    a.check_honest()


def _replays(r: Rogue) -> list[Message | bytes]:
    """What the honest validators told k so far, sent back to them as k's own."""
    return [m for _, m in list(r.inbox)[-PEER_FRAME_MESSAGES_MAX:]]


def test_far_future_timeouts_and_replays_are_cheap(attack: Attack) -> None:
    """Issue 12 item 3: timeouts for views far ahead (dropped before any signature check)
    and replays of every message the honest validators sent k so far."""
    a, r = attack, attack.rogue
    v = r.view
    far: list[Message | bytes] = [
        Timeout(v + 100 + i, 0, None, None, None, K, bytes(64))
        for i in range(PEER_FRAME_MESSAGES_MAX)
    ]
    far[0] = r.sign_timeout(v + 50, 0, None)
    _flood(a, [far, far, _replays(r), _replays(r)])
    assert all(n >= len(far) for n in a.refusals("timeout:view_too_far_ahead"))
    a.check_honest()


def test_a_frame_of_too_many_messages_is_refused_whole(attack: Attack) -> None:
    """A frame of PEER_FRAME_MESSAGES_MAX + 1 messages is dropped whole, a valid forwarded
    trade inside it included; a trade forwarded in the next frame settles (the control)."""
    a, r = attack, attack.rogue
    inside, after = a.trade_tx(), a.trade_tx()
    filler: list[Message | bytes] = [SyncRequest(1, 1)] * PEER_FRAME_MESSAGES_MAX
    before = a.refusals(FRAME_REFUSED)
    r.run(r.send_all([TxForward((inside.encode(),)), *filler]))
    r.run(r.send_all([TxForward((after.encode(),))]))
    receipt = a.client.receipt(after.tx_id, timeout_s=TRADE_BOUND_S)
    assert receipt.ok
    for i in HONEST:  # not committed, not even pending: it never entered a mempool
        with pytest.raises(grpc.RpcError) as info:
            a.c.stub(i).GetTransaction(pb.TransactionRequest(tx_id=inside.tx_id), timeout=10)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND
    assert [n - b for n, b in zip(a.refusals(FRAME_REFUSED), before, strict=True)] == [1, 1, 1]
    a.check_honest()
