"""``ledger console``: a settlement console in the browser, built on the SDK.

Pages: Network (validators, quorum, finality and throughput), Blocks and trades (live,
a block's certificate signers, a trade's legs and receipt, verified offline here),
Positions and Fails. See docs/console.md.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from client._async import AsyncLedgerClient
from client._keys import ParticipantKey
from client.console._model import ConsoleModel
from client.console._server import ConsoleServer, Hub
from node.netconfig import OPERATOR_IDENTITY, is_ip

__all__ = ["ConsoleModel", "ConsoleServer", "Hub", "is_loopback", "serve"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(
    run_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    identity: str | ParticipantKey | None = None,
    ready: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
    allowed_hosts: frozenset[str] = frozenset(),
    observer: bool = False,
) -> None:
    """Serve the console of the network in ``run_dir`` as ``identity`` (default the
    operator, ``AUDITOR``) until ``stop`` is set (or forever); ``ready(url)`` is called
    once it listens (port 0: a free port). It answers to an IP address, ``localhost`` and
    ``allowed_hosts`` (host names) in the ``Host`` header only (``host_refusal``).
    ``observer``: as the client's (the identity observes: no filtered block is taken)."""
    if not is_ip(host) and host != "localhost":
        allowed_hosts |= {host}  # the name it was told to listen on
    client = AsyncLedgerClient.from_run_dir(
        run_dir, identity=identity or OPERATOR_IDENTITY, observer=observer
    )
    server = ConsoleServer(client, allowed_hosts=allowed_hosts)
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        ready(f"http://{shown}:{bound}/")
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
