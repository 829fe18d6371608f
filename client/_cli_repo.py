"""The ``ledger`` commands of repos (docs/ledger.md "Repo", docs/cli.md "Repo").

``repo open`` signs with both parties' keys (a run directory holds them; on two machines,
each signs with the SDK) and submits; ``repo close`` with the closer's key, or both
before the close time; ``repo list`` reads the repo records at the head; ``report repo``
sums the live repos: exposure per counterparty pair and collateral by lender.

The parser part is light (``add_commands``, imported by ``client/cli.py``); the handlers
import the SDK and ``_cli_net`` only when they run.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from client._cli_common import EXIT_OK, REPO_HELP, emit_json, table, timestamp
from client._cli_common import amount as grouped

if TYPE_CHECKING:
    from node.settlement import RepoRecord, Transaction

__all__ = ["COMMANDS", "add_commands"]

_MS_PER_S = 1000


# --- handlers --------------------------------------------------------------------------------


def _open(args: argparse.Namespace) -> int:
    from client import Transactions
    from client._cli_net import _key, _submit_built

    now_ms = int(time.time() * _MS_PER_S)
    close_ms = args.close_ms or now_ms + int(args.close_in * _MS_PER_S)
    keys = [_key(args, args.borrower, args.borrower_key), _key(args, args.lender, args.lender_key)]
    if args.cosign:
        keys.append(_key(args, args.cosign, None))

    def build(t: Transactions) -> Transaction:
        return t.repo_open(
            args.id, args.borrower, args.lender, args.bond, args.quantity, args.cash,
            args.purchase, close_ms, close_ms + int(args.grace * _MS_PER_S),
            rate_bp=args.rate_bp or 0, repurchase_amount=args.repurchase or 0,
            cosigner=args.cosign or "",
        )  # fmt: skip

    return _submit_built(args, build, *keys)


def _close(args: argparse.Namespace) -> int:
    from client._cli_net import _client, _key, _signed, _submit_with

    signers = dict.fromkeys([*args.by, *([args.cosign] if args.cosign else [])])
    keys = [_key(args, signer, None) for signer in signers]  # the close's signers
    with _client(args, keys[0]) as client:  # the repo's parties, from its record
        _, (rec,) = client.repos(args.id)
        close = (args.id, rec.borrower, rec.lender, *args.by)
        stx = _signed(client, lambda t: t.repo_close(*close, cosigner=args.cosign or ""), keys)
        return _submit_with(client, args, stx)


def _read(args: argparse.Namespace) -> tuple[int, tuple[RepoRecord, ...]]:
    from client._cli_net import _client

    with _client(args, args.party or None) as client:
        return client.repos(args.id or "", party=args.party or "")


def _list(args: argparse.Namespace) -> int:
    height, found = _read(args)
    if args.json:
        emit_json({"height": height, "repos": [_doc(r) for r in found]})
        return EXIT_OK
    print(f"after block {height}: {len(found)} repos")
    rows = [
        (r.id, r.status.name, r.borrower, r.lender, r.bond, grouped(r.quantity), r.cash,
         grouped(r.purchase_amount), grouped(r.close_amount) if r.close_amount else "-",
         timestamp(r.close_ms),
         r.defaulter or "-")
        for r in found
    ]  # fmt: skip
    head = ("repo", "status", "borrower", "lender", "bond", "units", "cash", "purchase",
            "paid at close", "close time", "defaulter")  # fmt: skip
    table(head, rows, right=(5, 7, 8))
    return EXIT_OK


def _doc(r: RepoRecord) -> dict[str, object]:
    return {
        "id": r.id, "status": r.status.name, "borrower": r.borrower, "lender": r.lender,
        "bond": r.bond, "quantity": r.quantity, "cash": r.cash,
        "purchase_amount": r.purchase_amount, "repurchase_amount": r.repurchase_amount,
        "rate_bp": r.rate_bp, "open_ms": r.open_ms, "close_ms": r.close_ms,
        "default_ms": r.default_ms, "closed_ms": r.closed_ms, "close_amount": r.close_amount,
        "manufactured": r.manufactured, "defaulter": r.defaulter,
        "close_tx": r.close_tx.hex() if any(r.close_tx) else "",
        "open_tx": r.open_tx.hex() if any(r.open_tx) else "",
    }  # fmt: skip


def exposure(repos: Sequence[RepoRecord]) -> dict[str, list[dict[str, object]]]:
    """Live (open or closing) repos summed: cash lent and collateral per (lender,
    borrower, cash) pair, and collateral units per (lender, bond)."""
    pairs: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    held: dict[tuple[str, str], int] = defaultdict(int)
    for r in repos:
        if r.live:
            pair = pairs[(r.lender, r.borrower, r.cash)]
            pair[0] += 1
            pair[1] += r.purchase_amount
            held[(r.lender, r.bond)] += r.quantity
    return {
        "counterparties": [
            {"lender": k[0], "borrower": k[1], "cash": k[2], "repos": v[0], "cash_lent": v[1]}
            for k, v in sorted(pairs.items())
        ],
        "collateral": [{"lender": k[0], "bond": k[1], "units": v} for k, v in sorted(held.items())],
    }


def _report(args: argparse.Namespace) -> int:
    height, found = _read(args)
    doc = exposure(found)
    if args.json:
        emit_json({"height": height, **doc})
        return EXIT_OK
    live = sum(r.live for r in found)
    print(f"after block {height}: {live} live repos of {len(found)}")
    print("exposure per counterparty (cash lent, live repos)")
    rows = [
        (str(c["lender"]), str(c["borrower"]), str(c["cash"]), f"{c['repos']:,}",
         f"{c['cash_lent']:,}")
        for c in doc["counterparties"]
    ]  # fmt: skip
    table(("lender", "borrower", "cash", "repos", "cash lent"), rows, right=(3, 4))
    print("collateral by lender (units held under live repos)")
    held = [(str(c["lender"]), str(c["bond"]), f"{c['units']:,}") for c in doc["collateral"]]
    table(("lender", "bond", "units"), held, right=(2,))
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "repo_open": _open,
    "repo_close": _close,
    "repo_list": _list,
    "repo_report": _report,
}


# --- the parser ------------------------------------------------------------------------------


def _network(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from client import _cli_net

        return _cli_net.run(name, args)

    return run


def _cosign_option(p: argparse.ArgumentParser, ident: Callable[[str], str]) -> None:
    p.add_argument(
        "--cosign",
        type=ident,
        metavar="ID",
        help="a compliance co-signer (its key in the run directory): needed above the cash "
        "token's AML threshold (COSIGN_REQUIRED)",
    )


def _read_options(p: argparse.ArgumentParser, ident: Callable[[str], str]) -> None:
    p.add_argument("--id", type=ident, metavar="REPO", help="one repo")
    p.add_argument(
        "--party",
        type=ident,
        metavar="ID",
        help="the repos naming this participant (default: the caller's own; an observer "
        "such as AUDITOR with neither --id nor --party: all)",
    )


def add_commands(
    b: Any,  # client/cli.py's _Builder (that module imports this one)
    submit: argparse.ArgumentParser,
    ident: Callable[[str], str],
    amount: Callable[[str], int],
) -> None:
    """``repo open|close|list`` and ``report repo`` (the ``report`` group must exist)."""
    sub = b.group("repo", REPO_HELP)
    p = b.leaf(
        sub,
        "open",
        "open a repo: the borrower's bonds to the lender against cash, and the record; both "
        "parties' keys sign",
        _network("repo_open"),
        parents=[submit],
    )
    p.add_argument("--id", required=True, type=ident, metavar="REPO", help="a new repo id")
    for side in ("borrower", "lender"):
        p.add_argument(f"--{side}", required=True, type=ident, metavar="ID")
        p.add_argument(
            f"--{side}-key",
            type=Path,
            metavar="FILE",
            help=f"default: RUN_DIR/participants/{side.upper()}.key",
        )
    p.add_argument("--bond", required=True, type=ident, metavar="ISIN")
    p.add_argument("--quantity", required=True, type=amount, help="bond units (integer)")
    p.add_argument("--cash", required=True, type=ident, metavar="ID")
    p.add_argument("--purchase", required=True, type=amount, help="cash, minor units")
    price = p.add_mutually_exclusive_group(required=True)
    price.add_argument(
        "--rate-bp",
        type=amount,
        metavar="BP",
        help="interest a year in basis points, ACT/360 (rounded half up)",
    )
    price.add_argument("--repurchase", type=amount, help="fixed repurchase amount, minor units")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--close-in", type=float, metavar="SECONDS", help="close time this many seconds from now"
    )
    when.add_argument("--close-ms", type=amount, metavar="MS", help="close time, ms since epoch")
    p.add_argument(
        "--grace",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="default deadline this long after the close time (default 3600)",
    )
    _cosign_option(p, ident)
    p = b.leaf(
        sub,
        "close",
        "close a repo: the reverse DvP at the repurchase amount; one party from the close "
        "time, both before it; if the borrower cannot pay it waits until the default deadline",
        _network("repo_close"),
        parents=[submit],
    )
    p.add_argument("--id", required=True, type=ident, metavar="REPO")
    p.add_argument(
        "--by",
        required=True,
        action="append",
        type=ident,
        metavar="ID",
        help="a signing party (its key in the run directory); repeat for both",
    )
    _cosign_option(p, ident)
    p = b.leaf(sub, "list", "repos with their terms and status", _network("repo_list"))
    _read_options(p, ident)
    report = next(a for a in b.top.choices["report"]._actions if a.dest == "subcommand")
    p = b.leaf(
        report,
        "repo",
        "live repos: exposure (cash lent) per counterparty, collateral by lender",
        _network("repo_report"),
    )
    _read_options(p, ident)
