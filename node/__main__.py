"""``python -m node --config FILE``: run one validator until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import sys

from node.netconfig import ConfigError, load_node_config
from node.netgen import KeyFileError
from node.runtime import StartupError, run, setup_logging
from node.settlement import GenesisError
from node.store import StorageError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m node",
        description="Run one validator of the DvP settlement ledger (consensus, settlement, "
        "LMDB, gRPC peer and client ports, Prometheus metrics).",
    )
    p.add_argument("--config", required=True, help="node config JSON (written by make genesis)")
    args = p.parse_args(argv)
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
