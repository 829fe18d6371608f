"""Theory of operation: governance (issue 15 item 1; docs/ledger.md "Governance").

Genesis names the admins (participant ids) and a threshold k. A governance transaction
names its admin signers in its body; the envelope must carry exactly their signatures
under their current keys (else ``BAD_SIGNATURE``, like any transaction), and the ledger
then requires that every signer is an admin and that there are at least k of them
(else ``NOT_ADMIN_QUORUM``). Each transaction writes the reference data through the
block's ``Registry`` (node/settlement/_registry.py), so the transactions after it in the
block, and every later block, see the change. A refused one changes nothing.

Checks, in order, after the quorum: the id it names exists (``UNKNOWN_ACCOUNT``,
``UNKNOWN_INSTRUMENT``) or, for an addition, does not (``ALREADY_EXISTS``); the new
values pass the checks genesis applies (``INVALID_REFERENCE``; a zero cap:
``INVALID_AMOUNT``); an addition stays within PARTICIPANTS_MAX or INSTRUMENTS_MAX
(``REGISTRY_FULL``); a cap's attestation is newer than the last one and not after the
block time (``STALE_ATTESTATION``) and the cap is at least the outstanding supply
(``CAP_BELOW_SUPPLY``); new compliance rules name instruments of the kinds their tables
need (``INVALID_REFERENCE``) and replace the rules in force whole.

Roles and KYC tiers are checked where they are used (a mint, a trade, a payment), so a
``SetRoles`` that takes the cash_issuer role from a cash token's issuer makes its later
mints ``UNAUTHORIZED``; nothing already held moves.
"""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from node import crypto
from node.config import INSTRUMENTS_MAX, PARTICIPANTS_MAX
from node.settlement._compliance import set_rules
from node.settlement._kyc_rules import check_rules
from node.settlement._model import (
    KYC_TIER_MAX,
    GenesisError,
    validate_instrument,
    validate_participant,
)
from node.settlement._registry import Registry
from node.settlement._result import ResultCode
from node.settlement._state import Overlay
from node.settlement._tx import (
    AddInstrument,
    AddParticipant,
    Governance,
    RotateKey,
    SetComplianceRules,
    SetKycTier,
    SetMaxSupply,
    SetRoles,
)

__all__ = ["apply", "quorum"]


def quorum(reg: Registry, tx: Governance) -> bool:
    """Every named signer is an admin and there are at least k of them."""
    admins = reg.admins
    return bool(admins) and len(tx.admins) >= reg.threshold and set(tx.admins) <= set(admins)


def apply(reg: Registry, o: Overlay, tx: Governance, time_ms: int) -> ResultCode:
    """Run one governance transaction whose signatures verified; its result code."""
    if not quorum(reg, tx):
        return ResultCode.NOT_ADMIN_QUORUM
    match tx:
        case AddParticipant():
            return _add_participant(reg, tx)
        case SetRoles() | SetKycTier() | RotateKey():
            return _change_participant(reg, tx)
        case AddInstrument():
            return _add_instrument(reg, tx)
        case SetMaxSupply():
            return _set_max_supply(reg, o, tx, time_ms)
        case SetComplianceRules():
            return _set_compliance_rules(reg, o, tx)
        case _:
            assert_never(tx)


def _add_participant(reg: Registry, tx: AddParticipant) -> ResultCode:
    p = tx.participant
    if p.id in reg.participant_by_id:
        return ResultCode.ALREADY_EXISTS
    try:
        validate_participant(p)
    except GenesisError:
        return ResultCode.INVALID_REFERENCE
    if len(reg.genesis.participants) + reg.added()[0] >= PARTICIPANTS_MAX:
        return ResultCode.REGISTRY_FULL
    reg.put_participant(p, new=True)
    return ResultCode.OK


def _change_participant(reg: Registry, tx: SetRoles | SetKycTier | RotateKey) -> ResultCode:
    p = reg.participant(tx.participant)
    if p is None:
        return ResultCode.UNKNOWN_ACCOUNT
    match tx:
        case SetRoles():
            changed = replace(p, roles=tx.roles)
        case SetKycTier():
            if tx.kyc_tier > KYC_TIER_MAX:
                return ResultCode.INVALID_REFERENCE
            changed = replace(p, kyc_tier=tx.kyc_tier)
        case RotateKey():
            if tx.public_key == p.public_key or not crypto.is_acceptable_public_key(tx.public_key):
                return ResultCode.INVALID_REFERENCE
            changed = replace(p, public_key=tx.public_key)
        case _:
            assert_never(tx)
    reg.put_participant(changed, new=False)
    return ResultCode.OK


def _add_instrument(reg: Registry, tx: AddInstrument) -> ResultCode:
    inst = tx.instrument
    if inst.id in reg.instrument_by_id:
        return ResultCode.ALREADY_EXISTS
    try:
        validate_instrument(inst, reg.participant_by_id, reg.instrument_by_id, reg.genesis_time_ms)
    except GenesisError:
        return ResultCode.INVALID_REFERENCE
    if len(reg.genesis.instruments) + reg.added()[1] >= INSTRUMENTS_MAX:
        return ResultCode.REGISTRY_FULL
    reg.put_instrument(inst, new=True)
    return ResultCode.OK


def _set_max_supply(reg: Registry, o: Overlay, tx: SetMaxSupply, time_ms: int) -> ResultCode:
    inst = reg.instrument(tx.instrument)
    if inst is None:
        return ResultCode.UNKNOWN_INSTRUMENT
    if tx.cap == 0:
        return ResultCode.INVALID_AMOUNT
    last = reg.attestation(tx.instrument)
    if tx.as_of_ms > time_ms or (last is not None and tx.as_of_ms <= last[0]):
        return ResultCode.STALE_ATTESTATION
    if tx.cap < o.supply(tx.instrument):
        return ResultCode.CAP_BELOW_SUPPLY
    reg.put_instrument(replace(inst, max_supply=tx.cap), new=False)
    reg.put_attestation(tx.instrument, tx.as_of_ms, tx.attestation_sha256)
    return ResultCode.OK


def _set_compliance_rules(reg: Registry, o: Overlay, tx: SetComplianceRules) -> ResultCode:
    """The rules must name instruments of the right kinds, as genesis's must
    (``INVALID_REFERENCE``); then they replace the rules in force, whole."""
    try:
        check_rules(tx.rules, {i.id: i.kind.value for i in reg.instrument_by_id.values()})
    except ValueError:
        return ResultCode.INVALID_REFERENCE
    set_rules(o, tx.rules)
    return ResultCode.OK
