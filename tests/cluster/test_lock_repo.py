"""A lock securing a repo on a real 4-validator cluster, through the SDK and the CLI
(docs/ledger.md "Locks and swaps", "Repo"): BANK05 borrows from BANK06 and pledges bills
to it against the repo from the CLI (`lock create --secures-repo`); the claim is refused
NOT_CLAIMABLE while the repo is live; BANK05 cannot pay the close, the repo defaults at
its deadline, the lock lists as claimable with BANK05 as the defaulter, and BANK06 claims
the bills from the CLI with a receipt that verifies offline."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from client import AsyncLedgerClient, RejectedError, ResultCode, Transactions, sign
from client.cli import main
from node.netconfig import OPERATOR_IDENTITY
from node.settlement import RepoStatus
from tests.cluster.harness import Cluster, module_cluster, participant_key

pytestmark = pytest.mark.slow

RC = ResultCode
PLEDGE = 500

cluster = module_cluster("lockrepo")  # 4 validators, quorum 3, one per module


def _open_and_pledge(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> bytes:
    """Repo LR1 (closing in 2 s, defaulting 1 s later) and BANK05's pledge: the lock id."""

    async def opened() -> None:
        async with AsyncLedgerClient.from_run_dir(
            cluster.net.run_dir, identity=OPERATOR_IDENTITY
        ) as client:
            g, bond, cash = client.genesis, cluster.demo.bonds[0], cluster.demo.cash
            close_ms = int(time.time() * 1000) + 2_000
            tx = Transactions(g).repo_open(
                "LR1", "BANK05", "BANK06", bond, 10, cash, 1_000, close_ms, close_ms + 1_000,
                repurchase_amount=1_001,
            )  # fmt: skip
            keys = (participant_key(cluster, "BANK05"), participant_key(cluster, "BANK06"))
            assert (await client.submit(sign(tx, *keys, genesis=g))).ok

    asyncio.run(opened())
    run = ["--run-dir", str(cluster.net.run_dir)]
    bill = cluster.demo.bonds[1]
    assert main([*run, "lock", "create", "--holder", "BANK05", "--beneficiary", "BANK06",
                 "--instrument", bill, "--amount", str(PLEDGE), "--for-s", "600",
                 "--secures-repo", "LR1"]) == 0  # fmt: skip
    assert "securing repo LR1" in capsys.readouterr().out
    assert main([*run, "--json", "lock", "list", "--party", "BANK05"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)["locks"]
    assert doc["secures"] == {"kind": "REPO", "ref": b"LR1".hex()} and not doc["claimable"]
    return bytes.fromhex(doc["lock_id"])


async def _default(client: AsyncLedgerClient, cluster: Cluster, lock_id: bytes) -> None:
    """BANK05 keeps 1,000 cents of the 1,001 due; the close waits and defaults, with
    blocks kept coming (an idle cluster makes none)."""
    g, txs = client.genesis, Transactions(client.genesis)
    cash, bill = cluster.demo.cash, cluster.demo.bonds[1]
    keys = {b: participant_key(cluster, b) for b in ("BANK05", "BANK06", "BANK04")}
    early = txs.claim_lock(lock_id, "BANK05", "BANK06", bill, PLEDGE)
    with pytest.raises(RejectedError) as e:
        await client.submit(sign(early, keys["BANK06"], genesis=g))
    assert e.value.code is RC.NOT_CLAIMABLE  # the repo is open: no default
    while (left := (await client.balances("BANK05")).amounts[cash] - 1_000) > 0:
        out = txs.transfer(cash, "BANK05", "BANK01", min(left, 500_000_000))
        assert (await client.submit(sign(out, keys["BANK05"], genesis=g))).ok
    close = sign(txs.repo_close("LR1", "BANK05", "BANK06", "BANK05", "BANK06"),
                 keys["BANK05"], keys["BANK06"], genesis=g)  # fmt: skip
    assert (await client.submit(close)).code is RC.PENDING_SETTLEMENT
    outcome = asyncio.ensure_future(client.wait_settled(close.tx_id, timeout_s=60))
    while not outcome.done():
        nudge = txs.transfer(g.instruments[0].id, "BANK04", "BANK03", 1)
        await client.submit(sign(nudge, keys["BANK04"], genesis=g))
        await asyncio.wait({outcome}, timeout=0.5)
    with pytest.raises(RejectedError) as e:
        await outcome
    assert e.value.code is RC.FAILED_DEADLINE


def test_the_lender_claims_bills_pledged_against_a_repo_the_borrower_defaults_on(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lock_id, run_dir = _open_and_pledge(cluster, capsys), cluster.net.run_dir
    bill = cluster.demo.bonds[1]

    async def defaulted() -> int:
        async with AsyncLedgerClient.from_run_dir(run_dir, identity=OPERATOR_IDENTITY) as client:
            await _default(client, cluster, lock_id)
            _, (rec,) = await client.repos("LR1")
            assert (rec.status, rec.defaulter) == (RepoStatus.DEFAULTED, "BANK05")
            (view,) = (await client.locks("BANK06"))[1]
            assert view.claimable and view.defaulted == ("BANK05",)
            return (await client.balances("BANK06")).amounts[bill]

    before = asyncio.run(defaulted())
    receipt = tmp_path / "claim.json"
    assert main(["--run-dir", str(run_dir), "lock", "claim", "--lock", lock_id.hex(),
                 "--beneficiary", "BANK06", "--receipt-out", str(receipt)]) == 0  # fmt: skip
    assert "CLAIM-LOCK" in capsys.readouterr().out
    assert main(["verify-receipt", str(receipt), "--genesis", str(run_dir / "genesis.json")]) == 0

    async def claimed() -> None:
        async with AsyncLedgerClient.from_run_dir(run_dir, identity="BANK06") as client:
            assert (await client.balances("BANK06")).amounts[bill] == before + PLEDGE
            assert (await client.locks())[1] == ()

    asyncio.run(claimed())
