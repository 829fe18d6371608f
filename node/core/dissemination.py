"""Transaction dissemination: the mempool, and who is sent which transaction.

A client's transaction goes to the leaders of the next ``FORWARD_LEADERS`` views (only
a proposer needs it before its block; the others receive it in the proposal), or to
every validator when nothing else is pending here (so every view timer starts with it);
again to the next leaders after each commit that leaves it pending; and a timeout
re-gossips the oldest pending ones to all, so a view change cannot strand one.

A peer's forwarded transactions pass the checks a client's do (the injected ``TxCheck``,
the runtime's admission precheck), are charged to the peer's verification budget, and
fill at most the peer's share of the mempool. Pure: the caller's ``now_ms`` is the only
clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from node.config import (
    COMMITTED_LOOKUPS_PER_VERIFY,
    FORWARD_LEADERS,
    MEMPOOL_PEER_SHARE_DIVISOR_MIN,
    PEER_VERIFY_FORWARD_RESERVE,
    SIGNERS_PER_TX_MAX,
    TX_FORWARD_BATCH_MAX,
)
from node.core.budget import Bucket
from node.core.catchup import BlockSource, Send
from node.core.mempool import AddResult, Mempool, tx_key
from node.core.refusal import Reason
from node.core.types import TxForward

__all__ = ["Dissemination", "TxCheck"]

TxCheck = Callable[[bytes], bool]
"""Whether a forwarded transaction passes the checks a client's submission passes (form,
chain, signatures: the runtime's admission precheck); pure from the core's point of view."""

_REFUSED_ADD = {AddResult.FULL: Reason.MEMPOOL_FULL, AddResult.TOO_LARGE: Reason.TX_TOO_LARGE}


class Dissemination:
    def __init__(
        self,
        me: int,
        n: int,
        mempool: Mempool,
        *,
        source: BlockSource,
        leader: Callable[[int], int],
        send: Send,
        tx_check: TxCheck | None,
    ) -> None:
        self.me, self.n = me, n
        self.mempool = mempool
        self._source, self._leader, self._send = source, leader, send
        self._tx_check = tx_check
        self._forward: list[bytes] = []  # accepted here, not yet sent on
        # Transactions submitted here and still pending, by id: the transaction and the
        # last view whose leader has been sent it (bounded like the mempool they sit in).
        self._own: OrderedDict[bytes, tuple[bytes, int]] = OrderedDict()

    def submit(self, tx: bytes, view: int) -> AddResult:
        """A client's transaction: into the mempool, and queued for the next leaders."""
        # The mempool only remembers recent commits of this process; storage knows all.
        if not self.mempool.contains(tx) and self._source.tx_committed(tx):
            return AddResult.DUPLICATE
        result = self.mempool.add(tx)
        if result is AddResult.ACCEPTED:
            self._forward.append(tx)
            if len(self._forward) >= TX_FORWARD_BATCH_MAX:
                self.flush(view)
        return result

    def flush(self, view: int) -> None:
        """Send new client transactions to the leaders of the next FORWARD_LEADERS views.
        Except after idleness (nothing else pending here): then every validator gets it,
        so all start their view timers together and a dead leader costs one timeout, not
        two (the others would learn of the work from the first timeouts only)."""
        if not self._forward:
            return
        txs, self._forward = self._forward, []
        last = view + FORWARD_LEADERS - 1
        for tx in txs:
            self._own[tx_key(tx)] = (tx, last)
        while len(self._own) > self.mempool.txs_max:
            self._own.popitem(last=False)
        if len(self.mempool) <= len(txs):
            self._forward_to(view, view + self.n - 1, tuple(txs))
        else:
            self._forward_to(view, last, tuple(txs))

    def _forward_to(self, first_view: int, last_view: int, txs: tuple[bytes, ...]) -> None:
        leaders = {self._leader(v) for v in range(first_view, last_view + 1)} - {self.me}
        for i in range(0, len(txs), TX_FORWARD_BATCH_MAX):
            msg = TxForward(txs[i : i + TX_FORWARD_BATCH_MAX])
            for dst in sorted(leaders):
                self._send(dst, msg)

    def reforward(self, view: int) -> None:
        """After a commit: this node's transactions still pending whose leaders have all had
        their turn go to the next leaders."""
        last = view + FORWARD_LEADERS - 1
        due: list[bytes] = []
        for key, (tx, upto) in list(self._own.items()):
            if not self.mempool.contains_key(key):
                del self._own[key]  # committed (or dropped)
            elif upto < view:
                self._own[key] = (tx, last)
                due.append(tx)
        if due:
            self._forward_to(view, last, tuple(due))

    def regossip(self) -> None:
        """On a timeout: what we hold goes to everyone, so a new leader (and idle peers)
        learn of pending work."""
        pending = self.mempool.oldest(TX_FORWARD_BATCH_MAX)
        if pending:
            msg = TxForward(tuple(pending))
            for dst in range(self.n):
                if dst != self.me:
                    self._send(dst, msg)

    def receive(self, src: int, m: TxForward, budget: Bucket | None, now_ms: int) -> list[Reason]:
        """A peer's forwarded transactions; checking them is charged to ``budget``, and the
        batch stops where it runs out. Returns why each refused one was refused."""
        refused: list[Reason] = []
        share = self.peer_share()
        looked_up = 0
        for tx in m.txs[:TX_FORWARD_BATCH_MAX]:
            # Already held or already committed: nothing to check (a timeout re-gossips a
            # node's whole backlog, mostly settled by the time a paused node resumes); the
            # storage lookup is charged, a verification per COMMITTED_LOOKUPS_PER_VERIFY.
            if self.mempool.known(tx):
                continue
            if budget is not None and not budget.above(PEER_VERIFY_FORWARD_RESERVE, now_ms):
                # The reserve is for the peer's votes, timeouts and proposals.
                refused.append(Reason.OVER_VERIFY_BUDGET)
                break
            if self._source.tx_committed(tx):
                looked_up += 1
                if budget is not None and looked_up % COMMITTED_LOOKUPS_PER_VERIFY == 0:
                    budget.charge(1, now_ms)
                continue
            if self.mempool.share_full(src, share):
                refused.append(Reason.OVER_MEMPOOL_SHARE)
                break
            if self._tx_check is not None:
                if budget is not None:
                    budget.charge(SIGNERS_PER_TX_MAX, now_ms)
                if not self._tx_check(tx):
                    refused.append(Reason.FAILS_ADMISSION)
                    continue
            added = self.mempool.add(tx, origin=src, share_max=share)
            if added in _REFUSED_ADD:
                refused.append(_REFUSED_ADD[added])
        return refused

    def peer_share(self) -> int:
        """The most of the mempool one peer's forwards may hold."""
        return self.mempool.txs_max // max(MEMPOOL_PEER_SHARE_DIVISOR_MIN, self.n - 1)
