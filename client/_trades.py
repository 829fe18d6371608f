"""Building, signing and exchanging transactions, all offline.

Theory of operation: a transaction body is built (:class:`Transactions`) and checked
against genesis so a typo fails here with the field named, not later as a ledger result
code. Its canonical bytes never change after that: every signature is over them and the
transaction id is their hash, so a partially signed DvP can travel as bytes or JSON and
be co-signed without re-encoding. The JSON forms also show the terms readably; on
reading, the readable terms must equal the signed bytes, so editing the text cannot
change what a counterparty is shown without being caught.

A DvP needs both parties: the seller :func:`propose_dvp` (signs, exports), the buyer
:func:`accept_dvp` (checks the seller's signature, the chain, the expiry and the terms it
expects, then co-signs).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from client._errors import (
    InvalidFieldError,
    InvalidTransactionError,
    SigningError,
    TermsMismatchError,
    TradeError,
)
from client._keys import ParticipantKey
from client._limits import (
    NONCE_BITS,
    OFFER_CLOCK_SLACK_S,
    TRADE_JSON_CHARS_MAX,
    TTL_DEFAULT_S,
    TTL_MAX_S,
)
from node import crypto, tags
from node.config import RESERVE_BILLS_MAX, TX_BYTES_MAX, U64_MAX
from node.settlement import (
    KYC_TIER_MAX,
    AddInstrument,
    AddParticipant,
    AttestCustody,
    AttestPrice,
    AttestReserves,
    Bill,
    Burn,
    Cancel,
    ClaimLock,
    ComplianceRules,
    CouponPay,
    DecodeError,
    Distribute,
    DvP,
    Freeze,
    FreezeReason,
    Genesis,
    Hold,
    Instrument,
    InstrumentKind,
    Lock,
    MarginCall,
    Mint,
    Participant,
    PendingDvP,
    Redeem,
    RedeemAll,
    Registry,
    Release,
    ReleaseLock,
    RepoClose,
    RepoOpen,
    RepoSubstitute,
    Role,
    RotateKey,
    Secured,
    SecuredKind,
    SetComplianceRules,
    SetKycTier,
    SetMaxSupply,
    SetRoles,
    SignedTx,
    Swap,
    Transaction,
    Transfer,
    Unfreeze,
    check_rules,
    decode_body,
    encode_body,
    valid_cusip,
)
from node.settlement._codec import check_id

__all__ = [
    "PartialTrade",
    "SignedTransaction",
    "Transactions",
    "accept_dvp",
    "cosign",
    "propose_dvp",
    "sign",
    "terms_of",
]

_TX_FORMAT = "dvp-ledger/transaction/v1"
_TRADE_FORMAT = "dvp-ledger/dvp-proposal/v1"


# --- builders ----------------------------------------------------------------------------


class Transactions:
    """Builds unsigned transactions for one genesis, with a fresh random nonce each and an
    expiry ``ttl_s`` from now. Each field is checked against genesis (InvalidFieldError
    names the field): participants and instruments exist, the bond leg is a bond and the
    cash leg cash, amounts are integers in 1..2**64-1, no self-trades. Roles, KYC and
    balances are the ledger's to judge (it answers with a result code)."""

    def __init__(
        self,
        genesis: Genesis,
        ttl_s: float = TTL_DEFAULT_S,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (
            isinstance(ttl_s, bool)
            or not isinstance(ttl_s, int | float)
            or not 0 < ttl_s <= TTL_MAX_S
        ):
            raise InvalidFieldError("ttl_s", f"must be a number of seconds in (0, {TTL_MAX_S}]")
        self.genesis, self.ttl_s, self._clock = genesis, ttl_s, clock
        # Participants and instruments the builders check names against: genesis until
        # the client reads the ledger's reference data (``refresh_reference``, ADR 0016).
        self.reference: Genesis | Registry = genesis

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _head(self) -> dict[str, Any]:
        return {
            "chain_id": self.genesis.chain_id,
            "nonce": secrets.randbits(NONCE_BITS),
            "expiry_ms": self._now_ms() + int(self.ttl_s * 1000),
        }

    def _participant(self, field: str, pid: str) -> str:
        if pid not in self.reference.participant_by_id:
            raise InvalidFieldError(field, f"{pid!r} is not a participant of this ledger")
        return pid

    def _instrument(self, field: str, iid: str, kind: InstrumentKind | None = None) -> str:
        inst = self.reference.instrument_by_id.get(iid)
        if inst is None:
            raise InvalidFieldError(field, f"{iid!r} is not an instrument of this ledger")
        if kind is not None and inst.kind is not kind:
            raise InvalidFieldError(
                field, f"{iid!r} is a {inst.kind.value} token, not {kind.value}"
            )
        return iid

    @staticmethod
    def _amount(field: str, value: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidFieldError(field, f"must be an integer (minor units), got {value!r}")
        if not 0 < value <= U64_MAX:
            raise InvalidFieldError(field, f"must be in 1..2**64-1, got {value}")
        return value

    def issue(self, instrument: str, to: str, amount: int, by: str) -> Mint:
        """Mint ``amount`` of ``instrument`` to ``to``; ``by`` (issuer or custodian) signs."""
        return Mint(
            **self._head(),
            instrument=self._instrument("instrument", instrument),
            to=self._participant("to", to),
            amount=self._amount("amount", amount),
            by=self._participant("by", by),
        )

    def redeem(self, instrument: str, holder: str, amount: int, by: str) -> Burn:
        """Burn ``amount`` held by ``holder``; both ``by`` and the holder sign. Pays
        nothing: redemption for cash at maturity is :meth:`redeem_bond`."""
        return Burn(
            **self._head(),
            instrument=self._instrument("instrument", instrument),
            holder=self._participant("holder", holder),
            amount=self._amount("amount", amount),
            by=self._participant("by", by),
        )

    def transfer(
        self, instrument: str, sender: str, receiver: str, amount: int, *, cosigner: str = ""
    ) -> Transfer:
        """Move ``amount`` free of payment; the sender signs (and ``cosigner``, a compliance
        participant, when the amount of a cash token is above its AML threshold)."""
        self._participant("sender", sender)
        if receiver == sender:
            raise InvalidFieldError("receiver", "is the sender (a self-transfer)")
        return Transfer(
            **self._head(),
            instrument=self._instrument("instrument", instrument),
            sender=sender,
            receiver=self._participant("receiver", receiver),
            amount=self._amount("amount", amount),
            cosigner=self._cosigner(cosigner, (sender, receiver)),
        )

    def _cosigner(self, cosigner: str, parties: tuple[str, ...]) -> str:
        """A co-signer the ledger will count: a compliance participant, not a party
        (docs/ledger.md "KYC tiers and AML"); "" for none."""
        if not cosigner:
            return ""
        party = self.reference.participant_by_id.get(cosigner)
        if party is None or Role.COMPLIANCE not in party.roles or cosigner in parties:
            raise InvalidFieldError(
                "cosigner", f"{cosigner!r} is not a compliance participant other than the parties"
            )
        return cosigner

    def dvp(  # noqa: PLR0917 - positional like the trade's terms, in their order
        self,
        seller: str,
        buyer: str,
        bond: str,
        quantity: int,
        cash: str,
        amount: int,
        deadline_s: float | None = None,
        *,
        cosigner: str = "",
    ) -> DvP:
        """``quantity`` of ``bond`` against ``amount`` of ``cash``; both parties sign, and
        ``cosigner`` (a compliance participant) when the amount is above the cash token's
        AML threshold. The deadline (settle by) defaults to the expiry."""
        self._participant("seller", seller)
        if buyer == seller:
            raise InvalidFieldError("buyer", "is the seller (a self-trade)")
        head = self._head()
        deadline_ms = head["expiry_ms"]
        if deadline_s is not None:
            if isinstance(deadline_s, bool) or not isinstance(deadline_s, int | float):
                raise InvalidFieldError("deadline_s", "must be a number of seconds")
            if not 0 < deadline_s <= TTL_MAX_S:
                raise InvalidFieldError("deadline_s", f"must be in (0, {TTL_MAX_S}] seconds")
            deadline_ms = self._now_ms() + int(deadline_s * 1000)
        return DvP(
            **head,
            seller=seller,
            buyer=self._participant("buyer", buyer),
            bond=self._instrument("bond", bond, InstrumentKind.BOND),
            quantity=self._amount("quantity", quantity),
            cash=self._instrument("cash", cash, InstrumentKind.CASH),
            amount=self._amount("amount", amount),
            deadline_ms=deadline_ms,
            cosigner=self._cosigner(cosigner, (seller, buyer)),
        )

    # --- life: the bond lifecycle (docs/ledger.md "Lifecycle") ---------------------------

    def _agent(self, field: str, iid: str, agent: str | None) -> str:
        """The instrument's paying agent; ``agent``, if given, must be it."""
        expected = self.reference.instrument_by_id[iid].agent
        if agent is not None and agent != expected:
            raise InvalidFieldError(
                field, f"{agent!r} is not the paying agent of {iid} ({expected})"
            )
        return expected

    def _period(self, iid: str, period: int, payable: int) -> int:
        if isinstance(period, bool) or not isinstance(period, int) or not 1 <= period <= payable:
            which = f"periods 1..{payable}" if payable > 0 else "no period"
            raise InvalidFieldError("period", f"{iid} has {which} payable this way, got {period!r}")
        return period

    def coupon(self, bond: str, period: int, agent: str | None = None) -> CouponPay:
        """Pay coupon ``period`` of ``bond`` to its holders of record; the paying agent
        signs. The final period is paid by redemption, not here."""
        self._instrument("bond", bond, InstrumentKind.BOND)
        payable = len(self.reference.schedules[bond]) - 1
        return CouponPay(
            **self._head(),
            bond=bond,
            period=self._period(bond, period, payable),
            agent=self._agent("agent", bond, agent),
        )

    def distribute(
        self, fund: str, period: int, total: int, agent: str | None = None
    ) -> Distribute:
        """Distribute ``total`` (minor units of the fund's payment cash) over the fund's
        holders for ``period``; the paying agent signs."""
        self._instrument("fund", fund, InstrumentKind.FUND)
        return Distribute(
            **self._head(),
            fund=fund,
            period=self._period(fund, period, len(self.reference.schedules[fund])),
            total=self._amount("total", total),
            agent=self._agent("agent", fund, agent),
        )

    def redeem_bond(self, bond: str, holder: str) -> Redeem:
        """At maturity: burn all of ``holder``'s units for face value plus the final
        coupon, paid by the agent; the holder signs."""
        return Redeem(
            **self._head(),
            bond=self._instrument("bond", bond, InstrumentKind.BOND),
            holder=self._participant("holder", holder),
        )

    def redeem_all(self, bond: str, agent: str | None = None) -> RedeemAll:
        """At maturity: redeem every holder of ``bond``; the paying agent signs."""
        self._instrument("bond", bond, InstrumentKind.BOND)
        return RedeemAll(**self._head(), bond=bond, agent=self._agent("agent", bond, agent))

    # --- pend: pending settlement (docs/ledger.md "Pending settlement", ADR 0014) ----------

    def pending_dvp(  # noqa: PLR0917 - positional like the trade's terms, in their order
        self,
        seller: str,
        buyer: str,
        bond: str,
        quantity: int,
        cash: str,
        amount: int,
        deadline_s: float | None = None,
        lot: int = 0,
        *,
        cosigner: str = "",
    ) -> PendingDvP:
        """A DvP that waits until its deadline when a leg is short (``PENDING_SETTLEMENT``)
        instead of failing; ``lot`` > 0 lets it settle in multiples of ``lot`` bond units,
        which must split ``quantity`` and ``amount`` into whole lots of one price."""
        d = self.dvp(seller, buyer, bond, quantity, cash, amount, deadline_s, cosigner=cosigner)
        if isinstance(lot, bool) or not isinstance(lot, int) or not 0 <= lot <= quantity:
            raise InvalidFieldError("lot", f"must be an integer in 0..quantity, got {lot!r}")
        if lot and (quantity % lot or amount % (quantity // lot)):
            raise InvalidFieldError(
                "lot", f"{lot} does not split {quantity} units for {amount} into equal lots"
            )
        fields = {f.name: getattr(d, f.name) for f in dataclasses.fields(d)}
        return PendingDvP(**fields, lot=lot)

    def hold(self, instruction: bytes, by: str) -> Hold:
        """Stop re-attempting the pending trade ``instruction`` (its tx id); ``by`` signs."""
        return Hold(**self._head(), instruction=_instruction(instruction), by=self._party(by))

    def release(self, instruction: bytes, by: str) -> Release:
        """Lift ``by``'s own hold on ``instruction``; ``by`` signs."""
        return Release(**self._head(), instruction=_instruction(instruction), by=self._party(by))

    def cancel(self, instruction: bytes, seller: str, buyer: str) -> Cancel:
        """Withdraw the pending trade ``instruction``; both its parties sign."""
        return Cancel(
            **self._head(),
            instruction=_instruction(instruction),
            seller=self._participant("seller", seller),
            buyer=self._participant("buyer", buyer),
        )

    def _party(self, by: str) -> str:
        return self._participant("by", by)

    # --- freeze: freezes (docs/ledger.md "Freezes") -------------------------------------

    def freeze(
        self,
        account: str,
        by: str,
        reason: FreezeReason | str | int,
        instrument: str | None = None,
    ) -> Freeze:
        """Freeze ``account``, or only its holding of ``instrument``; ``by`` (a regulator;
        for a whole account, a compliance officer too) signs. ``reason``: a
        ``FreezeReason``, its name (``"SANCTIONS"``) or its number."""
        account, instrument = self._target(account, instrument)
        return Freeze(
            **self._head(),
            account=account,
            instrument=instrument,
            reason=_reason(reason),
            by=self._party(by),
        )

    def unfreeze(self, account: str, by: str, instrument: str | None = None) -> Unfreeze:
        """Lift the freeze of ``account`` (or of its holding of ``instrument``)."""
        account, instrument = self._target(account, instrument)
        return Unfreeze(**self._head(), account=account, instrument=instrument, by=self._party(by))

    # --- gov: governance (docs/ledger.md "Governance") -----------------------------------
    # Each names the admins who will sign it (sorted here); they must be admins of this
    # genesis and at least k of them, else InvalidFieldError("admins").

    def add_participant(
        self,
        participant: str,
        public_key: bytes,
        roles: Iterable[Role | str],
        kyc_tier: int,
        admins: Iterable[str],
    ) -> AddParticipant:
        """Add a participant with its public key, roles and KYC tier (0..3)."""
        p = Participant(
            _new_id("participant", participant),
            _public_key(public_key),
            _roles(roles),
            _tier(kyc_tier),
        )
        if p.id in self.reference.participant_by_id:
            raise InvalidFieldError("participant", f"{p.id!r} is a participant already")
        return AddParticipant(**self._head(), participant=p, admins=self._admins(admins))

    def set_roles(
        self, participant: str, roles: Iterable[Role | str], admins: Iterable[str]
    ) -> SetRoles:
        """Replace a participant's roles."""
        pid = self._participant("participant", participant)
        return SetRoles(
            **self._head(), participant=pid, roles=_roles(roles), admins=self._admins(admins)
        )

    def set_kyc_tier(self, participant: str, kyc_tier: int, admins: Iterable[str]) -> SetKycTier:
        """Set a participant's KYC tier (0: it may no longer hold or move assets)."""
        pid = self._participant("participant", participant)
        return SetKycTier(
            **self._head(), participant=pid, kyc_tier=_tier(kyc_tier), admins=self._admins(admins)
        )

    def rotate_key(self, participant: str, public_key: bytes, admins: Iterable[str]) -> RotateKey:
        """Replace a participant's key; its old key is refused from then on."""
        pid = self._participant("participant", participant)
        return RotateKey(
            **self._head(),
            participant=pid,
            public_key=_public_key(public_key),
            admins=self._admins(admins),
        )

    def add_instrument(self, instrument: Instrument, admins: Iterable[str]) -> AddInstrument:
        """Add an instrument with its full terms (the ledger checks them as genesis does)."""
        if not isinstance(instrument, Instrument):
            raise InvalidFieldError("instrument", "must be a node.settlement.Instrument")
        if instrument.id in self.reference.instrument_by_id:
            raise InvalidFieldError("instrument", f"{instrument.id!r} exists already")
        return AddInstrument(**self._head(), instrument=instrument, admins=self._admins(admins))

    def set_max_supply(
        self,
        instrument: str,
        cap: int,
        attestation_sha256: bytes,
        as_of_ms: int,
        admins: Iterable[str],
    ) -> SetMaxSupply:
        """Cap an instrument's supply on an attestation (its document's SHA-256, its as-of
        time, which must be newer than the last one's and not after the block time)."""
        if not isinstance(attestation_sha256, bytes) or len(attestation_sha256) != 32:
            raise InvalidFieldError("attestation_sha256", "must be 32 bytes (a SHA-256)")
        return SetMaxSupply(
            **self._head(),
            instrument=self._instrument("instrument", instrument),
            cap=self._amount("cap", cap),
            attestation_sha256=attestation_sha256,
            as_of_ms=self._amount("as_of_ms", as_of_ms),
            admins=self._admins(admins),
        )

    def set_compliance_rules(
        self, rules: ComplianceRules, admins: Iterable[str]
    ) -> SetComplianceRules:
        """Replace the KYC tier and AML rules in force, whole (docs/ledger.md "KYC tiers
        and AML"); checked here as the ledger checks them: every instrument they name
        exists and is of the kind its table needs."""
        kinds = {i.id: i.kind.value for i in self.reference.instrument_by_id.values()}
        try:
            check_rules(rules, kinds)
        except ValueError as e:
            raise InvalidFieldError("rules", str(e)) from None
        return SetComplianceRules(**self._head(), rules=rules, admins=self._admins(admins))

    def _admins(self, admins: Iterable[str]) -> tuple[str, ...]:
        if isinstance(admins, str):
            admins = admins.split(",")
        names = tuple(sorted(set(admins)))
        known, k = self.genesis.admins, self.genesis.admin_threshold
        if not known:
            raise InvalidFieldError("admins", "this ledger's genesis names no admins")
        if not set(names) <= set(known) or len(names) < k:
            raise InvalidFieldError(
                "admins", f"need at least {k} of the admins {', '.join(known)}; got {names}"
            )
        return names

    def _target(self, account: str, instrument: str | None) -> tuple[str, str]:
        """(account, instrument or "" for the whole account), both checked against genesis."""
        account = self._participant("account", account)
        return account, self._instrument("instrument", instrument) if instrument else ""

    # --- reserve: custody and reserves (docs/ledger.md "Custody and reserves") ----------

    def attest_custody(
        self, custodian: str, bond: str, amount: int, as_of_ms: int, document_sha256: bytes
    ) -> AttestCustody:
        """``custodian`` (the one genesis names for ``bond``) attests ``amount`` units in
        custody as of ``as_of_ms``; ``document_sha256`` hashes the custody statement."""
        return AttestCustody(
            **self._head(),
            custodian=self._participant("custodian", custodian),
            bond=self._instrument("bond", bond, InstrumentKind.BOND),
            amount=_u64("amount", amount),
            as_of_ms=_u64("as_of_ms", as_of_ms),
            document_sha256=_digest(document_sha256),
        )

    def attest_reserves(  # noqa: PLR0917 - positional like the statement's fields
        self,
        issuer: str,
        cash: str,
        as_of_ms: int,
        document_sha256: bytes,
        deposits: int,
        bills: Sequence[Bill | tuple[str, str, int]] = (),
    ) -> AttestReserves:
        """``issuer`` attests the reserves behind ``cash``: ``deposits`` and ``bills``
        (``Bill`` or (CUSIP, YYYY-MM-DD maturity, amount)), put in CUSIP order here."""
        return AttestReserves(
            **self._head(),
            issuer=self._participant("issuer", issuer),
            cash=self._instrument("cash", cash, InstrumentKind.CASH),
            as_of_ms=_u64("as_of_ms", as_of_ms),
            document_sha256=_digest(document_sha256),
            deposits=_u64("deposits", deposits),
            bills=_bills(bills),
        )

    # --- lock: locks and swaps (docs/ledger.md "Locks and swaps") ------------------------

    def lock(  # noqa: PLR0917 - positional like the pledge's terms, in their order
        self,
        holder: str,
        instrument: str,
        amount: int,
        beneficiary: str,
        until_ms: int,
        secures: Secured | bytes | str = b"",
    ) -> Lock:
        """Pledge ``amount`` of ``holder``'s ``instrument`` to ``beneficiary`` until
        ``until_ms``; both sign. ``secures``: the trade id (bytes) of the pending DvP it
        secures, or the id (str) of the repo it secures (the beneficiary may claim it if
        the holder fails that trade or defaults on that repo), a ``Secured``, or empty (a
        plain pledge, released but never claimed). Its id is the tx id."""
        if holder == beneficiary:
            raise InvalidFieldError("beneficiary", "must not be the holder")
        return Lock(
            **self._head(),
            holder=self._participant("holder", holder),
            instrument=self._instrument("instrument", instrument),
            amount=self._amount("amount", amount),
            beneficiary=self._participant("beneficiary", beneficiary),
            until_ms=_u64("until_ms", until_ms),
            secures=_secured(secures),
        )

    def release_lock(self, lock: bytes, holder: str, by: str) -> ReleaseLock:
        """End ``holder``'s lock ``lock`` (its id) without moving anything; ``by`` signs:
        the beneficiary at any time, the holder once the lock's until has passed."""
        return ReleaseLock(
            **self._head(),
            lock=_lock_id(lock),
            holder=self._participant("holder", holder),
            by=self._party(by),
        )

    def claim_lock(
        self,
        lock: bytes,
        holder: str,
        beneficiary: str,
        instrument: str,
        amount: int,
        *,
        cosigner: str = "",
    ) -> ClaimLock:
        """Take the ``amount`` units of ``instrument`` of ``holder``'s lock ``lock`` on its
        recorded default; the beneficiary signs (and ``cosigner``, a compliance
        participant, for cash above the token's AML threshold). The terms must be the
        lock's (``locks()`` lists them), else the ledger answers NO_SUCH_LOCK."""
        return ClaimLock(
            **self._head(),
            lock=_lock_id(lock),
            holder=self._participant("holder", holder),
            beneficiary=self._participant("beneficiary", beneficiary),
            instrument=self._instrument("instrument", instrument),
            amount=self._amount("amount", amount),
            cosigner=self._cosigner(cosigner, (holder, beneficiary)),
        )

    def swap(  # noqa: PLR0917 - positional like the exchange's terms, in their order
        self,
        party_a: str,
        instrument_a: str,
        quantity_a: int,
        party_b: str,
        instrument_b: str,
        quantity_b: int,
        deadline_ms: int | None = None,
    ) -> Swap:
        """Bond for bond: ``quantity_a`` of ``instrument_a`` from ``party_a`` to
        ``party_b`` and ``quantity_b`` of ``instrument_b`` back, both legs or neither;
        both sign. ``deadline_ms`` defaults to the expiry."""
        if party_a == party_b:
            raise InvalidFieldError("party_b", "must not be party_a (a self-trade)")
        if instrument_a == instrument_b:
            raise InvalidFieldError("instrument_b", "must not be instrument_a")
        head = self._head()
        return Swap(
            **head,
            party_a=self._participant("party_a", party_a),
            instrument_a=self._instrument("instrument_a", instrument_a, InstrumentKind.BOND),
            quantity_a=self._amount("quantity_a", quantity_a),
            party_b=self._participant("party_b", party_b),
            instrument_b=self._instrument("instrument_b", instrument_b, InstrumentKind.BOND),
            quantity_b=self._amount("quantity_b", quantity_b),
            deadline_ms=head["expiry_ms"] if deadline_ms is None else _u64("deadline", deadline_ms),
        )

    # --- repo: repurchase agreements (docs/ledger.md "Repo") ----------------------------

    def repo_open(  # noqa: PLR0917 - positional like the repo's terms, in their order
        self,
        repo_id: str,
        borrower: str,
        lender: str,
        bond: str,
        quantity: int,
        cash: str,
        purchase_amount: int,
        close_ms: int,
        default_ms: int,
        *,
        rate_bp: int = 0,
        repurchase_amount: int = 0,
        cosigner: str = "",
    ) -> RepoOpen:
        """Repo ``repo_id``: ``borrower`` sells ``quantity`` of ``bond`` to ``lender`` for
        ``purchase_amount`` and buys it back from ``close_ms`` at ``repurchase_amount``, or
        (0) at the purchase plus ACT/360 interest at ``rate_bp``; a close the borrower
        cannot pay waits until ``default_ms``. Both parties sign (and ``cosigner``, a
        compliance participant, above the cash token's AML threshold)."""
        if borrower == lender:
            raise InvalidFieldError("lender", "must differ from the borrower")
        if repurchase_amount and rate_bp:
            raise InvalidFieldError("rate_bp", "give a repurchase amount or a rate, not both")
        if isinstance(rate_bp, bool) or not isinstance(rate_bp, int) or not 0 <= rate_bp < 2**32:
            raise InvalidFieldError("rate_bp", f"must be an integer in 0..2**32-1, got {rate_bp!r}")
        if _u64("default_ms", default_ms) < _u64("close_ms", close_ms):
            raise InvalidFieldError("default_ms", "must not be before close_ms")
        return RepoOpen(
            **self._head(),
            id=_new_id("repo_id", repo_id),
            borrower=self._participant("borrower", borrower),
            lender=self._participant("lender", lender),
            bond=self._instrument("bond", bond, InstrumentKind.BOND),
            quantity=self._amount("quantity", quantity),
            cash=self._instrument("cash", cash, InstrumentKind.CASH),
            purchase_amount=self._amount("purchase_amount", purchase_amount),
            repurchase_amount=repurchase_amount
            and self._amount("repurchase_amount", repurchase_amount),
            rate_bp=rate_bp,
            close_ms=close_ms,
            default_ms=default_ms,
            cosigner=self._cosigner(cosigner, (borrower, lender)),
        )

    def repo_close(
        self, repo_id: str, borrower: str, lender: str, *by: str, cosigner: str = ""
    ) -> RepoClose:
        """Close repo ``repo_id`` of ``borrower`` and ``lender`` (its record's parties:
        ``client.repos(repo_id)``), signed by ``by``: one party from the repo's close
        time, both before it (and ``cosigner`` above the AML threshold, as for the open)."""
        if not 1 <= len(set(by)) <= 2:
            raise InvalidFieldError("by", "one or both of the repo's parties sign a close")
        signers = tuple(sorted({self._party(b) for b in by}))
        return RepoClose(
            **self._head(),
            id=_new_id("repo_id", repo_id),
            borrower=self._participant("borrower", borrower),
            lender=self._participant("lender", lender),
            by=signers,
            cosigner=self._cosigner(cosigner, signers),
        )

    # --- margin: prices, margin calls, substitution (docs/ledger.md "Prices, margin and
    # substitution") -----------------------------------------------------------------------

    def attest_price(self, source: str, instrument: str, price: int, as_of_ms: int) -> AttestPrice:
        """``source`` (a price source genesis names) attests that ``instrument`` is worth
        ``price`` minor units of its quote cash per PRICE_UNITS (1,000,000) units, as of
        ``as_of_ms``; the ledger judges who may attest and what is fresh."""
        return AttestPrice(
            **self._head(),
            source=self._participant("source", source),
            instrument=self._instrument("instrument", instrument, InstrumentKind.BOND),
            price=self._amount("price", price),
            as_of_ms=_u64("as_of_ms", as_of_ms),
        )

    def margin_call(self, repo: str, borrower: str, lender: str) -> MarginCall:
        """The lender calls margin on ``repo`` (signed by the lender alone)."""
        return MarginCall(
            **self._head(),
            repo=_new_id("repo", repo),
            borrower=self._participant("borrower", borrower),
            lender=self._participant("lender", lender),
        )

    def repo_substitute(
        self, repo: str, borrower: str, lender: str, instrument: str, quantity: int
    ) -> RepoSubstitute:
        """Swap ``repo``'s collateral for ``quantity`` of ``instrument`` (signed by both)."""
        if borrower == lender:
            raise InvalidFieldError("lender", "the borrower and the lender must differ")
        return RepoSubstitute(
            **self._head(),
            repo=_new_id("repo", repo),
            borrower=self._participant("borrower", borrower),
            lender=self._participant("lender", lender),
            instrument=self._instrument("instrument", instrument, InstrumentKind.BOND),
            quantity=self._amount("quantity", quantity),
        )


def _u64(field: str, value: int) -> int:
    """An integer in 0..2**64-1 (an attested amount may be zero)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise InvalidFieldError(field, f"must be an integer in 0..2**64-1, got {value!r}")
    return value


def _digest(value: bytes) -> bytes:
    if not isinstance(value, bytes) or len(value) != crypto.HASH_LEN:
        raise InvalidFieldError("document_sha256", "must be a 32-byte SHA-256 digest")
    return value


def _bills(bills: Sequence[Bill | tuple[str, str, int]]) -> tuple[Bill, ...]:
    """Bills checked one by one (CUSIP check digit, a date, an amount) in CUSIP order."""
    if len(bills) > RESERVE_BILLS_MAX:
        raise InvalidFieldError("bills", f"at most {RESERVE_BILLS_MAX}, got {len(bills)}")
    out = []
    for b in bills:
        cusip, maturity, amount = (b.cusip, b.maturity, b.amount) if isinstance(b, Bill) else b
        if not isinstance(cusip, str) or not valid_cusip(cusip):
            raise InvalidFieldError("bills", f"{cusip!r} is not a CUSIP with a valid check digit")
        try:
            date.fromisoformat(maturity)
        except (TypeError, ValueError):
            msg = f"{cusip}: maturity {maturity!r} is not YYYY-MM-DD"
            raise InvalidFieldError("bills", msg) from None
        out.append(Bill(cusip, maturity, Transactions._amount("bills", amount)))
    if len({b.cusip for b in out}) != len(out):
        raise InvalidFieldError("bills", "a CUSIP appears twice")
    return tuple(sorted(out, key=lambda b: b.cusip))


def _new_id(field: str, value: str) -> str:
    try:
        return check_id(value, field)
    except ValueError as e:
        raise InvalidFieldError(field, str(e)) from None


def _public_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or not crypto.is_acceptable_public_key(key):
        raise InvalidFieldError("public_key", "must be a valid 32-byte Ed25519 public key")
    return key


def _roles(roles: Iterable[Role | str]) -> frozenset[Role]:
    if isinstance(roles, str):
        roles = [r for r in roles.split(",") if r]
    try:
        return frozenset(Role(r) for r in roles)
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise InvalidFieldError("roles", f"each must be one of {names}") from None


def _tier(tier: int) -> int:
    if isinstance(tier, bool) or not isinstance(tier, int) or not 0 <= tier <= KYC_TIER_MAX:
        raise InvalidFieldError("kyc_tier", f"must be an integer 0..{KYC_TIER_MAX}")
    return tier


def _reason(reason: FreezeReason | str | int) -> FreezeReason:
    """A freeze reason from the enum, its name or its number (InvalidFieldError else)."""
    try:
        if isinstance(reason, str) and not reason.isdigit():
            return FreezeReason[reason.upper().replace("-", "_")]
        if isinstance(reason, bool):
            raise ValueError(reason)
        return FreezeReason(int(reason))
    except (KeyError, ValueError):
        names = ", ".join(f"{r.value} {r.name}" for r in FreezeReason)
        raise InvalidFieldError("reason", f"must be one of {names}; got {reason!r}") from None


def _secured(secures: Secured | bytes | str) -> Secured:
    """A trade id is bytes and a repo id text, so the type says which kind is meant."""
    if isinstance(secures, Secured):
        return secures
    if not secures:
        return Secured()
    if isinstance(secures, str):
        return Secured(SecuredKind.REPO, _new_id("secures", secures).encode("ascii"))
    if not isinstance(secures, bytes) or len(secures) != crypto.HASH_LEN:
        raise InvalidFieldError(
            "secures", "must be a pending trade's 32-byte transaction id or a repo id (str)"
        )
    return Secured(SecuredKind.PENDING_DVP, secures)


def _lock_id(lock: bytes) -> bytes:
    if not isinstance(lock, bytes) or len(lock) != crypto.HASH_LEN:
        raise InvalidFieldError("lock", "must be a 32-byte lock id (the Lock's transaction id)")
    return lock


def _instruction(tid: bytes) -> bytes:
    if not isinstance(tid, bytes) or len(tid) != crypto.HASH_LEN:
        raise InvalidFieldError("instruction", "must be a 32-byte transaction id")
    return tid


def terms_of(tx: Transaction) -> dict[str, Any]:
    """The transaction's fields as a JSON-ready dict, with its kind ("DVP", "MINT", ...);
    a transaction id field (a hold's ``instruction``) in hex."""
    fields = {k: _plain(v) for k, v in dataclasses.asdict(tx).items()}
    return {"kind": tx.KIND.name, **fields}


def _plain(v: Any) -> Any:
    """JSON-ready: bytes in hex, sets (roles) as sorted lists, nested terms as dicts."""
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, frozenset | set):
        return sorted(_plain(x) for x in v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v


# --- signed transactions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    """A transaction's canonical envelope bytes (body plus the signatures so far)."""

    raw: bytes

    def __post_init__(self) -> None:
        # Decoding checks the envelope and body are canonical; fail here, not at the node.
        try:
            decode_body(SignedTx.decode(self.raw).body)
        except DecodeError as e:
            raise TradeError(f"not a canonical signed transaction: {e}") from e

    @property
    def envelope(self) -> SignedTx:
        return SignedTx.decode(self.raw)

    @property
    def tx(self) -> Transaction:
        return decode_body(self.envelope.body)

    @property
    def tx_id(self) -> bytes:
        return self.envelope.tx_id

    @property
    def signers(self) -> tuple[str, ...]:
        return tuple(s for s, _ in self.envelope.signatures)

    def missing_signers(self) -> tuple[str, ...]:
        """Required signers that have not signed yet (empty: ready to submit)."""
        have = set(self.signers)
        return tuple(s for s in self.tx.required_signers() if s not in have)

    @classmethod
    def ready_to_send(cls, stx: SignedTransaction | bytes) -> SignedTransaction:
        """``stx`` as a SignedTransaction that every required party has signed; raises
        InvalidTransactionError naming who has not (before anything is sent)."""
        signed = stx if isinstance(stx, SignedTransaction) else cls(bytes(stx))
        missing = signed.missing_signers()
        if missing:
            raise InvalidTransactionError(
                f"transaction {signed.tx_id.hex()} still needs the signature of "
                f"{', '.join(missing)}; sign it first (nothing was sent)"
            )
        return signed

    @classmethod
    def unsigned(cls, tx: Transaction) -> SignedTransaction:
        return cls(SignedTx(encode_body(tx), ()).encode())

    def to_bytes(self) -> bytes:
        return self.raw

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedTransaction:
        return cls(bytes(data))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: readable terms, the signers, and the envelope in base64 (the
        only part that counts; the terms must match it when read back)."""
        return {
            "format": _TX_FORMAT,
            "tx_id": self.tx_id.hex(),
            "terms": terms_of(self.tx),
            "signers": list(self.signers),
            "missing_signers": list(self.missing_signers()),
            "transaction": base64.b64encode(self.raw).decode("ascii"),
        }

    @classmethod
    def from_json(cls, doc: Any) -> SignedTransaction:
        return _from_doc(doc, _TX_FORMAT)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @classmethod
    def loads(cls, text: str | bytes) -> SignedTransaction:
        return cls.from_json(_json(text))


def _json(text: str | bytes) -> Any:
    """``text`` parsed, bounded before parsing (TRADE_JSON_CHARS_MAX) and with each key of
    an object once: of two "amount"s, one reader shows the first and another the last, so
    the one checked against the signed bytes need not be the one a person reads."""
    if len(text) > TRADE_JSON_CHARS_MAX:
        raise TradeError(
            f"not a trade: {len(text):,} characters, more than the {TRADE_JSON_CHARS_MAX:,} "
            "of any transaction's JSON"
        )
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TradeError(f"not JSON: {e}") from e
    except RecursionError as e:
        raise TradeError("not a trade: JSON nested too deeply") from e


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        twice = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise TradeError(f"not a trade: the key {twice!r} appears twice in one object (tampered)")
    return doc


def _from_doc(doc: Any, fmt: str) -> SignedTransaction:
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise TradeError(f"not a {fmt!r} document")
    try:
        raw = base64.b64decode(str(doc["transaction"]).encode("ascii"), validate=True)
    except (KeyError, UnicodeEncodeError, binascii.Error) as e:
        raise TradeError(f"missing or invalid 'transaction' (base64): {e!r}") from e
    if len(raw) > TX_BYTES_MAX:
        raise TradeError(f"transaction of {len(raw)} bytes exceeds {TX_BYTES_MAX}")
    stx = SignedTransaction(raw)
    shown = {**stx.to_json(), "format": fmt}
    if set(doc) != set(shown):
        odd = ", ".join(sorted(set(doc) ^ set(shown)))
        raise TradeError(f"not a {fmt!r} document: fields {odd} extra or missing")
    for field in _READABLE:
        if not _same(doc[field], shown[field]):
            verb = "differ" if field.endswith("s") else "differs"
            raise TradeError(f"the readable {field} {verb} from the signed transaction (tampered)")
    return stx


# What a document shows besides the signed bytes, each checked against them on reading.
_READABLE = ("terms", "tx_id", "signers", "missing_signers")


def _same(shown: Any, signed: Any) -> bool:
    """Equal as JSON text, not as Python values: 99.0 == 99 and true == 1 in Python, but
    a file showing "amount": 99.0 or "quantity": true shows other text than the signed
    terms' (which another reader may show or round otherwise)."""
    return json.dumps(shown, sort_keys=True) == json.dumps(signed, sort_keys=True)


def sign(
    tx_or_signed: Transaction | SignedTransaction,
    *keys: ParticipantKey,
    genesis: Genesis | Registry,
) -> SignedTransaction:
    """Add each key's signature. SigningError unless each key belongs to a required signer
    and is the key ``genesis`` lists for that participant (or, given a ``Registry``, the
    participant's current key: after governance, ``client.reference()``), and the
    transaction is for this chain: a wrong key would only be refused later by the node."""
    stx = (
        tx_or_signed
        if isinstance(tx_or_signed, SignedTransaction)
        else SignedTransaction.unsigned(tx_or_signed)
    )
    tx = stx.tx
    if tx.chain_id != genesis.chain_id:
        raise SigningError(f"the transaction is for chain {tx.chain_id[:16]}..., not this genesis")
    required = tx.required_signers()
    env = stx.envelope
    for k in keys:
        if k.participant not in required:
            raise SigningError(
                f"{k.participant} is not a signer of this {tx.KIND.name} "
                f"(signers: {', '.join(required)})"
            )
        if not k.matches(genesis):
            where = "genesis lists" if isinstance(genesis, Genesis) else "the ledger holds"
            raise SigningError(f"this key is not the key {where} for {k.participant}")
        env = env.with_signature(k.participant, k.key)
    return SignedTransaction(env.encode())


# --- the two-party DvP ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartialTrade:
    """A DvP (or pending DvP) signed by the seller, waiting for the buyer's signature."""

    signed: SignedTransaction

    @property
    def terms(self) -> DvP | PendingDvP:
        tx = self.signed.tx
        assert isinstance(tx, DvP | PendingDvP), "PartialTrade holds a DvP"
        return tx

    @property
    def tx_id(self) -> bytes:
        return self.signed.tx_id

    def to_bytes(self) -> bytes:
        return self.signed.raw

    def to_json(self) -> dict[str, Any]:
        return {**self.signed.to_json(), "format": _TRADE_FORMAT}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @classmethod
    def loads(cls, data: str | bytes) -> PartialTrade:
        """Read the JSON or the raw envelope bytes (TradeError if neither)."""
        if isinstance(data, bytes) and not data.lstrip().startswith(b"{"):
            signed = SignedTransaction(data)
        else:
            signed = _from_doc(_json(data), _TRADE_FORMAT)
        if not isinstance(signed.tx, DvP | PendingDvP):
            raise TradeError(f"not a DvP but a {signed.tx.KIND.name}")
        return cls(signed)


def propose_dvp(
    dvp: DvP | PendingDvP, seller_key: ParticipantKey, genesis: Genesis | Registry
) -> str:
    """The seller's half: sign ``dvp`` and return it as JSON for the buyer
    (``PartialTrade(...).to_bytes()`` gives the compact bytes instead)."""
    if seller_key.participant != dvp.seller:
        raise SigningError(f"the key is {seller_key.participant}'s, the seller is {dvp.seller}")
    return PartialTrade(sign(dvp, seller_key, genesis=genesis)).dumps()


def accept_dvp(
    data: str | bytes,
    buyer_key: ParticipantKey,
    genesis: Genesis | Registry,
    *,
    expect: Mapping[str, object] | None = None,
    now_ms: int | None = None,
) -> SignedTransaction:
    """The buyer's half: check the proposal, then co-sign it (ready to submit).

    Refused with TradeError: not a DvP, another chain, expired or past its deadline, an
    expiry or deadline further off than TTL_MAX_S (the longest the builders allow) plus
    OFFER_CLOCK_SLACK_S, addressed to another buyer, the seller's signature missing or not
    by the seller's genesis key, a co-signer's signature that is not its key's, or a
    signature by anyone else. TermsMismatchError lists every term that differs from
    ``expect`` (e.g. ``{"bond": ..., "quantity": 100, "amount": 99}``).
    """
    trade = PartialTrade.loads(data)
    dvp, env = trade.terms, trade.signed.envelope
    if dvp.chain_id != genesis.chain_id:
        raise TradeError("the trade is for another chain (another genesis)")
    if buyer_key.participant != dvp.buyer:
        raise TradeError(f"the trade's buyer is {dvp.buyer}, not {buyer_key.participant}")
    _check_seller_signature(env, dvp, genesis)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if now >= min(dvp.expiry_ms, dvp.deadline_ms):
        raise TradeError(
            "the trade has expired or passed its settlement deadline; ask for a new one"
        )
    if max(dvp.expiry_ms, dvp.deadline_ms) > now + (TTL_MAX_S + OFFER_CLOCK_SLACK_S) * 1000:
        raise TradeError(
            f"the trade stays open until {max(dvp.expiry_ms, dvp.deadline_ms)} (ms since 1970), "
            f"more than the {TTL_MAX_S // 86400} days a builder allows from now: co-signed, "
            "whoever held it could settle it when the price suited; ask for one that expires "
            "sooner"
        )
    _check_terms(dvp, expect or {})
    return sign(trade.signed, buyer_key, genesis=genesis)


def _check_seller_signature(
    env: SignedTx, dvp: DvP | PendingDvP, genesis: Genesis | Registry
) -> None:
    sigs = dict(env.signatures)
    others = set(sigs) - {dvp.seller, dvp.buyer, dvp.cosigner}
    if others:
        raise TradeError(f"signed by non-parties: {', '.join(sorted(others))}")
    if dvp.seller not in sigs:
        raise TradeError(f"the seller {dvp.seller} has not signed the trade")
    # The buyer's own signature, if any, is replaced by the co-signing; every other one
    # must hold, or the buyer would be told the trade is complete and the ledger refuse it.
    for signer in sorted(set(sigs) - {dvp.buyer}):
        party = genesis.participant_by_id.get(signer)
        if party is None or not crypto.verify(party.public_key, tags.TX + env.body, sigs[signer]):
            who = "the seller's" if signer == dvp.seller else f"the co-signer {signer}'s"
            raise TradeError(f"{who} signature is not {signer}'s (forged or altered)")


def cosign(
    data: str | bytes | SignedTransaction, key: ParticipantKey, genesis: Genesis | Registry
) -> SignedTransaction:
    """The compliance officer's co-signature of a transaction that names it as
    ``cosigner`` (the AML large-value rule), before or after the parties sign. TradeError
    if the transaction names no co-signer or another one."""
    stx = data if isinstance(data, SignedTransaction) else read_signed(data)[0]
    named = getattr(stx.tx, "cosigner", "")
    if named != key.participant:
        who = f"names {named} as co-signer" if named else "names no co-signer"
        raise TradeError(f"the transaction {who}, not {key.participant}")
    return sign(stx, key, genesis=genesis)


def read_signed(data: str | bytes) -> tuple[SignedTransaction, bool]:
    """A signed transaction's JSON or bytes, or a DvP proposal's JSON (True), each read by
    the format it names: a refusal then says what is wrong with the document (review 35d:
    a tampered signed transaction was read again as a proposal, and refused only as
    "not a proposal")."""
    if isinstance(data, bytes) and not data.lstrip().startswith(b"{"):
        return SignedTransaction(data), False
    doc = _json(data)
    trade = isinstance(doc, dict) and doc.get("format") == _TRADE_FORMAT
    return _from_doc(doc, _TRADE_FORMAT if trade else _TX_FORMAT), trade


def _check_terms(dvp: DvP | PendingDvP, expect: Mapping[str, object]) -> None:
    actual = terms_of(dvp)
    diffs: list[tuple[str, object, object]] = []
    for term, want in expect.items():
        if term not in actual:
            diffs.append((term, want, "<no such term>"))
        elif actual[term] != want:
            diffs.append((term, want, actual[term]))
    if diffs:
        raise TermsMismatchError(diffs)
