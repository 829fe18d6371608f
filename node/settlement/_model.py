"""Participants, instruments, validators and the genesis that defines them.

Genesis is immutable: the ledger's participants and instruments are fixed by it, and
its canonical encoding hashes to the chain id that every transaction and vote signs.
Validation raises ``GenesisError`` with a message naming the offending entry.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import cached_property

from node import crypto
from node.config import (
    ADMINS_MAX,
    BACKINGS_MAX,
    GENESIS_HOLDINGS_MAX,
    INSTRUMENTS_MAX,
    PARTICIPANTS_MAX,
    RESERVE_RULE_DAYS_MAX,
    SCHEDULE_PERIODS_MAX,
    U64_MAX,
)
from node.settlement._codec import DecodeError, Reader, Writer, check_id
from node.settlement._kyc_rules import KYC_TIER_MAX, ComplianceRules, check_rules
from node.settlement._margin_terms import MarginTerms, check_margin
from node.settlement._schedule import (
    coupon_dates,
    date_of_ms,
    day_start_ms,
    distribution_dates,
)

__all__ = [
    "KYC_TIER_MAX",
    "CustodyBacking",
    "Genesis",
    "GenesisError",
    "Holding",
    "Instrument",
    "InstrumentKind",
    "Participant",
    "ReserveRules",
    "Role",
    "Validator",
    "cusip_check_digit",
    "decode_instrument",
    "decode_participant",
    "encode_instrument",
    "encode_participant",
    "isin_check_digit",
    "payment_schedule",
    "validate_instrument",
    "validate_participant",
]

_CURRENCY_RE = re.compile(r"[A-Z]{3}\Z")
_ISIN_RE = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]\Z")
# The first byte of the canonical genesis, so under the chain id: 2 since result codes
# were renumbered (OK 0 -> 80, ADR 0020), which changes every results root; a chain, a
# data directory or a receipt of version 1 is of another chain.
_GENESIS_VERSION = 2


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
# Roles that read every account and every transaction, and whole blocks; none of them may
# hold assets. Whether a participant held one after a block is in that block's party index
# (ADR 0025, amendment "observers"), so the client is told by the ledger, not by a node.
OBSERVER_ROLES = frozenset({Role.REGULATOR, Role.COMPLIANCE, Role.AUDITOR})


class InstrumentKind(StrEnum):
    BOND = "bond"
    CASH = "cash"
    FUND = "fund"  # fund shares: distributions on a monthly schedule (issue 14)


COUPON_FREQS = frozenset({0, 1, 2, 3, 4, 6, 12})  # divisors of 12: periods of whole months
DISTRIBUTION_DAY_MAX = 28  # a day every month has


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    public_key: bytes
    roles: frozenset[Role]
    kyc_tier: int  # 0 = not onboarded: may not hold or move assets

    def can_hold(self) -> bool:
        return self.kyc_tier > 0 and not self.roles.isdisjoint(HOLDING_ROLES)

    @property
    def observer(self) -> bool:
        """Reads every account and trade, and whole blocks (an observer role)."""
        return not self.roles.isdisjoint(OBSERVER_ROLES)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A bond token, a cash token or a fund share. All amounts are integer minor units;
    no floats. Bonds and funds name the cash token they pay in and the paying agent that
    signs their payments (default: the issuer); node/settlement/_schedule.py derives their
    payment dates."""

    id: str  # bonds: an ISIN; cash: e.g. "USD.CASHCO"
    kind: InstrumentKind
    issuer: str
    currency: str  # ISO 4217
    unit_face_minor: int = 0  # bonds: face value of one unit in currency minor units
    maturity_date: str = ""  # bonds: YYYY-MM-DD
    coupon_bp: int = 0  # bonds: annual coupon in basis points (0 for bills)
    coupon_freq: int = 0  # bonds: coupons per year (0 for bills)
    max_supply: int = U64_MAX  # attested by custody (bonds) or reserves (cash)
    payment_cash: str = ""  # bonds, funds: the cash token coupons, principal, distributions use
    paying_agent: str = ""  # bonds, funds: signs payments; empty means the issuer
    issue_date: str = ""  # bonds, funds: YYYY-MM-DD; empty means the genesis date
    distribution_day: int = 0  # funds: day of month (1-28) of the monthly distribution

    @property
    def agent(self) -> str:
        """The paying agent: who signs this instrument's coupons, distributions, RedeemAll."""
        return self.paying_agent or self.issuer


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


def cusip_check_digit(first8: str) -> int:
    """The CUSIP check digit: digits as themselves, letters A=10..Z=35, then * @ #;
    every second value doubled; the digits of the values summed (modulus 10 double add
    double)."""
    total = 0
    for i, ch in enumerate(first8):
        v = int(ch, 36) if ch.isalnum() else 36 + "*@#".index(ch)
        if i % 2 == 1:
            v *= 2
        total += v // 10 + v % 10
    return (10 - total % 10) % 10


_CUSIP_RE = re.compile(r"[0-9A-Z*@#]{8}[0-9]\Z")


def valid_cusip(cusip: str) -> bool:
    """Nine characters of the CUSIP alphabet whose last is the check digit of the rest."""
    return bool(_CUSIP_RE.match(cusip)) and cusip_check_digit(cusip[:8]) == int(cusip[8])


@dataclass(frozen=True, slots=True)
class CustodyBacking:
    """A custody-backed bond (docs/ledger.md "Custody and reserves"): its supply never
    exceeds the amount ``custodian`` (the one participant who attests it) last attested;
    until the first attestation, the genesis supply stands as attested."""

    bond: str
    custodian: str
    age_max_days: int = 7  # `ledger report custody` flags an older attestation a BREAK


@dataclass(frozen=True, slots=True)
class ReserveRules:
    """A reserve-backed cash token: its supply never exceeds the reserves its issuer last
    attested (the genesis supply until then). The composition rules below are checked by
    `ledger report reserves`, not by consensus (docs/ledger.md "Custody and reserves")."""

    cash: str
    bill_days_max: int = 93  # each bill matures at most this many days after the as-of
    bills_min_bp: int = 0  # bills are at least this share of the reserves (basis points)
    deposits_max_bp: int = 10_000  # deposits are at most this share
    age_max_days: int = 7  # the report flags an older attestation


@dataclass(frozen=True)
class Genesis:
    name: str
    genesis_time_ms: int
    participants: tuple[Participant, ...]
    instruments: tuple[Instrument, ...]
    holdings: tuple[Holding, ...]
    validators: tuple[Validator, ...]
    quorum: int
    # reserve: custody-backed bonds and reserve-backed cash tokens (node/settlement/_reserve.py)
    custody: tuple[CustodyBacking, ...] = ()
    reserves: tuple[ReserveRules, ...] = ()
    # kyc: KYC tier and AML rules (node/settlement/_kyc_rules.py); default: none
    compliance: ComplianceRules = dataclasses.field(default_factory=ComplianceRules)
    # gov (issue 15 item 1): participant ids whose k-of-m signatures govern the reference
    # data (docs/adr/0016-reference-data-in-state.md); none: no governance on this chain.
    admins: tuple[str, ...] = ()
    admin_threshold: int = 0
    # margin (issue 18 item 3): price sources, k, price age, haircuts (_margin_terms.py)
    margin: MarginTerms = dataclasses.field(default_factory=MarginTerms)

    def __post_init__(self) -> None:
        _validate(self)

    @cached_property
    def custody_by_bond(self) -> dict[str, CustodyBacking]:
        return {c.bond: c for c in self.custody}

    @cached_property
    def reserves_by_cash(self) -> dict[str, ReserveRules]:
        return {r.cash: r for r in self.reserves}

    @cached_property
    def genesis_supply(self) -> dict[str, int]:
        """Each instrument's supply at height 0: what its genesis holdings add up to."""
        out: dict[str, int] = {}
        for h in self.holdings:
            out[h.instrument] = out.get(h.instrument, 0) + h.amount
        return out

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
    def participant_ids(self) -> tuple[str, ...]:
        """Participant ids in sorted order: the order every payment to holders follows."""
        return tuple(sorted(self.participant_by_id))

    @cached_property
    def schedules(self) -> dict[str, tuple[int, ...]]:
        """Bonds and funds: the start (ms, 00:00 UTC) of each period's payment date, period
        1 first (node/settlement/_schedule.py). Empty for a bill."""
        return {
            i.id: payment_schedule(i, self.genesis_time_ms)
            for i in self.instruments
            if i.kind is not InstrumentKind.CASH
        }

    def maturity_ms(self, instrument: str) -> int | None:
        """00:00 UTC of a bond's maturity date; None for anything else."""
        inst = self.instrument_by_id.get(instrument)
        if inst is None or inst.kind is not InstrumentKind.BOND:
            return None
        return day_start_ms(date.fromisoformat(inst.maturity_date))

    @cached_property
    def chain_id(self) -> str:
        """Hex SHA-256 of the canonical genesis encoding: a different genesis, a different chain."""
        return crypto.sha256(self.canonical_bytes).hex()


def _encode(g: Genesis) -> bytes:
    w = Writer().u8(_GENESIS_VERSION).ident(g.name).u64(g.genesis_time_ms)
    w.u32(len(g.participants))
    for p in sorted(g.participants, key=lambda p: p.id):
        encode_participant(w.ident(p.id), p)
    w.u32(len(g.instruments))
    for i in sorted(g.instruments, key=lambda i: i.id):
        encode_instrument(w.ident(i.id), i)
    w.u32(len(g.holdings))
    for h in sorted(g.holdings, key=lambda h: (h.account, h.instrument)):
        w.ident(h.account).ident(h.instrument).u64(h.amount)
    w.u32(len(g.validators))
    for v in g.validators:  # order matters: it is the leader rotation
        w.ident(v.id).fixed(v.public_key, crypto.PUBLIC_KEY_LEN)
        w.blob(v.tls_cert_sha256, crypto.HASH_LEN)
    w.u32(g.quorum)
    # Trailing sections, in this order (gov, reserve, kyc), each only when non-default so
    # that existing chain ids stay valid, each after its name so that no two sections'
    # bytes can be confused.
    if g.admins:
        w.ident("gov").u8(len(g.admins))
        for a in g.admins:
            w.ident(a)
        w.u8(g.admin_threshold)
    _encode_reserve(w, g)
    if not g.compliance.is_default:
        w.ident("kyc").raw(g.compliance.encode())
    if not g.margin.is_default:  # margin: after lock and repo
        g.margin.encode(w.ident("margin"))
    return w.finish()


def _encode_reserve(w: Writer, g: Genesis) -> None:
    """reserve's trailing section, tagged, and only when it holds anything: a genesis
    without backings keeps the bytes, so the chain id, it always had."""
    if not g.custody and not g.reserves:
        return
    w.ident("reserve").u32(len(g.custody))
    for c in sorted(g.custody, key=lambda c: c.bond):
        w.ident(c.bond).ident(c.custodian).u16(c.age_max_days)
    w.u32(len(g.reserves))
    for r in sorted(g.reserves, key=lambda r: r.cash):
        w.ident(r.cash).u16(r.bill_days_max).u16(r.bills_min_bp).u16(r.deposits_max_bp)
        w.u16(r.age_max_days)


def encode_participant(w: Writer, p: Participant) -> Writer:
    """A participant's fields after its id: the one encoding genesis and the state use."""
    w.fixed(p.public_key, crypto.PUBLIC_KEY_LEN).u8(p.kyc_tier)
    roles = sorted(r.value for r in p.roles)
    w.u8(len(roles))
    for r in roles:
        w.ident(r)
    return w


def decode_participant(r: Reader, pid: str) -> Participant:
    """The inverse of ``encode_participant``; DecodeError for an unknown or repeated role."""
    key, tier = r.fixed(crypto.PUBLIC_KEY_LEN), r.u8()
    names = [r.ident() for _ in range(r.u8())]
    if names != sorted(set(names)) or not set(names) <= _ROLE_NAMES:
        raise DecodeError("roles must be known, sorted and unique")
    return Participant(pid, key, frozenset(Role(n) for n in names), tier)


_ROLE_NAMES = frozenset(r.value for r in Role)


def encode_instrument(w: Writer, i: Instrument) -> Writer:
    """An instrument's terms after its id: the one encoding genesis and the state use."""
    w.ident(i.kind.value).ident(i.issuer).ident(i.currency)
    w.u64(i.unit_face_minor).u64(_date_ordinal(i.maturity_date))
    w.u32(i.coupon_bp).u8(i.coupon_freq).u64(i.max_supply)
    _optional_id(w, i.payment_cash)
    _optional_id(w, i.paying_agent)
    w.u64(_date_ordinal(i.issue_date)).u8(i.distribution_day)
    return w


def decode_instrument(r: Reader, iid: str) -> Instrument:
    """The inverse of ``encode_instrument``; DecodeError for an unknown kind or a day
    number that is no date. Terms are not validated here (``validate_instrument``)."""
    kind = r.ident()
    if kind not in InstrumentKind._value2member_map_:
        raise DecodeError(f"unknown instrument kind {kind!r}")
    issuer, currency = r.ident(), r.ident()
    face, maturity = r.u64(), _date_of_ordinal(r.u64())
    coupon_bp, coupon_freq, max_supply = r.u32(), r.u8(), r.u64()
    cash = r.ident() if r.flag() else ""
    agent = r.ident() if r.flag() else ""
    issued, day = _date_of_ordinal(r.u64()), r.u8()
    return Instrument(
        iid, InstrumentKind(kind), issuer, currency, face, maturity, coupon_bp, coupon_freq,
        max_supply, cash, agent, issued, day,
    )  # fmt: skip


def _date_of_ordinal(n: int) -> str:
    if n == 0:
        return ""
    if n > date.max.toordinal():
        raise DecodeError(f"day number {n} is past the calendar")
    return date.fromordinal(n).isoformat()


def payment_schedule(inst: Instrument, genesis_time_ms: int) -> tuple[int, ...]:
    """The start (ms, 00:00 UTC) of each payment date of a validated bond or fund."""
    return tuple(day_start_ms(d) for d in _payment_dates(inst, genesis_time_ms))


def _date_ordinal(iso: str) -> int:
    return date.fromisoformat(iso).toordinal() if iso else 0


def _optional_id(w: Writer, value: str) -> None:
    w.flag(bool(value))
    if value:
        w.ident(value)


def _payment_dates(inst: Instrument, genesis_time_ms: int) -> tuple[date, ...]:
    """Payment dates under the convention of _schedule.py; genesis validation has made
    sure they exist and are at most SCHEDULE_PERIODS_MAX."""
    after = date.fromisoformat(inst.issue_date) if inst.issue_date else date_of_ms(genesis_time_ms)
    if inst.kind is InstrumentKind.FUND:
        return distribution_dates(inst.distribution_day, after, SCHEDULE_PERIODS_MAX)
    if inst.coupon_freq == 0:
        return ()
    maturity = date.fromisoformat(inst.maturity_date)
    dates = coupon_dates(maturity, inst.coupon_freq, after, SCHEDULE_PERIODS_MAX)
    if dates is None:
        raise GenesisError(f"bond {inst.id!r}: more than {SCHEDULE_PERIODS_MAX} coupon periods")
    return dates


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
    insts = {i.id: i for i in g.instruments}
    for inst in g.instruments:
        _validate_terms(inst, by_id, insts, g.genesis_time_ms)
    _validate_holdings(g)
    _validate_validators(g.validators, g.quorum)
    _validate_backings(g, by_id, insts)
    try:
        check_rules(g.compliance, {i.id: i.kind.value for i in g.instruments})
    except ValueError as e:
        raise GenesisError(f"compliance: {e}") from e
    _validate_admins(g, by_id)
    _validate_margin(g)


def _validate_margin(g: Genesis) -> None:
    kinds = {i.id: (i.kind.value, i.currency) for i in g.instruments}
    try:
        check_margin(g.margin, frozenset(p.id for p in g.participants), kinds)
    except ValueError as e:
        raise GenesisError(f"margin: {e}") from e


def _validate_admins(g: Genesis, by_id: dict[str, Participant]) -> None:
    """Admins: sorted unique participant ids, at most ADMINS_MAX, 1 <= k <= their number
    (none: no governance, and k is 0)."""
    admins = g.admins
    if not admins:
        if g.admin_threshold != 0:
            _fail("governance: a threshold without admins")
        return
    if list(admins) != sorted(set(admins)) or len(admins) > ADMINS_MAX:
        _fail(f"governance.admins: 1..{ADMINS_MAX} sorted unique participant ids")
    for a in admins:
        if a not in by_id:
            _fail(f"governance.admins: {a!r} is not a participant")
    if not 0 < g.admin_threshold <= len(admins):
        _fail(f"governance.threshold must be between 1 and the number of admins ({len(admins)})")


def validate_participant(p: Participant) -> None:
    """A participant's own fields, as genesis and governance (AddParticipant) check them;
    GenesisError says what is wrong."""
    _check_id(p.id, "participant id")
    if not crypto.is_acceptable_public_key(p.public_key):
        _fail(f"participant {p.id!r}: public_key is invalid or small-order")
    if not 0 <= p.kyc_tier <= KYC_TIER_MAX:
        _fail(f"participant {p.id!r}: kyc_tier must be 0..{KYC_TIER_MAX}")


def validate_instrument(
    inst: Instrument,
    parts: Mapping[str, Participant],
    insts: Mapping[str, Instrument],
    genesis_time_ms: int,
) -> None:
    """An instrument's terms against the participants and instruments it names, exactly
    as genesis checks each of its instruments (governance's AddInstrument reuses it)."""
    _validate_instrument(inst, parts)
    _validate_terms(inst, parts, insts, genesis_time_ms)


def _check_id(value: str, what: str) -> None:
    try:
        check_id(value, what)
    except ValueError as e:
        raise GenesisError(str(e)) from e


def _validate_participants(participants: tuple[Participant, ...]) -> None:
    seen: set[str] = set()
    for p in participants:
        validate_participant(p)
        if p.id in seen:
            _fail(f"participant {p.id!r} appears twice")
        seen.add(p.id)


def _validate_instrument(inst: Instrument, by_id: Mapping[str, Participant]) -> None:
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
        _only_defaults(inst, _BOND_ONLY_FIELDS + _TERMS_FIELDS, "a bond field")
        return
    if Role.BOND_ISSUER not in issuer.roles:
        _fail(f"{inst.kind.value} {inst.id!r}: issuer {inst.issuer!r} lacks the bond_issuer role")
    if inst.kind is InstrumentKind.FUND:
        _only_defaults(inst, _BOND_ONLY_FIELDS, "not a fund field")
        if not 1 <= inst.distribution_day <= DISTRIBUTION_DAY_MAX:
            _fail(f"fund {inst.id!r}: distribution_day must be 1..{DISTRIBUTION_DAY_MAX}")
        return
    if not _ISIN_RE.match(inst.id) or isin_check_digit(inst.id[:11]) != int(inst.id[11]):
        _fail(f"bond {inst.id!r} is not a valid ISIN (format or check digit)")
    if not 0 < inst.unit_face_minor <= U64_MAX:
        _fail(f"bond {inst.id!r}: unit_face_minor must be positive")
    if not 0 <= inst.coupon_bp <= 100_000 or inst.coupon_freq not in COUPON_FREQS:
        _fail(f"bond {inst.id!r}: coupon_bp 0..100000 and coupon_freq one of 0,1,2,3,4,6,12")
    if inst.distribution_day != 0:
        _fail(f"bond {inst.id!r}: distribution_day is a fund field; leave it out")
    if (inst.coupon_bp == 0) != (inst.coupon_freq == 0):
        _fail(f"bond {inst.id!r}: a zero coupon needs a zero frequency and vice versa")
    try:
        date.fromisoformat(inst.maturity_date)
    except ValueError:
        _fail(f"bond {inst.id!r}: maturity_date {inst.maturity_date!r} is not YYYY-MM-DD")


_BOND_ONLY_FIELDS = ("unit_face_minor", "maturity_date", "coupon_bp", "coupon_freq")
_TERMS_FIELDS = ("payment_cash", "paying_agent", "issue_date", "distribution_day")
_CASH_DEFAULTS = Instrument("", InstrumentKind.CASH, "", "")


def _only_defaults(inst: Instrument, fields: tuple[str, ...], why: str) -> None:
    """Fields this kind does not use must keep their defaults, else unchecked values
    reach the canonical encoding."""
    for field in fields:
        if getattr(inst, field) != getattr(_CASH_DEFAULTS, field):
            _fail(f"{inst.kind.value} {inst.id!r}: {field} is {why}; leave it out")


def _validate_terms(
    inst: Instrument,
    parts: Mapping[str, Participant],
    insts: Mapping[str, Instrument],
    genesis_time_ms: int,
) -> None:
    """Payment terms of a bond or fund: a cash token in its currency, an agent who may
    hold, an issue date before maturity, and a schedule within SCHEDULE_PERIODS_MAX."""
    if inst.kind is InstrumentKind.CASH:
        return
    what = f"{inst.kind.value} {inst.id!r}"
    cash = insts.get(inst.payment_cash)
    if cash is None or cash.kind is not InstrumentKind.CASH or cash.currency != inst.currency:
        _fail(f"{what}: payment_cash {inst.payment_cash!r} is not a {inst.currency} cash token")
    agent = parts.get(inst.agent)
    if agent is None or not agent.can_hold():
        _fail(f"{what}: paying_agent {inst.agent!r} is not a participant who may hold")
    try:
        issued = date.fromisoformat(inst.issue_date) if inst.issue_date else None
    except ValueError:
        _fail(f"{what}: issue_date {inst.issue_date!r} is not YYYY-MM-DD")
        return
    if (
        issued is not None
        and inst.maturity_date
        and issued >= date.fromisoformat(inst.maturity_date)
    ):
        _fail(f"{what}: issue_date must be before maturity_date")
    try:
        _payment_dates(inst, genesis_time_ms)
    except GenesisError:
        raise
    except (ValueError, OverflowError) as e:  # a date past year 9999
        _fail(f"{what}: its payment schedule leaves the calendar ({e})")


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


def _validate_backings(
    g: Genesis, parts: dict[str, Participant], insts: dict[str, Instrument]
) -> None:
    """Each custody backing names a bond and a custodian, each reserve rule a cash token;
    one entry per instrument; days and shares in range."""
    if len(g.custody) + len(g.reserves) > BACKINGS_MAX:
        _fail(f"at most {BACKINGS_MAX} custody backings and reserve rules")
    for c in g.custody:
        bond, custodian = insts.get(c.bond), parts.get(c.custodian)
        if bond is None or bond.kind is not InstrumentKind.BOND:
            _fail(f"custody: {c.bond!r} is not a bond of this genesis")
        if custodian is None or Role.CUSTODIAN not in custodian.roles:
            _fail(f"custody of {c.bond!r}: {c.custodian!r} is no participant with role custodian")
        _days(c.age_max_days, f"custody of {c.bond!r}: age_max_days")
    for r in g.reserves:
        cash = insts.get(r.cash)
        if cash is None or cash.kind is not InstrumentKind.CASH:
            _fail(f"reserves: {r.cash!r} is not a cash token of this genesis")
        _days(r.bill_days_max, f"reserves of {r.cash!r}: bill_days_max")
        _days(r.age_max_days, f"reserves of {r.cash!r}: age_max_days")
        if not (0 <= r.bills_min_bp <= 10_000 and 0 <= r.deposits_max_bp <= 10_000):
            _fail(f"reserves of {r.cash!r}: bills_min_bp and deposits_max_bp must be 0..10000")
    if len({c.bond for c in g.custody}) != len(g.custody):
        _fail("custody: a bond appears twice")
    if len({r.cash for r in g.reserves}) != len(g.reserves):
        _fail("reserves: a cash token appears twice")


def _days(value: int, what: str) -> None:
    if not 1 <= value <= RESERVE_RULE_DAYS_MAX:
        _fail(f"{what} must be 1..{RESERVE_RULE_DAYS_MAX}")
