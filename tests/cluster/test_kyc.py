"""KYC limits and the AML co-signature on a real 4-validator cluster, through the SDK
(docs/ledger.md "KYC tiers and AML"): a `make genesis` network carries the demo rules.
A trade above the $5,000,000 threshold signed by the parties only is refused
COSIGN_REQUIRED with a receipt that verifies offline and nothing moves; the same trade
co-signed by COMPLIANCE settles; one above tier 2's per-trade limit is TRADE_LIMIT."""

from __future__ import annotations

import asyncio

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
from node.genesis import DEMO_COSIGN_ABOVE_CENTS, DEMO_TIER2_TRADE_MAX_CENTS
from node.netconfig import OPERATOR_IDENTITY
from tests.cluster.harness import Cluster, module_cluster, participant_key

pytestmark = pytest.mark.slow

RC = ResultCode


cluster = module_cluster("kyc")  # 4 validators, quorum 3, one per module


def _trade(c: Cluster, g: object, amount: int, cosigner: str = "") -> SignedTransaction:
    tx = Transactions(g).dvp(  # type: ignore[arg-type]
        "BANK01", "BANK02", c.demo.bonds[0], 100, c.demo.cash, amount, cosigner=cosigner
    )
    keys = [participant_key(c, p) for p in tx.required_signers()]
    return sign(tx, *keys, genesis=g)  # type: ignore[arg-type]


def test_a_large_trade_needs_the_compliance_cosignature(cluster: Cluster) -> None:
    large = DEMO_COSIGN_ABOVE_CENTS + 1

    async def go() -> None:
        async with AsyncLedgerClient.from_run_dir(
            cluster.net.run_dir, identity=OPERATOR_IDENTITY
        ) as client:
            g = client.genesis
            before = (await client.balances("BANK02")).amounts
            with pytest.raises(RejectedError) as e:
                await client.submit(_trade(cluster, g, large))
            assert e.value.code is RC.COSIGN_REQUIRED
            verify_receipt(e.value.receipt, cluster.net.run_dir / "genesis.json")
            assert (await client.balances("BANK02")).amounts == before
            done = await client.submit(_trade(cluster, g, large, cosigner="COMPLIANCE"))
            assert done.code is RC.OK
            after = (await client.balances("BANK02")).amounts
            assert after[cluster.demo.cash] == before[cluster.demo.cash] - large
            with pytest.raises(RejectedError) as e:
                over = DEMO_TIER2_TRADE_MAX_CENTS + 1
                await client.submit(_trade(cluster, g, over, cosigner="COMPLIANCE"))
            assert e.value.code is RC.TRADE_LIMIT
            assert (await client.balances("BANK02")).amounts == after

    asyncio.run(go())


def test_the_cli_transfers_a_large_amount_only_co_signed(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--run-dir", str(cluster.net.run_dir), "submit", "transfer", "--instrument",
            cluster.demo.cash, "--from", "BANK03", "--to", "BANK04",
            "--amount", str(DEMO_COSIGN_ABOVE_CENTS + 1)]  # fmt: skip
    assert main(base) == 1
    assert "COSIGN_REQUIRED" in capsys.readouterr().err
    assert main([*base, "--cosign", "COMPLIANCE"]) == 0
    assert "settled" in capsys.readouterr().out
