"""The AML co-signature through the SDK and the CLI (issue 15 item 5): builders take
``cosigner=``, ``ledger sign dvp --cosign``, the buyer's ``ledger cosign`` and the
compliance officer's ``ledger sign compliance`` make a trade the ledger settles above the
threshold; without the co-signature it is refused COSIGN_REQUIRED."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from client import (
    InvalidFieldError,
    ParticipantKey,
    SignedTransaction,
    TradeError,
    Transactions,
    accept_dvp,
    cosign,
    propose_dvp,
    sign,
)
from client.cli import main as ledger_main
from node.genesis import dump_genesis
from node.keyfiles import write_signing_key
from node.settlement import ResultCode
from node.store import MemoryStore
from tests.kyc_helpers import COSIGN_ABOVE, kyc_net
from tests.ledger_helpers import run_block as run

NET = kyc_net()
G = NET.genesis
NOW_S = G.genesis_time_ms / 1000 + 1


def key(pid: str) -> ParticipantKey:
    return ParticipantKey(pid, NET.participant_keys[pid])


def txs() -> Transactions:
    return Transactions(G, clock=lambda: NOW_S)


def code_of(raw: bytes) -> ResultCode:
    (result,) = run(MemoryStore(G), raw, at_ms=1_000).results
    return result.code


def test_the_builders_take_a_cosigner_and_refuse_one_that_cannot_count() -> None:
    d = txs().dvp("BANK01", "BANK02", NET.bonds[1], 10, NET.cash, 5, cosigner="COMPLIANCE")
    assert d.required_signers() == ("BANK01", "BANK02", "COMPLIANCE")
    t = txs().transfer(NET.cash, "BANK01", "BANK02", 5, cosigner="COMPLIANCE")
    assert t.cosigner == "COMPLIANCE"
    p = txs().pending_dvp("BANK01", "BANK02", NET.bonds[1], 10, NET.cash, 5, cosigner="COMPLIANCE")
    assert p.cosigner == "COMPLIANCE"
    for bad in ("REGULATOR", "BANK01", "NOBODY"):
        with pytest.raises(InvalidFieldError, match="cosigner"):
            txs().dvp("BANK01", "BANK02", NET.bonds[1], 10, NET.cash, 5, cosigner=bad)
    assert txs().dvp("BANK01", "BANK02", NET.bonds[1], 10, NET.cash, 5).cosigner == ""


def test_seller_buyer_and_compliance_sign_in_either_order_and_it_settles() -> None:
    big = COSIGN_ABOVE + 1
    d = txs().dvp("BANK01", "BANK02", NET.bonds[1], 10, NET.cash, big, cosigner="COMPLIANCE")
    offer = propose_dvp(d, key("BANK01"), G)
    now = G.genesis_time_ms + 1_000
    # The buyer first, then compliance.
    accepted = accept_dvp(offer, key("BANK02"), G, now_ms=now)
    assert accepted.missing_signers() == ("COMPLIANCE",)
    done = cosign(accepted, key("COMPLIANCE"), G)
    assert done.missing_signers() == () and code_of(done.raw) is ResultCode.OK
    # Compliance first (on the seller's offer), then the buyer.
    early = cosign(offer, key("COMPLIANCE"), G)
    assert accept_dvp(early.raw, key("BANK02"), G, now_ms=now).raw == done.raw
    # Negative control: the parties alone, above the threshold.
    plain = replace(d, cosigner="")
    both = sign(plain, key("BANK01"), key("BANK02"), genesis=G)
    assert code_of(both.raw) is ResultCode.COSIGN_REQUIRED


def test_cosign_refuses_a_transaction_that_names_another_or_no_cosigner() -> None:
    d = txs().dvp("BANK01", "BANK02", NET.bonds[1], 10, NET.cash, 5)
    with pytest.raises(TradeError, match="names no co-signer"):
        cosign(SignedTransaction.unsigned(d), key("COMPLIANCE"), G)


def _ledger(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = ledger_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_co_sign_steps(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    dump_genesis(G, tmp_path / "genesis.json")
    (tmp_path / "participants").mkdir()
    for pid in ("BANK01", "BANK02", "COMPLIANCE"):
        write_signing_key(tmp_path / "participants" / f"{pid}.key", NET.participant_keys[pid])
    g = ["--run-dir", str(tmp_path)]
    offer, accepted, final = (tmp_path / f for f in ("t.json", "a.json", "f.json"))
    code, out, err = _ledger(
        capsys, *g, "sign", "dvp", "--seller", "BANK01", "--buyer", "BANK02",
        "--bond", NET.bonds[1], "--quantity", "10", "--cash", NET.cash,
        "--amount", str(COSIGN_ABOVE + 1), "--cosign", "COMPLIANCE", "--out", str(offer),
    )  # fmt: skip
    assert code == 0, err
    assert "ledger sign compliance" in out
    code, out, err = _ledger(capsys, *g, "cosign", str(offer), "--out", str(accepted))
    assert code == 0, err
    assert "COMPLIANCE co-signs it" in out
    assert json.loads(accepted.read_text())["missing_signers"] == ["COMPLIANCE"]
    code, out, err = _ledger(capsys, *g, "sign", "compliance", str(accepted), "--out", str(final))
    assert code == 0, err
    signed = SignedTransaction.loads(final.read_text())
    assert signed.signers == ("BANK01", "BANK02", "COMPLIANCE")
    assert code_of(signed.raw) is ResultCode.OK
    # Negative control: a trade that names no co-signer cannot be co-signed.
    code, _, err = _ledger(
        capsys, *g, "sign", "dvp", "--seller", "BANK01", "--buyer", "BANK02",
        "--bond", NET.bonds[1], "--quantity", "10", "--cash", NET.cash, "--amount", "5",
        "--out", str(offer),
    )  # fmt: skip
    assert code == 0, err
    code, _, err = _ledger(capsys, *g, "sign", "compliance", str(offer), "--out", str(final))
    assert code == 2 and "names no co-signer" in err
