"""The SDK offline: builders check fields against genesis, signing checks keys, the
two-party DvP exchange refuses anything the buyer did not agree to, and key files."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from pathlib import Path

import pytest

from client import (
    AsyncLedgerClient,
    Endpoint,
    EndpointDown,
    InvalidFieldError,
    InvalidTransactionError,
    KeyFileError,
    LedgerClient,
    PartialTrade,
    ParticipantKey,
    SignedTransaction,
    SigningError,
    TermsMismatchError,
    TradeError,
    Transactions,
    UnavailableError,
    accept_dvp,
    generate_key,
    load_key,
    propose_dvp,
    sign,
)
from node.genesis import DemoNetwork, demo_genesis
from node.settlement import DvP, SignedTx, encode_body
from tests.ledger_helpers import pinned_tls


def _key(net: DemoNetwork, pid: str) -> ParticipantKey:
    return ParticipantKey(pid, net.participant_keys[pid])


def _dvp(net: DemoNetwork, **kw: object) -> DvP:
    terms: dict[str, object] = {
        "seller": "BANK01",
        "buyer": "BANK02",
        "bond": net.bonds[0],
        "quantity": 100,
        "cash": net.cash,
        "amount": 99,
    }
    return Transactions(net.genesis).dvp(**(terms | kw))  # type: ignore[arg-type]


# --- builders ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seller": "NOBODY"}, "seller"),
        ({"buyer": "NOBODY"}, "buyer"),
        ({"buyer": "BANK01"}, "buyer"),  # a self-trade
        ({"bond": "XX0000000000"}, "bond"),
        ({"bond": "USD.CASHCO"}, "bond"),  # cash in the bond leg
        ({"quantity": 0}, "quantity"),
        ({"amount": -5}, "amount"),
        ({"amount": 2**64}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"quantity": True}, "quantity"),
        ({"deadline_s": 0}, "deadline_s"),
    ],
)
def test_dvp_builder_names_the_bad_field(
    net: DemoNetwork, change: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidFieldError) as info:
        _dvp(net, **change)
    assert info.value.field == field and field in str(info.value)


def test_cash_leg_must_be_cash(net: DemoNetwork) -> None:
    with pytest.raises(InvalidFieldError, match=r"cash: .* is a bond token"):
        _dvp(net, cash=net.bonds[1])


def test_other_builders_check_participants_instruments_and_amounts(net: DemoNetwork) -> None:
    t = Transactions(net.genesis)
    cases = [
        (lambda: t.issue("NOPE", "BANK01", 1, by="TREASURY"), "instrument"),
        (lambda: t.issue(net.bonds[0], "NOBODY", 1, by="TREASURY"), "to"),
        (lambda: t.redeem(net.bonds[0], "BANK01", 0, by="TREASURY"), "amount"),
        (lambda: t.redeem(net.bonds[0], "BANK01", 1, by="NOBODY"), "by"),
        (lambda: t.transfer(net.cash, "BANK01", "BANK01", 1), "receiver"),
        (lambda: t.transfer(net.cash, "BANK01", "NOBODY", 1), "receiver"),
    ]
    for build, field in cases:
        with pytest.raises(InvalidFieldError) as info:
            build()
        assert info.value.field == field
    with pytest.raises(InvalidFieldError, match="ttl_s"):
        Transactions(net.genesis, ttl_s=0)


def test_builders_use_fresh_nonces_and_expire_after_the_ttl(net: DemoNetwork) -> None:
    t = Transactions(net.genesis, ttl_s=60, clock=lambda: 1_000.0)
    a, b = (t.transfer(net.cash, "BANK01", "BANK02", 5) for _ in range(2))
    assert a.nonce != b.nonce and 0 <= a.nonce < 2**63
    assert a.expiry_ms == 1_060_000 and a.chain_id == net.genesis.chain_id
    d = t.dvp("BANK01", "BANK02", net.bonds[0], 1, net.cash, 1, deadline_s=30)
    assert d.deadline_ms == 1_030_000 and d.expiry_ms == 1_060_000


# --- signing -------------------------------------------------------------------------------


def test_sign_refuses_non_signers_wrong_keys_and_other_chains(net: DemoNetwork) -> None:
    g = net.genesis
    tx = Transactions(g).transfer(net.cash, "BANK01", "BANK02", 5)
    with pytest.raises(SigningError, match="BANK02 is not a signer"):
        sign(tx, _key(net, "BANK02"), genesis=g)
    impostor = ParticipantKey("BANK01", net.participant_keys["BANK02"])
    with pytest.raises(SigningError, match="not the key genesis lists for BANK01"):
        sign(tx, impostor, genesis=g)
    other = demo_genesis(validators=4, quorum=3, seed=b"another chain").genesis
    with pytest.raises(SigningError, match="chain"):
        sign(tx, _key(net, "BANK01"), genesis=other)


def test_signatures_accumulate_until_no_signer_is_missing(net: DemoNetwork) -> None:
    g, dvp = net.genesis, _dvp(net)
    half = sign(dvp, _key(net, "BANK01"), genesis=g)
    assert half.missing_signers() == ("BANK02",) and half.signers == ("BANK01",)
    full = sign(half, _key(net, "BANK02"), genesis=g)
    assert full.missing_signers() == () and full.tx == dvp
    assert full.tx_id == half.tx_id  # signatures never change the id


def test_signed_transaction_round_trips_and_refuses_tampering(net: DemoNetwork) -> None:
    stx = sign(_dvp(net), _key(net, "BANK01"), _key(net, "BANK02"), genesis=net.genesis)
    assert SignedTransaction.from_bytes(stx.to_bytes()) == stx
    assert SignedTransaction.from_json(json.loads(json.dumps(stx.to_json()))) == stx
    assert SignedTransaction.loads(stx.dumps()) == stx
    doc = stx.to_json()
    doc["terms"]["amount"] = 1
    with pytest.raises(TradeError, match="tampered"):
        SignedTransaction.from_json(doc)
    with pytest.raises(TradeError, match="canonical"):
        SignedTransaction.from_bytes(b"\x01garbage")


# --- the two-party DvP ---------------------------------------------------------------------


def test_propose_and_accept_round_trip_as_json_and_bytes(net: DemoNetwork) -> None:
    g, dvp = net.genesis, _dvp(net)
    offer = propose_dvp(dvp, _key(net, "BANK01"), g)
    trade = PartialTrade.loads(offer)
    assert trade.terms == dvp and json.loads(offer)["terms"]["quantity"] == 100
    expect = {"seller": "BANK01", "bond": net.bonds[0], "quantity": 100, "amount": 99}
    from_json = accept_dvp(offer, _key(net, "BANK02"), g, expect=expect)
    from_bytes = accept_dvp(trade.to_bytes(), _key(net, "BANK02"), g, expect=expect)
    assert from_json == from_bytes and from_json.missing_signers() == ()
    assert from_json.tx == dvp


def test_accept_lists_every_term_that_differs_from_the_expected(net: DemoNetwork) -> None:
    offer = propose_dvp(_dvp(net), _key(net, "BANK01"), net.genesis)
    with pytest.raises(TermsMismatchError) as info:
        accept_dvp(
            offer,
            _key(net, "BANK02"),
            net.genesis,
            expect={"quantity": 100, "amount": 90, "price": 1},
        )
    assert info.value.differences == [("amount", 90, 99), ("price", 1, "<no such term>")]


def test_accept_refuses_tampered_terms(net: DemoNetwork) -> None:
    doc = json.loads(propose_dvp(_dvp(net), _key(net, "BANK01"), net.genesis))
    doc["terms"]["amount"] = 1  # what the buyer would see differs from what was signed
    with pytest.raises(TradeError, match="tampered"):
        accept_dvp(json.dumps(doc), _key(net, "BANK02"), net.genesis)
    # Re-encoding the body with other terms breaks the seller's signature instead.
    env = SignedTx.decode(
        base64.b64decode(
            json.loads(propose_dvp(_dvp(net), _key(net, "BANK01"), net.genesis))["transaction"]
        )
    )
    cheaper = encode_body(_dvp(net, amount=1))
    forged = SignedTx(cheaper, env.signatures).encode()
    with pytest.raises(TradeError, match="forged or altered"):
        accept_dvp(forged, _key(net, "BANK02"), net.genesis)


def test_accept_refuses_a_missing_or_forged_seller_signature(net: DemoNetwork) -> None:
    g, dvp = net.genesis, _dvp(net)
    unsigned = SignedTx(encode_body(dvp), ()).encode()
    with pytest.raises(TradeError, match="has not signed"):
        accept_dvp(unsigned, _key(net, "BANK02"), g)
    forged = SignedTx(encode_body(dvp), ()).with_signature("BANK01", net.participant_keys["BANK03"])
    with pytest.raises(TradeError, match="forged"):
        accept_dvp(forged.encode(), _key(net, "BANK02"), g)


def test_accept_refuses_other_chains_other_buyers_expired_and_non_dvps(net: DemoNetwork) -> None:
    g = net.genesis
    other = demo_genesis(validators=4, quorum=3, seed=b"another chain")
    foreign = propose_dvp(_dvp(other), _key(other, "BANK01"), other.genesis)
    with pytest.raises(TradeError, match="another chain"):
        accept_dvp(foreign, _key(net, "BANK02"), g)
    offer = propose_dvp(_dvp(net), _key(net, "BANK01"), g)
    with pytest.raises(TradeError, match="buyer is BANK02"):
        accept_dvp(offer, _key(net, "BANK03"), g)
    with pytest.raises(TradeError, match="expired"):
        accept_dvp(offer, _key(net, "BANK02"), g, now_ms=2**62)
    transfer = sign(
        Transactions(g).transfer(net.cash, "BANK01", "BANK02", 1), _key(net, "BANK01"), genesis=g
    )
    with pytest.raises(TradeError, match="not a DvP"):
        accept_dvp(transfer.to_bytes(), _key(net, "BANK02"), g)
    with pytest.raises(TradeError, match="not JSON"):
        accept_dvp("{not json", _key(net, "BANK02"), g)


def test_propose_needs_the_sellers_key(net: DemoNetwork) -> None:
    with pytest.raises(SigningError, match="the seller is BANK01"):
        propose_dvp(_dvp(net), _key(net, "BANK02"), net.genesis)


# --- key files -----------------------------------------------------------------------------


def test_key_files_are_private_never_overwritten_and_named_by_their_stem(tmp_path: Path) -> None:
    path = tmp_path / "BANK09.key"
    made = generate_key(path, "BANK09")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key(path)
    assert loaded.participant == "BANK09" and loaded.public_key == made.public_key
    assert load_key(path, participant="OTHER").participant == "OTHER"
    with pytest.raises(KeyFileError, match="already exists"):
        generate_key(path, "BANK09")
    with pytest.raises(KeyFileError, match="no such key file"):
        load_key(tmp_path / "MISSING.key")
    (tmp_path / "BAD.key").write_text("not a key")
    with pytest.raises(KeyFileError, match="PEM"):
        load_key(tmp_path / "BAD.key")
    with pytest.raises(KeyFileError, match="participant id"):
        load_key(path, participant="bad id!")


# --- clients without a cluster -------------------------------------------------------------


def test_the_sdk_trusts_only_certificates_genesis_pins(net: DemoNetwork) -> None:
    pinned, certs = pinned_tls(net)
    ep = [Endpoint("127.0.0.1:1", "node-00")]
    AsyncLedgerClient(ep, tls_certs=certs, genesis=pinned.genesis)
    with pytest.raises(ValueError, match="not pinned by genesis"):
        AsyncLedgerClient(ep, tls_certs=certs, genesis=net.genesis)
    with pytest.raises(ValueError, match="no PEM certificate"):
        AsyncLedgerClient(ep, tls_certs=b"", genesis=pinned.genesis)
    with pytest.raises(ValueError, match="0 pinned certificates carry the name 'node-09'"):
        AsyncLedgerClient(
            [Endpoint("127.0.0.1:1", "node-09")], tls_certs=certs, genesis=pinned.genesis
        )


async def test_no_node_answering_is_unavailable_and_retry_safe(net: DemoNetwork) -> None:
    net, certs = pinned_tls(net)
    endpoints = [Endpoint("127.0.0.1:1", "node-00"), Endpoint("127.0.0.1:2", "node-01")]
    async with AsyncLedgerClient(
        endpoints, tls_certs=certs, genesis=net.genesis, rpc_timeout_s=2
    ) as c:
        with pytest.raises(UnavailableError) as info:
            await c.head()
        assert info.value.retry_safe and len(info.value.errors) == 4  # 2 rounds of 2
        statuses = await c.status()
        assert [type(s) for s in statuses] == [EndpointDown, EndpointDown]
        half = c.sign(_dvp(net), _key(net, "BANK01"))
        with pytest.raises(InvalidTransactionError, match="needs the signature of BANK02"):
            await c.submit(half)


async def test_the_sync_client_refuses_a_running_event_loop(net: DemoNetwork) -> None:
    with pytest.raises(RuntimeError, match="AsyncLedgerClient"):
        LedgerClient([Endpoint("127.0.0.1:1", "node-00")], tls_certs=b"", genesis=net.genesis)
    await asyncio.sleep(0)
