"""Transactions: canonical bodies, signed envelopes, and their identity.

A body is the canonical encoding of one transaction (it includes the chain id, a
client-chosen nonce and an expiry). Its SHA-256 is the transaction id. Each required
signer signs ``node.tags.TX + body``; the envelope carries the body unchanged plus the
signatures sorted by signer, so the id never depends on who relayed it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import IntEnum
from typing import ClassVar, assert_never

from node import crypto, tags
from node.config import (
    ADMINS_MAX,
    CHAIN_ID_BYTES_MAX,
    RESERVE_BILLS_MAX,
    SECURED_REF_BYTES_MAX,
    SIGNERS_PER_TX_MAX,
    TX_BYTES_MAX,
)
from node.settlement._codec import DecodeError, Reader, Writer
from node.settlement._kyc_rules import ComplianceRules
from node.settlement._model import (
    Instrument,
    Participant,
    Role,
    decode_instrument,
    decode_participant,
    encode_instrument,
    encode_participant,
)

__all__ = [
    "GOVERNANCE_KINDS",
    "AddInstrument",
    "AddParticipant",
    "AttestCustody",
    "AttestPrice",
    "AttestReserves",
    "Bill",
    "Burn",
    "Cancel",
    "ClaimLock",
    "CouponPay",
    "Distribute",
    "DvP",
    "Freeze",
    "FreezeReason",
    "Hold",
    "Lock",
    "MarginCall",
    "Mint",
    "PendingDvP",
    "Redeem",
    "RedeemAll",
    "Release",
    "ReleaseLock",
    "RepoClose",
    "RepoOpen",
    "RepoSubstitute",
    "RotateKey",
    "Secured",
    "SecuredKind",
    "SetComplianceRules",
    "SetKycTier",
    "SetMaxSupply",
    "SetRoles",
    "SignedTx",
    "Swap",
    "Transaction",
    "Transfer",
    "TxKind",
    "Unfreeze",
    "decode_body",
    "encode_body",
    "sign_tx",
    "tx_id",
]

_BODY_VERSION = 1
_ENVELOPE_VERSION = 1


class TxKind(IntEnum):
    MINT = 1
    BURN = 2
    TRANSFER = 3
    DVP = 4
    # life (issue 14 items 1-3)
    COUPON_PAY = 5
    DISTRIBUTE = 6
    REDEEM = 7
    REDEEM_ALL = 8
    # pend: pending settlement (node/settlement/_pending.py)
    PENDING_DVP = 10
    HOLD = 11
    RELEASE = 12
    CANCEL = 13
    # freeze: freezes (issue 15 item 3; node/settlement/_freeze.py)
    FREEZE = 20
    UNFREEZE = 21
    # gov: governance (issue 15 item 1; node/settlement/_gov.py)
    ADD_PARTICIPANT = 30
    SET_ROLES = 31
    SET_KYC_TIER = 32
    ROTATE_KEY = 33
    ADD_INSTRUMENT = 34
    SET_MAX_SUPPLY = 35
    SET_COMPLIANCE_RULES = 36  # kyc's rules, replaced by governance
    # reserve: custody and reserves (issue 15 item 2; node/settlement/_reserve.py)
    ATTEST_CUSTODY = 40
    ATTEST_RESERVES = 41
    # lock: locks and swaps (issue 18 items 1 and 4; node/settlement/_lock.py)
    LOCK = 50
    RELEASE_LOCK = 51
    CLAIM_LOCK = 52
    SWAP = 53
    # repo: repurchase agreements (issue 18 item 2; node/settlement/_repo.py). 55-59.
    REPO_OPEN = 55
    REPO_CLOSE = 56
    # margin: prices, margin calls, substitution (issue 18 item 3; _price.py, _margin.py)
    ATTEST_PRICE = 60
    MARGIN_CALL = 61
    REPO_SUBSTITUTE = 62


@dataclass(frozen=True, slots=True)
class Mint:
    """Issue ``amount`` of ``instrument`` to ``to``; signed by ``by`` (issuer or custodian)."""

    KIND: ClassVar[TxKind] = TxKind.MINT
    chain_id: str
    nonce: int
    expiry_ms: int
    instrument: str
    to: str
    amount: int
    by: str

    def required_signers(self) -> tuple[str, ...]:
        return (self.by,)


@dataclass(frozen=True, slots=True)
class Burn:
    """Redeem ``amount`` units held by ``holder``; signed by ``by`` (issuer or custodian)
    and by the holder, so nobody's tokens are burned without their consent."""

    KIND: ClassVar[TxKind] = TxKind.BURN
    chain_id: str
    nonce: int
    expiry_ms: int
    instrument: str
    holder: str
    amount: int
    by: str

    def required_signers(self) -> tuple[str, ...]:
        return tuple(sorted({self.by, self.holder}))


@dataclass(frozen=True, slots=True)
class Transfer:
    """Move ``amount`` of ``instrument`` free of payment; signed by the sender (and by
    ``cosigner``, a compliance participant, when named: the AML large-value rule)."""

    KIND: ClassVar[TxKind] = TxKind.TRANSFER
    chain_id: str
    nonce: int
    expiry_ms: int
    instrument: str
    sender: str
    receiver: str
    amount: int
    cosigner: str = ""  # kyc: "" = not co-signed; encoded only when named

    def required_signers(self) -> tuple[str, ...]:
        return _with_cosigner((self.sender,), self.cosigner)


@dataclass(frozen=True, slots=True)
class DvP:
    """Delivery versus payment: ``quantity`` of ``bond`` from seller to buyer and ``amount``
    of ``cash`` from buyer to seller, both or neither; signed by both over the same terms
    (and by ``cosigner``, a compliance participant, when named: the AML rule)."""

    KIND: ClassVar[TxKind] = TxKind.DVP
    chain_id: str
    nonce: int
    expiry_ms: int
    seller: str
    buyer: str
    bond: str
    quantity: int
    cash: str
    amount: int
    deadline_ms: int
    cosigner: str = ""  # kyc: "" = not co-signed; encoded only when named

    def required_signers(self) -> tuple[str, ...]:
        return _with_cosigner((self.seller, self.buyer), self.cosigner)


def _with_cosigner(parties: tuple[str, ...], cosigner: str) -> tuple[str, ...]:
    """The parties and the co-signer, sorted with no repeats (a party named as co-signer
    signs once; execution refuses it as a co-signer: COSIGN_REQUIRED)."""
    return tuple(sorted({*parties, cosigner} - {""}))


# (Transaction, the union of every kind, is defined after the last part's dataclasses.)


def _enc_mint(w: Writer, t: Mint) -> None:
    w.ident(t.instrument).ident(t.to).u64(t.amount).ident(t.by)


def _enc_burn(w: Writer, t: Burn) -> None:
    w.ident(t.instrument).ident(t.holder).u64(t.amount).ident(t.by)


def _enc_transfer(w: Writer, t: Transfer) -> None:
    w.ident(t.instrument).ident(t.sender).ident(t.receiver).u64(t.amount)


def _enc_dvp(w: Writer, t: DvP) -> None:
    w.ident(t.seller).ident(t.buyer).ident(t.bond).u64(t.quantity)
    w.ident(t.cash).u64(t.amount).u64(t.deadline_ms)


def encode_body(tx: Transaction) -> bytes:
    """Canonical bytes of ``tx``; raises ValueError for a field out of range."""
    w = Writer().u8(_BODY_VERSION).u8(tx.KIND)
    w.ident(tx.chain_id, CHAIN_ID_BYTES_MAX).u64(tx.nonce).u64(tx.expiry_ms)
    match tx:
        case Mint():
            _enc_mint(w, tx)
        case Burn():
            _enc_burn(w, tx)
        case Transfer():
            _enc_transfer(w, tx)
        case DvP():
            _enc_dvp(w, tx)
        case CouponPay() | Distribute() | Redeem() | RedeemAll():
            _enc_lifecycle(w, tx)
        case PendingDvP():
            _enc_pending_dvp(w, tx)
        case Hold() | Release():
            _enc_hold(w, tx)
        case Cancel():
            _enc_cancel(w, tx)
        case Freeze() | Unfreeze():
            _enc_freeze(w, tx)
        case AttestCustody() | AttestReserves():
            _enc_attest(w, tx)
        case AddParticipant() | SetRoles() | SetKycTier() | RotateKey():
            _enc_gov_participant(w, tx)
        case AddInstrument() | SetMaxSupply():
            _enc_gov_instrument(w, tx)
        case SetComplianceRules():
            _enc_admins(w.blob(tx.rules.encode(), TX_BYTES_MAX), tx.admins)
        case Lock() | ReleaseLock() | ClaimLock() | Swap():
            _enc_lock(w, tx)
        case RepoOpen() | RepoClose():
            _enc_repo(w, tx)
        case AttestPrice() | MarginCall() | RepoSubstitute():
            _enc_margin(w, tx)
        case _:
            assert_never(tx)
    if isinstance(tx, _COSIGNABLE) and tx.cosigner:
        w.ident(tx.cosigner)  # kyc: appended, so an un-co-signed body is as before
    return w.finish()


_Head = tuple[str, int, int]


def _dec_mint(r: Reader, h: _Head) -> Mint:
    return Mint(*h, instrument=r.ident(), to=r.ident(), amount=r.u64(), by=r.ident())


def _dec_burn(r: Reader, h: _Head) -> Burn:
    return Burn(*h, instrument=r.ident(), holder=r.ident(), amount=r.u64(), by=r.ident())


def _dec_transfer(r: Reader, h: _Head) -> Transfer:
    return Transfer(*h, instrument=r.ident(), sender=r.ident(), receiver=r.ident(), amount=r.u64())


def _dec_dvp(r: Reader, h: _Head) -> DvP:
    return DvP(
        *h,
        seller=r.ident(),
        buyer=r.ident(),
        bond=r.ident(),
        quantity=r.u64(),
        cash=r.ident(),
        amount=r.u64(),
        deadline_ms=r.u64(),
    )


_DECODERS: dict[int, Callable[[Reader, _Head], Transaction]] = {
    TxKind.MINT: _dec_mint,
    TxKind.BURN: _dec_burn,
    TxKind.TRANSFER: _dec_transfer,
    TxKind.DVP: _dec_dvp,
}


def decode_body(body: bytes) -> Transaction:
    """Parse canonical body bytes; raises DecodeError for anything else."""
    r = Reader(body)
    if r.u8() != _BODY_VERSION:
        raise DecodeError("unsupported transaction body version")
    decoder = _DECODERS.get(r.u8())
    if decoder is None:
        raise DecodeError("unknown transaction kind")
    head = (r.ident(CHAIN_ID_BYTES_MAX), r.u64(), r.u64())
    tx = decoder(r, head)
    if isinstance(tx, _COSIGNABLE) and r.more():
        # An identifier is never empty, so "absent" and "present" cannot be confused.
        tx = replace(tx, cosigner=r.ident())
    r.done()
    return tx


def tx_id(body: bytes) -> bytes:
    return crypto.sha256(body)


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A body with the signatures of its required signers, sorted by signer id."""

    body: bytes
    signatures: tuple[tuple[str, bytes], ...]

    @property
    def tx_id(self) -> bytes:
        return tx_id(self.body)

    def with_signature(self, signer: str, key: crypto.SigningKey) -> SignedTx:
        """This envelope plus ``signer``'s signature (the co-signing step of a DvP)."""
        sig = key.sign(tags.TX + self.body)
        others = [s for s in self.signatures if s[0] != signer]
        return SignedTx(self.body, tuple(sorted([*others, (signer, sig)])))

    def encode(self) -> bytes:
        count = len(self.signatures)
        w = Writer().limit(count, SIGNERS_PER_TX_MAX, "signatures on a transaction")
        w.u8(_ENVELOPE_VERSION).blob(self.body, TX_BYTES_MAX).u8(count)
        for signer, sig in self.signatures:
            w.ident(signer).fixed(sig, crypto.SIGNATURE_LEN)
        return w.finish()

    @classmethod
    def decode(cls, raw: bytes) -> SignedTx:
        """Parse an envelope; raises DecodeError unless it is canonical and within limits."""
        if len(raw) > TX_BYTES_MAX:
            raise DecodeError(f"transaction of {len(raw)} bytes exceeds {TX_BYTES_MAX}")
        r = Reader(raw)
        if r.u8() != _ENVELOPE_VERSION:
            raise DecodeError("unsupported envelope version")
        body = r.blob(TX_BYTES_MAX)
        count = r.limit(r.u8(), SIGNERS_PER_TX_MAX, "signatures on a transaction")
        sigs = tuple((r.ident(), r.fixed(crypto.SIGNATURE_LEN)) for _ in range(count))
        r.done()
        signers = [s for s, _ in sigs]
        if signers != sorted(set(signers)):
            raise DecodeError("signatures must be sorted by signer with no repeats")
        return cls(body, sigs)


def sign_tx(tx: Transaction, keys: Sequence[crypto.SigningKey]) -> bytes:
    """Encode ``tx`` signed by ``keys``, given in the order of ``tx.required_signers()``."""
    signers = tx.required_signers()
    if len(keys) != len(signers):
        raise ValueError(f"{type(tx).__name__} needs keys for {signers}, got {len(keys)}")
    stx = SignedTx(encode_body(tx), ())
    for signer, key in zip(signers, keys, strict=True):
        stx = stx.with_signature(signer, key)
    return stx.encode()


# --- life: bond lifecycle (issue 14 items 1-3; node/settlement/_lifecycle.py) -----------


@dataclass(frozen=True, slots=True)
class CouponPay:
    """Pay coupon ``period`` of ``bond`` to every holder of record, in its payment cash;
    signed by the bond's paying agent (``agent``, named so the signer is in the body)."""

    KIND: ClassVar[TxKind] = TxKind.COUPON_PAY
    chain_id: str
    nonce: int
    expiry_ms: int
    bond: str
    period: int
    agent: str

    def required_signers(self) -> tuple[str, ...]:
        return (self.agent,)


@dataclass(frozen=True, slots=True)
class Distribute:
    """Split ``total`` of the fund's payment cash over its holders pro rata (largest
    remainder), for distribution ``period``; signed by the fund's paying agent."""

    KIND: ClassVar[TxKind] = TxKind.DISTRIBUTE
    chain_id: str
    nonce: int
    expiry_ms: int
    fund: str
    period: int
    total: int
    agent: str

    def required_signers(self) -> tuple[str, ...]:
        return (self.agent,)


@dataclass(frozen=True, slots=True)
class Redeem:
    """At maturity, burn all of ``holder``'s units of ``bond`` and pay face value plus the
    final coupon from the paying agent; signed by the holder (not ``Burn``: that pays
    nothing)."""

    KIND: ClassVar[TxKind] = TxKind.REDEEM
    chain_id: str
    nonce: int
    expiry_ms: int
    bond: str
    holder: str

    def required_signers(self) -> tuple[str, ...]:
        return (self.holder,)


@dataclass(frozen=True, slots=True)
class RedeemAll:
    """``Redeem`` for every holder of ``bond`` in participant id order, all or none;
    signed by the paying agent."""

    KIND: ClassVar[TxKind] = TxKind.REDEEM_ALL
    chain_id: str
    nonce: int
    expiry_ms: int
    bond: str
    agent: str

    def required_signers(self) -> tuple[str, ...]:
        return (self.agent,)


def _enc_lifecycle(w: Writer, t: CouponPay | Distribute | Redeem | RedeemAll) -> None:
    match t:
        case CouponPay():
            w.ident(t.bond).u32(t.period).ident(t.agent)
        case Distribute():
            w.ident(t.fund).u32(t.period).u64(t.total).ident(t.agent)
        case Redeem():
            w.ident(t.bond).ident(t.holder)
        case RedeemAll():
            w.ident(t.bond).ident(t.agent)
        case _:
            assert_never(t)


def _dec_coupon(r: Reader, h: _Head) -> CouponPay:
    return CouponPay(*h, bond=r.ident(), period=r.u32(), agent=r.ident())


def _dec_distribute(r: Reader, h: _Head) -> Distribute:
    return Distribute(*h, fund=r.ident(), period=r.u32(), total=r.u64(), agent=r.ident())


def _dec_redeem(r: Reader, h: _Head) -> Redeem:
    return Redeem(*h, bond=r.ident(), holder=r.ident())


def _dec_redeem_all(r: Reader, h: _Head) -> RedeemAll:
    return RedeemAll(*h, bond=r.ident(), agent=r.ident())


# --- pend: pending settlement (issue 14 item 4; node/settlement/_pending.py) -------------


@dataclass(frozen=True, slots=True)
class PendingDvP:
    """A DvP that waits for its legs until ``deadline_ms`` instead of failing when one is
    short (recorded ``PENDING``, re-attempted at the end of every block). ``lot`` > 0 allows
    partial settlement in multiples of ``lot`` bond units (each at the same price); 0 means
    all or nothing. Same terms and signers as ``DvP``, whose encoding it leaves unchanged."""

    KIND: ClassVar[TxKind] = TxKind.PENDING_DVP
    chain_id: str
    nonce: int
    expiry_ms: int
    seller: str
    buyer: str
    bond: str
    quantity: int
    cash: str
    amount: int
    deadline_ms: int
    lot: int
    cosigner: str = ""  # kyc: as DvP's

    def required_signers(self) -> tuple[str, ...]:
        return _with_cosigner((self.seller, self.buyer), self.cosigner)

    def as_dvp(self) -> DvP:
        """The same trade as a plain DvP: its first attempt runs the DvP rules unchanged."""
        return DvP(
            self.chain_id,
            self.nonce,
            self.expiry_ms,
            self.seller,
            self.buyer,
            self.bond,
            self.quantity,
            self.cash,
            self.amount,
            self.deadline_ms,
            self.cosigner,
        )


@dataclass(frozen=True, slots=True)
class Hold:
    """Stop re-attempting the pending ``instruction`` (its tx id); by either party."""

    KIND: ClassVar[TxKind] = TxKind.HOLD
    chain_id: str
    nonce: int
    expiry_ms: int
    instruction: bytes
    by: str

    def required_signers(self) -> tuple[str, ...]:
        return (self.by,)


@dataclass(frozen=True, slots=True)
class Release:
    """Lift the hold ``by`` put on ``instruction`` (the other party's hold stays)."""

    KIND: ClassVar[TxKind] = TxKind.RELEASE
    chain_id: str
    nonce: int
    expiry_ms: int
    instruction: bytes
    by: str

    def required_signers(self) -> tuple[str, ...]:
        return (self.by,)


@dataclass(frozen=True, slots=True)
class Cancel:
    """Withdraw the pending ``instruction``; it names both parties because both must sign."""

    KIND: ClassVar[TxKind] = TxKind.CANCEL
    chain_id: str
    nonce: int
    expiry_ms: int
    instruction: bytes
    seller: str
    buyer: str

    def required_signers(self) -> tuple[str, ...]:
        return tuple(sorted({self.seller, self.buyer}))


def _enc_pending_dvp(w: Writer, t: PendingDvP) -> None:
    _enc_dvp(w, t.as_dvp())
    w.u64(t.lot)


def _enc_hold(w: Writer, t: Hold | Release) -> None:
    w.fixed(t.instruction, crypto.HASH_LEN).ident(t.by)


def _enc_cancel(w: Writer, t: Cancel) -> None:
    w.fixed(t.instruction, crypto.HASH_LEN).ident(t.seller).ident(t.buyer)


def _dec_pending_dvp(r: Reader, h: _Head) -> PendingDvP:
    d = _dec_dvp(r, h)
    return PendingDvP(
        *h, d.seller, d.buyer, d.bond, d.quantity, d.cash, d.amount, d.deadline_ms, lot=r.u64()
    )


def _dec_cancel(r: Reader, h: _Head) -> Cancel:
    return Cancel(*h, instruction=r.fixed(crypto.HASH_LEN), seller=r.ident(), buyer=r.ident())


def _dec_hold(r: Reader, h: _Head) -> Hold:
    return Hold(*h, instruction=r.fixed(crypto.HASH_LEN), by=r.ident())


def _dec_release(r: Reader, h: _Head) -> Release:
    return Release(*h, instruction=r.fixed(crypto.HASH_LEN), by=r.ident())


_DECODERS.update(
    {
        TxKind.COUPON_PAY: _dec_coupon,
        TxKind.DISTRIBUTE: _dec_distribute,
        TxKind.REDEEM: _dec_redeem,
        TxKind.REDEEM_ALL: _dec_redeem_all,
        TxKind.PENDING_DVP: _dec_pending_dvp,
        TxKind.HOLD: _dec_hold,
        TxKind.RELEASE: _dec_release,
        TxKind.CANCEL: _dec_cancel,
    }
)

# --- freeze: freezes (issue 15 item 3; node/settlement/_freeze.py) ----------------------


class FreezeReason(IntEnum):
    """Why a target is frozen (docs/ledger.md "Freezes"); only these values decode."""

    SANCTIONS = 1
    COURT_ORDER = 2
    AML_INVESTIGATION = 3
    FRAUD = 4
    KYC_LAPSED = 5
    OTHER = 6


@dataclass(frozen=True, slots=True)
class Freeze:
    """Freeze ``account`` (``instrument`` empty) or its one holding of ``instrument``;
    signed by ``by``, a regulator (an account freeze: a compliance officer too)."""

    KIND: ClassVar[TxKind] = TxKind.FREEZE
    chain_id: str
    nonce: int
    expiry_ms: int
    account: str
    instrument: str  # "" freezes the whole account
    reason: FreezeReason
    by: str

    def required_signers(self) -> tuple[str, ...]:
        return (self.by,)


@dataclass(frozen=True, slots=True)
class Unfreeze:
    """Lift the freeze on ``account`` (``instrument`` empty) or on one holding; signed by
    ``by``, under the same role rule as the freeze."""

    KIND: ClassVar[TxKind] = TxKind.UNFREEZE
    chain_id: str
    nonce: int
    expiry_ms: int
    account: str
    instrument: str
    by: str

    def required_signers(self) -> tuple[str, ...]:
        return (self.by,)


def _enc_freeze(w: Writer, t: Freeze | Unfreeze) -> None:
    # An optional id as a presence flag then the id: "" has no ident encoding.
    w.ident(t.account).flag(bool(t.instrument))
    if t.instrument:
        w.ident(t.instrument)
    if isinstance(t, Freeze):
        w.u8(FreezeReason(t.reason))
    w.ident(t.by)


def _dec_target(r: Reader) -> tuple[str, str]:
    account = r.ident()
    return account, r.ident() if r.flag() else ""


def _dec_freeze(r: Reader, h: _Head) -> Freeze:
    account, instrument = _dec_target(r)
    raw_reason = r.u8()
    if raw_reason not in FreezeReason._value2member_map_:
        raise DecodeError(f"unknown freeze reason {raw_reason}")
    return Freeze(*h, account, instrument, FreezeReason(raw_reason), by=r.ident())


def _dec_unfreeze(r: Reader, h: _Head) -> Unfreeze:
    account, instrument = _dec_target(r)
    return Unfreeze(*h, account, instrument, by=r.ident())


_DECODERS.update({TxKind.FREEZE: _dec_freeze, TxKind.UNFREEZE: _dec_unfreeze})

# --- reserve: custody and reserves (issue 15 item 2; node/settlement/_reserve.py) -------


@dataclass(frozen=True, slots=True)
class AttestCustody:
    """``custodian`` attests that it holds ``amount`` units of ``bond`` in custody as of
    ``as_of_ms``; ``document_sha256`` is the SHA-256 of the signed custody statement."""

    KIND: ClassVar[TxKind] = TxKind.ATTEST_CUSTODY
    chain_id: str
    nonce: int
    expiry_ms: int
    custodian: str
    bond: str
    amount: int
    as_of_ms: int
    document_sha256: bytes

    def required_signers(self) -> tuple[str, ...]:
        return (self.custodian,)


@dataclass(frozen=True, slots=True)
class Bill:
    """One Treasury bill in a reserve: its CUSIP, maturity date (YYYY-MM-DD) and value in
    the cash token's minor units."""

    cusip: str
    maturity: str
    amount: int


@dataclass(frozen=True, slots=True)
class AttestReserves:
    """``issuer`` attests the reserves behind ``cash`` as of ``as_of_ms``: ``bills`` (in
    CUSIP order, at most RESERVE_BILLS_MAX) and ``deposits``, all in minor units."""

    KIND: ClassVar[TxKind] = TxKind.ATTEST_RESERVES
    chain_id: str
    nonce: int
    expiry_ms: int
    issuer: str
    cash: str
    as_of_ms: int
    document_sha256: bytes
    deposits: int
    bills: tuple[Bill, ...]

    def required_signers(self) -> tuple[str, ...]:
        return (self.issuer,)


_CUSIP_LEN = 9


def _enc_attest(w: Writer, t: AttestCustody | AttestReserves) -> None:
    match t:
        case AttestCustody():
            w.ident(t.custodian).ident(t.bond).u64(t.amount).u64(t.as_of_ms)
            w.fixed(t.document_sha256, crypto.HASH_LEN)
        case AttestReserves():
            w.ident(t.issuer).ident(t.cash).u64(t.as_of_ms)
            w.fixed(t.document_sha256, crypto.HASH_LEN).u64(t.deposits)
            w.limit(len(t.bills), RESERVE_BILLS_MAX, "bills in a reserve attestation")
            w.u8(len(t.bills))
            for b in t.bills:
                w.fixed(b.cusip.encode("ascii"), _CUSIP_LEN)
                w.u32(date.fromisoformat(b.maturity).toordinal()).u64(b.amount)
        case _:
            assert_never(t)


def _dec_attest_custody(r: Reader, h: _Head) -> AttestCustody:
    return AttestCustody(
        *h, custodian=r.ident(), bond=r.ident(), amount=r.u64(), as_of_ms=r.u64(),
        document_sha256=r.fixed(crypto.HASH_LEN),
    )  # fmt: skip


def _dec_bill(r: Reader) -> Bill:
    cusip = r.fixed(_CUSIP_LEN)
    ordinal = r.u32()
    if not cusip.isascii() or not 0 < ordinal <= date.max.toordinal():
        raise DecodeError("a bill's CUSIP is not ASCII or its maturity is no date")
    return Bill(cusip.decode("ascii"), date.fromordinal(ordinal).isoformat(), r.u64())


def _dec_attest_reserves(r: Reader, h: _Head) -> AttestReserves:
    issuer, cash, as_of, doc, deposits = (
        r.ident(), r.ident(), r.u64(), r.fixed(crypto.HASH_LEN), r.u64()
    )  # fmt: skip
    count = r.limit(r.u8(), RESERVE_BILLS_MAX, "bills in a reserve attestation")
    bills = tuple(_dec_bill(r) for _ in range(count))
    return AttestReserves(*h, issuer, cash, as_of, doc, deposits, bills)


_DECODERS.update(
    {TxKind.ATTEST_CUSTODY: _dec_attest_custody, TxKind.ATTEST_RESERVES: _dec_attest_reserves}
)
# kyc: the kinds that may carry a compliance co-signer (the AML large-value rule):
# ``_COSIGNABLE``, defined after the repo kinds (they carry one too).


# --- gov: governance (issue 15 item 1; node/settlement/_gov.py) -------------------------
#
# Every governance body ends with ``admins``: the admins who sign it, sorted and unique
# (1..ADMINS_MAX; the decoder refuses anything else), so the signers are in the body and
# the id never depends on who relayed it. Whether they are admins and at least k of them
# is the ledger's check (NOT_ADMIN_QUORUM), not the decoder's.


@dataclass(frozen=True, slots=True)
class AddParticipant:
    """Add ``participant`` (id, public key, roles, KYC tier) to the reference data."""

    KIND: ClassVar[TxKind] = TxKind.ADD_PARTICIPANT
    chain_id: str
    nonce: int
    expiry_ms: int
    participant: Participant
    admins: tuple[str, ...]

    def required_signers(self) -> tuple[str, ...]:
        return self.admins


@dataclass(frozen=True, slots=True)
class SetRoles:
    """Replace ``participant``'s roles."""

    KIND: ClassVar[TxKind] = TxKind.SET_ROLES
    chain_id: str
    nonce: int
    expiry_ms: int
    participant: str
    roles: frozenset[Role]
    admins: tuple[str, ...]

    def required_signers(self) -> tuple[str, ...]:
        return self.admins


@dataclass(frozen=True, slots=True)
class SetKycTier:
    """Set ``participant``'s KYC tier (0: may no longer hold or move assets)."""

    KIND: ClassVar[TxKind] = TxKind.SET_KYC_TIER
    chain_id: str
    nonce: int
    expiry_ms: int
    participant: str
    kyc_tier: int
    admins: tuple[str, ...]

    def required_signers(self) -> tuple[str, ...]:
        return self.admins


@dataclass(frozen=True, slots=True)
class RotateKey:
    """Replace ``participant``'s public key; the old key is refused from then on."""

    KIND: ClassVar[TxKind] = TxKind.ROTATE_KEY
    chain_id: str
    nonce: int
    expiry_ms: int
    participant: str
    public_key: bytes
    admins: tuple[str, ...]

    def required_signers(self) -> tuple[str, ...]:
        return self.admins


@dataclass(frozen=True, slots=True)
class AddInstrument:
    """Add ``instrument`` with its full terms, validated as genesis validates one."""

    KIND: ClassVar[TxKind] = TxKind.ADD_INSTRUMENT
    chain_id: str
    nonce: int
    expiry_ms: int
    instrument: Instrument
    admins: tuple[str, ...]

    def required_signers(self) -> tuple[str, ...]:
        return self.admins


@dataclass(frozen=True, slots=True)
class SetMaxSupply:
    """Set ``instrument``'s maximum supply to ``cap``, on the attestation whose document
    hashes to ``attestation_sha256``, as of ``as_of_ms`` (newer than the last one)."""

    KIND: ClassVar[TxKind] = TxKind.SET_MAX_SUPPLY
    chain_id: str
    nonce: int
    expiry_ms: int
    instrument: str
    cap: int
    attestation_sha256: bytes
    as_of_ms: int
    admins: tuple[str, ...]

    def required_signers(self) -> tuple[str, ...]:
        return self.admins


@dataclass(frozen=True, slots=True)
class SetComplianceRules:
    """Replace the KYC tier and AML rules in force (docs/ledger.md "KYC tiers and AML")
    with ``rules``, whole: genesis's until the first of these."""

    KIND: ClassVar[TxKind] = TxKind.SET_COMPLIANCE_RULES
    chain_id: str
    nonce: int
    expiry_ms: int
    rules: ComplianceRules
    admins: tuple[str, ...]

    def required_signers(self) -> tuple[str, ...]:
        return self.admins


Governance = (
    AddParticipant
    | SetRoles
    | SetKycTier
    | RotateKey
    | AddInstrument
    | SetMaxSupply
    | SetComplianceRules
)
GOVERNANCE_KINDS = (
    AddParticipant,
    SetRoles,
    SetKycTier,
    RotateKey,
    AddInstrument,
    SetMaxSupply,
    SetComplianceRules,
)


def _enc_roles(w: Writer, roles: frozenset[Role]) -> None:
    names = sorted(r.value for r in roles)
    w.u8(len(names))
    for n in names:
        w.ident(n)


def _dec_roles(r: Reader) -> frozenset[Role]:
    names = [r.ident() for _ in range(r.u8())]
    if names != sorted(set(names)) or not all(n in Role._value2member_map_ for n in names):
        raise DecodeError("roles must be known, sorted and unique")
    return frozenset(Role(n) for n in names)


def _enc_admins(w: Writer, admins: tuple[str, ...]) -> None:
    w.limit(len(admins), ADMINS_MAX, "admin signers")
    if not admins or list(admins) != sorted(set(admins)):
        raise w.error("admin signers must be 1.. sorted unique ids")
    w.u8(len(admins))
    for a in admins:
        w.ident(a)


def _dec_admins(r: Reader) -> tuple[str, ...]:
    admins = tuple(r.ident() for _ in range(r.limit(r.u8(), ADMINS_MAX, "admin signers")))
    if not admins or list(admins) != sorted(set(admins)):
        raise DecodeError("admin signers must be 1.. sorted unique ids")
    return admins


def _enc_gov_participant(w: Writer, t: AddParticipant | SetRoles | SetKycTier | RotateKey) -> None:
    match t:
        case AddParticipant():
            encode_participant(w.ident(t.participant.id), t.participant)
        case SetRoles():
            _enc_roles(w.ident(t.participant), t.roles)
        case SetKycTier():
            w.ident(t.participant).u8(t.kyc_tier)
        case RotateKey():
            w.ident(t.participant).fixed(t.public_key, crypto.PUBLIC_KEY_LEN)
        case _:
            assert_never(t)
    _enc_admins(w, t.admins)


def _enc_gov_instrument(w: Writer, t: AddInstrument | SetMaxSupply) -> None:
    match t:
        case AddInstrument():
            encode_instrument(w.ident(t.instrument.id), t.instrument)
        case SetMaxSupply():
            w.ident(t.instrument).u64(t.cap).fixed(t.attestation_sha256, crypto.HASH_LEN)
            w.u64(t.as_of_ms)
        case _:
            assert_never(t)
    _enc_admins(w, t.admins)


def _dec_add_participant(r: Reader, h: _Head) -> AddParticipant:
    return AddParticipant(*h, decode_participant(r, r.ident()), _dec_admins(r))


def _dec_set_roles(r: Reader, h: _Head) -> SetRoles:
    return SetRoles(*h, r.ident(), _dec_roles(r), _dec_admins(r))


def _dec_set_kyc_tier(r: Reader, h: _Head) -> SetKycTier:
    return SetKycTier(*h, r.ident(), r.u8(), _dec_admins(r))


def _dec_rotate_key(r: Reader, h: _Head) -> RotateKey:
    return RotateKey(*h, r.ident(), r.fixed(crypto.PUBLIC_KEY_LEN), _dec_admins(r))


def _dec_add_instrument(r: Reader, h: _Head) -> AddInstrument:
    return AddInstrument(*h, decode_instrument(r, r.ident()), _dec_admins(r))


def _dec_set_max_supply(r: Reader, h: _Head) -> SetMaxSupply:
    iid, cap, digest, as_of = r.ident(), r.u64(), r.fixed(crypto.HASH_LEN), r.u64()
    return SetMaxSupply(*h, iid, cap, digest, as_of, _dec_admins(r))


def _dec_set_compliance_rules(r: Reader, h: _Head) -> SetComplianceRules:
    """The rules' own canonical decoding (DecodeError for non-canonical rules)."""
    return SetComplianceRules(*h, ComplianceRules.decode(r.blob(TX_BYTES_MAX)), _dec_admins(r))


_DECODERS.update(
    {
        TxKind.ADD_PARTICIPANT: _dec_add_participant,
        TxKind.SET_ROLES: _dec_set_roles,
        TxKind.SET_KYC_TIER: _dec_set_kyc_tier,
        TxKind.ROTATE_KEY: _dec_rotate_key,
        TxKind.ADD_INSTRUMENT: _dec_add_instrument,
        TxKind.SET_MAX_SUPPLY: _dec_set_max_supply,
        TxKind.SET_COMPLIANCE_RULES: _dec_set_compliance_rules,
    }
)

# --- lock: locks and swaps (issue 18 items 1 and 4; node/settlement/_lock.py) -----------


class SecuredKind(IntEnum):
    """What a lock secures: the kind of obligation whose default lets the beneficiary
    claim it (docs/ledger.md "Locks and swaps"); only these values decode."""

    NONE = 0  # a plain pledge: released, never claimed
    PENDING_DVP = 1  # a pending DvP, by its trade id (node/settlement/_pending.py)
    REPO = 2  # a repo, by its id's ASCII bytes (node/settlement/_repo.py)


@dataclass(frozen=True, slots=True)
class Secured:
    """A tagged reference to the obligation a lock secures: its kind and its id (a pending
    DvP's 32-byte tx id; a repo's id, ASCII; empty for ``NONE``)."""

    kind: SecuredKind = SecuredKind.NONE
    ref: bytes = b""


@dataclass(frozen=True, slots=True)
class Lock:
    """Pledge ``amount`` of ``holder``'s ``instrument`` to ``beneficiary`` until
    ``until_ms``: the units stay the holder's but cannot move; signed by both. The lock's
    id is this transaction's id."""

    KIND: ClassVar[TxKind] = TxKind.LOCK
    chain_id: str
    nonce: int
    expiry_ms: int
    holder: str
    instrument: str
    amount: int
    beneficiary: str
    until_ms: int
    secures: Secured = Secured()

    def required_signers(self) -> tuple[str, ...]:
        return tuple(sorted({self.holder, self.beneficiary}))


@dataclass(frozen=True, slots=True)
class ReleaseLock:
    """End the lock ``lock`` (its id) of ``holder`` without moving anything; signed by
    ``by``: the beneficiary at any time, the holder once the lock's until has passed. The
    holder is named so that the body shows it a party (node/access.py)."""

    KIND: ClassVar[TxKind] = TxKind.RELEASE_LOCK
    chain_id: str
    nonce: int
    expiry_ms: int
    lock: bytes
    holder: str
    by: str

    def required_signers(self) -> tuple[str, ...]:
        return (self.by,)


@dataclass(frozen=True, slots=True)
class ClaimLock:
    """Move the ``amount`` units of ``instrument`` of ``holder``'s lock ``lock`` to its
    ``beneficiary``, who signs, on the default recorded for the obligation the lock
    secures. The body states what moves (checked against the lock), so the beneficiary
    signs for it and the holder's records show it. ``cosigner``: a compliance participant
    co-signing a cash claim above the AML threshold, as for a transfer."""

    KIND: ClassVar[TxKind] = TxKind.CLAIM_LOCK
    chain_id: str
    nonce: int
    expiry_ms: int
    lock: bytes
    holder: str
    beneficiary: str
    instrument: str
    amount: int
    cosigner: str = ""  # a presence flag then the id (kyc's rule for cash above threshold)

    def required_signers(self) -> tuple[str, ...]:
        return _with_cosigner((self.beneficiary,), self.cosigner)


@dataclass(frozen=True, slots=True)
class Swap:
    """Bond for bond: ``quantity_a`` of ``instrument_a`` from ``party_a`` to ``party_b``
    and ``quantity_b`` of ``instrument_b`` back, both or neither, by ``deadline_ms``;
    signed by both."""

    KIND: ClassVar[TxKind] = TxKind.SWAP
    chain_id: str
    nonce: int
    expiry_ms: int
    party_a: str
    instrument_a: str
    quantity_a: int
    party_b: str
    instrument_b: str
    quantity_b: int
    deadline_ms: int

    def required_signers(self) -> tuple[str, ...]:
        return tuple(sorted({self.party_a, self.party_b}))


def _enc_lock(w: Writer, t: Lock | ReleaseLock | ClaimLock | Swap) -> None:
    match t:
        case Lock():
            w.ident(t.holder).ident(t.instrument).u64(t.amount).ident(t.beneficiary)
            w.u64(t.until_ms).u8(SecuredKind(t.secures.kind))
            if (t.secures.kind is SecuredKind.NONE) != (not t.secures.ref):
                raise w.error("a secured reference has an id exactly when its kind is not NONE")
            w.blob(t.secures.ref, SECURED_REF_BYTES_MAX)
        case ReleaseLock():
            w.fixed(t.lock, crypto.HASH_LEN).ident(t.holder).ident(t.by)
        case ClaimLock():
            w.fixed(t.lock, crypto.HASH_LEN).ident(t.holder).ident(t.beneficiary)
            w.ident(t.instrument).u64(t.amount).flag(bool(t.cosigner))
            if t.cosigner:
                w.ident(t.cosigner)
        case Swap():
            w.ident(t.party_a).ident(t.instrument_a).u64(t.quantity_a)
            w.ident(t.party_b).ident(t.instrument_b).u64(t.quantity_b).u64(t.deadline_ms)


# --- repo: repurchase agreements (issue 18 item 2; node/settlement/_repo.py) ----------


@dataclass(frozen=True, slots=True)
class RepoOpen:
    """Open repo ``id``: ``quantity`` of ``bond`` from ``borrower`` (the seller) to
    ``lender`` (the buyer) against ``purchase_amount`` of ``cash``, both or neither, and
    the repo record; signed by both. The close leg pays ``repurchase_amount`` when it is
    non-zero, else the purchase amount plus ACT/360 interest at ``rate_bp``. Either party
    alone may close from ``close_ms``; a close the borrower cannot pay waits until
    ``default_ms``, then the repo defaults (docs/ledger.md "Repo")."""

    KIND: ClassVar[TxKind] = TxKind.REPO_OPEN
    chain_id: str
    nonce: int
    expiry_ms: int
    id: str
    borrower: str
    lender: str
    bond: str
    quantity: int
    cash: str
    purchase_amount: int
    repurchase_amount: int  # 0: from rate_bp
    rate_bp: int  # per year, ACT/360; must be 0 when repurchase_amount is set
    close_ms: int
    default_ms: int
    cosigner: str = ""  # kyc: a compliance co-signer of both legs (the AML rule)

    def required_signers(self) -> tuple[str, ...]:
        return _with_cosigner((self.borrower, self.lender), self.cosigner)


@dataclass(frozen=True, slots=True)
class RepoClose:
    """Close repo ``id``: the reverse DvP at the repurchase amount. It names the repo's
    ``borrower`` and ``lender`` (so the body names both parties: either may read the
    close, ADR 0015); ``by`` are the signers, sorted, one or both of them: one suffices
    from the repo's close time."""

    KIND: ClassVar[TxKind] = TxKind.REPO_CLOSE
    chain_id: str
    nonce: int
    expiry_ms: int
    id: str
    borrower: str
    lender: str
    by: tuple[str, ...]
    cosigner: str = ""  # kyc: a compliance co-signer of the close leg (the AML rule)

    def required_signers(self) -> tuple[str, ...]:
        return _with_cosigner(self.by, self.cosigner)


_REPO_CLOSE_SIGNERS_MAX = 2  # the two parties


def _enc_repo(w: Writer, t: RepoOpen | RepoClose) -> None:
    match t:
        case RepoOpen():
            w.ident(t.id).ident(t.borrower).ident(t.lender).ident(t.bond).u64(t.quantity)
            w.ident(t.cash).u64(t.purchase_amount).u64(t.repurchase_amount).u32(t.rate_bp)
            w.u64(t.close_ms).u64(t.default_ms)
        case RepoClose():
            w.ident(t.id).ident(t.borrower).ident(t.lender)
            if not 0 < len(t.by) <= _REPO_CLOSE_SIGNERS_MAX or list(t.by) != sorted(set(t.by)):
                raise w.error("a repo close is signed by one or both parties, sorted")
            w.u8(len(t.by))
            for s in t.by:
                w.ident(s)
        case _:
            assert_never(t)


def _dec_secured(r: Reader) -> Secured:
    raw_kind = r.u8()
    if raw_kind not in SecuredKind._value2member_map_:
        raise DecodeError(f"unknown secured kind {raw_kind}")
    kind, ref = SecuredKind(raw_kind), r.blob(SECURED_REF_BYTES_MAX)
    if (kind is SecuredKind.NONE) != (not ref):
        raise DecodeError("a secured reference has an id exactly when its kind is not NONE")
    return Secured(kind, ref)


def _dec_lock(r: Reader, h: _Head) -> Lock:
    holder, instrument, amount, beneficiary = r.ident(), r.ident(), r.u64(), r.ident()
    return Lock(*h, holder, instrument, amount, beneficiary, r.u64(), _dec_secured(r))


def _dec_release_lock(r: Reader, h: _Head) -> ReleaseLock:
    return ReleaseLock(*h, lock=r.fixed(crypto.HASH_LEN), holder=r.ident(), by=r.ident())


def _dec_claim_lock(r: Reader, h: _Head) -> ClaimLock:
    lid, holder, beneficiary = r.fixed(crypto.HASH_LEN), r.ident(), r.ident()
    instrument, amount = r.ident(), r.u64()
    cosigner = r.ident() if r.flag() else ""
    return ClaimLock(*h, lid, holder, beneficiary, instrument, amount, cosigner)


def _dec_swap(r: Reader, h: _Head) -> Swap:
    a, ia, qa = r.ident(), r.ident(), r.u64()
    b, ib, qb = r.ident(), r.ident(), r.u64()
    return Swap(*h, a, ia, qa, b, ib, qb, deadline_ms=r.u64())


_DECODERS.update(
    {
        TxKind.LOCK: _dec_lock,
        TxKind.RELEASE_LOCK: _dec_release_lock,
        TxKind.CLAIM_LOCK: _dec_claim_lock,
        TxKind.SWAP: _dec_swap,
    }
)


def _dec_repo_open(r: Reader, h: _Head) -> RepoOpen:
    ids = (r.ident(), r.ident(), r.ident(), r.ident())
    quantity, cash, purchase = r.u64(), r.ident(), r.u64()
    repurchase, rate, close, default = r.u64(), r.u32(), r.u64(), r.u64()
    return RepoOpen(*h, *ids, quantity, cash, purchase, repurchase, rate, close, default)


def _dec_repo_close(r: Reader, h: _Head) -> RepoClose:
    repo_id, borrower, lender = r.ident(), r.ident(), r.ident()
    by = tuple(r.ident() for _ in range(r.limit(r.u8(), _REPO_CLOSE_SIGNERS_MAX, "signers")))
    if not by or list(by) != sorted(set(by)):
        raise DecodeError("a repo close is signed by one or both parties, sorted")
    return RepoClose(*h, repo_id, borrower, lender, by)


_DECODERS.update({TxKind.REPO_OPEN: _dec_repo_open, TxKind.REPO_CLOSE: _dec_repo_close})
# kyc: the kinds that may carry a compliance co-signer (the AML large-value rule); a
# repo's legs are checked like a DvP's, co-signer included (appended when named).
_COSIGNABLE = (Transfer, DvP, PendingDvP, RepoOpen, RepoClose)

# --- margin: prices, margin calls, substitution (issue 18 item 3; _price.py, _margin.py)


@dataclass(frozen=True, slots=True)
class AttestPrice:
    """``source`` (a price source genesis names) attests that one unit of ``instrument``
    is worth ``price`` minor units of its quote cash per PRICE_UNITS units, as of
    ``as_of_ms``."""

    KIND: ClassVar[TxKind] = TxKind.ATTEST_PRICE
    chain_id: str
    nonce: int
    expiry_ms: int
    source: str
    instrument: str
    price: int
    as_of_ms: int

    def required_signers(self) -> tuple[str, ...]:
        return (self.source,)


@dataclass(frozen=True, slots=True)
class MarginCall:
    """``lender`` calls margin on repo ``repo``: the borrower's deficit at the fresh
    price moves to the lender in the repo's collateral, under the terms the borrower
    signed at RepoOpen. Signed by the lender alone; it names the borrower too, so the
    borrower is a party who may read it (node/access.py ``tx_parties``)."""

    KIND: ClassVar[TxKind] = TxKind.MARGIN_CALL
    chain_id: str
    nonce: int
    expiry_ms: int
    repo: str
    borrower: str
    lender: str

    def required_signers(self) -> tuple[str, ...]:
        return (self.lender,)


@dataclass(frozen=True, slots=True)
class RepoSubstitute:
    """Replace repo ``repo``'s collateral by ``quantity`` of ``instrument``: the lender
    returns every unit held, the borrower delivers the new ones, both or neither. Signed
    by both (named in the body, so the signers are in the id)."""

    KIND: ClassVar[TxKind] = TxKind.REPO_SUBSTITUTE
    chain_id: str
    nonce: int
    expiry_ms: int
    repo: str
    borrower: str
    lender: str
    instrument: str
    quantity: int

    def required_signers(self) -> tuple[str, ...]:
        return tuple(sorted({self.borrower, self.lender}))


def _enc_margin(w: Writer, t: AttestPrice | MarginCall | RepoSubstitute) -> None:
    match t:
        case AttestPrice():
            w.ident(t.source).ident(t.instrument).u64(t.price).u64(t.as_of_ms)
        case MarginCall():
            w.ident(t.repo).ident(t.borrower).ident(t.lender)
        case RepoSubstitute():
            w.ident(t.repo).ident(t.borrower).ident(t.lender).ident(t.instrument)
            w.u64(t.quantity)
        case _:
            assert_never(t)


def _dec_attest_price(r: Reader, h: _Head) -> AttestPrice:
    return AttestPrice(*h, r.ident(), r.ident(), price=r.u64(), as_of_ms=r.u64())


def _dec_margin_call(r: Reader, h: _Head) -> MarginCall:
    return MarginCall(*h, repo=r.ident(), borrower=r.ident(), lender=r.ident())


def _dec_repo_substitute(r: Reader, h: _Head) -> RepoSubstitute:
    ids = (r.ident(), r.ident(), r.ident(), r.ident())
    return RepoSubstitute(*h, *ids, quantity=r.u64())


_DECODERS.update(
    {
        TxKind.ATTEST_PRICE: _dec_attest_price,
        TxKind.MARGIN_CALL: _dec_margin_call,
        TxKind.REPO_SUBSTITUTE: _dec_repo_substitute,
    }
)

# The union of every kind; mypy checks each match over it is exhaustive.
Transaction = (
    Mint
    | Burn
    | Transfer
    | DvP
    | CouponPay
    | Distribute
    | Redeem
    | RedeemAll
    | PendingDvP
    | Hold
    | Release
    | Cancel
    | Freeze
    | Unfreeze
    | AttestCustody
    | AttestReserves
    | SetComplianceRules
    | AddParticipant
    | SetRoles
    | SetKycTier
    | RotateKey
    | AddInstrument
    | SetMaxSupply
    | Lock
    | ReleaseLock
    | ClaimLock
    | Swap
    | RepoOpen
    | RepoClose
    | AttestPrice
    | MarginCall
    | RepoSubstitute
)
