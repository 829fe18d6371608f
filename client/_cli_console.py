"""``ledger console``: serve the browser console (client/console/) until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import sys

from client._cli_common import EXIT_OK, EXIT_USAGE, CliError

__all__ = ["HELP", "console_options", "run"]


def run(args: argparse.Namespace) -> int:
    from client import _cli_net

    try:
        from client.console import is_loopback, serve
    except ModuleNotFoundError as e:  # the console extra is not installed
        raise CliError(
            f"ledger console needs {e.name}: pip install 'dvp-ledger[console]'", EXIT_USAGE
        ) from e

    run_dir = _cli_net._run_dir(args)
    if not (run_dir / "network.json").is_file():
        raise CliError(
            f"no network in run directory {run_dir} (pass --run-dir or set LEDGER_RUN_DIR; "
            "`make genesis` or `make cluster` makes one)",
            EXIT_USAGE,
        )
    key = _cli_net._identity(args, None)  # --as, else the operator (AUDITOR)
    if not is_loopback(args.host):
        print(f"console: serving on {args.host}, not loopback: anyone who reaches it reads "
              f"what {key.participant} may read", file=sys.stderr)  # fmt: skip

    def ready(url: str) -> None:
        print(f"console: {url} (reading as {key.participant}; Ctrl-C stops)", flush=True)

    try:
        names = frozenset(args.allow_host or ())
        served = serve(run_dir, host=args.host, port=args.port, identity=key, ready=ready,
                       allowed_hosts=names, observer=args.observer)  # fmt: skip
        asyncio.run(served)
    except OSError as e:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    except KeyboardInterrupt:
        print("console: stopped", file=sys.stderr)
    return EXIT_OK


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0..65535; 0: any free one)")
    return int(text)


HELP = (
    "serve the settlement console in the browser (network, blocks and trades, positions, "
    "fails; live) on loopback until Ctrl-C"
)


def console_options() -> argparse.ArgumentParser:
    """``--port`` and ``--host`` (a parent parser for the ``console`` command)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0: a free one)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, loopback only; anything else serves "
        "what the identity may read to whoever reaches it)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="a host name the browser may reach the console by (repeatable); by default it "
        "answers to IP addresses and localhost only, so no page of another site can read it "
        "through a name pointed at this machine (DNS rebinding)",
    )
    return p
