"""Genesis documents (strict JSON, chain id) and strict Ed25519 checks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from node import crypto
from node.genesis import DemoNetwork, demo_genesis, dump_genesis, genesis_to_json, load_genesis
from node.settlement import GenesisError, isin_check_digit


def test_json_roundtrip_keeps_the_chain_id(tmp_path: Path, net: DemoNetwork) -> None:
    path = tmp_path / "genesis.json"
    dump_genesis(net.genesis, path)
    assert load_genesis(path).chain_id == net.genesis.chain_id


def test_any_change_changes_the_chain_id(net: DemoNetwork) -> None:
    g = net.genesis
    assert replace(g, quorum=4).chain_id != g.chain_id
    assert replace(g, holdings=g.holdings[1:]).chain_id != g.chain_id
    assert demo_genesis(seed=b"tests").genesis.chain_id == g.chain_id  # deterministic


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["holdings"][0].update(amount=1.5), "float"),
        (lambda d: d["holdings"][0].update(amount="10"), "integer"),
        (lambda d: d.update(extra=1), "unknown"),
        (lambda d: d["participants"][0].update(roles=["king"]), "roles"),
        (lambda d: d["participants"][0].update(public_key="00" * 32), "small-order"),
        (lambda d: d["instruments"][0].update(id="US91282CJK70"), "ISIN"),
        (lambda d: d["instruments"][0].update(currency="usd"), "ISO 4217"),
        (lambda d: d["holdings"][0].update(account="GHOST"), "unknown account"),
        (lambda d: d["holdings"].append(dict(d["holdings"][0])), "twice"),
        (lambda d: d.update(quorum=9), "quorum"),
        (lambda d: d["validators"].append(dict(d["validators"][0])), "unique"),
    ],
    ids=[
        "float",
        "string-amount",
        "unknown-key",
        "role",
        "small-order-key",
        "isin",
        "currency",
        "holder",
        "dup-holding",
        "quorum",
        "dup-validator",
    ],
)
def test_bad_genesis_is_refused_with_a_reason(
    tmp_path: Path, net: DemoNetwork, edit: object, message: str
) -> None:
    doc = genesis_to_json(net.genesis)
    edit(doc)  # type: ignore[operator]
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(GenesisError, match=message):
        load_genesis(path)


def test_isin_check_digit() -> None:
    assert isin_check_digit("US037833100") == 5  # Apple Inc. US0378331005
    assert isin_check_digit("GB000263494") == 6  # BAE Systems GB0002634946


def test_strict_verify() -> None:
    key = crypto.SigningKey(bytes(range(32)))
    sig = key.sign(b"m")
    assert crypto.verify(key.public_key, b"m", sig)
    assert not crypto.verify(key.public_key, b"n", sig)
    assert not crypto.verify(key.public_key, b"m", sig[:63])
    high_s = int.from_bytes(sig[32:], "little") + crypto.ED25519_L
    assert high_s < 2**256
    assert not crypto.verify(key.public_key, b"m", sig[:32] + high_s.to_bytes(32, "little"))
    assert not crypto.verify(bytes(31), b"m", sig)


def test_small_order_keys_are_refused() -> None:
    identity = (1).to_bytes(32, "little")
    assert not crypto.is_acceptable_public_key(identity)
    assert not crypto.is_acceptable_public_key(bytes(32))
    assert crypto.is_acceptable_public_key(crypto.SigningKey(bytes(32)).public_key)


def test_signing_key_never_prints_its_secret() -> None:
    key = crypto.SigningKey(bytes(range(32)))
    assert bytes(range(32)).hex()[:16] not in repr(key)


def test_verified_signatures_remembers_only_admitted_valid_ones() -> None:
    key = crypto.SigningKey(bytes(32))
    memo = crypto.VerifiedSignatures(size_max=2)
    msgs = [b"a", b"b", b"c"]
    sigs = [key.sign(m) for m in msgs]
    bad = sigs[0][:-1] + bytes([sigs[0][-1] ^ 1])
    assert not memo.admit(key.public_key, msgs[0], bad) and len(memo) == 0
    assert not memo(key.public_key, msgs[0], bad)  # a failure is checked each time
    assert memo(key.public_key, msgs[0], sigs[0]) and len(memo) == 0  # execution: no memory
    assert memo.admit(key.public_key, msgs[0], sigs[0]) and len(memo) == 1
    assert not memo(key.public_key, msgs[1], sigs[0])  # the message is part of the key
    assert memo(key.public_key, msgs[0], sigs[0]) and memo.hits == 1 and len(memo) == 0
    assert memo(key.public_key, msgs[0], sigs[0]) and memo.hits == 1  # used up: re-verified
    for m, s in zip(msgs, sigs, strict=True):
        assert memo.admit(key.public_key, m, s)
    assert len(memo) == 2  # bounded: the oldest went
    assert memo(key.public_key, msgs[0], sigs[0]) and memo.hits == 1
    assert memo(key.public_key, msgs[2], sigs[2]) and memo.hits == 2
