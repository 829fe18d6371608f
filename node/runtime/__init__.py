"""The validator process: consensus core + settlement + LMDB + gRPC transport and API.

``node/core`` and ``node/settlement`` stay pure; everything that touches the network, the
disk or the clock lives here. See docs/cluster.md for ports, security and operations.
"""

from node.runtime._logs import event, setup_logging
from node.runtime._metrics import Metrics
from node.runtime._node import Node, wall_ms
from node.runtime._server import StartupError, run
from node.runtime._source import StoreSource

__all__ = [
    "Metrics",
    "Node",
    "StartupError",
    "StoreSource",
    "event",
    "run",
    "setup_logging",
    "wall_ms",
]
