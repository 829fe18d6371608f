"""Locks and swaps on a real 4-validator cluster, through the SDK and the CLI
(docs/ledger.md "Locks and swaps"): BANK01 locks its bonds for BANK02, spending them is
refused LOCKED with a receipt that verifies offline and nothing moves, the beneficiary
releases from the CLI and the same transfer settles; a swap from the CLI moves both bonds;
BANK05 pledges bonds against a pending DvP it cannot deliver, the trade fails at its
deadline, and the buyer claims the pledged bonds."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from client import (
    AsyncLedgerClient,
    ParticipantKey,
    RejectedError,
    ResultCode,
    Transactions,
    sign,
    verify_receipt,
)
from client.cli import main
from node.netconfig import OPERATOR_IDENTITY
from tests.cluster.harness import Cluster, module_cluster, participant_key

pytestmark = pytest.mark.slow

RC = ResultCode

cluster = module_cluster("lock")  # 4 validators, quorum 3, one per module


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_a_lock_refuses_the_spend_until_the_beneficiary_releases_it(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, bond = str(cluster.net.run_dir), cluster.demo.bonds[0]

    async def locked() -> bytes:
        async with AsyncLedgerClient.from_run_dir(
            cluster.net.run_dir, identity=OPERATOR_IDENTITY
        ) as client:
            g, txs = client.genesis, Transactions(client.genesis)
            held = (await client.balances("BANK01")).amounts[bond]
            tx = txs.lock("BANK01", bond, held, "BANK02", _now_ms() + 600_000)
            keys = (participant_key(cluster, "BANK01"), participant_key(cluster, "BANK02"))
            done = await client.submit(sign(tx, *keys, genesis=g))
            assert done.code is RC.OK
            verify_receipt(done, cluster.net.run_dir / "genesis.json")
            spend = sign(txs.transfer(bond, "BANK01", "BANK03", 1), keys[0], genesis=g)
            with pytest.raises(RejectedError) as e:
                await client.submit(spend)
            assert e.value.code is RC.LOCKED
            verify_receipt(e.value.receipt, cluster.net.run_dir / "genesis.json")
            assert (await client.balances("BANK01")).amounts[bond] == held  # nothing moved
            async with AsyncLedgerClient.from_run_dir(run_dir, identity="BANK03") as other:
                assert (await other.locks())[1] == ()  # neither holder nor beneficiary
            (view,) = (await client.locks("BANK01"))[1]
            assert (view.holder, view.beneficiary, view.amount) == ("BANK01", "BANK02", held)
            return view.lock_id

    lock_id = asyncio.run(locked())
    assert main(["--run-dir", run_dir, "--json", "lock", "list", "--party", "BANK02"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [k["lock_id"] for k in doc["locks"]] == [lock_id.hex()]
    assert main(["--run-dir", run_dir, "lock", "release", "--lock", lock_id.hex(),
                 "--holder", "BANK01", "--by", "BANK02"]) == 0  # fmt: skip
    assert main(["--run-dir", run_dir, "submit", "transfer", "--instrument", bond,
                 "--from", "BANK01", "--to", "BANK03", "--amount", "1"]) == 0  # fmt: skip
    capsys.readouterr()


def test_a_swap_from_the_cli_moves_both_bonds(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, (a, b) = str(cluster.net.run_dir), cluster.demo.bonds

    async def balances() -> tuple[int, int]:
        async with AsyncLedgerClient.from_run_dir(run_dir, identity="BANK04") as client:
            got = (await client.balances("BANK04")).amounts
            return got[a], got[b]

    before = asyncio.run(balances())
    assert main(["--run-dir", run_dir, "--json", "swap", "--a", "BANK04", "--a-instrument", a,
                 "--a-quantity", "100", "--b", "BANK05", "--b-instrument", b,
                 "--b-quantity", "95"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["code"] == "OK"
    assert asyncio.run(balances()) == (before[0] - 100, before[1] + 95)


def test_the_buyer_claims_bonds_pledged_against_a_failed_pending_dvp(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bond, bill, cash = cluster.demo.bonds[0], cluster.demo.bonds[1], cluster.demo.cash
    run_dir = cluster.net.run_dir

    async def defaulted() -> tuple[bytes, int]:
        async with AsyncLedgerClient.from_run_dir(run_dir, identity=OPERATOR_IDENTITY) as client:
            g, txs = client.genesis, Transactions(client.genesis)
            seller, buyer = participant_key(cluster, "BANK05"), participant_key(cluster, "BANK06")
            held = (await client.balances("BANK05")).amounts[bond]
            trade = txs.pending_dvp("BANK05", "BANK06", bond, held + 1, cash, 10, deadline_s=3)
            first = await client.submit(sign(trade, seller, buyer, genesis=g))
            assert first.code is RC.PENDING_SETTLEMENT  # the seller is one bond short
            pledge = txs.lock("BANK05", bill, 500, "BANK06", _now_ms() + 600_000, first.tx_id)
            done = await client.submit(sign(pledge, seller, buyer, genesis=g))
            assert done.code is RC.OK
            early = txs.claim_lock(done.tx_id, "BANK05", "BANK06", bill, 500)
            with pytest.raises(RejectedError) as e:
                await client.submit(sign(early, buyer, genesis=g))
            assert e.value.code is RC.NOT_CLAIMABLE  # no default yet
            await _until_failed(client, txs, first.tx_id, participant_key(cluster, "BANK04"))
            (view,) = (await client.locks("BANK06"))[1]
            assert view.claimable and view.defaulted == ("BANK05",)
            return done.tx_id, (await client.balances("BANK06")).amounts[bill]

    lock_id, before = asyncio.run(defaulted())
    receipt = tmp_path / "claim.json"
    assert main(["--run-dir", str(run_dir), "lock", "claim", "--lock", lock_id.hex(),
                 "--beneficiary", "BANK06", "--receipt-out", str(receipt)]) == 0  # fmt: skip
    assert "CLAIM-LOCK" in capsys.readouterr().out
    assert main(["verify-receipt", str(receipt), "--genesis", str(run_dir / "genesis.json")]) == 0

    async def claimed() -> None:
        async with AsyncLedgerClient.from_run_dir(run_dir, identity="BANK05") as holder:
            # the holder sees the claim that moved its units, with its legs
            assert await _claim_legs(holder, "BANK05") == ((bill, -500),)
        async with AsyncLedgerClient.from_run_dir(run_dir, identity="BANK06") as client:
            assert (await client.balances("BANK06")).amounts[bill] == before + 500
            assert (await client.locks())[1] == ()

    asyncio.run(claimed())


async def _claim_legs(client: AsyncLedgerClient, account: str) -> tuple[tuple[str, int], ...]:
    """The legs of ``account``'s first claim that settled (the SDK's events(), from block
    1; the early, refused claim is an event too, with zero legs)."""

    async def first() -> tuple[tuple[str, int], ...]:
        async for ev in client.events(account, from_height=1):
            if ev.kind == "CLAIM_LOCK" and ev.ok:
                return ev.legs
        raise AssertionError("events() ended")

    return await asyncio.wait_for(first(), timeout=60)


async def _until_failed(
    client: AsyncLedgerClient, txs: Transactions, trade: bytes, mover: ParticipantKey
) -> None:
    """Keep blocks coming (an idle cluster makes none) until the trade fails."""
    outcome = asyncio.ensure_future(client.wait_settled(trade, timeout_s=60))
    g = client.genesis
    while not outcome.done():
        nudge = txs.transfer(g.instruments[0].id, "BANK04", "BANK03", 1)
        await client.submit(sign(nudge, mover, genesis=g))
        await asyncio.wait({outcome}, timeout=0.5)
    with pytest.raises(RejectedError) as e:
        await outcome
    assert e.value.code is RC.FAILED_DEADLINE
