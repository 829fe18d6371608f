"""Genesis documents: strict JSON in and out, and a deterministic demo network.

The JSON form is what operators edit and ship; the canonical binary form
(``Genesis.canonical_bytes``) is what hashes to the chain id. Loading is strict: unknown
keys, missing keys, floats and wrong types are errors that name the field.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

from node import crypto, tags
from node.config import U64_MAX
from node.files import read_regular_text
from node.settlement import (
    ComplianceRules,
    CustodyBacking,
    Genesis,
    GenesisError,
    Haircut,
    Holding,
    Instrument,
    InstrumentKind,
    MarginTerms,
    Participant,
    ReserveRules,
    Role,
    TierLimit,
    Validator,
    isin_check_digit,
)

__all__ = [
    "DEMO_ADMINS",
    "DEMO_ADMIN_THRESHOLD",
    "DEMO_COSIGN_ABOVE_CENTS",
    "DEMO_DUE_BOND",
    "DEMO_MATURED_BOND",
    "DEMO_RESERVE_CASH",
    "DemoNetwork",
    "compliance_from_json",
    "compliance_to_json",
    "demo_compliance",
    "demo_genesis",
    "demo_lifecycle_bonds",
    "demo_margin",
    "dump_genesis",
    "genesis_to_json",
    "instrument_from_json",
    "instrument_to_json",
    "load_genesis",
    "parse_genesis",
]

T = TypeVar("T")


def _obj(
    d: Any, where: str, required: set[str], optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise GenesisError(f"{where}: expected an object")
    missing = required - d.keys()
    extra = d.keys() - required - optional
    if missing or extra:
        raise GenesisError(f"{where}: missing {sorted(missing)}, unknown {sorted(extra)}")
    return d


def _int(d: dict[str, Any], key: str, where: str) -> int:
    v = d[key]
    if type(v) is not int:  # bool is an int subclass and float is never an amount
        raise GenesisError(f"{where}.{key}: expected an integer, got {type(v).__name__}")
    return v


def _str(d: dict[str, Any], key: str, where: str) -> str:
    v = d[key]
    if not isinstance(v, str):
        raise GenesisError(f"{where}.{key}: expected a string")
    return v


def _key(d: dict[str, Any], where: str) -> bytes:
    try:
        return bytes.fromhex(_str(d, "public_key", where))
    except ValueError as e:
        raise GenesisError(f"{where}.public_key: not hex") from e


def _list(doc: dict[str, Any], key: str, parse: Callable[[Any, str], T]) -> tuple[T, ...]:
    items = doc[key]
    if not isinstance(items, list):
        raise GenesisError(f"{key}: expected a list")
    return tuple(parse(item, f"{key}[{i}]") for i, item in enumerate(items))


def _participant(d: Any, where: str) -> Participant:
    d = _obj(d, where, {"id", "public_key", "roles", "kyc_tier"})
    names = d["roles"]
    if not isinstance(names, list):  # a string or an object would iterate as roles
        raise GenesisError(f"{where}.roles: expected a list of role names")
    try:
        roles = frozenset(Role(r) for r in names)
    except ValueError as e:  # what Role() raises for any value that names no role
        raise GenesisError(f"{where}.roles: each must be one of {[r.value for r in Role]}") from e
    if len(roles) != len(names):
        raise GenesisError(f"{where}.roles: a role is named twice")
    return Participant(_str(d, "id", where), _key(d, where), roles, _int(d, "kyc_tier", where))


_BOND_FIELDS = frozenset({"unit_face_minor", "maturity_date", "coupon_bp", "coupon_freq"})
# Payment terms of bonds and funds (docs/ledger.md "Lifecycle"); optional in the file.
_TERMS_FIELDS = frozenset({"payment_cash", "paying_agent", "issue_date", "distribution_day"})
_INT_FIELDS = ("unit_face_minor", "coupon_bp", "coupon_freq", "max_supply", "distribution_day")
_STR_FIELDS = ("maturity_date", "payment_cash", "paying_agent", "issue_date")


def _instrument(d: Any, where: str) -> Instrument:
    optional = _BOND_FIELDS | _TERMS_FIELDS | {"max_supply"}
    d = _obj(d, where, {"id", "kind", "issuer", "currency"}, optional)
    try:
        kind = InstrumentKind(d["kind"])
    except ValueError as e:
        raise GenesisError(
            f"{where}.kind: must be one of {[k.value for k in InstrumentKind]}"
        ) from e
    extra: dict[str, Any] = {}
    for f in _INT_FIELDS:
        if f in d:
            extra[f] = _int(d, f, where)
    for f in _STR_FIELDS:
        if f in d:
            extra[f] = _str(d, f, where)
    return Instrument(
        _str(d, "id", where), kind, _str(d, "issuer", where), _str(d, "currency", where), **extra
    )


def _holding(d: Any, where: str) -> Holding:
    d = _obj(d, where, {"account", "instrument", "amount"})
    return Holding(
        _str(d, "account", where), _str(d, "instrument", where), _int(d, "amount", where)
    )


def _validator(d: Any, where: str) -> Validator:
    d = _obj(d, where, {"id", "public_key"}, frozenset({"tls_cert_sha256"}))
    pin = b""
    if "tls_cert_sha256" in d:
        try:
            pin = bytes.fromhex(_str(d, "tls_cert_sha256", where))
        except ValueError as e:
            raise GenesisError(f"{where}.tls_cert_sha256: not hex") from e
    return Validator(_str(d, "id", where), _key(d, where), pin)


def _custody(d: Any, where: str) -> CustodyBacking:
    d = _obj(d, where, {"bond", "custodian"}, frozenset({"age_max_days"}))
    extra = {"age_max_days": _int(d, "age_max_days", where)} if "age_max_days" in d else {}
    return CustodyBacking(_str(d, "bond", where), _str(d, "custodian", where), **extra)


_RULE_FIELDS = ("bill_days_max", "bills_min_bp", "deposits_max_bp", "age_max_days")


def _reserve_rules(d: Any, where: str) -> ReserveRules:
    d = _obj(d, where, {"cash"}, frozenset(_RULE_FIELDS))
    extra = {f: _int(d, f, where) for f in _RULE_FIELDS if f in d}
    return ReserveRules(_str(d, "cash", where), **extra)


# Optional top-level keys, by part; absent means the default (none).
_OPTIONAL_KEYS = frozenset({"governance", "custody", "reserves", "compliance"})  # gov, reserve, kyc
_OPTIONAL_KEYS |= {"margin"}  # margin


def _governance(doc: dict[str, Any]) -> tuple[tuple[str, ...], int]:
    """The optional ``governance: {admins: [...], threshold: k}`` (ADR 0016)."""
    if "governance" not in doc:
        return (), 0
    d = _obj(doc["governance"], "governance", {"admins", "threshold"})
    admins = d["admins"]
    if not isinstance(admins, list) or not all(isinstance(a, str) for a in admins):
        raise GenesisError("governance.admins: expected a list of participant ids")
    return tuple(admins), _int(d, "threshold", "governance")


def parse_genesis(doc: Any) -> Genesis:
    """Build and validate a Genesis from its parsed JSON form."""
    keys = {
        "name",
        "genesis_time_ms",
        "quorum",
        "validators",
        "participants",
        "instruments",
        "holdings",
    }
    doc = _obj(doc, "genesis", keys, _OPTIONAL_KEYS)
    extra: dict[str, Any] = {}
    if "compliance" in doc:
        extra["compliance"] = compliance_from_json(doc["compliance"])
    if "margin" in doc:
        extra["margin"] = margin_from_json(doc["margin"])
    admins, threshold = _governance(doc)
    return Genesis(
        name=_str(doc, "name", "genesis"),
        genesis_time_ms=_int(doc, "genesis_time_ms", "genesis"),
        participants=_list(doc, "participants", _participant),
        instruments=_list(doc, "instruments", _instrument),
        holdings=_list(doc, "holdings", _holding),
        validators=_list(doc, "validators", _validator),
        quorum=_int(doc, "quorum", "genesis"),
        custody=_list(doc, "custody", _custody) if "custody" in doc else (),
        reserves=_list(doc, "reserves", _reserve_rules) if "reserves" in doc else (),
        **extra,
        admins=admins,
        admin_threshold=threshold,
    )


# --- kyc: KYC tier and AML rules (docs/ledger.md "KYC tiers and AML") ---------------------


def _int_map(d: dict[str, Any], key: str, where: str) -> dict[str, int]:
    m = d.get(key, {})
    if not isinstance(m, dict):
        raise GenesisError(f"{where}.{key}: expected an object")
    return {str(k): _int(m, k, f"{where}.{key}") for k in m}


def _tier_limit(d: Any, where: str) -> TierLimit:
    d = _obj(d, where, {"tier", "cash", "trade_max"}, frozenset({"day_max"}))
    day_max = _int(d, "day_max", where) if "day_max" in d else U64_MAX
    return TierLimit(
        _int(d, "tier", where), _str(d, "cash", where), _int(d, "trade_max", where), day_max
    )


def compliance_from_json(d: Any) -> ComplianceRules:
    """Compliance rules from their genesis JSON form (``compliance``); GenesisError."""
    where = "compliance"
    d = _obj(d, where, set(), frozenset({"min_tier", "limits", "cosign_above"}))
    limits = _list(d, "limits", _tier_limit) if "limits" in d else ()
    try:
        return ComplianceRules.of(
            _int_map(d, "min_tier", where), limits, _int_map(d, "cosign_above", where)
        )
    except ValueError as e:
        raise GenesisError(f"{where}: {e}") from e


def compliance_to_json(c: ComplianceRules) -> dict[str, Any]:
    """The genesis JSON form of compliance rules."""

    def limit(r: TierLimit) -> dict[str, Any]:
        d: dict[str, Any] = {"tier": r.tier, "cash": r.cash, "trade_max": r.trade_max}
        if r.day_max != U64_MAX:
            d["day_max"] = r.day_max
        return d

    return {
        "min_tier": dict(c.min_tier),
        "limits": [limit(r) for r in c.limits],
        "cosign_above": dict(c.cosign_above),
    }


# --- margin: price sources and haircuts (docs/ledger.md "Prices, margin and substitution")

_MARGIN_KEYS = {"sources", "threshold", "price_age_max_ms", "haircuts"}


def _haircut(d: Any, where: str) -> Haircut:
    d = _obj(d, where, {"instrument", "cash", "haircut_bp"})
    return Haircut(
        _str(d, "instrument", where), _str(d, "cash", where), _int(d, "haircut_bp", where)
    )


def margin_from_json(d: Any) -> MarginTerms:
    """The genesis ``margin`` object; GenesisError names the field (Genesis validates it)."""
    d = _obj(d, "margin", _MARGIN_KEYS)
    sources = d["sources"]
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise GenesisError("margin.sources: expected a list of participant ids")
    return MarginTerms(
        tuple(sources),
        _int(d, "threshold", "margin"),
        _int(d, "price_age_max_ms", "margin"),
        _list(d, "haircuts", _haircut),
    )


def margin_to_json(m: MarginTerms) -> dict[str, Any]:
    return {
        "sources": list(m.sources),
        "threshold": m.threshold,
        "price_age_max_ms": m.price_age_max_ms,
        "haircuts": [dataclasses.asdict(h) for h in m.haircuts],
    }


def load_genesis(path: str | Path) -> Genesis:
    """Read a genesis JSON file; GenesisError says what is wrong and where."""
    try:
        text = read_regular_text(path)
    except UnicodeDecodeError as e:
        raise GenesisError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    try:
        doc = json.loads(text, parse_float=_reject_float)
    except GenesisError:
        raise
    except ValueError as e:  # JSONDecodeError, and an integer of over 4,300 digits
        raise GenesisError(f"{path}: not valid JSON ({e})") from e
    except RecursionError as e:
        raise GenesisError(f"{path}: JSON nested too deeply") from e
    return parse_genesis(doc)


def _reject_float(text: str) -> Any:
    raise GenesisError(f"genesis contains the float {text}; amounts are integers")


def instrument_from_json(d: Any, where: str = "instrument") -> Instrument:
    """An instrument in the genesis JSON form (``ledger admin add-instrument`` reads it);
    GenesisError names the field. The ledger checks its terms as genesis checks them."""
    return _instrument(d, where)


def instrument_to_json(i: Instrument) -> dict[str, Any]:
    """The genesis JSON form of one instrument."""
    d: dict[str, Any] = {
        "id": i.id,
        "kind": i.kind.value,
        "issuer": i.issuer,
        "currency": i.currency,
        "max_supply": i.max_supply,
    }
    if i.kind is InstrumentKind.BOND:
        d.update(
            unit_face_minor=i.unit_face_minor,
            maturity_date=i.maturity_date,
            coupon_bp=i.coupon_bp,
            coupon_freq=i.coupon_freq,
        )
    if i.kind is InstrumentKind.FUND:
        d["distribution_day"] = i.distribution_day
    if i.kind is not InstrumentKind.CASH:
        d["payment_cash"] = i.payment_cash
        for f in ("paying_agent", "issue_date"):  # empty: the issuer, the genesis date
            if getattr(i, f):
                d[f] = getattr(i, f)
    return d


def genesis_to_json(g: Genesis) -> dict[str, Any]:
    instrument = instrument_to_json
    doc: dict[str, Any] = {
        "name": g.name,
        "genesis_time_ms": g.genesis_time_ms,
        "quorum": g.quorum,
        "validators": [_validator_json(v) for v in g.validators],
        "participants": [
            {
                "id": p.id,
                "public_key": p.public_key.hex(),
                "roles": sorted(r.value for r in p.roles),
                "kyc_tier": p.kyc_tier,
            }
            for p in g.participants
        ],
        "instruments": [instrument(i) for i in g.instruments],
        "holdings": [
            {"account": h.account, "instrument": h.instrument, "amount": h.amount}
            for h in g.holdings
        ],
    }
    if g.admins:
        doc["governance"] = {"admins": list(g.admins), "threshold": g.admin_threshold}
    doc.update(_reserve_json(g))
    if not g.compliance.is_default:
        doc["compliance"] = compliance_to_json(g.compliance)
    if not g.margin.is_default:
        doc["margin"] = margin_to_json(g.margin)
    return doc


def _reserve_json(g: Genesis) -> dict[str, Any]:
    """reserve's optional keys, present only when genesis lists any backing."""
    out: dict[str, Any] = {}
    if g.custody:
        out["custody"] = [dataclasses.asdict(c) for c in g.custody]
    if g.reserves:
        out["reserves"] = [dataclasses.asdict(r) for r in g.reserves]
    return out


def _validator_json(v: Validator) -> dict[str, Any]:
    d = {"id": v.id, "public_key": v.public_key.hex()}
    if v.tls_cert_sha256:
        d["tls_cert_sha256"] = v.tls_cert_sha256.hex()
    return d


def dump_genesis(g: Genesis, path: str | Path) -> None:
    Path(path).write_text(json.dumps(genesis_to_json(g), indent=2) + "\n", encoding="utf-8")


# --- demo network ------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoNetwork:
    genesis: Genesis
    participant_keys: dict[str, crypto.SigningKey]
    validator_keys: list[crypto.SigningKey]
    banks: tuple[str, ...]
    bonds: tuple[str, ...]
    cash: str
    fund: str  # fund shares distributing monthly in ``cash``; genesis holds none
    # With ``lifecycle_date``: (a bond with monthly coupons already due, a matured bond);
    # not in ``bonds``, which stay the tradable ones the demo and benchmark load trade.
    lifecycle: tuple[str, ...] = ()


def _isin(base11: str) -> str:
    return base11 + str(isin_check_digit(base11))


# Governance of the demo network (ADR 0016): the depository that keeps the reference data,
# the compliance officer and the regulator; any two of the three change it.
DEMO_ADMINS = ("COMPLIANCE", "CSD", "REGULATOR")
DEMO_ADMIN_THRESHOLD = 2

DEMO_BOND_UNITS = 10_000_000  # per bank: $100,000 face in $0.01 units
DEMO_CASH_CENTS = 1_000_000_000  # per bank: $10,000,000
# kyc (docs/ledger.md "KYC tiers and AML"): the demo and benchmark trades stay within
# these; a test breaches them with a cash leg above the co-sign threshold or above the
# tier-2 per-trade limit, or with a tier-1 participant of its own genesis.
DEMO_COSIGN_ABOVE_CENTS = 500_000_000  # $5,000,000 needs a compliance co-signature
DEMO_TIER2_TRADE_MAX_CENTS = 1_000_000_000  # $10,000,000 per trade; no daily limit
DEMO_TIER1_TRADE_MAX_CENTS, DEMO_TIER1_DAY_MAX_CENTS = 10_000_000, 25_000_000


def demo_compliance(bonds: tuple[str, ...], cash: str) -> ComplianceRules:
    """Bonds held from tier 2 (every demo bank), tier limits on the cash token, and the
    AML co-sign threshold."""
    return ComplianceRules.of(
        min_tier=dict.fromkeys(bonds, 2),
        limits=[
            TierLimit(1, cash, DEMO_TIER1_TRADE_MAX_CENTS, DEMO_TIER1_DAY_MAX_CENTS),
            TierLimit(2, cash, DEMO_TIER2_TRADE_MAX_CENTS, U64_MAX),
        ],
        cosign_above={cash: DEMO_COSIGN_ABOVE_CENTS},
    )


# The lifecycle bonds of a network generated on a given date (``make demo``, ``make bench
# WORKLOAD=mixed``): block time is the wall clock, so their dates lie before that date.
DEMO_DUE_BOND = _isin("US91282CKM2")  # 5% monthly, issued two years before, 24 coupons due
DEMO_MATURED_BOND = _isin("US91282CHP9")  # 3% semi-annual, matured the day before: redeemable
DEMO_DUE_BOND_BP, DEMO_MATURED_BOND_BP = 500, 300
# reserve: a second cash token, reserve-backed, that nobody holds at genesis (so nothing
# of it exists until its issuer attests reserves and mints): `make demo`'s reserve step.
DEMO_RESERVE_CASH = "USD.RESERVED"
DEMO_RESERVE_RULES = ReserveRules(
    DEMO_RESERVE_CASH, bill_days_max=93, bills_min_bp=8_000, deposits_max_bp=2_000
)


# margin (docs/ledger.md "Prices, margin and substitution"): three institutions that are
# never a repo party in the demo attest prices, two of them make a price, an hour old at
# most; both tradable bonds are eligible, the longer one with the larger haircut.
DEMO_PRICE_SOURCES = ("AUDITOR", "CASHCO", "CSD")
DEMO_PRICE_THRESHOLD = 2
DEMO_PRICE_AGE_MAX_MS = 3_600_000
DEMO_HAIRCUTS_BP = (200, 100)  # the 2034 note 2%, the 2027 bill 1%


def demo_margin(bonds: tuple[str, ...], cash: str) -> MarginTerms:
    """The demo network's price sources, threshold, price age and haircut schedule."""
    rows = [Haircut(b, cash, h) for b, h in zip(bonds, DEMO_HAIRCUTS_BP, strict=True)]
    rows.sort(key=lambda r: r.instrument)
    return MarginTerms(DEMO_PRICE_SOURCES, DEMO_PRICE_THRESHOLD, DEMO_PRICE_AGE_MAX_MS, tuple(rows))


def demo_lifecycle_bonds(today: date, cash: str) -> tuple[Instrument, Instrument]:
    """Two bonds whose schedule has already begun on ``today``: one with monthly coupons
    due since two years ago (maturing in four years), one matured yesterday whose only
    period is its final one (issued 90 days before maturity), so redeeming it pays face
    plus that coupon with no earlier coupon outstanding."""
    maturity = date(today.year + 4, today.month, min(today.day, 28))
    matured = today - timedelta(days=1)
    due = Instrument(
        DEMO_DUE_BOND, InstrumentKind.BOND, "TREASURY", "USD", unit_face_minor=1,
        maturity_date=maturity.isoformat(), coupon_bp=DEMO_DUE_BOND_BP, coupon_freq=12,
        payment_cash=cash, issue_date=(today - timedelta(days=730)).isoformat(),
    )  # fmt: skip
    done = Instrument(
        DEMO_MATURED_BOND, InstrumentKind.BOND, "TREASURY", "USD", unit_face_minor=1,
        maturity_date=matured.isoformat(), coupon_bp=DEMO_MATURED_BOND_BP, coupon_freq=2,
        payment_cash=cash, issue_date=(matured - timedelta(days=90)).isoformat(),
    )  # fmt: skip
    return due, done


def demo_genesis(
    validators: int = 4,
    quorum: int = 3,
    seed: bytes = b"demo",
    banks: int = 6,
    lifecycle_date: date | None = None,
    *,
    backing: bool = False,
    compliance: bool = False,
    margin: bool = False,
) -> DemoNetwork:
    """A deterministic network: a depository, a treasury, a cash issuer, ``banks`` banks.

        Keys derive from ``seed``; for tests, simulations and demos only, never production.
        With ``lifecycle_date``, also the two bonds of ``demo_lifecycle_bonds`` for that date,
        every bank holding ``DEMO_BOND_UNITS`` of each. With ``backing`` (reserve), the cash
        token ``DEMO_RESERVE_CASH`` under ``DEMO_RESERVE_RULES``, and the lifecycle bonds
        custody-backed by the depository (CSD): the tradable bonds and the first cash token
        stay unbacked, since the benchmark mints them freely. With ``compliance`` (kyc), the
    KYC and AML rules of ``demo_compliance`` (``make genesis`` networks have them; unit
    tests opt in, so their larger amounts keep testing the checks they were written for).
    With ``margin``, the price sources, threshold and haircuts of ``demo_margin``
    (``make genesis`` networks have them).
    """

    def key(label: str) -> crypto.SigningKey:
        return crypto.SigningKey(crypto.sha256(tags.DEMO_KEY, seed, label.encode()))

    bank_ids = tuple(f"BANK{i:02d}" for i in range(1, banks + 1))
    roles = {
        "CSD": ({Role.CUSTODIAN}, 3),
        "TREASURY": ({Role.BOND_ISSUER}, 3),
        "CASHCO": ({Role.CASH_ISSUER}, 3),
        "COMPLIANCE": ({Role.COMPLIANCE}, 3),
        "REGULATOR": ({Role.REGULATOR}, 3),
        # reads every account and trade (node/access.py): the benchmark's and the
        # demo's cluster-wide views, and an external auditor's
        "AUDITOR": ({Role.AUDITOR}, 3),
        **{b: ({Role.TRADER}, 2) for b in bank_ids},
    }
    keys = {pid: key("participant:" + pid) for pid in roles}
    participants = tuple(
        Participant(pid, keys[pid].public_key, frozenset(r), tier)
        for pid, (r, tier) in roles.items()
    )
    bonds = (_isin("US91282CJK7"), _isin("US912797GL5"))
    cash = "USD.CASHCO"
    fund = "FUND.TBILL"
    instruments = (
        Instrument(
            bonds[0],
            InstrumentKind.BOND,
            "TREASURY",
            "USD",
            unit_face_minor=1,
            maturity_date="2034-11-15",
            coupon_bp=425,
            coupon_freq=2,
            payment_cash=cash,
        ),
        Instrument(
            bonds[1],
            InstrumentKind.BOND,
            "TREASURY",
            "USD",
            unit_face_minor=1,
            maturity_date="2027-05-20",
            payment_cash=cash,
        ),
        Instrument(cash, InstrumentKind.CASH, "CASHCO", "USD"),
        Instrument(
            fund, InstrumentKind.FUND, "TREASURY", "USD", payment_cash=cash, distribution_day=15
        ),
    )
    lifecycle: tuple[Instrument, ...] = ()
    if lifecycle_date is not None:
        lifecycle = demo_lifecycle_bonds(lifecycle_date, cash)
    holdings = tuple(
        Holding(b, inst, DEMO_CASH_CENTS if inst == cash else DEMO_BOND_UNITS)
        for b in bank_ids
        for inst in (*bonds, *(i.id for i in lifecycle), cash)
    )
    vkeys = [key(f"validator:{i}") for i in range(validators)]
    backed = (Instrument(DEMO_RESERVE_CASH, InstrumentKind.CASH, "CASHCO", "USD"),)
    genesis = Genesis(
        name="demo-" + seed.decode("ascii", "replace").replace(" ", "-")[:32],
        genesis_time_ms=1_767_225_600_000,  # 2026-01-01T00:00:00Z
        participants=participants,
        instruments=(*instruments, *lifecycle, *(backed if backing else ())),
        holdings=holdings,
        validators=tuple(Validator(f"val{i:02d}", k.public_key) for i, k in enumerate(vkeys)),
        quorum=quorum,
        custody=tuple(CustodyBacking(i.id, "CSD") for i in lifecycle) if backing else (),
        reserves=(DEMO_RESERVE_RULES,) if backing else (),
        compliance=demo_compliance(bonds, cash) if compliance else ComplianceRules(),
        admins=DEMO_ADMINS,
        admin_threshold=DEMO_ADMIN_THRESHOLD,
        margin=demo_margin(bonds, cash) if margin else MarginTerms(),
    )
    ids = tuple(i.id for i in lifecycle)
    return DemoNetwork(genesis, keys, vkeys, bank_ids, bonds, cash, fund, ids)
