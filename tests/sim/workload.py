"""The simulator's genesis and client workload: trades that settle, and trades that must
be refused, each with the result code it must get.

The genesis is the demo network plus what refusals need: a participant that holds little
(``POOR``, whose trades are all refused, so its balances stay at genesis and a trade
short by exactly one unit stays short by one), and a bond with a supply cap (custody's
attestation) just above its genesis holdings, so a mint can exceed it.

Refusals (``REFUSALS``), each a kind of signed transaction a client may send:

- state-dependent, decided in a block: short of cash by exactly one unit or by far
  (the seller holds the bonds, so a DvP that moved its bond leg first is caught), short
  of securities, unknown account or instrument, zero amount, self-trade, a cash token in
  the bond leg, a mint over the cap or past 2**64 - 1, a burn of more than is held;
- late: expired, or past the settlement deadline, by the time a block carries it (both
  submitted within the admission tolerance, so they reach a block);
- duplicate: a second authentic envelope of a trade (the same body, another valid
  signature), submitted with the trade;
- refused at admission by honest nodes (a Byzantine node takes them and may propose
  them): not an encoding, a flipped signature bit, a malleated signature (S + L), a
  party signing under another's name, a missing signature, another chain, a mint by a
  bank, a transfer by an account that may not hold assets.

Settling mints and burns run alongside, so the supply moves and conservation is checked
against a model of it. Replays of committed trades are sent by the runner.

The bond lifecycle (docs/ledger.md "Lifecycle") runs in simulated seconds after genesis
(2026-01-01T00:00Z), so its instruments have dates at or before that instant: ``SIM_CPN``
has coupons 1-3 due and 4 not yet, ``SIM_BILL`` has matured (redemptions, and transfers
refused MATURED), ``SIM_OLD`` has matured with coupons nobody pays (a redemption is
COUPON_OUTSTANDING), and ``SIM_FUND`` distributes monthly on the 1st, periods 1-2 due.
Coupons and distributions are paid at most once (a second copy of the same period, sent
with it, is ALREADY_PAID); every node must resolve each the same way (the simulator
compares state roots) and the balance model replays what each pays.

Pending settlement (ADR 0014), each sent with its companions (a later funding, a hold,
a release, a cancel: ``SimTx.companions``, sent that many ms after it):

- ``pending_funded``: ``LATE`` (who holds no bonds) sells bonds it gets only later, from
  the funding companion: it waits, then settles at the end of the funding block;
- ``pending_partial``: ``PART`` sells two lots after one lot's delivery: one lot settles,
  the other waits for ever (no deadline in the run);
- ``pending_held``: held by the buyer at once, funded, released later: settles after;
- ``pending_fails``: ``POOR`` sells one bond more than it holds, nobody delivers: fails
  at its deadline, a few hundred ms after it is sent (a late pool, as for expiries);
- ``pending_cancel``: ``POOR`` again, cancelled by both parties: ends ``CANCELLED``;
- ``hold_unknown``: a hold of an id that was never pending: ``NOT_PENDING``.

``POOR`` never receives bonds, so its pending trades never settle and its balances stay
at genesis; ``LATE`` receives exactly what its pending trades sell (in any order, all of
them settle); ``PART`` receives half. The checker (tests/sim/invariants.py) applies an
event's legs to its model, and checks that no trade settles twice or after its deadline
and that every honest node resolves every pending trade the same way.

KYC tiers and AML (docs/ledger.md "KYC tiers and AML"): the genesis carries the demo
rules (``demo_compliance``) plus ``LOW``, a tier-1 trader:

- ``cosign_missing``: the paying agent sends a bank cash above the co-sign threshold with
  no co-signer: ``COSIGN_REQUIRED``; ``cosigned_large``: the same co-signed by
  ``COMPLIANCE``: settles (three signatures);
- ``over_trade_limit``: a co-signed DvP above tier 2's per-trade limit: ``TRADE_LIMIT``;
- ``tier_too_low``: a bank sells ``LOW`` a bond (held from tier 2): ``TIER_TOO_LOW``;
- ``low_daily``: ``LOW`` pays banks cash of its per-trade limit three times (two
  companions): two settle, the third is ``DAILY_LIMIT``, in whatever order they reach
  blocks (and every later one in the run too). A transfer binds only its sender's limits
  (ADR 0027): cash sent *to* ``LOW`` is never refused for ``LOW``'s day.

Governance (docs/ledger.md "Governance"; ``_Maker.governance``), signed by two of the
demo's admins: a new participant and a new cash token are added (``OK``), a bank's KYC
tier is set to the tier it has (``OK``: nothing else changes), the cash token's cap is
raised on an attestation (``OK``, or ``STALE_ATTESTATION`` behind a newer copy); refused:
an existing id (``ALREADY_EXISTS``), one admin alone (``NOT_ADMIN_QUORUM``, at
admission), a tier out of range (``INVALID_REFERENCE``), an attestation after the block
time (``STALE_ATTESTATION``), a cap below a bond's supply (``CAP_BELOW_SUPPLY``). The
checker requires every honest node to write the same governance records at the same
height.

Freezes (docs/ledger.md "Freezes"), so every node resolves them the same way (the
simulator compares state roots after every block):

- ``freeze_holding``: the regulator freezes ``ICE``'s bond holding, with a second freeze
  of it sent at the same time (one is ``OK``, the other ``ALREADY_FROZEN``; nothing ever
  unfreezes it), then ``ICE`` transfers from it: ``FROZEN`` once the freeze is in;
- ``freeze_cycle``: compliance freezes ``ICE``'s account, ``ICE`` sends cash (``FROZEN``,
  or ``OK`` if it overtakes the freeze), the regulator unfreezes the account (``OK``, or
  ``NOT_FROZEN`` if it overtakes it);
- ``unfreeze_unknown``: an unfreeze of an account nobody froze: ``NOT_FROZEN``;
- ``freeze_by_bank``: refused at admission (``UNAUTHORIZED``).

``ICE`` sends only to banks; the balance model applies what settles.

Repos (docs/ledger.md "Repo"; ``_Maker.repos``), between two banks, at a fixed repurchase
amount on the first bond (whose coupons nobody pays in a run, so nothing is netted):

- ``repo_round_trip``: a repo opens (``OK``, or ``REPO_EXISTS`` behind a second open of
  the same id and terms, its twin in all but the nonce), then, as companions, a close by
  one party before the close time (``EARLY_CLOSE_ONE_SIDED``, or ``NO_SUCH_REPO`` /
  ``REPO_NOT_OPEN`` if it overtakes the open / comes after the close), a close by both
  (``OK``) and a second one (``REPO_NOT_OPEN``: one of the two closes, whichever a block
  takes first; ``NO_SUCH_REPO`` before the open);
- ``repo_terms``: a default deadline before the close time: ``REPO_TERMS``;
- ``repo_unknown``: a close of a repo never opened: ``NO_SUCH_REPO``.

Closes never go pending here (both banks hold far more than a repo moves), so every
repo event is its close's own result; the checker moves a close's legs on the terms of
the repo's open. Pending closes, defaults and ``REPO_CLOSE_PINNED`` are unit-tested
(tests/unit/test_repo.py, test_repo_properties.py).

Custody and reserves (docs/ledger.md "Custody and reserves"): ``SIM_CPN`` is
custody-backed (``CSD`` attests), ``SIM_RESERVED`` a reserve-backed cash token nobody
holds at genesis (``CASHCO`` attests):

- ``attest_custody``: custody of the supply plus ``CUSTODY_HEADROOM`` as of just after
  genesis, sent twice at once (one ``OK``, the other ``STALE_ATTESTATION``, or both stale
  once an earlier copy is in); ``attest_future``: as of the far future, always stale;
- ``mint_within_custody``: one unit (``OK`` once the attestation is in, else
  ``CUSTODY_EXCEEDED``); ``mint_over_custody``: more than the headroom, always refused;
- ``attest_reserves`` (``OK`` or stale), ``mint_over_reserves`` (more than is ever
  attested: ``RESERVES_SHORT``);
- ``attest_bad_cusip`` (``INVALID_ATTESTATION``) and ``attest_by_bank``
  (``UNAUTHORIZED``): refused at admission.

Locks and swaps (docs/ledger.md "Locks and swaps"): ``PLEDGE`` holds bonds nobody else
trades with it:

- ``lock_pledge``: ``PLEDGE`` locks all its units of the first bond for a bank (``OK``;
  ``LOCKED`` behind another copy's lock), then, as companions, sends one of them
  (``LOCKED``), releases the lock itself, twice (``LOCK_IN_FORCE``; the second copy for a
  lock slow to commit), the bank claims it (no
  default: ``NOT_CLAIMABLE``), the bank releases it (``OK``) and releases it again
  (``NO_SUCH_LOCK``); a companion overtaking the lock gets ``NO_SUCH_LOCK``;
- ``lock_lapsed_terms``: a lock whose until is already past (``INVALID_LOCK_TERMS``);
  ``lock_repo``: a lock securing a repo never opened (``NOT_PENDING``; locks securing
  live repos, their defaults and claims are unit-tested: tests/unit/test_lock_repo.py);
- ``swap``: two banks exchange small amounts of the two bonds (``OK``);
  ``swap_same``: one bond for itself (``SAME_INSTRUMENT``).

``LOCKS_FULL`` needs ``LOCKS_PER_HOLDER_MAX`` locks: tests/unit/test_lock.py checks it.
Prices (docs/ledger.md "Prices, margin and substitution"): the genesis carries the demo
margin terms (``demo_margin``: three sources, k = 2, an hour's max age):

- ``attest_price``: ``CSD`` and ``CASHCO`` price the first bond as of just after
  genesis, ``CSD``'s sent twice at once (one ``OK``, the other ``STALE_ATTESTATION``;
  both stale once an earlier copy is in, or once the run is an hour past genesis);
  ``attest_price_future``: as of the far future, always stale;
- ``attest_price_cash``: a price of the cash token: ``NOT_ELIGIBLE_COLLATERAL``;
- ``margin_no_repo``: a margin call on a repo nobody opened: ``NO_SUCH_REPO``;
- ``margin_repo``: a bank borrows against the first bond (``OK``; the checker's model
  moves the opening legs), ``CSD`` and ``CASHCO`` price the bond 100 ms later (each kind
  carries its prices, so it reaches its codes when sent alone), and the lender calls
  margin 400 ms later: at 99.0 less 2% the
  collateral (970,200 cents) covers the 901,000 owed, ``NO_MARGIN_DEFICIT`` (or ``NO_FRESH_PRICE``
  before both prices are in); ``margin_stale_repo``: a repo against the second bond,
  which nobody prices: its call is ``NO_FRESH_PRICE``, and a substitution into one unit
  of the first bond ``SUBSTITUTION_BELOW_VALUE``. Nothing in the sim ever moves on a
  price (a settled margin call or substitution would be an unknown transaction to the
  model), so the prices are all 99.0 and honest.
- ``attest_price_by_bank``: refused at admission (``UNAUTHORIZED``).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace
from functools import cache

from node import crypto, tags
from node.config import U64_MAX
from node.core import Quorum
from node.genesis import (
    DEMO_COSIGN_ABOVE_CENTS,
    DEMO_TIER1_TRADE_MAX_CENTS,
    DEMO_TIER2_TRADE_MAX_CENTS,
    DemoNetwork,
    _isin,
    demo_compliance,
    demo_genesis,
    demo_margin,
)
from node.settlement import (
    AddInstrument,
    AddParticipant,
    AttestCustody,
    AttestPrice,
    AttestReserves,
    Bill,
    Burn,
    Cancel,
    ClaimLock,
    CouponPay,
    CustodyBacking,
    Distribute,
    DvP,
    Freeze,
    FreezeReason,
    Genesis,
    Hold,
    Holding,
    Instrument,
    InstrumentKind,
    Lock,
    MarginCall,
    Mint,
    Participant,
    PendingDvP,
    Redeem,
    RedeemAll,
    Release,
    ReleaseLock,
    RepoClose,
    RepoOpen,
    RepoSubstitute,
    ReserveRules,
    ResultCode,
    Role,
    Secured,
    SecuredKind,
    SetKycTier,
    SetMaxSupply,
    SignedTx,
    Swap,
    Transaction,
    Transfer,
    Unfreeze,
    encode_body,
    sign_tx,
)

R = ResultCode
POOR = "POOR01"
POOR_CASH = 1_000
POOR_BONDS = 100
LATE = "LATE01"  # sells bonds it receives only later (pending settlement)
PART = "PART01"  # the same, in lots, for partial settlement only
ICE = "ICE01"  # the target of freezes
ICE_UNITS = 1_000  # its genesis holding of the first bond and of cash
LOW = "LOW01"  # kyc: the one tier-1 participant (KYC tier rules)
LOW_CASH = 10 * DEMO_TIER1_TRADE_MAX_CENTS  # its genesis cash: far more than a day's limit
PLEDGE = "PLEDGE01"  # lock: pledges its bonds (locks), trades with nobody
PLEDGE_UNITS = 1_000  # its genesis holding of each bond
_PLAIN = Secured()  # a lock securing nothing
PENDING_LOT = 10  # bond units in each pending trade's lot, and in each funding delivery
PENDING_WAIT_MS = 700  # a failing pending trade's deadline, after its late step
CAP_HEADROOM = 10**6  # the capped bond's max_supply: genesis holdings plus this
MINT_OK_MAX = 1_000  # settling mints stay far below the headroom in any run
LATE_STEP_MS = 250  # expiries and deadlines of late trades: one every this many ms
LATE_SPAN_MS = 6_000  # late trades cover submissions this far into a run (chaos_ms <= 5 s)
FAR_MS = 10**9
SIM_CPN, SIM_BILL, SIM_OLD = _isin("US91282SIMC"), _isin("US91279SIMB"), _isin("US91282SIMO")
SIM_FUND = "FUND.SIM"
SIM_UNITS = 1_000_000  # each bank's holding of each lifecycle instrument
AGENT = "TREASURY"  # the paying agent of all four
SIM_RESERVED = "USD.SIMRES"  # reserve-backed; SIM_CPN is custody-backed
CUSTODY_HEADROOM = 1_000  # custody attested above SIM_CPN's supply; mints stay within
# margin: a repo's collateral and cash, worth far more than the cash at the sim's price
MARGIN_REPO_UNITS, MARGIN_REPO_CENTS = 1_000_000, 900_000
ATTESTED_RESERVES = 1_000  # reserves attested behind SIM_RESERVED
REPO_UNITS, REPO_CASH, REPO_BACK = 100, 1_000, 1_005  # a sim repo's terms


def _lifecycle_instruments(cash: str) -> tuple[Instrument, ...]:
    bond = InstrumentKind.BOND
    return (
        Instrument(SIM_CPN, bond, AGENT, "USD", unit_face_minor=100, maturity_date="2026-06-01",
                   coupon_bp=600, coupon_freq=12, issue_date="2025-10-15", payment_cash=cash),
        Instrument(SIM_BILL, bond, AGENT, "USD", unit_face_minor=1, maturity_date="2026-01-01",
                   payment_cash=cash),
        Instrument(SIM_OLD, bond, AGENT, "USD", unit_face_minor=100, maturity_date="2026-01-01",
                   coupon_bp=600, coupon_freq=12, issue_date="2025-10-15", payment_cash=cash),
        Instrument(SIM_FUND, InstrumentKind.FUND, AGENT, "USD", payment_cash=cash,
                   distribution_day=1, issue_date="2025-11-30"),
    )  # fmt: skip


@dataclass(frozen=True)
class SimTx:
    """One transaction a client may send: its bytes, the decoded body (None: none
    decodes), the kind of refusal (or "ok"), the codes a block may give it, and for late
    trades the time (offset from genesis) it turns late."""

    raw: bytes
    tx: Transaction | None
    kind: str
    codes: frozenset[ResultCode]
    late_at: int | None = None
    twin: bytes | None = None  # a duplicate: the other envelope, sent with it
    # Sent after it (ms later), e.g. the delivery that funds a pending trade, a hold.
    companions: tuple[tuple[int, bytes, Transaction], ...] = ()

    @property
    def tx_id(self) -> bytes:
        return tx_id_of(self.raw)


def tx_id_of(raw: bytes) -> bytes:
    """The id a block's result carries for ``raw`` (the body hash; else the bytes' hash)."""
    try:
        return SignedTx.decode(raw).tx_id
    except Exception:
        return crypto.sha256(raw)


@cache
def sim_network(n: int) -> DemoNetwork:
    """The demo network for n validators with ``POOR`` and a capped bond (see above)."""
    demo = demo_genesis(validators=n, quorum=Quorum.classic(n).q if n > 1 else 1)
    g = demo.genesis
    poor_key = crypto.SigningKey(crypto.sha256(b"sim-participant", POOR.encode()))
    late_key = crypto.SigningKey(crypto.sha256(b"sim-participant", LATE.encode()))
    part_key = crypto.SigningKey(crypto.sha256(b"sim-participant", PART.encode()))
    ice_key = crypto.SigningKey(crypto.sha256(b"sim-participant", ICE.encode()))
    low_key = crypto.SigningKey(crypto.sha256(b"sim-participant", LOW.encode()))
    pledge_key = crypto.SigningKey(crypto.sha256(b"sim-participant", PLEDGE.encode()))
    capped = demo.bonds[1]
    held = sum(h.amount for h in g.holdings if h.instrument == capped)
    instruments = tuple(
        replace(i, max_supply=held + CAP_HEADROOM) if i.id == capped else i for i in g.instruments
    )
    genesis = Genesis(
        name=g.name,
        genesis_time_ms=g.genesis_time_ms,
        participants=(
            *g.participants,
            Participant(POOR, poor_key.public_key, frozenset({Role.TRADER}), 2),
            Participant(LATE, late_key.public_key, frozenset({Role.TRADER}), 2),
            Participant(PART, part_key.public_key, frozenset({Role.TRADER}), 2),
            Participant(ICE, ice_key.public_key, frozenset({Role.TRADER}), 2),
            Participant(LOW, low_key.public_key, frozenset({Role.TRADER}), 1),
            Participant(PLEDGE, pledge_key.public_key, frozenset({Role.TRADER}), 2),
        ),
        instruments=(
            *instruments,
            *_lifecycle_instruments(demo.cash),
            Instrument(SIM_RESERVED, InstrumentKind.CASH, "CASHCO", "USD"),
        ),
        holdings=(
            *g.holdings,
            Holding(POOR, demo.cash, POOR_CASH),
            Holding(POOR, demo.bonds[0], POOR_BONDS),
            Holding(ICE, demo.cash, ICE_UNITS),
            Holding(ICE, demo.bonds[0], ICE_UNITS),
            Holding(LOW, demo.cash, LOW_CASH),
            Holding(AGENT, demo.cash, 10**13),
            *(Holding(PLEDGE, b, PLEDGE_UNITS) for b in demo.bonds),
            *(
                Holding(b, i, SIM_UNITS * (k + 1))
                for k, b in enumerate(demo.banks)
                for i in (SIM_CPN, SIM_BILL, SIM_OLD, SIM_FUND)
            ),
        ),
        validators=g.validators,
        quorum=g.quorum,
        custody=(CustodyBacking(SIM_CPN, "CSD"),),
        reserves=(ReserveRules(SIM_RESERVED),),
        compliance=demo_compliance(demo.bonds, demo.cash),
        admins=g.admins,
        admin_threshold=g.admin_threshold,
        margin=demo_margin(demo.bonds, demo.cash),
    )
    keys = {**demo.participant_keys, POOR: poor_key, LATE: late_key, PART: part_key, ICE: ice_key}
    keys[LOW] = low_key
    keys[PLEDGE] = pledge_key
    return DemoNetwork(
        genesis, keys, demo.validator_keys, demo.banks, demo.bonds, demo.cash, demo.fund
    )


def _signed(net: DemoNetwork, tx: Transaction) -> bytes:
    return sign_tx(tx, [net.participant_keys[s] for s in tx.required_signers()])


@cache
def ok_pool(n: int) -> tuple[tuple[bytes, Transaction], ...]:
    """Signed bank trades that settle, made once per process (signing is slow)."""
    net = sim_network(n)
    g = net.genesis
    rng = random.Random(n)
    out: list[tuple[bytes, Transaction]] = []
    far = g.genesis_time_ms + FAR_MS
    for nonce in range(1, 401):
        seller, buyer = rng.sample(net.banks, 2)
        tx: DvP | Transfer
        if nonce % 5 == 0:
            tx = Transfer(g.chain_id, nonce, far, net.cash, seller, buyer, rng.randint(1, 10**6))
        else:
            tx = DvP(
                g.chain_id, nonce, far, seller, buyer, rng.choice(net.bonds),
                rng.randint(1, 10**5), net.cash, rng.randint(1, 10**7), far,
            )  # fmt: skip
        out.append((_signed(net, tx), tx))
    return tuple(out)


def resign(key: crypto.SigningKey, message: bytes, salt: bytes) -> bytes:
    """Another valid Ed25519 signature of ``message`` by ``key`` (a fresh nonce instead of
    RFC 8032's derived one): R = r·B is the public key of a seed whose clamped scalar is
    r, and S = r + H(R, A, M)·a mod L. Verifiers accept it; the bytes differ."""

    def scalar(seed: bytes) -> int:
        h = bytearray(hashlib.sha512(seed).digest()[:32])
        h[0] &= 248
        h[31] = (h[31] & 127) | 64
        return int.from_bytes(h, "little")

    nonce_seed = crypto.sha256(b"sim-resign", salt, key.seed())
    r_point = crypto.SigningKey(nonce_seed).public_key
    k = int.from_bytes(hashlib.sha512(r_point + key.public_key + message).digest(), "little")
    s = (scalar(nonce_seed) + k * scalar(key.seed())) % crypto.ED25519_L
    return r_point + s.to_bytes(32, "little")


class _Maker:
    """Builds the refusal pool: one method per kind, each returning SimTx."""

    def __init__(self, n: int) -> None:
        self.net = net = sim_network(n)
        self.g = net.genesis
        self.t0 = self.g.genesis_time_ms
        self.far = self.t0 + FAR_MS
        self.chain = self.g.chain_id
        self.nonce = 10_000

    def _next(self) -> int:
        self.nonce += 1
        return self.nonce

    def sim(self, kind: str, tx: Transaction, *codes: ResultCode, late: int | None = None) -> SimTx:
        return SimTx(_signed(self.net, tx), tx, kind, frozenset(codes), late)

    def dvp(self, seller: str, buyer: str, qty: int, amount: int, **kw: object) -> DvP:
        net = self.net
        base = DvP(
            self.chain, self._next(), self.far, seller, buyer, net.bonds[0], qty, net.cash,
            amount, self.far,
        )  # fmt: skip
        return replace(base, **kw)  # type: ignore[arg-type]

    def transfer(self, sender: str, receiver: str, amount: int, **kw: object) -> Transfer:
        base = Transfer(self.chain, self._next(), self.far, self.net.cash, sender, receiver, amount)
        return replace(base, **kw)  # type: ignore[arg-type]

    def state_refusals(self, bank: str, other: str, rng: random.Random) -> list[SimTx]:
        net, capped = self.net, self.net.bonds[1]
        return [
            self.sim("short_cash_by_one", self.dvp(bank, POOR, 1, POOR_CASH + 1),
                     R.INSUFFICIENT_CASH),
            self.sim("short_cash", self.dvp(bank, POOR, rng.randint(1, 99), 10**6),
                     R.INSUFFICIENT_CASH),
            self.sim("short_bonds_by_one", self.dvp(POOR, bank, POOR_BONDS + 1, 1),
                     R.INSUFFICIENT_SECURITIES),
            self.sim("unknown_account", self.transfer(bank, "NOBODY", 5), R.UNKNOWN_ACCOUNT),
            self.sim("unknown_instrument", self.transfer(bank, other, 5, instrument="XX.NONE"),
                     R.UNKNOWN_INSTRUMENT),
            self.sim("zero_amount", self.transfer(bank, other, 0), R.INVALID_AMOUNT),
            self.sim("self_trade", self.transfer(bank, bank, 5), R.SELF_TRADE),
            self.sim("cash_as_bond", self.dvp(bank, other, 5, 5, bond=net.cash),
                     R.WRONG_INSTRUMENT_KIND),
            self.sim("mint_over_cap", Mint(self.chain, self._next(), self.far, capped, bank,
                     2 * CAP_HEADROOM, "TREASURY"), R.SUPPLY_LIMIT),
            # To the agent (tier 3, no limits): a bank's tier-2 trade limit would come first.
            self.sim("mint_overflow", Mint(self.chain, self._next(), self.far, net.cash, AGENT,
                     U64_MAX, "CASHCO"), R.OVERFLOW),
            self.sim("burn_short", Burn(self.chain, self._next(), self.far, net.bonds[0], POOR,
                     POOR_BONDS + 1, "TREASURY"), R.INSUFFICIENT_SECURITIES),
            self.sim("mint", Mint(self.chain, self._next(), self.far, capped, bank,
                     rng.randint(1, MINT_OK_MAX), "CSD"), R.OK),
            self.sim("burn", Burn(self.chain, self._next(), self.far, capped, bank,
                     rng.randint(1, MINT_OK_MAX), "TREASURY"), R.OK),
        ]  # fmt: skip

    def lifecycle(self, bank: str, other: str, rng: random.Random) -> list[SimTx]:
        """Coupons, distributions, redemptions and a matured bond's transfer."""
        c, far = self.chain, self.far
        again = CouponPay(c, self._next(), far, SIM_CPN, 2, AGENT)
        twice = self.sim(
            "coupon_twice", CouponPay(c, self._next(), far, SIM_CPN, 2, AGENT), R.OK, R.ALREADY_PAID
        )
        return [
            self.sim("coupon", CouponPay(c, self._next(), far, SIM_CPN, 1, AGENT),
                     R.OK, R.ALREADY_PAID),
            replace(twice, twin=_signed(self.net, again)),
            self.sim("coupon_not_due", CouponPay(c, self._next(), far, SIM_CPN, 4, AGENT),
                     R.NOT_DUE),
            self.sim("coupon_final", CouponPay(c, self._next(), far, SIM_CPN, 8, AGENT),
                     R.NO_SUCH_PERIOD),
            self.sim("distribute", Distribute(c, self._next(), far, SIM_FUND, 1,
                     rng.randint(1, 10**6), AGENT), R.OK, R.ALREADY_PAID),
            self.sim("redeem", Redeem(c, self._next(), far, SIM_BILL, bank),
                     R.OK, R.ALREADY_PAID, R.INSUFFICIENT_SECURITIES),
            self.sim("redeem_all", RedeemAll(c, self._next(), far, SIM_BILL, AGENT),
                     R.OK, R.INSUFFICIENT_SECURITIES),
            self.sim("redeem_unpaid", Redeem(c, self._next(), far, SIM_OLD, bank),
                     R.COUPON_OUTSTANDING),
            self.sim("matured_transfer", self.transfer(bank, other, 1, instrument=SIM_BILL),
                     R.MATURED),
        ]  # fmt: skip

    def late(self, bank: str, other: str, at: int) -> list[SimTx]:
        """Late at ``at`` ms after genesis: expired, or past the deadline, once a block
        carries them, if sent after ``at`` (and before the admission tolerance runs out).
        The pending trade that fails is the other way round: sent after ``at``, it can wait
        until ``PENDING_WAIT_MS`` after the step's end, then fails at its deadline."""
        t = self.t0 + at
        fails_at = t + LATE_STEP_MS + PENDING_WAIT_MS
        return [
            self.sim("expired", self.transfer(bank, other, 7, expiry_ms=t), R.EXPIRED, late=at),
            self.sim("past_deadline", self.dvp(bank, other, 3, 3, deadline_ms=t),
                     R.DEADLINE_PASSED, late=at),
            # DEADLINE_PASSED when it waited in a mempool past its deadline (a fault).
            self.sim("pending_fails", self.pending(POOR, bank, POOR_BONDS + 1, 5,
                     deadline_ms=fails_at), R.PENDING_SETTLEMENT, R.DEADLINE_PASSED, late=at),
        ]  # fmt: skip

    # --- pending settlement (ADR 0014) ------------------------------------------------

    def pending(self, seller: str, buyer: str, qty: int, amount: int, **kw: object) -> PendingDvP:
        d = self.dvp(seller, buyer, qty, amount)
        base = PendingDvP(
            d.chain_id, d.nonce, d.expiry_ms, d.seller, d.buyer, d.bond, d.quantity, d.cash,
            d.amount, d.deadline_ms, 0,
        )  # fmt: skip
        return replace(base, **kw)  # type: ignore[arg-type]

    def _delivery(self, bank: str, units: int, to: str = LATE) -> tuple[bytes, Transaction]:
        tx = self.transfer(bank, to, units, instrument=self.net.bonds[0])
        return _signed(self.net, tx), tx

    def _then(self, delay: int, tx: Transaction) -> tuple[int, bytes, Transaction]:
        return delay, _signed(self.net, tx), tx

    def pendings(self, bank: str, other: str) -> list[SimTx]:
        """Pending trades and their companions (see the module docstring)."""
        waiting = frozenset({R.PENDING_SETTLEMENT, R.OK})  # OK: funded before it came
        lot = PENDING_LOT
        funded = self.pending(LATE, bank, lot, 70)
        partial = self.pending(PART, bank, 2 * lot, 140, lot=lot)
        first, first_tx = self._delivery(other, lot, PART)
        held = self.pending(LATE, bank, lot, 90)
        cancelled = self.pending(POOR, bank, POOR_BONDS + 1, 5)
        cid = SignedTx.decode(_signed(self.net, cancelled)).tx_id
        hid = SignedTx.decode(_signed(self.net, held)).tx_id
        hold = Hold(self.chain, self._next(), self.far, hid, bank)
        release = Release(self.chain, self._next(), self.far, hid, bank)
        cancel = Cancel(self.chain, self._next(), self.far, cid, POOR, bank)
        nobody = Hold(self.chain, self._next(), self.far, crypto.sha256(b"never"), bank)
        return [
            replace(self.sim("pending_funded", funded, *waiting),
                    companions=((150, *self._delivery(other, lot)),)),
            # One lot's delivery, then the trade of two lots: one settles, one waits.
            SimTx(first, first_tx, "pending_partial", frozenset({R.OK}),
                  companions=(self._then(50, partial),)),
            replace(self.sim("pending_held", held, *waiting),
                    companions=(self._then(0, hold), (200, *self._delivery(other, lot)),
                                self._then(900, release))),
            replace(self.sim("pending_cancel", cancelled, R.PENDING_SETTLEMENT),
                    companions=(self._then(300, cancel),)),
            self.sim("hold_unknown", nobody, R.NOT_PENDING),
        ]  # fmt: skip

    # --- freezes (docs/ledger.md "Freezes") ------------------------------------------------

    def _freeze(self, instrument: str, by: str, account: str = ICE) -> Freeze:
        reason = FreezeReason.COURT_ORDER if instrument else FreezeReason.AML_INVESTIGATION
        return Freeze(self.chain, self._next(), self.far, account, instrument, reason, by)

    def freezes(self, bank: str) -> list[SimTx]:
        """Freezes, unfreezes and the legs they block (see the module docstring)."""
        bond = self.net.bonds[0]
        again = _signed(self.net, self._freeze(bond, "REGULATOR"))
        out_of_bond = self.transfer(ICE, bank, 1, instrument=bond)
        out_of_cash = self.transfer(ICE, bank, 1)
        thaw = Unfreeze(self.chain, self._next(), self.far, ICE, "", "REGULATOR")
        nobody = Unfreeze(self.chain, self._next(), self.far, bank, "", "COMPLIANCE")
        either = (R.OK, R.ALREADY_FROZEN)
        return [
            replace(self.sim("freeze_holding", self._freeze(bond, "REGULATOR"), *either),
                    twin=again, companions=(self._then(300, out_of_bond),)),
            replace(self.sim("freeze_cycle", self._freeze("", "COMPLIANCE"), *either),
                    companions=(self._then(200, out_of_cash), self._then(600, thaw))),
            self.sim("unfreeze_unknown", nobody, R.NOT_FROZEN),
            self.sim("freeze_by_bank", self._freeze("", bank, account=bank), R.UNAUTHORIZED),
        ]  # fmt: skip

    # --- custody and reserves (docs/ledger.md "Custody and reserves") ----------------------

    def _custody(self, as_of: int, by: str = "CSD") -> AttestCustody:
        supply = self.g.genesis_supply[SIM_CPN] + CUSTODY_HEADROOM
        doc = crypto.sha256(b"sim custody")
        return AttestCustody(self.chain, self._next(), self.far, by, SIM_CPN, supply, as_of, doc)

    def _reserves(self, cusip: str, by: str = "CASHCO") -> AttestReserves:
        bill = Bill(cusip, "2026-02-01", ATTESTED_RESERVES // 2)
        return AttestReserves(
            self.chain, self._next(), self.far, by, SIM_RESERVED, self.t0 + 1,
            crypto.sha256(b"sim reserves"), ATTESTED_RESERVES // 2, (bill,),
        )  # fmt: skip

    def attestations(self, bank: str) -> list[SimTx]:
        """Attestations and the mints they allow or refuse (see the module docstring)."""
        stale = (R.OK, R.STALE_ATTESTATION)
        again = _signed(self.net, self._custody(self.t0 + 1))

        def mint(instrument: str, amount: int, by: str) -> Mint:
            return Mint(self.chain, self._next(), self.far, instrument, bank, amount, by)

        return [
            replace(self.sim("attest_custody", self._custody(self.t0 + 1), *stale), twin=again),
            self.sim("attest_future", self._custody(self.far), R.STALE_ATTESTATION),
            self.sim("mint_within_custody", mint(SIM_CPN, 1, "CSD"), R.OK, R.CUSTODY_EXCEEDED),
            self.sim("mint_over_custody", mint(SIM_CPN, CUSTODY_HEADROOM * 10, "CSD"),
                     R.CUSTODY_EXCEEDED),
            self.sim("attest_reserves", self._reserves("912797GL5"), *stale),
            self.sim("mint_over_reserves", mint(SIM_RESERVED, ATTESTED_RESERVES + 1, "CASHCO"),
                     R.RESERVES_SHORT),
            self.sim("attest_bad_cusip", self._reserves("912797GL4"), R.INVALID_ATTESTATION),
            self.sim("attest_by_bank", self._custody(self.t0 + 2, by=bank), R.UNAUTHORIZED),
        ]  # fmt: skip

    # --- repo: repos (docs/ledger.md "Repo") --------------------------------------------------

    def _repo_open(self, repo_id: str, bank: str, other: str, default_ms: int) -> RepoOpen:
        return RepoOpen(
            self.chain, self._next(), self.far, repo_id, bank, other, self.net.bonds[0],
            REPO_UNITS, self.net.cash, REPO_CASH, REPO_BACK, 0, self.far - 1, default_ms,
        )  # fmt: skip

    def _repo_close(self, repo_id: str, parties: tuple[str, str], *by: str) -> RepoClose:
        return RepoClose(self.chain, self._next(), self.far, repo_id, *parties, tuple(sorted(by)))

    def repos(self, bank: str, other: str, k: int) -> list[SimTx]:
        """A repo's round trip and its refusals (see the module docstring)."""
        rid = f"SIMREPO{k}"
        twin = _signed(self.net, self._repo_open(rid, bank, other, self.far))
        closes = (
            self._then(100, self._repo_close(rid, (bank, other), other)),
            self._then(300, self._repo_close(rid, (bank, other), bank, other)),
            self._then(350, self._repo_close(rid, (bank, other), other, bank)),
        )
        return [
            replace(self.sim("repo_round_trip", self._repo_open(rid, bank, other, self.far),
                             R.OK, R.REPO_EXISTS), twin=twin, companions=closes),
            self.sim("repo_terms", self._repo_open(f"{rid}.T", bank, other, self.far - 2),
                     R.REPO_TERMS),
            self.sim("repo_unknown", self._repo_close(f"{rid}.U", (bank, other), bank),
                     R.NO_SUCH_REPO),
        ]  # fmt: skip

    # --- margin: prices (docs/ledger.md "Prices, margin and substitution") -----------------

    def _price(self, as_of: int, by: str = "CSD", instrument: str = "") -> AttestPrice:
        bond = instrument or self.net.bonds[0]
        return AttestPrice(self.chain, self._next(), self.far, by, bond, 990_000, as_of)

    def _repo(self, repo_id: str, bank: str, other: str, bond: str) -> RepoOpen:
        return RepoOpen(
            self.chain, self._next(), self.far, repo_id, bank, other, bond, MARGIN_REPO_UNITS,
            self.net.cash, MARGIN_REPO_CENTS, MARGIN_REPO_CENTS + 1_000, 0, self.far, self.far,
        )  # fmt: skip

    def _both_price(self) -> tuple[tuple[int, bytes, Transaction], ...]:
        """Two sources price the first bond (again: stale if already in, the price stands),
        so a margin kind sent alone in a seed's run still finds k fresh prices."""
        as_of = self.t0 + 1
        return tuple(
            self._then(d, self._price(as_of, by=s)) for d, s in ((100, "CSD"), (120, "CASHCO"))
        )

    def prices(self, bank: str, other: str) -> list[SimTx]:
        """Prices, two repos and margin calls and substitutions that never move anything
        (see the module docstring)."""
        stale = (R.OK, R.STALE_ATTESTATION)
        again = _signed(self.net, self._price(self.t0 + 1))
        second = self._then(20, self._price(self.t0 + 1, by="CASHCO"))
        call = MarginCall(self.chain, self._next(), self.far, "NO-SUCH-REPO", bank, other)
        priced, unpriced = f"SIM-MA-{bank}", f"SIM-MB-{bank}"
        calls = {r: MarginCall(self.chain, self._next(), self.far, r, bank, other)
                 for r in (priced, unpriced)}  # fmt: skip
        swap = RepoSubstitute(
            self.chain, self._next(), self.far, unpriced, bank, other, self.net.bonds[0], 1
        )
        opened = (R.OK, R.INSUFFICIENT_SECURITIES, R.INSUFFICIENT_CASH)
        return [
            replace(self.sim("attest_price", self._price(self.t0 + 1), *stale), twin=again,
                    companions=(second,)),
            replace(self.sim("margin_repo", self._repo(priced, bank, other, self.net.bonds[0]),
                             *opened),
                    companions=(*self._both_price(), self._then(400, calls[priced]))),
            replace(self.sim("margin_stale_repo",
                             self._repo(unpriced, bank, other, self.net.bonds[1]), *opened),
                    companions=(*self._both_price(), self._then(400, calls[unpriced]),
                                self._then(500, swap))),
            self.sim("attest_price_future", self._price(self.far), R.STALE_ATTESTATION),
            self.sim("attest_price_cash", self._price(self.t0 + 2, instrument=self.net.cash),
                     R.NOT_ELIGIBLE_COLLATERAL),
            self.sim("margin_no_repo", call, R.NO_SUCH_REPO),
            self.sim("attest_price_by_bank", self._price(self.t0 + 3, by=bank), R.UNAUTHORIZED),
        ]  # fmt: skip

    # --- kyc: KYC tiers and AML (docs/ledger.md "KYC tiers and AML") ----------------------

    def kyc(self, bank: str, other: str) -> list[SimTx]:
        """Co-signed and limit-breaching trades (see the module docstring)."""
        large = self.transfer(AGENT, bank, DEMO_COSIGN_ABOVE_CENTS + 1)
        over = DEMO_TIER2_TRADE_MAX_CENTS + 1
        return [
            self.sim("cosign_missing", large, R.COSIGN_REQUIRED),
            self.sim("cosigned_large", replace(large, nonce=self._next(), cosigner="COMPLIANCE"),
                     R.OK),
            self.sim("over_trade_limit", self.dvp(bank, other, 1, over, cosigner="COMPLIANCE"),
                     R.TRADE_LIMIT),
            self.sim("tier_too_low", self.dvp(bank, LOW, 1, 1), R.TIER_TOO_LOW),
            replace(self.sim("low_daily", self._from_low(bank), R.OK, R.DAILY_LIMIT),
                    companions=(self._then(50, self._from_low(other)),
                                self._then(100, self._from_low(bank)))),
        ]  # fmt: skip

    def _from_low(self, bank: str) -> Transfer:
        return self.transfer(LOW, bank, DEMO_TIER1_TRADE_MAX_CENTS)

    # --- gov: governance (docs/ledger.md "Governance") ------------------------------------

    def governance(self, bank: str, k: int) -> list[SimTx]:
        """Governance by the demo admins (see the module docstring); nothing here changes
        what the other kinds rely on (banks' tiers are set to what they are)."""
        two, one, t0 = ("COMPLIANCE", "CSD"), ("CSD",), self.t0
        key = crypto.SigningKey(crypto.sha256(b"sim-gov", bytes([k]))).public_key
        new = Participant(f"GOV{k:02d}", key, frozenset({Role.TRADER}), 2)
        token = Instrument(f"GOV{k:02d}.CASHCO", InstrumentKind.CASH, "CASHCO", "EUR")
        cash, bond = self.net.cash, self.net.bonds[0]
        head = (self.chain, self._next(), self.far)

        def cap(iid: str, n: int, as_of: int) -> SetMaxSupply:
            return SetMaxSupply(self.chain, self._next(), self.far, iid, n, bytes(32), as_of, two)

        return [
            self.sim("gov_add_participant", AddParticipant(*head, new, two), R.OK),
            self.sim("gov_add_existing", replace(AddParticipant(*head, new, two),
                     participant=replace(new, id=bank), nonce=self._next()), R.ALREADY_EXISTS),
            self.sim("gov_one_admin", replace(AddParticipant(*head, new, one), nonce=self._next()),
                     R.NOT_ADMIN_QUORUM),
            self.sim("gov_set_tier", SetKycTier(self.chain, self._next(), self.far, bank, 2, two),
                     R.OK),
            self.sim("gov_bad_tier", SetKycTier(self.chain, self._next(), self.far, bank, 9, two),
                     R.INVALID_REFERENCE),
            self.sim("gov_add_instrument",
                     AddInstrument(self.chain, self._next(), self.far, token, two), R.OK),
            self.sim("gov_cap", cap(cash, 2**63, t0 + k), R.OK, R.STALE_ATTESTATION),
            self.sim("gov_cap_future", cap(cash, 2**63, self.far), R.STALE_ATTESTATION),
            self.sim("gov_cap_below_supply", cap(bond, 1, t0), R.CAP_BELOW_SUPPLY),
        ]  # fmt: skip

    # --- lock: locks and swaps (docs/ledger.md "Locks and swaps") ---------------------------

    def _lock(self, bank: str, until_ms: int, secures: Secured = _PLAIN) -> Lock:
        bond = self.net.bonds[0]
        return Lock(self.chain, self._next(), self.far, PLEDGE, bond, PLEDGE_UNITS, bank,
                    until_ms, secures)  # fmt: skip

    def locks(self, bank: str, other: str) -> list[SimTx]:
        """Locks, what they refuse, and swaps (see the module docstring)."""
        pledge = self._lock(bank, self.far - 1)
        lid = SignedTx.decode(_signed(self.net, pledge)).tx_id
        head = (self.chain, self._next(), self.far)
        spend = self.transfer(PLEDGE, bank, 1, instrument=self.net.bonds[0])
        early = ReleaseLock(*head, lid, PLEDGE, PLEDGE)
        # Again later, for a lock that was slow to commit (a view change under chaos).
        late = ReleaseLock(self.chain, self._next(), self.far, lid, PLEDGE, PLEDGE)
        claim = ClaimLock(self.chain, self._next(), self.far, lid, PLEDGE, bank,
                          self.net.bonds[0], PLEDGE_UNITS)  # fmt: skip
        release = ReleaseLock(self.chain, self._next(), self.far, lid, PLEDGE, bank)
        again = ReleaseLock(self.chain, self._next(), self.far, lid, PLEDGE, bank)
        a, b = self.net.bonds
        swap = Swap(self.chain, self._next(), self.far, bank, a, 10, other, b, 9, self.far)
        same = replace(swap, nonce=self._next(), instrument_b=a)
        repo = Secured(SecuredKind.REPO, b"REPO-SIM")
        return [
            replace(self.sim("lock_pledge", pledge, R.OK, R.LOCKED),
                    companions=(self._then(600, spend), self._then(620, early),
                                self._then(640, claim), self._then(1300, late),
                                self._then(1500, release),
                                self._then(1600, again))),
            self.sim("lock_lapsed_terms", self._lock(bank, self.t0 + 1), R.INVALID_LOCK_TERMS),
            self.sim("lock_repo", self._lock(bank, self.far - 1, repo), R.NOT_PENDING),
            self.sim("swap", swap, R.OK, R.INSUFFICIENT_SECURITIES),
            self.sim("swap_same", same, R.SAME_INSTRUMENT),
        ]  # fmt: skip

    def forged(self, raw: bytes, tx: Transaction, bank: str, rng: random.Random) -> list[SimTx]:
        """Copies of a settling trade that no honest node admits (BAD_SIGNATURE, MALFORMED)."""
        stx = SignedTx.decode(raw)
        (signer, sig), *rest = stx.signatures
        flipped = bytearray(sig)
        flipped[rng.randrange(64)] ^= 1 << rng.randrange(8)
        s = int.from_bytes(sig[32:], "little") + crypto.ED25519_L
        malleated = sig[:32] + s.to_bytes(32, "little")
        other = next(b for b in self.net.banks if b not in tx.required_signers())
        wrong = self.net.participant_keys[other].sign(tags.TX + stx.body)

        def env(first: bytes) -> bytes:
            return SignedTx(stx.body, ((signer, first), *rest)).encode()

        bad = frozenset({R.BAD_SIGNATURE})
        mal = frozenset({R.MALFORMED})
        return [
            SimTx(env(bytes(flipped)), tx, "bit_flipped_signature", bad),
            SimTx(env(malleated), tx, "malleated_signature", bad),
            SimTx(env(wrong), tx, "wrong_party", bad),
            SimTx(SignedTx(stx.body, tuple(rest)).encode(), tx, "missing_signature", bad),
            SimTx(raw[: rng.randrange(1, len(raw))], None, "truncated", mal),
            SimTx(rng.randbytes(rng.randint(1, 200)), None, "garbage", mal),
        ]

    def foreign(self, bank: str, other: str) -> list[SimTx]:
        wrong_chain = self.transfer(bank, other, 9, chain_id="other-chain")
        by_bank = Mint(self.chain, self._next(), self.far, self.net.cash, bank, 9, bank)
        observer = self.transfer("COMPLIANCE", other, 9)
        return [
            self.sim("wrong_chain", wrong_chain, R.WRONG_CHAIN),
            self.sim("mint_by_bank", by_bank, R.UNAUTHORIZED),
            self.sim("observer_transfer", observer, R.UNAUTHORIZED),
        ]

    def duplicate(self, raw: bytes, tx: Transaction, salt: int) -> SimTx:
        """Another authentic envelope of ``tx``: the first signer re-signed."""
        stx = SignedTx.decode(raw)
        (signer, _), *rest = stx.signatures
        sig = resign(self.net.participant_keys[signer], tags.TX + stx.body, b"%d" % salt)
        twin = SignedTx(stx.body, ((signer, sig), *rest)).encode()
        return SimTx(twin, tx, "duplicate", frozenset({R.OK, R.DUPLICATE}), twin=raw)


@cache
def refusal_pool(n: int) -> tuple[SimTx, ...]:
    """Every refusal kind several times over (made once per process)."""
    maker, rng = _Maker(n), random.Random(n * 31)
    banks = maker.net.banks
    pool = ok_pool(n)
    out: list[SimTx] = []
    for k in range(4):
        bank, other = banks[k % len(banks)], banks[(k + 1) % len(banks)]
        out += maker.repos(bank, other, k)  # first: its closes must follow it in a run
        out += maker.state_refusals(bank, other, rng)
        out += maker.lifecycle(bank, other, rng)
        out += maker.foreign(bank, other)
        raw, tx = pool[-1 - k]  # forged copies of trades the runner never sends otherwise
        out += maker.forged(raw, tx, bank, rng)
        out.append(maker.duplicate(*pool[-20 - k], salt=k))
        out += maker.pendings(bank, other)
        out += maker.locks(bank, other)  # before freezes: its companions end in the chaos phase
        out += maker.freezes(bank)
        out += maker.attestations(bank)
        out += maker.prices(bank, other)
        out += maker.kyc(bank, other)
        out += maker.governance(bank, k)
    return tuple(out)


@cache
def late_pool(n: int) -> tuple[SimTx, ...]:
    maker = _Maker(n)
    banks = maker.net.banks
    out: list[SimTx] = []
    for k, at in enumerate(range(0, LATE_SPAN_MS, LATE_STEP_MS)):
        out += maker.late(banks[k % len(banks)], banks[(k + 3) % len(banks)], at)
    return tuple(out)


def late_for(n: int, kind: str, offset_ms: int) -> SimTx:
    """The late trade of ``kind`` that turned late just before ``offset_ms``."""
    step = max(0, min(offset_ms - 1, LATE_SPAN_MS - 1)) // LATE_STEP_MS
    return next(t for t in late_pool(n) if t.kind == kind and t.late_at == step * LATE_STEP_MS)


def body_bytes(tx: Transaction) -> bytes:
    return encode_body(tx)
