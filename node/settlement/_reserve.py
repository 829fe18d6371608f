"""Theory of operation: custody and reserves, the "digital twin" (issue 15 item 2;
docs/ledger.md "Custody and reserves").

Genesis lists the **custody-backed bonds**, each with the one custodian who attests it
(``CustodyBacking``), and the **reserve-backed cash tokens**, attested by their cash
issuer, with the composition rules the report checks (``ReserveRules``). Instruments it
does not list are limited by their ``max_supply`` only, as before.

``AttestCustody`` records how many units of a bond the custodian holds as of a time;
``AttestReserves`` records the bills (CUSIP, maturity, value) and deposits behind a cash
token. A Mint that would take a backed instrument's supply above the latest attested
amount (custody, or the reserves' total value: coverage below 100%) is refused
``CUSTODY_EXCEEDED`` or ``RESERVES_SHORT``. Until its first attestation, an instrument's
genesis supply stands as attested at the genesis time: existing supply is honoured,
nothing more can be minted unattested.

An attestation must be newer than the latest recorded one and not after the block time,
else ``STALE_ATTESTATION`` and nothing changes: a replayed or back-dated statement can
never replace a newer one, and nobody attests the future. Composition rules (bill
maturities, shares of bills and deposits) are not consensus rules: an issuer whose
reserves drift out of policy must still be able to attest them truthfully; the report
flags them.

Records (``RecordKind`` byte, the instrument id NUL-padded to ``ID_BYTES_MAX``, then
``u64 as_of_ms``, so one instrument's attestations sort oldest first and its latest is
the last under its prefix); at most ``ATTESTATIONS_KEPT`` per instrument, the oldest
deleted when one more is recorded:

- ``CUSTODY | bond | as_of`` -> ``u64 amount | 32 document | u64 height | id by``.
- ``RESERVES | cash | as_of`` -> ``32 document | u64 height | id by | u64 deposits |
  u8 n | n x (9 CUSIP | u32 maturity day ordinal | u64 amount)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from node import crypto
from node.config import ATTESTATIONS_KEPT, ID_BYTES_MAX, RESERVE_BILLS_MAX, U64_MAX
from node.settlement._codec import Reader, Writer
from node.settlement._model import Genesis, InstrumentKind, valid_cusip
from node.settlement._registry import Registry
from node.settlement._result import ResultCode
from node.settlement._state import Overlay, RecordKind, StateView
from node.settlement._tx import AttestCustody, AttestReserves, Bill

__all__ = [
    "Attested",
    "CustodyAttestation",
    "ReserveAttestation",
    "attest_custody",
    "attest_reserves",
    "attestation_records",
    "custody_attestations",
    "genesis_custody",
    "genesis_reserves",
    "latest_custody",
    "latest_reserves",
    "may_attest",
    "mint_code",
    "reserve_attestations",
    "valid_composition",
]

_CUSIP_LEN = 9
Attested = tuple[int, bytes]  # an attestation record as stored: (as of, its encoding)


def _prefix(kind: RecordKind, instrument: str) -> bytes:
    return bytes([kind]) + instrument.encode("ascii").ljust(ID_BYTES_MAX, b"\0")


def _key(kind: RecordKind, instrument: str, as_of_ms: int) -> bytes:
    return _prefix(kind, instrument) + Writer().u64(as_of_ms).finish()


def _as_of(key: bytes) -> int:
    return Reader(key[1 + ID_BYTES_MAX :]).u64()


@dataclass(frozen=True, slots=True)
class CustodyAttestation:
    """One recorded custody attestation; ``height`` 0 and ``by`` empty: the genesis supply
    standing in before the first one."""

    bond: str
    amount: int
    as_of_ms: int
    document_sha256: bytes
    height: int
    by: str

    def encode(self) -> bytes:
        w = Writer().u64(self.amount).fixed(self.document_sha256, crypto.HASH_LEN)
        return w.u64(self.height).ident(self.by).finish()

    @classmethod
    def decode(cls, bond: str, as_of_ms: int, raw: bytes) -> CustodyAttestation:
        r = Reader(raw)
        out = cls(bond, r.u64(), as_of_ms, r.fixed(crypto.HASH_LEN), r.u64(), r.ident())
        r.done()
        return out


@dataclass(frozen=True, slots=True)
class ReserveAttestation:
    """One recorded reserve attestation (the genesis stand-in: ``height`` 0, ``by`` empty,
    the genesis supply as deposits)."""

    cash: str
    as_of_ms: int
    document_sha256: bytes
    height: int
    by: str
    deposits: int
    bills: tuple[Bill, ...]

    @property
    def total(self) -> int:
        """The reserves' value: bills plus deposits (at most U64_MAX once recorded)."""
        return self.deposits + sum(b.amount for b in self.bills)

    def encode(self) -> bytes:
        w = Writer().fixed(self.document_sha256, crypto.HASH_LEN).u64(self.height)
        w.ident(self.by).u64(self.deposits).u8(len(self.bills))
        for b in self.bills:
            w.fixed(b.cusip.encode("ascii"), _CUSIP_LEN)
            w.u32(date.fromisoformat(b.maturity).toordinal()).u64(b.amount)
        return w.finish()

    @classmethod
    def decode(cls, cash: str, as_of_ms: int, raw: bytes) -> ReserveAttestation:
        r = Reader(raw)
        doc, height, by, deposits = r.fixed(crypto.HASH_LEN), r.u64(), r.ident(), r.u64()
        count = r.limit(r.u8(), RESERVE_BILLS_MAX, "bills in a reserve attestation")
        bills = tuple(
            Bill(
                r.fixed(_CUSIP_LEN).decode("ascii"),
                date.fromordinal(r.u32()).isoformat(),
                r.u64(),
            )
            for _ in range(count)
        )
        r.done()
        return cls(cash, as_of_ms, doc, height, by, deposits, bills)


def may_attest(reg: Registry, tx: AttestCustody | AttestReserves) -> bool:
    """Only the custodian genesis names for a bond attests it; only a reserve-backed cash
    token's issuer attests its reserves. Fixed for the chain's life: admission refuses
    anybody else."""
    if isinstance(tx, AttestCustody):
        backing = reg.genesis.custody_by_bond.get(tx.bond)
        return backing is not None and backing.custodian == tx.custodian
    inst = reg.instrument_by_id.get(tx.cash)
    backed = tx.cash in reg.genesis.reserves_by_cash
    return backed and inst is not None and inst.issuer == tx.issuer


def valid_composition(tx: AttestReserves) -> bool:
    """Bills with valid CUSIPs, in CUSIP order without repeats, none worth zero, and a
    total that fits a u64: the shape every report can rely on."""
    cusips = [b.cusip for b in tx.bills]
    if cusips != sorted(set(cusips)) or not all(valid_cusip(c) for c in cusips):
        return False
    if any(b.amount == 0 for b in tx.bills):
        return False
    return tx.deposits + sum(b.amount for b in tx.bills) <= U64_MAX


def _kind_code(reg: Registry, instrument: str, kind: InstrumentKind) -> ResultCode:
    inst = reg.instrument_by_id.get(instrument)
    if inst is None:
        return ResultCode.UNKNOWN_INSTRUMENT
    if inst.kind is not kind:
        return ResultCode.WRONG_INSTRUMENT_KIND
    return ResultCode.OK


def _fresh(latest_as_of_ms: int, as_of_ms: int, time_ms: int) -> bool:
    return latest_as_of_ms < as_of_ms <= time_ms


def _record(o: Overlay, kind: RecordKind, instrument: str, as_of_ms: int, value: bytes) -> None:
    """Record one attestation and drop the oldest beyond ATTESTATIONS_KEPT."""
    o.put_record(_key(kind, instrument, as_of_ms), value)
    kept = o.records(_prefix(kind, instrument))
    for key, _ in kept[: max(0, len(kept) - ATTESTATIONS_KEPT)]:
        o.delete_record(key)


def attest_custody(
    reg: Registry, o: Overlay, tx: AttestCustody, *, height: int, time_ms: int
) -> ResultCode:
    code = _kind_code(reg, tx.bond, InstrumentKind.BOND)
    if code is not ResultCode.OK:
        return code
    if not may_attest(reg, tx):
        return ResultCode.UNAUTHORIZED
    if not _fresh(latest_custody(reg.genesis, o, tx.bond).as_of_ms, tx.as_of_ms, time_ms):
        return ResultCode.STALE_ATTESTATION
    rec = CustodyAttestation(
        tx.bond, tx.amount, tx.as_of_ms, tx.document_sha256, height, tx.custodian
    )
    _record(o, RecordKind.CUSTODY, tx.bond, tx.as_of_ms, rec.encode())
    return ResultCode.OK


def attest_reserves(
    reg: Registry, o: Overlay, tx: AttestReserves, *, height: int, time_ms: int
) -> ResultCode:
    code = _kind_code(reg, tx.cash, InstrumentKind.CASH)
    if code is not ResultCode.OK:
        return code
    if not may_attest(reg, tx):
        return ResultCode.UNAUTHORIZED
    if not valid_composition(tx):
        return ResultCode.INVALID_ATTESTATION
    if not _fresh(latest_reserves(reg.genesis, o, tx.cash).as_of_ms, tx.as_of_ms, time_ms):
        return ResultCode.STALE_ATTESTATION
    rec = ReserveAttestation(
        tx.cash, tx.as_of_ms, tx.document_sha256, height, tx.issuer, tx.deposits, tx.bills
    )
    _record(o, RecordKind.RESERVES, tx.cash, tx.as_of_ms, rec.encode())
    return ResultCode.OK


def mint_code(reg: Registry, o: Overlay, instrument: str, amount: int) -> ResultCode | None:
    """CUSTODY_EXCEEDED or RESERVES_SHORT when minting ``amount`` would take a backed
    instrument's supply above its latest attestation; None otherwise (unbacked: no read)."""
    after = o.supply(instrument) + amount
    if instrument in reg.genesis.custody_by_bond:
        over = after > latest_custody(reg.genesis, o, instrument).amount
        return ResultCode.CUSTODY_EXCEEDED if over else None
    if instrument in reg.genesis.reserves_by_cash:
        short = after > latest_reserves(reg.genesis, o, instrument).total
        return ResultCode.RESERVES_SHORT if short else None
    return None


def _last(view: StateView | Overlay, kind: RecordKind, instrument: str) -> tuple[int, bytes] | None:
    found = list(view.records(_prefix(kind, instrument)))
    if not found:
        return None
    key, raw = found[-1]
    return _as_of(key), raw


_NO_DOCUMENT = b"\0" * crypto.HASH_LEN


def latest_custody(genesis: Genesis, view: StateView | Overlay, bond: str) -> CustodyAttestation:
    """The latest custody attestation of ``bond``, or the genesis supply as of genesis."""
    last = _last(view, RecordKind.CUSTODY, bond)
    return (
        genesis_custody(genesis, bond) if last is None else CustodyAttestation.decode(bond, *last)
    )


def latest_reserves(genesis: Genesis, view: StateView | Overlay, cash: str) -> ReserveAttestation:
    """The latest reserve attestation of ``cash``, or the genesis supply (as deposits)."""
    last = _last(view, RecordKind.RESERVES, cash)
    return (
        genesis_reserves(genesis, cash) if last is None else ReserveAttestation.decode(cash, *last)
    )


def genesis_custody(genesis: Genesis, bond: str) -> CustodyAttestation:
    """What stands before the first attestation: the genesis supply, as of genesis."""
    supply = genesis.genesis_supply.get(bond, 0)
    return CustodyAttestation(bond, supply, genesis.genesis_time_ms, _NO_DOCUMENT, 0, "")


def genesis_reserves(genesis: Genesis, cash: str) -> ReserveAttestation:
    """The reserves' stand-in: the genesis supply as deposits, no bills, as of genesis."""
    supply = genesis.genesis_supply.get(cash, 0)
    return ReserveAttestation(cash, genesis.genesis_time_ms, _NO_DOCUMENT, 0, "", supply, ())


def attestation_records(view: StateView, instrument: str, *, custody: bool) -> list[Attested]:
    """The recorded attestations of a custody-backed bond or a reserve-backed cash token as
    stored, oldest first: (as of, record). A record is its attestation's encoding (each
    decodes and encodes back to the same bytes), so an answer that carries records needs no
    decoding: decoding and encoding again the largest reserves (BACKINGS_MAX tokens, each
    ATTESTATIONS_KEPT records of RESERVE_BILLS_MAX bills) held the node's loop for 7 s of
    CPU on LMDB in one GetAttestations (session 36; docs/performance.md)."""
    kind = RecordKind.CUSTODY if custody else RecordKind.RESERVES
    return [(_as_of(k), v) for k, v in view.records(_prefix(kind, instrument))]


def custody_attestations(view: StateView, bond: str) -> list[CustodyAttestation]:
    """The recorded custody attestations of ``bond``, oldest first (at most ATTESTATIONS_KEPT)."""
    records = attestation_records(view, bond, custody=True)
    return [CustodyAttestation.decode(bond, as_of, v) for as_of, v in records]


def reserve_attestations(view: StateView, cash: str) -> list[ReserveAttestation]:
    """The recorded reserve attestations of ``cash``, oldest first."""
    records = attestation_records(view, cash, custody=False)
    return [ReserveAttestation.decode(cash, as_of, v) for as_of, v in records]
