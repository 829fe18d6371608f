"""The ``ledger`` commands of the bond lifecycle (docs/ledger.md "Lifecycle", docs/cli.md).

``submit coupon|distribute|redeem-bond|redeem-all`` sign with the paying agent's or the
holder's key and submit like every ``submit``; ``schedule`` prints a bond's or fund's
payment calendar from the ledger's reference data (genesis's offline) and which periods
the node says are paid; ``holders``
prints who holds a bond or fund at the node's current height, or, with ``--height``, after
a past block, replayed here from genesis and checked against the quorum's state roots.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date
from fractions import Fraction

from client import HolderAt, HolderView, InstrumentView, LedgerClient, UnavailableError
from client._cli_common import EXIT_OK, EXIT_USAGE, CliError, amount, emit_json, table
from client._cli_net import _client, _genesis, _key, _submit_built
from node.settlement import Genesis, Instrument, InstrumentKind, Registry
from node.settlement._schedule import DAY_MS

__all__ = ["COMMANDS"]

_FUND_ROWS_AHEAD = 12  # a fund's calendar is long (SCHEDULE_PERIODS_MAX): show a year ahead


def _agent(args: argparse.Namespace, iid: str) -> str:
    """--agent, else the paying agent of ``iid``: genesis's, or for an instrument
    governance added the ledger's (asked as the command's default identity)."""
    if args.agent is not None:
        return str(args.agent)
    inst = _genesis(args).instrument_by_id.get(iid)
    if inst is None:
        with _client(args) as client:
            inst = client.reference().registry.instrument_by_id.get(iid)
    if inst is None or inst.kind is InstrumentKind.CASH:
        raise CliError(f"{iid} is not a bond or fund of this ledger", EXIT_USAGE)
    return inst.agent


def _coupon(args: argparse.Namespace) -> int:
    agent = _agent(args, args.bond)
    terms = (args.bond, args.period, agent)
    return _submit_built(args, lambda t: t.coupon(*terms), _key(args, agent, args.key))


def _distribute(args: argparse.Namespace) -> int:
    agent = _agent(args, args.fund)
    terms = (args.fund, args.period, args.total, agent)
    return _submit_built(args, lambda t: t.distribute(*terms), _key(args, agent, args.key))


def _redeem_bond(args: argparse.Namespace) -> int:
    terms = (args.bond, args.holder)
    return _submit_built(args, lambda t: t.redeem_bond(*terms), _key(args, args.holder, args.key))


def _redeem_all(args: argparse.Namespace) -> int:
    agent = _agent(args, args.bond)
    terms = (args.bond, agent)
    return _submit_built(args, lambda t: t.redeem_all(*terms), _key(args, agent, args.key))


# --- queries ----------------------------------------------------------------------------------


def _payable(ref: Genesis | Registry, iid: str) -> Instrument:
    inst = ref.instrument_by_id.get(iid)
    if inst is None or inst.kind is InstrumentKind.CASH:
        where = "genesis" if isinstance(ref, Genesis) else "this ledger"
        raise CliError(f"{iid} is not a bond or fund of {where}", EXIT_USAGE)
    return inst


def _exact(value: Fraction) -> str:
    """An exact amount: a decimal when it has one (2.125), else a fraction (1/3)."""
    den = value.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    places = 0
    while (value * 10**places).denominator != 1:
        places += 1
    scaled = int(value * 10**places)
    if places == 0:
        return str(scaled)
    return f"{scaled // 10**places}.{scaled % 10**places:0{places}d}"


def _schedule_rows(
    ref: Genesis | Registry, inst: Instrument, paid: set[int] | None
) -> list[list[str]]:
    """One row per period: number, date, coupon per unit (exact), paid or not (None: the
    node was not asked)."""
    dates = ref.schedules[inst.id]
    shown = len(dates)
    if inst.kind is InstrumentKind.FUND:
        shown = min(shown, max(paid or {0}) + _FUND_ROWS_AHEAD)
    per_unit = Fraction(inst.unit_face_minor * inst.coupon_bp, 10_000 * inst.coupon_freq or 1)
    rows = []
    for k, start_ms in enumerate(dates[:shown], start=1):
        day = date.fromordinal(date(1970, 1, 1).toordinal() + start_ms // DAY_MS).isoformat()
        state = "?" if paid is None else ("paid" if k in paid else "unpaid")
        if inst.kind is InstrumentKind.FUND:
            rows.append([str(k), day, "set by Distribute", state])
        elif k == len(dates):
            rows.append(
                [str(k), day, f"{_exact(per_unit)} + face {inst.unit_face_minor}", "by redemption"]
            )
        else:
            rows.append([str(k), day, _exact(per_unit), state])
    if inst.kind is InstrumentKind.BOND and not dates:  # a bill: principal only
        rows.append(["-", inst.maturity_date, f"face {inst.unit_face_minor}", "by redemption"])
    return rows


def _schedule(args: argparse.Namespace) -> int:
    """The calendar of a bond or fund as the ledger's reference data has it (governance may
    have added the instrument: ADR 0016), or genesis's with --offline or no node up."""
    ref: Genesis | Registry = _genesis(args)
    view: InstrumentView | None = None
    if not args.offline:
        try:
            with _client(args) as client:
                ref = client.reference().registry
                view = client.instrument(_payable(ref, args.instrument).id)
        except UnavailableError:
            print("no node answered: the calendar from genesis only (paid: ?)")
    inst = _payable(ref, args.instrument)
    rows = _schedule_rows(ref, inst, None if view is None else set(view.paid))
    if args.json:
        emit_json(
            {
                "instrument": inst.id,
                "height": None if view is None else view.height,
                "payment_cash": inst.payment_cash,
                "paying_agent": inst.agent,
                "periods": [
                    dict(zip(("period", "date", "per_unit", "paid"), r, strict=True)) for r in rows
                ],
            }
        )
        return EXIT_OK
    where = "genesis only" if view is None else f"paid as of block {view.height}"
    print(
        f"{inst.id} ({inst.kind.value}) pays in {inst.payment_cash}, agent {inst.agent} ({where}); "
        "per unit in minor units; dates reached at 00:00 UTC"
    )
    table(("period", "date", "per unit", "paid"), rows, right=(0,))
    return EXIT_OK


def _holders(args: argparse.Namespace) -> int:
    with _client(args) as client:
        inst = _payable(client.reference().registry, args.instrument)  # governance's too
        if args.height is not None:
            return _holders_at(args, client, inst.id, args.height)
        view = client.instrument(inst.id)
    _print_holders(args, view.instrument, view.height, view.holders)
    return EXIT_OK


def _holders_at(args: argparse.Namespace, client: LedgerClient, iid: str, height: int) -> int:
    """Holders after block ``height``, replayed here from genesis and checked against the
    quorum's state roots (AsyncLedgerClient.holders_at); progress on stderr."""

    def progress(done: int, total: int) -> None:
        print(f"replayed {done}/{total} blocks", file=sys.stderr, flush=True)

    at = client.holders_at(iid, height, progress=progress)
    proof = (
        f"state root {at.state_root.hex()[:16]}.. certified by block {at.height + 1}'s header"
        if at.proven
        else f"state root {at.state_root.hex()[:16]}.. not certified yet: block {at.height} "
        "is the head, no header carries its root"
    )
    _print_holders(
        args,
        at.instrument,
        at.height,
        at.holders,
        extra={"proven": at.proven, "state_root": at.state_root.hex()},
        proof=proof,
    )
    return EXIT_OK


def _print_holders(
    args: argparse.Namespace,
    iid: str,
    height: int,
    holders: Sequence[HolderView | HolderAt],
    *,
    extra: dict[str, object] | None = None,
    proof: str = "",
) -> None:
    if args.json:
        emit_json(
            {
                "instrument": iid,
                "height": height,
                **(extra or {}),
                "holders": [
                    {
                        "account": h.account,
                        "units": h.units,
                        "redeemed_units": h.redeemed_units,
                        "redeemed_paid": h.redeemed_paid,
                    }
                    for h in holders
                ],
            }
        )
        return
    total = sum(h.units for h in holders)
    print(f"{iid} after block {height}: {len(holders)} holders, {amount(total)} units")
    if proof:
        print(f"replayed from genesis; {proof}")
    rows = [
        (h.account, amount(h.units), amount(h.redeemed_units), amount(h.redeemed_paid))
        for h in holders
    ]
    table(("account", "units", "redeemed", "paid for it"), rows, right=(1, 2, 3))


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "life_coupon": _coupon,
    "life_distribute": _distribute,
    "life_redeem_bond": _redeem_bond,
    "life_redeem_all": _redeem_all,
    "life_schedule": _schedule,
    "life_holders": _holders,
}
