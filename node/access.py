"""Who is calling, and what they may read: the client port's identity and access rules.

Theory of operation (docs/adr/0015-client-identity.md, docs/cluster.md "Security: who
reads what"). Every call on the client port carries a *signed request* in its gRPC
metadata: the caller's participant id, its clock in milliseconds, a fresh nonce, and an
Ed25519 signature by the participant's current key (the registry at the node's head,
docs/adr/0016-reference-data-in-state.md: a rotated key is refused from the rotation on) over

    tags.REQUEST || chain id || node || participant || method || SHA-256(request bytes)
        || time_ms || nonce

(each variable-length part length-prefixed). The method and the request digest bind the
signature to this one call, the chain id to this network, the node (the genesis id of the
validator whose pinned certificate the caller's TLS channel checked, ``val03``) to the one
validator it was sent to, so that its operator cannot replay it at another, the
participant to the caller it names (participants may share a key); the time and nonce let
that node refuse replays (node/runtime/_access.py keeps the clock window and the nonce
cache). A stream's requests are not covered one by one: a SubmitStream is signed over the
empty request (its transactions carry their own signatures).

The authorization rules are pure functions of the caller, the reference data (a
``Registry``) and the data:

- an account's balances go to that participant only;
- a transaction (status, receipt, its place in a block) goes to its *parties*: the
  participants its body names (signers, counterparties, the minting issuer);
- an instrument's corporate actions (``CouponPay``, ``Distribute``, ``RedeemAll``) go to
  every participant: their bodies name the instrument, the period and the paying agent,
  nothing about any holder; what each holder received is in its balances, which stay
  private;
- a pending trade (``GetPending``) goes to its seller and buyer;
- an instrument's holders (``GetInstrument``) go to its issuer and paying agent (who pay
  them); anyone else sees only its own holding and the periods paid;
- an instrument's custody or reserve attestations and its supply (``GetAttestations``)
  go to its issuer and, for a custody-backed bond, its attesting custodian;
- the reference data (``GetReference``: participants, their roles, tiers and public keys,
  instruments with terms, supply and cap, the admins) goes to every participant: each
  needs its counterparties' keys and the terms it trades on, and none of it is a position;
- a lock (``GetLocks``) goes to its holder and its beneficiary (docs/ledger.md "Locks and
  swaps"): its amount is part of the holder's position;
- a repo (``GetRepos``) goes to its borrower and lender; anyone else is answered as if
  it did not exist (repo ids are names the parties choose, so a refusal would tell that
  one exists);
- the recorded prices of eligible collateral (``GetPrices``) go to every participant:
  prices are market data, not positions, and a repo's parties need them to see a margin
  call coming;
- participants with an observer role (``regulator``, ``compliance``, ``auditor``) read
  everything.

This module does no I/O and reads no clock or randomness: the caller passes both in.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from node import crypto, tags
from node.config import REQUEST_NONCE_BYTES_MAX
from node.settlement import (
    OBSERVER_ROLES,
    DecodeError,
    Registry,
    SignedTx,
    Transaction,
    decode_body,
    tx_names,
    tx_public,
)

__all__ = [
    "METADATA_NONCE",
    "METADATA_PARTICIPANT",
    "METADATA_SIGNATURE",
    "METADATA_TIME",
    "OBSERVER_ROLES",
    "AccessError",
    "Caller",
    "Claim",
    "TxReaders",
    "may_read_account",
    "may_read_attestations",
    "may_read_holders",
    "may_read_lock",
    "may_read_pending",
    "may_read_prices",
    "may_read_reference",
    "may_read_repo",
    "may_read_tx",
    "parse_claim",
    "request_payload",
    "signed_metadata",
    "tx_parties",
    "tx_readers",
    "verify_claim",
]

# gRPC metadata keys (lower case, as HTTP/2 requires); values are ASCII.
METADATA_PARTICIPANT = "ledger-participant"
METADATA_TIME = "ledger-time-ms"
METADATA_NONCE = "ledger-nonce"  # hex
METADATA_SIGNATURE = "ledger-signature"  # hex, 64 bytes R || S

# OBSERVER_ROLES (node/settlement, re-exported here): roles that read every account and
# every transaction; none of them may hold assets.


class AccessError(ValueError):
    """A request's identity is missing, malformed, or does not verify (UNAUTHENTICATED)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """The identity metadata of one call, parsed but not verified yet."""

    participant: str
    time_ms: int
    nonce: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified caller: a participant, whether it observes everything, and the public
    key its call was verified with (empty for an in-process reader: no call, no key), so
    that an open stream ends once governance rotates that key away."""

    participant: str
    observer: bool
    key: bytes = b""


def request_payload(
    chain_id: str,
    method: str,
    request: bytes,
    *,
    node: str,
    participant: str,
    time_ms: int,
    nonce: bytes,
) -> bytes:
    """The bytes ``participant`` signs for one call of ``method`` (its full gRPC path) with
    the serialized ``request``, sent to the validator whose genesis id is ``node``."""
    chain, to, who, name = chain_id.encode(), node.encode(), participant.encode(), method.encode()
    return b"".join(
        (
            tags.REQUEST,
            struct.pack(">H", len(chain)),
            chain,
            struct.pack(">H", len(to)),
            to,
            struct.pack(">H", len(who)),
            who,
            struct.pack(">H", len(name)),
            name,
            crypto.sha256(request),
            struct.pack(">QB", time_ms, len(nonce)),
            nonce,
        )
    )


def signed_metadata(
    key: crypto.SigningKey,
    participant: str,
    chain_id: str,
    method: str,
    request: bytes,
    *,
    node: str,
    time_ms: int,
    nonce: bytes,
) -> tuple[tuple[str, str], ...]:
    """The metadata that proves ``participant`` (holding ``key``) makes this call to
    ``node``."""
    payload = request_payload(
        chain_id, method, request, node=node, participant=participant, time_ms=time_ms, nonce=nonce
    )
    sig = key.sign(payload)
    return (
        (METADATA_PARTICIPANT, participant),
        (METADATA_TIME, str(time_ms)),
        (METADATA_NONCE, nonce.hex()),
        (METADATA_SIGNATURE, sig.hex()),
    )


def parse_claim(metadata: Iterable[tuple[str, str | bytes]]) -> Claim:
    """The identity in a call's metadata; AccessError saying what is missing or malformed."""
    found: dict[str, str] = {}
    for k, v in metadata:
        if k in (METADATA_PARTICIPANT, METADATA_TIME, METADATA_NONCE, METADATA_SIGNATURE):
            if k in found or not isinstance(v, str):
                raise AccessError(f"metadata {k!r} must appear once, as text")
            found[k] = v
    if METADATA_PARTICIPANT not in found:
        raise AccessError(
            f"no identity: sign each call ({METADATA_PARTICIPANT}, {METADATA_TIME}, "
            f"{METADATA_NONCE}, {METADATA_SIGNATURE}); the SDK does it given identity="
        )
    try:
        time_ms = int(found[METADATA_TIME], 10)
        nonce = bytes.fromhex(found[METADATA_NONCE])
        signature = bytes.fromhex(found[METADATA_SIGNATURE])
    except (KeyError, ValueError) as e:
        raise AccessError(f"malformed identity metadata ({e})") from e
    if not 0 <= time_ms < 2**64 or not 1 <= len(nonce) <= REQUEST_NONCE_BYTES_MAX:
        raise AccessError(
            f"identity time out of range, or nonce not 1..{REQUEST_NONCE_BYTES_MAX} bytes"
        )
    return Claim(found[METADATA_PARTICIPANT], time_ms, nonce, signature)


def verify_claim(claim: Claim, reg: Registry, node: str, method: str, request: bytes) -> Caller:
    """The caller ``claim`` proves for this call to ``node`` (this validator's id), or
    AccessError (unknown participant, or a signature that is not by its current key over
    this chain, node, participant, method and request)."""
    p = reg.participant_by_id.get(claim.participant)
    if p is None:
        raise AccessError(f"{claim.participant!r} is not a participant of this chain")
    payload = request_payload(
        reg.chain_id,
        method,
        request,
        node=node,
        participant=claim.participant,
        time_ms=claim.time_ms,
        nonce=claim.nonce,
    )
    if not crypto.verify(p.public_key, payload, claim.signature):
        raise AccessError(
            f"the request signature does not verify under {p.id}'s current key "
            f"(another key, chain, participant, method or request, or signed for another node "
            f"than {node})"
        )
    return Caller(p.id, p.observer, p.public_key)


def may_read_account(caller: Caller, account: str) -> bool:
    return caller.observer or caller.participant == account


@dataclass(frozen=True, slots=True)
class TxReaders:
    """Who besides observers may read one signed transaction: every participant (a
    corporate action, ``public``), else its ``parties``. Worked out from the body once
    (``tx_readers``), it answers any number of callers. A party-filtered block is read
    through the block's party index instead (ADR 0025), built from the same names."""

    public: bool
    parties: frozenset[str]

    def admit(self, caller: Caller) -> bool:
        return caller.observer or self.public or caller.participant in self.parties


_NOBODY = TxReaders(public=False, parties=frozenset())
_PUBLIC = TxReaders(public=True, parties=frozenset())


def tx_readers(raw_tx: bytes, reg: Registry) -> TxReaders:
    """Who may read a signed transaction (see above), decoding its body once. An
    undecodable body is nobody's but the observers'."""
    tx = _body(raw_tx)
    if tx is None:
        return _NOBODY
    if tx_public(tx):  # pays every holder: public
        return _PUBLIC
    return TxReaders(public=False, parties=_named(tx, reg))


def tx_parties(raw_tx: bytes, reg: Registry) -> frozenset[str]:
    """The participants a signed transaction's body names: every field (of whatever kind,
    so a new transaction kind is covered without a change here) whose value is a
    participant id, and its required signers. An undecodable body names nobody. The
    names are ``settlement.tx_names``: the same ones a block's party index commits to
    (ADR 0025), so a party-filtered block and a transaction read agree."""
    tx = _body(raw_tx)
    return frozenset() if tx is None else _named(tx, reg)


def _body(raw_tx: bytes) -> Transaction | None:
    try:
        return decode_body(SignedTx.decode(raw_tx).body)
    except DecodeError:
        return None


def _named(tx: Transaction, reg: Registry) -> frozenset[str]:
    signers = tx.required_signers()
    return frozenset(n for n in tx_names(tx) if n in signers or n in reg.participant_by_id)


def may_read_tx(caller: Caller, raw_tx: bytes, reg: Registry, *, height: int | None = None) -> bool:
    """``height``: the block that holds the transaction. A participant that a later
    block added reads it only if it is public, as that block's party index shows it
    (ADR 0025; review 20: a transaction that named it before it existed was readable
    by id, though no filtered block of that height shows it). One that held an
    observer role after that block reads it, as GetBlock serves it that block whole (a
    demoted auditor, its auditor days; sweep D of session 22: it was refused by id)."""
    if caller.observer:
        return True
    readers = tx_readers(raw_tx, reg)
    if readers.admit(caller) and (
        readers.public or height is None or caller.participant in reg.participants_at(height)
    ):
        return True
    # Last, so a party's own read (every streamed final event) never scans the roles.
    return height is not None and caller.participant in reg.observers_at(height)


def may_read_pending(caller: Caller, seller: str, buyer: str) -> bool:
    """A pending trade's terms go to its two parties (and observers)."""
    return caller.observer or caller.participant in (seller, buyer)


def may_read_holders(caller: Caller, instrument: str, reg: Registry) -> bool:
    """Every holder of ``instrument``: its issuer and paying agent need them to pay."""
    inst = reg.instrument_by_id.get(instrument)
    staff = () if inst is None else (inst.issuer, inst.agent)
    return caller.observer or caller.participant in staff


def may_read_attestations(caller: Caller, instrument: str, reg: Registry) -> bool:
    """A backed instrument's attestations and supply: its issuer and attesting custodian
    (who reconcile them) and observers; not other holders (docs/ledger.md "Custody and
    reserves": the supply with one's own balance tells how the rest is held)."""
    inst = reg.instrument_by_id.get(instrument)
    backing = reg.genesis.custody_by_bond.get(instrument)
    staff = () if inst is None else (inst.issuer, backing.custodian if backing else inst.issuer)
    return caller.observer or caller.participant in staff


def may_read_lock(caller: Caller, holder: str, beneficiary: str) -> bool:
    """A lock's terms go to its two parties (and observers), like a pending trade's."""
    return caller.observer or caller.participant in (holder, beneficiary)


def may_read_reference(caller: Caller) -> bool:
    """The reference data is every participant's (see above): identity is all it takes."""
    return bool(caller.participant)


def may_read_repo(caller: Caller, borrower: str, lender: str) -> bool:
    """A repo's terms and status go to its two parties (and observers)."""
    return caller.observer or caller.participant in (borrower, lender)


def may_read_prices(caller: Caller) -> bool:
    """The recorded prices are every participant's (see above): identity is all it takes."""
    return bool(caller.participant)
