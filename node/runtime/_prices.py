"""The price read (margin; docs/ledger.md "Prices, margin and substitution"): each
eligible instrument's recorded prices, one per source, and the price in force at the
head block's time, from the settlement layer's own functions (no second copy of the
rule). Bounded by genesis: ELIGIBLE_COLLATERAL_MAX instruments, PRICE_SOURCES_MAX each."""

from __future__ import annotations

from node.runtime._node import Node
from node.settlement import Registry, fresh_price, price_records
from node.wire import ledger_pb2 as pb

__all__ = ["prices_pb"]


def _head_time_ms(node: Node) -> int:
    store = node.store
    height = store.head().height
    block = store.block(height) if height else None
    return node.genesis.genesis_time_ms if block is None else block.time_ms


def prices_pb(node: Node, instrument: str) -> pb.PriceList | str:
    """The reply, or the NOT_FOUND message for a named instrument that is not eligible."""
    store, terms = node.store, node.genesis.margin
    rows = terms.haircuts
    if instrument:
        rows = tuple(r for r in rows if r.instrument == instrument)
        if not rows:
            return f"{instrument!r} is not eligible collateral (no row in the genesis haircuts)"
    reg, now = Registry.of(store), _head_time_ms(node)
    return pb.PriceList(
        height=store.head().height,
        time_ms=now,
        threshold=terms.threshold,
        price_age_max_ms=terms.price_age_max_ms,
        instruments=[
            pb.InstrumentPrices(
                instrument=r.instrument,
                cash=r.cash,
                haircut_bp=r.haircut_bp,
                price=fresh_price(reg, store, r.instrument, now) or 0,
                prices=[
                    pb.SourcePrice(
                        source=p.source, price=p.price, as_of_ms=p.as_of_ms, height=p.height
                    )
                    for p in price_records(store, r.instrument)
                ],
            )
            for r in rows
        ],
    )
