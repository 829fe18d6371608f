"""The consensus codec on the hot path: encode and decode of a proposal and of a QC.

A leader encodes one proposal per block and every validator decodes it; every validator
encodes and decodes certificates on each phase. This prints the cost of each, in
microseconds of CPU time per call (the best of ``--repeat`` rounds of ``--number`` calls, so the
figure is the codec's and not the machine's other load), to compare two versions of
``node/core`` on one machine:

    .venv/bin/python -m devtools.bench.codec [--txs 100] [--signatures 16]

Decoding a proposal rebuilds its block, whose hash needs the Merkle root of its
transactions (``--txs`` leaf hashes): that cost is the protocol's, not the codec's, so
it is printed apart ("block rebuild") and subtracted from nothing. A certificate keeps
its bytes once encoded, so "encode new QC" (a fresh certificate, its construction
included) and "encode QC again" (one already sent or stored) are printed apart.
"""

from __future__ import annotations

import argparse
import time
import timeit
from collections.abc import Callable

from node.core import (
    Block,
    Phase,
    Proposal,
    QCMessage,
    QuorumCert,
    decode_message,
    decode_qc,
    encode_message,
    encode_qc,
)

__all__ = ["main"]

_TX_BYTES = 300  # a signed DvP envelope with two signatures is about this long


def _sample(txs: int, signatures: int) -> tuple[Proposal, QuorumCert]:
    qc = QuorumCert(
        Phase.COMMIT,
        41,
        9,
        bytes(range(32)),
        tuple((i, bytes([i]) * 64) for i in range(signatures)),
    )
    payload = tuple(i.to_bytes(4, "big") * (_TX_BYTES // 4) for i in range(txs))
    block = Block(
        "bench-chain", 10, 42, bytes(32), 1, 1_700_000_000_000, 9, bytes(32), bytes(32), payload, 41
    )
    return Proposal(42, block, qc, None), qc


def _best_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    # CPU time, not wall time: the machine is shared, and waiting for a core is not cost.
    t = timeit.repeat(fn, number=number, repeat=repeat, timer=time.process_time)
    return min(t) / number * 1e6


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m devtools.bench.codec", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--txs", type=int, default=100, help="transactions in the proposal's block")
    ap.add_argument("--signatures", type=int, default=16, help="signatures in the QC")
    ap.add_argument("--number", type=int, default=200, help="calls per round")
    ap.add_argument("--repeat", type=int, default=15, help="rounds; the best is printed")
    a = ap.parse_args(argv)
    proposal, qc = _sample(a.txs, a.signatures)
    wire, qc_bytes, qc_msg = encode_message(proposal), encode_qc(qc), encode_message(QCMessage(qc))
    b = proposal.block
    fields = (qc.phase, qc.view, qc.height, qc.block_hash, qc.signatures)
    cases: list[tuple[str, Callable[[], object]]] = [
        (f"encode proposal ({a.txs} txs)", lambda: encode_message(proposal)),
        (f"decode proposal ({a.txs} txs)", lambda: decode_message(wire)),
        (
            "  of which block rebuild",
            lambda: Block(
                b.chain_id,
                b.height,
                b.view,
                b.parent_hash,
                b.proposer,
                b.time_ms,
                b.executed_height,
                b.state_root,
                b.results_root,
                b.txs,
                b.parent_view,
            ),
        ),
        (f"encode new QC ({a.signatures} sigs)", lambda: encode_qc(QuorumCert(*fields))),
        ("  of which QuorumCert()", lambda: QuorumCert(*fields)),
        (f"encode QC again ({a.signatures} sigs)", lambda: encode_qc(qc)),
        (f"decode QC ({a.signatures} sigs)", lambda: decode_qc(qc_bytes)),
        ("encode QCMessage, new QC", lambda: encode_message(QCMessage(QuorumCert(*fields)))),
        ("encode QCMessage again", lambda: encode_message(QCMessage(qc))),
        ("decode QCMessage", lambda: decode_message(qc_msg)),
    ]
    print(f"proposal {len(wire)} bytes, QC {len(qc_bytes)} bytes; us per call, best of {a.repeat}")
    for name, fn in cases:
        print(f"{name:32s} {_best_us(fn, a.number, a.repeat):9.2f}")


if __name__ == "__main__":
    main()
