"""Theory of operation: locks and swaps (issue 18 items 1 and 4; docs/ledger.md "Locks
and swaps").

A ``Lock`` pledges ``amount`` units of the holder's holding to a beneficiary until
``until_ms``, signed by both. Nothing moves: the units stay in the holder's balance, so
coupons, distributions and redemption proceeds on them are paid to the holder (the term,
as for any holding), but the holder cannot spend them. Its id is its transaction's id.

**Available balance** is ``balance - locked`` (``available``). Every debit checks it:
transfers, DvPs, swaps, burns, a pending DvP's first attempt and its recycling, the
paying agent's cash in lifecycle payments, and redemption. A debit the balance covers but
the available balance does not is refused ``LOCKED`` (the units are there, pledged: a
short balance is still ``INSUFFICIENT_SECURITIES`` / ``INSUFFICIENT_CASH``). Redemption
burns a whole holding, so it is refused ``LOCKED`` while any unit of it is locked, and
``RedeemAll`` skips such a holding (it is redeemed after the release or the claim). A
lock's until must fall before its bond's maturity, so a lock in force never meets a
matured bond; one that lapsed unreleased blocks redemption only until the holder
releases it, which it may do alone.

A lock ends exactly once, by one of:

- ``ReleaseLock`` by the beneficiary at any time, or by the holder once the block time is
  past until (the pledge has lapsed; before it: ``LOCK_IN_FORCE``);
- ``ClaimLock`` by the beneficiary, while the lock is in force, on a **default event
  recorded on the ledger** for the obligation the lock ``secures`` (a tagged reference,
  kind and id): for ``PENDING_DVP``, the pending DvP failed at its deadline
  (``FAILED_DEADLINE``) with the holder among the parties that failed to deliver (its leg
  short at the deadline, its hold on, or its own daily limit without room for a lot:
  ``_pending`` records it through ``note_default``); for ``REPO`` (the repo id's ASCII
  bytes), the repo DEFAULTED with the holder as its defaulter (``_repo.after_recycle``
  records it). The claim moves the locked units to the beneficiary under the transfer
  rules (freezes, tier, the AML co-signer, overflow) but not the limits: a lock is
  checked and counted against both parties' limits when it is made, as the move its
  claim would make, so a defaulting holder cannot spend its own limits to make the claim
  fail (ADR 0023).

Either kind is checked when the lock is made, by the module that owns the obligation
(``resolve``, dispatched by kind in ``_apply``): it must be live (a pending DvP still
pending; a repo OPEN or CLOSING), else ``NOT_PENDING``, and the lock's two parties must
be the obligation's two parties, either way round, else ``INVALID_LOCK_TERMS``. Every
kind that decodes is supported, so ``UNSUPPORTED_SECURED`` is not returned.

A ``Swap`` exchanges two bonds between two parties, both legs or neither, under the DvP
rules (freezes of all four holdings, tiers to hold, maturity, deadline, available
balances, overflow) with no cash leg.

Records (a ``RecordKind`` byte, then fields; ids NUL-padded to ``ID_BYTES_MAX``):

- ``LOCK | lock id 32`` -> ``id holder | id instrument | u64 amount | id beneficiary |
  u64 until_ms | u8 secured kind | blob secured ref | u64 height | u64 time_ms``.
- ``LOCK_TOTAL | holder | instrument`` -> ``u64``: the units locked in that holding, so
  the available balance is one read; deleted at zero.
- ``LOCK_HOLDER | holder`` -> ``u32``: the holder's locks, at most
  ``LOCKS_PER_HOLDER_MAX``; deleted at zero. ``LOCK_COUNT`` -> ``u32``: all locks, at most
  ``LOCKS_MAX``.
- ``LOCK_SECURED | u8 kind | ref`` -> ``u32``: the locks securing that obligation; only
  an obligation with one gets a default record; deleted at zero.
- ``LOCK_DEFAULT | u8 kind | ref`` -> ``u8 n | n ids``: the parties that defaulted on it;
  deleted with its last lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from node import crypto
from node.config import (
    ID_BYTES_MAX,
    LOCK_DEFAULTERS_MAX,
    LOCKS_MAX,
    LOCKS_PER_HOLDER_MAX,
    SECURED_REF_BYTES_MAX,
    U64_MAX,
)
from node.invariant import require
from node.settlement import _compliance as kyc
from node.settlement._codec import Reader, Writer
from node.settlement._freeze import any_frozen
from node.settlement._model import InstrumentKind
from node.settlement._registry import Registry
from node.settlement._result import ResultCode
from node.settlement._state import Overlay, RecordKind, StateView
from node.settlement._tx import ClaimLock, Lock, ReleaseLock, Secured, SecuredKind, Swap

__all__ = [
    "LockRecord",
    "available",
    "claim",
    "debit_code",
    "defaulters",
    "lock",
    "locked",
    "locks",
    "note_default",
    "release",
    "swap",
    "total_written",
]

_PREFIX = bytes([RecordKind.LOCK])
_COUNT_KEY = bytes([RecordKind.LOCK_COUNT])


def _pad(ident: str) -> bytes:
    return ident.encode("ascii").ljust(ID_BYTES_MAX, b"\0")


def _lock_key(lock_id: bytes) -> bytes:
    return _PREFIX + lock_id


def _total_key(account: str, instrument: str) -> bytes:
    return bytes([RecordKind.LOCK_TOTAL]) + _pad(account) + _pad(instrument)


def _holder_key(holder: str) -> bytes:
    return bytes([RecordKind.LOCK_HOLDER]) + _pad(holder)


def _secured_key(kind: RecordKind, secured: Secured) -> bytes:
    return bytes([kind, secured.kind]) + secured.ref


@dataclass(frozen=True, slots=True)
class LockRecord:
    """One lock in force (or lapsed, not yet released) and where it was created."""

    lock_id: bytes
    holder: str
    instrument: str
    amount: int
    beneficiary: str
    until_ms: int
    secures: Secured
    height: int
    time_ms: int

    def encode(self) -> bytes:
        w = Writer().ident(self.holder).ident(self.instrument).u64(self.amount)
        w.ident(self.beneficiary).u64(self.until_ms).u8(self.secures.kind)
        w.blob(self.secures.ref, SECURED_REF_BYTES_MAX)
        return w.u64(self.height).u64(self.time_ms).finish()

    @classmethod
    def decode(cls, lock_id: bytes, raw: bytes) -> LockRecord:
        r = Reader(raw)
        holder, instrument, amount, beneficiary = r.ident(), r.ident(), r.u64(), r.ident()
        until, kind, ref = r.u64(), SecuredKind(r.u8()), r.blob(SECURED_REF_BYTES_MAX)
        out = cls(
            lock_id, holder, instrument, amount, beneficiary, until, Secured(kind, ref),
            r.u64(), r.u64(),
        )  # fmt: skip
        r.done()
        return out


# --- counters ------------------------------------------------------------------------------


def _u(o: StateView | Overlay, key: bytes, *, wide: bool = False) -> int:
    raw = o.record(key)
    if raw is None:
        return 0
    r = Reader(raw)
    n = r.u64() if wide else r.u32()
    r.done()
    return n


def _put_u(o: Overlay, key: bytes, n: int, bound: int, *, wide: bool = False) -> None:
    """Write counter ``n`` (deleted at zero); outside ``0..bound`` is a bug here."""
    require(0 <= n <= bound, f"lock counter {key[:1].hex()} at {n}, bound {bound}")
    if n == 0:
        o.delete_record(key)
    else:
        o.put_record(key, (Writer().u64(n) if wide else Writer().u32(n)).finish())


def _count_in(o: Overlay, rec: LockRecord, delta: int) -> None:
    """Add ``delta`` (+1 or -1) lock of ``rec`` to every counter it is in."""
    total = _total_key(rec.holder, rec.instrument)
    _put_u(o, total, _u(o, total, wide=True) + delta * rec.amount, U64_MAX, wide=True)
    holder = _holder_key(rec.holder)
    _put_u(o, holder, _u(o, holder) + delta, LOCKS_PER_HOLDER_MAX)
    _put_u(o, _COUNT_KEY, _u(o, _COUNT_KEY) + delta, LOCKS_MAX)
    if rec.secures.kind is not SecuredKind.NONE:
        key = _secured_key(RecordKind.LOCK_SECURED, rec.secures)
        n = _u(o, key) + delta
        _put_u(o, key, n, LOCKS_MAX)
        if n == 0:  # its last lock gone: nobody can claim on the default any more
            o.delete_record(_secured_key(RecordKind.LOCK_DEFAULT, rec.secures))


# --- the available balance -----------------------------------------------------------------


def locked(o: StateView | Overlay, account: str, instrument: str) -> int:
    """Units of ``account``'s ``instrument`` that locks pledge (one read)."""
    return _u(o, _total_key(account, instrument), wide=True)


def available(o: Overlay, account: str, instrument: str) -> int:
    """What ``account`` may spend of ``instrument``: its balance less what is locked."""
    balance, held = o.balance(account, instrument), locked(o, account, instrument)
    require(held <= balance, f"{account} has {held} of {instrument} locked but holds {balance}")
    return balance - held


def debit_code(
    o: Overlay, account: str, instrument: str, amount: int, short: ResultCode
) -> ResultCode | None:
    """``short`` when the balance does not cover ``amount``, ``LOCKED`` when only locked
    units would, None when the available balance does."""
    if o.balance(account, instrument) < amount:
        return short
    if available(o, account, instrument) < amount:
        return ResultCode.LOCKED
    return None


def total_written(o: Overlay, account: str, instrument: str) -> bool:
    """Whether this block locked or unlocked units of that holding (pending recycling
    re-attempts an instruction whose available balance it changed)."""
    return _total_key(account, instrument) in o.records_written


def _shortfall(reg: Registry, instrument: str) -> ResultCode:
    inst = reg.instrument_by_id[instrument]
    return (
        ResultCode.INSUFFICIENT_CASH
        if inst.kind is InstrumentKind.CASH
        else (ResultCode.INSUFFICIENT_SECURITIES)
    )


# --- defaults ------------------------------------------------------------------------------


def note_default(o: Overlay, secured: Secured, parties: tuple[str, ...]) -> None:
    """Record that ``parties`` defaulted on ``secured``, if a lock secures it (else the
    ledger keeps nothing: no lock can ever claim on it). An empty id is nobody: a repo
    whose close only a freeze held back defaulted with no defaulter."""
    if not any(parties) or o.record(_secured_key(RecordKind.LOCK_SECURED, secured)) is None:
        return
    w = Writer().limit(len(parties), LOCK_DEFAULTERS_MAX, "defaulters").u8(len(parties))
    for p in parties:
        w.ident(p)
    o.put_record(_secured_key(RecordKind.LOCK_DEFAULT, secured), w.finish())


def defaulters(o: StateView | Overlay, secured: Secured) -> tuple[str, ...]:
    """The parties recorded as having defaulted on ``secured`` (none: no default)."""
    raw = o.record(_secured_key(RecordKind.LOCK_DEFAULT, secured))
    if raw is None:
        return ()
    r = Reader(raw)
    out = tuple(r.ident() for _ in range(r.limit(r.u8(), LOCK_DEFAULTERS_MAX, "defaulters")))
    r.done()
    return out


# --- transactions --------------------------------------------------------------------------

# The parties of a live obligation, as the module that owns it knows them (None: not live).
Resolve = Callable[[Secured], tuple[str, str] | None]


def _parties_code(reg: Registry, holder: str, beneficiary: str, instrument: str) -> ResultCode:
    if holder not in reg.participant_by_id or beneficiary not in reg.participant_by_id:
        return ResultCode.UNKNOWN_ACCOUNT
    if instrument not in reg.instrument_by_id:
        return ResultCode.UNKNOWN_INSTRUMENT
    return ResultCode.OK


def _terms_code(reg: Registry, o: Overlay, tx: Lock, time_ms: int) -> ResultCode:
    """The lock's own terms: who, what, how long."""
    if tx.holder == tx.beneficiary:
        return ResultCode.SELF_TRADE
    parties = (reg.participant_by_id[tx.holder], reg.participant_by_id[tx.beneficiary])
    if not all(p.can_hold() for p in parties):
        return ResultCode.UNAUTHORIZED
    if any_frozen(o, (tx.holder, tx.instrument)):
        return ResultCode.FROZEN
    maturity = reg.maturity_ms(tx.instrument)
    if maturity is not None and time_ms >= maturity:
        return ResultCode.MATURED
    if tx.until_ms <= time_ms or (maturity is not None and tx.until_ms >= maturity):
        return ResultCode.INVALID_LOCK_TERMS
    return ResultCode.OK


def _secured_code(tx: Lock, resolve: Resolve) -> ResultCode:
    """A secured obligation must be live and between the lock's two parties."""
    if tx.secures.kind is SecuredKind.NONE:
        return ResultCode.OK
    parties = resolve(tx.secures)
    if parties is None:
        return ResultCode.NOT_PENDING
    if sorted(parties) != sorted((tx.holder, tx.beneficiary)):
        return ResultCode.INVALID_LOCK_TERMS
    return ResultCode.OK


def lock(
    reg: Registry,
    o: Overlay,
    tx: Lock,
    resolve: Resolve,
    *,
    lock_id: bytes,
    height: int,
    time_ms: int,
) -> ResultCode:
    code = _parties_code(reg, tx.holder, tx.beneficiary, tx.instrument)
    if code is ResultCode.OK and tx.amount == 0:
        code = ResultCode.INVALID_AMOUNT
    if code is ResultCode.OK:
        code = _terms_code(reg, o, tx, time_ms)
    if code is ResultCode.OK:
        code = _secured_code(tx, resolve)
    if code is not ResultCode.OK:
        return code
    if _u(o, _holder_key(tx.holder)) >= LOCKS_PER_HOLDER_MAX or _u(o, _COUNT_KEY) >= LOCKS_MAX:
        return ResultCode.LOCKS_FULL
    short = debit_code(o, tx.holder, tx.instrument, tx.amount, _shortfall(reg, tx.instrument))
    if short is not None:
        return short
    # The pledge is checked and counted as the move a claim would make, now: its claim is
    # then exempt from the limits, so the holder cannot spend its own limits to make the
    # claim fail (ADR 0023). Tiers and the AML co-signer are checked again at the claim.
    pledged = _as_move(reg, tx, None)
    rules = kyc.rules_in_force(reg, o)
    if (refused := kyc.check(reg, o, rules, pledged, time_ms)) is not None:
        return refused
    kyc.note_volume(reg, o, rules, pledged, time_ms=time_ms)
    require(len(lock_id) == crypto.HASH_LEN, "a lock id is a transaction id")
    rec = LockRecord(
        lock_id, tx.holder, tx.instrument, tx.amount, tx.beneficiary, tx.until_ms, tx.secures,
        height, time_ms,
    )  # fmt: skip
    o.put_record(_lock_key(lock_id), rec.encode())
    _count_in(o, rec, +1)
    return ResultCode.OK


def _find(o: Overlay, lock_id: bytes, holder: str) -> LockRecord | None:
    """The lock ``lock_id`` if it is ``holder``'s (a body naming another holder names no
    lock: it would show the wrong party the transaction)."""
    raw = o.record(_lock_key(lock_id))
    rec = None if raw is None else LockRecord.decode(lock_id, raw)
    return rec if rec is not None and rec.holder == holder else None


def _end(o: Overlay, rec: LockRecord) -> None:
    o.delete_record(_lock_key(rec.lock_id))
    _count_in(o, rec, -1)


def release(o: Overlay, tx: ReleaseLock, time_ms: int) -> ResultCode:
    rec = _find(o, tx.lock, tx.holder)
    if rec is None:
        return ResultCode.NO_SUCH_LOCK
    if tx.by == rec.holder and tx.by != rec.beneficiary:
        if time_ms <= rec.until_ms:
            return ResultCode.LOCK_IN_FORCE
    elif tx.by != rec.beneficiary:
        return ResultCode.UNAUTHORIZED
    _end(o, rec)
    return ResultCode.OK


def _claimable(o: Overlay, rec: LockRecord, time_ms: int) -> bool:
    """In force, securing an obligation, on which the holder's default is recorded."""
    if time_ms > rec.until_ms or rec.secures.kind is SecuredKind.NONE:
        return False
    return rec.holder in defaulters(o, rec.secures)


def claim(reg: Registry, o: Overlay, tx: ClaimLock, time_ms: int) -> ResultCode:
    rec = _find(o, tx.lock, tx.holder)
    if rec is None or (rec.instrument, rec.amount) != (tx.instrument, tx.amount):
        return ResultCode.NO_SUCH_LOCK  # no lock of this holder with these terms
    if tx.beneficiary != rec.beneficiary:
        return ResultCode.UNAUTHORIZED
    if not _claimable(o, rec, time_ms):
        return ResultCode.NOT_CLAIMABLE
    if not reg.participant_by_id[rec.beneficiary].can_hold():
        return ResultCode.UNAUTHORIZED
    if any_frozen(o, (rec.holder, rec.instrument), (rec.beneficiary, rec.instrument)):
        return ResultCode.FROZEN
    checked = _as_move(reg, rec, tx.cosigner)
    rules = kyc.rules_in_force(reg, o)
    # Limits were checked and the value counted when the lock was made (ADR 0023).
    if (code := kyc.check(reg, o, rules, checked, time_ms, limits=False)) is not None:
        return code
    if o.balance(rec.beneficiary, rec.instrument) + rec.amount > U64_MAX:
        return ResultCode.OVERFLOW
    _end(o, rec)  # unlock first: the move then spends units no longer locked
    o.move(rec.instrument, rec.holder, rec.beneficiary, rec.amount)
    return ResultCode.OK


def _as_move(reg: Registry, pledge: Lock | LockRecord, cosigner: str | None) -> kyc.Check:
    """The compliance check of moving a pledge to its beneficiary."""
    cash, value = kyc.value_of(reg, pledge.instrument, pledge.amount)
    receives = ((pledge.beneficiary, pledge.instrument),)
    return kyc.Check(receives, (pledge.holder, pledge.beneficiary), cash, value, cosigner=cosigner)


def _swap_terms(reg: Registry, tx: Swap) -> ResultCode:
    a, b = reg.instrument_by_id.get(tx.instrument_a), reg.instrument_by_id.get(tx.instrument_b)
    if a is None or b is None:
        return ResultCode.UNKNOWN_INSTRUMENT
    if tx.quantity_a == 0 or tx.quantity_b == 0:
        return ResultCode.INVALID_AMOUNT
    if tx.party_a == tx.party_b:
        return ResultCode.SELF_TRADE
    if a.kind is not InstrumentKind.BOND or b.kind is not InstrumentKind.BOND:
        return ResultCode.WRONG_INSTRUMENT_KIND
    if a.id == b.id:
        return ResultCode.SAME_INSTRUMENT
    parties = (reg.participant_by_id[tx.party_a], reg.participant_by_id[tx.party_b])
    if not all(p.can_hold() for p in parties):
        return ResultCode.UNAUTHORIZED
    return ResultCode.OK


def _swap_legs_code(o: Overlay, tx: Swap) -> ResultCode | None:
    """Both legs: available to deliver, room to receive."""
    short = ResultCode.INSUFFICIENT_SECURITIES
    code = debit_code(o, tx.party_a, tx.instrument_a, tx.quantity_a, short)
    code = code or debit_code(o, tx.party_b, tx.instrument_b, tx.quantity_b, short)
    if code is None and (
        o.balance(tx.party_b, tx.instrument_a) + tx.quantity_a > U64_MAX
        or o.balance(tx.party_a, tx.instrument_b) + tx.quantity_b > U64_MAX
    ):
        code = ResultCode.OVERFLOW
    return code


def swap(reg: Registry, o: Overlay, tx: Swap, time_ms: int) -> ResultCode:
    code = _swap_terms(reg, tx)
    if code is not ResultCode.OK:
        return code
    a, b, ia, ib = tx.party_a, tx.party_b, tx.instrument_a, tx.instrument_b
    if any_frozen(o, (a, ia), (b, ia), (b, ib), (a, ib)):
        return ResultCode.FROZEN
    checked = kyc.Check(((b, ia), (a, ib)), (a, b), "", 0, cosigner=None)  # no cash: tiers
    if (tier := kyc.check(reg, o, kyc.rules_in_force(reg, o), checked, time_ms)) is not None:
        return tier
    if any(_matured(reg, i, time_ms) for i in (ia, ib)):
        return ResultCode.MATURED
    if time_ms > tx.deadline_ms:
        return ResultCode.DEADLINE_PASSED
    legs = _swap_legs_code(o, tx)
    if legs is not None:
        return legs
    # Both legs checked above; only now does either move.
    o.move(ia, a, b, tx.quantity_a)
    o.move(ib, b, a, tx.quantity_b)
    return ResultCode.OK


def _matured(reg: Registry, instrument: str, time_ms: int) -> bool:
    maturity = reg.maturity_ms(instrument)
    return maturity is not None and time_ms >= maturity


# --- reading -------------------------------------------------------------------------------


def locks(view: StateView) -> list[LockRecord]:
    """Every lock, in lock id order: at most ``LOCKS_MAX`` records."""
    return [LockRecord.decode(key[1:], raw) for key, raw in view.records(_PREFIX)]
