"""Holders at a past height (issue 14 item 6): the client's replay of committed blocks from
genesis (client/_replay.py, AsyncLedgerClient.holders_at) against a MemoryStore history,
and its refusals: a tampered block, a wrong root, a filtered block, a gap."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncGenerator
from dataclasses import replace
from pathlib import Path

import pytest

from client import AsyncLedgerClient, BadResponseError, InvalidFieldError, PermissionDeniedError
from client._limits import REPLAY_BLOCKS_MAX
from client._replay import HolderAt, Replay, ReplayedBlock
from node import crypto
from node.genesis import DemoNetwork
from node.settlement import instrument_state
from node.store import MemoryStore
from tests.ledger_helpers import TxFactory
from tests.life_helpers import LifeTx, at, life_net, run_at

P1 = "2026-07-15"  # BOND's first coupon date


Seen = tuple[dict[str, int], dict[int, tuple[int, int]], bytes]  # holdings, paid, root


def _history(net: DemoNetwork) -> tuple[list[ReplayedBlock], list[Seen]]:
    """Five blocks committed on a validator's MemoryStore: each as a replay reads it (the
    prior root its header would carry), and what the store held about BOND after it."""
    f, life = TxFactory(net, now_ms=at(P1)), LifeTx(net)
    bond = net.bonds[0]
    bodies: list[tuple[bytes, ...]] = [
        (f.signed(f.transfer("BANK01", "BANK02", 300, instrument=bond)),),
        (),
        (life.coupon(1),),
        (f.signed(f.transfer("BANK02", "BANK03", 50, instrument=bond)), life.coupon(1)),
        (),
    ]
    store = MemoryStore(net.genesis)
    blocks: list[ReplayedBlock] = []
    seen: list[Seen] = []
    for k, raws in enumerate(bodies, start=1):
        prior = store.head().state_root
        time_ms = at(P1, k * 1000)
        run_at(store, time_ms, *raws)
        blocks.append(
            ReplayedBlock(k, crypto.sha256(k.to_bytes(8, "big")), time_ms, b"c", raws, prior)
        )
        state = instrument_state(store, net.genesis.instrument_by_id[bond])
        paid = {k: (p.total, p.holders) for k, p in state.paid.items()}
        seen.append((dict(state.holdings), paid, store.head().state_root))
    return blocks, seen


@pytest.fixture(scope="module")
def net() -> DemoNetwork:
    return life_net()


def test_replay_reaches_what_the_store_held_at_every_height(net: DemoNetwork) -> None:
    blocks, seen = _history(net)
    replay = Replay(net.genesis)
    for b, (holdings, paid, root) in zip(blocks, seen, strict=True):
        replay.apply(b)
        at_h = replay.holders(net.bonds[0], proven=True)
        assert at_h.height == b.height and at_h.state_root == root
        assert {h.account: h.units for h in at_h.holders if h.units} == holdings
        assert at_h.paid == paid
    # the history is not flat: block 4's transfer moved units, block 3 paid a coupon
    before, after = seen[2][0], seen[3][0]
    assert (before["BANK02"] - 50, before["BANK03"] + 50) == (after["BANK02"], after["BANK03"])
    assert seen[1][1] == {} and 1 in seen[2][1]


def test_a_tampered_block_is_refused_at_the_next_header(net: DemoNetwork) -> None:
    blocks, _ = _history(net)
    f = TxFactory(net, now_ms=at(P1))
    forged = f.signed(f.transfer("BANK01", "BANK02", 301, instrument=net.bonds[0]))
    replay = Replay(net.genesis)
    replay.apply(replace(blocks[0], raw_txs=(forged,)))  # its own prior root is genesis's
    with pytest.raises(BadResponseError, match="block 2's header"):
        replay.apply(blocks[1])
    dropped = Replay(net.genesis)
    for b in blocks[:2]:
        dropped.apply(b)
    dropped.apply(replace(blocks[2], raw_txs=()))  # the coupon left out
    with pytest.raises(BadResponseError):
        dropped.apply(blocks[3])


def test_a_wrong_root_a_gap_or_a_filtered_block_is_refused(net: DemoNetwork) -> None:
    blocks, _ = _history(net)
    replay = Replay(net.genesis)
    replay.apply(blocks[0])
    with pytest.raises(BadResponseError):
        replay.apply(replace(blocks[1], prior_root=bytes(32)))
    with pytest.raises(BadResponseError, match="after block 1"):
        replay.apply(blocks[2])
    with pytest.raises(PermissionDeniedError, match="auditor"):
        replay.apply(replace(blocks[1], filtered=True))
    replay.apply(blocks[1])  # none of the refusals changed the replayed state
    assert replay.height == 2


class _FakeClient(AsyncLedgerClient):
    """holders_at over a canned chain: head() and _blocks() only, no network."""

    def __init__(self, net: DemoNetwork, blocks: list[ReplayedBlock]) -> None:
        self.genesis = net.genesis
        self._chain = blocks
        self.served = 0

    async def head(self) -> int:
        return len(self._chain)

    async def _chain_height(self) -> int:  # what more than f validators report
        return len(self._chain)

    async def _blocks(self, from_height: int, *, hold: bool) -> AsyncGenerator[object, None]:  # type: ignore[override]
        assert not hold  # a replay takes an idle chain's last block unproven
        for b in self._chain[from_height - 1 :]:
            self.served += 1
            yield _View(b)


class _View:
    """The BlockView fields holders_at reads."""

    def __init__(self, b: ReplayedBlock) -> None:
        self.height, self.hash, self.time_ms = b.height, b.hash, b.time_ms
        self.certificate, self.prior_root, self.filtered = b.certificate, b.prior_root, False
        self.transactions = tuple(_Tx(r) for r in b.raw_txs)


class _Tx:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw


def test_holders_at_proves_a_past_height_by_the_next_header(net: DemoNetwork) -> None:
    blocks, seen = _history(net)
    progress: list[tuple[int, int]] = []
    client = _FakeClient(net, blocks)
    at3 = asyncio.run(client.holders_at(net.bonds[0], 3, progress=lambda *p: progress.append(p)))
    assert at3.proven and at3.height == 3 and at3.state_root == seen[2][2]
    assert client.served == 4  # blocks 1..3, and block 4 for its header's root
    assert HolderAt("BANK01", 1_000_000 - 300, 0, 0) in at3.holders
    head = asyncio.run(_FakeClient(net, blocks).holders_at(net.bonds[0], 5))
    assert not head.proven and head.state_root == seen[4][2]  # no header carries it yet
    assert progress == []  # fewer blocks than REPLAY_PROGRESS_BLOCKS


def test_a_long_replay_reports_progress(net: DemoNetwork, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("client._async.REPLAY_PROGRESS_BLOCKS", 2)
    blocks, _ = _history(net)
    progress: list[tuple[int, int]] = []
    asyncio.run(
        _FakeClient(net, blocks).holders_at(net.bonds[0], 5, progress=lambda *p: progress.append(p))
    )
    assert progress == [(2, 5), (4, 5)]


def test_holders_at_refuses_a_forged_next_header_and_bad_arguments(net: DemoNetwork) -> None:
    blocks, _ = _history(net)
    blocks[3] = replace(blocks[3], prior_root=bytes(32))
    with pytest.raises(BadResponseError):
        asyncio.run(_FakeClient(net, blocks).holders_at(net.bonds[0], 3))
    client = _FakeClient(net, blocks)
    for height in (0, REPLAY_BLOCKS_MAX + 1):
        with pytest.raises(InvalidFieldError, match="height"):
            asyncio.run(client.holders_at(net.bonds[0], height))
    with pytest.raises(InvalidFieldError, match="instrument"):
        asyncio.run(client.holders_at(net.cash, 2))
    assert client.served == 0


@pytest.mark.serial  # starts a child process (tests/isolation.py)
def test_the_sdk_still_loads_without_the_storage_engine() -> None:
    """The replay's MemoryStore is imported when a replay starts: ``import client`` must
    not pull in LMDB (node.store's package imports it)."""
    code = "import sys, client\nprint('lmdb' in sys.modules)\n"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
