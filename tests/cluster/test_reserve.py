"""Custody and reserves on a real 4-validator cluster, through the SDK and the CLI
(docs/ledger.md "Custody and reserves"): the generated network backs its lifecycle bonds
(custodian CSD) and the cash token USD.RESERVED. `ledger report custody` shows a BREAK
(never attested since genesis), a mint above custody is refused with a receipt that
verifies offline, the custodian attests from the CLI, the mint goes through up to the
new custody and not one unit beyond, and the report shows no break; a bank may not read
the attestations. Then reserves: no attestation FAILs the report, the issuer attests
bills and deposits, cash is minted up to them and refused beyond, and every rule PASSes.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, timedelta

import pytest

from client import (
    AsyncLedgerClient,
    NotFoundError,
    PermissionDeniedError,
    RejectedError,
    ResultCode,
    Transactions,
    load_key,
    sign,
    verify_receipt,
)
from client.cli import main
from node import crypto
from node.genesis import DEMO_DUE_BOND, DEMO_MATURED_BOND, DEMO_RESERVE_CASH
from tests.cluster.harness import Cluster, module_cluster

pytestmark = pytest.mark.slow

RC = ResultCode
DOC_HEX = crypto.sha256(b"custody statement").hex()


cluster = module_cluster("reserve")  # 4 validators, quorum 3, one per module


def _cli(c: Cluster, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["--run-dir", str(c.net.run_dir), *argv])
    return code, capsys.readouterr().out


async def _mint(c: Cluster, client: AsyncLedgerClient, inst: str, amount: int, by: str) -> None:
    g = client.genesis
    tx = Transactions(g).issue(inst, "BANK01", amount, by)
    key = load_key(c.net.run_dir / "participants" / f"{by}.key")
    await client.submit(sign(tx, key, genesis=g))


def test_custody_caps_mints_and_the_report_shows_a_break_then_none(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _cli(cluster, capsys, "--json", "report", "custody")
    doc = json.loads(out)
    assert code == 1 and doc["breaks"] == 2  # both bonds unattested since genesis
    supply = {i["bond"]: i["supply"] for i in doc["instruments"]}

    async def over_mint() -> None:
        async with AsyncLedgerClient.from_run_dir(cluster.net.run_dir, identity="CSD") as client:
            with pytest.raises(RejectedError) as e:
                await _mint(cluster, client, DEMO_DUE_BOND, 1, "CSD")
            assert e.value.code is RC.CUSTODY_EXCEEDED
            verify_receipt(e.value.receipt, cluster.net.run_dir / "genesis.json")
            _, (due,) = await client.attestations(DEMO_DUE_BOND)
            assert (due.supply, due.attestations) == (supply[DEMO_DUE_BOND], ())
            with pytest.raises(NotFoundError):  # not backed: no attestations to read
                await client.attestations(cluster.demo.bonds[0])
        async with AsyncLedgerClient.from_run_dir(cluster.net.run_dir, identity="BANK01") as bank:
            with pytest.raises(PermissionDeniedError):
                await bank.attestations(DEMO_DUE_BOND)
            assert (await bank.attestations())[1] == ()  # a listing leaves them out

    asyncio.run(over_mint())
    for bond in (DEMO_DUE_BOND, DEMO_MATURED_BOND):
        amount = str(supply[bond] + 100)
        code, _ = _cli(cluster, capsys, "attest", "custody", "--bond", bond, "--amount", amount,
                       "--document-sha256", DOC_HEX)  # fmt: skip
        assert code == 0

    async def within() -> None:
        async with AsyncLedgerClient.from_run_dir(cluster.net.run_dir, identity="CSD") as client:
            await _mint(cluster, client, DEMO_DUE_BOND, 100, "CSD")
            with pytest.raises(RejectedError) as e:
                await _mint(cluster, client, DEMO_DUE_BOND, 1, "CSD")
            assert e.value.code is RC.CUSTODY_EXCEEDED
            _, (due,) = await client.attestations(DEMO_DUE_BOND)
            assert due.supply == supply[DEMO_DUE_BOND] + 100
            assert [a.by for a in due.attestations] == ["CSD"]

    asyncio.run(within())
    code, out = _cli(cluster, capsys, "--json", "report", "custody")
    assert code == 0 and json.loads(out)["breaks"] == 0
    code, out = _cli(cluster, capsys, "report", "custody")
    assert code == 0 and "0 BREAK" in out and "BREAK " not in out.split("\n", 1)[1]


def test_reserves_cap_cash_mints_and_the_rules_pass_once_attested(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _cli(cluster, capsys, "--json", "report", "reserves")
    (token,) = json.loads(out)["tokens"]
    assert code == 1 and token["cash"] == DEMO_RESERVE_CASH
    assert {r["rule"] for r in token["rules"] if not r["pass"]} >= {"attested"}
    maturity = (date.today() + timedelta(days=30)).isoformat()
    code, _ = _cli(cluster, capsys, "attest", "reserves", "--cash", DEMO_RESERVE_CASH,
                   "--deposits", "100000", "--bill", f"912797GL5:{maturity}:900000",
                   "--document-sha256", DOC_HEX)  # fmt: skip
    assert code == 0

    async def mints() -> None:
        async with AsyncLedgerClient.from_run_dir(cluster.net.run_dir, identity="CASHCO") as c:
            await _mint(cluster, c, DEMO_RESERVE_CASH, 1_000_000, "CASHCO")
            with pytest.raises(RejectedError) as e:
                await _mint(cluster, c, DEMO_RESERVE_CASH, 1, "CASHCO")
            assert e.value.code is RC.RESERVES_SHORT
            g = c.genesis
            stale = Transactions(g).attest_reserves(
                "CASHCO", DEMO_RESERVE_CASH, int(time.time() * 1000) - 86_400_000,
                bytes.fromhex(DOC_HEX), 10**12,
            )  # fmt: skip
            key = load_key(cluster.net.run_dir / "participants" / "CASHCO.key")
            with pytest.raises(RejectedError) as e:
                await c.submit(sign(stale, key, genesis=g))
            assert e.value.code is RC.STALE_ATTESTATION

    asyncio.run(mints())
    code, out = _cli(cluster, capsys, "--json", "report", "reserves")
    (token,) = json.loads(out)["tokens"]
    assert code == 0, token
    assert (token["supply"], token["reserves"], token["coverage_bp"]) == (10**6, 10**6, 10_000)
    assert all(r["pass"] for r in token["rules"])
    code, out = _cli(cluster, capsys, "report", "reserves")
    assert code == 0 and "coverage 100.00%" in out and "\nFAIL" not in out
