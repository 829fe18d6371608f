"""Signed governance transactions for the demo network (issue 15 item 1): the demo admins
are COMPLIANCE, CSD and REGULATOR, any two of them (node/genesis.py DEMO_ADMINS)."""

from __future__ import annotations

from node import crypto, tags
from node.genesis import DEMO_ADMINS, DemoNetwork
from node.settlement import (
    AddInstrument,
    AddParticipant,
    ComplianceRules,
    Instrument,
    InstrumentKind,
    Participant,
    Role,
    RotateKey,
    SetComplianceRules,
    SetKycTier,
    SetMaxSupply,
    SetRoles,
    SignedTx,
    encode_body,
)
from tests.ledger_helpers import HOUR_MS, TxFactory

Gov = (
    AddParticipant
    | SetRoles
    | SetKycTier
    | RotateKey
    | AddInstrument
    | SetMaxSupply
    | SetComplianceRules
)
TWO_ADMINS = DEMO_ADMINS[:2]  # COMPLIANCE, CSD: the threshold k = 2


def new_key(label: str) -> crypto.SigningKey:
    return crypto.SigningKey(crypto.sha256(tags.DEMO_KEY, b"gov-test", label.encode()))


def _head(txf: TxFactory) -> dict[str, object]:
    return {"chain_id": txf.chain_id, "nonce": txf.nonce(), "expiry_ms": txf.t0 + HOUR_MS}


def add_participant(
    txf: TxFactory,
    pid: str = "BANK99",
    key: crypto.SigningKey | None = None,
    *,
    roles: frozenset[Role] = frozenset({Role.TRADER}),
    tier: int = 2,
    admins: tuple[str, ...] = TWO_ADMINS,
) -> AddParticipant:
    pk = (key or new_key(pid)).public_key
    return AddParticipant(
        **_head(txf), participant=Participant(pid, pk, roles, tier), admins=admins
    )  # type: ignore[arg-type]


def set_roles(
    txf: TxFactory, pid: str, roles: frozenset[Role], admins: tuple[str, ...] = TWO_ADMINS
) -> SetRoles:
    return SetRoles(**_head(txf), participant=pid, roles=roles, admins=admins)  # type: ignore[arg-type]


def set_tier(
    txf: TxFactory, pid: str, tier: int, admins: tuple[str, ...] = TWO_ADMINS
) -> SetKycTier:
    return SetKycTier(**_head(txf), participant=pid, kyc_tier=tier, admins=admins)  # type: ignore[arg-type]


def rotate(
    txf: TxFactory, pid: str, key: crypto.SigningKey, admins: tuple[str, ...] = TWO_ADMINS
) -> RotateKey:
    return RotateKey(**_head(txf), participant=pid, public_key=key.public_key, admins=admins)  # type: ignore[arg-type]


def cash_token(iid: str = "EUR.CASHCO", currency: str = "EUR") -> Instrument:
    return Instrument(iid, InstrumentKind.CASH, "CASHCO", currency)


def add_instrument(
    txf: TxFactory, inst: Instrument, admins: tuple[str, ...] = TWO_ADMINS
) -> AddInstrument:
    return AddInstrument(**_head(txf), instrument=inst, admins=admins)  # type: ignore[arg-type]


def set_cap(
    txf: TxFactory,
    iid: str,
    cap: int,
    as_of_ms: int,
    admins: tuple[str, ...] = TWO_ADMINS,
) -> SetMaxSupply:
    digest = crypto.sha256(b"attestation", iid.encode(), as_of_ms.to_bytes(8, "big"))
    return SetMaxSupply(
        **_head(txf),
        instrument=iid,
        cap=cap,
        attestation_sha256=digest,
        as_of_ms=as_of_ms,
        admins=admins,
    )  # type: ignore[arg-type]


def set_rules(
    txf: TxFactory, rules: ComplianceRules, admins: tuple[str, ...] = TWO_ADMINS
) -> SetComplianceRules:
    return SetComplianceRules(**_head(txf), rules=rules, admins=admins)  # type: ignore[arg-type]


def signed(net: DemoNetwork, tx: Gov, keys: dict[str, crypto.SigningKey] | None = None) -> bytes:
    """``tx`` signed by each admin it names, with ``keys`` overriding the demo keys."""
    stx = SignedTx(encode_body(tx), ())
    for admin in tx.required_signers():
        stx = stx.with_signature(
            admin, (keys or {}).get(admin, net.participant_keys.get(admin) or new_key(admin))
        )
    return stx.encode()
