"""Theory of operation: margin calls and collateral substitution on an open repo (issue
18 item 3; docs/ledger.md "Prices, margin and substitution").

Both value a repo's collateral at the price in force (``_price.fresh_price``: at least k
fresh sources, else ``NO_FRESH_PRICE`` and nothing moves) after its genesis haircut
(``_price.collateral_value``, rounded down) against the repo's **exposure**: the cash the
borrower would pay at a close in this block (``_repo.close_amount``: the repurchase
amount, or the purchase plus ACT/360 interest accrued to now, net of manufactured
coupons).

``MarginCall`` (the lender alone): if the collateral is worth less than the exposure, the
fewest additional units of the **same** collateral instrument that cover the deficit
(``_price.units_for``) move from the borrower to the lender, and the repo record's
quantity grows by them, so the close returns them (and nets their coupons dated after the
call only: ``_repo.change_collateral``). The borrower's signature on RepoOpen
is the authority: on this chain the genesis margin terms are part of every repo's terms.
In kind, not cash: the record returns one instrument and one quantity at close, and a
cash margin would need a second leg there. No deficit: ``NO_MARGIN_DEFICIT``. A borrower
short of units: ``INSUFFICIENT_SECURITIES``, nothing moves; the lender's remedy is the
repo's own close and default path (``_repo.close``), not a pending margin call.

``RepoSubstitute`` (both parties): the lender returns every unit of the current
collateral and the borrower delivers ``quantity`` of an eligible instrument worth at
least the exposure, both or neither; the record then names the new collateral (the old
one's coupons so far carried, the new one's counted from now). Below:
``SUBSTITUTION_BELOW_VALUE``.

Checks, first failing decides: ``NO_SUCH_REPO``, ``UNAUTHORIZED`` (parties not the
repo's), ``REPO_NOT_OPEN``; a substitution's ``UNKNOWN_INSTRUMENT``, ``INVALID_AMOUNT``;
``NOT_ELIGIBLE_COLLATERAL`` (no haircut row, or quoted in another cash than the repo's);
``FROZEN`` (a holding either leg touches); ``UNAUTHORIZED`` / ``TIER_TOO_LOW`` (a party
that receives units can no longer hold, or its tier is below what the instrument needs
under the rules in force: governance may have changed either since the open, and a
substitution may bring in an instrument the open never checked); ``MATURED`` (the bond
a leg moves has matured: only in the block that passes both the repo's default deadline
and the bond's maturity, before the repo lapses); a substitution's ``REPO_TERMS`` (the new
bond matures at or before the repo's default deadline, as ``RepoOpen`` requires);
``NO_FRESH_PRICE``; ``NO_MARGIN_DEFICIT`` / ``SUBSTITUTION_BELOW_VALUE``;
``INSUFFICIENT_SECURITIES``; a margin call's ``OVERFLOW`` (the record's quantity).
"""

from __future__ import annotations

from node.config import U64_MAX
from node.settlement import _compliance as kyc
from node.settlement import _freeze, _lock, _price, _repo
from node.settlement import _lifecycle as life
from node.settlement._margin_terms import Haircut
from node.settlement._registry import Registry
from node.settlement._repo import RepoRecord, RepoStatus
from node.settlement._result import ResultCode
from node.settlement._state import Overlay
from node.settlement._tx import MarginCall, RepoSubstitute

__all__ = ["exposure", "margin_call", "substitute"]


def exposure(reg: Registry, o: Overlay, rec: RepoRecord, time_ms: int) -> int:
    """What the collateral must be worth: the cash due at a close at ``time_ms``."""
    return _repo.close_amount(reg, o, rec, time_ms)


def _repo_code(rec: RepoRecord | None, borrower: str, lender: str) -> ResultCode:
    if rec is None:
        return ResultCode.NO_SUCH_REPO
    if (rec.borrower, rec.lender) != (borrower, lender):
        return ResultCode.UNAUTHORIZED
    if rec.status is not RepoStatus.OPEN:
        return ResultCode.REPO_NOT_OPEN
    return ResultCode.OK


def _haircut(reg: Registry, instrument: str, rec: RepoRecord) -> Haircut | None:
    """The haircut row if ``instrument`` is eligible collateral for this repo's cash."""
    row = _price.eligible(reg, instrument)
    return row if row is not None and row.cash == rec.cash else None


def margin_call(reg: Registry, o: Overlay, tx: MarginCall, *, time_ms: int) -> ResultCode:
    rec = _repo.repo(o, tx.repo)
    if (code := _repo_code(rec, tx.borrower, tx.lender)) is not ResultCode.OK or rec is None:
        return code
    row = _haircut(reg, rec.bond, rec)
    if row is None:
        return ResultCode.NOT_ELIGIBLE_COLLATERAL
    if _freeze.any_frozen(o, (rec.borrower, rec.bond), (rec.lender, rec.bond)):
        return ResultCode.FROZEN
    if (refused := _receivers_code(reg, o, ((rec.lender, rec.bond),), time_ms)) is not None:
        return refused
    if life.matured(reg, rec.bond, time_ms):
        return ResultCode.MATURED  # a repo left open past its bond's maturity
    price = _price.fresh_price(reg, o, rec.bond, time_ms)
    if price is None:
        return ResultCode.NO_FRESH_PRICE
    owed = exposure(reg, o, rec, time_ms)
    if _price.collateral_value(rec.quantity, price, row.haircut_bp) >= owed:
        return ResultCode.NO_MARGIN_DEFICIT
    extra = _price.units_for(owed, price, row.haircut_bp) - rec.quantity
    if (short := _debit_code(o, rec.borrower, rec.bond, extra)) is not None:
        return short
    if rec.quantity + extra > U64_MAX:  # the record's u64 (the lender may have sold units)
        return ResultCode.OVERFLOW
    o.move(rec.bond, rec.borrower, rec.lender, extra)
    more = rec.quantity + extra
    _repo.put_repo(o, _repo.change_collateral(reg, o, rec, time_ms, bond=rec.bond, quantity=more))
    return ResultCode.OK


def _receivers_code(
    reg: Registry, o: Overlay, receives: tuple[tuple[str, str], ...], time_ms: int
) -> ResultCode | None:
    """UNAUTHORIZED when a party that receives units can no longer hold, TIER_TOO_LOW
    when its tier is below its instrument's minimum (the DvP rules for a receiver; the
    party that only delivers is not checked, as a claim on a lock does not check the
    defaulter); None when every receiver may take its units."""
    if not all(reg.participant_by_id[p].can_hold() for p, _ in receives):
        return ResultCode.UNAUTHORIZED
    checked = kyc.Check(receives, tuple(p for p, _ in receives), "", 0, cosigner=None)
    return kyc.check(reg, o, kyc.rules_in_force(reg, o), checked, time_ms)


def _substitute_code(
    reg: Registry, o: Overlay, tx: RepoSubstitute, rec: RepoRecord, time_ms: int
) -> ResultCode:
    """Every check before the value and the balances."""
    if tx.instrument not in reg.instrument_by_id:
        return ResultCode.UNKNOWN_INSTRUMENT
    if tx.quantity == 0:
        return ResultCode.INVALID_AMOUNT
    if _haircut(reg, tx.instrument, rec) is None:
        return ResultCode.NOT_ELIGIBLE_COLLATERAL
    touched = [(p, i) for p in (rec.borrower, rec.lender) for i in (rec.bond, tx.instrument)]
    if _freeze.any_frozen(o, *touched):
        return ResultCode.FROZEN
    receives = ((rec.borrower, rec.bond), (rec.lender, tx.instrument))
    if (code := _receivers_code(reg, o, receives, time_ms)) is not None:
        return code
    if any(life.matured(reg, bond, time_ms) for bond in (rec.bond, tx.instrument)):
        return ResultCode.MATURED  # either leg: the old collateral goes back, the new in
    maturity = reg.maturity_ms(tx.instrument)
    if maturity is not None and maturity <= rec.default_ms:
        return ResultCode.REPO_TERMS  # as at open: the repo's whole life before maturity
    return ResultCode.OK


def substitute(reg: Registry, o: Overlay, tx: RepoSubstitute, *, time_ms: int) -> ResultCode:
    rec = _repo.repo(o, tx.repo)
    if (code := _repo_code(rec, tx.borrower, tx.lender)) is not ResultCode.OK or rec is None:
        return code
    if (code := _substitute_code(reg, o, tx, rec, time_ms)) is not ResultCode.OK:
        return code
    price = _price.fresh_price(reg, o, tx.instrument, time_ms)
    row = _haircut(reg, tx.instrument, rec)  # not None: _substitute_code checked it
    if price is None or row is None:
        return ResultCode.NO_FRESH_PRICE
    value = _price.collateral_value(tx.quantity, price, row.haircut_bp)
    if value < exposure(reg, o, rec, time_ms):
        return ResultCode.SUBSTITUTION_BELOW_VALUE
    if (code := _swap_code(o, tx, rec)) is not ResultCode.OK:
        return code
    # Both legs checked; only now does either move.
    o.move(rec.bond, rec.lender, rec.borrower, rec.quantity)
    o.move(tx.instrument, rec.borrower, rec.lender, tx.quantity)
    new = _repo.change_collateral(reg, o, rec, time_ms, bond=tx.instrument, quantity=tx.quantity)
    _repo.put_repo(o, new)
    return ResultCode.OK


def _debit_code(o: Overlay, account: str, instrument: str, amount: int) -> ResultCode | None:
    """INSUFFICIENT_SECURITIES when ``account`` cannot deliver ``amount``, LOCKED when
    only pledged units would (None when it can). Every debit of this module goes through
    here, so locks' available balance applies to all of them."""
    return _lock.debit_code(o, account, instrument, amount, ResultCode.INSUFFICIENT_SECURITIES)


def _swap_code(o: Overlay, tx: RepoSubstitute, rec: RepoRecord) -> ResultCode:
    """Balances for both legs, the returned units counted when the instrument is the
    same (a substitution may resize the collateral in kind). No credit can overflow: both
    legs move units between two holders of one instrument, whose balances sum to at most
    its supply (Overlay.move still requires it)."""
    same = tx.instrument == rec.bond
    back = rec.quantity if same else 0
    if (code := _debit_code(o, rec.lender, rec.bond, rec.quantity)) is not None:
        return code
    more = max(0, tx.quantity - back)
    if (code := _debit_code(o, rec.borrower, tx.instrument, more)) is not None:
        return code
    return ResultCode.OK
