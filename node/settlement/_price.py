"""Theory of operation: the price oracle and collateral valuation (issue 18 item 3;
docs/ledger.md "Prices, margin and substitution").

The threat (docs/DOMAIN "price feeds were named as a tampering risk"): a single unsigned,
stale or lying price must never move collateral. So:

- only the **price sources** genesis names sign ``AttestPrice`` (anybody else:
  ``UNAUTHORIZED``, at admission too), and only for an **eligible** instrument (a row of
  the genesis haircut schedule, else ``NOT_ELIGIBLE_COLLATERAL``);
- an attestation must be newer than that source's last one for the instrument, not after
  the block time, and not older than the genesis ``price_age_max_ms`` at the block time;
  else ``STALE_ATTESTATION`` and nothing is recorded (a replay with a new nonce, a
  back-dated or a future statement never replaces the latest);
- the **price used** at block time ``t`` is the lower median of the latest attestation of
  each source that is fresh at ``t`` (``as_of_ms >= t - price_age_max_ms``), and exists
  only when at least ``threshold`` (k) distinct sources are fresh: fewer is
  ``NO_FRESH_PRICE`` for whatever needed it, and nothing moves. With m >= k fresh
  sources of which f lie, the lower median lies between two honest prices while
  f <= (m - 1) // 2: k = 3 tolerates one lying source, k = 2f + 1 tolerates f.

**Valuation** (one function, integer arithmetic, rounded down, in the lender's favour):
``value = floor(quantity * price * (10_000 - haircut_bp) / (PRICE_UNITS * 10_000))``.
Python integers are exact, so nothing overflows before the one division; a value is
compared, never stored. ``units_for`` is its inverse: the fewest units worth at least a
value.

Record (``RecordKind.PRICE``; ids NUL-padded to ``ID_BYTES_MAX``): one per (instrument,
source), the source's latest, so a price read scans at most ``PRICE_SOURCES_MAX``:

- ``PRICE | instrument | source`` -> ``u64 price | u64 as_of_ms | u64 height``.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.config import ID_BYTES_MAX, PRICE_UNITS
from node.invariant import require
from node.settlement._codec import Reader, Writer
from node.settlement._margin_terms import Haircut
from node.settlement._registry import Registry
from node.settlement._result import ResultCode
from node.settlement._state import Overlay, RecordKind, StateView
from node.settlement._tx import AttestPrice

__all__ = [
    "BP",
    "PriceRecord",
    "attest_price",
    "collateral_value",
    "eligible",
    "fresh_price",
    "may_attest_price",
    "price_records",
    "units_for",
]

BP = 10_000  # basis points in one


def _pad(value: str) -> bytes:
    return value.encode("ascii").ljust(ID_BYTES_MAX, b"\0")


def _prefix(instrument: str) -> bytes:
    return bytes([RecordKind.PRICE]) + _pad(instrument)


def _key(instrument: str, source: str) -> bytes:
    return _prefix(instrument) + _pad(source)


@dataclass(frozen=True, slots=True)
class PriceRecord:
    """A source's latest recorded price of an instrument."""

    instrument: str
    source: str
    price: int
    as_of_ms: int
    height: int

    def encode(self) -> bytes:
        return Writer().u64(self.price).u64(self.as_of_ms).u64(self.height).finish()

    @classmethod
    def decode(cls, key: bytes, raw: bytes) -> PriceRecord:
        instrument = key[1 : 1 + ID_BYTES_MAX].rstrip(b"\0").decode("ascii")
        source = key[1 + ID_BYTES_MAX :].rstrip(b"\0").decode("ascii")
        r = Reader(raw)
        out = cls(instrument, source, r.u64(), r.u64(), r.u64())
        r.done()
        return out


def collateral_value(quantity: int, price: int, haircut_bp: int) -> int:
    """What ``quantity`` units are worth as collateral at ``price`` (minor units per
    PRICE_UNITS units) after ``haircut_bp``: rounded down, in the lender's favour."""
    require(0 <= haircut_bp < BP and price > 0 and quantity >= 0, "valuation out of range")
    return quantity * price * (BP - haircut_bp) // (PRICE_UNITS * BP)


def units_for(value: int, price: int, haircut_bp: int) -> int:
    """The fewest units whose ``collateral_value`` is at least ``value`` (price > 0):
    ``value(n) >= v`` iff ``n * price * (BP - h) >= v * PRICE_UNITS * BP``, so the
    ceiling of that quotient."""
    require(price > 0 and 0 <= haircut_bp < BP and value >= 0, "inverse valuation out of range")
    per = price * (BP - haircut_bp)
    return -(-value * PRICE_UNITS * BP // per)


def eligible(reg: Registry, instrument: str) -> Haircut | None:
    """The haircut row of an eligible collateral instrument; None: not eligible."""
    return reg.genesis.margin.haircut_by_instrument.get(instrument)


def may_attest_price(reg: Registry, source: str) -> bool:
    """Only the sources genesis names attest prices (fixed for the chain's life)."""
    return source in reg.genesis.margin.sources


def attest_price(
    reg: Registry, o: Overlay, tx: AttestPrice, *, height: int, time_ms: int
) -> ResultCode:
    if tx.instrument not in reg.instrument_by_id:
        return ResultCode.UNKNOWN_INSTRUMENT
    if tx.price == 0:
        return ResultCode.INVALID_AMOUNT
    if not may_attest_price(reg, tx.source):
        return ResultCode.UNAUTHORIZED
    if eligible(reg, tx.instrument) is None:
        return ResultCode.NOT_ELIGIBLE_COLLATERAL
    if not _fresh(reg, o, tx, time_ms):
        return ResultCode.STALE_ATTESTATION
    rec = PriceRecord(tx.instrument, tx.source, tx.price, tx.as_of_ms, height)
    o.put_record(_key(tx.instrument, tx.source), rec.encode())
    return ResultCode.OK


def _fresh(reg: Registry, o: Overlay, tx: AttestPrice, time_ms: int) -> bool:
    """Newer than this source's last price of the instrument, not after the block time,
    and young enough to be used at the block time."""
    key = _key(tx.instrument, tx.source)
    raw = o.record(key)
    if raw is not None and PriceRecord.decode(key, raw).as_of_ms >= tx.as_of_ms:
        return False  # a replay or an older statement
    return time_ms - reg.genesis.margin.price_age_max_ms <= tx.as_of_ms <= time_ms


def price_records(view: StateView | Overlay, instrument: str) -> list[PriceRecord]:
    """Every source's latest recorded price of ``instrument``, by source id."""
    return [PriceRecord.decode(k, v) for k, v in view.records(_prefix(instrument))]


def fresh_price(
    reg: Registry, view: StateView | Overlay, instrument: str, time_ms: int
) -> int | None:
    """The price in force at ``time_ms``: the lower median of the sources' latest prices
    that are fresh then, if at least k distinct sources are; else None (NO_FRESH_PRICE)."""
    terms = reg.genesis.margin
    oldest = time_ms - terms.price_age_max_ms
    prices = sorted(
        r.price
        for r in price_records(view, instrument)
        if r.source in terms.sources and oldest <= r.as_of_ms <= time_ms
    )
    if not prices or len(prices) < terms.threshold:
        return None
    return prices[(len(prices) - 1) // 2]
