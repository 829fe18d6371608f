"""A slow leader for cluster tests: validator k's real process with one change (modified
code with its legitimate keys: DOMAIN.md).

``python -m tests.cluster.slow_leader --hold-ms MS --config FILE`` runs ``ledger-node``
(``node.__main__``) with ``Node._send`` wrapped: a fresh proposal of its own (it is the
block's proposer) goes to each peer ``MS`` later. With ``--withhold-commit`` instead, the
commit certificates it forms as a view's leader go to no peer (it commits on its own),
so the next leader, honest, waits for a certificate that never comes. Everything else
leaves as it would: it votes, times out and forwards as an honest validator does, so
only the views it leads (and, withholding, the views after them) are slow.
docs/consensus.md "Slow leaders" says what honest validators do about it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from node.core import Message, Phase, Proposal, QCMessage
from node.runtime._node import Node


def hold_proposals(hold_ms: int) -> None:
    send = Node._send

    def slow_send(self: Node, dst: int, msg: Message) -> None:
        own = isinstance(msg, Proposal) and msg.block.proposer == self.index
        if own and dst != self.index:
            asyncio.get_running_loop().call_later(hold_ms / 1000, send, self, dst, msg)
        else:
            send(self, dst, msg)

    Node._send = slow_send  # type: ignore[method-assign]


def withhold_commit_certificates() -> None:
    send = Node._send

    def withholding_send(self: Node, dst: int, msg: Message) -> None:
        formed = (
            isinstance(msg, QCMessage)
            and msg.qc.phase is Phase.COMMIT
            and self.replica.leader(msg.qc.view) == self.index
        )
        if not formed or dst == self.index:
            send(self, dst, msg)

    Node._send = withholding_send  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.cluster.slow_leader", description=__doc__)
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--hold-ms", type=int, help="how late its proposals leave")
    how.add_argument(
        "--withhold-commit", action="store_true", help="send no commit certificate it forms"
    )
    ap.add_argument("--config", required=True, help="the validator's node config")
    args = ap.parse_args(argv)
    if args.withhold_commit:
        withhold_commit_certificates()
    else:
        hold_proposals(args.hold_ms)
    from node.__main__ import main as node_main

    return node_main(["run", "--config", args.config])


if __name__ == "__main__":
    sys.exit(main())
