"""The registry's own contract, checked on the registry alone (no block, no store): the
record layout of docs/adr/0016-reference-data-in-state.md (which the state root commits
to), the read-only mapping its lookups are, what a corrupt record does, and what a write
changes for the reads of the same block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import date

import pytest

from node.codec import EncodeError
from node.config import ID_BYTES_MAX
from node.invariant import InvariantError
from node.settlement import Instrument, InstrumentKind, Participant, Registry, Role
from node.settlement._codec import DecodeError
from node.settlement._model import isin_check_digit, payment_schedule
from node.settlement._registry import _MemoryRecords
from node.settlement._schedule import day_start_ms
from tests.gov_helpers import new_key
from tests.ledger_helpers import shared_net

NET = shared_net()
G = NET.genesis
NEW = Participant("BANK99", new_key("BANK99").public_key, frozenset({Role.TRADER}), 2)
BOND = "US91282CJK72"


def _bond() -> Instrument:
    iid = "US0000000AA" + str(isin_check_digit("US0000000AA"))
    return Instrument(
        iid, InstrumentKind.BOND, "TREASURY", "USD", unit_face_minor=1,
        maturity_date="2031-06-30", coupon_bp=400, coupon_freq=2, payment_cash=NET.cash,
    )  # fmt: skip


def _fresh() -> tuple[Registry, _MemoryRecords]:
    records = _MemoryRecords()
    return Registry(G, records), records


def test_records_are_keyed_by_kind_byte_and_nul_padded_id() -> None:
    """ADR 0016 (and the _registry docstring): a key is the RecordKind byte, then the id
    NUL-padded to ID_BYTES_MAX. Keys are under the state root: every node must write the
    same bytes, and padding keeps one id's key from being a prefix of another's."""
    reg, records = _fresh()
    reg.put_participant(NEW, new=True)
    reg.put_attestation(BOND, 7, bytes(32))
    pad = b"BANK99".ljust(ID_BYTES_MAX, b"\0")
    assert records.record(bytes([48]) + pad) is not None  # PARTICIPANT
    assert records.record(bytes([50]) + BOND.encode().ljust(ID_BYTES_MAX, b"\0")) is not None
    assert records.record(bytes([51])) == (1).to_bytes(4, "big") + (0).to_bytes(4, "big")


def test_lookups_are_a_read_only_mapping() -> None:
    """participant_by_id and instrument_by_id stand in for Genesis's dicts (ADR 0016): an
    unknown id is a KeyError, ``get`` returns the default, ``in`` is False for anything
    that is no known id, a non-string included."""
    reg, _ = _fresh()
    lookups: tuple[Mapping[str, object], ...] = (reg.participant_by_id, reg.instrument_by_id)
    for lookup in lookups:
        with pytest.raises(KeyError):
            lookup["NOBODY"]
        sentinel = object()
        assert lookup.get("NOBODY", sentinel) is sentinel
        assert not lookup.__contains__(5) and not lookup.__contains__(None)
    assert reg.participant_by_id["BANK01"] == G.participant_by_id["BANK01"]


@pytest.mark.parametrize("bad", ["", "é", "x" * (ID_BYTES_MAX + 1), "BANK99\0"])
def test_an_id_that_cannot_have_a_record_reads_as_unknown(bad: str) -> None:
    """_registry._fits: only a well-formed id can have a record, so a client's typo reads
    as unknown (None), never raises, and never aliases another id's record: "BANK99\\0"
    pads to the same key as "BANK99"."""
    reg, _ = _fresh()
    reg.put_participant(NEW, new=True)
    reg.put_instrument(dataclasses.replace(_bond(), id="BANK99"), new=True)
    fresh = Registry(G, reg.source)  # a new cache over the same records
    assert fresh.participant(bad) is None and fresh.instrument(bad) is None
    assert bad not in fresh.participant_by_id


_READS: dict[str, Callable[[Registry], object]] = {
    "participant": lambda r: r.participant("BANK01"),
    "instrument": lambda r: r.instrument(BOND),
    "attestation": lambda r: r.attestation(BOND),
    "added": lambda r: r.added(),
    "observer": lambda r: r.observers_at(9),
}


@pytest.mark.parametrize("key", list(_READS))
def test_a_record_with_trailing_bytes_is_a_decode_error(key: str) -> None:
    """A record is one canonical encoding (ADR 0013): trailing bytes are a corrupt state,
    a DecodeError, never a value read from the first bytes of something else."""
    reg, records = _fresh()
    reg.put_participant(dataclasses.replace(G.participant_by_id["BANK01"], kyc_tier=1), new=False)
    reg.put_participant(NEW, new=True)
    reg.put_instrument(dataclasses.replace(G.instrument_by_id[BOND], max_supply=10**9), new=False)
    reg.put_attestation(BOND, 7, bytes(32))
    reg.put_participant(dataclasses.replace(NEW, roles=frozenset({Role.AUDITOR})), new=False)
    reg.record_added(3)
    prefix = {"participant": 48, "instrument": 49, "attestation": 50, "added": 51, "observer": 53}
    keys = [k for k in records._records if k[0] == prefix[key]]
    (victim,) = [k for k in keys if key != "participant" or b"BANK01" in k]
    read = _READS[key]
    read(Registry(G, records))  # the intact record reads
    records.put_record(victim, records._records[victim] + b"\0")
    with pytest.raises(DecodeError):
        read(Registry(G, records))


def test_a_write_is_seen_by_every_later_read_of_the_same_registry() -> None:
    """ADR 0016: a change a transaction makes is seen by every later transaction of the
    same block: the participant ids (the order payments follow) gain an added participant
    even if read before, an added bond has its payment schedule even if its id was looked
    up before, and a genesis instrument governance changed is listed once."""
    reg, _ = _fresh()
    bond = _bond()
    assert "BANK99" not in reg.participant_ids and reg.schedule(bond.id) is None
    ids_before = list(reg.instrument_by_id)
    reg.put_participant(NEW, new=True)
    reg.put_instrument(bond, new=True)
    reg.put_instrument(dataclasses.replace(G.instrument_by_id[BOND], max_supply=10**9), new=False)
    assert "BANK99" in reg.participant_ids
    assert reg.participant_ids == tuple(sorted(reg.participant_ids))
    assert reg.schedule(bond.id) == payment_schedule(bond, G.genesis_time_ms)
    assert list(reg.instrument_by_id) == [*ids_before, bond.id]
    assert reg.added() == (1, 1)


def test_a_cash_token_has_no_schedule() -> None:
    """Registry.schedule: a bond's or fund's payment dates; None for cash (no coupon,
    distribution or redemption is ever due on it)."""
    reg, _ = _fresh()
    assert reg.schedule(NET.cash) is None
    assert reg.schedule(BOND) == G.schedules[BOND]


def test_a_registry_over_a_state_view_refuses_writes() -> None:
    """Writes go through a block's overlay only (execution): a registry over a StateView
    or genesis is read-only, an InvariantError (a bug), not a write lost or half made."""
    reg = Registry.at_genesis(G)
    with pytest.raises(InvariantError):
        reg.put_attestation(BOND, 7, bytes(32))
    with pytest.raises(InvariantError):
        reg.put_participant(NEW, new=True)


def test_an_attestation_record_holds_a_32_byte_digest() -> None:
    """SUPPLY_ATTESTATION's value is u64 as_of_ms | 32 bytes attestation_sha256 (ADR 0016):
    any other digest length is refused at the write."""
    reg, _ = _fresh()
    with pytest.raises(EncodeError):
        reg.put_attestation(BOND, 7, b"short")


def test_a_client_registry_from_values_is_what_governance_wrote() -> None:
    """Registry.from_values (a node's GetReference answer on a client): each value that
    differs from genesis becomes the record governance would write, the added count
    (the REGISTRY_FULL limit) and the attestations included."""
    bond = _bond()
    reg = Registry.from_values(
        G, [*G.participants, NEW], [*G.instruments, bond], {BOND: (7, bytes(range(32)))}
    )
    assert reg.added() == (1, 1)
    assert reg.participant("BANK99") == NEW and reg.instrument(bond.id) == bond
    assert reg.attestation(BOND) == (7, bytes(range(32)))
    assert reg.attestation(NET.cash) is None


def test_a_bonds_maturity_is_00_00_utc_of_its_maturity_date() -> None:
    """Registry.maturity_ms: 00:00 UTC of a bond's maturity date, as genesis has it (the
    first block time at which it has matured, docs/ledger.md "Lifecycle"); None for a
    cash token, a fund or an unknown id."""
    reg, _ = _fresh()
    bond = _bond()
    reg.put_instrument(bond, new=True)
    assert reg.maturity_ms(BOND) == G.maturity_ms(BOND) is not None
    assert reg.maturity_ms(bond.id) == day_start_ms(date(2031, 6, 30))
    assert reg.maturity_ms(NET.cash) is None and reg.maturity_ms("NOBODY") is None
