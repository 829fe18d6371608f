"""The ``ledger`` commands of custody and reserves (docs/ledger.md "Custody and reserves",
docs/cli.md).

``attest custody|reserves`` sign with the custodian's or the cash issuer's key and submit
like every ``submit``. ``report custody|reserves`` reconcile what a node returns
(``GetAttestations``) against genesis: the pure functions ``custody_report`` and
``reserve_report`` decide each line, so tests check them without a cluster. A report
with any BREAK (custody) or FAIL (reserves) exits 1, so a scheduled check can alert on it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from client import BackedView
from client._cli_common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, emit_json, table
from client._cli_net import _client, _genesis, _key, _submit_built
from node import crypto
from node.files import read_regular
from node.settlement import (
    Bill,
    CustodyAttestation,
    Genesis,
    ReserveAttestation,
    genesis_custody,
    genesis_reserves,
)
from node.settlement._schedule import date_of_ms

__all__ = [
    "COMMANDS",
    "CustodyLine",
    "ReserveLine",
    "custody_doc",
    "custody_report",
    "print_reserve_report",
    "reserve_doc",
    "reserve_report",
]

DAY_MS = 86_400_000
# Default as-of of an attestation: a second before now, since the block that records it
# is stamped with its leader's clock, which may trail this one slightly.
AS_OF_LAG_MS = 1_000


# --- the reports (pure) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustodyLine:
    """One custody-backed bond: token supply against attested custody."""

    bond: str
    supply: int
    custody: int
    as_of_ms: int
    attested_by: str  # empty: never attested (the genesis supply stands)
    age_max_days: int
    breaks: tuple[str, ...]  # why this line is a BREAK; empty: reconciled


def custody_report(
    genesis: Genesis, backed: Sequence[BackedView], now_ms: int
) -> list[CustodyLine]:
    """A line per custody-backed bond in ``backed``: BREAK when the supply exceeds the
    latest attested custody, or that attestation (or, never attested, the genesis) is
    older than the bond's ``age_max_days``."""
    lines = []
    for view in backed:
        backing = genesis.custody_by_bond.get(view.instrument)
        if not view.custody or backing is None:
            continue
        found = [a for a in view.attestations if isinstance(a, CustodyAttestation)]
        latest = found[-1] if found else genesis_custody(genesis, view.instrument)
        why = []
        if view.supply > latest.amount:
            why.append(f"supply exceeds custody by {view.supply - latest.amount}")
        if now_ms - latest.as_of_ms > backing.age_max_days * DAY_MS:
            why.append(f"attestation older than {backing.age_max_days} days")
        lines.append(
            CustodyLine(
                view.instrument,
                view.supply,
                latest.amount,
                latest.as_of_ms,
                latest.by,
                backing.age_max_days,
                tuple(why),
            )
        )
    return lines


@dataclass(frozen=True, slots=True)
class ReserveLine:
    """One reserve-backed cash token: coverage, composition and each genesis rule."""

    cash: str
    supply: int
    reserves: int
    bills: int
    deposits: int
    bill_count: int
    as_of_ms: int
    attested_by: str  # empty: never attested
    rules: tuple[tuple[str, bool, str], ...]  # (rule, holds, what was found)

    @property
    def coverage_bp(self) -> int | None:
        """Reserves over supply in basis points (rounded down); None with no supply."""
        return None if self.supply == 0 else self.reserves * 10_000 // self.supply


def reserve_report(
    genesis: Genesis, backed: Sequence[BackedView], now_ms: int
) -> list[ReserveLine]:
    """A line per reserve-backed cash token in ``backed``, each genesis rule PASS/FAIL."""
    lines = []
    for view in backed:
        if view.custody or view.instrument not in genesis.reserves_by_cash:
            continue
        found = [a for a in view.attestations if isinstance(a, ReserveAttestation)]
        latest = found[-1] if found else genesis_reserves(genesis, view.instrument)
        bills = sum(b.amount for b in latest.bills)
        lines.append(
            ReserveLine(
                view.instrument,
                view.supply,
                latest.total,
                bills,
                latest.deposits,
                len(latest.bills),
                latest.as_of_ms,
                latest.by,
                _rules(genesis, view, latest, now_ms),
            )
        )
    return lines


def _rules(
    genesis: Genesis, view: BackedView, a: ReserveAttestation, now_ms: int
) -> tuple[tuple[str, bool, str], ...]:
    r = genesis.reserves_by_cash[view.instrument]
    total, bills = a.total, sum(b.amount for b in a.bills)
    as_of = date_of_ms(a.as_of_ms)
    latest_ok = as_of + timedelta(days=r.bill_days_max)
    late = [b.cusip for b in a.bills if not as_of <= date.fromisoformat(b.maturity) <= latest_ok]
    attested = bool(a.by)
    return (
        ("coverage >= 100%", total >= view.supply, f"reserves {total:,}, supply {view.supply:,}"),
        ("attested", attested, "by " + a.by if attested else "never: the genesis supply stands"),
        (
            f"attestation at most {r.age_max_days} days old",
            now_ms - a.as_of_ms <= r.age_max_days * DAY_MS,
            f"{(now_ms - a.as_of_ms) // DAY_MS} days",
        ),
        (
            f"bills mature within {r.bill_days_max} days of the as-of",
            attested and not late,
            ", ".join(late) or f"{len(a.bills)} bills",
        ),
        (
            f"bills at least {_pct(r.bills_min_bp)} of reserves",
            attested and bills * 10_000 >= r.bills_min_bp * total,
            _share(bills, total),
        ),
        (
            f"deposits at most {_pct(r.deposits_max_bp)} of reserves",
            attested and a.deposits * 10_000 <= r.deposits_max_bp * total,
            _share(a.deposits, total),
        ),
    )


def _pct(bp: int) -> str:
    return f"{bp // 100}.{bp % 100:02d}%"


def _share(part: int, total: int) -> str:
    return "no reserves" if total == 0 else _pct(part * 10_000 // total)


# --- the commands ----------------------------------------------------------------------


def _document(args: argparse.Namespace) -> bytes:
    """The SHA-256 of --document FILE, or --document-sha256 HEX."""
    if args.document is not None:
        try:
            return crypto.sha256(read_regular(args.document))
        except OSError as e:
            raise CliError(f"--document {args.document}: {e.strerror}", EXIT_USAGE) from None
    try:
        digest = bytes.fromhex(args.document_sha256)
    except ValueError:
        digest = b""
    if len(digest) != crypto.HASH_LEN:
        raise CliError("--document-sha256 must be 64 hex digits", EXIT_USAGE)
    return digest


def _as_of(args: argparse.Namespace) -> int:
    return args.as_of_ms if args.as_of_ms is not None else int(time.time() * 1000) - AS_OF_LAG_MS


def _attest_custody(args: argparse.Namespace) -> int:
    g = _genesis(args)
    backing = g.custody_by_bond.get(args.bond)
    custodian = args.custodian or (backing.custodian if backing else "")
    if not custodian:
        raise CliError(
            f"{args.bond} is not custody-backed in genesis; pass --custodian", EXIT_USAGE
        )
    terms = (custodian, args.bond, args.amount, _as_of(args), _document(args))
    return _submit_built(args, lambda t: t.attest_custody(*terms), _key(args, custodian, args.key))


def _bill(text: str) -> Bill:
    """CUSIP:YYYY-MM-DD:AMOUNT (the SDK checks each part)."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[2].replace("_", "").replace(",", "").isdigit():
        raise CliError(f"--bill {text!r}: expected CUSIP:YYYY-MM-DD:AMOUNT", EXIT_USAGE)
    return Bill(parts[0], parts[1], int(parts[2].replace("_", "").replace(",", "")))


def _attest_reserves(args: argparse.Namespace) -> int:
    g = _genesis(args)
    inst = g.instrument_by_id.get(args.cash)
    issuer = args.issuer or (inst.issuer if inst else "")
    bills = [_bill(b) for b in args.bill or ()]
    terms = (issuer, args.cash, _as_of(args), _document(args), args.deposits, bills)
    return _submit_built(args, lambda t: t.attest_reserves(*terms), _key(args, issuer, args.key))


def _fetch(args: argparse.Namespace) -> tuple[Genesis, int, tuple[BackedView, ...], int]:
    g = _genesis(args)
    with _client(args) as client:
        height, backed = client.attestations(args.instrument or "")
    now = args.now_ms if args.now_ms is not None else int(time.time() * 1000)
    return g, height, backed, now


def _report_custody(args: argparse.Namespace) -> int:
    g, height, backed, now = _fetch(args)
    lines = custody_report(g, backed, now)
    breaks = sum(1 for line in lines if line.breaks)
    if args.json:
        emit_json(
            {
                "height": height,
                "now_ms": now,
                "breaks": breaks,
                "instruments": [custody_doc(line) for line in lines],
            }
        )
        return EXIT_FAILED if breaks else EXIT_OK
    print(f"custody after block {height}: {len(lines)} custody-backed bonds, {breaks} BREAK")
    rows = [
        (
            line.bond,
            f"{line.supply:,}",
            f"{line.custody:,}",
            _day(line.as_of_ms),
            line.attested_by or "(genesis)",
            "BREAK" if line.breaks else "ok",
            "; ".join(line.breaks),
        )
        for line in lines
    ]
    table(("bond", "supply", "custody", "as of", "by", "status", "why"), rows, right=(1, 2))
    return EXIT_FAILED if breaks else EXIT_OK


def custody_doc(line: CustodyLine) -> dict[str, object]:
    """A custody line as JSON (``report custody --json``, the console's Positions page)."""
    return {
        "bond": line.bond,
        "supply": line.supply,
        "custody": line.custody,
        "as_of_ms": line.as_of_ms,
        "attested_by": line.attested_by,
        "age_max_days": line.age_max_days,
        "status": "BREAK" if line.breaks else "OK",
        "breaks": list(line.breaks),
    }


def _report_reserves(args: argparse.Namespace) -> int:
    g, height, backed, now = _fetch(args)
    lines = reserve_report(g, backed, now)
    fails = sum(1 for line in lines for _, ok, _ in line.rules if not ok)
    if args.json:
        emit_json(
            {
                "height": height,
                "now_ms": now,
                "fails": fails,
                "tokens": [reserve_doc(line) for line in lines],
            }
        )
        return EXIT_FAILED if fails else EXIT_OK
    print_reserve_report(height, lines)
    return EXIT_FAILED if fails else EXIT_OK


def print_reserve_report(height: int, lines: Sequence[ReserveLine]) -> None:
    """The text form of ``reserve_report`` (``ledger report reserves``, ``make demo``)."""
    fails = sum(1 for line in lines for _, ok, _ in line.rules if not ok)
    print(f"reserves after block {height}: {len(lines)} reserve-backed tokens, {fails} FAIL")
    for line in lines:
        cov = "n/a (no supply)" if line.coverage_bp is None else _pct(line.coverage_bp)
        print(
            f"{line.cash}: supply {line.supply:,}, reserves {line.reserves:,} ({line.bill_count} "
            f"bills {line.bills:,}, deposits {line.deposits:,}), coverage {cov}, "
            f"as of {_day(line.as_of_ms)} by {line.attested_by or '(genesis)'}"
        )
        rows = [("PASS" if ok else "FAIL", rule, found) for rule, ok, found in line.rules]
        table(("", "rule", "found"), rows)


def reserve_doc(line: ReserveLine) -> dict[str, object]:
    """A reserve line as JSON (``report reserves --json``, the console's Positions page)."""
    return {
        "cash": line.cash,
        "supply": line.supply,
        "reserves": line.reserves,
        "bills": line.bills,
        "bill_count": line.bill_count,
        "deposits": line.deposits,
        "coverage_bp": line.coverage_bp,
        "as_of_ms": line.as_of_ms,
        "attested_by": line.attested_by,
        "rules": [{"rule": r, "pass": ok, "found": f} for r, ok, f in line.rules],
    }


def _day(ms: int) -> str:
    return date_of_ms(ms).isoformat()


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "reserve_attest_custody": _attest_custody,
    "reserve_attest_reserves": _attest_reserves,
    "reserve_report_custody": _report_custody,
    "reserve_report_reserves": _report_reserves,
}
