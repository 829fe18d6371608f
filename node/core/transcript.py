"""Readable transcripts of what an :class:`~node.core.engine.Engine` did (etcd raft's
datadriven tests are the model): one line per input, indented lines for the decisions it
led to. A failing simulator seed writes the transcripts of its nodes to a file, and the
golden files under ``tests/unit/golden/`` pin short hand-written scenarios line by line.

    n0 t=5 tick
    n0   persist proposed=0 prepare=-1 commit=-1 timeout=-1 lock=-
    n0   send 1 Proposal(v0 h1 #3f2a1c by 0, 1 txs)
    n1 t=9 step from 0: Proposal(v0 h1 #3f2a1c by 0, 1 txs)
    n1   refused 'proposal breaks a voting rule' +1

Inputs are ``step from SRC`` (SRC is the node itself for a loopback message), ``tick``,
``submit`` with the mempool's answer and ``peer_height``; decisions are ``persist`` (the
views of the safety state made durable), ``send DST``, ``commit`` (with the roots the
execution reported) and ``refused`` (what ``Replica.refused`` gained, by key, whatever the
key is). The last ``TRANSCRIPT_LINES_MAX`` lines are kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from node.config import TRANSCRIPT_LINES_MAX
from node.core.engine import Observer
from node.core.mempool import AddResult, tx_key
from node.core.replica import Replica
from node.core.safety import SafetyState
from node.core.types import (
    Block,
    Message,
    NewView,
    Proposal,
    QCMessage,
    QuorumCert,
    SyncRequest,
    SyncResponse,
    Timeout,
    TimeoutCert,
    TxForward,
    Vote,
)

__all__ = ["Transcript", "describe"]


def _h(digest: bytes) -> str:
    return "#" + digest.hex()[:6]


def _qc(qc: QuorumCert | None) -> str:
    if qc is None:
        return "-"
    return f"{qc.phase.name}QC(v{qc.view} h{qc.height} {_h(qc.block_hash)} x{len(qc.signatures)})"


def _tc(tc: TimeoutCert) -> str:
    proofs = f"commit={_qc(tc.high_commit)} lock={_qc(tc.high_lock)}"
    return f"TC(v{tc.view} x{len(tc.entries)} {proofs})"


def _block(b: Block) -> str:
    return f"h{b.height} {_h(b.hash)} by {b.proposer}, {len(b.txs)} txs"


def describe(msg: Message) -> str:
    """A message in one short line: kind, view, height, block, sender, proofs."""
    match msg:
        case Proposal():
            tc = "" if msg.tc is None else " " + _tc(msg.tc)
            return f"Proposal(v{msg.view} {_block(msg.block)}, parent={_qc(msg.parent_cert)}{tc})"
        case Vote():
            what = f"{msg.phase.name} v{msg.view} h{msg.height} {_h(msg.block_hash)}"
            return f"Vote({what} by {msg.voter})"
        case QCMessage():
            return _qc(msg.qc)
        case Timeout():
            return (
                f"Timeout(v{msg.view} by {msg.voter} committed=h{msg.committed_height} "
                f"lock={_qc(msg.high_pqc)})"
            )
        case NewView():
            return f"NewView({_tc(msg.tc)})"
        case TxForward():
            return f"TxForward({len(msg.txs)} txs)"
        case SyncRequest():
            return f"SyncRequest(from h{msg.from_height}, {msg.count} blocks)"
        case SyncResponse():
            heights = [b.height for b, _ in msg.blocks]
            span = f"h{heights[0]}..h{heights[-1]}" if heights else "none"
            return f"SyncResponse({span})"
    return type(msg).__name__


def _key(key: Hashable) -> str:
    if isinstance(key, tuple):
        return "/".join(str(part) for part in key)
    return repr(key) if isinstance(key, str) else str(key)


class Transcript(Observer):
    """Records one engine's inputs and decisions as lines (see the module docstring).

    ``out`` may be shared by the transcripts of several nodes, so a scenario reads in the
    order things happened; each line starts with ``label``; times print as ``now_ms``
    less ``t0_ms``."""

    def __init__(
        self,
        replica: Replica,
        label: str = "",
        out: deque[str] | None = None,
        lines_max: int = TRANSCRIPT_LINES_MAX,
        t0_ms: int = 0,
    ) -> None:
        self.replica = replica
        self.label = label
        self.t0_ms = t0_ms  # times print as offsets from this
        self.lines: deque[str] = out if out is not None else deque(maxlen=lines_max)
        self._refused: dict[Hashable, int] = dict(replica.refused.items())

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)

    def _t(self, now_ms: int | None) -> str:
        return "-" if now_ms is None else str(now_ms - self.t0_ms)

    def _add(self, line: str, *, decision: bool = True) -> None:
        self._refusals()
        self.lines.append(f"{self.label}{'  ' if decision else ''}{line}")

    def _refusals(self) -> None:
        """What the replica refused since the last line (it refuses inside ``step``)."""
        now = self.replica.refused
        if now == self._refused:
            return
        for key, count in sorted(now.items(), key=lambda kv: _key(kv[0])):
            grown = count - self._refused.get(key, 0)
            if grown > 0:
                self.lines.append(f"{self.label}  refused {_key(key)} +{grown}")
        self._refused = dict(now.items())

    def on_step(self, src: int, msg: Message, now_ms: int | None) -> None:
        self._add(f"t={self._t(now_ms)} step from {src}: {describe(msg)}", decision=False)

    def on_tick(self, now_ms: int) -> None:
        self._add(f"t={self._t(now_ms)} tick", decision=False)

    def on_submit(self, raw: bytes, result: AddResult, now_ms: int | None) -> None:
        self._add(f"t={self._t(now_ms)} submit {_h(tx_key(raw))}: {result.name}", decision=False)

    def on_peer_height(self, peer: int, height: int, now_ms: int | None) -> None:
        self._add(f"t={self._t(now_ms)} peer_height {peer} at h{height}", decision=False)

    def on_persist(self, data: bytes) -> None:
        s = SafetyState.decode(data)
        lock = "-" if s.high_pqc is None else f"v{s.high_pqc.view} h{s.high_pqc.height}"
        self._add(
            f"persist proposed={s.proposed_view} prepare={s.prepare_view} "
            f"commit={s.commit_view} timeout={s.timeout_view} lock={lock}"
        )

    def on_send(self, dst: int, msg: Message) -> None:
        self._add(f"send {dst} {describe(msg)}")

    def on_commit(self, block: Block, cert: QuorumCert, roots: tuple[bytes, bytes]) -> None:
        self._add(
            f"commit {_block(block)} cert={_qc(cert)} state={_h(roots[0])} results={_h(roots[1])}"
        )

    def on_speculate(self, block: Block, roots: tuple[bytes, bytes]) -> None:
        self._add(f"speculate {_block(block)} state={_h(roots[0])} results={_h(roots[1])}")

    def on_drained(self) -> None:
        self._refusals()
