"""Review 32: a repo's lapse is an event of its block, seen where blocks are read.

An OPEN repo past its default deadline lapses DEFAULTED at the end of a block
(``_repo.lapse``); before review 32 nothing in the block said so, so the SDK's block view,
the CLI and the console (and an auditor reading blocks) could not see when or why a repo
defaulted. Here a real chain (``Chain``: apply_block, real headers and commit
certificates) lapses a repo, and the SDK checks the block's events against the next
block's certified header, as for a pending trade's events (ADR 0014, ADR 0026).
"""

from __future__ import annotations

import argparse
import contextlib

import pytest

from client import BadResponseError, BlockEvent, _cli_net
from client._cli_settlement import fails_of, report_of
from client.console._model import ConsoleModel
from node.codec import EncodeError
from node.config import BLOCK_TXS_MAX, PENDING_MAX, REPO_LAPSES_PER_BLOCK_MAX
from node.runtime._api import block_pb
from node.settlement import RepoStatus, ResultCode, SignedTx, TxResult, repo
from node.store._records import decode_results, encode_results
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.ledger_helpers import pinned_tls, shared_net
from tests.repo_helpers import RepoTx
from tests.unit import test_pending_cli as _pending_cli
from tests.unit.test_party_index_hostile import _sdk

NET = shared_net()
RC = ResultCode


def _lapsed() -> tuple[Chain, bytes, bytes]:
    """Block 1 opens repo R1 (close at genesis + 2 s, default deadline + 3 s; blocks are a
    second apart); blocks 2-4 are empty: block 3 is at the deadline instant, block 4 passes
    it and lapses the repo; block 5 certifies block 4's results."""
    pinned, certs = pinned_tls(NET)
    chain = Chain(pinned)
    g = pinned.genesis.genesis_time_ms
    rtx = RepoTx(pinned, g + 1_000)
    raw = rtx.open(close_ms=g + 2_000, default_ms=g + 3_000)
    chain.commit([raw])
    assert [r.code for r in chain.outcomes[1].results] == [RC.OK]
    for _ in range(4):
        chain.commit([])
    assert repo(chain.store, "R1").status is RepoStatus.DEFAULTED  # type: ignore[union-attr]
    return chain, certs, SignedTx.decode(raw).tx_id


async def test_the_sdk_shows_a_lapse_as_a_certified_event_of_its_block() -> None:
    """BlockView.events of block 4 holds the lapse (its RepoOpen's id, REPO_LAPSED),
    proven with the block's results; block 3, at the deadline instant, holds none (the
    control). A node that changes the event's code is refused: the results tree the next
    header certifies says REPO_LAPSED."""
    chain, certs, open_id = _lapsed()
    c = _sdk(chain.net, certs, "AUDITOR")
    node = chain.node()
    try:
        at_deadline = c._block_view(block_pb(node, chain.store.block(3)))  # type: ignore[arg-type]
        assert at_deadline.events == ()
        honest = block_pb(node, chain.store.block(4))  # type: ignore[arg-type]
        view = c._block_view(honest)
        assert view.results_proven and view.transactions == ()
        assert view.events == (BlockEvent(0, open_id, RC.REPO_LAPSED),)
        assert view.events[0].repo_lapse
        forged = pb.BlockInfo()
        forged.CopyFrom(honest)
        forged.events[0].code = RC.FAILED_DEADLINE  # type: ignore[assignment]
        with pytest.raises(BadResponseError, match="not the ones"):
            c._block_view(forged)
        hidden = pb.BlockInfo()
        hidden.CopyFrom(honest)
        del hidden.events[:]  # a node leaving the lapse out
        with pytest.raises(BadResponseError):
            c._block_view(hidden)
    finally:
        await c.aclose()


async def test_the_cli_and_the_console_name_a_lapse_as_such(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ledger block 4` prints the lapse (not as a pending trade) and its JSON says its
    kind; the console's block page and fails page call it a repo lapse, neither a
    settlement fail of a trade nor a bad instruction."""
    chain, certs, open_id = _lapsed()
    c = _sdk(chain.net, certs, "AUDITOR")
    try:
        view = c._block_view(block_pb(chain.node(), chain.store.block(4)))  # type: ignore[arg-type]
    finally:
        await c.aclose()

    class _Client:
        def block(self, height: int) -> object:
            assert height == 4
            return view

    monkeypatch.setattr(_cli_net, "_client", lambda *a: contextlib.nullcontext(_Client()))
    args = argparse.Namespace(height=4, json=False)
    assert _cli_net._block(args) == 0
    out = capsys.readouterr().out
    assert f"event #0: repo opened by {open_id.hex()[:16]} lapsed DEFAULTED" in out
    assert "pending trade" not in out
    assert _cli_net._block(argparse.Namespace(height=4, json=True)) == 0
    assert '"kind": "repo_lapse"' in capsys.readouterr().out
    m = ConsoleModel(chain.net.genesis)
    doc = m.add_block(view)
    assert [(e["tx_id"], e["kind"]) for e in doc["events"]] == [(open_id.hex(), "repo_lapse")]
    recent = m.fails()["recent"]
    assert [(r["code"], r["fail"], r["kind"]) for r in recent] == [
        ("REPO_LAPSED", False, "repo lapsed (defaulted)")
    ]


def test_the_fails_report_counts_a_lapse_apart_from_the_trades_fails() -> None:
    """`ledger report settlement` counted every event that was not a settlement as a
    failed trade: a lapse (no settlement instruction entered) is counted as a repo lapse,
    and `ledger fails` does not list it; the control, a pending trade's FAILED_DEADLINE
    in the same block, is a fail."""
    late, opened = b"l" * 32, b"o" * 32
    blocks = [
        _pending_cli._block(9, 1_000, [], [(late, RC.FAILED_DEADLINE), (opened, RC.REPO_LAPSED)])
    ]
    report = report_of(blocks, 9, 9, lambda tid: None)
    assert (report.failed, report.repos_lapsed) == ({"FAILED_DEADLINE": 1}, 1)
    assert report.to_json()["repos_lapsed"] == 1
    assert [(f.tx_id, f.code) for f in fails_of(blocks)] == [(late, RC.FAILED_DEADLINE)]


def test_the_store_holds_a_full_block_with_every_kind_of_event() -> None:
    """BLOCK_RESULTS_MAX counted transactions and pending events only: a full block of
    BLOCK_TXS_MAX transactions that also ended PENDING_MAX instructions and lapsed
    REPO_LAPSES_PER_BLOCK_MAX repos could not be written (the node halts on its own
    block). It round-trips now; one result more is refused (the control)."""
    results = (
        [TxResult(bytes([1]) * 32, RC.OK, recorded=True)] * BLOCK_TXS_MAX
        + [TxResult(bytes([2]) * 32, RC.FAILED_DEADLINE, False, event=True)] * PENDING_MAX
        + [TxResult(bytes([3]) * 32, RC.REPO_LAPSED, False, event=True)] * REPO_LAPSES_PER_BLOCK_MAX
    )
    assert decode_results(encode_results(results)) == tuple(results)
    with pytest.raises(EncodeError, match="results in a block"):
        encode_results([*results, results[0]])
