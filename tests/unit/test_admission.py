"""Admission (``precheck``) refuses cheaply what can never succeed, and nothing else: each
refusal here is also refused by ``apply_block``, and every transaction that can settle
is admitted."""

from __future__ import annotations

import pytest

from node import crypto
from node.genesis import DemoNetwork
from node.settlement import BlockContext, ResultCode, apply_block, precheck
from node.store import MemoryStore
from tests.ledger_helpers import HOUR_MS, TxFactory

RC = ResultCode
TOLERANCE_MS = 5_000


def _admit(net: DemoNetwork, raw: bytes, now_ms: int) -> ResultCode:
    return precheck(net.genesis, raw, now_ms=now_ms, tolerance_ms=TOLERANCE_MS).code


def _settles_as(store: MemoryStore, raw: bytes, time_ms: int) -> ResultCode:
    ctx = BlockContext(store.head().height + 1, time_ms)
    return apply_block(store, [raw], ctx).results[0].code


def _cases(txf: TxFactory, net: DemoNetwork) -> list[tuple[str, bytes, ResultCode]]:
    t0 = txf.t0
    return [
        ("mint by a bank", txf.signed(txf.mint(by="BANK01")), RC.UNAUTHORIZED),
        (
            "cash minted by the CSD",
            txf.signed(txf.mint(by="CSD", instrument=net.cash)),
            RC.UNAUTHORIZED,
        ),
        ("mint to a non-holder", txf.signed(txf.mint(to="REGULATOR")), RC.UNAUTHORIZED),
        ("burn by a bank", txf.signed(txf.burn(by="BANK02", holder="BANK02")), RC.UNAUTHORIZED),
        (
            "transfer to a non-holder",
            txf.signed(txf.transfer(receiver="REGULATOR")),
            RC.UNAUTHORIZED,
        ),
        ("dvp with a non-holder", txf.signed(txf.dvp(buyer="COMPLIANCE")), RC.UNAUTHORIZED),
        ("expired", txf.signed(txf.transfer(expiry_ms=t0 - TOLERANCE_MS - 1)), RC.EXPIRED),
        (
            "deadline passed",
            txf.signed(txf.dvp(deadline_ms=t0 - TOLERANCE_MS - 1)),
            RC.DEADLINE_PASSED,
        ),
    ]


def test_what_can_never_succeed_is_refused_and_would_be_refused_in_a_block(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    now = txf.t0
    for what, raw, code in _cases(txf, net):
        assert _admit(net, raw, now) is code, what
        assert _settles_as(store, raw, now) is not RC.OK, f"{what}: admission refused a settler"


def test_whatever_can_settle_is_admitted(
    store: MemoryStore, txf: TxFactory, net: DemoNetwork
) -> None:
    now = txf.t0
    good = [
        txf.signed(txf.dvp()),
        txf.signed(txf.transfer()),
        txf.signed(txf.mint(to="BANK03")),
        txf.signed(txf.mint(by="CSD")),  # custodians mint bonds
        txf.signed(txf.burn()),
        # within the clock tolerance: a block may still carry it
        txf.signed(txf.transfer(expiry_ms=now - TOLERANCE_MS)),
    ]
    for raw in good:
        assert _admit(net, raw, now) is RC.OK
    # negative control: the same ledger settles them (the tolerant one at a block time
    # that trails the node's clock by the tolerance)
    for raw in good[:-1]:
        assert _settles_as(store, raw, now) is RC.OK
    assert _settles_as(store, good[-1], now - TOLERANCE_MS) is RC.OK


def test_without_a_clock_only_roles_are_judged(txf: TxFactory, net: DemoNetwork) -> None:
    old = txf.signed(txf.transfer(expiry_ms=txf.t0 - HOUR_MS))
    assert precheck(net.genesis, old).code is RC.OK
    assert precheck(net.genesis, txf.signed(txf.mint(by="BANK01"))).code is RC.UNAUTHORIZED


@pytest.mark.parametrize("garbage", [b"", b"\x00" * 10, crypto.sha256(b"x")])
def test_earlier_codes_keep_their_precedence(net: DemoNetwork, garbage: bytes) -> None:
    assert _admit(net, garbage, 0) is RC.MALFORMED
