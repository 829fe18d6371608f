"""Adversarial review (session 33) of the compact receipts of a party-filtered block.

Since session 33 a filtered block's receipts carry only tx_id, code, position,
transaction and tx_path (``Receipt.to_pb_in_block``) and the SDK makes each one whole
from the block's certified header and certificate (``Receipt.from_pb_in_block``), then
verifies it (``AsyncLedgerClient._in_block``). What a lying node was refused before it
is still refused (the catalogue below, each lie with the honest block as its control);
two checks of ``_in_block`` that nothing tested are pinned: a receipt at another
position of the same transaction (a block may hold copies of one signed transaction)
and a receipt whose code is not the certified result's. A client of now reads a node of
before (its whole receipts hold the compact fields), a client of before cannot read a
node of now: clients are upgraded first (docs/deploy.md, section 7). Every reader of
blocks (``block``, ``blocks``, ``events``, ``holders_at``, the CLI, the console) takes a
filtered block through a real node's client port.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from client import BadResponseError, PermissionDeniedError, _cli_net
from client.console._model import block_json
from node.access import Caller
from node.genesis import DemoNetwork, demo_genesis
from node.keyfiles import cert_pin
from node.netconfig import node_name
from node.receipt import Receipt
from node.runtime._api import filtered_block_pb
from node.settlement import ResultCode
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory, pinned_tls
from tests.tls_helpers import _make_ca, _make_node_cert, _pem_cert, _pem_key
from tests.unit.test_party_index_hostile import NET, _filtered, _sdk
from tests.unit.test_review32_pages import Largest, _client, _served


def _trade(chain: Chain, txf: TxFactory) -> None:
    """Blocks 1 and 3 hold DvPs of BANK01 (positions 0 and 2 of block 1, BANK02/BANK03's
    at 1; one at 0 of block 3); blocks 2 and 4 certify them."""
    chain.commit(
        [txf.signed(txf.dvp()), txf.signed(txf.dvp("BANK02", "BANK03")), txf.signed(txf.dvp())]
    )
    chain.commit([])
    chain.commit([txf.signed(txf.dvp(quantity=7))])
    chain.commit([])


def _two_chains() -> tuple[DemoNetwork, bytes, Chain, Chain]:
    """A chain whose blocks 1 and 3 hold DvPs of BANK01 (positions 0 and 2 of block 1,
    BANK02/BANK03's at 1; one at 0 of block 3; blocks 2 and 4 certify them), and a chain
    of another network (another chain id) with BANK01's DvP at position 0 of its block 1."""
    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    _trade(chain, txf)
    other_net, _ = pinned_tls(demo_genesis(seed=b"review33f-other-chain"))
    other, otxf = Chain(other_net), TxFactory(other_net)
    other.commit([otxf.signed(otxf.dvp()), otxf.signed(otxf.dvp("BANK02", "BANK03"))])
    other.commit([])
    return pinned, certs, chain, other


@pytest.fixture(scope="module")
def chains() -> tuple[DemoNetwork, bytes, Chain, Chain]:
    return _two_chains()


def _copy(r: pb.Receipt) -> pb.Receipt:
    out = pb.Receipt()
    out.CopyFrom(r)
    return out


def _swap(i: pb.BlockInfo, _: Chain, __: Chain) -> None:
    a, b = _copy(i.receipts[0]), _copy(i.receipts[1])
    i.receipts[0].CopyFrom(b)
    i.receipts[1].CopyFrom(a)


def _another_blocks(i: pb.BlockInfo, chain: Chain, _: Chain) -> None:
    # block 3's receipt (BANK01's DvP at position 0 there), compact or whole
    i.receipts[0].CopyFrom(_filtered(chain, "BANK01", 3).receipts[0])


def _another_blocks_whole(i: pb.BlockInfo, chain: Chain, _: Chain) -> None:
    node, stored = chain.node(), chain.store.block(3)
    assert stored is not None
    i.receipts[0].CopyFrom(node.block_receipt(stored, 0).to_pb())


def _another_chains(i: pb.BlockInfo, _: Chain, other: Chain) -> None:
    i.receipts[0].CopyFrom(_filtered(other, "BANK01").receipts[0])


LIES: dict[str, Callable[[pb.BlockInfo, Chain, Chain], None]] = {
    "receipts-swapped": _swap,
    "a-receipt-twice": lambda i, c, o: i.receipts[1].CopyFrom(i.receipts[0]),
    "another-position": lambda i, c, o: setattr(i.receipts[0], "position", 1),
    "position-left-out": lambda i, c, o: i.receipts[1].ClearField("position"),
    "another-transaction": lambda i, c, o: setattr(
        i.receipts[0], "transaction", i.receipts[1].transaction
    ),
    "another-tx-id": lambda i, c, o: setattr(i.receipts[0], "tx_id", i.receipts[1].tx_id),
    "another-code": lambda i, c, o: setattr(
        i.receipts[0], "code", int(ResultCode.INSUFFICIENT_CASH)
    ),
    "path-left-out": lambda i, c, o: i.receipts[0].ClearField("tx_path"),
    "path-cut": lambda i, c, o: i.receipts[0].tx_path.pop(),
    "a-receipt-left-out": lambda i, c, o: i.receipts.pop(),
    "a-receipt-added": lambda i, c, o: i.receipts.append(i.receipts[0]),
    "a-receipt-of-another-block": _another_blocks,
    "a-whole-receipt-of-another-block": _another_blocks_whole,
    "a-receipt-of-another-chain": _another_chains,
    "the-blocks-certificate-of-another-block": lambda i, c, o: setattr(
        i, "certificate", _filtered(c, "BANK01", 3).certificate
    ),
    "the-blocks-header-of-another-block": lambda i, c, o: setattr(
        i, "header", _filtered(c, "BANK01", 3).header
    ),
}


@pytest.mark.parametrize("lie", LIES, ids=list(LIES))
def test_every_lie_about_a_filtered_blocks_receipts_is_refused(
    chains: tuple[DemoNetwork, bytes, Chain, Chain], lie: str
) -> None:
    """A lying node serves BANK01's filtered block 1 with one thing changed in its
    receipts or in the block's header or certificate they are made whole with: each is
    a BadResponseError (the next node is asked), as before session 33. The control: the
    honest block, BANK01's two DvPs at positions 0 and 2, each receipt the node keeps."""
    net, certs, chain, other = chains
    c = _sdk(net, certs, "BANK01")
    honest = c._filtered_view(_filtered(chain, "BANK01"))
    stored = chain.store.block(1)
    assert stored is not None
    assert honest.receipts == tuple(chain.node().block_receipt(stored, p) for p in (0, 2))
    lying = _filtered(chain, "BANK01")
    LIES[lie](lying, chain, other)
    with pytest.raises(BadResponseError):
        c._filtered_view(lying)


@pytest.fixture(scope="module")
def copies() -> tuple[DemoNetwork, bytes, Chain]:
    """Block 1 holds one signed DvP of BANK01 twice: position 0 settles it (OK, recorded
    under its id), position 1 is refused DUPLICATE; block 2 certifies both results."""
    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    stx = txf.signed(txf.dvp())
    chain.commit([stx, stx])
    chain.commit([])
    return pinned, certs, chain


def test_a_receipt_of_another_copy_of_the_same_transaction_is_refused(
    copies: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """A block may hold copies of one signed transaction (a replay, refused DUPLICATE).
    A lying node answers BANK01's block 1 with position 0's receipt in place of position
    1's, with position 1's code: same id, same transaction, the certified code, a path
    that verifies (to position 0). Only the
    receipt's position against its certified result's tells them apart; without that
    check the SDK showed the settled copy twice, once as DUPLICATE, and position 1 not at
    all (the ``_in_block`` check existed, no test failed without it). The control: the
    honest block shows both copies."""
    net, certs, chain = copies
    c = _sdk(net, certs, "BANK01")
    view = c._filtered_view(_filtered(chain, "BANK01"))
    assert [(t.position, t.code) for t in view.transactions] == [
        (0, ResultCode.OK),
        (1, ResultCode.DUPLICATE),
    ]
    lying = _filtered(chain, "BANK01")
    lying.receipts[1].CopyFrom(lying.receipts[0])
    lying.receipts[1].code = lying.results[1].code  # DUPLICATE, as position 1's result
    with pytest.raises(BadResponseError, match="is not of that block"):
        c._filtered_view(lying)


def test_a_receipt_whose_code_is_not_its_certified_result_is_refused(
    chains: tuple[DemoNetwork, bytes, Chain, Chain],
) -> None:
    """A filtered block's receipt has no result proof, so ``verify_receipt`` does not
    check its code; the block's result paths certify each result's. A lying node writes
    INSUFFICIENT_CASH into the receipt of BANK01's settled DvP: without the comparison
    in ``_in_block`` (untested before) ``BlockView.receipts`` held a receipt saying the
    trade failed while the block's transactions said OK. The control: the honest block."""
    net, certs, chain, _ = chains
    c = _sdk(net, certs, "BANK01")
    assert [r.code for r in c._filtered_view(_filtered(chain, "BANK01")).receipts] == [
        ResultCode.OK,
        ResultCode.OK,
    ]
    lying = _filtered(chain, "BANK01")
    lying.receipts[0].code = int(ResultCode.INSUFFICIENT_CASH)  # type: ignore[assignment]
    with pytest.raises(BadResponseError, match="is not of that block"):
        c._filtered_view(lying)


# --- through a real node's client port -----------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Largest, Chain]]:
    """``_two_chains``' first chain on a one-validator network pinning the
    certificate it serves (blocks 1 to 4; block 4, quiet, is the head)."""
    net = demo_genesis(validators=1, quorum=1, seed=b"review33f")
    ca = _make_ca("review33f", datetime.now(UTC))
    key, cert = _make_node_cert(ca, node_name(0, 1), "127.0.0.1")
    g = net.genesis
    first = dataclasses.replace(g.validators[0], tls_cert_sha256=cert_pin(cert))
    net = dataclasses.replace(
        net, genesis=dataclasses.replace(g, validators=(first, *g.validators[1:]))
    )
    chain, txf = Chain(net), TxFactory(net)
    _trade(chain, txf)
    node = chain.node()
    try:
        yield Largest(net, node, _pem_key(key), _pem_cert(cert)), chain
    finally:
        node.close()


class _Fake:
    """What the CLI's ``_client`` yields, answering ``block`` with a view read before."""

    def __init__(self, view: Any) -> None:
        self._view = view

    def block(self, height: int) -> Any:
        return self._view


async def test_every_reader_of_blocks_takes_a_filtered_block_through_a_real_port(
    served: tuple[Largest, Chain],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """BANK01 (no observer) through the node's real client port: ``block(1)`` (GetBlock)
    and ``blocks(1)`` (StreamBlocks) show its DvPs with receipts equal to the ones the
    node keeps, ``events`` yields each, ``holders_at`` refuses filtered blocks as it
    always did, and the CLI's ``block`` and the console's block JSON show the view."""
    largest, chain = served
    node = chain.node()
    kept = {
        h: tuple(node.block_receipt(b, p) for p in ps)
        for h, ps in ((1, (0, 2)), (3, (0,)))
        if (b := chain.store.block(h)) is not None
    }
    async with _served(largest) as port, _client(largest, port, "BANK01") as c:
        got = await c.block(1)
        streamed = []
        async with contextlib.aclosing(c.blocks(1)) as blocks:
            async for b in blocks:
                streamed.append(b)
                if b.height == 3:
                    break
        events = []
        async with contextlib.aclosing(c.events("BANK01", 1)) as evs:
            async for ev in evs:
                events.append((ev.height, ev.position, ev.code))
                if len(events) == 3:
                    break
        with pytest.raises(PermissionDeniedError, match="filtered"):
            await c.holders_at(largest.net.bonds[0], 1)
    assert got.filtered and got.receipts == kept[1]
    assert [b.height for b in streamed] == [1, 2, 3]
    assert streamed[0].receipts == kept[1] and streamed[2].receipts == kept[3]
    assert events == [(1, 0, ResultCode.OK), (1, 2, ResultCode.OK), (3, 0, ResultCode.OK)]
    shown = block_json(got)
    assert shown["filtered"] and [t["position"] for t in shown["transactions"]] == [0, 2]

    @contextlib.contextmanager
    def fake(args: argparse.Namespace, implied: Any = None) -> Iterator[Any]:
        yield _Fake(got)

    monkeypatch.setattr(_cli_net, "_client", fake)
    assert _cli_net._block(argparse.Namespace(height=1, json=True)) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(t["position"], t["code"]) for t in doc["transactions"]] == [(0, "OK"), (2, "OK")]


async def test_a_client_of_now_reads_a_node_of_before_and_not_the_reverse(
    served: tuple[Largest, Chain], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgrade order. A node of before session 33 sends each receipt of a filtered block
    whole; the SDK of now reads only the receipt's own fields, which the whole form
    holds too, so it reads that node's blocks through the real port. The SDK of before
    made each receipt from the receipt alone (``Receipt.from_pb``): a compact receipt
    has no header, and it refuses every filtered block of a node of now. So clients
    are upgraded before the validators (docs/deploy.md, section 7)."""
    largest, chain = served
    stored = chain.store.block(1)
    assert stored is not None
    compact = filtered_block_pb(chain.node(), stored, Caller("BANK01", observer=False))
    c = _sdk(largest.net, largest.cert_pem, "BANK01")
    with pytest.raises(BadResponseError, match="receipt failed verification"):
        c._verified(compact.receipts[0], bytes(compact.results[0].tx_id), prove_result=False)
    monkeypatch.setattr(Receipt, "to_pb_in_block", Receipt.to_pb)  # the node of before
    whole = filtered_block_pb(chain.node(), stored, Caller("BANK01", observer=False))
    assert whole.receipts[0].block_header and whole.receipts[0].certificate
    async with _served(largest) as port, _client(largest, port, "BANK01") as client:
        got = await client.block(1)
    assert [t.position for t in got.transactions] == [0, 2]
    assert got.receipts == tuple(chain.node().block_receipt(stored, p) for p in (0, 2))
