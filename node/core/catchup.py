"""Catch-up: asking peers for committed blocks, and serving theirs.

A replica that learns of a height above its committed one (a verified certificate, or a
peer's unproven word in its hello) asks one peer at a time for the missing blocks,
``CATCHUP_BATCH_BLOCKS_MAX`` per request, first the peer that told it, and tries the next
peer after the one asked, round-robin, when an answer does not come in time or the asked
peer answers with nothing. In time: within the replica's commit-relay wait (a few median
commit rounds, at least ``COMMIT_RELAY_FLOOR_MS``) once it knows one, at most
``CATCHUP_RETRY_MS``: a peer holding the blocks answers in about a round trip, and the
peer asked first, the sender of a certificate, may be the leader that hid the block and
answers late (review 20b: 450 ms late cost the next leaders their views, 7/5 30 views
failed, 26/16 150). A peer's word lasts one round of unanswered requests to every peer,
so a liar costs n - 1 small requests, once.

A peer that holds none of the blocks asked for says so at once with an empty answer, and
the next peer is asked at once: the peer that sent a certificate has often not committed
its block itself yet (pipelined, the certificate of committed + 2 reaches a replica that
missed the one of committed + 1 together with the leader that formed it), and waiting
``CATCHUP_RETRY_MS`` for nothing cost a leader its view. When every peer has answered with
nothing since the episode began, the next round waits ``CATCHUP_RETRY_MS``, and a target
only a peer's word names is asked after one peer per ``CATCHUP_RETRY_MS`` as before:
empty answers never make a request storm.

An answer from the peer asked that moves the replica on by fewer blocks than it asked for
(and not to the target) is followed by a request to the next peer, round-robin; a full
answer by one to the same peer. So a peer that answers each request with a single block
just before the deadline holds the replica back by one wait per round of peers, not one
per block, and a peer that is down costs a wait only when the one before it ran short.

Nobody steers a request that is out: a certificate or a hello arriving meanwhile raises
the target, not whom we ask; an answer from a peer we did not ask counts only if it moves
us on. (A Byzantine peer re-sending a commit certificate and empty answers otherwise kept
a lagging replica asking only it, for ever: session 14's review.) The replica checks and
commits what comes back (``Replica``: each block needs its commit certificate); this
module only decides whom to ask, for what, and when.

Serving: committed blocks read from storage through the injected ``BlockSource``, at
most a peer's catch-up budget in bytes. Pure: the caller's ``now_ms`` is the only clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from node.config import (
    CATCHUP_BATCH_BLOCKS_MAX,
    CATCHUP_BLOCK_CHARGE_MIN_BYTES,
    CATCHUP_RESPONSE_BYTES_MAX,
    CATCHUP_RETRY_MS,
)
from node.core.budget import Bucket
from node.core.refusal import Reason
from node.core.types import (
    Block,
    BlockHeader,
    Message,
    QuorumCert,
    SyncRequest,
    SyncResponse,
    encode_qc,
)

__all__ = ["BlockSource", "CatchUp", "serve_sync"]


class BlockSource(Protocol):
    """Read-only access to committed blocks in storage (for restart and serving catch-up)."""

    def committed_height(self) -> int: ...

    def committed_block(self, height: int) -> tuple[Block, QuorumCert] | None: ...

    def committed_header(self, height: int) -> BlockHeader | None:
        """The header of a committed block alone (cheap: the leader schedule replays every
        header at start)."""
        ...

    def tx_committed(self, tx: bytes) -> bool:
        """True when a committed block already applied ``tx`` (keeps replays out of blocks)."""
        ...


Send = Callable[[int, Message], None]


class CatchUp:
    """Whom to ask for which blocks, and when to ask again."""

    def __init__(
        self, me: int, n: int, send: Send, retry_ms: Callable[[], int] = lambda: CATCHUP_RETRY_MS
    ) -> None:
        self.me, self.n = me, n
        self._send = send
        self._retry_ms = retry_ms  # how long an answer is waited for (at most the constant)
        self.target = 0  # the height we catch up to (certified, or a peer's word)
        self.certified = 0  # the highest height a verified certificate names
        self.misses = 0  # unanswered requests since the last progress
        self.sent_ms: int | None = None  # a request is out since then
        # Whom the next request goes to, and, while one is out, whom it went to: nothing
        # changes it then but a miss, which asks the next peer at once.
        self.peer = (me + 1) % n
        self.resting = False  # a round of empty answers: nothing is out until the retry
        self._asked = 0  # blocks the request out (or the last one) asked for

    def retry_deadline_ms(self) -> int | None:
        if self.sent_ms is None:
            return None
        wait = CATCHUP_RETRY_MS if self.resting else min(self._retry_ms(), CATCHUP_RETRY_MS)
        return self.sent_ms + wait

    def peer_height(self, src: int, height: int, committed: int, now_ms: int) -> None:
        """A peer's unproven word (its hello) that it holds blocks up to ``height``."""
        if src == self.me or height <= max(committed, self.target):
            return
        self.target, self.misses = height, 0
        if self.sent_ms is None:
            self.peer = src
            self._request(committed, now_ms)

    def want(self, src: int, height: int, committed: int, now_ms: int) -> None:
        """A verified certificate names ``height``; ``src`` sent it, so likely holds it."""
        self.certified = max(self.certified, height)
        self.target = max(self.target, height)
        if self.sent_ms is None:
            if src != self.me:
                self.peer = src
            self._request(committed, now_ms)

    def _request(self, committed: int, now_ms: int) -> None:
        count = min(self.target - committed, CATCHUP_BATCH_BLOCKS_MAX)
        self.resting = False
        if count <= 0:
            self.sent_ms = None
            return
        self._send(self.peer, SyncRequest(committed + 1, count))
        self.sent_ms, self._asked = now_ms, count

    def retry(self, committed: int, now_ms: int) -> None:
        """On a tick: the peer did not answer in time (nothing to give, or over its budget
        for us): ask the next one, round-robin, never ourselves."""
        deadline = self.retry_deadline_ms()
        if deadline is None or now_ms < deadline:
            return
        if self.resting:
            self._request(committed, now_ms)  # the rest after a round is over: ask again
            return
        self._miss(committed, now_ms)

    def _miss(self, committed: int, now_ms: int, *, answered: bool = False) -> None:
        """The peer asked gave nothing: ask the one after it, at once, unless an empty
        ``answered`` closes a round of misses: then at the retry deadline."""
        self.misses += 1
        if self.misses >= self.n - 1 and self.target > self.certified:
            self.target = self.certified  # a peer's unproven word lasts one round
            if self.target <= committed:
                self.sent_ms = None
                return
        self._next_peer()
        # An unproven word is asked after at the old pace, one peer per retry: a liar's
        # hello must not buy a round of requests at network speed (review 20b).
        word = self.target > self.certified
        if answered and (word or self.misses % (self.n - 1) == 0):
            self.resting, self.sent_ms = True, now_ms
            return
        self._request(committed, now_ms)

    def _next_peer(self) -> None:
        self.peer = (self.peer + 1) % self.n
        if self.peer == self.me:
            self.peer = (self.peer + 1) % self.n

    def committed(self, height: int) -> None:
        """We committed ``height`` (by an answer or by consensus): the target reached ends
        the episode, and with it its misses (a later episode's rounds count afresh:
        review 20b, stale misses made a first empty answer rest)."""
        if self.target <= height:
            self.sent_ms, self.resting, self.misses = None, False, 0

    def answered(self, src: int, start: int, committed: int, now_ms: int) -> None:
        """``src`` answered a request; we were at ``start`` before and are at ``committed``.
        An answer that moves nothing counts only from the peer asked (then it is a miss)."""
        moved = committed > start
        if not moved and (self.sent_ms is None or self.resting or src != self.peer):
            return  # unasked, late, or a chain's end: it changes nothing
        if moved:
            self.misses = 0
        if self.target > committed:
            if moved:
                if src == self.peer and committed - start < self._asked:
                    # Short of what was asked: the rest from the next peer. One answering
                    # every request with a single block just before the retry deadline
                    # was otherwise asked again and again, and held a lagging replica to
                    # a block per deadline (session 26's review).
                    self._next_peer()
                self._request(committed, now_ms)
            else:
                self._miss(committed, now_ms, answered=True)
            return
        self.sent_ms, self.resting = None, False
        if moved:
            # An answer that moved us on: the peer may hold more (a restarted node asks on
            # the peer's word in its hello, with no certificate naming a target). Any
            # progress counts, not only a full answer: every hello starts a chain, and
            # chains that overlap move us on by part of an answer each. One more request,
            # not retried: an empty or missing answer ends the chain.
            self._send(src, SyncRequest(committed + 1, CATCHUP_BATCH_BLOCKS_MAX))


def serve_sync(
    msg: SyncRequest, source: BlockSource, budget: Bucket, now_ms: int
) -> SyncResponse | Reason:
    """The committed blocks ``msg`` asks for, at most ``budget`` allows (the caller checked
    it is available), or why there is nothing to send. Every block read is charged, the
    one read past the response's size limit too."""
    blocks: list[tuple[Block, QuorumCert]] = []
    count = min(msg.count, CATCHUP_BATCH_BLOCKS_MAX)
    size = charge = 0
    for height in range(max(msg.from_height, 1), msg.from_height + count):
        got = source.committed_block(height)
        if got is None:
            break
        # Read and decoded, sent or not: charged (the block past the limit was not, so a
        # request cost up to twice what it was charged: review 32a).
        block_bytes = _wire_size_bound(*got)
        charge += max(block_bytes, CATCHUP_BLOCK_CHARGE_MIN_BYTES)
        # One response must fit one wire message; the first block always does.
        size += block_bytes
        if blocks and size > CATCHUP_RESPONSE_BYTES_MAX:
            break
        blocks.append(got)
    budget.charge(max(charge, CATCHUP_BLOCK_CHARGE_MIN_BYTES), now_ms)
    return SyncResponse(tuple(blocks)) if blocks else Reason.NOT_HELD


def _wire_size_bound(block: Block, cert: QuorumCert) -> int:
    """An upper bound on a committed block's share of a SyncResponse (block and certificate,
    as they are: a bound for the largest possible certificate charged a peer's catch-up
    budget 134 KB per block at 16 of 26, and starved a restarted node 96 blocks in)."""
    framing = 16  # block blob and header lengths, certificate blob length, message share
    return (
        len(block.header)
        + block.payload_bytes
        + 4 * len(block.txs)
        + framing
        + len(encode_qc(cert))
    )
