"""What the console shows, computed from what the SDK returns: no I/O, no clock.

Theory of operation. The server (``_server.py``) follows the committed blocks through the
SDK (each block's commit certificate checked against genesis), polls every validator's
status and timelines, and feeds them here. This module keeps a bounded window of recent
blocks, transactions and refusals, derives the charts (finality per block, trades per
second of block time, refusals per bucket of block time), and turns everything into the
JSON the browser renders. Times are the ledger's block times, never the console's clock,
so two consoles on one chain draw the same charts.

Everything here is what the console's identity may read: a non-observer's blocks come
filtered to its own transactions (docs/cluster.md "Security: who reads what"), and the
model shows them as they come, with ``filtered`` set.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from client._async import BackedView, BlockTx, BlockView, EndpointDown, NodeStatusView
from client._cli_reserve import custody_doc, custody_report, reserve_doc, reserve_report
from client._cli_settlement import _percentile
from client._limits import (
    CONSOLE_BLOCKS_KEPT,
    CONSOLE_FAIL_BUCKET_MS,
    CONSOLE_REFUSALS_KEPT,
    CONSOLE_SERIES_POINTS,
    CONSOLE_TRADES_KEPT,
)
from client._trades import terms_of
from node.core import decode_qc
from node.receipt import InvalidReceiptError, Receipt, verify_receipt
from node.settlement import (
    DvP,
    Genesis,
    PendingDvP,
    ResultCode,
    SignedTx,
    decode_body,
    settlement_fail,
)

__all__ = [
    "ConsoleModel",
    "backing_view",
    "js_safe",
    "network_view",
    "receipt_check",
    "trade_view",
]

RC = ResultCode
# Codes that are no refusal: settled, or recorded waiting for a leg (ADR 0014).
_NOT_REFUSED = frozenset({RC.OK, RC.PENDING_SETTLEMENT, RC.PARTIALLY_SETTLED})


JS_SAFE_MAX = 2**53 - 1  # the largest integer a JavaScript number holds exactly


def js_safe(doc: Any) -> Any:
    """``doc`` with every integer beyond JS_SAFE_MAX (either sign) as a decimal string."""
    if isinstance(doc, dict):
        return {k: js_safe(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [js_safe(v) for v in doc]
    if isinstance(doc, int) and not isinstance(doc, bool) and abs(doc) > JS_SAFE_MAX:
        return str(doc)
    return doc


def tolerance(n: int, q: int) -> dict[str, int]:
    """What a quorum of q out of n survives (docs/consensus.md): any two quorums share
    2q - n validators, so safety holds with up to 2q - n - 1 Byzantine; n - q may be down
    and the rest still form a quorum."""
    return {"byzantine_for_safety": max(0, 2 * q - n - 1), "down_for_liveness": max(0, n - q)}


def network_view(
    statuses: Sequence[NodeStatusView | EndpointDown], genesis: Genesis, head: int
) -> dict[str, Any]:
    """Every validator's row, the leader most of them name, and state-root agreement:
    validators at the same height must hold the same root (one that differs is marked).
    ``head`` is the certified head the console followed; each row's height is only that
    validator's claim (one may say 2**63), so none of them is shown as the head."""
    roots: dict[int, Counter[bytes]] = {}
    for s in statuses:
        if isinstance(s, NodeStatusView):
            roots.setdefault(s.height, Counter())[s.state_root] += 1
    rows = [_validator_row(s, roots) for s in statuses]
    # A halted validator still answers GetStatus (fail-stop: it says why), but serves
    # nothing else and votes for nothing: it is down.
    up = [s for s in statuses if isinstance(s, NodeStatusView) and not s.halted]
    leaders = Counter(s.leader for s in up)
    n, q = len(genesis.validators), genesis.quorum
    return {
        "chain_id": genesis.chain_id,
        "n": n,
        "q": q,
        "tolerates": tolerance(n, q),
        "up": len(up),
        "quorum_up": len(up) >= q,
        "head": head,
        "leader": leaders.most_common(1)[0][0] if leaders else None,
        "roots_agree": all(len(c) == 1 for c in roots.values()),
        "validators": rows,
    }


def _validator_row(
    s: NodeStatusView | EndpointDown, roots: dict[int, Counter[bytes]]
) -> dict[str, Any]:
    if isinstance(s, EndpointDown):
        return {"name": s.endpoint.server_name, "address": s.endpoint.address, "up": False,
                "error": s.error}  # fmt: skip
    same_height = roots[s.height]
    return {
        "name": s.endpoint.server_name,
        "address": s.endpoint.address,
        "up": not s.halted,
        "halted": s.halted,
        "height": s.height,
        "view": s.view,
        "leader": s.leader,
        "peers": s.peers_connected,
        "mempool": s.mempool_txs,
        "state_root": s.state_root.hex(),
        "root_agrees": len(same_height) == 1,
    }


def _tx_json(b: BlockView, t: BlockTx) -> dict[str, Any]:
    terms = None if t.tx is None else terms_of(t.tx)
    if terms is not None:
        terms.pop("chain_id", None)
    return {
        "tx_id": t.tx_id.hex(),
        "height": b.height,
        "position": t.position,
        "time_ms": b.time_ms,
        "kind": "MALFORMED" if terms is None else terms["kind"],
        "code": t.code.name,
        "meaning": t.code.meaning,
        "recorded": t.recorded,
        "terms": terms,
    }


def legs(terms: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A DvP's two legs: the bond from seller to buyer, the cash back (both or neither)."""
    if terms is None or terms["kind"] not in ("DVP", "PENDING_DVP"):
        return []
    return [
        {"leg": "delivery", "instrument": terms["bond"], "amount": terms["quantity"],
         "from": terms["seller"], "to": terms["buyer"]},
        {"leg": "payment", "instrument": terms["cash"], "amount": terms["amount"],
         "from": terms["buyer"], "to": terms["seller"]},
    ]  # fmt: skip


def block_json(b: BlockView) -> dict[str, Any]:
    signers = [i for i, _ in decode_qc(b.certificate).signatures]
    return {
        "height": b.height,
        "hash": b.hash.hex(),
        "time_ms": b.time_ms,
        "state_root": b.state_root.hex(),
        "filtered": b.filtered,
        # ADR 0026: False only for an idle chain's last block, whose results (none shown)
        # no block certifies yet: one node's word until the next block.
        "results_proven": b.results_proven,
        "signers": signers,
        "transactions": [_tx_json(b, t) for t in b.transactions],
        "events": [
            {
                "tx_id": e.tx_id.hex(),
                "code": e.code.name,
                "meaning": e.code.meaning,
                "kind": "repo_lapse" if e.repo_lapse else "pending_trade",
            }
            for e in b.events
        ],
    }


@dataclass
class _Refusal:
    height: int
    time_ms: int
    tx_id: str
    code: str
    fail: bool  # a settlement fail (settlement_fail); else a bad instruction or a repo lapse
    event: bool  # an end-of-block event: a pending trade's later outcome, a repo's lapse

    @property
    def kind(self) -> str:
        """What the fails page calls it: a repo's lapse (review 32: an event whose id is
        the RepoOpen's) is neither a trade's fail nor a bad instruction."""
        if self.code == ResultCode.REPO_LAPSED.name:
            return "repo lapsed (defaulted)"
        return "settlement fail" if self.fail else "bad instruction"


class ConsoleModel:
    """A bounded window of the chain as the console's identity sees it."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.blocks: deque[dict[str, Any]] = deque(maxlen=CONSOLE_BLOCKS_KEPT)
        self.trades: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.refusals: deque[_Refusal] = deque(maxlen=CONSOLE_REFUSALS_KEPT)
        self.finality_ms: OrderedDict[int, int] = OrderedDict()  # height -> ms
        self._block_txs: deque[tuple[int, int]] = deque(maxlen=CONSOLE_SERIES_POINTS * 4)
        self.codes: Counter[str] = Counter()  # every refusal seen since the console started
        self.head = 0
        self.recycled: deque[dict[str, Any]] = deque(maxlen=CONSOLE_REFUSALS_KEPT)
        self.recycled_total = 0  # pending trades settled by a later block's recycling

    def add_block(self, b: BlockView) -> dict[str, Any]:
        """Record block ``b`` (the next height); returns its JSON, the live event."""
        doc = block_json(b)
        self.blocks.append(doc)
        self.head = b.height
        self._block_txs.append((b.time_ms, len(b.transactions)))
        for t in doc["transactions"]:
            self._index(t)
            if t["recorded"] and ResultCode[t["code"]] not in _NOT_REFUSED:
                self._refused(b, t["tx_id"], ResultCode[t["code"]], event=False)
        for e in b.events:
            if e.code is ResultCode.OK:  # a pending trade settled by recycling
                self.recycled.append({"height": b.height, "time_ms": b.time_ms,
                                      "tx_id": e.tx_id.hex()})  # fmt: skip
                self.recycled_total += 1
            if e.code not in _NOT_REFUSED:
                self._refused(b, e.tx_id.hex(), e.code, event=True)
        return doc

    def _index(self, t: dict[str, Any]) -> None:
        if t["tx_id"] in self.trades and not t["recorded"]:
            return  # a forged or repeated copy never replaces the recorded one
        self.trades[t["tx_id"]] = t
        self.trades.move_to_end(t["tx_id"])
        while len(self.trades) > CONSOLE_TRADES_KEPT:
            self.trades.popitem(last=False)

    def _refused(self, b: BlockView, tx_id: str, code: ResultCode, event: bool) -> None:
        self.codes[code.name] += 1
        fail = settlement_fail(code, event=event)
        self.refusals.append(_Refusal(b.height, b.time_ms, tx_id, code.name, fail, event))

    def add_finality(self, per_height: dict[int, int]) -> None:
        """Proposal-to-commit-certificate ms per height (``finality_of`` of timelines)."""
        for h in sorted(per_height):
            self.finality_ms[h] = per_height[h]
        while len(self.finality_ms) > CONSOLE_SERIES_POINTS:
            self.finality_ms.popitem(last=False)

    def charts(self) -> dict[str, Any]:
        """Finality per block (p50/p99 over the window) and trades per second of block time."""
        values = list(self.finality_ms.values())
        return {
            "finality": {
                "points": [[h, ms] for h, ms in self.finality_ms.items()],
                "p50": _percentile(values, 50),
                "p99": _percentile(values, 99),
            },
            "throughput": throughput(self._block_txs),
        }

    def fails(self) -> dict[str, Any]:
        """Refusals and fails by reason code, in buckets of block time, and the latest."""
        buckets: dict[int, Counter[str]] = {}
        for r in self.refusals:
            buckets.setdefault(r.time_ms // CONSOLE_FAIL_BUCKET_MS, Counter())[r.code] += 1
        recent = list(self.refusals)[-50:]
        return {
            "by_code": dict(self.codes),
            "bucket_ms": CONSOLE_FAIL_BUCKET_MS,
            "settled_after_recycling": self.recycled_total,
            "recycled_recent": list(self.recycled)[-50:][::-1],
            "buckets": [
                {"start_ms": k * CONSOLE_FAIL_BUCKET_MS, "codes": dict(c)}
                for k, c in sorted(buckets.items())
            ][-CONSOLE_SERIES_POINTS:],
            "recent": [
                {
                    "height": r.height,
                    "time_ms": r.time_ms,
                    "tx_id": r.tx_id,
                    "code": r.code,
                    "fail": r.fail,
                    "kind": r.kind,
                    "event": r.event,
                }
                for r in reversed(recent)
            ],
        }


def throughput(block_txs: Iterable[tuple[int, int]]) -> dict[str, Any]:
    """Transactions per whole second of block time over the last CONSOLE_SERIES_POINTS
    seconds that had blocks, and the mean rate over that span."""
    per_s: Counter[int] = Counter()
    for time_ms, count in block_txs:
        per_s[time_ms // 1000] += count
    if not per_s:
        return {"points": [], "tps": 0.0}
    last = max(per_s)
    first = max(min(per_s), last - CONSOLE_SERIES_POINTS + 1)
    points = [[s * 1000, per_s.get(s, 0)] for s in range(first, last + 1)]
    total = sum(c for _, c in points)
    return {"points": points, "tps": round(total / len(points), 2)}


def trade_view(receipt: Receipt, indexed: dict[str, Any] | None) -> dict[str, Any]:
    """A transaction's page: its terms and legs, where it settled, who certified it."""
    tx = decode_body(SignedTx.decode(receipt.transaction).body)
    terms = terms_of(tx)
    terms.pop("chain_id", None)
    return {
        "tx_id": receipt.tx_id.hex(),
        "kind": terms["kind"],
        "terms": terms,
        "legs": legs(terms),
        "dvp": isinstance(tx, DvP | PendingDvP),
        "code": receipt.code.name,
        "meaning": receipt.meaning,
        "outcome": receipt.outcome.name,
        "height": receipt.height,
        "position": receipt.position,
        "time_ms": receipt.block_time_ms,
        "signers": list(receipt.signers),
        "result_proven": receipt.result_proof is not None,
        "receipt": receipt.to_json(),
        "seen_live": indexed is not None,
    }


def receipt_check(receipt: Receipt, genesis: Genesis) -> dict[str, Any]:
    """Verify ``receipt`` offline against genesis alone (``verify_receipt``) and say what
    was proven, or which check failed."""
    try:
        verify_receipt(receipt, genesis, require_result=receipt.result_proof is not None)
    except InvalidReceiptError as e:
        return {"valid": False, "error": str(e), "tx_id": receipt.tx_id.hex()}
    proven = [
        f"block {receipt.height} is certified by {len(receipt.signers)} of "
        f"{len(genesis.validators)} genesis validators (quorum {genesis.quorum})",
        f"the transaction is at position {receipt.position} of that block (Merkle path)",
    ]
    if receipt.result_proof is not None:
        proven.append(f"its result {receipt.code.name} is certified by block {receipt.height + 1}")
    else:
        proven.append(
            "NOT final yet: the next block proves whether the ledger recorded it, and its result"
        )
    return {"valid": True, "tx_id": receipt.tx_id.hex(), "code": receipt.code.name,
            "proven": proven}  # fmt: skip


def backing_view(
    genesis: Genesis, height: int, backed: Sequence[BackedView], now_ms: int
) -> dict[str, Any]:
    """Custody and reserves for the Positions page, each line decided by the report
    functions of ``ledger report custody|reserves`` (one copy of each rule), judged at
    ``now_ms``; ``backed`` is what the node let this identity read, so every backed
    instrument of genesis missing from it is listed as hidden."""
    custody = custody_report(genesis, backed, now_ms)
    reserves = reserve_report(genesis, backed, now_ms)
    shown = {v.instrument for v in backed}
    every = (*genesis.custody_by_bond, *genesis.reserves_by_cash)
    return {
        "height": height,
        "now_ms": now_ms,
        "custody": [custody_doc(line) for line in custody],
        "reserves": [reserve_doc(line) for line in reserves],
        "breaks": sum(1 for line in custody if line.breaks),
        "fails": sum(1 for line in reserves for _, ok, _ in line.rules if not ok),
        "hidden": sorted(i for i in every if i not in shown),
    }
