"""KYC tier rules and the AML large-value rule (issue 15 items 4-5; docs/ledger.md "KYC
tiers and AML"): one rule per test, each beside its negative control (the same move
passing at the limit, or with the co-signature). Codes are named, never numbered."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from node.config import U64_MAX
from node.genesis import DemoNetwork, demo_genesis, genesis_to_json, parse_genesis
from node.invariant import InvariantError
from node.settlement import (
    ComplianceRules,
    CouponPay,
    DecodeError,
    DvP,
    GenesisError,
    PendingDvP,
    RecordKind,
    Registry,
    ResultCode,
    SignedTx,
    TierLimit,
    Transfer,
    _codec,
    _compliance,
    check_rules,
    day_total,
    decode_body,
    encode_body,
    precheck,
    rules_in_force,
    set_rules,
    sign_tx,
    tx_id,
)
from node.settlement._state import Overlay
from node.store import MemoryStore
from tests.kyc_helpers import (
    COSIGN_ABOVE,
    HOUR_MS,
    T1_DAY,
    T1_TRADE,
    T2_TRADE,
    TIER1,
    kyc_net,
)
from tests.ledger_helpers import TxFactory
from tests.ledger_helpers import run_block as run

RC = ResultCode
DAY_MS = 24 * HOUR_MS
FAR = 10 * DAY_MS  # expiries and deadlines far enough for the window tests


@pytest.fixture
def net() -> DemoNetwork:
    return kyc_net()


@pytest.fixture
def store(net: DemoNetwork) -> MemoryStore:
    return MemoryStore(net.genesis)


@pytest.fixture
def txf(net: DemoNetwork) -> TxFactory:
    return TxFactory(net)


def far(txf: TxFactory) -> dict[str, int]:
    return {"expiry_ms": txf.t0 + FAR}


def dvp(txf: TxFactory, seller: str, buyer: str, amount: int, bond: int = 1, **kw: object) -> DvP:
    terms: dict[str, object] = {"bond": txf.net.bonds[bond], "deadline_ms": txf.t0 + FAR}
    return txf.dvp(seller, buyer, quantity=10, amount=amount, **(terms | far(txf) | kw))


def code(store: MemoryStore, txf: TxFactory, tx: object, at_ms: int = 1_000) -> ResultCode:
    (result,) = run(store, txf.signed(tx), at_ms=at_ms).results  # type: ignore[arg-type]
    return result.code


# --- encoding: the co-signer field --------------------------------------------------------


def test_a_body_without_a_cosigner_keeps_the_encoding_and_id_it_had_before() -> None:
    """Ids computed by the code before the co-signer field existed (main at eb32d31)."""
    d = DvP("c" * 64, 7, 10**12, "BANK01", "BANK02", "US91282CJK72", 100, "USD.CASHCO", 99, 10**12)
    t = Transfer("c" * 64, 8, 10**12, "USD.CASHCO", "BANK01", "BANK02", 5)
    p = PendingDvP(
        "c" * 64, 9, 10**12, "BANK01", "BANK02", "US91282CJK72", 100, "USD.CASHCO", 99, 10**12, 1
    )
    assert tx_id(encode_body(d)).hex().startswith("c776639850290ca8")
    assert tx_id(encode_body(t)).hex().startswith("92dbc96474fdd707")
    assert tx_id(encode_body(p)).hex().startswith("e82dfc5deb36453a")
    # Negative control: naming a co-signer changes the body, and it round-trips.
    for tx in (d, t, p):
        signed = replace(tx, cosigner="COMPLIANCE")
        assert encode_body(signed) != encode_body(tx)
        assert decode_body(encode_body(signed)) == signed
        assert decode_body(encode_body(tx)) == tx


def test_a_default_genesis_keeps_its_chain_id() -> None:
    """The trailing compliance section is written only when there are rules. (The demo
    genesis, pinned before any trailing section existed, now names admins: without them
    it must hash as it did.)"""
    g = demo_genesis(validators=4, quorum=3, seed=b"tests").genesis
    g = replace(g, admins=(), admin_threshold=0)
    assert g.chain_id == "a1ffc899e47bcf87d87d681d3662700e1dee5a7ec6499365101503f07db32c37"
    # The pin before the genesis format went to 2 (ADR 0020): only the version byte moved.
    assert g.canonical_bytes[0] == 2
    before = hashlib.sha256(b"\x01" + g.canonical_bytes[1:]).hexdigest()
    assert before == "dffa984e17d93d855ef0b9d0c036676a8df6967b7aff5c45ea87fe761ec38b04"
    ruled = demo_genesis(validators=4, quorum=3, seed=b"tests", compliance=True).genesis
    assert ruled.chain_id != g.chain_id  # negative control: the rules are under the chain id


def test_the_cosigner_is_a_required_signer_and_an_empty_trailer_does_not_decode(
    txf: TxFactory,
) -> None:
    tx = replace(dvp(txf, "BANK01", "BANK02", 5), cosigner="COMPLIANCE")
    assert tx.required_signers() == ("BANK01", "BANK02", "COMPLIANCE")
    with pytest.raises(DecodeError):
        decode_body(encode_body(dvp(txf, "BANK01", "BANK02", 5)) + b"\x00")


# --- AML: large-value co-signature -----------------------------------------------------


def test_above_the_threshold_a_dvp_needs_a_compliance_cosignature(
    store: MemoryStore, txf: TxFactory
) -> None:
    assert code(store, txf, dvp(txf, "BANK01", "BANK02", COSIGN_ABOVE)) is RC.OK
    big = dvp(txf, "BANK01", "BANK02", COSIGN_ABOVE + 1)
    before = store.all_balances()
    assert code(store, txf, big) is RC.COSIGN_REQUIRED
    assert store.all_balances() == before
    assert code(store, txf, replace(big, cosigner="COMPLIANCE", nonce=999)) is RC.OK


def test_a_cash_transfer_above_the_threshold_needs_the_cosignature_a_bond_transfer_never(
    store: MemoryStore, txf: TxFactory
) -> None:
    big = txf.transfer("BANK01", "BANK02", COSIGN_ABOVE + 1, **far(txf))
    assert code(store, txf, big) is RC.COSIGN_REQUIRED
    assert code(store, txf, replace(big, cosigner="COMPLIANCE")) is RC.OK
    bonds = txf.transfer("BANK01", "BANK02", COSIGN_ABOVE + 1, instrument=txf.net.bonds[1])
    assert code(store, txf, bonds) is RC.OK  # no price, no value: no threshold


def test_a_cosigner_without_the_compliance_role_or_who_is_a_party_does_not_count(
    net: DemoNetwork, store: MemoryStore, txf: TxFactory
) -> None:
    for cosigner in ("REGULATOR", "BANK03", "BANK01"):
        tx = replace(dvp(txf, "BANK01", "BANK02", COSIGN_ABOVE + 1), cosigner=cosigner)
        raw = txf.signed(tx)
        assert precheck(net.genesis, raw).code is RC.COSIGN_REQUIRED, cosigner
        assert code(store, txf, tx) is RC.COSIGN_REQUIRED, cosigner
        # Even below the threshold: a co-signature that can never count is refused.
        small = replace(tx, amount=1, nonce=tx.nonce + 10_000)
        assert code(store, txf, small) is RC.COSIGN_REQUIRED, cosigner


def test_a_named_cosigner_must_sign(net: DemoNetwork, store: MemoryStore, txf: TxFactory) -> None:
    tx = replace(dvp(txf, "BANK01", "BANK02", COSIGN_ABOVE + 1), cosigner="COMPLIANCE")
    keys = net.participant_keys
    partial = SignedTx(encode_body(tx), ())
    partial = partial.with_signature("BANK01", keys["BANK01"]).with_signature(
        "BANK02", keys["BANK02"]
    )
    (result,) = run(store, partial.encode()).results
    assert result.code is RC.BAD_SIGNATURE
    full = partial.with_signature("COMPLIANCE", keys["COMPLIANCE"]).encode()
    assert [r.code for r in run(store, full).results] == [RC.OK]


def test_a_pending_dvp_above_the_threshold_is_refused_not_kept(
    store: MemoryStore, txf: TxFactory
) -> None:
    short = txf.pending("BANK01", "BANK02", quantity=10**12, amount=COSIGN_ABOVE + 1, **far(txf))
    assert code(store, txf, short) is RC.COSIGN_REQUIRED
    kept = replace(short, cosigner="COMPLIANCE")
    assert code(store, txf, kept) is RC.PENDING_SETTLEMENT  # control: short, so it waits


# --- tiers -------------------------------------------------------------------------------


def test_a_tier_below_the_instruments_minimum_may_not_receive_it_but_may_sell_it(
    store: MemoryStore, txf: TxFactory
) -> None:
    assert code(store, txf, dvp(txf, "BANK01", TIER1, 100, bond=0)) is RC.TIER_TOO_LOW
    assert code(store, txf, dvp(txf, "BANK01", TIER1, 100, bond=1)) is RC.OK  # no minimum
    assert code(store, txf, dvp(txf, TIER1, "BANK01", 100, bond=0)) is RC.OK  # it sells
    to_t1 = txf.transfer("BANK01", TIER1, 5, instrument=txf.net.bonds[0])
    assert code(store, txf, to_t1) is RC.TIER_TOO_LOW
    assert code(store, txf, replace(to_t1, receiver="BANK03")) is RC.OK
    mint = txf.mint(TIER1, 5, instrument=txf.net.bonds[0])
    assert code(store, txf, mint) is RC.TIER_TOO_LOW
    assert code(store, txf, replace(mint, to="BANK03")) is RC.OK


# --- per-trade limits --------------------------------------------------------------------


def test_the_per_trade_limit_binds_each_party_at_its_own_tier(
    store: MemoryStore, txf: TxFactory
) -> None:
    assert code(store, txf, dvp(txf, TIER1, "BANK01", T1_TRADE)) is RC.OK
    assert code(store, txf, dvp(txf, TIER1, "BANK01", T1_TRADE + 1)) is RC.TRADE_LIMIT
    assert code(store, txf, dvp(txf, "BANK01", TIER1, T1_TRADE + 1)) is RC.TRADE_LIMIT
    big = replace(dvp(txf, "BANK02", "BANK01", T2_TRADE), cosigner="COMPLIANCE")
    assert code(store, txf, big) is RC.OK
    over = replace(big, amount=T2_TRADE + 1, nonce=big.nonce + 10_000)
    assert code(store, txf, over) is RC.TRADE_LIMIT
    cash_out = txf.transfer(TIER1, "BANK01", T1_TRADE + 1, **far(txf))
    assert code(store, txf, cash_out) is RC.TRADE_LIMIT
    cash_in = txf.transfer("BANK01", TIER1, T1_TRADE + 1, **far(txf))
    assert code(store, txf, cash_in) is RC.OK  # a receiver signs nothing (ADR 0027)
    mint = txf.mint(TIER1, T1_TRADE + 1, instrument=txf.net.cash, by="CASHCO")
    assert code(store, txf, mint) is RC.TRADE_LIMIT
    assert code(store, txf, replace(mint, amount=T1_TRADE)) is RC.OK


# --- the rolling day ---------------------------------------------------------------------


def test_the_daily_limit_counts_the_rolling_24_hours_of_block_time(
    store: MemoryStore, txf: TxFactory
) -> None:
    cash = txf.net.cash
    t = 5 * HOUR_MS + 1_000
    assert code(store, txf, dvp(txf, TIER1, "BANK01", T1_TRADE), at_ms=t) is RC.OK
    assert code(store, txf, dvp(txf, "BANK01", TIER1, T1_TRADE), at_ms=t + HOUR_MS) is RC.OK
    before = store.all_balances()
    third = dvp(txf, TIER1, "BANK02", T1_TRADE)
    assert code(store, txf, third, at_ms=t + 2 * HOUR_MS) is RC.DAILY_LIMIT
    assert store.all_balances() == before
    rest = T1_DAY - 2 * T1_TRADE
    assert code(store, txf, dvp(txf, TIER1, "BANK02", rest), at_ms=t + 2 * HOUR_MS) is RC.OK
    assert day_total(store, TIER1, cash, store.genesis.genesis_time_ms + t + 2 * HOUR_MS) == T1_DAY
    # 23 hours on, the first trade's hour is still in the window; 24 hours on it is not.
    again = dvp(txf, TIER1, "BANK02", T1_TRADE)
    assert code(store, txf, again, at_ms=t + 23 * HOUR_MS) is RC.DAILY_LIMIT
    assert code(store, txf, again, at_ms=t + 24 * HOUR_MS) is RC.DUPLICATE  # recorded above
    assert code(store, txf, replace(again, nonce=7_777), at_ms=t + 24 * HOUR_MS) is RC.OK


def test_volume_is_recorded_only_for_a_party_with_a_daily_limit(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """BANK01 is tier 2 and the rules give tier 2 no daily limit here: no record."""
    rules = replace(
        net.genesis.compliance,
        limits=(TierLimit(1, net.cash, T1_TRADE, T1_DAY), TierLimit(2, net.cash, T2_TRADE)),
    )
    store = MemoryStore(replace(net.genesis, compliance=rules))
    txf = TxFactory(replace(net, genesis=store.genesis))
    out = run(store, txf.signed(dvp(txf, TIER1, "BANK01", 10)))
    keys = [k for k in out.records if k[0] == RecordKind.KYC_VOLUME]
    assert len(keys) == 1 and b"BANK06" in keys[0]


def test_a_refused_breach_writes_nothing(store: MemoryStore, txf: TxFactory) -> None:
    for tx in (
        dvp(txf, "BANK01", "BANK02", COSIGN_ABOVE + 1),
        dvp(txf, "BANK01", TIER1, 5, bond=0),
        dvp(txf, TIER1, "BANK01", T1_TRADE + 1),
    ):
        out = run(store, txf.signed(tx))
        assert out.results[0].code is not RC.OK
        assert out.balances == {} and out.supplies == {} and out.records == {}


def test_a_recycled_pending_trade_settles_only_the_lots_the_daily_limit_leaves(
    store: MemoryStore, txf: TxFactory
) -> None:
    """TIER1 buys 10 lots of 100 cents from BANK01, who has no bonds yet; meanwhile TIER1
    uses 2,000 of its 2,500 a day: when the bonds arrive only 5 lots settle."""
    bond = txf.net.bonds[1]
    held = store.balance(TIER1, bond)
    everything = store.balance("BANK01", bond)
    away = txf.transfer("BANK01", "BANK03", everything, instrument=bond, **far(txf))
    assert code(store, txf, away) is RC.OK
    pend = txf.pending("BANK01", TIER1, lot=1, quantity=10, amount=T1_TRADE, bond=bond, **far(txf))
    pend = replace(pend, deadline_ms=txf.t0 + FAR)
    assert code(store, txf, pend) is RC.PENDING_SETTLEMENT
    for seller in ("BANK02", "BANK03"):
        assert code(store, txf, dvp(txf, seller, TIER1, T1_TRADE)) is RC.OK
    back = txf.transfer("BANK03", "BANK01", 10, instrument=bond, **far(txf))
    out = run(store, txf.signed(back))
    assert [r.code for r in out.results] == [RC.OK, RC.PARTIALLY_SETTLED]
    assert store.balance(TIER1, bond) - held == 2 * 10 + 5
    now = store.genesis.genesis_time_ms + 1_000
    assert day_total(store, TIER1, txf.net.cash, now) == T1_DAY


# --- the rules: in force, encoded, validated ---------------------------------------------


def test_rules_in_force_are_genesis_until_a_rules_record_replaces_them(
    net: DemoNetwork, store: MemoryStore, txf: TxFactory
) -> None:
    assert rules_in_force(Registry.at_genesis(net.genesis), store) == net.genesis.compliance
    o = Overlay(store)
    looser = replace(net.genesis.compliance, cosign_above=((net.cash, U64_MAX - 1),))
    set_rules(o, looser)
    assert rules_in_force(Registry.at_genesis(net.genesis), o) == looser
    big = txf.signed(dvp(txf, "BANK01", "BANK02", COSIGN_ABOVE + 1))
    assert code(store, txf, decode_body(SignedTx.decode(big).body)) is RC.COSIGN_REQUIRED
    assert (
        rules_in_force(Registry.at_genesis(net.genesis), store) == net.genesis.compliance
    )  # not committed


def test_rules_encode_canonically_and_refuse_what_is_not(net: DemoNetwork) -> None:
    rules = net.genesis.compliance
    assert ComplianceRules.decode(rules.encode()) == rules
    assert ComplianceRules().encode() == ComplianceRules.decode(ComplianceRules().encode()).encode()
    unsorted = bytearray(rules.encode())
    with pytest.raises(DecodeError):
        ComplianceRules.decode(bytes(unsorted) + b"\x00")
    with pytest.raises(ValueError, match="sorted"):
        ComplianceRules(min_tier=(("B", 2), ("A", 2)))
    with pytest.raises(ValueError, match="tier"):
        ComplianceRules.of(min_tier={"A": 4})
    with pytest.raises(ValueError, match="trade_max <= day_max"):
        ComplianceRules.of(limits=[TierLimit(1, "C", 10, 5)])
    kinds = {i.id: i.kind.value for i in net.genesis.instruments}
    check_rules(rules, kinds)
    with pytest.raises(ValueError, match="unknown"):
        check_rules(ComplianceRules.of(min_tier={"NOPE": 2}), kinds)
    with pytest.raises(ValueError, match="cash"):
        check_rules(ComplianceRules.of(cosign_above={net.bonds[0]: 5}), kinds)


def test_genesis_json_carries_the_rules_and_refuses_bad_ones(net: DemoNetwork) -> None:
    doc = genesis_to_json(net.genesis)
    assert parse_genesis(doc).chain_id == net.genesis.chain_id
    doc["compliance"]["cosign_above"] = {net.bonds[0]: 5}
    with pytest.raises(GenesisError, match="compliance"):
        parse_genesis(doc)


def test_the_demo_rules_let_every_demo_trade_through() -> None:
    """make genesis networks carry the demo rules; the demo's trades stay within them (the
    fifth fails for its own reason, as before)."""
    from devtools.demo.run import TRADES

    net = demo_genesis(validators=4, quorum=3, seed=b"demo-rules", compliance=True)
    store = MemoryStore(net.genesis)
    txf = TxFactory(net)
    codes = []
    for seller, buyer, b, qty, price in TRADES:
        tx = txf.dvp(seller, buyer, quantity=qty, amount=price, bond=net.bonds[b])
        keys = [net.participant_keys[s] for s in tx.required_signers()]
        codes.append(run(store, sign_tx(tx, keys)).results[0].code)
    assert codes == [RC.OK] * 4 + [RC.INSUFFICIENT_SECURITIES, RC.OK]


# --- exempt: lifecycle payments ------------------------------------------------------------


def test_lifecycle_payments_are_exempt_from_tiers_and_limits_and_not_counted(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """TIER1 may not receive the cash token here (minimum tier 2) and may move 2,500 a
    day, yet a coupon of 212,500 is paid into it and counts toward nothing."""
    rules = replace(net.genesis.compliance, min_tier=((net.cash, 2),))
    store = MemoryStore(replace(net.genesis, compliance=rules))
    txf = TxFactory(replace(net, genesis=store.genesis))
    bond, cash = net.bonds[0], net.cash
    due = store.genesis.schedules[bond][0] - store.genesis.genesis_time_ms  # period 1
    later = {"expiry_ms": txf.t0 + due + DAY_MS}
    fund = txf.mint("TREASURY", 10**12, instrument=cash, by="CASHCO", **later)
    assert code(store, txf, fund) is RC.OK
    to_t1 = txf.transfer("BANK01", TIER1, 1, **later)
    assert code(store, txf, to_t1) is RC.TIER_TOO_LOW  # control: the rule holds for moves
    before = store.balance(TIER1, cash)
    coupon = CouponPay(txf.chain_id, txf.nonce(), txf.t0 + due + DAY_MS, bond, 1, "TREASURY")
    assert code(store, txf, coupon, at_ms=due + 1_000) is RC.OK
    paid = store.balance(TIER1, cash) - before
    assert paid == store.balance(TIER1, bond) * 425 // 2 // 10_000 > T1_DAY
    assert day_total(store, TIER1, cash, store.genesis.genesis_time_ms + due + 1_000) == 0


# --- edges the mutation run found untested (docs/testing.md) -----------------------------


def test_a_party_without_limits_neither_hides_nor_skips_its_counterpartys_limits(
    store: MemoryStore, txf: TxFactory
) -> None:
    """TREASURY (tier 3: no limit row) buys bonds of TIER1 for cash: TIER1's daily limit
    still counts and binds, whichever side comes first."""
    funded = txf.mint("TREASURY", 10**6, instrument=txf.net.cash, by="CASHCO", **far(txf))
    assert code(store, txf, funded) is RC.OK
    for _ in range(2):
        assert code(store, txf, dvp(txf, TIER1, "TREASURY", T1_TRADE)) is RC.OK
    rest = dvp(txf, TIER1, "TREASURY", T1_DAY - 2 * T1_TRADE + 1)
    assert code(store, txf, rest) is RC.DAILY_LIMIT
    assert code(store, txf, replace(rest, amount=T1_DAY - 2 * T1_TRADE)) is RC.OK


def test_moves_in_one_hour_share_one_bucket(store: MemoryStore, txf: TxFactory) -> None:
    key = bytes([RecordKind.KYC_VOLUME]) + TIER1.encode().ljust(64, b"\0")
    key += txf.net.cash.encode().ljust(64, b"\0")
    at = (1_000, HOUR_MS + 1_000, HOUR_MS + 2_000, HOUR_MS + 3_000)
    for t in at:
        assert code(store, txf, dvp(txf, TIER1, "BANK01", 100), at_ms=t) is RC.OK
    raw = store.record(key)
    assert raw is not None and raw[0] == 2  # two hours, two buckets, in order
    assert day_total(store, TIER1, txf.net.cash, txf.t0 + at[-1]) == 400


def test_volume_is_written_only_under_a_daily_limit_however_the_rules_were_read(
    net: DemoNetwork,
) -> None:
    """Rules decoded from their bytes (as from a rules record or a genesis file): a
    day_max of 2**64 - 1 is no daily limit, whatever int object carries it."""
    rules = replace(
        net.genesis.compliance,
        limits=(TierLimit(1, net.cash, T1_TRADE, T1_DAY), TierLimit(2, net.cash, T2_TRADE)),
    )
    rules = ComplianceRules.decode(rules.encode())
    store = MemoryStore(replace(net.genesis, compliance=rules))
    txf = TxFactory(replace(net, genesis=store.genesis))
    out = run(store, txf.signed(dvp(txf, "BANK02", "BANK01", 10)))
    assert [k for k in out.records if k[0] == RecordKind.KYC_VOLUME] == []


def test_a_named_cosigner_that_cannot_count_is_refused_on_a_chain_without_rules() -> None:
    """Execution checks it too (a Byzantine leader may carry what admission refused)."""
    net = demo_genesis(validators=4, quorum=3, seed=b"tests")
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    tx = replace(txf.dvp("BANK01", "BANK02"), cosigner="REGULATOR")
    assert code(store, txf, tx) is RC.COSIGN_REQUIRED
    assert code(store, txf, replace(tx, cosigner="COMPLIANCE")) is RC.OK


def test_recording_past_the_daily_limit_is_an_invariant_breach(
    net: DemoNetwork, store: MemoryStore
) -> None:
    """note_volume runs only after the checks passed: past the limit it halts the node."""
    o = Overlay(store)
    over = _compliance.Check((), (TIER1,), net.cash, T1_DAY + 1, cosigner=None)
    with pytest.raises(InvariantError, match="daily limit"):
        _compliance.note_volume(
            Registry.at_genesis(net.genesis), o, net.genesis.compliance, over, time_ms=1
        )
    for _ in range(2):  # 2,000, then 1,000 more passes 2,500 (and 2,000 | 1,000 would not)
        trade = _compliance.Check((), (TIER1,), net.cash, T1_TRADE, cosigner=None)
        _compliance.note_volume(
            Registry.at_genesis(net.genesis), o, net.genesis.compliance, trade, time_ms=1
        )
    with pytest.raises(InvariantError, match="daily limit"):
        _compliance.note_volume(
            Registry.at_genesis(net.genesis), o, net.genesis.compliance, trade, time_ms=1
        )


def test_recycling_settles_nothing_once_the_daily_limit_is_used_up(
    store: MemoryStore, txf: TxFactory
) -> None:
    """Lots of 1 cent: a room of 0 must not round to one lot."""
    bond = txf.net.bonds[1]
    away = txf.transfer(
        "BANK01", "BANK03", store.balance("BANK01", bond), instrument=bond, **far(txf)
    )
    assert code(store, txf, away) is RC.OK
    pend = txf.pending("BANK01", TIER1, lot=1, quantity=10, amount=10, bond=bond, **far(txf))
    assert code(store, txf, replace(pend, deadline_ms=txf.t0 + FAR)) is RC.PENDING_SETTLEMENT
    for amount in (T1_TRADE, T1_TRADE, T1_DAY - 2 * T1_TRADE):
        assert code(store, txf, dvp(txf, "BANK02", TIER1, amount)) is RC.OK
    back = txf.transfer("BANK03", "BANK01", 10, instrument=bond, **far(txf))
    out = run(store, txf.signed(back))
    assert [r.code for r in out.results] == [RC.OK]  # no event: nothing settled


# --- the rules' own bounds (target settlement.kyc_rules) ----------------------------------


def _rules(**tables: object) -> ComplianceRules:
    return ComplianceRules.of(**tables)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tables", "ok"),
    [
        ({"min_tier": {"A": 0}}, False),
        ({"min_tier": {"A": 1}}, True),
        ({"min_tier": {"A": 3}}, True),
        ({"min_tier": {"A": 4}}, False),
        ({"limits": [TierLimit(1, "C", 1, 1)]}, True),  # trade_max may equal day_max
        ({"limits": [TierLimit(1, "C", 0, 1)]}, False),
        ({"limits": [TierLimit(1, "C", -5, 1)]}, False),
        ({"limits": [TierLimit(1, "C", 2, 1)]}, False),
        ({"limits": [TierLimit(1, "C", 1, U64_MAX + 1)]}, False),
        ({"limits": [TierLimit(0, "C", 1, 1)]}, False),
        ({"cosign_above": {"C": 0}}, True),
        ({"cosign_above": {"C": U64_MAX - 1}}, True),
        ({"cosign_above": {"C": U64_MAX}}, False),
        ({"cosign_above": {"C": 2**64}}, False),
        ({"cosign_above": {"C": -1}}, False),
        ({"cosign_above": {"-bad": 5}}, False),
        ({"min_tier": {"-bad": 2}}, False),  # every table's ids are checked, not only one
        ({"limits": [TierLimit(1, "-bad", 1, 1)]}, False),
        ({"min_tier": {f"I{k:03d}": 2 for k in range(256)}}, True),  # COMPLIANCE_RULES_MAX
        ({"min_tier": {f"I{k:03d}": 2 for k in range(257)}}, False),
    ],
)
def test_rules_take_each_bound_and_refuse_one_past_it(tables: dict[str, object], ok: bool) -> None:
    if ok:
        assert ComplianceRules.decode(_rules(**tables).encode()) == _rules(**tables)
    else:
        with pytest.raises(ValueError):
            _rules(**tables)


def test_rules_bytes_are_pinned_and_other_versions_or_orders_do_not_decode() -> None:
    rules = _rules(min_tier={"A": 2}, limits=[TierLimit(1, "C", 5, 9)], cosign_above={"C": 7})
    assert rules.encode().hex() == (
        "01" "0001" "0141" "02" "0001" "01" "0143" "0000000000000005" "0000000000000009"
        "0001" "0143" "0000000000000007"
    )  # fmt: skip
    for version in (0, 2):
        with pytest.raises(DecodeError, match="version"):
            ComplianceRules.decode(bytes([version]) + rules.encode()[1:])
    for rows in ((("B", 2), ("A", 2)), (("A", 2), ("A", 3))):  # unsorted, repeated
        w = _codec.Writer().u8(1).u16(2)
        for ident, tier in rows:
            w.ident(ident).u8(tier)
        with pytest.raises(DecodeError, match="non-canonical"):
            ComplianceRules.decode(w.u16(0).u16(0).finish())


def test_limit_and_threshold_rows_out_of_order_or_repeated_do_not_decode() -> None:
    """docs/ledger.md "KYC tiers and AML", record KYC_RULES: *each* table is sorted with no
    repeats, so equal rules have equal bytes and no (tier, cash) or cash token has two rows
    (the lookup would silently keep one). The limits and co-sign tables, not only min_tier."""
    one, two = TierLimit(1, "C", 5, 9), TierLimit(2, "C", 5, 9)
    for rows in ((two, one), (one, one), (TierLimit(1, "D", 5), TierLimit(1, "C", 5))):
        w = _codec.Writer().u8(1).u16(0).u16(2)
        for r in rows:
            w.u8(r.tier).ident(r.cash).u64(r.trade_max).u64(r.day_max)
        with pytest.raises(DecodeError, match="non-canonical"):
            ComplianceRules.decode(w.u16(0).finish())
        with pytest.raises(ValueError, match="sorted"):
            ComplianceRules((), rows, ())
    with pytest.raises(ValueError, match="sorted"):
        _rules(limits=[one, replace(one, trade_max=6)])  # of() sorts, but cannot pick one
    for cash_rows in ((("D", 1), ("C", 1)), (("C", 1), ("C", 2))):
        w = _codec.Writer().u8(1).u16(0).u16(0).u16(2)
        for cash, threshold in cash_rows:
            w.ident(cash).u64(threshold)
        with pytest.raises(DecodeError, match="non-canonical"):
            ComplianceRules.decode(w.finish())


def test_rules_are_immutable_and_know_when_they_are_empty_or_daily() -> None:
    limit = TierLimit(1, "C", 5)
    with pytest.raises(AttributeError):
        limit.trade_max = 6  # type: ignore[misc]
    assert not hasattr(limit, "__dict__")
    with pytest.raises(AttributeError):
        ComplianceRules().limits = ()  # type: ignore[misc]
    assert ComplianceRules().is_default
    for one in ({"min_tier": {"A": 2}}, {"limits": [limit]}, {"cosign_above": {"C": 1}}):
        assert not _rules(**one).is_default, one
    assert not ComplianceRules.decode(_rules(limits=[limit]).encode()).has_daily
    assert _rules(limits=[limit, TierLimit(2, "C", 5, 9)]).has_daily


def test_limits_and_thresholds_name_cash_tokens_not_funds_or_bonds(net: DemoNetwork) -> None:
    kinds = {i.id: i.kind.value for i in net.genesis.instruments}
    for iid in (net.fund, net.bonds[0]):
        with pytest.raises(ValueError, match="cash"):
            check_rules(_rules(limits=[TierLimit(1, iid, 5)]), kinds)
        with pytest.raises(ValueError, match="cash"):
            check_rules(_rules(cosign_above={iid: 5}), kinds)
