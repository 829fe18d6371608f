"""The checker of a chaos run: what every validator holds, against what the clients saw.

:func:`observe` asks every validator, one by one and each on its own (no failover to
another node), for its head, every committed block (certificates checked by the SDK),
``GetTransaction`` for every acknowledged trade, and every participant's balances.
:func:`check` is pure: it takes the workload's history and those observations and lists
every violation of

- **agreement**: every validator answers, at one height, with one state root, and the
  same block hash at every height;
- **exactly once**: no transaction is in two blocks of any validator; every acknowledged
  trade is in exactly one block of every validator;
- **one result**: a transaction has the same (height, position, result code) on every
  validator, its ``GetTransaction`` answer says the same, and so does the receipt its
  client got, if it got one;
- **conservation**: on every validator, each instrument's balances summed over all
  participants equal its genesis total (the workload issues and redeems nothing).

A trade that was never acknowledged may be missing (the client was told nothing) but if
it committed, it is held to the same rules. ``tests/unit/test_chaos_checker.py`` feeds
:func:`check` doctored histories and sees each rule fire.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from typing import Any

from client import (
    AsyncLedgerClient,
    BlockView,
    CertificateCache,
    Endpoint,
    EndpointDown,
    LedgerError,
    NotFoundError,
    OverloadedError,
    ParticipantKey,
    TxStatus,
)
from devtools.chaos.workload import TradeRecord
from node.settlement import Genesis

__all__ = ["ValidatorView", "Violation", "check", "genesis_supply", "observe"]

INDEX_QUERIES_AT_ONCE = 32
# The node meters each participant's block reads (docs/cluster.md): a receipt from an old
# block rebuilds its trees (and its party index, ADR 0025), and the checker asks for every
# acknowledged trade's. It waits out the node's hint and asks again, at most this often.
INDEX_QUERY_TRIES = 100
Occurrence = tuple[int, int, str]  # height, position, result code


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str  # agreement, exactly-once, one-result, conservation
    detail: str


@dataclass(slots=True)
class ValidatorView:
    """What one validator answered at the end of the run."""

    node: str
    error: str = ""  # set when it could not be observed
    height: int = 0
    state_root: str = ""
    block_hashes: list[str] = field(default_factory=list)  # [h - 1] is height h's
    block_times_ms: list[int] = field(default_factory=list)  # the leader's clock, proposing
    occurrences: dict[str, list[Occurrence]] = field(default_factory=dict)  # tx id hex ->
    index: dict[str, tuple[str, int | None, str | None]] = field(default_factory=dict)
    supply: dict[str, int] = field(default_factory=dict)  # instrument -> sum of balances
    balances_height: int = 0

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("occurrences")  # large, and the blocks themselves stay on the validators
        doc.pop("index")
        doc.pop("block_hashes")
        doc.pop("block_times_ms")
        return doc


def genesis_supply(g: Genesis) -> dict[str, int]:
    total = {i.id: 0 for i in g.instruments}
    for h in g.holdings:
        total[h.instrument] += h.amount
    return total


# --- the rules ------------------------------------------------------------------------------


def check(
    history: Sequence[TradeRecord], views: Sequence[ValidatorView], supply: dict[str, int]
) -> list[Violation]:
    """Every violation of the rules above (empty: the run passed)."""
    out = [Violation("agreement", f"{v.node} not observed: {v.error}") for v in views if v.error]
    seen = [v for v in views if not v.error]
    out += _agreement(seen)
    out += _exactly_once(history, seen)
    out += _one_result(history, seen)
    out += _conservation(seen, supply)
    return out


def _agreement(views: Sequence[ValidatorView]) -> list[Violation]:
    out = []
    heights = {v.node: v.height for v in views}
    if len(set(heights.values())) > 1:
        out.append(Violation("agreement", f"validators end at different heights: {heights}"))
    roots = Counter(v.state_root for v in views)
    if len(roots) > 1:
        out.append(Violation("agreement", f"{len(roots)} state roots: {dict(roots)}"))
    top = min((v.height for v in views), default=0)
    for h in range(1, top + 1):
        hashes = {v.block_hashes[h - 1] for v in views}
        if len(hashes) > 1:
            out.append(Violation("agreement", f"{len(hashes)} different blocks at height {h}"))
            break  # later heights differ too: one line says it
    return out


def _exactly_once(
    history: Sequence[TradeRecord], views: Sequence[ValidatorView]
) -> list[Violation]:
    out = []
    for v in views:
        for tid, occ in v.occurrences.items():
            if len(occ) > 1:
                out.append(
                    Violation(
                        "exactly-once", f"{tid[:16]} is in {len(occ)} blocks of {v.node}: {occ}"
                    )
                )
    for t in history:
        if t.ack_us is None:
            continue
        missing = [v.node for v in views if not v.occurrences.get(t.tx_id)]
        if missing:
            out.append(
                Violation(
                    "exactly-once",
                    f"{t.kind} {t.tx_id[:16]} acknowledged by {t.ack_node} is in no block of "
                    f"{', '.join(missing)} (client: {t.code or t.error})",
                )
            )
    return out


def _one_result(history: Sequence[TradeRecord], views: Sequence[ValidatorView]) -> list[Violation]:
    out = []
    tids = sorted({tid for v in views for tid in v.occurrences})
    for tid in tids:
        results = {v.node: tuple(v.occurrences.get(tid, ())) for v in views}
        if len(set(results.values())) > 1:
            out.append(Violation("one-result", f"{tid[:16]} differs between validators: {results}"))
    for t in history:
        if t.ack_us is None:
            continue
        for v in views:
            occ = v.occurrences.get(t.tx_id)
            if not occ or len(occ) != 1:
                continue  # reported under exactly-once
            height, _, code = occ[0]
            idx = v.index.get(t.tx_id)
            # INCLUDED: in that block, its result proof not there yet (the head block's
            # transactions until the next block commits; ADR 0024): the same answer.
            if idx not in (("COMMITTED", height, code), ("INCLUDED", height, code)):
                out.append(
                    Violation(
                        "one-result",
                        f"{t.tx_id[:16]}: {v.node}'s GetTransaction says {idx}, its block "
                        f"{height} says {code}",
                    )
                )
            if t.code is not None and (t.height, t.code) != (height, code):
                out.append(
                    Violation(
                        "one-result",
                        f"{t.tx_id[:16]}: the client's receipt says {t.code} at {t.height}, "
                        f"{v.node}'s block {height} says {code}",
                    )
                )
    return out


def _conservation(views: Sequence[ValidatorView], supply: dict[str, int]) -> list[Violation]:
    out = []
    for v in views:
        if v.supply != supply:
            diff = {
                i: v.supply.get(i, 0) - supply.get(i, 0)
                for i in {*supply, *v.supply}
                if v.supply.get(i, 0) != supply.get(i, 0)
            }
            out.append(Violation("conservation", f"{v.node}: supply off genesis by {diff}"))
        if v.balances_height != v.height:
            out.append(
                Violation(
                    "conservation",
                    f"{v.node}: balances read at height {v.balances_height}, head {v.height}",
                )
            )
    return out


# --- observing the validators ---------------------------------------------------------------


async def observe(
    endpoint: Endpoint,
    tls_certs: bytes,
    genesis: Genesis,
    acked: Sequence[str],
    cache: CertificateCache,
    *,
    identity: ParticipantKey,
) -> ValidatorView:
    """Everything :func:`check` needs from one validator, asked of it alone, as
    ``identity`` (an observer: it reads every account and block)."""
    view = ValidatorView(endpoint.server_name)
    async with AsyncLedgerClient(
        [endpoint], tls_certs=tls_certs, genesis=genesis, certificates=cache, identity=identity
    ) as c:
        try:
            await _observe(c, view, acked)
        except LedgerError as e:
            view.error = f"{type(e).__name__}: {e}"[:500]
    return view


async def _transaction(c: AsyncLedgerClient, tid: str) -> TxStatus:
    """``c.transaction`` of ``tid``, waiting out the node's block-read budget when it is
    spent (OverloadedError's hint), at most ``INDEX_QUERY_TRIES`` times."""
    for _ in range(INDEX_QUERY_TRIES - 1):
        try:
            return await c.transaction(bytes.fromhex(tid))
        except OverloadedError as e:
            await asyncio.sleep(max(e.retry_after_s, 0.01))
    return await c.transaction(bytes.fromhex(tid))


async def _observe(c: AsyncLedgerClient, view: ValidatorView, acked: Sequence[str]) -> None:
    (status,) = await c.status()
    if isinstance(status, EndpointDown):
        raise LedgerError(f"status: {status.error}")
    view.height, view.state_root = status.height, status.state_root.hex()
    seen: list[BlockView] = []
    if view.height > 1:
        # blocks() sends a block once the next one proves its results (ADR 0026); the
        # head, quiet on an idle cluster, has none yet: read on its own, unproven.
        async with aclosing(c.blocks(1)) as blocks:
            async for b in blocks:
                seen.append(b)
                if b.height >= view.height - 1:
                    break
    if view.height:
        seen.append(await c.block(view.height))
    for b in seen:
        view.block_hashes.append(b.hash.hex())
        view.block_times_ms.append(b.time_ms)
        for t in b.transactions:
            occ = (b.height, t.position, t.code.name)
            view.occurrences.setdefault(t.tx_id.hex(), []).append(occ)
    limit = asyncio.Semaphore(INDEX_QUERIES_AT_ONCE)

    async def index(tid: str) -> None:
        async with limit:
            try:
                st = await _transaction(c, tid)
            except NotFoundError:
                view.index[tid] = ("NOT_FOUND", None, None)
                return
        r = st.receipt
        view.index[tid] = (st.state, r.height, r.code.name) if r else (st.state, None, None)

    await asyncio.gather(*(index(t) for t in acked))
    heights = set()
    for p in c.genesis.participants:
        bal = await c.balances(p.id)
        heights.add(bal.height)
        for inst, amount in bal.amounts.items():
            view.supply[inst] = view.supply.get(inst, 0) + amount
    # Balances read across two heights do not sum to anything: flagged by the checker.
    view.balances_height = heights.pop() if len(heights) == 1 else -1
