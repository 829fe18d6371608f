"""The ``ledger`` command line against a real 4-validator cluster (quorum 3).

Every command runs in-process through ``client.cli.main`` (and once through the installed
``ledger`` entry point): the two-party DvP flow from the seller's signature to an offline
check of the receipt, issue/transfer/redeem, a refusal, the queries, and a forged receipt.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from client.cli import main
from tests.cluster.harness import Cluster, running_cluster

pytestmark = pytest.mark.slow

BOND_HELD = 10_000_000  # demo genesis: every bank holds this many units of each bond
CASH_HELD = 1_000_000_000  # and this much cash (minor units)


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Env:
    cluster: Cluster
    run_dir: Path
    work: Path

    def ledger(self, *argv: str) -> Result:
        """Run ``ledger --run-dir RUN argv...`` in-process and capture its output."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--run-dir", str(self.run_dir), *argv])
        return Result(code, out.getvalue(), err.getvalue())

    def ok(self, *argv: str) -> str:
        r = self.ledger(*argv)
        assert r.code == 0, r.err
        assert r.err == "", r.err
        return r.out

    def json(self, *argv: str) -> dict[str, object]:
        doc: dict[str, object] = json.loads(self.ok(*argv, "--json"))
        return doc

    def balance(self, account: str) -> dict[str, int]:
        doc = self.json("balance", account)
        balances = doc["balances"]
        assert isinstance(balances, dict)
        return balances


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("cli")
    with running_cluster(base / "run", 4, 3) as cluster:
        work = base / "work"
        work.mkdir()
        yield Env(cluster, base / "run", work)


@dataclass
class Trade:
    tx_id: str
    receipt: Path


@pytest.fixture(scope="module")
def trade(env: Env) -> Trade:
    """BANK01 sells 1,000,000 units of the first bond to BANK02 for 998,750 through the
    two-party flow; checks each step's exit code and output."""
    bond = env.cluster.demo.bonds[0]
    proposal, signed, receipt = (env.work / n for n in ("trade.json", "signed.json", "r.json"))
    out = env.ok(
        "sign", "dvp", "--seller", "BANK01", "--buyer", "BANK02", "--bond", bond,
        "--quantity", "1000000", "--cash", "USD.CASHCO", "--amount", "998750",
        "--out", str(proposal),
    )  # fmt: skip
    assert "signed as seller BANK01" in out
    r = env.ledger("submit", "dvp", str(proposal))
    assert r.code == 1
    assert "lacks the signature of BANK02" in r.err

    out = env.ok(
        "cosign", str(proposal), "--expect-quantity", "1000000", "--expect-amount", "998750",
        "--expect-bond", bond, "--out", str(signed),
    )  # fmt: skip
    assert "co-signing as buyer BANK02" in out
    assert "998750" in out  # the terms it signs, amounts as integers

    out = env.ok("submit", "dvp", str(signed), "--receipt-out", str(receipt))
    assert "settled in" in out
    assert "OK" in out
    tx_id = json.loads(receipt.read_text())["tx_id"]
    return Trade(tx_id, receipt)


def test_two_party_dvp_settles_and_its_receipt_verifies(env: Env, trade: Trade) -> None:
    out = env.ok("verify-receipt", str(trade.receipt))
    assert out.startswith(f"valid: tx {trade.tx_id} OK in block ")
    assert "result certified by block" in out

    bond = env.cluster.demo.bonds[0]
    assert env.balance("BANK01")[bond] == BOND_HELD - 1_000_000
    assert env.balance("BANK02")[bond] == BOND_HELD + 1_000_000
    assert env.balance("BANK01")["USD.CASHCO"] == CASH_HELD + 998_750
    assert env.balance("BANK02")["USD.CASHCO"] == CASH_HELD - 998_750
    table = env.ok("balance", "BANK02")
    assert "11,000,000" in table  # bond units, an integer grouped for reading
    assert "999,001,250" in table


def test_cosign_refuses_other_terms(env: Env) -> None:
    proposal = env.work / "cheap.json"
    env.ok(
        "sign", "dvp", "--seller", "BANK03", "--buyer", "BANK04",
        "--bond", env.cluster.demo.bonds[1], "--quantity", "500", "--cash", "USD.CASHCO",
        "--amount", "400", "--out", str(proposal),
    )  # fmt: skip
    r = env.ledger(
        "cosign", str(proposal), "--expect-amount", "500", "--out", str(env.work / "x.json")
    )
    assert r.code == 1
    assert r.err.count("\n") == 1
    assert "amount: expected 500, got 400" in r.err
    assert not (env.work / "x.json").exists()


def test_issue_transfer_redeem(env: Env) -> None:
    before = {a: env.balance(a)["USD.CASHCO"] for a in ("BANK05", "BANK06")}
    doc = env.json(
        "submit", "issue", "--instrument", "USD.CASHCO", "--to", "BANK05", "--amount", "7000",
        "--by", "CASHCO",
    )  # fmt: skip
    assert doc["code"] == "OK"
    env.ok(
        "submit", "transfer", "--instrument", "USD.CASHCO", "--from", "BANK05", "--to", "BANK06",
        "--amount", "3000",
    )  # fmt: skip
    env.ok(
        "submit", "redeem", "--instrument", "USD.CASHCO", "--holder", "BANK06", "--amount",
        "1000", "--by", "CASHCO",
    )  # fmt: skip
    assert env.balance("BANK05")["USD.CASHCO"] == before["BANK05"] + 7000 - 3000
    assert env.balance("BANK06")["USD.CASHCO"] == before["BANK06"] + 3000 - 1000


def test_a_refused_trade_exits_1_with_its_code(env: Env) -> None:
    receipt = env.work / "refused.json"
    r = env.ledger(
        "submit", "transfer", "--instrument", env.cluster.demo.bonds[0], "--from", "BANK04",
        "--to", "BANK05", "--amount", str(BOND_HELD * 10), "--receipt-out", str(receipt),
    )  # fmt: skip
    assert r.code == 1
    assert r.out == ""
    assert r.err.count("\n") == 1
    assert r.err.startswith("ledger: error: transaction ")
    assert "INSUFFICIENT_SECURITIES (the delivering party holds fewer bond units" in r.err
    out = env.ok("verify-receipt", str(receipt))  # the refusal is provable
    assert "INSUFFICIENT_SECURITIES" in out


def test_tx_and_block_show_the_trade(env: Env, trade: Trade) -> None:
    out = env.ok("tx", trade.tx_id)
    assert out.startswith("COMMITTED: DVP BANK01 -> BANK02 1,000,000 ")
    doc = env.json("tx", trade.tx_id)
    assert doc["state"] == "COMMITTED"
    receipt = doc["receipt"]
    assert isinstance(receipt, dict)
    height = receipt["height"]
    assert isinstance(height, int)

    block = env.json("block", str(height))
    txs = block["transactions"]
    assert isinstance(txs, list)
    assert [t["tx_id"] for t in txs if t["code"] == "OK"].count(trade.tx_id) == 1
    assert block["results_proven"] is True and block["events"] == []  # ADR 0026
    out = env.ok("block", str(height))
    assert trade.tx_id in out and f"proven by block {height + 1}'s certified header" in out


def test_query_errors(env: Env) -> None:
    r = env.ledger("block", "1000000")
    assert (r.code, r.out) == (1, "")
    assert "no block 1000000" in r.err
    r = env.ledger("tx", "ab" * 32)
    assert (r.code, r.out) == (1, "")
    assert r.err.count("\n") == 1
    r = env.ledger("balance", "NOBODY")
    assert r.code == 2
    assert "not a participant" in r.err


def test_as_chooses_the_identity_and_others_data_is_refused(env: Env, trade: Trade) -> None:
    # the account implies the identity: BANK03 reads its own balance
    assert env.balance("BANK03")["USD.CASHCO"] > 0
    r = env.ledger("balance", "BANK03", "--as", "BANK04")
    assert (r.code, r.out) == (1, "")
    assert "BANK04 may read only its own balances" in r.err
    assert env.ok("balance", "BANK03", "--as", "REGULATOR")  # an observer reads it
    assert env.ok("tx", trade.tx_id, "--as", "BANK02").startswith("COMMITTED")
    r = env.ledger("tx", trade.tx_id, "--as", "BANK03")
    assert r.code == 1 and "not a party" in r.err
    r = env.ledger("status", "--as", "NOBODY")
    assert r.code == 2 and "no key for identity NOBODY" in r.err


def test_as_key_reads_as_the_key_files_participant(env: Env, trade: Trade) -> None:
    """``--identity-key FILE``: a key kept outside the run directory (a participant governance
    added) signs the reads; the file's name is the id, and a node refuses a key that is
    not the named participant's."""
    key = env.work / "BANK03.key"
    key.write_bytes((env.run_dir / "participants" / "BANK03.key").read_bytes())
    key.chmod(0o600)
    r = env.ledger("balance", "BANK04", "--identity-key", str(key))  # BANK03 signs, not BANK04
    assert (r.code, r.out) == (1, "")
    assert "BANK03 may read only its own balances" in r.err
    assert env.json("balance", "BANK03", "--identity-key", str(key))["account"] == "BANK03"
    r = env.ledger("tx", trade.tx_id, "--identity-key", str(key), "--as", "BANK02")
    assert r.code == 1 and "does not verify under BANK02's current key" in r.err


def test_status_lists_the_4_nodes(env: Env) -> None:
    out = env.ok("status")
    for i in range(4):
        assert f"node-{i:02d}" in out
    doc = env.json("status")
    nodes = doc["nodes"]
    assert isinstance(nodes, list)
    assert [n["up"] for n in nodes] == [True] * 4
    assert doc["problems"] == []


def test_watch_prints_a_committed_trade(env: Env, trade: Trade) -> None:
    out = env.ok("watch", "--from", "1", "--count", "1", "--account", "BANK02", "--json")
    (line,) = out.splitlines()
    event = json.loads(line)
    assert (event["tx_id"], event["kind"], event["code"]) == (trade.tx_id, "DVP", "OK")
    bond = env.cluster.demo.bonds[0]
    assert event["legs"] == [[bond, 1_000_000], ["USD.CASHCO", -998_750]]
    out = env.ok("watch", "--from", "1", "--count", "1")
    assert f"DVP BANK01 -> BANK02 1,000,000 {bond}" in out


def test_a_tampered_receipt_fails_verification(env: Env, trade: Trade) -> None:
    doc = json.loads(trade.receipt.read_text())
    cert = bytearray(base64.b64decode(doc["certificate"]))
    cert[-1] ^= 0x01  # the last byte of the last validator's signature
    doc["certificate"] = base64.b64encode(bytes(cert)).decode()
    forged = env.work / "forged.json"
    forged.write_text(json.dumps(doc))
    r = env.ledger("verify-receipt", str(forged))
    assert (r.code, r.out) == (1, "")
    assert r.err.count("\n") == 1
    assert r.err.startswith("ledger: error: invalid receipt: ")
    assert "did not make" in r.err


def test_the_installed_entry_point(env: Env) -> None:
    ledger = Path(sys.executable).parent / "ledger"
    assert ledger.is_file(), "run `make setup` (pip install -e .) to install the entry point"
    r = subprocess.run([ledger, "--help"], capture_output=True, text=True, check=False)
    assert r.returncode == 0
    assert r.stdout.startswith("usage: ledger")
    r = subprocess.run(
        [ledger, "status", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env={"LEDGER_RUN_DIR": str(env.run_dir), "PATH": ""},
    )
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["nodes"]) == 4
