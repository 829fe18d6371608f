"""The ``ledger`` commands of freezes (docs/ledger.md "Freezes", docs/cli.md).

``submit freeze|unfreeze`` sign with the regulator's (or, for a whole account, the
compliance officer's) key and submit like every ``submit``; ``freezes`` lists what is
frozen at the node's head.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from client._cli_common import EXIT_OK, emit_json, table
from client._cli_net import _client, _key, _submit_built
from node.settlement import FreezeRecord

__all__ = ["COMMANDS"]


def _freeze(args: argparse.Namespace) -> int:
    terms = (args.account, args.by, args.reason, args.instrument)
    return _submit_built(args, lambda t: t.freeze(*terms), _key(args, args.by, args.key))


def _unfreeze(args: argparse.Namespace) -> int:
    terms = (args.account, args.by, args.instrument)
    return _submit_built(args, lambda t: t.unfreeze(*terms), _key(args, args.by, args.key))


def _list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        height, found = client.freezes()
    if args.json:
        emit_json({"height": height, "freezes": [_doc(f) for f in found]})
        return EXIT_OK
    print(f"after block {height}: {len(found)} frozen")
    rows = [
        (f.account, f.instrument or "(account)", f.reason.name, f.by, str(f.height), str(f.time_ms))
        for f in found
    ]
    table(("account", "holding", "reason", "by", "block", "block time ms"), rows, right=(4, 5))
    return EXIT_OK


def _doc(f: FreezeRecord) -> dict[str, object]:
    return {
        "account": f.account,
        "instrument": f.instrument,
        "reason": f.reason.name,
        "by": f.by,
        "height": f.height,
        "time_ms": f.time_ms,
    }


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "freeze_submit": _freeze,
    "freeze_unsubmit": _unfreeze,
    "freeze_list": _list,
}
