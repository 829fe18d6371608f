"""Theory of operation: KYC tier rules and the AML large-value rule (issue 15 items 4-5;
docs/ledger.md "KYC tiers and AML").

The rules in force (``rules_in_force``) are genesis's ``compliance`` rules unless a
``KYC_RULES`` state record replaces them (``set_rules``, written by governance). A
transaction that moves assets to a holder passes, right after ``FROZEN``, in order:

1. ``COSIGN_REQUIRED``: a named co-signer must be a compliance participant who is not a
   party; and a cash amount above the token's threshold must be co-signed (transfers of
   a cash token, DvPs and pending DvPs on their cash leg; mints carry no co-signer and
   have no threshold: the issuer is the one creating the money).
2. ``TIER_TOO_LOW``: every party that *receives* an instrument must have at least the
   instrument's minimum tier. Senders are not checked: a holder whose tier was lowered
   can still sell or transfer out.
3. ``TRADE_LIMIT``: the cash amount must be within each limited party's per-trade limit.
4. ``DAILY_LIMIT``: each limited party's volume in that cash token over the rolling day,
   plus the amount, must be within its daily limit.

**Value** is the cash moved, in minor units of that cash token: a DvP's cash leg, a
transfer or mint *of a cash token*. It counts for the *limited* parties of the move,
payer and payee alike: those who signed it (a DvP's, a pledge's, a repo's both parties)
and a mint's recipient (the issuer mints what the holder paid in off the ledger). A
transfer's receiver signs nothing and is not limited by it (ADR 0027): anyone could
otherwise fill a party's rolling day by paying it, stop its trading for a day and have it
recorded as the defaulter of a trade its day then had no room for (session 28's review).
A bond or fund share moved free of payment has no price on the ledger and so no value: it
is checked for tiers only.

**Rolling day**: block time in hourly buckets of ``KYC_BUCKET_MS``; the window at block
time ``t`` is the ``KYC_WINDOW_HOURS`` buckets ending with ``t``'s own (between 23 and 24
hours of history). Volume is recorded only after a move succeeds, and only for a party
whose (tier, token) has a daily limit, so a refused transaction writes nothing. A daily
limit introduced later counts from then on.

Lifecycle payments (coupons, distributions, redemptions) are exempt and not counted:
the holder is owed them by contract, as with freezes. A pledge (``Lock``) is checked and
counted when it is made, as the move its claim would make; the claim then skips the
limits (``check(..., limits=False)``) and counts nothing more (ADR 0023). A pending DvP
is checked in full at its first attempt; recycling settles at most the lots that keep
both parties within their daily limits (and records them), so a daily total never passes
its limit.

Records (a ``RecordKind`` byte, then ids NUL-padded to ``ID_BYTES_MAX``):

- ``KYC_RULES`` (no fields) -> ``ComplianceRules.encode()``.
- ``KYC_VOLUME | account | cash`` -> ``u8 n | n x (u64 hour, u64 total)``, hours
  ascending, only those in the window at the last write (at most ``KYC_WINDOW_HOURS``).
"""

from __future__ import annotations

from functools import lru_cache

from node.config import ID_BYTES_MAX, KYC_BUCKET_MS, KYC_WINDOW_HOURS, U64_MAX
from node.invariant import require
from node.settlement._codec import Reader, Writer
from node.settlement._kyc_rules import ComplianceRules
from node.settlement._model import InstrumentKind, Role
from node.settlement._registry import Registry
from node.settlement._result import ResultCode
from node.settlement._state import Overlay, RecordKind, StateView

__all__ = [
    "Check",
    "check",
    "cosigner_ok",
    "daily_room",
    "day_total",
    "note_volume",
    "rules_in_force",
    "set_rules",
    "terms_code",
    "value_of",
]

_RULES_KEY = bytes([RecordKind.KYC_RULES])
_VOLUME = bytes([RecordKind.KYC_VOLUME])


# --- reference data: read through the registry (ADR 0016) -------------------------------


def _tier(reg: Registry, account: str) -> int:
    return reg.participant_by_id[account].kyc_tier


def _is_cash(reg: Registry, instrument: str) -> bool:
    inst = reg.instrument_by_id.get(instrument)
    return inst is not None and inst.kind is InstrumentKind.CASH


def cosigner_ok(reg: Registry, cosigner: str, parties: tuple[str, ...]) -> bool:
    """A valid co-signer: a compliance participant who is not a party to the move."""
    party = reg.participant_by_id.get(cosigner)
    return party is not None and Role.COMPLIANCE in party.roles and cosigner not in parties


# --- the rules in force ------------------------------------------------------------------


@lru_cache(maxsize=8)
def _decoded(raw: bytes) -> ComplianceRules:
    """Rules records are decoded once per distinct value, not once per transaction."""
    return ComplianceRules.decode(raw)


def rules_in_force(reg: Registry, view: StateView | Overlay) -> ComplianceRules:
    """Genesis's rules, unless governance has written a rules record since."""
    raw = view.record(_RULES_KEY)
    return reg.genesis.compliance if raw is None else _decoded(raw)


def set_rules(o: Overlay, rules: ComplianceRules) -> None:
    """Put ``rules`` in force from the next transaction on. The caller (a governance
    transaction) has checked them against reference data (``check_rules``)."""
    o.put_record(_RULES_KEY, rules.encode())


# --- checks ------------------------------------------------------------------------------


class Check:
    """One move as the rules see it: who receives which instrument, the parties (none of
    whom may co-sign it), the cash token and amount that count as value (``cash`` empty:
    none), the co-signer (``None``: this kind carries none), and the parties whose limits
    it is checked against and counted in (``limited``; default: every party)."""

    __slots__ = ("amount", "cash", "cosigner", "limited", "parties", "receives")

    def __init__(
        self,
        receives: tuple[tuple[str, str], ...],
        parties: tuple[str, ...],
        cash: str,
        amount: int,
        cosigner: str | None,
        *,
        limited: tuple[str, ...] | None = None,
    ) -> None:
        self.receives, self.parties = receives, parties
        self.cash, self.amount, self.cosigner = cash, amount, cosigner
        self.limited = parties if limited is None else limited


def value_of(reg: Registry, instrument: str, amount: int) -> tuple[str, int]:
    """(cash token, amount) a move of ``amount`` of ``instrument`` counts as: only a cash
    token has a value on the ledger."""
    return (instrument, amount) if _is_cash(reg, instrument) else ("", 0)


def check(
    reg: Registry,
    o: Overlay,
    rules: ComplianceRules,
    c: Check,
    time_ms: int,
    *,
    limits: bool = True,
) -> ResultCode | None:
    """The first of COSIGN_REQUIRED, TIER_TOO_LOW, TRADE_LIMIT, DAILY_LIMIT that ``c``
    breaks under ``rules`` (``rules_in_force``, read once per transaction); None when it
    passes. Reads only; writes nothing. ``limits`` False: the move was counted against
    the parties' limits when it was pledged (a lock's claim, ADR 0023)."""
    if rules.is_default and not c.cosigner:
        return None  # a chain without rules pays one record read per transaction
    code = _cosign(reg, rules, c)
    if code is None and any(_tier(reg, a) < rules.tier_to_hold(i) for a, i in c.receives):
        code = ResultCode.TIER_TOO_LOW
    if code is None and c.cash and limits:
        code = _limits(reg, o, rules, c, time_ms)
    return code


def _cosign(reg: Registry, rules: ComplianceRules, c: Check) -> ResultCode | None:
    if c.cosigner is None:
        return None
    if c.cosigner and not cosigner_ok(reg, c.cosigner, c.parties):
        return ResultCode.COSIGN_REQUIRED
    threshold = rules.threshold(c.cash) if c.cash else None
    if threshold is not None and c.amount > threshold and not c.cosigner:
        return ResultCode.COSIGN_REQUIRED
    return None


def terms_code(reg: Registry, rules: ComplianceRules, c: Check) -> ResultCode | None:
    """COSIGN_REQUIRED or TRADE_LIMIT when the move's own terms (its amount, its
    co-signer) break ``rules``, whatever the rolling day holds; None when they pass. What
    recycling asks of an instruction recorded under earlier rules: the rules in force at
    settlement apply, and no wait can cure these (docs/ledger.md "Pending settlement")."""
    code = _cosign(reg, rules, c)
    if code is None and c.cash and _over_trade_max(reg, rules, c):
        code = ResultCode.TRADE_LIMIT
    return code


def _over_trade_max(reg: Registry, rules: ComplianceRules, c: Check) -> bool:
    limits = (rules.limit(_tier(reg, p), c.cash) for p in c.limited)
    return any(lim is not None and c.amount > lim.trade_max for lim in limits)


def _limits(
    reg: Registry, o: Overlay, rules: ComplianceRules, c: Check, time_ms: int
) -> ResultCode | None:
    if not rules.limits:
        return None
    if _over_trade_max(reg, rules, c):
        return ResultCode.TRADE_LIMIT
    limits = [rules.limit(_tier(reg, p), c.cash) for p in c.limited]
    for party, lim in zip(c.limited, limits, strict=True):
        if lim is None or lim.day_max == U64_MAX:
            continue
        if day_total(o, party, c.cash, time_ms) + c.amount > lim.day_max:
            return ResultCode.DAILY_LIMIT
    return None


# --- the rolling day ---------------------------------------------------------------------


def _pad(ident: str) -> bytes:
    return ident.encode("ascii").ljust(ID_BYTES_MAX, b"\0")


def _volume_key(account: str, cash: str) -> bytes:
    return _VOLUME + _pad(account) + _pad(cash)


def _buckets(o: StateView | Overlay, account: str, cash: str, hour: int) -> list[tuple[int, int]]:
    """The (hour, total) buckets of ``account`` in ``cash`` inside the window ending at
    ``hour``, oldest first."""
    raw = o.record(_volume_key(account, cash))
    if raw is None:
        return []
    r = Reader(raw)
    rows = [(r.u64(), r.u64()) for _ in range(r.u8())]
    r.done()
    return [(h, t) for h, t in rows if h > hour - KYC_WINDOW_HOURS]


def day_total(o: StateView | Overlay, account: str, cash: str, time_ms: int) -> int:
    """``account``'s recorded volume in ``cash`` over the rolling day ending at ``time_ms``."""
    return sum(t for _, t in _buckets(o, account, cash, time_ms // KYC_BUCKET_MS))


def _daily_limit(reg: Registry, rules: ComplianceRules, party: str, cash: str) -> int | None:
    lim = rules.limit(_tier(reg, party), cash)
    return None if lim is None or lim.day_max == U64_MAX else lim.day_max


def note_volume(
    reg: Registry, o: Overlay, rules: ComplianceRules, c: Check, *, time_ms: int
) -> None:
    """Add ``c``'s successful move (its cash amount) to each limited party with a daily
    limit."""
    cash, amount = c.cash, c.amount
    if not cash or amount == 0 or not rules.has_daily:
        return
    hour = time_ms // KYC_BUCKET_MS
    for party in c.limited:
        day_max = _daily_limit(reg, rules, party, cash)
        if day_max is None:
            continue
        rows = _buckets(o, party, cash, hour)
        total = sum(t for _, t in rows) + amount
        require(total <= day_max, f"daily limit of {party} on {cash} passed unchecked")
        if rows and rows[-1][0] == hour:
            rows[-1] = (hour, rows[-1][1] + amount)
        else:
            rows.append((hour, amount))
        w = Writer().u8(len(rows))
        for h, t in rows:
            w.u64(h).u64(t)
        o.put_record(_volume_key(party, cash), w.finish())


def daily_room(
    reg: Registry,
    o: Overlay,
    rules: ComplianceRules,
    parties: tuple[str, ...],
    cash: str,
    *,
    time_ms: int,
) -> int:
    """The most ``cash`` every party can still move in the rolling day (``U64_MAX``: no
    daily limit binds): what bounds a pending instruction's recycled settlement."""
    room = U64_MAX
    if not rules.has_daily:
        return room
    for party in parties:
        day_max = _daily_limit(reg, rules, party, cash)
        if day_max is not None:
            room = min(room, max(0, day_max - day_total(o, party, cash, time_ms)))
    return room
