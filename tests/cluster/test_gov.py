"""Governance on a real 4-validator cluster, through the SDK (docs/ledger.md
"Governance"): k-1 admin signatures are refused and change nothing; k admins add a bank,
which is funded, settles a DvP and reads its own balances with no restart; after its key
is rotated the old key is refused for transactions and for client calls, the new one
works."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path

import pytest

from client import (
    AsyncLedgerClient,
    InvalidTransactionError,
    ParticipantKey,
    ResultCode,
    UnauthenticatedError,
    sign,
)
from client.cli import main
from node import crypto
from node.netconfig import OPERATOR_IDENTITY
from node.settlement import isin_check_digit
from tests.cluster.harness import Cluster, module_cluster, participant_key

pytestmark = pytest.mark.slow

RC = ResultCode
NEW = "BANK99"
ADMINS = ("COMPLIANCE", "CSD")  # two of the demo's three admins: k = 2


cluster = module_cluster("gov")  # 4 validators, quorum 3, one per module


def _fresh(pid: str) -> ParticipantKey:
    return ParticipantKey(pid, crypto.SigningKey(os.urandom(32)))


async def _add_bank(c: Cluster, op: AsyncLedgerClient, bank: ParticipantKey) -> None:
    g = op.genesis
    tx = op.tx.add_participant(NEW, bank.public_key, ["trader"], 2, admins=ADMINS)
    one = dataclasses.replace(tx, admins=("CSD",))  # k - 1: the builder would refuse it
    with pytest.raises(InvalidTransactionError, match="NOT_ADMIN_QUORUM"):
        await op.submit(sign(one, participant_key(c, "CSD"), genesis=g))
    assert NEW not in (await op.reference()).registry.participant_by_id  # nothing changed
    done = await op.submit(sign(tx, *(participant_key(c, a) for a in ADMINS), genesis=g))
    assert done.code is RC.OK
    await op.reference()  # the builders now know the bank
    fund = op.tx.transfer(c.demo.cash, "BANK02", NEW, 1_000)
    assert (await op.submit(op.sign(fund, participant_key(c, "BANK02")))).code is RC.OK


def test_a_bank_added_by_governance_trades_and_a_rotated_key_is_refused(cluster: Cluster) -> None:
    run_dir, bond, cash = cluster.net.run_dir, cluster.demo.bonds[0], cluster.demo.cash
    bank, rotated = _fresh(NEW), _fresh(NEW)

    async def scenario() -> None:
        async with AsyncLedgerClient.from_run_dir(run_dir, identity=OPERATOR_IDENTITY) as op:
            await _add_bank(cluster, op, bank)
            async with AsyncLedgerClient.from_run_dir(run_dir, identity=bank) as me:
                ref = await me.reference()  # served to the new bank: no restart
                assert ref.registry.participant(NEW) is not None
                dvp = me.tx.dvp("BANK01", NEW, bond, 10, cash, 10, 60)
                done = await me.submit(me.sign(dvp, participant_key(cluster, "BANK01"), bank))
                assert done.code is RC.OK
                amounts = (await me.balances(NEW)).amounts
                assert (amounts[bond], amounts[cash]) == (10, 990)
                # RotateKey: me still holds the old reference, so it signs with the old key.
                rot = op.tx.rotate_key(NEW, rotated.public_key, admins=ADMINS)
                done = await op.submit(
                    sign(rot, *(participant_key(cluster, a) for a in ADMINS), genesis=op.genesis)
                )
                assert done.code is RC.OK
                stale = me.sign(me.tx.transfer(cash, NEW, "BANK01", 1), bank)
                with pytest.raises(InvalidTransactionError, match="BAD_SIGNATURE"):
                    await op.submit(stale)  # relayed by the operator: the old key refused
                for call in (me.balances(NEW), me.submit(stale)):  # the old identity refused
                    with pytest.raises(UnauthenticatedError, match="current key"):
                        await call
            async with AsyncLedgerClient.from_run_dir(run_dir, identity=rotated) as me:
                await me.reference()
                fresh = me.sign(me.tx.transfer(cash, NEW, "BANK01", 1), rotated)
                assert (await me.submit(fresh)).code is RC.OK
                assert (await me.balances(NEW)).amounts[cash] == 989

    asyncio.run(scenario())


def test_admins_on_separate_machines_through_the_cli(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["--run-dir", str(cluster.net.run_dir)]
    change = tmp_path / "tier.json"
    assert (
        main(
            [
                *run,
                "admin",
                "set-kyc-tier",
                "BANK03",
                "--kyc-tier",
                "3",
                "--out",
                str(change),
                "--sign-as",
                "CSD",
            ]
        )
        == 0
    )
    assert main([*run, "admin", "submit", str(change)]) != 0  # k - 1 signatures: refused here
    assert "lacks the signature of COMPLIANCE" in capsys.readouterr().err
    assert main([*run, "admin", "sign", str(change), "--admin", "COMPLIANCE"]) == 0
    assert main([*run, "admin", "submit", str(change)]) == 0
    eur = tmp_path / "eur.json"
    eur.write_text(
        json.dumps({"id": "EUR.CASHCO", "kind": "cash", "issuer": "CASHCO", "currency": "EUR"})
    )
    assert main([*run, "admin", "add-instrument", "--file", str(eur)]) == 0  # one shot
    capsys.readouterr()
    assert main([*run, "--json", "admin", "show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    tiers = {p["id"]: p["kyc_tier"] for p in shown["participants"]}
    assert tiers["BANK03"] == 3 and tiers["BANK04"] == 2  # the control: untouched
    assert "EUR.CASHCO" in {i["id"] for i in shown["instruments"]}
    assert (shown["admins"], shown["threshold"]) == (["COMPLIANCE", "CSD", "REGULATOR"], 2)


def _govern_instruments(run: list[str], tmp_path: Path, tag: str, cash: str) -> tuple[str, str]:
    """A bond and a cash token k admins add through the CLI; their ids (``tag``: four
    letters, the rest of an ISIN's base)."""
    base = f"US00GOV{tag}"
    bond, eur = base + str(isin_check_digit(base)), f"EUR.GOV{tag}"
    terms = [
        {"id": eur, "kind": "cash", "issuer": "CASHCO", "currency": "EUR"},
        {"id": bond, "kind": "bond", "issuer": "TREASURY", "currency": "USD",
         "unit_face_minor": 1, "maturity_date": "2031-06-30", "coupon_bp": 500,
         "coupon_freq": 2, "payment_cash": cash},
    ]  # fmt: skip
    for t in terms:
        (tmp_path / "inst.json").write_text(json.dumps(t))
        assert main([*run, "admin", "add-instrument", "--file", str(tmp_path / "inst.json")]) == 0
    return bond, eur


def test_the_cli_submits_and_reads_what_governance_added(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every ``ledger submit`` checks names and keys against the ledger's reference data,
    not genesis alone, and ``schedule`` and ``holders`` read it too: a cash token and a bond
    k admins added are issued, traded and listed from the CLI. (Each command built its
    transaction against genesis and refused them as unknown.)"""
    run = ["--run-dir", str(cluster.net.run_dir)]
    bond, eur = _govern_instruments(run, tmp_path, "BOND", cluster.demo.cash)
    mint = [*run, "submit", "issue", "--to", "BANK01", "--amount", "700"]
    assert main([*mint, "--instrument", eur, "--by", "CASHCO"]) == 0
    assert main([*mint, "--instrument", bond, "--by", "TREASURY"]) == 0
    pay = ["--from", "BANK01", "--to", "BANK02", "--amount", "300"]
    assert main([*run, "submit", "transfer", "--instrument", eur, *pay]) == 0
    capsys.readouterr()
    assert main([*run, "--json", "balance", "BANK01"]) == 0
    amounts = json.loads(capsys.readouterr().out)["balances"]
    assert (amounts[eur], amounts[bond]) == (400, 700)
    assert main([*run, "--json", "holders", bond]) == 0
    held = {h["account"]: h["units"] for h in json.loads(capsys.readouterr().out)["holders"]}
    assert held == {"BANK01": 700}
    assert main([*run, "--json", "schedule", bond]) == 0
    periods = json.loads(capsys.readouterr().out)["periods"]
    assert periods[-1]["date"] == "2031-06-30" and periods[-1]["paid"] == "by redemption"
    assert {p["paid"] for p in periods[:-1]} == {"unpaid"}
    # the control: offline, genesis alone does not know the bond
    assert main([*run, "schedule", bond, "--offline"]) != 0
    assert f"{bond} is not a bond or fund of genesis" in capsys.readouterr().err
    # its paying agent (no --agent) found in the reference data: signed, sent, judged
    assert main([*run, "submit", "coupon", "--bond", bond, "--period", "1"]) == 1
    assert "refused at height" in capsys.readouterr().err  # the agent holds no cash


def test_a_trade_between_machines_names_what_governance_added(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sign dvp`` and ``cosign`` check against genesis, offline; what genesis does not
    know (a bond, a cash token and a bank k admins added) they check against the reference
    data a node holds: the bank governance added buys the bond from the CLI, both halves
    signed on their own and submitted. Offline (no network.json), genesis's refusal stands."""
    run = ["--run-dir", str(cluster.net.run_dir)]
    bond, eur = _govern_instruments(run, tmp_path, "SWAP", cluster.demo.cash)
    key = tmp_path / "bank98.key"
    assert main([*run, "keys", "gen", "--participant", "BANK98", "--out", str(key)]) == 0
    added = [*run, "admin", "add-participant", "BANK98", "--key-file", str(key),
             "--roles", "trader", "--kyc-tier", "2"]  # fmt: skip
    assert main(added) == 0
    assert main([*run, "submit", "issue", "--instrument", bond, "--to", "BANK01",
                 "--amount", "100", "--by", "TREASURY"]) == 0  # fmt: skip
    assert main([*run, "submit", "issue", "--instrument", eur, "--to", "BANK98",
                 "--amount", "60", "--by", "CASHCO"]) == 0  # fmt: skip
    trade, signed = tmp_path / "trade.json", tmp_path / "signed.json"
    half = ["sign", "dvp", "--seller", "BANK01", "--buyer", "BANK98", "--bond", bond,
            "--quantity", "100", "--cash", eur, "--amount", "60", "--out", str(trade)]  # fmt: skip
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "genesis.json").write_text((cluster.net.run_dir / "genesis.json").read_text())
    (offline / "participants").mkdir()
    bank01 = cluster.net.run_dir / "participants" / "BANK01.key"
    (offline / "participants" / "BANK01.key").write_bytes(bank01.read_bytes())
    capsys.readouterr()
    assert main(["--run-dir", str(offline), *half]) == 2  # the control: genesis alone
    assert "BANK98" in capsys.readouterr().err
    assert main([*run, *half]) == 0
    assert main([*run, "cosign", str(trade), "--key", str(key), "--out", str(signed)]) == 0
    assert main([*run, "submit", "dvp", str(signed)]) == 0
    capsys.readouterr()
    assert main([*run, "--json", "balance", "BANK98", "--as", "BANK01"]) != 0  # not its own
    assert main([*run, "--json", "balance", "BANK01"]) == 0
    assert json.loads(capsys.readouterr().out)["balances"][eur] == 60


def test_admins_replace_the_compliance_rules_through_the_cli(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """k admins lower the AML co-sign threshold of the demo cash: a transfer that settled
    just before is refused COSIGN_REQUIRED after; the genesis rules, put back, let it
    through again. Last in this module: it changes the rules every later test would see."""
    run = ["--run-dir", str(cluster.net.run_dir)]
    genesis = json.loads((cluster.net.run_dir / "genesis.json").read_text())
    cash = cluster.demo.cash
    pay = [*run, "submit", "transfer", "--instrument", cash, "--from", "BANK03", "--to",
           "BANK04", "--amount", "1001"]  # fmt: skip
    assert main(pay) == 0  # control: the genesis threshold is far above 10.01
    lowered = {**genesis["compliance"], "cosign_above": {cash: 1_000}}
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(lowered))
    one = [*run, "admin", "set-compliance-rules", "--file", str(rules), "--admins", "CSD"]
    assert main(one) == 2  # k - 1 admins: the SDK refuses to build it
    assert "need at least 2 of the admins" in capsys.readouterr().err
    assert main(pay) == 0
    assert main([*run, "admin", "set-compliance-rules", "--file", str(rules)]) == 0
    assert main(pay) == 1
    assert "COSIGN_REQUIRED" in capsys.readouterr().err
    assert main([*pay, "--cosign", "COMPLIANCE"]) == 0
    rules.write_text(json.dumps(genesis["compliance"]))
    assert main([*run, "admin", "set-compliance-rules", "--file", str(rules)]) == 0
    assert main(pay) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"cosign_above": {cluster.demo.bonds[0]: 1}}))  # a bond
    assert main([*run, "admin", "set-compliance-rules", "--file", str(bad)]) == 2
    assert "rules" in capsys.readouterr().err
