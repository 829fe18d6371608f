"""``make demo CONSOLE=1`` (issue 17): after the demo, keep the cluster up with the browser
console on it, and keep settling a trade a second so the pages move, until Ctrl-C.

The trades rotate through the demo banks and bonds; every ``REFUSED_EVERY``-th asks for
more bonds than its seller holds, so the Fails page shows a refusal with its code too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from client import LedgerError
from client.console import serve
from node.genesis import DemoNetwork

if TYPE_CHECKING:  # devtools.demo.run imports this module, so only for the annotations
    from devtools.demo.run import ValidatorClients

__all__ = ["CONSOLE_HELP", "REFUSED_EVERY", "TRICKLE_S", "console_or_hint", "keep_up"]

TRICKLE_S = 1.0  # one trade a second: visible, and nothing a laptop notices
REFUSED_EVERY = 10  # one trade in ten is refused (INSUFFICIENT_SECURITIES)
TOO_MANY = 10**15  # bond units no demo bank holds


CONSOLE_HELP = (
    "then keep the cluster up with the browser console on loopback PORT, settling a trade "
    "a second, until Ctrl-C (make demo CONSOLE=1)"
)


def console_or_hint(run_dir: Path, port: int | None) -> None:
    """With a port, the console until Ctrl-C; without, a line saying how to get it."""
    if port is None:
        print("\nsee it in a browser: make demo CONSOLE=1 (or ledger console on a running cluster)")
        return
    from devtools.demo.run import (
        load_run_network,  # at run time: devtools.demo.run imports this module
    )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(keep_up(run_dir, load_run_network(run_dir), port))


async def keep_up(
    run_dir: Path,
    demo: DemoNetwork,
    port: int,
    *,
    stop: asyncio.Event | None = None,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Serve the console on loopback ``port`` and trickle trades until ``stop`` is set
    (Ctrl-C when run from the demo); returns how many trades were submitted."""
    from devtools.demo.run import (
        ValidatorClients,  # at run time: devtools.demo.run imports this module
    )

    stop = stop or asyncio.Event()
    listening = asyncio.Event()

    def shown(url: str) -> None:
        print(f"\nconsole: {url}  (the cluster keeps settling a trade a second; Ctrl-C stops)")
        listening.set()
        if ready is not None:
            ready(url)

    server = asyncio.create_task(serve(run_dir, port=port, ready=shown, stop=stop))
    clients = ValidatorClients(run_dir)
    sent = 0
    try:
        await listening.wait()
        while not stop.is_set():
            await _one_trade(clients, demo, sent)
            sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TRICKLE_S)
    finally:
        stop.set()
        await clients.close()
        await server
    return sent


async def _one_trade(clients: ValidatorClients, demo: DemoNetwork, k: int) -> None:
    banks = demo.banks
    seller, buyer = banks[k % len(banks)], banks[(k + 1) % len(banks)]
    quantity = TOO_MANY if k % REFUSED_EVERY == REFUSED_EVERY - 1 else 100_00
    # One bond per round of the banks: each buys before it sells, so none runs dry.
    bond = demo.bonds[(k // len(banks)) % len(demo.bonds)]
    raw = clients.trade((seller, buyer, bond, quantity, 99_50), demo.cash)
    try:
        await clients.settle(raw, via=k)
    except LedgerError as e:  # a node down meanwhile: the console shows it; go on
        print(f"console demo: trade {k}: {e}")
