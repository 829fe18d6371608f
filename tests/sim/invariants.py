"""Invariants checked on every send and every applied block of a simulation.

Honest instances are the validators not running as twins. A violation raises
:class:`Violation` at the step that broke the rule, so the seed and step replay exactly.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from node.core import Block, Phase, QuorumCert, SafetyState, Vote
from node.settlement import BlockOutcome, DvP, Genesis, ResultCode, Transfer


class Violation(AssertionError):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class Checker:
    def __init__(self, genesis: Genesis, txs: dict[bytes, object]) -> None:
        self.txs = txs
        self.block_at: dict[int, bytes] = {}  # height -> hash first committed by an honest node
        self.root_at: dict[int, bytes] = {}  # height -> state root after it (honest)
        self.results_at: dict[int, bytes] = {}  # height -> Merkle root of its results
        self.empty_at: dict[int, bool] = {}  # height -> the block carries no transactions
        self.votes: dict[tuple[int, Phase, int], bytes] = {}
        self.applied: dict[int, Counter[bytes]] = defaultdict(Counter)  # instance -> tx -> n
        self.anywhere: set[bytes] = set()
        self.totals: Counter[str] = Counter()
        self.start: dict[tuple[str, str], int] = {}
        for h in genesis.holdings:
            self.totals[h.instrument] += h.amount
            self.start[(h.account, h.instrument)] = h.amount
        self.model: dict[int, dict[tuple[str, str], int]] = {}
        self.max_height = 0
        self.last_commit_ms = 0
        self.commits = 0

    # --- sends -----------------------------------------------------------------------

    def on_send(self, inst: Any, msg: object, persisted: bytes | None) -> None:
        if not isinstance(msg, Vote) or not inst.honest:
            return
        key = (msg.voter, msg.phase, msg.view)
        seen = self.votes.setdefault(key, msg.block_hash)
        if seen != msg.block_hash:
            raise Violation(
                "honest double vote",
                f"validator {msg.voter} signed two {msg.phase.name} votes in view {msg.view}",
            )
        # The vote may leave only once the safety state covering it is on disk.
        state = SafetyState.decode(persisted) if persisted is not None else SafetyState()
        voted = state.prepare_view if msg.phase is Phase.PREPARE else state.commit_view
        if voted < msg.view:
            raise Violation("vote before persist", f"validator {msg.voter} view {msg.view}")

    # --- commits ---------------------------------------------------------------------

    def on_commit(
        self, inst: Any, block: Block, cert: QuorumCert, outcome: BlockOutcome, now: int
    ) -> None:
        if cert.block_hash != block.hash or cert.height != block.height:
            raise Violation("certificate", f"height {block.height} cert names another block")
        if not inst.honest:
            return
        h = block.height
        first = self.block_at.setdefault(h, block.hash)
        if first != block.hash:
            raise Violation(
                "agreement",
                f"instance {inst.name} committed {block.hash.hex()[:12]} at height {h}, "
                f"another honest node committed {first.hex()[:12]}",
            )
        root = self.root_at.setdefault(h, outcome.state_root)
        if root != outcome.state_root:
            raise Violation("state root", f"instance {inst.name} diverged at height {h}")
        self.results_at.setdefault(h, outcome.results_root)
        self.empty_at[h] = not block.txs
        # The certified header of h carries the results of h - 1 (what receipts prove).
        prev = self.results_at.get(h - 1)
        if prev is not None and block.results_root != prev:
            raise Violation("results root", f"block {h} certifies other results of {h - 1}")
        if not block.txs and (h == 1 or self.empty_at.get(h - 1, False)):
            raise Violation("empty block", f"block {h} is empty and certifies no results")
        if h > self.max_height:
            self.max_height, self.last_commit_ms = h, now
        self.commits += 1
        self._check_txs(inst, block, outcome)
        self._check_balances(inst, block, outcome)

    def _check_txs(self, inst: Any, block: Block, outcome: BlockOutcome) -> None:
        counts = self.applied[inst.name]
        for raw, result in zip(block.txs, outcome.results, strict=True):
            if raw not in self.txs:
                raise Violation("unknown tx", f"height {block.height} carries a tx nobody sent")
            if result.code is ResultCode.DUPLICATE:
                continue
            counts[raw] += 1
            self.anywhere.add(raw)
            if counts[raw] > 1:
                raise Violation("exactly once", f"a tx applied twice by instance {inst.name}")

    def _check_balances(self, inst: Any, block: Block, outcome: BlockOutcome) -> None:
        model = self.model.setdefault(inst.name, dict(self.start))
        for raw, result in zip(block.txs, outcome.results, strict=True):
            if result.code is ResultCode.OK:
                _apply_legs(model, self.txs[raw])
        store = inst.store
        actual = store.all_balances()
        expected = {k: v for k, v in model.items() if v}
        if actual != expected:
            raise Violation(
                "DvP atomicity",
                f"instance {inst.name} at height {block.height}: balances differ from the "
                "legs of its successful transactions",
            )
        sums: Counter[str] = Counter()
        for (_, instrument), v in actual.items():
            sums[instrument] += v
        for instrument, total in self.totals.items():
            if sums[instrument] != total or store.supply(instrument) != total:
                raise Violation("conservation", f"{instrument} at height {block.height}")

    # --- queries ---------------------------------------------------------------------

    def committed_at(self, inst: Any, raw: bytes) -> bool:
        return self.applied[inst.name][raw] == 1

    def committed_anywhere(self, raw: bytes) -> bool:
        return raw in self.anywhere


def _apply_legs(model: dict[tuple[str, str], int], tx: object) -> None:
    def move(instrument: str, src: str, dst: str, amount: int) -> None:
        model[(src, instrument)] = model.get((src, instrument), 0) - amount
        model[(dst, instrument)] = model.get((dst, instrument), 0) + amount

    if isinstance(tx, DvP):
        move(tx.bond, tx.seller, tx.buyer, tx.quantity)
        move(tx.cash, tx.buyer, tx.seller, tx.amount)
    elif isinstance(tx, Transfer):
        move(tx.instrument, tx.sender, tx.receiver, tx.amount)
    else:
        raise Violation("unknown tx", f"workload has no model for {type(tx).__name__}")
