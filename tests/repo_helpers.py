"""Signed repo transactions for the demo network (issue 18 item 2; docs/ledger.md "Repo")."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from node.genesis import DemoNetwork
from node.settlement import RepoClose, RepoOpen, Transaction, sign_tx

HOUR_MS = 3_600_000
EXPIRY_MS = 2**63  # repo tests jump ahead by hours or months; nothing should expire
PURCHASE = 100_000_000  # $1,000,000.00 in cents
QUANTITY = 1_000


@dataclass
class RepoTx:
    """Repo transactions for ``net``, timed from ``t0`` (a block time), fresh nonces."""

    net: DemoNetwork
    t0: int
    _nonces: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def signed(self, tx: Transaction) -> bytes:
        return sign_tx(tx, [self.net.participant_keys[s] for s in tx.required_signers()])

    def open_tx(
        self,
        repo_id: str = "R1",
        borrower: str = "BANK01",
        lender: str = "BANK02",
        *,
        quantity: int = QUANTITY,
        purchase: int = PURCHASE,
        repurchase: int = 0,
        rate_bp: int = 500,
        close_ms: int | None = None,
        default_ms: int | None = None,
        bond: str | None = None,
    ) -> RepoOpen:
        """An intraday repo: closes an hour after ``t0``, defaults two hours after."""
        close_ms = self.t0 + HOUR_MS if close_ms is None else close_ms
        default_ms = close_ms + HOUR_MS if default_ms is None else default_ms
        return RepoOpen(
            self.net.genesis.chain_id, next(self._nonces), EXPIRY_MS, repo_id, borrower,
            lender, bond or self.net.bonds[0], quantity, self.net.cash, purchase, repurchase,
            rate_bp, close_ms, default_ms,
        )  # fmt: skip

    def open(self, repo_id: str = "R1", *args: str, **kw: object) -> bytes:
        return self.signed(self.open_tx(repo_id, *args, **kw))  # type: ignore[arg-type]

    def close(
        self, repo_id: str = "R1", *by: str, parties: tuple[str, str] = ("BANK01", "BANK02")
    ) -> bytes:
        """A close of the repo of ``parties`` (borrower, lender) signed by ``by`` (default:
        both)."""
        signers = tuple(sorted(set(by or parties)))
        chain = self.net.genesis.chain_id
        tx = RepoClose(chain, next(self._nonces), EXPIRY_MS, repo_id, *parties, signers)
        return self.signed(tx)
