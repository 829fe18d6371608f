"""Theory of operation: repurchase agreements (issue 18 item 2; docs/ledger.md "Repo",
docs/adr/0017-repo.md).

A repo is two DvPs and a record. ``RepoOpen`` (signed by both parties) runs the DvP rules
unchanged (``_apply._dvp``, passed in as ``legs``) on the opening leg, bond borrower ->
lender and cash lender -> borrower, and writes the record in the same overlay: both or
neither. Title transfers: the lender holds the collateral during the repo.

``RepoClose`` runs the reverse leg, bond lender -> borrower and cash borrower -> lender
at the amount due (``close_amount``), through the pending machinery
(``_pending.submit``, ADR 0014) with the repo's default deadline as the instruction's
deadline and no lots: it settles at once (``CLOSED``), or, a leg short, it is recorded
``PENDING_SETTLEMENT`` and the repo is ``CLOSING``; recycling re-attempts it at the end
of every block; its ``OK`` event closes the repo, its ``FAILED_DEADLINE`` (or
``MATURED``) event defaults it (``after_recycle``): nothing moves, the lender keeps the
collateral and the borrower the cash, and the record names the defaulter (the borrower
if its cash was not available at the deadline, short or pledged, or its own daily limit
had no room for it; else the lender, if its own leg failed; else nobody, when only a
freeze held the close back); a
``Lock`` securing the repo (kind ``REPO``, ``live_parties``) may then be claimed from
the defaulter (``_lock.note_default``). Neither
party may hold or cancel a close instruction (``REPO_CLOSE_PINNED``), so a lender cannot
stall a borrower into default. A repo leaves ``OPEN`` once, and ``CLOSING`` once: a
second close is ``REPO_NOT_OPEN`` and moves nothing (a close that recycling refuses under
the compliance rules then in force, ``COSIGN_REQUIRED`` or ``TRADE_LIMIT``, puts it back
``OPEN``, as the same refusal at submission leaves it).

A repo's whole life falls before its collateral matures: ``RepoOpen`` is ``REPO_TERMS``
unless the default deadline is before the bond's maturity (a close after it could never
deliver the bond back). A repo still ``OPEN`` when the block time passes its default
deadline **lapses** at the end of that block (``lapse``, after recycling): it ends
``DEFAULTED``, nothing moves, the record states what was due then and names the
defaulter by the same tests as a close failing at its deadline. So no repo stays live
for ever (session 31; ADR 0017 amendment). Each lapse is an event of the block, after
recycling's: ``REPO_LAPSED`` under the ``RepoOpen``'s id (``open_tx`` in the record), so a
reader of blocks sees when and why a repo defaulted (review 32). A block lapses at most
``REPO_LAPSES_PER_BLOCK_MAX`` repos, in (deadline, id) order; more wait for the next
blocks, still ``OPEN`` (review 31: ``REPO_OPEN_MAX`` sharing one deadline took a second).

Amount due at close (integer arithmetic, docs/ledger.md "Repo" has worked examples):

- ``repurchase_amount`` when the terms fix it; else ``purchase + interest`` with interest
  ACT/360 over the actual milliseconds from the open's block time to the close's block
  time, capped at ``close_ms`` (a late close accrues nothing more):
  ``purchase x rate_bp x elapsed_ms / (10_000 x 360 x 86_400_000)``, rounded half up
  in minor units;
- minus the **manufactured payment**: the coupons the lender received as holder of record
  on the collateral and owes the borrower. The collateral has spans: from the open to
  the first margin call or substitution (``_margin``), from each to the next, the last
  to the close; a span counts the coupon on its quantity of its bond for every period
  dated after its start, not after its end, and paid by its end. A change of collateral
  (``change_collateral``) adds the ending span's coupons to ``manufactured_carried`` and
  starts the next at its block time (``counted_from_ms``), so the close adds the carried
  amount to the last span's. Netted, at most the amount due less one minor unit.

Records (a ``RecordKind`` byte, then ids NUL-padded to ``ID_BYTES_MAX``):

- ``REPO | id`` -> the ``RepoRecord`` encoding below; kept for good once closed.
- ``REPO_PARTY | party | id`` -> ``0x01``: the repos naming a party, as either side.
- ``REPO_OPEN_COUNT | party`` -> ``u32``, live (open or closing) repos naming the party
  (deleted at zero); ``REPO_OPEN_COUNT`` alone -> ``u32``, live repos on the ledger.
- ``REPO_CLOSE_TX | tx id 32`` -> ``id``: which repo a pending close instruction closes.
- ``REPO_DUE | u64 default_ms | id`` -> ``0x01``: an ``OPEN`` repo by its default
  deadline (written at open, deleted when it leaves ``OPEN``).
- ``REPO_NEXT_DUE`` (no fields) -> ``u64``: at most the earliest default deadline in
  ``REPO_DUE`` (absent: none), so a block reads the index only once one has passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum

from node import crypto
from node.config import (
    ID_BYTES_MAX,
    REPO_LAPSES_PER_BLOCK_MAX,
    REPO_LIST_MAX,
    REPO_OPEN_MAX,
    REPO_OPEN_PER_PARTY_MAX,
    U64_MAX,
)
from node.invariant import InvariantError, require
from node.settlement import _compliance as kyc
from node.settlement import _lock, _pending
from node.settlement._codec import DecodeError, Reader, Writer, check_id
from node.settlement._lifecycle import coupon_amount, coupon_key
from node.settlement._registry import Registry
from node.settlement._result import ResultCode
from node.settlement._state import Overlay, RecordKind, StateView
from node.settlement._tx import DvP, PendingDvP, RepoClose, RepoOpen, Secured, SecuredKind

__all__ = [
    "RepoRecord",
    "RepoStatus",
    "after_recycle",
    "all_repos",
    "change_collateral",
    "close",
    "close_amount",
    "interest",
    "lapse",
    "live_parties",
    "manufactured",
    "open_",
    "pinned",
    "put_repo",
    "repo",
    "repos_of",
]

_BP = 10_000
_ACT360_MS = 360 * 86_400_000
_NO_TX = b"\0" * crypto.HASH_LEN

# A leg runner: the DvP rules on one leg, the caller's ``_apply._dvp`` (no copy of them).
Legs = Callable[[DvP], ResultCode]


class RepoStatus(IntEnum):
    """Where a repo is; values are stable (in the record, under the state root)."""

    OPEN = 1
    CLOSING = 2  # the close leg is pending (the borrower or lender was short)
    CLOSED = 3
    DEFAULTED = 4


@dataclass(frozen=True, slots=True)
class RepoRecord:
    """One repo as stored. ``close_amount`` is the cash due at close, fixed when the close
    is submitted (0 before); ``manufactured`` the coupons netted in it; ``closed_ms`` the
    block time it closed or defaulted (0 before); ``close_tx`` the close transaction's id
    (zeros before); ``defaulter`` the party that failed its leg (empty unless DEFAULTED);
    ``open_tx`` the ``RepoOpen``'s id, which a lapse's event carries (review 32).
    ``bond`` and ``quantity`` are the current collateral, which counts its coupons from
    block time ``counted_from_ms`` (the open's, or the last margin call's or
    substitution's); ``manufactured_carried`` the earlier collateral's coupons."""

    id: str
    borrower: str
    lender: str
    bond: str
    quantity: int
    cash: str
    purchase_amount: int
    repurchase_amount: int
    rate_bp: int
    open_ms: int
    close_ms: int
    default_ms: int
    open_height: int
    status: RepoStatus
    closed_ms: int = 0
    close_amount: int = 0
    manufactured: int = 0
    close_tx: bytes = _NO_TX
    defaulter: str = ""
    counted_from_ms: int = 0
    manufactured_carried: int = 0
    open_tx: bytes = _NO_TX

    def encode(self) -> bytes:
        w = Writer().ident(self.borrower).ident(self.lender).ident(self.bond).u64(self.quantity)
        w.u64(self.counted_from_ms).u64(self.manufactured_carried)
        w.ident(self.cash).u64(self.purchase_amount).u64(self.repurchase_amount)
        w.u32(self.rate_bp).u64(self.open_ms).u64(self.close_ms).u64(self.default_ms)
        w.u64(self.open_height).u8(self.status).u64(self.closed_ms).u64(self.close_amount)
        w.u64(self.manufactured).fixed(self.close_tx, crypto.HASH_LEN)
        w.fixed(self.open_tx, crypto.HASH_LEN)
        w.flag(bool(self.defaulter))
        if self.defaulter:
            w.ident(self.defaulter)
        return w.finish()

    @classmethod
    def decode(cls, repo_id: str, raw: bytes) -> RepoRecord:
        r = Reader(raw)
        borrower, lender, bond, quantity = r.ident(), r.ident(), r.ident(), r.u64()
        counted_from, carried, cash = r.u64(), r.u64(), r.ident()
        purchase, repurchase, rate_bp = r.u64(), r.u64(), r.u32()
        open_ms, close_ms, default_ms, height = r.u64(), r.u64(), r.u64(), r.u64()
        raw_status = r.u8()
        if raw_status not in RepoStatus._value2member_map_:
            raise DecodeError(f"unknown repo status {raw_status}")
        closed_ms, amount, netted, close_tx = r.u64(), r.u64(), r.u64(), r.fixed(crypto.HASH_LEN)
        open_tx = r.fixed(crypto.HASH_LEN)
        defaulter = r.ident() if r.flag() else ""
        r.done()
        return cls(
            repo_id, borrower, lender, bond, quantity, cash, purchase, repurchase, rate_bp,
            open_ms, close_ms, default_ms, height, RepoStatus(raw_status), closed_ms, amount,
            netted, close_tx, defaulter, counted_from, carried, open_tx,
        )  # fmt: skip

    @property
    def live(self) -> bool:
        """Open or closing: counted against the open-repo bounds."""
        return self.status in (RepoStatus.OPEN, RepoStatus.CLOSING)


# --- keys and reads ----------------------------------------------------------------------


def _pad(ident: str) -> bytes:
    return ident.encode("ascii").ljust(ID_BYTES_MAX, b"\0")


def _key(repo_id: str) -> bytes:
    return bytes([RecordKind.REPO]) + _pad(repo_id)


def _party_key(party: str, repo_id: str) -> bytes:
    return bytes([RecordKind.REPO_PARTY]) + _pad(party) + _pad(repo_id)


def _count_key(party: str) -> bytes:
    """The live-repo count of ``party``; "" for the whole ledger's."""
    return bytes([RecordKind.REPO_OPEN_COUNT]) + (_pad(party) if party else b"")


def _close_tx_key(tid: bytes) -> bytes:
    return bytes([RecordKind.REPO_CLOSE_TX]) + tid


_DUE = bytes([RecordKind.REPO_DUE])
_NEXT_DUE_KEY = bytes([RecordKind.REPO_NEXT_DUE])


def _due_key(rec: RepoRecord) -> bytes:
    return _DUE + Writer().u64(rec.default_ms).finish() + _pad(rec.id)


def _await_lapse(o: Overlay, rec: RepoRecord) -> None:
    """Index the OPEN ``rec`` by its default deadline, lowering the next-due bound."""
    o.put_record(_due_key(rec), b"\x01")
    raw = o.record(_NEXT_DUE_KEY)
    if raw is None or rec.default_ms < Reader(raw).u64():
        o.put_record(_NEXT_DUE_KEY, Writer().u64(rec.default_ms).finish())


def repo(view: StateView | Overlay, repo_id: str) -> RepoRecord | None:
    """The repo recorded under ``repo_id``; None if none was ever opened."""
    raw = view.record(_key(repo_id))
    return None if raw is None else RepoRecord.decode(repo_id, raw)


def live_parties(o: StateView | Overlay, secured: Secured) -> tuple[str, str] | None:
    """(borrower, lender) of the live (open or closing) repo ``secured`` names (lock: what
    a Lock securing a repo is checked against); None when it names no repo, or one that
    has closed or defaulted: nothing is left to secure."""
    try:
        repo_id = check_id(secured.ref.decode("ascii", "replace"))
    except ValueError:
        return None  # not an id: no repo was ever opened under it
    rec = repo(o, repo_id)
    return (rec.borrower, rec.lender) if rec is not None and rec.live else None


def put_repo(o: Overlay, record: RepoRecord) -> None:
    """Write ``record`` (open or changed); the party index is written at open."""
    o.put_record(_key(record.id), record.encode())


def repos_of(view: StateView, party: str, limit: int = REPO_LIST_MAX) -> list[RepoRecord]:
    """The repos naming ``party`` as borrower or lender, in id order, at most ``limit``
    (and ``REPO_LIST_MAX``)."""
    out: list[RepoRecord] = []
    for key, _ in view.records(bytes([RecordKind.REPO_PARTY]) + _pad(party)):
        if len(out) >= min(limit, REPO_LIST_MAX):
            break
        found = repo(view, key[1 + ID_BYTES_MAX :].rstrip(b"\0").decode("ascii"))
        if found is None:
            raise InvariantError("a repo index entry without its record")
        out.append(found)
    return out


def all_repos(view: StateView, limit: int = REPO_LIST_MAX) -> list[RepoRecord]:
    """Every repo in id order, at most ``limit`` (and ``REPO_LIST_MAX``)."""
    out: list[RepoRecord] = []
    for key, raw in view.records(bytes([RecordKind.REPO])):
        if len(out) >= min(limit, REPO_LIST_MAX):
            break
        out.append(RepoRecord.decode(key[1:].rstrip(b"\0").decode("ascii"), raw))
    return out


def _count(o: StateView | Overlay, party: str) -> int:
    raw = o.record(_count_key(party))
    return 0 if raw is None else Reader(raw).u32()


def _count_in(o: Overlay, rec: RepoRecord, delta: int) -> None:
    """Add ``delta`` (+1 or -1) to the ledger's and both parties' live-repo counts."""
    for party, bound in ("", REPO_OPEN_MAX), (rec.borrower, 0), (rec.lender, 0):
        n = _count(o, party) + delta
        require(0 <= n <= (bound or REPO_OPEN_PER_PARTY_MAX), f"repo count {party!r} {n}")
        if n:
            o.put_record(_count_key(party), Writer().u32(n).finish())
        else:
            o.delete_record(_count_key(party))


# --- amounts -----------------------------------------------------------------------------


def interest(purchase: int, rate_bp: int, elapsed_ms: int) -> int:
    """ACT/360 interest on ``purchase`` minor units at ``rate_bp`` a year over
    ``elapsed_ms`` actual milliseconds, rounded half up to a whole minor unit."""
    num = purchase * rate_bp * elapsed_ms
    den = _BP * _ACT360_MS
    return (2 * num + den) // (2 * den)


def manufactured(reg: Registry, o: StateView | Overlay, rec: RepoRecord, time_ms: int) -> int:
    """The coupons the lender received on the collateral from the open to ``time_ms``:
    the earlier collateral's, carried, and the current span's (may exceed 2**64 - 1)."""
    return rec.manufactured_carried + _span_coupons(reg, o, rec, time_ms)


def _span_coupons(reg: Registry, o: StateView | Overlay, rec: RepoRecord, time_ms: int) -> int:
    """The coupons on ``rec.quantity`` of ``rec.bond``: periods dated after
    ``counted_from_ms`` (the lender has held these units since then), not after
    ``time_ms``, and paid (at most ``SCHEDULE_PERIODS_MAX`` point reads)."""
    inst = reg.instrument_by_id[rec.bond]
    dates = reg.schedules.get(rec.bond, ())
    start = rec.counted_from_ms
    paid = [
        k
        for k, due_ms in enumerate(dates, start=1)
        if start < due_ms <= time_ms and o.record(coupon_key(rec.bond, k)) is not None
    ]
    return len(paid) * coupon_amount(inst, rec.quantity)


def change_collateral(
    reg: Registry,
    o: StateView | Overlay,
    rec: RepoRecord,
    time_ms: int,
    *,
    bond: str,
    quantity: int,
) -> RepoRecord:
    """``rec`` holding ``quantity`` of ``bond`` from block time ``time_ms`` on (a margin
    call or a substitution): the coupons so far are carried and the new span starts, so
    the amount due at ``time_ms`` is unchanged and later coupons count on the new
    collateral only. Saturated at 2**64 - 1 (the record's u64): exact, as the netting
    never exceeds the amount due less one, itself at most 2**64 - 1 (checked at open)."""
    carried = min(manufactured(reg, o, rec, time_ms), U64_MAX)
    return replace(
        rec, bond=bond, quantity=quantity, counted_from_ms=time_ms, manufactured_carried=carried
    )


def close_amount(reg: Registry, o: StateView | Overlay, rec: RepoRecord, time_ms: int) -> int:
    """The cash the borrower would pay at a close in a block at ``time_ms``."""
    return _due(reg, o, rec, time_ms)[0]


def _due(reg: Registry, o: StateView | Overlay, rec: RepoRecord, time_ms: int) -> tuple[int, int]:
    """(cash due at a close at ``time_ms``, manufactured payment netted in it)."""
    gross = rec.repurchase_amount
    if not gross:
        elapsed = min(time_ms, rec.close_ms) - rec.open_ms
        gross = rec.purchase_amount + interest(rec.purchase_amount, rec.rate_bp, elapsed)
    netted = min(manufactured(reg, o, rec, time_ms), gross - 1)
    return gross - netted, netted


# --- transactions ------------------------------------------------------------------------


def _terms_code(reg: Registry, tx: RepoOpen, time_ms: int) -> ResultCode:
    if tx.close_ms <= time_ms:
        return ResultCode.REPO_TERMS
    if tx.default_ms < tx.close_ms or (tx.repurchase_amount and tx.rate_bp):
        return ResultCode.REPO_TERMS
    # The whole life, the close's last chance included, before the collateral matures: a
    # matured bond cannot be delivered back, so a close after it could never settle.
    maturity = reg.maturity_ms(tx.bond)
    if maturity is not None and tx.default_ms >= maturity:
        return ResultCode.REPO_TERMS
    # The most a close can ask (interest stops at close_ms) must fit a u64 amount: else no
    # close could ever be encoded or paid.
    most = tx.purchase_amount + interest(tx.purchase_amount, tx.rate_bp, tx.close_ms - time_ms)
    return ResultCode.REPO_TERMS if most > U64_MAX else ResultCode.OK


def _full(o: Overlay, tx: RepoOpen) -> bool:
    if _count(o, "") >= REPO_OPEN_MAX:
        return True
    return any(_count(o, p) >= REPO_OPEN_PER_PARTY_MAX for p in (tx.borrower, tx.lender))


def open_(
    reg: Registry,
    o: Overlay,
    tx: RepoOpen,
    legs: Legs,
    *,
    tid: bytes,
    height: int,
    time_ms: int,
) -> ResultCode:
    """The opening leg (the DvP rules, ``legs``) and the record, both or neither; the
    record keeps ``tid``, the open's id, for the event of a lapse."""
    if tx.bond not in reg.instrument_by_id or tx.cash not in reg.instrument_by_id:
        return ResultCode.UNKNOWN_INSTRUMENT
    if (code := _terms_code(reg, tx, time_ms)) is not ResultCode.OK:
        return code
    if repo(o, tx.id) is not None:
        return ResultCode.REPO_EXISTS
    if _full(o, tx):
        return ResultCode.REPOS_FULL
    opening = DvP(
        tx.chain_id, tx.nonce, tx.expiry_ms, tx.borrower, tx.lender, tx.bond, tx.quantity,
        tx.cash, tx.purchase_amount, deadline_ms=tx.close_ms, cosigner=tx.cosigner,
    )  # fmt: skip
    code = legs(opening)
    if code is not ResultCode.OK:
        return code
    rec = RepoRecord(
        tx.id, tx.borrower, tx.lender, tx.bond, tx.quantity, tx.cash, tx.purchase_amount,
        tx.repurchase_amount, tx.rate_bp, time_ms, tx.close_ms, tx.default_ms, height,
        RepoStatus.OPEN, counted_from_ms=time_ms, open_tx=tid,
    )  # fmt: skip
    put_repo(o, rec)
    for party in (tx.borrower, tx.lender):
        o.put_record(_party_key(party, tx.id), b"\x01")
    _count_in(o, rec, +1)
    _await_lapse(o, rec)
    return ResultCode.OK


def _close_code(rec: RepoRecord | None, tx: RepoClose, time_ms: int) -> ResultCode:
    if rec is None:
        return ResultCode.NO_SUCH_REPO
    parties = {rec.borrower, rec.lender}
    if (tx.borrower, tx.lender) != (rec.borrower, rec.lender) or not set(tx.by) <= parties:
        return ResultCode.UNAUTHORIZED
    if rec.status is not RepoStatus.OPEN:
        return ResultCode.REPO_NOT_OPEN
    if time_ms < rec.close_ms and set(tx.by) != parties:
        return ResultCode.EARLY_CLOSE_ONE_SIDED
    return ResultCode.OK


def close(
    reg: Registry,
    o: Overlay,
    tx: RepoClose,
    legs: Legs,
    *,
    tid: bytes,
    height: int,
    position: int,
    time_ms: int,
) -> ResultCode:
    """The closing leg, settled now (CLOSED) or pending until the default deadline
    (CLOSING); any other refusal leaves the repo OPEN and moves nothing."""
    rec = repo(o, tx.id)
    if (code := _close_code(rec, tx, time_ms)) is not ResultCode.OK or rec is None:
        return code
    amount, netted = _due(reg, o, rec, time_ms)
    require(0 < amount <= U64_MAX, f"repo {rec.id} due {amount}: its terms were checked at open")
    closing = PendingDvP(
        tx.chain_id, tx.nonce, tx.expiry_ms, rec.lender, rec.borrower, rec.bond, rec.quantity,
        rec.cash, amount, deadline_ms=rec.default_ms, lot=0, cosigner=tx.cosigner,
    )  # fmt: skip
    # The first attempt has no deadline of its own: a late close still settles if both
    # legs are there; if not, recycling ends it FAILED_DEADLINE in this very block.
    now = replace(closing.as_dvp(), deadline_ms=max(time_ms, rec.default_ms))
    # The instruction's deadline is the repo's default deadline, never cut to the pending
    # book's age bound: a lender closing alone at close_ms would otherwise default the
    # borrower PENDING_AGE_MAX_MS later, before the deadline its terms give (review 31).
    code = _pending.submit(
        o, closing, tid=tid, height=height, position=position, time_ms=time_ms,
        first_attempt=lambda: legs(now), aged=False,
    )  # fmt: skip
    if code not in (ResultCode.OK, ResultCode.PENDING_SETTLEMENT):
        return code
    done = code is ResultCode.OK
    status = RepoStatus.CLOSED if done else RepoStatus.CLOSING
    o.delete_record(_due_key(rec))  # no longer OPEN: its close settles or defaults it
    put_repo(
        o,
        replace(
            rec, status=status, closed_ms=time_ms if done else 0, close_amount=amount,
            manufactured=netted, close_tx=tid,
        ),
    )  # fmt: skip
    if done:
        _count_in(o, rec, -1)
    else:
        o.put_record(_close_tx_key(tid), rec.id.encode("ascii"))
    return code


_DEFAULT_EVENTS = frozenset({ResultCode.FAILED_DEADLINE, ResultCode.MATURED})
# Recycling refused the close under the compliance rules in force when it came to settle
# (_pending: rules apply at settlement): the repo is OPEN again, as after the same refusal
# at submission, so a close that meets them (co-signed, within the limits) may follow.
_REFUSED_EVENTS = frozenset({ResultCode.COSIGN_REQUIRED, ResultCode.TRADE_LIMIT})


def after_recycle(o: Overlay, events: list[tuple[bytes, ResultCode]], time_ms: int) -> None:
    """Close, default or reopen every repo whose pending close ended in this block's
    events."""
    for tid, code in events:
        raw = o.record(_close_tx_key(tid))
        if raw is None:
            continue  # an ordinary pending DvP
        rec = repo(o, raw.decode("ascii"))
        if rec is None or rec.status is not RepoStatus.CLOSING:
            raise InvariantError("a repo close instruction without its closing repo")
        o.delete_record(_close_tx_key(tid))
        if code in _REFUSED_EVENTS:
            rec = replace(
                rec, status=RepoStatus.OPEN, close_amount=0, manufactured=0, close_tx=_NO_TX
            )
            put_repo(o, rec)
            _await_lapse(o, rec)
            continue
        if code is ResultCode.OK:
            rec = replace(rec, status=RepoStatus.CLOSED, closed_ms=time_ms)
        elif code in _DEFAULT_EVENTS:
            rec = _defaulted(o, rec, time_ms)
        else:
            raise InvariantError(f"a repo close instruction ended {code.name}")
        put_repo(o, rec)
        _count_in(o, rec, -1)


def _defaulted(o: Overlay, rec: RepoRecord, time_ms: int) -> RepoRecord:
    """``rec`` DEFAULTED at ``time_ms``, its defaulter named and noted for its locks."""
    who = _defaulter(o, rec, time_ms)
    # What a Lock securing this repo may claim on (ADR 0018): the defaulter's pledge.
    _lock.note_default(o, Secured(SecuredKind.REPO, rec.id.encode("ascii")), (who,))
    return replace(rec, status=RepoStatus.DEFAULTED, closed_ms=time_ms, defaulter=who)


def _lapsed(default_ms: int, time_ms: int) -> bool:
    """Past the default deadline: at the instant itself a close may still settle."""
    return time_ms > default_ms


def lapse(o: Overlay, time_ms: int) -> list[tuple[bytes, ResultCode]]:
    """End every OPEN repo whose default deadline the block time has passed: nobody
    submitted a close by then (a close still pending ended in recycling). It is DEFAULTED
    as a close failing at its deadline would be, and the record states what was due then:
    else it would hold both parties' live-repo slots, and its locks' claims, for ever,
    while the lender could redeem the collateral at its maturity (session 31). Reads the
    index only once the next-due bound has passed, and lapses at most
    ``REPO_LAPSES_PER_BLOCK_MAX`` repos: the rest, still OPEN, in the next blocks (their
    deadline stays the bound), so one block's work is bounded as recycling's is.

    Returns the block's events for them, in lapse order: ``(open tx id, REPO_LAPSED)``
    each, so a reader of blocks sees when a repo defaulted and why, certified with the
    block's results (review 32: before, only the repo record showed it)."""
    lapsed: list[tuple[bytes, ResultCode]] = []
    raw = o.record(_NEXT_DUE_KEY)
    if raw is None or not _lapsed(Reader(raw).u64(), time_ms):
        return lapsed
    next_due: int | None = None
    for n, (key, _) in enumerate(o.records(_DUE)):
        due = Reader(key[1:9]).u64()
        if not _lapsed(due, time_ms):
            next_due = due
            break
        if n == REPO_LAPSES_PER_BLOCK_MAX:
            next_due = due  # passed: the next block lapses on from here (review 31)
            break
        rec = repo(o, key[9:].rstrip(b"\0").decode("ascii"))
        if rec is None or rec.status is not RepoStatus.OPEN or rec.default_ms != due:
            raise InvariantError("a repo due entry without its open repo")
        amount, netted = _due(o.registry, o, rec, time_ms)
        rec = _defaulted(o, replace(rec, close_amount=amount, manufactured=netted), time_ms)
        put_repo(o, rec)
        o.delete_record(key)
        _count_in(o, rec, -1)
        require(any(rec.open_tx), f"repo {rec.id} has no open transaction id")
        lapsed.append((rec.open_tx, ResultCode.REPO_LAPSED))
    if next_due is None:
        o.delete_record(_NEXT_DUE_KEY)
    else:
        o.put_record(_NEXT_DUE_KEY, Writer().u64(next_due).finish())
    return lapsed


def _defaulter(o: Overlay, rec: RepoRecord, time_ms: int) -> str:
    """Who failed a close at its deadline (``_blamed``), or nobody (""): a lender whose
    own leg could have gone (``_lender_failed``) did not fail it. The close then waited
    only because a holding was frozen, which is nobody's default, as for a pending DvP;
    naming the lender let a freeze of the borrower (a compliance officer's account freeze
    is enough) hand the borrower the lender's pledges though the collateral never left
    the lender (review 31)."""
    who = _blamed(o, rec, time_ms)
    if who == rec.lender and not _lender_failed(o, rec, time_ms):
        return ""
    return who


def _lender_failed(o: Overlay, rec: RepoRecord, time_ms: int) -> bool:
    """Whether the lender's side stopped the close, by the borrower's tests on its side:
    the collateral not available, the lender no longer able to receive the cash (tier 0,
    roles taken, a tier below the cash's minimum), or no room in its own rolling day."""
    if _lock.available(o, rec.lender, rec.bond) < rec.quantity:
        return True
    reg = o.registry
    rules = kyc.rules_in_force(reg, o)
    lender = reg.participant_by_id[rec.lender]
    if not lender.can_hold() or lender.kyc_tier < rules.tier_to_hold(rec.cash):
        return True
    room = kyc.daily_room(reg, o, rules, (rec.lender,), rec.cash, time_ms=time_ms)
    return room < rec.close_amount


def _blamed(o: Overlay, rec: RepoRecord, time_ms: int) -> str:
    """Who a failed close is put down to: the borrower when its cash leg could not go,
    the lender otherwise. The borrower's leg could not go when the cash was not
    *available* (short, or pledged by a Lock: the available balance, as ``_pending``
    judges a default) or when its own daily limit left no room for the amount: both are
    the borrower's doing, and judging by the bare balance let a borrower hide its cash in
    a pledge and have the lender recorded as the defaulter (and its pledges claimed). So
    is a borrower that may no longer receive the collateral (tier 0, roles taken, or a
    tier below the bond's minimum: recycling then leaves the close waiting)."""
    if _lock.available(o, rec.borrower, rec.cash) < rec.close_amount:
        return rec.borrower
    reg = o.registry
    rules = kyc.rules_in_force(reg, o)
    borrower = reg.participant_by_id[rec.borrower]
    if not borrower.can_hold() or borrower.kyc_tier < rules.tier_to_hold(rec.bond):
        return rec.borrower
    room = kyc.daily_room(reg, o, rules, (rec.borrower,), rec.cash, time_ms=time_ms)
    return rec.borrower if room < rec.close_amount else rec.lender


def pinned(o: Overlay, instruction: bytes) -> ResultCode | None:
    """REPO_CLOSE_PINNED when ``instruction`` is a repo's pending close (a Hold, Release
    or Cancel naming it is refused); None otherwise."""
    return ResultCode.REPO_CLOSE_PINNED if o.record(_close_tx_key(instruction)) else None
