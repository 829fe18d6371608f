"""Review 33d: what README.md and docs/cli.md tell a user to type, against a real cluster.

Each defect found there, pinned without a cluster: a cluster that does not answer was
reported with its cause cut off mid-word; ``fails`` and ``report settlement`` took a
range with ``--from`` above ``--to`` as an empty answer (exit 0); ``keys show`` of a file
that is no key printed a chmod warning above its error; a compliance-rules change was
described as ``SET_COMPLIANCE_RULES None``; the tables of ``repo list``, ``report repo``,
``lock list`` and ``admin show`` did not group digits as docs/cli.md says tables do.
docs/testing.md, "Review 33d".
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from client import LockView, Transactions, UnavailableError, _cli_admin, _cli_net
from client._reference import Reference
from devtools.netgen import NetSpec, free_port_base, generate
from node.genesis import dump_genesis
from node.keyfiles import write_signing_key
from node.settlement import Registry, RepoRecord, RepoStatus, Secured, SecuredKind
from tests.ledger_helpers import shared_net
from tests.unit.test_cli import _one_error_line, run


def test_a_cluster_that_does_not_answer_is_reported_with_its_cause(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A real run directory whose nodes are not running: the SDK's own connection errors.
    The last one was cut at 100 characters, before the port and "Connection refused"."""
    spec = NetSpec(4, 3, free_port_base(4))
    net = generate(tmp_path / "run", spec, progress=lambda _: None)
    last_port = net.nodes[-1].client_port
    code, out, err = run(capsys, "--run-dir", str(tmp_path / "run"), "balance", "BANK01")
    line = _one_error_line(err)
    assert code == 1 and out == ""
    assert f"127.0.0.1:{last_port}: Failed to connect to remote host: Connection refused" in line
    assert "check the nodes are up" in line


def test_a_node_s_long_error_text_stays_bounded_and_the_cut_is_marked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound on one node's text stays (a hostile node's message), marked where cut."""

    def command(args: argparse.Namespace) -> int:
        raise UnavailableError("balances", ["127.0.0.1:1: " + "x" * 10_000])

    monkeypatch.setattr(_cli_net, "_command", lambda name: command)
    code, _, err = run(capsys, "--run-dir", "nowhere", "balance", "BANK01")
    line = _one_error_line(err)
    assert code == 1
    assert "x" * 300 in line and "x" * 500 not in line
    assert "...); check the nodes are up" in line


class _HeadOnly:
    """A client whose chain is 3 blocks high; asked for blocks 5..5 it returns none."""

    def __init__(self) -> None:
        self.calls = 0

    def head(self) -> int:
        self.calls += 1
        return 3

    def transaction(self, tid: bytes) -> Any:
        raise AssertionError("no fail to look up")


@pytest.mark.parametrize("command", [["fails"], ["report", "settlement"]], ids="-".join)
def test_a_range_with_from_above_to_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    node = _HeadOnly()
    monkeypatch.setattr(_cli_net, "_client", lambda *a, **k: contextlib.nullcontext(node))
    code, out, err = run(capsys, *command, "--from", "10", "--to", "5")
    assert code == 2 and out == ""
    assert "--from 10 is above --to 5" in _one_error_line(err)
    assert node.calls == 0  # refused before any node is asked
    # The control: a range of one block, past the head, is no error (its blocks may come).
    code, out, err = run(capsys, *command, "--from", "5", "--to", "5")
    assert code == 0 and err == "" and node.calls == 1


def test_keys_show_of_a_file_that_is_no_key_is_one_error_line(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """genesis.json is 0644, as it should be: refused as no key, with no advice to chmod
    it (the warning went to stderr above the error, a second line; under pytest the
    warning goes to caplog, not stderr)."""
    path = tmp_path / "genesis.json"
    dump_genesis(shared_net().genesis, path)
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="node.keyfiles"):
        code, out, err = run(capsys, "keys", "show", str(path))
    assert code == 1 and out == ""
    line = _one_error_line(err)
    assert "not an unencrypted PKCS8 PEM private key" in line
    assert "chmod" not in caplog.text
    # The control: a key others may read still loads, with the warning.
    key = tmp_path / "loose.key"
    write_signing_key(key, shared_net().participant_keys["BANK01"])
    os.chmod(key, 0o644)
    with caplog.at_level(logging.WARNING, logger="node.keyfiles"):
        code, out, _ = run(capsys, "keys", "show", str(key))
    assert code == 0 and "public key: " in out and "chmod 600" in caplog.text


def test_a_compliance_rules_change_is_described_without_none() -> None:
    g = shared_net().genesis
    admins = g.admins[: g.admin_threshold]
    tx = Transactions(g).set_compliance_rules(g.compliance, admins)
    assert _cli_net.describe(tx) == f"SET_COMPLIANCE_RULES signed by admins {', '.join(admins)}"
    tier = Transactions(g).set_kyc_tier("BANK03", 3, admins)  # the control: it names BANK03
    assert _cli_net.describe(tier).startswith("SET_KYC_TIER BANK03 signed by admins")


_BIG = 1_234_567_890


class _Reader:
    """Answers the read commands with one record each, every amount ``_BIG``."""

    def __init__(self) -> None:
        g = shared_net().genesis
        self.genesis = g
        self.bond, self.cash = shared_net().bonds[0], shared_net().cash

    def repos(self, repo_id: str = "", *, party: str = "") -> tuple[int, tuple[RepoRecord, ...]]:
        rec = RepoRecord(
            "R1", "BANK01", "BANK02", self.bond, _BIG, self.cash, _BIG, 0, 500,
            1, 2, 3, 1, RepoStatus.CLOSED, close_amount=_BIG,
        )  # fmt: skip
        live = RepoRecord(
            "R2", "BANK01", "BANK02", self.bond, _BIG, self.cash, _BIG, 0, 500,
            1, 2, 3, 1, RepoStatus.OPEN,
        )  # fmt: skip
        return 9, (rec, live)

    def locks(self, party: str = "") -> tuple[int, tuple[LockView, ...]]:
        k = LockView(b"\x01" * 32, "BANK01", self.bond, _BIG, "BANK02", 5,
                     Secured(SecuredKind.NONE, b""), 1, 1, ())  # fmt: skip
        return 9, (k,)

    def reference(self) -> Reference:
        g = self.genesis
        reg = Registry.from_values(g, g.participants, g.instruments)
        supplies = {i.id: _BIG for i in g.instruments}
        return Reference(9, reg, supplies, g.admins, g.admin_threshold)


@pytest.mark.parametrize(
    "command",
    [["repo", "list"], ["report", "repo"], ["lock", "list"], ["admin", "show"]],
    ids="-".join,
)
def test_tables_group_digits(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """docs/cli.md "output": tables group digits (1,000,000); JSON keeps bare integers."""
    node = _Reader()
    for module in (_cli_net, _cli_admin):
        monkeypatch.setattr(module, "_client", lambda *a, **k: contextlib.nullcontext(node))
    code, out, err = run(capsys, *command)
    assert code == 0, err
    assert "1,234,567,890" in out and str(_BIG) not in out
    if command == ["admin", "show"]:  # the caps too (genesis's, not _BIG)
        cap = node.genesis.instruments[0].max_supply
        assert f"{cap:,}" in out and str(cap) not in out
    code, out, err = run(capsys, "--json", *command)
    assert code == 0 and str(_BIG) in out and "1,234,567,890" not in out
