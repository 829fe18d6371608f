"""Settlement rules and hostile input: each case gets its result code and changes nothing."""

from __future__ import annotations

import pytest

from node import crypto, tags
from node.config import U64_MAX
from node.genesis import DemoNetwork
from node.settlement import (
    BlockContext,
    BlockOutcome,
    DvP,
    ResultCode,
    SignedTx,
    apply_block,
    encode_body,
)
from node.store import MemoryStore
from node.wire import ledger_pb2
from tests.ledger_helpers import TxFactory

RC = ResultCode


def run(store: MemoryStore, *txs: bytes, dt_ms: int = 1_000) -> BlockOutcome:
    """Apply one block on top of ``store`` and commit it."""
    head = store.head()
    ctx = BlockContext(head.height + 1, store.genesis.genesis_time_ms + dt_ms)
    out = apply_block(store, list(txs), ctx)
    store.commit_block(crypto.sha256(b"block", bytes([ctx.height])), b"", b"", ctx, out)
    return out


def assert_rejected(store: MemoryStore, raw: bytes, code: ResultCode, dt_ms: int = 1_000) -> None:
    before = (store.all_balances(), {i.id: store.supply(i.id) for i in store.genesis.instruments})
    out = run(store, raw, dt_ms=dt_ms)
    assert [r.code for r in out.results] == [code]
    assert out.balances == {} and out.supplies == {}, "a failed transaction changed state"
    after = (store.all_balances(), {i.id: store.supply(i.id) for i in store.genesis.instruments})
    assert before == after


def test_dvp_moves_both_legs(store: MemoryStore, txf: TxFactory, net: DemoNetwork) -> None:
    bond, cash = net.bonds[0], net.cash
    b1, c2 = store.balance("BANK01", bond), store.balance("BANK02", cash)
    out = run(store, txf.signed(txf.dvp(quantity=300, amount=297)))
    assert out.results[0].code is RC.OK
    assert store.balance("BANK01", bond) == b1 - 300
    assert store.balance("BANK02", bond) == b1 + 300
    assert store.balance("BANK02", cash) == c2 - 297
    assert store.balance("BANK01", cash) == c2 + 297


def test_every_kind_applies(store: MemoryStore, txf: TxFactory, net: DemoNetwork) -> None:
    bond = net.bonds[0]
    supply = store.supply(bond)
    out = run(
        store,
        txf.signed(txf.mint(to="BANK03", amount=5_000)),  # issuer mints
        txf.signed(txf.mint(to="BANK03", amount=1_000, by="CSD")),  # custodian mints a bond
        txf.signed(txf.transfer("BANK03", "BANK04", 2_000, instrument=bond)),
        txf.signed(txf.burn(holder="BANK04", amount=500)),
        txf.signed(txf.mint(to="BANK05", amount=77, instrument=net.cash, by="CASHCO")),
        txf.signed(txf.burn(holder="BANK05", amount=7, instrument=net.cash, by="CASHCO")),
    )
    assert [r.code for r in out.results] == [RC.OK] * 6
    assert store.supply(bond) == supply + 6_000 - 500


def test_a_burn_needs_the_holders_signature_not_only_the_issuers(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    """docs/ledger.md, transaction table: a Burn is signed by the issuer or custodian *and*
    by the holder, so nobody's tokens are burned without their consent. The issuer's
    signature alone is BAD_SIGNATURE (a required signature is missing)."""
    tx = txf.burn(holder="BANK01", amount=10)
    assert tx.required_signers() == ("BANK01", "TREASURY")
    issuer_key = net.participant_keys["TREASURY"]
    alone = SignedTx(encode_body(tx), ()).with_signature("TREASURY", issuer_key)
    assert_rejected(store, alone.encode(), RC.BAD_SIGNATURE)
    held = store.balance("BANK01", net.bonds[0])
    assert run(store, txf.signed(tx)).results[0].code is RC.OK  # control: both sign
    assert store.balance("BANK01", net.bonds[0]) == held - 10


def test_replay_is_duplicate_and_keeps_first_outcome(store: MemoryStore, txf: TxFactory) -> None:
    raw = txf.signed(txf.dvp())
    first = run(store, raw)
    rec = store.tx_record(first.results[0].tx_id)
    assert rec is not None and rec.code is RC.OK
    assert_rejected(store, raw, RC.DUPLICATE)
    assert store.tx_record(first.results[0].tx_id) == rec


def test_duplicate_within_one_block(store: MemoryStore, txf: TxFactory) -> None:
    raw = txf.signed(txf.transfer())
    out = run(store, raw, raw)
    assert [r.code for r in out.results] == [RC.OK, RC.DUPLICATE]


def test_failed_trade_is_recorded_and_cannot_be_retried(store: MemoryStore, txf: TxFactory) -> None:
    raw = txf.signed(txf.dvp(quantity=10**15))
    assert_rejected(store, raw, RC.INSUFFICIENT_SECURITIES)
    rec = store.tx_record(SignedTx.decode(raw).tx_id)
    assert rec is not None and rec.code is RC.INSUFFICIENT_SECURITIES
    assert_rejected(store, raw, RC.DUPLICATE)


def _tamper_signature(raw: bytes, index: int, fn: object) -> bytes:
    stx = SignedTx.decode(raw)
    sigs = list(stx.signatures)
    signer, sig = sigs[index]
    sigs[index] = (signer, fn(sig))  # type: ignore[operator]
    return SignedTx(stx.body, tuple(sigs)).encode()


def test_bad_signature(store: MemoryStore, txf: TxFactory) -> None:
    raw = _tamper_signature(
        txf.signed(txf.dvp()), 1, lambda s: s[:10] + bytes([s[10] ^ 1]) + s[11:]
    )
    assert_rejected(store, raw, RC.BAD_SIGNATURE)


def test_malleated_signature_s_plus_l(store: MemoryStore, txf: TxFactory) -> None:
    def malleate(sig: bytes) -> bytes:
        s = int.from_bytes(sig[32:], "little") + crypto.ED25519_L
        return sig[:32] + s.to_bytes(32, "little")

    raw = _tamper_signature(txf.signed(txf.transfer()), 0, malleate)
    assert_rejected(store, raw, RC.BAD_SIGNATURE)
    # The malleated copy has the same body, so the same id: it must not burn that id.
    stx = SignedTx.decode(raw)
    assert store.tx_record(stx.tx_id) is None


def test_forged_copy_does_not_block_the_genuine_transaction(
    store: MemoryStore, txf: TxFactory
) -> None:
    genuine = txf.signed(txf.dvp())
    forged = _tamper_signature(genuine, 0, lambda s: bytes(64))
    out = run(store, forged, genuine)
    assert [r.code for r in out.results] == [RC.BAD_SIGNATURE, RC.OK]


def test_signature_by_the_wrong_party(store: MemoryStore, txf: TxFactory, net: DemoNetwork) -> None:
    tx = txf.transfer(sender="BANK01")
    body = encode_body(tx)
    # BANK03 signs, but the envelope claims BANK01.
    sig = net.participant_keys["BANK03"].sign(tags.TX + body)
    assert_rejected(store, SignedTx(body, (("BANK01", sig),)).encode(), RC.BAD_SIGNATURE)
    # BANK03 signs as itself: it is not the required signer.
    assert_rejected(store, SignedTx(body, (("BANK03", sig),)).encode(), RC.BAD_SIGNATURE)


def test_dvp_signed_by_only_one_party(store: MemoryStore, txf: TxFactory, net: DemoNetwork) -> None:
    half = SignedTx(encode_body(txf.dvp()), ()).with_signature(
        "BANK01", net.participant_keys["BANK01"]
    )
    assert_rejected(store, half.encode(), RC.BAD_SIGNATURE)


def test_extra_signature_is_rejected(store: MemoryStore, txf: TxFactory, net: DemoNetwork) -> None:
    stx = SignedTx.decode(txf.signed(txf.transfer()))
    extra = stx.with_signature("BANK09", net.participant_keys["BANK03"])
    assert_rejected(store, extra.encode(), RC.BAD_SIGNATURE)


def test_unknown_signer_is_a_bad_signature(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    tx = txf.transfer(sender="NOBODY")
    stx = SignedTx(encode_body(tx), ()).with_signature("NOBODY", net.participant_keys["BANK01"])
    assert_rejected(store, stx.encode(), RC.BAD_SIGNATURE)


def test_wrong_chain(store: MemoryStore, txf: TxFactory) -> None:
    assert_rejected(store, txf.signed(txf.dvp(chain_id="another-chain")), RC.WRONG_CHAIN)


def test_expired_transaction(store: MemoryStore, txf: TxFactory) -> None:
    raw = txf.signed(txf.transfer(expiry_ms=txf.t0 + 500))
    assert_rejected(store, raw, RC.EXPIRED, dt_ms=501)


def test_settlement_deadline_passed(store: MemoryStore, txf: TxFactory) -> None:
    raw = txf.signed(txf.dvp(deadline_ms=txf.t0 + 999))
    assert_rejected(store, raw, RC.DEADLINE_PASSED, dt_ms=1_000)


def test_zero_quantities(store: MemoryStore, txf: TxFactory) -> None:
    assert_rejected(store, txf.signed(txf.dvp(quantity=0)), RC.INVALID_AMOUNT)
    assert_rejected(store, txf.signed(txf.dvp(amount=0)), RC.INVALID_AMOUNT)
    assert_rejected(store, txf.signed(txf.transfer(amount=0)), RC.INVALID_AMOUNT)
    assert_rejected(store, txf.signed(txf.mint(amount=0)), RC.INVALID_AMOUNT)


def test_overflowing_quantities(store: MemoryStore, txf: TxFactory) -> None:
    # A mint that would take supply past 2**64 - 1 is rejected, not wrapped.
    assert_rejected(store, txf.signed(txf.mint(amount=U64_MAX)), RC.OVERFLOW)
    # Amounts that do not fit 64 bits cannot even be encoded.
    with pytest.raises(ValueError, match="64-bit"):
        encode_body(txf.dvp(quantity=U64_MAX + 1))
    # The largest encodable amount is a shortfall, never an overflow into a small number.
    assert_rejected(store, txf.signed(txf.dvp(quantity=U64_MAX)), RC.INSUFFICIENT_SECURITIES)
    assert_rejected(store, txf.signed(txf.dvp(amount=U64_MAX)), RC.INSUFFICIENT_CASH)


def test_unknown_instrument_and_account(store: MemoryStore, txf: TxFactory) -> None:
    assert_rejected(store, txf.signed(txf.dvp(bond="XS0000000000")), RC.UNKNOWN_INSTRUMENT)
    assert_rejected(store, txf.signed(txf.transfer(receiver="NOBODY")), RC.UNKNOWN_ACCOUNT)
    assert_rejected(store, txf.signed(txf.mint(to="NOBODY")), RC.UNKNOWN_ACCOUNT)


def test_self_trade(store: MemoryStore, txf: TxFactory) -> None:
    tx = txf.dvp(seller="BANK01", buyer="BANK01")
    assert tx.required_signers() == ("BANK01",)
    assert_rejected(store, txf.signed(tx), RC.SELF_TRADE)
    assert_rejected(store, txf.signed(txf.transfer("BANK02", "BANK02")), RC.SELF_TRADE)


def test_wrong_instrument_kind(store: MemoryStore, txf: TxFactory, net: DemoNetwork) -> None:
    assert_rejected(store, txf.signed(txf.dvp(bond=net.cash)), RC.WRONG_INSTRUMENT_KIND)
    assert_rejected(store, txf.signed(txf.dvp(cash=net.bonds[1])), RC.WRONG_INSTRUMENT_KIND)


def test_unauthorized_roles(store: MemoryStore, txf: TxFactory, net: DemoNetwork) -> None:
    assert_rejected(store, txf.signed(txf.mint(by="BANK01")), RC.UNAUTHORIZED)
    assert_rejected(store, txf.signed(txf.mint(by="CSD", instrument=net.cash)), RC.UNAUTHORIZED)
    assert_rejected(store, txf.signed(txf.transfer(receiver="REGULATOR")), RC.UNAUTHORIZED)
    assert_rejected(store, txf.signed(txf.dvp(buyer="COMPLIANCE")), RC.UNAUTHORIZED)


def test_insufficient_funds(store: MemoryStore, txf: TxFactory) -> None:
    assert_rejected(store, txf.signed(txf.dvp(quantity=10**12)), RC.INSUFFICIENT_SECURITIES)
    assert_rejected(store, txf.signed(txf.dvp(amount=10**12)), RC.INSUFFICIENT_CASH)
    assert_rejected(store, txf.signed(txf.transfer(amount=10**12)), RC.INSUFFICIENT_CASH)
    assert_rejected(store, txf.signed(txf.burn(amount=10**12)), RC.INSUFFICIENT_SECURITIES)


def test_supply_limit(net: DemoNetwork) -> None:
    from dataclasses import replace

    from node.genesis import demo_genesis

    base = demo_genesis(seed=b"capped")
    capped = replace(
        base.genesis,
        instruments=tuple(
            replace(i, max_supply=60_000_100) if i.id == base.bonds[0] else i
            for i in base.genesis.instruments
        ),
    )
    store = MemoryStore(capped)
    f = TxFactory(replace(base, genesis=capped))
    assert run(store, f.signed(f.mint(amount=100))).results[0].code is RC.OK
    assert_rejected(store, f.signed(f.mint(amount=1)), RC.SUPPLY_LIMIT)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda raw: raw[:-1],  # truncated
        lambda raw: raw + b"\x00",  # trailing byte
        lambda raw: b"\x02" + raw[1:],  # unknown envelope version
        lambda raw: b"",
        lambda raw: b"\x01" * 5000,  # oversize
    ],
    ids=["truncated", "trailing", "version", "empty", "oversize"],
)
def test_malformed_bytes(store: MemoryStore, txf: TxFactory, mutate: object) -> None:
    raw = mutate(txf.signed(txf.dvp()))  # type: ignore[operator]
    assert_rejected(store, raw, RC.MALFORMED)


def test_unsorted_signatures_are_not_canonical(txf: TxFactory) -> None:
    from node.settlement import DecodeError

    stx = SignedTx.decode(txf.signed(txf.dvp()))
    flipped = SignedTx(stx.body, tuple(reversed(stx.signatures))).encode()
    with pytest.raises(DecodeError, match="sorted"):
        SignedTx.decode(flipped)


def test_precedence_bad_signature_before_wrong_chain(store: MemoryStore, txf: TxFactory) -> None:
    raw = _tamper_signature(
        txf.signed(txf.dvp(chain_id="other", quantity=0)), 0, lambda s: bytes(64)
    )
    assert_rejected(store, raw, RC.BAD_SIGNATURE)


def test_precedence_expired_before_everything_economic(store: MemoryStore, txf: TxFactory) -> None:
    raw = txf.signed(txf.dvp(quantity=0, bond="XS0000000000", expiry_ms=txf.t0))
    assert_rejected(store, raw, RC.EXPIRED)


def test_result_codes_match_the_wire_contract() -> None:
    """One numbering on the wire and in the node; the wire's 0 is no outcome, and no code
    is 0, so an unset code never reads as OK (ADR 0020)."""
    wire = {v.name: v.number for v in ledger_pb2.DESCRIPTOR.enum_types_by_name["ResultCode"].values}
    assert wire.pop("RESULT_CODE_UNSPECIFIED") == 0
    assert wire == {c.name: c.value for c in ResultCode}
    assert all(c.meaning for c in ResultCode)
    assert 0 not in wire.values() and ResultCode.OK != 0


def test_body_roundtrip_is_canonical(txf: TxFactory) -> None:
    from node.settlement import decode_body

    tx = txf.dvp()
    body = encode_body(tx)
    assert decode_body(body) == tx
    assert encode_body(decode_body(body)) == body
    assert isinstance(decode_body(body), DvP)


def test_state_root_depends_on_history(net: DemoNetwork, txf: TxFactory) -> None:
    a, b = MemoryStore(net.genesis), MemoryStore(net.genesis)
    t1, t2 = txf.signed(txf.transfer(amount=1)), txf.signed(txf.transfer(amount=2))
    run(a, t1, t2)
    run(b, t1, t2)
    assert a.head().state_root == b.head().state_root
    c = MemoryStore(net.genesis)
    run(c, t2, t1)
    assert c.head().state_root != a.head().state_root
