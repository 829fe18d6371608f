"""A party-filtered block carries each receipt's own fields only, and fits the SDK's cap.

Review 32 found it and left it (docs/sdk.md "Known limits" then): each receipt of a
party-filtered block repeated the block's header and commit certificate, so a participant
party to every transaction of a full block got an answer of 6.6 MB (2,000 DvPs, 16-of-26
certificates) to 9.8 MB (2,000 transactions of 2 KiB), 148 MB with a 1,000-validator
certificate, which every node sent and the SDK's channel refused (RESOURCE_EXHAUSTED, read
as a busy node): that reader could never read that block. Now a filtered block's receipt
carries its id, code, position, transaction and path (``Receipt.to_pb_in_block``), the
SDK makes it whole from the block's certified header and certificate
(``Receipt.from_pb_in_block``) and verifies it as before, and the SDK's cap
(``RECEIVE_MESSAGE_BYTES_MAX``) covers the largest honest filtered answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest

from client import BadResponseError
from client import _async as sdk_async
from client._limits import RECEIVE_MESSAGE_BYTES_MAX
from node.access import Caller
from node.config import (
    BLOCK_BYTES_MAX,
    BLOCK_TXS_MAX,
    CHAIN_ID_BYTES_MAX,
    ID_BYTES_MAX,
    PARTICIPANTS_MAX,
    PENDING_MAX,
    REPO_LAPSES_PER_BLOCK_MAX,
    TX_BYTES_MAX,
    VALIDATORS_MAX,
)
from node.core import Phase, QuorumCert, decode_header, encode_qc
from node.genesis import DemoNetwork, demo_genesis
from node.keyfiles import cert_pin
from node.netconfig import node_name
from node.receipt import Receipt, verify_receipt
from node.runtime._api import filtered_block_pb
from node.settlement import PartyIndex, ResultCode
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory
from tests.tls_helpers import _make_ca, _make_node_cert, _pem_cert, _pem_key
from tests.unit.test_party_index_hostile import _filtered, _sdk, traded  # noqa: F401
from tests.unit.test_review32_pages import Largest, _client, _served

MiB = 1024 * 1024
OLD_CAP = BLOCK_BYTES_MAX + 1 * MiB  # the SDK's cap before this change (5 MiB)
OWN = {"tx_id", "code", "position", "transaction", "tx_path"}


def _whole(r: pb.Receipt) -> pb.Receipt:
    """What a receipt in a filtered block carried before (its whole form)."""
    return Receipt.from_pb(r).to_pb()


def test_a_filtered_blocks_receipts_carry_only_their_own_fields(
    traded: tuple[DemoNetwork, bytes, Chain],  # noqa: F811
) -> None:
    """BANK01's filtered block 1 (two DvPs of its): each receipt holds its own five
    fields, nothing of the block; the SDK's view makes each one whole, equal to the
    receipt the node keeps for it, and each verifies offline against genesis alone."""
    net, certs, chain = traded
    info = _filtered(chain, "BANK01")
    assert len(info.receipts) == 2
    for r in info.receipts:
        assert {f.name for f, _ in r.ListFields()} <= OWN
        assert not r.certificate and not r.block_header and not r.code_name
    view = _sdk(net, certs, "BANK01")._filtered_view(info)
    node = chain.node()
    stored = chain.store.block(1)
    assert stored is not None
    assert view.receipts == tuple(node.block_receipt(stored, p) for p in (0, 2))
    for receipt in view.receipts:
        verify_receipt(receipt, net.genesis, require_result=False)
        # one copy of the block's certificate for all of them
        assert receipt.certificate is view.certificate


def test_a_filtered_receipt_is_made_whole_from_the_block_not_from_what_it_says(
    traded: tuple[DemoNetwork, bytes, Chain],  # noqa: F811
) -> None:
    """A node that writes another block's header and certificate into a receipt (the
    whole form, from block 2) changes nothing: the SDK reads the block's own. What the
    receipt does carry is still checked: a path that leads elsewhere, or another
    transaction, is refused (the controls)."""
    net, certs, chain = traded
    c = _sdk(net, certs, "BANK01")
    other = filtered_block_pb(chain.node(), chain.store.block(2), Caller("BANK01", observer=False))  # type: ignore[arg-type]
    lying = _filtered(chain, "BANK01")
    lying.receipts[0].block_header = other.header
    lying.receipts[0].certificate = other.certificate
    lying.receipts[0].height = 2
    view = c._filtered_view(lying)
    assert view.receipts is not None
    assert view.receipts[0].block_header == bytes(lying.header)
    assert view.receipts[0].height == 1
    bad_path = _filtered(chain, "BANK01")
    bad_path.receipts[1].tx_path[0] = b"\x00" * 32
    with pytest.raises(BadResponseError, match="receipt failed verification"):
        c._filtered_view(bad_path)
    swapped = _filtered(chain, "BANK01")
    swapped.receipts[0].transaction = swapped.receipts[1].transaction
    with pytest.raises(BadResponseError, match="receipt failed verification"):
        c._filtered_view(swapped)


def _certificate(signers: int) -> bytes:
    sigs = tuple((i, b"\x01" * 64) for i in range(signers))
    return encode_qc(QuorumCert(Phase.COMMIT, 2**62, 2**62, b"\x07" * 32, sigs))


def _largest_party_proof(count: int) -> bytes:
    """The largest party proof a node encodes for a block of ``count`` transactions,
    by the node's own ``PartyIndex``: PARTICIPANTS_MAX participants with the longest ids,
    every position public and the caller's too (a corporate action naming its paying
    agent is in both leaves, each position a u32), the caller's leaf one of those with
    the longest path (review 33f: the first estimate counted 2-byte positions once and
    the test chain's short paths, 17 kB against 4 kB at BLOCK_TXS_MAX)."""
    keys = [f"P{k:05d}".ljust(ID_BYTES_MAX, "X") for k in range(PARTICIPANTS_MAX)]
    caller = keys[0]  # leaf 1, in the tree's full left half: a path of the longest
    tx_ids = [k.to_bytes(32, "big") for k in range(count)]
    index = PartyIndex([(frozenset({caller}), True)] * count, keys, tx_ids, observers=())
    return index.proof(caller).encode()


def _longest_chain_id(header: bytes) -> bytes:
    """``header`` with a chain id of CHAIN_ID_BYTES_MAX bytes (u16 length, then the id)."""
    n = int.from_bytes(header[:2], "big")
    longest = CHAIN_ID_BYTES_MAX.to_bytes(2, "big") + b"c" * CHAIN_ID_BYTES_MAX + header[2 + n :]
    assert len(decode_header(longest).chain_id) == CHAIN_ID_BYTES_MAX
    return longest


def _largest(info: pb.BlockInfo, count: int, tx_bytes: int, signers: int, whole: bool) -> int:
    """The size of ``info`` (a real filtered answer) grown to the node's limits: ``count``
    receipts of ``tx_bytes`` each, every path at its longest for that block (a results
    tree holding every event a block may carry), certificates of ``signers``, headers
    with the longest chain id, the largest party proof (``_largest_party_proof``), the
    longest result code; each receipt in its compact form, or (``whole``) as before,
    repeating the block's height, hash, time, header and certificate."""
    big = pb.BlockInfo()
    big.CopyFrom(info)
    cert = _certificate(signers)
    longest = max(ResultCode, key=lambda c: len(c.name) + len(c.meaning))
    tx_path = [b"\x03" * 32] * math.ceil(math.log2(count))
    leaves = count + PENDING_MAX + REPO_LAPSES_PER_BLOCK_MAX + 1
    result_path = [b"\x04" * 32] * math.ceil(math.log2(leaves))
    big.certificate = cert
    big.height, big.time_ms = 2**62, 2**62
    big.header = _longest_chain_id(bytes(info.header))
    big.parties_root_proof.header = _longest_chain_id(bytes(info.parties_root_proof.header))
    big.parties_root_proof.certificate = cert
    del big.parties_root_proof.path[:]
    big.parties_root_proof.path.extend(result_path)
    big.parties_root_proof.leaf_count = leaves
    big.party_proof = _largest_party_proof(count)
    template = pb.Receipt()
    template.CopyFrom(info.receipts[0])
    template.code = int(longest)  # type: ignore[assignment]
    template.position = count - 1
    template.transaction = b"\x06" * tx_bytes
    del template.tx_path[:]
    template.tx_path.extend(tx_path)
    if whole:
        template.MergeFrom(_whole(template))
        template.certificate = cert
        template.block_header = big.header
        template.block_hash = info.block_hash
        template.height = big.height
        template.block_time_ms = 2**62
    result = pb.TransactionResult()
    result.CopyFrom(info.results[0])
    result.code, result.position, result.height = int(longest), count - 1, 2**62  # type: ignore[assignment]
    del big.receipts[:], big.results[:], big.result_paths[:]
    big.receipts.extend([template] * count)
    big.results.extend([result] * count)
    big.result_paths.extend([pb.MerklePath(hashes=result_path)] * count)
    return big.ByteSize()


@pytest.mark.parametrize(
    ("count", "tx_bytes"),
    [
        (BLOCK_BYTES_MAX // TX_BYTES_MAX, TX_BYTES_MAX),
        (BLOCK_TXS_MAX, BLOCK_BYTES_MAX // BLOCK_TXS_MAX),
    ],
    ids=["largest-transactions", "most-transactions"],
)
@pytest.mark.parametrize("signers", [16, VALIDATORS_MAX])
def test_the_largest_filtered_block_fits_the_sdks_cap(
    traded: tuple[DemoNetwork, bytes, Chain],  # noqa: F811
    count: int,
    tx_bytes: int,
    signers: int,
) -> None:
    """A full block every transaction of which names the caller, built from the node's
    real filtered answer: within RECEIVE_MESSAGE_BYTES_MAX (6.1 MB at most). The control:
    the same block with receipts in their whole form outgrew the cap of before in every
    case (6.9 to 148 MB against 5 MiB), and outgrows the one now where the block holds
    most transactions or its certificates most signatures."""
    info = _filtered(traded[2], "BANK01")
    assert len(_largest_party_proof(count)) > 2 * 4 * count  # u32 positions, two leaves
    assert _largest(info, count, tx_bytes, signers, whole=False) <= RECEIVE_MESSAGE_BYTES_MAX
    whole = _largest(info, count, tx_bytes, signers, whole=True)
    assert whole > OLD_CAP
    if count == BLOCK_TXS_MAX or signers == VALIDATORS_MAX:
        assert whole > RECEIVE_MESSAGE_BYTES_MAX


# --- a real node's full block, read through the SDK ------------------------------------------


@pytest.fixture(scope="module")
def full() -> Iterator[Largest]:
    """A 16-of-26 network whose block 1 holds BLOCK_TXS_MAX DvPs, every one BANK01's
    (block 2, empty, certifies its results and party index), served by validator 0."""
    net = demo_genesis(validators=26, quorum=16, seed=b"filtered-size")
    ca = _make_ca("filtered", datetime.now(UTC))
    key, cert = _make_node_cert(ca, node_name(0, 26), "127.0.0.1")
    g = net.genesis
    validators = (dataclasses.replace(g.validators[0], tls_cert_sha256=cert_pin(cert)),)
    net = dataclasses.replace(
        net, genesis=dataclasses.replace(g, validators=validators + g.validators[1:])
    )
    chain, txf = Chain(net), TxFactory(net)
    chain.commit([txf.signed(txf.dvp(quantity=1, amount=1)) for _ in range(BLOCK_TXS_MAX)])
    chain.commit([])
    node = chain.node()
    try:
        yield Largest(net, node, _pem_key(key), _pem_cert(cert))
    finally:
        node.close()


async def _read_block_1(full: Largest) -> tuple[int, int]:
    async with _served(full) as port, _client(full, port, "BANK01") as c:
        view = await c.block(1)
    assert view.filtered and view.receipts is not None
    return len(view.transactions), len(view.receipts)


@pytest.mark.slow
async def test_a_reader_party_to_every_transaction_of_a_full_block_reads_it(
    full: Largest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 DvPs naming BANK01, 16-of-26 certificates, through the node's real client
    port: BANK01's ``block(1)`` returns all 2,000, each receipt verified. It fits even the
    cap of before (about 3 MB; 6.6 MB in the whole form)."""
    stored = full.node.store.block(1)
    assert stored is not None
    answer = filtered_block_pb(full.node, stored, Caller("BANK01", observer=False)).ByteSize()
    assert answer < OLD_CAP
    monkeypatch.setattr(sdk_async, "RECEIVE_MESSAGE_BYTES_MAX", OLD_CAP)
    assert await _read_block_1(full) == (BLOCK_TXS_MAX, BLOCK_TXS_MAX)


@pytest.mark.slow
async def test_control_receipts_in_their_whole_form_never_reached_the_sdk(
    full: Largest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What every such reader met before: the node's answer with whole receipts, refused
    by the client's own channel at the cap of before (RESOURCE_EXHAUSTED, taken for a
    busy node until BusyError)."""
    monkeypatch.setattr(Receipt, "to_pb_in_block", Receipt.to_pb)
    monkeypatch.setattr(sdk_async, "RECEIVE_MESSAGE_BYTES_MAX", OLD_CAP)
    stored = full.node.store.block(1)
    assert stored is not None
    assert (
        filtered_block_pb(full.node, stored, Caller("BANK01", observer=False)).ByteSize() > OLD_CAP
    )
    async with _served(full) as port, _client(full, port, "BANK01") as c:
        req = pb.BlockRequest(height=1)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await asyncio.wait_for(
                c._stub(0).GetBlock(req, timeout=30, metadata=c._md(0, "GetBlock", req)), 60
            )
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
