"""``python -m node.probe --config FILE [--service NAME]``: this validator's health, for an
orchestrator's probe; exit 0 when SERVING, else 1.

Kubernetes' built-in gRPC probe cannot speak TLS, and the client port speaks nothing else,
so the manifests (devtools/k8s.py) run this as an exec probe inside the container; it is
``ledger-node health`` (node/health.py) under the flags the manifests use. Service ``""``
(liveness): the node runs and has not halted, read from its heartbeat file, not the
network, so anonymous connections filling the client port cannot get a healthy validator
restarted; ``ledger.v1.Ledger`` (readiness): the node's own gRPC health, which also needs a
quorum, asked on its client port trusting only the node's own certificate.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "probe"]


def probe(config_path: str, service: str) -> bool:
    """True when the node of ``config_path`` is SERVING for ``service``."""
    from node import health
    from node.netconfig import load_node_config

    return health.probe(load_node_config(config_path), service) == "SERVING"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m node.probe", description=__doc__)
    p.add_argument("--config", required=True, help="the node's config.json")
    p.add_argument("--service", default="", help="'' (liveness) or ledger.v1.Ledger (readiness)")
    args = p.parse_args(argv)
    try:
        ok = probe(args.config, args.service)
    except (OSError, ValueError) as e:
        print(f"probe: {e}", file=sys.stderr)
        return 1
    print("SERVING" if ok else "NOT_SERVING")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
