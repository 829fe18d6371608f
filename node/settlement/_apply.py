"""Theory of operation: applying a block of transactions.

``apply_block(view, txs, ctx)`` is a pure function. It reads the state before the block
through ``view`` (a ``StateView``: a store, or anything that answers the same questions),
runs every transaction in order against an overlay, re-attempts the pending
instructions (``_pending.recycle``, ADR 0014), lapses the repos past their default
deadline (``_repo.lapse``), and returns a ``BlockOutcome``: one result per transaction
then one per pending instruction's event and one per repo lapsed, the balance and supply
values the block writes, the transaction ids it records, and the new state root.
Nothing is mutated; the caller commits the outcome to storage in one atomic write.

Each transaction passes the checks in the precedence order of ``ResultCode``; the first
failure decides its code and the transaction changes no balance. A DvP moves both legs or
neither: all checks for both legs run before either leg is written.

Identity and replay: a transaction whose signatures all verify ("authentic") is recorded
under its id the first time it appears, with its outcome, and never again; any later copy
is ``DUPLICATE``. Copies that fail before authentication (malformed, bad signature) are
answered in the block but not recorded, so a forger who attaches a garbage signature to
somebody else's body cannot burn that body's id.

One result per id (docs/adr/0007-one-result-per-id.md): every copy gets a result in its
block, but only the recorded copy's result is the id's outcome. ``TxResult.recorded``
says which, and ``result_leaf`` tags the two kinds apart, so the refusal of a forged or
duplicate copy can never be proven as the outcome of the id it carries.

State root: ``H(tag, previous root, height, time, H(results), H(sorted writes))``, a hash
chain over every state change (docs/adr/0002-state-root.md). Two nodes with the same
history compute the same root; any divergence in execution shows up at the next block.

Party index (docs/adr/0025-party-index.md, ``_parties``): after the block, execution
works out which positions name each participant registered after it, and the root of
that index is the results tree's last leaf, so the next header certifies it with the
results: a party-filtered read then proves it left none of the caller's out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import assert_never

from node import crypto, merkle, tags
from node.config import BLOCK_TXS_MAX, RECORD_KEY_BYTES_MAX, RECORD_VALUE_BYTES_MAX, U64_MAX
from node.invariant import require
from node.settlement import _compliance as kyc
from node.settlement import _freeze, _gov, _lock, _margin, _pending, _price, _repo, _reserve
from node.settlement import _lifecycle as life
from node.settlement._codec import DecodeError, Writer
from node.settlement._model import Genesis, InstrumentKind, Participant, Role
from node.settlement._parties import PartyIndex, PartyRoot, tx_names, tx_public
from node.settlement._registry import Registry
from node.settlement._result import ResultCode
from node.settlement._state import Overlay, StateView, TxRecord
from node.settlement._tx import (
    GOVERNANCE_KINDS,
    AddInstrument,
    AddParticipant,
    AttestCustody,
    AttestPrice,
    AttestReserves,
    Burn,
    Cancel,
    ClaimLock,
    CouponPay,
    Distribute,
    DvP,
    Freeze,
    Hold,
    Lock,
    MarginCall,
    Mint,
    PendingDvP,
    Redeem,
    RedeemAll,
    Release,
    ReleaseLock,
    RepoClose,
    RepoOpen,
    RepoSubstitute,
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
    decode_body,
)
from node.tags import LEAF_EVENT, LEAF_RECORDED, LEAF_UNRECORDED

__all__ = [
    "LEAF_RECORDED",
    "LEAF_UNRECORDED",
    "QUIET_RESULTS_ROOT",
    "BlockContext",
    "BlockOutcome",
    "TxResult",
    "Verify",
    "apply_block",
    "authentic",
    "genesis_state_root",
    "precheck",
    "result_leaf",
    "results_leaves",
    "results_root",
]

Verify = Callable[[bytes, bytes, bytes], bool]


@dataclass(frozen=True, slots=True)
class BlockContext:
    """What execution may know about the block: its height and its agreed timestamp."""

    height: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class TxResult:
    """One copy's result in its block. ``tx_id`` is the id the copy carries (the hash of
    its body, or of the raw bytes when no body decodes). ``recorded`` is True only for the
    copy the ledger recorded under that id (its first authentic copy): only that result
    is the id's outcome (ADR 0007). ``event`` marks a later event of a pending instruction
    (ADR 0014), appended after the block's transaction results; ``tx_id`` is then the
    instruction's id and ``recorded`` is False."""

    tx_id: bytes
    code: ResultCode
    recorded: bool
    event: bool = False

    @property
    def flag(self) -> int:
        """How the state root and the store tell the three kinds apart: 0 unrecorded copy,
        1 recorded copy, 2 event."""
        return 2 if self.event else int(self.recorded)


def result_leaf(result: TxResult) -> bytes:
    """The Merkle leaf of one result: a tag (recorded, unrecorded or event), the 32-byte tx
    id, then the code as u16 (ADR 0005, ADR 0007, ADR 0014)."""
    tag = LEAF_EVENT if result.event else LEAF_RECORDED if result.recorded else LEAF_UNRECORDED
    return Writer().raw(tag).fixed(result.tx_id, crypto.HASH_LEN).u16(result.code).finish()


def results_leaves(results: Sequence[TxResult], parties: PartyIndex | PartyRoot) -> list[bytes]:
    """The leaves of a block's results tree: each result in position order, then the
    size and root of its party index (ADR 0025): the index, or only its size and root
    (a node serving a receipt from an older block, stored with it)."""
    return [*(result_leaf(r) for r in results), parties.leaf]


def results_root(results: Sequence[TxResult], parties: PartyIndex | PartyRoot) -> bytes:
    """The Merkle root of a block's results tree; the next header holds it."""
    return merkle.root(results_leaves(results, parties))


# The results root of a block with no transaction and no event (an empty party index):
# consensus makes a block after any block whose results root is another (ADR 0026).
QUIET_RESULTS_ROOT = results_root((), PartyIndex((), (), (), observers=()))


@dataclass(frozen=True)
class BlockOutcome:
    height: int
    results: tuple[TxResult, ...]
    balances: dict[tuple[str, str], int]  # (account, instrument) -> new balance
    supplies: dict[str, int]  # instrument -> new supply
    recorded: tuple[tuple[bytes, TxRecord], ...]  # ids recorded by this block
    state_root: bytes
    records: dict[bytes, bytes | None]  # state records written (ADR 0013); None: deleted
    parties: PartyIndex  # who each position names (ADR 0025)
    bodies: tuple[Transaction | None, ...]  # each tx's body (None: undecodable), decoded once

    @property
    def results_root(self) -> bytes:
        return results_root(self.results, self.parties)


def genesis_state_root(genesis: Genesis) -> bytes:
    """The state root at height 0: genesis holdings are part of the canonical genesis."""
    return crypto.sha256(tags.GENESIS_STATE, genesis.canonical_bytes)


def apply_block(
    view: StateView,
    txs: Sequence[bytes],
    ctx: BlockContext,
    *,
    verify: Verify = crypto.verify,
) -> BlockOutcome:
    """Execute ``txs`` in order on the state ``view`` shows; pure and deterministic.

    ``verify`` checks one Ed25519 signature; callers may pass a memoized one (the result
    must be identical), but never one that skips checks.
    """
    head = view.head()
    require(ctx.height == head.height + 1, f"block {ctx.height} applied on height {head.height}")
    require(len(txs) <= BLOCK_TXS_MAX, "consensus admitted an oversized block")
    overlay = Overlay(view)
    reg = overlay.registry  # reads see the block's own governance writes (ADR 0016)
    results: list[TxResult] = []
    named: list[tuple[frozenset[str], bool]] = []
    bodies: list[Transaction | None] = []
    for position, raw in enumerate(txs):
        tid, code, authentic, tx = _apply_one(reg, overlay, raw, ctx, verify, position=position)
        bodies.append(tx)
        recorded = authentic and not overlay.seen(tid)
        if recorded:
            overlay.recorded[tid] = TxRecord(ctx.height, position, code)
        results.append(TxResult(tid, code, recorded))
        named.append(_NOBODY if tx is None else (tx_names(tx), tx_public(tx)))
    reg.record_added(ctx.height)  # before the index: the keys are the registry after it
    # the roles after it too; a block with no transactions has no index (and no flag)
    ids, observers = reg.participant_ids, reg.observers_at(ctx.height) if txs else ()
    parties = PartyIndex(named, ids, [r.tx_id for r in results], observers=observers)
    # After the block's own transactions: pending instructions, in (height, position) order.
    events = _pending.recycle(overlay, ctx.height, ctx.time_ms, len(results))
    _repo.after_recycle(overlay, events, ctx.time_ms)  # a repo's close settled or defaulted
    # An open repo past its default deadline defaults: its event follows recycling's.
    events += _repo.lapse(overlay, ctx.time_ms)
    for tid, code in events:
        results.append(TxResult(tid, code, recorded=False, event=True))
    root = _state_root(head.state_root, ctx, results, overlay)
    return BlockOutcome(
        height=ctx.height,
        results=tuple(results),
        balances=overlay.balances,
        supplies=overlay.supplies,
        recorded=tuple(overlay.recorded.items()),
        state_root=root,
        records=overlay.records_written,
        parties=parties,
        bodies=tuple(bodies),
    )


_NOBODY: tuple[frozenset[str], bool] = (frozenset(), False)  # an undecodable body


def _state_root(prev: bytes, ctx: BlockContext, results: list[TxResult], overlay: Overlay) -> bytes:
    w = Writer().u64(ctx.height).u64(ctx.time_ms).u32(len(results))
    for r in results:
        w.fixed(r.tx_id, crypto.HASH_LEN).u8(r.code).u8(r.flag)
    w.u32(len(overlay.balances))
    for (account, instrument), value in sorted(overlay.balances.items()):
        w.ident(account).ident(instrument).u64(value)
    w.u32(len(overlay.supplies))
    for instrument, value in sorted(overlay.supplies.items()):
        w.ident(instrument).u64(value)
    if overlay.records_written:  # absent when none: roots of record-free blocks as before
        _records_section(w, overlay.records_written)
    return crypto.sha256(tags.STATE, prev, w.finish())


def _records_section(w: Writer, written: dict[bytes, bytes | None]) -> None:
    """Sorted record writes; a deletion is a key with no value (ADR 0013)."""
    w.u32(len(written))
    for key, record in sorted(written.items()):
        w.blob(key, RECORD_KEY_BYTES_MAX).flag(record is not None)
        if record is not None:
            w.blob(record, RECORD_VALUE_BYTES_MAX)


def _apply_one(
    reg: Registry,
    overlay: Overlay,
    raw: bytes,
    ctx: BlockContext,
    verify: Verify,
    *,
    position: int,
) -> tuple[bytes, ResultCode, bool, Transaction | None]:
    """(tx id, result code, whether the signatures verified, the body if it decoded)."""
    tid, code, tx = _check(reg, raw, verify)
    if tx is None or code is not ResultCode.OK:
        return tid, code, code not in _UNAUTHENTICATED, tx
    if ctx.time_ms > tx.expiry_ms:
        return tid, ResultCode.EXPIRED, True, tx
    if overlay.seen(tid):
        return tid, ResultCode.DUPLICATE, True, tx
    return tid, _execute(reg, overlay, tx, ctx, (tid, position)), True, tx


_UNAUTHENTICATED = frozenset({ResultCode.MALFORMED, ResultCode.BAD_SIGNATURE})


def authentic(reg: Registry, raw: bytes, verify: Verify = crypto.verify) -> bool:
    """Whether ``raw`` decodes and every signature its body requires verifies against the
    registry's keys: the only kind of copy a block can record under its id."""
    return precheck(reg, raw, verify).code not in _UNAUTHENTICATED


def precheck(
    reg: Registry,
    raw: bytes,
    verify: Verify = crypto.verify,
    *,
    now_ms: int | None = None,
    tolerance_ms: int = 0,
) -> TxResult:
    """The state-independent checks: MALFORMED, BAD_SIGNATURE, WRONG_CHAIN, then what can
    never succeed whatever the state: UNAUTHORIZED (a party whose current roles or KYC
    tier can never allow it, e.g. a mint by a non-issuer) and, given the admitting node's
    clock ``now_ms``, EXPIRED or DEADLINE_PASSED more than ``tolerance_ms`` ago (block
    times may trail a node's clock by that much), and INVALID_AMOUNT for a pending DvP
    whose lot does not split it into equal whole lots; right after UNAUTHORIZED,
    COSIGN_REQUIRED for a named co-signer who can never count (not compliance, or a
    party). Else OK. What a node runs before admitting a transaction to its mempool;
    ``apply_block`` decides the final code.
    """
    tid, code, tx = _check(reg, raw, verify)
    if tx is None or code is not ResultCode.OK:
        return TxResult(tid, code, recorded=False)
    if now_ms is not None and now_ms - tolerance_ms > tx.expiry_ms:
        return TxResult(tid, ResultCode.EXPIRED, recorded=False)
    if isinstance(tx, GOVERNANCE_KINDS) and not _gov.quorum(reg, tx):
        return TxResult(tid, ResultCode.NOT_ADMIN_QUORUM, recorded=False)
    if not _roles_may_allow(reg, tx):
        return TxResult(tid, ResultCode.UNAUTHORIZED, recorded=False)
    if not _cosigner_may_allow(reg, tx):
        return TxResult(tid, ResultCode.COSIGN_REQUIRED, recorded=False)
    if (
        isinstance(tx, DvP | PendingDvP | Swap)
        and now_ms is not None
        and now_ms - tolerance_ms > tx.deadline_ms
    ):
        return TxResult(tid, ResultCode.DEADLINE_PASSED, recorded=False)
    if isinstance(tx, PendingDvP) and tx.quantity and tx.amount and not _pending.lots_of(tx):
        return TxResult(tid, ResultCode.INVALID_AMOUNT, recorded=False)
    if isinstance(tx, AttestReserves) and not _reserve.valid_composition(tx):
        return TxResult(tid, ResultCode.INVALID_ATTESTATION, recorded=False)
    return TxResult(tid, ResultCode.OK, recorded=False)  # only a block records


def _roles_may_allow(reg: Registry, tx: Transaction) -> bool:
    """False when the current roles and KYC tiers refuse ``tx`` (governance may change
    them later: a node's admission, not the block, decides with this); unknown ids are
    left to ``apply_block``'s own codes."""
    known = reg.participant_by_id
    parties: tuple[str, ...]
    if isinstance(tx, Mint | Burn):
        if tx.instrument not in reg.instrument_by_id:
            return True
        if isinstance(tx, Mint) and tx.to in known and not known[tx.to].can_hold():
            return False
        return _may_issue(reg, tx.by, tx.instrument)
    match tx:
        case Transfer():
            parties = (tx.sender, tx.receiver)
        case DvP() | PendingDvP() | Cancel():
            parties = (tx.seller, tx.buyer)
        case Redeem():
            parties = (tx.holder,)
        case CouponPay() | RedeemAll():
            return _agent_may_pay(reg, tx.bond, tx.agent)
        case Distribute():
            return _agent_may_pay(reg, tx.fund, tx.agent)
        case Hold() | Release():
            parties = (tx.by,)
        case Freeze() | Unfreeze():
            return _freeze.may_freeze(reg, tx.by, tx.instrument)
        case AddParticipant() | SetRoles() | SetKycTier() | RotateKey():
            return True  # the admin quorum has its own code (precheck)
        case AddInstrument() | SetMaxSupply() | SetComplianceRules():
            return True
        case AttestCustody():
            return tx.bond not in reg.instrument_by_id or _reserve.may_attest(reg, tx)
        case AttestReserves():
            return tx.cash not in reg.instrument_by_id or _reserve.may_attest(reg, tx)
        case Lock():
            parties = (tx.holder, tx.beneficiary)
        case ClaimLock():
            parties = (tx.beneficiary,)
        case ReleaseLock():
            return True  # ending a pledge frees the holder: nobody's tier stops it
        case Swap():
            parties = (tx.party_a, tx.party_b)
        case RepoOpen():
            parties = (tx.borrower, tx.lender)
        case RepoClose():
            parties = tx.by
        case AttestPrice():
            return tx.instrument not in reg.instrument_by_id or _price.may_attest_price(
                reg, tx.source
            )
        case MarginCall() | RepoSubstitute():
            parties = (tx.borrower, tx.lender)
        case _:
            assert_never(tx)
    return all(known[p].can_hold() for p in parties if p in known)


def _cosigner_may_allow(reg: Registry, tx: Transaction) -> bool:
    """False when a named co-signer can never count (not compliance, or a party)."""
    match tx:
        case Transfer() if tx.cosigner:
            return kyc.cosigner_ok(reg, tx.cosigner, (tx.sender, tx.receiver))
        case DvP() | PendingDvP() if tx.cosigner:
            return kyc.cosigner_ok(reg, tx.cosigner, (tx.seller, tx.buyer))
        case ClaimLock() if tx.cosigner:
            return kyc.cosigner_ok(reg, tx.cosigner, (tx.holder, tx.beneficiary))
        case RepoOpen() if tx.cosigner:
            return kyc.cosigner_ok(reg, tx.cosigner, (tx.borrower, tx.lender))
        case RepoClose() if tx.cosigner:
            return kyc.cosigner_ok(reg, tx.cosigner, tx.by)
        case _:
            return True


def _agent_may_pay(reg: Registry, instrument_id: str, agent: str) -> bool:
    """Only the paying agent the instrument names signs its payments."""
    inst = reg.instrument_by_id.get(instrument_id)
    return inst is None or inst.kind is InstrumentKind.CASH or inst.agent == agent


def _check(
    reg: Registry, raw: bytes, verify: Verify
) -> tuple[bytes, ResultCode, Transaction | None]:
    try:
        stx = SignedTx.decode(raw)
    except DecodeError:
        return crypto.sha256(raw), ResultCode.MALFORMED, None
    tid = stx.tx_id
    try:
        tx = decode_body(stx.body)
    except DecodeError:
        return tid, ResultCode.MALFORMED, None
    if not _signatures_ok(reg, stx, tx, verify):
        return tid, ResultCode.BAD_SIGNATURE, tx
    if tx.chain_id != reg.chain_id:
        return tid, ResultCode.WRONG_CHAIN, tx
    return tid, ResultCode.OK, tx


def _signatures_ok(reg: Registry, stx: SignedTx, tx: Transaction, verify: Verify) -> bool:
    required = tx.required_signers()
    if tuple(s for s, _ in stx.signatures) != required:
        return False  # missing, extra, or by the wrong party
    message = tags.TX + stx.body
    for signer, sig in stx.signatures:
        party = reg.participant_by_id.get(signer)
        if party is None or not verify(party.public_key, message, sig):
            return False
    return True


def _execute(
    reg: Registry, o: Overlay, tx: Transaction, ctx: BlockContext, at: tuple[bytes, int]
) -> ResultCode:
    """``at``: the transaction's id and position, which a pending instruction is keyed by."""
    match tx:
        case DvP():
            return _dvp(reg, o, tx, ctx)
        case PendingDvP():
            return _pending.submit(
                o,
                tx,
                tid=at[0],
                height=ctx.height,
                position=at[1],
                time_ms=ctx.time_ms,
                first_attempt=lambda: _dvp(reg, o, tx.as_dvp(), ctx),
            )
        case Hold() | Release():
            return _repo.pinned(o, tx.instruction) or _pending.hold(o, tx)
        case Cancel():
            return _repo.pinned(o, tx.instruction) or _pending.cancel(o, tx)
        case Transfer():
            return _transfer(reg, o, tx, ctx)
        case Mint():
            return _mint(reg, o, tx, ctx)
        case Burn():
            return _burn(reg, o, tx, ctx)
        case CouponPay() | Distribute() | Redeem() | RedeemAll():
            return _frozen_payment(reg, o, tx) or _lifecycle(reg, o, tx, ctx.time_ms)
        case Freeze():
            return _freeze.freeze(reg, o, tx, height=ctx.height, time_ms=ctx.time_ms)
        case Unfreeze():
            return _freeze.unfreeze(reg, o, tx)
        case AddParticipant() | SetRoles() | SetKycTier() | RotateKey():
            return _gov.apply(reg, o, tx, ctx.time_ms)
        case AddInstrument() | SetMaxSupply() | SetComplianceRules():
            return _gov.apply(reg, o, tx, ctx.time_ms)
        case AttestCustody():
            return _reserve.attest_custody(reg, o, tx, height=ctx.height, time_ms=ctx.time_ms)
        case AttestReserves():
            return _reserve.attest_reserves(reg, o, tx, height=ctx.height, time_ms=ctx.time_ms)
        case Lock() | ReleaseLock() | ClaimLock() | Swap():
            return _locks(reg, o, tx, ctx, at[0])
        case RepoOpen() | RepoClose():
            return _repo_tx(reg, o, tx, ctx, at)
        case AttestPrice():
            return _price.attest_price(reg, o, tx, height=ctx.height, time_ms=ctx.time_ms)
        case MarginCall():
            return _margin.margin_call(reg, o, tx, time_ms=ctx.time_ms)
        case RepoSubstitute():
            return _margin.substitute(reg, o, tx, time_ms=ctx.time_ms)
        case _:
            assert_never(tx)


def _locks(
    reg: Registry, o: Overlay, tx: Lock | ReleaseLock | ClaimLock | Swap, ctx: BlockContext,
    tid: bytes,
) -> ResultCode:  # fmt: skip
    match tx:
        case Lock():
            resolve = functools.partial(_secured_parties, o)
            t = ctx.time_ms
            return _lock.lock(reg, o, tx, resolve, lock_id=tid, height=ctx.height, time_ms=t)
        case ReleaseLock():
            return _lock.release(o, tx, ctx.time_ms)
        case ClaimLock():
            return _lock.claim(reg, o, tx, ctx.time_ms)
        case Swap():
            return _lock.swap(reg, o, tx, ctx.time_ms)


def _secured_parties(o: Overlay, secured: Secured) -> tuple[str, str] | None:
    """The two parties of the live obligation a Lock names, as the module that owns its
    kind knows them (None: not live). A new kind fails type-checking here until wired."""
    match secured.kind:
        case SecuredKind.PENDING_DVP:
            return _pending.live_parties(o, secured)
        case SecuredKind.REPO:
            return _repo.live_parties(o, secured)
        case SecuredKind.NONE:
            return None  # secures nothing: _lock never asks
        case _:
            assert_never(secured.kind)


def _repo_tx(
    reg: Registry, o: Overlay, tx: RepoOpen | RepoClose, ctx: BlockContext, at: tuple[bytes, int]
) -> ResultCode:
    """A repo's legs run the DvP rules themselves (``_dvp``), not a copy of them."""
    legs = lambda leg: _dvp(reg, o, leg, ctx)  # noqa: E731
    match tx:
        case RepoOpen():
            return _repo.open_(reg, o, tx, legs, tid=at[0], height=ctx.height, time_ms=ctx.time_ms)
        case RepoClose():
            tid, position = at
            return _repo.close(
                reg, o, tx, legs, tid=tid, height=ctx.height, position=position, time_ms=ctx.time_ms
            )
        case _:
            assert_never(tx)


def _lifecycle(
    reg: Registry, o: Overlay, tx: CouponPay | Distribute | Redeem | RedeemAll, time_ms: int
) -> ResultCode:
    match tx:
        case CouponPay():
            return life.coupon_pay(reg, o, tx, time_ms)
        case Distribute():
            return life.distribute(reg, o, tx, time_ms)
        case Redeem():
            return life.redeem(reg, o, tx, time_ms)
        case RedeemAll():
            return life.redeem_all(reg, o, tx, time_ms)
        case _:
            assert_never(tx)


def _frozen_payment(
    reg: Registry, o: Overlay, tx: CouponPay | Distribute | Redeem | RedeemAll
) -> ResultCode | None:
    """FROZEN for a lifecycle payment a freeze blocks; None to run its own checks."""
    match tx:
        case Redeem():
            return _redeem_frozen(reg, o, tx)
        case Distribute():
            return _agent_frozen(reg, o, tx.fund)
        case CouponPay() | RedeemAll():
            return _agent_frozen(reg, o, tx.bond)
        case _:
            assert_never(tx)


def _agent_frozen(reg: Registry, o: Overlay, instrument: str) -> ResultCode | None:
    """FROZEN when the paying agent's payment cash (the leg every lifecycle payment
    debits) is frozen; None to run the payment's own checks. Holders' frozen holdings are
    paid into (docs/ledger.md "Freezes")."""
    inst = reg.instrument_by_id.get(instrument)
    if inst is None or not inst.payment_cash:
        return None  # unknown or cash: the payment's own checks give the code
    frozen = _freeze.any_frozen(o, (inst.agent, inst.payment_cash))
    return ResultCode.FROZEN if frozen else None


def _redeem_frozen(reg: Registry, o: Overlay, tx: Redeem) -> ResultCode | None:
    """A holder's own redemption debits its bond holding: FROZEN if that is frozen."""
    known = tx.holder in reg.participant_by_id and tx.bond in reg.instrument_by_id
    if known and _freeze.any_frozen(o, (tx.holder, tx.bond)):
        return ResultCode.FROZEN
    return _agent_frozen(reg, o, tx.bond)


_SHORT_BOND = ResultCode.INSUFFICIENT_SECURITIES


def _shortfall(kind: InstrumentKind) -> ResultCode:
    if kind is InstrumentKind.CASH:
        return ResultCode.INSUFFICIENT_CASH
    return ResultCode.INSUFFICIENT_SECURITIES  # bonds and fund shares


def _may_issue(reg: Registry, who: str, instrument_id: str) -> bool:
    """Issuers mint and burn their own instruments; custodians mint and burn bonds."""
    party = reg.participant_by_id[who]
    inst = reg.instrument_by_id[instrument_id]
    if party.kyc_tier == 0:
        return False
    if inst.kind is InstrumentKind.CASH:
        return who == inst.issuer and Role.CASH_ISSUER in party.roles
    if who == inst.issuer and Role.BOND_ISSUER in party.roles:
        return True
    return inst.kind is InstrumentKind.BOND and Role.CUSTODIAN in party.roles  # not funds


def _can_hold(reg: Registry, *accounts: str) -> bool:
    parties: list[Participant] = [reg.participant_by_id[a] for a in accounts]
    return all(p.can_hold() for p in parties)


def _mint(reg: Registry, o: Overlay, tx: Mint, ctx: BlockContext) -> ResultCode:
    if tx.to not in reg.participant_by_id:
        return ResultCode.UNKNOWN_ACCOUNT
    inst = reg.instrument_by_id.get(tx.instrument)
    if inst is None:
        return ResultCode.UNKNOWN_INSTRUMENT
    if tx.amount == 0:
        return ResultCode.INVALID_AMOUNT
    if not _may_issue(reg, tx.by, tx.instrument) or not _can_hold(reg, tx.to):
        return ResultCode.UNAUTHORIZED
    if _freeze.any_frozen(o, (tx.to, tx.instrument)):
        return ResultCode.FROZEN
    cash, value = kyc.value_of(reg, tx.instrument, tx.amount)
    checked = kyc.Check(((tx.to, tx.instrument),), (tx.to,), cash, value, cosigner=None)
    rules = kyc.rules_in_force(reg, o)
    if (code := kyc.check(reg, o, rules, checked, ctx.time_ms)) is not None:
        return code
    if life.matured(reg, tx.instrument, ctx.time_ms):
        return ResultCode.MATURED
    supply = o.supply(tx.instrument)
    if supply + tx.amount > U64_MAX or o.balance(tx.to, tx.instrument) + tx.amount > U64_MAX:
        return ResultCode.OVERFLOW
    if supply + tx.amount > inst.max_supply:
        return ResultCode.SUPPLY_LIMIT
    backed = _reserve.mint_code(reg, o, tx.instrument, tx.amount)
    if backed is not None:
        return backed
    o.adjust_supply(tx.instrument, tx.to, tx.amount)
    kyc.note_volume(reg, o, rules, checked, time_ms=ctx.time_ms)
    return ResultCode.OK


def _burn(reg: Registry, o: Overlay, tx: Burn, ctx: BlockContext) -> ResultCode:
    inst = reg.instrument_by_id.get(tx.instrument)
    if inst is None:
        return ResultCode.UNKNOWN_INSTRUMENT
    if tx.amount == 0:
        return ResultCode.INVALID_AMOUNT
    if not _may_issue(reg, tx.by, tx.instrument):
        return ResultCode.UNAUTHORIZED
    if _freeze.any_frozen(o, (tx.holder, tx.instrument)):
        return ResultCode.FROZEN
    if life.matured(reg, tx.instrument, ctx.time_ms):
        return ResultCode.MATURED  # at maturity units leave only by redemption, for cash
    short = _lock.debit_code(o, tx.holder, tx.instrument, tx.amount, _shortfall(inst.kind))
    if short is not None:
        return short
    o.adjust_supply(tx.instrument, tx.holder, -tx.amount)
    return ResultCode.OK


def _transfer(reg: Registry, o: Overlay, tx: Transfer, ctx: BlockContext) -> ResultCode:
    if tx.receiver not in reg.participant_by_id:
        return ResultCode.UNKNOWN_ACCOUNT
    inst = reg.instrument_by_id.get(tx.instrument)
    if inst is None:
        return ResultCode.UNKNOWN_INSTRUMENT
    if tx.amount == 0:
        return ResultCode.INVALID_AMOUNT
    if tx.sender == tx.receiver:
        return ResultCode.SELF_TRADE
    if not _can_hold(reg, tx.sender, tx.receiver):
        return ResultCode.UNAUTHORIZED
    if _freeze.any_frozen(o, (tx.sender, tx.instrument), (tx.receiver, tx.instrument)):
        return ResultCode.FROZEN
    cash, value = kyc.value_of(reg, tx.instrument, tx.amount)
    parties = (tx.sender, tx.receiver)
    # Only the sender signs: the receiver's limits are not its to spend (ADR 0027).
    checked = kyc.Check(
        ((tx.receiver, tx.instrument),), parties, cash, value, tx.cosigner, limited=(tx.sender,)
    )
    rules = kyc.rules_in_force(reg, o)
    if (code := kyc.check(reg, o, rules, checked, ctx.time_ms)) is not None:
        return code
    if life.matured(reg, tx.instrument, ctx.time_ms):
        return ResultCode.MATURED
    short = _lock.debit_code(o, tx.sender, tx.instrument, tx.amount, _shortfall(inst.kind))
    if short is not None:
        return short
    if o.balance(tx.receiver, tx.instrument) + tx.amount > U64_MAX:
        return ResultCode.OVERFLOW
    o.move(tx.instrument, tx.sender, tx.receiver, tx.amount)
    kyc.note_volume(reg, o, rules, checked, time_ms=ctx.time_ms)
    return ResultCode.OK


def _dvp(reg: Registry, o: Overlay, tx: DvP, ctx: BlockContext) -> ResultCode:
    bond = reg.instrument_by_id.get(tx.bond)
    cash = reg.instrument_by_id.get(tx.cash)
    if bond is None or cash is None:
        return ResultCode.UNKNOWN_INSTRUMENT
    if tx.quantity == 0 or tx.amount == 0:
        return ResultCode.INVALID_AMOUNT
    if tx.seller == tx.buyer:
        return ResultCode.SELF_TRADE
    if bond.kind is not InstrumentKind.BOND or cash.kind is not InstrumentKind.CASH:
        return ResultCode.WRONG_INSTRUMENT_KIND
    if not _can_hold(reg, tx.seller, tx.buyer):
        return ResultCode.UNAUTHORIZED
    if _freeze.any_frozen(o, *_freeze.dvp_holdings(tx.seller, tx.buyer, tx.bond, tx.cash)):
        return ResultCode.FROZEN
    rules, checked = kyc.rules_in_force(reg, o), _dvp_check(tx)
    if (code := kyc.check(reg, o, rules, checked, ctx.time_ms)) is not None:
        return code
    if life.matured(reg, tx.bond, ctx.time_ms):
        return ResultCode.MATURED
    if ctx.time_ms > tx.deadline_ms:
        return ResultCode.DEADLINE_PASSED
    # lock: the available balances (docs/ledger.md "Locks and swaps")
    short = _lock.debit_code(o, tx.seller, tx.bond, tx.quantity, _SHORT_BOND)
    if short is not None:
        return short
    short = _lock.debit_code(o, tx.buyer, tx.cash, tx.amount, ResultCode.INSUFFICIENT_CASH)
    if short is not None:
        return short
    if (
        o.balance(tx.buyer, tx.bond) + tx.quantity > U64_MAX
        or o.balance(tx.seller, tx.cash) + tx.amount > U64_MAX
    ):
        return ResultCode.OVERFLOW
    # Both legs checked above; only now does either move.
    o.move(tx.bond, tx.seller, tx.buyer, tx.quantity)
    o.move(tx.cash, tx.buyer, tx.seller, tx.amount)
    kyc.note_volume(reg, o, rules, checked, time_ms=ctx.time_ms)
    return ResultCode.OK


def _dvp_check(tx: DvP) -> kyc.Check:
    """The buyer receives the bond, the seller the cash; the cash leg is the value."""
    receives = ((tx.buyer, tx.bond), (tx.seller, tx.cash))
    return kyc.Check(receives, (tx.seller, tx.buyer), tx.cash, tx.amount, tx.cosigner)
