"""Repos on a real 4-validator cluster, through the SDK and the CLI (docs/ledger.md "Repo"):
an intraday repo opens (both legs move, the record reads back to its parties and not to a
third bank), a one-sided early close is refused with a receipt that verifies offline and
moves nothing, both parties close it early at purchase plus interest; the CLI opens,
lists, reports and closes a second one."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from client import (
    AsyncLedgerClient,
    NotFoundError,
    RejectedError,
    ResultCode,
    Transactions,
    sign,
    verify_receipt,
)
from client.cli import main
from node.netconfig import OPERATOR_IDENTITY
from node.settlement import RepoStatus
from tests.cluster.harness import Cluster, module_cluster, participant_key

pytestmark = pytest.mark.slow

RC = ResultCode
HOUR_MS = 3_600_000
PURCHASE = 100_000_000  # $1,000,000.00

cluster = module_cluster("repo")  # 4 validators, quorum 3, one per module


def test_an_intraday_repo_opens_and_closes_through_the_sdk(cluster: Cluster) -> None:
    async def go() -> None:
        async with AsyncLedgerClient.from_run_dir(
            cluster.net.run_dir, identity=OPERATOR_IDENTITY
        ) as client:
            g, bond, cash = client.genesis, cluster.demo.bonds[0], cluster.demo.cash
            b1, b2 = participant_key(cluster, "BANK01"), participant_key(cluster, "BANK02")
            before = (await client.balances("BANK01")).amounts
            close_ms = int(time.time() * 1000) + HOUR_MS
            txs = Transactions(g)
            tx = txs.repo_open(
                "SDK1", "BANK01", "BANK02", bond, 1_000, cash, PURCHASE, close_ms,
                close_ms + HOUR_MS, rate_bp=500,
            )  # fmt: skip
            assert (await client.submit(sign(tx, b1, b2, genesis=g))).code is RC.OK
            opened = (await client.balances("BANK01")).amounts
            assert opened[bond] == before[bond] - 1_000
            assert opened[cash] == before[cash] + PURCHASE
            _, (rec,) = await client.repos("SDK1")
            assert (rec.status, rec.borrower, rec.lender) == (RepoStatus.OPEN, "BANK01", "BANK02")
            async with AsyncLedgerClient.from_run_dir(
                cluster.net.run_dir, identity="BANK03"
            ) as third:
                with pytest.raises(NotFoundError):  # as for an unknown id: no oracle
                    await third.repos("SDK1")
                assert (await third.repos())[1] == ()  # its own: none
                assert (await third.repos(party="BANK01"))[1] == ()  # none with BANK03
            with pytest.raises(RejectedError) as e:
                await client.submit(
                    sign(txs.repo_close("SDK1", "BANK01", "BANK02", "BANK02"), b2, genesis=g)
                )
            assert e.value.code is RC.EARLY_CLOSE_ONE_SIDED
            verify_receipt(e.value.receipt, cluster.net.run_dir / "genesis.json")
            assert (await client.balances("BANK01")).amounts == opened
            both = sign(
                txs.repo_close("SDK1", "BANK01", "BANK02", "BANK01", "BANK02"), b1, b2, genesis=g
            )
            assert (await client.submit(both)).code is RC.OK
            _, (rec,) = await client.repos("SDK1")
            assert rec.status is RepoStatus.CLOSED
            assert PURCHASE <= rec.close_amount <= PURCHASE + 579  # at most an hour of 5%
            closed = (await client.balances("BANK01")).amounts
            assert closed[bond] == before[bond]
            assert closed[cash] == before[cash] + PURCHASE - rec.close_amount

    asyncio.run(go())


def test_the_cli_opens_lists_reports_and_closes_a_repo(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["--run-dir", str(cluster.net.run_dir)]
    bond, cash = cluster.demo.bonds[0], cluster.demo.cash
    assert main([*run, "repo", "open", "--id", "CLI1", "--borrower", "BANK03",
                 "--lender", "BANK04", "--bond", bond, "--quantity", "500", "--cash", cash,
                 "--purchase", "50000000", "--repurchase", "50001000",
                 "--close-in", "3600"]) == 0  # fmt: skip
    assert "REPO-OPEN CLI1" in capsys.readouterr().out
    assert main([*run, "--json", "--as", "BANK03", "repo", "list"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)["repos"]
    assert (doc["id"], doc["status"], doc["lender"]) == ("CLI1", "OPEN", "BANK04")
    assert main([*run, "--json", "report", "repo", "--party", "BANK04"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counterparties"] == [
        {
            "lender": "BANK04",
            "borrower": "BANK03",
            "cash": cash,
            "repos": 1,
            "cash_lent": 50_000_000,
        }
    ]
    assert report["collateral"] == [{"lender": "BANK04", "bond": bond, "units": 500}]
    assert main([*run, "repo", "close", "--id", "CLI1", "--by", "BANK04"]) == 1  # early, alone
    assert "EARLY_CLOSE_ONE_SIDED" in capsys.readouterr().err
    assert main([*run, "repo", "close", "--id", "CLI1", "--by", "BANK03", "--by", "BANK04"]) == 0
    capsys.readouterr()
    assert main([*run, "--json", "repo", "list", "--id", "CLI1"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)["repos"]
    assert (doc["status"], doc["close_amount"]) == ("CLOSED", 50_001_000)
    assert main([*run, "--json", "report", "repo", "--party", "BANK04"]) == 0
    assert json.loads(capsys.readouterr().out)["counterparties"] == []  # nothing live


def test_a_close_the_borrower_cannot_pay_waits_then_settles_with_a_proven_event(
    cluster: Cluster,
) -> None:
    async def go() -> None:
        async with AsyncLedgerClient.from_run_dir(
            cluster.net.run_dir, identity=OPERATOR_IDENTITY
        ) as client:
            g, bond, cash = client.genesis, cluster.demo.bonds[0], cluster.demo.cash
            keys = {b: participant_key(cluster, b) for b in ("BANK05", "BANK06", "BANK01")}
            txs = Transactions(g)
            close_ms = int(time.time() * 1000) + HOUR_MS
            tx = txs.repo_open(
                "PEND1", "BANK05", "BANK06", bond, 10, cash, 1_000, close_ms, close_ms + HOUR_MS,
                repurchase_amount=1_001,
            )  # fmt: skip
            assert (await client.submit(sign(tx, keys["BANK05"], keys["BANK06"], genesis=g))).ok
            # The borrower sends away all its cash (in co-sign-free pieces) but 1,000 cents.
            while (left := (await client.balances("BANK05")).amounts[cash] - 1_000) > 0:
                out = txs.transfer(cash, "BANK05", "BANK01", min(left, 500_000_000))
                assert (await client.submit(sign(out, keys["BANK05"], genesis=g))).ok
            close = txs.repo_close("PEND1", "BANK05", "BANK06", "BANK05", "BANK06")
            both = sign(close, keys["BANK05"], keys["BANK06"], genesis=g)
            waiting = await client.submit(both)
            assert waiting.code is RC.PENDING_SETTLEMENT and waiting.waiting
            _, (rec,) = await client.repos("PEND1")
            assert rec.status is RepoStatus.CLOSING and rec.close_amount == 1_001
            refund = txs.transfer(cash, "BANK01", "BANK05", 1)
            assert (await client.submit(sign(refund, keys["BANK01"], genesis=g))).ok
            settled = await client.wait_settled(both.tx_id, timeout_s=30)
            assert settled.event_proof is not None and settled.event_proof.code is RC.OK
            verify_receipt(settled, cluster.net.run_dir / "genesis.json")
            _, (rec,) = await client.repos("PEND1")
            assert rec.status is RepoStatus.CLOSED
            assert (await client.balances("BANK05")).amounts[cash] == 0

    asyncio.run(go())
