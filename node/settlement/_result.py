"""The one result-code enum for settlement outcomes, in precedence order.

Checks run in the order of the codes below and the first failing check decides the
outcome, so the same transaction always fails with the same code on every node. A failed
transaction is recorded with its code and changes no balance. Values are stable: they are
on the wire (proto/ledger/v1/ledger.proto mirrors them) and on disk.

No code is 0: on the wire 0 is RESULT_CODE_UNSPECIFIED, what an unset proto3 field reads
as, so a code a node left out can never read as OK (docs/adr/0020-wire-conventions.md).
OK is 80, after the last reserved block: the checks' order, not the codes' values, is the
precedence, so OK's value says nothing about when it is decided.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ResultCode", "decode_result_code"]


class ResultCode(IntEnum):
    """Outcome of one transaction; ``code.meaning`` says what it means in one line."""

    OK = 80  # not 0: see the module docstring (ADR 0020)
    MALFORMED = 1
    BAD_SIGNATURE = 2
    WRONG_CHAIN = 3
    EXPIRED = 4
    DUPLICATE = 5
    UNKNOWN_ACCOUNT = 6
    UNKNOWN_INSTRUMENT = 7
    INVALID_AMOUNT = 8
    SELF_TRADE = 9
    WRONG_INSTRUMENT_KIND = 10
    UNAUTHORIZED = 11
    DEADLINE_PASSED = 12
    INSUFFICIENT_SECURITIES = 13
    INSUFFICIENT_CASH = 14
    OVERFLOW = 15
    SUPPLY_LIMIT = 16
    # Bond lifecycle (issue 14 items 1-3, docs/ledger.md "Lifecycle"); appended, so they
    # come after the codes above in value but are checked where docs/ledger.md says.
    MATURED = 17
    NOT_DUE = 18
    ALREADY_PAID = 19
    NO_SUCH_PERIOD = 20
    COUPON_OUTSTANDING = 21
    # --- pend: pending settlement (node/settlement/_pending.py) ---
    PENDING_SETTLEMENT = 22
    FAILED_DEADLINE = 23
    PARTIALLY_SETTLED = 24
    CANCELLED = 25
    NOT_PENDING = 26
    PENDING_FULL = 27
    # --- freeze: freezes (issue 15 item 3; node/settlement/_freeze.py) ---
    FROZEN = 28
    ALREADY_FROZEN = 29
    NOT_FROZEN = 30
    FREEZES_FULL = 31
    # --- gov: governance (issue 15 item 1; node/settlement/_gov.py) ---
    NOT_ADMIN_QUORUM = 32
    STALE_ATTESTATION = 33
    ALREADY_EXISTS = 34
    REGISTRY_FULL = 35
    CAP_BELOW_SUPPLY = 36
    INVALID_REFERENCE = 37
    # --- reserve: custody and reserves (issue 15 item 2; node/settlement/_reserve.py) ---
    CUSTODY_EXCEEDED = 40
    RESERVES_SHORT = 41
    INVALID_ATTESTATION = 42
    # --- kyc: KYC tiers and AML (issue 15 items 4-5; node/settlement/_compliance.py) ---
    # Reserved for kyc: 48-55. Checked right after FROZEN, in this order.
    COSIGN_REQUIRED = 48
    TIER_TOO_LOW = 49
    TRADE_LIMIT = 50
    DAILY_LIMIT = 51
    # --- lock: locks and swaps (issue 18 items 1 and 4; node/settlement/_lock.py) ---
    # Reserved for lock: 56-63. Checked where docs/ledger.md "Locks and swaps" says.
    LOCKED = 56
    NO_SUCH_LOCK = 57
    NOT_CLAIMABLE = 58
    LOCKS_FULL = 59
    INVALID_LOCK_TERMS = 60
    UNSUPPORTED_SECURED = 61
    SAME_INSTRUMENT = 62
    LOCK_IN_FORCE = 63
    # --- repo: repurchase agreements (issue 18 item 2; node/settlement/_repo.py) ---
    # Reserved for repo: 64-71. Checked where docs/ledger.md "Repo" says.
    NO_SUCH_REPO = 64
    REPO_EXISTS = 65
    REPO_NOT_OPEN = 66
    EARLY_CLOSE_ONE_SIDED = 67
    REPOS_FULL = 68
    REPO_TERMS = 69
    REPO_CLOSE_PINNED = 70
    REPO_LAPSED = 71  # an event only: an OPEN repo past its default deadline (review 32)
    # --- margin: prices, margin calls, substitution (issue 18 item 3; _price.py, _margin.py)
    # Reserved for margin: 72-79.
    NO_FRESH_PRICE = 72
    NO_MARGIN_DEFICIT = 73
    SUBSTITUTION_BELOW_VALUE = 74
    NOT_ELIGIBLE_COLLATERAL = 75
    # 80 is OK (above). The next block of codes starts at 88.

    @property
    def meaning(self) -> str:
        """One line a person can act on."""
        return _MEANINGS[self]


def decode_result_code(value: int, error: type[Exception]) -> ResultCode:
    """The code ``value`` names, or ``error`` (the decoder's one typed error) for 0, which
    is no outcome (ADR 0020), and for any value that is no code: every reader of a code
    from bytes or from the wire goes through here, so none reads a missing code as OK."""
    try:
        return ResultCode(value)
    except ValueError as e:
        why = "no result code (0)" if value == 0 else f"unknown result code {value}"
        raise error(why) from e


_MEANINGS: dict[ResultCode, str] = {
    ResultCode.OK: "applied in full: every leg moved, every record made",
    ResultCode.MALFORMED: "not a canonical transaction encoding, or larger than the size limit",
    ResultCode.BAD_SIGNATURE: (
        "a required signature is missing, invalid or non-canonical (S >= L), is by a party "
        "the ledger does not know, or an unrequired signature is attached"
    ),
    ResultCode.WRONG_CHAIN: "signed for another chain id (another genesis)",
    ResultCode.EXPIRED: "the block time is past the transaction's expiry; sign a new one",
    ResultCode.DUPLICATE: "this transaction id was already recorded; its first outcome stands",
    ResultCode.UNKNOWN_ACCOUNT: "a counterparty is not a participant of this ledger",
    ResultCode.UNKNOWN_INSTRUMENT: "an instrument id is not defined in genesis",
    ResultCode.INVALID_AMOUNT: "a quantity or amount is zero",
    ResultCode.SELF_TRADE: "both sides of the trade or transfer are the same participant",
    ResultCode.WRONG_INSTRUMENT_KIND: (
        "the bond leg is not a bond token or the cash leg is not a cash token"
    ),
    ResultCode.UNAUTHORIZED: (
        "a party lacks the role (issuer, custodian, trader) or KYC tier for this action"
    ),
    ResultCode.DEADLINE_PASSED: "the block time is past the trade's settlement deadline",
    ResultCode.INSUFFICIENT_SECURITIES: (
        "the delivering party holds fewer bond units than required (a redemption: the "
        "holder holds none; a RedeemAll or Distribute: nobody holds the instrument)"
    ),
    ResultCode.INSUFFICIENT_CASH: "the paying party holds less cash than required",
    ResultCode.OVERFLOW: "a balance or the supply would exceed 2**64 - 1",
    ResultCode.SUPPLY_LIMIT: "the mint would exceed the instrument's max_supply (fixed by genesis)",
    ResultCode.MATURED: (
        "the bond has reached its maturity date: it can no longer be transferred, traded, "
        "minted or burned, only redeemed (Redeem, RedeemAll)"
    ),
    ResultCode.NOT_DUE: "the block time has not reached the payment or maturity date yet",
    ResultCode.ALREADY_PAID: (
        "this coupon period or distribution was already paid, or this holding already redeemed"
    ),
    ResultCode.NO_SUCH_PERIOD: (
        "the period is not on the instrument's schedule, or is a bond's final period "
        "(its coupon is paid by redemption)"
    ),
    ResultCode.COUPON_OUTSTANDING: (
        "an earlier coupon period of the bond is unpaid; the paying agent pays it "
        "(CouponPay) before redemption"
    ),
    ResultCode.PENDING_SETTLEMENT: (
        "a leg is short: the instruction waits, re-attempted at the end of every block until "
        "it settles or its deadline passes (a later event gives the final outcome)"
    ),
    ResultCode.FAILED_DEADLINE: (
        "the pending instruction's deadline (or the pending age limit) passed before both "
        "legs were available; nothing more moves"
    ),
    ResultCode.PARTIALLY_SETTLED: "some lots of the pending instruction settled; the rest waits",
    ResultCode.CANCELLED: "both parties cancelled the pending instruction; its rest never settles",
    ResultCode.NOT_PENDING: (
        "the named instruction is not pending: unknown, settled, failed or cancelled (a "
        "Lock: the pending DvP or repo it secures is not live: unknown or ended)"
    ),
    ResultCode.PENDING_FULL: (
        "the ledger already holds the maximum number of pending instructions, in all or "
        "naming a party of this trade; nothing moved"
    ),
    ResultCode.FROZEN: (
        "a leg debits or credits a frozen account or holding (a regulator's Freeze); "
        "nothing moved; it can move again after an Unfreeze"
    ),
    ResultCode.ALREADY_FROZEN: "this account or holding is already frozen; the freeze stands",
    ResultCode.NOT_FROZEN: "this account or holding is not frozen; there is nothing to unfreeze",
    ResultCode.FREEZES_FULL: (
        "the ledger already holds the maximum number of freezes (FREEZES_MAX); unfreeze one"
    ),
    ResultCode.NOT_ADMIN_QUORUM: (
        "a governance transaction needs signatures of at least k admins and of admins only "
        "(genesis governance); nothing changed"
    ),
    ResultCode.STALE_ATTESTATION: (
        "the attestation's as-of is not newer than the last one recorded, or is after the "
        "block time; nothing changed"
    ),
    ResultCode.CUSTODY_EXCEEDED: (
        "the mint would take the bond's supply above the amount in custody its custodian "
        "last attested; nothing moved; the custodian attests the new holding first"
    ),
    ResultCode.RESERVES_SHORT: (
        "the mint would take the cash token's supply above the reserves its issuer last "
        "attested (coverage below 100%); nothing moved; attest the new reserves first"
    ),
    ResultCode.INVALID_ATTESTATION: (
        "a bill's CUSIP is malformed or fails its check digit, bills are not in CUSIP order "
        "without repeats, a bill's amount is zero, or the reserves overflow 2**64 - 1"
    ),
    ResultCode.COSIGN_REQUIRED: (
        "the cash amount is above the token's large-value (AML) threshold and no compliance "
        "participant other than the parties co-signed, or the named co-signer is not one; "
        "sign again with a compliance co-signer (ledger sign ... --cosign)"
    ),
    ResultCode.TIER_TOO_LOW: (
        "a receiving party's KYC tier is below the instrument's minimum tier to hold"
    ),
    ResultCode.TRADE_LIMIT: "the cash amount exceeds a party's per-trade limit for its KYC tier",
    ResultCode.DAILY_LIMIT: (
        "the cash amount would take a party's volume in the rolling 24 hours past its "
        "tier's daily limit; nothing moved"
    ),
    ResultCode.NO_SUCH_REPO: "no repo with this id was ever opened; nothing moved",
    ResultCode.REPO_EXISTS: (
        "a repo with this id was already opened (ids are never reused); nothing moved"
    ),
    ResultCode.REPO_NOT_OPEN: (
        "the repo is not open: already closed, defaulted, or its close is pending; nothing moved"
    ),
    ResultCode.EARLY_CLOSE_ONE_SIDED: (
        "before the repo's close time a close needs both parties' signatures; nothing moved"
    ),
    ResultCode.REPOS_FULL: (
        "a party already has REPO_OPEN_PER_PARTY_MAX open repos, or the ledger REPO_OPEN_MAX; "
        "nothing moved"
    ),
    ResultCode.REPO_TERMS: (
        "the repo's terms do not hold together: close time not after the block time or not "
        "before the bond's maturity, default deadline before the close time, both a "
        "repurchase amount and a rate, or an amount due at the close time above 2**64 - 1; "
        "nothing moved"
    ),
    ResultCode.REPO_CLOSE_PINNED: (
        "the pending instruction is a repo's close leg: neither party may hold or cancel it "
        "(it settles or the repo defaults at its deadline)"
    ),
    ResultCode.REPO_LAPSED: (
        "event: the repo was still open when the block time passed its default deadline "
        "(no close submitted, or none the rules let settle); it ended DEFAULTED and nothing "
        "moved; its record names the defaulter, if any (ledger repo list); the event's id "
        "is the RepoOpen's"
    ),
    ResultCode.NO_FRESH_PRICE: (
        "fewer than the genesis threshold k of price sources attested the instrument within "
        "the genesis max price age; nothing moved; the sources attest a fresh price first"
    ),
    ResultCode.NO_MARGIN_DEFICIT: (
        "the collateral, valued at the fresh price after its haircut, covers the repo's "
        "exposure; there is nothing to call and nothing moved"
    ),
    ResultCode.SUBSTITUTION_BELOW_VALUE: (
        "the new collateral, valued at the fresh price after its haircut, is below the "
        "repo's exposure; nothing moved; offer more units"
    ),
    ResultCode.NOT_ELIGIBLE_COLLATERAL: (
        "the instrument is not in the genesis haircut schedule, or its price is quoted in "
        "another cash token than the repo's; nothing moved"
    ),
    ResultCode.ALREADY_EXISTS: "a participant or instrument with this id exists; nothing changed",
    ResultCode.REGISTRY_FULL: (
        "the ledger already has PARTICIPANTS_MAX participants or INSTRUMENTS_MAX instruments"
    ),
    ResultCode.CAP_BELOW_SUPPLY: (
        "the new maximum supply is below the instrument's outstanding supply; nothing changed"
    ),
    ResultCode.INVALID_REFERENCE: (
        "the participant or instrument fails the checks genesis applies (key, KYC tier, "
        "roles, ISIN, terms, issuer or agent roles); nothing changed"
    ),
    ResultCode.LOCKED: (
        "the debit would spend units a Lock pledges (they stay in the balance but cannot "
        "move); nothing moved; the beneficiary releases the lock (ledger lock release)"
    ),
    ResultCode.NO_SUCH_LOCK: "no lock has this id: never created, released or claimed",
    ResultCode.NOT_CLAIMABLE: (
        "the lock secures no obligation, the obligation has no default by the holder "
        "recorded on the ledger, or the lock lapsed (block time past its until); nothing moved"
    ),
    ResultCode.LOCKS_FULL: (
        "the holder already has LOCKS_PER_HOLDER_MAX locks; release one; nothing changed"
    ),
    ResultCode.INVALID_LOCK_TERMS: (
        "the lock's until is not after the block time or not before the bond's maturity, "
        "or holder and beneficiary are not the two parties of the trade or repo it secures"
    ),
    ResultCode.UNSUPPORTED_SECURED: (
        "the lock names a kind of secured obligation this ledger does not support (not "
        "returned: every kind that decodes is supported; kept for a kind a later version adds)"
    ),
    ResultCode.SAME_INSTRUMENT: "both legs of the swap are the same instrument",
    ResultCode.LOCK_IN_FORCE: (
        "only the beneficiary releases a lock before its until; the holder may after it"
    ),
}
