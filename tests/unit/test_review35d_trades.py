"""Review 35d: the offline DvP exchange (client/_trades.py) as a hostile counterparty
attacks it. "On reading, the readable terms must equal the signed bytes": a key given
twice, a number written as a float or a bool, a readable tx id or signer list that is not
the envelope's, extra fields, and a file of any size all passed; the buyer co-signed an
offer open for decades and one carrying a forged co-signature; and the CLI reported a
tampered signed file as "not a proposal". Each test has its control."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from client import (
    ParticipantKey,
    SignedTransaction,
    SigningError,
    TermsMismatchError,
    TradeError,
    Transactions,
    accept_dvp,
    cosign,
    propose_dvp,
    sign,
)
from client import _trades as trades
from client._limits import OFFER_CLOCK_SLACK_S, TRADE_JSON_CHARS_MAX, TTL_MAX_S
from client.cli import main
from node.config import TX_BYTES_MAX
from node.genesis import demo_genesis, dump_genesis
from node.keyfiles import write_signing_key
from node.settlement import ComplianceRules, DvP, SetComplianceRules, SignedTx, encode_body
from tests.ledger_helpers import shared_net

NET = shared_net()
G = NET.genesis
NOW_MS = 1_900_000_001_000  # its bits overlap TTL_MAX_S's in ms: + is not | or ^


def _key(pid: str) -> ParticipantKey:
    return ParticipantKey(pid, NET.participant_keys[pid])


def _dvp(quantity: int = 100, amount: int = 99, **kw: Any) -> DvP:
    t = Transactions(G, ttl_s=600, clock=lambda: NOW_MS / 1000)
    return t.dvp("BANK01", "BANK02", NET.bonds[0], quantity, NET.cash, amount, **kw)


def _offer(**kw: Any) -> str:
    return propose_dvp(_dvp(**kw), _key("BANK01"), G)


def _accept(text: str | bytes, **kw: Any) -> SignedTransaction:
    return accept_dvp(text, _key("BANK02"), G, now_ms=NOW_MS, **kw)


def _edited(text: str, edit: Any) -> str:
    doc = json.loads(text)
    edit(doc)
    return json.dumps(doc)


# --- what a person reads is what is signed -----------------------------------------------


def test_a_key_given_twice_is_refused() -> None:
    """Python keeps the last "amount"; a reader that keeps the first shows another price."""
    offer = _offer()
    assert _accept(offer).missing_signers() == ()  # the control
    twice = offer.replace('"amount": 99', '"amount": 1, "amount": 99', 1)
    with pytest.raises(TradeError, match="'amount' appears twice"):
        _accept(twice)
    shadow = offer.replace('"terms": {', '"terms": {"amount": 1}, "terms": {', 1)
    with pytest.raises(TradeError, match="'terms' appears twice"):
        _accept(shadow)


@pytest.mark.parametrize(
    ("field", "lie", "lie_signed"),
    [
        ("tx_id", "00" * 32, "00" * 32),
        ("signers", ["BANK01", "BANK02"], ["BANK01"]),
        ("missing_signers", [], ["BANK02"]),
    ],
)
def test_the_readable_tx_id_and_signers_must_be_the_envelopes(
    field: str, lie: object, lie_signed: object
) -> None:
    """An offer saying the buyer signed already, or naming another tx id to watch for; a
    signed transaction saying a party has not signed."""
    offer = _offer()
    verb = "differs" if field == "tx_id" else "differ"
    with pytest.raises(TradeError, match=f"readable {field} {verb} from .* \\(tampered\\)$"):
        _accept(_edited(offer, lambda d: d.update({field: lie})))
    stx = sign(_dvp(), _key("BANK01"), _key("BANK02"), genesis=G)
    assert SignedTransaction.loads(stx.dumps()) == stx  # the control
    with pytest.raises(TradeError, match=f"readable {field} differ"):
        SignedTransaction.loads(_edited(stx.dumps(), lambda d: d.update({field: lie_signed})))


def test_a_field_the_format_has_not_or_one_it_lacks_is_refused() -> None:
    offer = _offer()
    with pytest.raises(TradeError, match="fields note extra or missing"):
        _accept(_edited(offer, lambda d: d.update(note="the price is 50")))
    with pytest.raises(TradeError, match="fields tx_id extra or missing"):
        _accept(_edited(offer, lambda d: d.pop("tx_id")))
    same = _edited(offer, lambda d: None)  # the control: re-serialised, it still reads
    assert _accept(same).tx == _accept(offer).tx


@pytest.mark.parametrize(
    ("term", "value", "quantity"),
    [("amount", 99.0, 100), ("expiry_ms", NOW_MS + 600_000.0, 100), ("quantity", True, 1)],
)
def test_terms_must_equal_the_signed_ones_as_json_text(
    term: str, value: object, quantity: int
) -> None:
    """99.0 == 99 and True == 1 in Python; the text a person or another reader sees is
    not the signed terms' text."""
    offer = _offer(quantity=quantity)
    assert _accept(offer).tx.quantity == quantity  # the control

    def edit(d: dict[str, Any]) -> None:
        d["terms"][term] = value

    with pytest.raises(TradeError, match="readable terms differ"):
        _accept(_edited(offer, edit))


def test_an_oversized_document_is_refused_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A valid offer padded with spaces past the bound: refused without parsing (a
    hostile 256 MB file of empty lists parsed to gigabytes); the largest document the SDK
    writes, compliance tables filling a transaction, is within it (the control)."""
    rows = tuple((f"I{i:03d}", 1) for i in range(200))
    admins = tuple(G.admins[: G.admin_threshold])
    rules = SetComplianceRules(G.chain_id, 1, NOW_MS, ComplianceRules(rows, (), rows), admins)
    largest = SignedTransaction.unsigned(rules)
    assert len(largest.raw) > 3_800 and len(largest.dumps()) < TRADE_JSON_CHARS_MAX
    assert SignedTransaction.loads(largest.dumps()) == largest
    padded = _offer() + " " * TRADE_JSON_CHARS_MAX
    parsed: list[int] = []
    real = json.loads
    monkeypatch.setattr(trades.json, "loads", lambda t, **kw: parsed.append(1) or real(t, **kw))
    with pytest.raises(TradeError, match="more than the 65,536"):
        _accept(padded)
    assert parsed == []


# --- the buyer's checks ---------------------------------------------------------------------


def _signed_by_seller(dvp: DvP) -> bytes:
    return (
        SignedTx(encode_body(dvp), ())
        .with_signature("BANK01", NET.participant_keys["BANK01"])
        .encode()
    )


@pytest.mark.parametrize("term", ["expiry_ms", "deadline_ms"])
def test_an_offer_open_longer_than_any_builder_allows_is_refused(term: str) -> None:
    """The ledger bounds neither: co-signed, an offer open for years is an option for
    whoever holds the file. A builder's longest (TTL_MAX_S), read by a buyer whose clock
    is a minute behind, is accepted (the control)."""
    longest = Transactions(G, ttl_s=TTL_MAX_S, clock=lambda: NOW_MS / 1000).dvp(
        "BANK01", "BANK02", NET.bonds[0], 100, NET.cash, 99, deadline_s=TTL_MAX_S
    )
    _accept(propose_dvp(longest, _key("BANK01"), G))
    accept_dvp(_signed_by_seller(longest), _key("BANK02"), G, now_ms=NOW_MS - 60_000)
    bound = NOW_MS + (TTL_MAX_S + OFFER_CLOCK_SLACK_S) * 1000
    at_bound = dataclasses.replace(_dvp(), expiry_ms=bound, deadline_ms=bound)
    _accept(_signed_by_seller(at_bound))
    far = dataclasses.replace(at_bound, **{term: bound + 1})
    with pytest.raises(TradeError, match="more than the 7 days a builder allows"):
        _accept(_signed_by_seller(far))
    with pytest.raises(TradeError, match="stays open until"):
        _accept(_signed_by_seller(dataclasses.replace(_dvp(), **{term: 2**64 - 1})))


def test_a_forged_co_signature_in_the_offer_is_refused() -> None:
    """The buyer was told the trade was complete ("submit it") and the ledger refused it.
    A genuine co-signature is accepted, and a bogus buyer signature is replaced by the
    buyer's own (the controls)."""
    d = _dvp(cosigner="COMPLIANCE")
    env = SignedTx.decode(_signed_by_seller(d))
    bogus = SignedTx(env.body, tuple(sorted([*env.signatures, ("COMPLIANCE", b"\x01" * 64)])))
    with pytest.raises(TradeError, match="co-signer COMPLIANCE's signature is not"):
        _accept(bogus.encode())
    real = cosign(SignedTransaction(env.encode()), _key("COMPLIANCE"), G)
    assert _accept(real.raw).missing_signers() == ()
    fake_buyer = SignedTx(env.body, tuple(sorted([*env.signatures, ("BANK02", b"\x02" * 64)])))
    done = _accept(fake_buyer.encode())
    assert done.missing_signers() == ("COMPLIANCE",)
    assert done.envelope.signatures != fake_buyer.signatures


# --- the CLI -----------------------------------------------------------------------------------


def _ledger(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_the_cli_says_a_tampered_signed_file_is_tampered(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`sign compliance` and `submit dvp` read a signed transaction, and on any refusal
    read it again as a proposal: the user was told only "not a proposal". An untouched
    file still co-signs, and a proposal given to `submit dvp` names who must still sign
    (the controls)."""
    dump_genesis(G, tmp_path / "genesis.json")
    (tmp_path / "participants").mkdir()
    for pid in ("BANK01", "BANK02", "COMPLIANCE"):
        write_signing_key(tmp_path / "participants" / f"{pid}.key", NET.participant_keys[pid])
    g = ["--run-dir", str(tmp_path)]
    offer, signed = tmp_path / "offer.json", tmp_path / "signed.json"
    d = Transactions(G).dvp(
        "BANK01", "BANK02", NET.bonds[0], 100, NET.cash, 99, cosigner="COMPLIANCE"
    )
    offer.write_text(propose_dvp(d, _key("BANK01"), G))
    stx = accept_dvp(offer.read_text(), _key("BANK02"), G)
    signed.write_text(stx.dumps())
    bad = tmp_path / "bad.json"
    bad.write_text(_edited(stx.dumps(), lambda d: d["terms"].update(amount=1)))
    for argv in (["sign", "compliance", str(bad), "--out", str(tmp_path / "x.json")],
                 ["submit", "dvp", str(bad)]):  # fmt: skip
        code, err = _ledger(capsys, *g, *argv)
        assert code == 1 and "readable terms differ" in err and "proposal" not in err, err
    code, err = _ledger(
        capsys, *g, "sign", "compliance", str(signed), "--out", str(tmp_path / "c.json")
    )
    assert code == 0, err
    code, err = _ledger(capsys, *g, "submit", "dvp", str(offer))
    assert code == 1 and "lacks the signature of BANK02, COMPLIANCE" in err, err


# --- the client.trades mutation target's survivors ------------------------------------------


def test_a_document_exactly_at_the_bound_reads() -> None:
    offer = _offer()
    at_bound = offer + " " * (TRADE_JSON_CHARS_MAX - len(offer))
    assert len(at_bound) == TRADE_JSON_CHARS_MAX
    assert _accept(at_bound).missing_signers() == ()
    with pytest.raises(TradeError, match="more than"):
        _accept(at_bound + " ")


def test_an_offer_is_refused_from_its_expiry_or_deadline_on() -> None:
    d = _dvp()
    for end in ("expiry_ms", "deadline_ms"):
        offer = _signed_by_seller(dataclasses.replace(d, **{end: NOW_MS + 10}))
        assert accept_dvp(offer, _key("BANK02"), G, now_ms=NOW_MS + 9).missing_signers() == ()
        with pytest.raises(TradeError, match="expired or passed its settlement deadline"):
            accept_dvp(offer, _key("BANK02"), G, now_ms=NOW_MS + 10)


def test_nested_terms_read_back_as_written() -> None:
    """Roles (a set: sorted), keys and digests (hex), a participant (a dict) and bills (a
    list of dicts) in the readable terms, each checked on reading like a DvP's."""
    t = Transactions(G, clock=lambda: NOW_MS / 1000)
    admins = list(G.admins[: G.admin_threshold])
    add = t.add_participant(
        "BANK99", bytes(G.participants[0].public_key), "trader,custodian", 2, admins
    )
    terms = trades.terms_of(add)
    assert terms["participant"]["roles"] == ["custodian", "trader"]
    assert terms["participant"]["public_key"] == G.participants[0].public_key.hex()
    reserves = t.attest_reserves(
        "CASHCO", NET.cash, NOW_MS, b"\x07" * 32, 5, [("912797GK7", "2027-01-07", 3)]
    )
    assert trades.terms_of(reserves)["bills"] == [
        {"cusip": "912797GK7", "maturity": "2027-01-07", "amount": 3}
    ]
    assert trades.terms_of(reserves)["document_sha256"] == "07" * 32
    for tx in (add, reserves):
        stx = SignedTransaction.unsigned(tx)
        assert SignedTransaction.loads(stx.dumps()) == stx
        edited = _edited(stx.dumps(), lambda d: d["terms"].update(kind="MINT"))
        with pytest.raises(TradeError, match="readable terms differ"):
            SignedTransaction.loads(edited)


def test_ready_to_send_names_who_has_not_signed() -> None:
    from client import InvalidTransactionError

    half = sign(_dvp(), _key("BANK01"), genesis=G)
    with pytest.raises(InvalidTransactionError, match="signature of BANK02; sign it first"):
        SignedTransaction.ready_to_send(half)
    whole = sign(half, _key("BANK02"), genesis=G)
    assert SignedTransaction.ready_to_send(whole.raw) == whole


def test_a_document_of_many_keys_is_read_and_checked() -> None:
    """300 keys in one object (more than CPython's cached small ints): no key twice."""
    padded = _edited(_offer(), lambda d: d["terms"].update({f"k{i}": i for i in range(300)}))
    with pytest.raises(TradeError, match="readable terms differ"):
        _accept(padded)


def test_each_format_is_read_as_itself_only() -> None:
    offer = _offer()
    stx = sign(_dvp(), _key("BANK01"), _key("BANK02"), genesis=G)
    with pytest.raises(TradeError, match="not a 'dvp-ledger/transaction/v1' document"):
        SignedTransaction.loads(offer)
    with pytest.raises(TradeError, match="not a 'dvp-ledger/dvp-proposal/v1' document"):
        _accept(stx.dumps())
    for fmt in (None, 1, "a", "z"):
        with pytest.raises(TradeError, match="not a 'dvp-ledger/dvp-proposal/v1' document"):
            _accept(_edited(offer, lambda d, f=fmt: d.update(format=f)))
    with pytest.raises(TradeError, match="not a 'dvp-ledger/transaction/v1' document"):
        cosign('{"format": "a"}', _key("COMPLIANCE"), G)
    with pytest.raises(TradeError, match="not a 'dvp-ledger/transaction/v1' document"):
        SignedTransaction.loads("[]")


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda d: d.pop("transaction"), "missing or invalid 'transaction'"),
        (lambda d: d.update(transaction="\u00e9" + d["transaction"]), "missing or invalid"),
        (lambda d: d.update(transaction="!" + d["transaction"]), "missing or invalid"),
    ],
)
def test_the_envelope_must_be_there_and_strict_base64(edit: Any, why: str) -> None:
    with pytest.raises(TradeError, match=why):
        _accept(_edited(_offer(), edit))


def test_a_transaction_of_exactly_the_largest_size_reads() -> None:
    admins = tuple(G.admins[: G.admin_threshold])
    rows = tuple((f"I{i:03d}" + ("x" * 52 if i == 0 else ""), 1) for i in range(204))
    stx = SignedTransaction.unsigned(
        SetComplianceRules(G.chain_id, 1, 1, ComplianceRules(rows, (), rows), admins)
    )
    assert len(stx.raw) == TX_BYTES_MAX
    assert SignedTransaction.loads(stx.dumps()) == stx


def test_sign_propose_and_accept_compare_identities_not_their_order() -> None:
    """Another chain sorting before or after this one; a key whose id sorts before the
    buyer's or the seller's; an equal id that is another string object."""
    other = demo_genesis(validators=4, quorum=3, seed=b"r35d other")
    mine = SignedTransaction.unsigned(_dvp())
    theirs = SignedTransaction.unsigned(
        dataclasses.replace(_dvp(), chain_id=other.genesis.chain_id)
    )
    for stx, g in ((mine, other.genesis), (theirs, G)):
        with pytest.raises(SigningError, match=f"for chain {stx.tx.chain_id[:16]}\\.\\.\\., not"):
            sign(stx, _key("BANK01"), genesis=g)
        with pytest.raises(TradeError, match="another chain"):
            accept_dvp(_signed_by_seller(stx.tx), _key("BANK02"), g, now_ms=NOW_MS)  # type: ignore[arg-type]
    with pytest.raises(SigningError, match="the seller is BANK01"):
        propose_dvp(_dvp(), ParticipantKey("BANK00", NET.participant_keys["BANK01"]), G)
    same = ParticipantKey("".join(["BANK", "01"]), NET.participant_keys["BANK01"])
    assert _proposed(propose_dvp(_dvp(), same, G)).signers == ("BANK01",)
    with pytest.raises(TradeError, match="buyer is BANK02, not BANK01"):
        _accept_as("BANK01", _offer())
    with pytest.raises(TypeError):
        accept_dvp(_offer(), _key("BANK02"), G, {"amount": 99})  # type: ignore[misc]


def _accept_as(pid: str, text: str) -> SignedTransaction:
    return accept_dvp(text, _key(pid), G, now_ms=NOW_MS)


def _proposed(text: str) -> SignedTransaction:
    return trades.PartialTrade.loads(text).signed


def test_who_signed_wrongly_is_named() -> None:
    d = _dvp()
    forged = SignedTx(encode_body(d), ()).with_signature("BANK01", NET.participant_keys["BANK03"])
    with pytest.raises(TradeError, match=r"^the seller's signature is not BANK01's"):
        _accept(forged.encode())
    audited = dataclasses.replace(d, cosigner="AUDITOR")  # an id sorting before the seller's
    env = SignedTx.decode(_signed_by_seller(audited))
    bogus = SignedTx(env.body, tuple(sorted([*env.signatures, ("AUDITOR", b"\x01" * 64)])))
    with pytest.raises(TradeError, match=r"^the co-signer AUDITOR's signature is not AUDITOR's"):
        _accept(bogus.encode())


def test_cosign_takes_raw_bytes_and_refuses_another_officer() -> None:
    raw = _signed_by_seller(_dvp(cosigner="COMPLIANCE"))
    assert trades.read_signed(raw) == (SignedTransaction(raw), False)
    assert cosign(raw, _key("COMPLIANCE"), G).signers == ("BANK01", "COMPLIANCE")
    for other in ("REGULATOR", "BANK01"):  # ids after and before the named one's
        with pytest.raises(TradeError, match=f"names COMPLIANCE as co-signer, not {other}"):
            cosign(raw, _key(other), G)


def test_an_expected_term_above_or_below_the_offer_differs() -> None:
    for want in (98, 100):
        with pytest.raises(TermsMismatchError, match=f"amount: expected {want}, got 99"):
            _accept(_offer(), expect={"amount": want})
