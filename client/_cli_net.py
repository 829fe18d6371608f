"""The ``ledger`` commands that talk to the nodes, through the SDK's LedgerClient."""

from __future__ import annotations

import argparse

from client._cli_common import CliError

__all__ = ["run"]


def run(name: str, args: argparse.Namespace) -> int:
    raise CliError(f"{name}: not wired yet")
