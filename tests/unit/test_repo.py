"""Repo (issue 18 item 2, docs/ledger.md "Repo"): one rule per test, each refusal with its
negative control (the same transaction with the one fault removed goes through).

Every demo bank starts with 10,000,000 units of each bond and 1,000,000,000 cents; the
repo under test is BANK01 (borrower) selling 1,000 bond units to BANK02 (lender) for
$1,000,000.00, closing an hour later at 5.00% ACT/360. Codes are named, never numbered.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from node import crypto
from node.access import tx_parties
from node.config import PENDING_AGE_MAX_MS, REPO_LAPSES_PER_BLOCK_MAX, U64_MAX
from node.genesis import DemoNetwork, demo_genesis
from node.settlement import (
    BlockContext,
    BlockOutcome,
    ComplianceRules,
    DecodeError,
    RecordKind,
    Registry,
    RepoClose,
    RepoRecord,
    RepoStatus,
    ResultCode,
    SignedTx,
    TxResult,
    _repo,
    apply_block,
    decode_body,
    encode_body,
    outcome,
    repo,
    repos_of,
    result_leaf,
    results_leaves,
)
from node.store import MemoryStore
from tests.freeze_helpers import freeze
from tests.gov_helpers import set_rules, signed
from tests.kyc_helpers import COSIGN_ABOVE, kyc_net
from tests.ledger_helpers import TxFactory
from tests.life_helpers import BOND_UNITS, LifeTx, at, life_net, run_at
from tests.repo_helpers import EXPIRY_MS, HOUR_MS, PURCHASE, QUANTITY, RepoTx

RC = ResultCode
T1 = 1_000  # the open's block, ms after genesis


def run(store: MemoryStore, *txs: bytes, at_ms: int = T1) -> BlockOutcome:
    """Apply and commit one block at ``genesis time + at_ms``."""
    head = store.head()
    ctx = BlockContext(head.height + 1, store.genesis.genesis_time_ms + at_ms)
    out = apply_block(store, list(txs), ctx)
    store.commit_block(crypto.sha256(b"block", ctx.height.to_bytes(8, "big")), b"", b"", ctx, out)
    return out


def own(out: BlockOutcome) -> list[ResultCode]:
    return [r.code for r in out.results if not r.event]


def events(out: BlockOutcome) -> list[ResultCode]:
    return [r.code for r in out.results if r.event]


@pytest.fixture
def rtx(net: DemoNetwork) -> RepoTx:
    return RepoTx(net, net.genesis.genesis_time_ms + T1)


@pytest.fixture
def opened(store: MemoryStore, rtx: RepoTx) -> MemoryStore:
    assert own(run(store, rtx.open())) == [RC.OK]
    return store


def holdings(store: MemoryStore, net: DemoNetwork) -> dict[tuple[str, str], int]:
    return {
        (p, i): store.balance(p, i)
        for p in ("BANK01", "BANK02", "BANK03")
        for i in (net.bonds[0], net.cash)
    }


def tid(raw: bytes) -> bytes:
    return SignedTx.decode(raw).tx_id


# --- interest: ACT/360, milliseconds, round half up --------------------------------------


def test_interest_worked_examples_from_docs() -> None:
    # $1,000,000.00 at 5.00% for one hour: 578.7037... cents -> 579.
    assert _repo.interest(100_000_000, 500, HOUR_MS) == 579
    # $1,000,000.00 at 5.25% for one day: 14,583.33... cents -> 14,583.
    assert _repo.interest(100_000_000, 525, 24 * HOUR_MS) == 14_583
    # $10,000,000.00 at 4.00% for 30 days: 3,333,333.33... cents -> 3,333,333.
    assert _repo.interest(1_000_000_000, 400, 30 * 24 * HOUR_MS) == 3_333_333


def test_interest_rounds_half_up_and_nothing_else_up() -> None:
    half = 10_000 * 360 * 86_400_000 // 2  # 1 cent at 1 bp for this long is exactly 0.5
    assert _repo.interest(1, 1, half) == 1
    assert _repo.interest(1, 1, half - 1) == 0  # 0.4999...: down
    assert _repo.interest(1, 1, 3 * half) == 2  # 1.5: up
    assert _repo.interest(100_000_000, 0, HOUR_MS) == 0


# --- open --------------------------------------------------------------------------------


def test_open_moves_both_legs_and_records_the_repo(
    store: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    before = holdings(store, net)
    assert own(run(store, rtx.open())) == [RC.OK]
    after = holdings(store, net)
    bond, cash = net.bonds[0], net.cash
    assert after[("BANK01", bond)] == before[("BANK01", bond)] - QUANTITY
    assert after[("BANK02", bond)] == before[("BANK02", bond)] + QUANTITY
    assert after[("BANK01", cash)] == before[("BANK01", cash)] + PURCHASE
    assert after[("BANK02", cash)] == before[("BANK02", cash)] - PURCHASE
    rec = repo(store, "R1")
    assert rec is not None and rec.status is RepoStatus.OPEN
    assert (rec.borrower, rec.lender, rec.open_ms) == ("BANK01", "BANK02", rtx.t0)
    assert [r.id for r in repos_of(store, "BANK01")] == ["R1"]
    assert [r.id for r in repos_of(store, "BANK02")] == ["R1"]
    assert repos_of(store, "BANK03") == []


def test_an_open_the_lender_cannot_pay_moves_nothing_and_records_nothing(
    store: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    before = holdings(store, net)
    too_much = store.balance("BANK02", net.cash) + 1
    assert own(run(store, rtx.open(purchase=too_much, rate_bp=0))) == [RC.INSUFFICIENT_CASH]
    assert holdings(store, net) == before and repo(store, "R1") is None
    # Control: exactly the lender's cash opens (the lender's cash, not the cap, decided).
    assert own(run(store, rtx.open(purchase=too_much - 1, rate_bp=0))) == [RC.OK]


def test_an_open_runs_the_dvp_rules_a_frozen_lender_is_refused(
    store: MemoryStore, rtx: RepoTx, txf: TxFactory, net: DemoNetwork
) -> None:
    assert own(run(store, freeze(txf, "BANK02"))) == [RC.OK]
    before = holdings(store, net)
    assert own(run(store, rtx.open())) == [RC.FROZEN]
    assert holdings(store, net) == before and repo(store, "R1") is None
    assert own(run(store, rtx.open("R2", "BANK01", "BANK03"))) == [RC.OK]  # control


def test_a_repo_id_is_opened_once(opened: MemoryStore, rtx: RepoTx, net: DemoNetwork) -> None:
    before = holdings(opened, net)
    assert own(run(opened, rtx.open("R1", "BANK03", "BANK02"))) == [RC.REPO_EXISTS]
    assert holdings(opened, net) == before
    assert own(run(opened, rtx.open("R2", "BANK03", "BANK02"))) == [RC.OK]  # control


@pytest.mark.parametrize(
    ("close_in", "default_in", "repurchase", "rate"),
    [
        (0, HOUR_MS, 0, 500),  # the close time is the open's own block time
        (HOUR_MS, HOUR_MS - 1, 0, 500),  # the default deadline before the close time
        (HOUR_MS, HOUR_MS, 100_000_100, 500),  # both a repurchase amount and a rate
    ],
)
def test_terms_that_do_not_hold_together_are_refused(
    store: MemoryStore,
    rtx: RepoTx,
    *,
    close_in: int,
    default_in: int,
    repurchase: int,
    rate: int,
) -> None:
    terms = {"close_ms": rtx.t0 + close_in, "default_ms": rtx.t0 + default_in}
    bad = rtx.open(repurchase=repurchase, rate_bp=rate, **terms)  # type: ignore[arg-type]
    assert own(run(store, bad)) == [RC.REPO_TERMS]
    assert repo(store, "R1") is None
    # Control: a close a millisecond after the open, a deadline at the close, one price.
    fixed = {"close_ms": rtx.t0 + 1, "default_ms": rtx.t0 + 1}
    assert own(run(store, rtx.open(repurchase=repurchase, rate_bp=0, **fixed))) == [RC.OK]  # type: ignore[arg-type]


def test_open_repos_per_party_are_bounded(
    store: MemoryStore, rtx: RepoTx, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_repo, "REPO_OPEN_PER_PARTY_MAX", 1)
    assert own(run(store, rtx.open("R1"))) == [RC.OK]
    assert own(run(store, rtx.open("R2", "BANK01", "BANK03"))) == [RC.REPOS_FULL]
    assert own(run(store, rtx.open("R3", "BANK03", "BANK04"))) == [RC.OK]  # others: room
    assert own(run(store, rtx.close("R1"))) == [RC.OK]
    assert own(run(store, rtx.open("R2", "BANK01", "BANK05"))) == [RC.OK]  # a close frees one


# --- close ---------------------------------------------------------------------------------


def test_an_early_close_that_names_both_parties_needs_both_signatures(
    opened: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    """docs/ledger.md, RepoClose: the signers are ``by``, one or both parties; before the
    close time both must sign. A body naming both but signed by the borrower alone is
    BAD_SIGNATURE (a required signature is missing), not a two-sided early close."""
    chain = net.genesis.chain_id
    tx = RepoClose(chain, 99, EXPIRY_MS, "R1", "BANK01", "BANK02", ("BANK01", "BANK02"))
    assert tx.required_signers() == ("BANK01", "BANK02")
    alone = SignedTx(encode_body(tx), ()).with_signature("BANK01", net.participant_keys["BANK01"])
    before = holdings(opened, net)
    assert own(run(opened, alone.encode(), at_ms=T1 + 1)) == [RC.BAD_SIGNATURE]
    assert holdings(opened, net) == before
    rec = repo(opened, "R1")
    assert rec is not None and rec.status is RepoStatus.OPEN


def test_a_one_sided_early_close_is_refused_a_two_sided_one_closes(
    opened: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    before = holdings(opened, net)
    for side in ("BANK01", "BANK02"):
        assert own(run(opened, rtx.close("R1", side), at_ms=T1 + 1)) == [RC.EARLY_CLOSE_ONE_SIDED]
    assert holdings(opened, net) == before
    assert own(run(opened, rtx.close("R1"), at_ms=T1 + 1)) == [RC.OK]  # control: both sign
    rec = repo(opened, "R1")
    assert rec is not None and rec.status is RepoStatus.CLOSED
    assert rec.close_amount == PURCHASE  # 1 ms of 5%: 0.0000016 cents rounds to nothing


def test_either_party_alone_closes_at_the_close_time_at_purchase_plus_interest(
    store: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    for repo_id, closer in (("R1", "BANK01"), ("R2", "BANK02")):
        assert own(run(store, rtx.open(repo_id), at_ms=T1)) == [RC.OK]
        before = holdings(store, net)
        assert own(run(store, rtx.close(repo_id, closer), at_ms=T1 + HOUR_MS)) == [RC.OK]
        after = holdings(store, net)
        bond, cash = net.bonds[0], net.cash
        assert after[("BANK01", bond)] == before[("BANK01", bond)] + QUANTITY
        assert after[("BANK02", cash)] == before[("BANK02", cash)] + PURCHASE + 579
        assert after[("BANK01", cash)] == before[("BANK01", cash)] - PURCHASE - 579
        rec = repo(store, repo_id)
        assert rec is not None and rec.status is RepoStatus.CLOSED
        assert (rec.close_amount, rec.closed_ms) == (PURCHASE + 579, rtx.t0 + HOUR_MS)
        store = MemoryStore(net.genesis)  # the second closer on a fresh ledger


def test_a_late_close_accrues_no_interest_past_the_close_time(
    opened: MemoryStore, rtx: RepoTx
) -> None:
    assert own(run(opened, rtx.close("R1", "BANK02"), at_ms=T1 + HOUR_MS + 1_800_000)) == [RC.OK]
    rec = repo(opened, "R1")
    assert rec is not None and rec.close_amount == PURCHASE + 579


def test_a_fixed_repurchase_amount_is_paid_as_is(store: MemoryStore, rtx: RepoTx) -> None:
    assert own(run(store, rtx.open(repurchase=100_000_123, rate_bp=0))) == [RC.OK]
    assert own(run(store, rtx.close("R1", "BANK01"), at_ms=T1 + HOUR_MS)) == [RC.OK]
    rec = repo(store, "R1")
    assert rec is not None and rec.close_amount == 100_000_123


def test_a_close_twice_is_refused_and_moves_nothing(
    opened: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    assert own(run(opened, rtx.close("R1", "BANK01"), at_ms=T1 + HOUR_MS)) == [RC.OK]
    before = holdings(opened, net)
    assert own(run(opened, rtx.close("R1", "BANK02"), at_ms=T1 + HOUR_MS + 1)) == [RC.REPO_NOT_OPEN]
    assert holdings(opened, net) == before


def test_a_close_in_the_same_block_twice_moves_once(
    opened: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    before = holdings(opened, net)
    two = (rtx.close("R1", "BANK01"), rtx.close("R1", "BANK02"))
    assert own(run(opened, *two, at_ms=T1 + HOUR_MS)) == [RC.OK, RC.REPO_NOT_OPEN]
    assert (
        holdings(opened, net)[("BANK01", net.bonds[0])]
        == before[("BANK01", net.bonds[0])] + QUANTITY
    )


def test_an_unknown_repo_and_a_third_party_are_refused(opened: MemoryStore, rtx: RepoTx) -> None:
    assert own(run(opened, rtx.close("R9", "BANK01"), at_ms=T1 + HOUR_MS)) == [RC.NO_SUCH_REPO]
    assert own(run(opened, rtx.close("R1", "BANK03"), at_ms=T1 + HOUR_MS)) == [RC.UNAUTHORIZED]
    assert own(run(opened, rtx.close("R1", "BANK01"), at_ms=T1 + HOUR_MS)) == [RC.OK]  # control


# --- pending close and default -------------------------------------------------------------


def _drain(store: MemoryStore, txf: TxFactory, net: DemoNetwork, keep: int) -> None:
    """Leave BANK01 (the borrower) ``keep`` cents: it sends the rest to BANK05."""
    amount = store.balance("BANK01", net.cash) - keep
    assert own(run(store, txf.signed(txf.transfer("BANK01", "BANK05", amount)), at_ms=T1 + 1)) == [
        RC.OK
    ]


def _fund(txf: TxFactory, amount: int) -> bytes:
    return txf.signed(txf.transfer("BANK05", "BANK01", amount, expiry_ms=EXPIRY_MS))


def test_a_pending_close_settles_when_the_borrower_can_pay(
    opened: MemoryStore, rtx: RepoTx, txf: TxFactory, net: DemoNetwork
) -> None:
    txf = TxFactory(net, now_ms=rtx.t0 + HOUR_MS)
    _drain(opened, txf, net, keep=PURCHASE)  # 579 cents short of the interest
    close = rtx.close("R1", "BANK02")
    assert own(run(opened, close, at_ms=T1 + HOUR_MS)) == [RC.PENDING_SETTLEMENT]
    rec = repo(opened, "R1")
    assert rec is not None and rec.status is RepoStatus.CLOSING
    assert opened.balance("BANK02", net.bonds[0]) >= QUANTITY  # nothing moved yet
    assert own(run(opened, rtx.close("R1", "BANK01"), at_ms=T1 + HOUR_MS + 1)) == [RC.REPO_NOT_OPEN]
    out = run(opened, _fund(txf, 578), at_ms=T1 + HOUR_MS + 2)
    assert events(out) == [] and repo(opened, "R1").status is RepoStatus.CLOSING  # type: ignore[union-attr]
    out = run(opened, _fund(txf, 1), at_ms=T1 + HOUR_MS + 3)  # now exactly enough
    assert events(out) == [RC.OK]
    rec = repo(opened, "R1")
    assert rec is not None and rec.status is RepoStatus.CLOSED
    assert opened.balance("BANK01", net.cash) == 0
    found = outcome(opened, tid(close))
    assert found is not None and found.code is RC.OK  # GetTransaction's final outcome


def test_an_unpaid_close_defaults_at_the_deadline_and_the_lender_keeps_the_collateral(
    opened: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    txf = TxFactory(net, now_ms=rtx.t0 + HOUR_MS)
    _drain(opened, txf, net, keep=PURCHASE)
    close = rtx.close("R1", "BANK02")
    assert own(run(opened, close, at_ms=T1 + HOUR_MS)) == [RC.PENDING_SETTLEMENT]
    before = holdings(opened, net)
    out = run(opened, at_ms=T1 + 2 * HOUR_MS)  # the deadline itself: still waiting
    assert events(out) == []
    out = run(opened, at_ms=T1 + 2 * HOUR_MS + 1)
    assert events(out) == [RC.FAILED_DEADLINE]
    assert holdings(opened, net) == before  # the lender keeps the bonds, the borrower the cash
    rec = repo(opened, "R1")
    assert rec is not None and rec.status is RepoStatus.DEFAULTED
    assert (rec.defaulter, rec.closed_ms) == ("BANK01", rtx.t0 + 2 * HOUR_MS + 1)
    found = outcome(opened, tid(close))
    assert found is not None and found.code is RC.FAILED_DEADLINE
    # A close after the default: refused, nothing moves, even once the borrower could pay.
    assert own(run(opened, _fund(txf, 10_000), rtx.close("R1"), at_ms=T1 + 3 * HOUR_MS)) == [
        RC.OK,
        RC.REPO_NOT_OPEN,
    ]
    assert repo(opened, "R1").status is RepoStatus.DEFAULTED  # type: ignore[union-attr]
    assert list(opened.records(bytes([RecordKind.REPO_CLOSE_TX]))) == []


def test_a_close_after_the_deadline_that_cannot_pay_defaults_in_its_own_block(
    opened: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    txf = TxFactory(net, now_ms=rtx.t0 + HOUR_MS)
    _drain(opened, txf, net, keep=0)
    out = run(opened, rtx.close("R1", "BANK02"), at_ms=T1 + 3 * HOUR_MS)
    assert (own(out), events(out)) == ([RC.PENDING_SETTLEMENT], [RC.FAILED_DEADLINE])
    assert repo(opened, "R1").status is RepoStatus.DEFAULTED  # type: ignore[union-attr]


# --- session 31: a repo nobody closes lapses at its default deadline --------------------


def _live(store: MemoryStore, party: str = "") -> int:
    return _repo._count(store, party)


def test_an_open_repo_nobody_closes_lapses_after_its_default_deadline(
    opened: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    """No close was submitted: at the deadline instant the repo is still open (a close
    could still come); in the first block past it, it is DEFAULTED, nothing moves, the
    record states the amount that was due, and both parties' live-repo slots are free.
    Both legs were there, so it is nobody's default (no pledge becomes claimable)."""
    before = holdings(opened, net)
    assert events(run(opened, at_ms=T1 + 2 * HOUR_MS)) == []
    rec = repo(opened, "R1")
    assert rec is not None and rec.status is RepoStatus.OPEN  # control: at the deadline
    assert (_live(opened), _live(opened, "BANK01"), _live(opened, "BANK02")) == (1, 1, 1)
    out = run(opened, at_ms=T1 + 2 * HOUR_MS + 1)
    assert events(out) == [RC.REPO_LAPSED]  # review 32: an event says it (below)
    rec = repo(opened, "R1")
    assert rec is not None and rec.status is RepoStatus.DEFAULTED
    assert (rec.closed_ms, rec.defaulter) == (rtx.t0 + 2 * HOUR_MS + 1, "")
    assert rec.close_amount == PURCHASE + 579  # interest stopped at the close time
    assert holdings(opened, net) == before
    assert (_live(opened), _live(opened, "BANK01"), _live(opened, "BANK02")) == (0, 0, 0)
    assert list(opened.records(bytes([RecordKind.REPO_DUE]))) == []
    assert own(run(opened, rtx.close("R1"), at_ms=T1 + 3 * HOUR_MS)) == [RC.REPO_NOT_OPEN]


def test_a_lapsed_repo_names_the_borrower_whose_cash_was_not_there(
    opened: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    txf = TxFactory(net, now_ms=rtx.t0 + HOUR_MS)
    _drain(opened, txf, net, keep=PURCHASE)  # 579 cents short of what is due
    run(opened, at_ms=T1 + 2 * HOUR_MS + 1)
    rec = repo(opened, "R1")
    assert rec is not None and (rec.status, rec.defaulter) == (RepoStatus.DEFAULTED, "BANK01")


def test_a_close_in_the_block_that_passes_the_deadline_still_runs_before_the_lapse(
    opened: MemoryStore, rtx: RepoTx
) -> None:
    out = run(opened, rtx.close("R1", "BANK02"), at_ms=T1 + 2 * HOUR_MS + 1)
    assert (own(out), events(out)) == ([RC.OK], [])
    assert repo(opened, "R1").status is RepoStatus.CLOSED  # type: ignore[union-attr]


def test_repos_lapse_in_deadline_order_and_only_once_due(store: MemoryStore, rtx: RepoTx) -> None:
    """Three repos with three deadlines: each block lapses exactly those past theirs (the
    next-due bound skips the index until one is), and a repo whose close is pending is
    left to its close."""
    d1, d2, d3 = (rtx.t0 + k * HOUR_MS for k in (2, 3, 4))
    opens = [rtx.open(r, default_ms=d) for r, d in (("R3", d3), ("R1", d1), ("R2", d2))]
    assert own(run(store, *opens)) == [RC.OK] * 3

    def status() -> list[str]:
        return [repo(store, r).status.name for r in ("R1", "R2", "R3")]  # type: ignore[union-attr]

    op, d = "OPEN", "DEFAULTED"
    run(store, at_ms=T1 + 2 * HOUR_MS)
    assert status() == [op, op, op]
    run(store, at_ms=T1 + 2 * HOUR_MS + 1)
    assert status() == [d, op, op]
    run(store, at_ms=T1 + 3 * HOUR_MS)
    assert status() == [d, op, op]
    run(store, at_ms=T1 + 5 * HOUR_MS)
    assert status() == [d, d, d]
    assert list(store.records(bytes([RecordKind.REPO_NEXT_DUE]))) == []


def test_a_close_refused_matured_at_the_maturity_leaves_no_repo_open() -> None:
    """The review's finding: a close submitted once the collateral has matured is refused
    MATURED (a matured bond is not delivered in a trade). The repo can no longer stay OPEN
    for good: its default deadline is before the maturity (REPO_TERMS otherwise), so it
    lapses at the end of that very block and frees both parties' slots."""
    net = life_net()
    store = MemoryStore(net.genesis)
    rtx = RepoTx(net, at("2027-01-14"))
    maturity = at("2027-01-15")
    opened = rtx.open(close_ms=maturity - HOUR_MS, default_ms=maturity - 1)
    assert own(run_at(store, rtx.t0, opened)) == [RC.OK]
    out = run_at(store, maturity, rtx.close("R1"))
    assert own(out) == [RC.MATURED]
    rec = repo(store, "R1")
    assert rec is not None and rec.status is RepoStatus.DEFAULTED
    assert _repo._count(store, "") == 0


def test_a_pending_close_the_new_rules_refuse_reopens_the_repo_for_a_close_that_meets_them(
    opened: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    """Session 31: recycling applies the rules in force when the close settles. Governance
    puts a co-signature threshold below the amount due while the close waits: the close
    ends COSIGN_REQUIRED and moves nothing, and the repo is OPEN again (as when a close is
    refused so at submission), awaiting its lapse; a co-signed close then settles."""
    txf = TxFactory(net, now_ms=rtx.t0 + HOUR_MS)
    _drain(opened, txf, net, keep=PURCHASE)
    close = rtx.close("R1", "BANK02")
    assert own(run(opened, close, at_ms=T1 + HOUR_MS)) == [RC.PENDING_SETTLEMENT]
    assert list(opened.records(bytes([RecordKind.REPO_DUE]))) == []  # closing: not due
    rules = ComplianceRules.of({}, (), {net.cash: PURCHASE})  # the close owes 579 more
    out = run(
        opened, signed(net, set_rules(txf, rules)), _fund(txf, 10_000), at_ms=T1 + HOUR_MS + 1
    )
    assert (own(out), events(out)) == ([RC.OK, RC.OK], [RC.COSIGN_REQUIRED])
    rec = repo(opened, "R1")
    assert rec is not None and (rec.status, rec.close_amount) == (RepoStatus.OPEN, 0)
    assert list(opened.records(bytes([RecordKind.REPO_CLOSE_TX]))) == []
    assert len(list(opened.records(bytes([RecordKind.REPO_DUE])))) == 1
    both = ("BANK01", "BANK02")
    cosigned = RepoClose(net.genesis.chain_id, 77, EXPIRY_MS, "R1", *both, both, "COMPLIANCE")
    assert own(run(opened, rtx.signed(cosigned), at_ms=T1 + HOUR_MS + 2)) == [RC.OK]
    assert repo(opened, "R1").status is RepoStatus.CLOSED  # type: ignore[union-attr]


def test_a_lender_who_cannot_deliver_is_the_defaulter(
    opened: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    txf = TxFactory(net, now_ms=rtx.t0 + HOUR_MS)
    sold = opened.balance("BANK02", net.bonds[0])  # the lender sells all of it (title is its)
    move = txf.transfer("BANK02", "BANK05", sold, instrument=net.bonds[0])
    assert own(run(opened, txf.signed(move), at_ms=T1 + 1)) == [RC.OK]
    assert own(run(opened, rtx.close("R1", "BANK01"), at_ms=T1 + HOUR_MS)) == [
        RC.PENDING_SETTLEMENT
    ]
    assert events(run(opened, at_ms=T1 + 2 * HOUR_MS + 1)) == [RC.FAILED_DEADLINE]
    rec = repo(opened, "R1")
    assert rec is not None and (rec.status, rec.defaulter) == (RepoStatus.DEFAULTED, "BANK02")


def test_neither_party_may_hold_or_cancel_a_pending_close(
    opened: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    txf = TxFactory(net, now_ms=rtx.t0 + HOUR_MS)
    _drain(opened, txf, net, keep=PURCHASE)
    close = rtx.close("R1", "BANK01")
    assert own(run(opened, close, at_ms=T1 + HOUR_MS)) == [RC.PENDING_SETTLEMENT]
    hold = txf.signed(txf.hold(tid(close), by="BANK02"))
    cancel = txf.signed(txf.cancel(tid(close), seller="BANK02", buyer="BANK01"))
    assert own(run(opened, hold, cancel, at_ms=T1 + HOUR_MS + 1)) == [
        RC.REPO_CLOSE_PINNED,
        RC.REPO_CLOSE_PINNED,
    ]
    assert events(run(opened, _fund(txf, 579), at_ms=T1 + HOUR_MS + 2)) == [RC.OK]  # settles
    # Control: a hold on an ordinary pending DvP still works (only a repo's is pinned).
    short = txf.signed(txf.pending("BANK05", "BANK03", quantity=20_000_000, amount=5))
    assert own(run(opened, short, at_ms=T1 + HOUR_MS + 3)) == [RC.PENDING_SETTLEMENT]
    hold = txf.signed(txf.hold(tid(short), by="BANK03"))
    assert own(run(opened, hold, at_ms=T1 + HOUR_MS + 4)) == [RC.OK]


# --- encoding ------------------------------------------------------------------------------


def test_repo_bodies_round_trip_and_a_close_needs_sorted_unique_signers(
    rtx: RepoTx, net: DemoNetwork
) -> None:
    tx = rtx.open_tx()
    assert decode_body(encode_body(tx)) == tx
    close = RepoClose(net.genesis.chain_id, 1, 2, "R1", "BANK01", "BANK02", ("BANK01", "BANK02"))
    body = encode_body(close)
    assert decode_body(body) == close
    with pytest.raises(ValueError, match="one or both parties"):
        encode_body(
            RepoClose(net.genesis.chain_id, 1, 2, "R1", "BANK01", "BANK02", ("BANK02", "BANK01"))
        )
    swapped = body.replace(b"\x06BANK01\x06BANK02", b"\x06BANK02\x06BANK01")
    assert swapped != body
    with pytest.raises(DecodeError):
        decode_body(swapped)


# --- manufactured coupons ------------------------------------------------------------------


def test_a_coupon_paid_during_the_repo_is_netted_at_close() -> None:
    net = life_net()
    store = MemoryStore(net.genesis)
    life, rtx = LifeTx(net), RepoTx(net, at("2026-07-14"))
    day = 24 * HOUR_MS
    inst = net.genesis.instruments[0]
    assert own(run_at(store, rtx.t0, rtx.open(close_ms=rtx.t0 + 2 * day))) == [RC.OK]
    lender_cash = store.balance("BANK02", net.cash)
    assert own(run_at(store, at("2026-07-15"), life.coupon(1))) == [RC.OK]
    coupon = _repo.coupon_amount(inst, QUANTITY)
    assert coupon == 2_500  # 1,000 units x 100 cents x 5.00% / 2
    # The lender, holder of record, received the coupon on the repo'd units too ...
    gained = store.balance("BANK02", net.cash) - lender_cash
    assert gained == _repo.coupon_amount(inst, BOND_UNITS + QUANTITY)
    assert own(run_at(store, rtx.t0 + 2 * day, rtx.close("R1", "BANK01"))) == [RC.OK]
    rec = repo(store, "R1")
    gross = PURCHASE + _repo.interest(PURCHASE, 500, 2 * day)
    # ... and pays it back to the borrower by taking it off the repurchase price.
    assert rec is not None and (rec.manufactured, rec.close_amount) == (coupon, gross - coupon)


def test_a_coupon_dated_before_the_open_is_not_netted() -> None:
    net = life_net()
    store = MemoryStore(net.genesis)
    life, rtx = LifeTx(net), RepoTx(net, at("2026-07-16"))
    assert own(run_at(store, at("2026-07-15"), life.coupon(1))) == [RC.OK]
    assert own(run_at(store, rtx.t0, rtx.open())) == [RC.OK]
    assert own(run_at(store, rtx.t0 + HOUR_MS, rtx.close("R1", "BANK02"))) == [RC.OK]
    rec = repo(store, "R1")
    assert rec is not None and (rec.manufactured, rec.close_amount) == (0, PURCHASE + 579)


def test_a_change_of_collateral_carries_the_coupons_so_far_and_keeps_the_amount_due() -> None:
    """``change_collateral`` (what a margin call or substitution records): the coupon
    paid on 15 July is carried, the count restarts at the change, the amount due at that
    moment is the same, and the record round-trips. Carried amounts saturate at the
    record's u64 (the netting never reaches it); control: two below stays exact."""
    net = life_net()
    store = MemoryStore(net.genesis)
    life, rtx = LifeTx(net), RepoTx(net, at("2026-07-14"))
    assert own(run_at(store, rtx.t0, rtx.open(close_ms=at("2026-07-20")))) == [RC.OK]
    assert own(run_at(store, at("2026-07-15"), life.coupon(1))) == [RC.OK]
    reg, rec, now = Registry.of(store), repo(store, "R1"), at("2026-07-16")
    assert rec is not None and rec.counted_from_ms == rtx.t0
    moved = _repo.change_collateral(reg, store, rec, now, bond=rec.bond, quantity=3 * QUANTITY)
    assert (moved.quantity, moved.manufactured_carried, moved.counted_from_ms) == (
        3 * QUANTITY, 2_500, now,
    )  # fmt: skip
    assert _repo.close_amount(reg, store, moved, now) == _repo.close_amount(reg, store, rec, now)
    assert RepoRecord.decode("R1", moved.encode()) == moved
    for carried, expect in ((U64_MAX - 2_499, U64_MAX), (U64_MAX - 2_501, U64_MAX - 1)):
        near = replace(rec, manufactured_carried=carried)
        out = _repo.change_collateral(reg, store, near, now, bond=rec.bond, quantity=QUANTITY)
        assert out.manufactured_carried == expect
        assert RepoRecord.decode("R1", out.encode()) == out


def test_a_repo_closing_at_or_after_the_bonds_maturity_is_refused() -> None:
    net = life_net()
    store = MemoryStore(net.genesis)
    rtx = RepoTx(net, at("2027-01-14"))
    maturity = at("2027-01-15")
    assert own(run_at(store, rtx.t0, rtx.open(close_ms=maturity))) == [RC.REPO_TERMS]
    before = {"close_ms": maturity - 2, "default_ms": maturity - 1}
    assert own(run_at(store, rtx.t0, rtx.open(**before))) == [RC.OK]  # type: ignore[arg-type]


def test_a_repo_whose_default_deadline_reaches_the_bonds_maturity_is_refused() -> None:
    """Session 31: the close may settle until the default deadline, and a matured bond can
    no longer be delivered back; a deadline at or after maturity would leave a close that
    can never settle (and the lender free to redeem the collateral), so it is REPO_TERMS
    even with the close time before maturity. Control: a millisecond before opens."""
    net = life_net()
    store = MemoryStore(net.genesis)
    rtx = RepoTx(net, at("2027-01-14"))
    maturity = at("2027-01-15")
    for default_ms in (maturity, maturity + 30 * 24 * HOUR_MS):
        late = rtx.open(close_ms=maturity - HOUR_MS, default_ms=default_ms)
        assert own(run_at(store, rtx.t0, late)) == [RC.REPO_TERMS]
    assert repo(store, "R1") is None
    ok = rtx.open(close_ms=maturity - HOUR_MS, default_ms=maturity - 1)
    assert own(run_at(store, rtx.t0, ok)) == [RC.OK]


# --- kyc: the AML co-signature ----------------------------------------------------------


def test_a_repo_above_the_aml_threshold_needs_a_compliance_cosigner() -> None:
    net = kyc_net()  # co-sign above COSIGN_ABOVE cents
    store, rtx = MemoryStore(net.genesis), RepoTx(net, net.genesis.genesis_time_ms + T1)
    large = COSIGN_ABOVE + 1
    bare = rtx.open_tx("BIG", purchase=large, rate_bp=0, repurchase=large + 1)
    assert own(run(store, rtx.signed(bare))) == [RC.COSIGN_REQUIRED]
    assert repo(store, "BIG") is None
    cosigned = replace(bare, nonce=bare.nonce + 10_000, cosigner="COMPLIANCE")
    assert cosigned.required_signers() == ("BANK01", "BANK02", "COMPLIANCE")
    assert decode_body(encode_body(cosigned)) == cosigned
    assert own(run(store, rtx.signed(cosigned))) == [RC.OK]
    # The close moves as much: it needs the co-signature too.
    both = ("BANK01", "BANK02")
    close = RepoClose(net.genesis.chain_id, 99, EXPIRY_MS, "BIG", *both, both)
    assert own(run(store, rtx.signed(close), at_ms=T1 + 1)) == [RC.COSIGN_REQUIRED]
    close = replace(close, nonce=100, cosigner="COMPLIANCE")
    assert decode_body(encode_body(close)) == close
    assert own(run(store, rtx.signed(close), at_ms=T1 + 2)) == [RC.OK]
    assert repo(store, "BIG").status is RepoStatus.CLOSED  # type: ignore[union-attr]


def test_a_close_names_the_repos_parties_so_both_read_it(
    opened: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    wrong = rtx.close("R1", "BANK01", parties=("BANK01", "BANK03"))  # not this repo's lender
    assert own(run(opened, wrong, at_ms=T1 + HOUR_MS)) == [RC.UNAUTHORIZED]
    alone = rtx.close("R1", "BANK01")  # the borrower alone, at the close time
    reg = Registry.of(opened)
    assert tx_parties(alone, reg) == {"BANK01", "BANK02"}  # the lender may read it too
    assert own(run(opened, alone, at_ms=T1 + HOUR_MS)) == [RC.OK]


def test_terms_whose_amount_due_could_pass_2_64_are_refused_at_open(
    store: MemoryStore, rtx: RepoTx
) -> None:
    # At the highest rate the wire allows, over a year, a large purchase owes more than
    # 2**64 - 1 by its close time: no close could be paid, so the open is refused.
    year_ms = 365 * 24 * HOUR_MS
    terms = {"rate_bp": 2**32 - 1, "close_ms": rtx.t0 + year_ms}
    big = rtx.open(purchase=10**14, **terms)  # type: ignore[arg-type]
    assert own(run(store, big)) == [RC.REPO_TERMS]
    assert _repo.interest(10**14, 2**32 - 1, year_ms) > U64_MAX - 10**14
    assert own(run(store, rtx.open(purchase=10**6, **terms))) == [RC.OK]  # control: it fits  # type: ignore[arg-type]


# --- review 31 (repo lapse): a block's lapses are bounded --------------------------------


def test_a_block_lapses_at_most_its_bound_and_the_rest_in_the_next_block() -> None:
    """Review 31: every repo past its deadline lapsed in one block, REPO_OPEN_MAX (10,000)
    of them sharing a deadline took a second to apply (more than a full block of
    transactions, past the first view timeout). Now a block lapses at most
    REPO_LAPSES_PER_BLOCK_MAX, in (deadline, id) order, and the next block the rest: 22
    banks open 1,012 repos with one deadline (46 as borrower and 46 as lender each)."""
    net = demo_genesis(validators=4, quorum=3, seed=b"lapse", banks=22)
    store = MemoryStore(net.genesis)
    rtx = RepoTx(net, net.genesis.genesis_time_ms + T1)
    banks, per = net.banks, 46
    ids = [f"R{i:02d}-{k:02d}" for i in range(len(banks)) for k in range(per)]
    lenders = [banks[(i + 1 + k % (len(banks) - 1)) % len(banks)] for i in range(len(banks))
               for k in range(per)]  # fmt: skip
    opens = [rtx.open(r, banks[int(r[1:3])], lend, quantity=10, purchase=1_000)
             for r, lend in zip(ids, lenders, strict=True)]  # fmt: skip
    assert own(run(store, *opens)) == [RC.OK] * len(ids)
    assert len(ids) > REPO_LAPSES_PER_BLOCK_MAX

    def lapsed() -> list[str]:
        return [r for r in ids if repo(store, r).status is RepoStatus.DEFAULTED]  # type: ignore[union-attr]

    run(store, at_ms=T1 + 2 * HOUR_MS)
    assert lapsed() == []  # control: at the deadline instant every one is still open
    out = run(store, at_ms=T1 + 2 * HOUR_MS + 1)
    assert lapsed() == sorted(ids)[:REPO_LAPSES_PER_BLOCK_MAX]  # the bound, in id order
    assert _live(store) == len(ids) - REPO_LAPSES_PER_BLOCK_MAX
    assert events(out) == [RC.REPO_LAPSED] * REPO_LAPSES_PER_BLOCK_MAX  # one event each
    out = run(store, at_ms=T1 + 2 * HOUR_MS + 2)  # the next block goes on: none is left open
    assert lapsed() == ids and _live(store) == 0
    assert events(out) == [RC.REPO_LAPSED] * (len(ids) - REPO_LAPSES_PER_BLOCK_MAX)
    assert list(store.records(bytes([RecordKind.REPO_DUE]))) == []
    assert list(store.records(bytes([RecordKind.REPO_NEXT_DUE]))) == []


# --- review 31 (repo lapse): a close waits until the repo's own default deadline ----------


def _grace_beyond_the_age_bound(store: MemoryStore, rtx: RepoTx, net: DemoNetwork) -> int:
    """A repo whose default deadline is a day more than PENDING_AGE_MAX_MS after its close
    time; the borrower 579 cents short when the lender alone submits the close at the
    close time. Returns the block time (after genesis) a day before the default deadline,
    past the pending book's age bound."""
    close_ms = rtx.t0 + HOUR_MS
    default_ms = close_ms + PENDING_AGE_MAX_MS + 24 * HOUR_MS
    assert own(run(store, rtx.open(close_ms=close_ms, default_ms=default_ms))) == [RC.OK]
    _drain(store, TxFactory(net, now_ms=rtx.t0 + HOUR_MS), net, keep=PURCHASE)
    assert own(run(store, rtx.close("R1", "BANK02"), at_ms=T1 + HOUR_MS)) == [RC.PENDING_SETTLEMENT]
    return T1 + HOUR_MS + PENDING_AGE_MAX_MS + 1


def test_a_lenders_close_does_not_cut_the_borrowers_time_to_the_pending_age_bound(
    store: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    """Review 31: the close's instruction took min(default deadline, PENDING_AGE_MAX_MS
    after it was recorded) as its deadline, so a lender closing alone at the close time
    defaulted a borrower a day before the default deadline the terms give it (and could
    claim its pledges); the close waits until the repo's default deadline, as documented."""
    day_before = _grace_beyond_the_age_bound(store, rtx, net)
    assert events(run(store, at_ms=day_before)) == []
    assert repo(store, "R1").status is RepoStatus.CLOSING  # type: ignore[union-attr]
    funded = _fund(TxFactory(net, now_ms=rtx.t0), 579)
    assert events(run(store, funded, at_ms=day_before + 1)) == [RC.OK]
    assert repo(store, "R1").status is RepoStatus.CLOSED  # type: ignore[union-attr]


def test_a_close_still_unpaid_at_the_default_deadline_defaults(
    store: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    """Control: the same close never funded defaults once the default deadline passes."""
    day_before = _grace_beyond_the_age_bound(store, rtx, net)
    assert events(run(store, at_ms=day_before + 24 * HOUR_MS - 1)) == []  # the deadline
    assert events(run(store, at_ms=day_before + 24 * HOUR_MS)) == [RC.FAILED_DEADLINE]
    rec = repo(store, "R1")
    assert rec is not None and (rec.status, rec.defaulter) == (RepoStatus.DEFAULTED, "BANK01")


# --- review 32 (repo lapse event): a lapse is an event of its block ------------------------


def test_a_lapse_is_an_event_under_the_open_transactions_id(
    store: MemoryStore, rtx: RepoTx, net: DemoNetwork
) -> None:
    """Review 32: a repo that lapsed DEFAULTED left no trace in its block, so a reader of
    blocks (the SDK's BlockView.events, the CLI, the console, an auditor) could not see
    when or why it defaulted. Each lapse is now an event after recycling's, in lapse
    order ((deadline, id)): the code REPO_LAPSED under the RepoOpen's id, tagged as an
    event, in the results the next header certifies. Controls: nothing at the deadline
    instant; a repo that closed, and one still open, have none."""
    d1, d2 = rtx.t0 + 2 * HOUR_MS, rtx.t0 + 3 * HOUR_MS
    opens = [rtx.open("R2", default_ms=d1), rtx.open("R1", default_ms=d1),
             rtx.open("R3", "BANK03", "BANK04", default_ms=d1),
             rtx.open("R4", default_ms=d2)]  # fmt: skip
    short = TxFactory(net, now_ms=rtx.t0).pending(quantity=10**12, amount=5, deadline_ms=d1)
    pending = TxFactory(net, now_ms=rtx.t0).signed(short)
    out = run(store, *opens, pending)
    assert own(out) == [RC.OK] * 4 + [RC.PENDING_SETTLEMENT]
    assert own(run(store, rtx.close("R3", parties=("BANK03", "BANK04")), at_ms=T1 + HOUR_MS)) == [
        RC.OK
    ]  # R3 closed: it never lapses
    assert events(run(store, at_ms=T1 + 2 * HOUR_MS)) == []  # the deadline instant
    out = run(store, at_ms=T1 + 2 * HOUR_MS + 1)
    ev = [(r.tx_id, r.code, r.recorded, r.flag) for r in out.results if r.event]
    assert ev == [
        (tid(pending), RC.FAILED_DEADLINE, False, 2),  # recycling's events come first
        (tid(opens[1]), RC.REPO_LAPSED, False, 2),  # R1 before R2: (deadline, id) order
        (tid(opens[0]), RC.REPO_LAPSED, False, 2),
    ]
    assert [repo(store, r).open_tx for r in ("R1", "R2")] == [tid(opens[1]), tid(opens[0])]  # type: ignore[union-attr]
    assert repo(store, "R4").status is RepoStatus.OPEN  # type: ignore[union-attr]
    lapse = result_leaf(TxResult(tid(opens[1]), RC.REPO_LAPSED, recorded=False, event=True))
    assert results_leaves(out.results, out.parties)[-3] == lapse  # in the certified tree
    out = run(store, at_ms=T1 + 3 * HOUR_MS + 1)
    assert [(r.tx_id, r.code) for r in out.results if r.event] == [(tid(opens[3]), RC.REPO_LAPSED)]
