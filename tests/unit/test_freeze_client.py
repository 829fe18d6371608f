"""Freezes in the SDK builders and the CLI, without a cluster: the builders check the
target and the reason against genesis and the documented list, a signed freeze travels as
JSON, and `ledger submit freeze|unfreeze` exist and sign offline-checked terms."""

from __future__ import annotations

import json

import pytest

from client import InvalidFieldError, ParticipantKey, SignedTransaction, Transactions, sign
from client._cli_net import describe
from client.cli import main
from node.settlement import Freeze, FreezeReason, Unfreeze
from tests.ledger_helpers import shared_net

NET = shared_net()


def test_the_builders_take_a_reason_by_enum_name_or_number() -> None:
    t = Transactions(NET.genesis)
    for reason in (FreezeReason.FRAUD, "fraud", "FRAUD", 4, "4"):
        tx = t.freeze("BANK01", "REGULATOR", reason)
        assert isinstance(tx, Freeze) and tx.reason is FreezeReason.FRAUD
        assert (tx.account, tx.instrument) == ("BANK01", "")
    held = t.freeze("BANK01", "REGULATOR", "SANCTIONS", NET.cash)
    assert held.instrument == NET.cash
    off = t.unfreeze("BANK01", "COMPLIANCE")
    assert isinstance(off, Unfreeze) and off.instrument == ""


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda t: t.freeze("NOBODY", "REGULATOR", 1), "account"),
        (lambda t: t.freeze("BANK01", "REGULATOR", 1, "NO.SUCH"), "instrument"),
        (lambda t: t.freeze("BANK01", "REGULATOR", 0), "reason"),
        (lambda t: t.freeze("BANK01", "REGULATOR", "MOOD"), "reason"),
        (lambda t: t.freeze("BANK01", "REGULATOR", True), "reason"),
        (lambda t: t.unfreeze("BANK01", "NOBODY"), "by"),
    ],
)
def test_the_builders_refuse_what_genesis_or_the_reason_list_rules_out(
    call: object, field: str
) -> None:
    with pytest.raises(InvalidFieldError) as e:
        call(Transactions(NET.genesis))  # type: ignore[operator]
    assert e.value.field == field


def test_a_signed_freeze_round_trips_as_json_and_describes_itself() -> None:
    g = NET.genesis
    tx = Transactions(g).freeze("BANK01", "REGULATOR", "COURT_ORDER", NET.cash)
    stx = sign(tx, ParticipantKey("REGULATOR", NET.participant_keys["REGULATOR"]), genesis=g)
    back = SignedTransaction.loads(stx.dumps())
    assert back.tx == tx and back.missing_signers() == ()
    assert json.loads(stx.dumps())["terms"]["kind"] == "FREEZE"
    assert describe(tx) == f"FREEZE BANK01's {NET.cash} (COURT_ORDER) by REGULATOR"
    assert describe(Transactions(g).unfreeze("BANK01", "COMPLIANCE")) == (
        "UNFREEZE BANK01's account by COMPLIANCE"
    )


def test_the_freeze_commands_exist_with_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["submit", "freeze"], ["submit", "unfreeze"], ["freezes"]):
        assert main([*command, "--help"]) == 0
        assert capsys.readouterr().out.startswith("usage: ledger"), command
    assert main(["submit", "freeze", "--account", "BANK01", "--by", "REGULATOR"]) == 2
    assert "--reason" in capsys.readouterr().err  # required
