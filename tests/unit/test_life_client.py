"""The bond lifecycle in the SDK and the CLI, offline: builders checked against genesis,
signed lifecycle transactions as JSON, ``ledger schedule --offline``."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from client import InvalidFieldError, SignedTransaction, Transactions, sign
from client._cli_life import _exact
from client._cli_net import describe
from client.cli import main
from node.genesis import DemoNetwork, dump_genesis
from node.settlement import CouponPay, Distribute, Redeem, RedeemAll
from tests.life_helpers import AGENT, life_net


@pytest.fixture
def lnet() -> DemoNetwork:
    return life_net()


def test_builders_fill_the_agent_from_genesis(lnet: DemoNetwork) -> None:
    t = Transactions(lnet.genesis)
    bond, bill, fund = *lnet.bonds, lnet.fund
    c = t.coupon(bond, 1)
    assert isinstance(c, CouponPay) and c.agent == AGENT and c.required_signers() == (AGENT,)
    d = t.distribute(fund, 3, 500)
    assert isinstance(d, Distribute) and (d.period, d.total, d.agent) == (3, 500, AGENT)
    r = t.redeem_bond(bill, "BANK01")
    assert isinstance(r, Redeem) and r.required_signers() == ("BANK01",)
    a = t.redeem_all(bill)
    assert isinstance(a, RedeemAll) and a.agent == AGENT


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda t, n: t.coupon(n.bonds[0], 2), "period"),  # the final period: by redemption
        (lambda t, n: t.coupon(n.bonds[0], 0), "period"),
        (lambda t, n: t.coupon(n.bonds[1], 1), "period"),  # a bill has no coupon
        (lambda t, n: t.coupon(n.fund, 1), "bond"),
        (lambda t, n: t.coupon(n.bonds[0], 1, agent="CSD"), "agent"),
        (lambda t, n: t.distribute(n.fund, 1, 0), "total"),
        (lambda t, n: t.distribute(n.fund, 1_201, 1), "period"),
        (lambda t, n: t.distribute(n.bonds[0], 1, 1), "fund"),
        (lambda t, n: t.redeem_bond(n.cash, "BANK01"), "bond"),
        (lambda t, n: t.redeem_bond(n.bonds[0], "NOBODY"), "holder"),
        (lambda t, n: t.redeem_all(n.bonds[0], agent="BANK01"), "agent"),
    ],
)
def test_builders_refuse_what_genesis_rules_out(
    lnet: DemoNetwork, build: object, field: str
) -> None:
    with pytest.raises(InvalidFieldError) as e:
        build(Transactions(lnet.genesis), lnet)  # type: ignore[operator]
    assert e.value.field == field


def test_a_signed_coupon_round_trips_as_json(lnet: DemoNetwork) -> None:
    from client import ParticipantKey

    g = lnet.genesis
    tx = Transactions(g).coupon(lnet.bonds[0], 1)
    stx = sign(tx, ParticipantKey(AGENT, lnet.participant_keys[AGENT]), genesis=g)
    back = SignedTransaction.loads(stx.dumps())
    assert back.tx == tx and back.missing_signers() == ()
    assert json.loads(stx.dumps())["terms"]["kind"] == "COUPON_PAY"


def test_describe_names_the_new_commands_apart_from_burn(lnet: DemoNetwork) -> None:
    t = Transactions(lnet.genesis)
    assert describe(t.coupon(lnet.bonds[0], 1)).startswith("COUPON ")
    assert describe(t.distribute(lnet.fund, 1, 1_000)).startswith("DISTRIBUTE 1,000 ")
    assert describe(t.redeem_bond(lnet.bonds[1], "BANK01")).startswith("REDEEM-BOND ")
    assert describe(t.redeem_all(lnet.bonds[1])).startswith("REDEEM-ALL ")
    assert describe(t.redeem(lnet.bonds[1], "BANK01", 5, "TREASURY")).startswith("REDEEM 5 ")


def test_exact_per_unit_amounts() -> None:
    assert _exact(Fraction(425, 20_000)) == "0.02125"
    assert _exact(Fraction(5, 2)) == "2.5"
    assert _exact(Fraction(7)) == "7"
    assert _exact(Fraction(1, 3)) == "1/3"


def test_schedule_offline_lists_the_calendar(
    lnet: DemoNetwork, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump_genesis(lnet.genesis, tmp_path / "genesis.json")
    argv = ["--run-dir", str(tmp_path), "schedule", lnet.bonds[0], "--offline", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["periods"] == [
        {"period": "1", "date": "2026-07-15", "per_unit": "2.5", "paid": "?"},
        {
            "period": "2",
            "date": "2027-01-15",
            "per_unit": "2.5 + face 100",
            "paid": "by redemption",
        },
    ]
    assert main(["--run-dir", str(tmp_path), "schedule", lnet.cash, "--offline"]) == 2
    assert "not a bond or fund" in capsys.readouterr().err


def test_the_lifecycle_commands_exist_apart_from_the_burn() -> None:
    from tests.unit.test_cli import COMMANDS

    wanted = {
        ("submit", "coupon"),
        ("submit", "distribute"),
        ("submit", "redeem-bond"),
        ("submit", "redeem-all"),
        ("submit", "redeem"),  # the burn, unchanged
        ("schedule",),
        ("holders",),
    }
    assert wanted <= set(COMMANDS)
