"""The margin terms genesis fixes (issue 18 item 3; docs/ledger.md "Prices, margin and
substitution"): who may attest prices, how many must agree, how old a price may be, and
the haircut schedule that also says which instruments are eligible collateral.

Data and validation only (no reference to the registry or the state), so the genesis
model can hold it without an import cycle; ``_price.py`` and ``_margin.py`` use it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from node.config import (
    ELIGIBLE_COLLATERAL_MAX,
    HAIRCUT_BP_MAX,
    PRICE_AGE_LIMIT_MS,
    PRICE_SOURCES_MAX,
)
from node.settlement._codec import Writer, check_id

__all__ = ["Haircut", "MarginTerms", "check_margin"]


@dataclass(frozen=True, slots=True)
class Haircut:
    """One eligible collateral instrument: the cash token its price is quoted in (minor
    units per PRICE_UNITS units) and the haircut, in basis points, taken off its value."""

    instrument: str
    cash: str
    haircut_bp: int


@dataclass(frozen=True)
class MarginTerms:
    """``sources``: participant ids whose signed prices count (sorted, unique);
    ``threshold``: how many distinct fresh sources a price needs (k); ``price_age_max_ms``:
    a price older than this at block time is stale; ``haircuts``: by instrument. The
    default (all empty) is a chain without margin: no price is accepted, no instrument
    is eligible."""

    sources: tuple[str, ...] = ()
    threshold: int = 0
    price_age_max_ms: int = 0
    haircuts: tuple[Haircut, ...] = ()

    @property
    def is_default(self) -> bool:
        return not (self.sources or self.threshold or self.price_age_max_ms or self.haircuts)

    @cached_property
    def haircut_by_instrument(self) -> dict[str, Haircut]:
        return {h.instrument: h for h in self.haircuts}

    def encode(self, w: Writer) -> Writer:
        """The genesis section's fields after its name (canonical: tables sorted)."""
        w.u8(len(self.sources))
        for s in self.sources:
            w.ident(s)
        w.u8(self.threshold).u64(self.price_age_max_ms).u16(len(self.haircuts))
        for h in self.haircuts:
            w.ident(h.instrument).ident(h.cash).u16(h.haircut_bp)
        return w


def check_margin(
    terms: MarginTerms, participants: frozenset[str], kinds: Mapping[str, tuple[str, str]]
) -> None:
    """ValueError naming what is wrong. ``kinds``: instrument id -> (kind, currency).
    Sources are participants, 1 <= k <= their number, the age within PRICE_AGE_LIMIT_MS,
    each row a bond quoted in a cash token of its currency, haircut below 100%."""
    if terms.is_default:
        return
    _sorted_unique(list(terms.sources), "sources", PRICE_SOURCES_MAX)
    for s in terms.sources:
        if s not in participants:
            raise ValueError(f"price source {s!r} is not a participant")
    if not 1 <= terms.threshold <= len(terms.sources):
        raise ValueError(f"threshold must be 1..{len(terms.sources)} (the number of sources)")
    if not 1 <= terms.price_age_max_ms <= PRICE_AGE_LIMIT_MS:
        raise ValueError(f"price_age_max_ms must be 1..{PRICE_AGE_LIMIT_MS}")
    _sorted_unique([h.instrument for h in terms.haircuts], "haircuts", ELIGIBLE_COLLATERAL_MAX)
    for h in terms.haircuts:
        _check_row(h, kinds)


def _check_row(h: Haircut, kinds: Mapping[str, tuple[str, str]]) -> None:
    check_id(h.instrument, "haircut instrument")
    bond, cash = kinds.get(h.instrument), kinds.get(h.cash)
    if bond is None or bond[0] != "bond":
        raise ValueError(f"haircut {h.instrument!r}: not a bond of this genesis")
    if cash is None or cash[0] != "cash" or cash[1] != bond[1]:
        raise ValueError(f"haircut {h.instrument!r}: {h.cash!r} is not a {bond[1]} cash token")
    if not 0 <= h.haircut_bp <= HAIRCUT_BP_MAX:
        raise ValueError(f"haircut {h.instrument!r}: haircut_bp must be 0..{HAIRCUT_BP_MAX}")


def _sorted_unique(keys: list[str], what: str, limit: int) -> None:
    if len(keys) > limit:
        raise ValueError(f"{what}: at most {limit}")
    if any(not a < b for a, b in itertools.pairwise(keys)):
        raise ValueError(f"{what}: sorted with no repeats")
