"""Theory of operation: freezes (issue 15 item 3; docs/ledger.md "Freezes").

A regulator freezes a *target*: a whole account, or one holding (account, instrument).
A compliance officer may freeze and unfreeze accounts, not single holdings (a holding
freeze is a regulator's measure, e.g. a court order on one position). The freeze is a
state record saying who froze it, when (block height and time) and why (a
``FreezeReason``); ``Unfreeze`` deletes it.

While a target is frozen, no leg that debits or credits it moves: transfers (both sides),
DvPs (all four holdings of both parties), mints to it, burns from it, redemption of a
frozen bond holding and payments by a paying agent whose cash holding is frozen get
``FROZEN``, checked right after ``UNAUTHORIZED``. A pending instruction naming a frozen
holding waits without being attempted and still fails at its deadline. The exception is
what the holder is owed by the lifecycle: a coupon or a distribution is paid into a
frozen holding (which stays frozen), since withholding it would leave the agent the
holder's money; ``RedeemAll`` skips a frozen bond holding (its units stay, frozen, to be
redeemed after the unfreeze).

Records (a ``RecordKind`` byte, then ids NUL-padded to ``ID_BYTES_MAX``; ids never hold
NUL, so an account freeze, whose instrument field is all NUL, sorts before the account's
holding freezes):

- ``FREEZE | account | instrument`` -> ``u8 reason | u64 height | u64 time_ms | id by``.
- ``FREEZE_COUNT`` (no fields) -> ``u32``: how many freezes exist, at most ``FREEZES_MAX``,
  so a block checks "is anything frozen?" with one read and admission never scans.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.config import FREEZES_MAX, ID_BYTES_MAX
from node.invariant import require
from node.settlement._codec import Reader, Writer
from node.settlement._model import Role
from node.settlement._registry import Registry
from node.settlement._result import ResultCode
from node.settlement._state import Overlay, RecordKind, StateView
from node.settlement._tx import Freeze, FreezeReason, Unfreeze

__all__ = [
    "FreezeRecord",
    "any_frozen",
    "dvp_holdings",
    "freeze",
    "freezes",
    "may_freeze",
    "touched",
    "unfreeze",
]

_COUNT_KEY = bytes([RecordKind.FREEZE_COUNT])
_PREFIX = bytes([RecordKind.FREEZE])
_ACCOUNT_WIDE = b"\0" * ID_BYTES_MAX


def _pad(ident: str) -> bytes:
    return ident.encode("ascii").ljust(ID_BYTES_MAX, b"\0")


def _key(account: str, instrument: str) -> bytes:
    return _PREFIX + _pad(account) + (_pad(instrument) if instrument else _ACCOUNT_WIDE)


@dataclass(frozen=True, slots=True)
class FreezeRecord:
    """One frozen target (``instrument`` empty: the whole account) and its provenance."""

    account: str
    instrument: str
    reason: FreezeReason
    height: int
    time_ms: int
    by: str

    def encode(self) -> bytes:
        w = Writer().u8(self.reason).u64(self.height).u64(self.time_ms)
        return w.ident(self.by).finish()

    @classmethod
    def decode(cls, key: bytes, raw: bytes) -> FreezeRecord:
        account = key[1 : 1 + ID_BYTES_MAX].rstrip(b"\0").decode("ascii")
        instrument = key[1 + ID_BYTES_MAX :].rstrip(b"\0").decode("ascii")
        r = Reader(raw)
        out = cls(account, instrument, FreezeReason(r.u8()), r.u64(), r.u64(), r.ident())
        r.done()
        return out


def _count(o: StateView | Overlay) -> int:
    raw = o.record(_COUNT_KEY)
    return 0 if raw is None else Reader(raw).u32()


def _set_count(o: Overlay, n: int) -> None:
    require(0 <= n <= FREEZES_MAX, f"freeze count {n} out of bounds")
    if n:
        o.put_record(_COUNT_KEY, Writer().u32(n).finish())
    else:
        o.delete_record(_COUNT_KEY)


def any_frozen(o: Overlay, *holdings: tuple[str, str]) -> bool:
    """Whether any (account, instrument) is frozen, as an account or as that holding.
    One read when nothing is frozen anywhere (the common case)."""
    if _count(o) == 0:
        return False
    accounts = {account for account, _ in holdings}
    return any(o.record(_key(a, "")) is not None for a in sorted(accounts)) or any(
        o.record(_key(a, i)) is not None for a, i in holdings
    )


def dvp_holdings(seller: str, buyer: str, bond: str, cash: str) -> tuple[tuple[str, str], ...]:
    """The four holdings a DvP's two legs debit and credit."""
    return (seller, bond), (buyer, bond), (buyer, cash), (seller, cash)


def may_freeze(reg: Registry, by: str, instrument: str) -> bool:
    """Regulators freeze anything; compliance officers whole accounts only."""
    party = reg.participant_by_id.get(by)
    if party is None:
        return False
    if Role.REGULATOR in party.roles:
        return True
    return not instrument and Role.COMPLIANCE in party.roles


def _target_code(reg: Registry, tx: Freeze | Unfreeze) -> ResultCode:
    if tx.account not in reg.participant_by_id:
        return ResultCode.UNKNOWN_ACCOUNT
    if tx.instrument and tx.instrument not in reg.instrument_by_id:
        return ResultCode.UNKNOWN_INSTRUMENT
    if not may_freeze(reg, tx.by, tx.instrument):
        return ResultCode.UNAUTHORIZED
    return ResultCode.OK


def freeze(reg: Registry, o: Overlay, tx: Freeze, *, height: int, time_ms: int) -> ResultCode:
    code = _target_code(reg, tx)
    if code is not ResultCode.OK:
        return code
    key = _key(tx.account, tx.instrument)
    if o.record(key) is not None:
        return ResultCode.ALREADY_FROZEN  # the first freeze's reason and time stand
    count = _count(o)
    if count >= FREEZES_MAX:
        return ResultCode.FREEZES_FULL
    rec = FreezeRecord(tx.account, tx.instrument, tx.reason, height, time_ms, tx.by)
    o.put_record(key, rec.encode())
    _set_count(o, count + 1)
    return ResultCode.OK


def unfreeze(reg: Registry, o: Overlay, tx: Unfreeze) -> ResultCode:
    code = _target_code(reg, tx)
    if code is not ResultCode.OK:
        return code
    key = _key(tx.account, tx.instrument)
    if o.record(key) is None:
        return ResultCode.NOT_FROZEN
    o.delete_record(key)
    _set_count(o, _count(o) - 1)
    return ResultCode.OK


def touched(o: Overlay) -> bool:
    """Whether this block froze or unfroze anything: pending recycling then re-attempts
    every instruction, since an unfreeze can let one settle with no balance written."""
    return _COUNT_KEY in o.records_written


def freezes(view: StateView) -> list[FreezeRecord]:
    """Every freeze, in (account, instrument) order, an account's own first; at most
    ``FREEZES_MAX`` records."""
    return [FreezeRecord.decode(key, raw) for key, raw in view.records(_PREFIX)]
