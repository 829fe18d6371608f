"""Prices as the SDK shows them (margin; docs/ledger.md "Prices, margin and
substitution"): ``AsyncLedgerClient.prices`` decodes a node's ``GetPrices`` reply into
these. One node's word at its head, like ``reference()``: the price a MarginCall uses is
the ledger's, computed again by every validator at the block's own time."""

from __future__ import annotations

from dataclasses import dataclass

from node.wire import ledger_pb2 as pb

__all__ = ["PriceBook", "PriceView", "SourcePrice", "price_book"]


@dataclass(frozen=True, slots=True)
class SourcePrice:
    """One source's latest recorded price: cash minor units per PRICE_UNITS units."""

    source: str
    price: int
    as_of_ms: int
    height: int


@dataclass(frozen=True, slots=True)
class PriceView:
    """An eligible instrument: its quote cash, haircut, the price in force at the book's
    time (None: fewer than k fresh sources) and every source's latest price."""

    instrument: str
    cash: str
    haircut_bp: int
    price: int | None
    prices: tuple[SourcePrice, ...]


@dataclass(frozen=True, slots=True)
class PriceBook:
    """The prices after block ``height`` (whose time is ``time_ms``), with the genesis
    threshold k and maximum price age they were judged by."""

    height: int
    time_ms: int
    threshold: int
    price_age_max_ms: int
    instruments: tuple[PriceView, ...]


def price_book(msg: pb.PriceList) -> PriceBook:
    views = tuple(
        PriceView(
            i.instrument,
            i.cash,
            i.haircut_bp,
            i.price or None,
            tuple(SourcePrice(p.source, p.price, p.as_of_ms, p.height) for p in i.prices),
        )
        for i in msg.instruments
    )
    return PriceBook(msg.height, msg.time_ms, msg.threshold, msg.price_age_max_ms, views)
