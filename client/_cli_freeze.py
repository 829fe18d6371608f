"""The ``ledger`` commands of freezes (docs/ledger.md "Freezes", docs/cli.md).

``submit freeze|unfreeze`` sign with the regulator's (or, for a whole account, the
compliance officer's) key and submit like every ``submit``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from client import Transactions, sign
from client._cli_net import _genesis, _key, _submit

__all__ = ["COMMANDS"]


def _freeze(args: argparse.Namespace) -> int:
    g = _genesis(args)
    tx = Transactions(g).freeze(args.account, args.by, args.reason, args.instrument)
    return _submit(args, sign(tx, _key(args, args.by, args.key), genesis=g))


def _unfreeze(args: argparse.Namespace) -> int:
    g = _genesis(args)
    tx = Transactions(g).unfreeze(args.account, args.by, args.instrument)
    return _submit(args, sign(tx, _key(args, args.by, args.key), genesis=g))


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "freeze_submit": _freeze,
    "freeze_unsubmit": _unfreeze,
}
