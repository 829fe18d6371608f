"""Helpers shared by the tests: a demo network and a factory of signed transactions."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from node import crypto
from node.genesis import DemoNetwork, demo_genesis
from node.keyfiles import cert_pin
from node.netconfig import node_name
from node.settlement import (
    BlockContext,
    BlockOutcome,
    Burn,
    Cancel,
    DvP,
    Hold,
    Mint,
    PendingDvP,
    Release,
    Transaction,
    Transfer,
    apply_block,
    sign_tx,
)
from node.store import MemoryStore, Storage
from tests.tls_helpers import _make_ca, _make_node_cert, _pem_cert

HOUR_MS = 3_600_000
T = TypeVar("T", DvP, Transfer, Mint, Burn, PendingDvP, Hold, Release, Cancel)


@dataclass
class TxFactory:
    """Builds correctly signed transactions for the demo network, with fresh nonces."""

    net: DemoNetwork
    now_ms: int | None = None  # a live cluster's clock; None: the genesis time
    _nonces: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def chain_id(self) -> str:
        return self.net.genesis.chain_id

    @property
    def t0(self) -> int:
        return self.net.genesis.genesis_time_ms if self.now_ms is None else self.now_ms

    def nonce(self) -> int:
        return next(self._nonces)

    def signed(self, tx: Transaction) -> bytes:
        keys = [self.net.participant_keys[s] for s in tx.required_signers()]
        return sign_tx(tx, keys)

    def _build(self, cls: type[T], fields: dict[str, object], kw: dict[str, object]) -> T:
        """``cls`` with a fresh nonce, an expiry an hour after genesis, and ``kw`` overrides."""
        base: dict[str, object] = {
            "chain_id": self.chain_id,
            "nonce": self.nonce(),
            "expiry_ms": self.t0 + HOUR_MS,
        }
        return cls(**(base | fields | kw))  # type: ignore[arg-type]

    def dvp(
        self,
        seller: str = "BANK01",
        buyer: str = "BANK02",
        quantity: int = 100,
        amount: int = 99,
        **kw: object,
    ) -> DvP:
        terms: dict[str, object] = {
            "seller": seller,
            "buyer": buyer,
            "bond": self.net.bonds[0],
            "quantity": quantity,
            "cash": self.net.cash,
            "amount": amount,
            "deadline_ms": self.t0 + HOUR_MS,
        }
        return self._build(DvP, terms, kw)

    def transfer(
        self,
        sender: str = "BANK01",
        receiver: str = "BANK02",
        amount: int = 5,
        instrument: str | None = None,
        **kw: object,
    ) -> Transfer:
        terms: dict[str, object] = {
            "instrument": instrument or self.net.cash,
            "sender": sender,
            "receiver": receiver,
            "amount": amount,
        }
        return self._build(Transfer, terms, kw)

    def mint(
        self,
        to: str = "BANK01",
        amount: int = 1_000,
        instrument: str | None = None,
        by: str = "TREASURY",
        **kw: object,
    ) -> Mint:
        terms = {"instrument": instrument or self.net.bonds[0], "to": to, "amount": amount}
        return self._build(Mint, terms | {"by": by}, kw)

    def burn(
        self,
        holder: str = "BANK01",
        amount: int = 1_000,
        instrument: str | None = None,
        by: str = "TREASURY",
        **kw: object,
    ) -> Burn:
        terms = {"instrument": instrument or self.net.bonds[0], "holder": holder, "amount": amount}
        return self._build(Burn, terms | {"by": by}, kw)

    # --- pend: pending settlement ---------------------------------------------------------

    def pending(
        self, seller: str = "BANK01", buyer: str = "BANK02", lot: int = 0, **kw: object
    ) -> PendingDvP:
        """A pending DvP on the terms ``dvp`` would take (same defaults and overrides)."""
        d = self.dvp(seller, buyer, **kw)  # type: ignore[arg-type]
        terms = {f.name: getattr(d, f.name) for f in dataclasses.fields(d)}
        return PendingDvP(**terms, lot=lot)

    def hold(self, instruction: bytes, by: str = "BANK01", **kw: object) -> Hold:
        return self._build(Hold, {"instruction": instruction, "by": by}, kw)

    def release(self, instruction: bytes, by: str = "BANK01", **kw: object) -> Release:
        return self._build(Release, {"instruction": instruction, "by": by}, kw)

    def cancel(
        self, instruction: bytes, seller: str = "BANK01", buyer: str = "BANK02", **kw: object
    ) -> Cancel:
        terms: dict[str, object] = {"instruction": instruction, "seller": seller, "buyer": buyer}
        return self._build(Cancel, terms, kw)


class CountingView:
    """A store that counts its record reads (point reads and prefix scans): what a block
    costs in reads, for tests that bound it."""

    def __init__(self, store: MemoryStore) -> None:
        self.store, self.reads = store, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def record(self, key: bytes) -> bytes | None:
        self.reads += 1
        return self.store.record(key)

    def records(self, prefix: bytes) -> object:
        self.reads += 1
        return self.store.records(prefix)


@functools.cache
def shared_net() -> DemoNetwork:
    """One demo network per process (key derivation is cheap, but genesis hashing adds up)."""
    return demo_genesis(validators=4, quorum=3, seed=b"tests")


def pinned_tls(net: DemoNetwork) -> tuple[DemoNetwork, bytes]:
    """``net`` with genesis pinning a TLS certificate per validator (named node-XX), and
    those certificates (PEM): the only trust roots the SDK takes."""
    ca = _make_ca("test", datetime.now(UTC))
    n = len(net.genesis.validators)
    certs = [_make_node_cert(ca, node_name(i, n), "127.0.0.1")[1] for i in range(n)]
    validators = tuple(
        replace(v, tls_cert_sha256=cert_pin(c))
        for v, c in zip(net.genesis.validators, certs, strict=True)
    )
    pinned = replace(net, genesis=replace(net.genesis, validators=validators))
    return pinned, b"".join(_pem_cert(c) for c in certs)


def run_block(store: Storage, *txs: bytes, at_ms: int = 1_000) -> BlockOutcome:
    """Apply and commit one block at genesis time + ``at_ms``: consensus left out, for the
    settlement tests."""
    head = store.head()
    ctx = BlockContext(head.height + 1, store.genesis.genesis_time_ms + at_ms)
    out = apply_block(store, list(txs), ctx)
    store.commit_block(crypto.sha256(b"block", ctx.height.to_bytes(8, "big")), b"", b"", ctx, out)
    return out
