"""Theory of operation: pending settlement with recycling (issue 14 item 4, ADR 0014).

A ``PendingDvP`` first runs the DvP rules unchanged (``_apply._dvp``). If they settle it,
its result is ``OK`` like a DvP's. If they refuse it only because a leg is short
(``INSUFFICIENT_SECURITIES`` / ``INSUFFICIENT_CASH``), it is recorded ``PENDING`` instead
and kept as a state record keyed by (height, position): an *instruction*. Every other
refusal is final, as for a DvP.

At the end of every block, after the block's transactions, ``recycle`` walks every
instruction in key order, i.e. (height, position) order, and for each:

1. cancelled by both parties in this block: it ends ``CANCELLED``; its bond has reached
   maturity (``_lifecycle.matured``): it ends ``MATURED``, since a matured bond can no
   longer be delivered in a trade, only redeemed;
2. block time past its deadline (or past the age bound, ``PENDING_AGE_MAX_MS`` after the
   block that recorded it, whichever is earlier): it ends ``FAILED_DEADLINE``;
3. held by either party: nothing (a held instruction is not attempted);
4. nothing this block wrote can have changed what it can settle (``_changed``; a block
   that freezes or unfreezes anything re-attempts every instruction): nothing;
4a. one of its four holdings frozen (``_freeze``), or a party that may no longer hold or
    receive its leg (``_may_settle``): nothing (it waits, not attempted);
4b. its own terms break the compliance rules in force (``_compliance.terms_code``: the
    co-signature threshold or a party's per-trade limit, which governance may have
    changed since it was recorded): it ends with that code, ``COSIGN_REQUIRED`` or
    ``TRADE_LIMIT``, moving nothing (rules apply at settlement; session 31);
5. else it settles the largest number of lots both parties can afford and both receivers
   can hold without passing 2**64 - 1, and (kyc, ``_compliance.daily_room``) that keep
   both parties within their daily limits: all that is left ends it ``OK``; some, not
   all, is ``PARTIALLY_SETTLED`` and the rest waits; none leaves it as it is.

Each of those outcomes is an **event**: a result appended after the block's transaction
results, with a leaf tagged ``LEAF_EVENT`` (never a transaction's own result), carrying
the instruction's tx id and the code. The results root, and so receipts, cover events.
An instruction has at most one event per block, and a deleted instruction is never seen
again, so recycling can never settle one twice, nor after its deadline (step 2 runs
before step 5).

Cost: a block reads every instruction (for its deadline), so their number is bounded by
``PENDING_MAX``, and by ``PENDING_PER_PARTY_MAX`` per party, so that one participant
cannot fill the book for everyone; a ``PendingDvP`` beyond either is ``PENDING_FULL``.
It re-attempts (four balance reads) only an instruction whose record or balances this
block wrote (``_changed``): any other would find what the last attempt found.

Records (keys are a ``RecordKind`` byte then big-endian fields; values canonical):

- ``PENDING``  key ``height u64 | position u32``; value ``tx_id 32 | id seller | id buyer |
  id bond | id cash | u64 lot_quantity | u64 lot_amount | u64 lots_left | u64 deadline_ms
  | u8 holds (bit 0 seller, bit 1 buyer) | u8 cancelled [| id cosigner]``, the co-signer
  appended only when the trade named one (so records without one are as before).
  Deleted when it ends.
- ``PENDING_OUTCOME`` key ``tx_id 32``; value ``u16 code | u64 height | u32 index | u64
  settled_quantity | u64 settled_amount``: where the instruction's latest result is (the
  transaction's own ``PENDING``, then each event) and what has moved. Kept for good, like
  the transaction index, so a node answers "settled at height h" and builds the receipt.
- ``PENDING_COUNT`` key (no fields); value ``u32``: the number of ``PENDING`` records, so
  admission does not scan them.
- ``PENDING_PARTY`` key ``id party``; value ``u32``: how many instructions name the party
  (as seller or buyer); deleted at zero.
- ``PENDING_RECHECK`` key (no fields); value ``0x01``, present after a block whose
  recycling moved balances: the next block re-attempts every instruction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from node import crypto
from node.config import PENDING_AGE_MAX_MS, PENDING_MAX, PENDING_PER_PARTY_MAX, U64_MAX
from node.invariant import InvariantError, require
from node.settlement import _compliance as kyc
from node.settlement import _lock
from node.settlement._codec import DecodeError, Reader, Writer
from node.settlement._freeze import any_frozen, dvp_holdings, touched
from node.settlement._kyc_rules import ComplianceRules
from node.settlement._lifecycle import matured
from node.settlement._result import ResultCode, decode_result_code
from node.settlement._state import Overlay, RecordKind, StateView
from node.settlement._tx import Cancel, Hold, PendingDvP, Release, Secured, SecuredKind

__all__ = [
    "FAIL_CODES",
    "FAIL_EVENT_CODES",
    "Instruction",
    "Outcome",
    "cancel",
    "hold",
    "instructions",
    "live_parties",
    "outcome",
    "pending_count",
    "recycle",
    "settlement_fail",
    "submit",
]

# lock: units pledged by a Lock are short like missing ones until released.
_SHORT = frozenset(
    {ResultCode.INSUFFICIENT_SECURITIES, ResultCode.INSUFFICIENT_CASH, ResultCode.LOCKED}
)
# Settlement fails (issue 14 item 5; the metric and the CLI report count these): a trade
# refused for a short leg (a DvP), refused with the pending book full, or a pending one
# that ended without settling in full (at its deadline, or cancelled); a trade refused
# because a party's holding is frozen (docs/ledger.md "Freezes").
FAIL_CODES = (
    ResultCode.INSUFFICIENT_SECURITIES,
    ResultCode.INSUFFICIENT_CASH,
    ResultCode.PENDING_FULL,
    ResultCode.FAILED_DEADLINE,
    ResultCode.CANCELLED,
    ResultCode.MATURED,
    ResultCode.FROZEN,
    ResultCode.LOCKED,
)
# A pending instruction's events that end it without settling in full: each a settlement
# fail. The instruction was accepted (recorded PENDING_SETTLEMENT, both parties' trade)
# and did not settle: at its deadline, cancelled, its bond matured, or refused by the
# compliance rules in force when it came to settle (COSIGN_REQUIRED, TRADE_LIMIT: session
# 31), which a CSD reports as a fail of an accepted instruction as it does a cancellation
# (review 32: the metric left those two out). The same two codes as a first attempt's
# refusal are a bad instruction, never accepted, as EXPIRED is: not in FAIL_CODES.
FAIL_EVENT_CODES = (
    ResultCode.FAILED_DEADLINE,
    ResultCode.CANCELLED,
    ResultCode.MATURED,
    ResultCode.COSIGN_REQUIRED,
    ResultCode.TRADE_LIMIT,
)


def settlement_fail(code: ResultCode, *, event: bool) -> bool:
    """Whether a result is a settlement fail: an event (a pending instruction's later
    outcome) among ``FAIL_EVENT_CODES``, or a trade's own result among ``FAIL_CODES``
    (the caller checks it is a trade's: a transfer short of funds is no settlement fail).
    A repo's lapse (``REPO_LAPSED``) is neither: no settlement instruction was entered."""
    return code in (FAIL_EVENT_CODES if event else FAIL_CODES)


_SELLER_HOLD, _BUYER_HOLD = 1, 2
_COUNT_KEY = bytes([RecordKind.PENDING_COUNT])
_RECHECK_KEY = bytes([RecordKind.PENDING_RECHECK])


@dataclass(frozen=True, slots=True)
class Instruction:
    """A pending DvP as stored: what is left of it, in whole lots of one price each."""

    tx_id: bytes
    seller: str
    buyer: str
    bond: str
    cash: str
    lot_quantity: int
    lot_amount: int
    lots_left: int
    deadline_ms: int
    holds: int
    cancelled: bool
    cosigner: str = ""  # kyc: the trade's compliance co-signer ("" none): checked again

    @property
    def held_by_seller(self) -> bool:
        return bool(self.holds & _SELLER_HOLD)

    @property
    def held_by_buyer(self) -> bool:
        return bool(self.holds & _BUYER_HOLD)

    def encode(self) -> bytes:
        w = Writer().fixed(self.tx_id, crypto.HASH_LEN)
        w.ident(self.seller).ident(self.buyer).ident(self.bond).ident(self.cash)
        w.u64(self.lot_quantity).u64(self.lot_amount).u64(self.lots_left).u64(self.deadline_ms)
        w.u8(self.holds).flag(self.cancelled)
        if self.cosigner:
            w.ident(self.cosigner)  # appended when named: records without one unchanged
        return w.finish()

    @classmethod
    def decode(cls, raw: bytes) -> Instruction:
        r = Reader(raw)
        tid = r.fixed(crypto.HASH_LEN)
        parties = (r.ident(), r.ident(), r.ident(), r.ident())
        sizes = (r.u64(), r.u64(), r.u64(), r.u64())
        holds, cancelled = r.u8(), r.flag()
        cosigner = r.ident() if r.more() else ""
        out = cls(tid, *parties, *sizes, holds=holds, cancelled=cancelled, cosigner=cosigner)
        r.done()
        return out


@dataclass(frozen=True, slots=True)
class Outcome:
    """An instruction's latest result: ``code`` at leaf ``index`` of block ``height``'s
    results, and what has moved so far."""

    code: ResultCode
    height: int
    index: int
    settled_quantity: int
    settled_amount: int

    def encode(self) -> bytes:
        w = Writer().u16(self.code).u64(self.height).u32(self.index)
        return w.u64(self.settled_quantity).u64(self.settled_amount).finish()

    @classmethod
    def decode(cls, raw: bytes) -> Outcome:
        r = Reader(raw)
        out = cls(decode_result_code(r.u16(), DecodeError), r.u64(), r.u32(), r.u64(), r.u64())
        r.done()
        return out


def _pending_key(height: int, position: int) -> bytes:
    return Writer().u8(RecordKind.PENDING).u64(height).u32(position).finish()


def _outcome_key(tid: bytes) -> bytes:
    return bytes([RecordKind.PENDING_OUTCOME]) + tid


_PREFIX = bytes([RecordKind.PENDING])


def outcome(view: StateView | Overlay, tid: bytes) -> Outcome | None:
    """The latest result of instruction ``tid``; None if it was never pending."""
    raw = view.record(_outcome_key(tid))
    return None if raw is None else Outcome.decode(raw)


def instructions(view: StateView) -> list[tuple[int, int, Instruction]]:
    """Every pending instruction as (height, position, instruction), in recycling order."""
    out = []
    for key, raw in view.records(_PREFIX):
        r = Reader(key[1:])
        height, position = r.u64(), r.u32()
        out.append((height, position, Instruction.decode(raw)))
    return out


def pending_count(view: StateView | Overlay) -> int:
    """How many instructions wait (the count record: no scan)."""
    raw = view.record(_COUNT_KEY)
    return 0 if raw is None else Reader(raw).u32()


def _party_key(party: str) -> bytes:
    return Writer().u8(RecordKind.PENDING_PARTY).ident(party).finish()


def _party_count(o: Overlay, party: str) -> int:
    raw = o.record(_party_key(party))
    return 0 if raw is None else Reader(raw).u32()


def _book_full(o: Overlay, seller: str, buyer: str) -> bool:
    """The book holds ``PENDING_MAX`` instructions, or a party is on
    ``PENDING_PER_PARTY_MAX`` of them (so one participant cannot fill it for everyone)."""
    if pending_count(o) >= PENDING_MAX:
        return True
    return any(_party_count(o, p) >= PENDING_PER_PARTY_MAX for p in (seller, buyer))


def _count_in(o: Overlay, seller: str, buyer: str, delta: int) -> None:
    """Add ``delta`` (+1 or -1) to the book's count and to both parties' counts."""
    n = pending_count(o) + delta
    require(0 <= n <= PENDING_MAX, f"pending count {n} out of bounds")
    o.put_record(_COUNT_KEY, Writer().u32(n).finish())
    for party in (seller, buyer):
        m = _party_count(o, party) + delta
        require(0 <= m <= PENDING_PER_PARTY_MAX, f"pending count of {party} out of bounds")
        if m:
            o.put_record(_party_key(party), Writer().u32(m).finish())
        else:
            o.delete_record(_party_key(party))


def lots_of(tx: PendingDvP) -> tuple[int, int, int] | None:
    """(lot quantity, lot amount, number of lots), or None when the lot does not split the
    trade into whole lots of one whole price (``INVALID_AMOUNT``)."""
    if tx.lot == 0:
        return tx.quantity, tx.amount, 1
    if tx.quantity % tx.lot:
        return None
    lots = tx.quantity // tx.lot
    if tx.amount % lots:
        return None
    return tx.lot, tx.amount // lots, lots


def submit(
    o: Overlay,
    tx: PendingDvP,
    *,
    tid: bytes,
    height: int,
    position: int,
    time_ms: int,
    first_attempt: Callable[[], ResultCode],
    aged: bool = True,
) -> ResultCode:
    """Run the DvP rules once (``first_attempt``); keep the trade pending if only a leg
    was short and the book has room. ``aged`` False keeps the trade's own deadline, not
    cut to ``PENDING_AGE_MAX_MS``: a repo's close, whose deadline is a term of the repo
    (its default deadline, before the collateral matures; the repo lapses by then)."""
    lots = lots_of(tx) if tx.quantity and tx.amount else (0, 0, 0)
    if lots is None:
        return ResultCode.INVALID_AMOUNT
    code = first_attempt()
    if code not in _SHORT:
        return code
    if _book_full(o, tx.seller, tx.buyer):
        return ResultCode.PENDING_FULL
    deadline = min(tx.deadline_ms, time_ms + PENDING_AGE_MAX_MS)
    if not aged:
        deadline = tx.deadline_ms
    inst = Instruction(
        tid, tx.seller, tx.buyer, tx.bond, tx.cash, *lots, deadline, 0, False, tx.cosigner
    )
    o.put_record(_pending_key(height, position), inst.encode())
    o.put_record(
        _outcome_key(tid), Outcome(ResultCode.PENDING_SETTLEMENT, height, position, 0, 0).encode()
    )
    _count_in(o, tx.seller, tx.buyer, +1)
    return ResultCode.PENDING_SETTLEMENT


def _find(o: Overlay, tid: bytes) -> tuple[bytes, Instruction] | None:
    """The live (not cancelled) instruction recorded under ``tid``."""
    rec = o.recorded.get(tid) or o.view.tx_record(tid)
    if rec is None:
        return None
    # Only a trade recorded PENDING_SETTLEMENT has a record at its (height, position).
    key = _pending_key(rec.height, rec.position)
    raw = o.record(key)
    if raw is None:
        return None
    inst = Instruction.decode(raw)
    return None if inst.cancelled else (key, inst)


def live_parties(o: Overlay, secured: Secured) -> tuple[str, str] | None:
    """(seller, buyer) of the live instruction ``secured`` names (lock: what a Lock
    securing a pending DvP is checked against); None when it is not pending."""
    found = _find(o, secured.ref) if len(secured.ref) == crypto.HASH_LEN else None
    return None if found is None else (found[1].seller, found[1].buyer)


def hold(o: Overlay, tx: Hold | Release) -> ResultCode:
    """Set (``Hold``) or clear (``Release``) the hold of ``tx.by``, a party to the trade."""
    found = _find(o, tx.instruction)
    if found is None:
        return ResultCode.NOT_PENDING
    key, inst = found
    bit = {inst.seller: _SELLER_HOLD, inst.buyer: _BUYER_HOLD}.get(tx.by)
    if bit is None:
        return ResultCode.UNAUTHORIZED
    holds = inst.holds | bit if isinstance(tx, Hold) else inst.holds & ~bit
    o.put_record(key, replace(inst, holds=holds).encode())
    return ResultCode.OK


def cancel(o: Overlay, tx: Cancel) -> ResultCode:
    """Mark the instruction cancelled; it ends ``CANCELLED`` at the end of this block."""
    found = _find(o, tx.instruction)
    if found is None:
        return ResultCode.NOT_PENDING
    key, inst = found
    if (tx.seller, tx.buyer) != (inst.seller, inst.buyer):
        return ResultCode.UNAUTHORIZED
    o.put_record(key, replace(inst, cancelled=True).encode())
    return ResultCode.OK


def recycle(
    o: Overlay, height: int, time_ms: int, first_index: int
) -> list[tuple[bytes, ResultCode]]:
    """Re-attempt every instruction in (height, position) order; the events, in order, to
    append after the block's results (the first at leaf ``first_index``)."""
    events: list[tuple[bytes, ResultCode]] = []
    recheck = o.record(_RECHECK_KEY) is not None
    # A freeze or unfreeze, or a change of a party's roles or tier or of the rules, this
    # block: attempt every one (_step), since it can let one settle with no balance written.
    thawed = touched(o) or _standing_written(o)
    moved = False
    for key, raw in o.records(_PREFIX):
        inst = Instruction.decode(raw)
        changed = recheck or thawed or _changed(o, key, inst)
        step = _step(o, inst, time_ms, changed=changed)
        if step is None:
            continue
        code, lots = step
        moved = moved or lots > 0
        _note(o, inst, code, lots, height=height, index=first_index + len(events))
        if code is ResultCode.FAILED_DEADLINE:  # lock: what a Lock securing it may claim on
            _lock.note_default(
                o, Secured(SecuredKind.PENDING_DVP, inst.tx_id), _failed(o, inst, time_ms)
            )
        if code is ResultCode.PARTIALLY_SETTLED:
            o.put_record(key, replace(inst, lots_left=inst.lots_left - lots).encode())
        else:
            o.delete_record(key)
            _count_in(o, inst.seller, inst.buyer, -1)
        events.append((inst.tx_id, code))
    _set_recheck(o, moved, was=recheck)
    return events


def _set_recheck(o: Overlay, moved: bool, *, was: bool) -> None:
    """A settlement in this pass may have funded an instruction attempted before it in the
    pass: the next block attempts every instruction (see ``_changed``)."""
    if moved and not was:
        o.put_record(_RECHECK_KEY, b"\x01")
    elif was and not moved:
        o.delete_record(_RECHECK_KEY)


def _failed(o: Overlay, inst: Instruction, time_ms: int) -> tuple[str, ...]:
    """The parties that failed to deliver at the deadline: a lot of their leg not
    available, their hold on, or their own daily limit without room for a lot (the cash
    leg counts for both parties: a party that spent its day's room stopped the trade as
    surely as one that hid its units; docs/ledger.md "Locks and swaps")."""
    reg = o.registry
    rules = kyc.rules_in_force(reg, o)

    def over_limit(party: str) -> bool:
        return kyc.daily_room(reg, o, rules, (party,), inst.cash, time_ms=time_ms) < (
            inst.lot_amount
        )

    seller = inst.held_by_seller or _lock.available(o, inst.seller, inst.bond) < inst.lot_quantity
    buyer = inst.held_by_buyer or _lock.available(o, inst.buyer, inst.cash) < inst.lot_amount
    seller = seller or over_limit(inst.seller)
    buyer = buyer or over_limit(inst.buyer)
    return tuple(p for p, failed in ((inst.seller, seller), (inst.buyer, buyer)) if failed)


_STANDING = frozenset({RecordKind.PARTICIPANT, RecordKind.KYC_RULES})


def _standing_written(o: Overlay) -> bool:
    """Whether this block wrote a participant (roles, tier) or the compliance rules."""
    return any(key[0] in _STANDING for key in o.records_written)


def _may_settle(o: Overlay, rules: ComplianceRules, inst: Instruction) -> bool:
    """Both parties may still hold assets and each receiver's tier still meets what its
    instrument needs: governance may have demoted one since the first attempt checked
    it (docs/ledger.md "Pending settlement"). If not, the instruction waits, and fails at
    its deadline like a frozen one."""
    reg = o.registry
    seller, buyer = reg.participant_by_id[inst.seller], reg.participant_by_id[inst.buyer]
    if not (seller.can_hold() and buyer.can_hold()):
        return False
    return buyer.kyc_tier >= rules.tier_to_hold(inst.bond) and seller.kyc_tier >= (
        rules.tier_to_hold(inst.cash)
    )


def _rules_refuse(o: Overlay, rules: ComplianceRules, inst: Instruction) -> ResultCode | None:
    """COSIGN_REQUIRED or TRADE_LIMIT when the trade, as the first attempt checked it
    (its whole amount, its co-signer, both parties' limits), breaks the rules in force
    now: a settlement meets the rules of the day it settles, as a new trade would. Waiting
    cannot cure it (the signed co-signer cannot change), so it ends, moving nothing."""
    if rules.is_default and not inst.cosigner:
        return None  # no rules in force: nothing to break (and no outcome read)
    done = outcome(o, inst.tx_id)
    settled = 0 if done is None else done.settled_amount
    amount = settled + inst.lots_left * inst.lot_amount
    c = kyc.Check((), (inst.seller, inst.buyer), inst.cash, amount, inst.cosigner)
    return kyc.terms_code(o.registry, rules, c)


def _changed(o: Overlay, key: bytes, inst: Instruction) -> bool:
    """Whether this block can have changed what ``inst`` can settle: it wrote the record
    (recorded it, released or partly settled it) or one of the four balances the attempt
    reads (a transaction, or an earlier instruction's settlement in this pass, moved it).
    A later instruction's settlement in the last block's pass could have moved them after
    ``inst``'s attempt: then the recheck record makes this block attempt every one.
    Otherwise the last attempt found nothing affordable and the same reads would find the
    same: skipping it saves four balance reads and changes no outcome
    (tests/unit/test_pending_properties.py runs both ways and compares the roots)."""
    if key in o.records_written:
        return True
    if _lock.total_written(o, inst.seller, inst.bond) or _lock.total_written(
        o, inst.buyer, inst.cash
    ):
        return True  # lock: a lock or release changed what is available, not the balance
    touched = o.balances
    return (
        (inst.seller, inst.bond) in touched
        or (inst.buyer, inst.cash) in touched
        or (inst.buyer, inst.bond) in touched
        or (inst.seller, inst.cash) in touched
    )


def _step(
    o: Overlay, inst: Instruction, time_ms: int, *, changed: bool
) -> tuple[ResultCode, int] | None:
    """What this block does to ``inst``: (event code, lots settled), or None for nothing."""
    if inst.cancelled:
        return ResultCode.CANCELLED, 0
    if matured(o.registry, inst.bond, time_ms):
        return ResultCode.MATURED, 0  # its bond can no longer be traded (docs/ledger.md)
    if time_ms > inst.deadline_ms:
        return ResultCode.FAILED_DEADLINE, 0
    if inst.holds or not changed:
        return None
    if any_frozen(o, *dvp_holdings(inst.seller, inst.buyer, inst.bond, inst.cash)):
        return None  # waits, not attempted; still fails at its deadline (docs/ledger.md)
    parties, reg = (inst.seller, inst.buyer), o.registry
    rules = kyc.rules_in_force(reg, o)
    if not _may_settle(o, rules, inst):
        return None  # a party demoted since: waits, not attempted (as a frozen one)
    if (refused := _rules_refuse(o, rules, inst)) is not None:
        return refused, 0  # the rules in force at settlement refuse its terms: it ends
    room = kyc.daily_room(reg, o, rules, parties, inst.cash, time_ms=time_ms)
    lots = min(_affordable(o, inst), room // inst.lot_amount)  # kyc: within daily limits
    if lots == 0:
        return None
    # Every bound was taken into _affordable; only now does either leg move.
    o.move(inst.bond, inst.seller, inst.buyer, lots * inst.lot_quantity)
    o.move(inst.cash, inst.buyer, inst.seller, lots * inst.lot_amount)
    moved = kyc.Check((), parties, inst.cash, lots * inst.lot_amount, cosigner=None)
    kyc.note_volume(reg, o, rules, moved, time_ms=time_ms)
    done = lots == inst.lots_left
    return (ResultCode.OK if done else ResultCode.PARTIALLY_SETTLED), lots


def _affordable(o: Overlay, inst: Instruction) -> int:
    """The most whole lots the seller can deliver, the buyer can pay, and both receivers
    can take without a balance passing 2**64 - 1 (exact integer arithmetic). The last two
    never bind while supplies stay within u64 (a receiver's balance plus what another
    holder sends is at most the supply); they are kept so that ``move`` can never be
    asked to overflow, whatever the genesis."""
    q, a = inst.lot_quantity, inst.lot_amount
    return min(
        inst.lots_left,
        _lock.available(o, inst.seller, inst.bond) // q,
        _lock.available(o, inst.buyer, inst.cash) // a,
        (U64_MAX - o.balance(inst.buyer, inst.bond)) // q,
        (U64_MAX - o.balance(inst.seller, inst.cash)) // a,
    )


def _note(
    o: Overlay, inst: Instruction, code: ResultCode, lots: int, *, height: int, index: int
) -> None:
    """Point the instruction's outcome record at this event and add what moved."""
    before = outcome(o, inst.tx_id)
    if before is None:
        raise InvariantError("a pending instruction without its outcome record")
    moved_q = before.settled_quantity + lots * inst.lot_quantity
    moved_a = before.settled_amount + lots * inst.lot_amount
    o.put_record(_outcome_key(inst.tx_id), Outcome(code, height, index, moved_q, moved_a).encode())
