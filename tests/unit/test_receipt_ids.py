"""One result per transaction id (ADR 0007): a node cannot prove a refusal of a forged or
duplicate copy as the outcome of the id, and a receipt's own fields must match its header.

The chain here is built by hand from the real pieces (apply_block, Block, commit
certificates signed by q genesis validators, the node's receipt builder), so each attack
is the exact receipt a Byzantine node could assemble from committed data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

import pytest

from client import (
    AsyncLedgerClient,
    CertificateCache,
    Endpoint,
    InvalidReceiptError,
    Receipt,
    RejectedError,
    ResultCode,
    ResultProof,
    verify_receipt,
)
from node import crypto, merkle
from node.core import Phase, QuorumCert, encode_qc
from node.core.types import vote_message
from node.genesis import DemoNetwork
from node.merkle import MerkleTree
from node.settlement import (
    LEAF_RECORDED,
    LEAF_UNRECORDED,
    BlockContext,
    SignedTx,
    TxResult,
    apply_block,
    result_leaf,
    tx_id,
)
from node.store import LmdbStore
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory, pinned_tls


def _malleated(raw: bytes) -> bytes:
    """Somebody's signed body with garbage signatures: the id is the same, the copy is not."""
    stx = SignedTx.decode(raw)
    return SignedTx(stx.body, tuple((s, bytes(64)) for s, _ in stx.signatures)).encode()


@pytest.fixture
def attacked(net: DemoNetwork, txf: TxFactory) -> tuple[Chain, bytes]:
    """Block 1 refuses a malleated copy of a trade, block 2 settles the genuine copy,
    block 3 refuses a replay of it as DUPLICATE, block 4 certifies block 3's results."""
    genuine = txf.signed(txf.dvp())
    chain = Chain(net)
    chain.commit([txf.signed(txf.transfer()), _malleated(genuine)])
    chain.commit([genuine])
    chain.commit([genuine, txf.signed(txf.transfer())])
    chain.commit([])
    return chain, genuine


def test_only_the_recorded_copy_carries_the_id_outcome(attacked: tuple[Chain, bytes]) -> None:
    chain, genuine = attacked
    tid = tx_id(SignedTx.decode(genuine).body)
    refused, settled, replay = (chain.outcomes[h].results for h in (1, 2, 3))
    assert refused[1] == TxResult(tid, ResultCode.BAD_SIGNATURE, recorded=False)
    assert settled[0] == TxResult(tid, ResultCode.OK, recorded=True)
    assert replay[0] == TxResult(tid, ResultCode.DUPLICATE, recorded=False)
    assert result_leaf(settled[0])[:1] == LEAF_RECORDED
    assert result_leaf(refused[1])[:1] == result_leaf(replay[0])[:1] == LEAF_UNRECORDED


def test_the_genuine_receipt_verifies(attacked: tuple[Chain, bytes], net: DemoNetwork) -> None:
    chain, genuine = attacked
    receipt = chain.node().receipt(tx_id(SignedTx.decode(genuine).body))
    assert receipt is not None and receipt.ok and receipt.height == 2
    verify_receipt(receipt, net.genesis)
    assert receipt == chain.forged_receipt(2, 0)  # the helper builds what the node builds


def test_a_receipt_for_the_malleated_copy_is_refused(
    attacked: tuple[Chain, bytes], net: DemoNetwork
) -> None:
    chain, _ = attacked
    forged = chain.forged_receipt(1, 1)
    assert forged.code is ResultCode.BAD_SIGNATURE
    with pytest.raises(InvalidReceiptError, match="not the one recorded under its id"):
        verify_receipt(forged, net.genesis)
    # Without a result proof nothing speaks for the id (ADR 0024): the receipt shows only
    # that this copy is in block 1, which is true, and is not final.
    unproven = dataclasses.replace(forged, result_proof=None)
    with pytest.raises(InvalidReceiptError, match="no result proof"):
        verify_receipt(unproven, net.genesis)
    verify_receipt(unproven, net.genesis, require_result=False)
    assert not unproven.final


def test_a_receipt_for_a_duplicate_copy_is_refused(
    attacked: tuple[Chain, bytes], net: DemoNetwork
) -> None:
    chain, _ = attacked
    forged = chain.forged_receipt(3, 0)
    assert forged.code is ResultCode.DUPLICATE
    with pytest.raises(InvalidReceiptError, match="not the one recorded under its id"):
        verify_receipt(forged, net.genesis)


def test_the_refused_copy_cannot_pass_as_the_recorded_one(
    attacked: tuple[Chain, bytes], net: DemoNetwork
) -> None:
    """Negative control for the tag: the authentic transaction with the refused copy's
    position and path (a node mixing the two) still reaches no certified root."""
    chain, genuine = attacked
    forged = chain.forged_receipt(1, 1)
    mixed = dataclasses.replace(forged, transaction=genuine)
    with pytest.raises(InvalidReceiptError, match="Merkle path"):
        verify_receipt(mixed, net.genesis)


def test_receipt_fields_must_match_the_certified_header(
    attacked: tuple[Chain, bytes], net: DemoNetwork
) -> None:
    chain, _ = attacked
    good = chain.forged_receipt(2, 0)
    verify_receipt(good, net.genesis)
    for bad in (
        dataclasses.replace(good, height=good.height + 1),
        dataclasses.replace(good, block_time_ms=good.block_time_ms - 1),
    ):
        with pytest.raises(InvalidReceiptError, match="height or time differs"):
            verify_receipt(bad, net.genesis)
    with pytest.raises(InvalidReceiptError, match="block hash"):
        verify_receipt(dataclasses.replace(good, block_hash=crypto.sha256(b"x")), net.genesis)


def test_stored_results_keep_which_copy_was_recorded(attacked: tuple[Chain, bytes]) -> None:
    chain, _ = attacked
    for h in (1, 2, 3):
        stored = chain.store.block(h)
        assert stored is not None and stored.results == chain.outcomes[h].results


def test_lmdb_keeps_which_copy_was_recorded(
    tmp_path: Path, net: DemoNetwork, txf: TxFactory
) -> None:
    genuine = txf.signed(txf.dvp())
    with LmdbStore(tmp_path, net.genesis) as disk:
        for h, txs in enumerate(([_malleated(genuine), genuine], [genuine]), start=1):
            ctx = BlockContext(h, net.genesis.genesis_time_ms + h)
            outcome = apply_block(disk, txs, ctx)
            disk.commit_block(crypto.sha256(b"%d" % h), b"blk", b"cert", ctx, outcome)
    with LmdbStore(tmp_path, net.genesis) as disk:
        first, second = (disk.block(h) for h in (1, 2))
        assert first is not None and second is not None
        assert [r.recorded for r in first.results] == [False, True]
        assert [(r.code, r.recorded) for r in second.results] == [(ResultCode.DUPLICATE, False)]


class _FakeNode:
    """A node that answers WaitForFinality with the receipt it holds for the request."""

    def __init__(self, tid: bytes, unproven: Receipt, proven: Receipt) -> None:
        self.tid, self.unproven, self.proven = tid, unproven, proven
        self.prove_result: list[bool] = []

    async def Submit(
        self, req: pb.SubmitRequest, timeout: float, metadata: object = ()
    ) -> pb.SubmitResponse:
        return pb.SubmitResponse(tx_id=self.tid, outcome=pb.ACCEPTED)

    def WaitForFinality(
        self, req: pb.WaitRequest, timeout: float, metadata: object = ()
    ) -> asyncio.Future[pb.Receipt]:
        """Like a grpc.aio call: awaitable and cancellable."""
        self.prove_result.append(req.prove_result)
        receipt = (self.proven if req.prove_result else self.unproven).to_pb()
        done: asyncio.Future[pb.Receipt] = asyncio.get_running_loop().create_future()
        done.set_result(receipt)
        return done


async def test_the_sdk_reports_a_refusal_only_with_its_result_proof(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """Without a result proof a refusal is one node's word: the SDK waits for the proof
    before raising RejectedError, so an unproven code cannot turn a settlement into one."""
    net, certs = pinned_tls(net)
    txf = TxFactory(net)
    refused = txf.signed(txf.dvp(amount=10**15))  # more cash than the buyer holds
    tid = tx_id(SignedTx.decode(refused).body)
    chain = Chain(net)
    chain.commit([refused])
    unproven = chain.node().receipt(tid)
    chain.commit([])
    proven = chain.node().receipt(tid)
    assert unproven is not None and unproven.result_proof is None
    assert proven is not None and proven.code is ResultCode.INSUFFICIENT_CASH
    fake = _FakeNode(tid, unproven, proven)
    async with AsyncLedgerClient(
        [Endpoint("127.0.0.1:1", "node-00")], tls_certs=certs, genesis=net.genesis
    ) as c:
        c._stub = lambda i: fake  # type: ignore[method-assign]
        with pytest.raises(RejectedError) as info:
            await c.submit(refused, prove_result=False)
    assert fake.prove_result == [False, True]
    assert info.value.receipt.result_proof is not None


def test_a_forged_copy_committing_leaves_the_genuine_one_pending(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """The node's pending set (GetTransaction's PENDING) follows the recorded copy only:
    a refused forgery must not make the genuine transaction look unknown."""
    genuine = txf.signed(txf.dvp())
    tid = tx_id(SignedTx.decode(genuine).body)
    chain = Chain(net)
    node = chain.node()
    node._pending[tid] = 0.0
    block = chain.next_block([_malleated(genuine)])
    node._execute(block, chain.qc(block))
    assert node.is_pending(tid)
    block = chain.next_block([genuine])
    node._execute(block, chain.qc(block))
    assert not node.is_pending(tid)


def test_the_result_proof_is_required_unless_waived(
    attacked: tuple[Chain, bytes], net: DemoNetwork
) -> None:
    good = attacked[0].forged_receipt(2, 0)
    unproven = dataclasses.replace(good, result_proof=None)
    with pytest.raises(InvalidReceiptError, match="no result proof yet"):
        verify_receipt(unproven, net.genesis)
    verify_receipt(unproven, net.genesis, require_result=False)


@pytest.mark.parametrize("require_result", [True, False])
def test_a_receipt_naming_another_tx_id_is_refused(
    attacked: tuple[Chain, bytes], net: DemoNetwork, require_result: bool
) -> None:
    """Ids below and above the transaction's own: the hash check, not a later one, refuses
    them (without a result proof no later check would)."""
    good = attacked[0].forged_receipt(2, 0)
    if not require_result:
        good = dataclasses.replace(good, result_proof=None)
    for other in (bytes(32), b"\xff" * 32):
        with pytest.raises(InvalidReceiptError, match="does not hash to the receipt's tx id"):
            verify_receipt(
                dataclasses.replace(good, tx_id=other), net.genesis, require_result=require_result
            )


def test_certificate_cache_is_a_bounded_lru() -> None:
    cache = CertificateCache(size_max=2)
    a, b, c = ((bytes([i]) * 32, b"cert") for i in range(3))
    cache.add(a)
    cache.add(b)
    assert b in cache and a in cache  # two fit; touching a last makes b the oldest
    cache.add(c)
    assert b not in cache and a in cache and c in cache


def test_receipt_height_and_time_must_equal_the_headers_both_ways(
    attacked: tuple[Chain, bytes], net: DemoNetwork
) -> None:
    good = attacked[0].forged_receipt(2, 0)
    for bad in (
        dataclasses.replace(good, height=good.height - 1),
        dataclasses.replace(good, block_time_ms=good.block_time_ms + 1),
    ):
        with pytest.raises(InvalidReceiptError, match="height or time differs"):
            verify_receipt(bad, net.genesis)
    with pytest.raises(InvalidReceiptError, match="it needs block 3"):
        verify_receipt(dataclasses.replace(good, result_proof=None), net.genesis)


def test_a_receipt_whose_transaction_does_not_decode_is_refused(
    attacked: tuple[Chain, bytes], net: DemoNetwork
) -> None:
    good = attacked[0].forged_receipt(2, 0)
    with pytest.raises(InvalidReceiptError, match="transaction does not decode"):
        verify_receipt(dataclasses.replace(good, transaction=b"\x01"), net.genesis)


def test_every_certificate_signature_is_checked(
    attacked: tuple[Chain, bytes], net: DemoNetwork
) -> None:
    """q signatures by distinct genesis validators, one of them not made by its validator."""
    chain = attacked[0]
    good = chain.forged_receipt(2, 0)
    qc = chain.qc(chain.blocks[2])
    forged = dataclasses.replace(
        qc, signatures=(*qc.signatures[:-1], (qc.signatures[-1][0], bytes(64)))
    )
    with pytest.raises(InvalidReceiptError, match="did not make"):
        verify_receipt(dataclasses.replace(good, certificate=encode_qc(forged)), net.genesis)


@pytest.mark.parametrize("other", [bytes(32), b"\xff" * 32])
def test_a_certificate_for_another_block_at_that_height_is_refused(
    attacked: tuple[Chain, bytes], net: DemoNetwork, other: bytes
) -> None:
    chain = attacked[0]
    good = chain.forged_receipt(2, 0)
    qc = dataclasses.replace(chain.qc(chain.blocks[2]), block_hash=other)
    with pytest.raises(InvalidReceiptError, match="for another block"):
        verify_receipt(dataclasses.replace(good, certificate=encode_qc(qc)), net.genesis)


def test_the_result_proof_must_come_from_the_next_height(
    attacked: tuple[Chain, bytes], net: DemoNetwork
) -> None:
    """A certified header naming block 2 as parent but itself at height 2 (what a quorum of
    liars could sign) carries block 2's results root; it is still not block 3."""
    chain = attacked[0]
    good = chain.forged_receipt(2, 0)
    real_next = chain.blocks[3]
    assert good.result_proof is not None
    for height in (2, 4):  # below and above the next height
        liar = dataclasses.replace(real_next, height=height, view=99, executed_height=height - 1)
        assert liar.parent_hash == chain.blocks[2].hash
        assert liar.results_root == chain.outcomes[2].results_root
        proof = ResultProof(liar.header, encode_qc(chain.qc(liar)), good.result_proof.path)
        with pytest.raises(InvalidReceiptError, match="is not block 2's child"):
            verify_receipt(dataclasses.replace(good, result_proof=proof), net.genesis)


def _cert(chain: Chain, at: int, signers: list[int], **kw: object) -> bytes:
    """Block ``at``'s commit certificate signed by ``signers`` (indexes may repeat or
    lie outside the genesis set), with ``kw`` replacing any field afterwards."""
    block, keys = chain.blocks[at], chain.net.validator_keys
    msg = vote_message(chain.net.genesis.chain_id, Phase.COMMIT, block.view, at, block.hash)
    sigs = tuple((i, keys[i % len(keys)].sign(msg)) for i in signers)
    qc = QuorumCert(Phase.COMMIT, block.view, at, block.hash, sigs)
    return encode_qc(dataclasses.replace(qc, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("signers", "kw", "error"),
    [
        ([0, 1], {}, "has 2 signatures; the quorum is 3"),
        ([0, 1, 1], {}, "counts a validator twice"),
        ([0, 1, 4, 5], {}, "by index 4, which is not one of the 4"),
        ([0, 1, 5], {}, "by index 5, which is not one of the 4"),
        ([0, 1, 2], {"phase": Phase.PREPARE}, "not a commit certificate"),
        ([0, 1, 2], {"phase": Phase.TIMEOUT}, "not a commit certificate"),
        ([0, 1, 2], {"height": 1}, "for another block"),
        ([0, 1, 2], {"height": 3}, "for another block"),
    ],
    ids=["q-1", "twice", "outside-n", "outside-n+1", "prepare", "timeout", "height-1", "height+1"],
)
def test_a_certificate_short_of_a_quorum_of_distinct_validators_is_refused(
    attacked: tuple[Chain, bytes],
    net: DemoNetwork,
    signers: list[int],
    kw: dict[str, object],
    error: str,
) -> None:
    chain = attacked[0]
    good = chain.forged_receipt(2, 0)
    with pytest.raises(InvalidReceiptError, match=error):
        verify_receipt(
            dataclasses.replace(good, certificate=_cert(chain, 2, signers, **kw)), net.genesis
        )


@pytest.mark.parametrize("signers", [[0, 1, 2], [1, 2, 3], [0, 1, 2, 3]], ids=["q", "q-other", "n"])
def test_a_quorum_or_more_of_valid_signatures_is_accepted(
    attacked: tuple[Chain, bytes], net: DemoNetwork, signers: list[int]
) -> None:
    chain = attacked[0]
    good = chain.forged_receipt(2, 0)
    verify_receipt(dataclasses.replace(good, certificate=_cert(chain, 2, signers)), net.genesis)


def test_undecodable_certificates_and_foreign_headers_are_refused(
    attacked: tuple[Chain, bytes], net: DemoNetwork
) -> None:
    chain = attacked[0]
    good = chain.forged_receipt(2, 0)
    with pytest.raises(InvalidReceiptError, match="certificate does not decode"):
        verify_receipt(dataclasses.replace(good, certificate=b"\x02"), net.genesis)
    for chain_id in ("0" * 64, "f" * 64):  # sorting below and above this chain's id
        foreign = dataclasses.replace(chain.blocks[2], chain_id=chain_id).header
        with pytest.raises(InvalidReceiptError, match="belongs to chain"):
            verify_receipt(dataclasses.replace(good, block_header=foreign), net.genesis)
    for block_hash in (bytes(32), b"\xff" * 32):
        with pytest.raises(InvalidReceiptError, match="does not hash to the receipt's block hash"):
            verify_receipt(dataclasses.replace(good, block_hash=block_hash), net.genesis)


def _wrong_paths(leaf: bytes, position: int, size: int, root: bytes) -> list[tuple[bytes, ...]]:
    """One-hash paths leading to a root above the certified one and one leading below it.
    Tried until both are found: a root near either end (a small root, as the one of OK = 80
    here since ADR 0020) needs more than a few hundred tries."""
    above = below = None
    for i in range(1 << 16):
        path = (i.to_bytes(2, "big") * 16,)
        got = merkle.root_from_path(leaf, position, size, path)
        assert got is not None and got != root
        if got > root and above is None:
            above = path
        if got < root and below is None:
            below = path
        if above is not None and below is not None:
            break
    assert above is not None and below is not None
    return [above, below]


def test_paths_leading_elsewhere_are_refused(
    attacked: tuple[Chain, bytes], net: DemoNetwork
) -> None:
    """Wrong transaction paths and wrong result paths, each leading to a root above the
    certified one or below it."""
    chain = attacked[0]
    good = chain.forged_receipt(3, 1)  # the transfer of block 3: a path of one hash
    verify_receipt(good, net.genesis)
    assert good.result_proof is not None and len(good.tx_path) == 1
    block, nxt = chain.blocks[3], chain.blocks[4]
    for wrong in _wrong_paths(good.transaction, 1, len(block.txs), MerkleTree(block.txs).root):
        with pytest.raises(InvalidReceiptError, match="does not lead from the transaction"):
            verify_receipt(dataclasses.replace(good, tx_path=wrong), net.genesis)
    leaf = result_leaf(TxResult(good.tx_id, good.code, recorded=True))
    for wrong in _wrong_paths(leaf, 1, len(block.txs), nxt.results_root):
        proof = dataclasses.replace(good.result_proof, path=wrong)
        outcome = re.escape(f"({good.tx_id.hex()[:12]}..., OK) to the results root")
        with pytest.raises(InvalidReceiptError, match=outcome):
            verify_receipt(dataclasses.replace(good, result_proof=proof), net.genesis)


def test_an_undecodable_header_is_refused(attacked: tuple[Chain, bytes], net: DemoNetwork) -> None:
    good = attacked[0].forged_receipt(2, 0)
    with pytest.raises(InvalidReceiptError, match="block header does not decode"):
        verify_receipt(dataclasses.replace(good, block_header=b"\x00"), net.genesis)


@pytest.mark.parametrize("parent", [bytes(32), b"\xff" * 32])
def test_a_result_header_with_another_parent_is_refused(
    attacked: tuple[Chain, bytes], net: DemoNetwork, parent: bytes
) -> None:
    chain = attacked[0]
    good = chain.forged_receipt(2, 0)
    assert good.result_proof is not None
    orphan = dataclasses.replace(chain.blocks[3], parent_hash=parent)
    proof = ResultProof(orphan.header, encode_qc(chain.qc(orphan)), good.result_proof.path)
    with pytest.raises(InvalidReceiptError, match="is not block 2's child"):
        verify_receipt(dataclasses.replace(good, result_proof=proof), net.genesis)


def test_the_certificate_cache_skips_only_what_it_verified(
    attacked: tuple[Chain, bytes], net: DemoNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = attacked[0]
    good = chain.forged_receipt(2, 0)
    cache = CertificateCache()
    bad = dataclasses.replace(good, certificate=_cert(chain, 2, [0, 1, 2], signatures=()))
    with pytest.raises(InvalidReceiptError, match="quorum"):
        verify_receipt(bad, net.genesis, cache=cache)  # a miss is checked, not assumed
    verify_receipt(good, net.genesis, cache=cache)
    calls: list[bytes] = []
    real = crypto.verify

    def counting(key: bytes, message: bytes, sig: bytes) -> bool:
        calls.append(sig)
        return real(key, message, sig)

    monkeypatch.setattr(crypto, "verify", counting)
    verify_receipt(good, net.genesis, cache=cache)
    assert calls == []  # both certificates remembered: no signature checked again
    verify_receipt(good, net.genesis)
    assert len(calls) == 2 * net.genesis.quorum


# --- edges found by mutation testing (docs/testing.md, receipt) ----------------------------


def test_a_receipt_above_height_256_verifies(net: DemoNetwork, txf: TxFactory) -> None:
    """Heights decoded from a header and carried by the receipt are equal ints, never the
    same object: the height checks of the header, the certificate and the next block
    compare values."""
    chain = Chain(net)
    for _ in range(299):
        chain.commit([])
    chain.commit([txf.signed(txf.transfer())])
    chain.commit([])
    verify_receipt(chain.forged_receipt(300, 0), net.genesis)


def test_a_missing_result_proof_names_the_next_block_at_odd_heights_too(
    net: DemoNetwork, txf: TxFactory
) -> None:
    """At height 1 (odd: 1 | 1 and 1 ^ 1 are not 2) the message names block 2."""
    chain = Chain(net)
    chain.commit([txf.signed(txf.transfer())])
    chain.commit([])
    unproven = dataclasses.replace(chain.forged_receipt(1, 0), result_proof=None)
    with pytest.raises(InvalidReceiptError, match="needs block 2;"):
        verify_receipt(unproven, net.genesis)


def test_verify_receipt_takes_its_options_by_keyword_only(
    attacked: tuple[Chain, bytes], net: DemoNetwork
) -> None:
    good = attacked[0].forged_receipt(2, 0)
    with pytest.raises(TypeError):
        verify_receipt(good, net.genesis, False)  # type: ignore[misc]


def test_a_certificate_of_more_than_256_signatures_verifies() -> None:
    """400 validators, q = 267: counts of signers above the small-int cache compare by
    value (a receipt's certificate is checked for repeated signers by counting)."""
    from node.genesis import demo_genesis

    big = demo_genesis(validators=400, quorum=267)
    txf = TxFactory(big)
    chain = Chain(big)
    chain.commit([txf.signed(txf.transfer())])
    chain.commit([])
    verify_receipt(chain.forged_receipt(1, 0), big.genesis)
