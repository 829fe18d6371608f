"""Canonical encodings of blocks, certificates and the safety state; the mempool's bounds."""

from __future__ import annotations

from dataclasses import replace

import pytest

from node.core import (
    AddResult,
    Block,
    DecodeError,
    Mempool,
    Phase,
    QuorumCert,
    SafetyState,
    decode_block,
    decode_header,
    decode_qc,
    encode_block,
    encode_qc,
    genesis_hash,
)


def _block(txs: tuple[bytes, ...] = (b"tx-a", b"tx-b")) -> Block:
    return Block("chain", 1, 0, genesis_hash("chain"), 0, 5, 0, bytes(32), bytes(32), txs)


def test_block_round_trip_keeps_the_hash() -> None:
    block = _block()
    again = decode_block(encode_block(block))
    assert again == block and again.hash == block.hash


def test_the_parent_view_is_in_the_header_and_survives_both_decoders() -> None:
    """ADR 0022: the leader schedule reads it from stored headers alone."""
    block = replace(_block(), height=2, executed_height=1, parent_view=7)
    again = decode_block(encode_block(block))
    assert again == block and again.hash == block.hash and again.parent_view == 7
    assert decode_header(block.header).parent_view == 7


def test_block_hash_commits_to_every_field_and_the_payload() -> None:
    base = _block()
    assert _block((b"tx-a", b"tx-c")).hash != base.hash
    for change in [{"view": 1}, {"time_ms": 6}, {"state_root": b"\1" * 32}, {"parent_view": 1}]:
        assert replace(base, **change).hash != base.hash  # type: ignore[arg-type]
    assert replace(base, results_root=b"\1" * 32).hash != base.hash


@pytest.mark.parametrize("cut", [1, 10, 40])
def test_truncated_or_padded_blocks_are_rejected(cut: int) -> None:
    data = encode_block(_block())
    with pytest.raises(DecodeError):
        decode_block(data[:-cut])
    with pytest.raises(DecodeError):
        decode_block(data + b"\x00")


def test_payload_swapped_under_a_header_is_rejected() -> None:
    data = encode_block(_block((b"tx-a", b"tx-b")))
    with pytest.raises(DecodeError, match="transactions root"):
        decode_block(data.replace(b"tx-b", b"tx-X"))


def test_qc_round_trip() -> None:
    qc = QuorumCert(Phase.COMMIT, 7, 3, bytes(range(32)), ((0, b"s0"), (2, b"s2")))
    assert decode_qc(encode_qc(qc)) == qc
    with pytest.raises(DecodeError):
        decode_qc(encode_qc(qc)[:-1])


def test_safety_state_round_trip() -> None:
    block = _block()
    qc = QuorumCert(Phase.PREPARE, 4, 1, block.hash, ((1, b"x"),))
    for state in (SafetyState(), SafetyState(3, 4, 4, 2, qc, block)):
        assert SafetyState.decode(state.encode()) == state


def test_mempool_bounds_dedup_and_back_pressure() -> None:
    pool = Mempool(txs_max=2, bytes_max=10, committed_ids_max=2)
    assert pool.add(b"aaaa") is AddResult.ACCEPTED
    assert pool.add(b"aaaa") is AddResult.DUPLICATE
    assert pool.add(b"bbbbbbbbb") is AddResult.FULL  # bytes bound
    assert pool.add(b"bb") is AddResult.ACCEPTED
    assert pool.add(b"cc") is AddResult.FULL  # count bound
    assert pool.batch(1, 100) == [b"aaaa"]
    pool.remove_committed([b"aaaa"])
    assert len(pool) == 1 and pool.size_bytes == 2
    assert pool.add(b"aaaa") is AddResult.DUPLICATE  # committed recently
    assert Mempool().add(b"x" * 5000) is AddResult.TOO_LARGE
