"""Signed Lock / ReleaseLock / ClaimLock / Swap transactions for the demo network (issue
18 items 1 and 4)."""

from __future__ import annotations

from node.crypto import HASH_LEN
from node.settlement import (
    ClaimLock,
    Lock,
    ReleaseLock,
    Secured,
    SecuredKind,
    SignedTx,
    Swap,
    decode_body,
    sign_tx,
)
from tests.ledger_helpers import HOUR_MS, TxFactory


def _base(txf: TxFactory) -> dict[str, object]:
    return {"chain_id": txf.chain_id, "nonce": txf.nonce(), "expiry_ms": txf.t0 + HOUR_MS}


def signed(txf: TxFactory, tx: Lock | ReleaseLock | ClaimLock | Swap) -> bytes:
    return sign_tx(tx, [txf.net.participant_keys[s] for s in tx.required_signers()])


def lock(
    txf: TxFactory,
    holder: str = "BANK01",
    amount: int = 1_000,
    beneficiary: str = "BANK02",
    *,
    instrument: str | None = None,
    secures: bytes | Secured = b"",
    **kw: object,
) -> bytes:
    """A lock of ``holder``'s first bond (or ``instrument``) until an hour after t0;
    ``secures``: the trade id of a pending DvP it secures (empty: a plain pledge), or any
    secured reference."""
    fields: dict[str, object] = {
        "holder": holder,
        "instrument": instrument or txf.net.bonds[0],
        "amount": amount,
        "beneficiary": beneficiary,
        "until_ms": txf.t0 + HOUR_MS,
        "secures": _secured(secures),
    }
    return signed(txf, Lock(**(_base(txf) | fields | kw)))  # type: ignore[arg-type]


def _secured(secures: bytes | Secured) -> Secured:
    if isinstance(secures, Secured):
        return secures
    return Secured(SecuredKind.PENDING_DVP, secures) if secures else Secured()


def release(txf: TxFactory, lock_raw: bytes, by: str = "BANK02", **kw: object) -> bytes:
    fields = {"lock": lock_id(lock_raw), "holder": holder_of(lock_raw), "by": by}
    return signed(txf, ReleaseLock(**(_base(txf) | fields | kw)))  # type: ignore[arg-type]


def claim(txf: TxFactory, lock_raw: bytes, beneficiary: str = "BANK02", **kw: object) -> bytes:
    """A claim of the lock ``lock_raw`` (a Lock transaction: its terms are taken from it;
    a bare id: pass ``holder``, ``instrument`` and ``amount``)."""
    fields = {"lock": lock_id(lock_raw), "holder": holder_of(lock_raw), "beneficiary": beneficiary}
    if len(lock_raw) != HASH_LEN:
        tx = decode_body(SignedTx.decode(lock_raw).body)
        if isinstance(tx, Lock):
            fields |= {"instrument": tx.instrument, "amount": tx.amount}
    return signed(txf, ClaimLock(**(_base(txf) | fields | kw)))  # type: ignore[arg-type]


def swap(
    txf: TxFactory,
    party_a: str = "BANK01",
    quantity_a: int = 100,
    party_b: str = "BANK02",
    quantity_b: int = 90,
    **kw: object,
) -> bytes:
    """``party_a`` gives ``quantity_a`` of the first bond for ``quantity_b`` of the second."""
    fields: dict[str, object] = {
        "party_a": party_a,
        "instrument_a": txf.net.bonds[0],
        "quantity_a": quantity_a,
        "party_b": party_b,
        "instrument_b": txf.net.bonds[1],
        "quantity_b": quantity_b,
        "deadline_ms": txf.t0 + HOUR_MS,
    }
    return signed(txf, Swap(**(_base(txf) | fields | kw)))  # type: ignore[arg-type]


def holder_of(lock_raw: bytes, default: str = "BANK01") -> str:
    """The holder a Lock transaction names (``default`` for a bare 32-byte id; a ``holder``
    keyword overrides either)."""
    if len(lock_raw) == HASH_LEN:
        return default
    tx = decode_body(SignedTx.decode(lock_raw).body)
    return tx.holder if isinstance(tx, Lock) else default


def lock_id(lock_raw: bytes) -> bytes:
    """A lock's id: its Lock transaction's id (``lock_raw``), or ``lock_raw`` itself when
    it is a 32-byte id already."""
    return lock_raw if len(lock_raw) == HASH_LEN else SignedTx.decode(lock_raw).tx_id
