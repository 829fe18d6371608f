"""The repo CLI's offline parts (client/_cli_repo.py): the exposure report's sums and the
argument rules; the commands against a node run in tests/cluster/test_repo.py."""

from __future__ import annotations

import pytest

from client._cli_repo import exposure
from client.cli import main
from node.settlement import RepoRecord, RepoStatus


def _repo(rid: str, lender: str, borrower: str, status: RepoStatus, units: int) -> RepoRecord:
    return RepoRecord(
        rid, borrower, lender, "BOND1", units, "USD", units * 10, 0, 500, 1, 2, 3, 1, status
    )


def test_exposure_sums_live_repos_per_pair_and_collateral_per_lender() -> None:
    repos = [
        _repo("A", "BANK02", "BANK01", RepoStatus.OPEN, 100),
        _repo("B", "BANK02", "BANK01", RepoStatus.CLOSING, 50),  # live until it settles
        _repo("C", "BANK02", "BANK03", RepoStatus.OPEN, 7),
        _repo("D", "BANK02", "BANK01", RepoStatus.CLOSED, 1_000),  # not live: not counted
        _repo("E", "BANK04", "BANK01", RepoStatus.DEFAULTED, 1_000),
    ]
    doc = exposure(repos)
    assert doc["counterparties"] == [
        {"lender": "BANK02", "borrower": "BANK01", "cash": "USD", "repos": 2, "cash_lent": 1_500},
        {"lender": "BANK02", "borrower": "BANK03", "cash": "USD", "repos": 1, "cash_lent": 70},
    ]
    assert doc["collateral"] == [{"lender": "BANK02", "bond": "BOND1", "units": 157}]


@pytest.mark.parametrize(
    "extra",
    [
        ["--rate-bp", "500", "--repurchase", "1005"],  # a rate or an amount, not both
        ["--close-in", "60"],  # neither
    ],
)
def test_repo_open_needs_exactly_one_price(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["repo", "open", "--id", "R1", "--borrower", "BANK01", "--lender", "BANK02",
            "--bond", "B", "--quantity", "1", "--cash", "C", "--purchase", "1000"]  # fmt: skip
    when = [] if "--close-in" in extra else ["--close-in", "60"]
    assert main([*base, *extra, *when]) == 2
    assert "--rate-bp" in capsys.readouterr().err
