"""The ``ledger`` commands of prices, margin calls and substitution (docs/ledger.md
"Prices, margin and substitution", docs/cli.md).

``attest price`` signs with a price source's key; ``repo margin`` with the lender's;
``repo substitute`` with both parties' keys from the run directory (or --borrower-key,
--lender-key); each submits like every ``submit``. ``prices`` shows a node's recorded
prices and the price in force. ``add_parsers`` adds them to the ``attest`` and ``repo``
groups (``_Builder.group`` returns a group another part already made), so this module is
registered with one call in ``client/cli.py``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from client import PriceBook
from client._cli_common import ATTEST_HELP, EXIT_OK, REPO_HELP, emit_json, table

if TYPE_CHECKING:
    from client.cli import _Builder

# The handlers import client._cli_net when they run: this module is imported to build the
# parser, and offline commands stay light (client/cli.py).

__all__ = ["COMMANDS", "add_parsers", "describe", "price_rows"]

# Default as-of of a price: a second before now, since the block that records it is
# stamped with its leader's clock, which may trail this one slightly.
AS_OF_LAG_MS = 1_000


def _attest_price(args: argparse.Namespace) -> int:
    from client._cli_net import _key, _submit_built

    as_of = args.as_of_ms if args.as_of_ms is not None else int(time.time() * 1000) - AS_OF_LAG_MS
    terms = (args.source, args.instrument, args.price, as_of)
    return _submit_built(args, lambda t: t.attest_price(*terms), _key(args, args.source, args.key))


def _margin_call(args: argparse.Namespace) -> int:
    from client._cli_net import _key, _submit_built

    terms = (args.repo, args.borrower, args.lender)
    return _submit_built(args, lambda t: t.margin_call(*terms), _key(args, args.lender, args.key))


def _substitute(args: argparse.Namespace) -> int:
    from client._cli_net import _key, _submit_built

    terms = (args.repo, args.borrower, args.lender, args.instrument, args.quantity)
    keys = (
        _key(args, args.borrower, args.borrower_key),
        _key(args, args.lender, args.lender_key),
    )
    return _submit_built(args, lambda t: t.repo_substitute(*terms), *keys)


def describe(terms: dict[str, Any]) -> str:
    """One line for a person (``_cli_net.describe`` asks for the margin kinds)."""
    match terms["kind"]:
        case "ATTEST_PRICE":
            return (
                f"ATTEST-PRICE {terms['instrument']} at {terms['price']} per 1,000,000 units "
                f"as of {terms['as_of_ms']} by {terms['source']}"
            )
        case "MARGIN_CALL":
            return f"MARGIN-CALL repo {terms['repo']} by {terms['lender']} on {terms['borrower']}"
        case _:
            return (
                f"SUBSTITUTE repo {terms['repo']} collateral: {terms['quantity']} "
                f"{terms['instrument']} from {terms['borrower']} to {terms['lender']}"
            )


def price_rows(book: PriceBook) -> list[list[object]]:
    """One row per (instrument, source), the instrument's price in force on its first."""
    rows: list[list[object]] = []
    for view in book.instruments:
        used = "none (fewer than k fresh)" if view.price is None else view.price
        rows.append([view.instrument, f"{view.haircut_bp / 100:.2f}%", used, "", "", ""])
        rows.extend(["", "", "", p.source, p.price, p.as_of_ms] for p in view.prices)
    return rows


def _prices(args: argparse.Namespace) -> int:
    from client._cli_net import _client

    with _client(args) as client:
        book = client.prices(args.instrument or "")
    if args.json:
        emit_json(
            {
                "height": book.height,
                "time_ms": book.time_ms,
                "threshold": book.threshold,
                "price_age_max_ms": book.price_age_max_ms,
                "instruments": [
                    {
                        "instrument": v.instrument,
                        "cash": v.cash,
                        "haircut_bp": v.haircut_bp,
                        "price": v.price,
                        "prices": [
                            {"source": p.source, "price": p.price, "as_of_ms": p.as_of_ms,
                             "height": p.height}
                            for p in v.prices
                        ],
                    }
                    for v in book.instruments
                ],
            }
        )  # fmt: skip
        return EXIT_OK
    print(
        f"after block {book.height} (time {book.time_ms}): k = {book.threshold} fresh sources "
        f"within {book.price_age_max_ms} ms; prices per 1,000,000 units in cash minor units"
    )
    table(
        ["INSTRUMENT", "HAIRCUT", "PRICE IN FORCE", "SOURCE", "PRICE", "AS OF MS"],
        price_rows(book),
        right=(2, 4, 5),
    )
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "margin_attest_price": _attest_price,
    "margin_call": _margin_call,
    "margin_substitute": _substitute,
    "margin_prices": _prices,
}


def add_parsers(b: _Builder) -> None:
    """``ledger attest price``, ``ledger repo margin|substitute``, ``ledger prices``."""
    from client.cli import _network, _submit_options, participant_id, units

    opts = [_submit_options()]
    attest = b.group("attest", ATTEST_HELP)
    p = b.leaf(attest, "price", "attest a price of eligible collateral (a genesis price source "
               "signs); k fresh sources make the price margin uses",
               _network("margin_attest_price"), parents=opts)  # fmt: skip
    p.add_argument("--instrument", required=True, type=participant_id, metavar="ISIN")
    p.add_argument("--price", required=True, type=units,
                   help="cash minor units per 1,000,000 units (par: 1000000)")  # fmt: skip
    p.add_argument("--source", required=True, type=participant_id, metavar="ID",
                   help="the price source signing (one genesis names)")  # fmt: skip
    p.add_argument("--as-of-ms", type=int, metavar="MS",
                   help="the price's time (default: a second ago); newer than this source's "
                   "last, not after the block time, within the genesis max age")  # fmt: skip
    p.add_argument(
        "--key", type=Path, metavar="FILE", help="default: RUN_DIR/participants/SOURCE.key"
    )
    repo = b.group("repo", REPO_HELP)
    p = b.leaf(repo, "margin", "call margin on an open repo (the lender signs): the deficit at "
               "the fresh price moves from the borrower in the repo's collateral",
               _network("margin_call"), parents=opts)  # fmt: skip
    _repo_parties(p, participant_id)
    p.add_argument(
        "--key", type=Path, metavar="FILE", help="default: RUN_DIR/participants/LENDER.key"
    )
    p = b.leaf(repo, "substitute", "swap an open repo's collateral for eligible collateral "
               "worth at least the exposure (both parties sign)", _network("margin_substitute"),
               parents=opts)  # fmt: skip
    _repo_parties(p, participant_id)
    p.add_argument("--instrument", required=True, type=participant_id, metavar="ISIN",
                   help="the new collateral")  # fmt: skip
    p.add_argument("--quantity", required=True, type=units, help="units of it (integer)")
    p.add_argument("--borrower-key", type=Path, metavar="FILE", help="default: from RUN_DIR")
    p.add_argument("--lender-key", type=Path, metavar="FILE", help="default: from RUN_DIR")
    p = b.leaf(b.top, "prices", "recorded prices of eligible collateral, one per source, and "
               "the price in force at a node's head", _network("margin_prices"))  # fmt: skip
    p.add_argument("--instrument", type=participant_id, metavar="ISIN", help="only this one")


def _repo_parties(p: argparse.ArgumentParser, participant_id: Callable[[str], str]) -> None:
    p.add_argument("repo", type=participant_id, metavar="REPO_ID")
    p.add_argument("--borrower", required=True, type=participant_id, metavar="ID")
    p.add_argument("--lender", required=True, type=participant_id, metavar="ID")
