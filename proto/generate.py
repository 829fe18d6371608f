"""Generate the protobuf and gRPC Python code of proto/ledger/v1/ledger.proto.

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
PROTO = Path("proto/ledger/v1/ledger.proto")  # relative to ROOT, as protoc's -I maps it
# What protoc writes for ledger.proto, under OUT/node/wire/.
GENERATED = ("ledger_pb2.py", "ledger_pb2.pyi", "ledger_pb2_grpc.py")


class ProtocError(RuntimeError):
    """protoc refused the proto file (its message says why)."""


def generate(out: Path, root: Path = ROOT) -> list[Path]:
    """Write node/wire/ledger_pb2*.py(i) under ``out`` from ``root``/proto; return them."""
    from grpc_tools import protoc  # a build-time dependency only (pyproject build-system)

    proto = root / PROTO
    include = f"-Inode/wire={proto.parent}"  # so the code imports `from node.wire import ...`
    args = ["protoc", include, f"--python_out={out}", f"--grpc_python_out={out}"]
    args += [f"--pyi_out={out}", str(proto)]
    if protoc.main(args) != 0:
        raise ProtocError(f"protoc failed on {proto}")
    return [out / "node" / "wire" / name for name in GENERATED]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(path)
