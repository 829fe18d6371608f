"""Cross-feature properties (review 31): random histories that interleave every kind of
transaction a participant may send, and the ledger-wide invariants after every block.

Each feature has its own property test (``test_*_properties.py``); this one mixes them,
so that a rule one feature relies on is exercised while another feature moves the same
units: transfers, DvPs, pending DvPs (held, released, cancelled), mints and burns, locks
(plain, or securing a pending DvP or a repo) with their releases and claims, swaps,
repos (open, close, margin call at a signed price, substitution), freezes and
unfreezes, coupons, fund distributions, redemptions (one holder, or all), price
attestations and governance (KYC tiers), between four banks, over about two months in
which the bill pays two monthly coupons and matures. After every block the oracle
requires (``_check_block``):

- every instrument's balances sum to its supply, and the supply moved only by the
  block's OK mints and burns and the units its redemptions burned;
- every holding's locked total (``LOCK_TOTAL``) is the sum of its locks and at most its
  balance;
- a holding frozen before and after the block, with no unfreeze of it in the block,
  did not fall, and rose only in a block that made a lifecycle payment;
- no holding of a matured bond rose, and one fell only by a redemption;
- a repo never leaves ``CLOSED`` or ``DEFAULTED`` and the live counts match the records;
- each party's cash moves under a daily limit (counted here from the OK results, not
  read from the ledger's own volume records) stay within that limit in every rolling day,
  and each OK move is within the per-trade limit;
- applying the block twice to the same state gives the same outcome.

After the history, the same blocks replayed into a fresh ``MemoryStore``, and into an
``LmdbStore`` closed and reopened halfway, give the same state root at every height.

Derandomized and bounded (``max_examples``) so that it runs the same way in CI in about
15 s on one core. The negative controls at the end break one rule each (a move that drops
a unit, a freeze that is not checked, a matured bond that still transfers, a cash move
not counted in the day) and require the oracle to fire with the exact finding.
"""

from __future__ import annotations

import functools
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import crypto
from node.config import KYC_BUCKET_MS, KYC_WINDOW_HOURS
from node.genesis import DemoNetwork
from node.settlement import (
    AttestPrice,
    BlockContext,
    BlockOutcome,
    Burn,
    ComplianceRules,
    CouponPay,
    Distribute,
    DvP,
    Holding,
    Lock,
    MarginCall,
    Mint,
    PendingDvP,
    Redeem,
    RedeemAll,
    RepoClose,
    RepoOpen,
    RepoSubstitute,
    ResultCode,
    Secured,
    SecuredKind,
    SetKycTier,
    SignedTx,
    TierLimit,
    Transfer,
    Unfreeze,
    _apply,
    _lifecycle,
    apply_block,
    locked,
    locks,
)
from node.settlement._freeze import freezes
from node.settlement._pending import outcome
from node.settlement._repo import RepoStatus, all_repos
from node.settlement._state import Overlay, RecordKind
from node.store import LmdbStore, MemoryStore, Storage
from tests import gov_helpers as gov
from tests.freeze_helpers import freeze, unfreeze
from tests.ledger_helpers import HOUR_MS, TxFactory
from tests.life_helpers import LifeTx, at
from tests.lock_helpers import claim, lock, release, swap
from tests.margin_helpers import PAR, SOURCES, coupon_net
from tests.repo_helpers import RepoTx

DAY_MS = 24 * HOUR_MS
HELD = 10_000_000  # units of each bond per bank
CASH_HELD = 1_000_000_000
T2_TRADE, T2_DAY = 3_000_000_000, 5_000_000_000  # tier 2: per trade, per rolling day
T1_TRADE, T1_DAY = 1_000_000, 2_000_000


@functools.cache
def cross_net() -> DemoNetwork:
    """``coupon_net()`` (three price sources, k = 2; the first bond pays 4.25% on 15 May
    and 15 November, the second 6% monthly on the 20th) with the second maturing on
    2026-03-20 (so its coupons of 20 January and 20 February are due, then it matures),
    fund shares held by three banks, and KYC limits on the cash token for tiers 1 and 2."""
    net = coupon_net()
    g = net.genesis
    bill = net.bonds[1]
    instruments = tuple(
        replace(i, maturity_date="2026-03-20") if i.id == bill else i for i in g.instruments
    )
    fund = tuple(Holding(b, net.fund, 100 * (k + 1)) for k, b in enumerate(net.banks[:3]))
    rules = ComplianceRules.of(
        min_tier={net.bonds[0]: 2},
        limits=[
            TierLimit(1, net.cash, T1_TRADE, T1_DAY),
            TierLimit(2, net.cash, T2_TRADE, T2_DAY),
        ],
        cosign_above={},
    )
    g = replace(g, instruments=instruments, holdings=(*g.holdings, *fund), compliance=rules)
    return replace(net, genesis=g)


NET = cross_net()
G = NET.genesis
BANKS = list(NET.banks[:4])
BOND, BILL, CASH, FUND = NET.bonds[0], NET.bonds[1], NET.cash, NET.fund
INSTRUMENTS = (BOND, BILL, CASH, FUND)
T0 = G.genesis_time_ms
BILL_MATURITY = at("2026-03-20")
STEPS = [1_000, 300_000, 2_400_000, 2 * HOUR_MS, 3 * DAY_MS, 12 * DAY_MS]

Block = tuple[int, list[bytes]]  # (block time, transactions)


def _tid(raw: bytes) -> bytes:
    return SignedTx.decode(raw).tx_id


@dataclass
class _Gen:
    """Draws transactions, remembering what was made so that later ones can name it."""

    draw: st.DrawFn
    now: int = T0
    txf: TxFactory = field(default_factory=lambda: TxFactory(NET))
    life: LifeTx = field(default_factory=lambda: LifeTx(NET))
    rtx: RepoTx = field(default_factory=lambda: RepoTx(NET, T0))
    trades: list[tuple[bytes, str, str]] = field(default_factory=list)
    locks: list[tuple[bytes, str, str]] = field(default_factory=list)
    secured: list[tuple[bytes, str, str]] = field(default_factory=list)  # locks that secure
    frozen: list[tuple[str, str]] = field(default_factory=list)
    repos: list[tuple[str, str, str]] = field(default_factory=list)  # (id, borrower, lender)
    priced: int = 0  # the block time of the last prices drawn

    def block(self) -> list[bytes]:
        self.txf.now_ms = self.now  # expiries and deadlines an hour after the block time
        out: list[bytes] = []
        for _ in range(self.draw(st.integers(1, 7))):
            out += self._one()
        return out

    def _one(self) -> list[bytes]:
        kinds = ["transfer", "dvp", "pending", "pending", "hold", "lock", "lock", "release"]
        kinds += ["claim", "claim", "swap", "repo", "repo", "close", "close", "margin"]
        kinds += ["margin", "substitute", "freeze", "unfreeze", "coupon", "coupon", "redeem"]
        kinds += ["redeem", "mint", "burn", "tier", "distribute", "pledged", "pledged"]
        made = getattr(self, "_" + self.draw(st.sampled_from(kinds)))()
        return made if isinstance(made, list) else [made]

    def _pair(self) -> tuple[str, str]:
        a, b = self.draw(st.permutations(BANKS))[:2]
        return a, b

    def _units(self) -> int:
        return self.draw(st.sampled_from([1, 1_000, HELD // 2, HELD]))

    def _cash(self) -> int:
        return self.draw(st.sampled_from([1, 1_000_000, T2_TRADE, CASH_HELD]))

    def _transfer(self) -> bytes:
        a, b = self._pair()
        inst = self.draw(st.sampled_from(INSTRUMENTS))
        amount = self._cash() if inst == CASH else self._units()
        return self.txf.signed(self.txf.transfer(a, b, amount, instrument=inst))

    def _dvp(self) -> bytes:
        a, b = self._pair()
        bond = self.draw(st.sampled_from([BOND, BILL]))
        d = self.txf.dvp(a, b, quantity=self._units(), amount=self._cash(), bond=bond)
        return self.txf.signed(d)

    def _pending(self) -> bytes:
        a, b = self._pair()
        bond = self.draw(st.sampled_from([BOND, BILL]))
        qty = HELD + self.draw(st.sampled_from([-1_000, 1_000, 1_000]))  # mostly short
        lot = self.draw(st.sampled_from([0, 1_000]))
        amount = self.draw(st.sampled_from([qty, qty * 10]))
        deadline = self.now + self.draw(st.sampled_from([600_000, 2 * HOUR_MS, 3 * DAY_MS]))
        tx = self.txf.pending(
            a, b, lot=lot, quantity=qty, amount=amount, bond=bond, deadline_ms=deadline
        )
        raw = self.txf.signed(tx)
        self.trades.append((_tid(raw), a, b))
        return raw

    def _pledged(self) -> list[bytes]:
        """A pending DvP (or a repo) and, in the same block, a pledge securing it by the
        party likely to default: the pledge becomes claimable at its deadline."""
        if self.draw(st.booleans()):
            made, (_, short, other) = self._pending(), self.trades[-1]
            secures = Secured(SecuredKind.PENDING_DVP, _tid(made))
        else:
            made, (repo_id, short, other) = self._repo(), self.repos[-1]
            secures = Secured(SecuredKind.REPO, repo_id.encode())
        inst = self.draw(st.sampled_from([BOND, BILL, CASH]))
        amount = self._cash() if inst == CASH else self._units()
        until = self.now + self.draw(st.sampled_from([HOUR_MS, 3 * DAY_MS]))
        raw = lock(self.txf, short, amount, other, instrument=inst, secures=secures,
                   until_ms=until)  # fmt: skip
        self.locks.append((raw, short, other))
        self.secured.append((raw, short, other))
        return [made, raw]

    def _hold(self) -> bytes:
        if not self.trades:
            return self._pending()
        tid, seller, buyer = self.draw(st.sampled_from(self.trades[-4:]))
        what = self.draw(st.sampled_from(["hold", "release", "cancel"]))
        by = self.draw(st.sampled_from([seller, buyer]))
        if what == "hold":
            return self.txf.signed(self.txf.hold(tid, by=by))
        if what == "release":
            return self.txf.signed(self.txf.release(tid, by=by))
        return self.txf.signed(self.txf.cancel(tid, seller, buyer))

    def _lock(self) -> bytes:
        inst = self.draw(st.sampled_from([BOND, BILL, CASH]))
        amount = self._cash() if inst == CASH else self._units()
        until = self.now + self.draw(st.sampled_from([HOUR_MS, 3 * DAY_MS]))
        obligations: list[tuple[Secured, str, str]] = [
            (Secured(SecuredKind.PENDING_DVP, t), s, b) for t, s, b in self.trades[-3:]
        ] + [(Secured(SecuredKind.REPO, r.encode()), b, lnd) for r, b, lnd in self.repos[-3:]]
        if obligations and self.draw(st.booleans()):
            secures, short, other = self.draw(st.sampled_from(obligations))
            holder, beneficiary = (short, other) if self.draw(st.booleans()) else (other, short)
        else:
            secures, (holder, beneficiary) = Secured(), self._pair()
        raw = lock(self.txf, holder, amount, beneficiary, instrument=inst, secures=secures,
                   until_ms=until)  # fmt: skip
        self.locks.append((raw, holder, beneficiary))
        if secures.kind is not SecuredKind.NONE:
            self.secured.append((raw, holder, beneficiary))
        return raw

    def _release(self) -> bytes:
        if not self.locks:
            return self._lock()
        raw, holder, beneficiary = self.draw(st.sampled_from(self.locks[-5:]))
        return release(self.txf, raw, by=self.draw(st.sampled_from([beneficiary, holder])))

    def _claim(self) -> bytes:
        pool = self.secured[-4:] or self.locks[-5:]
        if not pool:
            return self._lock()
        raw, _, beneficiary = self.draw(st.sampled_from(pool))
        return claim(self.txf, raw, beneficiary)

    def _swap(self) -> bytes:
        a, b = self._pair()
        return swap(self.txf, a, self._units(), b, self._units())

    def _repo(self) -> bytes:
        borrower, lender = self._pair()
        repo_id = f"X{len(self.repos)}"
        bond = self.draw(st.sampled_from([BOND, BILL]))
        qty = self.draw(st.sampled_from([1_000, 1_000_000, HELD]))
        close_ms = self.now + self.draw(st.sampled_from([1_000, 600_000, 2 * DAY_MS]))
        default_ms = close_ms + self.draw(st.sampled_from([0, 600_000, 40 * DAY_MS]))
        purchase = self.draw(st.sampled_from([qty * 9 // 10, qty * 2, 500_000_000]))
        fixed = self.draw(st.booleans())
        self.repos.append((repo_id, borrower, lender))
        return self.rtx.open(
            repo_id, borrower, lender, bond=bond, quantity=qty, purchase=purchase,
            repurchase=self.draw(st.sampled_from([purchase + 1, 2 * CASH_HELD])) if fixed else 0,
            rate_bp=0 if fixed else 500, close_ms=close_ms, default_ms=default_ms,
        )  # fmt: skip

    def _a_repo(self) -> tuple[str, str, str] | None:
        return self.draw(st.sampled_from(self.repos[-4:])) if self.repos else None

    def _close(self) -> bytes:
        if (r := self._a_repo()) is None:
            return self._repo()
        repo_id, borrower, lender = r
        by = self.draw(st.sampled_from([(), (borrower,), (lender,)]))
        return self.rtx.close(repo_id, *by, parties=(borrower, lender))

    def _margin(self) -> list[bytes]:
        if (r := self._a_repo()) is None:
            return [self._repo()]
        repo_id, borrower, lender = r
        tx = MarginCall(G.chain_id, self.txf.nonce(), self.now + HOUR_MS, repo_id, borrower,
                        lender)  # fmt: skip
        return [*self._prices(), self.txf.signed(tx)]

    def _prices(self) -> list[bytes]:
        """Two sources' prices of both bonds, as of the block time (k = 2: in force), once
        a block (a second statement as of the same time is stale)."""
        if self.priced == self.now:
            return []
        self.priced = self.now
        out = []
        for bond in (BOND, BILL):
            price = self.draw(st.sampled_from([PAR, PAR * 9 // 10, PAR // 2]))
            for source in self.draw(st.permutations(SOURCES))[:2]:
                tx = AttestPrice(G.chain_id, self.txf.nonce(), self.now + HOUR_MS, source,
                                 bond, price, self.now)  # fmt: skip
                out.append(self.txf.signed(tx))
        return out

    def _substitute(self) -> list[bytes]:
        if (r := self._a_repo()) is None:
            return [self._repo()]
        repo_id, borrower, lender = r
        inst = self.draw(st.sampled_from([BOND, BILL]))
        tx = RepoSubstitute(G.chain_id, self.txf.nonce(), self.now + HOUR_MS, repo_id,
                            borrower, lender, inst, self._units())  # fmt: skip
        return [*self._prices(), self.txf.signed(tx)]

    def _freeze(self) -> bytes:
        account = self.draw(st.sampled_from(BANKS))
        inst = self.draw(st.sampled_from(["", BOND, BILL, CASH, CASH]))
        self.frozen.append((account, inst))
        return freeze(self.txf, account, inst)

    def _unfreeze(self) -> bytes:
        if not self.frozen:
            return self._freeze()
        account, inst = self.draw(st.sampled_from(self.frozen[-3:]))
        return unfreeze(self.txf, account, inst)

    def _coupon(self) -> bytes:
        return self.life.coupon(self.draw(st.integers(1, 3)), BILL)

    def _distribute(self) -> bytes:
        return self.life.distribute(self.draw(st.integers(1, 3)), self._cash(), FUND)

    def _redeem(self) -> bytes:
        if self.draw(st.booleans()):
            return self.life.redeem_all(BILL)
        return self.life.redeem(self.draw(st.sampled_from(BANKS)), BILL)

    def _mint(self) -> bytes:
        inst = self.draw(st.sampled_from([BOND, BILL, CASH, FUND]))
        by = "CASHCO" if inst == CASH else "TREASURY"
        amount = self._cash() if inst == CASH else self._units()
        to = self.draw(st.sampled_from(BANKS))
        return self.txf.signed(self.txf.mint(to, amount, instrument=inst, by=by))

    def _burn(self) -> bytes:
        inst = self.draw(st.sampled_from([BOND, BILL, CASH]))
        by = "CASHCO" if inst == CASH else "TREASURY"
        amount = self._cash() if inst == CASH else self._units()
        holder = self.draw(st.sampled_from(BANKS))
        return self.txf.signed(self.txf.burn(holder, amount, instrument=inst, by=by))

    def _tier(self) -> bytes:
        who = self.draw(st.sampled_from(BANKS))
        tx = gov.set_tier(self.txf, who, self.draw(st.sampled_from([0, 1, 2, 2, 2])))
        return gov.signed(NET, tx)


# Where a history starts: genesis, the day before the bill's first coupon, or the day
# before it matures (its two coupons then paid in a first block of their own).
STARTS = [T0, at("2026-01-19"), at("2026-03-19")]


@st.composite
def histories(draw: st.DrawFn) -> list[Block]:
    start = draw(st.sampled_from(STARTS))
    gen, blocks = _Gen(draw, now=start), []
    if start == STARTS[-1]:
        blocks.append((start, [gen.life.coupon(1, BILL), gen.life.coupon(2, BILL)]))
    for _ in range(draw(st.integers(3, 12))):
        gen.now += draw(st.sampled_from(STEPS))
        blocks.append((gen.now, gen.block()))
    return blocks


# --- the oracle ----------------------------------------------------------------------------


@dataclass
class _Snapshot:
    """What the oracle compares across a block."""

    balances: dict[tuple[str, str], int]
    supplies: dict[str, int]
    frozen: set[tuple[str, str]]  # (account, instrument or "")
    repos: dict[str, RepoStatus]

    @classmethod
    def of(cls, store: Storage) -> _Snapshot:
        parties = G.participant_by_id
        balances = {(p, i): store.balance(p, i) for p in parties for i in INSTRUMENTS}
        return cls(
            balances,
            {i: store.supply(i) for i in INSTRUMENTS},
            {(f.account, f.instrument) for f in freezes(store)},
            {r.id: r.status for r in all_repos(store)},
        )


@dataclass
class _Volume:
    """The oracle's own count of each party's cash moves under the limits: (party, hour)
    -> amount, and the tiers at which they were made."""

    hours: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    retiered: set[str] = field(default_factory=set)  # a tier change: its limits changed

    def add(self, parties: tuple[str, ...], amount: int, time_ms: int) -> None:
        for p in parties:
            self.hours[(p, time_ms // KYC_BUCKET_MS)] += amount

    def day(self, party: str, time_ms: int) -> int:
        hour = time_ms // KYC_BUCKET_MS
        window = range(hour - KYC_WINDOW_HOURS + 1, hour + 1)
        return sum(self.hours.get((party, h), 0) for h in window)


_LIMITS = {1: (T1_TRADE, T1_DAY), 2: (T2_TRADE, T2_DAY)}
_PAYMENTS = (CouponPay, Distribute, Redeem, RedeemAll)


def _redeemed_units(out: BlockOutcome) -> dict[str, int]:
    burned: dict[str, int] = defaultdict(int)
    for key, value in out.records.items():
        if key[0] == RecordKind.REDEEMED and value is not None:
            bond = key[1:65].rstrip(b"\0").decode("ascii")
            burned[bond] += _lifecycle.Redeemed.decode(value).units
    return burned


def _cash_moves(
    settled_before: dict[bytes, int], after: Storage, out: BlockOutcome
) -> list[tuple[tuple[str, ...], int, bool]]:
    """Every OK move of the cash token under the limits: (limited parties, amount, whether
    it is one transaction's own move, which the per-trade limit bounds)."""
    moves: list[tuple[tuple[str, ...], int, bool]] = []
    own = [r for r in out.results if not r.event]
    for r, tx in zip(own, out.bodies, strict=True):
        if r.code is not ResultCode.OK or not r.recorded:
            continue
        match tx:
            case Transfer() if tx.instrument == CASH:
                moves.append(((tx.sender,), tx.amount, True))
            case DvP() | PendingDvP() if tx.cash == CASH:
                moves.append(((tx.seller, tx.buyer), tx.amount, True))
            case Lock() if tx.instrument == CASH:
                moves.append(((tx.holder, tx.beneficiary), tx.amount, True))
            case RepoOpen() if tx.cash == CASH:
                moves.append(((tx.borrower, tx.lender), tx.purchase_amount, True))
            case RepoClose():
                rec = next(x for x in all_repos(after) if x.id == tx.id)
                moves.append(((tx.borrower, tx.lender), rec.close_amount, True))
            case Mint() if tx.instrument == CASH:
                moves.append(((tx.to,), tx.amount, True))
            case _:
                pass
    for r in out.results:  # what recycling settled: the outcome records' growth
        if r.event and r.code is not ResultCode.REPO_LAPSED:  # a lapse moves nothing
            now = outcome(after, r.tx_id)
            assert now is not None
            settled = now.settled_amount - settled_before.get(r.tx_id, 0)
            if settled:
                moves.append((_PARTIES[r.tx_id], settled, False))
    return moves


_PARTIES: dict[bytes, tuple[str, ...]] = {}  # instruction id -> (seller, buyer)


def _remember_instructions(out: BlockOutcome) -> None:
    own = [r for r in out.results if not r.event]
    for r, tx in zip(own, out.bodies, strict=True):
        if isinstance(tx, PendingDvP):
            _PARTIES[r.tx_id] = (tx.seller, tx.buyer)
        elif isinstance(tx, RepoClose):
            _PARTIES[r.tx_id] = (tx.lender, tx.borrower)


def _check_block(
    store: MemoryStore, was: _Snapshot, settled: dict[bytes, int], out: BlockOutcome, *,
    time_ms: int, volume: _Volume,
) -> list[str]:  # fmt: skip
    now = _Snapshot.of(store)
    found: list[str] = []
    ok = [
        tx for r, tx in zip((r for r in out.results if not r.event), out.bodies, strict=True)
        if r.code is ResultCode.OK and r.recorded
    ]  # fmt: skip
    found += _conservation(store, was, now, ok, out)
    found += _locks_held(store)
    found += _frozen_still(was, now, ok)
    found += _matured_still(was, now, time_ms)
    found += _repos_monotone(store, was, now)
    found += _lapses_announced(store, was, out)
    found += _limits_kept(settled, store, out, time_ms=time_ms, volume=volume, ok=ok)
    return found


def _conservation(
    store: Storage, was: _Snapshot, now: _Snapshot, ok: list[object], out: BlockOutcome
) -> list[str]:
    found = []
    expected = dict(was.supplies)
    for tx in ok:
        if isinstance(tx, Mint):
            expected[tx.instrument] += tx.amount
        elif isinstance(tx, Burn):
            expected[tx.instrument] -= tx.amount
    for bond, units in _redeemed_units(out).items():
        expected[bond] -= units
    for i in INSTRUMENTS:
        held = sum(now.balances[(p, i)] for p in G.participant_by_id)
        if held != now.supplies[i]:
            found.append(f"{i}: balances sum to {held}, supply {now.supplies[i]}")
        if now.supplies[i] != expected[i]:
            found.append(f"{i}: supply {now.supplies[i]}, mints/burns say {expected[i]}")
    return found


def _locks_held(store: Storage) -> list[str]:
    found = []
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for rec in locks(store):
        totals[(rec.holder, rec.instrument)] += rec.amount
    for p in G.participant_by_id:
        for i in INSTRUMENTS:
            if locked(store, p, i) != totals[(p, i)]:
                found.append(f"LOCK_TOTAL of {p} {i} is not the sum of its locks")
            if totals[(p, i)] > store.balance(p, i):
                found.append(f"{p} holds {store.balance(p, i)} {i}, {totals[(p, i)]} locked")
    return found


def _frozen_still(was: _Snapshot, now: _Snapshot, ok: list[object]) -> list[str]:
    unfrozen = {(tx.account, tx.instrument) for tx in ok if isinstance(tx, Unfreeze)}
    paid = any(isinstance(tx, _PAYMENTS) for tx in ok)
    found = []
    for account, inst in was.frozen & now.frozen:
        if (account, inst) in unfrozen:
            continue
        for i in (inst,) if inst else INSTRUMENTS:
            a, b = was.balances[(account, i)], now.balances[(account, i)]
            if b < a or (b > a and not paid):
                found.append(f"frozen {account} {i} moved from {a} to {b}")
    return found


def _matured_still(was: _Snapshot, now: _Snapshot, time_ms: int) -> list[str]:
    if time_ms < BILL_MATURITY:
        return []
    found = [
        f"matured {BILL} of {p} rose from {was.balances[(p, BILL)]} to {now.balances[(p, BILL)]}"
        for p in G.participant_by_id
        if now.balances[(p, BILL)] > was.balances[(p, BILL)]
    ]
    burned = was.supplies[BILL] - now.supplies[BILL]
    fell = sum(
        max(0, was.balances[(p, BILL)] - now.balances[(p, BILL)]) for p in G.participant_by_id
    )
    if fell != burned:
        found.append(f"matured {BILL}: holdings fell by {fell}, redemptions burned {burned}")
    return found


_ORDER = {RepoStatus.OPEN: 0, RepoStatus.CLOSING: 1, RepoStatus.CLOSED: 2, RepoStatus.DEFAULTED: 2}


def _repos_monotone(store: Storage, was: _Snapshot, now: _Snapshot) -> list[str]:
    found = []
    for rid, status in was.repos.items():
        after = now.repos[rid]
        # A close that recycling refused under the rules in force leaves the repo OPEN
        # again (session 31), the one step back; CLOSED and DEFAULTED are for good.
        reopened = status is RepoStatus.CLOSING and after is RepoStatus.OPEN
        back = _ORDER[after] < _ORDER[status] and not reopened
        if back or (_ORDER[status] == 2 and after is not status):
            found.append(f"repo {rid} went from {status.name} to {after.name}")
    live: dict[str, int] = defaultdict(int)
    for rec in all_repos(store):
        if rec.live:
            live[rec.borrower] += 1
            live[rec.lender] += 1
    for p in G.participant_by_id:
        key = bytes([RecordKind.REPO_OPEN_COUNT]) + p.encode().ljust(64, b"\0")
        raw = store.record(key)
        n = 0 if raw is None else int.from_bytes(raw, "big")
        if n != live[p]:
            found.append(f"{p}: live repo count {n}, records say {live[p]}")
    return found


def _lapses_announced(store: Storage, was: _Snapshot, out: BlockOutcome) -> list[str]:
    """Review 32: every repo that lapsed in the block (DEFAULTED with no close pending:
    none submitted, or one the rules refused, cleared) has its REPO_LAPSED event under
    its open's id, and no other event says so; lapses follow recycling's events."""
    lapsed = {
        rec.open_tx
        for rec in all_repos(store)
        if rec.status is RepoStatus.DEFAULTED
        and was.repos.get(rec.id) is not RepoStatus.DEFAULTED
        and not any(rec.close_tx)
    }
    kinds = [r.code is ResultCode.REPO_LAPSED for r in out.results if r.event]
    announced = [r.tx_id for r in out.results if r.event and r.code is ResultCode.REPO_LAPSED]
    found = []
    if sorted(announced) != sorted(lapsed):
        found.append(f"{len(lapsed)} repos lapsed, {len(announced)} lapse events")
    if kinds != sorted(kinds):
        found.append("a lapse event before a recycling event")
    return found


def _limits_kept(
    settled: dict[bytes, int], store: Storage, out: BlockOutcome, *, time_ms: int,
    volume: _Volume, ok: list[object],
) -> list[str]:  # fmt: skip
    for tx in ok:
        if isinstance(tx, SetKycTier):
            volume.retiered.add(tx.participant)
    found = []
    for parties, amount, own in _cash_moves(settled, store, out):
        volume.add(parties, amount, time_ms)
        for p in parties:
            lim = _LIMITS.get(G.participant_by_id[p].kyc_tier)
            if p in volume.retiered or lim is None:
                continue
            if own and amount > lim[0]:
                found.append(f"{p} moved {amount} in one transaction, limit {lim[0]}")
    for p in BANKS:
        lim = _LIMITS.get(G.participant_by_id[p].kyc_tier)
        if p not in volume.retiered and lim is not None and volume.day(p, time_ms) > lim[1]:
            found.append(f"{p} moved {volume.day(p, time_ms)} in a day, limit {lim[1]}")
    return found


def _settled(store: Storage, tid: bytes) -> int:
    got = outcome(store, tid)
    return 0 if got is None else got.settled_amount


def _commit(store: Storage, ctx: BlockContext, out: BlockOutcome) -> None:
    store.commit_block(crypto.sha256(ctx.height.to_bytes(8, "big")), b"", b"", ctx, out)


def _violations(history: list[Block]) -> list[str]:
    store = MemoryStore(G)
    found: list[str] = []
    volume, roots = _Volume(), []
    for time_ms, raws in history:
        was = _Snapshot.of(store)
        ctx = BlockContext(store.head().height + 1, time_ms)
        out = apply_block(store, raws, ctx)
        if apply_block(store, raws, ctx).state_root != out.state_root:
            found.append(f"block {ctx.height}: applied twice, two roots")
        _remember_instructions(out)
        settled = {r.tx_id: _settled(store, r.tx_id) for r in out.results if r.event}
        _commit(store, ctx, out)
        violations = _check_block(store, was, settled, out, time_ms=time_ms, volume=volume)
        found += [f"block {ctx.height}: {v}" for v in violations]
        roots.append(out.state_root)
    return found + _replayed(history, roots)


def _replayed(history: list[Block], roots: list[bytes]) -> list[str]:
    """The same blocks into a fresh store, and into LMDB reopened halfway: same roots."""
    found = []
    fresh = MemoryStore(G)
    for (time_ms, raws), root in zip(history, roots, strict=True):
        ctx = BlockContext(fresh.head().height + 1, time_ms)
        out = apply_block(fresh, raws, ctx)
        _commit(fresh, ctx, out)
        if out.state_root != root:
            found.append(f"replay: block {ctx.height} has another root")
    with tempfile.TemporaryDirectory() as path:
        half = len(history) // 2
        for part in (history[:half], history[half:]):
            with LmdbStore(path, G) as disk:
                for time_ms, raws in part:
                    ctx = BlockContext(disk.head().height + 1, time_ms)
                    out = apply_block(disk, raws, ctx)
                    _commit(disk, ctx, out)
                    if out.state_root != roots[ctx.height - 1]:
                        found.append(f"LMDB replay: block {ctx.height} has another root")
    return found


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(histories())
def test_features_interleaved_keep_every_invariant(history: list[Block]) -> None:
    assert _violations(history) == []


# --- negative controls: the oracle fires when a rule is broken ----------------------------


def _fixed(*blocks: tuple[int, list[bytes]]) -> list[Block]:
    return list(blocks)


def test_the_oracle_fires_when_a_move_drops_a_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    txf = TxFactory(NET, now_ms=T0 + 1_000)
    history = _fixed((T0 + 1_000, [txf.signed(txf.transfer("BANK01", "BANK02", 5))]))
    assert _violations(history) == []
    honest = Overlay.move

    def leaky(self: Overlay, instrument: str, src: str, dst: str, amount: int) -> None:
        honest(self, instrument, src, dst, amount)
        self.balances[(dst, instrument)] -= 1

    monkeypatch.setattr(Overlay, "move", leaky)
    supply = sum(h.amount for h in G.holdings if h.instrument == CASH)
    assert _violations(history) == [
        f"block 1: {CASH}: balances sum to {supply - 1}, supply {supply}"
    ]


def test_the_oracle_fires_when_a_frozen_account_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    txf = TxFactory(NET, now_ms=T0 + 1_000)
    history = _fixed(
        (T0 + 1_000, [freeze(txf, "BANK01")]),
        (T0 + 2_000, [txf.signed(txf.transfer("BANK01", "BANK02", 5))]),
    )
    assert _violations(history) == []
    monkeypatch.setattr(_apply._freeze, "any_frozen", lambda o, *holdings: False)
    assert _violations(history) == [
        f"block 2: frozen BANK01 {CASH} moved from {CASH_HELD} to {CASH_HELD - 5}"
    ]


def test_the_oracle_fires_when_a_matured_bond_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    late = BILL_MATURITY + 1_000
    txf = TxFactory(NET, now_ms=late)
    history = _fixed((late, [txf.signed(txf.transfer("BANK01", "BANK02", 5, instrument=BILL))]))
    assert _violations(history) == []
    monkeypatch.setattr(_apply.life, "matured", lambda reg, instrument, time_ms: False)
    assert _violations(history) == [
        f"block 1: matured {BILL} of BANK02 rose from {HELD} to {HELD + 5}",
        f"block 1: matured {BILL}: holdings fell by 5, redemptions burned 0",
    ]


def test_the_oracle_fires_when_a_limit_is_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    txf = TxFactory(NET, now_ms=T0 + 1_000)
    minted = txf.signed(txf.mint("BANK01", T2_TRADE, instrument=CASH, by="CASHCO"))
    sent = txf.signed(txf.transfer("BANK01", "BANK02", T2_DAY - T2_TRADE + 1))
    history = _fixed((T0 + 1_000, [minted, sent]))  # one unit past the day: DAILY_LIMIT
    assert _violations(history) == []
    monkeypatch.setattr(_apply.kyc, "note_volume", lambda *a, **kw: None)
    assert _violations(history) == [f"block 1: BANK01 moved {T2_DAY + 1} in a day, limit {T2_DAY}"]
