"""An open stream and the key it was opened with (docs/cluster.md "Security: who reads
what"). A call's signed identity is checked when it opens; a stream stays open as long
as its client reads. Governance rotating a participant's key (because it was stolen,
say) ends every stream opened with the old key: ``StreamBlocks`` at the next block,
``SubmitStream`` at its next event, each with UNAUTHENTICATED. A stream opened with the
current key goes on (the control), and one of a participant whose role changed reads
with its role at the head.

In-process: a chain of real blocks with real certificates (``tests.chain_helpers``) and
the real servicer; the callers are what the access gate makes of a verified call."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from node import crypto
from node.access import Caller
from node.runtime._access import Gate
from node.runtime._api import LedgerService
from node.settlement import Registry, ResultCode, Role
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.gov_helpers import rotate, set_roles
from tests.gov_helpers import signed as gov_signed
from tests.ledger_helpers import TxFactory, pinned_tls, shared_net
from tests.unit.test_block_reads import _Ctx, _Refused
from tests.unit.test_observer_hostile import _StreamCtx

NET = shared_net()


def _caller(chain: Chain, pid: str) -> Caller:
    """What the gate makes of ``pid``'s verified call now: its key at the head."""
    p = Registry.of(chain.store).participant_by_id[pid]
    return Caller(pid, p.observer, p.public_key)


async def _next(stream: object) -> pb.BlockInfo:
    return await asyncio.wait_for(anext(stream), 5)  # type: ignore[call-overload]


async def test_a_block_stream_ends_once_its_key_is_rotated_and_others_go_on() -> None:
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([txf.signed(txf.dvp())])  # block 1: BANK01 and BANK02
    chain.commit([])  # block 2 certifies it
    node = chain.node()
    svc = LedgerService(node, {})
    streams = {}
    try:
        for pid in ("BANK01", "BANK02"):
            Gate.enter(_caller(chain, pid))  # read when the stream starts
            s = svc.StreamBlocks(pb.StreamBlocksRequest(from_height=1), _Ctx())  # type: ignore[arg-type]
            streams[pid] = s
            assert (await _next(s)).height == 1
            assert (await _next(s)).height == 2
        chain.commit([gov_signed(pinned, rotate(txf, "BANK01", crypto.SigningKey.generate()))])
        chain.commit([])  # block 4
        assert chain.outcomes[3].results[0].code is ResultCode.OK
        node._head_changed.set()
        with pytest.raises(_Refused) as e:
            await _next(streams["BANK01"])
        assert e.value.code is grpc.StatusCode.UNAUTHENTICATED
        assert "rotated" in str(e.value)
        # the control: BANK02's key is unchanged, its stream goes on
        assert (await _next(streams["BANK02"])).height == 3
        assert node.metrics.calls_ended_key_rotated._value.get() == 1
    finally:
        for s in streams.values():
            await s.aclose()  # type: ignore[attr-defined]


async def test_a_block_stream_opened_with_the_new_key_goes_on() -> None:
    """The control of the test above from the other side: the rotation is the stream's
    own history, not a reason to end it."""
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([gov_signed(pinned, rotate(txf, "BANK01", crypto.SigningKey.generate()))])
    chain.commit([])
    svc = LedgerService(chain.node(), {})
    Gate.enter(_caller(chain, "BANK01"))
    stream = svc.StreamBlocks(pb.StreamBlocksRequest(from_height=1), _Ctx())  # type: ignore[arg-type]
    try:
        assert [(await _next(stream)).height for _ in range(2)] == [1, 2]
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def _status(number: int) -> str:
    return next(c.name for c in grpc.StatusCode if c.value[0] == number)


class _Held:
    """A client's requests, each sent once its event is set; then the stream stays open."""

    def __init__(self, *reqs: pb.SubmitStreamRequest) -> None:
        self.reqs, self.go = reqs, [asyncio.Event() for _ in reqs]

    def __aiter__(self) -> object:
        return self._gen()

    async def _gen(self) -> object:
        for req, go in zip(self.reqs, self.go, strict=True):
            await go.wait()
            yield req
        await asyncio.sleep(3600)


async def _answer(events: object) -> list[str]:
    """The events of one request, up to its final or error."""
    kinds: list[str] = []
    async with asyncio.timeout(5):
        while not kinds or kinds[-1] not in ("final", "error"):
            kinds.append((await anext(events)).WhichOneof("kind"))  # type: ignore[call-overload]
    return kinds


async def _events(svc: LedgerService, caller: Caller, reqs: _Held) -> object:
    Gate.enter(caller)
    return svc.SubmitStream(reqs, _StreamCtx())  # type: ignore[arg-type]


@pytest.mark.parametrize("rotated", [True, False])
async def test_a_submit_stream_ends_once_its_key_is_rotated(rotated: bool) -> None:
    """BANK01 opens a submit stream and resubmits its committed trade (answered final),
    then, after a rotation of its key (or of AUDITOR's: the control), resubmits it again:
    the stream ends with UNAUTHENTICATED at that event, or answers it final again."""
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    far = int(time.time() * 1000) + 3_600_000  # admission checks expiry on the wall clock
    raw = txf.signed(txf.dvp(expiry_ms=far, deadline_ms=far))
    chain.commit([raw])
    chain.commit([])
    svc = LedgerService(chain.node(), {})
    reqs = _Held(*(pb.SubmitStreamRequest(correlation=c, transaction=raw) for c in (1, 2)))
    events = await _events(svc, _caller(chain, "BANK01"), reqs)
    try:
        first = await asyncio.wait_for(anext(events), 5)  # type: ignore[call-overload]
        assert first.WhichOneof("kind") == "opened"
        reqs.go[0].set()
        assert await _answer(events) == ["accepted", "final"]
        who = "BANK01" if rotated else "AUDITOR"
        chain.commit([gov_signed(pinned, rotate(txf, who, crypto.SigningKey.generate()))])
        assert chain.outcomes[3].results[0].code is ResultCode.OK
        reqs.go[1].set()
        if not rotated:
            assert await _answer(events) == ["accepted", "final"]
            return
        with pytest.raises(_Refused) as e:
            await _answer(events)
        assert e.value.code is grpc.StatusCode.UNAUTHENTICATED
    finally:
        await events.aclose()  # type: ignore[attr-defined]


async def test_a_submit_stream_reads_with_the_callers_role_at_the_head() -> None:
    """AUDITOR, an observer when its stream opens, is demoted; then a trade between
    BANK01 and BANK02 commits and AUDITOR resubmits it (it holds the bytes): the final
    event would give it the trade's block and code, which a non-party that held no
    observer role after that block is refused. The control: without the demotion the
    same resubmission is answered final. (A trade of its auditor days it still reads,
    as GetBlock serves it that block whole: ``test_access_teeth.py``.)"""
    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    far = int(time.time() * 1000) + 3_600_000
    chain.commit([])
    svc = LedgerService(chain.node(), {})
    outcomes = []
    for demote in (False, True):
        raw = txf.signed(txf.dvp(expiry_ms=far, deadline_ms=far))
        reqs = _Held(pb.SubmitStreamRequest(correlation=1, transaction=raw))
        events = await _events(svc, _caller(chain, "AUDITOR"), reqs)
        try:
            await asyncio.wait_for(anext(events), 5)  # type: ignore[call-overload]
            if demote:
                roles = frozenset({Role.TRADER})
                chain.commit([gov_signed(pinned, set_roles(txf, "AUDITOR", roles))])
            chain.commit([raw])  # the trade, after the demotion
            chain.commit([])
            reqs.go[0].set()
            async with asyncio.timeout(5):
                async for ev in events:  # type: ignore[attr-defined]
                    if ev.WhichOneof("kind") == "final":
                        outcomes.append(ResultCode(ev.final.code).name)
                        break
                    if ev.WhichOneof("kind") == "error":
                        outcomes.append(_status(ev.error.status))
                        break
        finally:
            await events.aclose()  # type: ignore[attr-defined]
    assert outcomes == ["OK", "PERMISSION_DENIED"], "the demoted auditor read another's trade"
