"""Participants, instruments, validators and the genesis that defines them.

Genesis is immutable: the ledger's participants and instruments are fixed by it, and
its canonical encoding hashes to the chain id that every transaction and vote signs.
Validation raises ``GenesisError`` with a message naming the offending entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import cached_property

from node import crypto
from node.config import (
    GENESIS_HOLDINGS_MAX,
    INSTRUMENTS_MAX,
    PARTICIPANTS_MAX,
    U64_MAX,
)
from node.settlement._codec import Writer, check_id

__all__ = [
    "Genesis",
    "GenesisError",
    "Holding",
    "Instrument",
    "InstrumentKind",
    "Participant",
    "Role",
    "Validator",
    "isin_check_digit",
]

KYC_TIER_MAX = 3
_CURRENCY_RE = re.compile(r"[A-Z]{3}\Z")
_ISIN_RE = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]\Z")
_GENESIS_VERSION = 1


class GenesisError(ValueError):
    """The genesis document is inconsistent; the message names the entry."""


class Role(StrEnum):
    BOND_ISSUER = "bond_issuer"
    CUSTODIAN = "custodian"
    CASH_ISSUER = "cash_issuer"
    TRADER = "trader"
    COMPLIANCE = "compliance"
    REGULATOR = "regulator"
    AUDITOR = "auditor"


# Roles that may hold and move assets; compliance officers, regulators and auditors only
# observe (and read every account and trade: node/access.py).
HOLDING_ROLES = frozenset({Role.BOND_ISSUER, Role.CUSTODIAN, Role.CASH_ISSUER, Role.TRADER})


class InstrumentKind(StrEnum):
    BOND = "bond"
    CASH = "cash"


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    public_key: bytes
    roles: frozenset[Role]
    kyc_tier: int  # 0 = not onboarded: may not hold or move assets

    def can_hold(self) -> bool:
        return self.kyc_tier > 0 and not self.roles.isdisjoint(HOLDING_ROLES)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A bond token or a cash token. All amounts are integer minor units; no floats."""

    id: str  # bonds: an ISIN; cash: e.g. "USD.CASHCO"
    kind: InstrumentKind
    issuer: str
    currency: str  # ISO 4217
    unit_face_minor: int = 0  # bonds: face value of one unit in currency minor units
    maturity_date: str = ""  # bonds: YYYY-MM-DD
    coupon_bp: int = 0  # bonds: annual coupon in basis points (0 for bills)
    coupon_freq: int = 0  # bonds: coupons per year (0 for bills)
    max_supply: int = U64_MAX  # attested by custody (bonds) or reserves (cash)


@dataclass(frozen=True, slots=True)
class Validator:
    """A consensus validator; its position in genesis is its index (leader rotation).

    ``tls_cert_sha256`` pins the validator's TLS certificate (SHA-256 of its DER form):
    peers authenticate the sender of every consensus message by it. Empty means unpinned,
    which simulations accept and a validator process refuses (node/runtime).
    """

    id: str
    public_key: bytes
    tls_cert_sha256: bytes = b""


@dataclass(frozen=True, slots=True)
class Holding:
    account: str
    instrument: str
    amount: int


def isin_check_digit(first11: str) -> int:
    """The ISIN (ISO 6166) check digit: Luhn over the letters expanded to numbers."""
    digits = "".join(str(int(c, 36)) for c in first11)
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10


@dataclass(frozen=True)
class Genesis:
    name: str
    genesis_time_ms: int
    participants: tuple[Participant, ...]
    instruments: tuple[Instrument, ...]
    holdings: tuple[Holding, ...]
    validators: tuple[Validator, ...]
    quorum: int

    def __post_init__(self) -> None:
        _validate(self)

    @cached_property
    def participant_by_id(self) -> dict[str, Participant]:
        return {p.id: p for p in self.participants}

    @cached_property
    def instrument_by_id(self) -> dict[str, Instrument]:
        return {i.id: i for i in self.instruments}

    @cached_property
    def canonical_bytes(self) -> bytes:
        return _encode(self)

    @cached_property
    def chain_id(self) -> str:
        """Hex SHA-256 of the canonical genesis encoding: a different genesis, a different chain."""
        return crypto.sha256(self.canonical_bytes).hex()


def _encode(g: Genesis) -> bytes:
    w = Writer().u8(_GENESIS_VERSION).ident(g.name).u64(g.genesis_time_ms)
    w.u32(len(g.participants))
    for p in sorted(g.participants, key=lambda p: p.id):
        w.ident(p.id).fixed(p.public_key, crypto.PUBLIC_KEY_LEN).u8(p.kyc_tier)
        roles = sorted(r.value for r in p.roles)
        w.u8(len(roles))
        for r in roles:
            w.ident(r)
    w.u32(len(g.instruments))
    for i in sorted(g.instruments, key=lambda i: i.id):
        w.ident(i.id).ident(i.kind.value).ident(i.issuer).ident(i.currency)
        w.u64(i.unit_face_minor).u64(_date_ordinal(i.maturity_date))
        w.u32(i.coupon_bp).u8(i.coupon_freq).u64(i.max_supply)
    w.u32(len(g.holdings))
    for h in sorted(g.holdings, key=lambda h: (h.account, h.instrument)):
        w.ident(h.account).ident(h.instrument).u64(h.amount)
    w.u32(len(g.validators))
    for v in g.validators:  # order matters: it is the leader rotation
        w.ident(v.id).fixed(v.public_key, crypto.PUBLIC_KEY_LEN)
        w.blob(v.tls_cert_sha256, crypto.HASH_LEN)
    w.u32(g.quorum)
    return w.finish()


def _date_ordinal(iso: str) -> int:
    return date.fromisoformat(iso).toordinal() if iso else 0


def _fail(msg: str) -> None:
    raise GenesisError(msg)


def _validate(g: Genesis) -> None:
    _check_id(g.name, "genesis name")
    if not 0 <= g.genesis_time_ms <= U64_MAX:
        _fail("genesis_time_ms must be an unsigned 64-bit integer")
    if not 0 < len(g.participants) <= PARTICIPANTS_MAX:
        _fail(f"genesis needs 1..{PARTICIPANTS_MAX} participants")
    if len(g.instruments) > INSTRUMENTS_MAX or len(g.holdings) > GENESIS_HOLDINGS_MAX:
        _fail("too many instruments or holdings in genesis")
    _validate_participants(g.participants)
    by_id = {p.id: p for p in g.participants}
    for inst in g.instruments:
        _validate_instrument(inst, by_id)
    if len({i.id for i in g.instruments}) != len(g.instruments):
        _fail("instrument ids must be unique")
    _validate_holdings(g)
    _validate_validators(g.validators, g.quorum)


def _check_id(value: str, what: str) -> None:
    try:
        check_id(value, what)
    except ValueError as e:
        raise GenesisError(str(e)) from e


def _validate_participants(participants: tuple[Participant, ...]) -> None:
    seen: set[str] = set()
    for p in participants:
        _check_id(p.id, "participant id")
        if p.id in seen:
            _fail(f"participant {p.id!r} appears twice")
        seen.add(p.id)
        if not crypto.is_acceptable_public_key(p.public_key):
            _fail(f"participant {p.id!r}: public_key is invalid or small-order")
        if not 0 <= p.kyc_tier <= KYC_TIER_MAX:
            _fail(f"participant {p.id!r}: kyc_tier must be 0..{KYC_TIER_MAX}")


def _validate_instrument(inst: Instrument, by_id: dict[str, Participant]) -> None:
    _check_id(inst.id, "instrument id")
    issuer = by_id.get(inst.issuer)
    if issuer is None:
        _fail(f"instrument {inst.id!r}: issuer {inst.issuer!r} is not a participant")
        return
    if not _CURRENCY_RE.match(inst.currency):
        _fail(f"instrument {inst.id!r}: currency {inst.currency!r} is not an ISO 4217 code")
    if not 0 < inst.max_supply <= U64_MAX:
        _fail(f"instrument {inst.id!r}: max_supply must be 1..2**64-1")
    if inst.kind is InstrumentKind.CASH:
        if Role.CASH_ISSUER not in issuer.roles:
            _fail(f"cash token {inst.id!r}: issuer {inst.issuer!r} lacks the cash_issuer role")
        for field in _BOND_ONLY_FIELDS:  # else unchecked values reach the canonical encoding
            if getattr(inst, field) != getattr(_CASH_DEFAULTS, field):
                _fail(f"cash token {inst.id!r}: {field} is a bond field; leave it out")
        return
    if Role.BOND_ISSUER not in issuer.roles:
        _fail(f"bond {inst.id!r}: issuer {inst.issuer!r} lacks the bond_issuer role")
    if not _ISIN_RE.match(inst.id) or isin_check_digit(inst.id[:11]) != int(inst.id[11]):
        _fail(f"bond {inst.id!r} is not a valid ISIN (format or check digit)")
    if not 0 < inst.unit_face_minor <= U64_MAX:
        _fail(f"bond {inst.id!r}: unit_face_minor must be positive")
    if not 0 <= inst.coupon_bp <= 100_000 or not 0 <= inst.coupon_freq <= 12:
        _fail(f"bond {inst.id!r}: coupon_bp 0..100000 and coupon_freq 0..12")
    if (inst.coupon_bp == 0) != (inst.coupon_freq == 0):
        _fail(f"bond {inst.id!r}: a zero coupon needs a zero frequency and vice versa")
    try:
        date.fromisoformat(inst.maturity_date)
    except ValueError:
        _fail(f"bond {inst.id!r}: maturity_date {inst.maturity_date!r} is not YYYY-MM-DD")


_BOND_ONLY_FIELDS = ("unit_face_minor", "maturity_date", "coupon_bp", "coupon_freq")
_CASH_DEFAULTS = Instrument("", InstrumentKind.CASH, "", "")


def _validate_holdings(g: Genesis) -> None:
    parts = {p.id: p for p in g.participants}
    insts = {i.id: i for i in g.instruments}
    supply: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    for h in g.holdings:
        owner = parts.get(h.account)
        if owner is None or h.instrument not in insts:
            _fail(f"holdings: {h.account}/{h.instrument} names an unknown account or instrument")
            return
        if not owner.can_hold():
            _fail(f"holding {h.account}/{h.instrument}: account may not hold assets")
        if (h.account, h.instrument) in seen:
            _fail(f"holding {h.account}/{h.instrument} appears twice")
        seen.add((h.account, h.instrument))
        if not 0 < h.amount <= U64_MAX:
            _fail(f"holding {h.account}/{h.instrument}: amount must be 1..2**64-1")
        supply[h.instrument] = supply.get(h.instrument, 0) + h.amount
        if supply[h.instrument] > insts[h.instrument].max_supply:
            _fail(f"holdings of {h.instrument} exceed its max_supply")


def _validate_validators(validators: tuple[Validator, ...], quorum: int) -> None:
    n = len(validators)
    if n == 0:
        _fail("validators: genesis needs at least one validator")
    if len({v.id for v in validators}) != n or len({v.public_key for v in validators}) != n:
        _fail("validator ids and public keys must be unique")
    for v in validators:
        _check_id(v.id, "validator id")
        if len(v.tls_cert_sha256) not in (0, crypto.HASH_LEN):
            _fail(f"validator {v.id!r}: tls_cert_sha256 must be empty or 32 bytes")
        if not crypto.is_acceptable_public_key(v.public_key):
            _fail(f"validator {v.id!r}: public_key is invalid or small-order")
    # Quorum soundness (q > n/2, q <= n) is the consensus core's to judge and explain;
    # here only its range as a number.
    if not 0 < quorum <= n:
        _fail(f"quorum {quorum} must be between 1 and the number of validators ({n})")
