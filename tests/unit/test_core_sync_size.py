"""A catch-up response always fits one wire message, however large the blocks are."""

from __future__ import annotations

from node.config import BLOCK_BYTES_MAX, CONSENSUS_MESSAGE_BYTES_MAX, TX_BYTES_MAX
from node.core import (
    Block,
    BlockHeader,
    CoreConfig,
    Phase,
    Quorum,
    QuorumCert,
    Replica,
    SyncRequest,
    SyncResponse,
    decode_header,
    encode_block,
    encode_message,
    encode_qc,
    genesis_hash,
)
from node.core.budget import Bucket
from node.core.catchup import serve_sync

CHAIN = "sync-size-test"


class _BigBlocks:
    """Sixteen committed blocks of about 1 MiB each (fake certificates: never verified)."""

    def __init__(self) -> None:
        self.blocks: list[tuple[Block, QuorumCert]] = []
        parent = genesis_hash(CHAIN)
        for h in range(1, 17):
            txs = tuple(bytes([h, k % 256]) * (TX_BYTES_MAX // 2) for k in range(256))
            b = Block(CHAIN, h, h - 1, parent, 0, h, h - 1, b"\0" * 32, b"\0" * 32, txs)
            cert = QuorumCert(
                Phase.COMMIT, h - 1, h, b.hash, tuple((i, b"s" * 64) for i in range(3))
            )
            self.blocks.append((b, cert))
            parent = b.hash

    def committed_height(self) -> int:
        return len(self.blocks)

    def committed_block(self, height: int) -> tuple[Block, QuorumCert] | None:
        return self.blocks[height - 1] if 1 <= height <= len(self.blocks) else None

    def committed_header(self, height: int) -> BlockHeader | None:
        got = self.committed_block(height)
        return None if got is None else decode_header(got[0].header)

    def tx_committed(self, tx: bytes) -> bool:
        return False


class _NoCrypto:
    def sign(self, message: bytes) -> bytes:
        return b"s" * 64

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        return True


def test_sync_response_stops_before_the_wire_limit_but_sends_at_least_one_block() -> None:
    source = _BigBlocks()
    cfg = CoreConfig(chain_id=CHAIN, quorum=Quorum(4, 3), me=0, genesis_state_root=b"\0" * 32)
    r = Replica(
        cfg, _NoCrypto(), _NoCrypto(), source, executed_root=b"\0" * 32, results_root=b"\0" * 32
    )
    r.ready()
    r.advance()
    r.step(1, SyncRequest(1, 16))
    sent = [m for _, m in r.ready().to_send if isinstance(m, SyncResponse)]
    assert len(sent) == 1
    response = sent[0]
    assert 1 <= len(response.blocks) < 16
    assert sum(b.payload_bytes for b, _ in response.blocks) <= BLOCK_BYTES_MAX
    assert len(encode_message(response)) <= CONSENSUS_MESSAGE_BYTES_MAX
    assert [b.height for b, _ in response.blocks] == list(range(1, len(response.blocks) + 1))


class _Counting(_BigBlocks):
    """The same blocks, counting the bytes read out of storage."""

    def __init__(self) -> None:
        super().__init__()
        self.read = 0

    def committed_block(self, height: int) -> tuple[Block, QuorumCert] | None:
        got = super().committed_block(height)
        if got is not None:
            self.read += len(encode_block(got[0])) + len(encode_qc(got[1]))
        return got


class _Recording(Bucket):
    def __init__(self) -> None:
        super().__init__(1, 1 << 40, 0)
        self.charged = 0

    def charge(self, cost: int, now_ms: int) -> None:
        self.charged += cost
        super().charge(cost, now_ms)


def test_every_block_read_to_serve_catch_up_is_charged() -> None:
    """Review 32a: the block read past the response's size limit (up to a full block,
    decoded with its Merkle tree) was not charged, so a peer's catch-up requests cost up to
    twice its budget. Each block is ~1 MiB: the answer holds 3, the 4th is read too."""
    source, budget = _Counting(), _Recording()
    response = serve_sync(SyncRequest(1, 16), source, budget, 0)
    assert isinstance(response, SyncResponse) and len(response.blocks) == 3
    assert source.read > sum(len(encode_block(b)) for b, _ in response.blocks) * 4 // 3
    assert budget.charged >= source.read, f"{source.read} bytes read, {budget.charged} charged"
