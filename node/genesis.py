"""Genesis documents: strict JSON in and out, and a deterministic demo network.

The JSON form is what operators edit and ship; the canonical binary form
(``Genesis.canonical_bytes``) is what hashes to the chain id. Loading is strict: unknown
keys, missing keys, floats and wrong types are errors that name the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

from node import crypto, tags
from node.settlement import (
    Genesis,
    GenesisError,
    Holding,
    Instrument,
    InstrumentKind,
    Participant,
    Role,
    Validator,
    isin_check_digit,
)

__all__ = [
    "DEMO_ADMINS",
    "DEMO_ADMIN_THRESHOLD",
    "DEMO_DUE_BOND",
    "DEMO_MATURED_BOND",
    "DemoNetwork",
    "demo_genesis",
    "demo_lifecycle_bonds",
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
    try:
        roles = frozenset(Role(r) for r in d["roles"])
    except (ValueError, TypeError) as e:
        raise GenesisError(f"{where}.roles: each must be one of {[r.value for r in Role]}") from e
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
    doc = _obj(doc, "genesis", keys, frozenset({"governance"}))
    admins, threshold = _governance(doc)
    return Genesis(
        name=_str(doc, "name", "genesis"),
        genesis_time_ms=_int(doc, "genesis_time_ms", "genesis"),
        participants=_list(doc, "participants", _participant),
        instruments=_list(doc, "instruments", _instrument),
        holdings=_list(doc, "holdings", _holding),
        validators=_list(doc, "validators", _validator),
        quorum=_int(doc, "quorum", "genesis"),
        admins=admins,
        admin_threshold=threshold,
    )


def load_genesis(path: str | Path) -> Genesis:
    """Read a genesis JSON file; GenesisError says what is wrong and where."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise GenesisError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    try:
        doc = json.loads(text, parse_float=_reject_float)
    except json.JSONDecodeError as e:
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
    return doc


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


# The lifecycle bonds of a network generated on a given date (``make demo``, ``make bench
# WORKLOAD=mixed``): block time is the wall clock, so their dates lie before that date.
DEMO_DUE_BOND = _isin("US91282CKM2")  # 5% monthly, issued two years before, 24 coupons due
DEMO_MATURED_BOND = _isin("US91282CHP9")  # 3% semi-annual, matured the day before: redeemable
DEMO_DUE_BOND_BP, DEMO_MATURED_BOND_BP = 500, 300


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
) -> DemoNetwork:
    """A deterministic network: a depository, a treasury, a cash issuer, ``banks`` banks.

    Keys derive from ``seed``; for tests, simulations and demos only, never production.
    With ``lifecycle_date``, also the two bonds of ``demo_lifecycle_bonds`` for that date,
    every bank holding ``DEMO_BOND_UNITS`` of each.
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
    genesis = Genesis(
        name="demo-" + seed.decode("ascii", "replace").replace(" ", "-")[:32],
        genesis_time_ms=1_767_225_600_000,  # 2026-01-01T00:00:00Z
        participants=participants,
        instruments=(*instruments, *lifecycle),
        holdings=holdings,
        validators=tuple(Validator(f"val{i:02d}", k.public_key) for i, k in enumerate(vkeys)),
        quorum=quorum,
        admins=DEMO_ADMINS,
        admin_threshold=DEMO_ADMIN_THRESHOLD,
    )
    ids = tuple(i.id for i in lifecycle)
    return DemoNetwork(genesis, keys, vkeys, bank_ids, bonds, cash, fund, ids)
