"""A lock securing a repo (issue 18: docs/ledger.md "Locks and swaps" and "Repo"): made only
while the repo is live and between its two parties; claimable once the repo DEFAULTED with
the lock's holder as its defaulter, and never when it closed. Each refusal has its
negative control; codes are named, never numbered.

The repo under test is BANK01 (borrower) selling 1,000 units of the first bond to BANK02
(lender), closing an hour after it opens and defaulting two hours after; the pledges are
5,000 units of the second bond. Every demo bank starts with 10,000,000 units of each bond
and 1,000,000,000 cents.
"""

from __future__ import annotations

import pytest

from client import InvalidFieldError, ParticipantKey, SignedTransaction, Transactions, terms_of
from client._cli_lock import _secures as secures_cell
from client._cli_lock import describe
from client.cli import main
from node.config import ID_BYTES_MAX, SECURED_REF_BYTES_MAX
from node.genesis import DemoNetwork
from node.settlement import Lock, RecordKind, RepoStatus, ResultCode, Secured, SecuredKind, repo
from node.settlement import _lock as lock_mod
from node.store import MemoryStore
from tests.freeze_helpers import freeze, unfreeze
from tests.ledger_helpers import TxFactory
from tests.lock_helpers import claim, lock, release
from tests.repo_helpers import EXPIRY_MS, HOUR_MS, PURCHASE, RepoTx
from tests.unit.test_lock import events, own, run

RC = ResultCode
T1 = 1_000  # the open's block, ms after genesis
PLEDGE = 5_000
_HELD = 10_000_000


def _by_repo(repo_id: str) -> Secured:
    return Secured(SecuredKind.REPO, repo_id.encode("ascii"))


@pytest.fixture
def rtx(net: DemoNetwork) -> RepoTx:
    return RepoTx(net, net.genesis.genesis_time_ms + T1)


@pytest.fixture
def late(net: DemoNetwork, rtx: RepoTx) -> TxFactory:
    """Transactions that stay unexpired past the repo's default deadline."""
    return TxFactory(net, now_ms=rtx.t0 + 3 * HOUR_MS)


def _pledge(
    txf: TxFactory, net: DemoNetwork, holder: str, beneficiary: str, repo_id: str = "R1"
) -> bytes:
    """``holder`` pledges 5,000 of the second bond to ``beneficiary``, securing
    ``repo_id``, in force until four hours after genesis (past the default deadline)."""
    until = net.genesis.genesis_time_ms + 4 * HOUR_MS
    return lock(
        txf, holder, PLEDGE, beneficiary, instrument=net.bonds[1], secures=_by_repo(repo_id),
        until_ms=until, expiry_ms=EXPIRY_MS,
    )  # fmt: skip


def _close_pending(store: MemoryStore, rtx: RepoTx, late: TxFactory, net: DemoNetwork) -> None:
    """The borrower keeps only the purchase amount (short of the interest), so the close
    signed by the lender at the close time waits for it."""
    amount = store.balance("BANK01", net.cash) - PURCHASE
    drain = late.signed(late.transfer("BANK01", "BANK05", amount))
    assert own(run(store, drain, at_ms=T1 + 1)) == [RC.OK]
    out = run(store, rtx.close("R1", "BANK02"), at_ms=T1 + HOUR_MS)
    assert own(out) == [RC.PENDING_SETTLEMENT]


def _claim(late: TxFactory, pledge: bytes, beneficiary: str) -> bytes:
    return claim(late, pledge, beneficiary, expiry_ms=EXPIRY_MS)


# --- making the lock ---------------------------------------------------------------------


def test_a_lock_secures_an_open_repo_between_its_two_parties_either_way_round(
    store: MemoryStore, txf: TxFactory, rtx: RepoTx, net: DemoNetwork
) -> None:
    assert own(run(store, rtx.open(), at_ms=T1)) == [RC.OK]
    out = run(
        store,
        _pledge(txf, net, "BANK01", "BANK02"),  # the borrower pledges more to the lender
        _pledge(txf, net, "BANK02", "BANK01"),  # the lender pledges to the borrower
        _pledge(txf, net, "BANK03", "BANK02"),  # a holder who is not a party
        _pledge(txf, net, "BANK01", "BANK03"),  # a beneficiary who is not a party
        at_ms=T1 + 1,
    )
    assert own(out) == [RC.OK, RC.OK, RC.INVALID_LOCK_TERMS, RC.INVALID_LOCK_TERMS]
    assert lock_mod.locked(store, "BANK01", net.bonds[1]) == PLEDGE
    assert [k.secures for k in lock_mod.locks(store)] == [_by_repo("R1")] * 2


def test_a_lock_naming_no_live_repo_is_not_pending(
    store: MemoryStore, txf: TxFactory, rtx: RepoTx, net: DemoNetwork
) -> None:
    run(store, rtx.open("R1"), rtx.open("R2"), at_ms=T1)
    closed = run(store, rtx.close("R2"), at_ms=T1 + 1)  # both sign: closes early, at once
    assert own(closed) == [RC.OK]
    out = run(
        store,
        _pledge(txf, net, "BANK01", "BANK02", "R9"),  # never opened
        _pledge(txf, net, "BANK01", "BANK02", "R2"),  # closed
        lock(txf, "BANK01", 5, "BANK02", secures=Secured(SecuredKind.REPO, b"\xff")),  # no id
        _pledge(txf, net, "BANK01", "BANK02", "R1"),  # the control: open
        at_ms=T1 + 2,
    )
    assert own(out) == [RC.NOT_PENDING, RC.NOT_PENDING, RC.NOT_PENDING, RC.OK]


def test_a_closing_repo_may_still_be_secured_a_defaulted_one_not(
    store: MemoryStore, txf: TxFactory, rtx: RepoTx, late: TxFactory, net: DemoNetwork
) -> None:
    run(store, rtx.open(), at_ms=T1)
    _close_pending(store, rtx, late, net)
    assert repo(store, "R1").status is RepoStatus.CLOSING  # type: ignore[union-attr]
    assert own(run(store, _pledge(late, net, "BANK01", "BANK02"), at_ms=T1 + HOUR_MS + 1)) == [
        RC.OK
    ]
    assert events(run(store, at_ms=T1 + 2 * HOUR_MS + 1)) == [RC.FAILED_DEADLINE]
    after = run(store, _pledge(late, net, "BANK01", "BANK02"), at_ms=T1 + 2 * HOUR_MS + 2)
    assert own(after) == [RC.NOT_PENDING]


def test_the_longest_repo_id_fits_a_secured_reference(
    store: MemoryStore, txf: TxFactory, rtx: RepoTx, net: DemoNetwork
) -> None:
    assert SECURED_REF_BYTES_MAX >= ID_BYTES_MAX
    longest = "R" * ID_BYTES_MAX
    assert own(run(store, rtx.open(longest), at_ms=T1)) == [RC.OK]
    pledge = _pledge(txf, net, "BANK01", "BANK02", longest)
    assert own(run(store, pledge, at_ms=T1 + 1)) == [RC.OK]
    assert lock_mod.locks(store)[0].secures == _by_repo(longest)


# --- the default and the claim -----------------------------------------------------------


def test_the_lender_claims_the_borrowers_pledge_when_the_repo_defaults(
    store: MemoryStore, txf: TxFactory, rtx: RepoTx, late: TxFactory, net: DemoNetwork
) -> None:
    bill = net.bonds[1]
    run(store, rtx.open(), at_ms=T1)
    pledge, other = _pledge(txf, net, "BANK01", "BANK02"), _pledge(txf, net, "BANK02", "BANK01")
    assert own(run(store, pledge, other, at_ms=T1 + 1)) == [RC.OK, RC.OK]
    _close_pending(store, rtx, late, net)
    early = run(store, _claim(late, pledge, "BANK02"), at_ms=T1 + HOUR_MS + 1)
    assert own(early) == [RC.NOT_CLAIMABLE]  # control: closing, no default yet
    assert events(run(store, at_ms=T1 + 2 * HOUR_MS + 1)) == [RC.FAILED_DEADLINE]
    rec = repo(store, "R1")
    assert rec is not None and (rec.status, rec.defaulter) == (RepoStatus.DEFAULTED, "BANK01")
    assert lock_mod.defaulters(store, _by_repo("R1")) == ("BANK01",)
    out = run(
        store,
        _claim(late, other, "BANK01"),  # the lender did not default: its pledge stays
        _claim(late, pledge, "BANK03"),  # only the beneficiary claims
        _claim(late, pledge, "BANK02"),
        at_ms=T1 + 2 * HOUR_MS + 2,
    )
    assert own(out) == [RC.NOT_CLAIMABLE, RC.UNAUTHORIZED, RC.OK]
    assert store.balance("BANK02", bill) == _HELD + PLEDGE  # its own pledge stays, locked
    assert store.balance("BANK01", bill) == _HELD - PLEDGE
    assert lock_mod.locked(store, "BANK01", bill) == 0
    assert lock_mod.locked(store, "BANK02", bill) == PLEDGE


def test_a_repo_nobody_closed_lapses_and_the_pledge_of_the_borrower_who_could_not_pay_is_claimable(
    store: MemoryStore, txf: TxFactory, rtx: RepoTx, late: TxFactory, net: DemoNetwork
) -> None:
    """Session 31: before, a repo nobody closed stayed OPEN for ever and no pledge
    securing it could ever be claimed. Now it lapses past its default deadline, judged as
    a close failing there: the borrower, short of what was due, defaulted."""
    run(store, rtx.open(), at_ms=T1)
    pledge, other = _pledge(txf, net, "BANK01", "BANK02"), _pledge(txf, net, "BANK02", "BANK01")
    assert own(run(store, pledge, other, at_ms=T1 + 1)) == [RC.OK, RC.OK]
    amount = store.balance("BANK01", net.cash) - PURCHASE  # short of the interest
    drain = late.signed(late.transfer("BANK01", "BANK05", amount))
    assert own(run(store, drain, at_ms=T1 + 2)) == [RC.OK]
    early = run(store, _claim(late, pledge, "BANK02"), at_ms=T1 + 2 * HOUR_MS)
    assert own(early) == [RC.NOT_CLAIMABLE]  # control: at the deadline it is still open
    run(store, at_ms=T1 + 2 * HOUR_MS + 1)
    rec = repo(store, "R1")
    assert rec is not None and (rec.status, rec.defaulter) == (RepoStatus.DEFAULTED, "BANK01")
    out = run(
        store, _claim(late, other, "BANK01"), _claim(late, pledge, "BANK02"),
        at_ms=T1 + 2 * HOUR_MS + 2,
    )  # fmt: skip
    assert own(out) == [RC.NOT_CLAIMABLE, RC.OK]


def test_a_lender_who_cannot_deliver_the_collateral_back_loses_its_pledge(
    store: MemoryStore, txf: TxFactory, rtx: RepoTx, late: TxFactory, net: DemoNetwork
) -> None:
    bond, bill = net.bonds
    run(store, rtx.open(), at_ms=T1)
    pledge = _pledge(txf, net, "BANK02", "BANK01")
    sold = late.transfer("BANK02", "BANK05", store.balance("BANK02", bond), instrument=bond)
    assert own(run(store, pledge, late.signed(sold), at_ms=T1 + 1)) == [RC.OK, RC.OK]
    assert own(run(store, rtx.close("R1", "BANK01"), at_ms=T1 + HOUR_MS)) == [RC.PENDING_SETTLEMENT]
    assert events(run(store, at_ms=T1 + 2 * HOUR_MS + 1)) == [RC.FAILED_DEADLINE]
    assert own(run(store, _claim(late, pledge, "BANK01"), at_ms=T1 + 2 * HOUR_MS + 2)) == [RC.OK]
    assert store.balance("BANK01", bill) == _HELD + PLEDGE


def test_a_repo_that_closes_records_no_default_and_its_pledge_is_not_claimable(
    store: MemoryStore, txf: TxFactory, rtx: RepoTx, late: TxFactory, net: DemoNetwork
) -> None:
    run(store, rtx.open(), at_ms=T1)
    pledge = _pledge(txf, net, "BANK01", "BANK02")
    run(store, pledge, at_ms=T1 + 1)
    assert own(run(store, rtx.close("R1", "BANK02"), at_ms=T1 + HOUR_MS)) == [RC.OK]
    assert repo(store, "R1").status is RepoStatus.CLOSED  # type: ignore[union-attr]
    out = run(store, _claim(late, pledge, "BANK02"), at_ms=T1 + 2 * HOUR_MS + 2)
    assert own(out) == [RC.NOT_CLAIMABLE]
    assert lock_mod.defaulters(store, _by_repo("R1")) == ()
    assert store.balance("BANK01", net.bonds[1]) == _HELD
    # The lender, its beneficiary, frees the pledge once the repo is done.
    freed = run(store, release(late, pledge, by="BANK02", expiry_ms=EXPIRY_MS), at_ms=T1 + 3)
    assert own(freed) == [RC.OK] and lock_mod.locks(store) == []


def test_a_default_with_no_lock_securing_the_repo_writes_no_lock_record(
    store: MemoryStore, rtx: RepoTx, late: TxFactory, net: DemoNetwork
) -> None:
    run(store, rtx.open(), at_ms=T1)
    _close_pending(store, rtx, late, net)
    assert events(run(store, at_ms=T1 + 2 * HOUR_MS + 1)) == [RC.FAILED_DEADLINE]
    assert repo(store, "R1").status is RepoStatus.DEFAULTED  # type: ignore[union-attr]
    assert list(store.records(bytes([RecordKind.LOCK_DEFAULT]))) == []


# --- SDK and CLI ---------------------------------------------------------------------------


def test_the_lock_builder_takes_a_repo_id_as_secures(net: DemoNetwork) -> None:
    txs, bond = Transactions(net.genesis), net.bonds[0]
    tx = txs.lock("BANK01", bond, 5, "BANK02", 10**13, "R1")
    assert tx.secures == _by_repo("R1")
    terms = terms_of(tx)
    assert describe(terms).endswith(" securing repo R1")
    assert _by_repo("R1") != Secured(SecuredKind.PENDING_DVP, b"R1")  # the kind tells them apart
    with pytest.raises(InvalidFieldError) as e:
        txs.lock("BANK01", bond, 5, "BANK02", 10**13, "not an id!")
    assert e.value.field == "secures"


def test_lock_list_shows_a_repo_by_its_id() -> None:
    assert secures_cell("REPO", b"R1") == "REPO R1"
    assert secures_cell("PENDING_DVP", bytes(32)) == "PENDING_DVP " + "0" * 16


_CREATE = ["lock", "create", "--holder", "BANK01", "--beneficiary", "BANK02", "--instrument"]


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (["--secures", "ab" * 32, "--secures-repo", "R1"], "not allowed with argument"),
        (["--secures-repo", "not an id"], "is not an id"),
    ],
)
def test_bad_secures_repo_arguments_are_usage_errors(
    capsys: pytest.CaptureFixture[str], extra: list[str], why: str, tmp_path: object
) -> None:
    argv = [*_CREATE, "X", "--amount", "5", "--for-s", "2", *extra]
    assert main(["--run-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and why in err[0], err


def test_lock_create_with_secures_repo_signs_a_lock_securing_that_repo(
    monkeypatch: pytest.MonkeyPatch, net: DemoNetwork, tmp_path: object
) -> None:
    """The CLI without a cluster: genesis and keys from the demo network, a client whose
    reference data is genesis's, the submission captured."""
    import contextlib

    import client._cli_net as cli_net
    from client import Transactions, sign

    class _Client:
        genesis, tx = net.genesis, Transactions(net.genesis)

        def reference(self) -> None:
            pass

        def sign(self, tx: object, *keys: ParticipantKey) -> SignedTransaction:
            return sign(tx, *keys, genesis=net.genesis)  # type: ignore[arg-type]

    sent: list[SignedTransaction] = []
    monkeypatch.setattr(
        cli_net, "_key", lambda args, who, path: ParticipantKey(who, net.participant_keys[who])
    )
    monkeypatch.setattr(cli_net, "_client", lambda *a: contextlib.nullcontext(_Client()))
    monkeypatch.setattr(cli_net, "_submit_with", lambda c, args, stx: sent.append(stx) or 0)
    argv = [*_CREATE, net.bonds[1], "--amount", "5", "--for-s", "60", "--secures-repo", "R1"]
    assert main(["--run-dir", str(tmp_path), *argv]) == 0
    (stx,) = sent
    assert isinstance(stx.tx, Lock) and stx.tx.secures == _by_repo("R1")
    assert stx.tx.required_signers() == ("BANK01", "BANK02")


# --- review 31 (invariants): a freeze is nobody's default --------------------------------


def _frozen_at_the_deadline(
    store: MemoryStore, txf: TxFactory, rtx: RepoTx, late: TxFactory, net: DemoNetwork, *,
    refund: bool,
) -> bytes:  # fmt: skip
    """The lender pledges to the borrower; the close waits for the borrower's cash; in one
    block the borrower gets it back (``refund``) and its account is frozen by the
    compliance officer, so recycling skips the close until the deadline passes. The
    lender's collateral was there all along. Returns the lender's pledge."""
    run(store, rtx.open(), at_ms=T1)
    pledge = _pledge(txf, net, "BANK02", "BANK01")
    assert own(run(store, pledge, at_ms=T1 + 1)) == [RC.OK]
    _close_pending(store, rtx, late, net)
    frozen = late.signed(late.transfer("BANK05", "BANK01", PURCHASE))
    frozen = [frozen] if refund else []
    frz = freeze(late, "BANK01", by="COMPLIANCE", expiry_ms=EXPIRY_MS)
    assert own(run(store, *frozen, frz, at_ms=T1 + HOUR_MS + 1)) == [RC.OK] * (len(frozen) + 1)
    assert events(run(store, at_ms=T1 + 2 * HOUR_MS + 1)) == [RC.FAILED_DEADLINE]
    thaw = unfreeze(late, "BANK01", by="COMPLIANCE", expiry_ms=EXPIRY_MS)
    assert own(run(store, thaw, at_ms=T1 + 2 * HOUR_MS + 2)) == [RC.OK]
    return pledge


def test_a_freeze_that_stops_a_funded_close_makes_nobody_the_defaulter(
    store: MemoryStore, txf: TxFactory, rtx: RepoTx, late: TxFactory, net: DemoNetwork
) -> None:
    """Before the fix the lender was recorded as the defaulter whenever the borrower's
    cash was there, so a freeze of the borrower (a compliance officer's, colluding or
    not) made the lender lose its pledge though its collateral never left it."""
    pledge = _frozen_at_the_deadline(store, txf, rtx, late, net, refund=True)
    rec = repo(store, "R1")
    assert rec is not None and (rec.status, rec.defaulter) == (RepoStatus.DEFAULTED, "")
    assert lock_mod.defaulters(store, _by_repo("R1")) == ()
    out = run(store, _claim(late, pledge, "BANK01"), at_ms=T1 + 2 * HOUR_MS + 3)
    assert own(out) == [RC.NOT_CLAIMABLE]
    assert store.balance("BANK02", net.bonds[1]) == _HELD  # the lender keeps its pledge


def test_a_borrower_short_at_the_deadline_is_the_defaulter_frozen_or_not(
    store: MemoryStore, txf: TxFactory, rtx: RepoTx, late: TxFactory, net: DemoNetwork
) -> None:
    """Control: the same freeze over a borrower still short of the amount due: its own
    default, whatever the freeze."""
    _frozen_at_the_deadline(store, txf, rtx, late, net, refund=False)
    rec = repo(store, "R1")
    assert rec is not None and (rec.status, rec.defaulter) == (RepoStatus.DEFAULTED, "BANK01")
    assert lock_mod.defaulters(store, _by_repo("R1")) == ("BANK01",)
