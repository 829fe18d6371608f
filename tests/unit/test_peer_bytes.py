"""Review 32a: what a Byzantine validator's bytes cost an honest one (node/runtime/_transport.py
``PeerService``, ``Replica.admit``; docs/consensus.md "Work one peer can cause").

A peer's consensus messages were decoded whatever their rate: one validator streaming 4 MiB
proposals it did not lead took 96% of a receiver's event loop, and an honest peer's votes
waited a median 206 ms (measured by the review; unsolicited catch-up answers of tiny
transactions, 34 ms each to decode for 271 KiB: 1.3 s). Now each message is charged to its
sender's byte budget before it is decoded (its bytes, at least a minimum; then each item
decoded), and a sender over budget is not read until it has refilled.

A real ``Node`` and the real acceptor, fed frames without gRPC; the node's clock is the
test's, so the budget's refill is exact.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

from node.config import (
    BLOCK_BYTES_MAX,
    BLOCK_TXS_MAX,
    CONSENSUS_MESSAGE_BYTES_MAX,
    PEER_BYTES_BURST,
    PEER_BYTES_PER_S,
    PEER_FORWARD_CHUNK_TXS,
    PEER_FRAME_MESSAGES_MAX,
    PEER_ITEM_CHARGE_BYTES,
    PEER_MESSAGE_CHARGE_MIN_BYTES,
    TX_BYTES_MAX,
    TX_FORWARD_BATCH_MAX,
)
from node.core import (
    Block,
    Message,
    Phase,
    Proposal,
    QuorumCert,
    Replica,
    SyncResponse,
    Timeout,
    TxForward,
    Vote,
    encode_message,
)
from node.core.codec import decoded_items
from node.core.refusal import Kind, Reason
from node.runtime._transport import PeerService
from node.store import MemoryStore
from node.wire import peer_pb2 as peer_pb
from tests.ledger_helpers import shared_net
from tests.patience import HANG_S
from tests.unit.test_core_refusals import ME, NOW, OTHER, replica
from tests.unit.test_failstop import Harness
from tests.unit.test_peer_streams import _PINS, _Context

BYZ, HONEST = 1, 2  # the acceptor is validator 0
_NET = shared_net()
_CHAIN = _NET.genesis.chain_id


def _block(txs: tuple[bytes, ...], proposer: int) -> Block:
    t = _NET.genesis.genesis_time_ms + 500
    return Block(_CHAIN, 1, 1, bytes(32), proposer, t, 0, bytes(32), bytes(32), txs)


def _qc(signers: int = 3) -> QuorumCert:
    return QuorumCert(Phase.COMMIT, 0, 1, bytes(32), tuple((i, bytes(64)) for i in range(signers)))


def _full_block(proposer: int) -> Block:
    """The largest block an honest leader makes: BLOCK_TXS_MAX transactions, BLOCK_BYTES_MAX."""
    size = BLOCK_BYTES_MAX // BLOCK_TXS_MAX
    return _block(tuple(k.to_bytes(4, "big") * (size // 4) for k in range(BLOCK_TXS_MAX)), proposer)


def _largest_tx(k: int) -> bytes:
    return k.to_bytes(4, "big") * (TX_BYTES_MAX // 4)


def _junk_proposal() -> bytes:
    """A 4 MiB block for view 1 that validator BYZ does not lead."""
    txs = tuple(_largest_tx(k) for k in range(1000))
    data = encode_message(Proposal(1, _block(txs, BYZ), None, None))
    assert len(data) > BLOCK_BYTES_MAX * 9 // 10
    return data


def _charge(data: bytes, msg: Message) -> int:
    return (
        max(len(data), PEER_MESSAGE_CHARGE_MIN_BYTES) + decoded_items(msg) * PEER_ITEM_CHARGE_BYTES
    )


class _Acceptor:
    """Validator 0's node and acceptor; counts what each peer had delivered, and when."""

    def __init__(self) -> None:
        self.h = Harness(_NET, MemoryStore(_NET.genesis), index=0)
        self.h.node.start()
        self.service = PeerService(self.h.node, [*_PINS, b"\x00" * 32])
        self.delivered: Counter[int] = Counter()
        self.arrived: dict[int, float] = {}  # an honest vote's view -> when delivered
        self.held = asyncio.Event()  # a peer's stream was held back
        deliver, admit = self.h.node.deliver, self.h.node.admit

        def counting(src: int, msg: Message) -> None:
            self.delivered[src] += 1
            if isinstance(msg, Vote):
                self.arrived[msg.view] = time.perf_counter()
            deliver(src, msg)

        def watching(src: int, size: int, kind: Kind | None) -> int:
            wait_ms = admit(src, size, kind)
            if wait_ms:
                self.held.set()
            return wait_ms

        self.h.node.deliver = counting  # type: ignore[method-assign]
        self.h.node.admit = watching  # type: ignore[method-assign]

    def held_back(self, kind: Kind) -> int:
        return self.h.node.replica.refused[(kind, Reason.OVER_BYTE_BUDGET)]

    def connect(self, src: int, frames: AsyncIterator[peer_pb.PeerFrame]) -> asyncio.Task[None]:
        return asyncio.create_task(self.service.Connect(frames, _Context(src)))  # type: ignore[arg-type]

    async def until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(HANG_S):
            while not done():
                await asyncio.sleep(0.001)


async def _endless(data: bytes) -> AsyncIterator[peer_pb.PeerFrame]:
    while True:
        yield peer_pb.PeerFrame(messages=[data])


async def test_a_byzantine_flood_is_cut_to_its_budget_and_honest_votes_pass() -> None:
    """Validator BYZ streams 4 MiB proposals it does not lead. While the clock stands still
    it gets its burst decoded and no more (before: 122 in the first 300 ms, and 96% of the
    loop for as long as it went on); each second after, its rate. HONEST's votes, one
    every 5 ms meanwhile, all arrive without waiting behind the junk."""
    a = _Acceptor()
    junk = _junk_proposal()
    per_junk = _charge(junk, Proposal(1, _block((b"x",) * 1000, BYZ), None, None))
    due: dict[int, float] = {}

    async def votes() -> AsyncIterator[peer_pb.PeerFrame]:
        start = time.perf_counter()
        for k in range(60):
            due[1000 + k] = start + 0.005 * k
            await asyncio.sleep(max(0.0, due[1000 + k] - time.perf_counter()))
            vote = Vote(Phase.PREPARE, 1000 + k, 1, bytes(32), HONEST, bytes(64))
            yield peer_pb.PeerFrame(messages=[encode_message(vote)])

    bound = PEER_BYTES_BURST // per_junk + 1
    flood = a.connect(BYZ, _endless(junk))
    try:
        await a.until(lambda: a.held.is_set() or a.delivered[BYZ] > bound)
        burst = a.delivered[BYZ]
        assert burst <= bound, f"{burst} junk proposals decoded"
        assert a.held_back(Kind.PROPOSAL) >= 1
        await a.connect(HONEST, votes())  # 300 ms of votes, the flood held beside them
        assert a.delivered[HONEST] == 60 and a.delivered[BYZ] == burst
        waits = [a.arrived[view] - t for view, t in due.items()]
        assert statistics.median(waits) < 0.050, f"honest votes waited {waits}"
        for second in range(1, 4):
            a.held.clear()
            a.h.now_ms += 1000  # the budget refills by PEER_BYTES_PER_S
            await a.until(a.held.is_set)
            more = a.delivered[BYZ] - burst
            assert more <= second * PEER_BYTES_PER_S // per_junk + 1, f"{more} in {second} s"
        assert more >= 3 * PEER_BYTES_PER_S // per_junk - 1  # control: held, not cut off
    finally:
        flood.cancel()


async def test_an_honest_peer_at_the_largest_blocks_is_never_held_back() -> None:
    """Control: for 20 s of the node's clock, HONEST sends each second what
    node/config.py counts as an honest peer's most at once: a full block's proposal, a
    timeout carrying a full locked block, a re-gossip of TX_FORWARD_BATCH_MAX of the
    largest transactions, and 276 small messages (4 a view at 69 views a second). Nothing
    waits, everything is decoded and delivered."""
    a = _Acceptor()
    full = _full_block(HONEST)
    second: list[Message] = [
        Proposal(1, full, _qc(), None),
        Timeout(1, 0, _qc(), _qc(), full, HONEST, bytes(64)),
        TxForward(
            tuple(k.to_bytes(4, "big") * (TX_BYTES_MAX // 4) for k in range(TX_FORWARD_BATCH_MAX))
        ),
        *(Vote(Phase.PREPARE, 1000 + k, 1, bytes(32), HONEST, bytes(64)) for k in range(276)),
    ]
    encoded = [encode_message(m) for m in second]
    assert len(encoded[0]) <= CONSENSUS_MESSAGE_BYTES_MAX
    charged = sum(_charge(data, m) for data, m in zip(encoded, second, strict=True))
    seconds = 20
    # It has teeth: at half the rate this traffic would not fit.
    assert charged * seconds > PEER_BYTES_BURST + seconds * PEER_BYTES_PER_S // 2

    async def traffic() -> AsyncIterator[peer_pb.PeerFrame]:
        for _ in range(seconds):
            a.h.now_ms += 1000
            for data in encoded:
                yield peer_pb.PeerFrame(messages=[data])

    await a.connect(HONEST, traffic())
    assert not a.held.is_set()
    assert sum(a.held_back(kind) for kind in Kind) == 0
    parts = 1 + 1 + -(-TX_FORWARD_BATCH_MAX // PEER_FORWARD_CHUNK_TXS) + 276  # in chunks
    assert a.delivered[HONEST] == seconds * parts


async def test_junk_frames_are_charged_as_what_grpc_parsed() -> None:
    """A frame of more than PEER_FRAME_MESSAGES_MAX messages was refused whole but charged
    nothing, and an empty frame was read for nothing: gRPC parses every entry of a frame on
    the event loop (2 million one-byte entries: 81 ms), so a peer sending either at line
    rate held the loop. Each is now charged as its entries (an empty one as one): the peer
    is held back after its burst, and another peer is not."""
    a = _Acceptor()
    read = Counter[str]()

    async def empty_frames() -> AsyncIterator[peer_pb.PeerFrame]:
        for _ in range(2 * PEER_BYTES_BURST // PEER_MESSAGE_CHARGE_MIN_BYTES):
            read["empty"] += 1
            yield peer_pb.PeerFrame()

    flood = a.connect(BYZ, empty_frames())
    try:
        await a.until(a.held.is_set)
        assert read["empty"] <= PEER_BYTES_BURST // PEER_MESSAGE_CHARGE_MIN_BYTES + 2
    finally:
        flood.cancel()

    async def big_frame() -> AsyncIterator[peer_pb.PeerFrame]:
        yield peer_pb.PeerFrame(messages=[b"\x07"] * (PEER_FRAME_MESSAGES_MAX + 1))

    async def vote() -> AsyncIterator[peer_pb.PeerFrame]:
        vote = Vote(Phase.PREPARE, 7, 1, bytes(32), HONEST, bytes(64))
        yield peer_pb.PeerFrame(messages=[encode_message(vote)])

    a.held.clear()
    await a.connect(HONEST, vote())  # control: another peer is heard
    await a.connect(HONEST, big_frame())  # within its burst: refused, and charged ...
    assert a.delivered[HONEST] == 1 and not a.held.is_set()
    later = a.connect(HONEST, vote())  # ... so the next message waits
    try:
        await a.until(a.held.is_set)
        assert a.delivered[HONEST] == 1
        a.h.now_ms += 1000  # the debt of the frame's few entries over the burst
        await asyncio.wait_for(later, HANG_S)
        assert a.delivered[HONEST] == 2
    finally:
        later.cancel()


# --- the charge, in the replica alone -----------------------------------------------------


def _admitted(r: Replica, size: int, now_ms: int) -> bool:
    return r.admit(OTHER, size, Kind.VOTE, now_ms) == 0


def _taken(r: Replica, size: int, now_ms: int, most: int) -> int:
    """How many messages of ``size`` the budget takes before one waits (at most ``most``)."""
    for taken in range(most):
        if not _admitted(r, size, now_ms):
            return taken
    return most


def test_a_small_message_is_charged_at_least_the_minimum() -> None:
    """Junk votes cost ~18 us each to take in, whatever their size: 4,096 to a frame took
    as much of the loop as 64 MiB of proposals. Charged by their bytes alone, a burst's
    worth would be millions."""
    r = replica(ME)
    burst = PEER_BYTES_BURST // PEER_MESSAGE_CHARGE_MIN_BYTES
    assert _taken(r, 100, NOW, 2 * burst) == burst
    assert r.refused[(Kind.VOTE, Reason.OVER_BYTE_BUDGET)] == 1
    # ... and it refills at the rate: a second's worth of messages a second later.
    rate = PEER_BYTES_PER_S // PEER_MESSAGE_CHARGE_MIN_BYTES
    assert _taken(r, 100, NOW + 1000, 2 * burst) == rate


def test_the_items_a_message_decoded_to_are_charged() -> None:
    """An unsolicited catch-up answer of 16 blocks of BLOCK_TXS_MAX four-byte transactions is
    258 KiB and took 34 ms to decode (its Merkle trees): charged by its bytes, 254 of them
    fit the burst. With its 32,048 items charged, 3 do."""
    r = replica(ME)
    tiny = tuple(k.to_bytes(4, "big") for k in range(BLOCK_TXS_MAX))
    answer = SyncResponse(tuple((_block(tiny, OTHER), _qc()) for _ in range(16)))
    size = len(encode_message(answer))
    assert size < 300 * 1024
    taken = 0
    while _admitted(r, size, NOW) and taken < 300:
        r.step(OTHER, answer, NOW)
        taken += 1
    assert taken <= PEER_BYTES_BURST // (size + decoded_items(answer) * PEER_ITEM_CHARGE_BYTES) + 1
    # Control: the node's own messages are not charged (they are not decoded).
    r2 = replica(ME)
    for _ in range(8):
        r2.step(ME, answer, NOW)
    assert _admitted(r2, size, NOW)


def test_decoded_items_counts_what_the_decoder_builds() -> None:
    qc3 = _qc()
    full = _block((b"a", b"b"), OTHER)
    assert decoded_items(Proposal(1, full, qc3, None)) == 2 + 3
    assert decoded_items(Timeout(1, 0, qc3, qc3, full, OTHER, bytes(64))) == 3 + 3 + 2
    assert decoded_items(TxForward((b"a",) * 7)) == 7
    assert decoded_items(SyncResponse(((full, qc3), (full, qc3)))) == 2 * (2 + 3)
    assert decoded_items(Vote(Phase.PREPARE, 1, 1, bytes(32), OTHER, bytes(64))) == 0
