"""What every ``ledger`` command shares: its error, exit codes, tables and JSON output.

Amounts are integers in minor units everywhere (the ledger has no floats); tables group
their digits with commas for reading, JSON keeps the bare integers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "CliError",
    "amount",
    "emit_json",
    "table",
    "timestamp",
]

PROG = "ledger"
EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed: refused trade, invalid receipt, no node reachable
EXIT_USAGE = 2  # bad arguments, no run directory

# The help of a command group that several parts fill (``_Builder.group`` keeps the first
# text it is given), so that each part names the group the same way.
ATTEST_HELP = "attest custody of a bond, the reserves of a cash token or a price of collateral"
REPO_HELP = 'repurchase agreements: open, close, list, margin, substitute (docs/ledger.md "Repo")'
REPORT_HELP = "reports: settlement over a range of blocks, custody, reserves, repo exposure"


class CliError(Exception):
    """A failure the command reports in one line and turns into an exit code."""

    def __init__(self, reason: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(reason)
        self.exit_code = exit_code


def amount(value: int) -> str:
    """``1234567`` -> ``"1,234,567"``: an integer, grouped (never a float)."""
    return f"{value:,}"


def timestamp(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC with milliseconds."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    right: Sequence[int] = (),
    out: TextIO | None = None,
) -> None:
    """Print ``rows`` under ``headers``, columns padded; column indexes in ``right`` are
    right-aligned (numbers)."""
    out = out or sys.stdout
    cells = [[str(c) for c in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        parts = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        print("  ".join(parts).rstrip(), file=out)


def emit_json(doc: Any, out: TextIO | None = None) -> None:
    print(json.dumps(doc, indent=2, sort_keys=False), file=out or sys.stdout)
