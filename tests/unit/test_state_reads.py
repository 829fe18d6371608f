"""Reads of state that grows with the ledger are metered like block reads (session 28).

GetReference with the registry at PARTICIPANTS_MAX and INSTRUMENTS_MAX cost 73 ms of the
event loop's CPU and answered 1 MB; GetBalances at INSTRUMENTS_MAX, 9 ms; GetLocks,
GetPending, GetFreezes, GetRepos, GetAttestations and GetInstrument scan records up to
their own bounds. None was metered, so one participant calling them in a loop held the
loop consensus shares. Now each is charged its CPU time to the caller's read budget
(node/runtime/_reads.py) and refused RESOURCE_EXHAUSTED with a retry-after hint over it,
as GetBlock is. The servicer runs in-process on a real ``Node``; the budget's clocks are
the test's (tests/unit/test_block_reads.py), so a read costs 40 ms on the meter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from node.access import Caller
from node.genesis import DemoNetwork, demo_genesis
from node.runtime import Node
from node.runtime._access import Gate
from node.runtime._api import LedgerService
from node.settlement import InstrumentKind
from node.wire import ledger_pb2 as pb
from node.wire.errors import Details
from tests.unit.test_block_reads import _Clock, _Ctx, _node, _Refused, _service

_CALLS = [
    "GetBalances",
    "GetReference",
    "GetLocks",
    "GetPending",
    "GetFreezes",
    "GetRepos",
    "GetAttestations",
    "GetInstrument",
]


@pytest.fixture(scope="module")
def solo() -> DemoNetwork:
    return demo_genesis(validators=1, quorum=1, seed=b"state-reads")


@pytest.fixture
async def node(solo: DemoNetwork) -> AsyncIterator[Node]:
    n = await _node(solo, blocks=1, txs=2)
    try:
        yield n
    finally:
        n.stop()
        n.close()


def _request(node: Node, call: str, who: str) -> Any:
    match call:
        case "GetBalances":
            return pb.BalancesRequest(account=who)  # its own: a party reads only those
        case "GetInstrument":
            bond = next(i for i in node.genesis.instruments if i.kind is not InstrumentKind.CASH)
            return pb.InstrumentRequest(instrument=bond.id)
        case _:
            return getattr(pb, call.removeprefix("Get") + "Request")()


async def _read(svc: LedgerService, node: Node, call: str, who: str) -> str:
    """OK, or the refusal's code: what ``who`` is answered."""
    Gate.enter(Caller(who, observer=False))
    try:
        await getattr(svc, call)(_request(node, call, who), _Ctx())
        return "OK"
    except _Refused as e:
        return e.code.name


@pytest.mark.parametrize("call", _CALLS)
async def test_a_state_read_over_the_budget_is_refused_with_a_hint(node: Node, call: str) -> None:
    """Three reads of 40 ms take the 100 ms burst (the third into debt), the fourth is
    refused, named and counted; another participant's budget is its own."""
    clock = _Clock()
    svc = _service(node, clock)
    assert [await _read(svc, node, call, "BANK05") for _ in range(3)] == ["OK"] * 3
    Gate.enter(Caller("BANK05", observer=False))
    with pytest.raises(_Refused) as refused:
        await getattr(svc, call)(_request(node, call, "BANK05"), _Ctx())
    e = refused.value
    assert e.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.details == Details(
        "LIMIT_REACHED", {"limit": "reads per participant"}, retry_after_ms=401
    )
    assert node.metrics.block_reads_over_budget.labels(call=call)._value.get() == 1
    assert await _read(svc, node, call, "BANK04") == "OK"  # the control


async def test_one_budget_meters_block_and_state_reads_together(node: Node) -> None:
    """A participant cannot read blocks on its budget and then state on a second one."""
    clock = _Clock()
    svc = _service(node, clock)
    assert await _read(svc, node, "GetBalances", "BANK05") == "OK"
    Gate.enter(Caller("BANK05", observer=False))
    for height in (1, 1):
        await svc.GetBlock(pb.BlockRequest(height=height), _Ctx())  # type: ignore[arg-type]
    assert await _read(svc, node, "GetReference", "BANK05") == "RESOURCE_EXHAUSTED"
