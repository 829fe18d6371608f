"""The SDK builders and the CLI of locks and swaps (docs/sdk.md, docs/cli.md), offline:
each builder checks its fields against genesis (InvalidFieldError names the field, with
a control that the good value passes), signed transactions survive JSON, and the CLI
refuses bad arguments with exit 2 before reaching a node."""

from __future__ import annotations

import json

import pytest

from client import (
    InvalidFieldError,
    ParticipantKey,
    SignedTransaction,
    Transactions,
    sign,
    terms_of,
)
from client._cli_lock import describe
from client.cli import main
from node.genesis import DemoNetwork
from node.settlement import Secured, SecuredKind

_ID = bytes(range(32))


def test_lock_builder_checks_its_fields(net: DemoNetwork) -> None:
    txs, bond = Transactions(net.genesis), net.bonds[0]
    tx = txs.lock("BANK01", bond, 5, "BANK02", 10**13, _ID)
    assert tx.secures == Secured(SecuredKind.PENDING_DVP, _ID)
    assert txs.lock("BANK01", bond, 5, "BANK02", 10**13).secures == Secured()
    for args, field in (
        (("BANK01", bond, 5, "BANK01", 1), "beneficiary"),
        (("NOBODY", bond, 5, "BANK02", 1), "holder"),
        (("BANK01", "NOPE", 5, "BANK02", 1), "instrument"),
        (("BANK01", bond, 0, "BANK02", 1), "amount"),
        (("BANK01", bond, 5, "BANK02", 1, b"short"), "secures"),
    ):
        with pytest.raises(InvalidFieldError) as e:
            txs.lock(*args)  # type: ignore[arg-type]
        assert e.value.field == field


def test_release_claim_and_swap_builders_check_their_fields(net: DemoNetwork) -> None:
    txs, (a, b) = Transactions(net.genesis), net.bonds
    assert txs.release_lock(_ID, "BANK01", "BANK02").required_signers() == ("BANK02",)
    claim = txs.claim_lock(_ID, "BANK01", "BANK02", a, 5)
    assert claim.required_signers() == ("BANK02",)
    with pytest.raises(InvalidFieldError) as e:
        txs.claim_lock(_ID, "BANK01", "BANK02", a, 0)
    assert e.value.field == "amount"
    with pytest.raises(InvalidFieldError) as e:
        txs.release_lock(b"x", "BANK01", "BANK02")
    assert e.value.field == "lock"
    swap = txs.swap("BANK01", a, 3, "BANK02", b, 4)
    assert swap.deadline_ms == swap.expiry_ms
    assert swap.required_signers() == ("BANK01", "BANK02")
    for args, field in (
        (("BANK01", a, 3, "BANK01", b, 4), "party_b"),
        (("BANK01", a, 3, "BANK02", a, 4), "instrument_b"),
        (("BANK01", net.cash, 3, "BANK02", b, 4), "instrument_a"),
    ):
        with pytest.raises(InvalidFieldError) as e:
            txs.swap(*args)  # type: ignore[arg-type]
        assert e.value.field == field


def test_signed_locks_and_swaps_survive_json(net: DemoNetwork) -> None:
    txs, keys = Transactions(net.genesis), net.participant_keys
    tx = txs.lock("BANK01", net.bonds[0], 5, "BANK02", 10**13, _ID)
    a, b = (ParticipantKey(p, keys[p]) for p in ("BANK01", "BANK02"))
    stx = sign(tx, a, b, genesis=net.genesis)
    assert SignedTransaction.from_json(json.loads(json.dumps(stx.to_json()))) == stx
    terms = terms_of(tx)
    assert terms["kind"] == "LOCK" and terms["secures"]["ref"] == _ID.hex()
    assert "securing trade" in describe(terms)
    swap = txs.swap("BANK01", net.bonds[0], 3, "BANK02", net.bonds[1], 4)
    assert describe(terms_of(swap)).startswith("SWAP BANK01 -> BANK02 3 ")


_CREATE = ["lock", "create", "--holder", "BANK01", "--beneficiary", "BANK02"]


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (
            ["lock", "release", "--lock", "zz", "--holder", "BANK01", "--by", "BANK02"],
            "--lock must be 64 hex digits",
        ),
        (
            ["lock", "claim", "--lock", "ab" * 31, "--beneficiary", "BANK02"],
            "--lock must be 64 hex digits",
        ),
        (
            [*_CREATE, "--instrument", "X", "--amount", "5", "--for-s", "2", "--secures", "ab"],
            "--secures must be 64 hex digits",
        ),
        (
            [*_CREATE, "--instrument", "X", "--amount", "5", "--until-ms", "1", "--for-s", "2"],
            "not allowed with argument",
        ),
        (
            [*_CREATE, "--instrument", "X", "--amount", "1.5", "--for-s", "2"],
            "is not a whole number",
        ),
        (
            ["swap", "--a", "BANK01", "--a-instrument", "X", "--a-quantity", "1", "--b", "BANK02"],
            "are required: --b-instrument, --b-quantity",
        ),
    ],
)
def test_bad_lock_arguments_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], why: str, tmp_path: object
) -> None:
    assert main(["--run-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("ledger: error: ") and why in err[0], err


def test_a_lock_is_read_by_its_holder_its_beneficiary_and_observers() -> None:
    from node.access import Caller, may_read_lock

    for who, observer, may in (
        ("BANK01", False, True),
        ("BANK02", False, True),
        ("AUDITOR", True, True),
        ("BANK03", False, False),  # the control: a bank that is neither
    ):
        assert may_read_lock(Caller(who, observer), "BANK01", "BANK02") is may, who
