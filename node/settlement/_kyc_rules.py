"""The KYC and AML rules as data (issue 15 items 4 and 5; docs/ledger.md "KYC tiers and AML").

``ComplianceRules`` is three small tables: the minimum KYC tier to receive each listed
instrument, the per-trade and per-rolling-day limits of each (tier, cash token), and the
per-cash-token amount above which a compliance co-signature is needed. Genesis carries
the initial rules; a governance transaction may replace them with a state record
(``_compliance.set_rules``). Both use the canonical encoding below, in which every table
is sorted by its key with no repeats, so equal rules have equal bytes.

Amounts are minor units of the named cash token. A table row that is absent means no
rule: an instrument with no minimum tier may be held by anyone who may hold at all, a
(tier, cash) with no limit row is unlimited, a cash token with no threshold never needs
a co-signature.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from node.config import COMPLIANCE_RULES_MAX, U64_MAX
from node.settlement._codec import DecodeError, Reader, Writer, check_id

__all__ = ["KYC_TIER_MAX", "KYC_TIER_MIN", "ComplianceRules", "TierLimit", "check_rules"]

KYC_TIER_MIN = 1  # tier 0 may hold nothing at all (Participant.can_hold)
KYC_TIER_MAX = 3  # tiers 1-3: identity, address, source of funds
_RULES_VERSION = 1


@dataclass(frozen=True, slots=True)
class TierLimit:
    """Limits of one tier on one cash token: ``trade_max`` per transaction and ``day_max``
    per rolling day (``U64_MAX``: no daily limit, and no volume is recorded)."""

    tier: int
    cash: str
    trade_max: int
    day_max: int = U64_MAX


@dataclass(frozen=True)
class ComplianceRules:
    """The rules in force; build with ``ComplianceRules.of`` to get the canonical order."""

    min_tier: tuple[tuple[str, int], ...] = ()  # (instrument, tier), by instrument
    limits: tuple[TierLimit, ...] = ()  # by (tier, cash)
    cosign_above: tuple[tuple[str, int], ...] = ()  # (cash token, threshold), by token

    def __post_init__(self) -> None:
        _check_shape(self)

    @classmethod
    def of(
        cls,
        min_tier: Mapping[str, int] | None = None,
        limits: tuple[TierLimit, ...] | list[TierLimit] = (),
        cosign_above: Mapping[str, int] | None = None,
    ) -> ComplianceRules:
        """Rules from unordered tables; raises ValueError for a bad or repeated row."""
        return cls(
            tuple(sorted((min_tier or {}).items())),
            tuple(sorted(limits, key=lambda r: (r.tier, r.cash))),
            tuple(sorted((cosign_above or {}).items())),
        )

    @cached_property
    def _tiers(self) -> dict[str, int]:
        return dict(self.min_tier)

    @cached_property
    def _limits(self) -> dict[tuple[int, str], TierLimit]:
        return {(r.tier, r.cash): r for r in self.limits}

    @cached_property
    def _thresholds(self) -> dict[str, int]:
        return dict(self.cosign_above)

    def tier_to_hold(self, instrument: str) -> int:
        """The lowest tier that may receive ``instrument`` (``KYC_TIER_MIN`` if no row)."""
        return self._tiers.get(instrument, KYC_TIER_MIN)

    def limit(self, tier: int, cash: str) -> TierLimit | None:
        return self._limits.get((tier, cash))

    def threshold(self, cash: str) -> int | None:
        """Amounts of ``cash`` above this need a co-signature; None: never."""
        return self._thresholds.get(cash)

    @cached_property
    def has_daily(self) -> bool:
        """Whether any tier has a daily limit: else no volume is ever recorded."""
        return any(r.day_max < U64_MAX for r in self.limits)

    @property
    def is_default(self) -> bool:
        return not (self.min_tier or self.limits or self.cosign_above)

    def encode(self) -> bytes:
        w = Writer().u8(_RULES_VERSION).u16(len(self.min_tier))
        for instrument, tier in self.min_tier:
            w.ident(instrument).u8(tier)
        w.u16(len(self.limits))
        for r in self.limits:
            w.u8(r.tier).ident(r.cash).u64(r.trade_max).u64(r.day_max)
        w.u16(len(self.cosign_above))
        for cash, threshold in self.cosign_above:
            w.ident(cash).u64(threshold)
        return w.finish()

    @classmethod
    def decode(cls, raw: bytes) -> ComplianceRules:
        """Parse canonical rules; DecodeError for anything else (unsorted tables too)."""
        r = Reader(raw)
        if r.u8() != _RULES_VERSION:
            raise DecodeError("unsupported compliance rules version")
        n = r.limit(r.u16(), COMPLIANCE_RULES_MAX, "minimum-tier rows")
        tiers = tuple((r.ident(), r.u8()) for _ in range(n))
        n = r.limit(r.u16(), COMPLIANCE_RULES_MAX, "tier-limit rows")
        limits = tuple(TierLimit(r.u8(), r.ident(), r.u64(), r.u64()) for _ in range(n))
        n = r.limit(r.u16(), COMPLIANCE_RULES_MAX, "co-sign threshold rows")
        thresholds = tuple((r.ident(), r.u64()) for _ in range(n))
        r.done()
        try:
            return cls(tiers, limits, thresholds)
        except ValueError as e:
            raise DecodeError(f"non-canonical compliance rules: {e}") from e


def _check_shape(rules: ComplianceRules) -> None:
    """Ranges, canonical order and bounds, without reference data (decode runs this)."""
    tables = (rules.min_tier, rules.limits, rules.cosign_above)
    if any(len(t) > COMPLIANCE_RULES_MAX for t in tables):
        raise ValueError(f"a compliance table has more than {COMPLIANCE_RULES_MAX} rows")
    _sorted_unique([i for i, _ in rules.min_tier], "min_tier")
    _sorted_unique([(r.tier, r.cash) for r in rules.limits], "limits")
    _sorted_unique([c for c, _ in rules.cosign_above], "cosign_above")
    for instrument, tier in rules.min_tier:
        check_id(instrument, "min_tier instrument")
        _tier(tier, f"min_tier of {instrument}")
    for r in rules.limits:
        check_id(r.cash, "limit cash token")
        _tier(r.tier, f"limit of tier {r.tier} on {r.cash}")
        if not 0 < r.trade_max <= r.day_max <= U64_MAX:
            raise ValueError(f"limit of tier {r.tier} on {r.cash}: need 0 < trade_max <= day_max")
    for cash, threshold in rules.cosign_above:
        check_id(cash, "cosign_above cash token")
        if not 0 <= threshold < U64_MAX:
            raise ValueError(f"cosign_above {cash}: threshold must be 0..2**64-2")


def _sorted_unique(keys: list[object], what: str) -> None:
    if any(not a < b for a, b in itertools.pairwise(keys)):  # type: ignore[operator]
        raise ValueError(f"{what}: rows must be sorted by key with no repeats")


def _tier(tier: int, what: str) -> None:
    if not KYC_TIER_MIN <= tier <= KYC_TIER_MAX:
        raise ValueError(f"{what}: tier must be {KYC_TIER_MIN}..{KYC_TIER_MAX}")


def check_rules(rules: ComplianceRules, kinds: Mapping[str, str]) -> None:
    """Raise ValueError unless every row names a known instrument (``kinds``: instrument id
    -> its kind, "cash" for a cash token) and limits and thresholds name cash tokens."""
    for instrument, _ in rules.min_tier:
        if instrument not in kinds:
            raise ValueError(f"min_tier: unknown instrument {instrument!r}")
    for cash in [r.cash for r in rules.limits] + [c for c, _ in rules.cosign_above]:
        if kinds.get(cash) != "cash":
            raise ValueError(f"limits and cosign_above name cash tokens; {cash!r} is not one")
