"""``ledger-node --config FILE`` (or ``python -m node``): run one validator until SIGTERM
or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import sys

from node import ceremony_cli
from node._version import __version__
from node.keyfiles import KeyFileError
from node.netconfig import ConfigError, load_node_config
from node.settlement import GenesisError
from node.store import StorageError

# What `pip install dvp-ledger` leaves out (pyproject's validator extra) and node.runtime
# needs; named so that a missing one says how to install it instead of a traceback.
VALIDATOR_MODULES = frozenset({"lmdb", "grpc_health", "grpc_reflection", "prometheus_client"})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ledger-node",
        description="Run one validator of the DvP settlement ledger (consensus, settlement, "
        "LMDB, gRPC peer and client ports, Prometheus metrics); also python -m node.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--config", required=True, help="node config JSON (written by make genesis)")
    p.epilog = "the genesis ceremony: ledger-node keygen | genesis assemble|verify | config --help"
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ceremony_cli.COMMANDS:  # ceremony: keygen, genesis, config
        return ceremony_cli.main(argv)
    args = _parser().parse_args(argv)
    try:
        # Imported here, not at the top: --version and --help work on an SDK-only install.
        from node.runtime import StartupError, run, setup_logging
    except ModuleNotFoundError as e:
        if e.name not in VALIDATOR_MODULES:
            raise
        print(
            f"node: cannot start: {e.name} is missing: the validator needs "
            "pip install 'dvp-ledger[validator]'",
            file=sys.stderr,
        )
        return 2
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
