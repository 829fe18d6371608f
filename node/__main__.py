"""``ledger-node`` (or ``python -m node``): the validator's own command.

``ledger-node run --config FILE`` runs one validator until SIGTERM or Ctrl-C (``ledger-node
--config FILE``, without ``run``, still does: the image and local clusters start it so).
``check-config CONFIG`` checks a node's config, keys and ports before it starts;
``health CONFIG`` probes a running node (docs/cluster.md). Each subcommand is a module
with ``register(subparsers)``, listed once in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from typing import TypeAlias

from node import ceremony_cli, check_config, health
from node._code import code_digest
from node._version import __version__
from node.keyfiles import KeyFileError
from node.netconfig import ConfigError, load_node_config
from node.settlement import GenesisError
from node.store import StorageError

# What `pip install dvp-ledger` leaves out (pyproject's validator extra) and node.runtime
# needs; named so that a missing one says how to install it instead of a traceback.
VALIDATOR_MODULES = frozenset({"lmdb", "grpc_health", "grpc_reflection", "prometheus_client"})


# The words of a refusal: "node: cannot start: ..." is what operators and tests know.
_VERB = {"run": "start"}
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _register_run(sub: Subparsers) -> None:
    p = sub.add_parser(
        "run",
        help="run one validator until SIGTERM or Ctrl-C",
        description="Run one validator of the DvP settlement ledger (consensus, settlement, "
        "LMDB, gRPC peer and client ports, Prometheus metrics).",
    )
    p.add_argument("--config", required=True, help="node config JSON (written by make genesis)")
    p.set_defaults(fn=_run)


SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    _register_run,
    check_config.register,
    health.register,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ledger-node",
        description="The validator of the DvP settlement ledger; also python -m node.",
    )
    p.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__} (code {code_digest()})"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(sub)
    p.epilog = "the genesis ceremony: ledger-node keygen | genesis assemble|verify | config --help"
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ceremony_cli.COMMANDS:  # ceremony: keygen, genesis, config
        return ceremony_cli.main(argv)
    if argv and argv[0].startswith("--config"):  # the invocation from before subcommands
        argv.insert(0, "run")
    args = _parser().parse_args(argv)
    try:
        code: int = args.fn(args)
    except ModuleNotFoundError as e:
        if e.name not in VALIDATOR_MODULES:
            raise
        print(
            f"node: cannot {_VERB.get(args.command, args.command)}: {e.name} is missing: "
            "the validator needs pip install 'dvp-ledger[validator]'",
            file=sys.stderr,
        )
        return 2
    return code


# gRPC core writes a line on stderr, between the node's JSON lines, for every connection
# that fails its TLS handshake: anyone who reaches a port wrote 336 KB of log a second
# that way (review 36s). Only its errors, unless the operator asks for more.
GRPC_VERBOSITY = "ERROR"


def _run(args: argparse.Namespace) -> int:
    # Read once, when grpc is first imported: so before it (the import just below).
    os.environ.setdefault("GRPC_VERBOSITY", GRPC_VERBOSITY)
    # Imported here, not at the top: --version and --help work on an SDK-only install.
    from node.runtime import StartupError, run, setup_logging

    try:
        cfg = load_node_config(args.config)
        setup_logging(f"node-{cfg.validator:02d}", cfg.log_level)
        return asyncio.run(run(cfg))
    except (ConfigError, GenesisError, KeyFileError, StartupError, StorageError, OSError) as e:
        print(f"node: cannot start: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
