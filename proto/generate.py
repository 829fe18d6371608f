"""Generate the protobuf and gRPC Python code of proto/ledger/v1/*.proto.

Two files (ADR 0020): ledger.proto, the clients' public API (``node.wire.ledger_pb2``), and
peer.proto, the validators' Peer service (``node.wire.peer_pb2``), which the SDK never
imports.

The one place that runs protoc: the build hook in setup.py calls ``generate`` for every
wheel (so a wheel or an sdist built from a fresh clone carries code made from the proto it
ships), and ``make setup`` runs this file for the checkout (``python proto/generate.py``).
The generated files are not committed: every part of the project appends to ledger.proto,
and a committed descriptor (one long line) would conflict on every merge.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = Path("proto/ledger/v1")  # relative to ROOT, as protoc's -I maps it
PROTOS = ("ledger.proto", "peer.proto")
# What protoc writes for them, under OUT/node/wire/.
GENERATED = tuple(
    f"{Path(p).stem}{suffix}" for p in PROTOS for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
)


class ProtocError(RuntimeError):
    """protoc refused the proto file (its message says why)."""


def generate(out: Path, root: Path = ROOT) -> list[Path]:
    """Write node/wire/*_pb2*.py(i) under ``out`` from ``root``/proto; return them."""
    from grpc_tools import protoc  # a build-time dependency only (pyproject build-system)

    protos = [root / PROTO_DIR / p for p in PROTOS]
    include = f"-Inode/wire={root / PROTO_DIR}"  # so the code imports `from node.wire ...`
    args = ["protoc", include, f"--python_out={out}", f"--grpc_python_out={out}"]
    args += [f"--pyi_out={out}", *map(str, protos)]
    if protoc.main(args) != 0:
        raise ProtocError(f"protoc failed on {', '.join(PROTOS)}")
    return [out / "node" / "wire" / name for name in GENERATED]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(path)
