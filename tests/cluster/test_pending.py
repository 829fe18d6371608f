"""Pending settlement on a real 4-validator cluster, through the SDK (ADR 0014): a trade
short of bonds waits, settles when the seller is funded, and its later outcome comes with
a receipt that verifies offline; one never funded fails at its deadline; the CLI's
pending book and settlement report show both."""

from __future__ import annotations

import asyncio
import json

import pytest

from client import (
    AsyncLedgerClient,
    LedgerClient,
    RejectedError,
    ResultCode,
    Transactions,
    load_key,
    sign,
    verify_receipt,
)
from client.cli import main
from node.netconfig import OPERATOR_IDENTITY
from tests.cluster.harness import Cluster, module_cluster

pytestmark = pytest.mark.slow

RC = ResultCode


cluster = module_cluster("pending")  # 4 validators, quorum 3, one per module


def _signed_pending(c: Cluster, client: AsyncLedgerClient, held: int, deadline_s: int) -> bytes:
    """BANK01 sells 100 bond units more than it holds to BANK02: short until funded."""
    g, bond, cash = client.genesis, c.demo.bonds[0], c.demo.cash
    tx = Transactions(g).pending_dvp("BANK01", "BANK02", bond, held + 100, cash, 777, deadline_s)
    keys = [load_key(c.net.run_dir / "participants" / f"{p}.key") for p in ("BANK01", "BANK02")]
    return sign(tx, *keys, genesis=g).raw


async def _transfer(c: Cluster, client: AsyncLedgerClient, units: int, to: str) -> None:
    g = client.genesis
    tx = Transactions(g).transfer(c.demo.bonds[0], "BANK03", to, units)
    key = load_key(c.net.run_dir / "participants" / "BANK03.key")
    await client.submit(sign(tx, key, genesis=g))


def test_a_short_trade_waits_settles_when_funded_and_proves_it(cluster: Cluster) -> None:
    async def scenario() -> None:
        async with AsyncLedgerClient.from_run_dir(
            cluster.net.run_dir, identity=OPERATOR_IDENTITY
        ) as client:
            bond = cluster.demo.bonds[0]
            held = (await client.balances("BANK01")).amounts[bond]
            raw = _signed_pending(cluster, client, held, deadline_s=120)
            first = await client.submit(raw)
            assert first.code is RC.PENDING_SETTLEMENT and first.waiting
            _, book = await client.pending()
            assert [p.tx_id for p in book] == [first.tx_id]
            settled = asyncio.ensure_future(client.wait_settled(first.tx_id, timeout_s=60))
            await _transfer(cluster, client, 100, "BANK01")  # the seller is funded
            receipt = await settled
            assert receipt.ok and receipt.event_proof is not None
            verify_receipt(receipt, cluster.net.run_dir / "genesis.json")
            after = await client.balances("BANK01")
            assert after.amounts[bond] == 0
            status = await client.transaction(first.tx_id)
            assert status.settlement is not None and status.settlement.code is RC.OK
            assert status.settlement.settled_quantity == held + 100
            assert (await client.pending())[1] == ()

    asyncio.run(scenario())


def test_an_unfunded_trade_fails_at_its_deadline_with_a_proof(cluster: Cluster) -> None:
    async def scenario() -> None:
        async with AsyncLedgerClient.from_run_dir(
            cluster.net.run_dir, identity=OPERATOR_IDENTITY
        ) as client:
            held = (await client.balances("BANK01")).amounts[cluster.demo.bonds[0]]
            first = await client.submit(_signed_pending(cluster, client, held, deadline_s=2))
            assert first.code is RC.PENDING_SETTLEMENT
            outcome = asyncio.ensure_future(client.wait_settled(first.tx_id, timeout_s=60))
            # An idle cluster makes no blocks: keep moving unrelated units until one ends
            # after the deadline (block times are the cluster's clock).
            while not outcome.done():
                await _transfer(cluster, client, 1, "BANK04")
                await asyncio.wait({outcome}, timeout=0.5)
            with pytest.raises(RejectedError) as e:
                await outcome
            assert e.value.code is RC.FAILED_DEADLINE
            receipt = e.value.receipt
            verify_receipt(receipt, cluster.net.run_dir / "genesis.json")
            assert receipt.event_proof is not None and receipt.refused

    asyncio.run(scenario())


def test_the_cli_reports_the_recycled_and_the_failed_trade(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs after the two trades above (module order)."""
    run_dir = str(cluster.net.run_dir)
    assert main(["--run-dir", run_dir, "--json", "report", "settlement"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["settled_after_recycling"] >= 1
    assert doc["failed_by_reason"].get("FAILED_DEADLINE", 0) >= 1
    assert doc["pending"] >= 2 and doc["settle_after_recycling_ms"]["count"] >= 1
    finality = doc["finality_ms"]  # from the validators' timelines, every trade's block
    assert finality["blocks"] >= 2 and finality["blocks_not_in_timelines"] == 0
    assert 0 <= finality["p50"] <= finality["p99"]
    assert main(["--run-dir", run_dir, "--json", "fails"]) == 0
    fails = json.loads(capsys.readouterr().out)
    assert any(f["reason"] == "FAILED_DEADLINE" and f["event"] for f in fails)
    assert main(["--run-dir", run_dir, "--json", "pending"]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == []
    with LedgerClient.from_run_dir(run_dir, identity=OPERATOR_IDENTITY) as client:
        assert client.pending()[1] == ()
