"""Theory of operation: the bond lifecycle (issue 14 items 1-3; docs/ledger.md "Lifecycle").

Coupons, fund distributions, maturity and redemption, as pure functions of reg terms,
the block time and the state. Each transaction kind below is one atomic state transition:
every amount is computed and every bound checked before the first balance moves, so a
transaction either pays every holder or changes nothing (there is no callback, so nothing
can re-enter a redemption half way).

- **Holders of record.** ``CouponPay`` and ``Distribute`` pay the balances as of the
  previous block (``Overlay.view``), not this block's overlay: a transfer earlier in the
  same block does not change who is paid. Holders are taken in participant id order.
- **Once per period / per holding.** A paid coupon period, a paid distribution and a
  redeemed holding each leave a state record (keys below); a second attempt is
  ``ALREADY_PAID``, whatever its nonce.
- **Final period.** A bond's final coupon is paid only with the principal, by ``Redeem`` /
  ``RedeemAll`` (``CouponPay`` of the final period is ``NO_SUCH_PERIOD``), so each holding
  receives it exactly once. A redemption waits until every earlier period is paid
  (``COUPON_OUTSTANDING``): a coupon paid after a holder redeemed would miss them.
- **Arithmetic.** Exact Python integers; a coupon is ``units x unit_face x coupon_bp //
  (10_000 x coupon_freq)`` per holder (floor; the remainder stays with the agent); a
  redemption pays ``units x unit_face`` plus that coupon for the final period; a
  distribution splits ``total`` by the largest-remainder rule (ties by participant id), so
  the parts sum to ``total`` exactly. Any amount, the total, or a resulting balance over
  2**64 - 1 is ``OVERFLOW``, never wrapped.
- **The agent holding units.** Its own share is computed (and burned, for a redemption)
  but no cash moves from the agent to itself.

Record keys: a ``RecordKind`` byte, then ids NUL-padded to ``ID_BYTES_MAX`` bytes (ids
never contain NUL, so keys sort as their ids do) and periods as u32 big-endian.

- ``COUPON_PAID | bond | u32 period`` and ``DISTRIBUTED | fund | u32 period`` -> ``u64
  total paid | u32 holders paid``; at most ``SCHEDULE_PERIODS_MAX`` per instrument.
- ``REDEEMED | bond | holder`` -> ``u64 units burned | u64 cash paid``; at most one per
  participant per bond.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.config import ID_BYTES_MAX, U64_MAX
from node.settlement import _lock
from node.settlement._codec import Reader, Writer
from node.settlement._freeze import any_frozen
from node.settlement._model import Instrument, InstrumentKind
from node.settlement._registry import Registry
from node.settlement._result import ResultCode
from node.settlement._state import Overlay, RecordKind, StateView
from node.settlement._tx import CouponPay, Distribute, Redeem, RedeemAll

__all__ = [
    "InstrumentState",
    "Paid",
    "Redeemed",
    "coupon_amount",
    "coupon_key",
    "coupon_pay",
    "distribute",
    "distribution_key",
    "distribution_parts",
    "instrument_state",
    "matured",
    "redeem",
    "redeem_all",
    "redeemed_key",
    "redemption_amount",
]

_BP_PER_UNIT = 10_000


# --- record keys and values ------------------------------------------------------------


def _pad(ident: str) -> bytes:
    return ident.encode("ascii").ljust(ID_BYTES_MAX, b"\0")


def coupon_key(bond: str, period: int) -> bytes:
    return bytes([RecordKind.COUPON_PAID]) + _pad(bond) + period.to_bytes(4, "big")


def distribution_key(fund: str, period: int) -> bytes:
    return bytes([RecordKind.DISTRIBUTED]) + _pad(fund) + period.to_bytes(4, "big")


def redeemed_key(bond: str, holder: str) -> bytes:
    return bytes([RecordKind.REDEEMED]) + _pad(bond) + _pad(holder)


@dataclass(frozen=True, slots=True)
class Paid:
    """A paid coupon period or distribution: the cash paid in total and to how many."""

    total: int
    holders: int

    def encode(self) -> bytes:
        return Writer().u64(self.total).u32(self.holders).finish()

    @classmethod
    def decode(cls, raw: bytes) -> Paid:
        r = Reader(raw)
        paid = cls(r.u64(), r.u32())
        r.done()
        return paid


@dataclass(frozen=True, slots=True)
class Redeemed:
    """A redeemed holding: the units burned and the cash paid for them."""

    units: int
    paid: int

    def encode(self) -> bytes:
        return Writer().u64(self.units).u64(self.paid).finish()

    @classmethod
    def decode(cls, raw: bytes) -> Redeemed:
        r = Reader(raw)
        done = cls(r.u64(), r.u64())
        r.done()
        return done


# --- terms -------------------------------------------------------------------------------


def matured(reg: Registry, instrument: str, time_ms: int) -> bool:
    """Whether ``instrument`` is a bond whose maturity date the block time has reached."""
    maturity = reg.maturity_ms(instrument)
    return maturity is not None and time_ms >= maturity


def coupon_amount(inst: Instrument, units: int) -> int:
    """One period's coupon on ``units`` (floor); may exceed 2**64 - 1 (the caller checks)."""
    if inst.coupon_freq == 0:
        return 0
    return units * inst.unit_face_minor * inst.coupon_bp // (_BP_PER_UNIT * inst.coupon_freq)


def redemption_amount(reg: Registry, inst: Instrument, units: int) -> int:
    """Face value of ``units`` plus the final period's coupon on them, if the bond has one."""
    final_coupon = coupon_amount(inst, units) if reg.schedules[inst.id] else 0
    return units * inst.unit_face_minor + final_coupon


def distribution_parts(total: int, holdings: list[tuple[str, int]]) -> list[int]:
    """``total`` split pro rata over ``holdings`` (id, units > 0) by the largest-remainder
    rule: each gets the floor of its share, then the leftover units of cash go one each
    to the largest fractional remainders, ties to the smaller participant id."""
    units = sum(u for _, u in holdings)
    parts = [total * u // units for _, u in holdings]
    leftover = total - sum(parts)
    by_remainder = sorted(
        range(len(holdings)), key=lambda i: (-(total * holdings[i][1] % units), holdings[i][0])
    )
    for i in by_remainder[:leftover]:
        parts[i] += 1
    return parts


def _period_code(
    reg: Registry, o: Overlay, key: bytes, inst: Instrument, *, period: int, time_ms: int
) -> ResultCode:
    """NO_SUCH_PERIOD, NOT_DUE or ALREADY_PAID for a coupon or distribution period, or OK.
    A bond's final period is not payable here (redemption pays it)."""
    dates = reg.schedules[inst.id]
    last = len(dates) - 1 if inst.kind is InstrumentKind.BOND else len(dates)
    if not 1 <= period <= last:
        return ResultCode.NO_SUCH_PERIOD
    if time_ms < dates[period - 1]:
        return ResultCode.NOT_DUE
    if o.record(key) is not None:
        return ResultCode.ALREADY_PAID
    return ResultCode.OK


def _holdings(view: StateView | Overlay, reg: Registry, inst: str) -> list[tuple[str, int]]:
    """Every (participant, units > 0) of ``inst`` in participant id order."""
    found = ((p, view.balance(p, inst)) for p in reg.participant_ids)
    return [(p, units) for p, units in found if units > 0]


def _pay(o: Overlay, cash: str, agent: str, payments: list[tuple[str, int]]) -> ResultCode:
    """Pay every (holder, amount) from ``agent`` in ``cash``, all or none: OVERFLOW for an
    amount or total over 2**64 - 1, INSUFFICIENT_CASH when the agent is short, OVERFLOW
    for a holder's balance; checked for every holder before any cash moves."""
    owed = [(h, a) for h, a in payments if h != agent and a > 0]
    total = sum(a for _, a in owed)
    if total > U64_MAX or any(a > U64_MAX for _, a in payments):
        return ResultCode.OVERFLOW
    short = _lock.debit_code(o, agent, cash, total, ResultCode.INSUFFICIENT_CASH)
    if short is not None:
        return short
    if any(o.balance(h, cash) + a > U64_MAX for h, a in owed):
        return ResultCode.OVERFLOW
    for holder, amount in owed:
        o.move(cash, agent, holder, amount)
    return ResultCode.OK


def _paid_record(payments: list[tuple[str, int]]) -> bytes:
    return Paid(sum(a for _, a in payments), sum(1 for _, a in payments if a > 0)).encode()


# --- transactions ----------------------------------------------------------------------


def _payer_code(reg: Registry, iid: str, kind: InstrumentKind, agent: str) -> ResultCode:
    inst = reg.instrument_by_id.get(iid)
    if inst is None:
        return ResultCode.UNKNOWN_INSTRUMENT
    if inst.kind is not kind:
        return ResultCode.WRONG_INSTRUMENT_KIND
    if agent != inst.agent:
        return ResultCode.UNAUTHORIZED
    return ResultCode.OK


def coupon_pay(reg: Registry, o: Overlay, tx: CouponPay, time_ms: int) -> ResultCode:
    code = _payer_code(reg, tx.bond, InstrumentKind.BOND, tx.agent)
    if code is not ResultCode.OK:
        return code
    inst = reg.instrument_by_id[tx.bond]
    key = coupon_key(tx.bond, tx.period)
    code = _period_code(reg, o, key, inst, period=tx.period, time_ms=time_ms)
    if code is not ResultCode.OK:
        return code
    holders = _holdings(o.view, reg, tx.bond)  # of record: the previous block
    payments = [(h, coupon_amount(inst, units)) for h, units in holders]
    if sum(a for _, a in payments) > U64_MAX:  # the paid record's u64 counts the agent's share
        return ResultCode.OVERFLOW
    code = _pay(o, inst.payment_cash, tx.agent, payments)
    if code is ResultCode.OK:
        o.put_record(key, _paid_record(payments))
    return code


def distribute(reg: Registry, o: Overlay, tx: Distribute, time_ms: int) -> ResultCode:
    if tx.fund not in reg.instrument_by_id:
        return ResultCode.UNKNOWN_INSTRUMENT
    if tx.total == 0:
        return ResultCode.INVALID_AMOUNT
    code = _payer_code(reg, tx.fund, InstrumentKind.FUND, tx.agent)
    if code is not ResultCode.OK:
        return code
    inst = reg.instrument_by_id[tx.fund]
    key = distribution_key(tx.fund, tx.period)
    code = _period_code(reg, o, key, inst, period=tx.period, time_ms=time_ms)
    if code is not ResultCode.OK:
        return code
    holders = _holdings(o.view, reg, tx.fund)
    if not holders:
        return ResultCode.INSUFFICIENT_SECURITIES  # nobody to distribute to
    parts = distribution_parts(tx.total, holders)
    payments = [(h, part) for (h, _), part in zip(holders, parts, strict=True)]
    code = _pay(o, inst.payment_cash, tx.agent, payments)
    if code is ResultCode.OK:
        o.put_record(key, _paid_record(payments))
    return code


def _redeemable(reg: Registry, o: Overlay, inst: Instrument, time_ms: int) -> ResultCode:
    """NOT_DUE before maturity, COUPON_OUTSTANDING while an earlier period is unpaid."""
    if not matured(reg, inst.id, time_ms):
        return ResultCode.NOT_DUE
    periods = len(reg.schedules[inst.id])
    # Latest first: an agent pays in period order, so an unpaid period is found at once.
    if any(o.record(coupon_key(inst.id, k)) is None for k in range(periods - 1, 0, -1)):
        return ResultCode.COUPON_OUTSTANDING
    return ResultCode.OK


def _burn_and_pay(
    reg: Registry, o: Overlay, inst: Instrument, holdings: list[tuple[str, int]]
) -> ResultCode:
    """Redeem every (holder, units): pay, burn, record; all or none."""
    payments = [(h, redemption_amount(reg, inst, units)) for h, units in holdings]
    code = _pay(o, inst.payment_cash, inst.agent, payments)
    if code is not ResultCode.OK:
        return code
    for (holder, units), (_, paid) in zip(holdings, payments, strict=True):
        o.adjust_supply(inst.id, holder, -units)
        o.put_record(redeemed_key(inst.id, holder), Redeemed(units, paid).encode())
    return ResultCode.OK


def redeem(reg: Registry, o: Overlay, tx: Redeem, time_ms: int) -> ResultCode:
    holder = reg.participant_by_id.get(tx.holder)
    if holder is None:
        return ResultCode.UNKNOWN_ACCOUNT
    inst = reg.instrument_by_id.get(tx.bond)
    if inst is None:
        return ResultCode.UNKNOWN_INSTRUMENT
    if inst.kind is not InstrumentKind.BOND:
        return ResultCode.WRONG_INSTRUMENT_KIND
    if not holder.can_hold():
        return ResultCode.UNAUTHORIZED
    if not matured(reg, inst.id, time_ms):
        return ResultCode.NOT_DUE
    # The two point reads before the periods' (up to SCHEDULE_PERIODS_MAX): a redemption
    # refused for them must not cost a read of every period (anybody may send one). A
    # redeemed holding had every period paid (and paid periods stay paid), so ALREADY_PAID
    # first changes no code; a holder without units is INSUFFICIENT_SECURITIES whatever
    # is outstanding.
    if o.record(redeemed_key(tx.bond, tx.holder)) is not None:
        return ResultCode.ALREADY_PAID
    units = o.balance(tx.holder, tx.bond)
    if units == 0:
        return ResultCode.INSUFFICIENT_SECURITIES
    code = _redeemable(reg, o, inst, time_ms)
    if code is not ResultCode.OK:
        return code
    if _lock.locked(o, tx.holder, tx.bond):
        return ResultCode.LOCKED  # a redemption burns the whole holding (docs/ledger.md)
    return _burn_and_pay(reg, o, inst, [(tx.holder, units)])


def redeem_all(reg: Registry, o: Overlay, tx: RedeemAll, time_ms: int) -> ResultCode:
    code = _payer_code(reg, tx.bond, InstrumentKind.BOND, tx.agent)
    if code is not ResultCode.OK:
        return code
    inst = reg.instrument_by_id[tx.bond]
    code = _redeemable(reg, o, inst, time_ms)
    if code is not ResultCode.OK:
        return code
    holdings = _holdings(o, reg, tx.bond)  # what they hold now: all of it is burned
    # A frozen holding is skipped: it stays, frozen, to be redeemed after the unfreeze.
    holdings = [(h, u) for h, u in holdings if not any_frozen(o, (h, tx.bond))]
    # lock: so is one with locked units, to be redeemed after the release or the claim.
    holdings = [(h, u) for h, u in holdings if not _lock.locked(o, h, tx.bond)]
    if not holdings:
        return ResultCode.INSUFFICIENT_SECURITIES  # every holding already redeemed
    return _burn_and_pay(reg, o, inst, holdings)


# --- reading (the node's GetInstrument, `ledger holders` / `ledger schedule`) ------------


@dataclass(frozen=True, slots=True)
class InstrumentState:
    """A bond's or fund's holders (id order), its paid periods and redeemed holdings."""

    holdings: tuple[tuple[str, int], ...]
    paid: dict[int, Paid]
    redeemed: dict[str, Redeemed]


def instrument_state(view: StateView, inst: Instrument) -> InstrumentState:
    """What ``view`` holds about ``inst``: at most PARTICIPANTS_MAX balance reads and two
    prefix scans, bounded by SCHEDULE_PERIODS_MAX and PARTICIPANTS_MAX records."""
    reg = Registry.of(view)
    kind = RecordKind.COUPON_PAID if inst.kind is InstrumentKind.BOND else RecordKind.DISTRIBUTED
    paid = {
        int.from_bytes(key[-4:], "big"): Paid.decode(value)
        for key, value in view.records(bytes([kind]) + _pad(inst.id))
    }
    redeemed = {
        key[1 + ID_BYTES_MAX :].rstrip(b"\0").decode("ascii"): Redeemed.decode(value)
        for key, value in view.records(bytes([RecordKind.REDEEMED]) + _pad(inst.id))
    }
    return InstrumentState(tuple(_holdings(view, reg, inst.id)), paid, redeemed)
