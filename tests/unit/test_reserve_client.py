"""Custody and reserves in the SDK and the CLI, without a cluster: the builders check
each field against genesis (and put bills in CUSIP order), the report functions flag a
BREAK or a FAIL exactly when they should (each with its negative control: the same
inputs reconciled), and the commands exist with --help."""

from __future__ import annotations

import pytest

from client import BackedView, InvalidFieldError, Transactions
from client._cli_net import describe
from client._cli_reserve import DAY_MS, custody_report, reserve_report
from client.cli import main
from node import crypto
from node.settlement import AttestReserves, Bill, CustodyAttestation, ReserveAttestation
from tests.reserve_helpers import BILL_A, BILL_B, backed_net

NET = backed_net()
G = NET.genesis
BOND, CASH = NET.bonds[0], NET.cash
DOC = crypto.sha256(b"statement")
T0 = G.genesis_time_ms
HELD, CASH_HELD = 6 * 10_000_000, 6 * 1_000_000_000


def test_reserve_bills_are_checked_and_put_in_cusip_order() -> None:
    tx = Transactions(G).attest_reserves(
        "CASHCO", CASH, T0 + 1, DOC, 0, [(BILL_B, "2026-02-01", 2), Bill(BILL_A, "2026-03-01", 1)]
    )
    assert isinstance(tx, AttestReserves)
    assert [b.cusip for b in tx.bills] == [BILL_A, BILL_B]


def _with_bills(t: Transactions, *bills: tuple[str, str, int]) -> AttestReserves:
    return t.attest_reserves("CASHCO", CASH, T0, DOC, 0, bills)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda t: t.attest_custody("CSD", CASH, 1, T0, DOC), "bond"),
        (lambda t: t.attest_custody("CSD", BOND, -1, T0, DOC), "amount"),
        (lambda t: t.attest_custody("CSD", BOND, 1, T0, b"short"), "document_sha256"),
        (lambda t: t.attest_reserves("CASHCO", BOND, T0, DOC, 0), "cash"),
        (lambda t: _with_bills(t, ("912797GL4", "2026-01-01", 1)), "bills"),
        (lambda t: _with_bills(t, (BILL_A, "someday", 1)), "bills"),
        (lambda t: _with_bills(t, (BILL_A, "2026-01-01", 0)), "bills"),
        (lambda t: _with_bills(t, (BILL_A, "2026-01-01", 1), (BILL_A, "2026-01-01", 1)), "bills"),
    ],
)  # fmt: skip
def test_builders_refuse_bad_fields_naming_them(call: object, field: str) -> None:
    with pytest.raises(InvalidFieldError) as e:
        call(Transactions(G))  # type: ignore[operator]
    assert e.value.field == field


def _custody(supply: int, *found: tuple[int, int]) -> BackedView:
    atts = tuple(CustodyAttestation(BOND, amt, as_of, DOC, 1, "CSD") for amt, as_of in found)
    return BackedView(BOND, True, supply, atts)


def test_custody_report_breaks_when_supply_exceeds_custody_and_not_when_covered() -> None:
    now = T0 + DAY_MS
    (line,) = custody_report(G, [_custody(HELD + 1, (HELD, T0 + 1))], now)
    assert line.breaks == ("supply exceeds custody by 1",)
    (line,) = custody_report(G, [_custody(HELD, (HELD, T0 + 1))], now)  # control
    assert (line.breaks, line.custody, line.attested_by) == ((), HELD, "CSD")


def test_custody_report_breaks_on_an_old_attestation_or_none_at_all() -> None:
    age = G.custody_by_bond[BOND].age_max_days * DAY_MS
    (old,) = custody_report(G, [_custody(HELD, (HELD, T0 + 1))], T0 + 2 + age)
    assert old.breaks == (f"attestation older than {age // DAY_MS} days",)
    (fresh,) = custody_report(G, [_custody(HELD, (HELD, T0 + 1))], T0 + 1 + age)
    assert fresh.breaks == ()
    (never,) = custody_report(G, [_custody(HELD)], T0 + age)  # the genesis supply, as of T0
    assert (never.custody, never.attested_by, never.breaks) == (HELD, "", ())
    (never_old,) = custody_report(G, [_custody(HELD)], T0 + 1 + age)
    assert never_old.breaks != ()


def _reserves(supply: int, deposits: int, *bills: Bill, as_of: int = T0 + 1) -> BackedView:
    att = ReserveAttestation(CASH, as_of, DOC, 1, "CASHCO", deposits, bills)
    return BackedView(CASH, False, supply, (att,))


def _failed(view: BackedView, now: int = T0 + DAY_MS) -> list[str]:
    (line,) = reserve_report(G, [view], now)
    return [rule for rule, ok, _ in line.rules if not ok]


def test_reserve_report_passes_a_compliant_attestation() -> None:
    """Control for the tests below: 90% in bills maturing within 93 days, 10% deposits."""
    view = _reserves(CASH_HELD, CASH_HELD // 10, Bill(BILL_A, "2026-03-01", CASH_HELD * 9 // 10))
    assert _failed(view) == []
    (line,) = reserve_report(G, [view], T0 + DAY_MS)
    assert line.coverage_bp == 10_000


_WITHIN = "bills mature within 93 days of the as-of"


@pytest.mark.parametrize(
    ("view", "rule"),
    [
        (_reserves(CASH_HELD + 1, 0, Bill(BILL_A, "2026-03-01", CASH_HELD)), "coverage >= 100%"),
        (_reserves(1, 0, Bill(BILL_A, "2026-06-01", 1)), _WITHIN),
        (_reserves(1, 0, Bill(BILL_A, "2025-12-31", 1)), _WITHIN),  # matured before the as-of
        (_reserves(5, 3, Bill(BILL_A, "2026-03-01", 7)), "bills at least 80.00% of reserves"),
        (_reserves(5, 3, Bill(BILL_A, "2026-03-01", 7)), "deposits at most 20.00% of reserves"),
    ],
)  # fmt: skip
def test_reserve_report_fails_each_broken_rule(view: BackedView, rule: str) -> None:
    assert rule in _failed(view)


def test_reserve_report_fails_an_old_or_missing_attestation() -> None:
    good = (CASH_HELD, 0, Bill(BILL_A, "2026-03-01", CASH_HELD))
    assert _failed(_reserves(*good), T0 + 8 * DAY_MS) == ["attestation at most 7 days old"]
    never = BackedView(CASH, False, 0, ())
    assert "attested" in _failed(never)


def test_describe_names_attestations() -> None:
    t = Transactions(G)
    assert describe(t.attest_custody("CSD", BOND, 1_000, T0, DOC)) == (
        f"ATTEST-CUSTODY 1,000 {BOND} by CSD"
    )
    tx = t.attest_reserves("CASHCO", CASH, T0, DOC, 5, [(BILL_A, "2026-03-01", 10)])
    assert describe(tx) == f"ATTEST-RESERVES 15 behind {CASH} (1 bills) by CASHCO"


@pytest.mark.parametrize(
    "argv",
    [
        ["attest", "custody", "--help"],
        ["attest", "reserves", "--help"],
        ["report", "custody", "--help"],
        ["report", "reserves", "--help"],
    ],
)
def test_the_commands_have_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert "usage: ledger" in capsys.readouterr().out


def test_attest_needs_a_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attest", "custody", "--bond", BOND, "--amount", "1"]) == 2
    assert "--document" in capsys.readouterr().err


def test_attestations_are_read_by_issuer_custodian_and_observers_only() -> None:
    from node.access import Caller, may_read_attestations
    from node.settlement import Registry

    def reads(who: str, instrument: str, observer: bool = False) -> bool:
        return may_read_attestations(Caller(who, observer), instrument, Registry.at_genesis(G))

    assert reads("CSD", BOND) and reads("TREASURY", BOND) and reads("CASHCO", CASH)
    assert reads("AUDITOR", BOND, observer=True) and reads("REGULATOR", CASH, observer=True)
    assert not reads("BANK01", BOND) and not reads("BANK01", CASH)  # a holder
    assert not reads("CSD", CASH) and not reads("CASHCO", BOND)  # another instrument's staff
