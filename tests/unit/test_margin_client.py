"""Prices, margin and substitution in the SDK, the CLI and the node's price read, without
a cluster: the builders check each field against genesis (naming it), the commands exist
with their arguments and describe themselves, and GetPrices' reply shows each source's
price and the price in force exactly when k sources are fresh (with its control)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from client import InvalidFieldError, PriceBook, PriceView, SourcePrice, Transactions
from client._cli_margin import describe, price_rows
from client._cli_net import describe as describe_any
from client._prices import price_book
from client.cli import build_parser, main
from node.access import Caller, may_read_prices
from node.runtime._prices import prices_pb
from node.settlement import (
    AttestPrice,
    Genesis,
    MarginCall,
    RepoSubstitute,
    decode_body,
    encode_body,
)
from node.store import MemoryStore
from tests.ledger_helpers import TxFactory
from tests.margin_helpers import attest, margin_net, run

NET = margin_net()
G = NET.genesis
BOND, OTHER = NET.bonds
T0 = G.genesis_time_ms


def test_builders_make_the_ledgers_transactions() -> None:
    t = Transactions(G)
    price = t.attest_price("CSD", BOND, 995_000, T0)
    call = t.margin_call("R-1", "BANK01", "BANK02")
    swap = t.repo_substitute("R-1", "BANK01", "BANK02", OTHER, 5)
    assert isinstance(price, AttestPrice) and price.required_signers() == ("CSD",)
    assert isinstance(call, MarginCall) and call.required_signers() == ("BANK02",)
    assert isinstance(swap, RepoSubstitute) and swap.required_signers() == ("BANK01", "BANK02")
    for tx in (price, call, swap):
        assert decode_body(encode_body(tx)) == tx


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda t: t.attest_price("NOBODY", BOND, 1, T0), "source"),
        (lambda t: t.attest_price("CSD", NET.cash, 1, T0), "instrument"),
        (lambda t: t.attest_price("CSD", BOND, 0, T0), "price"),
        (lambda t: t.attest_price("CSD", BOND, 1, -1), "as_of_ms"),
        (lambda t: t.margin_call("not an id", "BANK01", "BANK02"), "repo"),
        (lambda t: t.margin_call("R-1", "BANK01", "NOBODY"), "lender"),
        (lambda t: t.repo_substitute("R-1", "BANK01", "BANK01", OTHER, 1), "lender"),
        (lambda t: t.repo_substitute("R-1", "BANK01", "BANK02", OTHER, 0), "quantity"),
        (lambda t: t.repo_substitute("R-1", "BANK01", "BANK02", "XX", 1), "instrument"),
    ],
)  # fmt: skip
def test_builders_refuse_bad_fields_naming_them(call: object, field: str) -> None:
    with pytest.raises(InvalidFieldError) as e:
        call(Transactions(G))  # type: ignore[operator]
    assert e.value.field == field


@pytest.mark.parametrize(
    "argv",
    [
        ["attest", "price", "--instrument", BOND, "--price", "995000", "--source", "CSD"],
        ["repo", "margin", "R-1", "--borrower", "BANK01", "--lender", "BANK02"],
        ["repo", "substitute", "R-1", "--borrower", "BANK01", "--lender", "BANK02",
         "--instrument", OTHER, "--quantity", "960607"],
        ["prices", "--instrument", BOND],
    ],
)  # fmt: skip
def test_the_commands_parse(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert callable(args.fn)
    assert main([*argv[:2], "--help"] if argv[0] != "prices" else ["prices", "--help"]) == 0


def test_a_substitution_needs_its_quantity() -> None:
    assert main(["repo", "substitute", "R-1", "--borrower", "A", "--lender", "B"]) == 2


def test_every_margin_kind_describes_itself() -> None:
    t = Transactions(G)
    txs = (
        t.attest_price("CSD", BOND, 995_000, T0),
        t.margin_call("R-1", "BANK01", "BANK02"),
        t.repo_substitute("R-1", "BANK01", "BANK02", OTHER, 5),
    )
    lines = [describe_any(tx) for tx in txs]
    assert [line.split()[0] for line in lines] == ["ATTEST-PRICE", "MARGIN-CALL", "SUBSTITUTE"]
    assert describe({"kind": "MARGIN_CALL", "repo": "R", "lender": "L", "borrower": "B"}) == (
        "MARGIN-CALL repo R by L on B"
    )


@dataclass
class _Node:
    """What prices_pb reads of a node: its genesis and its store."""

    genesis: Genesis
    store: MemoryStore


def test_the_price_read_shows_the_price_in_force_only_with_k_fresh_sources() -> None:
    store, txf = MemoryStore(G), TxFactory(NET)
    run(store, attest(txf, 990_000, T0, source="CSD"), at_ms=1_000)
    node = _Node(G, store)
    one = price_book(prices_pb(node, BOND))  # type: ignore[arg-type]
    assert one.instruments[0].price is None  # one source, k = 2
    assert [(p.source, p.price) for p in one.instruments[0].prices] == [("CSD", 990_000)]
    run(store, attest(txf, 994_000, T0, source="CASHCO"), at_ms=2_000)
    two = price_book(prices_pb(node, ""))  # type: ignore[arg-type]
    assert two.time_ms == T0 + 2_000 and two.threshold == 2
    by_id = {v.instrument: v for v in two.instruments}
    assert by_id[BOND].price == 990_000 and by_id[OTHER].price is None  # control: k fresh
    assert isinstance(prices_pb(node, NET.cash), str)  # type: ignore[arg-type]  # NOT_FOUND


def test_price_rows_put_the_price_in_force_on_the_instruments_line() -> None:
    view = PriceView(BOND, NET.cash, 200, None, (SourcePrice("CSD", 990_000, T0, 3),))
    rows = price_rows(PriceBook(3, T0, 2, 3_600_000, (view,)))
    assert rows[0][:3] == [BOND, "2.00%", "none (fewer than k fresh)"]
    assert rows[1][3:] == ["CSD", 990_000, T0]


def test_any_participant_reads_prices_and_nobody_else() -> None:
    assert may_read_prices(Caller("BANK01", observer=False))
    assert not may_read_prices(Caller("", observer=False))
