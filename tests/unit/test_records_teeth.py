"""The store's records (node/store/_records.py) and the block overlay's record writes
(node/settlement/_state.py) at their limits: every record has one canonical encoding of
fixed-width fields, a count or a hash out of range is refused where it is written and
where it is read, and a deletion is held to the key limits a write is (ADR 0013).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from node import codec
from node.config import BLOCK_RESULTS_MAX, PARTICIPANTS_MAX, RECORD_KEY_BYTES_MAX
from node.invariant import InvariantError
from node.settlement import Genesis, Head, PartyRoot, ResultCode, TxRecord, TxResult
from node.settlement._state import Overlay
from node.store import _records as rec
from tests.ledger_helpers import shared_net

G = shared_net().genesis
H = b"h" * 32


class _View:
    """A committed state that recorded one transaction id, ``H``, in an earlier block."""

    genesis: Genesis = G

    def head(self) -> Head:
        return Head(1, H, H)

    def balance(self, account: str, instrument: str) -> int:
        return 0

    def supply(self, instrument: str) -> int:
        return 0

    def tx_record(self, tx_id: bytes) -> TxRecord | None:
        return TxRecord(1, 0, ResultCode.OK) if tx_id == H else None

    def record(self, key: bytes) -> bytes | None:
        return None

    def records(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return iter(())


def test_a_deletion_is_held_to_the_record_key_limits() -> None:
    """_state.check_record: a record key is 1..RECORD_KEY_BYTES_MAX bytes (a kind byte and
    fixed-width fields, ADR 0013) whether it is written or deleted; a key out of range is
    a bug in the kind's module, an InvariantError, never a delete the store cannot do."""
    overlay = Overlay(_View())
    for key in (b"", bytes(RECORD_KEY_BYTES_MAX + 1)):
        with pytest.raises(InvariantError):
            overlay.delete_record(key)
    overlay.delete_record(bytes(RECORD_KEY_BYTES_MAX))


def test_an_id_recorded_by_an_earlier_block_is_seen() -> None:
    """docs/ledger.md, ADR 0007: a transaction id is recorded once, its first outcome
    stands; the overlay sees ids of earlier blocks (the view), not only its own block's."""
    overlay = Overlay(_View())
    assert overlay.seen(H) and not overlay.seen(b"x" * 32)


@pytest.mark.parametrize(
    "encode",
    [
        lambda h: rec.encode_head(Head(1, h, H)),
        lambda h: rec.encode_block_meta(h, H, 9),
        lambda h: rec.encode_block_meta(H, h, 9),
        lambda h: rec.encode_results([TxResult(h, ResultCode.OK, True)]),
        lambda h: rec.encode_party_root(PartyRoot(1, h)),
        lambda h: rec.encode_intake(h, b"tx"),
    ],
)
def test_a_hash_of_the_wrong_length_is_refused_at_the_write(encode: object) -> None:
    """_records: hashes are 32 bytes; struct's "32s" would pad a short one or cut a long
    one silently, storing a hash that is not the block's."""
    for bad in (b"h" * 31, b"h" * 33):
        with pytest.raises(codec.EncodeError):
            encode(bad)  # type: ignore[operator]


def test_results_over_block_results_max_are_refused_both_ways() -> None:
    """A block holds at most BLOCK_RESULTS_MAX results (its transactions and pending
    events): more is never written, and a stored record of more (each one well formed)
    is corrupt."""
    ok = [TxResult(H, ResultCode.OK, True)] * BLOCK_RESULTS_MAX
    raw = rec.encode_results(ok)
    assert len(rec.decode_results(raw)) == BLOCK_RESULTS_MAX
    with pytest.raises(codec.EncodeError):
        rec.encode_results([*ok, ok[0]])
    with pytest.raises(rec.RecordError, match="results in a block"):
        rec.decode_results(raw + raw[:34])


def test_a_party_root_holds_at_most_a_leaf_per_participant_and_the_public_one() -> None:
    """ADR 0025 (amendment): a party index has a leaf per participant and one public leaf,
    so PARTICIPANTS_MAX + 1 is its largest size; larger is refused at the write and is a
    corrupt record at the read, as are trailing bytes."""
    top = PartyRoot(PARTICIPANTS_MAX + 1, H)
    assert rec.decode_party_root(rec.encode_party_root(top)) == top
    with pytest.raises(codec.EncodeError):
        rec.encode_party_root(PartyRoot(PARTICIPANTS_MAX + 2, H))
    with pytest.raises(rec.RecordError):
        rec.decode_party_root((PARTICIPANTS_MAX + 2).to_bytes(4, "big") + H)
    with pytest.raises(rec.RecordError):
        rec.decode_party_root(rec.encode_party_root(top) + b"\0")


def test_a_prefix_scan_of_the_overlay_holds_only_that_prefix() -> None:
    """_state.Overlay.records: every live record under ``prefix`` in key order (ADR 0013:
    a prefix scan walks one kind's records); another kind this block wrote is not one."""
    overlay = Overlay(_View())
    overlay.put_record(b"\x30a", b"1")
    overlay.put_record(b"\x31a", b"2")
    overlay.put_record(b"\x30b", b"3")
    assert overlay.records(b"\x30") == [(b"\x30a", b"1"), (b"\x30b", b"3")]


def test_a_results_record_keeps_events_apart_from_recorded_copies() -> None:
    """_records layout: flag 0 unrecorded, 1 recorded, 2 event (ADR 0014): an event reads
    back as an event and not as the recorded copy of its id."""
    results = (
        TxResult(H, ResultCode.OK, True),
        TxResult(b"u" * 32, ResultCode.DUPLICATE, False),
        TxResult(b"e" * 32, ResultCode.FAILED_DEADLINE, False, event=True),
    )
    assert rec.decode_results(rec.encode_results(results)) == results
