"""Properties (issue 18, "Bad input and invariants"): locked units never move except by
release or claim, and every instrument is conserved through locks, claims and swaps.

Random histories of blocks mixing locks (plain, or securing a pending DvP or a repo
between the same two parties), releases (by the beneficiary, by the holder, by a
stranger), claims, transfers, DvPs, pending DvPs (mostly short, so they wait and fail at
their deadline), repos and their closes (mostly at a price the borrower cannot pay, so
they default at their deadline) and swaps, between four banks. After every block the
oracle requires:

- every lock present both before and after the block still has its units in its holder's
  balance: the holding's balance is at least the sum of such locks on it;
- a lock that disappeared in the block was released (nothing moved for it) or claimed
  (its units reached the beneficiary), as the block's OK results say;
- each holding's locked total (``LOCK_TOTAL``) is the sum of its locks' amounts;
- no mint or burn is generated, so each instrument's balances sum to its genesis supply.

The negative control runs the oracle with the available-balance check switched off and
requires it to fire.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import crypto
from node.settlement import (
    BlockContext,
    ClaimLock,
    ReleaseLock,
    ResultCode,
    Secured,
    SecuredKind,
    SignedTx,
    _lock,
    apply_block,
    decode_body,
    locked,
    locks,
)
from node.store import MemoryStore
from tests.ledger_helpers import TxFactory, shared_net
from tests.lock_helpers import claim, lock, release, swap
from tests.repo_helpers import RepoTx

NET = shared_net()
BANKS = list(NET.banks[:4])
BOND, BILL, CASH = NET.bonds[0], NET.bonds[1], NET.cash
INSTRUMENTS = (BOND, BILL, CASH)
HELD = 10_000_000

History = list[tuple[int, list[bytes]]]


class _Gen:
    """Draws transactions, remembering the locks and pending trades made so far so that
    releases, claims and secured locks can name them."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw, self.txf = draw, TxFactory(NET)
        self.locks: list[tuple[bytes, str, str]] = []  # (raw lock tx, holder, beneficiary)
        self.trades: list[tuple[bytes, str, str]] = []  # (trade id, seller, buyer)
        self.repos: list[tuple[Secured, str, str]] = []  # (the repo, borrower, lender)
        self.rtx = RepoTx(NET, NET.genesis.genesis_time_ms)
        self.secured: list[tuple[bytes, str]] = []  # (raw lock tx, beneficiary)
        self.now = 0  # the block's time offset: pending deadlines fall a few blocks later

    def tx(self) -> bytes:
        kinds = ["lock", "lock", "release", "claim", "claim", "transfer", "dvp", "pending", "swap"]
        kinds += ["repo", "repo_close", "repo_close"]
        return getattr(self, "_" + self.draw(st.sampled_from(kinds)))()

    def _pair(self) -> tuple[str, str]:
        a, b = self.draw(st.permutations(BANKS))[:2]
        return a, b

    def _lock(self) -> bytes:
        draw, txf = self.draw, self.txf
        amount = draw(st.sampled_from([1, 1_000, HELD // 2, HELD]))
        instrument = draw(st.sampled_from(INSTRUMENTS))
        recent: list[tuple[bytes | Secured, str, str]] = [*self.trades[-3:], *self.repos[-3:]]
        if recent and draw(st.sampled_from([True, True, False])):
            secures, short, other = draw(st.sampled_from(recent))  # likely live
            # mostly the seller or borrower, who is short: it defaults and the lock becomes
            # claimable
            short_pledges = draw(st.sampled_from([True, True, True, False]))
            holder, beneficiary = (short, other) if short_pledges else (other, short)
            raw = lock(txf, holder, amount, beneficiary, instrument=instrument, secures=secures)
            self.secured.append((raw, beneficiary))
        else:
            holder, beneficiary = self._pair()
            raw = lock(txf, holder, amount, beneficiary, instrument=instrument)
        self.locks.append((raw, holder, beneficiary))
        return raw

    def _release(self) -> bytes:
        if not self.locks:
            return self._transfer()
        raw, holder, beneficiary = self.draw(st.sampled_from(self.locks))
        by = self.draw(st.sampled_from([beneficiary, beneficiary, holder, *BANKS]))
        return release(self.txf, raw, by=by)

    def _claim(self) -> bytes:
        if not self.locks:
            return self._transfer()
        if self.secured and self.draw(st.sampled_from([True, True, False])):
            raw, beneficiary = self.draw(st.sampled_from(self.secured[-3:]))  # may succeed
        else:
            raw, _, beneficiary = self.draw(st.sampled_from(self.locks))
        return claim(self.txf, raw, beneficiary)

    def _transfer(self) -> bytes:
        a, b = self._pair()
        inst = self.draw(st.sampled_from(INSTRUMENTS))
        amount = self.draw(st.sampled_from([1, 1_000, HELD // 2, HELD]))
        return self.txf.signed(self.txf.transfer(a, b, amount, instrument=inst))

    def _dvp(self) -> bytes:
        a, b = self._pair()
        qty = self.draw(st.sampled_from([100, HELD // 2, HELD]))
        return self.txf.signed(
            self.txf.dvp(a, b, quantity=qty, amount=self.draw(st.integers(1, 10**6)))
        )

    def _pending(self) -> bytes:
        a, b = self._pair()
        qty = HELD + self.draw(st.sampled_from([-100, 100, 100, 100]))  # +100: seller short
        deadline = self.txf.t0 + self.now + self.draw(st.integers(1_000, 8_000))
        raw = self.txf.signed(self.txf.pending(a, b, quantity=qty, amount=10, deadline_ms=deadline))
        self.trades.append((SignedTx.decode(raw).tx_id, a, b))
        return raw

    def _repo(self) -> bytes:
        """A repo closing soon, mostly at a repurchase price no bank holds: its close waits
        and defaults at the deadline, with the borrower as the defaulter."""
        borrower, lender = self._pair()
        repo_id = f"PR{len(self.repos)}"
        close_ms = self.txf.t0 + self.now + self.draw(st.integers(1, 1_000))
        default_ms = close_ms + self.draw(st.integers(0, 1_000))
        self.repos.append((Secured(SecuredKind.REPO, repo_id.encode()), borrower, lender))
        return self.rtx.open(
            repo_id, borrower, lender, bond=self.draw(st.sampled_from([BOND, BILL])),
            quantity=self.draw(st.sampled_from([1, 1_000, HELD])), purchase=10, rate_bp=0,
            repurchase=self.draw(st.sampled_from([11, 2 * 10**9, 2 * 10**9])),
            close_ms=close_ms, default_ms=default_ms,
        )  # fmt: skip

    def _repo_close(self) -> bytes:
        if not self.repos:
            return self._repo()
        secured, borrower, lender = self.draw(st.sampled_from(self.repos[-3:]))
        return self.rtx.close(secured.ref.decode(), parties=(borrower, lender))  # both sign

    def _swap(self) -> bytes:
        a, b = self._pair()
        qa, qb = (self.draw(st.sampled_from([1, 1_000, HELD])) for _ in range(2))
        return swap(self.txf, a, qa, b, qb)


@st.composite
def histories(draw: st.DrawFn) -> History:
    gen, offset, blocks = _Gen(draw), 0, []
    for _ in range(draw(st.integers(3, 12))):
        offset += draw(st.integers(1, 4_000))
        gen.now = offset
        blocks.append((offset, [gen.tx() for _ in range(draw(st.integers(1, 6)))]))
    return blocks


def _ended_by(raws: list[bytes], codes: list[ResultCode]) -> dict[bytes, str]:
    """Lock id -> "release" or "claim", for the block's OK releases and claims."""
    out: dict[bytes, str] = {}
    for raw, code in zip(raws, codes, strict=True):
        tx = decode_body(SignedTx.decode(raw).body)
        if code is ResultCode.OK and isinstance(tx, ReleaseLock | ClaimLock):
            out[tx.lock] = "release" if isinstance(tx, ReleaseLock) else "claim"
    return out


def _check_block(
    store: MemoryStore, before: dict[bytes, _lock.LockRecord], ended: dict[bytes, str]
) -> list[str]:
    after = {rec.lock_id: rec for rec in locks(store)}
    found, kept = [], defaultdict(int)
    for lid, rec in before.items():
        if lid in after:
            kept[(rec.holder, rec.instrument)] += rec.amount
        elif lid not in ended:
            found.append(f"lock {lid.hex()[:8]} vanished without a release or claim")
    for (holder, inst), units in kept.items():
        if store.balance(holder, inst) < units:
            found.append(f"{holder} holds {store.balance(holder, inst)} {inst}, {units} locked")
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for rec in after.values():
        totals[(rec.holder, rec.instrument)] += rec.amount
    for b in BANKS:
        for i in INSTRUMENTS:
            if locked(store, b, i) != totals[(b, i)]:
                found.append(f"LOCK_TOTAL of {b} {i} is not the sum of its locks")
    for i in INSTRUMENTS:
        if sum(store.balance(p, i) for p in NET.genesis.participant_by_id) != store.supply(i):
            found.append(f"{i} not conserved")
    return found


def _violations(history: History) -> list[str]:
    store = MemoryStore(NET.genesis)
    found: list[str] = []
    for offset, raws in history:
        before = {rec.lock_id: rec for rec in locks(store)}
        ctx = BlockContext(store.head().height + 1, NET.genesis.genesis_time_ms + offset)
        out = apply_block(store, raws, ctx)
        store.commit_block(crypto.sha256(bytes([ctx.height])), b"", b"", ctx, out)
        codes = [r.code for r in out.results if not r.event]
        ended = _ended_by(raws, codes)
        found += [f"block {ctx.height}: {v}" for v in _check_block(store, before, ended)]
    return found


@settings(max_examples=80, deadline=None)
@given(histories())
def test_locked_units_never_move_except_by_release_or_claim(history: History) -> None:
    assert _violations(history) == []


def test_a_claim_passes_the_oracle_and_pays_the_beneficiary() -> None:
    """The oracle on a fixed history where a secured seller fails its trade and the buyer
    claims (the claim path must pass the oracle and move the units)."""
    txf = TxFactory(NET)
    trade = txf.signed(txf.pending("BANK01", "BANK02", quantity=HELD + 100, amount=10,
                                   deadline_ms=txf.t0 + 1_000))  # fmt: skip
    tid = SignedTx.decode(trade).tx_id
    pledge = lock(txf, "BANK01", 500, "BANK02", instrument=BILL, secures=tid)
    history = [(500, [trade, pledge]), (2_000, []), (3_000, [claim(txf, pledge, "BANK02")])]
    store = MemoryStore(NET.genesis)
    assert _violations(history) == []
    for offset, raws in history:
        ctx = BlockContext(store.head().height + 1, NET.genesis.genesis_time_ms + offset)
        out = apply_block(store, raws, ctx)
        store.commit_block(crypto.sha256(bytes([ctx.height])), b"", b"", ctx, out)
    assert store.balance("BANK02", BILL) == HELD + 500 and locks(store) == []


def test_a_claim_on_a_repo_default_passes_the_oracle_and_pays_the_lender() -> None:
    """The oracle on a fixed history where a borrower who cannot pay the close defaults
    and the lender claims its pledge (the repo path must pass the oracle and move it)."""
    txf, rtx = TxFactory(NET), RepoTx(NET, NET.genesis.genesis_time_ms)
    t0 = NET.genesis.genesis_time_ms
    repo = rtx.open("PR", "BANK01", "BANK02", purchase=10, rate_bp=0, repurchase=2 * 10**9,
                    close_ms=t0 + 1_000, default_ms=t0 + 1_500)  # fmt: skip
    pledge = lock(txf, "BANK01", 500, "BANK02", instrument=BILL,
                  secures=Secured(SecuredKind.REPO, b"PR"))  # fmt: skip
    close = rtx.close("PR", "BANK02")
    history = [(500, [repo, pledge]), (1_000, [close]), (2_000, [])]  # defaults at 2_000
    history.append((3_000, [claim(txf, pledge, "BANK02")]))
    assert _violations(history) == []
    store = MemoryStore(NET.genesis)
    for offset, raws in history:
        ctx = BlockContext(store.head().height + 1, NET.genesis.genesis_time_ms + offset)
        out = apply_block(store, raws, ctx)
        store.commit_block(crypto.sha256(bytes([ctx.height])), b"", b"", ctx, out)
    assert [r.code for r in out.results] == [ResultCode.OK]
    assert store.balance("BANK02", BILL) == HELD + 500 and locks(store) == []


def test_the_oracle_fires_when_the_available_balance_is_not_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Negative control: a transfer of locked units, once with the check and once with
    ``debit_code`` looking at the balance only."""
    txf = TxFactory(NET)
    history = [
        (1_000, [lock(txf, "BANK01", HELD, "BANK02", instrument=BOND)]),
        (2_000, [txf.signed(txf.transfer("BANK01", "BANK03", HELD, instrument=BOND))]),
    ]
    assert _violations(history) == []

    def balance_only(o: object, account: str, inst: str, amount: int, short: ResultCode) -> object:
        return short if o.balance(account, inst) < amount else None  # type: ignore[attr-defined]

    monkeypatch.setattr(_lock, "debit_code", balance_only)
    monkeypatch.setattr(_lock, "available", lambda o, a, i: o.balance(a, i))
    assert _violations(history) == [f"block 2: BANK01 holds 0 {BOND}, {HELD} locked"]
