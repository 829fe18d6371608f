"""The ``ledger`` commands of locks and swaps (docs/ledger.md "Locks and swaps",
docs/cli.md).

``lock create`` signs with the holder's and the beneficiary's keys, ``lock release`` with
the releasing party's, ``lock claim`` with the beneficiary's, ``swap`` with both
parties', and each submits like every ``submit``; ``lock list`` lists the locks the caller
may read at the node's head. The parsers are built here (``add_parsers``, called once by
``client/cli.py``); the handlers import the network side only when they run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client._cli_common import EXIT_OK, EXIT_USAGE, CliError, emit_json, table
from client._cli_common import amount as grouped
from node.settlement import SecuredKind

__all__ = ["COMMANDS", "add_parsers", "describe"]

Handler = Callable[[argparse.Namespace], int]


# --- handlers (run through client._cli_net.run, which maps SDK errors to exit codes) -------


def _until_ms(args: argparse.Namespace) -> int:
    if args.until_ms is not None:
        return int(args.until_ms)
    return int(time.time() * 1000) + int(args.for_s * 1000)


def _hex_id(text: str | None, what: str) -> bytes:
    if not text:
        return b""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise CliError(f"{what} must be 64 hex digits (a transaction id), got {text!r}", EXIT_USAGE)
    return raw


def _create(args: argparse.Namespace) -> int:
    from client._cli_net import _key, _submit_built

    secures: bytes | str = _hex_id(args.secures, "--secures") or (args.secures_repo or "")
    terms = (args.holder, args.instrument, args.amount, args.beneficiary, _until_ms(args), secures)
    keys = (
        _key(args, args.holder, args.holder_key),
        _key(args, args.beneficiary, args.beneficiary_key),
    )
    return _submit_built(args, lambda t: t.lock(*terms), *keys)


def _release(args: argparse.Namespace) -> int:
    from client._cli_net import _key, _submit_built

    lid = _hex_id(args.lock, "--lock")  # a usage error before anything is read
    key = _key(args, args.by, args.key)
    return _submit_built(args, lambda t: t.release_lock(lid, args.holder, args.by), key)


def _claim(args: argparse.Namespace) -> int:
    from client._cli_net import _client, _key, _signed, _submit_with

    lid = _hex_id(args.lock, "--lock")
    cosigner = args.cosign or ""
    keys = [_key(args, args.beneficiary, args.beneficiary_key)]
    if cosigner:
        keys.append(_key(args, cosigner, args.cosign_key))
    with _client(args, keys[0]) as client:  # the lock's terms, to sign for
        view = next((k for k in client.locks(args.beneficiary)[1] if k.lock_id == lid), None)
        if view is None or view.beneficiary != args.beneficiary:
            raise CliError(f"no lock {lid.hex()} for {args.beneficiary} at the node's head")
        terms = (lid, view.holder, args.beneficiary, view.instrument, view.amount)
        stx = _signed(client, lambda t: t.claim_lock(*terms, cosigner=cosigner), keys)
        return _submit_with(client, args, stx)


def _swap(args: argparse.Namespace) -> int:
    from client._cli_net import _key, _submit_built

    terms = (
        args.a, args.a_instrument, args.a_quantity, args.b, args.b_instrument, args.b_quantity,
        args.deadline_ms,
    )  # fmt: skip
    keys = (_key(args, args.a, args.a_key), _key(args, args.b, args.b_key))
    return _submit_built(args, lambda t: t.swap(*terms), *keys)


def _list(args: argparse.Namespace) -> int:
    from client._cli_net import _client

    with _client(args, args.party or None) as client:
        height, found = client.locks(args.party or "")
    if args.json:
        emit_json({"height": height, "locks": [_doc(k) for k in found]})
        return EXIT_OK
    print(f"after block {height}: {len(found)} locks")
    rows = [
        (
            k.lock_id.hex()[:16], k.holder, k.beneficiary, k.instrument, grouped(k.amount),
            str(k.until_ms), _secures(k.secures.kind.name, k.secures.ref),
            "yes" if k.claimable else "no",
        )
        for k in found
    ]  # fmt: skip
    headers = ("lock", "holder", "beneficiary", "instrument", "amount", "until ms", "secures")
    table((*headers, "claimable"), rows, right=(4, 5))
    return EXIT_OK


def _secures(kind: str, ref: bytes) -> str:
    if not ref:
        return "-"
    if kind == SecuredKind.REPO.name:  # its id is ASCII: show it as the repo commands do
        return f"{kind} {ref.decode('ascii')}"
    return f"{kind} {ref.hex()[:16]}"


def _doc(k: Any) -> dict[str, object]:
    return {
        "lock_id": k.lock_id.hex(),
        "holder": k.holder,
        "instrument": k.instrument,
        "amount": k.amount,
        "beneficiary": k.beneficiary,
        "until_ms": k.until_ms,
        "secures": {"kind": k.secures.kind.name, "ref": k.secures.ref.hex()},
        "defaulted": list(k.defaulted),
        "claimable": k.claimable,
        "height": k.height,
        "time_ms": k.time_ms,
    }


def describe(terms: dict[str, Any]) -> str:
    """One line for a person (``ledger submit`` prints it), from ``terms_of``."""
    kind = terms["kind"]
    if kind == "LOCK":
        why = _securing(terms["secures"])
        return (
            f"LOCK {terms['amount']:,} {terms['instrument']} of {terms['holder']} for "
            f"{terms['beneficiary']} until {terms['until_ms']}{why}"
        )
    if kind == "RELEASE_LOCK":
        return f"RELEASE-LOCK {terms['lock']} of {terms['holder']} by {terms['by']}"
    if kind == "CLAIM_LOCK":
        return f"CLAIM-LOCK {terms['lock']} of {terms['holder']} by {terms['beneficiary']}"
    return (
        f"SWAP {terms['party_a']} -> {terms['party_b']} {terms['quantity_a']:,} "
        f"{terms['instrument_a']} for {terms['quantity_b']:,} {terms['instrument_b']}"
    )


def _securing(secures: dict[str, Any]) -> str:
    """What a lock's terms (``terms_of``: kind a number, ref hex) say it secures."""
    ref = secures["ref"]
    if not ref:
        return ""
    if int(secures["kind"]) == SecuredKind.REPO:  # its id is ASCII
        return f" securing repo {bytes.fromhex(ref).decode('ascii')}"
    return f" securing trade {ref}"


COMMANDS: dict[str, Handler] = {
    "lock_create": _create,
    "lock_release": _release,
    "lock_claim": _claim,
    "lock_swap": _swap,
    "lock_list": _list,
}


# --- parsers ---------------------------------------------------------------------------------


def add_parsers(b: Any, network: Callable[[str], Handler], submit_options: Any) -> None:
    """``lock create|release|claim|list`` and ``swap`` on ``b`` (client/cli.py's builder)."""
    from client.cli import amount, participant_id

    opts = [submit_options()]
    sub = b.group("lock", "pledge units to a beneficiary without moving them; release, claim")

    def party(p: argparse.ArgumentParser, flag: str, help_: str, key: bool = True) -> None:
        p.add_argument(f"--{flag}", required=True, type=participant_id, metavar="ID", help=help_)
        if key:
            p.add_argument(
                f"--{flag}-key" if flag != "by" else "--key",
                type=Path,
                metavar="FILE",
                help=f"default: RUN_DIR/participants/{flag.upper()}.key",
            )

    p = b.leaf(
        sub,
        "create",
        "lock units of the holder's instrument for a beneficiary (both sign); the units "
        "stay the holder's but cannot move until released or claimed",
        network("lock_create"),
        parents=opts,
    )
    party(p, "holder", "the holder pledging its units")
    party(p, "beneficiary", "who may release the lock, or claim it on a recorded default")
    p.add_argument("--instrument", required=True, type=participant_id, metavar="ID")
    p.add_argument("--amount", required=True, type=amount, help="units to lock (integer)")
    until = p.add_mutually_exclusive_group(required=True)
    until.add_argument("--until-ms", type=int, metavar="MS", help="until (Unix ms)")
    until.add_argument("--for-s", type=float, metavar="SECONDS", help="until now + SECONDS")
    secured = p.add_mutually_exclusive_group()
    secured.add_argument(
        "--secures",
        metavar="TRADE_ID",
        help="the pending DvP (its tx id, hex) the lock secures: claimable if the holder "
        "fails it at its deadline (default: none, release only)",
    )
    secured.add_argument(
        "--secures-repo",
        type=participant_id,
        metavar="REPO_ID",
        help="the open repo the lock secures (holder and beneficiary its two parties): "
        "claimable if the holder defaults on it",
    )

    p = b.leaf(
        sub,
        "release",
        "end a lock (the beneficiary at any time, the holder after its until)",
        network("lock_release"),
        parents=opts,
    )
    p.add_argument("--lock", required=True, metavar="LOCK_ID", help="the lock id (hex)")
    party(p, "holder", "the lock's holder", key=False)
    party(p, "by", "who releases (signs)")

    p = b.leaf(
        sub,
        "claim",
        "move a lock's units to its beneficiary on the holder's recorded default",
        network("lock_claim"),
        parents=opts,
    )
    p.add_argument("--lock", required=True, metavar="LOCK_ID", help="the lock id (hex)")
    party(p, "beneficiary", "the lock's beneficiary (signs for the terms the node lists)")
    p.add_argument(
        "--cosign",
        type=participant_id,
        metavar="ID",
        help="a compliance co-signer (a cash claim above the AML threshold)",
    )
    p.add_argument("--cosign-key", type=Path, metavar="FILE",
                   help="default: RUN_DIR/participants/COSIGNER.key")  # fmt: skip

    p = b.leaf(sub, "list", "locks the caller holds or benefits from", network("lock_list"))
    p.add_argument("--party", type=participant_id, metavar="ID", help="only those naming ID")

    p = b.leaf(
        b.top,
        "swap",
        "exchange two bonds between two parties, both legs or neither (both sign)",
        network("lock_swap"),
        parents=opts,
    )
    _swap_sides(p, party, amount, participant_id)


def _swap_sides(p: argparse.ArgumentParser, party: Any, amount: Any, ident: Any) -> None:
    for side, gives in (("a", "gives B"), ("b", "gives A")):
        party(p, side, f"party {side.upper()} (signs)")
        p.add_argument(f"--{side}-instrument", required=True, type=ident, metavar="ISIN",
                       help=f"the bond {side.upper()} {gives}")  # fmt: skip
        p.add_argument(f"--{side}-quantity", required=True, type=amount, help="units (integer)")
    p.add_argument("--deadline-ms", type=int, metavar="MS", help="default: the expiry")
