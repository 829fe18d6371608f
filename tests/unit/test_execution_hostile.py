"""An authenticated participant against block execution (issue 13, session 15 review).

Each test plays a client whose signed transactions pass admission (``precheck``) and
then asserts what ``apply_block`` must do with them: refuse with a code, never raise
(an exception in execution halts every validator that executes the block), never move
value a rule forbids.
"""

from __future__ import annotations

from dataclasses import replace

from node.config import U64_MAX
from node.genesis import DemoNetwork
from node.settlement import (
    BlockContext,
    BlockOutcome,
    ComplianceRules,
    Holding,
    MarginCall,
    Paid,
    Registry,
    RepoOpen,
    RepoSubstitute,
    ResultCode,
    Secured,
    SecuredKind,
    SignedTx,
    apply_block,
    day_total,
    precheck,
    repo,
    units_for,
)
from node.settlement import outcome as pending_outcome
from node.settlement._lifecycle import coupon_key
from node.store import MemoryStore
from tests.gov_helpers import set_tier, signed
from tests.kyc_helpers import T1_DAY, T1_TRADE, TIER1, kyc_net, tier2_limited
from tests.ledger_helpers import HOUR_MS, CountingView, TxFactory, shared_net
from tests.ledger_helpers import run_block as run
from tests.life_helpers import AGENT, LifeTx, at, life_net, run_at
from tests.lock_helpers import claim, lock, release
from tests.margin_helpers import attest, margin_net
from tests.margin_helpers import run as margin_run
from tests.repo_helpers import RepoTx

RC = ResultCode


def _tid(raw: bytes) -> bytes:
    return SignedTx.decode(raw).tx_id


def _events(out: BlockOutcome) -> list[tuple[bytes, ResultCode]]:
    return [(r.tx_id, r.code) for r in out.results if r.event]


# --- lifecycle: the coupon's paid record -------------------------------------------------


def _agent_holds_half(net: DemoNetwork) -> tuple[DemoNetwork, MemoryStore]:
    """BOND pays 5 * 10**11 a unit a period; the paying agent and BANK01 hold 2**25 units
    each (each share 1.68 * 10**19, fits a u64; both 3.4 * 10**19, do not); the agent
    holds all 2**64 - 1 of the cash, enough to pay BANK01."""
    g = net.genesis
    bond = net.bonds[0]
    terms = {"unit_face_minor": 10**12, "coupon_bp": 10_000, "coupon_freq": 2}
    insts = tuple(replace(i, **terms) if i.id == bond else i for i in g.instruments)  # type: ignore[arg-type]
    holdings = [h for h in g.holdings if h.instrument not in (bond, net.cash)]
    holdings += [
        Holding(AGENT, bond, 2**25),
        Holding("BANK01", bond, 2**25),
        Holding(AGENT, net.cash, U64_MAX),
    ]
    g = replace(g, instruments=insts, holdings=tuple(holdings))
    return replace(net, genesis=g), MemoryStore(g)


def test_a_coupon_whose_shares_sum_past_u64_with_the_agents_own_is_refused_not_a_halt() -> None:
    """Attack: the paying agent holds units of its own bond, so that its own share plus
    the other holders' fits no u64 while each part, and what it pays out, does. The
    CouponPay passes admission (the agent signs it). Execution checked only the paid-out
    total, then encoded the period's record with the sum of every share (the agent's
    included) as a u64: EncodeError, raised out of ``apply_block`` on every validator.
    Impact: one signed transaction halts the cluster. Severity: high (halt)."""
    net, store = _agent_holds_half(life_net())
    raw = LifeTx(net).coupon(1)
    assert precheck(Registry.of(store), raw).code is RC.OK
    out = run_at(store, at("2026-07-15"), raw)
    assert [r.code for r in out.results] == [RC.OVERFLOW]
    assert store.record(coupon_key(net.bonds[0], 1)) is None
    assert store.balance("BANK01", net.cash) == 0


def test_a_coupon_the_agent_holds_part_of_records_every_share() -> None:
    """The guard above counts the agent's own share because the paid record does: it
    stays so (no cash moves to the agent for it)."""
    net = life_net()
    bond = net.bonds[0]
    g = net.genesis
    net = replace(net, genesis=replace(g, holdings=(*g.holdings, Holding(AGENT, bond, 1_000))))
    store = MemoryStore(net.genesis)
    out = run_at(store, at("2026-07-15"), LifeTx(net).coupon(1))
    assert [r.code for r in out.results] == [RC.OK]
    paid = Paid.decode(store.record(coupon_key(bond, 1)) or b"")
    assert paid == Paid(len(net.banks) * 2_500_000 + 2_500, len(net.banks) + 1)


# --- pending settlement: later lots of a party governance demoted -------------------------


def test_a_pending_dvps_later_lots_do_not_settle_for_a_party_demoted_to_tier_0(
    store: MemoryStore, txf: TxFactory
) -> None:
    """Attack: a buyer that expects to be off-boarded records a pending DvP it cannot yet
    pay (short cash: PENDING_SETTLEMENT). The admins then set its KYC tier to 0, which
    "cannot hold or move assets" (docs/ledger.md: "a tier-0 bank can no longer trade"):
    a DvP it signs now is UNAUTHORIZED. Then cash arrives and recycling settled the
    instruction anyway: the demoted bank received bonds and paid cash, for up to
    PENDING_AGE_MAX_MS. Impact: compliance bypass (a tier-0 / de-roled participant keeps
    trading through instructions recorded before). Severity: medium."""
    net, bond = txf.net, txf.net.bonds[0]
    held = store.balance("BANK01", bond)
    raw = txf.signed(txf.pending(quantity=held + 100, amount=5_000))  # seller 100 short
    out = run(store, raw)
    assert [r.code for r in out.results] == [RC.PENDING_SETTLEMENT]
    demote = signed(net, set_tier(txf, "BANK02", 0))
    out = run(store, demote, at_ms=2_000)
    assert [r.code for r in out.results if not r.event] == [RC.OK]
    dvp_now = txf.signed(txf.dvp(quantity=1, amount=1))
    deliver = txf.signed(txf.transfer("BANK03", "BANK01", 100, instrument=bond))
    out = run(store, dvp_now, deliver, at_ms=3_000)
    assert [r.code for r in out.results if not r.event] == [RC.UNAUTHORIZED, RC.OK]
    assert (_tid(raw), RC.OK) not in _events(out)
    assert store.balance("BANK02", bond) == held


def _demoted_pending(store: MemoryStore, txf: TxFactory, tier: int, amount: int = 5_000) -> bytes:
    """A pending DvP (seller BANK01 100 bonds short) recorded, then the buyer BANK02 set
    to ``tier`` by the admins, then the seller's missing bonds delivered: returns it."""
    net, bond = txf.net, txf.net.bonds[0]
    held = store.balance("BANK01", bond)
    raw = txf.signed(txf.pending(quantity=held + 100, amount=amount))
    assert [r.code for r in run(store, raw).results] == [RC.PENDING_SETTLEMENT]
    assert [r.code for r in run(store, signed(net, set_tier(txf, "BANK02", tier))).results] == [
        RC.OK
    ]
    deliver = txf.signed(txf.transfer("BANK03", "BANK01", 100, instrument=bond))
    out = run(store, deliver, at_ms=3_000)
    assert [r.code for r in out.results] == [RC.OK]  # no event: the instruction waits
    return raw


def test_a_pending_dvp_does_not_deliver_to_a_buyer_below_the_bonds_minimum_tier() -> None:
    """The same attack one tier down: the first bond is held from tier 2; the buyer was
    set to tier 1 after its instruction was recorded. A DvP would be TIER_TOO_LOW; the
    instruction must wait too. Severity: medium (compliance bypass)."""
    net = kyc_net()
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    raw = _demoted_pending(store, txf, tier=1, amount=1_000)  # within tier 1's limits
    assert store.balance("BANK02", net.bonds[0]) == store.balance("BANK04", net.bonds[0])
    assert pending_outcome(store, _tid(raw)).code is RC.PENDING_SETTLEMENT  # type: ignore[union-attr]


def test_an_instruction_a_demotion_held_back_settles_in_the_block_that_restores_the_tier(
    store: MemoryStore, txf: TxFactory
) -> None:
    """Restoring the tier writes no balance of the instruction; it must still be
    re-attempted then (as after an unfreeze), not wait for some unrelated balance write."""
    raw = _demoted_pending(store, txf, tier=0)
    out = run(store, signed(txf.net, set_tier(txf, "BANK02", 2)), at_ms=4_000)
    assert [r.code for r in out.results if not r.event] == [RC.OK]
    assert _events(out) == [(_tid(raw), RC.OK)]


# --- issuance: who may mint a fund share ---------------------------------------------------


def test_a_custodian_cannot_mint_another_issuers_fund_shares() -> None:
    """Attack: a custodian (the CSD, not the fund's issuer) signs a Mint of fund shares to
    a bank of its choice. ``_may_issue`` let "a custodian for bonds" (docs/ledger.md) mint
    any non-cash instrument, fund shares included: admission and execution accepted it,
    the shares rose up to max_supply with no custody record behind them (funds have
    none), and the next Distribute paid the minted holding its pro-rata part, taken from
    the fund's real holders. Impact: unauthorized issuance, theft of distributions.
    Severity: high (value)."""
    net = life_net()
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    raw = txf.signed(txf.mint("BANK04", 1_000, instrument=net.fund, by="CSD"))
    assert precheck(Registry.of(store), raw).code is RC.UNAUTHORIZED
    out = run(store, raw)
    assert [r.code for r in out.results] == [RC.UNAUTHORIZED]
    assert store.balance("BANK04", net.fund) == 0
    # The fund's own issuer still mints it, and the CSD still mints bonds.
    by_issuer = txf.signed(txf.mint("BANK04", 1_000, instrument=net.fund, by=AGENT))
    by_csd = txf.signed(txf.mint("BANK04", 1_000, instrument=net.bonds[1], by="CSD"))
    assert [r.code for r in run(store, by_issuer, by_csd, at_ms=2_000).results] == [RC.OK, RC.OK]


# --- repo collateral: who may receive it after the open ----------------------------------

_MIN = 60_000


def _restricted_margin_net() -> DemoNetwork:
    """margin_net() whose second bond is held from tier 3 only: BANK01 (the borrower) is
    tier 3 and holds it, BANK02 (the lender, tier 2) holds none."""
    net = margin_net()
    g = net.genesis
    parts = tuple(replace(p, kyc_tier=3) if p.id == "BANK01" else p for p in g.participants)
    holdings = tuple(h for h in g.holdings if (h.account, h.instrument) != ("BANK02", net.bonds[1]))
    rules = ComplianceRules.of(min_tier={net.bonds[1]: 3}, limits=[], cosign_above={})
    g = replace(g, participants=parts, holdings=holdings, compliance=rules)
    return replace(net, genesis=g)


def _open_repo(txf: TxFactory) -> bytes:
    tx = RepoOpen(
        txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, "R-1", "BANK01", "BANK02",
        txf.net.bonds[0], 1_000_000, txf.net.cash, 950_000, 951_000, 0,
        txf.t0 + 4 * HOUR_MS, txf.t0 + 5 * HOUR_MS,
    )  # fmt: skip
    return txf.signed(tx)


def _prices(txf: TxFactory, price: int, at_ms: int, bond: str) -> list[bytes]:
    when = txf.net.genesis.genesis_time_ms + at_ms
    return [attest(txf, price, when, source=s, bond=bond) for s in ("CASHCO", "CSD")]


def test_a_substitution_cannot_deliver_a_bond_below_the_lenders_tier() -> None:
    """Attack: a tier-2 lender may not receive the second bond (held from tier 3): a DvP
    or a Swap delivering it is TIER_TOO_LOW. Borrower and lender open a repo on the
    first bond, then substitute the restricted bond into it: RepoSubstitute checked
    freezes, eligibility, price and value but no tier, so the lender received it (and
    keeps it for good if the repo then defaults). Impact: KYC tier bypass by collusion.
    Severity: medium."""
    net = _restricted_margin_net()
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    assert [r.code for r in margin_run(store, _open_repo(txf), at_ms=_MIN).results] == [RC.OK]
    margin_run(store, *_prices(txf, 1_000_000, 2 * _MIN, net.bonds[1]), at_ms=2 * _MIN)
    need = units_for(951_000, 1_000_000, 500)
    sub = RepoSubstitute(
        txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, "R-1", "BANK01", "BANK02",
        net.bonds[1], need,
    )  # fmt: skip
    out = margin_run(store, txf.signed(sub), at_ms=3 * _MIN)
    assert [r.code for r in out.results] == [RC.TIER_TOO_LOW]
    assert store.balance("BANK02", net.bonds[1]) == 0


def test_a_margin_call_does_not_deliver_to_a_lender_governance_demoted() -> None:
    """Attack: the lender was set to tier 0 after the open ("cannot hold or move
    assets"); it signs a MarginCall alone and received the called units anyway (no check
    of who receives). Severity: medium (compliance bypass)."""
    net = margin_net()
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    assert [r.code for r in margin_run(store, _open_repo(txf), at_ms=_MIN).results] == [RC.OK]
    demote = signed(net, set_tier(txf, "BANK02", 0))
    low = _prices(txf, 900_000, 2 * _MIN, net.bonds[0])  # the collateral is short now
    assert [r.code for r in margin_run(store, demote, *low, at_ms=2 * _MIN).results] == [RC.OK] * 3
    before = store.balance("BANK02", net.bonds[0])
    call = MarginCall(txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, "R-1", "BANK01", "BANK02")
    out = margin_run(store, txf.signed(call), at_ms=3 * _MIN)
    assert [r.code for r in out.results] == [RC.UNAUTHORIZED]
    assert store.balance("BANK02", net.bonds[0]) == before


# --- locks: a pledge the defaulter can keep -------------------------------------------------


def test_a_defaulter_cannot_dodge_a_claim_by_spending_its_own_daily_limit() -> None:
    """Attack: BANK01 pledges 5,000 cash to BANK02 against a pending DvP it then fails
    (a default on the ledger: the claim is open). Before the beneficiary's claim lands,
    BANK01 spends its whole daily limit in ordinary transfers. Until ADR 0023 the claim
    counted its value against the holder's day and was refused DAILY_LIMIT; the holder
    kept doing so while the lock was in force, then released it alone once it lapsed and
    kept the collateral (medium: value). Now the pledge counts against both parties'
    limits when it is made, and its claim is exempt from them, so here the holder's
    own spending stops at its limit (the second transfer) and the claim goes through."""
    net = tier2_limited(5_000, 10_000)
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    held = store.balance("BANK01", net.bonds[0])
    trade = txf.signed(txf.pending(quantity=held + 1, amount=10, deadline_ms=txf.t0 + 10_000))
    pledge = lock(txf, "BANK01", 5_000, "BANK02", instrument=net.cash, secures=_tid(trade))
    assert [r.code for r in run(store, trade, pledge).results] == [RC.PENDING_SETTLEMENT, RC.OK]
    before = store.balance("BANK02", net.cash)
    run(store, at_ms=10_001)  # BANK01 fails to deliver: a default the pledge secures
    spend = [txf.signed(txf.transfer("BANK01", "BANK03", 5_000)) for _ in range(2)]
    out = run(store, *spend, claim(txf, pledge, "BANK02"), at_ms=11_000)
    assert [r.code for r in out.results] == [RC.OK, RC.DAILY_LIMIT, RC.OK]
    assert store.balance("BANK02", net.cash) - before == 5_000


# --- repo default: who defaulted ------------------------------------------------------------


def test_a_borrower_whose_cash_is_pledged_elsewhere_is_the_repos_defaulter() -> None:
    """Attack: the lender of repo R1 pledged bonds to the borrower against the repo (a
    Lock securing it). The borrower locks all its cash to an accomplice (a plain
    pledge), so the close cannot settle (LOCKED: pending, as a shortfall) and the repo
    defaults at its deadline. The defaulter was chosen by the borrower's *balance*, not
    its available balance: the pledged cash counted as there, so the lender was
    recorded as the defaulter, and the borrower claimed the lender's pledge on top of
    the cash it kept. (``_pending`` already judges a default by the available balance.)
    Impact: value taken from the honest lender. Severity: high (value)."""
    net = shared_net()
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    t0 = txf.t0
    rt = RepoTx(net, t0)
    until, far = t0 + 3 * HOUR_MS, t0 + 48 * HOUR_MS  # until: after the default (t0 + 2 h)
    secured = Secured(SecuredKind.REPO, b"R1")
    assert [r.code for r in run(store, rt.open()).results] == [RC.OK]
    cash = store.balance("BANK01", net.cash)
    hide = lock(txf, "BANK01", cash, "BANK03", instrument=net.cash, until_ms=until)
    pledge = lock(
        txf, "BANK02", 5_000, "BANK01", instrument=net.bonds[1], secures=secured, until_ms=until
    )
    assert [r.code for r in run(store, pledge, hide, at_ms=2_000).results] == [RC.OK, RC.OK]
    out = run(store, rt.close("R1", "BANK02"), at_ms=HOUR_MS)
    assert [r.code for r in out.results] == [RC.PENDING_SETTLEMENT]
    out = run(store, at_ms=2 * HOUR_MS + 1)
    assert [r.code for r in out.results] == [RC.FAILED_DEADLINE]
    rec = repo(store, "R1")
    assert rec is not None and rec.defaulter == "BANK01"
    out = run(store, claim(txf, pledge, "BANK01", expiry_ms=far), at_ms=2 * HOUR_MS + 2)
    assert [r.code for r in out.results] == [RC.NOT_CLAIMABLE]


def test_a_borrower_that_spent_its_own_daily_limit_is_the_repos_defaulter() -> None:
    """The same attack with the borrower's daily limit: its cash hidden in a pledge while
    the close is submitted (pending), then spent down to less than the close's amount of
    its day's room, then freed by the accomplice: at the deadline the cash is available,
    recycling could settle nothing (the borrower's own limit), and the lender was
    recorded as the defaulter. Severity: high (value)."""
    net = tier2_limited(
        1_000_000, 1_000_000, cash={"BANK01": 400_000}
    )  # the pledge below counts in its day
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    rt = RepoTx(net, txf.t0)
    until, far = txf.t0 + 3 * HOUR_MS, txf.t0 + 48 * HOUR_MS
    assert [r.code for r in run(store, rt.open(purchase=100_000)).results] == [RC.OK]
    cash = store.balance("BANK01", net.cash)
    hide = lock(txf, "BANK01", cash, "BANK03", instrument=net.cash, until_ms=until)
    pledge = lock(
        txf, "BANK02", 5_000, "BANK01", instrument=net.bonds[1],
        secures=Secured(SecuredKind.REPO, b"R1"), until_ms=until,
    )  # fmt: skip
    assert [r.code for r in run(store, hide, pledge, at_ms=2_000).results] == [RC.OK] * 2
    out = run(store, rt.close("R1", "BANK02"), at_ms=HOUR_MS)
    assert [r.code for r in out.results] == [RC.PENDING_SETTLEMENT]  # LOCKED: pending
    freed = release(txf, hide, by="BANK03", expiry_ms=far)
    # Its day: the opening's 100,000, the hidden 500,000 and this 350,000: room 50,000.
    spend = txf.signed(txf.transfer("BANK01", "BANK03", 350_000, expiry_ms=far))
    out = run(store, freed, spend, at_ms=HOUR_MS + 1)
    assert [r.code for r in out.results] == [RC.OK, RC.OK]  # no event: the limit binds
    out = run(store, at_ms=2 * HOUR_MS + 1)
    assert [r.code for r in out.results] == [RC.FAILED_DEADLINE]
    rec = repo(store, "R1")
    assert rec is not None and rec.defaulter == "BANK01"
    assert store.balance("BANK01", net.cash) >= rec.close_amount  # not short: over its limit
    out = run(store, claim(txf, pledge, "BANK01", expiry_ms=far), at_ms=2 * HOUR_MS + 2)
    assert [r.code for r in out.results] == [RC.NOT_CLAIMABLE]


def test_a_pending_dvps_buyer_that_spent_its_own_daily_limit_defaulted() -> None:
    """The pending DvP form of the same dodge: the buyer pledged bonds to the seller
    against its trade, was short of cash (pending), then got the cash but spent its own
    day's room, so no lot could settle. At the deadline nobody was short, so no default
    was recorded and the seller could not claim the pledge. The buyer's own limit is the
    buyer's doing: it defaulted. Severity: medium (value: an unenforceable pledge)."""
    net = tier2_limited(1_000_000, 1_000_000, cash={"BANK02": 100_000})
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    trade = txf.signed(txf.pending(quantity=1_000, amount=500_000, deadline_ms=txf.t0 + 10_000))
    pledge = lock(txf, "BANK02", 5_000, "BANK01", instrument=net.bonds[1], secures=_tid(trade))
    out = run(store, trade, pledge)
    assert [r.code for r in out.results] == [RC.PENDING_SETTLEMENT, RC.OK]  # short
    # Cash paid in does not count in BANK02's day (ADR 0027); what it pays out does.
    got = [txf.signed(txf.transfer(payer, "BANK02", 550_000)) for payer in ("BANK03", "BANK04")]
    spend = txf.signed(txf.transfer("BANK02", "BANK03", 600_000))  # room left: 400,000
    out = run(store, *got, spend, at_ms=2_000)
    assert [r.code for r in out.results] == [RC.OK, RC.OK, RC.OK]  # no event: the limit binds
    out = run(store, at_ms=10_001)
    assert _events(out) == [(_tid(trade), RC.FAILED_DEADLINE)]
    assert store.balance("BANK02", net.cash) >= 500_000  # not short: over its own limit
    out = run(store, claim(txf, pledge, "BANK01"), at_ms=11_000)
    assert [r.code for r in out.results] == [RC.OK]
    assert store.balance("BANK01", net.bonds[1]) == store.balance("BANK03", net.bonds[1]) + 5_000


def test_a_counterparty_paying_a_limited_seller_does_not_make_it_the_defaulter() -> None:
    """Attack (session 28's review): V (tier 1: 1,000 a trade, 2,500 a rolling day) sells
    bonds it does not hold yet to A in a pending DvP and pledges 1,000,000 units of
    another bond to A against it. A then pays V 1,501 in cash transfers A alone signs.
    They counted in V's day, leaving 999: when V's units arrived no lot of 1,000 could
    settle, V was recorded as the defaulter at the deadline, and A claimed the pledge.
    Now a transfer binds only its sender's limits (ADR 0027): the trade settles."""
    net = kyc_net()
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    seller, buyer = TIER1, "BANK01"
    sold, pledged = net.bonds[1], net.bonds[0]
    held = store.balance(seller, sold)
    trade = txf.signed(
        txf.pending(seller, buyer, bond=sold, quantity=held + 100, amount=T1_TRADE,
                    deadline_ms=txf.t0 + 10_000)
    )  # fmt: skip
    pledge = lock(txf, seller, 1_000_000, buyer, instrument=pledged, secures=_tid(trade))
    out = run(store, trade, pledge, at_ms=1_000)
    assert [r.code for r in out.results] == [RC.PENDING_SETTLEMENT, RC.OK]
    gifts = [txf.signed(txf.transfer(buyer, seller, a)) for a in (T1_TRADE, T1_DAY - 1_999)]
    assert [r.code for r in run(store, *gifts, at_ms=2_000).results] == [RC.OK, RC.OK]
    delivery = txf.signed(txf.transfer("BANK03", seller, 100, instrument=sold))
    out = run(store, delivery, at_ms=3_000)
    assert _events(out) == [(_tid(trade), RC.OK)]  # settled once the units arrived
    run(store, at_ms=10_001)  # the deadline passes with nothing left to fail
    out = run(store, claim(txf, pledge, buyer), at_ms=11_000)
    assert [r.code for r in out.results] == [RC.NOT_CLAIMABLE]
    assert store.balance(seller, pledged) >= 1_000_000


def test_cash_paid_in_leaves_the_receivers_day_whole() -> None:
    """Anyone could stop a limited party's cash trading for a day by paying it its daily
    limit. Paid in: nothing counted; paid out by the same party: counted and bound."""
    net = kyc_net()
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    paid_in = [txf.signed(txf.transfer("BANK01", TIER1, T1_TRADE)) for _ in range(3)]
    assert [r.code for r in run(store, *paid_in, at_ms=1_000).results] == [RC.OK] * 3
    assert day_total(store, TIER1, net.cash, txf.t0 + 1_000) == 0
    out = [txf.signed(txf.transfer(TIER1, "BANK02", T1_TRADE)) for _ in range(3)]
    codes = [r.code for r in run(store, *out, at_ms=2_000).results]
    assert codes == [RC.OK, RC.OK, RC.DAILY_LIMIT]  # 2,000 of its 2,500; a third passes it


def test_a_substitution_does_not_hand_back_collateral_that_has_matured() -> None:
    """Attack: a repo on the second bond left open past its close time and the bond's
    maturity; the parties substitute the first bond for it. The substitution checked
    maturity of the new bond only, so the matured units moved from the lender to the
    borrower: a trade in a matured bond, which only redemption may touch
    (docs/ledger.md: MATURED when "the bond a leg moves has matured"); a borrower that
    had redeemed its own holding of it now holds units its own Redeem refuses
    (ALREADY_PAID). Severity: low (rule breach; value stays conserved)."""
    net = margin_net()
    txf = TxFactory(net)
    old, new = net.bonds[1], net.bonds[0]
    maturity = net.genesis.maturity_ms(old)
    assert maturity is not None
    # The block that reaches the maturity (the repo's default deadline a millisecond
    # before it: it lapses only at the end of that block, session 31).
    at = maturity - net.genesis.genesis_time_ms
    store = MemoryStore(net.genesis)
    tx = RepoOpen(
        txf.chain_id, txf.nonce(), txf.t0 + 48 * HOUR_MS, "R-9", "BANK01", "BANK02", old,
        1_000_000, net.cash, 950_000, 951_000, 0, txf.t0 + 2 * HOUR_MS, maturity - 1,
    )  # fmt: skip
    assert [r.code for r in margin_run(store, txf.signed(tx), at_ms=_MIN).results] == [RC.OK]
    later = TxFactory(net, now_ms=txf.t0 + at - 2)
    margin_run(store, *_prices(later, 1_000_000, at - 2, new), at_ms=at - 2)
    need = units_for(951_000, 1_000_000, 200)
    sub = RepoSubstitute(
        later.chain_id, later.nonce(), later.t0 + HOUR_MS, "R-9", "BANK01", "BANK02", new, need
    )
    before = store.balance("BANK01", old)
    out = margin_run(store, later.signed(sub), at_ms=at)
    # Refused MATURED; the repo, past its default deadline, lapses at the end of the block
    # (its event since review 32).
    assert [(r.event, r.code) for r in out.results] == [(False, RC.MATURED), (True, RC.REPO_LAPSED)]
    assert store.balance("BANK01", old) == before


def test_a_borrower_demoted_while_its_close_waits_is_the_repos_defaulter() -> None:
    """Recycling leaves a close waiting while the borrower may not receive the
    collateral (set to tier 0 since): at the deadline it is the borrower that could not
    take its leg, not the lender, who held the bonds ready. Severity: low (governance
    causes it; the lender's pledges would otherwise become claimable)."""
    net = shared_net()
    store, txf = MemoryStore(net.genesis), TxFactory(net)
    rt = RepoTx(net, txf.t0)
    until, far = txf.t0 + 3 * HOUR_MS, txf.t0 + 48 * HOUR_MS
    assert [r.code for r in run(store, rt.open()).results] == [RC.OK]
    cash = store.balance("BANK01", net.cash)
    hide = lock(txf, "BANK01", cash, "BANK03", instrument=net.cash, until_ms=until)
    assert [r.code for r in run(store, hide, at_ms=2_000).results] == [RC.OK]
    out = run(store, rt.close("R1", "BANK02"), at_ms=HOUR_MS)
    assert [r.code for r in out.results] == [RC.PENDING_SETTLEMENT]
    later = TxFactory(net, now_ms=txf.t0 + HOUR_MS)
    demote = signed(net, set_tier(later, "BANK01", 0))
    freed = release(txf, hide, by="BANK03", expiry_ms=far)
    out = run(store, demote, freed, at_ms=HOUR_MS + 1)
    assert [r.code for r in out.results] == [RC.OK, RC.OK]  # no event: the close waits
    out = run(store, at_ms=2 * HOUR_MS + 1)
    assert [r.code for r in out.results] == [RC.FAILED_DEADLINE]
    rec = repo(store, "R1")
    assert rec is not None and rec.defaulter == "BANK01"


# --- cost: a redemption refused after reading every coupon period --------------------------


def test_a_refused_redemption_does_not_read_every_coupon_period() -> None:
    """Attack: a bond paying monthly for 99 years (1,188 periods, within
    SCHEDULE_PERIODS_MAX) has matured with every coupon paid. Any participant that may
    hold signs Redeem of it again and again with fresh nonces: for a holding already
    redeemed (ALREADY_PAID) or one with no units (INSUFFICIENT_SECURITIES) execution
    first read all 1,187 earlier periods' records. Measured: a block of 2,000 such
    Redeems took 5 s to execute against 0.1 s for 2,000 transfers, on every validator.
    Impact: throughput collapse from one client. Severity: medium (cost)."""
    net = life_net(coupon_freq=12, maturity_date="2125-01-15")
    store, lt = MemoryStore(net.genesis), LifeTx(net)
    periods = len(Registry.of(store).schedules[net.bonds[0]])
    assert periods == 1_188
    t = at("2125-01-15")
    coupons = [lt.coupon(k) for k in range(1, periods)]
    assert {r.code for r in run_at(store, t, *coupons).results} == {RC.OK}
    assert [r.code for r in run_at(store, t + 1, lt.redeem("BANK01")).results] == [RC.OK]
    view = CountingView(store)
    again, none = lt.redeem("BANK01"), lt.redeem("CSD")  # CSD may hold; it holds none
    out = apply_block(view, [again, none], BlockContext(store.head().height + 1, t + 2))  # type: ignore[arg-type]
    assert [r.code for r in out.results] == [RC.ALREADY_PAID, RC.INSUFFICIENT_SECURITIES]
    assert view.reads < 50


def test_a_redemption_refused_for_the_latest_unpaid_coupon_reads_few_periods() -> None:
    """The same spam by a holder with units while the agent has paid every period but
    the latest: COUPON_OUTSTANDING was found after reading the 1,185 paid ones first.
    Severity: medium (cost)."""
    net = life_net(coupon_freq=12, maturity_date="2125-01-15")
    store, lt = MemoryStore(net.genesis), LifeTx(net)
    t = at("2125-01-15")
    coupons = [lt.coupon(k) for k in range(1, 1_186)]  # 1,186 and 1,187 unpaid
    assert {r.code for r in run_at(store, t, *coupons).results} == {RC.OK}
    view = CountingView(store)
    raw = lt.redeem("BANK01")
    out = apply_block(view, [raw], BlockContext(store.head().height + 1, t + 1))  # type: ignore[arg-type]
    assert [r.code for r in out.results] == [RC.COUPON_OUTSTANDING]
    assert view.reads < 50
