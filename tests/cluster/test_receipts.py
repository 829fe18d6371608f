"""Receipts from a real 4-node cluster, checked offline with ``client.verify_receipt``: the
genuine ones pass, and every kind of forgery the issue names is refused with its reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from client import InvalidReceiptError, Receipt, ResultCode, ResultProof, verify_receipt
from node import crypto
from node.core import Phase, QuorumCert, decode_qc, encode_qc
from node.core.types import vote_message
from node.genesis import demo_genesis
from node.receipt import CertificateCache
from node.wire import ledger_pb2 as pb
from tests.cluster.harness import Cluster, module_cluster

pytestmark = pytest.mark.slow


cluster = module_cluster("receipts")  # 4 validators, quorum 3, one per module


@pytest.fixture(scope="module")
def receipt(cluster: Cluster) -> Receipt:
    """A trade inside a block of several, so that its Merkle paths are not trivial. Eight
    are sent at once: an idle cluster proposes the first at once and the rest batch up,
    but how they fall into blocks depends on the machine's speed, so the receipt is the
    last of those that shared a block (settling each again is safe)."""
    txf, stub = cluster.txf, cluster.stub(1)
    raws = [txf.signed(txf.dvp(quantity=40 + k, amount=39)) for k in range(8)]
    for raw in raws:
        stub.Submit(pb.SubmitRequest(transaction=raw), timeout=10)
    receipts = [Receipt.from_pb(cluster.settle(raw, via=1)) for raw in raws]
    shared = [r for r in receipts if r.tx_path and r.result_proof and r.result_proof.path]
    assert shared, f"all eight trades got blocks of their own: {[r.height for r in receipts]}"
    return shared[-1]


def _refused(reason: str, r: Receipt, cluster: Cluster) -> None:
    with pytest.raises(InvalidReceiptError, match=reason):
        verify_receipt(r, cluster.demo.genesis)


def _with_cert(r: Receipt, change: Callable[[QuorumCert], QuorumCert], *, result: bool) -> Receipt:
    """``r`` with its block's (or, with ``result``, the next block's) certificate changed."""
    if not result:
        return dataclasses.replace(r, certificate=encode_qc(change(decode_qc(r.certificate))))
    assert r.result_proof is not None
    qc = change(decode_qc(r.result_proof.certificate))
    return dataclasses.replace(
        r, result_proof=dataclasses.replace(r.result_proof, certificate=encode_qc(qc))
    )


def _sigs(qc: QuorumCert, sigs: list[tuple[int, bytes]]) -> QuorumCert:
    return dataclasses.replace(qc, signatures=tuple(sigs))


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_a_genuine_receipt_verifies_and_survives_its_file_formats(
    cluster: Cluster, receipt: Receipt
) -> None:
    g = cluster.demo.genesis
    assert receipt.ok and receipt.result_proof is not None
    verify_receipt(receipt, g)
    verify_receipt(receipt, cluster.net.run_dir / "genesis.json")  # a path works too
    assert Receipt.loads(receipt.dumps()) == receipt
    assert Receipt.from_bytes(receipt.to_bytes()) == receipt
    assert len(receipt.signers) >= g.quorum


def test_a_refused_trade_has_a_verifiable_receipt_of_its_refusal(cluster: Cluster) -> None:
    txf = cluster.txf
    raw = txf.signed(txf.dvp(quantity=10**15, amount=1))  # more bonds than BANK01 holds
    refused = Receipt.from_pb(cluster.settle(raw, via=2))
    assert refused.code is ResultCode.INSUFFICIENT_SECURITIES and not refused.ok
    verify_receipt(refused, cluster.demo.genesis)
    # Claiming it settled is exactly what the result proof rules out.
    _refused("result path", dataclasses.replace(refused, code=ResultCode.OK), cluster)


def test_finality_is_provable_before_the_result_is(cluster: Cluster, receipt: Receipt) -> None:
    early = dataclasses.replace(receipt, result_proof=None)
    _refused("no result proof yet", early, cluster)
    verify_receipt(early, cluster.demo.genesis, require_result=False)


@pytest.mark.parametrize("result", [False, True], ids=["block", "next-block"])
def test_certificate_forgeries_are_refused(
    cluster: Cluster, receipt: Receipt, result: bool
) -> None:
    g = cluster.demo.genesis
    qc = decode_qc(receipt.certificate)
    sigs = list(qc.signatures)

    tampered = [(sigs[0][0], _flip(sigs[0][1], 5)), *sigs[1:]]
    _refused(
        "did not make", _with_cert(receipt, lambda c: _sigs(c, tampered), result=result), cluster
    )

    # A key outside the validator set signs the same vote, in a validator's slot ...
    outsider = crypto.SigningKey(crypto.sha256(b"not a validator"))

    def by_outsider(c: QuorumCert) -> QuorumCert:
        msg = vote_message(g.chain_id, Phase.COMMIT, c.view, c.height, c.block_hash)
        first, *rest = c.signatures
        return _sigs(c, [(first[0], outsider.sign(msg)), *rest])

    _refused("did not make", _with_cert(receipt, by_outsider, result=result), cluster)
    # ... or under an index beyond the genesis list.
    beyond = [*sigs[:-1], (len(g.validators), sigs[-1][1])]
    _refused(
        "not one of the 4", _with_cert(receipt, lambda c: _sigs(c, beyond), result=result), cluster
    )

    twice = [*sigs[:-1], sigs[0]]  # q entries, but one validator counted twice
    _refused("twice", _with_cert(receipt, lambda c: _sigs(c, twice), result=result), cluster)

    short = sigs[: g.quorum - 1]
    _refused("quorum is 3", _with_cert(receipt, lambda c: _sigs(c, short), result=result), cluster)

    prepare = _with_cert(
        receipt, lambda c: dataclasses.replace(c, phase=Phase.PREPARE), result=result
    )
    _refused("not a commit certificate", prepare, cluster)


def test_altered_merkle_paths_are_refused(cluster: Cluster, receipt: Receipt) -> None:
    assert receipt.result_proof is not None
    bent = (*receipt.tx_path[:-1], _flip(receipt.tx_path[-1]))
    _refused("Merkle path", dataclasses.replace(receipt, tx_path=bent), cluster)
    _refused("Merkle path", dataclasses.replace(receipt, tx_path=receipt.tx_path[1:]), cluster)
    proof = receipt.result_proof
    bent_result = (_flip(proof.path[0]), *proof.path[1:])
    r = dataclasses.replace(receipt, result_proof=dataclasses.replace(proof, path=bent_result))
    _refused("result path", r, cluster)
    _refused("Merkle path", dataclasses.replace(receipt, position=receipt.position + 1), cluster)


def test_other_parts_that_do_not_match_are_refused(cluster: Cluster, receipt: Receipt) -> None:
    assert receipt.result_proof is not None
    _refused("tx id", dataclasses.replace(receipt, tx_id=crypto.sha256(b"other")), cluster)
    _refused("block hash", dataclasses.replace(receipt, block_hash=bytes(32)), cluster)
    _refused("does not decode", dataclasses.replace(receipt, block_header=b"\x00"), cluster)
    # The next block's header must be the child of this block: take the block's own header.
    own = ResultProof(receipt.block_header, receipt.certificate, receipt.result_proof.path)
    _refused("child", dataclasses.replace(receipt, result_proof=own), cluster)


def test_a_receipt_from_another_genesis_is_refused(cluster: Cluster, receipt: Receipt) -> None:
    other = demo_genesis(validators=4, quorum=3, seed=b"another chain").genesis
    with pytest.raises(InvalidReceiptError, match="not to this genesis"):
        verify_receipt(receipt, other)


def test_receipts_from_every_node_prove_the_same_facts(cluster: Cluster, receipt: Receipt) -> None:
    for i in range(4):
        got = cluster.stub(i).WaitForFinality(
            pb.WaitRequest(tx_id=receipt.tx_id, prove_result=True), timeout=10
        )
        r = Receipt.from_pb(got)
        verify_receipt(r, cluster.demo.genesis)
        assert (r.tx_id, r.code, r.height, r.block_hash, r.position, r.transaction) == (
            receipt.tx_id,
            receipt.code,
            receipt.height,
            receipt.block_hash,
            receipt.position,
            receipt.transaction,
        )


def test_certificate_cache_skips_only_what_it_verified(
    cluster: Cluster, receipt: Receipt, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached certificate is not checked again; different certificate bytes are."""
    calls: list[int] = []
    real = crypto.verify

    def counting(pub: bytes, msg: bytes, sig: bytes) -> bool:
        calls.append(1)
        return real(pub, msg, sig)

    monkeypatch.setattr(crypto, "verify", counting)
    cache = CertificateCache()
    verify_receipt(receipt, cluster.demo.genesis, cache=cache)
    first = len(calls)
    assert first >= 2 * 3  # both certificates, q = 3 signatures each
    verify_receipt(receipt, cluster.demo.genesis, cache=cache)
    assert len(calls) == first  # nothing re-verified

    def forged(qc: QuorumCert) -> QuorumCert:
        (i, sig), *rest = qc.signatures
        return _sigs(qc, [(i, sig[:-1] + bytes([sig[-1] ^ 1])), *rest])

    for result in (False, True):
        with pytest.raises(InvalidReceiptError, match="did not make"):
            verify_receipt(
                _with_cert(receipt, forged, result=result), cluster.demo.genesis, cache=cache
            )
