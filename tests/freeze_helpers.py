"""Signed Freeze / Unfreeze transactions for the demo network (issue 15 item 3)."""

from __future__ import annotations

from node.genesis import DemoNetwork
from node.settlement import Freeze, FreezeReason, Unfreeze, sign_tx
from tests.ledger_helpers import HOUR_MS, TxFactory


def freeze(
    txf: TxFactory,
    account: str,
    instrument: str = "",
    by: str = "REGULATOR",
    reason: FreezeReason = FreezeReason.SANCTIONS,
    **kw: object,
) -> bytes:
    """A signed freeze of ``account`` (``instrument`` empty) or of one holding."""
    base: dict[str, object] = {
        "chain_id": txf.chain_id,
        "nonce": txf.nonce(),
        "expiry_ms": txf.t0 + HOUR_MS,
    }
    fields = {"account": account, "instrument": instrument, "reason": reason, "by": by}
    return signed(txf.net, Freeze(**(base | fields | kw)))  # type: ignore[arg-type]


def unfreeze(
    txf: TxFactory, account: str, instrument: str = "", by: str = "REGULATOR", **kw: object
) -> bytes:
    base: dict[str, object] = {
        "chain_id": txf.chain_id,
        "nonce": txf.nonce(),
        "expiry_ms": txf.t0 + HOUR_MS,
    }
    fields = {"account": account, "instrument": instrument, "by": by}
    return signed(txf.net, Unfreeze(**(base | fields | kw)))  # type: ignore[arg-type]


def signed(net: DemoNetwork, tx: Freeze | Unfreeze) -> bytes:
    return sign_tx(tx, [net.participant_keys[s] for s in tx.required_signers()])
