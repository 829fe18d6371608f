"""Freezes on a real 4-validator cluster, through the SDK and the CLI (docs/ledger.md
"Freezes"): the regulator freezes a bank, the bank's trade is refused FROZEN with a
receipt that verifies offline and nothing moves; `ledger freezes` lists the freeze;
compliance lifts it from the CLI and the same trade settles."""

from __future__ import annotations

import asyncio
import json

import pytest

from client import (
    AsyncLedgerClient,
    RejectedError,
    ResultCode,
    SignedTransaction,
    Transactions,
    sign,
    verify_receipt,
)
from client.cli import main
from node.netconfig import OPERATOR_IDENTITY
from node.settlement import FreezeReason
from tests.cluster.harness import Cluster, module_cluster, participant_key

pytestmark = pytest.mark.slow

RC = ResultCode


cluster = module_cluster("freeze")  # 4 validators, quorum 3, one per module


def _trade(c: Cluster, client: AsyncLedgerClient) -> SignedTransaction:
    g = client.genesis
    tx = Transactions(g).dvp("BANK01", "BANK02", c.demo.bonds[0], 10, c.demo.cash, 9)
    return sign(tx, participant_key(c, "BANK01"), participant_key(c, "BANK02"), genesis=g)


def test_a_freeze_blocks_a_trade_and_an_unfreeze_lets_it_through(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = str(cluster.net.run_dir)

    async def frozen() -> dict[str, int]:
        async with AsyncLedgerClient.from_run_dir(
            cluster.net.run_dir, identity=OPERATOR_IDENTITY
        ) as client:
            g = client.genesis
            tx = Transactions(g).freeze("BANK02", "REGULATOR", FreezeReason.SANCTIONS)
            done = await client.submit(sign(tx, participant_key(cluster, "REGULATOR"), genesis=g))
            assert done.code is RC.OK
            before = (await client.balances("BANK02")).amounts
            with pytest.raises(RejectedError) as e:
                await client.submit(_trade(cluster, client))
            assert e.value.code is RC.FROZEN
            verify_receipt(e.value.receipt, cluster.net.run_dir / "genesis.json")
            assert (await client.balances("BANK02")).amounts == before
            _, found = await client.freezes()
            assert [(f.account, f.instrument, f.by) for f in found] == [("BANK02", "", "REGULATOR")]
            for who, seen in (("BANK01", []), ("BANK02", ["BANK02"])):  # its own freezes only
                async with AsyncLedgerClient.from_run_dir(run_dir, identity=who) as party:
                    assert [f.account for f in (await party.freezes())[1]] == seen
            return dict(before)

    before = asyncio.run(frozen())
    assert main(["--run-dir", run_dir, "--json", "freezes"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(f["account"], f["reason"]) for f in doc["freezes"]] == [("BANK02", "SANCTIONS")]
    assert main(["--run-dir", run_dir, "submit", "unfreeze", "--account", "BANK02",
                 "--by", "COMPLIANCE"]) == 0  # fmt: skip
    capsys.readouterr()

    async def thawed() -> None:
        async with AsyncLedgerClient.from_run_dir(
            cluster.net.run_dir, identity=OPERATOR_IDENTITY
        ) as client:
            assert (await client.freezes())[1] == ()
            done = await client.submit(_trade(cluster, client))
            assert done.code is RC.OK
            after = (await client.balances("BANK02")).amounts
            assert after[cluster.demo.bonds[0]] == before[cluster.demo.bonds[0]] + 10

    asyncio.run(thawed())
