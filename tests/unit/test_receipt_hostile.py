"""Hostile review of receipts, their verification and the SDK's block checks (issue 13,
session 15, branch h-rcpt).

The attacker is a Byzantine validator (or a man in the middle of a client holding no
keys) forging or altering receipts, blocks and proofs, or a party handing a forged
receipt file to a third party who checks it offline with ``ledger verify-receipt``.
Each test names the attack, its impact and a severity (high: a forged receipt or block
accepted; medium: a claim the SDK presents as checked rests on one node's word; low: a
crash or a confusing answer instead of a clean "invalid").

Chains are built by hand from the real pieces (``tests.chain_helpers.Chain``: real
blocks, commit certificates by q genesis validators, the node's own receipt builder), so
every hostile answer below is one a Byzantine node could assemble from committed data.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from client import (
    AsyncLedgerClient,
    BadResponseError,
    Endpoint,
    InvalidReceiptError,
    NotFoundError,
    ParticipantKey,
    Receipt,
    ResultCode,
    SignedTransaction,
    _cli_net,
    verify_receipt,
)
from client.cli import main
from node import crypto
from node.access import Caller
from node.genesis import DemoNetwork, dump_genesis
from node.runtime._api import block_pb, filtered_block_pb
from node.settlement import SignedTx, encode_body, tx_id
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.gov_helpers import new_key, rotate
from tests.gov_helpers import signed as gov_signed
from tests.ledger_helpers import TxFactory, pinned_tls, shared_net

# --- the receipt file a third party is handed (Receipt.loads, `ledger verify-receipt`) ---

_FIELDS: dict[str, Any] = {
    "format": "dvp-ledger/receipt/v1",
    "tx_id": "00" * 32,
    "code": "OK",
    "height": 1,
    "position": 0,
    "block_hash": "00" * 32,
    "block_time_ms": 0,
    "certificate": "",
    "block_header": "",
    "transaction": "",
    "tx_path": [],
    "result_proof": None,
}


def _doc_with(path: tuple[str, ...], literal: str) -> str:
    """The receipt JSON with the field at ``path`` replaced by a raw JSON ``literal``."""
    doc: dict[str, Any] = json.loads(json.dumps(_FIELDS))
    doc["result_proof"] = {"header": "", "certificate": "", "path": [], "leaf_count": 0}
    doc["event_proof"] = {"code": "OK", "height": 1, "index": 0, "leaf_count": 1}
    doc["event_proof"] |= {"header": "", "certificate": "", "path": []}
    at = doc
    for key in path[:-1]:
        at = at[key]
    at[path[-1]] = "__LITERAL__"
    return json.dumps(doc).replace('"__LITERAL__"', literal)


_HOSTILE_FILES = {
    # Python's json reads 1e999 as float('inf'); int(inf) raises OverflowError.
    "infinite height": _doc_with(("height",), "1e999"),
    "infinite position": _doc_with(("position",), "-1e999"),
    "infinite leaf count": _doc_with(("result_proof", "leaf_count"), "1e999"),
    "infinite event height": _doc_with(("event_proof", "height"), "1e999"),
    # json.loads itself raises ValueError (not JSONDecodeError) past 4,300 digits.
    "a 5,000-digit height": _doc_with(("height",), "9" * 5000),
    # and RecursionError for deep nesting.
    "nesting 100,000 deep": "[" * 100_000,
}


@pytest.mark.parametrize("text", _HOSTILE_FILES.values(), ids=_HOSTILE_FILES.keys())
def test_a_hostile_receipt_file_is_invalid_not_a_crash(text: str) -> None:
    """Attack: a party hands a third party a receipt file whose JSON holds ``1e999`` (read
    as infinity), a 5,000-digit number, or 100,000 nested brackets. Impact: ``Receipt.loads``
    raised OverflowError, ValueError or RecursionError instead of InvalidReceiptError, so
    ``ledger verify-receipt`` died with a traceback (its main catches CliError only) and an
    SDK caller catching InvalidReceiptError crashed. Severity: low (no forged receipt is
    accepted; the verifier fails loudly instead of answering "invalid"). Fixed: ``loads``
    and ``from_json`` turn these into InvalidReceiptError."""
    with pytest.raises(InvalidReceiptError):
        Receipt.loads(text)


def test_verify_receipt_cli_answers_a_hostile_file_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same attack through ``ledger verify-receipt``: exit 1 and one error line, no
    traceback. Severity: low."""
    genesis = tmp_path / "genesis.json"
    dump_genesis(shared_net().genesis, genesis)
    for i, text in enumerate(_HOSTILE_FILES.values()):
        f = tmp_path / f"r{i}.json"
        f.write_text(text)
        assert main(["verify-receipt", str(f), "--genesis", str(genesis)]) == 1
        _, err = capsys.readouterr()
        assert err.startswith("ledger: error: invalid receipt: ") and err.count("\n") == 1


# --- the SDK: answers of one hostile node ---------------------------------------------


class _Stub:
    """A node's Ledger stub answering every call with ``answer(method, request)``."""

    def __init__(self, answer: Any) -> None:
        self._answer = answer

    def __getattr__(self, method: str) -> Any:
        def call(req: Any, **kw: Any) -> Any:
            async def run() -> Any:
                return self._answer(method, req)

            return asyncio.ensure_future(run())

        return call


@pytest.fixture(scope="module")
def pinned() -> tuple[DemoNetwork, bytes]:
    return pinned_tls(shared_net())


def _client(
    pinned: tuple[DemoNetwork, bytes], answer: Any, who: str | None = None
) -> AsyncLedgerClient:
    """A client of stand-in answers; calling as ``who`` (a filtered block is for a caller
    the node identified, ADR 0025)."""
    net, certs = pinned
    key = None if who is None else ParticipantKey(who, net.participant_keys[who])
    c = AsyncLedgerClient(
        [Endpoint("127.0.0.1:1", "node-00")], tls_certs=certs, genesis=net.genesis, identity=key
    )
    stub = _Stub(answer)
    c._stub = lambda i: stub  # type: ignore[method-assign]
    return c


@pytest.fixture(scope="module")
def refused_chain(pinned: tuple[DemoNetwork, bytes]) -> tuple[Chain, bytes]:
    """Block 1 holds an authentic transfer that is refused (far more than the sender
    holds), a small one that settles and bytes that do not decode (MALFORMED, whose id
    is the hash of the whole bytes); block 2 certifies their results."""
    net, _ = pinned
    txf = TxFactory(net)
    refused = txf.signed(txf.transfer(amount=10**15))
    chain = Chain(net)
    chain.commit([refused, txf.signed(txf.transfer()), b"not a transaction"])
    chain.commit([])
    return chain, refused


async def test_receipt_without_wait_proves_the_result_when_asked(
    pinned: tuple[DemoNetwork, bytes], refused_chain: tuple[Chain, bytes]
) -> None:
    """Attack: ``receipt(tx_id, wait=False)`` (``prove_result`` True by default) asks
    GetTransaction; a hostile node answers COMMITTED with the genuine inclusion and
    certificate of a refused transfer, drops the result proof and says ``OK``. Impact: the
    SDK checked that receipt with ``require_result=False`` whatever ``prove_result`` said,
    so it returned ``receipt.ok`` True for a refused trade on one node's word, where the
    caller had asked for the result to be proven (``wait=True`` refuses the same answer).
    Severity: medium (the result is forged; ``result_proof is None`` shows it to a caller
    who looks). Fixed: without wait, ``prove_result`` True refuses a receipt without its
    result proof (NotFoundError: the next block proves it); the console's fallback asks
    for finality alone explicitly."""
    chain, refused = refused_chain
    tid = tx_id(SignedTx.decode(refused).body)
    genuine = chain.node().receipt(tid)
    assert genuine is not None and genuine.code is not ResultCode.OK
    verify_receipt(genuine, pinned[0].genesis)  # control: the honest receipt is a refusal
    forged = dataclasses.replace(genuine, code=ResultCode.OK, result_proof=None)
    with pytest.raises(InvalidReceiptError, match="result"):  # control: offline, refused
        verify_receipt(forged, pinned[0].genesis)
    verify_receipt(forged, pinned[0].genesis, require_result=False)  # finality alone holds
    status = pb.TransactionStatus(tx_id=tid, state=pb.COMMITTED, receipt=forged.to_pb())
    c = _client(pinned, lambda method, req: status)
    try:
        unproven = await c.receipt(tid, wait=False, prove_result=False)  # asked for no proof
        assert unproven.result_proof is None
        with pytest.raises(NotFoundError, match="result"):
            await c.receipt(tid, wait=False)
    finally:
        await c.aclose()


def _block_info(chain: Chain, height: int) -> pb.BlockInfo:
    stored = chain.store.block(height)
    assert stored is not None
    return block_pb(chain.node(), stored)


async def test_a_block_binds_each_transaction_to_its_id(
    pinned: tuple[DemoNetwork, bytes], refused_chain: tuple[Chain, bytes]
) -> None:
    """Attack: ``block(h)`` / ``blocks()`` / ``events(account)`` through a hostile node.
    It serves the real certified block 1 but swaps the transaction ids its results list
    carry, so the refused transfer is reported under the settled transfer's id and the
    settled one under the refused one's (any id can be put there: one never included).
    Impact: the SDK checked the block's certificate and then took each ``BlockTx.tx_id``
    from the node's list without hashing the transaction beside it, so a client
    reconciling its trades by id from a "certified" block saw a trade that was never
    included as final there, and ``AccountEvent.tx_id`` named the wrong transaction. The
    id is a hash of the certified bytes: nothing excuses taking it on trust (unlike the
    result code, which only the next block certifies). Severity: medium. Fixed:
    ``_block_tx`` hashes each transaction as execution does and refuses a block whose
    node gives another id."""
    chain, _ = refused_chain
    c = _client(pinned, None)
    try:
        honest = _block_info(chain, 1)
        view = c._block_view(honest)  # control: the honest block passes, ids as hashed
        txs = chain.blocks[1].txs
        assert [t.tx_id for t in view.transactions] == [
            *(tx_id(SignedTx.decode(raw).body) for raw in txs[:2]),
            crypto.sha256(txs[2]),
        ]
        assert [t.code for t in view.transactions][1:] == [ResultCode.OK, ResultCode.MALFORMED]
        swapped = pb.BlockInfo()
        swapped.CopyFrom(honest)
        a, b = swapped.results[0].tx_id, swapped.results[1].tx_id
        swapped.results[0].tx_id, swapped.results[1].tx_id = b, a
        with pytest.raises(BadResponseError, match="is not its hash"):
            c._block_view(swapped)
        invented = pb.BlockInfo()
        invented.CopyFrom(honest)
        invented.results[1].tx_id = crypto.sha256(b"never included")
        with pytest.raises(BadResponseError, match="is not its hash"):
            c._block_view(invented)
    finally:
        await c.aclose()


async def test_a_filtered_block_shows_each_transaction_once(
    pinned: tuple[DemoNetwork, bytes], refused_chain: tuple[Chain, bytes]
) -> None:
    """Attack: BANK01 (no observer role) follows its trades with ``block(h)`` /
    ``blocks()`` / ``events("BANK01")`` through a hostile node. The node answers the real
    party-filtered block 1 but lists BANK01's settled transfer twice (its receipt and
    result repeated). Impact: each copy passes ``_filtered_view``'s checks (header,
    certificate, the receipt's Merkle path to that header), so the SDK showed the block
    holding the transfer twice and ``events`` yielded it twice: a back office summing its
    legs books the cash twice. Nothing but the positions tells the copies apart, and a
    block holds one transaction per position. Severity: low (no transaction is invented;
    one is counted twice). Fixed: a filtered block's positions must strictly increase."""
    chain, _ = refused_chain
    stored = chain.store.block(1)
    assert stored is not None
    honest = filtered_block_pb(chain.node(), stored, Caller("BANK01", observer=False))
    c = _client(pinned, None, "BANK01")
    try:
        view = c._block_view(honest)  # control: the honest filtered block passes
        assert view.filtered and [t.position for t in view.transactions] == [0, 1]
        doubled = pb.BlockInfo()
        doubled.CopyFrom(honest)
        doubled.receipts.append(honest.receipts[1])
        doubled.results.append(honest.results[1])
        with pytest.raises(BadResponseError, match="twice or out of order"):
            c._block_view(doubled)
    finally:
        await c.aclose()


# --- a copy signed with a key governance rotated out (ADR 0024) ---------------------------


@pytest.fixture(scope="module")
def rotated_chain(pinned: tuple[DemoNetwork, bytes]) -> tuple[Chain, bytes, bytes]:
    """Block 1 rotates BANK01's key; block 2 holds a transfer body signed with the old key
    (refused ``BAD_SIGNATURE``, not recorded under its id: that id is never final); block 3
    another transfer signed with the new key (recorded, settled); block 4 certifies block
    3's results. Returns the chain, the stale copy's id and the new-key transfer's id."""
    net, _ = pinned
    txf = TxFactory(net)
    fresh = new_key("BANK01 rotated")
    chain = Chain(net)
    chain.commit([gov_signed(net, rotate(txf, "BANK01", fresh))])
    stale = SignedTx(encode_body(txf.transfer("BANK01", "BANK02", 7)), ())
    chain.commit([stale.with_signature("BANK01", net.participant_keys["BANK01"]).encode()])
    current = SignedTx(encode_body(txf.transfer("BANK01", "BANK02", 8)), ())
    chain.commit([current.with_signature("BANK01", fresh).encode()])
    chain.commit([])
    return chain, tx_id(stale.body), tx_id(current.body)


def _stale_finality_only(chain: Chain) -> Receipt:
    """What a hostile node serves for the stale copy's id: its genuine inclusion, no
    result proof, and ``OK`` in its own words."""
    return dataclasses.replace(chain.forged_receipt(2, 0), code=ResultCode.OK, result_proof=None)


def test_a_finality_only_receipt_of_a_copy_signed_with_a_rotated_out_key_is_refused(
    rotated_chain: tuple[Chain, bytes, bytes],
) -> None:
    """Attack: BANK01's key leaks; governance rotates it (block 1). The holder of the old
    key signs a transfer body of its choosing with it and gets it into block 2 (any node
    forwards it; execution refuses it ``BAD_SIGNATURE``: the copy is not recorded under its
    id, ADR 0007). A hostile node then serves a finality-only receipt for that id (no
    result proof; ``code`` OK in its own words), or the key holder hands one to a third
    party checking with ``ledger verify-receipt --finality-only``. Impact: without a result
    proof, ``verify_receipt`` stood in for the recorded leaf by checking the copy's
    signatures against genesis (ADR 0016), where the old key is still BANK01's, so the
    receipt verified as proof that the id was final: an id the ledger refused passed as
    final (the SDK's ``transaction()`` said COMMITTED, ``receipt(prove_result=False)`` took
    it too). The result proof refuses it (the control). Severity: low (needs a rotated-out
    key, i.e. the very compromise rotation answers, and finality-only checking). Fixed
    (ADR 0024): only the result proof speaks for an id. Without it a receipt is not
    ``final`` and proves only that this copy is in a committed block (true here); asked
    whether the id is final, ``verify_receipt`` refuses it; the SDK and the CLI say
    INCLUDED / NOT final (the tests below)."""
    chain, stale_id, _ = rotated_chain
    net = chain.net
    assert chain.outcomes[2].results[0].code is ResultCode.BAD_SIGNATURE
    assert not chain.outcomes[2].results[0].recorded
    proven = chain.forged_receipt(2, 0)
    with pytest.raises(InvalidReceiptError, match="not the one recorded"):  # control
        verify_receipt(proven, net.genesis)
    finality_only = _stale_finality_only(chain)
    assert finality_only.tx_id == stale_id and proven.final and not finality_only.final
    with pytest.raises(InvalidReceiptError, match="no result proof"):  # is the id final? no
        verify_receipt(finality_only, net.genesis)
    # What it does prove, and nothing more: this copy is in committed block 2.
    verify_receipt(finality_only, net.genesis, require_result=False)


def test_a_receipt_without_its_result_proof_of_a_rotated_in_key_shows_inclusion(
    rotated_chain: tuple[Chain, bytes, bytes],
) -> None:
    """The other side of the old genesis check: a transfer signed with BANK01's *new* key
    (recorded, settled) had its receipt without a result proof refused ("signatures do not
    verify against genesis"), so ``submit(prove_result=False)`` and ``transaction()`` of a
    rotated or governance-added participant failed on every node until the next block.
    Inclusion needs no signature check: it verifies, and is not ``final``."""
    chain, _, current_id = rotated_chain
    net = chain.net
    genuine = chain.node().receipt(current_id)
    assert genuine is not None and genuine.ok and genuine.final and genuine.height == 3
    verify_receipt(genuine, net.genesis)  # control: with its proof, final and settled
    unproven = dataclasses.replace(genuine, result_proof=None)
    verify_receipt(unproven, net.genesis, require_result=False)
    assert not unproven.final


async def test_a_filtered_block_holding_a_trade_signed_with_a_rotated_in_key_is_read(
    pinned: tuple[DemoNetwork, bytes], rotated_chain: tuple[Chain, bytes, bytes]
) -> None:
    """BANK01 (no observer role) reads block 3, its transfer signed with its new key. A
    filtered block carries each transaction's receipt without a result proof; the SDK
    refused that honest block ("receipt failed verification": the signature is not
    BANK01's genesis key), on every node. Now it shows the transfer, and its receipt is
    not ``final`` (the block's codes are the node's word, as for any block)."""
    chain, _, current_id = rotated_chain
    stored = chain.store.block(3)
    assert stored is not None
    honest = filtered_block_pb(chain.node(), stored, Caller("BANK01", observer=False))
    c = _client(pinned, None, "BANK01")
    try:
        view = c._block_view(honest)
        assert [t.tx_id for t in view.transactions] == [current_id]
        assert view.receipts is not None and not view.receipts[0].final
    finally:
        await c.aclose()


async def test_the_sdk_reports_a_receipt_without_its_result_proof_included_not_committed(
    pinned: tuple[DemoNetwork, bytes], rotated_chain: tuple[Chain, bytes, bytes]
) -> None:
    """The attack through the SDK: a hostile node answers GetTransaction COMMITTED, and
    WaitForFinality, with the stale copy's finality-only receipt. ``transaction()`` said
    COMMITTED for an id the ledger refused; now INCLUDED (this copy is in a block, the id
    not proven final), and ``receipt(prove_result=False)`` (with or without wait) returns
    a receipt that is not ``final``. Control: the new-key transfer's receipt with its
    result proof is COMMITTED."""
    chain, stale_id, current_id = rotated_chain
    stale = _stale_finality_only(chain)
    genuine = chain.node().receipt(current_id)
    assert genuine is not None

    def answer(method: str, req: Any) -> Any:
        r = stale if req.tx_id == stale_id else genuine
        if method == "GetTransaction":
            return pb.TransactionStatus(tx_id=req.tx_id, state=pb.COMMITTED, receipt=r.to_pb())
        assert method == "WaitForFinality"
        return r.to_pb()

    c = _client(pinned, answer)
    try:
        status = await c.transaction(stale_id)
        assert status.state == "INCLUDED" and status.receipt is not None
        assert not status.receipt.final
        assert not (await c.receipt(stale_id, wait=False, prove_result=False)).final
        assert not (await c.receipt(stale_id, prove_result=False)).final
        with pytest.raises(NotFoundError, match="result"):  # asked for the proof: none
            await c.receipt(stale_id, wait=False)
        proven = await c.transaction(current_id)  # control
        assert proven.state == "COMMITTED" and proven.receipt == genuine
    finally:
        await c.aclose()


def test_verify_receipt_cli_does_not_call_a_receipt_without_its_result_proof_final(
    rotated_chain: tuple[Chain, bytes, bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The attack through ``ledger verify-receipt --finality-only``: it exited 0, "valid:
    tx ... OK in block 2", for the stale copy's id. Now ``--finality-only`` (deprecated)
    waives nothing: exit 1 with the reason; ``--inclusion-only`` exits 0 saying what was
    shown (this copy is in block 2) and "NOT final", and its JSON has no ``code`` and
    ``final`` false. Control: the new-key transfer's receipt with its proof is valid."""
    chain, _, current_id = rotated_chain
    genesis = tmp_path / "genesis.json"
    dump_genesis(chain.net.genesis, genesis)
    stale = tmp_path / "stale.json"
    stale.write_text(_stale_finality_only(chain).dumps())
    base = ["verify-receipt", str(stale), "--genesis", str(genesis)]
    for flags in (["--finality-only"], []):
        assert main([*base, *flags]) == 1
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1
        assert err.startswith("ledger: error: invalid receipt: no proof of the result yet")
        assert "does not show the transaction final" in err and "--inclusion-only" in err
    assert main([*base, "--inclusion-only"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("included: a copy of tx ") and "\nNOT final: " in out
    assert "valid:" not in out
    assert main([*base, "--inclusion-only", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is True and doc["final"] is False and doc["code"] is None
    genuine = chain.node().receipt(current_id)
    assert genuine is not None
    good = tmp_path / "good.json"
    good.write_text(genuine.dumps())
    assert main(["verify-receipt", str(good), "--genesis", str(genesis), "--finality-only"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith(f"valid: tx {current_id.hex()} OK in block 3 ")
    assert "result certified by block 4" in out


def test_the_cli_prints_a_receipt_without_its_result_proof_as_not_final(
    rotated_chain: tuple[Chain, bytes, bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``ledger submit ... --finality-only`` and ``ledger tx``: a receipt without its
    result proof printed "settled in" and "result proof pending"; now "included in" and
    "NOT final yet", and the hint to check the file says ``--inclusion-only``. Control:
    the receipt with its proof prints "settled in" and its certifying block."""
    chain, _, current_id = rotated_chain
    genuine = chain.node().receipt(current_id)
    assert genuine is not None
    unproven = dataclasses.replace(genuine, result_proof=None)
    stx = SignedTransaction.from_bytes(genuine.transaction)

    class _Fake:
        def __init__(self, receipt: Receipt) -> None:
            self.receipt = receipt

        def submit(self, stx: Any, *, timeout_s: float, prove_result: bool) -> Receipt:
            return self.receipt

    args = argparse.Namespace(
        no_wait=False, timeout=5.0, finality_only=True, wait_settled=False, json=False
    )
    for receipt, said, proof in (
        (unproven, "included in ", "NOT final yet: block 4 proves whether the ledger"),
        (genuine, "settled in ", "result certified by block 4"),
    ):
        args.receipt_out = tmp_path / f"final-{receipt.final}.json"
        assert _cli_net._submit_with(_Fake(receipt), args, stx) == 0  # type: ignore[arg-type]
        out = capsys.readouterr().out
        assert out.startswith(said) and proof in out
        assert ("--inclusion-only" in out) is not receipt.final
        assert Receipt.loads(args.receipt_out.read_text()) == receipt
