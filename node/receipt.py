"""Receipts, and their verification offline against genesis alone (ADR 0005).

Validators build them (``node.runtime``) and the SDK checks them; ``client`` re-exports
``Receipt``, ``verify_receipt`` and ``InvalidReceiptError`` as its public API.

A receipt proves two things, each with a commit certificate (q signatures by distinct
validators of the genesis set over a block hash) and an RFC 6962 Merkle path:

- **inclusion and finality**: the transaction is leaf ``position`` of the transactions
  root in the header of block ``height``, and that block is committed;
- **the result**: the header of block ``height + 1`` (whose parent is block ``height``)
  carries the Merkle root of block ``height``'s results, and the result is leaf
  ``position`` of it. Blocks execute after they commit, so only the next block can
  certify a result; the node adds this proof once that block is committed.

A pending DvP (ADR 0014) is recorded ``PENDING_SETTLEMENT``; its later outcome (settled,
partly settled, failed at its deadline, cancelled) is an *event* leaf in the results of
a later block. Its receipt may carry an :class:`EventProof` of the latest event, checked
the same way against that block's certified successor.

One result per id (ADR 0007): a block may hold several copies carrying one id (a forged
signature on somebody's body, a replayed duplicate, a body signed with a key governance
rotated out), each with a result, but only the copy recorded under the id (its first
authentic one) has a leaf tagged as the id's outcome. A receipt is checked against that
tag, so a node cannot pass off the refusal of another copy as the outcome of the id.

Only the result proof speaks for the id (ADR 0024). A receipt without it (``final`` is
False) proves only that *this copy* is included in a committed block: whether the ledger
recorded the id, and with which code, is the node's word until the next block certifies
it. Offline there is only genesis, which cannot tell which keys governance rotated.

:func:`verify_receipt` trusts nothing in the receipt but what these checks establish.

A party-filtered block (ADR 0025) carries, besides its receipts, the proof of which
positions the block's party index lists for the caller: :func:`verify_party_positions`
checks it against the results root the next block certifies, the same way.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node import crypto, merkle
from node.config import CERTIFICATES_CACHED_MAX
from node.core import BlockHeader, DecodeError, Phase, QuorumCert, decode_header, decode_qc
from node.core.types import vote_message
from node.genesis import load_genesis
from node.settlement import DecodeError as TxDecodeError
from node.settlement import (
    Genesis,
    PartyProofError,
    ResultCode,
    SignedTx,
    TxResult,
    decode_party_proof,
    decode_result_code,
    result_leaf,
    tx_id,
)
from node.wire import ledger_pb2 as pb

__all__ = [
    "CertificateCache",
    "EventProof",
    "InvalidReceiptError",
    "Receipt",
    "ResultProof",
    "verify_block_results",
    "verify_party_positions",
    "verify_receipt",
]

_FORMAT = "dvp-ledger/receipt/v1"


class InvalidReceiptError(ValueError):
    """The receipt does not prove what it claims; the message says which check failed."""


@dataclass(frozen=True, slots=True)
class ResultProof:
    """Block ``height + 1``'s header and commit certificate, and the result's Merkle path.
    ``leaf_count``: leaves of that results tree (transactions, pending-settlement events
    (ADR 0014), then the party index's root (ADR 0025)); 0 means no events: the block's
    transaction count plus one."""

    header: bytes
    certificate: bytes
    path: tuple[bytes, ...]
    leaf_count: int = 0

    def to_pb(self) -> pb.ResultProof:
        return pb.ResultProof(
            header=self.header,
            certificate=self.certificate,
            path=self.path,
            leaf_count=self.leaf_count,
        )

    @classmethod
    def from_pb(cls, p: pb.ResultProof) -> ResultProof:
        return cls(bytes(p.header), bytes(p.certificate), tuple(p.path), p.leaf_count)


@dataclass(frozen=True, slots=True)
class EventProof:
    """A pending instruction's event ``code`` at leaf ``index`` of block ``height``'s
    ``leaf_count`` results, proven by block ``height + 1``'s header and certificate."""

    code: ResultCode
    height: int
    index: int
    leaf_count: int
    header: bytes
    certificate: bytes
    path: tuple[bytes, ...]

    def to_pb(self) -> pb.EventProof:
        return pb.EventProof(
            code=int(self.code),  # type: ignore[arg-type]
            height=self.height,
            index=self.index,
            leaf_count=self.leaf_count,
            header=self.header,
            certificate=self.certificate,
            path=self.path,
        )

    @classmethod
    def from_pb(cls, e: pb.EventProof) -> EventProof:
        return cls(
            _result_code(e.code),
            e.height,
            e.index,
            e.leaf_count,
            bytes(e.header),
            bytes(e.certificate),
            tuple(e.path),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code.name,
            "height": self.height,
            "index": self.index,
            "leaf_count": self.leaf_count,
            "header": _b64(self.header),
            "certificate": _b64(self.certificate),
            "path": [h.hex() for h in self.path],
        }

    @classmethod
    def from_json(cls, d: Any) -> EventProof:
        return cls(
            ResultCode[d["code"]],
            int(d["height"]),
            int(d["index"]),
            int(d["leaf_count"]),
            _unb64(d["header"]),
            _unb64(d["certificate"]),
            tuple(bytes.fromhex(h) for h in d["path"]),
        )


def _result_code(value: int) -> ResultCode:
    return decode_result_code(value, InvalidReceiptError)


# A pending instruction's outcomes that end it (PARTIALLY_SETTLED does not); the rules in
# force at settlement may refuse it (COSIGN_REQUIRED, TRADE_LIMIT: session 31).
_FINAL_EVENTS = frozenset(
    {
        ResultCode.OK,
        ResultCode.FAILED_DEADLINE,
        ResultCode.CANCELLED,
        ResultCode.MATURED,
        ResultCode.COSIGN_REQUIRED,
        ResultCode.TRADE_LIMIT,
    }
)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof that a transaction is final with a given result (see :func:`verify_receipt`).

    ``code`` is the settlement result: ``ResultCode.OK`` when the trade settled; any other
    code means the ledger recorded the transaction as refused, and changed nothing else.
    ``result_proof`` is None until the next block is committed: such a receipt is not
    ``final`` and proves only that this copy of the transaction is in a committed block
    (``verify_receipt`` checks that only if asked to). For a pending DvP (``code`` is
    ``PENDING_SETTLEMENT``), ``event_proof`` proves its latest later outcome once a block
    certifies it; ``outcome`` is then that event's code.
    """

    tx_id: bytes
    code: ResultCode
    height: int
    position: int
    block_hash: bytes
    block_time_ms: int
    certificate: bytes
    block_header: bytes
    transaction: bytes
    tx_path: tuple[bytes, ...]
    result_proof: ResultProof | None
    event_proof: EventProof | None = None

    @property
    def final(self) -> bool:
        """The receipt speaks for its id: it carries the result proof, so once verified it
        proves the ledger recorded ``tx_id`` final with ``code`` (ADR 0024). False: verified,
        it proves only that this copy is included in a committed block; a copy the ledger
        refused and never recorded under the id (signed with a key governance rotated out,
        a forgery, a replay) is included too, and ``code`` is the node's word."""
        return self.result_proof is not None

    @property
    def ok(self) -> bool:
        """The trade settled: ``OK`` at once, or later by a proven event (proven only when
        ``final``; without the result proof ``code`` is the node's word)."""
        return self.outcome is ResultCode.OK

    @property
    def outcome(self) -> ResultCode:
        """The latest proven outcome: the event's code if there is one, else ``code``."""
        return self.code if self.event_proof is None else self.event_proof.code

    @property
    def waiting(self) -> bool:
        """A pending DvP without its final event yet (it may still settle)."""
        return self.code is ResultCode.PENDING_SETTLEMENT and (
            self.event_proof is None or self.event_proof.code not in _FINAL_EVENTS
        )

    @property
    def refused(self) -> bool:
        """Final and not settled: a refusal, or a pending DvP that ended unsettled."""
        return not self.ok and not self.waiting

    @property
    def meaning(self) -> str:
        return self.code.meaning

    @property
    def signers(self) -> tuple[int, ...]:
        """Indexes (in the genesis validator list) of the validators that certified it."""
        return tuple(i for i, _ in decode_qc(self.certificate).signatures)

    # --- wire and file formats ----------------------------------------------------------

    @classmethod
    def from_pb(cls, r: pb.Receipt) -> Receipt:
        proof = None
        if r.HasField("result_proof"):
            proof = ResultProof.from_pb(r.result_proof)
        event = EventProof.from_pb(r.event_proof) if r.HasField("event_proof") else None
        code = _result_code(r.code)
        return cls(
            tx_id=bytes(r.tx_id),
            code=code,
            height=r.height,
            position=r.position,
            block_hash=bytes(r.block_hash),
            block_time_ms=r.block_time_ms,
            certificate=bytes(r.certificate),
            block_header=bytes(r.block_header),
            transaction=bytes(r.transaction),
            tx_path=tuple(r.tx_path),
            result_proof=proof,
            event_proof=event,
        )

    def to_pb(self) -> pb.Receipt:
        p = self.result_proof
        return pb.Receipt(
            tx_id=self.tx_id,
            code=int(self.code),  # type: ignore[arg-type]
            code_name=self.code.name,
            meaning=self.code.meaning,
            height=self.height,
            block_hash=self.block_hash,
            position=self.position,
            block_time_ms=self.block_time_ms,
            certificate=self.certificate,
            block_header=self.block_header,
            transaction=self.transaction,
            tx_path=self.tx_path,
            result_proof=None if p is None else p.to_pb(),
            event_proof=None if self.event_proof is None else self.event_proof.to_pb(),
        )

    def to_pb_in_block(self) -> pb.Receipt:
        """The receipt as a party-filtered block carries it: only what is its own (id,
        code, position, transaction, its path). The block's height, hash, time, header
        and certificate are the block's, carried once (before, every receipt repeated
        them: a full block's filtered answer outgrew the SDK's cap; ADR 0025, session
        33). No result proof: the filtered block proves results for all of them."""
        return pb.Receipt(
            tx_id=self.tx_id,
            code=int(self.code),  # type: ignore[arg-type]
            position=self.position,
            transaction=self.transaction,
            tx_path=self.tx_path,
        )

    @classmethod
    def from_pb_in_block(
        cls,
        r: pb.Receipt,
        *,
        height: int,
        block_hash: bytes,
        block_time_ms: int,
        certificate: bytes,
        block_header: bytes,
    ) -> Receipt:
        """A receipt of a party-filtered block (``to_pb_in_block``) made whole again with
        that block's fields, which every receipt of it shares (one copy in memory): what
        it repeats of the block is the block's, whatever the receipt says (a node's copy
        of them is not read). Verify it like any other."""
        return cls(
            tx_id=bytes(r.tx_id),
            code=_result_code(r.code),
            height=height,
            position=r.position,
            block_hash=block_hash,
            block_time_ms=block_time_ms,
            certificate=certificate,
            block_header=block_header,
            transaction=bytes(r.transaction),
            tx_path=tuple(r.tx_path),
            result_proof=None,
        )

    def to_bytes(self) -> bytes:
        """The protobuf encoding (compact, what the node sends)."""
        return self.to_pb().SerializeToString()

    @classmethod
    def from_bytes(cls, data: bytes) -> Receipt:
        msg = pb.Receipt()
        try:
            msg.ParseFromString(data)
        except Exception as e:  # protobuf raises its own DecodeError
            raise InvalidReceiptError(f"not a protobuf receipt: {e}") from e
        return cls.from_pb(msg)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: readable fields in hex, proof bytes in base64."""
        p = self.result_proof
        return {
            "format": _FORMAT,
            "tx_id": self.tx_id.hex(),
            "code": self.code.name,
            "meaning": self.code.meaning,
            "height": self.height,
            "position": self.position,
            "block_hash": self.block_hash.hex(),
            "block_time_ms": self.block_time_ms,
            "certificate": _b64(self.certificate),
            "block_header": _b64(self.block_header),
            "transaction": _b64(self.transaction),
            "tx_path": [h.hex() for h in self.tx_path],
            "result_proof": None
            if p is None
            else {
                "header": _b64(p.header),
                "certificate": _b64(p.certificate),
                "path": [h.hex() for h in p.path],
                "leaf_count": p.leaf_count,
            },
            "event_proof": None if self.event_proof is None else self.event_proof.to_json(),
        }

    @classmethod
    def from_json(cls, doc: Any) -> Receipt:
        try:
            if doc.get("format") != _FORMAT:
                raise InvalidReceiptError(f"not a receipt file (format must be {_FORMAT!r})")
            p = doc["result_proof"]
            return cls(
                tx_id=bytes.fromhex(doc["tx_id"]),
                code=ResultCode[doc["code"]],
                height=int(doc["height"]),
                position=int(doc["position"]),
                block_hash=bytes.fromhex(doc["block_hash"]),
                block_time_ms=int(doc["block_time_ms"]),
                certificate=_unb64(doc["certificate"]),
                block_header=_unb64(doc["block_header"]),
                transaction=_unb64(doc["transaction"]),
                tx_path=tuple(bytes.fromhex(h) for h in doc["tx_path"]),
                result_proof=None
                if p is None
                else ResultProof(
                    _unb64(p["header"]),
                    _unb64(p["certificate"]),
                    tuple(bytes.fromhex(h) for h in p["path"]),
                    int(p.get("leaf_count", 0)),
                ),
                event_proof=None
                if doc.get("event_proof") is None
                else EventProof.from_json(doc["event_proof"]),
            )
        except InvalidReceiptError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as e:
            # (OverflowError: JSON's 1e999 reads as infinity, which int() refuses so.)
            raise InvalidReceiptError(f"malformed receipt JSON: {e!r}") from e

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @classmethod
    def loads(cls, text: str) -> Receipt:
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as e:
            # JSONDecodeError is a ValueError, as is a number past Python's 4,300 digits;
            # deep nesting raises RecursionError: a hostile file is invalid, not a crash.
            raise InvalidReceiptError(f"not JSON: {e}") from e
        return cls.from_json(doc)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


# --- verification ------------------------------------------------------------------------


class CertificateCache:
    """Commit certificates already verified, so that the receipts of many transactions
    in one block cost q signature checks once, not once each (a client settling many
    trades). Keyed by the block hash and the certificate's exact bytes; bounded LRU."""

    def __init__(self, size_max: int = CERTIFICATES_CACHED_MAX) -> None:
        self._size_max = size_max
        self._seen: OrderedDict[tuple[bytes, bytes], None] = OrderedDict()

    def __contains__(self, key: tuple[bytes, bytes]) -> bool:
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        return False

    def add(self, key: tuple[bytes, bytes]) -> None:
        self._seen[key] = None
        if len(self._seen) > self._size_max:
            self._seen.popitem(last=False)


def verify_receipt(
    receipt: Receipt,
    genesis: Genesis | str | Path,
    *,
    require_result: bool = True,
    cache: CertificateCache | None = None,
) -> None:
    """Check ``receipt`` offline, trusting no node; raise InvalidReceiptError if it fails.

    ``genesis`` is the chain's genesis (or the path of ``genesis.json``): its validator
    keys and quorum are the only things trusted. Checked: the header of block ``height``
    hashes to ``block_hash`` and carries the receipt's height and time; the transaction
    hashes to ``tx_id`` and its Merkle path leads to that header's transactions root; the
    header carries a commit certificate of at least q valid signatures by distinct genesis
    validators; then (unless ``require_result`` is False) the header of block
    ``height + 1`` has block ``height`` as parent, is certified the same way, and its
    results root is reached by the path from the recorded-outcome leaf ``(tx_id, code)``
    (ADR 0007); and, for a pending DvP with an ``event_proof``, that the event leaf
    ``(tx_id, event code)`` leads to the results root certified by block ``event height +
    1`` (ADR 0014). With a ``cache``, a certificate verified before for the same block is
    not checked again.

    The recorded leaf proves that this copy is the authentic one recorded under the id
    (validators certify only results they computed). Without a result proof
    (``require_result=False``) nothing does, and nothing offline can: whether a copy's
    signatures were valid depends on the keys governance had set at its height, which
    genesis does not know. Such a receipt (``receipt.final`` False) then proves only that
    this copy of the transaction is included in a committed block: not that the ledger
    recorded the id, nor ``code`` (ADR 0024).
    """
    g = genesis if isinstance(genesis, Genesis) else load_genesis(genesis)
    header = _header(receipt.block_header, g, "block")
    if header.hash != receipt.block_hash:
        raise InvalidReceiptError("the block header does not hash to the receipt's block hash")
    if header.height != receipt.height or header.time_ms != receipt.block_time_ms:
        raise InvalidReceiptError("the block header's height or time differs from the receipt's")
    try:
        body = SignedTx.decode(receipt.transaction).body
    except TxDecodeError as e:
        raise InvalidReceiptError(f"the transaction does not decode: {e}") from e
    if tx_id(body) != receipt.tx_id:
        raise InvalidReceiptError("the transaction does not hash to the receipt's tx id")
    got = merkle.root_from_path(
        receipt.transaction, receipt.position, header.tx_count, receipt.tx_path
    )
    if got != header.txs_root:
        raise InvalidReceiptError(
            f"the Merkle path does not lead from the transaction at position "
            f"{receipt.position} to the transactions root of block {header.height}"
        )
    _check_certificate(receipt.certificate, header, g, "block", cache)
    if receipt.result_proof is None:
        if require_result:
            raise InvalidReceiptError(
                f"no result proof yet: it needs block {header.height + 1}; fetch the receipt "
                "again (this copy's inclusion alone, not the id's finality: "
                "require_result=False)"
            )
        # Inclusion of this copy only (receipt.final is False): no certified leaf says it is
        # the copy recorded under the id, and genesis keys cannot stand in for one, since
        # governance rotates keys (ADR 0024). Callers must not report the id final.
        if receipt.event_proof is not None:  # proven by its own certified leaf
            _check_event(receipt, receipt.event_proof, g, cache)
        return
    proof = receipt.result_proof
    nxt = _header(proof.header, g, "next block")
    if nxt.height != header.height + 1 or nxt.parent_hash != header.hash:
        raise InvalidReceiptError(f"the result proof's header is not block {header.height}'s child")
    leaf = result_leaf(TxResult(receipt.tx_id, receipt.code, recorded=True))
    size = _leaf_count(proof.leaf_count, header.tx_count)
    got = merkle.root_from_path(leaf, receipt.position, size, proof.path)
    if got != nxt.results_root:
        raise InvalidReceiptError(
            f"the result path does not lead from the recorded outcome "
            f"({receipt.tx_id.hex()[:12]}..., {receipt.code.name}) to the results root "
            f"certified by block {nxt.height}: no such outcome, or this copy of the "
            "transaction is not the one recorded under its id"
        )
    _check_certificate(proof.certificate, nxt, g, "next block", cache)
    if receipt.event_proof is not None:
        _check_event(receipt, receipt.event_proof, g, cache)


def _leaf_count(claimed: int, tx_count: int) -> int:
    """The results tree's size a proof claims (ADR 0014): at least the block's transactions
    and the party index's root after them (ADR 0025); 0 means exactly those. A wrong claim
    cannot prove a false leaf (RFC 6962's leaf and node prefixes differ, so a path to the
    certified root proves that exact leaf is in the tree); the bound only refuses nonsense
    early."""
    if claimed == 0:
        return tx_count + 1
    if claimed < tx_count + 1:
        raise InvalidReceiptError(
            f"the result proof claims {claimed} results for a block of {tx_count} transactions"
        )
    return claimed


def verify_party_positions(
    header: BlockHeader,
    party: str,
    party_proof: bytes,
    root_proof: ResultProof,
    genesis: Genesis,
    *,
    results: Sequence[tuple[int, TxResult, Sequence[bytes]]] = (),
    cache: CertificateCache | None = None,
) -> tuple[tuple[int, ...], bool]:
    """The positions of the block ``header`` heads that a party-filtered read must show
    ``party`` (ADR 0025): its own and the public ones, as the block's party index holds
    them; and whether ``party`` held an observer role after that block (its leaf's flag),
    when it reads the whole block instead. Checked: ``party_proof`` decodes and holds for
    ``party`` (its leaf, or the two adjacent leaves enclosing it, and the public leaf,
    all leading to one root), and that root is the last leaf of the block's results tree,
    whose root the header of block ``height + 1`` carries, certified by a quorum; and
    each of ``results`` (a position below the block's transaction count, the result
    shown for it, and its audit path) leads to that same results root, so its code and
    recorded flag are the ledger's. The caller checks its header is certified;
    InvalidReceiptError if anything else fails."""
    try:
        proof = decode_party_proof(party_proof)
    except TxDecodeError as e:
        raise InvalidReceiptError(f"the party proof does not decode: {e}") from e
    try:
        leaf, positions, observer = proof.positions_for(party, header.tx_count)
    except PartyProofError as e:
        raise InvalidReceiptError(f"the party proof of block {header.height} fails: {e}") from e
    nxt = _header(root_proof.header, genesis, "next block")
    if nxt.height != header.height + 1 or nxt.parent_hash != header.hash:
        raise InvalidReceiptError(f"the party proof's header is not block {header.height}'s child")
    size = root_proof.leaf_count
    if size < header.tx_count + 1:
        raise InvalidReceiptError(
            f"the party proof claims {size} results for a block of {header.tx_count} transactions"
        )
    if merkle.root_from_path(leaf, size - 1, size, root_proof.path) != nxt.results_root:
        raise InvalidReceiptError(
            f"the party index's root is not the last leaf of the results root certified by "
            f"block {nxt.height}: the positions shown are not the ones block {header.height} "
            "committed to"
        )
    for position, result, path in results:
        leaf = result_leaf(result)
        if not 0 <= position < header.tx_count or (
            merkle.root_from_path(leaf, position, size, path) != nxt.results_root
        ):
            raise InvalidReceiptError(
                f"the result shown at position {position} of block {header.height} "
                f"({result.code.name}, {'recorded' if result.recorded else 'not recorded'}) "
                f"is not the one block {nxt.height} certifies"
            )
    _check_certificate(root_proof.certificate, nxt, genesis, "next block", cache)
    return positions, observer


def verify_block_results(
    height: int,
    block_hash: bytes,
    results: Sequence[TxResult],
    parties_leaf: bytes,
    root_proof: ResultProof,
    *,
    genesis: Genesis,
    cache: CertificateCache | None = None,
) -> BlockHeader:
    """A whole block's results, as the ledger has them (ADR 0026): ``results`` (each
    transaction's in position order, then the block's pending-settlement events) and
    ``parties_leaf`` (the last leaf: its party index's size and root) make the results
    tree whose root the header of block ``height + 1`` carries, that header certified by
    a quorum. Returns that header (its state root is the state after the block). The
    caller checks block ``block_hash`` is certified; InvalidReceiptError if anything else
    fails."""
    nxt = _header(root_proof.header, genesis, "next block")
    if nxt.height != height + 1 or nxt.parent_hash != block_hash:
        raise InvalidReceiptError(f"the results proof's header is not block {height}'s child")
    leaves = [*(result_leaf(r) for r in results), parties_leaf]
    if merkle.root(leaves) != nxt.results_root:
        raise InvalidReceiptError(
            f"the results and events shown for block {height} are not the ones "
            f"block {nxt.height} certifies: a node left some out or changed them"
        )
    _check_certificate(root_proof.certificate, nxt, genesis, "next block", cache)
    return nxt


def _check_event(
    receipt: Receipt, ev: EventProof, g: Genesis, cache: CertificateCache | None
) -> None:
    """The later event of a pending DvP: its leaf, at ``ev.index`` of block ``ev.height``'s
    results, leads to the results root that block ``ev.height + 1`` certifies."""
    if receipt.code is not ResultCode.PENDING_SETTLEMENT:
        raise InvalidReceiptError(
            f"an event proof on a receipt whose result is {receipt.code.name}, not a pending DvP"
        )
    if ev.height < receipt.height:
        raise InvalidReceiptError("the event is at a height before the trade's own block")
    nxt = _header(ev.header, g, "event's next block")
    if nxt.height != ev.height + 1:
        raise InvalidReceiptError(f"the event proof's header is not block {ev.height + 1}")
    leaf = result_leaf(TxResult(receipt.tx_id, ev.code, recorded=False, event=True))
    if merkle.root_from_path(leaf, ev.index, ev.leaf_count, ev.path) != nxt.results_root:
        raise InvalidReceiptError(
            f"the event path does not lead from ({receipt.tx_id.hex()[:12]}..., "
            f"{ev.code.name}) to the results root certified by block {nxt.height}: "
            "no such event"
        )
    _check_certificate(ev.certificate, nxt, g, "event's next block", cache)


def _header(data: bytes, g: Genesis, what: str) -> BlockHeader:
    try:
        header = decode_header(data)
    except DecodeError as e:
        raise InvalidReceiptError(f"the {what} header does not decode: {e}") from e
    if header.chain_id != g.chain_id:
        raise InvalidReceiptError(
            f"the {what} belongs to chain {header.chain_id!r}, not to this genesis ({g.chain_id!r})"
        )
    return header


def _check_certificate(
    data: bytes, header: BlockHeader, g: Genesis, what: str, cache: CertificateCache | None
) -> None:
    key = (header.hash, data)
    if cache is not None and key in cache:
        return
    try:
        qc: QuorumCert = decode_qc(data)
    except DecodeError as e:
        raise InvalidReceiptError(f"the {what}'s certificate does not decode: {e}") from e
    if qc.phase is not Phase.COMMIT:
        raise InvalidReceiptError(f"the {what}'s certificate is not a commit certificate")
    if qc.height != header.height or qc.block_hash != header.hash:
        raise InvalidReceiptError(f"the {what}'s certificate is for another block")
    n, q = len(g.validators), g.quorum
    indexes = [i for i, _ in qc.signatures]
    if len(set(indexes)) != len(indexes):
        raise InvalidReceiptError(f"the {what}'s certificate counts a validator twice")
    outside = [i for i in indexes if not 0 <= i < n]
    if outside:
        raise InvalidReceiptError(
            f"the {what}'s certificate has a signature by index {outside[0]}, "
            f"which is not one of the {n} genesis validators"
        )
    if len(indexes) < q:
        raise InvalidReceiptError(
            f"the {what}'s certificate has {len(indexes)} signatures; the quorum is {q}"
        )
    msg = vote_message(g.chain_id, Phase.COMMIT, qc.view, qc.height, qc.block_hash)
    for i, sig in qc.signatures:
        if not crypto.verify(g.validators[i].public_key, msg, sig):
            raise InvalidReceiptError(
                f"the {what}'s certificate has a signature that validator {g.validators[i].id} "
                "did not make"
            )
    if cache is not None:
        cache.add(key)
