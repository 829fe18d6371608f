"""Helpers shared by the tests: a demo network and a factory of signed transactions."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

from node.genesis import DemoNetwork, demo_genesis
from node.settlement import Burn, DvP, Mint, Transaction, Transfer, sign_tx

HOUR_MS = 3_600_000


@dataclass
class TxFactory:
    """Builds correctly signed transactions for the demo network, with fresh nonces."""

    net: DemoNetwork
    _nonces: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def chain_id(self) -> str:
        return self.net.genesis.chain_id

    @property
    def t0(self) -> int:
        return self.net.genesis.genesis_time_ms

    def nonce(self) -> int:
        return next(self._nonces)

    def signed(self, tx: Transaction) -> bytes:
        keys = [self.net.participant_keys[s] for s in tx.required_signers()]
        return sign_tx(tx, keys)

    def dvp(
        self,
        seller: str = "BANK01",
        buyer: str = "BANK02",
        quantity: int = 100,
        amount: int = 99,
        **kw: object,
    ) -> DvP:
        fields: dict[str, object] = dict(
            chain_id=self.chain_id,
            nonce=self.nonce(),
            expiry_ms=self.t0 + HOUR_MS,
            seller=seller,
            buyer=buyer,
            bond=self.net.bonds[0],
            quantity=quantity,
            cash=self.net.cash,
            amount=amount,
            deadline_ms=self.t0 + HOUR_MS,
        )
        fields.update(kw)
        return DvP(**fields)  # type: ignore[arg-type]

    def transfer(
        self,
        sender: str = "BANK01",
        receiver: str = "BANK02",
        amount: int = 5,
        instrument: str | None = None,
        **kw: object,
    ) -> Transfer:
        fields: dict[str, object] = dict(
            chain_id=self.chain_id,
            nonce=self.nonce(),
            expiry_ms=self.t0 + HOUR_MS,
            instrument=instrument or self.net.cash,
            sender=sender,
            receiver=receiver,
            amount=amount,
        )
        fields.update(kw)
        return Transfer(**fields)  # type: ignore[arg-type]

    def mint(
        self,
        to: str = "BANK01",
        amount: int = 1_000,
        instrument: str | None = None,
        by: str = "TREASURY",
        **kw: object,
    ) -> Mint:
        fields: dict[str, object] = dict(
            chain_id=self.chain_id,
            nonce=self.nonce(),
            expiry_ms=self.t0 + HOUR_MS,
            instrument=instrument or self.net.bonds[0],
            to=to,
            amount=amount,
            by=by,
        )
        fields.update(kw)
        return Mint(**fields)  # type: ignore[arg-type]

    def burn(
        self,
        holder: str = "BANK01",
        amount: int = 1_000,
        instrument: str | None = None,
        by: str = "TREASURY",
        **kw: object,
    ) -> Burn:
        fields: dict[str, object] = dict(
            chain_id=self.chain_id,
            nonce=self.nonce(),
            expiry_ms=self.t0 + HOUR_MS,
            instrument=instrument or self.net.bonds[0],
            holder=holder,
            amount=amount,
            by=by,
        )
        fields.update(kw)
        return Burn(**fields)  # type: ignore[arg-type]


@functools.cache
def shared_net() -> DemoNetwork:
    """One demo network per process (key derivation is cheap, but genesis hashing adds up)."""
    return demo_genesis(validators=4, quorum=3, seed=b"tests")
