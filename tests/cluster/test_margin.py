"""Prices, a margin call and a substitution on a real 4-validator cluster, through the
SDK and the CLI (docs/ledger.md "Prices, margin and substitution"). The generated network
names three price sources (AUDITOR, CASHCO, CSD), two of them make a price, and both
tradable bonds are eligible. BANK01 borrows from BANK02 against the first bond; one
source's price is not enough (NO_FRESH_PRICE); two at 99.0 cover the repo
(NO_MARGIN_DEFICIT, from the CLI); at 90.0 the lender's call moves exactly the deficit,
with a receipt that verifies offline; then both parties substitute the second bond from
the CLI, and `ledger prices` shows the price in force.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import pytest

from client import (
    AsyncLedgerClient,
    ParticipantKey,
    RejectedError,
    ResultCode,
    Transactions,
    load_key,
    sign,
    verify_receipt,
)
from client.cli import main
from devtools.demo.margin import show_margin
from devtools.demo.run import ValidatorClients
from node.genesis import DEMO_HAIRCUTS_BP
from node.settlement import RepoOpen, collateral_value, units_for
from tests.cluster.harness import Cluster, module_cluster

pytestmark = pytest.mark.slow

RC = ResultCode
QTY, PURCHASE, REPURCHASE = 1_000_000, 950_000, 951_000
HOUR_MS = 3_600_000

cluster = module_cluster("margin")  # 4 validators, quorum 3, one per module


def _cli(c: Cluster, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--run-dir", str(c.net.run_dir), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _key(c: Cluster, pid: str) -> ParticipantKey:
    return load_key(c.net.run_dir / "participants" / f"{pid}.key")


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _price(c: Cluster, source: str, bond: str, p: int) -> int:
    """``source`` attests (its own client: a transaction's status goes to its parties);
    the height it settled at."""
    async with AsyncLedgerClient.from_run_dir(c.net.run_dir, identity=source) as client:
        g = client.genesis
        tx = Transactions(g).attest_price(source, bond, p, _now_ms() - 1_000)
        return (await client.submit(sign(tx, _key(c, source), genesis=g))).height


async def _held(client: AsyncLedgerClient, account: str, bond: str, height: int) -> int:
    """``account``'s units of ``bond`` once the answering node has applied ``height``
    (another process's progress: polled, bounded)."""

    async def read() -> int:
        while (b := await client.balances(account)).height < height:
            await asyncio.sleep(0.05)
        return b.amounts[bond]

    return await asyncio.wait_for(read(), timeout=10)


def test_prices_a_margin_call_and_a_substitution(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    bond, other = cluster.demo.bonds
    run_dir = cluster.net.run_dir

    async def open_and_call() -> int:
        async with AsyncLedgerClient.from_run_dir(run_dir, identity="BANK02") as client:
            g = client.genesis
            now = _now_ms()
            opening = RepoOpen(
                g.chain_id, secrets.randbits(63), now + 60_000, "R-1", "BANK01", "BANK02",
                bond, QTY, cluster.demo.cash, PURCHASE, REPURCHASE, 0, now + HOUR_MS,
                now + 2 * HOUR_MS,
            )  # fmt: skip
            await client.submit(sign(opening, _key(cluster, "BANK01"), _key(cluster, "BANK02"),
                                     genesis=g))  # fmt: skip
            call = Transactions(g).margin_call("R-1", "BANK01", "BANK02")
            await _price(cluster, "CASHCO", bond, 990_000)
            with pytest.raises(RejectedError) as e:  # one source, k = 2
                await client.submit(sign(call, _key(cluster, "BANK02"), genesis=g))
            assert e.value.code is RC.NO_FRESH_PRICE
            height = await _price(cluster, "CSD", bond, 990_000)
            return await _held(client, "BANK02", bond, height)

    lender_before = asyncio.run(open_and_call())
    covered = ("repo", "margin", "R-1", "--borrower", "BANK01", "--lender", "BANK02")
    code, _, err = _cli(cluster, capsys, *covered)
    assert code == 1 and "NO_MARGIN_DEFICIT" in err  # 99.0 less 2% covers 951,000

    async def drop_and_call() -> None:
        async with AsyncLedgerClient.from_run_dir(run_dir, identity="BANK02") as client:
            g = client.genesis
            for source in ("CASHCO", "CSD"):
                await _price(cluster, source, bond, 900_000)
            call = Transactions(g).margin_call("R-1", "BANK01", "BANK02")
            receipt = await client.submit(sign(call, _key(cluster, "BANK02"), genesis=g))
            verify_receipt(receipt, run_dir / "genesis.json")
            extra = units_for(REPURCHASE, 900_000, DEMO_HAIRCUTS_BP[0]) - QTY
            after = await _held(client, "BANK02", bond, receipt.height)
            assert after == lender_before + extra
            for source in ("AUDITOR", "CASHCO"):
                await _price(cluster, source, other, 1_000_000)

    asyncio.run(drop_and_call())
    need = units_for(REPURCHASE, 1_000_000, DEMO_HAIRCUTS_BP[1])
    assert collateral_value(need, 1_000_000, DEMO_HAIRCUTS_BP[1]) >= REPURCHASE
    swap = ("repo", "substitute", "R-1", "--borrower", "BANK01", "--lender", "BANK02",
            "--instrument", other)  # fmt: skip
    code, _, err = _cli(cluster, capsys, *swap, "--quantity", str(need - 1))
    assert code == 1 and "SUBSTITUTION_BELOW_VALUE" in err
    code, _, err = _cli(cluster, capsys, *swap, "--quantity", str(need))
    assert code == 0, err
    code, out, err = _cli(cluster, capsys, "--json", "prices", "--instrument", other)
    assert code == 0, err
    [view] = json.loads(out)["instruments"]
    assert code == 0 and view["price"] == 1_000_000 and len(view["prices"]) == 2


def test_the_demos_margin_step(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    """`make demo`'s step (devtools/demo/margin.py) on this cluster: it raises MarginMismatch
    on any outcome its rules do not give; its lines say what moved."""

    async def demo() -> None:
        clients = ValidatorClients(cluster.net.run_dir)
        try:
            await show_margin(clients, cluster.demo)
        finally:
            await clients.close()

    asyncio.run(demo())
    out = capsys.readouterr().out
    assert "NO_MARGIN_DEFICIT" in out and "substituted" in out and "closed early" in out
