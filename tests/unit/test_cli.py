"""The ``ledger`` command line without a cluster: help, usage errors, keys, receipt checks.

Commands run in-process through ``client.cli.main`` with output captured; the network
commands are exercised against a real cluster in tests/cluster/test_cli.py.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from client import ParticipantKey, SignedTransaction, Transactions, _cli_net, sign
from client.cli import amount, build_parser, main
from node import crypto
from node.genesis import dump_genesis
from node.keyfiles import load_signing_key, write_signing_key
from node.settlement import Genesis, Registry, Transaction
from tests.ledger_helpers import shared_net


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every command path, groups included: ("keys",), ("keys", "gen"), ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name)
                yield from _commands(sub, (*path, name))


COMMANDS = sorted(_commands(build_parser()))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ledger: error: "), err
    return lines[0]


def test_the_commands_of_the_issue_exist() -> None:
    # `genesis` was one too; network generation is a dev tool now (devtools/netgen.py,
    # `make genesis`), which the SDK does not import (issue 16 item 2).
    wanted = {
        ("keys", "gen"),
        ("submit", "issue"),
        ("submit", "transfer"),
        ("submit", "dvp"),
        ("submit", "redeem"),
        ("sign", "dvp"),
        ("cosign",),
        ("balance",),
        ("tx",),
        ("block",),
        ("status",),
        ("watch",),
        ("verify-receipt",),
    }
    assert wanted <= set(COMMANDS)


@pytest.mark.parametrize("command", [(), *COMMANDS], ids=lambda c: " ".join(c) or "ledger")
def test_every_command_has_help(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, *command, "--help")
    assert code == 0
    assert out.startswith("usage: ledger"), out
    assert err == ""


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["no-such-command"],
        ["keys"],
        ["keys", "gen"],
        ["balance"],
        ["balance", "BANK01", "extra"],
        ["block", "0"],
        ["block", "tip"],
        ["watch", "--count", "-1"],
        ["submit", "issue", "--instrument", "USD.CASHCO", "--to", "BANK01", "--by", "CASHCO"],
        [
            "submit",
            "issue",
            "--instrument",
            "USD.CASHCO",
            "--to",
            "BANK01",
            "--by",
            "CASHCO",
            "--amount",
            "10.50",
        ],
        ["submit", "transfer", "--instrument", "X", "--from", "A", "--to", "B", "--amount", "-5"],
        ["submit", "transfer", "--instrument", "X", "--from", "A", "--to", "B", "--amount", "0"],
        [
            "submit",
            "transfer",
            "--instrument",
            "X",
            "--from",
            "../etc",
            "--to",
            "B",
            "--amount",
            "5",
        ],
        ["submit", "dvp", "t.json", "--timeout", "never"],
        ["sign", "dvp", "--seller", "BANK01"],
        ["cosign"],
    ],
    ids=lambda a: " ".join(a) or "nothing",
)
def test_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "--help" in _one_error_line(err)


def test_amounts_are_integers_in_minor_units_never_floats() -> None:
    assert amount("1050") == 1050
    assert amount("1_000_000") == amount("1,000,000") == 1_000_000
    assert amount(str(2**64 - 1)) == 2**64 - 1
    for bad in ["10.5", "1e3", "0", "-1", str(2**64), "", "١٢"]:
        with pytest.raises(argparse.ArgumentTypeError):
            amount(bad)


def test_keys_gen_round_trip(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key_file = tmp_path / "bank.key"
    code, out, _ = run(capsys, "keys", "gen", "--participant", "BANK09", "--out", str(key_file))
    assert code == 0
    public = load_signing_key(key_file).public_key.hex()
    assert f"public key: {public}" in out
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600

    code, out, _ = run(capsys, "keys", "show", str(key_file), "--json")
    assert code == 0
    assert json.loads(out)["public_key"] == public


def test_keys_gen_json_and_default_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(
        capsys, "--run-dir", str(tmp_path), "keys", "gen", "--participant", "BANK09", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["key_file"] == str(tmp_path / "participants" / "BANK09.key")
    assert load_signing_key(doc["key_file"]).public_key.hex() == doc["public_key"]


def test_keys_gen_refuses_to_overwrite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key_file = tmp_path / "bank.key"
    assert run(capsys, "keys", "gen", "--participant", "BANK09", "--out", str(key_file))[0] == 0
    before = key_file.read_bytes()
    code, out, err = run(capsys, "keys", "gen", "--participant", "BANK09", "--out", str(key_file))
    assert code == 1
    assert out == ""
    assert "refusing to overwrite" in _one_error_line(err)
    assert key_file.read_bytes() == before


def test_keys_show_names_the_genesis_participant(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    net = shared_net()
    dump_genesis(net.genesis, tmp_path / "genesis.json")
    key_file = tmp_path / "k.key"
    from node.keyfiles import write_signing_key

    write_signing_key(key_file, net.participant_keys["BANK02"])
    code, out, _ = run(capsys, "--run-dir", str(tmp_path), "keys", "show", str(key_file))
    assert code == 0
    assert "genesis participant: BANK02" in out


@pytest.fixture
def genesis_file(tmp_path: Path) -> Path:
    path = tmp_path / "genesis.json"
    dump_genesis(shared_net().genesis, path)
    return path


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json at all", "not JSON"),
        ("{}", "not a receipt file"),
        ('{"format": "dvp-ledger/receipt/v1", "tx_id": "zz"}', "malformed receipt"),
    ],
)
def test_verify_receipt_of_a_bad_file_fails_with_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    genesis_file: Path,
    content: str,
    reason: str,
) -> None:
    bad = tmp_path / "receipt.json"
    bad.write_text(content)
    code, out, err = run(capsys, "verify-receipt", str(bad), "--genesis", str(genesis_file))
    assert code == 1
    assert out == ""
    line = _one_error_line(err)
    assert line.startswith("ledger: error: invalid receipt: ")
    assert reason in line


def test_verify_receipt_missing_file_or_genesis(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, genesis_file: Path
) -> None:
    code, _, err = run(
        capsys, "verify-receipt", str(tmp_path / "nope.json"), "--genesis", str(genesis_file)
    )
    assert code == 1
    assert "cannot read" in _one_error_line(err)
    code, _, err = run(capsys, "--run-dir", str(tmp_path / "empty"), "verify-receipt", "r.json")
    assert code == 2
    assert "no genesis" in _one_error_line(err)


@pytest.mark.parametrize(
    "argv",
    [
        ["balance", "BANK01"],
        ["status"],
        [
            "submit",
            "issue",
            "--instrument",
            "USD.CASHCO",
            "--to",
            "BANK01",
            "--amount",
            "5",
            "--by",
            "CASHCO",
        ],
        [
            "sign",
            "dvp",
            "--seller",
            "BANK01",
            "--buyer",
            "BANK02",
            "--bond",
            "B",
            "--quantity",
            "1",
            "--cash",
            "C",
            "--amount",
            "1",
            "--out",
            "t.json",
        ],
    ],
    ids=lambda a: a[0],
)
def test_network_commands_without_a_run_directory_are_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    code, out, err = run(capsys, "--run-dir", str(tmp_path / "none"), *argv)
    assert code == 2
    assert out == ""
    assert "run directory" in _one_error_line(err)


def test_sign_and_cosign_offline(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The two parties need genesis and their own key only; the buyer sees the terms and
    refuses a trade whose terms differ from what it expects."""
    net = shared_net()
    dump_genesis(net.genesis, tmp_path / "genesis.json")
    (tmp_path / "participants").mkdir()
    from node.keyfiles import write_signing_key

    for pid in ("BANK01", "BANK02"):
        write_signing_key(tmp_path / "participants" / f"{pid}.key", net.participant_keys[pid])
    g = ["--run-dir", str(tmp_path)]
    proposal, signed = tmp_path / "trade.json", tmp_path / "signed.json"
    code, out, err = run(
        capsys, *g, "sign", "dvp", "--seller", "BANK01", "--buyer", "BANK02",
        "--bond", net.bonds[0], "--quantity", "1000", "--cash", net.cash, "--amount", "990",
        "--out", str(proposal),
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run(capsys, *g, "cosign", str(proposal), "--expect-amount", "1000",
                       "--out", str(signed))  # fmt: skip
    assert code == 1
    assert "amount: expected 1000, got 990" in _one_error_line(err)
    assert not signed.exists()
    code, out, err = run(capsys, *g, "cosign", str(proposal), "--expect-amount", "990",
                         "--json", "--out", str(signed))  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["signers"] == ["BANK01", "BANK02"]
    assert doc["terms"]["amount"] == 990
    assert json.loads(signed.read_text())["missing_signers"] == []


class _LyingNode:
    """What ``_submit_built`` uses of a LedgerClient, over a node whose reference data
    gives ``rekeyed`` another key (a node lying about which key is whose; none: an honest
    node); it records what it is asked to submit."""

    def __init__(self, genesis: Genesis, rekeyed: str | None) -> None:
        self.genesis, self.rekeyed = genesis, rekeyed
        self.tx = Transactions(genesis)
        self.submitted: list[SignedTransaction] = []

    def reference(self) -> None:
        g, other = self.genesis, crypto.SigningKey(b"\x09" * 32).public_key
        parts = [dataclasses.replace(p, public_key=other) if p.id == self.rekeyed else p
                 for p in g.participants]  # fmt: skip
        self.tx.reference = Registry.from_values(g, parts, g.instruments)

    def sign(self, tx: Transaction, *keys: ParticipantKey) -> SignedTransaction:
        return sign(tx, *keys, genesis=self.tx.reference)

    def submit(self, stx: SignedTransaction, **kw: object) -> None:
        self.submitted.append(stx)


def test_a_node_lying_about_the_reference_data_cannot_block_a_submit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ledger submit` checks names and keys against the reference data one node reports;
    a node claiming the sender has another key would have the CLI refuse to sign a
    transfer genesis allows. What genesis allows is signed and sent, and the ledger judges
    it; what neither allows is refused here (the control)."""
    net = shared_net()
    dump_genesis(net.genesis, tmp_path / "genesis.json")
    (tmp_path / "participants").mkdir()
    write_signing_key(tmp_path / "participants" / "BANK01.key", net.participant_keys["BANK01"])
    pay = ["--run-dir", str(tmp_path), "submit", "transfer", "--instrument", net.cash,
           "--from", "BANK01", "--amount", "5", "--no-wait"]  # fmt: skip
    for rekeyed, to, sent in (("BANK01", "BANK02", True), (None, "BANK02", True),
                              (None, "NOBODY", False)):  # fmt: skip
        node = _LyingNode(net.genesis, rekeyed)
        monkeypatch.setattr(_cli_net, "_client", lambda *a, n=node: contextlib.nullcontext(n))
        code, _, err = run(capsys, *pay, "--to", to)
        if sent:
            assert code == 0, err
            assert [s.tx.required_signers() for s in node.submitted] == [("BANK01",)]
        else:
            assert code == 2 and "NOBODY" in _one_error_line(err) and not node.submitted


@pytest.mark.parametrize(
    "argv",
    [
        ["verify-receipt", "{f}"],
        ["cosign", "{f}", "--out", "{d}/out.json"],
        ["sign", "compliance", "{f}", "--out", "{d}/out.json"],
        ["submit", "dvp", "{f}"],
        ["admin", "sign", "{f}", "--admin", "CSD"],
        ["status", "--as", "BANK01"],  # network.json below is no network
    ],
)
def test_hostile_files_are_one_error_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    """A file nested 60,000 deep (past json's recursion limit) and a network.json missing its
    fields: one error line and exit 1 or 2, never a traceback (RecursionError and
    ConfigError escaped main)."""
    net = shared_net()
    dump_genesis(net.genesis, tmp_path / "genesis.json")
    (tmp_path / "participants").mkdir()
    for pid in ("BANK01", "CSD"):
        write_signing_key(tmp_path / "participants" / f"{pid}.key", net.participant_keys[pid])
    (tmp_path / "network.json").write_text(json.dumps({"chain_id": net.genesis.chain_id}))
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 60_000)  # deeper than json recurses, within TRADE_JSON_CHARS_MAX
    args = [a.format(f=nested, d=tmp_path) for a in argv]
    code, _, err = run(capsys, "--run-dir", str(tmp_path), *args)
    assert code in (1, 2)
    _one_error_line(err)


def test_a_path_the_system_refuses_is_one_error_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "--run-dir", "x" * 300, "status")
    assert code == 2 and "File name too long" in _one_error_line(err)


@pytest.mark.parametrize("flag", [True, False])
def test_observer_reaches_the_client(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: bool
) -> None:
    """``--observer`` (docs/cli.md "identity") makes the client refuse party-filtered
    blocks; without it the client is told nothing."""
    net = shared_net()
    (tmp_path / "network.json").write_text("{}")
    (tmp_path / "participants").mkdir()
    write_signing_key(tmp_path / "participants" / "AUDITOR.key", net.participant_keys["AUDITOR"])
    seen: list[object] = []

    def from_run_dir(run_dir: Path, **kw: object) -> object:
        seen.append(kw["observer"])
        raise KeyboardInterrupt  # stop before any call: only the client's options matter

    monkeypatch.setattr(_cli_net.LedgerClient, "from_run_dir", from_run_dir)
    with contextlib.suppress(KeyboardInterrupt):
        run(capsys, "--run-dir", str(tmp_path), "block", "1", *(["--observer"] if flag else []))
    assert seen == [flag]


def test_as_key_signs_with_a_key_kept_outside_the_run_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--identity-key FILE`` (docs/cli.md "identity"): a participant governance added keeps its
    key where it likes; the file's name gives its id unless ``--as`` names it; a name that
    is no id, or no file, is a usage error naming the fix."""
    net = shared_net()
    run_dir, elsewhere = tmp_path / "run", tmp_path / "treasury"
    run_dir.mkdir()
    elsewhere.mkdir()
    (run_dir / "network.json").write_text("{}")
    write_signing_key(elsewhere / "BANK07.key", net.participant_keys["BANK01"])
    write_signing_key(elsewhere / "treasury desk.key", net.participant_keys["BANK01"])
    seen: list[tuple[str, bytes]] = []

    def from_run_dir(run_dir: Path, **kw: object) -> object:
        key = kw["identity"]
        assert isinstance(key, _cli_net.ParticipantKey)
        seen.append((key.participant, key.public_key))
        raise KeyboardInterrupt  # stop before any call: only the identity matters

    monkeypatch.setattr(_cli_net.LedgerClient, "from_run_dir", from_run_dir)
    pub = net.participant_keys["BANK01"].public_key
    for argv in (
        ["--identity-key", str(elsewhere / "BANK07.key"), "status"],
        ["status", "--as", "BANK08", "--identity-key", str(elsewhere / "BANK07.key")],
        ["status", "--as", "BANK09", "--identity-key", str(elsewhere / "treasury desk.key")],
    ):
        with contextlib.suppress(KeyboardInterrupt):
            run(capsys, "--run-dir", str(run_dir), *argv)
    assert seen == [("BANK07", pub), ("BANK08", pub), ("BANK09", pub)]
    code, _, err = run(
        capsys,
        "--run-dir",
        str(run_dir),
        "status",
        "--identity-key",
        str(elsewhere / "treasury desk.key"),
    )
    assert code == 2 and "pass --as ID" in _one_error_line(err)
    code, _, err = run(
        capsys, "--run-dir", str(run_dir), "status", "--identity-key", str(elsewhere / "BANK10.key")
    )
    assert code == 2 and "no such key file" in _one_error_line(err)
    assert len(seen) == 3
